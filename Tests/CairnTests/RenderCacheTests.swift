import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import ClusterSpecs
@testable import Render
import JSON
import Testing

/// The rendered objects `cairn apply` and `cairn plan --live` keep between runs: what a warm cache
/// gives is exactly what rendering gives, and nothing else is ever used (a changed file, other
/// options, a damaged or foreign file), and no Secret reaches the disk.
@Suite("Render cache")
struct RenderCacheTests {
    let dir = TemporaryDirectory("cairn-render-cache")
    var cacheDir: String { dir.path + "/render" }

    /// The four examples, and a cluster with a Secret beside it.
    var files: [DesiredState.File] {
        Repo.exampleFiles.map { DesiredState.File(path: "clusters/\($0)", text: Repo.read(Repo.clusters.appendingPathComponent($0))) } + [
            DesiredState.File(path: "clusters/with-secret.yaml", text: """
                apiVersion: v1
                kind: Secret
                metadata: {name: s-passwords}
                type: Opaque
                stringData: {admin: do-not-write-me-to-disk}
                ---
                apiVersion: kubernetes.kurrent.io/v1
                kind: KurrentDB
                metadata: {name: s, namespace: db}
                spec:
                  replicas: 1
                  image: docker.kurrent.io/kurrent-latest/kurrentdb:25.0.0
                  storage: {resources: {requests: {storage: 1Gi}}}

                """),
        ]
    }

    /// A Secret other than one the server fills with generated passwords (never cached).
    static func holdsSecretData(_ o: RenderedObject) -> Bool {
        o.kind == "Secret" && !(o.createOnly && o.body["metadata", "annotations", "cairn.dev/generated-keys"] != nil)
    }

    /// Only the Secrets cairn creates for the server to fill are cached, and only while their
    /// data has none of the keys to generate.
    @Test func onlySecretsTheServerFillsAreCached() {
        func secret(_ data: JSONValue, generated: String?, createOnly: Bool) -> RenderedObject {
            var metadata: JSONObject = ["name": "s", "namespace": "n"]
            if let generated { metadata["annotations"] = ["cairn.dev/generated-keys": .string(generated)] }
            return RenderedObject(body: ["apiVersion": "v1", "kind": "Secret", "metadata": .object(metadata), "data": data],
                                  stage: .secrets, createOnly: createOnly)
        }
        #expect(!RenderCache.holdsSecretData(secret(["username": "dQ=="], generated: "password", createOnly: true)))
        #expect(RenderCache.holdsSecretData(secret(["username": "dQ==", "password": "cA=="], generated: "password", createOnly: true)))
        #expect(RenderCache.holdsSecretData(secret(["token": "dA=="], generated: "password,token", createOnly: true)))
        #expect(RenderCache.holdsSecretData(secret(["username": "dQ=="], generated: "password", createOnly: false)))
        #expect(RenderCache.holdsSecretData(secret(["username": "dQ=="], generated: nil, createOnly: true)))
        #expect(!RenderCache.holdsSecretData(RenderedObject(body: ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "c"]], stage: .configuration)))
    }

    func state(_ files: [DesiredState.File], _ options: RenderOptions = .checkOnly, cache: RenderCache?) -> DesiredState {
        DesiredState(files: files, options: options, renderCache: cache, decodeWhenAsked: true)
    }

