internal import CZlib
import Synchronization

/// Bytes (compact JSON) kept deflated against a shared dictionary: what a long-running process
/// holds of many similar objects. `cairn run` keeps every rendered object between passes, and
/// the objects of one system and kind differ in a few names and values: deflated against the
/// first such object, 10,000 clusters' 133 MB of JSON take about 12 MB (11x; plain deflate of
/// each object alone gives 2.4x, too little of a 1 KB object to go on).
///
/// A dictionary is registered under a key the caller chooses (cairn: system and kind) the first
/// time the key is packed, from those bytes; it is kept for the life of the process, as are at
/// most `PackedJSON.maximumDictionaries` of them. Callers must not give secret bytes a key
/// (a dictionary is copied into every stream that reads or writes with it); without a key,
/// bytes are deflated on their own.
///
/// The same bytes with the same dictionary always pack the same (deflate is deterministic), so
/// `same(as:)` compares packed bytes unless the dictionaries differ.
public struct PackedJSON: Sendable {
    /// Raw deflate of the bytes (against `dictionary` when it is 0 or more), or the bytes as
    /// they are (`Self.stored`).
    private let bytes: [UInt8]
    private let dictionary: Int32
    /// The unpacked length.
    public let count: Int

    private static let stored: Int32 = -1
    private static let alone: Int32 = -2
    /// Bytes shorter than this are kept as they are (deflate saves nothing worth the call).
    static let smallest = 64
    public static let maximumDictionaries = 256
    /// The deflate window (Sources/CZlib/shim.h: 2^13): a dictionary longer than this is only
    /// read for its tail, so only its tail is kept.
    static let window = 1 << 13

    /// The bytes as they are, not packed (an object still being rendered).
    public init(stored bytes: [UInt8]) {
        self.bytes = bytes
        self.dictionary = Self.stored
        self.count = bytes.count
    }

    /// The bytes packed, against the dictionary of `key` (registered from these bytes when the
    /// key is new), or alone when `key` is nil or the registry is full. Kept as they are when
    /// deflating would not make them smaller.
    public init(_ bytes: [UInt8], dictionary key: String?) {
        count = bytes.count
        guard bytes.count >= Self.smallest else {
            (self.bytes, dictionary) = (bytes, Self.stored)
            return
        }
        let (id, words) = key.map { Dictionaries.shared.dictionary(for: $0, candidate: bytes) } ?? (Self.alone, nil)
        if let packed = Streams.deflate(bytes, dictionary: words), packed.count < bytes.count {
            (self.bytes, dictionary) = (packed, words == nil ? Self.alone : id)
        } else {
            (self.bytes, dictionary) = (bytes, Self.stored)
        }
    }

    /// The bytes as they were given.
    public var unpacked: [UInt8] {
        switch dictionary {
        case Self.stored: return bytes
        case Self.alone: return Streams.inflate(bytes, dictionary: nil, count: count)
        default: return Streams.inflate(bytes, dictionary: Dictionaries.shared.words(dictionary), count: count)
        }
    }

    /// Bytes held (the packed length).
    public var packedCount: Int { bytes.count }

    /// Whether the bytes were deflated against a shared dictionary.
    public var hasDictionary: Bool { dictionary >= 0 }

    /// Whether both hold the same bytes.
    public func same(as other: PackedJSON) -> Bool {
        guard count == other.count else { return false }
        if dictionary == other.dictionary { return bytes == other.bytes }
        return unpacked == other.unpacked
    }
}

/// The registry of dictionaries: append-only, so an id handed out stays valid.
private final class Dictionaries: Sendable {
    static let shared = Dictionaries()

    private struct State {
        var ids: [String: Int32] = [:]
        var words: [[UInt8]] = []
    }
    private let state = Mutex(State())

    /// The dictionary of `key`: `candidate` (its last `PackedJSON.window` bytes, all deflate
    /// reaches back to) when the key is new and the registry has room; nil words when it is full.
    func dictionary(for key: String, candidate: [UInt8]) -> (Int32, [UInt8]?) {
        state.withLock { s in
            if let id = s.ids[key] { return (id, s.words[Int(id)]) }
            guard s.words.count < PackedJSON.maximumDictionaries else { return (-2, nil) }
            let id = Int32(s.words.count)
            s.words.append(Array(candidate.suffix(PackedJSON.window)))
            s.ids[key] = id
            return (id, s.words[Int(id)])
        }
    }

