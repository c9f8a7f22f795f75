import ClusterSpecs
import Foundation
import KubeAPI
import Testing

/// One cluster's failure never holds back another: clusters the API server refuses (a
/// ResourceQuota, a validating admission webhook, a missing namespace) beside healthy ones,
/// against the real control plane.
@Suite("per-cluster isolation", .enabled(if: !ControlPlane.skip))
struct IsolationTests {
    let plane: ControlPlane
    let ns = "iso-\(UInt32.random(in: 0...UInt32.max))"
    let dir = TemporaryDirectory("cairn-isolation")

    init() throws {
        plane = try ControlPlane.shared()
    }

    static func esdb(_ name: String, namespace: String, projections: String = "System") -> String {
        """
        apiVersion: kubernetes.kurrent.io/v1
        kind: KurrentDB
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
          replicas: 1
          image: eventstore/eventstore:23.10.2-bookworm-slim
          storage: {resources: {requests: {storage: 1Gi}}}
          configuration: {RunProjections: \(projections)}

        """
    }

    func write(_ files: [String: String?]) throws {
        for (name, text) in files {
            if let text { try text.write(toFile: dir.file(name), atomically: true, encoding: .utf8) } else { try FileManager.default.removeItem(atPath: dir.file(name)) }
        }
    }

    func apply(_ namespaces: [String], _ extra: [String] = []) throws -> (ProcessResult, JSONValue?) {
        let r = try run(CLITests.binary, ["apply", dir.path, "--kubeconfig", plane.kubeconfig, "--namespace-allow", namespaces.joined(separator: ","), "-o", "json"] + extra)
        return (r, try? JSONValue.parse(Array(r.stdout.utf8)))
    }

    static func cluster(_ json: JSONValue?, _ identity: String) -> JSONValue? {
        json?["clusters"]?.arrayValue?.first { "\($0["namespace"]?.stringValue ?? "")/\($0["name"]?.stringValue ?? "")" == identity }
    }

    static func actions(_ cluster: JSONValue?) -> [String: String] {
        var out: [String: String] = [:]
        for o in cluster?["objects"]?.arrayValue ?? [] { out[o["object"]?.stringValue ?? ""] = o["action"]?.stringValue }
        return out
    }

