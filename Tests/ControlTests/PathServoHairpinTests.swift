import Core
import Foundation
import Testing
@testable import Control

/// The reverse-curve engagement of a hairpin take-off: found from the route's centerline, then
/// past the opening, the bend turned back with insertion held, a slow withdrawal until the tip is
/// in the branch, and a bounded number of attempts before a typed failure. On a simulated clock
/// (1 ms cycles) with the kinematic model.
@Suite("Path servo hairpin")
struct PathServoHairpinTests {
    static let dt = 1e-3

    /// A route straight along `axis` for `straight` mm from `start`, then a branch leaving at
    /// `angle` (rad) from the way the route came, `branch` mm long, with its lumen radii.
    static func route(from start: Vec3, axis: Vec3, across: Vec3, straight: Double, angle: Double, branch: Double = 40) -> [(point: Vec3, radius: Double)] {
        var out: [(point: Vec3, radius: Double)] = []
        for i in 0...Int(straight / 2) { out.append((start + axis * (2 * Double(i)), 11)) }
        let corner = start + axis * straight
        let out1 = axis * cos(angle) + across * sin(angle)
        for i in 1...Int(branch / 2) { out.append((corner + out1 * (2 * Double(i)), 6)) }
        return out
    }

    @Test("Take-offs sharper than the threshold are found where the branch leaves, with their angle; gentler ones are not")
    func findsSharpTakeOffsOnly() {
        let axis = Vec3(0, 0, 1), across = Vec3(1, 0, 0)
        let sharp = Self.route(from: .zero, axis: axis, across: across, straight: 60, angle: 110 * .pi / 180)
        let threshold = 100 * Double.pi / 180
        let found = HairpinCorner.find(in: sharp, sharperThan: threshold)
        let corner = found?.point ?? Vec3(.nan, .nan, .nan)
        let angle = found?.angle ?? .nan
        #expect((corner - Vec3(0, 0, 60)).length < 1e-9, "corner at \(corner)")
        #expect(abs(angle - 110 * .pi / 180) < 0.01, "angle \(angle * 180 / .pi)°")
        #expect(found?.parentRadius == 11 && found?.branchRadius == 6)
        let gentle = Self.route(from: .zero, axis: axis, across: across, straight: 60, angle: 90 * .pi / 180)
        #expect(HairpinCorner.find(in: gentle, sharperThan: threshold) == nil)
        // Too short to judge, or degenerate: nothing planned, no trap.
        #expect(HairpinCorner.find(in: Array(sharp.prefix(2)), sharperThan: threshold) == nil)
        #expect(HairpinCorner.find(in: sharp.map { (Vec3.zero, $0.radius) }, sharperThan: threshold) == nil)
        #expect(HairpinCorner.find(in: sharp, sharperThan: .nan) == nil)
    }

    /// A servo on a hairpin route from the tip of `q` along its heading; the corner 30 mm ahead.
    static func hairpinServo(_ q: JointVector) throws -> PathServo {
        let model = CatheterModel(try loadRobot("lumen-1s.yaml"))
        let pose = model.calcTipPose(q)
        let raw = Self.route(from: pose.translation, axis: pose.rotation.c2, across: pose.rotation.c0, straight: 30, angle: 120 * .pi / 180)
        let corner = try #require(HairpinCorner.find(in: raw, sharperThan: 100 * .pi / 180))
        var servo = PathServo(model: model, route: CenterlineRoute(CenterlineRoute.roundingCorners(raw).map(\.point), radii: CenterlineRoute.roundingCorners(raw).map(\.radius)))
        servo.rollWeight = 0
        servo.planHairpin(corner)
        servo.reset(to: q)
        return servo
    }

