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

    @Test func anchorsAndAliasesAreExpandedWithTheAnchorsLocation() throws {
        let node = try SpecFileParser.parse("a: &x {p: 1, q: [2]}\nb: *x\nc: &unused 3\n", file: "f.yaml")
        guard case .mapping(let top) = node, case .mapping(let a)? = top["a"], case .mapping(let b)? = top["b"] else {
            Issue.record("unexpected shape: \(node)")
            return
        }
        #expect(a == b)
        #expect(b.location == Location(line: 1, column: 4))  // where the anchored mapping starts: its anchor
        #expect(top["c"].map { if case .scalar(let s) = $0 { s.text } else { "" } } == "3")
    }

    @Test func aMergeKeyAddsTheKeysTheMappingDoesNotSet() throws {
        let text = """
            base: &base {image: x, replicas: 3, labels: {a: b}}
            more: &more {replicas: 5, extra: e}
            one:
              <<: *base
              replicas: 1
            two:
              <<: [*more, *base]
            "<<": quoted is an ordinary key
            """
        let node = try SpecFileParser.parse(text + "\n", file: "f.yaml")
        guard case .mapping(let top) = node, case .mapping(let one)? = top["one"], case .mapping(let two)? = top["two"] else {
            Issue.record("unexpected shape: \(node)")
            return
        }
        func value(_ m: SpecNode.Mapping, _ key: String) -> String? { if case .scalar(let s)? = m[key] { s.text } else { nil } }
        #expect(one.entries.map(\.key.text) == ["replicas", "image", "labels"])
        #expect(value(one, "replicas") == "1" && value(one, "image") == "x")
        // The first merged mapping wins over the later ones.
        #expect(two.entries.map(\.key.text) == ["replicas", "extra", "image", "labels"])
        #expect(value(two, "replicas") == "5")
        #expect(top["<<"] != nil)
        #expect(parseError("a: &a 1\nb:\n  <<: *a\n") == "f.yaml:1:4: a merge key (<<) takes a mapping or a list of mappings")
    }

    /// Found in review: an alias nested its whole subtree where it was written, past the depth limit.
    @Test func aliasesNestNoDeeperThanTheLimit() {
        var doc = "a0: &a0 [x]\n"
        for i in 1...40 { doc += "a\(i): &a\(i) [*a\(i - 1)]\n" }
        #expect(parseError(doc)?.hasSuffix("nesting deeper than 32 levels (through alias *a30)") == true, "\(parseError(doc) ?? "")")
    }

    /// A file that ends in `---` (as many do) has no empty document after it.
    @Test func emptyDocumentsAreSkipped() throws {
        #expect(try SpecFileParser.parseDocuments("a: 1\n---\n", file: "f.yaml").count == 1)
        #expect(try SpecFileParser.parseDocuments("---\na: 1\n---\n---\nb: 2\n---\n", file: "f.yaml").count == 2)
        #expect(specErrors(ValidationTests.postgres("") + "---\n").isEmpty)
    }

    @Test func anAliasMustNameAnEarlierAnchor() {
        #expect(parseError("b: *x\na: &x 1\n") == "f.yaml:1:4: alias *x names no anchor defined before it")
        // Anchors belong to their document.
        #expect(throws: SpecError.self) { try SpecFileParser.parseDocuments("a: &x 1\n---\nb: *x\n", file: "f.yaml") }
    }

    @Test func billionLaughsIsRefusedWithoutExpanding() {
        var doc = "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for i in 1...9 {
            doc += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ",") + "]\n"
        }
        // a0 to a4 expand to 74,718 nodes; a4 names 66,430, so the first alias in a5 passes the budget.
        #expect(parseError(doc) == "f.yaml:6:10: YAML aliases expand to more than 100000 nodes here; write the values out or alias less")
        let many = "a: &a 1\nb: [" + Array(repeating: "*a", count: 1_001).joined(separator: ", ") + "]\n"
        #expect(parseError(many) == "f.yaml:2:\(5 + 4 * 1_000): more than 1000 YAML aliases in one file")
    }

    /// A YAML-level problem that leaves the file readable comes with every other problem of it.
    @Test func yamlProblemsComeWithTheFilesOtherErrors() {
        let yaml = ValidationTests.postgres("  numberOfInstances: 3\n  bogus: !!str x\n  numberOfInstanses: *nowhere\n")
        let errors = specErrors(yaml)
        #expect(errors.count == 5, "\(errors)")
        #expect(errors.contains("t.yaml:9:3: duplicate key 'numberOfInstances' (first at line 6, column 3)"), "\(errors)")
        #expect(errors.contains("t.yaml:10:10: explicit YAML tags are not allowed in spec files (found 'tag:yaml.org,2002:str')"), "\(errors)")
        #expect(errors.contains("t.yaml:11:22: alias *nowhere names no anchor defined before it"), "\(errors)")
        #expect(errors.contains { $0.hasPrefix("t.yaml:10:3: spec.bogus: unknown field") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("t.yaml:11:3: spec.numberOfInstanses: unknown field; did you mean numberOfInstances?") }, "\(errors)")
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
