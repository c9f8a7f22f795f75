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

    /// The writer appends runs that need no escape whole: what it writes reads back the same,
    /// also where an escaped character and a combining mark make one Character.
    @Test func writtenStringsReadBackTheSame() throws {
        let strings = ["", "plain", "\"\u{301}x", "\\\u{308}", "a\r\nb", "\r\n", "tab\there", "\u{1}\u{1F}\u{7F}",
                       "café 😀 \u{85}\u{2028}\u{2029}\u{FEFF}", "e\u{301}\"", "line one\nline \"two\"\n", "\u{9F}\u{FFFE}"]
        for s in strings {
            let value = JSONValue.object(JSONObject([(key: s, value: .string(s))]))
            for text in [value.compactJSON(), value.canonicalJSON(), value.prettyJSON()] {
                #expect(try parse(text) == value, "\(text.debugDescription)")
                #expect(!text.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "\(text.debugDescription)")
            }
        }
        #expect(JSONValue.string("a\"\u{301}\\\n").compactJSON() == #""a\"\#u{301}\\\n""#)
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

    /// RFC 8259's grammar, as the JSON parsing test suite checks it: these were accepted.
    @Test(arguments: [
        "-01", "01", "2.", ".2e-3", "+1", "1e", "1e+", "-", "0x1F", "1.e3", "Infinity", "NaN",
        "\"tab\there\"", "\"new\nline\"", "\"nul\u{0}\"",
        #""\x41""#, #""\U0041""#, #""\0""#, #""\'""#, "\"\\😀\"", #""\u00G1""#, #""\u+0041""#,
    ])
    func refusesWhatTheGrammarDoesNotAllow(_ text: String) {
        #expect(throws: JSONValue.ParseError.self, "accepted \(text)") { try parse(text) }
    }

    @Test func acceptsEveryNumberTheGrammarAllows() throws {
        #expect(try parse("0") == 0)
        #expect(try parse("-0") == 0)
        #expect(try parse("10") == 10)
        #expect(try parse("-1.5") == .double(-1.5))
        #expect(try parse("1E3") == .double(1000))
        #expect(try parse("1e-2") == .double(0.01))
        #expect(try parse("0.5e+1") == .double(5))
        #expect(try parse("[1,0,-0.0]") == [1, 0, .double(-0.0)])
    }

    /// Lone and malformed surrogate escapes crashed the parser (UInt32 underflow), in values and
    /// keys: they read as U+FFFD, and a following escape is read on its own.
    @Test func loneSurrogatesReadAsTheReplacementCharacter() throws {
        #expect(try parse(#""\ud800\u0041""#) == "\u{FFFD}A")
        #expect(try parse(#""\udbff\udbff""#) == "\u{FFFD}\u{FFFD}")
        #expect(try parse(#""\ud800\u0000""#) == "\u{FFFD}\u{0}")
        #expect(try parse(#""\udc00""#) == "\u{FFFD}")
        #expect(try parse(#""x\ud800""#) == "x\u{FFFD}")
        #expect(try parse(#"{"\ud800\u0041": 1}"#).objectValue?.keys == ["\u{FFFD}A"])
        #expect(try parse(#""\ud83d\ude00""#) == "😀")
    }

    /// 20,000 keys and one duplicate: rebuilding the object was quadratic (over 120 s).
    @Test func manyKeysWithADuplicate() throws {
        let keys = (0..<20_000).map { "\"k\($0)\": \($0)" }.joined(separator: ",")
        let v = try parse("{\(keys),\"k7\": -1}")
        #expect(v.objectValue?.keys.count == 20_000)
        #expect(v["k7"] == -1)
        #expect(v.objectValue?.keys[7] == "k7")
    }

    /// The writer writes bytes: the escapes it chooses, scalar by scalar (JSON leaves C1 controls
    /// and U+FFFE raw, YAML double quotes do not).
    @Test func escapesAreWrittenExactly() {
        #expect(JSONValue.string("\u{85}|\u{2028}|\u{2029}|\u{FEFF}|\u{9F}|\u{FFFE}|é😀|\u{7F}|\u{1}").compactJSON()
            == "\"\\u0085|\\u2028|\\u2029|\\ufeff|\u{9F}|\u{FFFE}|é😀|\\u007f|\\u0001\"")
        var yaml = ""
        JSONValue.writeYAMLDoubleQuoted("\u{85}\u{9F}\u{FFFE}\u{FFFF}é\"\t", into: &yaml)
        #expect(yaml == "\"\\u0085\\u009f\\ufffe\\uffff\u{E9}\\\"\\t\"")
        var json = "prefix "
        JSONValue.writeJSONString("a\u{9F}b", into: &json)
        #expect(json == "prefix \"a\u{9F}b\"")
    }

    /// Integers of up to 18 digits are read without a String; longer ones the old way.
    @Test func integersAtTheEdges() throws {
        #expect(try parse("999999999999999999") == .int(999_999_999_999_999_999))
        #expect(try parse("-999999999999999999") == .int(-999_999_999_999_999_999))
        #expect(try parse("9223372036854775807") == .int(Int.max))
        #expect(try parse("-9223372036854775808") == .int(Int.min))
        #expect(try parse("9223372036854775808") == .double(9223372036854775808))
        #expect(try parse("[-7, 42, 0]") == [-7, 42, 0])
        #expect(JSONValue.int(-12).compactJSON() == "-12" && JSONValue.int(7).compactJSON() == "7")
    }

    /// Canonical JSON sorts keys at every level, whether or not they came sorted.
    @Test func canonicalSortsAtEveryLevel() {
        let v: JSONValue = ["b": ["z": 1, "a": [["y": true, "x": nil]]], "a": ["a": 1, "b": 2]]
        #expect(v.canonicalJSON() == #"{"a":{"a":1,"b":2},"b":{"a":[{"x":null,"y":true}],"z":1}}"#)
        #expect(v.compactJSON() == #"{"b":{"z":1,"a":[{"y":true,"x":null}]},"a":{"a":1,"b":2}}"#)
        #expect(v.prettyJSON() == "{\n  \"b\": {\n    \"z\": 1,\n    \"a\": [\n      {\n        \"y\": true,\n        \"x\": null\n      }\n    ]\n  },\n  \"a\": {\n    \"a\": 1,\n    \"b\": 2\n  }\n}")
    }

    /// An object built in code with a repeated key keeps its first place and takes its last
    /// value, small (scanned) or large (hashed).
    @Test func builtObjectsSettleRepeatedKeys() {
        let small = JSONObject([(key: "a", value: 1), (key: "b", value: 2), (key: "a", value: 3)])
        #expect(small.keys == ["a", "b"] && small["a"] == 3)
        let many = (0..<20).map { (key: "k\($0)", value: JSONValue.int($0)) } + [(key: "k5", value: -1)]
        let large = JSONObject(many)
        #expect(large.keys.count == 20 && large["k5"] == -1 && large.keys[5] == "k5")
        let distinct = JSONObject((0..<16).map { (key: "k\($0)", value: JSONValue.int($0)) })
        #expect(distinct.keys == (0..<16).map { "k\($0)" })
    }

    /// A LIST of cairn's objects is read without cairn's own `fieldsV1`: the entry stays (so
    /// `slim` still sees and drops it), other managers' entries are whole, everything else is
    /// as a plain parse reads it.
    @Test func cairnsOwnFieldsAreDroppedAndNothingElse() throws {
        let text = #"""
            {"items": [{"metadata": {"name": "a", "managedFields": [
                {"manager": "cairn", "operation": "Apply", "fieldsV1": {"f:data": {"f:x": {}, "f:\"]}": {}}, "f:s": "[{\\"}, "time": "t1"},
                {"manager": "kubectl-edit", "fieldsV1": {"f:data": {"f:y": {}}}},
                {"fieldsV1": {"f:early": {}}, "manager": "cairn"}
              ]}, "data": {"x": "1", "fieldsV1": "kept"}}],
             "managedFields": [{"manager": "cairn", "fieldsV1": [1, {"a": [2]}]}]}
            """#
        let plain = try parse(text)
        let dropped = try JSONValue.parse(Array(text.utf8), droppingFieldsOf: "cairn")
        let entries = try #require(dropped["items"]?.arrayValue?.first?["metadata", "managedFields"]?.arrayValue)
        #expect(entries[0] == ["manager": "cairn", "operation": "Apply", "time": "t1"])
        #expect(entries[1] == plain["items"]?.arrayValue?.first?["metadata", "managedFields"]?.arrayValue?[1])
        #expect(entries[2]["fieldsV1"] == ["f:early": [:]])
        #expect(dropped["items"]?.arrayValue?.first?["data"] == ["x": "1", "fieldsV1": "kept"])
        #expect(dropped["managedFields"] == [["manager": "cairn"]])
        // Another manager's name drops only its own.
        let other = try JSONValue.parse(Array(text.utf8), droppingFieldsOf: "kubectl-edit")
        #expect(other["items"]?.arrayValue?.first?["metadata", "managedFields"]?.arrayValue?[0] == plain["items"]?.arrayValue?.first?["metadata", "managedFields"]?.arrayValue?[0])
        #expect(other["items"]?.arrayValue?.first?["metadata", "managedFields"]?.arrayValue?[1] == ["manager": "kubectl-edit"])
    }

    /// What is skipped is still checked: brackets that do not match, an unterminated string or
    /// an unterminated document are refused as a plain parse refuses them.
    @Test(arguments: [
        #"{"managedFields": [{"manager": "cairn", "fieldsV1": {"f:a": ]}]}"#,
        #"{"managedFields": [{"manager": "cairn", "fieldsV1": {"f:a": {}]}]}"#,
        #"{"managedFields": [{"manager": "cairn", "fieldsV1": {"f:a": "open}]}"#,
        #"{"managedFields": [{"manager": "cairn", "fieldsV1": {"f:a": {"#,
        #"{"managedFields": [{"manager": "cairn", "fieldsV1": nul}]}"#,
    ])
    func skippedValuesAreStillChecked(_ text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(text.utf8), droppingFieldsOf: "cairn") }
        #expect(throws: JSONValue.ParseError.self) { try parse(text) }
    }

    /// Skipping nests no deeper than parsing does.
    @Test func skippedValuesHaveTheSameDepthLimit() throws {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        let text = #"{"managedFields": [{"manager": "cairn", "fieldsV1": "# + deep + "}]}"
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(text.utf8), droppingFieldsOf: "cairn") }
        let fine = #"{"managedFields": [{"manager": "cairn", "fieldsV1": "# + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}]}"
        #expect(try JSONValue.parse(Array(fine.utf8), droppingFieldsOf: "cairn")["managedFields"] == [["manager": "cairn"]])
    }
}
