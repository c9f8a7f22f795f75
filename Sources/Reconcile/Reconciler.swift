public import ClusterSpecs
import Foundation
import Synchronization
public import KubeAPI
public import Render

/// The outcome of one object in a pass, kubectl style.
public struct ObjectResult: Sendable, CustomStringConvertible {
    public enum Action: String, Sendable, CaseIterable {
        case created, configured, unchanged, restarted, pruned, kept, blocked, failed
    }
    public let reference: String
    public let action: Action
    public let detail: String?
    /// `namespace/name` of the cluster the object belongs to.
    public let cluster: String?

    public init(reference: String, action: Action, detail: String?, cluster: String?) {
        self.reference = reference
        self.action = action
        self.detail = detail
        self.cluster = cluster
    }

    public var description: String {
        "\(reference) \(action.rawValue)" + (detail.map { " (\($0))" } ?? "")
    }

    public var json: JSONValue {
        var o: JSONObject = ["object": .string(reference), "action": .string(action.rawValue)]
        if let detail { o["detail"] = .string(detail) }
        return .object(o)
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
        /// Create a cluster's namespace when it does not exist (labelled as cairn's; never deleted).
        public var createNamespace = true
        /// cairn's own image (KurrentDB SplitDNS's resolver runs from it); nil: not known.
        public var cairnImage: String?
        /// The cluster DNS (`address:port`); nil: the Service kube-system/kube-dns's address.
        public var clusterDNS: String?
        /// Clusters whose pipelines run at once in a pass: several times the client's
        /// connections (8), so that they stay busy while a cluster plans or waits for its
        /// previous stage; more would only hold their requests (and their memory) in its queue.
        public var clustersInFlight = 64

        public init() {}
    }

    public struct Result: Sendable {
        public var objects: [ObjectResult]
        public var warnings: [String]
        /// Every cluster the pass was given (valid and invalid), in order.
        public var clusters: [ClusterHealth] = []
        /// The objects found unchanged as listed, with their uids and resourceVersions: what a
        /// later run may take as unchanged still (`DesiredState.record`).
        public var stamps: [String: LiveStamp] = [:]
        /// Something needs a person: an object failed or is blocked, or a spec is invalid.
        public var failed: Bool {
            objects.contains { $0.action == .failed || $0.action == .blocked } || clusters.contains { $0.phase <= .degraded }
        }
    }

    public let client: KubeClient
    public let options: Options
    /// The systems whose objects it lists and prunes.
    package let systems: SystemRegistry
    /// Where passes read live objects from (`cairn run`): kinds it has live cost no LIST. nil:
    /// every pass LISTs (`cairn apply`).
    public let cache: LiveCache?

    package init(client: KubeClient, options: Options = Options(), systems: SystemRegistry = .standard, cache: LiveCache? = nil) {
        self.client = client
        self.options = options
        self.systems = systems
        self.cache = cache
    }

    /// The same reconciler reading its live objects from `cache`.
    public func reading(from cache: LiveCache?) -> Reconciler {
        Reconciler(client: client, options: options, systems: systems, cache: cache)
    }

    /// The render options the server supports (PDB API version from discovery), cairn's image,
    /// and the cluster DNS (given, or the Service kube-system/kube-dns's address).
    public func renderOptions() async throws(KubeError) -> RenderOptions {
        var dns = options.clusterDNS
        if dns == nil { dns = await clusterDNS() }
        return RenderOptions(podDisruptionBudgetAPIVersion: try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1",
                             cairnImage: options.cairnImage, clusterDNS: dns)
    }

    /// The cluster DNS Service's address (`kube-dns` in kube-system, the name CoreDNS keeps
    /// too), port 53; nil when there is none, cairn may not read it or the read failed: an
    /// error for the clusters that need it (KurrentDB SplitDNS), never for the others.
    func clusterDNS() async -> String? {
        let ref = ObjectReference(apiVersion: "v1", kind: "Service", namespace: "kube-system", name: "kube-dns")
        guard let service = try? await client.get(ref) else { return nil }
        guard let ip = service["spec", "clusterIP"]?.stringValue, !ip.isEmpty, ip != "None" else { return nil }
        return ip.contains(":") ? "[\(ip)]:53" : "\(ip):53"
    }

    /// Reconciles once.
    ///
    /// Every cluster goes through the stages on its own, concurrently with the others (the
    /// client bounds the requests in flight): a failure in one of its stages stops the later
    /// stages and the rollout of that cluster only. A cluster whose namespace does not exist
    /// gets it created first (unless `createNamespace` is off).
    ///
    /// - Parameters:
    ///   - desired: The spec files' clusters, rendered with `renderOptions()`. Its invalid
    ///     clusters' live objects are left untouched, never pruned; nothing is pruned when a file
    ///     could not be read (`prune`), or when no spec file was found and `allowPruneAll` is off.
    ///   - scope: `namespace/name` of the only clusters this pass looks at (the daemon on a new
    ///     commit: the clusters whose files changed, those removed included); their live objects
    ///     are listed with a label selector on `cairn.dev/cluster`, so an incremental pass reads
    ///     and writes only what the commit touched. nil: every cluster.
    ///   - prefetched: this pass's LISTs, started while `desired` was read (`prefetch`).
    public func reconcile(_ desired: DesiredState, scope: Set<String>? = nil, prefetched: Prefetch? = nil) async throws(KubeError) -> Result {
        var clusters = desired.clusters
        var invalid = desired.invalid
        if let scope {
            clusters = clusters.filter { scope.contains($0.spec.identity) }
            invalid = invalid.filter { scope.contains($0.key) }
        }
        // A full pass asks discovery afresh: a CustomResourceDefinition (of a Certificate beside
        // a cluster, say) may have been installed or removed since the last. What this pass
        // learnt a moment ago for its render options (`renderOptions`) is fresh enough.
        if scope == nil { await client.forgetDiscovery(olderThan: .seconds(10)) }
        cache?.setDesired(desired.clusters, revision: desired.revision)
        do {
            return try await reconcileAll(clusters, invalid: invalid, specsRead: desired.specsRead, prune: desired.prune, scope: scope,
                                          verified: desired.liveStamps(), prefetched: prefetched)
        } catch {
            prefetched?.cancel()
            throw error
        }
    }

