import ClusterSpecs
import Foundation
import JSON
@testable import Render
import Testing

/// The Job that provisions `aerospikeAccessControl`'s users: its script, run with sh as the
/// server image would run it. Its peer, asadm against an Enterprise server with security, cannot
/// run here (neither is packaged; security is Enterprise-only), so a stand-in asadm written from
/// aerospike-admin 5.0's source answers it: it reads the password from standard input (-P),
/// splits `-e` with Python's shlex as asadm does, prints `show users` as asadm's JSON (indent 2,
/// `{"raw", "converted"}` per field, roles comma-separated or `--`), and fails with
/// `ERROR: ...` and exit 2 as asadm does. What a real server answers beyond that is not tested.
@Suite("Aerospike users Job")
struct AerospikeUsersTests {
    static let fakeAsadm = #"""
    #!/usr/bin/env python3
    import json, os, shlex, sys
    args = sys.argv[1:]
    state_path = os.environ["FAKE_STATE"]
    state = json.load(open(state_path))
    calls = len(open(os.environ["FAKE_LOG"]).readlines()) if os.path.exists(os.environ["FAKE_LOG"]) else 0
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(args) + "\n")
    # FAKE_ROTATE=K:PASSWORD: admin's password changes after K calls (another Job changing it).
    rotate = os.environ.get("FAKE_ROTATE", "")
    if rotate and calls >= int(rotate.split(":", 1)[0]) and "admin" in state["users"]:
        state["users"]["admin"]["password"] = rotate.split(":", 1)[1]
        json.dump(state, open(state_path, "w"))
    if "-U" in args:
        user = args[args.index("-U") + 1]
        password = sys.stdin.readline().strip()
        refused = state["users"].get(user, {}).get("password") != password
    elif "--auth" in args and args[args.index("--auth") + 1] == "PKI":
        # PKI: asadm needs TLS and a client certificate; the server takes the user its common
        # name (FAKE_CERT_USER) names, when that user exists.
        if "--tls-enable" not in args or "--tls-certfile" not in args:
            sys.stderr.write("ERROR: PKI authentication requires TLS and a client certificate\n"); sys.exit(1)
        refused = os.environ.get("FAKE_CERT_USER", "") not in state["users"]
    else:
        refused = bool(state["users"])  # a cluster with security asks for a login
    if state.get("down") or refused:
        sys.stderr.write("ERROR: Not able to connect any cluster with [%s].\n" % args[args.index("-h") + 1])
        sys.exit(1)
    command = args[args.index("-e") + 1]
    if "-j" in args and command == "show users":
        records = [{"User": {"raw": n, "converted": n},
                    "Roles": {"raw": u["roles"] or "null", "converted": ",".join(u["roles"]) or "--"},
                    "Read": {"Quota": {"raw": 0, "converted": "0"}}, "Write": {"Quota": {"raw": 0, "converted": "0"}},
                    "Auth Mode": {"raw": "internal", "converted": "internal"}}
                   for n, u in sorted(state["users"].items())]
        print(json.dumps({"title": "Users (2026-12-02 16:00:00 UTC)", "groups": [{"records": records}],
                          "description": "To see individual users metrics run 'show users statistics <username>'"}, indent=2))
        sys.exit(0)
    rosters = state.get("rosters", {})
    if command.startswith("asinfo -v roster:namespace="):
        r = rosters.get(command.split("=", 1)[1])
        if r is None:
            print("aero-1-0 (10.0.0.1:3000) returned:\nERROR::namespace not found"); sys.exit(0)
        f = lambda nodes: ",".join(nodes) or "null"
        print("aero-1-0 (10.0.0.1:3000) returned:\nroster=%s:pending_roster=%s:observed_nodes=%s" % (f(r["roster"]), f(r["pending"]), f(r["observed"])))
        sys.exit(0)
    if "--enable" not in args:
        sys.stderr.write("ERROR: manage commands need --enable\n"); sys.exit(2)
    w = shlex.split(command, posix=True)
    if w[:3] == ["manage", "roster", "stage"] and w[3] == "nodes" and w[5] == "ns" and w[7:] == ["--no-warn"]:
        rosters[w[6]]["pending"] = w[4].split(",")
        json.dump(state, open(state_path, "w")); print("Pending roster now contains nodes."); sys.exit(0)
    if w == ["manage", "recluster"]:
        for r in rosters.values(): r["roster"] = r["pending"]
        json.dump(state, open(state_path, "w")); print("Successfully started recluster"); sys.exit(0)
    if w[:2] != ["manage", "acl"]:
        sys.stderr.write("ERROR: unknown command %s\n" % command); sys.exit(2)
    users = state["users"]
    if w[2] == "create" and w[3] == "user" and w[5] == "password":
        if w[4] in users:
            sys.stderr.write("ERROR: Failed to create user : User already exists.\n"); sys.exit(2)
        users[w[4]] = {"password": w[6], "roles": sorted(w[8:]) if len(w) > 7 and w[7] == "roles" else []}
    elif w[2] == "set-password" and w[3] == "user" and w[5] == "password" and len(w) == 7 and w[4] in users:
        users[w[4]]["password"] = w[6]
    elif w[2] in ("grant", "revoke") and w[3] == "user" and w[5] == "roles" and w[4] in users:
        roles = set(users[w[4]]["roles"])
        users[w[4]]["roles"] = sorted(roles | set(w[6:]) if w[2] == "grant" else roles - set(w[6:]))
    else:
        sys.stderr.write("ERROR: Failed : %s\n" % command); sys.exit(2)
    json.dump(state, open(state_path, "w"))
    print("Successfully done.")
    """#

    static func spec(_ users: String) -> String {
        ValidationTests.aerospike("  aerospikeAccessControl:\n    users:\n\(users)\n  aerospikeConfig:\n    security: {}\n"
            + "\(ValidationTests.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
    }

    static let users = """
              - {name: admin, secretName: admin-secret, roles: [user-admin, sys-admin, read]}
              - {name: app, secretName: app-secret, roles: [read-write]}
              - {name: backup, secretName: backup-secret, roles: [read]}
        """

    /// A stand-in server and the rendered Job's files, in a directory of their own.
    final class Server {
        let dir = TemporaryDirectory("cairn-aerousers")
        init(users: [String: (password: String, roles: [String])]) throws {
            try writeExecutable(AerospikeUsersTests.fakeAsadm, to: dir.file("asadm"))
            try setUsers(users)
        }

        func setUsers(_ users: [String: (password: String, roles: [String])], down: Bool = false,
                      rosters: [String: (roster: [String], observed: [String])] = [:]) throws {
            let state: JSONValue = ["down": .bool(down), "users": .object(JSONObject(users.sorted { $0.key < $1.key }.map {
                (key: $0.key, value: ["password": .string($0.value.password), "roles": .array($0.value.roles.map { .string($0) })])
            })), "rosters": .object(JSONObject(rosters.sorted { $0.key < $1.key }.map {
                (key: $0.key, value: ["roster": .array($0.value.roster.map { .string($0) }), "pending": .array($0.value.roster.map { .string($0) }),
                                      "observed": .array($0.value.observed.map { .string($0) })])
            }))]
            try state.canonicalJSON().write(toFile: dir.file("state.json"), atomically: true, encoding: .utf8)
        }

        var rosters: [String: [String]] {
            let state = (try? JSONValue.parse(Array(Repo.read(dir.url.appendingPathComponent("state.json")).utf8))) ?? [:]
            var out: [String: [String]] = [:]
            for (ns, r) in state["rosters"]?.objectValue?.entries ?? [] { out[ns] = (r["roster"]?.arrayValue ?? []).compactMap(\.stringValue) }
            return out
        }

        var users: [String: (password: String, roles: [String])] {
            let state = (try? JSONValue.parse(Array(Repo.read(dir.url.appendingPathComponent("state.json")).utf8))) ?? [:]
            var out: [String: (password: String, roles: [String])] = [:]
            for (name, u) in state["users"]?.objectValue?.entries ?? [] {
                out[name] = (u["password"]?.stringValue ?? "", (u["roles"]?.arrayValue ?? []).compactMap(\.stringValue))
            }
            return out
        }

        var asadmCalls: Int {
            ((try? String(contentsOfFile: dir.file("log"), encoding: .utf8)) ?? "").split(separator: "\n").count
        }

        /// Runs the Job's script as its container would, with `passwords` in the environment as
        /// the Job's secretKeyRefs give them.
        func runJob(_ yaml: String, passwords: [String: String], tries: Int = 3, job kind: String = "users",
                    extraEnvironment: [String] = []) throws -> ProcessResult {
            let objects = try render(yaml)
            let job = try #require(objects.first { $0.kind == "Job" && $0.name.contains("-\(kind)-") })
            let name = try #require(job.body["metadata", "name"]?.stringValue)
            let files = try #require(objects.first { $0.kind == "ConfigMap" && $0.body["metadata", "name"]?.stringValue == name })
            for (file, text) in files.body["data"]?.objectValue?.entries ?? [] {
                try #require(text.stringValue).write(toFile: dir.file(file), atomically: true, encoding: .utf8)
            }
            let container = try #require(job.body["spec", "template", "spec", "containers"]?.arrayValue?.first)
            #expect(container["command"] == .array(["/bin/sh", .string("/etc/cairn/aerospike/\(kind).sh")]))
            var environment = ["PATH=\(dir.path):/usr/bin:/bin", "FAKE_STATE=\(dir.file("state.json"))", "FAKE_LOG=\(dir.file("log"))",
                               "CAIRN_USERS=\(dir.file("users"))", "CAIRN_ROSTER=\(dir.file("roster"))", "CAIRN_BLOCKED=\(dir.file("blocked"))",
                               "CAIRN_TRIES=\(tries)", "CAIRN_PAUSE=0"] + extraEnvironment
            for env in container["env"]?.arrayValue ?? [] {
                guard let key = env["name"]?.stringValue else { continue }
                if let value = env["value"]?.stringValue {
                    environment.append("\(key)=\(value)")
                } else if let secret = env["valueFrom", "secretKeyRef", "name"]?.stringValue {
                    #expect(env["valueFrom", "secretKeyRef", "key"] == "password")
                    environment.append("\(key)=\(passwords[secret] ?? "")")
                }
            }
            return try run("/usr/bin/env", ["-i"] + environment + ["/bin/sh", dir.file("\(kind).sh")], timeout: 60)
        }
    }

    @Test func aNewClusterGetsItsUsersAndAdminsPasswordLast() throws {
        let server = try Server(users: ["admin": ("admin", ["sys-admin", "user-admin"])])
        let passwords = ["admin-secret": "it's a secret, #1", "app-secret": "app pw", "backup-secret": "backup-pw-4711"]
        let result = try server.runJob(Self.spec(Self.users), passwords: passwords)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let users = server.users
        #expect(users["admin"]?.password == passwords["admin-secret"])
        #expect(users["admin"]?.roles == ["read", "sys-admin", "user-admin"])
        #expect(users["app"]?.password == "app pw" && users["app"]?.roles == ["read-write"])
        #expect(users["backup"]?.password == "backup-pw-4711" && users["backup"]?.roles == ["read"])
        #expect(result.stdout.contains("logged in with the default password"), "\(result.stdout)")
        // admin's own changes come last, its password last of all: the login holds to the end.
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.suffix(3) == ["cairn: grant admin read", "cairn: set the password of admin", "cairn: 3 users provisioned"], "\(lines)")
        // No password reaches the log.
        for secret in passwords.values { #expect(!(result.stdout + result.stderr).contains(secret)) }
    }

    /// The operator's TLS sample with admin and a second user on PKI (authMode PKIOnly).
    static func pkiSpec() throws -> String {
        let text = Repo.read(UpstreamSamples.directory.appendingPathComponent("aerospike/tls_cluster_cr.yaml"))
        let users = """
                  - name: admin
                    authMode: PKIOnly
                    roles: [sys-admin, user-admin]
                  - name: reporter
                    authMode: PKIOnly
                    roles: [read]
                  - name: app
                    secretName: app-secret
                    roles: [read-write]
            """
        let old = "      - name: admin\n        secretName: auth-secret\n        roles:\n          - sys-admin\n          - user-admin\n"
        #expect(text.contains(old))
        return text.replacingOccurrences(of: old, with: users + "\n")
    }

    /// PKIOnly users: admin logs in with the client certificate (on a new cluster with the
    /// default password), over TLS; PKI users get a password nobody knows, a new one each run.
    @Test(.enabled(if: UpstreamSamples.available)) func pkiUsersLogInWithTheirCertificateOnly() throws {
        let yaml = try Self.pkiSpec()
        #expect(specErrors(yaml) == [], "\(specErrors(yaml))")
        #expect(specNotes(yaml).contains { $0.contains("PKIOnly users log in with their certificate only") })
        let job = try #require(try render(yaml).first { $0.kind == "Job" && $0.name.contains("-users-") })
        let env = job.body["spec", "template", "spec", "containers"]?.arrayValue?.first?["env"]?.arrayValue ?? []
        #expect(env.contains { $0["name"] == "CAIRN_ADMIN_PKI" && $0["value"] == "1" })
        #expect(!env.contains { $0["name"] == "CAIRN_PASSWORD_ADMIN" })
        #expect(env.contains { $0["name"] == "AEROSPIKE_TLS_CERTFILE" }, "over TLS, with the client certificate")

        // A new cluster: the certificate's user does not exist yet; the default password works.
        let server = try Server(users: ["admin": ("admin", ["sys-admin", "user-admin"])])
        let first = try server.runJob(yaml, passwords: ["app-secret": "app-pw"], extraEnvironment: ["FAKE_CERT_USER=nobody"])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(first.stdout.contains("logged in with the default password"), "\(first.stdout)")
        var users = server.users
        let adminPassword = try #require(users["admin"]?.password)
        #expect(adminPassword != "admin" && adminPassword.count == 48, "the default is replaced by a made-up one: \(adminPassword)")
        #expect(users["reporter"]?.roles == ["read"] && users["reporter"]?.password.count == 48)
        #expect(users["app"]?.password == "app-pw")
        for made in [adminPassword, users["reporter"]?.password ?? ""] { #expect(!(first.stdout + first.stderr).contains(made)) }

        // Later runs log in with the certificate (its common name: admin), and make up new ones.
        let again = try server.runJob(yaml, passwords: ["app-secret": "app-pw"], extraEnvironment: ["FAKE_CERT_USER=admin"])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        #expect(again.stdout.contains("logged in with the client certificate"), "\(again.stdout)")
        users = server.users
        #expect(users["admin"]?.password != adminPassword && users["admin"]?.password.count == 48)

        // A certificate of nobody the server knows, and admin's password unknown: no login, said so.
        let stranger = try server.runJob(yaml, passwords: ["app-secret": "app-pw"], tries: 2, extraEnvironment: ["FAKE_CERT_USER=nobody"])
        #expect(stranger.status == 1)
        #expect(stranger.stderr.contains("could not log in to aerocluster:4333 as admin, with the client certificate nor the default password"),
                "\(stranger.stderr)")
    }

    /// PKI needs the service over mutual TLS, as upstream checks; the Federal Edition takes
    /// PKI users only; a PKI user has no Secret.
    @Test func pkiIsCheckedAsUpstreamChecksIt() throws {
        let plain = Self.spec("      - {name: admin, authMode: PKIOnly, roles: [sys-admin, user-admin]}")
        #expect(specErrors(plain).contains { $0.contains("user admin logs in with a certificate (authMode PKIOnly): the service needs TLS") },
                "\(specErrors(plain))")
        #expect(!specErrors(plain).contains { $0.contains("needs the user admin") }, "the PKI admin is the admin user: \(specErrors(plain))")
        let secret = Self.spec("      - {name: admin, authMode: PKIOnly, secretName: s, roles: [sys-admin, user-admin]}")
        #expect(specErrors(secret).contains { $0.contains("secretName: a PKIOnly user has no password: remove secretName") }, "\(specErrors(secret))")
        guard UpstreamSamples.available else { return }
        let off = try Self.pkiSpec().replacingOccurrences(of: "tls-authenticate-client: any", with: "tls-authenticate-client: false")
        #expect(specErrors(off).map { $0.contains("the servers must ask clients for one (tls-authenticate-client any, or a list of names), not false") }
                == [true], "\(specErrors(off))")
        let old = try Self.pkiSpec().replacingOccurrences(of: "aerospike-server-enterprise:8.1.2.0", with: "aerospike-server-enterprise:8.0.0.1")
        #expect(specErrors(old).map { $0.contains("PKIOnly users need Aerospike Enterprise 8.1 or later (found 8.0.0.1)") } == [true],
                "\(specErrors(old))")
        let federal = try Self.pkiSpec().replacingOccurrences(of: "aerospike-server-enterprise:", with: "aerospike-server-federal:")
        #expect(specErrors(federal).map { $0.contains("users[2]: the Federal Edition has no password logins: every user needs authMode PKIOnly") }
                == [true], "\(specErrors(federal))")
    }

    @Test func anExistingClusterIsBroughtToTheSpecWithoutDroppingUsers() throws {
        let server = try Server(users: [
            "admin": ("old-admin", ["sys-admin", "user-admin", "data-admin"]),
            "app": ("old", ["read", "write"]),
            "someone": ("theirs", ["read"]),
        ])
        let passwords = ["admin-secret": "old-admin", "app-secret": "new", "backup-secret": "b"]
        let result = try server.runJob(Self.spec(Self.users), passwords: passwords)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let users = server.users
        #expect(users["admin"]?.roles == ["read", "sys-admin", "user-admin"], "data-admin revoked, read granted")
        #expect(users["app"]?.password == "new" && users["app"]?.roles == ["read-write"])
        #expect(users["backup"]?.roles == ["read"])
        // A user the spec does not name is left as it is (said in the note).
        #expect(users["someone"]?.password == "theirs" && users["someone"]?.roles == ["read"])
        #expect(!result.stdout.contains("default password"))
        // Run again: nothing to grant or revoke, only the passwords are set again.
        let again = try server.runJob(Self.spec(Self.users), passwords: passwords)
        #expect(again.status == 0)
        #expect(!again.stdout.contains("grant") && !again.stdout.contains("revoke") && !again.stdout.contains("create"), "\(again.stdout)")
    }

    @Test func aPasswordAsadmCannotTakeChangesNothingAndSaysWhose() throws {
        let server = try Server(users: ["admin": ("admin", ["sys-admin", "user-admin"])])
        for bad in ["semi;colon", " leading", "", #"back\slash"#, "roles"] {
            let result = try server.runJob(Self.spec(Self.users), passwords: ["admin-secret": "fine", "app-secret": bad, "backup-secret": "b"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("cairn: the password of app cannot be given to asadm"), "\(result.stderr)")
            #expect(server.asadmCalls == 0, "nothing was sent to the server")
            #expect(server.users.keys.sorted() == ["admin"])
        }
    }

    @Test func aClusterItCannotLogInToIsTriedABoundedNumberOfTimesThenReported() throws {
        let server = try Server(users: ["admin": ("someone-else-changed-it", ["sys-admin", "user-admin"])])
        let result = try server.runJob(Self.spec(Self.users), passwords: ["admin-secret": "mine", "app-secret": "a", "backup-secret": "b"], tries: 3)
        #expect(result.status == 1)
        #expect(result.stderr.contains("could not log in to aero:3000 as admin, with its Secret's password nor the default one, after 3 tries"),
                "\(result.stderr)")
        #expect(server.asadmCalls == 6, "both passwords, three times")
        #expect(!result.stderr.contains("mine"))
    }

    @Test func aFailedCommandStopsTheJobWithAsadmsErrorAndNoPassword() throws {
        let server = try Server(users: ["admin": ("admin", ["sys-admin", "user-admin"])])
        // "nobody" holds a role name the stand-in refuses, as a server refuses an unknown one.
        let yaml = Self.spec(Self.users).replacingOccurrences(of: "[read-write]", with: "[read-write-udf]")
        try server.setUsers(["admin": ("adm1n-pw", ["sys-admin", "user-admin"]), "app": ("x", ["read"])])
        let fake = try String(contentsOfFile: server.dir.file("asadm"), encoding: .utf8)
            .replacingOccurrences(of: "roles = set(users[w[4]][\"roles\"])",
                                  with: "roles = set(users[w[4]][\"roles\"])\n    if 'read-write-udf' in w: sys.stderr.write('ERROR: Failed to grant roles : Invalid role. (logged in with ' + password + ')\\n'); sys.exit(2)")
        try writeExecutable(fake, to: server.dir.file("asadm"))
        let result = try server.runJob(yaml, passwords: ["admin-secret": "adm1n-pw", "app-secret": "a", "backup-secret": "b"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("ERROR: Failed to grant roles : Invalid role."), "\(result.stderr)")
        #expect(result.stderr.contains("cairn: grant app read-write-udf failed (asadm exit 2)"), "\(result.stderr)")
        // admin comes last, so it was never changed.
        #expect(server.users["admin"]?.password == "adm1n-pw")
        #expect(!result.stderr.contains("adm1n-pw"))
    }

    /// A cluster whose service listens over TLS only (the operator's tls sample): asadm connects
    /// to `host:tls-name:port` with the CA and client certificate of operatorClientCert's Secret.
    @Test func overTLSAsadmIsGivenTheTLSNameTheCAAndTheClientCertificate() throws {
        guard UpstreamSamples.available else { return }
        let text = Repo.read(UpstreamSamples.directory.appendingPathComponent("aerospike/tls_cluster_cr.yaml"))
        let job = try #require(try render(text).first { $0.kind == "Job" })
        let volumes = job.body["spec", "template", "spec", "volumes"]?.arrayValue ?? []
        #expect(volumes.contains { $0["name"] == "tls" && $0["secret", "secretName"] == "aerospike-secret" }, "\(volumes)")
        let server = try Server(users: ["admin": ("admin", ["sys-admin", "user-admin"])])
        let result = try server.runJob(text, passwords: ["auth-secret": "tls-admin-pw"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(server.users["admin"]?.password == "tls-admin-pw")
        let calls = try String(contentsOfFile: server.dir.file("log"), encoding: .utf8).split(separator: "\n")
            .map { (try? JSONValue.parse(Array($0.utf8)))?.arrayValue?.compactMap(\.stringValue) ?? [] }
        #expect(!calls.isEmpty)
        for args in calls {
            #expect(Array(args.prefix(10)) == ["-h", "aerocluster:aerospike-a-0.test-runner:4333", "--tls-enable",
                                               "--tls-cafile", "/etc/cairn/aerospike-tls/cacert.pem",
                                               "--tls-certfile", "/etc/cairn/aerospike-tls/svc_cluster_chain.pem",
                                               "--tls-keyfile", "/etc/cairn/aerospike-tls/svc_key.pem", args.count > 9 ? args[9] : ""],
                    "\(args)")
            #expect(!args.contains("-p"))
        }
    }

    /// Strong consistency (the operator's sc_mode sample): once the servers observe every node,
    /// the roster is set to them less rosterNodeBlockList, with their racks, and reclustered;
    /// a roster that is right is left alone; nodes that never appear stop the Job with a reason.
    @Test func theRosterJobSetsTheObservedNodesLessTheBlockedOnes() throws {
        guard UpstreamSamples.available else { return }
        let text = Repo.read(UpstreamSamples.directory.appendingPathComponent("aerospike/sc_mode_cluster_cr.yaml"))
        #expect(specErrors(text) == [])
        let observed = ["1A0@1", "1A1@1", "2A0@2", "2A1@2"]
        let server = try Server(users: [:])
        try server.setUsers(["admin": ("sc-admin-pw", ["sys-admin", "user-admin"])], rosters: ["test": ([], observed)])
        let result = try server.runJob(text, passwords: ["auth-secret": "sc-admin-pw"], job: "roster")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(server.rosters["test"] == ["1A1@1", "2A0@2", "2A1@2"], "1A0 is blocked: \(result.stdout)")
        #expect(result.stdout.contains("cairn: namespace test: stage the roster 1A1@1,2A0@2,2A1@2\ncairn: recluster\n"), "\(result.stdout)")
        // Run again: nothing to do.
        let again = try server.runJob(text, passwords: ["auth-secret": "sc-admin-pw"], job: "roster")
        #expect(again.status == 0 && again.stdout.contains("cairn: namespace test: roster 1A1@1,2A0@2,2A1@2\n") && !again.stdout.contains("stage"),
                "\(again.stdout)")
        // On a new cluster the users Job changes admin's password while this one runs: it logs
        // in again with the Secret's password and goes on.
        let rotating = try Server(users: [:])
        try rotating.setUsers(["admin": ("admin", ["sys-admin", "user-admin"])], rosters: ["test": ([], observed)])
        let rotated = try rotating.runJob(text, passwords: ["auth-secret": "sc-admin-pw"], job: "roster", extraEnvironment: ["FAKE_ROTATE=2:sc-admin-pw"])
        #expect(rotated.status == 0 && rotating.rosters["test"] == ["1A1@1", "2A0@2", "2A1@2"], "\(rotated.stdout)\(rotated.stderr)")
        #expect(rotated.stdout.contains("logged in with the default password"), "the first login was the default: \(rotated.stdout)")
        // A node the servers never observe: a bounded wait, then the reason, and no roster change.
        try server.setUsers(["admin": ("sc-admin-pw", ["sys-admin", "user-admin"])], rosters: ["test": ([], ["1A1@1", "2A0@2"])])
        let missing = try server.runJob(text, passwords: ["auth-secret": "sc-admin-pw"], tries: 2, job: "roster")
        #expect(missing.status == 1 && missing.stderr.contains("cairn: namespace test: the servers do not observe node(s) 2A1 after 2 tries"),
                "\(missing.stderr)")
        #expect(server.rosters["test"] == [])
        // Without security there is no login.
        let plain = text.replacingOccurrences(of: "    security: {}\n", with: "")
        let start = try #require(plain.range(of: "  aerospikeAccessControl:\n"))
        let end = try #require(plain.range(of: "\n\n", range: start.upperBound..<plain.endIndex))
        let open = plain.replacingCharacters(in: start.lowerBound..<end.upperBound, with: "")
        #expect(specErrors(open) == [])
        let noLogin = try Server(users: [:])
        try noLogin.setUsers([:], rosters: ["test": (["1A1@1"], observed)])
        let result2 = try noLogin.runJob(open, passwords: [:], job: "roster")
        #expect(result2.status == 0, "\(result2.stdout)\(result2.stderr)")
        #expect(noLogin.rosters["test"] == ["1A1@1", "2A0@2", "2A1@2"])
        // A Community server has no strong consistency; a block list holds node ids.
        let community = text.replacingOccurrences(of: "aerospike-server-enterprise:8.1.2.0", with: "aerospike-server:8.1.2.0")
            .replacingOccurrences(of: "      feature-key-file: /etc/aerospike/secret/features.conf\n", with: "")
        #expect(specErrors(community).map { $0.contains("strong-consistency: strong consistency needs an Enterprise server") } == [true],
                "\(specErrors(community))")
        #expect(specErrors(text.replacingOccurrences(of: "    - 1A0", with: "    - aerocluster-1-0")).map {
            $0.contains("spec.rosterNodeBlockList[0]: 'aerocluster-1-0' is not a node id") } == [true])
        // Without racks, the pods are rack 0's: node ids 0a0, 0a1 that the servers print as A0, A1.
        let rackless = open.replacingOccurrences(of: "  rackConfig:\n    namespaces:\n      - test\n    racks:\n      - id: 1\n      - id: 2\n", with: "")
            .replacingOccurrences(of: "  rosterNodeBlockList:\n    - 1A0\n", with: "  rosterNodeBlockList: [00a3]\n")
        #expect(specErrors(rackless) == [], "\(specErrors(rackless))")
        let roster = try #require(try render(rackless).first { $0.kind == "ConfigMap" && $0.body["data", "roster"] != nil })
        #expect(roster.body["data", "roster"] == "test A0 A1 A2 A3\n" && roster.body["data", "blocked"] == "A3\n", "\(roster.body)")
        let zero = try Server(users: [:])
        try zero.setUsers([:], rosters: ["test": ([], ["A0", "A1", "A2", "A3"])])
        let result3 = try zero.runJob(rackless, passwords: [:], job: "roster")
        #expect(result3.status == 0, "\(result3.stdout)\(result3.stderr)")
        #expect(zero.rosters["test"] == ["A0", "A1", "A2"])
    }

    /// The Job is named from its content: a change of users or roles gives a new Job, the same
    /// spec the same one; the pods carry none of the servers' labels.
    @Test func theJobIsNamedFromItsContentAndStaysOutOfTheServersSelectors() throws {
        let objects = try render(Self.spec(Self.users))
        let job = try #require(objects.first { $0.kind == "Job" })
        let name = try #require(job.body["metadata", "name"]?.stringValue)
        #expect(name.hasPrefix("aero-users-") && name.count == "aero-users-".count + 10)
        #expect(try render(Self.spec(Self.users)).first { $0.kind == "Job" }?.body["metadata", "name"]?.stringValue == name)
        let changed = try render(Self.spec(Self.users.replacingOccurrences(of: "[read]}", with: "[read, truncate]}")))
        #expect(changed.first { $0.kind == "Job" }?.body["metadata", "name"]?.stringValue != name)
        let podLabels = job.body["spec", "template", "metadata", "labels"]?.objectValue
        #expect(podLabels?["app"] == nil && podLabels?["aerospike.com/cr"] == nil, "\(String(describing: podLabels))")
        #expect(job.body["spec", "template", "spec", "automountServiceAccountToken"] == false)
        let files = try #require(objects.first { $0.kind == "ConfigMap" && $0.body["metadata", "name"]?.stringValue == name })
        #expect(files.body["immutable"] == true)
        #expect(files.body["data", "users"] == "app read-write\nbackup read\nadmin read sys-admin user-admin\n")
        // No Job for a cluster without users.
        let plain = ValidationTests.aerospike("  aerospikeConfig:\n\(ValidationTests.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(try !render(plain).contains { $0.kind == "Job" })
    }
}
