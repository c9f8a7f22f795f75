import ClusterSpecs
import Foundation
import Render
import Testing

/// Upgrading cairn never restarts pods by itself: the configuration hash on every pod template
/// of the examples is pinned here. A change to a renderer or a config serialiser that changes
/// any of these would roll every pod of that system across a fleet on upgrade; if it must
/// happen, it is a deliberate decision: change the constant, and say so in the README's
/// "Upgrading cairn" list.
@Suite("Upgrade safety")
struct UpgradeTests {
    // aerocluster: re-pinned when the example itself lost `security`, its users and strong
    // consistency (refused since December 2026), not for a renderer change; and again when
    // clients were given the node's address (upstream's default access, hostInternal) by
    // clusters with one pod per node (README, "Upgrading cairn"); and again when the example
    // itself chose alternateAccess: pod (2026-12-04; no renderer change: the same spec renders
    // the same hash as before).
    static let pinned: [String: String] = [
        "StatefulSet/default/acid-minimal-cluster": "sha256:745db8c08e396a060c953d578c51a00b3fbb9b5bd083d054f6046fcdb6213f1d",
        "StatefulSet/aerospike/aerocluster-1": "sha256:d6922d18df0ad502daf519d3e46c3ddb04d505f82f98ced3d019bd739ee1c930",
        "StatefulSet/aerospike/aerocluster-2": "sha256:17fbe98321d0f0aba59c6958108adf911791956766960dcfc21a32987a138cd5",
        "StatefulSet/esdb/esdb-cluster": "sha256:47af50eb810a8e30cde3ce376e410d67578a2ffcd0457ec4d750c98017926995",
        "StatefulSet/default/example-atomixcluster": "sha256:d5b56db1b1184a37f12c5f09a5e0b5c97d78b72b44b72b21ad0a1d1cce58ee9b",
        "StatefulSet/default/example-atomixcluster-raft": "sha256:b8fc697233c260a21ab3097a602a333d17f08cd551e360f707431c0c443fb57a",
        "StatefulSet/default/example-atomixcluster-primary-backup": "sha256:fc8114c9ec832cdfdd9080b6655c57b0d39fcf6c391177e6411254f93bfc743e",
        "StatefulSet/default/example-atomixcluster-log": "sha256:aea7ea14eccbf5d74835178be3939dbff5b89940b6f0f12dfa8b98fb72d80e40",
    ]

    @Test func theExamplesConfigHashesArePinned() throws {
        let files = Repo.exampleFiles.map { DesiredState.File(path: "clusters/\($0)", text: Repo.read(Repo.clusters.appendingPathComponent($0))) }
        let state = DesiredState(files: files)
        #expect(state.errors.isEmpty)
        var hashes: [String: String] = [:]
        for object in state.clusters.flatMap(\.objects) where object.kind == "StatefulSet" {
            hashes[object.reference] = object.body["spec", "template", "metadata", "annotations", ConfigHash.annotation]?.stringValue
        }
        #expect(Set(hashes.keys) == Set(Self.pinned.keys))
        for (set, hash) in Self.pinned.sorted(by: { $0.key < $1.key }) {
            #expect(hashes[set] == hash, """
                \(set): the configuration hash changed (\(hashes[set] ?? "none")). Upgrading cairn would restart every \
                pod of this kind of cluster. If that is intended, pin the new hash and document it in the release notes.
                """)
        }
    }
}

/// `eventstore.conf`'s serialiser, frozen byte for byte: every EventStoreDB pod's config hash is
/// computed over it. These are the bytes it wrote when it was split from `YAMLWriter`.
@Suite("eventstore.conf serialiser")
struct EventStoreConfTests {
    @Test func writesEveryShapeAsFrozen() {
        let options: JSONObject = [
            "Db": "/var/lib/eventstore/data", "ExtIp": "0.0.0.0", "ClusterSize": 3, "Insecure": true, "Ratio": .double(0.5), "Whole": .double(2.0),
            "Word": "yes", "Spaced": "a b", "Colon": "a: b", "Hash": "#x", "Empty": "", "Number": "123", "Hex": "0x1F",
            "Multi": "line one\nline two\n", "MultiNoEnd": "one\ntwo", "Trailing": "ends with space ", "Quote": "say \"hi\"",
            "GossipSeed": ["a-0.a.ns.svc:2113", "a-1.a.ns.svc:2113"], "EmptyList": [], "Null": nil,
        ]
        #expect(EventStoreConf.write(options) == """
            Db: /var/lib/eventstore/data
            ExtIp: "0.0.0.0"
            ClusterSize: 3
            Insecure: true
            Ratio: 0.5
            Whole: 2.0
            Word: "yes"
            Spaced: a b
            Colon: "a: b"
            Hash: "#x"
            Empty: ""
            Number: "123"
            Hex: "0x1F"
            Multi: |
              line one
              line two
            MultiNoEnd: |-
              one
              two
            Trailing: "ends with space "
            Quote: "say \\"hi\\""
            GossipSeed:
            - a-0.a.ns.svc:2113
            - a-1.a.ns.svc:2113
            EmptyList: []
            "Null": null

            """)
    }

    /// Found by the `conf` fuzz target: a C1 control character (U+009A) was written raw, and no
    /// YAML reader takes it back.
    @Test func nonPrintableCharactersAreEscapedAndReadBack() throws {
        let text = EventStoreConf.write(["W\u{9A}x": "a\u{85}b\u{9A}", "Multi": "one\u{9A}\ntwo\n"])
        #expect(text == "\"W\\u009ax\": \"a\\u0085b\\u009a\"\nMulti: \"one\\u009a\\ntwo\\n\"\n", "\(text)")
        guard case .mapping(let m) = try SpecFileParser.parse(text, file: "eventstore.conf") else { Issue.record("not a mapping"); return }
        #expect(m.entries.map(\.key.text) == ["W\u{9A}x", "Multi"])
        #expect(m["Multi"] == .scalar(.init(text: "one\u{9A}\ntwo\n", isPlain: false, location: m["Multi"]!.location)))
    }
}
