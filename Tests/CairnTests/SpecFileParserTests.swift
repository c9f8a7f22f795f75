import ClusterSpecs
import Testing

@Suite("Spec file YAML: what YAML allows and a spec must not")
struct SpecFileParserTests {
    func parseError(_ text: String) -> String? {
        do {
            _ = try SpecFileParser.parse(text, file: "f.yaml")
            return nil
        } catch {
            return error.description
        }
    }

    @Test func keepsLocationsOfEveryNode() throws {
        let node = try SpecFileParser.parse("a:\n  b: [1, x]\n  c: 'q'\n", file: "f.yaml")
        guard case .mapping(let top) = node, case .mapping(let a)? = top["a"], case .sequence(let b)? = a["b"] else {
            Issue.record("unexpected shape")
            return
        }
        #expect(a.location == Location(line: 2, column: 3))
        #expect(b.items[1].location == Location(line: 2, column: 10))
        guard case .scalar(let c)? = a["c"] else { Issue.record("c"); return }
        #expect(c.location == Location(line: 3, column: 6))
        #expect(c.isPlain == false)
    }

    @Test func duplicateKeyIsReportedAtTheSecondKey() {
        #expect(parseError("spec:\n  size: 1\n  size: 2\n") == "f.yaml:3:3: duplicate key 'size' (first at line 2, column 3)")
    }

    @Test func aliasesAreRefused() {
        #expect(parseError("a: &x 1\nb: *x\n") == "f.yaml:1:4: YAML anchors are not allowed in spec files; write the value out")
    }

    @Test func billionLaughsIsRefusedWithoutExpanding() {
        var doc = "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for i in 1...9 {
            doc += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ",") + "]\n"
        }
        #expect(parseError(doc)?.hasPrefix("f.yaml:1:5: YAML anchors are not allowed") == true)
    }

    @Test func explicitTagsAreRefused() {
        #expect(parseError("a: !!binary aGVsbG8=\n") == "f.yaml:1:4: explicit YAML tags are not allowed in spec files (found 'tag:yaml.org,2002:binary')")
    }

    @Test func aSecondDocumentIsRefused() {
        #expect(parseError("a: 1\n---\nb: 2\n") == "f.yaml:2:1: a second YAML document starts here; a spec file holds exactly one cluster")
    }

    @Test func deepNestingIsRefused() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "\n"
        #expect(parseError(deep) == "f.yaml:1:33: nesting deeper than 32 levels")
        let veryDeep = String(repeating: "[", count: 100_000)
        #expect(parseError(veryDeep) != nil)
    }

    @Test func emptyFileIsAnError() {
        #expect(parseError("") == "f.yaml:1:1: file is empty; a spec file holds one cluster")
        #expect(parseError("# only a comment\n") == "f.yaml:2:1: file is empty; a spec file holds one cluster")
    }

    @Test func syntaxErrorsCarryTheirLocation() {
        #expect(parseError("a: [1, 2\nb: 3\n")?.hasPrefix("f.yaml:2:") == true)
        #expect(parseError("a:\n\tb: 1\n")?.hasPrefix("f.yaml:2:1: invalid YAML") == true)
    }

    @Test func complexKeysAreRefused() {
        #expect(parseError("? [a]\n: 1\n") == "f.yaml:1:3: mapping keys must be plain strings")
    }

    @Test func oversizedFilesAreRefused() {
        let big = "a: \"" + String(repeating: "x", count: SpecFileParser.maximumFileSize) + "\"\n"
        #expect(parseError(big)?.contains("spec files are limited to 1048576 bytes") == true)
    }

    @Test func plainScalarsResolveLikeYAML12() {
        #expect(ResolvedScalar.resolvePlain("3") == .int(3))
        #expect(ResolvedScalar.resolvePlain("0x1F") == .int(31))
        #expect(ResolvedScalar.resolvePlain("1.5") == .double(1.5))
        #expect(ResolvedScalar.resolvePlain("true") == .bool(true))
        #expect(ResolvedScalar.resolvePlain("yes") == .string("yes"))
        #expect(ResolvedScalar.resolvePlain("~") == .null)
        #expect(ResolvedScalar.resolvePlain("3.1.0") == .string("3.1.0"))
        #expect(ResolvedScalar.resolvePlain("10Gi") == .string("10Gi"))
    }
}

@Suite("Kubernetes quantities in the API server's canonical form")
struct QuantityTests {
    @Test(arguments: [
        ("1000m", "1"), ("0.5", "500m"), ("500m", "500m"), ("2048Mi", "2Gi"), ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"), ("10Gi", "10Gi"), ("1Gi", "1Gi"), ("100Mi", "100Mi"), ("1e3", "1e3"), ("1500", "1500"),
        ("2000", "2k"), ("0", "0"), ("0Gi", "0"), ("512", "512"), ("1G", "1G"), ("1000M", "1G"), ("100m", "100m"),
        ("0.1", "100m"), ("1024", "1024"), ("1Ki", "1Ki"), ("0.5Ki", "512"), ("2", "2"), ("32MB", nil),
    ] as [(String, String?)])
    func canonicalForm(input: String, expected: String?) {
        let parsed = try? Quantity(parsing: input)
        #expect(parsed?.description == expected)
    }

    @Test func rejectsWhatIsNotAQuantity() {
        for bad in ["", "Gi", "1..2", "1 Gi", "abc", "1Zi", "--1"] {
            #expect(throws: Quantity.ParseError.self) { try Quantity(parsing: bad) }
        }
    }

    @Test func comparesByValue() throws {
        #expect(try Quantity(parsing: "1Gi") > Quantity(parsing: "1G"))
        #expect(try Quantity(parsing: "1000m") == Quantity(parsing: "1"))
    }
}