    @Test("Planned for a hairpin, the servo goes past the opening, hooks with insertion held, withdraws slowly, and follows on once the tip is in the branch")
    func engagesWithAReverseCurve() throws {
        let q = JointVector([100, 0, 0, 0])
        var servo = try Self.hairpinServo(q)
        let plan = servo.hairpin
        let corner = try #require(plan)
        let model = servo.model
        var command = JointCommand(jointCount: 4)
        var phases: [PathServoPhase] = []
        var furthestPast = -Double.infinity
        var hookInsertion: Double?, lastEngaging: Double?
        var hookedTurn = 0.0
        for k in 0..<30_000 {
            // The tip is where the kinematic model puts it: nothing in the way.
            let tip = model.calcTipPose(servo.reference).translation
            servo.update(estimate: TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                         correction: KinematicCorrection(), dt: Self.dt, command: &command)
            let phase = servo.phase
            if phases.last != phase { phases.append(phase) }
            let insertion = servo.reference[0]
            switch phase {
            case .overshooting:
                furthestPast = max(furthestPast, (tip - corner.point).dot(corner.incoming))
            case .hooking:
                if hookInsertion == nil { hookInsertion = insertion }
                #expect(insertion == hookInsertion, "insertion moved while hooking")
                hookedTurn = model.calcTipPose(servo.reference).rotation.c2.dot(corner.outgoing)
            case .engaging:
                if let last = lastEngaging { #expect(insertion < last, "not withdrawing while engaging") }
                #expect((lastEngaging ?? insertion) - insertion <= servo.engageSpeed * Self.dt + 1e-9)
                lastEngaging = insertion
            default:
                break
            }
            if phase == .arrived || phase == .gaveUp || servo.hairpinStage == .engaged { break }
        }
        let seen = phases.filter { $0 != .following }
        #expect(Array(seen.prefix(3)) == [.overshooting, .hooking, .engaging], "phases \(phases)")
        // Engaged at the first attempt: following the route up the branch again, nothing failed.
        let engagingEnd = phases.lastIndex(of: .engaging) ?? phases.count
        #expect(engagingEnd + 1 < phases.count && phases[engagingEnd + 1] == .following, "phases \(phases)")
        let failure = servo.failure
        #expect(failure == nil && servo.hairpinStage == .engaged, "phases \(phases), tries \(servo.hairpinTries)")
        // Past the opening by about the planned overshoot before the hook.
        let overshoot = servo.hairpinOvershoot * corner.parentRadius
        #expect(furthestPast >= overshoot - 1.5, "only \(furthestPast) mm past the opening")
        // The hook turned the tip from the way it came towards the branch (cos 120° = −0.5 at the start).
        #expect(hookedTurn > 0.3, "heading · branch \(hookedTurn) after hooking")
        #expect(servo.hairpinTries == 0)
    }

    @Test("Without a plan the servo never leaves the route for the manoeuvre")
    func noPlanNoManoeuvre() throws {
        let q = JointVector([100, 0, 0, 0])
        let model = CatheterModel(try loadRobot("lumen-1s.yaml"))
        let pose = model.calcTipPose(q)
        let raw = Self.route(from: pose.translation, axis: pose.rotation.c2, across: pose.rotation.c0, straight: 30, angle: 120 * .pi / 180)
        var servo = PathServo(model: model, route: CenterlineRoute(raw.map(\.point), radii: raw.map(\.radius)))
        servo.reset(to: q)
        var command = JointCommand(jointCount: 4)
        for k in 0..<10_000 {
            let tip = model.calcTipPose(servo.reference).translation
            servo.update(estimate: TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                         correction: KinematicCorrection(), dt: Self.dt, command: &command)
            let phase = servo.phase
            #expect(phase != .overshooting && phase != .hooking && phase != .engaging)
        }
    }

    @Test("A tip that never gets into the branch is tried hairpinAttempts times, then the servo gives up with the typed failure and holds")
    func boundedAttemptsThenTypedFailure() throws {
        let q = JointVector([100, 0, 0, 0])
        var servo = try Self.hairpinServo(q)
        let plan = servo.hairpin
        let corner = try #require(plan)
        // A tip that stays where it is (caught: whatever moves goes into slack).
        let tip = servo.model.calcTipPose(q).translation
        var command = JointCommand(jointCount: 4)
        var hooks = 0, wasHooking = false, gaveUpAt: Int?
        var lowest = q[0]
        for k in 0..<400_000 {
            servo.update(estimate: TipEstimate(position: tip, health: .imageFresh, time: Nanoseconds(k) * 1_000_000),
                         correction: KinematicCorrection(), dt: Self.dt, command: &command)
            let hooking = servo.phase == .hooking
            if hooking, !wasHooking { hooks += 1 }
            wasHooking = hooking
            lowest = min(lowest, servo.reference[0])
            if servo.phase == .gaveUp { gaveUpAt = k; break }
        }
        let at = try #require(gaveUpAt, "never gave up (tries \(servo.hairpinTries))")
        #expect(hooks == servo.hairpinAttempts)
        guard case .noProgress(let n, let arc, let length) = servo.failure else {
            Issue.record("failure \(String(describing: servo.failure))"); return
        }
        #expect(n == servo.hairpinAttempts)
        // The corner on the rounded route, which cuts it short (the raw corner is 30 mm on).
        #expect(arc > 10 && arc < 30 && length > 50, "corner at \(arc) of \(length) mm (planned at \(corner.point))")
        // Each withdrawal is bounded: never more than the overshoot and two parent radii per attempt.
        let bound = Double(servo.hairpinAttempts) * (servo.hairpinOvershoot + 2) * corner.parentRadius + 1
        #expect(q[0] - lowest <= bound, "withdrew \(q[0] - lowest) mm")
        let held = servo.reference
        for k in 0..<1000 {
            servo.update(estimate: TipEstimate(position: tip + Vec3(0, 0, 0.01 * Double(k)), health: .imageFresh, time: Nanoseconds(at + k) * 1_000_000),
                         correction: KinematicCorrection(), dt: Self.dt, command: &command)
        }
        let heldNow = servo.reference, phaseNow = servo.phase
        #expect(heldNow == held && phaseNow == .gaveUp)
        servo.reset(to: q)
        let failureAfter = servo.failure, triesAfter = servo.hairpinTries
        #expect(failureAfter == nil && triesAfter == 0)
    }
}
