import Synchronization
import AsyncHTTPClient
import JSON
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// A Kubernetes API client: discovery, GET, LIST (label selectors, pagination), server-side
/// apply and its dry-run, DELETE, status PATCH. Requests reuse connections, run at most
/// `concurrency` at a time, and are retried with backoff on 429, 5xx and connection errors
/// (honouring Retry-After), a bounded number of times.
public final class KubeClient: Sendable {
    public let config: KubeConfig
    private let http: HTTPClient
    /// Watches' connections: long-lived, idle for minutes, outside `concurrency` (Watch.swift).
    let watchHTTP: HTTPClient
    private let limiter: ConcurrencyLimiter
    let tokens: TokenSource
    let discovery = DiscoveryCache()
    let counts = Mutex<[String: Int]>([:])
    /// Attempts per request, the first included.
    public let maxAttempts: Int
    public let requestTimeout: TimeAmount

    /// - Throws: `KubeError` (`.configuration` or `.tls`) when the TLS material cannot be loaded.
    /// - Parameter idleConnections: how long a connection with no request is kept open. A
    ///   connection keeps the buffers its largest response grew (a LIST page: hundreds of KB),
    ///   so the daemon, idle between passes, closes them sooner.
    public init(config: KubeConfig, concurrency: Int = 8, maxAttempts: Int = 5,
                requestTimeout: TimeAmount = .seconds(30), idleConnections: TimeAmount = .seconds(60)) throws(KubeError) {
        self.config = config
        self.maxAttempts = max(1, maxAttempts)
        self.requestTimeout = requestTimeout
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            if let ca = config.certificateAuthority {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            }
            if let cert = config.clientCertificate, let key = config.clientKey {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
        } catch {
            throw KubeError(reason: .configuration, operation: "load TLS material", object: config.source, message: "\(error)")
        }
        if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: requestTimeout)
        configuration.connectionPool = .init(idleTimeout: idleConnections, concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, concurrency))
        configuration.httpVersion = .http1Only
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        var watchConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
        // No read timeout: a watch on a quiet kind hears nothing for minutes. Each watch has a
        // deadline of its own instead (`watch(timeoutSeconds:)`).
        watchConfiguration.timeout = .init(connect: .seconds(5), read: nil)
        watchConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 4096)
        watchConfiguration.httpVersion = .http1Only
        watchHTTP = HTTPClient(eventLoopGroupProvider: .singleton, configuration: watchConfiguration)
        limiter = ConcurrencyLimiter(limit: max(1, concurrency))
        tokens = TokenSource(auth: config.auth)
    }

    /// Requests sent so far by operation (`list`, `get`, `apply`, `apply (dry-run)`, `delete`,
    /// `discover`, ...), retries included: what benchmarks and metrics report.
    public var requestCounts: [String: Int] { counts.withLock { $0 } }

    /// Closes the connections. Call once, when done.
    public func shutdown() async {
        // Fails only when already shut down: nothing is left to close then.
        try? await http.shutdown()
        try? await watchHTTP.shutdown()
    }

    // MARK: - Operations

    /// `major.minor` and `gitVersion` of the server.
    public func serverVersion() async throws(KubeError) -> (major: Int, minor: Int, gitVersion: String) {
        let v = try await send(.GET, "/version", operation: "get version", object: "server")
        let digits: (String?) -> Int = { Int(($0 ?? "").prefix { $0.isNumber }) ?? 0 }
        return (digits(v["major"]?.stringValue), digits(v["minor"]?.stringValue), v["gitVersion"]?.stringValue ?? "")
    }

    public func get(_ ref: ObjectReference) async throws(KubeError) -> JSONValue {
        let path = try await objectPath(ref)
        return try await send(.GET, path, operation: "get", object: ref.description)
    }

    /// Every object of a kind (in one namespace, or all when nil) matching the label selector,
    /// fetched in pages of `limit` with the continue token.
    ///
    /// - Parameter transform: Applied to each item as its page arrives (nil drops it), so that a
    ///   caller keeping only some fields never holds every full object at once.
    public func list(apiVersion: String, kind: String, namespace: String?, labelSelector: String? = nil,
                     limit: Int = 500, droppingFieldsOf manager: String? = nil, shape: JSONValue.ItemShape? = nil,
                     transform: (@Sendable (JSONValue) -> JSONValue?)? = nil,
                     shapeWhenRead: (@Sendable () async -> JSONValue.ItemShape?)? = nil) async throws(KubeError) -> [JSONValue] {
        try await listVersioned(apiVersion: apiVersion, kind: kind, namespace: namespace, labelSelector: labelSelector,
                                limit: limit, droppingFieldsOf: manager, shape: shape, transform: transform, shapeWhenRead: shapeWhenRead).items
    }

    /// `list`, with the resourceVersion the list is consistent at (its first page's): where a
    /// watch of the same objects starts (`watch(resourceVersion:)`).
    /// - Parameter manager: the objects' managedFields entries of this field manager come
    ///   without their `fieldsV1` (`JSONValue.parse(_:droppingFieldsOf:)`): for a caller that
    ///   drops them anyway (a pass's `slim`), they are never built.
    /// - Parameter shape: which fields of each object are built, and what is kept of it
    ///   (`JSONValue.ItemShape`; its `finish` gets the item without apiVersion and kind, as a
    ///   LIST has it, and `transform` is not used); nil: all, given their apiVersion and kind.
    /// - Parameter shapeWhenRead: the shape, when `shape` is nil, asked for once a page has
    ///   arrived and before it is read (what a caller still works out while the server lists:
    ///   `Reconciler.Prefetch`); it must give the same answer every time. The wait holds no
    ///   place among the client's requests in flight.
    public func listVersioned(apiVersion: String, kind: String, namespace: String?, labelSelector: String? = nil, limit: Int = 500,
                              droppingFieldsOf manager: String? = nil, shape: JSONValue.ItemShape? = nil,
                              transform: (@Sendable (JSONValue) -> JSONValue?)? = nil,
                              shapeWhenRead: (@Sendable () async -> JSONValue.ItemShape?)? = nil) async throws(KubeError) -> (items: [JSONValue], resourceVersion: String) {
        let resource = try await discovery.resource(apiVersion: apiVersion, kind: kind, client: self)
        var base = groupPath(apiVersion)
        if resource.namespaced, let namespace { base += "/namespaces/\(namespace)" }
        base += "/\(resource.plural)"
        var items: [JSONValue] = []
        var version: String?
        let what = namespace.map { "\(kind) in \($0)" } ?? "\(kind) in all namespaces"
        let path = base
        @Sendable func fetch(_ token: String?) async throws(KubeError) -> JSONValue {
            var query = [("limit", String(limit))]
            if let labelSelector { query.append(("labelSelector", labelSelector)) }
            if let token { query.append(("continue", token)) }
            return try await send(.GET, path, query: query, operation: "list", object: what, droppingFieldsOf: manager, items: shape,
                                  itemsWhenRead: shape == nil ? shapeWhenRead : nil)
        }
        var page = try await fetch(nil)
        // What each page was read with (the answer is the same for every page).
        var readWith = shape
        if readWith == nil, let shapeWhenRead { readWith = await shapeWhenRead() }
        while true {
            // The next page is asked for before this one's items are read (and transformed):
            // the server works on it meanwhile, so a kind of many pages costs the server's time
            // and not, on top, the reading of every page in turn. Two pages are held at most.
            let token = page["metadata", "continue"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
            let next = token.map { token in Task { () async throws(KubeError) -> JSONValue in try await fetch(token) } }
            let pageItems = page["items"]?.arrayValue ?? []
            // A server that ignores `limit` would make cairn hold everything at once: memory for
            // a LIST is bounded by the page size, or the LIST fails.
            guard pageItems.count <= limit else {
                next?.cancel()
                throw KubeError(reason: .unexpected, operation: "list", object: what,
                                message: "\(config.server) returned \(pageItems.count) objects in a page of at most \(limit); refused")
            }
            for item in pageItems {
                // Items of a list carry no apiVersion/kind; give them theirs.
                guard var o = item.objectValue else { continue }
                if readWith != nil {
                    items.append(item)
                    continue
                }
                var full = JSONObject([(key: "apiVersion", value: .string(apiVersion)), (key: "kind", value: .string(kind))])
                for (k, v) in o.entries where k != "apiVersion" && k != "kind" { full[k] = v }
                o = full
                if let transform {
                    if let kept = transform(.object(o)) { items.append(kept) }
                } else {
                    items.append(.object(o))
                }
            }
            if version == nil { version = page["metadata", "resourceVersion"]?.stringValue }
            guard let next else { break }
            page = .null
            do {
                page = try await withTaskCancellationHandler { try await next.value } onCancel: { next.cancel() }
            } catch let error as KubeError {
                throw error
            } catch {
                throw KubeError(reason: .transport, operation: "list", object: what, message: "\(error)")
            }
        }
        return (items, version ?? "")
    }

    /// Server-side apply (`application/apply-patch+yaml`) with a field manager; with `dryRun`
    /// the server computes the result and stores nothing.
    ///
    /// - Returns: The object as the server has it (or would have it) afterwards.
    public func apply(_ object: JSONValue, fieldManager: String, force: Bool = true, dryRun: Bool = false) async throws(KubeError) -> JSONValue {
        guard let ref = ObjectReference(object) else {
            throw KubeError(reason: .badRequest, operation: "apply", object: "object", message: "has no apiVersion, kind or metadata.name")
        }
        return try await apply(encoded: object.canonicalJSONBytes(), reference: ref, fieldManager: fieldManager,
                               force: force, dryRun: dryRun, reading: true)
    }

    /// Server-side apply of an object already encoded as JSON (a rendered object's own bytes,
    /// not parsed and written again), its response not read: what a pass applies and drops.
    /// At 10,000 objects a first pass would otherwise parse 10,000 whole objects it never
    /// looks at, and hold the ones waiting for their task to resume.
    public func apply(encoded body: [UInt8], reference ref: ObjectReference, fieldManager: String, force: Bool = true) async throws(KubeError) {
        _ = try await apply(encoded: body, reference: ref, fieldManager: fieldManager, force: force, dryRun: false, reading: false)
    }

    private func apply(encoded body: [UInt8], reference ref: ObjectReference, fieldManager: String, force: Bool, dryRun: Bool,
                       reading: Bool) async throws(KubeError) -> JSONValue {
        let path = try await objectPath(ref)
        var query = [("fieldManager", fieldManager)]
        if force { query.append(("force", "true")) }
        if dryRun { query.append(("dryRun", "All")) }
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await send(.PATCH, path, query: query, body: body, contentType: "application/apply-patch+yaml",
                                      operation: dryRun ? "apply (dry-run)" : "apply", object: ref.description, reading: reading)
            } catch {
                // Apply is idempotent: when someone created the object between the server's
                // lookup and its create (AlreadyExists), or updated it meanwhile (Conflict), the
                // same apply again patches the object as it now is.
                guard error.reason == .alreadyExists || (force && error.reason == .conflict), attempt < maxAttempts else { throw error }
            }
        }
    }

    public enum Propagation: String, Sendable {
        case foreground = "Foreground"
        case background = "Background"
        case orphan = "Orphan"
    }

    /// Deletes an object; with preconditions, only the one with that uid / resourceVersion.
    public func delete(_ ref: ObjectReference, propagation: Propagation = .background, uid: String? = nil,
                       resourceVersion: String? = nil) async throws(KubeError) {
        let path = try await objectPath(ref)
        var options: JSONObject = ["apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": .string(propagation.rawValue)]
        var preconditions = JSONObject()
        if let uid { preconditions["uid"] = .string(uid) }
        if let resourceVersion { preconditions["resourceVersion"] = .string(resourceVersion) }
        if !preconditions.isEmpty { options["preconditions"] = .object(preconditions) }
        _ = try await send(.DELETE, path, body: JSONValue.object(options).canonicalJSONBytes(),
                           contentType: "application/json", operation: "delete", object: ref.description)
    }

    /// Creates an object (POST); `AlreadyExists` when someone has it first. For objects that
    /// need exclusive creation (a Lease, a generated Secret that must never be overwritten);
    /// everything else goes through `apply`.
    public func create(_ object: JSONValue, fieldManager: String? = nil, dryRun: Bool = false) async throws(KubeError) -> JSONValue {
        guard let ref = ObjectReference(object) else {
            throw KubeError(reason: .badRequest, operation: "create", object: "object", message: "has no apiVersion, kind or metadata.name")
        }
        let path = try await objectPath(ref)
        let collection = String(path[..<path.lastIndex(of: "/")!])
        var query: [(String, String)] = []
        if let fieldManager { query.append(("fieldManager", fieldManager)) }
        if dryRun { query.append(("dryRun", "All")) }
        return try await send(.POST, collection, query: query, body: object.canonicalJSONBytes(), contentType: "application/json",
                              operation: dryRun ? "create (dry-run)" : "create", object: ref.description)
    }

    /// Replaces an object (PUT). With `metadata.resourceVersion` set, only the version read:
    /// `Conflict` when it changed meanwhile (optimistic concurrency, as leader election needs).
    public func update(_ object: JSONValue) async throws(KubeError) -> JSONValue {
        guard let ref = ObjectReference(object) else {
            throw KubeError(reason: .badRequest, operation: "update", object: "object", message: "has no apiVersion, kind or metadata.name")
        }
        return try await send(.PUT, try await objectPath(ref), body: object.canonicalJSONBytes(), contentType: "application/json",
                              operation: "update", object: ref.description)
    }

    /// A JSON merge patch of an object (`metadata.uid` in it is a precondition: the patch fails
    /// on an object of that name made again since).
    public func patch(_ ref: ObjectReference, _ patch: JSONValue) async throws(KubeError) -> JSONValue {
        try await send(.PATCH, try await objectPath(ref), body: patch.canonicalJSONBytes(),
                       contentType: "application/merge-patch+json", operation: "patch", object: ref.description)
    }

    /// A JSON merge patch of the status subresource (what a kubelet does for pods).
    public func patchStatus(_ ref: ObjectReference, _ patch: JSONValue) async throws(KubeError) -> JSONValue {
        let path = try await objectPath(ref) + "/status"
        return try await send(.PATCH, path, body: patch.canonicalJSONBytes(),
                              contentType: "application/merge-patch+json", operation: "patch status", object: ref.description)
    }

    /// Whether the server serves `group/version` (e.g. `policy/v1`), from discovery.
    public func serves(_ groupVersion: String) async throws(KubeError) -> Bool {
        try await discovery.groupVersions(client: self).contains(groupVersion)
    }

    /// Whether the server serves `kind` in `apiVersion` (a CustomResourceDefinition installed).
    public func serves(_ apiVersion: String, kind: String) async throws(KubeError) -> Bool {
        guard try await serves(apiVersion) else { return false }
        do {
            _ = try await discovery.resource(apiVersion: apiVersion, kind: kind, client: self)
            return true
        } catch {
            if error.reason == .notFound { return false }
            throw error
        }
    }

    /// Forgets what discovery learnt: the next request asks again (a full pass does, so that a
    /// CustomResourceDefinition installed meanwhile is seen).
    /// - Parameter age: keep what was learnt less than this long ago.
    public func forgetDiscovery(olderThan age: Duration = .zero) async {
        await discovery.forget(olderThan: age)
    }

    // MARK: - Paths

    /// The collection path of a kind (`/apis/apps/v1/namespaces/db/statefulsets`).
    func collectionPath(apiVersion: String, kind: String, namespace: String?) async throws(KubeError) -> String {
        let resource = try await discovery.resource(apiVersion: apiVersion, kind: kind, client: self)
        var base = groupPath(apiVersion)
        if resource.namespaced, let namespace { base += "/namespaces/\(namespace)" }
        return base + "/\(resource.plural)"
    }

    func groupPath(_ apiVersion: String) -> String {
        apiVersion.contains("/") ? "/apis/\(apiVersion)" : "/api/\(apiVersion)"
    }

    func objectPath(_ ref: ObjectReference) async throws(KubeError) -> String {
        let resource = try await discovery.resource(apiVersion: ref.apiVersion, kind: ref.kind, client: self)
        var path = groupPath(ref.apiVersion)
        if resource.namespaced {
            guard let ns = ref.namespace else {
                throw KubeError(reason: .badRequest, operation: "address", object: ref.description,
                                message: "\(ref.kind) is namespaced; the object names no namespace")
            }
            path += "/namespaces/\(ns)"
        }
        return path + "/\(resource.plural)/\(ref.name)"
    }

    // MARK: - Transport

    static func percentEncode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    /// One request with retries; the decoded JSON body.
    /// - Parameter reading: false: a successful response's body is not parsed (`.null` is
    ///   returned); an error's still is.
    func send(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: [UInt8]? = nil,
              contentType: String? = nil, operation: String, object: String, reading: Bool = true,
              droppingFieldsOf manager: String? = nil, items shape: JSONValue.ItemShape? = nil,
              itemsWhenRead: (@Sendable () async -> JSONValue.ItemShape?)? = nil) async throws(KubeError) -> JSONValue {
        let url = config.server + path
            + (query.isEmpty ? "" : "?" + query.map { "\($0.0)=\(Self.percentEncode($0.1))" }.joined(separator: "&"))
        var attempt = 0
        var delay = 0.1
        while true {
            attempt += 1
            counts.withLock { $0[operation, default: 0] += 1 }
            let outcome = await limiter.run { () async -> Result<Body, Attempt> in
                await self.once(method, url, body: body, contentType: contentType, operation: operation, object: object, reading: reading,
                               droppingFieldsOf: manager, items: shape, deferReading: itemsWhenRead != nil)
            }
            switch outcome {
            case .success(.parsed(let value)):
                return value
            case .success(.unread(let bytes)):
                // Read once its shape is known, outside the limiter: the wait holds no request's place.
                let shape = await itemsWhenRead?()
                guard let json = try? JSONValue.parse(bytes.readableBytesView, droppingFieldsOf: manager, items: shape) else {
                    throw KubeError(reason: .unexpected, code: 200, operation: operation, object: object, message: "the response is not JSON")
                }
                return json
            case .failure(.final(let error)):
                throw error
            case .failure(.retryable(let error, let retryAfter)):
                guard attempt < maxAttempts else {
                    var e = error
                    e.message += " (gave up after \(attempt) attempts)"
                    throw e
                }
                let wait = min(retryAfter ?? delay, 10)
                do {
                    try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
                } catch let cancellation {
                    // Cancelled (a shutdown): no more attempts.
                    throw KubeError(reason: .cancelled, operation: operation, object: object,
                                    message: "\(cancellation) while waiting to retry after: \(error.message)")
                }
                delay = min(delay * 2, 2)
            }
        }
    }

    /// The largest body of one object's request: an object is at most 1.5 MiB in etcd, with
    /// room for its managedFields.
    static let maximumBody = 16 << 20
    /// The largest LIST page (`limit` objects; cairn lists only its own, labelled objects).
    static let maximumListBody = 128 << 20

    enum Attempt: Error {
        case final(KubeError)
        case retryable(KubeError, retryAfter: Double?)
    }

    /// A successful response's body: read, or (`deferReading`) not yet.
    enum Body: Sendable {
        case parsed(JSONValue)
        case unread(ByteBuffer)
    }

    private func once(_ method: HTTPMethod, _ url: String, body: [UInt8]?, contentType: String?,
                      operation: String, object: String, reading: Bool = true, droppingFieldsOf manager: String? = nil,
                      items shape: JSONValue.ItemShape? = nil, deferReading: Bool = false) async -> Result<Body, Attempt> {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "cairn")
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            if let token = try await tokens.token() {
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
            }
        } catch {
            return .failure(.final(KubeError(reason: .unauthorized, operation: operation, object: object, message: "\(error)")))
        }
        // One deadline for the whole exchange, the body included (a server sending a byte a
        // second never trips a read timeout), and a bound on the body's size per kind of request.
        let limit = operation == "list" ? Self.maximumListBody : Self.maximumBody
        let deadline = requestTimeout
        let http = self.http
        let prepared = request
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            let exchange = try await withThrowingTaskGroup(of: (HTTPClientResponse, ByteBuffer)?.self) { group in
                group.addTask {
                    let response = try await http.execute(prepared, timeout: deadline)
                    return (response, try await response.body.collect(upTo: limit))
                }
                group.addTask {
                    try await Self.sleep(deadline, on: http.eventLoopGroup.any())
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first
            }
            guard let exchange else {
                return .failure(.retryable(KubeError(reason: .timeout, operation: operation, object: object,
                                                     message: "no complete response from \(config.server) within \(deadline.nanoseconds / 1_000_000_000) s"),
                                           retryAfter: nil))
            }
            (response, bytes) = exchange
        } catch is NIOTooManyBytesError {
            return .failure(.final(KubeError(reason: .unexpected, operation: operation, object: object,
                                             message: "the response from \(config.server) is larger than \(limit >> 20) MiB; refused")))
        } catch let error as HTTPClientError where error == .readTimeout || error == .deadlineExceeded {
            // The client's own read timeout, which can fire before the deadline above on a
            // loaded machine: the same timeout, said the same way.
            return .failure(.retryable(KubeError(reason: .timeout, operation: operation, object: object,
                                                 message: "no complete response from \(config.server) within \(deadline.nanoseconds / 1_000_000_000) s"),
                                       retryAfter: nil))
        } catch {
            return .failure(Self.classify(error, operation: operation, object: object, server: config.server))
        }
        let code = Int(response.status.code)
        if !reading, (200..<300).contains(code) { return .success(.parsed(.null)) }
        if deferReading, (200..<300).contains(code) { return .success(.unread(bytes)) }
        // An error body that is not JSON (a proxy's HTML page) is no Status: the HTTP code speaks.
        let success = (200..<300).contains(code)
        let json = try? JSONValue.parse(bytes.readableBytesView, droppingFieldsOf: success ? manager : nil, items: success ? shape : nil)
        if (200..<300).contains(code) {
            guard let json else {
                return .failure(.final(KubeError(reason: .unexpected, code: code, operation: operation, object: object, message: "the response is not JSON")))
            }
            return .success(.parsed(json))
        }
        let error = KubeError.from(status: code, body: json, operation: operation, object: object)
        if code == 429 || code == 500 || code == 502 || code == 503 || code == 504 {
            let retryAfter = response.headers.first(name: "Retry-After").flatMap(Double.init)
            return .failure(.retryable(error, retryAfter: retryAfter))
        }
        if code == 401 {
            // A rotated or expired token: read or run for a fresh one next time.
            await tokens.invalidate()
        }
        return .failure(.final(error))
    }

    private static func classify(_ error: any Error, operation: String, object: String, server: String) -> Attempt {
        let text = String(describing: error)
        if error is NIOSSLError || text.contains("handshakeFailed") || text.contains("CERTIFICATE_VERIFY_FAILED")
            || text.contains("certificate") || text.contains("SSL")
        {
            return .final(KubeError(reason: .tls, operation: operation, object: object,
                                    message: "TLS with \(server) failed: \(text); check the kubeconfig's certificate-authority"))
        }
        return .retryable(KubeError(reason: .transport, operation: operation, object: object,
                                    message: "cannot reach \(server): \(text)"), retryAfter: nil)
    }
}

