import Control
import Core
import Foundation
import Safety
import Sim
import Testing
@testable import Runtime

/// The live runtime on a drive link: emulated DriveLink drives behind a pty (the C firmware
/// reference on their own thread), the monitor process's permits on their safe-torque-off input.
/// Outcomes are asserted, never how fast: they must hold with the machine loaded.
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock")) struct LiveLinkTests {

    /// The tube without imaging on `serial`, with the monitor process, powered: the deadman held
    /// by an automation client, the drives out of idle into hold.
    func startPowered() throws -> (LiveRuntime, AutomationClient, EmulatedDrives) {
        var settings = tubeSettings(monitor: true, imaging: .off, realtime: true)
        settings.drives = .emulatedDriveLink
        let runtime = try LiveRuntime(settings, robot: try loadRobot())
        // Values first: a failing expectation reflects what it names, and the runtime holds noncopyable parts.
        let emulated = runtime.emulatedDrives
        let drives = try #require(emulated)
        let (_, client) = try startPoweredRuntime(runtime)
        _ = client.submit(.mode(.hold))
        let holding = waitFor(seconds: 20) { runtime.snapshot().mode == .hold && drives.powered }
        if !holding {
            client.stop()
            _ = runtime.finish(.completed)
        }
        try #require(holding, "the drives never held with power: mode \(runtime.snapshot().mode), powered \(drives.powered)")
        return (runtime, client, drives)
    }

    @Test func onTheSerialLinkTheRuntimeJogsTheInsertionAndTheCatheterFollowsTheDrives() throws {
        let (runtime, client, drives) = try startPowered()
        defer {
            client.stop()
            _ = runtime.finish(.completed)
        }
        let emulator = try #require(drives.emulator)
        let driveBefore = emulator.report.positions[0]
        // The catheter's shape is read under a sequence lock: a read that meets a write is retried.
        func tip() -> Vec3? {
            var t: Vec3?
            _ = waitFor(seconds: 5) { t = runtime.trueTip; return t != nil }
            return t
        }
        let tipBefore = try #require(tip())
        // Two seconds of full insertion jog, repeated as the console repeats it.
        let end = Date().addingTimeInterval(2)
        while Date() < end {
            _ = client.submit(.jointJog(JointVector([1, 0, 0, 0])))
            usleep(50_000)
        }
        // The jog stops when its demand is no longer repeated; the drives come to rest.
        _ = waitFor(seconds: 5) { runtime.snapshot().joints.velocity[0] == 0 }
        usleep(200_000)
        let moved = emulator.report.positions[0] - driveBefore
        let reported = runtime.snapshot().joints.position[0]
        let tipAfterRead = tip()
        let tipAfter = try #require(tipAfterRead)
        let mode = runtime.snapshot().mode, name = runtime.linkName
        let ending = runtime.finish(.completed)
        let powered = runtime.drivesPowered
        let stats = runtime.linkStatistics ?? [:]
        #expect(mode == .jog || mode == .hold)
        #expect(moved > 1, "the emulated drives' insertion moved \(moved) mm in 2 s of jog")
        // The cycle read the drives over the link…
        #expect(abs(reported - emulator.report.positions[0]) < 0.5, "the cycle read \(reported) mm, the drives stand at \(emulator.report.positions[0]) mm")
        #expect((stats["states_received"] ?? 0) > 100, "\(stats)")
        // …and the simulated patient's catheter went where the drives put it: the tube is
        // straight, so the tip advances by most of the insertion.
        let advanced = (tipAfter - tipBefore).length
        #expect(advanced > 0.5 * moved, "the drives inserted \(moved) mm, the catheter's tip moved \(advanced) mm")
        #expect(ending == .completed)
        #expect(!powered, "a drive kept power after the run ended")
        #expect(name.hasPrefix("serial"))
    }

    /// A run that judges the drives alone (a HIL scenario) runs without the simulated patient:
    /// the drives move as jogged, the catheter's rod is not stepped after them.
    @Test func withoutThePatientFollowingTheDrivesMoveAndTheCatheterStandsStill() throws {
        var settings = tubeSettings(monitor: false, imaging: .off, realtime: true)
        settings.drives = .emulatedDriveLink
        settings.patientFollowsDrives = false
        let runtime = try LiveRuntime(settings, robot: try loadRobot())
        let emulated = runtime.emulatedDrives
        let drives = try #require(emulated)
        let emulator = try #require(drives.emulator)
        // The physics catheter's tip, read while the cycle does not run (before and after).
        let tipBefore = runtime.runner.withHardware { $0.tip }
        let (_, client) = try startPoweredRuntime(runtime)
        defer {
            client.stop()
            _ = runtime.finish(.completed)
        }
        _ = client.submit(.mode(.hold))
        let holding = waitFor(seconds: 20) { runtime.snapshot().mode == .hold && drives.powered }
        try #require(holding, "the drives never held with power")
        let driveBefore = emulator.report.positions[0]
        let end = Date().addingTimeInterval(2)
        while Date() < end {
            _ = client.submit(.jointJog(JointVector([1, 0, 0, 0])))
            usleep(50_000)
        }
        _ = waitFor(seconds: 5) { runtime.snapshot().joints.velocity[0] == 0 }
        let moved = emulator.report.positions[0] - driveBefore
        client.stop()
        _ = runtime.finish(.completed)
        let tipAfter = runtime.runner.withHardware { $0.tip }
        let advanced = (tipAfter - tipBefore).length
        #expect(moved > 1, "the emulated drives' insertion moved \(moved) mm in 2 s of jog")
        #expect(advanced < 0.01, "the catheter's tip moved \(advanced) mm without the patient following")
    }

    @Test func onlyDrivesOnALinkRunWithoutThePatient() {
        var settings = tubeSettings(monitor: false, imaging: .off)
        settings.patientFollowsDrives = false
        #expect(throws: RuntimeError.self) { try settings.validate() }
        settings.drives = .emulatedDriveLink
        settings.imaging = .simulated(planes: 1)
        #expect(throws: RuntimeError.self) { try settings.validate() }
        settings.imaging = .off
        #expect(throws: Never.self) { try settings.validate() }
    }

    /// A bench's posture is only for emulated drives the patient does not follow: a patient's
    /// drives stand where its catheter does, and a real device stands where it stands.
    @Test func onlyEmulatedDrivesWithoutThePatientStartAtABenchsPosture() throws {
        var settings = tubeSettings(monitor: false, imaging: .off)
        settings.emulatedDrivesStart = [100, 0, 0, 0, 0, 0]
        #expect(throws: RuntimeError.self) { try settings.validate() }
        settings.drives = .emulatedDriveLink
        #expect(throws: RuntimeError.self) { try settings.validate() }
        settings.patientFollowsDrives = false
        try settings.validate()
        settings.emulatedDrivesStart = [.nan, 0, 0, 0, 0, 0]
        #expect(throws: RuntimeError.self) { try settings.validate() }
        settings.drives = .device(.pty(path: "/dev/pts/9"))
        settings.emulatedDrivesStart = [100, 0, 0, 0, 0, 0]
        #expect(throws: RuntimeError.self) { try settings.validate() }
        // The wrong number of joints is the robot's to judge: refused as the runtime is made.
        var short = tubeSettings(monitor: false, imaging: .off)
        short.drives = .emulatedDriveLink
        short.patientFollowsDrives = false
        short.emulatedDrivesStart = [100]
        #expect(throws: RuntimeError.self) { _ = try LiveRuntime(short, robot: try loadRobot()) }
    }

    /// The emulated drives stand beside a simulated patient: their insertion force sensor must
    /// read what that patient's catheter pushes on, in the STATE the cycle reads and in the
    /// samples the monitor judges (its force check, hazard H1). It read 0 N whatever the
    /// catheter met, so the monitor's force limit could not trip on a link.
    @Test func theEmulatedDrivesForceSensorReadsTheSimulatedPatient() throws {
        let (runtime, client, drives) = try startPowered()
        defer {
            client.stop()
            _ = runtime.finish(.completed)
        }
        let emulator = try #require(drives.emulator)
        var sensed: [Double] = [], patient: [Double] = []
        // Inserted with the tip bent against the tube's wall, so the catheter drags on it: about
        // 10 mN at the sheath, ten steps of the sensor's 1 mN. Straight, it meets nothing, and
        // its push (under a milli-newton) is below the sensor's step. The jog is repeated every
        // 20 ms, as the console repeats it; both forces are read every 2 ms, side by side, over
        // the last 1.5 s, once the drag has built up, and compared by their means.
        let start = Date()
        var n = 0
        while Date().timeIntervalSince(start) < 3 {
            if n % 10 == 0 { _ = client.submit(.jointJog(JointVector([1, 0, 1, 0]))) }
            n += 1
            usleep(2_000)
            guard Date().timeIntervalSince(start) > 1.5 else { continue }
            sensed.append(emulator.safetySample().force)
            patient.append(runtime.snapshot().joints.insertionForce)
        }
        let sensedMean = sensed.map(abs).reduce(0, +) / Double(max(1, sensed.count))
        let patientMean = patient.map(abs).reduce(0, +) / Double(max(1, patient.count))
        #expect(patientMean > 0.005, "the catheter met no resistance: \(patient.prefix(50))")
        #expect(sensedMean > 0.5 * patientMean && sensedMean < 2 * patientMean,
                "the drives' sensor read \(sensedMean) N on average, the patient's catheter pushed \(patientMean) N")
    }

    /// Before the operator's first acknowledge the monitor permits no power, and the cycle must
    /// not ask the link's drives for it: asked, the unpowered stage read as a drive fault and
    /// ended a console's run before anyone had logged in. Once acknowledged, they power up.
    @Test func beforeTheFirstAcknowledgeTheDrivesAreNotAskedForPowerAndTheRunGoesOn() throws {
        var settings = tubeSettings(monitor: true, imaging: .off, realtime: true)
        settings.drives = .emulatedDriveLink
        let runtime = try LiveRuntime(settings, robot: try loadRobot())
        let emulated = runtime.emulatedDrives
        let drives = try #require(emulated)
        try runtime.start()
        defer { _ = runtime.finish(.completed) }
        // Nobody acknowledges: the run must still be going a while later, with the drives off.
        // (Values first: a failing expectation reflects what it names, and the runtime and
        // the drives hold noncopyable parts.)
        let client = AutomationClient(port: runtime)
        client.start()
        defer { client.stop() }
        usleep(2_000_000)
        let lifecycle = runtime.lifecycle
        let before = runtime.snapshot().cycle
        let cycling = waitFor(seconds: 10) { runtime.snapshot().cycle > before + 100 }
        let offBeforeAcknowledge = !drives.powered
        #expect(lifecycle == .active, "the run ended by itself")
        #expect(cycling, "the cycle stopped")
        #expect(offBeforeAcknowledge, "the drives had power before the monitor permitted it")
        let permitted = runtime.waitForPower(seconds: 30), log = runtime.monitorLog
        #expect(permitted, "the monitor never permitted power: \(log)")
        let poweredUp = waitFor(seconds: 20) { drives.powered }
        #expect(poweredUp, "the drives did not power up once permitted")
    }

    @Test func aDriveFaultFromTheEmulatedDrivesEndsTheRunAsADriveFaultWithTheDrivesUnpowered() throws {
        let (runtime, client, drives) = try startPowered()
        defer {
            client.stop()
            _ = runtime.finish(.completed)
        }
        // Overcurrent on the insertion axis, as the drive's own protection latches it.
        drives.injectFault(axis: 0, code: 2)
        let supervised = runtime.supervise(maxSeconds: 30) { _ in false }
        let ending = runtime.finish(supervised)
        let powered = runtime.drivesPowered, lifecycle = runtime.lifecycle
        guard case .stopped(.driveFault(let f)) = ending else {
            Issue.record("the run ended \(ending), not with the drive fault")
            return
        }
        #expect(f.axis == 0)
        #expect(f.kind == .overcurrent)
        #expect(ending.exitCode == 3)
        #expect(ending.key == "drive_fault")
        #expect(!powered, "a drive kept power after its fault")
        #expect(lifecycle == .finalized)
    }

    /// The monitor judges the link's integrity on the counters the heartbeat carries (hazard
    /// H7): a storm of corrupt replies, too scattered for the host's consecutive-fault policy to
    /// end the run, must reach it as CRC errors and latch its `crc` check. The commands still
    /// arrive (only the drive's replies are hit), so nothing but the monitor can stop this.
    @Test func aCRCStormOnTheLinkIsCaughtByTheMonitorAndTheDrivesLosePower() throws {
        let (runtime, client, drives) = try startPowered()
        defer {
            client.stop()
            _ = runtime.finish(.completed)
        }
        let emulator = try #require(drives.emulator)
        let clean = runtime.monitorLog
        #expect(!clean.contains("  crc  "), "the monitor saw CRC errors on a clean link: \(clean)")
        // About one reply in five corrupt: at 1 kHz two hundred a second, twenty times the limit.
        var storm = LinkImpairment(bitErrorRate: 0.0007)
        storm.corruptsFromHost = false
        emulator.setImpairment(storm)
        let caught = waitFor(seconds: 20) { runtime.monitorLog.contains("  crc  ") }
        let log = runtime.monitorLog, stats = runtime.linkStatistics ?? [:]
        #expect(caught, "no crc fault in the monitor's log; link \(stats); log: \(log)")
        // The operator is shown it, from the monitor's own status (not only its log).
        let shown = waitFor(seconds: 5) { runtime.snapshot().safety.latchedFaults.contains { LiveRuntime.check(of: $0) == .crc } }
        let statuses = runtime.linkStatus.statusesTaken, latchedBits = runtime.linkStatus.monitorStatus?.status.latched ?? 0
        #expect(shown, "the console's latched faults: \(runtime.snapshot().safety.latchedFaults)")
        #expect(statuses > 0 && latchedBits & SafetyCheck.crc.bit != 0, "statuses taken \(statuses), latched \(latchedBits)")
        let unpowered = waitFor(seconds: 20) { !drives.powered }
        #expect(unpowered, "the drives kept power through the CRC storm")
        // A jog asked for after the monitor latched (nothing moved when its stop began) is the
        // cycle's own stop, with no supervision thread running: never a jog of unpowered drives.
        let latchedBefore = runtime.shared.stopLatched
        #expect(!latchedBefore, "a stop was latched before anything moved")
        let stopped = waitFor(seconds: 5) {
            _ = client.submit(.jointJog(JointVector([1, 0, 0, 0])))
            return runtime.shared.stopLatched
        }
        let follows = runtime.shared.published.read().stopFollowsMonitor
        #expect(stopped, "jogging on while the monitor holds a latched crc fault: mode \(runtime.snapshot().mode)")
        #expect(follows, "the stop is not shown as the monitor's")
    }

    @Test func aKilledEmulatorEndsTheRunAsALostLink() throws {
        let (runtime, client, drives) = try startPowered()
        defer {
            client.stop()
            _ = runtime.finish(.completed)
        }
        drives.kill()
        let supervised = runtime.supervise(maxSeconds: 30) { _ in false }
        let ending = runtime.finish(supervised)
        let powered = runtime.drivesPowered, lifecycle = runtime.lifecycle
        guard case .stopped(.linkLost) = ending else {
            Issue.record("the run ended \(ending), not with the lost link")
            return
        }
        #expect(ending.exitCode == 4)
        #expect(ending.key == "link_lost")
        #expect(!powered)
        #expect(lifecycle == .finalized)
    }

    /// The link's counters are published by the cycle while it runs, EtherCAT's as DriveLink's:
    /// a reader sees them grow during the run, not only once it ended.
    @Test func onEtherCATTheLinkCountersCanBeReadWhileTheRunGoesOn() throws {
        var settings = tubeSettings(monitor: false, imaging: .off)
        settings.drives = .emulatedEtherCAT
        let runtime = try LiveRuntime(settings, robot: try loadRobot())
        let before = runtime.liveLinkCounters
        try runtime.start()
        var first: [String: Int] = [:]
        let flowing = waitFor(seconds: 10) { first = runtime.liveLinkCounters; return (first["frames_received"] ?? 0) > 0 }
        var later: [String: Int] = [:]
        let grew = waitFor(seconds: 10) { later = runtime.liveLinkCounters; return (later["frames_sent"] ?? 0) >= (first["frames_sent"] ?? 0) + 100 }
        let ending = runtime.finish(.completed)
        let final = runtime.linkStatistics ?? [:]
        // Before the first cycle only the faulted reads' count is there, at zero.
        #expect(before == ["read_faults": 0], "\(before)")
        #expect(flowing, "\(first)")
        #expect(grew, "frames_sent \(first["frames_sent"] ?? -1) → \(later["frames_sent"] ?? -1)")
        // Every EtherCAT counter is reported, the trouble ones too.
        for name in ["frames_sent", "frames_received", "wkc_shortfalls", "malformed", "late", "missing"] {
            #expect(later[name] != nil, "\(name) missing from \(later)")
        }
        #expect((final["frames_sent"] ?? 0) >= (later["frames_sent"] ?? .max), "\(final) after \(later)")
        #expect(ending == .completed)
    }

    @Test func theLinkSettingsAreCheckedBeforeAnythingStarts() throws {
        #expect(try LiveDrives(parsing: "serial") == .emulatedDriveLink)
        #expect(try LiveDrives(parsing: "ethercat-udp") == .emulatedEtherCAT)
        #expect(try LiveDrives(parsing: "sim") == .simulated)
        #expect(try LiveDrives(parsing: "pty:/dev/pts/9") == .device(.pty(path: "/dev/pts/9")))
        #expect(throws: RuntimeError.self) { try LiveDrives(parsing: "carrier-pigeon") }
        // A real device is not in the simulated C-arm's picture, and the monitor's permits reach
        // it only through the bench's own channel: both refused, with the reason.
        var s = tubeSettings(monitor: false)
        s.drives = .device(.pty(path: "/dev/pts/9"))
        #expect(throws: RuntimeError.self) { try s.validate() }
        s.imaging = .off
        s.monitor = true
        #expect(throws: RuntimeError.self) { try s.validate() }
        s.monitor = false
        try s.validate()
        var e = tubeSettings(monitor: true, imaging: .off)
        e.drives = .emulatedEtherCAT
        #expect(throws: RuntimeError.self) { try e.validate() }
    }
}
