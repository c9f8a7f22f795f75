public import ClusterSpecs
public import Render

/// What a change to the spec files does to the rendered objects and to the running pods: the
/// review of a pull request. Pure: two sets of rendered clusters in, the changes out.
public struct ChangePlan: Sendable {
    public struct ObjectChange: Sendable {
        public enum Action: String, Sendable { case added, changed, deleted }
        public let reference: String
        public let kind: String
        public let action: Action
        /// The first difference (changed), or what happens to it (added, deleted).
        public let reason: String?
        /// Set when the change touches an immutable field: the field and what to do.
        public let blocked: String?
        /// A unified diff of the rendered YAML, Secret values masked.
        public let diff: String
    }

    /// A StatefulSet whose pods will restart.
    public struct Rollout: Sendable {
        public let statefulSet: String
        /// The pods that restart, in the order they restart.
        public let pods: [String]
        /// How: who restarts them and when.
        public let order: String
        /// Why: configuration (with the ConfigMap keys), image, resources, other template fields.
        public let reasons: [String]
    }

    public struct ClusterChange: Sendable {
        public enum Status: String, Sendable { case created, changed, deleted }
        /// `namespace/name`.
        public let cluster: String
        public let file: String
        public let status: Status
        public let objects: [ObjectChange]
        public let rollouts: [Rollout]
        public let warnings: [String]
        /// Volume claims and credentials a deletion leaves in place.
        public let kept: [String]
    }

    public var clusters: [ClusterChange]
    /// Validation errors of the head revision, `file:line:column: path: message`.
    public var errors: [String]
    /// Notes on fields of the changed files that cairn accepts but does not use (an upstream
    /// operator's own settings), `file:line:column: path: message`.
    public var notes: [String] = []
    /// Spec files that differ between the revisions (comments and formatting included).
    public var filesChanged: Int
    /// Spec files read and rendered, both revisions counted: only the changed ones.
    public var filesRendered = 0

    public var objectCounts: (added: Int, changed: Int, deleted: Int) {
        let all = clusters.flatMap(\.objects)
        return (all.filter { $0.action == .added }.count, all.filter { $0.action == .changed }.count, all.filter { $0.action == .deleted }.count)
    }
    public var podsRestarting: Int { clusters.flatMap(\.rollouts).reduce(0) { $0 + $1.pods.count } }
    public var blocked: [ObjectChange] { clusters.flatMap(\.objects).filter { $0.blocked != nil } }

    /// `kubectl diff` style: 0 no change, 1 changes, 2 errors (an invalid spec or a blocked change).
    public var exitCode: Int32 {
        if !errors.isEmpty || !blocked.isEmpty { return 2 }
        return clusters.isEmpty ? 0 : 1
    }

    /// One cluster's objects on one side of the comparison: rendered from a revision, or read
    /// from the live cluster.
    public struct Side: Sendable {
        public let identity: String
        public let file: String
        /// nil for a live cluster no spec file describes any more.
        package let system: (any ClusterSystem.Type)?
        public let objects: [RenderedObject]

        package init(identity: String, file: String, system: (any ClusterSystem.Type)?, objects: [RenderedObject]) {
            self.identity = identity
            self.file = file
            self.system = system
            self.objects = objects
        }

        public init(_ cluster: RenderedCluster) {
            self.init(identity: cluster.spec.identity, file: cluster.spec.file, system: cluster.system, objects: cluster.objects)
        }
    }

    /// Compares the clusters rendered from the base revision with those from the head.
    public static func compare(base: [RenderedCluster], head: [RenderedCluster], errors: [String] = [], filesChanged: Int = 0) -> ChangePlan {
        compare(base: base.map(Side.init), head: head.map(Side.init), errors: errors, filesChanged: filesChanged)
    }

