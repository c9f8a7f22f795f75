@testable import Daemon
import Testing

/// The daemon's drift inbox: a burst is one wake-up, and a cluster whose drift keeps coming
/// back (a controller fighting cairn over a field) waits longer each time instead of getting a
/// pass every second.
@Suite("drift inbox")
struct DriftInboxTests {
    @Test func aBurstIsOneWakeUpAndTakenAtOnce() {
        let inbox = DriftInbox(debounce: .seconds(1), longest: .seconds(300))
        #expect(inbox.add("db/a"))
        #expect(!inbox.add("db/b"))
        #expect(!inbox.add("db/a"))
        #expect(inbox.take(now: .now) == ["db/a", "db/b"])
        #expect(inbox.nextDue == nil)
        #expect(inbox.add("db/c"), "an empty inbox starts a new burst")
    }

    @Test func driftThatComesBackBacksOffUpToTheLongest() {
        let inbox = DriftInbox(debounce: .seconds(1), longest: .seconds(8))
        _ = inbox.add("db/a")
        var now = ContinuousClock.now
        #expect(inbox.take(now: now) == ["db/a"], "the first drift pass waits for nothing but the wake-up")
        // Back 10 s later, within the minute: taken at once, but it starts a streak.
        now = now + .seconds(10)
        _ = inbox.add("db/a")
        #expect(inbox.take(now: now) == ["db/a"])
        // Back again: 2 s after that pass, then 4 s, then 8 s, then capped at 8 s.
        for wait in [2, 4, 8, 8] {
            _ = inbox.add("db/a")
            #expect(inbox.take(now: now + .seconds(wait - 1)).isEmpty, "due before its \(wait) s")
            #expect(inbox.nextDue.map { $0 <= now + .seconds(wait) } == true)
            #expect(inbox.take(now: now + .seconds(wait)) == ["db/a"], "not due after \(wait) s")
            now = now + .seconds(wait)
        }
        // Another cluster is not held back by it.
        _ = inbox.add("db/b")
        #expect(inbox.take(now: now) == ["db/b"])
        // A minute of quiet ends the streak.
        now = now + .seconds(61)
        _ = inbox.add("db/a")
        #expect(inbox.take(now: now) == ["db/a"])
        _ = inbox.add("db/a")
        #expect(inbox.take(now: now + .milliseconds(1)) == ["db/a"], "the streak did not end: it would wait 8 s")
    }
}
