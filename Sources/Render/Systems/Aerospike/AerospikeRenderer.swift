import ClusterSpecs

/// Aerospike: a headless Service, a PodDisruptionBudget, and per rack a ConfigMap holding that
/// rack's aerospike.conf and a StatefulSet (`OnDelete`, so cairn restarts pods rack by rack).
enum AerospikeRenderer {
    static func render(_ spec: AerospikeSpec, _ cluster: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        let c = cluster.name
        let selector = ["app": "aerospike-cluster", "aerospike.com/cr": c]
        var labels = selector
        labels["app.kubernetes.io/name"] = "aerospike"
        labels["app.kubernetes.io/instance"] = c
        let ports = spec.ports.named

        var objects = [
            Kube.clusterIPService(c, cluster, labels: spec.serviceLabels.merging(labels) { _, own in own }, selector: selector,
                                  ports: ports.map { Kube.servicePort($0.0, $0.1) }, headless: true,
                                  annotations: spec.serviceAnnotations),
            Kube.podDisruptionBudget(c, cluster, labels: labels, selector: selector,
                                     .maxUnavailable(spec.maxUnavailable), options: options),
        ]
        if options.cairnImage != nil, !spec.devicesInitialised.isEmpty {
            objects += deviceInitAccess(spec, cluster, labels: labels)
        }
        for (rack, count) in spec.podsPerRack() {
            let name = "\(c)-\(rack.id)"
            var rackSelector = selector
            rackSelector["aerospike.com/rack-id"] = String(rack.id)
            var rackLabels = labels
            rackLabels["aerospike.com/rack-id"] = String(rack.id)
            let conf = AerospikeConfWriter.render(configuration(spec, cluster, rack: rack))
            objects.append(Kube.configMap(name, cluster, labels: rackLabels, data: [("aerospike.conf", conf)]))

            // The addresses each pod writes in at start (only where the file has them, so the
            // pods of other clusters keep their template).
            let addresses = [("HOST_IP", "status.hostIP"), ("POD_IP", "status.podIP")].filter { conf.contains(" ENV_\($0.0)\n") }
            var container = Kube.Container(name: "aerospike-server", image: spec.image)
            container.command = ["/bin/sh", "-c", Self.startScript(rack: rack.id, addresses: addresses.map(\.0))]
            container.env = [Kube.envField("POD_NAME", "metadata.name")] + addresses.map { Kube.envField($0.0, $0.1) }
            // On the node's address, the client ports are on the node too (upstream's hostPort).
            let onNode: Set<String> = spec.onNodeAddress ? ["service", "tls-service", "info"] : []
            container.ports = ports.map { name, port in
                var p = Kube.port(name, port)
                if onNode.contains(name), var o = p.objectValue {
                    o["hostPort"] = .int(port)
                    p = .object(o)
                }
                return p
            }
            container.readinessProbe = Kube.tcpProbe(port: spec.ports.client, initialDelay: 2, period: 5)
            container.livenessProbe = Kube.tcpProbe(port: spec.ports.client, initialDelay: 30, period: 10)
            container.volumeMounts = [Kube.mount("aerospike-conf", "/etc/aerospike/conf", readOnly: true),
                                      Kube.mount("cairn-conf", Self.runDirectory)]
            container.resources = spec.serverResources
            container.securityContext = spec.serverSecurityContext
            var volumes = [Kube.configMapVolume("aerospike-conf", configMap: name), Kube.emptyDirVolume("cairn-conf")]
            var claims: [JSONValue] = []
            for v in spec.volumes {
                switch v.source {
                case .persistentVolume(let storageClass, let mode, let size):
                    claims.append(Kube.volumeClaimTemplate(v.name, size: size, storageClass: storageClass,
                                                           volumeMode: mode, labels: rackSelector))
                    if mode == "Block" {
                        container.volumeDevices.append(["name": .string(v.name), "devicePath": .string(v.path)])
                    } else {
                        container.volumeMounts.append(Self.mount(v, readOnly: false))
                    }
                case .secret(let secretName):
                    volumes.append(Kube.secretVolume(v.name, secret: secretName))
                    container.volumeMounts.append(Self.mount(v, readOnly: true))
                case .emptyDir:
                    volumes.append(Kube.emptyDirVolume(v.name))
                    container.volumeMounts.append(Self.mount(v, readOnly: false))
                }
            }
            var pod = Kube.PodSpec(containers: [container])
            pod.volumes = volumes
            pod.hostNetwork = spec.hostNetwork
            pod.dnsPolicy = spec.dnsPolicy ?? (spec.hostNetwork ? "ClusterFirstWithHostNet" : "ClusterFirst")
            // The spec's own containers, with the volumes attached to them.
            func attached(_ container: JSONValue, initContainer: Bool) -> JSONValue {
                guard var c = container.objectValue, let name = c["name"]?.stringValue else { return container }
                var mounts = c["volumeMounts"]?.arrayValue ?? []
                var devices = c["volumeDevices"]?.arrayValue ?? []
                for v in spec.volumes {
                    for a in v.attachments where a.container == name && a.initContainer == initContainer {
                        if v.isBlock {
                            devices.append(["name": .string(v.name), "devicePath": .string(a.path)])
                        } else {
                            var mount: JSONObject = ["name": .string(v.name), "mountPath": .string(a.path)]
                            for (k, value) in a.options.entries { mount[k] = value }
                            mounts.append(.object(mount))
                        }
                    }
                }
                if !mounts.isEmpty { c["volumeMounts"] = .array(mounts) }
                if !devices.isEmpty { c["volumeDevices"] = .array(devices) }
                return Kube.userContainer(.object(c))
            }
            pod.extraContainers = spec.sidecars.map { attached($0, initContainer: false) }
            pod.extraInitContainers = spec.initContainers.map { attached($0, initContainer: true) }
            // initMethod deleteFiles, as the upstream operator applies it: a Filesystem volume's
            // files are deleted the first time a pod uses its claim (a new claim, or a reused
            // volume), never again. The upstream operator records initialised claims in its
            // status; cairn records it in the volume itself.
            let cleaned = spec.volumes.filter { $0.initMethod == "deleteFiles" && !$0.isBlock }
            if !cleaned.isEmpty {
                var initContainer = Kube.Container(name: "cairn-init-volumes", image: spec.image)
                initContainer.command = ["/bin/sh", "-c", Self.initScript(cleaned.map(\.path))]
                initContainer.volumeMounts = cleaned.map { Kube.mount($0.name, $0.path) }
                initContainer.securityContext = spec.serverSecurityContext
                pod.initContainers = [initContainer]
            }
            if let image = options.cairnImage, let devices = Self.deviceInit(spec, cluster, image: image) {
                pod.initContainers.append(devices.container)
                pod.volumes.append(devices.tokenVolume)
                pod.serviceAccountName = devices.account
                pod.automountServiceAccountToken = false
            }
            pod.nodeSelector = spec.nodeSelector
            pod.tolerations = spec.tolerations
            if let context = spec.podSecurityContext?.objectValue { pod.securityContext = context }
            pod.imagePullSecrets = spec.imagePullSecrets
            pod.dnsConfig = spec.dnsConfig
            // The spec's affinity with cairn's rules added, as upstream adds its own: the rack's
            // node terms into every required node selector term, the anti-affinity beside the
            // spec's.
            var affinity = spec.affinity?.objectValue ?? JSONObject()
            var terms: [JSONValue] = []
            if let zone = rack.zone {
                terms.append(["key": "topology.kubernetes.io/zone", "operator": "In", "values": [.string(zone)]])
            }
            if let region = rack.region {
                terms.append(["key": "topology.kubernetes.io/region", "operator": "In", "values": [.string(region)]])
            }
            if !terms.isEmpty {
                var node = affinity["nodeAffinity"]?.objectValue ?? JSONObject()
                var required = node["requiredDuringSchedulingIgnoredDuringExecution"]?.objectValue ?? JSONObject()
                let given = required["nodeSelectorTerms"]?.arrayValue ?? []
                required["nodeSelectorTerms"] = given.isEmpty
                    ? [["matchExpressions": .array(terms)]]
                    : .array(given.map { term in
                        var t = term.objectValue ?? JSONObject()
                        t["matchExpressions"] = .array((t["matchExpressions"]?.arrayValue ?? []) + terms)
                        return .object(t)
                    })
                node["requiredDuringSchedulingIgnoredDuringExecution"] = .object(required)
                affinity["nodeAffinity"] = .object(node)
            }
            if !spec.multiPodPerHost {
                let ours = EventStoreRenderer.requiredAntiAffinity(selector)
                if var anti = affinity["podAntiAffinity"]?.objectValue {
                    let key = "requiredDuringSchedulingIgnoredDuringExecution"
                    anti[key] = .array((anti[key]?.arrayValue ?? []) + (ours[key]?.arrayValue ?? []))
                    affinity["podAntiAffinity"] = .object(anti)
                } else {
                    affinity["podAntiAffinity"] = ours
                }
            }
            if !affinity.isEmpty { pod.affinity = .object(affinity) }

            var sts = Kube.StatefulSet(name: name, cluster: cluster, labels: rackLabels, selector: rackSelector,
                                       podLabels: spec.podLabels.merging(rackLabels) { _, own in own },
                                       podAnnotations: spec.podAnnotations,
                                       replicas: count, serviceName: c, pod: pod)
            sts.podManagementPolicy = "Parallel"
            sts.updateStrategy = .onDelete
            sts.volumeClaimTemplates = claims
            objects.append(sts.object)
        }
        return objects + AerospikeUsers.job(spec, cluster) + AerospikeRoster.job(spec, cluster)
    }

