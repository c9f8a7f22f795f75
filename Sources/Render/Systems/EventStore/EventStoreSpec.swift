public import ClusterSpecs
import DNSProxy
import Foundation

/// An EventStoreDB / KurrentDB cluster in the KurrentDB operator's shape
/// (`kubernetes.kurrent.io/v1`, kind `KurrentDB`).
public struct EventStoreSpec: SystemSpec {
    public static let apiVersion = "kubernetes.kurrent.io/v1"
    public static let kind = "KurrentDB"

    public struct Storage: Sendable, Hashable {
        public var size: Quantity
        public var storageClassName: String?
        public var accessModes: [String]
        public var volumeMode: String
    }

    public struct LoadBalancer: Sendable, Hashable {
        public var enabled: Bool
        public var allowedIps: [String]
        /// `loadBalancerClass`: the Services' `spec.loadBalancerClass`.
        public var className: String?
    }

    /// `environmentSecret`: a Secret whose keys every node gets as environment variables.
    public var environmentSecret: String?
    /// `telemetryOptOut`, for a server that has telemetry (23.10 and later): the environment-only
    /// TelemetryOptout.
    public var telemetryOptOut = false
    /// `rollingRestartKey`, `configReloadKey`, `fullRestartKey`: values with no meaning but
    /// their change, put on the pod template (annotation name to value), so that a change
    /// restarts the nodes one at a time.
    public var restartKeys: [String: String] = [:]

    public var replicas: Int
    public var image: String
    /// The configuration dialect the image's server version reads.
    public var dialect: EventStoreDialect
    public var storage: Storage
    public var resources: ResourceRequirements
    public var loadBalancer: LoadBalancer
    /// The user's configuration keys, merged over the defaults when rendered.
    public var configuration: [String: JSONValue]
    public var constraints: PodConstraints
    /// `network.domain` and `network.fqdnTemplate`: the host names nodes advertise, as the
    /// upstream operator derives them.
    public var advertised = Advertised()
    /// `internodeTrafficStrategy: SplitDNS`: nodes dial each other's FQDNs (advertised as with
    /// FQDN), which a resolver in each pod (`cairn dns-proxy`) answers with the pods' addresses.
    public struct SplitDNS: Sendable, Hashable {
        /// Where `internodeTrafficStrategy` is, for the errors of rendering it.
        public var location: Location
        public var path: String
        /// `splitDNSExtraRules` (not regex): a host answered with an address, or looked up as
        /// another host.
        public struct Rule: Sendable, Hashable {
            public var host: String
            public var result: String
        }
        public var extraRules: [Rule] = []
    }
    public var splitDNS: SplitDNS?
    /// The pods' ServiceAccount (the namespace's `default` when nil), e.g. one beside the
    /// cluster in its file, annotated for a cloud role.
    public var serviceAccountName: String?

    /// A key of a Secret in the cluster's namespace.
    public struct SecretKey: Sendable, Hashable {
        public var name: String
        public var key: String
    }
    /// `licenseSecret`: the license key, given to every node as `Licensing:LicenseKey`.
    public var licenseSecret: SecretKey?

    /// `security`: TLS with the node certificate of a Secret, checked against a CA of another
    /// Secret (or the image's public CAs).
    public struct Security: Sendable, Hashable {
        public var certificateSecret: String
        public var certificateKey: String
        public var privateKeyKey: String
        public var caSecret: String?
        /// One key of the CA Secret; every key of it when nil (several CAs, for a rotation).
        public var caKey: String?
        public var reservedNodeCommonName: String?
    }
    public var security: Security?

    /// `readOnlyReplicas.replicas`: read-only replica nodes beside the cluster, in a
    /// StatefulSet `<name>-replica`.
    public var readOnlyReplicas = 0
    /// `quorumNodes`: with `replicas: 0`, the nodes (host:port) of a cluster elsewhere that
    /// the read-only replicas join (standalone read-only replicas).
    public var quorumNodes: [String] = []

    /// What `readOnlyReplicas` and `archiver` may give for their own nodes; each defaults to
    /// the cluster's, as upstream.
    public struct NodeSettings: Sendable, Hashable {
        public var resources: ResourceRequirements?
        public var storage: Storage?
        public var constraints: PodConstraints?
    }
    public var replicaSettings = NodeSettings()
    public var archiverSettings = NodeSettings()

    /// `users`: the initial passwords of admin and ops (environment-only options, taken at the
    /// database's creation) and custom users, created by a Job once the cluster answers.
    public struct Users: Sendable, Hashable {
        public var adminPassword: SecretKey
        public var opsPassword: SecretKey
        public struct Custom: Sendable, Hashable {
            public var loginName: String
            public var fullName: String
            public var password: SecretKey
            public var groups: [String]
        }
        public var custom: [Custom]
    }
    public var users: Users?
    /// `archiver.enabled`: one archiver node (a read-only replica that uploads chunks to the
    /// archive), in a StatefulSet `<name>-archiver`.
    public var archiver = false

    /// The configuration keys `security` sets: written by the user as well, they are refused.
    public static let securityKeys: Set<String> = [
        "Insecure", "CertificateFile", "CertificatePrivateKeyFile", "TrustedRootCertificatesPath", "CertificateReservedNodeCommonName",
        "CertificatePassword", "CertificatePrivateKeyPassword", "CertificateStoreLocation", "CertificateStoreName",
        "CertificateSubjectName", "CertificateThumbprint", "TrustedRootCertificateStoreLocation", "TrustedRootCertificateStoreName",
        "TrustedRootCertificateSubjectName", "TrustedRootCertificateThumbprint",
    ]

