import ClusterSpecs

/// EventStoreDB / KurrentDB: `<name>-config` (eventstore.conf), a headless Service for gossip,
/// a PodDisruptionBudget, the StatefulSet, and one LoadBalancer per node when asked.
enum EventStoreRenderer {
    static let httpPort = 2113
    static let replicationPort = 1112
    static let externalTcpPort = 1113

    /// The kinds of node: the cluster's own, read-only replicas, and the archiver (a
    /// read-only replica that uploads chunks), each in a StatefulSet of its own.
    enum NodeType: String, CaseIterable {
        case cluster = ""
        case replica = "-replica"
        case archiver = "-archiver"
    }

    static let certificateDirectory = "/etc/cairn/kurrentdb/certs"
    static let caDirectory = "/etc/cairn/kurrentdb/ca"

    static func render(_ spec: EventStoreSpec, _ cluster: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        var objects: [RenderedObject] = []
        for type in NodeType.allCases {
            let count = switch type {
            case .cluster: spec.replicas
            case .replica: spec.readOnlyReplicas
            case .archiver: spec.archiver ? 1 : 0
            }
            if count > 0 { objects += render(spec, cluster, type: type, replicas: count, options: options) }
        }
        if let users = spec.users, !users.custom.isEmpty, spec.replicas > 0 {
            objects += EventStoreUsers.job(spec, users, cluster)
        }
        return objects
    }

    /// A node kind's own resources, storage and constraints, else the cluster's.
    static func settings(_ spec: EventStoreSpec, _ type: NodeType)
        -> (resources: ResourceRequirements, storage: EventStoreSpec.Storage, constraints: PodConstraints) {
        let own = switch type {
        case .cluster: EventStoreSpec.NodeSettings()
        case .replica: spec.replicaSettings
        case .archiver: spec.archiverSettings
        }
        return (own.resources ?? spec.resources, own.storage ?? spec.storage, own.constraints ?? spec.constraints)
    }

