import ClusterSpecs
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import JSON
import KubeAPI
import Reconcile
import Render
import Testing

/// Debian's PostgreSQL server on a loopback port, in a data directory of its own: password
/// (SCRAM) authentication over TCP, as Spilo asks of every client that is not local, and every
/// statement in its log. As root (CI), the server runs as the `postgres` user, since PostgreSQL
/// refuses to run as root.
final class PostgresServer {
    private(set) var port = freePort()
    let dir = TemporaryDirectory("cairn-pg")
    let password = "super-\(UUID().uuidString.prefix(8))"
    var log: String { dir.file("postgres.log") }
    private var server: ServerProcess?
    private let asUser: [String]

    /// The newest server installed (`/usr/lib/postgresql/<major>/bin`).
    static var binaries: String? {
        let base = "/usr/lib/postgresql"
        let majors = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap(Int.init).sorted()
        return majors.reversed().map { "\(base)/\($0)/bin" }.first { FileManager.default.fileExists(atPath: "\($0)/initdb") }
    }

    init() throws {
        guard let bin = Self.binaries else {
            throw CommandFailed(description: "no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)")
        }
        asUser = getuid() == 0 ? ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] : []
        if getuid() == 0 { _ = try run("/bin/chown", ["postgres:postgres", dir.path]) }
        try password.write(toFile: dir.file("pwfile"), atomically: true, encoding: .utf8)
        if getuid() == 0 { _ = try run("/bin/chown", ["postgres:postgres", dir.file("pwfile")]) }
        let initdbArgv = asUser + [
            "\(bin)/initdb", "-D", dir.file("data"), "-U", "postgres", "--pwfile=\(dir.file("pwfile"))", "-A", "scram-sha-256", "-E", "UTF8",
            "--no-sync",
        ]
        let initdb = try run(initdbArgv[0], Array(initdbArgv.dropFirst()))
        guard initdb.status == 0 else { throw CommandFailed(description: "initdb failed: \(initdb.stderr)") }
        // A free port can be taken by another test before the server binds it: then another.
        for attempt in 1...3 {
            let server = [
                "\(bin)/postgres", "-D", dir.file("data"), "-p", "\(port)", "-c", "listen_addresses=127.0.0.1",
                "-c", "unix_socket_directories=\(dir.path)", "-c", "log_statement=all", "-c", "fsync=off",
            ]
            let argv = asUser + server
            self.server = try ServerProcess("postgres", argv[0], Array(argv.dropFirst()), log: log)
            if waitForPort(port, seconds: 30) { return }
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            self.server?.stop()
            guard attempt < 3, text.contains("Address already in use") else {
                throw CommandFailed(description: "postgres did not listen on \(port): \(text)")
            }
            port = freePort()
        }
    }

    /// Runs `sql` with psql as `user` (the superuser by default); psql's result.
    func psql(_ sql: String, user: String = "postgres", password: String? = nil, database: String = "postgres") throws -> ProcessResult {
        try run("/usr/bin/env", ["PGPASSWORD=\(password ?? self.password)", "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                 "-h", "127.0.0.1", "-p", "\(port)", "-U", user, "-d", database, "-c", sql])
    }

    /// One value (first row), or an error with psql's message.
    func value(_ sql: String, database: String = "postgres") throws -> String {
        let r = try psql(sql, database: database)
        guard r.status == 0 else { throw CommandFailed(description: "\(sql): \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop() { server?.stop() }
    deinit { stop() }
}

/// The roles and databases of a PostgreSQL spec inside a real PostgreSQL: the rendered Job's
/// own command and script, run with psql against Debian's server as the Job runs them against
/// the master.
@Suite("PostgreSQL roles and databases", .serialized)
struct PostgresRolesTests {
    static let spec = """
        apiVersion: acid.zalan.do/v1
        kind: postgresql
        metadata: {name: acid-roles, namespace: db}
        spec:
          teamId: acid
          numberOfInstances: 1
          volume: {size: 1Gi}
          postgresql: {version: "16"}
          users:
            zalando: [superuser, createdb]
            foo_user: []
          databases:
            foo: zalando
          preparedDatabases:
            bar:
              defaultUsers: true
              extensions:
                pgcrypto: public
                hstore: history
              schemas:
                data: {}
                history:
                  defaultRoles: true
                  defaultUsers: true
        """

    /// The Job of a rendering, run as its pod would run it: the command with the ConfigMap's
    /// files where the pod mounts them, the Job's environment with each Secret's password, the
    /// master at the test server's address.
    static func runJob(_ yaml: String, on server: PostgresServer, passwords: [String: String]) throws -> ProcessResult {
        let objects = try render(yaml)
        guard let job = objects.first(where: { $0.kind == "Job" }),
              let config = objects.first(where: { $0.kind == "ConfigMap" && $0.name == job.name }),
              let container = job.body["spec", "template", "spec", "containers"]?.arrayValue?.first,
              let command = container["command"]?.arrayValue?.compactMap(\.stringValue) else {
            throw CommandFailed(description: "no Job with its ConfigMap was rendered")
        }
        let mount = TemporaryDirectory("cairn-sql")
        for (key, value) in config.body["data"]?.objectValue?.entries ?? [] {
            try (value.stringValue ?? "").write(toFile: mount.file(key), atomically: true, encoding: .utf8)
        }
        var env: [String] = []
        for variable in container["env"]?.arrayValue ?? [] {
            guard let name = variable["name"]?.stringValue else { continue }
            var value = variable["value"]?.stringValue
            if let secret = variable["valueFrom", "secretKeyRef", "name"]?.stringValue {
                let user = String(secret.prefix { $0 != "." })
                value = user == "postgres" ? server.password : passwords[user]
                guard value != nil else { throw CommandFailed(description: "the Job reads a Secret the test has no password for: \(secret)") }
            }
            switch name {
            case "PGHOST": value = "127.0.0.1"
            case "PGPORT": value = "\(server.port)"
            default: break
            }
            env.append("\(name)=\(value ?? "")")
        }
        let script = command[2].replacingOccurrences(of: "/etc/cairn/sql", with: mount.path)
        return try run("/usr/bin/env", ["-i", "PATH=\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")"] + env
                       + [command[0], command[1], script], timeout: 120)
    }

    /// Secret name prefix (user with '-') -> password; some with quotes and dollars.
    static func passwords(_ roles: [String]) -> [String: String] {
        Dictionary(uniqueKeysWithValues: roles.map { ($0.replacingOccurrences(of: "_", with: "-"), "pw'\($0)$\"\(token())") })
    }

    /// The part of a test password with no quote in it: what a statement would carry as it is.
    static func token() -> String { UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }
    static func tokens(_ passwords: [String: String]) -> [String] {
        passwords.values.map { String($0.split(separator: "\"").last ?? "") }
    }

    static let loginRoles = ["zalando", "foo_user", "bar_owner_user", "bar_reader_user", "bar_writer_user",
                             "bar_history_owner_user", "bar_history_reader_user", "bar_history_writer_user"]

    @Test func theJobMakesUsersDatabasesAndPreparedDatabasesAsUpstreamDoes() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        // Spilo's own admin role, which the upstream operator makes the admin of the roles it creates.
        _ = try server.value("CREATE ROLE admin CREATEDB NOLOGIN")
        let passwords = Self.passwords(Self.loginRoles)
        let first = try Self.runJob(Self.spec, on: server, passwords: passwords)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("roles and databases are as the spec says"))

        // Users: LOGIN by default, the flags given, Spilo's admin as their admin.
        #expect(try server.value("SELECT rolcanlogin, rolsuper, rolcreatedb FROM pg_roles WHERE rolname = 'zalando'") == "t|t|t")
        #expect(try server.value("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'foo_user'") == "t|f")
        #expect(try server.value("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'foo'") == "zalando")
        #expect(try server.value("""
            SELECT m.admin_option FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member
            WHERE g.rolname = 'foo_user' AND r.rolname = 'admin'
            """) == "t")
        // Each login role logs in with its Secret's password.
        for role in Self.loginRoles {
            let r = try server.psql("SELECT current_user", user: role, password: passwords[role.replacingOccurrences(of: "_", with: "-")])
            #expect(r.status == 0 && r.stdout.contains(role), "\(role): \(r.stderr)")
        }
        #expect(try server.psql("SELECT 1", user: "foo_user", password: "wrong").status != 0)

        // The prepared database: owned by its NOLOGIN owner, schemas owned by their owners,
        // extensions in their schemas, search paths.
        #expect(try server.value("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'bar'") == "bar_owner")
        #expect(try server.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'bar_owner'") == "f")
        #expect(try server.value("SELECT string_agg(nspname || ':' || pg_get_userbyid(nspowner), ',' ORDER BY nspname) FROM pg_namespace "
                                 + "WHERE nspname IN ('data', 'history')", database: "bar") == "data:bar_data_owner,history:bar_history_owner")
        #expect(try server.value("SELECT string_agg(e.extname || ':' || n.nspname, ',' ORDER BY e.extname) FROM pg_extension e "
                                 + "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql'", database: "bar")
                == "hstore:history,pgcrypto:public")
        let path = try server.psql("SHOW search_path", user: "bar_reader_user",
                                   password: passwords["bar-reader-user"], database: "bar").stdout
        #expect(path.trimmingCharacters(in: .whitespacesAndNewlines) == "\"$user\", data, history")

        // Default privileges, for real: what the owner creates, the reader reads and the writer writes.
        func asRole(_ role: String, _ sql: String) throws -> ProcessResult {
            try server.psql(sql, user: role, password: passwords[role.replacingOccurrences(of: "_", with: "-")], database: "bar")
        }
        let create = try asRole("bar_owner_user", "CREATE TABLE data.t (x int); INSERT INTO data.t VALUES (1)")
        #expect(create.status == 0, "\(create.stderr)")
        #expect(try asRole("bar_reader_user", "SELECT count(*) FROM data.t").stdout.contains("1"))
        #expect(try asRole("bar_reader_user", "INSERT INTO data.t VALUES (2)").stderr.contains("permission denied"))
        #expect(try asRole("bar_writer_user", "INSERT INTO data.t VALUES (2)").status == 0)
        let history = try asRole("bar_history_owner_user", "CREATE TABLE history.h (x int)")
        #expect(history.status == 0, "\(history.stderr)")
        #expect(try asRole("bar_history_writer_user", "INSERT INTO history.h VALUES (1)").status == 0)
        #expect(try asRole("bar_history_reader_user", "INSERT INTO history.h VALUES (1)").stderr.contains("permission denied"))

        // No password reached the server's statement log or the Job's output; statements did.
        let log = try String(contentsOfFile: server.log, encoding: .utf8)
        #expect(log.contains("SCRAM-SHA-256$4096:"), "the log holds the statements (with verifiers)")
        for token in Self.tokens(passwords) {
            #expect(token.count == 32 && !log.contains(token) && !first.stdout.contains(token) && !first.stderr.contains(token))
        }

        // Run again: nothing fails, nothing is added twice, the passwords still work.
        let roles = try server.value("SELECT count(*) FROM pg_roles")
        let members = try server.value("SELECT count(*) FROM pg_auth_members")
        let again = try Self.runJob(Self.spec, on: server, passwords: passwords)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try server.value("SELECT count(*) FROM pg_roles") == roles)
        #expect(try server.value("SELECT count(*) FROM pg_auth_members") == members)
        #expect(try server.psql("SELECT 1", user: "foo_user", password: passwords["foo-user"]).status == 0)
    }

    /// A changed spec only adds: a user taken out stays (with its data and grants), a flag taken
    /// out stays set until `no<flag>` says otherwise, `nologin` applies to new roles only, a
    /// role that was there before keeps its memberships, and a database's owner follows the
    /// spec. (No `admin` role here: roles are created without one.)
    @Test func aChangedSpecOnlyAddsAndNothingIsDropped() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        // A role someone made before, a member of a role named admin: granting admin ADMIN on it
        // would fail ("is a member of role admin"), and making it NOLOGIN would lock its app out.
        _ = try server.value("CREATE ROLE admin NOLOGIN")
        _ = try server.value("CREATE ROLE legacy LOGIN")
        _ = try server.value("GRANT admin TO legacy")
        let spec = { (users: String, owner: String) in
            PostgresRolesRenderTests.spec("  users:\n\(users)\n  databases: {app: \(owner)}", name: "acid-change")
        }
        let passwords = Self.passwords(["app_user", "old_user", "other", "legacy", "locked"])
        let first = try Self.runJob(spec("    app_user: [createdb]\n    old_user: []\n    other: []\n    legacy: [nologin]", "app_user"),
                                    on: server, passwords: passwords)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try server.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'legacy'") == "t", "an existing role keeps LOGIN")
        #expect(try server.value("SELECT count(*) FROM pg_auth_members WHERE roleid = 'legacy'::regrole") == "0",
                "a role that was there gets no admin")
        let second = try Self.runJob(spec("    app_user: []\n    other: [nologin]\n    locked: [nologin]", "other"), on: server, passwords: passwords)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try server.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'old_user'") == "t")
        #expect(try server.value("SELECT rolcreatedb FROM pg_roles WHERE rolname = 'app_user'") == "t")
        #expect(try server.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'other'") == "t")
        #expect(try server.value("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'locked'") == "f", "a new role is made NOLOGIN")
        #expect(try server.value("SELECT count(*) FROM pg_auth_members WHERE roleid = 'locked'::regrole") == "1",
                "a new role gets Spilo's admin as its admin")
        #expect(try server.value("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'") == "other")
        let third = try Self.runJob(spec("    app_user: [nocreatedb]\n    other: [nologin]", "other"), on: server, passwords: passwords)
        #expect(third.status == 0, "\(third.stderr)")
        #expect(try server.value("SELECT rolcreatedb FROM pg_roles WHERE rolname = 'app_user'") == "f")
    }
}

/// What the rendering of roles and databases looks like from outside the database.
@Suite("PostgreSQL roles and databases, rendered")
struct PostgresRolesRenderTests {
    static func spec(_ extra: String, name: String = "acid-r") -> String {
        """
        apiVersion: acid.zalan.do/v1
        kind: postgresql
        metadata: {name: \(name), namespace: db}
        spec:
          teamId: acid
          numberOfInstances: 2
          volume: {size: 1Gi}
          postgresql: {version: "16"}
        \(extra)
        """
    }

    func job(_ yaml: String) throws -> RenderedObject? {
        try render(yaml).first { $0.kind == "Job" }
    }

    @Test func theJobIsNamedByItsContentAndItsPodsAreNoMembersOfTheCluster() throws {
        let users = "  users: {app: []}"
        let a = try #require(try job(Self.spec(users)))
        #expect(a.name.hasPrefix("acid-r-sql-") && a.name.count == "acid-r-sql-".count + 10)
        // Another replica count: the same Job. Another user: another Job.
        #expect(try job(Self.spec(users).replacingOccurrences(of: "numberOfInstances: 2", with: "numberOfInstances: 3"))?.name == a.name)
        #expect(try job(Self.spec("  users: {app: [], other: []}"))?.name != a.name)
        // Nothing to do inside the database: no Job, no script.
        let none = try render(Self.spec(""))
        #expect(!none.contains { $0.kind == "Job" || $0.name.contains("-sql-") })
        // The script has the Job's name and is immutable: no Job runs another generation's script.
        let script = try #require(try render(Self.spec(users)).first { $0.kind == "ConfigMap" && $0.name == a.name })
        #expect(script.body["immutable"] == true)
        #expect(a.body["spec", "template", "spec", "volumes"] == [["name": "sql", "configMap": ["name": .string(a.name), "defaultMode": 420]]])
        #expect(a.body["spec", "template", "spec", "restartPolicy"] == "Never", "a failed pod stays for its log")
        // The pods carry none of the labels Spilo's Services, PDB and Patroni select on.
        let labels = a.body["spec", "template", "metadata", "labels"]?.objectValue?.keys ?? []
        #expect(!labels.contains("application") && !labels.contains("cluster-name") && !labels.contains("spilo-role"))
        // A long cluster name still gives a name the Job controller can put in a label.
        let long = String(repeating: "a", count: 53)
        #expect((try job(Self.spec(users, name: long))?.name.count ?? 99) <= 63)
    }

    @Test func preparedLoginRolesGetSecretsAndDefaultsFollowUpstream() throws {
        let objects = try render(Self.spec("  preparedDatabases: {}"))
        let script = try #require(objects.first { $0.kind == "ConfigMap" && $0.name.contains("-sql-") }?.body["data", "roles.sql"]?.stringValue)
        // `{}`: one database named after the cluster, with a `data` schema and no LOGIN roles.
        #expect(script.contains("CREATE DATABASE \"acid_r\" OWNER \"acid_r_owner\""))
        #expect(script.contains("CREATE SCHEMA IF NOT EXISTS \"data\" AUTHORIZATION \"acid_r_data_owner\""))
        #expect(!objects.contains { $0.kind == "Secret" && $0.name.contains("-user.") })
        let users = try render(Self.spec("  preparedDatabases: {shop: {defaultUsers: true}}"))
        let secrets = Set(users.filter { $0.kind == "Secret" }.map(\.name))
        #expect(secrets.isSuperset(of: ["shop-owner-user.acid-r.credentials.postgresql.acid.zalan.do",
                                        "shop-reader-user.acid-r.credentials.postgresql.acid.zalan.do",
                                        "shop-writer-user.acid-r.credentials.postgresql.acid.zalan.do"]))
        #expect(!secrets.contains("shop-owner.acid-r.credentials.postgresql.acid.zalan.do"), "NOLOGIN roles get no Secret")
    }

    @Test func namesThatCannotWorkAreRefusedWithTheReason() {
        func errors(_ extra: String) -> String { specErrors(Self.spec(extra)).joined(separator: "\n") }
        #expect(errors("  users: {admin: []}").contains("spec.users.admin: 'admin' is created by Spilo itself"))
        #expect(errors("  users: {shop_owner: []}\n  preparedDatabases: {shop: {}}")
            .contains("user 'shop_owner' is also a role of preparedDatabases.shop"))
        #expect(errors("  users: {a: []}\n  databases: {shop: a}\n  preparedDatabases: {shop: {}}").contains("database 'shop' is also in preparedDatabases"))
        #expect(errors("  preparedDatabases: {shop: {extensions: {pgcrypto: nowhere}}}")
            .contains("spec.preparedDatabases.shop.extensions.pgcrypto: schema 'nowhere' is neither public nor one of this database's schemas (data)"))
        #expect(errors("  preparedDatabases: {shop: {schemas: {s: {defaultRoles: false, defaultUsers: true}}}}")
            .contains("defaultUsers: needs defaultRoles"))
        #expect(errors("  preparedDatabases: {\(String(repeating: "d", count: 40)): {schemas: {\(String(repeating: "s", count: 20)): {}}}}")
            .contains("would be longer than PostgreSQL's 63 bytes"))
        #expect(errors("  preparedDatabases: {Shop: {}}").contains("'Shop' is not a valid database name"))
        #expect(errors("  preparedDatabases: {shop: {schemas: {pg_x: {}}}}").contains("'pg_x' is not a valid schema name"))
        #expect(errors("  users: {app: [login, superuser, nosuperuser]}").contains("spec.users.app: 'superuser' and 'nosuperuser' contradict each other"))
        #expect(errors("  users: {app_: []}").contains("user 'app_' would have the Secret name 'app-.acid-r.credentials.postgresql.acid.zalan.do'"))
        #expect(errors("  preparedDatabases: {_shop: {defaultUsers: true}}").contains("would have the Secret name '-shop-owner-user.acid-r"))
    }
}

/// The roles Job against the real control plane (with its Job controller): applied, unchanged
/// on the next pass, replaced when the spec changes, and a failed one degrades its cluster
/// until someone deletes it. (No kubelet runs here: the failure is written as the Job
/// controller writes it.)
@Suite("PostgreSQL roles Job, applied", .enabled(if: !ControlPlane.skip))
struct PostgresRolesJobTests {
    let plane: ControlPlane
    let ns = "pgroles-\(UInt32.random(in: 0...UInt32.max))"
    let dir = TemporaryDirectory("cairn-pgroles")

    init() throws {
        plane = try ControlPlane.shared()
    }

    func apply(_ users: String) throws -> (ProcessResult, JSONValue?, [String: String]) {
        try PostgresRolesRenderTests.spec("  users: {\(users)}", name: "pg").replacingOccurrences(of: "namespace: db", with: "namespace: \(ns)")
            .write(toFile: dir.file("pg.yaml"), atomically: true, encoding: .utf8)
        let r = try run(CLITests.binary, ["apply", dir.path, "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns, "-o", "json"])
        let json = try? JSONValue.parse(Array(r.stdout.utf8))
        return (r, json, IsolationTests.actions(IsolationTests.cluster(json, "\(ns)/pg")))
    }

    static func jobs(_ actions: [String: String]) -> [String: String] {
        actions.filter { $0.key.hasPrefix("Job/") }
    }

    @Test func replacedWhenTheSpecChangesAndAFailedOneDegradesItsCluster() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        let (first, _, created) = try apply("app: []")
        #expect(first.status == 0, "\(first.stderr)")
        let firstJob = try #require(Self.jobs(created).first { $0.value == "created" }?.key, "\(created)")
        let (_, _, again) = try apply("app: []")
        #expect(again.values.allSatisfy { $0 == "unchanged" }, "the server's defaults of a Job are no difference: \(again)")

        // Another user: a new Job, the old one pruned.
        let (_, _, changed) = try apply("app: [], other: []")
        let jobs = Self.jobs(changed)
        #expect(jobs[firstJob] == "pruned", "\(jobs)")
        let secondJob = try #require(jobs.first { $0.value == "created" }?.key, "\(jobs)")
        let name = String(secondJob.split(separator: "/").last!)
        let ref = ObjectReference(apiVersion: "batch/v1", kind: "Job", namespace: ns, name: name)
        // The Job controller made its pod, which carries none of Spilo's labels.
        var pods: [JSONValue] = []
        for _ in 0..<300 where pods.isEmpty {
            pods = try await client.list(apiVersion: "v1", kind: "Pod", namespace: ns, labelSelector: "job-name=\(name)")
            if pods.isEmpty { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(!pods.isEmpty, "the Job controller made no pod for \(name)")
        #expect(pods.allSatisfy { $0["metadata", "labels", "application"] == nil && $0["metadata", "labels", "cluster-name"] == nil })
        #expect(try await client.list(apiVersion: "v1", kind: "Pod", namespace: ns, labelSelector: "application=spilo,cluster-name=pg")
            .allSatisfy { $0["metadata", "labels", "job-name"] == nil })

        // Its pod fails, as a kubelet reports it, and the Job controller counts it.
        // (The controller may replace a pod it made twice from a stale cache: the one there now.)
        let failedStatus: JSONValue = ["status": [
            "phase": "Failed",
            "containerStatuses": [[
                "name": "sql", "ready": false, "restartCount": 0, "image": "ghcr.io/zalando/spilo-17:4.0-p2", "imageID": "",
                "state": ["terminated": ["exitCode": 3, "reason": "Error"]],
            ]],
        ]]
        var patched = false
        for _ in 0..<300 where !patched {
            let current = try await client.list(apiVersion: "v1", kind: "Pod", namespace: ns, labelSelector: "job-name=\(name)")
            if let pod = current.first?["metadata", "name"]?.stringValue,
               (try? await client.patchStatus(ObjectReference(apiVersion: "v1", kind: "Pod", namespace: ns, name: pod), failedStatus)) != nil {
                patched = true
            } else {
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
        try #require(patched, "no pod of \(name) to fail")
        var counted = false
        for _ in 0..<150 where !counted {
            counted = (try await client.get(ref)["status", "failed"]?.intValue ?? 0) >= 1
            if !counted { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(counted, "the Job controller did not count the failed pod of \(name)")
        // The six further pods would take the controller about 10 minutes of backoff: its final
        // word is written as it writes it, until it holds (a sync under way may overwrite it once).
        var finished = false
        for _ in 0..<20 where !finished {
            _ = try await client.patchStatus(ref, ["status": ["conditions": [[
                "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit",
                "lastProbeTime": "2026-12-01T00:00:00Z", "lastTransitionTime": "2026-12-01T00:00:00Z",
            ]]]])
            try await Task.sleep(nanoseconds: 2_000_000_000)
            finished = JobState.failure(try await client.get(ref)) != nil
        }
        #expect(finished, "\(name) never read as failed")
        let (failed, json, _) = try apply("app: [], other: []")
        let cluster = IsolationTests.cluster(json, "\(ns)/pg")
        #expect(cluster?["phase"] == "Degraded", "\(cluster?.canonicalJSON() ?? failed.stdout)")
        #expect(cluster?["reasons"]?.arrayValue?.contains { $0.stringValue?.contains("Job \(name) failed (BackoffLimitExceeded") == true
                                                              && $0.stringValue?.contains("delete the Job") == true } == true)
        #expect(failed.status != 0, "a degraded cluster needs a person")

        // Deleted: the next pass runs it again.
        try await client.delete(ref, propagation: .background)
        for _ in 0..<100 where (try? await client.get(ref)) != nil { try await Task.sleep(nanoseconds: 100_000_000) }
        let (_, _, rerun) = try apply("app: [], other: []")
        #expect(Self.jobs(rerun)[secondJob] == "created", "\(rerun)")
    }
}