    public struct Advertised: Sendable, Hashable {
        public var domain: String?
        /// With `{podName}`, `{name}`, `{namespace}`, `{domain}`, `{nodeTypeSuffix}`.
        public var fqdnTemplate = "{podName}.{name}{nodeTypeSuffix}.{domain}"
        /// FQDN (the default): clients are given each node's FQDN; ServiceName: its cluster DNS name.
        public var clientStrategy = "FQDN"
        /// ServiceName (the default): nodes reach each other by cluster DNS names; FQDN: by FQDNs.
        public var internodeStrategy = "ServiceName"

        /// A node's FQDN; `podName` may be `$(POD_NAME)` (expanded by Kubernetes in env values).
        /// `nodeTypeSuffix` is empty for the cluster's nodes, `-replica` or `-archiver` for the others.
        public func fqdn(podName: String, cluster: ClusterMetadata, nodeTypeSuffix: String = "") -> String? {
            guard let domain else { return nil }
            return fqdnTemplate.replacingOccurrences(of: "{podName}", with: podName).replacingOccurrences(of: "{name}", with: cluster.name)
                .replacingOccurrences(of: "{namespace}", with: cluster.namespace).replacingOccurrences(of: "{domain}", with: domain)
                .replacingOccurrences(of: "{nodeTypeSuffix}", with: nodeTypeSuffix)
        }
    }

    /// Keys cairn computes from the spec; a user setting them is an error.
    public static let managedKeys: Set<String> = [
        "ClusterSize", "GossipSeed", "DiscoverViaDns", "Db", "Index", "Log",
        "NodeHostAdvertiseAs", "ReplicationHostAdvertiseAs", "ExtHostAdvertiseAs", "IntHostAdvertiseAs",
        "ClusterDns", "AdvertiseHostToClientAs", "ReadOnlyReplica", "Archiver",
    ]

    /// Scheduling fields some upstream documentation puts beside `constraints` (its v1.1.0 page):
    /// not fields of the upstream CRD either, which has them under `constraints`.
    static let misplaced = Dictionary(uniqueKeysWithValues: ["nodeSelector", "affinity", "tolerations", "topologySpreadConstraints"].map {
        ($0, "not a field of the upstream CRD either (its API server drops it unread): write it as spec.constraints.\($0)")
    })

