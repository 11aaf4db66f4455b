import Core
import Foundation
import Runtime
import Synchronization

/// Who did what, when: every login, lease change, refused command, stop and deadman release,
/// one line each, appended to a file (when configured) and kept in memory for the page and tests.
///
/// A line: `2026-12-05T09:30:12.123Z name role source: action -> outcome`.
public final class AuditLog: Sendable {
    public struct Entry: Sendable, Equatable {
        public var wallTime: Double
        public var time: Nanoseconds
        public var who: String
        public var role: String
        public var source: String
        public var action: String
        public var outcome: String

        public var line: String {
            let date = Date(timeIntervalSince1970: wallTime)
            return "\(AuditLog.format(date)) \(who) \(role) \(source): \(action) -> \(outcome)"
        }
    }

    /// Entries kept in memory (the file has them all).
    public static let memoryLimit = 500
    private let state = Mutex<[Entry]>([])
    private let file: FileHandle?
    private let clock: any ConsoleClock

    /// Opens (appends to) `path` when given; the file is created with mode 0600.
    public init(path: String?, clock: any ConsoleClock) throws(ConsoleServerError) {
        self.clock = clock
        if let path {
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            guard fd >= 0 else { throw .auditLog(path: path, reason: String(cString: strerror(errno))) }
            file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        } else {
            file = nil
        }
    }

    public func record(_ who: OperatorIdentity?, _ action: String, _ outcome: String) {
        record(name: who?.name ?? "-", role: who?.role.rawValue ?? "-", source: who?.source ?? "-", action, outcome)
    }

    /// For someone not (yet) known: a refused login, a refused socket.
    public func record(name: String, role: String = "-", source: String, _ action: String, _ outcome: String) {
        let entry = Entry(wallTime: Date().timeIntervalSince1970, time: clock.now(), who: Self.clean(name), role: role,
                          source: source, action: Self.clean(action), outcome: Self.clean(outcome))
        state.withLock { entries in
            entries.append(entry)
            if entries.count > Self.memoryLimit { entries.removeFirst(entries.count - Self.memoryLimit) }
            // The file is written under the lock so lines never interleave.
            if let file { try? file.write(contentsOf: Data((entry.line + "\n").utf8)) }
        }
    }

    public func entries() -> [Entry] { state.withLock { $0 } }

    /// One line per entry whatever a user name or message holds.
    static func clean(_ s: String) -> String {
        String(s.prefix(300).map { c -> Character in
            if c.isNewline { return " " }
            if let a = c.asciiValue, a < 0x20 || a == 0x7F { return "?" }
            return c
        })
    }

    static func format(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }
}
