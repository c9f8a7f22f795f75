public import ClusterSpecs
import Crypto
import Dispatch

/// What a set of spec files asks for: the one place that goes from files (a directory, or a tree
/// at a commit) to the clusters cairn may apply. `validate`, `render`, `apply`, `plan` (both
/// sides) and `run` all read this, so they agree on which clusters are valid, which collide and
/// whether pruning is safe.
///
/// Incremental by construction: built with a `previous` state, a file whose text (and render
/// options) did not change keeps its parsed spec and rendered objects, and only the changed
/// files are read again. The whole-set checks (two files naming one cluster, two clusters
/// rendering one object) always run over every file: they are dictionary passes, cheap next to
/// parsing and rendering.
public struct DesiredState: Sendable {
    /// One spec file as read from its source.
    public struct File: Sendable, Hashable {
        public var path: String
        public var text: String

        public init(path: String, text: String) {
            self.path = path
            self.text = text
        }
    }

    /// One spec file, read: a valid cluster's spec and objects, or its problems.
    struct Entry: Sendable {
        /// SHA-256 of the file's text: what tells a file unchanged (the text itself is not kept:
        /// 10 MB at 10,000 files).
        var digest: Digest
        /// `namespace/name`, leniently read for an invalid file; nil when the file does not say.
        var identity: String?
        var spec: ClusterSpec?
        var errors: [SpecError]
        var rendered: RenderedCluster?
        /// Decoded, validated and rendered; false for a file outside the namespaces asked for,
        /// which is only parsed for its identity.
        var complete: Bool
    }

    public let options: RenderOptions
    /// Whether the rendered objects are kept deflated (`cairn run`, which holds them between passes).
    public let packed: Bool
    /// Spec files in source order.
    public let paths: [String]
    private let entries: [String: Entry]
    /// Files that were found but could not be read at all (too large, not UTF-8, a symbolic
    /// link), each as `path: reason`.
    public let unreadable: [String]
    /// The clusters unreadable files named when they were last read (from `previous`).
    private let unreadableIdentities: [String: String]

    /// The valid clusters, rendered, in source order.
    public let clusters: [RenderedCluster]
    /// `namespace/name` of clusters a spec file names but that cannot be applied (invalid file,
    /// defined twice, objects colliding with another cluster's), with the reason. Their live
    /// objects are left exactly as they are: never changed, never pruned.
    public let invalid: [String: String]
    /// Every problem, with file, line and column, sorted.
    public let errors: [SpecError]
    /// Notes on accepted fields cairn does not use, of the valid clusters, sorted.
    public var notes: [SpecError] { clusters.flatMap(\.spec.notes).sorted() }
    /// How many files this state read and rendered anew (the rest came from `previous`).
    public let filesRendered: Int
    /// The same as `previous`'s when this state was made of its files unchanged (so its
    /// clusters are the same): what the live cache need not take again. Otherwise new.
    public let revision: UInt64
    /// The render cache the files were read with (nil: none, or not used).
    private let renderCache: RenderCache?

