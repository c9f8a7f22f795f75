public import ClusterSpecs
import Foundation

/// An Aerospike cluster in the Aerospike operator's shape (`asdb.aerospike.com/v1`, kind `AerospikeCluster`).
public struct AerospikeSpec: SystemSpec {
    public static let apiVersion = "asdb.aerospike.com/v1"
    public static let kind = "AerospikeCluster"

    public struct Volume: Sendable, Hashable {
        public enum Source: Sendable, Hashable {
            case persistentVolume(storageClass: String?, volumeMode: String, size: Quantity)
            case secret(secretName: String)
            case emptyDir
        }
        public var name: String
        /// Where the server sees it: a mount directory, or a device path for Block volumes.
        public var path: String
        public var source: Source
        /// The effective init method (the volume's own, else its mode's policy), run the first
        /// time a pod uses its claim: `deleteFiles` empties a Filesystem volume; a Block volume's
        /// (`dd`, `headerCleanup`, `blkdiscard`, `blkdiscardWithHeaderCleanup`) runs from cairn's
        /// image (`cairn volume-init`), which records it on the claim.
        public var initMethod = "none"
        /// Where the effective init method was written (for a problem rendering it).
        public var initMethodAt: (location: Location, path: String)? {
            get { initMethodPath.map { (initMethodLocation!, $0) } }
            set { initMethodLocation = newValue?.location; initMethodPath = newValue?.path }
        }
        var initMethodLocation: Location?
        var initMethodPath: String?
        /// Where the spec's own containers see the volume (`sidecars`, `initContainers`).
        public var attachments: [Attachment] = []
        /// `aerospike.mountOptions` of the server's mount, as written.
        public var serverMountOptions = JSONObject()

        public var isBlock: Bool {
            if case .persistentVolume(_, "Block", _) = source { return true }
            return false
        }
    }

    /// Block volumes with an init method: `cairn volume-init` initialises them once per claim.
    public var devicesInitialised: [Volume] { volumes.filter { $0.isBlock && $0.initMethod != "none" } }

    public struct Rack: Sendable, Hashable {
        public var id: Int
        public var zone: String?
        public var region: String?
    }

    public struct User: Sendable, Hashable {
        public var name: String
        /// The Secret with the password (key `password`); empty for a PKI user.
        public var secretName: String
        public var roles: [String]
        /// `authMode: PKIOnly`: the user logs in with a client certificate that names it.
        public var pki = false
    }

    /// `admin` logs in with a certificate: cairn's Jobs connect over TLS and present
    /// operatorClientCert's (whose common name must be admin).
    public var adminIsPKI: Bool { Self.adminIsPKI(users) }
    /// cairn's Jobs connect over TLS: the service has no plain port, or admin needs a certificate.
    public var jobsOverTLS: Bool { Self.jobsOverTLS(users, ports) }

    static func adminIsPKI(_ users: [User]) -> Bool { users.contains { $0.name == "admin" && $0.pki } }
    static func jobsOverTLS(_ users: [User], _ ports: Ports) -> Bool { ports.service == nil || adminIsPKI(users) }

    /// The upstream operator's editions: Enterprise, and the Federal Edition (Enterprise with
    /// FIPS, PKI logins only).
    static func isFederal(_ image: String) -> Bool { image.lowercased().contains("federal") }
    static func isEnterprise(_ image: String) -> Bool { image.lowercased().contains("enterprise") || isFederal(image) }
    /// As upstream: PKIOnly users on the Enterprise Edition need server 8.1 (password logins off).
    static let pkiOnlySince = ImageVersion([8, 1])

    /// The ports the servers listen on: each of service, fabric and heartbeat plain (`port`,
    /// by default when no `tls-port` is given), over TLS (`tls-port` with its `tls-name`), or both.
    public struct Ports: Sendable, Hashable {
        public var service: Int? = 3000
        public var fabric: Int? = 3001
        public var heartbeat: Int? = 3002
        public var info = 3003
        public var serviceTLS: Int?
        public var fabricTLS: Int?
        public var heartbeatTLS: Int?
        /// The service's `tls-name`: the TLS context clients verify the servers' certificates by.
        public var serviceTLSName: String?

        /// Every port with its name, in a fixed order (as the upstream operator names them).
        public var named: [(name: String, port: Int)] {
            [("service", service), ("tls-service", serviceTLS), ("fabric", fabric), ("tls-fabric", fabricTLS),
             ("heartbeat", heartbeat), ("tls-heartbeat", heartbeatTLS), ("info", info)].compactMap { n, p in p.map { (n, $0) } }
        }

        /// The port clients connect to: the plain service port, else the TLS one.
        public var client: Int { service ?? serviceTLS ?? 3000 }
    }

    /// `operatorClientCert.secretCertSource`: the CA that signs the servers' certificates and
    /// the client certificate the users Job presents (a Secret in the cluster's namespace).
    public struct ClientCertificate: Sendable, Hashable {
        public var secretName: String
        public var caFile: String
        public var certFile: String?
        public var keyFile: String?
    }
    public var clientCertificate: ClientCertificate?
    /// `rosterNodeBlockList`: node ids kept out of the strong-consistency rosters.
    public var rosterNodeBlockList: [String] = []

    /// Which address the servers give clients (`aerospikeNetworkPolicy`): the pod's, or the
    /// node's internal address (upstream's default) with the service ports on the node.
    public enum Access: String, Sendable, Hashable { case pod, hostInternal }
    public var access = Access.hostInternal
    public var tlsAccess = Access.hostInternal
    /// `alternate-access-address`: the pod's address when asked for; upstream's default,
    /// the node's external address, is not known to a pod (not written).
    public var alternateAccessIsPod = false
    public var tlsAlternateAccessIsPod = false
    /// `podSpec.hostNetwork`: the pods use their node's network (one per node).
    public var hostNetwork = false
    public var dnsPolicy: String?

    /// The servers are reached at their node's address on their own ports: host networking,
    /// or one pod per node with the service ports on the node (upstream's hostPort), unless
    /// every access type is `pod`.
    public var onNodeAddress: Bool {
        // As upstream's podOnlyNetwork: every access and alternate access type of each service
        // port is pod (a TLS-only service never is).
        var podOnly = ports.service != nil && access == .pod && alternateAccessIsPod
        if ports.serviceTLS != nil { podOnly = podOnly && tlsAccess == .pod && tlsAlternateAccessIsPod }
        return hostNetwork || (!multiPodPerHost && !podOnly)
    }

    public var size: Int
    public var image: String
    public var version: ImageVersion
    /// `aerospikeConfig` as written (validated); the renderer adds what cairn manages.
    public var config: JSONObject
    public var ports: Ports
    public var volumes: [Volume]
    /// Racks; a cluster without `rackConfig` has the single default rack 0.
    public var racks: [Rack]
    /// Namespaces that are rack-aware (get `rack-id` lines).
    public var rackNamespaces: [String]
    public var users: [User]
    public var multiPodPerHost: Bool
    public var maxUnavailable: Int
    /// `podSpec.aerospikeContainer`: the server container's resources and security context.
    public var serverResources = ResourceRequirements()
    public var serverSecurityContext: JSONValue?
    /// `podSpec.sidecars` and `podSpec.initContainers`: the spec's own containers, as written.
    public var sidecars: [JSONValue] = []
    public var initContainers: [JSONValue] = []
    /// `podSpec`'s scheduling and pod settings, as upstream passes them to the pods: the
    /// affinity (cairn's rack and anti-affinity rules added to it, as upstream adds them), node
    /// selector, tolerations, pod security context, image pull secrets, DNS settings, and the
    /// pods' own labels and annotations (`podSpec.metadata`).
    public var affinity: JSONValue?
    public var nodeSelector: [String: String] = [:]
    public var tolerations: [JSONValue] = []
    public var podSecurityContext: JSONValue?
    public var imagePullSecrets: [String] = []
    public var dnsConfig: JSONValue?
    public var podLabels: [String: String] = [:]
    public var podAnnotations: [String: String] = [:]
    /// `headlessService.metadata`: labels and annotations of the cluster's headless Service.
    public var serviceLabels: [String: String] = [:]
    public var serviceAnnotations: [String: String] = [:]

    /// A volume mounted into one of the spec's own containers (upstream's VolumeAttachment).
    public struct Attachment: Sendable, Hashable {
        public var container: String
        public var initContainer: Bool
        public var path: String
        /// `mountOptions`: readOnly, subPath, subPathExpr, mountPropagation, as written.
        public var options: JSONObject
        /// Where `containerName` is written, for the check against the declared containers.
        public var location: Location
        public var fieldPath: String
    }

