import ClusterSpecs
import Foundation
@testable import Render
import Testing

/// The rendered configuration files, read back by real parsers, and attempts to inject lines or
/// keys into them through spec values.
@Suite("Config formats: real parsers and injection attempts")
struct ConfigFormatTests {
    /// The whole rendered stream, read by PyYAML, equals the objects as JSON: the YAML writer's
    /// quoting is exactly right (no string read as a number, boolean or date).
    @Test func renderedYAMLReadsBackAsTheSameObjects() throws {
        let specs = try Repo.exampleFiles.map { try loadSpec(Repo.read(Repo.clusters.appendingPathComponent($0)), file: $0) }
        let objects = ClusterRenderer.renderAll(specs).clusters.flatMap(\.objects).map(\.body)
        let yaml = YAMLWriter.stream(objects)
        let script = """
            import sys, yaml, json
            docs = [d for d in yaml.safe_load_all(sys.stdin.read()) if d is not None]
            print(json.dumps(docs, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
            """
        let result = try python(script, input: yaml)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try sameJSON(result.stdout, JSONValue.array(objects).canonicalJSON()))
    }

    /// Every upstream sample's rendered output, read by the real readers: the whole stream by
    /// PyYAML (as the same objects), eventstore.conf by PyYAML (as KurrentDB's YAML reader takes
    /// it), atomix.conf by pyhocon (after the properties its init script writes), Spilo's
    /// configuration as JSON (Spilo reads it as YAML, of which JSON is a subset), and
    /// aerospike.conf by cairn's reader of the server's grammar (the server cannot run here).
    @Test(.enabled(if: UpstreamSamples.available), arguments: UpstreamSamples.available ? UpstreamManifestTests.samples : [])
    func upstreamSamplesReadWithTheRealReaders(sample: String) throws {
        let spec = try loadSpec(Repo.read(UpstreamSamples.directory.appendingPathComponent(sample)), file: sample)
        let objects = ClusterRenderer.render(spec).objects
        let bodies = objects.map(\.body)
        let data = objects.filter { $0.kind == "ConfigMap" }.flatMap { ($0.body["data"]?.objectValue?.entries ?? []) }
        func files(_ key: String) -> [JSONValue] { data.filter { $0.key == key }.map(\.value) }
        let input: JSONValue = ["stream": .string(YAMLWriter.stream(bodies)), "eventstore": .array(files("eventstore.conf")),
                                "atomix": .array(files("atomix.conf")), "spilo": .array(files("SPILO_CONFIGURATION"))]
        let script = """
            import sys, yaml, json
            from pyhocon import ConfigFactory
            d = json.loads(sys.stdin.read())
            out = {"stream": [x for x in yaml.safe_load_all(d["stream"]) if x is not None]}
            out["eventstore"] = [sorted(yaml.safe_load(c)) for c in d["eventstore"]]
            out["atomix"] = [sorted(ConfigFactory.parse_string('atomix.node.id = "n-0"\\natomix.node.address = "n:5679"\\n' + c))
                             for c in d["atomix"]]
            out["spilo"] = [sorted(json.loads(c)) for c in d["spilo"]]
            print(json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
            """
        let result = try python(script, input: input.canonicalJSON())
        #expect(result.status == 0, "\(sample): \(result.stderr)")
        let parsed = try JSONValue.parse(Array(result.stdout.utf8))
        #expect(try sameJSON(parsed["stream"]?.canonicalJSON() ?? "", JSONValue.array(bodies).canonicalJSON()), "\(sample)")
        for keys in parsed["eventstore"]?.arrayValue ?? [] { #expect(keys.arrayValue?.contains("ClusterSize") == true, "\(sample): \(keys)") }
        for keys in parsed["atomix"]?.arrayValue ?? [] { #expect(keys.arrayValue?.contains("cluster") == true, "\(sample): \(keys)") }
        for keys in parsed["spilo"]?.arrayValue ?? [] { #expect(keys.arrayValue?.contains("bootstrap") == true, "\(sample): \(keys)") }
        let system = sample.split(separator: "/").first.map(String.init) ?? ""
        let expected = ["kurrentdb": "eventstore", "atomix": "atomix", "zalando-postgres": "spilo"][system]
        if let expected { #expect(parsed[expected]?.arrayValue?.isEmpty == false, "\(sample): no \(expected) configuration read") }
        let confs = files("aerospike.conf").compactMap(\.stringValue)
        #expect(system != "aerospike" || !confs.isEmpty, "\(sample)")
        for conf in confs { #expect(throws: Never.self, "\(sample)") { try AerospikeConfReader.parse(conf) } }
    }

    /// Compares two JSON texts as data (Python and cairn escape non-ASCII differently).
    func sameJSON(_ a: String, _ b: String) throws -> Bool {
        let x = try JSONSerialization.jsonObject(with: Data(a.utf8)) as? NSObject
        let y = try JSONSerialization.jsonObject(with: Data(b.utf8)) as? NSObject
        return x != nil && x == y
    }

    @Test func yamlWriterQuotesWhatReadersWouldMisread() throws {
        let tricky: [String] = ["yes", "No", "on", "off", "y", "~", "null", "true", "1.0", "0755", "1e3", "12:30", "2001-12-14",
                                "0x1F", "- item", "a: b", "#comment", "key: value\nother: 1", "trailing ", " leading", "tab\there",
                                "quote\"s", "back\\slash", "", "*alias", "&anchor", "!tag", "%percent", "@at", "`tick", "{a}", "[b]",
                                "line\u{2028}sep", "bell\u{07}", "multi\nline\n", "multi\nline", "  indented\nblock\n", ".inf", "-.inf", ".nan",
                                "=", "1_000", "+1", "3.1.0", "10.96.0.0/16", "1Gi", "ünïcødé", "a #b", "a# b",
                                // Found by the conf fuzz target: a space and a combining mark are one Character,
                                // so a leading space hid from hasPrefix(" ") and broke the literal block.
                                " \u{31B}lead\nnext", "trail \u{31B}\nnext", "x\ntrail \nnext"]
        let value = JSONValue.object(JSONObject(tricky.enumerated().map { (key: "k\($0.offset)", value: JSONValue.string($0.element)) }
            + [(key: "yes", value: "key"), (key: "1", value: "numeric key")]))
        let result = try python("import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin.read()), sort_keys=True, separators=(',', ':'), ensure_ascii=False))",
                                input: YAMLWriter.document(value))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try sameJSON(result.stdout, value.canonicalJSON()))
    }

    @Test func eventStoreConfKeepsALeadingSpaceBeforeACombiningMark() throws {
        let value = " \u{31B}III\nnext"
        let text = EventStoreConf.write(["Option": .string(value)])
        guard case .mapping(let m) = try SpecFileParser.parse(text, file: "eventstore.conf"), case .scalar(let read)? = m["Option"] else {
            Issue.record("does not read back: \(text)")
            return
        }
        #expect(read.text == value, "\(text)")
    }

    func eventStoreConf(_ configuration: String) throws -> String {
        let yaml = """
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: es}
            spec:
              replicas: 3
              image: eventstore/eventstore:23.10.2-bookworm-slim
              storage: {resources: {requests: {storage: 1Gi}}}
              configuration:
            \(configuration)
            """
        return try #require(object(try render(yaml), "ConfigMap", "es-config")?.body["data", "eventstore.conf"]?.stringValue)
    }

    @Test func eventStoreConfParsesWithPyYAMLAndCannotBeInjected() throws {
        let conf = try eventStoreConf("    MaxAppendSize: \"1024\\nClusterSize: 9\\nInsecure: false\"\n    CertificateReservedNodeCommonName: \"*.es: x # y\"\n")
        let result = try python("import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin.read()), sort_keys=True))", input: conf)
        #expect(result.status == 0, "\(result.stderr)")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(parsed["ClusterSize"] as? Int == 3)
        #expect(parsed["Insecure"] as? Bool == true)
        #expect(parsed["MaxAppendSize"] as? String == "1024\nClusterSize: 9\nInsecure: false")
        #expect(parsed["CertificateReservedNodeCommonName"] as? String == "*.es: x # y")
        #expect((parsed["GossipSeed"] as? [String])?.count == 3)
        #expect(parsed["NodeIp"] as? String == "0.0.0.0")
    }

    @Test func atomixConfParsesWithPyhocon() throws {
        let text = try Repo.read(Repo.clusters.appendingPathComponent("example-atomixcluster.yaml"))
        let objects = try render(text)
        for name in ["example-atomixcluster-config", "example-atomixcluster-raft-config", "example-atomixcluster-primary-backup-config", "example-atomixcluster-log-config"] {
            let conf = try #require(object(objects, "ConfigMap", name)?.body["data", "atomix.conf"]?.stringValue)
            // The properties the init script writes, then the file, as Atomix reads them together.
            let input = "atomix.node.id = \"n-0\"\natomix.node.address = \"n-0.svc:5679\"\n" + conf
            let script = """
                import sys, json
                from pyhocon import ConfigFactory, HOCONConverter
                c = ConfigFactory.parse_string(sys.stdin.read())
                print(HOCONConverter.to_json(c))
                """
            let result = try python(script, input: input)
            #expect(result.status == 0, "\(name): \(result.stderr)")
            let parsed = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let cluster = try #require(parsed["cluster"] as? [String: Any])
            #expect((cluster["node"] as? [String: Any])?["id"] as? String == "n-0")
            #expect((cluster["discovery"] as? [String: Any])?["service"] as? String == "example-atomixcluster-service.default.svc.cluster.local")
            if name == "example-atomixcluster-raft-config" {
                let group = try #require((parsed["partitionGroups"] as? [String: Any])?["raft"] as? [String: Any])
                #expect(group["partitions"] as? Int == 3)
                #expect((group["members"] as? [String]) == ["example-atomixcluster-raft-0", "example-atomixcluster-raft-1", "example-atomixcluster-raft-2"])
                #expect((group["storage"] as? [String: Any])?["segmentSize"] as? Int == 67_108_864)
            }
            if name == "example-atomixcluster-primary-backup-config" {
                let group = try #require((parsed["partitionGroups"] as? [String: Any])?["primary-backup"] as? [String: Any])
                #expect(group["memberGroupStrategy"] as? String == "node-aware")
            }
        }
    }

    @Test func hoconStringsCannotBreakOut() throws {
        // Names reaching atomix.conf are validated DNS labels; the writer still escapes everything.
        let hostile = "x\" }\ninjected { a: ${HOME} }\n\"\\"
        let conf = HOCON.object([("clusterId", .string(hostile)), ("partitionGroups", .object([("a.b", .object([("type", .string("raft"))]))]))]).render()
        let result = try python("import sys, json\nfrom pyhocon import ConfigFactory, HOCONConverter\nprint(HOCONConverter.to_json(ConfigFactory.parse_string(sys.stdin.read())))", input: conf)
        #expect(result.status == 0, "\(result.stderr)")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(parsed["clusterId"] as? String == hostile)
        #expect(parsed["injected"] == nil)
        #expect((parsed["partitionGroups"] as? [String: Any])?["a.b"] != nil, "a key with a dot stays one key")
    }

    @Test func spiloConfigurationIsJSONAndKeepsValuesIntact() throws {
        let yaml = ValidationTests.postgres("  patroni:\n    pg_hba: [\"hostssl all all 0.0.0.0/0 md5\"]\n")
            .replacingOccurrences(of: "  postgresql: {version: \"16\"}\n", with: "  postgresql:\n    version: \"16\"\n    parameters:\n      search_path: '\"$user\", public'\n      log_line_prefix: '%m [%p] \"}'\n      max_connections: 200\n")
        let spilo = try #require(object(try render(yaml), "ConfigMap", "pg-spilo")?.body["data", "SPILO_CONFIGURATION"]?.stringValue)
        let result = try python("import sys, json; d = json.loads(sys.stdin.read()); print(json.dumps(d, sort_keys=True))", input: spilo)
        #expect(result.status == 0, "\(result.stderr)")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let local = try #require((parsed["postgresql"] as? [String: Any])?["parameters"] as? [String: String])
        #expect(local == ["log_line_prefix": "%m [%p] \"}"])
        let dcs = try #require(((parsed["bootstrap"] as? [String: Any])?["dcs"] as? [String: Any])?["postgresql"] as? [String: Any])
        #expect(dcs["parameters"] as? [String: String] == ["search_path": "\"$user\", public", "max_connections": "200"])
        #expect((parsed["postgresql"] as? [String: Any])?["pg_hba"] as? [String] == ["hostssl all all 0.0.0.0/0 md5"])
    }

    @Test func aerospikeConfHasTheOperatorsShape() throws {
        let objects = try render(Repo.read(Repo.clusters.appendingPathComponent("aerocluster.yaml")))
        let rack1 = try #require(object(objects, "ConfigMap", "aerocluster-1")?.body["data", "aerospike.conf"]?.stringValue)
        // Every line is a context opener, a closer, or a name with at most three value tokens.
        var depth = 0
        for line in rack1.split(separator: "\n") {
            let tokens = line.split(separator: " ")
            #expect(line.count <= 1024)
            if tokens.last == "{" { depth += 1; continue }
            if tokens == ["}"] { depth -= 1; #expect(depth >= 0); continue }
            #expect((2...4).contains(tokens.count), "line '\(line)'")
        }
        #expect(depth == 0)
        #expect(rack1.contains("    heartbeat {\n        mesh-seed-address-port aerocluster-1-0.aerocluster.aerospike.svc.cluster.local 3002\n        mesh-seed-address-port aerocluster-2-0.aerocluster.aerospike.svc.cluster.local 3002\n        mode mesh\n"))
        #expect(rack1.contains("namespace test {\n    rack-id 1\n    replication-factor 2\n    storage-engine memory {\n        data-size 1G\n    }\n}\n"))
        #expect(rack1.contains("    storage-engine device {\n        device /dev/nvme0n1\n    }\n"))
        #expect(rack1.contains("logging {\n    console {\n        context any info\n    }\n}\n"))
        #expect(rack1.contains("    cluster-name aerocluster\n"))
        let rack2 = try #require(object(objects, "ConfigMap", "aerocluster-2")?.body["data", "aerospike.conf"]?.stringValue)
        #expect(rack2.contains("    rack-id 2\n"))
        #expect(rack1.replacingOccurrences(of: "rack-id 1", with: "rack-id 2") == rack2)
    }

    /// The HOCON reader the fuzz target trusts reads what pyhocon reads: the example's four
    /// atomix.conf files and a document of hostile keys and strings.
    @Test func hoconReaderAgreesWithPyhocon() throws {
        let objects = try render(Repo.read(Repo.clusters.appendingPathComponent("example-atomixcluster.yaml")))
        var documents = objects.filter { $0.kind == "ConfigMap" }.compactMap { $0.body["data", "atomix.conf"]?.stringValue }
        #expect(documents.count == 4)
        // pyhocon itself misreads a quoted key holding an escaped quote, drops "" from a list and
        // escapes control characters and U+2028 twice: those cases are left to the fuzz target's round trip.
        let hostile: [(String, HOCON)] = [
            ("clusterId", .string("v\" }\n#c\ninjected { a: ${HOME} }\\ é")),
            ("a.b", .object([("c d", .array([.int(-3), .double(2.5), .bool(false), .string("x, y]")])), ("e", .object([]))])),
            ("n", .array([.object([("k", .int(9_007_199_254_740_993))]), .array([])])),
        ]
        documents.append(HOCON.object(hostile).render())
        let script = """
            import sys, json
            from pyhocon import ConfigFactory, HOCONConverter
            properties = 'atomix.node.id = "n-0"\\natomix.node.address = "n-0.svc:5679"\\n'
            for doc in json.loads(sys.stdin.read()):
                c = ConfigFactory.parse_string(properties + doc)
                del c["atomix"]
                print(HOCONConverter.to_json(c).replace("\\n", " "))
            """
        // The substitutions, as pyhocon resolves them from the properties the init script writes.
        func resolved(_ v: JSONValue) -> JSONValue {
            switch v {
            case .object(let o) where o.keys == ["${}"]:
                return .string(["atomix.node.id": "n-0", "atomix.node.address": "n-0.svc:5679"][o["${}"]?.stringValue ?? ""] ?? "?")
            case .object(let o): return .object(JSONObject(o.entries.map { (key: $0.key, value: resolved($0.value)) }))
            case .array(let items): return .array(items.map(resolved))
            default: return v
            }
        }
        let result = try python(script, input: JSONValue.array(documents.map(JSONValue.string)).canonicalJSON())
        #expect(result.status == 0, "\(result.stderr)")
        let parsed = result.stdout.split(separator: "\n")
        #expect(parsed.count == documents.count)
        for (doc, reference) in zip(documents, parsed) {
            let ours = resolved(try HOCONReader.parse(doc))
            #expect(try sameJSON(String(reference), ours.canonicalJSON()), "\(doc)")
        }
        #expect(try HOCONReader.parse(documents.last!).canonicalJSON() == HOCONReader.json(.object(hostile)).canonicalJSON())
    }

    /// The aerospike.conf reader the fuzz target trusts: the example's files read as contexts and
    /// lines; a brace inside a token (`${un}`) is a value, a lone one is structure.
    @Test func aerospikeConfReaderReadsTheServersStructure() throws {
        let objects = try render(Repo.read(Repo.clusters.appendingPathComponent("aerocluster.yaml")))
        let conf = try #require(object(objects, "ConfigMap", "aerocluster-1")?.body["data", "aerospike.conf"]?.stringValue)
        let items = try AerospikeConfReader.parse(conf)
        let namespace = items.first { if case .context(let head, _) = $0 { return head == ["namespace", "test"] }; return false }
        guard case .context(_, let inner)? = namespace else { Issue.record("no namespace test"); return }
        #expect(inner.contains(.line(key: "replication-factor", values: ["2"])))
        #expect(inner.contains(.context(head: ["storage-engine", "memory"], items: [.line(key: "data-size", values: ["1G"])])))
        let ldap = try AerospikeConfReader.parse("security {\n    ldap {\n        user-dn-pattern uid=${un},ou=People # a comment\n    }\n}\n")
        #expect(ldap == [.context(head: ["security"], items: [.context(head: ["ldap"], items: [.line(key: "user-dn-pattern", values: ["uid=${un},ou=People"])])])])
        #expect(throws: AerospikeConfReader.Failure.self) { try AerospikeConfReader.parse("service {\n") }
        #expect(throws: AerospikeConfReader.Failure.self) { try AerospikeConfReader.parse("}\n") }
        #expect(throws: AerospikeConfReader.Failure.self) { try AerospikeConfReader.parse("a { b\n}\n") }
    }
}
