import ClusterSpecs
import Crypto
import Foundation

/// Builders for the few Kubernetes kinds cairn renders, each in the form the API server stores
/// it (defaults written out, `protocol: TCP` on every port, explicit apiVersion/kind in
/// volumeClaimTemplates), so that an unchanged cluster diffs clean against the live objects.
enum Kube {
    static let managedBy = "cairn"
    static let clusterLabel = "cairn.dev/cluster"

    /// Object metadata: the cluster's identity labels plus the spec's own labels and annotations.
    /// A ServiceAccount, a Role of `rules` and the RoleBinding between them, all named
    /// `account`: what pods that talk to the API server run as.
    static func serviceAccountWithRole(_ account: String, _ cluster: ClusterMetadata, labels: [String: String],
                                       rules: [JSONValue]) -> [RenderedObject] {
        [
            RenderedObject(body: ["apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(account, cluster, labels: labels)],
                           stage: .access),
            RenderedObject(body: [
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": metadata(account, cluster, labels: labels), "rules": .array(rules),
            ], stage: .access),
            RenderedObject(body: [
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": metadata(account, cluster, labels: labels),
                "roleRef": ["apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": .string(account)],
                "subjects": [["kind": "ServiceAccount", "name": .string(account), "namespace": .string(cluster.namespace)]],
            ], stage: .access),
        ]
    }

    static func metadata(_ name: String, _ cluster: ClusterMetadata, labels: [String: String],
                         annotations: [String: String] = [:]) -> JSONValue {
        var all = cluster.labels
        for (k, v) in labels { all[k] = v }
        all["app.kubernetes.io/managed-by"] = managedBy
        // cairn's inventory: which cluster an object belongs to, read back by one LIST per kind
        // after any restart. Never on pod templates or volume claims, so children are never in it.
        all[clusterLabel] = cluster.name
        var notes = cluster.annotations
        for (k, v) in annotations { notes[k] = v }
        var o: JSONObject = ["name": .string(name), "namespace": .string(cluster.namespace)]
        o["labels"] = .sortedStrings(Array(all))
        if !notes.isEmpty { o["annotations"] = .sortedStrings(Array(notes)) }
        return .object(o)
    }

    static func port(_ name: String, _ number: Int) -> JSONValue {
        ["name": .string(name), "containerPort": .int(number), "protocol": "TCP"]
    }

    static func servicePort(_ name: String, _ number: Int) -> JSONValue {
        ["name": .string(name), "port": .int(number), "protocol": "TCP", "targetPort": .int(number)]
    }

    static func resources(_ r: ResourceRequirements) -> JSONValue {
        var o = JSONObject()
        if !r.limits.isEmpty { o["limits"] = .sortedStrings(r.limits.map { ($0.key, $0.value.description) }) }
        if !r.requests.isEmpty { o["requests"] = .sortedStrings(r.requests.map { ($0.key, $0.value.description) }) }
        return .object(o)
    }

    static func env(_ name: String, _ value: String) -> JSONValue {
        ["name": .string(name), "value": .string(value)]
    }

    static func envField(_ name: String, _ fieldPath: String) -> JSONValue {
        ["name": .string(name), "valueFrom": ["fieldRef": ["apiVersion": "v1", "fieldPath": .string(fieldPath)]]]
    }

    static func envSecret(_ name: String, secret: String, key: String) -> JSONValue {
        ["name": .string(name), "valueFrom": ["secretKeyRef": ["name": .string(secret), "key": .string(key)]]]
    }

    static func envConfigMap(_ name: String, configMap: String, key: String) -> JSONValue {
        ["name": .string(name), "valueFrom": ["configMapKeyRef": ["name": .string(configMap), "key": .string(key)]]]
    }

    static func userEnv(_ vars: [EnvVar]) -> [JSONValue] {
        vars.map { env($0.name, $0.value) }
    }

    static func httpProbe(path: String, port: Int, scheme: String = "HTTP", initialDelay: Int = 0, period: Int = 10, timeout: Int = 1,
                          failureThreshold: Int = 3) -> JSONValue {
        var o: JSONObject = [
            "httpGet": ["path": .string(path), "port": .int(port), "scheme": .string(scheme)],
        ]
        if initialDelay > 0 { o["initialDelaySeconds"] = .int(initialDelay) }
        o["timeoutSeconds"] = .int(timeout)
        o["periodSeconds"] = .int(period)
        o["successThreshold"] = 1
        o["failureThreshold"] = .int(failureThreshold)
        return .object(o)
    }

    static func tcpProbe(port: Int, initialDelay: Int = 0, period: Int = 10) -> JSONValue {
        var o: JSONObject = ["tcpSocket": ["port": .int(port)]]
        if initialDelay > 0 { o["initialDelaySeconds"] = .int(initialDelay) }
        o["timeoutSeconds"] = 1
        o["periodSeconds"] = .int(period)
        o["successThreshold"] = 1
        o["failureThreshold"] = 3
        return .object(o)
    }

    /// A probe from a spec, as written, with what the API server defaults in its stored form
    /// (so that an unchanged one diffs clean).
    static func userProbe(_ probe: JSONValue) -> JSONValue {
        guard var o = probe.objectValue else { return probe }
        for (key, value) in [("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)] where o[key] == nil {
            o[key] = .int(value)
        }
        if var get = o["httpGet"]?.objectValue, get["scheme"] == nil {
            get["scheme"] = "HTTP"
            o["httpGet"] = .object(get)
        }
        return .object(o)
    }

    static func imagePullPolicy(_ image: String) -> String {
        let last = image.split(separator: "/").last ?? ""
        if image.contains("@") { return "IfNotPresent" }
        return !last.contains(":") || last.hasSuffix(":latest") ? "Always" : "IfNotPresent"
    }

    struct Container {
        var name: String
        var image: String
        var command: [String] = []
        var args: [String] = []
        var ports: [JSONValue] = []
        var env: [JSONValue] = []
        var envFrom: [JSONValue] = []
        var resources = ResourceRequirements()
        var volumeMounts: [JSONValue] = []
        var volumeDevices: [JSONValue] = []
        var livenessProbe: JSONValue?
        var readinessProbe: JSONValue?
        var securityContext: JSONValue?

        var json: JSONValue {
            var o: JSONObject = ["name": .string(name), "image": .string(image)]
            if !command.isEmpty { o["command"] = .array(command.map { .string($0) }) }
            if !args.isEmpty { o["args"] = .array(args.map { .string($0) }) }
            if !ports.isEmpty { o["ports"] = .array(ports) }
            if !env.isEmpty { o["env"] = .array(env) }
            if !envFrom.isEmpty { o["envFrom"] = .array(envFrom) }
            o["resources"] = Kube.resources(resources)
            if !volumeMounts.isEmpty { o["volumeMounts"] = .array(volumeMounts) }
            if !volumeDevices.isEmpty { o["volumeDevices"] = .array(volumeDevices) }
            if let livenessProbe { o["livenessProbe"] = livenessProbe }
            if let readinessProbe { o["readinessProbe"] = readinessProbe }
            if let securityContext { o["securityContext"] = securityContext }
            o["terminationMessagePath"] = "/dev/termination-log"
            o["terminationMessagePolicy"] = "File"
            o["imagePullPolicy"] = .string(Kube.imagePullPolicy(image))
            return .object(o)
        }
    }

    /// A container from a spec, as written, with what the API server defaults in its stored
    /// form (so that an unchanged one diffs clean): the termination message settings, the pull
    /// policy by tag, empty resources, and TCP on its ports.
    static func userContainer(_ container: JSONValue) -> JSONValue {
        guard var c = container.objectValue else { return container }
        if c["terminationMessagePath"] == nil { c["terminationMessagePath"] = "/dev/termination-log" }
        if c["terminationMessagePolicy"] == nil { c["terminationMessagePolicy"] = "File" }
        if c["imagePullPolicy"] == nil, let image = c["image"]?.stringValue { c["imagePullPolicy"] = .string(imagePullPolicy(image)) }
        if c["resources"] == nil { c["resources"] = .object(JSONObject()) }
        if let ports = c["ports"]?.arrayValue {
            c["ports"] = .array(ports.map { port in
                guard var p = port.objectValue, p["protocol"] == nil else { return port }
                p["protocol"] = "TCP"
                return .object(p)
            })
        }
        return .object(c)
    }

    static func mount(_ name: String, _ path: String, readOnly: Bool = false) -> JSONValue {
        var o: JSONObject = ["name": .string(name), "mountPath": .string(path)]
        if readOnly { o["readOnly"] = true }
        return .object(o)
    }

    static func configMapVolume(_ name: String, configMap: String, items: [(key: String, path: String)] = [],
                                mode: Int = 420) -> JSONValue {
        var cm: JSONObject = ["name": .string(configMap)]
        if !items.isEmpty {
            cm["items"] = .array(items.map { ["key": .string($0.key), "path": .string($0.path)] })
        }
        cm["defaultMode"] = .int(mode)
        return ["name": .string(name), "configMap": .object(cm)]
    }

    static func secretVolume(_ name: String, secret: String, items: [(key: String, path: String)] = []) -> JSONValue {
        var source: JSONObject = ["secretName": .string(secret)]
        if !items.isEmpty {
            source["items"] = .array(items.map { ["key": .string($0.key), "path": .string($0.path)] })
        }
        source["defaultMode"] = 420
        return ["name": .string(name), "secret": .object(source)]
    }

    static func emptyDirVolume(_ name: String) -> JSONValue {
        ["name": .string(name), "emptyDir": [:]]
    }

    struct PodSpec {
        var containers: [Container]
        var initContainers: [Container] = []
        /// Containers from a spec, as written (`userContainer`), after cairn's own.
        var extraContainers: [JSONValue] = []
        var extraInitContainers: [JSONValue] = []
        var volumes: [JSONValue] = []
        var serviceAccountName: String?
        /// false: no container gets the service account's token unless it mounts one itself.
        var automountServiceAccountToken: Bool?
        var terminationGracePeriodSeconds = 30
        var securityContext = JSONObject()
        var nodeSelector: [String: String] = [:]
        var affinity: JSONValue?
        var tolerations: [JSONValue] = []
        var topologySpreadConstraints: [JSONValue] = []
        var hostNetwork = false
        var dnsPolicy = "ClusterFirst"
        var dnsConfig: JSONValue?
        var imagePullSecrets: [String] = []
        var priorityClassName: String?
        var schedulerName = "default-scheduler"

        var json: JSONValue {
            var o = JSONObject()
            let inits = initContainers.map(\.json) + extraInitContainers
            if !inits.isEmpty { o["initContainers"] = .array(inits) }
            o["containers"] = .array(containers.map(\.json) + extraContainers)
            if !volumes.isEmpty { o["volumes"] = .array(volumes) }
            o["restartPolicy"] = "Always"
            o["terminationGracePeriodSeconds"] = .int(terminationGracePeriodSeconds)
            o["dnsPolicy"] = .string(dnsPolicy)
            if let dnsConfig { o["dnsConfig"] = dnsConfig }
            if !imagePullSecrets.isEmpty { o["imagePullSecrets"] = .array(imagePullSecrets.map { ["name": .string($0)] }) }
            if let priorityClassName { o["priorityClassName"] = .string(priorityClassName) }
            if hostNetwork { o["hostNetwork"] = true }
            if !nodeSelector.isEmpty { o["nodeSelector"] = .sortedStrings(Array(nodeSelector)) }
            if let serviceAccountName {
                o["serviceAccountName"] = .string(serviceAccountName)
                o["serviceAccount"] = .string(serviceAccountName)
            }
            if let automountServiceAccountToken { o["automountServiceAccountToken"] = .bool(automountServiceAccountToken) }
            o["securityContext"] = .object(securityContext)
            if let affinity { o["affinity"] = affinity }
            o["schedulerName"] = .string(schedulerName)
            if !tolerations.isEmpty { o["tolerations"] = .array(tolerations) }
            if !topologySpreadConstraints.isEmpty { o["topologySpreadConstraints"] = .array(topologySpreadConstraints) }
            return .object(o)
        }
    }

    static func volumeClaimTemplate(_ name: String, size: Quantity, storageClass: String?,
                                    accessModes: [String] = ["ReadWriteOnce"], volumeMode: String = "Filesystem",
                                    labels: [String: String]) -> JSONValue {
        var spec: JSONObject = [
            "accessModes": .array(accessModes.map { .string($0) }),
            "resources": ["requests": ["storage": .string(size.description)]],
        ]
        if let storageClass { spec["storageClassName"] = .string(storageClass) }
        spec["volumeMode"] = .string(volumeMode)
        return [
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": ["name": .string(name), "labels": .sortedStrings(Array(labels))],
            "spec": .object(spec),
        ]
    }

    enum UpdateStrategy {
        case rollingUpdate
        case onDelete
    }

    struct StatefulSet {
        var name: String
        var cluster: ClusterMetadata
        var labels: [String: String]
        var selector: [String: String]
        var podLabels: [String: String]
        var podAnnotations: [String: String] = [:]
        var replicas: Int
        var serviceName: String
        var podManagementPolicy = "OrderedReady"
        var updateStrategy = UpdateStrategy.rollingUpdate
        var pod: PodSpec
        var volumeClaimTemplates: [JSONValue] = []

        var object: RenderedObject {
            var template: JSONObject = ["labels": .sortedStrings(Array(podLabels))]
            if !podAnnotations.isEmpty { template["annotations"] = .sortedStrings(Array(podAnnotations)) }
            var spec: JSONObject = [
                "replicas": .int(replicas),
                "selector": ["matchLabels": .sortedStrings(Array(selector))],
                "serviceName": .string(serviceName),
                "podManagementPolicy": .string(podManagementPolicy),
            ]
            switch updateStrategy {
            case .rollingUpdate: spec["updateStrategy"] = ["type": "RollingUpdate", "rollingUpdate": ["partition": 0]]
            case .onDelete: spec["updateStrategy"] = ["type": "OnDelete"]
            }
            spec["revisionHistoryLimit"] = 10
            spec["template"] = ["metadata": .object(template), "spec": pod.json]
            if !volumeClaimTemplates.isEmpty { spec["volumeClaimTemplates"] = .array(volumeClaimTemplates) }
            let body: JSONValue = [
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": Kube.metadata(name, cluster, labels: labels),
                "spec": .object(spec),
            ]
            return RenderedObject(body: body, stage: .workloads)
        }
    }

    /// A headless Service (DNS names for every pod, ready or not: gossip and Raft need them
    /// before the pods are Ready), or a ClusterIP Service for clients.
    static func headlessService(_ name: String, _ cluster: ClusterMetadata, labels: [String: String],
                                selector: [String: String], ports: [JSONValue]) -> RenderedObject {
        clusterIPService(name, cluster, labels: labels, selector: selector, ports: ports, headless: true)
    }

    static func clusterIPService(_ name: String, _ cluster: ClusterMetadata, labels: [String: String],
                                 selector: [String: String], ports: [JSONValue], headless: Bool = false,
                                 annotations: [String: String] = [:]) -> RenderedObject {
        var spec: JSONObject = ["type": "ClusterIP"]
        if headless {
            spec["clusterIP"] = "None"
            spec["publishNotReadyAddresses"] = true
        }
        spec["selector"] = .sortedStrings(Array(selector))
        spec["ports"] = .array(ports)
        spec["sessionAffinity"] = "None"
        let body: JSONValue = [
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name, cluster, labels: labels, annotations: annotations),
            "spec": .object(spec),
        ]
        return RenderedObject(body: body, stage: .services)
    }

    static func loadBalancerService(_ name: String, _ cluster: ClusterMetadata, labels: [String: String],
                                    selector: [String: String], ports: [JSONValue], sourceRanges: [String],
                                    className: String? = nil, annotations: [String: String] = [:]) -> RenderedObject {
        var spec: JSONObject = [
            "type": "LoadBalancer",
            "selector": .sortedStrings(Array(selector)),
            "ports": .array(ports),
            "sessionAffinity": "None",
            "externalTrafficPolicy": "Cluster",
        ]
        if !sourceRanges.isEmpty { spec["loadBalancerSourceRanges"] = .array(sourceRanges.map { .string($0) }) }
        if let className { spec["loadBalancerClass"] = .string(className) }
        let body: JSONValue = [
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name, cluster, labels: labels, annotations: annotations),
            "spec": .object(spec),
        ]
        return RenderedObject(body: body, stage: .loadBalancers)
    }

