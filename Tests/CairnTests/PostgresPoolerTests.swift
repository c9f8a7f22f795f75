import ClusterSpecs
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import JSON
import Render
import Testing

/// The Zalando operator's connection pooler, rendered: a PgBouncer Deployment and Service per
/// role, the pooler's role and Secret, and its lookup function.
@Suite("PostgreSQL connection pooler, rendered")
struct PostgresPoolerRenderTests {
    static func spec(_ extra: String, name: String = "acid-p") -> String {
        PostgresRolesRenderTests.spec(extra, name: name)
    }

    func object(_ objects: [RenderedObject], _ kind: String, _ name: String) throws -> RenderedObject {
        try #require(objects.first { $0.kind == kind && $0.name == name }, "no \(kind) \(name) among \(objects.map { "\($0.kind)/\($0.name)" })")
    }

    @Test func theFlagsTurnOnThePoolersAsUpstreamReadsThem() throws {
        func poolers(_ extra: String) throws -> [String] {
            try render(Self.spec(extra)).filter { $0.kind == "Deployment" }.map(\.name).sorted()
        }
        #expect(try poolers("") == [])
        #expect(try poolers("  enableConnectionPooler: true") == ["acid-p-pooler"])
        // A connectionPooler section alone turns the master's on; enableConnectionPooler false keeps it off.
        #expect(try poolers("  connectionPooler: {mode: session}") == ["acid-p-pooler"])
        #expect(try poolers("  enableConnectionPooler: false\n  connectionPooler: {mode: session}") == [])
        #expect(try poolers("  enableReplicaConnectionPooler: true") == ["acid-p-pooler-repl"])
        #expect(try poolers("  enableConnectionPooler: true\n  enableReplicaConnectionPooler: true") == ["acid-p-pooler", "acid-p-pooler-repl"])
    }

    @Test func theDeploymentAndServiceAreTheUpstreamOnes() throws {
        let objects = try render(Self.spec("""
              enableConnectionPooler: true
              enableReplicaConnectionPooler: true
              enableReplicaPoolerLoadBalancer: true
              connectionPooler:
                numberOfInstances: 3
                maxDBConnections: 90
                mode: session
                resources: {requests: {cpu: 100m}}
            """))
        let master = try object(objects, "Deployment", "acid-p-pooler")
        #expect(master.body["spec", "replicas"] == 3)
        let selector: JSONValue = ["application": "db-connection-pooler", "cluster-name": "acid-p", "connection-pooler": "acid-p-pooler"]
        #expect(master.body["spec", "selector", "matchLabels"] == selector)
        #expect(master.body["spec", "template", "metadata", "labels", "spilo-role"] == "master")
        let container = try #require(master.body["spec", "template", "spec", "containers"]?.arrayValue?.first)
        #expect(container["image"]?.stringValue == PostgresSpec.Pooler.defaultImage)
        var env: [String: JSONValue] = [:]
        for v in container["env"]?.arrayValue ?? [] { env[v["name"]?.stringValue ?? ""] = v["value"] ?? v["valueFrom"] }
        // 90 connections over 3 instances: 30 each, pools of 15, minimum and reserve 7 (upstream's arithmetic).
        #expect(env["CONNECTION_POOLER_MAX_DB_CONN"] == "30")
        #expect(env["CONNECTION_POOLER_DEFAULT_SIZE"] == "15")
        #expect(env["CONNECTION_POOLER_MIN_SIZE"] == "7" && env["CONNECTION_POOLER_RESERVE_SIZE"] == "7")
        #expect(env["CONNECTION_POOLER_MODE"] == "session")
        #expect(env["PGHOST"] == "acid-p" && env["PGSCHEMA"] == "pooler")
        #expect(env["PGPASSWORD"] == ["secretKeyRef": ["name": "pooler.acid-p.credentials.postgresql.acid.zalan.do", "key": "password"]])
        // cpu requested as given; memory and the limits take the operator's defaults.
        #expect(container["resources"] == ["limits": ["cpu": "1", "memory": "100Mi"], "requests": ["cpu": "100m", "memory": "100Mi"]])
        let replica = try object(objects, "Deployment", "acid-p-pooler-repl")
        #expect(replica.body["spec", "template", "spec", "containers"]?.arrayValue?.first?["env"]?.arrayValue?.first == ["name": "PGHOST", "value": "acid-p-repl"])
        // Services select the pooler's pods only; the replicas' is a load balancer.
        let service = try object(objects, "Service", "acid-p-pooler")
        #expect(service.body["spec", "type"] == "ClusterIP")
        #expect(service.body["spec", "selector"] == ["connection-pooler": "acid-p-pooler"])
        #expect(try object(objects, "Service", "acid-p-pooler-repl").body["spec", "type"] == "LoadBalancer")
        // The pooler's role gets a credentials Secret generated in the cluster, and the roles Job its lookup function.
        let secret = try object(objects, "Secret", "pooler.acid-p.credentials.postgresql.acid.zalan.do")
        #expect(secret.createOnly)
        let job = try #require(objects.first { $0.kind == "Job" })
        let script = try object(objects, "ConfigMap", job.name)
        #expect(script.body["data", "pooler.sql"]?.stringValue?.contains("GRANT EXECUTE ON FUNCTION \"pooler\".user_lookup(text) TO \"pooler\"") == true)
        #expect(script.body["data", "roles.sql"]?.stringValue?.contains("ALTER ROLE \"pooler\" WITH LOGIN;") == true)
    }

