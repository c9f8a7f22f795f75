import ClusterSpecs
import Reconcile
import Render
import Testing

/// Spec files written to break cairn: each of these crashed, hung or exhausted memory. Each is
/// now a clear `file:line:column` error, and nothing is rendered for it.
@Suite("Hostile spec input")
struct HostileInputTests {
    /// Validation and rendering as every command runs them; the errors.
    func errors(_ yaml: String) -> [String] {
        let state = DesiredState(files: [DesiredState.File(path: "t.yaml", text: yaml)])
        #expect(state.clusters.isEmpty || state.errors.isEmpty)
        return state.errors.map(\.description)
    }

    @Test(arguments: ["-922337203685477580.7", "1.5e-9223372036854775808", "10e9223372036854775807", "1e-9223372036854775807", "1e999999999999"])
    func quantitiesThatOverflowedOrHung(_ size: String) {
        let found = errors(ValidationTests.postgres("", name: "pg").replacingOccurrences(of: "volume: {size: 1Gi}", with: "volume: {size: \"\(size)\"}"))
        #expect(found.count == 1 && found[0].contains("spec.volume.size: "), "\(found)")
        let resources = ValidationTests.postgres("  resources: {requests: {cpu: \"\(size)\"}}\n")
        #expect(!errors(resources).isEmpty)
    }

    @Test func quantitiesPrintWithoutOverflow() throws {
        // A mantissa that cannot be shifted onto a multiple of 3 prints in exponent form.
        let q = try Quantity(parsing: "-922337203685477580.7")
        #expect(q.description == "-9223372036854775807e-1")
        #expect(try Quantity(parsing: "922337203685477580.7").description == "9223372036854775807e-1")
        #expect(try Quantity(parsing: "1e30").description == "1e30")
        #expect(throws: Quantity.ParseError.self) { try Quantity(parsing: "1e31") }
    }

    @Test func patroniDurationsAreBounded() {
        let yaml = ValidationTests.postgres("  patroni: {ttl: 1, loop_wait: 9223372036854775807, retry_timeout: 1}\n")
        #expect(errors(yaml) == ["t.yaml:9:32: spec.patroni.loop_wait: must be at most 86400 (got 9223372036854775807)"])
    }

    @Test(arguments: ["9223372036854775807", "1000000001", "101"])
    func atomixGroupSizesAreBounded(_ size: String) {
        let yaml = ValidationTests.atomixHead + "  version: 3.1.0\n  managementGroup: {size: \(size)}\n"
        #expect(errors(yaml) == ["t.yaml:6:27: spec.managementGroup.size: must be at most 99 (got \(size))"])
        let group = ValidationTests.atomixHead + "  version: 3.1.0\n  partitionGroups:\n  - {name: g, size: \(size), partitions: 1, primaryBackup: {}}\n"
        if size.count > 4 {
            #expect(errors(group).first?.contains("spec.partitionGroups[0].size: must be at most 1000") == true, "\(errors(group))")
        }
    }
}

/// What a pull request's author writes must not write the plan's comment: values with
/// newlines, backticks and HTML stay inside their code spans, fences and escapes.
@Suite("Hostile input in plan output")
struct PlanInjectionTests {
    func esdb(_ value: String) -> DesiredState.File {
        DesiredState.File(path: "clusters/es.yaml", text: """
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: es, namespace: ns}
            spec:
              replicas: 1
              image: eventstore/eventstore:23.10.2-bookworm-slim
              storage: {resources: {requests: {storage: 1Gi}}}
              configuration: {AuthenticationType: \(value)}
            """)
    }

