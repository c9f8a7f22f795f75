public import ClusterSpecs

/// When an object is applied relative to the others of a pass: what pods read first, workloads
/// next, externally reachable load balancers last.
public enum ApplyStage: Int, Sendable, Hashable, Comparable, CaseIterable {
    case access = 0          // ServiceAccount, Role, RoleBinding
    case secrets = 1
    case configuration = 2   // ConfigMaps
    case services = 3        // in-cluster Services and PodDisruptionBudgets
    case workloads = 4       // StatefulSets
    case loadBalancers = 5   // Services of type LoadBalancer

    public static func < (lhs: ApplyStage, rhs: ApplyStage) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One Kubernetes object a cluster needs, exactly as cairn applies it.
public struct RenderedObject: Sendable, Hashable {
    public let apiVersion: String
    public let kind: String
    public let namespace: String
    public let name: String
    public let stage: ApplyStage
    /// Created when missing and never updated afterwards (generated Secrets).
    public let createOnly: Bool
    /// The whole object, in the form the API server stores it.
    public var body: JSONValue

    public init(body: JSONValue, stage: ApplyStage, createOnly: Bool = false) {
        self.body = body
        self.apiVersion = body["apiVersion"]?.stringValue ?? ""
        self.kind = body["kind"]?.stringValue ?? ""
        self.namespace = body["metadata", "namespace"]?.stringValue ?? ""
        self.name = body["metadata", "name"]?.stringValue ?? ""
        self.stage = stage
        self.createOnly = createOnly
    }

    /// `Kind/namespace/name`, as cairn names objects in messages.
    public var reference: String { "\(kind)/\(namespace)/\(name)" }
}

/// Choices that depend on the target cluster rather than on the spec.
public struct RenderOptions: Sendable, Hashable {
    /// `policy/v1` (Kubernetes 1.21 and later, the only one from 1.25) or `policy/v1beta1`.
    /// Chosen from discovery when a cluster is at hand.
    public var podDisruptionBudgetAPIVersion: String

    public init(podDisruptionBudgetAPIVersion: String = "policy/v1") {
        self.podDisruptionBudgetAPIVersion = podDisruptionBudgetAPIVersion
    }
}

/// The annotation on every pod template that changes whenever the configuration its pods read
/// changes, so that a configuration change rolls the pods.
public enum ConfigHash {
    public static let annotation = "cairn.dev/config-hash"
}