    static func decode(_ field: Field, metadata: ClusterMetadata?) -> EventStoreSpec? {
        field.object(unsupported: misplaced) { s -> EventStoreSpec? in
            var replicas: Int?
            if let f = s.required("replicas"), let r = f.int {
                if [1, 3, 5].contains(r) { replicas = r } else if r != 0 {
                    f.fail("must be 1, 3 or 5, or 0 for standalone read-only replicas (got \(r)); an EventStoreDB cluster needs an odd number of nodes for quorum")
                }
            }
            var image: String?
            var dialect: EventStoreDialect?
            var version: ImageVersion?
            if let f = s.required("image"), let i = f.nonEmptyString {
                image = i
                if let v = ImageVersion(image: i) {
                    version = v
                    dialect = EventStoreDialect(version: v)
                    if dialect == nil {
                        f.fail("EventStoreDB \(v) is not supported; cairn renders configuration for 20.10 and later")
                    }
                } else {
                    f.fail("cannot tell the server version from '\(i)'; "
                           + "use a versioned tag such as eventstore/eventstore:23.10.2-bookworm-slim (the configuration file's keys depend on the version)")
                }
            }
            let storage = s.required("storage").flatMap(decodeStorage)
            let resources = s["resources"].flatMap { $0.resources } ?? ResourceRequirements()
            var loadBalancer = LoadBalancer(enabled: false, allowedIps: [], className: nil)
            var advertised = Advertised()
            var splitDNS: SplitDNS?
            if let n = s["network"] {
                n.object { net -> Bool? in
                    if let f = net["domain"], let d = f.nonEmptyString {
                        if Names.isDNS1123Subdomain(d) { advertised.domain = d } else { f.fail("'\(d)' is not a DNS domain") }
                    }
                    if let f = net["fqdnTemplate"], let t = f.nonEmptyString {
                        let variables = ["{podName}", "{name}", "{namespace}", "{domain}", "{nodeTypeSuffix}"]
                        var probe = t
                        for v in variables { probe = probe.replacingOccurrences(of: v, with: "x") }
                        if !t.contains("{podName}") {
                            f.fail("must contain {podName}: each node needs a name of its own")
                        } else if !Names.isDNS1123Subdomain(probe) {
                            f.fail("'\(t)' is not a host name template (variables: \(variables.joined(separator: ", ")))")
                        } else {
                            advertised.fqdnTemplate = t
                        }
                        if advertised.domain == nil, net["domain"] == nil { f.fail("needs network.domain") }
                    }
                    for (key, allowed) in [("clientTrafficStrategy", ["FQDN", "ServiceName"]), ("internodeTrafficStrategy", ["ServiceName", "FQDN"])] {
                        guard let f = net[key], let v = f.string else { continue }
                        if v == "SplitDNS", key == "internodeTrafficStrategy" {
                            // Nodes advertise and dial FQDNs, as upstream; a resolver in each
                            // pod answers them with the pods' addresses.
                            advertised.internodeStrategy = "FQDN"
                            splitDNS = SplitDNS(location: f.location, path: f.path)
                            f.note(splitDNSNote)
                        } else if !allowed.contains(v) {
                            f.fail("must be \(allowed.joined(separator: " or ")) (got \(v))")
                        } else if key == "clientTrafficStrategy" { advertised.clientStrategy = v } else { advertised.internodeStrategy = v }
                    }
                    if splitDNS != nil, advertised.fqdnTemplate.ranges(of: "{podName}").count > 1 {
                        net["fqdnTemplate"]?.fail("SplitDNS needs {podName} once: its resolver maps each node's FQDN to its pod")
                    }
                    if let f = net["splitDNSExtraRules"], let rules = f.list({ rf -> SplitDNS.Rule? in
                        rf.object { r -> SplitDNS.Rule? in
                            let host = r.required("host")?.nonEmptyString
                            let result = r.required("result")?.nonEmptyString
                            if let re = r["regex"], re.bool == true {
                                re.fail("not supported by cairn yet: regular-expression rules (Go's regexp syntax and expansion) are not "
                                        + "rendered; write one rule per host")
                                return nil
                            }
                            guard let host, let result else { return nil }
                            guard !host.contains("{"), !result.contains("{") else {
                                r.field.fail("'\(host)' -> '\(result)': a host name and a host name or IP address")
                                return nil
                            }
                            do {
                                _ = try DNSRule(from: host, to: result)
                            } catch {
                                r.field.fail("\(error)")
                                return nil
                            }
                            return SplitDNS.Rule(host: host, result: result)
                        }
                    }) {
                        if splitDNS == nil {
                            if !rules.isEmpty { f.note("ignored: the rules act with internodeTrafficStrategy SplitDNS only, as upstream") }
                        } else {
                            splitDNS?.extraRules = rules
                        }
                    }
                    if advertised.domain == nil, advertised.clientStrategy == "FQDN" || advertised.internodeStrategy == "FQDN",
                       net["clientTrafficStrategy"] != nil || net["internodeTrafficStrategy"] != nil {
                        net.field.fail("an FQDN traffic strategy needs network.domain")
                    }
                    // The ports the nodes listen on: upstream's defaults only, for now.
                    for (key, port) in [("nodePort", EventStoreRenderer.httpPort), ("replicationPort", EventStoreRenderer.replicationPort),
                                        ("nodeTcpPort", EventStoreRenderer.externalTcpPort)] {
                        if let f = net[key], let p = f.int, p != port {
                            f.fail("not supported by cairn yet: the nodes listen on the default ports (\(key) \(port)); other ports are not rendered yet")
                        }
                    }
                    guard let lb = net["loadBalancer"] else { return true }
                    return lb.object { l -> Bool? in
                        if let e = l["enabled"], let b = e.bool { loadBalancer.enabled = b }
                        if let cf = l["loadBalancerClass"], let c = cf.nonEmptyString {
                            loadBalancer.className = c
                            cf.note("the load balancers' spec.loadBalancerClass (Kubernetes 1.24 and later); it cannot be changed on a "
                                    + "Service: to change it, delete the load balancer Services and let cairn create them again, as upstream")
                        }
                        if let a = l["allowedIps"], let ips = a.list({ ip -> String? in
                            guard let v = ip.string else { return nil }
                            if !CIDR.isValid(v) { ip.fail("'\(v)' is not an IP range in CIDR notation (e.g. 10.0.0.0/8)"); return nil }
                            return v
                        }) { loadBalancer.allowedIps = ips }
                        return true
                    }
                }
            }
            var configuration: [String: JSONValue] = [:]
            if let c = s["configuration"], let entries = c.entries({ key, v -> JSONValue? in
                validateConfigurationKey(key, value: v, dialect: dialect, version: version)
            }) {
                checkCaseCollisions(c)
                for (k, v) in entries { configuration[k] = v }
            }
            let constraints = s["constraints"].flatMap { decodeConstraints($0, cluster: metadata?.name) } ?? PodConstraints()
            var environmentSecret: String?
            if let f = s["environmentSecret"], let n = f.secretName {
                environmentSecret = n
                f.note("every node gets the Secret's keys as environment variables; cairn never reads Secret values, so a change to "
                       + "them restarts no node (upstream restarts them): change rollingRestartKey to restart the nodes")
            }
            var telemetryOptOut = false
            if let f = s["telemetryOptOut"], let b = f.bool {
                // Only a server with telemetry has the option to turn it off.
                telemetryOptOut = b && (version.map { $0 >= telemetrySince } ?? false)
                if b, let version, version < telemetrySince {
                    f.note("accepted, not used by cairn: this image's server (\(version)) has no telemetry (it came with 23.10)")
                }
            }
            var restartKeys: [String: String] = [:]
            for (key, annotation) in [("rollingRestartKey", "rolling-restart-key"), ("configReloadKey", "config-reload-key"),
                                      ("fullRestartKey", "full-restart-key")] {
                guard let f = s[key], let v = f.scalarText else { continue }
                guard v.count <= 253 else { f.fail("at most 253 characters"); continue }
                restartKeys["cairn.dev/\(annotation)"] = v
                if key == "configReloadKey" {
                    f.note("cairn has no configuration reload: a change restarts the nodes one at a time (upstream reloads them in place)")
                } else if key == "fullRestartKey" {
                    f.note("a change restarts the nodes one at a time, as rollingRestartKey does: cairn never stops every node at once "
                           + "(upstream restarts them all together)")
                }
            }
            var serviceAccountName: String?
            if let f = s["serviceAccountName"], let n = f.nonEmptyString {
                if Names.isDNS1123Subdomain(n) { serviceAccountName = n } else { f.fail("'\(n)' is not a ServiceAccount name") }
            }
            func secretKey(_ f: Field) -> SecretKey? {
                f.object { o -> SecretKey? in
                    let name = o.required("name")?.secretName
                    let key = o.required("key").flatMap { $0.nonEmptyString }
                    guard let name, let key else { return nil }
                    return SecretKey(name: name, key: key)
                }
            }
            var licenseSecret: SecretKey?
            if let f = s["licenseSecret"] {
                licenseSecret = secretKey(f)
                if let version, version < ImageVersion([24, 10]) {
                    f.fail("licensed features came with EventStoreDB 24.10; this image's server (\(version)) reads no license key")
                }
            }
            var security: Security?
            if let f = s["security"] {
                security = f.object { o -> Security? in
                    let cert = o.required("certificateSecret").flatMap { cf in
                        cf.object { c -> (String, String, String)? in
                            let name = c.required("name")?.secretName
                            let key = c.required("keyName").flatMap { $0.secretKeyName }
                            let privateKey = c.required("privateKeyName").flatMap { $0.secretKeyName }
                            guard let name, let key, let privateKey else { return nil }
                            return (name, key, privateKey)
                        }
                    }
                    var caSecret: String?
                    var caKey: String?
                    if let af = o["certificateAuthoritySecret"] {
                        _ = af.object { a -> Bool? in
                            caSecret = a.required("name")?.secretName
                            caKey = a["keyName"].flatMap { $0.secretKeyName }
                            // Upstream ignores it: a CA's private key is never mounted.
                            a.ignore("privateKeyName")
                            return true
                        }
                    }
                    let reserved = o["certificateReservedNodeCommonName"].flatMap { $0.nonEmptyString }
                    if let sf = o["certificateSubjectName"] {
                        sf.note("accepted, not used by cairn: deprecated upstream, where it is ignored too")
                    }
                    guard let (name, key, privateKey) = cert else { return nil }
                    return Security(certificateSecret: name, certificateKey: key, privateKeyKey: privateKey, caSecret: caSecret,
                                    caKey: caKey, reservedNodeCommonName: reserved)
                }
                if let c = s["configuration"], let m = c.mapping {
                    for e in m.entries where securityKeys.contains(where: { $0.lowercased() == e.key.text.lowercased() }) {
                        c.child(e.key.text, e.value).fail("is set by cairn from spec.security; remove it")
                    }
                }
            }
            /// The fields `readOnlyReplicas` and `archiver` share with the cluster.
            func nodeSettings(_ o: ObjectReader, suffix: String) -> NodeSettings {
                var out = NodeSettings()
                out.resources = o["resources"].flatMap { $0.resources }
                out.storage = o["storage"].flatMap(decodeStorage)
                out.constraints = o["constraints"].flatMap { decodeConstraints($0, cluster: metadata.map { $0.name + suffix }) }
                return out
            }
            var quorumNodes: [String] = []
            // Listed (with its own errors said at it), even where an item is refused.
            var quorumListed = false
            if let f = s["quorumNodes"], let nodes = f.list({ nf -> String? in
                guard let n = nf.nonEmptyString else { return nil }
                guard isHostPort(n) else { nf.fail("'\(n)' is not host:port (e.g. mydb-0.example.com:2113)"); return nil }
                return n
            }) {
                quorumNodes = nodes
                let count = f.sequenceCount
                quorumListed = count > 0
                if ![1, 3, 5].contains(count) {
                    f.fail("lists \(count) nodes: a cluster has 1, 3 or 5, and the read-only replicas take their number as ClusterSize")
                }
                if let replicas, replicas > 0 {
                    f.fail("is for replicas: 0 (read-only replicas that join a cluster elsewhere); this spec runs its own \(replicas) nodes")
                }
            }
            var readOnlyReplicas = 0
            var replicaSettings = NodeSettings()
            if let f = s["readOnlyReplicas"] {
                _ = f.object { o -> Bool? in
                    if let rf = o["replicas"], let n = rf.int(atLeast: 0, atMost: 16) { readOnlyReplicas = n }
                    replicaSettings = nodeSettings(o, suffix: "-replica")
                    return true
                }
                if readOnlyReplicas > 0, let version, version < ImageVersion([21, 2]) {
                    f.fail("read-only replicas came with EventStoreDB 21.2; this image's server (\(version)) has none")
                }
                if readOnlyReplicas > 0, let replicas, replicas > 0, replicas < 3 {
                    f.fail("needs a cluster (replicas 3 or 5): read-only replicas join a cluster's gossip")
                }
            }
            // Standalone read-only replicas: no nodes of its own, the replicas join quorumNodes.
            if let rf = s["replicas"], replicas == nil, case .scalar(let zero) = rf.node, zero.text == "0" {
                if !quorumListed || readOnlyReplicas == 0 {
                    rf.fail("0 is for standalone read-only replicas: give quorumNodes (the cluster's nodes, host:port) "
                            + "and readOnlyReplicas.replicas")
                } else {
                    replicas = 0
                }
            }
            var archiver = false
            var archiverSettings = NodeSettings()
            if let f = s["archiver"] {
                _ = f.object { o -> Bool? in
                    if let ef = o["enabled"], let b = ef.bool { archiver = b }
                    archiverSettings = nodeSettings(o, suffix: "-archiver")
                    return true
                }
                if archiver {
                    // As KurrentDB's archiving documentation requires: every node archives the
                    // same way and holds the license; the archiver is one more node of a cluster.
                    let archive = configuration.first { $0.key.lowercased() == "archive" }?.value
                    if archive?["Enabled"] != .bool(true) {
                        f.fail("needs configuration.Archive with Enabled: true (and its storage): every node reads the archive's settings")
                    }
                    if licenseSecret == nil { f.fail("needs licenseSecret: archiving is a licensed feature") }
                    if let replicas, replicas < 3 { f.fail("needs a cluster (replicas 3 or 5): the archiver is one more node of a cluster") }
                }
            }
            var users: Users?
            if let f = s["users"] {
                users = f.object { o -> Users? in
                    let admin = o.required("adminPasswordSecret").flatMap(secretKey)
                    let ops = o.required("opsPasswordSecret").flatMap(secretKey)
                    var seen: Set<String> = []
                    let custom = o["customUsers"].flatMap { cf in
                        cf.list { uf -> Users.Custom? in
                            uf.object { u -> Users.Custom? in
                                let login = u.required("loginName").flatMap { lf -> String? in
                                    guard let n = lf.nonEmptyString else { return nil }
                                    guard isUserText(n, maximum: 128) else {
                                        lf.fail("'\(n)' cannot be a login name cairn sends (at most 128 characters, no control characters)")
                                        return nil
                                    }
                                    guard !["admin", "ops"].contains(n) else {
                                        lf.fail("\(n) is a built-in user: its password is \(n)PasswordSecret's")
                                        return nil
                                    }
                                    guard seen.insert(n).inserted else { lf.fail("user \(n) is listed twice"); return nil }
                                    return n
                                }
                                let full = u.required("fullName").flatMap { ff -> String? in
                                    guard let n = ff.nonEmptyString else { return nil }
                                    guard isUserText(n, maximum: 256) else { ff.fail("at most 256 characters, no control characters"); return nil }
                                    return n
                                }
                                let password = u.required("passwordSecret").flatMap(secretKey)
                                let groups = u["groups"].flatMap { gf in
                                    gf.list { g -> String? in
                                        guard let n = g.nonEmptyString else { return nil }
                                        guard isUserText(n, maximum: 128) else { g.fail("at most 128 characters, no control characters"); return nil }
                                        return n
                                    }
                                } ?? []
                                guard let login, let full, let password else { return nil }
                                return Users.Custom(loginName: login, fullName: full, password: password, groups: groups)
                            }
                        }
                    } ?? []
                    guard let admin, let ops else { return nil }
                    return Users(adminPassword: admin, opsPassword: ops, custom: custom)
                }
                if security == nil {
                    f.fail("needs security: without TLS the server runs with authentication off (Insecure) and refuses to start "
                           + "with the initial passwords")
                }
                f.note(usersNote)
                if users?.custom.isEmpty == false, replicas == 0 {
                    f.note("customUsers are not created by standalone read-only replicas: they take the users of the cluster they join; "
                           + "create them there")
                }
            }
            if let metadata, case let name = metadata.name {
                // The StatefulSet's pods carry a controller-revision-hash label of <name>-<10 chars>.
                s.field.metadataName(metadata).checkDerivedName(name + "-0123456789", limit: 63, what: "pod revision label")
                if readOnlyReplicas > 0 {
                    s.field.metadataName(metadata).checkDerivedName(name + "-replica-0123456789", limit: 63, what: "read-only replicas' pod revision label")
                }
                if archiver {
                    s.field.metadataName(metadata).checkDerivedName(name + "-archiver-0123456789", limit: 63, what: "archiver's pod revision label")
                }
            }
            guard let replicas, let image, let dialect, let storage else { return nil }
            var spec = EventStoreSpec(replicas: replicas, image: image, dialect: dialect, storage: storage,
                                      resources: resources, loadBalancer: loadBalancer,
                                      configuration: configuration, constraints: constraints)
            spec.advertised = advertised
            spec.splitDNS = splitDNS
            spec.serviceAccountName = serviceAccountName
            spec.licenseSecret = licenseSecret
            spec.security = security
            spec.readOnlyReplicas = readOnlyReplicas
            spec.archiver = archiver
            spec.quorumNodes = quorumNodes
            spec.environmentSecret = environmentSecret
            spec.telemetryOptOut = telemetryOptOut
            spec.restartKeys = restartKeys
            spec.replicaSettings = replicaSettings
            spec.archiverSettings = archiverSettings
            spec.users = users
            return spec
        }
    }

