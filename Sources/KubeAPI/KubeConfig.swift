import JSON
import SpecYAML
import Foundation

/// A problem in a kubeconfig or in the in-cluster configuration, naming the file and the field.
public struct KubeConfigError: Error, Sendable, CustomStringConvertible {
    public let file: String
    public let field: String
    public let message: String

    public var description: String { field.isEmpty ? "\(file): \(message)" : "\(file): \(field): \(message)" }
}

/// How requests authenticate.
public enum KubeAuth: Sendable {
    case none
    case token(String)
    /// A token read from a file, re-read when it changes (rotated service-account tokens).
    case tokenFile(String)
    /// A `client.authentication.k8s.io` exec credential plugin (EKS, GKE, AKS).
    case exec(ExecConfig)
}

public struct ExecConfig: Sendable {
    public var command: String
    public var args: [String]
    public var env: [(name: String, value: String)]
    public var apiVersion: String

    public init(command: String, args: [String], env: [(name: String, value: String)], apiVersion: String) {
        self.command = command
        self.args = args
        self.env = env
        self.apiVersion = apiVersion
    }
}

/// Where and how to reach one API server: what kubectl's configuration resolves to.
public struct KubeConfig: Sendable {
    public var server: String
    /// PEM of the CAs trusted for the server; nil trusts the system's CAs.
    public var certificateAuthority: [UInt8]?
    /// Only when the kubeconfig itself says `insecure-skip-tls-verify: true`.
    public var insecureSkipTLSVerify: Bool
    public var clientCertificate: [UInt8]?
    public var clientKey: [UInt8]?
    public var auth: KubeAuth
    /// The namespace of the context, if it names one.
    public var namespace: String?
    /// `file (context NAME)`, for messages.
    public var source: String

    public init(server: String, certificateAuthority: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false,
                clientCertificate: [UInt8]? = nil, clientKey: [UInt8]? = nil, auth: KubeAuth = .none,
                namespace: String? = nil, source: String = "") {
        self.server = server
        self.certificateAuthority = certificateAuthority
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
        self.auth = auth
        self.namespace = namespace
        self.source = source
    }

    /// The configuration kubectl would use: `path` if given, else the files of `KUBECONFIG`
    /// (merged: the first file to define a name wins, as in kubectl), else `~/.kube/config`;
    /// the named context or the current one.
    ///
    /// - Throws: `KubeConfigError` naming the file and field that is missing or wrong.
    /// A parsed YAML node as the plain values the loader reads (`[String: Any]`, `[Any]`,
    /// String, Int, Double, Bool; null as NSNull).
    static func plain(_ node: SpecNode) -> Any {
        switch node {
        case .scalar(let s):
            switch s.resolved {
            case .null: return NSNull()
            case .bool(let b): return b
            case .int(let i): return i
            case .double(let d): return d
            case .string(let t): return t
            }
        case .sequence(let q):
            return q.items.map(plain)
        case .mapping(let m):
            return Dictionary(m.entries.map { ($0.key.text, plain($0.value)) }, uniquingKeysWith: { first, _ in first })
        }
    }

