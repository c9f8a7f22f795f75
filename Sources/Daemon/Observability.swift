public import ClusterSpecs
import Foundation
import Synchronization
import CoreMetrics
import Prometheus
public import Logging

/// swift-log's handler for cairn: one line per event on stderr, `text` (`time level message
/// key=value ...`) or `json` (one object per line). Callers put object names and commits in the
/// metadata, never secrets.
public struct CairnLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable { case text, json }
    public let format: Format
    public var metadata: Logging.Logger.Metadata = [:]
    public var logLevel: Logging.Logger.Level = .info
    private static let lock = NSLock()

    public init(format: Format) { self.format = format }

    public subscript(metadataKey key: String) -> Logging.Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Installs the handler for the whole process (once).
    public static func bootstrap(_ format: Format) {
        LoggingSystem.bootstrap { _ in CairnLogHandler(format: format) }
    }

    public func log(event: LogEvent) {
        let time = UTCTime.string(Date())
        var fields = self.metadata
        for (k, v) in event.metadata ?? [:] { fields[k] = v }
        let sorted = fields.map { ($0.key, "\($0.value)") }.sorted { $0.0 < $1.0 }
        let line: String
        switch format {
        case .json:
            var o: JSONObject = ["time": .string(time), "level": .string("\(event.level)"), "msg": .string("\(event.message)")]
            for (k, v) in sorted { o[k] = .string(v) }
            line = JSONValue.object(o).canonicalJSON()
        case .text:
            line = "\(time) \(event.level) \(event.message)" + sorted.map { k, v in
                " \(k)=" + (v.contains(" ") || v.isEmpty ? JSONValue.string(v).canonicalJSON() : v)
            }.joined()
        }
        Self.lock.withLock { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}

extension Logging.Logger {
    /// `log.info("object created", ["object": ..., "commit": ...])`: string fields as metadata.
    public func info(_ message: String, _ fields: [String: String]) { log(level: .info, "\(message)", metadata: fields.mapValues { .string($0) }) }
    public func warning(_ message: String, _ fields: [String: String]) { log(level: .warning, "\(message)", metadata: fields.mapValues { .string($0) }) }
    public func error(_ message: String, _ fields: [String: String]) { log(level: .error, "\(message)", metadata: fields.mapValues { .string($0) }) }
}

/// Every metric cairn exports: its name, type, help text and label names, in one place. The
/// labels a family has are fixed here, so a series can never be exported both with and
/// without labels (which Prometheus' registry refuses).
public enum MetricFamily: String, CaseIterable, Sendable {
    case up = "cairn_up"
    case leader = "cairn_leader"
    case kubeRequests = "cairn_kube_requests"
    case errors = "cairn_errors_total"
    case mirrorRepairs = "cairn_mirror_repairs_total"
    case gitCheckSeconds = "cairn_git_check_seconds"
    case gitFetchSeconds = "cairn_git_fetch_seconds"
    case reconcileSeconds = "cairn_reconcile_seconds"
    case specFilesUnreadable = "cairn_spec_files_unreadable"
    case lastAppliedCommit = "cairn_last_applied_commit_info"
    case objects = "cairn_objects_total"
    case clusters = "cairn_clusters"
    case clustersFailing = "cairn_clusters_failing"
    case clusterFailures = "cairn_cluster_failures_total"
    case statusCommits = "cairn_status_commits_total"
    case statusPushFailures = "cairn_status_push_failures_total"
    case webhooks = "cairn_webhooks_total"
    case drift = "cairn_drift_events_total"
    case liveCache = "cairn_live_cache"

    public enum Kind: Sendable { case counter, gauge, histogram }

    public var kind: Kind {
        switch self {
        case .errors, .mirrorRepairs, .objects, .clusterFailures, .statusCommits, .statusPushFailures, .webhooks, .drift: .counter
        case .gitCheckSeconds, .gitFetchSeconds, .reconcileSeconds: .histogram
        default: .gauge
        }
    }

    public var labelNames: [String] {
        switch self {
        case .kubeRequests: ["operation"]
        case .errors: ["reason"]
        case .reconcileSeconds: ["scope"]
        case .lastAppliedCommit: ["commit"]
        case .objects: ["action"]
        case .clusters: ["phase"]
        case .clusterFailures: ["cluster"]
        case .webhooks: ["host", "result"]
        case .drift: ["kind"]
        case .liveCache: ["count"]
        default: []
        }
    }

    public var help: String {
        switch self {
        case .up: "1 once a step of the loop (head check, and a pass when one is due) has succeeded."
        case .leader: "1 while this process holds the leader lease (always 1 without leader election)."
        case .kubeRequests: "Kubernetes API requests made since start, by operation."
        case .errors: "Steps of the loop that failed, by reason (git_<kind>, kube_<reason>, other)."
        case .mirrorRepairs: "Damaged git mirrors moved aside and cloned afresh."
        case .gitCheckSeconds: "Time to read the remote branch's head (one round trip)."
        case .gitFetchSeconds: "Time to fetch the branch into the mirror."
        case .reconcileSeconds: "Time of a reconcile pass, by scope: full (every cluster) or partial (the clusters a commit touched)."
        case .specFilesUnreadable: "Spec files not read (too large, a link, a submodule); their clusters are left as they are."
        case .lastAppliedCommit: "The commit of the last successful pass (value always 1)."
        case .objects: "Objects cairn acted on, by action (created, configured, restarted, pruned, blocked, failed, ...)."
        case .clusters: "Clusters by phase, the whole fleet as of each cluster's last pass."
        case .clustersFailing: "Clusters whose last pass failed, retried on their own backoff."
        case .clusterFailures: "Failed passes, by cluster."
        case .statusCommits: "Status commits pushed."
        case .statusPushFailures: "Status pushes that failed (retried on the status writer's backoff)."
        case .webhooks: "Webhook requests received, by git host and result (push, ignored, unauthorized, forbidden, bad_request, too_large, ...)."
        case .liveCache: "The live-object cache since start, by count: lists, relists (after 410 Gone), watches (opened), broken (watches that failed and were resumed), events."
        case .drift: "Watch events that changed a field cairn owns on one of its objects, or deleted one, by kind: each schedules its cluster's pass."
        }
    }

    /// Durations from 5 ms to a minute.
    static let buckets: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                      .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
                                      .seconds(10), .seconds(30), .seconds(60)]
}

