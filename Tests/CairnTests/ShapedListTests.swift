import ClusterSpecs
import Foundation
import KubeAPI
import Synchronization
@testable import Reconcile
import Render
import Testing

/// A LIST read with a shape (`JSONValue.ItemShape`) builds only the fields its caller keeps:
/// what a pass keeps of each object must be what it kept of the object parsed whole.
@Suite("LIST items read with a shape")
struct ShapedListTests {
    /// What `parse(_:items:)` must give for an item parsed whole (`full`), by the rules of
    /// `ItemShape`: fields up to the metadata whole, the metadata whole, later fields whole,
    /// projected or left out as `fields` says. For an item without a repeated key (whose
    /// parsed fields are in the order of its text).
    static func expected(_ full: JSONValue, fields: (JSONValue) -> (onto: JSONObject?, whole: [String])) -> JSONValue {
        guard let object = full.objectValue, let metadata = object["metadata"] else { return full }
        let decided = fields(metadata)
        var out = JSONObject()
        var seenMetadata = false
        for (key, value) in object.entries {
            if key == "metadata" { seenMetadata = true; out.appendUnchecked(key, value); continue }
            if !seenMetadata || decided.whole.contains(key) {
                out.appendUnchecked(key, value)
            } else if let want = decided.onto?[key] {
                out.appendUnchecked(key, value.projected(onto: want))
            }
        }
        return .object(out)
    }

    static func shape(onto: JSONObject?, whole: [String] = []) -> JSONValue.ItemShape {
        JSONValue.ItemShape(fields: { _ in (onto, whole) })
    }

