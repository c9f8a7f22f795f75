public import ClusterSpecs
import DNSProxy

/// EventStoreDB / KurrentDB, in the KurrentDB operator's `KurrentDB` shape.
package enum EventStoreSystem: ClusterSystem {
    package static let apiVersion = EventStoreSpec.apiVersion
    package static let kind = EventStoreSpec.kind
    package static let objectKinds: [(apiVersion: String, kind: String)] = [
        ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "StatefulSet"), ("batch/v1", "Job"),
    ]
    package static let rollout = RolloutPolicy.controller

    /// The KurrentDB operator's fields cairn does not read (its CRD `kubernetes.kurrent.io/v1`).
    package static let fieldPolicies: [String: FieldPolicy] = [
        "spec.readOnlyReplicas.configuration": .unsupported("read-only replicas take the cluster's configuration"),
        "spec.archiver.configuration": .unsupported("the archiver takes the cluster's configuration"),
        "spec.sourceImage": .unsupported("the image is given by spec.image alone"),
        "spec.sourceBackup": .unsupported("restoring from a backup is not rendered yet"),
        "spec.extraMetadata": .unsupported("extra labels and annotations per object are not rendered yet; metadata.labels go on every object"),
    ]

    package static func decode(_ spec: Field, metadata: ClusterMetadata?) -> EventStoreSpec? {
        EventStoreSpec.decode(spec, metadata: metadata)
    }

    package static func render(_ spec: EventStoreSpec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        EventStoreRenderer.render(spec, metadata, options: options)
    }

    package static func renderProblems(_ spec: EventStoreSpec, _ metadata: ClusterMetadata, options: RenderOptions)
        -> [(location: Location, path: String, message: String)] {
        guard let split = spec.splitDNS else { return [] }
        var problems: [(location: Location, path: String, message: String)] = []
        // The nodes' names as the resolver takes them (the template checked with placeholders
        // when read; here with the cluster's own name, namespace, domain and highest ordinal).
        let highest = String(max(spec.replicas, spec.readOnlyReplicas, 1) - 1)
        for rule in EventStoreRenderer.splitDNSRules(spec, metadata) {
            do {
                _ = try DNSRule(parsing: rule.replacing("{n}", with: highest))
            } catch {
                problems.append((split.location, split.path, "SplitDNS's resolver cannot take the rule \(rule): \(error)"))
            }
        }
        if options.cairnImage == nil {
            problems.append((split.location, split.path, "SplitDNS runs cairn's resolver (cairn dns-proxy) beside each node from cairn's own image, "
                             + "which is not known here: set CAIRN_IMAGE (deploy/deployment.yaml sets it) or --dns-proxy-image"))
        }
        if options.clusterDNS == nil {
            problems.append((split.location, split.path, "SplitDNS passes every other name to the cluster DNS, whose address is not known here "
                             + "(cairn reads it from the Service kube-system/kube-dns, which deploy/rbac.yaml's Role cairn-cluster-dns "
                             + "lets it read): give it with --cluster-dns"))
        }
        return problems
    }

    package static func scaleWarning(statefulSet: String, from: Int, to: Int) -> String? {
        "\(statefulSet): replicas \(from) -> \(to). EventStoreDB reads its cluster size (ClusterSize) and gossip seeds from its configuration at start, "
            + "so every node restarts with the new size while the others still count the old one, "
            + "and quorum is computed differently until the rollout ends. "
            + "Resizing a running cluster is not supported upstream: take a backup first and keep the size odd"
    }
}
