public import ClusterSpecs

/// Where a StatefulSet stands, read from its status alone (no pod LIST).
public struct StatefulSetProgress: Sendable, Hashable {
    public let name: String
    public let strategy: String
    public let replicas: Int
    /// Pods that exist (status.replicas).
    public let existing: Int
    public let ready: Int
    public let updated: Int
    public let generation: Int
    public let observedGeneration: Int
    public let currentRevision: String?
    public let updateRevision: String?

    public init(_ live: JSONValue) {
        name = live["metadata", "name"]?.stringValue ?? ""
        strategy = live["spec", "updateStrategy", "type"]?.stringValue ?? "RollingUpdate"
        replicas = live["spec", "replicas"]?.intValue ?? 1
        // The server omits zero counts.
        existing = live["status", "replicas"]?.intValue ?? 0
        ready = live["status", "readyReplicas"]?.intValue ?? 0
        updated = live["status", "updatedReplicas"]?.intValue ?? 0
        generation = live["metadata", "generation"]?.intValue ?? 0
        observedGeneration = live["status", "observedGeneration"]?.intValue ?? 0
        currentRevision = live["status", "currentRevision"]?.stringValue
        updateRevision = live["status", "updateRevision"]?.stringValue
    }

    /// The controller has seen the latest spec.
    public var observed: Bool { observedGeneration >= generation }

    /// Every pod is on the latest revision. For `OnDelete` the controller never moves
    /// `currentRevision`, so the updated count is what says it; for `RollingUpdate` the
    /// controller completes the rollout by setting `currentRevision = updateRevision`.
    public var updatedAll: Bool {
        guard observed, updated >= replicas else { return false }
        return strategy == "OnDelete" || currentRevision == updateRevision
    }

    /// Nothing left to do: the latest spec seen, every pod on it and Ready.
    public var settled: Bool { updatedAll && ready >= replicas }

    /// Why it is not settled, for humans.
    public var waitingReason: String? {
        if !observed { return "StatefulSet \(name): the controller has not seen generation \(generation) yet" }
        if existing < replicas { return "StatefulSet \(name): \(existing) of \(replicas) pods exist, \(ready) ready" }
        if updated < replicas {
            return "StatefulSet \(name): \(updated) of \(replicas) pods on the new revision" + (ready < replicas ? ", \(ready) ready" : "")
        }
        if !updatedAll { return "StatefulSet \(name): finishing the rollout" }
        if ready < replicas { return "StatefulSet \(name): \(ready) of \(replicas) pods ready" }
        return nil
    }

    public var json: JSONValue {
        var o: JSONObject = ["statefulSet": .string(name), "strategy": .string(strategy), "replicas": .int(replicas),
                             "ready": .int(ready), "updated": .int(updated)]
        if let updateRevision { o["updateRevision"] = .string(updateRevision) }
        if let currentRevision { o["currentRevision"] = .string(currentRevision) }
        return .object(o)
    }
}

/// What cairn does next for a StatefulSet whose pods it rotates itself (`OnDelete`).
///
/// Pure and level-based: the decision is read from the pods' revision labels, so a cairn that
/// restarts midway picks up where the last one stopped. One pod at a time, each only after every
/// pod of the set is Ready again; for Postgres the replicas first and the primary last.
public enum RolloutDecision: Sendable, Hashable {
    /// Every pod is on the latest revision.
    case done
    /// A pod must become Ready (or the controller catch up) first.
    case wait(String)
    /// Delete this pod (its StatefulSet recreates it on the new revision).
    case restart(pod: String, uid: String?, reason: String)

    /// The label Patroni sets on the pod that holds the leader lock.
    static let roleLabel = "spilo-role"

    public static func next(for set: StatefulSetProgress, pods: [JSONValue], primaryLast: Bool) -> RolloutDecision {
        guard set.observed else { return .wait(set.waitingReason ?? "") }
        guard let revision = set.updateRevision else { return .wait("StatefulSet \(set.name): no update revision yet") }
        let live = pods.filter { $0["metadata", "deletionTimestamp"] == nil }
        if live.count < set.replicas { return .wait("StatefulSet \(set.name): \(live.count) of \(set.replicas) pods exist") }
        if let notReady = live.first(where: { !isReady($0) }) {
            return .wait("pod \(notReady["metadata", "name"]?.stringValue ?? "?") is not Ready yet")
        }
        if live.count < pods.count { return .wait("StatefulSet \(set.name): a pod is terminating") }
        let outdated = live.filter { $0["metadata", "labels", "controller-revision-hash"]?.stringValue != revision }
        guard !outdated.isEmpty else { return .done }
        func isPrimary(_ pod: JSONValue) -> Bool {
            let role = pod["metadata", "labels", roleLabel]?.stringValue
            return role == "master" || role == "primary"
        }
        // Highest ordinal first, as the StatefulSet controller rolls; the primary last.
        let ordered = outdated.sorted { a, b in
            if primaryLast, isPrimary(a) != isPrimary(b) { return !isPrimary(a) }
            return ordinal(a) > ordinal(b)
        }
        let pod = ordered[0]
        let name = pod["metadata", "name"]?.stringValue ?? "?"
        let onNew = set.replicas - outdated.count
        var reason = "rolling \(set.name) to revision \(revision): \(onNew) of \(set.replicas) pods on it"
        if primaryLast { reason += isPrimary(pod) ? "; the primary, last" : "; a replica, before the primary" }
        return .restart(pod: name, uid: pod["metadata", "uid"]?.stringValue, reason: reason)
    }

    static func isReady(_ pod: JSONValue) -> Bool {
        (pod["status", "conditions"]?.arrayValue ?? []).contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" }
    }

    static func ordinal(_ pod: JSONValue) -> Int {
        Int(pod["metadata", "name"]?.stringValue?.split(separator: "-").last ?? "") ?? -1
    }
}
