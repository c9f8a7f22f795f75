public import ClusterSpecs

/// PostgreSQL with Patroni, in the Zalando operator's `postgresql` shape: replicas restarted
/// before the primary.
package enum PostgresSystem: ClusterSystem {
    package static let apiVersion = PostgresSpec.apiVersion
    package static let kind = PostgresSpec.kind
    package static let objectKinds: [(apiVersion: String, kind: String)] = [
        ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"), ("apps/v1", "Deployment"),
    ]
    package static let rollout = RolloutPolicy.replicasFirstPrimaryLast

    /// The Zalando operator's fields cairn does not read (its CRD `acid.zalan.do/v1`).
    package static let refusedInDecoder: [String: String] = [
        "spec.volume.iops": "not rendered",
        "spec.volume.throughput": "not rendered",
        "spec.volume.selector": "volumes come from the storage class",
        "spec.volume.subPath": "not rendered",
    ]

    package static let fieldPolicies: [String: FieldPolicy] = {
        let rotation = FieldPolicy.operatorOnly("password rotation is the upstream operator's own (its enable_password_rotation, off by "
                                                + "default); cairn never rotates a password: set a new one in the role's Secret")
        return [
            "spec.clone": .unsupported("cloning is not rendered yet"),
            "spec.logicalBackup": .unsupported("logical backups are not rendered yet"),
            "spec.enableLogicalBackup": .unsupported("logical backups are not rendered yet"),
            "spec.logicalBackupSchedule": .unsupported("logical backups are not rendered yet"),
            "spec.logicalBackupRetention": .unsupported("logical backups are not rendered yet"),
            "spec.streams": .unsupported("change-data-capture streams are not rendered yet"),
            "spec.patroni.slots": .unsupported("replication slots are not rendered yet"),
            "spec.spiloRunAsUser": .unsupported("Spilo runs as its image's user"),
            "spec.spiloRunAsGroup": .unsupported("Spilo runs as its image's group"),
            "spec.spiloFSGroup": .unsupported("Spilo runs as its image's group"),
            "spec.volume.type": .unsupported("the upstream operator changes EBS volume types through AWS itself; set the type in the storage class"),
            "spec.volume.isSubPathExpr": .unsupported("subPath is not rendered"),
            "spec.maintenanceWindows": .operatorOnly("the upstream operator's windows for the major upgrades and switchovers it starts "
                                                     + "itself; cairn does neither on its own, and rolls pods out when a commit lands"),
            "spec.usersWithSecretRotation": rotation, "spec.usersWithInPlaceSecretRotation": rotation,
            "spec.usersIgnoringSecretRotation": rotation,
        ]
    }()

    package static func decode(_ spec: Field, metadata: ClusterMetadata?) -> PostgresSpec? {
        PostgresSpec.decode(spec, metadata: metadata)
    }

    package static func render(_ spec: PostgresSpec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        PostgresRenderer.render(spec, metadata, options: options)
    }
}
