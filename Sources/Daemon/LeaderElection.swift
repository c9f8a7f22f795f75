public import ClusterSpecs
import Foundation
public import ServiceLifecycle
import Synchronization
public import Logging
public import KubeAPI

/// Leader election with a `coordination.k8s.io/v1` Lease, as client-go does it: the leader
/// renews the Lease every `renewInterval`; a candidate takes it over once it has not been
/// renewed for `leaseDuration`. Every write carries the resourceVersion read, so of two
/// candidates only one wins. A leader that cannot renew within `leaseDuration` stops acting at
/// once, before anyone else can take over.
public final class LeaderElector: Service {
    public let client: KubeClient
    public let namespace: String
    public let name: String
    public let identity: String
    public let leaseDuration: Duration
    public let renewInterval: Duration
    let log: Logging.Logger

    private let leaderUntil = Mutex<ContinuousClock.Instant?>(nil)

    public init(client: KubeClient, namespace: String, name: String = "cairn", identity: String,
                leaseDuration: Duration = .seconds(15), log: Logging.Logger) {
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.leaseDuration = leaseDuration
        self.renewInterval = leaseDuration / 3
        self.log = log
    }

    /// True while this process holds the Lease: its last renewal is less than `leaseDuration`
    /// old (measured on the local monotonic clock, from before the renewal was sent).
    public var isLeader: Bool {
        leaderUntil.withLock { until in until.map { ContinuousClock.now < $0 } ?? false }
    }

    static func microTime(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"
        return f.string(from: date)
    }

    static func parseTime(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }

    /// One attempt to acquire or renew; returns whether this process leads now.
    @discardableResult
    public func tryAcquireOrRenew() async -> Bool {
        let sent = ContinuousClock.now
        let now = Date()
        let seconds = Int(leaseDuration.components.seconds)
        let ref = ObjectReference(apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespace: namespace, name: name)
        var spec: JSONObject = ["holderIdentity": .string(identity), "leaseDurationSeconds": .int(max(1, seconds)),
                                "renewTime": .string(Self.microTime(now))]
        do throws(KubeError) {
            let current: JSONValue
            do throws(KubeError) {
                current = try await client.get(ref)
            } catch where error.reason == .notFound {
                spec["acquireTime"] = .string(Self.microTime(now))
                spec["leaseTransitions"] = 0
                _ = try await client.create(["apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                             "metadata": ["name": .string(name), "namespace": .string(namespace)], "spec": .object(spec)])
                return became(leader: true, since: sent, note: "acquired a new lease")
            }
            let holder = current["spec", "holderIdentity"]?.stringValue
            let renewed = current["spec", "renewTime"]?.stringValue.flatMap(Self.parseTime)
            let duration = Double(current["spec", "leaseDurationSeconds"]?.intValue ?? seconds)
            if let holder, holder != identity, let renewed, now.timeIntervalSince(renewed) < duration {
                return became(leader: false, since: sent, note: "held by \(holder)")
            }
            var transitions = current["spec", "leaseTransitions"]?.intValue ?? 0
            if holder != identity {
                transitions += 1
                spec["acquireTime"] = .string(Self.microTime(now))
            } else if let acquired = current["spec", "acquireTime"] {
                spec["acquireTime"] = acquired
            }
            spec["leaseTransitions"] = .int(transitions)
            guard var object = current.objectValue else { return became(leader: false, since: sent, note: "unreadable lease") }
            object["spec"] = .object(spec)
            _ = try await client.update(.object(object))
            return became(leader: true, since: sent, note: holder == identity ? "renewed" : "took over from \(holder ?? "nobody")")
        } catch {
            // Lost a race (Conflict, AlreadyExists) or cannot reach the server: lead only while
            // the last renewal still counts.
            let what = error.reason == .conflict || error.reason == .alreadyExists ? "another replica was first" : "cannot renew the lease"
            log.warning("leader election: \(what)",
                        ["lease": "\(namespace)/\(name)", "error": error.description])
            return isLeader
        }
    }

    private func became(leader: Bool, since sent: ContinuousClock.Instant, note: String) -> Bool {
        let was = isLeader
        let until = leader ? sent + leaseDuration : nil
        leaderUntil.withLock { $0 = until }
        if leader != was {
            log.info(leader ? "leading" : "not leading", ["lease": "\(namespace)/\(name)", "identity": identity, "why": note])
        }
        return leader
    }

    /// A service of `cairn run`: renews (or tries to acquire) every `renewInterval` until a
    /// graceful shutdown or cancellation, which end the wait at once.
    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await tryAcquireOrRenew()
            // A shutdown ends the sleep early, and the loop with it.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.renewInterval) }
        }
    }
}