    /// The first server version with telemetry (and its opt-out).
    static let telemetrySince = ImageVersion([23, 10])

    static let splitDNSNote = "nodes advertise and dial each other's FQDNs, as upstream, and each pod gets cairn's resolver beside "
        + "the node, as upstream's sidecar (a container splitdns running `cairn dns-proxy` from cairn's own image): the pod's DNS "
        + "goes to it (dnsPolicy None, with the cluster's search path), it answers the nodes' FQDNs with their pods' addresses "
        + "and passes every other name to the cluster DNS; the pods set the sysctl net.ipv4.ip_unprivileged_port_start=0 so that "
        + "it serves port 53 without root (a safe sysctl from Kubernetes 1.22)"

    static let usersNote = "the admin and ops passwords are the server's initial ones (DefaultAdminPassword, DefaultOpsPassword, "
        + "from their Secrets): they act when the database is created, and changing them later changes nothing, as upstream; "
        + "custom users are created by a Job once the cluster answers, and an existing user is left as it is (cairn never "
        + "updates or deletes one, as upstream)"

    /// Text cairn sends in a user's JSON: no control characters (they cannot be typed at a login).
    static func isUserText(_ s: String, maximum: Int) -> Bool {
        s.count <= maximum && !s.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// `host:port`, as quorumNodes and gossip seeds are written.
    static func isHostPort(_ s: String) -> Bool {
        guard let colon = s.lastIndex(of: ":") else { return false }
        let digits = s[s.index(after: colon)...]
        guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(digits),
              (1...65535).contains(port) else { return false }
        return Names.isDNS1123Subdomain(String(s[..<colon]).lowercased())
    }

    /// What an option name may be: PascalCase ASCII letters and digits, at most 128 of them
    /// (YAML readers take no implicit key over 1,024 characters; EventStoreDB's longest is ~40).
    package static func isOptionName(_ key: String) -> Bool {
        key.count <= 128 && key.first.map { $0.isUppercase } == true && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
    }

    /// The first server version that reads sections (nested mappings) from its configuration
    /// file: 24.10 moved to a YAML reader that keeps them (as `Section:Key`); earlier versions
    /// drop them without a word.
    static let sectionsSince = ImageVersion([24, 10])

    /// The server reads option names ignoring case: two keys that differ only in case are one
    /// option set twice, which the server refuses (or, before 24.10, merges).
    private static func checkCaseCollisions(_ field: Field) {
        guard let m = field.mapping else { return }
        var seen: [String: String] = [:]
        for entry in m.entries {
            let folded = entry.key.text.lowercased()
            if let first = seen[folded] {
                field.child(entry.key.text, entry.value)
                    .fail("sets the same option as \(first): the server reads option names ignoring case")
            } else {
                seen[folded] = entry.key.text
            }
        }
    }

    private static func validateConfigurationKey(_ key: String, value: Field, dialect: EventStoreDialect?, version: ImageVersion?) -> JSONValue? {
        guard isOptionName(key) else {
            value.fail("'\(key)' is not an EventStoreDB option name (PascalCase letters and digits, at most 128, e.g. MaxAppendSize)")
            return nil
        }
        if let managed = managedKeys.first(where: { $0.lowercased() == key.lowercased() }) {
            value.fail("\(key == managed ? key : "\(key) (the server reads it as \(managed))") is managed by cairn (computed from replicas, storage and the pod names); remove it")
            return nil
        }
        if let dialect, let problem = dialect.problem(with: key) {
            value.fail(problem)
            return nil
        }
        noteSecret(key, value)
        if case .mapping = value.node {
            guard let version else { return nil }  // the image's error says why
            guard version >= sectionsSince else {
                value.fail("is a section (nested options), which EventStoreDB reads from 24.10 on; this image's server (\(version)) "
                           + "ignores it without a word")
                return nil
            }
            if key.lowercased() == "archive" { return validateArchive(value, version: version) }
            return validateSection(value)
        }
        return validateOptionValue(value)
    }

    /// A scalar, or a list of scalars.
    private static func validateOptionValue(_ value: Field) -> JSONValue? {
        switch value.node {
        case .mapping:
            value.fail("must be a scalar or a list of scalars")
            return nil
        case .sequence(let s):
            for item in s.items {
                if case .scalar = item { continue }
                value.fail("must be a scalar or a list of scalars")
                return nil
            }
        case .scalar(let sc):
            if sc.resolved == .null { value.fail("must have a value"); return nil }
        }
        return value.json
    }

    /// A section of a plugin or feature (24.10 and later): option names, each a value or a
    /// section of its own. The server does not check the keys of sections (a typo there is
    /// ignored): cairn checks their form only, and the archive's keys in full.
    private static func validateSection(_ field: Field) -> JSONValue? {
        checkCaseCollisions(field)
        let entries = field.entries { key, value -> JSONValue? in
            guard isOptionName(key) else {
                value.fail("'\(key)' is not an option name (PascalCase letters and digits, at most 128)")
                return nil
            }
            if case .mapping = value.node { return validateSection(value) }
            noteSecret(key, value)
            return validateOptionValue(value)
        }
        return entries.map { .object(JSONObject($0)) }
    }

    /// An option that looks like a credential goes into the cluster's ConfigMap as written, like
    /// every option: said, so that nobody takes the file for a safe place.
    private static func noteSecret(_ key: String, _ value: Field) {
        let lower = key.lowercased()
        guard ["password", "secret", "licensekey", "connectionstring", "token"].contains(where: lower.contains) else { return }
        value.note("looks like a credential: it is written into the cluster's ConfigMap as it is (and it is in git already); "
                   + "anyone who can read ConfigMaps in the namespace can read it")
    }

    /// `Archive` (KurrentDB 25.0 and later): the server ignores a misspelt key in it, and starts
    /// without archiving, so every key is checked here.
    private static func validateArchive(_ field: Field, version: ImageVersion) -> JSONValue? {
        guard version >= ImageVersion([25, 0]) else {
            field.fail("archiving came with KurrentDB 25.0; this image's server (\(version)) has no Archive section")
            return nil
        }
        var storageTypes = ["FileSystemDevelopmentOnly", "S3"]
        var stores: [String: [String]] = ["FileSystem": ["Path"], "S3": ["Bucket", "Region"]]
        if version >= ImageVersion([26, 0]) {
            storageTypes += ["Azure", "GCP"]
            stores["Azure"] = ["Container", "ConnectionStringOrServiceUrl", "UserAssignedClientId", "Authentication"]
            stores["GCP"] = ["Bucket"]
        }
        return field.object { a -> JSONValue? in
            var out: [(key: String, value: JSONValue)] = []
            var enabled = false
            if let f = a["Enabled"], let b = f.bool { enabled = b; out.append((key: "Enabled", value: .bool(b))) }
            if let f = a["StorageType"], let t = f.nonEmptyString {
                if storageTypes.contains(t) {
                    out.append((key: "StorageType", value: .string(t)))
                } else {
                    f.fail("'\(t)' is not a storage type of this server (\(version)): \(storageTypes.joined(separator: ", "))")
                }
            } else if enabled, !a.has("StorageType") {
                _ = a.required("StorageType")
            }
            let retain = enabled ? a.required("RetainAtLeast") : a["RetainAtLeast"]
            if let r = retain, let value = r.object({ r -> JSONValue? in
                var o: [(key: String, value: JSONValue)] = []
                for key in ["Days", "LogicalBytes"] {
                    if let f = r.required(key), let n = f.int(atLeast: 0, atMost: Int.max) { o.append((key: key, value: .int(n))) }
                }
                return .object(JSONObject(o))
            }) { out.append((key: "RetainAtLeast", value: value)) }
            for (store, keys) in stores.sorted(by: { $0.key < $1.key }) {
                guard let f = a[store], let value = f.object({ st -> JSONValue? in
                    var o: [(key: String, value: JSONValue)] = []
                    for key in keys {
                        if let v = st[key], let text = v.scalarText {
                            noteSecret(key, v)
                            o.append((key: key, value: .string(text)))
                        }
                    }
                    return .object(JSONObject(o))
                }) else { continue }
                out.append((key: store, value: value))
            }
            return .object(JSONObject(out))
        }
    }

    private static func decodeStorage(_ field: Field) -> Storage? {
        field.object(unsupported: [
            "selector": "volumes are provisioned from the storage class",
            "dataSource": "restoring from a snapshot is not rendered",
            "dataSourceRef": "restoring from a snapshot is not rendered",
            "volumeName": "volumes are provisioned from the storage class",
        ]) { st -> Storage? in
            var size: Quantity?
            if let r = st.required("resources") {
                r.object(unsupported: ["limits": "a volume claim is sized by its request"]) { res -> Bool? in
                    res.required("requests")?.object { req -> Bool? in
                        if let f = req.required("storage"), let q = f.quantity {
                            if q.isNegative || q.isZero { f.fail("must be more than 0 (got \(q))") } else { size = q }
                        }
                        return true
                    }
                }
            }
            var storageClass: String?
            if let f = st["storageClassName"], let c = f.string {
                if Names.isDNS1123Subdomain(c) { storageClass = c } else { f.fail("'\(c)' is not a valid storage class name") }
            }
            var accessModes = ["ReadWriteOnce"]
            if let f = st["accessModes"], let modes = f.list({ m -> String? in
                guard let v = m.string else { return nil }
                guard ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"].contains(v) else {
                    m.fail("must be ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod (got \(v))")
                    return nil
                }
                return v
            }) {
                if modes.isEmpty { f.fail("must name at least one access mode") } else { accessModes = modes }
            }
            var volumeMode = "Filesystem"
            if let f = st["volumeMode"], let v = f.string {
                if v == "Filesystem" { volumeMode = v } else { f.fail("must be Filesystem (EventStoreDB stores files; got \(v))") }
            }
            guard let size else { return nil }
            return Storage(size: size, storageClassName: storageClass, accessModes: accessModes, volumeMode: volumeMode)
        }
    }

