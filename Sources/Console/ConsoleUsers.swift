import Core
import Foundation
import HummingbirdBcrypt
import Runtime
import Synchronization

/// A person who may log in to the console.
public struct ConsoleUser: Sendable, Equatable {
    public var name: String
    /// operator, observer or supervisor (automation is not a console role).
    public var role: OperatorRole
    /// bcrypt hash of the password (`$2b$…`).
    public var passwordHash: String
    public init(name: String, role: OperatorRole, passwordHash: String) {
        self.name = name; self.role = role; self.passwordHash = passwordHash
    }
}

/// Why a users file or a new user was refused.
public enum ConsoleUsersError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case badLine(line: Int, reason: String)
    case duplicate(name: String)
    case badName(String)
    case badRole(String)
    case weakPassword
    case empty(path: String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): "cannot read the users file \(p): \(r)"
        case .badLine(let l, let r): "users file, line \(l): \(r) (expected: NAME ROLE BCRYPT-HASH)"
        case .duplicate(let n): "user \(n) is listed twice: keep one line per user"
        case .badName(let n): "user name '\(n)' must be 1…32 letters, digits, '.', '_' or '-'"
        case .badRole(let r): "role '\(r)' must be operator, observer or supervisor"
        case .weakPassword: "a password must be 8…72 characters"
        case .empty(let p): "the users file \(p) lists no user: add one with `lumen console add-user`"
        }
    }
}

/// The users file: one user a line, `NAME ROLE BCRYPT-HASH`; `#` starts a comment. The file
/// holds hashes only, never passwords; `lumen console add-user` appends a line.
public enum ConsoleUsers {
    public static let roles: [OperatorRole] = [.operator, .observer, .supervisor]
    /// bcrypt cost of new hashes: ~0.2 s a login on one core, slow enough to make guessing costly.
    public static let cost: UInt8 = 11

    public static func validName(_ name: String) -> Bool {
        (1...32).contains(name.utf8.count) && name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E || c == 0x5F || c == 0x2D
        }
    }

    public static func parse(_ text: String) throws(ConsoleUsersError) -> [ConsoleUser] {
        var users: [ConsoleUser] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.isEmpty { continue }
            guard words.count == 3 else { throw .badLine(line: i + 1, reason: "\(words.count) fields") }
            let name = String(words[0])
            guard validName(name) else { throw .badLine(line: i + 1, reason: ConsoleUsersError.badName(name).description) }
            guard let role = OperatorRole(rawValue: String(words[1])), roles.contains(role) else {
                throw .badLine(line: i + 1, reason: ConsoleUsersError.badRole(String(words[1])).description)
            }
            let hash = String(words[2])
            guard hash.hasPrefix("$2"), hash.utf8.count == 60 else { throw .badLine(line: i + 1, reason: "not a bcrypt hash") }
            guard !users.contains(where: { $0.name == name }) else { throw .duplicate(name: name) }
            users.append(ConsoleUser(name: name, role: role, passwordHash: hash))
        }
        return users
    }

    public static func load(path: String) throws(ConsoleUsersError) -> [ConsoleUser] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        let users = try parse(text)
        if users.isEmpty { throw .empty(path: path) }
        return users
    }

    /// The line for a new user (hashes the password; takes ~0.2 s).
    public static func line(name: String, role: String, password: String) throws(ConsoleUsersError) -> String {
        guard validName(name) else { throw .badName(name) }
        guard let r = OperatorRole(rawValue: role), roles.contains(r) else { throw .badRole(role) }
        // bcrypt reads at most 72 bytes: a longer password would be silently truncated.
        guard (8...72).contains(password.utf8.count) else { throw .weakPassword }
        return "\(name) \(r.rawValue) \(Bcrypt.hash(password, cost: cost))"
    }

    /// Appends a user to the file (created with mode 0600 when missing); refuses a name already there.
    public static func add(name: String, role: String, password: String, to path: String) throws(ConsoleUsersError) {
        var existing: [ConsoleUser] = []
        if FileManager.default.fileExists(atPath: path) {
            do { existing = try parse(try String(contentsOfFile: path, encoding: .utf8)) } catch let e as ConsoleUsersError { throw e } catch {
                throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
            }
        }
        guard !existing.contains(where: { $0.name == name }) else { throw .duplicate(name: name) }
        let entry = try line(name: name, role: role, password: password) + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let written = entry.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        guard written == entry.utf8.count else { throw .unreadable(path: path, reason: "short write") }
    }
}

