import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A validating admission webhook on a loopback HTTPS port: a small Python server (the
/// standard library's http.server and ssl) that denies every request the API server sends it,
/// with `message`. Its certificate is made for 127.0.0.1 by the openssl CLI; `caBundle` is what
/// the ValidatingWebhookConfiguration trusts. With `delay`, it waits that many seconds before
/// answering (a slow policy engine); its log has a line when a request arrives (`received`) and
/// when it is answered (`answered`). Stopped by its pid.
final class AdmissionWebhook {
    let dir = TemporaryDirectory("cairn-webhook")
    let port = freePort()
    let caBundle: String
    private var server: ServerProcess?

    init(message: String, delay: Double = 0) throws {
        let r = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                                             "-addext", "subjectAltName=IP:127.0.0.1",
                                             "-keyout", dir.file("key.pem"), "-out", dir.file("cert.pem")])
        guard r.status == 0 else { throw CommandFailed(description: "openssl: \(r.stderr)") }
        caBundle = Data(try Data(contentsOf: URL(fileURLWithPath: dir.file("cert.pem")))).base64EncodedString()
        let script = """
            import http.server, json, ssl, sys, time
            message, delay = sys.argv[2], float(sys.argv[5])
            class Deny(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    print("received", file=sys.stderr, flush=True)
                    time.sleep(delay)
                    review = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
                    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "response": {"uid": review["request"]["uid"], "allowed": False, "status": {"code": 403, "message": message}}}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    print("answered", file=sys.stderr, flush=True)
            server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Deny)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[3], sys.argv[4])
            server.socket = context.wrap_socket(server.socket, server_side=True)
            server.serve_forever()
            """
        try script.write(toFile: dir.file("webhook.py"), atomically: true, encoding: .utf8)
        server = try ServerProcess("webhook", "/usr/bin/python3", [dir.file("webhook.py"), "\(port)", message, dir.file("cert.pem"), dir.file("key.pem"), "\(delay)"],
                                   log: dir.file("webhook.log"))
        // Bounded wait until it accepts connections.
        for _ in 0..<100 {
            if try run("/usr/bin/curl", ["-sk", "-o", "/dev/null", "https://127.0.0.1:\(port)/"]).status == 0 { return }
            usleep(50_000)
        }
        throw CommandFailed(description: "the webhook never listened on \(port)")
    }

    /// Requests received and answered so far.
    var requests: (received: Int, answered: Int) {
        let log = (try? String(contentsOfFile: dir.file("webhook.log"), encoding: .utf8)) ?? ""
        let lines = log.split(separator: "\n")
        return (lines.filter { $0 == "received" }.count, lines.filter { $0 == "answered" }.count)
    }

    func stop() { server?.stop() }
    deinit { stop() }
}
