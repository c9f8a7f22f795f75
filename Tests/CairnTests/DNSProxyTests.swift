import ClusterSpecs
import DNSProxy
import Foundation
import KubeAPI
import Render
import Testing

/// `cairn dns-proxy` (KurrentDB SplitDNS's resolver): its rules and message handling, then the
/// real binary between `dig` and `dnsmasq` standing in for the cluster DNS.
@Suite("SplitDNS proxy")
struct DNSProxyTests {
    /// dnsmasq on 127.0.0.1:`port` as the cluster DNS's stand-in, answering only from `options`
    /// (`--host-record=...`); stopped by its pid.
    static func dnsmasq(port: Int, log: String, _ options: [String]) throws -> ServerProcess {
        let user = String(cString: getpwuid(geteuid()).pointee.pw_name)
        return try ServerProcess("dnsmasq", "/usr/sbin/dnsmasq", [
            "--no-daemon", "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--user=\(user)", "--pid-file=",
        ] + options, log: log)
    }

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
        // A label, then a pointer back to it: a loop through a label.
        var labelLoop: [UInt8] = [0, 1, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        labelLoop += [1, 0x61, 0xC0, 12, 0, 1, 0, 1]
        #expect(throws: DNSMessage.MalformedMessage.self) { try DNSMessage(parsing: labelLoop) }
        // A long chain of pointers, each to the one before: refused after 32 (no name length to
        // stop it, and questions can point into it by the thousand).
        // The chain sits in a first record's data (never read as names); the second record's
        // name points at its end.
        var chain: [UInt8] = [0, 1, 0x81, 0x80, 0, 0, 0, 2, 0, 0, 0, 0]
        chain += [0, 0, 16, 0, 1, 0, 0, 0, 5, 0x01, 0x90]  // root name at 12, TXT, 400 bytes of data from 23
        for i in 0..<200 {
            let target = i == 0 ? 12 : 23 + 2 * (i - 1)
            chain += [0xC0 | UInt8(target >> 8), UInt8(target & 0xFF)]
        }
        chain += [0xC0 | UInt8((23 + 2 * 199) >> 8), UInt8((23 + 2 * 199) & 0xFF), 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]
        #expect(chain.count == 423 + 16)
        #expect(throws: DNSMessage.MalformedMessage.self) { try DNSMessage(parsing: chain) }
        // The same with a chain of 20: read.
        var short: [UInt8] = [0, 1, 0x81, 0x80, 0, 0, 0, 2, 0, 0, 0, 0]
        short += [0, 0, 16, 0, 1, 0, 0, 0, 5, 0, 40]
        for i in 0..<20 { let target = i == 0 ? 12 : 23 + 2 * (i - 1); short += [0xC0 | UInt8(target >> 8), UInt8(target & 0xFF)] }
        short += [0xC0, UInt8(23 + 2 * 19), 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]
        #expect(try DNSMessage(parsing: short).answers.map(\.data.count) == [40, 4])
        #expect(throws: DNSMessage.MalformedMessage.self) { try DNSMessage.encode(name: String(repeating: "a", count: 64) + ".test") }
    }

