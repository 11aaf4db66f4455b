import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Runtime
import Testing
@testable import Console

/// The HTTP side of the console on a real socket: headers, login, cookie flags, origin checks,
/// forged sessions.
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock")) struct ConsoleServerTests {
    static let password = "correct horse"

    /// Runs `body` against a console on a free loopback port.
    func withServer(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
        let users = try ConsoleUsers.parse(try ConsoleUsers.line(name: "alice", role: "operator", password: Self.password))
        var c = ConsoleServerConfiguration()
        c.port = 0
        c.quiet = true
        let port = SimulatedPort()
        let server = try ConsoleServer(configuration: c, port: port, users: users)
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run { continuation.yield($0) } }
            var it = stream.makeAsyncIterator()
            guard let bound = await it.next() else { Issue.record("the server did not start"); return }
            try await body("http://127.0.0.1:\(bound)")
            group.cancelAll()
        }
    }

    struct Reply { var status: Int; var headers: [String: String]; var body: String }

    static func request(_ url: String, method: String = "GET", headers: [String: String] = [:], body: String? = nil) async throws -> Reply {
        var r = URLRequest(url: URL(string: url)!)
        r.httpMethod = method
        for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
        r.httpBody = body.map { Data($0.utf8) }
        // A loaded test process can keep the server's handlers from a thread for a long while;
        // how long a reply takes is not what these tests judge.
        r.timeoutInterval = 900
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 900
        config.httpCookieStorage = nil
        config.httpShouldSetCookies = false
        let (data, response) = try await URLSession(configuration: config).data(for: r)
        let http = response as! HTTPURLResponse
        var h: [String: String] = [:]
        for (k, v) in http.allHeaderFields { h[String(describing: k).lowercased()] = String(describing: v) }
        return Reply(status: http.statusCode, headers: h, body: String(decoding: data, as: UTF8.self))
    }

    @Test func pageIsServedWithProtectiveHeaders() async throws {
        try await withServer { base in
            let r = try await Self.request(base + "/")
            #expect(r.status == 200)
            #expect(r.body.contains("Lumen console"))
            #expect(r.headers["content-security-policy"]?.contains("default-src 'self'") == true)
            #expect(r.headers["x-frame-options"] == "DENY")
            let js = try await Self.request(base + "/console.js")
            #expect(js.headers["content-type"]?.hasPrefix("text/javascript") == true)
        }
    }

    @Test func loginSetsAStrictHttpOnlyCookieAndChecksOrigin() async throws {
        try await withServer { base in
            let body = "{\"user\":\"alice\",\"password\":\"\(Self.password)\"}"
            let json = ["Content-Type": "application/json"]
            // No Origin, or another site's: refused before the password is looked at.
            #expect(try await Self.request(base + "/api/login", method: "POST", headers: json, body: body).status == 403)
            #expect(try await Self.request(base + "/api/login", method: "POST", headers: json.merging(["Origin": "http://evil.example"]) { $1 },
                                           body: body).status == 403)
            let same = json.merging(["Origin": base]) { $1 }
            let wrong = try await Self.request(base + "/api/login", method: "POST", headers: same,
                                               body: "{\"user\":\"alice\",\"password\":\"wrong\"}")
            #expect(wrong.status == 401)
            #expect(wrong.headers["set-cookie"] == nil)
            let ok = try await Self.request(base + "/api/login", method: "POST", headers: same, body: body)
            #expect(ok.status == 200)
            let cookie = try #require(ok.headers["set-cookie"])
            #expect(cookie.contains("HttpOnly"))
            #expect(cookie.contains("SameSite=Strict"))
            let token = try #require(cookie.split(separator: ";").first.map(String.init))
            #expect(try await Self.request(base + "/api/me", headers: ["Cookie": token]).status == 200)
            #expect(try await Self.request(base + "/api/me", headers: ["Cookie": "lumen_session=" + String(repeating: "0", count: 64)]).status == 401)
            #expect(try await Self.request(base + "/api/me").status == 401)
            // Logged out, the same cookie is refused.
            _ = try await Self.request(base + "/api/logout", method: "POST", headers: ["Cookie": token, "Origin": base])
            #expect(try await Self.request(base + "/api/me", headers: ["Cookie": token]).status == 401)
        }
    }

    @Test func benchLoginExistsOnlyWhenTheBenchSetsIt() async throws {
        try await withServer { base in
            let r = try await Self.request(base + "/api/bench?token=anything")
            #expect(r.status == 404)
        }
    }
}