    private func reconcileAll(_ clusters: [RenderedCluster], invalid: [String: String], specsRead: Int,
                              prune: Bool, scope: Set<String>?, verified: [String: LiveStamp], prefetched: Prefetch?) async throws(KubeError) -> Result {
        // (Lazily: not a copy of every object to find the first.)
        var pdbVersion = clusters.lazy.flatMap(\.objects).first { $0.kind == "PodDisruptionBudget" }?.apiVersion
        if pdbVersion == nil { pdbVersion = prefetched?.podDisruptionBudgetAPIVersion }
        if pdbVersion == nil { pdbVersion = try await renderOptions().podDisruptionBudgetAPIVersion }
        var warnings: [String] = []
        let allowed = clusters.filter { options.namespaceAllow?.contains($0.spec.metadata.namespace) ?? true }
        for c in clusters where !(options.namespaceAllow?.contains(c.spec.metadata.namespace) ?? true) {
            warnings.append("\(c.spec.identity) skipped: namespace \(c.spec.metadata.namespace) is not in --namespace-allow")
        }
        let desired = ClusterRenderer.applyOrder(allowed)
        var desiredByKey: [String: RenderedObject] = [:]
        desiredByKey.reserveCapacity(desired.count)
        for o in desired { desiredByKey[o.reference] = o }
        var live = try await liveSet(podDisruptionBudgetAPIVersion: pdbVersion!, desired: desiredByKey, clusters: scope, verified: verified,
                                     prefetched: prefetched)
        if let scope { live.keep { $0.map(scope.contains) ?? false } }
        let stamps = live.stamps

        // Each cluster on its own: its stages in order, then its rollout.
        let namespaces = NamespaceGate(client: client, options: options)
        let passes = await withTaskGroup(of: ClusterPass.self) { group in
            var out: [ClusterPass] = []
            for (index, cluster) in allowed.enumerated() {
                // A window of clusters at a time (`Options.clustersInFlight`).
                if index >= max(1, options.clustersInFlight), let pass = await group.next() { out.append(pass) }
                // Read from the cache here, a window of clusters at a time, not all at once.
                // What a valid cluster renders is never pruned: it is handed to its pipeline.
                var current: [String: JSONValue] = [:]
                var planned: Set<String> = []
                for o in cluster.objects {
                    let reference = o.reference
                    current[reference] = live.take(reference)
                    if live.unchanged.contains(reference) { planned.insert(reference) }
                }
                let (mine, unchanged) = (current, planned)
                group.addTask { await self.pipeline(cluster, index: index, live: mine, unchanged: unchanged, namespaces: namespaces) }
            }
            for await pass in group { out.append(pass) }
            return out.sorted { $0.index < $1.index }
        }
        // By stage, then by object (a sort per stage: 110,000 tuples compared took 0.25 s).
        var byStage: [ApplyStage: [ObjectResult]] = [:]
        for pass in passes {
            for (stage, result) in pass.applied { byStage[stage, default: []].append(result) }
        }
        var results: [ObjectResult] = []
        for stage in ApplyStage.allCases {
            guard var list = byStage.removeValue(forKey: stage) else { continue }
            list.sort { $0.reference < $1.reference }
            results += list
        }
        results += passes.flatMap(\.rollout)
        var health = passes.map(\.health)
        for (identity, reason) in invalid.sorted(by: { $0.key < $1.key }) {
            health.append(ClusterHealth(cluster: identity, file: nil, phase: .invalid, reasons: [reason]))
        }

        // Prune: objects cairn created for clusters whose spec is gone, and objects a valid
        // cluster no longer renders (a document taken out of its file, a load balancer turned
        // off). A cluster that failed this pass is still in the spec files, so it is never a
        // reason to prune anything; the objects of an invalid cluster are left alone.
        let valid = Set(allowed.map(\.spec.identity))
        let kept = valid.union(invalid.keys)
        let desiredKeys = Set(desiredByKey.keys)
        // What no valid cluster renders (only these are read whole here).
        let orphans = live.objects(except: desiredKeys).filter { o in
            guard let cluster = o["metadata", "labels", "cairn.dev/cluster"]?.stringValue,
                  let ns = o["metadata", "namespace"]?.stringValue else { return false }
            let identity = "\(ns)/\(cluster)"
            let owned = valid.contains(identity) && invalid[identity] == nil
            return (owned || !kept.contains(identity)) && (options.namespaceAllow?.contains(ns) ?? true)
        }
        if !orphans.isEmpty, !prune {
            warnings.append("some spec files could not be read; pruning nothing this pass")
        } else if !orphans.isEmpty, specsRead == 0, !options.allowPruneAll {
            let clustersLive = Set(orphans.compactMap(Self.cluster))
            warnings.append("the spec directory reads as empty while \(clustersLive.count) clusters exist "
                            + "(\(abbreviatedList(clustersLive.sorted()))); pruning nothing. "
                            + "If they really should go, run again with --allow-prune-all")
        } else {
            for o in orphans {
                guard let ref = ObjectReference(o) else { continue }
                let cluster = Self.cluster(o)
                // Generated credentials outlive their cluster like its volumes do: the data on
                // those volumes was written with them, and re-adding the spec must find them.
                if o["metadata", "annotations", "cairn.dev/generated-keys"] != nil {
                    results.append(ObjectResult(reference: Self.key(o), action: .kept, detail: "generated credentials are never pruned", cluster: cluster))
                    continue
                }
                // A Secret from a spec file may hold the only copy of a password the data was
                // written with: cairn never deletes one (nor may it, by deploy/'s RBAC).
                if o["kind"]?.stringValue == "Secret" {
                    results.append(ObjectResult(reference: Self.key(o), action: .kept,
                                                detail: "cairn never deletes a Secret; delete it by hand once nothing needs it", cluster: cluster))
                    continue
                }
                // A StatefulSet its cluster no longer renders (a rack or group taken out): deleting
                // it would stop all its pods at once, past the PDB and the rollout order.
                if o["kind"]?.stringValue == "StatefulSet", let cluster, valid.contains(cluster) {
                    results.append(ObjectResult(reference: Self.key(o), action: .kept,
                                                detail: "no longer rendered for its cluster, which is still there: scale it down and delete it by hand "
                                                    + "(cairn does not stop all its pods at once)", cluster: cluster))
                    continue
                }
                if options.dryRun {
                    results.append(ObjectResult(reference: Self.key(o), action: .pruned, detail: "dry run", cluster: cluster))
                    continue
                }
                do {
                    try await client.delete(ref, propagation: .background, uid: o["metadata", "uid"]?.stringValue)
                    results.append(ObjectResult(reference: Self.key(o), action: .pruned, detail: nil, cluster: cluster))
                } catch {
                    if error.reason == .notFound { continue }
                    results.append(ObjectResult(reference: Self.key(o), action: .failed, detail: error.description, cluster: cluster))
                }
            }
        }
        return Result(objects: results, warnings: warnings, clusters: health, stamps: stamps)
    }

