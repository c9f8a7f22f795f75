import ClusterSpecs
import Foundation
import Testing

/// `cairn plan` on a fixture repository built from this project's clusters/, with a commit for
/// each kind of change a pull request makes.
@Suite("cairn plan", .serialized)
final class PlanCommandTests {
    let origin: OriginRepository
    let cache = TemporaryDirectory("cairn-plan-cache")
    var files: [String: String] = [:]
    /// The commit before each named change, and the commit with it.
    var pairs: [String: (base: String, head: String)] = [:]

    func example(_ name: String) -> String { Repo.read(Repo.clusters.appendingPathComponent(name)) }

    init() throws {
        origin = try OriginRepository()
        for name in Repo.exampleFiles { files["clusters/\(name)"] = example(name) }
        var head = try origin.commit(files.mapValues { Optional($0) }, message: "the four examples")
        func change(_ name: String, _ file: String, _ edit: (String) -> String?) throws {
            let before = head
            let text = edit(files[file] ?? "")
            files[file] = text
            head = try origin.commit([file: text], message: name)
            pairs[name] = (before, head)
        }
        let es = "clusters/esdb-cluster.yaml", pg = "clusters/acid-minimal-cluster.yaml", atomix = "clusters/example-atomixcluster.yaml"
        try change("config", es) { $0.replacingOccurrences(of: "RunProjections: System", with: "RunProjections: All") }
        try change("postgres-config", pg) { $0.replacingOccurrences(of: "max_connections: \"100\"", with: "max_connections: \"200\"") }
        try change("scale-up", es) { $0.replacingOccurrences(of: "replicas: 3", with: "replicas: 5") }
        try change("scale-down", es) { $0.replacingOccurrences(of: "replicas: 5", with: "replicas: 3") }
        try change("postgres-scale-up", pg) { $0.replacingOccurrences(of: "numberOfInstances: 2", with: "numberOfInstances: 3") }
        try change("image", es) { $0.replacingOccurrences(of: "22.10.5-buster-slim", with: "22.10.6-buster-slim") }
        try change("atomix-group-added", atomix) { $0 + "    - name: cache\n      size: 1\n      partitions: 1\n      primaryBackup: {}\n" }
        try change("atomix-group-removed", atomix) { $0.replacingOccurrences(of: "    - name: cache\n      size: 1\n      partitions: 1\n      primaryBackup: {}\n", with: "") }
        try change("comment-only", es) { "# Reviewed by the database team.\n" + $0.replacingOccurrences(of: "replicas: 3", with: "replicas:   3") }
        try change("postgres-user", pg) { $0.replacingOccurrences(of: "    foo_user: []\n", with: "    foo_user: []\n    bar_user: []\n") }
        try change("immutable", es) { $0.replacingOccurrences(of: "storage: 10Gi", with: "storage: 20Gi") }
        try change("invalid", pg) { $0.replacingOccurrences(of: "numberOfInstances: 3", with: "numberOfInstances: three") }
        try change("fixed", pg) { $0.replacingOccurrences(of: "numberOfInstances: three", with: "numberOfInstances: 3") }
        try change("cluster-removed", pg) { _ in nil }
        // A pull request adding a second file for an existing cluster, or a cluster whose
        // objects collide with an unchanged cluster's: `apply` refuses both, so `plan` does.
        try change("duplicate", "clusters/copy-of-esdb.yaml") { _ in self.files[es] }
        try change("duplicate-removed", "clusters/copy-of-esdb.yaml") { _ in nil }
        try change("collision", "clusters/colliding.yaml") { _ in
            "apiVersion: agent.atomix.io/v1alpha1\nkind: AtomixCluster\nmetadata: {name: example-atomixcluster-raft}\nspec:\n  version: 3.1.0\n  managementGroup: {size: 1}\n"
        }
    }

    func plan(_ change: String, _ format: String = "text") throws -> ProcessResult {
        let (base, head) = pairs[change]!
        var r = try run(CLITests.binary, ["plan", "--repo", origin.bare, "--base", base, "--head", head, "--format", format, "--cache-dir", cache.path])
        // Short SHAs differ from run to run (commit times): the goldens say BASE and HEAD.
        r.stdout = r.stdout.replacingOccurrences(of: base, with: "BASE").replacingOccurrences(of: head, with: "HEAD")
            .replacingOccurrences(of: String(base.prefix(7)), with: "BASE").replacingOccurrences(of: String(head.prefix(7)), with: "HEAD")
        return r
    }

