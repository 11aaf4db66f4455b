import Core

/// One C-arm plane as the estimator sees it: the perspective projection and its Jacobian.
public struct PlaneProjection: Sendable, Equatable {
    let source: Vec3, beam: Vec3, columnAxis: Vec3, rowAxis: Vec3
    let focal: Double, cu: Double, cv: Double

    public init(_ g: CArmGeometry) {
        source = g.source; beam = g.beam; columnAxis = g.columnAxis; rowAxis = g.rowAxis
        focal = g.sourceToDetector / g.pixelSpacing
        cu = g.principalPoint.u; cv = g.principalPoint.v
    }

    /// Pixel (u, v) of `p` and the rows ∂u/∂p, ∂v/∂p.
    @_noAllocation @_noLocks
    func project(_ p: Vec3) -> (uv: SIMD2<Double>, du: Vec3, dv: Vec3) {
        let d = p - source
        let z = d.dot(beam), a = d.dot(columnAxis), b = d.dot(rowAxis)
        let s = focal / z
        let du = (columnAxis * z - beam * a) * (focal / (z * z))
        let dv = (rowAxis * z - beam * b) * (focal / (z * z))
        return (SIMD2(a * s + cu, b * s + cv), du, dv)
    }
}

/// Noise and timing of the estimator.
public struct TipEstimatorSettings: Sendable, Equatable {
    /// Process noise per mm of insertion travel (variance per mm): friction and slack build the
    /// mismatch while the catheter moves.
    // A catheter that buckles or jams loses up to all of the insertion: half a millimetre
    // of σ per millimetre travelled covers that within a few frames.
    public var insertionLossPerMM = 0.25      // mm² / mm
    public var rollPerMM = 1e-3               // rad² / mm
    public var bendPerMM = 5e-4               // (tendon mm)² / mm
    public var offsetPerMM = 0.15             // mm² / mm
    public var orientationPerMM = 2e-4        // rad² / mm
    /// Process noise per mm of tendon travel and per rad of roll travel. A tip pressed against
    /// a wall does not bend as the tendons say, and a shaft twisted in a curved vessel takes
    /// up roll: without this the model is trusted to move the tip by tens of millimetres
    /// where it barely moves, and every image that says so is gated as an outlier.
    public var tendonLossPerMM = 0.05         // (tendon mm)² / tendon mm
    public var offsetPerTendonMM = 4.0        // mm² / tendon mm
    public var rollLossPerRad = 0.05          // rad² / rad
    /// The largest standard deviation each part of the mismatch may reach, and the bound on
    /// its value (insertion and offset in mm, roll and orientation in rad, bend in tendon mm).
    /// A state the images do not see for a while (a tendon offset while the bend sits at its
    /// limit, where the model's tip does not depend on it) would otherwise gather variance
    /// without end, and the first image that sees it again would fling it hundreds of
    /// millimetres.
    public var maxInsertion = 100.0, maxRoll = 3.2, maxBend = 1.6, maxOrientation = 1.5, maxOffset = 200.0
    /// The insertion slip: the fraction of insertion travel that does not reach the tip (a tip
    /// held by a wall, or a shaft taking up slack in a curve). Images arrive 30–150 ms late;
    /// without it the filter corrects the insertion offset at the image's time and then
    /// takes all the travel since as tip motion, so a held tip pushed on comes out ahead of
    /// itself on every cycle. Bound (a slip above 1 would be a tip moving backwards as the
    /// shaft goes in), initial σ, and variance per mm of insertion travel.
    public var maxSlip = 1.5, initialSlip = 0.3, slipPerMM = 0.005
    /// The bend slip: the same for the tendons (the fraction of tendon travel that does not bend
    /// the tip: a tip pressed on a wall, or a bending section held straight by a narrow vessel).
    /// A tendon pulled at its full speed moves the model's tip millimetres within an image's
    /// latency; without it the estimate swings out with every pull and release at a wall.
    /// Variance per mm of tendon travel.
    public var maxBendSlip = 1.5, initialBendSlip = 0.3, bendSlipPerTendonMM = 0.02
    /// Slow drift when still (variance per second, every state).
    public var driftPerSecond = 1e-4
    /// Initial standard deviations of the mismatch.
    public var initialInsertion = 3.0, initialRoll = 0.15, initialBend = 0.05, initialOrientation = 0.1, initialOffset = 3.0
    /// Health: fresh while the last fused image is this recent; coasting up to `coastLimit`
    /// without one; lost beyond, or when the position's σ exceeds `lostSigma`.
    public var freshWindow: Nanoseconds = 300_000_000
    public var coastLimit: Nanoseconds = 2_000_000_000
    public var lostSigma = 5.0
    /// Innovation gate (χ² with 2 or 3 degrees of freedom at 99.9 %).
    public var gate2 = 13.8, gate3 = 16.3
    /// After this many gated measurements in a row the model, not the images, is taken to be
    /// wrong: the mismatch's covariance is widened to its initial size and the measurement is
    /// fused (a track reset). Lone outliers stay gated.
    public var resetAfterGated = 4
    /// Whether a run of gated single-plane pixels may reset the track. With one C-arm they are
    /// all there is. With two, a pixel reaches the estimator alone only when the planes
    /// disagree, i.e. when one of them found something else. A pixel fixes nothing along its
    /// ray, and resets onto such pixels dragged the estimate tens of millimetres off.
    /// Then only 3D points (pairs that agree) may reset.
    public var resetFromPixels = true
    public init() {}
}

