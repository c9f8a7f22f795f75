import Synchronization

/// The decoded `spec` of one system's cluster (an EventStoreDB, Atomix, Aerospike or Postgres
/// spec): what a system's `ClusterSystem` conformance (in Render) decodes and renders.
public protocol SystemSpec: Sendable, Hashable {}

/// How a loader reads one system's spec files: its `apiVersion` and `kind`, and the decoder of
/// its `spec` (which reports every problem through the field's diagnostics).
package struct SystemDecoder: Sendable {
    package let apiVersion: String
    package let kind: String
    package let decode: @Sendable (Field, ClusterMetadata?) -> (any SystemSpec)?
    /// The upstream CRD's fields cairn does not render, and what it does with each.
    package let policies: [String: FieldPolicy]
    /// Earlier versions of the upstream CRD whose fields are a subset of `apiVersion`'s: read as
    /// `apiVersion`, with a note.
    package let olderAPIVersions: [String]

    package init(apiVersion: String, kind: String, policies: [String: FieldPolicy] = [:], olderAPIVersions: [String] = [],
                 decode: @escaping @Sendable (Field, ClusterMetadata?) -> (any SystemSpec)?) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.policies = policies
        self.olderAPIVersions = olderAPIVersions
        self.decode = decode
    }

    /// Whether a file with this `apiVersion` is read by this decoder.
    package func reads(_ apiVersion: String) -> Bool {
        apiVersion == self.apiVersion || olderAPIVersions.contains(apiVersion)
    }
}

/// One cluster, decoded and validated from its spec file.
public struct ClusterSpec: Sendable, Hashable {
    /// The file the spec was read from, as given (used in errors and status).
    public let file: String
    public let metadata: ClusterMetadata
    /// The spec's `apiVersion` and `kind`: which system it is.
    public let apiVersion: String
    public let kind: String
    /// The system's own spec.
    public var system: any SystemSpec { deferred?.spec.system ?? decoded! }
    private let decoded: (any SystemSpec)?
    /// Fields accepted but not used by cairn (an upstream operator's own settings), each with
    /// its location and why: `validate` and `plan` print them. Not part of the spec's identity.
    public var notes: [SpecError] {
        get { deferred?.spec.notes ?? ownNotes }
        set { ownNotes = newValue }
    }
    private var ownNotes: [SpecError] = []
    /// The decoding of `system` (and the notes it gives), put off (`ClusterSpecLoader.load(_:file:systems:deferring:)`).
    private let deferred: DeferredDecoding?
    /// Whether `system` is decoded only when first asked for (a render cache hit).
    var decodesSystemWhenAsked: Bool { deferred != nil }
    /// The documents beside the cluster in its file (a Secret, a Certificate, ...): applied with
    /// the cluster, labelled as part of it, pruned with it.
    public var companions: [CompanionObject] = []
    /// A Namespace document beside the cluster (its own namespace): the labels and annotations
    /// cairn gives the namespace when it creates it.
    public var namespaceDocument: NamespaceDocument?

    public init(file: String, metadata: ClusterMetadata, apiVersion: String, kind: String, system: any SystemSpec) {
        self.file = file
        self.metadata = metadata
        self.apiVersion = apiVersion
        self.kind = kind
        self.decoded = system
        self.deferred = nil
    }

    /// A spec whose system spec is decoded when first asked for, by `decode` (the file loaded
    /// whole again); everything else as `decode` would give it.
    init(file: String, metadata: ClusterMetadata, apiVersion: String, kind: String, deferred decode: @escaping @Sendable () -> ClusterSpec) {
        self.file = file
        self.metadata = metadata
        self.apiVersion = apiVersion
        self.kind = kind
        self.decoded = nil
        self.deferred = DeferredDecoding(decode)
    }

    /// `namespace/name`.
    public var identity: String { "\(metadata.namespace)/\(metadata.name)" }

