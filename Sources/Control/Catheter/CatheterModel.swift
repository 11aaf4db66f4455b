import Core

/// The 6 × n Jacobian of the tip, stored inline: column j holds the derivative of the tip
/// position (mm per joint unit) and the tip's angular velocity (rad per joint unit), both in
/// the world frame, with respect to joint j.
public struct Jacobian6: Sendable {
    /// (8 × 6) column-major: column j is (linear xyz, angular xyz).
    @usableFromInline var storage: InlineArray<48, Double>
    public let count: Int

    @_noAllocation @_noLocks
    @inlinable public init(count: Int) {
        storage = InlineArray(repeating: 0)
        self.count = count
    }

    /// (3) mm per joint unit — ∂p_tip/∂q_j.
    @_noAllocation @_noLocks
    @inlinable public func linear(_ j: Int) -> Vec3 { Vec3(storage[6 * j], storage[6 * j + 1], storage[6 * j + 2]) }
    /// (3) rad per joint unit — the tip's angular velocity per unit q̇_j.
    @_noAllocation @_noLocks
    @inlinable public func angular(_ j: Int) -> Vec3 { Vec3(storage[6 * j + 3], storage[6 * j + 4], storage[6 * j + 5]) }
    @_noAllocation @_noLocks
    @inlinable public mutating func set(_ j: Int, linear: Vec3, angular: Vec3) {
        storage[6 * j] = linear.x; storage[6 * j + 1] = linear.y; storage[6 * j + 2] = linear.z
        storage[6 * j + 3] = angular.x; storage[6 * j + 4] = angular.y; storage[6 * j + 5] = angular.z
    }
}

/// The catheter robot's kinematic model: immutable, built once from a robot file, small enough
/// to copy, and free of references, so the cycle can use it without allocating or counting
/// references.
///
/// Chain: T_tip = Base · Tz(d) · Rz(ψ) · S₁(u₁) · [S₂(u₂)] · Tz(L_tip), where d is the
/// insertion, ψ the roll and uᵢ = (ℓxᵢ, ℓyᵢ) / rᵢ the curvature vector that section i's
/// tendon displacements give it (`ConstantCurvature`).
public struct CatheterModel: Sendable {
    /// Joints: 2 + 2 per section (4 or 6).
    public let jointCount: Int
    public let sectionCount: Int
    /// The sheath exit in the world; the catheter leaves along its z axis.
    public let basePose: Pose
    /// (sections) mm — arc lengths (unused entries 0).
    public let sectionLength: SIMD2<Double>
    /// (sections) mm — tendon offsets from the neutral axis.
    public let tendonRadius: SIMD2<Double>
    /// (sections) rad — largest bending angles.
    public let maxBend: SIMD2<Double>
    /// mm — rigid tip segment.
    public let tipLength: Double
    /// (nJoints) mm or rad — travel limits.
    public let lowerLimit: JointVector
    public let upperLimit: JointVector
    /// (nJoints) mm/s or rad/s.
    public let maxVelocity: JointVector

    public init(_ d: RobotDescription) {
        sectionCount = d.sections.count
        jointCount = 2 + 2 * sectionCount
        basePose = Pose(rotation: .rpy(d.base.rpyRad[0], d.base.rpyRad[1], d.base.rpyRad[2]),
                        translation: Vec3(d.base.positionMM[0], d.base.positionMM[1], d.base.positionMM[2]))
        var len = SIMD2<Double>(0, 0), rad = SIMD2<Double>(1, 1), bend = SIMD2<Double>(0, 0)
        for (i, s) in d.sections.enumerated() {
            len[i] = s.lengthMM; rad[i] = s.tendonRadiusMM; bend[i] = s.maxBendRad
        }
        sectionLength = len; tendonRadius = rad; maxBend = bend
        tipLength = d.tipLengthMM
        let axes = d.axes
        lowerLimit = JointVector(axes.map(\.lower))
        upperLimit = JointVector(axes.map(\.upper))
        maxVelocity = JointVector(axes.map(\.maxVelocity))
    }

    /// Section `i`'s curvature vector (ux, uy) in rad, from the tendon displacements in `q`.
    @_noAllocation @_noLocks
    @inlinable public func curvature(_ q: JointVector, section i: Int) -> SIMD2<Double> {
        SIMD2(q[2 + 2 * i], q[3 + 2 * i]) / tendonRadius[i]
    }