    /// The server's mount of a volume, with its `aerospike.mountOptions`.
    static func mount(_ v: AerospikeSpec.Volume, readOnly: Bool) -> JSONValue {
        guard var o = Kube.mount(v.name, v.path, readOnly: readOnly).objectValue else { return Kube.mount(v.name, v.path) }
        for (k, value) in v.serverMountOptions.entries { o[k] = value }
        return .object(o)
    }

    /// The rack's aerospike.conf as data: the user's configuration with keys sorted, the cluster
    /// name, mesh heartbeat seeds (the first pod of every rack, so that scaling does not change
    /// the configuration) and the rack id of rack-aware namespaces.
    static func configuration(_ spec: AerospikeSpec, _ cluster: ClusterMetadata, rack: AerospikeSpec.Rack) -> JSONObject {
        let c = cluster.name
        var config = sortedDeep(spec.config)
        var service = config["service"]?.objectValue ?? JSONObject()
        if service["cluster-name"] == nil { service["cluster-name"] = .string(c) }
        // Each pod writes its own in at start (startScript); validation refuses the spec's.
        service["node-id"] = .string(nodeIdPlaceholder)
        config["service"] = .object(service.sortedByKey())

        var network = config["network"]?.objectValue ?? JSONObject()
        var heartbeat = network["heartbeat"]?.objectValue ?? JSONObject()
        heartbeat["mode"] = "mesh"
        // Seeds on the plain heartbeat port, or over TLS when there is only that.
        let seedPort = spec.ports.heartbeat ?? spec.ports.heartbeatTLS ?? 3002
        if let plain = spec.ports.heartbeat { heartbeat["port"] = .int(plain) }
        let seeds = spec.racks.map { r -> JSONValue in
            .string("\(c)-\(r.id)-0.\(c).\(cluster.namespace).svc.cluster.local:\(seedPort)")
        }
        heartbeat[spec.ports.heartbeat == nil ? "tls-mesh-seed-address-ports" : "mesh-seed-address-ports"] = .array(seeds)
        // Host networking: heartbeat and fabric on the node's address, as upstream binds them.
        if spec.hostNetwork {
            if spec.ports.heartbeat != nil { heartbeat["addresses"] = .array([.string(placeholder("POD_IP"))]) }
            if spec.ports.heartbeatTLS != nil { heartbeat["tls-addresses"] = .array([.string(placeholder("POD_IP"))]) }
            var fabric = network["fabric"]?.objectValue ?? JSONObject()
            if spec.ports.fabric != nil { fabric["addresses"] = .array([.string(placeholder("POD_IP"))]) }
            if spec.ports.fabricTLS != nil { fabric["tls-addresses"] = .array([.string(placeholder("POD_IP"))]) }
            network["fabric"] = .object(fabric.sortedByKey())
        }
        network["heartbeat"] = .object(heartbeat.sortedByKey())
        // The addresses clients are given: the node's (upstream's default, hostInternal) when
        // the service ports are on the node, the pod's for alternate access when asked for.
        var serviceNet = network["service"]?.objectValue ?? JSONObject()
        func advertise(_ key: String, _ address: String) {
            let singular = AerospikeConfWriter.singular[key] ?? key
            if serviceNet[key] == nil, serviceNet[singular] == nil { serviceNet[key] = JSONValue.array([.string(placeholder(address))]) }
        }
        let nodeAddress = spec.hostNetwork || !spec.multiPodPerHost
        if spec.ports.service != nil {
            if spec.access == .hostInternal, nodeAddress { advertise("access-addresses", "HOST_IP") }
            if spec.alternateAccessIsPod { advertise("alternate-access-addresses", "POD_IP") }
        }
        if spec.ports.serviceTLS != nil {
            if spec.tlsAccess == .hostInternal, nodeAddress { advertise("tls-access-addresses", "HOST_IP") }
            if spec.tlsAlternateAccessIsPod { advertise("tls-alternate-access-addresses", "POD_IP") }
        }
        network["service"] = .object(serviceNet.sortedByKey())
        network["info"] = .object((network["info"]?.objectValue ?? ["port": .int(spec.ports.info)]).sortedByKey())
        config["network"] = .object(network.sortedByKey())

        let rackAware = Set(spec.rackNamespaces)
        if rack.id != 0, let namespaces = config["namespaces"]?.arrayValue {
            config["namespaces"] = .array(namespaces.map { ns in
                guard var o = ns.objectValue, let name = o["name"]?.stringValue, rackAware.contains(name) else { return ns }
                o["rack-id"] = .int(rack.id)
                return .object(o.sortedByKey())
            })
        }
        // Contexts in a fixed order, as the server's own examples write them.
        let order = ["service", "logging", "network", "security", "mod-lua", "namespaces", "xdr"]
        return JSONObject(order.compactMap { k in config[k].map { (key: k, value: $0) } })
    }

