/// A position in a spec file, counted from 1 like an editor does.
public struct Location: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (lhs: Location, rhs: Location) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "\(line):\(column)" }
}

/// A node of a spec file's YAML tree, with the location of every scalar, mapping and sequence.
///
/// This is what spec decoding reads instead of `Codable`, which loses locations.
public indirect enum SpecNode: Sendable, Hashable {
    case scalar(Scalar)
    case mapping(Mapping)
    case sequence(Sequence)

    public struct Scalar: Sendable, Hashable {
        /// The text as written, after YAML unescaping.
        public let text: String
        /// Plain (unquoted) scalars are resolved to null, booleans and numbers; quoted and block
        /// scalars are always strings.
        public let isPlain: Bool
        public let location: Location

        public init(text: String, isPlain: Bool, location: Location) {
            self.text = text
            self.isPlain = isPlain
            self.location = location
        }
    }

    public struct Mapping: Sendable, Hashable {
        public struct Entry: Sendable, Hashable {
            public let key: Scalar
            public let value: SpecNode
        }
        public let entries: [Entry]
        public let location: Location

        public init(entries: [Entry], location: Location) {
            self.entries = entries
            self.location = location
        }

        public subscript(key: String) -> SpecNode? {
            entries.first(where: { $0.key.text == key })?.value
        }
    }

    public struct Sequence: Sendable, Hashable {
        public let items: [SpecNode]
        public let location: Location
    }

    public var location: Location {
        switch self {
        case .scalar(let s): s.location
        case .mapping(let m): m.location
        case .sequence(let s): s.location
        }
    }

    /// A short name of the node's type, for error messages.
    public var kindName: String {
        switch self {
        case .scalar(let s):
            switch s.resolved {
            case .null: "null"
            case .bool: "a boolean"
            case .int: "an integer"
            case .double: "a number"
            case .string: "a string"
            }
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }
}

/// The value of a scalar under YAML 1.2's core schema (plain scalars only; quoted ones are strings).
public enum ResolvedScalar: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
}

extension SpecNode.Scalar {
    public var resolved: ResolvedScalar {
        guard isPlain else { return .string(text) }
        return ResolvedScalar.resolvePlain(text)
    }
}

extension ResolvedScalar {
    /// YAML 1.2 core schema resolution of a plain scalar.
    public static func resolvePlain(_ text: String) -> ResolvedScalar {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".nan", ".NaN", ".NAN": return .double(.nan)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        default: break
        }
        // Fast path: numbers start with a digit, a sign or a point.
        guard let first = text.utf8.first,
              (first >= 0x30 && first <= 0x39) || first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".")
        else { return .string(text) }
        if let i = parseYAMLInt(text) { return .int(i) }
        if isYAMLFloat(text), let d = Double(text) { return .double(d) }
        return .string(text)
    }

    private static func parseYAMLInt(_ text: String) -> Int? {
        var body = Substring(text)
        var negative = false
        if body.first == "-" || body.first == "+" {
            negative = body.first == "-"
            body = body.dropFirst()
        }
        guard !body.isEmpty else { return nil }
        var radix = 10
        if body.hasPrefix("0x") { radix = 16; body = body.dropFirst(2) }
        else if body.hasPrefix("0o") { radix = 8; body = body.dropFirst(2) }
        guard !body.isEmpty, body.allSatisfy({ $0.isHexDigit }) else { return nil }
        if radix == 10, !body.allSatisfy({ $0.isASCII && $0.isNumber }) { return nil }
        guard let magnitude = Int(body, radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }

    private static func isYAMLFloat(_ text: String) -> Bool {
        // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
        var chars = Array(text.utf8)[...]
        if let f = chars.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { chars = chars.dropFirst() }
        func digits() -> Int {
            var n = 0
            while let c = chars.first, c >= 48, c <= 57 { chars = chars.dropFirst(); n += 1 }
            return n
        }
        let whole = digits()
        var frac = 0
        if chars.first == UInt8(ascii: ".") {
            chars = chars.dropFirst()
            frac = digits()
        }
        guard whole + frac > 0 else { return false }
        if let e = chars.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            chars = chars.dropFirst()
            if let s = chars.first, s == UInt8(ascii: "-") || s == UInt8(ascii: "+") { chars = chars.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return chars.isEmpty
    }
}
