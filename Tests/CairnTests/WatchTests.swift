import ClusterSpecs
import Foundation
import KubeAPI
@testable import Reconcile
import Render
import Synchronization
import Testing

/// Live state from watches (#16): `cairn run` keeps its live objects by LIST + WATCH, corrects
/// drift within seconds without a resync, and survives its API server going away.
extension DaemonTests {
    func kubectl(_ arguments: [String], kubeconfig: String? = nil) throws -> ProcessResult {
        try run("/usr/bin/env", ["kubectl", "--kubeconfig", kubeconfig ?? fx.plane.kubeconfig, "-n", fx.ns] + arguments)
    }

    func log(_ name: String = "daemon.log") -> String { (try? String(contentsOfFile: logs.file(name), encoding: .utf8)) ?? "" }

    /// `kubectl scale` and `kubectl delete configmap` on cairn's objects are put back within
    /// seconds with an hour's resync, the log naming the field and who changed it; an edit of a
    /// field cairn does not own is left alone and causes no write; no pass LISTs once synced.
    @Test func driftIsCorrectedWithoutAResync() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
        try origin.commit(["clusters/es.yaml": fx.esdb("es")])
        let daemon = try start()
        defer { daemon.stop() }
        #expect(await eventually { self.statusFile("es") != nil }, "es was never applied")
        let synced = try exposition().value("cairn_kube_requests", ["operation": "list"]) ?? 0
        #expect(synced > 0)

        // kubectl scale: spec.replicas is cairn's (1); put back, and the log says who.
        let scaled = try kubectl(["scale", "statefulset/es", "--replicas=3"])
        #expect(scaled.status == 0, "\(scaled.stderr)")
        // Within the bound, with a resync of an hour: the watch brought it (how fast is measured
        // by cairn-bench daemon, not asserted here).
        #expect(await eventually(30) { try await self.statefulSet(client, "es")["spec", "replicas"] == 1 }, "the scale was not put back")
        #expect(await eventually(5) { self.log().contains("object configured") && self.log().contains("spec.replicas: 3 -> 1") },
                "the correction does not name the field and the manager:\n\(log())")
        #expect(log().contains("info drift change=\"spec.replicas: 3 -> 1\""), "\(log())")

        // kubectl delete configmap: created again.
        let configMaps = try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: fx.ns, labelSelector: "cairn.dev/cluster=es")
        let name = try #require(configMaps.first?["metadata", "name"]?.stringValue)
        let deleted = try kubectl(["delete", "configmap", name])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(await eventually(15) {
            try await client.get(ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: self.fx.ns, name: name))["metadata", "name"] != nil
        }, "the deleted ConfigMap was not created again")

        // A field cairn does not own (an annotation of someone else's): no drift, no write.
        let drifts = try exposition().total("cairn_drift_events_total") ?? 0
        let writes = log().components(separatedBy: "object configured").count + log().components(separatedBy: "object created").count
        let annotated = try kubectl(["annotate", "statefulset/es", "example.com/owner=team-a"])
        #expect(annotated.status == 0, "\(annotated.stderr)")
        try await Task.sleep(nanoseconds: 3_000_000_000)
        #expect(log().components(separatedBy: "object configured").count + log().components(separatedBy: "object created").count == writes,
                "an edit of a field cairn does not own caused a write:\n\(log())")
        #expect(try await statefulSet(client, "es")["metadata", "annotations", "example.com/owner"] == "team-a")
        #expect(try exposition().total("cairn_drift_events_total") ?? 0 == drifts, "the annotation was taken for drift:\n\(log())")

        // The corrections were passes on the cache: no LIST since the first pass synced it.
        let after = try exposition().value("cairn_kube_requests", ["operation": "list"]) ?? 0
        #expect(after == synced, "passes LISTed: \(synced) before, \(after) after")
        #expect((try exposition().total("cairn_drift_events_total") ?? 0) >= 2)
    }

    /// The same daemon with --no-watch leaves drift until the resync (what the cache changes).
    @Test func withoutWatchesDriftWaitsForTheResync() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
        try origin.commit(["clusters/es.yaml": fx.esdb("es")])
        let daemon = try start(["--no-watch"])
        defer { daemon.stop() }
        #expect(await eventually { self.statusFile("es") != nil }, "es was never applied")
        #expect(try kubectl(["scale", "statefulset/es", "--replicas=3"]).status == 0)
        try await Task.sleep(nanoseconds: 4_000_000_000)
        #expect(try await statefulSet(client, "es")["spec", "replicas"] == 3)
        #expect((try exposition().value("cairn_kube_requests", ["operation": "watch"])) == nil)
    }
}