    private static func sortedDeep(_ o: JSONObject) -> JSONObject {
        JSONObject(o.sortedByKey().entries.map { (key: $0.key, value: sortedDeep($0.value)) })
    }

    private static func sortedDeep(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let o): return .object(sortedDeep(o))
        case .array(let a): return .array(a.map(sortedDeep))
        default: return v
        }
    }

    /// The volumes every server pod has: its rack's aerospike.conf and the copy it starts from.
    static let ownVolumes: Set<String> = ["aerospike-conf", "cairn-conf", "cairn-volume-init-token"]
    static let runDirectory = "/run/cairn"
    /// The rack's aerospike.conf says `node-id ENV_NODE_ID` (the upstream operator's placeholder).
    static let nodeIdPlaceholder = "ENV_NODE_ID"

    /// A value each pod replaces with its own address at start (`startScript`).
    static func placeholder(_ address: String) -> String { "ENV_\(address)" }

    /// The server container's command: the rack's aerospike.conf with this pod's node-id,
    /// `<rack id>a<pod ordinal>` as the upstream operator sets it (so a restarted or rescheduled
    /// pod keeps its identity in the partition map and the strong-consistency roster, and a
    /// cluster taken over from the operator keeps its ids), then asd in the foreground as pid 1.
    /// With `addresses` (`HOST_IP`, `POD_IP`: environment variables the pod has), each address
    /// line ending in that placeholder gets the pod's value.
    static func startScript(rack: Int, addresses: [String] = []) -> String {
        var script = #"""
        set -eu
        ordinal="${POD_NAME##*-}"
        case "$ordinal" in ''|*[!0-9]*) echo "cairn: no pod ordinal at the end of POD_NAME '$POD_NAME'" >&2; exit 1;; esac
        node_id="\#(rack)a$ordinal"
        sed "s/^\([[:space:]]*node-id[[:space:]]\{1,\}\)\#(nodeIdPlaceholder)\$/\1$node_id/" /etc/aerospike/conf/aerospike.conf > \#(runDirectory)/aerospike.conf
        grep -q "^[[:space:]]*node-id[[:space:]]\{1,\}$node_id\$" \#(runDirectory)/aerospike.conf || { echo "cairn: could not set node-id $node_id" >&2; exit 1; }
        echo "cairn: node-id $node_id"

        """#
        for address in addresses {
            let p = placeholder(address)
            script += #"""
            case "${\#(address):-}" in ''|*[!0-9a-fA-F.:]*) echo "cairn: \#(address) '${\#(address):-}' is not an address" >&2; exit 1;; esac
            sed -i "s/^\([[:space:]]*[a-z-]*address[[:space:]]\{1,\}\)\#(p)\$/\1$\#(address)/" \#(runDirectory)/aerospike.conf
            ! grep -q "\#(p)\$" \#(runDirectory)/aerospike.conf || { echo "cairn: could not write \#(address)" >&2; exit 1; }
            echo "cairn: \#(address) $\#(address)"

            """#
        }
        return script + "exec asd --foreground --config-file \(runDirectory)/aerospike.conf\n"
    }

    /// Block volumes' `initMethod`, once per claim: `cairn volume-init` from cairn's image, before
    /// the server, with the devices and (alone in the pod) a token of a service account that may
    /// read and annotate the claims (`deviceInitAccess`), where it records what it did.
    static func deviceInit(_ spec: AerospikeSpec, _ cluster: ClusterMetadata, image: String)
        -> (container: Kube.Container, tokenVolume: JSONValue, account: String)? {
        let initialised = spec.devicesInitialised
        guard !initialised.isEmpty else { return nil }
        var c = Kube.Container(name: "cairn-init-devices", image: image)
        c.command = ["/usr/local/bin/cairn", "volume-init"]
        c.args = ["--pod", "$(POD_NAME)", "--namespace", "$(POD_NAMESPACE)", "--service-account", deviceInitAccount(cluster)]
            + initialised.map { "\($0.name)=\($0.initMethod):\($0.path)" }
        c.env = [Kube.envField("POD_NAME", "metadata.name"), Kube.envField("POD_NAMESPACE", "metadata.namespace")]
        c.volumeDevices = initialised.map { ["name": .string($0.name), "devicePath": .string($0.path)] }
        c.volumeMounts = [Kube.mount("cairn-volume-init-token", "/var/run/secrets/kubernetes.io/serviceaccount", readOnly: true)]
        // Root for the device nodes (owned by root), and nothing else.
        c.securityContext = [
            "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true, "capabilities": ["drop": ["ALL"]],
        ]
        c.resources = ResourceRequirements(requests: ["cpu": try! Quantity(parsing: "10m"), "memory": try! Quantity(parsing: "32Mi")],
                                           limits: ["memory": try! Quantity(parsing: "64Mi")])
        // What the kubelet mounts for a service account, in this container only.
        let token: JSONValue = ["name": "cairn-volume-init-token", "projected": ["sources": [
            ["serviceAccountToken": ["path": "token"]],
            ["configMap": ["name": "kube-root-ca.crt", "items": [["key": "ca.crt", "path": "ca.crt"]]]],
            ["downwardAPI": ["items": [["path": "namespace", "fieldRef": ["apiVersion": "v1", "fieldPath": "metadata.namespace"]]]]],
        ]]]
        return (c, token, deviceInitAccount(cluster))
    }

    static func deviceInitAccount(_ cluster: ClusterMetadata) -> String { "\(cluster.name)-volume-init" }

    /// The service account `deviceInit` runs as: it may read and annotate the claims of this
    /// cluster's initialised volumes (by name, for the pods it has now) and read itself (its
    /// creation time is when cairn began to initialise the devices: older claims are left alone).
    static func deviceInitAccess(_ spec: AerospikeSpec, _ cluster: ClusterMetadata, labels: [String: String]) -> [RenderedObject] {
        let account = deviceInitAccount(cluster)
        var claims: [JSONValue] = []
        for (rack, count) in spec.podsPerRack() {
            for ordinal in 0..<count {
                for v in spec.devicesInitialised { claims.append(.string("\(v.name)-\(cluster.name)-\(rack.id)-\(ordinal)")) }
            }
        }
        return Kube.serviceAccountWithRole(account, cluster, labels: labels, rules: [
            ["apiGroups": [""], "resources": ["persistentvolumeclaims"], "resourceNames": .array(claims), "verbs": ["get", "patch"]],
            ["apiGroups": [""], "resources": ["serviceaccounts"], "resourceNames": [.string(account)], "verbs": ["get"]],
        ])
    }

    /// The marker a cleaned volume keeps, so that it is cleaned once per claim.
    static let initMarker = ".cairn-initialized"

    /// Deletes every file of each path once (`find <path> -type f -delete`, the upstream
    /// operator's command), then leaves the marker.
    static func initScript(_ paths: [String]) -> String {
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        var script = "set -eu\n"
        for path in paths {
            let marker = quoted(path + "/" + initMarker)
            script += "if [ ! -e \(marker) ]; then find \(quoted(path)) -xdev -type f -delete; touch \(marker); fi\n"
        }
        return script
    }
}
