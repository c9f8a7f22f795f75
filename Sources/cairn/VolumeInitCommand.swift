import ArgumentParser
import Foundation
import JSON
import KubeAPI
#if canImport(Glibc)
import Glibc
#endif

extension Cairn {
    /// Aerospike's `initMethod` for Block volumes, once per volume claim, run by cairn in an init
    /// container of each Aerospike pod (from cairn's own image). The upstream operator records the
    /// claims it has initialised in its status; cairn records it on the claim itself, as the
    /// annotation `cairn.dev/volume-initialized`, and initialises only claims made since cairn
    /// began to initialise this cluster's devices: since its ServiceAccount (`--service-account`,
    /// made with the first StatefulSet that runs this) was created. An older claim already holds
    /// the cluster's data (a cluster taken over from the upstream operator, or one whose
    /// initMethod was none until now): it is marked `pre-existing` and never touched.
    struct VolumeInitCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "volume-init",
            abstract: "Initialise a pod's Block volumes once per volume claim (Aerospike's initMethod).",
            discussion: """
                Each VOLUME is NAME=METHOD:DEVICE: the claim is NAME-POD (a StatefulSet's claim of \
                its volume claim template NAME), METHOD is dd (zero the whole device), \
                headerCleanup (zero its first 8 MiB), blkdiscard (discard every block) or \
                blkdiscardWithHeaderCleanup (both). A claim annotated cairn.dev/volume-initialized \
                is left alone; after initialising, the claim is annotated (checked against its uid).
                """
        )

        @Option(help: "The pod whose claims these are (a StatefulSet pod's name).")
        var pod: String

        @Option(help: "The pod's namespace.")
        var namespace: String

        @Option(help: "The ServiceAccount made when cairn began to initialise these devices: older claims are never initialised.")
        var serviceAccount: String

        @Option(help: ArgumentHelp("kubeconfig file (default: in a pod, its service account; else $KUBECONFIG, ~/.kube/config).", valueName: "file"))
        var kubeconfig: String?

        @Argument(help: ArgumentHelp("The volumes, as NAME=METHOD:DEVICE.", valueName: "volume"))
        var volumes: [String]

        static let annotation = "cairn.dev/volume-initialized"
        static let methods = ["dd", "headerCleanup", "blkdiscard", "blkdiscardWithHeaderCleanup"]

        func run() async throws {
            let parsed: [(name: String, method: String, device: String)]
            do {
                parsed = try volumes.map(Self.parse)
            } catch {
                printError("cairn volume-init: \(error)")
                throw ExitCode(2)
            }
            let env = ProcessInfo.processInfo.environment
            let config: KubeConfig
            do {
                config = kubeconfig == nil && env["KUBERNETES_SERVICE_HOST"] != nil ? try KubeConfig.inCluster() : try KubeConfig.load(path: kubeconfig)
            } catch {
                printError("cairn volume-init: \(error)")
                throw ExitCode(1)
            }
            let client = try KubeClient(config: config, requestTimeout: .seconds(30))
            var failed = false
            for volume in parsed {
                do {
                    try await initialise(volume, client: client)
                } catch {
                    printError("cairn volume-init: \(volume.name) (\(volume.device)): \(error)")
                    failed = true
                    break
                }
            }
            await client.shutdown()
            if failed { throw ExitCode(1) }
        }

        static func parse(_ text: String) throws -> (name: String, method: String, device: String) {
            guard let eq = text.firstIndex(of: "="), let colon = text[eq...].firstIndex(of: ":") else {
                throw VolumeInitError("'\(text)' is not NAME=METHOD:DEVICE")
            }
            let name = String(text[..<eq]), method = String(text[text.index(after: eq)..<colon]), device = String(text[text.index(after: colon)...])
            guard !name.isEmpty, device.hasPrefix("/") else { throw VolumeInitError("'\(text)' is not NAME=METHOD:DEVICE") }
            guard methods.contains(method) else { throw VolumeInitError("\(method) is not one of \(methods.joined(separator: ", "))") }
            return (name, method, device)
        }

        func initialise(_ volume: (name: String, method: String, device: String), client: KubeClient) async throws {
            let claim = ObjectReference(apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: namespace, name: "\(volume.name)-\(pod)")
            let live = try await client.get(claim)
            guard let uid = live["metadata", "uid"]?.stringValue else { throw VolumeInitError("\(claim) has no uid") }
            if let done = live["metadata", "annotations", Self.annotation]?.stringValue {
                printError("cairn volume-init: \(claim) was initialised (\(done)): left alone")
                return
            }
            // The uid in a merge patch is a precondition: a claim deleted and made again
            // meanwhile is not marked for what was done to its predecessor.
            func mark(_ value: String) async throws {
                let patch: JSONValue = ["metadata": ["uid": .string(uid), "annotations": [Self.annotation: .string(value)]]]
                _ = try await client.patch(claim, patch)
            }
            let account = try await client.get(ObjectReference(apiVersion: "v1", kind: "ServiceAccount", namespace: namespace, name: serviceAccount))
            guard let since = account["metadata", "creationTimestamp"]?.stringValue.flatMap(UTCTime.parse),
                  let made = live["metadata", "creationTimestamp"]?.stringValue.flatMap(UTCTime.parse) else {
                throw VolumeInitError("\(claim) or ServiceAccount \(serviceAccount) has no creation time: nothing done")
            }
            // Whole seconds both: a claim made in the second its cluster's account was is new.
            if made < since {
                try await mark("pre-existing")
                printError("cairn volume-init: \(claim) was made before cairn initialised this cluster's devices "
                           + "(it holds the cluster's data): marked pre-existing, left alone")
                return
            }
            printError("cairn volume-init: \(claim) is new: \(volume.method) on \(volume.device)")
            try BlockDevice.initialise(volume.device, method: volume.method)
            try await mark(volume.method)
            printError("cairn volume-init: \(claim) initialised (\(volume.method))")
        }
    }
}

