import AsyncHTTPClient
import Crypto
import JSON
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What a push webhook from a git host asks for, decided from the request alone (pure: the
/// tests feed it each host's documented payloads). A webhook never carries the commit to apply:
/// an accepted push only asks the follower for a head check at once, and the head check stays
/// the source of truth.
public struct WebhookVerifier: Sendable {
    public enum Host: String, Sendable, CaseIterable { case github, gitlab, gitea }

    public struct Verdict: Sendable, Equatable {
        /// The HTTP status of the answer.
        public var status: Int
        /// `push` (a head check follows), `ignored`, `unauthorized`, `forbidden`, `bad_request`,
        /// `too_large`, `not_found` or `method_not_allowed`: the metric's and the log's label.
        public var result: String
        public var host: String
        public var message: String
        public var triggersCheck: Bool { result == "push" }
    }

    /// Larger bodies are refused (413) before they are read whole.
    public static let maximumBody = 1 << 20

    let secret: [UInt8]
    let branch: String

    public init(secret: [UInt8], branch: String) {
        self.secret = secret
        self.branch = branch
    }

    /// - Parameters:
    ///   - path: `/hooks/github`, `/hooks/gitlab`, `/hooks/gitea`, or `/hooks` (the host told
    ///     by its event header).
    ///   - headers: the request's headers (names in any case).
    public func verdict(method: String, path: String, headers: [(name: String, value: String)], body: [UInt8]) -> Verdict {
        func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name }?.value }
        let named: Host?
        switch path {
        case "/hooks/github": named = .github
        case "/hooks/gitlab": named = .gitlab
        case "/hooks/gitea", "/hooks/forgejo": named = .gitea
        case "/hooks":
            if header("x-github-event") != nil { named = .github }
            else if header("x-gitlab-event") != nil { named = .gitlab }
            else if header("x-gitea-event") != nil || header("x-forgejo-event") != nil { named = .gitea }
            else { return Verdict(status: 400, result: "bad_request", host: "unknown", message: "no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header") }
        default:
            return Verdict(status: 404, result: "not_found", host: "unknown", message: "no webhook at \(path.prefix(100))")
        }
        guard let host = named else { return Verdict(status: 404, result: "not_found", host: "unknown", message: "") }
        func verdict(_ status: Int, _ result: String, _ message: String) -> Verdict {
            Verdict(status: status, result: result, host: host.rawValue, message: message)
        }
        guard method == "POST" else { return verdict(405, "method_not_allowed", "POST only") }
        guard body.count <= Self.maximumBody else { return verdict(413, "too_large", "the body is over \(Self.maximumBody) bytes") }

        // The signature first: nothing of an unauthenticated body is read.
        let event: String?
        switch host {
        case .github:
            guard let signature = header("x-hub-signature-256") else {
                return verdict(401, "unauthorized", "no X-Hub-Signature-256 header (set the webhook's secret)")
            }
            guard signature.hasPrefix("sha256="), let mac = Self.hex(signature.dropFirst("sha256=".count)), validMAC(mac, body) else {
                return verdict(403, "forbidden", "X-Hub-Signature-256 does not match the body and the secret")
            }
            event = header("x-github-event")
        case .gitlab:
            guard let token = header("x-gitlab-token") else { return verdict(401, "unauthorized", "no X-Gitlab-Token header (set the webhook's secret token)") }
            guard Self.constantTimeEqual(Array(token.utf8), secret) else { return verdict(403, "forbidden", "X-Gitlab-Token is not the secret") }
            event = header("x-gitlab-event")
        case .gitea:
            guard let signature = header("x-gitea-signature") ?? header("x-forgejo-signature") else {
                return verdict(401, "unauthorized", "no X-Gitea-Signature header (set the webhook's secret)")
            }
            guard let mac = Self.hex(Substring(signature)), validMAC(mac, body) else {
                return verdict(403, "forbidden", "X-Gitea-Signature does not match the body and the secret")
            }
            event = header("x-gitea-event") ?? header("x-forgejo-event")
        }
        switch (host, event) {
        case (.github, "ping"?): return verdict(200, "ignored", "ping")
        case (.github, "push"?), (.gitlab, "Push Hook"?), (.gitea, "push"?): break
        default: return verdict(400, "bad_request", "event '\((event ?? "none").prefix(64))' is not a push")
        }
        guard let payload = try? JSONValue.parse(body), let ref = payload["ref"]?.stringValue else {
            return verdict(400, "bad_request", "the push payload has no ref")
        }
        guard ref == "refs/heads/\(branch)" else { return verdict(200, "ignored", "a push to \(ref.prefix(200)), not refs/heads/\(branch)") }
        return verdict(202, "push", "a push to \(ref): head check now")
    }

    private func validMAC(_ mac: [UInt8], _ body: [UInt8]) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: SymmetricKey(data: secret))
    }

    static func hex(_ text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var i = 0
        while i < 64 {
            guard let high = nibble(digits[i]), let low = nibble(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Equal bytes, in a time that depends on the lengths only.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}

/// `cairn run --webhook-address`: receives the git host's push webhooks (POST, bodies up to
/// 1 MiB, a client that sends nothing for 10 s or takes over 30 s is disconnected) and asks
/// for a head check on each verified push to the followed branch. Every request is logged and
/// counted (`cairn_webhooks_total{host,result}`); the head checks a burst asks for are one.
public final class WebhookServer: Sendable {
    let channel: any Channel
    /// Its own event loop: requests from the internet are not queued behind the Kubernetes
    /// client's work, and their timers fire whatever else is busy.
    let group: MultiThreadedEventLoopGroup
    public let port: Int

    private init(channel: any Channel, group: MultiThreadedEventLoopGroup) {
        self.channel = channel
        self.group = group
        self.port = channel.localAddress?.port ?? 0
    }

    public static func start(host: String, port: Int, verifier: WebhookVerifier, log: Logging.Logger, metrics: Metrics?,
                             relay: WebhookRelay? = nil, onPush: @escaping @Sendable () -> Void) async throws -> WebhookServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(10)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(verifier: verifier, log: log, metrics: metrics, relay: relay, onPush: onPush))
                }
            }
        do {
            let channel = try await bootstrap.bind(host: host, port: port).get()
            return WebhookServer(channel: channel, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    public func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let verifier: WebhookVerifier
        let log: Logging.Logger
        let metrics: Metrics?
        let relay: WebhookRelay?
        let onPush: @Sendable () -> Void
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        var tooLarge = false
        var deadline: Scheduled<Void>?

        init(verifier: WebhookVerifier, log: Logging.Logger, metrics: Metrics?, relay: WebhookRelay?, onPush: @escaping @Sendable () -> Void) {
            self.verifier = verifier
            self.log = log
            self.metrics = metrics
            self.relay = relay
            self.onPush = onPush
        }

        func channelActive(context: ChannelHandlerContext) {
            // A whole request within 30 s, however its bytes trickle in.
            let channel = context.channel
            deadline = context.eventLoop.scheduleTask(in: .seconds(30)) { channel.close(promise: nil) }
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            deadline?.cancel()
            context.fireChannelInactive()
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent {
                context.close(promise: nil)
            } else {
                context.fireUserInboundEventTriggered(event)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body = []
                tooLarge = false
                if let length = h.headers.first(name: "Content-Length").flatMap(Int.init), length > WebhookVerifier.maximumBody {
                    tooLarge = true
                }
            case .body(var chunk):
                guard !tooLarge else { return }
                if body.count + chunk.readableBytes > WebhookVerifier.maximumBody {
                    tooLarge = true
                    body = []
                } else if let bytes = chunk.readBytes(length: chunk.readableBytes) {
                    body += bytes
                }
            case .end:
                guard let head else { return }
                let verdict: WebhookVerifier.Verdict
                if tooLarge {
                    verdict = .init(status: 413, result: "too_large", host: "unknown", message: "the body is over \(WebhookVerifier.maximumBody) bytes")
                } else {
                    verdict = verifier.verdict(method: head.method.rawValue, path: String(head.uri.prefix { $0 != "?" }),
                                               headers: head.headers.map { ($0.name, $0.value) }, body: body)
                }
                let received = body
                body = []
                self.head = nil
                let channel = context.channel
                let relayedBy = head.headers.first(name: WebhookRelay.header)
                var fields = ["host": verdict.host, "result": verdict.result, "status": String(verdict.status), "detail": verdict.message]
                if let relayedBy { fields["relayed_by"] = String(relayedBy.prefix(100)) }
                guard verdict.triggersCheck else {
                    metrics?.increment(.webhooks, ["host": verdict.host, "result": verdict.result])
                    if verdict.status < 300 { log.info("webhook ignored", fields) } else { log.warning("webhook refused", fields) }
                    return Self.respond(channel, head, verdict.status, verdict.message)
                }
                switch relay?.target() ?? .local {
                case .local:
                    metrics?.increment(.webhooks, ["host": verdict.host, "result": verdict.result])
                    log.info("webhook: push", fields)
                    onPush()
                    Self.respond(channel, head, verdict.status, verdict.message)
                case .leader(let url) where relayedBy == nil:
                    // A standby: the leader acts on it. The request goes as it came (its
                    // signature with it), and the leader verifies it again.
                    Self.relay(to: url, head: head, body: received, identity: relay?.identity ?? "cairn", host: verdict.host,
                               fields: fields, log: log, metrics: metrics, channel: channel)
                case .leader, .unknown:
                    metrics?.increment(.webhooks, ["host": verdict.host, "result": "relay_failed"])
                    let message = relayedBy != nil
                        ? "relayed to a replica that is on standby itself (the leader changed); the next poll finds the push"
                        : "this replica is on standby and the leader has published no webhook address; the next poll finds the push"
                    log.warning("webhook: push not relayed", fields.merging(["error": message]) { $1 })
                    Self.respond(channel, head, 503, message)
                }
            }
        }

        /// Relays a verified push to the leader and answers with what the leader answered (503
        /// when it could not be reached). On NIO's threads alone: a busy task pool never holds
        /// up an answer.
        static func relay(to url: String, head: HTTPRequestHead, body: [UInt8], identity: String, host: String, fields: [String: String],
                          log: Logging.Logger, metrics: Metrics?, channel: any Channel) {
            WebhookRelay.forward(to: url, path: head.uri, headers: head.headers, body: body, identity: identity).whenComplete { result in
                let (status, answer) = (try? result.get()) ?? (0, "")
                let ok = (200..<300).contains(status)
                metrics?.increment(.webhooks, ["host": host, "result": ok ? "relayed" : "relay_failed"])
                var fields = fields
                fields["leader"] = url
                fields["leader_status"] = String(status)
                if ok {
                    log.info("webhook: push relayed to the leader", fields)
                } else {
                    fields["error"] = answer
                    log.warning("webhook: push not relayed", fields)
                }
                let message = ok ? "relayed to the leader: \(answer)"
                    : "this replica is on standby and the leader at \(url) did not take the push (\(answer)); the next poll finds it"
                channel.eventLoop.execute { respond(channel, head, ok ? status : 503, message) }
            }
        }

        /// The answer, on the channel's event loop. A refused request's connection is not kept:
        /// its client may still be sending.
        static func respond(_ channel: any Channel, _ head: HTTPRequestHead, _ status: Int, _ message: String) {
            let text = message + "\n"
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain")
            headers.add(name: "Content-Length", value: String(text.utf8.count))
            let keep = status < 400 && head.isKeepAlive
            headers.add(name: "Connection", value: keep ? "keep-alive" : "close")
            let response = HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
            channel.write(HTTPServerResponsePart.head(response), promise: nil)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(string: text))), promise: nil)
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
                if !keep { channel.close(promise: nil) }
            }
        }
    }
}

