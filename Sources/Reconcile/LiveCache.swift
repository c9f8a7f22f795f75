public import ClusterSpecs
import Foundation
public import KubeAPI
public import Render
import Synchronization

/// The live objects cairn manages, kept current by one LIST + WATCH per kind (and namespace),
/// the way client-go's informers work: list at a resourceVersion, watch from it with bookmarks,
/// resume from the last resourceVersion when a watch ends or its connection drops, list afresh
/// on 410 Gone, and retry with a bounded backoff while the API server is away.
///
/// `cairn run` reads its passes from here (`Reconciler.cache`): once synced, a pass on a new
/// commit or a resync makes no LIST request. Objects are kept cut down as a pass needs them
/// (`Reconciler.slim`: the fields cairn renders, other managers' field sets, a StatefulSet's
/// status), never whole, as compact JSON (`Entry`).
///
/// Every event on an object cairn renders is compared with what cairn wants of it (the
/// `Planner`): a change to a field cairn owns, or the object deleted, is drift, handed to
/// `onDrift` so that the daemon schedules a pass of that cluster. What cairn wrote itself matches
/// what it wants and is no drift; neither is a change the last pass's server-side dry run found
/// equal (a default the server adds). Objects of invalid clusters are not rendered, so their
/// events are never drift.
///
/// A kind whose watch is broken is not live: a pass lists that kind itself (and fails if the
/// server is away) rather than act on a cache that may be stale, and nothing is pruned from a
/// cache that has not listed yet.
public final class LiveCache: Sendable {
    /// What one informer keeps: a kind, in one namespace or all.
    public struct Target: Hashable, Sendable, CustomStringConvertible {
        public var apiVersion: String
        public var kind: String
        public var namespace: String?

        public init(apiVersion: String, kind: String, namespace: String?) {
            self.apiVersion = apiVersion
            self.kind = kind
            self.namespace = namespace
        }

        public var description: String { "\(kind) (\(apiVersion)) in " + (namespace ?? "all namespaces") }
    }

    /// A change to one of cairn's objects that a pass should put back.
    public struct Drift: Sendable {
        /// `namespace/name` of the cluster.
        public var cluster: String
        /// `Kind/namespace/name`.
        public var reference: String
        /// The first differing field and who changed it, or "deleted".
        public var what: String
    }

    /// Counts since start, for metrics and tests.
    public struct Counters: Sendable, Equatable {
        public var lists = 0
        /// Lists after a 410 Gone (the watch's resourceVersion expired).
        public var relists = 0
        public var watches = 0
        public var events = 0
        /// Watches that broke (connection dropped, server away) and were resumed.
        public var broken = 0
    }

    /// One object as kept: its cluster (from its `cairn.dev/cluster` label, with its namespace)
    /// and its slim form as compact JSON, parsed again when a pass reads it. A tree of
    /// `JSONValue`s takes about four times the bytes of its text: at 10,500 objects, 50 MB
    /// against 13.
    ///
    /// The top-level fields equal to what cairn wants of the object (`spec`, `data`: most of
    /// it, for an object in sync) are not kept twice: they are left out and taken from the
    /// desired object when the entry is read. `setDesired` keeps that true when what cairn wants
    /// changes (it writes such entries out whole first).
    struct Entry: Equatable {
        var cluster: String?
        /// Canonical JSON of the slim object without the fields `same` names, deflated against
        /// the first entry of its kind and system (`PackedJSON`; a Secret alone): entries of one
        /// kind differ in names, uids and a few values, so 110,000 of them take a fifth of
        /// their JSON.
        private(set) var packed: PackedJSON
        /// Bit i: the desired object's i-th top-level field, equal here, left out.
        private(set) var same: UInt64 = 0
        /// The desired object's JSON the fields were left out against, by its hash.
        private var desired = 0

        /// The JSON kept (tests).
        var json: [UInt8] { packed.unpacked }

