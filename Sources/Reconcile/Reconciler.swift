public import ClusterSpecs
import Foundation
public import KubeAPI
public import Render

/// The outcome of one object in a pass, kubectl style.
public struct ObjectResult: Sendable, CustomStringConvertible {
    public enum Action: String, Sendable {
        case created, configured, unchanged, pruned, kept, blocked, failed
    }
    public let reference: String
    public let action: Action
    public let detail: String?

    public var description: String {
        "\(reference) \(action.rawValue)" + (detail.map { " (\($0))" } ?? "")
    }
}

/// One level-based reconcile pass: from valid cluster specs to live objects.
///
/// Reads live state with one LIST per kind and namespace, plans, applies in stages (Secrets and
/// access, ConfigMaps, Services and PDBs, StatefulSets, load balancers), and prunes what cairn's
/// inventory (the `cairn.dev/cluster` label) says it created for clusters whose spec is gone.
/// Never deletes a PersistentVolumeClaim (cairn never lists or renders them), never overwrites a
/// generated Secret, never touches the objects of a cluster whose spec is invalid.
public struct Reconciler: Sendable {
    public struct Options: Sendable {
        public var dryRun = false
        /// Only these namespaces are touched; nil allows all.
        public var namespaceAllow: Set<String>?
        /// Prune even when the spec directory reads as empty.
        public var allowPruneAll = false
        public var fieldManager = "cairn"

        public init() {}
    }

    public struct Result: Sendable {
        public var objects: [ObjectResult]
        public var warnings: [String]
        public var failed: Bool { objects.contains { $0.action == .failed || $0.action == .blocked } }
    }

