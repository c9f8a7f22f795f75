public import ClusterSpecs

/// How a cluster stands after a pass, with the reasons.
public struct ClusterHealth: Sendable {
    /// Worst first: a cluster takes the worst phase any of its parts has.
    public enum Phase: String, Sendable, Comparable, CaseIterable {
        /// Its spec file is invalid: its live objects are left exactly as they are.
        case invalid = "Invalid"
        /// A change touches an immutable field; cairn will not apply it.
        case blocked = "Blocked"
        /// An object failed to apply or prune.
        case degraded = "Degraded"
        /// A rollout is under way or pods are not Ready yet.
        case progressing = "Progressing"
        /// Every object as rendered, every pod on the latest revision and Ready.
        case ready = "Ready"

        private var rank: Int { Self.allCases.firstIndex(of: self)! }
        public static func < (a: Phase, b: Phase) -> Bool { a.rank < b.rank }
    }

    /// `namespace/name`.
    public let cluster: String
    public var file: String?
    public var phase: Phase
    public var reasons: [String]
    /// The cluster's StatefulSets as their status reads after the pass (not for created or
    /// just-configured ones, whose status the controller has not written yet).
    public var rollouts: [StatefulSetProgress]

    public init(cluster: String, file: String?, phase: Phase = .ready, reasons: [String] = [], rollouts: [StatefulSetProgress] = []) {
        self.cluster = cluster
        self.file = file
        self.phase = phase
        self.reasons = reasons
        self.rollouts = rollouts
    }

    /// Lowers the phase to `phase` if that is worse, and records why.
    mutating func report(_ phase: Phase, _ reason: String) {
        self.phase = min(self.phase, phase)
        reasons.append(reason)
    }

    public var description: String {
        "cluster \(cluster): \(phase.rawValue)" + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))")
    }

    public func json(objects: [ObjectResult]) -> JSONValue {
        let parts = cluster.split(separator: "/", maxSplits: 1).map(String.init)
        var o: JSONObject = ["namespace": .string(parts.first ?? ""), "name": .string(parts.last ?? "")]
        if let file { o["file"] = .string(file) }
        o["phase"] = .string(phase.rawValue)
        o["reasons"] = .array(reasons.map(JSONValue.string))
        o["rollouts"] = .array(rollouts.map(\.json))
        o["objects"] = .array(objects.filter { $0.cluster == cluster }.map(\.json))  // the caller passes this cluster's objects
        return .object(o)
    }
}

/// A Job cairn renders (PostgreSQL's roles and databases, Aerospike's users), as its status reads.
public enum JobState {
    /// Why a finished Job failed (its `Failed` condition's reason and message), or nil while it
    /// runs or once it has completed.
    public static func failure(_ job: JSONValue) -> String? {
        guard let failed = job["status", "conditions"]?.arrayValue?.first(where: { $0["type"] == "Failed" && $0["status"] == "True" }) else {
            return nil
        }
        return (failed["reason"]?.stringValue ?? "Failed") + (failed["message"]?.stringValue.map { ": \($0)" } ?? "")
    }
}

extension Reconciler.Result {
    /// The machine-readable result of a pass: per cluster its phase, reasons, rollouts and
    /// objects; the warnings; the counts by action. Never carries a Secret's data.
    public var json: JSONValue {
        var counts = JSONObject()
        for action in ObjectResult.Action.allCases {
            counts[action.rawValue] = .int(objects.filter { $0.action == action }.count)
        }
        // Grouped once, not filtered per cluster (clusters x objects: 10^9 at 10,000 clusters).
        let names = Set(clusters.map(\.cluster))
        let unowned = objects.filter { o in o.cluster.map { !names.contains($0) } ?? true }
        let byCluster = Dictionary(grouping: objects.filter { $0.cluster != nil }, by: { $0.cluster! })
        return [
            "clusters": .array(clusters.map { $0.json(objects: byCluster[$0.cluster] ?? []) }),
            "otherObjects": .array(unowned.map(\.json)),
            "warnings": .array(warnings.map(JSONValue.string)),
            "summary": .object(counts),
        ]
    }
}