/// The watch cache against an API server that restarts (a control plane of the test's own):
/// its watches break, resume into a fresh watch cache that no longer has their resourceVersion
/// (410 Gone), and list afresh; drift made while it was away is corrected, and nothing is pruned
/// or applied from a cache that was not live.
@Suite("live cache across an API server restart", .enabled(if: !ControlPlane.skip))
struct WatchRestartTests {
    @Test(.timeLimit(.minutes(5))) func restartRelistsAndCorrectsDriftMadeMeanwhile() async throws {
        let plane = try ControlPlane.startPrivate()
        defer { plane.stop() }
        let origin = try OriginRepository()
        let logs = TemporaryDirectory("cairn-watch-restart")
        let ns = "watch-\(UInt32.random(in: 0...UInt32.max))"
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        let spec = { (name: String) in
            "apiVersion: kubernetes.kurrent.io/v1\nkind: KurrentDB\nmetadata: {name: \(name), namespace: \(ns)}\nspec:\n  replicas: 1\n"
                + "  image: eventstore/eventstore:23.10.2-bookworm-slim\n  storage: {resources: {requests: {storage: 1Gi}}}\n"
        }
        try origin.commit(["clusters/es.yaml": spec("es"), "clusters/es2.yaml": spec("es2")])
        let port = freePort()
        let daemon = try ServerProcess("cairn run", CLITests.binary, [
            "run", "--repo", "file://" + origin.bare, "--branch", "main", "--path", "clusters", "--interval", "300ms", "--resync", "1h",
            "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns, "--metrics-address", "127.0.0.1:\(port)",
            "--cache-dir", logs.file("cache"),
        ], log: logs.file("daemon.log"))
        defer { daemon.stop() }
        func statefulSet(_ name: String) async throws -> JSONValue {
            try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: name))
        }
        func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if (try? await condition()) == true { return true }
                try? await Task.sleep(nanoseconds: 200_000_000)
            }
            return false
        }
        func log() -> String { (try? String(contentsOfFile: logs.file("daemon.log"), encoding: .utf8)) ?? "" }
        #expect(await eventually(60) { try await statefulSet("es2")["spec", "replicas"] == 1 }, "never applied:\n\(log())")
        try await Task.sleep(nanoseconds: 1_000_000_000)

        // The API server restarts; while it is away and just after, someone scales es.
        let before = try await client.listVersioned(apiVersion: "v1", kind: "ConfigMap", namespace: ns).resourceVersion
        try plane.restartAPIServer()
        // Its fresh watch cache no longer has what was before: a watch from there is 410 Gone.
        await #expect(throws: KubeError.self) {
            do {
                try await client.watch(apiVersion: "v1", kind: "ConfigMap", namespace: ns, labelSelector: nil, resourceVersion: before, timeoutSeconds: 5) { _ in }
            } catch {
                #expect((error as? KubeError)?.reason == .expired, "\(error)")
                throw error
            }
        }
        let scaled = try run("/usr/bin/env", ["kubectl", "--kubeconfig", plane.kubeconfig, "-n", ns, "scale", "statefulset/es", "--replicas=4"])
        #expect(scaled.status == 0, "\(scaled.stderr)")
        #expect(await eventually(60) { try await statefulSet("es")["spec", "replicas"] == 1 }, "drift made across the restart was not corrected:\n\(log())")
        // Both clusters' objects are there, nothing pruned.
        #expect(try await client.list(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns).count == 2)
        #expect(!log().contains("object pruned"), "\(log())")
        let metrics = try Exposition(try run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/metrics"]).stdout)
        #expect((metrics.value("cairn_kube_requests", ["operation": "watch"]) ?? 0) > 8, "the watches were not resumed")
        #expect((metrics.value("cairn_live_cache", ["count": "relists"]) ?? 0) >= 1, "no relist after 410 Gone:\n\(log())")
        #expect((metrics.value("cairn_live_cache", ["count": "broken"]) ?? 0) >= 1)
    }

    /// The cache lists, then follows events: an object applied after the list is in the next
    /// snapshot without a LIST, a deletion of a desired object is reported as drift, and an
    /// object of another field manager's change to a field cairn renders names that manager.
    @Test func theCacheFollowsEventsAndReportsDrift() async throws {
        let client = try ControlPlane.shared().client()
        defer { Task { await client.shutdown() } }
        let ns = "cache-\(UInt32.random(in: 0...UInt32.max))"
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        let spec = try ClusterSpecLoader.load("""
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: es, namespace: \(ns)}
            spec: {replicas: 1, image: "eventstore/eventstore:23.10.2-bookworm-slim", storage: {resources: {requests: {storage: 1Gi}}}}
            """, file: "es.yaml")
        let rendered = ClusterRenderer.render(spec, options: RenderOptions(podDisruptionBudgetAPIVersion: "policy/v1beta1"))
        let configMap = try #require(rendered.objects.first { $0.kind == "ConfigMap" })
        let drifts = DriftLog()
        let cache = LiveCache(client: client, watchTimeoutSeconds: 2) { drifts.add($0) }
        defer { cache.stop() }
        cache.setDesired([rendered])
        let target = LiveCache.Target(apiVersion: "v1", kind: "ConfigMap", namespace: ns)
        cache.track([target])
        await cache.waitUntilListed([target], timeout: .seconds(30))
        #expect(cache.snapshot([target]).notLive.isEmpty)
        #expect(cache.snapshot([target]).objects.isEmpty)

        _ = try await client.apply(configMap.body, fieldManager: "cairn")
        func until(_ condition: () -> Bool) async -> Bool {
            for _ in 0..<100 where !condition() { try? await Task.sleep(nanoseconds: 100_000_000) }
            return condition()
        }
        #expect(await until { cache.snapshot([target]).objects.count == 1 }, "the applied ConfigMap never reached the cache")
        #expect(drifts.all.isEmpty, "cairn's own apply was taken for drift: \(drifts.all)")

        // Another manager changes a value cairn renders: drift, naming it.
        var changed = configMap.body.objectValue!
        let key = try #require(configMap.body["data"]?.objectValue?.keys.first)
        changed["data"] = .object([key: "changed by hand"])
        _ = try await client.apply(.object(changed), fieldManager: "someone", force: true)
        #expect(await until { drifts.all.contains { $0.reference == configMap.reference && $0.what.contains("changed by someone") } },
                "\(drifts.all)")
        // Deleted: drift.
        try await client.delete(try #require(ObjectReference(configMap.body)))
        #expect(await until { drifts.all.contains { $0.what == "deleted" } }, "\(drifts.all)")
        #expect(await until { cache.snapshot([target]).objects.isEmpty })
        // Resumed after each 2 s watch, never listed again.
        try await Task.sleep(nanoseconds: 2_500_000_000)
        #expect(cache.counters.lists == 1)
        #expect(cache.counters.watches >= 2)
    }
}

