import Foundation
import JSON
import Testing

/// deploy/: the manifests apply to the real control plane, and the ServiceAccount can do
/// exactly what cairn needs.
@Suite("deploy manifests", .enabled(if: !ControlPlane.skip), .serialized)
struct DeployTests {
    let plane: ControlPlane
    let deploy = Repo.root.appendingPathComponent("deploy").path

    init() throws { plane = try ControlPlane.shared() }

    func kubectl(_ arguments: [String]) throws -> ProcessResult {
        try run("/usr/bin/kubectl", ["--kubeconfig", plane.kubeconfig] + arguments)
    }

    /// `kubectl apply -k deploy/`, as a user runs it. The PodDisruptionBudget is policy/v1, which
    /// users' clusters (1.25 and later) serve; on a server without it (the test control plane's
    /// 1.20) it goes as policy/v1beta1, as pdb.yaml tells such users to.
    func applyDeploy(_ extra: [String] = []) throws -> ProcessResult {
        let served = try kubectl(["api-versions"]).stdout.split(separator: "\n")
        guard !served.contains("policy/v1") else { return try kubectl(["apply", "-k", deploy] + extra) }
        let built = try kubectl(["kustomize", deploy])
        guard built.status == 0 else { return built }
        let old = built.stdout.replacingOccurrences(of: "apiVersion: policy/v1\nkind: PodDisruptionBudget", with: "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget")
        return try run("/usr/bin/kubectl", ["--kubeconfig", plane.kubeconfig, "apply", "-f", "-"] + extra, stdin: old)
    }