    /// A namespace whose ResourceQuota allows no ConfigMap. The test control plane runs no
    /// resourcequota controller, so the quota's status (what admission enforces) is set here.
    static func quotaNamespace(_ name: String, client: KubeClient) async throws {
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(name)]], fieldManager: "cairn-test")
        let quota: JSONValue = ["apiVersion": "v1", "kind": "ResourceQuota", "metadata": ["name": "no-configmaps", "namespace": .string(name)],
                                "spec": ["hard": ["count/configmaps": "0"]]]
        _ = try await client.apply(quota, fieldManager: "cairn-test")
        _ = try await client.patchStatus(ObjectReference(quota)!, ["status": ["hard": ["count/configmaps": "0"], "used": ["count/configmaps": "0"]]])
    }

    /// A ValidatingWebhookConfiguration that sends the webhook the StatefulSets of one cluster
    /// (by its instance label) in one namespace.
    static func denyStatefulSets(of cluster: String, namespace: String, webhook: AdmissionWebhook, client: KubeClient,
                                 timeoutSeconds: Int = 5) async throws -> ObjectReference {
        let name = "cairn-test-deny-\(namespace)"
        let body: JSONValue = [
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": ["name": .string(name)],
            "webhooks": [[
                "name": "deny.cairn.test", "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": .int(timeoutSeconds),
                "clientConfig": ["url": .string("https://127.0.0.1:\(webhook.port)/validate"), "caBundle": .string(webhook.caBundle)],
                "rules": [["apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["statefulsets"], "operations": ["CREATE", "UPDATE"]]],
                "namespaceSelector": ["matchLabels": ["kubernetes.io/metadata.name": .string(namespace)]],
                "objectSelector": ["matchLabels": ["app.kubernetes.io/instance": .string(cluster)]],
            ]],
        ]
        _ = try await client.apply(body, fieldManager: "cairn-test")
        return ObjectReference(body)!
    }

    @Test func refusedClustersNeitherStopNorDelayTheOthers() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        let quotaNS = ns + "-q"
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns), "labels": ["kubernetes.io/metadata.name": .string(ns)]]],
                                   fieldManager: "cairn-test")
        try await Self.quotaNamespace(quotaNS, client: client)
        let webhook = try AdmissionWebhook(message: "denied by the test policy: no StatefulSet for this cluster")
        defer { webhook.stop() }
        let hook = try await Self.denyStatefulSets(of: "denied", namespace: ns, webhook: webhook, client: client)
        defer { Task { try? await client.delete(hook) } }

        try write(["a.yaml": Self.esdb("a", namespace: ns), "b.yaml": Self.esdb("b", namespace: ns),
                   "quota.yaml": Self.esdb("quota", namespace: quotaNS), "denied.yaml": Self.esdb("denied", namespace: ns)])
        let (first, json) = try apply([ns, quotaNS])
        #expect(first.status == 1, "a refused cluster makes the pass fail: \(first.stderr)")
        for name in ["a", "b"] {
            let c = Self.cluster(json, "\(ns)/\(name)")
            #expect(c?["phase"]?.stringValue == "Progressing", "\(name): \(first.stdout)")
            #expect(Self.actions(c)["StatefulSet/\(ns)/\(name)"] == "created")
        }
        // The quota refuses the ConfigMap: that cluster stops there, with the server's message.
        let quota = Self.cluster(json, "\(quotaNS)/quota")
        #expect(quota?["phase"]?.stringValue == "Degraded")
        #expect(Self.actions(quota)["ConfigMap/\(quotaNS)/quota-config"] == "failed")
        #expect(Self.actions(quota)["StatefulSet/\(quotaNS)/quota"] == nil, "a stage after a failed one is not applied")
        let quotaReasons = quota?["reasons"]?.arrayValue?.compactMap(\.stringValue).joined(separator: "; ") ?? ""
        #expect(quotaReasons.contains("exceeded quota: no-configmaps"), "\(quotaReasons)")
        // The webhook denies the StatefulSet; what the cluster's earlier stages hold is applied.
        let denied = Self.cluster(json, "\(ns)/denied")
        #expect(denied?["phase"]?.stringValue == "Degraded")
        #expect(Self.actions(denied)["ConfigMap/\(ns)/denied-config"] == "created")
        #expect(Self.actions(denied)["StatefulSet/\(ns)/denied"] == "failed")
        #expect(denied?["reasons"]?.arrayValue?.contains { $0.stringValue?.contains("denied by the test policy") == true } == true, "\(first.stdout)")

        // In the next pass the healthy clusters change and go as if the others were not there:
        // a configuration change rolls a, b's removal prunes it.
        try write(["a.yaml": Self.esdb("a", namespace: ns, projections: "All"), "b.yaml": nil])
        let hashBefore = try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: "a"))["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"]
        let (second, json2) = try apply([ns, quotaNS])
        #expect(second.status == 1)
        let a = Self.actions(Self.cluster(json2, "\(ns)/a"))
        #expect(a["ConfigMap/\(ns)/a-config"] == "configured" && a["StatefulSet/\(ns)/a"] == "configured", "\(second.stdout)")
        let hashAfter = try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: "a"))["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"]
        #expect(hashBefore != nil && hashAfter != nil && hashBefore != hashAfter, "the configuration change rolls a's pods")
        let pruned = (json2?["otherObjects"]?.arrayValue ?? []).filter { $0["action"]?.stringValue == "pruned" }.compactMap { $0["object"]?.stringValue }
        #expect(Set(pruned) == ["ConfigMap/\(ns)/b-config", "Service/\(ns)/b", "PodDisruptionBudget/\(ns)/b-pdb", "StatefulSet/\(ns)/b"], "\(second.stdout)")
        #expect(Self.cluster(json2, "\(quotaNS)/quota")?["phase"]?.stringValue == "Degraded")
        #expect(Self.cluster(json2, "\(ns)/denied")?["phase"]?.stringValue == "Degraded")

        // The refused cluster's spec removed: what it had is pruned like any other's.
        try write(["denied.yaml": nil])
        let (third, json3) = try apply([ns, quotaNS])
        let prunedDenied = (json3?["otherObjects"]?.arrayValue ?? []).filter { $0["action"]?.stringValue == "pruned" }.compactMap { $0["object"]?.stringValue }
        #expect(Set(prunedDenied) == ["ConfigMap/\(ns)/denied-config", "Service/\(ns)/denied", "PodDisruptionBudget/\(ns)/denied-pdb"], "\(third.stdout)")
    }

    @Test func createsAMissingNamespaceUnlessToldNot() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        let fresh = ns + "-new"
        let labelled = ns + "-lab"
        let forbidden = ns + "-none"
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        try write(["old.yaml": Self.esdb("old", namespace: ns), "new.yaml": Self.esdb("new", namespace: fresh)])
        let (created, json) = try apply([ns, fresh])
        #expect(created.status == 0, "\(created.stdout)\(created.stderr)")
        #expect(Self.actions(Self.cluster(json, "\(fresh)/new"))["Namespace/\(fresh)"] == "created", "\(created.stdout)")
        let namespace = try await client.get(ObjectReference(apiVersion: "v1", kind: "Namespace", namespace: nil, name: fresh))
        #expect(namespace["metadata", "labels", "app.kubernetes.io/managed-by"]?.stringValue == "cairn")
        #expect(namespace["metadata", "labels", "cairn.dev/created-namespace"]?.stringValue == "true")
        _ = try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: fresh, name: "new"))

        // A Namespace document beside the cluster: its labels and annotations, with cairn's, on
        // the namespace cairn creates.
        let document = """
            apiVersion: v1
            kind: Namespace
            metadata:
              name: \(labelled)
              labels: {pod-security.kubernetes.io/enforce: baseline, team: storage}
              annotations: {owner: dba@example.com}
            ---

            """
        try write(["lab.yaml": document + Self.esdb("lab", namespace: labelled)])
        let (withDocument, json3) = try apply([ns, fresh, labelled])
        #expect(withDocument.status == 0 && Self.actions(Self.cluster(json3, "\(labelled)/lab"))["Namespace/\(labelled)"] == "created",
                "\(withDocument.stdout)\(withDocument.stderr)")
        let made = try await client.get(ObjectReference(apiVersion: "v1", kind: "Namespace", namespace: nil, name: labelled))
        #expect(made["metadata", "labels"] == ["app.kubernetes.io/managed-by": "cairn", "cairn.dev/created-namespace": "true",
                                               "kubernetes.io/metadata.name": .string(labelled),
                                               "pod-security.kubernetes.io/enforce": "baseline", "team": "storage"]
                || made["metadata", "labels"] == ["app.kubernetes.io/managed-by": "cairn", "cairn.dev/created-namespace": "true",
                                                  "pod-security.kubernetes.io/enforce": "baseline", "team": "storage"],
                "\(made["metadata", "labels"]?.canonicalJSON() ?? "")")
        #expect(made["metadata", "annotations", "owner"] == "dba@example.com")
        try write(["lab.yaml": nil])

        // Removing the spec prunes the cluster's objects, never the namespace it created.
        try write(["new.yaml": nil])
        let (removed, _) = try apply([ns, fresh])
        #expect(removed.status == 0, "\(removed.stdout)\(removed.stderr)")
        _ = try await client.get(ObjectReference(apiVersion: "v1", kind: "Namespace", namespace: nil, name: fresh))

        // With --no-create-namespace: that cluster's clear error; the others are applied.
        try write(["none.yaml": Self.esdb("none", namespace: forbidden), "old2.yaml": Self.esdb("old2", namespace: ns)])
        let (refused, json2) = try apply([ns, forbidden], ["--no-create-namespace"])
        #expect(refused.status == 1)
        let none = Self.cluster(json2, "\(forbidden)/none")
        #expect(none?["phase"]?.stringValue == "Degraded")
        #expect(none?["reasons"]?.arrayValue?.first?.stringValue?.contains("namespace \(forbidden) does not exist, and cairn creates none with --no-create-namespace") == true,
                "\(refused.stdout)")
        #expect(Self.actions(Self.cluster(json2, "\(ns)/old2"))["StatefulSet/\(ns)/old2"] == "created", "\(refused.stdout)")
        await #expect(throws: KubeError.self) { try await client.get(ObjectReference(apiVersion: "v1", kind: "Namespace", namespace: nil, name: forbidden)) }
    }
}
