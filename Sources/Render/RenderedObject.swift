public import ClusterSpecs

/// When an object is applied relative to the others of a pass: what pods read first, workloads
/// next, externally reachable load balancers last.
public enum ApplyStage: Int, Sendable, Hashable, Comparable, CaseIterable {
    case access = 0          // ServiceAccount, Role, RoleBinding
    case secrets = 1
    case configuration = 2   // ConfigMaps
    case services = 3        // in-cluster Services and PodDisruptionBudgets
    case workloads = 4       // StatefulSets
    case loadBalancers = 5   // Services of type LoadBalancer

    public static func < (lhs: ApplyStage, rhs: ApplyStage) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One Kubernetes object a cluster needs, exactly as cairn applies it.
///
/// The object is kept as compact JSON in its own key order, in the daemon deflated once rendered
/// (`PackedJSON`, against the first object of its system and kind), and `body` parses it when
/// read: the daemon keeps every cluster's objects between passes, and a tree of `JSONValue`s
/// takes about three times the memory of its text (41 MB against 13 at 11,000 objects), the
/// text about eleven times its deflated form. A pass reads each object's body once; `jsonHash`
/// and `sameJSON` compare without parsing.
public struct RenderedObject: Sendable, Hashable {
    /// Every field in one box: a pass copies each object several times (in apply order, by
    /// reference, per cluster), and a copy is then one reference counted, not seven.
    private final class Storage: Sendable {
        let apiVersion: String
        let kind: String
        let namespace: String
        let name: String
        let stage: ApplyStage
        let createOnly: Bool
        let stored: PackedJSON?
        let hashed: Int
        let tree: JSONValue?
        /// The JSON where the render cache's file holds it (`init(cached:...)`): not copied,
        /// not hashed, unless something asks (a no-op pass never reads a verified object's).
        let cached: ArraySlice<UInt8>?

        init(apiVersion: String, kind: String, namespace: String, name: String, stage: ApplyStage, createOnly: Bool,
             stored: PackedJSON?, hashed: Int, tree: JSONValue?, cached: ArraySlice<UInt8>? = nil) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.namespace = namespace
            self.name = name
            self.stage = stage
            self.createOnly = createOnly
            self.stored = stored
            self.hashed = hashed
            self.tree = tree
            self.cached = cached
        }

        /// The same names, stage and flag, with other JSON.
        func with(stored: PackedJSON?, hashed: Int, tree: JSONValue?) -> Storage {
            Storage(apiVersion: apiVersion, kind: kind, namespace: namespace, name: name, stage: stage, createOnly: createOnly,
                    stored: stored, hashed: hashed, tree: tree)
        }
    }

    private var storage: Storage

    public var apiVersion: String { storage.apiVersion }
    public var kind: String { storage.kind }
    public var namespace: String { storage.namespace }
    public var name: String { storage.name }
    public var stage: ApplyStage { storage.stage }
    /// Created when missing and never updated afterwards (generated Secrets).
    public var createOnly: Bool { storage.createOnly }
    /// The JSON, packed once the object is rendered (`packed(dictionary:)`); nil while the
    /// renderer still works on the tree (it is written once, when the tree is dropped, rather
    /// than again each time the renderer changes the object: a StatefulSet's configuration hash).
    private var stored: PackedJSON? { storage.stored }
    /// `jsonHash`, kept with `stored`.
    private var hashed: Int { storage.hashed }
    /// The tree `json` was written from, while the renderer still works on the object (the
    /// configuration hashes read ConfigMaps and stamp StatefulSets): `body` is then not parsed
    /// again. `ClusterRenderer` drops it (`withoutTree`, `packed(dictionary:)`) before a cluster is kept.
    private var tree: JSONValue? { storage.tree }

    /// The whole object as compact JSON, in its own key order (unpacked, copied from the render
    /// cache's file, or written from the tree, on every read).
    public var json: [UInt8] {
        if let stored { return stored.unpacked }
        if let cached = storage.cached { return Array(cached) }
        return (tree ?? .null).compactJSONBytes()
    }

    /// `json`, but where the render cache's file holds it for an object read from there (not copied).
    private var jsonBytes: ArraySlice<UInt8> { storage.cached ?? ArraySlice(json) }

    /// The hash of `json`, kept once the tree is dropped: the live cache checks its entries
    /// against it on every read, and `RenderedCluster`s are hashed and compared by their objects.
    public var jsonHash: Int { stored == nil ? Self.hash(json) : hashed }

    /// Bytes of JSON, and bytes held for them.
    public var jsonCount: (json: Int, held: Int) {
        guard let stored else { return (json.count, 0) }
        return (stored.count, stored.packedCount)
    }

    /// Whether the JSON is deflated against a dictionary shared with similar objects.
    public var sharesDictionary: Bool { stored?.hasDictionary ?? false }

