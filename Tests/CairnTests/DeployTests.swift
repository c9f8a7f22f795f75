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
        ]
        let refused: [[String]] = [
            ["delete", "persistentvolumeclaims", "-n", "databases"], ["get", "persistentvolumeclaims", "-n", "databases"],
            ["list", "secrets", "-n", "kube-system"], ["get", "secrets", "-n", "databases"], ["delete", "secrets", "-n", "databases"],
            ["update", "secrets", "-n", "databases"], ["create", "clusterroles.rbac.authorization.k8s.io"],
            ["bind", "clusterroles.rbac.authorization.k8s.io"], ["update", "leases.coordination.k8s.io", "-n", "default"],
            ["delete", "namespaces"], ["update", "namespaces"], ["patch", "namespaces"], ["create", "deployments.apps", "-n", "databases"], ["update", "statefulsets.apps", "-n", "databases"],
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
}
