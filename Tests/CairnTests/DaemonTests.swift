import ClusterSpecs
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import KubeAPI
import Testing

/// `cairn run`, the real binary, following a real git repository and applying to the real
/// control plane.
@Suite("cairn run end to end", .enabled(if: !ControlPlane.skip))
final class DaemonTests {
    let fx: ApplyTests
    let origin: OriginRepository
    let logs = TemporaryDirectory("cairn-run")
    let metricsPort = freePort()

    init() throws {
        fx = try ApplyTests()
        origin = try OriginRepository()
    }

    func start(_ extra: [String] = [], log: String = "daemon.log", port: Int? = nil, author: String = "cairn <cairn@example.com>",
               repo: String? = nil, kubeconfig: String? = nil) throws -> ServerProcess {
        try ServerProcess("cairn run", CLITests.binary, [
            "run", "--repo", repo ?? ("file://" + origin.bare), "--branch", "main", "--path", "clusters",
            "--interval", "300ms", "--resync", "1h", "--kubeconfig", kubeconfig ?? fx.plane.kubeconfig, "--namespace-allow", fx.ns,
            "--metrics-address", "127.0.0.1:\(port ?? metricsPort)", "--cache-dir", logs.file("cache-" + log),
            "--status-author", author,
        ] + extra, log: logs.file(log))
    }

