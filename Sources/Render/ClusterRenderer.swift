public import ClusterSpecs
import Crypto

/// The objects of one cluster, in apply order.
public struct RenderedCluster: Sendable, Hashable {
    public let spec: ClusterSpec
    /// The system it is: its rollout policy, its scale rules.
    package let system: any ClusterSystem.Type
    public let objects: [RenderedObject]
    /// What keeps the valid spec from being rendered here (something cairn's environment must
    /// give, e.g. its own image): the cluster is not applied, and these say what to set.
    public var problems: [SpecError] = []

    public static func == (a: RenderedCluster, b: RenderedCluster) -> Bool {
        a.spec == b.spec && a.objects == b.objects && a.problems == b.problems && ObjectIdentifier(a.system) == ObjectIdentifier(b.system)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(spec)
        hasher.combine(objects)
    }
}

/// Turns cluster specs into the Kubernetes objects they need. Pure: the same specs and options
/// always give the same objects, whatever the key order of the input files.
public enum ClusterRenderer {
    /// Renders one cluster with its system: its objects in apply order, every pod template
    /// stamped with the hash of the configuration its pods read.
    /// - Parameter packed: keep the objects deflated (`RenderedObject.packed`): for a process
    ///   that holds them for long (`cairn run`); a command that renders once and exits spends
    ///   the CPU for nothing.
    package static func render(_ spec: ClusterSpec, options: RenderOptions = RenderOptions(),
                               systems: SystemRegistry = .standard, packed: Bool = false) -> RenderedCluster {
        guard let system = systems.system(for: spec) else {
            preconditionFailure("no system for \(spec.apiVersion) \(spec.kind): specs are decoded with the same registry")
        }
        let objects = system.render(any: spec.system, spec.metadata, options: options)
        // The documents beside the cluster read no configuration of its pods: they are added
        // after the hashes are stamped.
        let companions = spec.companions.map { companion($0, spec.metadata) }
        // Kept deflated against the first object of the same system and kind this process
        // rendered: one cluster's objects differ from another's in names and a few values.
        let kept = stagedOrder(stampConfigHashes(objects) + companions).map {
            packed ? $0.packed(dictionary: spec.apiVersion + " " + spec.kind + " " + $0.apiVersion + " " + $0.kind) : $0.withoutTree
        }
        var rendered = RenderedCluster(spec: spec, system: system, objects: kept)
        rendered.problems = system.renderProblems(any: spec.system, spec.metadata, options: options).map {
            SpecError(file: spec.file, location: $0.location, path: $0.path, message: $0.message)
        }
        return rendered
    }

    /// A rendered cluster of these objects, as `render` made them for this spec in an earlier
    /// run (`RenderCache`, which keeps only renderings without problems).
    static func assemble(_ spec: ClusterSpec, objects: [RenderedObject], systems: SystemRegistry) -> RenderedCluster {
        guard let system = systems.system(for: spec) else {
            preconditionFailure("no system for \(spec.apiVersion) \(spec.kind): specs are decoded with the same registry")
        }
        return RenderedCluster(spec: spec, system: system, objects: objects)
    }

    /// A document beside the cluster, as written, with cairn's inventory labels added (so that it
    /// is listed, planned and pruned with the cluster), in its kind's stage.
    static func companion(_ c: CompanionObject, _ cluster: ClusterMetadata) -> RenderedObject {
        var body = c.body.objectValue ?? JSONObject()
        var metadata = body["metadata"]?.objectValue ?? JSONObject()
        var labels = metadata["labels"]?.objectValue ?? JSONObject()
        labels["app.kubernetes.io/managed-by"] = .string(Kube.managedBy)
        labels[Kube.clusterLabel] = .string(cluster.name)
        metadata["labels"] = .object(labels.sortedByKey())
        body["metadata"] = .object(metadata)
        // A Service port's protocol, as the API server defaults it: server-side apply keys ports
        // by port and protocol, and servers before 1.22 refuse a port without one.
        if c.kind == "Service", var spec = body["spec"]?.objectValue, let ports = spec["ports"]?.arrayValue {
            spec["ports"] = .array(ports.map { port in
                guard var p = port.objectValue, p["protocol"] == nil else { return port }
                p["protocol"] = "TCP"
                return .object(p)
            })
            body["spec"] = .object(spec)
        }
        let stage = CompanionObject.kinds[c.kind].flatMap { ApplyStage(rawValue: $0.stage) } ?? .services
        return RenderedObject(body: .object(body), stage: stage)
    }

    /// The objects of several clusters in apply order: every cluster's Secrets and ConfigMaps
    /// before any workload, and within a stage the clusters' order.
    public static func applyOrder(_ clusters: [RenderedCluster]) -> [RenderedObject] {
        var out: [RenderedObject] = []
        out.reserveCapacity(clusters.reduce(0) { $0 + $1.objects.count })
        // Each cluster's objects are in stage order already: one pass per stage over them,
        // linear, no sort of 100,000 objects.
        for stage in ApplyStage.allCases {
            for cluster in clusters {
                for o in cluster.objects where o.stage == stage { out.append(o) }
            }
        }
        return out
    }

    /// A stable sort by stage: within a stage, the given order.
    private static func stagedOrder(_ objects: [RenderedObject]) -> [RenderedObject] {
        var out: [RenderedObject] = []
        out.reserveCapacity(objects.count)
        for stage in ApplyStage.allCases {
            for o in objects where o.stage == stage { out.append(o) }
        }
        return out
    }

