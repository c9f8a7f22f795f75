import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A temporary directory removed when the value goes away.
final class TemporaryDirectory {
    let url: URL
    var path: String { url.path }

    init(_ label: String = "cairn") {
        url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("\(label)-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String) -> String { url.appendingPathComponent(name).path }
}

struct CommandFailed: Error, CustomStringConvertible {
    let description: String
}

/// Runs the git CLI; its trimmed stdout, or an error with its stderr.
@discardableResult
func gitCLI(_ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]) throws -> String {
    var args = arguments
    if let directory { args = ["-C", directory] + args }
    var env = ["GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_COMMITTER_NAME=Test",
               "GIT_COMMITTER_EMAIL=test@example.com", "GIT_CONFIG_NOSYSTEM=1"]
    env += environment.map { "\($0.key)=\($0.value)" }
    let result = try run("/usr/bin/env", env + ["git"] + args)
    guard result.status == 0 else {
        throw CommandFailed(description: "git \(args.joined(separator: " ")): \(result.stderr)")
    }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// An origin repository (bare) and a working clone to make commits in with the git CLI.
final class OriginRepository {
    let root = TemporaryDirectory("cairn-origin")
    var bare: String { root.file("origin.git") }
    var work: String { root.file("work") }

    init() throws {
        try gitCLI(["init", "-q", "--bare", "-b", "main", bare])
        try gitCLI(["clone", "-q", bare, work])
        try gitCLI(["checkout", "-q", "-b", "main"], in: work)
    }

    /// Writes files (nil deletes), commits them and pushes; the new commit's SHA.
    @discardableResult
    func commit(_ files: [String: String?], message: String = "change", branch: String = "main") throws -> String {
        for (path, text) in files {
            let url = URL(fileURLWithPath: work).appendingPathComponent(path)
            if let text {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try text.write(to: url, atomically: true, encoding: .utf8)
            } else {
                try gitCLI(["rm", "-q", path], in: work)
            }
        }
        try gitCLI(["add", "-A"], in: work)
        try gitCLI(["commit", "-q", "--allow-empty", "-m", message], in: work)
        try gitCLI(["push", "-q", "origin", "HEAD:\(branch)"], in: work)
        return try gitCLI(["rev-parse", "HEAD"], in: work)
    }

    func head(_ ref: String = "main") throws -> String {
        try gitCLI(["--git-dir", bare, "rev-parse", ref])
    }
}

/// Ports handed out by `freePort` in this process: never handed out twice.
private let handedOut = Mutex<Set<Int>>([])

/// A port nothing listens on, for a server a test starts. Chosen at random below Linux's
/// ephemeral range (32768-60999), which outgoing connections take their source ports from,
/// and never the same twice in this process: a port taken from the ephemeral range could be
/// given to a connection (or to the next freePort call) before the server bound it, and the
/// server then failed to start (a daemon test once lost its metrics port that way).
func freePort() -> Int {
    for _ in 0..<10_000 {
        let port = Int.random(in: 20_000..<32_000)
        guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
        if onLoopback(port, bind) { return port }
    }
    preconditionFailure("no free port in 20000-31999")
}

/// Calls `call` (bind or connect) on a new TCP socket with 127.0.0.1:`port`, then closes the
/// socket; true when the call succeeded.
private func onLoopback(_ port: Int, _ call: (Int32, UnsafePointer<sockaddr>?, socklen_t) -> Int32) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    return withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// Waits (bounded) until something accepts connections on the port.
func waitForPort(_ port: Int, seconds: Double = 10) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if onLoopback(port, connect) { return true }
        usleep(50_000)
    }
    return false
}

/// A server process a test started, stopped by its pid when the test ends (even when it fails).
///
/// Started with posix_spawn rather than Foundation's `Process`: on Linux, `Process`'s single
/// monitor thread blocks in `wait4` on a long-running child, and every later `Process` (the git
/// CLI) then never reports its exit.
final class ServerProcess {
    let pid: pid_t
    let name: String

