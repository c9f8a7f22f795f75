import Foundation
import JSON
import KubeAPI
import Testing

/// `cairn volume-init`, the init container of Aerospike pods whose Block volumes have an
/// `initMethod`: against the real API server (a claim is a PersistentVolumeClaim object; it stays
/// Pending without a provisioner, which is all the command reads), with regular files standing in
/// for the devices (BLKDISCARD becomes a punched hole).
@Suite("cairn volume-init", .enabled(if: !ControlPlane.skip))
struct VolumeInitTests {
    let plane: ControlPlane
    let ns = "volume-init-\(UInt32.random(in: 0...UInt32.max))"
    let dir = TemporaryDirectory("cairn-volume-init")

    init() throws {
        plane = try ControlPlane.shared()
    }

    static let mib = 1 << 20

    func claim(_ name: String) -> ObjectReference {
        ObjectReference(apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: ns, name: name)
    }

    func makeClaim(_ client: KubeClient, _ name: String) async throws -> String {
        let body: JSONValue = [
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": ["name": .string(name), "namespace": .string(ns)],
            "spec": ["accessModes": ["ReadWriteOnce"], "volumeMode": "Block", "resources": ["requests": ["storage": "1Gi"]]],
        ]
        return try await client.create(body)["metadata", "uid"]?.stringValue ?? ""
    }

    /// A stand-in device of `mib` MiB filled with `byte`.
    func device(_ name: String, mib: Int = 12, byte: UInt8 = 0xAB) throws -> String {
        let path = dir.file(name)
        try Data(repeating: byte, count: mib * Self.mib).write(to: URL(fileURLWithPath: path))
        return path
    }

    func volumeInit(_ volumes: [String], pod: String = "aero-0-0") throws -> ProcessResult {
        try run(CLITests.binary, ["volume-init", "--pod", pod, "--namespace", ns, "--service-account", "aero-volume-init",
                                  "--kubeconfig", plane.kubeconfig] + volumes)
    }

    /// The namespace, and the ServiceAccount whose creation marks when cairn began to
    /// initialise the cluster's devices.
    func prepare(_ client: KubeClient) async throws {
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        _ = try await client.apply(["apiVersion": "v1", "kind": "ServiceAccount", "metadata": ["name": "aero-volume-init", "namespace": .string(ns)]],
                                   fieldManager: "cairn-test")
    }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test func aNewClaimIsInitialisedOnceAndMarkedOnTheClaim() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        try await prepare(client)
        _ = try await makeClaim(client, "ns-aero-0-0")
        let dev = try device("nvme0n1")

