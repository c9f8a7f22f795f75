internal import CLibGit2
import Crypto
import Foundation

/// A file found in a tree, as stored: never followed, never checked out.
public struct TreeFile: Sendable, Hashable {
    public enum Content: Sendable, Hashable {
        case file(Data)
        /// A symbolic link and where it points; cairn never follows it.
        case symlink(target: String)
        /// A submodule and the commit it pins; cairn never reads into it.
        case submodule(commit: String)
        /// A file larger than the limit, not read.
        case tooLarge(size: Int, limit: Int)
    }

    /// The path from the repository's root.
    public let path: String
    public let content: Content
}

/// How a path changed between two commits.
public struct PathChange: Sendable, Hashable, CustomStringConvertible {
    public enum Status: String, Sendable, Hashable {
        case added, modified, deleted, renamed, typeChanged
    }
    public let status: Status
    public let path: String
    /// For renames, where the file was before.
    public let oldPath: String?

    public var description: String {
        oldPath.map { "\(status.rawValue) \($0) -> \(path)" } ?? "\(status.rawValue) \(path)"
    }
}

/// Who a commit is by.
public struct GitSignature: Sendable, Hashable {
    public var name: String
    public var email: String

    public init(name: String, email: String) {
        self.name = name
        self.email = email
    }
}

/// A bare mirror of a remote repository in a cache directory: created on first use, updated by
/// incremental fetches, read without any working tree. The only code in cairn that reaches
/// libgit2. Every operation opens its own libgit2 handles and uses them on one thread, so a
/// `Mirror` value can be shared freely.
public struct Mirror: Sendable {
    public let url: String
    public let path: String
    public let credentials: GitCredentials
    /// The bound on every network operation.
    public let timeout: Duration
    /// Set by `offload`: the operations of this value stop when it is cancelled.
    public var cancellation: GitCancellation?

