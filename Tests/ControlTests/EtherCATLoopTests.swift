import Core
import Drivers
import Foundation
import Sim
import Testing
@testable import Control

/// The control cycle driving emulated CiA 402 slaves over EtherCAT frames (UDP on loopback),
/// in lockstep: the slaves' clock moves 1 ms per process-data frame and the host's 1 ms per
/// cycle, each cycle waiting for the reply to the last. Their watchdogs and motion then share one
/// time whatever the scheduler does to either thread on a loaded machine (on the wall clock a
/// stalled thread tripped the 100 ms sync-manager watchdog, and skipped host cycles left the
/// drives behind the path).
@Suite(.serialized) struct EtherCATLoopTests {
    typealias Cycle = CycleRunner<EtherCATRobot, TipServo, LockstepClock>

    func makeRig(faultPolicy: CycleFaultPolicy = CycleFaultPolicy(maxConsecutiveReadFaults: 200)) throws -> (Cycle, EtherCATSegment, EtherCATUDPServer, TipLog) {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        var start = JointVector(count: model.jointCount)
        start[0] = 100
        let segment = EtherCATSegment(axes: description.axes, start: start, clock: .processDataFrames(period: 1_000_000))
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        let udp = try EtherCATMaster.udpTransport(host: "127.0.0.1", port: server.port)
        let clock = LockstepClock(fd: udp.fd)
        let robot = EtherCATRobot(axes: description.axes, master: patientMaster(udp))
        let log = TipLog(capacity: 20_000, decimation: 1)
        let runner = Cycle(hardware: robot, controller: TipServo(model: model, path: TipPath(), log: log),
                           clock: clock, period: 1_000_000, faultPolicy: faultPolicy)
        return (runner, segment, server, log)
    }

    @Test func theServoRunsOverEtherCATWithCiA402Drives() throws {
        let (runner, segment, server, log) = try makeRig()
        defer { server.stop() }
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 3000)
        let stats = runner.withHardware { $0.stats }
        #expect(stats.workingCounterShortfalls == 0 && stats.malformed == 0, "\(stats)")
        #expect(runner.report().counters.faultStops == 0)
        for i in 0..<6 { #expect(segment.drive(i).state == .operationEnabled) }
        #expect(runner.state.status.contains(.enabled))
        // The drives needed a few cycles to step through the CiA 402 states; then the tip follows.
        let errors = log.all.filter { $0.time > 2 }.map(\.error).sorted()
        #expect(!errors.isEmpty)
        #expect(errors[errors.count / 2] < 0.1)
        #expect(errors.last! < 3)
        // Deactivating switches the drives off through the state machine.
        try runner.deactivate()
        try runner.run(cycles: 10)
        for i in 0..<6 { #expect(segment.drive(i).state != .operationEnabled) }
    }

    /// The same reaction as on DriveLink: a CiA 402 fault statusword is a category 0 stop, and
    /// the fault-reset edge goes out only on an operator's acknowledge.
    @Test func aDriveFaultIsAStopUntilAcknowledged() throws {
        let (runner, segment, server, _) = try makeRig()
        defer { server.stop() }
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 300)
        #expect(segment.drive(2).state == .operationEnabled)
        segment.injectDriveFault(slave: 2)
        try runner.run(cycles: 50)
        #expect(runner.lifecycle == .inactive)
        #expect(runner.command.enable == false)
        guard case .driveFault(let f)? = runner.counters.stop else { Issue.record("\(String(describing: runner.counters.stop))"); return }
        #expect(f.axis == 2)
        #expect(try runner.endRun().exitCode == 3)
        // Not reset by the cycle, nor by a new activation.
        try runner.run(cycles: 50)
        #expect(segment.drive(2).state == .fault)
        #expect(throws: LifecycleError.driveFaultLatched(f)) { try runner.activate() }
        #expect(segment.drive(2).state == .fault)
        try runner.acknowledgeFaults()
        #expect(segment.drive(2).state != .fault)
        try runner.activate()
        try runner.run(cycles: 300)
        #expect(runner.lifecycle == .active)
        for i in 0..<6 { #expect(segment.drive(i).state == .operationEnabled) }
    }

    @Test func aLostSegmentEndsInASafeStop() throws {
        let (runner, _, server, _) = try makeRig(faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: 40))
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 300)
        #expect(runner.lifecycle == .active)
        server.stop()
        // 40 lost replies stop it; each costs the lockstep clock its 100 ms patience.
        try runner.run(cycles: 60)
        #expect(runner.lifecycle == .inactive)
        #expect(runner.report().counters.faultStops == 1)
        #expect(runner.command.enable == false)
    }

    @Test func velocityModeDrivesTheAxesInCSV() throws {
        let axes = try loadRobot("lumen-2s.yaml").axes
        let segment = EtherCATSegment(axes: axes, start: JointVector([100, 0, 0, 0, 0, 0]), clock: .processDataFrames(period: 1_000_000))
        let server = try EtherCATUDPServer(segment: segment)
        server.start()
        defer { server.stop() }
        var robot = EtherCATRobot(axes: axes, master: patientMaster(try EtherCATMaster.udpTransport(host: "127.0.0.1", port: server.port)))
        try robot.configure()
        try robot.activate()
        var command = JointCommand(jointCount: 6)
        command.mode = .velocity
        command.enable = true
        command.velocity = JointVector([5, 0, 0, 0, 0, 0])  // 5 mm/s of insertion
        var state = JointState(jointCount: 6)
        // Step the drives up to operation enabled, then let them run for 500 frames: half a
        // second of the slaves' frame clock, however long the machine takes over it.
        let frames = 500
        for _ in 0..<frames {
            _ = robot.write(command, now: 0)
            _ = robot.waitReadableForTests(timeout: 1_000_000_000)
            _ = robot.read(into: &state, now: 0)
        }
        #expect(segment.drive(0).state == .operationEnabled)
        let moved = segment.drive(0).position - 100
        // Velocity integrates on the drive's clock, 1 ms per frame; the first few frames step
        // the drive through the CiA 402 states (shutdown, switch on, enable: 3, plus the reply
        // that brings the state back), so 5 mm/s runs for between 490 and 500 of them.
        #expect(moved >= 5 * Double(frames - 10) * 1e-3 && moved <= 5 * Double(frames) * 1e-3 + 1e-3, "moved \(moved) mm in \(frames) frames")
        #expect(abs(segment.drive(1).position) < 1e-9)
    }
}

/// A master on `transport` whose set-up exchanges wait up to 10 s for each reply, not 20 ms: a
/// loaded machine can hold the slaves' thread for seconds, and set-up is not timed on a real line.
func patientMaster(_ transport: consuming DescriptorTransport) -> EtherCATMaster {
    var master = EtherCATMaster(transport: transport)
    master.setupTimeout = 10_000_000_000
    return master
}
