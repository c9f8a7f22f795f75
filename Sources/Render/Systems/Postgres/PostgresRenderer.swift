import ClusterSpecs
import Crypto

/// PostgreSQL with Patroni (Spilo), as the Zalando operator renders it: credentials Secrets
/// (created once, never overwritten), the Spilo configuration, the pods' ServiceAccount and Role
/// for Patroni's Kubernetes DCS, master and replica Services, a PodDisruptionBudget on the
/// master, and an `OnDelete` StatefulSet that cairn rotates replicas first, primary last.
enum PostgresRenderer {
    /// Annotation on a rendered Secret naming the keys cairn generates when it creates the Secret.
    static let generatedKeysAnnotation = "cairn.dev/generated-keys"

    /// Parameters Spilo keeps in the local postgresql.conf; all others go to Patroni's DCS.
    static func isLocalParameter(_ name: String) -> Bool {
        ["archive_command", "shared_buffers", "logging_collector", "shared_preload_libraries",
         "pg_stat_statements.track_utility"].contains(name)
            || name.hasPrefix("log_") || name.hasPrefix("ssl") || name.hasPrefix("bg_mon.") || name.hasPrefix("extwlist.")
    }

    static func render(_ spec: PostgresSpec, _ cluster: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        let c = cluster.name
        let selector = ["application": "spilo", "cluster-name": c]
        var labels = selector
        labels["team"] = spec.teamId
        labels["app.kubernetes.io/name"] = "postgresql"
        labels["app.kubernetes.io/instance"] = c
        var objects: [RenderedObject] = []

        // Patroni reads and writes its leader and config ConfigMaps, Endpoints and pod labels.
        let account = "\(c)-patroni"
        let verbs: [JSONValue] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        objects += Kube.serviceAccountWithRole(account, cluster, labels: labels, rules: [
            ["apiGroups": [""], "resources": ["configmaps", "endpoints"], "verbs": .array(verbs)],
            ["apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "patch", "update", "watch"]],
            ["apiGroups": [""], "resources": ["services"], "verbs": ["create"]],
        ])

        for user in ["postgres", "standby"] + PostgresRoles.roles(spec).filter(\.hasSecret).map(\.name) {
            objects.append(RenderedObject(body: [
                "apiVersion": "v1", "kind": "Secret",
                "metadata": Kube.metadata(PostgresSpec.secretName(user: user, cluster: c), cluster, labels: labels,
                                          annotations: [generatedKeysAnnotation: "password"]),
                "type": "Opaque",
                "data": ["username": .string(Kube.base64(user))],
            ], stage: .secrets, createOnly: true))
        }

        let configName = "\(c)-spilo"
        objects.append(Kube.configMap(configName, cluster, labels: labels,
                                      data: [("SPILO_CONFIGURATION", spiloConfiguration(spec).canonicalJSON())]))

        let ports = [Kube.servicePort("postgresql", 5432)]
        let ranges = spec.allowedSourceRanges.isEmpty ? ["127.0.0.1/32"] : spec.allowedSourceRanges
        for (name, role, lb, own) in [(c, "master", spec.enableMasterLoadBalancer, spec.masterServiceAnnotations),
                                      ("\(c)-repl", "replica", spec.enableReplicaLoadBalancer, spec.replicaServiceAnnotations)] {
            var roleSelector = selector
            roleSelector["spilo-role"] = role
            var roleLabels = labels
            roleLabels["spilo-role"] = role
            let annotations = spec.serviceAnnotations.merging(own) { _, specific in specific }
            if let nodePort = role == "master" ? spec.masterNodePort : spec.replicaNodePort {
                objects.append(Kube.nodePortService(name, cluster, labels: roleLabels, selector: roleSelector, ports: ports,
                                                    nodePort: nodePort == 0 ? nil : nodePort, annotations: annotations))
                continue
            }
            objects.append(lb
                ? Kube.loadBalancerService(name, cluster, labels: roleLabels, selector: roleSelector, ports: ports, sourceRanges: ranges,
                                           annotations: annotations)
                : Kube.clusterIPService(name, cluster, labels: roleLabels, selector: roleSelector, ports: ports, annotations: annotations))
        }
        var masterSelector = selector
        masterSelector["spilo-role"] = "master"
        objects.append(Kube.podDisruptionBudget("postgres-\(c)-pdb", cluster, labels: labels, selector: masterSelector,
                                                .minAvailable(1), options: options))

        let superuserSecret = PostgresSpec.secretName(user: "postgres", cluster: c)
        let standbySecret = PostgresSpec.secretName(user: "standby", cluster: c)
        var container = Kube.Container(name: "postgres", image: spec.dockerImage)
        container.ports = [Kube.port("patroni", 8008), Kube.port("postgresql", 5432), Kube.port("pod-admin", 8080)]
        container.env = [
            Kube.env("SCOPE", c),
            Kube.env("PGROOT", "/home/postgres/pgdata/pgroot"),
            Kube.envField("POD_IP", "status.podIP"),
            Kube.envField("POD_NAMESPACE", "metadata.namespace"),
            Kube.env("PGUSER_SUPERUSER", "postgres"),
            Kube.env("KUBERNETES_SCOPE_LABEL", "cluster-name"),
            Kube.env("KUBERNETES_ROLE_LABEL", "spilo-role"),
            Kube.envSecret("PGPASSWORD_SUPERUSER", secret: superuserSecret, key: "password"),
            Kube.env("PGUSER_STANDBY", "standby"),
            Kube.envSecret("PGPASSWORD_STANDBY", secret: standbySecret, key: "password"),
            Kube.env("PGVERSION", String(spec.version)),
            Kube.envConfigMap("SPILO_CONFIGURATION", configMap: configName, key: "SPILO_CONFIGURATION"),
            Kube.env("DCS_ENABLE_KUBERNETES_API", "true"),
            Kube.env("KUBERNETES_LABELS", JSONValue.sortedStrings([("application", "spilo")]).canonicalJSON()),
            Kube.env("KUBERNETES_USE_CONFIGMAPS", "true"),
        ]
        container.resources = spec.resources
        container.volumeMounts = [Kube.mount("pgdata", "/home/postgres/pgdata")] + (spec.enableShmVolume ? [Kube.mount("dshm", "/dev/shm")] : [])
        // The spec's own variables after the operator's; one by a name already there (ignoring
        // case) is dropped, and so are the ones after it by a name the spec took, as upstream.
        append(spec.env, to: &container.env)
        if let standby = spec.standby {
            if let host = standby.host {
                append([Kube.env("STANDBY_HOST", host)], to: &container.env)
                if let port = standby.port { append([Kube.env("STANDBY_PORT", port)], to: &container.env) }
                if let slot = standby.primarySlotName { append([Kube.env("STANDBY_PRIMARY_SLOT_NAME", slot)], to: &container.env) }
            }
            if let archive = standby.walArchive {
                append([Kube.env(archive.variable, archive.path), Kube.env("STANDBY_METHOD", "STANDBY_WITH_WALE"),
                        // Empty: set, so Spilo does not put its own scope prefix before the path
                        // (the API server keeps an empty value as no value, so none is written).
                        ["name": "STANDBY_WAL_BUCKET_SCOPE_PREFIX"]], to: &container.env)
            }
        }
        container.envFrom = spec.envFrom
        container.livenessProbe = spec.livenessProbe.map(Kube.userProbe)
        if let tls = spec.tls {
            append([Kube.env("SSL_CERTIFICATE_FILE", tls.certificateFile), Kube.env("SSL_PRIVATE_KEY_FILE", tls.privateKeyFile)]
                + (tls.caFile.map { [Kube.env("SSL_CA_FILE", $0)] } ?? []), to: &container.env)
            container.volumeMounts.append(Kube.mount("tls", "/tls"))
            if tls.caSecretName != nil { container.volumeMounts.append(Kube.mount("tlsca", "/tlsca")) }
        }
        container.readinessProbe = Kube.httpProbe(path: "/readiness", port: 8008, initialDelay: 6, period: 10, timeout: 5)

        var pod = Kube.PodSpec(containers: [container])
        pod.volumes = spec.enableShmVolume ? [["name": "dshm", "emptyDir": ["medium": "Memory"]]] : []
        // Read by Spilo's postgres user through the pod's group (fsGroup 103), as upstream: 0640.
        if let tls = spec.tls {
            pod.volumes.append(["name": "tls", "secret": ["secretName": .string(tls.secretName), "defaultMode": 0o640]])
            if let ca = tls.caSecretName { pod.volumes.append(["name": "tlsca", "secret": ["secretName": .string(ca), "defaultMode": 0o640]]) }
        }
        // Sidecars get what the upstream operator gives them: the pod's name and namespace, the
        // superuser's name and password, and the data volume at Spilo's path.
        let sidecarEnv = [Kube.envField("POD_NAME", "metadata.name"), Kube.envField("POD_NAMESPACE", "metadata.namespace"),
                          Kube.env("POSTGRES_USER", "postgres"), Kube.envSecret("POSTGRES_PASSWORD", secret: superuserSecret, key: "password")]
        pod.extraContainers = spec.sidecars.map { sidecar in
            var c = sidecar.objectValue ?? JSONObject()
            // The operator's four first; a variable of the spec's own by one of their names
            // (ignoring case) is dropped, as the operator drops it.
            let given = Set(sidecarEnv.compactMap { $0["name"]?.stringValue?.lowercased() })
            let own = (c["env"]?.arrayValue ?? []).filter { !given.contains($0["name"]?.stringValue?.lowercased() ?? "") }
            c["env"] = .array(sidecarEnv + own)
            var mounts = c["volumeMounts"]?.arrayValue ?? []
            if !mounts.contains(where: { $0["name"] == "pgdata" }) { mounts.append(Kube.mount("pgdata", "/home/postgres/pgdata")) }
            c["volumeMounts"] = .array(mounts)
            return Kube.userContainer(.object(c))
        }
        pod.extraInitContainers = spec.initContainers.map(Kube.userContainer)
        // additionalVolumes: in the pod, and mounted where their targets say (`all`: every
        // container, the sidecars too).
        for v in spec.additionalVolumes {
            var volume = v.source.objectValue ?? JSONObject()
            volume["name"] = .string(v.name)
            pod.volumes.append(.object(JSONObject([(key: "name", value: .string(v.name))] + volume.entries.filter { $0.key != "name" })))
            var mount: JSONObject = ["name": .string(v.name), "mountPath": .string(v.mountPath)]
            if let subPath = v.subPath { mount[v.isSubPathExpr ? "subPathExpr" : "subPath"] = .string(subPath) }
            let all = v.targetContainers.contains("all")
            if all || v.targetContainers.contains("postgres") { pod.containers[0].volumeMounts.append(.object(mount)) }
            pod.extraContainers = pod.extraContainers.map { sidecar in
                guard var c = sidecar.objectValue, let name = c["name"]?.stringValue, all || v.targetContainers.contains(name) else { return sidecar }
                c["volumeMounts"] = .array((c["volumeMounts"]?.arrayValue ?? []) + [.object(mount)])
                return .object(c)
            }
        }
        pod.serviceAccountName = account
        pod.terminationGracePeriodSeconds = 300
        // Spilo runs PostgreSQL as uid 101 in group 103: the volume must be writable by that group.
        pod.securityContext = ["fsGroup": 103]
        pod.tolerations = spec.tolerations
        if let nodeAffinity = spec.nodeAffinity { pod.affinity = ["nodeAffinity": nodeAffinity] }
        pod.priorityClassName = spec.priorityClassName
        if let scheduler = spec.schedulerName { pod.schedulerName = scheduler }
        pod.topologySpreadConstraints = spec.topologySpreadConstraints

        var podLabels = selector
        podLabels["app.kubernetes.io/name"] = "postgresql"
        podLabels["app.kubernetes.io/instance"] = c
        var sts = Kube.StatefulSet(name: c, cluster: cluster, labels: labels, selector: selector, podLabels: podLabels,
                                   podAnnotations: spec.podAnnotations, replicas: spec.numberOfInstances,
                                   serviceName: c, pod: pod)
        sts.updateStrategy = .onDelete
        sts.volumeClaimTemplates = [Kube.volumeClaimTemplate("pgdata", size: spec.volumeSize, storageClass: spec.storageClass,
                                                             labels: selector)]
        objects.append(sts.object)
        // A standby replicates its roles and databases from its source, and is read-only.
        if !PostgresRoles.isEmpty(spec), spec.standby == nil { objects += sqlJob(spec, cluster) }
        if let pooler = spec.pooler {
            if pooler.master { objects += poolerObjects(spec, pooler, cluster, role: "master") }
            if pooler.replica { objects += poolerObjects(spec, pooler, cluster, role: "replica") }
        }
        return objects
    }

    /// Appends variables whose names (ignoring case) are not there yet: the upstream
    /// operator's `appendEnvVars`.
    static func append(_ vars: [JSONValue], to env: inout [JSONValue]) {
        for v in vars {
            let name = v["name"]?.stringValue?.lowercased() ?? ""
            if !env.contains(where: { $0["name"]?.stringValue?.lowercased() == name }) { env.append(v) }
        }
    }

    /// The pooler's name for a role: `<cluster>-pooler`, `<cluster>-pooler-repl`.
    static func poolerName(_ cluster: String, role: String) -> String {
        role == "master" ? "\(cluster)-pooler" : "\(cluster)-pooler-repl"
    }

    /// The upstream operator's connection pooler for one role: a Deployment of its PgBouncer
    /// image in front of the role's Service, and a Service of its own. PgBouncer logs in as the
    /// pooler's role (its credentials Secret) and looks the other roles' password verifiers up
    /// with `<schema>.user_lookup` (the roles Job makes the role and the function). Upstream
    /// hands PgBouncer its own password in a Secret `<name>-u` it writes from the password it
    /// generated; cairn never reads a Secret's value, so the container writes that file from its
    /// environment before it starts the image's entrypoint.
    static func poolerObjects(_ spec: PostgresSpec, _ pooler: PostgresSpec.Pooler, _ cluster: ClusterMetadata,
                              role: String) -> [RenderedObject] {
        let c = cluster.name
        let name = poolerName(c, role: role)
        let selector = ["application": "db-connection-pooler", "cluster-name": c, "connection-pooler": name]
        var labels = selector
        labels["team"] = spec.teamId
        labels["app.kubernetes.io/name"] = "postgresql"
        labels["app.kubernetes.io/component"] = "pooler"
        var podLabels = labels
        podLabels["spilo-role"] = role
        let secret = PostgresSpec.secretName(user: pooler.user, cluster: c)

        var container = Kube.Container(name: "connection-pooler", image: pooler.image)
        container.command = ["/bin/sh", "-c", poolerStart]
        container.env = [
            Kube.env("PGHOST", role == "master" ? c : "\(c)-repl"),
            Kube.env("PGPORT", "5432"),
            Kube.envSecret("PGUSER", secret: secret, key: "username"),
            Kube.env("PGSCHEMA", pooler.schema),
            Kube.envSecret("PGPASSWORD", secret: secret, key: "password"),
            Kube.env("CONNECTION_POOLER_PORT", "5432"),
            Kube.env("CONNECTION_POOLER_MODE", pooler.mode),
            Kube.env("CONNECTION_POOLER_DEFAULT_SIZE", String(pooler.defaultPoolSize)),
            Kube.env("CONNECTION_POOLER_MIN_SIZE", String(pooler.minPoolSize)),
            Kube.env("CONNECTION_POOLER_RESERVE_SIZE", String(pooler.minPoolSize)),
            Kube.env("CONNECTION_POOLER_MAX_CLIENT_CONN", "10000"),
            Kube.env("CONNECTION_POOLER_MAX_DB_CONN", String(pooler.maxDBConnectionsPerInstance)),
        ]
        container.ports = [Kube.port("pgbouncer", 5432)]
        container.resources = pooler.resources
        container.readinessProbe = Kube.tcpProbe(port: 5432)
        container.securityContext = ["allowPrivilegeEscalation": false]
        var pod = Kube.PodSpec(containers: [container])
        if let tls = spec.tls {
            pod.containers[0].env += [Kube.env("CONNECTION_POOLER_CLIENT_TLS_CRT", tls.certificateFile),
                                      Kube.env("CONNECTION_POOLER_CLIENT_TLS_KEY", tls.privateKeyFile)]
                + (tls.caFile.map { [Kube.env("CONNECTION_POOLER_CLIENT_CA_FILE", $0)] } ?? [])
            pod.containers[0].volumeMounts = [Kube.mount("tls", "/tls")]
            pod.volumes = [["name": "tls", "secret": ["secretName": .string(tls.secretName), "defaultMode": 0o640]]]
            if let ca = tls.caSecretName {
                pod.containers[0].volumeMounts.append(Kube.mount("tlsca", "/tlsca"))
                pod.volumes.append(["name": "tlsca", "secret": ["secretName": .string(ca), "defaultMode": 0o640]])
            }
        }
        pod.terminationGracePeriodSeconds = 300
        // PgBouncer's image user and group, as upstream.
        pod.securityContext = ["runAsUser": 100, "runAsGroup": 101]
        pod.tolerations = spec.tolerations
        if let nodeAffinity = spec.nodeAffinity { pod.affinity = ["nodeAffinity": nodeAffinity] }

        var template: JSONObject = ["labels": .sortedStrings(Array(podLabels))]
        if !spec.podAnnotations.isEmpty { template["annotations"] = .sortedStrings(Array(spec.podAnnotations)) }
        let deployment: JSONValue = [
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": Kube.metadata(name, cluster, labels: labels),
            "spec": [
                "replicas": .int(pooler.instances),
                "selector": ["matchLabels": .sortedStrings(Array(selector))],
                "template": ["metadata": .object(template), "spec": pod.json],
            ],
        ]
        var objects = [RenderedObject(body: deployment, stage: .workloads)]

        let ports = [Kube.servicePort(name.count <= 63 ? name : "postgresql", 5432)]
        let serviceSelector = ["connection-pooler": name]
        let own = role == "master" ? spec.masterServiceAnnotations : spec.replicaServiceAnnotations
        let annotations = spec.serviceAnnotations.merging(own) { _, specific in specific }
        if let nodePort = role == "master" ? pooler.masterNodePort : pooler.replicaNodePort {
            objects.append(Kube.nodePortService(name, cluster, labels: selector, selector: serviceSelector, ports: ports,
                                                nodePort: nodePort == 0 ? nil : nodePort, annotations: annotations))
        } else if role == "master" ? pooler.masterLoadBalancer : pooler.replicaLoadBalancer {
            objects.append(Kube.loadBalancerService(name, cluster, labels: selector, selector: serviceSelector, ports: ports,
                                                    sourceRanges: spec.allowedSourceRanges.isEmpty ? ["127.0.0.1/32"] : spec.allowedSourceRanges,
                                                    annotations: annotations))
        } else {
            objects.append(Kube.clusterIPService(name, cluster, labels: selector, selector: serviceSelector, ports: ports,
                                                 annotations: annotations))
        }
        return objects
    }

    /// The pooler container's command: PgBouncer's own password into its auth file (upstream
    /// mounts it from a Secret it writes), double quotes doubled as PgBouncer reads them, then
    /// the image's entrypoint.
    static let poolerStart = """
    set -eu
    umask 077
    quoted() { printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"; }
    printf '%s %s\\n' "$(quoted "$PGUSER")" "$(quoted "$PGPASSWORD")" > /etc/pgbouncer/userlist.txt
    exec /bin/sh /entrypoint.sh
    """

    /// The roles and databases inside PostgreSQL: a ConfigMap `<name>-sql` with the script
    /// (`PostgresRoles`), and a Job that runs it against the master with Spilo's psql. A Job's
    /// pod template cannot change, so its name carries a hash of its spec: a changed script
    /// gives a new Job, and the old one is pruned. Its pods carry none of Spilo's labels, so no
    /// Service, PodDisruptionBudget or Patroni ever takes them for members of the cluster.
    static func sqlJob(_ spec: PostgresSpec, _ cluster: ClusterMetadata) -> [RenderedObject] {
        let c = cluster.name
        let labels = ["app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": c, "app.kubernetes.io/component": "sql"]
        var data = [("roles.sql", PostgresRoles.script(spec, cluster: cluster)), ("verifiers.py", PostgresRoles.verifiers)]
        if let pooler = spec.pooler { data.append(("pooler.sql", PostgresRoles.poolerScript(pooler))) }

        var container = Kube.Container(name: "sql", image: spec.dockerImage)
        container.command = ["/bin/sh", "-c", PostgresRoles.run + (spec.pooler == nil ? "" : PostgresRoles.runPooler)]
        container.env = [
            Kube.env("PGHOST", c), Kube.env("PGPORT", "5432"), Kube.env("PGUSER", "postgres"), Kube.env("PGDATABASE", "postgres"),
            Kube.env("PGCONNECT_TIMEOUT", "10"),
            Kube.envSecret("PGPASSWORD", secret: PostgresSpec.secretName(user: "postgres", cluster: c), key: "password"),
            Kube.env("PASSWORD_ENCRYPTION", spec.parameters["password_encryption"] ?? "scram-sha-256"),
        ] + PostgresRoles.roles(spec).filter(\.hasSecret).map { role in
            Kube.envSecret(PostgresRoles.passwordEnvPrefix + role.name, secret: PostgresSpec.secretName(user: role.name, cluster: c),
                           key: "password")
        }
        container.volumeMounts = [Kube.mount("sql", "/etc/cairn/sql", readOnly: true)]
        container.resources = ResourceRequirements(requests: ["cpu": try! Quantity(parsing: "10m"), "memory": try! Quantity(parsing: "64Mi")],
                                                   limits: ["memory": try! Quantity(parsing: "256Mi")])
        // Spilo's postgres user; psql and python3 need nothing more.
        container.securityContext = ["allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 101]
        // Each pod waits up to 5 minutes for the master itself; then the Job controller starts
        // another after 10 s, 20 s, ... (about 40 minutes for the 7 pods).
        return Kube.scriptJob(prefix: "\(c.prefix(48))-sql-", cluster, labels: labels, files: data, volume: "sql",
                              container: container, backoffLimit: 6)
    }

    /// The `SPILO_CONFIGURATION` document: local parameters and pg_hba for postgresql.conf, the
    /// rest as bootstrap DCS settings.
    static func spiloConfiguration(_ spec: PostgresSpec) -> JSONValue {
        var local = JSONObject()
        var dcsParameters = JSONObject()
        for (k, v) in spec.parameters.sorted(by: { $0.key < $1.key }) {
            if isLocalParameter(k) { local[k] = .string(v) } else { dcsParameters[k] = .string(v) }
        }
        var postgresql: JSONObject = ["parameters": .object(local)]
        if !spec.patroni.pgHba.isEmpty { postgresql["pg_hba"] = .array(spec.patroni.pgHba.map { .string($0) }) }
        var dcs = JSONObject()
        let p = spec.patroni
        if let v = p.ttl { dcs["ttl"] = .int(v) }
        if let v = p.loopWait { dcs["loop_wait"] = .int(v) }
        if let v = p.retryTimeout { dcs["retry_timeout"] = .int(v) }
        if let v = p.maximumLagOnFailover { dcs["maximum_lag_on_failover"] = .int(v) }
        if let v = p.synchronousMode { dcs["synchronous_mode"] = .bool(v) }
        if let v = p.synchronousModeStrict { dcs["synchronous_mode_strict"] = .bool(v) }
        if let v = p.synchronousNodeCount { dcs["synchronous_node_count"] = .int(v) }
        if let v = p.failsafeMode { dcs["failsafe_mode"] = .bool(v) }
        dcs["postgresql"] = ["parameters": .object(dcsParameters)]
        return [
            "postgresql": .object(postgresql),
            "bootstrap": [
                "initdb": .array(initdb(p.initdb)),
                "dcs": .object(dcs),
            ],
        ]
    }

    /// initdb's options that take no value: the upstream operator writes them bare when set to
    /// exactly "true".
    static let initdbFlags: Set<String> = ["data-checksums", "debug", "no-locale", "noclean", "nosync", "sync-only"]

    /// Spilo's initdb options with the spec's, as the upstream operator merges them: an option
    /// already there takes the spec's value where it stands, a flag is written bare, others
    /// are `{name: value}` after the defaults, by name. (cairn's defaults also turn data
    /// checksums on, which the operator's do not; changing that would restart every pod.)
    static func initdb(_ options: [String: String]) -> [JSONValue] {
        var out: [JSONValue] = [["auth-host": "scram-sha-256"], ["auth-local": "trust"], "data-checksums"]
        for (key, value) in options.sorted(by: { $0.key < $1.key }) {
            let flag = initdbFlags.contains(key) && value == "true"
            let existing = out.firstIndex { $0.stringValue == key || $0.objectValue?.keys.contains(key) == true }
            let entry: JSONValue = flag ? .string(key) : .object(JSONObject([(key: key, value: .string(value))]))
            if let existing { out[existing] = entry } else { out.append(entry) }
        }
        return out
    }
}
