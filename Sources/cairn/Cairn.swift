import ArgumentParser
import ClusterSpecs
import Foundation
import GitStore
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
        subcommands: [Validate.self, Render.self, Apply.self, Plan.self, Run.self]
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

    /// Loads every file; prints each problem as `file:line:column: message` on stderr.
    /// - Returns: The valid clusters, and whether any file had a problem.
    func load() throws -> (clusters: [ClusterSpec], failed: Bool) {
        let (files, unreadable) = try read()
        for problem in unreadable { printError(problem) }
        let result = ClusterSpecLoader.loadAll(files)
        for e in result.errors { printError(e.description) }
        return (result.clusters, !unreadable.isEmpty || !result.errors.isEmpty)
    }

    /// The spec files' contents, from the directories or the repository, and the files that
    /// could not be read at all.
    func read() throws -> (files: [(path: String, text: String)], unreadable: [String]) {
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
        var contents: [(path: String, text: String)] = []
        var unreadable: [String] = []
        for file in files {
            do {
                contents.append((file, try SpecFiles.read(file)))
            } catch {
                unreadable.append("\(error)")
            }
        }
        return (contents, unreadable)
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
            let (clusters, failed) = try input.load()
            let rendered = ClusterRenderer.renderAll(clusters)
            for e in rendered.errors { printError(e.description) }
            if failed || !rendered.errors.isEmpty { throw ExitCode(1) }
            let noun = clusters.count == 1 ? "cluster" : "clusters"
            print("\(clusters.count) \(noun) valid")
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

        func validate() throws {
            guard ["policy/v1", "policy/v1beta1"].contains(pdbApiVersion) else {
                throw ValidationError("--pdb-api-version must be policy/v1 or policy/v1beta1 (got \(pdbApiVersion)).")
            }
        }

        func run() throws {
            let (clusters, failed) = try input.load()
            let rendered = ClusterRenderer.renderAll(clusters, options: RenderOptions(podDisruptionBudgetAPIVersion: pdbApiVersion))
            for e in rendered.errors { printError(e.description) }
            if failed || !rendered.errors.isEmpty { throw ExitCode(1) }
            let objects = ClusterRenderer.applyOrder(rendered.clusters).map(\.body)
            let text: String
            switch output {
            case .yaml: text = YAMLWriter.stream(objects)
            case .json: text = JSONValue.object(["apiVersion": "v1", "kind": "List", "items": .array(objects)]).prettyJSON() + "\n"
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
