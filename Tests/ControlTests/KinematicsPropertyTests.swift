import Core
import Foundation
import Testing
@testable import Control

/// Properties of the kinematics that `KinematicsTests` leaves out: the roll as a rigid rotation,
/// the one-section robot's Jacobian, continuity of the whole chain across the series switch,
/// the limit clamp, and robot files read from disk.
@Suite struct KinematicsPropertyTests {
    /// A one-section robot on a tilted, offset base.
    func tiltedOneSectionRobot() throws -> CatheterModel {
        var d = try loadRobot("lumen-1s.yaml")
        d.base.positionMM = [-15, 8, 40]
        d.base.rpyRad = [-0.4, 0.25, -1.2]
        return CatheterModel(d)
    }

    /// Rotation by `angle` about the unit vector `axis` (Rodrigues).
    func rotation(about axis: Vec3, by angle: Double) -> Mat3 {
        let k = Mat3.skew(axis)
        return Mat3.identity + k * sin(angle) + (k * k) * (1 - cos(angle))
    }

    @Test func rollRotatesTheTipRigidlyAboutTheInsertionAxis() throws {
        let m = try tiltedRobot()
        var rng = Rng(seed: 21)
        let axis = m.basePose.rotation.c2
        for k in 0..<200 {
            let q = m.randomPosture(&rng, nearStraight: k % 5 == 0)
            let delta = rng.uniform(-2, 2)
            var rolled = q
            rolled[1] += delta
            let pivot = m.basePose.translation + axis * q[0]
            let turn = rotation(about: axis, by: delta)
            let before = m.calcTipPose(q), after = m.calcTipPose(rolled)
            #expect((after.translation - (pivot + turn * (before.translation - pivot))).length < 1e-9)
            #expect(after.rotation.maxAbsDifference(turn * before.rotation) < 1e-12)
        }
    }

    @Test func oneSectionJacobianMatchesFiniteDifferences() throws {
        let m = try tiltedOneSectionRobot()
        #expect(m.jointCount == 4)
        var rng = Rng(seed: 314)
        var worst = 0.0
        for k in 0..<500 {
            let q = m.randomPosture(&rng, nearStraight: k % 2 == 0)
            var jac = Jacobian6(count: m.jointCount)
            let pose = m.calcTipPoseAndJacobian(q, into: &jac)
            #expect((pose.translation - m.calcTipPose(q).translation).length < 1e-12)
            #expect(pose.rotation.maxAbsDifference(m.calcTipPose(q).rotation) < 1e-14)
            for j in 0..<m.jointCount {
                let h = j == 0 ? 1e-4 : 1e-6
                let (lin, ang) = KinematicsTests().finiteDifference(m, q, joint: j, h: h)
                let e = max((jac.linear(j) - lin).length / max(1, lin.length), (jac.angular(j) - ang).length / max(1, ang.length))
                worst = max(worst, e)
            }
        }
        #expect(worst < 1e-6, "largest relative difference to finite differences: \(worst)")
    }

    /// The series and the closed forms meet at θ = 0.1: the tip pose and every Jacobian column
    /// must not jump there, in any bending plane and for either section.
    @Test func poseAndJacobianAreContinuousAcrossTheSeriesSwitch() throws {
        let m = try tiltedRobot()
        var rng = Rng(seed: 8)
        let switchBend = squareRootOf(ConstantCurvature.seriesLimit)
        for _ in 0..<100 {
            var q = m.randomPosture(&rng)
            let section = Int(rng.next() % UInt64(m.sectionCount))
            let plane = rng.uniform(-.pi, .pi)
            var below = q, above = q
            for (k, factor) in [(0, 1 - 1e-12), (1, 1 + 1e-12)] {
                let bend = switchBend * factor * m.tendonRadius[section]
                q[2 + 2 * section] = bend * cos(plane)
                q[3 + 2 * section] = bend * sin(plane)
                if k == 0 { below = q } else { above = q }
            }
            #expect(m.calcSectionShape(below, section: section).bend < switchBend)
            #expect(m.calcSectionShape(above, section: section).bend > switchBend)
            var jb = Jacobian6(count: m.jointCount), ja = Jacobian6(count: m.jointCount)
            let pb = m.calcTipPoseAndJacobian(below, into: &jb), pa = m.calcTipPoseAndJacobian(above, into: &ja)
            #expect((pb.translation - pa.translation).length < 1e-10)
            #expect(pb.rotation.maxAbsDifference(pa.rotation) < 1e-12)
            for j in 0..<m.jointCount {
                #expect((jb.linear(j) - ja.linear(j)).length < 1e-9)
                #expect((jb.angular(j) - ja.angular(j)).length < 1e-11)
            }
        }
    }

