import Foundation
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

    @Test func manifestsApplyAndTheServiceAccountMayDoWhatCairnDoesAndNothingElse() throws {
        // A server-side dry run cannot create the namespaces the other objects go in: they come first.
        let namespaces = try kubectl(["apply", "-f", deploy + "/namespace.yaml"])
        #expect(namespaces.status == 0, "\(namespaces.stderr)")
        let dryRun = try kubectl(["apply", "-k", deploy, "--dry-run=server"])
        #expect(dryRun.status == 0, "\(dryRun.stdout)\(dryRun.stderr)")
        #expect(dryRun.stdout.contains("deployment.apps/cairn created (server dry run)"), "\(dryRun.stdout)")

        let applied = try kubectl(["apply", "-k", deploy])
        #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
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
            ["create", "namespaces"], ["get", "namespaces"],
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
}
