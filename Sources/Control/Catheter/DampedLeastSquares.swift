import CEigen
import Core

/// Settings of the damped-least-squares inverse step.
public struct DLSOptions: Sendable, Equatable {
    /// Which linear solver does the damped 3 × 3 solve.
    public enum Solver: Sendable, Equatable {
        /// Plain Swift on SIMD3 columns (the cycle's default: see `dlsStep`).
        case swift
        /// Eigen 3.4's LDLT through the C bridge.
        case eigen
    }

    /// mm — damping λ: the step is Jᵀ(JJᵀ + λ²I)⁻¹e. Larger is calmer near singularities
    /// (straight sections, where roll cannot move the tip), smaller converges faster.
    public var damping: Double
    /// mm — the error one step aims to remove at most; larger errors are shortened to this
    /// length (same direction), so a far target is approached in steps the linearisation holds
    /// for instead of one wild leap (a roll flung from one limit to the other, say).
    public var maxError: Double
    /// (nJoints) relative joint weights; empty means all 1. A weight of 0 freezes a joint.
    public var weights: JointVector
    /// (nJoints) largest change of each joint in one step (mm or rad); empty means no bound.
    /// The whole step is scaled down together, so its direction is kept.
    public var maxStep: JointVector
    public var solver: Solver

    @inlinable public init(damping: Double = 0.2, maxError: Double = 5, weights: JointVector = JointVector(count: 0),
                maxStep: JointVector = JointVector(count: 0), solver: Solver = .swift) {
        self.damping = damping
        self.maxError = maxError
        self.weights = weights
        self.maxStep = maxStep
        self.solver = solver
    }
}

extension CatheterModel {
    /// One damped-least-squares step of the tip position toward `target`: returns the next
    /// joint vector, inside the travel limits and bending discs.
    ///
    /// Joint limits by the clamping loop: solve; any joint the step would carry past a limit is
    /// fixed at that limit, its share of the motion subtracted from the error, and the rest
    /// solved again (at most once per joint), so joints at a limit stop pulling the solution
    /// off the target. A section whose tendons would leave their bending disc is fixed the same
    /// way, on the disc, keeping the part of its step that slides along the disc's edge.
    ///
    /// Bad input is handled here, where it enters: a NaN or infinite joint or target, or a
    /// joint vector of the wrong size, returns `q` unchanged (no motion).
    ///
    /// The 3 × 3 solve is plain Swift by default: `lumen bench kinematics` measures it against
    /// Eigen through the bridge, and for a system this small Eigen pays for the C call and the
    /// dynamic-size set-up more than it saves.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func dlsStep(_ q: JointVector, target: Vec3, options: DLSOptions) -> JointVector {
        guard q.count == jointCount, q.isFinite, target.isFinite, options.damping.isFinite else { return q }
        let n = jointCount
        var jac = Jacobian6(count: n)
        let tip = calcTipPoseAndJacobian(q, into: &jac)
        var error = target - tip.translation
        let distance = error.length
        if distance > options.maxError, options.maxError > 0 { error = error * (options.maxError / distance) }

        var weight = JointVector(count: n, repeating: 1)
        if options.weights.count == n {
            for i in 0..<n { weight[i] = max(0, options.weights[i]) }
        }
        var dq = JointVector(count: n)
        var residual = error
        var fixedMask: UInt16 = 0
        let lambda2 = options.damping * options.damping

