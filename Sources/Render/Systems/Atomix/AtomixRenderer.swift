import ClusterSpecs

/// Atomix 3.1: the management group and one node set per partition group (StatefulSet,
/// headless Service, init-script and atomix.conf ConfigMaps, PodDisruptionBudget), plus the
/// benchmark coordinator and workers when `benchmark` is set.
enum AtomixRenderer {
    static let clientPort = 5678
    static let nodePort = 5679
    static let dataDir = "/var/lib/atomix"

    /// One StatefulSet of Atomix nodes and what it needs.
    private struct NodeSet {
        var baseName: String          // <c> or <c>-<g>
        var serviceName: String       // governing headless Service
        var selector: [String: String]
        var size: Int
        var image: String
        var env: [EnvVar]
        var resources: ResourceRequirements
        var storage: AtomixSpec.Storage?
        var config: HOCON
        var disruption: Kube.Disruption?
    }

    static func render(_ spec: AtomixSpec, _ cluster: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        let c = cluster.name
        let domain = "\(cluster.namespace).svc.cluster.local"
        let image = "atomix/atomix:\(spec.version)"
        let m = spec.managementGroup

        var objects: [RenderedObject] = []
        let managementSelector = ["app": c, "type": "management"]
        let management = NodeSet(
            baseName: c, serviceName: "\(c)-service", selector: managementSelector, size: m.size, image: image,
            env: m.env, resources: m.resources, storage: m.storage,
            config: .object([
                ("cluster", clusterConfig(cluster, discovery: "\(c)-service.\(domain)")),
                ("managementGroup", .object([
                    ("type", .string("raft")),
                    ("partitions", .int(1)),
                    ("members", .array((0..<m.size).map { .string("\(c)-\($0)") })),
                    ("storage", storageConfig(m.storage)),
                ])),
            ]),
            disruption: .minAvailable(m.size / 2 + 1))
        // The management Service is the discovery endpoint for every node of the cluster.
        objects += nodeSet(management, cluster, serviceSelector: ["app": c], options: options)

        for g in spec.partitionGroups {
            let base = "\(c)-\(g.name)"
            var groupConfig: [(String, HOCON)] = [("type", .string(g.protocol.typeName)), ("partitions", .int(g.partitions))]
            var disruption: Kube.Disruption = .maxUnavailable(1)
            switch g.protocol {
            case .raft(let storage, let compaction, let partitionSize):
                groupConfig.append(("partitionSize", .int(partitionSize)))
                groupConfig.append(("members", .array((0..<g.size).map { .string("\(base)-\($0)") })))
                groupConfig.append(("storage", storageConfig(storage)))
                groupConfig.append(("compaction", .object([
                    ("dynamic", .bool(compaction.dynamic)),
                    ("freeDiskBuffer", .double(compaction.freeDiskBuffer)),
                    ("freeMemoryBuffer", .double(compaction.freeMemoryBuffer)),
                ])))
                disruption = .minAvailable(g.size / 2 + 1)
            case .primaryBackup(let strategy):
                groupConfig.append(("memberGroupStrategy", .string(strategy.configValue)))
            case .log(let storage, let strategy):
                groupConfig.append(("memberGroupStrategy", .string(strategy.configValue)))
                groupConfig.append(("storage", storageConfig(storage)))
            }
            let selector = ["app": c, "type": "group", "group": g.name]
            let set = NodeSet(
                baseName: base, serviceName: "\(base)-service", selector: selector, size: g.size, image: image,
                env: g.env, resources: g.resources, storage: g.protocol.storage,
                config: .object([
                    ("cluster", clusterConfig(cluster, discovery: "\(c)-service.\(domain)")),
                    ("partitionGroups", .object([(g.name, .object(groupConfig))])),
                ]),
                disruption: g.size > 1 ? disruption : nil)
            objects += nodeSet(set, cluster, serviceSelector: selector, options: options)
        }

        if let b = spec.benchmark {
            let benchImage = "atomix/atomix-bench:\(spec.version)"
            let clientConfig = HOCON.object([("cluster", clusterConfig(cluster, discovery: "\(c)-service.\(domain)"))])
            let workerSelector = ["app": c, "type": "benchmark-worker"]
            objects += nodeSet(NodeSet(
                baseName: "\(c)-worker", serviceName: "\(c)-worker-service", selector: workerSelector, size: b.size,
                image: benchImage, env: b.env, resources: b.resources, storage: nil, config: clientConfig,
                disruption: nil), cluster, serviceSelector: workerSelector, options: options)
            let coordinatorSelector = ["app": c, "type": "benchmark-coordinator"]
            objects += nodeSet(NodeSet(
                baseName: "\(c)-bench", serviceName: "\(c)-bench-service", selector: coordinatorSelector, size: 1,
                image: benchImage, env: b.env, resources: b.resources, storage: nil, config: clientConfig,
                disruption: nil), cluster, serviceSelector: coordinatorSelector, options: options)
        }
        return objects
    }

