internal import CLibGit2
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// libgit2's standard socket stream, replaced by one cairn can stop: every socket a network
/// operation opens is registered with its `RemoteSession`, and the session's `cancel()` (its
/// timeout or a shutdown) shuts those sockets down, so a thread blocked in a read from a server
/// that never answers returns at once and libgit2 unwinds with an error. libgit2 1.5 has no
/// socket timeout of its own; its TLS (mbedTLS) and ssh (libssh2) transports read through this
/// stream's socket too. Connecting is non-blocking and polled, so a connect to an address that
/// never answers stops the same way.
enum SocketStream {
    /// The key under which a network operation's thread carries its session.
    static let threadKey = "cairn.git.session"

    /// Registers the stream with libgit2 (once, at initialisation).
    static func register() -> Int32 {
        var registration = git_stream_registration(version: GIT_STREAM_VERSION, `init`: { out, host, port in SocketStream.make(out, host, port) },
                                                   wrap: nil)
        return git_stream_register(GIT_STREAM_STANDARD, &registration)
    }

    private static func make(_ out: UnsafeMutablePointer<UnsafeMutablePointer<git_stream>?>?, _ host: UnsafePointer<CChar>?,
                             _ port: UnsafePointer<CChar>?) -> Int32 {
        guard let out, let host, let port else { return -1 }
        let stream = UnsafeMutablePointer<cairn_socket_stream>.allocate(capacity: 1)
        stream.initialize(to: cairn_socket_stream())
        stream.pointee.parent.version = GIT_STREAM_VERSION
        stream.pointee.host = strdup(host)
        stream.pointee.port = strdup(port)
        stream.pointee.s = -1
        if let session = Thread.current.threadDictionary[threadKey] as? RemoteSession {
            stream.pointee.session = Unmanaged.passRetained(session).toOpaque()
        }
        stream.pointee.parent.connect = { SocketStream.connect($0) }
        stream.pointee.parent.read = { stream, buffer, length in
            guard let stream, let buffer else { return -1 }
            let fd = stream.withMemoryRebound(to: cairn_socket_stream.self, capacity: 1) { $0.pointee.s }
            var n: Int
            repeat { n = recv(fd, buffer, length, 0) } while n < 0 && errno == EINTR
            if n < 0 { SocketStream.fail("error receiving data: \(String(cString: strerror(errno)))") }
            return n
        }
        stream.pointee.parent.write = { stream, data, length, flags in
            guard let stream, let data else { return -1 }
            let fd = stream.withMemoryRebound(to: cairn_socket_stream.self, capacity: 1) { $0.pointee.s }
            var n: Int
            repeat { n = send(fd, data, length, flags | Int32(MSG_NOSIGNAL)) } while n < 0 && errno == EINTR
            if n < 0 { SocketStream.fail("error sending data: \(String(cString: strerror(errno)))") }
            return n
        }
        stream.pointee.parent.close = { stream in
            guard let stream else { return 0 }
            stream.withMemoryRebound(to: cairn_socket_stream.self, capacity: 1) { s in
                if s.pointee.s >= 0 {
                    if let session = SocketStream.session(s) { session.release(s.pointee.s) } else { Glibc.close(s.pointee.s) }
                    s.pointee.s = -1
                }
            }
            return 0
        }
        stream.pointee.parent.free = { stream in
            guard let stream else { return }
            stream.withMemoryRebound(to: cairn_socket_stream.self, capacity: 1) { s in
                if s.pointee.s >= 0 {
                    if let session = SocketStream.session(s) { session.release(s.pointee.s) } else { Glibc.close(s.pointee.s) }
                }
                free(s.pointee.host)
                free(s.pointee.port)
                if let raw = s.pointee.session { Unmanaged<RemoteSession>.fromOpaque(raw).release() }
                s.deinitialize(count: 1)
                s.deallocate()
            }
        }
        stream.withMemoryRebound(to: git_stream.self, capacity: 1) { out.pointee = $0 }
        return 0
    }

    private static func session(_ stream: UnsafeMutablePointer<cairn_socket_stream>) -> RemoteSession? {
        stream.pointee.session.map { Unmanaged<RemoteSession>.fromOpaque($0).takeUnretainedValue() }
    }

    private static func fail(_ message: String) {
        git_error_set_str(Int32(GIT_ERROR_NET.rawValue), message)
    }

    /// Resolves the host and connects to its first address that answers, polling in tenths of a
    /// second so that the session's cancellation stops a connect that never completes.
    private static func connect(_ raw: UnsafeMutablePointer<git_stream>?) -> Int32 {
        guard let raw else { return -1 }
        return raw.withMemoryRebound(to: cairn_socket_stream.self, capacity: 1) { stream -> Int32 in
            let session = Self.session(stream)
            let host = String(cString: stream.pointee.host)
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_family = AF_UNSPEC
            var info: UnsafeMutablePointer<addrinfo>?
            let resolved = getaddrinfo(stream.pointee.host, stream.pointee.port, &hints, &info)
            guard resolved == 0 else {
                fail("failed to resolve address for \(host): \(String(cString: gai_strerror(resolved)))")
                return -1
            }
            defer { freeaddrinfo(info) }
            var lastError = "no address"
            var next = info
            while let p = next {
                next = p.pointee.ai_next
                let fd = socket(p.pointee.ai_family, p.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                                p.pointee.ai_protocol)
                guard fd >= 0 else { continue }
                // Registered before connecting: a cancellation from now on shuts it down.
                if let session, !session.adopt(fd) {
                    Glibc.close(fd)
                    fail("stopped")
                    return -1
                }
                if let problem = connectPolling(fd, p.pointee.ai_addr, p.pointee.ai_addrlen, session: session) {
                    lastError = problem
                    if let session { session.release(fd) } else { Glibc.close(fd) }
                    if session?.cancelled == true { break }
                    continue
                }
                // Blocking from now on, as libgit2 and libssh2 expect.
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
                stream.pointee.s = fd
                return 0
            }
            fail("failed to connect to \(host): \(lastError)")
            return -1
        }
    }

    /// nil when connected, else what went wrong.
    private static func connectPolling(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t,
                                       session: RemoteSession?) -> String? {
        if Glibc.connect(fd, address, length) == 0 { return nil }
        guard errno == EINPROGRESS || errno == EINTR else { return String(cString: strerror(errno)) }
        while true {
            if session?.cancelled == true { return "stopped" }
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&poller, 1, 100)
            if ready < 0 && errno != EINTR { return String(cString: strerror(errno)) }
            if ready > 0 { break }
        }
        var error: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 else { return String(cString: strerror(errno)) }
        return error == 0 ? nil : String(cString: strerror(error))
    }
}
