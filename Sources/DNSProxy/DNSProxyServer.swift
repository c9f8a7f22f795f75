#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// A socket address given as `host:port` or `[v6]:port`, numeric only.
public struct SocketAddress: Sendable, CustomStringConvertible {
    let storage: sockaddr_storage
    let length: socklen_t
    public let description: String

    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public init(_ text: String, defaultPort: Int = 53) throws(Invalid) {
        var host = text
        var port = String(defaultPort)
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.hasPrefix(":") { port = String(rest.dropFirst()) } else if !rest.isEmpty { throw Invalid(description: "'\(text)' is not [ADDRESS]:PORT") }
        } else if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") {
            host = String(text[..<colon])
            port = String(text[text.index(after: colon)...])
        }
        guard let p = Int(port), (1...65535).contains(p) else { throw Invalid(description: "'\(text)': the port is not 1-65535") }
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(p), &hints, &result) == 0, let first = result else {
            throw Invalid(description: "'\(text)' is not an IP address with an optional port")
        }
        defer { freeaddrinfo(result) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        self.storage = storage
        length = first.pointee.ai_addrlen
        description = host.contains(":") ? "[\(host)]:\(p)" : "\(host):\(p)"
    }

    var family: Int32 { Int32(storage.ss_family) }

    func withPointer<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
    }
}

/// `cairn dns-proxy`: a DNS server for one pod (KurrentDB's SplitDNS), on UDP and TCP, that
/// answers the names of its rules itself (through the upstream server) and passes every other
/// query to the upstream server (the cluster DNS) as it is.
public final class DNSProxyServer: Sendable {
    public let listen: SocketAddress
    public let upstream: SocketAddress
    public let rewriter: DNSRewriter
    /// How long one upstream exchange may take before it is tried again (once), then SERVFAIL.
    public let timeoutMilliseconds: Int
    /// Queries answered at the same time; more are dropped (the client asks again).
    let inFlight = DispatchSemaphore(value: 64)

    public struct Failed: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public init(listen: SocketAddress, upstream: SocketAddress, rules: [DNSRule], timeoutMilliseconds: Int = 2000) {
        self.listen = listen
        self.upstream = upstream
        self.rewriter = DNSRewriter(rules: rules)
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// Binds both sockets (so a port already taken is an error here), then serves until the
    /// process ends.
    public func run() throws(Failed) -> Never {
        let udp = try bound(Int32(SOCK_DGRAM.rawValue))
        let tcp = try bound(Int32(SOCK_STREAM.rawValue))
        guard Self.listenOn(tcp) == 0 else { throw Failed(description: "listen on \(listen) (TCP): \(Self.error())") }
        DispatchQueue(label: "dns-proxy.accept").async { [self] in acceptLoop(tcp) }
        udpLoop(udp)
    }

