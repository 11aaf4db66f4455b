import Core
import Foundation
import Testing
@testable import Control

typealias Rng = SplitMix64

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func loadRobot(_ name: String) throws -> RobotDescription {
    try ConfigLoader.load(RobotDescription.self, from: repoRoot.appendingPathComponent("robots/\(name)").path)
}

/// A two-section robot with a tilted, offset base, so no test relies on an identity base.
func tiltedRobot() throws -> CatheterModel {
    var d = try loadRobot("lumen-2s.yaml")
    d.base.positionMM = [10, -20, 5]
    d.base.rpyRad = [0.3, -0.2, 0.7]
    return CatheterModel(d)
}

extension CatheterModel {
    /// A random posture inside the limits; `nearStraight` puts each section's |u| in 1e-9…1e-3
    /// (and some exactly at 0), where the closed forms would divide by zero.
    func randomPosture(_ rng: inout Rng, nearStraight: Bool = false) -> JointVector {
        var q = JointVector(count: jointCount)
        q[0] = rng.uniform(lowerLimit[0], upperLimit[0])
        q[1] = rng.uniform(lowerLimit[1], upperLimit[1])
        for i in 0..<sectionCount {
            let plane = rng.uniform(-.pi, .pi)
            var bend = rng.uniform(0, maxBend[i])
            if nearStraight {
                let roll = rng.unit()
                bend = roll < 0.1 ? 0 : pow(10, rng.uniform(-9, -3))
            }
            q[2 + 2 * i] = bend * cos(plane) * tendonRadius[i]
            q[3 + 2 * i] = bend * sin(plane) * tendonRadius[i]
        }
        return q
    }
}

@Suite struct KinematicsTests {
    // MARK: Closed forms

    @Test func straightCatheterPointsAlongTheBaseAxis() throws {
        let m = try tiltedRobot()
        var q = JointVector(count: m.jointCount)
        q[0] = 120
        q[1] = 0.9
        let tip = m.calcTipPose(q)
        let reach = 120 + m.sectionLength[0] + m.sectionLength[1] + m.tipLength
        let expected = m.basePose.translation + m.basePose.rotation.c2 * reach
        #expect((tip.translation - expected).length < 1e-9)
        #expect((tip.rotation.c2 - m.basePose.rotation.c2).length < 1e-12)
    }

    @Test func quarterCircleBendEndsWhereTheArcDoes() throws {
        var d = try loadRobot("lumen-1s.yaml")
        d.tipLengthMM = 0
        let m = CatheterModel(d)
        let L = m.sectionLength[0], r = m.tendonRadius[0]
        var q = JointVector(count: m.jointCount)
        q[2] = .pi / 2 * r  // θ = π/2 in the plane φ = 0
        let tip = m.calcTipPose(q)
        // (L/θ)(1 − cos θ, 0, sin θ) with θ = π/2: the arc's radius is 2L/π.
        let rho = 2 * L / .pi
        #expect((tip.translation - Vec3(rho, 0, rho)).length < 1e-9)
        #expect((tip.rotation.c2 - Vec3(1, 0, 0)).length < 1e-12, "the tip points along +x after a quarter turn")
        let shape = m.calcSectionShape(q, section: 0)
        #expect(abs(shape.bend - .pi / 2) < 1e-12 && abs(shape.plane) < 1e-12)
    }

    /// Same tip position and direction; the frames differ only by a twist about the tip axis,
    /// which the roll adds and an in-plane bend does not.
    @Test func rollingThePlaneEqualsRollingTheCatheter() throws {
        var d = try loadRobot("lumen-1s.yaml")
        d.base.rpyRad = [0, 0, 0]
        let m = CatheterModel(d)
        let r = m.tendonRadius[0], bend = 0.8, phi = 0.4, psi = 1.1
        var rolled = JointVector(count: m.jointCount)
        rolled[0] = 30; rolled[1] = psi
        rolled[2] = bend * cos(phi) * r; rolled[3] = bend * sin(phi) * r
        var inPlane = rolled
        inPlane[1] = 0
        inPlane[2] = bend * cos(phi + psi) * r; inPlane[3] = bend * sin(phi + psi) * r
        let a = m.calcTipPose(rolled), b = m.calcTipPose(inPlane)
        #expect((a.translation - b.translation).length < 1e-9)
        #expect((a.rotation.c2 - b.rotation.c2).length < 1e-12)
        #expect((a.rotation.c0 - b.rotation.c0).length > 0.1, "roll twists the tip frame")
    }

