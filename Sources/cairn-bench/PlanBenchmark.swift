// plan: `cairn plan` (the real binary) between two revisions of a generated 1,000-cluster
// repository that differ in one spec file, beside a full validate + render of both revisions
// (what a plan that did not look at what changed would cost).
import ClusterSpecs
import Foundation
import Render

func planBenchmark() throws {
    guard let cairn = cairnBinary() else { return }
    let root = NSTemporaryDirectory() + "cairn-bench-plan-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let work = root + "/work"
    try FileManager.default.createDirectory(atPath: work + "/clusters", withIntermediateDirectories: true)
    func git(_ arguments: String...) { _ = capture(["git", "-C", work] + arguments) }
    git("init", "-q", "-b", "main")
    git("config", "user.email", "bench@example.com")
    git("config", "user.name", "bench")
    let files = try generatedSpecs(count: 1000, namespaces: ["a", "b", "c", "d"])
    for (name, text) in files { try text.write(toFile: "\(work)/clusters/\(name)", atomically: false, encoding: .utf8) }
    git("add", "-A")
    git("commit", "-q", "-m", "1000 clusters")
    let changed = files.keys.sorted().first { $0.hasPrefix("esdb-") }!
    try files[changed]!.replacingOccurrences(of: "RunProjections: System", with: "RunProjections: All")
        .write(toFile: "\(work)/clusters/\(changed)", atomically: false, encoding: .utf8)
    git("commit", "-q", "-am", "one configuration change")

    let arguments = [cairn, "plan", "--repo", work, "--base", "main~1", "--head", "main", "--format", "json", "--cache-dir", root + "/cache"]
    _ = measure(arguments)  // the mirror's first clone, outside the timing
    var runs: [Measured] = []
    for _ in 0..<5 { runs.append(measure(arguments)) }
    let plan = runs.sorted { $0.seconds < $1.seconds }[2]
    let json = try? JSONValue.parse(Array(plan.stdout.utf8))

    // A full validate + render of both revisions, in process (no git, no process start).
    var fullTimes: [Double] = []
    for _ in 0..<5 {
        let start = DispatchTime.now()
        for _ in 0..<2 {
            let loaded = ClusterSpecLoader.loadAll(files.map { (path: $0.key, text: $0.value) })
            _ = ClusterRenderer.renderAll(loaded.clusters)
        }
        fullTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
    }
    let full = fullTimes.sorted()[2]
    // Where a full read of one revision goes: YAML parsing, decoding and validation, rendering.
    func seconds(_ body: () -> Void) -> Double {
        let start = DispatchTime.now()
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
    let inputs = files.map { (path: $0.key, text: $0.value) }
    let parse = seconds { for f in inputs { _ = ClusterSpecLoader.identity(f.text, file: f.path, kinds: SystemRegistry.standard.kinds) } }
    var specs: [ClusterSpec] = []
    let load = seconds { specs = inputs.compactMap { try? ClusterSpecLoader.load($0.text, file: $0.path) } }
    let render = seconds { for s in specs { _ = ClusterRenderer.render(s) } }
    print("cairn plan between two revisions of 1,000 clusters differing in one file (median of 5, release, 2 cores)")
    print("operation                                          seconds   files rendered")
    print("cairn plan (process: git read of both trees, plan)" + String(format: "  %7.3f", plan.seconds)
          + "   \(json?["summary", "filesRendered"]?.intValue ?? -1) (exit \(plan.status))")
    print("full validate + render of both revisions (in process)" + String(format: "%7.3f", full) + "   2000")
    print(String(format: "the plan takes %.2fx the time of rendering everything", plan.seconds / full))
    print(String(format: "one revision of 1,000 files: YAML parse %.3f s, parse + decode + validate %.3f s, render %.3f s", parse, load, render))
}
