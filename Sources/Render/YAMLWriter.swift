public import ClusterSpecs

/// Writes JSON values as block-style YAML, kubectl-like, in the values' own key order.
///
/// A string is written plain only when every YAML 1.1 and 1.2 reader reads it back as the same
/// string; anything else is double-quoted with escapes, or written as a literal block when it
/// spans lines. So no value can inject a key or a line into the document.
public enum YAMLWriter {
    /// One YAML document (no `---`), ending in a newline.
    public static func document(_ value: JSONValue) -> String {
        var out = ""
        switch value {
        case .object(let o) where !o.isEmpty:
            writeObject(o, indent: 0, into: &out)
        case .array(let a) where !a.isEmpty:
            writeArray(a, indent: 0, into: &out)
        default:
            out += scalar(value, indent: 0) + "\n"
        }
        return out
    }

    /// Several documents separated by `---`.
    public static func stream(_ values: [JSONValue]) -> String {
        values.map { "---\n" + document($0) }.joined()
    }

    private static func pad(_ n: Int) -> String { String(repeating: " ", count: n) }

    private static func writeObject(_ o: JSONObject, indent: Int, into out: inout String, firstLinePrefix: String? = nil) {
        var first = true
        for (key, value) in o.entries {
            let lead = first && firstLinePrefix != nil ? firstLinePrefix! : pad(indent)
            first = false
            let k = quoteIfNeeded(key)
            switch value {
            case .object(let child) where !child.isEmpty:
                out += lead; out += k; out += ":\n"
                writeObject(child, indent: indent + 2, into: &out)
            case .array(let items) where !items.isEmpty:
                out += lead; out += k; out += ":\n"
                writeArray(items, indent: indent, into: &out)
            default:
                out += lead; out += k; out += ": "; out += scalar(value, indent: indent + 2); out += "\n"
            }
        }
    }

    private static func writeArray(_ items: [JSONValue], indent: Int, into out: inout String) {
        for item in items {
            switch item {
            case .object(let o) where !o.isEmpty:
                writeObject(o, indent: indent + 2, into: &out, firstLinePrefix: pad(indent) + "- ")
            case .array(let a) where !a.isEmpty:
                out += pad(indent) + "-\n"
                writeArray(a, indent: indent + 2, into: &out)
            default:
                out += pad(indent) + "- " + scalar(item, indent: indent + 2) + "\n"
            }
        }
    }

    static func scalar(_ value: JSONValue, indent: Int) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            if d.isNaN { return ".nan" }
            if d.isInfinite { return d > 0 ? ".inf" : "-.inf" }
            return JSONValue.jsonNumberText(d)
        case .string(let s): return string(s, indent: indent)
        case .array: return "[]"
        case .object: return "{}"
        }
    }

    private static func string(_ s: String, indent: Int) -> String {
        if isPlainSafe(s) { return s }
        if s.utf8.contains(10), let block = literalBlock(s, indent: indent) { return block }
        return doubleQuoted(s)
    }

    static func quoteIfNeeded(_ key: String) -> String {
        isPlainSafe(key) ? key : doubleQuoted(key)
    }

    /// YAML 1.1 words that some readers (PyYAML, go-yaml v2) turn into booleans or null.
    private static let yaml11Words: Set<String> = ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"]

    /// Whether `s` can be written without quotes and read back by any YAML reader as this string.
    /// One pass over the bytes: this runs for every string of every rendered object.
    static func isPlainSafe(_ s: String) -> Bool {
        var contiguous = s
        return contiguous.withUTF8 { isPlainSafe(bytes: $0) }
    }

    private static func isPlainSafe(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = bytes.first, let last = bytes.last else { return false }
        func isWord(_ c: UInt8) -> Bool {
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39)
        }
        guard isWord(first) || first == UInt8(ascii: "/") || first == UInt8(ascii: "_") else { return false }
        guard last != UInt8(ascii: ":"), last != UInt8(ascii: " ") else { return false }
        // Strings made only of digits and number punctuation may read as numbers, dates or
        // sexagesimals in YAML 1.1.
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
                 UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: ","), UInt8(ascii: "("), UInt8(ascii: ")"):
                break
            case UInt8(ascii: ":"):
                break
            case UInt8(ascii: " "):
                // ": " starts a mapping value; "  " is kept plain only by careful readers.
                if previous == UInt8(ascii: ":") || previous == UInt8(ascii: " ") { return false }
            default:
                return false
            }
            previous = c
        }
        if numberLike { return false }
        if bytes.count <= 5 {
            let lower = String(decoding: bytes, as: UTF8.self).lowercased()
            if yaml11Words.contains(lower) { return false }
        }
        // Only letters, '/' and '_' may start a plain string, so YAML 1.2's other plain values
        // (.inf, .nan, -1, +1) cannot occur; its numbers were caught as number-like above.
        return true
    }

    private static func literalBlock(_ s: String, indent: Int) -> String? {
        var body = Substring(s)
        var chomp = "-"
        if body.hasSuffix("\n") {
            body = body.dropLast()
            chomp = body.hasSuffix("\n") ? "+" : ""
            if chomp == "+" { return nil }
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
        let p = String(repeating: " ", count: indent)
        return "|" + chomp + "\n" + lines.map { $0.isEmpty ? "" : p + $0 }.joined(separator: "\n")
    }

    static func doubleQuoted(_ s: String) -> String {
        var out = ""
        JSONValue.writeYAMLDoubleQuoted(s, into: &out)
        return out
    }
}

extension JSONValue {
    static func jsonNumberText(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) + ".0" }
        return "\(d)"
    }
}