    @Test func aNodePortWinsOverALoadBalancerAsUpstream() throws {
        let objects = try render(Self.spec("""
              enableMasterLoadBalancer: true
              enableMasterNodePort: true
              masterNodePort: 30432
              enableReplicaNodePort: true
              enableConnectionPooler: true
              enableMasterPoolerNodePort: true
            """))
        let master = try object(objects, "Service", "acid-p")
        #expect(master.body["spec", "type"] == "NodePort")
        #expect(master.body["spec", "ports"]?.arrayValue?.first?["nodePort"] == 30432)
        let replica = try object(objects, "Service", "acid-p-repl")
        #expect(replica.body["spec", "type"] == "NodePort" && replica.body["spec", "ports"]?.arrayValue?.first?["nodePort"] == nil)
        #expect(try object(objects, "Service", "acid-p-pooler").body["spec", "type"] == "NodePort")
    }

    @Test func spiloGetsTheSpecsEnvironmentProbeAndScheduling() throws {
        let objects = try render(Self.spec("""
              env:
                - {name: FOO, value: bar}
                - {name: scope, value: not-the-operators}
                - name: AWS_KEY
                  valueFrom: {secretKeyRef: {name: s3, key: key}}
              envFrom: [{configMapRef: {name: extra}}]
              livenessProbe: {httpGet: {path: /liveness, port: 8008}}
              podPriorityClassName: high
              schedulerName: other
              topologySpreadConstraints:
                - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}
            """))
        let sts = try object(objects, "StatefulSet", "acid-p")
        let pod = try #require(sts.body["spec", "template", "spec"])
        let container = try #require(pod["containers"]?.arrayValue?.first)
        let names = (container["env"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        #expect(names.contains("FOO") && names.contains("AWS_KEY"))
        #expect(!names.contains("scope"), "the operator's SCOPE stays, as upstream keeps it")
        #expect(container["envFrom"] == [["configMapRef": ["name": "extra"]]])
        #expect(container["livenessProbe"] == ["httpGet": ["path": "/liveness", "port": 8008, "scheme": "HTTP"], "timeoutSeconds": 1,
                                               "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3])
        #expect(pod["priorityClassName"] == "high" && pod["schedulerName"] == "other")
        #expect(pod["topologySpreadConstraints"]?.arrayValue?.first?["labelSelector"]
                == ["matchLabels": ["application": "spilo", "cluster-name": "acid-p"]])
    }

    @Test func whatCannotWorkIsRefusedWithTheReason() {
        func errors(_ extra: String) -> String { specErrors(Self.spec(extra)).joined(separator: "\n") }
        #expect(errors("  connectionPooler: {user: postgres}").contains("a role of Spilo's own"))
        #expect(errors("  users: {app: []}\n  connectionPooler: {user: app}").contains("also in spec.users"))
        #expect(errors("  users: {pooler: []}\n  enableConnectionPooler: true").contains("the connection pooler's role"))
        #expect(errors("  connectionPooler: {mode: statement}").contains("must be session or transaction"))
        #expect(errors("  connectionPooler: {maxDBConnections: 4, numberOfInstances: 2}").contains("fewer than 4 connections"))
        #expect(errors("  topologySpreadConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule, "
                       + "labelSelector: {matchLabels: {app: other}}}]").contains("selects no pod of this cluster"))
        #expect(errors("  env: [{name: A, valueFrom: {}}]").contains("needs exactly one of"))
        #expect(errors("  livenessProbe: {periodSeconds: 3}").contains("needs exactly one of exec, grpc, httpGet, tcpSocket"))
    }
}

