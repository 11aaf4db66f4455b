import Core
import Foundation

/// JSON on stdout for `--json`, human text otherwise; progress always on stderr.
package enum Output {
    package static func json(_ value: some Encodable) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try enc.encode(value)
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    package static func writeJSON(_ value: some Encodable, to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try OutputPath.write(enc.encode(value), to: path)
    }

    package static func progress(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// A line rewritten in place on a terminal (one line per call otherwise).
    package static func status(_ message: String) {
        let tty = isatty(STDERR_FILENO) == 1
        FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + message : message + "\n").utf8))
    }

    package static func endStatus() {
        if isatty(STDERR_FILENO) == 1 { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// Errors a command reports to the user: the message, and a non-zero exit.
package struct CommandFailure: Error, CustomStringConvertible {
    package var description: String
    package init(_ d: String) { description = d }
}