    /// Pods of each rack: the size spread evenly, earlier racks taking the remainder.
    public func podsPerRack() -> [(rack: Rack, count: Int)] {
        racks.enumerated().map { i, r in (r, size / racks.count + (i < size % racks.count ? 1 : 0)) }
    }

    /// Namespace keys Aerospike 7.0 made obsolete: a 7.x node refuses to start with them.
    static let obsoleteIn7: Set<String> = ["memory-size", "high-water-memory-pct", "stop-writes-pct", "single-bin", "data-in-index"]

    static func decode(_ field: Field, metadata: ClusterMetadata?) -> AerospikeSpec? {
        field.object { s -> AerospikeSpec? in
            let size = s.required("size").flatMap { $0.int(atLeast: 1, atMost: Limits.aerospikeNodes) }
            var image: String?
            var version: ImageVersion?
            if let f = s.required("image"), let i = f.nonEmptyString {
                image = i
                if let v = ImageVersion(image: i) {
                    if v < ImageVersion([6]) {
                        f.fail("Aerospike \(v) is not supported; cairn renders aerospike.conf for server 6.x and 7.x")
                    } else { version = v }
                } else {
                    f.fail("cannot tell the server version from '\(i)'; "
                           + "use a versioned tag such as aerospike/aerospike-server-enterprise:7.1.0.0 (aerospike.conf's keys depend on the version)")
                }
            }
            let volumes = s["storage"].flatMap(decodeStorage) ?? []
            var racks = [Rack(id: 0, zone: nil, region: nil)]
            var rackNamespaces: [String] = []
            var rackNamespacesField: Field?
            if let f = s["rackConfig"] {
                _ = f.object { rc -> Bool? in
                    if let nf = rc["namespaces"], let ns = nf.list({ $0.string }) {
                        rackNamespaces = ns
                        rackNamespacesField = nf
                    }
                    if let rf = rc["racks"], let list = rf.fieldList(decodeRack) {
                        if list.isEmpty { rf.fail("must list at least one rack") } else { racks = list.map(\.value) }
                        var seen: Set<Int> = []
                        for (item, r) in list where !seen.insert(r.id).inserted {
                            Field(node: item.node, path: "\(item.path).id", diagnostics: rf.diagnostics).fail("duplicate rack id \(r.id)")
                        }
                    }
                    return true
                }
            }
            if let size, size < racks.count, let f = s["size"] {
                f.fail("must be at least the number of racks (\(racks.count)); every rack needs a pod")
            }
            var users: [User] = []
            var accessControlField: Field?
            if let f = s["aerospikeAccessControl"] {
                accessControlField = f
                users = decodeAccessControl(f, federal: image.map(isFederal) ?? false) ?? []
                f.note(Self.accessControlNote)
                if users.contains(where: \.pki) {
                    f.note(Self.pkiNote)
                    if let image, !isFederal(image), let version, version < pkiOnlySince {
                        f.fail("PKIOnly users need Aerospike Enterprise \(pkiOnlySince) or later (found \(version)), as upstream checks")
                    }
                }
            }
            var multiPodPerHost = false
            var hostNetwork = false
            var hostNetworkField: Field?
            var dnsPolicy: String?
            var serverResources = ResourceRequirements()
            var serverSecurityContext: JSONValue?
            var sidecars: [(field: Field, value: JSONValue)] = []
            var initContainers: [(field: Field, value: JSONValue)] = []
            var podSettings = PodSettings()
            if let f = s["podSpec"] {
                _ = f.object { p -> Bool? in
                    var names = ["aerospike-server": "'aerospike-server' is the server's own container",
                                 "cairn-init-volumes": "'cairn-init-volumes' is cairn's own init container",
                                 "aerospike-init": "'aerospike-init' stands for the upstream operator's own init container, which cairn "
                                     + "does not run (its volume initialisation is cairn-init-volumes); leave it out"]
                    sidecars = p["sidecars"].flatMap { $0.fieldList { $0.extraContainer(names: &names) } } ?? []
                    initContainers = p["initContainers"].flatMap { $0.fieldList { $0.extraContainer(names: &names) } } ?? []
                    if let m = p["multiPodPerHost"], let b = m.bool { multiPodPerHost = b }
                    if let h = p["hostNetwork"], let b = h.bool { hostNetwork = b; hostNetworkField = h }
                    if let d = p["dnsPolicy"], let v = d.string {
                        switch v {
                        case "ClusterFirst", "ClusterFirstWithHostNet", "Default": dnsPolicy = v
                        case "None":
                            dnsPolicy = v
                            if p["dnsConfig"] == nil { d.fail("None needs a dnsConfig (the pods' name servers)") }
                        default: d.fail("must be ClusterFirst, ClusterFirstWithHostNet, Default or None (got \(v))")
                        }
                    }
                    podSettings = decodePodSettings(p)
                    if let c = p["aerospikeContainer"] {
                        _ = c.object { a -> Bool? in
                            if let r = a["resources"]?.resources { serverResources = r }
                            serverSecurityContext = a["securityContext"]?.securityContext
                            return true
                        }
                    }
                    return true
                }
            }
            var clientCertificate: ClientCertificate?
            let clientCertField = s["operatorClientCert"]
            /// `operatorClientCert`, read only where a Job of cairn's needs it (a TLS-only service).
            func decodeClientCertificate(_ f: Field) -> ClientCertificate? {
                f.object { o -> ClientCertificate? in
                    o.ignore("tlsClientName")  // read below, whether or not a Job uses the certificate
                    guard let source = o["secretCertSource"] else {
                        if !o.has("certPathInOperator") { o.field.fail("secretCertSource is required: the Secret with the CA and the client certificate") }
                        return nil
                    }
                    return source.object { c -> ClientCertificate? in
                        let secret = c.required("secretName")?.secretName
                        if let nf = c["secretNamespace"], let n = nf.string, let metadata, n != metadata.namespace {
                            nf.fail("must be the cluster's namespace \(metadata.namespace): a pod mounts Secrets of its own namespace only")
                        }
                        func fileName(_ key: String) -> String? {
                            guard let ff = c[key], let n = ff.nonEmptyString else { return nil }
                            guard Names.isDNS1123Subdomain(n.lowercased().replacingOccurrences(of: "_", with: "-")) else {
                                ff.fail("'\(n)' is not a key of a Secret cairn mounts (letters, digits, '.', '-', '_')")
                                return nil
                            }
                            return n
                        }
                        let ca = fileName("caCertsFilename")
                        let cert = fileName("clientCertFilename"), key = fileName("clientKeyFilename")
                        if (cert == nil) != (key == nil) {
                            c.field.fail("clientCertFilename and clientKeyFilename go together")
                        }
                        guard let secret else { return nil }
                        guard let ca else {
                            c.field.fail("caCertsFilename is required: the CA that signs the servers' certificates")
                            return nil
                        }
                        return ClientCertificate(secretName: secret, caFile: ca, certFile: cert, keyFile: key)
                    }
                }
            }
            if hostNetwork, multiPodPerHost, let f = hostNetworkField {
                f.fail("needs multiPodPerHost false: pods on the node's network would share its ports")
            }
            var access = Access.hostInternal, tlsAccess = Access.hostInternal
            var alternateAccessIsPod = false, tlsAlternateAccessIsPod = false
            if let f = s["aerospikeNetworkPolicy"] {
                _ = f.object { o -> Bool? in
                    func accessType(_ key: String) -> Access? {
                        guard let af = o[key], let v = af.string else { return nil }
                        switch v {
                        case "pod": return .pod
                        case "hostInternal": return .hostInternal
                        case "hostExternal", "configuredIP", "customInterface":
                            af.fail("not supported by cairn yet: \(v) needs the node's external or configured addresses, or its interfaces, "
                                    + "which a pod cannot read without access to the API server; use pod or hostInternal")
                        default: af.fail("must be pod, hostInternal, hostExternal, configuredIP or customInterface (got \(v))")
                        }
                        return nil
                    }
                    func alternate(_ key: String) -> Bool {
                        guard let af = o[key], let v = af.string else { return false }
                        switch v {
                        case "pod": return true
                        case "hostExternal": return false  // not written: noted below, as the default is
                        case "hostInternal", "configuredIP", "customInterface":
                            af.fail("not supported by cairn yet: an alternate access address other than the pod's is not rendered yet")
                        default: af.fail("must be pod, hostInternal, hostExternal, configuredIP or customInterface (got \(v))")
                        }
                        return false
                    }
                    access = accessType("access") ?? .hostInternal
                    tlsAccess = accessType("tlsAccess") ?? .hostInternal
                    alternateAccessIsPod = alternate("alternateAccess")
                    tlsAlternateAccessIsPod = alternate("tlsAlternateAccess")
                    return true
                }
            }
            var rosterNodeBlockList: [String] = []
            if let f = s["rosterNodeBlockList"], let ids = f.list({ item -> String? in
                guard let v = item.nonEmptyString else { return nil }
                guard v.count <= 16, v.allSatisfy(\.isHexDigit) else {
                    item.fail("'\(v)' is not a node id (at most 16 hexadecimal digits, e.g. 1A0)")
                    return nil
                }
                // As the servers print node ids: upper-case, without leading zeros.
                return AerospikeRoster.printed(v)
            }) { rosterNodeBlockList = ids }
            var maxUnavailable = 1
            let maxUnavailableField = s["maxUnavailable"]
            if let f = maxUnavailableField, let n = f.int(atLeast: 1, atMost: Limits.aerospikeNodes) { maxUnavailable = n }

            var config: JSONObject?
            var ports = Ports()
            var minReplicationFactor: Int?
            if let f = s.required("aerospikeConfig") {
                let checked = AerospikeConfigCheck(size: size, version: version, volumes: volumes,
                                                   enterprise: image.map(isEnterprise) ?? false)
                config = checked.validate(f)
                ports = checked.ports
                if var c = config, let name = tlsClientName(clientCertField) {
                    c.addClientName(name)
                    config = c
                }
                minReplicationFactor = checked.minReplicationFactor
                if let config {
                    let names = Set((config["namespaces"]?.arrayValue ?? []).compactMap { $0.objectValue?["name"]?.stringValue })
                    if let nf = rackNamespacesField {
                        for n in rackNamespaces where !names.contains(n) {
                            nf.fail("namespace '\(n)' is not in aerospikeConfig.namespaces")
                        }
                    }
                    // cairn's Jobs (users, rosters) connect to the service port: over TLS when it
                    // has no plain one, with operatorClientCert's CA and certificate; otherwise
                    // the field is not used, and not read further.
                    let strongConsistency = (config["namespaces"]?.arrayValue ?? []).contains { $0["strong-consistency"] == .bool(true) }
                    let jobs = !users.isEmpty || strongConsistency
                    let overTLS = Self.jobsOverTLS(users, ports)
                    if let cf = clientCertField, !jobs || !overTLS {
                        cf.note("its certificate is not used by cairn: " + (!jobs
                            ? "cairn connects to the cluster only to provision users or set rosters, and there are none"
                            : "cairn's Jobs connect to the plain service port"))
                    }
                    // As upstream: PKI needs the service over mutual TLS.
                    if let pkiUser = users.first(where: \.pki), let ac = accessControlField {
                        let authenticate = config["network"]?["service"]?["tls-authenticate-client"]
                        if ports.serviceTLS == nil {
                            ac.fail("user \(pkiUser.name) logs in with a certificate (authMode PKIOnly): the service needs TLS "
                                    + "(network.service tls-port and tls-name)")
                        } else if authenticate.map(AerospikeConfWriter.token) == "false" {
                            ac.fail("user \(pkiUser.name) logs in with a certificate (authMode PKIOnly): the servers must ask clients for "
                                    + "one (tls-authenticate-client any, or a list of names), not false")
                        }
                    }
                    if jobs, overTLS, ports.serviceTLS != nil {
                        clientCertificate = clientCertField.flatMap(decodeClientCertificate)
                        let authenticate = config["network"]?["service"]?["tls-authenticate-client"].map(AerospikeConfWriter.token) ?? "any"
                        if clientCertField == nil {
                            (accessControlField ?? f).fail("cairn's Jobs (users, rosters) connect over TLS (the service has no plain port, "
                                + "or admin logs in with a certificate): "
                                + "give operatorClientCert.secretCertSource with the CA (caCertsFilename) and the client certificate and key")
                        } else if let cert = clientCertificate, cert.certFile == nil, authenticate != "false", let cf = clientCertField {
                            cf.fail("the servers ask clients for a certificate (tls-authenticate-client \(authenticate)): give clientCertFilename "
                                    + "and clientKeyFilename for cairn's Jobs")
                        }
                    }
                    if let ac = accessControlField, config["security"] == nil {
                        ac.fail("access control needs security enabled: add `security: {}` to aerospikeConfig")
                    }
                    // As upstream: the server would start with its default user admin/admin
                    // and nobody would replace it.
                    if accessControlField == nil, config["security"] != nil, let sf = f.mapping?["security"] {
                        f.child("security", sf).fail("security is enabled but aerospikeAccessControl is missing: list the users, "
                                                     + "with the user admin and the roles sys-admin and user-admin, or the server keeps "
                                                     + "its default user admin with the password admin")
                    }
                }
            }
            if let rf = minReplicationFactor, let f = maxUnavailableField, maxUnavailable >= rf {
                f.fail("must be less than the smallest replication-factor (\(rf)), or a disruption could take every copy of a partition")
            }
            if let metadata, case let name = metadata.name {
                let nameField = s.field.metadataName(metadata)
                let longest = racks.map(\.id).max() ?? 0
                nameField.checkDerivedName("\(name)-\(longest)-0123456789", limit: 63, what: "pod revision label")
            }
            guard let size, let image, let version, let config else { return nil }
            var spec = AerospikeSpec(size: size, image: image, version: version, config: config, ports: ports,
                                     volumes: volumes, racks: racks, rackNamespaces: rackNamespaces, users: users,
                                     multiPodPerHost: multiPodPerHost, maxUnavailable: maxUnavailable)
            spec.clientCertificate = clientCertificate
            spec.rosterNodeBlockList = rosterNodeBlockList
            spec.access = access
            spec.tlsAccess = tlsAccess
            spec.alternateAccessIsPod = alternateAccessIsPod
            spec.tlsAlternateAccessIsPod = tlsAlternateAccessIsPod
            spec.hostNetwork = hostNetwork
            spec.dnsPolicy = dnsPolicy
            // Upstream's default alternate access is the node's external address, which a pod
            // cannot read: not written, and said (the TLS one only where TLS is served).
            let alternateLeftOut = !alternateAccessIsPod || (ports.serviceTLS != nil && !tlsAlternateAccessIsPod)
            if alternateLeftOut {
                (s["aerospikeNetworkPolicy"] ?? s.field).note("alternate access addresses are not written: upstream's default "
                    + "(aerospikeNetworkPolicy.alternateAccess hostExternal, the node's external address) is not known to a pod; "
                    + "clients that ask for alternate addresses get none (alternateAccess: pod gives the pods' own)")
            }
            // With several pods per node, upstream gives each a NodePort Service and advertises
            // the node's address with it; a pod cannot learn its NodePort without the API.
            if multiPodPerHost, !hostNetwork, access == .hostInternal || (ports.serviceTLS != nil && tlsAccess == .hostInternal) {
                (s["podSpec"] ?? s.field).note("with multiPodPerHost the servers give clients their pod addresses (upstream: the node's "
                    + "address and a NodePort Service per pod, which cairn does not render); clients outside the pod network cannot "
                    + "connect (set aerospikeNetworkPolicy access: pod to say so)")
            }
            spec.serverResources = serverResources
            spec.serverSecurityContext = serverSecurityContext
            spec.affinity = podSettings.affinity
            spec.nodeSelector = podSettings.nodeSelector
            spec.tolerations = podSettings.tolerations
            spec.podSecurityContext = podSettings.securityContext
            spec.imagePullSecrets = podSettings.imagePullSecrets
            spec.dnsConfig = podSettings.dnsConfig
            spec.podLabels = podSettings.labels
            spec.podAnnotations = podSettings.annotations
            if let f = s["headlessService"] {
                _ = f.object { h -> Bool? in
                    let meta = h["metadata"].flatMap(decodeMetadata) ?? ([:], [:])
                    (spec.serviceLabels, spec.serviceAnnotations) = meta
                    return true
                }
            }
            spec.sidecars = sidecars.map(\.value)
            spec.initContainers = initContainers.map(\.value)
            // A volume is attached to a container the spec declares, of the right kind.
            let sidecarNames = Set(sidecars.compactMap { $0.value["name"]?.stringValue })
            let initNames = Set(initContainers.compactMap { $0.value["name"]?.stringValue })
            var paths: [String: String] = [:]  // "container path" -> volume
            for volume in volumes {
                var containers: Set<String> = []
                for a in volume.attachments {
                    let kind = a.initContainer ? "init container" : "sidecar"
                    if !(a.initContainer ? initNames : sidecarNames).contains(a.container) {
                        s.field.diagnostics.report(a.location, a.fieldPath, "volume \(volume.name) is attached to \(kind) '\(a.container)', "
                                                   + "which podSpec.\(a.initContainer ? "initContainers" : "sidecars") does not declare")
                    } else if !containers.insert("\(a.initContainer) \(a.container)").inserted {
                        s.field.diagnostics.report(a.location, a.fieldPath, "volume \(volume.name) is attached to \(kind) '\(a.container)' twice")
                    } else if let other = paths["\(a.initContainer) \(a.container) \(a.path)"] {
                        s.field.diagnostics.report(a.location, a.fieldPath, "\(kind) '\(a.container)' has volume \(other) at \(a.path) already")
                    } else {
                        paths["\(a.initContainer) \(a.container) \(a.path)"] = volume.name
                    }
                }
            }
            // A storage volume reaches a container through its attachments, not a mount of the
            // container's own (the upstream operator drops such a mount).
            let storageNames = Set(volumes.map(\.name))
            for (field, container) in sidecars + initContainers {
                for mount in (container["volumeMounts"]?.arrayValue ?? []) + (container["volumeDevices"]?.arrayValue ?? [])
                where storageNames.contains(mount["name"]?.stringValue ?? "") || AerospikeRenderer.ownVolumes.contains(mount["name"]?.stringValue ?? "") {
                    let name = mount["name"]?.stringValue ?? ""
                    field.fail(storageNames.contains(name)
                        ? "mounts storage volume \(name); attach it with storage.volumes[].sidecars or initContainers instead"
                        : "mounts \(name), a volume cairn renders for itself (its token or configuration): not for other containers")
                }
            }
            return spec
        }
    }