extension WatchRestartTests {
    /// What cairn wants of a cached object changes (a new commit), then goes (its cluster
    /// removed), then comes back: the cache reads back the object as the server has it each time
    /// (its entries left fields out against what cairn wanted and are made again).
    @Test func theCacheReadsTheSameObjectWhateverCairnWantsOfIt() async throws {
        let client = try ControlPlane.shared().client()
        defer { Task { await client.shutdown() } }
        let ns = "wants-\(UInt32.random(in: 0...UInt32.max))"
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        func rendered(_ projections: String) throws -> RenderedCluster {
            let spec = try ClusterSpecLoader.load("""
                apiVersion: kubernetes.kurrent.io/v1
                kind: KurrentDB
                metadata: {name: es, namespace: \(ns)}
                spec: {replicas: 1, image: "eventstore/eventstore:23.10.2-bookworm-slim", storage: {resources: {requests: {storage: 1Gi}}},
                       configuration: {RunProjections: \(projections)}}
                """, file: "es.yaml")
            return ClusterRenderer.render(spec, options: RenderOptions(podDisruptionBudgetAPIVersion: "policy/v1beta1"))
        }
        let first = try rendered("System")
        let configMap = try #require(first.objects.first { $0.kind == "ConfigMap" })
        let cache = LiveCache(client: client, watchTimeoutSeconds: 30)
        defer { cache.stop() }
        cache.setDesired([first])
        let target = LiveCache.Target(apiVersion: "v1", kind: "ConfigMap", namespace: ns)
        cache.track([target])
        await cache.waitUntilListed([target], timeout: .seconds(30))
        _ = try await client.apply(configMap.body, fieldManager: "cairn")
        for _ in 0..<100 where cache.snapshot([target]).objects.isEmpty { try await Task.sleep(nanoseconds: 100_000_000) }
        let seen = try #require(cache.snapshot([target]).objects.first)
        #expect(seen["data"] == configMap.body["data"], "in sync: \(seen)")
        let other = try rendered("All")
        #expect(other.objects.first { $0.kind == "ConfigMap" }?.body["data"] != configMap.body["data"], "the test changes nothing")
        for desired in [[other], [], [first], [other]] {
            cache.setDesired(desired)
            let read = cache.snapshot([target])
            #expect(read.notLive.isEmpty && read.objects.count == 1)
            #expect(read.objects.first?.canonicalJSON() == seen.canonicalJSON(), "\(desired.count) clusters wanted: \(read.objects)")
        }
    }
}

final class DriftLog: Sendable {
    private let drifts = Mutex<[LiveCache.Drift]>([])
    func add(_ d: LiveCache.Drift) { drifts.withLock { $0.append(d) } }
    var all: [LiveCache.Drift] { drifts.withLock { $0 } }
}
