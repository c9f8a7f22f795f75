internal import CLibGit2
import Foundation

/// A failure of a libgit2 call: the function that failed, its return code and libgit2's own
/// message (read on the same thread right after the call; libgit2's error state is thread-local).
public struct GitError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case libgit2(code: Int32)
        case timeout
        /// The caller asked the operation to stop (a shutdown).
        case cancelled
        case hostKeyUnknown
        case hostKeyChanged
        case authentication
        case notFound
        case pushRejected
        case invalidArgument
    }

    public let kind: Kind
    /// The operation, e.g. `git_remote_fetch` or `read tree`.
    public let operation: String
    public let message: String

    public init(_ kind: Kind, operation: String, message: String) {
        self.kind = kind
        self.operation = operation
        self.message = message
    }

    public var description: String { "\(operation): \(message)" }
}

/// libgit2 is initialised once per process, before any other call.
enum LibGit2 {
    private static let initialised: Bool = {
        git_libgit2_init()
        // cairn's socket stream, which a timeout or shutdown can stop (SocketStream.swift).
        let registered = SocketStream.register()
        precondition(registered == 0, "git_stream_register failed: \(registered)")
        return true
    }()

    static func ensureInitialised() {
        _ = initialised
    }

    /// Throws when `code` is a libgit2 error, naming `function` and carrying libgit2's message.
    static func check(_ code: Int32, _ function: String, context: String = "") throws(GitError) {
        guard code < 0 else { return }
        throw error(code, function, context: context)
    }

    static func error(_ code: Int32, _ function: String, context: String = "") -> GitError {
        var message = "libgit2 error \(code)"
        if let last = git_error_last(), let text = last.pointee.message {
            message = String(cString: text)
        }
        if !context.isEmpty { message = "\(context): \(message)" }
        let kind: GitError.Kind = code == GIT_ENOTFOUND.rawValue ? .notFound : .libgit2(code: code)
        return GitError(kind, operation: function, message: message)
    }
}

/// A commit id.
public struct GitOID: Sendable, Hashable, CustomStringConvertible {
    public let hex: String

    init(_ oid: git_oid) {
        var copy = oid
        var buffer = [CChar](repeating: 0, count: 41)
        git_oid_tostr(&buffer, 41, &copy)
        hex = String(cString: buffer)
    }

    public init?(hex: String) {
        guard hex.count == 40, hex.allSatisfy(\.isHexDigit) else { return nil }
        self.hex = hex.lowercased()
    }

    var raw: git_oid {
        var oid = git_oid()
        _ = git_oid_fromstr(&oid, hex)
        return oid
    }

    public var short: String { String(hex.prefix(12)) }
    public var description: String { hex }
}

/// Owns one `git_repository` (freed in deinit). Not thread-safe: each operation of `Mirror`
/// opens its own and uses it on one thread.
final class Repository {
    let pointer: OpaquePointer

    private init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit { git_repository_free(pointer) }

    static func open(_ path: String) throws(GitError) -> Repository {
        LibGit2.ensureInitialised()
        var repo: OpaquePointer?
        try LibGit2.check(git_repository_open_bare(&repo, path), "git_repository_open_bare", context: path)
        return Repository(repo!)
    }

    static func initBare(_ path: String) throws(GitError) -> Repository {
        LibGit2.ensureInitialised()
        var repo: OpaquePointer?
        try LibGit2.check(git_repository_init(&repo, path, 1), "git_repository_init", context: path)
        return Repository(repo!)
    }
}

/// Owns one `git_object` (commit, tree, blob, tag), freed in deinit.
final class GitObject {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit { git_object_free(pointer) }

    var type: git_object_t { git_object_type(pointer) }
    var oid: GitOID { GitOID(git_object_id(pointer).pointee) }

    /// Peels to a commit (through tags).
    func commit() throws(GitError) -> GitObject {
        var out: OpaquePointer?
        try LibGit2.check(git_object_peel(&out, pointer, GIT_OBJECT_COMMIT), "git_object_peel", context: "not a commit")
        return GitObject(out!)
    }

    /// The tree of a commit.
    func tree() throws(GitError) -> GitObject {
        var out: OpaquePointer?
        try LibGit2.check(git_object_peel(&out, pointer, GIT_OBJECT_TREE), "git_object_peel")
        return GitObject(out!)
    }

    static func lookup(_ repo: Repository, _ oid: GitOID, _ type: git_object_t = GIT_OBJECT_ANY) throws(GitError) -> GitObject {
        var raw = oid.raw
        var out: OpaquePointer?
        try LibGit2.check(git_object_lookup(&out, repo.pointer, &raw, type), "git_object_lookup", context: oid.short)
        return GitObject(out!)
    }
}

/// Owns one `git_remote`, freed in deinit.
final class Remote {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit { git_remote_free(pointer) }

    /// A remote for a URL without a repository (what `git ls-remote URL` uses).
    static func detached(_ url: String) throws(GitError) -> Remote {
        LibGit2.ensureInitialised()
        var out: OpaquePointer?
        try LibGit2.check(git_remote_create_detached(&out, url), "git_remote_create_detached", context: Redact.url(url))
        return Remote(out!)
    }

