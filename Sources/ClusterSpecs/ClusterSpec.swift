/// One cluster, decoded and validated from its spec file.
public struct ClusterSpec: Sendable, Hashable {
    public enum System: Sendable, Hashable {
        case eventStore(EventStoreSpec)
        case atomix(AtomixSpec)
        case aerospike(AerospikeSpec)
        case postgres(PostgresSpec)
    }

    /// The file the spec was read from, as given (used in errors and status).
    public let file: String
    public let metadata: ClusterMetadata
    public let system: System

    public init(file: String, metadata: ClusterMetadata, system: System) {
        self.file = file
        self.metadata = metadata
        self.system = system
    }

    /// `namespace/name`.
    public var identity: String { "\(metadata.namespace)/\(metadata.name)" }

    /// The spec's `apiVersion` and `kind`.
    public var kind: (apiVersion: String, kind: String) {
        switch system {
        case .eventStore: (EventStoreSpec.apiVersion, EventStoreSpec.kind)
        case .atomix: (AtomixSpec.apiVersion, AtomixSpec.kind)
        case .aerospike: (AerospikeSpec.apiVersion, AerospikeSpec.kind)
        case .postgres: (PostgresSpec.apiVersion, PostgresSpec.kind)
        }
    }
}

/// Reads spec files: one cluster per file, every problem of a file reported together.
public enum ClusterSpecLoader {
    static let supportedKinds: [(apiVersion: String, kind: String)] = [
        (EventStoreSpec.apiVersion, EventStoreSpec.kind),
        (AtomixSpec.apiVersion, AtomixSpec.kind),
        (AerospikeSpec.apiVersion, AerospikeSpec.kind),
        (PostgresSpec.apiVersion, PostgresSpec.kind),
    ]

    /// Decodes and validates one spec file.
    ///
    /// - Parameters:
    ///   - text: The file's contents.
    ///   - file: The file's path, used in errors.
    /// - Throws: `SpecErrors` holding every problem found, each with file, line, column and field path.
    public static func load(_ text: String, file: String) throws(SpecErrors) -> ClusterSpec {
        try load(parse(text, file: file), file: file)
    }

    /// Parses a spec file's YAML (no decoding yet): for `identity(parsed:)` and `load(_:file:)`.
    public static func parse(_ text: String, file: String) throws(SpecErrors) -> SpecNode {
        do {
            return try SpecFileParser.parse(text, file: file)
        } catch {
            throw SpecErrors([error])
        }
    }

    /// Decodes and validates a parsed spec file.
    public static func load(_ root: SpecNode, file: String) throws(SpecErrors) -> ClusterSpec {
        let diagnostics = Diagnostics(file: file)
        let top = Field(node: root, path: "", diagnostics: diagnostics)
        let spec = decode(top)
        if !diagnostics.errors.isEmpty || spec == nil {
            let errors = diagnostics.errors.isEmpty
                ? [SpecError(file: file, location: root.location, path: "", message: "not a valid cluster spec")]
                : diagnostics.errors
            throw SpecErrors(errors)
        }
        return spec!
    }

    /// The result of loading a set of files: the valid clusters and the problems of the others.
    public struct LoadResult: Sendable {
        public var clusters: [ClusterSpec]
        public var errors: [SpecError]
    }

    /// Loads several files; an invalid file does not stop the others. Two files that define the
    /// same cluster (`namespace/name`) are both kept out and reported.
    ///
    /// - Parameter files: `(path, contents)` pairs, in the order they should be reported.
    public static func loadAll(_ files: [(path: String, text: String)]) -> LoadResult {
        var clusters: [ClusterSpec] = []
        var errors: [SpecError] = []
        for (path, text) in files {
            do {
                clusters.append(try load(text, file: path))
            } catch {
                errors.append(contentsOf: error.errors)
            }
        }
        let duplicates = duplicateIdentities(clusters)
        clusters.removeAll { duplicates.identities.contains($0.identity) }
        return LoadResult(clusters: clusters, errors: (errors + duplicates.errors).sorted())
    }

