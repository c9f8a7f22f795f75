import ClusterSpecs
import KubeAPI
import Reconcile
import Render
import Testing

@Suite("Plan: rendered objects against live ones")
struct PlanTests {
    static let esdb = """
        apiVersion: kubernetes.kurrent.io/v1
        kind: KurrentDB
        metadata: {name: es, namespace: NS}
        spec:
          replicas: 3
          image: eventstore/eventstore:23.10.2-bookworm-slim
          storage: {resources: {requests: {storage: 1Gi}}}
          configuration: {MaxAppendSize: 1048576}
        """

    func objects(_ yaml: String, namespace: String = "db", pdb: String = "policy/v1") throws -> [RenderedObject] {
        ClusterRenderer.render(try loadSpec(yaml.replacingOccurrences(of: "NS", with: namespace)),
                               options: RenderOptions(podDisruptionBudgetAPIVersion: pdb)).objects
    }

    @Test func missingObjectsAreCreatedAndServerFieldsIgnored() throws {
        let cm = try #require(try objects(Self.esdb).first { $0.kind == "ConfigMap" })
        #expect(Planner.plan(cm, live: nil).kind == .create)
        var live = try #require(cm.body.objectValue)
        var metadata = try #require(live["metadata"]?.objectValue)
        metadata["uid"] = "1234"
        metadata["resourceVersion"] = "77"
        metadata["annotations"] = ["someone.else/note": "kept"]
        live["metadata"] = .object(metadata)
        #expect(Planner.plan(cm, live: .object(live)).kind == .unchanged)
        var changed = live
        changed["data"] = ["eventstore.conf": "Db: /elsewhere\n"]
        let action = Planner.plan(cm, live: .object(changed))
        #expect(action.kind == .configure)
        #expect(action.reason?.hasPrefix("data[eventstore.conf]: line 1: \"Db: /elsewhere\" -> \"Db: /var/lib/eventstore/data\"") == true, "\(action.reason ?? "")")
    }

    @Test func generatedSecretsAreNeverOverwritten() throws {
        let pg = ValidationTests.postgres("  users: {app: [login]}\n")
        let secret = try #require(try objects(pg).first { $0.kind == "Secret" })
        #expect(Planner.plan(secret, live: nil).kind == .create)
        #expect(Planner.plan(secret, live: ["kind": "Secret", "data": ["username": "x", "password": "secret"]]).kind == .unchanged)
    }
}

@Suite("Plan against a real API server", .enabled(if: !ControlPlane.skip))
struct PlanIntegrationTests {
    func live(_ client: KubeClient, _ objects: [RenderedObject]) async throws -> [JSONValue] {
        var out: [JSONValue] = []
        var seen: Set<String> = []
        for o in objects where seen.insert("\(o.apiVersion) \(o.kind) \(o.namespace)").inserted {
            out += try await client.list(apiVersion: o.apiVersion, kind: o.kind, namespace: o.namespace,
                                         labelSelector: "app.kubernetes.io/managed-by=cairn")
        }
        return out
    }

    /// The rendered form is what the server stores: after an apply, every example object plans
    /// `unchanged` (no perpetual StatefulSet diff).
    @Test func appliedExamplesPlanUnchanged() async throws {
        let client = try ControlPlane.shared().client()
        defer { Task { await client.shutdown() } }
        let pdb = try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1"
        let specs = try Repo.exampleFiles.map { try loadSpec(Repo.read(Repo.clusters.appendingPathComponent($0)), file: $0) }
        let objects = ClusterRenderer.applyOrder(ClusterRenderer.renderAll(specs, options: RenderOptions(podDisruptionBudgetAPIVersion: pdb)).clusters)
        for ns in Set(objects.map(\.namespace)) {
            _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        }
        for o in objects { _ = try await client.apply(o.body, fieldManager: "cairn") }
        let actions = Planner.plan(objects, live: try await live(client, objects))
        #expect(actions.count == 47)
        for a in actions where a.kind != .unchanged { Issue.record("\(a)") }
    }

    @Test func driftIsConfiguredAndImmutableChangesAreBlocked() async throws {
        let client = try ControlPlane.shared().client()
        defer { Task { await client.shutdown() } }
        let ns = "plan-\(UInt32.random(in: 0...UInt32.max))"
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        let pdb = try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1"
        let plan = PlanTests()
        let objects = try plan.objects(PlanTests.esdb, namespace: ns, pdb: pdb)
        for o in objects { _ = try await client.apply(o.body, fieldManager: "cairn") }
        #expect(Planner.plan(objects, live: try await live(client, objects)).allSatisfy { $0.kind == .unchanged })

        // Someone else changes a field cairn owns.
        _ = try await client.apply(["apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": ["name": "es", "namespace": .string(ns)],
                                    "spec": ["replicas": 5]], fieldManager: "kubectl-edit", force: true)
        let drift = Planner.plan(objects, live: try await live(client, objects)).filter { $0.kind != .unchanged }
        #expect(drift.map(\.description) == ["StatefulSet/\(ns)/es configure: spec.replicas: 5 -> 3, changed by kubectl-edit"])

        // A storage change cannot be applied to a StatefulSet.
        let resized = try plan.objects(PlanTests.esdb.replacingOccurrences(of: "storage: 1Gi", with: "storage: 5Gi"), namespace: ns, pdb: pdb)
        let blocked = Planner.plan(resized, live: try await live(client, objects)).filter { $0.kind == .blocked }
        #expect(blocked.count == 1)
        #expect(blocked.first?.reason?.hasPrefix("spec.volumeClaimTemplates[0].spec.resources.requests.storage: \"1Gi\" -> \"5Gi\"; spec.volumeClaimTemplates is immutable") == true)
    }
}
