import JSON
import Foundation

/// Bearer tokens for requests: a literal token, a token file re-read when it changes (projected
/// service-account tokens rotate), or an exec credential plugin's token, cached until it expires.
actor TokenSource {
    private let auth: KubeAuth
    private var cached: (token: String, until: Date)?

    init(auth: KubeAuth) {
        self.auth = auth
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func invalidate() {
        cached = nil
    }

    func token() throws(Failure) -> String? {
        switch auth {
        case .none:
            return nil
        case .token(let t):
            return t
        case .tokenFile(let path):
            if let cached, cached.until > Date() { return cached.token }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw Failure(description: "cannot read the token file \(path)")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            // Re-read at least every minute: kubelets rotate projected tokens well before expiry.
            cached = (token, Date().addingTimeInterval(60))
            return token
        case .exec(let exec):
            if let cached, cached.until > Date().addingTimeInterval(10) { return cached.token }
            let (token, expiry) = try run(exec)
            cached = (token, expiry ?? Date().addingTimeInterval(300))
            return token
        }
    }

    private func run(_ exec: ExecConfig) throws(Failure) -> (String, Date?) {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in exec.env { env[k] = v }
        env["KUBERNETES_EXEC_INFO"] = JSONValue.object([
            "apiVersion": .string(exec.apiVersion), "kind": "ExecCredential",
            "spec": ["interactive": false],
        ]).canonicalJSON()
        let result: Subprocess.Result
        do {
            result = try Subprocess.run([exec.command] + exec.args, environment: env, timeout: 60)
        } catch {
            throw Failure(description: "cannot run the credential plugin \(exec.command): \(error)")
        }
        guard result.status == 0 else {
            let output = String(decoding: result.stderr, as: UTF8.self).prefix(300)
            throw Failure(description: "the credential plugin \(exec.command) failed (exit \(result.status)): \(output)")
        }
        let data = result.stdout
        let credential: JSONValue
        do { credential = try JSONValue.parse(data) } catch {
            throw Failure(description: "the credential plugin \(exec.command) did not print an ExecCredential: \(error)")
        }
        guard let token = credential["status", "token"]?.stringValue, !token.isEmpty else {
            throw Failure(description: "the credential plugin \(exec.command) printed no status.token")
        }
        let expiry = credential["status", "expirationTimestamp"]?.stringValue.flatMap(UTCTime.parse)
        return (token, expiry)
    }
}
