import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Render
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

    func state(_ files: [DesiredState.File], _ options: RenderOptions = .checkOnly, cache: RenderCache?) -> DesiredState {
        DesiredState(files: files, options: options, renderCache: cache)
    }

    @Test func aWarmCacheGivesWhatRenderingGivesAndKeepsNoSecret() throws {
        let files = self.files
        let fresh = state(files, cache: nil)
        #expect(fresh.errors.isEmpty, "\(fresh.errors)")
        #expect(fresh.clusters.count == files.count)

        let cold = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        let first = state(files, cache: cold)
        #expect(cold.hits == 0)
        // Every cluster but those rendering a Secret (the one beside the Secret document, and any
        // example with credentials of its own).
        let cacheable = fresh.clusters.filter { !$0.objects.contains { $0.kind == "Secret" } }.count
        #expect(cacheable >= 3 && cacheable < files.count)
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
        let cacheable = changed.clusters.filter { !$0.objects.contains { $0.kind == "Secret" } }.count
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

    /// What keeps a valid spec from being rendered here is worked out again on a hit: a
    /// SplitDNS cluster where cairn's image is not known stays out of the clusters applied.
    @Test func whatKeepsAClusterFromBeingRenderedHoldsOnAHit() throws {
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
        let warm = try #require(RenderCache.open(directory: cacheDir, options: options))
        let second = state([splitDNS], options, cache: warm)
        #expect(warm.hits == 1)
        #expect(second.clusters.isEmpty && second.invalid["events/kdb"] != nil)
        #expect(second.errors.map(\.description) == first.errors.map(\.description))
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
        let plain = files.filter { f in all.clusters.contains { $0.spec.file == f.path && !$0.objects.contains { $0.kind == "Secret" } } }
        let fewer = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(Array(plain.prefix(2)), cache: fewer)
        #expect(fewer.hits == 2)
        try fewer.save()
        let after = try #require(RenderCache.open(directory: cacheDir, options: .checkOnly))
        _ = state(files, cache: after)
        #expect(after.hits == 2)
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
