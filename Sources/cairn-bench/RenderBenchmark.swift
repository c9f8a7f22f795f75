// validate + render: for each N, writes N generated spec files (the four systems in turn) to a
// temporary directory, then times reading + validating + rendering them all in one process, as
// `cairn render DIR` does, and prints the figures and the growth between sizes.
import ClusterSpecs
import Foundation
import Render

func specText(_ i: Int) -> String {
    switch i % 4 {
    case 0:
        return """
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: es-\(i), namespace: bench}
            spec:
              replicas: 3
              image: eventstore/eventstore:23.10.2-bookworm-slim
              storage: {resources: {requests: {storage: 10Gi}}}
              resources: {requests: {cpu: 500m, memory: 1Gi}}
              network: {loadBalancer: {enabled: true, allowedIps: [10.0.0.0/8]}}
              configuration: {RunProjections: System, MaxAppendSize: \(1_048_576 + i)}

            """
    case 1:
        return """
            apiVersion: agent.atomix.io/v1alpha1
            kind: AtomixCluster
            metadata: {name: ax-\(i), namespace: bench}
            spec:
              version: 3.1.0
              managementGroup: {size: 3}
              partitionGroups:
                - {name: raft, size: 3, partitions: 3, raft: {storage: {className: fast}}}
                - {name: pb, size: 2, partitions: 7, primaryBackup: {}}

            """
    case 2:
        return """
            apiVersion: asdb.aerospike.com/v1
            kind: AerospikeCluster
            metadata: {name: as-\(i), namespace: bench}
            spec:
              size: 4
              image: aerospike/aerospike-server:7.1.0.0
              rackConfig: {namespaces: [test], racks: [{id: 1, zone: a}, {id: 2, zone: b}]}
              aerospikeConfig:
                network: {service: {port: 3000}, heartbeat: {port: 3002}, fabric: {port: 3001}}
                namespaces: [{name: test, replication-factor: 2, storage-engine: {type: memory, data-size: 1G}}]

            """
    default:
        return """
            apiVersion: acid.zalan.do/v1
            kind: postgresql
            metadata: {name: pg-\(i), namespace: bench}
            spec:
              teamId: acid
              numberOfInstances: 2
              volume: {size: 10Gi}
              users: {app: [login], owner: [createdb]}
              databases: {app: owner}
              postgresql: {version: "16", parameters: {shared_buffers: 128MB, max_connections: "200"}}
              patroni: {ttl: 30, loop_wait: 10, retry_timeout: 10}

            """
    }
}

struct Figures {
    var files: Int
    var objects: Int
    var seconds: Double
}

func measure(_ count: Int, in root: URL) throws -> Figures {
    let dir = root.appendingPathComponent("n\(count)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    for i in 0..<count {
        try specText(i).write(to: dir.appendingPathComponent(String(format: "c%05d.yaml", i)), atomically: false, encoding: .utf8)
    }
    var best = Double.infinity
    var objects = 0
    for _ in 0..<3 {
        let start = DispatchTime.now()
        let paths = try SpecFiles.find([dir.path])
        let files = try paths.map { (path: $0, text: try SpecFiles.read($0)) }
        let loaded = ClusterSpecLoader.loadAll(files)
        guard loaded.errors.isEmpty else { fatalError("generated specs are invalid: \(loaded.errors.prefix(3))") }
        let rendered = ClusterRenderer.renderAll(loaded.clusters)
        let text = YAMLWriter.stream(ClusterRenderer.applyOrder(rendered.clusters).map(\.body))
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        precondition(!text.isEmpty)
        objects = rendered.clusters.reduce(0) { $0 + $1.objects.count }
        best = min(best, elapsed)
    }
    return Figures(files: count, objects: objects, seconds: best)
}

func renderBenchmark(_ arguments: [String]) throws {
    let counts = arguments.compactMap { Int($0) }
    let sizes = counts.isEmpty ? [100, 1000] : counts
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-bench-\(ProcessInfo.processInfo.processIdentifier)")
    defer { try? FileManager.default.removeItem(at: root) }

    print("validate + render (read files, decode, validate, render, write YAML), best of 3")
    print("files    objects   seconds   files/s   ms/file")
    var results: [Figures] = []
    for n in sizes {
        let f = try measure(n, in: root)
        results.append(f)
        print(String(format: "%5d  %9d  %8.3f  %8.0f  %8.3f", f.files, f.objects, f.seconds, Double(f.files) / f.seconds, f.seconds * 1000 / Double(f.files)))
    }
    if results.count > 1, let first = results.first, let last = results.last {
        print(String(format: "growth: %.1fx the files took %.1fx the time", Double(last.files) / Double(first.files), last.seconds / first.seconds))
    }
}