    /// Compares two sides, cluster by cluster (by `namespace/name`).
    public static func compare(base: [Side], head: [Side], errors: [String] = [], filesChanged: Int = 0) -> ChangePlan {
        let baseByID = Dictionary(base.map { ($0.identity, $0) }, uniquingKeysWith: { a, _ in a })
        let headByID = Dictionary(head.map { ($0.identity, $0) }, uniquingKeysWith: { a, _ in a })
        var out: [ClusterChange] = []
        for id in Set(baseByID.keys).union(headByID.keys).sorted() {
            if let change = compare(base: baseByID[id], head: headByID[id]) { out.append(change) }
        }
        return ChangePlan(clusters: out, errors: errors, filesChanged: filesChanged)
    }

    static func compare(base: Side?, head: Side?) -> ClusterChange? {
        guard let any = head ?? base else { return nil }
        let baseObjects = Dictionary((base?.objects ?? []).map { ($0.reference, $0) }, uniquingKeysWith: { a, _ in a })
        let headObjects = Dictionary((head?.objects ?? []).map { ($0.reference, $0) }, uniquingKeysWith: { a, _ in a })
        var objects: [ObjectChange] = []
        var kept: [String] = []
        // Apply order for what stays or comes, then what goes.
        for o in head?.objects ?? [] {
            guard let old = baseObjects[o.reference] else {
                objects.append(ObjectChange(reference: o.reference, kind: o.kind, action: .added,
                                            reason: o.createOnly ? "created with a generated password, never overwritten" : nil,
                                            blocked: nil, diff: unifiedDiff(nil, o.body)))
                continue
            }
            guard !RenderedObject.sameJSON(old, o) else { continue }
            let (oldBody, body) = (old.body, o.body)
            let planned = Planner.plan(o, live: oldBody)
            switch planned.kind {
            case .unchanged, .create:
                if o.createOnly {
                    objects.append(ObjectChange(reference: o.reference, kind: o.kind, action: .changed,
                                                reason: "generated credentials are created once and never overwritten: "
                                                    + "this change is not applied to the live Secret",
                                                blocked: nil, diff: unifiedDiff(oldBody, body)))
                }
            case .configure:
                // The first difference of a Secret would show its values: name the field only.
                let reason = o.kind == "Secret"
                    ? planned.reason.map { String($0.prefix { $0 != ":" }) + ": (a Secret's values are not shown)" } : planned.reason
                objects.append(ObjectChange(reference: o.reference, kind: o.kind, action: .changed, reason: reason,
                                            blocked: nil, diff: unifiedDiff(oldBody, body)))
            case .blocked:
                objects.append(ObjectChange(reference: o.reference, kind: o.kind, action: .changed, reason: nil,
                                            blocked: planned.reason, diff: unifiedDiff(oldBody, body)))
            }
        }
        for o in base?.objects ?? [] where headObjects[o.reference] == nil {
            var reason = "pruned"
            if o.createOnly {
                reason = "kept: generated credentials are never pruned"
                kept.append(o.reference)
            } else if o.kind == "StatefulSet" {
                let claims = volumeClaims(o.body)
                if !claims.isEmpty {
                    reason = "pruned; its PersistentVolumeClaims are kept"
                    kept += claims.map { "PersistentVolumeClaim/\(o.namespace)/\($0)" }
                }
            }
            // A kept Secret is not deleted: it is not a change at all, only worth saying.
            if o.createOnly { continue }
            objects.append(ObjectChange(reference: o.reference, kind: o.kind, action: .deleted, reason: reason, blocked: nil,
                                        diff: unifiedDiff(o.body, nil)))
        }
        guard !objects.isEmpty else { return nil }

        var rollouts: [Rollout] = []
        var warnings: [String] = []
        if let base, let head {
            let sets = head.objects.filter { $0.kind == "StatefulSet" }
            var pending: [(set: RenderedObject, pods: [String], reasons: [String])] = []
            for set in sets {
                guard let old = baseObjects[set.reference], !objects.contains(where: { $0.reference == set.reference && $0.blocked != nil }),
                      let oldTemplate = old.body["spec", "template"], let template = set.body["spec", "template"], oldTemplate != template else { continue }
                let replicas = min(old.body["spec", "replicas"]?.intValue ?? 1, set.body["spec", "replicas"]?.intValue ?? 1)
                guard replicas > 0 else { continue }
                let pods = (0..<replicas).reversed().map { "\(set.name)-\($0)" }
                pending.append((set, pods, templateReasons(old: oldTemplate, new: template, base: base, head: head)))
            }
            switch head.system?.rollout {
            case .replicasFirstPrimaryLast?:
                for p in pending {
                    rollouts.append(Rollout(statefulSet: p.set.reference, pods: p.pods,
                                            order: "cairn restarts one pod per pass once every pod is Ready: "
                                                + "the replicas first (highest ordinal first), the primary (the pod holding Patroni's leader lock) last",
                                            reasons: p.reasons))
                }
            case .setBySet?:
                for (i, p) in pending.enumerated() {
                    let rack = p.set.body["spec", "selector", "matchLabels", "aerospike.com/rack-id"]?.stringValue ?? p.set.name
                    let previousRack = i == 0 ? ""
                        : pending[i - 1].set.body["spec", "selector", "matchLabels", "aerospike.com/rack-id"]?.stringValue ?? pending[i - 1].set.name
                    let after = i == 0 ? "first" : "after rack \(previousRack) is done"
                    rollouts.append(Rollout(statefulSet: p.set.reference, pods: p.pods,
                                            order: "rack \(rack), \(after): "
                                                + "cairn restarts one pod per pass once every pod of the rack is Ready, highest ordinal first",
                                            reasons: p.reasons))
                }
            default:
                for p in pending {
                    rollouts.append(Rollout(statefulSet: p.set.reference, pods: p.pods,
                                            order: "the StatefulSet controller restarts one pod at a time, "
                                                + "highest ordinal first, each after the previous one is Ready",
                                            reasons: p.reasons))
                }
            }
            warnings += scaleWarnings(base: base, head: head, baseObjects: baseObjects)
        }
        let status: ClusterChange.Status = base == nil ? .created : head == nil ? .deleted : .changed
        return ClusterChange(cluster: any.identity, file: any.file, status: status, objects: objects,
                             rollouts: rollouts, warnings: warnings, kept: kept)
    }

