import ClusterSpecs
@testable import Render
import Testing

/// One test per validation rule, each asserting the exact message and location.
@Suite("Spec validation: strict fields, rules, locations")
struct ValidationTests {
    // MARK: - Any spec

    @Test func unknownFieldIsAnErrorAtItsKey() {
        let yaml = """
            apiVersion: acid.zalan.do/v1
            kind: postgresql
            metadata:
              name: pg
            spec:
              teamId: acid
              numberOfInstances: 1
              volume: {size: 1Gi}
              postgresql: {version: "16"}
              numberOfInstance: 2
            """
        #expect(specErrors(yaml).count == 1)
        // A typo close to a known field gets a suggestion; a field far from any lists them all.
        #expect(specErrors(yaml).first == "t.yaml:10:3: spec.numberOfInstance: unknown field; did you mean numberOfInstances?")
        let far = yaml.replacingOccurrences(of: "numberOfInstance: 2", with: "colour: 2")
        #expect(specErrors(far).first?.hasPrefix("t.yaml:10:3: spec.colour: unknown field (known fields here: ") == true, "\(specErrors(far))")
    }

    @Test func unsupportedFieldSaysWhy() {
        let yaml = """
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: es}
            spec:
              replicas: 1
              image: eventstore/eventstore:23.10.2-bookworm-slim
              storage: {resources: {requests: {storage: 1Gi}}}
              sourceBackup: {name: x}
            """
        #expect(specErrors(yaml) == [
            "t.yaml:8:3: spec.sourceBackup: not supported by cairn yet: restoring from a backup is not rendered yet",
        ])
    }

    @Test func statusAndServerFieldsAreRefused() {
        let yaml = """
            apiVersion: acid.zalan.do/v1
            kind: postgresql
            metadata:
              name: pg
              uid: 0b4c
            spec:
              teamId: acid
              numberOfInstances: 1
              volume: {size: 1Gi}
              postgresql: {version: "16"}
            status:
              PostgresClusterStatus: Running
            """
        #expect(specErrors(yaml) == [
            "t.yaml:5:3: metadata.uid: is not supported by cairn: is set by the API server; a spec file is not a `kubectl get` dump, remove it",
            "t.yaml:11:1: status: is not supported by cairn: status is written by cairn; remove it from the spec file",
        ])
    }

    @Test func missingRequiredFieldIsReportedAtItsMapping() {
        let yaml = """
            apiVersion: acid.zalan.do/v1
            kind: postgresql
            metadata:
              name: pg
            spec:
              numberOfInstances: 1
              volume: {size: 1Gi}
              postgresql: {version: "16"}
            """
        #expect(specErrors(yaml) == ["t.yaml:6:3: spec.teamId: is required"])
    }

    @Test func wrongTypeNamesWhatWasFound() {
        let yaml = """
            apiVersion: acid.zalan.do/v1
            kind: postgresql
            metadata:
              name: pg
            spec:
              teamId: acid
              numberOfInstances: two
              volume: {size: 1Gi}
              postgresql: {version: "16"}
            """
        #expect(specErrors(yaml) == ["t.yaml:7:22: spec.numberOfInstances: must be an integer (got a string)"])
    }

    @Test func unknownKindListsTheSupportedOnes() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n"
        #expect(specErrors(yaml).first?.hasPrefix("t.yaml:2:7: kind: apps/v1 Deployment is not a cluster spec cairn knows (supported: kubernetes.kurrent.io/v1 KurrentDB") == true)
    }

    @Test func clusterAndNamespaceNamesAreDNSLabels() {
        let yaml = """
            apiVersion: acid.zalan.do/v1
            kind: postgresql
            metadata:
              name: Orders_DB
              namespace: -prod
            spec:
              teamId: acid
              numberOfInstances: 1
              volume: {size: 1Gi}
              postgresql: {version: "16"}
            """
        #expect(specErrors(yaml) == [
            "t.yaml:4:9: metadata.name: 'Orders_DB' is not a valid cluster name: lower-case letters, digits and '-', starting with a letter, at most 63 characters",
            "t.yaml:5:14: metadata.namespace: '-prod' is not a valid namespace name: lower-case letters, digits and '-', at most 63 characters",
        ])
    }

    @Test func quantitiesAreChecked() {
        let yaml = """
            apiVersion: acid.zalan.do/v1
            kind: postgresql
            metadata:
              name: pg
            spec:
              teamId: acid
              numberOfInstances: 1
              volume: {size: 1 GB}
              postgresql: {version: "16"}
              resources:
                requests: {cpu: "2"}
                limits: {cpu: 500m, gpu: 1}
            """
        #expect(specErrors(yaml) == [
            "t.yaml:8:18: spec.volume.size: '1 GB' is not a quantity (examples: 10Gi, 512Mi, 500m, 2)",
            "t.yaml:11:21: spec.resources.requests.cpu: request 2 is more than the limit 500m",
            "t.yaml:12:30: spec.resources.limits.gpu: 'gpu' is not a resource name (cpu, memory, ephemeral-storage, hugepages-<size>, or domain/name)",
        ])
    }

    @Test func allErrorsOfAFileAreReportedTogether() {
        let yaml = """
            apiVersion: agent.atomix.io/v1alpha1
            kind: AtomixCluster
            metadata:
              name: orders
            spec:
              managementGroup:
                size: 2
              partitionGroups:
                - name: raft
                  size: 3
                  partitions: 3
                  raft: {}
                - name: data
                  size: 3
                  partitions: 0
                  raft: {}
            """
        #expect(specErrors(yaml, file: "clusters/orders.yaml") == [
            "clusters/orders.yaml:7:11: spec.managementGroup.size: must be odd (got 2); the management group is a Raft group and needs a majority",
            "clusters/orders.yaml:15:19: spec.partitionGroups[1].partitions: must be at least 1 (got 0)",
        ])
    }

    @Test func duplicateClusterIdentitiesAcrossFilesAreRefused() {
        let a = "apiVersion: acid.zalan.do/v1\nkind: postgresql\nmetadata: {name: pg, namespace: db}\nspec: {teamId: a, numberOfInstances: 1, volume: {size: 1Gi}, postgresql: {version: \"16\"}}\n"
        let b = "apiVersion: kubernetes.kurrent.io/v1\nkind: KurrentDB\nmetadata:\n  namespace: db\n  name: pg\nspec: {replicas: 1, image: \"eventstore/eventstore:23.10.2\", storage: {resources: {requests: {storage: 1Gi}}}}\n"
        let c = "apiVersion: acid.zalan.do/v1\nkind: postgresql\nmetadata: {name: pg, namespace: other}\nspec: {teamId: a, numberOfInstances: 1, volume: {size: 1Gi}, postgresql: {version: \"16\"}}\n"
        let result = ClusterSpecLoader.loadAll([("a.yaml", a), ("b.yaml", b), ("c.yaml", c)])
        #expect(result.clusters.map(\.identity) == ["other/pg"])
        #expect(result.errors.map(\.description) == [
            "a.yaml:3:18: metadata.name: cluster db/pg is also defined at b.yaml:5:9; each cluster needs exactly one spec file",
            "b.yaml:5:9: metadata.name: cluster db/pg is also defined at a.yaml:3:18; each cluster needs exactly one spec file",
        ])
    }

    @Test func clustersThatWouldRenderTheSameObjectAreRefused() throws {
        let atomix = try loadSpec("apiVersion: agent.atomix.io/v1alpha1\nkind: AtomixCluster\nmetadata: {name: orders}\nspec:\n  partitionGroups: [{name: db, raft: {}}]\n", file: "a.yaml")
        let other = try loadSpec("apiVersion: agent.atomix.io/v1alpha1\nkind: AtomixCluster\nmetadata: {name: orders-db}\nspec: {}\n", file: "b.yaml")
        let result = ClusterRenderer.renderAll([atomix, other])
        #expect(result.clusters.isEmpty)
        #expect(result.errors.count == 2)
        #expect(result.errors[0].description.hasPrefix("a.yaml:3:18: metadata.name: cluster default/orders would render objects another cluster renders too: ConfigMap/default/orders-db-init (also rendered for b.yaml)"))
    }

    // MARK: - EventStoreDB

    static let esdbHead = """
        apiVersion: kubernetes.kurrent.io/v1
        kind: KurrentDB
        metadata: {name: es}
        spec:
          storage: {resources: {requests: {storage: 1Gi}}}

        """

    @Test func eventStoreReplicasAreOneThreeOrFive() {
        #expect(specErrors(Self.esdbHead + "  replicas: 2\n  image: eventstore/eventstore:23.10.2\n") == [
            "t.yaml:6:13: spec.replicas: must be 1, 3 or 5, or 0 for standalone read-only replicas (got 2); an EventStoreDB cluster needs an odd number of nodes for quorum",
        ])
    }

    @Test func eventStoreManagedKeysAreRefused() {
        let yaml = Self.esdbHead + "  replicas: 3\n  image: eventstore/eventstore:23.10.2\n  configuration:\n    ClusterSize: 5\n    GossipSeed: a:2113\n"
        #expect(specErrors(yaml) == [
            "t.yaml:9:18: spec.configuration.ClusterSize: ClusterSize is managed by cairn (computed from replicas, storage and the pod names); remove it",
            "t.yaml:10:17: spec.configuration.GossipSeed: GossipSeed is managed by cairn (computed from replicas, storage and the pod names); remove it",
        ])
    }

    @Test func eventStoreConfigurationFollowsTheImageVersion() {
        let renamed = Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:23.10.2-bookworm-slim\n  configuration:\n    ExtIp: 0.0.0.0\n"
        #expect(specErrors(renamed) == [
            "t.yaml:9:12: spec.configuration.ExtIp: ExtIp was renamed NodeIp in 23.10, and this image's server (23.10) refuses the old name",
        ])
        let removed = Self.esdbHead + "  replicas: 1\n  image: docker.kurrent.io/kurrent-latest/kurrentdb:25.0.1\n  configuration:\n    EnableExternalTcp: true\n"
        #expect(specErrors(removed) == [
            "t.yaml:9:24: spec.configuration.EnableExternalTcp: EnableExternalTcp was removed with external TCP in 24.2; this image's server (25.0 and later) refuses it",
        ])
        let newNameOnOld = Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:22.10.5-buster-slim\n  configuration:\n    NodeIp: 0.0.0.0\n"
        #expect(specErrors(newNameOnOld) == [
            "t.yaml:9:13: spec.configuration.NodeIp: NodeIp is the 23.10 name; this image's server (20.10-23.6) reads ExtIp",
        ])
    }

    @Test func eventStoreImageNeedsAVersionTag() {
        #expect(specErrors(Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:latest\n") == [
            "t.yaml:7:10: spec.image: cannot tell the server version from 'eventstore/eventstore:latest'; use a versioned tag such as eventstore/eventstore:23.10.2-bookworm-slim (the configuration file's keys depend on the version)",
        ])
        #expect(specErrors(Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:5.0.11\n") == [
            "t.yaml:7:10: spec.image: EventStoreDB 5.0.11 is not supported; cairn renders configuration for 20.10 and later",
        ])
    }

    @Test func eventStoreConfigurationIsFlatBefore24_10() {
        let yaml = Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:23.10.2\n  configuration:\n    Projections: {run: all}\n    bad-key: 1\n"
        #expect(specErrors(yaml) == [
            "t.yaml:9:18: spec.configuration.Projections: is a section (nested options), which EventStoreDB reads from 24.10 on; this image's server (23.10.2) ignores it without a word",
            "t.yaml:10:14: spec.configuration.bad-key: 'bad-key' is not an EventStoreDB option name (PascalCase letters and digits, at most 128, e.g. MaxAppendSize)",
        ])
        // Found by the conf fuzz target: a key over 1,024 characters cannot be read back from
        // eventstore.conf (YAML's implicit key limit).
        let long = "A" + String(repeating: "b", count: 1_300)
        // (YAML's explicit key syntax takes a key of any length.)
        let tooLong = Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:23.10.2\n  configuration:\n    ? \(long)\n    : 1\n"
        #expect(specErrors(tooLong).count == 1 && specErrors(tooLong)[0].contains("is not an EventStoreDB option name"), "\(specErrors(tooLong))")
    }

    /// Bug 5 of #15: the vendor's own archiving example, a nested `configuration`, was refused.
    @Test func kurrentDBSectionsAreWrittenNested() throws {
        let yaml = Self.esdbHead + """
              replicas: 1
              image: docker.kurrent.io/kurrent-latest/kurrentdb:25.1.0
              configuration:
                MaxAppendSize: 2097152
                Archive:
                  Enabled: true
                  RetainAtLeast:
                    Days: 0
                    LogicalBytes: 1073741824  # 1GiB
                  StorageType: S3
                  S3:
                    Region: us-west-1
                    Bucket: my-bucket
                Licensing:
                  LicenseKey: not-a-real-key
                  Extra: [a, "multi\\nline"]

            """
        let spec = try loadSpec(yaml)
        #expect(spec.notes.map(\.description) == [
            "t.yaml:20:19: spec.configuration.Licensing.LicenseKey: looks like a credential: it is written into the cluster's ConfigMap as it is "
                + "(and it is in git already); anyone who can read ConfigMaps in the namespace can read it",
        ])
        let config = try #require(object(try render(yaml), "ConfigMap", "es-config"))
        let text = try #require(config.body["data", "eventstore.conf"]?.stringValue)
        #expect(text.contains("""
            Archive:
              Enabled: true
              StorageType: S3
              RetainAtLeast:
                Days: 0
                LogicalBytes: 1073741824
              S3:
                Bucket: my-bucket
                Region: us-west-1
            Licensing:
              LicenseKey: not-a-real-key
              Extra:
                - a
                - |-
                  multi
                  line
            MaxAppendSize: 2097152

            """), "\(text)")
        // What the server reads back is what the spec says.
        guard case .mapping(let read) = try SpecFileParser.parse(text, file: "kurrentdb.conf") else { Issue.record("not a mapping"); return }
        let archive = try #require(read["Archive"])
        #expect(Field.toJSON(archive) == ["Enabled": true, "StorageType": "S3", "RetainAtLeast": ["Days": 0, "LogicalBytes": 1073741824],
                                         "S3": ["Bucket": "my-bucket", "Region": "us-west-1"]])
        #expect(read["Licensing"].map(Field.toJSON) == ["LicenseKey": "not-a-real-key", "Extra": ["a", "multi\nline"]])
    }

    @Test func kurrentDBServiceAccount() throws {
        let yaml = Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:23.10.2\n  serviceAccountName: my-irsa-service-account\n"
        let pod = try #require(object(try render(yaml), "StatefulSet", "es")?.body["spec", "template", "spec"])
        #expect(pod["serviceAccountName"] == "my-irsa-service-account")
        let plain = try #require(object(try render(Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:23.10.2\n"), "StatefulSet", "es"))
        #expect(plain.body["spec", "template", "spec", "serviceAccountName"] == nil)
        #expect(specErrors(Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:23.10.2\n  serviceAccountName: Not_Valid\n") == [
            "t.yaml:8:23: spec.serviceAccountName: 'Not_Valid' is not a ServiceAccount name",
        ])
    }

    @Test func kurrentDBSectionsAreCheckedWhereTheServerDoesNot() {
        func errors(_ image: String, _ configuration: String) -> [String] {
            specErrors(Self.esdbHead + "  replicas: 1\n  image: \(image)\n  configuration:\n" + configuration)
        }
        #expect(errors("docker.kurrent.io/kurrent-latest/kurrentdb:25.0.1",
                       "    Archive:\n      Enabled: true\n      StorageType: Azure\n      Retain: {Days: 1}\n") == [
            "t.yaml:10:7: spec.configuration.Archive.RetainAtLeast: is required",
            "t.yaml:11:20: spec.configuration.Archive.StorageType: 'Azure' is not a storage type of this server (25.0.1): FileSystemDevelopmentOnly, S3",
            "t.yaml:12:7: spec.configuration.Archive.Retain: unknown field (known fields here: Enabled, FileSystem, RetainAtLeast, S3, StorageType)",
        ])
        #expect(errors("docker.kurrent.io/kurrent-latest/kurrentdb:26.0.1",
                       "    Archive: {Enabled: true, StorageType: GCP, GCP: {Bucket: b}, RetainAtLeast: {Days: 1, LogicalBytes: 0}}\n") == [])
        #expect(errors("eventstore/eventstore:24.10.0", "    Archive: {Enabled: false}\n") == [
            "t.yaml:9:14: spec.configuration.Archive: archiving came with KurrentDB 25.0; this image's server (24.10.0) has no Archive section",
        ])
        #expect(errors("eventstore/eventstore:24.10.0", "    MaxAppendSize: 1\n    MaxAppendSIZE: 2\n    Plugin: {bad-key: 1, Ok: {Deeper: [x]}}\n") == [
            "t.yaml:10:20: spec.configuration.MaxAppendSIZE: sets the same option as MaxAppendSize: the server reads option names ignoring case",
            "t.yaml:11:23: spec.configuration.Plugin.bad-key: 'bad-key' is not an option name (PascalCase letters and digits, at most 128)",
        ])
    }

    @Test func loadBalancerRangesAreCIDRs() {
        let yaml = Self.esdbHead + "  replicas: 1\n  image: eventstore/eventstore:23.10.2\n  network:\n    loadBalancer:\n      enabled: true\n      allowedIps: [10.0.0.0/8, 10.0.0.1]\n"
        #expect(specErrors(yaml) == [
            "t.yaml:11:32: spec.network.loadBalancer.allowedIps[1]: '10.0.0.1' is not an IP range in CIDR notation (e.g. 10.0.0.0/8)",
        ])
    }

    // MARK: - Atomix

    static let atomixHead = "apiVersion: agent.atomix.io/v1alpha1\nkind: AtomixCluster\nmetadata: {name: ax}\nspec:\n"

    @Test func atomixGroupNeedsExactlyOneProtocol() {
        let both = Self.atomixHead + "  partitionGroups:\n    - name: g\n      raft: {}\n      log: {}\n"
        #expect(specErrors(both) == ["t.yaml:8:7: spec.partitionGroups[0]: sets raft and log; a partition group has exactly one protocol"])
        let none = Self.atomixHead + "  partitionGroups:\n    - name: g\n      size: 1\n"
        #expect(specErrors(none) == ["t.yaml:6:7: spec.partitionGroups[0]: needs exactly one protocol: raft, primaryBackup or log"])
    }

    @Test func atomixGroupNamesAreUniqueDNSLabels() {
        let yaml = Self.atomixHead + "  partitionGroups:\n    - {name: g, raft: {}}\n    - {name: g, log: {}}\n    - {name: G_1, log: {}}\n"
        #expect(specErrors(yaml) == [
            "t.yaml:7:7: spec.partitionGroups[1].name: duplicate partition group name 'g' (also partitionGroups[0])",
            "t.yaml:8:14: spec.partitionGroups[2].name: 'G_1' is not a valid group name: lower-case letters, digits and '-' (it becomes part of object names)",
        ])
    }

    @Test func atomixRaftPartitionSizeFitsTheGroup() {
        let yaml = Self.atomixHead + "  partitionGroups:\n    - name: g\n      size: 3\n      raft: {partitionSize: 5}\n"
        #expect(specErrors(yaml) == ["t.yaml:8:29: spec.partitionGroups[0].raft.partitionSize: must be at most the group's size 3 (got 5)"])
    }

    @Test func atomixVersionIs31() {
        #expect(specErrors(Self.atomixHead + "  version: 4.0.0\n") == [
            "t.yaml:5:12: spec.version: cairn renders atomix.conf for Atomix 3.1 (e.g. 3.1.0); '4.0.0' is not supported (Atomix refuses configuration keys it does not know)",
        ])
    }

    @Test func atomixStorageLevelAndSizes() {
        let yaml = Self.atomixHead + "  partitionGroups:\n    - name: g\n      log:\n        storage: {level: memory, segmentSize: 64X}\n"
        #expect(specErrors(yaml) == [
            "t.yaml:8:26: spec.partitionGroups[0].log.storage.level: must be disk or mapped (got memory)",
            "t.yaml:8:47: spec.partitionGroups[0].log.storage.segmentSize: '64X' is not a size (e.g. 64M, 1K, or a number of bytes up to 2G)",
        ])
    }

    @Test func derivedNamesMustFitKubernetesLimits() {
        func atomix(_ name: String) -> String {
            "apiVersion: agent.atomix.io/v1alpha1\nkind: AtomixCluster\nmetadata: {name: \(name)}\nspec: {}\n"
        }
        #expect(specErrors(atomix(String(repeating: "a", count: 52))) == [])
        let tooLong = String(repeating: "a", count: 57)
        #expect(specErrors(atomix(tooLong)) == [
            "t.yaml:3:18: metadata.name: the Service name '\(tooLong)-service' would be 65 characters; Kubernetes allows 63. Use a shorter name",
            "t.yaml:3:18: metadata.name: the pod revision label name '\(tooLong)-0123456789' would be 68 characters; Kubernetes allows 63. Use a shorter name",
        ])
    }

    // MARK: - Aerospike

    static func aerospike(_ body: String, size: Int = 2, image: String = "aerospike/aerospike-server:7.1.0.0") -> String {
        """
        apiVersion: asdb.aerospike.com/v1
        kind: AerospikeCluster
        metadata: {name: aero}
        spec:
          size: \(size)
          image: \(image)
        \(body)
        """
    }

    static let network = """
            network:
              service: {port: 3000}
              heartbeat: {port: 3002}
              fabric: {port: 3001}
        """

    @Test func aerospikeNetworkSectionsAreRequired() {
        let yaml = Self.aerospike("  aerospikeConfig:\n    network:\n      service: {port: 3000}\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(yaml) == [
            "t.yaml:9:7: spec.aerospikeConfig.network: fabric is required",
            "t.yaml:9:7: spec.aerospikeConfig.network: heartbeat is required",
        ])
    }

    @Test func aerospikeNamespaceNeedsAStorageEngine() {
        let yaml = Self.aerospike("  aerospikeConfig:\n\(Self.network)\n    namespaces:\n      - name: t\n        replication-factor: 2")
        #expect(specErrors(yaml) == ["t.yaml:13:9: spec.aerospikeConfig.namespaces[0]: storage-engine is required (memory, device or pmem)"])
    }

    @Test func aerospikeStrongConsistencyReplicationFactorFitsTheCluster() {
        let yaml = Self.aerospike("  aerospikeConfig:\n\(Self.network)\n    namespaces:\n      - name: t\n        replication-factor: 3\n        strong-consistency: true\n        storage-engine: {type: memory, data-size: 1G}")
        let errors = specErrors(yaml)
        #expect(errors.count == 2, "\(errors)")
        #expect(errors.contains("t.yaml:14:29: spec.aerospikeConfig.namespaces[0].replication-factor: must be at most the cluster size 2 for a strong-consistency namespace (got 3)"),
                "\(errors)")
        // A Community image has no strong consistency.
        #expect(errors.contains("t.yaml:15:29: spec.aerospikeConfig.namespaces[0].strong-consistency: strong consistency needs an Enterprise server "
                                + "(aerospike/aerospike-server-enterprise)"), "\(errors)")
        let ap = yaml.replacingOccurrences(of: "strong-consistency: true", with: "strong-consistency: false")
        #expect(specErrors(ap) == [])
    }

    @Test func aerospikeDuplicateRackIdsAreRefused() {
        let yaml = Self.aerospike("  rackConfig:\n    racks: [{id: 1}, {id: 1}]\n  aerospikeConfig:\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(yaml) == ["t.yaml:8:22: spec.rackConfig.racks[1].id: duplicate rack id 1"])
        // An earlier rack that fails to decode does not shift the index the error names.
        let shifted = yaml.replacingOccurrences(of: "racks: [{id: 1}, {id: 1}]", with: "racks: [{id: x}, {id: 1}, {id: 1}]")
        let errors = specErrors(shifted)
        #expect(errors.contains { $0.hasSuffix("spec.rackConfig.racks[2].id: duplicate rack id 1") }, "\(errors)")
        #expect(!errors.contains { $0.contains("racks[1].id: duplicate") }, "\(errors)")
    }

    @Test func aerospike7RefusesObsoleteNamespaceKeys() {
        let yaml = Self.aerospike("  aerospikeConfig:\n\(Self.network)\n    namespaces:\n      - name: t\n        memory-size: 4G\n        storage-engine: {type: memory, data-size: 1G}")
        #expect(specErrors(yaml) == [
            "t.yaml:14:22: spec.aerospikeConfig.namespaces[0].memory-size: is obsolete in Aerospike 7; a 7.x node refuses to start with it (set storage-engine memory { data-size } instead)",
        ])
        let v6 = Self.aerospike("  aerospikeConfig:\n\(Self.network)\n    namespaces:\n      - name: t\n        memory-size: 4G\n        storage-engine: {type: memory}", image: "aerospike/aerospike-server:6.4.0.7")
        #expect(specErrors(v6) == [])
    }

    @Test func aerospikeValuesCannotInjectLines() {
        let yaml = Self.aerospike("  aerospikeConfig:\n    service:\n      proto-fd-max: \"15000\\n}\\nnamespace evil {\"\n\(Self.network)\n    namespaces: [{name: \"t #x\", storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(yaml) == [
            // The newlines are shown as escapes: an error is one line, whatever the value held.
            "t.yaml:9:21: spec.aerospikeConfig.service.proto-fd-max: '15000\\n}\\nnamespace evil {' cannot be written to aerospike.conf: values may not contain whitespace or '#', nor be a lone '{' or '}'",
            "t.yaml:14:25: spec.aerospikeConfig.namespaces[0].name: 't #x' cannot be written to aerospike.conf: values may not contain whitespace or '#', nor be a lone '{' or '}'",
        ])
    }

    /// Aerospike's documented LDAP placeholder: a brace inside a token is text to the server
    /// (only a lone `{` or `}` token is structure), so it is accepted and written as it is.
    @Test func aerospikeValuesMayHoldBracesInsideATokenButNotALoneBrace() throws {
        let ldap = Self.aerospike("  aerospikeConfig:\n    security:\n      ldap: {user-dn-pattern: \"uid=${un},ou=People,dc=example,dc=com\"}\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        // security needs its users; the placeholder is no error.
        #expect(specErrors(ldap).map { $0.contains("aerospikeAccessControl is missing") } == [true], "\(specErrors(ldap))")
        let conf = AerospikeConfWriter.render(["security": ["ldap": ["user-dn-pattern": "uid=${un},ou=People,dc=example,dc=com"]]])
        #expect(conf.contains("    ldap {\n        user-dn-pattern uid=${un},ou=People,dc=example,dc=com\n    }\n"), "\(conf)")
        let items = try AerospikeConfReader.parse(conf)
        #expect(items.contains(.context(head: ["security"], items: [.context(head: ["ldap"], items: [
            .line(key: "user-dn-pattern", values: ["uid=${un},ou=People,dc=example,dc=com"])])])))
        let inside = Self.aerospike("  aerospikeConfig:\n    service: {cluster-name: \"a{b}\"}\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(inside) == [])
        #expect(try render(inside).contains { $0.body["data", "aerospike.conf"]?.stringValue?.contains("    cluster-name a{b}\n") == true })
        let lone = Self.aerospike("  aerospikeConfig:\n    service: {cluster-name: \"}\"}\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(lone).count == 1 && specErrors(lone)[0].contains("nor be a lone '{' or '}'"), "\(specErrors(lone))")
    }

    @Test func aerospikeHeartbeatIsMeshAndSeedsAreManaged() {
        let yaml = Self.aerospike("  aerospikeConfig:\n    network:\n      service: {port: 3000}\n      heartbeat: {mode: multicast, mesh-seed-address-ports: [\"a:3002\"]}\n      fabric: {port: 3001}\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(yaml) == [
            "t.yaml:10:25: spec.aerospikeConfig.network.heartbeat.mode: must be mesh (multicast does not cross pods on Kubernetes; got multicast)",
            "t.yaml:10:61: spec.aerospikeConfig.network.heartbeat.mesh-seed-address-ports: is managed by cairn: one seed per pod of the cluster is written for you",
        ])
    }

    @Test func aerospikeDevicesMustBeBlockVolumes() {
        let yaml = Self.aerospike("  storage:\n    volumes:\n      - name: ns\n        aerospike: {path: /dev/xvdf}\n        source: {persistentVolume: {size: 10Gi, volumeMode: Filesystem}}\n  aerospikeConfig:\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: device, devices: [/dev/xvdf]}}]")
        #expect(specErrors(yaml) == [
            "t.yaml:17:69: spec.aerospikeConfig.namespaces[0].storage-engine.devices[0]: '/dev/xvdf' is not the path of a Block volume in storage.volumes",
        ])
    }

    @Test func aerospikeMaxUnavailableStaysBelowReplicationFactor() {
        let yaml = Self.aerospike("  maxUnavailable: 2\n  aerospikeConfig:\n\(Self.network)\n    namespaces: [{name: t, replication-factor: 2, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(yaml) == [
            "t.yaml:7:19: spec.maxUnavailable: must be less than the smallest replication-factor (2), or a disruption could take every copy of a partition",
        ])
    }

    @Test func aerospikeEveryRackNeedsAPod() {
        let yaml = Self.aerospike("  rackConfig:\n    racks: [{id: 1}, {id: 2}, {id: 3}]\n  aerospikeConfig:\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(yaml) == ["t.yaml:5:9: spec.size: must be at least the number of racks (3); every rack needs a pod"])
    }

    @Test func aerospikeAccessControlNeedsSecurityAndAnAdmin() {
        let yaml = Self.aerospike("  aerospikeAccessControl:\n    users: [{name: app, secretName: app-secret, roles: [read-write]}]\n  aerospikeConfig:\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(yaml) == [
            "t.yaml:8:5: spec.aerospikeAccessControl: access control needs security enabled: add `security: {}` to aerospikeConfig",
            "t.yaml:8:12: spec.aerospikeAccessControl.users: needs the user admin with the roles sys-admin and user-admin (the user cairn provisions the others with)",
        ])
        // As upstream, the admin is the user named admin: another name with both roles is not it.
        let otherAdmin = Self.aerospike("  aerospikeAccessControl:\n    users: [{name: root, secretName: s, roles: [sys-admin, user-admin]}]\n  aerospikeConfig:\n    security: {}\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(otherAdmin).map { $0.contains("needs the user admin") } == [true], "\(specErrors(otherAdmin))")
    }

    /// Security without users would leave the server's default admin/admin in place: refused as
    /// upstream refuses it. Custom roles, names asadm could not be given, and a default password
    /// file (cairn's Job logs in to a new cluster with the default password) say why.
    @Test func aerospikeSecurityNeedsUsersThatCairnCanProvision() {
        let noUsers = Self.aerospike("  aerospikeConfig:\n    security: {}\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]")
        #expect(specErrors(noUsers).map { $0.hasPrefix("t.yaml:8:15: spec.aerospikeConfig.security: security is enabled but aerospikeAccessControl is missing") } == [true],
                "\(specErrors(noUsers))")
        let yaml = Self.aerospike("""
              aerospikeAccessControl:
                roles: [{name: app-role, privileges: [read]}]
                adminPolicy: {timeout: 3000}
                users:
                  - {name: admin, secretName: admin-secret, roles: [sys-admin, user-admin]}
                  - {name: "app user", secretName: app-secret, roles: [app-role, read, read]}
              aerospikeConfig:
                security: {default-password-file: /etc/aerospike/secret/pw}
            \(Self.network)
                namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]
            """)
        #expect(specErrors(yaml) == [
            "t.yaml:8:5: spec.aerospikeAccessControl.roles: not supported by cairn yet: custom roles are not provisioned yet; use the server's predefined roles",
            "t.yaml:12:16: spec.aerospikeAccessControl.users[1].name: 'app user' is not a user name cairn provisions: use at most 63 letters, digits, '.', '_', '@', '+' or '-'",
            "t.yaml:12:59: spec.aerospikeAccessControl.users[1].roles: lists a role twice",
            "t.yaml:12:60: spec.aerospikeAccessControl.users[1].roles[0]: 'app-role' is not a role the server predefines (data-admin, masking-admin, read, read-masked, read-write, read-write-udf, sindex-admin, sys-admin, truncate, udf-admin, user-admin, write, write-masked); custom roles are not provisioned by cairn yet",
            "t.yaml:14:16: spec.aerospikeConfig.security.default-password-file: not supported by cairn yet: cairn's user Job logs in to a new cluster with the default password admin",
        ], "\(specErrors(yaml))")
    }

    @Test func aerospikeEnterpriseNeedsItsFeatureKey() {
        let yaml = Self.aerospike("  aerospikeConfig:\n\(Self.network)\n    namespaces: [{name: t, storage-engine: {type: memory, data-size: 1G}}]",
                                  image: "aerospike/aerospike-server-enterprise:7.1.0.0")
        #expect(specErrors(yaml) == [
            "t.yaml:8:5: spec.aerospikeConfig: an Enterprise server refuses to start without its feature key: set service.feature-key-file to a file from a secret volume in storage.volumes",
        ])
    }

    // MARK: - PostgreSQL

    static func postgres(_ body: String, name: String = "pg") -> String {
        "apiVersion: acid.zalan.do/v1\nkind: postgresql\nmetadata: {name: \(name)}\nspec:\n  teamId: acid\n  numberOfInstances: 2\n  volume: {size: 1Gi}\n  postgresql: {version: \"16\"}\n" + body
    }

    @Test func postgresNameIsAtMost53Characters() {
        let name = "a" + String(repeating: "b", count: 53)
        #expect(specErrors(Self.postgres("", name: name)) == [
            "t.yaml:3:18: metadata.name: a PostgreSQL cluster name is at most 53 characters (got 54); pod and Service names are derived from it",
        ])
    }

    @Test func postgresUsersAndDatabases() {
        let yaml = Self.postgres("  users:\n    app: [login, superpower]\n    postgres: []\n  databases:\n    shop: nobody\n    template1: app\n")
        #expect(specErrors(yaml) == [
            "t.yaml:10:18: spec.users.app[1]: 'superpower' is not a role flag (bypassrls, createdb, createrole, inherit, login, nobypassrls, nocreatedb, nocreaterole, noinherit, nologin, noreplication, nosuperuser, replication, superuser)",
            "t.yaml:11:15: spec.users.postgres: 'postgres' is created by Spilo itself; choose another name",
            "t.yaml:13:11: spec.databases.shop: owner 'nobody' is not one of the users declared in spec.users",
            "t.yaml:14:16: spec.databases.template1: 'template1' is a system database",
        ])
    }

    @Test func postgresVersionAndImage() {
        let yaml = "apiVersion: acid.zalan.do/v1\nkind: postgresql\nmetadata: {name: pg}\nspec:\n  teamId: acid\n  numberOfInstances: 1\n  volume: {size: 1Gi}\n  postgresql: {version: \"9.6\"}\n"
        #expect(specErrors(yaml) == ["t.yaml:8:25: spec.postgresql.version: must be a PostgreSQL major version from 10 to 18 (got 9.6)"])
        let old = yaml.replacingOccurrences(of: "9.6", with: "10")
        // The error points at the version's value, as for any other refused version.
        #expect(specErrors(old).first?.hasPrefix("t.yaml:8:25: spec.postgresql.version: PostgreSQL 10 is not in the default image") == true,
                "\(specErrors(old))")
        #expect(specErrors(old + "  dockerImage: ghcr.io/zalando/spilo-15:3.0-p1\n") == [])
    }

    /// PostgreSQL 11 and 12 (the operator's own older manifests): the upstream operator's default
    /// image of its last release that allowed them, with a note; dockerImage still wins.
    @Test func postgres11And12GetTheUpstreamOperatorsFormerDefault() throws {
        for (version, image) in [("11", "ghcr.io/zalando/spilo-16:3.2-p3"), ("12", "ghcr.io/zalando/spilo-16:3.3-p1")] {
            let yaml = Self.postgres("").replacingOccurrences(of: "  postgresql: {version: \"16\"}\n", with: "  postgresql: {version: \"\(version)\"}\n")
            #expect(yaml.contains("version: \"\(version)\""))
            #expect(specErrors(yaml) == [])
            #expect(specNotes(yaml).contains { $0.contains("spec.postgresql.version: PostgreSQL \(version) left the upstream operator's default image; "
                                                           + "cairn runs it on \(image)") }, "\(specNotes(yaml))")
            let set = try #require(try render(yaml).first { $0.kind == "StatefulSet" })
            #expect(set.body["spec", "template", "spec", "containers"]?.arrayValue?.first?["image"]?.stringValue == image)
            let own = yaml + "  dockerImage: example.com/spilo:1\n"
            #expect(try render(own).first { $0.kind == "StatefulSet" }?.body["spec", "template", "spec", "containers"]?.arrayValue?.first?["image"]
                    == "example.com/spilo:1")
            #expect(!specNotes(own).contains { $0.contains("left the upstream operator's default image") })
        }
    }

    /// PostgreSQL 18, the upstream operator's newest: accepted, with the upstream operator's own
    /// default image for it; 13-17 keep their default image (an upgrade of cairn restarts nothing).
    @Test func postgres18GetsTheUpstreamDefaultImage() throws {
        let yaml = Self.postgres("").replacingOccurrences(of: "  postgresql: {version: \"16\"}\n", with: "  postgresql: {version: \"18\"}\n")
        #expect(yaml.contains("version: \"18\""))
        #expect(specErrors(yaml) == [])
        let set = try #require(try render(yaml).first { $0.kind == "StatefulSet" })
        let image = set.body["spec", "template", "spec", "containers"]?.arrayValue?.first?["image"]?.stringValue
        #expect(image == "ghcr.io/zalando/spilo-18:4.1-p2")
        let sixteen = try #require(try render(Self.postgres("")).first { $0.kind == "StatefulSet" })
        #expect(sixteen.body["spec", "template", "spec", "containers"]?.arrayValue?.first?["image"]?.stringValue == "ghcr.io/zalando/spilo-17:4.0-p2")
    }

    @Test func patroniTimingsAreConsistent() {
        #expect(specErrors(Self.postgres("  patroni: {ttl: 20, loop_wait: 10, retry_timeout: 10}\n")) == [
            "t.yaml:9:18: spec.patroni.ttl: must be at least loop_wait + 2 * retry_timeout (30), or the leader key expires between checks",
        ])
    }
}
