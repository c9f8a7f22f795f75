import ClusterSpecs
import Foundation
import KubeAPI
import Testing

/// The documents beside a cluster in its spec file (upstream examples have a Secret, a
/// Certificate, a ServiceMonitor next to the cluster) applied with it, against the real control
/// plane: labelled as the cluster's, unchanged on the next pass, pruned when taken out; a kind
/// the API server does not serve is that cluster's clear error and no one else's.
@Suite("Documents beside a cluster, applied", .enabled(if: !ControlPlane.skip))
struct CompanionTests {
    let plane: ControlPlane
    let ns = "companion-\(UInt32.random(in: 0...UInt32.max))"
    let dir = TemporaryDirectory("cairn-companions")

    init() throws {
        plane = try ControlPlane.shared()
    }

    /// The Prometheus operator's ServiceMonitor as a CustomResourceDefinition that keeps any
    /// field: the test control plane has no Prometheus operator. (PodMonitor is left
    /// unregistered on purpose.)
    static func registerServiceMonitor(_ client: KubeClient) async throws {
        try await registerCRD(client, group: "monitoring.coreos.com", kind: "ServiceMonitor")
    }

    /// A namespaced CustomResourceDefinition `group/v1` of `kind` that keeps any field, waited
    /// for until its resource answers.
    static func registerCRD(_ client: KubeClient, group: String, kind: String) async throws {
        let plural = kind.lowercased() + "s"
        let crd: JSONValue = [
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": ["name": .string("\(plural).\(group)")],
            "spec": [
                "group": .string(group), "scope": "Namespaced",
                "names": ["plural": .string(plural), "singular": .string(kind.lowercased()), "kind": .string(kind), "listKind": .string(kind + "List")],
                "versions": [["name": "v1", "served": true, "storage": true,
                              "schema": ["openAPIV3Schema": ["type": "object", "x-kubernetes-preserve-unknown-fields": true]]]],
            ],
        ]
        _ = try await client.apply(crd, fieldManager: "cairn-test")
        for _ in 0..<100 {
            await client.forgetDiscovery()
            if try await client.serves("\(group)/v1") {
                // Served in discovery; wait until the resource itself answers too.
                if (try? await client.list(apiVersion: "\(group)/v1", kind: kind, namespace: "default")) != nil { return }
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw CommandFailed(description: "the \(kind) CustomResourceDefinition never became established")
    }

    func write(_ files: [String: String?]) throws {
        for (name, text) in files {
            if let text { try text.write(toFile: dir.file(name), atomically: true, encoding: .utf8) } else { try FileManager.default.removeItem(atPath: dir.file(name)) }
        }
    }

    func apply() throws -> (ProcessResult, JSONValue?) {
        let r = try run(CLITests.binary, ["apply", dir.path, "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns, "-o", "json"])
        return (r, try? JSONValue.parse(Array(r.stdout.utf8)))
    }

    func withMonitor(_ monitor: Bool, password: String = "not-a-real-password", secret: Bool = true) -> String {
        (secret ? """
        apiVersion: v1
        kind: Secret
        metadata: {name: a-passwords}
        type: Opaque
        stringData: {admin: \(password)}
        ---

        """ : "") + """
        apiVersion: v1
        kind: Service
        metadata: {name: a-metrics, labels: {app: a-metrics}}
        spec:
          ports: [{name: http, port: 2113, targetPort: 2113}]
          selector: {app.kubernetes.io/instance: a}
        ---

        """ + (monitor ? """
        apiVersion: monitoring.coreos.com/v1
        kind: ServiceMonitor
        metadata: {name: a-monitor}
        spec:
          endpoints: [{port: http, interval: 15s}]
          selector: {matchLabels: {app: a-metrics}}
        ---

        """ : "") + IsolationTests.esdb("a", namespace: ns)
    }

    @Test func appliedWithTheClusterPrunedWhenTakenOutAndAnUnservedKindFailsOnlyItsCluster() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        try await Self.registerServiceMonitor(client)
        try write([
            "a.yaml": withMonitor(true),
            // A TLS Secret without its certificate: the API server refuses it, before b's database.
            "b.yaml": """
                apiVersion: v1
                kind: Secret
                metadata: {name: b-tls}
                type: kubernetes.io/tls
                stringData: {ca.crt: not-a-certificate}
                ---

                """ + IsolationTests.esdb("b", namespace: ns),
            "c.yaml": IsolationTests.esdb("c", namespace: ns),
            // No test registers PodMonitor: a monitor that cannot be applied fails, after the database is created.
            "d.yaml": """
                apiVersion: monitoring.coreos.com/v1
                kind: PodMonitor
                metadata: {name: d-monitor}
                spec: {podMetricsEndpoints: [{port: http}], selector: {matchLabels: {app.kubernetes.io/instance: d}}}
                ---

                """ + IsolationTests.esdb("d", namespace: ns),
        ])
        let (first, json) = try apply()
        #expect(first.status == 1, "b's Secret cannot be applied: \(first.stderr)")
        let a = IsolationTests.actions(IsolationTests.cluster(json, "\(ns)/a"))
        for object in ["Secret/\(ns)/a-passwords", "Service/\(ns)/a-metrics", "ServiceMonitor/\(ns)/a-monitor", "StatefulSet/\(ns)/a"] {
            #expect(a[object] == "created", "\(object): \(a) \(first.stderr.suffix(1500)) \(first.stdout.prefix(1500))")
        }
        let b = try #require(IsolationTests.cluster(json, "\(ns)/b"))
        #expect(IsolationTests.actions(b)["Secret/\(ns)/b-tls"] == "failed", "\(b)")
        #expect(b.canonicalJSON().contains("tls.crt"), "the API server's reason: \(b.canonicalJSON())")
        #expect(IsolationTests.actions(b)["StatefulSet/\(ns)/b"] == nil, "b stopped at its Secret")
        #expect(IsolationTests.actions(IsolationTests.cluster(json, "\(ns)/c"))["StatefulSet/\(ns)/c"] == "created")
        let d = IsolationTests.actions(IsolationTests.cluster(json, "\(ns)/d"))
        #expect(d["StatefulSet/\(ns)/d"] == "created" && d["PodMonitor/\(ns)/d-monitor"] == "failed", "\(d)")
        let dCluster = IsolationTests.cluster(json, "\(ns)/d")?.canonicalJSON() ?? ""
        #expect(dCluster.contains("install the CustomResourceDefinition of PodMonitor first"), "\(dCluster)")
        // No Secret value in what apply prints.
        #expect(!first.stdout.contains("not-a-real-password") && !first.stderr.contains("not-a-real-password"))

        // Live: as written, with the cluster's labels.
        let monitor = try await client.get(ObjectReference(apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor", namespace: ns, name: "a-monitor"))
        #expect(monitor["metadata", "labels", "cairn.dev/cluster"] == "a")
        #expect(monitor["spec", "selector", "matchLabels", "app"] == "a-metrics")
        let service = try await client.get(ObjectReference(apiVersion: "v1", kind: "Service", namespace: ns, name: "a-metrics"))
        #expect(service["metadata", "labels"] == ["app": "a-metrics", "app.kubernetes.io/managed-by": "cairn", "cairn.dev/cluster": "a"])

        // The next pass finds nothing to do for a (the server's defaults are no difference).
        let (_, again) = try apply()
        let unchanged = IsolationTests.actions(IsolationTests.cluster(again, "\(ns)/a"))
        #expect(unchanged.values.allSatisfy { $0 == "unchanged" }, "\(unchanged)")

        // Taken out of the file: pruned; the rest stays.
        try write(["a.yaml": withMonitor(false)])
        let (_, pruned) = try apply()
        #expect(IsolationTests.actions(IsolationTests.cluster(pruned, "\(ns)/a"))["ServiceMonitor/\(ns)/a-monitor"] == "pruned"
                    || (pruned?["objects"]?.arrayValue ?? []).contains { $0["object"] == .string("ServiceMonitor/\(ns)/a-monitor") && $0["action"] == "pruned" },
                "\(pruned?.canonicalJSON() ?? "")")
        #expect((try? await client.get(ObjectReference(apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor", namespace: ns, name: "a-monitor"))) == nil)
        #expect(try await client.get(ObjectReference(apiVersion: "v1", kind: "Secret", namespace: ns, name: "a-passwords"))["metadata", "name"] != nil)

        // A changed value in git is applied (stringData is compared as the data it becomes).
        let secretRef = ObjectReference(apiVersion: "v1", kind: "Secret", namespace: ns, name: "a-passwords")
        try write(["a.yaml": withMonitor(false, password: "rotated")])
        let (_, rotated) = try apply()
        #expect(IsolationTests.actions(IsolationTests.cluster(rotated, "\(ns)/a"))["Secret/\(ns)/a-passwords"] == "configured", "\(rotated?.canonicalJSON() ?? "")")
        #expect(try await client.get(secretRef)["data", "admin"] == "cm90YXRlZA==")
        #expect(rotated?.canonicalJSON().contains("rotated") != true, "a Secret value in the output")

        // A Secret taken out of the file is kept: cairn never deletes one.
        try write(["a.yaml": withMonitor(false, secret: false)])
        let (_, taken) = try apply()
        let kept = (taken?["objects"]?.arrayValue ?? []) + (IsolationTests.cluster(taken, "\(ns)/a")?["objects"]?.arrayValue ?? [])
        #expect(kept.contains { $0["object"] == .string("Secret/\(ns)/a-passwords") && $0["action"] == "kept" }, "\(taken?.canonicalJSON() ?? "")")
        #expect(try await client.get(secretRef)["data", "admin"] == "cm90YXRlZA==")

        // The whole file removed: the cluster's companions go with it (its Secret stays).
        try write(["a.yaml": withMonitor(false, secret: false)])
        _ = try apply()
        try write(["a.yaml": nil])
        let (_, gone) = try apply()
        let goneObjects = gone?["otherObjects"]?.arrayValue ?? []
        #expect(goneObjects.contains { $0["object"] == .string("Service/\(ns)/a-metrics") && $0["action"] == "pruned" }, "\(gone?.canonicalJSON() ?? "")")
        #expect((try? await client.get(ObjectReference(apiVersion: "v1", kind: "Service", namespace: ns, name: "a-metrics"))) == nil)
        #expect(try await client.get(secretRef)["data", "admin"] == "cm90YXRlZA==", "cairn never deletes a Secret")
    }

    /// Objects a valid cluster no longer renders: a load balancer turned off is pruned; a rack
    /// taken out keeps its StatefulSet (deleting it would stop all its pods at once).
    @Test func whatAValidClusterNoLongerRendersIsPrunedButAStatefulSetIsKept() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        func aerospike(_ racks: String) -> String {
            """
            apiVersion: asdb.aerospike.com/v1
            kind: AerospikeCluster
            metadata: {name: aero, namespace: \(ns)}
            spec:
              size: 2
              image: aerospike/aerospike-server:7.1.0.0
              rackConfig: {racks: [\(racks)]}
              aerospikeConfig:
            \(ValidationTests.network)
                namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]

            """
        }
        let lb = IsolationTests.esdb("lb", namespace: ns).replacingOccurrences(of: "  configuration:", with: "  network: {loadBalancer: {enabled: true}}\n  configuration:")
        try write(["aero.yaml": aerospike("{id: 1}, {id: 2}"), "lb.yaml": lb])
        let (first, json) = try apply()
        #expect(first.status == 0, "\(first.stderr)")
        let created = IsolationTests.actions(IsolationTests.cluster(json, "\(ns)/aero"))
        #expect(created["StatefulSet/\(ns)/aero-2"] == "created", "\(created)")
        #expect(IsolationTests.actions(IsolationTests.cluster(json, "\(ns)/lb"))["Service/\(ns)/lb-0-lb"] == "created")

        try write(["aero.yaml": aerospike("{id: 1}"), "lb.yaml": IsolationTests.esdb("lb", namespace: ns)])
        let (second, after) = try apply()
        let all = (after?["objects"]?.arrayValue ?? []) + (after?["clusters"]?.arrayValue ?? []).flatMap { $0["objects"]?.arrayValue ?? [] }
        func action(_ object: String) -> String? { all.first { $0["object"] == .string(object) }?["action"]?.stringValue }
        #expect(action("Service/\(ns)/lb-0-lb") == "pruned", "\(second.stdout.prefix(3000))")
        #expect(action("StatefulSet/\(ns)/aero-2") == "kept", "\(second.stdout.prefix(3000))")
        #expect(try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: "aero-2"))["metadata", "name"] != nil)
        #expect((try? await client.get(ObjectReference(apiVersion: "v1", kind: "Service", namespace: ns, name: "lb-0-lb"))) == nil)
    }
}
