public import ClusterSpecs
import Foundation

/// An Atomix 3.1 cluster in the Atomix operator's shape (`agent.atomix.io/v1alpha1`, kind `AtomixCluster`).
public struct AtomixSpec: SystemSpec {
    public static let apiVersion = "agent.atomix.io/v1alpha1"
    public static let kind = "AtomixCluster"

    public enum StorageLevel: String, Sendable, Hashable {
        case disk
        case mapped
    }

    public enum MemberGroupStrategy: String, Sendable, Hashable, CaseIterable {
        case nodeAware = "node_aware"
        case rackAware = "rack_aware"
        case zoneAware = "zone_aware"

        /// The spelling atomix.conf uses.
        public var configValue: String {
            switch self {
            case .nodeAware: "node-aware"
            case .rackAware: "rack-aware"
            case .zoneAware: "zone-aware"
            }
        }
    }

    public struct Storage: Sendable, Hashable {
        public var size: Quantity
        public var className: String?
        /// Bytes.
        public var segmentSize: Int
        /// Bytes.
        public var entrySize: Int
        public var level: StorageLevel
        public var flushOnCommit: Bool

        public static let `default` = Storage(
            size: try! Quantity(parsing: "2G"), className: nil, segmentSize: 64 << 20, entrySize: 1 << 10,
            level: .mapped, flushOnCommit: false)
    }

    public struct RaftCompaction: Sendable, Hashable {
        public var dynamic: Bool = true
        public var freeDiskBuffer: Double = 0.2
        public var freeMemoryBuffer: Double = 0.2
    }

    public enum `Protocol`: Sendable, Hashable {
        case raft(storage: Storage, compaction: RaftCompaction, partitionSize: Int)
        case primaryBackup(memberGroupStrategy: MemberGroupStrategy)
        case log(storage: Storage, memberGroupStrategy: MemberGroupStrategy)

        public var typeName: String {
            switch self {
            case .raft: "raft"
            case .primaryBackup: "primary-backup"
            case .log: "log"
            }
        }

        public var storage: Storage? {
            switch self {
            case .raft(let s, _, _), .log(let s, _): s
            case .primaryBackup: nil
            }
        }
    }

    public struct ManagementGroup: Sendable, Hashable {
        public var size: Int
        public var env: [EnvVar]
        public var resources: ResourceRequirements
        public var storage: Storage
    }

    public struct PartitionGroup: Sendable, Hashable {
        public var name: String
        public var size: Int
        public var partitions: Int
        public var env: [EnvVar]
        public var resources: ResourceRequirements
        public var `protocol`: `Protocol`
    }

    public struct Benchmark: Sendable, Hashable {
        public var size: Int
        public var env: [EnvVar]
        public var resources: ResourceRequirements
    }

    public var version: String
    public var managementGroup: ManagementGroup
    public var partitionGroups: [PartitionGroup]
    public var benchmark: Benchmark?

