import JSON
@testable import Reconcile
import Render
import Testing

/// The live cache keeps an object's fields that equal what cairn wants of it only once (#16):
/// what a pass reads back is what the server sent, whatever cairn wants meanwhile.
@Suite struct LiveCacheEntryTests {
    let want = RenderedObject(body: ["apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": ["name": "a", "namespace": "db", "labels": ["cairn.dev/cluster": "a"]],
                                     "data": ["z.conf": "z = 1\n", "a.conf": "a = \"2\"\n"], "binaryData": ["b": "AA=="]],
                              stage: .configuration)

    func live(data: JSONValue) -> JSONValue {
        ["apiVersion": "v1", "kind": "ConfigMap",
         "metadata": ["name": "a", "namespace": "db", "uid": "u-1", "labels": ["cairn.dev/cluster": "a", "extra": "x"]],
         "data": data, "binaryData": ["b": "AA=="]]
    }

    /// The same object, whatever the order of its fields (readers look fields up by key).
    func canonical(_ v: JSONValue?) throws -> JSONValue {
        try JSONValue.parse(Array((v ?? .null).canonicalJSON().utf8))
    }

    @Test func fieldsEqualToTheDesiredAreLeftOutAndReadBack() throws {
        let inSync = live(data: ["z.conf": "z = 1\n", "a.conf": "a = \"2\"\n"])
        let entry = LiveCache.Entry(inSync, want: want)
        #expect(entry.same != 0)
        #expect(entry.cluster == "db/a")
        #expect(!String(decoding: entry.json, as: UTF8.self).contains("z = 1"), "data is not kept twice")
        #expect(try canonical(entry.value(want: want)) == canonical(inSync))
        #expect(try canonical(LiveCache.Entry(inSync, want: nil).value(want: nil)) == canonical(inSync))

        // A field that differs (drift) is kept as the server has it.
        let drifted = live(data: ["z.conf": "z = 9\n", "a.conf": "a = \"2\"\n"])
        let kept = LiveCache.Entry(drifted, want: want)
        #expect(String(decoding: kept.json, as: UTF8.self).contains("z = 9"))
        #expect(try canonical(kept.value(want: want)) == canonical(drifted))
        #expect(kept != entry)
    }

    @Test func anEntryIsReadOnlyWithTheObjectItWasMadeAgainst() throws {
        let inSync = live(data: ["z.conf": "z = 1\n", "a.conf": "a = \"2\"\n"])
        let entry = LiveCache.Entry(inSync, want: want)
        var changedBody = want.body.objectValue!
        changedBody["data"] = ["z.conf": "z = 2\n"]
        let changed = RenderedObject(body: .object(changedBody), stage: .configuration)
        #expect(entry.readable(with: want) && !entry.readable(with: changed) && !entry.readable(with: nil))
        #expect(entry.value(want: changed) == nil)
        // What setDesired does for an object whose desired state changes: written out whole
        // against the old, left out again against the new; the live object read is unchanged.
        let again = LiveCache.Entry(try #require(entry.value(want: want)), want: changed)
        #expect(again.readable(with: changed))
        #expect(try canonical(again.value(want: changed)) == canonical(inSync))
    }

    /// Entries of one kind and system are deflated against the first (most of one is the same
    /// as another's); a Secret's never are, and never become a dictionary.
    @Test func entriesOfAKindShareADictionarySecretsDoNot() throws {
        func statefulSet(_ name: String, system: String) -> JSONValue {
            ["apiVersion": "apps/v1", "kind": "StatefulSet",
             "metadata": ["name": .string(name), "namespace": "db", "uid": .string("uid-\(name)-0000-1111-2222"),
                          "labels": ["cairn.dev/cluster": .string(name), "app.kubernetes.io/name": .string(system),
                                     "app.kubernetes.io/managed-by": "cairn", "app.kubernetes.io/instance": .string(name)]],
             "status": ["replicas": 3, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3, "observedGeneration": 1,
                        "currentRevision": .string("\(name)-7d9f8b6c5"), "updateRevision": .string("\(name)-7d9f8b6c5"),
                        "collisionCount": 0, "availableReplicas": 3]]
        }
        let system = "entries-test-\(UInt64.random(in: 0...UInt64.max))"
        _ = LiveCache.Entry(statefulSet("first", system: system), want: nil)
        let second = statefulSet("second", system: system)
        let entry = LiveCache.Entry(second, want: nil)
        #expect(entry.packed.hasDictionary)
        #expect(entry.packed.packedCount * 3 < entry.packed.count, "\(entry.packed.packedCount) of \(entry.packed.count)")
        #expect(try canonical(entry.value(want: nil)) == canonical(second))
        #expect(entry == LiveCache.Entry(second, want: nil))
        #expect(entry != LiveCache.Entry(statefulSet("third", system: system), want: nil))

        let secret: JSONValue = ["apiVersion": "v1", "kind": "Secret",
                                 "metadata": ["name": "s", "namespace": "db", "labels": ["app.kubernetes.io/name": .string(system)]],
                                 "data": ["password": .string(String(repeating: "c2VjcmV0", count: 20))]]
        let kept = LiveCache.Entry(secret, want: nil)
        #expect(!kept.packed.hasDictionary)
        #expect(try canonical(kept.value(want: nil)) == canonical(secret))
    }
}

/// A state made of its previous state's files unchanged keeps its revision (the live cache then
/// skips taking the same clusters again); any change makes a new one.
@Suite struct DesiredStateRevisionTests {
    static let file = DesiredState.File(path: "es.yaml", text: """
        apiVersion: kubernetes.kurrent.io/v1
        kind: KurrentDB
        metadata: {name: es, namespace: db}
        spec: {replicas: 1, image: "eventstore/eventstore:23.10.2-bookworm-slim", storage: {resources: {requests: {storage: 1Gi}}}}
        """)

    @Test func unchangedFilesKeepTheRevision() {
        let first = DesiredState(files: [Self.file])
        let again = DesiredState(files: [Self.file], previous: first)
        #expect(again.revision == first.revision && again.filesRendered == 0)
        #expect(DesiredState(files: [Self.file]).revision != first.revision, "without a previous state: new")
        let changed = DesiredState.File(path: "es.yaml", text: Self.file.text.replacingOccurrences(of: "replicas: 1", with: "replicas: 3"))
        #expect(DesiredState(files: [changed], previous: first).revision != first.revision)
        let more = DesiredState(files: [Self.file, DesiredState.File(path: "other.yaml", text: "{}")], previous: first)
        #expect(more.revision != first.revision)
        #expect(DesiredState(files: [Self.file], unreadable: [("big.yaml", "too large")], previous: first).revision != first.revision)
        #expect(DesiredState(files: [Self.file], options: RenderOptions(podDisruptionBudgetAPIVersion: "policy/v1beta1"), previous: first).revision
                != first.revision, "other render options: rendered again")
    }
}