/// Logged-in sessions: an unguessable token (the cookie's value) → user and expiry.
public final class ConsoleSessions: Sendable {
    public struct Session: Sendable, Equatable {
        public var token: String
        public var user: ConsoleUser
        public var expires: Nanoseconds
    }

    private let users: [String: ConsoleUser]
    private let lifetime: Nanoseconds
    private let clock: any ConsoleClock
    private let state = Mutex<(sessions: [String: Session], failures: [String: [Nanoseconds]])>(([:], [:]))
    /// Failed logins per user name within `failureWindow` before further attempts are refused.
    public static let maxFailures = 5
    public static let failureWindow: Nanoseconds = 60 * .perSecond
    /// Most live sessions; the oldest goes when a login would exceed it.
    public static let maxSessions = 64

    public init(users: [ConsoleUser], lifetime: Nanoseconds, clock: any ConsoleClock) {
        self.users = Dictionary(users.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.lifetime = lifetime; self.clock = clock
    }

    public enum LoginError: Error, Sendable, Equatable, CustomStringConvertible {
        case badCredentials
        case tooManyAttempts
        public var description: String {
            switch self {
            case .badCredentials: "wrong user name or password"
            case .tooManyAttempts: "too many failed logins: wait a minute"
            }
        }
    }

    /// Checks the password (bcrypt, slow on purpose) and opens a session.
    public func login(name: String, password: String) -> Result<Session, LoginError> {
        let now = clock.now()
        let blocked = state.withLock { s -> Bool in
            let recent = (s.failures[name] ?? []).filter { now - $0 < Self.failureWindow }
            s.failures[name] = recent
            return recent.count >= Self.maxFailures
        }
        if blocked { return .failure(.tooManyAttempts) }
        // An unknown name still costs a bcrypt check, so timing does not tell which names exist.
        let user = users[name]
        let ok = Bcrypt.verify(password, hash: user?.passwordHash ?? Self.decoyHash) && user != nil
        guard ok, let user, password.utf8.count <= 72 else {
            state.withLock { s in s.failures[name, default: []].append(now); if s.failures.count > 1024 { s.failures.removeAll() } }
            return .failure(.badCredentials)
        }
        let session = Session(token: Self.newToken(), user: user, expires: now + lifetime)
        state.withLock { s in
            s.failures[name] = nil
            s.sessions = s.sessions.filter { $0.value.expires > now }
            if s.sessions.count >= Self.maxSessions, let oldest = s.sessions.min(by: { $0.value.expires < $1.value.expires }) {
                s.sessions[oldest.key] = nil
            }
            s.sessions[session.token] = session
        }
        return .success(session)
    }

    /// The session of `token` if it exists and has not expired.
    public func session(token: String) -> Session? {
        let now = clock.now()
        return state.withLock { s in
            guard let found = s.sessions[token] else { return nil }
            if found.expires <= now { s.sessions[token] = nil; return nil }
            return found
        }
    }

    public func logout(token: String) { _ = state.withLock { $0.sessions.removeValue(forKey: token) } }

    /// Opens a session without a password: for `lumen bench console` only, which logs in its own
    /// headless browser with a user that exists for that run.
    public func openSession(for user: ConsoleUser) -> Session {
        let session = Session(token: Self.newToken(), user: user, expires: clock.now() + lifetime)
        state.withLock { $0.sessions[session.token] = session }
        return session
    }

    static func newToken() -> String {
        var g = SystemRandomNumberGenerator()
        var s = ""
        for _ in 0..<4 { s += String(UInt64.random(in: .min ... .max, using: &g), radix: 16).leftPadded(16) }
        return s
    }

    /// A valid hash of a random password, checked against when the name is unknown.
    static let decoyHash = Bcrypt.hash(newToken(), cost: ConsoleUsers.cost)
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// Where the console reads time: the monotonic clock, or a hand-advanced one in tests.
public protocol ConsoleClock: Sendable {
    func now() -> Nanoseconds
}

public struct SystemConsoleClock: ConsoleClock {
    public init() {}
    public func now() -> Nanoseconds { MonotonicClock.now() }
}

/// A clock that moves only when told: deadman, lease and session timing tested without waiting.
public final class ManualConsoleClock: ConsoleClock {
    private let t: Mutex<Nanoseconds>
    public init(_ start: Nanoseconds = 1_000_000_000) { t = Mutex(start) }
    public func now() -> Nanoseconds { t.withLock { $0 } }
    public func advance(_ d: Nanoseconds) { t.withLock { $0 += d } }
}
