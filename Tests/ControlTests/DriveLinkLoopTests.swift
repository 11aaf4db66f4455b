import Core
import Drivers
import Foundation
import Sim
import Testing
@testable import Control

/// The control cycle driving the simulated drives over real bytes: DriveLink on a pty, the C
/// firmware reference on the device end. In lockstep unless the drive's wall-clock watchdog is
/// what a test is about: on the wall clock a loaded machine stalls either thread (the host's
/// writes then fill the pty and fail, the drive's watchdog trips, skipped cycles leave the drive
/// behind the path), and the figures say nothing about the link.
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock")) struct DriveLinkLoopTests {
    typealias LinkCycle = CycleRunner<DriveLinkRobot, TipServo, RigClock>

    struct Rig {
        let runner: LinkCycle
        let emulator: DriveLinkDriveEmulator
        let log: TipLog
    }

    func makeRig(impairment: LinkImpairment = .none, watchdog: UInt32 = 20_000, faultPolicy: CycleFaultPolicy = CycleFaultPolicy(),
                 lockstep: Bool = true) throws -> Rig {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        var start = JointVector(count: model.jointCount)
        start[0] = 100
        let pty = try PseudoTerminal.openPair()
        let emulator = DriveLinkDriveEmulator(axes: description.axes, start: start, deviceFD: pty.deviceFD,
                                              watchdogMicroseconds: watchdog, impairment: impairment, seed: 9,
                                              stepPerFrame: lockstep ? 1_000_000 : nil)
        emulator.start()
        let host = DriveLinkRobot(axes: description.axes, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path))
        let log = TipLog(capacity: 20_000, decimation: 1)
        let runner = CycleRunner(hardware: host, controller: TipServo(model: model, path: TipPath(), log: log),
                                 clock: lockstep ? RigClock.lockstep(LockstepClock(fd: pty.hostFD, drive: emulator, peer: pty.deviceFD)) : RigClock.wall(MonotonicCycleClock()),
                                 period: 1_000_000, faultPolicy: faultPolicy)
        return Rig(runner: runner, emulator: emulator, log: log)
    }

    @Test func handshakeNamesTheDriveAndItsWatchdog() throws {
        let rig = try makeRig()
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        rig.runner.withHardware {
            #expect($0.firmwareID == "lumen-sim")
            #expect($0.driveWatchdog == 20_000)
        }
    }

    @Test func aDriveWithOtherAxesIsRefusedAtConfigure() throws {
        let description = try loadRobot("lumen-1s.yaml")
        let pty = try PseudoTerminal.openPair()
        let emulator = DriveLinkDriveEmulator(axes: description.axes, start: nil, deviceFD: pty.deviceFD)
        emulator.start()
        defer { emulator.stop() }
        let six = try loadRobot("lumen-2s.yaml").axes
        var host = DriveLinkRobot(axes: six, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path))
        #expect(throws: HardwareError("drive reports 4 axes, the robot file has 6")) { try host.configure() }
    }

    @Test func noDriveOnTheLineIsAClearConfigureError() throws {
        let pty = try PseudoTerminal.openPair()
        _ = DescriptorTransport(fd: pty.deviceFD, owns: true, name: "silent")
        var host = DriveLinkRobot(axes: try loadRobot("lumen-2s.yaml").axes, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path))
        do {
            try host.configure()
            Issue.record("configure succeeded with no drive")
        } catch {
            #expect(error.what.contains("no HELLO_ACK"))
        }
    }

    /// In lockstep: the checks are on what the link did (no frame lost or rejected on a clean
    /// line, every command answered) and on the servo, never on the scheduler.
    @Test func theServoRunsOverTheLink() throws {
        let rig = try makeRig(faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 200))
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 3000)
        let stats = rig.runner.withHardware { $0.stats }
        let report = rig.runner.report()
        #expect(rig.runner.lifecycle == .active)
        #expect(stats.rejected == 0 && stats.stale == 0 && stats.wrongPayload == 0 && stats.sendErrors == 0)
        // Every command was answered; a late wake-up only moves a state to the next cycle.
        #expect(stats.statesReceived >= 2990 && stats.statesReceived <= 3000, "\(stats)")
        #expect(rig.emulator.report.framesAccepted >= stats.framesSent - 1, "the last command may still be in flight")
        #expect(report.counters.faultStops == 0)
        // The tip followed the path, one cycle of link latency behind.
        let errors = rig.log.all.filter { $0.time > 2 }.map(\.error).sorted()
        #expect(!errors.isEmpty)
        #expect(errors[errors.count / 2] < 0.1)
        #expect(errors.last! < 3)
        #expect(rig.emulator.report.enabled)
    }

    @Test func aDeadDriveEndsInASafeStopWithinTheConfiguredCycles() throws {
        let rig = try makeRig(faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 40))
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 300)
        #expect(rig.runner.lifecycle == .active)
        rig.emulator.kill()
        // Each lost reply costs the lockstep clock its 100 ms patience: 40 stop the loop.
        try rig.runner.run(cycles: 50)
        let report = rig.runner.report()
        #expect(rig.runner.lifecycle == .inactive)
        #expect(report.counters.faultStops == 1)
        #expect(rig.runner.command.enable == false)
        // Motion stopped at the policy's count, not later: at most one cycle in flight.
        let without = rig.runner.withHardware { $0.stats.cyclesWithoutState }
        #expect(without >= rig.runner.faultPolicy.maxConsecutiveReadFaults)
    }

    @Test func aSilentHostIsStoppedByTheDrivesWatchdog() throws {
        // On the wall clock, as a drive on a cable: the watchdog is what is under test. 250 ms
        // holds while the host runs on a loaded machine (50 ms did not: a stalled host thread
        // tripped it before the silence began).
        let rig = try makeRig(watchdog: 250_000, faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 200), lockstep: false)
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 200)
        // A host stalled past the watchdog on a loaded machine is a silent host too: the drive
        // may have tripped already. Either way it tripped once, on its watchdog (code 1), which
        // it counts only while enabled: so it had power, and lost it to the silence.
        // The host stops sending (a crashed or hung control process): the drive disables itself.
        // That it does is checked, not how soon (this machine is not a real-time target): wait
        // for it, bounded.
        let until = MonotonicClock.now() + 10_000_000_000
        while rig.emulator.report.enabled, MonotonicClock.now() < until { Thread.sleep(forTimeInterval: 0.01) }
        let r = rig.emulator.report
        #expect(!r.enabled)
        #expect(r.faultCode == 1)
        #expect(r.watchdogTrips == 1)
        // The drive reported the fault; the host sees it, and the fault bit in the drive's reply
        // to its next command. On the wall clock that reply may take more than a cycle or two on
        // a loaded machine (the drive's thread is starved too): read until it comes, bounded.
        let readUntil = MonotonicClock.now() + 10_000_000_000
        repeat {
            try rig.runner.run(cycles: 1)
        } while !rig.runner.state.status.contains(.fault) && MonotonicClock.now() < readUntil
        #expect(rig.runner.withHardware { $0.stats.faultsReported } == 1)
        #expect(rig.runner.state.status.contains(.fault))
    }

    @Test func bitErrorsAndLostFramesAreRejectedCountedAndNeverApplied() throws {
        // A bit-error rate of 1e-3 corrupts about 40 % of the 6-axis command frames and 55 % of
        // the state frames; 1 % are also dropped, duplicated and reordered. Every frame is
        // accounted for: those that arrived intact were accepted (or dropped as stale), and not
        // one corrupted frame was accepted, on either side.
        let impairment = LinkImpairment(bitErrorRate: 1e-3, dropRate: 0.01, duplicateRate: 0.01, reorderRate: 0.01)
        // On the wall clock: a lost reply would cost the lockstep clock its patience, hundreds
        // of times. Every check here holds whatever the timing (a stall may end the run in a
        // safe stop, which is checked as such).
        let rig = try makeRig(impairment: impairment, lockstep: false)
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 3000)
        rig.emulator.stop()
        Thread.sleep(forTimeInterval: 0.005)
        try rig.runner.run(cycles: 1)  // takes in whatever the drive sent last
        let host = rig.runner.withHardware { $0.stats }
        let drive = rig.emulator.report
        let i = drive.impairment
        #expect(i.corruptedFromHost > 500 && i.corruptedToHost > 500, "\(i)")
        #expect(i.duplicatedToHost > 0 && i.reorderedToHost > 0 && i.droppedToHost > 0 && i.droppedFromHost > 0)

        // The drive: intact frames accepted or stale, corrupted ones all rejected.
        #expect(drive.framesAccepted + drive.framesStale == i.fromHost - i.droppedFromHost - i.corruptedFromHost, "\(drive)")
        #expect(drive.framesRejected >= i.corruptedFromHost)
        // The host: the same, for every frame the drive put on the line.
        #expect(host.framesAccepted + host.stale == i.toHost - i.corruptedToHost, "\(host) vs \(i)")
        #expect(host.rejected >= i.corruptedToHost)
        #expect(host.stale > 0, "duplicated and reordered frames must be dropped as stale")
        #expect(host.wrongPayload == 0)

        // Runs of lost states end in a safe stop within the policy's count, and then the
        // drive's power goes off (by command, or by its own watchdog when commands are lost too).
        let report = rig.runner.report()
        if report.counters.faultStops > 0 {
            #expect(rig.runner.lifecycle == .inactive)
            #expect(!drive.enabled)
        }
        let model = CatheterModel(try loadRobot("lumen-2s.yaml"))
        #expect(model.isWithinLimits(drive.positions, tolerance: 1e-3))
    }

    @Test func delayedStatesAreUsedInOrderAndALinkDelayedPastThePolicyIsALostLink() throws {
        // 3 ms of extra latency: states come back three cycles late, still in order and checked.
        // In lockstep the delay is on the drive's frame clock: three frames. It starts after the
        // handshake, whose one HELLO per try would otherwise never move that clock far enough to
        // release its HELLO_ACK.
        let slow = try makeRig(faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 200))
        try slow.runner.configure()
        slow.emulator.setImpairment(LinkImpairment(delay: 3_000_000))
        try slow.runner.activate()
        try slow.runner.run(cycles: 1000)
        let stats = slow.runner.withHardware { $0.stats }
        slow.emulator.stop()
        #expect(stats.rejected == 0 && stats.stale == 0)
        #expect(stats.statesReceived > 900)
        #expect(slow.runner.lifecycle == .active)

        // 50 ms of latency against a 10-cycle policy: the cycle must call it a lost link and stop.
        // On the wall clock (in lockstep each of the 50 silent cycles would wait out the
        // clock's patience); a loaded machine only makes the link look slower still.
        let late = try makeRig(impairment: LinkImpairment(delay: 50_000_000), faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 10),
                               lockstep: false)
        defer { late.emulator.stop() }
        try late.runner.configure()
        try late.runner.activate()
        try late.runner.run(cycles: 200)
        #expect(late.runner.report().counters.faultStops >= 1)
        #expect(late.runner.lifecycle == .inactive)
        #expect(late.runner.command.enable == false)
    }
}

/// The machine's clock or the lockstep one, so that one rig serves both kinds of test.
enum RigClock: CycleClock {
    case wall(MonotonicCycleClock)
    case lockstep(LockstepClock)

    mutating func now() -> Nanoseconds {
        switch self {
        case .wall(let c): return c.now()
        case .lockstep(let c): return c.now()
        }
    }

    mutating func sleep(until deadline: Nanoseconds) {
        switch self {
        case .wall(let c): c.sleep(until: deadline)
        case .lockstep(var c):
            c.sleep(until: deadline)
            self = .lockstep(c)
        }
    }
}