    @Test func tipRotationIsAlwaysARotation() throws {
        let m = try tiltedRobot()
        var rng = Rng(seed: 11)
        for k in 0..<300 {
            let q = m.randomPosture(&rng, nearStraight: k % 3 == 0)
            let R = m.calcTipPose(q).rotation
            #expect((R.transposed * R).maxAbsDifference(.identity) < 1e-12)
            #expect(abs(R.determinant - 1) < 1e-12)
        }
    }

    @Test func seriesAndClosedFormsAgreeAtTheSwitch() {
        let s0 = ConstantCurvature.seriesLimit
        let below = ConstantCurvature.coefficients(s: s0 * (1 - 1e-12))
        let above = ConstantCurvature.coefficients(s: s0 * (1 + 1e-12))
        #expect(abs(below.a - above.a) < 1e-13)
        #expect(abs(below.b - above.b) < 1e-13)
        #expect(abs(below.da - above.da) < 1e-12)
        #expect(abs(below.db - above.db) < 1e-12)
        let zero = ConstantCurvature.coefficients(s: 0)
        #expect(zero == .init(a: 1, b: 0.5, da: -1.0 / 6, db: -1.0 / 24))
    }

    // MARK: Jacobian

    /// Central differences of the tip pose: linear (mm/unit) and angular (rad/unit) columns.
    func finiteDifference(_ m: CatheterModel, _ q: JointVector, joint j: Int, h: Double) -> (Vec3, Vec3) {
        var qp = q, qm = q
        qp[j] += h; qm[j] -= h
        let p = m.calcTipPose(qp), n = m.calcTipPose(qm), c = m.calcTipPose(q)
        let dR = (p.rotation - n.rotation) * (1 / (2 * h))
        return ((p.translation - n.translation) * (1 / (2 * h)), (dR * c.rotation.transposed).vee)
    }

    @Test(arguments: [false, true])
    func jacobianMatchesFiniteDifferences(nearStraight: Bool) throws {
        let m = try tiltedRobot()
        var rng = Rng(seed: nearStraight ? 99 : 42)
        var worst = 0.0
        for _ in 0..<500 {
            let q = m.randomPosture(&rng, nearStraight: nearStraight)
            var jac = Jacobian6(count: m.jointCount)
            let pose = m.calcTipPoseAndJacobian(q, into: &jac)
            #expect((pose.translation - m.calcTipPose(q).translation).length < 1e-12)
            for j in 0..<m.jointCount {
                // Steps sized to each joint's unit: tendons move microns, roll milliradians.
                let h = j == 0 ? 1e-4 : 1e-6
                let (lin, ang) = finiteDifference(m, q, joint: j, h: h)
                let scale = max(1, lin.length)
                let e = max((jac.linear(j) - lin).length / scale, (jac.angular(j) - ang).length / max(1, ang.length))
                worst = max(worst, e)
            }
        }
        #expect(worst < 1e-6, "largest relative difference to finite differences: \(worst)")
    }

    @Test func straightSectionsHaveAFiniteWellDefinedJacobian() throws {
        let m = try tiltedRobot()
        var q = JointVector(count: m.jointCount)
        q[0] = 50
        var jac = Jacobian6(count: m.jointCount)
        _ = m.calcTipPoseAndJacobian(q, into: &jac)
        for j in 0..<m.jointCount {
            #expect(jac.linear(j).isFinite && jac.angular(j).isFinite)
        }
        // Straight: roll cannot move the tip, but bending either way moves it sideways.
        #expect(jac.linear(1).length < 1e-9)
        #expect(jac.linear(2).length > 1 && jac.linear(3).length > 1)
    }

    // MARK: Inverse kinematics

    enum Start: CaseIterable { case perturbedGoal, straightHome }

    /// Iterates the DLS step toward FK(goal) and reports the fraction of goals reached to
    /// 0.01 mm within 300 steps; every step must stay inside the limits.
    func roundTrips(_ m: CatheterModel, solver: DLSOptions.Solver, start: Start, seed: UInt64) -> (Double, [Double]) {
        var rng = Rng(seed: seed)
        let trials = 200
        var misses: [Double] = []
        for _ in 0..<trials {
            let goal = m.randomPosture(&rng)
            let target = m.calcTipPose(goal).translation
            var q = JointVector(count: m.jointCount)
            switch start {
            case .perturbedGoal:
                q = goal
                q[0] += rng.uniform(-20, 20)
                q[1] += rng.uniform(-0.6, 0.6)
                for i in 0..<m.sectionCount {
                    q[2 + 2 * i] += rng.uniform(-0.4, 0.4) * m.tendonRadius[i]
                    q[3 + 2 * i] += rng.uniform(-0.4, 0.4) * m.tendonRadius[i]
                }
                q = m.clampToLimits(q)
            case .straightHome:
                q[0] = goal[0]
            }
            // A trust region per step, as the servo's speed limits give it: 5 mm of insertion,
            // 0.1 rad of roll, 0.1 mm of tendon.
            var maxStep = JointVector(count: m.jointCount, repeating: 0.1)
            maxStep[0] = 5
            let options = DLSOptions(damping: 0.1, maxStep: maxStep, solver: solver)
            var error = (m.calcTipPose(q).translation - target).length
            for _ in 0..<300 where error >= 0.01 {
                q = m.dlsStep(q, target: target, options: options)
                #expect(m.isWithinLimits(q), "a DLS step left the joint limits: \(q.array)")
                error = (m.calcTipPose(q).translation - target).length
            }
            if error >= 0.01 { misses.append(error) }
        }
        return (Double(trials - misses.count) / Double(trials), misses)
    }

