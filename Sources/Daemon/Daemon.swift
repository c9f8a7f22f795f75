public import ClusterSpecs
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ServiceLifecycle
import Synchronization
public import Logging
public import GitStore
public import KubeAPI
public import Reconcile
public import Render

/// `cairn run`'s reconcile loop: reconcile each new commit the `GitFollower` fetched (a service
/// of its own), every resync, and the clusters whose rollout or retry is due; hand the status
/// files to the `StatusWriter` (another service). One pass at a time; every failure keeps the
/// last good state and retries with bounded exponential backoff, and nothing is pruned because
/// something could not be read.
public actor Daemon {
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
        /// Read live objects from a LIST + WATCH cache (`LiveCache`), correcting drift as its
        /// events report it; off: every pass LISTs, and drift waits for the resync.
        public var watch = true
        /// How long each watch asks the server to stay open before it is resumed: also how
        /// long (plus 15 s) a connection that died without closing goes unnoticed.
        public var watchTimeoutSeconds = 60
        /// A drift event schedules its cluster's pass this long after the first change of a
        /// burst (a `kubectl edit` writes one object, a `kubectl scale` may write several).
        public var driftDebounce: Duration = .seconds(1)

        public init() {}
    }

    public let configuration: Configuration
    let mirror: Mirror
    let reconciler: Reconciler
    public nonisolated let log: Logging.Logger
    public nonisolated let metrics = Metrics()

    // Loop state, touched only by the loop.
    private var lastSeen: GitOID?
    private var lastApplied: GitOID?
    private var lastResync = ContinuousClock.now
    /// The spec files as of the last pass: the next one reads and renders only what changed.
    private var desired: DesiredState?
    /// Per cluster, the last commit at which cairn wrote one of its objects.
    private var lastChanged: [String: String] = [:]
    private var lastError: String?

    /// With leader election, only the leader acts; without, this process always does.
    let elector: LeaderElector?
    private var wasLeader = false

    /// The status files' writer, a service of its own (`StatusWriter`).
    public nonisolated let statusWriter: StatusWriter
    /// The branch's follower, a service of its own (`GitFollower`): it wakes the loop on a new commit.
    public nonisolated let follower: GitFollower
    private let wakeup = Wakeup()

    /// Clusters a watch event reported drift on (`LiveCache`).
    private let drifted: DriftInbox
    /// When the loop is already to be woken for drift that is not due yet.
    private var driftWake: ContinuousClock.Instant?

    public init(configuration: Configuration, mirror: Mirror, reconciler: Reconciler, log: Logging.Logger, elector: LeaderElector? = nil) {
        self.configuration = configuration
        self.mirror = mirror
        self.log = log
        self.elector = elector
        drifted = DriftInbox(debounce: configuration.driftDebounce, longest: configuration.maxBackoff)
        if configuration.watch {
            let (inbox, wakeup, debounce, metrics) = (drifted, self.wakeup, configuration.driftDebounce, self.metrics)
            let cache = LiveCache(client: reconciler.client, watchTimeoutSeconds: configuration.watchTimeoutSeconds) { drift in
                log.info("drift", ["object": drift.reference, "cluster": drift.cluster, "change": drift.what])
                metrics.increment(.drift, ["kind": String(drift.reference.prefix { $0 != "/" })])
                if inbox.add(drift.cluster) {
                    // The first of a burst: one wake-up once the burst has had its debounce.
                    Task {
                        try? await Task.sleep(for: debounce)
                        wakeup.signal()
                    }
                }
            }
            self.reconciler = reconciler.reading(from: cache)
        } else {
            self.reconciler = reconciler
        }
        let writer = StatusWriter.Configuration(branch: configuration.statusBranch ?? configuration.branch, directory: configuration.statusDirectory,
                                                author: configuration.author, sameBranch: configuration.statusBranch == nil)
        statusWriter = StatusWriter(configuration: writer, mirror: mirror, log: log, metrics: metrics,
                                    leading: { elector?.isLeader ?? true },
                                    retryDelay: { attempts in Self.retryDelay(attempts: attempts, configuration: configuration) })
        let refs = ["refs/heads/\(configuration.branch)"] + (configuration.statusBranch.map { ["refs/heads/\($0)"] } ?? [])
        let wakeup = self.wakeup
        follower = GitFollower(configuration: .init(branch: configuration.branch, refs: refs, interval: configuration.interval,
                                                    maxBackoff: configuration.maxBackoff),
                               mirror: mirror, log: log, metrics: metrics, leading: { elector?.isLeader ?? true },
                               onCommit: { wakeup.signal() })
        // A new leader starts at once (its step fetches afresh), not at the end of the interval.
        elector?.onChange { _ in wakeup.signal() }
    }

    /// Whether this process may act now (always, without leader election).
    var leading: Bool { elector?.isLeader ?? true }

    /// Waits up to `duration` or until the follower fetched a new commit; a graceful shutdown
    /// (SIGTERM, SIGINT) ends it at once.
    private func pause(_ duration: Duration) async {
        await stoppable { [wakeup] in await wakeup.wait(upTo: duration) }
    }

    /// Blocking libgit2 work, on a thread of its own (never Swift's cooperative pool); a graceful
    /// shutdown stops a network operation under way at once.
    static func git<T: Sendable>(_ mirror: Mirror, _ body: @escaping @Sendable (Mirror) throws(GitError) -> T) async throws -> T {
        try await cancelWhenGracefulShutdown { try await mirror.offload(body) }
    }

    private func git<T: Sendable>(_ body: @escaping @Sendable (Mirror) throws(GitError) -> T) async throws -> T {
        try await Self.git(mirror, body)
    }

    /// Runs until a graceful shutdown: a pass on each new commit the follower fetched (at
    /// once), and every interval the passes that are due (resync, rollouts, retries), status
    /// afterwards. A shutdown ends the wait at once; a pass under way finishes (its Kubernetes
    /// requests are bounded by the request timeout, its git reads are local).
    public func run() async {
        var backoff = configuration.interval
        log.info("cairn run started", ["branch": configuration.branch, "path": configuration.path])
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await step()
                scheduleDriftWake()
                for (operation, n) in reconciler.client.requestCounts {
                    metrics.set(.kubeRequests, Double(n), ["operation": operation])
                }
                if let c = reconciler.cache?.counters {
                    for (count, n) in [("lists", c.lists), ("relists", c.relists), ("watches", c.watches), ("broken", c.broken), ("events", c.events)] {
                        metrics.set(.liveCache, Double(n), ["count": count])
                    }
                }
                backoff = configuration.interval
                metrics.set(.up, 1)
                await pause(configuration.interval)
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                if let gitError = error as? GitError, await follower.repair(after: gitError) {
                    // Cloned afresh by the follower, then a full pass.
                    lastError = "\(error)"
                    await pause(configuration.interval)
                    continue
                }
                lastError = "\(error)"
                metrics.increment(.errors, ["reason": Self.reason(error)])
                log.error("step failed; keeping the last good state", ["error": "\(error)", "retry_in": "\(backoff)"])
                await pause(backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
        reconciler.cache?.stop()
        log.info("cairn run stopped", [:])
    }

    static func reason(_ error: any Error) -> String {
        if let e = error as? GitError { return "git_\(e.kind)" }
        if let e = error as? KubeError { return "kube_\(e.reason.rawValue)" }
        return "other"
    }

    /// One step: on a new commit or a due resync, render, reconcile, status; otherwise the
    /// passes that are due for rollouts and retries.
    func step() async throws {
        // A standby replica does nothing; a new leader starts with a full pass at the newest
        // commit (the last one may have seen a different world).
        let leads = leading
        metrics.set(.leader, leads ? 1 : 0)
        if leads != wasLeader {
            wasLeader = leads
            if leads { lastSeen = nil; lastResync = ContinuousClock.now - configuration.resync; follower.invalidate() }
        }
        // A standby keeps no watches: a new leader lists afresh on its first pass.
        guard leads else {
            if reconciler.cache?.running == true { reconciler.cache?.stop(); drifted.clear() }
            return
        }
        // Nothing fetched yet (the first check is under way, or failing: the follower says why).
        guard let remote = follower.latest else { return }
        let resyncDue = ContinuousClock.now - lastResync >= configuration.resync
        if remote == lastSeen && !resyncDue && lastError == nil {
            // No new commit: only the rollouts cairn drives (one pod per pass) and the failing
            // clusters whose retry is due need passes.
            // Drift: the first event of a burst woke the loop after the debounce; every cluster
            // drifted so far gets its pass now.
            let due = followUp.union(retryDue).union(takeDrift())
            if !due.isEmpty, let lastApplied { try await reconcile(at: lastApplied, extraScope: due) }
            return
        }

        let commit = remote
        if configuration.statusBranch == nil, remote != lastSeen, lastApplied != nil, try await isOwnStatusCommit(commit), !resyncDue {
            // Same-branch mode: cairn's own status commit is no reason to reconcile.
            lastSeen = remote
            return
        }
        // A full pass at start, on resync, after a failure; otherwise only what the commit touched.
        let full = resyncDue || lastApplied == nil || lastError != nil
        ownHead = nil
        // Drift seen so far is corrected by this pass (a full one looks at every cluster).
        let drift = takeDrift()
        try await reconcile(at: commit, incremental: !full, extraScope: full ? nil : followUp.union(retryDue).union(drift))
        lastSeen = ownHead ?? remote
        if full { lastResync = ContinuousClock.now }
    }

    /// The drifted clusters due for a pass; a failing cluster keeps its own retry backoff.
    private func takeDrift() -> Set<String> {
        let now = ContinuousClock.now
        return drifted.take(now: now).filter { failing[$0].map { $0.next <= now } ?? true }
    }

    /// Wakes the loop when the earliest drift still pending is due (a cluster in a drift
    /// backoff, or drift that came while a step ran).
    private func scheduleDriftWake() {
        guard let due = drifted.nextDue else { return }
        if let driftWake, driftWake <= due, driftWake > .now { return }
        driftWake = due
        let wakeup = self.wakeup
        Task {
            try? await Task.sleep(until: due, clock: .continuous)
            wakeup.signal()
        }
    }

    /// A commit cairn made that touches only its status directory.
    func isOwnStatusCommit(_ commit: GitOID) async throws -> Bool {
        let info = try await git { mirror throws(GitError) in try mirror.commitInfo(commit) }
        guard info.authorEmail == configuration.author.email, let parent = info.parent else { return false }
        let changed = try await git { mirror throws(GitError) in try mirror.changedPaths(from: parent, to: commit) }
        return !changed.isEmpty && changed.allSatisfy { $0.path.hasPrefix(configuration.statusDirectory + "/") }
    }

    /// The status commit just pushed to the followed branch (same-branch mode).
    private var ownHead: GitOID?

    /// The clusters a commit touched: files added, changed or removed, by their identity before
    /// and after (a file may rename its cluster), and clusters whose validity the commit changed.
    func touched(_ state: DesiredState) -> Set<String> {
        guard let desired else { return Set(state.files.keys) }
        return state.changedClusters(since: desired)
    }

    /// Clusters with a rollout cairn drives under way (Postgres, Aerospike): they get a pass every
    /// interval until their pods are all on the new revision.
    private var followUp: Set<String> = []

    /// Clusters whose last pass failed (an object the server refused): each retried on its own
    /// backoff, while the others follow new commits at the interval. A commit touching one
    /// resets its backoff.
    private var failing: [String: (attempts: Int, next: ContinuousClock.Instant)] = [:]

    /// Every cluster's phase as of its last pass: the gauges describe the whole fleet, whatever
    /// the scope of the last pass.
    private var phases: [String: ClusterHealth.Phase] = [:]

    /// Failing clusters whose retry is due.
    private var retryDue: Set<String> {
        let now = ContinuousClock.now
        return Set(failing.filter { $0.value.next <= now }.keys)
    }

    /// Retry delay of a failing cluster (or of the status writer): the interval, doubled per
    /// failed attempt, capped.
    func retryDelay(attempts: Int) -> Duration { Self.retryDelay(attempts: attempts, configuration: configuration) }

    static func retryDelay(attempts: Int, configuration: Configuration) -> Duration {
        var delay = configuration.interval
        for _ in 1..<max(attempts, 1) where delay < configuration.maxBackoff { delay = delay * 2 }
        return min(delay, configuration.maxBackoff)
    }

    /// - Parameters:
    ///   - incremental: only the clusters whose files changed since the last pass, and `extraScope`.
    ///   - extraScope: with no `incremental`, the only clusters looked at (nil: all).
    func reconcile(at commit: GitOID, incremental: Bool = false, extraScope: Set<String>? = nil) async throws {
        let start = ContinuousClock.now
        let path = configuration.path
        let state: DesiredState
        if commit == lastApplied, !incremental, extraScope != nil, let desired {
            // A pass of some clusters at the commit already read (a rollout's next step, a
            // retry, drift): the files are what they were.
            state = desired
        } else {
            let read = try await git { mirror throws(GitError) in try mirror.yamlFiles(at: commit, under: path, sizeLimit: SpecFileParser.maximumFileSize) }
            state = DesiredState(files: read.files.map { DesiredState.File(path: $0.path, text: $0.text) }, unreadable: read.problems,
                                 options: try await reconciler.renderOptions(), previous: desired, packed: true)
        }
        let touched = touched(state)
        let changedFiles = desired.map { state.changedFiles(since: $0) }
        // A commit touching a failing cluster starts its backoff afresh.
        for id in touched { failing[id] = nil }
        for e in state.errors where changedFiles?.contains(e.file) ?? true {
            log.warning("invalid spec", ["error": e.description, "commit": commit.description])
        }
        metrics.set(.specFilesUnreadable, Double(state.unreadable.count))
        for problem in state.unreadable where desired?.unreadable.contains(problem) != true {
            log.error("spec file not read; its cluster is left as it is", ["error": problem, "commit": commit.description])
        }
        let scope: Set<String>? = incremental ? touched.union(extraScope ?? []) : extraScope
        desired = state
        if let scope, scope.isEmpty {
            // Nothing under the spec path changed (a README, say): nothing to do.
            lastApplied = commit
            lastError = nil
            return
        }
        let result = try await reconciler.reconcile(state, scope: scope)
        lastApplied = commit
        lastError = nil
        passed.withLock { $0 = true }
        metrics.observe(.reconcileSeconds, ContinuousClock.now - start, ["scope": scope == nil ? "full" : "partial"])
        metrics.setInfo(.lastAppliedCommit, ["commit": commit.description])
        for o in result.objects where o.action != .unchanged {
            metrics.increment(.objects, ["action": o.action.rawValue])
            var fields = ["object": o.reference, "cluster": o.cluster ?? "", "commit": commit.description]
            if let detail = o.detail { fields["detail"] = detail }
            if o.action == .failed { log.error("object failed", fields) } else { log.info("object \(o.action.rawValue)", fields) }
            if let c = o.cluster, [.created, .configured, .restarted, .pruned].contains(o.action) { lastChanged[c] = commit.description }
        }
        for w in result.warnings { log.warning(w, ["commit": commit.description]) }

        // The fleet's phases, and the clusters to retry on their own backoff.
        if scope == nil { phases = [:] }
        let named = state.files  // computed: once, not once per cluster in scope
        for id in scope ?? [] where named[id] == nil { phases[id] = nil; failing[id] = nil }
        let now = ContinuousClock.now
        for c in result.clusters {
            phases[c.cluster] = c.phase
            guard c.phase == .degraded else { failing[c.cluster] = nil; continue }
            let attempts = (failing[c.cluster]?.attempts ?? 0) + 1
            let delay = retryDelay(attempts: attempts)
            failing[c.cluster] = (attempts, now + delay)
            metrics.increment(.clusterFailures, ["cluster": c.cluster])
            log.warning("cluster failed; the others go on", ["cluster": c.cluster, "reasons": c.reasons.joined(separator: "; "),
                                                             "attempt": "\(attempts)", "retry_in": "\(delay)", "commit": commit.description])
        }
        for phase in ClusterHealth.Phase.allCases {
            metrics.set(.clusters, Double(phases.values.filter { $0 == phase }.count), ["phase": phase.rawValue])
        }
        metrics.set(.clustersFailing, Double(failing.count))
        await emitEvents(result, state: state)
        // Rollouts cairn drives: OnDelete StatefulSets with pods on an older revision, or whose
        // template this pass changed. They get passes until done.
        var next = scope == nil ? Set<String>() : followUp.subtracting(scope!)
        let reconfigured = Set(result.objects.filter { $0.action == .configured && $0.reference.hasPrefix("StatefulSet/") }.compactMap(\.cluster))
        for c in result.clusters {
            let pending = c.rollouts.contains { $0.strategy == "OnDelete" && !$0.updatedAll } || reconfigured.contains(c.cluster)
            if pending { next.insert(c.cluster) }
        }
        followUp = next
        // Losing the lease stops acting at once: no status from a former leader.
        guard leading else { return }
        // A full pass re-reads the status branch: someone may have deleted or changed it.
        if scope == nil { await statusWriter.forget() }
        await writeStatus(result, commit: commit, specFiles: named)
        // A pass's transient memory (LIST pages, plans, results) is freed by now; give it back
        // to the system rather than keep the pass's peak as the idle daemon's size.
        Self.releaseFreedMemory()
    }

    /// glibc's `malloc_trim(0)` (not in Swift's Glibc module; looked up once).
    static func releaseFreedMemory() {
        #if canImport(Glibc)
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = mallocTrim else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
        #endif
    }

    /// glibc's allocator for a long-running process with a few threads: two arenas instead of
    /// eight per core (each keeps its own free memory), and blocks of 256 KB or more (LIST
    /// responses, their buffers) mapped and unmapped on their own instead of from the heap, at a
    /// fixed threshold (glibc raises it to the largest block freed, up to 32 MB, which puts every
    /// later LIST page in the heap). Measured at 1,000 clusters: about 4 MB less RSS. Call once,
    /// early: the arena limit holds for arenas made afterwards.
    public static func tuneAllocator() {
        #if canImport(Glibc)
        typealias Option = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Option.self)
        let arenaMax: Int32 = -8, mmapThreshold: Int32 = -3  // M_ARENA_MAX, M_MMAP_THRESHOLD (malloc.h)
        _ = mallopt(arenaMax, 2)
        _ = mallopt(mmapThreshold, 256 * 1024)
        #endif
    }

    #if canImport(Glibc)
    private nonisolated(unsafe) static let mallocTrim = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim")
    #endif

    // MARK: - Events

    /// Blocked changes and failures already reported, so that each is one Event, not one per pass.
    private var reportedBlocked: Set<String> = []
    private var reportedFailures: [String: (cluster: String, detail: String)] = [:]

    /// Kubernetes Events: on a cluster's StatefulSet, a rollout starting, each pod cairn
    /// restarts, a blocked change (once); on an object the server refused, the refusal (once
    /// per message). Best effort: a failure is logged, never fatal.
    func emitEvents(_ result: Reconciler.Result, state: DesiredState) async {
        var failingNow: [String: (cluster: String, detail: String)] = [:]
        for o in result.objects {
            let parts = o.reference.split(separator: "/", maxSplits: 2).map(String.init)
            guard parts.count == 3 else { continue }
            let (kind, namespace, name) = (parts[0], parts[1], parts[2])
            var event: (apiVersion: String, kind: String, name: String, type: String, reason: String, message: String)?
            switch (o.action, kind) {
            case (.configured, "StatefulSet") where o.detail?.contains(ConfigHash.annotation) == true:
                event = ("apps/v1", kind, name, "Normal", "RolloutStarted", "configuration changed: the pods restart on the new revision (\(o.detail ?? ""))")
            case (.restarted, "Pod"):
                event = ("apps/v1", "StatefulSet", String(name[..<(name.lastIndex(of: "-") ?? name.endIndex)]), "Normal", "PodRestarted",
                         "cairn restarted pod \(name): \(o.detail ?? "")")
            case (.blocked, "StatefulSet"):
                let key = "\(o.reference) \(o.detail ?? "")"
                guard reportedBlocked.insert(key).inserted else { continue }
                event = ("apps/v1", kind, name, "Warning", "ChangeBlocked", o.detail ?? "an immutable field changed")
            case (.failed, _):
                failingNow[o.reference] = (o.cluster ?? "", o.detail ?? "")
                guard reportedFailures[o.reference]?.detail != o.detail ?? "" else { continue }
                let apiVersion = state.clusters.first { $0.spec.identity == o.cluster }?.objects.first { $0.reference == o.reference }?.apiVersion
                event = (apiVersion ?? "v1", kind, name, "Warning", "ApplyFailed", "cluster \(o.cluster ?? "?"): \(o.detail ?? "failed")")
            default:
                continue
            }
            guard let event else { continue }
            let now = LeaderElector.microTime(Date())
            let seconds = String(now.prefix(19)) + "Z"
            let body: JSONValue = [
                "apiVersion": "v1", "kind": "Event",
                "metadata": ["name": .string("\(event.name).\(String(UInt64(Date().timeIntervalSince1970 * 1e9), radix: 16))"),
                             "namespace": .string(namespace)],
                "involvedObject": ["apiVersion": .string(event.apiVersion), "kind": .string(event.kind),
                                   "namespace": .string(namespace), "name": .string(event.name)],
                "type": .string(event.type), "reason": .string(event.reason), "message": .string(String(event.message.prefix(1024))),
                "source": ["component": "cairn"], "reportingComponent": "cairn", "reportingInstance": .string(elector?.identity ?? "cairn"),
                "firstTimestamp": .string(seconds), "lastTimestamp": .string(seconds), "count": 1,
            ]
            do {
                _ = try await reconciler.client.create(body)
            } catch {
                log.warning("cannot record an event",
                            ["object": "\(event.kind)/\(namespace)/\(event.name)", "reason": event.reason, "error": error.description])
            }
        }
        // Failures of clusters this pass looked at and found healthy are forgotten.
        let looked = Set(result.clusters.map(\.cluster))
        reportedFailures = reportedFailures.filter { !looked.contains($0.value.cluster) }.merging(failingNow) { _, new in new }
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

    /// Hands the pass's status files to the writer, which pushes them on its own (with
    /// `--status-same-branch`, at once: the next step must recognise the commit as cairn's).
    func writeStatus(_ result: Reconciler.Result, commit: GitOID, specFiles: [String: String]) async {
        guard let pushed = await statusWriter.current() else { return }
        // lastChanged survives a restart through the files themselves.
        for (path, text) in pushed {
            let cluster = String(path.dropFirst(configuration.statusDirectory.count + 1).dropLast(".yaml".count))
            guard lastChanged[cluster] == nil,
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix("lastChanged: ") }) else { continue }
            lastChanged[cluster] = line.dropFirst("lastChanged: ".count).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }
        var files: [String: String] = [:]
        // Grouped once: filtering every object per cluster is clusters x objects (10^9 at 10,000).
        let byCluster = Dictionary(grouping: result.objects.filter { $0.cluster != nil }, by: { $0.cluster! })
        for health in result.clusters {
            let path = "\(configuration.statusDirectory)/\(health.cluster).yaml"
            files[path] = Self.statusFile(health, objects: byCluster[health.cluster] ?? [], commit: commit.description, specFile: specFiles[health.cluster],
                                          lastChanged: lastChanged[health.cluster])
        }
        // Clusters pruned (their objects gone this pass) lose their status file.
        let pruned = Set(result.objects.filter { $0.action == .pruned }.compactMap(\.cluster))
        await statusWriter.submit(files: files, pruned: pruned, commit: commit)
        if let own = await statusWriter.takeOwnHead() { ownHead = own }
    }

    /// For /readyz (read from the HTTP server's threads): a pass has succeeded since start; with
    /// leader election, a standby is ready once it has read the Lease (it relays webhooks to the
    /// leader, and a Deployment's rollout waits for its new pods, which start on standby).
    public nonisolated var ready: Bool {
        if let elector, !elector.isLeader { return elector.inContact }
        return passed.withLock { $0 }
    }
    private nonisolated let passed = Mutex(false)
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

