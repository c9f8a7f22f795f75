public import ClusterSpecs
import Foundation

/// A PostgreSQL cluster run by Patroni (Spilo image), in the Zalando operator's shape
/// (`acid.zalan.do/v1`, kind `postgresql`).
public struct PostgresSpec: SystemSpec {
    public static let apiVersion = "acid.zalan.do/v1"
    public static let kind = "postgresql"
    public static let defaultImage = "ghcr.io/zalando/spilo-17:4.0-p2"
    /// PostgreSQL major versions the default Spilo image carries.
    public static let defaultImageVersions = 13...17
    /// The default image for PostgreSQL 18: the upstream operator's own default at its v2.0.1
    /// (`spilo-18:4.1-p2`, which carries 18). The 13-17 default stays as it was, so that upgrading
    /// cairn restarts no pod.
    public static let defaultImage18 = "ghcr.io/zalando/spilo-18:4.1-p2"

    /// Versions the current default no longer carries: the upstream operator's default image of
    /// its last release whose CRD still allowed the version (v1.12.0: 11-16 on spilo-16:3.2-p3;
    /// v1.13.0: 12-16 on spilo-16:3.3-p1).
    public static let formerDefaultImages = [11: "ghcr.io/zalando/spilo-16:3.2-p3", 12: "ghcr.io/zalando/spilo-16:3.3-p1"]

    /// The default image of a major version, nil when no default carries it.
    public static func defaultImage(for version: Int) -> String? {
        if version == 18 { return defaultImage18 }
        if let former = formerDefaultImages[version] { return former }
        return defaultImageVersions.contains(version) ? defaultImage : nil
    }

    public struct User: Sendable, Hashable {
        public var name: String
        public var flags: [String]
    }

    public struct Patroni: Sendable, Hashable {
        public var ttl: Int?
        public var loopWait: Int?
        public var retryTimeout: Int?
        public var maximumLagOnFailover: Int?
        public var synchronousMode: Bool?
        public var synchronousModeStrict: Bool?
        public var synchronousNodeCount: Int?
        public var failsafeMode: Bool?
        public var pgHba: [String]
        /// `initdb` options (`encoding: UTF8`; `data-checksums: "true"` is a flag), by name.
        public var initdb: [String: String] = [:]
    }

    /// A volume of `additionalVolumes`: mounted at `mountPath` in the named containers
    /// (`postgres` when none are named; `all`: every container of the pod).
    public struct AdditionalVolume: Sendable, Hashable {
        public var name: String
        public var mountPath: String
        public var subPath: String?
        public var isSubPathExpr: Bool
        public var targetContainers: [String]
        /// `volumeSource` as written (emptyDir, persistentVolumeClaim, secret, ...).
        public var source: JSONValue
    }

    public var teamId: String
    public var numberOfInstances: Int
    public var version: Int
    /// `postgresql.parameters`, values as strings.
    public var parameters: [String: String]
    public var volumeSize: Quantity
    public var storageClass: String?
    public var users: [User]
    /// Database name -> owner.
    public var databases: [String: String]
    public var resources: ResourceRequirements
    public var patroni: Patroni
    public var enableMasterLoadBalancer: Bool
    public var enableReplicaLoadBalancer: Bool
    public var allowedSourceRanges: [String]
    public var tolerations: [JSONValue]
    public var nodeAffinity: JSONValue?
    public var dockerImage: String
    public var podAnnotations: [String: String]
    /// Containers beside `postgres` (`sidecars`) and before it (`initContainers`), as written.
    public var sidecars: [JSONValue] = []
    public var initContainers: [JSONValue] = []
    /// The memory-backed `/dev/shm` volume (the upstream default: on).
    public var enableShmVolume = true
    /// Annotations of both Services, and of the master's and the replicas' own (which win).
    public var serviceAnnotations: [String: String] = [:]
    public var masterServiceAnnotations: [String: String] = [:]
    public var replicaServiceAnnotations: [String: String] = [:]
    public var additionalVolumes: [AdditionalVolume] = []
    /// `preparedDatabases`, by name.
    public var preparedDatabases: [PreparedDatabase] = []
    /// `tls`: Spilo's server certificate from a Secret (nil: Spilo's own self-signed one).
    public var tls: TLS?
    /// `standby`: the cluster follows a remote primary (`standby_host`), as Spilo's
    /// `STANDBY_*` variables say.
    public var standby: Standby?
    /// `env` of Spilo's container, after the operator's own (a variable by one of their names is
    /// dropped, as upstream drops it), and `envFrom`, as written.
    public var env: [JSONValue] = []
    public var envFrom: [JSONValue] = []
    /// `livenessProbe` of Spilo's container, as written (upstream: none by default).
    public var livenessProbe: JSONValue?
    public var priorityClassName: String?
    public var schedulerName: String?
    public var topologySpreadConstraints: [JSONValue] = []
    /// `enableMasterNodePort` / `enableReplicaNodePort`: the Service is a NodePort one, on
    /// `masterNodePort` / `replicaNodePort` when given (nil: not a NodePort Service; 0: a port
    /// the API server picks). A NodePort wins over a load balancer, as upstream.
    public var masterNodePort: Int?
    public var replicaNodePort: Int?
    /// The connection pooler (PgBouncer), nil when neither pooler is on.
    public var pooler: Pooler?

    /// The upstream operator's connection pooler, with its defaults (operator configuration at
    /// v2.0.1): a Deployment and a Service `<cluster>-pooler` in front of the master and/or
    /// `<cluster>-pooler-repl` in front of the replicas, its own LOGIN role with a credentials
    /// Secret, and a lookup function PgBouncer asks for the other roles' password verifiers.
    public struct Pooler: Sendable, Hashable {
        public static let defaultImage = "ghcr.io/zalando/postgres-operator/pgbouncer:v2.0.1"
        public var master: Bool
        public var replica: Bool
        public var instances = 2
        public var mode = "transaction"
        public var schema = "pooler"
        public var user = "pooler"
        public var image = defaultImage
        public var maxDBConnections = 60
        public var resources = ResourceRequirements(
            requests: ["cpu": try! Quantity(parsing: "500m"), "memory": try! Quantity(parsing: "100Mi")],
            limits: ["cpu": try! Quantity(parsing: "1"), "memory": try! Quantity(parsing: "100Mi")])
        public var masterLoadBalancer = false
        public var replicaLoadBalancer = false
        public var masterNodePort: Int?
        public var replicaNodePort: Int?