    @Test(arguments: [DLSOptions.Solver.swift, .eigen])
    func inverseThenForwardRoundTripsFromNearby(solver: DLSOptions.Solver) throws {
        let (fraction, misses) = roundTrips(try tiltedRobot(), solver: solver, start: .perturbedGoal, seed: 5)
        #expect(fraction >= 0.99, "reached \(fraction * 100) %; misses (mm): \(misses)")
    }

    /// From a straight catheter at the goal's insertion, the solver must find a bend and roll
    /// for nearly every reachable target (all 200 here; the bar leaves room for a target where
    /// the roll limit blocks the short way round, a true local minimum of a limited joint).
    @Test(arguments: [DLSOptions.Solver.swift, .eigen])
    func inverseThenForwardRoundTripsFromStraight(solver: DLSOptions.Solver) throws {
        let (fraction, misses) = roundTrips(try tiltedRobot(), solver: solver, start: .straightHome, seed: 6)
        #expect(fraction >= 0.98, "reached \(fraction * 100) %; misses (mm): \(misses)")
    }

    @Test func unreachableTargetsDriveJointsToTheirLimitsNeverPast() throws {
        let m = try tiltedRobot()
        var q = JointVector(count: m.jointCount)
        q[0] = 100
        // Far beyond the insertion travel, straight ahead.
        let target = m.basePose.transform(Vec3(0, 0, 10_000))
        for _ in 0..<2000 {
            q = m.dlsStep(q, target: target, options: DLSOptions())
            #expect(m.isWithinLimits(q))
        }
        #expect(abs(q[0] - m.upperLimit[0]) < 1e-9, "insertion should rest at its upper limit, is \(q[0])")
        // Far to the side: the sections bend to their discs' edge and no further.
        q = m.dlsStep(q, target: m.basePose.transform(Vec3(500, 0, 100)), options: DLSOptions())
        for _ in 0..<3000 { q = m.dlsStep(q, target: m.basePose.transform(Vec3(500, 0, 100)), options: DLSOptions()) }
        #expect(m.isWithinLimits(q))
    }

    @Test func swiftAndEigenTakeTheSameStep() throws {
        let m = try tiltedRobot()
        var rng = Rng(seed: 77)
        for k in 0..<300 {
            let q = m.randomPosture(&rng, nearStraight: k % 4 == 0)
            let target = m.calcTipPose(q).translation + Vec3(rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-3, 3))
            let a = m.dlsStep(q, target: target, options: DLSOptions(solver: .swift))
            let b = m.dlsStep(q, target: target, options: DLSOptions(solver: .eigen))
            #expect(a.maxAbsDifference(b) < 1e-9)
        }
    }

    @Test func maxStepBoundsEveryJointAndKeepsTheDirection() throws {
        let m = try tiltedRobot()
        var q = JointVector(count: m.jointCount)
        q[0] = 100
        let target = m.calcTipPose(q).translation + m.basePose.rotation.c0 * 10
        let free = m.dlsStep(q, target: target, options: DLSOptions())
        let bounded = m.dlsStep(q, target: target, options: DLSOptions(maxStep: JointVector(count: m.jointCount, repeating: 0.01)))
        var ratio: Double?
        for j in 0..<m.jointCount {
            #expect(abs(bounded[j] - q[j]) <= 0.01 + 1e-12)
            let full = free[j] - q[j]
            if abs(full) > 1e-6 {
                let r = (bounded[j] - q[j]) / full
                if let ratio { #expect(abs(r - ratio) < 1e-6) } else { ratio = r }
            }
        }
    }

    @Test func nanInputMeansNoMotion() throws {
        let m = try tiltedRobot()
        var q = JointVector(count: m.jointCount)
        q[0] = 80
        #expect(m.dlsStep(q, target: Vec3(.nan, 0, 0), options: DLSOptions()) == q)
        #expect(m.dlsStep(q, target: Vec3(0, .infinity, 0), options: DLSOptions()) == q)
        var bad = q
        bad[3] = .nan
        let out = m.dlsStep(bad, target: Vec3(0, 0, 100), options: DLSOptions())
        #expect(out.count == bad.count && out[3].isNaN, "a NaN posture must come back untouched, not be 'corrected'")
        #expect(m.dlsStep(JointVector(count: 3), target: Vec3(0, 0, 1), options: DLSOptions()) == JointVector(count: 3))
    }

    @Test func clampingKeepsTheBendingPlane() throws {
        let m = try tiltedRobot()
        var q = JointVector(count: m.jointCount)
        q[2] = 3; q[3] = 4  // far outside the disc, plane atan2(4, 3)
        let c = m.clampToLimits(q)
        let shape = m.calcSectionShape(c, section: 0)
        #expect(abs(shape.bend - m.maxBend[0]) < 1e-9)
        #expect(abs(shape.plane - atan2(4.0, 3.0)) < 1e-12)
    }
}

