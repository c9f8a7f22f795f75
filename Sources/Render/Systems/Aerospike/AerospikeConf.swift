import ClusterSpecs

/// Writes aerospike.conf the way the Aerospike operator's config writer does: 4-space indent,
/// plural YAML keys as repeated singular lines, `storage-engine TYPE { ... }`, logging sinks as
/// contexts. Values were validated to be single tokens (aerospike.conf has no quoting).
package enum AerospikeConfWriter {
    /// YAML list keys written as one singular line per item.
    package static let singular: [String: String] = [
        "devices": "device", "files": "file", "mesh-seed-address-ports": "mesh-seed-address-port", "tls-mesh-seed-address-ports": "tls-mesh-seed-address-port",
        "feature-key-files": "feature-key-file", "addresses": "address", "access-addresses": "access-address",
        "alternate-access-addresses": "alternate-access-address", "tls-addresses": "tls-address",
        "tls-access-addresses": "tls-access-address", "report-data-op-users": "report-data-op-user",
        "node-address-ports": "node-address-port", "dcs": "dc", "namespaces": "namespace",
    ]
    /// Keys whose `host:port` values become two tokens (cairn writes the seeds itself).
    package static let colonSplit: Set<String> = ["mesh-seed-address-port", "tls-mesh-seed-address-port"]
    /// Keys whose value is several whitespace-separated tokens, as the upstream operator writes
    /// them (a path and its optional shadow; xdr's "host port"): one space in the file.
    package static let shadowed: Set<String> = ["device", "file", "node-address-port"]

    package static func render(_ config: JSONObject) -> String {
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
                // xdr { dc NAME { ... } } and the other contexts.
                out += "\(key) {\n"
                writeContext(value.objectValue ?? JSONObject(), indent: 1, into: &out)
                out += "}\n"
            }
        }
        return out
    }

    package static func token(_ v: JSONValue) -> String {
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
                for item in items {
                    // A list of named contexts (xdr's dcs and their namespaces, network.tls):
                    // `dc NAME { ... }`.
                    if var context = item.objectValue, let contextName = context["name"].map(token) {
                        context["name"] = nil
                        out += "\(pad)\(name) \(contextName) {\n"
                        writeContext(context, indent: indent + 1, into: &out)
                        out += "\(pad)}\n"
                    } else {
                        out += "\(pad)\(name) \(valueTokens(name, item))\n"
                    }
                }
            default:
                out += "\(pad)\(key) \(valueTokens(key, value))\n"
            }
        }
    }

    private static func valueTokens(_ key: String, _ value: JSONValue) -> String {
        let t = token(value)
        if shadowed.contains(key) { return t.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        guard colonSplit.contains(key) else { return t }
        return t.split(separator: ":", omittingEmptySubsequences: false).joined(separator: " ")
    }
}