    /// The claims a StatefulSet's pods use: `<template>-<set>-<ordinal>`.
    static func volumeClaims(_ set: JSONValue) -> [String] {
        let name = set["metadata", "name"]?.stringValue ?? ""
        let replicas = set["spec", "replicas"]?.intValue ?? 1
        let templates = (set["spec", "volumeClaimTemplates"]?.arrayValue ?? []).compactMap { $0["metadata", "name"]?.stringValue }
        return templates.flatMap { t in (0..<replicas).map { "\(t)-\(name)-\($0)" } }
    }

    /// Why a pod template changed, in the words a reviewer needs.
    static func templateReasons(old: JSONValue, new: JSONValue, base: Side, head: Side) -> [String] {
        var reasons: [String] = []
        var oldT = old, newT = new
        let oldHash = old["metadata", "annotations", ConfigHash.annotation], newHash = new["metadata", "annotations", ConfigHash.annotation]
        if oldHash != newHash {
            var changed: [String] = []
            let oldMaps = Dictionary(base.objects.filter { $0.kind == "ConfigMap" }.map { ($0.name, $0.body) }, uniquingKeysWith: { a, _ in a })
            for map in head.objects where map.kind == "ConfigMap" {
                let before = oldMaps[map.name]?["data"]?.objectValue ?? JSONObject()
                let after = map.body["data"]?.objectValue ?? JSONObject()
                let keys = Set(before.keys).union(after.keys).sorted().filter { before[$0] != after[$0] }
                if !keys.isEmpty { changed.append("ConfigMap \(map.name): \(keys.joined(separator: ", "))") }
            }
            reasons.append("configuration changed" + (changed.isEmpty ? "" : " (\(changed.joined(separator: "; ")))"))
            oldT = removing(["metadata", "annotations", ConfigHash.annotation], from: oldT)
            newT = removing(["metadata", "annotations", ConfigHash.annotation], from: newT)
        }
        for field in ["containers", "initContainers"] {
            let before = oldT["spec", field]?.arrayValue ?? [], after = newT["spec", field]?.arrayValue ?? []
            for c in after {
                guard let name = c["name"]?.stringValue, let o = before.first(where: { $0["name"]?.stringValue == name }) else { continue }
                if let image = c["image"]?.stringValue, let was = o["image"]?.stringValue, image != was {
                    reasons.append("image of \(name): \(was) -> \(image)")
                }
                if c["resources"] != o["resources"] {
                    let d = Planner.firstDifference(want: c["resources"] ?? .object(JSONObject()), have: o["resources"], path: [.key("resources")])
                    reasons.append("resources of \(name) changed" + (d.map { ": \($0.0)" } ?? ""))
                }
            }
        }
        oldT = stripContainerFields(oldT)
        newT = stripContainerFields(newT)
        if oldT != newT,
           let d = Planner.firstDifference(want: newT, have: oldT, path: [.key("spec"), .key("template")])
               ?? Planner.firstDifference(want: oldT, have: newT, path: [.key("spec"), .key("template")]) {
            reasons.append("pod template changed: \(d.0)")
        }
        return reasons
    }