        var step = JointVector(count: n)
        for _ in 0...n {
            guard solveDampedStep(jac, weight: weight, error: residual, lambda2: lambda2, solver: options.solver, into: &step) else {
                return q
            }
            var newlyFixed = false
            // Bending discs: a section whose step would leave its disc is fixed on the disc,
            // keeping the step's sliding along the edge and dropping its push outward.
            for i in 0..<sectionCount {
                let jx = 2 + 2 * i, jy = jx + 1
                if fixedMask & (1 << jx) != 0 { continue }
                let lx = q[jx], ly = q[jy]
                var dx = step[jx], dy = step[jy]
                let limit = maxBend[i] * tendonRadius[i]
                let nx = lx + dx, ny = ly + dy
                if nx * nx + ny * ny <= limit * limit { continue }
                let r = squareRootOf(lx * lx + ly * ly)
                if r < limit * (1 - 1e-9) {
                    // Inside: go as far along the step as the disc allows (|ℓ + t d| = limit).
                    let a = dx * dx + dy * dy, b = lx * dx + ly * dy, c = lx * lx + ly * ly - limit * limit
                    let t = (-b + squareRootOf(max(0, b * b - a * c))) / a
                    dx *= t; dy *= t
                } else {
                    // On the edge: keep the slide along it, drop the push outward.
                    let outward = (dx * lx + dy * ly) / r
                    if outward > 0 { dx -= outward * lx / r; dy -= outward * ly / r }
                }
                var fx = lx + dx, fy = ly + dy
                let fr = squareRootOf(fx * fx + fy * fy)
                if fr > limit { fx *= limit / fr; fy *= limit / fr }
                dq[jx] = fx - lx
                dq[jy] = fy - ly
                residual = residual - jac.linear(jx) * dq[jx] - jac.linear(jy) * dq[jy]
                weight[jx] = 0; weight[jy] = 0
                fixedMask |= (1 << jx) | (1 << jy)
                newlyFixed = true
            }
            for i in 0..<n where fixedMask & (1 << i) == 0 {
                dq[i] = step[i]
                let next = q[i] + step[i]
                var limit = next
                if next > upperLimit[i] { limit = upperLimit[i] }
                if next < lowerLimit[i] { limit = lowerLimit[i] }
                if limit != next {
                    // Fix the joint at its limit (or where it is, if it already sits past it).
                    let fixedStep = step[i] > 0 ? max(0, limit - q[i]) : min(0, limit - q[i])
                    dq[i] = fixedStep
                    residual = residual - jac.linear(i) * fixedStep
                    weight[i] = 0
                    fixedMask |= 1 << i
                    newlyFixed = true
                }
            }
            if !newlyFixed { break }
        }

        if options.maxStep.count == n {
            var scale = 1.0
            for i in 0..<n where options.maxStep[i] >= 0 {
                let a = abs(dq[i])
                if a > options.maxStep[i] { scale = min(scale, options.maxStep[i] / a) }
            }
            for i in 0..<n { dq[i] *= scale }
        }
        var next = q
        for i in 0..<n { next[i] += dq[i] }
        return clampToLimits(next)
    }

    /// dq = W Jᵀ (J W Jᵀ + λ² I)⁻¹ e over the position rows; false if the system is singular.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable func solveDampedStep(_ jac: Jacobian6, weight: JointVector, error: Vec3, lambda2: Double,
                                    solver: DLSOptions.Solver, into dq: inout JointVector) -> Bool {
        switch solver {
        case .swift:
            var a = Mat3.identity * lambda2
            for i in 0..<jac.count {
                let j = jac.linear(i)
                a = a + Mat3.outer(j, j * weight[i])
            }
            guard let y = a.solve(error) else { return false }
            for i in 0..<jac.count { dq[i] = weight[i] * jac.linear(i).dot(y) }
            return true
        case .eigen:
            return _unsafePerformance { eigenDampedStep(jac, weight: weight, error: error, lambda: squareRootOf(lambda2), into: &dq) }
        }
    }
}

/// The same step through Eigen's LDLT via the C bridge, with J, W and e in a stack buffer:
/// what calling Eigen from the cycle would cost.
@usableFromInline func eigenDampedStep(_ jac: Jacobian6, weight: JointVector, error: Vec3, lambda: Double,
                                       into dq: inout JointVector) -> Bool {
    let n = jac.count
    return withUnsafeTemporaryAllocation(of: Double.self, capacity: 3 * 8 + 8 + 3 + 8) { buf -> Bool in
        let j = buf.baseAddress!
        let w = j + 24, e = w + 8, out = e + 3
        for r in 0..<3 {
            for c in 0..<n { j[r * n + c] = jac.linear(c)[r] }
        }
        for c in 0..<n { w[c] = weight[c] }
        e[0] = error.x; e[1] = error.y; e[2] = error.z
        guard lumen_eigen_dls(j, 3, Int32(n), e, w, lambda, out) == 0 else { return false }
        for c in 0..<n { dq[c] = out[c] }
        return true
    }
}
