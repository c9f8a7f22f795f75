import ClusterSpecs
import Foundation
import KubeAPI
import Render
import Testing

@Suite("kubeconfig: files, contexts, credentials")
struct KubeConfigTests {
    let dir = TemporaryDirectory("cairn-kubeconfig")

    func write(_ name: String, _ text: String) throws -> String {
        let path = dir.file(name)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func mergesKubeconfigFilesLikeKubectl() throws {
        let ca = try write("ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        let a = try write("a", """
            apiVersion: v1
            kind: Config
            current-context: dev
            clusters:
            - name: dev
              cluster: {server: "https://dev.example:6443", certificate-authority: ca.crt}
            users:
            - name: dev
              user: {token: dev-token}
            contexts:
            - name: dev
              context: {cluster: dev, user: dev, namespace: apps}
            """)
        let b = try write("b", """
            current-context: prod
            clusters:
            - name: dev
              cluster: {server: "https://shadowed.example"}
            - name: prod
              cluster: {server: "https://prod.example", certificate-authority-data: \(Data("PEM".utf8).base64EncodedString())}
            users:
            - name: prod
              user: {tokenFile: token}
            contexts:
            - name: prod
              context: {cluster: prod, user: prod}
            """)
        let env = ["KUBECONFIG": "\(a):\(b)", "HOME": dir.path]
        let current = try KubeConfig.load(environment: env)
        #expect(current.server == "https://dev.example:6443", "the first file's current-context and cluster win")
        #expect(current.namespace == "apps")
        #expect(current.certificateAuthority == Array("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8))
        if case .token(let t) = current.auth { #expect(t == "dev-token") } else { Issue.record("auth \(current.auth)") }
        let prod = try KubeConfig.load(context: "prod", environment: env)
        #expect(prod.server == "https://prod.example")
        #expect(prod.certificateAuthority == Array("PEM".utf8))
        if case .tokenFile(let f) = prod.auth { #expect(f == dir.file("token")) } else { Issue.record("auth \(prod.auth)") }
        #expect(ca.hasSuffix("ca.crt"))
    }

    @Test func errorsNameTheFileAndTheField() throws {
        let file = try write("bad", """
            current-context: x
            clusters:
            - name: c
              cluster: {server: "https://c.example", certificate-authority: missing.crt}
            contexts:
            - name: x
              context: {cluster: c, user: nobody}
            """)
        #expect(throws: KubeConfigError.self) { try KubeConfig.load(path: file) }
        do { _ = try KubeConfig.load(path: file) } catch {
            #expect(error.description == "\(file): clusters[c].certificate-authority: cannot read \(dir.file("missing.crt"))")
        }
        let noUser = try write("nouser", "current-context: x\nclusters: [{name: c, cluster: {server: \"https://c\"}}]\ncontexts: [{name: x, context: {cluster: c, user: nobody}}]\n")
        do { _ = try KubeConfig.load(path: noUser); Issue.record("loaded") } catch {
            #expect(error.description == "\(noUser): contexts[x].user: names no user 'nobody' defined in \(noUser)")
        }
        do { _ = try KubeConfig.load(path: noUser, context: "other"); Issue.record("loaded") } catch {
            #expect(error.description == "\(noUser): contexts: no context named 'other' (have: x)")
        }
        do { _ = try KubeConfig.load(path: dir.file("absent")); Issue.record("loaded") } catch {
            #expect(error.description == "\(dir.file("absent")): no such file")
        }
    }

    @Test func inClusterReadsTheServiceAccount() throws {
        let sa = dir.file("sa")
        try FileManager.default.createDirectory(atPath: sa, withIntermediateDirectories: true)
        try "tok\n".write(toFile: sa + "/token", atomically: true, encoding: .utf8)
        try "CA".write(toFile: sa + "/ca.crt", atomically: true, encoding: .utf8)
        try "cairn-system".write(toFile: sa + "/namespace", atomically: true, encoding: .utf8)
        let config = try KubeConfig.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: sa)
        #expect(config.server == "https://10.96.0.1:443")
        #expect(config.namespace == "cairn-system")
        #expect(throws: KubeConfigError.self) { try KubeConfig.inCluster(environment: [:], directory: sa) }
    }
}

/// The client against a real kube-apiserver + etcd (+ kube-controller-manager) on loopback.
@Suite("Kubernetes client against a real API server", .enabled(if: !ControlPlane.skip))
struct KubeClientTests {
    func namespace(_ client: KubeClient, _ name: String) async throws {
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(name)]], fieldManager: "cairn-test")
    }

    func uniqueName(_ base: String) -> String { "\(base)-\(UUID().uuidString.prefix(6).lowercased())" }

    @Test func applyingTheExamplesTwiceChangesNothing() async throws {
        let client = try ControlPlane.shared().client()
        defer { Task { await client.shutdown() } }
        let pdb = try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1"
        let specs = try Repo.exampleFiles.map { try loadSpec(Repo.read(Repo.clusters.appendingPathComponent($0)), file: $0) }
        let rendered = ClusterRenderer.renderAll(specs, options: RenderOptions(podDisruptionBudgetAPIVersion: pdb))
        let objects = ClusterRenderer.applyOrder(rendered.clusters)
        for ns in Set(objects.map(\.namespace)) { try await namespace(client, ns) }
        for o in objects { _ = try await client.apply(o.body, fieldManager: "cairn") }

        func snapshot() async throws -> [String: (rv: String, generation: Int?, managed: JSONValue?, spec: JSONValue?)] {
            var out: [String: (String, Int?, JSONValue?, JSONValue?)] = [:]
            for o in objects {
                let live = try await client.get(try #require(ObjectReference(o.body)))
                let cairnFields = live["metadata", "managedFields"]?.arrayValue?.first { $0["manager"] == "cairn" }
                var generation: Int?
                if case .int(let g)? = live["metadata", "generation"] { generation = g }
                out[o.reference] = (live["metadata", "resourceVersion"]?.stringValue ?? "", generation, cairnFields?["fieldsV1"], live["spec"])
            }
            return out
        }
        let before = try await snapshot()
        for o in objects { _ = try await client.apply(o.body, fieldManager: "cairn") }
        let after = try await snapshot()
        for o in objects {
            let (b, a) = (before[o.reference]!, after[o.reference]!)
            #expect(a.managed == b.managed && a.managed != nil, "\(o.reference): cairn's managed fields changed")
            if ["StatefulSet", "Deployment", "Job", "PodDisruptionBudget"].contains(o.kind) {
                // Controllers update these objects' status at any time; their spec must not change
                // (a Job has no generation before Kubernetes 1.21, so the spec itself is compared).
                #expect(a.generation == b.generation, "\(o.reference): generation \(b.generation ?? 0) -> \(a.generation ?? 0)")
                #expect(a.spec == b.spec && a.spec != nil, "\(o.reference): spec changed")
            } else {
                #expect(a.rv == b.rv, "\(o.reference): resourceVersion \(b.rv) -> \(a.rv)")
            }
        }
        // A dry-run leaves no trace.
        let ref = ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: "default", name: uniqueName("dry"))
        let dry = try await client.apply(["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(ref.name), "namespace": "default"], "data": ["a": "b"]],
                                         fieldManager: "cairn", dryRun: true)
        #expect(dry["data", "a"] == "b")
        await #expect(throws: KubeError.self) { try await client.get(ref) }
    }

    @Test func listReturnsEveryPage() async throws {
        let client = try ControlPlane.shared().client(concurrency: 16)
        defer { Task { await client.shutdown() } }
        let ns = uniqueName("paging")
        try await namespace(client, ns)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<1200 {
                group.addTask {
                    _ = try await client.apply(["apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": ["name": .string("cm-\(i)"), "namespace": .string(ns), "labels": ["app.kubernetes.io/managed-by": "cairn"]],
                                                "data": ["i": .string(String(i))]], fieldManager: "cairn")
                }
            }
            try await group.waitForAll()
        }
        let all = try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: ns, labelSelector: "app.kubernetes.io/managed-by=cairn", limit: 500)
        #expect(all.count == 1200)
        #expect(Set(all.compactMap { $0["metadata", "name"]?.stringValue }).count == 1200)
        #expect(all.allSatisfy { $0["kind"] == "ConfigMap" && $0["apiVersion"] == "v1" })
        #expect(try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: ns, labelSelector: "app.kubernetes.io/managed-by=other").isEmpty)
    }

    /// A kind the server does not serve says where it comes from: its group not served at all,
    /// or served without the kind (another CustomResourceDefinition of the group installed).
    @Test func anUnservedKindSaysToInstallItsDefinition() async throws {
        let client = try ControlPlane.shared().client()
        defer { Task { await client.shutdown() } }
        for (apiVersion, expected) in [("nothing.cairn.dev/v1", "the server does not serve nothing.cairn.dev/v1 at all: install the CustomResourceDefinition of Thing first"),
                                       ("apps/v1", "the server does not serve Thing in apps/v1")] {
            do {
                _ = try await client.list(apiVersion: apiVersion, kind: "Thing", namespace: "default")
                Issue.record("\(apiVersion) Thing was listed")
            } catch {
                #expect(error.reason == .notFound)
                #expect(error.description.contains(expected), "\(error.description)")
                #expect(apiVersion.contains(".") || !error.description.contains("CustomResourceDefinition"), "no hint for Kubernetes' own groups")
            }
        }
    }

    /// A pass of many clusters asks discovery for the same few group versions all at once: one
    /// request each, shared by every caller; `forget(olderThan:)` keeps what is fresh.
    @Test func concurrentCallersShareOneDiscoveryRequest() async throws {
        let client = try ControlPlane.shared().client(concurrency: 16)
        defer { Task { await client.shutdown() } }
        let kinds = [("apps/v1", "StatefulSet"), ("v1", "ConfigMap"), ("v1", "Service"), ("nothing.cairn.dev/v1", "Thing")]
        let served = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<200 {
                let (apiVersion, kind) = kinds[i % kinds.count]
                group.addTask { try await client.serves(apiVersion, kind: kind) }
            }
            return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(served == 150)
        // /api and /apis once, then apps/v1 and v1 once each (an unserved group is not asked for).
        #expect(client.requestCounts["discover"] == 4, "\(client.requestCounts)")
        await client.forgetDiscovery(olderThan: .seconds(3600))
        #expect(try await client.serves("apps/v1", kind: "StatefulSet"))
        #expect(client.requestCounts["discover"] == 4, "fresh discovery is kept")
        await client.forgetDiscovery()
        #expect(try await client.serves("apps/v1", kind: "StatefulSet"))
        #expect(client.requestCounts["discover"] == 7, "\(client.requestCounts)")
    }

    @Test func anInvalidObjectNamesItsFields() async throws {
        let client = try ControlPlane.shared().client()
        defer { Task { await client.shutdown() } }
        let name = uniqueName("bad")
        do {
            _ = try await client.apply(["apiVersion": "v1", "kind": "Service", "metadata": ["name": .string(name), "namespace": "default"],
                                        "spec": ["ports": [["port": 70000, "protocol": "TCP"]]]], fieldManager: "cairn")
            Issue.record("an invalid Service was accepted")
        } catch {
            #expect(error.reason == .invalid)
            #expect(error.code == 422)
            #expect(error.causes.contains { $0.field == "spec.ports[0].port" })
            #expect(error.description.hasPrefix("Service/default/\(name) apply failed (Invalid): "))
        }
    }

    @Test func aRestrictedUserIsForbiddenClearly() async throws {
        let client = try ControlPlane.shared().client(restricted: true)
        defer { Task { await client.shutdown() } }
        do {
            _ = try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: "default")
            Issue.record("a restricted user listed ConfigMaps")
        } catch {
            #expect(error.reason == .forbidden)
            #expect(error.description.contains("ConfigMap in default list failed (Forbidden)"))
            #expect(error.message.contains("User \"cairn-restricted\" cannot list resource \"configmaps\""))
        }
    }

    @Test func aWrongCAIsATLSErrorNeverAFallback() async throws {
        let plane = try ControlPlane.shared()
        var config = try KubeConfig.load(path: plane.kubeconfig)
        let dir = TemporaryDirectory()
        let p = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=other-ca", "-days", "1",
                                             "-keyout", dir.file("k"), "-out", dir.file("c")])
        #expect(p.status == 0)
        config.certificateAuthority = Array(FileManager.default.contents(atPath: dir.file("c"))!)
        let client = try KubeClient(config: config, maxAttempts: 3)
        defer { Task { await client.shutdown() } }
        do {
            _ = try await client.serverVersion()
            Issue.record("a server with an untrusted certificate was accepted")
        } catch {
            #expect(error.reason == .tls)
            #expect(error.description.contains("check the kubeconfig's certificate-authority"))
        }
    }

    @Test func anExecCredentialPluginProvidesTheToken() async throws {
        let plane = try ControlPlane.shared()
        let admin = try KubeConfig.load(path: plane.kubeconfig)
        guard case .token(let token) = admin.auth else { Issue.record("admin kubeconfig has no token"); return }
        let dir = TemporaryDirectory()
        let plugin = dir.file("plugin.sh")
        try writeExecutable("""
            #!/bin/sh
            case "$KUBERNETES_EXEC_INFO" in *ExecCredential*) ;; *) exit 3 ;; esac
            echo '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"\(token)"}}'
            """, to: plugin)
        var config = admin
        // Run through sh: exec'ing a file this process has just written can fail with ETXTBSY
        // while another test forks a child that inherited the write descriptor.
        config.auth = .exec(ExecConfig(command: "/bin/sh", args: [plugin], env: [], apiVersion: "client.authentication.k8s.io/v1beta1"))
        let client = try KubeClient(config: config)
        defer { Task { await client.shutdown() } }
        let version = try await client.serverVersion()
        #expect(version.major == 1 && version.minor >= 20)
    }

    /// The API server goes away (a proxy in front of it stops: connections refused), then comes
    /// back on the same address.
    @Test func anUnreachableServerIsRetriedThenReportedAndTheClientRecovers() async throws {
        let plane = try ControlPlane.shared()
        var config = try KubeConfig.load(path: plane.kubeconfig)
        let upstream = Int(config.server.split(separator: ":").last!)!
        let logs = TemporaryDirectory()
        var proxy: StallingProxy? = try StallingProxy(upstreamPort: upstream, stallAfter: 1 << 60, log: logs.file("p1"))
        let port = proxy!.port
        config.server = "https://127.0.0.1:\(port)"
        let client = try KubeClient(config: config, maxAttempts: 3)
        defer { Task { await client.shutdown() } }
        #expect(try await client.serverVersion().major == 1)

        proxy?.stop()
        proxy = nil
        let start = Date()
        do {
            _ = try await client.list(apiVersion: "v1", kind: "Namespace", namespace: nil)
            Issue.record("listed through a stopped server")
        } catch {
            #expect(error.reason == .transport)
            #expect(error.message.contains("cannot reach https://127.0.0.1:\(port)"))
            #expect(error.message.hasSuffix("(gave up after 3 attempts)"))
        }
        // Bounded, not fast: each attempt waits at most its connect timeout (5 s), which a loaded
        // 2-core machine has been seen to stretch (33 s for the 3 under the full test run).
        #expect(Date().timeIntervalSince(start) < 120, "retries are bounded")

        // A request made while the server is down succeeds once it is back, within its retries.
        let patient = try KubeClient(config: config, maxAttempts: 8)
        defer { Task { await patient.shutdown() } }
        async let namespaces = patient.list(apiVersion: "v1", kind: "Namespace", namespace: nil)
        try await Task.sleep(nanoseconds: 700_000_000)
        let restarted = try StallingProxy(port: port, upstreamPort: upstream, log: logs.file("p2"))
        defer { restarted.stop() }
        #expect(try await namespaces.contains { $0["metadata", "name"] == "kube-system" })
        #expect(try await client.serverVersion().major == 1, "the first client recovers too")
    }

    @Test func deleteHonoursPreconditions() async throws {
        let client = try ControlPlane.shared().client()
        defer { Task { await client.shutdown() } }
        let name = uniqueName("del")
        let created = try await client.apply(["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(name), "namespace": "default"]], fieldManager: "cairn")
        let ref = try #require(ObjectReference(created))
        await #expect(throws: KubeError.self) { try await client.delete(ref, uid: "00000000-0000-0000-0000-000000000000") }
        try await client.delete(ref, uid: created["metadata", "uid"]?.stringValue)
        do { _ = try await client.get(ref); Issue.record("still there") } catch { #expect(error.reason == .notFound) }
    }

    @Test func theKubeletStandInLetsARolloutProgress() async throws {
        let client = try ControlPlane.shared().client()
        defer { Task { await client.shutdown() } }
        let ns = uniqueName("rollout")
        try await namespace(client, ns)
        let yaml = """
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: es, namespace: \(ns)}
            spec:
              replicas: 3
              image: eventstore/eventstore:23.10.2-bookworm-slim
              storage: {resources: {requests: {storage: 1Gi}}}
              configuration: {MaxAppendSize: 1048576}
            """
        let pdb = try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1"
        func applyAll(_ text: String) async throws -> String {
            var hash = ""
            for o in ClusterRenderer.render(try loadSpec(text), options: RenderOptions(podDisruptionBudgetAPIVersion: pdb)).objects {
                let live = try await client.apply(o.body, fieldManager: "cairn")
                if o.kind == "StatefulSet" { hash = live["spec", "template", "metadata", "annotations", ConfigHash.annotation]?.stringValue ?? "" }
            }
            return hash
        }
        let kubelet = KubeletStandIn(client: client)
        let sts = ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: "es")
        func waitUntil(_ what: String, _ done: (JSONValue) -> Bool) async throws {
            // A bound, not a timing: 7 s alone, more beside the whole suite on two cores.
            for _ in 0..<600 {
                try await kubelet.markReady(namespace: ns, selector: "app.kubernetes.io/instance=es")
                if done(try await client.get(sts)) { return }
                try await Task.sleep(nanoseconds: 200_000_000)
            }
            Issue.record("timed out waiting for \(what): \(try await client.get(sts)["status"] ?? .null)")
        }
        let firstHash = try await applyAll(yaml)
        try await waitUntil("3 ready replicas") { $0["status", "readyReplicas"] == 3 }
        let secondHash = try await applyAll(yaml.replacingOccurrences(of: "1048576", with: "2097152"))
        #expect(firstHash != secondHash, "a configuration change changes the pod template")
        try await waitUntil("the rollout to finish") { s in
            s["status", "updatedReplicas"] == 3 && s["status", "readyReplicas"] == 3
                && s["status", "currentRevision"] == s["status", "updateRevision"] && s["status", "observedGeneration"] == 2
        }
        let pods = try await client.list(apiVersion: "v1", kind: "Pod", namespace: ns, labelSelector: "app.kubernetes.io/instance=es")
        #expect(pods.count == 3)
        #expect(pods.allSatisfy { $0["metadata", "annotations", ConfigHash.annotation]?.stringValue == secondHash })
    }
}
