import ClusterSpecs
import Foundation
import GitStore
import KubeAPI
import Synchronization
import Testing

/// Known secrets planted where cairn reads them, and every output grepped for them.
@Suite("Secrets never leak")
struct SecretsTests {
    /// libgit2's own error texts quote the URL ("malformed URL '...'"): credentials in a URL
    /// leaked through them on a bad port, a space in the path, an `@` in the password, and in
    /// `?access_token=` queries.
    @Test(arguments: [
        ("https://bob:s3cretTOKEN@127.0.0.1:99999/x.git", ["s3cretTOKEN"]),
        ("https://bob:s3cretTOKEN@127.0.0.1:1/a b.git", ["s3cretTOKEN"]),
        ("https://bob:s3cr@tTOKEN@127.0.0.1:1/x.git", ["s3cr@tTOKEN", "tTOKEN"]),
        ("https://127.0.0.1:1/x.git?access_token=s3cretTOKEN", ["s3cretTOKEN"]),
        ("https://127.0.0.1:1/x.git?ref=main&private_token=s3cretTOKEN#frag", ["s3cretTOKEN"]),
        ("file://bob:s3cretTOKEN@/nonexistent/x.git", ["s3cretTOKEN"]),
    ])
    func gitURLCredentialsNeverReachAnError(_ url: String, _ secrets: [String]) throws {
        let cache = TemporaryDirectory("cairn-secret-url")
        let r = try run(CLITests.binary, ["validate", "--repo", url, "--git-timeout", "5", "--cache-dir", cache.path])
        #expect(r.status != 0)
        #expect(!r.stderr.isEmpty)
        for secret in secrets {
            #expect(!r.stderr.contains(secret) && !r.stdout.contains(secret), "\(r.stderr)")
        }
        let cached = (FileManager.default.enumerator(atPath: cache.path)?.allObjects as? [String]) ?? []
        #expect(!cached.contains { path in secrets.contains { path.contains($0) } }, "\(cached)")
    }

    @Test func redactsUserInfoAndCredentialQueries() {
        #expect(Redact.url("https://bob:p@ss@host/x?access_token=abc&ref=main") == "https://bob:***@host/x?access_token=***&ref=main")
        #expect(Redact.url("ssh://git@host/x.git") == "ssh://git@host/x.git")
        // An empty user name does not shift the password into its place; a token given as the
        // user name (`https://TOKEN@github.com/...`) is hidden too.
        #expect(Redact.url("https://:s3cr3t@host/x") == "https://:***@host/x")
        #expect(Redact.url("https://ghp_s3cr3t@github.com/org/x.git") == "https://***@github.com/org/x.git")
        #expect(Redact.url("https://host/org@team/x.git") == "https://host/org@team/x.git")
        #expect(Redact.message("malformed URL 'https://bob:p%40ss@h:99999/x'", url: "https://bob:p%40ss@h:99999/x") == "malformed URL 'https://bob:***@h:99999/x'")
        #expect(Redact.message("could not resolve p@ss", url: "https://bob:p%40ss@h/x") == "could not resolve ***")
        #expect(Redact.message("auth for ghp_s3cr3t failed", url: "https://ghp_s3cr3t@h/x") == "auth for *** failed")
    }
}

/// `cairn plan --live` against the real control plane with a cairn-labelled Secret that no spec
/// renders any more, applied by `kubectl apply` (which copies the whole object, data included,
/// into its last-applied annotation).
@Suite("Secrets never leak from live objects", .enabled(if: !ControlPlane.skip))
struct LiveSecretsTests {
    @Test func planLiveMasksSecretsAndTheirCopies() async throws {
        let plane = try ControlPlane.shared()
        let ns = "secret-\(UInt32.random(in: 0...UInt32.max))"
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        let planted = "PLANTED-s3cret-4f9a1c"
        let manifest = """
            apiVersion: v1
            kind: Secret
            metadata:
              name: gone-credentials
              namespace: \(ns)
              labels: {app.kubernetes.io/managed-by: cairn, cairn.dev/cluster: gone}
            stringData: {password: \(planted)}
            """
        let applied = try run("/usr/bin/kubectl", ["--kubeconfig", plane.kubeconfig, "apply", "-f", "-"], stdin: manifest)
        #expect(applied.status == 0, "\(applied.stderr)")
        let live = try await client.get(ObjectReference(apiVersion: "v1", kind: "Secret", namespace: ns, name: "gone-credentials"))
        #expect(live["metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"]?.stringValue?.contains(planted) == true,
                "the test needs kubectl's copy of the data")
        let encoded = Data(planted.utf8).base64EncodedString()