    static func decode(_ field: Field, metadata: ClusterMetadata?) -> AtomixSpec? {
        field.object { s -> AtomixSpec? in
            var version = "3.1.0"
            if let f = s["version"], let v = f.string {
                let parts = v.split(separator: ".")
                if parts.count == 3, parts.allSatisfy({ Int($0) != nil }), parts[0] == "3", parts[1] == "1" {
                    version = v
                } else if v == "latest" {
                    // The operator's own example; it renders one configuration for every version.
                    version = v
                    f.note("latest names no version: the image atomix/atomix:latest gets atomix.conf for Atomix 3.1, as the upstream "
                           + "operator writes it for any version; a server of another version may refuse its keys, and a new image "
                           + "under the tag restarts no pod: pin a 3.1 version (e.g. 3.1.0, the operator's default)")
                } else {
                    f.fail("cairn renders atomix.conf for Atomix 3.1 (e.g. 3.1.0); '\(v)' is not supported "
                           + "(Atomix refuses configuration keys it does not know)")
                }
            }
            /// The management group's fields, from `managementGroup` or (the operator's older
            /// shape, where an AtomixCluster is its management group and partition groups are
            /// resources of their own) from `spec` itself.
            func managementGroup(_ m: ObjectReader) -> ManagementGroup {
                var size = 1
                if let sf = m["size"], let n = sf.int(atLeast: 1, atMost: Limits.raftMembers) {
                    if n % 2 == 0 {
                        sf.fail("must be odd (got \(n)); the management group is a Raft group and needs a majority")
                    } else { size = n }
                }
                let env = m["env"].flatMap { $0.env } ?? []
                let resources = m["resources"].flatMap { $0.resources } ?? ResourceRequirements()
                let storage = m["storage"].flatMap(decodeStorage) ?? .default
                return ManagementGroup(size: size, env: env, resources: resources, storage: storage)
            }
            let topLevel = ["size", "env", "resources", "storage"].filter { s.has($0) }
            let management: ManagementGroup? = {
                guard let f = s["managementGroup"] else { return managementGroup(s) }
                for key in topLevel {
                    s[key]?.fail("is the management group's in the operator's older shape; give it in managementGroup, beside the rest")
                }
                return f.object(managementGroup)
            }()
            var groups: [PartitionGroup] = []
            if let f = s["partitionGroups"], let list = f.list({ decodeGroup($0, cluster: metadata?.name) }) {
                groups = list
                var seen: [String: Int] = [:]
                if case .sequence(let seq) = f.node {
                    for (i, g) in list.enumerated() {
                        if let first = seen[g.name] {
                            let item = Field(node: seq.items[min(i, seq.items.count - 1)], path: "\(f.path)[\(i)].name", diagnostics: f.diagnostics)
                            item.fail("duplicate partition group name '\(g.name)' (also partitionGroups[\(first)])")
                        } else { seen[g.name] = i }
                    }
                }
            }
            var benchmark: Benchmark?
            if let f = s["benchmark"] {
                benchmark = f.object { b -> Benchmark? in
                    let size = b["size"].flatMap { $0.int(atLeast: 1, atMost: Limits.replicas) } ?? 1
                    return Benchmark(size: size, env: b["env"].flatMap { $0.env } ?? [],
                                     resources: b["resources"].flatMap { $0.resources } ?? ResourceRequirements())
                }
            }
            if let metadata, case let name = metadata.name {
                let nameField = s.field.metadataName(metadata)
                nameField.checkDerivedName(name + "-service", limit: 63, what: "Service")
                nameField.checkDerivedName(name + "-0123456789", limit: 63, what: "pod revision label")
            }
            guard let management else { return nil }
            return AtomixSpec(version: version, managementGroup: management, partitionGroups: groups, benchmark: benchmark)
        }
    }

    private static func decodeGroup(_ field: Field, cluster: String?) -> PartitionGroup? {
        field.object { g -> PartitionGroup? in
            var name: String?
            if let f = g.required("name"), let n = f.string {
                if Names.isDNS1123Label(n) {
                    name = n
                    if let cluster {
                        f.checkDerivedName("\(cluster)-\(n)-service", limit: 63, what: "Service")
                        f.checkDerivedName("\(cluster)-\(n)-0123456789", limit: 63, what: "pod revision label")
                    }
                } else {
                    f.fail("'\(n)' is not a valid group name: lower-case letters, digits and '-' (it becomes part of object names)")
                }
            }
            let sizeField = g["size"]
            let size = sizeField.map { $0.int(atLeast: 1, atMost: Limits.replicas) } ?? 1
            var partitions = size
            if let f = g["partitions"] { partitions = f.int(atLeast: 1, atMost: Limits.partitions) }
            let env = g["env"].flatMap { $0.env } ?? []
            let resources = g["resources"].flatMap { $0.resources } ?? ResourceRequirements()

            let present = ["raft", "primaryBackup", "log"].filter { g.has($0) }
            var proto: `Protocol`?
            if present.count != 1 {
                let msg = present.isEmpty
                    ? "needs exactly one protocol: raft, primaryBackup or log"
                    : "sets \(present.joined(separator: " and ")); a partition group has exactly one protocol"
                g.field.diagnostics.report(present.count > 1 ? g.keyLocation(present[1]) : g.location, g.path, msg)
                for p in present { g.ignore(p) }
            } else if let f = g["raft"] {
                proto = f.object { r -> `Protocol`? in
                    let storage = r["storage"].flatMap(decodeStorage) ?? .default
                    var compaction = RaftCompaction()
                    if let c = r["compaction"] {
                        _ = c.object { co -> Bool? in
                            if let d = co["dynamic"], let b = d.bool { compaction.dynamic = b }
                            if let d = co["freeDiskBuffer"], let v = fraction(d) { compaction.freeDiskBuffer = v }
                            if let d = co["freeMemoryBuffer"], let v = fraction(d) { compaction.freeMemoryBuffer = v }
                            return true
                        }
                    }
                    var partitionSize = min(3, size ?? 1)
                    if let f = r["partitionSize"], let p = f.int(atLeast: 1, atMost: Limits.raftMembers) {
                        if p % 2 == 0 {
                            f.fail("must be odd (got \(p)); each Raft partition needs a majority")
                        } else if let size, p > size {
                            f.fail("must be at most the group's size \(size) (got \(p))")
                        } else { partitionSize = p }
                    } else if partitionSize % 2 == 0 {
                        partitionSize = 1
                    }
                    return .raft(storage: storage, compaction: compaction, partitionSize: partitionSize)
                }
            } else if let f = g["primaryBackup"] {
                proto = f.object { p -> `Protocol`? in
                    .primaryBackup(memberGroupStrategy: p["memberGroupStrategy"].flatMap(strategy) ?? .nodeAware)
                }
            } else if let f = g["log"] {
                proto = f.object { l -> `Protocol`? in
                    .log(storage: l["storage"].flatMap(decodeStorage) ?? .default,
                         memberGroupStrategy: l["memberGroupStrategy"].flatMap(strategy) ?? .nodeAware)
                }
            }
            guard let name, let size, let partitions, let proto else { return nil }
            return PartitionGroup(name: name, size: size, partitions: partitions, env: env, resources: resources, protocol: proto)
        }
    }