    /// The labels of cairn's KurrentDB pods (the StatefulSet's selector).
    static func podLabels(_ cluster: String) -> [String: String] {
        ["app.kubernetes.io/name": "kurrentdb", "app.kubernetes.io/instance": cluster]
    }

    /// The labels the upstream operator gives its pods, which its documented examples select.
    static func upstreamPodLabels(_ cluster: String) -> [String: String] {
        ["app.kubernetes.io/part-of": "kurrentdb-operator", "app.kubernetes.io/name": cluster]
    }

    static func decodeConstraints(_ field: Field, cluster: String?) -> PodConstraints? {
        field.object { c -> PodConstraints? in
            var out = PodConstraints()
            if let f = c["nodeSelector"], let m = f.labelMap { out.nodeSelector = m }
            if let f = c["affinity"], let a = f.affinity { out.affinity = a }
            if let f = c["tolerations"], let t = f.tolerations { out.tolerations = t }
            if let f = c["topologySpreadConstraints"], let t = f.list({ spreadConstraint($0, cluster: cluster) }) {
                out.topologySpreadConstraints = t
            }
            return out
        }
    }

    /// A spread constraint must count this cluster's pods: a label selector written for the
    /// upstream operator's pod labels is translated to cairn's (with a note); one that selects
    /// labels cairn's pods do not carry is refused, as it would silently spread nothing.
    static func spreadConstraint(_ f: Field, cluster: String?) -> JSONValue? {
        guard f.mapping != nil, case .object(var constraint) = f.json else {
            f.fail("must be a mapping (a topology spread constraint)")
            return nil
        }
        guard let cluster, let selectorNode = f.mapping?["labelSelector"] else { return .object(constraint) }
        let sf = f.child("labelSelector", selectorNode)
        guard case .object(let selector)? = constraint["labelSelector"] else { return .object(constraint) }
        if selector["matchExpressions"] != nil {
            sf.fail("not supported by cairn yet: matchExpressions here (cairn checks that the selector counts this cluster's pods); "
                    + "use matchLabels")
            return nil
        }
        let match = (selector["matchLabels"]?.objectValue?.entries ?? []).reduce(into: [String: String]()) { $0[$1.key] = $1.value.stringValue ?? "" }
        let own = podLabels(cluster)
        let upstream = upstreamPodLabels(cluster)
        if !match.isEmpty, match.allSatisfy({ own[$0.key] == $0.value }) { return .object(constraint) }
        if !match.isEmpty, match.allSatisfy({ upstream[$0.key] == $0.value }) {
            constraint["labelSelector"] = .object(JSONObject([(key: "matchLabels", value: .sortedStrings(Array(own)))]))
            sf.note("selects the upstream operator's pod labels; cairn's pods carry "
                    + own.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ", which it selects instead")
            return .object(constraint)
        }
        sf.fail("selects no pod of this cluster: cairn's pods carry "
                + own.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                + " (the upstream operator's " + upstream.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                + " are translated)")
        return nil
    }
}

