import CAllocCount
import Core
import Drivers
import Foundation
import Sim
import Testing
@testable import Control

/// The cycle on drives with dynamics (motor, gearbox, backlash, the drives' own loops).
@Suite struct EmulatedDriveLoopTests {
    typealias Cycle = CycleRunner<KinematicRobot, TipServo, ManualCycleClock>

    func makeCycle(log: TipLog) throws -> Cycle {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        var start = JointVector(count: model.jointCount)
        start[0] = 100
        return Cycle(hardware: KinematicRobot(axes: description.axes, start: start, dynamics: .emulated(nil)),
                     controller: TipServo(model: model, path: TipPath(), log: log), clock: ManualCycleClock(), period: 1_000_000)
    }

    @Test func theServoFollowsThePathOnDrivesWithDynamics() throws {
        let log = TipLog(capacity: 10_000, decimation: 10)
        let runner = try makeCycle(log: log)
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 100)
        lumen_alloc_count_begin()
        try runner.run(cycles: 7900)
        let allocations = lumen_alloc_count_end()
        #expect(allocations == 0)
        let errors = log.all.filter { $0.time > 2 }.map(\.error).sorted()
        // Real drives lag: the error is no longer microns, but stays well under a millimetre.
        #expect(errors[errors.count / 2] < 0.3, "median \(errors[errors.count / 2]) mm")
        #expect(errors.last! < 1, "max \(errors.last!) mm")
        #expect(runner.report().counters.faultStops == 0)
    }

    @Test func anOvercurrentTripEndsInASafeStop() throws {
        let log = TipLog(capacity: 1000, decimation: 10)
        let runner = try makeCycle(log: log)
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 500)
        runner.withHardware { $0.inject([.overcurrent], axis: 2) }
        try runner.run(cycles: 30)
        #expect(runner.lifecycle == .inactive)
        #expect(runner.report().counters.lastFault == .driveFault)
        #expect(runner.withHardware { $0.emulatedAxis(2)?.fault } == .overcurrent)
        #expect(runner.withHardware { $0.emulatedAxis(0)?.enabled } == false)
        #expect(runner.counters.stop == .driveFault(DriveFaultReport(axis: 2, kind: .overcurrent)))
        // Re-activation waits for an acknowledge, which clears the drive's latch.
        #expect(throws: LifecycleError.driveFaultLatched(DriveFaultReport(axis: 2, kind: .overcurrent))) { try runner.activate() }
        runner.withHardware { $0.inject([], axis: 2) }
        try runner.acknowledgeFaults()
        try runner.activate()
        try runner.run(cycles: 30)
        #expect(runner.lifecycle == .active)
    }
}

/// The same emulated drives behind both wire protocols.
@Suite(.serialized) struct EmulatedDrivesOverLinksTests {
    @Test func theServoRunsOnEmulatedDrivesOverDriveLinkAndEtherCAT() throws {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        var start = JointVector(count: model.jointCount)
        start[0] = 100

        let pty = try PseudoTerminal.openPair()
        // Lockstep: the drives' clock moves 1 ms per host frame and the host's 1 ms per cycle,
        // each cycle waiting for the reply to the last. Their watchdogs (the protocol's and each
        // axis's own enable watchdog), their dynamics and the path then share one time, whatever
        // the scheduler does to either thread on a loaded machine (on the wall clock, skipped
        // host cycles left the drives' time behind the path's).
        let emulator = DriveLinkDriveEmulator(axes: description.axes, start: start, deviceFD: pty.deviceFD, watchdogMicroseconds: 250_000,
                                              dynamics: .emulated(nil), stepPerFrame: 1_000_000)
        emulator.start()
        defer { emulator.stop() }
        let serialLog = TipLog(capacity: 5000, decimation: 10)
        let serial = CycleRunner(hardware: DriveLinkRobot(axes: description.axes, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path)),
                                 controller: TipServo(model: model, path: TipPath(), log: serialLog),
                                 clock: LockstepClock(fd: pty.hostFD, drive: emulator, peer: pty.deviceFD), period: 1_000_000,
                                 faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 200))
        try serial.configure()
        try serial.activate()
        try serial.run(cycles: 3000)

        // The same lockstep on EtherCAT: the slaves' clock moves 1 ms per process-data frame (on
        // the wall clock a stalled server thread aged each axis's 20 ms enable watchdog until it
        // tripped), and the host waits for each reply on its socket.
        let segment = EtherCATSegment(axes: description.axes, start: start, dynamics: .emulated(nil), clock: .processDataFrames(period: 1_000_000))
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        defer { server.stop() }
        let ecatLog = TipLog(capacity: 5000, decimation: 10)
        let udp = try EtherCATMaster.udpTransport(host: "127.0.0.1", port: server.port)
        let udpFD = udp.fd
        let ecat = CycleRunner(hardware: EtherCATRobot(axes: description.axes, master: patientMaster(udp)),
                               controller: TipServo(model: model, path: TipPath(), log: ecatLog),
                               clock: LockstepClock(fd: udpFD), period: 1_000_000,
                               faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 200))
        try ecat.configure()
        try ecat.activate()
        try ecat.run(cycles: 3000)

        for (name, log, runner) in [("DriveLink", serialLog, serial.report()), ("EtherCAT", ecatLog, ecat.report())] {
            let errors = log.all.filter { $0.time > 2 }.map(\.error).sorted()
            #expect(!errors.isEmpty)
            #expect(errors[errors.count / 2] < 0.3, "\(name): median \(errors[errors.count / 2]) mm")
            #expect(errors.last! < 3, "\(name): max \(errors.last!) mm")
            #expect(runner.counters.faultStops == 0)
            #expect(runner.counters.stop == nil, "\(name): \(runner.counters.stop.map(String.init(describing:)) ?? "")")
        }
    }
}
