import Foundation
public import GitStore
public import Logging
import ServiceLifecycle
import Synchronization

/// Follows the branch as a service of its own: every interval the remote-head check (one round
/// trip, no fetch); on a new head a fetch of that branch only. The newest fetched commit is
/// published (`latest`) and the reconcile loop woken, so a long pass never delays the next
/// fetch, and a hung fetch never delays a pass (follow-ups and retries of failing clusters go on
/// at the last commit). Failures are retried on the follower's own backoff; a damaged mirror is
/// moved aside and cloned afresh. `checkNow()` asks for a check at once (a push webhook, a new
/// leader).
public actor GitFollower: Service {
    public struct Configuration: Sendable {
        public var branch: String
        /// Refs whose objects must be readable (the followed and the status branch): what a
        /// damage check looks at.
        public var refs: [String]
        public var interval: Duration
        public var maxBackoff: Duration
    }

    let configuration: Configuration
    let mirror: Mirror
    let log: Logging.Logger
    let metrics: Metrics
    /// Whether this process may act now (leader election): a standby replica does not fetch.
    let leading: @Sendable () -> Bool
    /// Called after each new commit is fetched: wakes the reconcile loop.
    let onCommit: @Sendable () -> Void

    /// The newest fetched commit of the branch, or nil before the first fetch.
    public nonisolated var latest: GitOID? { published.withLock { $0 } }
    private nonisolated let published = Mutex<GitOID?>(nil)
    /// The remote's head as of the last check that fetched it.
    private var fetched: GitOID?
    /// Counts mirror repairs: a check that started before one drops what it fetched.
    private var repairs = 0
    private let wakeup = Wakeup()

    init(configuration: Configuration, mirror: Mirror, log: Logging.Logger, metrics: Metrics,
         leading: @escaping @Sendable () -> Bool, onCommit: @escaping @Sendable () -> Void) {
        self.configuration = configuration
        self.mirror = mirror
        self.log = log
        self.metrics = metrics
        self.leading = leading
        self.onCommit = onCommit
    }

    /// A head check at once, instead of at the end of the interval.
    public nonisolated func checkNow() { wakeup.signal() }

    /// Forgets the last fetched commit (`latest` is nil until the next check has fetched): a
    /// new leader must not act on what it fetched before it lost the lease.
    public nonisolated func invalidate() {
        published.withLock { $0 = nil }
        wakeup.signal()
    }

    /// Until a graceful shutdown, which ends a wait or a git operation under way at once.
    public func run() async throws {
        var backoff = configuration.interval
        var wasLeader = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let leads = leading()
            // A new leader fetches afresh: the last fetch may be old.
            if leads && !wasLeader { fetched = nil }
            wasLeader = leads
            var delay = configuration.interval
            if leads {
                do {
                    try await check()
                    backoff = configuration.interval
                } catch {
                    if Task.isShuttingDownGracefully || Task.isCancelled { break }
                    if let gitError = error as? GitError, await repair(after: gitError) {
                        fetched = nil  // cloned afresh on the next check
                    } else {
                        metrics.increment(.errors, ["reason": Daemon.reason(error)])
                        log.error("git check failed; keeping the last good state", ["error": "\(error)", "retry_in": "\(backoff)"])
                        delay = backoff
                        backoff = min(backoff * 2, configuration.maxBackoff)
                    }
                }
            }
            await stoppable { [wakeup, delay] in await wakeup.wait(upTo: delay) }
        }
    }

    /// The remote-head check; on a new head, the fetch, and the new commit published.
    func check() async throws {
        let start = ContinuousClock.now
        let ref = "refs/heads/\(configuration.branch)"
        let remote = try await git { mirror throws(GitError) in try mirror.remoteHead(ref) }
        metrics.observe(.gitCheckSeconds, ContinuousClock.now - start)
        guard let remote else {
            throw GitError(.notFound, operation: "check \(configuration.branch)", message: "the remote has no branch \(configuration.branch)")
        }
        guard remote != fetched || latest == nil else { return }
        let generation = repairs
        let fetchStart = ContinuousClock.now
        let branch = configuration.branch
        let commit = try await git { mirror throws(GitError) in
            try mirror.fetch(branches: [branch])
            return try mirror.resolve(ref)
        }
        metrics.observe(.gitFetchSeconds, ContinuousClock.now - fetchStart)
        // A repair meanwhile (the loop's, after a failed read) emptied the mirror: fetch again.
        guard generation == repairs else { return }
        fetched = remote
        let changed = published.withLock { latest in
            defer { latest = commit }
            return latest != commit
        }
        if changed { onCommit() }
    }

    /// After a git failure that is not the network's: when the mirror in the cache cannot read
    /// what its refs name (a deleted or truncated pack, deleted objects), says so, moves it
    /// aside and starts an empty one, which the next fetch fills. Live objects are not touched.
    /// Also called by the reconcile loop when reading a commit fails.
    func repair(after error: GitError) async -> Bool {
        switch error.kind {
        case .timeout, .cancelled, .hostKeyUnknown, .hostKeyChanged, .authentication, .pushRejected: return false
        default: break
        }
        let refs = configuration.refs
        guard let damage = try? await git({ $0.damage(refs: refs) }) else { return false }
        do {
            let aside = try await git { mirror throws(GitError) in try mirror.moveAsideAndRecreate() }
            repairs += 1
            metrics.increment(.mirrorRepairs)
            log.error("the git mirror in the cache directory is damaged; moved it aside, cloning afresh",
                      ["damage": damage, "moved_to": aside, "mirror": mirror.path, "error": "\(error)"])
            fetched = nil
            published.withLock { $0 = nil }
            wakeup.signal()
            return true
        } catch {
            log.error("the git mirror in the cache directory is damaged and cannot be moved aside",
                      ["damage": damage, "mirror": mirror.path, "error": "\(error)"])
            return false
        }
    }

    private func git<T: Sendable>(_ body: @escaping @Sendable (Mirror) throws(GitError) -> T) async throws -> T {
        try await Daemon.git(mirror, body)
    }
}

/// Runs `body`, cancelled at once by a graceful shutdown (the caller then sees the shutdown).
func stoppable(_ body: @escaping @Sendable () async -> Void) async {
    await cancelWhenGracefulShutdown { await body() }
}