@Suite struct RobotFileTests {
    func problems(_ yaml: String) -> [ConfigProblem] {
        do {
            _ = try ConfigLoader.decode(RobotDescription.self, yaml: yaml, file: "robot.yaml")
            return []
        } catch {
            guard case .invalid(let file, let p) = error, file == "robot.yaml" else { return [ConfigProblem(field: "?", message: "\(error)")] }
            return p
        }
    }

    var valid: String { (try? String(contentsOf: repoRoot.appendingPathComponent("robots/lumen-2s.yaml"), encoding: .utf8)) ?? "" }

    @Test func exampleRobotFilesLoadAndAgree() throws {
        let yaml = try loadRobot("lumen-2s.yaml")
        let json = try loadRobot("lumen-2s.json")
        #expect(yaml == json)
        #expect(try loadRobot("lumen-1s.yaml").sections.count == 1)
        #expect(yaml.axes.map(\.name) == ["insertion", "roll", "section1.tendon_x", "section1.tendon_y", "section2.tendon_x", "section2.tendon_y"])
    }

    @Test func aMissingFieldIsNamed() {
        let text = valid.replacingOccurrences(of: "  - length_mm: 15\n", with: "  - \n")
        #expect(problems(text) == [ConfigProblem(field: "sections[1].length_mm", message: "missing")])
    }

    @Test func aWrongTypeIsNamed() {
        let text = valid.replacingOccurrences(of: "max_mm: 400", with: "max_mm: far")
        #expect(problems(text).map(\.field) == ["insertion.max_mm"])
    }

    @Test func anUnknownFieldIsNamed() {
        let text = valid.replacingOccurrences(of: "tip_length_mm: 5", with: "tip_length_mm: 5\ntip_lenght_mm: 6")
        #expect(problems(text) == [ConfigProblem(field: "tip_lenght_mm", message: "unknown field")])
    }

    @Test func outOfRangeValuesAreNamed() {
        var text = valid.replacingOccurrences(of: "tendon_radius_mm: 0.8", with: "tendon_radius_mm: -0.8")
        text = text.replacingOccurrences(of: "min_rad: -3.14159", with: "min_rad: 4")
        text = text.replacingOccurrences(of: "position_mm: [0, 0, 0]", with: "position_mm: [0, 0]")
        #expect(Set(problems(text).map(\.field)) == ["sections[1].tendon_radius_mm", "roll", "base.position_mm"])
        // The outer diameter is optional (a 2 mm catheter when absent), and checked when given.
        #expect(problems(valid.replacingOccurrences(of: "tip_length_mm: 5", with: "tip_length_mm: 5\nouter_diameter_mm: 0.9")).isEmpty)
        for bad in ["0", "-1", "12", ".nan"] {
            let thick = valid.replacingOccurrences(of: "tip_length_mm: 5", with: "tip_length_mm: 5\nouter_diameter_mm: \(bad)")
            #expect(problems(thick).map(\.field) == ["outer_diameter_mm"], "outer_diameter_mm: \(bad)")
        }
    }

    @Test func malformedYAMLIsMalformed() {
        do {
            _ = try ConfigLoader.decode(RobotDescription.self, yaml: "name: [x\nbase: {", file: "robot.yaml")
            Issue.record("malformed YAML loaded")
        } catch {
            guard case .malformed(let file, _) = error else { Issue.record("expected .malformed, got \(error)"); return }
            #expect(file == "robot.yaml")
        }
    }
}
