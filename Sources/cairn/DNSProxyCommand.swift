import ArgumentParser
import DNSProxy

extension Cairn {
    /// KurrentDB SplitDNS's resolver, run by cairn beside each node (in cairn's own image).
    struct DNSProxyCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dns-proxy",
            abstract: "Serve DNS for one pod: the nodes' FQDNs answered with their pods' addresses, the rest passed on.",
            discussion: """
                The sidecar cairn renders for KurrentDB's `internodeTrafficStrategy: SplitDNS`: \
                the pod's resolver (dnsPolicy None) points at it; a query matching a --map rule \
                is looked up under the rule's name (or answered with its address) and answered \
                under the name asked; every other query goes to --upstream (the cluster DNS) as it is.
                """
        )

        @Option(help: ArgumentHelp("Address to serve on, UDP and TCP.", valueName: "address:port"))
        var listen = "127.0.0.1:53"

        @Option(help: ArgumentHelp("The DNS server for everything else (the cluster DNS).", valueName: "address:port"))
        var upstream: String

        @Option(name: .customLong("map"), help: ArgumentHelp(
            "FROM=TO: a host name (with {n} for a pod's ordinal) looked up as another (same {n}) or answered with an address.",
            valueName: "from=to"))
        var rules: [String] = []

        func run() throws {
            do {
                let server = DNSProxyServer(listen: try SocketAddress(listen), upstream: try SocketAddress(upstream),
                                            rules: try rules.map { try DNSRule(parsing: $0) })
                printError("cairn dns-proxy: serving on \(server.listen), upstream \(server.upstream), rules: "
                           + (server.rewriter.rules.isEmpty ? "none" : server.rewriter.rules.map(\.description).joined(separator: " ")))
                try server.run()
            } catch {
                printError("cairn dns-proxy: \(error)")
                throw ExitCode(1)
            }
        }
    }
}
