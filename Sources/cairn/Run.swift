import ArgumentParser
import ClusterSpecs
import Daemon
import Dispatch
import Foundation
import GitStore
import KubeAPI
import Logging
import Reconcile
import ServiceLifecycle

extension Cairn {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the daemon: poll git, reconcile, write status files back to git.",
            discussion: """
                Every --interval: a remote-head check (no fetch, no Kubernetes request). On a new \
                commit of --branch, and every --resync: fetch, render (only files whose text \
                changed are parsed again), reconcile, and commit each cluster's status to \
                status/<namespace>/<name>.yaml on --status-branch when it changed. Failures of git \
                or of the API server keep the last good state and are retried with exponential \
                backoff; nothing is pruned because something could not be read. A cluster whose \
                objects the server refuses is retried on its own backoff while the others keep \
                following new commits. Live objects come from one LIST + WATCH per kind (--no-watch: \
                a LIST per pass): a change to a field cairn owns, or one of its objects deleted, \
                gets its cluster a pass within about a second, logged as drift with who made it. \
                SIGTERM or SIGINT \
                finishes the step under way and exits. Every option also reads an environment \
                variable: CAIRN_REPO, CAIRN_BRANCH, CAIRN_PATH, CAIRN_INTERVAL, CAIRN_RESYNC, \
                CAIRN_STATUS_BRANCH, CAIRN_STATUS_SAME_BRANCH=true, CAIRN_WATCH=false, CAIRN_NAMESPACE_ALLOW, \
                CAIRN_CREATE_NAMESPACE=false, \
                CAIRN_METRICS_ADDRESS, CAIRN_LOG_FORMAT, KUBECONFIG, and the git credential \
                variables of `cairn validate --help`.
                """
        )

        @OptionGroup(title: "Reading from git")
        var git: GitOptions

        @Option(help: "The branch to follow (env CAIRN_BRANCH).")
        var branch: String?

        @Option(help: ArgumentHelp("Time between remote-head checks: 30s, 1m, 500ms (env CAIRN_INTERVAL).", valueName: "duration"))
        var interval: String?

        @Option(help: ArgumentHelp("Time between full passes that also correct drift (env CAIRN_RESYNC).", valueName: "duration"))
        var resync: String?

        @Flag(inversion: .prefixedNo,
              help: ArgumentHelp("Keep live objects from LIST + WATCH: passes make no LIST once synced, and drift is corrected within "
                                 + "seconds (env CAIRN_WATCH=false turns it off: every pass LISTs, and drift waits for --resync)."))
        var watch = true

        @Option(help: .hidden)
        var watchTimeout: Int?

        @Option(help: "Branch for status commits (env CAIRN_STATUS_BRANCH; default cairn-status).")
        var statusBranch: String?

        @Flag(help: "Commit status to --branch itself, under status/ (env CAIRN_STATUS_SAME_BRANCH=true).")
        var statusSameBranch = false

        @OptionGroup(title: "Kubernetes")
        var kube: KubeOptions

        @OptionGroup var namespaces: NamespaceCreation

        @OptionGroup(title: "What the environment gives")
        var environment: EnvironmentOptions

        @Option(help: ArgumentHelp("Where /metrics, /healthz and /readyz listen (env CAIRN_METRICS_ADDRESS; default 127.0.0.1:9090).", valueName: "host:port"))
        var metricsAddress: String?

        @Option(help: ArgumentHelp("Where push webhooks are received: POST /hooks/github, /hooks/gitlab, /hooks/gitea or /hooks "
                                   + "(env CAIRN_WEBHOOK_ADDRESS; off by default; needs --webhook-secret-file).", valueName: "host:port"))
        var webhookAddress: String?

        @Option(help: ArgumentHelp("The webhook's shared secret (GitHub and Gitea sign with it, GitLab sends it as its token) "
                                   + "(env CAIRN_WEBHOOK_SECRET_FILE).", valueName: "file"))
        var webhookSecretFile: String?

        @Option(help: ArgumentHelp("With --leader-elect, the URL at which the other replicas reach this one's webhook receiver, "
                                   + "published on the Lease while it leads: a standby relays the pushes it receives there "
                                   + "(env CAIRN_WEBHOOK_ADVERTISE_URL; default http://$POD_IP:<webhook port>, or the webhook address "
                                   + "when it names a host).", valueName: "url"))
        var webhookAdvertiseURL: String?

        @Option(help: "text or json (env CAIRN_LOG_FORMAT).")
        var logFormat: String?

        @Option(help: "Author and committer of status commits, `Name <email>` (env CAIRN_STATUS_AUTHOR).")
        var statusAuthor: String?

        @Flag(help: "Elect a leader with a Lease, so that several replicas can run and one acts (env CAIRN_LEADER_ELECT=true).")
        var leaderElect = false

        @Option(help: "Namespace of the Lease (env POD_NAMESPACE; default cairn-system).")
        var leaderElectionNamespace: String?

        @Option(help: ArgumentHelp("How long a Lease lasts without renewal (env CAIRN_LEASE_DURATION; default 15s).", valueName: "duration"))
        var leaseDuration: String?

        static var environment: [String: String] { ProcessInfo.processInfo.environment }

        static func duration(_ text: String, _ what: String) throws -> Duration {
            let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
            for (suffix, factor) in units where text.hasSuffix(suffix) {
                if let n = Double(text.dropLast(suffix.count)), n > 0 { return .milliseconds(Int64(n * factor * 1000)) }
            }
            if let n = Double(text), n > 0 { return .milliseconds(Int64(n * 1000)) }
            throw ValidationError("\(what) '\(text)' is not a duration like 500ms, 30s, 10m or 1h.")
        }

        func run() async throws {
            Daemon.tuneAllocator()
            let env = Self.environment
            var configuration = Daemon.Configuration()
            configuration.branch = branch ?? env["CAIRN_BRANCH"] ?? "main"
            configuration.path = git.path
            configuration.interval = try Self.duration(interval ?? env["CAIRN_INTERVAL"] ?? "30s", "--interval")
            configuration.resync = try Self.duration(resync ?? env["CAIRN_RESYNC"] ?? "10m", "--resync")
            configuration.watch = watch && env["CAIRN_WATCH"] != "false"
            if let watchTimeout { configuration.watchTimeoutSeconds = max(1, watchTimeout) }
            let sameBranch = statusSameBranch || env["CAIRN_STATUS_SAME_BRANCH"] == "true"
            configuration.statusBranch = sameBranch ? nil : (statusBranch ?? env["CAIRN_STATUS_BRANCH"] ?? "cairn-status")
            if let author = statusAuthor ?? env["CAIRN_STATUS_AUTHOR"] {
                guard let open = author.firstIndex(of: "<"), author.hasSuffix(">") else {
                    throw ValidationError("--status-author must look like `Name <email>`.")
                }
                configuration.author = GitSignature(name: author[..<open].trimmingCharacters(in: .whitespaces),
                                                    email: String(author[author.index(after: open)..<author.index(before: author.endIndex)]))
            }
            guard let format = CairnLogHandler.Format(rawValue: logFormat ?? env["CAIRN_LOG_FORMAT"] ?? "text") else {
                throw ValidationError("--log-format is text or json.")
            }
            CairnLogHandler.bootstrap(format)
            let log = Logging.Logger(label: "cairn")
            guard git.repo != nil || env["CAIRN_REPO"] != nil else { throw ValidationError("Name the repository with --repo (or CAIRN_REPO).") }
            var gitOptions = git
            if gitOptions.repo == nil { gitOptions.repo = env["CAIRN_REPO"] }
            let mirror: Mirror
            do {
                guard let url = gitOptions.remoteURL else { throw ValidationError("no repository") }
                mirror = try Mirror.open(url: url, cacheDirectory: gitOptions.cacheDirectory,
                                         credentials: gitOptions.credentials(), timeout: gitOptions.timeout)
            } catch let error as GitError {
                log.error("cannot open the repository", ["error": "\(error)"])
                throw ExitCode(1)
            }
            let config: KubeConfig
            do {
                config = try kube.load()
            } catch {
                log.error("cannot load the Kubernetes configuration", ["error": "\(error)"])
                throw ExitCode(1)
            }
            // Idle between passes: connections (and the buffers a LIST grew in them) are closed
            // after 5 s rather than kept for the next pass.
            let client = try kube.client(config, idleConnectionSeconds: 5)
            var options = Reconciler.Options()
            options.namespaceAllow = kube.allowedNamespaces
            options.createNamespace = namespaces.enabled
            environment.apply(to: &options)
            let hookAddress = webhookAddress ?? env["CAIRN_WEBHOOK_ADDRESS"]
            var advertised = webhookAdvertiseURL ?? env["CAIRN_WEBHOOK_ADVERTISE_URL"]
            if let hookAddress, advertised == nil, let colon = hookAddress.lastIndex(of: ":") {
                let (host, port) = (String(hookAddress[..<colon]), hookAddress[hookAddress.index(after: colon)...])
                if let ip = env["POD_IP"], !ip.isEmpty {
                    advertised = "http://\(ip.contains(":") ? "[\(ip)]" : ip):\(port)"
                } else if !["", "0.0.0.0", "::", "[::]"].contains(host) {
                    advertised = "http://\(host):\(port)"
                }
            }
            if let advertised, !(advertised.hasPrefix("http://") || advertised.hasPrefix("https://")) {
                throw ValidationError("--webhook-advertise-url must be an http:// or https:// URL.")
            }
            var elector: LeaderElector?
            if leaderElect || env["CAIRN_LEADER_ELECT"] == "true" {
                let identity = env["POD_NAME"] ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())"
                elector = LeaderElector(client: client, namespace: leaderElectionNamespace ?? env["POD_NAMESPACE"] ?? "cairn-system",
                                        identity: identity,
                                        leaseDuration: try Self.duration(leaseDuration ?? env["CAIRN_LEASE_DURATION"] ?? "15s", "--lease-duration"),
                                        webhookURL: hookAddress == nil ? nil : advertised?.trimmingSuffix("/"), log: log)
            }
            let daemon = Daemon(configuration: configuration, mirror: mirror, reconciler: Reconciler(client: client, options: options),
                                log: log, elector: elector)

            let address = metricsAddress ?? env["CAIRN_METRICS_ADDRESS"] ?? "127.0.0.1:9090"
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
                throw ValidationError("--metrics-address must look like host:port.")
            }
            let server = try await StatusServer.start(host: String(address[..<colon]), port: port) { path in
                switch path {
                case "/metrics": return (200, daemon.metrics.render())
                case "/healthz": return (200, "ok\n")
                case "/readyz": return daemon.ready ? (200, "ready\n") : (503, "no successful pass yet\n")
                default: return (404, "not found\n")
                }
            }
            log.info("listening", ["address": "\(address[..<colon]):\(server.port)"])
            var webhooks: WebhookServer?
            if let hookAddress {
                guard let colon = hookAddress.lastIndex(of: ":"), let port = Int(hookAddress[hookAddress.index(after: colon)...]) else {
                    throw ValidationError("--webhook-address must look like host:port.")
                }
                guard let secretFile = webhookSecretFile ?? env["CAIRN_WEBHOOK_SECRET_FILE"] else {
                    throw ValidationError("--webhook-address needs --webhook-secret-file: cairn accepts only webhooks signed with a secret.")
                }
                guard let data = FileManager.default.contents(atPath: secretFile) else {
                    throw ValidationError("cannot read the webhook secret file \(secretFile).")
                }
                var secret = Array(data)
                while let last = secret.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { secret.removeLast() }
                guard secret.count >= 16 else { throw ValidationError("the webhook secret in \(secretFile) is shorter than 16 bytes.") }
                let follower = daemon.follower
                let check = Debouncer(interval: .milliseconds(250)) { follower.checkNow() }
                let hooks = try await WebhookServer.start(host: String(hookAddress[..<colon]), port: port,
                                                          verifier: WebhookVerifier(secret: secret, branch: configuration.branch),
                                                          log: log, metrics: daemon.metrics,
                                                          relay: elector.map { elector in
                                                              WebhookRelay(identity: elector.identity) {
                                                                  if elector.isLeader { return .local }
                                                                  return elector.leaderWebhookURL.map { .leader($0) } ?? .unknown
                                                              }
                                                          }) { check.call() }
                log.info("receiving webhooks", ["address": "\(hookAddress[..<colon]):\(hooks.port)", "branch": "\(configuration.branch)"])
                webhooks = hooks
            }

            // SIGTERM / SIGINT: the daemon finishes the step under way (status included), the
            // HTTP endpoint closes, and the process exits; bounded.
            // A graceful shutdown stops them in reverse order: the follower and the status writer
            // last, after the reconcile loop has handed the writer the pass under way.
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
                .init(service: daemon.statusWriter, serviceName: "status-writer"),
                .init(service: daemon.follower, serviceName: "git-follower"),
                .init(service: DaemonService(daemon: daemon), successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "daemon"),
                .init(service: HTTPService(server: server), serviceName: "http"),
            ]
            if let webhooks { services.append(.init(service: WebhookService(server: webhooks), serviceName: "webhooks")) }
            if let elector { services.append(.init(service: elector, serviceName: "leader-election")) }
            var group = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: log)
            group.maximumGracefulShutdownDuration = .seconds(60)
            group.maximumCancellationDuration = .seconds(5)
            try await ServiceGroup(configuration: group).run()
            await client.shutdown()
        }
    }
}

/// The poll/reconcile loop as a service: a graceful shutdown ends its waits and git operations
/// at once; a Kubernetes pass under way finishes.
struct DaemonService: Service {
    let daemon: Daemon

    func run() async throws {
        await withGracefulShutdownHandler {
            await daemon.run()
        } onGracefulShutdown: {
            daemon.log.info("shutting down", [:])
        }
    }
}

/// The webhook receiver until shutdown.
struct WebhookService: Service {
    let server: WebhookServer

    func run() async throws {
        try? await gracefulShutdown()
        await server.stop()
    }
}

/// /metrics, /healthz, /readyz until shutdown.
struct HTTPService: Service {
    let server: StatusServer

    func run() async throws {
        // Throws only when the service is cancelled: the server stops either way.
        try? await gracefulShutdown()
        await server.stop()
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var s = self
        while s.hasSuffix(suffix) { s.removeLast(suffix.count) }
        return s
    }
}
