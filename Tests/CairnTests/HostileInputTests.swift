import ClusterSpecs
import Render
import Testing

/// Spec files written to break cairn: each of these crashed, hung or exhausted memory. Each is
/// now a clear `file:line:column` error, and nothing is rendered for it.
@Suite("Hostile spec input")
struct HostileInputTests {
    /// Validation and rendering as every command runs them; the errors.
    func errors(_ yaml: String) -> [String] {
        let state = DesiredState(files: [DesiredState.File(path: "t.yaml", text: yaml)])
        #expect(state.clusters.isEmpty || state.errors.isEmpty)
        return state.errors.map(\.description)
    }

    @Test(arguments: ["-922337203685477580.7", "1.5e-9223372036854775808", "10e9223372036854775807", "1e-9223372036854775807", "1e999999999999"])
    func quantitiesThatOverflowedOrHung(_ size: String) {
        let found = errors(ValidationTests.postgres("", name: "pg").replacingOccurrences(of: "volume: {size: 1Gi}", with: "volume: {size: \"\(size)\"}"))
        #expect(found.count == 1 && found[0].contains("spec.volume.size: "), "\(found)")
        let resources = ValidationTests.postgres("  resources: {requests: {cpu: \"\(size)\"}}\n")
        #expect(!errors(resources).isEmpty)
    }

    @Test func quantitiesPrintWithoutOverflow() throws {
        // A mantissa that cannot be shifted onto a multiple of 3 prints in exponent form.
        let q = try Quantity(parsing: "-922337203685477580.7")
        #expect(q.description == "-9223372036854775807e-1")
        #expect(try Quantity(parsing: "922337203685477580.7").description == "9223372036854775807e-1")
        #expect(try Quantity(parsing: "1e30").description == "1e30")
        #expect(throws: Quantity.ParseError.self) { try Quantity(parsing: "1e31") }
    }

    @Test func patroniDurationsAreBounded() {
        let yaml = ValidationTests.postgres("  patroni: {ttl: 1, loop_wait: 9223372036854775807, retry_timeout: 1}\n")
        #expect(errors(yaml) == ["t.yaml:9:32: spec.patroni.loop_wait: must be at most 86400 (got 9223372036854775807)"])
    }

    @Test(arguments: ["9223372036854775807", "1000000001", "101"])
    func atomixGroupSizesAreBounded(_ size: String) {
        let yaml = ValidationTests.atomixHead + "  version: 3.1.0\n  managementGroup: {size: \(size)}\n"
        #expect(errors(yaml) == ["t.yaml:6:27: spec.managementGroup.size: must be at most 99 (got \(size))"])
        let group = ValidationTests.atomixHead + "  version: 3.1.0\n  partitionGroups:\n  - {name: g, size: \(size), partitions: 1, primaryBackup: {}}\n"
        if size.count > 4 {
            #expect(errors(group).first?.contains("spec.partitionGroups[0].size: must be at most 1000") == true, "\(errors(group))")
        }
    }
}
