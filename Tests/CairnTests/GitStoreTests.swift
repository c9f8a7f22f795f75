import Foundation
@testable import GitStore
import Testing

/// The git layer against real repositories and real servers: the git CLI, `git daemon` and sshd
/// on loopback.
@Suite("Git mirror over file://, git://, ssh and https", .serialized)
struct GitStoreTests {
    enum Transport: String, CaseIterable, CustomTestStringConvertible {
        case path, file, git, ssh, https
        var testDescription: String { rawValue }
    }

    /// A served origin: the repository, its URL over the transport, and what serves it.
    final class Served {
        let origin: OriginRepository
        let url: String
        let credentials: GitCredentials
        let cache = TemporaryDirectory("cairn-cache")
        private var daemon: GitDaemon?
        private(set) var ssh: SSHServer?
        private(set) var https: HTTPSGitServer?

        init(_ transport: Transport) throws {
            origin = try OriginRepository()
            switch transport {
            case .path:
                url = origin.bare
                credentials = GitCredentials()
            case .file:
                url = "file://" + origin.bare
                credentials = GitCredentials()
            case .git:
                let d = try GitDaemon(base: origin.root.path, log: origin.root.file("daemon.log"))
                daemon = d
                url = d.url("origin.git")
                credentials = GitCredentials()
            case .ssh:
                let s = try SSHServer()
                ssh = s
                url = s.url(origin.bare)
                credentials = GitCredentials(sshPrivateKey: s.userKey, knownHostsFile: s.knownHosts)
            case .https:
                let s = try HTTPSGitServer(base: origin.root.path)
                https = s
                url = s.url("origin.git")
                credentials = GitCredentials(httpsPassword: s.token, caFile: s.ca)
            }
        }

        func mirror(timeout: Duration = .seconds(30), credentials: GitCredentials? = nil) throws -> Mirror {
            try Mirror.open(url: url, cacheDirectory: cache.path, credentials: credentials ?? self.credentials, timeout: timeout)
        }

        deinit {
            daemon?.stop()
            ssh?.stop()
            https?.stop()
        }
    }

    @Test(arguments: Transport.allCases)
    func fetchesNewCommitsIncrementally(transport: Transport) throws {
        let served = try Served(transport)
        let first = try served.origin.commit(["clusters/a.yaml": "a: 1\n"])
        let mirror = try served.mirror()
        try mirror.fetch()
        #expect(try mirror.resolve("main").hex == first)
        #expect(try mirror.resolve("HEAD").hex == first)

        let second = try served.origin.commit(["clusters/b.yaml": "b: 2\n"])
        // The remote head check sees the new commit without fetching it.
        #expect(try mirror.remoteHead()?.hex == second)
        #expect(try mirror.remoteHead("main")?.hex == second)
        #expect(try mirror.resolve("main").hex == first, "a head check must not fetch")
        try mirror.fetch()
        #expect(try mirror.resolve("main").hex == second)
        #expect(try mirror.files(at: mirror.resolve("main"), under: "clusters").map(\.path) == ["clusters/a.yaml", "clusters/b.yaml"])
        // The mirror is bare: no working tree was ever written.
        #expect(!FileManager.default.fileExists(atPath: mirror.path + "/clusters"))
        #expect(FileManager.default.fileExists(atPath: mirror.path + "/HEAD"))
    }

    @Test func resolvesRevisionsLikeGit() throws {
        let served = try Served(.path)
        let first = try served.origin.commit(["a": "1"])
        try gitCLI(["tag", "v1"], in: served.origin.work)
        try gitCLI(["push", "-q", "origin", "v1"], in: served.origin.work)
        let second = try served.origin.commit(["a": "2"])
        try served.origin.commit(["b": "1"], branch: "feature")
        let mirror = try served.mirror()
        try mirror.fetch()
        #expect(try mirror.resolve("main").hex == second)
        #expect(try mirror.resolve("origin/main").hex == second)
        #expect(try mirror.resolve("refs/heads/main").hex == second)
        #expect(try mirror.resolve("v1").hex == first)
        #expect(try mirror.resolve(first).hex == first)
        #expect(try mirror.resolve(String(first.prefix(8))).hex == first)
        #expect(try mirror.resolve("feature").hex == (try served.origin.head("feature")))
        #expect(try mirror.resolve("main~1").hex == first)
        #expect(throws: GitError.self) { try mirror.resolve("no-such-branch") }
    }

