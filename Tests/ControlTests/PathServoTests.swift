import Core
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
        #expect((model.calcTipPose(q).translation - route.target).length <= servo.arrivalTolerance + 1e-9)
        // Lost: the reference stays where it is.
        let held = servo.reference
        servo.update(estimate: TipEstimate(position: .zero, health: .lost), correction: KinematicCorrection(), dt: 1e-3, command: &command)
        #expect(servo.phase == .holdingLost)
        #expect(command.position == held)
        #expect((0..<4).allSatisfy { command.velocity[$0] == 0 })
    }
}
