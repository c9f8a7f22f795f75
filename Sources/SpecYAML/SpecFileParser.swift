internal import CYaml

/// Turns the text of a spec file into a `SpecNode` tree, refusing what YAML allows and a spec
/// must not: explicit tags, several documents in one file, duplicate keys, non-scalar keys,
/// very deep nesting, and aliases beyond a budget (no "billion laughs" expansion).
///
/// Anchors and aliases are allowed within limits: at most `maximumAliases` aliases, which
/// together expand to at most `maximumExpandedNodes` nodes. A merge key (`<<: *defaults`, or a
/// list of aliases) adds the keys of the merged mappings that the mapping does not set itself,
/// as Kubernetes' YAML reader does. An aliased node keeps the location of its anchor.
///
/// Works on libyaml's event stream directly (Yams bundles libyaml as `CYaml`), so every node
/// keeps its line and column and nothing is ever expanded or recursed into without a bound.
public enum SpecFileParser {
    /// Files larger than this are refused before parsing.
    public static let maximumFileSize = 1 << 20
    /// Mappings and lists nested deeper than this are refused.
    public static let maximumDepth = 32
    /// Aliases (`*name`) allowed in one file.
    public static let maximumAliases = 1_000
    /// Nodes all aliases of a file may expand to together (each alias counts the nodes of what
    /// it names).
    public static let maximumExpandedNodes = 100_000

    /// Parses one spec file.
    ///
    /// - Parameters:
    ///   - text: The file's contents.
    ///   - file: The file's name, used in errors.
    /// - Returns: The root node of the file's single document.
    /// - Throws: `SpecError` with the location of the first problem; YAML errors stop parsing.
    public static func parse(_ text: String, file: String) throws(SpecError) -> SpecNode {
        let parsed = try compose(text, file: file, multiple: false)
        if let first = parsed.problems.first { throw first }
        return parsed.documents[0]
    }

    /// Parses a file of one or more YAML documents (`---` between them), with the same rules
    /// for each; empty documents are skipped.
    ///
    /// - Returns: The documents' root nodes, at least one.
    public static func parseDocuments(_ text: String, file: String) throws(SpecError) -> [SpecNode] {
        let parsed = try compose(text, file: file, multiple: true)
        if let first = parsed.problems.first { throw first }
        return parsed.documents
    }

    /// Parses a file of one or more documents, reading on past the problems that leave the
    /// rest of the file readable (an explicit tag, a duplicate key, an alias naming no anchor,
    /// a merge key of the wrong type), so that they are reported together with every other
    /// problem of the file. The node in question is read as if untagged, the duplicate key's
    /// value is skipped, the alias reads as null, the merge is left out.
    ///
    /// - Returns: The documents and those problems.
    /// - Throws: `SpecError` for what stops reading: invalid YAML, a size or count limit.
    public static func parseDocumentsReadingOn(_ text: String, file: String) throws(SpecError) -> (documents: [SpecNode], problems: [SpecError]) {
        try compose(text, file: file, multiple: true)
    }

    private static func compose(_ text: String, file: String, multiple: Bool) throws(SpecError) -> (documents: [SpecNode], problems: [SpecError]) {
        let bytes = Array(text.utf8)
        guard bytes.count <= maximumFileSize else {
            throw SpecError(
                file: file, location: Location(line: 1, column: 1), path: "",
                message: "file is \(bytes.count) bytes; spec files are limited to \(maximumFileSize) bytes")
        }
        var composer = Composer(file: file, multiple: multiple)
        let documents = try bytes.withUnsafeBufferPointer { buffer throws(SpecError) in
            try composer.run(buffer)
        }
        return (documents, composer.problems)
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
        /// The pending key repeats an earlier one: its value is read and left out.
        var pendingIsDuplicate = false
        var seen: [String: Location] = [:]
        /// The anchor the container is defined with (`&name`).
        let anchor: String?
        /// Nodes in the container so far, itself included.
        var size = 1
        /// Levels of containers from this one down (1: only scalars in it).
        var height = 1
        /// Mappings merged in with `<<`, in order (the first one's keys win).
        var merged: [SpecNode.Mapping] = []

        init(isMapping: Bool, location: Location, anchor: String?) {
            self.isMapping = isMapping
            self.location = location
            self.anchor = anchor
        }
    }