/// Why a measurement was not fused.
public enum FusionRejection: UInt8, Sendable, Equatable {
    case invalid, tooOld, fromTheFuture, gated, unknownPlane, noGeometry
    /// The update would have put the mismatch outside what a catheter can do (a linearisation
    /// far from where it holds); it was undone.
    case implausible
}

/// State size: insertion offset (mm), roll offset (rad), two tendon offsets (mm) — added to
/// the measured joints —, a small rotation (rad, rotation vector) of the frame where the
/// bending section starts, and a 3D offset of the tip (mm): the last two stand for the shape
/// the vessels impose on a shaft the model takes to be straight; and the insertion slip (the
/// fraction of insertion travel that does not reach the tip) and the bend slip (that of tendon travel).
@usableFromInline let stateSize = 12
/// The slips' places in the state.
@usableFromInline let insertionSlip = 10, bendSlip = 11
/// The covariance's entries, and the step between its diagonal entries (row-major).
@usableFromInline let covarianceSize = stateSize * stateSize
@usableFromInline let diagonalStep = stateSize + 1

/// An extended Kalman filter on the kinematic mismatch, at the cycle rate.
///
/// The tip is predicted from the encoders through the kinematic model with the estimated
/// mismatch: p = FK(q + δ) + b, where δ (insertion loss, roll wind-up, tendon offsets) and b
/// (the 3D offset the vessel's shape imposes on a straight-shaft model) are random walks
/// whose noise grows with insertion travel. Image measurements are fused at their
/// acquisition time, which is 30–150 ms in the past: every cycle's joints and filter state
/// are kept in a history ring, the measurement updates the entry of its acquisition time,
/// and the later entries are re-propagated to now. A measurement is never fused as if it were
/// current; one older than the history is refused.
///
/// The estimator owns its history ring: it is allocated when the estimator is built (outside
/// the cycle) and freed when the estimator ends. It cannot be copied, so no second value can
/// write the same ring or outlive it.
public struct TipEstimator: ~Copyable, @unchecked Sendable {
    public let model: CatheterModel
    public let settings: TipEstimatorSettings
    let capacity: Int
    /// The history ring, `capacity` entries, owned here.
    let times: UnsafeMutablePointer<Nanoseconds>         // (capacity) ns
    let joints: UnsafeMutablePointer<Double>             // (capacity × 8) mm, rad
    let states: UnsafeMutablePointer<Double>             // (capacity × stateSize) the mismatch
    let covariances: UnsafeMutablePointer<Double>        // (capacity × covarianceSize) its covariance
    let motion: UnsafeMutablePointer<Double>             // (capacity) |Δ insertion| (mm) into each entry
    let tendonMotion: UnsafeMutablePointer<Double>       // (capacity) Σ |Δ tendon| (mm) into each entry
    let rollMotion: UnsafeMutablePointer<Double>         // (capacity) |Δ roll| (rad) into each entry
    let steps: UnsafeMutablePointer<Double>              // (capacity) Δt (s) into each entry
    let plane0: PlaneProjection?
    let plane1: PlaneProjection?
    /// Index of the newest history entry and how many are valid.
    public private(set) var newest = -1
    public private(set) var count = 0
    public private(set) var lastImageAt: Nanoseconds = 0
    public private(set) var startedAt: Nanoseconds = 0
    public private(set) var fused = 0
    public private(set) var rejected = 0
    public private(set) var lastRejection: FusionRejection?
    public private(set) var consecutiveGated = 0
    public private(set) var resets = 0

