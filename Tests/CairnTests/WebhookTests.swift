@testable import Daemon
import Foundation
import Logging
import Synchronization
import Testing

/// Push webhooks of GitHub, GitLab and Gitea/Forgejo, in each host's documented format, signed
/// by openssl (not by the code under test).
@Suite("Webhooks")
struct WebhookTests {
    static let secret = "a-webhook-secret-0123456789"
    static let verifier = WebhookVerifier(secret: Array(secret.utf8), branch: "main")

    /// Payloads as the hosts document them (trimmed to the fields a push always has).
    static func github(ref: String = "refs/heads/main") -> String {
        #"{"ref":"\#(ref)","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5","#
            + #""repository":{"id":186853002,"name":"clusters","full_name":"acme/clusters","private":true},"pusher":{"name":"octocat"},"#
            + #""commits":[{"id":"59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5","message":"pg: 3 instances","modified":["clusters/pg.yaml"]}]}"#
    }
    static func gitlab(ref: String = "refs/heads/main") -> String {
        #"{"object_kind":"push","event_name":"push","before":"95790bf891e76fee5e1747ab589903a6a1f80f22","#
            + #""after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","ref":"\#(ref)","checkout_sha":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7","#
            + #""user_username":"jsmith","project":{"path_with_namespace":"acme/clusters","default_branch":"main"},"total_commits_count":1}"#
    }
    static func gitea(ref: String = "refs/heads/main") -> String {
        #"{"ref":"\#(ref)","before":"28e1879d029cb852e4844d9c718537df08844e03","after":"bffeb74224043ba2feb48d137756c8a9331c449a","#
            + #""compare_url":"https://gitea.example.com/acme/clusters/compare/28e1879d...bffeb742","#
            + #""repository":{"full_name":"acme/clusters","default_branch":"main"},"pusher":{"login":"gitea"}}"#
    }

