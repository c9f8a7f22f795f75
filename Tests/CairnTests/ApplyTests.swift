import ClusterSpecs
import Foundation
import KubeAPI
import Testing

/// `cairn apply`, the real binary, against the real control plane.
@Suite("cairn apply end to end", .enabled(if: !ControlPlane.skip))
struct ApplyTests {
    let plane: ControlPlane
    let ns = "apply-\(UInt32.random(in: 0...UInt32.max))"
    let dir = TemporaryDirectory("cairn-apply")

    init() throws {
        plane = try ControlPlane.shared()
    }

    func esdb(_ name: String, _ size: String = "1Gi") -> String {
        """
        apiVersion: kubernetes.kurrent.io/v1
        kind: KurrentDB
        metadata: {name: \(name), namespace: \(ns)}
        spec:
          replicas: 1
          image: eventstore/eventstore:23.10.2-bookworm-slim
          storage: {resources: {requests: {storage: \(size)}}}

        """
    }

    var postgres: String {
        "apiVersion: acid.zalan.do/v1\nkind: postgresql\nmetadata: {name: pg, namespace: \(ns)}\nspec:\n  teamId: acid\n  numberOfInstances: 1\n  volume: {size: 1Gi}\n  users: {app: [login]}\n  postgresql: {version: \"16\"}\n"
    }

    func write(_ files: [String: String?]) throws {
        for (name, text) in files {
            if let text { try text.write(toFile: dir.file(name), atomically: true, encoding: .utf8) } else { try FileManager.default.removeItem(atPath: dir.file(name)) }
        }
    }

    func apply(_ extra: [String] = []) throws -> ProcessResult {
        try run(CLITests.binary, ["apply", dir.path, "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns] + extra)
    }

    func lines(_ r: ProcessResult, _ action: String) -> [String] {
        r.stdout.split(separator: "\n").map(String.init).filter { line in
            let words = line.split(separator: " ")
            return words.count >= 2 && words[1] == action
        }
    }

    @Test func createsThenChangesNothingThenPrunesKeepingVolumesAndCredentials() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        try write(["es.yaml": esdb("es"), "pg.yaml": postgres])

        let first = try apply()
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(first.stdout.hasSuffix("17 created, 0 configured, 0 unchanged, 0 restarted, 0 pruned, 0 kept, 0 blocked, 0 failed\n"), "\(first.stdout)")
        let secret = ObjectReference(apiVersion: "v1", kind: "Secret", namespace: ns, name: "app.pg.credentials.postgresql.acid.zalan.do")
        let password = try await client.get(secret)["data", "password"]?.stringValue
        #expect(password != nil && password!.count > 20)
        #expect(!first.stdout.contains(password!) && !first.stderr.contains(password!))

        let second = try apply()
        #expect(second.stdout.hasSuffix("0 created, 0 configured, 17 unchanged, 0 restarted, 0 pruned, 0 kept, 0 blocked, 0 failed\n"), "\(second.stdout)")
        #expect(try await client.get(secret)["data", "password"]?.stringValue == password, "a generated Secret is never overwritten")

        // Drift: someone scales the StatefulSet; the next pass puts it back and says so.
        _ = try await client.apply(["apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": ["name": "es", "namespace": .string(ns)], "spec": ["replicas": 3]],
                                   fieldManager: "kubectl-edit", force: true)
        let corrected = try apply()
        #expect(lines(corrected, "configured") == ["StatefulSet/\(ns)/es configured (spec.replicas: 3 -> 1, changed by kubectl-edit)"])

        // An immutable change is blocked, not applied, and nothing is deleted.
        try write(["es.yaml": esdb("es", "5Gi")])
        let blocked = try apply()
        #expect(blocked.status == 1)
        #expect(lines(blocked, "blocked").first?.hasPrefix("StatefulSet/\(ns)/es blocked (spec.volumeClaimTemplates[0].spec.resources.requests.storage: \"1Gi\" -> \"5Gi\"") == true)
        try write(["es.yaml": esdb("es")])

        // An invalid spec beside a valid one: the valid one is reconciled, nothing of the invalid one touched.
        try write(["pg.yaml": postgres.replacingOccurrences(of: "numberOfInstances: 1", with: "numberOfInstances: zero"), "es2.yaml": esdb("es2")])
        let mixed = try apply()
        #expect(mixed.status == 1)
        #expect(mixed.stderr.contains("pg.yaml:6:22: spec.numberOfInstances: must be an integer (got a string)"))
        #expect(lines(mixed, "pruned").isEmpty)
        #expect(lines(mixed, "created").count == 4)
        _ = try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: "pg"))

