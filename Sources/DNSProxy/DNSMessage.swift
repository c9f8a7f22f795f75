/// The parts of a DNS message (RFC 1035 section 4) the SplitDNS proxy reads and writes: the
/// header, the questions and the answers. Authority and additional records are skipped when
/// read and never written. Names are read with compression pointers followed (bounded) and
/// written uncompressed.
public struct DNSMessage: Sendable, Hashable {
    public struct Question: Sendable, Hashable {
        /// As asked (case kept, for resolvers that check it), without the final dot; "" is the root.
        public var name: String
        public var type: UInt16
        public var `class`: UInt16

        public init(name: String, type: UInt16, class: UInt16 = DNSMessage.classIN) {
            self.name = name
            self.type = type
            self.class = `class`
        }
    }

    public struct Record: Sendable, Hashable {
        public var name: String
        public var type: UInt16
        public var `class`: UInt16
        public var ttl: UInt32
        /// As on the wire, except a CNAME's target, which is kept uncompressed.
        public var data: [UInt8]

        public init(name: String, type: UInt16, class: UInt16 = DNSMessage.classIN, ttl: UInt32, data: [UInt8]) {
            self.name = name
            self.type = type
            self.class = `class`
            self.ttl = ttl
            self.data = data
        }
    }

    public static let classIN: UInt16 = 1
    public static let typeA: UInt16 = 1
    public static let typeCNAME: UInt16 = 5
    public static let typeTXT: UInt16 = 16
    public static let typeAAAA: UInt16 = 28
    public static let typeANY: UInt16 = 255

    public static let flagResponse: UInt16 = 0x8000
    public static let flagTruncated: UInt16 = 0x0200
    public static let flagRecursionDesired: UInt16 = 0x0100
    public static let flagRecursionAvailable: UInt16 = 0x0080
    public static let rcodeServerFailure: UInt16 = 2
    public static let rcodeNameError: UInt16 = 3

    public var id: UInt16
    /// QR, opcode, AA, TC, RD, RA, Z and the response code, as on the wire.
    public var flags: UInt16
    public var questions: [Question]
    public var answers: [Record]

    public init(id: UInt16, flags: UInt16, questions: [Question], answers: [Record] = []) {
        self.id = id
        self.flags = flags
        self.questions = questions
        self.answers = answers
    }

    public var responseCode: UInt16 { flags & 0x000F }
    public var isTruncated: Bool { flags & Self.flagTruncated != 0 }
    public var opcode: UInt16 { (flags >> 11) & 0x0F }

    public struct MalformedMessage: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Reads a message; throws on anything malformed (a short buffer, a label or name too long,
    /// a pointer loop).
    public init(parsing bytes: [UInt8]) throws(MalformedMessage) {
        var reader = Reader(bytes: bytes)
        id = try reader.u16()
        flags = try reader.u16()
        let questionCount = Int(try reader.u16())
        let answerCount = Int(try reader.u16())
        _ = try reader.u16()  // authority
        _ = try reader.u16()  // additional
        var questions: [Question] = []
        for _ in 0..<questionCount {
            let name = try reader.name()
            questions.append(Question(name: name, type: try reader.u16(), class: try reader.u16()))
        }
        var answers: [Record] = []
        for _ in 0..<answerCount {
            let name = try reader.name()
            let type = try reader.u16()
            let klass = try reader.u16()
            let ttl = UInt32(try reader.u16()) << 16 | UInt32(try reader.u16())
            let length = Int(try reader.u16())
            let end = reader.offset + length
            guard end <= bytes.count else { throw MalformedMessage(description: "a record's data runs past the message") }
            var data = Array(bytes[reader.offset..<end])
            if type == Self.typeCNAME {
                var inner = Reader(bytes: bytes, offset: reader.offset)
                data = try Self.encode(name: try inner.name())
            }
            reader.offset = end
            answers.append(Record(name: name, type: type, class: klass, ttl: ttl, data: data))
        }
        self.questions = questions
        self.answers = answers
    }

    /// The message on the wire, names uncompressed, no authority or additional records.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        func u16(_ v: UInt16) { out.append(UInt8(v >> 8)); out.append(UInt8(v & 0xFF)) }
        u16(id)
        u16(flags)
        u16(UInt16(questions.count))
        u16(UInt16(answers.count))
        u16(0)
        u16(0)
        for q in questions {
            out += (try? Self.encode(name: q.name)) ?? [0]
            u16(q.type)
            u16(q.class)
        }
        for r in answers {
            out += (try? Self.encode(name: r.name)) ?? [0]
            u16(r.type)
            u16(r.class)
            u16(UInt16(r.ttl >> 16))
            u16(UInt16(r.ttl & 0xFFFF))
            u16(UInt16(r.data.count))
            out += r.data
        }
        return out
    }

