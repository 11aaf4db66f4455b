import Core
import Foundation

/// JSON on stdout for `--json`, human text otherwise; progress always on stderr.
enum Output {
    static func json(_ value: some Encodable) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try enc.encode(value)
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    static func writeJSON(_ value: some Encodable, to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try OutputPath.write(enc.encode(value), to: path)
    }

    static func progress(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// A line rewritten in place on a terminal (one line per call otherwise).
    static func status(_ message: String) {
        let tty = isatty(STDERR_FILENO) == 1
        FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + message : message + "\n").utf8))
    }

    static func endStatus() {
        if isatty(STDERR_FILENO) == 1 { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// Errors a command reports to the user: the message, and a non-zero exit.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
