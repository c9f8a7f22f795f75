import Synchronization

/// A wake-up signal for one consumer: `signal()` wakes the waiting `wait(upTo:)`, or, when
/// nobody waits, the next one (signals do not count up: several before a wait are one wake-up).
/// Unlike an `AsyncStream`, which a cancelled `next()` finishes for good, a wait that times out
/// or is cancelled leaves the signal as usable as before.
final class Wakeup: Sendable {
    private struct State {
        var signalled = false
        var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
        /// A wait cancelled before it registered its continuation.
        var cancelled: UInt64?
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    init() {}

    func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else { s.signalled = true; return nil }
            s.waiter = nil
            return w.continuation
        }
        waiter?.resume()
    }

    /// Returns on a signal (also one given before the call), after `duration`, or when the
    /// calling task is cancelled (a graceful shutdown through `cancelWhenGracefulShutdown`).
    func wait(upTo duration: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask { await self.signalled() }
            await group.next()
            group.cancelAll()
        }
    }

    private func signalled() async {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.cancelled == id {
                        s.cancelled = nil  // cancelled already: the signal stays for the next wait
                        return true
                    }
                    if s.signalled {
                        s.signalled = false
                        return true
                    }
                    precondition(s.waiter == nil, "Wakeup has one consumer")
                    s.waiter = (id, continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard let w = s.waiter, w.id == id else {
                    s.cancelled = id
                    return nil
                }
                s.waiter = nil
                return w.continuation
            }
            waiter?.resume()
        }
    }
}
