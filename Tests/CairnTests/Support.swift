import ClusterSpecs
import Foundation
import Render

/// Paths inside the repository, found from this file's location.
enum Repo {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let clusters = root.appendingPathComponent("clusters")
    static let golden = root.appendingPathComponent("Tests/CairnTests/Golden")

    static func read(_ url: URL) -> String {
        try! String(contentsOf: url, encoding: .utf8)
    }

    static var exampleFiles: [String] {
        try! FileManager.default.contentsOfDirectory(atPath: clusters.path).filter { $0.hasSuffix(".yaml") }.sorted()
    }
}

/// Loads a spec from text; the errors as printed, or an empty list.
func specErrors(_ yaml: String, file: String = "t.yaml") -> [String] {
    do {
        _ = try ClusterSpecLoader.load(yaml, file: file)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

func loadSpec(_ yaml: String, file: String = "t.yaml") throws -> ClusterSpec {
    try ClusterSpecLoader.load(yaml, file: file)
}

func render(_ yaml: String) throws -> [RenderedObject] {
    ClusterRenderer.render(try loadSpec(yaml)).objects
}

func object(_ objects: [RenderedObject], _ kind: String, _ name: String) -> RenderedObject? {
    objects.first { $0.kind == kind && $0.name == name }
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion with a bounded wait.
func run(_ executable: String, _ arguments: [String], stdin: String? = nil, timeout: TimeInterval = 60) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe(), err = Pipe(), input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    // Read both pipes concurrently so a full pipe cannot block the child.
    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data(), errData = Data()
    group.enter()
    DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        process.waitUntilExit()
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(executable) did not finish in \(timeout) s"])
    }
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Runs a Python snippet with `input` on stdin; its stdout.
func python(_ script: String, input: String) throws -> ProcessResult {
    try run("/usr/bin/env", ["python3", "-c", script], stdin: input)
}