    /// An estimator for `model` seen by up to two C-arm `planes`, keeping `historyLength` cycles
    /// (at least 16) for late measurements. Allocates: build it outside the cycle.
    public init(model: CatheterModel, planes: [CArmGeometry], settings: TipEstimatorSettings = TipEstimatorSettings(),
                historyLength: Int = 1024) {
        self.model = model
        self.settings = settings
        capacity = max(16, historyLength)
        times = .allocate(capacity: capacity); joints = .allocate(capacity: capacity * 8)
        states = .allocate(capacity: capacity * stateSize); covariances = .allocate(capacity: capacity * stateSize * stateSize)
        motion = .allocate(capacity: capacity); steps = .allocate(capacity: capacity)
        tendonMotion = .allocate(capacity: capacity); rollMotion = .allocate(capacity: capacity)
        tendonMotion.initialize(repeating: 0, count: capacity); rollMotion.initialize(repeating: 0, count: capacity)
        times.initialize(repeating: 0, count: capacity); joints.initialize(repeating: 0, count: capacity * 8)
        states.initialize(repeating: 0, count: capacity * stateSize)
        covariances.initialize(repeating: 0, count: capacity * stateSize * stateSize)
        motion.initialize(repeating: 0, count: capacity); steps.initialize(repeating: 0, count: capacity)
        plane0 = planes.count > 0 ? PlaneProjection(planes[0]) : nil
        plane1 = planes.count > 1 ? PlaneProjection(planes[1]) : nil
    }

    deinit {
        times.deallocate(); joints.deallocate(); states.deallocate(); covariances.deallocate(); motion.deallocate(); steps.deallocate()
        tendonMotion.deallocate(); rollMotion.deallocate()
    }

    /// Starts over at `time` with the joints `q` and the initial uncertainty.
    @_noAllocation @_noLocks
    public mutating func reset(joints q: JointVector, time: Nanoseconds) {
        newest = 0; count = 1; lastImageAt = 0; startedAt = time; fused = 0; rejected = 0
        times[0] = time
        storeJoints(q, at: 0)
        for i in 0..<stateSize { states[i] = 0 }
        setInitialCovariance(covariances)
        motion[0] = 0; steps[0] = 0; tendonMotion[0] = 0; rollMotion[0] = 0
    }

    /// The initial uncertainty of the mismatch, uncorrelated.
    @_noAllocation @_noLocks
    func setInitialCovariance(_ p: UnsafeMutablePointer<Double>) {
        let s = settings
        let d = diagonalStep
        for i in 0..<covarianceSize { p[i] = 0 }
        p[0] = s.initialInsertion * s.initialInsertion
        p[d] = s.initialRoll * s.initialRoll
        p[2 * d] = s.initialBend * s.initialBend; p[3 * d] = s.initialBend * s.initialBend
        for i in 4..<7 { p[i * d] = s.initialOrientation * s.initialOrientation }
        for i in 7..<10 { p[i * d] = s.initialOffset * s.initialOffset }
        p[insertionSlip * d] = s.initialSlip * s.initialSlip
        p[bendSlip * d] = s.initialBendSlip * s.initialBendSlip
    }

    @_noAllocation @_noLocks @inline(__always)
    func storeJoints(_ q: JointVector, at k: Int) {
        for j in 0..<8 { joints[k * 8 + j] = j < q.count ? q[j] : 0 }
    }

    @_noAllocation @_noLocks @inline(__always)
    func jointsAt(_ k: Int) -> JointVector {
        var q = JointVector(count: model.jointCount)
        for j in 0..<model.jointCount { q[j] = joints[k * 8 + j] }
        return q
    }

    /// The process noise added to entry k (from its Δt and joint travel), on the diagonal.
    @_noAllocation @_noLocks @inline(__always)
    func addProcessNoise(to p: UnsafeMutablePointer<Double>, entry k: Int) {
        let s = settings
        let m = motion[k], t = tendonMotion[k]
        let drift = s.driftPerSecond * steps[k]
        let d = diagonalStep
        p[0] += s.insertionLossPerMM * m + drift
        p[d] += s.rollPerMM * m + s.rollLossPerRad * rollMotion[k] + drift
        p[2 * d] += s.bendPerMM * m + s.tendonLossPerMM * t + drift
        p[3 * d] += s.bendPerMM * m + s.tendonLossPerMM * t + drift
        for i in 4..<7 { p[i * d] += s.orientationPerMM * m + drift }
        let offset = s.offsetPerMM * m + s.offsetPerTendonMM * t + drift
        for i in 7..<10 { p[i * d] += offset }
        p[insertionSlip * d] += s.slipPerMM * m + drift
        p[bendSlip * d] += s.bendSlipPerTendonMM * t + drift
        capVariance(p)
    }

