import ClusterSpecs
import Testing

/// The JSON parser every API response goes through.
@Suite("JSON parser")
struct JSONParserTests {
    func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    @Test func keepsKeyOrderAndValues() throws {
        let v = try parse(#" { "b" : 1, "a": [true, false, null, -2.5e3, 7], "c": {"x": "y"} } "#)
        #expect(v.objectValue?.keys == ["b", "a", "c"])
        #expect(v["a"] == [true, false, nil, .double(-2500), 7])
        #expect(v["c", "x"] == "y")
    }

    @Test func escapesAndUnicode() throws {
        #expect(try parse(#""plain""#) == "plain")
        #expect(try parse(#""a\"b\\c\/d\n\t""#) == "a\"b\\c/d\n\t")
        #expect(try parse(#""caf\u00e9 \ud83d\ude00 x""#) == "café 😀 x")
        #expect(try parse(#""ünïcödé""#) == "ünïcödé")
    }

    @Test func aDuplicateKeyKeepsTheLastValueAtTheFirstPlace() throws {
        let small = try parse(#"{"a": 1, "b": 2, "a": 3}"#)
        #expect(small.objectValue?.keys == ["a", "b"])
        #expect(small["a"] == 3)
        // Past the size where the parser switches to a set of keys.
        let keys = (0..<20).map { "\"k\($0)\": \($0)" }.joined(separator: ", ")
        let large = try parse("{\(keys), \"k3\": 99}")
        #expect(large.objectValue?.keys.count == 20)
        #expect(large["k3"] == 99)
        #expect(large.objectValue?.keys[3] == "k3")
    }

    @Test func errorsSayWhere() {
        #expect(throws: JSONValue.ParseError.self) { try parse(#"{"a": }"#) }
        #expect(throws: JSONValue.ParseError.self) { try parse(#""unterminated"#) }
        #expect(throws: JSONValue.ParseError.self) { try parse(#"[1, 2] x"#) }
        do {
            _ = try JSONValue.parse(Array(#"{"a" 1}"#.utf8))
            Issue.record("parsed a missing ':'")
        } catch {
            #expect(error.description == "invalid JSON at byte 5: expected ':'")
        }
    }
}
