public import ClusterSpecs

/// PostgreSQL with Patroni, in the Zalando operator's `postgresql` shape: replicas restarted
/// before the primary.
package enum PostgresSystem: ClusterSystem {
    package static let apiVersion = PostgresSpec.apiVersion
    package static let kind = PostgresSpec.kind
    package static let objectKinds: [(apiVersion: String, kind: String)] = [
        ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "StatefulSet"),
    ]
    package static let rollout = RolloutPolicy.replicasFirstPrimaryLast

    package static func decode(_ spec: Field, metadata: ClusterMetadata?) -> PostgresSpec? {
        PostgresSpec.decode(spec, metadata: metadata)
    }

    package static func render(_ spec: PostgresSpec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        PostgresRenderer.render(spec, metadata, options: options)
    }
}
