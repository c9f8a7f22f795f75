public import ClusterSpecs

/// The serialiser of `eventstore.conf` (and `kurrentdb.conf`): a YAML mapping of option names
/// to scalars or lists of scalars, and (24.10 and later) sections: mappings of the same, nested
/// (`Archive: {Enabled: true, S3: {...}}`), indented by two spaces per level.
///
/// Its output is frozen: the config hash on every EventStoreDB pod template is computed over
/// it, so any change to a byte it writes restarts every EventStoreDB pod of every fleet on
/// upgrade (`UpgradeTests` pins the examples' hashes). It therefore does not share code with
/// `YAMLWriter`, whose output (`cairn render`, the plan's diffs) may change cosmetically; it
/// writes exactly what `YAMLWriter` wrote for these shapes when the two were split.
public enum EventStoreConf {
    public static func write(_ options: JSONObject) -> String {
        var out = ""
        write(options, indent: "", into: &out)
        return out
    }

    private static func write(_ options: JSONObject, indent: String, into out: inout String) {
        for (key, value) in options.entries {
            out += indent + plainOrQuoted(key)
            switch value {
            case .array(let items) where !items.isEmpty:
                out += ":\n"
                // Top-level list items stay at column 0 (the frozen form); in a section they
                // are indented under their key.
                let itemIndent = indent.isEmpty ? "" : indent + "  "
                for item in items { out += itemIndent + "- " + scalar(item, indent: itemIndent + "  ") + "\n" }
            case .object(let section) where !section.isEmpty:
                out += ":\n"
                write(section, indent: indent + "  ", into: &out)
            default:
                out += ": " + scalar(value, indent: indent + "  ") + "\n"
            }
        }
    }

    private static func scalar(_ value: JSONValue, indent: String) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            if d.isNaN { return ".nan" }
            if d.isInfinite { return d > 0 ? ".inf" : "-.inf" }
            if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) + ".0" }
            return "\(d)"
        case .string(let s): return plainOrQuoted(s, block: true, indent: indent)
        case .array: return "[]"
        case .object: return "{}"
        }
    }

    /// Plain when every YAML 1.1 and 1.2 reader reads it back as this string; a literal block
    /// (`|`, `|-`) for a value of several lines that one can hold exactly; else double-quoted
    /// with JSON escapes.
    private static func plainOrQuoted(_ s: String, block: Bool = false, indent: String = "  ") -> String {
        if plain(Array(s.utf8)) { return s }
        if block, s.utf8.contains(10), let literal = literalBlock(s, indent: indent) { return literal }
        var out = ""
        JSONValue.writeYAMLDoubleQuoted(s, into: &out)
        return out
    }

    /// Lines indented by `indent`: two spaces for a value under a top-level key or list item,
    /// two more per section level.
    private static func literalBlock(_ s: String, indent: String) -> String? {
        var body = Substring(s)
        var chomp = "-"
        if body.hasSuffix("\n") {
            body = body.dropLast()
            if body.hasSuffix("\n") { return nil }
            chomp = ""
        }
        let lines = body.split(separator: "\n", omittingEmptySubsequences: false)
        for line in lines {
            if let last = line.utf8.last, last == 0x20 || last == 0x09 { return nil }  // bytes: " \u{301}" is one Character
            if line.unicodeScalars.contains(where: {
                ($0.value < 32 && $0 != "\t") || $0.value == 0x7F || $0 == "\u{FEFF}" || $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}"
                    || (0x80...0x9F).contains($0.value) || $0.value == 0xFFFE || $0.value == 0xFFFF
            }) { return nil }
        }
        if let first = lines.first, first.isEmpty || first.utf8.first == 0x20 || first.utf8.first == 0x09 { return nil }
        return "|" + chomp + "\n" + lines.map { $0.isEmpty ? "" : indent + $0 }.joined(separator: "\n")
    }

    private static let yaml11Words: Set<String> = ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"]

    private static func plain(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first, let last = bytes.last else { return false }
        func isWord(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) }
        guard isWord(first) || first == UInt8(ascii: "/") || first == UInt8(ascii: "_") else { return false }
        guard last != UInt8(ascii: ":"), last != UInt8(ascii: " ") else { return false }
        var numberLike = first >= 0x30 && first <= 0x39
        var previous: UInt8 = 0
        for c in bytes {
            switch c {
            case 0x30...0x39, 0x41...0x46, 0x61...0x66, UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
                 UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "x"), UInt8(ascii: "X"), UInt8(ascii: "o"):
                break
            default:
                numberLike = false
            }
            if isWord(c) { previous = c; continue }
            switch c {
            case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "/"), UInt8(ascii: "@"),
                 UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: ","), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: ":"):
                break
            case UInt8(ascii: " "):
                if previous == UInt8(ascii: ":") || previous == UInt8(ascii: " ") { return false }
            default:
                return false
            }
            previous = c
        }
        if numberLike { return false }
        if bytes.count <= 5, yaml11Words.contains(String(decoding: bytes, as: UTF8.self).lowercased()) { return false }
        return true
    }
}
