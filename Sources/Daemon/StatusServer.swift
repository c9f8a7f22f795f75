import NIOCore
import NIOHTTP1
import NIOPosix

/// The daemon's HTTP endpoint: `/metrics`, `/healthz`, `/readyz`. GET only, tiny responses.
public final class StatusServer: Sendable {
    public typealias Route = @Sendable (String) -> (status: Int, body: String)
    let channel: any Channel
    public let port: Int

    private init(channel: any Channel) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
    }

    /// Listens on `host:port` (port 0: any free port).
    public static func start(host: String, port: Int, route: @escaping Route) async throws -> StatusServer {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(route: route))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        return StatusServer(channel: channel)
    }

    public func stop() async {
        // Fails only when the channel is closed already.
        try? await channel.close()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let route: Route
        var uri = "/"
        var method: HTTPMethod = .GET

        init(route: @escaping Route) { self.route = route }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                uri = head.uri
                method = head.method
            case .body:
                break
            case .end:
                let (status, body) = method == .GET ? route(String(uri.prefix { $0 != "?" })) : (405, "GET only\n")
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: uri.hasPrefix("/metrics") ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain")
                headers.add(name: "Content-Length", value: String(body.utf8.count))
                let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