    @Test func readsTreesWithoutFollowingLinksOrReadingHugeFiles() throws {
        let served = try Served(.path)
        try served.origin.commit([
            "clusters/team-a/orders.yaml": "kind: x\n",
            "clusters/team-b/deep/nested/pg.yaml": "kind: y\n",
            "clusters/huge.yaml": String(repeating: "x", count: 2_000_000),
            "outside.yaml": "secret: no\n",
        ])
        try FileManager.default.createSymbolicLink(atPath: served.origin.work + "/clusters/link.yaml", withDestinationPath: "../outside.yaml")
        try gitCLI(["submodule", "add", "-q", served.origin.bare, "clusters/sub"], in: served.origin.work,
                   environment: ["GIT_ALLOW_PROTOCOL": "file"])
        let head = try served.origin.commit([:])
        let mirror = try served.mirror()
        try mirror.fetch()
        let files = try mirror.files(at: #require(GitOID(hex: head)), under: "clusters")
        #expect(files.map(\.path) == ["clusters/huge.yaml", "clusters/link.yaml", "clusters/sub",
                                      "clusters/team-a/orders.yaml", "clusters/team-b/deep/nested/pg.yaml"])
        #expect(files[0].content == .tooLarge(size: 2_000_000, limit: 1 << 20))
        #expect(files[1].content == .symlink(target: "../outside.yaml"))
        if case .submodule(let pinned) = files[2].content { #expect(pinned.count == 40) } else { Issue.record("submodule: \(files[2])") }
        #expect(files[3].content == .file(Data("kind: x\n".utf8)))
        #expect(try mirror.files(at: #require(GitOID(hex: head)), under: "missing").isEmpty)
        #expect(try mirror.files(at: #require(GitOID(hex: head)), under: "").count == 7)
    }