    /// - Parameters:
    ///   - files: Every spec file of the source, in order.
    ///   - unreadable: Files found but not readable, with the reason.
    ///   - previous: A state of the same source to reuse unchanged files from.
    ///   - namespaces: Only the clusters of these namespaces are decoded, validated and rendered;
    ///     the other files are only parsed for the cluster they name (`cairn plan`: the namespaces
    ///     a change touches). Two files naming one cluster, or two clusters rendering one object,
    ///     are always in one namespace, so the whole-set checks hold for the clusters read. nil:
    ///     every file.
    ///   - packed: keep the rendered objects deflated (`ClusterRenderer.render`).
    ///   - renderCache: objects rendered by an earlier run for the same file text, path and
    ///     options (`cairn apply`, `cairn plan`); not used with `packed` or systems of a test's own.
    ///   - decodeWhenAsked: on a render cache hit, decode a cluster's system spec (and its notes)
    ///     only when asked for, from the file's text parsed again (`cairn apply`, which never
    ///     asks); false for a caller that reads every cluster's notes (`cairn plan --live`).
    package init(files: [File], unreadable: [(path: String, reason: String)] = [], options: RenderOptions = RenderOptions(),
                previous: DesiredState? = nil, namespaces: Set<String>? = nil, systems: SystemRegistry = .standard, packed: Bool = false,
                renderCache: RenderCache? = nil, decodeWhenAsked: Bool = false) {
        self.options = options
        self.packed = packed
        self.unreadable = unreadable.map { "\($0.path): \($0.reason)" }
        var unreadableIdentities: [String: String] = [:]
        for u in unreadable {
            if let id = previous?.entries[u.path]?.identity ?? previous?.unreadableIdentities[u.path] { unreadableIdentities[u.path] = id }
        }
        self.unreadableIdentities = unreadableIdentities
        let reusable = previous?.options == options && previous?.packed == packed ? previous?.entries ?? [:] : [:]
        var entries: [String: Entry] = [:]
        var paths: [String] = []
        var rendered = 0
        var toRead: [(file: File, digest: Digest)] = []
        var seen = Set<String>()
        for file in files where seen.insert(file.path).inserted {
            paths.append(file.path)
            let digest = Digest(file.text)
            if let old = reusable[file.path], old.digest == digest, old.complete || !Self.inScope(old.identity, namespaces) {
                entries[file.path] = old
            } else {
                toRead.append((file, digest))
            }
        }
        let cache = packed || systems.names != SystemRegistry.standard.names ? nil : renderCache
        self.renderCache = cache
        for (read, entry) in zip(toRead, Self.readAll(toRead, options: options, namespaces: namespaces, systems: systems, packed: packed, cache: cache,
                                                                     decodeWhenAsked: decodeWhenAsked)) {
            if entry.complete { rendered += 1 }
            entries[read.file.path] = entry
        }
        self.entries = entries
        self.paths = paths
        self.filesRendered = rendered
        if let previous, toRead.isEmpty, paths == previous.paths, self.unreadable == previous.unreadable,
           unreadableIdentities == previous.unreadableIdentities {
            revision = previous.revision
        } else {
            revision = UInt64.random(in: 1...UInt64.max)
        }

        var invalid: [String: String] = [:]
        var errors: [SpecError] = []
        // A file that cannot be read now but named its cluster before: that cluster is left as
        // it is, and the others go on (pruning included).
        for u in unreadable {
            if let id = unreadableIdentities[u.path] { invalid[id] = "\(u.path): \(u.reason); its live objects are left as they are" }
        }
        for path in paths {
            let entry = entries[path]!
            errors += entry.errors
            if entry.complete, entry.spec == nil, let id = entry.identity {
                invalid[id] = "the spec file is invalid, its live objects are left as they are: " + (entry.errors.first?.description ?? path)
            }
        }
        // A valid file naming the cluster an invalid file names too is a duplicate whose twin
        // cannot be read: neither is applied until one is fixed or removed.
        let namedByInvalid = Set(invalid.keys)
        let specs = paths.compactMap { entries[$0]!.spec }.filter { spec in
            guard namedByInvalid.contains(spec.identity) else { return true }
            let twin = paths.first { entries[$0]!.complete && entries[$0]!.spec == nil && entries[$0]!.identity == spec.identity } ?? "another file"
            errors.append(SpecError(file: spec.file, location: spec.metadata.nameLocation, path: "metadata.name",
                                    message: "cluster \(spec.identity) is also named by \(twin), which is invalid; "
                                        + "neither is applied until one is fixed or removed"))
            return false
        }
        let duplicates = ClusterSpecLoader.duplicateIdentities(specs)
        errors += duplicates.errors
        for e in duplicates.errors {
            if let id = entries[e.file]?.identity, invalid[id] == nil { invalid[id] = e.description }
        }
        let candidates = paths.compactMap { entries[$0]!.rendered }.filter { !duplicates.identities.contains($0.spec.identity) }
        let collisions = ClusterRenderer.collisions(candidates)
        errors += collisions.errors
        for e in collisions.errors {
            if let id = entries[e.file]?.identity, invalid[id] == nil { invalid[id] = e.description }
        }
        // A valid spec this environment cannot render (cairn's image not known, say): its
        // cluster is left as it is, like an invalid one.
        var unrenderable = Set<String>()
        for c in candidates where !c.problems.isEmpty && !collisions.identities.contains(c.spec.identity) {
            errors += c.problems
            unrenderable.insert(c.spec.identity)
            if invalid[c.spec.identity] == nil {
                invalid[c.spec.identity] = "the cluster cannot be rendered here, its live objects are left as they are: " + c.problems[0].description
            }
        }
        self.clusters = candidates.filter { !collisions.identities.contains($0.spec.identity) && !unrenderable.contains($0.spec.identity) }
        self.invalid = invalid
        self.errors = errors.sorted()
    }

