import Foundation

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
        let data: Data
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            if let size = attributes[.size] as? Int, size > SpecFileParser.maximumFileSize {
                throw ReadError(path: path, reason: "file is \(size) bytes; spec files are limited to \(SpecFileParser.maximumFileSize) bytes")
            }
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch let e as ReadError {
            throw e
        } catch {
            throw ReadError(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
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