    public static func load(path: String? = nil, context: String? = nil,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(KubeConfigError) -> KubeConfig {
        let files: [String]
        if let path {
            files = [path]
        } else if let list = environment["KUBECONFIG"], !list.isEmpty {
            files = list.split(separator: ":").map(String.init)
        } else {
            files = [(environment["HOME"] ?? NSHomeDirectory()) + "/.kube/config"]
        }
        var clusters: [String: (file: String, value: [String: Any])] = [:]
        var users: [String: (file: String, value: [String: Any])] = [:]
        var contexts: [String: (file: String, value: [String: Any])] = [:]
        var current: String?
        var readAny = false
        for file in files {
            guard FileManager.default.fileExists(atPath: file) else {
                if path != nil { throw KubeConfigError(file: file, field: "", message: "no such file") }
                continue
            }
            readAny = true
            // An empty file is said so before reading: Foundation's file reading leaks a buffer on
            // an empty file (found by the kubeconfig fuzz target). Attributes that cannot be read
            // leave it to the read below to say why.
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? nil
            if size == 0 { throw KubeConfigError(file: file, field: "", message: "is empty") }
            guard let data = FileManager.default.contents(atPath: file) else {
                throw KubeConfigError(file: file, field: "", message: "cannot read")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw KubeConfigError(file: file, field: "", message: "not UTF-8 text")
            }
            // The spec files' YAML reader, not a general one: it refuses anchors and aliases (no
            // "billion laughs"), nesting deeper than 32 levels, several documents and files over
            // 1 MiB, and resolves scalars by YAML 1.2's core schema without overflow (Yams' YAML
            // 1.1 sexagesimals trapped on `999999999933795144:3`, found by the kubeconfig fuzz target).
            let parsed: SpecNode
            do {
                parsed = try SpecFileParser.parse(text, file: file)
            } catch {
                throw KubeConfigError(file: file, field: "", message: "refused: \(error.message) (at \(error.location))")
            }
            guard let root = Self.plain(parsed) as? [String: Any] else {
                throw KubeConfigError(file: file, field: "", message: "not a kubeconfig (expected a mapping)")
            }
            func named(_ key: String, _ inner: String, into map: inout [String: (file: String, value: [String: Any])]) throws(KubeConfigError) {
                guard let list = root[key] else { return }
                guard let items = list as? [[String: Any]] else {
                    throw KubeConfigError(file: file, field: key, message: "must be a list")
                }
                for (i, item) in items.enumerated() {
                    guard let name = item["name"] as? String else {
                        throw KubeConfigError(file: file, field: "\(key)[\(i)].name", message: "is required")
                    }
                    if map[name] == nil { map[name] = (file, item[inner] as? [String: Any] ?? [:]) }
                }
            }
            try named("clusters", "cluster", into: &clusters)
            try named("users", "user", into: &users)
            try named("contexts", "context", into: &contexts)
            if current == nil, let c = root["current-context"] as? String, !c.isEmpty { current = c }
        }
        let where_ = files.joined(separator: ":")
        guard readAny else {
            throw KubeConfigError(file: where_, field: "", message: "no kubeconfig found; set KUBECONFIG or pass --kubeconfig")
        }
        guard let contextName = context ?? current else {
            throw KubeConfigError(file: where_, field: "current-context", message: "is not set; pass --context")
        }
        guard let ctx = contexts[contextName] else {
            throw KubeConfigError(file: where_, field: "contexts",
                                  message: "no context named '\(contextName)' (have: \(contexts.keys.sorted().joined(separator: ", ")))")
        }
        guard let clusterName = ctx.value["cluster"] as? String, let cluster = clusters[clusterName] else {
            throw KubeConfigError(file: ctx.file, field: "contexts[\(contextName)].cluster", message: "names no cluster defined in \(where_)")
        }
        let c = cluster.value
        guard let server = c["server"] as? String, server.hasPrefix("https://") || server.hasPrefix("http://") else {
            throw KubeConfigError(file: cluster.file, field: "clusters[\(clusterName)].server", message: "must be an https:// URL")
        }
        var config = KubeConfig(server: server.hasSuffix("/") ? String(server.dropLast()) : server,
                                source: "\(ctx.file) (context \(contextName))")
        config.namespace = ctx.value["namespace"] as? String
        let clusterField = "clusters[\(clusterName)]"
        config.certificateAuthority = try dataOrFile(c, "certificate-authority-data", "certificate-authority",
                                                     file: cluster.file, field: clusterField)
        config.insecureSkipTLSVerify = (c["insecure-skip-tls-verify"] as? Bool) ?? false

        if let userName = ctx.value["user"] as? String, !userName.isEmpty {
            guard let user = users[userName] else {
                throw KubeConfigError(file: ctx.file, field: "contexts[\(contextName)].user", message: "names no user '\(userName)' defined in \(where_)")
            }
            let u = user.value
            let userField = "users[\(userName)]"
            config.clientCertificate = try dataOrFile(u, "client-certificate-data", "client-certificate", file: user.file, field: userField)
            config.clientKey = try dataOrFile(u, "client-key-data", "client-key", file: user.file, field: userField)
            if (config.clientCertificate == nil) != (config.clientKey == nil) {
                throw KubeConfigError(file: user.file, field: userField, message: "a client certificate needs its key, and a key its certificate")
            }
            if let token = u["token"] as? String, !token.isEmpty {
                config.auth = .token(token)
            } else if let tokenFile = u["tokenFile"] as? String {
                config.auth = .tokenFile(resolve(tokenFile, relativeTo: user.file))
            } else if let exec = u["exec"] as? [String: Any] {
                guard let command = exec["command"] as? String else {
                    throw KubeConfigError(file: user.file, field: "\(userField).exec.command", message: "is required")
                }
                let apiVersion = exec["apiVersion"] as? String ?? "client.authentication.k8s.io/v1beta1"
                guard apiVersion.hasPrefix("client.authentication.k8s.io/") else {
                    throw KubeConfigError(file: user.file, field: "\(userField).exec.apiVersion",
                                          message: "'\(apiVersion)' is not a client.authentication.k8s.io version")
                }
                let env = (exec["env"] as? [[String: Any]] ?? []).compactMap { e -> (String, String)? in
                    guard let n = e["name"] as? String, let v = e["value"] as? String else { return nil }
                    return (n, v)
                }
                config.auth = .exec(ExecConfig(command: command, args: exec["args"] as? [String] ?? [],
                                               env: env.map { (name: $0.0, value: $0.1) }, apiVersion: apiVersion))
            } else if u["auth-provider"] != nil {
                throw KubeConfigError(file: user.file, field: "\(userField).auth-provider",
                                      message: "auth-provider plugins were removed from Kubernetes; use an exec plugin")
            }
        }
        return config
    }

    /// The configuration of a pod: its service-account token (re-read when it rotates) and CA,
    /// and the API server from `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`.
    public static func inCluster(environment: [String: String] = ProcessInfo.processInfo.environment,
                                 directory: String = "/var/run/secrets/kubernetes.io/serviceaccount") throws(KubeConfigError) -> KubeConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"] else {
            throw KubeConfigError(file: "environment", field: "KUBERNETES_SERVICE_HOST", message: "is not set: not running in a pod")
        }
        let token = directory + "/token"
        guard FileManager.default.fileExists(atPath: token) else {
            throw KubeConfigError(file: token, field: "", message: "no service-account token (is automountServiceAccountToken off?)")
        }
        let ca = try readFile(directory + "/ca.crt", field: "")
        // The namespace file is optional (it only sets the default namespace): unreadable is absent.
        let namespace = (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubeConfig(server: "https://\(hostPart):\(port)", certificateAuthority: ca, auth: .tokenFile(token),
                          namespace: namespace, source: "in-cluster service account")
    }

    private static func resolve(_ path: String, relativeTo file: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(path).path
    }

    private static func readFile(_ path: String, field: String) throws(KubeConfigError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubeConfigError(file: path, field: field, message: "cannot read the file")
        }
        return Array(data)
    }

    private static func dataOrFile(_ map: [String: Any], _ dataKey: String, _ fileKey: String,
                                   file: String, field: String) throws(KubeConfigError) -> [UInt8]? {
        if let b64 = map[dataKey] as? String {
            guard let data = Data(base64Encoded: b64) else {
                throw KubeConfigError(file: file, field: "\(field).\(dataKey)", message: "is not base64")
            }
            return Array(data)
        }
        if let path = map[fileKey] as? String {
            let full = resolve(path, relativeTo: file)
            guard let data = FileManager.default.contents(atPath: full) else {
                throw KubeConfigError(file: file, field: "\(field).\(fileKey)", message: "cannot read \(full)")
            }
            return Array(data)
        }
        return nil
    }
}
