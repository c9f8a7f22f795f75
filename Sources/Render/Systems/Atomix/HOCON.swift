import ClusterSpecs

/// A HOCON value for atomix.conf. Strings are always written quoted (JSON escaping is valid
/// HOCON), so no value from a spec can end a string, open an object or start a substitution.
package indirect enum HOCON {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([HOCON])
    case object([(String, HOCON)])
    /// `${path}`: a substitution of a property cairn itself defines (never spec text).
    case substitution(String)

    package func render() -> String {
        var out = ""
        if case .object(let entries) = self {
            HOCON.writeEntries(entries, indent: 0, into: &out)
        } else {
            out = inline + "\n"
        }
        return out
    }

    private static func key(_ k: String) -> String {
        let plain = !k.isEmpty && k.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
        } && !(k.unicodeScalars.first.map { ("0"..."9").contains($0) || $0 == "-" } ?? true)
        if plain { return k }
        var out = ""
        JSONValue.writeJSONString(k, into: &out)
        return out
    }

    private static func writeEntries(_ entries: [(String, HOCON)], indent: Int, into out: inout String) {
        let pad = String(repeating: "  ", count: indent)
        for (k, v) in entries {
            if case .object(let child) = v {
                out += pad + key(k) + " {\n"
                writeEntries(child, indent: indent + 1, into: &out)
                out += pad + "}\n"
            } else {
                out += pad + key(k) + ": " + v.inline + "\n"
            }
        }
    }

    private var inline: String {
        switch self {
        case .string(let s):
            var out = ""
            JSONValue.writeJSONString(s, into: &out)
            return out
        case .int(let i): return String(i)
        case .double(let d): return JSONValue.jsonNumber(d)
        case .bool(let b): return b ? "true" : "false"
        case .substitution(let path): return "${" + path + "}"
        case .array(let items): return "[" + items.map(\.inline).joined(separator: ", ") + "]"
        case .object(let entries):
            return "{ " + entries.map { HOCON.key($0.0) + ": " + $0.1.inline }.joined(separator: ", ") + " }"
        }
    }
}
