import ArgumentParser
import ClusterSpecs
import DNSProxy
import Foundation
import GitStore
import KubeAPI
import Reconcile
import Render

@main
struct Cairn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cairn",
        abstract: "GitOps for stateful clusters: one spec file per cluster, rendered to Kubernetes objects.",
        discussion: """
            A spec file describes one EventStoreDB (KurrentDB), Atomix, Aerospike or PostgreSQL \
            (Patroni) cluster in its upstream operator's own shape. cairn checks it strictly and \
            renders the Services, ConfigMaps, StatefulSets, PodDisruptionBudgets and load balancers \
            the cluster needs.
            """,
        subcommands: [Validate.self, Render.self, Apply.self, Plan.self, Run.self, Fields.self, DNSProxyCommand.self, VolumeInitCommand.self]
    )
}

/// The spec files a command reads.
struct SpecInput: ParsableArguments {
    @Argument(help: ArgumentHelp(
        "Spec files, or directories searched recursively for *.yaml and *.yml.",
        valueName: "path"))
    var paths: [String] = []

    @OptionGroup(title: "Reading from git")
    var git: GitOptions

    func validate() throws {
        if paths.isEmpty, git.repo == nil {
            throw ValidationError("Name at least one spec file or directory, e.g. `cairn validate clusters/`, or a repository with --repo.")
        }
        if !paths.isEmpty, git.repo != nil {
            throw ValidationError("Give either PATHs or --repo, not both.")
        }
    }

    /// Reads, validates and renders every file; prints each problem as
    /// `file:line:column: message` on stderr.
    func desired(options: RenderOptions = RenderOptions()) throws -> DesiredState {
        let (files, unreadable) = try read()
        let state = DesiredState(files: files.map { DesiredState.File(path: $0.path, text: $0.text) }, unreadable: unreadable, options: options)
        for problem in state.unreadable { printError(problem) }
        for e in state.errors { printError(e.description) }
        for n in state.notes { printError(n.noteLine) }
        return state
    }

    /// The spec files' contents, from the directories or the repository, and the files that
    /// could not be read at all.
    func read() throws -> (files: [(path: String, text: String)], unreadable: [(path: String, reason: String)]) {
        if git.repo != nil {
            do {
                let read = try git.readSpecFiles()
                return (read.files, read.problems)
            } catch let error as GitError {
                printError("cairn: \(error)")
                throw ExitCode(1)
            }
        }
        let files: [String]
        do {
            files = try SpecFiles.find(paths)
        } catch {
            printError("cairn: \(error)")
            throw ExitCode(1)
        }
        // Read on every core (10,000 files took 0.15 s one by one), kept in the order found.
        let read = UnsafeMutableBufferPointer<Result<String, SpecFiles.ReadError>?>.allocate(capacity: files.count)
        read.initialize(repeating: nil)
        defer {
            read.deinitialize()
            read.deallocate()
        }
        // Each iteration writes its own element, and concurrentPerform returns after the last.
        nonisolated(unsafe) let out = read
        DispatchQueue.concurrentPerform(iterations: files.count) { i in
            do throws(SpecFiles.ReadError) {
                out[i] = .success(try SpecFiles.read(files[i]))
            } catch {
                out[i] = .failure(error)
            }
        }
        var contents: [(path: String, text: String)] = []
        var unreadable: [(path: String, reason: String)] = []
        for (file, result) in zip(files, read) {
            switch result! {
            case .success(let text): contents.append((file, text))
            case .failure(let error): unreadable.append((error.path, error.reason))
            }
        }
        return (contents, unreadable)
    }
}

/// Options of every command that talks to a Kubernetes API server.
struct KubeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("kubeconfig file (default: $KUBECONFIG, then ~/.kube/config; in a pod, its service account).", valueName: "file"))
    var kubeconfig: String?

    @Option(help: "kubeconfig context (default: its current context).")
    var context: String?

    @Option(help: ArgumentHelp("Only touch these namespaces, comma-separated. [env: CAIRN_NAMESPACE_ALLOW]", valueName: "a,b"))
    var namespaceAllow: String?

    @Option(help: ArgumentHelp("Seconds allowed for each request to the API server, its whole response included. "
                               + "[env: CAIRN_REQUEST_TIMEOUT]", valueName: "seconds"))
    var requestTimeout: Int?

    /// A client for the kubeconfig, with the request timeout asked for.
    func client(_ config: KubeConfig, idleConnectionSeconds: Int64 = 60) throws -> KubeClient {
        let seconds = requestTimeout ?? ProcessInfo.processInfo.environment["CAIRN_REQUEST_TIMEOUT"].flatMap(Int.init) ?? 30
        return try KubeClient(config: config, requestTimeout: .seconds(Int64(max(1, seconds))), idleConnections: .seconds(idleConnectionSeconds))
    }

    var allowedNamespaces: Set<String>? {
        (namespaceAllow ?? ProcessInfo.processInfo.environment["CAIRN_NAMESPACE_ALLOW"]).map(commaList)
    }

    /// The kubeconfig named, else $KUBECONFIG or ~/.kube/config; in a pod with neither given,
    /// the pod's service account.
    func load() throws -> KubeConfig {
        let env = ProcessInfo.processInfo.environment
        if kubeconfig == nil, env["KUBECONFIG"] == nil, env["KUBERNETES_SERVICE_HOST"] != nil {
            return try KubeConfig.inCluster()
        }
        return try KubeConfig.load(path: kubeconfig, context: context)
    }
}