    /// What one cluster's pipeline did.
    private struct ClusterPass: Sendable {
        var index: Int
        var applied: [(stage: ApplyStage, result: ObjectResult)] = []
        var rollout: [ObjectResult] = []
        var health: ClusterHealth
    }

    /// One cluster's stages in order (its namespace first when missing), then its rollout. A
    /// stage with a failed object stops this cluster there, and only this cluster.
    /// - Parameter unchanged: objects already planned unchanged against `live` (`LiveSet.unchanged`).
    private func pipeline(_ cluster: RenderedCluster, index: Int, live: [String: JSONValue], unchanged: Set<String> = [],
                          namespaces: NamespaceGate) async -> ClusterPass {
        let identity = cluster.spec.identity
        var pass = ClusterPass(index: index, health: ClusterHealth(cluster: identity, file: cluster.spec.file))
        let actions = cluster.objects.map { o in
            unchanged.contains(o.reference) ? PlannedAction(kind: .unchanged, object: o, reason: nil) : Planner.plan(o, live: live[o.reference])
        }
        var previewOnly = false
        if actions.contains(where: { $0.kind == .create }) {
            switch await namespaces.ensure(cluster.spec.metadata.namespace, for: identity, document: cluster.spec.namespaceDocument) {
            case .exists:
                break
            case .created(let result):
                pass.applied.append((.access, result))
                previewOnly = options.dryRun
            case .failed(let result):
                pass.applied.append((.access, result))
                pass.health.report(.degraded, "\(result.reference) failed: \(result.detail ?? ""); nothing of the cluster was applied")
                return pass
            }
        }
        let stages = Set(actions.map(\.object.stage)).sorted()
        let namespacePending = previewOnly
        for (position, stage) in stages.enumerated() {
            let batch = actions.filter { $0.object.stage == stage }
            // Nothing to send for an unchanged or blocked object: its result is made here, not
            // in a task of its own (110,000 tasks woken for nothing in a no-op at 10,000 clusters).
            let settled = batch.filter { $0.kind == .unchanged || $0.kind == .blocked }
            let toSend = batch.filter { $0.kind != .unchanged && $0.kind != .blocked }
            let done = await withTaskGroup(of: ObjectResult.self) { group in
                for action in toSend {
                    group.addTask {
                        // A dry run into a namespace that does not exist yet: the server cannot preview it.
                        if namespacePending, action.kind == .create {
                            return ObjectResult(reference: action.object.reference, action: .created,
                                                detail: "dry run; its namespace is created first", cluster: identity)
                        }
                        return await self.execute(action, live: live[action.object.reference], cluster: identity)
                    }
                }
                var out: [ObjectResult] = []
                out.reserveCapacity(batch.count)
                for action in settled { out.append(Self.settled(action, cluster: identity)) }
                for await r in group { out.append(r) }
                return out.sorted { $0.reference < $1.reference }
            }
            pass.applied += done.map { (stage, $0) }
            for r in done {
                switch r.action {
                case .blocked: pass.health.report(.blocked, "\(r.reference) blocked")
                case .failed: pass.health.report(.degraded, "\(r.reference) failed: \(r.detail ?? "")")
                default: break
                }
            }
            // What reads a failed object is not applied: the cluster stops here.
            if done.contains(where: { $0.action == .failed }), position + 1 < stages.count {
                let rest = stages[(position + 1)...].map { "\($0)" }.joined(separator: ", ")
                pass.health.report(.degraded, "stopped before its \(rest): the next pass tries again")
                return pass
            }
        }
        pass.rollout = await rollout(cluster, results: pass.applied.map(\.result), live: live, health: &pass.health)
        return pass
    }

    /// Every object cairn manages in the namespaces it may touch: one LIST per kind (and per
    /// namespace with `namespaceAllow`), concurrently, the client bounding how many at once.
    ///
    /// - Parameter desired: When given, each live object is cut down as it arrives to what a
    ///   pass needs (`slim`): a pass over thousands of objects then never holds them whole.
    ///   `clusters`, when given, narrows the LISTs to those clusters' objects (by name; the caller
    ///   filters by namespace), unless there are too many for a label selector, and to their
    ///   namespaces when they are few: the API server reads every object of a kind in the
    ///   namespace (or the cluster) a LIST names before it applies the selector, so a pass over
    ///   one cluster costs what that cluster's namespace holds, not what the fleet holds.
    public func liveObjects(podDisruptionBudgetAPIVersion: String, desired: [String: RenderedObject]? = nil,
                            clusters: Set<String>? = nil) async throws(KubeError) -> [JSONValue] {
        try await liveSet(podDisruptionBudgetAPIVersion: podDisruptionBudgetAPIVersion, desired: desired, clusters: clusters).all
    }

    /// The live objects of a pass: those LISTed, parsed, and those of the cache, read when
    /// asked for (`object`).
    struct LiveSet {
        var listed: [String: JSONValue] = [:]
        var cached: [String: LiveCache.Cached] = [:]
        /// Listed objects already planned unchanged against their desired object, as listed.
        var unchanged: Set<String> = []
        /// Their uids and resourceVersions, as listed (`Result.stamps`).
        var stamps: [String: LiveStamp] = [:]

        init(listed: [JSONValue], cached: [LiveCache.Cached]) {
            self.listed.reserveCapacity(listed.count)
            for o in listed { self.listed[Reconciler.key(o)] = o }
            for c in cached where self.listed[c.key] == nil { self.cached[c.key] = c }
        }

        func object(_ key: String) -> JSONValue? { listed[key] ?? cached[key]?.value() }

        /// The object, handed over: the set no longer holds it, so its memory goes with the
        /// cluster's pipeline that takes it (freed there, on every core, rather than all at
        /// once at the end of the pass: 0.7 s of one core at 10,000 clusters).
        mutating func take(_ key: String) -> JSONValue? {
            if let o = listed.removeValue(forKey: key) { return o }
            return cached.removeValue(forKey: key)?.value()
        }

        /// Keeps the objects of the clusters `cluster` (`namespace/name`, nil: none) takes.
        mutating func keep(_ cluster: (String?) -> Bool) {
            listed = listed.filter { cluster(Reconciler.cluster($0.value)) }
            unchanged = unchanged.filter { listed[$0] != nil }
            stamps = stamps.filter { listed[$0.key] != nil }
            cached = cached.filter { cluster($0.value.cluster) }
        }

        /// Every object but those of `keys`, read, in the order of their keys (what a pass
        /// prunes, and reports, comes in the same order every time).
        func objects(except keys: Set<String>) -> [JSONValue] {
            let wanted = (listed.keys.filter { !keys.contains($0) } + cached.keys.filter { !keys.contains($0) }).sorted()
            return wanted.compactMap { object($0) }
        }

