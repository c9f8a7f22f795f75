import ClusterSpecs

/// A HOCON value for atomix.conf. Strings are always written quoted (JSON escaping is valid
/// HOCON), so no value from a spec can end a string, open an object or start a substitution.
indirect enum HOCON {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([HOCON])
    case object([(String, HOCON)])
    /// `${path}`: a substitution of a property cairn itself defines (never spec text).
    case substitution(String)

    func render() -> String {
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

/// Writes aerospike.conf the way the Aerospike operator's config writer does: 4-space indent,
/// plural YAML keys as repeated singular lines, `storage-engine TYPE { ... }`, logging sinks as
/// contexts. Values were validated to be single tokens (aerospike.conf has no quoting).
enum AerospikeConfWriter {
    /// YAML list keys written as one singular line per item.
    static let singular: [String: String] = [
        "devices": "device", "files": "file", "mesh-seed-address-ports": "mesh-seed-address-port",
        "feature-key-files": "feature-key-file", "addresses": "address", "access-addresses": "access-address",
        "alternate-access-addresses": "alternate-access-address", "tls-addresses": "tls-address",
        "tls-access-addresses": "tls-access-address", "report-data-op-users": "report-data-op-user",
    ]
    /// Keys whose `host:port` (or `path:shadow`) values become two tokens.
    static let colonSplit: Set<String> = ["mesh-seed-address-port", "device", "feature-key-file"]

    static func render(_ config: JSONObject) -> String {
        var out = ""
        for (key, value) in config.entries {
            switch key {
            case "namespaces":
                for ns in value.arrayValue ?? [] {
                    guard var o = ns.objectValue, let name = o["name"].map(token) else { continue }
                    o["name"] = nil
                    out += "namespace \(name) {\n"
                    writeContext(o, indent: 1, into: &out)
                    out += "}\n"
                }
            case "logging":
                out += "logging {\n"
                for sink in value.arrayValue ?? [] {
                    guard var o = sink.objectValue, let name = o["name"].map(token) else { continue }
                    o["name"] = nil
                    let head = name == "console" || name == "syslog" ? name : "file \(name)"
                    out += "    \(head) {\n"
                    for (context, level) in o.entries.sorted(by: { $0.key < $1.key }) {
                        out += "        context \(context) \(token(level))\n"
                    }
                    out += "    }\n"
                }
                out += "}\n"
            default:
                out += "\(key) {\n"
                writeContext(value.objectValue ?? JSONObject(), indent: 1, into: &out)
                out += "}\n"
            }
        }
        return out
    }

    static func token(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        case .double(let d): return JSONValue.jsonNumber(d)
        default: return ""
        }
    }

    private static func writeContext(_ o: JSONObject, indent: Int, into out: inout String) {
        let pad = String(repeating: "    ", count: indent)
        for (key, value) in o.entries {
            switch value {
            case .object(var child):
                if key == "storage-engine", let type = child["type"].map(token) {
                    child["type"] = nil
                    if child.isEmpty {
                        out += "\(pad)storage-engine \(type)\n"
                    } else {
                        out += "\(pad)storage-engine \(type) {\n"
                        writeContext(child, indent: indent + 1, into: &out)
                        out += "\(pad)}\n"
                    }
                } else {
                    out += "\(pad)\(key) {\n"
                    writeContext(child, indent: indent + 1, into: &out)
                    out += "\(pad)}\n"
                }
            case .array(let items):
                let name = singular[key] ?? key
                for item in items { out += "\(pad)\(name) \(valueTokens(name, item))\n" }
            default:
                out += "\(pad)\(key) \(valueTokens(key, value))\n"
            }
        }
    }

    private static func valueTokens(_ key: String, _ value: JSONValue) -> String {
        let t = token(value)
        guard colonSplit.contains(key) else { return t }
        return t.split(separator: ":", omittingEmptySubsequences: false).joined(separator: " ")
    }
}
