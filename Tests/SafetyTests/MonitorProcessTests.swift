import Control
import Core
import Foundation
import Testing
@testable import Safety
import Scenarios
import Sim

/// The monitor as a real process (`lumen safety`) with a real channel (Unix datagram sockets)
/// to simulated drives in this process, and a stand-in for the control process.
@Suite(.serialized) struct MonitorProcessTests {
    static var binary: URL {
        let bundleDir = Bundle.main.bundleURL.deletingLastPathComponent()
        let candidates = [bundleDir.appendingPathComponent("lumen"), Fixture.root.appendingPathComponent(".build/debug/lumen")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[1]
    }

    /// A short directory for socket paths (they are limited to 107 bytes).
    func socketDirectory() throws -> String {
        let dir = "/tmp/lumen-safety-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The example limits with timing loosened for a shared, non-real-time test machine: the
    /// test is about who removes power, not how fast.
    func relaxedLimits(in dir: String) throws -> String {
        var text = Fixture.limitsText
        text = text.replacingOccurrences(of: "heartbeat_timeout_ms: 5", with: "heartbeat_timeout_ms: 100")
        text = text.replacingOccurrences(of: "max_consecutive_lost: 3", with: "max_consecutive_lost: 100")
        let path = dir + "/limits.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func launch(_ args: [String], stderr: Pipe) throws -> Process {
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = args
        p.currentDirectoryURL = Fixture.root
        p.standardOutput = FileHandle.nullDevice
        p.standardError = stderr
        try p.run()
        return p
    }

    func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            usleep(2000)
        }
        return condition()
    }

    @Test func aBadLimitsFileIsRefusedAndNothingGetsPower() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the lumen tool first (swift build)")
        let dir = try socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let robot = try Fixture.robot()
        let drives = try SafetyChannelDrives(axes: robot.axes, start: Fixture.start, listen: dir + "/d.sock", monitor: dir + "/m.sock", watchdog: 0.05)
        drives.start()
        defer { drives.stop() }
        let control = try ControlStandIn(axes: robot.axes.count, monitor: dir + "/m.sock")
        control.start()
        defer { control.stop() }

        let bad = dir + "/bad.yaml"
        try Fixture.limitsText.replacingOccurrences(of: "max_insertion_force_n: 1.5", with: "max_insertion_force_n: 500")
            .write(toFile: bad, atomically: true, encoding: .utf8)
        for (config, reason) in [(bad, "max_insertion_force_n"), (dir + "/missing.yaml", "missing.yaml")] {
            let err = Pipe()
            let p = try launch(["safety", "--config", config, "--listen", dir + "/m.sock", "--drives", dir + "/d.sock"], stderr: err)
            for _ in 0..<20 { control.acknowledge() }
            p.waitUntilExit()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(p.terminationStatus == 2)
            #expect(text.contains("refusing to enable anything"))
            #expect(text.contains(reason), "\(text)")
        }
        usleep(200_000)
        #expect(!drives.snapshot.everPowered)
        #expect(drives.snapshot.permitsReceived == 0)
    }

    /// The fail-safe property with real processes: the monitor permits power, then dies
    /// (SIGKILL) or hangs (SIGSTOP); no permit comes after that, and the drives' own
    /// safety-line watchdogs remove power. Timing is printed, not asserted: this machine is not
    /// a real-time target (the campaign measures reaction times in simulated time).
    @Test(arguments: [("killed", SIGKILL), ("hung", SIGSTOP)])
    func aMonitorThatDiesOrHangsLeavesTheDrivesUnpowered(_ how: String, _ signalNumber: Int32) throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the lumen tool first (swift build)")
        let dir = try socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let robot = try Fixture.robot()
        let watchdog = 0.05
        let drives = try SafetyChannelDrives(axes: robot.axes, start: Fixture.start, listen: dir + "/d.sock", monitor: dir + "/m.sock", watchdog: watchdog)
        drives.start()
        defer { drives.stop() }
        let control = try ControlStandIn(axes: robot.axes.count, monitor: dir + "/m.sock")
        control.start()
        defer { control.stop() }
        // Its log goes to a file: a pipe nobody drains could block the monitor mid-test.
        let log = dir + "/monitor.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = ["safety", "--config", try relaxedLimits(in: dir), "--listen", dir + "/m.sock", "--drives", dir + "/d.sock", "--seconds", "60"]
        p.currentDirectoryURL = Fixture.root
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try p.run()
        defer {
            if p.isRunning { kill(p.processIdentifier, SIGKILL); kill(p.processIdentifier, SIGCONT) }
            _ = waitFor(seconds: 5) { !p.isRunning }
        }
        // Power comes only once the operator acknowledges (the monitor starts latched).
        let powered = waitFor(seconds: 20) {
            if !drives.snapshot.enabled.allSatisfy({ $0 }) { control.acknowledge(); usleep(50_000) }
            return drives.snapshot.enabled.allSatisfy { $0 }
        }
        let logText = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        try #require(powered, "the monitor never permitted power: \(logText())")
        // Let it run powered a little, so the permits are a steady stream.
        usleep(200_000)
        #expect(drives.snapshot.enabled.allSatisfy { $0 }, "power dropped while the monitor ran: \(logText())")
        let signalledAt = MonotonicClock.now()
        kill(p.processIdentifier, signalNumber)
        let off = waitFor(seconds: 5) { !drives.snapshot.enabled.contains(true) }
        let r = drives.snapshot
        #expect(off, "the drives kept power after the monitor was \(how)")
        #expect(r.lastPermitAt <= signalledAt + 5_000_000, "a permit arrived after the monitor was \(how)")
        #expect(r.poweredOffAt > r.lastPermitAt)
        print(String(format: "monitor %@: power off %.1f ms after the last permit (drive watchdog %.0f ms), %.1f ms after the signal",
                     how, Double(r.poweredOffAt - r.lastPermitAt) * 1e-6, watchdog * 1e3, Double(r.poweredOffAt - signalledAt) * 1e-6))
        // Nothing comes back by itself.
        usleep(200_000)
        #expect(!drives.snapshot.enabled.contains(true))
    }

    @Test func checkPrintsTheHashOfTheLimitsFile() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the lumen tool first (swift build)")
        let out = Pipe()
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = ["safety", "--config", Fixture.limitsPath, "--check"]
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(p.terminationStatus == 0)
        #expect(printed == SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: Fixture.limitsPath))))
    }
}
