import ClusterSpecs
import Foundation
import KubeAPI
import Reconcile
import Render
import Testing

/// A fifth system (`FifthSystem/EchoSystem.swift`) registered with one line: planned, applied,
/// rolled and pruned by the same pipeline as the four, against the real control plane.
@Suite("a fifth system", .enabled(if: !ControlPlane.skip))
struct FifthSystemTests {
    let plane: ControlPlane
    let ns = "echo-\(UInt32.random(in: 0...UInt32.max))"
    let systems = SystemRegistry.standard.adding(EchoSystem.self)

    init() throws { plane = try ControlPlane.shared() }

    func echo(_ message: String) -> DesiredState.File {
        DesiredState.File(path: "clusters/echo.yaml", text: """
            apiVersion: test.cairn.dev/v1
            kind: Echo
            metadata: {name: hello, namespace: \(ns)}
            spec: {replicas: 2, message: "\(message)"}
            """)
    }

    func state(_ files: [DesiredState.File], _ previous: DesiredState? = nil) -> DesiredState {
        DesiredState(files: files, options: RenderOptions(podDisruptionBudgetAPIVersion: "policy/v1beta1"), previous: previous, systems: systems)
    }

    @Test func aRegisteredSystemIsPlannedAppliedRolledAndPruned() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        var options = Reconciler.Options()
        options.namespaceAllow = [ns]
        let reconciler = Reconciler(client: client, options: options, systems: systems)
        func actions(_ r: Reconciler.Result, _ action: ObjectResult.Action) -> [String] { r.objects.filter { $0.action == action }.map(\.reference) }

        // Unknown to the standard registry: a clear error, not another system's decoder.
        let unknown = DesiredState(files: [echo("hi")])
        #expect(unknown.errors.map(\.description) == [
            "clusters/echo.yaml:2:7: kind: test.cairn.dev/v1 Echo is not a cluster spec cairn knows (supported: kubernetes.kurrent.io/v1 KurrentDB, agent.atomix.io/v1alpha1 AtomixCluster, asdb.aerospike.com/v1 AerospikeCluster, acid.zalan.do/v1 postgresql)",
        ])

        // Planned.
        let first = state([echo("hi")])
        #expect(first.errors.isEmpty, "\(first.errors)")
        let plan = ChangePlan.compare(base: [], head: first.clusters)
        #expect(plan.clusters.map(\.cluster) == ["\(ns)/hello"] && plan.clusters.first?.status == .created)
        #expect(plan.clusters.first?.objects.map(\.reference) == ["ConfigMap/\(ns)/hello-message", "StatefulSet/\(ns)/hello"])

        // Applied (its namespace created on the way), then unchanged.
        let applied = try await reconciler.reconcile(first)
        #expect(Set(actions(applied, .created)) == ["Namespace/\(ns)", "ConfigMap/\(ns)/hello-message", "StatefulSet/\(ns)/hello"], "\(applied.objects)")
        let again = try await reconciler.reconcile(first)
        #expect(actions(again, .unchanged).count == 2 && actions(again, .configured).isEmpty, "\(again.objects)")

        // Rolled: a new message is a new config hash; cairn restarts one pod per pass.
        let selector = "app.kubernetes.io/instance=hello,app.kubernetes.io/name=echo"
        let kubelet = KubeletStandIn(client: client)
        func settle() async throws {
            for _ in 0..<600 {
                try await kubelet.markReady(namespace: ns, selector: selector)
                let set = try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: "hello"))
                let pods = try await client.list(apiVersion: "v1", kind: "Pod", namespace: ns, labelSelector: selector)
                if pods.count == 2, pods.allSatisfy(RolloutTests.isReady), StatefulSetProgress(set).observed, StatefulSetProgress(set).ready == 2 { return }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            Issue.record("the echo pods never settled")
        }
        try await settle()
        let second = state([echo("hello again")], first)
        #expect(second.filesRendered == 1)
        let rollout = ChangePlan.compare(base: first.clusters, head: second.clusters)
        #expect(rollout.clusters.first?.rollouts.first?.order.hasPrefix("rack hello, first: cairn restarts one pod per pass") == true,
                "\(String(describing: rollout.clusters.first?.rollouts))")
        let changed = try await reconciler.reconcile(second)
        #expect(Set(actions(changed, .configured)) == ["ConfigMap/\(ns)/hello-message", "StatefulSet/\(ns)/hello"], "\(changed.objects)")
        var restarted: [String] = []
        for _ in 0..<6 where restarted.count < 2 {
            try await settle()
            let pass = try await reconciler.reconcile(second)
            #expect(actions(pass, .restarted).count <= 1, "one pod per pass")
            restarted += actions(pass, .restarted)
        }
        #expect(restarted == ["Pod/\(ns)/hello-1", "Pod/\(ns)/hello-0"], "highest ordinal first")

        // Pruned when its spec goes (another spec keeps the directory from reading as empty).
        let other = DesiredState.File(path: "clusters/es.yaml", text: IsolationTests.esdb("es", namespace: ns))
        let removed = try await reconciler.reconcile(state([other], second))
        #expect(Set(actions(removed, .pruned)) == ["ConfigMap/\(ns)/hello-message", "StatefulSet/\(ns)/hello"], "\(removed.objects)")
    }
}