    struct PodSettings {
        var affinity: JSONValue?
        var nodeSelector: [String: String] = [:]
        var tolerations: [JSONValue] = []
        var securityContext: JSONValue?
        var imagePullSecrets: [String] = []
        var dnsConfig: JSONValue?
        var labels: [String: String] = [:]
        var annotations: [String: String] = [:]
    }

    /// Labels cairn's pods and Services carry; a spec's own may not take these keys.
    static let reservedLabels: Set<String> = ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
                                              "cairn.dev/cluster", "aerospike.com/rack-id", "app.kubernetes.io/component"]

    /// `metadata: {labels, annotations}` of podSpec or headlessService; cairn's own label keys
    /// are refused (the pods' selectors depend on them).
    static func decodeMetadata(_ f: Field) -> ([String: String], [String: String])? {
        f.object { m -> ([String: String], [String: String])? in
            var labels = m["labels"].flatMap { $0.labelMap } ?? [:]
            for key in labels.keys.sorted() where reservedLabels.contains(key) || key.hasPrefix("cairn.dev/") {
                m["labels"]?.fail("'\(key)' is a label of cairn's own; choose another key")
                labels[key] = nil
            }
            let annotations = m["annotations"].flatMap { $0.annotationMap } ?? [:]
            return (labels, annotations)
        }
    }

    static func decodePodSettings(_ p: ObjectReader) -> PodSettings {
        var out = PodSettings()
        if let f = p["affinity"], let a = f.affinity { out.affinity = a }
        if let f = p["nodeSelector"], let m = f.labelMap { out.nodeSelector = m }
        if let f = p["tolerations"], let t = f.tolerations { out.tolerations = t }
        if let f = p["securityContext"], f.mapping != nil { out.securityContext = f.json }
        if let f = p["imagePullSecrets"], let names = f.list({ item in
            item.object { o -> String? in
                guard let nf = o.required("name"), let name = nf.nonEmptyString else { return nil }
                guard Names.isDNS1123Subdomain(name) else { nf.fail("'\(name)' is not a Secret name"); return nil }
                return name
            }
        }) { out.imagePullSecrets = names }
        if let f = p["dnsConfig"], f.mapping != nil { out.dnsConfig = f.json }
        if let f = p["metadata"], let meta = decodeMetadata(f) {
            out.labels = meta.0
            out.annotations = meta.1
        }
        return out
    }

    private static func decodeRack(_ f: Field) -> Rack? {
        f.object(unsupported: [
            "aerospikeConfig": "per-rack configuration is not rendered yet", "storage": "per-rack storage is not rendered yet",
            "podSpec": "per-rack pod settings are not rendered yet", "nodeName": "use zone or region",
            "rackLabel": "use zone or region", "revision": "use a new rack id to change a rack's storage",
        ]) { r -> Rack? in
            let id = r.required("id").flatMap { $0.int(atLeast: 1, atMost: 1_000_000) }
            let zone = r["zone"].flatMap { $0.labelValueString }
            let region = r["region"].flatMap { $0.labelValueString }
            guard let id else { return nil }
            return Rack(id: id, zone: zone, region: region)
        }
    }

    /// `initMethod`, `wipeMethod` and `cascadeDelete`, of a global policy or of one volume, with
    /// the upstream operator's defaults and rules (its webhook's, per volume mode).
    struct VolumePolicy: Equatable {
        var initMethod: String?
        var wipeMethod: String?
        var cascadeDelete: Bool?
        var fields: [String: Field] = [:]

        static func == (a: VolumePolicy, b: VolumePolicy) -> Bool {
            a.initMethod == b.initMethod && a.wipeMethod == b.wipeMethod && a.cascadeDelete == b.cascadeDelete
        }

        static let blockInit: Set<String> = ["none", "dd", "blkdiscard", "headerCleanup", "blkdiscardWithHeaderCleanup"]
        static let filesystemInit: Set<String> = ["none", "deleteFiles"]

        /// Reads the three fields from an object (a policy, or a volume's own).
        static func read(_ o: ObjectReader) -> VolumePolicy {
            var p = VolumePolicy()
            if let f = o["initMethod"], let v = f.string {
                p.fields["initMethod"] = f
                if blockInit.union(filesystemInit).contains(v) { p.initMethod = v } else {
                    f.fail("must be one of none, deleteFiles, dd, blkdiscard, headerCleanup, blkdiscardWithHeaderCleanup (got \(v))")
                }
            }
            if let f = o["wipeMethod"], let v = f.string {
                p.fields["wipeMethod"] = f
                if ["dd", "blkdiscard", "deleteFiles"].contains(v) { p.wipeMethod = v } else {
                    f.fail("must be one of dd, blkdiscard, deleteFiles (got \(v))")
                }
            }
            if let f = o["cascadeDelete"], let b = f.bool {
                p.fields["cascadeDelete"] = f
                p.cascadeDelete = b
            }
            return p
        }

        /// Checks the effective methods of a volume of this mode, and says what cairn does.
        static func effective(own: VolumePolicy, global: VolumePolicy, block: Bool, volume: Field) -> (method: String, field: Field) {
            let initMethod = own.initMethod ?? global.initMethod ?? "none"
            let initField = own.fields["initMethod"] ?? global.fields["initMethod"] ?? volume
            let wipeMethod = own.wipeMethod ?? global.wipeMethod ?? (block ? "dd" : "deleteFiles")
            let wipeField = own.fields["wipeMethod"] ?? global.fields["wipeMethod"]
            if block {
                if !blockInit.contains(initMethod) {
                    initField.fail("invalid init method \(initMethod) for a Block volume "
                                   + "(none, dd, blkdiscard, headerCleanup, blkdiscardWithHeaderCleanup)")
                }
                if !["dd", "blkdiscard"].contains(wipeMethod) { wipeField?.fail("invalid wipe method \(wipeMethod) for a Block volume (dd, blkdiscard)") }
            } else {
                if !filesystemInit.contains(initMethod) { initField.fail("invalid init method \(initMethod) for a Filesystem volume (none, deleteFiles)") }
                if wipeMethod != "deleteFiles" { wipeField?.fail("invalid wipe method \(wipeMethod) for a Filesystem volume (deleteFiles)") }
            }
            return (initMethod, initField)
        }
    }

    private static func decodeStorage(_ f: Field) -> [Volume]? {
        f.object(unsupported: [
            "localStorageClasses": "the upstream operator deletes these claims when a pod restarts; cairn never deletes a PersistentVolumeClaim",
            "deleteLocalStorageOnRestart": "cairn never deletes a PersistentVolumeClaim",
        ]) { st -> [Volume]? in
            var policies: [String: VolumePolicy] = [:]
            for key in ["filesystemVolumePolicy", "blockVolumePolicy"] {
                guard let pf = st[key] else { continue }
                policies[key] = pf.object { VolumePolicy.read($0) } ?? VolumePolicy()
                if policies[key]?.cascadeDelete == true, let c = policies[key]?.fields["cascadeDelete"] {
                    c.note(Self.cascadeDeleteNote)
                }
                if policies[key]?.wipeMethod != nil, let w = policies[key]?.fields["wipeMethod"] { w.note(Self.wipeNote) }
            }
            if let t = st["cleanupThreads"], t.int(atLeast: 1, atMost: 64) != nil {
                t.note("how many volumes the upstream operator cleans at once; cairn's init container cleans them one after the other")
            }
            guard let vf = st["volumes"] else { return [] }
            var noted = Set<String>()
            let volumes = (vf.fieldList(decodeVolume) ?? []).map { item, decoded -> (item: Field, value: Volume) in
                var v = decoded.volume
                let block = v.isBlock
                let global = policies[block ? "blockVolumePolicy" : "filesystemVolumePolicy"] ?? VolumePolicy()
                let initMethod = VolumePolicy.effective(own: decoded.policy, global: global, block: block, volume: item)
                if case .persistentVolume = v.source {
                    v.initMethod = initMethod.method
                    v.initMethodAt = (initMethod.field.location, initMethod.field.path)
                    if block, initMethod.method != "none", noted.insert(initMethod.field.path).inserted {
                        initMethod.field.note(Self.deviceInitNote)
                    }
                }
                return (item, v)
            }
            var names: Set<String> = []
            var paths: Set<String> = []
            for (item, v) in volumes {
                if !names.insert(v.name).inserted { item.fail("duplicate volume name '\(v.name)'") }
                if !paths.insert(v.path).inserted { item.fail("duplicate path '\(v.path)'") }
            }
            return volumes.map(\.value)
        }
    }

    static let deviceInitNote = "runs once per volume claim made from now on (older claims hold the cluster's data and are left alone), "
        + "as cairn volume-init in an init container from cairn's image, as root with no capabilities (a namespace enforcing the "
        + "restricted pod security standard refuses it); the pods then run as ServiceAccount <cluster>-volume-init with no token "
        + "mounted but in that container: pull secrets of the namespace's default ServiceAccount are not used (give podSpec.imagePullSecrets)"
    static let cascadeDeleteNote = "cairn never deletes a PersistentVolumeClaim: the claims stay when pods or the cluster go "
        + "(the upstream operator deletes them); delete them by hand once their data is no longer needed"
    static let wipeNote = "the upstream operator wipes only when the server's major version crosses 6; cairn renders 6.x and later, "
        + "so it never applies"

    private static func decodeVolume(_ f: Field) -> (volume: Volume, policy: VolumePolicy)? {
        f.object { v -> (volume: Volume, policy: VolumePolicy)? in
            let policy = VolumePolicy.read(v)
            if policy.cascadeDelete == true, let c = policy.fields["cascadeDelete"] { c.note(Self.cascadeDeleteNote) }
            if policy.wipeMethod != nil, let w = policy.fields["wipeMethod"] { w.note(Self.wipeNote) }
            var name: String?
            if let nf = v.required("name"), let n = nf.string {
                if !Names.isDNS1123Label(n) {
                    nf.fail("'\(n)' is not a valid volume name (lower-case letters, digits, '-')")
                } else if AerospikeRenderer.ownVolumes.contains(n) {
                    nf.fail("'\(n)' is the name of a volume cairn renders itself; choose another")
                } else {
                    name = n
                }
            }
            var path: String?
            var serverMountOptions = JSONObject()
            if let af = v.required("aerospike") {
                _ = af.object { a -> Bool? in
                    if let mf = a["mountOptions"] { serverMountOptions = mountOptions(mf) }
                    if let pf = a.required("path"), let p = pf.string {
                        if p.hasPrefix("/"), !p.contains(where: { $0.isWhitespace || $0 == "#" }) { path = p } else {
                            pf.fail("must be an absolute path without spaces (got '\(p)')")
                        }
                    }
                    return true
                }
            }
            var source: Volume.Source?
            if let sf = v.required("source") {
                source = sf.object(unsupported: ["configMap": "mount configuration through aerospikeConfig",
                                                  "hostPath": "node directories are not mounted; use a persistentVolume (a local storage class)"]) { src -> Volume.Source? in
                    let kinds = ["persistentVolume", "secret", "emptyDir"].filter { src.has($0) }
                    guard kinds.count == 1 else {
                        src.field.fail("needs exactly one of persistentVolume, secret or emptyDir")
                        for k in kinds { src.ignore(k) }
                        return nil
                    }
                    if let pv = src["persistentVolume"] {
                        return pv.object(unsupported: ["accessModes": "volumes are ReadWriteOnce",
                                                       "selector": "volumes come from the storage class",
                                                       "metadata": "claim labels and annotations are not rendered yet"]) { p -> Volume.Source? in
                            var storageClass: String?
                            if let c = p["storageClass"], let s = c.string {
                                if Names.isDNS1123Subdomain(s) { storageClass = s } else { c.fail("'\(s)' is not a valid storage class name") }
                            }
                            var mode = "Filesystem"
                            if let m = p["volumeMode"], let s = m.string {
                                if s == "Filesystem" || s == "Block" { mode = s } else { m.fail("must be Filesystem or Block (got \(s))") }
                            }
                            var size: Quantity?
                            if let q = p.required("size"), let v = q.quantity {
                                if v.isZero || v.isNegative { q.fail("must be more than 0 (got \(v))") } else { size = v }
                            }
                            guard let size else { return nil }
                            return .persistentVolume(storageClass: storageClass, volumeMode: mode, size: size)
                        }
                    }
                    if let sec = src["secret"] {
                        return sec.object { s -> Volume.Source? in
                            guard let nf = s.required("secretName"), let n = nf.string else { return nil }
                            guard Names.isDNS1123Subdomain(n) else { nf.fail("'\(n)' is not a valid Secret name"); return nil }
                            return .secret(secretName: n)
                        }
                    }
                    _ = src["emptyDir"]
                    return .emptyDir
                }
            }
            var attachments: [Attachment] = []
            for (key, initContainer) in [("sidecars", false), ("initContainers", true)] {
                guard let lf = v[key] else { continue }
                attachments += lf.list { af in
                    af.object { a -> Attachment? in
                        // Every field read before any is found missing, so that none is taken for unknown.
                        let cf = a.required("containerName"), pf = a.required("path")
                        let options = a["mountOptions"].map(mountOptions) ?? JSONObject()
                        guard let cf, let container = cf.nonEmptyString, let pf, let p = pf.nonEmptyString else { return nil }
                        guard p.hasPrefix("/") else { pf.fail("must be an absolute path (got '\(p)')"); return nil }
                        return Attachment(container: container, initContainer: initContainer, path: p, options: options,
                                          location: cf.location, fieldPath: cf.path)
                    }
                } ?? []
            }
            guard let name, let path, let source else { return nil }
            var volume = Volume(name: name, path: path, source: source)
            volume.attachments = attachments
            volume.serverMountOptions = serverMountOptions
            return (volume, policy)
        }
    }

    /// `mountOptions` of a volume's mount: readOnly, subPath, subPathExpr, mountPropagation.
    static func mountOptions(_ mf: Field) -> JSONObject {
        var options = JSONObject()
        _ = mf.object { m -> Bool? in
            // Written only when true, as the API server stores it.
            if let r = m["readOnly"], let b = r.bool, b { options["readOnly"] = true }
            for k in ["subPath", "subPathExpr"] { if let f = m[k], let t = f.nonEmptyString { options[k] = .string(t) } }
            if let f = m["mountPropagation"], let t = f.nonEmptyString {
                if ["None", "HostToContainer", "Bidirectional"].contains(t) { options["mountPropagation"] = .string(t) } else {
                    f.fail("must be None, HostToContainer or Bidirectional (got \(t))")
                }
            }
            return true
        }
        return options
    }

    /// What cairn does for a strong-consistency namespace, and where it differs from upstream.
    static let strongConsistencyNote = "the roster is set by a Job to the cluster's nodes less rosterNodeBlockList, once the servers "
        + "observe them all, and again whenever the nodes change; shrink the cluster by fewer than replication-factor nodes per change "
        + "(cairn sets the smaller roster as the pods go, where the upstream operator sets it before)"

    /// What cairn does with `aerospikeAccessControl`, and where it differs from upstream.
    static let accessControlNote = "users are provisioned by a Job with asadm (log in as admin with its Secret's password, or "
        + "the default admin on a new cluster; create missing users, set every password, grant and revoke roles, admin last), run "
        + "again when the users or roles change; unlike the upstream operator, cairn does not drop a user taken out of the list "
        + "(drop it with asadm: manage acl delete user NAME), and a password changed in its Secret is set the next time the Job runs; "
        + "the Job logs in with admin's Secret, so change admin's own password with asadm first, then in its Secret"

    static let pkiNote = "PKIOnly users log in with their certificate only: the Job creates them with a random password that is "
        + "never stored or shown, and sets a new one each run (asadm cannot create a user without a password; the upstream "
        + "operator's client asks servers 8.1 and later to turn password logins off for them); with admin PKIOnly the Job logs "
        + "in with operatorClientCert's certificate, whose common name must be admin (on a new cluster, Enterprise Edition, "
        + "with the default password admin, which it then replaces)"

    /// Names the Job passes to asadm's command line (shlex-tokenised there): upstream forbids
    /// only `;` and `:`, cairn also keeps out quotes, whitespace and shell characters.
    static func isProvisionableUserName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 63 && s.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._@+-".unicodeScalars.contains($0)
        }
    }

    /// `operatorClientCert.tlsClientName`: the name in the certificate of the upstream operator's
    /// client (cairn's Jobs use the same certificate).
    private static func tlsClientName(_ clientCert: Field?) -> String? {
        guard let cf = clientCert, case .mapping(let m) = cf.node,
              let entry = m.entries.first(where: { $0.key.text == "tlsClientName" }) else { return nil }
        let f = cf.child("tlsClientName", entry.value)
        guard let name = f.nonEmptyString else { return nil }
        guard !name.contains(where: { $0.isWhitespace || $0 == "{" || $0 == "}" || $0 == "#" }) else {
            f.fail("'\(name)' cannot be a name in aerospike.conf (no whitespace, braces or '#')")
            return nil
        }
        return name
    }

    /// The roles the server predefines (custom roles are not provisioned yet).
    static let predefinedRoles: Set<String> = [
        "user-admin", "sys-admin", "data-admin", "read", "read-write", "read-write-udf", "write", "truncate", "sindex-admin",
        "udf-admin", "masking-admin", "read-masked", "write-masked",
    ]

    private static func decodeAccessControl(_ f: Field, federal: Bool) -> [User]? {
        f.object { ac -> [User]? in
            guard let uf = ac.required("users"), let users = uf.list({ u -> User? in
                u.object { o -> User? in
                    let name = o.required("name").flatMap { nf -> String? in
                        guard let n = nf.nonEmptyString else { return nil }
                        guard isProvisionableUserName(n) else {
                            nf.fail("'\(n)' is not a user name cairn provisions: use at most 63 letters, digits, '.', '_', '@', '+' or '-'")
                            return nil
                        }
                        return n
                    }
                    var authMode = "Internal"
                    if let af = o["authMode"], let a = af.string {
                        switch a {
                        case "Internal", "PKIOnly": authMode = a
                        default: af.fail("must be Internal or PKIOnly (got \(a))")
                        }
                    }
                    if federal, authMode != "PKIOnly" {
                        (o["authMode"] ?? o.field).fail("the Federal Edition has no password logins: every user needs authMode PKIOnly")
                    }
                    var secret: String?
                    if authMode == "Internal", let sf = o.required("secretName"), let s = sf.string {
                        if Names.isDNS1123Subdomain(s) { secret = s } else { sf.fail("'\(s)' is not a valid Secret name") }
                    } else if authMode == "PKIOnly", let sf = o["secretName"] {
                        sf.fail("a PKIOnly user has no password: remove secretName (as upstream)")
                    }
                    let roles = o.required("roles").flatMap { r in
                        r.list { rf -> String? in
                            guard let role = rf.nonEmptyString else { return nil }
                            guard predefinedRoles.contains(role) else {
                                rf.fail("'\(role)' is not a role the server predefines (\(predefinedRoles.sorted().joined(separator: ", "))); "
                                        + "custom roles are not provisioned by cairn yet")
                                return nil
                            }
                            return role
                        }
                    } ?? []
                    if let rf = o["roles"], Set(roles).count != roles.count { rf.fail("lists a role twice") }
                    guard let name else { return nil }
                    // A PKI user has no password Secret; it still counts as the admin user.
                    return User(name: name, secretName: secret ?? "", roles: roles, pki: authMode == "PKIOnly")
                }
            }) else { return nil }
            var seen: Set<String> = []
            for u in users where !seen.insert(u.name).inserted { uf.fail("duplicate user '\(u.name)'") }
            // As upstream: cairn's Job logs in as admin.
            if !users.contains(where: { $0.name == "admin" && $0.roles.contains("sys-admin") && $0.roles.contains("user-admin") }) {
                uf.fail("needs the user admin with the roles sys-admin and user-admin (the user cairn provisions the others with)")
            }
            return users
        }
    }
}

