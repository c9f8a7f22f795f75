// libFuzzer targets for what cairn reads from others: spec files (decoding, validation and every
// renderer), JSON (API server responses), kubeconfigs, and the eventstore.conf serialiser (what
// it writes must read back as what it was given), and the atomix.conf (HOCON) and aerospike.conf
// writers (read back by their readers, which ConfigFormatTests check against pyhocon and the
// server's rules). Built by `Tests/fuzz.sh` with `-sanitize=fuzzer,address -D FUZZING`; the
// target is chosen with CAIRN_FUZZ_TARGET (spec, json, conf, kubeconfig, hocon, aerospike, dns). A normal build makes a stub that says how
// to build it.
import ClusterSpecs
import DNSProxy
import Foundation
import KubeAPI
import Render

#if FUZZING
/// libFuzzer's driver, entered from `main` (SwiftPM links an executable's own main).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// One input, for libFuzzer.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: data == nil ? 0 : size)
    switch FuzzTarget.current {
    case .spec: FuzzTarget.spec(bytes)
    case .json: FuzzTarget.json(bytes)
    case .conf: FuzzTarget.conf(bytes)
    case .kubeconfig: FuzzTarget.kubeconfig(bytes)
    case .hocon: FuzzTarget.hocon(bytes)
    case .aerospike: FuzzTarget.aerospike(bytes)
    case .dns: FuzzTarget.dns(bytes)
    }
    return 0
}

@main
struct Fuzz {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOne(data, size) })
    }
}
#else
@main
struct FuzzStub {
    static func main() {
        print("cairn-fuzz holds libFuzzer targets: build and run them with Tests/fuzz.sh")
    }
}
#endif

enum FuzzTarget: String {
    case spec, json, conf, kubeconfig, hocon, aerospike, dns

    static let current = FuzzTarget(rawValue: ProcessInfo.processInfo.environment["CAIRN_FUZZ_TARGET"] ?? "spec") ?? .spec

    /// Any bytes as a spec file: validated, and rendered when valid (every renderer, the config
    /// hash, the YAML writer). Must never crash, hang or grow without bound.
    static func spec(_ bytes: UnsafeBufferPointer<UInt8>) {
        let text = String(decoding: bytes, as: UTF8.self)
        let state = DesiredState(files: [DesiredState.File(path: "fuzz.yaml", text: text)])
        for cluster in state.clusters {
            _ = YAMLWriter.stream(cluster.objects.map(\.body))
        }
        for e in state.errors { precondition(!e.description.contains("\n"), "an error of several lines: \(e)") }
    }

    /// Any bytes as JSON: parsed or refused; what parses prints and parses back the same.
    /// Read dropping a manager's `fieldsV1` too, and as a LIST read with a shape (a pass's
    /// LISTs): never a crash, and what parses whole also parses so; each shaped item is the
    /// whole one cut as the shape says (or the whole one: an item with a key twice).
    static func json(_ bytes: UnsafeBufferPointer<UInt8>) {
        let dropped = try? JSONValue.parse(bytes, droppingFieldsOf: "cairn")
        let onto: JSONObject = ["spec": ["a": nil, "b": [["c": nil], nil]], "data": nil]
        let shaped = try? JSONValue.parse(bytes, items: JSONValue.ItemShape(fields: { _ in (onto, ["status"]) }))
        // The metadata cut short once its name and uid are read (as a pass does for an object it
        // verified): a uid "u" keeps only the later labels.
        let cut = JSONValue.ItemShape.MetadataCut(after: ["name", "uid"]) { read in read["uid"]?.stringValue == "u" ? ["labels"] : nil }
        let metadataCut = try? JSONValue.parse(bytes, items: JSONValue.ItemShape(fields: { _ in (nil, []) }, metadata: cut))
        guard let value = try? JSONValue.parse(bytes) else { return }
        precondition(dropped != nil, "parsed whole but not when dropping fieldsV1")
        precondition(shaped != nil, "parsed whole but not with a shape")
        precondition(metadataCut != nil, "parsed whole but not with the metadata cut")
        if let items = value["items"]?.arrayValue, value.objectValue != nil {
            let cutItems = metadataCut?["items"]?.arrayValue ?? []
            precondition(cutItems.count == items.count, "a LIST with its metadata cut has \(cutItems.count) items, not \(items.count)")
            for (whole, item) in zip(items, cutItems) {
                guard let metadata = whole["metadata"]?.objectValue, whole.objectValue != nil else { continue }
                var expected = JSONObject()
                var missing: Set<String> = ["name", "uid"]
                var keep: [String]??
                for (key, v) in metadata.entries {
                    if case .some(.some(let wanted)) = keep, !wanted.contains(key) { continue }
                    expected.appendUnchecked(key, v)
                    if keep == nil, missing.remove(key) != nil, missing.isEmpty { keep = .some(cut.keep(expected)) }
                }
                // Or whole: a metadata object with a key twice.
                precondition(item["metadata"] == .object(expected) || item["metadata"] == .object(metadata),
                             "a cut metadata is neither cut as said nor whole")
            }
        }
        if let items = value["items"]?.arrayValue, value.objectValue != nil {
            let cut = shaped?["items"]?.arrayValue ?? []
            precondition(cut.count == items.count, "a shaped LIST has \(cut.count) items, not \(items.count)")
            for (whole, item) in zip(items, cut) {
                guard let object = whole.objectValue, object["metadata"] != nil else {
                    precondition(item == whole, "an item without metadata is not read whole")
                    continue
                }
                var expected = JSONObject()
                var seen = false
                for (key, v) in object.entries {
                    if key == "metadata" || !seen || key == "status" { expected.appendUnchecked(key, v) }
                    else if let want = onto[key] { expected.appendUnchecked(key, v.projected(onto: want)) }
                    if key == "metadata" { seen = true }
                }
                precondition(item == .object(expected) || item == whole, "a shaped item is neither cut as its shape says nor whole")
            }
        }
        let again = try? JSONValue.parse(Array(value.canonicalJSON().utf8))
        precondition(again?.canonicalJSON() == value.canonicalJSON(), "canonical JSON does not read back")
    }

