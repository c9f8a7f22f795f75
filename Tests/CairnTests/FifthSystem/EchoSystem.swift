import ClusterSpecs
import Render

/// A fifth system, made for the test that adding one takes its folder and a registry line and
/// nothing else: a cluster of echo servers that read a message from a ConfigMap, rolled by cairn
/// one pod per pass (`setBySet`).
struct EchoSpec: SystemSpec {
    var replicas: Int
    var message: String
}

enum EchoSystem: ClusterSystem {
    static let apiVersion = "test.cairn.dev/v1"
    static let kind = "Echo"
    static let objectKinds: [(apiVersion: String, kind: String)] = [("v1", "ConfigMap"), ("apps/v1", "StatefulSet")]
    static let rollout = RolloutPolicy.setBySet

    static func decode(_ spec: Field, metadata: ClusterMetadata?) -> EchoSpec? {
        spec.object { o -> EchoSpec? in
            let replicas = o.required("replicas")?.int(atLeast: 1, atMost: 5)
            let message = o.required("message")?.string
            guard let replicas, let message else { return nil }
            return EchoSpec(replicas: replicas, message: message)
        }
    }

    static func render(_ spec: EchoSpec, _ metadata: ClusterMetadata, options: RenderOptions) -> [RenderedObject] {
        let name = metadata.name
        let labels: JSONValue = ["app.kubernetes.io/instance": .string(name), "app.kubernetes.io/managed-by": "cairn",
                                 "app.kubernetes.io/name": "echo", "cairn.dev/cluster": .string(name)]
        let selector: JSONValue = ["app.kubernetes.io/instance": .string(name), "app.kubernetes.io/name": "echo"]
        let meta: (String) -> JSONValue = { ["name": .string($0), "namespace": .string(metadata.namespace), "labels": labels] }
        let configMap: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("\(name)-message"),
                                    "data": ["message": .string(spec.message)]]
        let set: JSONValue = [
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta(name),
            "spec": [
                "replicas": .int(spec.replicas), "serviceName": .string(name), "selector": ["matchLabels": selector],
                "updateStrategy": ["type": "OnDelete"],
                "template": [
                    "metadata": ["labels": selector],
                    "spec": [
                        "containers": [["name": "echo", "image": "hashicorp/http-echo:1.0",
                                        "volumeMounts": [["name": "message", "mountPath": "/etc/echo"]]]],
                        "volumes": [["name": "message", "configMap": ["name": .string("\(name)-message")]]],
                    ],
                ],
            ],
        ]
        return [RenderedObject(body: configMap, stage: .configuration), RenderedObject(body: set, stage: .workloads)]
    }
}