/// swift-metrics' factory over a Prometheus registry, with the help text and buckets of
/// `MetricFamily` (the standard PrometheusMetricsFactory has no help text).
struct CairnMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    private func help(_ label: String) -> String { MetricFamily(rawValue: label)?.help ?? "" }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(name: label, labels: dimensions, help: help(label)) }
        return registry.makeValueHistogram(name: label, labels: dimensions, buckets: MetricFamily.buckets.map(\.seconds), help: help(label))
    }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(name: label, labels: dimensions, help: help(label))
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(name: label, labels: dimensions, buckets: MetricFamily.buckets, help: help(label))
    }
    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }
    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? Prometheus.ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }
    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }
    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? Prometheus.DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}

/// The daemon's metrics: recorded through swift-metrics, exported by swift-prometheus in the
/// text format (`# HELP` and `# TYPE` on every family). Each daemon has its own registry, so
/// several daemons in one process (the tests) do not mix.
public final class Metrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: CairnMetricsFactory
    /// The series of each info family now exported: replaced, not added to, when its labels change.
    private let infos = Mutex<[MetricFamily: CoreMetrics.Gauge]>([:])
    /// Each series' swift-metrics handler, made once (the registry validates names and labels
    /// each time one is made).
    private struct Series: Hashable {
        let family: MetricFamily
        let values: [String]
    }
    private let counters = Mutex<[Series: CoreMetrics.Counter]>([:])
    private let gauges = Mutex<[Series: CoreMetrics.Gauge]>([:])
    private let timers = Mutex<[Series: CoreMetrics.Timer]>([:])

    public init() { factory = CairnMetricsFactory(registry: registry) }

    /// The family's labels, in its declared order; a label it does not declare is dropped.
    private func dimensions(_ family: MetricFamily, _ labels: [String: String]) -> [(String, String)] {
        family.labelNames.map { ($0, labels[$0] ?? "") }
    }

    /// The handler of one series, made on first use.
    private func handler<H>(_ table: borrowing Mutex<[Series: H]>, _ family: MetricFamily, _ labels: [String: String],
                            make: (String, [(String, String)]) -> H) -> H {
        let dimensions = dimensions(family, labels)
        return table.withLock { table in
            let key = Series(family: family, values: dimensions.map(\.1))
            if let handler = table[key] { return handler }
            let handler = make(family.rawValue, dimensions)
            table[key] = handler
            return handler
        }
    }

    public func increment(_ family: MetricFamily, _ labels: [String: String] = [:], by value: Int64 = 1) {
        handler(counters, family, labels) { CoreMetrics.Counter(label: $0, dimensions: $1, factory: factory) }.increment(by: value)
    }

    public func set(_ family: MetricFamily, _ value: Double, _ labels: [String: String] = [:]) {
        handler(gauges, family, labels) { CoreMetrics.Gauge(label: $0, dimensions: $1, factory: factory) }.record(value)
    }

    /// An info metric: one series with these labels and the value 1; the previous one goes.
    public func setInfo(_ family: MetricFamily, _ labels: [String: String]) {
        let gauge = CoreMetrics.Gauge(label: family.rawValue, dimensions: dimensions(family, labels), factory: factory)
        let previous = infos.withLock { infos in
            defer { infos[family] = gauge }
            return infos[family]
        }
        if let previous, previous.dimensions.map(\.1) != gauge.dimensions.map(\.1) { previous.destroy() }
        gauge.record(1)
    }

    public func observe(_ family: MetricFamily, _ duration: Duration, _ labels: [String: String] = [:]) {
        handler(timers, family, labels) { CoreMetrics.Timer(label: $0, dimensions: $1, factory: factory) }.recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// The exposition text for `/metrics`.
    public func render() -> String { registry.emitToString() }
}
