#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One name the proxy answers itself: `from` (a host name, where `{n}` stands for a pod's
/// ordinal, digits) is looked up as `to` (a host name with the same `{n}`, or an address).
///
/// For KurrentDB's SplitDNS, cairn gives one rule per StatefulSet: a node's FQDN
/// (`esdb-{n}.esdb.example.com`) to its pod's name in the cluster DNS
/// (`esdb-{n}.esdb.db.svc.cluster.local`), so nodes dial each other's FQDNs (the names on
/// their certificates) and reach the pods directly.
public struct DNSRule: Sendable, Hashable, CustomStringConvertible {
    public enum Result: Sendable, Hashable {
        case name(String)
        case ipv4([UInt8])
        case ipv6([UInt8])
    }

    public let from: String
    public let to: Result
    private let prefix: String
    private let suffix: String?

    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// `from=to`, as `cairn dns-proxy --map` takes it.
    public init(parsing text: String) throws(Invalid) {
        guard let eq = text.firstIndex(of: "=") else { throw Invalid(description: "'\(text)' is not FROM=TO") }
        try self.init(from: String(text[..<eq]), to: String(text[text.index(after: eq)...]))
    }

    public init(from: String, to: String) throws(Invalid) {
        let from = Self.normalized(from)
        let to = Self.normalized(to)
        guard Self.isHostName(from.replacing("{n}", with: "0")) else {
            throw Invalid(description: "'\(from)' is not a host name (with at most one {n} for a pod's ordinal)")
        }
        let parts = from.split(separator: "{n}", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw Invalid(description: "'\(from)' has {n} more than once") }
        self.from = from
        prefix = String(parts[0])
        suffix = parts.count == 2 ? String(parts[1]) : nil
        if let v4 = Self.address(to, family: AF_INET, length: 4) {
            self.to = .ipv4(v4)
        } else if let v6 = Self.address(to, family: AF_INET6, length: 16) {
            self.to = .ipv6(v6)
        } else {
            guard Self.isHostName(to.replacing("{n}", with: "0")) else {
                throw Invalid(description: "'\(to)' is neither an address nor a host name")
            }
            guard to.contains("{n}") == (suffix != nil) else {
                throw Invalid(description: "'\(from)=\(to)': {n} must be on both sides or on neither")
            }
            self.to = .name(to)
        }
    }

    /// What a query for `name` (no final dot, any case) becomes, or nil when the rule does not
    /// match it.
    public func match(_ name: String) -> Result? {
        let name = name.lowercased()
        guard let suffix else { return name == from ? to : nil }
        guard name.count > prefix.count + suffix.count, name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let ordinal = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard ordinal.count <= 9, ordinal.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        if case .name(let target) = to { return .name(target.replacing("{n}", with: String(ordinal))) }
        return to
    }

    public var description: String {
        switch to {
        case .name(let n): "\(from)=\(n)"
        case .ipv4(let a): "\(from)=" + a.map(String.init).joined(separator: ".")
        case .ipv6: "\(from)=(IPv6 address)"
        }
    }

    static func normalized(_ name: String) -> String {
        var n = name.lowercased()
        if n.hasSuffix(".") { n.removeLast() }
        return n
    }

    static func isHostName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        }
    }

    static func address(_ text: String, family: Int32, length: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(family, text, &bytes) == 1 else { return nil }
        return Array(bytes.prefix(length))
    }
}

/// Answers one query with the rules, asking the upstream server (through `exchange`) for
/// everything else. Pure but for `exchange`.
public struct DNSRewriter: Sendable {
    public let rules: [DNSRule]
    /// The TTL of answers made from an address rule.
    public var addressTTL: UInt32 = 30

    public init(rules: [DNSRule]) {
        self.rules = rules
    }