    /// A name in wire form: length-prefixed labels and the root's zero.
    public static func encode(name: String) throws(MalformedMessage) -> [UInt8] {
        var out: [UInt8] = []
        for label in name.split(separator: ".", omittingEmptySubsequences: false) where !name.isEmpty {
            let bytes = Array(label.utf8)
            guard !bytes.isEmpty, bytes.count <= 63 else { throw MalformedMessage(description: "'\(name)' has an empty label or one over 63 bytes") }
            out.append(UInt8(bytes.count))
            out += bytes
        }
        out.append(0)
        guard out.count <= 255 else { throw MalformedMessage(description: "'\(name)' is over 255 bytes") }
        return out
    }

    /// A name's text, as written (DNS names compare without case: the rules lower it).
    static func text(ofLabels labels: [[UInt8]]) -> String {
        labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".")
    }

    struct Reader {
        let bytes: [UInt8]
        var offset: Int

        init(bytes: [UInt8], offset: Int = 0) {
            self.bytes = bytes
            self.offset = offset
        }

        mutating func u16() throws(MalformedMessage) -> UInt16 {
            guard offset + 2 <= bytes.count else { throw MalformedMessage(description: "the message ends early (at byte \(offset))") }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        /// A name, following compression pointers: each must point backwards, so a loop cannot
        /// go on, and at most 32 of them (a chain of pointers costs no name length); at most
        /// 255 bytes of name.
        mutating func name() throws(MalformedMessage) -> String {
            var labels: [[UInt8]] = []
            var length = 1
            var at = offset
            var jumped = false
            var jumps = 0
            while true {
                guard at < bytes.count else { throw MalformedMessage(description: "a name runs past the message") }
                let b = bytes[at]
                if b == 0 {
                    if !jumped { offset = at + 1 }
                    break
                } else if b & 0xC0 == 0xC0 {
                    guard at + 1 < bytes.count else { throw MalformedMessage(description: "a name's pointer runs past the message") }
                    let target = Int(b & 0x3F) << 8 | Int(bytes[at + 1])
                    guard target < at else { throw MalformedMessage(description: "a name's pointer does not point backwards") }
                    jumps += 1
                    guard jumps <= 32 else { throw MalformedMessage(description: "a name follows more than 32 pointers") }
                    if !jumped { offset = at + 2 }
                    jumped = true
                    at = target
                } else if b & 0xC0 == 0 {
                    let n = Int(b)
                    guard at + 1 + n <= bytes.count else { throw MalformedMessage(description: "a label runs past the message") }
                    length += n + 1
                    guard length <= 255 else { throw MalformedMessage(description: "a name is over 255 bytes") }
                    labels.append(Array(bytes[(at + 1)..<(at + 1 + n)]))
                    at += 1 + n
                } else {
                    throw MalformedMessage(description: "a label of an unknown kind (0x\(String(b, radix: 16)))")
                }
            }
            return DNSMessage.text(ofLabels: labels)
        }
    }
}
