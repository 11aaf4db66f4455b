import Foundation
import Testing

/// `lumen hil conformance` against devices that do and do not conform: the built-in emulated
/// drive (the C reference), and hil/conformance/pydrive.py — a drive written from
/// docs/protocol.md alone — as it is and with each of its deliberate defects. Serialized: a
/// drive started while another test's `lumen` runs would inherit that one's output pipe and
/// keep it open, and the run's timing checks are better judged one device at a time.
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock")) struct ConformanceCommandTests {
    /// The Python drive on a pty of its own, stopped when the value goes.
    final class PythonDrive {
        let process = Process()
        let link: String

        init(mutant: String?) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", Tool.root.appendingPathComponent("hil/conformance/pydrive.py").path] + (mutant.map { ["--mutant", $0] } ?? [])
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            // Its first line is the link to give the suite.
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                line.append(chunk)
            }
            link = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        deinit {
            // SIGKILL: the drive is a test peer with nothing to flush, and a peer that does not
            // die on SIGTERM must not hang the suite.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    struct Verdicts {
        var status: Int32
        var failed: Set<String>
        var passed: Set<String>
        var messages: [String: String]
        var stderr: String
    }

    static func conformance(_ args: [String]) throws -> Verdicts {
        let r = try Tool.run(["hil", "conformance", "--json"] + args)
        let results = (r.json?["results"] as? [[String: Any]]) ?? []
        var failed = Set<String>(), passed = Set<String>(), messages: [String: String] = [:]
        for c in results {
            guard let id = c["id"] as? String else { continue }
            if c["verdict"] as? String == "pass" { passed.insert(id) } else { failed.insert(id) }
            messages[id] = "\(c["clause"] ?? ""): \(c["message"] ?? "")"
        }
        return Verdicts(status: r.status, failed: failed, passed: passed, messages: messages, stderr: r.stderr)
    }

    static let allChecks = 15

    @Test func theEmulatedDriveOnTheCReferencePassesEveryCheck() throws {
        let v = try Self.conformance(["--emulated"])
        #expect(v.status == 0, "\(v.failed.map { v.messages[$0] ?? $0 }) \(v.stderr.suffix(300))")
        #expect(v.failed.isEmpty && v.passed.count == Self.allChecks)
    }

    @Test func theDriveWrittenFromTheSpecAlonePassesEveryCheck() throws {
        let drive = try PythonDrive(mutant: nil)
        let v = try Self.conformance(["--link", drive.link])
        #expect(v.status == 0, "\(v.failed.map { v.messages[$0] ?? $0 }) \(v.stderr.suffix(300))")
        #expect(v.failed.isEmpty && v.passed.count == Self.allChecks)
    }

    /// The checks that judge time. Each measures again when it fails on time, so a loaded
    /// machine that starved the device once does not fail it; one that starved the suite on
    /// every attempt says so in the message.
    static let timingChecks: Set<String> = ["hello-powers-off", "heartbeat", "reply-deadline", "watchdog", "watchdog-disarmed"]

    /// Each defect fails the check of its clause, and no other; the message names the clause
    /// and what came back. Another clause may fail besides only if it judges time and the
    /// suite measured itself starved on its attempts (the device shares that machine).
    @Test(arguments: [
        ("accept-bad-crc", "framing", "wrong CRC"),
        ("accept-stale", "sequence", "duplicate"),
        ("wrong-version", "handshake", "HELLO_ACK version 2"),
        ("late-watchdog", "watchdog", "no watchdog fault latched"),
        ("no-fault-message", "fault", "no FAULT message"),
    ])
    func eachDefectFailsTheCheckOfItsClause(mutant: String, check: String, says: String) throws {
        let drive = try PythonDrive(mutant: mutant)
        let v = try Self.conformance(["--link", drive.link])
        #expect(v.status == 5, "\(mutant): exit \(v.status)")
        #expect(v.failed.contains(check), "\(mutant) failed \(v.failed.sorted()): \(v.failed.map { v.messages[$0] ?? $0 })")
        let others = v.failed.subtracting([check]).filter { !(Self.timingChecks.contains($0) && (v.messages[$0] ?? "").contains("while the host was starved")) }
        #expect(others.isEmpty, "\(mutant) failed \(v.failed.sorted()): \(v.failed.map { v.messages[$0] ?? $0 })")
        let message = v.messages[check] ?? ""
        #expect(message.contains(says) && message.contains("docs/protocol.md"), "\(mutant): \(message)")
    }

    @Test func aReplyPastTheDeadlineFailsTheDeadlineCheck() throws {
        // Replies 300 ms late: the suite paces itself on replies, so the checks that keep the
        // power on through request and reply also see the watchdog trip; the deadline check
        // is the one that names the cause.
        let drive = try PythonDrive(mutant: "slow-replies")
        let v = try Self.conformance(["--link", drive.link, "--only", "handshake,param,reply-deadline"])
        #expect(v.status == 5)
        #expect(v.failed == ["reply-deadline"], "\(v.failed.map { v.messages[$0] ?? $0 })")
        // The message names the late reply it measured: 300 ms or more (a loaded machine adds to it).
        let message = v.messages["reply-deadline"] ?? ""
        let measured = message.firstMatch(of: /got the reply to \w+ after (\d+(?:\.\d+)?) ms/).flatMap { Double($0.1) }
        #expect((measured ?? 0) >= 295, "\(v.messages)")
    }

    @Test func theJUnitReportHasOneCasePerCheckAndTheFailure() throws {
        let drive = try PythonDrive(mutant: "accept-stale")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-conformance-\(UUID()).xml")
        defer { try? FileManager.default.removeItem(at: file) }
        let v = try Self.conformance(["--link", drive.link, "--only", "handshake,sequence", "--junit", file.path])
        #expect(v.status == 5)
        let xml = try String(contentsOf: file, encoding: .utf8)
        #expect(xml.components(separatedBy: "<testcase ").count == 3)
        #expect(xml.contains("failures=\"1\"") && xml.contains("<failure message=\"sent a COMMAND repeating seq"))
        #expect(xml.contains("Framing › Sequence numbers"))
    }

    @Test func aLinkIsRequiredAndMustBeADriveLinkOne() throws {
        for (args, says) in [([String](), "--link"), (["--link", "sim"], "not a DriveLink link"),
                             (["--link", "pty:/dev/null", "--emulated"], "exclude each other"),
                             (["--emulated", "--only", "nonsense"], "no check named nonsense")] {
            let r = try Tool.run(["hil", "conformance"] + args)
            #expect(r.status == 64, "\(args): \(r.status)")
            #expect(r.stderr.contains(says), "\(args): \(r.stderr)")
        }
        // A path that is not a terminal: the link cannot be opened.
        let r = try Tool.run(["hil", "conformance", "--link", "pty:/dev/null"])
        #expect(r.status == 1 && r.stderr.contains("/dev/null"), "\(r.status) \(r.stderr)")
    }
}
