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

    /// A repeated key keeps its first place and takes its last value. Linear in the entries.
    public init(_ entries: [(key: String, value: JSONValue)]) {
        // Most objects built in code are small and have no repeated key: checked by scanning,
        // without hashing every key into a dictionary first.
        if entries.count <= 16 {
            var repeated = false
            outer: for i in entries.indices.dropFirst() {
                for j in 0..<i where entries[j].key == entries[i].key {
                    repeated = true
                    break outer
                }
            }
            if !repeated {
                self.entries = entries
                return
            }
        }
        var position: [String: Int] = [:]
        var out: [(key: String, value: JSONValue)] = []
        out.reserveCapacity(entries.count)
        for (k, v) in entries {
            if let i = position[k] { out[i].value = v } else { position[k] = out.count; out.append((key: k, value: v)) }
        }
        self.entries = out
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

    /// Appends without looking for the key: for a caller that knows it is not there (a parser
    /// settles duplicates itself).
    public mutating func appendUnchecked(_ key: String, _ value: JSONValue) {
        entries.append((key: key, value: value))
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

    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: return Int(d)
        default: return nil
        }
    }

    /// Reads a value at a path of object keys.
    public subscript(path: String...) -> JSONValue? {
        var current: JSONValue? = self
        for key in path { current = current?.objectValue?[key] }
        return current
    }

    /// This value cut down to the fields `want` has, in `want`'s order (objects); lists item by
    /// item, an item past `want`'s last kept whole; anything else (a scalar, a mismatch) whole.
    /// Idempotent: projecting a projection onto the same `want` changes nothing.
    public func projected(onto want: JSONValue) -> JSONValue {
        switch (self, want) {
        case (.object(let l), .object(let w)):
            var out = JSONObject()
            for (key, value) in w.entries {
                if let have = l[key] { out.appendUnchecked(key, have.projected(onto: value)) }
            }
            return .object(out)
        case (.array(let l), .array(let w)):
            return .array(l.enumerated().map { i, item in i < w.count ? item.projected(onto: w[i]) : item })
        default:
            return self
        }
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
    public func canonicalJSON() -> String { String(decoding: canonicalJSONBytes(), as: UTF8.self) }

    /// `canonicalJSON()` as UTF-8 bytes, without going through a String.
    public func canonicalJSONBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        writeJSON(into: &out, sortKeys: true, indent: nil, level: 0)
        return out
    }

    /// Compact JSON in the object's own key order (no whitespace).
    public func compactJSON() -> String { String(decoding: compactJSONBytes(), as: UTF8.self) }

    /// `compactJSON()` as UTF-8 bytes, without going through a String (what is hashed, deflated
    /// and sent: writing bytes is several times faster than appending to a String).
    public func compactJSONBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        writeJSON(into: &out, sortKeys: false, indent: nil, level: 0)
        return out
    }

    /// Indented JSON in the object's own key order.
    public func prettyJSON() -> String {
        var out: [UInt8] = []
        writeJSON(into: &out, sortKeys: false, indent: 2, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    private func writeJSON(into out: inout [UInt8], sortKeys: Bool, indent: Int?, level: Int) {
        func newline(_ level: Int) {
            guard let indent else { return }
            out.append(0x0A)
            out.append(contentsOf: repeatElement(0x20, count: indent * level))
        }
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: b ? "true".utf8 : "false".utf8)
        case .int(let i): JSONValue.writeInt(i, into: &out)
        case .double(let d): out.append(contentsOf: JSONValue.jsonNumber(d).utf8)
        case .string(let s): JSONValue.writeQuoted(s, yaml: false, into: &out)
        case .array(let items):
            if items.isEmpty { out.append(contentsOf: "[]".utf8); return }
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(level + 1)
                item.writeJSON(into: &out, sortKeys: sortKeys, indent: indent, level: level + 1)
            }
            newline(level)
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            if object.isEmpty { out.append(contentsOf: "{}".utf8); return }
            func write(_ entries: some Sequence<(key: String, value: JSONValue)>) {
                var first = true
                for entry in entries {
                    if !first { out.append(UInt8(ascii: ",")) }
                    first = false
                    newline(level + 1)
                    JSONValue.writeQuoted(entry.key, yaml: false, into: &out)
                    out.append(UInt8(ascii: ":"))
                    if indent != nil { out.append(0x20) }
                    entry.value.writeJSON(into: &out, sortKeys: sortKeys, indent: indent, level: level + 1)
                }
            }
            out.append(UInt8(ascii: "{"))
            if sortKeys, !JSONValue.isSorted(object.entries) {
                write(object.entries.sorted { $0.key < $1.key })
            } else {
                write(object.entries)
            }
            newline(level)
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Whether the keys are in `<` order already (labels, most rendered maps): then sorting
    /// them again is skipped.
    private static func isSorted(_ entries: [(key: String, value: JSONValue)]) -> Bool {
        var i = 1
        while i < entries.count {
            if !(entries[i - 1].key < entries[i].key) { return false }
            i += 1
        }
        return true
    }

    private static func writeInt(_ i: Int, into out: inout [UInt8]) {
        if i >= 0, i < 10 { out.append(UInt8(0x30 + i)); return }
        out.append(contentsOf: String(i).utf8)
    }

    public static func jsonNumber(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
        return "\(d)"
    }

    /// Writes `s` as a JSON string literal, which is also a valid YAML double-quoted scalar.
    public static func writeJSONString(_ s: String, into out: inout String) {
        var bytes: [UInt8] = []
        writeQuoted(s, yaml: false, into: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    /// A YAML double-quoted scalar: JSON's escapes, and `\u` escapes for what YAML readers
    /// refuse unescaped (C1 controls, U+FFFE, U+FFFF), which JSON allows raw.
    public static func writeYAMLDoubleQuoted(_ s: String, into out: inout String) {
        var bytes: [UInt8] = []
        writeQuoted(s, yaml: true, into: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    /// Runs of bytes that need no escape are copied whole (names, labels and most of a
    /// configuration file's text); a multi-byte scalar is decoded only to check the few
    /// non-ASCII characters that are escaped.
    private static func writeQuoted(_ s: String, yaml: Bool, into out: inout [UInt8]) {
        out.append(0x22)
        var s = s
        s.withUTF8 { utf8 in
            var run = 0
            var i = 0
            let n = utf8.count
            while i < n {
                let byte = utf8[i]
                if byte >= 0x20, byte < 0x7F, byte != 0x22, byte != 0x5C {
                    i += 1
                    continue
                }
                // A byte that starts a scalar: an ASCII one, or the first of a multi-byte one
                // (a String's UTF-8 is valid, so the length follows from the first byte).
                var scalar = UInt32(byte)
                var length = 1
                if byte >= 0xF0 {
                    length = 4
                    scalar = UInt32(byte & 0x07)
                } else if byte >= 0xE0 {
                    length = 3
                    scalar = UInt32(byte & 0x0F)
                } else if byte >= 0xC0 {
                    length = 2
                    scalar = UInt32(byte & 0x1F)
                }
                if length > 1 {
                    for k in 1..<length where i + k < n { scalar = scalar << 6 | UInt32(utf8[i + k] & 0x3F) }
                }
                guard let escaped = escape(scalar, yaml: yaml) else {
                    i += length
                    continue
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run..<i]))
                out.append(contentsOf: escaped.utf8)
                i += length
                run = i
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[run..<n]))
        }
        out.append(0x22)
    }

    /// How a scalar is written inside double quotes, or nil when it is written as it is.
    private static func escape(_ scalar: UInt32, yaml: Bool) -> String? {
        switch scalar {
        case 0x22: return "\\\""
        case 0x5C: return "\\\\"
        case 0x0A: return "\\n"
        case 0x0D: return "\\r"
        case 0x09: return "\\t"
        default:
            // Also the characters YAML readers treat as line breaks or byte-order marks, so that
            // the same escaping serves YAML double-quoted scalars.
            guard scalar < 0x20 || scalar == 0x7F || scalar == 0x85 || scalar == 0xFEFF
                || (0x2028...0x2029).contains(scalar)
                || (yaml && ((0x80...0x9F).contains(scalar) || scalar == 0xFFFE || scalar == 0xFFFF))
            else { return nil }
            let hex = String(scalar, radix: 16)
            return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        }
    }
}

// MARK: - Parsing

extension JSONValue {
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let offset: Int
        public let message: String
        public var description: String { "invalid JSON at byte \(offset): \(message)" }
    }

    /// Parses JSON text (RFC 8259, strictly), keeping object key order (API server responses,
    /// kubeconfig exec output). Linear in the input; nesting is limited to 512 levels.
    ///
    /// Two choices RFC 8259 leaves open: a key repeated in an object keeps its first place and
    /// takes its last value; a lone UTF-16 surrogate escape (`\ud800` not followed by a low
    /// surrogate, or a low one alone) reads as U+FFFD, as invalid UTF-8 bytes do.
    ///
    /// - Parameter manager: a field manager whose `metadata.managedFields` entries are read
    ///   without their `fieldsV1` (an object's own entries, which a LIST of cairn's objects
    ///   carries on every one: 20 to 50% of its bytes, and most of its small objects). The
    ///   skipped value is still checked for balanced brackets and closed strings. Only an
    ///   entry whose `manager` comes before its `fieldsV1` (as the API server writes them) is
    ///   cut; nil: nothing is.
    /// - Parameter items: how the items of a LIST response (the top-level object's `items`)
    ///   are read: only the fields `ItemShape` keeps are built.
    public static func parse(_ bytes: some Collection<UInt8>, droppingFieldsOf manager: String? = nil,
                             items: ItemShape? = nil) throws(ParseError) -> JSONValue {
        func run(_ buffer: UnsafeBufferPointer<UInt8>) -> Result<JSONValue, ParseError> {
            var parser = JSONParser(bytes: buffer, skipFieldsOf: manager, itemShape: items)
            do throws(ParseError) {
                let value = try parser.value(depth: 0)
                parser.skipWhitespace()
                guard parser.index == parser.bytes.count else { throw parser.error("trailing characters") }
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        // A response body (NIO's ByteBuffer view) is read where it is, not copied first.
        if let result = bytes.withContiguousStorageIfAvailable(run) { return try result.get() }
        return try Array(bytes).withUnsafeBufferPointer(run).get()
    }
}

extension JSONValue {
    /// How the items of a LIST response are read (`parse(_:droppingFieldsOf:items:)`): a caller
    /// that keeps a few fields of each object (a pass keeps what it renders, server defaults
    /// dropped) never builds the rest. `finish` makes each item what the caller keeps of it
    /// (the page's `items` hold what it returns): it must cut the item down to no more than
    /// `fields` said, and then gives what it would give the item parsed whole.
    public struct ItemShape: Sendable {
        /// Decides, once an item's `metadata` is read (whole, always), which of its later
        /// fields are kept: a field named in `onto` is read projected onto its value there
        /// (`projected(onto:)`), one named in `whole` whole, any other skipped (checked for
        /// balanced brackets and closed strings, never built). Fields before the metadata are
        /// read whole (the API server writes `metadata` first); without one, all are.
        public var fields: @Sendable (_ metadata: JSONValue) -> (onto: JSONObject?, whole: [String])
        /// The item once read, and what `fields` said of it (`onto`; nil when it said nothing:
        /// an item without metadata, or one read whole).
        public var finish: @Sendable (_ item: JSONObject, _ onto: JSONObject?) -> JSONValue
        /// Cuts an item's `metadata` short (nil: read whole). Once the metadata has read every
        /// key of `after`, `keep` hears what it has read so far and names the later keys to
        /// read (nil: all of them); the others are skipped (checked, never built), and `fields`
        /// and `finish` get the metadata without them. A metadata object with a key twice is
        /// read whole.
        public var metadata: MetadataCut?

        public struct MetadataCut: Sendable {
            public var after: [String]
            public var keep: @Sendable (_ read: JSONObject) -> [String]?

            public init(after: [String], keep: @escaping @Sendable (_ read: JSONObject) -> [String]?) {
                self.after = after
                self.keep = keep
            }
        }

        public init(fields: @escaping @Sendable (_ metadata: JSONValue) -> (onto: JSONObject?, whole: [String]),
                    finish: @escaping @Sendable (_ item: JSONObject, _ onto: JSONObject?) -> JSONValue = { item, _ in .object(item) },
                    metadata: MetadataCut? = nil) {
            self.fields = fields
            self.finish = finish
            self.metadata = metadata
        }
    }
}

/// Reads the bytes in place (no bounds check per byte in release builds: every read is after
/// an explicit `index < bytes.count`).
private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    /// `parse(_:droppingFieldsOf:)`'s manager.
    var skipFieldsOf: String? = nil

    /// `parse(_:droppingFieldsOf:items:)`'s shape.
    var itemShape: JSONValue.ItemShape? = nil

    /// Where a value is read: anywhere, as a `managedFields` list, or as one of its entries;
    /// as the `items` of a LIST read with a shape.
    enum Context { case plain, managedFields, managedFieldsEntry, listItems }

    init(bytes: UnsafeBufferPointer<UInt8>, skipFieldsOf: String?, itemShape: JSONValue.ItemShape? = nil) {
        self.bytes = bytes
        self.skipFieldsOf = skipFieldsOf
        self.itemShape = itemShape
    }

    func error(_ message: String) -> JSONValue.ParseError { JSONValue.ParseError(offset: index, message: message) }

    mutating func skipWhitespace() {
        while index < bytes.count {
            let c = bytes[index]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            index += 1
        }
    }

    mutating func value(depth: Int, context: Context = .plain) throws(JSONValue.ParseError) -> JSONValue {
        guard depth < 512 else { throw error("nested too deeply") }
        skipWhitespace()
        guard index < bytes.count else { throw error("unexpected end") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var object = JSONObject()
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(object) }
            // Keys are appended as read; a duplicate (rare, and RFC 8259 leaves it open) is
            // settled at the end: the last value wins, at the first key's place.
            // (Small objects, the common case, check by scanning; larger ones with a set.)
            var keys = Set<String>()
            var duplicate = false
            var skippedManager = false
            while true {
                skipWhitespace()
                let key = try string()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
                index += 1
                if skippedManager, key == "fieldsV1" {
                    try skipValue(depth: depth + 1)
                } else {
                    if object.entries.count < 12 {
                        if object.entries.contains(where: { $0.key == key }) { duplicate = true }
                    } else {
                        if keys.isEmpty { keys = Set(object.entries.map(\.key)) }
                        if !keys.insert(key).inserted { duplicate = true }
                    }
                    let childContext: Context = skipFieldsOf != nil && key == "managedFields" ? .managedFields
                        : depth == 0 && itemShape != nil && key == "items" ? .listItems : .plain
                    let child = try value(depth: depth + 1, context: childContext)
                    if context == .managedFieldsEntry, key == "manager", case .string(let m) = child, m == skipFieldsOf { skippedManager = true }
                    object.appendUnchecked(key, child)
                }
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end in object") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return .object(duplicate ? JSONObject(object.entries) : object)
                }
                throw error("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            while true {
                if context == .listItems, let shape = itemShape {
                    items.append(try item(depth: depth + 1, shape: shape))
                } else {
                    items.append(try value(depth: depth + 1, context: context == .managedFields ? .managedFieldsEntry : .plain))
                }
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end in array") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                throw error("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default:
            return try number()
        }
    }

    /// One item of a LIST read with a shape (`JSONValue.ItemShape`), and finished. An item
    /// with a key twice (which the API server never writes) is read again whole, and `finish`
    /// hears of no decision: a skipped or projected value could otherwise stand where the whole
    /// parse keeps the last one, and a second `metadata` would make the decision stale.
    mutating func item(depth: Int, shape: JSONValue.ItemShape) throws(JSONValue.ParseError) -> JSONValue {
        guard depth < 512 else { throw error("nested too deeply") }
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return try value(depth: depth) }
        let start = index
        index += 1
        var object = JSONObject()
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return shape.finish(object, nil) }
        var kept: (onto: JSONObject?, whole: [String])?
        var seen: [String] = []
        while true {
            skipWhitespace()
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            if seen.contains(key) {
                index = start
                guard case .object(let whole) = try value(depth: depth) else { throw error("expected an object") }
                return shape.finish(whole, nil)
            }
            seen.append(key)
            var child: JSONValue?
            if key == "metadata" || kept == nil {
                if key == "metadata", let cut = shape.metadata {
                    child = try metadata(depth: depth + 1, cut: cut)
                } else {
                    child = try value(depth: depth + 1)
                }
                if key == "metadata" { kept = shape.fields(child!) }
            } else if let kept, kept.whole.contains(key) {
                child = try value(depth: depth + 1)
            } else if let want = kept?.onto?[key] {
                child = try projected(depth: depth + 1, onto: want)
            } else {
                try skipValue(depth: depth + 1)
            }
            if let child { object.appendUnchecked(key, child) }
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end in object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return shape.finish(object, kept?.onto) }
            throw error("expected ',' or '}'")
        }
    }

    /// `value(depth:).projected(onto: want)`, without building what the projection drops.
    /// An item's metadata cut short as `cut` says (`ItemShape.metadata`); read as `value` reads
    /// it when it is not an object, or has a key twice (a skipped value could otherwise stand
    /// where the whole parse keeps the last one, and a decision be made on a stale value).
    mutating func metadata(depth: Int, cut: JSONValue.ItemShape.MetadataCut) throws(JSONValue.ParseError) -> JSONValue {
        guard depth < 512 else { throw error("nested too deeply") }
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return try value(depth: depth) }
        let start = index
        index += 1
        var object = JSONObject()
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(object) }
        var seen: [String] = []
        var missing = cut.after.count
        // nil until decided; then the later keys to read (nil: all).
        var keep: [String]??
        while true {
            skipWhitespace()
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            if seen.contains(key) {
                index = start
                return try value(depth: depth)
            }
            seen.append(key)
            if case .some(.some(let wanted)) = keep, !wanted.contains(key) {
                try skipValue(depth: depth + 1)
            } else {
                let context: Context = skipFieldsOf != nil && key == "managedFields" ? .managedFields : .plain
                object.appendUnchecked(key, try value(depth: depth + 1, context: context))
                if keep == nil, cut.after.contains(key) {
                    missing -= 1
                    if missing == 0 { keep = .some(cut.keep(object)) }
                }
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end in object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(object) }
            throw error("expected ',' or '}'")
        }
    }

    mutating func projected(depth: Int, onto want: JSONValue) throws(JSONValue.ParseError) -> JSONValue {
        guard depth < 512 else { throw error("nested too deeply") }
        skipWhitespace()
        guard index < bytes.count else { throw error("unexpected end") }
        switch (bytes[index], want) {
        case (UInt8(ascii: "{"), .object(let w)):
            index += 1
            // What is kept, by its place in `want` (the output's order); the last value of a
            // repeated key wins, as in `value`.
            var found = [JSONValue?](repeating: nil, count: w.entries.count)
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(JSONObject()) }
            while true {
                skipWhitespace()
                let slot = try keySlot(in: w)
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
                index += 1
                if let slot {
                    found[slot] = try projected(depth: depth + 1, onto: w.entries[slot].value)
                } else {
                    try skipValue(depth: depth + 1)
                }
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end in object") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; break }
                throw error("expected ',' or '}'")
            }
            var out = JSONObject()
            for (slot, value) in found.enumerated() {
                if let value { out.appendUnchecked(w.entries[slot].key, value) }
            }
            return .object(out)
        case (UInt8(ascii: "["), .array(let w)):
            index += 1
            var items: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
            while true {
                items.append(items.count < w.count ? try projected(depth: depth + 1, onto: w[items.count]) : try value(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end in array") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                throw error("expected ',' or ']'")
            }
        default:
            return try value(depth: depth)
        }
    }

    /// Reads an object key and finds it among `want`'s keys; nil: not there. A key without
    /// escapes (nearly all) is compared where it lies, never made into a String.
    mutating func keySlot(in want: JSONObject) throws(JSONValue.ParseError) -> Int? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string") }
        var end = index + 1
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            let raw = UnsafeBufferPointer(rebasing: bytes[(index + 1)..<end])
            index = end + 1
            for (slot, entry) in want.entries.enumerated() {
                let key = entry.key.utf8
                if key.count == raw.count, key.elementsEqual(raw) { return slot }
            }
            return nil
        }
        let key = try string()
        return want.entries.firstIndex { $0.key == key }
    }

    /// Moves past an object or array without building it: strings are read to their closing
    /// quote (escapes included), brackets must match and nest at most as deep as `value` allows.
    /// Anything else is read as `value` reads it.
    mutating func skipValue(depth: Int) throws(JSONValue.ParseError) {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") || bytes[index] == UInt8(ascii: "[") else {
            _ = try value(depth: depth)
            return
        }
        // Open brackets, innermost last: true for an object.
        var open: [Bool] = []
        repeat {
            guard index < bytes.count else { throw error("unexpected end") }
            let c = bytes[index]
            index += 1
            switch c {
            case UInt8(ascii: "\""):
                while true {
                    guard index < bytes.count else { throw error("unterminated string") }
                    let b = bytes[index]
                    index += 1
                    if b == UInt8(ascii: "\\") { index += 1 } else if b == UInt8(ascii: "\"") { break }
                }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                open.append(c == UInt8(ascii: "{"))
                guard depth + open.count < 512 else { throw error("nested too deeply") }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard let last = open.popLast(), last == (c == UInt8(ascii: "}")) else {
                    index -= 1
                    throw error("unbalanced '\(Character(Unicode.Scalar(c)))'")
                }
            default:
                break
            }
        } while !open.isEmpty
    }

    mutating func literal(_ word: StaticString) throws(JSONValue.ParseError) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("invalid literal") }
        let start = word.utf8Start
        for k in 0..<count where bytes[index + k] != start[k] { throw error("invalid literal") }
        index += count
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, nothing else (no `+1`, `01`, `2.`, `.5`).
    mutating func number() throws(JSONValue.ParseError) -> JSONValue {
        let start = index
        func digits() -> Int {
            let from = index
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 { index += 1 }
            return index - from
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 else { throw error("invalid number") }
        if bytes[index] == 0x30 {
            index += 1
            if index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 { throw error("invalid number: a leading zero") }
        } else {
            _ = digits()
        }
        var isInteger = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard digits() > 0 else { throw error("invalid number: no digit after '.'") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw error("invalid number: no digit in the exponent") }
        }
        // Counts, ports and sizes: up to 18 digits fit an Int without a check, and need no String.
        let negative = bytes[start] == UInt8(ascii: "-")
        let digitCount = index - start - (negative ? 1 : 0)
        if isInteger, digitCount <= 18 {
            var value = 0
            for k in (index - digitCount)..<index { value = value &* 10 &+ Int(bytes[k] &- 0x30) }
            return .int(negative ? -value : value)
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger, let i = Int(text) { return .int(i) }
        guard let d = Double(text) else { throw error("invalid number '\(text)'") }
        return .double(d)
    }

    mutating func string() throws(JSONValue.ParseError) -> String {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a string") }
        index += 1
        // Most strings have no escape: one scan, one String.
        var end = index
        while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 { end += 1 }
        if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
            defer { index = end + 1 }
            return String(decoding: bytes[index..<end], as: UTF8.self)
        }
        var out: [UInt8] = Array(bytes[index..<end])
        index = end
        while index < bytes.count {
            let c = bytes[index]
            index += 1
            if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if c < 0x20 { index -= 1; throw error("a control character in a string must be escaped") }
            if c != UInt8(ascii: "\\") { out.append(c); continue }
            guard index < bytes.count else { break }
            let e = bytes[index]
            index += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                let unit = try hex4()
                var scalar: UInt32 = 0xFFFD
                if (0xD800...0xDBFF).contains(unit) {
                    // A high surrogate counts only with the low one right after it.
                    if index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                        let mark = index
                        index += 2
                        let low = try hex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            index = mark  // the next escape is read on its own
                        }
                    }
                } else if !(0xDC00...0xDFFF).contains(unit) {
                    scalar = unit
                }
                out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8))
            default:
                index -= 1
                throw error("invalid escape")
            }
        }
        throw error("unterminated string")
    }

    mutating func hex4() throws(JSONValue.ParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("invalid \\u escape") }
        var v: UInt32 = 0
        for c in bytes[index..<index + 4] {
            let digit: UInt8
            switch c {
            case 0x30...0x39: digit = c - 0x30
            case 0x41...0x46: digit = c - 0x41 + 10
            case 0x61...0x66: digit = c - 0x61 + 10
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | UInt32(digit)
        }
        index += 4
        return v
    }
}