    @Test func markdownKeepsValuesInTheirPlace() throws {
        let before = DesiredState(files: [esdb("internal")])
        let after = DesiredState(files: [esdb(#""x\n```\n# Injected heading\n<img src=x onerror=alert(1)>\n| a | table |""#)], previous: before)
        let plan = ChangePlan.compare(base: before.clusters, head: after.clusters)
        let markdown = PlanReport.markdown(plan, header: PlanReport.Header(base: "main\n# base", head: "pr", path: "clusters"))
        // Outside the diffs' fences (closed the way CommonMark closes them: a line of at least
        // as many backticks, indented at most 3 spaces) no line was written by the value.
        var inFence: Int?
        var fences = 0
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            let unindented = line.drop { $0 == " " }
            let ticks = unindented.prefix { $0 == "`" }.count
            if let open = inFence {
                if line.count - unindented.count <= 3, ticks >= open, unindented.dropFirst(ticks).allSatisfy({ $0 == " " }) { inFence = nil }
                continue
            }
            if ticks >= 3 {
                inFence = ticks
                fences += 1
                continue
            }
            #expect(!line.hasPrefix("# "), "a heading from a value: \(line)")
            #expect(!line.contains("<img"), "raw HTML from a value: \(line)")
            #expect(!line.hasPrefix("| a |"), "a table row from a value: \(line)")
        }
        #expect(inFence == nil && fences == 2, "the diffs' fences: \(fences), one left open: \(inFence != nil)")
        #expect(markdown.contains("````diff"), "the ConfigMap's diff holds three backticks: its fence has four")
        #expect(markdown.hasPrefix("### cairn plan: `main\\n# base` → `pr`\n"))
    }

    @Test func errorsAreOneLine() {
        let state = DesiredState(files: [DesiredState.File(path: "t.yaml", text: "apiVersion: v1\nkind: \"Evil\\nt.yaml:1:1: forged error\"\nmetadata: {name: x}\nspec: {}\n")])
        #expect(state.errors.count == 1)
        #expect(state.errors.allSatisfy { !$0.description.contains("\n") }, "\(state.errors)")
    }
}

/// Inputs that took minutes or unbounded memory: now a prompt, clear error.
@Suite("Hostile input sizes")
struct HostileSizeTests {
    /// A 979 KB spec with 90,000 keys took over 90 s (the YAML composer copied the whole
    /// mapping for every entry).
    @Test func ninetyThousandKeys() {
        let parameters = (0..<90_000).map { "p\($0): v" }.joined(separator: ", ")
        let yaml = ValidationTests.postgres("").replacingOccurrences(of: "postgresql: {version: \"16\"}", with: "postgresql: {version: \"16\", parameters: {\(parameters)}}")
        #expect(yaml.utf8.count < SpecFileParser.maximumFileSize)
        let errors = specErrors(yaml)
        #expect(errors.count == 1 && errors[0].hasSuffix("spec.postgresql.parameters: has 90000 entries; at most 4096 are allowed"), "\(errors.prefix(3))")
        // As many unknown fields: the first hundred problems, then how many more.
        let unknown = ValidationTests.postgres((0..<50_000).map { "  u\($0): 1\n" }.joined())
        let many = specErrors(unknown)
        #expect(many.count == 101 && many.contains { $0.hasSuffix("and 49900 more problems in this file") }, "\(many.suffix(2))")
    }

    /// A kubeconfig with a "billion laughs" alias block was expanded without limit; now it stops at the budget.
    @Test func kubeconfigAliasesAreBounded() throws {
        let dir = TemporaryDirectory("cairn-laughs")
        var lines = ["apiVersion: v1", "kind: Config", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        for i in 1..<9 { lines.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]") }
        lines += ["clusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]", "current-context: x"]
        try lines.joined(separator: "\n").write(toFile: dir.file("kubeconfig"), atomically: true, encoding: .utf8)
        try IsolationTests.esdb("es", namespace: "ns").write(toFile: dir.file("es.yaml"), atomically: true, encoding: .utf8)
        let r = try run(CLITests.binary, ["apply", dir.file("es.yaml"), "--kubeconfig", dir.file("kubeconfig")], timeout: 60)
        #expect(r.status == 1)
        #expect(r.stderr.contains("YAML aliases expand to more than 100000 nodes"), "\(r.stderr)")
        // Found by the kubeconfig fuzz target (a leak in Foundation's reading of an empty file).
        try "".write(toFile: dir.file("empty"), atomically: true, encoding: .utf8)
        let empty = try run(CLITests.binary, ["apply", dir.file("es.yaml"), "--kubeconfig", dir.file("empty")], timeout: 60)
        #expect(empty.status == 1 && empty.stderr.contains("is empty"), "\(empty.stderr)")
        // Found by the kubeconfig fuzz target: Yams' YAML 1.1 sexagesimal integers trapped on
        // overflow. Kubeconfigs are read with the spec files' YAML 1.2 reader now.
        try "apiVersion: v1\nkind: Config\nx: 999999999933795144:3\n".write(toFile: dir.file("sexagesimal"), atomically: true, encoding: .utf8)
        let sexagesimal = try run(CLITests.binary, ["apply", dir.file("es.yaml"), "--kubeconfig", dir.file("sexagesimal")], timeout: 60)
        #expect(sexagesimal.status == 1 && sexagesimal.stderr.contains("current-context"), "\(sexagesimal.stderr)")
    }
}
