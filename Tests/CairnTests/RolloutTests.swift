import ClusterSpecs
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import KubeAPI
import Reconcile
import Testing

/// The next-step decision of the rollouts cairn drives itself, on its own.
@Suite("rollout decisions")
struct RolloutDecisionTests {
    func set(replicas: Int = 3, updated: Int, generation: Int = 2, observed: Int = 2) -> StatefulSetProgress {
        StatefulSetProgress([
            "metadata": ["name": "pg", "generation": .int(generation)],
            "spec": ["replicas": .int(replicas), "updateStrategy": ["type": "OnDelete"]],
            "status": ["observedGeneration": .int(observed), "replicas": .int(replicas), "readyReplicas": .int(replicas),
                       "updatedReplicas": .int(updated), "currentRevision": "pg-old", "updateRevision": "pg-new"],
        ])
    }

    func pod(_ ordinal: Int, revision: String = "pg-old", ready: Bool = true, role: String? = nil, terminating: Bool = false) -> JSONValue {
        var labels: JSONObject = ["controller-revision-hash": .string(revision)]
        if let role { labels["spilo-role"] = .string(role) }
        var metadata: JSONObject = ["name": .string("pg-\(ordinal)"), "uid": .string("uid-\(ordinal)"), "labels": .object(labels)]
        if terminating { metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z" }
        return ["metadata": .object(metadata),
                "status": ["conditions": [["type": "Ready", "status": .string(ready ? "True" : "False")]]]]
    }

    func restarted(_ d: RolloutDecision) -> String? {
        if case .restart(let pod, _, _) = d { return pod }
        return nil
    }

    @Test func replicasBeforeThePrimaryHighestOrdinalFirst() {
        let pods = [pod(0), pod(1, role: "master"), pod(2)]
        #expect(restarted(RolloutDecision.next(for: set(updated: 0), pods: pods, primaryLast: true)) == "pg-2")
        let afterTwo = [pod(0), pod(1, role: "master"), pod(2, revision: "pg-new")]
        #expect(restarted(RolloutDecision.next(for: set(updated: 1), pods: afterTwo, primaryLast: true)) == "pg-0")
        let onlyPrimary = [pod(0, revision: "pg-new"), pod(1, role: "master"), pod(2, revision: "pg-new")]
        let last = RolloutDecision.next(for: set(updated: 2), pods: onlyPrimary, primaryLast: true)
        #expect(restarted(last) == "pg-1")
        if case .restart(_, let uid, let reason) = last {
            #expect(uid == "uid-1")
            #expect(reason == "rolling pg to revision pg-new: 2 of 3 pods on it; the primary, last")
        }
        // Without a primary to spare, highest ordinal first like the StatefulSet controller.
        #expect(restarted(RolloutDecision.next(for: set(updated: 0), pods: pods, primaryLast: false)) == "pg-2")
        // Patroni 4 says "primary".
        #expect(restarted(RolloutDecision.next(for: set(updated: 0), pods: [pod(0), pod(1), pod(2, role: "primary")], primaryLast: true)) == "pg-1")
    }

    @Test func oneAtATimeOnlyWhenEveryPodIsReady() {
        #expect(RolloutDecision.next(for: set(updated: 1), pods: [pod(0), pod(1), pod(2, revision: "pg-new", ready: false)], primaryLast: true)
            == .wait("pod pg-2 is not Ready yet"))
        #expect(RolloutDecision.next(for: set(updated: 1), pods: [pod(0), pod(1)], primaryLast: true)
            == .wait("StatefulSet pg: 2 of 3 pods exist"))
        #expect(RolloutDecision.next(for: set(updated: 1), pods: [pod(0), pod(1), pod(2), pod(2, terminating: true)], primaryLast: true)
            == .wait("StatefulSet pg: a pod is terminating"))
        #expect(RolloutDecision.next(for: set(updated: 0, generation: 3, observed: 2), pods: [pod(0), pod(1), pod(2)], primaryLast: true)
            == .wait("StatefulSet pg: the controller has not seen generation 3 yet"))
        #expect(RolloutDecision.next(for: set(updated: 3), pods: [pod(0, revision: "pg-new"), pod(1, revision: "pg-new"), pod(2, revision: "pg-new")], primaryLast: true) == .done)
    }

    @Test func progressFromStatusAlone() {
        #expect(set(updated: 3).settled)
        #expect(!set(updated: 2).settled)
        #expect(set(updated: 2).waitingReason == "StatefulSet pg: 2 of 3 pods on the new revision")
        let rolling = StatefulSetProgress(["metadata": ["name": "es", "generation": 1],
                                          "spec": ["replicas": 3],
                                          "status": ["observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                                                     "currentRevision": "a", "updateRevision": "b"]])
        #expect(!rolling.settled, "a RollingUpdate set is done when the controller moves currentRevision")
        let fresh = StatefulSetProgress(["metadata": ["name": "es", "generation": 1], "spec": ["replicas": 3], "status": ["observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "currentRevision": "a", "updateRevision": "a"]])
        #expect(fresh.waitingReason == "StatefulSet es: 0 of 3 pods ready")
        let creating = StatefulSetProgress(["metadata": ["name": "pg", "generation": 1], "spec": ["replicas": 3], "status": ["observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "a"]])
        #expect(creating.waitingReason == "StatefulSet pg: 1 of 3 pods exist, 0 ready")
    }
}

/// Rollouts on the real control plane: the StatefulSet controller (RollingUpdate) and cairn
/// itself (OnDelete), with the test kubelet marking pods Ready.
@Suite("rollouts end to end", .enabled(if: !ControlPlane.skip))
struct RolloutTests {
    let fx: ApplyTests

    init() throws {
        fx = try ApplyTests()
    }

    func namespace(_ client: KubeClient) async throws {
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
    }

    func statefulSet(_ client: KubeClient, _ name: String) async throws -> JSONValue {
        try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: fx.ns, name: name))
    }

    /// Marks pods Ready until every pod of the StatefulSet exists, is Ready and not terminating,
    /// and its status says so (the controller caught up; bounded); the most pods found
    /// unavailable at once meanwhile.
    @discardableResult
    func settle(_ client: KubeClient, _ set: String, selector: String, replicas: Int, until done: (JSONValue) -> Bool = { StatefulSetProgress($0).observed && StatefulSetProgress($0).ready >= StatefulSetProgress($0).replicas }) async throws -> Int {
        let kubelet = KubeletStandIn(client: client)
        var worst = 0
        for _ in 0..<600 {
            let pods = try await client.list(apiVersion: "v1", kind: "Pod", namespace: fx.ns, labelSelector: selector)
            let available = pods.filter { $0["metadata", "deletionTimestamp"] == nil && RolloutTests.isReady($0) }.count
            worst = max(worst, replicas - available)
            try await kubelet.markReady(namespace: fx.ns, selector: selector)
            if available == replicas, pods.count == replicas, done(try await statefulSet(client, set)) { return worst }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        Issue.record("StatefulSet \(set) did not settle in 30 s")
        return worst
    }

    static func isReady(_ pod: JSONValue) -> Bool {
        (pod["status", "conditions"]?.arrayValue ?? []).contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" }
    }

    @Test func configurationChangeRollsARollingUpdateSetOnePodAtATime() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        try await namespace(client)
        let spec = fx.esdb("es").replacingOccurrences(of: "replicas: 1", with: "replicas: 3")
        try fx.write(["es.yaml": spec + "  configuration: {MaxAppendSize: 1048576}\n"])
        #expect(try fx.apply().status == 0)
        let selector = "app.kubernetes.io/instance=es"
        try await settle(client, "es", selector: selector, replicas: 3) { StatefulSetProgress($0).settled }
        let before = try await statefulSet(client, "es")
        let hashBefore = before["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"]?.stringValue
        let readyPass = try fx.apply()
        #expect(readyPass.stdout.contains("cluster \(fx.ns)/es: Ready\n"), "\(readyPass.stdout)")

        try fx.write(["es.yaml": spec + "  configuration: {MaxAppendSize: 2097152}\n"])
        let changed = try fx.apply()
        #expect(changed.status == 0, "\(changed.stdout)\(changed.stderr)")
        #expect(fx.lines(changed, "configured").contains { $0.hasPrefix("StatefulSet/\(fx.ns)/es configured (spec.template.metadata.annotations[cairn.dev/config-hash]: ") }, "\(changed.stdout)")
        #expect(changed.stdout.contains("cluster \(fx.ns)/es: Progressing (StatefulSet es configured; its rollout starts)"), "\(changed.stdout)")

        let worst = try await settle(client, "es", selector: selector, replicas: 3) { s in
            StatefulSetProgress(s).settled && s["status", "currentRevision"] != before["status", "currentRevision"]
        }
        #expect(worst <= 1, "the StatefulSet controller rolls one pod at a time")
        let after = try await statefulSet(client, "es")
        #expect(after["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"]?.stringValue != hashBefore)
        let revision = try #require(after["status", "updateRevision"]?.stringValue)
        #expect(revision != before["status", "updateRevision"]?.stringValue)
        let pods = try await client.list(apiVersion: "v1", kind: "Pod", namespace: fx.ns, labelSelector: selector)
        #expect(pods.map { $0["metadata", "labels", "controller-revision-hash"]?.stringValue } == Array(repeating: revision, count: 3))
        let done = try fx.apply()
        #expect(done.stdout.contains("cluster \(fx.ns)/es: Ready\n"), "\(done.stdout)")
    }

    @Test func postgresRollsReplicasFirstThePrimaryLastOneAPodPerPass() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        try await namespace(client)
        let spec = fx.postgres.replacingOccurrences(of: "numberOfInstances: 1", with: "numberOfInstances: 3")
        try fx.write(["pg.yaml": spec])
        #expect(try fx.apply().status == 0)
        let selector = "application=spilo,cluster-name=pg"
        try await settle(client, "pg", selector: selector, replicas: 3) { StatefulSetProgress($0).settled }
        // Patroni's part: pg-1 holds the leader lock.
        _ = try await client.apply(["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "pg-1", "namespace": .string(fx.ns), "labels": ["spilo-role": "master"]]],
                                   fieldManager: "patroni", force: true)

        // A configuration change: a new config hash, so a new pod template and revision.
        try fx.write(["pg.yaml": spec.replacingOccurrences(of: "postgresql: {version: \"16\"}", with: "postgresql: {version: \"16\", parameters: {max_connections: \"200\"}}")])
        let changed = try fx.apply()
        #expect(changed.status == 0, "\(changed.stdout)\(changed.stderr)")
        #expect(fx.lines(changed, "configured").contains { $0.hasPrefix("StatefulSet/\(fx.ns)/pg configured") }, "\(changed.stdout)")
        #expect(fx.lines(changed, "restarted").isEmpty, "nothing restarts in the pass that changes the template")
        try await settle(client, "pg", selector: selector, replicas: 3)

        // Every pass is a fresh process: the rollout resumes from the pods' revision labels.
        var order: [String] = []
        var transcript = ""
        for _ in 0..<8 {
            let pass = try fx.apply()
            #expect(pass.status == 0, "\(pass.stdout)\(pass.stderr)")
            let restarted = fx.lines(pass, "restarted")
            #expect(restarted.count <= 1, "one pod per pass: \(restarted)")
            order += restarted.compactMap { $0.split(separator: " ").first.map { String($0.split(separator: "/").last!) } }
            transcript += pass.stdout
            if pass.stdout.contains("cluster \(fx.ns)/pg: Ready\n") { break }
            try await settle(client, "pg", selector: selector, replicas: 3)
        }
        #expect(order == ["pg-2", "pg-0", "pg-1"], "replicas (highest ordinal first) before the primary pg-1\n\(transcript)")
        let revision = try #require(try await statefulSet(client, "pg")["status", "updateRevision"]?.stringValue)
        let pods = try await client.list(apiVersion: "v1", kind: "Pod", namespace: fx.ns, labelSelector: selector)
        #expect(pods.allSatisfy { $0["metadata", "labels", "controller-revision-hash"]?.stringValue == revision })
    }

    @Test func aerospikeRollsRackByRack() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        try await namespace(client)
        let spec = Repo.read(Repo.clusters.appendingPathComponent("aerocluster.yaml"))
            .replacingOccurrences(of: "  namespace: aerospike\n", with: "  namespace: \(fx.ns)\n")
        try fx.write(["aero.yaml": spec])
        #expect(try fx.apply().status == 0)
        for rack in ["1", "2"] {
            try await settle(client, "aerocluster-\(rack)", selector: "aerospike.com/cr=aerocluster,aerospike.com/rack-id=\(rack)", replicas: 2) { StatefulSetProgress($0).settled }
        }
        try fx.write(["aero.yaml": spec.replacingOccurrences(of: "proto-fd-max: 15000", with: "proto-fd-max: 20000")])
        let changed = try fx.apply()
        #expect(fx.lines(changed, "configured").filter { $0.hasPrefix("StatefulSet/") }.count == 2, "\(changed.stdout)")
        for rack in ["1", "2"] {
            try await settle(client, "aerocluster-\(rack)", selector: "aerospike.com/cr=aerocluster,aerospike.com/rack-id=\(rack)", replicas: 2)
        }

        var order: [String] = []
        var transcript = ""
        for _ in 0..<10 {
            let pass = try fx.apply()
            #expect(pass.status == 0, "\(pass.stdout)\(pass.stderr)")
            order += fx.lines(pass, "restarted").compactMap { $0.split(separator: " ").first.map { String($0.split(separator: "/").last!) } }
            transcript += pass.stdout
            if pass.stdout.contains("cluster \(fx.ns)/aerocluster: Ready\n") { break }
            for rack in ["1", "2"] {
                try await settle(client, "aerocluster-\(rack)", selector: "aerospike.com/cr=aerocluster,aerospike.com/rack-id=\(rack)", replicas: 2)
            }
        }
        #expect(order == ["aerocluster-1-1", "aerocluster-1-0", "aerocluster-2-1", "aerocluster-2-0"], "rack 1 entirely before rack 2\n\(transcript)")
    }

    /// cairn killed in the middle of a pass: the next pass converges, the one after changes nothing.
    ///
    /// The pass runs through a proxy that holds every connection once the client has sent about
    /// half of what the ConfigMaps, Services and PDBs take (the traffic is TLS: bytes are all the
    /// proxy can count): cairn is then stuck mid-pass, before any StatefulSet, when it gets SIGKILL.
    @Test func killedMidPassThenConverges() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        try await namespace(client)
        var files: [String: String?] = [:]
        for i in 0..<40 { files["es\(i).yaml"] = fx.esdb("es\(i)") }
        try fx.write(files)

        let upstream = Int(try KubeConfig.load(path: fx.plane.kubeconfig).server.split(separator: ":").last!)!
        let proxyLog = fx.dir.file("proxy.log"), port = freePort()
        let early = try files.values.compactMap { $0 }.flatMap { try render($0) }.filter { $0.stage < .workloads }
        let limit = 16_384 + early.reduce(0) { $0 + $1.body.canonicalJSON().utf8.count + 300 } / 2
        let proxy = try ServerProcess("proxy", "/usr/bin/env", ["python3", "-c", RolloutTests.holdingProxy, String(upstream), String(limit), String(port)], log: proxyLog)
        defer { proxy.stop() }
        for _ in 0..<500 where (try? String(contentsOfFile: proxyLog, encoding: .utf8))?.contains("listening") != true { usleep(20_000) }
        let kubeconfig = fx.dir.file("kubeconfig-proxy")
        try Repo.read(URL(fileURLWithPath: fx.plane.kubeconfig)).replacingOccurrences(of: "127.0.0.1:\(upstream)", with: "127.0.0.1:\(port)")
            .write(toFile: kubeconfig, atomically: true, encoding: .utf8)

        let pass = try ServerProcess("cairn apply", CLITests.binary,
                                     ["apply", fx.dir.path, "--kubeconfig", kubeconfig, "--namespace-allow", fx.ns], log: fx.dir.file("killed.log"))
        defer { pass.stop() }
        for _ in 0..<1500 where (try? String(contentsOfFile: proxyLog, encoding: .utf8))?.contains("holding") != true { usleep(20_000) }
        #expect((try? String(contentsOfFile: proxyLog, encoding: .utf8))?.contains("holding") == true, "the pass never sent \(limit) bytes")
        kill(pass.pid, SIGKILL)
        pass.stop()
        let label = "app.kubernetes.io/managed-by=cairn"
        let configMaps = try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: fx.ns, labelSelector: label).count
        let sets = try await client.list(apiVersion: "apps/v1", kind: "StatefulSet", namespace: fx.ns, labelSelector: label).count
        let written = try await client.list(apiVersion: "v1", kind: "Service", namespace: fx.ns, labelSelector: label).count + configMaps
        #expect(configMaps > 0 && sets == 0, "killed mid-pass: \(configMaps) ConfigMaps, \(sets) StatefulSets")

        let again = try fx.apply()
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        #expect(fx.lines(again, "failed").isEmpty)
        #expect(fx.lines(again, "created").count >= 160 - written - 40 && fx.lines(again, "created").count < 160, "what the killed pass did not write: \(again.stdout)")
        let third = try fx.apply()
        #expect(third.stdout.contains("0 created, 0 configured, 160 unchanged, 0 restarted, 0 pruned"), "\(third.stdout)")
    }

    /// A TCP proxy that forwards until clients have sent `limit` bytes, then holds every
    /// connection (a hung server, to the client).
    static let holdingProxy = """
        import socket, threading, sys, time
        up, limit, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
        ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port)); ls.listen(64)
        print("listening", flush=True)
        lock = threading.Lock(); sent = [0]; held = [False]
        def pump(src, dst, count):
            try:
                while True:
                    data = src.recv(65536)
                    if not data: break
                    while held[0]: time.sleep(1)
                    if count:
                        with lock:
                            if sent[0] + len(data) > limit:
                                if not held[0]: print("holding", flush=True)
                                held[0] = True
                                continue
                            sent[0] += len(data)
                    dst.sendall(data)
            except OSError: pass
            try: dst.shutdown(socket.SHUT_WR)
            except OSError: pass
        while True:
            c, _ = ls.accept()
            u = socket.create_connection(("127.0.0.1", up))
            threading.Thread(target=pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=pump, args=(u, c, False), daemon=True).start()
        """
}
