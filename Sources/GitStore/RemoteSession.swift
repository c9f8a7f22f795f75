internal import CLibGit2
import Foundation
import Synchronization

/// State shared between a network operation and libgit2's callbacks (through the `payload`
/// pointer), and with the watchdog that bounds the operation's time.
final class RemoteSession: Sendable {
    let url: String
    let credentials: GitCredentials
    let ssh: SSHAddress?
    private struct State {
        var cancelled = false
        var failure: GitError?
        var triedTypes: Set<UInt32> = []
        var rejections: [(ref: String, status: String)] = []
        /// The sockets this operation has open (SocketStream), shut down on cancel.
        var sockets: Set<Int32> = []
    }
    private let state = Mutex(State())

    /// The caller's request to stop (a shutdown), beside this session's own timeout.
    let cancellation: GitCancellation?

    init(url: String, credentials: GitCredentials, cancellation: GitCancellation? = nil) {
        self.url = url
        self.credentials = credentials
        self.ssh = SSHAddress(url: url)
        self.cancellation = cancellation
    }

    var cancelled: Bool { state.withLock { $0.cancelled } || (cancellation?.isCancelled ?? false) }
    /// Stops the operation: its callbacks return an error from now on, and its open sockets are
    /// shut down, so a read blocked on a silent server returns at once.
    func cancel() {
        state.withLock { state in
            state.cancelled = true
            for fd in state.sockets { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// Registers a socket the operation opened; false (the caller closes it) once cancelled.
    func adopt(_ fd: Int32) -> Bool {
        state.withLock { state in
            guard !state.cancelled else { return false }
            state.sockets.insert(fd)
            return true
        }
    }

    /// Forgets and closes a socket, under the lock `cancel()` takes: a shutdown never reaches a
    /// descriptor number the process has reused since.
    func release(_ fd: Int32) {
        state.withLock { state in
            state.sockets.remove(fd)
            _ = close(fd)
        }
    }

    /// The precise reason a callback gave up, which beats libgit2's generic message.
    var failure: GitError? { state.withLock { $0.failure } }
    func fail(_ error: GitError) { state.withLock { if $0.failure == nil { $0.failure = error } } }

    var rejections: [(ref: String, status: String)] { state.withLock { $0.rejections } }
    func reject(_ ref: String, _ status: String) { state.withLock { $0.rejections.append((ref, status)) } }

    /// Each credential type is offered once: libgit2 asks again when the server refuses it,
    /// and would loop forever.
    func firstAttempt(_ type: UInt32) -> Bool {
        state.withLock { $0.triedTypes.insert(type).inserted }
    }

    /// Callbacks for libgit2, with this session as their payload. The session must outlive the call.
    func callbacks() -> git_remote_callbacks {
        var cb = git_remote_callbacks()
        git_remote_init_callbacks(&cb, UInt32(GIT_REMOTE_CALLBACKS_VERSION))
        cb.payload = Unmanaged.passUnretained(self).toOpaque()
        cb.credentials = { out, url, usernameFromURL, allowed, payload in
            RemoteSession.from(payload).credential(out, usernameFromURL.map { String(cString: $0) }, allowed)
        }
        cb.certificate_check = { cert, valid, host, payload in
            RemoteSession.from(payload).checkCertificate(cert, valid: valid != 0, host: host.map { String(cString: $0) } ?? "")
        }
        cb.transfer_progress = { _, payload in RemoteSession.from(payload).cancelled ? -1 : 0 }
        cb.sideband_progress = { _, _, payload in RemoteSession.from(payload).cancelled ? -1 : 0 }
        cb.pack_progress = { _, _, _, payload in RemoteSession.from(payload).cancelled ? -1 : 0 }
        cb.push_transfer_progress = { _, _, _, payload in RemoteSession.from(payload).cancelled ? -1 : 0 }
        cb.push_update_reference = { ref, status, payload in
            if let status {
                RemoteSession.from(payload).reject(ref.map { String(cString: $0) } ?? "", String(cString: status))
            }
            return 0
        }
        return cb
    }

    private static func from(_ payload: UnsafeMutableRawPointer?) -> RemoteSession {
        Unmanaged<RemoteSession>.fromOpaque(payload!).takeUnretainedValue()
    }

    private func credential(_ out: UnsafeMutablePointer<UnsafeMutablePointer<git_credential>?>?,
                            _ usernameFromURL: String?, _ allowed: UInt32) -> Int32 {
        if allowed & GIT_CREDENTIAL_SSH_KEY.rawValue != 0 {
            guard let key = credentials.sshPrivateKey else {
                fail(GitError(.authentication, operation: "ssh authentication",
                              message: "\(Redact.url(url)) asks for an SSH key; give one with --ssh-key"))
                return -1
            }
            guard firstAttempt(GIT_CREDENTIAL_SSH_KEY.rawValue) else {
                fail(GitError(.authentication, operation: "ssh authentication",
                              message: "\(Redact.url(url)) refused the SSH key \(key) for user \(usernameFromURL ?? "git")"))
                return -1
            }
            return git_credential_ssh_key_new(out, usernameFromURL ?? "git", nil, key, credentials.sshPassphrase)
        }
        if allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0 {
            guard let password = credentials.httpsPassword else {
                fail(GitError(.authentication, operation: "https authentication",
                              message: "\(Redact.url(url)) asks for credentials; give --https-token-file or --https-user with --https-password-file"))
                return -1
            }
            let user = credentials.httpsUser ?? usernameFromURL ?? "x-access-token"
            guard firstAttempt(GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue) else {
                fail(GitError(.authentication, operation: "https authentication",
                              message: "\(Redact.url(url)) refused the credentials of user \(user)"))
                return -1
            }
            return git_credential_userpass_plaintext_new(out, user, password)
        }
        if allowed & GIT_CREDENTIAL_USERNAME.rawValue != 0 {
            return git_credential_username_new(out, usernameFromURL ?? "git")
        }
        fail(GitError(.authentication, operation: "authentication", message: "\(Redact.url(url)) asks for a kind of credential cairn does not have"))
        return -1
    }

    private func checkCertificate(_ cert: UnsafeMutablePointer<git_cert>?, valid: Bool, host: String) -> Int32 {
        guard let cert else { return -1 }
        if cert.pointee.cert_type == GIT_CERT_HOSTKEY_LIBSSH2 {
            return checkHostKey(UnsafeMutableRawPointer(cert).assumingMemoryBound(to: git_cert_hostkey.self).pointee, host: host)
        }
        // TLS: libgit2 has verified the chain against the system's or --ca-file's CAs. Never
        // accept what it could not verify; by IP address, verify it here (see below).
        if !valid {
            if let address = Self.ipAddress(host), cert.pointee.cert_type == GIT_CERT_X509,
               verify(UnsafeMutableRawPointer(cert).assumingMemoryBound(to: git_cert_x509.self).pointee, address: address) {
                return 0
            }
            fail(GitError(.authentication, operation: "tls", message: "the certificate of \(host) is not trusted (give its CA with --ca-file)"))
            return -1
        }
        return 0
    }

    /// The CA bundle libgit2 trusts when no --ca-file is given (Debian's).
    static let systemCAFile = "/etc/ssl/certs/ca-certificates.crt"

    /// The bytes of an IPv4 or IPv6 literal (brackets allowed), or nil for a host name.
    static func ipAddress(_ host: String) -> [UInt8]? {
        let literal = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, literal, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// libgit2 1.5 on mbedTLS 2.28 matches the host against a certificate's DNS names only: a
    /// remote by IP address fails even when its certificate names that address, as the git CLI
    /// accepts. The chain is checked again without the name, against the same CAs, and the
    /// address must be one of the certificate's iPAddress names. (Only the server's own
    /// certificate is at hand here: one signed by an intermediate CA verifies only when that
    /// intermediate is in the CA file.)
    private func verify(_ cert: git_cert_x509, address: [UInt8]) -> Bool {
        guard let data = cert.data else { return false }
        var flags: UInt32 = 0
        let result = cairn_verify_certificate_for_address(data.assumingMemoryBound(to: UInt8.self), cert.len,
                                                           credentials.caFile ?? Self.systemCAFile, address, address.count, &flags)
        return result == 0
    }

    private func checkHostKey(_ key: git_cert_hostkey, host: String) -> Int32 {
        if credentials.insecureSkipHostKeyCheck { return 0 }
        guard key.type.rawValue & GIT_CERT_SSH_RAW.rawValue != 0, let raw = key.hostkey else {
            fail(GitError(.hostKeyUnknown, operation: "ssh host key", message: "\(host) sent no host key cairn can check"))
            return -1
        }
        let blob = Data(bytes: raw, count: key.hostkey_len)
        let keyType: String
        switch key.raw_type {
        case GIT_CERT_SSH_RAW_TYPE_RSA: keyType = "ssh-rsa"
        case GIT_CERT_SSH_RAW_TYPE_DSS: keyType = "ssh-dss"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256: keyType = "ecdsa-sha2-nistp256"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384: keyType = "ecdsa-sha2-nistp384"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521: keyType = "ecdsa-sha2-nistp521"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ED25519: keyType = "ssh-ed25519"
        default: keyType = "unknown"
        }
        // libgit2 1.5 does not pass the port: take it from the URL cairn parsed.
        let name = SSHAddress(url: url).map { $0.host == host ? $0.knownHostsName : host } ?? host
        let text: String
        do {
            text = try String(contentsOfFile: credentials.knownHostsFile, encoding: .utf8)
        } catch {
            fail(GitError(.hostKeyUnknown, operation: "ssh host key",
                          message: "cannot read known_hosts file \(credentials.knownHostsFile) to check \(name) "
                              + "(\(keyType) \(KnownHosts.fingerprint(blob))); add the host with `ssh-keyscan`"))
            return -1
        }
        let fingerprint = KnownHosts.fingerprint(blob)
        switch KnownHosts(text: text).verdict(name: name, keyType: keyType, key: blob) {
        case .trusted:
            return 0
        case .unknown:
            fail(GitError(.hostKeyUnknown, operation: "ssh host key",
                          message: "host \(name) is not in \(credentials.knownHostsFile); its \(keyType) key is \(fingerprint). "
                              + "If that is right, add it: "
                              + "ssh-keyscan\(ssh.map { $0.port == 22 ? "" : " -p \($0.port)" } ?? "") \(host) >> \(credentials.knownHostsFile)"))
        case .changed(let types):
            fail(GitError(.hostKeyChanged, operation: "ssh host key",
                          message: "the host key of \(name) has CHANGED: it sent \(keyType) \(fingerprint), "
                              + "which does not match the \(types.joined(separator: ", ")) key in \(credentials.knownHostsFile). "
                              + "Someone may be intercepting the connection; refusing to connect"))
        case .revoked:
            fail(GitError(.hostKeyChanged, operation: "ssh host key",
                          message: "the host key of \(name) (\(keyType) \(fingerprint)) is marked @revoked in \(credentials.knownHostsFile)"))
        }
        return -1
    }

    /// Runs a network operation on a thread of its own, bounded by `timeout`. On timeout (or
    /// cancellation) the caller gets an error at once, and the operation stops: its sockets are
    /// shut down (a read blocked on a stalled server returns) and its callbacks return errors.
    func run<T: Sendable>(timeout: Duration, operation: String,
                          _ body: @escaping @Sendable () throws(GitError) -> T) throws(GitError) -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        let thread = Thread { [self] in
            Thread.current.threadDictionary[SocketStream.threadKey] = self
            defer { Thread.current.threadDictionary[SocketStream.threadKey] = nil }
            box.set(Result { () throws(GitError) -> T in try body() })
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let deadline = DispatchTime.now() + seconds
        // Waited in slices, so that a cancellation (a shutdown) is seen within a tenth of a second.
        while done.wait(timeout: min(deadline, .now() + 0.1)) == .timedOut {
            if cancellation?.isCancelled == true {
                cancel()
                throw GitError(.cancelled, operation: operation, message: "\(Redact.url(url)): stopped (shutting down); the mirror is unchanged")
            }
            if DispatchTime.now() >= deadline {
                cancel()
                throw GitError(.timeout, operation: operation,
                               message: "\(Redact.url(url)) did not answer within \(Int(seconds.rounded())) s; the mirror is unchanged")
            }
        }
        switch box.get()! {
        case .success(let value): return value
        case .failure(let error): throw (failure ?? error).redacting(url)
        }
    }
}

private final class ResultBox<T: Sendable>: Sendable {
    private let value = Mutex<Result<T, GitError>?>(nil)
    func set(_ v: Result<T, GitError>) { value.withLock { $0 = v } }
    func get() -> Result<T, GitError>? { value.withLock { $0 } }
}
