import CAllocCount
import Core
import Sim
import Testing
@testable import Control

/// The cycle on drives with dynamics (motor, gearbox, backlash, the drives' own loops).
@Suite struct EmulatedDriveLoopTests {
    typealias Cycle = CycleRunner<EmulatedDriveRobot, TipServo, ManualCycleClock>

    func makeCycle(log: TipLog) throws -> Cycle {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        var start = JointVector(count: model.jointCount)
        start[0] = 100
        return Cycle(hardware: EmulatedDriveRobot(axes: description.axes, start: start),
                     controller: TipServo(model: model, path: TipPath(), log: log.writer), clock: ManualCycleClock(), period: 1_000_000)
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
        runner.withHardwareMutating { $0.inject([.overcurrent], axis: 2) }
        try runner.run(cycles: 30)
        #expect(runner.lifecycle == .inactive)
        #expect(runner.report().counters.lastFault == .driveFault)
        #expect(runner.withHardware { $0.axis(2).fault } == .overcurrent)
        #expect(!runner.withHardware { $0.axis(0).enabled })
    }
}