        var all: [JSONValue] { objects(except: []) }
    }

    /// - Parameter verified: objects found unchanged against `desired` before (`listShape`).
    /// - Parameter prefetched: the LISTs of this pass, started before `desired` was known
    ///   (`prefetch`); used when they list what this call would (no live cache, every cluster,
    ///   the same PodDisruptionBudget version), else cancelled.
    func liveSet(podDisruptionBudgetAPIVersion: String, desired: [String: RenderedObject]? = nil,
                 clusters: Set<String>? = nil, verified: [String: LiveStamp] = [:], prefetched: Prefetch? = nil) async throws(KubeError) -> LiveSet {
        if let prefetched {
            if cache == nil, clusters == nil, let desired, prefetched.podDisruptionBudgetAPIVersion == podDisruptionBudgetAPIVersion {
                prefetched.running.found.reserve(desired.count)
                prefetched.running.input.fulfill(ListInput(desired: desired, verified: verified))
                return try await finish(prefetched.running, cached: [])
            }
            prefetched.cancel()
        }
        var selector = "app.kubernetes.io/managed-by=cairn"
        if let clusters {
            let names = Set(clusters.compactMap { $0.split(separator: "/").last.map(String.init) }).sorted()
            if names.isEmpty { return LiveSet(listed: [], cached: []) }
            if names.count <= 100 { selector += ",cairn.dev/cluster in (\(names.joined(separator: ",")))" }
        }
        let labelSelector = selector
        var listKinds = try await managedKinds(podDisruptionBudgetAPIVersion: podDisruptionBudgetAPIVersion)
        let allNamespaces: [String?] = options.namespaceAllow.map { $0.sorted().map(Optional.some) } ?? [nil]
        var cached: [LiveCache.Cached] = []
        if let cache {
            // The cache keeps every kind in every namespace allowed; a kind it does not have live
            // (not listed yet after all, its watch broken, or not allowed) is listed below as
            // every pass did before.
            var targets = listKinds.flatMap { k in allNamespaces.map { LiveCache.Target(apiVersion: k.apiVersion, kind: k.kind, namespace: $0) } }
            // Secrets are granted per namespace (deploy/rbac.yaml): where cairn may not watch
            // them across the cluster (found on the first pass, the cross-cluster informer kept
            // for its rare retries), it watches them in each namespace it renders Secrets in.
            let allSecrets = LiveCache.Target(apiVersion: "v1", kind: "Secret", namespace: nil)
            func secretsPerNamespace() -> [LiveCache.Target] {
                cache.desiredNamespaces(kind: "Secret").sorted().map { LiveCache.Target(apiVersion: "v1", kind: "Secret", namespace: $0) }
            }
            var ignored = Set<LiveCache.Target>()
            if targets.contains(allSecrets), cache.failure(allSecrets)?.reason == .forbidden {
                ignored.insert(allSecrets)
                targets += secretsPerNamespace()
            }
            cache.track(targets)
            await cache.waitUntilListed(targets, timeout: .seconds(600))
            if targets.contains(allSecrets), !ignored.contains(allSecrets), cache.failure(allSecrets)?.reason == .forbidden {
                ignored.insert(allSecrets)
                let perNamespace = secretsPerNamespace()
                targets += perNamespace
                cache.track(targets)
                await cache.waitUntilListed(perNamespace, timeout: .seconds(600))
            }
            // Left out as the LISTs below leave them out: a kind cairn may not read (RBAC
            // narrowed: an optional kind, the Secrets of a namespace not granted).
            let optional = Set(CompanionObject.optionalKinds.map { "\($0.apiVersion) \($0.kind)" })
            for t in targets where cache.failure(t)?.reason == .forbidden && (optional.contains("\(t.apiVersion) \(t.kind)") || t.kind == "Secret") {
                ignored.insert(t)
            }
            let snapshot = cache.entries(targets.filter { !ignored.contains($0) }, clusters: clusters)
            cached = snapshot.objects
            let notLive = Set(snapshot.notLive.map { "\($0.apiVersion) \($0.kind)" })
            listKinds = listKinds.filter { notLive.contains("\($0.apiVersion) \($0.kind)") }
            if listKinds.isEmpty { return LiveSet(listed: [], cached: cached) }
        }
        var namespaces = allNamespaces
        if let clusters {
            let scoped = Set(clusters.compactMap { $0.split(separator: "/").first.map(String.init) })
                .filter { options.namespaceAllow?.contains($0) ?? true }
            if scoped.count < namespaces.count || (namespaces == [nil] && scoped.count <= Self.namespacesPerScopedPass) {
                namespaces = scoped.sorted().map(Optional.some)
            }
        }
        let lists = listKinds.flatMap { k in namespaces.map { ListTarget(apiVersion: k.apiVersion, kind: k.kind, namespace: $0) } }
        // `slim` drops cairn's own managedFields entries: they are not even built.
        let running = startLists(lists, labelSelector: labelSelector, dropping: desired == nil ? nil : Planner.fieldManager)
        if let desired { running.found.reserve(desired.count) }
        running.input.fulfill(ListInput(desired: desired, verified: verified))
        return try await finish(running, cached: cached)
    }

    /// One LIST of a pass: a kind, in a namespace or (nil) all.
    struct ListTarget: Sendable {
        var apiVersion: String
        var kind: String
        var namespace: String?
    }

    /// What a pass's LISTs read their pages with (`listShape`): nil desired objects, whole.
    struct ListInput: Sendable {
        var desired: [String: RenderedObject]?
        var verified: [String: LiveStamp]
    }

    /// A pass's LISTs, under way: each page is read once `input` is given (nil: given up, the
    /// pages read whole and dropped).
    struct RunningLists: Sendable {
        let lists: [ListTarget]
        let labelSelector: String
        let dropping: String?
        let input: Promise<ListInput?>
        let found: Found
        let task: Task<[Listed], Never>

        /// The objects planned unchanged as read, with their uids and resourceVersions.
        final class Found: Sendable {
            let state = Mutex<(keys: Set<String>, stamps: [String: LiveStamp])>(([], [:]))

            /// Room for this many objects (not grown and rehashed step by step).
            func reserve(_ count: Int) {
                state.withLock {
                    $0.keys.reserveCapacity(count)
                    $0.stamps.reserveCapacity(count)
                }
            }
        }