        /// PgBouncer's pool sizes, as the upstream operator derives them from the connections
        /// each instance may open: default pool half of it, minimum and reserve a quarter.
        public var maxDBConnectionsPerInstance: Int { maxDBConnections / instances }
        public var defaultPoolSize: Int { maxDBConnectionsPerInstance / 2 }
        public var minPoolSize: Int { defaultPoolSize / 2 }
    }

    /// Where a standby cluster follows its source from: a remote primary it streams from, or a
    /// WAL archive (exactly one, as the upstream CRD's `oneOf` says).
    public struct Standby: Sendable, Hashable {
        public var host: String?
        public var port: String?
        public var primarySlotName: String?
        /// `s3_wal_path` (Spilo's `STANDBY_WALE_S3_PREFIX`) or `gs_wal_path` (`STANDBY_WALE_GS_PREFIX`).
        public var walArchive: (variable: String, path: String)? {
            get { walVariable.map { ($0, walPath ?? "") } }
            set { walVariable = newValue?.variable; walPath = newValue?.path }
        }
        private var walVariable: String?
        private var walPath: String?

        public init(host: String? = nil, port: String? = nil, primarySlotName: String? = nil) {
            self.host = host
            self.port = port
            self.primarySlotName = primarySlotName
        }
    }

    /// The server certificate as the upstream operator mounts it: the Secret at `/tls`, the CA's
    /// own Secret (if any) at `/tlsca`, and Spilo's `SSL_*_FILE` variables naming the files.
    public struct TLS: Sendable, Hashable {
        public var secretName: String
        public var certificateFile: String
        public var privateKeyFile: String
        public var caFile: String?
        public var caSecretName: String?
    }

    /// A database of `preparedDatabases`, as the upstream operator prepares it: an owner role
    /// and reader and writer roles (and LOGIN `_user` ones with `defaultUsers`), its schemas
    /// (`data` when none is listed) with roles of their own, default privileges, extensions.
    public struct PreparedDatabase: Sendable, Hashable {
        public struct Schema: Sendable, Hashable {
            public var name: String
            /// `<db>_<schema>_owner`, `_reader`, `_writer` (upstream default: on).
            public var defaultRoles: Bool
            /// Their `_user` LOGIN counterparts (upstream default: off).
            public var defaultUsers: Bool
        }
        public struct Extension: Sendable, Hashable {
            public var name: String
            public var schema: String
        }
        public var name: String
        public var defaultUsers: Bool
        /// By name.
        public var schemas: [Schema]
        /// By name.
        public var extensions: [Extension]
    }

    /// Roles Spilo itself creates or needs; a spec may not declare them.
    public static let systemUsers: Set<String> = ["postgres", "standby", "admin", "cron_admin", "robot_zmon"]
    static let userFlags: Set<String> = [
        "superuser", "inherit", "login", "nologin", "createrole", "createdb", "replication", "bypassrls",
        "nosuperuser", "noinherit", "nocreaterole", "nocreatedb", "noreplication", "nobypassrls",
    ]

    /// The Secret holding a user's password, as the Zalando operator names it
    /// (`_` is not allowed in object names and becomes `-`).
    public static func secretName(user: String, cluster: String) -> String {
        "\(user.replacingAll("_", with: "-")).\(cluster).credentials.postgresql.acid.zalan.do"
    }

