internal import CYaml

/// Turns the text of a spec file into a `SpecNode` tree, refusing what YAML allows and a spec
/// must not: aliases and anchors (no "billion laughs" expansion), explicit tags, several
/// documents in one file, duplicate keys, non-scalar keys, and very deep nesting.
///
/// Works on libyaml's event stream directly (Yams bundles libyaml as `CYaml`), so every node
/// keeps its line and column and nothing is ever expanded or recursed into without a bound.
public enum SpecFileParser {
    /// Files larger than this are refused before parsing.
    public static let maximumFileSize = 1 << 20
    /// Mappings and lists nested deeper than this are refused.
    public static let maximumDepth = 32

    /// Parses one spec file.
    ///
    /// - Parameters:
    ///   - text: The file's contents.
    ///   - file: The file's name, used in errors.
    /// - Returns: The root node of the file's single document.
    /// - Throws: `SpecError` with the location of the first problem; YAML errors stop parsing.
    public static func parse(_ text: String, file: String) throws(SpecError) -> SpecNode {
        try compose(text, file: file, multiple: false)[0]
    }

    /// Parses a file of one or more YAML documents (`---` between them), with the same rules
    /// for each; empty documents are skipped.
    ///
    /// - Returns: The documents' root nodes, at least one.
    public static func parseDocuments(_ text: String, file: String) throws(SpecError) -> [SpecNode] {
        try compose(text, file: file, multiple: true)
    }

    private static func compose(_ text: String, file: String, multiple: Bool) throws(SpecError) -> [SpecNode] {
        let bytes = Array(text.utf8)
        guard bytes.count <= maximumFileSize else {
            throw SpecError(
                file: file, location: Location(line: 1, column: 1), path: "",
                message: "file is \(bytes.count) bytes; spec files are limited to \(maximumFileSize) bytes")
        }
        var composer = Composer(file: file, multiple: multiple)
        return try bytes.withUnsafeBufferPointer { buffer throws(SpecError) in
            try composer.run(buffer)
        }
    }
}

private struct Composer {
    let file: String

    /// A container being filled while its events arrive: a class, so that an entry is appended
    /// in place (an enum's payload taken out and put back copies the whole container each time,
    /// which made a mapping of n keys cost n^2).
    private final class Frame {
        let isMapping: Bool
        let location: Location
        var entries: [SpecNode.Mapping.Entry] = []
        var items: [SpecNode] = []
        var pendingKey: SpecNode.Scalar?
        var seen: [String: Location] = [:]

        init(isMapping: Bool, location: Location) {
            self.isMapping = isMapping
            self.location = location
        }
    }

    /// Several documents allowed (`parseDocuments`).
    let multiple: Bool

    init(file: String, multiple: Bool = false) {
        self.file = file
        self.multiple = multiple
    }

    private func error(_ mark: yaml_mark_t, _ message: String) -> SpecError {
        SpecError(file: file, location: location(mark), path: "", message: message)
    }

    private func location(_ mark: yaml_mark_t) -> Location {
        Location(line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    mutating func run(_ buffer: UnsafeBufferPointer<UInt8>) throws(SpecError) -> [SpecNode] {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw SpecError(file: file, location: Location(line: 1, column: 1), path: "",
                            message: "yaml_parser_initialize failed: out of memory")
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        // libyaml wants a non-null pointer even for empty input; it reads `count` bytes, here none.
        yaml_parser_set_input_string(&parser, buffer.baseAddress ?? UnsafePointer(bitPattern: 1), buffer.count)

        var stack: [Frame] = []
        var root: SpecNode?
        var roots: [SpecNode] = []
        var documents = 0

        while true {
            var event = yaml_event_t()
            guard yaml_parser_parse(&parser, &event) == 1 else {
                let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
                let context = parser.context.map { String(cString: $0) + ": " } ?? ""
                throw error(parser.problem_mark, "invalid YAML: \(context)\(problem)")
            }
            defer { yaml_event_delete(&event) }
            let mark = event.start_mark

            var completed: SpecNode?
            switch event.type {
            case YAML_STREAM_START_EVENT:
                continue
            case YAML_DOCUMENT_END_EVENT:
                if let root { roots.append(root) }
                root = nil
                continue
            case YAML_STREAM_END_EVENT:
                guard !roots.isEmpty else {
                    throw error(mark, "file is empty; a spec file holds one cluster")
                }
                return roots
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                if documents > 1 && !multiple {
                    throw error(mark, "a second YAML document starts here; a spec file holds exactly one cluster")
                }
                if documents > 64 { throw error(mark, "more than 64 YAML documents in one file") }
                continue
            case YAML_ALIAS_EVENT:
                throw error(mark, "YAML aliases are not allowed in spec files; write the value out")
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                try refuse(anchor: scalar.anchor, tag: scalar.tag, mark: mark)
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)),
                                  as: UTF8.self)
                let plain = scalar.style == YAML_PLAIN_SCALAR_STYLE
                completed = .scalar(.init(text: text, isPlain: plain, location: location(mark)))
            case YAML_SEQUENCE_START_EVENT:
                try refuse(anchor: event.data.sequence_start.anchor, tag: event.data.sequence_start.tag, mark: mark)
                try checkDepth(stack.count, mark)
                try checkKeyPosition(stack, mark)
                stack.append(Frame(isMapping: false, location: location(mark)))
                continue
            case YAML_MAPPING_START_EVENT:
                try refuse(anchor: event.data.mapping_start.anchor, tag: event.data.mapping_start.tag, mark: mark)
                try checkDepth(stack.count, mark)
                try checkKeyPosition(stack, mark)
                stack.append(Frame(isMapping: true, location: location(mark)))
                continue
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                let frame = stack.removeLast()
                completed = frame.isMapping ? .mapping(.init(entries: frame.entries, location: frame.location))
                    : .sequence(.init(items: frame.items, location: frame.location))
            default:
                continue
            }

            guard let node = completed else { continue }
            guard let top = stack.last else {
                root = node
                continue
            }
            if !top.isMapping {
                top.items.append(node)
            } else if let key = top.pendingKey {
                top.entries.append(.init(key: key, value: node))
                top.pendingKey = nil
            } else {
                guard case .scalar(let key) = node else {
                    throw error(mark, "mapping keys must be plain strings")
                }
                if let first = top.seen[key.text] {
                    throw SpecError(file: file, location: key.location, path: "",
                                    message: "duplicate key '\(key.text)' (first at line \(first.line), column \(first.column))")
                }
                top.seen[key.text] = key.location
                top.pendingKey = key
            }
        }
    }

    private func refuse(anchor: UnsafeMutablePointer<yaml_char_t>?, tag: UnsafeMutablePointer<yaml_char_t>?,
                        mark: yaml_mark_t) throws(SpecError) {
        if anchor != nil {
            throw error(mark, "YAML anchors are not allowed in spec files; write the value out")
        }
        if let tag {
            let name = String(cString: tag)
            throw error(mark, "explicit YAML tags are not allowed in spec files (found '\(name)')")
        }
    }

    private func checkDepth(_ depth: Int, _ mark: yaml_mark_t) throws(SpecError) {
        if depth >= SpecFileParser.maximumDepth {
            throw error(mark, "nesting deeper than \(SpecFileParser.maximumDepth) levels")
        }
    }

    private func checkKeyPosition(_ stack: [Frame], _ mark: yaml_mark_t) throws(SpecError) {
        if let top = stack.last, top.isMapping, top.pendingKey == nil {
            throw error(mark, "mapping keys must be plain strings")
        }
    }
}