    /// Section `i`'s bending angle θ (rad, ≥ 0) and bending-plane angle φ (rad) in the rolled
    /// frame; φ is 0 for a straight section.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func calcSectionShape(_ q: JointVector, section i: Int) -> (bend: Double, plane: Double) {
        let u = curvature(q, section: i)
        let theta = squareRootOf(u.x * u.x + u.y * u.y)
        return (theta, theta > 0 ? arcTangent2(u.y, u.x) : 0)
    }

    /// The tip frame in the world.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func calcTipPose(_ q: JointVector) -> Pose {
        var t = basePose * Pose(rotation: .rotationZ(q[1]), translation: Vec3(0, 0, q[0]))
        for i in 0..<sectionCount {
            let u = curvature(q, section: i)
            t = t * ConstantCurvature.transform(ux: u.x, uy: u.y, length: sectionLength[i])
        }
        return t * Pose(translation: Vec3(0, 0, tipLength))
    }

    /// The tip frame and the analytic 6 × n Jacobian together (the Jacobian needs the frames
    /// anyway), by the product rule over the chain.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func calcTipPoseAndJacobian(_ q: JointVector, into jac: inout Jacobian6) -> Pose {
        let tipOffset = Pose(translation: Vec3(0, 0, tipLength))
        // Frames before each section (prefix) and the section derivatives.
        let afterRoll = basePose * Pose(rotation: .rotationZ(q[1]), translation: Vec3(0, 0, q[0]))
        let u0 = curvature(q, section: 0)
        let d0 = ConstantCurvature.derivatives(ux: u0.x, uy: u0.y, length: sectionLength[0])
        var d1 = d0
        var hasSecond = false
        if sectionCount > 1 {
            let u1 = curvature(q, section: 1)
            d1 = ConstantCurvature.derivatives(ux: u1.x, uy: u1.y, length: sectionLength[1])
            hasSecond = true
        }
        let afterS0 = afterRoll * d0.pose
        let tip: Pose
        // Suffixes: the tip in the frame after each factor.
        let suffixAfterS1 = tipOffset
        let suffixAfterS0 = hasSecond ? d1.pose * tipOffset : tipOffset
        tip = afterS0 * suffixAfterS0
        let pTip = tip.translation

        // Insertion: the whole distal chain slides along the base z axis.
        let axis = basePose.rotation.c2
        jac.set(0, linear: axis, angular: .zero)
        // Roll: a rotation about that axis through the point the insertion reached.
        jac.set(1, linear: axis.cross(pTip - afterRoll.translation), angular: axis)

        // Section 0, then section 1: dp = A.R (dS.R C.p + dS.p), ω = A.R vee(dS.R S.Rᵀ).
        var prefix = afterRoll
        var d = d0
        var suffix = suffixAfterS0
        for i in 0..<sectionCount {
            if i == 1 {
                prefix = afterS0
                d = d1
                suffix = suffixAfterS1
            }
            let invR = 1 / tendonRadius[i]
            let a = prefix.rotation
            let lx = a * (d.dRx * suffix.translation + d.dpx) * invR
            let ly = a * (d.dRy * suffix.translation + d.dpy) * invR
            let wx = a * (d.dRx * d.pose.rotation.transposed).vee * invR
            let wy = a * (d.dRy * d.pose.rotation.transposed).vee * invR
            jac.set(2 + 2 * i, linear: lx, angular: wx)
            jac.set(3 + 2 * i, linear: ly, angular: wy)
        }
        return tip
    }

    /// `q` inside the travel limits and each section's tendon displacement inside its bending
    /// disc |u| ≤ max bend (scaled back along its direction, so the bending plane is kept).
    /// A NaN joint becomes its lower limit.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func clampToLimits(_ q: JointVector) -> JointVector {
        var out = q
        for j in 0..<jointCount where q[j].isNaN { out[j] = lowerLimit[j] }
        // The disc first: the tendon box circumscribes it, so clamping the box first would turn
        // the bending plane toward a corner.
        for i in 0..<sectionCount {
            let lx = out[2 + 2 * i], ly = out[3 + 2 * i]
            let r = squareRootOf(lx * lx + ly * ly)
            let limit = maxBend[i] * tendonRadius[i]
            if r > limit {
                let k = limit / r
                out[2 + 2 * i] = lx * k
                out[3 + 2 * i] = ly * k
            }
        }
        for j in 0..<jointCount { out[j] = min(max(out[j], lowerLimit[j]), upperLimit[j]) }
        return out
    }

    /// True when `q` is within the travel limits and bending discs (to a tolerance).
    public func isWithinLimits(_ q: JointVector, tolerance: Double = 1e-9) -> Bool {
        for j in 0..<jointCount where q[j] < lowerLimit[j] - tolerance || q[j] > upperLimit[j] + tolerance { return false }
        for i in 0..<sectionCount {
            let u = curvature(q, section: i)
            if squareRootOf(u.x * u.x + u.y * u.y) > maxBend[i] * (1 + 1e-9) + tolerance { return false }
        }
        return true
    }
}
