public import ClusterSpecs

/// Aerospike, in the Aerospike operator's `AerospikeCluster` shape: racks rolled one after the other.
package enum AerospikeSystem: ClusterSystem {
    package static let apiVersion = AerospikeSpec.apiVersion
    package static let kind = AerospikeSpec.kind
    package static let objectKinds: [(apiVersion: String, kind: String)] = [("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "StatefulSet")]
    package static let rollout = RolloutPolicy.setBySet

    package static func decode(_ spec: Field, metadata: ClusterMetadata?) -> AerospikeSpec? {
        AerospikeSpec.decode(spec, metadata: metadata)
    }

    package static func render(_ spec: AerospikeSpec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        AerospikeRenderer.render(spec, metadata, options: options)
    }
}