    func words(_ id: Int32) -> [UInt8] { state.withLock { $0.words[Int(id)] } }
}

/// zlib streams, reused (a deflate stream holds about 256 KB, which making and freeing per
/// object would cost more than deflating it).
private enum Streams {
    struct Stream: @unchecked Sendable {
        let z: UnsafeMutablePointer<z_stream>
    }

    private static let deflaters = Mutex<[Stream]>([])
    private static let inflaters = Mutex<[Stream]>([])
    private static let pooled = 8

    static func deflate(_ input: [UInt8], dictionary: [UInt8]?) -> [UInt8]? {
        let stream = deflaters.withLock { $0.popLast() } ?? {
            let z = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            z.initialize(to: z_stream())
            precondition(cairn_deflate_init_raw(z, 6) == Z_OK, "zlib: deflateInit2 failed (out of memory)")
            return Stream(z: z)
        }()
        defer { put(stream, into: deflaters, end: { deflateEnd($0) }) }
        let z = stream.z
        guard deflateReset(z) == Z_OK else { return nil }
        if let dictionary {
            let set = dictionary.withUnsafeBufferPointer { deflateSetDictionary(z, $0.baseAddress, UInt32($0.count)) }
            guard set == Z_OK else { return nil }
        }
        let bound = Int(deflateBound(z, UInt(input.count)))
        let scratch = [UInt8](unsafeUninitializedCapacity: bound) { out, written in
            written = 0
            input.withUnsafeBufferPointer { source in
                z.pointee.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                z.pointee.avail_in = UInt32(source.count)
                z.pointee.next_out = out.baseAddress
                z.pointee.avail_out = UInt32(bound)
                if CZlib.deflate(z, Z_FINISH) == Z_STREAM_END { written = bound - Int(z.pointee.avail_out) }
                z.pointee.next_in = nil
                z.pointee.next_out = nil
            }
        }
        // Kept at exactly its length (the scratch's capacity is the bound, more than the input).
        guard !scratch.isEmpty else { return nil }
        return [UInt8](unsafeUninitializedCapacity: scratch.count) { out, written in
            written = out.initialize(fromContentsOf: scratch)
        }
    }

    static func inflate(_ input: [UInt8], dictionary: [UInt8]?, count: Int) -> [UInt8] {
        let stream = inflaters.withLock { $0.popLast() } ?? {
            let z = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            z.initialize(to: z_stream())
            precondition(cairn_inflate_init_raw(z) == Z_OK, "zlib: inflateInit2 failed (out of memory)")
            return Stream(z: z)
        }()
        defer { put(stream, into: inflaters, end: { inflateEnd($0) }) }
        let z = stream.z
        var ok = inflateReset(z) == Z_OK
        if ok, let dictionary {
            ok = dictionary.withUnsafeBufferPointer { inflateSetDictionary(z, $0.baseAddress, UInt32($0.count)) } == Z_OK
        }
        let out = [UInt8](unsafeUninitializedCapacity: count) { out, written in
            written = 0
            guard ok else { return }
            input.withUnsafeBufferPointer { source in
                z.pointee.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                z.pointee.avail_in = UInt32(source.count)
                z.pointee.next_out = out.baseAddress
                z.pointee.avail_out = UInt32(count)
                if CZlib.inflate(z, Z_FINISH) == Z_STREAM_END, z.pointee.avail_out == 0 { written = count }
                z.pointee.next_in = nil
                z.pointee.next_out = nil
            }
        }
        // What this process deflated itself, in its own memory: failing to read it back is a
        // broken invariant, not input to report.
        precondition(out.count == count || count == 0, "zlib: packed JSON does not inflate to its length")
        return out
    }

    private static func put(_ stream: Stream, into pool: borrowing Mutex<[Stream]>, end: (UnsafeMutablePointer<z_stream>) -> Int32) {
        let kept = pool.withLock { streams in
            guard streams.count < pooled else { return false }
            streams.append(stream)
            return true
        }
        if !kept {
            _ = end(stream.z)
            stream.z.deallocate()
        }
    }
}
