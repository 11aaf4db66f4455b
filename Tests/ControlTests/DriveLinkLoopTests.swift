import Core
import Drivers
import Foundation
import Sim
import Testing
@testable import Control

/// The control cycle driving the simulated drives over real bytes: DriveLink on a pty, the C
/// firmware reference on the device end.
@Suite(.serialized) struct DriveLinkLoopTests {
    typealias LinkCycle = CycleRunner<DriveLinkRobot, TipServo, MonotonicCycleClock>

    struct Rig {
        let runner: LinkCycle
        let emulator: DriveLinkDriveEmulator
        let log: TipLog
    }

    func makeRig(impairment: LinkImpairment = .none, watchdog: UInt32 = 20_000, faultPolicy: CycleFaultPolicy = CycleFaultPolicy()) throws -> Rig {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        var start = JointVector(count: model.jointCount)
        start[0] = 100
        let pty = try PseudoTerminal.openPair()
        let emulator = DriveLinkDriveEmulator(axes: description.axes, start: start, deviceFD: pty.deviceFD,
                                              watchdogMicroseconds: watchdog, impairment: impairment, seed: 9)
        emulator.start()
        let host = DriveLinkRobot(axes: description.axes, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path))
        let log = TipLog(capacity: 20_000, decimation: 1)
        let runner = CycleRunner(hardware: host, controller: TipServo(model: model, path: TipPath(), log: log.writer),
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

    /// Timing here is the machine's, not a real-time target's: the checks are on what the link
    /// did (no frame lost or rejected on a clean line), with generous bounds on what the
    /// scheduler decides (how many cycles found their state already there).
    @Test func theServoRunsOverTheLink() throws {
        // The drive's watchdog is not under test here (the dead-drive test has it): on a loaded
        // machine the host thread can stall past the 20 ms default, the drive then rightly
        // disables, and the servo's figures say nothing about the servo.
        let rig = try makeRig(watchdog: 250_000, faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 200))
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
        try rig.runner.run(cycles: 100)
        let report = rig.runner.report()
        #expect(rig.runner.lifecycle == .inactive)
        #expect(report.counters.faultStops == 1)
        #expect(rig.runner.command.enable == false)
        // Motion stopped at the policy's count, not later: at most one cycle in flight.
        let without = rig.runner.withHardware { $0.stats.cyclesWithoutState }
        #expect(without >= rig.runner.faultPolicy.maxConsecutiveReadFaults)
    }

    @Test func aSilentHostIsStoppedByTheDrivesWatchdog() throws {
        let rig = try makeRig(watchdog: 50_000, faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 200))
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 200)
        #expect(rig.emulator.report.enabled)
        // The host stops sending (a crashed or hung control process): the drive disables itself.
        Thread.sleep(forTimeInterval: 0.2)
        let r = rig.emulator.report
        #expect(!r.enabled)
        #expect(r.faultCode == 1)
        #expect(r.watchdogTrips == 1)
        // The drive reported the fault; the host sees it, and the fault bit, when it reads again.
        try rig.runner.run(cycles: 3)
        #expect(rig.runner.withHardware { $0.stats.faultsReported } == 1)
        #expect(rig.runner.state.status.contains(.fault))
    }

    @Test func bitErrorsAndLostFramesAreRejectedCountedAndNeverApplied() throws {
        // A bit-error rate of 1e-3 corrupts about 40 % of the 6-axis command frames and 55 % of
        // the state frames; 1 % are also dropped, duplicated and reordered. Every frame is
        // accounted for: those that arrived intact were accepted (or dropped as stale), and not
        // one corrupted frame was accepted, on either side.
        let impairment = LinkImpairment(bitErrorRate: 1e-3, dropRate: 0.01, duplicateRate: 0.01, reorderRate: 0.01)
        let rig = try makeRig(impairment: impairment)
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
        let slow = try makeRig(impairment: LinkImpairment(delay: 3_000_000), faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 200))
        try slow.runner.configure()
        try slow.runner.activate()
        try slow.runner.run(cycles: 1000)
        let stats = slow.runner.withHardware { $0.stats }
        slow.emulator.stop()
        #expect(stats.rejected == 0 && stats.stale == 0)
        #expect(stats.statesReceived > 900)
        #expect(slow.runner.lifecycle == .active)

        // 50 ms of latency against a 10-cycle policy: the cycle must call it a lost link and stop.
        let late = try makeRig(impairment: LinkImpairment(delay: 50_000_000), faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 10))
        defer { late.emulator.stop() }
        try late.runner.configure()
        try late.runner.activate()
        try late.runner.run(cycles: 200)
        #expect(late.runner.report().counters.faultStops >= 1)
        #expect(late.runner.lifecycle == .inactive)
        #expect(late.runner.command.enable == false)
    }
}
