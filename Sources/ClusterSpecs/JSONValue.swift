/// A JSON value whose objects keep their key order: Kubernetes objects as data.
///
/// Renderers build objects in the order people read them (apiVersion, kind, metadata, spec);
/// canonical encodings (the config hash) sort keys explicitly.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// An ordered JSON object. Setting an existing key replaces its value in place.
public struct JSONObject: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public private(set) var entries: [(key: String, value: JSONValue)]

    public init() { entries = [] }

    public init(_ entries: [(key: String, value: JSONValue)]) {
        self.entries = []
        for (k, v) in entries { self[k] = v }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }

    public subscript(key: String) -> JSONValue? {
        get { entries.first(where: { $0.key == key })?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key: key, value: newValue))
            }
        }
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for (k, v) in entries {
            hasher.combine(k)
            hasher.combine(v)
        }
    }

    /// The same object with keys in sorted order (not recursive).
    public func sortedByKey() -> JSONObject {
        JSONObject(entries.sorted { $0.key < $1.key })
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// Reads a value at a path of object keys.
    public subscript(path: String...) -> JSONValue? {
        var current: JSONValue? = self
        for key in path { current = current?.objectValue?[key] }
        return current
    }

    /// Builds an object from string pairs sorted by key (labels, selectors, string maps).
    public static func sortedStrings(_ pairs: [(String, String)]) -> JSONValue {
        .object(JSONObject(pairs.sorted { $0.0 < $1.0 }.map { (key: $0.0, value: JSONValue.string($0.1)) }))
    }
}

// MARK: - JSON text

extension JSONValue {
    /// Compact JSON with object keys sorted recursively: the canonical encoding hashed for
    /// `cairn.dev/config-hash` and used for values embedded in environment variables.
    public func canonicalJSON() -> String {
        var out = ""
        writeJSON(into: &out, sortKeys: true, indent: nil, level: 0)
        return out
    }

    /// Indented JSON in the object's own key order.
    public func prettyJSON() -> String {
        var out = ""
        writeJSON(into: &out, sortKeys: false, indent: "  ", level: 0)
        return out
    }

    private func writeJSON(into out: inout String, sortKeys: Bool, indent: String?, level: Int) {
        func newline(_ level: Int) {
            guard let indent else { return }
            out += "\n" + String(repeating: indent, count: level)
        }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += JSONValue.jsonNumber(d)
        case .string(let s): JSONValue.writeJSONString(s, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                newline(level + 1)
                item.writeJSON(into: &out, sortKeys: sortKeys, indent: indent, level: level + 1)
            }
            newline(level)
            out += "]"
        case .object(let object):
            if object.isEmpty { out += "{}"; return }
            let entries = sortKeys ? object.entries.sorted { $0.key < $1.key } : object.entries
            out += "{"
            for (i, entry) in entries.enumerated() {
                if i > 0 { out += "," }
                newline(level + 1)
                JSONValue.writeJSONString(entry.key, into: &out)
                out += indent == nil ? ":" : ": "
                entry.value.writeJSON(into: &out, sortKeys: sortKeys, indent: indent, level: level + 1)
            }
            newline(level)
            out += "}"
        }
    }

    public static func jsonNumber(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
        return "\(d)"
    }

    /// Writes `s` as a JSON string literal, which is also a valid YAML double-quoted scalar.
    public static func writeJSONString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                // Also the characters YAML readers treat as line breaks or byte-order marks, so that
                // the same escaping serves YAML double-quoted scalars.
                if scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x85 || scalar.value == 0xFEFF
                    || (0x2028...0x2029).contains(scalar.value)
                {
                    out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                        + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
