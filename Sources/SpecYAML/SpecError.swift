/// One problem found in a spec file: where it is, which field, and what is wrong.
///
/// Printed as `clusters/orders.yaml:14:7: spec.partitionGroups[1].partitions: must be at least 1 (got 0)`.
public struct SpecError: Error, Sendable, Hashable, Comparable, CustomStringConvertible {
    public let file: String
    public let location: Location
    /// The field path, e.g. `spec.partitionGroups[1].partitions`; empty for file-level problems.
    public let path: String
    public let message: String
    /// A note that asks for attention (printed as `warning:`, not `note:`): something accepted
    /// that may not be what the author wants (a Secret's values in git).
    public var isWarning = false

    public init(file: String, location: Location, path: String, message: String) {
        self.file = file
        self.location = location
        self.path = path
        self.message = message
    }

    /// How `validate` and `plan` print a note: `note: ...` or `warning: ...`.
    public var noteLine: String { (isWarning ? "warning: " : "note: ") + description }

    /// One line whatever the spec held: control characters in keys and values (a newline
    /// could otherwise forge another error line) are written as escapes.
    public var description: String {
        let text = path.isEmpty ? "\(file):\(location): \(message)" : "\(file):\(location): \(path): \(message)"
        return text.escapingControlCharacters
    }

    public static func < (lhs: SpecError, rhs: SpecError) -> Bool {
        (lhs.file, lhs.location, lhs.path, lhs.message) < (rhs.file, rhs.location, rhs.path, rhs.message)
    }
}

/// All the problems of one or more files, reported together.
public struct SpecErrors: Error, Sendable, CustomStringConvertible {
    public let errors: [SpecError]

    public init(_ errors: [SpecError]) {
        self.errors = errors.sorted()
    }

    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}

extension String {
    /// Control characters as escapes (`\n`, `\t`, `\r`, `\u{1b}`): text from a spec file
    /// printed on one line of a terminal, a log or a pull-request comment.
    public var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "\u{2028}" || $0 == "\u{2029}" || $0 == "\u{85}" }) else {
            return self
        }
        var out = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{2028}" || scalar == "\u{2029}" || scalar == "\u{85}":
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
