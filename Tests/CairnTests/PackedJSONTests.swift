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

    /// A Secret's values are never a dictionary other objects are deflated against: packed first
    /// under a key, the key's dictionary is still the next object's (a ConfigMap holding the same
    /// value then deflates no better than alone).
    @Test func secretsAreDeflatedAlone() throws {
        let password = String(decoding: noise(240, seed: 5).map { UInt8(ascii: "a") + $0 % 26 }, as: UTF8.self)
        let secret = RenderedObject(body: ["apiVersion": "v1", "kind": "Secret",
                                           "metadata": ["name": "s", "namespace": "n"],
                                           "stringData": ["password": .string(password), "again": .string(password)]],
                                    stage: .secrets)
        let key = "PackedJSONTests secrets \(UUID())"
        let packed = secret.packed(dictionary: key)
        #expect(!packed.sharesDictionary)
        #expect(packed.jsonCount.held < packed.jsonCount.json)
        #expect(packed.body == secret.body && packed == secret)

        let unrelated = RenderedObject(body: ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "first", "namespace": "n"],
                                              "data": ["note": .string(String(repeating: "nothing secret here ", count: 8))]],
                                       stage: .configuration).packed(dictionary: key)
        #expect(unrelated.sharesDictionary)
        let copy = RenderedObject(body: ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "s", "namespace": "n"],
                                         "data": ["password": .string(password)]],
                                  stage: .configuration).packed(dictionary: key)
        // Against the Secret it would be a few dozen bytes; the password's 240 random letters
        // alone need about 141 (4.7 bits each).
        #expect(copy.jsonCount.held > 130, "\(copy.jsonCount)")
    }

    /// A dictionary longer than the deflate window: only its tail is reached back to, and what is
    /// packed against it reads back the same, also where it repeats the dictionary's beginning.
    @Test func aLongDictionaryKeepsWorking() {
        let key = "PackedJSONTests long \(UUID())"
        let head = Array(repeating: UInt8(ascii: "h"), count: 10) + noise(9_990, seed: 21)
        let tail = noise(10_000, seed: 23)
        _ = PackedJSON(head + tail, dictionary: key)
        let bytes = Array(tail.suffix(3_000)) + Array(head.prefix(2_000)) + Array(tail.suffix(1_000))
        let packed = PackedJSON(bytes, dictionary: key)
        #expect(packed.hasDictionary)
        #expect(packed.unpacked == bytes)
        // The tail's bytes come from the dictionary; the head's (out of reach) are stored.
        #expect(packed.packedCount < 2_500, "\(packed.packedCount)")
        #expect(packed.same(as: PackedJSON(bytes, dictionary: nil)))
    }

    /// Many threads packing and unpacking at once share the streams and the registry.
    @Test func concurrentUseReadsBackTheSame() async {
        let keys = (0..<4).map { "PackedJSONTests concurrent \($0) \(UUID())" }
        let ok = await withTaskGroup(of: Bool.self) { group in
            for task in 0..<16 {
                group.addTask {
                    var good = true
                    for i in 0..<200 {
                        let bytes = Array(#"{"kind":"ConfigMap","metadata":{"name":"n-\#(task)-\#(i)"},"data":{"k":"\#(String(repeating: "v", count: i))"}}"#.utf8)
                        let packed = PackedJSON(bytes, dictionary: keys[(task + i) % keys.count])
                        good = good && packed.unpacked == bytes && packed.same(as: PackedJSON(stored: bytes))
                    }
                    return good
                }
            }
            return await group.allSatisfy { $0 }
        }
        #expect(ok)
    }
}