    /// Anchored nodes so far, with their sizes in nodes.
    private var anchors: [String: (node: SpecNode, size: Int, height: Int)] = [:]
    /// Problems after which reading goes on (see `parseDocumentsReadingOn`).
    private(set) var problems: [SpecError] = []
    private var aliases = 0
    private var expanded = 0

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
            var completedSize = 1
            var completedHeight = 0
            var completedAnchor: String?
            switch event.type {
            case YAML_STREAM_START_EVENT:
                continue
            case YAML_DOCUMENT_END_EVENT:
                // An empty document (a file ending in `---`, `---` twice) is no document.
                if let root, root != .scalar(.init(text: "", isPlain: true, location: root.location)) { roots.append(root) }
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
                anchors = [:]  // an anchor names a node of its own document only
                continue
            case YAML_ALIAS_EVENT:
                let name = String(cString: event.data.alias.anchor)
                try checkKeyPosition(stack, mark)
                guard let target = anchors[name] else {
                    problems.append(error(mark, "alias *\(name) names no anchor defined before it"))
                    completed = .scalar(.init(text: "null", isPlain: true, location: location(mark)))
                    break
                }
                aliases += 1
                expanded += target.size
                if aliases > SpecFileParser.maximumAliases {
                    throw error(mark, "more than \(SpecFileParser.maximumAliases) YAML aliases in one file")
                }
                if expanded > SpecFileParser.maximumExpandedNodes {
                    throw error(mark, "YAML aliases expand to more than \(SpecFileParser.maximumExpandedNodes) nodes here; "
                                + "write the values out or alias less")
                }
                // What an alias names nests as deep as where it was written, from here.
                if stack.count + target.height > SpecFileParser.maximumDepth {
                    throw error(mark, "nesting deeper than \(SpecFileParser.maximumDepth) levels (through alias *\(name))")
                }
                completed = target.node
                completedSize = target.size
                completedHeight = target.height
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                refuse(tag: scalar.tag, mark: mark)
                completedAnchor = scalar.anchor.map { String(cString: $0) }
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)),
                                  as: UTF8.self)
                let plain = scalar.style == YAML_PLAIN_SCALAR_STYLE
                completed = .scalar(.init(text: text, isPlain: plain, location: location(mark)))
            case YAML_SEQUENCE_START_EVENT:
                let start = event.data.sequence_start
                refuse(tag: start.tag, mark: mark)
                try checkDepth(stack.count, mark)
                try checkKeyPosition(stack, mark)
                stack.append(Frame(isMapping: false, location: location(mark), anchor: start.anchor.map { String(cString: $0) }))
                continue
            case YAML_MAPPING_START_EVENT:
                let start = event.data.mapping_start
                refuse(tag: start.tag, mark: mark)
                try checkDepth(stack.count, mark)
                try checkKeyPosition(stack, mark)
                stack.append(Frame(isMapping: true, location: location(mark), anchor: start.anchor.map { String(cString: $0) }))
                continue
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                let frame = stack.removeLast()
                if frame.isMapping {
                    // Merged keys come after the mapping's own, which win (YAML's merge key).
                    var entries = frame.entries
                    var keys = Set(frame.entries.map(\.key.text))
                    for source in frame.merged {
                        for entry in source.entries where keys.insert(entry.key.text).inserted { entries.append(entry) }
                    }
                    completed = .mapping(.init(entries: entries, location: frame.location))
                } else {
                    completed = .sequence(.init(items: frame.items, location: frame.location))
                }
                completedSize = frame.size
                completedHeight = frame.height
                completedAnchor = frame.anchor
            default:
                continue
            }

            guard let node = completed else { continue }
            if let completedAnchor { anchors[completedAnchor] = (node, completedSize, completedHeight) }
            guard let top = stack.last else {
                root = node
                continue
            }
            top.size += completedSize
            top.height = max(top.height, completedHeight + 1)
            if !top.isMapping {
                top.items.append(node)
            } else if let key = top.pendingKey {
                top.pendingKey = nil
                if top.pendingIsDuplicate {
                    top.pendingIsDuplicate = false
                } else if key.isPlain && key.text == "<<" {
                    top.merged += mergeSources(node)
                } else {
                    top.entries.append(.init(key: key, value: node))
                }
            } else {
                guard case .scalar(let key) = node else {
                    throw error(mark, "mapping keys must be plain strings")
                }
                if let first = top.seen[key.text] {
                    problems.append(SpecError(file: file, location: key.location, path: "",
                                              message: "duplicate key '\(key.text)' (first at line \(first.line), column \(first.column))"))
                    top.pendingIsDuplicate = true
                } else {
                    top.seen[key.text] = key.location
                }
                top.pendingKey = key
            }
        }
    }

    /// The mappings a merge key names: one mapping, or a list of mappings.
    /// The mappings a merge key names: one mapping, or a list of mappings (else a problem, and
    /// nothing merged).
    private mutating func mergeSources(_ node: SpecNode) -> [SpecNode.Mapping] {
        let problem = SpecError(file: file, location: node.location, path: "", message: "a merge key (<<) takes a mapping or a list of mappings")
        switch node {
        case .mapping(let m):
            return [m]
        case .sequence(let s):
            var out: [SpecNode.Mapping] = []
            for item in s.items {
                guard case .mapping(let m) = item else {
                    problems.append(SpecError(file: file, location: item.location, path: "", message: problem.message))
                    return []
                }
                out.append(m)
            }
            return out
        case .scalar:
            problems.append(problem)
            return []
        }
    }

    private mutating func refuse(tag: UnsafeMutablePointer<yaml_char_t>?, mark: yaml_mark_t) {
        if let tag {
            let name = String(cString: tag)
            problems.append(error(mark, "explicit YAML tags are not allowed in spec files (found '\(name)')"))
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