/// With leader election, where a replica sends the verified pushes it receives: to itself when
/// it leads (or without leader election), to the leader's receiver (the URL the leader
/// publishes on the Lease) when it is on standby. A Service sends webhooks to any ready
/// replica; the standby relays them once, and a relayed push that reaches a standby (the
/// leader changed meanwhile) is answered 503: the next poll finds the commit.
public struct WebhookRelay: Sendable {
    public enum Target: Sendable, Equatable {
        case local
        /// The leader's webhook URL (`http://10.1.2.3:8080`).
        case leader(String)
        /// On standby, and the leader published no URL.
        case unknown
    }

    /// The header a relayed request carries (the relaying replica's identity): never relayed again.
    public static let header = "X-Cairn-Relayed-By"
    public let identity: String
    public let target: @Sendable () -> Target

    public init(identity: String, target: @escaping @Sendable () -> Target) {
        self.identity = identity
        self.target = target
    }

    /// The request to the leader, within 5 s: the leader's status and the start of its answer,
    /// or 0 and why it failed (the future never fails).
    static func forward(to url: String, path: String, headers: HTTPHeaders, body: [UInt8], identity: String) -> EventLoopFuture<(Int, String)> {
        let client = HTTPClient.shared
        var forwarded = HTTPHeaders()
        for (name, value) in headers where !["host", "content-length", "connection", "transfer-encoding", "expect", "keep-alive"].contains(name.lowercased()) {
            forwarded.add(name: name, value: value)
        }
        forwarded.replaceOrAdd(name: header, value: identity)
        do {
            let request = try HTTPClient.Request(url: url + path, method: .POST, headers: forwarded, body: .bytes(body))
            return client.execute(request: request, deadline: .now() + .seconds(5)).map { response -> (Int, String) in
                let text = response.body.map { String(buffer: $0) }?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                return (Int(response.status.code), String(text.prefix(200)))
            }.recover { error in (0, String("\(error)".prefix(200))) }
        } catch {
            return client.eventLoopGroup.any().makeSucceededFuture((0, String("\(error)".prefix(200))))
        }
    }
}

/// Calls `action` at once, then at most once per `interval`: calls within the interval after
/// one are folded into a single call at its end (a burst of webhooks asks for a few head
/// checks, not one each, and the first is not delayed).
public final class Debouncer: Sendable {
    private struct State {
        var last: ContinuousClock.Instant?
        var pending = false
    }
    private let state = Mutex(State())
    private let interval: Duration
    private let action: @Sendable () -> Void

    public init(interval: Duration, action: @escaping @Sendable () -> Void) {
        self.interval = interval
        self.action = action
    }

    public func call() {
        let now = ContinuousClock.now
        let wait: Duration? = state.withLock { s in
            if let last = s.last, now - last < interval {
                if s.pending { return .zero }  // already folded into the call at the interval's end
                s.pending = true
                return interval - (now - last)
            }
            s.last = now
            return nil
        }
        guard let wait else { return action() }
        guard wait > .zero else { return }
        Task {
            try? await Task.sleep(for: wait)
            state.withLock { s in
                s.pending = false
                s.last = ContinuousClock.now
            }
            action()
        }
    }
}