    private static func stripContainerFields(_ t: JSONValue) -> JSONValue {
        guard var o = t.objectValue, var spec = o["spec"]?.objectValue else { return t }
        for field in ["containers", "initContainers"] {
            guard let list = spec[field]?.arrayValue else { continue }
            spec[field] = .array(list.map { c in
                guard var co = c.objectValue else { return c }
                co["image"] = nil
                co["resources"] = nil
                return .object(co)
            })
        }
        o["spec"] = .object(spec)
        return .object(o)
    }

    static func removing(_ path: [String], from value: JSONValue) -> JSONValue {
        guard let first = path.first, var o = value.objectValue else { return value }
        if path.count == 1 {
            o[first] = nil
        } else if let child = o[first] {
            o[first] = removing(Array(path.dropFirst()), from: child)
        }
        return .object(o)
    }

    /// Changes the system does not carry out in place, though Kubernetes would apply them.
    static func scaleWarnings(base: Side, head: Side, baseObjects: [String: RenderedObject]) -> [String] {
        var warnings: [String] = []
        for set in head.objects where set.kind == "StatefulSet" {
            guard let old = baseObjects[set.reference], let was = old.body["spec", "replicas"]?.intValue,
                  let now = set.body["spec", "replicas"]?.intValue, was != now else { continue }
            if let warning = head.system?.scaleWarning(statefulSet: set.name, from: was, to: now) { warnings.append(warning) }
        }
        return warnings
    }

    // MARK: - Unified diff

    /// A unified diff (3 lines of context) of two objects' YAML; Secret values masked.
    public static func unifiedDiff(_ old: JSONValue?, _ new: JSONValue?) -> String {
        let (a, b) = maskSecrets(old, new)
        let oldLines = a.map { YAMLWriter.document($0).split(separator: "\n", omittingEmptySubsequences: false).map(String.init) } ?? []
        let newLines = b.map { YAMLWriter.document($0).split(separator: "\n", omittingEmptySubsequences: false).map(String.init) } ?? []
        return UnifiedDiff.lines(oldLines.last == "" ? Array(oldLines.dropLast()) : oldLines,
                                 newLines.last == "" ? Array(newLines.dropLast()) : newLines)
    }

    /// Secret `data` and `stringData` values become `***`, or `*** (changed)` on the new side
    /// when the value differs: a diff never carries a secret.
    /// Annotations that hold a copy of the whole object (`kubectl apply`'s), and so of a Secret's data.
    static let objectCopyAnnotations = ["kubectl.kubernetes.io/last-applied-configuration"]