        /// The shape of a kind's pages, once `input` is given.
        func shape(_ apiVersion: String, _ kind: String) async -> JSONValue.ItemShape? {
            await Reconciler.pageShape(apiVersion, kind, input: input, found: found)
        }
    }

    static func pageShape(_ apiVersion: String, _ kind: String, input: Promise<ListInput?>, found: RunningLists.Found) async -> JSONValue.ItemShape? {
        guard let given = await input.value, let desired = given.desired else { return nil }
        return shape(apiVersion, kind, desired: desired, verified: given.verified, found: found)
    }

    /// Each object is read only as far as a pass keeps it (`slim`): the fields its desired
    /// object has (server defaults not even built), and as it is read it is planned. The
    /// objects found unchanged then are not planned again (which would parse the desired body
    /// a second time: a tenth of a one-shot no-op's CPU at 1,000 clusters).
    static func shape(_ apiVersion: String, _ kind: String, desired: [String: RenderedObject], verified: [String: LiveStamp],
                      found: RunningLists.Found) -> JSONValue.ItemShape {
        listShape(apiVersion: apiVersion, kind: kind, desired: desired, verified: verified) { key, stamp in
            found.state.withLock {
                $0.keys.insert(key)
                if let stamp { $0.stamps[key] = stamp }
            }
        }
    }

    /// Starts the LISTs, concurrently, the client bounding how many are in flight.
    func startLists(_ lists: [ListTarget], labelSelector: String, dropping: String?) -> RunningLists {
        let client = self.client
        let input = Promise<ListInput?>()
        let found = RunningLists.Found()
        let task = Task { () -> [Listed] in
            // (A typed-throws do/catch inside the task closure miscompiles with Swift 6.3.1: plain catch.)
            await withTaskGroup(of: Listed.self) { group in
                for (index, list) in lists.enumerated() {
                    group.addTask {
                        do {
                            let shape: @Sendable () async -> JSONValue.ItemShape? = {
                                await Self.pageShape(list.apiVersion, list.kind, input: input, found: found)
                            }
                            return Listed(index: index, objects: try await client.list(apiVersion: list.apiVersion, kind: list.kind, namespace: list.namespace,
                                                                                       labelSelector: labelSelector, droppingFieldsOf: dropping,
                                                                                       shapeWhenRead: shape))
                        } catch {
                            return Listed(index: index, error: error as? KubeError
                                ?? KubeError(reason: .transport, operation: "list", object: list.kind, message: "\(error)"))
                        }
                    }
                }
                var out: [Listed] = []
                for await r in group { out.append(r) }
                return out.sorted { $0.index < $1.index }
            }
        }
        return RunningLists(lists: lists, labelSelector: labelSelector, dropping: dropping, input: input, found: found, task: task)
    }

    /// The LISTs' objects, once all are read, with the cache's (`cached`).
    private func finish(_ running: RunningLists, cached: [LiveCache.Cached]) async throws(KubeError) -> LiveSet {
        let listed = await running.task.value
        let input = await running.input.value
        let desired = input?.desired
        let labelSelector = running.labelSelector
        let optional = Set(CompanionObject.optionalKinds.map { "\($0.apiVersion) \($0.kind)" })
        var live: [JSONValue] = []
        for r in listed {
            let list = running.lists[r.index]
            let (apiVersion, kind, namespace) = (list.apiVersion, list.kind, list.namespace)
            // An optional kind cairn may not list (deploy/'s RBAC narrowed) is left out: its
            // objects are neither planned against nor pruned, and applying one is its cluster's error.
            if let error = r.error, error.reason == .forbidden, optional.contains("\(apiVersion) \(kind)") { continue }
            // Secrets are granted per namespace (deploy/rbac.yaml): where cairn may not list
            // them across the cluster, it lists them in the namespaces of the clusters at hand.
            // A namespace it may not read them in is left out: cairn only ever creates Secrets
            // (never applies or deletes one), so a Secret it cannot see is never overwritten,
            // and creating a missing one there is that cluster's error, not the pass's.
            if let error = r.error, error.reason == .forbidden, kind == "Secret", apiVersion == "v1", namespace == nil {
                let namespaces = Set((desired ?? [:]).values.map(\.namespace)).sorted()
                let shape = await running.shape("v1", "Secret")
                for ns in namespaces {
                    do {
                        live += try await client.list(apiVersion: "v1", kind: "Secret", namespace: ns, labelSelector: labelSelector,
                                                      droppingFieldsOf: running.dropping, shape: shape)
                    } catch {
                        if error.reason != .forbidden { throw error }
                    }
                }
                continue
            }
            if let error = r.error, error.reason == .forbidden, kind == "Secret", apiVersion == "v1" { continue }
            if let error = r.error { throw error }
            live += r.objects
        }
        var set = LiveSet(listed: live, cached: cached)
        (set.unchanged, set.stamps) = running.found.state.withLock { $0 }
        return set
    }

    /// A pass's LISTs started before its desired state is known (`cairn apply`): the API
    /// server lists while the spec files are read and rendered, and each page is read once the
    /// pass gives its desired objects (`reconcile(_:prefetched:)`).
    public struct Prefetch: Sendable {
        let podDisruptionBudgetAPIVersion: String
        let running: RunningLists

        /// Gives the LISTs up (a run that stops before its pass).
        public func cancel() {
            running.input.fulfill(nil)
            running.task.cancel()
        }
    }

    /// Starts a pass's LISTs (every cluster's objects, in every namespace allowed) before its
    /// desired state is known; nil with a live cache (`cairn run` reads that instead).
    public func prefetch(podDisruptionBudgetAPIVersion: String) async throws(KubeError) -> Prefetch? {
        guard cache == nil else { return nil }
        let kinds = try await managedKinds(podDisruptionBudgetAPIVersion: podDisruptionBudgetAPIVersion)
        let namespaces: [String?] = options.namespaceAllow.map { $0.sorted().map(Optional.some) } ?? [nil]
        let lists = kinds.flatMap { k in namespaces.map { ListTarget(apiVersion: k.apiVersion, kind: k.kind, namespace: $0) } }
        return Prefetch(podDisruptionBudgetAPIVersion: podDisruptionBudgetAPIVersion,
                        running: startLists(lists, labelSelector: "app.kubernetes.io/managed-by=cairn", dropping: Planner.fieldManager))
    }