struct VolumeInitError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What Aerospike's init methods do to a device, as the upstream operator's init container does
/// them (dd, blkdiscard, and dd over the first 8 MiB for the header).
enum BlockDevice {
    static let headerBytes = 8 << 20

    static func initialise(_ path: String, method: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw VolumeInitError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0 else { throw VolumeInitError("cannot read the size of \(path): \(String(cString: strerror(errno)))") }
        switch method {
        case "dd":
            try zero(fd, path, bytes: Int(size))
        case "headerCleanup":
            try zero(fd, path, bytes: min(Int(size), headerBytes))
        case "blkdiscard":
            try discard(fd, path, bytes: Int(size))
        case "blkdiscardWithHeaderCleanup":
            try discard(fd, path, bytes: Int(size))
            try zero(fd, path, bytes: min(Int(size), headerBytes))
        default:
            throw VolumeInitError("unknown method \(method)")
        }
        guard fsync(fd) == 0 else { throw VolumeInitError("fsync \(path): \(String(cString: strerror(errno)))") }
    }

    /// Zeroes the first `bytes` bytes, a MiB at a time, flushed every 64 MiB (the container's
    /// memory limit counts the page cache it dirties).
    static func zero(_ fd: Int32, _ path: String, bytes: Int) throws {
        let chunk = [UInt8](repeating: 0, count: 1 << 20)
        var offset = 0
        var unflushed = 0
        while offset < bytes {
            let n = min(chunk.count, bytes - offset)
            let written = chunk.withUnsafeBytes { pwrite(fd, $0.baseAddress, n, off_t(offset)) }
            if written < 0, errno == EINTR { continue }
            guard written >= 0 else { throw VolumeInitError("write \(path) at \(offset): \(String(cString: strerror(errno)))") }
            guard written > 0 else { throw VolumeInitError("write \(path) at \(offset): no space (the device is smaller than it said)") }
            offset += written
            unflushed += written
            if unflushed >= 64 << 20 {
                guard fdatasync(fd) == 0 else { throw VolumeInitError("flush \(path): \(String(cString: strerror(errno)))") }
                unflushed = 0
            }
        }
    }

    /// Discards every block: BLKDISCARD on a block device (as `blkdiscard`), a punched hole in
    /// a regular file (the tests' stand-in for a device).
    static func discard(_ fd: Int32, _ path: String, bytes: Int) throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw VolumeInitError("stat \(path): \(String(cString: strerror(errno)))") }
        if (st.st_mode & S_IFMT) == S_IFBLK {
            var range: [UInt64] = [0, UInt64(bytes)]
            let blkdiscard: UInt = 0x1277  // _IO(0x12, 119)
            guard range.withUnsafeMutableBytes({ ioctl(fd, blkdiscard, $0.baseAddress!) }) == 0 else {
                throw VolumeInitError("discard \(path): \(String(cString: strerror(errno))) (the device may not support discard: use dd)")
            }
        } else {
            // fallocate(2) with FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (a GNU function: not
            // imported by Glibc's module, looked up).
            typealias Fallocate = @convention(c) (Int32, Int32, off_t, off_t) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "fallocate") else {
                throw VolumeInitError("discard \(path): fallocate is not available")
            }
            let fallocate = unsafeBitCast(symbol, to: Fallocate.self)
            guard fallocate(fd, 0x02 | 0x01, 0, off_t(bytes)) == 0 else {
                throw VolumeInitError("discard \(path): \(String(cString: strerror(errno)))")
            }
        }
    }
}
