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
        "Deployment": [["spec", "selector"]],
    ]

    /// Plans one object against its live version (nil when the server does not have it).
    /// - Parameter parsed: `desired.body`, when the caller parsed it already.
    public static func plan(_ desired: RenderedObject, live: JSONValue?, body parsed: JSONValue? = nil) -> PlannedAction {
        guard let live else { return PlannedAction(kind: .create, object: desired, reason: nil) }
        // Generated Secrets are created once and never overwritten.
        if desired.createOnly { return PlannedAction(kind: .unchanged, object: desired, reason: nil) }
        let body = parsed ?? desired.body
        for path in immutable[desired.kind] ?? [] {
            guard let want = value(body, path) else { continue }
            if let (difference, _) = firstDifference(want: want, have: value(live, path), path: path.map(PathStep.key)) {
                return PlannedAction(kind: .blocked, object: desired, reason: "\(difference); \(path.joined(separator: ".")) is immutable: "
                    + advice(desired.kind, path))
            }
        }
        var want = body
        // Identity is the address, not a difference.
        if var o = want.objectValue, var m = o["metadata"]?.objectValue {
            m["name"] = nil
            m["namespace"] = nil
            o["metadata"] = .object(m)
            want = .object(o)
        }
        if let (difference, keys) = firstDifference(want: want, have: live, path: []) {
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
            return "the server refuses to change a StatefulSet's volume claims. "
                + "To resize, expand each PVC (if the storage class allows it) and keep the spec's size; "
                + "cairn never deletes a StatefulSet or its volumes by itself"
        case ("StatefulSet", _):
            return "delete the StatefulSet with --cascade=orphan and let cairn recreate it (pods and volumes stay)"
        default:
            return "delete the object and let cairn recreate it"
        }
    }

    /// The live object cut down to the fields `want` has, in `want`'s order: what cairn's own
    /// rendering of the live state would look like. Lists are projected item by item.
    public static func project(_ live: JSONValue, onto want: JSONValue) -> JSONValue {
        live.projected(onto: want)
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

    /// One step down into a value: an object key or a list index.
    enum PathStep {
        case key(String)
        case index(Int)
    }

    /// `spec.template.metadata.annotations[cairn.dev/config-hash]`, `spec.ports[0].port`.
    static func render(_ path: [PathStep]) -> String {
        var out = ""
        for step in path {
            switch step {
            case .key(let key):
                let simple = key.utf8.allSatisfy { c in
                    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f || c == 0x2d
                }
                out += out.isEmpty ? key : simple ? ".\(key)" : "[\(key)]"
            case .index(let i):
                out += "[\(i)]"
            }
        }
        return out
    }

    /// The first place where `have` lacks or contradicts `want`, as `path: have -> want`, and
    /// the object keys leading there (up to the first list). The path is rendered only when a
    /// difference is found: the common case, no difference, allocates no strings.
    static func firstDifference(want: JSONValue, have: JSONValue?, path: [PathStep]) -> (String, [String])? {
        var path = path
        return difference(want: want, have: have, path: &path)
    }

    private static func difference(want: JSONValue, have: JSONValue?, path: inout [PathStep]) -> (String, [String])? {
        func found(_ text: String) -> (String, [String]) {
            var keys: [String] = []
            for step in path {
                guard case .key(let k) = step else { break }
                keys.append(k)
            }
            let where_ = render(path)
            return ("\(where_.isEmpty ? "object" : where_): \(text)", keys)
        }
        switch want {
        case .object(let w):
            guard case .object(let h)? = have else {
                return w.isEmpty && have == nil ? nil : found("\(describe(have)) -> (an object)")
            }
            for (key, value) in w.entries {
                path.append(.key(key))
                if let d = difference(want: value, have: h[key], path: &path) { return d }
                path.removeLast()
            }
            return nil
        case .array(let w):
            guard case .array(let h)? = have else {
                return w.isEmpty && have == nil ? nil : found("\(describe(have)) -> (\(w.count) items)")
            }
            guard w.count == h.count else { return found("\(h.count) items -> \(w.count) items") }
            for (i, (wi, hi)) in zip(w, h).enumerated() {
                path.append(.index(i))
                if let d = difference(want: wi, have: hi, path: &path) { return d }
                path.removeLast()
            }
            return nil
        default:
            if let have, scalarsEqual(want, have) { return nil }
            // Multi-line text (a configuration file): the first line that differs.
            if case .string(let w) = want, case .string(let h)? = have, w.contains("\n") || h.contains("\n") {
                let wl = w.split(separator: "\n", omittingEmptySubsequences: false), hl = h.split(separator: "\n", omittingEmptySubsequences: false)
                var line = 0
                while line < wl.count, line < hl.count, wl[line] == hl[line] { line += 1 }
                let was = line < hl.count ? describe(.string(String(hl[line]))) : "(no line)"
                let now = line < wl.count ? describe(.string(String(wl[line]))) : "(no line)"
                return found("line \(line + 1): \(was) -> \(now)")
            }
            return found("\(describe(have)) -> \(describe(want))")
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