/// Clusters a watch reported drift on, each with when its burst began, and per cluster how
/// many drift passes it had in a row: a cluster whose drift comes back within a minute of its
/// last drift pass (a controller or a person fighting cairn over a field) waits twice as long
/// each time, from the debounce up to `longest`, instead of a pass every second.
final class DriftInbox: Sendable {
    private struct State {
        var pending: [String: ContinuousClock.Instant] = [:]
        var streak: [String: (count: Int, last: ContinuousClock.Instant)] = [:]
    }

    private let state = Mutex(State())
    let debounce: Duration
    let longest: Duration

    init(debounce: Duration = .seconds(1), longest: Duration = .seconds(300)) {
        self.debounce = debounce
        self.longest = longest
    }

    /// Records drift on a cluster; true when it is the first of a burst (none pending before).
    func add(_ cluster: String) -> Bool {
        state.withLock { s in
            let first = s.pending.isEmpty
            if s.pending[cluster] == nil { s.pending[cluster] = .now }
            return first
        }
    }

    private func notBefore(_ cluster: String, _ s: State) -> ContinuousClock.Instant {
        let seen = s.pending[cluster] ?? .now
        guard let streak = s.streak[cluster], streak.count > 0 else { return seen }
        var wait = debounce
        for _ in 0..<streak.count where wait < longest { wait = wait * 2 }
        return max(seen, streak.last + min(wait, longest))
    }

    /// Takes the clusters due at `now` (their backoff included), recording their passes.
    func take(now: ContinuousClock.Instant = .now) -> Set<String> {
        state.withLock { s in
            let due = s.pending.keys.filter { notBefore($0, s) <= now }
            for cluster in due {
                s.pending[cluster] = nil
                let again = s.streak[cluster].map { now - $0.last < .seconds(60) } ?? false
                s.streak[cluster] = (again ? (s.streak[cluster]?.count ?? 0) + 1 : 0, now)
            }
            if s.streak.count > 10_000 { s.streak = s.streak.filter { now - $0.value.last < .seconds(60) } }
            return Set(due)
        }
    }

    /// When the earliest pending cluster is due; nil with none pending.
    var nextDue: ContinuousClock.Instant? {
        state.withLock { s in s.pending.keys.map { notBefore($0, s) }.min() }
    }

    /// Forgets everything (a standby).
    func clear() {
        state.withLock { $0 = State() }
    }
}
