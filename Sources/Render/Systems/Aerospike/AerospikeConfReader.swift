/// Reads aerospike.conf by the server's rules, for the round-trip fuzz target and its tests: a
/// line is split on whitespace, `#` starts a comment, a line whose last token is a lone `{`
/// opens a context named by its other tokens, a lone `}` closes one. Braces inside a token
/// (`${un}`) are part of the value.
package enum AerospikeConfReader {
    package indirect enum Item: Equatable, Sendable {
        case line(key: String, values: [String])
        case context(head: [String], items: [Item])
    }

    package struct Failure: Error, CustomStringConvertible {
        package let line: Int
        package let message: String
        package var description: String { "aerospike.conf line \(line): \(message)" }
    }

    package static func parse(_ text: String) throws(Failure) -> [Item] {
        var stack: [(head: [String], items: [Item])] = [([], [])]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let tokens = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let last = tokens.last else { continue }
            if tokens == ["}"] {
                guard stack.count > 1 else { throw Failure(line: n + 1, message: "'}' closes no context") }
                let done = stack.removeLast()
                stack[stack.count - 1].items.append(.context(head: done.head, items: done.items))
            } else if last == "{" {
                guard tokens.count > 1 else { throw Failure(line: n + 1, message: "a context without a name") }
                guard stack.count < 64 else { throw Failure(line: n + 1, message: "nested too deeply") }
                stack.append((Array(tokens.dropLast()), []))
            } else if tokens.contains("{") || tokens.contains("}") {
                throw Failure(line: n + 1, message: "a lone brace inside a line")
            } else {
                stack[stack.count - 1].items.append(.line(key: tokens[0], values: Array(tokens.dropFirst())))
            }
        }
        guard stack.count == 1 else { throw Failure(line: text.split(separator: "\n").count, message: "a context is not closed") }
        return stack[0].items
    }
}
