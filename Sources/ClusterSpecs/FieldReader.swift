/// Collects every problem of one file while it is decoded, so all are reported together.
package final class Diagnostics {
    package let file: String
    private var reported: [SpecError] = []
    private var more = 0
    /// Notes on accepted fields that cairn does not use (an upstream operator's own settings).
    package private(set) var notes: [SpecError] = []
    /// The system's policy for the fields of its upstream CRD that cairn does not read (set once
    /// the file's kind is known): keyed by path with list indices as `[]`.
    package var policies: [String: FieldPolicy] = [:]
    /// A file can hold tens of thousands of wrong keys: the first ones say enough.
    static let maximumReported = 100

    package init(file: String) {
        self.file = file
    }

    package func report(_ location: Location, _ path: String, _ message: String) {
        guard reported.count < Self.maximumReported else { more += 1; return }
        reported.append(SpecError(file: file, location: location, path: path, message: message))
    }

    package func note(_ location: Location, _ path: String, _ message: String, warning: Bool = false) {
        guard notes.count < Self.maximumReported else { return }
        var note = SpecError(file: file, location: location, path: path, message: message)
        note.isWarning = warning
        notes.append(note)
    }

    /// The problems reported, and one saying how many more there were.
    package var errors: [SpecError] {
        guard more > 0, let last = reported.max() else { return reported }
        return reported + [SpecError(file: file, location: last.location, path: "", message: "and \(more) more problems in this file")]
    }
}

