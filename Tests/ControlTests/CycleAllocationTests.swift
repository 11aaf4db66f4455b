import CAllocCount
import Core
import Foundation
import Sim
import Testing
@testable import Control

typealias DemoCycle = CycleRunner<KinematicRobot, TipServo, ManualCycleClock>

/// The compiler's proof: this only compiles if every function one full cycle of the demo stack
/// reaches (timing, drive images, kinematics, DLS, servo, limits) is free of allocations, locks
/// and reference counting, as `@_noAllocation @_noLocks` require.
@_noAllocation @_noLocks
func runOneDemoCycle(_ runner: DemoCycle) {
    runner.runOneCycle()
}

@Suite struct CycleAllocationTests {
    func makeDemoCycle(log: TipLog) throws -> DemoCycle {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        var start = JointVector(count: model.jointCount)
        start[0] = 100
        let robot = KinematicRobot(axes: description.axes, start: start)
        return CycleRunner(hardware: robot, controller: TipServo(model: model, path: TipPath(), log: log),
                           clock: ManualCycleClock(), period: 1_000_000)
    }

    @Test func tenThousandDemoCyclesAllocateNothing() throws {
        try #require(lumen_alloc_count_is_active() == 1, "the allocation counter is not interposed in this process")
        let log = TipLog(capacity: 100_000, decimation: 1)
        let runner = try makeDemoCycle(log: log)
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 100)
        lumen_alloc_count_begin()
        for _ in 0..<10_000 { runOneDemoCycle(runner) }
        let allocations = lumen_alloc_count_end()
        #expect(allocations == 0)
        // The cycle really ran the servo: the tip followed the path and the log filled.
        #expect(log.count == 10_100)
        #expect(runner.controller.stats.samples == 10_100)
        #expect(runner.controller.stats.max < 0.5)
        #expect(runner.withHardware { $0.isEnabled })
    }

    @Test func theServoFollowsThePathOnTheSimulatedRobot() throws {
        let log = TipLog(capacity: 10_000, decimation: 10)
        let runner = try makeDemoCycle(log: log)
        try runner.configure()
        try runner.activate()
        try runner.run(cycles: 8000)
        let samples = log.all
        // Past the approach, the tip stays within 0.05 mm of the moving target.
        let late = samples.filter { $0.time > 2 }
        #expect(!late.isEmpty)
        #expect(late.map(\.error).max()! < 0.05)
        // And it really moved: the path spans its full circle diameter.
        let xs = samples.map(\.tip.x)
        #expect(xs.max()! - xs.min()! > 15)
    }

    @Test func inactiveCycleLeavesTheRobotWhereItIs() throws {
        let log = TipLog(capacity: 1000, decimation: 10)
        let runner = try makeDemoCycle(log: log)
        try runner.configure()
        let before = runner.withHardware { $0.measuredPositions }
        try runner.run(cycles: 2000)
        #expect(runner.withHardware { $0.measuredPositions } == before)
        #expect(!runner.withHardware { $0.isEnabled })
    }

    /// The servo writes its log through plain pointers; it keeps the log itself alive too, so
    /// a caller that drops its own reference cannot leave it writing into freed memory (a test
    /// that bound the log to `_` once corrupted the heap that way).
    @Test func theServoKeepsItsLogAlive() throws {
        let model = CatheterModel(try loadRobot("lumen-2s.yaml"))
        weak var dropped: TipLog?
        var servo: TipServo
        do {
            let log = TipLog(capacity: 10, decimation: 1)
            dropped = log
            servo = TipServo(model: model, path: TipPath(), log: log)
        }
        #expect(dropped != nil)
        var state = JointState(jointCount: model.jointCount)
        state.position[0] = 100
        var command = JointCommand(jointCount: model.jointCount)
        for k in 0..<3 {
            let t = Nanoseconds(k + 1) * 1_000_000
            servo.update(state: state, tick: CycleTick(index: Int64(k), deadline: t, wake: t, period: 1_000_000, readFault: nil), command: &command)
        }
        #expect(servo.logOwner.count == 3)
    }

    @Test func aNaNMeasurementHoldsInsteadOfBecomingATarget() throws {
        let description = try loadRobot("lumen-2s.yaml")
        let model = CatheterModel(description)
        let log = TipLog(capacity: 10, decimation: 1)
        var servo = TipServo(model: model, path: TipPath(), log: log)
        var state = JointState(jointCount: model.jointCount)
        state.position[0] = 100
        var command = JointCommand(jointCount: model.jointCount)
        let tick = CycleTick(index: 0, deadline: 1_000_000, wake: 1_000_000, period: 1_000_000, readFault: nil)
        servo.update(state: state, tick: tick, command: &command)
        #expect(command.mode == .position)
        state.position[1] = .nan
        servo.update(state: state, tick: tick, command: &command)
        #expect(command.mode == .hold)
        #expect(command.velocity.array.allSatisfy { $0 == 0 })
    }
}