/// At most `limit` requests in flight; the rest wait their turn, in order.
///
/// The queue is an array read from a moving head (compacted once half of it is spent): taking
/// the next waiter is O(1). (`removeFirst()` is O(n): with the 100,000 applies of a cold sync at
/// 10,000 clusters queued at once, that alone made the pass quadratic.)
actor ConcurrencyLimiter {
    private let limit: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []
    private var head = 0

    init(limit: Int) {
        self.limit = limit
    }

    /// Requests waiting for their turn.
    var queued: Int { waiting.count - head }

    func run<T: Sendable>(_ body: @Sendable () async -> T) async -> T {
        if running >= limit {
            await withCheckedContinuation { waiting.append($0) }
        } else {
            running += 1
        }
        defer { next() }
        return await body()
    }

    /// Hands the finished request's place to the next waiter, or frees it.
    private func next() {
        guard head < waiting.count else {
            running -= 1
            return
        }
        let continuation = waiting[head]
        head += 1
        if head == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= waiting.count {
            waiting.removeFirst(head)
            head = 0
        }
        continuation.resume()
    }
}

/// Resources the server serves, learnt once per group version.
actor DiscoveryCache {
    struct Resource: Sendable {
        var plural: String
        var namespaced: Bool
    }

    private var resources: [String: [String: Resource]] = [:]  // groupVersion -> kind -> resource
    private var versions: Set<String>?
    /// When what is cached was first asked for (since the last `forget`).
    private var since: ContinuousClock.Instant?
    /// Requests under way, shared by every caller asking meanwhile: a pass of 1,000 clusters asks
    /// for the same few group versions hundreds of times at once, and sent one GET each.
    private var pendingGroups: [String: Task<Result<JSONValue, KubeError>, Never>] = [:]
    private var pendingVersions: Task<Result<Set<String>, KubeError>, Never>?
    /// Bumped by `forget`: an answer to a request sent before is not kept.
    private var generation = 0

    /// Forgets what was learnt, unless it was all learnt less than `age` ago (a one-shot
    /// `cairn apply` asks discovery for its render options and starts its full pass right after).
    func forget(olderThan age: Duration = .zero) {
        if let since, ContinuousClock.now - since < age { return }
        resources = [:]
        versions = nil
        since = nil
        pendingGroups = [:]
        pendingVersions = nil
        generation += 1
    }

    /// For a kind of a group outside Kubernetes' own: where it comes from.
    static func crdHint(_ apiVersion: String, _ kind: String) -> String {
        apiVersion.contains(".") && !apiVersion.contains(".k8s.io/") ? ": install the CustomResourceDefinition of \(kind) first" : ""
    }

    func resource(apiVersion: String, kind: String, client: KubeClient) async throws(KubeError) -> Resource {
        if let r = resources[apiVersion]?[kind] { return r }
        let kinds: [String: Resource]
        if let known = resources[apiVersion] {
            kinds = known
        } else {
            since = since ?? .now
            let task = pendingGroups[apiVersion] ?? Task {
                do throws(KubeError) {
                    return .success(try await client.send(.GET, client.groupPath(apiVersion), operation: "discover", object: apiVersion))
                } catch {
                    return .failure(error)
                }
            }
            let asked = generation
            pendingGroups[apiVersion] = task
            let answer = await Self.wait(for: task)
            if asked == generation { pendingGroups[apiVersion] = nil }
            let list: JSONValue
            switch answer {
            case .success(let value): list = value
            case .failure(let error):
                guard error.reason == .notFound else { throw error }
                throw KubeError(reason: .notFound, operation: "discover", object: "\(apiVersion) \(kind)",
                                message: "the server does not serve \(apiVersion) at all" + Self.crdHint(apiVersion, kind))
            }
            var read: [String: Resource] = [:]
            for r in list["resources"]?.arrayValue ?? [] {
                guard let name = r["name"]?.stringValue, !name.contains("/"), let k = r["kind"]?.stringValue else { continue }
                read[k] = Resource(plural: name, namespaced: r["namespaced"] == .bool(true))
            }
            if asked == generation { resources[apiVersion] = read }
            kinds = read
        }
        guard let r = kinds[kind] else {
            throw KubeError(reason: .notFound, operation: "discover", object: "\(apiVersion) \(kind)",
                            message: "the server does not serve \(kind) in \(apiVersion)" + Self.crdHint(apiVersion, kind))
        }
        return r
    }

    /// The shared request's answer. A caller cancelled meanwhile (shutdown, an informer
    /// stopped) cancels the request rather than wait out its retries; the other callers then
    /// get the cancellation too, and ask again on their next pass.
    private static func wait<T: Sendable>(for task: Task<Result<T, KubeError>, Never>) async -> Result<T, KubeError> {
        await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
    }

    func groupVersions(client: KubeClient) async throws(KubeError) -> Set<String> {
        if let versions { return versions }
        since = since ?? .now
        let task = pendingVersions ?? Task {
            do throws(KubeError) {
                var out: Set<String> = []
                let core = try await client.send(.GET, "/api", operation: "discover", object: "core API")
                for v in core["versions"]?.arrayValue ?? [] { if let s = v.stringValue { out.insert(s) } }
                let groups = try await client.send(.GET, "/apis", operation: "discover", object: "API groups")
                for g in groups["groups"]?.arrayValue ?? [] {
                    for v in g["versions"]?.arrayValue ?? [] { if let s = v["groupVersion"]?.stringValue { out.insert(s) } }
                }
                return .success(out)
            } catch {
                return .failure(error)
            }
        }
        let asked = generation
        pendingVersions = task
        let answer = await Self.wait(for: task)
        if asked == generation { pendingVersions = nil }
        switch answer {
        case .success(let out):
            if asked == generation { versions = out }
            return out
        case .failure(let error):
            throw error
        }
    }
}

extension KubeClient {
    /// Sleeps on a NIO event loop's timer, which a cancellation removes at once. (`Task.sleep`
    /// on Linux leaves a cancelled sleep's timer in libdispatch until it is due: a pass of
    /// 10,000 requests left 10,000 deadline timers firing 30 s later, which cost an idle daemon
    /// 20 ms of CPU per second.)
    static func sleep(_ amount: TimeAmount, on loop: any EventLoop) async throws {
        let scheduled = loop.scheduleTask(in: amount) {}
        try await withTaskCancellationHandler {
            try await scheduled.futureResult.get()
        } onCancel: {
            scheduled.cancel()
        }
    }
}
