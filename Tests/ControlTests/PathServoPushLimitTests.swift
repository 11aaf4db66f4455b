import Core
import Foundation
import Testing
@testable import Control

/// How the path servo keeps the axial force at the sheath under the monitor's limit, on a
/// simulated clock (1 ms cycles) with the kinematic model, a drive that lags its reference,
/// and a tip blocked by the wall ahead and caught behind: a catheter is stiff along its axis,
/// so a few tenths of a millimetre of insertion past contact load the sheath by several N.
@Suite("Path servo push limit")
struct PathServoPushLimitTests {
    static let dt = 1e-3

    /// The force at the sheath for a drive at `m` mm: a push of `stiffness` N/mm past `contact`
    /// mm, a pull of the same beyond `caught` mm back.
    static func force(_ m: Double, contact: Double, caught: Double, stiffness: Double = 10) -> Double {
        if m > contact { return stiffness * (m - contact) }
        if m < caught { return -stiffness * (caught - m) }
        return 0
    }

    /// Runs the servo against the blocked tip for `seconds`; returns the largest force the
    /// sheath saw (N, signed by the larger side), the push retreats, and the insertion range.
    static func blocked(limit: Double, lag: Double = 0.03, seconds: Double = 20) throws -> (maxPush: Double, maxPull: Double, retreats: Int, minInsertion: Double) {
        let q = JointVector([100, 0, 0, 0])
        var servo = try PathServoManoeuvreTests.caught(q, manoeuvres: false)
        servo.pushLimit = limit
        let tip = servo.model.calcTipPose(q).translation
        var command = JointCommand(jointCount: 4)
        // The drive follows its reference with a lag (`lag` s; none at 0); the load cell with a 10 ms one.
        var measured = q[0], sensed = 0.0
        var maxPush = 0.0, maxPull = 0.0, minInsertion = q[0]
        for k in 0..<Int(seconds / Self.dt) {
            servo.update(estimate: TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                         correction: KinematicCorrection(), pushForce: sensed, measuredInsertion: measured, dt: Self.dt, command: &command)
            measured += (command.position[0] - measured) * (lag > 0 ? min(1, Self.dt / lag) : 1)
            let f = force(measured, contact: q[0] + 0.3, caught: q[0] - 3)
            sensed += (f - sensed) * (Self.dt / (0.01 + Self.dt))
            maxPush = max(maxPush, f)
            maxPull = max(maxPull, -f)
            minInsertion = min(minInsertion, measured)
        }
        return (maxPush, maxPull, servo.retreats, minInsertion)
    }

    @Test("Against a blocked tip the servo stays under its force limit both ways and still retreats; without a limit it pushes far past it")
    func staysUnderTheLimit() throws {
        let limited = try Self.blocked(limit: 5)
        let push = limited.maxPush, pull = limited.maxPull, retreats = limited.retreats
        #expect(push < 5, "push \(push) N")
        #expect(pull < 5, "pull \(pull) N")
        #expect(push > 2, "the servo never pushed: \(push) N")
        #expect(retreats >= 1)
        // A drive without lag: no lead to take back, the force gates alone keep the limit.
        let prompt = try Self.blocked(limit: 5, lag: 0)
        let promptPush = prompt.maxPush, promptPull = prompt.maxPull
        #expect(promptPush < 5, "push \(promptPush) N")
        #expect(promptPull < 5, "pull \(promptPull) N")
        #expect(promptPull > 1, "never pulled against the catch: \(promptPull) N")
        // Without a limit (a drive that reports no force): only the buckling rule (10 mm fed
        // without progress) ends each push.
        let unlimited = try Self.blocked(limit: .infinity)
        let free = unlimited.maxPush
        #expect(free > 20, "push \(free) N")
    }

    @Test("A push at the stall level is a stall at once: the servo withdraws before it would count a stall by time or feed")
    func pushAtTheStallLevelRetreatsAtOnce() throws {
        let q = JointVector([100, 0, 0, 0])
        var servo = try PathServoManoeuvreTests.caught(q, manoeuvres: false)
        servo.pushLimit = 5
        let tip = servo.model.calcTipPose(q).translation
        var command = JointCommand(jointCount: 4)
        // A catheter that starts loaded (wedged as it was placed), the tip going nowhere.
        for k in 0..<20 {
            servo.update(estimate: TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                         correction: KinematicCorrection(), pushForce: 0.75 * 5, measuredInsertion: servo.reference[0], dt: Self.dt, command: &command)
        }
        let phase = servo.phase, pushRetreats = servo.pushRetreats, insertion = servo.reference[0]
        #expect(phase == .withdrawing)
        #expect(pushRetreats == 1)
        #expect(insertion < q[0])
    }

    @Test("A force reading that is not a number stops the advance where a limit is set, and is ignored where none is")
    func unreadableForceStopsTheAdvance() throws {
        func advance(limit: Double) throws -> Double {
            let q = JointVector([100, 0, 0, 0])
            var servo = try PathServoManoeuvreTests.caught(q, manoeuvres: false)
            servo.pushLimit = limit
            let pose = servo.model.calcTipPose(q)
            var command = JointCommand(jointCount: 4)
            for k in 0..<500 {
                // The tip moves with the insertion, as a free catheter's does.
                let tip = pose.translation + pose.rotation.c2 * (servo.reference[0] - q[0])
                servo.update(estimate: TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                             correction: KinematicCorrection(), pushForce: .nan, measuredInsertion: servo.reference[0], dt: Self.dt, command: &command)
            }
            return servo.reference[0] - q[0]
        }
        let held = try advance(limit: 5)
        let free = try advance(limit: .infinity)
        #expect(held <= 0, "advanced \(held) mm on an unreadable force")
        #expect(free > 1, "advanced \(free) mm")
    }
}