    /// Clusters that more than one spec defines (`namespace/name`), with an error on each
    /// definition naming the others: none of them is valid.
    public static func duplicateIdentities(_ clusters: [ClusterSpec]) -> (identities: Set<String>, errors: [SpecError]) {
        var byIdentity: [String: [ClusterSpec]] = [:]
        for c in clusters { byIdentity[c.identity, default: []].append(c) }
        var duplicated: Set<String> = []
        var errors: [SpecError] = []
        for (identity, group) in byIdentity where group.count > 1 {
            duplicated.insert(identity)
            for c in group {
                let others = group.filter { $0.file != c.file || $0.metadata.nameLocation != c.metadata.nameLocation }
                    .map { "\($0.file):\($0.metadata.nameLocation)" }.joined(separator: ", ")
                errors.append(SpecError(file: c.file, location: c.metadata.nameLocation, path: "metadata.name",
                                        message: "cluster \(identity) is also defined at \(others); each cluster needs exactly one spec file"))
            }
        }
        return (duplicated, errors.sorted())
    }

    private static func decode(_ top: Field) -> ClusterSpec? {
        top.object(unsupported: [
            "status": "status is written by cairn; remove it from the spec file",
        ]) { o -> ClusterSpec? in
            let apiVersion = o.required("apiVersion")
            let kind = o.required("kind")
            guard let apiVersion, let kind, let av = apiVersion.string, let k = kind.string else {
                o.ignore("metadata"); o.ignore("spec")
                return nil
            }
            guard supportedKinds.contains(where: { $0.apiVersion == av && $0.kind == k }) else {
                let list = supportedKinds.map { "\($0.apiVersion) \($0.kind)" }.joined(separator: ", ")
                if supportedKinds.contains(where: { $0.kind == k }) {
                    apiVersion.fail("\(av) is not a supported apiVersion for kind \(k) (supported: \(list))")
                } else {
                    kind.fail("\(av) \(k) is not a cluster spec cairn knows (supported: \(list))")
                }
                o.ignore("metadata"); o.ignore("spec")
                return nil
            }
            let metadata = o.required("metadata").flatMap { decodeMetadata($0) }
            guard let specField = o.required("spec") else { return nil }
            let system: ClusterSpec.System?
            switch k {
            case EventStoreSpec.kind: system = EventStoreSpec.decode(specField, metadata: metadata).map { .eventStore($0) }
            case AtomixSpec.kind: system = AtomixSpec.decode(specField, metadata: metadata).map { .atomix($0) }
            case AerospikeSpec.kind: system = AerospikeSpec.decode(specField, metadata: metadata).map { .aerospike($0) }
            default: system = PostgresSpec.decode(specField, metadata: metadata).map { .postgres($0) }
            }
            guard let metadata, let system else { return nil }
            return ClusterSpec(file: top.diagnostics.file, metadata: metadata, system: system)
        }
    }

    static let managedLabelPrefix = "app.kubernetes.io/"

    /// `namespace/name` of the cluster a file describes, read as leniently as possible: for an
    /// invalid file, so that its cluster's live objects are left alone. Nil when the file does not
    /// even say.
    public static func identity(_ text: String, file: String) -> String? {
        // A file that does not parse names no cluster; `load` reports why.
        guard let root = try? SpecFileParser.parse(text, file: file) else { return nil }
        return identity(parsed: root)
    }

    /// `namespace/name` of the cluster a parsed file describes, leniently (see `identity`).
    public static func identity(parsed root: SpecNode) -> String? {
        guard case .mapping(let top) = root,
              case .mapping(let metadata)? = top["metadata"], case .scalar(let name)? = metadata["name"] else { return nil }
        var namespace = "default"
        if case .scalar(let ns)? = metadata["namespace"] { namespace = ns.text }
        return "\(namespace)/\(name.text)"
    }

