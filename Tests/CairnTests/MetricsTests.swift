@testable import Daemon
import Foundation
import Testing

/// The daemon's metrics as Prometheus reads them: every family with its HELP and TYPE, labelled
/// histograms, info series replaced rather than piled up. Parsed by prometheus-client.
@Suite("Metrics exposition")
struct MetricsTests {
    @Test func everyFamilyHasHelpTypeAndItsLabels() throws {
        let metrics = Metrics()
        for family in MetricFamily.allCases {
            let labels = Dictionary(uniqueKeysWithValues: family.labelNames.map { ($0, "x\"y\\z\n") })
            switch family.kind {
            case .counter: metrics.increment(family, labels, by: 2)
            case .gauge: metrics.set(family, 3, labels)
            case .histogram: metrics.observe(family, .milliseconds(300), labels)
            }
        }
        let exposition = try Exposition(metrics.render())
        for family in MetricFamily.allCases {
            let name = family.kind == .counter ? String(family.rawValue.dropLast("_total".count)) : family.rawValue
            let parsed = try #require(exposition.families.first { $0.name == name }, "\(family.rawValue) missing")
            #expect(parsed.help == family.help, "\(family.rawValue)")
            #expect(!parsed.help.isEmpty)
            switch family.kind {
            case .counter: #expect(parsed.type == "counter"); #expect(exposition.value(family.rawValue, parsed.samples[0].labels) == 2)
            case .gauge: #expect(parsed.type == "gauge"); #expect(parsed.samples.first?.value == 3)
            case .histogram:
                #expect(parsed.type == "histogram")
                #expect(exposition.total(family.rawValue + "_count") == 1)
                let bucket = parsed.samples.first { $0.name == family.rawValue + "_bucket" && $0.labels["le"] == "0.25" }
                #expect(bucket?.value == 0, "300 ms is above the 250 ms bucket")
                #expect(parsed.samples.first { $0.name == family.rawValue + "_bucket" && $0.labels["le"] == "0.5" }?.value == 1)
            }
            for sample in parsed.samples {
                // Label values (quotes, backslashes, newlines) come back as they were given.
                let own = sample.labels.filter { $0.key != "le" }
                #expect(Set(own.keys) == Set(family.labelNames), "\(sample.name)")
                #expect(own.values.allSatisfy { $0 == "x\"y\\z\n" }, "\(sample.name): \(own)")
            }
        }
    }

    @Test func histogramsKeepTheirLabelsApart() throws {
        let metrics = Metrics()
        metrics.observe(.reconcileSeconds, .seconds(2), ["scope": "full"])
        metrics.observe(.reconcileSeconds, .milliseconds(20), ["scope": "partial"])
        metrics.observe(.reconcileSeconds, .milliseconds(30), ["scope": "partial"])
        let exposition = try Exposition(metrics.render())
        #expect(exposition.value("cairn_reconcile_seconds_count", ["scope": "full"]) == 1)
        #expect(exposition.value("cairn_reconcile_seconds_count", ["scope": "partial"]) == 2)
        let sum = try #require(exposition.value("cairn_reconcile_seconds_sum", ["scope": "partial"]))
        #expect(abs(sum - 0.05) < 1e-9)
    }

    @Test func anInfoSeriesIsReplacedWhenItsLabelsChange() throws {
        let metrics = Metrics()
        metrics.setInfo(.lastAppliedCommit, ["commit": "aaa"])
        metrics.setInfo(.lastAppliedCommit, ["commit": "aaa"])
        metrics.setInfo(.lastAppliedCommit, ["commit": "bbb"])
        let exposition = try Exposition(metrics.render())
        let samples = try #require(exposition.family("cairn_last_applied_commit_info")).samples
        #expect(samples.map(\.labels) == [["commit": "bbb"]])
        #expect(samples.first?.value == 1)
    }

    @Test func aLabelTheFamilyDoesNotDeclareIsDropped() throws {
        let metrics = Metrics()
        metrics.increment(.statusCommits, ["branch": "main"])
        metrics.increment(.statusCommits)
        let exposition = try Exposition(metrics.render())
        #expect(exposition.value("cairn_status_commits_total") == 2)
    }
}
