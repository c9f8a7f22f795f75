import CLink
import ClusterSpecs
import Crypto
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Rendered objects kept on disk between one-shot runs (`cairn apply`, `cairn plan`), so that a
/// run on files that did not change parses them but does not render them again.
///
/// Rendering is a pure function of the file's text, its path, the render options and cairn's own
/// code, and the cache is keyed by all four, beyond doubt: an entry is found by the file's path
/// and the SHA-256 of its text, in a cache file named (and headed) by the SHA-256 of the options,
/// the format and the GNU build ids of the executable and of every library loaded into it. When
/// any of those has no build id, there is no cache. A cache file that is not the user's own, is
/// writable by others, or does not read back exactly (its trailing SHA-256, every length bounded)
/// is not used, and is replaced at the end of the run.
///
/// A cluster that renders a Secret is never cached (but for the Secrets cairn creates for the
/// server to fill with generated passwords: their data is a user name), so the cache holds
/// nothing that is not derived from the spec files' own text (which may name credentials, as in
/// git) and no credential a spec file gives in a Secret. The file
/// holds the entries this run used (so what is gone from the repository is dropped), and is
/// written with mode 0600 in a directory of mode 0700, atomically (a temporary file renamed).
///
/// Beside each file's entry it keeps the live objects a run found unchanged against that
/// rendering (`LiveStamp`: uid and resourceVersion, never content): a later run that lists the
/// same object at the same resourceVersion knows it unchanged without reading it. A Secret's
/// stamp holds nothing of its data.
public final class RenderCache: Sendable {
    struct Key: Hashable, Sendable {
        var path: String
        var digest: DesiredState.Digest
    }

    /// What `save` writes for a key: a block of the file as read (objects found and used, or a
    /// file's stamps), or one made in this run (objects rendered, stamps recorded), already in
    /// the file's form.
    private enum Entry {
        case loaded(Range<Int>)
        case rendered([UInt8])
    }

    private struct State {
        /// What this run used or rendered.
        var used: [Key: Entry] = [:]
        var hits = 0
        var stored = 0
        /// The files this run read (hit or not): their stamps are kept.
        var seen = Set<Key>()
        /// Stamps recorded this run that the file did not hold, merged with those it did.
        var recorded: [Key: [String: LiveStamp]] = [:]
        /// The file's stamp tables made so far (`liveStamps` and `record` ask for each twice).
        var loaded: [Key: [String: LiveStamp]] = [:]
    }

    /// The cache file's path.
    public let path: String
    private let header: [UInt8]
    /// The file as read (checked whole), and where each entry's objects are in it: an entry's
    /// objects are made when a file asks for them, on the cores that read the files.
    private let bytes: [UInt8]
    private let index: [Key: Range<Int>]
    /// Where each file's stamps are in `bytes` (checked when opened, made when asked for).
    private let stampIndex: [Key: Range<Int>]
    private let state = Mutex(State())

    /// Entries found in the file and used, and entries rendered and kept, so far.
    public var hits: Int { state.withLock { $0.hits } }
    public var stored: Int { state.withLock { $0.stored } }

    /// The format; a new one is a new file name.
    static let magic = Array("CAIRNRC4".utf8)
    /// A cache file larger than this is not read (10,000 clusters take about 140 MB).
    static let maximumSize = 1 << 30

    /// Opens the cache for these render options in `directory` (created with mode 0700 when
    /// missing). nil: no cache here, because cairn's build is not identified (a library without a
    /// GNU build id) or the directory is not usable (not the user's own, writable by others).
    public static func open(directory: String, options: RenderOptions) -> RenderCache? {
        guard let identity = binaryIdentity, usableDirectory(directory) else { return nil }
        var key = magic + identity
        for part in [options.podDisruptionBudgetAPIVersion, options.cairnImage, options.clusterDNS] + SystemRegistry.standard.names.map(Optional.some) {
            // Length-prefixed (nil apart from empty): no two lists of values read the same.
            if let part { put(Array(part.utf8), into: &key) } else { key += [0xFF, 0xFF, 0xFF, 0xFF] }
        }
        let header = Array(SHA256.hash(data: key))
        let path = directory + "/render-" + hex(header.prefix(12)) + ".cache"
        let bytes = read(path) ?? []
        let parsed = parse(bytes, header: header)
        return RenderCache(path: path, header: header, bytes: parsed == nil ? [] : bytes, index: parsed?.objects ?? [:], stampIndex: parsed?.stamps ?? [:])
    }