    func golden(_ name: String, _ actual: String) throws {
        let url = Repo.golden.appendingPathComponent("plan").appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["CAIRN_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try actual.write(to: url, atomically: true, encoding: .utf8)
        }
        #expect(actual == (try String(contentsOf: url, encoding: .utf8)), "cairn plan output differs from Tests/CairnTests/Golden/plan/\(name)")
    }

    @Test func configurationChangeGoldenInEveryFormat() throws {
        for (format, ext) in [("text", "txt"), ("markdown", "md"), ("json", "json")] {
            let r = try plan("config", format)
            #expect(r.status == 1, "\(r.stderr)")
            try golden("config.\(ext)", r.stdout)
        }
        let text = try plan("config").stdout
        #expect(text.contains("rollout StatefulSet/esdb/esdb-cluster: 3 pods restart (esdb-cluster-2, esdb-cluster-1, esdb-cluster-0)"))
        #expect(text.contains("why: configuration changed (ConfigMap esdb-cluster-config: eventstore.conf)"))
    }

    @Test func postgresRestartsReplicasFirstThePrimaryLast() throws {
        let r = try plan("postgres-config")
        #expect(r.status == 1)
        #expect(r.stdout.contains("rollout StatefulSet/default/acid-minimal-cluster: 2 pods restart"))
        #expect(r.stdout.contains("why: configuration changed (ConfigMap acid-minimal-cluster-spilo: SPILO_CONFIGURATION)"))
        #expect(r.stdout.contains("how: cairn restarts one pod per pass once every pod is Ready: the replicas first (highest ordinal first), the primary (the pod holding Patroni's leader lock) last"))
        try golden("postgres-config.md", try plan("postgres-config", "markdown").stdout)
    }

    @Test func scaleChangesAreFlaggedWhereTheSystemCannotFollow() throws {
        let up = try plan("scale-up")
        #expect(up.status == 1)
        #expect(up.stdout.contains("~ StatefulSet/esdb/esdb-cluster changed: spec.replicas: 3 -> 5"), "\(up.stdout)")
        #expect(up.stdout.contains("warning: esdb-cluster: replicas 3 -> 5. EventStoreDB reads its cluster size"))
        #expect(up.stdout.contains("+ Service/esdb/esdb-cluster-4-lb added"), "one load balancer per node")
        // ClusterSize and the gossip seeds are in the configuration: the running nodes restart.
        #expect(up.stdout.contains("rollout StatefulSet/esdb/esdb-cluster: 3 pods restart (esdb-cluster-2, esdb-cluster-1, esdb-cluster-0)"))
        #expect(up.stdout.contains("~ ConfigMap/esdb/esdb-cluster-config changed: data[eventstore.conf]: line 9: \"ClusterSize: 3\" -> \"ClusterSize: 5\""), "\(up.stdout)")
        let down = try plan("scale-down")
        #expect(down.stdout.contains("- Service/esdb/esdb-cluster-4-lb deleted: pruned"))
        #expect(down.stdout.contains("warning: esdb-cluster: replicas 5 -> 3."))
        let pg = try plan("postgres-scale-up")
        #expect(pg.stdout.contains("~ StatefulSet/default/acid-minimal-cluster changed: spec.replicas: 2 -> 3"))
        #expect(!pg.stdout.contains("warning"), "Postgres adds a replica in place")
        #expect(!pg.stdout.contains("rollout "), "a StatefulSet scaled without a template change restarts no pod: \(pg.stdout)")
    }

    @Test func imageUpgradeNamesTheImages() throws {
        let r = try plan("image")
        #expect(r.status == 1)
        #expect(r.stdout.contains("why: image of eventstore: eventstore/eventstore:22.10.5-buster-slim -> eventstore/eventstore:22.10.6-buster-slim"), "\(r.stdout)")
    }

