import ArgumentParser
import ClusterSpecs
import Foundation
import GitStore
import Render

/// Options of every command that reads a git repository: where, which revision, and the
/// credentials. Each option can also come from the environment variable named in its help.
struct GitOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Read the spec files from this git repository (URL or local path) instead of PATHs.", valueName: "url-or-path"))
    var repo: String?

    @Option(help: ArgumentHelp("Revision to read: branch, tag, SHA, origin/<branch>, HEAD.", valueName: "rev"))
    var ref: String = "HEAD"

    @Option(help: ArgumentHelp("Directory of the spec files inside the repository.", valueName: "dir"))
    var path: String = "clusters"

    @Option(help: ArgumentHelp("SSH private key for ssh:// remotes. [env: CAIRN_SSH_KEY]", valueName: "file"))
    var sshKey: String?

    @Option(help: ArgumentHelp("File holding the SSH key's passphrase. [env: CAIRN_SSH_KEY_PASSPHRASE_FILE]", valueName: "file"))
    var sshKeyPassphraseFile: String?

    @Option(help: ArgumentHelp("known_hosts file that SSH host keys are checked against (default ~/.ssh/known_hosts). "
                               + "[env: CAIRN_KNOWN_HOSTS]", valueName: "file"))
    var knownHosts: String?

    @Flag(help: ArgumentHelp("Do not check SSH host keys. Anyone on the network path can then impersonate the server. "
                             + "[env: CAIRN_INSECURE_SKIP_HOST_KEY_CHECK=true]"))
    var insecureSkipHostKeyCheck = false

    @Option(help: ArgumentHelp("File holding an HTTPS token. [env: CAIRN_HTTPS_TOKEN_FILE]", valueName: "file"))
    var httpsTokenFile: String?

    @Option(help: ArgumentHelp("HTTPS user name, used with --https-password-file. [env: CAIRN_HTTPS_USER]", valueName: "name"))
    var httpsUser: String?

    @Option(help: ArgumentHelp("File holding the HTTPS password. [env: CAIRN_HTTPS_PASSWORD_FILE]", valueName: "file"))
    var httpsPasswordFile: String?

    @Option(help: ArgumentHelp("PEM file of the CAs trusted for HTTPS remotes. [env: CAIRN_CA_FILE]", valueName: "file"))
    var caFile: String?

    @Option(help: ArgumentHelp("Seconds allowed for each network operation. [env: CAIRN_GIT_TIMEOUT]", valueName: "seconds"))
    var gitTimeout: Int?

    @Option(help: ArgumentHelp("Where bare mirrors (repos/) and rendered objects (render/: apply, plan --live) are kept "
                               + "(default ~/.cache/cairn). [env: CAIRN_CACHE_DIR]", valueName: "dir"))
    var cacheDir: String?

    private static var environment: [String: String] { ProcessInfo.processInfo.environment }

    private func setting(_ value: String?, _ variable: String) -> String? {
        value ?? Self.environment[variable].flatMap { $0.isEmpty ? nil : $0 }
    }

    func validate() throws {
        if setting(httpsPasswordFile, "CAIRN_HTTPS_PASSWORD_FILE") != nil, setting(httpsUser, "CAIRN_HTTPS_USER") == nil {
            throw ValidationError("--https-password-file needs --https-user.")
        }
        if setting(httpsTokenFile, "CAIRN_HTTPS_TOKEN_FILE") != nil, setting(httpsPasswordFile, "CAIRN_HTTPS_PASSWORD_FILE") != nil {
            throw ValidationError("Give either --https-token-file or --https-user with --https-password-file, not both.")
        }
        if let t = gitTimeout, t < 1 { throw ValidationError("--git-timeout must be at least 1 second.") }
    }

    /// Reads a secret from a file, without the trailing newline editors add.
    private func secret(_ file: String, _ what: String) throws -> String {
        do {
            var text = try String(contentsOfFile: file, encoding: .utf8)
            while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
            return text
        } catch {
            throw ValidationError("cannot read the \(what) file \(file): \(error.localizedDescription)")
        }
    }

    func credentials() throws -> GitCredentials {
        let skip = insecureSkipHostKeyCheck || Self.environment["CAIRN_INSECURE_SKIP_HOST_KEY_CHECK"] == "true"
        var password: String?
        if let file = setting(httpsTokenFile, "CAIRN_HTTPS_TOKEN_FILE") { password = try secret(file, "HTTPS token") }
        if let file = setting(httpsPasswordFile, "CAIRN_HTTPS_PASSWORD_FILE") { password = try secret(file, "HTTPS password") }
        return GitCredentials(
            sshPrivateKey: setting(sshKey, "CAIRN_SSH_KEY"),
            sshPassphrase: try setting(sshKeyPassphraseFile, "CAIRN_SSH_KEY_PASSPHRASE_FILE").map { try secret($0, "SSH key passphrase") },
            knownHostsFile: setting(knownHosts, "CAIRN_KNOWN_HOSTS"),
            insecureSkipHostKeyCheck: skip,
            httpsUser: setting(httpsUser, "CAIRN_HTTPS_USER"),
            httpsPassword: password,
            caFile: setting(caFile, "CAIRN_CA_FILE"))
    }

    var timeout: Duration {
        .seconds(gitTimeout ?? setting(nil, "CAIRN_GIT_TIMEOUT").flatMap(Int.init) ?? 60)
    }

    var cacheDirectory: String {
        if let dir = setting(cacheDir, "CAIRN_CACHE_DIR") { return dir + "/repos" }
        let base = Self.environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")
        return base + "/cairn/repos"
    }

    /// Where `RenderCache` keeps rendered objects between runs (absolute: a relative
    /// `--cache-dir` is taken from the current directory).
    var renderCacheDirectory: String {
        let base: String
        if let dir = setting(cacheDir, "CAIRN_CACHE_DIR") {
            base = dir + "/render"
        } else {
            base = (Self.environment["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/cairn/render"
        }
        return base.hasPrefix("/") ? base : FileManager.default.currentDirectoryPath + "/" + base
    }

    /// A local path given as the repository becomes absolute, so its mirror is the same from any directory.
    var remoteURL: String? {
        guard let repo else { return nil }
        if !repo.contains("://"), FileManager.default.fileExists(atPath: repo) {
            return URL(fileURLWithPath: repo).standardizedFileURL.path
        }
        return repo
    }

    /// The mirror of `--repo`, fetched.
    func fetchedMirror() throws -> Mirror {
        guard let url = remoteURL else { throw ValidationError("no --repo given") }
        let mirror = try Mirror.open(url: url, cacheDirectory: cacheDirectory, credentials: credentials(), timeout: timeout)
        try mirror.fetch()
        return mirror
    }

    /// The spec files at `--ref` under `--path`, read through the mirror as `(path in repo, text)`.
    /// Links, submodules, oversized and non-UTF-8 files are reported, never followed or read.
    func readSpecFiles() throws -> (files: [(path: String, text: String)], problems: [(path: String, reason: String)]) {
        guard remoteURL != nil else { return ([], []) }
        let mirror = try fetchedMirror()
        return try specFiles(in: mirror, at: try mirror.resolve(ref))
    }

    /// The spec files of one commit under `--path`.
    func specFiles(in mirror: Mirror, at commit: GitOID) throws -> (files: [(path: String, text: String)], problems: [(path: String, reason: String)]) {
        try mirror.yamlFiles(at: commit, under: path, sizeLimit: SpecFileParser.maximumFileSize)
    }
}

/// `--no-render-cache`, and the cache it turns off (`apply`, `plan --live`).
struct RenderCacheFlag: ParsableArguments {
    @Flag(help: ArgumentHelp("Render every file, without the objects kept from earlier runs for files whose text, path, "
                             + "render options and cairn build are unchanged. [env: CAIRN_RENDER_CACHE=off]"))
    var noRenderCache = false

    /// The cache for these options, or nil (turned off, or not usable here: see `RenderCache.open`).
    func open(_ git: GitOptions, options: RenderOptions) -> RenderCache? {
        guard !noRenderCache, ProcessInfo.processInfo.environment["CAIRN_RENDER_CACHE"] != "off" else { return nil }
        return RenderCache.open(directory: git.renderCacheDirectory, options: options)
    }

    /// Writes the cache; a cache that cannot be written is a warning, never a failed run.
    static func save(_ cache: RenderCache?) {
        do { try cache?.save() } catch { printError("warning: \(error)") }
    }
}
