/// One problem found in a spec file: where it is, which field, and what is wrong.
///
/// Printed as `clusters/orders.yaml:14:7: spec.partitionGroups[1].partitions: must be at least 1 (got 0)`.
public struct SpecError: Error, Sendable, Hashable, Comparable, CustomStringConvertible {
    public let file: String
    public let location: Location
    /// The field path, e.g. `spec.partitionGroups[1].partitions`; empty for file-level problems.
    public let path: String
    public let message: String

    public init(file: String, location: Location, path: String, message: String) {
        self.file = file
        self.location = location
        self.path = path
        self.message = message
    }

    public var description: String {
        path.isEmpty
            ? "\(file):\(location): \(message)"
            : "\(file):\(location): \(path): \(message)"
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