    static func decode(_ field: Field, metadata: ClusterMetadata?) -> PostgresSpec? {
        field.object { s -> PostgresSpec? in
            let teamField = s.required("teamId")
            var teamId = teamField?.nonEmptyString
            if let t = teamId, !Names.isLabelValue(t) {
                teamField?.fail("'\(t)' cannot be a label value (at most 63 letters, digits, '-', '_', '.')")
                teamId = nil
            }
            let instances = s.required("numberOfInstances").flatMap { $0.int(atLeast: 1, atMost: 32) }

            var version: Int?
            var versionField: Field?
            var parameters: [String: String] = [:]
            if let pf = s.required("postgresql") {
                _ = pf.object { p -> Bool? in
                    if let vf = p.required("version"), let v = vf.scalarText {
                        versionField = vf
                        if let n = Int(v), (10...18).contains(n) { version = n } else {
                            vf.fail("must be a PostgreSQL major version from 10 to 18 (got \(v))")
                        }
                    }
                    if let pp = p["parameters"], let entries = pp.entries({ key, v -> String? in
                        guard isParameterName(key) else {
                            v.fail("'\(key)' is not a PostgreSQL parameter name")
                            return nil
                        }
                        guard let text = v.scalarText else { return nil }
                        if text.unicodeScalars.contains(where: { $0.value < 32 }) {
                            v.fail("must not contain control characters or line breaks")
                            return nil
                        }
                        return text
                    }) {
                        for (k, v) in entries { parameters[k] = v }
                    }
                    return true
                }
            }

            var volumeSize: Quantity?
            var storageClass: String?
            if let vf = s.required("volume") {
                _ = vf.object(unsupported: ["selector": "volumes come from the storage class", "subPath": "not rendered",
                                            "iops": "not rendered", "throughput": "not rendered"]) { v -> Bool? in
                    if let q = v.required("size"), let size = q.quantity {
                        if size.isZero || size.isNegative { q.fail("must be more than 0 (got \(size))") } else { volumeSize = size }
                    }
                    if let c = v["storageClass"], let name = c.string {
                        if Names.isDNS1123Subdomain(name) { storageClass = name } else { c.fail("'\(name)' is not a valid storage class name") }
                    }
                    return true
                }
            }

            var users: [User] = []
            if let uf = s["users"], let entries = uf.entries({ name, v -> [String]? in
                guard isRoleName(name) else {
                    v.fail("'\(name)' is not a valid user name (lower-case letters, digits and '_', starting with a letter or '_', at most 63)")
                    return nil
                }
                if systemUsers.contains(name) {
                    v.fail("'\(name)' is created by Spilo itself; choose another name")
                    return nil
                }
                if v.isNull { return [] }
                guard let flags = v.list({ flag -> String? in
                    guard let f = flag.string else { return nil }
                    guard userFlags.contains(f.lowercased()) else {
                        flag.fail("'\(f)' is not a role flag (\(userFlags.sorted().joined(separator: ", ")))")
                        return nil
                    }
                    return f.lowercased()
                }) else { return nil }
                // PostgreSQL refuses both at once ("conflicting or redundant options"), as upstream does.
                for f in flags where f.hasPrefix("no") && flags.contains(String(f.dropFirst(2))) {
                    v.fail("'\(f.dropFirst(2))' and '\(f)' contradict each other")
                    return nil
                }
                if flags.contains("nologin") {
                    v.note("nologin applies when the role is created: an existing role keeps LOGIN, as upstream")
                }
                return flags
            }) {
                users = entries.map { User(name: $0.key, flags: $0.value) }
                var secretNames: [String: String] = [:]
                for u in users {
                    let secret = secretName(user: u.name, cluster: metadata?.name ?? "")
                    if metadata != nil, !Names.isDNS1123Subdomain(secret) {
                        uf.fail("user '\(u.name)' would have the Secret name '\(secret)', which Kubernetes refuses; "
                                + "start and end the name with a letter or digit")
                    } else if let other = secretNames[secret] {
                        uf.fail("users '\(other)' and '\(u.name)' would share the Secret \(secret)")
                    }
                    secretNames[secret] = u.name
                }
            }

            var databases: [String: String] = [:]
            if let df = s["databases"], let entries = df.entries({ name, v -> String? in
                guard isRoleName(name) else { v.fail("'\(name)' is not a valid database name"); return nil }
                if ["postgres", "template0", "template1"].contains(name) {
                    v.fail("'\(name)' is a system database")
                    return nil
                }
                guard let owner = v.string else { return nil }
                if owner != "postgres", !users.contains(where: { $0.name == owner }) {
                    v.fail("owner '\(owner)' is not one of the users declared in spec.users")
                    return nil
                }
                return owner
            }) {
                for (k, v) in entries { databases[k] = v }
            }

            let preparedField = s["preparedDatabases"]
            var prepared: [PreparedDatabase] = []
            if let pf = preparedField, let entries = pf.entries({ name, v in decodePreparedDatabase(name, v) }) {
                prepared = entries.map(\.value)
                // `preparedDatabases: {}`: one database named after the cluster ('-' becomes '_').
                if entries.isEmpty, pf.mapping?.entries.isEmpty == true, let cluster = metadata?.name {
                    let name = cluster.replacingAll("-", with: "_")
                    if isRoleName(name) {
                        prepared = [PreparedDatabase(name: name, defaultUsers: false,
                                                     schemas: [.init(name: "data", defaultRoles: true, defaultUsers: false)], extensions: [])]
                    } else {
                        pf.fail("the database named after the cluster, '\(name)', is not a valid database name; name it here")
                    }
                }
                prepared.sort { $0.name < $1.name }
            }

            let resources = s["resources"].flatMap { $0.resources } ?? ResourceRequirements()
            let patroni = s["patroni"].flatMap(decodePatroni) ?? Patroni(pgHba: [])
            let masterLB = s["enableMasterLoadBalancer"].flatMap { $0.bool } ?? false
            let replicaLB = s["enableReplicaLoadBalancer"].flatMap { $0.bool } ?? false
            var ranges: [String] = []
            if let rf = s["allowedSourceRanges"], let list = rf.list({ r -> String? in
                guard let v = r.string else { return nil }
                if !CIDR.isValid(v) { r.fail("'\(v)' is not an IP range in CIDR notation"); return nil }
                return v
            }) { ranges = list }
            let tolerations = s["tolerations"].flatMap { $0.tolerations } ?? []
            let nodeAffinity = s["nodeAffinity"].flatMap { f in f.mapping != nil ? f.json : nil }
            var image = version.flatMap(defaultImage(for:)) ?? defaultImage
            let imageField = s["dockerImage"]
            if let f = imageField, let i = f.nonEmptyString { image = i }
            if imageField == nil, let v = version, defaultImage(for: v) == nil, let vf = versionField {
                vf.fail("PostgreSQL \(v) is not in the default image \(defaultImage) "
                        + "(it carries \(defaultImageVersions.lowerBound)-\(defaultImageVersions.upperBound); 18 gets \(defaultImage18), "
                        + "11 and 12 the upstream operator's former defaults); set dockerImage to a Spilo image that has it")
            }
            if imageField == nil, let v = version, let former = formerDefaultImages[v], let vf = versionField {
                vf.note("PostgreSQL \(v) left the upstream operator's default image; cairn runs it on \(former), the default of the last "
                        + "operator release that allowed \(v); PostgreSQL \(v) is past its end of life: plan a major upgrade")
            }
            let podAnnotations = s["podAnnotations"].flatMap { $0.annotationMap } ?? [:]
            if let metadata, case let name = metadata.name, name.count > 53 {
                s.field.metadataName(metadata)
                    .fail("a PostgreSQL cluster name is at most 53 characters (got \(name.count)); pod and Service names are derived from it")
            }
            var names = ["postgres": "'postgres' is Spilo's own container"]
            let sidecars = s["sidecars"].flatMap { $0.list { (c: Field) -> JSONValue? in decodeSidecar(c, names: &names) } } ?? []
            let initContainers = s["initContainers"].flatMap { $0.list { $0.extraContainer(names: &names) } } ?? []
            let shm = s["enableShmVolume"].flatMap { $0.bool } ?? true
            if !shm, let f = s["enableShmVolume"] {
                f.note("cairn leaves /dev/shm out, as the upstream documentation says; the upstream operator itself mounts it "
                       + "anyway (zalando/postgres-operator#2805)")
            }
            let serviceAnnotations = s["serviceAnnotations"].flatMap { $0.annotationMap } ?? [:]
            let masterServiceAnnotations = s["masterServiceAnnotations"].flatMap { $0.annotationMap } ?? [:]
            let replicaServiceAnnotations = s["replicaServiceAnnotations"].flatMap { $0.annotationMap } ?? [:]
            let containerNames = Set(["postgres", "all"] + sidecars.compactMap { $0["name"]?.stringValue })
            var volumeNames: Set<String> = ["pgdata", "dshm"]
            var mountPaths: Set<String> = ["/home/postgres/pgdata", "/dev/shm"]
            let tls = s["tls"].flatMap(decodeTLS)
            if let tls {
                volumeNames.insert("tls")
                mountPaths.insert("/tls")
                if tls.caSecretName != nil {
                    volumeNames.insert("tlsca")
                    mountPaths.insert("/tlsca")
                }
            }
            let pooler = decodePooler(s, users: users)
            let env = s["env"].flatMap(decodeEnv) ?? []
            let envFrom = s["envFrom"].flatMap { $0.list(decodeEnvFrom) } ?? []
            let livenessProbe = s["livenessProbe"].flatMap(decodeProbe)
            var priorityClassName: String?
            if let f = s["podPriorityClassName"], let name = f.nonEmptyString {
                if Names.isDNS1123Subdomain(name) { priorityClassName = name } else { f.fail("'\(name)' is not a PriorityClass name") }
            }
            var schedulerName: String?
            if let f = s["schedulerName"], let name = f.nonEmptyString {
                if Names.isDNS1123Subdomain(name) { schedulerName = name } else { f.fail("'\(name)' is not a scheduler name") }
            }
            let spread = s["topologySpreadConstraints"].flatMap { $0.list { spreadConstraint($0, cluster: metadata?.name) } } ?? []
            let masterNodePort = nodePort(s, enable: "enableMasterNodePort", port: "masterNodePort")
            let replicaNodePort = nodePort(s, enable: "enableReplicaNodePort", port: "replicaNodePort")
            let additionalVolumes = s["additionalVolumes"].flatMap { $0.list { v in
                decodeAdditionalVolume(v, containers: containerNames, names: &volumeNames, paths: &mountPaths)
            } } ?? []
            guard let teamId, let instances, let version, let volumeSize else { return nil }
            var spec = PostgresSpec(
                teamId: teamId, numberOfInstances: instances, version: version, parameters: parameters,
                volumeSize: volumeSize, storageClass: storageClass, users: users, databases: databases,
                resources: resources, patroni: patroni, enableMasterLoadBalancer: masterLB,
                enableReplicaLoadBalancer: replicaLB, allowedSourceRanges: ranges, tolerations: tolerations,
                nodeAffinity: nodeAffinity, dockerImage: image, podAnnotations: podAnnotations)
            spec.sidecars = sidecars
            spec.initContainers = initContainers
            spec.enableShmVolume = shm
            spec.serviceAnnotations = serviceAnnotations
            spec.masterServiceAnnotations = masterServiceAnnotations
            spec.replicaServiceAnnotations = replicaServiceAnnotations
            spec.additionalVolumes = additionalVolumes
            spec.tls = tls
            spec.standby = s["standby"].flatMap(decodeStandby)
            spec.env = env
            spec.envFrom = envFrom
            spec.livenessProbe = livenessProbe
            spec.priorityClassName = priorityClassName
            spec.schedulerName = schedulerName
            spec.topologySpreadConstraints = spread
            spec.masterNodePort = masterNodePort
            spec.replicaNodePort = replicaNodePort
            spec.pooler = pooler
            if pooler != nil, spec.standby != nil, let f = s["enableConnectionPooler"] ?? s["connectionPooler"] ?? s["enableReplicaConnectionPooler"] {
                f.note("a standby cluster gets no pooler role or lookup function from cairn (as upstream, which skips the lookup "
                       + "function there): the pooler logs in with the role and function replicated from the source, so its Secret "
                       + "must hold the source pooler role's password")
            }
            if spec.standby != nil {
                for key in ["users", "databases", "preparedDatabases"] {
                    s[key]?.note("a standby cluster replicates its roles and databases from its source: cairn makes none here, as upstream")
                }
            }
            if let pf = preparedField {
                spec.preparedDatabases = prepared
                checkRoleNames(spec, users: s["users"], prepared: pf, databases: s["databases"], clusterName: metadata?.name ?? "x")
            }
            return spec
        }
    }