    private static func decodeMetadata(_ field: Field) -> ClusterMetadata? {
        let serverSet = "is set by the API server; a spec file is not a `kubectl get` dump, remove it"
        return field.object(unsupported: [
            "uid": serverSet, "resourceVersion": serverSet, "generation": serverSet,
            "creationTimestamp": serverSet, "managedFields": serverSet, "selfLink": serverSet,
            "finalizers": "cairn does not use finalizers", "ownerReferences": "a cluster spec has no owner",
            "generateName": "a cluster needs a fixed name",
        ]) { m -> ClusterMetadata? in
            let nameField = m.required("name")
            var name = nameField?.string
            if let n = name, !Names.isDNS1035Label(n) {
                nameField?.fail("'\(n)' is not a valid cluster name: lower-case letters, digits and '-', starting with a letter, at most 63 characters")
                name = nil
            }
            var namespace = "default"
            if let f = m["namespace"], let ns = f.string {
                if Names.isDNS1123Label(ns) { namespace = ns } else {
                    f.fail("'\(ns)' is not a valid namespace name: lower-case letters, digits and '-', at most 63 characters")
                }
            }
            var labels: [String: String] = [:]
            if let f = m["labels"], let l = f.labelMap {
                for key in l.keys where key.hasPrefix(managedLabelPrefix) || key.hasPrefix("cairn.dev/") {
                    f.child(key, f.node).fail("labels under \(managedLabelPrefix) and cairn.dev/ are set by cairn")
                }
                labels = l
            }
            let annotations = m["annotations"].flatMap { $0.annotationMap } ?? [:]
            guard let name else { return nil }
            return ClusterMetadata(name: name, namespace: namespace, labels: labels, annotations: annotations,
                                   nameLocation: nameField?.location ?? m.location)
        }
    }
}

extension Field {
    /// `metadata.name`, for problems of the cluster as a whole found while decoding `spec`.
    func metadataName(_ metadata: ClusterMetadata) -> Field {
        Field(node: .scalar(.init(text: metadata.name, isPlain: true, location: metadata.nameLocation)),
              path: "metadata.name", diagnostics: diagnostics)
    }

    /// Reports when a derived object name would be too long.
    func checkDerivedName(_ derived: String, limit: Int, what: String) {
        if derived.count > limit {
            fail("the \(what) name '\(derived)' would be \(derived.count) characters; Kubernetes allows \(limit). Use a shorter name")
        }
    }
}

/// A version number read from an image tag, such as `23.10.2` from `eventstore/eventstore:23.10.2-bookworm-slim`.
public struct ImageVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let components: [Int]

    public init(_ components: [Int]) {
        self.components = components
    }

    /// Reads the leading dotted number of an image's tag; nil when the tag has none (`latest`, a digest).
    public init?(image: String) {
        var ref = Substring(image)
        if let at = ref.firstIndex(of: "@") { ref = ref[..<at] }
        let lastPart = ref.split(separator: "/").last ?? ref
        guard let colon = lastPart.lastIndex(of: ":") else { return nil }
        let tag = lastPart[lastPart.index(after: colon)...].drop(while: { $0 == "v" })
        let numeric = tag.prefix { $0.isNumber || $0 == "." }
        let parts = numeric.split(separator: ".", omittingEmptySubsequences: false)
        guard let first = parts.first, !first.isEmpty else { return nil }
        var comps: [Int] = []
        for p in parts {
            guard let n = Int(p) else { break }
            comps.append(n)
        }
        guard !comps.isEmpty else { return nil }
        self.components = comps
    }

    public static func < (lhs: ImageVersion, rhs: ImageVersion) -> Bool {
        let n = max(lhs.components.count, rhs.components.count)
        for i in 0..<n {
            let a = i < lhs.components.count ? lhs.components[i] : 0
            let b = i < rhs.components.count ? rhs.components[i] : 0
            if a != b { return a < b }
        }
        return false
    }

    public var description: String { components.map(String.init).joined(separator: ".") }
}