    /// Refspecs of a mirror: every branch and tag, as the remote has them.
    static let refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]

    /// Opens the mirror of `url` under `cacheDirectory`, creating an empty bare repository on
    /// first use (nothing is fetched until `fetch()`).
    ///
    /// - Throws: `GitError` when the directory cannot be created or opened.
    public static func open(url: String, cacheDirectory: String, credentials: GitCredentials = GitCredentials(),
                            timeout: Duration = .seconds(60)) throws(GitError) -> Mirror {
        LibGit2.ensureInitialised()
        if let caFile = credentials.caFile {
            try LibGit2.check(cairn_git_set_ssl_cert_locations(caFile, nil), "git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS)", context: caFile)
        }
        let digest = SHA256.hash(data: Data(url.utf8)).prefix(8).map { String($0 >> 4, radix: 16) + String($0 & 15, radix: 16) }.joined()
        let readable = Redact.url(url).split(whereSeparator: { !$0.isLetter && !$0.isNumber }).suffix(3).joined(separator: "-")
        let path = cacheDirectory + "/" + (readable.isEmpty ? "repo" : String(readable.prefix(60))) + "-" + digest + ".git"
        if FileManager.default.fileExists(atPath: path + "/HEAD") {
            _ = try Repository.open(path)
        } else {
            do {
                try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
            } catch {
                throw GitError(.invalidArgument, operation: "create cache directory", message: "\(cacheDirectory): \(error.localizedDescription)")
            }
            _ = try Repository.initBare(path)
        }
        return Mirror(url: url, path: path, credentials: credentials, timeout: timeout)
    }

    // MARK: - Network

    /// The remote's refs without fetching anything (what `git ls-remote` does): one round trip.
    ///
    /// - Returns: Ref name → commit, including `HEAD`.
    public func remoteRefs() throws(GitError) -> [String: GitOID] {
        let session = RemoteSession(url: url, credentials: credentials, cancellation: cancellation)
        let url = self.url
        return try session.run(timeout: timeout, operation: "ls-remote \(Redact.url(url))") { () throws(GitError) -> [String: GitOID] in
            let remote = try Remote.detached(url)
            var callbacks = session.callbacks()
            try LibGit2.check(git_remote_connect(remote.pointer, GIT_DIRECTION_FETCH, &callbacks, nil, nil),
                              "git_remote_connect", context: Redact.url(url))
            defer { git_remote_disconnect(remote.pointer) }
            return try Mirror.list(remote).refs
        }
    }

    /// The commit a remote ref points at (default: the remote's HEAD), without fetching.
    public func remoteHead(_ ref: String = "HEAD") throws(GitError) -> GitOID? {
        let refs = try remoteRefs()
        return refs[ref] ?? refs["refs/heads/" + ref]
    }

    private static func list(_ remote: Remote) throws(GitError) -> (refs: [String: GitOID], head: String?) {
        var heads: UnsafeMutablePointer<UnsafePointer<git_remote_head>?>?
        var count = 0
        try LibGit2.check(git_remote_ls(&heads, &count, remote.pointer), "git_remote_ls")
        var refs: [String: GitOID] = [:]
        var headTarget: String?
        for i in 0..<count {
            guard let head = heads?[i]?.pointee else { continue }
            let name = String(cString: head.name)
            refs[name] = GitOID(head.oid)
            if name == "HEAD", let target = head.symref_target { headTarget = String(cString: target) }
        }
        return (refs, headTarget)
    }

    /// Brings the mirror up to date with the remote: an incremental fetch of every branch and
    /// tag (branches deleted on the remote are pruned), and the mirror's HEAD set to the remote's.
    ///
    /// - Throws: `GitError`; on any failure the refs stay as they were.
    public func fetch() throws(GitError) {
        try connected(operation: "fetch \(Redact.url(url))") { (repo, remote, session) throws(GitError) in
            let head = try Mirror.list(remote).head
            try Mirror.download(remote, session: session, refspecs: Mirror.refspecs, url: url, prune: true)
            if let head, head.hasPrefix("refs/heads/") {
                try LibGit2.check(git_repository_set_head(repo.pointer, head), "git_repository_set_head", context: head)
            }
        }
    }

    /// Fetches only these branches (no tags, nothing else pruned): what the daemon's follower and
    /// its status writer use, so that each updates only its own ref and the two never contend
    /// for a ref's lock. A branch the remote no longer has is deleted from the mirror.
    ///
    /// - Throws: `GitError`; on any failure the refs stay as they were.
    public func fetch(branches: [String]) throws(GitError) {
        try connected(operation: "fetch \(branches.joined(separator: ", ")) from \(Redact.url(url))") { (repo, remote, session) throws(GitError) in
            let remoteRefs = try Mirror.list(remote).refs
            for gone in branches where remoteRefs["refs/heads/" + gone] == nil {
                var ref: OpaquePointer?
                if git_reference_lookup(&ref, repo.pointer, "refs/heads/" + gone) == 0 {
                    defer { git_reference_free(ref) }
                    try LibGit2.check(git_reference_delete(ref), "git_reference_delete", context: "refs/heads/" + gone)
                }
            }
            let present = branches.filter { remoteRefs["refs/heads/" + $0] != nil }
            guard !present.isEmpty else { return }
            try Mirror.download(remote, session: session, refspecs: present.map { "+refs/heads/\($0):refs/heads/\($0)" }, url: url, prune: false)
        }
    }

    /// A network operation on the mirror: its repository and an anonymous remote connected for
    /// fetching, bounded by the timeout and stopped by cancellation.
    private func connected(operation: String,
                           _ body: @escaping @Sendable (Repository, Remote, RemoteSession) throws(GitError) -> Void) throws(GitError) {
        let session = RemoteSession(url: url, credentials: credentials, cancellation: cancellation)
        let (url, path) = (self.url, self.path)
        try session.run(timeout: timeout, operation: operation) { () throws(GitError) in
            let repo = try Repository.open(path)
            let remote = try Remote.anonymous(repo, url)
            var callbacks = session.callbacks()
            try LibGit2.check(git_remote_connect(remote.pointer, GIT_DIRECTION_FETCH, &callbacks, nil, nil),
                              "git_remote_connect", context: Redact.url(url))
            defer { git_remote_disconnect(remote.pointer) }
            try body(repo, remote, session)
        }
    }

    /// Downloads `refspecs` and updates the refs they name (tags with every branch when pruning,
    /// as a whole-mirror fetch does; none otherwise).
    private static func download(_ remote: Remote, session: RemoteSession, refspecs: [String], url: String, prune: Bool) throws(GitError) {
        var callbacks = session.callbacks()
        var options = git_fetch_options()
        git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION))
        options.callbacks = callbacks
        options.prune = prune ? GIT_FETCH_PRUNE : GIT_FETCH_NO_PRUNE
        let tags = prune ? GIT_REMOTE_DOWNLOAD_TAGS_ALL : GIT_REMOTE_DOWNLOAD_TAGS_NONE
        options.download_tags = tags
        options.update_fetchhead = 0
        try withStringArray(refspecs) { (specs) throws(GitError) in
            try LibGit2.check(git_remote_download(remote.pointer, specs, &options), "git_remote_download", context: Redact.url(url))
            try LibGit2.check(git_remote_update_tips(remote.pointer, &callbacks, 0, tags, "cairn: fetch"), "git_remote_update_tips")
            if prune {
                try LibGit2.check(git_remote_prune(remote.pointer, &callbacks), "git_remote_prune")
            }
        }
    }

    // MARK: - Reading

    /// Resolves a revision to a commit: a branch, a tag, a full or short SHA, `origin/<branch>`, or `HEAD`.
    public func resolve(_ revision: String) throws(GitError) -> GitOID {
        let repo = try Repository.open(path)
        var candidates = [revision]
        if revision.hasPrefix("origin/") { candidates.append("refs/heads/" + revision.dropFirst("origin/".count)) }
        if revision == "origin" { candidates.append("HEAD") }
        var lastError: GitError?
        for candidate in candidates {
            var object: OpaquePointer?
            let code = git_revparse_single(&object, repo.pointer, candidate)
            if code == 0, let object {
                return try GitObject(object).commit().oid
            }
            lastError = LibGit2.error(code, "git_revparse_single", context: revision)
        }
        var raw = git_oid()
        if git_reference_name_to_id(&raw, repo.pointer, revision) == 0 {
            throw GitError(.libgit2(code: -1), operation: "resolve \(revision)",
                           message: "\(revision) points at \(GitOID(raw).short), which the mirror at \(path) cannot read: "
                               + "the cache is damaged (\(lastError?.message ?? "unreadable"))")
        }
        throw GitError(.notFound, operation: "resolve \(revision)",
                       message: "no branch, tag or commit named '\(revision)' in the mirror of \(Redact.url(url)) (\(lastError?.message ?? "not found"))")
    }

    /// The files under `directory` (recursively) at `commit`, read from the object database.
    ///
    /// - Parameters:
    ///   - directory: A path from the root, e.g. `clusters`; empty for the whole tree.
    ///   - sizeLimit: Larger files are reported as `tooLarge`, not read.
    /// - Returns: Files in path order. A missing directory gives an empty list.
    public func files(at commit: GitOID, under directory: String, sizeLimit: Int = 1 << 20) throws(GitError) -> [TreeFile] {
        let repo = try Repository.open(path)
        let root = try GitObject.lookup(repo, commit).commit().tree()
        let prefix = directory.split(separator: "/").joined(separator: "/")
        var tree = root
        if !prefix.isEmpty {
            var entry: OpaquePointer?
            let code = git_tree_entry_bypath(&entry, root.pointer, prefix)
            if code == GIT_ENOTFOUND.rawValue { return [] }
            try LibGit2.check(code, "git_tree_entry_bypath", context: prefix)
            defer { git_tree_entry_free(entry) }
            guard git_tree_entry_type(entry) == GIT_OBJECT_TREE else {
                throw GitError(.invalidArgument, operation: "read tree", message: "\(prefix) at \(commit.short) is a file, not a directory")
            }
            var object: OpaquePointer?
            try LibGit2.check(git_tree_entry_to_object(&object, repo.pointer, entry), "git_tree_entry_to_object", context: prefix)
            tree = GitObject(object!)
        }
        var out: [TreeFile] = []
        try walk(repo, tree, prefix: prefix.isEmpty ? "" : prefix + "/", sizeLimit: sizeLimit, into: &out)
        return out.sorted { $0.path < $1.path }
    }

    private func walk(_ repo: Repository, _ tree: GitObject, prefix: String, sizeLimit: Int, into out: inout [TreeFile]) throws(GitError) {
        let count = git_tree_entrycount(tree.pointer)
        for i in 0..<count {
            guard let entry = git_tree_entry_byindex(tree.pointer, i) else { continue }
            let name = String(cString: git_tree_entry_name(entry))
            let path = prefix + name
            let mode = git_tree_entry_filemode(entry)
            let id = GitOID(git_tree_entry_id(entry).pointee)
            switch mode {
            case GIT_FILEMODE_TREE:
                var object: OpaquePointer?
                try LibGit2.check(git_tree_entry_to_object(&object, repo.pointer, entry), "git_tree_entry_to_object", context: path)
                try walk(repo, GitObject(object!), prefix: path + "/", sizeLimit: sizeLimit, into: &out)
            case GIT_FILEMODE_COMMIT:
                out.append(TreeFile(path: path, content: .submodule(commit: id.hex)))
            case GIT_FILEMODE_LINK:
                let blob = try GitObject.lookup(repo, id, GIT_OBJECT_BLOB)
                out.append(TreeFile(path: path, content: .symlink(target: Mirror.blobString(blob))))
            default:
                let blob = try GitObject.lookup(repo, id, GIT_OBJECT_BLOB)
                let size = Int(git_blob_rawsize(blob.pointer))
                if size > sizeLimit {
                    out.append(TreeFile(path: path, content: .tooLarge(size: size, limit: sizeLimit)))
                } else {
                    out.append(TreeFile(path: path, content: .file(Mirror.blobData(blob))))
                }
            }
        }
    }

    private static func blobData(_ blob: GitObject) -> Data {
        let size = Int(git_blob_rawsize(blob.pointer))
        guard size > 0, let raw = git_blob_rawcontent(blob.pointer) else { return Data() }
        return Data(bytes: raw, count: size)
    }

    private static func blobString(_ blob: GitObject) -> String {
        String(decoding: blobData(blob), as: UTF8.self)
    }

    /// The paths under `directory` that differ between two commits, renames detected.
    public func changedPaths(from old: GitOID, to new: GitOID, under directory: String = "") throws(GitError) -> [PathChange] {
        let repo = try Repository.open(path)
        let oldTree = try GitObject.lookup(repo, old).commit().tree()
        let newTree = try GitObject.lookup(repo, new).commit().tree()
        var options = git_diff_options()
        git_diff_options_init(&options, UInt32(GIT_DIFF_OPTIONS_VERSION))
        let prefix = directory.split(separator: "/").joined(separator: "/")
        var diff: OpaquePointer?
        let specs = prefix.isEmpty ? [] : [prefix + "/"]
        try withStringArray(specs) { (array) throws(GitError) in
            if !specs.isEmpty { options.pathspec = array.pointee }
            try LibGit2.check(git_diff_tree_to_tree(&diff, repo.pointer, oldTree.pointer, newTree.pointer, &options),
                              "git_diff_tree_to_tree", context: "\(old.short)..\(new.short)")
        }
        defer { git_diff_free(diff) }
        var find = git_diff_find_options()
        git_diff_find_options_init(&find, UInt32(GIT_DIFF_FIND_OPTIONS_VERSION))
        find.flags = GIT_DIFF_FIND_RENAMES.rawValue
        try LibGit2.check(git_diff_find_similar(diff, &find), "git_diff_find_similar")
        var changes: [PathChange] = []
        for i in 0..<git_diff_num_deltas(diff) {
            guard let delta = git_diff_get_delta(diff, i)?.pointee else { continue }
            let newPath = String(cString: delta.new_file.path)
            let oldPath = String(cString: delta.old_file.path)
            switch delta.status {
            case GIT_DELTA_ADDED: changes.append(PathChange(status: .added, path: newPath, oldPath: nil))
            case GIT_DELTA_DELETED: changes.append(PathChange(status: .deleted, path: oldPath, oldPath: nil))
            case GIT_DELTA_RENAMED: changes.append(PathChange(status: .renamed, path: newPath, oldPath: oldPath))
            case GIT_DELTA_TYPECHANGE: changes.append(PathChange(status: .typeChanged, path: newPath, oldPath: nil))
            default: changes.append(PathChange(status: .modified, path: newPath, oldPath: nil))
            }
        }
        return changes
    }
}

