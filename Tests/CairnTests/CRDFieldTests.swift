import ClusterSpecs
import Foundation
@testable import Render
import Testing

/// Every field of the upstream CRDs, at the operators' current releases, is rendered, accepted
/// with a note, or refused saying why: never "unknown field", which reads like a typo.
///
/// `CRDFields/upstream-crd-fields.json` lists the CRDs' `spec` fields (six levels deep, list
/// items as `[]`) with a placeholder of their type, generated from the CRDs its `source` names;
/// regenerate it when moving to a new upstream release (KurrentDB's is written from the
/// operator's API reference page, which is all it publishes). Each field is set, alone, in a real
/// upstream manifest (read from `../shared/upstream-samples/`) and the file validated.
@Suite("Upstream CRD fields", .enabled(if: UpstreamSamples.available))
struct CRDFieldTests {
    struct System {
        var name: String
        var source: String
        var base: String
        var fields: [(path: String, placeholder: JSONValue)]
    }

    static func systems() throws -> [System] {
        let url = Repo.root.appendingPathComponent("Tests/CairnTests/CRDFields/upstream-crd-fields.json")
        let doc = try JSONValue.parse(Array(try Data(contentsOf: url)))
        return (doc.objectValue?.entries ?? []).map { entry in
            System(name: entry.key, source: entry.value["source"]?.stringValue ?? "", base: entry.value["base"]?.stringValue ?? "",
                   fields: (entry.value["fields"]?.arrayValue ?? []).compactMap { pair in
                       guard let path = pair.arrayValue?.first?.stringValue, let value = pair.arrayValue?.last else { return nil }
                       return (path, value)
                   })
        }
    }

    /// `document` with the field at `path` (`spec.a[].b`) set: missing mappings and lists are
    /// made, a list's first item is used.
    static func setting(_ path: ArraySlice<Substring>, to value: JSONValue, in document: JSONValue) -> JSONValue {
        guard let head = path.first else { return value }
        let isList = head.hasSuffix("[]")
        let key = String(isList ? head.dropLast(2) : head)
        var object = document.objectValue ?? JSONObject()
        let rest = path.dropFirst()
        if isList {
            var items = object[key]?.arrayValue ?? []
            let first = items.first?.objectValue.map(JSONValue.object) ?? .object(JSONObject())
            let item = setting(rest, to: value, in: first)
            if items.isEmpty { items = [item] } else { items[0] = item }
            object[key] = .array(items)
        } else {
            object[key] = setting(rest, to: value, in: object[key] ?? .object(JSONObject()))
        }
        return .object(object)
    }

    @Test func everyFieldOfTheUpstreamCRDsIsKnown() throws {
        let systems = try Self.systems()
        #expect(systems.map(\.name).sorted() == ["aerospike", "kurrentdb", "zalando-postgres"])
        for system in systems {
            // KurrentDB's from the operator's API reference (it publishes no CRD), to the depth it documents.
            #expect(system.fields.count > (system.name == "kurrentdb" ? 100 : 200), "\(system.name): \(system.fields.count) fields")
            let baseText = Repo.read(UpstreamSamples.directory.appendingPathComponent(system.base))
            #expect(specErrors(baseText, file: system.base).isEmpty, "\(system.base) must validate as it is")
            let base = Field.toJSON(try SpecFileParser.parse(baseText, file: system.base))
            var unknown: [String] = []
            for (path, placeholder) in system.fields {
                let document = Self.setting(path.split(separator: ".")[...], to: placeholder, in: base)
                let errors = specErrors(document.canonicalJSON(), file: "\(system.name).yaml")
                if let error = errors.first(where: { $0.contains("unknown field") }) { unknown.append("\(path): \(error)") }
            }
            #expect(unknown.isEmpty, "\(system.source): \(unknown.count) fields called unknown:\n\(unknown.joined(separator: "\n"))")
        }
    }

    /// The compatibility tables (`cairn fields`, in the README) name every field the decoders
    /// refuse: a field of the upstream CRD set alone that is refused as not supported is in its
    /// system's table, and every row of the table is a field the CRD has.
    @Test func everyRefusedFieldIsInTheCompatibilityTable() throws {
        let tables: [String: any ClusterSystem.Type] = ["aerospike": AerospikeSystem.self, "kurrentdb": EventStoreSystem.self,
                                                        "zalando-postgres": PostgresSystem.self]
        for system in try Self.systems() {
            let kind = try #require(tables[system.name])
            let listed = Set(kind.fieldPolicies.keys).union(kind.refusedInDecoder.keys)
            let base = Field.toJSON(try SpecFileParser.parse(Repo.read(UpstreamSamples.directory.appendingPathComponent(system.base)), file: system.base))
            var missing: [String] = []
            var refusedPaths = Set<String>()
            for (path, placeholder) in system.fields {
                let document = Self.setting(path.split(separator: ".")[...], to: placeholder, in: base)
                for error in specErrors(document.canonicalJSON(), file: "\(system.name).yaml") {
                    guard let refused = Self.refusal(error), FieldPolicy.pattern(refused) == path else { continue }
                    refusedPaths.insert(path)
                    if !listed.contains(path) { missing.append("\(path): \(error)") }
                    if let why = kind.refusedInDecoder[path] { #expect(error.hasSuffix(": " + why), "the table's reason differs: \(error)") }
                }
            }
            #expect(missing.isEmpty, "\(system.name): refused but not in the compatibility table:\n\(missing.joined(separator: "\n"))")
            let crd = Set(system.fields.map(\.path))
            for path in kind.refusedInDecoder.keys {
                #expect(crd.contains(path), "\(system.name): \(path) is no field of the upstream CRD")
                // A row of the table that the decoder no longer refuses (rendered now) goes.
                #expect(refusedPaths.contains(path), "\(system.name): \(path) is in the table as refused, but the decoder accepts it")
            }
            #expect(Set(kind.refusedInDecoder.keys).isDisjoint(with: kind.fieldPolicies.keys), "\(system.name): a field in both tables")
        }
    }

    /// The path of a "not supported by cairn" refusal (`file:line:column: path: message`).
    static func refusal(_ error: String) -> String? {
        let parts = error.components(separatedBy: ": ")
        guard parts.count >= 3, parts[2].contains("not supported by cairn") else { return nil }
        return parts[1]
    }

    /// The placeholder document really reaches the decoder: a field no CRD has is unknown.
    @Test func aFieldNoCRDHasIsStillUnknown() throws {
        let base = Field.toJSON(try SpecFileParser.parse(
            Repo.read(UpstreamSamples.directory.appendingPathComponent("zalando-postgres/minimal-postgres-manifest.yaml")), file: "m.yaml"))
        for path in ["spec.enableConnectionPoolr", "spec.connectionPooler.numberOfInstance", "spec.env[].valueFrm"] {
            let document = Self.setting(path.split(separator: ".")[...], to: "x", in: base)
            #expect(specErrors(document.canonicalJSON()).contains { $0.contains("unknown field") }, "\(path)")
        }
    }
}