    /// What a render cache keeps of a spec to make it again without parsing its file
    /// (`ClusterSpecLoader.load(_:text:file:systems:)`): all but the system's spec and the notes.
    package struct Summary: Sendable, Hashable {
        package let apiVersion: String
        package let kind: String
        package let metadata: ClusterMetadata

        package init(apiVersion: String, kind: String, metadata: ClusterMetadata) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.metadata = metadata
        }
    }

    /// Nil for a spec with documents beside it (a Secret, a Namespace...): its file is parsed
    /// every time.
    package var summary: Summary? {
        guard companions.isEmpty, namespaceDocument == nil else { return nil }
        return Summary(apiVersion: apiVersion, kind: kind, metadata: metadata)
    }

    public static func == (a: ClusterSpec, b: ClusterSpec) -> Bool {
        a.file == b.file && a.metadata == b.metadata && a.apiVersion == b.apiVersion && a.kind == b.kind
            && AnyHashable(a.system) == AnyHashable(b.system) && a.companions == b.companions && a.namespaceDocument == b.namespaceDocument
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(file)
        hasher.combine(metadata)
        hasher.combine(kind)
        hasher.combine(AnyHashable(system))
        hasher.combine(companions)
        hasher.combine(namespaceDocument)
    }
}

/// A system spec's decoding put off until it is asked for: once, whichever thread asks first.
private final class DeferredDecoding: Sendable {
    private let decode: @Sendable () -> ClusterSpec
    private let done = Mutex<ClusterSpec?>(nil)

    init(_ decode: @escaping @Sendable () -> ClusterSpec) {
        self.decode = decode
    }

    var spec: ClusterSpec {
        done.withLock { done in
            if let done { return done }
            let spec = decode()
            done = spec
            return spec
        }
    }
}

/// A document beside a cluster in its spec file, as upstream examples have them: a Secret with
/// passwords, the ServiceAccount or Certificate the cluster refers to, a Service or
/// ServiceMonitor for its metrics. cairn applies it as written (server-side apply, in the
/// cluster's pipeline), with the cluster's labels added so that it is listed, planned and
/// pruned with the cluster.
public struct CompanionObject: Sendable, Hashable {
    public let apiVersion: String
    public let kind: String
    public let name: String
    /// The document: `metadata` cut down to name, namespace, labels and annotations.
    public let body: JSONValue
    public let location: Location

    /// The kinds applied beside a cluster, by kind: the API versions accepted, and the stage
    /// (as `ApplyStage`'s order: access 0, secrets 1, configuration 2, services 3, last 5).
    /// Monitors come last: the pods do not need them, so a Prometheus operator that is not
    /// installed never keeps a database from being created (a Certificate's Secret is needed).
    public static let kinds: [String: (apiVersions: [String], stage: Int)] = [
        "ServiceAccount": (["v1"], 0),
        "Secret": (["v1"], 1),
        "ConfigMap": (["v1"], 2),
        "Service": (["v1"], 3),
        "Certificate": (["cert-manager.io/v1"], 1),
        "ServiceMonitor": (["monitoring.coreos.com/v1"], 5),
        "PodMonitor": (["monitoring.coreos.com/v1"], 5),
    ]

    /// The kinds that are not always served (CustomResourceDefinitions of cert-manager and the
    /// Prometheus operator): listed only when the API server serves them.
    public static let optionalKinds: [(apiVersion: String, kind: String)] = [
        ("cert-manager.io/v1", "Certificate"), ("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor"),
    ]
}

