import Foundation
import KubeAPI
import Testing

/// The real control plane (etcd, kube-apiserver, kube-controller-manager) the Kubernetes tests
/// run against, started once per test process with `Tests/control-plane.sh` and stopped at exit.
///
/// Integration tests are skipped only when `CAIRN_SKIP_INTEGRATION=1` says so; otherwise a
/// control plane that cannot start fails them.
final class ControlPlane: Sendable {
    static let skip = ProcessInfo.processInfo.environment["CAIRN_SKIP_INTEGRATION"] == "1"
    let directory: String
    let kubeconfig: String
    let restrictedKubeconfig: String

    private init(directory: String) {
        self.directory = directory
        kubeconfig = directory + "/kubeconfig"
        restrictedKubeconfig = directory + "/kubeconfig-restricted"
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var instance: Result<ControlPlane, CommandFailed>?

    /// The shared control plane, started on first use.
    static func shared() throws -> ControlPlane {
        try lock.withLock {
            if instance == nil {
                instance = Result { () throws(CommandFailed) -> ControlPlane in try start() }
            }
            return try instance!.get()
        }
    }

    private static func start() throws(CommandFailed) -> ControlPlane {
        let script = Repo.root.appendingPathComponent("Tests/control-plane.sh").path
        let result: ProcessResult
        do {
            result = try run("/bin/bash", [script, "up"], timeout: 1800)
        } catch {
            throw CommandFailed(description: "control-plane.sh up: \(error)")
        }
        let dir = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, !dir.isEmpty else {
            throw CommandFailed(description: "control-plane.sh up failed (\(result.status)): \(result.stderr)")
        }
        stopAtExit(script: script, directory: dir)
        return ControlPlane(directory: dir)
    }

    /// A control plane of the caller's own (one it may restart), stopped with `stop()`.
    static func startPrivate() throws -> ControlPlane {
        let script = Repo.root.appendingPathComponent("Tests/control-plane.sh").path
        let result = try run("/bin/bash", [script, "up"], timeout: 600)
        let dir = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, !dir.isEmpty else { throw CommandFailed(description: "control-plane.sh up failed (\(result.status)): \(result.stderr)") }
        return ControlPlane(directory: dir)
    }

    /// Stops every process of a private control plane, by its pids.
    func stop() {
        _ = try? run("/bin/bash", [Repo.root.appendingPathComponent("Tests/control-plane.sh").path, "down", directory], timeout: 60)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops kube-apiserver and starts it again on its port (a private control plane only).
    func restartAPIServer() throws {
        let r = try run("/bin/bash", [Repo.root.appendingPathComponent("Tests/control-plane.sh").path, "restart-apiserver", directory], timeout: 120)
        guard r.status == 0 else { throw CommandFailed(description: "restart-apiserver failed: \(r.stderr)") }
    }

    func client(concurrency: Int = 8, restricted: Bool = false) throws -> KubeClient {
        try KubeClient(config: KubeConfig.load(path: restricted ? restrictedKubeconfig : kubeconfig), concurrency: concurrency)
    }
}

nonisolated(unsafe) private var controlPlaneToStop: (script: String, directory: String)?

private func stopAtExit(script: String, directory: String) {
    controlPlaneToStop = (script, directory)
    atexit {
        guard let (script, dir) = controlPlaneToStop else { return }
        // Stop every process the control plane started, by the pids it recorded.
        _ = try? run("/bin/bash", [script, "down", dir], timeout: 30)
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// Plays the kubelet's part, which nothing here can: marks the pods of a StatefulSet Running and
/// Ready (status PATCH), so that the StatefulSet controller goes on with a rollout.
struct KubeletStandIn {
    let client: KubeClient

    /// Marks every pod of the StatefulSet that is not Ready yet; the number marked.
    @discardableResult
    func markReady(namespace: String, selector: String) async throws -> Int {
        let pods = try await client.list(apiVersion: "v1", kind: "Pod", namespace: namespace, labelSelector: selector)
        var marked = 0
        for pod in pods {
            let ready = (pod["status", "conditions"]?.arrayValue ?? []).contains { $0["type"] == "Ready" && $0["status"] == "True" }
            guard !ready, pod["metadata", "deletionTimestamp"] == nil, let ref = ObjectReference(pod) else { continue }
            let now = ISO8601DateFormatter().string(from: Date())
            _ = try await client.patchStatus(ref, [
                "status": [
                    "phase": "Running",
                    "podIP": .string("10.0.0.\(marked + 10)"),
                    "conditions": [
                        ["type": "Initialized", "status": "True", "lastTransitionTime": .string(now)],
                        ["type": "ContainersReady", "status": "True", "lastTransitionTime": .string(now)],
                        ["type": "Ready", "status": "True", "lastTransitionTime": .string(now)],
                    ],
                ],
            ])
            marked += 1
        }
        return marked
    }
}
