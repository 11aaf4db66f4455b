import Core

/// A route through the vessels for the tip to follow, ending at the target point: points every
/// ~1 mm with their arc length. Built outside the cycle; `PathServo` reads it through pointers.
public final class CenterlineRoute: @unchecked Sendable {
    public let count: Int
    let points: UnsafeMutablePointer<Vec3>
    let arc: UnsafeMutablePointer<Double>

    public init(_ polyline: [Vec3], spacing: Double = 1) {
        var pts: [Vec3] = [polyline[0]]
        for k in 1..<polyline.count {
            let a = polyline[k - 1], b = polyline[k]
            let n = max(1, Int(((b - a).length / spacing).rounded(.up)))
            for i in 1...n { pts.append(a + (b - a) * (Double(i) / Double(n))) }
        }
        count = pts.count
        points = .allocate(capacity: count); arc = .allocate(capacity: count)
        var s = 0.0
        for i in 0..<count {
            if i > 0 { s += (pts[i] - pts[i - 1]).length }
            points[i] = pts[i]; arc[i] = s
        }
    }

    deinit { points.deallocate(); arc.deallocate() }

    public var target: Vec3 { points[count - 1] }
    public var length: Double { arc[count - 1] }
    public var polyline: [Vec3] { (0..<count).map { points[$0] } }
}

/// Why the servo is doing what it does this cycle.
public enum PathServoPhase: UInt8, Sendable, Equatable {
    case following = 0, arrived = 1, holdingLost = 2, holdingNoState = 3
}

/// Drives the tip along a centerline route to its end, from the fused estimate: each cycle
/// the target is the route point `lookahead` mm beyond the estimate's progress along it, and
/// one damped-least-squares step through the Jacobian of the kinematic model as the estimator
/// corrected it (joint offsets, the rotation where the bending section starts, the tip offset)
/// moves the joint reference towards it, bounded by the joints' speed limits. The correction
/// matters: once the shaft follows a curved vessel, the straight-shaft model would bend the
/// tip the wrong way. When the estimate is lost the reference stops where it is (hold); at the target
/// (within `arrivalTolerance`) the servo holds.
public struct PathServo: @unchecked Sendable {
    public let model: CatheterModel
    let points: UnsafeMutablePointer<Vec3>
    let arc: UnsafeMutablePointer<Double>
    let count: Int
    public var dls = DLSOptions()
    public var lookahead = 10.0
    public var arrivalTolerance = 0.6
    /// Fraction of each joint's speed limit the servo may use.
    public var speedScale = 0.6
    /// Steer before advancing: beyond `steerOnly` mm off the route the catheter is not pushed
    /// further (only steered); beyond `backOut` mm it is pulled back at `backOutSpeed` mm/s, out
    /// of a wrong branch, until the tip is back near the route.
    public var steerOnly = 3.0
    public var backOut = 6.0
    public var backOutSpeed = 3.0
    public private(set) var offRoute = 0.0
    /// Relative weight of roll in the step (insertion and tendons weigh 1).
    public var rollWeight = 0.05
    public private(set) var reference = JointVector(count: 0)
    public private(set) var progress = 0
    public private(set) var phase = PathServoPhase.holdingNoState

    public init(model: CatheterModel, route: CenterlineRoute) {
        self.model = model
        points = route.points; arc = route.arc; count = route.count
    }

    public mutating func reset(to q: JointVector) {
        reference = q
        progress = 0
        phase = .following
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func update(estimate: TipEstimate, correction: KinematicCorrection, dt: Double,
                                command: inout JointCommand) {
        if reference.count != model.jointCount {
            phase = .holdingNoState
            command.setHold(enable: true)
            return
        }
        if estimate.health == .lost {
            phase = .holdingLost
            holdAtReference(&command)
            return
        }
        let tip = estimate.position
        // Progress: the nearest route point, searched a little back and well ahead of the last.
        var best = progress, bestDistance = Double.infinity
        var i = progress - 20 > 0 ? progress - 20 : 0
        let end = progress + 200 < count ? progress + 200 : count
        while i < end {
            let d = (points[i] - tip).length
            if d < bestDistance { bestDistance = d; best = i }
            i += 1
        }
        progress = best
        offRoute = bestDistance
        let goal = points[count - 1]
        if (goal - tip).length <= arrivalTolerance, progress + 5 >= count {
            phase = .arrived
            holdAtReference(&command)
            return
        }
        phase = .following
        var k = progress
        let want = arc[progress] + lookahead
        while k + 1 < count, arc[k] < want { k += 1 }
        let target = points[k]
        let n = reference.count
        var maxStep = model.maxVelocity
        for j in 0..<n { maxStep[j] *= dt * speedScale }
        // J (3 × n) of the corrected model at the reference; Δq = Jᵀ (J Jᵀ + λ² I)⁻¹ e.
        var columns = InlineArray<8, Vec3>(repeating: .zero)
        _ = correction.jacobian(model, reference, into: &columns)
        // Aim from where the estimate says the tip is (the model may lag it by the latency).
        var error = target - tip
        let distance = error.length
        if distance > dls.maxError { error = error * (dls.maxError / distance) }
        // Weighted: Δq = W Jᵀ (J W Jᵀ + λ² I)⁻¹ e. Roll is weighted down — near a straight bend
        // it barely moves the tip, and an unweighted solve swings it from limit to limit.
        var jjt = Mat3.zero
        for j in 0..<n {
            let c = columns[j] * jointWeight(j)
            jjt.c0 += c * columns[j].x; jjt.c1 += c * columns[j].y; jjt.c2 += c * columns[j].z
        }
        jjt.c0.x += dls.damping * dls.damping; jjt.c1.y += dls.damping * dls.damping; jjt.c2.z += dls.damping * dls.damping
        let a0 = jjt.c1.cross(jjt.c2), a1 = jjt.c2.cross(jjt.c0), a2 = jjt.c0.cross(jjt.c1)
        let det = jjt.c0.dot(a0)
        var y = Vec3.zero
        if det > 0 { y = Mat3(columns: a0 * (1 / det), a1 * (1 / det), a2 * (1 / det)) * error }
        // Scale the whole step into the speed limits (keeps its direction).
        var scale = 1.0
        var proposal = reference
        for j in 0..<n {
            let step = columns[j].dot(y) * jointWeight(j)
            let limit = maxStep[j]
            if abs(step) * scale > limit, abs(step) > 0 { scale = limit / abs(step) }
        }
        for j in 0..<n { proposal[j] = reference[j] + columns[j].dot(y) * jointWeight(j) * scale }
        // Steer before advancing (the insertion joint is joint 0).
        if bestDistance > backOut {
            proposal[0] = reference[0] - backOutSpeed * dt
        } else if bestDistance > steerOnly, proposal[0] > reference[0] {
            proposal[0] = reference[0]
        }
        let limited = model.clampToLimits(proposal)
        for j in 0..<reference.count {
            command.velocity[j] = dt > 0 ? (limited[j] - reference[j]) / dt : 0
        }
        reference = limited
        command.position = reference
        command.mode = .position
        command.enable = true
    }

    @_noAllocation @_noLocks @inline(__always)
    func jointWeight(_ j: Int) -> Double { j == 1 ? rollWeight : 1 }

    @_noAllocation @_noLocks
    mutating func holdAtReference(_ command: inout JointCommand) {
        command.position = reference
        for j in 0..<reference.count { command.velocity[j] = 0 }
        command.mode = .position
        command.enable = true
    }
}