    /// How a pass reads the LIST of a kind: each object read as far as `slim` keeps of it
    /// against its desired object (`desired`, by `key`), slimmed, and planned; `unchanged`
    /// hears of every object planned unchanged.
    ///
    /// An object `verified` names at the uid and resourceVersion it is listed with was found
    /// unchanged against this very rendering before (`DesiredState.liveStamps`), and nothing
    /// of it has changed since: it is unchanged without reading its fields or its desired body
    /// (only what the rollout reads of a StatefulSet, and a Job's status, are kept of it).
    static func listShape(apiVersion: String, kind: String, desired: [String: RenderedObject], verified: [String: LiveStamp] = [:],
                          unchanged: @escaping @Sendable (String, LiveStamp?) -> Void) -> JSONValue.ItemShape {
        // `slim` keeps a StatefulSet's status, and a Job's (its conditions).
        let whole = kind == "StatefulSet" || kind == "Job" ? ["status"] : []
        let verifiedFields = unchangedFields(kind)
        @Sendable func key(_ metadata: JSONValue?) -> String {
            "\(kind)/\(metadata?["namespace"]?.stringValue ?? "")/\(metadata?["name"]?.stringValue ?? "")"
        }
        @Sendable func stamp(_ metadata: JSONValue?) -> LiveStamp? {
            guard let uid = metadata?["uid"]?.stringValue, let version = metadata?["resourceVersion"]?.stringValue else { return nil }
            return LiveStamp(uid: uid, resourceVersion: version)
        }
        @Sendable func isVerified(_ key: String, _ metadata: JSONValue?) -> Bool {
            guard let known = verified[key], desired.index(forKey: key) != nil, let stamp = stamp(metadata) else { return false }
            return known == stamp
        }
        @Sendable func finish(_ item: JSONObject, _ onto: JSONObject?) -> JSONValue {
            // Items of a list carry no apiVersion/kind; give them theirs.
            var full = JSONObject([(key: "apiVersion", value: .string(apiVersion)), (key: "kind", value: .string(kind))])
            for (k, v) in item.entries where k != "apiVersion" && k != "kind" { full.appendUnchecked(k, v) }
            let o = JSONValue.object(full)
            let metadata = item["metadata"]
            let key = key(metadata)
            guard let want = desired[key] else { return Reconciler.slim(o, desired: nil) }
            // Read as `fields` said for a verified object (onto nil: read again whole, planned).
            if let onto, isVerified(key, metadata) {
                unchanged(key, stamp(metadata))
                return Reconciler.slim(o, desired: want, wanted: onto)
            }
            let body = onto.map(JSONValue.object) ?? want.body
            let slim = Reconciler.slim(o, desired: want, wanted: body.objectValue)
            guard Planner.plan(want, live: slim, body: body).kind == .unchanged else { return slim }
            unchanged(key, stamp(metadata))
            // Planned unchanged: the pass reads no more of it than of a verified object, so no
            // more is kept (the first no-op after a cold sync, or one without the render cache,
            // held every object's fields until its cluster's pipeline: 1.1 GB at 10,000 clusters).
            return Reconciler.unchangedSlim(slim, kind: kind)
        }
        return JSONValue.ItemShape(fields: { metadata in
            let key = key(metadata)
            if isVerified(key, metadata) { return (verifiedFields, whole) }
            return (desired[key]?.body.objectValue, whole)
        }, finish: finish, metadata: .init(after: ["name", "namespace", "uid", "resourceVersion"]) { read in
            // A verified object's metadata: only what `slim` keeps that a pass reads of an
            // unchanged object (a StatefulSet's generation for its rollout, the cluster label);
            // its annotations and the managers' fields are not read.
            let metadata = JSONValue.object(read)
            return isVerified(key(metadata), metadata) ? ["generation", "labels", "deletionTimestamp"] : nil
        })
    }

    /// What a pass keeps of an object it knows unchanged (verified by its stamp, or planned
    /// unchanged as read), beside the metadata `slim` keeps and a StatefulSet's or Job's status:
    /// what the rollout reads of a StatefulSet's spec (`StatefulSetProgress`; values are read
    /// whole onto a scalar), nothing of any other kind's.
    static func unchangedFields(_ kind: String) -> JSONObject {
        kind == "StatefulSet" ? ["spec": ["replicas": 0, "updateStrategy": ["type": ""]]] : [:]
    }

    /// A slim object (`slim`) cut to what a pass keeps of an object it planned unchanged: what
    /// `slim` keeps with `unchangedFields` (the same object, in the same order), without
    /// slimming it again.
    static func unchangedSlim(_ slim: JSONValue, kind: String) -> JSONValue {
        guard let object = slim.objectValue else { return slim }
        let fields = unchangedFields(kind)
        var out = JSONObject()
        for (key, value) in object.entries where key == "apiVersion" || key == "kind" || key == "metadata" {
            out.appendUnchecked(key, value)
        }
        for (key, want) in fields.entries {
            if let have = object[key] { out[key] = Planner.project(have, onto: want) }
        }
        if let status = object["status"] { out["status"] = status }
        return .object(out)
    }

    /// The kinds a pass reads: the systems' kinds, PodDisruptionBudgets, and what documents
    /// beside a cluster may be (the core kinds, and the optional kinds that the server serves
    /// now: their CustomResourceDefinitions installed).
    func managedKinds(podDisruptionBudgetAPIVersion: String) async throws(KubeError) -> [(apiVersion: String, kind: String)] {
        var listKinds = systems.objectKinds + [(podDisruptionBudgetAPIVersion, "PodDisruptionBudget")]
        for (kind, accepted) in CompanionObject.kinds.sorted(by: { $0.key < $1.key }) where accepted.apiVersions == ["v1"] {
            if !listKinds.contains(where: { $0.apiVersion == "v1" && $0.kind == kind }) { listKinds.append(("v1", kind)) }
        }
        for k in CompanionObject.optionalKinds where try await client.serves(k.apiVersion, kind: k.kind) {
            if !listKinds.contains(where: { $0.apiVersion == k.apiVersion && $0.kind == k.kind }) { listKinds.append(k) }
        }
        return listKinds
    }

    /// At most this many namespaces are LISTed one by one for a pass over some clusters (more
    /// are one LIST across the cluster per kind).
    static let namespacesPerScopedPass = 8