        let origin = try OriginRepository()
        try origin.commit(["clusters/es.yaml": IsolationTests.esdb("es", namespace: ns)])
        let cache = TemporaryDirectory("cairn-secret-plan")
        for format in ["text", "markdown", "json"] {
            let r = try run(CLITests.binary, ["plan", "--repo", "file://" + origin.bare, "--path", "clusters", "--cache-dir", cache.path, "--live",
                                              "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns, "--format", format])
            #expect(r.stdout.contains("gone-credentials"), "\(format): the Secret is in the plan: \(r.stdout)")
            #expect(!r.stdout.contains(planted) && !r.stdout.contains(encoded) && !r.stderr.contains(planted), "\(format) leaks: \(r.stdout)")
        }
    }
}

/// A stand-in API server that answers slowly or hugely: `cairn apply` ends with a clear error
/// instead of hanging or holding the body in memory.
@Suite("Hostile API server")
struct HostileAPIServerTests {
    static let server = #"""
        import http.server, sys, time
        mode = sys.argv[2]
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if mode == "trickle":
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    for _ in range(1000):
                        self.wfile.write(b" "); self.wfile.flush(); time.sleep(1)
                else:
                    self.send_header("Content-Length", str(100 * 1000 * 1000))
                    self.end_headers()
                    chunk = b" " * 65536
                    try:
                        for _ in range(100 * 1000 * 1000 // 65536):
                            self.wfile.write(chunk)
                    except Exception:
                        pass
            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
        """#

    @Test(arguments: [("trickle", "no complete response from http://127.0.0.1:PORT within 1 s"),
                      ("huge", "is larger than 16 MiB; refused")])
    func applyEndsWithAClearError(_ mode: String, _ expected: String) throws {
        let dir = TemporaryDirectory("cairn-hostile-api")
        let port = freePort()
        try Self.server.write(toFile: dir.file("server.py"), atomically: true, encoding: .utf8)
        let server = try ServerProcess("hostile API server", "/usr/bin/python3", [dir.file("server.py"), "\(port)", mode], log: dir.file("server.log"))
        defer { server.stop() }
        #expect(waitForPort(port))
        try """
            apiVersion: v1
            kind: Config
            clusters: [{name: c, cluster: {server: "http://127.0.0.1:\(port)"}}]
            users: [{name: u, user: {token: t}}]
            contexts: [{name: x, context: {cluster: c, user: u}}]
            current-context: x
            """.write(toFile: dir.file("kubeconfig"), atomically: true, encoding: .utf8)
        try IsolationTests.esdb("es", namespace: "ns").write(toFile: dir.file("es.yaml"), atomically: true, encoding: .utf8)
        let r = try run(CLITests.binary, ["apply", dir.file("es.yaml"), "--kubeconfig", dir.file("kubeconfig"), "--request-timeout", "1"], timeout: 60)
        #expect(r.status == 1)
        #expect(r.stderr.contains(expected.replacingOccurrences(of: "PORT", with: "\(port)")), "\(r.stderr)")
    }
}

/// A server that ignores `limit` and sends everything in one page: refused with a clear error,
/// so memory for a LIST stays bounded by the page size.
@Suite("Hostile API server: pages")
struct HostileListTests {
    @Test func aPageLargerThanTheLimitIsRefused() async throws {
        let dir = TemporaryDirectory("cairn-hostile-list")
        let port = freePort()
        try #"""
            import http.server, json, sys
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    if self.path.startswith("/api/v1/configmaps"):
                        body = {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {},
                                "items": [{"metadata": {"name": "c%d" % i, "namespace": "ns"}} for i in range(600)]}
                    elif self.path == "/api/v1":
                        body = {"kind": "APIResourceList", "groupVersion": "v1",
                                "resources": [{"name": "configmaps", "namespaced": True, "kind": "ConfigMap", "verbs": ["list"]}]}
                    else:
                        self.send_response(404); self.end_headers(); return
                    data = json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                def log_message(self, *args):
                    pass
            http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
            """#.write(toFile: dir.file("server.py"), atomically: true, encoding: .utf8)
        let server = try ServerProcess("overfull API server", "/usr/bin/python3", [dir.file("server.py"), "\(port)"], log: dir.file("server.log"))
        defer { server.stop() }
        #expect(waitForPort(port))
        let client = try KubeClient(config: KubeConfig(server: "http://127.0.0.1:\(port)"), maxAttempts: 1)
        defer { Task { await client.shutdown() } }
        do {
            let items = try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: nil, limit: 500)
            Issue.record("a page of \(items.count) objects for a limit of 500 was accepted")
        } catch {
            #expect(error.description.contains("returned 600 objects in a page of at most 500; refused"), "\(error)")
        }
        // Within the limit, the same server's page is read.
        let items = try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: nil, limit: 600)
        #expect(items.count == 600)
    }
}

/// Secrets planted where cairn works with them (a generated Postgres password, a kubeconfig
/// token), and every output of `cairn run`, `cairn apply` and `cairn plan --live` grepped for them:
/// stdout, stderr, the daemon's log, the status files it commits.
@Suite("Planted secrets appear nowhere", .enabled(if: !ControlPlane.skip))
struct PlantedSecretsTests {
    @Test func generatedPasswordsAndTokensStayOutOfEveryOutput() async throws {
        let d = try DaemonTests()
        let ns = d.fx.ns
        let client = try d.fx.plane.client()
        defer { Task { await client.shutdown() } }
        _ = try await client.apply(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)]], fieldManager: "cairn-test")
        let postgres = d.fx.postgres
        try d.origin.commit(["clusters/pg.yaml": postgres])
        let daemon = try d.start(log: "secrets.log")
        defer { daemon.stop() }
        let secret = ObjectReference(apiVersion: "v1", kind: "Secret", namespace: ns, name: "app.pg.credentials.postgresql.acid.zalan.do")
        #expect(await d.eventually { try await client.get(secret)["data", "password"]?.stringValue != nil }, "no generated Secret")
        #expect(await d.eventually { d.statusFile("pg") != nil }, "no status file")
        let encoded = try #require(try await client.get(secret)["data", "password"]?.stringValue)
        let password = try #require(Data(base64Encoded: encoded).flatMap { String(data: $0, encoding: .utf8) })
        // A change to the Secret's users, so that plans and passes have something to say about it.
        try d.origin.commit(["clusters/pg.yaml": postgres.replacingOccurrences(of: "users: {app: [login]}", with: "users: {app: [login, createdb]}")])
        try await Task.sleep(nanoseconds: 2_000_000_000)
        daemon.stop()

        var outputs: [(String, String)] = []
        outputs.append(("daemon log", try String(contentsOfFile: d.logs.file("secrets.log"), encoding: .utf8)))
        outputs.append(("status branch", (try? d.git(["log", "-p", "cairn-status"])) ?? ""))
        let dir = TemporaryDirectory("cairn-planted")
        try postgres.write(toFile: dir.file("pg.yaml"), atomically: true, encoding: .utf8)
        for extra in [["-o", "json"], ["-o", "text"], ["--dry-run"]] {
            let r = try run(CLITests.binary, ["apply", dir.path, "--kubeconfig", d.fx.plane.kubeconfig, "--namespace-allow", ns] + extra)
            outputs.append(("apply \(extra)", r.stdout + r.stderr))
        }
        for format in ["text", "markdown", "json"] {
            let r = try run(CLITests.binary, ["plan", "--repo", "file://" + d.origin.bare, "--path", "clusters", "--cache-dir", dir.file("cache"), "--live",
                                              "--kubeconfig", d.fx.plane.kubeconfig, "--namespace-allow", ns, "--format", format])
            outputs.append(("plan --live \(format)", r.stdout + r.stderr))
        }
        // A kubeconfig token the server refuses: the errors name the user, never the token.
        let token = "PLANTED-kube-token-8c1e"
        let kubeconfig = try String(contentsOfFile: d.fx.plane.kubeconfig, encoding: .utf8)
        let tokenLine = try #require(kubeconfig.split(separator: "\n").first { $0.contains("token:") })
        try kubeconfig.replacingOccurrences(of: String(tokenLine), with: "    token: \(token)").write(toFile: dir.file("kubeconfig"), atomically: true, encoding: .utf8)
        let refused = try run(CLITests.binary, ["apply", dir.path, "--kubeconfig", dir.file("kubeconfig"), "--namespace-allow", ns])
        #expect(refused.status == 1)
        outputs.append(("apply with a refused token", refused.stdout + refused.stderr))

        #expect(outputs.contains { $0.0.hasPrefix("apply") && $0.1.contains("Secret/\(ns)/app.pg.credentials") }, "the Secret is in apply's output")
        #expect(outputs.filter { $0.0.hasPrefix("plan --live") }.allSatisfy { !$0.1.isEmpty })
        for (name, text) in outputs {
            #expect(!text.contains(password) && !text.contains(encoded), "\(name) holds the generated password")
            #expect(!text.contains(token), "\(name) holds the kubeconfig token")
        }
    }
}

/// Paged LISTs ask for the next page before reading the current one, and a failing next page
/// fails the LIST (nothing half-read is taken for the whole).
@Suite("Paged LISTs: the next page is fetched ahead")
struct PagePrefetchTests {
    static let server = #"""
        import http.server, json, sys
        log = sys.argv[2]
        fail = sys.argv[3] == "fail"
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with open(log, "a") as f:
                    f.write(self.path + "\n")
                if self.path.startswith("/api/v1/configmaps"):
                    second = "continue=t2" in self.path
                    if second and fail:
                        self.send_response(500); self.send_header("Content-Length", "0"); self.end_headers(); return
                    start = 3 if second else 0
                    body = {"kind": "ConfigMapList", "apiVersion": "v1",
                            "metadata": {"resourceVersion": "7", "continue": "" if second else "t2"},
                            "items": [{"metadata": {"name": "c%d" % i, "namespace": "ns"}} for i in range(start, start + 3)]}
                elif self.path == "/api/v1":
                    body = {"kind": "APIResourceList", "groupVersion": "v1",
                            "resources": [{"name": "configmaps", "namespaced": True, "kind": "ConfigMap", "verbs": ["list"]}]}
                else:
                    self.send_response(404); self.end_headers(); return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
        """#

    /// The first page's items are transformed only once the server has been asked for the
    /// second page: the transform waits (at most 60 s) to see that request in the server's log.
    /// (Alone it is seen at once; in the whole suite the request's task may wait for one of the
    /// two cooperative threads, which other tests block at times: 10 s was once too short.)
    @Test func theSecondPageIsAskedForWhileTheFirstIsRead() async throws {
        let dir = TemporaryDirectory("cairn-prefetch")
        let port = freePort()
        try Self.server.write(toFile: dir.file("server.py"), atomically: true, encoding: .utf8)
        let log = dir.file("requests.log")
        let server = try ServerProcess("paging API server", "/usr/bin/python3", [dir.file("server.py"), "\(port)", log, "ok"], log: dir.file("server.log"))
        defer { server.stop() }
        #expect(waitForPort(port))
        let client = try KubeClient(config: KubeConfig(server: "http://127.0.0.1:\(port)"), maxAttempts: 1)
        defer { Task { await client.shutdown() } }
        let seenAhead = Mutex<[Bool]>([])
        let (items, version) = try await client.listVersioned(apiVersion: "v1", kind: "ConfigMap", namespace: nil, limit: 3) { o in
            if o["metadata", "name"] == "c0" {
                var seen = false
                for _ in 0..<1200 where !seen {
                    seen = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("continue=t2")
                    if !seen { usleep(50_000) }
                }
                seenAhead.withLock { $0.append(seen) }
            }
            return o
        }
        #expect(seenAhead.withLock { $0 } == [true])
        #expect(items.compactMap { $0["metadata", "name"]?.stringValue } == (0..<6).map { "c\($0)" })
        #expect(version == "7")
    }

    @Test func aFailingNextPageFailsTheList() async throws {
        let dir = TemporaryDirectory("cairn-prefetch-fail")
        let port = freePort()
        try Self.server.write(toFile: dir.file("server.py"), atomically: true, encoding: .utf8)
        let server = try ServerProcess("paging API server", "/usr/bin/python3", [dir.file("server.py"), "\(port)", dir.file("requests.log"), "fail"],
                                       log: dir.file("server.log"))
        defer { server.stop() }
        #expect(waitForPort(port))
        let client = try KubeClient(config: KubeConfig(server: "http://127.0.0.1:\(port)"), maxAttempts: 1)
        defer { Task { await client.shutdown() } }
        do {
            let items = try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: nil, limit: 3)
            Issue.record("a LIST whose second page failed returned \(items.count) objects")
        } catch {
            #expect(error.operation == "list" && error.description.contains("ConfigMap"), "\(error)")
        }
    }
}