    @Test func clampingIsIdempotentAndLeavesLegalPosturesAlone() throws {
        let m = try tiltedRobot()
        var rng = Rng(seed: 55)
        for _ in 0..<300 {
            let legal = m.randomPosture(&rng)
            #expect(m.clampToLimits(legal) == legal)
            var wild = JointVector(count: m.jointCount)
            for j in 0..<m.jointCount {
                let span = m.upperLimit[j] - m.lowerLimit[j]
                wild[j] = rng.uniform(m.lowerLimit[j] - span, m.upperLimit[j] + span)
            }
            let once = m.clampToLimits(wild)
            #expect(m.isWithinLimits(once))
            // Scaling onto the disc can land an ulp outside it, so a second clamp may move the
            // tendons by that ulp; anything more would be a real jump.
            #expect(m.clampToLimits(once).maxAbsDifference(once) < 1e-15)
        }
    }

    // MARK: Robot files on disk

    /// Writes `text` to a fresh file named `name` and loads it; returns the error.
    func loadError(_ text: String, as name: String) throws -> (path: String, error: ConfigError?) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-kin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try ConfigLoader.load(RobotDescription.self, from: path)
            return (path, nil)
        } catch {
            return (path, error)
        }
    }

    func exampleText(_ name: String) throws -> String {
        try String(contentsOf: repoRoot.appendingPathComponent("robots/\(name)"), encoding: .utf8)
    }

    @Test func aBrokenJSONFileNamesItselfAndTheField() throws {
        let json = try exampleText("lumen-2s.json")
        let cases: [(String, String, String)] = [
            ("\"length_mm\": 15", "\"length_mm\": \"15\"", "sections[1].length_mm"),
            ("\"max_velocity_rad_s\": 1.5,", "", "roll.max_velocity_rad_s"),
            ("\"tip_length_mm\": 5", "\"tip_length_mm\": 5, \"tip_colour\": \"red\"", "tip_colour"),
            ("\"max_bend_rad\": 1.5708,\n      \"max_tendon_velocity_mm_s\": 4,\n      \"counts_per_mm\": 20000\n    }\n  ]",
             "\"max_bend_rad\": 3.5,\n      \"max_tendon_velocity_mm_s\": 4,\n      \"counts_per_mm\": 20000\n    }\n  ]",
             "sections[1].max_bend_rad"),
        ]
        for (old, new, field) in cases {
            #expect(json.contains(old), "the example file changed; fix this test's edit for \(field)")
            let (path, error) = try loadError(json.replacingOccurrences(of: old, with: new), as: "robot.json")
            guard case .invalid(let file, let problems)? = error else {
                Issue.record("\(field): expected .invalid, got \(String(describing: error))")
                continue
            }
            #expect(file == path)
            #expect(problems.map(\.field) == [field])
        }
    }

    @Test func aBrokenYAMLFileNamesItself() throws {
        let yaml = try exampleText("lumen-1s.yaml")
        let (path, error) = try loadError(yaml.replacingOccurrences(of: "tendon_radius_mm: 0.8", with: "tendon_radius_mm: 0"), as: "robot.yaml")
        #expect(error == .invalid(file: path, problems: [
            ConfigProblem(field: "sections[0].tendon_radius_mm", message: "must be within 0.05…20.0, got 0.0"),
        ]))
        let (badPath, bad) = try loadError("name: lumen\nsections: [ {length_mm: 3", as: "robot.yaml")
        guard case .malformed(let file, _)? = bad else { Issue.record("expected .malformed, got \(String(describing: bad))"); return }
        #expect(file == badPath)
    }

    @Test func axesFollowTheFile() throws {
        let d = try loadRobot("lumen-2s.yaml")
        let m = CatheterModel(d)
        let axes = d.axes
        #expect(axes.count == m.jointCount)
        for (j, a) in axes.enumerated() {
            #expect(a.lower == m.lowerLimit[j] && a.upper == m.upperLimit[j] && a.maxVelocity == m.maxVelocity[j])
            #expect(a.lower < a.upper && a.maxVelocity > 0 && a.countsPerUnit > 0)
        }
        #expect(axes[0].unit == .millimetre && axes[1].unit == .radian && axes[2...].allSatisfy { $0.unit == .millimetre })
        // Tendon travel is the disc's radius: r · max bend.
        #expect(abs(axes[4].upper - d.sections[1].tendonRadiusMM * d.sections[1].maxBendRad) < 1e-15)
    }
}
