import Core
import Foundation
import Testing
@testable import Control

/// The path servo on the kinematic model itself (no mismatch): it follows a route to its end
/// and holds there; a lost estimate freezes the reference.
@Suite("Path servo")
struct PathServoTests {
    @Test("Reaches the end of a curved route in free space and holds; stops where it is when the estimate is lost")
    func reachesAndHolds() throws {
        let model = CatheterModel(try loadRobot("lumen-1s.yaml"))
        var q = JointVector([30, 0, 0, 0])
        let start = model.calcTipPose(q).translation
        // 40 mm up and 8 mm sideways, bending gently.
        let route = CenterlineRoute((0...40).map { i in start + Vec3(8 * Double(i * i) / 1600, 0, Double(i)) })
        var servo = PathServo(model: model, route: route)
        servo.reset(to: q)
        var command = JointCommand(jointCount: 4)
        var arrived = false
        for k in 0..<20_000 {
            let tip = model.calcTipPose(q).translation
            let estimate = TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000)
            servo.update(estimate: estimate, correction: KinematicCorrection(), dt: 1e-3, command: &command)
            // Speed limits are never exceeded.
            for j in 0..<4 { #expect(abs(command.velocity[j]) <= model.maxVelocity[j] * servo.speedScale + 1e-9) }
            q = command.position
            if servo.phase == .arrived { arrived = true; break }
        }
        #expect(arrived)
        #expect((model.calcTipPose(q).translation - servo.route.target).length <= servo.arrivalTolerance + 1e-9)
        // Lost: the reference stays where it is.
        let held = servo.reference
        servo.update(estimate: TipEstimate(position: .zero, health: .lost), correction: KinematicCorrection(), dt: 1e-3, command: &command)
        #expect(servo.phase == .holdingLost)
        #expect(command.position == held)
        #expect((0..<4).allSatisfy { command.velocity[$0] == 0 })
    }

    @Test("Inside a curved vessel the tip goes where it points when pushed: insertion is used across the sheath's axis")
    func insertionFollowsTheTip() throws {
        let model = CatheterModel(try loadRobot("lumen-1s.yaml"))
        let q = JointVector([100, 0, 0, 0])
        // The vessel has turned the shaft 80° before the bending section: the tip points across
        // the sheath's axis, and the route runs on the way it points.
        let correction = KinematicCorrection(rotation: Vec3(80 * .pi / 180, 0, 0))
        let pose = correction.tipPose(model, q)
        let route = CenterlineRoute((0...60).map { pose.translation + pose.rotation.c2 * Double($0) })
        var servo = PathServo(model: model, route: route)
        servo.reset(to: q)
        var command = JointCommand(jointCount: 4)
        for k in 0..<200 {
            servo.update(estimate: TipEstimate(position: pose.translation, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                         correction: correction, dt: 1e-3, command: &command)
        }
        // The sheath's axis is nearly perpendicular to the way on; the step still pushes.
        // It pushes at (nearly) its full speed; taking insertion to move the tip along the
        // sheath's axis, it pushed at half that.
        #expect(servo.reference[0] - 100 >= 0.8 * 0.2 * model.maxVelocity[0] * servo.speedScale,
                "insertion went from 100 to \(servo.reference[0]) mm")
    }