    @Test func manifestsApplyAndTheServiceAccountMayDoWhatCairnDoesAndNothingElse() throws {
        // A server-side dry run cannot create the namespaces the other objects go in: they come first.
        let namespaces = try kubectl(["apply", "-f", deploy + "/namespace.yaml"])
        #expect(namespaces.status == 0, "\(namespaces.stderr)")
        let dryRun = try applyDeploy(["--dry-run=server"])
        #expect(dryRun.status == 0, "\(dryRun.stdout)\(dryRun.stderr)")
        #expect(dryRun.stdout.contains("deployment.apps/cairn created (server dry run)"), "\(dryRun.stdout)")

        let applied = try applyDeploy()
        #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
        // Two replicas, a rollout that waits for the new (standby) pod, the PDB, and the pod's
        // address for the leader to publish.
        func get(_ object: String, _ path: String) throws -> String {
            try kubectl(["-n", "cairn-system", "get", object, "-o", "jsonpath={\(path)}"]).stdout
        }
        #expect(try get("deployment/cairn", ".spec.replicas") == "2")
        // SplitDNS's resolver runs from cairn's own image: the env names the container's image.
        #expect(try get("deployment/cairn", ".spec.template.spec.containers[0].env[?(@.name==\"CAIRN_IMAGE\")].value")
                == (try get("deployment/cairn", ".spec.template.spec.containers[0].image")))
        #expect(try get("deployment/cairn", ".spec.strategy.rollingUpdate.maxUnavailable") == "0")
        #expect(try get("deployment/cairn", ".spec.template.spec.containers[0].env[?(@.name==\"POD_IP\")].valueFrom.fieldRef.fieldPath") == "status.podIP")
        #expect(try get("poddisruptionbudget/cairn", ".spec.minAvailable") == "1")
        #expect(try get("poddisruptionbudget/cairn", ".spec.selector.matchLabels.app\\.kubernetes\\.io/name") == "cairn")
        let sa = "system:serviceaccount:cairn-system:cairn"
        func can(_ arguments: [String]) throws -> Bool {
            try kubectl(["auth", "can-i", "--as", sa] + arguments).status == 0
        }
        let allowed: [[String]] = [
            ["list", "statefulsets.apps", "--all-namespaces"], ["patch", "statefulsets.apps", "-n", "databases"],
            ["create", "configmaps", "-n", "databases"], ["delete", "services", "-n", "esdb"],
            ["patch", "poddisruptionbudgets.policy", "-n", "databases"], ["delete", "pods", "-n", "databases"],
            ["list", "secrets", "-n", "databases"], ["create", "secrets", "-n", "databases"],
            ["create", "roles.rbac.authorization.k8s.io", "-n", "databases"], ["bind", "roles.rbac.authorization.k8s.io", "-n", "databases"],
            ["update", "leases.coordination.k8s.io", "-n", "cairn-system"], ["create", "events", "-n", "databases"],
            ["create", "namespaces"], ["get", "namespaces"], ["create", "jobs.batch", "-n", "databases"], ["delete", "jobs.batch", "-n", "databases"],
            ["list", "deployments.apps", "-n", "databases"], ["create", "deployments.apps", "-n", "databases"],
            ["get", "services/kube-dns", "-n", "kube-system"],
        ]
        let refused: [[String]] = [
            ["delete", "persistentvolumeclaims", "-n", "databases"], ["get", "persistentvolumeclaims", "-n", "databases"],
            ["list", "secrets", "-n", "kube-system"], ["get", "secrets", "-n", "databases"], ["delete", "secrets", "-n", "databases"],
            ["update", "secrets", "-n", "databases"], ["create", "clusterroles.rbac.authorization.k8s.io"],
            ["bind", "clusterroles.rbac.authorization.k8s.io"], ["update", "leases.coordination.k8s.io", "-n", "default"],
            ["get", "services/other", "-n", "kube-system"],
            ["delete", "namespaces"], ["update", "namespaces"], ["patch", "namespaces"], ["update", "deployments.apps", "-n", "databases"], ["update", "statefulsets.apps", "-n", "databases"],
        ]
        for a in allowed { #expect(try can(a), "cairn needs: \(a.joined(separator: " "))") }
        for r in refused { #expect(try !can(r), "cairn must not: \(r.joined(separator: " "))") }
    }

    /// Everything the `cairn` service account may do, as the API server lists it, kept as golden
    /// files (a namespace with clusters, and one without), so that every widening of deploy/'s
    /// RBAC shows up in review. Regenerate with CAIRN_UPDATE_GOLDEN=1.
    @Test func theServiceAccountsPermissionsAreReviewedAsGoldenFiles() throws {
        _ = try kubectl(["apply", "-f", deploy + "/namespace.yaml"])
        let applied = try applyDeploy()
        #expect(applied.status == 0, "\(applied.stderr)")
        for namespace in ["databases", "kube-system", "cairn-system"] {
            let r = try kubectl(["auth", "can-i", "--list", "--as", "system:serviceaccount:cairn-system:cairn", "-n", namespace])
            #expect(r.status == 0, "\(r.stderr)")
            let url = Repo.golden.appendingPathComponent("rbac").appendingPathComponent("can-i-\(namespace).txt")
            if ProcessInfo.processInfo.environment["CAIRN_UPDATE_GOLDEN"] == "1" {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try r.stdout.write(to: url, atomically: true, encoding: .utf8)
            }
            #expect(r.stdout == (try String(contentsOf: url, encoding: .utf8)),
                    "the cairn service account's permissions in \(namespace) changed: review, then regenerate Tests/CairnTests/Golden/rbac/")
            // Never a PersistentVolumeClaim, and Secrets only where the credentials binding is.
            #expect(!r.stdout.contains("persistentvolumeclaims"))
            #expect(r.stdout.contains("\nsecrets ") == (namespace == "databases"), "\(r.stdout)")
        }
    }

    /// The `cairn` service account's token: Kubernetes 1.20 writes it into a Secret of its own.
    func serviceAccountToken() throws -> String {
        var token = ""
        for _ in 0..<100 where token.isEmpty {
            let secret = try kubectl(["-n", "cairn-system", "get", "serviceaccount", "cairn", "-o", "jsonpath={.secrets[0].name}"]).stdout
            if !secret.isEmpty {
                let data = try kubectl(["-n", "cairn-system", "get", "secret", secret, "-o", "jsonpath={.data.token}"]).stdout
                token = Data(base64Encoded: data).flatMap { String(data: $0, encoding: .utf8) } ?? ""
            }
            if token.isEmpty { usleep(100_000) }
        }
        try #require(!token.isEmpty, "no token for the cairn service account")
        return token
    }

