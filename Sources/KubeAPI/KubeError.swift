import JSON

/// An object the API server knows: `Kind/namespace/name`.
public struct ObjectReference: Sendable, Hashable, CustomStringConvertible {
    public var apiVersion: String
    public var kind: String
    public var namespace: String?
    public var name: String

    public init(apiVersion: String, kind: String, namespace: String?, name: String) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    /// The reference of a full object (apiVersion, kind, metadata.namespace, metadata.name).
    public init?(_ object: JSONValue) {
        guard let apiVersion = object["apiVersion"]?.stringValue, let kind = object["kind"]?.stringValue,
              let name = object["metadata", "name"]?.stringValue else { return nil }
        self.init(apiVersion: apiVersion, kind: kind, namespace: object["metadata", "namespace"]?.stringValue, name: name)
    }

    public var description: String { namespace.map { "\(kind)/\($0)/\(name)" } ?? "\(kind)/\(name)" }
}

/// A failed request, typed from the server's `metav1.Status` where there is one, naming the
/// object and the operation: `StatefulSet/db/pg apply failed (Invalid): ...`.
public struct KubeError: Error, Sendable, CustomStringConvertible {
    public enum Reason: String, Sendable, Equatable {
        case notFound = "NotFound"
        case alreadyExists = "AlreadyExists"
        case conflict = "Conflict"
        case invalid = "Invalid"
        case forbidden = "Forbidden"
        case unauthorized = "Unauthorized"
        case timeout = "Timeout"
        case tooManyRequests = "TooManyRequests"
        case badRequest = "BadRequest"
        case serverError = "InternalError"
        case unavailable = "ServiceUnavailable"
        /// 410 Gone: a watch's (or a paged LIST's) resourceVersion is older than the server
        /// keeps; list afresh.
        case expired = "Expired"
        /// The connection failed: refused, reset, timed out.
        case transport = "Transport"
        /// The server's certificate was not trusted, or TLS failed.
        case tls = "TLS"
        case configuration = "Configuration"
        /// The caller's task was cancelled (a shutdown) before the request could be retried.
        case cancelled = "Cancelled"
        case unexpected = "Unexpected"
    }

    /// One field of an Invalid object.
    public struct Cause: Sendable, Equatable, CustomStringConvertible {
        public var field: String
        public var message: String
        public var description: String { field.isEmpty ? message : "\(field): \(message)" }
    }

    public var reason: Reason
    public var code: Int
    public var operation: String
    public var object: String
    public var message: String
    public var causes: [Cause]

    public init(reason: Reason, code: Int = 0, operation: String, object: String, message: String, causes: [Cause] = []) {
        self.reason = reason
        self.code = code
        self.operation = operation
        self.object = object
        self.message = message
        self.causes = causes
    }

    public var description: String {
        var text = "\(object) \(operation) failed (\(reason.rawValue)): \(message)"
        if !causes.isEmpty, !causes.allSatisfy({ message.contains($0.message) }) {
            text += " [" + causes.map(\.description).joined(separator: "; ") + "]"
        }
        return text
    }

    /// From an error response: its `metav1.Status` when the body is one, else the HTTP status.
    static func from(status code: Int, body: JSONValue?, operation: String, object: String) -> KubeError {
        let statusReason = body?["reason"]?.stringValue
        let message = body?["message"]?.stringValue ?? "HTTP \(code)"
        let causes = (body?["details", "causes"]?.arrayValue ?? []).map {
            Cause(field: $0["field"]?.stringValue ?? "", message: $0["message"]?.stringValue ?? $0["reason"]?.stringValue ?? "")
        }
        let reason: Reason
        switch (statusReason, code) {
        case ("NotFound", _), (_, 404): reason = .notFound
        case ("AlreadyExists", _): reason = .alreadyExists
        case ("Conflict", _), (_, 409): reason = .conflict
        case ("Invalid", _), (_, 422): reason = .invalid
        case ("Forbidden", _), (_, 403): reason = .forbidden
        case ("Unauthorized", _), (_, 401): reason = .unauthorized
        case ("Timeout", _), ("ServerTimeout", _), (_, 504): reason = .timeout
        case ("TooManyRequests", _), (_, 429): reason = .tooManyRequests
        case ("BadRequest", _), (_, 400), (_, 415): reason = .badRequest
        case ("ServiceUnavailable", _), (_, 503): reason = .unavailable
        case ("Expired", _), ("Gone", _), (_, 410): reason = .expired
        case (_, 500...599): reason = .serverError
        default: reason = .unexpected
        }
        return KubeError(reason: reason, code: code, operation: operation, object: object, message: message, causes: causes)
    }
}