/// One field of a spec: its node, its path for messages, and typed, strict accessors.
///
/// Every accessor that finds the wrong type reports it with the node's location and returns nil;
/// decoding continues so that all problems of a file are found in one pass.
package struct Field {
    package let node: SpecNode
    package let path: String
    package let diagnostics: Diagnostics

    package init(node: SpecNode, path: String, diagnostics: Diagnostics) {
        self.node = node
        self.path = path
        self.diagnostics = diagnostics
    }

    package var location: Location { node.location }

    package func fail(_ message: String) {
        diagnostics.report(node.location, path, message)
    }

    /// A note on an accepted field (what cairn does differently, or does not use).
    package func note(_ message: String) {
        diagnostics.note(node.location, path, message)
    }

    /// A note printed as a warning (see `SpecError.isWarning`).
    package func warn(_ message: String) {
        diagnostics.note(node.location, path, message, warning: true)
    }

    package func child(_ key: String, _ node: SpecNode) -> Field {
        Field(node: node, path: Field.join(path, key), diagnostics: diagnostics)
    }

    package static func join(_ path: String, _ key: String) -> String {
        let needsQuoting = key.isEmpty || key.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: " ") }
        let part = needsQuoting ? "[\"\(key)\"]" : key
        if path.isEmpty { return needsQuoting ? part : key }
        return needsQuoting ? path + part : path + "." + part
    }

    private func wrongType(_ expected: String) {
        fail("must be \(expected) (got \(node.kindName))")
    }

    package var isNull: Bool {
        if case .scalar(let s) = node, s.resolved == .null { return true }
        return false
    }

    /// A string. Plain scalars that YAML would read as numbers or booleans are taken as written
    /// (`version: 3.1` is the string "3.1"); null, mappings and lists are errors.
    package var string: String? {
        guard case .scalar(let s) = node, s.resolved != .null else {
            wrongType("a string")
            return nil
        }
        return s.text
    }

    /// A non-empty string.
    package var nonEmptyString: String? {
        guard let s = string else { return nil }
        if s.isEmpty { fail("must not be empty") ; return nil }
        return s
    }

    package var int: Int? {
        guard case .scalar(let s) = node, case .int(let i) = s.resolved else {
            wrongType("an integer")
            return nil
        }
        return i
    }

    /// Every count in a spec has an upper bound, far below where arithmetic or memory could fail.
    package func int(atLeast minimum: Int, atMost maximum: Int) -> Int? {
        guard let i = int else { return nil }
        if i < minimum {
            fail("must be at least \(minimum) (got \(i))")
            return nil
        }
        if i > maximum {
            fail("must be at most \(maximum) (got \(i))")
            return nil
        }
        return i
    }

    package var bool: Bool? {
        guard case .scalar(let s) = node, case .bool(let b) = s.resolved else {
            wrongType("true or false")
            return nil
        }
        return b
    }

    /// A Kubernetes resource quantity such as `10Gi`, `500m` or `2`.
    package var quantity: Quantity? {
        guard case .scalar(let s) = node, s.resolved != .null else {
            wrongType("a quantity such as 10Gi or 500m")
            return nil
        }
        do {
            return try Quantity(parsing: s.text)
        } catch {
            fail(error.message)
            return nil
        }
    }

    package var mapping: SpecNode.Mapping? {
        guard case .mapping(let m) = node else {
            wrongType("a mapping")
            return nil
        }
        return m
    }

    /// Reads a mapping with a fixed set of fields. Fields the body does not read are reported:
    /// as unsupported when listed in `unsupported` (with the reason), otherwise as unknown.
    package func object<T>(unsupported: [String: String] = [:], _ body: (ObjectReader) -> T?) -> T? {
        guard let m = mapping else { return nil }
        let reader = ObjectReader(mapping: m, field: self)
        let result = body(reader)
        reader.reportUnread(unsupported: unsupported)
        return result
    }

    /// The number of items of a list (0 for anything else).
    package var sequenceCount: Int {
        if case .sequence(let s) = node { s.items.count } else { 0 }
    }

    /// A list; `item` is called for each element with its indexed path.
    package func list<T>(_ item: (Field) -> T?) -> [T]? {
        fieldList(item)?.map(\.value)
    }

    /// Like `list`, with each decoded item's own field: checks across items (duplicates) then
    /// point at the right index even when an earlier item failed to decode.
    package func fieldList<T>(_ item: (Field) -> T?) -> [(field: Field, value: T)]? {
        guard case .sequence(let s) = node else {
            wrongType("a list")
            return nil
        }
        guard s.items.count <= Limits.entries else {
            fail("has \(s.items.count) items; at most \(Limits.entries) are allowed")
            return nil
        }
        var out: [(field: Field, value: T)] = []
        for (i, element) in s.items.enumerated() {
            let f = Field(node: element, path: "\(path)[\(i)]", diagnostics: diagnostics)
            if let v = item(f) { out.append((f, v)) }
        }
        return out
    }

    /// A free-form mapping, in file order; `value` is called for each entry.
    package func entries<T>(_ value: (String, Field) -> T?) -> [(key: String, value: T)]? {
        guard let m = mapping else { return nil }
        guard m.entries.count <= Limits.entries else {
            fail("has \(m.entries.count) entries; at most \(Limits.entries) are allowed")
            return nil
        }
        var out: [(key: String, value: T)] = []
        for entry in m.entries {
            let f = child(entry.key.text, entry.value)
            if let v = value(entry.key.text, f) { out.append((key: entry.key.text, value: v)) }
        }
        return out
    }

    /// A mapping of strings to strings (labels, nodeSelector, parameters).
    package var stringMap: [(key: String, value: String)]? {
        entries { _, f in f.scalarText }
    }

    /// The text of any non-null scalar (strings, numbers and booleans as written).
    package var scalarText: String? {
        guard case .scalar(let s) = node, s.resolved != .null else {
            wrongType("a string")
            return nil
        }
        return s.text
    }

    /// The node as plain JSON data (free-form fields passed through to Kubernetes).
    package var json: JSONValue {
        Field.toJSON(node)
    }

    package static func toJSON(_ node: SpecNode) -> JSONValue {
        switch node {
        case .scalar(let s):
            switch s.resolved {
            case .null: return .null
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let t): return .string(t)
            }
        case .sequence(let s):
            return .array(s.items.map(toJSON))
        case .mapping(let m):
            return .object(JSONObject(m.entries.map { (key: $0.key.text, value: toJSON($0.value)) }))
        }
    }
}

