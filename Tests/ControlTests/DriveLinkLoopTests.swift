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
        let runner = CycleRunner(hardware: host, controller: TipServo(model: model, path: TipPath(), log: log.writer),
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

/// Time moves only by the cycle's deadlines, and each sleep waits (up to `patience`) for the
/// drive's reply to the previous command instead of for the wall clock: the loop runs in
/// lockstep with the emulated drive, whose own clock moves per frame, whatever the machine's load.
/// Given the emulated drive and its end of the pty, it waits on while the drive runs and has not
/// even read what the host sent (its thread starved on a loaded machine, for seconds at worst):
/// only a drive that took the frame in and did not answer, or one that is dead, costs a cycle
/// its reply.
struct LockstepClock: CycleClock {
    let fd: Int32
    let drive: DriveLinkDriveEmulator?
    let peer: Int32
    var time: Nanoseconds = 1_000_000_000
    var patience: Nanoseconds = 100_000_000
    /// How long a drive that has not read the host's frame yet is waited for.
    var starvedPatience: Nanoseconds = 20_000_000_000
    var primed = false
    init(fd: Int32, drive: DriveLinkDriveEmulator? = nil, peer: Int32 = -1) { self.fd = fd; self.drive = drive; self.peer = peer }
    func now() -> Nanoseconds { time }
    mutating func sleep(until deadline: Nanoseconds) {
        time = max(time, deadline)
        if primed {
            let start = MonotonicClock.now()
            while !DescriptorIO.waitReadable(fd, timeout: patience), drive?.isRunning == true, Self.unread(peer) > 0,
                  MonotonicClock.now() - start < starvedPatience {}
        }
        primed = true
    }

    /// Bytes waiting on `fd` that its reader has not taken (0 when it cannot tell).
    static func unread(_ fd: Int32) -> Int32 {
        var n: Int32 = 0
        return fd >= 0 && ioctl(fd, UInt(FIONREAD), &n) == 0 ? n : 0
    }
}

/// The host's reaction to drive faults and to a lost link, on the emulated drive (the C
/// reference) in lockstep: every check is on what was sent and what ended, none on timing.
@Suite(.serialized) struct DriveLinkFaultTests {
    typealias LinkCycle = CycleRunner<DriveLinkRobot, TipServo, LockstepClock>

    struct Rig {
        let runner: LinkCycle
        let emulator: DriveLinkDriveEmulator
        /// The servo's writer points into it: it lives as long as the runner.
        let log: TipLog
    }

    func makeRig(latchedFault: UInt16 = 0, impairment: LinkImpairment = .none, maxReadFaults: Int = 10,
                 dynamics: DriveDynamics = .ideal) throws -> Rig {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        var start = JointVector(count: model.jointCount)
        start[0] = 100
        let pty = try PseudoTerminal.openPair()
        let emulator = DriveLinkDriveEmulator(axes: description.axes, start: start, deviceFD: pty.deviceFD, impairment: impairment,
                                              seed: 3, dynamics: dynamics, stepPerFrame: 1_000_000, latchedFault: latchedFault)
        emulator.start()
        let host = DriveLinkRobot(axes: description.axes, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path))
        let log = TipLog(capacity: 100, decimation: 100)
        let runner = CycleRunner(hardware: host, controller: TipServo(model: model, path: TipPath(), log: log.writer),
                                 clock: LockstepClock(fd: pty.hostFD, drive: emulator, peer: pty.deviceFD), period: 1_000_000,
                                 faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: maxReadFaults))
        return Rig(runner: runner, emulator: emulator, log: log)
    }

    func expectStoppedOn(_ rig: Rig, axis: Int?, kind: DriveFaultReport.Kind, code: UInt16, _ where_: SourceLocation = #_sourceLocation) throws {
        #expect(rig.runner.lifecycle == .inactive, sourceLocation: where_)
        #expect(rig.runner.command.enable == false, sourceLocation: where_)
        guard case .driveFault(let f)? = rig.runner.counters.stop else {
            Issue.record("no drive-fault stop: \(String(describing: rig.runner.counters.stop))", sourceLocation: where_)
            return
        }
        #expect(f.axis == axis && f.kind == kind && f.code == code, "\(f)", sourceLocation: where_)
        #expect(rig.runner.counters.driveFaultStops == 1, sourceLocation: where_)
        #expect(try rig.runner.endRun() == .stopped(.driveFault(f)), sourceLocation: where_)
        #expect(RunEnding.stopped(.driveFault(f)).exitCode == 3, sourceLocation: where_)
    }

    @Test func anOvercurrentFaultOnOneAxisIsAStopWithTheAxisAndCode() throws {
        let rig = try makeRig()
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 200)
        #expect(rig.emulator.report.enabled)
        rig.emulator.injectFault(axis: 0, code: 2, detail: 4100)
        try rig.runner.run(cycles: 300)
        try expectStoppedOn(rig, axis: 0, kind: .overcurrent, code: 2)
        // The host never asked for power again once it knew: the drive saw at most the
        // commands already on the line, and none after the stop.
        let refusedAtStop = rig.emulator.report.enableRefused
        #expect(refusedAtStop <= 2)
        try rig.runner.run(cycles: 100)
        #expect(rig.emulator.report.enableRefused == refusedAtStop)
        #expect(rig.runner.withHardware { $0.stats.enableWhileFaulted } == 0)
        #expect(rig.runner.counters.readFaults < 5, "a drive fault is no link fault")
        // No FAULT_RESET without an operator.
        #expect(rig.emulator.report.faultResets == 0)
        #expect(rig.emulator.report.faultCode == 2)
    }

    @Test func aPersistentWholeDriveFaultStaysUntilItsCauseIsGoneAndAnOperatorAcknowledges() throws {
        let rig = try makeRig()
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 100)
        rig.emulator.injectFault(axis: 0xFF, code: 5, detail: 123_456, persistent: true)
        try rig.runner.run(cycles: 100)
        try expectStoppedOn(rig, axis: nil, kind: .hardLimit, code: 5)
        let latched = DriveFaultReport(axis: nil, kind: .hardLimit, code: 5, detail: 123_456)
        // Re-activation is refused until acknowledged.
        #expect(throws: LifecycleError.driveFaultLatched(latched)) { try rig.runner.activate() }
        // The acknowledge sends FAULT_RESET; the drive keeps the fault while its cause lasts.
        #expect(throws: LifecycleError.driveFaultLatched(latched)) { try rig.runner.acknowledgeFaults() }
        #expect(rig.emulator.report.faultResets == 1)
        #expect(rig.emulator.report.faultCode == 5)
        #expect(throws: LifecycleError.self) { try rig.runner.activate() }
        rig.emulator.clearFaultCause(code: 5)
        try rig.runner.acknowledgeFaults()
        #expect(rig.emulator.report.faultResets == 2)
        #expect(rig.emulator.report.faultCode == 0)
        try rig.runner.activate()
        try rig.runner.run(cycles: 100)
        #expect(rig.runner.lifecycle == .active)
        #expect(rig.emulator.report.enabled)
    }

    @Test func aDriveRestartedWithALatchedWatchdogFaultIsRefusedAtActivation() throws {
        let rig = try makeRig(latchedFault: 1)
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        do {
            try rig.runner.activate()
            Issue.record("activated a drive with a latched fault")
        } catch {
            guard case .driveFaultLatched(let f) = error else { Issue.record("\(error)"); return }
            #expect(f.kind == .watchdog && f.axis == nil)
        }
        #expect(rig.runner.lifecycle == .inactive)
        #expect(rig.emulator.report.enableRefused == 0)
        try rig.runner.acknowledgeFaults()
        try rig.runner.activate()
        try rig.runner.run(cycles: 50)
        #expect(rig.emulator.report.enabled)
    }

    @Test(arguments: [UInt16(0b0010), 0b1000])
    func eachFaultStatusBitIsAStop(bits: UInt16) throws {
        // A drive whose fault latched before this host came (no FAULT message reaches it): the
        // status bit alone must keep the power off.
        let rig = try makeRig(latchedFault: bits == 0b1000 ? 1 : 3)
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        // Activation's first exchange already sees the bit.
        #expect(throws: LifecycleError.self) { try rig.runner.activate() }
        let f = try #require(rig.runner.withHardware { $0.latchedFault })
        #expect(f.kind == (bits == 0b1000 ? .watchdog : .latched))
        #expect(rig.emulator.report.enableRefused == 0)
    }

    /// While running, with the FAULT message lost on the line: status bit 1 on the faulted axis
    /// alone stops the host, and names the axis.
    @Test func aFaultStatusBitAloneWhileRunningIsAStop() throws {
        let rig = try makeRig()
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 100)
        rig.emulator.injectFault(axis: 3, code: 3, detail: 900, messageLost: true)
        try rig.runner.run(cycles: 100)
        try expectStoppedOn(rig, axis: 3, kind: .latched, code: DriveFaultReport.Kind.latched.rawValue)
        #expect(rig.runner.withHardware { $0.stats.faultsReported } == 0)
        #expect(rig.runner.withHardware { $0.stats.enableWhileFaulted } == 0)
    }

    /// The emulated drive's own protection: an injected overcurrent on axis 2 trips it, the
    /// drive latches fault 2 on that axis, and the host stops on it; while the overcurrent
    /// lasts an acknowledge leaves it latched.
    @Test func anEmulatedAxisTrippingOnOvercurrentIsADriveLinkFault() throws {
        let rig = try makeRig(dynamics: .emulated(nil))
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 100)
        rig.emulator.inject([.overcurrent], axis: 2)
        try rig.runner.run(cycles: 300)
        guard case .driveFault(let f)? = rig.runner.counters.stop else { Issue.record("\(String(describing: rig.runner.counters.stop))"); return }
        #expect(f.axis == 2 && f.kind == .overcurrent && f.detail > 0, "\(f)")
        #expect(rig.runner.command.enable == false)
        rig.emulator.inject([], axis: 2)
        try rig.runner.acknowledgeFaults()
        try rig.runner.activate()
        try rig.runner.run(cycles: 100)
        #expect(rig.runner.lifecycle == .active)
    }

    @Test func thePowerStageDroppingOutWhileEnabledIsAStop() throws {
        let rig = try makeRig()
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 100)
        rig.emulator.setSafeTorqueOff(true)
        try rig.runner.run(cycles: 100)
        try expectStoppedOn(rig, axis: nil, kind: .powerLost, code: DriveFaultReport.Kind.powerLost.rawValue)
    }

    /// The drive's quick-stop input (the monitor's controlled stop): it holds where it is with
    /// power kept while the host goes on commanding motion, and follows again once released.
    @Test func theQuickStopInputHoldsTheDriveWithPowerKept() throws {
        let rig = try makeRig()
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 200)
        let moving = rig.emulator.report.positions
        try rig.runner.run(cycles: 50)
        #expect(rig.emulator.report.positions != moving, "the servo does not move the drive: nothing to stop")
        rig.emulator.setQuickStop(true)
        try rig.runner.run(cycles: 5)
        let held = rig.emulator.report.positions
        try rig.runner.run(cycles: 100)
        #expect(rig.emulator.report.positions == held)
        #expect(rig.emulator.report.enabled)
        #expect(rig.runner.lifecycle == .active)
        rig.emulator.setQuickStop(false)
        try rig.runner.run(cycles: 50)
        #expect(rig.emulator.report.positions != held)
    }

    @Test func theFirstCommandAfterActivationCarriesNoEnable() throws {
        let rig = try makeRig()
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        // Activation exchanged one hold COMMAND with enable 0: the drive is answering and unpowered.
        #expect(!rig.emulator.report.enabled)
        #expect(rig.emulator.report.framesAccepted == 2, "HELLO and the hold COMMAND")
    }

    @Test func aSilentDriveEndsAsALostLinkThroughTheLifecycle() throws {
        let rig = try makeRig(maxReadFaults: 10)
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 100)
        rig.emulator.kill()
        try rig.runner.run(cycles: 20)
        #expect(rig.runner.lifecycle == .inactive)
        guard case .linkLost? = rig.runner.counters.stop else { Issue.record("\(String(describing: rig.runner.counters.stop))"); return }
        let ending = try rig.runner.endRun()
        #expect(ending.exitCode == 4 && ending.key == "link_lost")
        rig.runner.finalize()
        #expect(rig.runner.lifecycle == .finalized)
    }

    @Test func aCRCStormEndsAsALostLinkThroughTheLifecycle() throws {
        // Every bit of every reply flips with probability 0.05: no state survives, every
        // command still arrives (the drive stays commanded while the host goes blind).
        let rig = try makeRig(maxReadFaults: 10)
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 50)
        var storm = LinkImpairment(bitErrorRate: 0.05)
        storm.corruptsFromHost = false
        rig.emulator.setImpairment(storm)
        try rig.runner.run(cycles: 60)
        guard case .linkLost? = rig.runner.counters.stop else { Issue.record("\(String(describing: rig.runner.counters.stop))"); return }
        #expect(try rig.runner.endRun() == rig.runner.counters.stop.map { .stopped($0) })
        #expect(rig.runner.withHardware { $0.stats.rejected } >= 10)
    }

    @Test func staleStatesEndAsALostLinkThroughTheLifecycle() throws {
        let rig = try makeRig(maxReadFaults: 10)
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 50)
        // The drive's sequence counter jumps back: every state after is stale to the host.
        rig.emulator.rewindSequence(by: 20_000)
        try rig.runner.run(cycles: 60)
        guard case .linkLost? = rig.runner.counters.stop else { Issue.record("\(String(describing: rig.runner.counters.stop))"); return }
        #expect(rig.runner.withHardware { $0.stats.stale } >= 10)
        #expect(try rig.runner.endRun().exitCode == 4)
    }

    /// `pty:PATH`: the drive holds the master end, the host opens the other end by its path
    /// through termios alone, as it would reach an integrator's simulator or a socat bridge.
    @Test func theHostReachesADeviceOnAPseudoTerminalByPath() throws {
        let description = try loadRobot("lumen-2s.yaml")
        let pty = try PseudoTerminal.openPair()
        let emulator = DriveLinkDriveEmulator(axes: description.axes, start: nil, deviceFD: pty.hostFD, stepPerFrame: 1_000_000)
        emulator.start()
        defer { emulator.stop() }
        let byPath = try PseudoTerminal.open(path: pty.path)
        _ = DescriptorTransport(fd: pty.deviceFD, owns: true, name: "first slave descriptor")  // closes it: the path's is the one in use
        guard case .pty(let path) = try LinkAddress(parsing: "pty:\(pty.path)") else { Issue.record("not a pty address"); return }
        #expect(path == pty.path)
        let log = TipLog(capacity: 100, decimation: 100)
        let runner = CycleRunner(hardware: DriveLinkRobot(axes: description.axes, transport: DescriptorTransport(fd: byPath, owns: true, name: path)),
                                 controller: TipServo(model: CatheterModel(description), path: TipPath(), log: log.writer),
                                 clock: LockstepClock(fd: byPath, drive: emulator, peer: pty.hostFD), period: 1_000_000)
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 200)
        #expect(runner.lifecycle == .active)
        #expect(runner.withHardware { $0.stats.statesReceived } >= 190)
        #expect(emulator.report.enabled)
        #expect(try runner.endRun() == .completed)
        withExtendedLifetime(log) {}
    }

    @Test func aRunThatCompletesEndsActiveToInactiveWithExitCodeZero() throws {
        let rig = try makeRig()
        defer { rig.emulator.stop() }
        try rig.runner.configure()
        try rig.runner.activate()
        try rig.runner.run(cycles: 100)
        #expect(try rig.runner.endRun() == .completed)
        #expect(rig.runner.lifecycle == .inactive)
        #expect(try rig.runner.endRun() == .completed, "ending twice is harmless")
    }
}
