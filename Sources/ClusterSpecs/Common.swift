/// The identity and metadata of a cluster, from the spec's `metadata`.
public struct ClusterMetadata: Sendable, Hashable {
    public let name: String
    public let namespace: String
    /// Extra labels copied onto every rendered object's metadata (never into selectors).
    public let labels: [String: String]
    /// Extra annotations copied onto every rendered object's metadata.
    public let annotations: [String: String]
    /// Where `metadata.name` is written, for errors about the cluster as a whole.
    public let nameLocation: Location

    public init(name: String, namespace: String, labels: [String: String] = [:],
                annotations: [String: String] = [:], nameLocation: Location = Location(line: 1, column: 1)) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
        self.nameLocation = nameLocation
    }
}

/// Container resources (`requests`, `limits`), quantities in canonical form.
public struct ResourceRequirements: Sendable, Hashable {
    public var requests: [String: Quantity]
    public var limits: [String: Quantity]

    public init(requests: [String: Quantity] = [:], limits: [String: Quantity] = [:]) {
        self.requests = requests
        self.limits = limits
    }

    public var isEmpty: Bool { requests.isEmpty && limits.isEmpty }
}

/// An environment variable with a literal value.
public struct EnvVar: Sendable, Hashable {
    public let name: String
    public let value: String

    /// Why an `env` item's `valueFrom` is refused where only literal values are rendered.
    package static let valueFromRefusal = "only literal values are rendered; reference Secrets through the system's own fields"
}

/// Scheduling constraints passed through to the pod template.
public struct PodConstraints: Sendable, Hashable {
    public var nodeSelector: [String: String] = [:]
    public var affinity: JSONValue?
    public var tolerations: [JSONValue] = []
    public var topologySpreadConstraints: [JSONValue] = []

    public init() {}
}

package enum Names {
    package static let maxLabelLength = 63

    /// RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric.
    package static func isDNS1123Label(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= maxLabelLength else { return false }
        let u = Array(s.utf8)
        func ok(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 }
        guard u.allSatisfy(ok), u.first != 45, u.last != 45 else { return false }
        return true
    }

    /// RFC 1035 label (Service names): an RFC 1123 label that starts with a letter.
    package static func isDNS1035Label(_ s: String) -> Bool {
        guard isDNS1123Label(s), let f = s.utf8.first else { return false }
        return f >= 97 && f <= 122
    }

    package static func isDNS1123Subdomain(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNS1123Label(String($0)) }
    }

    /// A label or annotation key: optional DNS-subdomain prefix and a name of at most 63 characters.
    package static func isQualifiedName(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else { return false }
        if parts.count == 2, !isDNS1123Subdomain(String(parts[0])) { return false }
        let name = Array(parts.last!.utf8)
        guard !name.isEmpty, name.count <= 63 else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) }
        guard alnum(name.first!), alnum(name.last!) else { return false }
        return name.allSatisfy { alnum($0) || $0 == 45 || $0 == 95 || $0 == 46 }
    }

    package static func isLabelValue(_ s: String) -> Bool {
        if s.isEmpty { return true }
        let u = Array(s.utf8)
        guard u.count <= 63 else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) }
        guard alnum(u.first!), alnum(u.last!) else { return false }
        return u.allSatisfy { alnum($0) || $0 == 45 || $0 == 95 || $0 == 46 }
    }

    /// An environment variable name as Kubernetes accepts it.
    package static func isEnvVarName(_ s: String) -> Bool {
        guard let f = s.utf8.first, !(f >= 48 && f <= 57) else { return false }
        return s.utf8.allSatisfy { c in
            (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 95 || c == 45 || c == 46
        }
    }
}

extension Field {
    /// `resources: {requests: {cpu, memory}, limits: {...}}` with Kubernetes' rule that a
    /// request may not exceed its limit. Requests missing where a limit is set take the limit,
    /// as the API server defaults them.
    package var resources: ResourceRequirements? {
        object(unsupported: ["claims": "dynamic resource claims are not rendered"]) { r in
            func quantities(_ key: String) -> [String: (quantity: Quantity, field: Field)] {
                guard let f = r[key], let entries = f.entries({ name, q -> (quantity: Quantity, field: Field)? in
                    guard Field.isResourceName(name) else {
                        q.fail("'\(name)' is not a resource name (cpu, memory, ephemeral-storage, hugepages-<size>, or domain/name)")
                        return nil
                    }
                    guard let value = q.quantity else { return nil }
                    if value.isNegative { q.fail("must not be negative (got \(value))"); return nil }
                    return (value, q)
                }) else { return [:] }
                return Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            }
            let requested = quantities("requests")
            let limits = quantities("limits").mapValues(\.quantity)
            var requests = requested.mapValues(\.quantity)
            for (name, limit) in limits {
                if let request = requested[name] {
                    if request.quantity > limit {
                        request.field.fail("request \(request.quantity) is more than the limit \(limit)")
                    }
                } else {
                    requests[name] = limit
                }
            }
            return ResourceRequirements(requests: requests, limits: limits)
        }
    }

