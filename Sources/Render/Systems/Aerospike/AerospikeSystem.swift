public import ClusterSpecs

/// Aerospike, in the Aerospike operator's `AerospikeCluster` shape: racks rolled one after the other.
package enum AerospikeSystem: ClusterSystem {
    package static let apiVersion = AerospikeSpec.apiVersion
    package static let kind = AerospikeSpec.kind
    package static let objectKinds: [(apiVersion: String, kind: String)] = [
        ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "StatefulSet"), ("batch/v1", "Job"),
        // A Block volume's initMethod: the service account `cairn volume-init` runs as.
        ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ]
    package static let rollout = RolloutPolicy.setBySet
    /// The operator's 2.x served `v1beta1`; 3.0 renamed it `v1` and only added optional fields
    /// (compared field by field at 2.5.0 and 3.0.0).
    package static let olderAPIVersions = ["asdb.aerospike.com/v1beta1"]

    /// The Aerospike operator's fields cairn does not read (its CRD `asdb.aerospike.com/v1`).
    package static let refusedInDecoder: [String: String] = [
        "spec.podSpec.aerospikeContainer.resources.claims": "dynamic resource claims are not rendered",
        "spec.podSpec.aerospikeContainer.securityContext.appArmorProfile": "not rendered yet",
        "spec.podSpec.aerospikeContainer.securityContext.windowsOptions": "cairn renders Linux pods",
        "spec.rackConfig.racks[].aerospikeConfig": "per-rack configuration is not rendered yet",
        "spec.rackConfig.racks[].podSpec": "per-rack pod settings are not rendered yet",
        "spec.rackConfig.racks[].storage": "per-rack storage is not rendered yet",
        "spec.rackConfig.racks[].nodeName": "use zone or region",
        "spec.rackConfig.racks[].rackLabel": "use zone or region",
        "spec.rackConfig.racks[].revision": "use a new rack id to change a rack's storage",
        "spec.storage.deleteLocalStorageOnRestart": "cairn never deletes a PersistentVolumeClaim",
        "spec.storage.localStorageClasses": "the upstream operator deletes these claims when a pod restarts; cairn never deletes a PersistentVolumeClaim",
        "spec.storage.volumes[].source.configMap": "mount configuration through aerospikeConfig",
        "spec.storage.volumes[].source.hostPath": "node directories are not mounted; use a persistentVolume (a local storage class)",
        "spec.storage.volumes[].source.persistentVolume.accessModes": "volumes are ReadWriteOnce",
        "spec.storage.volumes[].source.persistentVolume.metadata": "claim labels and annotations are not rendered yet",
        "spec.storage.volumes[].source.persistentVolume.selector": "volumes come from the storage class",
    ]

    package static let fieldPolicies: [String: FieldPolicy] = [
        "spec.validationPolicy": .operatorOnly("the upstream operator's own checks of work directories and XDR log files; cairn validates every spec itself"),
        "spec.operatorClientCert.certPathInOperator": .unsupported("cairn's users Job cannot read files of the upstream operator's pod; use secretCertSource"),
        "spec.operatorClientCert.secretCertSource.caCertsSource": .unsupported("a CA from another Secret is not mounted yet; put caCertsFilename in the secretName Secret"),
        "spec.enableDynamicConfigUpdate": .operatorOnly("the upstream operator applies some changes without a restart; "
                                                        + "cairn rolls the pods one at a time on any configuration change"),
        "spec.aerospikeAccessControl.adminPolicy": .operatorOnly("the upstream operator's client timeout for admin commands; cairn's user Job uses asadm's"),
        "spec.aerospikeAccessControl.roles": .unsupported("custom roles are not provisioned yet; use the server's predefined roles"),
        "spec.podSpec.aerospikeInitContainer": .operatorOnly("the upstream operator's own init container; cairn renders the one it needs"),
        "spec.seedsFinderServices": .unsupported("LoadBalancer services for seed discovery are not rendered yet"),
        "spec.aerospikeNetworkPolicy.fabric": .unsupported("fabric addresses on custom interfaces are not rendered yet"),
        "spec.aerospikeNetworkPolicy.tlsFabric": .unsupported("fabric addresses on custom interfaces are not rendered yet"),
        "spec.aerospikeNetworkPolicy.customAccessNetworkNames": .unsupported("custom interfaces are not rendered yet"),
        "spec.aerospikeNetworkPolicy.customAlternateAccessNetworkNames": .unsupported("custom interfaces are not rendered yet"),
        "spec.aerospikeNetworkPolicy.customTLSAccessNetworkNames": .unsupported("custom interfaces are not rendered yet"),
        "spec.aerospikeNetworkPolicy.customTLSAlternateAccessNetworkNames": .unsupported("custom interfaces are not rendered yet"),
        "spec.aerospikeNetworkPolicy.customFabricNetworkNames": .unsupported("custom interfaces are not rendered yet"),
        "spec.aerospikeNetworkPolicy.customTLSFabricNetworkNames": .unsupported("custom interfaces are not rendered yet"),
        "spec.k8sNodeBlockList": .unsupported("node block lists are not rendered yet; use rack zones or regions"),
        "spec.operations": .unsupported("one-off warm or cold restarts are not run; change the spec to roll the pods"),
        "spec.paused": .unsupported("cairn has no pause; stop cairn, or take the spec file out of the branch, to stop reconciling"),
        "spec.disablePDB": .unsupported("cairn always renders a PodDisruptionBudget"),
        "spec.enableRackIDOverride": .unsupported("rack ids from pod annotations are not read; give the racks in rackConfig"),
        "spec.podService": .unsupported("per-pod Services are not rendered yet"),
        "spec.podSpec.effectiveDNSPolicy": .operatorOnly("written by the upstream operator from dnsPolicy; cairn reads dnsPolicy"),
        "spec.rackConfig.maxIgnorablePods": .operatorOnly("the upstream operator's tolerance of pods that fail in its own operations; "
                                                          + "cairn restarts one pod at a time and waits for it"),
        "spec.rackConfig.rollingUpdateBatchSize": .operatorOnly("cairn restarts one pod at a time, the smallest batch"),
        "spec.rackConfig.scaleDownBatchSize": .operatorOnly("the StatefulSet controller removes pods one at a time"),
        "spec.rackConfig.racks[].forceBlockFromRoster": .unsupported("racks blocked from the roster are not rendered yet; list their "
                                                                     + "nodes in rosterNodeBlockList"),
        "spec.rackConfig.racks[].effectiveAerospikeConfig": effective, "spec.rackConfig.racks[].effectivePodSpec": effective,
        "spec.rackConfig.racks[].effectiveStorage": effective,
        "spec.storage.deleteLocalStorageOnPodRecovery": .operatorOnly("cairn never deletes a PersistentVolumeClaim; when a node with "
                                                                      + "local storage is lost, delete its pod's claims by hand"),
    ].merging(["filesystemVolumePolicy", "blockVolumePolicy", "volumes[]"].flatMap { policy in
        ["effectiveCascadeDelete", "effectiveInitMethod", "effectiveWipeMethod"].map { ("spec.storage.\(policy).\($0)", effective) }
    }) { a, _ in a }

    /// Fields the upstream operator fills in from others; manifests do not set them.
    static let effective = FieldPolicy.operatorOnly("filled in by the upstream operator from the fields it derives from; cairn reads those")

    package static func decode(_ spec: Field, metadata: ClusterMetadata?) -> AerospikeSpec? {
        AerospikeSpec.decode(spec, metadata: metadata)
    }

    package static func render(_ spec: AerospikeSpec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        AerospikeRenderer.render(spec, metadata, options: options)
    }

    /// A Block volume's initMethod runs `cairn volume-init` from cairn's own image.
    package static func renderProblems(_ spec: AerospikeSpec, _ metadata: ClusterMetadata, options: RenderOptions)
        -> [(location: Location, path: String, message: String)] {
        guard options.cairnImage == nil else { return [] }
        return spec.devicesInitialised.compactMap { v in
            v.initMethodAt.map { at in
                (at.location, at.path, "\(v.initMethod) on \(v.name) runs once per volume claim as cairn volume-init, from cairn's own image, "
                    + "which is not known here: set CAIRN_IMAGE (deploy/deployment.yaml sets it) or --dns-proxy-image")
            }
        }
    }
}