    /// The whole object, in the form the API server stores it.
    public var body: JSONValue {
        get {
            if let tree { return tree }
            // Read where the render cache's file holds it.
            if let cached = storage.cached, let value = try? JSONValue.parse(cached) { return value }
            // Written by `compactJSON`: it always parses.
            guard let stored, let value = try? JSONValue.parse(stored.unpacked) else {
                assertionFailure("a rendered object's JSON does not parse: \(reference)")
                return .null
            }
            return value
        }
        set {
            if tree != nil {
                storage = storage.with(stored: nil, hashed: hashed, tree: newValue)
            } else {
                let json = newValue.compactJSONBytes()
                storage = storage.with(stored: PackedJSON(stored: json), hashed: Self.hash(json), tree: nil)
            }
        }
    }

    /// The same object keeping only its JSON (what a rendered cluster holds once rendered).
    public var withoutTree: RenderedObject {
        var o = self
        if stored == nil {
            let json = self.json
            o.storage = storage.with(stored: PackedJSON(stored: json), hashed: Self.hash(json), tree: nil)
        } else if tree != nil {
            o.storage = storage.with(stored: stored, hashed: hashed, tree: nil)
        }
        return o
    }

    /// The same object keeping only its JSON, deflated against the dictionary of `key` (what the
    /// daemon holds between passes); nil: deflated alone (a Secret: its values are never made a
    /// dictionary).
    public func packed(dictionary key: String?) -> RenderedObject {
        var o = self
        let json = self.json
        o.storage = storage.with(stored: PackedJSON(json, dictionary: kind == "Secret" ? nil : key), hashed: Self.hash(json), tree: nil)
        return o
    }

    public init(body: JSONValue, stage: ApplyStage, createOnly: Bool = false) {
        storage = Storage(apiVersion: body["apiVersion"]?.stringValue ?? "", kind: body["kind"]?.stringValue ?? "",
                          namespace: body["metadata", "namespace"]?.stringValue ?? "", name: body["metadata", "name"]?.stringValue ?? "",
                          stage: stage, createOnly: createOnly, stored: nil, hashed: 0, tree: body)
    }

    /// An object rendered before, from its compact JSON where the render cache's file holds it
    /// and the fields read from it then: the same as the object `withoutTree` gave (its JSON
    /// copied, and hashed, only when asked for).
    init(cached json: ArraySlice<UInt8>, apiVersion: String, kind: String, namespace: String, name: String, stage: ApplyStage, createOnly: Bool) {
        storage = Storage(apiVersion: apiVersion, kind: kind, namespace: namespace, name: name, stage: stage, createOnly: createOnly,
                          stored: nil, hashed: 0, tree: nil, cached: json)
    }

    /// The bytes hashed as one run (`[UInt8].hashValue` feeds the hasher a byte at a time: 3%
    /// of a one-shot pass at 1,000 clusters).
    static func hash(_ bytes: [UInt8]) -> Int {
        var hasher = Hasher()
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        return hasher.finalize()
    }

    // The other fields follow from `json`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(jsonHash)
        hasher.combine(stage)
        hasher.combine(createOnly)
    }

    public static func == (a: RenderedObject, b: RenderedObject) -> Bool {
        a.stage == b.stage && a.createOnly == b.createOnly && sameJSON(a, b)
    }

    /// Whether both are the same JSON (both nil: the same too), without parsing.
    public static func sameJSON(_ a: RenderedObject?, _ b: RenderedObject?) -> Bool {
        switch (a, b) {
        case (nil, nil): true
        case let (a?, b?):
            if let x = a.stored, let y = b.stored { a.hashed == b.hashed && x.same(as: y) } else { a.jsonBytes == b.jsonBytes }
        default: false
        }
    }

    /// `Kind/namespace/name`, as cairn names objects in messages.
    public var reference: String { "\(kind)/\(namespace)/\(name)" }
}

/// Choices that depend on the target cluster rather than on the spec.
public struct RenderOptions: Sendable, Hashable {
    /// `policy/v1` (Kubernetes 1.21 and later, the only one from 1.25) or `policy/v1beta1`.
    /// Chosen from discovery when a cluster is at hand.
    public var podDisruptionBudgetAPIVersion: String

    /// cairn's own image, for the containers that run cairn beside a database (KurrentDB
    /// SplitDNS's resolver): `CAIRN_IMAGE` or `--dns-proxy-image`; nil when not known here.
    public var cairnImage: String?
    /// The cluster DNS (`address:port`) SplitDNS's resolver passes other names to: the
    /// Service kube-system/kube-dns when a cluster is at hand, or `--cluster-dns`; nil when
    /// not known here.
    public var clusterDNS: String?

    public init(podDisruptionBudgetAPIVersion: String = "policy/v1", cairnImage: String? = nil, clusterDNS: String? = nil) {
        self.podDisruptionBudgetAPIVersion = podDisruptionBudgetAPIVersion
        self.cairnImage = cairnImage
        self.clusterDNS = clusterDNS
    }

    /// For checking specs without rendering them for a cluster (`cairn validate`): what the
    /// environment gives is known, as placeholders.
    public static let checkOnly = RenderOptions(cairnImage: "cairn", clusterDNS: "0.0.0.0:53")
}

/// The annotation on every pod template that changes whenever the configuration its pods read
/// changes, so that a configuration change rolls the pods.
public enum ConfigHash {
    public static let annotation = "cairn.dev/config-hash"
}