    /// Reads the files on every core: each file is parsed, decoded and rendered on its own
    /// (pure functions of its text and the options), so a cold start (`apply`, `validate`, the
    /// daemon's first pass) renders 1,000 files in about half the time on two cores.
    private static func readAll(_ files: [(file: File, digest: Digest)], options: RenderOptions, namespaces: Set<String>?, systems: SystemRegistry,
                                packed: Bool, cache: RenderCache?, decodeWhenAsked: Bool) -> [Entry] {
        guard files.count > 1 else {
            return files.map {
                read($0.file, digest: $0.digest, options: options, namespaces: namespaces, systems: systems, packed: packed, cache: cache,
                     decodeWhenAsked: decodeWhenAsked)
            }
        }
        let results = UnsafeMutableBufferPointer<Entry?>.allocate(capacity: files.count)
        results.initialize(repeating: nil)
        defer {
            results.deinitialize()
            results.deallocate()
        }
        // Each iteration writes its own element, and concurrentPerform returns after the last.
        nonisolated(unsafe) let out = results
        DispatchQueue.concurrentPerform(iterations: files.count) { i in
            out[i] = read(files[i].file, digest: files[i].digest, options: options, namespaces: namespaces, systems: systems, packed: packed,
                          cache: cache, decodeWhenAsked: decodeWhenAsked)
        }
        return results.map { $0! }
    }

    /// - Parameter digest: `Digest(file.text)`, computed once by the caller.
    private static func read(_ file: File, digest: Digest, options: RenderOptions, namespaces: Set<String>?, systems: SystemRegistry,
                             packed: Bool, cache: RenderCache?, decodeWhenAsked: Bool) -> Entry {
        // Rendered by this build from this very text before, and kept with what the spec is
        // besides its system's spec: made again without parsing the file (which a no-op
        // `cairn apply` spent a tenth of its time on), the rest decoded only if asked for.
        if decodeWhenAsked, let summary = cache?.summary(path: file.path, digest: digest) {
            let spec = ClusterSpecLoader.load(summary, text: file.text, file: file.path, systems: systems.decoders)
            guard inScope(spec.identity, namespaces) else {
                return Entry(digest: digest, identity: spec.identity, spec: nil, errors: [], rendered: nil, complete: false)
            }
            if let cached = cache?.objects(path: file.path, digest: digest) {
                let rendered = ClusterRenderer.assemble(spec, objects: cached, systems: systems)
                return Entry(digest: digest, identity: spec.identity, spec: spec, errors: [], rendered: rendered, complete: true)
            }
        }
        let parsed: ClusterSpecLoader.Parsed
        do {
            parsed = try ClusterSpecLoader.parse(file.text, file: file.path)
        } catch {
            return Entry(digest: digest, identity: nil, spec: nil, errors: error.errors, rendered: nil, complete: true)
        }
        let identity = ClusterSpecLoader.identity(parsed: parsed.cluster(kinds: systems.kinds))
        guard inScope(identity, namespaces) else {
            return Entry(digest: digest, identity: identity, spec: nil, errors: [], rendered: nil, complete: false)
        }
        do {
            // Objects this build rendered from this very text before: the text decoded without
            // a problem then, so its system spec may be decoded only if something asks for it.
            let cached = cache?.objects(path: file.path, digest: digest)
            let deferring = cached != nil && decodeWhenAsked ? file.text : nil
            let spec = try ClusterSpecLoader.load(parsed, file: file.path, systems: systems.decoders, deferring: deferring)
            let rendered: RenderedCluster
            if let cached {
                rendered = ClusterRenderer.assemble(spec, objects: cached, systems: systems)
            } else {
                rendered = ClusterRenderer.render(spec, options: options, systems: systems, packed: packed)
                // Only a rendering without problems is kept: a cached one has none.
                if rendered.problems.isEmpty { cache?.store(path: file.path, digest: digest, objects: rendered.objects, summary: spec.summary) }
            }
            return Entry(digest: digest, identity: spec.identity, spec: spec, errors: [], rendered: rendered, complete: true)
        } catch {
            return Entry(digest: digest, identity: identity, spec: nil, errors: error.errors, rendered: nil, complete: true)
        }
    }

    /// SHA-256 of a file's text.
    struct Digest: Sendable, Hashable {
        let words: (UInt64, UInt64, UInt64, UInt64)