/// Reads spec files: one cluster per file, every problem of a file reported together. The
/// systems it knows come from the caller (Render's `SystemRegistry`): nothing here picks one.
package enum ClusterSpecLoader {
    /// Decodes and validates one spec file.
    ///
    /// - Parameters:
    ///   - text: The file's contents.
    ///   - file: The file's path, used in errors.
    /// - Throws: `SpecErrors` holding every problem found, each with file, line, column and field path.
    package static func load(_ text: String, file: String, systems: [SystemDecoder]) throws(SpecErrors) -> ClusterSpec {
        try load(parse(text, file: file), file: file, systems: systems)
    }

    /// A spec file's documents: the cluster's and any others beside it (which cairn reports).
    package struct Parsed: Sendable {
        package let documents: [SpecNode]
        /// YAML-level problems read past (a tag, a duplicate key...): reported with the rest.
        package var problems: [SpecError] = []

        /// The document naming a cluster of one of `kinds` (the first such), else the first.
        package func cluster(kinds: Set<String>) -> SpecNode {
            documents.first { doc in
                guard case .mapping(let m) = doc, case .scalar(let k)? = m["kind"] else { return false }
                return kinds.contains(k.text)
            } ?? documents[0]
        }
    }

    /// Parses a spec file's YAML (no decoding yet): for `identity(parsed:)` and `load(_:file:)`.
    package static func parse(_ text: String, file: String) throws(SpecErrors) -> Parsed {
        do {
            let (documents, problems) = try SpecFileParser.parseDocumentsReadingOn(text, file: file)
            return Parsed(documents: documents, problems: problems)
        } catch {
            throw SpecErrors([error])
        }
    }

    /// Decodes and validates a parsed spec file: its cluster document, and every problem of the
    /// file at once (a document beside the cluster is reported, not applied).
    /// - Parameter text: the file's text, when this very build decoded it without a problem
    ///   before (`cairn apply`'s render cache): the system's `spec` is decoded only when asked
    ///   for (most passes only need what is rendered from it), from this text.
    package static func load(_ parsed: Parsed, file: String, systems: [SystemDecoder], deferring text: String? = nil) throws(SpecErrors) -> ClusterSpec {
        let kinds = Set(systems.map(\.kind))
        let root = parsed.cluster(kinds: kinds)
        let diagnostics = Diagnostics(file: file)
        for problem in parsed.problems { diagnostics.report(problem.location, problem.path, problem.message) }
        let top = Field(node: root, path: "", diagnostics: diagnostics)
        let spec = decode(top, systems: systems, deferring: text)
        var companions: [CompanionObject] = []
        var namespaceDocument: NamespaceDocument?
        var seen: [String: Location] = [:]
        for doc in parsed.documents where doc.location != root.location {
            let policies = diagnostics.policies
            diagnostics.policies = [:]  // the cluster's field policies are not the document's
            defer { diagnostics.policies = policies }
            let field = Field(node: doc, path: "", diagnostics: diagnostics)
            if case .mapping(let m) = doc, case .scalar(let k)? = m["kind"], kinds.contains(k.text) {
                var name = ""
                if case .mapping(let meta)? = m["metadata"], case .scalar(let n)? = meta["name"] { name = " " + n.text }
                field.fail("a second cluster (\(k.text)\(name)) in this file; a spec file holds exactly one cluster")
                continue
            }
            guard let c = decodeCompanion(field, namespace: spec?.metadata.namespace, namespaceDocument: &namespaceDocument) else { continue }
            if let first = seen["\(c.kind)/\(c.name)"] {
                field.fail("\(c.kind) \(c.name) is also the document at line \(first.line); each object once")
                continue
            }
            seen["\(c.kind)/\(c.name)"] = c.location
            companions.append(c)
        }
        if !diagnostics.errors.isEmpty || spec == nil {
            let errors = diagnostics.errors.isEmpty
                ? [SpecError(file: file, location: root.location, path: "", message: "not a valid cluster spec")]
                : diagnostics.errors
            throw SpecErrors(errors)
        }
        var loaded = spec!
        loaded.notes = diagnostics.notes
        loaded.companions = companions
        loaded.namespaceDocument = namespaceDocument
        return loaded
    }

    /// A document beside the cluster: one of `CompanionObject.kinds`, in the cluster's namespace.
    /// A Namespace document naming the cluster's namespace is what cairn does anyway (it creates
    /// the namespace when missing): its labels and annotations are given to the namespace when
    /// cairn creates it (`namespaceDocument`); an existing namespace is not changed, as a note says.
    private static func decodeCompanion(_ field: Field, namespace: String?, namespaceDocument: inout NamespaceDocument?) -> CompanionObject? {
        field.object(unsupported: ["status": "status is written by the API server; remove it from the document"]) { o -> CompanionObject? in
            guard let apiVersion = o.required("apiVersion")?.nonEmptyString, let kindField = o.required("kind"), let kind = kindField.nonEmptyString,
                  let metaField = o.required("metadata") else {
                for key in o.mapping.entries.map(\.key.text) { o.ignore(key) }
                return nil
            }
            if kind == "Namespace" && apiVersion == "v1" {
                let document = metaField.object { meta -> NamespaceDocument? in
                    if let n = meta.required("name"), let name = n.nonEmptyString, let namespace, name != namespace {
                        n.fail("names namespace \(name), but the cluster is in \(namespace); a Namespace beside a cluster is the cluster's own")
                    }
                    let labels = meta["labels"].flatMap { $0.labelMap } ?? [:]
                    for key in labels.keys where key == "app.kubernetes.io/managed-by" || key.hasPrefix("cairn.dev/") {
                        meta["labels"]?.fail("\(key) is set by cairn")
                    }
                    return NamespaceDocument(labels: labels, annotations: meta["annotations"].flatMap { $0.annotationMap } ?? [:])
                }
                // spec (finalizers) and status are the API server's: nothing cairn would apply.
                for key in o.mapping.entries.map(\.key.text) where key != "metadata" { o.ignore(key) }
                if let document, !document.labels.isEmpty || !document.annotations.isEmpty {
                    namespaceDocument = document
                    field.note("the cluster's namespace: cairn creates it when missing, with these labels and annotations, and never deletes "
                               + "it; an existing namespace is not changed (cairn may only read and create namespaces): label it yourself")
                } else {
                    field.note("the cluster's namespace: cairn creates it when missing (labelled as cairn's) and never deletes it")
                }
                return nil
            }
            guard let accepted = CompanionObject.kinds[kind] else {
                kindField.fail("not supported by cairn yet: a \(kind) beside the cluster; cairn applies "
                               + CompanionObject.kinds.keys.sorted().joined(separator: ", ") + " and Namespace documents with it "
                               + "(apply the \(kind) separately, or take it out of the file)")
                for key in o.mapping.entries.map(\.key.text) { o.ignore(key) }
                return nil
            }
            if !accepted.apiVersions.contains(apiVersion) {
                o.required("apiVersion")?.fail("\(apiVersion) \(kind) is not applied beside a cluster (accepted: "
                                               + accepted.apiVersions.map { "\($0) \(kind)" }.joined(separator: ", ") + ")")
            }
            var metadata = JSONObject()
            var name: String?
            metaField.object { meta -> Bool? in
                if let n = meta.required("name"), let v = n.nonEmptyString {
                    if Names.isDNS1123Subdomain(v) { name = v } else { n.fail("'\(v)' is not a valid object name (lowercase letters, digits, '-' and '.')") }
                }
                if let n = meta["namespace"], let v = n.nonEmptyString, let namespace, v != namespace {
                    n.fail("is \(v), but the cluster is in \(namespace); what goes with a cluster is in its namespace")
                }
                for key in ["labels", "annotations"] {
                    if let f = meta[key], let map = f.stringMap { metadata[key] = .sortedStrings(map.map { ($0.key, $0.value) }) }
                }
                return true
            }
            guard let name, let namespace else {
                for key in o.mapping.entries.map(\.key.text) { o.ignore(key) }
                return nil
            }
            metadata["name"] = .string(name)
            metadata["namespace"] = .string(namespace)
            var body = JSONObject()
            body["apiVersion"] = .string(apiVersion)
            body["kind"] = .string(kind)
            body["metadata"] = .object(metadata)
            for entry in o.mapping.entries where !["apiVersion", "kind", "metadata", "status"].contains(entry.key.text) {
                body[entry.key.text] = Field.toJSON(entry.value)
                o.ignore(entry.key.text)
            }
            // A Secret's stringData as the data the server stores (base64): the live object has
            // only `data`, so a changed value is seen and applied.
            if kind == "Secret", let strings = body["stringData"] {
                var data = body["data"]?.objectValue ?? JSONObject()
                guard let entries = strings.objectValue else {
                    o.required("stringData")?.fail("must be a mapping of keys to strings")
                    return nil
                }
                for (key, value) in entries.entries {
                    guard let text = value.stringValue else {
                        o.required("stringData")?.fail("\(key): must be a string (quote it)")
                        return nil
                    }
                    data[key] = .string(SpecFiles.base64(text))
                }
                body["stringData"] = nil
                body["data"] = .object(data.sortedByKey())
            }
            if kind == "Secret", o.has("data") || o.has("stringData") {
                field.warn("a Secret with its values in git: cairn applies it as written, and anyone who can read the repository can read them; "
                           + "cairn never shows them (plans mask Secret values)")
            }
            return CompanionObject(apiVersion: apiVersion, kind: kind, name: name, body: .object(body), location: field.location)
        }
    }

    /// The result of loading a set of files: the valid clusters and the problems of the others.
    package struct LoadResult: Sendable {
        package var clusters: [ClusterSpec]
        package var errors: [SpecError]
    }

    /// Loads several files; an invalid file does not stop the others. Two files that define the
    /// same cluster (`namespace/name`) are both kept out and reported.
    ///
    /// - Parameter files: `(path, contents)` pairs, in the order they should be reported.
    package static func loadAll(_ files: [(path: String, text: String)], systems: [SystemDecoder]) -> LoadResult {
        var clusters: [ClusterSpec] = []
        var errors: [SpecError] = []
        for (path, text) in files {
            do {
                clusters.append(try load(text, file: path, systems: systems))
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
    package static func duplicateIdentities(_ clusters: [ClusterSpec]) -> (identities: Set<String>, errors: [SpecError]) {
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

    private static func decode(_ top: Field, systems: [SystemDecoder], deferring text: String?) -> ClusterSpec? {
        top.object(unsupported: [
            "status": "status is written by cairn; remove it from the spec file",
        ]) { o -> ClusterSpec? in
            let apiVersion = o.required("apiVersion")
            let kind = o.required("kind")
            guard let apiVersion, let kind, let av = apiVersion.string, let k = kind.string else {
                o.ignore("metadata"); o.ignore("spec")
                return nil
            }
            guard let system = systems.first(where: { $0.reads(av) && $0.kind == k }) else {
                let list = systems.map { "\($0.apiVersion) \($0.kind)" }.joined(separator: ", ")
                if systems.contains(where: { $0.kind == k }) {
                    let versions = systems.filter { $0.kind == k }.flatMap { s in [s.apiVersion] + s.olderAPIVersions }.joined(separator: ", ")
                    apiVersion.fail("\(av) is not a supported apiVersion for kind \(k) (supported: \(versions))")
                } else {
                    kind.fail("\(av) \(k) is not a cluster spec cairn knows (supported: \(list))")
                }
                o.ignore("metadata"); o.ignore("spec")
                return nil
            }
            top.diagnostics.policies = system.policies
            if av != system.apiVersion {
                apiVersion.note("read as \(system.apiVersion), the version that replaced it upstream (which only added optional fields)")
            }
            let metadata = o.required("metadata").flatMap { decodeMetadata($0) }
            guard let specField = o.required("spec") else { return nil }
            if let text, let metadata {
                let file = top.diagnostics.file
                return ClusterSpec(file: file, metadata: metadata, apiVersion: system.apiVersion, kind: k,
                                   deferred: decodeLater(text, file: file, systems: systems))
            }
            let decoded = system.decode(specField, metadata)
            guard let metadata, let decoded else { return nil }
            return ClusterSpec(file: top.diagnostics.file, metadata: metadata, apiVersion: system.apiVersion, kind: k, system: decoded)
        }
    }

    /// The whole load of a file this build decoded without a problem before (the render cache),
    /// for when a deferred spec is first asked for what was put off.
    private static func decodeLater(_ text: String, file: String, systems: [SystemDecoder]) -> @Sendable () -> ClusterSpec {
        {
            do throws(SpecErrors) {
                return try load(text, file: file, systems: systems)
            } catch {
                preconditionFailure("\(file) decoded without a problem before (the render cache) and not now: \(error)")
            }
        }
    }

    /// A spec made again from what the render cache kept of it (`ClusterSpec.Summary`), without
    /// parsing its file: all of it is `load`'s but the system's spec and the notes, decoded from
    /// `text` when first asked for (a no-op `cairn apply` never does).
    package static func load(_ summary: ClusterSpec.Summary, text: String, file: String, systems: [SystemDecoder]) -> ClusterSpec {
        ClusterSpec(file: file, metadata: summary.metadata, apiVersion: summary.apiVersion, kind: summary.kind,
                    deferred: decodeLater(text, file: file, systems: systems))
    }

    static let managedLabelPrefix = "app.kubernetes.io/"

    /// `namespace/name` of the cluster a file describes, read as leniently as possible: for an
    /// invalid file, so that its cluster's live objects are left alone. Nil when the file does not
    /// even say.
    package static func identity(_ text: String, file: String, kinds: Set<String>) -> String? {
        // A file that does not parse names no cluster; `load` reports why.
        guard let parsed = try? parse(text, file: file) else { return nil }
        return identity(parsed: parsed.cluster(kinds: kinds))
    }

    /// `namespace/name` of the cluster a parsed file describes, leniently (see `identity`).
    package static func identity(parsed root: SpecNode) -> String? {
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
    package func metadataName(_ metadata: ClusterMetadata) -> Field {
        Field(node: .scalar(.init(text: metadata.name, isPlain: true, location: metadata.nameLocation)),
              path: "metadata.name", diagnostics: diagnostics)
    }

    /// Reports when a derived object name would be too long.
    package func checkDerivedName(_ derived: String, limit: Int, what: String) {
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

/// The labels and annotations of a Namespace document beside a cluster.
public struct NamespaceDocument: Sendable, Hashable {
    public var labels: [String: String]
    public var annotations: [String: String]

    public init(labels: [String: String], annotations: [String: String]) {
        self.labels = labels
        self.annotations = annotations
    }
}