    /// A container a spec adds to the pod (sidecars, init containers): a Kubernetes container,
    /// applied as written (the API server checks its fields), with a name of its own in the pod
    /// (`names`: the names taken so far, each with why) and an image.
    package func extraContainer(names: inout [String: String]) -> JSONValue? {
        guard let m = mapping else { return nil }
        var ok = true
        if case .scalar(let n)? = m["name"], n.resolved != .null {
            let field = child("name", .scalar(n))
            if !Names.isDNS1123Label(n.text) {
                field.fail("'\(n.text)' is not a container name (lowercase letters, digits and '-', at most 63)")
                ok = false
            } else if let taken = names[n.text] {
                field.fail(taken)
                ok = false
            } else {
                names[n.text] = "another container of the pod is named '\(n.text)'"
            }
        } else {
            diagnostics.report(m.location, Field.join(path, "name"), "is required")
            ok = false
        }
        if case .scalar(let i)? = m["image"], !i.text.isEmpty, i.resolved != .null {} else {
            diagnostics.report(m.location, Field.join(path, "image"), "is required")
            ok = false
        }
        return ok ? json : nil
    }

    /// A container's `securityContext` (Kubernetes' SecurityContext), checked field by field and
    /// kept as written: the API server stores it without defaults.
    package var securityContext: JSONValue? {
        object(unsupported: ["windowsOptions": "cairn renders Linux pods", "appArmorProfile": "not rendered yet"]) { c -> JSONValue? in
            var out = JSONObject()
            for key in ["privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem", "runAsNonRoot"] {
                if let f = c[key], let b = f.bool { out[key] = .bool(b) }
            }
            for key in ["runAsUser", "runAsGroup"] {
                if let f = c[key], let n = f.int(atLeast: 0, atMost: Int(Int32.max)) { out[key] = .int(n) }
            }
            if let f = c["procMount"], let v = f.string {
                if v == "Default" || v == "Unmasked" { out["procMount"] = .string(v) } else { f.fail("must be Default or Unmasked (got \(v))") }
            }
            if let f = c["capabilities"] {
                let caps = f.object { k -> JSONValue? in
                    var o = JSONObject()
                    for key in ["add", "drop"] {
                        if let l = k[key], let names = l.list({ $0.nonEmptyString }) { o[key] = .array(names.map(JSONValue.string)) }
                    }
                    return .object(o)
                }
                if let caps { out["capabilities"] = caps }
            }
            if let f = c["seccompProfile"] {
                let profile = f.object { p -> JSONValue? in
                    let localhost = p["localhostProfile"]?.nonEmptyString
                    guard let tf = p.required("type"), let t = tf.string else { return nil }
                    guard ["RuntimeDefault", "Localhost", "Unconfined"].contains(t) else {
                        tf.fail("must be RuntimeDefault, Localhost or Unconfined (got \(t))")
                        return nil
                    }
                    var o: JSONObject = ["type": .string(t)]
                    if let localhost { o["localhostProfile"] = .string(localhost) }
                    if t == "Localhost", o["localhostProfile"] == nil { tf.fail("Localhost needs localhostProfile") }
                    return .object(o)
                }
                if let profile { out["seccompProfile"] = profile }
            }
            if let f = c["seLinuxOptions"] {
                let options = f.object { o -> JSONValue? in
                    var out = JSONObject()
                    for key in ["user", "role", "type", "level"] {
                        if let v = o[key], let text = v.string { out[key] = .string(text) }
                    }
                    return .object(out)
                }
                if let options { out["seLinuxOptions"] = options }
            }
            if out["privileged"] == .bool(true), out["allowPrivilegeEscalation"] == .bool(false) {
                c.field.fail("privileged containers always allow privilege escalation: allowPrivilegeEscalation cannot be false")
            }
            return .object(out)
        }
    }

    package static func isResourceName(_ name: String) -> Bool {
        ["cpu", "memory", "ephemeral-storage"].contains(name) || name.hasPrefix("hugepages-")
            || (name.contains("/") && Names.isQualifiedName(name))
    }

