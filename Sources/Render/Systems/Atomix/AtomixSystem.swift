public import ClusterSpecs

/// Atomix 3.1, in the Atomix operator's `AtomixCluster` shape.
package enum AtomixSystem: ClusterSystem {
    package static let apiVersion = AtomixSpec.apiVersion
    package static let kind = AtomixSpec.kind
    package static let objectKinds: [(apiVersion: String, kind: String)] = [("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "StatefulSet")]
    package static let rollout = RolloutPolicy.controller

    /// The operator's `[]corev1.EnvVar`: only literal values (AtomixUpstreamFieldTests).
    package static let refusedInDecoder: [String: String] = [
        "spec.managementGroup.env[].valueFrom": EnvVar.valueFromRefusal,
        "spec.partitionGroups[].env[].valueFrom": EnvVar.valueFromRefusal,
        "spec.benchmark.env[].valueFrom": EnvVar.valueFromRefusal,
    ]

    package static func decode(_ spec: Field, metadata: ClusterMetadata?) -> AtomixSpec? {
        AtomixSpec.decode(spec, metadata: metadata)
    }

    package static func render(_ spec: AtomixSpec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        AtomixRenderer.render(spec, metadata, options: options)
    }

    package static func scaleWarning(statefulSet: String, from: Int, to: Int) -> String? {
        "\(statefulSet): members \(from) -> \(to). A Raft or primary-backup group's membership is fixed when the group forms; "
            + "Atomix does not reconfigure a running group, so a new group size needs the group's data migrated"
    }
}
