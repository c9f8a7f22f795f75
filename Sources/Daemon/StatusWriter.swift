import ClusterSpecs
import Foundation
public import GitStore
public import Logging
import ServiceLifecycle

/// Writes status files to git as a service of its own: the reconcile loop hands it each pass's
/// files and goes on; the writer commits what changed and pushes, retrying a refused or hung push
/// on its own backoff. A push that hangs until the git timeout never holds back a reconcile.
///
/// With its own branch (`cairn-status`), the writer fetches and updates only that branch's ref,
/// so it runs beside the follower's fetches. On the followed branch itself
/// (`--status-same-branch`), both would move the same ref: there `submit` pushes at once, inside
/// the pass, as the loop needs the commit it made to recognise it.
public actor StatusWriter: Service {
    public struct Configuration: Sendable {
        public var branch: String
        public var directory: String
        public var author: GitSignature
        /// The status branch is the followed branch.
        public var sameBranch: Bool
    }

    let configuration: Configuration
    let mirror: Mirror
    let log: Logging.Logger
    let metrics: Metrics
    /// Whether this process may push now (leader election).
    let leading: @Sendable () -> Bool
    /// The delay before retry `attempts`.
    let retryDelay: @Sendable (Int) -> Duration

    /// The status files as last pushed (path → content); nil until read from the branch.
    private var pushed: [String: String]?
    /// The branch is to be read again before the next commit (each resync: someone may have
    /// deleted or changed it). The writer's own loop reads it, never the pass.
    private var stale = false
    /// Submissions made while the branch is stale, merged, for the loop to diff once it has
    /// read the branch again.
    private var queued: (files: [String: String], pruned: Set<String>, commit: GitOID)?
    /// Files computed but not pushed yet, and the spec commit they describe.
    private var pending: (changes: [String: Data?], commit: GitOID)?
    private var failures = 0
    private var retryAt = ContinuousClock.now
    /// The status commit last pushed to the followed branch (same-branch mode).
    private var ownHead: GitOID?
    /// A push is under way (the actor is reentrant across its await).
    private var flushing = false
    /// Wake-ups of the writer's loop: a submission, or the once-a-second retry check.
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(configuration: Configuration, mirror: Mirror, log: Logging.Logger, metrics: Metrics,
         leading: @escaping @Sendable () -> Bool, retryDelay: @escaping @Sendable (Int) -> Duration) {
        self.configuration = configuration
        self.mirror = mirror
        self.log = log
        self.metrics = metrics
        self.leading = leading
        self.retryDelay = retryDelay
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The status files on the branch, read once (then as last pushed, or as last read by the
    /// writer's loop); nil when the branch cannot be read (then nothing is submitted: the files
    /// are written whole once it can).
    func current() async -> [String: String]? {
        if let pushed { return pushed }
        do {
            pushed = try await read()
        } catch {
            log.error("cannot read the status branch", ["branch": configuration.branch, "error": "\(error)"])
        }
        return pushed
    }

    /// Reads the branch again before the next commit (every resync, as someone may have
    /// deleted or changed it): in the writer's own loop, so that a status server that hangs
    /// never holds up a pass. On the followed branch itself, at once (the push is inline there).
    func forget() {
        if configuration.sameBranch { pushed = nil } else { stale = true }
    }

    /// The status commit just pushed to the followed branch, once.
    func takeOwnHead() -> GitOID? {
        defer { ownHead = nil }
        return ownHead
    }

    /// The status files of the clusters a pass looked at, and the clusters it pruned (their files
    /// go). Only what differs from the branch is committed.
    func submit(files: [String: String], pruned: Set<String>, commit: GitOID) async {
        if stale {
            var merged = queued ?? ([:], [], commit)
            for (path, text) in files { merged.files[path] = text }
            merged.pruned.formUnion(pruned)
            merged.commit = commit
            queued = merged
            wake.yield()
            return
        }
        guard let pushed = await current() else { return }
        var changes = pending?.changes ?? [:]
        for (path, text) in files {
            if pushed[path] != text { changes[path] = .some(Data(text.utf8)) } else { changes.removeValue(forKey: path) }
        }
        for path in pushed.keys.sorted() where files[path] == nil && pruned.contains(cluster(path)) {
            changes[path] = .some(nil)
        }
        pending = changes.isEmpty ? nil : (changes, commit)
        // Same branch: at once, inside the pass. Otherwise the writer's loop pushes it now.
        if configuration.sameBranch { await flush(stoppable: true) } else { wake.yield() }
    }

    private func cluster(_ path: String) -> String {
        String(path.dropFirst(configuration.directory.count + 1).dropLast(".yaml".count))
    }

    /// Until a graceful shutdown: pushes what is pending when it is submitted or its retry is
    /// due; at shutdown, one last attempt (the pass under way has finished by then: this service
    /// stops after the reconcile loop).
    public func run() async throws {
        let (wakes, wake) = (self.wakes, self.wake)
        // One consumer of the wake-ups for the whole run, never cancelled before the shutdown:
        // cancelling a task that waits on an AsyncStream finishes the stream (an earlier
        // version raced the wait with a timer, and spun once the timer had won). Retries are
        // looked for once a second, by a ticker of its own.
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    wake.yield()
                }
            }
            for await _ in wakes.cancelOnGracefulShutdown() {
                if stale, ContinuousClock.now >= retryAt { await reread() }
                if pending != nil && ContinuousClock.now >= retryAt { await flush(stoppable: true) }
            }
            group.cancelAll()
        }
        if stale, queued != nil, !Task.isCancelled { await reread(stoppable: false) }
        if pending != nil, !Task.isCancelled { await flush(stoppable: false) }
    }

    /// Reads the branch again (after `forget()`), then diffs what was submitted meanwhile
    /// against it. A failed read is retried on the writer's backoff.
    func reread(stoppable: Bool = true) async {
        guard stale, leading() else { return }
        do {
            let read = stoppable ? try await cancelWhenGracefulShutdown { [self] in try await self.read() } : try await self.read()
            pushed = read
            stale = false
            failures = 0
            if let queued {
                self.queued = nil
                await submit(files: queued.files, pruned: queued.pruned, commit: queued.commit)
            }
        } catch {
            if Task.isShuttingDownGracefully && stoppable { return }
            failures += 1
            let delay = retryDelay(failures)
            retryAt = ContinuousClock.now + delay
            log.error("cannot read the status branch; reconciling goes on", ["branch": configuration.branch, "error": "\(error)",
                                                                               "attempt": "\(failures)", "retry_in": "\(delay)"])
        }
    }

    /// Pushes the pending files. A refused or failed push is retried on the writer's backoff.
    /// - Parameter stoppable: a graceful shutdown stops the push under way (not for the last
    ///   attempt, made during the shutdown).
    func flush(stoppable: Bool) async {
        guard let pending, leading(), !flushing else { return }
        flushing = true
        defer {
            flushing = false
            // A commit of every cluster's file (the first pass's, at 10,000 clusters 10 MB of
            // text and the tree libgit2 builds of it) is freed by now: given back, as after a pass.
            Daemon.releaseFreedMemory()
        }
        let branch = configuration.branch
        let names = pending.changes.keys.sorted().map(cluster)
        let message = "cairn: status of \(abbreviatedList(names)) at \(pending.commit.description.prefix(12))"
        let author = configuration.author
        // Should the branch be gone (deleted meanwhile), it comes back with every file.
        var whole = (pushed ?? [:]).mapValues { Data($0.utf8) }
        for (path, data) in pending.changes { whole[path] = data }
        let complete = whole
        let push: @Sendable () async throws -> GitOID = { [mirror] in
            try await mirror.offload { mirror throws(GitError) in
                try mirror.commitAndPush(branch: branch, changes: pending.changes, whole: complete, message: message, author: author)
            }
        }
        do {
            let commit: GitOID
            if stoppable {
                commit = try await cancelWhenGracefulShutdown(push)
            } else {
                commit = try await push()
            }
            for (path, data) in pending.changes {
                let text: String? = data.map { String(decoding: $0, as: UTF8.self) }
                pushed?[path] = text
            }
            // What was submitted meanwhile and differs from what was pushed stays pending.
            if var rest = self.pending {
                rest.changes = rest.changes.filter { (path: String, data: Data?) -> Bool in
                    let text: String? = data.map { String(decoding: $0, as: UTF8.self) }
                    return text != pushed?[path]
                }
                self.pending = rest.changes.isEmpty ? nil : rest
            }
            failures = 0
            metrics.increment(.statusCommits)
            log.info("status committed", ["commit": commit.description, "branch": branch, "clusters": names.joined(separator: ",")])
            if configuration.sameBranch { ownHead = commit }
        } catch {
            if Task.isShuttingDownGracefully && stoppable { return }
            failures += 1
            let delay = retryDelay(failures)
            retryAt = ContinuousClock.now + delay
            metrics.increment(.statusPushFailures)
            log.error("status not pushed; reconciling goes on", ["branch": branch, "error": "\(error)", "attempt": "\(failures)", "retry_in": "\(delay)"])
        }
    }

    /// The status files on the status branch now (none when the branch does not exist yet),
    /// fetched first: the follower fetches only its own branch, so only this fetch sees the
    /// status branch deleted or changed on the remote.
    func read() async throws -> [String: String] {
        let (branch, directory) = (configuration.branch, configuration.directory)
        let found: [TreeFile]? = try await mirror.offload { mirror throws(GitError) -> [TreeFile]? in
            try mirror.fetch(branches: [branch])
            switch Result<GitOID, GitError>(catching: { () throws(GitError) in try mirror.resolve("refs/heads/\(branch)") }) {
            case .success(let head): return try mirror.files(at: head, under: directory)
            case .failure(let error) where error.kind == .notFound: return nil  // no status branch yet
            case .failure(let error): throw error
            }
        }
        guard let files = found else { return [:] }
        var out: [String: String] = [:]
        for file in files {
            if case .file(let data) = file.content { out[file.path] = String(decoding: data, as: UTF8.self) }
        }
        return out
    }
}