    /// Hand-picked cases: fields before the metadata, none, server defaults in a projected
    /// object, lists longer than the desired one, a type that differs, escaped keys, a key
    /// repeated, an item that is not an object, an item with two metadata.
    @Test func keepsWhatTheShapeSaysAndNothingElse() throws {
        let text = #"""
            {"kind": "ConfigMapList", "metadata": {"resourceVersion": "7", "continue": "abc"}, "items": [
              {"metadata": {"name": "a", "namespace": "n", "managedFields": [{"manager": "cairn", "fieldsV1": {"f:x": {}}}]},
               "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": "IfNotPresent"},
                        {"name": "side", "image": "j", "imagePullPolicy": "Always"}]}}, "revisionHistoryLimit": 10, "re\u0070licas": 4},
               "data": {"k": "v", "other": {"deep": [1, 2, {"x": null}]}},
               "status": {"replicas": 3}, "extra": [1, {"a": "b"}]},
              {"spec": {"replicas": 1, "unwanted": true}, "metadata": {"name": "b"}, "data": "not an object"},
              {"data": {"k": "v"}},
              "a string item",
              {},
              {"metadata": {"name": "c"}, "spec": {"x\"y": 1, "z": 2, "\u00e9": 3}, "data": {"k": [1, 2, 3]}}
            ]}
            """#
        let onto: JSONObject = ["spec": ["replicas": 1, "template": ["spec": ["containers": [["name": "", "image": ""]]]], "x\"y": 0, "é": 0],
                                "data": ["k": ""]]
        let shaped = try JSONValue.parse(Array(text.utf8), items: Self.shape(onto: onto, whole: ["status"]))
        let full = try JSONValue.parse(Array(text.utf8))
        #expect(shaped["metadata"] == full["metadata"])
        #expect(shaped["kind"] == full["kind"])
        let items = try #require(shaped["items"]?.arrayValue)
        let fullItems = try #require(full["items"]?.arrayValue)
        #expect(items.count == fullItems.count)
        for (item, whole) in zip(items, fullItems) {
            #expect(item == Self.expected(whole) { _ in (onto, ["status"]) })
        }
        // The first item, spelt out: server defaults and unwanted fields never built.
        #expect(items[0]["spec"] == ["replicas": 4, "template": ["spec": ["containers": [["name": "c", "image": "i"], ["name": "side", "image": "j", "imagePullPolicy": "Always"]]]]])
        #expect(items[0]["data"] == ["k": "v"])
        #expect(items[0]["status"] == ["replicas": 3])
        #expect(items[0]["extra"] == nil)
        // Fields before the metadata are read whole; a type that differs is kept as it is.
        #expect(items[1]["spec"] == ["replicas": 1, "unwanted": true])
        #expect(items[1]["data"] == "not an object")
        #expect(items[2] == ["data": ["k": "v"]])
        #expect(items[3] == "a string item")
        #expect(items[5]["spec"] == ["x\"y": 1, "é": 3])
    }

    /// A key twice in one item (two metadata would make the decision on the first stale; a
    /// skipped value could stand where the whole parse keeps the last): the item is read whole
    /// and `finish` hears of no decision.
    @Test(arguments: [
        #"{"items": [{"metadata": {"name": "a"}, "spec": {"a": 1, "b": 2}, "metadata": {"name": "b"}}]}"#,
        #"{"items": [{"spec": {"a": 1, "b": 2}, "metadata": {"name": "a"}, "spec": {"a": 3, "b": 4}}]}"#,
        #"{"items": [{"metadata": {"name": "a"}, "extra": 1, "spec": {"a": 1}, "extra": {"x": 2}}]}"#,
    ])
    func anItemWithAKeyTwiceIsReadWhole(_ text: String) throws {
        let heard = Mutex<[Bool]>([])
        let shape = JSONValue.ItemShape(fields: { _ in (["spec": ["a": 0]], []) }, finish: { item, onto in
            heard.withLock { $0.append(onto != nil) }
            return .object(item)
        })
        let shaped = try JSONValue.parse(Array(text.utf8), items: shape)
        let whole = try JSONValue.parse(Array(text.utf8))
        #expect(shaped["items"] == whole["items"])
        #expect(heard.withLock { $0 } == [false])
        // Without the repeat, the same item is cut.
        let single = try JSONValue.parse(Array(#"{"items": [{"metadata": {"name": "a"}, "spec": {"a": 1, "b": 2}}]}"#.utf8), items: shape)
        #expect(single["items"] == [["metadata": ["name": "a"], "spec": ["a": 1]]])
        #expect(heard.withLock { $0 } == [false, true])
    }

    /// What `parse(_:items:)` must give for an item's metadata parsed whole, cut as `cut`
    /// says (`ItemShape.metadata`): every key up to the one that completes `after`, then the
    /// keys `keep` names (all when it names none). For a metadata object without a key twice.
    static func cutMetadata(_ metadata: JSONValue, _ cut: JSONValue.ItemShape.MetadataCut) -> JSONValue {
        guard let object = metadata.objectValue else { return metadata }
        var out = JSONObject()
        var missing = Set(cut.after)
        var keep: [String]??
        for (key, value) in object.entries {
            if case .some(.some(let wanted)) = keep, !wanted.contains(key) { continue }
            out.appendUnchecked(key, value)
            if keep == nil, missing.remove(key) != nil, missing.isEmpty { keep = .some(cut.keep(out)) }
        }
        return .object(out)
    }

    /// The metadata cut short (what a pass does for an object it verified by its uid and
    /// resourceVersion): keys before the decision read, later ones skipped but those kept;
    /// no decision without every key of `after`; a metadata with a key twice read whole; the
    /// managers' `fieldsV1` still dropped where the metadata is read; `fields` decides on the
    /// metadata as cut.
    @Test func theMetadataIsCutShortOnceItsKeysSaySo() throws {
        let text = #"""
            {"items": [
              {"metadata": {"name": "a", "creationTimestamp": "t", "uid": "u1", "labels": {"l": "1"}, "annotations": {"big": "x"},
                            "managedFields": [{"manager": "cairn", "fieldsV1": {"f:x": {}}}], "generation": 2}, "spec": {"a": 1}},
              {"metadata": {"name": "b", "uid": "u2", "annotations": {"a": "1"},
                            "managedFields": [{"manager": "cairn", "fieldsV1": {"f:x": {}}}, {"manager": "other", "fieldsV1": {"f:y": {}}}]}},
              {"metadata": {"name": "c", "annotations": {"a": "1"}, "labels": {}}},
              {"metadata": {"name": "d", "uid": "u1", "annotations": {"a": "1"}, "name": "e", "labels": {}}},
              {"metadata": "not an object", "spec": {"a": 1}}
            ]}
            """#
        let cut = JSONValue.ItemShape.MetadataCut(after: ["name", "uid"]) { read in read["uid"] == "u1" ? ["labels", "generation"] : nil }
        let decided = Mutex<[JSONValue]>([])
        let shape = JSONValue.ItemShape(fields: { metadata in
            decided.withLock { $0.append(metadata) }
            return (["spec": ["a": 0]], [])
        }, metadata: cut)
        let shaped = try JSONValue.parse(Array(text.utf8), droppingFieldsOf: "cairn", items: shape)
        let full = try JSONValue.parse(Array(text.utf8), droppingFieldsOf: "cairn")
        let items = try #require(shaped["items"]?.arrayValue)
        let wholeItems = try #require(full["items"]?.arrayValue)
        #expect(items.count == 5)
        // Spelt out: verified (u1) keeps what came before the decision, then only what `keep` names.
        #expect(items[0]["metadata"] == ["name": "a", "creationTimestamp": "t", "uid": "u1", "labels": ["l": "1"], "generation": 2])
        #expect(items[0]["spec"] == ["a": 1])
        // Not verified: read whole, the own manager's fieldsV1 still dropped.
        #expect(items[1]["metadata"] == wholeItems[1]["metadata"])
        #expect(items[1]["metadata", "managedFields"] == [["manager": "cairn"], ["manager": "other", "fieldsV1": ["f:y": [:]]]])
        // No uid: no decision, read whole; a key twice: read whole (the last name wins).
        #expect(items[2]["metadata"] == wholeItems[2]["metadata"])
        #expect(items[3]["metadata"] == wholeItems[3]["metadata"])
        #expect(items[3]["metadata", "name"] == "e" && items[3]["metadata", "annotations"] != nil)
        #expect(items[4] == ["metadata": "not an object", "spec": ["a": 1]])
        for (i, item) in items.enumerated().prefix(3) {
            #expect(item["metadata"] == Self.cutMetadata(wholeItems[i]["metadata"]!, cut), "item \(i)")
        }
        // `fields` heard the metadata as cut.
        #expect(decided.withLock { $0 } == items.compactMap { $0["metadata"] })
        // What the cut skips is still checked.
        #expect(throws: JSONValue.ParseError.self) {
            try JSONValue.parse(Array(#"{"items": [{"metadata": {"name": "a", "uid": "u1", "annotations": {"a": ]}}]}"#.utf8), items: shape)
        }
    }

    /// Random metadata objects (keys in any order, some missing, values of any type): the cut
    /// always gives the whole parse's metadata cut as `MetadataCut` says.
    @Test func randomMetadataMatchesTheWholeParseCut() throws {
        var rng = SeededGenerator(seed: 0xC0FF_EE15)
        let keys = ["name", "namespace", "uid", "resourceVersion", "labels", "annotations", "generation", "managedFields", "creationTimestamp"]
        let values: [JSONValue] = ["u1", "u2", "", 3, .null, ["k": "v"], [["manager": "cairn", "fieldsV1": ["f:a": [:]]]], [1, [2]]]
        let cut = JSONValue.ItemShape.MetadataCut(after: ["name", "uid", "resourceVersion"]) { read in
            switch read["uid"]?.stringValue {
            case "u1": ["labels", "generation"]
            case "u2": []
            default: nil
            }
        }
        let shape = JSONValue.ItemShape(fields: { _ in (nil, []) }, metadata: cut)
        var (cutShort, readWhole) = (0, 0)
        for round in 0..<500 {
            var metadata = JSONObject()
            for key in keys.shuffled(using: &rng) where Int.random(in: 0...4, using: &rng) > 0 {
                // A uid that decides most of the time (u1, u2), else any value.
                let value = key == "uid" && Int.random(in: 0...3, using: &rng) > 0 ? JSONValue.string(["u1", "u2"].randomElement(using: &rng)!)
                    : values.randomElement(using: &rng)!
                metadata.appendUnchecked(key, value)
            }
            let text = #"{"items": [{"metadata": "# + JSONValue.object(metadata).compactJSON() + "}]}"
            let shaped = try JSONValue.parse(Array(text.utf8), items: shape)
            let got = try #require(shaped["items"]?.arrayValue?.first?["metadata"])
            let want = Self.cutMetadata(.object(metadata), cut)
            #expect(got == want, "round \(round): \(text)")
            if want == .object(metadata) { readWhole += 1 } else { cutShort += 1 }
        }
        // Not a test of nothing: both kinds of metadata came up often.
        #expect(cutShort > 50 && readWhole > 50, "\(cutShort) cut, \(readWhole) whole")
    }

    /// What is skipped is still checked, as `droppingFieldsOf` checks what it skips.
    @Test(arguments: [
        #"{"items": [{"metadata": {}, "skipped": {"a": ]}]}"#,
        #"{"items": [{"metadata": {}, "skipped": "open}]}"#,
        #"{"items": [{"metadata": {}, "spec": {"skipped": [}}]}"#,
        #"{"items": [{"metadata": {}, "spec": {"skipped": {"#,
        #"{"items": [{"metadata": {}, "spec": {"kept": tru}}]}"#,
    ])
    func skippedFieldsAreStillChecked(_ text: String) {
        #expect(throws: JSONValue.ParseError.self) {
            try JSONValue.parse(Array(text.utf8), items: Self.shape(onto: ["spec": ["kept": 0]]))
        }
    }

    /// Random items and random shapes (seeded, so a failure repeats): the shaped parse always
    /// gives the whole parse's item cut as `ItemShape` says.
    @Test func randomItemsMatchTheWholeParseCut() throws {
        var rng = SeededGenerator(seed: 0x5EED_CA1B)
        let keys = ["a", "b", "spec", "data", "status", "x\\u0079", "é", "k"]
        func value(_ depth: Int) -> JSONValue {
            switch depth > 3 ? Int.random(in: 0...3, using: &rng) : Int.random(in: 0...6, using: &rng) {
            case 0: return .int(Int.random(in: -5...5, using: &rng))
            case 1: return .string(["", "v", "q\"uote", "ü"].randomElement(using: &rng)!)
            case 2: return Bool.random(using: &rng) ? .null : .bool(true)
            case 3: return .double(1.5)
            case 4: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth + 1) })
            default:
                var o = JSONObject()
                for _ in 0..<Int.random(in: 0...4, using: &rng) { o[keys.randomElement(using: &rng)!] = value(depth + 1) }
                return .object(o)
            }
        }
        // A value like `v`: keys added and dropped, lists grown and shrunk, scalars changed
        // (a live object beside its desired one); and `v` cut down (a desired object's shape).
        func varied(_ v: JSONValue, _ depth: Int) -> JSONValue {
            switch v {
            case .object(var o):
                for (k, x) in o.entries where Int.random(in: 0...4, using: &rng) > 0 { o[k] = varied(x, depth + 1) }
                if Bool.random(using: &rng) { o[keys.randomElement(using: &rng)!] = value(depth + 1) }
                if Int.random(in: 0...3, using: &rng) == 0, let k = o.keys.randomElement(using: &rng) { o[k] = nil }
                return .object(o)
            case .array(let a):
                var out = a.map { varied($0, depth + 1) }
                if Bool.random(using: &rng) { out.append(contentsOf: a.isEmpty ? [value(depth + 1)] : a) }
                if Int.random(in: 0...3, using: &rng) == 0, !out.isEmpty { out.removeLast() }
                return .array(out)
            default:
                return Int.random(in: 0...3, using: &rng) == 0 ? value(depth) : v
            }
        }
        func cut(_ v: JSONValue) -> JSONValue {
            switch v {
            case .object(let o):
                var out = JSONObject()
                for (k, x) in o.entries where Int.random(in: 0...3, using: &rng) > 0 { out[k] = cut(x) }
                return .object(out)
            case .array(let a):
                return .array(Array(a.prefix(Int.random(in: 0...a.count, using: &rng)).map(cut)))
            default:
                return v
            }
        }
        var sizes = (projected: 0, dropped: 0)
        for round in 0..<400 {
            // The desired fields of this round, and a shape cut from them.
            var templates: [String: JSONValue] = [:]
            for key in ["spec", "data", "a", "é"] {
                templates[key] = .object(JSONObject([(key: "x", value: value(2)), (key: "y", value: .array([value(3), value(3)])), (key: "z", value: value(2))]))
            }
            var items: [String] = []
            var repeated: [Bool] = []
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                // Written by hand so that keys may repeat and the metadata may come anywhere.
                var fields: [String] = []
                var names: [String] = []
                for _ in 0..<Int.random(in: 0...5, using: &rng) {
                    let key = keys.randomElement(using: &rng)!
                    names.append(key)
                    let v = templates[key].map { Bool.random(using: &rng) ? varied($0, 1) : $0 } ?? value(1)
                    fields.append("\"\(key)\": \(v.compactJSON())")
                }
                for _ in 0..<(Int.random(in: 0...9, using: &rng) == 0 ? 2 : Int.random(in: 0...1, using: &rng)) {
                    let at = Int.random(in: 0...fields.count, using: &rng)
                    fields.insert(#""metadata": {"name": "n"}"#, at: at)
                    names.insert("metadata", at: at)
                }
                items.append("{" + fields.joined(separator: ", ") + "}")
                repeated.append(Set(names.map { $0 == "x\\u0079" ? "xy" : $0 }).count < names.count)
            }
            let text = #"{"items": ["# + items.joined(separator: ", ") + "]}"
            var onto = JSONObject()
            for key in ["spec", "data", "a", "é", "xy"] where Int.random(in: 0...3, using: &rng) > 0 {
                onto[key] = templates[key].map { Int.random(in: 0...4, using: &rng) == 0 ? varied($0, 1) : cut($0) } ?? value(2)
            }
            let whole = Bool.random(using: &rng) ? ["status"] : []
            let shaped = try JSONValue.parse(Array(text.utf8), items: Self.shape(onto: onto, whole: whole))
            let full = try JSONValue.parse(Array(text.utf8))
            let got = try #require(shaped["items"]?.arrayValue)
            let wholeItems = try #require(full["items"]?.arrayValue)
            for (i, item) in got.enumerated() {
                // An item with a key twice is read whole (tested above); the rest are cut.
                let want = repeated[i] ? wholeItems[i] : Self.expected(wholeItems[i]) { _ in (onto, whole) }
                #expect(item == want, "round \(round), item \(items[i]), shape \(JSONValue.object(onto).compactJSON())")
                if !repeated[i], item != wholeItems[i] {
                    sizes.projected += item.compactJSONBytes().count
                    sizes.dropped += wholeItems[i].compactJSONBytes().count - item.compactJSONBytes().count
                }
            }
        }
        // Not a test of nothing: a fair share of what was read was left out.
        #expect(sizes.dropped > sizes.projected / 4, "\(sizes)")
    }
}

/// A small deterministic generator (SplitMix64) for the property test above.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Against the real API server: what a pass keeps of each object it LISTs with its shape is
/// what it kept of the object LISTed whole and slimmed, and the same objects are planned
/// unchanged: for the four example clusters, one object changed by another manager, and an
/// object no spec renders.
@Suite("a pass's LISTs read with its shape", .enabled(if: !ControlPlane.skip))
struct ShapedListControlPlaneTests {
    let plane: ControlPlane
    let ns = "shaped-\(UInt32.random(in: 0...UInt32.max))"

    init() throws { plane = try ControlPlane.shared() }

    /// The four examples, moved to this test's namespace.
    var files: [DesiredState.File] {
        var files: [DesiredState.File] = []
        for name in Repo.exampleFiles {
            var text = Repo.read(Repo.clusters.appendingPathComponent(name))
            for old in ["esdb", "aerospike"] { text = text.replacingOccurrences(of: "\n  namespace: \(old)\n", with: "\n") }
            let metadata = text.range(of: "\nmetadata:\n")!
            text.insert(contentsOf: "  namespace: \(ns)\n", at: metadata.upperBound)
            files.append(DesiredState.File(path: "clusters/" + name, text: text))
        }
        return files
    }

    @Test func keepsWhatSlimmingTheWholeObjectsKept() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        let files = self.files
        let options = RenderOptions(podDisruptionBudgetAPIVersion: try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1")
        let state = DesiredState(files: files, options: options)
        #expect(state.invalid.isEmpty, "\(state.invalid)")
        var reconcilerOptions = Reconciler.Options()
        reconcilerOptions.namespaceAllow = [ns]
        let reconciler = Reconciler(client: client, options: reconcilerOptions)
        let applied = try await reconciler.reconcile(state)
        #expect(applied.objects.filter { $0.action == .failed }.isEmpty, "\(applied.objects)")

        // Drift by another manager, and an object of cairn's that no spec renders.
        let statefulSet = try #require(state.clusters.flatMap(\.objects).first { $0.kind == "StatefulSet" })
        _ = try await client.apply(["apiVersion": "apps/v1", "kind": "StatefulSet",
                                    "metadata": ["name": .string(statefulSet.name), "namespace": .string(ns)], "spec": ["replicas": 7]],
                                   fieldManager: "kubectl-scale", force: true)
        _ = try await client.apply(["apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": ["name": "left-behind", "namespace": .string(ns),
                                                 "labels": ["app.kubernetes.io/managed-by": "cairn", "cairn.dev/cluster": "gone"]],
                                    "data": ["k": "v"]], fieldManager: Planner.fieldManager)

        var desired: [String: RenderedObject] = [:]
        for o in state.clusters.flatMap(\.objects) { desired[o.reference] = o }
        let selector = "app.kubernetes.io/managed-by=cairn"
        var (compared, unchangedSeen, orphans) = (0, 0, 0)
        for kind in try await reconciler.managedKinds(podDisruptionBudgetAPIVersion: options.podDisruptionBudgetAPIVersion) {
            // Two LISTs, one after the other: the StatefulSet controller may write a status
            // between them. Listed again (a few times at most) until both saw the same objects.
            var shaped: [JSONValue] = [], slimmed: [JSONValue] = [], byWhole: Set<String> = [], kindOrphans = 0
            let byShape = Mutex<Set<String>>([])
            for attempt in 0..<10 {
                if attempt > 0 { try await Task.sleep(nanoseconds: 500_000_000) }
                byShape.withLock { $0 = [] }
                shaped = try await client.list(apiVersion: kind.apiVersion, kind: kind.kind, namespace: ns, labelSelector: selector,
                                               droppingFieldsOf: Planner.fieldManager,
                                               shape: Reconciler.listShape(apiVersion: kind.apiVersion, kind: kind.kind, desired: desired) { key, _ in
                                                   byShape.withLock { _ = $0.insert(key) }
                                               })
                let whole = try await client.list(apiVersion: kind.apiVersion, kind: kind.kind, namespace: ns, labelSelector: selector)
                (byWhole, kindOrphans) = ([], 0)
                slimmed = whole.map { o in
                    let key = Reconciler.key(o)
                    guard let want = desired[key] else { kindOrphans += 1; return Reconciler.slim(o, desired: nil) }
                    let slim = Reconciler.slim(o, desired: want)
                    guard Planner.plan(want, live: slim).kind == .unchanged else { return slim }
                    // An object planned unchanged keeps only what a verified one keeps.
                    byWhole.insert(key)
                    return Reconciler.slim(slim, desired: want, wanted: Reconciler.unchangedFields(kind.kind))
                }
                if shaped == slimmed { break }
            }
            orphans += kindOrphans
            #expect(shaped == slimmed, "\(kind.kind)")
            // Spelt out: a ConfigMap planned unchanged is not held with its data.
            if kind.kind == "ConfigMap" {
                let unchangedMaps = shaped.filter { byWhole.contains(Reconciler.key($0)) }
                #expect(!unchangedMaps.isEmpty && unchangedMaps.allSatisfy { $0["data"] == nil && $0["metadata", "name"] != nil })
            }
            #expect(byShape.withLock { $0 } == byWhole, "\(kind.kind)")
            compared += shaped.count
            unchangedSeen += byWhole.count
        }
        // Not a comparison of nothing: every example's objects, some unchanged, one not, one orphan.
        #expect(compared > desired.count / 2, "compared \(compared) of \(desired.count) desired objects")
        #expect(unchangedSeen > 0 && unchangedSeen < compared)
        #expect(orphans == 1)
    }

    /// `cairn apply` run after run with its render cache: what one run found unchanged (uid and
    /// resourceVersion) the next takes as unchanged without reading it, and any write since
    /// (drift by another manager, to a spec or a ConfigMap's data) makes the object read and
    /// put back as before.
    @Test func objectsFoundUnchangedBeforeAreNotReadAgainUntilWritten() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        let files = self.files
        let cacheDir = TemporaryDirectory("cairn-stamps")
        let options = RenderOptions(podDisruptionBudgetAPIVersion: try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1")
        var reconcilerOptions = Reconciler.Options()
        reconcilerOptions.namespaceAllow = [ns]
        let reconciler = Reconciler(client: client, options: reconcilerOptions)
        /// One `cairn apply`: the LISTs started, the cache opened, the files read, the pass, the
        /// stamps recorded and saved.
        func apply() async throws -> (state: DesiredState, result: Reconciler.Result, verified: [String: LiveStamp]) {
            let prefetched = try await reconciler.prefetch(podDisruptionBudgetAPIVersion: options.podDisruptionBudgetAPIVersion)
            #expect(prefetched != nil)
            let cache = try #require(RenderCache.open(directory: cacheDir.path + "/render", options: options))
            let state = DesiredState(files: files, options: options, renderCache: cache, decodeWhenAsked: true)
            let verified = state.liveStamps()
            let result = try await reconciler.reconcile(state, prefetched: prefetched)
            state.record(result.stamps)
            try cache.save()
            return (state, result, verified)
        }
        func actions(_ r: Reconciler.Result, _ action: ObjectResult.Action) -> Set<String> {
            Set(r.objects.filter { $0.action == action }.map(\.reference))
        }

        let created = try await apply()
        #expect(created.state.invalid.isEmpty, "\(created.state.invalid)")
        #expect(actions(created.result, .failed).isEmpty, "\(created.result.objects)")
        #expect(created.verified.isEmpty)
        let all = Set(created.state.clusters.flatMap(\.objects).map(\.reference))
        // The second run reads every object and finds it unchanged: every one stamped.
        let second = try await apply()
        #expect(actions(second.result, .unchanged) == all, "\(second.result.objects.filter { $0.action != .unchanged })")
        #expect(Set(second.result.stamps.keys) == all)
        // The third takes them as verified: the LIST reads none of their fields.
        let third = try await apply()
        #expect(third.verified == second.result.stamps)
        #expect(actions(third.result, .unchanged) == all)
        // (The StatefulSet and Job controllers may still write a status meanwhile: a new
        // resourceVersion. A Job's did once, between the second run and the third.)
        func settled(_ stamps: [String: LiveStamp]) -> [String: LiveStamp] {
            stamps.filter { !$0.key.hasPrefix("StatefulSet/") && !$0.key.hasPrefix("Job/") }
        }
        #expect(settled(third.result.stamps) == settled(second.result.stamps))
        #expect(!settled(third.result.stamps).isEmpty)
        var desired: [String: RenderedObject] = [:]
        for o in third.state.clusters.flatMap(\.objects) { desired[o.reference] = o }
        let selector = "app.kubernetes.io/managed-by=cairn"
        let seen = Mutex<[String: LiveStamp]>([:])
        let shape = { (kind: String, apiVersion: String) in
            Reconciler.listShape(apiVersion: apiVersion, kind: kind, desired: desired, verified: third.verified) { key, stamp in
                seen.withLock { $0[key] = stamp }
            }
        }
        let configMaps = try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: ns, labelSelector: selector,
                                               droppingFieldsOf: Planner.fieldManager, shape: shape("ConfigMap", "v1"))
        #expect(!configMaps.isEmpty && configMaps.allSatisfy { $0["data"] == nil && $0["metadata", "name"] != nil }, "\(configMaps)")
        // Nor the managers' fields or the annotations: the metadata is cut once its uid and
        // resourceVersion match (the cluster label kept).
        #expect(configMaps.allSatisfy { $0["metadata", "managedFields"] == nil && $0["metadata", "labels", "cairn.dev/cluster"] != nil }, "\(configMaps)")
        let sets = try await client.list(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, labelSelector: selector,
                                         droppingFieldsOf: Planner.fieldManager, shape: shape("StatefulSet", "apps/v1"))
        #expect(!sets.isEmpty)
        let found = seen.withLock { $0 }
        #expect(found.count == configMaps.count + sets.count)
        #expect(configMaps.allSatisfy { found[Reconciler.key($0)] == third.verified[Reconciler.key($0)] })
        for set in sets {
            let spec = set["spec"]?.objectValue?.keys.sorted() ?? []
            if found[Reconciler.key(set)] == third.verified[Reconciler.key(set)] {
                // What the rollout reads, and nothing else of the spec.
                #expect(spec == ["replicas", "updateStrategy"], "\(set)")
                #expect(set["metadata", "generation"]?.intValue != nil && set["metadata", "managedFields"] == nil, "\(set)")
                #expect(set["status"] != nil && set["spec", "updateStrategy", "type"]?.stringValue != nil)
            } else if found[Reconciler.key(set)] != nil {
                // Written since (its status, by the controller), read whole and planned unchanged:
                // kept as a verified one is.
                #expect(spec == ["replicas", "updateStrategy"], "\(set)")
            } else {
                #expect(spec.count > 2, "a StatefulSet written since and changed is read as rendered")
            }
        }

        // Drift by other managers: a StatefulSet scaled, a ConfigMap's data edited.
        let statefulSet = try #require(desired.values.first { $0.kind == "StatefulSet" })
        let configMap = try #require(desired.values.filter { $0.kind == "ConfigMap" }.min { $0.reference < $1.reference })
        _ = try await client.apply(["apiVersion": "apps/v1", "kind": "StatefulSet",
                                    "metadata": ["name": .string(statefulSet.name), "namespace": .string(ns)], "spec": ["replicas": 7]],
                                   fieldManager: "kubectl-scale", force: true)
        let key = try #require(configMap.body["data"]?.objectValue?.keys.first)
        _ = try await client.apply(["apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": ["name": .string(configMap.name), "namespace": .string(ns)], "data": [key: "edited"]],
                                   fieldManager: "kubectl-edit", force: true)
        let corrected = try await apply()
        #expect(corrected.verified == third.result.stamps)
        #expect(actions(corrected.result, .configured) == [statefulSet.reference, configMap.reference], "\(corrected.result.objects)")
        let back = try await client.get(ObjectReference(apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: configMap.name))
        #expect(back["data", key] == configMap.body["data", key])
        // Put back, they are read and stamped again on the next run; then all verified once more.
        let after = try await apply()
        #expect(actions(after.result, .unchanged) == all, "\(after.result.objects.filter { $0.action != .unchanged })")
        #expect(Set(after.result.stamps.keys) == all)
        #expect(after.result.stamps[configMap.reference] != second.result.stamps[configMap.reference])
        let last = try await apply()
        #expect(last.verified == after.result.stamps)
        #expect(actions(last.result, .unchanged) == all)
    }

    /// LISTs started before the desired state is known (`prefetch`, as `cairn apply` does) give
    /// the pass what LISTs started by it give; LISTs of another PodDisruptionBudget version are
    /// given up and listed again.
    @Test func aPassOnPrefetchedListsIsThePassOnItsOwn() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        let pdb = try await client.serves("policy/v1") ? "policy/v1" : "policy/v1beta1"
        let state = DesiredState(files: files, options: RenderOptions(podDisruptionBudgetAPIVersion: pdb))
        var reconcilerOptions = Reconciler.Options()
        reconcilerOptions.namespaceAllow = [ns]
        let reconciler = Reconciler(client: client, options: reconcilerOptions)
        // Before anything exists: every object created, from prefetched (empty) LISTs.
        let created = try await reconciler.reconcile(state, prefetched: try await reconciler.prefetch(podDisruptionBudgetAPIVersion: pdb))
        #expect(!created.objects.isEmpty && created.objects.allSatisfy { $0.action == .created }, "\(created.objects.filter { $0.action != .created })")
        // Drift, then the same pass three ways.
        let configMap = try #require(state.clusters.flatMap(\.objects).filter { $0.kind == "ConfigMap" }.min { $0.reference < $1.reference })
        let key = try #require(configMap.body["data"]?.objectValue?.keys.first)
        func drift() async throws {
            _ = try await client.apply(["apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": ["name": .string(configMap.name), "namespace": .string(ns)], "data": [key: "edited"]],
                                       fieldManager: "kubectl-edit", force: true)
        }
        func summary(_ r: Reconciler.Result) -> [String] { r.objects.map { "\($0.action) \($0.reference)" } }
        try await drift()
        let own = try await reconciler.reconcile(state)
        try await drift()
        let prefetched = try await reconciler.reconcile(state, prefetched: try await reconciler.prefetch(podDisruptionBudgetAPIVersion: pdb))
        try await drift()
        let other = pdb == "policy/v1" ? "policy/v1beta1" : "policy/v1"
        let givenUp = try await reconciler.reconcile(state, prefetched: try await reconciler.prefetch(podDisruptionBudgetAPIVersion: other))
        #expect(summary(own).contains("configured \(configMap.reference)"), "\(summary(own))")
        #expect(summary(prefetched) == summary(own))
        #expect(summary(givenUp) == summary(own))
        #expect(own.clusters.map(\.phase) == prefetched.clusters.map(\.phase))
    }
}
