import Core
import Foundation
import Testing
@testable import Console

struct ConsoleSecurityTests {
    static let hashLine = try! ConsoleUsers.line(name: "alice", role: "operator", password: "correct horse")

    @Test func usersFileParsesAndRefusesBadLines() throws {
        let users = try ConsoleUsers.parse("# console users\n\(Self.hashLine)\n\n")
        #expect(users.map(\.name) == ["alice"])
        #expect(users[0].role == .operator)
        #expect(!Self.hashLine.contains("correct horse"))
        #expect(throws: ConsoleUsersError.self) { try ConsoleUsers.parse("alice operator notahash") }
        #expect(throws: ConsoleUsersError.self) { try ConsoleUsers.parse(Self.hashLine.replacingOccurrences(of: " operator ", with: " automation ")) }
        #expect(throws: ConsoleUsersError.duplicate(name: "alice")) { try ConsoleUsers.parse("\(Self.hashLine)\n\(Self.hashLine)") }
        #expect(throws: ConsoleUsersError.badName("a b")) { try ConsoleUsers.line(name: "a b", role: "operator", password: "12345678") }
        #expect(throws: ConsoleUsersError.weakPassword) { try ConsoleUsers.line(name: "ab", role: "operator", password: "short") }
    }

    @Test func addUserAppendsWithPrivateMode() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("users-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ConsoleUsers.add(name: "bob", role: "observer", password: "password1", to: path)
        #expect(throws: ConsoleUsersError.duplicate(name: "bob")) { try ConsoleUsers.add(name: "bob", role: "observer", password: "password1", to: path) }
        let users = try ConsoleUsers.load(path: path)
        #expect(users.map(\.role) == [.observer])
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func loginChecksThePasswordAndSessionsExpire() throws {
        let clock = ManualConsoleClock()
        let sessions = ConsoleSessions(users: try ConsoleUsers.parse(Self.hashLine), lifetime: 60 * .perSecond, clock: clock)
        #expect(sessions.login(name: "alice", password: "wrong horse") == .failure(.badCredentials))
        #expect(sessions.login(name: "mallory", password: "correct horse") == .failure(.badCredentials))
        let s = try sessions.login(name: "alice", password: "correct horse").get()
        #expect(s.token.count == 64)
        #expect(sessions.session(token: s.token)?.user.name == "alice")
        #expect(sessions.session(token: s.token.replacingOccurrences(of: "a", with: "b")) == nil || !s.token.contains("a"))
        #expect(sessions.session(token: "forged") == nil)
        clock.advance(61 * .perSecond)
        #expect(sessions.session(token: s.token) == nil)
    }

    @Test func repeatedFailuresBlockThatUserForAMinute() throws {
        let clock = ManualConsoleClock()
        let sessions = ConsoleSessions(users: try ConsoleUsers.parse(Self.hashLine), lifetime: 60 * .perSecond, clock: clock)
        for _ in 0..<ConsoleSessions.maxFailures { _ = sessions.login(name: "alice", password: "guess") }
        #expect(sessions.login(name: "alice", password: "correct horse") == .failure(.tooManyAttempts))
        clock.advance(61 * .perSecond)
        #expect((try? sessions.login(name: "alice", password: "correct horse").get()) != nil)
    }

    @Test func bindParsesAndLoopbackIsTheDefault() throws {
        #expect(ConsoleServerConfiguration().isLoopback)
        #expect(try ConsoleServerConfiguration.parseBind("0.0.0.0:9000") == ("0.0.0.0", 9000))
        #expect(try ConsoleServerConfiguration.parseBind("[::1]:80") == ("::1", 80))
        #expect(throws: ConsoleServerError.self) { try ConsoleServerConfiguration.parseBind("host:99999") }
        #expect(throws: ConsoleServerError.self) { try ConsoleServerConfiguration.parseBind(":80") }
    }

    @Test func settingsOutOfRangeAreRefused() {
        var s = ConsoleSettings()
        s.deadmanTimeoutMs = 5
        #expect(throws: ConsoleServerError.setting(name: "deadmanTimeoutMs", range: "50.0…1000.0")) { try s.validate() }
    }

    @Test func configFileRefusesUnknownFieldsAndBadValues() throws {
        #expect(throws: ConfigError.self) { try ConfigLoader.decode(ConsoleConfigFile.self, yaml: "bnid: 1.2.3.4:80\n", file: "c.yaml") }
        #expect(throws: ConfigError.self) { try ConfigLoader.decode(ConsoleConfigFile.self, yaml: "deadman_timeout_ms: 5000\n", file: "c.yaml") }
        #expect(throws: ConfigError.self) { try ConfigLoader.decode(ConsoleConfigFile.self, yaml: "cert: a.pem\n", file: "c.yaml") }
        let f = try ConfigLoader.decode(ConsoleConfigFile.self, yaml: "bind: 127.0.0.1:9001\ndeadman_timeout_ms: 200\n", file: "c.yaml")
        var c = ConsoleServerConfiguration()
        try f.apply(to: &c)
        #expect(c.port == 9001)
        #expect(c.settings.deadmanTimeoutMs == 200)
    }
}
