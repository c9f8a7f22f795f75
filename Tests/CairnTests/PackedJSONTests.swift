import ClusterSpecs
import Foundation
import Render
import Testing

/// Rendered objects kept deflated between passes (`PackedJSON`): what is read back is what was
/// rendered, comparisons hold across dictionaries, and Secrets never become a dictionary.
@Suite struct PackedJSONTests {
    /// Deterministic bytes that deflate cannot shrink.
    func noise(_ count: Int, seed: UInt64) -> [UInt8] {
        var x = seed | 1
        return (0..<count).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    @Test func whatIsPackedReadsBackTheSame() {
        let json = Array(#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"},"data":{"k":"value value value value value"}}"#.utf8)
        let key = "PackedJSONTests \(UUID())"
        let cases: [(bytes: [UInt8], key: String?)] = [
            ([], key), (Array("{}".utf8), key), (json, key), (json, nil), (json + json, key),
            (noise(4096, seed: 7), key), (noise(100_000, seed: 9), nil), (Array(repeating: 120, count: 200_000), key),
        ]
        for c in cases {
            let packed = PackedJSON(c.bytes, dictionary: c.key)
            #expect(packed.unpacked == c.bytes)
            #expect(packed.count == c.bytes.count)
            #expect(packed.packedCount <= c.bytes.count, "never more than the bytes themselves")
        }
        // Too short to deflate, and bytes deflate cannot shrink: kept as they are.
        #expect(PackedJSON(Array("{}".utf8), dictionary: key).packedCount == 2)
        let random = noise(4096, seed: 11)
        #expect(PackedJSON(random, dictionary: nil).packedCount == random.count)
        #expect(PackedJSON(Array(repeating: 120, count: 200_000), dictionary: nil).packedCount < 1_000)
    }

    @Test func sameComparesContentAcrossDictionaries() {
        let a = Array(#"{"kind":"StatefulSet","metadata":{"name":"one"},"spec":{"replicas":3,"serviceName":"one-headless"}}"#.utf8)
        let b = Array(#"{"kind":"StatefulSet","metadata":{"name":"two"},"spec":{"replicas":3,"serviceName":"two-headless"}}"#.utf8)
        let first = "PackedJSONTests first \(UUID())", second = "PackedJSONTests second \(UUID())"
        // Registered from `b` under one key and from `a` under the other: `a` is packed
        // differently under each, and is the same bytes all the same.
        _ = PackedJSON(b, dictionary: first)
        let viaFirst = PackedJSON(a, dictionary: first), viaSecond = PackedJSON(a, dictionary: second)
        #expect(viaFirst.hasDictionary && viaSecond.hasDictionary)
        #expect(viaFirst.same(as: viaSecond))
        #expect(viaFirst.same(as: PackedJSON(stored: a)))
        #expect(viaFirst.same(as: PackedJSON(a, dictionary: nil)))
        #expect(!viaFirst.same(as: PackedJSON(b, dictionary: second)))
        #expect(!viaFirst.same(as: PackedJSON(b, dictionary: first)))
        #expect(!PackedJSON(a + [32], dictionary: first).same(as: viaFirst))
    }

    /// Two clusters of one system: the second's objects deflate against the first's to a small
    /// part of their JSON, and read back as rendered.
    @Test func similarClustersShareADictionary() throws {
        let example = Repo.read(Repo.clusters.appendingPathComponent("esdb-cluster.yaml"))
        func render(_ yaml: String) throws -> [RenderedObject] { ClusterRenderer.render(try loadSpec(yaml), packed: true).objects }
        let one = try render(example.replacingOccurrences(of: "name: esdb-cluster", with: "name: packed-one"))
        let two = try render(example.replacingOccurrences(of: "name: esdb-cluster", with: "name: packed-two"))
        // Rendered to be applied once (`cairn apply`): kept as JSON.
        #expect(try ClusterRenderer.render(loadSpec(example)).objects.allSatisfy { !$0.sharesDictionary && $0.jsonCount.held == $0.jsonCount.json })
        #expect(!one.isEmpty && one.count == two.count)
        for (a, b) in zip(one, two) where a.kind == "StatefulSet" || a.kind == "ConfigMap" {
            #expect(b.sharesDictionary, "\(b.reference)")
            #expect(b.jsonCount.held * 4 < b.jsonCount.json, "\(b.reference): \(b.jsonCount)")
            #expect(b.body.compactJSON() == String(decoding: b.json, as: UTF8.self))
            #expect(b.body["metadata", "name"]?.stringValue?.contains("packed-two") == true)
            #expect(a != b && !RenderedObject.sameJSON(a, b))
            // The same object rendered again compares equal, whichever dictionaries it met.
            #expect(RenderedObject.sameJSON(b, try render(example.replacingOccurrences(of: "name: esdb-cluster", with: "name: packed-two"))
                .first { $0.reference == b.reference }))
        }
    }

    /// A Secret's values are never a dictionary other objects are deflated against.
    @Test func secretsAreDeflatedAlone() throws {
        let secret = RenderedObject(body: ["apiVersion": "v1", "kind": "Secret",
                                           "metadata": ["name": "s", "namespace": "n"],
                                           "stringData": ["password": .string(String(repeating: "hunter2 ", count: 40))]],
                                    stage: .secrets)
        let packed = secret.packed(dictionary: "PackedJSONTests secrets \(UUID())")
        #expect(!packed.sharesDictionary)
        #expect(packed.jsonCount.held < packed.jsonCount.json)
        #expect(packed.body == secret.body && packed == secret)
    }
}
