public import ClusterSpecs
import Foundation
public import Logging
public import GitStore
public import KubeAPI
public import Reconcile
import Render

/// `cairn run`: poll the branch, reconcile on a new commit (and every resync), write status
/// files back to git when they change. One loop, one step at a time; every failure keeps the
/// last good state and retries with bounded exponential backoff, and nothing is pruned because
/// something could not be read.
public final class Daemon: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var branch = "main"
        public var path = "clusters"
        public var interval: Duration = .seconds(30)
        public var resync: Duration = .seconds(600)
        /// The branch status files go to; nil with `statusSameBranch`.
        public var statusBranch: String? = "cairn-status"
        public var statusDirectory = "status"
        public var author = GitSignature(name: "cairn", email: "cairn@localhost")
        public var maxBackoff: Duration = .seconds(300)

        public init() {}
    }

    public let configuration: Configuration
    let mirror: Mirror
    let reconciler: Reconciler
    public let log: Logging.Logger
    public let metrics = Metrics()

    // Loop state, touched only by the loop.
    private var lastSeen: GitOID?
    private var lastApplied: GitOID?
    private var lastResync = ContinuousClock.now
    private var renderCache: [String: (text: String, spec: ClusterSpec?)] = [:]
    /// Per cluster, the objects its last render had: collisions of a changed cluster with the
    /// others are found without rendering the others again.
    private var renderedReferences: [String: Set<String>] = [:]
    /// The status files as last pushed (path → content); loaded from the status branch at start.
    private var pushedStatus: [String: String]?
    /// Per cluster, the last commit at which cairn wrote one of its objects.
    private var lastChanged: [String: String] = [:]
    private var lastError: String?

    private let stopLock = NSLock()
    private var stopping = false
    private var wake: CheckedContinuation<Void, Never>?

    /// With leader election, only the leader acts; without, this process always does.
    let elector: LeaderElector?
    private var wasLeader = false

    public init(configuration: Configuration, mirror: Mirror, reconciler: Reconciler, log: Logging.Logger, elector: LeaderElector? = nil) {
        self.configuration = configuration
        self.mirror = mirror
        self.reconciler = reconciler
        self.log = log
        self.elector = elector
    }

    /// Whether this process may act now (always, without leader election).
    var leading: Bool { elector?.isLeader ?? true }

    /// Asks the loop to stop after the step under way (status included); returns at once.
    public func stop() {
        let w: CheckedContinuation<Void, Never>? = stopLock.withLock {
            stopping = true
            defer { wake = nil }
            return wake
        }
        w?.resume()
    }

    private var isStopping: Bool { stopLock.withLock { stopping } }

    /// Sleeps up to `duration`, returning early when asked to stop.
    private func pause(_ duration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow: Bool = self.stopLock.withLock {
                        if self.stopping { return true }
                        self.wake = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            }
            await group.next()
            group.cancelAll()
            // Release the waiter if the timer won.
            let w: CheckedContinuation<Void, Never>? = stopLock.withLock { defer { wake = nil }; return wake }
            w?.resume()
        }
    }

    /// Runs until `stop()`: every interval the cheap remote-head check, a pass on a new commit
    /// or when the resync is due, status afterwards.
    public func run() async {
        var backoff = configuration.interval
        log.info("cairn run started", ["branch": configuration.branch, "path": configuration.path])
        let election = elector.map { e in Task { await e.run() } }
        defer { election?.cancel() }
        while !isStopping {
            do {
                try await step()
                for (operation, n) in reconciler.client.requestCounts {
                    metrics.set("cairn_kube_requests", Double(n), ["operation": operation])
                }
                backoff = configuration.interval
                metrics.set("cairn_up", 1)
                await pause(configuration.interval)
            } catch {
                lastError = "\(error)"
                metrics.increment("cairn_errors_total", ["reason": Self.reason(error)])
                log.error("step failed; keeping the last good state", ["error": "\(error)", "retry_in": "\(backoff)"])
                await pause(backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
        log.info("cairn run stopped", [:])
    }

    static func reason(_ error: any Error) -> String {
        if let e = error as? GitError { return "git_\(e.kind)" }
        if let e = error as? KubeError { return "kube_\(e.reason.rawValue)" }
        return "other"
    }

    /// One step: head check; on a new commit or a due resync, fetch, render, reconcile, status.
    func step() async throws {
        // A follower does nothing; a new leader starts with a full pass (the last one may
        // have seen a different world).
        let leads = leading
        metrics.set("cairn_leader", leads ? 1 : 0)
        if leads != wasLeader {
            wasLeader = leads
            if leads { lastSeen = nil; lastResync = ContinuousClock.now - configuration.resync }
        }
        guard leads else { return }
        let checkStart = ContinuousClock.now
        let remote = try mirror.remoteHead("refs/heads/\(configuration.branch)")
        metrics.observe("cairn_git_check_seconds", (ContinuousClock.now - checkStart).seconds)
        let resyncDue = ContinuousClock.now - lastResync >= configuration.resync
        guard let remote else { throw GitError(.notFound, operation: "check \(configuration.branch)", message: "the remote has no branch \(configuration.branch)") }
        if remote == lastSeen && !resyncDue && lastError == nil {
            // No new commit: only the rollouts cairn drives (one pod per pass) need passes.
            if !followUp.isEmpty, let lastApplied { try await reconcile(at: lastApplied, extraScope: followUp) }
            return
        }

        let fetchStart = ContinuousClock.now
        try mirror.fetch()
        metrics.observe("cairn_git_fetch_seconds", (ContinuousClock.now - fetchStart).seconds)
        let commit = try mirror.resolve("refs/heads/\(configuration.branch)")
        if configuration.statusBranch == nil, remote != lastSeen, lastApplied != nil, try isOwnStatusCommit(commit), !resyncDue {
            // Same-branch mode: cairn's own status commit is no reason to reconcile.
            lastSeen = remote
            return
        }
        // A full pass at start, on resync, after a failure; otherwise only what the commit touched.
        let full = resyncDue || lastApplied == nil || lastError != nil
        ownHead = nil
        try await reconcile(at: commit, incremental: !full, extraScope: full ? nil : followUp)
        lastSeen = ownHead ?? remote
        if full { lastResync = ContinuousClock.now }
    }

    /// A commit cairn made that touches only its status directory.
    func isOwnStatusCommit(_ commit: GitOID) throws -> Bool {
        guard let info = try? mirror.commitInfo(commit), info.authorEmail == configuration.author.email, let parent = info.parent else { return false }
        let changed = try mirror.changedPaths(from: parent, to: commit)
        return !changed.isEmpty && changed.allSatisfy { $0.path.hasPrefix(configuration.statusDirectory + "/") }
    }

    /// The status commit just pushed to the followed branch (same-branch mode).
    private var ownHead: GitOID?

    /// The clusters a commit touched: files added, changed or removed, by their identity before
    /// and after (a file may rename its cluster).
    func touched(_ files: [(path: String, text: String)]) -> Set<String> {
        var ids = Set<String>()
        func identity(_ entry: (text: String, spec: ClusterSpec?), _ path: String) -> String? {
            entry.spec?.identity ?? ClusterSpecLoader.identity(entry.text, file: path)
        }
        let paths = Set(files.map(\.path))
        for (path, text) in files where renderCache[path]?.text != text {
            if let old = renderCache[path], let id = identity(old, path) { ids.insert(id) }
            if let id = ClusterSpecLoader.identity(text, file: path) { ids.insert(id) }
        }
        for (path, old) in renderCache where !paths.contains(path) {
            if let id = identity(old, path) { ids.insert(id) }
        }
        return ids
    }

    /// Clusters with a rollout cairn drives under way (Postgres, Aerospike): they get a pass every
    /// interval until their pods are all on the new revision.
    private var followUp: Set<String> = []

    /// - Parameters:
    ///   - incremental: only the clusters whose files changed since the last pass, and `extraScope`.
    ///   - extraScope: with no `incremental`, the only clusters looked at (nil: all).
    func reconcile(at commit: GitOID, incremental: Bool = false, extraScope: Set<String>? = nil) async throws {
        let start = ContinuousClock.now
        let dir = configuration.path.split(separator: "/").joined(separator: "/")
        var files: [(path: String, text: String)] = []
        var unreadable: [String] = []
        for file in try mirror.files(at: commit, under: dir, sizeLimit: SpecFileParser.maximumFileSize) {
            guard file.path.hasSuffix(".yaml") || file.path.hasSuffix(".yml"),
                  !file.path.split(separator: "/").contains(where: { $0.hasPrefix(".") }) else { continue }
            if case .file(let data) = file.content, let text = String(data: data, encoding: .utf8) {
                files.append((file.path, text))
            } else {
                unreadable.append(file.path)
            }
        }
        let scope: Set<String>? = incremental ? touched(files).union(extraScope ?? []) : extraScope
        if let scope, scope.isEmpty {
            // Nothing under the spec path changed (a README, say): nothing to do.
            lastApplied = commit
            lastError = nil
            return
        }
        // Parse incrementally: a file whose text did not change keeps its parsed spec.
        var specs: [ClusterSpec] = []
        var invalid: [String: String] = [:]
        var errors: [String] = []
        var prune = unreadable.isEmpty
        var nextCache: [String: (text: String, spec: ClusterSpec?)] = [:]
        for (path, text) in files {
            if let cached = renderCache[path], cached.text == text {
                nextCache[path] = cached
                if let spec = cached.spec { specs.append(spec) } else if let id = ClusterSpecLoader.identity(text, file: path) {
                    invalid[id] = "the spec file \(path) is invalid; its live objects are left as they are"
                } else { prune = false }
                continue
            }
            do {
                let spec = try ClusterSpecLoader.load(text, file: path)
                specs.append(spec)
                nextCache[path] = (text, spec)
            } catch {
                nextCache[path] = (text, nil)
                errors += error.errors.map(\.description)
                if let id = ClusterSpecLoader.identity(text, file: path) {
                    invalid[id] = "the spec file is invalid, its live objects are left as they are: \(error.errors.first?.description ?? path)"
                } else {
                    prune = false
                }
            }
        }
        renderCache = nextCache
        // Two files naming the same cluster: neither is applied.
        var seen: [String: String] = [:]
        for s in specs {
            if let other = seen[s.identity] {
                invalid[s.identity] = "\(s.file) and \(other) both describe \(s.identity)"
                errors.append("\(s.file): cluster \(s.identity) is also described by \(other)")
            }
            seen[s.identity] = s.file
        }
        specs.removeAll { invalid[$0.identity] != nil }
        for e in errors { log.warning("invalid spec", ["error": e, "commit": commit.description]) }

        // Render the clusters in scope (all of them on a full pass).
        let inScope = specs.filter { scope?.contains($0.identity) ?? true }
        let rendered = ClusterRenderer.renderAll(inScope, options: try await reconciler.renderOptions())
        for e in rendered.errors {
            for s in inScope where s.file == e.file { invalid[s.identity] = e.description }
        }
        var clusters = rendered.clusters
        if scope == nil {
            renderedReferences = Dictionary(clusters.map { ($0.spec.identity, Set($0.objects.map(\.reference))) }, uniquingKeysWith: { a, _ in a })
        } else {
            // A changed cluster must not render an object another cluster has.
            for id in scope ?? [] { renderedReferences[id] = nil }
            var others: [String: String] = [:]
            for (id, refs) in renderedReferences { for r in refs { others[r] = id } }
            for c in clusters {
                if let clash = c.objects.first(where: { others[$0.reference] != nil }) {
                    invalid[c.spec.identity] = "\(c.spec.file): \(clash.reference) is also rendered for \(others[clash.reference]!)"
                    log.warning("invalid spec", ["error": invalid[c.spec.identity]!, "commit": commit.description])
                }
            }
            clusters.removeAll { invalid[$0.spec.identity] != nil }
            for c in clusters { renderedReferences[c.spec.identity] = Set(c.objects.map(\.reference)) }
        }
        let result = try await reconciler.reconcile(clusters, invalid: invalid, specsRead: files.count + unreadable.count, prune: prune, scope: scope)
        lastApplied = commit
        lastError = nil
        stopLock.withLock { passed = true }
        metrics.observe("cairn_reconcile_seconds", (ContinuousClock.now - start).seconds)
        metrics.setInfo("cairn_last_applied_commit_info", ["commit": commit.description])
        for o in result.objects where o.action != .unchanged {
            metrics.increment("cairn_objects_total", ["action": o.action.rawValue])
            var fields = ["object": o.reference, "cluster": o.cluster ?? "", "commit": commit.description]
            if let detail = o.detail { fields["detail"] = detail }
            log.info("object \(o.action.rawValue)", fields)
            if let c = o.cluster, [.created, .configured, .restarted, .pruned].contains(o.action) { lastChanged[c] = commit.description }
        }
        for w in result.warnings { log.warning(w, ["commit": commit.description]) }
        for phase in ClusterHealth.Phase.allCases {
            metrics.set("cairn_clusters", Double(result.clusters.filter { $0.phase == phase }.count), ["phase": phase.rawValue])
        }
        await emitEvents(result)
        // Rollouts cairn drives: OnDelete StatefulSets with pods on an older revision, or whose
        // template this pass changed. They get passes until done.
        var next = scope == nil ? Set<String>() : followUp.subtracting(scope!)
        for c in result.clusters {
            let pending = c.rollouts.contains { $0.strategy == "OnDelete" && !$0.updatedAll }
                || result.objects.contains { $0.cluster == c.cluster && $0.action == .configured && $0.reference.hasPrefix("StatefulSet/") }
            if pending { next.insert(c.cluster) }
        }
        followUp = next
        // Losing the lease stops acting at once: no status from a former leader.
        guard leading else { return }
        try writeStatus(result, commit: commit, specFiles: Dictionary(specs.map { ($0.identity, $0.file) }, uniquingKeysWith: { a, _ in a }))
    }

    // MARK: - Events

    /// Blocked changes already reported, so that each is one Event, not one per pass.
    private var reportedBlocked: Set<String> = []

    /// Kubernetes Events on a cluster's StatefulSet: a rollout starting, each pod cairn
    /// restarts, a blocked change (once). Best effort: a failure is logged, never fatal.
    func emitEvents(_ result: Reconciler.Result) async {
        for o in result.objects {
            let parts = o.reference.split(separator: "/", maxSplits: 2).map(String.init)
            guard parts.count == 3 else { continue }
            let (kind, namespace, name) = (parts[0], parts[1], parts[2])
            var event: (set: String, type: String, reason: String, message: String)?
            switch (o.action, kind) {
            case (.configured, "StatefulSet") where o.detail?.contains(ConfigHash.annotation) == true:
                event = (name, "Normal", "RolloutStarted", "configuration changed: the pods restart on the new revision (\(o.detail ?? ""))")
            case (.restarted, "Pod"):
                event = (String(name[..<(name.lastIndex(of: "-") ?? name.endIndex)]), "Normal", "PodRestarted", "cairn restarted pod \(name): \(o.detail ?? "")")
            case (.blocked, "StatefulSet"):
                let key = "\(o.reference) \(o.detail ?? "")"
                guard reportedBlocked.insert(key).inserted else { continue }
                event = (name, "Warning", "ChangeBlocked", o.detail ?? "an immutable field changed")
            default:
                continue
            }
            guard let event else { continue }
            let now = LeaderElector.microTime(Date())
            let seconds = String(now.prefix(19)) + "Z"
            let body: JSONValue = [
                "apiVersion": "v1", "kind": "Event",
                "metadata": ["name": .string("\(event.set).\(String(UInt64(Date().timeIntervalSince1970 * 1e9), radix: 16))"), "namespace": .string(namespace)],
                "involvedObject": ["apiVersion": "apps/v1", "kind": "StatefulSet", "namespace": .string(namespace), "name": .string(event.set)],
                "type": .string(event.type), "reason": .string(event.reason), "message": .string(String(event.message.prefix(1024))),
                "source": ["component": "cairn"], "reportingComponent": "cairn", "reportingInstance": .string(elector?.identity ?? "cairn"),
                "firstTimestamp": .string(seconds), "lastTimestamp": .string(seconds), "count": 1,
            ]
            do {
                _ = try await reconciler.client.create(body)
            } catch {
                log.warning("cannot record an event", ["object": "StatefulSet/\(namespace)/\(event.set)", "reason": event.reason, "error": error.description])
            }
        }
    }

    // MARK: - Status

    /// The status file of one cluster: what a person reading git needs, never a secret, and
    /// nothing that changes from pass to pass when the cluster does not.
    static func statusFile(_ health: ClusterHealth, objects: [ObjectResult], commit: String, specFile: String?, lastChanged: String?) -> String {
        var o: JSONObject = ["cluster": .string(health.cluster)]
        if let specFile { o["spec"] = .string(specFile) }
        o["commit"] = .string(commit)
        if let lastChanged { o["lastChanged"] = .string(lastChanged) }
        o["phase"] = .string(health.phase.rawValue)
        if !health.reasons.isEmpty { o["reasons"] = .array(health.reasons.map(JSONValue.string)) }
        if !health.rollouts.isEmpty { o["rollouts"] = .array(health.rollouts.map(\.json)) }
        let mine = objects.filter { $0.cluster == health.cluster && $0.action != .pruned }
        if !mine.isEmpty {
            o["objects"] = .array(mine.map { r in
                var e: JSONObject = ["object": .string(r.reference)]
                switch r.action {
                case .blocked, .failed: e["state"] = .string(r.action.rawValue); e["detail"] = .string(r.detail ?? "")
                case .kept: e["state"] = "kept"
                default: e["state"] = "applied"
                }
                return .object(e)
            })
        }
        return "# Written by cairn. Do not edit: it is rewritten when the cluster's status changes.\n" + YAMLWriter.document(.object(o))
    }

    func writeStatus(_ result: Reconciler.Result, commit: GitOID, specFiles: [String: String]) throws {
        let branch = configuration.statusBranch ?? configuration.branch
        if pushedStatus == nil { pushedStatus = try currentStatus(branch: branch) }
        var files: [String: String] = [:]
        for health in result.clusters {
            let path = "\(configuration.statusDirectory)/\(health.cluster).yaml"
            files[path] = Self.statusFile(health, objects: result.objects, commit: commit.description, specFile: specFiles[health.cluster],
                                          lastChanged: lastChanged[health.cluster])
        }
        var changes: [String: Data?] = [:]
        for (path, text) in files where pushedStatus?[path] != text { changes[path] = Data(text.utf8) }
        // Clusters pruned (their objects gone this pass) lose their status file.
        let pruned = Set(result.objects.filter { $0.action == .pruned }.compactMap(\.cluster))
        for path in pushedStatus?.keys.sorted() ?? [] where files[path] == nil {
            let cluster = String(path.dropFirst(configuration.statusDirectory.count + 1).dropLast(".yaml".count))
            if pruned.contains(cluster) { changes[path] = .some(nil) }
        }
        guard !changes.isEmpty else { return }
        let names = changes.keys.sorted().map { String($0.dropFirst(configuration.statusDirectory.count + 1).dropLast(".yaml".count)) }
        let message = "cairn: status of \(names.joined(separator: ", ")) at \(commit.description.prefix(12))"
        let pushed = try mirror.commitAndPush(branch: branch, changes: changes, message: message, author: configuration.author)
        for (path, data) in changes {
            if let data { pushedStatus?[path] = String(decoding: data, as: UTF8.self) } else { pushedStatus?[path] = nil }
        }
        metrics.increment("cairn_status_commits_total", [:])
        log.info("status committed", ["commit": pushed.description, "branch": branch, "clusters": names.joined(separator: ",")])
        if configuration.statusBranch == nil { ownHead = pushed }
    }

    /// The status files on the status branch now (none when the branch does not exist yet).
    func currentStatus(branch: String) throws -> [String: String] {
        guard let head = try? mirror.resolve("refs/heads/\(branch)") else { return [:] }
        var out: [String: String] = [:]
        for file in try mirror.files(at: head, under: configuration.statusDirectory) {
            if case .file(let data) = file.content { out[file.path] = String(decoding: data, as: UTF8.self) }
        }
        // lastChanged survives a restart through the files themselves.
        for (path, text) in out {
            let cluster = String(path.dropFirst(configuration.statusDirectory.count + 1).dropLast(".yaml".count))
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("lastChanged: ") }) {
                lastChanged[cluster] = line.dropFirst("lastChanged: ".count).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            }
        }
        return out
    }

    /// For /readyz (read from the HTTP server's threads): a pass has succeeded since start.
    public var ready: Bool { stopLock.withLock { passed } }
    private var passed = false
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