        // A new claim: zeroed whole, then marked.
        var r = try volumeInit(["ns=dd:\(dev)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try bytes(dev).allSatisfy { $0 == 0 }, "dd zeroes the whole device")
        #expect(try await client.get(claim("ns-aero-0-0"))["metadata", "annotations", "cairn.dev/volume-initialized"] == "dd")

        // Data written since (the server ran): the next start leaves it alone.
        try Data(repeating: 0xCD, count: 12 * Self.mib).write(to: URL(fileURLWithPath: dev))
        r = try volumeInit(["ns=dd:\(dev)"])
        #expect(r.status == 0 && r.stderr.contains("was initialised (dd): left alone"), "\(r.stderr)")
        #expect(try bytes(dev).allSatisfy { $0 == 0xCD }, "an initialised claim's data is never touched again")

        // The claim deleted and made again (a new volume under the same name): initialised again.
        try await client.delete(claim("ns-aero-0-0"))
        // Its pvc-protection finalizer is the controller-manager's to take off once no pod uses
        // it; this test's control plane may not run that controller.
        _ = try? await client.patch(claim("ns-aero-0-0"), ["metadata": ["finalizers": .null]])
        for _ in 0..<100 where (try? await client.get(claim("ns-aero-0-0"))) != nil { try await Task.sleep(nanoseconds: 100_000_000) }
        _ = try await makeClaim(client, "ns-aero-0-0")
        r = try volumeInit(["ns=dd:\(dev)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try bytes(dev).allSatisfy { $0 == 0 })
    }

    /// A claim older than cairn's initialising of the cluster's devices holds its data (a
    /// cluster taken over from the upstream operator, or initMethod none until now): never
    /// initialised, marked so. And the mark's uid precondition: a claim made anew under the same
    /// name is not marked for its predecessor.
    @Test func aClaimOlderThanTheClustersDeviceInitIsNeverTouched() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        let oldUID = try await makeClaim(client, "ns-aero-0-0")
        try await Task.sleep(nanoseconds: 1_100_000_000)  // creation times are whole seconds
        try await prepare(client)
        let dev = try device("nvme1n1", byte: 0x5A)
        for _ in 0..<2 {
            let r = try volumeInit(["ns=dd:\(dev)"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try bytes(dev).allSatisfy { $0 == 0x5A }, "the cluster's data is untouched: \(r.stderr)")
        }
        #expect(try await client.get(claim("ns-aero-0-0"))["metadata", "annotations", "cairn.dev/volume-initialized"] == "pre-existing")

        // The precondition the mark carries: another uid is refused, nothing written.
        await #expect(throws: KubeError.self) {
            _ = try await client.patch(claim("ns-aero-0-0"), ["metadata": ["uid": "00000000-0000-0000-0000-000000000000",
                                                                           "annotations": ["x": "y"]]])
        }
        #expect(try await client.get(claim("ns-aero-0-0"))["metadata", "annotations", "x"] == nil)
        #expect(try await client.get(claim("ns-aero-0-0"))["metadata", "uid"]?.stringValue == oldUID)
    }

    @Test func eachMethodDoesWhatUpstreamsDoes() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        try await prepare(client)
        for name in ["header", "discard", "both"] { _ = try await makeClaim(client, "\(name)-aero-1-0") }
        let header = try device("sdb"), discard = try device("sdc"), both = try device("sdd")
        let r = try volumeInit(["header=headerCleanup:\(header)", "discard=blkdiscard:\(discard)", "both=blkdiscardWithHeaderCleanup:\(both)"],
                               pod: "aero-1-0")
        #expect(r.status == 0, "\(r.stderr)")
        let h = try bytes(header)
        #expect(h.count == 12 * Self.mib)
        #expect(h[..<(8 * Self.mib)].allSatisfy { $0 == 0 } && h[(8 * Self.mib)...].allSatisfy { $0 == 0xAB }, "headerCleanup zeroes the first 8 MiB only")
        for path in [discard, both] {
            let b = try bytes(path)
            #expect(b.count == 12 * Self.mib && b.allSatisfy { $0 == 0 }, "\(path): discarded, its size kept")
        }
        for name in ["header", "discard", "both"] {
            #expect(try await client.get(claim("\(name)-aero-1-0"))["metadata", "annotations", "cairn.dev/volume-initialized"] != nil)
        }
    }

    @Test func aClaimThatCannotBeReadLeavesTheDeviceAlone() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        try await prepare(client)
        let dev = try device("sde")
        let r = try volumeInit(["ns=dd:\(dev)"], pod: "aero-9-0")
        #expect(r.status == 1 && r.stderr.contains("PersistentVolumeClaim/\(ns)/ns-aero-9-0") && r.stderr.contains("NotFound"), "\(r.stderr)")
        #expect(try bytes(dev).allSatisfy { $0 == 0xAB }, "nothing written without the claim's record")
        let bad = try volumeInit(["ns=format:\(dev)"])
        #expect(bad.status == 2 && bad.stderr.contains("format is not one of dd, headerCleanup, blkdiscard, blkdiscardWithHeaderCleanup"), "\(bad.stderr)")
    }

    /// The API server takes what cairn renders for a Block volume's initMethod (the projected
    /// token, the init container's devices, the Role), and a second pass changes nothing.
    @Test func theRenderedObjectsAreTakenByTheAPIServer() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        let spec = """
            apiVersion: asdb.aerospike.com/v1
            kind: AerospikeCluster
            metadata: {name: aero, namespace: \(ns)}
            spec:
              size: 1
              image: aerospike/aerospike-server:7.1.0.0
              storage:
                blockVolumePolicy: {initMethod: dd}
                volumes:
                  - name: workdir
                    aerospike: {path: /opt/aerospike}
                    source: {persistentVolume: {size: 1Gi, volumeMode: Filesystem}}
                  - name: raw
                    aerospike: {path: /dev/xvdf}
                    source: {persistentVolume: {size: 1Gi, volumeMode: Block}}
              aerospikeConfig:
                network:
                  service: {port: 3000}
                  heartbeat: {port: 3002}
                  fabric: {port: 3001}
                namespaces: [{name: t, storage-engine: {type: device, devices: [/dev/xvdf]}}]

            """
        try spec.write(toFile: dir.file("aero.yaml"), atomically: true, encoding: .utf8)
        let arguments = ["apply", dir.file("aero.yaml"), "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns,
                         "--dns-proxy-image", "registry.test/cairn:1.0", "-o", "json"]
        let first = try run(CLITests.binary, arguments, timeout: 120)
        #expect(first.status == 0, "\(first.stdout.suffix(2000))\(first.stderr)")
        let set = try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: "aero-0"))
        let inits = set["spec", "template", "spec", "initContainers"]?.arrayValue ?? []
        #expect(inits.contains { $0["name"] == "cairn-init-devices" && $0["args"]?.arrayValue?.last == "raw=dd:/dev/xvdf" }, "\(inits)")
        _ = try await client.get(ObjectReference(apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", namespace: ns, name: "aero-volume-init"))
        let again = try run(CLITests.binary, arguments, timeout: 120)
        let actions = (try JSONValue.parse(Array(again.stdout.utf8)))["clusters"]?.arrayValue?.first?["objects"]?.arrayValue ?? []
        #expect(!actions.isEmpty && actions.allSatisfy { $0["action"] == "unchanged" }, "\(again.stdout.suffix(3000))")
    }
}