    private static func render(_ spec: EventStoreSpec, _ cluster: ClusterMetadata, type: NodeType, replicas: Int,
                               options: RenderOptions) -> [RenderedObject] {
        // The cluster's nodes keep the names they always had; the others add their type.
        let name = cluster.name + type.rawValue
        let selector = ["app.kubernetes.io/name": "kurrentdb", "app.kubernetes.io/instance": name]
        var labels = selector
        if type != .cluster { labels["app.kubernetes.io/component"] = String(type.rawValue.dropFirst()) }
        let d = spec.dialect
        let (resources, storage, constraints) = settings(spec, type)
        let domain = "\(name).\(cluster.namespace).svc.cluster.local"
        var config = configuration(spec, cluster)
        if type != .cluster { config["ReadOnlyReplica"] = true }
        if type == .archiver { config["Archiver"] = true }
        let externalTcp = d.hasExternalTcp && config["EnableExternalTcp"] == .bool(true)

        var servicePorts = [Kube.servicePort("http", httpPort), Kube.servicePort("replication", replicationPort)]
        var containerPorts = [Kube.port("http", httpPort), Kube.port("replication", replicationPort)]
        if externalTcp {
            servicePorts.append(Kube.servicePort("external-tcp", externalTcpPort))
            containerPorts.append(Kube.port("external-tcp", externalTcpPort))
        }

        let configMapName = "\(name)-config"
        let configMap = Kube.configMap(configMapName, cluster, labels: labels,
                                       data: [("eventstore.conf", EventStoreConf.write(config))])
        let service = Kube.headlessService(name, cluster, labels: labels, selector: selector, ports: servicePorts)
        let pdb = Kube.podDisruptionBudget("\(name)-pdb", cluster, labels: labels, selector: selector,
                                           .maxUnavailable(1), options: options)

        let prefix = d == .kurrent25 ? "KURRENTDB_" : "EVENTSTORE_"
        // As the upstream operator derives them: nodes reach each other by their cluster DNS
        // names (or FQDNs), clients are given the FQDNs of network.fqdnTemplate (or the cluster
        // DNS names). Kubernetes expands $(POD_NAME) in env values.
        let fqdn = spec.advertised.fqdn(podName: "$(POD_NAME)", cluster: cluster, nodeTypeSuffix: type.rawValue)
        let advertise = spec.advertised.internodeStrategy == "FQDN" ? fqdn ?? "$(POD_NAME).\(domain)" : "$(POD_NAME).\(domain)"
        var env = [Kube.envField("POD_NAME", "metadata.name")]
        if d.usesNewNames {
            env.append(Kube.env(prefix + "NODE_HOST_ADVERTISE_AS", advertise))
            env.append(Kube.env(prefix + "REPLICATION_HOST_ADVERTISE_AS", advertise))
        } else {
            env.append(Kube.env(prefix + "EXT_HOST_ADVERTISE_AS", advertise))
            env.append(Kube.env(prefix + "INT_HOST_ADVERTISE_AS", advertise))
        }
        if let fqdn, spec.advertised.clientStrategy == "FQDN" {
            env.append(Kube.env(prefix + "ADVERTISE_HOST_TO_CLIENT_AS", fqdn))
        }
        // The license key reaches the server from its Secret, never through the ConfigMap.
        if let license = spec.licenseSecret {
            env.append(Kube.envSecret(prefix + "LICENSING__LICENSE_KEY", secret: license.name, key: license.key))
        }
        if spec.telemetryOptOut {
            env.append(Kube.env(prefix + "TELEMETRY_OPTOUT", "true"))
        }
        // Environment-only options: the initial passwords, from their Secrets.
        if let users = spec.users {
            env.append(Kube.envSecret(prefix + "DEFAULT_ADMIN_PASSWORD", secret: users.adminPassword.name, key: users.adminPassword.key))
            env.append(Kube.envSecret(prefix + "DEFAULT_OPS_PASSWORD", secret: users.opsPassword.name, key: users.opsPassword.key))
        }

        let configDir = d == .kurrent25 ? "/etc/kurrentdb" : "/etc/eventstore"
        let configFile = d == .kurrent25 ? "kurrentdb.conf" : "eventstore.conf"
        var container = Kube.Container(name: "eventstore", image: spec.image)
        container.ports = containerPorts
        container.env = env
        if let secret = spec.environmentSecret { container.envFrom = [["secretRef": ["name": .string(secret)]]] }
        container.resources = resources
        container.volumeMounts = [Kube.mount("data", dataRoot(d)), Kube.mount("config", configDir, readOnly: true)]
        let scheme = spec.security == nil ? "HTTP" : "HTTPS"
        container.livenessProbe = Kube.httpProbe(path: "/health/live", port: httpPort, scheme: scheme, initialDelay: 30, period: 10, timeout: 5,
                                                 failureThreshold: 6)
        container.readinessProbe = Kube.httpProbe(path: "/health/live", port: httpPort, scheme: scheme, initialDelay: 5, period: 5, timeout: 5)

        var pod = Kube.PodSpec(containers: [container])
        pod.volumes = [Kube.configMapVolume("config", configMap: configMapName, items: [(key: "eventstore.conf", path: configFile)])]
        if let security = spec.security {
            pod.volumes.append(Kube.secretVolume("certificate", secret: security.certificateSecret))
            pod.containers[0].volumeMounts.append(Kube.mount("certificate", certificateDirectory, readOnly: true))
            if let (volume, mount) = caVolume(security) {
                pod.volumes.append(volume)
                pod.containers[0].volumeMounts.append(mount)
            }
        }
        pod.securityContext = ["fsGroup": 1000]
        if spec.splitDNS != nil, let image = options.cairnImage, let upstream = options.clusterDNS {
            addSplitDNS(&pod, spec, cluster, image: image, upstream: upstream)
        }
        pod.serviceAccountName = spec.serviceAccountName
        pod.nodeSelector = constraints.nodeSelector
        pod.tolerations = constraints.tolerations
        pod.topologySpreadConstraints = constraints.topologySpreadConstraints
        pod.affinity = constraints.affinity ?? softAntiAffinity(selector)

        var sts = Kube.StatefulSet(name: name, cluster: cluster, labels: labels, selector: selector, podLabels: labels,
                                   replicas: replicas, serviceName: name, pod: pod)
        sts.podManagementPolicy = "Parallel"
        sts.podAnnotations = spec.restartKeys
        sts.volumeClaimTemplates = [Kube.volumeClaimTemplate(
            "data", size: storage.size, storageClass: storage.storageClassName,
            accessModes: storage.accessModes, volumeMode: storage.volumeMode, labels: selector)]

        var objects = [configMap, service, pdb, sts.object]
        if spec.loadBalancer.enabled {
            var lbPorts = [Kube.servicePort("http", httpPort)]
            if externalTcp { lbPorts.append(Kube.servicePort("external-tcp", externalTcpPort)) }
            for i in 0..<replicas {
                var podSelector = selector
                podSelector["statefulset.kubernetes.io/pod-name"] = "\(name)-\(i)"
                // As upstream: ExternalDNS publishes each node's FQDN at its load balancer.
                let host = spec.advertised.fqdn(podName: "\(name)-\(i)", cluster: cluster, nodeTypeSuffix: type.rawValue)
                objects.append(Kube.loadBalancerService("\(name)-\(i)-lb", cluster, labels: labels, selector: podSelector,
                                                        ports: lbPorts, sourceRanges: spec.loadBalancer.allowedIps,
                                                        className: spec.loadBalancer.className,
                                                        annotations: host.map { ["external-dns.alpha.kubernetes.io/hostname": $0] } ?? [:]))
            }
        }
        return objects
    }

