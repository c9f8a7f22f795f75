@testable import Daemon
import Foundation
import JSON
import Render
import Testing

/// Log and Lease timestamps, written and read without Foundation's ICU-backed formatters.
@Suite struct UTCTimeTests {
    @Test func writesRFC3339InUTC() {
        #expect(UTCTime.string(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
        #expect(UTCTime.string(Date(timeIntervalSince1970: 1_000_000_000.5)) == "2001-09-09T01:46:40Z")
        #expect(UTCTime.string(Date(timeIntervalSince1970: 1_000_000_000.5), fraction: 6) == "2001-09-09T01:46:40.500000Z")
        #expect(LeaderElector.microTime(Date(timeIntervalSince1970: 1_796_300_000.25)) == "2026-12-03T12:13:20.250000Z")
        #expect(UTCTime.string(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00Z")
    }

    @Test func readsWhatKubernetesWrites() throws {
        #expect(UTCTime.parse("2001-09-09T01:46:40Z") == Date(timeIntervalSince1970: 1_000_000_000))
        #expect(UTCTime.parse("2001-09-09T03:46:40+02:00") == Date(timeIntervalSince1970: 1_000_000_000))
        #expect(UTCTime.parse("2001-09-08T23:46:40-02:00") == Date(timeIntervalSince1970: 1_000_000_000))
        let micro = try #require(UTCTime.parse("2001-09-09T01:46:40.250000Z"))
        #expect(abs(micro.timeIntervalSince1970 - 1_000_000_000.25) < 1e-6)
        // A MicroTime written is read back to the microsecond.
        let now = Date(timeIntervalSince1970: 1_796_300_123.654321)
        let back = try #require(LeaderElector.parseTime(LeaderElector.microTime(now)))
        #expect(abs(back.timeIntervalSince(now)) < 2e-6)
        for bad in ["", "2001-09-09", "2001-09-09T01:46:40", "2001-13-09T01:46:40Z", "2001-09-09T25:46:40Z",
                    "2001-09-09T01:46:40.Z", "2001-09-09T01:46:40Zjunk", "2001-09-09T01:46:40+0200", "x001-09-09T01:46:40Z"] {
            #expect(UTCTime.parse(bad) == nil, "\(bad)")
        }
    }
}

/// Rendered objects are kept as compact JSON: what goes in comes out, in its own key order.
@Suite struct RenderedObjectStorageTests {
    @Test func bodyKeepsItsKeyOrderAndValues() {
        let body: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": ["namespace": "db", "name": "a-config", "labels": ["z": "1", "a": "2"]],
                               "data": ["b.conf": "line \"one\"\n\u{1}é", "a.conf": ""], "list": [1, true, .null, .double(-2.5), []]]
        var o = RenderedObject(body: body, stage: .configuration)
        #expect(o.body == body)
        #expect(o.body["metadata", "labels"]?.objectValue?.keys == ["z", "a"])
        #expect((o.kind, o.namespace, o.name) == ("ConfigMap", "db", "a-config"))
        #expect(String(decoding: o.json, as: UTF8.self).hasPrefix(#"{"apiVersion":"v1","kind":"ConfigMap","metadata""#))
        let same = RenderedObject(body: body, stage: .configuration)
        #expect(o == same && o.hashValue == same.hashValue)
        var changed = o.body.objectValue!
        changed["data"] = ["c.conf": "x"]
        o.body = .object(changed)
        #expect(o.body["data"] == ["c.conf": "x"])
        #expect(o != same)
    }
}