    /// `enable<Role>NodePort` with its `<role>NodePort`: nil when not on, else the port (0: the
    /// API server picks one).
    static func nodePort(_ s: ObjectReader, enable: String, port: String) -> Int? {
        let on = s[enable].flatMap { $0.bool } ?? false
        let number = s[port].flatMap { $0.int(atLeast: 0, atMost: 65535) }
        if !on, number != nil, number != 0, let f = s[port] {
            f.note("\(enable) is not true: the Service is not a NodePort one, and the port is not used (as upstream)")
        }
        return on ? (number ?? 0) : nil
    }

    /// `connectionPooler` and the flags that turn the poolers on, as the upstream operator reads
    /// them: the master's pooler is on with `enableConnectionPooler: true`, or with a
    /// `connectionPooler` section and no `enableConnectionPooler`; the replicas' only with
    /// `enableReplicaConnectionPooler: true`.
    static func decodePooler(_ s: ObjectReader, users: [User]) -> Pooler? {
        let enableMaster = s["enableConnectionPooler"].flatMap { $0.bool }
        let enableReplica = s["enableReplicaConnectionPooler"].flatMap { $0.bool } ?? false
        let section = s["connectionPooler"]
        var pooler = Pooler(master: enableMaster ?? (section != nil && section?.isNull == false), replica: enableReplica)
        pooler.masterLoadBalancer = s["enableMasterPoolerLoadBalancer"].flatMap { $0.bool } ?? false
        pooler.replicaLoadBalancer = s["enableReplicaPoolerLoadBalancer"].flatMap { $0.bool } ?? false
        pooler.masterNodePort = nodePort(s, enable: "enableMasterPoolerNodePort", port: "masterPoolerNodePort")
        pooler.replicaNodePort = nodePort(s, enable: "enableReplicaPoolerNodePort", port: "replicaPoolerNodePort")
        if let f = section, !f.isNull {
            _ = f.object { p -> Bool? in
                if let v = p["numberOfInstances"], let n = v.int(atLeast: 1, atMost: 100) { pooler.instances = n }
                if let v = p["mode"], let m = v.string {
                    if m == "session" || m == "transaction" { pooler.mode = m } else { v.fail("must be session or transaction (got \(m))") }
                }
                if let v = p["schema"], let name = v.nonEmptyString {
                    if isRoleName(name) { pooler.schema = name } else { v.fail("'\(name)' is not a valid schema name") }
                }
                if let v = p["user"], let name = v.nonEmptyString {
                    if !isRoleName(name) {
                        v.fail("'\(name)' is not a valid role name")
                    } else if systemUsers.contains(name) {
                        // Upstream falls back to its default user without a word; cairn says so instead.
                        v.fail("'\(name)' is a role of Spilo's own; the pooler needs a role of its own (the default is pooler)")
                    } else if users.contains(where: { $0.name == name }) {
                        v.fail("'\(name)' is also in spec.users; the pooler's role is made by cairn with LOGIN only")
                    } else {
                        pooler.user = name
                    }
                }
                if let v = p["dockerImage"], let image = v.nonEmptyString { pooler.image = image }
                if let v = p["maxDBConnections"], let n = v.int(atLeast: 1, atMost: 100_000) { pooler.maxDBConnections = n }
                if let v = p["resources"], let r = v.resources {
                    // Each of cpu and memory not given takes the operator's default, as upstream.
                    var merged = pooler.resources
                    for (k, q) in r.requests { merged.requests[k] = q }
                    for (k, q) in r.limits { merged.limits[k] = q }
                    for (k, limit) in merged.limits where (merged.requests[k].map { $0 > limit } ?? false) {
                        if r.limits[k] == nil { merged.limits[k] = merged.requests[k] } else { merged.requests[k] = limit }
                    }
                    pooler.resources = merged
                }
                return true
            }
        }
        if pooler.master, pooler.maxDBConnectionsPerInstance < 4, let f = section {
            f.fail("maxDBConnections \(pooler.maxDBConnections) over \(pooler.instances) instances leaves each fewer than 4 connections, "
                   + "so PgBouncer's pool would be empty (the upstream operator gives each maxDBConnections / numberOfInstances)")
        }
        if pooler.user == "pooler", users.contains(where: { $0.name == "pooler" }), pooler.master || pooler.replica {
            (s["users"] ?? s.field).fail("'pooler' is the connection pooler's role; name the pooler's role in connectionPooler.user, "
                                         + "or this user otherwise")
        }
        return pooler.master || pooler.replica ? pooler : nil
    }