    private init(path: String, header: [UInt8], bytes: [UInt8], index: [Key: Range<Int>], stampIndex: [Key: Range<Int>]) {
        self.path = path
        self.header = header
        self.bytes = bytes
        self.index = index
        self.stampIndex = stampIndex
    }

    /// What was kept of the spec this file's text gave before (`ClusterSpec.summary`), or nil
    /// (not cached, or a spec with documents beside it). Asking is not using the entry.
    func summary(path: String, digest: DesiredState.Digest) -> ClusterSpec.Summary? {
        guard let range = index[Key(path: path, digest: digest)] else { return nil }
        var r = Reader(bytes: bytes, offset: range.lowerBound, end: range.upperBound)
        var summary: ClusterSpec.Summary?
        return r.summary(&summary) ? summary : nil
    }

    /// The objects rendered for this file's text before, or nil.
    func objects(path: String, digest: DesiredState.Digest) -> [RenderedObject]? {
        let key = Key(path: path, digest: digest)
        guard let range = index[key] else {
            state.withLock { _ = $0.seen.insert(key) }
            return nil
        }
        // The block was walked when the file was opened; made here, it reads the same.
        var r = Reader(bytes: bytes, offset: range.lowerBound, end: range.upperBound)
        var summary: ClusterSpec.Summary?
        guard r.summary(&summary), let count = r.u32() else { return nil }
        var objects: [RenderedObject] = []
        objects.reserveCapacity(count)
        for _ in 0..<count {
            guard let o = r.object() else { return nil }
            objects.append(o)
        }
        state.withLock { state in
            state.used[key] = .loaded(range)
            state.hits += 1
            state.seen.insert(key)
        }
        return objects
    }

    /// The live objects found unchanged against this file's rendering by earlier runs (and this
    /// one), by `Kind/namespace/name`.
    func stamps(path: String, digest: DesiredState.Digest) -> [String: LiveStamp] {
        stamps(Key(path: path, digest: digest))
    }

    private func stamps(_ key: Key) -> [String: LiveStamp] {
        if let known = state.withLock({ $0.recorded[key] ?? $0.loaded[key] }) { return known }
        let table = loadedStamps(key)
        state.withLock { $0.loaded[key] = table }
        return table
    }

    private func loadedStamps(_ key: Key) -> [String: LiveStamp] {
        guard let range = stampIndex[key] else { return [:] }
        var r = Reader(bytes: bytes, offset: range.lowerBound, end: range.upperBound)
        guard let count = r.u32() else { return [:] }
        var out: [String: LiveStamp] = [:]
        out.reserveCapacity(count)
        for _ in 0..<count {
            guard let reference = r.string(), let uid = r.string(), let version = r.string() else { return [:] }
            out[reference] = LiveStamp(uid: uid, resourceVersion: version)
        }
        return out
    }

    /// Keeps the live objects a run found unchanged against this file's rendering (merged with
    /// those found before: a stamp of an object changed since never matches it again). The
    /// caller gives only objects the rendering has, so the table stays as small as it.
    func record(path: String, digest: DesiredState.Digest, stamps found: [String: LiveStamp]) {
        let key = Key(path: path, digest: digest)
        let current = stamps(key)
        // A run that found everything as stamped before (a no-op) changes nothing.
        guard found.contains(where: { current[$0.key] != $0.value }) else { return }
        var merged = current
        for (reference, stamp) in found { merged[reference] = stamp }
        state.withLock { state in
            state.recorded[key] = merged
            state.seen.insert(key)
        }
    }

