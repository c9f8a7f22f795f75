import Crypto
import Foundation

/// How cairn authenticates to a git remote and checks who it talks to.
///
/// Secrets held here never appear in `description`, errors or logs.
public struct GitCredentials: Sendable, CustomStringConvertible {
    /// Path of an SSH private key.
    public var sshPrivateKey: String?
    /// The key's passphrase (read by the caller from a file or the environment).
    public var sshPassphrase: String?
    /// known_hosts file checked for SSH remotes. Default: `~/.ssh/known_hosts`.
    public var knownHostsFile: String
    /// Skips the SSH host key check. Only ever set from an explicit option.
    public var insecureSkipHostKeyCheck: Bool
    /// HTTPS user; with a token and no user, `x-access-token` is sent.
    public var httpsUser: String?
    /// HTTPS password or token.
    public var httpsPassword: String?
    /// PEM bundle of CAs trusted for HTTPS remotes (in addition to none: it replaces the system's).
    public var caFile: String?

    public init(sshPrivateKey: String? = nil, sshPassphrase: String? = nil, knownHostsFile: String? = nil,
                insecureSkipHostKeyCheck: Bool = false, httpsUser: String? = nil, httpsPassword: String? = nil,
                caFile: String? = nil) {
        self.sshPrivateKey = sshPrivateKey
        self.sshPassphrase = sshPassphrase
        self.knownHostsFile = knownHostsFile ?? (NSHomeDirectory() + "/.ssh/known_hosts")
        self.insecureSkipHostKeyCheck = insecureSkipHostKeyCheck
        self.httpsUser = httpsUser
        self.httpsPassword = httpsPassword
        self.caFile = caFile
    }

    public var description: String {
        var parts: [String] = []
        if let sshPrivateKey { parts.append("ssh key \(sshPrivateKey)\(sshPassphrase == nil ? "" : " (with passphrase)")") }
        parts.append("known_hosts \(knownHostsFile)\(insecureSkipHostKeyCheck ? " (NOT CHECKED)" : "")")
        if httpsPassword != nil { parts.append("https user \(httpsUser ?? "x-access-token") with a password") }
        if let caFile { parts.append("CA file \(caFile)") }
        return parts.joined(separator: ", ")
    }
}

/// The host and port of an SSH remote URL (`ssh://user@host:port/path` or `user@host:path`).
struct SSHAddress: Equatable {
    var host: String
    var port: Int

    init?(url: String) {
        if url.hasPrefix("ssh://") || url.hasPrefix("git+ssh://") || url.hasPrefix("ssh+git://") {
            guard let start = url.range(of: "://") else { return nil }
            var authority = url[start.upperBound...]
            if let slash = authority.firstIndex(of: "/") { authority = authority[..<slash] }
            if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
            if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
                host = String(authority[authority.index(after: authority.startIndex)..<close])
                let rest = authority[authority.index(after: close)...]
                port = rest.hasPrefix(":") ? Int(rest.dropFirst()) ?? 22 : 22
            } else if let colon = authority.lastIndex(of: ":") {
                host = String(authority[..<colon])
                port = Int(authority[authority.index(after: colon)...]) ?? 22
            } else {
                host = String(authority)
                port = 22
            }
            return
        }
        // scp-like: [user@]host:path, with no scheme.
        guard !url.contains("://"), let colon = url.firstIndex(of: ":"), !url.hasPrefix("/") else { return nil }
        var authority = url[..<colon]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        guard !authority.isEmpty, !authority.contains("/") else { return nil }
        host = String(authority)
        port = 22
    }

    /// How known_hosts names this host: `host`, or `[host]:port` for another port than 22.
    var knownHostsName: String { port == 22 ? host : "[\(host)]:\(port)" }
}

/// An OpenSSH known_hosts file: plain and hashed host patterns, wildcards, negation,
/// `[host]:port` entries and the `@revoked` marker.
struct KnownHosts {
    enum Verdict: Equatable {
        case trusted
        case unknown
        case changed(knownTypes: [String])
        case revoked
    }

    private struct Entry {
        var patterns: [String]     // plain patterns (may start with '!')
        var hashed: (salt: Data, hash: Data)?
        var keyType: String
        var key: Data
        var revoked: Bool
        var certAuthority: Bool
    }

    private var entries: [Entry] = []

    init(text: String) {
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            var revoked = false
            var certAuthority = false
            if let marker = fields.first, marker.hasPrefix("@") {
                revoked = marker == "@revoked"
                certAuthority = marker == "@cert-authority"
                fields.removeFirst()
            }
            guard fields.count >= 3, let key = Data(base64Encoded: fields[2]) else { continue }
            var entry = Entry(patterns: [], hashed: nil, keyType: fields[1], key: key, revoked: revoked, certAuthority: certAuthority)
            if fields[0].hasPrefix("|1|") {
                let parts = fields[0].split(separator: "|", omittingEmptySubsequences: true)
                guard parts.count == 3, let salt = Data(base64Encoded: String(parts[1])),
                      let hash = Data(base64Encoded: String(parts[2])) else { continue }
                entry.hashed = (salt, hash)
            } else {
                entry.patterns = fields[0].split(separator: ",").map(String.init)
            }
            entries.append(entry)
        }
    }

    private static func matches(_ entry: Entry, _ name: String) -> Bool {
        if let (salt, hash) = entry.hashed {
            let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(name.utf8), using: SymmetricKey(data: salt))
            return Data(mac) == hash
        }
        var matched = false
        for pattern in entry.patterns {
            if pattern.hasPrefix("!") {
                if glob(String(pattern.dropFirst()), name) { return false }
            } else if glob(pattern, name) {
                matched = true
            }
        }
        return matched
    }

    /// `*` and `?` wildcards, case-insensitive like OpenSSH's host matching.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.lowercased()), t = Array(text.lowercased())
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    func verdict(name: String, keyType: String, key: Data) -> Verdict {
        let relevant = entries.filter { !$0.certAuthority && KnownHosts.matches($0, name) }
        if relevant.contains(where: { $0.revoked && $0.key == key }) { return .revoked }
        let known = relevant.filter { !$0.revoked }
        if known.contains(where: { $0.key == key }) { return .trusted }
        if known.isEmpty { return .unknown }
        return .changed(knownTypes: Array(Set(known.map(\.keyType))).sorted())
    }

    /// `SHA256:<unpadded base64>`, as `ssh-keygen -l` prints a key's fingerprint.
    static func fingerprint(_ key: Data) -> String {
        let digest = Data(SHA256.hash(data: key))
        var b64 = digest.base64EncodedString()
        while b64.hasSuffix("=") { b64.removeLast() }
        return "SHA256:" + b64
    }
}