    /// `env` of Spilo's container: a name and a literal `value` or a `valueFrom` (as written).
    static func decodeEnv(_ f: Field) -> [JSONValue]? {
        f.list { item -> JSONValue? in
            item.object { e -> JSONValue? in
                let nf = e.required("name")
                let value = e["value"]?.scalarText
                let valueFrom = e["valueFrom"]
                guard let nf, let name = nf.nonEmptyString else { return nil }
                guard Names.isEnvVarName(name) else { nf.fail("'\(name)' is not a valid environment variable name"); return nil }
                var o: JSONObject = ["name": .string(name)]
                if let value { o["value"] = .string(value) }
                if let vf = valueFrom {
                    let sources = ["configMapKeyRef", "fieldRef", "fileKeyRef", "resourceFieldRef", "secretKeyRef"]
                    guard let m = vf.mapping, m.entries.count == 1,
                          let key = m.entries.first?.key.text, sources.contains(key) else {
                        vf.fail("needs exactly one of \(sources.joined(separator: ", "))")
                        return nil
                    }
                    if o["value"] != nil { vf.fail("value and valueFrom exclude each other"); return nil }
                    o["valueFrom"] = vf.json
                }
                return .object(o)
            }
        }
    }

    /// An `envFrom` entry: a ConfigMap or Secret (with an optional prefix), as written.
    static func decodeEnvFrom(_ f: Field) -> JSONValue? {
        f.object { e -> JSONValue? in
            var o = JSONObject()
            if let p = e["prefix"], let prefix = p.string { o["prefix"] = .string(prefix) }
            var sources = 0
            for key in ["configMapRef", "secretRef"] {
                guard let r = e[key] else { continue }
                sources += 1
                let ref = r.object { ref -> JSONValue? in
                    let nf = ref.required("name")
                    let optional = ref["optional"]?.bool
                    guard let nf, let name = nf.nonEmptyString else { return nil }
                    guard Names.isDNS1123Subdomain(name) else { nf.fail("'\(name)' is not an object name"); return nil }
                    var out: JSONObject = ["name": .string(name)]
                    if let optional { out["optional"] = .bool(optional) }
                    return .object(out)
                }
                if let ref { o[key] = ref }
            }
            if sources != 1 { e.field.fail("needs exactly one of configMapRef and secretRef") ; return nil }
            return .object(o)
        }
    }

    /// A probe, as written (the API server checks its fields), with one handler.
    static func decodeProbe(_ f: Field) -> JSONValue? {
        guard let m = f.mapping else { return nil }
        let handlers = ["exec", "grpc", "httpGet", "tcpSocket"]
        let given = m.entries.map(\.key.text).filter(handlers.contains)
        guard given.count == 1 else {
            f.fail("needs exactly one of \(handlers.joined(separator: ", "))")
            return nil
        }
        return f.json
    }