    private static func fraction(_ f: Field) -> Double? {
        guard case .scalar(let s) = f.node else { f.fail("must be a number between 0 and 1"); return nil }
        let value: Double
        switch s.resolved {
        case .int(let i): value = Double(i)
        case .double(let d): value = d
        default: f.fail("must be a number between 0 and 1 (got \(f.node.kindName))"); return nil
        }
        guard value >= 0, value < 1 else { f.fail("must be at least 0 and less than 1 (got \(s.text))"); return nil }
        return value
    }

    private static func strategy(_ f: Field) -> MemberGroupStrategy? {
        guard let v = f.string else { return nil }
        guard let s = MemberGroupStrategy(rawValue: v) else {
            f.fail("must be node_aware, rack_aware or zone_aware (got \(v))")
            return nil
        }
        return s
    }

    private static func decodeStorage(_ field: Field) -> Storage? {
        field.object { st -> Storage? in
            var out = Storage.default
            if let f = st["size"], let q = f.quantity {
                if q.isZero || q.isNegative { f.fail("must be more than 0 (got \(q))") } else { out.size = q }
            }
            if let f = st["className"], let c = f.string {
                if Names.isDNS1123Subdomain(c) { out.className = c } else { f.fail("'\(c)' is not a valid storage class name") }
            }
            if let f = st["segmentSize"], let b = byteSize(f) { out.segmentSize = b }
            if let f = st["entrySize"], let b = byteSize(f) { out.entrySize = b }
            if out.entrySize > out.segmentSize, let f = st["entrySize"] {
                f.fail("must not be larger than segmentSize (\(out.segmentSize) bytes)")
            }
            if let f = st["level"], let l = f.string {
                if let level = StorageLevel(rawValue: l) { out.level = level } else {
                    f.fail("must be disk or mapped (got \(l))")
                }
            }
            if let f = st["flushOnCommit"], let b = f.bool { out.flushOnCommit = b }
            return out
        }
    }

    /// A size in Atomix's (HOCON's) units, where K, M and G are powers of 1024: `64M`, `1K`, `1048576`.
    private static func byteSize(_ f: Field) -> Int? {
        guard let text = f.scalarText else { return nil }
        let units: [(String, Int)] = [("KiB", 10), ("MiB", 20), ("GiB", 30), ("KB", 10), ("MB", 20), ("GB", 30),
                                       ("Ki", 10), ("Mi", 20), ("Gi", 30), ("K", 10), ("M", 20), ("G", 30), ("k", 10)]
        var number = Substring(text)
        var shift = 0
        for (suffix, s) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            shift = s
            break
        }
        guard let n = Int(number), n > 0, n <= (Int(Int32.max) >> shift) else {
            f.fail("'\(text)' is not a size (e.g. 64M, 1K, or a number of bytes up to 2G)")
            return nil
        }
        return n << shift
    }
}