    @Test("A tip that makes no progress is pulled back straight and tries again")
    func aStalledTipRetreats() throws {
        let model = CatheterModel(try loadRobot("lumen-1s.yaml"))
        // Bent, as a tip a bend holds against a wall is.
        let q = JointVector([60, 0, 0.8, -0.5])
        let tip = model.calcTipPose(q).translation, heading = model.calcTipPose(q).rotation.c2
        let route = CenterlineRoute((0...60).map { tip + heading * Double($0) })
        var servo = PathServo(model: model, route: route)
        servo.reset(to: q)
        var command = JointCommand(jointCount: 4)
        var lowest = Double.infinity, highest = -Double.infinity
        var bendAtRetreat: Double?, bendAfterRetreat: Double?
        // The estimate never moves: the tip is caught.
        for k in 0..<Int((servo.stallTime + 5) * 1000) {
            servo.update(estimate: TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                         correction: KinematicCorrection(), dt: 1e-3, command: &command)
            highest = max(highest, servo.reference[0])
            let bend = (servo.reference[2] * servo.reference[2] + servo.reference[3] * servo.reference[3]).squareRoot()
            if servo.retreats > 0 {
                lowest = min(lowest, servo.reference[0])
                if bendAtRetreat == nil { bendAtRetreat = bend }
                if servo.retreatLeft <= 0, bendAfterRetreat == nil { bendAfterRetreat = bend }
            }
        }
        #expect(servo.retreats >= 1)
        #expect(highest - lowest >= servo.retreat - 0.01, "pulled back \(highest - lowest) mm")
        // The bend comes out on the way back (the same bend would take the tip back to the same wall).
        #expect((bendAtRetreat ?? 0) > 0.5)
        #expect(bendAfterRetreat == 0, "bend \(String(describing: bendAfterRetreat)) tendon mm after the retreat")
        // Near the route's end a slow final approach is not a stall: a tip that comes 0.6 mm/s
        // closer to the goal for longer than `stallTime` is not pulled back.
        let short = CenterlineRoute((0...6).map { tip + Vec3(0, 0, Double($0)) })
        var finishing = PathServo(model: model, route: short)
        finishing.reset(to: q)
        for k in 0..<5000 {
            let closer = tip + Vec3(0, 0, 0.6 * Double(k) / 1000)
            finishing.update(estimate: TipEstimate(position: closer, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                             correction: KinematicCorrection(), dt: 1e-3, command: &command)
        }
        #expect(5 > finishing.stallTime)
        #expect(finishing.retreats == 0)
    }

    /// A straight route of `routeMM` from a tip aligned with it, the estimate held where the tip
    /// starts (whatever is pushed goes into slack behind it), for at most `steps` cycles. Returns
    /// the cycle of the first retreat and the insertion pushed by then.
    static func pushedBehindAHeldTip(routeMM: Int, steps: Int) throws -> (retreatedAt: Int?, pushed: Double, stallPush: Double, stallTime: Double) {
        let model = CatheterModel(try loadRobot("lumen-1s.yaml"))
        let q = JointVector([60, 0, 0, 0])
        let tip = model.calcTipPose(q).translation, heading = model.calcTipPose(q).rotation.c2
        var servo = PathServo(model: model, route: CenterlineRoute((0...routeMM).map { tip + heading * Double($0) }))
        servo.reset(to: q)
        var command = JointCommand(jointCount: 4)
        var highest = q[0]
        for k in 0..<steps {
            servo.update(estimate: TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                         correction: KinematicCorrection(), dt: 1e-3, command: &command)
            highest = max(highest, servo.reference[0])
            if servo.retreats > 0 { return (k, highest - q[0], servo.stallPush, servo.stallTime) }
        }
        return (nil, highest - q[0], servo.stallPush, servo.stallTime)
    }

    @Test("Within a lookahead of the goal, pushing behind a tip that comes no closer is buckling too")
    func pushingWithoutProgressNearTheEndRetreats() throws {
        // 5 mm from the goal, inside the lookahead from the start: a slow final approach is no
        // stall, but 10 mm of shaft into a tip held 5 mm short only loads the wall.
        let r = try Self.pushedBehindAHeldTip(routeMM: 5, steps: 20_000)
        #expect(r.retreatedAt != nil, "no retreat in 20 s while pushing \(r.pushed) mm behind a held tip")
        #expect(r.pushed > r.stallPush - 0.5 && r.pushed <= r.stallPush + 0.1, "pushed \(r.pushed) mm before the retreat")
    }

    @Test("Catheter pushed in while the tip stays put (buckling behind it) is a stall at once: pulled back after stallPush mm, not stallTime s")
    func pushingWithoutProgressRetreatsAfterTheSlackLimit() throws {
        // Straight and aligned with the route: the step pushes at full speed.
        let r = try Self.pushedBehindAHeldTip(routeMM: 80, steps: 3000)
        let at = try #require(r.retreatedAt, "no retreat within stallTime while pushing \(r.pushed) mm without progress")
        #expect(Double(at) < 0.5 * r.stallTime * 1000)
        #expect(r.pushed > r.stallPush - 0.5 && r.pushed <= r.stallPush + 0.1, "pushed \(r.pushed) mm before the retreat")
        // A tip that follows the push is no stall: no retreat over the same push and more.
        let model = CatheterModel(try loadRobot("lumen-1s.yaml"))
        let q = JointVector([60, 0, 0, 0])
        let tip = model.calcTipPose(q).translation, heading = model.calcTipPose(q).rotation.c2
        var command = JointCommand(jointCount: 4)
        var following = PathServo(model: model, route: CenterlineRoute((0...80).map { tip + heading * Double($0) }))
        following.reset(to: q)
        var qf = q
        for k in 0..<3000 {
            let moved = model.calcTipPose(qf).translation
            following.update(estimate: TipEstimate(position: moved, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                             correction: KinematicCorrection(), dt: 1e-3, command: &command)
            qf = command.position
        }
        #expect(qf[0] - q[0] > 2 * following.stallPush)
        #expect(following.retreats == 0)
    }

    @Test("A tip past the target at the lumen's wall is pulled back, not held at the edge of the back-out ramp")
    func pastTheTargetAtTheWall() throws {
        let model = CatheterModel(try loadRobot("lumen-1s.yaml"))
        let q = JointVector([60, 0, 0, 0])
        let tip = model.calcTipPose(q).translation
        // The route ends 2 mm behind the tip and 2.9 mm to its side, in a 3.5 mm lumen: the tip is
        // just at the wall, where the back-out ramp starts from nothing.
        let side = Vec3(2.9, 0, 0)
        let route = CenterlineRoute((0...30).map { tip + side + Vec3(0, 0, Double($0) - 32) },
                                    radii: [Double](repeating: 3.5, count: 31))
        var servo = PathServo(model: model, route: route)
        servo.reset(to: q)
        var command = JointCommand(jointCount: 4)
        for k in 0..<300 {
            servo.update(estimate: TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                         correction: KinematicCorrection(), dt: 1e-3, command: &command)
        }
        #expect(servo.offRoute > 3.5)
        // The step asks to retract (the target is behind the tip) and is let: within 0.3 s more
        // than 0.3 mm. Overridden by the ramp, it moved 0.005 mm.
        #expect(q[0] - servo.reference[0] > 0.3, "insertion went from 60 to \(servo.reference[0]) mm")
    }

    @Test("Sharp corners of a route are rounded, along the parent's wall towards the branch")
    func cornersAreRounded() {
        // A parent along +x (10 mm lumen), a branch leaving it at right angles along +y (3 mm).
        var route: [(point: Vec3, radius: Double)] = (0...10).map { (Vec3(Double($0 * 5) - 50, 0, 0), 10) }
        route += (1...8).map { (Vec3(0, Double($0 * 5), 0), 3) }
        let rounded = CenterlineRoute.roundingCorners(route)
        var sharpest = 1.0
        for i in 1..<(rounded.count - 1) {
            let a = rounded[i].point - rounded[i - 1].point, b = rounded[i + 1].point - rounded[i].point
            sharpest = min(sharpest, a.dot(b) / (a.length * b.length))
        }
        #expect(sharpest > cos(0.5), "sharpest turn cosine \(sharpest)")
        // It leaves the parent's axis before the corner, on the branch's side.
        let beforeCorner = rounded.filter { $0.point.x > -5 && $0.point.x < 0 }
        #expect(!beforeCorner.isEmpty && beforeCorner.allSatisfy { $0.point.y > 0.5 })
        // Both ends are kept.
        #expect(rounded.first!.point == route.first!.point && rounded.last!.point == route.last!.point)
        // A straight route is left as it is.
        let straight: [(point: Vec3, radius: Double)] = (0...10).map { (Vec3(0, 0, Double($0)), 2) }
        #expect(CenterlineRoute.roundingCorners(straight).map(\.point) == straight.map(\.point))
    }
}
