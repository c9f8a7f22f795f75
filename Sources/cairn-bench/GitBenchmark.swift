// git: cairn's git layer beside the git CLI, in the same run, on a generated repository of
// 5,000 files and 1,000 commits served by `git daemon` on loopback:
//   - remote head check of an unchanged repository   vs `git ls-remote`
//   - incremental fetch of one new commit             vs `git fetch` into a `--mirror` clone
//   - reading the 1,000 spec files at a commit        vs `git archive`
import Foundation
import GitStore
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command to completion (posix_spawn: no Foundation process monitor), output discarded.
@discardableResult
func spawn(_ arguments: [String], stdin: String? = nil, directory: String? = nil) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, stdin ?? "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var args = arguments
    if let directory { args = [args[0], "-C", directory] + args.dropFirst() }
    let argv = args.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawnp(&pid, args[0], &actions, nil, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return status
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now()
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

func median(_ runs: Int, _ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<runs { times.append(try seconds(body)) }
    return times.sorted()[runs / 2]
}

func gitBenchmark() throws {
    let root = NSTemporaryDirectory() + "cairn-git-bench-\(getpid())"
    defer { _ = spawn(["rm", "-rf", root]) }
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let origin = root + "/origin.git"
    spawn(["git", "init", "-q", "--bare", "-b", "main", origin])

    // 5,000 files (1,000 spec files under clusters/) in the first commit, then 999 commits that
    // each change one file, written with git fast-import.
    var stream = ""
    func blob(_ text: String) -> String { "data \(text.utf8.count)\n\(text)\n" }
    stream += "commit refs/heads/main\ncommitter Bench <b@x> 1700000000 +0000\n" + blob("initial")
    for i in 0..<5000 {
        let path = i < 1000 ? String(format: "clusters/c%04d.yaml", i) : String(format: "src/m%02d/f%04d.txt", i % 50, i)
        stream += "M 100644 inline \(path)\n" + blob("apiVersion: acid.zalan.do/v1\nkind: postgresql\nmetadata: {name: c\(i)}\n# \(i)\n")
    }
    for c in 1..<1000 {
        stream += "commit refs/heads/main\ncommitter Bench <b@x> \(1_700_000_000 + c) +0000\n" + blob("change \(c)")
        stream += "M 100644 inline " + String(format: "src/m%02d/f%04d.txt", c % 50, 1000 + c) + "\n" + blob("changed \(c)\n")
    }
    let streamFile = root + "/stream"
    try stream.write(toFile: streamFile, atomically: false, encoding: .utf8)
    spawn(["git", "--git-dir", origin, "fast-import", "--quiet"], stdin: streamFile)

    // git daemon on loopback, in its own process group, stopped at the end.
    let port = 20000 + Int(getpid() % 20000)
    var daemon: pid_t = 0
    let daemonArgs = ["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", "--port=\(port)", "--base-path=\(root)", root]
    let argv = daemonArgs.map { strdup($0) } + [nil]
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
    posix_spawnp(&daemon, "git", nil, &attributes, argv, environ)
    argv.forEach { free($0) }
    defer { kill(-daemon, SIGKILL); var s: Int32 = 0; waitpid(daemon, &s, 0) }
    let url = "git://127.0.0.1:\(port)/origin.git"
    for _ in 0..<100 where spawn(["git", "ls-remote", url]) != 0 { usleep(50_000) }

    let mirror = try Mirror.open(url: url, cacheDirectory: root + "/cache")
    try mirror.fetch()
    let cliMirror = root + "/cli-mirror.git"
    spawn(["git", "clone", "-q", "--mirror", url, cliMirror])

    let runs = 7
    let headCairn = try median(runs) { _ = try mirror.remoteHead() }
    let headCLI = median(runs) { spawn(["git", "ls-remote", url, "HEAD"]) }

    var fetchCairn: [Double] = [], fetchCLI: [Double] = []
    let work = root + "/work"
    spawn(["git", "clone", "-q", url.replacingOccurrences(of: "git://127.0.0.1:\(port)/", with: root + "/"), work])
    for i in 0..<runs {
        try "new \(i)\n".write(toFile: work + "/new.txt", atomically: false, encoding: .utf8)
        spawn(["git", "add", "-A"], directory: work)
        spawn(["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "new file \(i)"], directory: work)
        spawn(["git", "push", "-q", "origin", "HEAD:main"], directory: work)
        fetchCairn.append(try seconds { try mirror.fetch() })
        fetchCLI.append(seconds { spawn(["git", "--git-dir", cliMirror, "fetch", "-q", "origin"]) })
    }
    let head = try mirror.resolve("main")
    var specCount = 0
    let readCairn = try median(runs) { specCount = try mirror.files(at: head, under: "clusters").count }
    let readCLI = median(runs) { spawn(["git", "--git-dir", cliMirror, "archive", "--format=tar", "-o", root + "/out.tar", head.hex, "clusters"]) }

    print("git layer beside the git CLI: 5,000 files, 1,000 commits, git:// on loopback (median of \(runs))")
    print("operation                               cairn (ms)   git CLI (ms)   cairn/CLI")
    func row(_ name: String, _ a: Double, _ b: Double) {
        let padded = name.padding(toLength: 38, withPad: " ", startingAt: 0)
        print(padded + String(format: "  %10.1f   %12.1f   %9.2f", a * 1000, b * 1000, a / b))
    }
    row("remote head check (ls-remote)", headCairn, headCLI)
    row("fetch one new commit", fetchCairn.sorted()[runs / 2], fetchCLI.sorted()[runs / 2])
    row("read \(specCount) spec files (archive)", readCairn, readCLI)
}