        init(_ text: String) {
            var text = text
            let digest = text.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
            words = digest.withUnsafeBytes { b in
                (b.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 b.loadUnaligned(fromByteOffset: 16, as: UInt64.self), b.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            }
        }

        /// From the 32 bytes `bytes` gives (a render cache's key).
        init(bytes b: [UInt8]) {
            precondition(b.count == 32, "a SHA-256 digest is 32 bytes")
            words = b.withUnsafeBytes { b in
                (b.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 b.loadUnaligned(fromByteOffset: 16, as: UInt64.self), b.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            }
        }

        /// The digest's 32 bytes, as SHA-256 gave them.
        var bytes: [UInt8] {
            withUnsafeBytes(of: words) { Array($0) }
        }

        static func == (a: Digest, b: Digest) -> Bool { a.words == b.words }

        func hash(into hasher: inout Hasher) {
            hasher.combine(words.0)
            hasher.combine(words.1)
            hasher.combine(words.2)
            hasher.combine(words.3)
        }
    }

    /// The live objects earlier runs found unchanged against the rendering of these very files
    /// (same path, text, options and cairn build: `RenderCache`), by `Kind/namespace/name`;
    /// empty without a render cache. An object listed with the same uid and resourceVersion
    /// is unchanged still.
    public func liveStamps() -> [String: LiveStamp] {
        guard let renderCache else { return [:] }
        let tables = clusters.compactMap { cluster in
            entries[cluster.spec.file].map { renderCache.stamps(path: cluster.spec.file, digest: $0.digest) }
        }
        var out: [String: LiveStamp] = [:]
        out.reserveCapacity(tables.reduce(0) { $0 + $1.count })
        for table in tables { out.merge(table) { a, _ in a } }
        return out
    }

    /// Keeps, with each valid cluster's rendering in the render cache, which of its objects a
    /// pass found unchanged as listed (`liveStamps` of a later run); saved with the cache.
    public func record(_ found: [String: LiveStamp]) {
        guard let renderCache, !found.isEmpty else { return }
        for cluster in clusters {
            guard let digest = entries[cluster.spec.file]?.digest else { continue }
            // Only a cluster with a stamp that is not the known one is recorded (none in a no-op).
            let known = renderCache.stamps(path: cluster.spec.file, digest: digest)
            var mine: [(String, LiveStamp)] = []
            var changed = false
            for o in cluster.objects {
                let reference = o.reference
                guard let stamp = found[reference] else { continue }
                mine.append((reference, stamp))
                if !changed, known[reference] != stamp { changed = true }
            }
            if changed {
                renderCache.record(path: cluster.spec.file, digest: digest, stamps: Dictionary(mine, uniquingKeysWith: { a, _ in a }))
            }
        }
    }

    /// Whether a file naming `identity` is read whole; one naming no cluster always is (for its errors).
    private static func inScope(_ identity: String?, _ namespaces: Set<String>?) -> Bool {
        guard let namespaces, let identity, let slash = identity.firstIndex(of: "/") else { return true }
        return namespaces.contains(String(identity[..<slash]))
    }

    /// Spec files found, readable or not: zero while clusters are live means the source
    /// probably failed to read, and nothing is pruned without `--allow-prune-all`.
    public var specsRead: Int { paths.count + unreadable.count }

    /// Whether a live cluster missing from this state can be taken as removed: false when some
    /// file could not be read, or is so broken that it does not even name its cluster.
    public var prune: Bool {
        unreadable.count == unreadableIdentities.count && paths.allSatisfy { entries[$0]!.identity != nil }
    }

    /// Whether any file had a problem.
    public var failed: Bool { !errors.isEmpty || !unreadable.isEmpty }

    /// The clusters `other` and this state disagree on: every cluster named by a file added,
    /// removed or changed (by its identity on either side: a file may rename its cluster), and
    /// every cluster valid on one side and not on the other (a new file can make an unchanged
    /// one a duplicate).
    public func changedClusters(since other: DesiredState) -> Set<String> {
        var ids = Set<String>()
        for (path, entry) in entries where other.entries[path]?.digest != entry.digest {
            if let id = entry.identity { ids.insert(id) }
            if let id = other.entries[path]?.identity { ids.insert(id) }
        }
        for (path, entry) in other.entries where entries[path] == nil {
            if let id = entry.identity { ids.insert(id) }
        }
        ids.formUnion(Set(invalid.keys).symmetricDifference(other.invalid.keys))
        return ids
    }

    /// The paths whose text differs between the two states (added, removed or changed).
    public func changedFiles(since other: DesiredState) -> Set<String> {
        var out = Set<String>()
        for (path, entry) in entries where other.entries[path]?.digest != entry.digest { out.insert(path) }
        for path in other.entries.keys where entries[path] == nil { out.insert(path) }
        return out
    }

    /// The cluster a file names, valid or not; nil when the file is not in this state or does
    /// not say.
    public func identity(ofFile path: String) -> String? { entries[path]?.identity }

    /// Whether the file is in this state and invalid.
    public func isInvalid(file path: String) -> Bool { entries[path].map { $0.spec == nil } ?? false }

    /// The file that names each cluster, valid or not (the first, for a duplicate).
    public var files: [String: String] {
        var out: [String: String] = [:]
        for path in paths.reversed() { if let id = entries[path]!.identity { out[id] = path } }
        return out
    }
}