/// Reads the fields of one mapping, remembering which were read so the rest can be reported.
package final class ObjectReader {
    package let mapping: SpecNode.Mapping
    package let field: Field
    private var read: Set<String> = []

    package init(mapping: SpecNode.Mapping, field: Field) {
        self.mapping = mapping
        self.field = field
    }

    package var path: String { field.path }
    package var location: Location { mapping.location }

    /// An optional field. A field written as `key:` with no value (null) counts as absent.
    package subscript(key: String) -> Field? {
        read.insert(key)
        guard let entry = mapping.entries.first(where: { $0.key.text == key }) else { return nil }
        if case .scalar(let s) = entry.value, s.resolved == .null, s.isPlain { return nil }
        return field.child(key, entry.value)
    }

    /// A required field; its absence is reported at the mapping.
    package func required(_ key: String) -> Field? {
        guard let f = self[key] else {
            field.diagnostics.report(mapping.location, Field.join(field.path, key), "is required")
            return nil
        }
        return f
    }

    package func has(_ key: String) -> Bool {
        mapping.entries.contains { $0.key.text == key }
    }

    package func keyLocation(_ key: String) -> Location {
        mapping.entries.first(where: { $0.key.text == key })?.key.location ?? mapping.location
    }

    /// Marks a field as handled without reading it.
    package func ignore(_ key: String) {
        read.insert(key)
    }

    package func reportUnread(unsupported: [String: String]) {
        for entry in mapping.entries where !read.contains(entry.key.text) {
            let key = entry.key.text
            let path = Field.join(field.path, key)
            if let reason = unsupported[key] {
                // Not an upstream field cairn lacks, but one a spec file should not hold.
                field.diagnostics.report(entry.key.location, path, "is not supported by cairn: \(reason)")
                continue
            }
            switch field.diagnostics.policies[FieldPolicy.pattern(path)] {
            case .unsupported(let reason)?:
                field.diagnostics.report(entry.key.location, path, "not supported by cairn yet: \(reason)")
            case .operatorOnly(let reason)?:
                field.diagnostics.note(entry.key.location, path, "accepted, not used by cairn: \(reason)")
            case nil:
                let known = read.sorted()
                let close = known.filter { FieldPolicy.isClose(key, $0) }
                field.diagnostics.report(entry.key.location, path, close.isEmpty
                    ? "unknown field (known fields here: \(known.joined(separator: ", ")))"
                    : "unknown field; did you mean \(close.joined(separator: " or "))?")
            }
        }
    }
}

/// What cairn does with a field of an upstream operator's CRD that it does not render.
package enum FieldPolicy: Sendable, Equatable {
    /// Steers only how the upstream operator itself works; cairn has no equivalent. Accepted,
    /// with a note saying why (printed by `validate` and `plan`).
    case operatorOnly(String)
    /// A real field cairn cannot render yet: refused, saying why.
    case unsupported(String)

    /// A field path with its list indices as `[]`: `spec.storage.volumes[2].x` -> `spec.storage.volumes[].x`.
    package static func pattern(_ path: String) -> String {
        var out = ""
        var inIndex = false
        for c in path {
            if c == "[" { inIndex = true; out.append("["); continue }
            if inIndex {
                if c == "]" { inIndex = false; out.append("]") } else if !c.isNumber { inIndex = false; out.append(c) }
                continue
            }
            out.append(c)
        }
        return out
    }

    /// A probable typo of `known`: the same letters but for one edit, or the same ignoring case.
    package static func isClose(_ key: String, _ known: String) -> Bool {
        if key.lowercased() == known.lowercased() { return true }
        let a = Array(key), b = Array(known)
        guard abs(a.count - b.count) <= 1, a.count > 3 else { return false }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where j <= b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count] <= 1
    }
}