    /// Keeps what was rendered for this file's text, and what the spec is besides its system's
    /// spec (`summary`, nil: none kept), unless it holds a Secret with data of a spec file's
    /// (`holdsSecretData`).
    func store(path: String, digest: DesiredState.Digest, objects: [RenderedObject], summary: ClusterSpec.Summary? = nil) {
        guard !objects.contains(where: Self.holdsSecretData) else { return }
        var block: [UInt8] = []
        if let summary {
            block.append(1)
            let m = summary.metadata
            for s in [summary.apiVersion, summary.kind, m.name, m.namespace] { Self.put(Array(s.utf8), into: &block) }
            Self.put(UInt32(m.nameLocation.line), into: &block)
            Self.put(UInt32(m.nameLocation.column), into: &block)
            for map in [m.labels, m.annotations] {
                Self.put(UInt32(map.count), into: &block)
                for (k, v) in map.sorted(by: { $0.key < $1.key }) {
                    Self.put(Array(k.utf8), into: &block)
                    Self.put(Array(v.utf8), into: &block)
                }
            }
        } else {
            block.append(0)
        }
        Self.put(UInt32(objects.count), into: &block)
        for o in objects {
            block.append(UInt8(o.stage.rawValue))
            block.append(o.createOnly ? 1 : 0)
            for s in [o.apiVersion, o.kind, o.namespace, o.name] { Self.put(Array(s.utf8), into: &block) }
            Self.put(o.json, into: &block)
        }
        state.withLock { state in
            state.used[Key(path: path, digest: digest)] = .rendered(block)
            state.stored += 1
        }
    }

    /// Whether the object is a Secret that may hold a credential: every Secret but those cairn
    /// creates for the server to fill (`createOnly`, `cairn.dev/generated-keys`), whose rendered
    /// data is only what the spec names (a user name), none of the keys generated.
    static func holdsSecretData(_ o: RenderedObject) -> Bool {
        guard o.kind == "Secret" else { return false }
        let body = o.body
        guard o.createOnly, let generated = body["metadata", "annotations", "cairn.dev/generated-keys"]?.stringValue else { return true }
        let keys = generated.split(separator: ",").map(String.init)
        let data = body["data"]?.objectValue?.keys ?? []
        return body["stringData"] != nil || data.contains(where: keys.contains)
    }

    /// How long a cache file no run has used is kept (one of another cairn build, server or
    /// options), and a temporary file a killed run left.
    static let unusedFor: Int = 7 * 24 * 3600
    static let temporaryFor: Int = 3600

