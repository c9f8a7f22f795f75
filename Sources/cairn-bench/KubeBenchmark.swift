// kube: server-side apply of the 400 objects of 100 generated EventStoreDB clusters against a
// real kube-apiserver started by Tests/control-plane.sh: cairn's client at concurrency 1, 8 and
// 16, `kubectl apply --server-side -f DIR` on the same objects, and one LIST per kind.
import ClusterSpecs
import Foundation
import KubeAPI
import Render
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command and returns its stdout (posix_spawn; stderr to the terminal).
func capture(_ arguments: [String]) -> String {
    let file = NSTemporaryDirectory() + "cairn-bench-out-\(getpid())"
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ) == 0 else { return "" }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    defer { unlink(file) }
    return (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
}

/// The `cairn` binary built beside this one, or nil (and a hint printed).
func cairnBinary() -> String? {
    let cairn = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("cairn").path
    guard FileManager.default.isExecutableFile(atPath: cairn) else {
        print("build cairn beside cairn-bench first: swift build -c release (looked for \(cairn))")
        return nil
    }
    return cairn
}

/// A control plane from Tests/control-plane.sh for one benchmark, kube-controller-manager
/// stopped so that pods being created load no peer; `stop()` when done.
struct BenchControlPlane {
    let script: String
    let dir: String
    var kubeconfig: String { dir + "/kubeconfig" }

    static func start() -> BenchControlPlane? {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tests/control-plane.sh").path
        let dir = capture(["bash", script, "up"]).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !dir.isEmpty else { print("the control plane did not start"); return nil }
        if let pid = try? String(contentsOfFile: dir + "/controller-manager.pid", encoding: .utf8),
           let p = Int32(pid.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(p, SIGTERM)
        }
        return BenchControlPlane(script: script, dir: dir)
    }

    func stop() { _ = capture(["bash", script, "down", dir]) }
}

func kubeBenchmark() async throws {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Tests/control-plane.sh").path
    let dir = capture(["bash", script, "up"]).trimmingCharacters(in: .whitespacesAndNewlines)
    guard !dir.isEmpty else { print("the control plane did not start"); return }
    defer { _ = capture(["bash", script, "down", dir]) }
    let kubeconfig = dir + "/kubeconfig"

    let namespace = "bench"
    var specs: [ClusterSpec] = []
    for i in 0..<100 {
        let yaml = """
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: es-\(i), namespace: \(namespace)}
            spec:
              replicas: 3
              image: eventstore/eventstore:23.10.2-bookworm-slim
              storage: {resources: {requests: {storage: 10Gi}}}
              configuration: {MaxAppendSize: \(1_048_576 + i)}
            """
        specs.append(try ClusterSpecLoader.load(yaml, file: "es-\(i).yaml"))
    }
    let setup = try KubeClient(config: KubeConfig.load(path: kubeconfig))
    let pdb = try await setup.serves("policy/v1") ? "policy/v1" : "policy/v1beta1"
    let objects = ClusterRenderer.applyOrder(ClusterRenderer.renderAll(specs, options: RenderOptions(podDisruptionBudgetAPIVersion: pdb)).clusters)
    _ = try await setup.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(namespace)]], fieldManager: "cairn")
    let manifests = dir + "/manifests"
    try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
    for o in objects {
        try YAMLWriter.document(o.body).write(toFile: "\(manifests)/\(o.kind)-\(o.name).yaml", atomically: false, encoding: .utf8)
    }

    func applyAll(concurrency: Int) async throws -> Double {
        let client = try KubeClient(config: KubeConfig.load(path: kubeconfig), concurrency: concurrency)
        _ = try await client.serverVersion()  // connect and discover outside the timing
        _ = try await client.apply(objects[0].body, fieldManager: "cairn")
        let start = DispatchTime.now()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for o in objects {
                group.addTask { _ = try await client.apply(o.body, fieldManager: "cairn") }
            }
            try await group.waitForAll()
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        await client.shutdown()
        return elapsed
    }

    let create = try await applyAll(concurrency: 8)
    var rows: [(String, Double)] = [("cairn, create, concurrency 8", create)]
    for c in [1, 8, 16] {
        var best = Double.infinity
        for _ in 0..<3 { best = min(best, try await applyAll(concurrency: c)) }
        rows.append(("cairn, unchanged, concurrency \(c)", best))
    }
    var kubectl = Double.infinity
    for _ in 0..<3 {
        let t = DispatchTime.now()
        _ = capture(["kubectl", "--kubeconfig", kubeconfig, "apply", "--server-side", "--field-manager", "cairn", "-f", manifests])
        kubectl = min(kubectl, Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9)
    }
    rows.append(("kubectl apply --server-side -f DIR", kubectl))
    let lister = try KubeClient(config: KubeConfig.load(path: kubeconfig))
    _ = try await lister.list(apiVersion: "v1", kind: "ConfigMap", namespace: namespace)
    let t = DispatchTime.now()
    var listed = 0
    for (v, k) in [("v1", "ConfigMap"), ("v1", "Service"), (pdb, "PodDisruptionBudget"), ("apps/v1", "StatefulSet")] {
        listed += try await lister.list(apiVersion: v, kind: k, namespace: namespace, labelSelector: "app.kubernetes.io/managed-by=cairn").count
    }
    rows.append(("one LIST per kind (\(listed) objects)", Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9))
    await lister.shutdown()
    await setup.shutdown()

    print("server-side apply of \(objects.count) objects (100 EventStoreDB clusters), kube-apiserver 1.20 on loopback, best of 3")
    print("operation                                   seconds   vs kubectl")
    for (name, s) in rows {
        print(name.padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: "  %8.3f   %8.2fx", s, kubectl / s))
    }
    print("raw server figure from the research notes at concurrency 8: 0.8-0.9 s")
}
