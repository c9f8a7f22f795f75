public import ClusterSpecs

/// How a system's StatefulSets take a new pod template.
public enum RolloutPolicy: Sendable, Hashable {
    /// `RollingUpdate`: the StatefulSet controller restarts one pod at a time, highest ordinal
    /// first, each after the previous one is Ready.
    case controller
    /// `OnDelete`, driven by cairn: one pod per pass once every pod is Ready, the replicas first
    /// (highest ordinal first) and the primary (Patroni's leader, `spilo-role: master`) last.
    case replicasFirstPrimaryLast
    /// `OnDelete`, driven by cairn: one StatefulSet (an Aerospike rack) after the other, one pod
    /// per pass once every pod of the set is Ready, highest ordinal first.
    case setBySet

    /// Whether cairn restarts the pods itself (`OnDelete`).
    public var drivenByCairn: Bool { self != .controller }
}

/// One kind of database cluster cairn runs: everything about it is here and in its folder under
/// `Systems/`, and nowhere else. Adding a system is a folder and a line in
/// `SystemRegistry.standard`.
package protocol ClusterSystem: Sendable {
    associatedtype Spec: SystemSpec

    /// The spec files' `apiVersion` and `kind` (the upstream operator's).
    static var apiVersion: String { get }
    static var kind: String { get }
    /// The kinds of the objects it renders, for the live LISTs and pruning.
    /// PodDisruptionBudgets are listed by the reconciler with the API version the server serves.
    static var objectKinds: [(apiVersion: String, kind: String)] { get }
    /// How its pods take a new template.
    static var rollout: RolloutPolicy { get }

    /// Decodes and validates the `spec` of a spec file; every problem goes to the field's
    /// diagnostics, with its location.
    static func decode(_ spec: Field, metadata: ClusterMetadata?) -> Spec?

    /// Its objects, in any order (the caller orders them by stage and stamps config hashes).
    static func render(_ spec: Spec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject]

    /// A warning for a replica change Kubernetes would apply but the system does not follow in
    /// place; nil when it does.
    static func scaleWarning(statefulSet: String, from: Int, to: Int) -> String?

    /// The upstream CRD's fields the decoder does not read, by path (`spec.a.b`, list items as
    /// `[]`): accepted with a note (an upstream operator's own setting) or refused saying why.
    /// A field neither read nor here is a typo: "unknown field".
    static var fieldPolicies: [String: FieldPolicy] { get }
    /// Fields of the upstream CRD the decoder itself refuses (with why): in the compatibility
    /// table beside `fieldPolicies`, checked against the decoder by CRDFieldTests.
    static var refusedInDecoder: [String: String] { get }

    /// Earlier versions of the upstream CRD read as `apiVersion` (their fields a subset of its).
    static var olderAPIVersions: [String] { get }

    /// What keeps a valid spec from being rendered with these options (a setting of cairn's
    /// environment it needs, e.g. cairn's own image): the cluster is then not applied.
    static func renderProblems(_ spec: Spec, _ metadata: ClusterMetadata, options: RenderOptions) -> [(location: Location, path: String, message: String)]
}

extension ClusterSystem {
    package static func scaleWarning(statefulSet: String, from: Int, to: Int) -> String? { nil }

    package static var fieldPolicies: [String: FieldPolicy] { [:] }
    package static var refusedInDecoder: [String: String] { [:] }

    package static var olderAPIVersions: [String] { [] }

    package static func renderProblems(_ spec: Spec, _ metadata: ClusterMetadata, options: RenderOptions)
        -> [(location: Location, path: String, message: String)] { [] }

    static func renderProblems(any spec: any SystemSpec, _ metadata: ClusterMetadata, options: RenderOptions)
        -> [(location: Location, path: String, message: String)] {
        guard let own = spec as? Spec else { return [] }
        return renderProblems(own, metadata, options: options)
    }

    package static var decoder: SystemDecoder {
        SystemDecoder(apiVersion: apiVersion, kind: kind, policies: fieldPolicies, olderAPIVersions: olderAPIVersions) { field, metadata in decode(field, metadata: metadata) }
    }

    /// Renders a spec this system decoded.
    static func render(any spec: any SystemSpec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        guard let own = spec as? Spec else {
            preconditionFailure("\(kind) asked to render a \(type(of: spec)): the registry dispatches by apiVersion and kind")
        }
        return render(own, metadata, options: options)
    }
}

/// The systems cairn knows, and the only place that dispatches on them.
package struct SystemRegistry: Sendable {
    package let systems: [any ClusterSystem.Type]

    package init(_ systems: [any ClusterSystem.Type]) {
        self.systems = systems
    }

    /// The four systems cairn ships.
    package static let standard = SystemRegistry([
        EventStoreSystem.self, AtomixSystem.self, AerospikeSystem.self, PostgresSystem.self,
    ])

    /// A registry with one more system.
    package func adding(_ system: any ClusterSystem.Type) -> SystemRegistry {
        SystemRegistry(systems + [system])
    }

    package var decoders: [SystemDecoder] { systems.map { $0.decoder } }

    /// The systems' type names, in order (what tells the standard registry from a test's).
    package var names: [String] { systems.map { String(reflecting: $0) } }

    /// The spec files' kinds, to find the cluster's document in a file of several.
    package var kinds: Set<String> { Set(systems.map { $0.kind }) }

    /// The field policies of every system as Markdown tables (`cairn fields`; the README holds
    /// this text, checked by a test so that it cannot drift from the code).
    package var fieldPolicyTables: String {
        systems.map { system in
            var out = "#### \(system.kind) (`\(system.apiVersion)`)\n\n"
            var rows = system.refusedInDecoder.mapValues { FieldPolicy.unsupported($0) }
            rows.merge(system.fieldPolicies) { _, policy in policy }
            guard !rows.isEmpty else { return out + "Every field of the upstream CRD is rendered.\n" }
            out += "| field | cairn | why |\n|---|---|---|\n"
            for (path, policy) in rows.sorted(by: { $0.key < $1.key }) {
                switch policy {
                case .operatorOnly(let why): out += "| `\(path)` | accepted, not used | \(why) |\n"
                case .unsupported(let why): out += "| `\(path)` | not supported yet | \(why) |\n"
                }
            }
            return out
        }.joined(separator: "\n")
    }

    /// The system of a decoded spec (by its apiVersion and kind).
    package func system(for spec: ClusterSpec) -> (any ClusterSystem.Type)? {
        systems.first { $0.apiVersion == spec.apiVersion && $0.kind == spec.kind }
    }

    /// Every kind any system renders, once, in the order first named.
    package var objectKinds: [(apiVersion: String, kind: String)] {
        var seen = Set<String>()
        var out: [(apiVersion: String, kind: String)] = []
        for system in systems {
            for k in system.objectKinds where seen.insert("\(k.apiVersion) \(k.kind)").inserted { out.append(k) }
        }
        return out
    }
}

extension ClusterSpecLoader {
    /// Decodes and validates one spec file of a standard system.
    package static func load(_ text: String, file: String) throws(SpecErrors) -> ClusterSpec {
        try load(text, file: file, systems: SystemRegistry.standard.decoders)
    }

    /// Loads several files of the standard systems (see `loadAll(_:systems:)`).
    package static func loadAll(_ files: [(path: String, text: String)]) -> LoadResult {
        loadAll(files, systems: SystemRegistry.standard.decoders)
    }
}