    /// `env: [{name, value}]`.
    package var env: [EnvVar]? {
        list { item in
            item.object(unsupported: ["valueFrom": EnvVar.valueFromRefusal]) { e in
                guard let nameField = e.required("name"), let name = nameField.nonEmptyString else { return nil }
                if !Names.isEnvVarName(name) { nameField.fail("'\(name)' is not a valid environment variable name") }
                let value = e["value"].flatMap { $0.scalarText } ?? ""
                return EnvVar(name: name, value: value)
            }
        }
    }

    /// A label-like map: every key a qualified name and every value a valid label value.
    package var labelMap: [String: String]? {
        guard let entries = entries({ key, f -> String? in
            guard Names.isQualifiedName(key) else {
                f.fail("'\(key)' is not a valid label key")
                return nil
            }
            guard let v = f.scalarText else { return nil }
            if !Names.isLabelValue(v) {
                f.fail("'\(v)' is not a valid label value (at most 63 characters: alphanumerics, '-', '_', '.')")
                return nil
            }
            return v
        }) else { return nil }
        return Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    /// An annotation map; keys under `cairn.dev/` are cairn's own.
    package var annotationMap: [String: String]? {
        guard let entries = entries({ key, v -> String? in
            if !Names.isQualifiedName(key) { v.fail("'\(key)' is not a valid annotation key"); return nil }
            if key.hasPrefix("cairn.dev/") { v.fail("annotations under cairn.dev/ are set by cairn"); return nil }
            if key == "kubectl.kubernetes.io/last-applied-configuration" {
                v.fail("is written by kubectl; remove it from the spec file")
                return nil
            }
            return v.scalarText
        }) else { return nil }
        return Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    package var tolerations: [JSONValue]? {
        list { item in
            item.object { t in
                var o = JSONObject()
                for key in ["key", "operator", "value", "effect"] {
                    if let f = t[key], let s = f.string { o[key] = .string(s) }
                }
                if let op = o["operator"]?.stringValue, op != "Exists", op != "Equal" {
                    t["operator"]?.fail("must be Exists or Equal (got \(op))")
                }
                if let effect = o["effect"]?.stringValue, !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(effect) {
                    t["effect"]?.fail("must be NoSchedule, PreferNoSchedule or NoExecute (got \(effect))")
                }
                if let f = t["tolerationSeconds"], let s = f.int { o["tolerationSeconds"] = .int(s) }
                return JSONValue.object(o)
            }
        }
    }

    /// A pod `affinity` block, passed through; its top-level keys are checked.
    package var affinity: JSONValue? {
        object { a in
            var o = JSONObject()
            for key in ["nodeAffinity", "podAffinity", "podAntiAffinity"] {
                if let f = a[key], f.mapping != nil { o[key] = f.json }
            }
            return JSONValue.object(o)
        }
    }
}

/// The upper bounds of the counts a spec may hold, checked at validation with a
/// `file:line:column` error: far above any real cluster, far below where arithmetic, memory or
/// a loop over them could fail. Documented in the README's spec section.
public enum Limits {
    /// StatefulSet replicas of one group (Atomix partition groups, benchmark workers).
    public static let replicas = 1_000
    /// Members of one Raft group (Atomix management group, a partition's members).
    public static let raftMembers = 99
    /// Atomix partitions of one group.
    public static let partitions = 1_024
    /// Aerospike cluster nodes (Aerospike's own limit is 256).
    public static let aerospikeNodes = 256
    /// Durations in seconds (Patroni's ttl, loop_wait, retry_timeout): one day.
    public static let seconds = 86_400
    /// Byte counts (Patroni's maximum_lag_on_failover): 1 TiB.
    public static let bytes = 1 << 40
    /// Entries of one free-form mapping or list (configuration options, parameters, labels,
    /// users, env): every reader and renderer stays linear far below the 1 MiB file limit.
    public static let entries = 4_096
    /// Decimal exponents of quantities (`1e30`): quantities are sizes and CPU counts.
    public static let quantityExponent = 30
}

/// Names for a message a person reads: the first `limit` in full, then how many more (a
/// warning or a commit message about 10,000 clusters names ten of them, not all).
public func abbreviatedList(_ names: [String], limit: Int = 10) -> String {
    guard names.count > limit else { return names.joined(separator: ", ") }
    return names.prefix(limit).joined(separator: ", ") + " and \(names.count - limit) more"
}