extension Field {
    var labelValueString: String? {
        guard let s = string else { return nil }
        guard Names.isLabelValue(s), !s.isEmpty else { fail("'\(s)' is not a valid label value"); return nil }
        return s
    }
}

/// Validates `aerospikeConfig` against what aerospike.conf can express and what the server
/// version accepts, and reads the ports the pods must expose.
package final class AerospikeConfigCheck {
    let size: Int?
    let version: ImageVersion?
    let volumes: [AerospikeSpec.Volume]
    var ports = AerospikeSpec.Ports()
    var minReplicationFactor: Int?
    let enterprise: Bool

    init(size: Int?, version: ImageVersion?, volumes: [AerospikeSpec.Volume], enterprise: Bool) {
        self.size = size
        self.version = version
        self.volumes = volumes
        self.enterprise = enterprise
    }

    var isV7: Bool { version.map { $0 >= ImageVersion([7]) } ?? false }

    func validate(_ f: Field) -> JSONObject? {
        guard let top = f.mapping else { return nil }
        var ok = true
        let allowed: Set<String> = ["service", "network", "namespaces", "logging", "security", "mod-lua", "xdr"]
        for e in top.entries where !allowed.contains(e.key.text) {
            f.diagnostics.report(e.key.location, Field.join(f.path, e.key.text),
                                 "unknown aerospike.conf context (supported: \(allowed.sorted().joined(separator: ", ")))")
            ok = false
        }
        // security: cairn's Job logs in with the default password admin on a new cluster.
        if let security = top["security"], case .mapping(let sm) = security,
           let entry = sm.entries.first(where: { $0.key.text == "default-password-file" }) {
            f.diagnostics.report(entry.key.location, Field.join(Field.join(f.path, "security"), "default-password-file"),
                                 "not supported by cairn yet: cairn's user Job logs in to a new cluster with the default password admin")
            ok = false
        }
        // Syntax of every key and value first: aerospike.conf has no quoting.
        for e in top.entries where allowed.contains(e.key.text) && !["namespaces", "logging", "xdr"].contains(e.key.text) {
            ok = checkContext(f.child(e.key.text, e.value), skipping: e.key.text == "network" ? ["tls"] : []) && ok
        }
        let service = f.mapping?["service"]
        if let node = service, case .mapping = node {} else if let node = service {
            f.child("service", node).fail("must be a mapping")
            ok = false
        }
        if let node = service, case .mapping(let sm) = node, let id = sm["node-id"] {
            f.child("service", node).child("node-id", id)
                .fail("is managed by cairn: each pod's node-id is <rack id>a<pod ordinal>, as the upstream operator sets it, "
                      + "so that a restarted pod keeps its identity")
            ok = false
        }
        if enterprise, !hasFeatureKey(service) {
            f.fail("an Enterprise server refuses to start without its feature key: "
                   + "set service.feature-key-file to a file from a secret volume in storage.volumes")
            ok = false
        }
        ok = checkNetwork(f) && ok
        ok = checkNamespaces(f) && ok
        ok = checkLogging(f) && ok
        ok = checkXDR(f) && ok
        return ok ? f.json.objectValue : nil
    }

    private func hasFeatureKey(_ service: SpecNode?) -> Bool {
        guard let service, case .mapping(let m) = service else { return false }
        return m["feature-key-file"] != nil || m["feature-key-files"] != nil
    }

    package static func isKey(_ k: String) -> Bool {
        guard let first = k.unicodeScalars.first, ("a"..."z").contains(first) || ("0"..."9").contains(first) else { return false }
        return k.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." || $0 == "_" }
    }

    /// A value token: aerospike.conf splits lines on whitespace, treats `#` as a comment and a
    /// lone `{` or `}` token as a context's start or end; a brace inside a token is text (LDAP's
    /// `user-dn-pattern uid=${un},...`).
    package static func tokenProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        if s.count > 512 { return "is longer than 512 characters" }
        if s == "{" || s == "}" || s.contains(where: { $0.isWhitespace || $0 == "#" || $0.asciiValue.map { $0 < 32 } == true }) {
            return "'\(s)' cannot be written to aerospike.conf: values may not contain whitespace or '#', nor be a lone '{' or '}'"
        }
        return nil
    }

    @discardableResult
    func checkScalar(_ f: Field) -> Bool {
        guard case .scalar(let s) = f.node, s.resolved != .null else {
            f.fail("must be a value (got \(f.node.kindName))")
            return false
        }
        if let p = AerospikeConfigCheck.tokenProblem(s.text) { f.fail(p); return false }
        return true
    }

    /// A device or file of a namespace, and its optional shadow, separated by whitespace as
    /// aerospike.conf has them (`/dev/nvme0n1 /dev/sdf`).
    func checkShadowPair(_ f: Field) -> Bool {
        guard case .scalar(let s) = f.node, s.resolved != .null else {
            f.fail("must be a value (got \(f.node.kindName))")
            return false
        }
        let parts = s.text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard (1...2).contains(parts.count) else {
            f.fail("must be a path, or a path and its shadow separated by whitespace (got \(parts.count) parts)")
            return false
        }
        for part in parts {
            if let p = AerospikeConfigCheck.tokenProblem(part) { f.fail(p); return false }
        }
        return true
    }

    /// A context: keys map to scalars, lists of scalars, or nested contexts (`skipping` keys
    /// the caller checks itself).
    func checkContext(_ f: Field, depth: Int = 0, skipping: Set<String> = []) -> Bool {
        guard let m = f.mapping else { return false }
        var ok = true
        for e in m.entries where !skipping.contains(e.key.text) {
            let c = f.child(e.key.text, e.value)
            guard AerospikeConfigCheck.isKey(e.key.text) else {
                c.fail("'\(e.key.text)' is not an aerospike.conf key (lower-case letters, digits, '-', '.', '_')")
                ok = false
                continue
            }
            switch e.value {
            case .scalar: ok = checkScalar(c) && ok
            case .sequence(let s):
                for (i, item) in s.items.enumerated() {
                    let itemField = Field(node: item, path: "\(c.path)[\(i)]", diagnostics: f.diagnostics)
                    if e.key.text == "devices" || e.key.text == "files" {
                        ok = checkShadowPair(itemField) && ok
                    } else {
                        ok = checkScalar(itemField) && ok
                    }
                }
            case .mapping:
                if depth >= 4 { c.fail("contexts nest at most 4 levels deep in aerospike.conf"); ok = false }
                else { ok = checkContext(c, depth: depth + 1) && ok }
            }
        }
        return ok
    }

    private func port(_ f: Field?, default value: Int) -> Int {
        guard let f else { return value }
        guard let p = f.int(atLeast: 1024, atMost: 65535) else { return value }
        return p
    }

    func checkNetwork(_ f: Field) -> Bool {
        guard let nodeN = f.mapping?["network"] else {
            f.fail("network is required (with service, heartbeat and fabric)")
            return false
        }
        let n = f.child("network", nodeN)
        guard let nm = n.mapping else { return false }
        var ok = true
        for section in ["service", "heartbeat", "fabric"] where nm[section] == nil {
            n.fail("\(section) is required")
            ok = false
        }
        func sub(_ name: String) -> (Field, SpecNode.Mapping)? {
            guard let node = nm[name], case .mapping(let m) = node else { return nil }
            return (n.child(name, node), m)
        }
        let tlsNames = Set((nm["tls"].flatMap { node -> [SpecNode]? in
            if case .sequence(let seq) = node { return seq.items }
            return nil
        } ?? []).compactMap { item -> String? in
            guard case .mapping(let m) = item, let name = m["name"], case .scalar(let s) = name else { return nil }
            return s.text
        })
        /// The plain and TLS ports of a section: `port` (by default when there is no
        /// `tls-port`) and `tls-port` with a `tls-name` of a network.tls context.
        func sectionPorts(_ f: Field, _ m: SpecNode.Mapping, default value: Int) -> (plain: Int?, tls: Int?, tlsName: String?) {
            let tls = m["tls-port"].map { port(f.child("tls-port", $0), default: 0) }
            var tlsName: String?
            if let tls, tls != 0 {
                if let node = m["tls-name"], case .scalar(let s) = node {
                    tlsName = s.text
                    if !tlsNames.contains(s.text) {
                        f.child("tls-name", node).fail("'\(s.text)' is not the name of a TLS context in network.tls")
                        ok = false
                    }
                } else {
                    f.fail("tls-port needs a tls-name: the name of a TLS context in network.tls")
                    ok = false
                }
            } else if let node = m["tls-name"] {
                f.child("tls-name", node).fail("needs a tls-port")
                ok = false
            }
            let plain = m["port"].map { port(f.child("port", $0), default: value) } ?? (tls == nil ? value : nil)
            return (plain, tls, tlsName)
        }
        if let (sf, sm) = sub("service") {
            (ports.service, ports.serviceTLS, ports.serviceTLSName) = sectionPorts(sf, sm, default: 3000)
        }
        if let (ff, fm) = sub("fabric") {
            (ports.fabric, ports.fabricTLS, _) = sectionPorts(ff, fm, default: 3001)
        }
        if let (inf, im) = sub("info") {
            ports.info = port(im["port"].map { inf.child("port", $0) }, default: 3003)
        }
        if let (hf, hm) = sub("heartbeat") {
            (ports.heartbeat, ports.heartbeatTLS, _) = sectionPorts(hf, hm, default: 3002)
            if let mode = hm["mode"], case .scalar(let s) = mode, s.text != "mesh" {
                hf.child("mode", mode).fail("must be mesh (multicast does not cross pods on Kubernetes; got \(s.text))")
                ok = false
            }
            for key in ["mesh-seed-address-ports", "mesh-seed-address-port", "tls-mesh-seed-address-ports", "tls-mesh-seed-address-port"] {
                if let node = hm[key] {
                    hf.child(key, node).fail("is managed by cairn: one seed per pod of the cluster is written for you")
                    ok = false
                }
            }
        }
        let all = ports.named.map(\.port)
        if Set(all).count != all.count {
            n.fail("service, fabric, heartbeat and info need different ports (got \(all.map(String.init).joined(separator: ", ")))")
            ok = false
        }
        if let node = nm["tls"] {
            ok = checkNamedContexts(n.child("tls", node), what: "TLS context") { t in
                var ok = checkContext(t)
                // The server reads its certificates from files: they come from a volume.
                for key in ["cert-file", "key-file", "ca-file", "ca-path"] {
                    guard let v = t.mapping?[key], case .scalar(let s) = v else { continue }
                    if !volumes.contains(where: { s.text.hasPrefix($0.path.hasSuffix("/") ? $0.path : $0.path + "/") }) {
                        t.child(key, v).fail("'\(s.text)' is not in a volume of storage.volumes: mount the certificates' Secret "
                                             + "(storage.volumes[].source.secret) at its directory")
                        ok = false
                    }
                }
                return ok
            } && ok
        }
        return ok
    }

    func checkNamespaces(_ f: Field) -> Bool {
        guard let node = f.mapping?["namespaces"] else {
            f.fail("namespaces is required: at least one namespace with a storage-engine")
            return false
        }
        let nf = f.child("namespaces", node)
        guard case .sequence(let seq) = node else { nf.fail("must be a list of namespaces"); return false }
        if seq.items.isEmpty { nf.fail("must list at least one namespace"); return false }
        var ok = true
        var names: Set<String> = []
        for (i, item) in seq.items.enumerated() {
            let itf = Field(node: item, path: "\(nf.path)[\(i)]", diagnostics: f.diagnostics)
            guard let m = itf.mapping else { ok = false; continue }
            ok = checkContext(itf) && ok
            if let nameNode = m["name"] {
                let nameField = itf.child("name", nameNode)
                if case .scalar(let s) = nameNode {
                    if !names.insert(s.text).inserted { nameField.fail("duplicate namespace '\(s.text)'"); ok = false }
                }
            } else { itf.fail("name is required"); ok = false }
            var rf = 2
            if let rfNode = m["replication-factor"] {
                if let v = itf.child("replication-factor", rfNode).int(atLeast: 1, atMost: 256) { rf = v } else { ok = false }
            }
            minReplicationFactor = min(minReplicationFactor ?? rf, rf)
            if let sc = m["strong-consistency"], case .scalar(let s) = sc, s.resolved == .bool(true) {
                // Without a roster the namespace serves no data: the roster Job sets it.
                let scField = itf.child("strong-consistency", sc)
                if !enterprise {
                    scField.fail("strong consistency needs an Enterprise server (aerospike/aerospike-server-enterprise)")
                    ok = false
                } else {
                    scField.note(AerospikeSpec.strongConsistencyNote)
                }
                if let size, rf > size {
                    ok = false
                    itf.child("replication-factor", m["replication-factor"] ?? sc)
                        .fail("must be at most the cluster size \(size) for a strong-consistency namespace (got \(rf))")
                }
            }
            if isV7 {
                for e in m.entries where AerospikeSpec.obsoleteIn7.contains(e.key.text) {
                    itf.child(e.key.text, e.value).fail("is obsolete in Aerospike 7; a 7.x node refuses to start with it "
                                                        + "(set storage-engine memory { data-size } instead)")
                    ok = false
                }
            }
            guard let se = m["storage-engine"] else {
                itf.fail("storage-engine is required (memory, device or pmem)")
                ok = false
                continue
            }
            ok = checkStorageEngine(itf.child("storage-engine", se), namespace: m, namespaceField: itf) && ok
        }
        return ok
    }

    private func checkStorageEngine(_ f: Field, namespace: SpecNode.Mapping, namespaceField: Field) -> Bool {
        guard case .mapping(let m) = f.node else {
            f.fail("must be a mapping with a type, e.g. {type: memory}")
            return false
        }
        guard let typeNode = m["type"], case .scalar(let t) = typeNode else {
            f.fail("type is required: memory, device or pmem")
            return false
        }
        let type = t.text
        guard ["memory", "device", "pmem"].contains(type) else {
            f.child("type", typeNode).fail("must be memory, device or pmem (got \(type))")
            return false
        }
        var ok = true
        if type == "memory" {
            if isV7, m["data-size"] == nil, m["devices"] == nil, m["files"] == nil {
                f.fail("data-size is required for storage-engine memory on Aerospike 7 (e.g. data-size: 1G)")
                ok = false
            }
            if !isV7, namespace["memory-size"] == nil {
                namespaceField.fail("memory-size is required for a memory namespace on Aerospike 6")
                ok = false
            }
        }
        if let d = m["devices"], case .sequence(let devices) = d {
            for (i, dev) in devices.items.enumerated() {
                guard case .scalar(let s) = dev else { continue }
                // The device, and its shadow when given: each a Block volume.
                for path in s.text.split(whereSeparator: \.isWhitespace).map(String.init)
                where !volumes.contains(where: { $0.isBlock && $0.path == path }) {
                    Field(node: dev, path: "\(f.path).devices[\(i)]", diagnostics: f.diagnostics)
                        .fail("'\(path)' is not the path of a Block volume in storage.volumes")
                    ok = false
                }
            }
        }
        if let d = m["files"], case .sequence(let files) = d {
            for (i, file) in files.items.enumerated() {
                guard case .scalar(let s) = file else { continue }
                // The file, and its shadow when given: each on a Filesystem volume.
                for path in s.text.split(whereSeparator: \.isWhitespace).map(String.init)
                where !volumes.contains(where: { !$0.isBlock && path.hasPrefix($0.path.hasSuffix("/") ? $0.path : $0.path + "/") }) {
                    Field(node: file, path: "\(f.path).files[\(i)]", diagnostics: f.diagnostics)
                        .fail("'\(path)' is not under the path of a Filesystem volume in storage.volumes; the data would be lost with the pod")
                    ok = false
                }
            }
        }
        return ok
    }

    /// Cross-datacenter replication (Enterprise), in the upstream operator's shape: `dcs`, each
    /// with a `name`, `node-address-ports` ("host port", or "host port tls-name") and
    /// `namespaces` (each a namespace of the cluster, by `name`), written as `dc NAME { ... }`.
    func checkXDR(_ f: Field) -> Bool {
        guard let node = f.mapping?["xdr"] else { return true }
        let xf = f.child("xdr", node)
        guard let xm = xf.mapping else { return false }
        var ok = true
        if !enterprise {
            xf.fail("cross-datacenter replication needs an Enterprise server (aerospike/aerospike-server-enterprise)")
            ok = false
        }
        ok = checkContext(xf, skipping: ["dcs"]) && ok
        let clusterNamespaces = Set(f.mapping?["namespaces"].flatMap { n -> [String]? in
            guard case .sequence(let seq) = n else { return nil }
            return seq.items.compactMap { item in
                guard case .mapping(let m) = item, let name = m["name"], case .scalar(let s) = name else { return nil }
                return s.text
            }
        } ?? [])
        guard let dcsNode = xm["dcs"] else { xf.fail("dcs is required: at least one destination datacenter"); return false }
        return checkNamedContexts(xf.child("dcs", dcsNode), what: "datacenter") { dc in
            var ok = checkContext(dc, skipping: ["namespaces", "node-address-ports"])
            if let node = dc.mapping?["node-address-ports"] {
                let nf = dc.child("node-address-ports", node)
                if case .sequence(let seq) = node {
                    for (i, item) in seq.items.enumerated() {
                        ok = checkTokens(Field(node: item, path: "\(nf.path)[\(i)]", diagnostics: f.diagnostics), 2...3,
                                         "a host and a port, and a TLS name when the destination uses TLS") && ok
                    }
                } else { nf.fail("must be a list of \"host port\" entries"); ok = false }
            }
            if let node = dc.mapping?["namespaces"] {
                ok = checkNamedContexts(dc.child("namespaces", node), what: "namespace") { ns in
                    var ok = checkContext(ns)
                    if let name = ns.mapping?["name"], case .scalar(let s) = name, !clusterNamespaces.contains(s.text) {
                        ns.child("name", name).fail("'\(s.text)' is not a namespace in aerospikeConfig.namespaces")
                        ok = false
                    }
                    return ok
                } && ok
            }
            return ok
        } && ok
    }

    /// A list of contexts each named by `name` (unique), each checked by `body`.
    func checkNamedContexts(_ f: Field, what: String, _ body: (Field) -> Bool) -> Bool {
        guard case .sequence(let seq) = f.node else { f.fail("must be a list of \(what)s, each with a name"); return false }
        var ok = true
        var names: Set<String> = []
        for (i, item) in seq.items.enumerated() {
            let itf = Field(node: item, path: "\(f.path)[\(i)]", diagnostics: f.diagnostics)
            guard let m = itf.mapping else { itf.fail("must be a mapping"); ok = false; continue }
            guard let name = m["name"], case .scalar(let s) = name else { itf.fail("name is required"); ok = false; continue }
            if !names.insert(s.text).inserted { itf.child("name", name).fail("duplicate \(what) '\(s.text)'"); ok = false }
            ok = body(itf) && ok
        }
        return ok
    }

    /// A value of `count` whitespace-separated tokens (aerospike.conf has no quoting).
    func checkTokens(_ f: Field, _ count: ClosedRange<Int>, _ what: String) -> Bool {
        guard case .scalar(let s) = f.node, s.resolved != .null else {
            f.fail("must be a value (got \(f.node.kindName))")
            return false
        }
        let parts = s.text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard count.contains(parts.count) else {
            f.fail("must be \(what), separated by whitespace (got \(parts.count) parts)")
            return false
        }
        for part in parts {
            if let p = AerospikeConfigCheck.tokenProblem(part) { f.fail(p); return false }
        }
        return true
    }

    func checkLogging(_ f: Field) -> Bool {
        guard let node = f.mapping?["logging"] else { return true }
        let lf = f.child("logging", node)
        guard case .sequence(let seq) = node else { lf.fail("must be a list of sinks, e.g. [{name: console, any: info}]"); return false }
        var ok = true
        for (i, item) in seq.items.enumerated() {
            let itf = Field(node: item, path: "\(lf.path)[\(i)]", diagnostics: f.diagnostics)
            guard let m = itf.mapping else { ok = false; continue }
            ok = checkContext(itf) && ok
            guard let name = m["name"], case .scalar(let s) = name else { itf.fail("name is required (console, or a log file path)"); ok = false; continue }
            if s.text != "console", s.text != "syslog", !s.text.hasPrefix("/") {
                itf.child("name", name).fail("must be console, syslog or an absolute file path (got \(s.text))")
                ok = false
            }
        }
        return ok
    }
}

extension JSONObject {
    /// As the upstream operator's webhook: `tlsClientName` joins `network.service`'s
    /// `tls-authenticate-client` when that is a list of names; `any` and `false` (a single
    /// value) take no names.
    mutating func addClientName(_ name: String) {
        guard var network = self["network"]?.objectValue, var service = network["service"]?.objectValue,
              case .array(var names)? = service["tls-authenticate-client"] else { return }
        guard !names.contains(.string(name)) else { return }
        names.append(.string(name))
        service["tls-authenticate-client"] = .array(names)
        network["service"] = .object(service)
        self["network"] = .object(network)
    }
}
