import ClusterSpecs
import Foundation
import JSON
@testable import Render
import Testing

/// KurrentDB's `users`: the initial admin and ops passwords from their Secrets, and the Job that
/// creates `customUsers`. KurrentDB cannot run here (no image), so the Job's script, run with sh
/// and the system's curl as its container would, talks to a stand-in of the HTTP API written from
/// KurrentDB's UsersController: `POST /users/` with basic authentication and the JSON body
/// `{loginName, fullName, groups, password}`, answering 201, 409 for a login that exists, 401
/// for a wrong password; over TLS with a certificate for the node's FQDN, as the cluster's.
@Suite("KurrentDB users")
struct KurrentUsersTests {
    static let fakeAPI = #"""
    import base64, http.server, json, ssl, sys
    port, cert, key, state_path, admin_password, starting, starting_code = sys.argv[1:8]
    starting = [int(starting)]
    class API(http.server.BaseHTTPRequestHandler):
        def answer(self, code, body=b""):
            self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if starting[0] > 0:
                starting[0] -= 1
                return self.answer(int(starting_code), b"not ready")
            if self.path != "/users/" or self.headers.get("Content-Type") != "application/json":
                return self.answer(404)
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(("admin:" + admin_password).encode()).decode():
                return self.answer(401)
            user = json.loads(body)
            if sorted(user) != ["fullName", "groups", "loginName", "password"]:
                return self.answer(400, b"bad user")
            state = json.load(open(state_path))
            if user["loginName"] in state:
                return self.answer(409)
            state[user["loginName"]] = user
            json.dump(state, open(state_path, "w"))
            self.answer(201)
        def log_message(self, *args): pass
    server = http.server.HTTPServer(("127.0.0.1", int(port)), API)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
    """#

    static let yaml = """
        apiVersion: kubernetes.kurrent.io/v1
        kind: KurrentDB
        metadata: {name: kdb, namespace: kurrent}
        spec:
          replicas: 3
          image: docker.kurrent.io/kurrent-latest/kurrentdb:25.1.0
          storage: {resources: {requests: {storage: 1Gi}}}
          network: {domain: kurrent.test, fqdnTemplate: '{podName}.{domain}'}
          security:
            certificateSecret: {name: node-tls, keyName: tls.crt, privateKeyName: tls.key}
            certificateAuthoritySecret: {name: ca}
          users:
            adminPasswordSecret: {name: passwords, key: admin}
            opsPasswordSecret: {name: passwords, key: ops}
            customUsers:
              - {loginName: app, fullName: The App, passwordSecret: {name: passwords, key: app}, groups: [$admins, readers]}
              - {loginName: "o'brien", fullName: 'Quote "Q" Back\\slash', passwordSecret: {name: other, key: pw}}
        """

    /// The stand-in API with a certificate for kdb-0.kurrent.test, signed by itself (the CA the
    /// Job trusts), stopped by its pid.
    final class API {
        let dir = TemporaryDirectory("cairn-kurrent-users")
        let port = freePort()
        private var server: ServerProcess?

        /// The first `starting` requests are answered `startingCode`: a cluster still starting.
        init(adminPassword: String, starting: Int = 0, startingCode: Int = 503) throws {
            try FileManager.default.createDirectory(atPath: dir.file("ca"), withIntermediateDirectories: true)
            let r = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=kdb-0.kurrent.test",
                                                 "-addext", "subjectAltName=DNS:kdb-0.kurrent.test",
                                                 "-keyout", dir.file("key.pem"), "-out", dir.file("ca/ca.crt")])
            guard r.status == 0 else { throw CommandFailed(description: "openssl: \(r.stderr)") }
            try "{}".write(toFile: dir.file("state.json"), atomically: true, encoding: .utf8)
            try KurrentUsersTests.fakeAPI.write(toFile: dir.file("api.py"), atomically: true, encoding: .utf8)
            server = try ServerProcess("kurrent-api", "/usr/bin/python3",
                                       [dir.file("api.py"), "\(port)", dir.file("ca/ca.crt"), dir.file("key.pem"), dir.file("state.json"),
                                        adminPassword, "\(starting)", "\(startingCode)"], log: dir.file("api.log"))
            for _ in 0..<100 {
                if try run("/usr/bin/curl", ["-sk", "-o", "/dev/null", "https://127.0.0.1:\(port)/"]).status == 0 { return }
                usleep(50_000)
            }
            throw CommandFailed(description: "the stand-in API never listened on \(port)")
        }

        deinit { server?.stop() }

        func stop() { server?.stop() }

        var users: [String: JSONValue] {
            let state = (try? JSONValue.parse(Array(Repo.read(dir.url.appendingPathComponent("state.json")).utf8))) ?? [:]
            return Dictionary(uniqueKeysWithValues: (state.objectValue?.entries ?? []).map { ($0.key, $0.value) })
        }

        /// Runs the rendered Job's script as its container would, its Secrets' keys in `secrets`
        /// ("secret/key"), against this API (curl connects here instead of node 0).
        func runJob(_ yaml: String, secrets: [String: String], tries: Int = 5) throws -> ProcessResult {
            let objects = try render(yaml)
            let job = try #require(objects.first { $0.kind == "Job" })
            let name = try #require(job.body["metadata", "name"]?.stringValue)
            let files = try #require(object(objects, "ConfigMap", name))
            for (file, text) in files.body["data"]?.objectValue?.entries ?? [] {
                try #require(text.stringValue).write(toFile: dir.file(file), atomically: true, encoding: .utf8)
            }
            let container = try #require(job.body["spec", "template", "spec", "containers"]?.arrayValue?.first)
            var environment = ["PATH=/usr/bin:/bin", "CAIRN_USERS=\(dir.file("users"))", "CAIRN_LOGINS=\(dir.file("logins"))",
                               "CAIRN_TRIES=\(tries)", "CAIRN_PAUSE=0"]
            for env in container["env"]?.arrayValue ?? [] {
                guard let key = env["name"]?.stringValue else { continue }
                if key == "KURRENTDB_CONNECT_TO" {
                    #expect(env["value"] == "kdb-0.kdb.kurrent.svc.cluster.local:2113")
                    environment.append("\(key)=127.0.0.1:\(port)")
                } else if key == "KURRENTDB_CA_DIR" {
                    environment.append("\(key)=\(dir.file("ca"))")
                } else if let value = env["value"]?.stringValue {
                    environment.append("\(key)=\(value)")
                } else if let secret = env["valueFrom", "secretKeyRef", "name"]?.stringValue, let key2 = env["valueFrom", "secretKeyRef", "key"]?.stringValue {
                    environment.append("\(key)=\(secrets["\(secret)/\(key2)"] ?? "")")
                }
            }
            return try run("/usr/bin/env", ["-i"] + environment + ["/bin/sh", dir.file("users.sh")], timeout: 60)
        }
    }

    static let secrets = ["passwords/admin": "adm1n \"pw\" \\ x", "passwords/ops": "ops-pw", "passwords/app": "app's \"pw\"", "other/pw": "b\\ck"]

    @Test func theInitialPasswordsReachEveryNodeFromTheirSecrets() throws {
        let objects = try render(Self.yaml + "\n  readOnlyReplicas: {replicas: 1}")
        for set in ["kdb", "kdb-replica"] {
            let env = try #require(object(objects, "StatefulSet", set)?.body["spec", "template", "spec", "containers"]?.arrayValue?.first?["env"]?.arrayValue)
            #expect(env.contains { $0["name"] == "KURRENTDB_DEFAULT_ADMIN_PASSWORD" && $0["valueFrom", "secretKeyRef"] == ["name": "passwords", "key": "admin"] })
            #expect(env.contains { $0["name"] == "KURRENTDB_DEFAULT_OPS_PASSWORD" && $0["valueFrom", "secretKeyRef"] == ["name": "passwords", "key": "ops"] })
        }
        // Environment-only options: the server refuses them in its configuration file.
        for set in ["kdb", "kdb-replica"] {
            let conf = try #require(object(objects, "ConfigMap", "\(set)-config")?.body["data", "eventstore.conf"]?.stringValue)
            #expect(!conf.contains("Password"), "\(conf)")
        }
        #expect(specNotes(Self.yaml).contains { $0.contains("spec.users: the admin and ops passwords are the server's initial ones") })
        // As the server demands: the initial passwords need authentication on (security).
        let insecure = Self.yaml.replacingOccurrences(of: "  security:\n    certificateSecret: {name: node-tls, keyName: tls.crt, privateKeyName: tls.key}\n    certificateAuthoritySecret: {name: ca}\n", with: "")
        #expect(insecure != Self.yaml)
        #expect(specErrors(insecure).map { $0.contains("spec.users: needs security") } == [true], "\(specErrors(insecure))")
        let builtIn = Self.yaml.replacingOccurrences(of: "loginName: app,", with: "loginName: ops,")
        #expect(specErrors(builtIn).map { $0.contains("loginName: ops is a built-in user") } == [true], "\(specErrors(builtIn))")
        let noOps = Self.yaml.replacingOccurrences(of: "    opsPasswordSecret: {name: passwords, key: ops}\n", with: "")
        #expect(specErrors(noOps).map { $0.contains("spec.users.opsPasswordSecret: is required") } == [true], "\(specErrors(noOps))")
    }

    @Test func customUsersAreCreatedOnceAndLeftAsTheyAre() throws {
        let api = try API(adminPassword: Self.secrets["passwords/admin"]!, starting: 2)
        let first = try api.runJob(Self.yaml, secrets: Self.secrets)
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(first.stdout.contains("cairn: created user app\n") && first.stdout.contains("cairn: 2 of 2 users created"), "\(first.stdout)")
        let users = api.users
        #expect(users["app"]?.canonicalJSON() == JSONValue.object(["loginName": "app", "fullName": "The App", "groups": ["$admins", "readers"],
                                                                   "password": "app's \"pw\""]).canonicalJSON())
        #expect(users["o'brien"]?.canonicalJSON() == JSONValue.object(["loginName": "o'brien", "fullName": "Quote \"Q\" Back\\slash", "groups": [],
                                                                       "password": "b\\ck"]).canonicalJSON())
        for (key, secret) in Self.secrets where key != "passwords/ops" { #expect(!(first.stdout + first.stderr).contains(secret)) }
        #expect(first.stdout.contains("cairn: created user o'brien\n"), "the login as it is: \(first.stdout)")

        // Again: both exist, nothing is changed (as upstream, users are never updated).
        let again = try api.runJob(Self.yaml, secrets: Self.secrets.merging(["passwords/app": "new"]) { $1 })
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        #expect(again.stdout.contains("cairn: user app exists; left as it is") && again.stdout.contains("cairn: 0 of 2 users created"), "\(again.stdout)")
        #expect(api.users["app"]?["password"] == "app's \"pw\"")
    }

    /// A new database answers 401 until it has made its admin: tried again, not a failure.
    @Test func anUnauthorizedStartIsTriedAgain() throws {
        let api = try API(adminPassword: Self.secrets["passwords/admin"]!, starting: 3, startingCode: 401)
        let r = try api.runJob(Self.yaml, secrets: Self.secrets)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(api.users.count == 2)
    }

    /// The Job's pod is not one of the nodes: it counts in no PodDisruptionBudget and joins no
    /// Service of theirs.
    @Test func theJobsPodIsNoneOfTheNodes() throws {
        let objects = try render(Self.yaml + "\n  readOnlyReplicas: {replicas: 1}")
        let job = try #require(objects.first { $0.kind == "Job" })
        let labels = job.body["spec", "template", "metadata", "labels"]?.objectValue ?? JSONObject()
        for o in objects where o.kind == "Service" || o.kind == "PodDisruptionBudget" {
            let selector = (o.kind == "Service" ? o.body["spec", "selector"] : o.body["spec", "selector", "matchLabels"])?.objectValue ?? JSONObject()
            #expect(!selector.isEmpty)
            #expect(!selector.entries.allSatisfy { labels[$0.key] == $0.value }, "\(o.kind) \(o.name) selects the Job's pod")
        }
    }

    @Test func aWrongAdminPasswordOrABadSecretStopsTheJobSayingWhy() throws {
        let api = try API(adminPassword: "the database's own")
        let wrong = try api.runJob(Self.yaml, secrets: Self.secrets)
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("the cluster refused admin's password after 5 tries: the initial passwords act when the database is created only"),
                "\(wrong.stderr)")
        #expect(api.users.isEmpty)
        let control = try api.runJob(Self.yaml, secrets: Self.secrets.merging(["other/pw": "two\nlines"]) { $1 })
        #expect(control.status == 1)
        #expect(control.stderr.contains("the password in CAIRN_PASSWORD_1 is empty or holds a control character"), "\(control.stderr)")
        // No server at all: bounded tries, then the address it tried.
        api.stop()
        let down = try api.runJob(Self.yaml, secrets: Self.secrets, tries: 2)
        #expect(down.status == 1)
        #expect(down.stderr.contains("https://kdb-0.kurrent.test:2113 (at 127.0.0.1:\(api.port)) did not take user app after 2 tries: HTTP 000"), "\(down.stderr)")
    }
}
