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

    /// The annotation in which the leader publishes where it receives webhooks: a standby relays
    /// the verified pushes it gets there (a Service sends them to any ready replica).
    public static let webhookURLAnnotation = "cairn.dev/webhook-url"
    /// This process's webhook URL, published while it leads (nil: none).
    public let webhookURL: String?

    private struct Seen {
        /// The last attempt reached the API server (and read the Lease).
        var inContact = false
        /// The other replica's webhook URL, when it holds a valid Lease.
        var leaderWebhookURL: String?
    }
    private let seen = Mutex(Seen())
    private let observers = Mutex<[@Sendable (Bool) -> Void]>([])

    /// Calls `observer` whenever this process starts or stops leading (the loops that wait for
    /// a long interval are woken: a new leader acts at once, not an interval later).
    public func onChange(_ observer: @escaping @Sendable (Bool) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    /// Whether the last acquire or renew reached the API server: a standby that knows who
    /// leads is ready (/readyz), as the leader is once a pass succeeded.
    public var inContact: Bool { seen.withLock { $0.inContact } }

    /// Where the current leader (another replica) receives webhooks, as of the last attempt.
    public var leaderWebhookURL: String? { seen.withLock { $0.leaderWebhookURL } }

    public init(client: KubeClient, namespace: String, name: String = "cairn", identity: String,
                leaseDuration: Duration = .seconds(15), webhookURL: String? = nil, log: Logging.Logger) {
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.leaseDuration = leaseDuration
        self.renewInterval = leaseDuration / 3
        self.webhookURL = webhookURL
        self.log = log
    }

    /// True while this process holds the Lease: its last renewal is less than `leaseDuration`
    /// old (measured on the local monotonic clock, from before the renewal was sent).
    public var isLeader: Bool {
        leaderUntil.withLock { until in until.map { ContinuousClock.now < $0 } ?? false }
    }

    /// A Kubernetes MicroTime: `2026-12-03T13:50:00.123456Z`.
    static func microTime(_ date: Date) -> String { UTCTime.string(date, fraction: 6) }

    static func parseTime(_ s: String) -> Date? { UTCTime.parse(s) }

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
                var metadata: JSONObject = ["name": .string(name), "namespace": .string(namespace)]
                if let webhookURL { metadata["annotations"] = [Self.webhookURLAnnotation: .string(webhookURL)] }
                _ = try await client.create(["apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                             "metadata": .object(metadata), "spec": .object(spec)])
                seen.withLock { $0 = Seen(inContact: true) }
                return became(leader: true, since: sent, note: "acquired a new lease")
            }
            let holder = current["spec", "holderIdentity"]?.stringValue
            let renewed = current["spec", "renewTime"]?.stringValue.flatMap(Self.parseTime)
            let duration = Double(current["spec", "leaseDurationSeconds"]?.intValue ?? seconds)
            if let holder, holder != identity, let renewed, now.timeIntervalSince(renewed) < duration {
                let url = current["metadata", "annotations", Self.webhookURLAnnotation]?.stringValue
                seen.withLock { $0 = Seen(inContact: true, leaderWebhookURL: url) }
                return became(leader: false, since: sent, note: "held by \(holder)")
            }
            seen.withLock { $0 = Seen(inContact: true) }
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
            // The webhook URL is the holder's: a former leader's is replaced or taken away.
            var metadata = object["metadata"]?.objectValue ?? [:]
            var annotations = metadata["annotations"]?.objectValue ?? [:]
            annotations[Self.webhookURLAnnotation] = webhookURL.map(JSONValue.string)
            metadata["annotations"] = annotations.isEmpty ? nil : .object(annotations)
            object["metadata"] = .object(metadata)
            _ = try await client.update(.object(object))
            return became(leader: true, since: sent, note: holder == identity ? "renewed" : "took over from \(holder ?? "nobody")")
        } catch {
            // Lost a race (Conflict, AlreadyExists) or cannot reach the server: lead only while
            // the last renewal still counts.
            let what = error.reason == .conflict || error.reason == .alreadyExists ? "another replica was first" : "cannot renew the lease"
            if what == "cannot renew the lease" { seen.withLock { $0 = Seen() } }
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
            for observer in observers.withLock({ $0 }) { observer(leader) }
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
