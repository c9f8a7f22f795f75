import ClusterSpecs
import Foundation
import KubeAPI
import Reconcile
import Render
import Testing

/// A pass over some clusters (the daemon on a commit that touched them) reads only what those
/// clusters' namespaces hold: the API server reads every object of a kind in the namespace a
/// LIST names before it applies the label selector, so LISTing the fleet's namespaces made a
/// one-cluster pass cost what the fleet holds (a webhook's push-to-applied at 1,000 clusters
/// in four namespaces was 0.9 s, 0.1 s since).
@Suite("a scoped pass", .enabled(if: !ControlPlane.skip))
struct ScopedPassTests {
    let plane: ControlPlane
    let namespaces = (0..<3).map { "scoped-\($0)-\(UInt32.random(in: 0...UInt32.max))" }

    init() throws { plane = try ControlPlane.shared() }

    func esdb(_ name: String, _ namespace: String, projections: String = "System") -> DesiredState.File {
        DesiredState.File(path: "clusters/\(namespace)-\(name).yaml", text: IsolationTests.esdb(name, namespace: namespace, projections: projections))
    }

    func state(_ files: [DesiredState.File], _ previous: DesiredState? = nil) -> DesiredState {
        DesiredState(files: files, options: RenderOptions(podDisruptionBudgetAPIVersion: "policy/v1beta1"), previous: previous)
    }

    @Test func listsOnlyTheNamespacesOfItsClustersAndTouchesNothingElse() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        var options = Reconciler.Options()
        options.namespaceAllow = Set(namespaces)
        let reconciler = Reconciler(client: client, options: options)
        func lists(_ body: () async throws -> Reconciler.Result) async throws -> (Int, Reconciler.Result) {
            let before = client.requestCounts["list"] ?? 0
            let result = try await body()
            return ((client.requestCounts["list"] ?? 0) - before, result)
        }
        let files = namespaces.map { esdb("es", $0) }
        let first = state(files)
        let (_, created) = try await lists { try await reconciler.reconcile(first) }
        #expect(created.objects.filter { $0.action == .failed }.isEmpty, "\(created.objects)")
        let (full, again) = try await lists { try await reconciler.reconcile(first) }
        #expect(again.objects.allSatisfy { $0.action == .unchanged }, "\(again.objects)")

        // One cluster changed: its namespace's LISTs only, a third of a full pass's.
        let target = "\(namespaces[1])/es"
        let second = state([files[0], esdb("es", namespaces[1], projections: "All"), files[2]], first)
        let (scoped, changed) = try await lists { try await reconciler.reconcile(second, scope: [target]) }
        #expect(scoped > 0 && scoped * 3 == full, "LISTs: \(scoped) for one cluster, \(full) for a full pass over three namespaces")
        let written = changed.objects.filter { $0.action != .unchanged }.map(\.reference)
        #expect(written.contains("StatefulSet/\(namespaces[1])/es") && written.contains { $0.hasPrefix("ConfigMap/\(namespaces[1])/") },
                "\(changed.objects)")
        #expect(changed.objects.allSatisfy { $0.cluster == target }, "\(changed.objects)")

        // Its spec removed: pruned from its namespace, the others' objects untouched.
        let third = state([files[0], files[2]], second)
        let (_, removed) = try await lists { try await reconciler.reconcile(third, scope: [target]) }
        let pruned = removed.objects.filter { $0.action == .pruned }.map(\.reference)
        #expect(!pruned.isEmpty && pruned.allSatisfy { $0.contains("/\(namespaces[1])/") }, "\(removed.objects)")
        for ns in [namespaces[0], namespaces[2]] {
            _ = try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: "es"))
        }

        // Without --namespace-allow, a pass over one cluster LISTs its namespace, not the cluster.
        let everywhere = Reconciler(client: client, options: Reconciler.Options())
        let fourth = state([files[0], esdb("es", namespaces[2], projections: "All")], third)
        let (unrestricted, result) = try await lists { try await everywhere.reconcile(fourth, scope: ["\(namespaces[2])/es"]) }
        #expect(unrestricted == scoped, "LISTs without --namespace-allow: \(unrestricted), with: \(scoped)")
        #expect(result.objects.allSatisfy { $0.cluster == "\(namespaces[2])/es" }, "\(result.objects)")
    }

    /// A pass runs `Options.clustersInFlight` clusters' pipelines at a time (the rest wait for a
    /// place, holding nothing): every cluster of a larger fleet is still applied, and reported once.
    @Test func aPassOverMoreClustersThanRunAtOnceAppliesEveryOne() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        let ns = namespaces[0]
        var options = Reconciler.Options()
        options.namespaceAllow = [ns]
        options.clustersInFlight = 3
        let count = 8
        let files = (0..<count).map { esdb("es-\($0)", ns) }
        let reconciler = Reconciler(client: client, options: options)
        let first = try await reconciler.reconcile(state(files))
        #expect(first.objects.filter { $0.action == .failed }.isEmpty, "\(first.objects.filter { $0.action == .failed })")
        let sets = first.objects.filter { $0.reference.hasPrefix("StatefulSet/") && $0.action == .created }
        #expect(Set(sets.map(\.reference)).count == count && sets.count == count, "\(sets.count) StatefulSets created of \(count)")
        #expect(Set(first.clusters.map(\.cluster)).count == count)
        let live = try await client.list(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, labelSelector: "app.kubernetes.io/managed-by=cairn")
        #expect(live.count == count)
        let again = try await reconciler.reconcile(state(files))
        #expect(again.objects.allSatisfy { $0.action == .unchanged }, "\(again.objects.filter { $0.action != .unchanged })")
    }

    /// A pass applies a rendered object's own bytes and does not read the response; the
    /// server's refusal still comes back as its error, naming the object.
    @Test func applyingEncodedBytesWritesThemAndReportsTheServersError() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        let ns = namespaces[1]
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        let ref = ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "encoded")
        try await client.apply(encoded: Array(#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"encoded","namespace":"\#(ns)"},"data":{"k":"v"}}"#.utf8),
                               reference: ref, fieldManager: "cairn")
        let live = try await client.get(ref)
        #expect(live["data", "k"] == "v")
        #expect(live["metadata", "managedFields"]?.arrayValue?.first?["manager"] == "cairn")
        let bad = ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "Bad_Name")
        do {
            try await client.apply(encoded: Array(#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name","namespace":"\#(ns)"}}"#.utf8),
                                   reference: bad, fieldManager: "cairn")
            Issue.record("an invalid name was applied")
        } catch {
            #expect(error.reason == .invalid, "\(error)")
            #expect(error.description.contains("ConfigMap/\(ns)/Bad_Name"), "\(error)")
        }
    }
}
