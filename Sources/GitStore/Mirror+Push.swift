internal import CLibGit2
import Foundation

extension Mirror {
    /// Commits in-memory file contents on top of a branch's head and pushes the commit, without
    /// any working tree. When the push is rejected because someone pushed first, fetches,
    /// rebuilds the commit on the new head (their commit kept) and tries again, with bounded
    /// backoff. Fetches and updates only `branch`'s ref.
    ///
    /// - Parameters:
    ///   - branch: The branch to commit to; created (with no parent) when the remote lacks it.
    ///   - changes: Path from the root → new contents, or nil to delete the file. Paths not
    ///     named keep the content the head has.
    ///   - whole: When the branch does not exist (never made, or deleted meanwhile): every file it
    ///     should hold, so that a new branch starts whole rather than with only `changes`.
    ///   - message: The commit message.
    ///   - author: Author and committer.
    ///   - maxAttempts: Pushes tried before giving up.
    /// - Returns: The pushed commit, or the branch head unchanged when the changes change nothing.
    /// - Throws: `GitError` (`.pushRejected` after `maxAttempts` lost races).
    @discardableResult
    public func commitAndPush(branch: String, changes: [String: Data?], whole: [String: Data]? = nil, message: String,
                              author: GitSignature, maxAttempts: Int = 5) throws(GitError) -> GitOID {
        try commitAndPush(branch: branch, changes: changes, whole: whole, message: message, author: author, maxAttempts: maxAttempts,
                          beforePush: { _ in })
    }

