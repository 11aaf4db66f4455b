import Core
import Foundation
import Testing
@testable import Control
@testable import Sim

/// The physics catheter behind the hardware protocol: the cycle's joints move the rod, and
/// where the vessel does not touch it the rod's tip is where the kinematics puts it.
@Suite("Physics-backed robot")
struct CatheterPhysicsRobotTests {
    @Test("Free of the wall, the rod's tip follows the kinematic model's tip; gravity sags it posteriorly", arguments: [false, true])
    func followsKinematicsWhenFree(gravity: Bool) throws {
        var d = try loadRobot("lumen-1s.yaml")
        d.base.positionMM = [0, 0, 5]
        let kin = CatheterModel(d)
        let s = d.sections[0]
        let coupling = RodCoupling(tendonRadius: s.tendonRadiusMM, bendLength: s.lengthMM, tipLength: d.tipLengthMM)
        // A wide straight tube, so nothing touches; gravity on.
        let tube = Phantoms.straightTube(length: 300, radius: 12)
        var rod = CatheterRodDescription.catheter(elements: 100, length: 0.3, bendLength: s.lengthMM * 1e-3, tipLength: d.tipLengthMM * 1e-3)
        if !gravity { rod.gravity = .zero }
        let rodModel = try RodModel(rod,
                                    lumen: RodLumen(VesselTree(tube)), sheathExit: Vec3(0, 0, 0.005), sheathAxis: Vec3(0, 0, 1),
                                    sheathNormal: Vec3(1, 0, 0))
        var start = JointVector(count: 4)
        start[0] = 20
        var robot = CatheterPhysicsRobot(axes: d.axes, start: start, dynamics: .ideal, model: rodModel, coupling: coupling)
        try robot.configure()
        try robot.activate()
        robot.settle(seconds: 0.2)
        var state = JointState(jointCount: 4)
        var command = JointCommand(jointCount: 4)
        command.mode = .position
        command.enable = true
        var target = JointVector(count: 4)
        target[0] = 80; target[1] = 0.6; target[2] = 0.25; target[3] = -0.1
        var now: Nanoseconds = 1_000_000
        var largestReading = 0.0
        for k in 0..<6000 {
            // Ramp to the target over 4 s, then hold 2 s.
            let f = min(1, Double(k) / 4000)
            for i in 0..<4 { command.position[i] = start[i] + (target[i] - start[i]) * f }
            #expect(robot.read(into: &state, now: now) == nil)
            largestReading = max(largestReading, abs(state.insertionForce))
            #expect(robot.write(command, now: now) == nil)
            now += 1_000_000
        }
        // The peak push is the force sensor's largest reading, or a larger one between two.
        let peak = robot.peakPushForce
        #expect(largestReading > 0 && peak >= largestReading && peak < largestReading * 2 + 0.05,
                "peak push \(peak) N, largest reading \(largestReading) N")
        let q = robot.measuredPositions
        let predicted = kin.calcTipPose(q).translation
        let error = (robot.tip - predicted).length
        // Gravity sags the free 124 mm by about a millimetre; nothing else separates them.
        let difference = robot.tip - predicted
        if gravity {
            // A supine patient: the 124 mm free catheter sags posteriorly (+y) by a few mm, little else.
            #expect(difference.y > 0.5 && difference.y < 5, "sag \(difference) mm")
            #expect(Vec3(difference.x, 0, difference.z).length < 0.6, "off-gravity difference \(difference) mm")
        } else {
            #expect(error < 0.5, "rod tip \(robot.tip) vs kinematics \(predicted): \(error) mm")
        }
        #expect((robot.tip - Vec3(0, 0, 5)).length > 100)
        #expect(robot.physicsFaults == 0)
    }
}