/// `--create-namespace` (default on), `--no-create-namespace`, or `CAIRN_CREATE_NAMESPACE=false`.
struct NamespaceCreation: ParsableArguments {
    @Flag(inversion: .prefixedNo, help: ArgumentHelp(
        "Create a cluster's namespace when it does not exist (labelled cairn.dev/created-namespace; never deleted). [env: CAIRN_CREATE_NAMESPACE]"))
    var createNamespace: Bool?

    var enabled: Bool {
        createNamespace ?? (ProcessInfo.processInfo.environment["CAIRN_CREATE_NAMESPACE"].map { $0 != "false" } ?? true)
    }
}

/// What cairn renders that its environment gives: its own image (KurrentDB SplitDNS's
/// resolver runs from it) and the cluster DNS address.
struct EnvironmentOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "cairn's own image, for the containers cairn runs beside a database (KurrentDB SplitDNS's resolver, Aerospike's device initialisation). [env: CAIRN_IMAGE]",
        valueName: "image"))
    var dnsProxyImage: String?

    @Option(help: ArgumentHelp(
        "The cluster DNS (address or address:port) SplitDNS's resolver passes other names to (default: the Service kube-system/kube-dns).",
        valueName: "address"))
    var clusterDNS: String?

    func validate() throws {
        if let clusterDNS {
            do { _ = try SocketAddress(clusterDNS) } catch { throw ValidationError("--cluster-dns: \(error)") }
        }
    }

    var image: String? {
        dnsProxyImage ?? ProcessInfo.processInfo.environment["CAIRN_IMAGE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `--cluster-dns` as `address:port`.
    var clusterDNSAddress: String? {
        clusterDNS.flatMap { try? SocketAddress($0).description }
    }

    /// Without a cluster: what is not given is a placeholder (the output is a preview).
    func offline(podDisruptionBudgetAPIVersion: String = "policy/v1") -> RenderOptions {
        RenderOptions(podDisruptionBudgetAPIVersion: podDisruptionBudgetAPIVersion, cairnImage: image ?? "CAIRN_IMAGE",
                      clusterDNS: clusterDNSAddress ?? "CLUSTER_DNS")
    }

    func apply(to options: inout Reconciler.Options) {
        options.cairnImage = image
        options.clusterDNS = clusterDNSAddress
    }
}

/// `--namespace-allow a, b` as a set.
func commaList(_ text: String) -> Set<String> {
    Set(text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

extension Cairn {
    struct Fields: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print what cairn does with the upstream operators' fields it does not render.",
            discussion: """
                One Markdown table per system: fields accepted with a note (an upstream operator's \
                own settings) and fields refused as not supported yet, each with why. Every other \
                field of a spec is rendered with the upstream meaning, or is a typo.
                """
        )

        func run() throws {
            print(SystemRegistry.standard.fieldPolicyTables, terminator: "")
        }
    }

    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check spec files: strict fields, validation rules, duplicate clusters.",
            discussion: """
                Exits 0 when every file is valid. Otherwise prints each problem as \
                file:line:column: field: message on stderr (all problems of a file at once) and exits 1.
                """
        )

        @OptionGroup var input: SpecInput

        func run() throws {
            let state = try input.desired(options: .checkOnly)
            if state.failed { throw ExitCode(1) }
            let noun = state.clusters.count == 1 ? "cluster" : "clusters"
            print("\(state.clusters.count) \(noun) valid")
        }
    }

    struct Render: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the Kubernetes objects the spec files render, in apply order.",
            discussion: """
                Writes a multi-document YAML stream (or one JSON List) on stdout. Invalid input \
                prints the same errors as `cairn validate` and nothing on stdout, and exits 1.
                """
        )

        enum Format: String, ExpressibleByArgument, CaseIterable {
            case yaml
            case json
        }

        @OptionGroup var input: SpecInput

        @Option(name: .shortAndLong, help: "Output format: yaml or json.")
        var output: Format = .yaml

        @Option(help: ArgumentHelp(
            "PodDisruptionBudget API version: policy/v1 (Kubernetes 1.21+) or policy/v1beta1 (older servers).",
            valueName: "version"))
        var pdbApiVersion: String = "policy/v1"

        @OptionGroup(title: "What the environment gives (placeholders when not given)")
        var environment: EnvironmentOptions

        func validate() throws {
            guard ["policy/v1", "policy/v1beta1"].contains(pdbApiVersion) else {
                throw ValidationError("--pdb-api-version must be policy/v1 or policy/v1beta1 (got \(pdbApiVersion)).")
            }
        }

        func run() throws {
            let state = try input.desired(options: environment.offline(podDisruptionBudgetAPIVersion: pdbApiVersion))
            if state.failed { throw ExitCode(1) }
            let objects = ClusterRenderer.applyOrder(state.clusters).map(\.body)
            let text: String
            switch output {
            case .yaml: text = YAMLWriter.stream(objects)
            case .json: text = JSONValue.object(["apiVersion": "v1", "kind": "List", "items": .array(objects)]).prettyJSON() + "\n"
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
