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

        @OptionGroup(title: "Kubernetes (with --live)")
        var kube: KubeOptions

        @OptionGroup(title: "What the environment gives (with --base: placeholders when not given)")
        var environment: EnvironmentOptions

        @OptionGroup var renderCache: RenderCacheFlag

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
                    plan = Self.compare(base: before.files, head: after.files, problems: after.problems.map { "\($0.path): \($0.reason)" },
                                       options: environment.offline())
                    header = PlanReport.Header(base: "\(base) (\(String(baseCommit.description.prefix(7))))", head: headLabel, path: git.path)
                } else {
                    plan = try await liveComparison(head: after.files, problems: after.problems.map { "\($0.path): \($0.reason)" })
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
            let config: KubeConfig
            do { config = try kube.load() } catch {
                printError("cairn: \(error)")
                throw ExitCode(2)
            }
            let client = try kube.client(config)
            var options = Reconciler.Options()
            options.namespaceAllow = kube.allowedNamespaces
            environment.apply(to: &options)
            let reconciler = Reconciler(client: client, options: options)
            do {
                let renderOptions = try await reconciler.renderOptions()
                let cache = renderCache.open(git, options: renderOptions)
                let state = DesiredState(files: head.map { DesiredState.File(path: $0.path, text: $0.text) }, options: renderOptions,
                                         renderCache: cache)
                RenderCacheFlag.save(cache)
                let allowed = state.clusters.filter { options.namespaceAllow?.contains($0.spec.metadata.namespace) ?? true }
                let liveSides = try await reconciler.liveSides(for: allowed, invalid: Set(state.invalid.keys))
                await client.shutdown()
                var plan = ChangePlan.compare(base: liveSides, head: allowed.map(ChangePlan.Side.init),
                                              errors: problems + state.errors.map(\.description), filesChanged: 0)
                plan.notes = state.notes.map { $0.isWarning ? $0.noteLine : $0.description }
                return plan
            } catch {
                await client.shutdown()
                throw error
            }
        }

        /// Compares the clusters the change touches. Both revisions go through `DesiredState`,
        /// the head built on the base (only the files that differ are read again), so the plan
        /// refuses what `apply` at the head would refuse: a new file naming an existing cluster,
        /// or rendering an object another cluster has.
        static func compare(base: [(path: String, text: String)], head: [(path: String, text: String)], problems: [String],
                            options: RenderOptions = .checkOnly) -> ChangePlan {
            // Only the namespaces the change touches are read whole: duplicates and collisions
            // never cross a namespace.
            let baseText = Dictionary(base.map { ($0.path, $0.text) }, uniquingKeysWith: { a, _ in a })
            let headText = Dictionary(head.map { ($0.path, $0.text) }, uniquingKeysWith: { a, _ in a })
            var namespaces = Set<String>()
            for path in Set(baseText.keys).union(headText.keys) where baseText[path] != headText[path] {
                for text in [baseText[path], headText[path]].compactMap({ $0 }) {
                    guard let id = ClusterSpecLoader.identity(text, file: path, kinds: SystemRegistry.standard.kinds) else { continue }
                    namespaces.insert(String(id[..<id.firstIndex(of: "/")!]))
                }
            }
            let before = DesiredState(files: base.map { DesiredState.File(path: $0.path, text: $0.text) }, options: options, namespaces: namespaces)
            let after = DesiredState(files: head.map { DesiredState.File(path: $0.path, text: $0.text) }, options: options, previous: before,
                                     namespaces: namespaces)
            let touched = after.changedClusters(since: before)
            let changedFiles = after.changedFiles(since: before)
            // The head's problems that the change brings: in the files it changed, and on the
            // clusters it made invalid (an unchanged file now a duplicate, say).
            let errors = problems + after.errors.filter { e in
                changedFiles.contains(e.file) || after.identity(ofFile: e.file).map { touched.contains($0) && after.invalid[$0] != nil } == true
            }.map(\.description)
            // A cluster invalid at the head is not compared: it is neither deleted nor changed.
            let baseSide = before.clusters.filter {
                touched.contains($0.spec.identity) && after.invalid[$0.spec.identity] == nil && !after.isInvalid(file: $0.spec.file)
            }
            let headSide = after.clusters.filter { touched.contains($0.spec.identity) }
            var plan = ChangePlan.compare(base: baseSide, head: headSide, errors: errors, filesChanged: changedFiles.count)
            plan.notes = after.notes.filter { changedFiles.contains($0.file) }.map { $0.isWarning ? $0.noteLine : $0.description }
            plan.filesRendered = before.filesRendered + after.filesRendered
            return plan
        }
    }
}

enum PlanFormat: String, ExpressibleByArgument, CaseIterable {
    case text, markdown, json
}