    /// A topology spread constraint counts pods by its label selector: one that selects labels
    /// this cluster's pods do not carry would silently spread nothing, and is refused. Without
    /// a selector it gets the cluster's (what the upstream operator means to set; its code
    /// leaves the constraint as written, which counts no pod).
    static func spreadConstraint(_ f: Field, cluster: String?) -> JSONValue? {
        guard f.mapping != nil, case .object(var constraint) = f.json else {
            _ = f.mapping
            return nil
        }
        let own = ["application": "spilo", "cluster-name": cluster ?? "", "app.kubernetes.io/name": "postgresql",
                   "app.kubernetes.io/instance": cluster ?? ""]
        guard let selectorNode = f.mapping?["labelSelector"] else {
            constraint["labelSelector"] = ["matchLabels": .sortedStrings([("application", "spilo"), ("cluster-name", cluster ?? "")])]
            f.note("has no labelSelector: cairn gives it the cluster's pods (application=spilo, cluster-name=\(cluster ?? ""))")
            return .object(constraint)
        }
        let sf = f.child("labelSelector", selectorNode)
        guard case .object(let selector)? = constraint["labelSelector"] else { return .object(constraint) }
        if selector["matchExpressions"] != nil {
            sf.fail("not supported by cairn yet: matchExpressions here (cairn checks that the selector counts this cluster's pods); "
                    + "use matchLabels")
            return nil
        }
        let match = (selector["matchLabels"]?.objectValue?.entries ?? []).map { ($0.key, $0.value.stringValue ?? "") }
        let fits = match.allSatisfy { key, value in own[key] == value || (key == "spilo-role" && ["master", "replica"].contains(value)) }
        if match.isEmpty || !fits {
            sf.fail("selects no pod of this cluster: its pods carry application=spilo, cluster-name=\(cluster ?? "<name>"), "
                    + "app.kubernetes.io/name=postgresql, app.kubernetes.io/instance=\(cluster ?? "<name>") and spilo-role=master|replica")
            return nil
        }
        return .object(constraint)
    }

    /// A sidecar as the upstream operator reads it: its `Sidecar` type has name, image, ports,
    /// env, command and resources, and it drops anything else; cairn refuses anything else
    /// rather than drop it. Resources are checked and written in canonical form.
    private static func decodeSidecar(_ c: Field, names: inout [String: String]) -> JSONValue? {
        guard case .mapping(let m) = c.node else { _ = c.mapping; return nil }
        for entry in m.entries where !["name", "image", "ports", "env", "command", "resources"].contains(entry.key.text) {
            c.child(entry.key.text, entry.value).fail("not supported in a sidecar: the upstream operator's sidecars take name, image, ports, env, "
                                                      + "command and resources only, and drop the rest")
        }
        var resources: ResourceRequirements?
        if let rf = m["resources"] {
            resources = c.child("resources", rf).resources
        } else {
            c.note("has no resources: cairn gives it none (the upstream operator gives a sidecar its configured default requests and limits)")
        }
        guard m.entries.allSatisfy({ ["name", "image", "ports", "env", "command", "resources"].contains($0.key.text) }),
              var container = c.extraContainer(names: &names)?.objectValue else { return nil }
        if let resources { container["resources"] = Kube.resources(resources) }
        // As the upstream operator sets it on every sidecar.
        container["imagePullPolicy"] = "IfNotPresent"
        return .object(container)
    }

    /// An entry of `additionalVolumes`, as the upstream operator reads it: its name and mount
    /// path are the pod's own (not Spilo's `pgdata` or `/dev/shm`), its target containers exist.
    private static func decodeAdditionalVolume(_ f: Field, containers: Set<String>, names: inout Set<String>,
                                               paths: inout Set<String>) -> AdditionalVolume? {
        var taken = (names, paths)
        let volume = f.object { v -> AdditionalVolume? in
            var name: String?
            if let nf = v.required("name"), let n = nf.nonEmptyString {
                if !Names.isDNS1123Label(n) { nf.fail("'\(n)' is not a volume name (lowercase letters, digits and '-', at most 63)") }
                else if !taken.0.insert(n).inserted { nf.fail("another volume of the pod is named '\(n)'") } else { name = n }
            }
            var mountPath: String?
            if let pf = v.required("mountPath"), let p = pf.nonEmptyString {
                if !p.hasPrefix("/") { pf.fail("must be an absolute path (got '\(p)')") }
                else if !taken.1.insert(p).inserted { pf.fail("another volume is mounted at \(p)") } else { mountPath = p }
            }
            let subPath = v["subPath"]?.nonEmptyString
            let isSubPathExpr = v["isSubPathExpr"]?.bool ?? false
            var targets = ["postgres"]
            if let tf = v["targetContainers"], let list = tf.list({ c -> String? in
                guard let n = c.nonEmptyString else { return nil }
                guard containers.contains(n) else {
                    c.fail("'\(n)' is not a container of the pod (\(containers.sorted().joined(separator: ", ")))")
                    return nil
                }
                return n
            }), !list.isEmpty {
                if list.contains("all") && list.count > 1 { tf.fail("'all' is every container already: name containers, or all alone") }
                targets = list
            }
            var source: JSONValue?
            if let sf = v.required("volumeSource") {
                if case .mapping(let m) = sf.node, m.entries.count == 1 { source = sf.json } else {
                    sf.fail("needs exactly one volume source (emptyDir, persistentVolumeClaim, secret, configMap, ...)")
                }
            }
            guard let name, let mountPath, let source else { return nil }
            return AdditionalVolume(name: name, mountPath: mountPath, subPath: subPath, isSubPathExpr: isSubPathExpr,
                                    targetContainers: targets, source: source)
        }
        (names, paths) = taken
        return volume
    }

    /// `tls`, as upstream reads it: on only when `secretName` is given; file names relative to
    /// the mount (`/tls`, or `/tlsca` for a CA from its own Secret), absolute ones as they are.
    static func decodeTLS(_ f: Field) -> TLS? {
        f.object { t -> TLS? in
            func file(_ key: String) -> String? {
                guard let v = t[key], let text = v.string, !text.isEmpty else { return nil }
                if text.unicodeScalars.contains(where: { $0.value < 32 }) || text.split(separator: "/").contains("..") {
                    v.fail("must be a file name or path without '..' or control characters")
                    return nil
                }
                return text
            }
            let certificate = file("certificateFile"), key = file("privateKeyFile"), ca = file("caFile")
            var caSecret: String?
            if let c = t["caSecretName"], let name = c.string, !name.isEmpty {
                if Names.isDNS1123Subdomain(name) { caSecret = name } else { c.fail("'\(name)' is not a Secret name") }
            }
            guard let sf = t["secretName"], let secret = sf.string, !secret.isEmpty else {
                t.field.note("no secretName: TLS stays as Spilo sets it up (a self-signed certificate), as upstream")
                return nil
            }
            guard Names.isDNS1123Subdomain(secret) else {
                sf.fail("'\(secret)' is not a Secret name")
                return nil
            }
            if caSecret != nil, ca == nil, let c = t["caSecretName"] {
                c.note("without caFile the upstream operator mounts no CA: name the file in caFile")
            }
            func path(_ file: String?, _ dir: String, _ defaultFile: String) -> String {
                guard let file else { return "\(dir)/\(defaultFile)" }
                return file.hasPrefix("/") ? file : "\(dir)/\(file)"
            }
            return TLS(secretName: secret, certificateFile: path(certificate, "/tls", "tls.crt"), privateKeyFile: path(key, "/tls", "tls.key"),
                       caFile: ca.map { path($0, caSecret == nil ? "/tls" : "/tlsca", "") },
                       caSecretName: ca == nil ? nil : caSecret)
        }
    }