    /// SplitDNS: cairn's resolver beside the node (`cairn dns-proxy` on 127.0.0.1:53), the pod's
    /// only nameserver, with the search path and ndots of Kubernetes' ClusterFirst.
    static func addSplitDNS(_ pod: inout Kube.PodSpec, _ spec: EventStoreSpec, _ cluster: ClusterMetadata, image: String, upstream: String) {
        pod.dnsPolicy = "None"
        let searches = ["\(cluster.namespace).svc.cluster.local", "svc.cluster.local", "cluster.local"]
        pod.dnsConfig = [
            "nameservers": ["127.0.0.1"],
            "searches": .array(searches.map { .string($0) }),
            "options": [["name": "ndots", "value": "5"]],
        ]
        // Port 53 without root or a capability (a safe, per-pod sysctl from Kubernetes 1.22).
        pod.securityContext["sysctls"] = [["name": "net.ipv4.ip_unprivileged_port_start", "value": "0"]]
        var proxy = Kube.Container(name: "splitdns", image: image)
        proxy.command = ["/usr/local/bin/cairn", "dns-proxy"]
        proxy.args = ["--listen", "127.0.0.1:53", "--upstream", upstream] + splitDNSRules(spec, cluster).flatMap { ["--map", $0] }
        // Measured: about 30 MB resident (debug build, 50 queries in flight).
        proxy.resources = ResourceRequirements(requests: ["cpu": try! Quantity(parsing: "10m"), "memory": try! Quantity(parsing: "32Mi")],
                                               limits: ["memory": try! Quantity(parsing: "64Mi")])
        proxy.securityContext = [
            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true, "capabilities": ["drop": ["ALL"]],
        ]
        pod.containers.append(proxy)
    }

    /// The resolver's rules: the user's `splitDNSExtraRules` first, then, for each kind of node
    /// the cluster has, its FQDNs (`{n}`: the pod's ordinal) to its pods' cluster DNS names.
    static func splitDNSRules(_ spec: EventStoreSpec, _ cluster: ClusterMetadata) -> [String] {
        var rules = (spec.splitDNS?.extraRules ?? []).map { "\($0.host)=\($0.result)" }
        for type in NodeType.allCases {
            let count = switch type {
            case .cluster: spec.replicas
            case .replica: spec.readOnlyReplicas
            case .archiver: spec.archiver ? 1 : 0
            }
            let set = cluster.name + type.rawValue
            guard count > 0, let fqdn = spec.advertised.fqdn(podName: "\(set)-{n}", cluster: cluster, nodeTypeSuffix: type.rawValue) else { continue }
            rules.append("\(fqdn)=\(set)-{n}.\(set).\(cluster.namespace).svc.cluster.local")
        }
        return rules
    }

    /// The CA Secret's volume and its mount at `caDirectory` (one key, or every key for a
    /// rotation); nil when the image's public CAs are trusted.
    static func caVolume(_ security: EventStoreSpec.Security) -> (volume: JSONValue, mount: JSONValue)? {
        guard let ca = security.caSecret else { return nil }
        return (Kube.secretVolume("ca", secret: ca, items: security.caKey.map { [(key: $0, path: $0)] } ?? []),
                Kube.mount("ca", caDirectory, readOnly: true))
    }

