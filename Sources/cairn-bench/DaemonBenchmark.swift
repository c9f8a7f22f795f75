// daemon: `cairn run` (the real binary) following a generated 1,000-cluster repository on a
// local control plane: push-to-applied latency of one changed spec, what an idle interval
// costs (git checks, Kubernetes requests, CPU), and RSS over many idle intervals.
import ClusterSpecs
import Foundation
import KubeAPI
import Render
#if canImport(Glibc)
import Glibc
#endif

/// A process's CPU seconds (user + system) and RSS in KB, from /proc.
func processUsage(_ pid: pid_t) -> (cpu: Double, rssKB: Int) {
    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    let cpu = fields.count > 12 ? ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks : 0
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    return (cpu, rss)
}

/// The process's peak resident set (VmHWM), KB.
func peakRSSKB(_ pid: pid_t) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    return status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
}

func metric(_ text: String, _ name: String) -> Double {
    text.split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
        .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
}

func daemonBenchmark(count: Int = 1000, memoryOnly: Bool = false) async throws {
    guard let cairn = cairnBinary(), let plane = BenchControlPlane.start() else { return }
    defer { plane.stop() }
    let (dir, kubeconfig) = (plane.dir, plane.kubeconfig)
    let client = try KubeClient(config: KubeConfig.load(path: kubeconfig))
    let namespaces = (0..<4).map { "daemon-\($0)" }
    for ns in namespaces {
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-bench")
    }

    // The repository: `count` clusters (1,000 by default).
    let work = dir + "/work", bare = dir + "/origin.git"
    _ = capture(["git", "init", "-q", "--bare", "-b", "main", bare])
    _ = capture(["git", "clone", "-q", bare, work])
    func git(_ arguments: String...) { _ = capture(["git", "-C", work, "-c", "user.name=bench", "-c", "user.email=bench@example.com"] + arguments) }
    try FileManager.default.createDirectory(atPath: work + "/clusters", withIntermediateDirectories: true)
    var files = try generatedSpecs(count: count, namespaces: namespaces)
    let label = count.formatted()
    for (name, text) in files { try text.write(toFile: "\(work)/clusters/\(name)", atomically: false, encoding: .utf8) }
    git("checkout", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "\(count) clusters")
    git("push", "-q", "origin", "main")

    let interval = 1.0
    let port = 19_191
    let log = dir + "/daemon.log"
    let allowed: String = namespaces.joined(separator: ",")
    let cache: String = dir + "/cache"
    /// `cairn run` on the repository; its pid, or nil.
    func spawnDaemon(_ extra: [String], log: String) -> pid_t? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let arguments: [String] = [cairn, "run", "--repo", bare, "--branch", "main", "--path", "clusters",
                                   "--resync", "10h", "--kubeconfig", kubeconfig, "--namespace-allow", allowed,
                                   "--metrics-address", "127.0.0.1:\(port)", "--cache-dir", cache] + extra
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, cairn, &actions, nil, argv, environ) == 0 else { return nil }
        return pid
    }
    func waitReady() -> Bool {
        // 2 minutes, and 0.1 s more per cluster (a first pass at 10,000 takes minutes).
        for _ in 0..<(1200 + count) {
            if !capture(["curl", "-sf", "http://127.0.0.1:\(port)/readyz"]).isEmpty { return true }
            usleep(100_000)
        }
        return false
    }
    let start = DispatchTime.now()
    guard var pid = spawnDaemon(["--interval", "\(Int(interval))s"], log: log) else { print("cannot start cairn run"); return }
    defer { kill(pid, SIGTERM); var s: Int32 = 0; waitpid(pid, &s, 0) }
    func scrape() -> String { capture(["curl", "-sf", "http://127.0.0.1:\(port)/metrics"]) }
    guard waitReady() else { print("cairn run never finished its first pass; see \(log)"); return }
    let firstPass = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9

    // Idle: nothing pushed for 20 intervals, once the first pass's status commit is out.
    for _ in 0..<(600 + count) where metric(scrape(), "cairn_status_commits_total") < 1 { usleep(100_000) }
    sleep(2)
    let idleStart = (scrape(), processUsage(pid))
    sleep(20)
    let idleEnd = (scrape(), processUsage(pid))
    let checks = metric(idleEnd.0, "cairn_git_check_seconds_count") - metric(idleStart.0, "cairn_git_check_seconds_count")
    let kubeRequests = metric(idleEnd.0, "cairn_kube_requests") - metric(idleStart.0, "cairn_kube_requests")
    let idleLists = metric(idleEnd.0, "cairn_kube_requests{operation=\"list\"}") - metric(idleStart.0, "cairn_kube_requests{operation=\"list\"}")
    let idleWatches = metric(idleEnd.0, "cairn_kube_requests{operation=\"watch\"}") - metric(idleStart.0, "cairn_kube_requests{operation=\"watch\"}")
    let watchesOpen = metric(idleEnd.0, "cairn_live_cache{count=\"watches\"}")
    let idleCPU = idleEnd.1.cpu - idleStart.1.cpu
    if memoryOnly {
        // `cairn-bench daemon --memory`: the memory figures alone, for trying what changes them.
        print("cairn run, \(label) clusters: RSS after the first pass and its status commit \(idleStart.1.rssKB / 1024) MB; 20 idle intervals later \(idleEnd.1.rssKB / 1024) MB, peak \(peakRSSKB(pid) / 1024) MB")
        // A daemon started on the converged clusters (a restart, an upgrade): its first pass
        // lists every object into the cache and plans against them all.
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let restart = DispatchTime.now()
        guard let second = spawnDaemon(["--interval", "\(Int(interval))s"], log: log + ".restart") else { print("cannot start cairn run again"); return }
        pid = second
        guard waitReady() else { print("the restarted cairn run never finished its first pass; see \(log).restart"); return }
        let secondPass = Double(DispatchTime.now().uptimeNanoseconds - restart.uptimeNanoseconds) / 1e9
        sleep(2)
        let afterRestart = processUsage(pid)
        sleep(20)
        let restartIdle = processUsage(pid)
        print("cairn run restarted on the converged clusters: first pass \(String(format: "%.1f", secondPass)) s; RSS after it "
              + "\(afterRestart.rssKB / 1024) MB, 20 s later \(restartIdle.rssKB / 1024) MB, peak \(peakRSSKB(pid) / 1024) MB")
        return
    }

    // Push-to-applied: one esdb cluster's configuration, 20 times.
    let esdb = files.keys.sorted().filter { $0.hasPrefix("esdb-") }
    // Samples per measurement: 20, fewer on a small repository (a quarter of it is EventStoreDB,
    // shared out to four measurements and the failing one's five).
    let n = max(1, min(20, (esdb.count - 6) / 3))
    /// Seconds from each push to its StatefulSet's new template, sorted; and the same from when
    /// `git push` returned (a git host calls its webhook once the push is done).
    var afterPush: [Double] = []
    func pushToApplied(_ changed: ArraySlice<String>, notify: () -> Void = {}) async throws -> [Double] {
        var latencies: [Double] = []
        afterPush = []
        for (i, file) in changed.enumerated() {
            let name = String(file.dropLast(".yaml".count))
            let ns = namespaces[Int(name.split(separator: "-")[1])! % namespaces.count]
            let ref = ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: name)
            let before = try await client.get(ref)["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"]
            files[file] = files[file]!.replacingOccurrences(of: "RunProjections: System", with: "RunProjections: All")
            try files[file]!.write(toFile: "\(work)/clusters/\(file)", atomically: false, encoding: .utf8)
            git("commit", "-q", "-am", "change \(i)")
            let pushed = DispatchTime.now()
            git("push", "-q", "origin", "main")
            let returned = DispatchTime.now()
            notify()
            var applied: Double?
            for _ in 0..<3000 where applied == nil {
                if try await client.get(ref)["spec", "template", "metadata", "annotations", "cairn.dev/config-hash"] != before {
                    applied = Double(DispatchTime.now().uptimeNanoseconds - pushed.uptimeNanoseconds) / 1e9
                } else {
                    usleep(20_000)
                }
            }
            latencies.append(applied ?? .infinity)
            afterPush.append((applied ?? .infinity) - Double(returned.uptimeNanoseconds - pushed.uptimeNanoseconds) / 1e9)
            // A random phase against the interval, as real pushes have.
            usleep(UInt32.random(in: 0...1_000_000))
        }
        afterPush.sort()
        return latencies.sorted()
    }
    let latencies = try await pushToApplied(esdb.prefix(n))
    let pollingAfterPush = afterPush

    // Drift: `kubectl scale` on 20 of cairn's StatefulSets (3 replicas each), one after the
    // other; seconds from kubectl's return until the StatefulSet is back at 3, with the 10-hour
    // resync above: only the watch can bring it back.
    let listsBeforeDrift = metric(scrape(), "cairn_kube_requests{operation=\"list\"}")
    /// Seconds from now until `done` holds, polled every 20 ms for at most 30 s (infinity then).
    func secondsUntil(_ done: () async throws -> Bool) async throws -> Double {
        let start = DispatchTime.now()
        for _ in 0..<1500 {
            if try await done() { return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9 }
            usleep(20_000)
        }
        return .infinity
    }
    var driftSeconds: [Double] = []
    let drifted = esdb.dropFirst(2 * n + 5).prefix(n)
    for file in drifted {
        let name = String(file.dropLast(".yaml".count))
        let ns = namespaces[Int(name.split(separator: "-")[1])! % namespaces.count]
        let ref = ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: name)
        _ = capture(["kubectl", "--kubeconfig", kubeconfig, "-n", ns, "scale", "statefulset/\(name)", "--replicas=5"])
        driftSeconds.append(try await secondsUntil { try await client.get(ref)["spec", "replicas"] == 3 })
        usleep(UInt32.random(in: 0...500_000))
    }
    driftSeconds.sort()
    // `kubectl edit` on the same clusters' ConfigMaps (an editor that changes one value of
    // eventstore.conf, a field cairn renders): seconds until the value is back.
    let editor = dir + "/edit.sh"
    try "#!/bin/sh\nsed -i 's/RunProjections: System/RunProjections: None/' \"$1\"\n".write(toFile: editor, atomically: true, encoding: .utf8)
    chmod(editor, 0o755)
    var editSeconds: [Double] = []
    for file in drifted {
        let name = String(file.dropLast(".yaml".count))
        let ns = namespaces[Int(name.split(separator: "-")[1])! % namespaces.count]
        let ref = ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: name + "-config")
        let said = capture(["/usr/bin/env", "KUBE_EDITOR=" + editor, "kubectl", "--kubeconfig", kubeconfig, "-n", ns, "edit", "configmap/\(name)-config"])
        guard said.contains("edited") else {
            print("kubectl edit of \(ns)/\(name)-config changed nothing: \(said)")
            continue
        }
        editSeconds.append(try await secondsUntil {
            (try await client.get(ref)["data", "eventstore.conf"]?.stringValue ?? "").contains("RunProjections: System")
        })
        usleep(UInt32.random(in: 0...500_000))
    }
    editSeconds.sort()
    let listsDuringDrift = metric(scrape(), "cairn_kube_requests{operation=\"list\"}") - listsBeforeDrift

    // The same with one cluster the API server keeps refusing: a new cluster in a namespace
    // whose ResourceQuota allows no more ConfigMaps (status set here: no quota controller runs).
    let quota: JSONValue = ["apiVersion": "v1", "kind": "ResourceQuota", "metadata": ["name": "no-more-configmaps", "namespace": .string(namespaces[0])],
                            "spec": ["hard": ["count/configmaps": "0"]]]
    _ = try await client.apply(quota, fieldManager: "cairn-bench")
    _ = try await client.patchStatus(ObjectReference(quota)!, ["status": ["hard": ["count/configmaps": "0"], "used": ["count/configmaps": "0"]]])
    let stuck = "stuck.yaml"
    // (The generated esdb clusters are all in the first namespace.)
    try files[esdb[0]]!.replacingOccurrences(of: "\n  name: \(esdb[0].dropLast(".yaml".count))\n", with: "\n  name: stuck\n")
        .write(toFile: "\(work)/clusters/\(stuck)", atomically: false, encoding: .utf8)
    git("add", "-A")
    git("commit", "-q", "-m", "a cluster the server refuses")
    git("push", "-q", "origin", "main")
    let failures = "cairn_cluster_failures_total{cluster=\"\(namespaces[0])/stuck\"}"
    for _ in 0..<300 where metric(scrape(), failures) < 1 { usleep(100_000) }
    let failuresBefore = metric(scrape(), failures)
    let failingStart = DispatchTime.now()
    let failingLatencies = try await pushToApplied(esdb.dropFirst(n).prefix(5))
    let failingSeconds = Double(DispatchTime.now().uptimeNanoseconds - failingStart.uptimeNanoseconds) / 1e9
    let failuresDuring = metric(scrape(), failures) - failuresBefore

    // RSS over idle intervals (an hour at 30 s is 120 intervals; here 30 at 1 s, then compare).
    let rssBefore = processUsage(pid).rssKB
    sleep(30)
    let rssAfter = processUsage(pid).rssKB

    // The same pushes with a webhook: cairn run with a 10-minute interval, told of each push
    // by a GitHub-signed webhook sent right after it (as a git host sends it).
    git("rm", "-q", "clusters/\(stuck)")
    git("commit", "-q", "-m", "the refused cluster removed")
    git("push", "-q", "origin", "main")
    kill(pid, SIGTERM)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    // What the StatefulSet controller and the kubelets would have done by now, which cannot run
    // here (the controller-manager is stopped so that 3,000 pods never scheduled load nothing):
    // every StatefulSet's status says it is observed, on its revision and Ready. Otherwise the
    // next cairn sees hundreds of rollouts it drives (Aerospike, Postgres) waiting for their
    // pods, and follows them up in every pass, which no settled fleet makes it do.
    try await withThrowingTaskGroup(of: Void.self) { group in
        for ns in namespaces {
            for set in try await client.list(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns) {
                guard let ref = ObjectReference(set) else { continue }
                let replicas = set["spec", "replicas"]?.intValue ?? 1
                let generation = set["metadata", "generation"]?.intValue ?? 1
                group.addTask {
                    _ = try await client.patchStatus(ref, ["status": ["observedGeneration": .int(generation), "replicas": .int(replicas),
                                                                      "readyReplicas": .int(replicas), "updatedReplicas": .int(replicas),
                                                                      "currentReplicas": .int(replicas),
                                                                      "currentRevision": "settled", "updateRevision": "settled"]])
                }
            }
        }
        try await group.waitForAll()
    }
    let secret = "bench-webhook-secret-0123456789"
    try secret.write(toFile: dir + "/webhook-secret", atomically: true, encoding: .utf8)
    let body = #"{"ref":"refs/heads/main","repository":{"full_name":"bench/clusters"}}"#
    try body.write(toFile: dir + "/push.json", atomically: true, encoding: .utf8)
    let signature = String(capture(["openssl", "dgst", "-sha256", "-hmac", secret, dir + "/push.json"]).split(separator: " ").last ?? "")
        .trimmingCharacters(in: .whitespacesAndNewlines)
    let hookPort = 19_192
    guard let hooked = spawnDaemon(["--interval", "10m", "--webhook-address", "127.0.0.1:\(hookPort)", "--webhook-secret-file", dir + "/webhook-secret"],
                                   log: dir + "/daemon-webhook.log") else { print("cannot start cairn run"); return }
    pid = hooked
    guard waitReady() else { print("cairn run with a webhook never finished its first pass; see \(dir)/daemon-webhook.log"); return }
    let webhookLatencies = try await pushToApplied(esdb.dropFirst(n + 5).prefix(n)) {
        _ = capture(["curl", "-s", "-o", "/dev/null", "-H", "X-GitHub-Event: push", "-H", "X-Hub-Signature-256: sha256=\(signature)",
                     "-H", "Content-Type: application/json", "--data-binary", "@" + dir + "/push.json", "http://127.0.0.1:\(hookPort)/hooks/github"])
    }
    let webhookAfterPush = afterPush
    kill(pid, SIGTERM)
    waitpid(pid, &status, 0)

    // No-op resyncs on the watch cache: cairn run with --resync 3s for 20 s once its first pass
    // is done; the mean full pass from cairn_reconcile_seconds, beside kubectl diff --server-side
    // on the same objects (what a resync costs without a cache of the live state).
    guard let resyncing = spawnDaemon(["--interval", "1s", "--resync", "3s"], log: dir + "/daemon-resync.log") else { print("cannot start cairn run"); return }
    pid = resyncing
    guard waitReady() else { print("cairn run (resync) never finished its first pass; see \(dir)/daemon-resync.log"); return }
    // From the second full pass on: the first pass's LISTs (the cache's sync) are behind us.
    let full = "cairn_reconcile_seconds_count{scope=\"full\"}", fullSum = "cairn_reconcile_seconds_sum{scope=\"full\"}"
    for _ in 0..<200 where metric(scrape(), full) < 2 { usleep(100_000) }
    let resyncStart = (scrape(), processUsage(pid))
    sleep(20)
    let resyncEnd = (scrape(), processUsage(pid))
    let resyncs = metric(resyncEnd.0, full) - metric(resyncStart.0, full)
    let resyncSeconds = (metric(resyncEnd.0, fullSum) - metric(resyncStart.0, fullSum)) / max(resyncs, 1)
    let resyncCPU = (resyncEnd.1.cpu - resyncStart.1.cpu) / max(resyncs, 1)
    let resyncLists = metric(resyncEnd.0, "cairn_kube_requests{operation=\"list\"}") - metric(resyncStart.0, "cairn_kube_requests{operation=\"list\"}")
    let resyncRSS = resyncEnd.1.rssKB
    let options = RenderOptions(podDisruptionBudgetAPIVersion: try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1")
    let specs = try files.sorted { $0.key < $1.key }.map { try ClusterSpecLoader.load($0.value, file: $0.key) }
    let manifests = dir + "/manifests"
    try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
    var byNamespace: [String: [JSONValue]] = [:]
    for o in ClusterRenderer.applyOrder(ClusterRenderer.renderAll(specs, options: options).clusters) { byNamespace[o.namespace, default: []].append(o.body) }
    for (ns, list) in byNamespace { try YAMLWriter.stream(list).write(toFile: "\(manifests)/\(ns).yaml", atomically: false, encoding: .utf8) }
    let diff = measure(["kubectl", "--kubeconfig", kubeconfig, "diff", "--server-side", "--field-manager", "cairn", "-f", manifests])
    await client.shutdown()

    print("cairn run following a \(label)-cluster repository, interval \(Int(interval)) s, kube-apiserver 1.20 on loopback, 2 cores")
    print(String(format: "first pass (cold sync, from process start)      %8.2f s", firstPass))
    func p95(_ sorted: [Double]) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.95).rounded(.up)) - 1)] }
    print(String(format: "push-to-applied, p50 of %d                        %8.2f s (goal <= interval + 0.5 s = %.1f s); p95 %.2f, min %.2f, max %.2f",
                 latencies.count, latencies[latencies.count / 2], interval + 0.5, p95(latencies), latencies.first!, latencies.last!))
    print(String(format: "push-to-applied with a webhook (interval 10 m), p50 of %d %5.2f s (goal <= 0.5 s; %.2fx polling at 1 s); p95 %.2f, min %.2f, max %.2f",
                 webhookLatencies.count, webhookLatencies[webhookLatencies.count / 2],
                 webhookLatencies[webhookLatencies.count / 2] / latencies[latencies.count / 2], p95(webhookLatencies),
                 webhookLatencies.first!, webhookLatencies.last!))
    print(String(format: "the same from when git push returned: webhook p50 %.2f s, p95 %.2f; polling p50 %.2f s, p95 %.2f",
                 webhookAfterPush[webhookAfterPush.count / 2], p95(webhookAfterPush),
                 pollingAfterPush[pollingAfterPush.count / 2], p95(pollingAfterPush)))
    print(String(format: "push-to-applied, p50 of %d, one cluster failing     %8.2f s; min %.2f, max %.2f (%.2fx the all-healthy p50)",
                 failingLatencies.count, failingLatencies[failingLatencies.count / 2], failingLatencies.first!, failingLatencies.last!,
                 failingLatencies[failingLatencies.count / 2] / latencies[latencies.count / 2]))
    print(String(format: "the failing cluster meanwhile: %d attempts in %.1f s (%.1f intervals; its backoff doubles from the interval to 300 s)",
                 Int(failuresDuring), failingSeconds, failingSeconds / interval))
    print(String(format: "idle 20 s: remote-head checks %d, Kubernetes requests %d (%d LIST, %d watch; %d watches opened since start), CPU %.3f s (%.1f ms per interval)",
                 Int(checks), Int(kubeRequests), Int(idleLists), Int(idleWatches), Int(watchesOpen), idleCPU, idleCPU * 1000 / max(checks, 1)))
    print(String(format: "kubectl scale -> put back (watch, resync 10 h), p50 of %d           %8.2f s (goal <= 2 s); p95 %.2f, min %.2f, max %.2f; LISTs meanwhile: %d",
                 driftSeconds.count, driftSeconds[driftSeconds.count / 2], p95(driftSeconds), driftSeconds.first!, driftSeconds.last!, Int(listsDuringDrift)))
    print(String(format: "kubectl edit (a ConfigMap value) -> put back, p50 of %d          %8.2f s (goal <= 2 s); p95 %.2f, min %.2f, max %.2f",
                 editSeconds.count, editSeconds[editSeconds.count / 2], p95(editSeconds), editSeconds.first!, editSeconds.last!))
    print("RSS after the first pass and \(n + 5) changes: \(rssBefore / 1024) MB; after 30 more idle intervals: \(rssAfter / 1024) MB (goal <= 100 MB, flat)")
    print(String(format: "no-op resync on the watch cache, mean of %d          %8.3f s, CPU %.3f s, %d LISTs; kubectl diff --server-side %.2f s (%.0fx; goal >= 100x); RSS %d MB",
                 Int(resyncs), resyncSeconds, resyncCPU, Int(resyncLists), diff.seconds, diff.seconds / max(resyncSeconds, 0.001), resyncRSS / 1024))
}