        /// - Parameters:
        ///   - want: what cairn wants of the object (nil: kept whole).
        ///   - wanted: its body, when the caller parsed it already.
        init(_ slim: JSONValue, want: RenderedObject?, wanted parsed: JSONObject? = nil) {
            cluster = Reconciler.cluster(slim)
            let kind = slim["kind"]?.stringValue ?? ""
            let key = kind == "Secret" ? nil
                : "live \(slim["apiVersion"]?.stringValue ?? "") \(kind) \(slim["metadata", "labels", "app.kubernetes.io/name"]?.stringValue ?? "")"
            guard let want, var object = slim.objectValue, let wanted = parsed ?? want.body.objectValue else {
                packed = PackedJSON(slim.canonicalJSONBytes(), dictionary: key)
                return
            }
            for (i, field) in wanted.entries.enumerated() where i < 64 && !Self.identity.contains(field.key) {
                if object[field.key] == field.value {
                    object[field.key] = nil
                    same |= 1 << UInt64(i)
                }
            }
            packed = PackedJSON(JSONValue.object(object).canonicalJSONBytes(), dictionary: key)
            if same != 0 { desired = want.jsonHash }
        }

        static func == (a: Entry, b: Entry) -> Bool {
            a.cluster == b.cluster && a.same == b.same && a.desired == b.desired && a.packed.same(as: b.packed)
        }

        static let identity: Set<String> = ["apiVersion", "kind", "metadata"]

        /// Whether the entry can be read with `want` (it left nothing out, or left it out
        /// against that object).
        func readable(with want: RenderedObject?) -> Bool {
            same == 0 || want.map { $0.jsonHash == desired } ?? false
        }

        /// The slim object (its fields in no particular order: readers look fields up by key);
        /// nil when fields were left out against another desired object than `want` (never,
        /// while `setDesired` keeps entries in step).
        func value(want: RenderedObject?, wanted parsed: JSONObject? = nil) -> JSONValue? {
            guard let read = try? JSONValue.parse(packed.unpacked) else { return nil }
            guard same != 0 else { return read }
            guard readable(with: want), var object = read.objectValue, let wanted = parsed ?? want?.body.objectValue else { return nil }
            for (i, field) in wanted.entries.enumerated() where i < 64 && same & (1 << UInt64(i)) != 0 {
                object.appendUnchecked(field.key, field.value)
            }
            return .object(object)
        }
    }

    struct Store {
        var objects: [String: Entry] = [:]
        var version: String?
        /// The informer that owns this store (`track` starts a new one for a target it stopped):
        /// what an informer cancelled meanwhile writes is dropped.
        var generation = 0
        /// Listed, and its watch open (since the list).
        var live = false
        /// Listed at least once.
        var listed = false
        var error: KubeError?
    }

    /// What cairn wants of each object, by key (`Kind/namespace/name`): an index into the
    /// clusters' own arrays of objects (which `DesiredState` holds as well), not a second
    /// dictionary of every object (20 MB at 110,000 objects).
    struct DesiredObjects {
        private var clusters: [RenderedCluster] = []
        /// The cluster's index in the high 32 bits, the object's in the low.
        private var index: [String: UInt64] = [:]

        init() {}

        /// - Parameter previous: the index before, whose key strings are kept for the same keys
        ///   (the stores' keys are those strings: one copy of each, not one per dictionary).
        init(_ clusters: [RenderedCluster], previous: DesiredObjects? = nil) {
            self.clusters = clusters
            index.reserveCapacity(clusters.reduce(0) { $0 + $1.objects.count })
            for (c, cluster) in clusters.enumerated() {
                for (o, object) in cluster.objects.enumerated() {
                    let reference = object.reference
                    index[previous?.key(reference) ?? reference] = UInt64(c) << 32 | UInt64(o)
                }
            }
        }

