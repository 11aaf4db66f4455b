import Core
import Testing
@testable import Sim

@Suite struct KinematicRobotTests {
    let axes = [
        AxisSpec(name: "insertion", unit: .millimetre, lower: 0, upper: 100, maxVelocity: 20, countsPerUnit: 1000),
        AxisSpec(name: "roll", unit: .radian, lower: -3, upper: 3, maxVelocity: 1, countsPerUnit: 10000),
    ]
    let ms: Nanoseconds = 1_000_000

    func command(_ q: [Double], enable: Bool = true) -> JointCommand {
        var c = JointCommand(jointCount: q.count)
        c.mode = .position
        c.enable = enable
        c.position = JointVector(q)
        return c
    }

    /// Writes `cmd` every millisecond for `cycles` cycles, starting at `t`.
    func drive(_ robot: inout KinematicRobot, _ cmd: JointCommand, cycles: Int, from t: inout Nanoseconds) {
        for _ in 0..<cycles {
            t += ms
            _ = robot.write(cmd, now: t)
        }
    }

    @Test func refusesPowerUntilActivated() throws {
        var robot = KinematicRobot(axes: axes, start: JointVector([10, 0]))
        var t: Nanoseconds = 1
        drive(&robot, command([50, 1]), cycles: 100, from: &t)
        #expect(robot.isEnabled == false)
        #expect(robot.measuredPositions.array == [10, 0])
        try robot.activate()
        drive(&robot, command([50, 1]), cycles: 2, from: &t)
        #expect(robot.isEnabled == true)
        #expect(robot.measuredPositions[0] > 10)
    }

    @Test func followsTargetsNoFasterThanTheAxisMaximum() throws {
        var robot = KinematicRobot(axes: axes, start: JointVector([10, 0]))
        try robot.activate()
        var t: Nanoseconds = 1
        drive(&robot, command([10, 0]), cycles: 1, from: &t)
        drive(&robot, command([50, 1]), cycles: 500, from: &t)
        // 0.5 s at 20 mm/s and 1 rad/s.
        #expect(abs(robot.measuredPositions[0] - 20) < 0.01)
        #expect(abs(robot.measuredPositions[1] - 0.5) < 0.001)
        drive(&robot, command([50, 1]), cycles: 2000, from: &t)
        #expect(robot.measuredPositions.array == [50, 1])
    }

    @Test func stopsAtTravelLimits() throws {
        var robot = KinematicRobot(axes: axes, start: JointVector([99, 0]))
        try robot.activate()
        var t: Nanoseconds = 1
        drive(&robot, command([500, -10]), cycles: 5000, from: &t)
        #expect(robot.measuredPositions.array == [100, -3])
        var state = JointState(jointCount: 2)
        #expect(robot.read(into: &state, now: t) == nil)
        #expect(state.status.contains(.atLimit))
    }

    @Test func encoderQuantisesPositions() throws {
        var robot = KinematicRobot(axes: axes, start: JointVector([10.00049, 0]))
        var state = JointState(jointCount: 2)
        _ = robot.read(into: &state, now: 5)
        #expect(state.position[0] == 10.0)
        #expect(state.sampledAt == 5)
    }

    @Test func disablingHoldsPosition() throws {
        var robot = KinematicRobot(axes: axes, start: JointVector([10, 0]))
        try robot.activate()
        var t: Nanoseconds = 1
        drive(&robot, command([10, 0]), cycles: 1, from: &t)
        drive(&robot, command([60, 0]), cycles: 100, from: &t)
        let held = robot.measuredPositions
        drive(&robot, command([60, 0], enable: false), cycles: 100, from: &t)
        #expect(robot.measuredPositions == held)
        #expect(robot.isEnabled == false)
        robot.deactivate()
        drive(&robot, command([60, 0]), cycles: 100, from: &t)
        #expect(robot.measuredPositions == held)
    }

    @Test func wrongShapedCommandIsRefused() throws {
        var robot = KinematicRobot(axes: axes)
        #expect(robot.write(command([1, 2, 3]), now: 10) == .shapeMismatch)
    }
}
