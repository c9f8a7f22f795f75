import Foundation
import Testing

/// The real `cairn` binary, run as a user would, its whole output and exit status checked.
@Suite("cairn validate and cairn render")
struct CLITests {
    static var binary: String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cairn").path,
            Repo.root.appendingPathComponent(".build/debug/cairn").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[1]
    }

    func cairn(_ arguments: String...) throws -> ProcessResult {
        try run(Self.binary, arguments)
    }

    func temporaryDirectory(_ files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-cli-\(UUID().uuidString)")
        for (name, text) in files {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        return dir
    }

    @Test func validateTheExamples() throws {
        let r = try cairn("validate", Repo.clusters.path)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "4 clusters valid\n")
        #expect(r.stderr == "")
    }

    @Test func validateReportsEveryProblemWithItsLocationAndGoesOn() throws {
        let good = try Repo.read(Repo.clusters.appendingPathComponent("acid-minimal-cluster.yaml"))
        let dir = try temporaryDirectory([
            "clusters/a-good.yaml": good,
            "clusters/orders.yaml": "apiVersion: agent.atomix.io/v1alpha1\nkind: AtomixCluster\nmetadata: {name: orders}\nspec:\n  partitionGroups:\n    - {name: a, raft: {}}\n    - name: b\n      partitions: 0\n      log: {}\n",
            "clusters/nested/broken.yml": "apiVersion: [\n",
            "clusters/notes.txt": "not a spec",
            "clusters/.hidden.yaml": "garbage: [",
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try cairn("validate", dir.appendingPathComponent("clusters").path)
        #expect(r.status == 1)
        #expect(r.stdout == "")
        let prefix = dir.appendingPathComponent("clusters").path
        #expect(r.stderr == """
            \(prefix)/nested/broken.yml:2:1: invalid YAML: while parsing a flow node: did not find expected node content
            \(prefix)/orders.yaml:8:19: spec.partitionGroups[1].partitions: must be at least 1 (got 0)

            """)
    }

    @Test func filesThatCannotBeReadAreNamedWithTheirReason() throws {
        let good = try Repo.read(Repo.clusters.appendingPathComponent("acid-minimal-cluster.yaml"))
        let dir = try temporaryDirectory([
            "a-good.yaml": good,
            "big.yaml": "# " + String(repeating: "x", count: 1 << 20) + "\n",
            "latin1.yaml": "",
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data([0x61, 0x3a, 0x20, 0xe9, 0x0a]).write(to: dir.appendingPathComponent("latin1.yaml"))
        // A FIFO must be refused, not waited on: nobody ever writes to it.
        #expect(mkfifo(dir.appendingPathComponent("pipe.yaml").path, 0o600) == 0)
        let r = try cairn("validate", dir.path)
        #expect(r.status == 1)
        #expect(r.stdout == "")
        #expect(r.stderr == """
            \(dir.path)/big.yaml: file is 1048579 bytes; spec files are limited to 1048576 bytes
            \(dir.path)/latin1.yaml: not UTF-8 text
            \(dir.path)/pipe.yaml: not a regular file

            """)
    }

    @Test func missingPathIsAClearError() throws {
        let r = try cairn("validate", "/nonexistent/clusters")
        #expect(r.status == 1)
        #expect(r.stderr == "cairn: /nonexistent/clusters: no such file or directory\n")
        let none = try cairn("validate")
        #expect(none.status == 64)
        #expect(none.stderr.contains("Name at least one spec file or directory"))
    }

    @Test func renderPrintsEveryObjectInApplyOrder() throws {
        let r = try cairn("render", Repo.clusters.path)
        #expect(r.status == 0, "\(r.stderr)")
        let kinds = r.stdout.split(separator: "\n").filter { $0.hasPrefix("kind: ") }.map { String($0.dropFirst(6)) }
        #expect(kinds.count == 47)
        #expect(r.stdout.components(separatedBy: "---\n").count - 1 == 47)
        // Access and Secrets, then ConfigMaps, Services and PDBs, StatefulSets, load balancers last.
        let rank = ["ServiceAccount": 0, "Role": 0, "RoleBinding": 0, "Secret": 1, "ConfigMap": 2, "Service": 3,
                    "PodDisruptionBudget": 3, "StatefulSet": 4]
        let ranks = kinds.enumerated().map { i, k in rank[k] ?? 9 }
        let firstStatefulSet = try #require(kinds.firstIndex(of: "StatefulSet"))
        #expect(ranks[..<firstStatefulSet].allSatisfy { $0 <= 3 })
        #expect(kinds.suffix(3) == ["Service", "Service", "Service"], "the per-node load balancers come last")
    }

    @Test func renderJSONIsOneList() throws {
        let r = try cairn("render", "--output", "json", Repo.clusters.appendingPathComponent("esdb-cluster.yaml").path)
        #expect(r.status == 0, "\(r.stderr)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(list["kind"] as? String == "List")
        #expect((list["items"] as? [[String: Any]])?.map { $0["kind"] as? String } == [
            "ConfigMap", "Service", "PodDisruptionBudget", "StatefulSet", "Service", "Service", "Service",
        ])
    }

    @Test func renderOfInvalidInputPrintsNothingAndFails() throws {
        let dir = try temporaryDirectory(["c.yaml": "apiVersion: acid.zalan.do/v1\nkind: postgresql\nmetadata: {name: pg}\nspec: {teamId: acid}\n"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try cairn("render", dir.path)
        #expect(r.status == 1)
        #expect(r.stdout == "")
        #expect(r.stderr == """
            \(dir.path)/c.yaml:4:7: spec.numberOfInstances: is required
            \(dir.path)/c.yaml:4:7: spec.postgresql: is required
            \(dir.path)/c.yaml:4:7: spec.volume: is required

            """)
    }

    @Test func renderChoosesThePodDisruptionBudgetVersion() throws {
        let r = try cairn("render", "--pdb-api-version", "policy/v1beta1", Repo.clusters.appendingPathComponent("esdb-cluster.yaml").path)
        #expect(r.status == 0)
        #expect(r.stdout.contains("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget"))
        let bad = try cairn("render", "--pdb-api-version", "policy/v2", Repo.clusters.path)
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("--pdb-api-version must be policy/v1 or policy/v1beta1 (got policy/v2)."))
    }

    @Test func helpExplainsTheCommands() throws {
        let r = try cairn("--help")
        #expect(r.status == 0)
        #expect(r.stdout.contains("validate") && r.stdout.contains("render"))
        #expect(r.stdout.contains("one spec file per cluster"))
    }
}