        /// The index's own string for `key`, when it has the key.
        func key(_ key: String) -> String? { index.index(forKey: key).map { index.keys[$0] } }

        subscript(key: String) -> RenderedObject? {
            index[key].map { clusters[Int($0 >> 32)].objects[Int($0 & 0xffff_ffff)] }
        }

        var keys: Dictionary<String, UInt64>.Keys { index.keys }

        /// The namespaces of the objects of `kind`, read in place (not a copy of every object).
        func namespaces(kind: String) -> Set<String> {
            var out = Set<String>()
            for cluster in clusters { for o in cluster.objects where o.kind == kind { out.insert(o.namespace) } }
            return out
        }
    }

    struct State {
        var stores: [Target: Store] = [:]
        var tasks: [Target: Task<Void, Never>] = [:]
        var desired = DesiredObjects()
        /// Counts the changes of `desired`.
        var desiredGeneration = 0
        /// The `DesiredState.revision` it was set from, when given.
        var desiredRevision: UInt64?
        /// Per object, a fingerprint of (what cairn wants, the live object) that a pass found the
        /// same on the server (its dry run): an event leaving the object so is no drift.
        var confirmed: [String: Int] = [:]
        var counters = Counters()
        var nextGeneration = 0
        /// One string per cluster name, shared by its entries.
        var clusterNames = Set<String>()

        /// `entry` stored under `key`, with the desired index's string for the key and one
        /// string per cluster name (110,000 keys and names: 20 MB as copies of their own).
        mutating func store(_ entry: Entry, _ key: String, in t: Target) {
            stores[t]!.objects[desired.key(key) ?? key] = interned(entry)
        }

        mutating func interned(_ entry: Entry) -> Entry {
            guard let cluster = entry.cluster else { return entry }
            var entry = entry
            entry.cluster = clusterNames.insert(cluster).memberAfterInsert
            return entry
        }

        /// The store of `t`, when informer `generation` still owns it.
        func store(_ t: Target, _ generation: Int) -> Store? {
            stores[t].flatMap { $0.generation == generation ? $0 : nil }
        }

        /// Changes the store of `t` when informer `generation` still owns it.
        mutating func update(_ t: Target, _ generation: Int, _ change: (inout Store) -> Void) {
            guard var store = stores[t], store.generation == generation else { return }
            change(&store)
            stores[t] = store
        }
    }

    public let client: KubeClient
    public let labelSelector: String
    /// Seconds a watch asks the server to keep it open (it is then resumed).
    public let watchTimeoutSeconds: Int
    private let onDrift: @Sendable (Drift) -> Void
    private let state = Mutex(State())