        // An empty spec directory prunes nothing.
        try write(["pg.yaml": nil, "es.yaml": nil, "es2.yaml": nil])
        let empty = try apply()
        #expect(lines(empty, "pruned").isEmpty)
        #expect(empty.stderr.contains("the spec directory reads as empty while 3 clusters exist"))

        // The StatefulSet controller has made the Postgres volume claim by now.
        let claim = ObjectReference(apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: ns, name: "pgdata-pg-0")
        var claimUID: String?
        for _ in 0..<100 where claimUID == nil {
            claimUID = try? await client.get(claim)["metadata", "uid"]?.stringValue
            if claimUID == nil { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(claimUID != nil, "the StatefulSet controller created no volume claim")

        // The spec removed: its objects pruned, its volumes and credentials kept.
        try write(["es.yaml": esdb("es"), "es2.yaml": esdb("es2")])
        let pvcsBefore = try await client.list(apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: ns).compactMap { $0["metadata", "uid"]?.stringValue }
        let removed = try apply()
        #expect(removed.status == 0, "\(removed.stdout)\(removed.stderr)")
        #expect(lines(removed, "pruned").count == 10, "\(removed.stdout)")
        #expect(lines(removed, "kept").count == 3)
        #expect(lines(removed, "pruned").allSatisfy { $0.contains("/pg") || $0.contains("pg-") || $0.contains("postgres-pg") || $0.contains(".pg.") })
        await #expect(throws: KubeError.self) { try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: "pg")) }
        #expect(try await client.get(secret)["data", "password"]?.stringValue == password)
        let pvcsAfter = try await client.list(apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: ns).compactMap { $0["metadata", "uid"]?.stringValue }
        #expect(Set(pvcsBefore).isSubset(of: Set(pvcsAfter)), "no PersistentVolumeClaim is ever deleted")

        // The spec re-added: the cluster comes back on the same volume and the same credentials.
        try write(["pg.yaml": postgres])
        let readded = try apply()
        #expect(readded.status == 0, "\(readded.stdout)\(readded.stderr)")
        #expect(lines(readded, "unchanged").contains("Secret/\(ns)/app.pg.credentials.postgresql.acid.zalan.do unchanged"))
        #expect(try await client.get(secret)["data", "password"]?.stringValue == password)
        var pod: JSONValue?
        for _ in 0..<600 where pod == nil {
            pod = try? await client.get(ObjectReference(apiVersion: "v1", kind: "Pod", namespace: ns, name: "pg-0"))
            if pod == nil { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(pod != nil, "the recreated StatefulSet made no pod")
        #expect(try await client.get(claim)["metadata", "uid"]?.stringValue == claimUID, "the same volume claim, not a new one")
    }

    /// The four example clusters, moved to this test's namespace.
    func examples() -> [String: String?] {
        var files: [String: String?] = [:]
        for name in Repo.exampleFiles {
            var text = Repo.read(Repo.clusters.appendingPathComponent(name))
            for old in ["esdb", "aerospike"] { text = text.replacingOccurrences(of: "\n  namespace: \(old)\n", with: "\n") }
            let metadata = text.range(of: "\nmetadata:\n")!
            text.insert(contentsOf: "  namespace: \(ns)\n", at: metadata.upperBound)
            files["clusters/" + name] = text
        }
        return files
    }

    @Test func convergesTheFourExamplesFromAGitRepository() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        let origin = try OriginRepository()
        try origin.commit(examples().merging(["README.md": "not a spec"]) { a, _ in a })
        let arguments = ["apply", "--repo", "file://" + origin.bare, "--path", "clusters", "--cache-dir", dir.file("cache"),
                         "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns]

        let first = try run(CLITests.binary, arguments + ["--output", "json"])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        let result = try JSONValue.parse(Array(first.stdout.utf8))
        #expect(result["summary", "created"] == 47, "\(first.stdout)")
        #expect(result["summary", "failed"] == 0)
        let clusters = result["clusters"]?.arrayValue ?? []
        #expect(clusters.compactMap { $0["name"]?.stringValue }.sorted() == ["acid-minimal-cluster", "aerocluster", "esdb-cluster", "example-atomixcluster"])
        #expect(clusters.allSatisfy { $0["phase"] == "Progressing" && $0["namespace"]?.stringValue == ns }, "\(first.stdout)")
        #expect(clusters.first { $0["name"] == "esdb-cluster" }?["file"] == "clusters/esdb-cluster.yaml")
        #expect(clusters.reduce(0) { $0 + ($1["objects"]?.arrayValue?.count ?? 0) } == 47)
        #expect(!first.stdout.contains("\"password\""), "no Secret data in the result")

        let second = try run(CLITests.binary, arguments)
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        #expect(second.stdout.hasSuffix("0 created, 0 configured, 47 unchanged, 0 restarted, 0 pruned, 0 kept, 0 blocked, 0 failed\n"), "\(second.stdout)")
        // Without a kubelet no pod becomes Ready: every cluster is waiting for its pods, not failed.
        for name in ["acid-minimal-cluster", "aerocluster", "esdb-cluster", "example-atomixcluster"] {
            #expect(second.stdout.contains("cluster \(ns)/\(name): Progressing (StatefulSet \(name)"), "\(second.stdout)")
        }

        // cairn plan --live: the head revision against the live cluster. Converged: no change.
        let planArguments = ["plan", "--repo", "file://" + origin.bare, "--path", "clusters", "--cache-dir", dir.file("cache"), "--live",
                             "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns]
        let converged = try run(CLITests.binary, planArguments)
        #expect(converged.status == 0, "\(converged.stdout)\(converged.stderr)")
        #expect(converged.stdout.hasSuffix("no change to any rendered object\n"), "\(converged.stdout)")
        // Drift shows, and a spec removed from the head shows as a deletion that keeps volumes.
        _ = try await client.apply(["apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": ["name": "esdb-cluster", "namespace": .string(ns)], "spec": ["replicas": 5]],
                                   fieldManager: "kubectl-edit", force: true)
        try origin.commit(["clusters/acid-minimal-cluster.yaml": nil])
        let drift = try run(CLITests.binary, planArguments)
        #expect(drift.status == 1, "\(drift.stdout)\(drift.stderr)")
        #expect(drift.stdout.contains("~ StatefulSet/\(ns)/esdb-cluster changed: spec.replicas: 5 -> 3"), "\(drift.stdout)")
        #expect(drift.stdout.contains("cluster \(ns)/acid-minimal-cluster ((no spec file)): deleted"), "\(drift.stdout)")
        #expect(drift.stdout.contains("- StatefulSet/\(ns)/acid-minimal-cluster deleted: pruned; its PersistentVolumeClaims are kept"))
        let secret = ObjectReference(apiVersion: "v1", kind: "Secret", namespace: ns, name: "zalando.acid-minimal-cluster.credentials.postgresql.acid.zalan.do")
        let password = try #require(try await client.get(secret)["data", "password"]?.stringValue)
        #expect(!drift.stdout.contains(password), "no Secret value in a live plan")
    }
}
