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
                as created, configured, unchanged, pruned or blocked. A cluster whose spec is invalid \
                is left untouched; PersistentVolumeClaims are never deleted. Exits 0 when every \
                object converged, 1 otherwise.
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

        func run() async throws {
            let (files, unreadable) = try input.read()
            for problem in unreadable { printError(problem) }
            let loaded = ClusterSpecLoader.loadAll(files)
            for e in loaded.errors { printError(e.description) }
            let validFiles = Set(loaded.clusters.map(\.file))
            var invalid: Set<String> = []
            var prune = unreadable.isEmpty
            for (path, text) in files where !validFiles.contains(path) {
                if let identity = ClusterSpecLoader.identity(text, file: path) { invalid.insert(identity) } else { prune = false }
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
            options.namespaceAllow = namespaceAllow.map { Set($0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }) }
            let reconciler = Reconciler(client: client, options: options)
            let result: Reconciler.Result
            do {
                let rendered = ClusterRenderer.renderAll(loaded.clusters, options: try await reconciler.renderOptions())
                for e in rendered.errors { printError(e.description) }
                // Clusters left out for colliding with another are untouched too.
                invalid.formUnion(loaded.clusters.filter { c in rendered.errors.contains { $0.file == c.file } }.map(\.identity))
                result = try await reconciler.reconcile(rendered.clusters, invalid: invalid, specsRead: files.count + unreadable.count, prune: prune)
            } catch {
                await client.shutdown()
                printError("cairn: \(error)")
                throw ExitCode(1)
            }
            await client.shutdown()
            for o in result.objects { print(o.description) }
            for w in result.warnings { printError("warning: \(w)") }
            var counts: [ObjectResult.Action: Int] = [:]
            for o in result.objects { counts[o.action, default: 0] += 1 }
            let order: [ObjectResult.Action] = [.created, .configured, .unchanged, .pruned, .kept, .blocked, .failed]
            print(order.map { "\(counts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ") + (dryRun ? " (dry run)" : ""))
            if result.failed || !loaded.errors.isEmpty || !unreadable.isEmpty { throw ExitCode(1) }
        }
    }
}