    /// A Service of type NodePort: the first port on `nodePort` when given, else one the API
    /// server picks.
    static func nodePortService(_ name: String, _ cluster: ClusterMetadata, labels: [String: String],
                                selector: [String: String], ports: [JSONValue], nodePort: Int?,
                                annotations: [String: String] = [:]) -> RenderedObject {
        var ports = ports
        if let nodePort, var first = ports.first?.objectValue {
            first["nodePort"] = .int(nodePort)
            ports[0] = .object(first)
        }
        let spec: JSONObject = [
            "type": "NodePort",
            "selector": .sortedStrings(Array(selector)),
            "ports": .array(ports),
            "sessionAffinity": "None",
            "externalTrafficPolicy": "Cluster",
        ]
        let body: JSONValue = [
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name, cluster, labels: labels, annotations: annotations),
            "spec": .object(spec),
        ]
        return RenderedObject(body: body, stage: .loadBalancers)
    }

    enum Disruption {
        case minAvailable(Int)
        case maxUnavailable(Int)
    }

    static func podDisruptionBudget(_ name: String, _ cluster: ClusterMetadata, labels: [String: String],
                                    selector: [String: String], _ disruption: Disruption,
                                    options: RenderOptions) -> RenderedObject {
        var spec = JSONObject()
        switch disruption {
        case .minAvailable(let n): spec["minAvailable"] = .int(n)
        case .maxUnavailable(let n): spec["maxUnavailable"] = .int(n)
        }
        spec["selector"] = ["matchLabels": .sortedStrings(Array(selector))]
        let body: JSONValue = [
            "apiVersion": .string(options.podDisruptionBudgetAPIVersion),
            "kind": "PodDisruptionBudget",
            "metadata": metadata(name, cluster, labels: labels),
            "spec": .object(spec),
        ]
        return RenderedObject(body: body, stage: .services)
    }

    /// A script run once per content: an immutable ConfigMap with its files, and a Job whose one
    /// container sees them in the volume `volume`. A Job's pod template cannot change, so both
    /// take one name, `prefix` and a hash of both: a changed script or container gives a new
    /// pair (the old one is pruned), and no Job ever runs another generation's files. Its pods
    /// carry only `labels`, so no Service or PodDisruptionBudget of the cluster takes them in.
    static func scriptJob(prefix: String, _ cluster: ClusterMetadata, labels: [String: String], files: [(String, String)],
                          volume: String, container: Container, extraVolumes: [JSONValue] = [], backoffLimit: Int) -> [RenderedObject] {
        var podSpec = PodSpec(containers: [container]).json.objectValue ?? JSONObject()
        // Never: a failed pod stays, so its log says why (OnFailure's pods are deleted when the
        // Job gives up).
        podSpec["restartPolicy"] = "Never"
        podSpec["automountServiceAccountToken"] = false
        // At most 63 characters: the Job controller puts its name in a label of the pods.
        let content = JSONValue.array([.sortedStrings(files), .object(podSpec)]).canonicalJSON()
        let digest = SHA256.hash(data: Array(content.utf8)).prefix(5)
        let name = prefix + digest.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        precondition(name.count <= 63, "a Job name of \(name.count) characters: \(name)")
        podSpec["volumes"] = .array([configMapVolume(volume, configMap: name)] + extraVolumes)

        var configMap = Self.configMap(name, cluster, labels: labels, data: files)
        if var body = configMap.body.objectValue {
            body["immutable"] = true
            configMap.body = .object(body)
        }
        let job = RenderedObject(body: [
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": metadata(name, cluster, labels: labels),
            "spec": [
                "backoffLimit": .int(backoffLimit),
                "template": ["metadata": ["labels": .sortedStrings(Array(labels))], "spec": .object(podSpec)],
            ],
        ], stage: .workloads)
        return [configMap, job]
    }

    static func configMap(_ name: String, _ cluster: ClusterMetadata, labels: [String: String],
                          data: [(String, String)]) -> RenderedObject {
        let body: JSONValue = [
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(name, cluster, labels: labels),
            "data": .sortedStrings(data),
        ]
        return RenderedObject(body: body, stage: .configuration)
    }

    static func base64(_ s: String) -> String {
        Data(s.utf8).base64EncodedString()
    }
}