    /// The live side of `cairn plan --live`: per cluster, the live objects projected onto the
    /// fields cairn renders (so that what the server adds is no difference), with every
    /// difference the local comparison finds confirmed by a server-side dry run. Live clusters
    /// no valid spec describes come as they are (their objects would be pruned).
    public func liveSides(for rendered: [RenderedCluster], invalid: Set<String>) async throws(KubeError) -> [ChangePlan.Side] {
        var pdb = rendered.flatMap(\.objects).first { $0.kind == "PodDisruptionBudget" }?.apiVersion
        if pdb == nil { pdb = try await renderOptions().podDisruptionBudgetAPIVersion }
        let live = try await liveObjects(podDisruptionBudgetAPIVersion: pdb!)
        var byCluster: [String: [JSONValue]] = [:]
        for o in live {
            guard let id = Self.cluster(o), !invalid.contains(id) else { continue }
            byCluster[id, default: []].append(o)
        }
        let headByID = Dictionary(rendered.map { ($0.spec.identity, $0) }, uniquingKeysWith: { a, _ in a })
        var sides: [ChangePlan.Side] = []
        for (id, objects) in byCluster.sorted(by: { $0.key < $1.key }) {
            let head = headByID[id]
            let rendered = Dictionary((head?.objects ?? []).map { ($0.reference, $0) }, uniquingKeysWith: { a, _ in a })
            var side: [RenderedObject] = []
            for o in objects {
                let createOnly = o["metadata", "annotations", "cairn.dev/generated-keys"] != nil
                guard let want = rendered[Self.key(o)] else {
                    side.append(RenderedObject(body: Self.trimmed(o), stage: .services, createOnly: createOnly))
                    continue
                }
                let wantBody = want.body
                var projected = Planner.project(o, onto: wantBody)
                if projected != wantBody, !want.createOnly, Planner.plan(want, live: o).kind == .configure {
                    // Unsure locally (defaulting, normalisation): the server decides.
                    let preview = try await client.apply(wantBody, fieldManager: options.fieldManager, force: true, dryRun: true)
                    if Self.sameContent(preview, o) { projected = wantBody }
                }
                side.append(RenderedObject(body: projected, stage: want.stage, createOnly: want.createOnly))
            }
            sides.append(ChangePlan.Side(identity: id, file: head?.spec.file ?? "(no spec file)", system: head?.system, objects: side))
        }
        return sides
    }

    /// A live object without what the server keeps for itself.
    static func trimmed(_ o: JSONValue) -> JSONValue {
        guard var obj = o.objectValue, var m = obj["metadata"]?.objectValue else { return o }
        for key in ["managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink"] { m[key] = nil }
        obj["metadata"] = .object(m)
        obj["status"] = nil
        return .object(obj)
    }

    struct Listed: Sendable {
        var index: Int
        var objects: [JSONValue] = []
        var error: KubeError?
    }

    static func key(_ o: JSONValue) -> String {
        // (Not `o["metadata", "name"]`: a list of keys made for every object of a pass.)
        let metadata = o["metadata"]
        return "\(o["kind"]?.stringValue ?? "")/\(metadata?["namespace"]?.stringValue ?? "")/\(metadata?["name"]?.stringValue ?? "")"
    }

    /// `namespace/name` of the cluster a live object belongs to, from its inventory label.
    static func cluster(_ o: JSONValue) -> String? {
        o["metadata", "labels", "cairn.dev/cluster"]?.stringValue.map { "\(o["metadata", "namespace"]?.stringValue ?? "")/\($0)" }
    }

    /// Reads a cluster's StatefulSets for its health, and takes the next step of the rollout
    /// cairn drives itself (`OnDelete`: Postgres and Aerospike): at most one pod per cluster
    /// per pass, StatefulSets (Aerospike racks) one after the other in render order.
    private func rollout(_ cluster: RenderedCluster, results: [ObjectResult], live: [String: JSONValue],
                         health: inout ClusterHealth) async -> [ObjectResult] {
        var out: [ObjectResult] = []
        let byReference = Dictionary(results.map { ($0.reference, $0) }, uniquingKeysWith: { a, _ in a })
        let identity = cluster.spec.identity
        let troubled = results.contains { $0.action == .failed || $0.action == .blocked }
        var acted = false
        // A failed Job is not run again by itself (its name is its content): a person reads its
        // log, and deleting it makes the next pass create it afresh.
        for job in cluster.objects where job.kind == "Job" {
            guard byReference[job.reference]?.action == .unchanged, let current = live[job.reference],
                  let why = JobState.failure(current) else { continue }
            health.report(.degraded, "Job \(job.name) failed (\(why)): `kubectl logs -n \(job.namespace) job/\(job.name)` says why; "
                          + "delete the Job and the next pass runs it again")
        }
        for set in cluster.objects where set.kind == "StatefulSet" {
            switch byReference[set.reference]?.action {
            case .created?, .configured?:
                health.report(.progressing, "StatefulSet \(set.name) \(byReference[set.reference]!.action.rawValue); its rollout starts")
                acted = true
                continue
            default: break
            }
            guard let current = live[set.reference] else { continue }
            let progress = StatefulSetProgress(current)
            health.rollouts.append(progress)
            if progress.settled { continue }
            health.report(.progressing, progress.waitingReason ?? "StatefulSet \(set.name) is rolling")
            // RollingUpdate sets roll by themselves; cairn drives OnDelete ones, one set at a time.
            // Pods are read only when the controller has seen the spec and counts pods left
            // on an older revision: a steady cluster costs no pod LIST.
            guard progress.strategy == "OnDelete", !acted, !troubled, progress.observed, !progress.updatedAll else {
                if progress.strategy == "OnDelete" { acted = true }
                continue
            }
            acted = true
            let selector = (set.body["spec", "selector", "matchLabels"]?.objectValue?.entries ?? [])
                .compactMap { e in e.value.stringValue.map { "\(e.key)=\($0)" } }.joined(separator: ",")
            let pods: [JSONValue]
            do {
                pods = try await client.list(apiVersion: "v1", kind: "Pod", namespace: set.namespace, labelSelector: selector)
            } catch {
                out.append(ObjectResult(reference: set.reference, action: .failed, detail: "reading its pods for the rollout: \(error)", cluster: identity))
                continue
            }
            switch RolloutDecision.next(for: progress, pods: pods, primaryLast: cluster.system.rollout == .replicasFirstPrimaryLast) {
            case .done, .wait:
                continue
            case .restart(let pod, let uid, let reason):
                let ref = "Pod/\(set.namespace)/\(pod)"
                if options.dryRun {
                    out.append(ObjectResult(reference: ref, action: .restarted, detail: reason + "; dry run", cluster: identity))
                    continue
                }
                do {
                    // The uid precondition: never a pod recreated meanwhile.
                    try await client.delete(ObjectReference(apiVersion: "v1", kind: "Pod", namespace: set.namespace, name: pod),
                                            propagation: .background, uid: uid)
                    out.append(ObjectResult(reference: ref, action: .restarted, detail: reason, cluster: identity))
                } catch {
                    if error.reason == .notFound || error.reason == .conflict { continue }
                    out.append(ObjectResult(reference: ref, action: .failed, detail: "restarting it for the rollout: \(error)", cluster: identity))
                }
            }
        }
        for r in out where r.action == .failed { health.report(.degraded, "\(r.reference) failed: \(r.detail ?? "")") }
        return out
    }