    /// Renders several clusters. Two clusters that would render the same object (for example an
    /// Atomix cluster `orders` with group `db`, and a cluster named `orders-db`) are reported and
    /// neither is rendered.
    ///
    /// - Returns: The rendered clusters in input order, and errors for clusters that collide.
    public static func renderAll(_ specs: [ClusterSpec], options: RenderOptions = RenderOptions())
        -> (clusters: [RenderedCluster], errors: [SpecError])
    {
        let rendered = specs.map { render($0, options: options) }
        let colliding = collisions(rendered)
        let kept = rendered.filter { !colliding.identities.contains($0.spec.identity) }
        return (kept, colliding.errors)
    }

    /// Clusters that would render an object another cluster renders too, with an error on each
    /// naming the objects: none of them is valid.
    public static func collisions(_ rendered: [RenderedCluster]) -> (identities: Set<String>, errors: [SpecError]) {
        var owner: [String: Int] = [:]
        owner.reserveCapacity(rendered.reduce(0) { $0 + $1.objects.count })
        var colliding: [Int: [String]] = [:]
        for (i, cluster) in rendered.enumerated() {
            for object in cluster.objects {
                let key = object.reference
                if let j = owner[key], j != i {
                    colliding[i, default: []].append("\(key) (also rendered for \(rendered[j].spec.file))")
                    colliding[j, default: []].append("\(key) (also rendered for \(cluster.spec.file))")
                } else {
                    owner[key] = i
                }
            }
        }
        var errors: [SpecError] = []
        // A document beside a cluster named like an object cairn renders for that cluster.
        var selfColliding: Set<Int> = []
        for (i, cluster) in rendered.enumerated() where !cluster.spec.companions.isEmpty {
            var count: [String: Int] = [:]
            for object in cluster.objects { count[object.reference, default: 0] += 1 }
            for c in cluster.spec.companions {
                let key = "\(c.kind)/\(cluster.spec.metadata.namespace)/\(c.name)"
                guard count[key, default: 0] > 1 else { continue }
                selfColliding.insert(i)
                errors.append(SpecError(file: cluster.spec.file, location: c.location, path: "",
                                        message: "\(c.kind) \(c.name) is an object cairn renders for cluster \(cluster.spec.identity) itself; "
                                            + "rename the document"))
            }
        }
        for (i, keys) in colliding {
            let spec = rendered[i].spec
            errors.append(SpecError(file: spec.file, location: spec.metadata.nameLocation, path: "metadata.name",
                                    message: "cluster \(spec.identity) would render objects another cluster renders too: "
                                        + "\(keys.joined(separator: ", ")); rename one of them"))
        }
        return (Set(colliding.keys.map { rendered[$0].spec.identity } + selfColliding.map { rendered[$0].spec.identity }), errors.sorted())
    }

    /// `sha256:<hex>` over the canonical JSON of `{configMapName: data}` for every ConfigMap the
    /// pod template reads (volumes, env and envFrom). Nothing else feeds it, so replicas,
    /// resources or labels never change it.
    public static func configHash(of podTemplate: JSONValue, configMaps: [String: JSONValue]) -> String {
        var read = JSONObject()
        for name in referencedConfigMaps(podTemplate).sorted() {
            read[name] = configMaps[name] ?? .null
        }
        let digest = SHA256.hash(data: JSONValue.object(read).canonicalJSONBytes())
        return "sha256:" + digest.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    static func referencedConfigMaps(_ template: JSONValue) -> Set<String> {
        var names: Set<String> = []
        let spec = template["spec"]
        for volume in spec?["volumes"]?.arrayValue ?? [] {
            if let n = volume["configMap", "name"]?.stringValue { names.insert(n) }
        }
        let containers = (spec?["containers"]?.arrayValue ?? []) + (spec?["initContainers"]?.arrayValue ?? [])
        for container in containers {
            for env in container["env"]?.arrayValue ?? [] {
                if let n = env["valueFrom", "configMapKeyRef", "name"]?.stringValue { names.insert(n) }
            }
            for from in container["envFrom"]?.arrayValue ?? [] {
                if let n = from["configMapRef", "name"]?.stringValue { names.insert(n) }
            }
        }
        return names
    }

    private static func stampConfigHashes(_ objects: [RenderedObject]) -> [RenderedObject] {
        var configMaps: [String: JSONValue] = [:]
        for o in objects where o.kind == "ConfigMap" { configMaps[o.name] = o.body["data"] ?? .null }
        return objects.map { object in
            guard object.kind == "StatefulSet", var body = object.body.objectValue,
                  var spec = body["spec"]?.objectValue, var template = spec["template"]?.objectValue else { return object }
            let hash = configHash(of: .object(template), configMaps: configMaps)
            var metadata = template["metadata"]?.objectValue ?? JSONObject()
            var annotations = metadata["annotations"]?.objectValue ?? JSONObject()
            annotations[ConfigHash.annotation] = .string(hash)
            metadata["annotations"] = .object(annotations.sortedByKey())
            template["metadata"] = .object(metadata)
            spec["template"] = .object(template)
            body["spec"] = .object(spec)
            var stamped = object
            stamped.body = .object(body)
            return stamped
        }
    }
}
