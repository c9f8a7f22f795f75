import DNSProxy
import Foundation
import Testing

/// `cairn dns-proxy` (KurrentDB SplitDNS's resolver): its rules and message handling, then the
/// real binary between `dig` and `dnsmasq` standing in for the cluster DNS.
@Suite("SplitDNS proxy")
struct DNSProxyTests {
    @Test func rulesMatchOrdinalsOnly() throws {
        let rule = try DNSRule(parsing: "esdb-{n}.esdb.kurrent.test=esdb-{n}.esdb.db.svc.cluster.local")
        #expect(rule.match("esdb-0.esdb.kurrent.test") == .name("esdb-0.esdb.db.svc.cluster.local"))
        #expect(rule.match("ESDB-12.esdb.Kurrent.Test") == .name("esdb-12.esdb.db.svc.cluster.local"))
        #expect(rule.match("esdb-.esdb.kurrent.test") == nil)
        #expect(rule.match("esdb-x.esdb.kurrent.test") == nil)
        #expect(rule.match("esdb-0.other.esdb.kurrent.test") == nil)
        #expect(rule.match("esdb-replica-0.esdb.kurrent.test") == nil)
        #expect(rule.match("esdb-0.esdb.kurrent.test.db.svc.cluster.local") == nil)
        let exact = try DNSRule(parsing: "Legacy.Kurrent.Test.=10.9.9.9")
        #expect(exact.match("legacy.kurrent.test") == .ipv4([10, 9, 9, 9]))
        #expect(exact.match("x.legacy.kurrent.test") == nil)
        #expect(try DNSRule(parsing: "v6.test=fd00::1").match("v6.test") == .ipv6([0xfd] + [UInt8](repeating: 0, count: 14) + [1]))

        for (bad, says) in [("no-equals", "not FROM=TO"), ("a_{n}.{n}.x=y", "more than once"), ("a..b=c", "not a host name"),
                            ("a-{n}.x=b.y", "on both sides or on neither"), ("a.x=b-{n}.y", "on both sides or on neither"),
                            ("a.x=-b.y", "neither an address nor a host name")] {
            #expect(throws: DNSRule.Invalid.self) { try DNSRule(parsing: bad) }
            do { _ = try DNSRule(parsing: bad) } catch { #expect(error.description.contains(says), "\(bad): \(error)") }
        }
    }

    @Test func messagesReadCompressedNamesAndRefuseLoops() throws {
        // A reply as servers write it: the answer's name points at the question's.
        var reply: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]
        reply += [1, 0x61, 4] + Array("test".utf8) + [0, 0, 1, 0, 1]  // a.test A IN, at offset 12
        reply += [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, 0x62, 0xC0, 14]  // a.test CNAME b.test (compressed)
        reply += [1, 0x62, 0xC0, 14, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 7]  // b.test A 10.0.0.7
        let m = try DNSMessage(parsing: reply)
        #expect(m.id == 0x1234 && m.responseCode == 0 && m.questions == [.init(name: "a.test", type: DNSMessage.typeA)])
        #expect(m.answers.map(\.name) == ["a.test", "b.test"])
        #expect(m.answers[0].data == [1, 0x62, 4] + Array("test".utf8) + [0], "a CNAME's target is kept uncompressed")
        #expect(m.answers[1].data == [10, 0, 0, 7] && m.answers[1].ttl == 60)
        #expect(try DNSMessage(parsing: m.encoded()) == m)

        var loop: [UInt8] = [0, 1, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        loop += [0xC0, 12, 0, 1, 0, 1]  // the question's name points at itself
        #expect(throws: DNSMessage.MalformedMessage.self) { try DNSMessage(parsing: loop) }
        #expect(throws: DNSMessage.MalformedMessage.self) { try DNSMessage(parsing: Array(reply.prefix(20))) }
        #expect(throws: DNSMessage.MalformedMessage.self) { try DNSMessage.encode(name: String(repeating: "a", count: 64) + ".test") }
    }

    @Test func aMatchedQueryIsAskedUnderTheRuleNameAndAnsweredUnderItsOwn() throws {
        let rewriter = DNSRewriter(rules: [try DNSRule(parsing: "esdb-{n}.esdb.kurrent.test=esdb-{n}.esdb.db.svc.cluster.local")])
        let query = DNSMessage(id: 7, flags: DNSMessage.flagRecursionDesired,
                               questions: [.init(name: "Esdb-1.esdb.kurrent.test", type: DNSMessage.typeA)]).encoded()
        var asked: [DNSMessage] = []
        let reply = try #require(rewriter.reply(to: query) { bytes in
            let q = try DNSMessage(parsing: bytes)
            asked.append(q)
            var r = DNSMessage(id: q.id, flags: DNSMessage.flagResponse | DNSMessage.flagRecursionAvailable, questions: q.questions)
            r.answers = [.init(name: q.questions[0].name, type: DNSMessage.typeA, ttl: 5, data: [10, 244, 0, 9])]
            return r.encoded()
        })
        #expect(asked.map(\.questions) == [[.init(name: "esdb-1.esdb.db.svc.cluster.local", type: DNSMessage.typeA)]])
        let m = try DNSMessage(parsing: reply)
        #expect(m.id == 7 && m.flags & DNSMessage.flagResponse != 0 && m.responseCode == 0)
        #expect(m.questions == [.init(name: "Esdb-1.esdb.kurrent.test", type: DNSMessage.typeA)], "the question is echoed as asked")
        #expect(m.answers == [.init(name: "Esdb-1.esdb.kurrent.test", type: DNSMessage.typeA, ttl: 5, data: [10, 244, 0, 9])])