    /// Waits (bounded) until `condition` holds; false if it never did.
    func eventually(_ seconds: Double = 30, _ condition: () async throws -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? await condition()) == true { return true }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        return false
    }

    func git(_ arguments: [String]) throws -> String {
        let r = try run("/usr/bin/git", ["--git-dir", origin.bare] + arguments)
        guard r.status == 0 else { throw CommandFailed(description: "git \(arguments): \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func commits(_ branch: String) -> Int { Int((try? git(["rev-list", "--count", branch])) ?? "0") ?? 0 }

    /// The status file as committed, with YAML's quotes around SHAs taken off.
    func statusFile(_ cluster: String, branch: String = "cairn-status") -> String? {
        (try? git(["show", "\(branch):status/\(fx.ns)/\(cluster).yaml"]))?.replacingOccurrences(of: "\"", with: "")
    }

    func statefulSet(_ client: KubeClient, _ name: String) async throws -> JSONValue {
        try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: fx.ns, name: name))
    }

    @Test func appliesPushedSpecsWritesStatusOnlyOnChangePrunesAndStopsOnSIGTERM() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
        let first = try origin.commit(["clusters/es.yaml": fx.esdb("es"), "clusters/es2.yaml": fx.esdb("es2")])
        let daemon = try start()
        defer { daemon.stop() }

        // A pushed spec is applied, and its status committed to the status branch.
        #expect(await eventually { try await self.statefulSet(client, "es")["metadata", "name"] != nil }, "es was never applied")
        #expect(await eventually { self.statusFile("es")?.contains("commit: \(first)") == true }, "no status commit")
        let status = try #require(statusFile("es"))
        #expect(status.contains("cluster: \(fx.ns)/es\nspec: clusters/es.yaml\ncommit: \(first)\nlastChanged: \(first)\nphase: Progressing"), "\(status)")
        #expect(try git(["log", "-1", "--format=%an <%ae>", "cairn-status"]) == "cairn <cairn@example.com>")

        // Nothing changes: no new status commit over several intervals.
        let quiet = commits("cairn-status")
        try await Task.sleep(nanoseconds: 2_000_000_000)
        #expect(commits("cairn-status") == quiet, "a status commit although nothing changed")

        // Metrics and health.
        let metrics = try exposition()
        #expect(metrics.value("cairn_reconcile_seconds_count", ["scope": "full"]) == 1)
        #expect(metrics.total("cairn_reconcile_seconds_count") == 1)
        #expect(metrics.value("cairn_last_applied_commit_info", ["commit": first]) == 1)
        #expect(metrics.value("cairn_clusters", ["phase": "Progressing"]) == 2)
        #expect(metrics.value("cairn_up") == 1)
        #expect(metrics.families.allSatisfy { !$0.help.isEmpty }, "a family without HELP")
        #expect(try run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(metricsPort)/readyz"]).status == 0)

        // Someone else pushes to the status branch meanwhile: their commit is kept.
        let other = logs.file("other")
        _ = try gitCLI(["clone", "-q", "-b", "cairn-status", origin.bare, other])
        try "notes\n".write(toFile: other + "/NOTES.md", atomically: true, encoding: .utf8)
        try gitCLI(["add", "NOTES.md"], in: other)
        try gitCLI(["commit", "-q", "-m", "a note"], in: other)
        try gitCLI(["push", "-q", "origin", "cairn-status"], in: other)

        // A configuration change rolls out: the template's config hash changes.
        let hash = try await statefulSet(client, "es")["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"]
        let second = try origin.commit(["clusters/es.yaml": fx.esdb("es") + "  configuration: {MaxAppendSize: 2097152}\n"])
        #expect(await eventually { try await self.statefulSet(client, "es")["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"] != hash },
                "the configuration change was not applied")
        #expect(await eventually { self.statusFile("es")?.contains("lastChanged: \(second)") == true })
        // Only the cluster the commit touched was looked at: es2's status still names the first commit.
        #expect(statusFile("es2")?.contains("commit: \(first)\n") == true, "\(statusFile("es2") ?? "")")
        #expect(try git(["show", "cairn-status:NOTES.md"]) == "notes", "the other push to the status branch was kept")
        // The rollout is recorded as a Kubernetes Event on the StatefulSet.
        let events = try await client.list(apiVersion: "v1", kind: "Event", namespace: fx.ns)
        #expect(events.contains { $0["involvedObject", "name"] == "es" && $0["reason"] == "RolloutStarted" && $0["source", "component"] == "cairn" },
                "no RolloutStarted event: \(events.compactMap { $0["reason"]?.stringValue })")

        // A removed spec is pruned, its volume claims kept, its status file removed.
        let pvcs = try await client.list(apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: fx.ns).count
        try origin.commit(["clusters/es2.yaml": nil])
        #expect(await eventually { (try? await self.statefulSet(client, "es2")) == nil }, "es2 was not pruned")
        #expect(try await client.list(apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: fx.ns).count >= pvcs)
        #expect(await eventually { self.statusFile("es2") == nil && self.statusFile("es") != nil }, "es2's status file is still there")

        // SIGTERM: the daemon finishes its step and exits, in bounded time.
        kill(daemon.pid, SIGTERM)
        #expect(await eventually(20) { !daemon.isRunning }, "cairn run did not exit on SIGTERM")
        let log = try String(contentsOfFile: logs.file("daemon.log"), encoding: .utf8)
        #expect(log.contains("cairn run stopped"), "\(log)")
        #expect(!log.contains("password"))
    }

    /// With a 10-minute interval, a push is applied at once when the git host calls the webhook:
    /// a burst of 100 signed webhooks asks for a few head checks and one pass; a forged one asks
    /// for nothing.
    @Test func aPushWebhookAppliesACommitWithoutWaitingForThePoll() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
        let first = try origin.commit(["clusters/hook.yaml": fx.esdb("hook")])
        try WebhookTests.secret.write(toFile: logs.file("webhook-secret"), atomically: true, encoding: .utf8)
        let hookPort = freePort()
        let daemon = try start(["--interval", "10m", "--webhook-address", "127.0.0.1:\(hookPort)",
                                "--webhook-secret-file", logs.file("webhook-secret")], log: "webhook.log")
        defer { daemon.stop() }
        func log() -> String { ((try? String(contentsOfFile: logs.file("webhook.log"), encoding: .utf8)) ?? "").suffix(3000).description }
        #expect(await eventually { self.statusFile("hook")?.contains("commit: \(first)") == true }, "the first commit was not applied: \(log())")
        #expect(waitForPort(hookPort), "no webhook receiver: \(log())")
        let checks = try #require(try metric("cairn_git_check_seconds_count"))
        let passes = try #require(try exposition().total("cairn_reconcile_seconds_count"))

        let second = try origin.commit(["clusters/hook.yaml": fx.esdb("hook") + "  configuration: {MaxAppendSize: 2097152}\n"])
        let body = WebhookTests.github()
        try body.write(toFile: logs.file("push.json"), atomically: true, encoding: .utf8)
        let url = "http://127.0.0.1:\(hookPort)/hooks/github"
        func send(_ key: String, count: Int) throws -> [String] {
            let headers = try WebhookTests.headers("github", body, key: key).flatMap { ["-H", "\($0.name): \($0.value)"] }
            let r = try run("/usr/bin/curl", ["-s", "-w", "%{http_code}\n", "--data-binary", "@" + logs.file("push.json"), "--parallel"] + headers
                            + (0..<count).flatMap { _ in ["-o", "/dev/null", url] })
            return r.stdout.split(separator: "\n").map(String.init)
        }
        // Forged: refused, and nothing is checked.
        #expect(try send("not-the-secret-0123456789", count: 1) == ["403"])
        try await Task.sleep(nanoseconds: 1_000_000_000)
        #expect(try metric("cairn_git_check_seconds_count") == checks, "a forged webhook caused a head check")
        #expect(statusFile("hook")?.contains("commit: \(first)") == true)

        #expect(try send(WebhookTests.secret, count: 100) == Array(repeating: "202", count: 100))
        #expect(await eventually(20) { self.statusFile("hook")?.contains("commit: \(second)") == true },
                "the pushed commit was not applied after the webhook: \(log())")
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let metrics = try exposition()
        #expect(metrics.value("cairn_webhooks_total", ["host": "github", "result": "push"]) == 100)
        #expect(metrics.value("cairn_webhooks_total", ["host": "github", "result": "forbidden"]) == 1)
        let burstChecks = (metrics.value("cairn_git_check_seconds_count") ?? 0) - checks
        #expect(burstChecks >= 1 && burstChecks <= 10, "head checks for a burst of 100 webhooks: \(burstChecks) (\(checks) before)")
        #expect((metrics.total("cairn_reconcile_seconds_count") ?? 0) - passes == 1, "one pass for the pushed commit")
    }

    @Test func sameBranchModeDoesNotReconcileItsOwnCommits() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
        try origin.commit(["clusters/es.yaml": fx.esdb("es")])
        let before = commits("main")
        let daemon = try start(["--status-same-branch", "--log-format", "json"], log: "same.log")
        defer { daemon.stop() }
        #expect(await eventually { self.statusFile("es", branch: "main") != nil }, "no status commit on main")
        #expect(commits("main") == before + 1)
        try await Task.sleep(nanoseconds: 2_500_000_000)
        #expect(commits("main") == before + 1, "cairn committed again after its own commit")
        #expect(try exposition().total("cairn_reconcile_seconds_count") == 1, "its own status commit triggered a pass")
        let log = try String(contentsOfFile: logs.file("same.log"), encoding: .utf8)
        #expect(log.split(separator: "\n").allSatisfy { $0.hasPrefix("{") }, "JSON log lines")
    }

    @Test func withLeaderElectionOnlyOneOfTwoActsAndTheOtherTakesOver() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
        try origin.commit(["clusters/es.yaml": fx.esdb("es")])
        let election = ["--leader-elect", "--leader-election-namespace", fx.ns, "--lease-duration", "3s"]
        let (portA, portB) = (freePort(), freePort())
        let a = try start(election, log: "a.log", port: portA, author: "cairn-a <a@example.com>")
        defer { a.stop() }
        #expect(await eventually { self.statusFile("es") != nil }, "the first replica never acted")
        let b = try start(election, log: "b.log", port: portB, author: "cairn-b <b@example.com>")
        defer { b.stop() }
        try await Task.sleep(nanoseconds: 1_500_000_000)
        try origin.commit(["clusters/es2.yaml": fx.esdb("es2")])
        #expect(await eventually { self.statusFile("es2") != nil }, "es2 was not applied")
        #expect(try git(["log", "--format=%ae", "cairn-status"]).split(separator: "\n").allSatisfy { $0 == "a@example.com" },
                "only the leader writes status")
        let follower = try Exposition(run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(portB)/metrics"]).stdout)
        #expect(follower.value("cairn_leader") == 0)
        #expect(follower.total("cairn_reconcile_seconds_count") == nil, "the follower reconciled")
        let lease = try await client.get(ObjectReference(apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespace: fx.ns, name: "cairn"))
        let leader = try #require(lease["spec", "holderIdentity"]?.stringValue)

        // The leader dies without a word: once its lease runs out, the other one acts.
        kill(a.pid, SIGKILL)
        a.stop()
        try origin.commit(["clusters/es3.yaml": fx.esdb("es3")])
        #expect(await eventually(30) { self.statusFile("es3") != nil }, "the second replica did not take over")
        #expect(try git(["log", "-1", "--format=%ae", "cairn-status"]) == "b@example.com")
        let after = try await client.get(ObjectReference(apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespace: fx.ns, name: "cairn"))
        #expect(after["spec", "holderIdentity"]?.stringValue != leader)
        #expect(after["spec", "leaseTransitions"]?.intValue == 1)
    }

    /// Two replicas behind one webhook Service: the standby is ready (a Deployment's rollout
    /// waits for it) and relays a verified push to the leader, which applies it at once; a push
    /// relayed to a standby is not relayed again.
    @Test func withLeaderElectionAStandbyRelaysWebhooksToTheLeader() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
        let first = try origin.commit(["clusters/hook.yaml": fx.esdb("hook")])
        try WebhookTests.secret.write(toFile: logs.file("webhook-secret"), atomically: true, encoding: .utf8)
        let (portA, portB, hookA, hookB) = (freePort(), freePort(), freePort(), freePort())
        func replica(_ name: String, port: Int, hook: Int) throws -> ServerProcess {
            try start(["--leader-elect", "--leader-election-namespace", fx.ns, "--lease-duration", "3s", "--interval", "10m",
                       "--webhook-address", "127.0.0.1:\(hook)", "--webhook-secret-file", logs.file("webhook-secret")],
                      log: "\(name).log", port: port, author: "cairn-\(name) <\(name)@example.com>")
        }
        func log(_ name: String) -> String { ((try? String(contentsOfFile: logs.file("\(name).log"), encoding: .utf8)) ?? "").suffix(3000).description }
        func http(_ port: Int, _ path: String) throws -> String {
            try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)\(path)"]).stdout
        }
        let a = try replica("a", port: portA, hook: hookA)
        defer { a.stop() }
        #expect(await eventually { self.statusFile("hook")?.contains("commit: \(first)") == true }, "the first replica never acted: \(log("a"))")
        let b = try replica("b", port: portB, hook: hookB)
        defer { b.stop() }
        #expect(await eventually { try http(portB, "/readyz") == "200" }, "the standby never became ready: \(log("b"))")
        #expect(try Exposition(run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(portB)/metrics"]).stdout).value("cairn_leader") == 0)
        let lease = try await client.get(ObjectReference(apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespace: fx.ns, name: "cairn"))
        #expect(lease["metadata", "annotations", "cairn.dev/webhook-url"]?.stringValue == "http://127.0.0.1:\(hookA)")
        #expect(waitForPort(hookB), "no webhook receiver on the standby: \(log("b"))")

        let second = try origin.commit(["clusters/hook.yaml": fx.esdb("hook") + "  configuration: {MaxAppendSize: 2097152}\n"])
        let body = WebhookTests.github()
        try body.write(toFile: logs.file("push.json"), atomically: true, encoding: .utf8)
        func send(_ port: Int, extra: [(name: String, value: String)] = []) throws -> String {
            let headers = try (WebhookTests.headers("github", body) + extra).flatMap { ["-H", "\($0.name): \($0.value)"] }
            return try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + logs.file("push.json")] + headers
                           + ["http://127.0.0.1:\(port)/hooks/github"]).stdout
        }
        #expect(try send(hookB) == "202", "the standby did not relay: \(log("b"))")
        #expect(await eventually(20) { self.statusFile("hook")?.contains("commit: \(second)") == true },
                "the relayed push was not applied: \(log("a"))")
        let standby = try Exposition(run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(portB)/metrics"]).stdout)
        let leader = try Exposition(run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(portA)/metrics"]).stdout)
        #expect(standby.value("cairn_webhooks_total", ["host": "github", "result": "relayed"]) == 1)
        #expect(leader.value("cairn_webhooks_total", ["host": "github", "result": "push"]) == 1)
        #expect(standby.total("cairn_reconcile_seconds_count") == nil, "the standby reconciled")
        #expect(log("b").contains("webhook: push relayed to the leader"), "\(log("b"))")

        // Relayed once only: a push relayed to a standby is answered 503, not sent on.
        #expect(try send(hookB, extra: [("X-Cairn-Relayed-By", "another-replica")]) == "503")
        #expect(try send(hookA, extra: [("X-Cairn-Relayed-By", "another-replica")]) == "202", "the leader takes a relayed push")
        #expect(try http(portA, "/readyz") == "200")
    }

    /// The git server goes away, then the API server (a proxy in front of it stops): the daemon
    /// keeps what it has, deletes nothing, and converges when each comes back on its address.
    @Test func gitAndAPIServerAwayThenBack() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
        try origin.commit(["clusters/es.yaml": fx.esdb("es"), "clusters/es2.yaml": fx.esdb("es2")])
        let base = URL(fileURLWithPath: origin.bare).deletingLastPathComponent().path
        var gitServer: GitDaemon? = try GitDaemon(base: base, log: logs.file("git1.log"))
        let gitPort = gitServer!.port
        let upstream = Int(try KubeConfig.load(path: fx.plane.kubeconfig).server.split(separator: ":").last!)!
        var proxy: StallingProxy? = try StallingProxy(upstreamPort: upstream, stallAfter: 1 << 60, log: logs.file("proxy1.log"))
        let proxyPort = proxy!.port
        let kubeconfig = logs.file("kubeconfig-proxy")
        try Repo.read(URL(fileURLWithPath: fx.plane.kubeconfig)).replacingOccurrences(of: "127.0.0.1:\(upstream)", with: "127.0.0.1:\(proxyPort)")
            .write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let daemon = try start(repo: "git://127.0.0.1:\(gitPort)/origin.git", kubeconfig: kubeconfig)
        defer { daemon.stop(); gitServer?.stop(); proxy?.stop() }
        #expect(await eventually { self.statusFile("es2") != nil }, "never applied")

        // Git away: the removal of es2 is pushed where cairn cannot see it; nothing is deleted.
        gitServer?.stop()
        gitServer = nil
        try origin.commit(["clusters/es2.yaml": nil])
        try await Task.sleep(nanoseconds: 2_000_000_000)
        #expect(try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: fx.ns, name: "es2"))["metadata", "name"] != nil)
        #expect(try String(contentsOfFile: logs.file("daemon.log"), encoding: .utf8).contains("git check failed; keeping the last good state"))
        gitServer = try GitDaemon(base: base, log: logs.file("git2.log"), port: gitPort)
        #expect(await eventually { (try? await self.statefulSet(client, "es2")) == nil }, "did not converge after git came back")

        // API server away: a configuration change waits, then lands.
        proxy?.stop()
        proxy = nil
        let hash = try await statefulSet(client, "es")["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"]
        try origin.commit(["clusters/es.yaml": fx.esdb("es") + "  configuration: {MaxAppendSize: 2097152}\n"])
        try await Task.sleep(nanoseconds: 2_000_000_000)
        #expect(try await statefulSet(client, "es")["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"] == hash)
        proxy = try StallingProxy(port: proxyPort, upstreamPort: upstream, log: logs.file("proxy2.log"))
        #expect(await eventually(40) { try await self.statefulSet(client, "es")["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"] != hash },
                "did not converge after the API server came back")
        #expect(try await client.list(apiVersion: "apps/v1", kind: "StatefulSet", namespace: fx.ns).count == 1, "es kept, es2 pruned, nothing else")
    }

    /// Pods of the Postgres StatefulSet `pg`: (on the update revision, all) after marking them Ready.
    /// `old`: the revision before the change; pods count as updated only on another one, once
    /// the controller has seen the change.
    func podsOnNewRevision(_ client: KubeClient, old: String? = nil) async throws -> (updated: Int, total: Int, ready: Bool) {
        let selector = "application=spilo,cluster-name=pg"
        try await KubeletStandIn(client: client).markReady(namespace: fx.ns, selector: selector)
        let set = try await statefulSet(client, "pg")
        let observed = (set["status", "observedGeneration"]?.intValue ?? 0) >= (set["metadata", "generation"]?.intValue ?? 1)
        var revision = set["status", "updateRevision"]?.stringValue
        if old != nil, !observed || revision == old { revision = nil }
        let pods = try await client.list(apiVersion: "v1", kind: "Pod", namespace: fx.ns, labelSelector: selector)
            .filter { $0["metadata", "deletionTimestamp"] == nil }
        let updated = pods.filter { $0["metadata", "labels", "controller-revision-hash"]?.stringValue == revision }.count
        let ready = pods.allSatisfy { pod in (pod["status", "conditions"]?.arrayValue ?? []).contains { $0["type"] == "Ready" && $0["status"] == "True" } }
        return (updated, pods.count, ready)
    }

    /// A rollout cairn drives goes on pass after pass without new commits; SIGTERM in the middle
    /// stops the daemon in bounded time, and a new daemon finishes the rollout.
    @Test func sigtermDuringARolloutThenANewDaemonFinishesIt() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns)]], fieldManager: "cairn-test")
        let spec = fx.postgres.replacingOccurrences(of: "numberOfInstances: 1", with: "numberOfInstances: 3")
        try origin.commit(["clusters/pg.yaml": spec])
        let first = try start(log: "r1.log")
        defer { first.stop() }
        #expect(await eventually(150) { let p = try await self.podsOnNewRevision(client); return p.total == 3 && p.ready }, "the cluster never came up")
        let old = try #require(try await statefulSet(client, "pg")["status", "updateRevision"]?.stringValue)

        try origin.commit(["clusters/pg.yaml": spec.replacingOccurrences(of: "postgresql: {version: \"16\"}", with: "postgresql: {version: \"16\", parameters: {max_connections: \"200\"}}")])
        #expect(await eventually(120) { try await self.podsOnNewRevision(client, old: old).updated >= 1 }, "no pod was restarted")
        kill(first.pid, SIGTERM)
        #expect(await eventually(20) { !first.isRunning }, "cairn run did not stop on SIGTERM")
        let stopped = try await podsOnNewRevision(client, old: old)
        let log = try String(contentsOfFile: logs.file("r1.log"), encoding: .utf8)
        #expect(log.contains("cairn run stopped"))

        let second = try start(log: "r2.log")
        defer { second.stop() }
        #expect(await eventually(90) { let p = try await self.podsOnNewRevision(client, old: old); return p.updated == 3 && p.total == 3 && p.ready },
                "the rollout was not finished (stopped at \(stopped.updated) of 3)")
        let restarts = try String(contentsOfFile: logs.file("r1.log"), encoding: .utf8).components(separatedBy: "object restarted").count - 1
            + (try String(contentsOfFile: logs.file("r2.log"), encoding: .utf8).components(separatedBy: "object restarted").count - 1)
        #expect(restarts == 3, "one restart per pod, across both daemons")
    }

    /// The daemon's /metrics, parsed by prometheus-client.
    func exposition() throws -> Exposition {
        try Exposition(run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(metricsPort)/metrics"]).stdout)
    }

    /// The value of one metric series, or nil.
    func metric(_ name: String, _ labels: [String: String] = [:]) throws -> Double? {
        try exposition().value(name, labels)
    }

    /// The git follower is a service of its own: while a pass waits on a slow admission webhook,
    /// a new commit is fetched at once (the pass that applies it follows the one under way).
    @Test func theFollowerFetchesWhileAPassIsUnderWay() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns), "labels": ["kubernetes.io/metadata.name": .string(fx.ns)]]],
                                   fieldManager: "cairn-test")
        let webhook = try AdmissionWebhook(message: "denied by the slow test policy", delay: 15)
        defer { webhook.stop() }
        let hook = try await IsolationTests.denyStatefulSets(of: "slow", namespace: fx.ns, webhook: webhook, client: client, timeoutSeconds: 20)
        defer { Task { try? await client.delete(hook) } }
        try origin.commit(["clusters/ok.yaml": IsolationTests.esdb("ok", namespace: fx.ns), "clusters/slow.yaml": IsolationTests.esdb("slow", namespace: fx.ns)])
        let daemon = try start(log: "follower.log")
        defer { daemon.stop() }
        // The first pass is under way: the webhook holds the slow cluster's StatefulSet for 15 s (room for a loaded machine).
        #expect(await eventually { webhook.requests.received >= 1 },
                "the webhook was never called: \((try? String(contentsOfFile: logs.file("follower.log"), encoding: .utf8))?.suffix(3000) ?? "no log")")
        #expect(try metric("cairn_git_fetch_seconds_count") == 1)
        let next = try origin.commit(["clusters/ok.yaml": IsolationTests.esdb("ok", namespace: fx.ns) + "  configuration: {MaxAppendSize: 2097152}\n"])
        #expect(await eventually(13) { try self.metric("cairn_git_fetch_seconds_count") == 2 }, "the new commit was not fetched during the pass")
        #expect(webhook.requests.answered == 0, "the pass under way had already ended: the test proves nothing")
        // And once the slow pass is over, the commit is applied.
        #expect(await eventually(60) { self.statusFile("ok")?.contains("commit: \(next)") == true }, "the fetched commit was never applied")
    }

    @Test func aRefusedClusterIsRetriedOnItsOwnBackoffWhileTheOthersFollowCommits() async throws {
        let client = try fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(fx.ns), "labels": ["kubernetes.io/metadata.name": .string(fx.ns)]]],
                                   fieldManager: "cairn-test")
        let webhook = try AdmissionWebhook(message: "denied by the test policy: stuck may not run")
        defer { webhook.stop() }
        let hook = try await IsolationTests.denyStatefulSets(of: "stuck", namespace: fx.ns, webhook: webhook, client: client)
        defer { Task { try? await client.delete(hook) } }
        try origin.commit(["clusters/ok.yaml": IsolationTests.esdb("ok", namespace: fx.ns), "clusters/stuck.yaml": IsolationTests.esdb("stuck", namespace: fx.ns)])
        let daemon = try start(log: "isolation.log")
        defer { daemon.stop() }

        #expect(await eventually { try await self.statefulSet(client, "ok")["metadata", "name"] != nil }, "ok was never applied")
        #expect(await eventually { self.statusFile("stuck")?.contains("phase: Degraded") == true }, "stuck's status never said Degraded")
        let status = try #require(statusFile("stuck"))
        #expect(status.contains("StatefulSet/\(fx.ns)/stuck") && status.contains("denied by the test policy: stuck may not run"), "\(status)")
        #expect(try run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(metricsPort)/readyz"]).status == 0, "ready while only some clusters fail")

        // Its retries back off: over 6 s at a 300 ms interval, a handful of attempts, not twenty;
        // and it is still retried (the delay doubles from 300 ms: by the time the status said
        // Degraded on a loaded machine, the next try can be 20 s or more away).
        let stuck = ["cluster": "\(fx.ns)/stuck"]
        let before = try #require(try metric("cairn_cluster_failures_total", stuck))
        try await Task.sleep(nanoseconds: 6_000_000_000)
        let after = try #require(try metric("cairn_cluster_failures_total", stuck))
        #expect(after - before <= 5, "\(after - before) failed attempts in 6 s")
        #expect(await eventually(90) { try self.metric("cairn_cluster_failures_total", stuck) ?? 0 > before }, "stuck was not retried")
        #expect(try metric("cairn_clusters", ["phase": "Degraded"]) == 1)

        // A push changing the healthy cluster is applied at the usual pace.
        let hash = try await statefulSet(client, "ok")["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"]
        try origin.commit(["clusters/ok.yaml": IsolationTests.esdb("ok", namespace: fx.ns, projections: "All")])
        #expect(await eventually(20) { try await self.statefulSet(client, "ok")["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"] != hash },
                "the healthy cluster's change was not applied")
        #expect(try exposition().total("cairn_errors_total") == nil, "a refused cluster is no failed step")
        // The gauges describe the whole fleet after a pass scoped to one cluster.
        #expect(await eventually(5) { try self.metric("cairn_clusters", ["phase": "Degraded"]) == 1 })
        let phases = try ["Ready", "Progressing", "Degraded", "Blocked", "Invalid"].map { try metric("cairn_clusters", ["phase": $0]) ?? 0 }
        #expect(phases.reduce(0, +) == 2, "\(phases)")
        // Everyone sees which cluster is stuck: an Event on the refused object, the log.
        let events = try await client.list(apiVersion: "v1", kind: "Event", namespace: fx.ns)
        #expect(events.contains { $0["involvedObject", "name"] == "stuck" && $0["reason"] == "ApplyFailed" && $0["type"] == "Warning" },
                "no ApplyFailed event: \(events.compactMap { $0["reason"]?.stringValue })")
        #expect(events.filter { $0["reason"] == "ApplyFailed" }.count == 1, "one Event per refusal, not one per retry")
        let log = try String(contentsOfFile: logs.file("isolation.log"), encoding: .utf8)
        #expect(log.contains("cluster failed; the others go on"), "\(log)")
    }
}