extension Mirror {
    /// The YAML files of one commit under `directory` (`*.yaml`, `*.yml`; hidden files and
    /// directories below it skipped), as text, and each file that cannot be read as text with
    /// the reason: `path: file is N bytes; ... limited to M bytes`, a symbolic link, a submodule,
    /// not UTF-8. The one reader of spec files from git: the CLI and the daemon both use it.
    public func yamlFiles(at commit: GitOID, under directory: String, sizeLimit: Int) throws(GitError)
        -> (files: [(path: String, text: String)], problems: [(path: String, reason: String)])
    {
        let dir = directory.split(separator: "/").joined(separator: "/")
        var texts: [(path: String, text: String)] = []
        var problems: [(path: String, reason: String)] = []
        for file in try files(at: commit, under: dir, sizeLimit: sizeLimit) {
            let relative = dir.isEmpty ? file.path : String(file.path.dropFirst(dir.count + 1))
            guard !relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }),
                  file.path.hasSuffix(".yaml") || file.path.hasSuffix(".yml") else { continue }
            switch file.content {
            case .file(let data):
                guard let text = String(data: data, encoding: .utf8) else {
                    problems.append((file.path, "not UTF-8 text"))
                    continue
                }
                texts.append((file.path, text))
            case .symlink(let target):
                problems.append((file.path, "is a symbolic link to \(target); cairn does not follow links in the repository"))
            case .submodule(let pinned):
                problems.append((file.path, "is a submodule (at \(pinned.prefix(12))); cairn does not read submodules"))
            case .tooLarge(let size, let limit):
                problems.append((file.path, "file is \(size) bytes; spec files are limited to \(limit) bytes"))
            }
        }
        return (texts, problems)
    }
}