    /// `beforePush` runs between building the commit and pushing it, with the attempt number:
    /// the tests' way to let someone else push first.
    func commitAndPush(branch: String, changes: [String: Data?], whole: [String: Data]? = nil, message: String, author: GitSignature,
                       maxAttempts: Int, beforePush: (Int) -> Void) throws(GitError) -> GitOID {
        let ref = "refs/heads/" + branch
        var delay = 0.05
        for attempt in 1...maxAttempts {
            // This branch only: a fetch of the others may be under way (the daemon's follower).
            try fetch(branches: [branch])
            // No such branch yet: the first commit has no parent. Any other failure (a damaged
            // mirror) is an error, never a root commit that would replace the branch's history.
            var head: GitOID?
            do {
                head = try resolve(ref)
            } catch where error.kind == .notFound {
                head = nil
            }
            let content = head == nil ? (whole?.mapValues { Optional($0) } ?? changes).merging(changes) { _, change in change } : changes
            guard let commit = try buildCommit(parent: head, changes: content, message: message, author: author) else {
                return head!
            }
            beforePush(attempt)
            if try push(commit, to: ref) {
                let repo = try Repository.open(path)
                var raw = commit.raw
                var out: OpaquePointer?
                try LibGit2.check(git_reference_create(&out, repo.pointer, ref, &raw, 1, "cairn: pushed"), "git_reference_create", context: ref)
                git_reference_free(out)
                return commit
            }
            if attempt < maxAttempts {
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 2)
            }
        }
        throw GitError(.pushRejected, operation: "push \(ref) to \(Redact.url(url))",
                       message: "rejected \(maxAttempts) times: others keep pushing to \(branch); try again later")
    }

    /// A new commit with `changes` applied to `parent`'s tree; nil when the tree would not change.
    private func buildCommit(parent: GitOID?, changes: [String: Data?], message: String, author: GitSignature) throws(GitError) -> GitOID? {
        let repo = try Repository.open(path)
        var index: OpaquePointer?
        try LibGit2.check(git_index_new(&index), "git_index_new")
        defer { git_index_free(index) }
        var parentCommit: GitObject?
        var parentTree: GitOID?
        if let parent {
            let commit = try GitObject.lookup(repo, parent).commit()
            let tree = try commit.tree()
            try LibGit2.check(git_index_read_tree(index, tree.pointer), "git_index_read_tree")
            parentCommit = commit
            parentTree = tree.oid
        }
        for (path, data) in changes.sorted(by: { $0.key < $1.key }) {
            guard !path.isEmpty, !path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
                throw GitError(.invalidArgument, operation: "commit", message: "'\(path)' is not a path inside the repository")
            }
            if let data {
                var blob = git_oid()
                let created = data.withUnsafeBytes { bytes in
                    git_blob_create_from_buffer(&blob, repo.pointer, bytes.baseAddress, bytes.count)
                }
                try LibGit2.check(created, "git_blob_create_from_buffer", context: path)
                var entry = git_index_entry()
                entry.mode = 0o100644
                entry.id = blob
                entry.file_size = UInt32(truncatingIfNeeded: data.count)
                let added = path.withCString { cPath in
                    entry.path = cPath
                    return git_index_add(index, &entry)
                }
                try LibGit2.check(added, "git_index_add", context: path)
            } else {
                let code = git_index_remove(index, path, 0)
                if code < 0, code != GIT_ENOTFOUND.rawValue { try LibGit2.check(code, "git_index_remove", context: path) }
            }
        }
        var treeID = git_oid()
        try LibGit2.check(git_index_write_tree_to(&treeID, index, repo.pointer), "git_index_write_tree_to")
        if let parentTree, GitOID(treeID) == parentTree { return nil }
        let tree = try GitObject.lookup(repo, GitOID(treeID), GIT_OBJECT_TREE)

        var signature: UnsafeMutablePointer<git_signature>?
        try LibGit2.check(git_signature_now(&signature, author.name, author.email), "git_signature_now",
                          context: "\(author.name) <\(author.email)>")
        defer { git_signature_free(signature) }
        var commitID = git_oid()
        var parents: [OpaquePointer?] = parentCommit.map { [$0.pointer] } ?? []
        let code = parents.withUnsafeMutableBufferPointer { buffer in
            git_commit_create(&commitID, repo.pointer, nil, signature, signature, nil, message, tree.pointer,
                              buffer.count, buffer.baseAddress)
        }
        try LibGit2.check(code, "git_commit_create")
        return GitOID(commitID)
    }

    /// Pushes `commit` to `ref` without force. Returns false when the remote rejected it as not
    /// a fast-forward (someone pushed first).
    private func push(_ commit: GitOID, to ref: String) throws(GitError) -> Bool {
        let session = RemoteSession(url: url, credentials: credentials, cancellation: cancellation)
        let (url, path) = (self.url, self.path)
        let outgoing = "refs/cairn/outgoing/" + ref.dropFirst("refs/heads/".count)
        return try session.run(timeout: timeout, operation: "push \(Redact.url(url))") { () throws(GitError) -> Bool in
            let repo = try Repository.open(path)
            var raw = commit.raw
            var reference: OpaquePointer?
            try LibGit2.check(git_reference_create(&reference, repo.pointer, outgoing, &raw, 1, "cairn: outgoing"),
                              "git_reference_create", context: outgoing)
            defer {
                git_reference_delete(reference)
                git_reference_free(reference)
            }
            let remote = try Remote.anonymous(repo, url)
            var options = git_push_options()
            git_push_options_init(&options, UInt32(GIT_PUSH_OPTIONS_VERSION))
            options.callbacks = session.callbacks()
            let code = try withStringArray(["\(outgoing):\(ref)"]) { (specs) throws(GitError) -> Int32 in
                git_remote_push(remote.pointer, specs, &options)
            }
            if code == GIT_ENONFASTFORWARD.rawValue || code == GIT_EEXISTS.rawValue { return false }
            if code < 0 {
                let error = LibGit2.error(code, "git_remote_push", context: Redact.url(url))
                if error.message.contains("non-fast-forward") || error.message.contains("fast-forwardable") { return false }
                throw session.failure ?? error
            }
            if let rejection = session.rejections.first {
                if rejection.status.contains("fast-forward") || rejection.status.contains("fetch first")
                    || rejection.status.contains("stale") || rejection.status.contains("failed to lock") {
                    return false
                }
                throw GitError(.pushRejected, operation: "push \(ref) to \(Redact.url(url))", message: "the remote refused: \(rejection.status)")
            }
            return true
        }
    }
}

/// Who made a commit and on what.
public struct CommitInfo: Sendable, Hashable {
    public let authorName: String
    public let authorEmail: String
    public let message: String
    /// The first parent; nil for a root commit.
    public let parent: GitOID?
}

extension Mirror {
    /// The author, message and first parent of a commit in the mirror.
    public func commitInfo(_ commit: GitOID) throws(GitError) -> CommitInfo {
        let repo = try Repository.open(path)
        let object = try GitObject.lookup(repo, commit, GIT_OBJECT_COMMIT)
        // A git_object of type commit is a git_commit.
        let author = git_commit_author(object.pointer).pointee
        let message = git_commit_message(object.pointer).map { String(cString: $0) } ?? ""
        var parent: GitOID?
        if git_commit_parentcount(object.pointer) > 0, let id = git_commit_parent_id(object.pointer, 0) {
            parent = GitOID(id.pointee)
        }
        return CommitInfo(authorName: author.name.map { String(cString: $0) } ?? "", authorEmail: author.email.map { String(cString: $0) } ?? "",
                          message: message, parent: parent)
    }
}
