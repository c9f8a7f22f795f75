import ClusterSpecs

/// Reads back the HOCON that `HOCON.render()` writes (objects as `key { ... }` blocks or inline
/// `{ k: v }`, `key: value` fields, quoted strings with JSON escapes, numbers, booleans, arrays,
/// `${path}` substitutions), for the round-trip fuzz target and its tests. It is checked against
/// pyhocon, the reference parser, in ConfigFormatTests; it reads only this subset of HOCON.
package enum HOCONReader {
    package struct Failure: Error, CustomStringConvertible {
        package let offset: Int
        package let message: String
        package var description: String { "atomix.conf at byte \(offset): \(message)" }
    }

    /// The document as JSON: objects keep their key order; a substitution is `{"${}": path}`.
    package static func parse(_ text: String) throws(Failure) -> JSONValue {
        var reader = Reader(bytes: Array(text.utf8))
        let entries = try reader.entries(closing: nil)
        reader.skipSpace()
        guard reader.at == nil else { throw reader.fail("text after the document") }
        return .object(JSONObject(entries))
    }

    /// The JSON `parse` gives for a value the writer was handed.
    package static func json(_ value: HOCON) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .bool(let b): return .bool(b)
        case .substitution(let path): return .object(JSONObject([(key: "${}", value: .string(path))]))
        case .array(let items): return .array(items.map(json))
        case .object(let entries): return .object(JSONObject(entries.map { (key: $0.0, value: json($0.1)) }))
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var i = 0
        var depth = 0

        var at: UInt8? { i < bytes.count ? bytes[i] : nil }

        func fail(_ message: String) -> Failure { Failure(offset: i, message: message) }

        mutating func skipSpace() {
            while let c = at, c == 0x20 || c == 0x0A || c == 0x09 || c == 0x0D { i += 1 }
        }

        /// `key { ... }` and `key: value` lines until `closing` (or the end).
        mutating func entries(closing: UInt8?) throws(Failure) -> [(key: String, value: JSONValue)] {
            depth += 1
            defer { depth -= 1 }
            guard depth <= 256 else { throw fail("nested too deeply") }
            var out: [(key: String, value: JSONValue)] = []
            while true {
                skipSpace()
                if at == closing { if closing != nil { i += 1 }; return out }
                guard at != nil else { throw fail("missing '}'") }
                let k = try key()
                skipSpace()
                if at == UInt8(ascii: "{") {
                    i += 1
                    out.append((k, .object(JSONObject(try entries(closing: UInt8(ascii: "}"))))))
                } else if at == UInt8(ascii: ":") {
                    i += 1
                    skipSpace()
                    out.append((k, try value()))
                } else {
                    throw fail("expected ':' or '{' after key '\(k)'")
                }
            }
        }

        mutating func key() throws(Failure) -> String {
            if at == UInt8(ascii: "\"") { return try string() }
            let start = i
            while let c = at, (0x61...0x7A).contains(c) || (0x41...0x5A).contains(c) || (0x30...0x39).contains(c) || c == 0x5F || c == 0x2D { i += 1 }
            guard i > start else { throw fail("expected a key") }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        mutating func string() throws(Failure) -> String {
            let start = i
            i += 1
            while let c = at, c != UInt8(ascii: "\"") {
                i += c == UInt8(ascii: "\\") ? 2 : 1
            }
            guard at != nil else { throw fail("unterminated string") }
            i += 1
            guard case .string(let s)? = try? JSONValue.parse(bytes[start..<i]) else { throw Failure(offset: start, message: "invalid string") }
            return s
        }

        mutating func value() throws(Failure) -> JSONValue {
            depth += 1
            defer { depth -= 1 }
            guard depth <= 256 else { throw fail("nested too deeply") }
            switch at {
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONValue] = []
                skipSpace()
                if at == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value())
                    skipSpace()
                    if at == UInt8(ascii: ",") { i += 1; continue }
                    guard at == UInt8(ascii: "]") else { throw fail("expected ',' or ']'") }
                    i += 1
                    return .array(items)
                }
            case UInt8(ascii: "{"):
                i += 1
                var entries: [(key: String, value: JSONValue)] = []
                skipSpace()
                if at == UInt8(ascii: "}") { i += 1; return .object(JSONObject(entries)) }
                while true {
                    skipSpace()
                    let k = try key()
                    skipSpace()
                    guard at == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    skipSpace()
                    entries.append((k, try value()))
                    skipSpace()
                    if at == UInt8(ascii: ",") { i += 1; continue }
                    guard at == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
                    i += 1
                    return .object(JSONObject(entries))
                }
            case UInt8(ascii: "$"):
                guard i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "{") else { throw fail("expected '${'") }
                let start = i + 2
                i = start
                while let c = at, c != UInt8(ascii: "}") { i += 1 }
                guard at != nil else { throw fail("unterminated substitution") }
                let path = String(decoding: bytes[start..<i], as: UTF8.self)
                i += 1
                return .object(JSONObject([(key: "${}", value: .string(path))]))
            default:
                let start = i
                while let c = at, (0x30...0x39).contains(c) || (0x61...0x7A).contains(c) || c == 0x2D || c == 0x2B || c == 0x2E || c == 0x45 { i += 1 }
                let word = bytes[start..<i]
                guard !word.isEmpty, let parsed = try? JSONValue.parse(word) else { throw Failure(offset: start, message: "expected a value") }
                switch parsed {
                case .bool, .int, .double: return parsed
                default: throw Failure(offset: start, message: "expected a value")
                }
            }
        }
    }
}