    static func dataRoot(_ d: EventStoreDialect) -> String {
        d == .kurrent25 ? "/var/lib/kurrentdb" : "/var/lib/eventstore"
    }

    /// The defaults of the operator runtime seed, in the dialect of the image's version, with the
    /// keys cairn manages, and the user's keys merged over them.
    static func configuration(_ spec: EventStoreSpec, _ cluster: ClusterMetadata) -> JSONObject {
        let d = spec.dialect
        let root = dataRoot(d)
        var c: JSONObject = [
            "Db": .string(root + "/data"),
            "Index": .string(root + "/index"),
            "Log": .string(root + "/logs"),
            "DisableLogFile": true,
        ]
        if d.usesNewNames {
            c["NodeIp"] = "0.0.0.0"
            c["ReplicationIp"] = "0.0.0.0"
        } else {
            c["ExtIp"] = "0.0.0.0"
            c["IntIp"] = "0.0.0.0"
            c["EnableExternalTcp"] = true
        }
        c["EnableAtomPubOverHTTP"] = true
        // (Key order is part of the config hash: unchanged for clusters rendered before.)
        // Standalone read-only replicas (replicas 0) join the quorum nodes of a cluster elsewhere.
        c["ClusterSize"] = .int(spec.replicas == 0 ? spec.quorumNodes.count : spec.replicas)
        c["DiscoverViaDns"] = false
        if spec.replicas == 0 {
            c["GossipSeed"] = .array(spec.quorumNodes.map { .string($0) })
        } else if spec.replicas > 1 {
            let domain = "\(cluster.name).\(cluster.namespace).svc.cluster.local"
            c["GossipSeed"] = .array((0..<spec.replicas).map { .string("\(cluster.name)-\($0).\(domain):\(httpPort)") })
        }
        if let security = spec.security {
            // As the upstream operator sets them: the node's certificate and key from their
            // Secret, the CA from its Secret (a directory: every CA in it), else the image's
            // public CAs.
            c["Insecure"] = false
            c["CertificateFile"] = .string("\(certificateDirectory)/\(security.certificateKey)")
            c["CertificatePrivateKeyFile"] = .string("\(certificateDirectory)/\(security.privateKeyKey)")
            c["TrustedRootCertificatesPath"] = .string(security.caSecret == nil ? "/etc/ssl/certs" : caDirectory)
            if let cn = security.reservedNodeCommonName { c["CertificateReservedNodeCommonName"] = .string(cn) }
        } else {
            c["Insecure"] = true
        }
        c["AllowAnonymousEndpointAccess"] = true
        c["PrepareTimeoutMs"] = 3000
        c["CommitTimeoutMs"] = 3000
        if d.usesNewNames {
            c["ReplicationHeartbeatInterval"] = 1000
            c["ReplicationHeartbeatTimeout"] = 2500
        } else {
            c["IntTcpHeartbeatInterval"] = 1000
            c["IntTcpHeartbeatTimeout"] = 2500
            c["ExtTcpHeartbeatInterval"] = 1000
            c["ExtTcpHeartbeatTimeout"] = 2500
        }
        c["GossipIntervalMs"] = 2000
        c["GossipTimeoutMs"] = 5000
        c["LeaderElectionTimeoutMs"] = 2000
        for key in spec.configuration.keys.sorted() {
            c[key] = spec.configuration[key]
        }
        return c
    }

    static func softAntiAffinity(_ selector: [String: String]) -> JSONValue {
        [
            "podAntiAffinity": [
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    [
                        "weight": 100,
                        "podAffinityTerm": [
                            "labelSelector": ["matchLabels": .sortedStrings(Array(selector))],
                            "topologyKey": "kubernetes.io/hostname",
                        ],
                    ],
                ],
            ],
        ]
    }

    static func requiredAntiAffinity(_ selector: [String: String]) -> JSONValue {
        [
            "requiredDuringSchedulingIgnoredDuringExecution": [
                [
                    "labelSelector": ["matchLabels": .sortedStrings(Array(selector))],
                    "topologyKey": "kubernetes.io/hostname",
                ],
            ],
        ]
    }
}