    /// Any JSON object as EventStoreDB options: the written eventstore.conf reads back, through
    /// the spec files' YAML reader, as the same keys, sections included, with the same values.
    static func conf(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard case .object(let object)? = try? JSONValue.parse(bytes) else { return }
        // The options a spec can hold: names as the spec's validation allows them (the fuzzer's
        // first find was a 1,300-character key, over YAML's 1,024 limit for implicit keys:
        // now refused by validation), values scalars, lists of scalars, or sections of the same.
        func options(_ o: JSONObject, depth: Int) -> JSONObject {
            JSONObject(o.entries.compactMap { entry -> (key: String, value: JSONValue)? in
                guard EventStoreSpec.isOptionName(entry.key) else { return nil }
                switch entry.value {
                case .object(let section):
                    let kept = options(section, depth: depth + 1)
                    return depth < 4 && !kept.isEmpty ? (entry.key, .object(kept)) : nil
                case .array(let items):
                    let scalars = items.allSatisfy { if case .object = $0 { return false }; if case .array = $0 { return false }; return true }
                    return scalars ? (entry.key, entry.value) : nil
                case .double(let d) where !d.isFinite:
                    return nil
                default:
                    return (entry.key, entry.value)
                }
            })
        }
        let written = options(object, depth: 0)
        guard !written.isEmpty else { return }
        let text = EventStoreConf.write(written)
        guard let root = try? SpecFileParser.parse(text, file: "eventstore.conf") else {
            preconditionFailure("eventstore.conf does not read back:\n\(text)")
        }
        // Numbers are compared as the YAML reader reads them (1.0 and 1 are one number).
        func normal(_ v: JSONValue) -> JSONValue {
            switch v {
            case .int(let i): return .double(Double(i))
            case .array(let items): return .array(items.map(normal))
            case .object(let o): return .object(JSONObject(o.entries.map { ($0.key, normal($0.value)) }))
            default: return v
            }
        }
        precondition(normal(Field.toJSON(root)) == normal(.object(written)), "does not read back as written:\n\(text)")
    }

    static let kubeconfigFile = NSTemporaryDirectory() + "cairn-fuzz-kubeconfig-\(getpid()).yaml"

    /// Any bytes as a kubeconfig: loaded or refused with an error, never a crash, a hang or
    /// unbounded memory (aliases, deep nesting and oversized files are refused first).
    static func kubeconfig(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard FileManager.default.createFile(atPath: kubeconfigFile, contents: Data(bytes)) else { return }
        _ = try? KubeConfig.load(path: kubeconfigFile)
    }

    /// Any JSON object as an atomix.conf document: keys and strings of any text (quotes,
    /// braces, `${`, newlines, `#`) are written so that they read back exactly as given.
    static func hocon(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard case .object(let object)? = try? JSONValue.parse(bytes) else { return }
        func convert(_ v: JSONValue, _ depth: Int) -> HOCON? {
            guard depth < 32 else { return nil }
            switch v {
            case .string(let s): return .string(s)
            case .int(let i): return .int(i)
            case .double(let d): return d.isFinite ? .double(d) : nil  // specs hold finite numbers only
            case .bool(let b): return .bool(b)
            case .null: return nil
            case .array(let items): return .array(items.compactMap { convert($0, depth + 1) })
            case .object(let o): return .object(entries(o, depth + 1))
            }
        }
        func entries(_ o: JSONObject, _ depth: Int) -> [(String, HOCON)] {
            var seen = Set<String>()
            // HOCON merges a repeated key; the writer is handed unique keys.
            return o.entries.compactMap { e in seen.insert(e.key).inserted ? convert(e.value, depth).map { (e.key, $0) } : nil }
        }
        let document = HOCON.object(entries(object, 0))
        let text = document.render()
        do {
            let back = try HOCONReader.parse(text)
            precondition(back.canonicalJSON() == HOCONReader.json(document).canonicalJSON(), "atomix.conf reads back differently:\n\(text)")
        } catch {
            preconditionFailure("atomix.conf does not read back (\(error)):\n\(text)")
        }
    }