    @Test func atomixPartitionGroupAddedAndRemoved() throws {
        let added = try plan("atomix-group-added")
        #expect(added.status == 1)
        #expect(added.stdout.contains("+ StatefulSet/default/example-atomixcluster-cache added"), "\(added.stdout)")
        let removed = try plan("atomix-group-removed")
        #expect(removed.stdout.contains("- StatefulSet/default/example-atomixcluster-cache deleted: pruned; its PersistentVolumeClaims are kept") || removed.stdout.contains("- StatefulSet/default/example-atomixcluster-cache deleted: pruned"), "\(removed.stdout)")
        #expect(PlanCommandTests.summary(removed.stdout).contains("deleted"))
    }

    @Test func commentOnlyChangeIsNoChange() throws {
        let r = try plan("comment-only")
        #expect(r.status == 0, "\(r.stdout)")
        #expect(PlanCommandTests.summary(r.stdout) == "no change to any rendered object (1 spec file changed: comments or formatting only)")
        let md = try plan("comment-only", "markdown")
        #expect(md.stdout.contains("**No change to any rendered object.** 1 spec file changed: comments or formatting only."))
    }

    @Test func postgresUserAddedCreatesItsSecretWithoutShowingIt() throws {
        let r = try plan("postgres-user")
        #expect(r.status == 1)
        #expect(r.stdout.contains("+ Secret/default/bar-user.acid-minimal-cluster.credentials.postgresql.acid.zalan.do added: created with a generated password, never overwritten"), "\(r.stdout)")
        #expect(r.stdout.contains("+  username: \"***\""), "Secret values masked: \(r.stdout)")
        #expect(!r.stdout.contains("YmFyX3VzZXI="), "the base64 user name is not printed")
    }

    @Test func immutableChangeIsBlockedWithWhatToDo() throws {
        let r = try plan("immutable")
        #expect(r.status == 2)
        #expect(r.stdout.contains("! StatefulSet/esdb/esdb-cluster blocked: spec.volumeClaimTemplates[0].spec.resources.requests.storage: \"10Gi\" -> \"20Gi\"; spec.volumeClaimTemplates is immutable"), "\(r.stdout)")
        let md = try plan("immutable", "markdown")
        #expect(md.stdout.contains("| Blocked changes | 1 |"))
    }

    @Test func invalidHeadSpecIsAnErrorWithItsLocationAndNotADeletion() throws {
        let r = try plan("invalid")
        #expect(r.status == 2)
        #expect(r.stdout.contains("error: clusters/acid-minimal-cluster.yaml:10:22: spec.numberOfInstances: must be an integer (got a string)"), "\(r.stdout)")
        #expect(!r.stdout.contains("deleted"), "an invalid file does not read as a removed cluster")
    }

    @Test func removedClusterKeepsItsVolumesAndCredentials() throws {
        let r = try plan("cluster-removed")
        #expect(r.status == 1)
        #expect(r.stdout.contains("cluster default/acid-minimal-cluster (clusters/acid-minimal-cluster.yaml): deleted"))
        #expect(r.stdout.contains("- StatefulSet/default/acid-minimal-cluster deleted: pruned; its PersistentVolumeClaims are kept"))
        #expect(r.stdout.contains("kept: Secret/default/postgres.acid-minimal-cluster.credentials.postgresql.acid.zalan.do, "))
        #expect(r.stdout.contains("Secret/default/zalando.acid-minimal-cluster.credentials.postgresql.acid.zalan.do, PersistentVolumeClaim/"))
        #expect(r.stdout.contains("PersistentVolumeClaim/default/pgdata-acid-minimal-cluster-0, PersistentVolumeClaim/default/pgdata-acid-minimal-cluster-1, PersistentVolumeClaim/default/pgdata-acid-minimal-cluster-2"), "\(r.stdout)")
        let json = try JSONValue.parse(Array(try plan("cluster-removed", "json").stdout.utf8))
        #expect(json["summary", "objectsDeleted"]?.intValue == 10)
        #expect(json["summary", "exitCode"] == 1)
    }