    @Test func changedPathsFollowRenamesAndDeletions() throws {
        let served = try Served(.path)
        let body = String(repeating: "spec line that stays the same\n", count: 20)
        let base = try served.origin.commit(["clusters/a.yaml": body, "clusters/b.yaml": "b\n", "clusters/c.yaml": "c\n", "docs/x.md": "x"])
        try gitCLI(["mv", "clusters/a.yaml", "clusters/renamed.yaml"], in: served.origin.work)
        let head = try served.origin.commit(["clusters/b.yaml": nil, "clusters/c.yaml": "changed\n", "clusters/d.yaml": "new\n", "docs/x.md": "y"])
        let mirror = try served.mirror()
        try mirror.fetch()
        let changes = try mirror.changedPaths(from: #require(GitOID(hex: base)), to: #require(GitOID(hex: head)), under: "clusters")
        #expect(Set(changes.map(\.description)) == [
            "renamed clusters/a.yaml -> clusters/renamed.yaml", "deleted clusters/b.yaml",
            "modified clusters/c.yaml", "added clusters/d.yaml",
        ])
        #expect(try mirror.changedPaths(from: #require(GitOID(hex: head)), to: #require(GitOID(hex: head)), under: "clusters").isEmpty)
    }

    @Test func sshRefusesAnUnknownOrChangedHostKey() throws {
        let served = try Served(.ssh)
        try served.origin.commit(["a": "1"])
        let ssh = try #require(served.ssh)
        let changed = try served.mirror(credentials: GitCredentials(sshPrivateKey: ssh.userKey, knownHostsFile: try ssh.wrongKnownHosts()))
        do {
            try changed.fetch()
            Issue.record("fetch with a changed host key succeeded")
        } catch {
            #expect(error.kind == .hostKeyChanged)
            #expect(error.message.contains("the host key of [127.0.0.1]:\(ssh.port) has CHANGED: it sent ssh-ed25519 SHA256:"))
        }
        let emptyKnownHosts = ssh.dir.file("empty_known_hosts")
        _ = FileManager.default.createFile(atPath: emptyKnownHosts, contents: Data())
        let unknown = try served.mirror(credentials: GitCredentials(sshPrivateKey: ssh.userKey, knownHostsFile: emptyKnownHosts))
        do {
            _ = try unknown.remoteRefs()
            Issue.record("ls-remote to an unknown host succeeded")
        } catch {
            #expect(error.kind == .hostKeyUnknown)
            #expect(error.message.contains("host [127.0.0.1]:\(ssh.port) is not in \(emptyKnownHosts); its ssh-ed25519 key is SHA256:"))
            #expect(error.message.contains("ssh-keyscan -p \(ssh.port) 127.0.0.1"))
        }
        // Only an explicit option skips the check.
        let skipping = try served.mirror(credentials: GitCredentials(sshPrivateKey: ssh.userKey, knownHostsFile: emptyKnownHosts, insecureSkipHostKeyCheck: true))
        try skipping.fetch()
    }

    @Test func sshRefusesAWrongUserKeyClearly() throws {
        let served = try Served(.ssh)
        try served.origin.commit(["a": "1"])
        let ssh = try #require(served.ssh)
        let mirror = try served.mirror(credentials: GitCredentials(sshPrivateKey: ssh.otherUserKey, knownHostsFile: ssh.knownHosts))
        do {
            try mirror.fetch()
            Issue.record("fetch with a wrong user key succeeded")
        } catch {
            #expect(error.kind == .authentication)
            #expect(error.description.contains("refused the SSH key \(ssh.otherUserKey) for user \(ssh.user)"))
        }
        let noKey = try served.mirror(credentials: GitCredentials(knownHostsFile: ssh.knownHosts))
        #expect(throws: GitError.self) { try noKey.fetch() }
    }

    @Test(arguments: [Transport.path, .git, .ssh, .https])
    func commitAndPushWritesFilesWithoutAWorkingTree(transport: Transport) throws {
        let served = try Served(transport)
        try served.origin.commit(["clusters/a.yaml": "a\n"])
        let mirror = try served.mirror()
        let author = GitSignature(name: "cairn", email: "cairn@example.com")
        let commit = try mirror.commitAndPush(branch: "cairn-status", changes: ["status/default/a.yaml": Data("phase: Ready\n".utf8)],
                                              message: "status: a Ready", author: author)
        #expect(try served.origin.head("cairn-status") == commit.hex)
        #expect(try gitCLI(["--git-dir", served.origin.bare, "show", "cairn-status:status/default/a.yaml"]) == "phase: Ready")
        #expect(try gitCLI(["--git-dir", served.origin.bare, "log", "-1", "--format=%an <%ae>|%s", "cairn-status"]) == "cairn <cairn@example.com>|status: a Ready")
        // The same content again changes nothing: no empty commit.
        let again = try mirror.commitAndPush(branch: "cairn-status", changes: ["status/default/a.yaml": Data("phase: Ready\n".utf8)],
                                             message: "status: a Ready", author: author)
        #expect(again == commit)
        let deleted = try mirror.commitAndPush(branch: "cairn-status", changes: ["status/default/a.yaml": nil], message: "status: a removed", author: author)
        #expect(try gitCLI(["--git-dir", served.origin.bare, "ls-tree", "-r", "--name-only", deleted.hex]) == "")
        // The branch deleted on the remote: the next commit starts it whole, not with the change alone.
        _ = try gitCLI(["--git-dir", served.origin.bare, "branch", "-D", "cairn-status"])
        let whole = ["status/default/a.yaml": Data("phase: Ready\n".utf8), "status/default/b.yaml": Data("phase: Degraded\n".utf8)]
        let recreated = try mirror.commitAndPush(branch: "cairn-status", changes: ["status/default/b.yaml": Data("phase: Degraded\n".utf8)],
                                                 whole: whole, message: "status: b Degraded", author: author)
        #expect(try gitCLI(["--git-dir", served.origin.bare, "ls-tree", "-r", "--name-only", recreated.hex]) == "status/default/a.yaml\nstatus/default/b.yaml")
    }

    @Test func aPushRaceIsRetriedOnTopOfTheOtherCommit() throws {
        let served = try Served(.git)
        try served.origin.commit(["clusters/a.yaml": "a\n"])
        let mirror = try served.mirror()
        var raced = false
        let commit = try mirror.commitAndPush(
            branch: "main", changes: ["status/a.yaml": Data("phase: Ready\n".utf8)], message: "status", author: GitSignature(name: "cairn", email: "c@x"),
            maxAttempts: 4,
            beforePush: { attempt in
                guard attempt == 1 else { return }
                // Someone else pushes between cairn's fetch and its push.
                _ = try? served.origin.commit(["clusters/b.yaml": "b\n"], message: "someone else")
                raced = true
            })
        #expect(raced)
        let log = try gitCLI(["--git-dir", served.origin.bare, "log", "--format=%s", "main"]).split(separator: "\n")
        #expect(log == ["status", "someone else", "change"], "both commits kept, cairn's on top")
        #expect(try served.origin.head() == commit.hex)
        let tree = try gitCLI(["--git-dir", served.origin.bare, "ls-tree", "-r", "--name-only", "main"]).split(separator: "\n")
        #expect(tree == ["clusters/a.yaml", "clusters/b.yaml", "status/a.yaml"])
    }

    @Test func aServerThatHangsMidFetchGivesATimelyErrorAndTheMirrorStaysUsable() throws {
        let served = try Served(.git)
        var random = SystemRandomNumberGenerator()
        let noise = (0..<3_000_000).map { _ in Character(UnicodeScalar(UInt8.random(in: 97...122, using: &random))) }
        let head = try served.origin.commit(["big.txt": String(noise), "clusters/a.yaml": "a\n"])
        let daemonPort = Int(served.url.split(separator: ":")[2].split(separator: "/")[0])!
        let proxy = try StallingProxy(upstreamPort: daemonPort, stallAfter: 20_000, log: served.origin.root.file("proxy.log"))
        defer { proxy.stop() }
        let mirror = try Mirror.open(url: "git://127.0.0.1:\(proxy.port)/origin.git", cacheDirectory: served.cache.path,
                                     timeout: .seconds(3))
        let start = Date()
        do {
            try mirror.fetch()
            Issue.record("fetch through a hanging server succeeded")
        } catch {
            #expect(error.kind == .timeout)
            #expect(error.message.contains("did not answer within 3 s"))
        }
        #expect(Date().timeIntervalSince(start) < 10)
        // The next fetch (the proxy now passes through) works on the same mirror.
        try mirror.fetch()
        #expect(try mirror.resolve("main").hex == head)
    }

    /// A server that accepts and never answers: the operation times out, and cairn really stops
    /// it (its socket is shut down, the server sees the connection end), rather than leaving a
    /// thread blocked in a read for as long as the server keeps the connection. Over git://,
    /// ssh (libssh2 reads the same socket) and https (mbedTLS over it).
    @Test(arguments: ["git://127.0.0.1:PORT/origin.git", "ssh://git@127.0.0.1:PORT/origin.git", "https://127.0.0.1:PORT/origin.git"])
    func aTimedOutOperationClosesItsConnection(url: String) throws {
        let directory = TemporaryDirectory("cairn-silent")
        let script = directory.file("silent.py")
        try """
            import socket, sys, threading
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
            def serve(c):
                while c.recv(65536):
                    pass
                print("eof", flush=True)
            while True:
                c, _ = s.accept()
                print("accepted", flush=True)
                threading.Thread(target=serve, args=(c,), daemon=True).start()
            """.write(toFile: script, atomically: true, encoding: .utf8)
        let port = freePort()
        let log = directory.file("silent.log")
        let server = try ServerProcess("silent server", "/usr/bin/python3", ["-u", script, "\(port)"], log: log)
        defer { server.stop() }
        #expect(waitForPort(port))
        let cache = TemporaryDirectory("cairn-cache")
        let known = directory.file("known_hosts")
        try "".write(toFile: known, atomically: true, encoding: .utf8)
        let mirror = try Mirror.open(url: url.replacingOccurrences(of: "PORT", with: "\(port)"), cacheDirectory: cache.path,
                                     credentials: GitCredentials(knownHostsFile: known), timeout: .seconds(2))
        do {
            try mirror.fetch()
            Issue.record("fetch from a silent server succeeded")
        } catch {
            #expect(error.kind == .timeout, "\(error)")
        }
        // waitForPort's probe is the first connection; the fetch's is the second.
        func count(_ word: String, _ text: String) -> Int { text.split(separator: "\n").filter { $0 == word }.count }
        let deadline = Date().addingTimeInterval(3)
        var text = ""
        while Date() < deadline {
            text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if count("accepted", text) >= 2 && count("eof", text) == count("accepted", text) { break }
            usleep(50_000)
        }
        #expect(count("accepted", text) >= 2, "\(text)")
        #expect(count("eof", text) == count("accepted", text), "the connection stayed open after the timeout: \(text)")
    }

    @Test(arguments: [Transport.file, .git, .ssh, .https])
    func cliReadsSpecFilesAtARevision(transport: Transport) throws {
        let served = try Served(transport)
        var files: [String: String?] = [:]
        for name in Repo.exampleFiles {
            files["clusters/\(name)"] = try Repo.read(Repo.clusters.appendingPathComponent(name))
        }
        let first = try served.origin.commit(files)
        try served.origin.commit(["clusters/broken.yaml": "apiVersion: acid.zalan.do/v1\nkind: postgresql\nmetadata: {name: x}\nspec: {teamId: t}\n"])
        var git = ["--repo", served.url, "--cache-dir", served.cache.path]
        if let ssh = served.ssh { git += ["--ssh-key", ssh.userKey, "--known-hosts", ssh.knownHosts] }
        if let https = served.https {
            try https.token.write(toFile: served.cache.file("token"), atomically: true, encoding: .utf8)
            git += ["--https-token-file", served.cache.file("token"), "--ca-file", https.ca]
        }

        let fromGit = try run(CLITests.binary, ["render"] + git + ["--ref", String(first.prefix(10))])
        let fromDirectory = try run(CLITests.binary, ["render", Repo.clusters.path])
        #expect(fromGit.status == 0, "\(fromGit.stderr)")
        #expect(fromGit.stdout == fromDirectory.stdout)

        let valid = try run(CLITests.binary, ["validate"] + git + ["--ref", first])
        #expect(valid.status == 0)
        #expect(valid.stdout == "4 clusters valid\n")
        let head = try run(CLITests.binary, ["validate"] + git)
        #expect(head.status == 1)
        #expect(head.stderr == """
            clusters/broken.yaml:4:7: spec.numberOfInstances: is required
            clusters/broken.yaml:4:7: spec.postgresql: is required
            clusters/broken.yaml:4:7: spec.volume: is required

            """)
    }

    @Test func cliReportsLinksAndOversizedFilesInTheRepository() throws {
        let served = try Served(.path)
        try served.origin.commit(["clusters/huge.yaml": String(repeating: "#", count: 1_100_000), "secret.yaml": "x: 1\n"])
        try FileManager.default.createSymbolicLink(atPath: served.origin.work + "/clusters/link.yaml", withDestinationPath: "../secret.yaml")
        try served.origin.commit([:])
        let r = try run(CLITests.binary, ["validate", "--repo", served.url, "--cache-dir", served.cache.path])
        #expect(r.status == 1)
        #expect(r.stderr == """
            clusters/huge.yaml: file is 1100000 bytes; spec files are limited to 1048576 bytes
            clusters/link.yaml: is a symbolic link to ../secret.yaml; cairn does not follow links in the repository

            """)
        let wrong = try run(CLITests.binary, ["validate", "--repo", served.url, "--cache-dir", served.cache.path, "--ref", "nope"])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.hasPrefix("cairn: resolve nope: no branch, tag or commit named 'nope'"))
    }

    /// https against a real server (nginx + git http-backend, a CA made for the test): each way
    /// it can go wrong is refused with a message that says what to do, and the token is never in it.
    @Test func httpsChecksCertificatesAndCredentials() throws {
        let served = try Served(.https)
        let https = try #require(served.https)
        let commit = try served.origin.commit(["clusters/a.yaml": "a: 1\n"])
        func head(_ url: String, _ credentials: GitCredentials) -> Result<String, GitError> {
            Result { () throws(GitError) -> String in
                let cache = TemporaryDirectory("cairn-https-cache")
                let mirror = try Mirror.open(url: url, cacheDirectory: cache.path, credentials: credentials, timeout: .seconds(20))
                return try mirror.remoteHead("main")?.hex ?? "none"
            }
        }
        func failure(_ r: Result<String, GitError>) -> String {
            if case .failure(let e) = r { return e.description }
            return "succeeded: \(r)"
        }
        let good = GitCredentials(httpsPassword: https.token, caFile: https.ca)
        #expect(try head(https.url("origin.git"), good).get() == commit)
        // By IP address, with a certificate that lists the address: the git CLI accepts it, and so does cairn.
        #expect(try head(https.url("origin.git", host: "127.0.0.1"), good).get() == commit)
        // A redirect is followed (to the same host).
        #expect(try head(https.url("moved/origin.git"), good).get() == commit)
        // User and password (as from --https-user and --https-password-file).
        #expect(try head(https.url("origin.git"), GitCredentials(httpsUser: "x-access-token", httpsPassword: https.token, caFile: https.ca)).get() == commit)

        let wrongToken = failure(head(https.url("origin.git"), GitCredentials(httpsPassword: "not-the-token-s3cr3t", caFile: https.ca)))
        #expect(wrongToken.contains("refused the credentials of user x-access-token"), "\(wrongToken)")
        #expect(!wrongToken.contains("s3cr3t") && !wrongToken.contains(https.token), "\(wrongToken)")
        let noToken = failure(head(https.url("origin.git"), GitCredentials(caFile: https.ca)))
        #expect(noToken.contains("asks for credentials; give --https-token-file"), "\(noToken)")
        let unknownCA = failure(head(https.url("origin.git"), GitCredentials(httpsPassword: https.token, caFile: https.otherCA)))
        #expect(unknownCA.contains("the certificate of localhost is not trusted (give its CA with --ca-file)"), "\(unknownCA)")
        let unknownCAByIP = failure(head(https.url("origin.git", host: "127.0.0.1"), GitCredentials(httpsPassword: https.token, caFile: https.otherCA)))
        #expect(unknownCAByIP.contains("the certificate of 127.0.0.1 is not trusted"), "\(unknownCAByIP)")
        // A certificate for another name, from the trusted CA: refused, by name and by address.
        let wrongName = failure(head(https.url("origin.git", port: https.wrongNamePort), good))
        #expect(wrongName.contains("the certificate of localhost is not trusted"), "\(wrongName)")
        let wrongAddress = failure(head(https.url("origin.git", host: "127.0.0.1", port: https.wrongNamePort), good))
        #expect(wrongAddress.contains("the certificate of 127.0.0.1 is not trusted"), "\(wrongAddress)")
    }

    @Test func credentialsNeverAppearInErrors() throws {
        let cache = TemporaryDirectory()
        let mirror = try Mirror.open(url: "https://user:s3cr3t-token@127.0.0.1:\(freePort())/repo.git", cacheDirectory: cache.path,
                                     credentials: GitCredentials(httpsPassword: "another-s3cr3t"), timeout: .seconds(5))
        do {
            try mirror.fetch()
            Issue.record("fetch from a closed port succeeded")
        } catch {
            #expect(!error.description.contains("s3cr3t"))
            #expect(error.description.contains("https://user:***@127.0.0.1"))
        }
        #expect(!mirror.path.contains("s3cr3t"))
        #expect(!GitCredentials(sshPassphrase: "pp-s3cr3t", httpsPassword: "s3cr3t").description.contains("s3cr3t"))
    }
}

@Suite("known_hosts")
struct KnownHostsTests {
    static let key = Data((0..<51).map { UInt8($0) })
    static let other = Data((0..<51).map { UInt8(255 - $0) })

    @Test func plainPatternsPortsWildcardsAndNegation() {
        let text = """
            # comment
            example.com,192.0.2.1 ssh-ed25519 \(Self.key.base64EncodedString())
            [git.example.com]:2222 ssh-ed25519 \(Self.key.base64EncodedString())
            *.corp.example,!bad.corp.example ssh-ed25519 \(Self.key.base64EncodedString())
            @revoked old.example.com ssh-ed25519 \(Self.key.base64EncodedString())
            """
        let hosts = KnownHosts(text: text)
        #expect(hosts.verdict(name: "example.com", keyType: "ssh-ed25519", key: Self.key) == .trusted)
        #expect(hosts.verdict(name: "192.0.2.1", keyType: "ssh-ed25519", key: Self.key) == .trusted)
        #expect(hosts.verdict(name: "example.com", keyType: "ssh-ed25519", key: Self.other) == .changed(knownTypes: ["ssh-ed25519"]))
        #expect(hosts.verdict(name: "[git.example.com]:2222", keyType: "ssh-ed25519", key: Self.key) == .trusted)
        #expect(hosts.verdict(name: "git.example.com", keyType: "ssh-ed25519", key: Self.key) == .unknown, "port 22 is another host")
        #expect(hosts.verdict(name: "build.corp.example", keyType: "ssh-ed25519", key: Self.key) == .trusted)
        #expect(hosts.verdict(name: "bad.corp.example", keyType: "ssh-ed25519", key: Self.key) == .unknown)
        #expect(hosts.verdict(name: "old.example.com", keyType: "ssh-ed25519", key: Self.key) == .revoked)
    }

    @Test func hashedHostnames() throws {
        // Written by `ssh-keygen -H`: |1|base64(salt)|base64(HMAC-SHA1(salt, host)).
        let dir = TemporaryDirectory()
        let file = dir.file("known_hosts")
        try "[127.0.0.1]:2222 ssh-ed25519 \(Self.key.base64EncodedString())\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try run("/usr/bin/ssh-keygen", ["-q", "-H", "-f", file]).status == 0)
        let hashed = try String(contentsOfFile: file, encoding: .utf8)
        #expect(hashed.hasPrefix("|1|"))
        let hosts = KnownHosts(text: hashed)
        #expect(hosts.verdict(name: "[127.0.0.1]:2222", keyType: "ssh-ed25519", key: Self.key) == .trusted)
        #expect(hosts.verdict(name: "[127.0.0.1]:2223", keyType: "ssh-ed25519", key: Self.key) == .unknown)
    }

    @Test func fingerprintsLikeSSHKeygen() {
        #expect(KnownHosts.fingerprint(Data("abc".utf8)) == "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0")
    }

    @Test func sshAddressesFromURLs() {
        #expect(SSHAddress(url: "ssh://git@example.com:2222/org/repo.git") == SSHAddress(url: "ssh://example.com:2222/x"))
        #expect(SSHAddress(url: "ssh://git@example.com:2222/org/repo.git")?.knownHostsName == "[example.com]:2222")
        #expect(SSHAddress(url: "git@github.com:org/repo.git")?.knownHostsName == "github.com")
        #expect(SSHAddress(url: "https://example.com/repo.git") == nil)
        #expect(SSHAddress(url: "/srv/git/repo.git") == nil)
    }
}
