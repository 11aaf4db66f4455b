import Control
import Core
import Foundation
import Testing
@testable import Safety
import Scenarios
import Sim

/// The monitor as a real process (`lumen safety`) with a real channel (Unix datagram sockets)
/// to simulated drives in this process, and a stand-in for the control process.
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock")) struct MonitorProcessTests {
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

    /// Simulated drives listening on `dir`/d.sock and a control stand-in, both speaking to the
    /// monitor at `dir`/m.sock with the tests' key, started.
    func startDrivesAndControl(in dir: String, watchdog: Double = 0.05) throws -> (drives: SafetyChannelDrives, control: ControlStandIn) {
        let robot = try Fixture.robot()
        let drives = try SafetyChannelDrives(axes: robot.axes, start: Fixture.start, listen: dir + "/d.sock", monitor: dir + "/m.sock", watchdog: watchdog,
                                             key: Fixture.key)
        drives.start()
        let control = try ControlStandIn(axes: robot.axes.count, monitor: dir + "/m.sock", key: Fixture.key)
        control.start()
        return (drives, control)
    }

    /// The monitor's arguments for the channel in `dir` with the relaxed limits and the tests' key.
    func monitorArguments(in dir: String) throws -> [String] {
        ["safety", "--config", try relaxedLimits(in: dir), "--listen", dir + "/m.sock", "--drives", dir + "/d.sock",
         "--key", try Fixture.writeKey(in: dir)]
    }

    /// Starts `lumen safety` with `args`, its log to `dir`/monitor.log (a pipe nobody drains
    /// could block the monitor mid-test), and acknowledges until the drives have power.
    /// Returns the process and a reader of its log.
    func startPoweredMonitor(_ args: [String], in dir: String, drives: SafetyChannelDrives, control: ControlStandIn) throws
        -> (process: Process, log: () -> String) {
        let log = dir + "/monitor.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = args
        p.currentDirectoryURL = Fixture.root
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try p.run()
        let logText = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        // Power comes only once the operator acknowledges (the monitor starts latched).
        let powered = waitFor(seconds: 20) {
            if !drives.snapshot.enabled.allSatisfy({ $0 }) { control.acknowledge(); usleep(50_000) }
            return drives.snapshot.enabled.allSatisfy { $0 }
        }
        if !powered {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw MonitorDidNotPower(log: logText())
        }
        return (p, logText)
    }

    struct MonitorDidNotPower: Error, CustomStringConvertible {
        var log: String
        var description: String { "the monitor never permitted power: \(log)" }
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
        let (drives, control) = try startDrivesAndControl(in: dir)
        defer { drives.stop() }
        defer { control.stop() }

        let bad = dir + "/bad.yaml"
        try Fixture.limitsText.replacingOccurrences(of: "max_insertion_force_n: 1.5", with: "max_insertion_force_n: 500")
            .write(toFile: bad, atomically: true, encoding: .utf8)
        for (config, reason) in [(bad, "max_insertion_force_n"), (dir + "/missing.yaml", "missing.yaml")] {
            let err = Pipe()
            let p = try launch(["safety", "--config", config, "--listen", dir + "/m.sock", "--drives", dir + "/d.sock",
                                "--key", try Fixture.writeKey(in: dir)], stderr: err)
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
        let watchdog = 0.05
        // Power held for a steady stream of permits first. On a loaded machine a monitor or a
        // control stand-in starved past the heartbeat timeout (100 ms) or the drives' watchdog
        // (50 ms) rightly takes the power away before the signal, and there is nothing left to
        // remove: that set-up is made again (fresh sockets and processes), a few times at most.
        var setUp: (dir: String, drives: SafetyChannelDrives, control: ControlStandIn, monitor: Process)?
        var dropped: [String] = []
        for _ in 0..<4 where setUp == nil {
            let dir = try socketDirectory()
            let (drives, control) = try startDrivesAndControl(in: dir, watchdog: watchdog)
            let (p, logText) = try startPoweredMonitor(try monitorArguments(in: dir) + ["--seconds", "60"], in: dir, drives: drives, control: control)
            usleep(200_000)
            let held = drives.snapshot
            if held.enabled.allSatisfy({ $0 }) && held.poweredOffAt == 0 {
                setUp = (dir, drives, control, p)
                break
            }
            dropped.append(logText())
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            control.stop()
            drives.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let (dir, drives, control, p) = try #require(setUp, "power dropped while the monitor ran, on every attempt: \(dropped)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        defer { drives.stop() }
        defer { control.stop() }
        defer {
            if p.isRunning { kill(p.processIdentifier, SIGKILL); kill(p.processIdentifier, SIGCONT) }
            _ = waitFor(seconds: 5) { !p.isRunning }
        }
        let signalledAt = MonotonicClock.now()
        kill(p.processIdentifier, signalNumber)
        let off = waitFor(seconds: 20) { !drives.snapshot.enabled.contains(true) }
        let r = drives.snapshot
        #expect(off, "the drives kept power after the monitor was \(how)")
        // By the monitor's own send time (its counter): a drives thread late to read its socket
        // on a loaded machine takes permits sent before the signal after it.
        #expect(r.lastPermitSentAt <= signalledAt + 5_000_000, "a permit was sent after the monitor was \(how)")
        #expect(r.poweredOffAt > r.lastPermitAt)
        print(String(format: "monitor %@: power off %.1f ms after the last permit (drive watchdog %.0f ms), %.1f ms after the signal",
                     how, Double(r.poweredOffAt - r.lastPermitAt) * 1e-6, watchdog * 1e3, Double(r.poweredOffAt - signalledAt) * 1e-6))
        // Nothing comes back by itself.
        usleep(200_000)
        #expect(!drives.snapshot.enabled.contains(true))
    }

    /// A monitor whose starting process is killed (a runtime gone with SIGKILL cannot stop it)
    /// notices, stops as on SIGTERM and exits, instead of living on as an orphan.
    @Test func aMonitorWhoseStarterIsGoneStopsByItself() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the lumen tool first (swift build)")
        let dir = try socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let args = try monitorArguments(in: dir) + ["--seconds", "120"]
        let log = dir + "/monitor.log", pidFile = dir + "/monitor.pid"
        // A shell starts the monitor with itself as the parent to watch, lives a while, then is killed.
        let quoted = ([Self.binary.path] + args).map { "'\($0)'" }.joined(separator: " ")
        let starter = Process()
        starter.executableURL = URL(fileURLWithPath: "/bin/sh")
        starter.arguments = ["-c", "\(quoted) --exit-with-parent $$ 2>'\(log)' & echo $! >'\(pidFile)'; exec sleep 60"]
        starter.currentDirectoryURL = Fixture.root
        try starter.run()
        #expect(waitFor(seconds: 20) { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("monitoring on") },
                "the monitor did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        let pid = try #require(Int32(((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(pid, SIGKILL) }
        usleep(300_000)
        #expect(!((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("is gone"), "stopped while its starter lived")
        kill(starter.processIdentifier, SIGKILL)
        starter.waitUntilExit()
        // Gone, or a zombie its new parent has not reaped yet: either way no longer running.
        func running() -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
            return !(stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? false)
        }
        #expect(waitFor(seconds: 20) { !running() }, "the orphaned monitor is still running")
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("(\(starter.processIdentifier)) is gone: stopping, permits withdrawn"), "\(text)")
    }

    /// Runs `lumen safety` with `args` to its end (at most `seconds`); (status, stderr).
    func runToEnd(_ args: [String], seconds: Double = 30) throws -> (status: Int32, stderr: String) {
        let err = Pipe()
        let p = try launch(args, stderr: err)
        if !waitFor(seconds: seconds, { !p.isRunning }) { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    @Test(arguments: ["nan", "inf", "1e300", "-1", "0", "-inf", "1e8"])
    func aRunLengthThatIsNotAPositiveNumberOfSecondsIsAUsageErrorBeforeAnySocket(_ value: String) throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the lumen tool first (swift build)")
        let dir = "/tmp/lumen-seconds-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runToEnd(["safety", "--config", Fixture.limitsPath, "--listen", dir + "/m.sock", "--drives", dir + "/d.sock",
                              "--key", "/nonexistent.key", "--seconds", value])
        #expect(r.status == 64, "\(r.stderr)")
        #expect(r.stderr.contains("--seconds"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir), "nothing is created before the options are checked")
    }

    @Test func aKeyFileThatIsMissingShortOrReadableByOthersIsRefused() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the lumen tool first (swift build)")
        let dir = try socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let open = dir + "/open.key", short = dir + "/short.key"
        _ = FileManager.default.createFile(atPath: open, contents: Data(Fixture.keyBytes), attributes: [.posixPermissions: 0o644])
        _ = FileManager.default.createFile(atPath: short, contents: Data(Fixture.keyBytes.prefix(16)), attributes: [.posixPermissions: 0o600])
        for (key, reason) in [(dir + "/missing.key", "missing.key"), (open, "chmod 600"), (short, "16 bytes")] {
            let r = try runToEnd(["safety", "--config", Fixture.limitsPath, "--listen", dir + "/m.sock", "--drives", dir + "/d.sock", "--key", key])
            #expect(r.status == 2, "\(r.stderr)")
            #expect(r.stderr.contains("refusing to enable anything") && r.stderr.contains(reason), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/m.sock"))
        }
    }

    @Test func aRegularFileGivenAsTheSocketIsNeitherDeletedNorUsed() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the lumen tool first (swift build)")
        let dir = try socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/notes.txt"
        try "keep me".write(toFile: file, atomically: false, encoding: .utf8)
        let r = try runToEnd(["safety", "--config", Fixture.limitsPath, "--listen", file, "--drives", dir + "/d.sock",
                              "--key", try Fixture.writeKey(in: dir), "--seconds", "1"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("refusing to replace") && r.stderr.contains("a regular file"), "\(r.stderr)")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "keep me")
    }

    /// Two monitors on one socket: the second is refused with its own exit code; the first
    /// keeps its socket and keeps the drives powered.
    @Test func aSecondMonitorOnTheSameSocketIsRefusedAndTheFirstKeepsPower() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the lumen tool first (swift build)")
        let dir = try socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (drives, control) = try startDrivesAndControl(in: dir)
        defer { drives.stop() }
        defer { control.stop() }
        let args = try monitorArguments(in: dir)
        let (first, _) = try startPoweredMonitor(args + ["--seconds", "60"], in: dir, drives: drives, control: control)
        defer {
            if first.isRunning { kill(first.processIdentifier, SIGKILL) }
            _ = waitFor(seconds: 5) { !first.isRunning }
        }
        let second = try runToEnd(args + ["--seconds", "2"])
        #expect(second.status == 3, "\(second.stderr)")
        #expect(second.stderr.contains("another safety monitor is running"), "\(second.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/m.sock"))
        let before = drives.snapshot.permitsReceived
        #expect(waitFor(seconds: 20) { drives.snapshot.permitsReceived > before }, "the first monitor still sends permits")
        // The first still powers the drives: asked again if the run so far dropped the power (a
        // monitor or control stand-in starved past the heartbeat timeout on a loaded machine is
        // a stop the first monitor makes rightly; it must still be the one that can lift it).
        let powered = waitFor(seconds: 20) {
            if !drives.snapshot.enabled.allSatisfy({ $0 }) { control.acknowledge(); usleep(50_000) }
            return drives.snapshot.enabled.allSatisfy { $0 }
        }
        #expect(powered, "the first monitor no longer powers the drives")
        #expect(drives.snapshot.permitsRefused == 0)
    }

    /// The real process under attack: a sender of another user holding the key (the socket
    /// opened up by mistake), a sender of the same user with a wrong key, and a replayed
    /// acknowledge. Its summary counts each, and the drives never get power.
    @Test func theRealMonitorRefusesForgedSendersAndCountsThem() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary.path), "build the lumen tool first (swift build)")
        guard let nobody = NobodySender() else { return }
        let dir = try socketDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(chmod(dir, 0o755) == 0)
        let robot = try Fixture.robot()
        let drives = try SafetyChannelDrives(axes: robot.axes, start: Fixture.start, listen: dir + "/d.sock", monitor: dir + "/m.sock", watchdog: 0.05,
                                             key: Fixture.key)
        drives.start()
        defer { drives.stop() }
        let out = Pipe()
        let p = Process()
        p.executableURL = Self.binary
        // Long enough that every datagram below is sent while it runs, on a loaded machine too
        // (10 s was not: in a full test run the sender as nobody started after the monitor had
        // ended, and all 300 of its datagrams were refused).
        p.arguments = try monitorArguments(in: dir) + ["--seconds", "30", "--json"]
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let socket = dir + "/m.sock"
        try #require(waitFor(seconds: 10) { FileManager.default.fileExists(atPath: socket) })
        #expect(chmod(socket, 0o666) == 0)
        let other = try nobody.send(NobodySender.keyedDatagrams(300), to: socket, staging: dir) {}
        #expect(other.sent == 300)
        let sender = try DatagramSocket(bindTo: nil)
        let wrongKey = ChannelKey(secret: [UInt8](repeating: 7, count: 32))
        var forged = 0
        for k in 0..<100 {
            let d = Forge.operatorInput(deadman: true, acknowledge: k % 2 == 0, counter: UInt64(MonotonicClock.now()), key: wrongKey)
            if d.withUnsafeBytes({ sender.send($0, to: socket) }) { forged += 1 }
            usleep(1000)
        }
        let press = Forge.operatorInput(deadman: true, acknowledge: true, counter: UInt64(MonotonicClock.now()))
        var replays = 0
        for _ in 0..<3 {
            if press.withUnsafeBytes({ sender.send($0, to: socket) }) { replays += 1 }
            usleep(5000)
        }
        p.waitUntilExit()
        let summary = try #require(try JSONSerialization.jsonObject(with: out.fileHandleForReading.readDataToEndOfFile()) as? [String: Any])
        #expect(p.terminationStatus == 0)
        #expect(summary["rejected_credentials"] as? Int == 300)
        #expect(summary["rejected_tag"] as? Int == forged)
        #expect(summary["rejected_replay"] as? Int == replays - 1)
        #expect(summary["operator_inputs"] as? Int == 1)
        #expect(summary["permits_with_power"] as? Int == 0)
        #expect(forged > 50 && replays == 3)
        #expect(!drives.snapshot.everPowered)
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
