public import ClusterSpecs
import Foundation
import Synchronization
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
        let time = ISO8601DateFormatter().string(from: Date())
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

/// The daemon's metrics in Prometheus' text format: counters, gauges, summaries of durations
/// (as histograms with fixed buckets), and info metrics.
public final class Metrics: Sendable {
    private struct State {
        var counters: [String: Double] = [:]
        var gauges: [String: Double] = [:]
        var histograms: [String: (buckets: [Double], counts: [Int], sum: Double, count: Int)] = [:]
        var infos: [String: [String: String]] = [:]
    }

    private let state = Mutex(State())
    static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    public init() {}

    static func key(_ name: String, _ labels: [String: String]) -> String {
        labels.isEmpty ? name : name + "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\(JSONValue.string($0.value).canonicalJSON())" }.joined(separator: ",") + "}"
    }

    public func increment(_ name: String, _ labels: [String: String] = [:], by value: Double = 1) {
        state.withLock { $0.counters[Self.key(name, labels), default: 0] += value }
    }

    public func set(_ name: String, _ value: Double, _ labels: [String: String] = [:]) {
        state.withLock { $0.gauges[Self.key(name, labels)] = value }
    }

    public func setInfo(_ name: String, _ labels: [String: String]) {
        state.withLock { $0.infos[name] = labels }
    }

    public func observe(_ name: String, _ seconds: Double) {
        state.withLock { state in
            var h = state.histograms[name] ?? (Self.buckets, Array(repeating: 0, count: Self.buckets.count), 0, 0)
            for (i, b) in h.buckets.enumerated() where seconds <= b { h.counts[i] += 1 }
            h.sum += seconds
            h.count += 1
            state.histograms[name] = h
        }
    }

    /// The exposition text for `/metrics`.
    public func render() -> String {
        state.withLock { state in
            var out = ""
            func family(_ key: String) -> String { String(key.prefix { $0 != "{" }) }
            var typed: Set<String> = []
            for (k, v) in state.counters.sorted(by: { $0.key < $1.key }) {
                if typed.insert(family(k)).inserted { out += "# TYPE \(family(k)) counter\n" }
                out += "\(k) \(v)\n"
            }
            for (k, v) in state.gauges.sorted(by: { $0.key < $1.key }) {
                if typed.insert(family(k)).inserted { out += "# TYPE \(family(k)) gauge\n" }
                out += "\(k) \(v)\n"
            }
            for (name, labels) in state.infos.sorted(by: { $0.key < $1.key }) {
                out += "# TYPE \(name) gauge\n\(Self.key(name, labels)) 1\n"
            }
            for (name, h) in state.histograms.sorted(by: { $0.key < $1.key }) {
                out += "# TYPE \(name) histogram\n"
                for (i, b) in h.buckets.enumerated() { out += "\(name)_bucket{le=\"\(b)\"} \(h.counts[i])\n" }
                out += "\(name)_bucket{le=\"+Inf\"} \(h.count)\n\(name)_sum \(h.sum)\n\(name)_count \(h.count)\n"
            }
            return out
        }
    }
}