    /// `standby`, as upstream renders it (k8sres.go generateStandbyEnvironment): streaming from a
    /// remote primary (`standby_host`, with `standby_port` and `standby_primary_slot_name`), a
    /// WAL archive (`s3_wal_path` or `gs_wal_path`, with Spilo's WAL-E method), or both (the
    /// archive with or without a host, as upstream). The CRD takes at least one, and never both
    /// archives. The archive's credentials come from the operator's configuration upstream
    /// (`pod_environment_configmap`/`_secret`); here from the spec's own `env`/`envFrom`.
    static func decodeStandby(_ f: Field) -> Standby? {
        f.object { o -> Standby? in
            let given = ["standby_host", "s3_wal_path", "gs_wal_path"].filter { key in o[key]?.string.map { !$0.isEmpty } ?? false }
            var port: String?
            if let pf = o["standby_port"], let text = pf.scalarText, !text.isEmpty {
                if let n = Int(text), (1...65535).contains(n) { port = String(n) } else { pf.fail("must be a port number (got \(text))") }
            }
            var slot: String?
            if let sf = o["standby_primary_slot_name"], let text = sf.string, !text.isEmpty {
                if isRoleName(text) { slot = text } else { sf.fail("'\(text)' is not a replication slot name (lower-case letters, digits and '_')") }
            }
            guard !given.isEmpty else {
                o.field.fail("needs standby_host (a remote primary to stream from), s3_wal_path or gs_wal_path (a WAL archive)")
                return nil
            }
            if given.contains("s3_wal_path"), given.contains("gs_wal_path") {
                o["gs_wal_path"]?.fail("takes one WAL archive: s3_wal_path or gs_wal_path, not both (as the upstream CRD says)")
                return nil
            }
            var standby = Standby()
            if let hf = o["standby_host"], let host = hf.string, !host.isEmpty {
                guard Names.isDNS1123Subdomain(host) || CIDR.isValid(host + "/32") || host.contains(":") && CIDR.isValid(host + "/128") else {
                    hf.fail("'\(host)' is not a host name or an IP address")
                    return nil
                }
                standby = Standby(host: host, port: port, primarySlotName: slot)
            } else {
                for k in ["standby_port", "standby_primary_slot_name"] where o.has(k) {
                    o[k]?.note("used with standby_host only: a standby from a WAL archive alone does not read it (as upstream)")
                }
            }
            for key in ["s3_wal_path", "gs_wal_path"] {
                guard let w = o[key], let path = w.string, !path.isEmpty else { continue }
                let scheme = key == "s3_wal_path" ? "s3://" : "gs://"
                guard path.hasPrefix(scheme), path.count > scheme.count, !path.contains(where: { $0.isWhitespace || $0.isNewline || $0 == "\0" }) else {
                    w.fail("'\(path)' is not a \(scheme)bucket/path URL (Spilo's WAL-E prefix)")
                    return nil
                }
                let provider = key == "s3_wal_path"
                    ? "STANDBY_AWS_ACCESS_KEY_ID and STANDBY_AWS_SECRET_ACCESS_KEY (valueFrom a Secret), STANDBY_AWS_REGION or STANDBY_AWS_ENDPOINT"
                    : "STANDBY_GOOGLE_APPLICATION_CREDENTIALS naming a key file mounted with additionalVolumes"
                w.note("the archive's credentials go in spec.env or spec.envFrom (\(provider)): the upstream operator takes them from "
                       + "its own configuration (pod_environment_configmap/secret), which cairn does not have")
                standby.walArchive = (key == "s3_wal_path" ? "STANDBY_WALE_S3_PREFIX" : "STANDBY_WALE_GS_PREFIX", path)
            }
            o.field.note("standby takes effect when the cluster is created (Patroni's standby_cluster); taking it out later does not "
                + "promote the cluster as the upstream operator does through Patroni's API: promote it with `patronictl edit-config` first"
                + (standby.host == nil ? "" : ". The standby user's Secret must hold the source's password: create it "
                    + "before the cluster (cairn never overwrites one)"))
            return standby
        }
    }