    @Test func unknownRevisionIsAnError() throws {
        let r = try run(CLITests.binary, ["plan", "--repo", origin.bare, "--base", "no-such-branch", "--cache-dir", cache.path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("no-such-branch"), "\(r.stderr)")
    }

    static func summary(_ text: String) -> String {
        text.split(separator: "\n").last.map(String.init) ?? ""
    }

    @Test func aDuplicateOrCollidingClusterIsRefusedAsApplyRefusesIt() throws {
        let duplicate = try plan("duplicate")
        #expect(duplicate.status == 2, "\(duplicate.stdout)")
        #expect(duplicate.stdout.contains("clusters/copy-of-esdb.yaml:"), "\(duplicate.stdout)")
        #expect(duplicate.stdout.contains("is also defined at clusters/esdb-cluster.yaml"), "\(duplicate.stdout)")
        // Neither copy is applied at the head, and neither is deleted: nothing of esdb changes.
        #expect(!duplicate.stdout.split(separator: "\n").contains { $0.hasPrefix("cluster ") }, "\(duplicate.stdout)")

        let collision = try plan("collision")
        #expect(collision.status == 2, "\(collision.stdout)")
        #expect(collision.stdout.contains("would render objects another cluster renders too:"), "\(collision.stdout)")
        #expect(collision.stdout.contains("ConfigMap/default/example-atomixcluster-raft-config (also rendered for clusters/"), "\(collision.stdout)")
        #expect(!collision.stdout.split(separator: "\n").contains { $0.hasPrefix("cluster ") }, "a colliding cluster is not planned as a clean create: \(collision.stdout)")
        // The same files, validated as apply reads them, give the same refusal.
        let dir = TemporaryDirectory("cairn-plan-collision")
        for (path, text) in files {
            let url = URL(fileURLWithPath: dir.file(path))
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        let validated = try run(CLITests.binary, ["validate", dir.file("clusters")])
        #expect(validated.status == 1 && validated.stderr.contains("would render objects another cluster renders too"), "\(validated.stderr)")
    }

    /// Documents beside a cluster are shown by `plan` with the cluster's objects: added as they
    /// are (labelled as the cluster's), a Secret's values masked, and the change of one alone.
    @Test func documentsBesideAClusterAreShownWithItsValuesMasked() throws {
        let origin = try OriginRepository()
        let cluster = IsolationTests.esdb("a", namespace: "db")
        let base = try origin.commit(["clusters/a.yaml": cluster], message: "a cluster")
        let companions = """
            apiVersion: v1
            kind: Secret
            metadata: {name: a-license}
            stringData: {key: not-a-real-license-key}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: a-metrics}
            spec:
              ports: [{name: http, port: 2113}]
              selector: {app.kubernetes.io/instance: a}
            ---

            """
        let head = try origin.commit(["clusters/a.yaml": companions + cluster], message: "its Secret and a metrics Service")
        let r = try run(CLITests.binary, ["plan", "--repo", origin.bare, "--base", base, "--head", head, "--format", "json", "--cache-dir", cache.path])
        #expect(r.status == 1, "changes: \(r.stderr)")
        #expect(!r.stdout.contains("not-a-real-license-key") && !r.stderr.contains("not-a-real-license-key"), "a Secret value in the plan")
        let text = try run(CLITests.binary, ["plan", "--repo", origin.bare, "--base", base, "--head", head, "--cache-dir", cache.path])
        #expect(!text.stdout.contains("not-a-real-license-key"))
        for object in ["Secret/db/a-license", "Service/db/a-metrics"] {
            #expect(text.stdout.contains(object), "\(object): \(text.stdout)")
        }
        #expect(text.stdout.contains("cairn.dev/cluster: a"), "labelled as the cluster's: \(text.stdout)")
        #expect(text.stdout.contains("\nwarning: clusters/a.yaml:1:1: a Secret with its values in git"), "\(text.stdout)")
        let validated = try run("/bin/sh", ["-c", "cd \"$1\" && \"$2\" validate clusters 2>&1", "sh", origin.work, CLITests.binary])
        #expect(validated.stdout.contains("warning: clusters/a.yaml:1:1: a Secret with its values in git"), "\(validated.stdout)")
        // One of them changed alone: only it is in the plan, nothing restarts.
        let port = try origin.commit(["clusters/a.yaml": companions.replacingOccurrences(of: "port: 2113", with: "port: 2114") + cluster])
        let changed = try run(CLITests.binary, ["plan", "--repo", origin.bare, "--base", head, "--head", port, "--cache-dir", cache.path])
        #expect(changed.status == 1 && changed.stdout.contains("Service/db/a-metrics") && !changed.stdout.contains("Secret/db/a-license"), "\(changed.stdout)")
        #expect(changed.stdout.contains("2114"))
    }
}
