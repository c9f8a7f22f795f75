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
        objects.append(RenderedObject(body: [
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": Kube.metadata(account, cluster, labels: labels),
        ], stage: .access))
        let verbs: [JSONValue] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        objects.append(RenderedObject(body: [
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": Kube.metadata(account, cluster, labels: labels),
            "rules": [
                ["apiGroups": [""], "resources": ["configmaps", "endpoints"], "verbs": .array(verbs)],
                ["apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "patch", "update", "watch"]],
                ["apiGroups": [""], "resources": ["services"], "verbs": ["create"]],
            ],
        ], stage: .access))
        objects.append(RenderedObject(body: [
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": Kube.metadata(account, cluster, labels: labels),
            "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": .string(account)],
            "subjects": [["kind": "ServiceAccount", "name": .string(account), "namespace": .string(cluster.namespace)]],
        ], stage: .access))

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
        if let standby = spec.standby {
            container.env.append(Kube.env("STANDBY_HOST", standby.host))
            if let port = standby.port { container.env.append(Kube.env("STANDBY_PORT", port)) }
            if let slot = standby.primarySlotName { container.env.append(Kube.env("STANDBY_PRIMARY_SLOT_NAME", slot)) }
        }
        if let tls = spec.tls {
            container.env += [Kube.env("SSL_CERTIFICATE_FILE", tls.certificateFile), Kube.env("SSL_PRIVATE_KEY_FILE", tls.privateKeyFile)]
                + (tls.caFile.map { [Kube.env("SSL_CA_FILE", $0)] } ?? [])
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
        return objects
    }

    /// The roles and databases inside PostgreSQL: a ConfigMap `<name>-sql` with the script
    /// (`PostgresRoles`), and a Job that runs it against the master with Spilo's psql. A Job's
    /// pod template cannot change, so its name carries a hash of its spec: a changed script
    /// gives a new Job, and the old one is pruned. Its pods carry none of Spilo's labels, so no
    /// Service, PodDisruptionBudget or Patroni ever takes them for members of the cluster.
    static func sqlJob(_ spec: PostgresSpec, _ cluster: ClusterMetadata) -> [RenderedObject] {
        let c = cluster.name
        let labels = ["app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": c, "app.kubernetes.io/component": "sql"]
        let data = [("roles.sql", PostgresRoles.script(spec, cluster: cluster)), ("verifiers.py", PostgresRoles.verifiers)]

        var container = Kube.Container(name: "sql", image: spec.dockerImage)
        container.command = ["/bin/sh", "-c", PostgresRoles.run]
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