    private static func decodePatroni(_ f: Field) -> Patroni? {
        f.object { p -> Patroni? in
            var out = Patroni(pgHba: [])
            out.ttl = p["ttl"].flatMap { $0.int(atLeast: 1, atMost: Limits.seconds) }
            out.loopWait = p["loop_wait"].flatMap { $0.int(atLeast: 1, atMost: Limits.seconds) }
            out.retryTimeout = p["retry_timeout"].flatMap { $0.int(atLeast: 1, atMost: Limits.seconds) }
            out.maximumLagOnFailover = p["maximum_lag_on_failover"].flatMap { $0.int(atLeast: 0, atMost: Limits.bytes) }
            out.synchronousMode = p["synchronous_mode"].flatMap { $0.bool }
            out.synchronousModeStrict = p["synchronous_mode_strict"].flatMap { $0.bool }
            out.synchronousNodeCount = p["synchronous_node_count"].flatMap { $0.int(atLeast: 1, atMost: 32) }
            out.failsafeMode = p["failsafe_mode"].flatMap { $0.bool }
            if let h = p["pg_hba"], let lines = h.list({ l -> String? in
                guard let s = l.nonEmptyString else { return nil }
                if s.unicodeScalars.contains(where: { $0.value < 32 }) { l.fail("must be a single line"); return nil }
                return s
            }) { out.pgHba = lines }
            if let i = p["initdb"], let options = i.entries({ key, value -> String? in
                guard key.range(of: "^[a-z][a-z0-9-]*$", options: .regularExpression) != nil else {
                    value.fail("'\(key)' is not an initdb option name (e.g. encoding, locale, data-checksums)")
                    return nil
                }
                guard let text = value.string else { return nil }  // as written, like every string of a spec
                guard !text.unicodeScalars.contains(where: { $0.value < 32 }) else {
                    value.fail("must be a single-line value")
                    return nil
                }
                if PostgresRenderer.initdbFlags.contains(key), text != "true" {
                    value.fail("\(key) is a flag: \"true\" turns it on (the upstream operator would pass '--\(key)=\(text)', which initdb refuses)")
                    return nil
                }
                return text
            }) {
                out.initdb = Dictionary(options.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
                i.note("initdb options take effect when the cluster is created (its first pod's initdb); changing them later "
                       + "changes nothing in the database, but restarts the pods, as the upstream operator's do")
            }
            if let ttl = out.ttl, let loop = out.loopWait, let retry = out.retryTimeout, loop + 2 * retry > ttl {
                p["ttl"]?.fail("must be at least loop_wait + 2 * retry_timeout (\(loop + 2 * retry)), or the leader key expires between checks")
            }
            return out
        }
    }

    /// One entry of `preparedDatabases` (null or `{}`: the defaults).
    static func decodePreparedDatabase(_ name: String, _ v: Field) -> PreparedDatabase? {
        guard isRoleName(name) else {
            v.fail("'\(name)' is not a valid database name (lower-case letters, digits and '_', starting with a letter or '_', at most 63)")
            return nil
        }
        if ["postgres", "template0", "template1"].contains(name) {
            v.fail("'\(name)' is a system database")
            return nil
        }
        let data = PreparedDatabase.Schema(name: "data", defaultRoles: true, defaultUsers: false)
        if v.isNull { return PreparedDatabase(name: name, defaultUsers: false, schemas: [data], extensions: []) }
        return v.object { o -> PreparedDatabase? in
            let defaultUsers = o["defaultUsers"].flatMap { $0.bool } ?? false
            var schemas: [PreparedDatabase.Schema] = []
            if let sf = o["schemas"], let entries = sf.entries({ schema, f -> PreparedDatabase.Schema? in
                guard isRoleName(schema), !schema.hasPrefix("pg_") else {
                    f.fail("'\(schema)' is not a valid schema name (lower-case letters, digits and '_', not starting with pg_)")
                    return nil
                }
                if f.isNull { return .init(name: schema, defaultRoles: true, defaultUsers: false) }
                return f.object { so -> PreparedDatabase.Schema? in
                    let roles = so["defaultRoles"].flatMap { $0.bool } ?? true
                    let usersField = so["defaultUsers"]
                    let users = usersField.flatMap { $0.bool } ?? false
                    if users, !roles, let usersField {
                        usersField.fail("needs defaultRoles: the _user roles are members of the schema's own roles")
                        return nil
                    }
                    return .init(name: schema, defaultRoles: roles, defaultUsers: users)
                }
            }) { schemas = entries.map(\.value) }
            if schemas.isEmpty { schemas = [data] }
            schemas.sort { $0.name < $1.name }
            var extensions: [PreparedDatabase.Extension] = []
            if let ef = o["extensions"], let entries = ef.entries({ ext, f -> PreparedDatabase.Extension? in
                guard let first = ext.unicodeScalars.first, ("a"..."z").contains(first), ext.count <= 63,
                      ext.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }) else {
                    f.fail("'\(ext)' is not an extension name")
                    return nil
                }
                guard let schema = f.string else { return nil }
                guard schema == "public" || schemas.contains(where: { $0.name == schema }) else {
                    f.fail("schema '\(schema)' is neither public nor one of this database's schemas (\(schemas.map(\.name).joined(separator: ", ")))")
                    return nil
                }
                return .init(name: ext, schema: schema)
            }) { extensions = entries.map(\.value).sorted { $0.name < $1.name } }
            if let ns = o["secretNamespace"] {
                ns.note("cairn writes the Secrets of the _user roles in the cluster's namespace, as the upstream operator does "
                        + "unless its enable_cross_namespace_secret option is on")
            }
            return PreparedDatabase(name: name, defaultUsers: defaultUsers, schemas: schemas, extensions: extensions)
        }
    }

    /// Role and database names must be PostgreSQL names (at most 63 bytes) and unique: a role
    /// of `preparedDatabases` may not also be a user of `users`, and no database is both
    /// prepared and in `databases`.
    static func checkRoleNames(_ spec: PostgresSpec, users: Field?, prepared: Field, databases: Field?, clusterName: String) {
        var seen: [String: String] = [:]
        for db in spec.preparedDatabases {
            for role in PostgresRoles.preparedRoles(db) {
                if role.name.utf8.count > 63 {
                    prepared.fail("role '\(role.name)' of database '\(db.name)' would be longer than PostgreSQL's 63 bytes; shorten the database or schema name")
                } else if let other = seen[role.name] {
                    prepared.fail("role '\(role.name)' would be made for both database '\(other)' and database '\(db.name)'; rename one")
                } else if role.hasSecret, case let secret = secretName(user: role.name, cluster: clusterName),
                          !Names.isDNS1123Subdomain(secret) {
                    prepared.fail("role '\(role.name)' of database '\(db.name)' would have the Secret name '\(secret)', which Kubernetes "
                                  + "refuses; start and end the names with a letter or digit")
                }
                seen[role.name] = db.name
            }
            if spec.databases[db.name] != nil, let databases {
                databases.fail("database '\(db.name)' is also in preparedDatabases; list it once")
            }
        }
        for user in spec.users where seen[user.name] != nil {
            users?.fail("user '\(user.name)' is also a role of preparedDatabases.\(seen[user.name]!); rename it "
                        + "(the upstream operator lets the prepared role win)")
        }
    }

    static func isRoleName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, s.count <= 63, ("a"..."z").contains(f) || f == "_" else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    static func isParameterName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, ("a"..."z").contains(f) || f == "_" else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "." }
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