/// Which `eventstore.conf` key names a server version reads. EventStoreDB refuses to start on
/// an option it does not know, so the configuration follows the image version.
public enum EventStoreDialect: Sendable, Hashable {
    /// 20.10 up to 23.6: `ExtIp`/`IntIp`, external TCP on 1113, `Int/ExtTcpHeartbeat*`.
    case legacy
    /// 23.10: `NodeIp`/`ReplicationIp`, `ReplicationHeartbeat*`; external TCP still known.
    case v23_10
    /// 24.2 up to 24.10: external TCP removed.
    case v24_2
    /// KurrentDB 25.0 and later: `/etc/kurrentdb`, `/var/lib/kurrentdb`, `KURRENTDB_` variables.
    case kurrent25

    public init?(version: ImageVersion) {
        if version < ImageVersion([20, 10]) { return nil }
        if version < ImageVersion([23, 10]) { self = .legacy }
        else if version < ImageVersion([24, 2]) { self = .v23_10 }
        else if version < ImageVersion([25, 0]) { self = .v24_2 }
        else { self = .kurrent25 }
    }

    /// Old name -> name from 23.10 on.
    public static let renamed: [(old: String, new: String)] = [
        ("ExtIp", "NodeIp"), ("HttpPort", "NodePort"), ("ExtHostAdvertiseAs", "NodeHostAdvertiseAs"),
        ("IntIp", "ReplicationIp"), ("IntTcpPort", "ReplicationPort"),
        ("IntHostAdvertiseAs", "ReplicationHostAdvertiseAs"),
        ("IntTcpHeartbeatInterval", "ReplicationHeartbeatInterval"),
        ("IntTcpHeartbeatTimeout", "ReplicationHeartbeatTimeout"),
    ]

