import Core

/// A route through the vessels for the tip to follow, ending at the target point: points every
/// ~1 mm with their arc length. Built outside the cycle; `PathServo` reads it through pointers.
public final class CenterlineRoute: @unchecked Sendable {
    public let count: Int
    let points: UnsafeMutablePointer<Vec3>
    let arc: UnsafeMutablePointer<Double>
    /// Lumen radius (mm) at each point (a large value when unknown: free space).
    let radius: UnsafeMutablePointer<Double>

    public init(_ polyline: [Vec3], radii: [Double]? = nil, spacing: Double = 1) {
        var pts: [Vec3] = [polyline[0]]
        let r0 = radii ?? [Double](repeating: 1e6, count: polyline.count)
        var rs: [Double] = [r0[0]]
        for k in 1..<polyline.count {
            let a = polyline[k - 1], b = polyline[k]
            let n = max(1, Int(((b - a).length / spacing).rounded(.up)))
            for i in 1...n {
                let f = Double(i) / Double(n)
                pts.append(a + (b - a) * f); rs.append(r0[k - 1] + (r0[k] - r0[k - 1]) * f)
            }
        }
        count = pts.count
        points = .allocate(capacity: count); arc = .allocate(capacity: count); radius = .allocate(capacity: count)
        var s = 0.0
        for i in 0..<count {
            if i > 0 { s += (pts[i] - pts[i - 1]).length }
            points[i] = pts[i]; arc[i] = s; radius[i] = rs[i]
        }
    }

    deinit { points.deallocate(); arc.deallocate(); radius.deallocate() }

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
    let radius: UnsafeMutablePointer<Double>
    let count: Int
    public var dls = DLSOptions()
    public var lookahead = 10.0
    public var arrivalTolerance = 0.6
    /// Fraction of each joint's speed limit the servo may use.
    public var speedScale = 0.6
    /// Steer before advancing: further off the route than `steerOnly` × the local lumen radius
    /// (at least 1 mm) the catheter is not pushed further (only steered); beyond the lumen
    /// radius + `backOut` mm it is in another vessel and is pulled back at `backOutSpeed` mm/s.
    public var steerOnly = 0.8
    public var backOut = 4.0
    public var backOutSpeed = 3.0
    /// Diagnostics: the cosine between the model's tip heading and the direction to the
    /// lookahead point, and the insertion speed the step asked for before the advance rules.
    public private(set) var aimCosine = 1.0
    public private(set) var proposedInsertion = 0.0
    public private(set) var offRoute = 0.0
    /// Relative weight of roll in the step (insertion and tendons weigh 1).
    public var rollWeight = 0.05
    /// Advance only while the tip heads along the route: the cosine between the corrected
    /// model's tip heading and the route's direction ahead must be at least this; otherwise
    /// insertion is frozen and bending and roll turn the tip first (a catheter pushed while it
    /// points at the wall goes past a branch instead of into it).
    public var alignment = 0.8
    public private(set) var headingCosine = 1.0
    /// mm of position error one radian of heading error counts as.
    public var headingWeight = 15.0
    var insertionFrozen = false
    public private(set) var reference = JointVector(count: 0)
    public private(set) var progress = 0
    public private(set) var phase = PathServoPhase.holdingNoState