extension Mirror {
    /// Why the mirror cannot be read, or nil when it can: each of `refs` that the mirror has
    /// must name a commit whose whole tree (every tree and blob) is in the object database. A
    /// deleted or truncated pack, or deleted objects, show here: the refs say the mirror has
    /// commits it can no longer read, and a fetch would not bring them back (the remote is told
    /// the mirror has them). Reads every object of those trees: for after a failure, not for
    /// every pass.
    public func damage(refs: [String]) -> String? {
        let repo: Repository
        do { repo = try Repository.open(path) } catch { return "\(path) cannot be opened: \(error.message)" }
        for ref in refs {
            var raw = git_oid()
            guard git_reference_name_to_id(&raw, repo.pointer, ref) == 0 else { continue }  // not in the mirror: nothing to read
            let commit = GitOID(raw)
            do {
                _ = try files(at: commit, under: "", sizeLimit: 0)
            } catch {
                return "\(ref) points at \(commit.short), which cannot be read from \(path): \(error.message)"
            }
        }
        return nil
    }

    /// Moves the mirror aside (kept for a person to look at) and starts an empty one in its
    /// place; the next fetch clones afresh.
    ///
    /// - Returns: Where the damaged mirror now is.
    public func moveAsideAndRecreate() throws(GitError) -> String {
        let aside = path + ".damaged-\(Int(Date().timeIntervalSince1970))"
        do {
            try FileManager.default.moveItem(atPath: path, toPath: aside)
        } catch {
            throw GitError(.invalidArgument, operation: "move the damaged mirror aside", message: "\(path) -> \(aside): \(error.localizedDescription)")
        }
        _ = try Repository.initBare(path)
        return aside
    }
}
