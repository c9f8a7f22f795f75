// libFuzzer targets for what cairn reads from others: spec files (decoding, validation and every
// renderer), JSON (API server responses), kubeconfigs, and the eventstore.conf serialiser (what
// it writes must read back as what it was given). Built by `Tests/fuzz.sh` with
// `-sanitize=fuzzer,address -D FUZZING`; the target is chosen with CAIRN_FUZZ_TARGET (spec, json,
// conf, kubeconfig). A normal build makes a stub that says how to build it.
import ClusterSpecs
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
    case spec, json, conf, kubeconfig

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
    static func json(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let value = try? JSONValue.parse(bytes) else { return }
        let again = try? JSONValue.parse(Array(value.canonicalJSON().utf8))
        precondition(again?.canonicalJSON() == value.canonicalJSON(), "canonical JSON does not read back")
    }

    /// Any JSON object as EventStoreDB options: the written eventstore.conf reads back, through
    /// the spec files' YAML reader, as the same keys with the same scalar texts.
    static func conf(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard case .object(let object)? = try? JSONValue.parse(bytes) else { return }
        // The options a spec can hold: names as the spec's validation allows them (the fuzzer's
        // first find was a 1,300-character key, over YAML's 1,024 limit for implicit keys:
        // now refused by validation), values scalars or lists of scalars.
        let flat = JSONObject(object.entries.filter { entry in
            guard EventStoreSpec.isOptionName(entry.key) else { return false }
            switch entry.value {
            case .object: return false
            case .array(let items): return items.allSatisfy { if case .object = $0 { return false }; if case .array = $0 { return false }; return true }
            default: return true
            }
        })
        guard !flat.isEmpty else { return }
        let text = EventStoreConf.write(flat)
        guard let root = try? SpecFileParser.parse(text, file: "eventstore.conf"), case .mapping(let mapping) = root else {
            preconditionFailure("eventstore.conf does not read back:\n\(text)")
        }
        precondition(mapping.entries.map(\.key.text) == flat.keys, "keys changed:\n\(text)")
    }

    static let kubeconfigFile = NSTemporaryDirectory() + "cairn-fuzz-kubeconfig-\(getpid()).yaml"

    /// Any bytes as a kubeconfig: loaded or refused with an error, never a crash, a hang or
    /// unbounded memory (aliases, deep nesting and oversized files are refused first).
    static func kubeconfig(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard FileManager.default.createFile(atPath: kubeconfigFile, contents: Data(bytes)) else { return }
        _ = try? KubeConfig.load(path: kubeconfigFile)
    }
}
