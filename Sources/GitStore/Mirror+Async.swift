import Foundation
import Synchronization

/// A request to stop the git operations that carry it: checked by libgit2's progress callbacks
/// (which then return an error, so libgit2 unwinds) and by the wait on a network operation. A
/// token may have a parent (the daemon's shutdown): cancelling the parent cancels it too.
public final class GitCancellation: Sendable {
    private let flag = Mutex(false)
    private let parent: GitCancellation?

    public init(parent: GitCancellation? = nil) {
        self.parent = parent
    }

    public func cancel() { flag.withLock { $0 = true } }

    public var isCancelled: Bool { flag.withLock { $0 } || (parent?.isCancelled ?? false) }
}

extension Mirror {
    /// Runs blocking libgit2 work on a thread of its own, never on Swift's cooperative pool. When
    /// the calling task is cancelled (a shutdown), the work is told to stop: a network operation
    /// returns `.cancelled` within a tenth of a second, and stops: its sockets are shut down (a
    /// read blocked on a server that sends nothing returns; SocketStream) and libgit2 unwinds.
    /// The mirror is left as it was.
    public func offload<T: Sendable>(_ body: @escaping @Sendable (Mirror) throws(GitError) -> T) async throws(GitError) -> T {
        let token = GitCancellation(parent: cancellation)
        var bound = self
        bound.cancellation = token
        let mirror = bound
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, GitError>, Never>) in
                let thread = Thread {
                    continuation.resume(returning: Result { () throws(GitError) -> T in try body(mirror) })
                }
                thread.stackSize = 4 << 20
                thread.start()
            }
        } onCancel: {
            token.cancel()
        }
        return try result.get()
    }
}
