@testable import Daemon
import Foundation
import Testing

/// The daemon's wake-up signal (the follower wakes the reconcile loop with it): a signal given
/// before the wait is not lost, a wait times out, a cancelled wait returns, and none of these
/// leaves the signal unusable (an AsyncStream's did, once its waiting task was cancelled).
/// The bounds are far from the 90 s timeout: the other suites can keep the two threads of
/// Swift's pool busy for seconds on this machine (CI once measured 44 s for a cancelled wait
/// while the suites' synchronous start-up held both threads), and a lost signal or a cancelled
/// wait that does not return shows as the full 90 s.
@Suite("Wakeup")
struct WakeupTests {
    func elapsed(_ body: () async -> Void) async -> Duration {
        let start = ContinuousClock.now
        await body()
        return ContinuousClock.now - start
    }

    @Test func aSignalBeforeTheWaitIsKeptOnce() async {
        let wakeup = Wakeup()
        wakeup.signal()
        wakeup.signal()
        #expect(await elapsed { await wakeup.wait(upTo: .seconds(90)) } < .seconds(60))
        // Two signals before a wait are one wake-up: the next wait times out.
        #expect(await elapsed { await wakeup.wait(upTo: .milliseconds(300)) } >= .milliseconds(300))
    }

    @Test func aSignalWakesAWaitUnderWay() async {
        let wakeup = Wakeup()
        Task {
            try? await Task.sleep(for: .milliseconds(200))
            wakeup.signal()
        }
        #expect(await elapsed { await wakeup.wait(upTo: .seconds(90)) } < .seconds(60))
    }

    @Test func aCancelledWaitReturnsAndTheSignalStillWorks() async {
        let wakeup = Wakeup()
        let waiting = Task { await wakeup.wait(upTo: .seconds(90)) }
        try? await Task.sleep(for: .milliseconds(100))
        waiting.cancel()
        #expect(await elapsed { await waiting.value } < .seconds(60))
        wakeup.signal()
        #expect(await elapsed { await wakeup.wait(upTo: .seconds(90)) } < .seconds(60))
        // Timed-out waits leave it usable too.
        for _ in 0..<3 { await wakeup.wait(upTo: .milliseconds(20)) }
        Task {
            try? await Task.sleep(for: .milliseconds(100))
            wakeup.signal()
        }
        #expect(await elapsed { await wakeup.wait(upTo: .seconds(90)) } < .seconds(60))
    }
}