/// `cairn-bench json FILE`: parses a JSON file (an API server LIST response, say) five times;
/// the median, and MB/s.
func jsonBenchmark(_ path: String) throws {
    let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    var times: [Double] = []
    for _ in 0..<5 {
        let start = DispatchTime.now()
        _ = try JSONValue.parse(bytes)
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
    }
    let median = times.sorted()[2]
    print(String(format: "parse %.1f MB: %.3f s (%.0f MB/s), median of 5", Double(bytes.count) / 1e6, median, Double(bytes.count) / 1e6 / median))
}

/// JSONTestSuite's parsing cases (`test_parsing/` of github.com/nst/JSONTestSuite): every `y_`
/// file must parse, every `n_` file must be refused, `i_` files may go either way; none may
/// crash or hang. Prints each disagreement and the counts; exits 1 on a disagreement.
func jsonSuite(_ directory: String) throws {
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
    var counts: [String: (accepted: Int, refused: Int)] = [:]
    var wrong: [String] = []
    for name in names {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
        let accepted: Bool
        do {
            _ = try JSONValue.parse(bytes)
            accepted = true
        } catch {
            accepted = false
        }
        let kind = String(name.prefix(1))
        var c = counts[kind] ?? (0, 0)
        if accepted { c.accepted += 1 } else { c.refused += 1 }
        counts[kind] = c
        if (kind == "y" && !accepted) || (kind == "n" && accepted) { wrong.append(name) }
    }
    for kind in ["y", "n", "i"] {
        let c = counts[kind] ?? (0, 0)
        print("\(kind)_ files: \(c.accepted + c.refused), accepted \(c.accepted), refused \(c.refused)")
    }
    for name in wrong { print("WRONG: \(name)") }
    print(wrong.isEmpty ? "every y_ file parsed, every n_ file refused, nothing crashed" : "\(wrong.count) files disagree with the suite")
    if !wrong.isEmpty { exit(1) }
}

/// `cairn-bench memory DIR`: RSS taken by the parsed specs and by the `DesiredState` of DIR's
/// spec files (malloc trimmed before each reading), the size of the rendered objects' JSON, and
/// what reading them all back costs (what a pass over every cluster does).
func desiredStateMemory(_ directory: String) throws {
    typealias Trim = @convention(c) (Int) -> Int32
    let trim = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim"), to: Trim.self)
    func rss() -> Int {
        _ = trim(0)
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    }
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    let files = try names.map { DesiredState.File(path: $0, text: try String(contentsOfFile: directory + "/" + $0, encoding: .utf8)) }
    let start = rss()
    var specs: [ClusterSpec]? = try files.map { try ClusterSpecLoader.load($0.text, file: $0.path) }
    print("\(specs!.count) specs, parsed and decoded: \((rss() - start) / 1024) MB")
    specs = nil
    let before = rss()
    let state = DesiredState(files: files, packed: true)  // as `cairn run` holds it
    let after = rss()
    let objects = state.clusters.flatMap(\.objects)
    let bytes = objects.reduce(0) { $0 + $1.jsonCount.json }, held = objects.reduce(0) { $0 + $1.jsonCount.held }
    print("\(files.count) files, \(objects.count) objects: DesiredState \((after - before) / 1024) MB, of which the objects' JSON "
          + "\(held / 1_048_576) MB deflated (\(bytes / 1_048_576) MB as text, \(String(format: "%.1f", Double(bytes) / Double(max(held, 1))))x)")
    let clock = ContinuousClock()
    let reading = clock.measure { for o in objects { _ = o.body } }
    print("reading every object's body back: \(reading); RSS \(after / 1024) MB")
    // What deflating costs a render (cairn run's; the one-shot commands keep plain JSON).
    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    var plain = [Double](), packed = [Double]()
    for _ in 0..<3 {
        plain.append(seconds(clock.measure { _ = DesiredState(files: files) }))
        packed.append(seconds(clock.measure { _ = DesiredState(files: files, packed: true) }))
    }
    print(String(format: "rendering the files, best of 3: %.3f s as JSON, %.3f s deflated (%.2fx)", plain.min()!, packed.min()!, packed.min()! / plain.min()!))
}