    /// The result of an action that sends nothing (unchanged, blocked).
    static func settled(_ action: PlannedAction, cluster: String?) -> ObjectResult {
        let ref = action.object.reference
        return action.kind == .blocked
            ? ObjectResult(reference: ref, action: .blocked, detail: action.reason, cluster: cluster)
            : ObjectResult(reference: ref, action: .unchanged, detail: nil, cluster: cluster)
    }

    private func execute(_ action: PlannedAction, live: JSONValue?, cluster: String?) async -> ObjectResult {
        let ref = action.object.reference
        switch action.kind {
        case .unchanged, .blocked:
            return Self.settled(action, cluster: cluster)
        case .create, .configure:
            if action.kind == .create, action.object.createOnly {
                // Created, never applied: a Secret that exists after all (made meanwhile, or
                // not listed) keeps its passwords. Server-side apply would overwrite them.
                let body = Self.generateSecrets(action.object.body)
                do {
                    _ = try await client.create(body, fieldManager: options.fieldManager, dryRun: options.dryRun)
                    return ObjectResult(reference: ref, action: .created, detail: options.dryRun ? "dry run" : nil, cluster: cluster)
                } catch {
                    if error.reason == .alreadyExists {
                        return ObjectResult(reference: ref, action: .unchanged, detail: "there already; kept as it is", cluster: cluster)
                    }
                    return ObjectResult(reference: ref, action: .failed, detail: error.description, cluster: cluster)
                }
            }
            do {
                // The local comparison saw a difference; where server defaulting or normalising
                // makes it unsure, the server's own dry run decides before anything is written.
                if action.kind == .configure, let live {
                    let preview = try await client.apply(action.object.body, fieldManager: options.fieldManager, force: true, dryRun: true)
                    if Self.sameContent(preview, live, desired: action.object) {
                        cache?.confirm(action.object, live: live)
                        return ObjectResult(reference: ref, action: .unchanged, detail: nil, cluster: cluster)
                    }
                    if options.dryRun {
                        return ObjectResult(reference: ref, action: .configured, detail: "dry run; \(action.reason ?? "")", cluster: cluster)
                    }
                }
                if options.dryRun {
                    _ = try await client.apply(action.object.body, fieldManager: options.fieldManager, force: true, dryRun: true)
                } else {
                    // The rendered bytes as they are, and the response not read.
                    let o = action.object
                    try await client.apply(encoded: o.json, reference: ObjectReference(apiVersion: o.apiVersion, kind: o.kind, namespace: o.namespace.isEmpty ? nil : o.namespace, name: o.name),
                                           fieldManager: options.fieldManager)
                }
                let verb: ObjectResult.Action = action.kind == .create ? .created : .configured
                // The difference never carries a Secret's data: generated Secrets are create-only.
                let reason = action.object.kind == "Secret" ? nil : action.reason
                return ObjectResult(reference: ref, action: verb,
                                    detail: options.dryRun ? ["dry run", reason].compactMap { $0 }.joined(separator: "; ") : reason, cluster: cluster)
            } catch {
                return ObjectResult(reference: ref, action: .failed, detail: error.description, cluster: cluster)
            }
        }
    }

    /// The same object but for bookkeeping the server changes on every write. `live` may be
    /// slim (see `slim`): then the preview is cut down the same way first.
    static func sameContent(_ preview: JSONValue, _ live: JSONValue, desired: RenderedObject? = nil) -> Bool {
        func strip(_ v: JSONValue) -> JSONValue {
            guard var o = v.objectValue, var m = o["metadata"]?.objectValue else { return v }
            for key in ["managedFields", "resourceVersion", "generation"] { m[key] = nil }
            o["metadata"] = .object(m)
            return .object(o)
        }
        let a = desired.map { slim(preview, desired: $0) } ?? preview
        return strip(a).canonicalJSON() == strip(live).canonicalJSON()
    }

    /// What a pass keeps of a live object: identity, labels, annotations, the field managers
    /// other than cairn (to name who drifted), the fields cairn renders (projected: server
    /// defaults dropped) and a StatefulSet's status. Orphans keep only their metadata, which
    /// is all pruning needs.
    static func slim(_ o: JSONValue, desired: RenderedObject?, wanted: JSONObject? = nil) -> JSONValue {
        guard let obj = o.objectValue, let m = obj["metadata"]?.objectValue else { return o }
        var meta = JSONObject()
        for key in ["name", "namespace", "uid", "generation", "labels", "annotations", "deletionTimestamp"] {
            if let v = m[key] { meta[key] = v }
        }
        if let managers = m["managedFields"]?.arrayValue {
            meta["managedFields"] = .array(managers.filter { $0["manager"]?.stringValue != Planner.fieldManager }.map { e in
                ["manager": e["manager"] ?? .null, "fieldsV1": e["fieldsV1"] ?? .null]
            })
        }
        var out: JSONObject = ["apiVersion": obj["apiVersion"] ?? .null, "kind": obj["kind"] ?? .null, "metadata": .object(meta)]
        if let want = wanted ?? desired?.body.objectValue {
            for (key, value) in want.entries where !["apiVersion", "kind", "metadata"].contains(key) {
                if let have = obj[key] { out[key] = Planner.project(have, onto: value) }
            }
        }
        if obj["kind"]?.stringValue == "StatefulSet", let status = obj["status"] { out["status"] = status }
        // A Job's conditions say whether it failed (`JobState`).
        if obj["kind"]?.stringValue == "Job", let conditions = obj["status"]?["conditions"] { out["status"] = ["conditions": conditions] }
        return .object(out)
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

/// A value given once and awaited by any number of tasks (those asking after it is given get
/// it at once).
final class Promise<Value: Sendable>: Sendable {
    private let state = Mutex<(value: Value?, given: Bool, waiting: [CheckedContinuation<Value, Never>])>((nil, false, []))

    /// Gives the value; later calls change nothing.
    func fulfill(_ value: Value) {
        let waiting = state.withLock { state -> [CheckedContinuation<Value, Never>] in
            guard !state.given else { return [] }
            state.value = value
            state.given = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for w in waiting { w.resume(returning: value) }
    }

    var value: Value {
        get async {
            await withCheckedContinuation { (c: CheckedContinuation<Value, Never>) in
                let given = state.withLock { state -> Value? in
                    if state.given { return state.value }
                    state.waiting.append(c)
                    return nil
                }
                if let given { c.resume(returning: given) }
            }
        }
    }
}