    /// HMAC-SHA256 of `body` with `key`, hex, from the openssl CLI.
    static func hmac(_ body: String, key: String = secret) throws -> String {
        let dir = TemporaryDirectory("cairn-hmac")
        try body.write(toFile: dir.file("body"), atomically: true, encoding: .utf8)
        let r = try run("/usr/bin/openssl", ["dgst", "-sha256", "-hmac", key, dir.file("body")])
        return String(r.stdout.split(separator: " ").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func headers(_ host: String, _ body: String, event: String? = nil, key: String = secret) throws -> [(name: String, value: String)] {
        switch host {
        case "github": return [("X-GitHub-Event", event ?? "push"), ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                               ("X-Hub-Signature-256", "sha256=" + (try hmac(body, key: key))), ("Content-Type", "application/json")]
        case "gitlab": return [("X-Gitlab-Event", event ?? "Push Hook"), ("X-Gitlab-Token", key), ("Content-Type", "application/json")]
        default: return [("X-Gitea-Event", event ?? "push"), ("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
                         ("X-Gitea-Signature", try hmac(body, key: key)), ("Content-Type", "application/json")]
        }
    }

    func verdict(_ path: String, _ headers: [(name: String, value: String)], _ body: String, method: String = "POST") -> WebhookVerifier.Verdict {
        Self.verifier.verdict(method: method, path: path, headers: headers, body: Array(body.utf8))
    }

    @Test(arguments: [("github", Self.github()), ("gitlab", Self.gitlab()), ("gitea", Self.gitea())])
    func aSignedPushToTheBranchAsksForAHeadCheck(host: String, body: String) throws {
        let good = verdict("/hooks/\(host)", try Self.headers(host, body), body)
        #expect(good.status == 202 && good.triggersCheck && good.host == host, "\(good)")
        // One path for all: the host is told by its event header.
        #expect(verdict("/hooks", try Self.headers(host, body), body).triggersCheck)
        // Another branch: answered, ignored.
        let other = host == "github" ? Self.github(ref: "refs/heads/dev") : host == "gitlab" ? Self.gitlab(ref: "refs/heads/dev") : Self.gitea(ref: "refs/heads/dev")
        let ignored = verdict("/hooks/\(host)", try Self.headers(host, other), other)
        #expect(ignored.status == 200 && ignored.result == "ignored" && ignored.message.contains("refs/heads/dev"), "\(ignored)")
        // A tag push names no branch.
        let tag = body.replacingOccurrences(of: "refs/heads/main", with: "refs/tags/main")
        #expect(!verdict("/hooks/\(host)", try Self.headers(host, tag), tag).triggersCheck)
        // Signed with another secret, or the body changed after signing: refused, 403.
        let forged = verdict("/hooks/\(host)", try Self.headers(host, body, key: "not-the-secret-0123456789"), body)
        #expect(forged.status == 403 && forged.result == "forbidden" && !forged.triggersCheck, "\(forged)")
        let tampered = body.replacingOccurrences(of: "acme", with: "evil")
        #expect(verdict("/hooks/\(host)", try Self.headers(host, body), tampered).status == (host == "gitlab" ? 202 : 403),
                "GitLab sends its token, not a signature of the body")
        // No signature at all: 401. Not a POST: 405.
        let unsigned = try Self.headers(host, body).filter { !["x-hub-signature-256", "x-gitlab-token", "x-gitea-signature"].contains($0.name.lowercased()) }
        #expect(verdict("/hooks/\(host)", unsigned, body).status == 401)
        #expect(verdict("/hooks/\(host)", try Self.headers(host, body), body, method: "GET").status == 405)
    }

    @Test func otherEventsPathsAndBodiesAreRefusedWithTheirStatus() throws {
        let body = Self.github()
        // GitHub's ping when the webhook is created: answered, nothing to do.
        let ping = verdict("/hooks/github", try Self.headers("github", "{}", event: "ping"), "{}")
        #expect(ping.status == 200 && ping.result == "ignored")
        let issues = verdict("/hooks/github", try Self.headers("github", body, event: "issues"), body)
        #expect(issues.status == 400 && issues.message.contains("'issues' is not a push"), "\(issues)")
        #expect(verdict("/hooks/gitlab", try Self.headers("gitlab", Self.gitlab(), event: "Merge Request Hook"), Self.gitlab()).status == 400)
        #expect(verdict("/hooks/bitbucket", try Self.headers("github", body), body).status == 404)
        #expect(verdict("/hooks", [("Content-Type", "application/json")], body).status == 400)
        let notJSON = "ref=refs/heads/main"
        #expect(verdict("/hooks/gitea", try Self.headers("gitea", notJSON), notJSON).message == "the push payload has no ref")
        let huge = String(repeating: " ", count: WebhookVerifier.maximumBody) + body
        #expect(verdict("/hooks/github", try Self.headers("github", huge), huge).status == 413)
        // Forgejo's own header names, and an upper-case signature.
        let forgejo = try Self.headers("gitea", Self.gitea()).map { h in
            h.name == "X-Gitea-Signature" ? (name: "X-Forgejo-Signature", value: h.value.uppercased())
                : h.name == "X-Gitea-Event" ? (name: "X-Forgejo-Event", value: h.value) : h
        }
        #expect(verdict("/hooks", forgejo, Self.gitea()).triggersCheck)
        #expect(WebhookVerifier.constantTimeEqual([1, 2, 3], [1, 2, 3]) && !WebhookVerifier.constantTimeEqual([1, 2, 3], [1, 2, 4])
                && !WebhookVerifier.constantTimeEqual([1, 2], [1, 2, 3]))
    }

    /// The first call at once; a burst folded into one more call at the interval's end.
    @Test func aBurstOfCallsIsFoldedIntoTwo() async throws {
        let calls = Atomic<Int>(0)
        let debouncer = Debouncer(interval: .milliseconds(300)) { calls.add(1, ordering: .relaxed) }
        for _ in 0..<100 { debouncer.call() }
        #expect(calls.load(ordering: .relaxed) == 1, "the first call is not delayed")
        var waited = 0
        while calls.load(ordering: .relaxed) < 2, waited < 300 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        try await Task.sleep(for: .milliseconds(700))
        #expect(calls.load(ordering: .relaxed) == 2, "the other 99 are one call")
        // After a quiet interval, a call is at once again.
        debouncer.call()
        #expect(calls.load(ordering: .relaxed) == 3)
    }

    /// The receiver over HTTP, with curl: statuses, a burst, an oversized body and a client
    /// that stops sending.
    /// A standby relays a verified push to the leader's receiver (another WebhookServer here) as
    /// it came; it answers 503 when the leader cannot be reached or published no URL, and never
    /// relays a forged push or one relayed already.
    @Test func aStandbyRelaysVerifiedPushesToTheLeaderOrAnswers503() async throws {
        let leaderPushes = Atomic<Int>(0), standbyPushes = Atomic<Int>(0)
        let leader = try await WebhookServer.start(host: "127.0.0.1", port: 0, verifier: Self.verifier, log: Logger(label: "test"),
                                                   metrics: nil) { leaderPushes.add(1, ordering: .relaxed) }
        let target = Mutex<WebhookRelay.Target>(.leader("http://127.0.0.1:\(leader.port)"))
        let standby = try await WebhookServer.start(host: "127.0.0.1", port: 0, verifier: Self.verifier, log: Logger(label: "test"), metrics: nil,
                                                    relay: WebhookRelay(identity: "standby-0") { target.withLock { $0 } }) {
            standbyPushes.add(1, ordering: .relaxed)
        }
        let dir = TemporaryDirectory("cairn-relay")
        let body = Self.github()
        try body.write(toFile: dir.file("push.json"), atomically: true, encoding: .utf8)
        func curl(_ headers: [(name: String, value: String)]) throws -> String {
            try run("/usr/bin/curl", ["-s", "-w", " %{http_code}", "--data-binary", "@" + dir.file("push.json")]
                    + headers.flatMap { ["-H", "\($0.name): \($0.value)"] } + ["http://127.0.0.1:\(standby.port)/hooks/github"]).stdout
        }
        let relayed = try curl(Self.headers("github", body))
        #expect(relayed.hasPrefix("relayed to the leader: a push to refs/heads/main") && relayed.hasSuffix(" 202"), Comment(rawValue: relayed))
        #expect(leaderPushes.load(ordering: .relaxed) == 1 && standbyPushes.load(ordering: .relaxed) == 0)
        #expect(try curl(Self.headers("github", body, key: "wrong-secret-0123456789")).hasSuffix(" 403"))
        #expect(try curl(Self.headers("github", body) + [("X-Cairn-Relayed-By", "standby-1")]).hasSuffix(" 503"))
        #expect(leaderPushes.load(ordering: .relaxed) == 1, "a forged or twice-relayed push reached the leader")
        target.withLock { $0 = .unknown }
        #expect(try curl(Self.headers("github", body)).contains("the leader has published no webhook address"))
        await leader.stop()
        target.withLock { $0 = .leader("http://127.0.0.1:\(leader.port)") }
        let down = try curl(Self.headers("github", body))
        #expect(down.contains("did not take the push") && down.hasSuffix(" 503"), "\(down)")
        target.withLock { $0 = .local }
        #expect(try curl(Self.headers("github", body)).hasSuffix(" 202"))
        #expect(standbyPushes.load(ordering: .relaxed) == 1, "once it leads, it acts itself")
        await standby.stop()
    }

    @Test func theReceiverAnswersOverHTTPAndDropsSlowClients() async throws {
        let pushes = Atomic<Int>(0)
        let server = try await WebhookServer.start(host: "127.0.0.1", port: 0, verifier: Self.verifier, log: Logger(label: "test"),
                                                   metrics: nil) { pushes.add(1, ordering: .relaxed) }
        let dir = TemporaryDirectory("cairn-webhook")
        let body = Self.github()
        try body.write(toFile: dir.file("push.json"), atomically: true, encoding: .utf8)
        let url = "http://127.0.0.1:\(server.port)/hooks/github"
        func curl(_ headers: [(name: String, value: String)], file: String = "push.json", extra: [String] = []) throws -> [String] {
            let r = try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}\n", "--data-binary", "@" + dir.file(file)]
                            + headers.flatMap { ["-H", "\($0.name): \($0.value)"] } + extra + [url])
            return r.stdout.split(separator: "\n").map(String.init)
        }
        #expect(try curl(Self.headers("github", body)) == ["202"])
        #expect(pushes.load(ordering: .relaxed) == 1)
        #expect(try curl(Self.headers("github", body, key: "wrong-secret-0123456789")) == ["403"])
        try String(repeating: "x", count: 2 << 20).write(toFile: dir.file("big"), atomically: true, encoding: .utf8)
        #expect(try curl(Self.headers("github", body), file: "big") == ["413"])
        // 100 at once, on parallel connections: all answered, each counted.
        let burst = try curl(Self.headers("github", body), extra: ["--parallel", "--parallel-max", "50"] + (0..<99).flatMap { _ in ["-o", "/dev/null", url] })
        #expect(burst == Array(repeating: "202", count: 100), "\(burst)")
        #expect(pushes.load(ordering: .relaxed) == 101)
        #expect(try curl(Self.headers("github", body, key: "wrong-secret-0123456789")) == ["403"])
        #expect(pushes.load(ordering: .relaxed) == 101, "a refused webhook asks for nothing")

        // A client that sends half a request and then nothing is disconnected (10 s idle).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(server.port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(connected == 0)
        let partial = "POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ref\":"
        _ = partial.withCString { send(fd, $0, strlen($0), 0) }
        // The server closes it after 10 s idle, 30 s at most; a loaded CI machine once took 57 s,
        // so this test's own limit is far above both: a 0 from recv is the server's close.
        var timeout = timeval(tv_sec: 120, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // The blocking read on a thread of its own: on one of the two threads of Swift's pool it
        // could starve the rest of the run (CI measured 61 s here once).
        let (n, waited) = await withCheckedContinuation { (done: CheckedContinuation<(Int, TimeInterval), Never>) in
            Thread.detachNewThread {
                let start = Date()
                var buffer = [UInt8](repeating: 0, count: 512)
                let n = recv(fd, &buffer, buffer.count, 0)
                done.resume(returning: (n, Date().timeIntervalSince(start)))
            }
        }
        #expect(n == 0, "the server closed the connection (got \(n))")
        #expect(waited < 110, "closed by the idle timeout, not by this test's own")
        await server.stop()
    }
}