    /// Writes the entries this run used, when they differ from what the file held (else marks
    /// the file used), and removes the directory's cache files no run has used for a week.
    public func save() throws(RenderCacheError) {
        defer { Self.evict(directory: String(path[..<path.lastIndex(of: "/")!]), keeping: path) }
        let taken: (used: [Key: Entry], stamps: [Key: Entry])? = state.withLock { state in
            // The stamp tables of the files this run read: as recorded, or as the file held them.
            var stamps: [Key: Entry] = [:]
            for key in state.seen {
                if let recorded = state.recorded[key] { stamps[key] = .rendered(Self.encode(recorded)) }
                else if let range = stampIndex[key] { stamps[key] = .loaded(range) }
            }
            let same = state.stored == 0 && state.used.count == index.count && state.recorded.isEmpty && stamps.count == stampIndex.count
            return same ? nil : (state.used, stamps)
        }
        guard let (used, stamps) = taken else {
            if !index.isEmpty || !stampIndex.isEmpty { utimes(path, nil) }
            return
        }
        // Not the pid alone: in a container cairn is often pid 1 every time.
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw RenderCacheError(path: temporary, operation: "create", errno: errno) }
        // Streamed, hashed as it goes: the file is never held twice (old and new, 160 MB each
        // at 10,000 clusters) beside the run's own state.
        var out = Writer(fd: fd)
        out.append(Self.magic)
        out.append(header)
        // Two sections alike: the objects of each file's entry, then each file's stamps.
        for section in [used, stamps] {
            out.put(UInt32(section.count))
            for (key, entry) in section.sorted(by: { $0.key.path < $1.key.path }) {
                out.put(Array(key.path.utf8))
                out.append(key.digest.bytes)
                switch entry {
                case .loaded(let range): bytes.withUnsafeBytes { out.append(UnsafeRawBufferPointer(rebasing: $0[range])) }
                case .rendered(let block): out.append(block)
                }
            }
        }
        out.finish()
        let failure = out.failure
        close(fd)
        // Too large to be read back: no file (the old one, if any, stays; it is still checked).
        guard failure == nil, out.written <= Self.maximumSize else {
            unlink(temporary)
            if let failure { throw RenderCacheError(path: temporary, operation: "write", errno: failure) }
            return
        }
        guard rename(temporary, path) == 0 else {
            let e = errno
            unlink(temporary)
            throw RenderCacheError(path: path, operation: "rename", errno: e)
        }
    }

    /// Writes to a file through a buffer of a megabyte, hashing what it writes; ends with the
    /// SHA-256 of everything before it. Stops writing at the first error (kept in `failure`)
    /// and once past `maximumSize`.
    private struct Writer {
        let fd: Int32
        var buffer: [UInt8] = []
        var hash = SHA256()
        var written = 0
        var failure: Int32?

        init(fd: Int32) {
            self.fd = fd
            buffer.reserveCapacity(Self.flushAt)
        }

        static let flushAt = 1 << 20

        mutating func append(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { append($0) }
        }

        mutating func append(_ bytes: UnsafeRawBufferPointer) {
            if buffer.count + bytes.count > Self.flushAt { flush() }
            if bytes.count > Self.flushAt {
                hash.update(bufferPointer: bytes)
                write(bytes)
            } else {
                buffer.append(contentsOf: bytes)
            }
        }

        mutating func put(_ n: UInt32) {
            buffer.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)])
        }

        mutating func put(_ bytes: [UInt8]) {
            put(UInt32(bytes.count))
            append(bytes)
        }

        /// Hashes and writes the buffer, then the hash of all.
        mutating func finish() {
            flush()
            let sum = Array(hash.finalize())
            sum.withUnsafeBytes { write($0) }
        }

        private mutating func flush() {
            guard !buffer.isEmpty else { return }
            buffer.withUnsafeBytes { bytes in
                hash.update(bufferPointer: bytes)
                Self.write(bytes, to: fd, written: &written, failure: &failure)
            }
            buffer.removeAll(keepingCapacity: true)
        }

        private mutating func write(_ bytes: UnsafeRawBufferPointer) {
            Self.write(bytes, to: fd, written: &written, failure: &failure)
        }

        private static func write(_ bytes: UnsafeRawBufferPointer, to fd: Int32, written: inout Int, failure: inout Int32?) {
            var done = 0
            while failure == nil, written <= RenderCache.maximumSize, done < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else {
                    failure = n < 0 ? errno : EIO
                    return
                }
                done += n
                written += n
            }
            // Past the limit, what is left is counted, not written: the file is dropped.
            if done < bytes.count, failure == nil { written += bytes.count - done }
        }
    }

    /// Removes `render-*.cache` files not written or used for `unusedFor`, and temporary ones
    /// older than `temporaryFor`; nothing else in the directory.
    static func evict(directory: String, keeping: String, now: Int = time(nil)) {
        guard let dir = opendir(directory) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix("render-"), name.contains(".cache") else { continue }
            let path = directory + "/" + name
            var st = stat()
            guard path != keeping, lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_uid == geteuid() else { continue }
            let age = now - st.st_mtim.tv_sec
            if name.hasSuffix(".cache") ? age > unusedFor : age > temporaryFor { unlink(path) }
        }
    }

    // MARK: - Reading

    /// A cache file's bytes, or nil when it is missing or not safe to trust (not a regular file
    /// of this user's, writable by others, empty or too large).
    static func read(_ path: String) -> [UInt8]? {
        // Not blocking on a FIFO put in its place; a regular file reads the same.
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_uid == geteuid(), st.st_mode & 0o022 == 0,
              st.st_size > 0, st.st_size <= maximumSize else { return nil }
        // Not zero-filled first (16 MB at 1,000 clusters): every byte is read into, or none kept.
        let size = Int(st.st_size)
        var complete = false
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var filled = 0
            while filled < size {
                let n = Glibc.read(fd, buffer.baseAddress! + filled, size - filled)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { break }
                filled += n
            }
            complete = filled == size
            count = complete ? size : 0
        }
        return complete ? bytes : nil
    }

    /// A stamp table in the file's form: its count, then reference, uid and resourceVersion of each.
    private static func encode(_ table: [String: LiveStamp]) -> [UInt8] {
        var block: [UInt8] = []
        put(UInt32(table.count), into: &block)
        for (reference, stamp) in table.sorted(by: { $0.key < $1.key }) {
            for s in [reference, stamp.uid, stamp.resourceVersion] { put(Array(s.utf8), into: &block) }
        }
        return block
    }

    /// Where each entry's objects, and each file's stamps, are, once the whole file is checked:
    /// its trailing SHA-256, its header, and every length against what is left. Any flaw: nil.
    static func parse(_ bytes: [UInt8], header: [UInt8]) -> (objects: [Key: Range<Int>], stamps: [Key: Range<Int>])? {
        guard bytes.count >= magic.count + header.count + 4 + 32 else { return nil }
        let body = bytes.count - 32
        let sum = bytes.withUnsafeBytes { Array(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: $0[..<body]))) }
        guard sum == Array(bytes[body...]) else { return nil }
        var r = Reader(bytes: bytes, offset: 0, end: body)
        guard r.take(magic.count) == magic, r.take(header.count) == header, let count = r.u32() else { return nil }
        // Counts no bigger than the bytes left could hold (an entry takes at least 40, an object 22).
        guard count <= (body - r.offset) / 40 else { return nil }
        var index: [Key: Range<Int>] = [:]
        index.reserveCapacity(count)
        for _ in 0..<count {
            guard let path = r.string(), let digest = r.take(32) else { return nil }
            let start = r.offset
            var summary: ClusterSpec.Summary?
            guard r.summary(&summary), let n = r.u32(), n <= (body - r.offset) / 22 else { return nil }
            for _ in 0..<n {
                guard r.skipObject() else { return nil }
            }
            index[Key(path: path, digest: DesiredState.Digest(bytes: digest))] = start..<r.offset
        }
        // Stamp tables: path, digest, then references, uids and resourceVersions (a table takes
        // at least 40 bytes, a stamp 12).
        guard let tables = r.u32(), tables <= (body - r.offset) / 40 else { return nil }
        var stamps: [Key: Range<Int>] = [:]
        stamps.reserveCapacity(tables)
        for _ in 0..<tables {
            guard let path = r.string(), let digest = r.take(32) else { return nil }
            let start = r.offset
            guard let n = r.u32(), n <= (body - r.offset) / 12 else { return nil }
            for _ in 0..<(3 * n) {
                guard let length = r.u32(), r.skip(length) else { return nil }
            }
            stamps[Key(path: path, digest: DesiredState.Digest(bytes: digest))] = start..<r.offset
        }
        return r.offset == body ? (index, stamps) : nil
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset: Int
        let end: Int

        mutating func take(_ n: Int) -> [UInt8]? {
            guard n >= 0, n <= end - offset else { return nil }
            defer { offset += n }
            return Array(bytes[offset..<offset + n])
        }

        mutating func skip(_ n: Int) -> Bool {
            guard n >= 0, n <= end - offset else { return false }
            offset += n
            return true
        }

        mutating func u32() -> Int? {
            guard end - offset >= 4 else { return nil }
            defer { offset += 4 }
            return Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
        }

        /// A length-prefixed run of bytes, where they are (not copied).
        mutating func slice() -> ArraySlice<UInt8>? {
            guard let n = u32(), n <= end - offset else { return nil }
            defer { offset += n }
            return bytes[offset..<offset + n]
        }

        mutating func string() -> String? {
            guard let n = u32(), n <= end - offset else { return nil }
            defer { offset += n }
            return String(validating: bytes[offset..<offset + n], as: UTF8.self)
        }

        /// What was kept of a spec (`store`): a byte saying whether there is one, then its
        /// apiVersion, kind, name and namespace, where the name is (line, column), its labels
        /// and its annotations (counts, then keys and values). False: not in that form.
        mutating func summary(_ out: inout ClusterSpec.Summary?) -> Bool {
            guard offset < end else { return false }
            let present = bytes[offset]
            offset += 1
            guard present == 1 else { return present == 0 }
            guard let apiVersion = string(), let kind = string(), let name = string(), let namespace = string(),
                  let line = u32(), let column = u32() else { return false }
            var maps: [[String: String]] = []
            for _ in 0..<2 {
                // An entry takes at least 8 bytes (two lengths).
                guard let n = u32(), n <= (end - offset) / 8 else { return false }
                var map: [String: String] = [:]
                map.reserveCapacity(n)
                for _ in 0..<n {
                    guard let k = string(), let v = string() else { return false }
                    map[k] = v
                }
                maps.append(map)
            }
            out = ClusterSpec.Summary(apiVersion: apiVersion, kind: kind,
                                      metadata: ClusterMetadata(name: name, namespace: namespace, labels: maps[0], annotations: maps[1],
                                                                nameLocation: Location(line: line, column: column)))
            return true
        }

        /// Stage, createOnly, four strings, the JSON: checked, not made.
        mutating func skipObject() -> Bool {
            guard end - offset >= 2, ApplyStage(rawValue: Int(bytes[offset])) != nil, bytes[offset + 1] <= 1 else { return false }
            offset += 2
            for _ in 0..<5 {
                guard let n = u32(), skip(n) else { return false }
            }
            return true
        }

        mutating func object() -> RenderedObject? {
            guard end - offset >= 2, let stage = ApplyStage(rawValue: Int(bytes[offset])), bytes[offset + 1] <= 1 else { return nil }
            let createOnly = bytes[offset + 1] == 1
            offset += 2
            guard let apiVersion = string(), let kind = string(), let namespace = string(), let name = string(),
                  let json = slice() else { return nil }
            return RenderedObject(cached: json, apiVersion: apiVersion, kind: kind, namespace: namespace, name: name, stage: stage, createOnly: createOnly)
        }
    }

    private static func put(_ n: UInt32, into out: inout [UInt8]) {
        out += [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)]
    }

    private static func put(_ bytes: [UInt8], into out: inout [UInt8]) {
        put(UInt32(bytes.count), into: &out)
        out += bytes
    }

    static func hex<C: Collection<UInt8>>(_ bytes: C) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    // MARK: - The directory and the build

    /// Creates the directory (mode 0700) when missing; usable when it is a directory of this
    /// user's (not a symbolic link) that nobody else may write to, below directories that only
    /// this user or root may change (or sticky ones, like /tmp): nobody else can put another
    /// directory, or a link, in its place after this check.
    static func usableDirectory(_ directory: String) -> Bool {
        guard directory.hasPrefix("/") else { return false }
        var path = ""
        for part in directory.split(separator: "/") {
            let parent = path.isEmpty ? "/" : path
            var st = stat()
            guard stat(parent, &st) == 0, st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid() || st.st_uid == 0,
                  st.st_mode & 0o022 == 0 || st.st_mode & S_ISVTX != 0 else { return false }
            path += "/" + part
            if mkdir(path, 0o700) != 0, errno != EEXIST { return false }
        }
        var st = stat()
        return lstat(directory, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR && st.st_uid == geteuid() && st.st_mode & 0o022 == 0
    }

    /// The GNU build ids of the executable and of every library loaded into it, with their
    /// names, hashed; nil when one has none (the vDSO aside).
    static let binaryIdentity: [UInt8]? = {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        for _ in 0..<4 {
            let needed = buffer.withUnsafeMutableBufferPointer { cairn_build_ids($0.baseAddress, $0.count) }
            guard needed > 0 else { return nil }
            if needed <= buffer.count { return Array(SHA256.hash(data: buffer[..<needed])) }
            buffer = [UInt8](repeating: 0, count: needed * 2)
        }
        return nil
    }()
}

/// A live object as a run found it, named by what changes on every write to it: its uid (a
/// recreated object is another) and its resourceVersion (the API server gives every write, of
/// the spec, the metadata or the status, a new one).
public struct LiveStamp: Sendable, Hashable {
    public var uid: String
    public var resourceVersion: String

    public init(uid: String, resourceVersion: String) {
        self.uid = uid
        self.resourceVersion = resourceVersion
    }
}

/// A cache file that could not be written, with the path and the system's reason.
public struct RenderCacheError: Error, CustomStringConvertible {
    public let path: String
    public let operation: String
    public let errno: Int32

    public var description: String { "render cache: cannot \(operation) \(path): \(String(cString: strerror(errno)))" }
}