    static func maskSecrets(_ old: JSONValue?, _ new: JSONValue?) -> (JSONValue?, JSONValue?) {
        func mask(_ v: JSONValue?, against other: JSONValue?, marking: Bool) -> JSONValue? {
            guard let v, v["kind"]?.stringValue == "Secret", var o = v.objectValue else { return v }
            if var metadata = o["metadata"]?.objectValue, var annotations = metadata["annotations"]?.objectValue {
                for key in objectCopyAnnotations where annotations[key] != nil { annotations[key] = "***" }
                metadata["annotations"] = .object(annotations)
                o["metadata"] = .object(metadata)
            }
            for field in ["data", "stringData"] {
                guard let data = o[field]?.objectValue else { continue }
                let theirs = other?[field]?.objectValue
                o[field] = .object(JSONObject(data.entries.map { e in
                    let changed = marking && theirs != nil && theirs?[e.key] != nil && theirs?[e.key] != e.value
                    return (key: e.key, value: JSONValue.string(changed ? "*** (changed)" : "***"))
                }))
            }
            return .object(o)
        }
        return (mask(old, against: new, marking: false), mask(new, against: old, marking: true))
    }
}

/// Line diffs (the standard library's `difference(from:)`), printed as unified hunks.
enum UnifiedDiff {
    static func lines(_ a: [String], _ b: [String], context: Int = 3) -> String {
        // Trim the common prefix and suffix: most object diffs touch a few lines.
        var prefix = 0
        while prefix < a.count, prefix < b.count, a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix, suffix < b.count - prefix, a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        let midA = Array(a[prefix..<(a.count - suffix)]), midB = Array(b[prefix..<(b.count - suffix)])
        // The standard library's difference (Myers: O((n + m) * d) for d changed lines), not an
        // n*m table: a ConfigMap of thousands of lines with one change stays cheap.
        let n = midA.count, m = midB.count
        var removed = Set<Int>(), inserted = Set<Int>()
        for change in midB.difference(from: midA) {
            switch change {
            case .remove(let offset, _, _): removed.insert(offset)
            case .insert(let offset, _, _): inserted.insert(offset)
            }
        }
        enum Op { case same(String), del(String), add(String) }
        var ops: [Op] = a[0..<prefix].map { .same($0) }
        var i = 0, j = 0
        while i < n || j < m {
            if i < n, removed.contains(i) {
                ops.append(.del(midA[i])); i += 1
            } else if j < m, inserted.contains(j) {
                ops.append(.add(midB[j])); j += 1
            } else {
                ops.append(.same(midA[i])); i += 1; j += 1
            }
        }
        ops += a[(a.count - suffix)...].map { .same($0) }

        // Hunks: changed ops with `context` lines around, merged when close.
        let changed = ops.indices.filter { if case .same = ops[$0] { return false } else { return true } }
        guard !changed.isEmpty else { return "" }
        var hunks: [(Int, Int)] = []
        for c in changed {
            let lo = max(0, c - context), hi = min(ops.count - 1, c + context)
            if let last = hunks.last, lo <= last.1 + 1 { hunks[hunks.count - 1].1 = hi } else { hunks.append((lo, hi)) }
        }
        var out = ""
        for (lo, hi) in hunks {
            var oldStart = 1, newStart = 1
            for op in ops[0..<lo] {
                switch op {
                case .same: oldStart += 1; newStart += 1
                case .del: oldStart += 1
                case .add: newStart += 1
                }
            }
            var oldCount = 0, newCount = 0, body = ""
            for op in ops[lo...hi] {
                switch op {
                case .same(let l): oldCount += 1; newCount += 1; body += " \(l)\n"
                case .del(let l): oldCount += 1; body += "-\(l)\n"
                case .add(let l): newCount += 1; body += "+\(l)\n"
                }
            }
            out += "@@ -\(oldCount == 0 ? oldStart - 1 : oldStart),\(oldCount) +\(newCount == 0 ? newStart - 1 : newStart),\(newCount) @@\n" + body
        }
        return out
    }
}
