import Foundation

/// A `/metrics` text parsed by a real Prometheus parser: the `prometheus-client` package's, from
/// PyPI (`.ci/run` installs it).
struct Exposition {
    struct Sample: Decodable {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    struct Family: Decodable {
        let name: String
        let type: String
        let help: String
        let samples: [Sample]
    }

    let families: [Family]

    init(_ text: String) throws {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = []
            for f in text_string_to_metric_families(sys.stdin.read()):
                samples = [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]
                out.append({"name": f.name, "type": f.type, "help": f.documentation, "samples": samples})
            print(json.dumps(out))
            """
        let result = try run("/usr/bin/env", ["python3", "-c", script], stdin: text)
        guard result.status == 0 else { throw CommandFailed(description: "the Prometheus parser refused the exposition: \(result.stderr)\n\(text)") }
        families = try JSONDecoder().decode([Family].self, from: Data(result.stdout.utf8))
    }

    /// The family a sample name belongs to (the parser names counters without `_total`).
    func family(_ name: String) -> Family? {
        families.first { $0.name == name } ?? families.first { $0.samples.contains { $0.name == name } }
    }

    /// The value of the sample with exactly these labels, or nil.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        family(name)?.samples.first { $0.name == name && $0.labels == labels }?.value
    }

    /// The sum over every sample of that name, whatever its labels (nil: none).
    func total(_ name: String) -> Double? {
        let samples = families.flatMap(\.samples).filter { $0.name == name }
        return samples.isEmpty ? nil : samples.map(\.value).reduce(0, +)
    }
}