    @Test func aWarmCacheGivesWhatRenderingGivesAndKeepsNoSecret() throws {
        let files = self.files
        let fresh = state(files, cache: nil)
        #expect(fresh.errors.isEmpty, "\(fresh.errors)")
        #expect(fresh.clusters.count == files.count)

        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let first = state(files, cache: cold)
        #expect(cold.hits == 0)
        // Every cluster but those rendering a Secret (the one beside the Secret document); the
        // Postgres example's Secrets, which the server fills with generated passwords, are cached.
        let cacheable = fresh.clusters.filter { !$0.objects.contains(where: Self.holdsSecretData) }.count
        #expect(cacheable == files.count - 1)
        #expect(fresh.clusters.contains { $0.objects.contains { $0.kind == "Secret" && $0.createOnly } })
        #expect(cold.stored == cacheable)
        try cold.save()

        let warm = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let second = state(files, cache: warm)
        #expect(warm.hits == cacheable)
        #expect(warm.stored == 0)
        #expect(fresh.clusters.map(\.spec.identity) == second.clusters.map(\.spec.identity))
        for (a, b) in zip(fresh.clusters, second.clusters) {
            #expect(a == b, "\(a.spec.identity) from the cache differs from its rendering")
            #expect(a.objects.map(\.json) == b.objects.map(\.json))
            // (Read where the cache file holds them: hashed and parsed from there alike.)
            #expect(a.objects.map(\.jsonHash) == b.objects.map(\.jsonHash))
            #expect(a.objects.map(\.body) == b.objects.map(\.body))
            #expect(a.objects.map { $0.withoutTree.jsonCount.json } == b.objects.map { $0.jsonCount.json })
            // Compared where the cache file holds them: the same object is the same, another is not.
            #expect(zip(a.objects, b.objects).allSatisfy { RenderedObject.sameJSON($1, $0) && RenderedObject.sameJSON($1, $1) })
            if b.objects.count > 1 { #expect(!RenderedObject.sameJSON(b.objects[0], b.objects[1]) && !RenderedObject.sameJSON(b.objects[0], a.objects[1])) }
            #expect(a.objects.map(\.reference) == b.objects.map(\.reference))
            #expect(a.objects.map(\.stage) == b.objects.map(\.stage))
            #expect(a.objects.map(\.createOnly) == b.objects.map(\.createOnly))
            #expect(a.problems == b.problems)
        }
        #expect(first.clusters == second.clusters)
        // The objects read back whole, and the Secret is nowhere in the file.
        #expect(second.clusters.flatMap(\.objects).allSatisfy { $0.body.objectValue != nil })
        let bytes = try #require(FileManager.default.contents(atPath: warm.path))
        #expect(bytes.count > 1000)
        #expect(String(decoding: bytes, as: UTF8.self).contains("do-not-write-me-to-disk") == false)
        #expect(String(decoding: bytes, as: UTF8.self).contains("s-passwords") == false)

        // Modes: the directory 0700, the file 0600.
        var st = stat()
        #expect(stat(cacheDir, &st) == 0 && st.st_mode & 0o777 == 0o700)
        #expect(stat(warm.path, &st) == 0 && st.st_mode & 0o777 == 0o600)
    }

    @Test func aChangedFileOrOtherOptionsAreRenderedAgain() throws {
        var files = self.files
        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(files, cache: cold)
        try cold.save()

        // One file changed: rendered again, with the change; the others from the cache.
        let esdb = try #require(files.firstIndex { $0.path == "clusters/esdb-cluster.yaml" })
        let original = files[esdb].text
        files[esdb].text = original.replacingOccurrences(of: "replicas: 3", with: "replicas: 5")
        #expect(files[esdb].text != original, "the example changed")
        let warm = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let changed = state(files, cache: warm)
        let cacheable = changed.clusters.filter { !$0.objects.contains(where: Self.holdsSecretData) }.count
        #expect(warm.hits == cacheable - 1)
        #expect(warm.stored == 1)
        #expect(changed.clusters == state(files, cache: nil).clusters)
        let sts = try #require(changed.clusters.first { $0.spec.file == files[esdb].path }?.objects.first { $0.kind == "StatefulSet" })
        #expect(sts.body["spec", "replicas"]?.intValue == 5)
        // Written again (the entries read copied as they were, the new one added): all found.
        try warm.save()
        let again = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        #expect(state(files, cache: again).clusters == changed.clusters)
        #expect(again.hits == cacheable)

        // Other options: another file, nothing from the first.
        var older = RenderOptions.checkOnly
        older.podDisruptionBudgetAPIVersion = "policy/v1beta1"
        let other = try #require(RenderCache.open(directory: cacheDir, options: older))
        #expect(other.path != warm.path)
        let rendered = state(files, older, cache: other)
        #expect(other.hits == 0)
        let pdbs = rendered.clusters.flatMap(\.objects).filter { $0.kind == "PodDisruptionBudget" }
        #expect(!pdbs.isEmpty && pdbs.allSatisfy { $0.apiVersion == "policy/v1beta1" && $0.body["apiVersion"]?.stringValue == "policy/v1beta1" })
    }

    /// What keeps a valid spec from being rendered here is never taken from the cache: a
    /// SplitDNS cluster where cairn's image is not known stays out of the clusters applied.
    @Test func whatKeepsAClusterFromBeingRenderedIsNotCached() throws {
        let splitDNS = DesiredState.File(path: "clusters/kdb.yaml", text: """
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: kdb, namespace: events}
            spec:
              replicas: 3
              image: docker.kurrent.io/kurrent-latest/kurrentdb:25.0.0
              storage: {resources: {requests: {storage: 1Gi}}}
              network: {domain: example.com, internodeTrafficStrategy: SplitDNS}

            """)
        let options = RenderOptions(clusterDNS: "10.96.0.10:53")
        let cold = try #require(RenderCache.open(directory: cacheDir, options: options))
        let first = state([splitDNS], options, cache: cold)
        #expect(first.clusters.isEmpty && first.invalid["events/kdb"] != nil)
        #expect(first.errors.contains { $0.description.contains("CAIRN_IMAGE") }, "\(first.errors)")
        try cold.save()
        // A rendering with problems is not kept: they are worked out again, from the spec.
        #expect(cold.stored == 0)
        let warm = try #require(RenderCache.open(directory: cacheDir, options: options))
        let second = state([splitDNS], options, cache: warm)
        #expect(warm.hits == 0)
        #expect(second.clusters.isEmpty && second.invalid["events/kdb"] != nil)
        #expect(second.errors.map(\.description) == first.errors.map(\.description))
    }

    /// On a hit the system's spec is decoded only when asked for (a no-op `cairn apply` never
    /// asks), and then it is the spec, with the notes, that decoding the file gives.
    @Test func aHitDecodesTheSystemSpecOnlyWhenAskedAndTheSame() throws {
        let file = DesiredState.File(path: "clusters/licensed.yaml", text: """
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: licensed, namespace: db}
            spec:
              replicas: 1
              image: docker.kurrent.io/kurrent-latest/kurrentdb:25.1.0
              storage: {resources: {requests: {storage: 1Gi}}}
              configuration:
                Licensing: {LicenseKey: not-a-real-key}

            """)
        let fresh = state([file], cache: nil)
        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let first = state([file], cache: cold)
        #expect(cold.stored == 1)
        try cold.save()
        let warm = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let second = state([file], cache: warm)
        #expect(warm.hits == 1)
        let (a, b) = (try #require(first.clusters.first), try #require(second.clusters.first))
        #expect(!a.spec.decodesSystemWhenAsked)
        #expect(b.spec.decodesSystemWhenAsked)
        // The note comes from the system's decoder (a credential-looking configuration value).
        #expect(second.notes.map(\.description) == fresh.notes.map(\.description))
        #expect(second.notes.contains { $0.description.contains("looks like a credential") }, "\(second.notes)")
        #expect(b.spec == a.spec)
        #expect(AnyHashable(b.spec.system) == AnyHashable(fresh.clusters[0].spec.system))
        #expect(b == a)
    }

    /// A hit makes the spec again from what the cache kept of it (`ClusterSpec.Summary`: its
    /// apiVersion as read, kind, name, namespace, labels, annotations, where its name is),
    /// without parsing the file: the same spec, notes and rendering as a fresh read. A spec with
    /// documents beside it (a Namespace, a ConfigMap) keeps no summary and is parsed each time.
    @Test func aHitMakesTheSpecAgainFromWhatTheCacheKeptOfIt() throws {
        let aerospike = Repo.read(Repo.clusters.appendingPathComponent("aerocluster.yaml"))
        let esdb = Repo.read(Repo.clusters.appendingPathComponent("esdb-cluster.yaml"))
        let files = self.files.filter { $0.path != "clusters/with-secret.yaml" } + [
            // An older apiVersion (read as the newer, with a note), labels and annotations.
            DesiredState.File(path: "clusters/labelled.yaml", text: aerospike
                .replacingOccurrences(of: "apiVersion: asdb.aerospike.com/v1\n", with: "apiVersion: asdb.aerospike.com/v1beta1\n")
                .replacingOccurrences(of: "  name: aerocluster\n", with: """
                      name: labelled
                      labels: {team: storage, tier: gold}
                      annotations: {owner: "someone@example.com", note: "a: b"}

                    """)),
            DesiredState.File(path: "clusters/with-namespace.yaml", text: """
                apiVersion: v1
                kind: Namespace
                metadata: {name: esdb, labels: {env: prod}}
                ---

                """ + esdb.replacingOccurrences(of: "name: esdb-cluster", with: "name: beside-namespace")),
            DesiredState.File(path: "clusters/with-configmap.yaml", text: esdb.replacingOccurrences(of: "name: esdb-cluster", with: "name: beside-configmap") + """
                ---
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: extra}
                data: {k: v}

                """),
        ]
        let fresh = state(files, cache: nil)
        #expect(fresh.errors.isEmpty, "\(fresh.errors)")
        #expect(fresh.clusters.count == files.count)
        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(files, cache: cold)
        #expect(cold.stored == files.count)
        try cold.save()

        let warm = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        for f in files {
            let kept = warm.summary(path: f.path, digest: DesiredState.Digest(f.text))
            let spec = try #require(fresh.clusters.first { $0.spec.file == f.path }?.spec)
            if f.path.hasPrefix("clusters/with-") {
                #expect(kept == nil, "\(f.path) has a document beside its cluster")
                #expect(spec.summary == nil)
            } else {
                #expect(kept != nil && kept == spec.summary, "\(f.path)")
            }
        }
        let labelled = try #require(warm.summary(path: "clusters/labelled.yaml", digest: DesiredState.Digest(files.last { $0.path == "clusters/labelled.yaml" }!.text)))
        #expect(labelled.apiVersion == "asdb.aerospike.com/v1")
        #expect(labelled.metadata.labels == ["team": "storage", "tier": "gold"])
        #expect(labelled.metadata.annotations == ["owner": "someone@example.com", "note": "a: b"])
        #expect(labelled.metadata.nameLocation == Location(line: 7, column: 9))

        let second = state(files, cache: warm)
        #expect(warm.hits == files.count)
        #expect(second.clusters.count == fresh.clusters.count)
        for (a, b) in zip(fresh.clusters, second.clusters) {
            #expect(b.spec.file == a.spec.file)
            #expect(b.spec.metadata == a.spec.metadata, "\(a.spec.file)")
            #expect(b.spec.apiVersion == a.spec.apiVersion && b.spec.kind == a.spec.kind)
            #expect(b.spec.companions == a.spec.companions && b.spec.namespaceDocument == a.spec.namespaceDocument)
            #expect(b.spec.decodesSystemWhenAsked)
            #expect(b == a, "\(a.spec.file)")
        }
        #expect(second.clusters.first { $0.spec.file == "clusters/with-namespace.yaml" }?.spec.namespaceDocument?.labels == ["env": "prod"])
        #expect(second.clusters.first { $0.spec.file == "clusters/with-configmap.yaml" }?.spec.companions.map(\.name) == ["extra"])
        // The notes too (the older apiVersion's among them), from the text when asked for.
        #expect(second.notes.map(\.description) == fresh.notes.map(\.description))
        #expect(second.notes.contains { $0.description.contains("read as asdb.aerospike.com/v1") }, "\(second.notes)")
    }

    @Test func aFileAtAnotherPathIsAMiss() throws {
        let files = self.files
        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(files, cache: cold)
        try cold.save()
        let moved = files.map { DesiredState.File(path: "elsewhere/" + $0.path, text: $0.text) }
        let warm = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let state = state(moved, cache: warm)
        #expect(warm.hits == 0)
        #expect(state.clusters.allSatisfy { $0.spec.file.hasPrefix("elsewhere/") })
    }

    @Test func entriesNoRunUsedAreDropped() throws {
        let files = self.files
        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let all = state(files, cache: cold)
        try cold.save()
        // A run with two of the files keeps only those two.
        let plain = files.filter { f in all.clusters.contains { $0.spec.file == f.path && !$0.objects.contains(where: Self.holdsSecretData) } }
        let fewer = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(Array(plain.prefix(2)), cache: fewer)
        #expect(fewer.hits == 2)
        try fewer.save()
        let after = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(files, cache: after)
        #expect(after.hits == 2)
    }

    /// A cache larger than the buffer `save` streams through (a megabyte) is written in pieces,
    /// hashed as written, and reads back whole: every entry found, both the ones rendered in
    /// this run and those copied from the file as read, with every stamp.
    @Test func aCacheLargerThanTheWriteBufferReadsBackWhole() throws {
        let esdb = Repo.read(Repo.clusters.appendingPathComponent("esdb-cluster.yaml"))
        var files = (0..<320).map { i in
            DesiredState.File(path: "clusters/esdb-\(i).yaml", text: esdb.replacingOccurrences(of: "name: esdb-cluster", with: "name: esdb-\(i)"))
        }
        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let first = state(files, cache: cold)
        #expect(first.errors.isEmpty, "\(first.errors)")
        #expect(cold.stored == files.count)
        var found: [String: LiveStamp] = [:]
        for (i, o) in first.clusters.flatMap(\.objects).enumerated() { found[o.reference] = LiveStamp(uid: "uid-\(i)", resourceVersion: "\(i)") }
        first.record(found)
        try cold.save()
        let bytes = try #require(FileManager.default.contents(atPath: cold.path))
        #expect(bytes.count > 2 << 20, "\(bytes.count) bytes: not more than two buffers")
        // The trailing SHA-256 is of everything before it, computed here apart.
        #expect(Array(SHA256.hash(data: bytes.dropLast(32))) == Array(bytes.suffix(32)))

        // One file changed: the others copied from the file as read, the changed one rendered.
        files[7].text = files[7].text.replacingOccurrences(of: "replicas: 3", with: "replicas: 5")
        let warm = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let second = state(files, cache: warm)
        #expect(warm.hits == files.count - 1)
        #expect(warm.stored == 1)
        try warm.save()
        let again = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let third = state(files, cache: again)
        #expect(again.hits == files.count)
        #expect(third.clusters == second.clusters)
        #expect(third.clusters == state(files, cache: nil).clusters)
        let changed = Set(try #require(second.clusters.first { $0.spec.file == files[7].path }).objects.map(\.reference))
        #expect(!changed.isEmpty)
        // Compared apart: a failure would print some 2,000 stamps twice.
        let stampsKept = third.liveStamps() == found.filter { !changed.contains($0.key) }
        #expect(stampsKept, "\(third.liveStamps().count) stamps read back of \(found.count - changed.count)")
    }

    /// What a pass found unchanged (uid and resourceVersion, `LiveStamp`) is kept with each
    /// file's rendering: given back for the same file text, merged run after run, gone with a
    /// changed file, kept by a run that records nothing (`cairn plan`), and a run that changes
    /// nothing does not write the file again. A cluster with a Secret has stamps too, and no
    /// Secret's data reaches the file.
    @Test func stampsGoWithTheRenderingTheyWereFoundAgainst() throws {
        var files = self.files
        func stamps(_ state: DesiredState, _ version: String) -> [String: LiveStamp] {
            var out: [String: LiveStamp] = [:]
            for (i, o) in state.clusters.flatMap(\.objects).enumerated() { out[o.reference] = LiveStamp(uid: "uid-\(i)", resourceVersion: version) }
            return out
        }
        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let first = state(files, cache: cold)
        #expect(first.liveStamps().isEmpty)
        var found = stamps(first, "1")
        let secretCluster = try #require(first.clusters.first { $0.spec.file == "clusters/with-secret.yaml" })
        #expect(secretCluster.objects.contains { $0.kind == "Secret" })
        // Half of them found unchanged, and one object no rendering has.
        let half = Dictionary(uniqueKeysWithValues: found.sorted { $0.key < $1.key }.enumerated().filter { $0.offset % 2 == 0 }.map { $0.element })
        first.record(half.merging(["ConfigMap/nowhere/none": LiveStamp(uid: "x", resourceVersion: "1")]) { a, _ in a })
        try cold.save()

        let warm = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let second = state(files, cache: warm)
        #expect(second.liveStamps() == half)
        // Merged: the other half found now, the first half at a newer version.
        found = stamps(second, "2")
        second.record(found)
        try warm.save()
        let third = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let thirdState = state(files, cache: third)
        #expect(thirdState.liveStamps() == found)
        #expect(thirdState.liveStamps().keys.contains { $0.hasPrefix("Secret/") })
        let bytes = try #require(FileManager.default.contents(atPath: third.path))
        #expect(String(decoding: bytes, as: UTF8.self).contains("do-not-write-me-to-disk") == false)
        // A run that records nothing, and a run that records what the file holds: the file is
        // not written again (same inode), and still holds every stamp.
        try third.save()
        var before = stat()
        #expect(stat(third.path, &before) == 0)
        let same = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let sameState = state(files, cache: same)
        sameState.record(sameState.liveStamps())
        try same.save()
        var after = stat()
        #expect(stat(same.path, &after) == 0 && after.st_ino == before.st_ino)

        // One file changed: its stamps are gone, the others' kept.
        let esdb = try #require(files.firstIndex { $0.path == "clusters/esdb-cluster.yaml" })
        files[esdb].text = files[esdb].text.replacingOccurrences(of: "replicas: 3", with: "replicas: 5")
        let changed = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let changedState = state(files, cache: changed)
        let esdbObjects = Set(try #require(changedState.clusters.first { $0.spec.file == files[esdb].path }).objects.map(\.reference))
        #expect(!esdbObjects.isEmpty)
        #expect(changedState.liveStamps() == found.filter { !esdbObjects.contains($0.key) })
        try changed.save()
        let reopened = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        #expect(state(files, cache: reopened).liveStamps() == found.filter { !esdbObjects.contains($0.key) })
    }

    @Test(arguments: ["flip", "truncate", "others-may-write", "trailing", "count", "symlink"])
    func aDamagedOrForeignFileIsNotUsed(_ damage: String) throws {
        let files = self.files
        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let fresh = state(files, cache: cold)
        try cold.save()
        var bytes = try #require(FileManager.default.contents(atPath: cold.path))
        switch damage {
        case "flip": bytes[bytes.count / 2] ^= 0x20
        case "truncate": bytes = bytes.prefix(bytes.count - 40)
        case "trailing": bytes.append(0)
        case "count":
            // The entry count (after the magic and the header) made huge, the checksum made to
            // match: only the bounds on counts stand between this and a trap.
            for i in 40..<44 { bytes[i] = 0xFF }
            let body = bytes.count - 32
            bytes.replaceSubrange(body..., with: Array(SHA256.hash(data: bytes[..<body])))
        default: break
        }
        if damage == "symlink" {
            // The file moved elsewhere and linked back: not followed.
            try FileManager.default.moveItem(atPath: cold.path, toPath: dir.file("elsewhere.cache"))
            #expect(symlink(dir.file("elsewhere.cache"), cold.path) == 0)
        } else if damage != "others-may-write" {
            try bytes.write(to: URL(fileURLWithPath: cold.path))
        }
        if damage != "symlink" { #expect(chmod(cold.path, damage == "others-may-write" ? 0o666 : 0o600) == 0) }

        let damaged = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let again = state(files, cache: damaged)
        #expect(damaged.hits == 0)
        #expect(again.clusters == fresh.clusters)
        // Written anew (in place of the damaged file, with its own mode), then used.
        try damaged.save()
        let repaired = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(files, cache: repaired)
        #expect(repaired.hits == damaged.stored && repaired.hits >= 3)
    }

    @Test func filesNoRunUsedForAWeekAreRemoved() throws {
        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(files, cache: cold)
        try cold.save()
        // Another build's file, a week and a day old, and one six days old; a killed run's
        // temporary file two hours old, and a running one's 30 minutes old; something else of
        // the user's, old.
        let old = time(nil) - 8 * 24 * 3600
        let ages = ["render-0000.cache": 8 * 24 * 3600, "render-1111.cache": 6 * 24 * 3600, "render-2222.cache.tmp-1-2": 2 * 3600,
                    "render-3333.cache.tmp-3-4": 1800, "notes.txt": 8 * 24 * 3600]
        for (name, age) in ages {
            #expect(FileManager.default.createFile(atPath: cacheDir + "/" + name, contents: Data([1])))
            var times = [timeval(tv_sec: time(nil) - age, tv_usec: 0), timeval(tv_sec: time(nil) - age, tv_usec: 0)]
            #expect(utimes(cacheDir + "/" + name, &times) == 0)
        }
        // A run that changes nothing still marks its file used.
        var times = [timeval(tv_sec: old, tv_usec: 0), timeval(tv_sec: old, tv_usec: 0)]
        #expect(utimes(cold.path, &times) == 0)
        let warm = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(files, cache: warm)
        try warm.save()
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: cacheDir))
        #expect(left == [URL(fileURLWithPath: cold.path).lastPathComponent, "render-1111.cache", "render-3333.cache.tmp-3-4", "notes.txt"])
        var st = stat()
        #expect(stat(cold.path, &st) == 0 && st.st_mtim.tv_sec > old + 3600)
    }

    @Test func aDirectoryOthersMayWriteOrALinkIsNotUsed() throws {
        try FileManager.default.createDirectory(atPath: cacheDir, withIntermediateDirectories: true)
        #expect(chmod(cacheDir, 0o777) == 0)
        #expect(RenderCache.open(directory: cacheDir, options: .checkOnly) == nil)
        #expect(chmod(cacheDir, 0o700) == 0)
        #expect(RenderCache.open(directory: cacheDir, options: .checkOnly) != nil)
        // A link to a directory of the user's own, or a directory below one others may write.
        #expect(symlink(cacheDir, dir.file("link")) == 0)
        #expect(RenderCache.open(directory: dir.file("link"), options: .checkOnly) == nil)
        try FileManager.default.createDirectory(atPath: dir.file("open"), withIntermediateDirectories: true)
        #expect(chmod(dir.file("open"), 0o777) == 0)
        #expect(RenderCache.open(directory: dir.file("open") + "/render", options: .checkOnly) == nil)
        #expect(RenderCache.open(directory: "relative/render", options: .checkOnly) == nil)
    }
}