    @Test func aMatchedQueryIsAskedUnderTheRuleNameAndAnsweredUnderItsOwn() throws {
        let rewriter = DNSRewriter(rules: [try DNSRule(parsing: "esdb-{n}.esdb.kurrent.test=esdb-{n}.esdb.db.svc.cluster.local")])
        let query = DNSMessage(id: 7, flags: DNSMessage.flagRecursionDesired,
                               questions: [.init(name: "Esdb-1.esdb.kurrent.test", type: DNSMessage.typeA)]).encoded()
        var asked: [DNSMessage] = []
        var wholes: [Bool] = []
        let reply = try #require(rewriter.reply(to: query) { bytes, whole in
            wholes.append(whole)
            let q = try DNSMessage(parsing: bytes)
            asked.append(q)
            var r = DNSMessage(id: q.id, flags: DNSMessage.flagResponse | DNSMessage.flagRecursionAvailable, questions: q.questions)
            r.answers = [.init(name: q.questions[0].name, type: DNSMessage.typeA, ttl: 5, data: [10, 244, 0, 9])]
            return r.encoded()
        })
        #expect(asked.map(\.questions) == [[.init(name: "esdb-1.esdb.db.svc.cluster.local", type: DNSMessage.typeA)]])
        #expect(wholes == [true], "a rule's lookup is needed whole")
        let m = try DNSMessage(parsing: reply)
        #expect(m.id == 7 && m.flags & DNSMessage.flagResponse != 0 && m.responseCode == 0)
        #expect(m.questions == [.init(name: "Esdb-1.esdb.kurrent.test", type: DNSMessage.typeA)], "the question is echoed as asked")
        #expect(m.answers == [.init(name: "Esdb-1.esdb.kurrent.test", type: DNSMessage.typeA, ttl: 5, data: [10, 244, 0, 9])])

        // Another name goes to the upstream byte for byte; its reply comes back byte for byte.
        let other = DNSMessage(id: 8, flags: DNSMessage.flagRecursionDesired, questions: [.init(name: "example.org", type: DNSMessage.typeA)]).encoded()
        let canned: [UInt8] = other.prefix(2) + [0x81, 0x83] + other.dropFirst(4)
        var passedOn: [[UInt8]] = []
        #expect(rewriter.reply(to: other) { bytes, whole in passedOn.append(bytes); wholes.append(whole); return canned } == canned)
        #expect(wholes == [true, false], "a query passed on is answered as the upstream answers it")
        // ... even when over the UDP limit, truncated or not: the client asked with its own size.
        let long = canned + [UInt8](repeating: 0, count: 600)
        #expect(rewriter.reply(to: other, limit: 512) { _, _ in long } == long)
        #expect(passedOn == [other])

        // No upstream: SERVFAIL, the question echoed; garbage and replies are dropped.
        let failed = try DNSMessage(parsing: try #require(rewriter.reply(to: query) { _, _ in throw CommandFailed(description: "down") }))
        #expect(failed.responseCode == DNSMessage.rcodeServerFailure && failed.id == 7 && failed.questions.count == 1)
        var asks = 0
        #expect(rewriter.reply(to: [1, 2, 3]) { _, _ in asks += 1; return [] } == nil)
        #expect(rewriter.reply(to: canned) { _, _ in asks += 1; return [] } == nil)
        #expect(asks == 0)

        // A reply made here over the UDP limit goes without answers and with TC set.
        let big = DNSRewriter(rules: [try DNSRule(parsing: "many.test=many.upstream.test")])
        let manyQuery = DNSMessage(id: 9, flags: 0, questions: [.init(name: "many.test", type: DNSMessage.typeTXT)]).encoded()
        let truncated = try DNSMessage(parsing: try #require(big.reply(to: manyQuery, limit: 512) { bytes, _ in
            let q = try DNSMessage(parsing: bytes)
            var r = DNSMessage(id: q.id, flags: DNSMessage.flagResponse, questions: q.questions)
            r.answers = (0..<20).map { _ in .init(name: "many.upstream.test", type: DNSMessage.typeTXT, ttl: 5, data: [40] + [UInt8](repeating: 0x61, count: 40)) }
            return r.encoded()
        }))
        #expect(truncated.isTruncated && truncated.answers.isEmpty)
        // Over TCP no limit is given, but a reply made here never outgrows a TCP frame: the
        // upstream's 60 KB of compressed answers come back longer written out, so truncated.
        let huge = try DNSMessage(parsing: try #require(big.reply(to: manyQuery) { bytes, _ in
            let q = try DNSMessage(parsing: bytes)
            var r: [UInt8] = Array(bytes.prefix(2)) + [0x81, 0x80, 0, 1, 0x0B, 0xB8, 0, 0, 0, 0] + Array(bytes.dropFirst(12))
            for _ in 0..<3000 { r += [0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 5, 0, 4, 3, 0x61, 0x62, 0x63] }  // 3,000 TXT records by pointer
            #expect(q.questions.count == 1)
            return r
        }))
        #expect(huge.isTruncated && huge.answers.isEmpty)
    }

    /// The resolver as cairn renders it for a SplitDNS cluster (its arguments, only the listen
    /// address moved off port 53): a node's FQDN is answered with the address the cluster DNS
    /// gives its pod, a read-only replica's too, and any other name is passed on.
    @Test(.timeLimit(.minutes(2))) func theRenderedResolverAnswersTheNodesFQDNsWithTheirPods() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-dns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (upstreamPort, proxyPort) = (freePort(), freePort())
        let dnsmasq = try DNSProxyTests.dnsmasq(port: upstreamPort, log: dir.appendingPathComponent("dnsmasq.log").path, [
            "--host-record=kdb-2.kdb.events.svc.cluster.local,10.244.1.12",
            "--host-record=kdb-replica-0.kdb-replica.events.svc.cluster.local,10.244.2.20",
            "--host-record=kdb-0.kdb.events.svc.cluster.local,10.244.1.10", "--host-record=kdb-0.kdb.example.com,203.0.113.10",
            "--host-record=www.example.com,203.0.113.80"
        ])
        defer { dnsmasq.stop() }
        let spec = try loadSpec("""
            apiVersion: kubernetes.kurrent.io/v1
            kind: KurrentDB
            metadata: {name: kdb, namespace: events}
            spec:
              replicas: 3
              image: docker.kurrent.io/kurrent-latest/kurrentdb:25.0.0
              storage: {resources: {requests: {storage: 1Gi}}}
              readOnlyReplicas: {replicas: 1}
              network: {domain: example.com, internodeTrafficStrategy: SplitDNS}
            """)
        let options = RenderOptions(cairnImage: "cairn", clusterDNS: "127.0.0.1:\(upstreamPort)")
        let set = try #require(ClusterRenderer.render(spec, options: options).objects.first { $0.kind == "StatefulSet" && $0.name == "kdb" })
        let container = try #require(set.body["spec", "template", "spec", "containers"]?.arrayValue?.first { $0["name"] == "splitdns" })
        var arguments = (container["command"]?.arrayValue ?? []).dropFirst().compactMap(\.stringValue)
            + (container["args"]?.arrayValue ?? []).compactMap(\.stringValue)
        let listen = try #require(arguments.firstIndex(of: "127.0.0.1:53"))
        arguments[listen] = "127.0.0.1:\(proxyPort)"
        let proxy = try ServerProcess("cairn dns-proxy", CLITests.binary, arguments, log: dir.appendingPathComponent("proxy.log").path)
        defer { proxy.stop() }
        #expect(waitForPort(upstreamPort) && waitForPort(proxyPort))

        func address(_ name: String) throws -> String {
            try run("/usr/bin/dig", ["@127.0.0.1", "-p", "\(proxyPort)", name, "A", "+short", "+tries=2", "+time=2"], timeout: 30).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try address("kdb-2.kdb.example.com") == "10.244.1.12", "a node's FQDN: its pod's address")
        #expect(try address("kdb-replica-0.kdb-replica.example.com") == "10.244.2.20", "a read-only replica's FQDN")
        #expect(try address("kdb-0.kdb.example.com") == "10.244.1.10", "its pod's address, not the FQDN's public one")
        #expect(try address("www.example.com") == "203.0.113.80", "any other name: passed on")
    }

    /// The binary between dig and dnsmasq (the cluster DNS's stand-in), over UDP and TCP.
    @Test(.timeLimit(.minutes(2))) func theBinaryAnswersTheNodesAndPassesTheRestOn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-dns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (upstreamPort, proxyPort) = (freePort(), freePort())
        let dnsmasq = try DNSProxyTests.dnsmasq(port: upstreamPort, log: dir.appendingPathComponent("dnsmasq.log").path, [
            "--host-record=esdb-0.esdb.db.svc.cluster.local,10.244.0.10",
            "--host-record=esdb-1.esdb.db.svc.cluster.local,10.244.0.11", "--address=/elsewhere.test/192.0.2.7",
            // Authoritative for the cluster domain, as the cluster DNS is: NXDOMAIN for a pod it has not.
            "--local=/cluster.local/"
        ])
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
        // The upstream's answer for a pod it does not know comes back as it said it (NXDOMAIN),
        // under the name asked, with no address.
        let missing = try dig("esdb-7.esdb.kurrent.test")
        #expect(missing.contains("status: NXDOMAIN") && !missing.contains("IN\tA"), "\(missing)")
        #expect(proxy.isRunning)

        // A port already taken is an error at start, not a silent proxy.
        let taken = try run(CLITests.binary, ["dns-proxy", "--listen", "127.0.0.1:\(upstreamPort)", "--upstream", "127.0.0.1:\(upstreamPort)"])
        #expect(taken.status == 1 && taken.stderr.contains("bind 127.0.0.1:\(upstreamPort)"), "\(taken.stderr)")
    }
}