        // Another name goes to the upstream byte for byte; its reply comes back byte for byte.
        let other = DNSMessage(id: 8, flags: DNSMessage.flagRecursionDesired, questions: [.init(name: "example.org", type: DNSMessage.typeA)]).encoded()
        let canned: [UInt8] = other.prefix(2) + [0x81, 0x83] + other.dropFirst(4)
        var passedOn: [[UInt8]] = []
        #expect(rewriter.reply(to: other) { bytes in passedOn.append(bytes); return canned } == canned)
        #expect(passedOn == [other])

        // No upstream: SERVFAIL, the question echoed; garbage and replies are dropped.
        let failed = try DNSMessage(parsing: try #require(rewriter.reply(to: query) { _ in throw CommandFailed(description: "down") }))
        #expect(failed.responseCode == DNSMessage.rcodeServerFailure && failed.id == 7 && failed.questions.count == 1)
        var asks = 0
        #expect(rewriter.reply(to: [1, 2, 3]) { _ in asks += 1; return [] } == nil)
        #expect(rewriter.reply(to: canned) { _ in asks += 1; return [] } == nil)
        #expect(asks == 0)

        // A reply made here over the UDP limit goes without answers and with TC set.
        let big = DNSRewriter(rules: [try DNSRule(parsing: "many.test=many.upstream.test")])
        let manyQuery = DNSMessage(id: 9, flags: 0, questions: [.init(name: "many.test", type: DNSMessage.typeTXT)]).encoded()
        let truncated = try DNSMessage(parsing: try #require(big.reply(to: manyQuery, limit: 512) { bytes in
            let q = try DNSMessage(parsing: bytes)
            var r = DNSMessage(id: q.id, flags: DNSMessage.flagResponse, questions: q.questions)
            r.answers = (0..<20).map { _ in .init(name: "many.upstream.test", type: DNSMessage.typeTXT, ttl: 5, data: [40] + [UInt8](repeating: 0x61, count: 40)) }
            return r.encoded()
        }))
        #expect(truncated.isTruncated && truncated.answers.isEmpty)
    }

    /// The binary between dig and dnsmasq (the cluster DNS's stand-in), over UDP and TCP.
    @Test(.timeLimit(.minutes(2))) func theBinaryAnswersTheNodesAndPassesTheRestOn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-dns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (upstreamPort, proxyPort) = (freePort(), freePort())
        let user = String(cString: getpwuid(geteuid()).pointee.pw_name)
        let dnsmasq = try ServerProcess("dnsmasq", "/usr/sbin/dnsmasq", [
            "--no-daemon", "--port=\(upstreamPort)", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--user=\(user)", "--pid-file=", "--host-record=esdb-0.esdb.db.svc.cluster.local,10.244.0.10",
            "--host-record=esdb-1.esdb.db.svc.cluster.local,10.244.0.11", "--address=/elsewhere.test/192.0.2.7",
        ], log: dir.appendingPathComponent("dnsmasq.log").path)
        defer { dnsmasq.stop() }
        let proxy = try ServerProcess("cairn dns-proxy", CLITests.binary, [
            "dns-proxy", "--listen", "127.0.0.1:\(proxyPort)", "--upstream", "127.0.0.1:\(upstreamPort)",
            "--map", "esdb-{n}.esdb.kurrent.test=esdb-{n}.esdb.db.svc.cluster.local", "--map", "legacy.kurrent.test=10.9.9.9",
        ], log: dir.appendingPathComponent("proxy.log").path)
        defer { proxy.stop() }
        #expect(waitForPort(upstreamPort) && waitForPort(proxyPort))

        func dig(_ name: String, tcp: Bool = false) throws -> String {
            try run("/usr/bin/dig", ["@127.0.0.1", "-p", "\(proxyPort)", name, "A", "+noall", "+answer", "+comments", "+tries=2", "+time=2"]
                    + (tcp ? ["+tcp"] : []), timeout: 30).stdout
        }
        for tcp in [false, true] {
            let node = try dig("esdb-1.esdb.kurrent.test", tcp: tcp)
            #expect(node.contains("status: NOERROR"), "\(node)")
            #expect(node.range(of: #"esdb-1\.esdb\.kurrent\.test\.\s+\d+\s+IN\s+A\s+10\.244\.0\.11"#, options: .regularExpression) != nil, "\(node)")
            let passed = try dig("elsewhere.test", tcp: tcp)
            #expect(passed.range(of: #"elsewhere\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.7"#, options: .regularExpression) != nil, "\(passed)")
            let address = try dig("legacy.kurrent.test", tcp: tcp)
            #expect(address.range(of: #"legacy\.kurrent\.test\.\s+30\s+IN\s+A\s+10\.9\.9\.9"#, options: .regularExpression) != nil, "\(address)")
        }
        // The upstream's answer for a pod it does not know (dnsmasq refuses names it has no
        // record of) comes back under the name asked, with no address.
        let missing = try dig("esdb-7.esdb.kurrent.test")
        #expect(!missing.contains("status: NOERROR") && !missing.contains("IN\tA"), "\(missing)")
        #expect(proxy.isRunning)

        // A port already taken is an error at start, not a silent proxy.
        let taken = try run(CLITests.binary, ["dns-proxy", "--listen", "127.0.0.1:\(upstreamPort)", "--upstream", "127.0.0.1:\(upstreamPort)"])
        #expect(taken.status == 1 && taken.stderr.contains("bind 127.0.0.1:\(upstreamPort)"), "\(taken.stderr)")
    }
}
