import ClusterSpecs
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Render

/// Paths inside the repository, found from this file's location.
enum Repo {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let clusters = root.appendingPathComponent("clusters")
    static let golden = root.appendingPathComponent("Tests/CairnTests/Golden")

    static func read(_ url: URL) -> String {
        try! String(contentsOf: url, encoding: .utf8)
    }

    static var exampleFiles: [String] {
        try! FileManager.default.contentsOfDirectory(atPath: clusters.path).filter { $0.hasSuffix(".yaml") }.sorted()
    }
}

/// Loads a spec from text; the errors as printed, or an empty list.
func specErrors(_ yaml: String, file: String = "t.yaml") -> [String] {
    do {
        _ = try ClusterSpecLoader.load(yaml, file: file)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

/// Writes a program a test runs, executable, through a close-on-exec descriptor. Written the
/// usual way (`String.write`), the descriptor can be inherited by a process another test spawns
/// at that moment, which then holds the file open for writing as long as it lives, and running
/// the program fails with "Text file busy" (seen in CI: a stand-in asadm that could not start).
func writeExecutable(_ text: String, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    guard fd >= 0 else { throw CommandFailed(description: "cannot write \(path): errno \(errno)") }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
        let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw CommandFailed(description: "cannot write \(path): errno \(errno)") }
        written += n
    }
    guard fchmod(fd, 0o755) == 0 else { throw CommandFailed(description: "cannot chmod \(path): errno \(errno)") }
}

/// The notes of a spec that loads, as printed (none when it does not load).
func specNotes(_ yaml: String, file: String = "t.yaml") -> [String] {
    ((try? ClusterSpecLoader.load(yaml, file: file))?.notes ?? []).map(\.description)
}

func loadSpec(_ yaml: String, file: String = "t.yaml") throws -> ClusterSpec {
    try ClusterSpecLoader.load(yaml, file: file)
}

func render(_ yaml: String) throws -> [RenderedObject] {
    ClusterRenderer.render(try loadSpec(yaml)).objects
}

func object(_ objects: [RenderedObject], _ kind: String, _ name: String) -> RenderedObject? {
    objects.first { $0.kind == kind && $0.name == name }
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion with a bounded wait (killed at the limit).
///
/// posix_spawn with files for stdin/stdout/stderr, not Foundation's `Process`: on Linux its
/// monitor thread can block for good when the child leaves background processes behind (as
/// `control-plane.sh up` does) or while another child runs.
func run(_ executable: String, _ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 120) throws -> ProcessResult {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let (inPath, outPath, errPath) = (dir.appendingPathComponent("in").path, dir.appendingPathComponent("out").path, dir.appendingPathComponent("err").path)
    try (stdin ?? "").write(toFile: inPath, atomically: false, encoding: .utf8)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard spawned == 0 else { throw CommandFailed(description: "cannot run \(executable): \(String(cString: strerror(spawned)))") }
    let deadline = Date().addingTimeInterval(timeout)
    var status: Int32 = 0
    while waitpid(pid, &status, WNOHANG) == 0 {
        if Date() > deadline {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            throw CommandFailed(description: "\(executable) did not finish in \(Int(timeout)) s")
        }
        usleep(5_000)
    }
    let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ProcessResult(status: exit,
                         stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                         stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}

/// Runs a Python snippet with `input` on stdin; its stdout.
func python(_ script: String, input: String) throws -> ProcessResult {
    try run("/usr/bin/env", ["python3", "-c", script], stdin: input)
}