/// `cairn apply` of a SplitDNS cluster against the real API server: the cluster DNS comes from
/// the Service kube-system/kube-dns, cairn's image from the environment, and a cluster whose
/// resolver cannot be rendered is its own error while the others are applied.
@Suite("SplitDNS applied", .enabled(if: !ControlPlane.skip))
struct SplitDNSApplyTests {
    let plane: ControlPlane
    let dir = TemporaryDirectory("cairn-splitdns")
    let tag = UInt32.random(in: 0...UInt32.max)

    init() throws {
        plane = try ControlPlane.shared()
    }

    static func spec(_ name: String, _ namespace: String, _ network: String) -> String {
        """
        apiVersion: kubernetes.kurrent.io/v1
        kind: KurrentDB
        metadata: {name: \(name), namespace: \(namespace)}
        spec:
          replicas: 1
          image: docker.kurrent.io/kurrent-latest/kurrentdb:25.0.0
          storage: {resources: {requests: {storage: 1Gi}}}
          network: \(network)
        """
    }

    @Test func applyFindsTheClusterDNSAndNeedsCairnsImage() async throws {
        let client = try plane.client()
        defer { Task { await client.shutdown() } }
        // This control plane runs no DNS: the Service a cluster's DNS has (CoreDNS keeps the name
        // kube-dns) is made here, its address allocated by the API server.
        _ = try await client.apply(["apiVersion": "v1", "kind": "Service", "metadata": ["name": "kube-dns", "namespace": "kube-system"],
                                    "spec": ["selector": ["k8s-app": "kube-dns"], "ports": [["name": "dns", "port": 53, "protocol": "UDP"]]]],
                                   fieldManager: "cairn-test")
        let ip = try #require(try await client.get(ObjectReference(apiVersion: "v1", kind: "Service", namespace: "kube-system", name: "kube-dns"))["spec", "clusterIP"]?.stringValue)
        let ns = "splitdns-\(tag)"
        try Self.spec("split", ns, "{domain: kurrent.test, internodeTrafficStrategy: SplitDNS}").write(toFile: dir.file("split.yaml"), atomically: true, encoding: .utf8)
        try Self.spec("plain", ns, "{domain: kurrent.test}").write(toFile: dir.file("plain.yaml"), atomically: true, encoding: .utf8)
        let arguments = ["apply", dir.path, "--kubeconfig", plane.kubeconfig, "--namespace-allow", ns]
        func statefulSet(_ name: String) async throws -> JSONValue? {
            do {
                return try await client.get(ObjectReference(apiVersion: "apps/v1", kind: "StatefulSet", namespace: ns, name: name))
            } catch let e as KubeError where e.reason == .notFound { return nil }
        }

        // cairn's image not known: that cluster is an error saying what to set; the other goes on.
        let without = try run(CLITests.binary, arguments, timeout: 120)
        #expect(without.status != 0)
        #expect(without.stderr.contains("split.yaml:8:") && without.stderr.contains("set CAIRN_IMAGE (deploy/deployment.yaml sets it) or --dns-proxy-image"),
                "\(without.stderr)")
        #expect(!without.stderr.contains("--cluster-dns"), "the cluster DNS was found: \(without.stderr)")
        #expect(try await statefulSet("plain") != nil)
        #expect(try await statefulSet("split") == nil)