    public init(client: KubeClient, labelSelector: String = "app.kubernetes.io/managed-by=cairn", watchTimeoutSeconds: Int = 60,
                onDrift: @escaping @Sendable (Drift) -> Void = { _ in }) {
        self.client = client
        self.labelSelector = labelSelector
        self.watchTimeoutSeconds = max(1, watchTimeoutSeconds)
        self.onDrift = onDrift
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// Keeps exactly these targets: starts an informer for each new one, stops the others.
    public func track(_ targets: [Target]) {
        let wanted = Set(targets)
        let stopped: [Task<Void, Never>] = state.withLock { s in
            var stopped: [Task<Void, Never>] = []
            for (t, task) in s.tasks where !wanted.contains(t) {
                stopped.append(task)
                s.tasks[t] = nil
                s.stores[t] = nil
            }
            for t in targets where s.tasks[t] == nil {
                s.nextGeneration += 1
                let generation = s.nextGeneration
                s.stores[t] = Store(generation: generation)
                s.tasks[t] = Task { [weak self] in await self?.inform(t, generation: generation) }
            }
            return stopped
        }
        for task in stopped { task.cancel() }
    }

    /// Stops every informer and forgets what they held (a replica that lost its lease).
    public func stop() {
        let tasks = state.withLock { s in
            let tasks = Array(s.tasks.values)
            s.tasks = [:]
            s.stores = [:]
            s.confirmed = [:]
            return tasks
        }
        for task in tasks { task.cancel() }
    }

    public var running: Bool { state.withLock { !$0.tasks.isEmpty } }

    /// What cairn wants of every object of the valid clusters: what events are compared with,
    /// and what new objects are cut down to.
    ///
    /// - Parameter revision: `DesiredState.revision` of the clusters: the same as last time,
    ///   nothing is done (a resync at the same commit).
    public func setDesired(_ clusters: [RenderedCluster], revision: UInt64? = nil) {
        if let revision, state.withLock({ $0.desiredRevision == revision }) { return }
        let previous = state.withLock { $0.desired }
        let desired = DesiredObjects(clusters, previous: previous)
        // Entries that left fields out against an object that changes now are written out whole
        // and left out again against the new one: gathered under the lock, made again outside it
        // (a change touching every object parses each twice; watches wait for none of it), then
        // put back where no event replaced them meanwhile.
        let (generation, old, gathered) = state.withLock { s in
            var gathered: [(target: Target, key: String, entry: Entry)] = []
            for (t, store) in s.stores {
                for (key, entry) in store.objects where entry.same != 0 && !RenderedObject.sameJSON(s.desired[key], desired[key]) {
                    gathered.append((t, key, entry))
                }
            }
            return (s.desiredGeneration, s.desired, gathered)
        }
        let changed = Set(desired.keys.filter { !RenderedObject.sameJSON(old[$0], desired[$0]) } + old.keys.filter { desired[$0] == nil })
        let made = gathered.map { g in (g.target, g.key, g.entry, g.entry.value(want: old[g.key]).map { Entry($0, want: desired[g.key]) }) }
        state.withLock { s in
            var settled = Set<String>()
            if s.desiredGeneration == generation {
                for (t, key, before, after) in made where s.stores[t]?.objects[key] == before {
                    if let after {
                        s.stores[t]!.objects[key] = s.interned(after)
                        settled.insert(key)
                    }
                }
            }
            // What events or lists stored meanwhile (against the desired objects of then), and
            // anything not settled above: made again here.
            for (t, store) in s.stores {
                for (key, entry) in store.objects where entry.same != 0 && !settled.contains(key)
                    && (changed.contains(key) || s.desiredGeneration != generation) && !entry.readable(with: desired[key]) {
                    if let value = entry.value(want: s.desired[key]) { s.stores[t]!.objects[key] = s.interned(Entry(value, want: desired[key])) }
                }
            }
            s.desired = desired
            // The names of clusters no entry belongs to any more are let go (the set is only to
            // share one string per name).
            var names = Set<String>()
            for store in s.stores.values { for entry in store.objects.values { if let c = entry.cluster { names.insert(c) } } }
            s.clusterNames = names
            s.desiredGeneration += 1
            s.desiredRevision = revision
            s.confirmed = s.confirmed.filter { desired[$0.key] != nil }
        }
    }

    /// Why a target's last LIST or watch failed, while it is not live.
    public func failure(_ target: Target) -> KubeError? {
        state.withLock { s in s.stores[target].flatMap { $0.live ? nil : $0.error } }
    }

    /// The namespaces cairn renders objects of a kind in.
    public func desiredNamespaces(kind: String) -> Set<String> {
        state.withLock { s in s.desired.namespaces(kind: kind) }
    }

    /// Waits until every target is live (listed, its watch open) or has failed its last
    /// attempt, up to `timeout`.
    public func waitUntilListed(_ targets: [Target], timeout: Duration) async {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end, !Task.isCancelled {
            let pending = state.withLock { s in targets.contains { t in s.stores[t].map { !$0.live && $0.error == nil } ?? false } }
            if !pending { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The objects of the live targets (of the clusters named, `namespace/name`, when given),
    /// and the targets that are not live (never listed, or their watch broken): those a pass
    /// lists itself. A kind with any target not live is left out whole (the pass lists the kind).
    public func snapshot(_ targets: [Target], clusters: Set<String>? = nil) -> (objects: [JSONValue], notLive: [Target]) {
        let (cached, notLive) = entries(targets, clusters: clusters)
        return (cached.compactMap { $0.value() }, notLive)
    }

    /// A live object of the cache, kept compact until a pass reads it (`value`): a full pass
    /// over 100,000 objects then holds the trees of the clusters it is working on, not all.
    public struct Cached: Sendable {
        public let key: String
        /// `namespace/name` of the cluster it belongs to, from its inventory label.
        public let cluster: String?
        fileprivate let entry: Entry
        fileprivate let want: RenderedObject?

        /// The slim object (`Reconciler.slim`), parsed now.
        public func value() -> JSONValue? { entry.value(want: want) }
    }

    /// The objects of the targets, as `snapshot` gives them but unread (`Cached.value`).
    public func entries(_ targets: [Target], clusters: Set<String>? = nil) -> (objects: [Cached], notLive: [Target]) {
        let (entries, notLive) = state.withLock { s in
            var entries: [(target: Target, cached: Cached)] = []
            let notLive = targets.filter { !(s.stores[$0]?.live ?? false) }
            let kindsNotLive = Set(notLive.map { "\($0.apiVersion) \($0.kind)" })
            for t in targets where !kindsNotLive.contains("\(t.apiVersion) \(t.kind)") {
                guard let store = s.stores[t] else { continue }
                for (key, entry) in store.objects where clusters == nil || entry.cluster.map(clusters!.contains) ?? false {
                    entries.append((t, Cached(key: key, cluster: entry.cluster, entry: entry, want: entry.same == 0 ? nil : s.desired[key])))
                }
            }
            return (entries, notLive)
        }
        let unreadable = Set(entries.filter { !$0.cached.entry.readable(with: $0.cached.want) }.map(\.target))
        guard unreadable.isEmpty else {
            // Never, while `setDesired` keeps entries in step; should it happen, the pass lists
            // these kinds itself rather than see their objects missing.
            assertionFailure("live cache entries unreadable: \(unreadable)")
            let kinds = Set(unreadable.map { "\($0.apiVersion) \($0.kind)" })
            return (entries.filter { !kinds.contains("\($0.target.apiVersion) \($0.target.kind)") }.map(\.cached),
                    notLive + targets.filter { kinds.contains("\($0.apiVersion) \($0.kind)") && !notLive.contains($0) })
        }
        return (entries.map(\.cached), notLive)
    }

    /// A pass's server-side dry run found `live` the same as `desired` on the server: while the
    /// object stays so, its events are no drift.
    func confirm(_ desired: RenderedObject, live: JSONValue) {
        let print = Self.fingerprint(desired, live)
        state.withLock { $0.confirmed[desired.reference] = print }
    }

    /// Of the live object in canonical form: the same whether it came from an event or from the
    /// cache, whatever the order of its fields.
    static func fingerprint(_ desired: RenderedObject, _ live: JSONValue) -> Int {
        var hasher = Hasher()
        hasher.combine(desired.jsonHash)
        var o = live.objectValue ?? JSONObject()
        o["status"] = nil
        hasher.combine(JSONValue.object(o).canonicalJSON())
        return hasher.finalize()
    }

    // MARK: - The informer of one target

    private func inform(_ t: Target, generation: Int) async {
        var failures = 0
        while !Task.isCancelled {
            if state.withLock({ $0.store(t, generation)?.version }) == nil {
                do {
                    try await list(t, generation: generation)
                    failures = 0
                } catch {
                    if Task.isCancelled { return }
                    state.withLock { s in s.update(t, generation) { $0.error = error; $0.live = false } }
                    failures += 1
                    // Not allowed, or not served: asked again rarely (a pass lists what it needs itself).
                    await Self.pause(failures, longest: [.forbidden, .notFound].contains(error.reason) ? 600 : 30)
                    continue
                }
            }
            guard let version = state.withLock({ $0.store(t, generation)?.version }) else { return }
            do {
                state.withLock { $0.counters.watches += 1 }
                try await client.watch(apiVersion: t.apiVersion, kind: t.kind, namespace: t.namespace, labelSelector: labelSelector,
                                       resourceVersion: version, timeoutSeconds: watchTimeoutSeconds,
                                       onOpen: { [weak self] in self?.opened(t, generation: generation) },
                                       onEvent: { [weak self] event in self?.receive(event, for: t, generation: generation) })
                failures = 0
            } catch {
                if Task.isCancelled || error.reason == .cancelled { return }
                if error.reason == .expired {
                    // Too old to resume from: list afresh (and compare, for what changed meanwhile).
                    state.withLock { s in
                        s.update(t, generation) { $0.version = nil; $0.live = false }
                        s.counters.relists += 1
                    }
                    continue
                }
                // Dropped, timed out, server away: not live until a watch is open again; resumed
                // from the last resourceVersion seen.
                state.withLock { s in
                    s.update(t, generation) { $0.live = false; $0.error = error }
                    s.counters.broken += 1
                }
                failures += 1
                await Self.pause(failures)
            }
        }
    }

    /// 0.5 s doubled per failure, at most `longest` seconds.
    private static func pause(_ failures: Int, longest: Double = 30) async {
        let seconds = min(longest, 0.5 * Double(1 << min(failures - 1, 12)))
        try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
    }

    private func list(_ t: Target, generation: Int) async throws(KubeError) {
        // Each object made an entry as its page is read (the page's tree is all a list holds,
        // not every object's: a relist of 100,000 objects at a restart would hold them all).
        let made = Mutex<[String: (entry: Entry, want: RenderedObject?)]>([:])
        let slim: @Sendable (JSONValue) -> JSONValue? = { [weak self] o in
            let key = Reconciler.key(o)
            let want = self?.state.withLock { $0.desired[key] }
            let wanted = want?.body.objectValue
            let entry = Entry(Reconciler.slim(o, desired: want, wanted: wanted), want: want, wanted: wanted)
            made.withLock { $0[key] = (entry, want) }
            return nil
        }
        let (_, version) = try await client.listVersioned(apiVersion: t.apiVersion, kind: t.kind, namespace: t.namespace,
                                                          labelSelector: labelSelector, droppingFieldsOf: Planner.fieldManager, transform: slim)
        let listed = made.withLock { $0 }
        var objects: [String: Entry] = [:]
        objects.reserveCapacity(listed.count)
        for (key, m) in listed { objects[key] = m.entry }
        let drifts: [Drift] = state.withLock { s -> [Drift] in
            guard var store = s.store(t, generation) else { return [] }
            // Fields are left out against what cairn wanted as each was read; should that have
            // changed since (a pass's `setDesired`), they are made again against the new.
            for (key, entry) in objects where !entry.readable(with: s.desired[key]) {
                if let value = entry.value(want: listed[key]?.want) { objects[key] = Entry(value, want: s.desired[key]) }
            }
            var drifts: [Drift] = []
            // A relist (after a 410): what changed since the last list or event is drift as any
            // event would have been. The first list is the first pass's business.
            if store.listed {
                for (key, old) in store.objects where objects[key] == nil {
                    if let d = Self.drift(key: key, live: nil, cluster: old.cluster, in: s) { drifts.append(d) }
                }
                for (key, new) in objects where store.objects[key] != new {
                    if let d = Self.drift(key: key, live: new.value(want: s.desired[key]), cluster: new.cluster, in: s) { drifts.append(d) }
                }
            }
            // Kept with the desired index's key strings and one string per cluster name.
            var kept: [String: Entry] = [:]
            kept.reserveCapacity(objects.count)
            for (key, entry) in objects { kept[s.desired.key(key) ?? key] = s.interned(entry) }
            store.objects = kept
            store.version = version
            store.listed = true
            // Live once its watch is open (`opened`): until then a pass lists the kind itself.
            store.live = false
            store.error = nil
            s.stores[t] = store
            s.counters.lists += 1
            return drifts
        }
        for d in drifts { onDrift(d) }
    }

    private func opened(_ t: Target, generation: Int) {
        state.withLock { s in
            s.update(t, generation) { store in
                guard store.listed else { return }
                store.live = true
                store.error = nil
            }
        }
    }

    private func receive(_ event: WatchEvent, for t: Target, generation: Int) {
        let key = Reconciler.key(event.object)
        // What cairn wants of the object is read under the lock; the work (the slim form, the
        // entry, the comparison) is done outside it, with the desired body parsed once.
        guard let want = state.withLock({ s -> RenderedObject?? in s.store(t, generation) == nil ? nil : .some(s.desired[key]) }) else { return }
        var made: (entry: Entry, assessed: Assessed?)?
        if event.kind == .added || event.kind == .modified {
            let body = want?.body
            let slim = Reconciler.slim(event.object, desired: want, wanted: body?.objectValue)
            made = (Entry(slim, want: want, wanted: body?.objectValue),
                    Self.assess(key: key, live: slim, cluster: Reconciler.cluster(slim), want: want, body: body))
        }
        let drift: Drift? = state.withLock { s -> Drift? in
            guard s.store(t, generation) != nil else { return nil }
            if let version = event.resourceVersion { s.stores[t]!.version = version }
            s.counters.events += 1
            switch event.kind {
            case .bookmark:
                return nil
            case .deleted:
                s.stores[t]!.objects[key] = nil
                return Self.drift(key: key, live: nil, cluster: Reconciler.cluster(event.object), in: s)
            case .added, .modified:
                guard let made, RenderedObject.sameJSON(s.desired[key], want) else {
                    // What cairn wants changed meanwhile (a pass's setDesired): made here against it.
                    let slim = Reconciler.slim(event.object, desired: s.desired[key])
                    s.store(Entry(slim, want: s.desired[key]), key, in: t)
                    return Self.drift(key: key, live: slim, cluster: Reconciler.cluster(slim), in: s)
                }
                s.store(made.entry, key, in: t)
                return made.assessed.flatMap { s.confirmed[key] == $0.fingerprint ? nil : $0.drift }
            }
        }
        if let drift { onDrift(drift) }
    }

    /// A difference from what cairn wants, and the fingerprint that makes it no drift when a
    /// pass confirmed it.
    struct Assessed {
        var drift: Drift
        var fingerprint: Int
    }

    /// Whether a live object differs from what cairn wants of it (`body`: `want`'s, parsed).
    private static func assess(key: String, live: JSONValue, cluster: String?, want: RenderedObject?, body: JSONValue?) -> Assessed? {
        guard let want, let cluster, !want.createOnly else { return nil }
        let plan = Planner.plan(want, live: live, body: body)
        guard plan.kind == .configure || plan.kind == .create else { return nil }
        return Assessed(drift: Drift(cluster: cluster, reference: key, what: plan.reason ?? "changed"), fingerprint: fingerprint(want, live))
    }

    /// Whether an object as it now is (nil: deleted) differs from what cairn wants of it.
    private static func drift(key: String, live: JSONValue?, cluster: String?, in s: State) -> Drift? {
        guard let want = s.desired[key], let cluster else { return nil }
        guard let live else { return Drift(cluster: cluster, reference: key, what: "deleted") }
        guard let assessed = assess(key: key, live: live, cluster: cluster, want: want, body: nil) else { return nil }
        return s.confirmed[key] == assessed.fingerprint ? nil : assessed.drift
    }
}