    init(_ name: String, _ executable: String, _ arguments: [String], log: String) throws {
        self.name = name
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // Its own process group, so that stopping it also stops what it forked (git daemon's
        // `git` front end runs `git-daemon` as a child).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // With no signal blocked and SIGTERM at its default: a server must end on `stop()`'s
        // SIGTERM whatever mask the test runner's thread has.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var term = sigset_t()
        sigemptyset(&term)
        sigaddset(&term, SIGTERM)
        posix_spawnattr_setsigdefault(&attributes, &term)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard status == 0 else { throw CommandFailed(description: "cannot start \(name): \(String(cString: strerror(status)))") }
        pid = child
    }

    var isRunning: Bool {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { stopped = true }
        return !stopped && r == 0
    }

    private var stopped = false

    func stop() {
        guard !stopped else { return }
        kill(-pid, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while isRunning, Date() < deadline { usleep(20_000) }
        kill(-pid, SIGKILL)  // anything left in the group
        if !stopped {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        stopped = true
    }

    deinit { stop() }
}

/// `git daemon` serving a directory over git:// on a loopback port, pushes allowed.
final class GitDaemon {
    let port: Int
    let server: ServerProcess
    let base: String

    /// - Parameters:
    ///   - port: A given port, to stand in for a server that comes back on its address.
    ///   - config: `key=value` settings given with `git -c` (protected configuration, which
    ///     `uploadpack.packObjectsHook` needs).
    init(base: String, log: String, port: Int = freePort(), config: [String] = []) throws {
        self.base = base
        self.port = port
        server = try ServerProcess("git daemon", "/usr/bin/git", config.flatMap { ["-c", $0] } + [
            "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--informative-errors",
            "--listen=127.0.0.1", "--port=\(port)", "--base-path=\(base)", base,
        ], log: log)
        guard waitForPort(port) else { throw CommandFailed(description: "git daemon did not listen on \(port)") }
    }

    func url(_ repo: String) -> String { "git://127.0.0.1:\(port)/\(repo)" }
    func stop() { server.stop() }
}

/// OpenSSH's sshd on a loopback port with a generated host key and one authorized user key.
final class SSHServer {
    let port = freePort()
    let dir = TemporaryDirectory("cairn-sshd")
    var hostPublicKey: String = ""
    var userKey: String { dir.file("user_key") }
    var otherUserKey: String { dir.file("other_key") }
    var knownHosts: String { dir.file("known_hosts") }
    var user: String { NSUserName() }
    private var server: ServerProcess?

    init() throws {
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        for (name, type) in [("host_key", "ed25519"), ("user_key", "ed25519"), ("other_key", "ed25519"), ("other_host_key", "ed25519")] {
            try run("/usr/bin/ssh-keygen", ["-q", "-t", type, "-N", "", "-C", name, "-f", dir.file(name)])
        }
        try FileManager.default.copyItem(atPath: dir.file("user_key.pub"), toPath: dir.file("authorized_keys"))
        hostPublicKey = try String(contentsOfFile: dir.file("host_key.pub"), encoding: .utf8)
        let fields = hostPublicKey.split(separator: " ")
        try "[127.0.0.1]:\(port) \(fields[0]) \(fields[1])\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        let config = """
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(dir.file("host_key"))
            AuthorizedKeysFile \(dir.file("authorized_keys"))
            PidFile \(dir.file("sshd.pid"))
            StrictModes no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            PermitRootLogin prohibit-password
            LogLevel VERBOSE

            """
        try config.write(toFile: dir.file("sshd_config"), atomically: true, encoding: .utf8)
        server = try ServerProcess("sshd", "/usr/sbin/sshd", ["-D", "-e", "-f", dir.file("sshd_config")], log: dir.file("sshd.log"))
        guard waitForPort(port) else {
            let log = (try? String(contentsOfFile: dir.file("sshd.log"), encoding: .utf8)) ?? ""
            throw CommandFailed(description: "sshd did not listen on \(port): \(log)")
        }
    }

    /// A known_hosts file that names this server with another host key.
    func wrongKnownHosts() throws -> String {
        let other = try String(contentsOfFile: dir.file("other_host_key.pub"), encoding: .utf8).split(separator: " ")
        let path = dir.file("wrong_known_hosts")
        try "[127.0.0.1]:\(port) \(other[0]) \(other[1])\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func url(_ path: String) -> String { "ssh://\(user)@127.0.0.1:\(port)\(path)" }
    func stop() { server?.stop() }

    private func run(_ executable: String, _ arguments: [String]) throws {
        let result = try CairnTests.run(executable, arguments)
        guard result.status == 0 else { throw CommandFailed(description: "\(executable) \(arguments) failed: \(result.stderr)") }
    }
}

/// A TCP proxy in front of a server that forwards the first connection's first `stallAfter`
/// bytes from the server and then stops forwarding (holding the connection open), like a server
/// that hangs mid-transfer. Later connections pass through.
final class StallingProxy {
    let port: Int
    let server: ServerProcess

    /// A proxy on a given port (to stand in for a server that restarts on the same address).
    convenience init(port: Int, upstreamPort: Int, log: String) throws {
        try self.init(upstreamPort: upstreamPort, stallAfter: 1 << 60, log: log, port: port)
    }

    init(upstreamPort: Int, stallAfter: Int, log: String, port: Int = freePort()) throws {
        self.port = port
        let script = """
            import socket, threading, sys, time
            up, stall, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
            ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", port)); ls.listen(8)
            print("listening", flush=True)
            first = [True]
            def pump(src, dst, limit):
                sent = 0
                try:
                    while True:
                        data = src.recv(65536)
                        if not data: break
                        if limit is not None and sent + len(data) > limit:
                            dst.sendall(data[:limit - sent]); time.sleep(3600)
                        dst.sendall(data); sent += len(data)
                except OSError: pass
                try: dst.shutdown(socket.SHUT_WR)
                except OSError: pass
            while True:
                c, _ = ls.accept()
                u = socket.create_connection(("127.0.0.1", up))
                limit = stall if first[0] else None
                first[0] = False
                threading.Thread(target=pump, args=(c, u, None), daemon=True).start()
                threading.Thread(target=pump, args=(u, c, limit), daemon=True).start()
            """
        server = try ServerProcess("proxy", "/usr/bin/env", ["python3", "-c", script, String(upstreamPort), String(stallAfter), String(port)], log: log)
        // Not a probe connection: that would be the one the proxy stalls.
        let deadline = Date().addingTimeInterval(10)
        while (try? String(contentsOfFile: log, encoding: .utf8))?.contains("listening") != true {
            guard Date() < deadline, server.isRunning else { throw CommandFailed(description: "proxy did not start") }
            usleep(20_000)
        }
    }

    func stop() { server.stop() }
}

/// A git smart-HTTP server over TLS on loopback: nginx in front of `git http-backend` (through
/// fcgiwrap), basic auth as GitHub takes a token (user `x-access-token`), pushes allowed for an
/// authenticated user. Certificates come from a CA made here: `port` has one for `localhost`
/// and `127.0.0.1` (subjectAltName DNS and IP), `wrongNamePort` one for `elsewhere.test` only;
/// `otherCA` signed neither. `/moved/<path>` redirects (301) to `/<path>`.
final class HTTPSGitServer {
    let port = freePort()
    let wrongNamePort = freePort()
    let dir = TemporaryDirectory("cairn-https")
    let token = "tok-\(UUID().uuidString.prefix(8))"
    var ca: String { dir.file("ca.crt") }
    var otherCA: String { dir.file("other-ca.crt") }
    private var fcgi: ServerProcess?
    private var nginx: ServerProcess?

    init(base: String) throws {
        func openssl(_ arguments: [String]) throws {
            let r = try run("/usr/bin/openssl", arguments)
            guard r.status == 0 else { throw CommandFailed(description: "openssl \(arguments.first ?? ""): \(r.stderr)") }
        }
        for name in ["ca", "other-ca"] {
            try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir.file("\(name).key"), "-out", dir.file("\(name).crt"),
                         "-days", "2", "-subj", "/CN=cairn test \(name)"])
        }
        for (name, san) in [("server", "DNS:localhost,IP:127.0.0.1"), ("elsewhere", "DNS:elsewhere.test")] {
            try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", dir.file("\(name).key"), "-out", dir.file("\(name).csr"),
                         "-subj", "/CN=\(name)"])
            try "subjectAltName=\(san)\n".write(toFile: dir.file("\(name).ext"), atomically: true, encoding: .utf8)
            try openssl(["x509", "-req", "-in", dir.file("\(name).csr"), "-CA", ca, "-CAkey", dir.file("ca.key"), "-CAcreateserial",
                         "-out", dir.file("\(name).crt"), "-days", "2", "-extfile", dir.file("\(name).ext")])
        }
        let hash = try run("/usr/bin/openssl", ["passwd", "-apr1", token])
        try "x-access-token:\(hash.stdout.trimmingCharacters(in: .whitespacesAndNewlines))\n"
            .write(toFile: dir.file("htpasswd"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir.file("tmp"), withIntermediateDirectories: true)
        let d = dir.url.path
        func server(_ port: Int, _ cert: String) -> String {
            """
              server {
                listen 127.0.0.1:\(port) ssl;
                ssl_certificate \(d)/\(cert).crt;
                ssl_certificate_key \(d)/\(cert).key;
                location /moved/ { rewrite ^/moved/(.*)$ /$1 permanent; }
                location / {
                  auth_basic "git";
                  auth_basic_user_file \(d)/htpasswd;
                  include /etc/nginx/fastcgi_params;
                  fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
                  fastcgi_param GIT_PROJECT_ROOT \(base);
                  fastcgi_param GIT_HTTP_EXPORT_ALL "";
                  fastcgi_param PATH_INFO $uri;
                  fastcgi_param REMOTE_USER $remote_user;
                  fastcgi_pass unix:\(d)/fcgi.sock;
                }
              }
            """
        }
        let config = """
            daemon off; master_process off; user root; worker_processes 1;
            error_log \(d)/error.log; pid \(d)/nginx.pid;
            events { worker_connections 64; }
            http {
              access_log \(d)/access.log;
              client_body_temp_path \(d)/tmp/body; fastcgi_temp_path \(d)/tmp/fastcgi; proxy_temp_path \(d)/tmp/proxy;
              uwsgi_temp_path \(d)/tmp/uwsgi; scgi_temp_path \(d)/tmp/scgi;
            \(server(port, "server"))
            \(server(wrongNamePort, "elsewhere"))
            }

            """
        try config.write(toFile: dir.file("nginx.conf"), atomically: true, encoding: .utf8)
        fcgi = try ServerProcess("fcgiwrap", "/usr/sbin/fcgiwrap", ["-s", "unix:\(d)/fcgi.sock"], log: dir.file("fcgiwrap.log"))
        nginx = try ServerProcess("nginx", "/usr/sbin/nginx", ["-c", dir.file("nginx.conf"), "-e", dir.file("error.log")], log: dir.file("nginx.log"))
        guard waitForPort(port), waitForPort(wrongNamePort) else {
            let log = (try? String(contentsOfFile: dir.file("error.log"), encoding: .utf8)) ?? ""
            stop()
            throw CommandFailed(description: "nginx did not listen on \(port) and \(wrongNamePort): \(log)")
        }
    }

    func url(_ path: String, host: String = "localhost", port: Int? = nil) -> String { "https://\(host):\(port ?? self.port)/\(path)" }
    func stop() {
        nginx?.stop()
        fcgi?.stop()
    }
    deinit { stop() }
}