    /// Each state's bound (see `maxInsertion`).
    @_noAllocation @_noLocks @inline(__always)
    func bound(_ i: Int) -> Double {
        let s = settings
        switch i {
        case 0: return s.maxInsertion
        case 1: return s.maxRoll
        case 2, 3: return s.maxBend
        case 4, 5, 6: return s.maxOrientation
        case insertionSlip: return s.maxSlip
        case bendSlip: return s.maxBendSlip
        default: return s.maxOffset
        }
    }

    /// Scales the rows and columns of states whose variance passed its cap down to it
    /// (D P D with a diagonal D keeps P positive definite).
    @_noAllocation @_noLocks
    func capVariance(_ p: UnsafeMutablePointer<Double>) {
        for i in 0..<stateSize {
            let cap = bound(i) * bound(i)
            let v = p[i * diagonalStep]
            if v > cap {
                let f = squareRootOf(cap / v)
                for j in 0..<stateSize { p[i * stateSize + j] *= f; p[j * stateSize + i] *= f }
            }
        }
    }

    /// |x| with a non-finite value counted as no travel.
    @_noAllocation @_noLocks @inline(__always)
    func travel(_ x: Double) -> Double { x.isFinite ? (x < 0 ? -x : x) : 0 }

    /// The predict step of one cycle: the new joints at `time`. Returns the estimate.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func predict(joints q: JointVector, time: Nanoseconds) -> TipEstimate {
        if newest < 0 { reset(joints: q, time: time) }
        let previous = newest
        var dt = Double(time - times[previous]) * 1e-9
        if !(dt >= 0) { dt = 0 }
        let m = travel(q[0] - joints[previous * 8])
        var t = 0.0
        var j = 2
        while j < model.jointCount, j < 8 { t += travel(q[j] - joints[previous * 8 + j]); j += 1 }
        let roll = model.jointCount > 1 ? travel(q[1] - joints[previous * 8 + 1]) : 0
        let k = previous + 1 == capacity ? 0 : previous + 1
        newest = k
        if count < capacity { count += 1 }
        times[k] = time
        storeJoints(q, at: k)
        motion[k] = m; steps[k] = dt; tendonMotion[k] = t; rollMotion[k] = roll
        propagate(from: previous, to: k)
        return estimate(now: time)
    }

    /// Entry k's mismatch and covariance from entry j's, one cycle earlier: each slip takes its
    /// share of the joint travel off the joint's offset (x ← F x, P ← F P Fᵀ, with F the
    /// identity but for −Δq at (insertion, insertion slip) and at (tendon, bend slip)), then
    /// the process noise.
    @_noAllocation @_noLocks
    func propagate(from j: Int, to k: Int) {
        let n = stateSize
        let x = states + k * n, P = covariances + k * covarianceSize
        copyDoubles(from: states + j * n, to: x, count: n)
        copyDoubles(from: covariances + j * covarianceSize, to: P, count: covarianceSize)
        // The offsets the slips act on (insertion, the two tendons), their slip and joint travel.
        var travel = SIMD4<Double>(joints[k * 8] - joints[j * 8], 0, 0, 0)
        for t in 2..<4 where t < model.jointCount { travel[t] = joints[k * 8 + t] - joints[j * 8 + t] }
        for r in 0..<4 where r != 1 && !travel[r].isFinite { travel[r] = 0 }
        // Rows of F P first (the slips' rows are not among them), then its columns: (F P) Fᵀ.
        for r in 0..<4 where r != 1 && travel[r] != 0 {
            let slip = r == 0 ? insertionSlip : bendSlip
            x[r] -= travel[r] * x[slip]
            for c in 0..<n { P[r * n + c] -= travel[r] * P[slip * n + c] }
        }
        for r in 0..<4 where r != 1 && travel[r] != 0 {
            let slip = r == 0 ? insertionSlip : bendSlip
            for row in 0..<n { P[row * n + r] -= travel[r] * P[row * n + slip] }
        }
        addProcessNoise(to: P, entry: k)
    }

    /// The tip and its Jacobian with respect to the state (3 × stateSize, by columns) for entry
    /// k's joints: the joint offsets and the rotation by forward differences of the corrected
    /// kinematics, the offset exactly. The slip moves the tip only through the propagation.
    @_noAllocation @_noLocks
    func tipAndJacobian(entry k: Int, into h: inout InlineArray<12, Vec3>) -> Vec3 {
        let q = jointsAt(k)
        let x = states + k * stateSize
        let correction = KinematicCorrection(joints: SIMD4(x[0], x[1], x[2], x[3]), rotation: Vec3(x[4], x[5], x[6]), offset: Vec3(x[7], x[8], x[9]))
        let p = correction.tip(model, q)
        let step = 1e-6
        for j in 0..<7 {
            var c = correction
            if j < 4 { c.joints[j] += step } else { c.rotation[j - 4] += step }
            h[j] = (c.tip(model, q) - p) * (1 / step)
        }
        h[7] = Vec3(1, 0, 0); h[8] = Vec3(0, 1, 0); h[9] = Vec3(0, 0, 1)
        h[insertionSlip] = .zero; h[bendSlip] = .zero
        return p
    }

    /// The estimate at the newest entry.
    @_noAllocation @_noLocks
    public func estimate(now: Nanoseconds) -> TipEstimate {
        if newest < 0 { return TipEstimate(time: now) }
        return estimateAt(newest, now: now)
    }

    @_noAllocation @_noLocks
    func estimateAt(_ k: Int, now: Nanoseconds) -> TipEstimate {
        var h = InlineArray<12, Vec3>(repeating: .zero)
        let p = tipAndJacobian(entry: k, into: &h)
        // Σ = H P Hᵀ (3 × 3).
        let P = covariances + k * covarianceSize
        var c = Mat3.zero
        for a in 0..<stateSize {
            var row = Vec3.zero  // Σ_b P[a][b] h_b
            for b in 0..<stateSize { row += h[b] * P[a * stateSize + b] }
            c.c0 += row * h[a].x; c.c1 += row * h[a].y; c.c2 += row * h[a].z
        }
        let trace = c.c0.x + c.c1.y + c.c2.z
        var health = EstimateHealth.coasting
        let since = lastImageAt > 0 ? now - lastImageAt : now - startedAt
        if lastImageAt > 0, since <= settings.freshWindow { health = .imageFresh }
        if since > settings.coastLimit { health = .lost }
        if !(trace <= 3 * settings.lostSigma * settings.lostSigma) { health = .lost }
        if !p.isFinite { health = .lost }
        return TipEstimate(position: p, covariance: c, health: health, time: now, lastImageAt: lastImageAt)
    }

    /// The history entry for time t: the newest at or before it, or nil when t is older than the
    /// history or newer than the newest entry.
    @_noAllocation @_noLocks
    func entry(at t: Nanoseconds) -> (Int, FusionRejection?) {
        if newest < 0 { return (0, .tooOld) }
        if t > times[newest] { return (0, .fromTheFuture) }
        var k = newest
        var n = 0
        while n < count {
            if times[k] <= t { return (k, nil) }
            k = k == 0 ? capacity - 1 : k - 1
            n += 1
        }
        return (0, .tooOld)
    }

    /// Fuses an image measurement at its acquisition time: a pixel in plane 0 or 1, or a 3D
    /// point (biplane triangulation) with its covariance. Returns why it was refused, if it was.
    /// - Important: cycle-safe: must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func fuse(_ m: TipMeasurement) -> FusionRejection? {
        fuse(m, afterReset: false)
    }

    /// `afterReset`: the mismatch's uncertainty was just widened for this measurement, which is
    /// then fused without the gate. Gating it again would refuse it and drop the widening with
    /// it (it lives at this history entry only), so a model that had drifted far would never be
    /// pulled back: every reset would be undone and the estimate stay lost.
    @_noAllocation @_noLocks
    mutating func fuse(_ m: TipMeasurement, afterReset: Bool) -> FusionRejection? {
        let (k, why) = entry(at: m.acquiredAt)
        if case .some(let reason) = why { return refuse(reason) }
        var h = InlineArray<12, Vec3>(repeating: .zero)
        let p = tipAndJacobian(entry: k, into: &h)
        // Measurement rows (up to 3) over the states, residual and covariance.
        var rows = InlineArray<36, Double>(repeating: 0)
        var residual = Vec3.zero
        var r = Mat3.zero
        var dimension = 0
        if case .some(let x3) = m.position {
            if !x3.isFinite { return refuse(.invalid) }
            dimension = 3
            for s in 0..<stateSize { rows[s] = h[s].x; rows[stateSize + s] = h[s].y; rows[2 * stateSize + s] = h[s].z }
            residual = x3 - p
            r = m.positionCovariance
        } else if case .some(let uv) = m.pixel {
            if !(uv.x.isFinite && uv.y.isFinite) { return refuse(.invalid) }
            var plane: PlaneProjection
            if m.plane == 0, case .some(let g) = plane0 { plane = g } else if m.plane == 1, case .some(let g) = plane1 { plane = g } else {
                return refuse(.unknownPlane)
            }
            let pr = plane.project(p)
            dimension = 2
            for s in 0..<stateSize { rows[s] = pr.du.dot(h[s]); rows[stateSize + s] = pr.dv.dot(h[s]) }
            residual = Vec3(uv.x - pr.uv.x, uv.y - pr.uv.y, 0)
            let c = m.pixelCovariance
            r = Mat3(columns: Vec3(c.xx, c.xy, 0), Vec3(c.xy, c.yy, 0), Vec3(0, 0, 1))
        } else {
            return refuse(.invalid)
        }
        let P = covariances + k * covarianceSize
        // PHᵀ (stateSize × d) and S = H P Hᵀ + R (d × d, padded to 3 × 3 with identity).
        var pht = InlineArray<36, Double>(repeating: 0)
        for a in 0..<stateSize {
            for i in 0..<dimension {
                var sum = 0.0
                for b in 0..<stateSize { sum += P[a * stateSize + b] * rows[i * stateSize + b] }
                pht[a * 3 + i] = sum
            }
        }
        var s = r
        for i in 0..<dimension {
            for j in 0..<dimension {
                var sum = 0.0
                for a in 0..<stateSize { sum += rows[i * stateSize + a] * pht[a * 3 + j] }
                switch j {
                case 0: s.c0[i] += sum
                case 1: s.c1[i] += sum
                default: s.c2[i] += sum
                }
            }
        }
        // S⁻¹ by the adjugate (S is small and well scaled: pixels² or mm²).
        let a0 = s.c1.cross(s.c2), a1 = s.c2.cross(s.c0), a2 = s.c0.cross(s.c1)
        let det = s.c0.dot(a0)
        if !(det > 0) { return refuse(.invalid) }
        let sInv = Mat3(columns: a0 * (1 / det), a1 * (1 / det), a2 * (1 / det))
        let nis = residual.dot(sInv * residual)
        if !nis.isFinite { return refuse(.invalid) }
        if !afterReset, !(nis <= (dimension == 3 ? settings.gate3 : settings.gate2)) {
            if !runCallsForReset(dimension: dimension) { return refuse(.gated) }
            // Track reset: widen the mismatch's uncertainty at this entry and fuse again.
            resets += 1
            let s0 = settings
            // Only the linear part (the 3D offset) and the insertion are widened: a large
            // residual pushed into roll or bending would be fitted by a linearisation far
            // from where it holds.
            P[0] += s0.initialInsertion * s0.initialInsertion * 4
            for i in 7..<10 { P[i * diagonalStep] += s0.initialOffset * s0.initialOffset * 4 }
            return fuse(m, afterReset: true)
        }
        // K = P Hᵀ S⁻¹ (stateSize × d); x += K ν; P = (I − K H) P (I − K H)ᵀ + K R Kᵀ.
        var gain = InlineArray<36, Double>(repeating: 0)
        for a in 0..<stateSize {
            let row = Vec3(pht[a * 3], pht[a * 3 + 1], pht[a * 3 + 2])
            let g = sInv.transposed * row
            gain[a * 3] = g.x; gain[a * 3 + 1] = dimension > 1 ? g.y : 0; gain[a * 3 + 2] = dimension > 2 ? g.z : 0
        }
        let x = states + k * stateSize
        var updated = InlineArray<12, Double>(repeating: 0)
        for a in 0..<stateSize {
            updated[a] = x[a] + gain[a * 3] * residual.x + gain[a * 3 + 1] * residual.y + gain[a * 3 + 2] * residual.z
            if !(abs(updated[a]) <= bound(a)) {
                // Counted with the gated ones: a run of them resets the track. When even the
                // reset's update is implausible, the mismatch is started afresh from this
                // measurement (the linearisation has nothing left to stand on).
                if !afterReset, !runCallsForReset(dimension: dimension) { return refuse(.implausible) }
                consecutiveGated = 0
                return restart(entry: k, at: m)
            }
        }
        for a in 0..<stateSize { x[a] = updated[a] }
        consecutiveGated = 0
        Self.josephUpdate(P, gain: gain, rows: rows, noise: r, dimension: dimension)
        return accept(entry: k, at: m)
    }

    /// Counts a refused measurement towards a track reset: true once `resetAfterGated` have been
    /// refused in a row (the count then starts over). Pixels do not count when `resetFromPixels`
    /// is off.
    @_noAllocation @_noLocks
    mutating func runCallsForReset(dimension: Int) -> Bool {
        if dimension == 2, !settings.resetFromPixels { return false }
        consecutiveGated += 1
        if consecutiveGated < settings.resetAfterGated { return false }
        consecutiveGated = 0
        return true
    }

    /// P ← (I − K H) P (I − K H)ᵀ + K R Kᵀ, then symmetrised. Unlike (I − K H) P, this stays
    /// symmetric and positive for any gain, so the rounding in K (S is inverted by its
    /// adjugate, and with sharp images it is badly conditioned) does not reach P. Each
    /// product goes to its own buffer: the second one summed into the first, row by row, is
    /// (I − K H) P again, but only for the exact optimal gain; with a rounded one the error grew
    /// a thousandfold per image until variances went negative and every image was refused.
    /// `gain` is stateSize × 3 by rows, `rows` d × stateSize (d ≤ 3; the unused rows and gain
    /// columns zero).
    @_noAllocation @_noLocks
    static func josephUpdate(_ P: UnsafeMutablePointer<Double>, gain: InlineArray<36, Double>, rows: InlineArray<36, Double>,
                             noise r: Mat3, dimension: Int) {
        let n = stateSize
        var ikh = InlineArray<144, Double>(repeating: 0)
        for a in 0..<n {
            for b in 0..<n {
                var v = a == b ? 1.0 : 0.0
                for i in 0..<dimension { v -= gain[a * 3 + i] * rows[i * n + b] }
                ikh[a * n + b] = v
            }
        }
        var left = InlineArray<144, Double>(repeating: 0)
        for a in 0..<n {
            for b in 0..<n {
                var v = 0.0
                for c in 0..<n { v += ikh[a * n + c] * P[c * n + b] }
                left[a * n + b] = v
            }
        }
        // P is no longer read below, so the result goes straight into it.
        for a in 0..<n {
            for b in 0...a {
                var v = 0.0
                for c in 0..<n { v += left[a * n + c] * ikh[b * n + c] }
                var w = 0.0
                for c in 0..<n { w += left[b * n + c] * ikh[a * n + c] }
                // K R Kᵀ. For a pixel R is padded to 3 × 3 with a unit third row; K's third
                // column is 0 then, so the padding adds nothing.
                let ka = Vec3(gain[a * 3], gain[a * 3 + 1], gain[a * 3 + 2]), kb = Vec3(gain[b * 3], gain[b * 3 + 1], gain[b * 3 + 2])
                let sym = 0.5 * (v + w) + ka.dot(r * kb)
                P[a * n + b] = sym
                P[b * n + a] = sym
            }
        }
    }

    /// Re-propagates the entries after k from it and counts the measurement as fused.
    @_noAllocation @_noLocks
    mutating func accept(entry k: Int, at m: TipMeasurement) -> FusionRejection? {
        var j = k
        while j != newest {
            let next = j + 1 == capacity ? 0 : j + 1
            propagate(from: j, to: next)
            j = next
        }
        if m.acquiredAt > lastImageAt { lastImageAt = m.acquiredAt }
        fused += 1
        lastRejection = nil
        return nil
    }

    /// Starts the mismatch afresh at entry k: no joint offsets or rotation, the initial
    /// uncertainty, and (for a 3D measurement) the whole difference in the tip offset. A pixel
    /// alone cannot place it; the offset is then kept.
    @_noAllocation @_noLocks
    mutating func restart(entry k: Int, at m: TipMeasurement) -> FusionRejection? {
        let x = states + k * stateSize
        var offset = Vec3(x[7], x[8], x[9])
        if case .some(let p) = m.position {
            offset = p - KinematicCorrection().tip(model, jointsAt(k))
            if !(offset.length <= settings.maxOffset) { return refuse(.implausible) }
        }
        for i in 0..<stateSize { x[i] = 0 }
        x[7] = offset.x; x[8] = offset.y; x[9] = offset.z
        setInitialCovariance(covariances + k * covarianceSize)
        resets += 1
        return accept(entry: k, at: m)
    }

    @_noAllocation @_noLocks
    mutating func refuse(_ reason: FusionRejection) -> FusionRejection {
        rejected += 1
        lastRejection = reason
        return reason
    }

    /// The newest correction of the kinematic model (what the servo steers with).
    @_noAllocation @_noLocks
    public func currentCorrection() -> KinematicCorrection {
        if newest < 0 { return KinematicCorrection() }
        let x = states + newest * stateSize
        return KinematicCorrection(joints: SIMD4(x[0], x[1], x[2], x[3]), rotation: Vec3(x[4], x[5], x[6]), offset: Vec3(x[7], x[8], x[9]))
    }

    /// The current mismatch estimate: insertion, roll, tendon x, tendon y offsets, the rotation,
    /// the 3D offset, the insertion slip and the bend slip.
    public var mismatch: [Double] { newest < 0 ? [] : (0..<stateSize).map { states[newest * stateSize + $0] } }
}

