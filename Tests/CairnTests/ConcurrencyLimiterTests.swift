@testable import KubeAPI
import Synchronization
import Testing

@Suite("the client's concurrency limiter")
struct ConcurrencyLimiterTests {
    /// Many more callers than places: never more than `limit` at once, every caller served, and
    /// the queue empty afterwards (its head index compacted past 1,024 spent waiters). Alone it
    /// takes 20 ms; beside the other suites on two cores the cooperative pool can be busy for
    /// over a minute, hence the generous limit (a lost wake-up hangs it until then).
    @Test(.timeLimit(.minutes(5))) func boundsAndServesEveryWaiter() async {
        let limiter = ConcurrencyLimiter(limit: 3)
        let state = Tally()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<2500 {
                group.addTask {
                    await limiter.run {
                        state.counts.withLock { $0.running += 1; $0.most = max($0.most, $0.running) }
                        await Task.yield()
                        state.counts.withLock { $0.running -= 1; $0.done += 1 }
                    }
                }
            }
        }
        let final = state.counts.withLock { $0 }
        #expect(final.done == 2500)
        #expect(final.most <= 3 && final.most > 0)
        #expect(await limiter.queued == 0)
    }
}

private final class Tally: Sendable {
    let counts = Mutex((running: 0, most: 0, done: 0))
}
