import Core
import Drivers
import Foundation
import Sim
import Testing
@testable import Control

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
        let runner = CycleRunner(hardware: host, controller: TipServo(model: model, path: TipPath(), log: log),
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

    /// A power stage found off while the host asked for power is a drive fault, unless the host
    /// knows that the drives' safety input took it (the monitor's permits withdrawn: the live
    /// cycle reads them after the drives' state). Then the inferred fault clears and the read
    /// is the link's; a fault the drive named in a FAULT message never clears that way.
    @Test func powerTheSafetyInputTookClearsOnlyTheInferredPowerLoss() throws {
        let description = try loadRobot("lumen-2s.yaml")
        let n = description.axes.count
        var start = JointVector(count: n)
        start[0] = 100
        let pty = try PseudoTerminal.openPair()
        let emulator = DriveLinkDriveEmulator(axes: description.axes, start: start, deviceFD: pty.deviceFD, seed: 3, stepPerFrame: 1_000_000)
        emulator.start()
        defer { emulator.stop() }
        var host = DriveLinkRobot(axes: description.axes, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path))
        try host.configure()
        try host.activate()
        var command = JointCommand(jointCount: n)
        command.position = start
        command.enable = true
        var state = JointState(jointCount: n)
        var last: HardwareFault?
        for _ in 0..<100 {
            _ = host.write(command, now: 0)
            _ = host.waitReadable(timeout: 1_000_000_000)
            last = host.read(into: &state, now: 0)
        }
        #expect(last == nil && emulator.report.enabled, "the drive never took power: \(String(describing: last))")
        // Nothing inferred yet: nothing to clear.
        let early = host.powerRemovedBySafetyInput()
        #expect(!early.cleared)

        emulator.setSafeTorqueOff(true)
        for _ in 0..<20 {
            _ = host.write(command, now: 0)
            _ = host.waitReadable(timeout: 1_000_000_000)
            last = host.read(into: &state, now: 0)
        }
        let inferred = host.driveFault
        #expect(last == .driveFault && inferred?.kind == .powerLost, "\(String(describing: inferred))")
        let taken = host.powerRemovedBySafetyInput()
        #expect(taken.cleared && taken.outcome == nil && host.driveFault == nil, "\(taken)")
        // Power off asked for from then on: a drive without power is what the host expects.
        command.enable = false
        for _ in 0..<20 {
            _ = host.write(command, now: 0)
            _ = host.waitReadable(timeout: 1_000_000_000)
            last = host.read(into: &state, now: 0)
        }
        #expect(last == nil && host.driveFault == nil)

        // A fault the drive names is its own, safety input or not.
        emulator.setSafeTorqueOff(false)
        emulator.injectFault(axis: 1, code: 2, detail: 7, messageLost: false)
        for _ in 0..<20 {
            _ = host.write(command, now: 0)
            _ = host.waitReadable(timeout: 1_000_000_000)
            last = host.read(into: &state, now: 0)
        }
        let named = host.driveFault
        #expect(last == .driveFault && named?.axis == 1 && named?.code == 2, "\(String(describing: named))")
        let kept = host.powerRemovedBySafetyInput()
        #expect(!kept.cleared && kept.outcome == .driveFault && host.driveFault == named)
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
                                 controller: TipServo(model: CatheterModel(description), path: TipPath(), log: log),
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
