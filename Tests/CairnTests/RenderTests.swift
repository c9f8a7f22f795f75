import ClusterSpecs
import Foundation
import JSON
import Render
import Testing

@Suite("Renderers: golden output, config hash, determinism")
struct RenderTests {
    /// Golden files: the whole rendered output of every example in clusters/. A change here is a
    /// change to what users get; regenerate with CAIRN_UPDATE_GOLDEN=1 and review the diff.
    @Test(arguments: Repo.exampleFiles)
    func goldenOutput(file: String) throws {
        let spec = try loadSpec(Repo.read(Repo.clusters.appendingPathComponent(file)), file: "clusters/\(file)")
        let actual = YAMLWriter.stream(ClusterRenderer.render(spec).objects.map(\.body))
        let golden = Repo.golden.appendingPathComponent(file)
        if ProcessInfo.processInfo.environment["CAIRN_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: Repo.golden, withIntermediateDirectories: true)
            try actual.write(to: golden, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: golden, encoding: .utf8)
        #expect(actual == expected, "rendered output of clusters/\(file) differs from Tests/CairnTests/Golden/\(file)")
    }

    /// Golden files of every upstream sample (`../shared/upstream-samples/`, read from there):
    /// what a team moving off an operator gets from the manifest it has. Secret values beside a
    /// cluster are masked here, as in every output of cairn's.
    @Test(.enabled(if: UpstreamSamples.available), arguments: UpstreamSamples.available ? UpstreamManifestTests.samples : [])
    func upstreamSampleGoldenOutput(sample: String) throws {
        let spec = try loadSpec(Repo.read(UpstreamSamples.directory.appendingPathComponent(sample)), file: sample)
        // With cairn's image and the cluster DNS known, as in a cluster (SplitDNS's resolver).
        let options = RenderOptions(cairnImage: "registry.example.com/cairn:1.0", clusterDNS: "10.96.0.10:53")
        let bodies = ClusterRenderer.render(spec, options: options).objects.map { object -> JSONValue in
            guard object.kind == "Secret", var body = object.body.objectValue else { return object.body }
            for key in ["data", "stringData"] {
                if let values = body[key]?.objectValue {
                    body[key] = .object(JSONObject(values.entries.map { (key: $0.key, value: "***") }))
                }
            }
            return .object(body)
        }
        let actual = YAMLWriter.stream(bodies)
        let golden = Repo.golden.appendingPathComponent("upstream").appendingPathComponent(sample)
        if ProcessInfo.processInfo.environment["CAIRN_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: golden.deletingLastPathComponent(), withIntermediateDirectories: true)
            try actual.write(to: golden, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: golden, encoding: .utf8)
        #expect(actual == expected, "rendered output of \(sample) differs from Tests/CairnTests/Golden/upstream/\(sample)")
    }

    @Test func everySystemRendersWhatItNeeds() throws {
        let all = try Repo.exampleFiles.flatMap { file in
            try ClusterRenderer.render(loadSpec(Repo.read(Repo.clusters.appendingPathComponent(file)), file: file)).objects
        }
        func names(_ kind: String) -> Set<String> { Set(all.filter { $0.kind == kind }.map(\.name)) }
        #expect(names("StatefulSet") == [
            "esdb-cluster", "example-atomixcluster", "example-atomixcluster-raft", "example-atomixcluster-primary-backup",
            "example-atomixcluster-log", "aerocluster-1", "aerocluster-2", "acid-minimal-cluster",
        ])
        #expect(names("ConfigMap").isSuperset(of: ["esdb-cluster-config", "example-atomixcluster-config", "aerocluster-1", "acid-minimal-cluster-spilo"]))
        #expect(names("PodDisruptionBudget").isSuperset(of: ["esdb-cluster-pdb", "example-atomixcluster-raft-pdb", "aerocluster", "postgres-acid-minimal-cluster-pdb"]))
        #expect(names("Service").isSuperset(of: ["esdb-cluster", "esdb-cluster-0-lb", "example-atomixcluster-service", "aerocluster", "acid-minimal-cluster", "acid-minimal-cluster-repl"]))
        #expect(all.filter { $0.kind == "Secret" }.allSatisfy { $0.createOnly })
        for object in all {
            #expect(object.body["metadata", "labels", "app.kubernetes.io/managed-by"] == "cairn", "\(object.reference)")
            // Every port carries its protocol: a 1.20 server rejects server-side apply without it.
            for port in ports(of: object.body) {
                #expect(port["protocol"] == "TCP", "\(object.reference) port \(port)")
            }
        }
        for sts in all where sts.kind == "StatefulSet" {
            #expect(sts.body["spec", "template", "metadata", "annotations", ConfigHash.annotation]?.stringValue?.hasPrefix("sha256:") == true)
            #expect(sts.body["spec", "template", "metadata", "labels", "app.kubernetes.io/managed-by"] == nil,
                    "pods and PVCs must not look like objects cairn manages")
            for claim in sts.body["spec", "volumeClaimTemplates"]?.arrayValue ?? [] {
                #expect(claim["apiVersion"] == "v1")
                #expect(claim["kind"] == "PersistentVolumeClaim")
            }
        }
        for service in all where service.kind == "Service" && service.body["spec", "clusterIP"] == "None" {
            #expect(service.body["spec", "publishNotReadyAddresses"] == true, "\(service.reference)")
        }
    }

    private func ports(of value: JSONValue) -> [JSONValue] {
        switch value {
        case .object(let o):
            var found: [JSONValue] = []
            for (k, v) in o.entries {
                if k == "ports", let list = v.arrayValue { found += list } else { found += ports(of: v) }
            }
            return found
        case .array(let a): return a.flatMap(ports(of:))
        default: return []
        }
    }

    // MARK: - Config hash

    func hashes(_ yaml: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for o in try render(yaml) where o.kind == "StatefulSet" {
            out[o.name] = o.body["spec", "template", "metadata", "annotations", ConfigHash.annotation]?.stringValue
        }
        return out
    }

    static let esdb = """
        apiVersion: kubernetes.kurrent.io/v1
        kind: KurrentDB
        metadata: {name: es, namespace: db}
        spec:
          replicas: 3
          image: eventstore/eventstore:23.10.2-bookworm-slim
          storage: {resources: {requests: {storage: 1Gi}}}
          resources: {requests: {cpu: 500m}}
          configuration:
            MaxAppendSize: 1048576

        """

    @Test func configHashChangesWithConfiguration() throws {
        let base = try hashes(Self.esdb)
        let changed = try hashes(Self.esdb.replacingOccurrences(of: "1048576", with: "2097152"))
        #expect(base["es"] != nil)
        #expect(base["es"] != changed["es"])
        let added = try hashes(Self.esdb + "    RunProjections: All\n")
        #expect(base["es"] != added["es"])
    }

    @Test func configHashIgnoresWhatIsNotConfiguration() throws {
        let base = try hashes(Self.esdb)
        #expect(try hashes(Self.esdb.replacingOccurrences(of: "cpu: 500m", with: "cpu: \"2\"")) == base)
        #expect(try hashes(Self.esdb.replacingOccurrences(of: "metadata: {name: es, namespace: db}", with: "metadata: {name: es, namespace: db, labels: {team: payments}}")) == base)
        let postgres = ValidationTests.postgres("  resources: {requests: {memory: 1Gi}}\n  postgresql:\n    version: \"16\"\n    parameters: {work_mem: 4MB}\n")
            .replacingOccurrences(of: "  postgresql: {version: \"16\"}\n", with: "")
        let pgBase = try hashes(postgres)
        #expect(try hashes(postgres.replacingOccurrences(of: "numberOfInstances: 2", with: "numberOfInstances: 3")) == pgBase)
        #expect(try hashes(postgres.replacingOccurrences(of: "memory: 1Gi", with: "memory: 2Gi")) == pgBase)
        #expect(try hashes(postgres.replacingOccurrences(of: "work_mem: 4MB", with: "work_mem: 8MB")) != pgBase)
        let aero = try String(contentsOf: Repo.clusters.appendingPathComponent("aerocluster.yaml"), encoding: .utf8)
        let aeroBase = try hashes(aero)
        #expect(try hashes(aero.replacingOccurrences(of: "size: 4\n", with: "size: 6\n")) == aeroBase, "scaling must not restart pods")
        #expect(try hashes(aero.replacingOccurrences(of: "proto-fd-max: 15000", with: "proto-fd-max: 20000")) != aeroBase)
    }

    @Test func configHashIsOverTheConfigMapsThePodReads() throws {
        let objects = try render(Self.esdb)
        let sts = try #require(object(objects, "StatefulSet", "es"))
        let cm = try #require(object(objects, "ConfigMap", "es-config"))
        let template = try #require(sts.body["spec", "template"])
        let expected = ClusterRenderer.configHash(of: template, configMaps: ["es-config": cm.body["data"]!])
        #expect(template["metadata", "annotations", ConfigHash.annotation]?.stringValue == expected)
        #expect(ClusterRenderer.configHash(of: template, configMaps: ["es-config": ["eventstore.conf": "other"]]) != expected)
    }

    @Test func atomixGroupsHashTheirOwnConfiguration() throws {
        let yaml = "apiVersion: agent.atomix.io/v1alpha1\nkind: AtomixCluster\nmetadata: {name: ax}\nspec:\n  partitionGroups:\n    - {name: a, size: 3, raft: {}}\n    - {name: b, size: 2, primaryBackup: {}}\n"
        let base = try hashes(yaml)
        let changed = try hashes(yaml.replacingOccurrences(of: "primaryBackup: {}", with: "primaryBackup: {memberGroupStrategy: zone_aware}"))
        #expect(base["ax-a"] == changed["ax-a"])
        #expect(base["ax-b"] != changed["ax-b"])
        #expect(base["ax"] == changed["ax"])
    }

    // MARK: - Determinism

    @Test func renderingIsDeterministicAndIndependentOfKeyOrder() throws {
        let a = """
            apiVersion: acid.zalan.do/v1
            kind: postgresql
            metadata: {name: pg, labels: {b: "2", a: "1"}}
            spec:
              teamId: acid
              numberOfInstances: 2
              volume: {size: 1Gi}
              users: {zed: [login], amy: [createdb, login]}
              databases: {shop: amy, audit: zed}
              postgresql: {version: "16", parameters: {work_mem: 4MB, log_statement: all, max_connections: "200"}}
              resources: {limits: {memory: 1Gi, cpu: "1"}}
            """
        let b = """
            kind: postgresql
            spec:
              resources: {limits: {cpu: "1", memory: 1Gi}}
              postgresql: {parameters: {max_connections: "200", log_statement: all, work_mem: 4MB}, version: "16"}
              databases: {audit: zed, shop: amy}
              users: {amy: [createdb, login], zed: [login]}
              volume: {size: 1Gi}
              numberOfInstances: 2
              teamId: acid
            metadata: {labels: {a: "1", b: "2"}, name: pg}
            apiVersion: acid.zalan.do/v1
            """
        let first = YAMLWriter.stream(try render(a).map(\.body))
        #expect(first == YAMLWriter.stream(try render(a).map(\.body)))
        // User order is the one thing that differs: Secrets follow the users' order in the file.
        let secretsA = try render(a).filter { $0.kind != "Secret" }.map(\.body)
        let secretsB = try render(b).filter { $0.kind != "Secret" }.map(\.body)
        #expect(YAMLWriter.stream(secretsA) == YAMLWriter.stream(secretsB))
        #expect(Set(try render(a).filter { $0.kind == "Secret" }.map(\.name)) == Set(try render(b).filter { $0.kind == "Secret" }.map(\.name)))
    }

    @Test func podDisruptionBudgetVersionFollowsTheServer() throws {
        let spec = try loadSpec(Self.esdb)
        let old = ClusterRenderer.render(spec, options: RenderOptions(podDisruptionBudgetAPIVersion: "policy/v1beta1")).objects
        #expect(object(old, "PodDisruptionBudget", "es-pdb")?.apiVersion == "policy/v1beta1")
        #expect(object(ClusterRenderer.render(spec).objects, "PodDisruptionBudget", "es-pdb")?.apiVersion == "policy/v1")
    }

    @Test func requestsDefaultToLimitsAsTheServerStoresThem() throws {
        let objects = try render(Self.esdb.replacingOccurrences(of: "resources: {requests: {cpu: 500m}}", with: "resources: {limits: {cpu: 1000m, memory: 2048Mi}}"))
        let container = try #require(object(objects, "StatefulSet", "es")?.body["spec", "template", "spec", "containers"]?.arrayValue?.first)
        #expect(container["resources"] == ["limits": ["cpu": "1", "memory": "2Gi"], "requests": ["cpu": "1", "memory": "2Gi"]])
    }

    @Test func eventStoreDialectsRenderTheirOwnKeys() throws {
        func conf(_ image: String) throws -> String {
            let objects = try render(Self.esdb.replacingOccurrences(of: "eventstore/eventstore:23.10.2-bookworm-slim", with: image))
            return try #require(object(objects, "ConfigMap", "es-config")?.body["data", "eventstore.conf"]?.stringValue)
        }
        let legacy = try conf("eventstore/eventstore:22.10.5-buster-slim")
        #expect(legacy.contains("ExtIp: 0.0.0.0") || legacy.contains("ExtIp: \"0.0.0.0\""))
        #expect(legacy.contains("EnableExternalTcp: true"))
        let v23 = try conf("eventstore/eventstore:23.10.2-bookworm-slim")
        #expect(v23.contains("NodeIp") && v23.contains("ReplicationHeartbeatInterval") && !v23.contains("ExtIp") && !v23.contains("IntTcp"))
        let v25 = try conf("docker.kurrent.io/kurrent-latest/kurrentdb:25.0.1")
        #expect(v25.contains("Db: /var/lib/kurrentdb/data") && !v25.contains("ExternalTcp"))
        let sts = try #require(object(try render(Self.esdb.replacingOccurrences(of: "eventstore/eventstore:23.10.2-bookworm-slim", with: "docker.kurrent.io/kurrent-latest/kurrentdb:25.0.1")), "StatefulSet", "es"))
        let env = sts.body["spec", "template", "spec", "containers"]?.arrayValue?.first?["env"]?.arrayValue ?? []
        #expect(env.contains { $0["name"] == "KURRENTDB_NODE_HOST_ADVERTISE_AS" && $0["value"] == "$(POD_NAME).es.db.svc.cluster.local" })
    }

    /// The objects of several clusters in apply order: stage by stage, and within a stage the
    /// clusters' order and each cluster's own order (what the stable sort it replaced gave).
    @Test func applyOrderIsStageThenClusterOrder() throws {
        let specs = try Repo.exampleFiles.prefix(4).map { try loadSpec(Repo.read(Repo.clusters.appendingPathComponent($0)), file: $0) }
        let clusters = specs.map { ClusterRenderer.render($0) }
        let ordered = ClusterRenderer.applyOrder(clusters)
        #expect(ordered.count == clusters.reduce(0) { $0 + $1.objects.count })
        var expected: [String] = []
        for stage in ApplyStage.allCases {
            for c in clusters { expected += c.objects.filter { $0.stage == stage }.map(\.reference) }
        }
        #expect(ordered.map(\.reference) == expected)
        #expect(zip(ordered, ordered.dropFirst()).allSatisfy { $0.stage <= $1.stage })
        #expect(Set(ordered.map(\.stage)).count > 2)
        for c in clusters { #expect(zip(c.objects, c.objects.dropFirst()).allSatisfy { $0.stage <= $1.stage }) }
    }

    /// Messages about many clusters name ten and count the rest.
    @Test func longListsAreAbbreviated() {
        #expect(abbreviatedList([]) == "")
        #expect(abbreviatedList(["a", "b"]) == "a, b")
        let many = (0..<25).map { "ns/c\($0)" }
        #expect(abbreviatedList(many) == (0..<10).map { "ns/c\($0)" }.joined(separator: ", ") + " and 15 more")
        #expect(abbreviatedList(Array(many.prefix(10))).hasSuffix("ns/c9"))
    }
}
