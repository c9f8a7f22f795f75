import AsyncHTTPClient
import Foundation
import JSON
import NIOCore
import NIOHTTP1

/// One event of a watch (`?watch=1`): an object added, modified or deleted, or a bookmark that
/// only moves the resourceVersion on.
public struct WatchEvent: Sendable {
    public enum Kind: String, Sendable {
        case added = "ADDED"
        case modified = "MODIFIED"
        case deleted = "DELETED"
        case bookmark = "BOOKMARK"
    }

    public var kind: Kind
    /// The object (for a bookmark: only its kind and `metadata.resourceVersion`), with its
    /// apiVersion and kind as the watch asked for them.
    public var object: JSONValue
    public var resourceVersion: String? { object["metadata", "resourceVersion"]?.stringValue }
}

extension KubeClient {
    /// The largest single event of a watch: one object, as for a GET.
    static let maximumWatchEvent = maximumBody

    /// Watches a kind (in one namespace, or all when nil) from `resourceVersion`, with bookmarks,
    /// handing each event to `onEvent` as its line arrives (the stream is decoded one event at a
    /// time, never held whole). Returns when the server ends the watch (after about
    /// `timeoutSeconds`, its normal end: watch again from the last resourceVersion seen).
    ///
    /// - Parameters:
    ///   - onOpen: Called once the server has accepted the watch (its response head arrived):
    ///     from then on every change after `resourceVersion` comes as an event.
    /// - Throws: `KubeError` `.expired` when the server no longer has `resourceVersion` (410,
    ///   as an HTTP status or an ERROR event: list afresh), `.transport` or `.timeout` when the
    ///   connection fails or outlives its deadline (`timeoutSeconds` plus a grace), or the
    ///   server's refusal. No retries: the caller (an informer loop) decides.
    public func watch(apiVersion: String, kind: String, namespace: String?, labelSelector: String?, resourceVersion: String,
                      timeoutSeconds: Int = 300, onOpen: @escaping @Sendable () async -> Void = {},
                      onEvent: @escaping @Sendable (WatchEvent) async -> Void) async throws(KubeError) {
        let what = namespace.map { "\(kind) in \($0)" } ?? "\(kind) in all namespaces"
        let path = try await collectionPath(apiVersion: apiVersion, kind: kind, namespace: namespace)
        var query = [("watch", "1"), ("allowWatchBookmarks", "true"), ("resourceVersion", resourceVersion),
                     ("timeoutSeconds", String(timeoutSeconds))]
        if let labelSelector { query.append(("labelSelector", labelSelector)) }
        let url = config.server + path + "?" + query.map { "\($0.0)=\(Self.percentEncode($0.1))" }.joined(separator: "&")
        counts.withLock { $0["watch", default: 0] += 1 }
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "cairn")
        do {
            if let token = try await tokens.token() { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        } catch {
            throw KubeError(reason: .unauthorized, operation: "watch", object: what, message: "\(error)")
        }
        // The server ends the watch at timeoutSeconds; a connection that outlives it by the
        // grace is dead (a peer gone without closing) and is given up.
        let deadline = TimeAmount.seconds(Int64(timeoutSeconds) + 15)
        let http = watchHTTP
        let prepared = request
        let server = config.server
        do {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    let response = try await http.execute(prepared, timeout: deadline)
                    let code = Int(response.status.code)
                    guard (200..<300).contains(code) else {
                        let body = try? await response.body.collect(upTo: Self.maximumBody)
                        if code == 401 { await self.tokens.invalidate() }
                        throw KubeError.from(status: code, body: body.flatMap { try? JSONValue.parse($0.readableBytesView) },
                                             operation: "watch", object: what)
                    }
                    await onOpen()
                    var line: [UInt8] = []
                    for try await chunk in response.body {
                        for byte in chunk.readableBytesView {
                            if byte != UInt8(ascii: "\n") {
                                line.append(byte)
                                guard line.count <= Self.maximumWatchEvent else {
                                    throw KubeError(reason: .unexpected, operation: "watch", object: what,
                                                    message: "an event from \(server) is larger than \(Self.maximumWatchEvent >> 20) MiB; refused")
                                }
                                continue
                            }
                            if let event = try Self.event(line, apiVersion: apiVersion, kind: kind, what: what) { await onEvent(event) }
                            line.removeAll(keepingCapacity: line.capacity <= 1 << 16)
                        }
                    }
                    if let event = try Self.event(line, apiVersion: apiVersion, kind: kind, what: what) { await onEvent(event) }
                    return true
                }
                group.addTask {
                    try await Self.sleep(deadline, on: http.eventLoopGroup.any())
                    return false
                }
                let ended = try await group.next() ?? false
                group.cancelAll()
                if !ended {
                    throw KubeError(reason: .timeout, operation: "watch", object: what,
                                    message: "the watch on \(server) outlived its \(timeoutSeconds) s by \(deadline.nanoseconds / 1_000_000_000 - Int64(timeoutSeconds)) s; given up")
                }
            }
        } catch let error as KubeError {
            throw error
        } catch is CancellationError {
            throw KubeError(reason: .cancelled, operation: "watch", object: what, message: "cancelled")
        } catch {
            if Task.isCancelled { throw KubeError(reason: .cancelled, operation: "watch", object: what, message: "cancelled") }
            throw KubeError(reason: .transport, operation: "watch", object: what, message: "the watch on \(server) broke: \(error)")
        }
    }

    /// One line of a watch stream: an event, nil for a blank line; an ERROR event is thrown as
    /// the server's Status (410 Gone: `.expired`).
    static func event(_ line: [UInt8], apiVersion: String, kind: String, what: String) throws(KubeError) -> WatchEvent? {
        guard line.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") }) else { return nil }
        let json: JSONValue
        do { json = try JSONValue.parse(line) } catch {
            throw KubeError(reason: .unexpected, operation: "watch", object: what, message: "an event is not JSON: \(error)")
        }
        let type = json["type"]?.stringValue ?? ""
        if type == "ERROR" {
            let status = json["object"]
            throw KubeError.from(status: status?["code"]?.intValue ?? 500, body: status, operation: "watch", object: what)
        }
        guard let eventKind = WatchEvent.Kind(rawValue: type), var object = json["object"]?.objectValue else {
            throw KubeError(reason: .unexpected, operation: "watch", object: what, message: "an event of type \"\(type)\" without an object")
        }
        object["apiVersion"] = .string(apiVersion)
        object["kind"] = .string(kind)
        return WatchEvent(kind: eventKind, object: .object(object))
    }
}