        let with = try run(CLITests.binary, arguments + ["--dns-proxy-image", "registry.test/cairn:1.0"], timeout: 120)
        #expect(with.status == 0, "\(with.stdout)\(with.stderr)")
        let pod = try #require(try await statefulSet("split")?["spec", "template", "spec"])
        #expect(pod["dnsPolicy"] == "None" && pod["dnsConfig", "nameservers"] == ["127.0.0.1"])
        #expect(pod["securityContext", "sysctls"] == [["name": "net.ipv4.ip_unprivileged_port_start", "value": "0"]])
        let proxy = try #require(pod["containers"]?.arrayValue?.first { $0["name"] == "splitdns" })
        #expect(proxy["image"] == "registry.test/cairn:1.0")
        #expect(proxy["args"]?.arrayValue?.contains(.string("\(ip):53")) == true, "\(proxy)")

        // cairn's image no longer known (a daemon started without it): the cluster's objects are
        // left as they are, nothing of it pruned or changed, and the error says what to set.
        let before = try #require(try await statefulSet("split"))
        let again = try run(CLITests.binary, arguments + ["-o", "json"], timeout: 120)
        #expect(again.status != 0 && again.stderr.contains("--dns-proxy-image"), "\(again.stderr)")
        let result = try JSONValue.parse(Array(again.stdout.utf8))
        #expect(result["summary", "pruned"] == 0 && result["summary", "configured"] == 0 && result["summary", "failed"] == 0, "\(again.stdout)")
        let after = try #require(try await statefulSet("split"))
        // (Its status may change meanwhile: the controller-manager runs.)
        #expect(after["metadata", "generation"] == before["metadata", "generation"] && after["spec"] == before["spec"], "the StatefulSet was written")
        #expect(try await client.list(apiVersion: "v1", kind: "ConfigMap", namespace: ns, labelSelector: "cairn.dev/cluster=split").count == 1)
    }
}