/// The pooler's role and lookup function in a real PostgreSQL, and a real PgBouncer (Debian's)
/// logging in with them as the upstream image's configuration does (`auth_user` with the
/// pooler's password from the file the rendered command writes, `auth_query` through the
/// lookup function): a user of the spec connects through it with its own password.
@Suite("PostgreSQL connection pooler, with PgBouncer", .serialized)
struct PostgresPoolerTests {
    static let yaml = """
        apiVersion: acid.zalan.do/v1
        kind: postgresql
        metadata: {name: acid-pool, namespace: db}
        spec:
          teamId: acid
          numberOfInstances: 1
          volume: {size: 1Gi}
          postgresql: {version: "16"}
          users: {app: []}
          databases: {shop: app}
          enableConnectionPooler: true
        """

    @Test func aUserConnectsThroughPgBouncerWithTheLookupFunction() throws {
        let pgbouncer = "/usr/sbin/pgbouncer"
        try #require(FileManager.default.isExecutableFile(atPath: pgbouncer), "PgBouncer is not installed (apt-get install pgbouncer)")
        let server = try PostgresServer()
        defer { server.stop() }
        let passwords = PostgresRolesTests.passwords(["app", "pooler"])
        let job = try PostgresRolesTests.runJob(Self.yaml, on: server, passwords: passwords)
        #expect(job.status == 0, "\(job.stderr)")
        #expect(job.stdout.contains("the pooler's lookup function is in every database"), "\(job.stdout)")
        #expect(try server.value("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                                 + "WHERE n.nspname = 'pooler' AND p.proname = 'user_lookup'", database: "shop") == "1")
        // Only the pooler's role may read password verifiers.
        let denied = try server.psql("SELECT * FROM pooler.user_lookup('postgres')", user: "app", password: passwords["app"])
        #expect(denied.status != 0 && denied.stderr.contains("permission denied"), "\(denied.stdout) \(denied.stderr)")

        // PgBouncer as the Deployment starts it: the rendered command writes its auth file from
        // the pooler's Secret, then starts it (here Debian's, with the upstream image's auth settings).
        let objects = try render(Self.yaml)
        let deployment = try #require(objects.first { $0.kind == "Deployment" })
        let command = try #require(deployment.body["spec", "template", "spec", "containers"]?.arrayValue?.first?["command"]?.arrayValue)
        let dir = TemporaryDirectory("cairn-pgbouncer")
        let port = freePort()
        let asUser = getuid() == 0 ? ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] : []
        if getuid() == 0 { _ = try run("/bin/chown", ["postgres:postgres", dir.path]) }
        try """
            [databases]
            * = host=127.0.0.1 port=\(server.port) auth_user=pooler
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = \(port)
            unix_socket_dir =
            auth_type = md5
            auth_file = \(dir.file("userlist.txt"))
            auth_query = SELECT * FROM pooler.user_lookup($1)
            pool_mode = transaction
            logfile = \(dir.file("pgbouncer.log"))
            pidfile = \(dir.file("pgbouncer.pid"))

            """.write(toFile: dir.file("pgbouncer.ini"), atomically: true, encoding: .utf8)
        if getuid() == 0 { _ = try run("/bin/chown", ["postgres:postgres", dir.file("pgbouncer.ini")]) }
        let start = (command[2].stringValue ?? "")
            .replacingOccurrences(of: "/etc/pgbouncer/userlist.txt", with: dir.file("userlist.txt"))
            .replacingOccurrences(of: "exec /bin/sh /entrypoint.sh", with: "exec \(pgbouncer) \(dir.file("pgbouncer.ini"))")
        #expect(start != command[2].stringValue, "the command writes the auth file and starts the image's entrypoint")
        let argv = asUser + ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "PGUSER=pooler", "PGPASSWORD=\(passwords["pooler"]!)", "/bin/sh", "-c", start]
        let bouncer = try ServerProcess("pgbouncer", argv[0], Array(argv.dropFirst()), log: dir.file("stdout.log"))
        defer { bouncer.stop() }
        try #require(waitForPort(port, seconds: 30), "pgbouncer did not listen: \((try? String(contentsOfFile: dir.file("pgbouncer.log"), encoding: .utf8)) ?? "")")

        func through(_ user: String, _ password: String) throws -> ProcessResult {
            try run("/usr/bin/env", ["PGPASSWORD=\(password)", "psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", "\(port)", "-U", user,
                                     "-d", "shop", "-c", "SELECT current_user"])
        }
        let ok = try through("app", passwords["app"]!)
        #expect(ok.status == 0 && ok.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "app",
                "\(ok.stderr) \((try? String(contentsOfFile: dir.file("pgbouncer.log"), encoding: .utf8)) ?? "")")
        let wrong = try through("app", "not-the-password")
        #expect(wrong.status != 0, "a wrong password is refused")
    }
}