    /// In-cluster configuration, for real: cairn started with no kubeconfig, the API server in
    /// `KUBERNETES_SERVICE_HOST`/`PORT` and the service account's token, CA and namespace at
    /// /var/run/secrets/kubernetes.io/serviceaccount, as a kubelet gives them to a pod (a mount
    /// namespace of its own, with /run a fresh tmpfs, so the host's /run is untouched). It
    /// applies as deploy/'s service account: the API server names that account when it refuses
    /// a Secret where no `cairn-credentials` RoleBinding is.
    @Test func inClusterConfigurationAsAKubeletMountsIt() throws {
        _ = try kubectl(["apply", "-f", deploy + "/namespace.yaml"])
        let applied = try applyDeploy()
        #expect(applied.status == 0, "\(applied.stderr)")
        let mounted = TemporaryDirectory("cairn-sa")
        try serviceAccountToken().write(toFile: mounted.file("token"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: plane.directory + "/certs/apiserver.crt", toPath: mounted.file("ca.crt"))
        try "cairn-system".write(toFile: mounted.file("namespace"), atomically: true, encoding: .utf8)
        let admin = try String(contentsOfFile: plane.kubeconfig, encoding: .utf8)
        let server = try #require(admin.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .first { $0.hasPrefix("server:") }.flatMap { URL(string: String($0.dropFirst("server:".count)).trimmingCharacters(in: .whitespaces)) })
        let host = try #require(server.host), port = try #require(server.port)

        let other = "in-cluster-\(UInt32.random(in: 0...UInt32.max))"
        let specs = TemporaryDirectory("cairn-in-cluster-specs")
        try IsolationTests.esdb("in-cluster", namespace: "databases").write(toFile: specs.file("esdb.yaml"), atomically: true, encoding: .utf8)
        try ValidationTests.postgres("  users: {app: []}\n", name: "pg-in-cluster")
            .replacingOccurrences(of: "metadata: {name: pg-in-cluster}", with: "metadata: {name: pg-in-cluster, namespace: \(other)}")
            .write(toFile: specs.file("pg.yaml"), atomically: true, encoding: .utf8)
        let sa = "/var/run/secrets/kubernetes.io/serviceaccount"
        let script = """
            set -eu
            mount -t tmpfs tmpfs /run
            mkdir -p \(sa)
            cp "$1"/token "$1"/ca.crt "$1"/namespace \(sa)/
            shift
            exec "$@"
            """
        let r = try run("/usr/bin/env", ["-u", "KUBECONFIG", "KUBERNETES_SERVICE_HOST=\(host)", "KUBERNETES_SERVICE_PORT=\(port)",
                                         "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", mounted.path,
                                         CLITests.binary, "apply", specs.path, "--namespace-allow", "databases,\(other)", "-o", "json"],
                        timeout: 300)
        let json = try? JSONValue.parse(Array(r.stdout.utf8))
        #expect(json != nil, "\(r.stdout.suffix(2000))\(r.stderr)")
        let esdb = IsolationTests.actions(IsolationTests.cluster(json, "databases/in-cluster"))
        #expect(esdb["StatefulSet/databases/in-cluster"] == "created", "\(r.stdout.suffix(3000))\(r.stderr)")
        #expect(esdb.values.allSatisfy { $0 == "created" }, "\(esdb)")
        let pg = IsolationTests.actions(IsolationTests.cluster(json, "\(other)/pg-in-cluster"))
        #expect(pg["Secret/\(other)/app.pg-in-cluster.credentials.postgresql.acid.zalan.do"] == "failed", "\(pg)")
        #expect(r.stdout.contains("system:serviceaccount:cairn-system:cairn"), "the API server names the account: \(r.stdout.suffix(2000))")
        // The host's /run was not touched.
        #expect(!FileManager.default.fileExists(atPath: sa))
        _ = try kubectl(["delete", "namespace", other, "--wait=false"])
        _ = try kubectl(["-n", "databases", "delete", "statefulset,service,configmap,poddisruptionbudget", "-l", "app.kubernetes.io/instance=in-cluster"])
    }

    /// deploy/'s service account, by its own token, plans clusters across the cluster with no
    /// --namespace-allow (Secrets, which it may list only where a `cairn-credentials` RoleBinding
    /// is, are listed there) and applies them; a cluster in a namespace without the RoleBinding
    /// fails alone, and no pass fails.
    /// (A user found the cluster-wide Secret LIST refused and nothing applied at all.)
    @Test func theServiceAccountAppliesClustersAndSecretsAreListedWhereItMayListThem() throws {
        _ = try kubectl(["apply", "-f", deploy + "/namespace.yaml"])
        let applied = try applyDeploy()
        #expect(applied.status == 0, "\(applied.stderr)")
        let token = try serviceAccountToken()
        let dir = TemporaryDirectory("cairn-deploy")
        let admin = try String(contentsOfFile: plane.kubeconfig, encoding: .utf8)
        let config = admin.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces).hasPrefix("token:") ? "    token: \(token)" : String($0) }.joined(separator: "\n")
        try config.write(toFile: dir.file("kubeconfig"), atomically: true, encoding: .utf8)
        let other = "elsewhere-\(UInt32.random(in: 0...UInt32.max))"
        let specs = TemporaryDirectory("cairn-deploy-specs")
        for (name, namespace) in [("pg", "databases"), ("pg2", other)] {
            try ValidationTests.postgres("  users: {app: []}\n", name: name)
                .replacingOccurrences(of: "metadata: {name: \(name)}", with: "metadata: {name: \(name), namespace: \(namespace)}")
                .write(toFile: specs.file("\(name).yaml"), atomically: true, encoding: .utf8)
        }
        func apply(_ extra: [String]) throws -> (ProcessResult, JSONValue?) {
            let r = try run(CLITests.binary, ["apply", specs.path, "--kubeconfig", dir.file("kubeconfig"), "-o", "json"] + extra)
            return (r, try? JSONValue.parse(Array(r.stdout.utf8)))
        }
        // Across the cluster (no --namespace-allow), as a dry run: a real one would prune the
        // other tests' clusters on this shared control plane. The pass lists and plans.
        let (wide, wideJSON) = try apply(["--dry-run"])
        #expect(!wide.stdout.contains("list failed") && !wide.stderr.contains("list failed"), "\(wide.stdout.suffix(2000))\(wide.stderr)")
        #expect(IsolationTests.actions(IsolationTests.cluster(wideJSON, "databases/pg"))["Secret/databases/app.pg.credentials.postgresql.acid.zalan.do"]
                == "created", "\(wide.stdout.suffix(3000))\(wide.stderr)")
        // For real, in the two namespaces.
        let (first, json) = try apply(["--namespace-allow", "databases,\(other)"])
        let pg = IsolationTests.actions(IsolationTests.cluster(json, "databases/pg"))
        #expect(pg["Secret/databases/app.pg.credentials.postgresql.acid.zalan.do"] == "created", "\(first.stdout.suffix(3000))\(first.stderr)")
        #expect(pg["StatefulSet/databases/pg"] == "created")
        // Elsewhere, no RoleBinding: that cluster fails at its Secrets, and says why.
        let pg2 = IsolationTests.actions(IsolationTests.cluster(json, "\(other)/pg2"))
        #expect(pg2["Secret/\(other)/app.pg2.credentials.postgresql.acid.zalan.do"] == "failed", "\(pg2)")
        #expect(first.stdout.contains("cannot create resource \\\"secrets\\\"") || first.stdout.contains("cannot create resource \"secrets\""),
                "\(first.stdout.suffix(2000))")
        let (_, again) = try apply(["--namespace-allow", "databases,\(other)"])
        let unchanged = IsolationTests.actions(IsolationTests.cluster(again, "databases/pg"))
        #expect(unchanged.values.allSatisfy { $0 == "unchanged" }, "\(unchanged)")
        _ = try kubectl(["delete", "namespace", other, "--wait=false"])
    }

    /// The image Tests/image.sh built from deploy/Containerfile (CI builds it before the tests;
    /// without it, outside CI, this test says so and passes), run with `buildah run` as a kubelet
    /// runs the pod: user 65532, the service account's token, CA and namespace at
    /// /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT, the cache
    /// volume, deploy/config.yaml's settings (the repository from `git daemon` on loopback, the
    /// managed namespace a new one with its `cairn-credentials` RoleBinding, as rbac.yaml says to
    /// add). As deploy/'s service account only, `cairn run` takes the Lease, applies the four
    /// example clusters (generated Secrets included), writes their status commits, rolls a
    /// configuration change (an Event says so) and prunes a removed cluster.
    /// The image Tests/image.sh built; nil when there is none (an issue in CI, which builds it).
    static func builtImage() throws -> String? {
        let found = try run("/bin/bash", [Repo.root.path + "/Tests/image.sh", "ref"])
        guard found.status == 0 else {
            if ProcessInfo.processInfo.environment["CI"] != nil {
                Issue.record("no cairn image: .ci/run builds it with Tests/image.sh build before the tests")
            }
            return nil
        }
        return found.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func theImageRunsAFullReconcileAsThePodWouldUnderDeploysRBAC() throws {
        guard let image = try Self.builtImage() else { return }
        _ = try kubectl(["apply", "-f", deploy + "/namespace.yaml"])
        let applied = try applyDeploy()
        #expect(applied.status == 0, "\(applied.stderr)")
        let ns = "image-\(UInt32.random(in: 0...UInt32.max))"
        #expect(try kubectl(["create", "namespace", ns]).status == 0)
        defer { _ = try? kubectl(["delete", "namespace", ns, "--wait=false"]) }
        let binding = try kubectl(["-n", ns, "create", "rolebinding", "cairn-credentials", "--clusterrole", "cairn-credentials",
                                   "--serviceaccount", "cairn-system:cairn"])
        #expect(binding.status == 0, "\(binding.stderr)")

        // What the kubelet mounts, and the cache volume (the pod's fsGroup makes it the user's).
        let mounted = TemporaryDirectory("cairn-image-sa")
        try serviceAccountToken().write(toFile: mounted.file("token"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: plane.directory + "/certs/apiserver.crt", toPath: mounted.file("ca.crt"))
        try "cairn-system".write(toFile: mounted.file("namespace"), atomically: true, encoding: .utf8)
        // Readable by the pod's user, as the kubelet's projected volume makes them.
        _ = try run("/bin/chmod", ["-R", "a+rX", mounted.path])
        let cache = TemporaryDirectory("cairn-image-cache")
        _ = try run("/bin/chown", ["65532:65532", cache.path])
        let admin = try String(contentsOfFile: plane.kubeconfig, encoding: .utf8)
        let server = try #require(admin.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .first { $0.hasPrefix("server:") }.flatMap { URL(string: String($0.dropFirst("server:".count)).trimmingCharacters(in: .whitespaces)) })

        // The repository: the four examples, in the new namespace.
        let origin = try OriginRepository()
        let logs = TemporaryDirectory("cairn-image-logs")
        let git = try GitDaemon(base: origin.root.path, log: logs.file("git-daemon.log"))
        defer { git.stop() }
        var examples: [String: String] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: Repo.clusters.path) where file.hasSuffix(".yaml") {
            var lines = try String(contentsOf: Repo.clusters.appendingPathComponent(file), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            lines.removeAll { $0.hasPrefix("  namespace: ") }
            let metadata = try #require(lines.firstIndex(of: "metadata:"))
            lines.insert("  namespace: \(ns)", at: metadata + 1)
            examples["clusters/\(file)"] = lines.joined(separator: "\n")
        }
        #expect(examples.count == 4)
        try origin.commit(examples)

        // deploy/config.yaml's settings, with this test's repository, namespace and ports.
        let config = try String(contentsOfFile: deploy + "/config.yaml", encoding: .utf8)
        var settings: [String: String] = [:]
        for line in config.split(separator: "\n").prefix { $0 != "---" } where line.hasPrefix("  CAIRN_") {
            let parts = line.dropFirst(2).split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { settings[parts[0]] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
        #expect(settings["CAIRN_LEADER_ELECT"] == "true" && settings["CAIRN_CACHE_DIR"] == "/var/cache/cairn", "\(settings)")
        let metricsPort = freePort()
        settings["CAIRN_REPO"] = git.url("origin.git")
        settings["CAIRN_NAMESPACE_ALLOW"] = ns
        settings["CAIRN_METRICS_ADDRESS"] = "127.0.0.1:\(metricsPort)"
        settings["CAIRN_INTERVAL"] = "1s"
        settings["CAIRN_SSH_KEY"] = nil
        settings["CAIRN_KNOWN_HOSTS"] = nil
        settings["POD_NAME"] = "cairn-image-\(ns)"
        settings["POD_NAMESPACE"] = "cairn-system"
        settings["KUBERNETES_SERVICE_HOST"] = server.host
        settings["KUBERNETES_SERVICE_PORT"] = server.port.map(String.init)

        let buildah = ["/usr/bin/buildah", "--storage-driver", "vfs"]
        let created = try run(buildah[0], Array(buildah.dropFirst()) + ["from", "--pull=never", image])
        try #require(created.status == 0, "\(created.stderr)")
        let container = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? run(buildah[0], Array(buildah.dropFirst()) + ["rm", container]) }
        let environment = settings.sorted { $0.key < $1.key }.flatMap { ["--env", "\($0.key)=\($0.value)"] }
        let cairn = try ServerProcess("cairn in its image", buildah[0], Array(buildah.dropFirst()) + [
            "run", "--isolation", "chroot", "--user", "65532:65532",
            "--volume", "\(mounted.path):/var/run/secrets/kubernetes.io/serviceaccount:ro", "--volume", "\(cache.path):/var/cache/cairn",
        ] + environment + [container, "--", "/usr/local/bin/cairn", "run"], log: logs.file("cairn.log"))
        defer { cairn.stop() }
        func log() -> String { ((try? String(contentsOfFile: logs.file("cairn.log"), encoding: .utf8)) ?? "").suffix(4000).description }
        func eventually(_ seconds: Double, _ condition: () throws -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline, cairn.isRunning {
                if (try? condition()) == true { return true }
                usleep(250_000)
            }
            return (try? condition()) == true
        }
        func status(_ name: String) -> String? {
            let r = try? run("/usr/bin/git", ["--git-dir", origin.bare, "show", "cairn-status:status/\(ns)/\(name).yaml"])
            return r?.status == 0 ? r?.stdout : nil
        }
        let names = ["acid-minimal-cluster", "aerocluster", "esdb-cluster", "example-atomixcluster"]
        #expect(eventually(180) { names.allSatisfy { status($0) != nil } }, "no status commits for the four clusters: \(log())")
        #expect(names.allSatisfy { status($0)?.contains("failed") == false }, "\(names.map { status($0) ?? "" })\n\(log())")
        #expect(try kubectl(["-n", "cairn-system", "get", "lease", "cairn", "-o", "jsonpath={.spec.holderIdentity}"]).stdout == "cairn-image-\(ns)")
        #expect(try kubectl(["-n", ns, "get", "secret", "zalando.acid-minimal-cluster.credentials.postgresql.acid.zalan.do"]).status == 0,
                "no generated credentials: \(log())")
        #expect(try kubectl(["-n", ns, "get", "statefulset", "esdb-cluster"]).status == 0)
        let metrics = try run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(metricsPort)/metrics"]).stdout
        #expect(try Exposition(metrics).value("cairn_leader") == 1, "\(metrics.prefix(500))")
        // The mirror in the volume, written as the image's user.
        let owners = try run("/usr/bin/find", [cache.path, "-mindepth", "1", "-maxdepth", "2", "-printf", "%u %p\n"]).stdout
        #expect(!owners.isEmpty && owners.split(separator: "\n").allSatisfy { $0.hasPrefix("65532 ") }, "the cache volume: \(owners)")

        // A configuration change rolls the StatefulSet (its template's hash) and says so in an Event.
        func hash() throws -> String {
            try kubectl(["-n", ns, "get", "statefulset", "esdb-cluster", "-o", "jsonpath={.spec.template.metadata.annotations.cairn\\.dev/config-hash}"]).stdout
        }
        let before = try hash()
        #expect(!before.isEmpty)
        let esdb = try #require(examples["clusters/esdb-cluster.yaml"])
        #expect(esdb.contains("RunProjections: System"))
        try origin.commit(["clusters/esdb-cluster.yaml": esdb.replacingOccurrences(of: "RunProjections: System", with: "RunProjections: All")])
        #expect(eventually(60) { try hash() != before }, "the configuration change did not roll: \(log())")
        #expect(eventually(30) { try kubectl(["-n", ns, "get", "events", "--field-selector", "reason=RolloutStarted", "-o", "name"]).stdout.contains("esdb-cluster") },
                "no RolloutStarted event: \(log())")

        // Drift: with deploy/'s RBAC the watches work (list and watch granted), and a scaled
        // StatefulSet is put back without a resync (deploy/config.yaml's is 10 minutes).
        #expect(try kubectl(["-n", ns, "scale", "statefulset/esdb-cluster", "--replicas=5"]).status == 0)
        #expect(eventually(30) {
            try kubectl(["-n", ns, "get", "statefulset", "esdb-cluster", "-o", "jsonpath={.spec.replicas}"]).stdout == "3"
        }, "the scale was not put back: \(log())")
        // (The StatefulSet's own follow-up pass could put it back too: the drift counter says the
        // watch saw it.)
        let cached = try Exposition(try run("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(metricsPort)/metrics"]).stdout)
        #expect((cached.value("cairn_live_cache", ["count": "watches"]) ?? 0) > 0, "\(log())")
        #expect((cached.value("cairn_drift_events_total", ["kind": "StatefulSet"]) ?? 0) > 0, "the watch did not see the scale: \(log())")

        // A removed cluster is pruned (its generated Secrets would stay; Atomix has none).
        try origin.commit(["clusters/example-atomixcluster.yaml": nil])
        #expect(eventually(60) {
            try kubectl(["-n", ns, "get", "statefulset,service,configmap", "-l", "app.kubernetes.io/instance=example-atomixcluster", "-o", "name"]).stdout.isEmpty
        }, "the removed cluster was not pruned: \(log())")
        #expect(eventually(30) { status("example-atomixcluster") == nil }, "its status file stayed")
        #expect(try kubectl(["-n", ns, "get", "statefulset", "esdb-cluster"]).status == 0, "the others stay")
        #expect(!log().contains("Forbidden"), "deploy/'s RBAC refused something: \(log())")

        // It wrote nothing outside its volume (deploy/ runs it with a read-only root file system).
        cairn.stop()
        // (The image has no shell and no find: its root is read from here.)
        let root = try run(buildah[0], Array(buildah.dropFirst()) + ["mount", container]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? run(buildah[0], Array(buildah.dropFirst()) + ["umount", container]) }
        let written = try run("/usr/bin/find", [root, "-xdev", "-user", "65532", "-not", "-path", root + "/var/cache/cairn"])
        #expect(!root.isEmpty && written.status == 0 && written.stdout.isEmpty,
                "written outside /var/cache/cairn: \(written.stdout.prefix(1000))\(written.stderr)")
        // Nothing in it cairn does not need: no shell, no package manager.
        #expect(!FileManager.default.fileExists(atPath: root + "/bin/sh") && !FileManager.default.fileExists(atPath: root + "/usr/bin/apt-get"))
    }
}