    static let removedIn24_2: Set<String> = [
        "EnableExternalTcp", "ExtTcpPort", "ExtSecureTcpPort", "ExtTcpPortAdvertiseAs", "ExtTcpHeartbeatInterval",
        "ExtTcpHeartbeatTimeout", "DisableExternalTcpTls",
    ]
    static let removedIn25: Set<String> = [
        "GossipOnSingleNode", "DisableInternalTcpTls", "AlwaysKeepScavenged", "OptimizeIndexMerge",
    ]

    public var usesNewNames: Bool { self != .legacy }
    public var hasExternalTcp: Bool { self == .legacy || self == .v23_10 }

    public var name: String {
        switch self {
        case .legacy: "20.10-23.6"
        case .v23_10: "23.10"
        case .v24_2: "24.2-24.10"
        case .kurrent25: "25.0 and later"
        }
    }

    /// Why a user-set key is wrong for this version, or nil when it is fine.
    public func problem(with key: String) -> String? {
        if usesNewNames, let r = Self.renamed.first(where: { $0.old == key }) {
            return "\(key) was renamed \(r.new) in 23.10, and this image's server (\(name)) refuses the old name"
        }
        if !usesNewNames, let r = Self.renamed.first(where: { $0.new == key }) {
            return "\(key) is the 23.10 name; this image's server (\(name)) reads \(r.old)"
        }
        if !hasExternalTcp, Self.removedIn24_2.contains(key) {
            return "\(key) was removed with external TCP in 24.2; this image's server (\(name)) refuses it"
        }
        if self == .kurrent25, Self.removedIn25.contains(key) {
            return "\(key) was removed in 25.0; this image's server refuses it"
        }
        return nil
    }
}

enum CIDR {
    private static func doubleColons(_ s: Substring) -> Int {
        let u = Array(s.utf8)
        guard u.count > 1 else { return 0 }
        return (1..<u.count).filter { u[$0] == 58 && u[$0 - 1] == 58 }.count
    }

    /// An IPv4 or IPv6 range such as `10.0.0.0/8` or `2001:db8::/32`.
    static func isValid(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let bits = Int(parts[1]) else { return false }
        let address = parts[0]
        if address.contains(":") {
            guard (0...128).contains(bits) else { return false }
            let groups = address.split(separator: ":", omittingEmptySubsequences: false)
            return groups.count >= 3 && groups.count <= 8
                && groups.allSatisfy { $0.count <= 4 && $0.allSatisfy(\.isHexDigit) }
                && doubleColons(address) <= 1
        }
        guard (0...32).contains(bits) else { return false }
        let octets = address.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { o in
            guard !o.isEmpty, o.count <= 3, let n = Int(o) else { return false }
            return n <= 255
        }
    }
}
