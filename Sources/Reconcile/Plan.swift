public import ClusterSpecs
public import Render

/// What a reconcile pass will do with one rendered object, and why.
public struct PlannedAction: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// Not on the server: create it.
        case create
        /// On the server with a field cairn manages set otherwise: apply it.
        case configure
        /// On the server exactly as rendered (server-added fields aside): nothing to do.
        case unchanged
        /// The change touches an immutable field: cairn will not apply it (nor delete and recreate).
        case blocked
    }

    public let kind: Kind
    public let object: RenderedObject
    /// The first field that differs and how (for configure and blocked), or nil.
    public let reason: String?

    public var description: String {
        "\(object.reference) \(kind.rawValue)" + (reason.map { ": \($0)" } ?? "")
    }
}

/// Compares rendered objects with the live ones. Pure: values in, values out.
///
/// Only the fields cairn renders are compared, so what the server adds (defaults, status,
/// managedFields, uid, clusterIP, ...) never makes a perpetual diff. Lists are compared whole,
/// element by element, as server-side apply treats them.
public enum Planner {
    /// Fields of a live object that cannot change; a differing rendered value is `blocked`.
    static let immutable: [String: [[String]]] = [
        "StatefulSet": [["spec", "selector"], ["spec", "serviceName"], ["spec", "podManagementPolicy"], ["spec", "volumeClaimTemplates"]],
        "Service": [["spec", "clusterIP"]],
    ]

    /// Plans one object against its live version (nil when the server does not have it).
    public static func plan(_ desired: RenderedObject, live: JSONValue?) -> PlannedAction {
        guard let live else { return PlannedAction(kind: .create, object: desired, reason: nil) }
        // Generated Secrets are created once and never overwritten.
        if desired.createOnly { return PlannedAction(kind: .unchanged, object: desired, reason: nil) }
        for path in immutable[desired.kind] ?? [] {
            guard let want = value(desired.body, path) else { continue }
            if let (difference, _) = firstDifference(want: want, have: value(live, path), path: path.joined(separator: "."), keys: path) {
                return PlannedAction(kind: .blocked, object: desired, reason: "\(difference); \(path.joined(separator: ".")) is immutable: "
                    + advice(desired.kind, path))
            }
        }
        var want = desired.body
        // Identity is the address, not a difference.
        if var o = want.objectValue, var m = o["metadata"]?.objectValue {
            m["name"] = nil
            m["namespace"] = nil
            o["metadata"] = .object(m)
            want = .object(o)
        }
        if let (difference, keys) = firstDifference(want: want, have: live, path: "", keys: []) {
            let others = owners(of: keys, in: live).filter { $0 != fieldManager }
            let by = others.isEmpty ? "" : ", changed by \(others.joined(separator: ", "))"
            return PlannedAction(kind: .configure, object: desired, reason: difference + by)
        }
        return PlannedAction(kind: .unchanged, object: desired, reason: nil)
    }

    /// Plans every rendered object against the live objects (as listed, one LIST per kind).
    public static func plan(_ desired: [RenderedObject], live: [JSONValue]) -> [PlannedAction] {
        var byKey: [String: JSONValue] = [:]
        for o in live {
            guard let kind = o["kind"]?.stringValue, let name = o["metadata", "name"]?.stringValue else { continue }
            byKey["\(kind)/\(o["metadata", "namespace"]?.stringValue ?? "")/\(name)"] = o
        }
        return desired.map { plan($0, live: byKey[$0.reference]) }
    }

    private static func advice(_ kind: String, _ path: [String]) -> String {
        switch (kind, path.last) {
        case ("StatefulSet", "volumeClaimTemplates"):
            return "the server refuses to change a StatefulSet's volume claims. To resize, expand each PVC (if the storage class allows it) and keep the spec's size; cairn never deletes a StatefulSet or its volumes by itself"
        case ("StatefulSet", _):
            return "delete the StatefulSet with --cascade=orphan and let cairn recreate it (pods and volumes stay)"
        default:
            return "delete the object and let cairn recreate it"
        }
    }

    static func value(_ v: JSONValue, _ path: [String]) -> JSONValue? {
        var current: JSONValue? = v
        for key in path { current = current?.objectValue?[key] }
        return current
    }

    /// The field manager cairn applies with.
    static let fieldManager = "cairn"

    /// The managers whose managedFields claim the field at `keys` (object keys down to the first
    /// list), so that drift names who made it.
    static func owners(of keys: [String], in live: JSONValue) -> [String] {
        guard !keys.isEmpty else { return [] }
        return (live["metadata", "managedFields"]?.arrayValue ?? []).compactMap { entry -> String? in
            guard let manager = entry["manager"]?.stringValue, var fields = entry["fieldsV1"] else { return nil }
            for key in keys {
                guard let next = fields.objectValue?["f:" + key] else { return nil }
                fields = next
            }
            return manager
        }.sorted()
    }

    /// The first place where `have` lacks or contradicts `want`, as `path: have -> want`, and
    /// the object keys leading there (up to the first list).
    static func firstDifference(want: JSONValue, have: JSONValue?, path: String, keys: [String]?) -> (String, [String])? {
        func join(_ key: String) -> String {
            let simple = key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
            return path.isEmpty ? key : simple ? "\(path).\(key)" : "\(path)[\(key)]"
        }
        switch want {
        case .object(let w):
            guard case .object(let h)? = have else {
                return w.isEmpty && have == nil ? nil : ("\(path.isEmpty ? "object" : path): \(describe(have)) -> (an object)", keys ?? [])
            }
            for (key, value) in w.entries {
                if let d = firstDifference(want: value, have: h[key], path: join(key), keys: keys.map { $0 + [key] }) { return d }
            }
            return nil
        case .array(let w):
            guard case .array(let h)? = have else {
                return w.isEmpty && have == nil ? nil : ("\(path): \(describe(have)) -> (\(w.count) items)", keys ?? [])
            }
            guard w.count == h.count else { return ("\(path): \(h.count) items -> \(w.count) items", keys ?? []) }
            for (i, (wi, hi)) in zip(w, h).enumerated() {
                if let d = firstDifference(want: wi, have: hi, path: "\(path)[\(i)]", keys: nil) { return d }
            }
            return nil
        default:
            if let have, scalarsEqual(want, have) { return nil }
            return ("\(path): \(describe(have)) -> \(describe(want))", keys ?? [])
        }
    }

    private static func scalarsEqual(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
        default: return a == b
        }
    }

    private static func describe(_ v: JSONValue?) -> String {
        guard let v else { return "(absent)" }
        switch v {
        case .string(let s): return JSONValue.string(s.count > 60 ? s.prefix(57) + "..." : s).canonicalJSON()
        case .object: return "(an object)"
        case .array(let a): return "(\(a.count) items)"
        default: return v.canonicalJSON()
        }
    }
}