    private static func clusterConfig(_ cluster: ClusterMetadata, discovery: String) -> HOCON {
        .object([
            ("clusterId", .string(cluster.name)),
            ("node", .object([
                ("id", .substitution("atomix.node.id")),
                ("address", .substitution("atomix.node.address")),
            ])),
            ("discovery", .object([("type", .string("dns")), ("service", .string(discovery))])),
        ])
    }

    private static func storageConfig(_ s: AtomixSpec.Storage) -> HOCON {
        .object([
            ("level", .string(s.level.rawValue)),
            ("segmentSize", .int(s.segmentSize)),
            ("maxEntrySize", .int(s.entrySize)),
            ("flushOnCommit", .bool(s.flushOnCommit)),
        ])
    }

    /// The init script writes the node's identity, known only inside the pod, as properties
    /// that atomix.conf substitutes. Everything interpolated is a validated DNS name.
    private static func initScript(serviceName: String, namespace: String) -> String {
        """
        #!/bin/sh
        set -eu
        host=$(hostname -s)
        cat > /etc/atomix/system/atomix.properties <<EOF
        atomix.node.id=$host
        atomix.node.address=$host.\(serviceName).\(namespace).svc.cluster.local:\(nodePort)
        EOF

        """
    }

    private static func nodeSet(_ set: NodeSet, _ cluster: ClusterMetadata, serviceSelector: [String: String],
                                options: RenderOptions) -> [RenderedObject] {
        var labels = set.selector
        labels["app.kubernetes.io/name"] = "atomix"
        labels["app.kubernetes.io/instance"] = cluster.name
        let initName = "\(set.baseName)-init"
        let configName = "\(set.baseName)-config"
        var objects = [
            Kube.configMap(initName, cluster, labels: labels,
                           data: [("create_config.sh", initScript(serviceName: set.serviceName, namespace: cluster.namespace))]),
            Kube.configMap(configName, cluster, labels: labels, data: [("atomix.conf", set.config.render())]),
            Kube.headlessService(set.serviceName, cluster, labels: labels, selector: serviceSelector,
                                 ports: [Kube.servicePort("node", nodePort)]),
        ]
        if let disruption = set.disruption {
            objects.append(Kube.podDisruptionBudget("\(set.baseName)-pdb", cluster, labels: labels, selector: set.selector,
                                                    disruption, options: options))
        }

        var initContainer = Kube.Container(name: "configure", image: set.image)
        initContainer.command = ["sh", "/etc/atomix/init/create_config.sh"]
        initContainer.volumeMounts = [Kube.mount("init", "/etc/atomix/init", readOnly: true), Kube.mount("system", "/etc/atomix/system")]

        var container = Kube.Container(name: "atomix", image: set.image)
        container.args = [
            "--config", "/etc/atomix/system/atomix.properties", "/etc/atomix/user/atomix.conf",
            "--ignore-resources", "--data-dir=\(dataDir)/data", "--log-level=INFO",
        ]
        container.ports = [Kube.port("client", clientPort), Kube.port("node", nodePort)]
        container.env = Kube.userEnv(set.env)
        container.resources = set.resources
        container.volumeMounts = [Kube.mount("system", "/etc/atomix/system", readOnly: true),
                                  Kube.mount("config", "/etc/atomix/user", readOnly: true)]
        if set.storage != nil { container.volumeMounts.append(Kube.mount("data", dataDir)) }
        container.readinessProbe = Kube.httpProbe(path: "/v1/status", port: clientPort, initialDelay: 10, period: 10, timeout: 10)
        container.livenessProbe = Kube.httpProbe(path: "/v1/status", port: clientPort, initialDelay: 60, period: 10, timeout: 10)

        var pod = Kube.PodSpec(containers: [container])
        pod.initContainers = [initContainer]
        pod.volumes = [
            Kube.configMapVolume("init", configMap: initName, mode: 0o555),
            Kube.emptyDirVolume("system"),
            Kube.configMapVolume("config", configMap: configName),
        ]
        pod.affinity = EventStoreRenderer.softAntiAffinity(set.selector)

        var podLabels = set.selector
        podLabels["app.kubernetes.io/name"] = "atomix"
        podLabels["app.kubernetes.io/instance"] = cluster.name
        var sts = Kube.StatefulSet(name: set.baseName, cluster: cluster, labels: labels, selector: set.selector,
                                   podLabels: podLabels, replicas: set.size, serviceName: set.serviceName, pod: pod)
        sts.podManagementPolicy = "Parallel"
        if let storage = set.storage {
            sts.volumeClaimTemplates = [Kube.volumeClaimTemplate("data", size: storage.size, storageClass: storage.className,
                                                                 labels: set.selector)]
        }
        objects.append(sts.object)
        return objects
    }
}
