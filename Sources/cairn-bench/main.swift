// Benchmark driver: prints figures and ratios, never fails on a slow machine.
//
//   swift run -c release cairn-bench [render] [N ...]   validate + render N spec files (default 100 1000)
//   swift run -c release cairn-bench git                 the git layer beside the git CLI
//   swift build -c release && .build/release/cairn-bench reconcile [N ...]
//                                                        cairn apply on N generated clusters (default 100 1000)
//                                                        beside kubectl and raw SSA (starts a control plane)
//                                                        (--one-shot: only cold sync, no-op and raw LISTs, medians of 3)
//   swift run -c release cairn-bench json FILE          parse a JSON file (a LIST response), MB/s
//   swift run cairn-bench json-suite DIR                JSONTestSuite's test_parsing/ cases: y_ parse, n_ refused
//   swift build -c release && .build/release/cairn-bench plan
//                                                        cairn plan on a 1,000-cluster repository, one file changed
//   swift build -c release && .build/release/cairn-bench daemon [N]
//                                                        cairn run on N clusters (default 1000): push-to-applied, idle cost,
//                                                        drift (kubectl scale and edit), RSS
//                                                        (--memory: only the RSS after the first pass and 20 idle s)
//   swift run -c release cairn-bench kube                the Kubernetes client beside kubectl (starts a control plane)
//   swift run -c release cairn-bench generate N DIR NS,NS...
//                                                        write the reconcile benchmark's N spec files into DIR (profiling)
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "git": try gitBenchmark()
case "kube": try await kubeBenchmark()
case "plan": try planBenchmark()
case "json": try jsonBenchmark(arguments[1])
case "json-suite": try jsonSuite(arguments[1])
case "daemon": try await daemonBenchmark(count: arguments.dropFirst().compactMap { Int($0) }.first ?? 1000,
                                         memoryOnly: arguments.dropFirst().contains("--memory"))
case "reconcile":
    let counts = arguments.dropFirst().compactMap { Int($0) }
    try await reconcileBenchmark(counts.isEmpty ? [100, 1000] : counts, oneShotOnly: arguments.contains("--one-shot"))
case "render": try renderBenchmark(Array(arguments.dropFirst()))
case "memory": try desiredStateMemory(arguments[1])
case "generate":
    let files = try generatedSpecs(count: Int(arguments[1])!, namespaces: arguments[3].split(separator: ",").map(String.init))
    try FileManager.default.createDirectory(atPath: arguments[2], withIntermediateDirectories: true)
    for (name, text) in files { try text.write(toFile: arguments[2] + "/" + name, atomically: false, encoding: .utf8) }
default: try renderBenchmark(arguments)
}
