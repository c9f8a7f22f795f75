import Foundation
import Glibc

/// Finds and reads spec files on disk.
public enum SpecFiles {
    public struct ReadError: Error, CustomStringConvertible, Sendable {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// The spec files named by `paths`: files as given, directories searched recursively for
    /// `*.yaml` and `*.yml` (hidden files and directories skipped), each directory's files in
    /// sorted order.
    ///
    /// - Throws: `ReadError` when a path does not exist or cannot be listed.
    public static func find(_ paths: [String]) throws(ReadError) -> [String] {
        var out: [String] = []
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw ReadError(path: path, reason: "no such file or directory")
            }
            if !isDirectory.boolValue {
                out.append(path)
                continue
            }
            try walk(path, into: &out)
        }
        return out
    }

    private static func walk(_ dir: String, into out: inout [String]) throws(ReadError) {
        let fm = FileManager.default
        let entries: [String]
        do {
            entries = try fm.contentsOfDirectory(atPath: dir).sorted()
        } catch {
            throw ReadError(path: dir, reason: "cannot list directory: \(error.localizedDescription)")
        }
        let base = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
        for name in entries where !name.hasPrefix(".") {
            let full = base + "/" + name
            var isDirectory: ObjCBool = false
            _ = fm.fileExists(atPath: full, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                try walk(full, into: &out)
            } else if name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
                out.append(full)
            }
        }
    }

    /// Reads a file as UTF-8 text, refusing files over the spec size limit.
    ///
    /// - Throws: `ReadError` naming the file.
    public static func read(_ path: String) throws(ReadError) -> String {
        // open/fstat/read: FileManager's attributes look up the owner's name (a passwd lookup
        // per file, through nscd where it runs), a tenth of a no-op `cairn apply` at 1,000 files.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)  // a FIFO must not hang the read
        guard fd >= 0 else { throw ReadError(path: path, reason: "cannot read: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ReadError(path: path, reason: "cannot read: \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw ReadError(path: path, reason: "not a regular file") }
        let limit = SpecFileParser.maximumFileSize
        guard info.st_size <= limit else {
            throw ReadError(path: path, reason: "file is \(info.st_size) bytes; spec files are limited to \(limit) bytes")
        }
        // Read to the end, whatever fstat said (the file may grow meanwhile), up to the limit.
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var count = 0
        while true {
            if count == bytes.count {
                guard count <= limit else { throw ReadError(path: path, reason: "file is over \(limit) bytes; spec files are limited to \(limit) bytes") }
                bytes.append(contentsOf: repeatElement(0, count: max(4096, count)))
            }
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(path: path, reason: "cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            count += n
        }
        guard count <= limit else { throw ReadError(path: path, reason: "file is \(count) bytes; spec files are limited to \(limit) bytes") }
        guard let text = String(validating: bytes[..<count], as: UTF8.self) else {
            throw ReadError(path: path, reason: "not UTF-8 text")
        }
        return text
    }
}

extension SpecFiles {
    /// Standard base64 of a string's UTF-8 (a Secret's `data` from its `stringData`).
    package static func base64(_ text: String) -> String {
        Data(text.utf8).base64EncodedString()
    }
}