    private func bound(_ type: Int32) throws(Failed) -> Int32 {
        let kind = type == Int32(SOCK_DGRAM.rawValue) ? "UDP" : "TCP"
        let fd = socket(listen.family, type, 0)
        guard fd >= 0 else { throw Failed(description: "socket (\(kind)): \(Self.error())") }
        // TCP only: a restarted proxy binds again at once; on UDP it would let another socket
        // share the port.
        if kind == "TCP" {
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        guard listen.withPointer({ bind(fd, $0, $1) }) == 0 else {
            let e = Self.error()
            close(fd)
            throw Failed(description: "bind \(listen) (\(kind)): \(e)")
        }
        return fd
    }

    private func udpLoop(_ fd: Int32) -> Never {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var from = sockaddr_storage()
            var fromLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = withUnsafeMutablePointer(to: &from) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &fromLength) }
            }
            guard n > 0 else { continue }
            let query = Array(buffer[0..<n])
            guard inFlight.wait(timeout: .now()) == .success else { continue }
            let client = from
            let clientLength = fromLength
            DispatchQueue.global().async { [self] in
                defer { inFlight.signal() }
                guard let reply = rewriter.reply(to: query, limit: 512, exchange: { try exchangeUDP($0, whole: $1) }) else { return }
                var to = client
                _ = withUnsafeMutablePointer(to: &to) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, clientLength) }
                }
            }
        }
    }

    private func acceptLoop(_ fd: Int32) {
        while true {
            let connection = accept(fd, nil, nil)
            guard connection >= 0 else { continue }
            guard inFlight.wait(timeout: .now()) == .success else { close(connection); continue }
            DispatchQueue.global().async { [self] in
                defer { inFlight.signal(); close(connection) }
                setTimeout(connection, milliseconds: 10_000)
                // A client may send several queries on one connection; each is answered in turn.
                for _ in 0..<100 {
                    guard let query = Self.readFramed(connection),
                          let reply = rewriter.reply(to: query, exchange: { try exchangeTCP($0, whole: $1) }),
                          Self.writeFramed(connection, reply) else { return }
                }
            }
        }
    }

    /// One exchange with the upstream over UDP (tried twice), then, when the answer is needed
    /// whole and came truncated, over TCP.
    func exchangeUDP(_ query: [UInt8], whole: Bool) throws -> [UInt8] {
        for _ in 0..<2 {
            let fd = socket(upstream.family, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw Failed(description: "socket: \(Self.error())") }
            defer { close(fd) }
            setTimeout(fd, milliseconds: timeoutMilliseconds)
            guard upstream.withPointer({ connect(fd, $0, $1) }) == 0, send(fd, query, query.count, 0) == query.count else { continue }
            var buffer = [UInt8](repeating: 0, count: 65535)
            // Replies to another id (a late one) are skipped.
            for _ in 0..<4 {
                let n = recv(fd, &buffer, buffer.count, 0)
                guard n >= 12 else { break }
                guard buffer[0] == query[0], buffer[1] == query[1] else { continue }
                if whole, buffer[2] & 0x02 != 0 { return try exchangeTCP(query, whole: true) }
                return Array(buffer[0..<n])
            }
        }
        throw Failed(description: "no answer from \(upstream) over UDP")
    }

    /// One exchange with the upstream over TCP.
    func exchangeTCP(_ query: [UInt8], whole: Bool) throws -> [UInt8] {
        let fd = socket(upstream.family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failed(description: "socket: \(Self.error())") }
        defer { close(fd) }
        setTimeout(fd, milliseconds: timeoutMilliseconds)
        guard upstream.withPointer({ connect(fd, $0, $1) }) == 0 else { throw Failed(description: "connect \(upstream): \(Self.error())") }
        guard Self.writeFramed(fd, query), let reply = Self.readFramed(fd) else { throw Failed(description: "no answer from \(upstream) over TCP") }
        return reply
    }

    private func setTimeout(_ fd: Int32, milliseconds: Int) {
        var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: suseconds_t((milliseconds % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    static func readFramed(_ fd: Int32) -> [UInt8]? {
        guard let length = readExactly(fd, 2) else { return nil }
        let n = Int(length[0]) << 8 | Int(length[1])
        guard n >= 12 else { return nil }
        return readExactly(fd, n)
    }

    static func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            guard n > 0 else { return nil }
            got += n
        }
        return out
    }

    static func writeFramed(_ fd: Int32, _ message: [UInt8]) -> Bool {
        guard message.count <= 65535 else { return false }
        let framed = [UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message
        var sent = 0
        while sent < framed.count {
            let n = framed.withUnsafeBytes { send(fd, $0.baseAddress! + sent, framed.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    static func error() -> String { String(cString: strerror(errno)) }

    private static func listenOn(_ fd: Int32) -> Int32 {
        #if canImport(Glibc)
        Glibc.listen(fd, 64)
        #else
        Darwin.listen(fd, 64)
        #endif
    }
}