@_noAllocation @_noLocks @inline(__always)
func copyDoubles(from a: UnsafeMutablePointer<Double>, to b: UnsafeMutablePointer<Double>, count: Int) {
    for i in 0..<count { b[i] = a[i] }
}

/// The kinematic model as the estimator corrects it: joint offsets, a rotation of the frame
/// where the bending section starts, and an offset of the tip.
public struct KinematicCorrection: Sendable, Equatable {
    /// Added to insertion, roll and the first two tendon joints.
    public var joints: SIMD4<Double> = .zero
    /// Rotation vector (rad) applied at the start of the first bending section.
    public var rotation: Vec3 = .zero
    /// mm, added to the tip.
    public var offset: Vec3 = .zero

    public init(joints: SIMD4<Double> = .zero, rotation: Vec3 = .zero, offset: Vec3 = .zero) {
        self.joints = joints; self.rotation = rotation; self.offset = offset
    }

    /// The corrected tip position for measured joints `q`.
    @_noAllocation @_noLocks
    public func tip(_ model: CatheterModel, _ q: JointVector) -> Vec3 { tipPose(model, q).translation }

    /// The corrected tip frame (its z axis is the tip's heading); the offset moves it.
    @_noAllocation @_noLocks
    public func tipPose(_ model: CatheterModel, _ q: JointVector) -> Pose {
        var qe = q
        for j in 0..<4 where j < qe.count { qe[j] += joints[j] }
        var t = model.basePose * Pose(rotation: .rotationZ(qe[1]), translation: Vec3(0, 0, qe[0]))
        t = t * Pose(rotation: rotationMatrix(rotation), translation: .zero)
        for i in 0..<model.sectionCount {
            let u = model.curvature(qe, section: i)
            t = t * ConstantCurvature.transform(ux: u.x, uy: u.y, length: model.sectionLength[i])
        }
        var pose = t * Pose(translation: Vec3(0, 0, model.tipLength))
        pose.translation += offset
        return pose
    }

    /// ∂tip/∂q (3 × n, by columns) of the corrected model, by forward differences.
    @_noAllocation @_noLocks
    public func jacobian(_ model: CatheterModel, _ q: JointVector, into columns: inout InlineArray<8, Vec3>) -> Vec3 {
        let p = tip(model, q)
        for j in 0..<model.jointCount {
            var qs = q
            let step = j == 1 ? 1e-6 : 1e-5
            qs[j] += step
            columns[j] = (tip(model, qs) - p) * (1 / step)
        }
        return p
    }
}

/// Rodrigues: the rotation by the rotation vector `w`.
@_noAllocation @_noLocks
func rotationMatrix(_ w: Vec3) -> Mat3 {
    let angle = w.length
    if angle < 1e-12 { return Mat3.identity + Mat3.skew(w) }
    let k = Mat3.skew(w * (1 / angle))
    return Mat3.identity + k * sine(angle) + (k * k) * (1 - cosine(angle))
}