/// The pooler's objects on the real API server: created, and unchanged on the next pass (the
/// server's defaults of a Deployment and an allocated node port are no difference).
@Suite("PostgreSQL connection pooler, applied", .enabled(if: !ControlPlane.skip))
struct PostgresPoolerAppliedTests {
    let plane: ControlPlane
    let ns = "pgpool-\(UInt32.random(in: 0...UInt32.max))"
    let dir = TemporaryDirectory("cairn-pgpool")

    init() throws {
        plane = try ControlPlane.shared()
    }

    func apply(_ extra: String) throws -> (ProcessResult, [String: String]) {
        try PostgresRolesRenderTests.spec(extra, name: "pg").replacingOccurrences(of: "namespace: db", with: "namespace: \(ns)")
            .write(toFile: dir.file("pg.yaml"), atomically: true, encoding: .utf8)
        let r = try run(CLITests.binary, ["apply", dir.path, "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns, "-o", "json"])
        let json = try? JSONValue.parse(Array(r.stdout.utf8))
        return (r, IsolationTests.actions(IsolationTests.cluster(json, "\(ns)/pg")))
    }

    @Test func createdThenUnchangedThenPrunedWhenTurnedOff() throws {
        let on = """
              enableConnectionPooler: true
              enableReplicaConnectionPooler: true
              enableReplicaPoolerNodePort: true
              enableMasterNodePort: true
            """
        let (first, created) = try apply(on)
        #expect(first.status == 0, "\(first.stderr)")
        for object in ["Deployment/pg-pooler", "Deployment/pg-pooler-repl", "Service/pg-pooler", "Service/pg-pooler-repl", "Service/pg"] {
            let (kind, name) = (object.split(separator: "/")[0], object.split(separator: "/")[1])
            #expect(created["\(kind)/\(ns)/\(name)"] == "created", "\(object): \(created)")
        }
        let (_, again) = try apply(on)
        #expect(again.values.allSatisfy { $0 == "unchanged" }, "\(again.filter { $0.value != "unchanged" })")
        // Turned off: the Deployments and their Services go; the pooler's generated Secret is kept.
        let (_, off) = try apply("")
        #expect(off["Deployment/\(ns)/pg-pooler"] == "pruned" && off["Deployment/\(ns)/pg-pooler-repl"] == "pruned", "\(off)")
        #expect(off["Service/\(ns)/pg-pooler-repl"] == "pruned", "\(off)")
        #expect(off["Secret/\(ns)/pooler.pg.credentials.postgresql.acid.zalan.do"] == "kept", "\(off)")
    }
}