    public init(model: CatheterModel, route: CenterlineRoute) {
        self.model = model
        points = route.points; arc = route.arc; radius = route.radius; count = route.count
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
        let heading = correction.tipPose(model, reference).rotation.c2
        let ahead = k + 4 < count ? k + 4 : count - 1
        let back = progress
        var tangent = points[ahead] - points[back]
        let tl = tangent.length
        tangent = tl > 1e-9 ? tangent * (1 / tl) : heading
        headingCosine = heading.dot(tangent)
        insertionFrozen = headingCosine < alignment
        // Aim from where the estimate says the tip is (the model may lag it by the latency).
        var error = target - tip
        let distance = error.length
        if distance > dls.maxError { error = error * (dls.maxError / distance) }
        // Two tasks in one weighted damped least-squares step: the tip position towards the
        // lookahead point, and the tip heading towards the route's direction (small-angle
        // error, weighted as `headingWeight` mm per rad). With z = W^½ Δq and J̃ = J W^½:
        // z = (J̃ᵀ J̃ + λ² I)⁻¹ J̃ᵀ e. Roll is weighted down — near a straight bend it barely moves
        // the tip, and an unweighted solve swings it from limit to limit.
        var headingColumns = InlineArray<8, Vec3>(repeating: .zero)
        for j in 0..<n {
            var qs = reference
            let step = j == 1 ? 1e-6 : 1e-5
            qs[j] += step
            headingColumns[j] = (correction.tipPose(model, qs).rotation.c2 - heading) * (headingWeight / step)
        }
        var headingError = tangent - heading
        headingError -= heading * headingError.dot(heading)
        headingError = headingError * headingWeight
        var normal = InlineArray<64, Double>(repeating: 0)
        var rhs = InlineArray<8, Double>(repeating: 0)
        for i in 0..<n {
            let wi = squareRootOf(jointWeight(i))
            rhs[i] = (columns[i].dot(error) + headingColumns[i].dot(headingError)) * wi
            for j in 0..<n {
                let wj = squareRootOf(jointWeight(j))
                normal[i * 8 + j] = (columns[i].dot(columns[j]) + headingColumns[i].dot(headingColumns[j])) * wi * wj
            }
            normal[i * 8 + i] += dls.damping * dls.damping
        }
        let z = solve8(&normal, rhs, n)
        // Scale the whole step into the speed limits (keeps its direction).
        var scale = 1.0
        var proposal = reference
        for j in 0..<n {
            let step = z[j] * squareRootOf(jointWeight(j))
            let limit = maxStep[j]
            if abs(step) * scale > limit, abs(step) > 0 { scale = limit / abs(step) }
        }
        for j in 0..<n { proposal[j] = reference[j] + z[j] * squareRootOf(jointWeight(j)) * scale }
        // Steer before advancing (the insertion joint is joint 0).
        proposedInsertion = (proposal[0] - reference[0]) / max(dt, 1e-9)
        aimCosine = distance > 1e-9 ? heading.dot((target - tip) * (1 / distance)) : 1
        let lumen = radius[progress]
        if bestDistance > lumen + backOut {
            proposal[0] = reference[0] - backOutSpeed * dt
        } else if bestDistance > max(1, steerOnly * lumen), proposal[0] > reference[0] {
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

    /// Gauss–Jordan elimination with partial pivoting on the leading n × n block of an 8 × 8
    /// system (zero for a singular one: the servo then holds its reference).
    @_noAllocation @_noLocks
    func solve8(_ a: inout InlineArray<64, Double>, _ b: InlineArray<8, Double>, _ n: Int) -> InlineArray<8, Double> {
        var x = b
        for c in 0..<n {
            var p = c
            var r = c + 1
            while r < n { if abs(a[r * 8 + c]) > abs(a[p * 8 + c]) { p = r }; r += 1 }
            if p != c {
                for k in 0..<8 { let t = a[c * 8 + k]; a[c * 8 + k] = a[p * 8 + k]; a[p * 8 + k] = t }
                let t = x[c]; x[c] = x[p]; x[p] = t
            }
            let pivot = a[c * 8 + c]
            if !(abs(pivot) > 1e-15) { return InlineArray(repeating: 0) }
            for r in 0..<n where r != c {
                let f = a[r * 8 + c] / pivot
                if f == 0 { continue }
                for k in c..<8 { a[r * 8 + k] -= f * a[c * 8 + k] }
                x[r] -= f * x[c]
            }
        }
        for c in 0..<n { x[c] /= a[c * 8 + c] }
        return x
    }

    @_noAllocation @_noLocks @inline(__always)
    func jointWeight(_ j: Int) -> Double {
        if j == 1 { return rollWeight }
        if j == 0 { return insertionFrozen ? 0 : 1 }
        return 1
    }

    @_noAllocation @_noLocks
    mutating func holdAtReference(_ command: inout JointCommand) {
        command.position = reference
        for j in 0..<reference.count { command.velocity[j] = 0 }
        command.mode = .position
        command.enable = true
    }
}