/// The resolver as the pod runs it: `cairn dns-proxy` from the image Tests/image.sh built
/// (deploy/Containerfile: no shell, the libraries `ldd` found), as user 65532, between dig and
/// dnsmasq. On a port above 1023: `buildah run` shares this machine's network, where the pod's
/// sysctl is not set.
@Suite("SplitDNS resolver in cairn's image")
struct SplitDNSImageTests {
    @Test(.timeLimit(.minutes(3))) func theImagesResolverAnswersAsTheSidecar() throws {
        guard let image = try DeployTests.builtImage() else { return }
        let logs = TemporaryDirectory("cairn-image-dns")
        let (upstreamPort, proxyPort) = (freePort(), freePort())
        let dnsmasq = try DNSProxyTests.dnsmasq(port: upstreamPort, log: logs.file("dnsmasq.log"), [
            "--host-record=kdb-1.kdb.events.svc.cluster.local,10.244.3.11",
            "--host-record=elsewhere.test,192.0.2.9"
        ])
        defer { dnsmasq.stop() }
        let buildah = ["/usr/bin/buildah", "--storage-driver", "vfs"]
        let created = try run(buildah[0], Array(buildah.dropFirst()) + ["from", "--pull=never", image])
        try #require(created.status == 0, "\(created.stderr)")
        let container = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? run(buildah[0], Array(buildah.dropFirst()) + ["rm", container]) }
        let proxy = try ServerProcess("cairn dns-proxy in its image", buildah[0], Array(buildah.dropFirst()) + [
            "run", "--isolation", "chroot", "--user", "65532:65532", container, "--",
            "/usr/local/bin/cairn", "dns-proxy", "--listen", "127.0.0.1:\(proxyPort)", "--upstream", "127.0.0.1:\(upstreamPort)",
            "--map", "kdb-{n}.kdb.example.com=kdb-{n}.kdb.events.svc.cluster.local",
        ], log: logs.file("proxy.log"))
        defer { proxy.stop() }
        let log = { (try? String(contentsOfFile: logs.file("proxy.log"), encoding: .utf8)) ?? "" }
        #expect(waitForPort(upstreamPort) && waitForPort(proxyPort, seconds: 60), "\(log())")
        func address(_ name: String, _ extra: [String] = []) throws -> String {
            try run("/usr/bin/dig", ["@127.0.0.1", "-p", "\(proxyPort)", name, "A", "+short", "+tries=2", "+time=2"] + extra, timeout: 30).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try address("kdb-1.kdb.example.com") == "10.244.3.11", "\(log())")
        #expect(try address("kdb-1.kdb.example.com", ["+tcp"]) == "10.244.3.11", "\(log())")
        #expect(try address("elsewhere.test") == "192.0.2.9", "\(log())")
    }
}
