import ArgumentParser
import ClusterSpecs
import Foundation
import GitStore
import KubeAPI
import Reconcile
import Render

extension Cairn {
    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what a change to the spec files does: rendered diff, pods that restart, blocked changes.",
            discussion: """
                Renders the spec files of two revisions and compares the rendered objects per \
                cluster: objects added, changed and deleted with a unified diff (Secret values \
                masked); which StatefulSets roll, why (the ConfigMap keys, image or resources that \
                changed) and in what order their pods restart; changes to immutable fields \
                (blocked); deleted clusters and the volume claims they keep; validation errors of \
                the head revision with file:line:column. Only the spec files that differ between \
                the revisions are rendered. No cluster credentials are needed.

                Exit status like kubectl diff: 0 no change to any rendered object, 1 changes, \
                2 errors (an invalid spec file, a blocked change, or a failure).
                """
        )

        @OptionGroup(title: "Reading from git")
        var git: GitOptions

        @Option(help: ArgumentHelp("The revision the change starts from (branch, tag, SHA, origin/main, main~1).", valueName: "rev"))
        var base: String?

        @Option(help: ArgumentHelp("The revision with the change (default: --ref, HEAD).", valueName: "rev"))
        var head: String?

        @Option(help: "text, markdown (for a pull-request comment) or json.")
        var format: PlanFormat = .text

        @Flag(help: "Compare the head revision with the live cluster instead of --base (needs cluster access).")
        var live = false

        @Option(help: ArgumentHelp("kubeconfig file for --live (default: $KUBECONFIG, then ~/.kube/config).", valueName: "file"))
        var kubeconfig: String?

        @Option(help: "kubeconfig context for --live.")
        var context: String?

        @Option(help: ArgumentHelp("With --live, only these namespaces (comma-separated).", valueName: "a,b"))
        var namespaceAllow: String?

        func validate() throws {
            if git.repo == nil { throw ValidationError("Name the repository with --repo (a path or URL).") }
            if base == nil && !live { throw ValidationError("Give --base REV (the revision the change starts from), or --live.") }
            if base != nil && live { throw ValidationError("Give either --base or --live, not both.") }
        }

        func run() async throws {
            let plan: ChangePlan
            let header: PlanReport.Header
            do {
                let mirror = try git.fetchedMirror()
                let headRev = head ?? git.ref
                let headCommit = try mirror.resolve(headRev)
                let after = try git.specFiles(in: mirror, at: headCommit)
                let headLabel = "\(headRev) (\(String(headCommit.description.prefix(7))))"
                if let base {
                    let baseCommit = try mirror.resolve(base)
                    let before = try git.specFiles(in: mirror, at: baseCommit)
                    plan = Self.compare(base: before.files, head: after.files, problems: after.problems)
                    header = PlanReport.Header(base: "\(base) (\(String(baseCommit.description.prefix(7))))", head: headLabel, path: git.path)
                } else {
                    plan = try await liveComparison(head: after.files, problems: after.problems)
                    header = PlanReport.Header(base: "live cluster", head: headLabel, path: git.path)
                }
            } catch let error as GitError {
                printError("cairn: \(error)")
                throw ExitCode(2)
            } catch let error as KubeError {
                printError("cairn: \(error)")
                throw ExitCode(2)
            }
            switch format {
            case .text: print(PlanReport.text(plan, header: header), terminator: "")
            case .markdown: print(PlanReport.markdown(plan, header: header), terminator: "")
            case .json: print(PlanReport.json(plan, header: header).prettyJSON())
            }
            throw ExitCode(plan.exitCode)
        }

        /// The head revision (every file) against the live objects.
        func liveComparison(head: [(path: String, text: String)], problems: [String]) async throws -> ChangePlan {
            let loaded = ClusterSpecLoader.loadAll(head)
            var errors = problems + loaded.errors.map(\.description)
            let valid = Set(loaded.clusters.map(\.file))
            var invalid: Set<String> = []
            for (path, text) in head where !valid.contains(path) {
                if let id = ClusterSpecLoader.identity(text, file: path) { invalid.insert(id) }
            }
            let config: KubeConfig
            do { config = try KubeConfig.load(path: kubeconfig, context: context) } catch {
                printError("cairn: \(error)")
                throw ExitCode(2)
            }
            let client = try KubeClient(config: config)
            var options = Reconciler.Options()
            options.namespaceAllow = namespaceAllow.map(commaList)
            let reconciler = Reconciler(client: client, options: options)
            do {
                let rendered = ClusterRenderer.renderAll(loaded.clusters, options: try await reconciler.renderOptions())
                errors += rendered.errors.map(\.description)
                for e in rendered.errors {
                    for c in loaded.clusters where c.file == e.file { invalid.insert(c.identity) }
                }
                let allowed = rendered.clusters.filter { c in
                    !invalid.contains(c.spec.identity) && (options.namespaceAllow?.contains(c.spec.metadata.namespace) ?? true)
                }
                let liveSides = try await reconciler.liveSides(for: allowed, invalid: invalid)
                await client.shutdown()
                return ChangePlan.compare(base: liveSides, head: allowed.map(ChangePlan.Side.init), errors: errors, filesChanged: 0)
            } catch {
                await client.shutdown()
                throw error
            }
        }

        /// Renders only the files whose text differs between the revisions, and compares.
        static func compare(base: [(path: String, text: String)], head: [(path: String, text: String)], problems: [String]) -> ChangePlan {
            let baseText = Dictionary(base.map { ($0.path, $0.text) }, uniquingKeysWith: { a, _ in a })
            let headText = Dictionary(head.map { ($0.path, $0.text) }, uniquingKeysWith: { a, _ in a })
            let changed = Set(baseText.keys).union(headText.keys).filter { baseText[$0] != headText[$0] }
            let baseLoaded = ClusterSpecLoader.loadAll(base.filter { changed.contains($0.path) })
            let headLoaded = ClusterSpecLoader.loadAll(head.filter { changed.contains($0.path) })
            var errors = problems + headLoaded.errors.map(\.description)
            // A cluster whose head file is invalid is not compared: it is neither deleted nor changed.
            let validHead = Set(headLoaded.clusters.map(\.file))
            var skipped: Set<String> = []
            var skippedFiles: Set<String> = []
            for (path, text) in head where changed.contains(path) && !validHead.contains(path) {
                if let id = ClusterSpecLoader.identity(text, file: path) { skipped.insert(id) }
                skippedFiles.insert(path)
            }
            let options = RenderOptions()
            let headRendered = ClusterRenderer.renderAll(headLoaded.clusters, options: options)
            errors += headRendered.errors.map(\.description)
            for e in headRendered.errors {
                for c in headLoaded.clusters where c.file == e.file { skipped.insert(c.identity) }
            }
            let baseClusters = ClusterRenderer.renderAll(baseLoaded.clusters.filter { !skipped.contains($0.identity) && !skippedFiles.contains($0.file) }, options: options).clusters
            var plan = ChangePlan.compare(base: baseClusters, head: headRendered.clusters, errors: errors, filesChanged: changed.count)
            plan.filesRendered = base.filter { changed.contains($0.path) }.count + head.filter { changed.contains($0.path) }.count
            return plan
        }
    }
}

enum PlanFormat: String, ExpressibleByArgument, CaseIterable {
    case text, markdown, json
}