    /// The reply to `query`: the upstream's own reply when no rule matches (byte for byte), a
    /// reply made from the upstream's answer for the rule's name otherwise (the records of that
    /// name renamed to the name asked), or SERVFAIL. nil when the query cannot be read at all
    /// (dropped, as a server drops garbage). A reply made here that is longer than `limit`
    /// (512 bytes over UDP) goes without its answers and with TC set, so the client asks again
    /// over TCP.
    ///
    /// `exchange(query, whole)` asks the upstream; `whole` is false for a query passed on as it
    /// is (its reply goes back as it is, truncated or not: the client asked with its own size
    /// and asks again over TCP), true for a rule's lookup (the answer is needed whole).
    public func reply(to query: [UInt8], limit: Int = .max, exchange: ([UInt8], Bool) throws -> [UInt8]) -> [UInt8]? {
        guard let (made, passedOn) = made(query, exchange: exchange) else { return nil }
        var reply = made
        // A reply made here can outgrow the upstream's (names written uncompressed): never
        // past what a TCP frame holds either.
        if !passedOn, reply.count > min(limit, 65535), var m = try? DNSMessage(parsing: reply) {
            m.answers = []
            m.flags |= DNSMessage.flagTruncated
            reply = m.encoded()
        }
        return reply
    }

    private func made(_ query: [UInt8], exchange: ([UInt8], Bool) throws -> [UInt8]) -> (reply: [UInt8], passedOn: Bool)? {
        guard let message = try? DNSMessage(parsing: query) else { return nil }
        guard message.flags & DNSMessage.flagResponse == 0 else { return nil }
        guard message.opcode == 0, message.questions.count == 1, let question = message.questions.first,
              let result = rules.lazy.compactMap({ $0.match(question.name) }).first else {
            guard let passed = try? exchange(query, false) else { return (failure(message), false) }
            return (passed, true)
        }
        var reply = DNSMessage(id: message.id, flags: DNSMessage.flagResponse | (message.flags & DNSMessage.flagRecursionDesired)
                                   | DNSMessage.flagRecursionAvailable, questions: [question])
        let wantsAny = question.type == DNSMessage.typeANY
        switch result {
        case .ipv4(let a):
            if question.type == DNSMessage.typeA || wantsAny {
                reply.answers = [.init(name: question.name, type: DNSMessage.typeA, ttl: addressTTL, data: a)]
            }
            return (reply.encoded(), false)
        case .ipv6(let a):
            if question.type == DNSMessage.typeAAAA || wantsAny {
                reply.answers = [.init(name: question.name, type: DNSMessage.typeAAAA, ttl: addressTTL, data: a)]
            }
            return (reply.encoded(), false)
        case .name(let target):
            let forwarded = DNSMessage(id: message.id, flags: DNSMessage.flagRecursionDesired,
                                       questions: [.init(name: target, type: question.type, class: question.class)])
            guard let bytes = try? exchange(forwarded.encoded(), true), let answer = try? DNSMessage(parsing: bytes),
                  answer.id == message.id else {
                return (failure(message), false)
            }
            reply.flags |= answer.responseCode
            // Only the records that carry no name in their data (besides a CNAME's, read
            // uncompressed): others would need their names rewritten.
            let kept: Set<UInt16> = [DNSMessage.typeA, DNSMessage.typeAAAA, DNSMessage.typeCNAME, DNSMessage.typeTXT]
            reply.answers = answer.answers.filter { kept.contains($0.type) }.map { record in
                var r = record
                if r.name.lowercased() == target { r.name = question.name }
                return r
            }
            return (reply.encoded(), false)
        }
    }

    /// SERVFAIL for `message`, its question echoed.
    func failure(_ message: DNSMessage) -> [UInt8] {
        DNSMessage(id: message.id, flags: DNSMessage.flagResponse | (message.flags & (DNSMessage.flagRecursionDesired | 0x7800))
                       | DNSMessage.flagRecursionAvailable | DNSMessage.rcodeServerFailure,
                   questions: message.questions).encoded()
    }
}