    /// Any JSON object as aerospike.conf contexts, cut down to what validation lets through
    /// (keys as `AerospikeConfigCheck.isKey`, values single tokens by `AerospikeConfigCheck.tokenProblem`):
    /// every value comes back as the same tokens on its own line, no more lines and no more
    /// contexts than written. (The `a:b` keys split into two tokens are left out: their
    /// spelling changes with shadow devices.)
    static func aerospike(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard case .object(let object)? = try? JSONValue.parse(bytes) else { return }
        var lines: [String] = []
        var contexts = 0
        func scalar(_ v: JSONValue) -> String? {
            switch v {
            case .object, .array, .null: return nil
            default:
                let t = AerospikeConfWriter.token(v)
                return AerospikeConfigCheck.tokenProblem(t) == nil ? t : nil
            }
        }
        func context(_ o: JSONObject, _ depth: Int) -> JSONObject {
            var out = JSONObject()
            let plain = o.entries.filter { !AerospikeConfWriter.colonSplit.contains(AerospikeConfWriter.singular[$0.key] ?? $0.key) }
            for (k, v) in plain where AerospikeConfigCheck.isKey(k) && out[k] == nil {
                switch v {
                case .object(let child) where depth < 4 && k != "storage-engine":
                    contexts += 1
                    out[k] = .object(context(child, depth + 1))
                case .array(let items):
                    let tokens = items.compactMap(scalar)
                    guard !tokens.isEmpty else { continue }
                    out[k] = .array(tokens.map(JSONValue.string))
                    lines += tokens.map { (AerospikeConfWriter.singular[k] ?? k) + " " + $0 }
                default:
                    guard let t = scalar(v) else { continue }
                    out[k] = .string(t)
                    lines.append(k + " " + t)
                }
            }
            return out
        }
        var config = JSONObject()
        for (k, v) in object.entries where AerospikeConfigCheck.isKey(k) && config[k] == nil && k != "namespaces" && k != "logging" {
            guard case .object(let o) = v else { continue }
            contexts += 1
            config[k] = .object(context(o, 1))
        }
        if case .array(let items)? = object["namespaces"] {
            var namespaces: [JSONValue] = []
            for case .object(let o) in items {
                guard let name = o["name"].flatMap(scalar) else { continue }
                contexts += 1
                var ns = context(JSONObject(o.entries.filter { $0.key != "name" }), 1)
                ns["name"] = .string(name)
                namespaces.append(.object(ns))
            }
            if !namespaces.isEmpty { config["namespaces"] = .array(namespaces) }
        }
        let text = AerospikeConfWriter.render(config)
        let items: [AerospikeConfReader.Item]
        do {
            items = try AerospikeConfReader.parse(text)
        } catch {
            preconditionFailure("aerospike.conf does not read back (\(error)):\n\(text)")
        }
        var readLines: [String] = []
        var readContexts = 0
        func walk(_ items: [AerospikeConfReader.Item]) {
            for item in items {
                switch item {
                case .line(let key, let values): readLines.append(([key] + values).joined(separator: " "))
                case .context(_, let inner): readContexts += 1; walk(inner)
                }
            }
        }
        walk(items)
        precondition(readLines.sorted() == lines.sorted(), "aerospike.conf lines read back differently:\n\(text)")
        precondition(readContexts == contexts, "aerospike.conf has \(readContexts) contexts, \(contexts) written:\n\(text)")
    }

    static let dnsRewriter = DNSRewriter(rules: [
        try! DNSRule(parsing: "kdb-{n}.kdb.example.com=kdb-{n}.kdb.events.svc.cluster.local"),
        try! DNSRule(parsing: "fixed.example.com=10.0.0.1"), try! DNSRule(parsing: "v6.example.com=fd00::1"),
    ])

    /// Any bytes as a DNS message from the pod (a query) and as the upstream's answer (its id
    /// made the query's): SplitDNS's resolver must never crash, and what it makes itself must
    /// read back and fit a TCP frame (512 bytes for UDP).
    static func dns(_ bytes: UnsafeBufferPointer<UInt8>) {
        let input = Array(bytes)
        if let m = try? DNSMessage(parsing: input) {
            precondition((try? DNSMessage(parsing: m.encoded())) != nil, "a message read does not read back once written")
        }
        for limit in [512, Int.max] {
            let reply = dnsRewriter.reply(to: input, limit: limit) { query, _ in
                var answer = input
                if answer.count >= 2, query.count >= 2 { answer[0] = query[0]; answer[1] = query[1] }
                return answer
            }
            guard let reply else { continue }
            let passedOn = reply.count >= 2 && Array(reply.dropFirst(2)) == Array(input.dropFirst(2))
            if !passedOn {
                precondition(reply.count <= min(limit, 65535), "a reply made here is \(reply.count) bytes (limit \(limit))")
                precondition((try? DNSMessage(parsing: reply)) != nil, "a reply made here does not read back")
            }
        }
    }
}