    /// An in-memory remote of a repository, with no configuration written. The URL is used as
    /// given, as the remote-head check's detached remote uses it: `url.<base>.insteadOf` rules
    /// are not applied. (Applying them, libgit2 1.5 matched every configuration key against a
    /// PCRE2 pattern and kept about 1.3 MB per remote made: 26 MB after 20 fetches.)
    static func anonymous(_ repo: Repository, _ url: String) throws(GitError) -> Remote {
        var options = git_remote_create_options()
        try LibGit2.check(git_remote_create_options_init(&options, UInt32(GIT_REMOTE_CREATE_OPTIONS_VERSION)),
                          "git_remote_create_options_init", context: Redact.url(url))
        options.repository = repo.pointer
        options.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF.rawValue
        var out: OpaquePointer?
        try LibGit2.check(git_remote_create_with_opts(&out, url, &options), "git_remote_create_with_opts", context: Redact.url(url))
        return Remote(out!)
    }
}

/// Removes credentials from URLs before they reach an error or a log line.
public enum Redact {
    /// Query keys whose values are credentials (`?access_token=...`).
    static func isSecretKey(_ key: Substring) -> Bool {
        let k = key.lowercased()
        return k.contains("token") || k.contains("password") || k.contains("secret") || k == "key" || k.hasSuffix("_key") || k == "sig"
            || k == "signature" || k.contains("auth")
    }

    /// Where `url` holds credentials, as ranges of `url`: its user info (up to the authority's
    /// last `@`) and the values of its query's credential keys, in order. Nil without `://`.
    private static func credentials(in url: String) -> (userinfo: Range<String.Index>?, queryValues: [Range<String.Index>])? {
        guard let scheme = url.range(of: "://") else { return nil }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let userinfo = rest[..<authorityEnd].lastIndex(of: "@").map { rest.startIndex..<$0 }
        var queryValues: [Range<String.Index>] = []
        if let question = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: question)...].prefix(while: { $0 != "#" }).split(separator: "&") {
                if let eq = pair.firstIndex(of: "="), isSecretKey(pair[..<eq]) { queryValues.append(pair.index(after: eq)..<pair.endIndex) }
            }
        }
        return (userinfo, queryValues)
    }

    /// The URL with its password and credential query values replaced by `***`: the user
    /// stays (it says which account). The user info ends at the authority's last `@`, so a
    /// password holding `@` is hidden whole.
    public static func url(_ url: String) -> String {
        guard let parts = credentials(in: url) else { return url }
        var replacements: [(range: Range<String.Index>, with: String)] = []
        if let userinfo = parts.userinfo {
            let user = url[userinfo].split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            // Without a password, an https user name is the token itself (`https://TOKEN@host`).
            let tokenAsUser = !url[userinfo].contains(":") && url.lowercased().hasPrefix("http")
            replacements.append((userinfo, url[userinfo].contains(":") ? "\(user):***" : tokenAsUser ? "***" : user))
        }
        replacements += parts.queryValues.map { ($0, "***") }
        var out = ""
        var position = url.startIndex
        for replacement in replacements {
            out += url[position..<replacement.range.lowerBound]
            out += replacement.with
            position = replacement.range.upperBound
        }
        return out + url[position...]
    }

    /// The secrets of `url` (its password, credential query values) removed from a message
    /// that may quote the URL or parts of it: libgit2's own error texts do ("malformed URL '...'").
    public static func message(_ text: String, url: String) -> String {
        var out = text.replacingOccurrences(of: url, with: Redact.url(url))
        var secrets: [String] = []
        if let parts = credentials(in: url) {
            if let userinfo = parts.userinfo, let colon = url[userinfo].firstIndex(of: ":") {
                secrets.append(String(url[url.index(after: colon)..<userinfo.upperBound]))
            } else if let userinfo = parts.userinfo, url.lowercased().hasPrefix("http") {
                secrets.append(String(url[userinfo]))  // a token given as the user name
            }
            secrets += parts.queryValues.map { String(url[$0]) }
        }
        for secret in secrets where !secret.isEmpty {
            out = out.replacingOccurrences(of: secret, with: "***")
            if let decoded = secret.removingPercentEncoding, decoded != secret, !decoded.isEmpty {
                out = out.replacingOccurrences(of: decoded, with: "***")
            }
        }
        return out
    }
}

extension GitError {
    /// The same error with `url`'s secrets removed from its operation and message.
    func redacting(_ url: String) -> GitError {
        GitError(kind, operation: Redact.message(operation, url: url), message: Redact.message(message, url: url))
    }
}

func withStringArray<R>(_ strings: [String], _ body: (UnsafePointer<git_strarray>) throws(GitError) -> R) throws(GitError) -> R {
    let cStrings = strings.map { strdup($0) }
    defer { cStrings.forEach { free($0) } }
    var pointers: [UnsafeMutablePointer<CChar>?] = cStrings
    return try pointers.withUnsafeMutableBufferPointer { buffer throws(GitError) -> R in
        var array = git_strarray(strings: buffer.baseAddress, count: buffer.count)
        return try body(&array)
    }
}