    static let kinds: [(apiVersion: String, kind: String)] = [
        ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "StatefulSet"),
    ]

    public let client: KubeClient
    public let options: Options

    public init(client: KubeClient, options: Options = Options()) {
        self.client = client
        self.options = options
    }

    /// The render options the server supports (PDB API version from discovery).
    public func renderOptions() async throws(KubeError) -> RenderOptions {
        RenderOptions(podDisruptionBudgetAPIVersion: try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1")
    }

    /// Reconciles once.
    ///
    /// - Parameters:
    ///   - clusters: The valid clusters, rendered with `renderOptions()`.
    ///   - invalid: `namespace/name` of clusters whose spec file exists but is invalid: their live
    ///     objects are left untouched, never pruned.
    ///   - specsRead: Spec files found at the source; zero with live clusters present means the
    ///     source probably failed to read, and nothing is pruned unless `allowPruneAll`.
    ///   - prune: false when some spec file could not even be read for its identity: then no
    ///     cluster can be known to be gone.
    public func reconcile(_ clusters: [RenderedCluster], invalid: Set<String> = [], specsRead: Int,
                          prune: Bool = true) async throws(KubeError) -> Result {
        var pdbVersion = clusters.flatMap(\.objects).first { $0.kind == "PodDisruptionBudget" }?.apiVersion
        if pdbVersion == nil { pdbVersion = try await renderOptions().podDisruptionBudgetAPIVersion }
        var warnings: [String] = []
        let allowed = clusters.filter { options.namespaceAllow?.contains($0.spec.metadata.namespace) ?? true }
        for c in clusters where !allowed.contains(where: { $0.spec.identity == c.spec.identity }) {
            warnings.append("\(c.spec.identity) skipped: namespace \(c.spec.metadata.namespace) is not in --namespace-allow")
        }
        let desired = ClusterRenderer.applyOrder(allowed)

        // Live state: one LIST per kind across the namespaces cairn may touch.
        var live: [JSONValue] = []
        let listKinds = Self.kinds + [(pdbVersion!, "PodDisruptionBudget")]
        let namespaces: [String?] = options.namespaceAllow.map { $0.sorted().map(Optional.some) } ?? [nil]
        for (apiVersion, kind) in listKinds {
            for ns in namespaces {
                live += try await client.list(apiVersion: apiVersion, kind: kind, namespace: ns,
                                              labelSelector: "app.kubernetes.io/managed-by=cairn")
            }
        }

        var results: [ObjectResult] = []
        let actions = Planner.plan(desired, live: live)
        for stage in ApplyStage.allCases {
            let batch = actions.filter { $0.object.stage == stage }
            results += await withTaskGroup(of: ObjectResult.self) { group in
                for action in batch {
                    group.addTask { await self.execute(action) }
                }
                var out: [ObjectResult] = []
                for await r in group { out.append(r) }
                return out.sorted { $0.reference < $1.reference }
            }
            // A workload is not applied when what it reads failed.
            if results.contains(where: { $0.action == .failed }) && stage < .workloads {
                warnings.append("stopped before \(ApplyStage(rawValue: stage.rawValue + 1).map { "\($0)" } ?? "the next stage"): earlier objects failed")
                return Result(objects: results, warnings: warnings)
            }
        }

        // Prune: objects cairn created for clusters whose spec is gone.
        let kept = Set(allowed.map(\.spec.identity)).union(invalid)
        let desiredKeys = Set(desired.map(\.reference))
        let orphans = live.filter { o in
            guard let cluster = o["metadata", "labels", "cairn.dev/cluster"]?.stringValue,
                  let ns = o["metadata", "namespace"]?.stringValue else { return false }
            return !kept.contains("\(ns)/\(cluster)") && !desiredKeys.contains(Self.key(o))
                && (options.namespaceAllow?.contains(ns) ?? true)
        }
        if !orphans.isEmpty, !prune {
            warnings.append("some spec files could not be read; pruning nothing this pass")
        } else if !orphans.isEmpty, specsRead == 0, !options.allowPruneAll {
            let clustersLive = Set(orphans.compactMap { o in o["metadata", "labels", "cairn.dev/cluster"]?.stringValue.map { "\(o["metadata", "namespace"]?.stringValue ?? "")/\($0)" } })
            warnings.append("the spec directory reads as empty while \(clustersLive.count) clusters exist (\(clustersLive.sorted().joined(separator: ", "))); pruning nothing. If they really should go, run again with --allow-prune-all")
        } else {
            for o in orphans {
                guard let ref = ObjectReference(o) else { continue }
                // Generated credentials outlive their cluster like its volumes do: the data on
                // those volumes was written with them, and re-adding the spec must find them.
                if o["metadata", "annotations", "cairn.dev/generated-keys"] != nil {
                    results.append(ObjectResult(reference: Self.key(o), action: .kept, detail: "generated credentials are never pruned"))
                    continue
                }
                if options.dryRun {
                    results.append(ObjectResult(reference: Self.key(o), action: .pruned, detail: "dry run"))
                    continue
                }
                do {
                    try await client.delete(ref, propagation: .background, uid: o["metadata", "uid"]?.stringValue)
                    results.append(ObjectResult(reference: Self.key(o), action: .pruned, detail: nil))
                } catch {
                    if error.reason == .notFound { continue }
                    results.append(ObjectResult(reference: Self.key(o), action: .failed, detail: error.description))
                }
            }
        }
        return Result(objects: results, warnings: warnings)
    }

    static func key(_ o: JSONValue) -> String {
        "\(o["kind"]?.stringValue ?? "")/\(o["metadata", "namespace"]?.stringValue ?? "")/\(o["metadata", "name"]?.stringValue ?? "")"
    }

    private func execute(_ action: PlannedAction) async -> ObjectResult {
        let ref = action.object.reference
        switch action.kind {
        case .unchanged:
            return ObjectResult(reference: ref, action: .unchanged, detail: nil)
        case .blocked:
            return ObjectResult(reference: ref, action: .blocked, detail: action.reason)
        case .create, .configure:
            var body = action.object.body
            if action.kind == .create, action.object.createOnly {
                body = Self.generateSecrets(body)
            }
            do {
                _ = try await client.apply(body, fieldManager: options.fieldManager, force: true, dryRun: options.dryRun)
                let verb: ObjectResult.Action = action.kind == .create ? .created : .configured
                // The difference never carries a Secret's data: generated Secrets are create-only.
                return ObjectResult(reference: ref, action: verb, detail: options.dryRun ? "dry run" : (action.object.kind == "Secret" ? nil : action.reason))
            } catch {
                return ObjectResult(reference: ref, action: .failed, detail: error.description)
            }
        }
    }

    /// Fills the keys named by `cairn.dev/generated-keys` with random passwords, when the Secret
    /// is first created; never logged, never written anywhere else.
    static func generateSecrets(_ body: JSONValue) -> JSONValue {
        guard var o = body.objectValue, let keys = body["metadata", "annotations", "cairn.dev/generated-keys"]?.stringValue else { return body }
        var data = o["data"]?.objectValue ?? JSONObject()
        for key in keys.split(separator: ",").map(String.init) {
            var bytes = [UInt8](repeating: 0, count: 32)
            var generator = SystemRandomNumberGenerator()
            for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
            let password = Data(bytes).base64EncodedString().replacingOccurrences(of: "/", with: "-").replacingOccurrences(of: "+", with: "_")
            data[key] = .string(Data(password.utf8).base64EncodedString())
        }
        o["data"] = .object(data)
        return .object(o)
    }
}
