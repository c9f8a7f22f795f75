public import ClusterSpecs

/// PostgreSQL with Patroni, in the Zalando operator's `postgresql` shape: replicas restarted
/// before the primary.
package enum PostgresSystem: ClusterSystem {
    package static let apiVersion = PostgresSpec.apiVersion
    package static let kind = PostgresSpec.kind
    package static let objectKinds: [(apiVersion: String, kind: String)] = [
        ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
    ]
    package static let rollout = RolloutPolicy.replicasFirstPrimaryLast

    /// The Zalando operator's fields cairn does not read (its CRD `acid.zalan.do/v1`).
    package static let fieldPolicies: [String: FieldPolicy] = {
        let pooler = FieldPolicy.unsupported("a connection pooler is not rendered yet; false, the default, is accepted")
        return [
            "spec.clone": .unsupported("cloning is not rendered yet"),
            "spec.connectionPooler": .unsupported("a connection pooler is not rendered yet"), "spec.enableConnectionPooler": pooler, "spec.enableReplicaConnectionPooler": pooler,
            "spec.enableMasterPoolerLoadBalancer": pooler, "spec.enableReplicaPoolerLoadBalancer": pooler,
            "spec.logicalBackup": .unsupported("logical backups are not rendered yet"),
            "spec.enableLogicalBackup": .unsupported("logical backups are not rendered yet"),
            "spec.logicalBackupSchedule": .unsupported("logical backups are not rendered yet"),
            "spec.streams": .unsupported("change-data-capture streams are not rendered yet"),
            "spec.patroni.slots": .unsupported("replication slots are not rendered yet"),
            "spec.spiloRunAsUser": .unsupported("Spilo runs as its image's user"),
            "spec.spiloRunAsGroup": .unsupported("Spilo runs as its image's group"),
            "spec.spiloFSGroup": .unsupported("Spilo runs as its image's group"),
        ]
    }()

    package static func decode(_ spec: Field, metadata: ClusterMetadata?) -> PostgresSpec? {
        PostgresSpec.decode(spec, metadata: metadata)
    }

    package static func render(_ spec: PostgresSpec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        PostgresRenderer.render(spec, metadata, options: options)
    }
}
