import ClusterSpecs
import KubeAPI

/// Makes sure a cluster's namespace exists before its objects are created, once per namespace
/// and pass, whatever number of clusters share it. Only passes that create something ask: a
/// steady fleet costs no request here.
///
/// A namespace cairn creates is labelled `app.kubernetes.io/managed-by: cairn` and
/// `cairn.dev/created-namespace: "true"`; cairn never deletes a namespace (it may hold volumes).
actor NamespaceGate {
    enum Outcome: Sendable {
        case exists
        /// Created now (or, in a dry run, would be): reported once, on the first cluster that asked.
        case created(ObjectResult)
        case failed(ObjectResult)
    }

    static let createdLabel = "cairn.dev/created-namespace"

    let client: KubeClient
    let options: Reconciler.Options
    private var answers: [String: Task<Outcome, Never>] = [:]

    init(client: KubeClient, options: Reconciler.Options) {
        self.client = client
        self.options = options
    }

    /// - Parameter document: the cluster's Namespace document, whose labels and annotations a
    ///   namespace created here gets (the first asker's, when several clusters share it).
    func ensure(_ namespace: String, for cluster: String, document: NamespaceDocument? = nil) async -> Outcome {
        if let pending = answers[namespace] {
            // Another cluster of this namespace asked first: it carries the report.
            switch await pending.value {
            case .created: return .exists
            case let other: return other
            }
        }
        let task = Task { await self.check(namespace, cluster: cluster, document: document) }
        answers[namespace] = task
        return await task.value
    }

    private func check(_ namespace: String, cluster: String, document: NamespaceDocument?) async -> Outcome {
        let ref = ObjectReference(apiVersion: "v1", kind: "Namespace", namespace: nil, name: namespace)
        let reference = "Namespace/\(namespace)"
        do {
            _ = try await client.get(ref)
            return .exists
        } catch where error.reason == .notFound {
            // Created below.
        } catch {
            // No right to read namespaces: the objects' own requests will say whether it exists.
            if error.reason == .forbidden { return .exists }
            return .failed(ObjectResult(reference: reference, action: .failed, detail: "reading it: \(error)", cluster: cluster))
        }
        guard options.createNamespace else {
            return .failed(ObjectResult(reference: reference, action: .failed,
                                        detail: "namespace \(namespace) does not exist, "
                                            + "and cairn creates none with --no-create-namespace (CAIRN_CREATE_NAMESPACE=false)", cluster: cluster))
        }
        var labels = document?.labels ?? [:]
        labels["app.kubernetes.io/managed-by"] = "cairn"
        labels[Self.createdLabel] = "true"
        var metadata: JSONObject = ["name": .string(namespace), "labels": .sortedStrings(Array(labels))]
        if let annotations = document?.annotations, !annotations.isEmpty { metadata["annotations"] = .sortedStrings(Array(annotations)) }
        let body: JSONValue = ["apiVersion": "v1", "kind": "Namespace", "metadata": .object(metadata)]
        if options.dryRun {
            return .created(ObjectResult(reference: reference, action: .created, detail: "dry run", cluster: cluster))
        }
        do {
            // A plain create: RBAC then needs `create` on namespaces, not `patch`.
            _ = try await client.create(body)
        } catch where error.reason == .alreadyExists {
            return .exists
        } catch {
            return .failed(ObjectResult(reference: reference, action: .failed, detail: "creating it: \(error)", cluster: cluster))
        }
        return .created(ObjectResult(reference: reference, action: .created, detail: nil, cluster: cluster))
    }
}
