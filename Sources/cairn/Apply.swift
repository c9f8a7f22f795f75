import ArgumentParser
import ClusterSpecs
import Foundation
import KubeAPI
import Reconcile
import Render

extension Cairn {
    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reconcile the clusters once: create, configure and prune their objects.",
            discussion: """
                Reads the spec files (PATHs or --repo), renders them for the server (API versions \
                from discovery), reads the live objects with one LIST per kind, and applies what \
                differs with server-side apply (field manager cairn), in stages. Prints each object \
                as created, configured, unchanged, pruned or blocked, then each cluster's health \
                (Ready, Progressing, Degraded, Invalid, Blocked). StatefulSets that cairn rolls \
                itself (Postgres, Aerospike: OnDelete) get one pod restarted per pass, once every pod \
                is Ready: Postgres replicas before the primary, Aerospike rack by rack. A cluster \
                whose spec is invalid is left untouched; PersistentVolumeClaims are never deleted. \
                Exits 0 when every cluster is Ready or Progressing, 1 otherwise.
                """
        )

        @OptionGroup var input: SpecInput

        @Option(help: ArgumentHelp("kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).", valueName: "file"))
        var kubeconfig: String?

        @Option(help: "kubeconfig context (default: its current context).")
        var context: String?

        @Flag(help: "Ask the server what would change (server-side dry run); change nothing.")
        var dryRun = false

        @Option(help: ArgumentHelp("Only touch these namespaces (comma-separated).", valueName: "a,b"))
        var namespaceAllow: String?

        @Flag(help: "Prune even when the spec directory reads as empty while clusters exist.")
        var allowPruneAll = false

        @Option(name: [.customShort("o"), .long], help: "text (kubectl style) or json (per cluster: phase, reasons, rollouts, objects).")
        var output: OutputFormat = .text

        func run() async throws {
            let (files, unreadable) = try input.read()
            for problem in unreadable { printError(problem) }
            let loaded = ClusterSpecLoader.loadAll(files)
            for e in loaded.errors { printError(e.description) }
            let validFiles = Set(loaded.clusters.map(\.file))
            var invalid: [String: String] = [:]
            var prune = unreadable.isEmpty
            for (path, text) in files where !validFiles.contains(path) {
                if let identity = ClusterSpecLoader.identity(text, file: path) {
                    let first = loaded.errors.first { $0.file == path }
                    invalid[identity] = "the spec file is invalid, its live objects are left as they are: " + (first?.description ?? path)
                } else {
                    prune = false
                }
            }

            let config: KubeConfig
            do { config = try KubeConfig.load(path: kubeconfig, context: context) } catch {
                printError("cairn: \(error)")
                throw ExitCode(1)
            }
            let client = try KubeClient(config: config)
            var options = Reconciler.Options()
            options.dryRun = dryRun
            options.allowPruneAll = allowPruneAll
            options.namespaceAllow = namespaceAllow.map(commaList)
            let reconciler = Reconciler(client: client, options: options)
            let result: Reconciler.Result
            do {
                let rendered = ClusterRenderer.renderAll(loaded.clusters, options: try await reconciler.renderOptions())
                for e in rendered.errors { printError(e.description) }
                // Clusters left out for colliding with another are untouched too.
                for e in rendered.errors {
                    for c in loaded.clusters where c.file == e.file { invalid[c.identity] = e.description }
                }
                result = try await reconciler.reconcile(rendered.clusters, invalid: invalid, specsRead: files.count + unreadable.count, prune: prune)
            } catch {
                await client.shutdown()
                printError("cairn: \(error)")
                throw ExitCode(1)
            }
            let requests = client.requestCounts
            await client.shutdown()
            switch output {
            case .json:
                var json = result.json.objectValue ?? JSONObject()
                json["requests"] = .object(JSONObject(requests.sorted { $0.key < $1.key }.map { (key: $0.key, value: JSONValue.int($0.value)) }))
                print(JSONValue.object(json).prettyJSON())
            case .text:
                for o in result.objects { print(o.description) }
                for c in result.clusters { print(c.description) }
                var counts: [ObjectResult.Action: Int] = [:]
                for o in result.objects { counts[o.action, default: 0] += 1 }
                print(ObjectResult.Action.allCases.map { "\(counts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ") + (dryRun ? " (dry run)" : ""))
            }
            for w in result.warnings { printError("warning: \(w)") }
            if result.failed || !loaded.errors.isEmpty || !unreadable.isEmpty { throw ExitCode(1) }
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}
