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
                out += lead + k + ":\n"
                writeObject(child, indent: indent + 2, into: &out)
            case .array(let items) where !items.isEmpty:
                out += lead + k + ":\n"
                writeArray(items, indent: indent, into: &out)
            default:
                out += lead + k + ": " + scalar(value, indent: indent + 2) + "\n"
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
        if s.contains("\n"), let block = literalBlock(s, indent: indent) { return block }
        return doubleQuoted(s)
    }

    static func quoteIfNeeded(_ key: String) -> String {
        isPlainSafe(key) ? key : doubleQuoted(key)
    }

    /// YAML 1.1 words that some readers (PyYAML, go-yaml v2) turn into booleans.
    private static let yaml11Words: Set<String> = ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"]

    static func isPlainSafe(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, let last = s.unicodeScalars.last else { return false }
        func word(_ c: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c)
        }
        guard word(first) || first == "/" || first == "_" else { return false }
        guard last != ":", last != " " else { return false }
        let allowed: Set<Unicode.Scalar> = ["-", "_", ".", "/", ":", "@", "+", "=", ",", " ", "(", ")"]
        guard s.unicodeScalars.allSatisfy({ word($0) || allowed.contains($0) }) else { return false }
        if s.contains(": ") || s.contains(" #") || s.contains("  ") { return false }
        if yaml11Words.contains(s.lowercased()) { return false }
        if case .string = ResolvedScalar.resolvePlain(s) {} else { return false }
        // Numbers, timestamps and sexagesimals of YAML 1.1 start with a digit and use only these.
        let numeric: Set<Unicode.Scalar> = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", ".", "_", ":", "-", "+", "e", "E", "x", "o", "b"]
        if ("0"..."9").contains(first) || first == "." , s.unicodeScalars.allSatisfy({ numeric.contains($0) }) { return false }
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
            if line.hasSuffix(" ") || line.hasSuffix("\t") { return nil }
            if line.unicodeScalars.contains(where: { ($0.value < 32 && $0 != "\t") || $0.value == 0x7F || $0 == "\u{FEFF}" || $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}" }) { return nil }
        }
        if let first = lines.first, first.hasPrefix(" ") || first.hasPrefix("\t") || first.isEmpty { return nil }
        let p = String(repeating: " ", count: indent)
        return "|" + chomp + "\n" + lines.map { $0.isEmpty ? "" : p + $0 }.joined(separator: "\n")
    }

    static func doubleQuoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x85 || scalar.value == 0xFEFF
                    || (0x2028...0x2029).contains(scalar.value)
                {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension JSONValue {
    static func jsonNumberText(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) + ".0" }
        return "\(d)"
    }
}
