import Core

/// The monitor's immutable model, built once from `SafetyLimits` at start-up: plain values and
/// inline storage only, so `Monitor.step` can read it without allocating or counting references.
public struct MonitorModel: Sendable {
    @inlinable public static var maxSections: Int { 2 }
    @inlinable public static var maxCorridorPoints: Int { 32 }
    @inlinable public static var maxNoGoZones: Int { 8 }

    public let jointCount: Int
    /// Monitor period (ns).
    public let period: Nanoseconds
    /// (nJoints) safe travel, speed, current, tracking and encoder-agreement limits.
    public let lower: JointVector
    public let upper: JointVector
    public let maxVelocity: JointVector
    public let maxCurrent: JointVector
    public let maxTrackingError: JointVector
    public let maxEncoderMismatch: JointVector
    public let stopDeceleration: JointVector
    public let heartbeatTimeout: Nanoseconds
    public let maxInsertionForce: Double
    public let imageMaxAge: Nanoseconds
    public let maxConsecutiveLost: Int
    /// Leaky buckets: (burst, leak per cycle) for lost frames, CRC errors and WKC errors.
    public let lostBurst: Double, lostLeak: Double
    public let crcBurst: Double, crcLeak: Double
    public let wkcBurst: Double, wkcLeak: Double
    public let stopMaxTime: Nanoseconds
    public let standstillFraction: Double
    /// (SafetyCheck.allCases) the stop category of each check, by raw value.
    @usableFromInline let categories: InlineArray<16, UInt8>
    public let geometry: TipGeometry

    /// Whether a reading of the force at the sheath (N, either sign) is over the insertion-force
    /// limit. One predicate for the monitor and for anything that must stop where it would
    /// (simulated-time runs); a reading that is not a number is the monitor's invalid-input
    /// check, so it does not count here.
    @_noAllocation @_noLocks @inlinable
    public func insertionForceExceeded(_ force: Double) -> Bool { abs(force) > maxInsertionForce }

    /// Where joints at `q` moving at `v` come to rest if a controlled stop is asked for now:
    /// two monitor periods of reaction at `v`, then braking at the stop deceleration.
    @_noAllocation @_noLocks
    public func stoppingPosture(_ q: JointVector, _ v: JointVector) -> JointVector {
        var out = q
        let reaction = 2 * Double(period) * 1e-9
        for i in 0..<jointCount {
            out[i] = q[i] + v[i] * reaction + v[i] * abs(v[i]) / (2 * stopDeceleration[i])
        }
        return out
    }

    /// The stop category declared for `check`.
    @_noAllocation @_noLocks
    public func category(_ check: SafetyCheck) -> StopCategory {
        StopCategory.of(categories[check.index])
    }
}

/// The monitor's own tip estimate and the vessel corridor it must stay in.
///
/// Diversity, on purpose: the control stack's kinematics (Control/Catheter) write each section
/// as a rotation series in θ² with skew matrices and read their geometry from the robot file.
/// This estimate takes its geometry from the monitor's limits file, its joints from the
/// monitor's own load-side sensors, and computes each constant-curvature arc in closed form
/// from bending angle θ and plane φ (Rodrigues' rotation about the in-plane normal). A common
/// error would have to appear in two different formulas, two files and two sensor paths.
/// What it cannot model (friction, slack, the vessel pushing back) is covered by `tipMargin`.
public struct TipGeometry: Sendable {
    public let sectionCount: Int
    public let base: Pose
    /// (sections) arc length and tendon radius (mm).
    public let sectionLength: SIMD2<Double>
    public let tendonRadius: SIMD2<Double>
    public let tipLength: Double
    public let tipMargin: Double
    /// mm — how far inside the wall the image-measured tip must lie (`image_tip_margin_mm`).
    public let imageTipMargin: Double
    /// Corridor points: (x, y, z, radius) mm.
    @usableFromInline let corridor: InlineArray<32, SIMD4<Double>>
    public let corridorCount: Int
    /// No-go spheres: (x, y, z, radius) mm.
    @usableFromInline let noGo: InlineArray<8, SIMD4<Double>>
    public let noGoCount: Int
    /// The lumen check's evidence: the kinematic tip, or length along the lumen and the image tip.
    public let alongLumen: Bool
    /// mm — the catheter beyond the insertion joint's zero: its sections and tip.
    public let distalLength: Double
    /// mm — the centreline's length, and at each corridor point: the arc length from the first
    /// point, and how much shorter than the centreline a path hugging the inner walls can be
    /// up to there (the sum over corners of the radius times the turn: a catheter in contact
    /// with the inside of a bend is that much further along than its length says).
    public let corridorLength: Double
    /// mm — how much longer than the centreline a catheter can lie inside the corridor without
    /// folding on itself: along the outer wall of each bend, radius times the turn, summed over
    /// the corridor's corners (the mirror of the inner-wall shortcut; a pushed catheter rides
    /// the outer wall of the arch). With its tip at the corridor's end, that much catheter can
    /// be out of the sheath (docs/safety/tip-evidence.md).
    public let corridorSlack: Double
    @usableFromInline let corridorArc: InlineArray<32, Double>
    @usableFromInline let corridorShortcut: InlineArray<32, Double>

    /// The tip position (mm, world) for joints `q`: insertion, roll, two tendons per section.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func tipPosition(_ q: JointVector) -> Vec3 {
        var rotation = base.rotation * Mat3.rotationZ(q[1])
        var position = base.translation + base.rotation.c2 * q[0]
        for i in 0..<sectionCount {
            let lx = q[2 + 2 * i], ly = q[3 + 2 * i]
            let r = tendonRadius[i]
            let theta = squareRootOf(lx * lx + ly * ly) / r
            let length = sectionLength[i]
            // Unit direction of the bending plane in the section's base frame (x when straight).
            var cphi = 1.0, sphi = 0.0
            if theta > 1e-12 {
                let norm = squareRootOf(lx * lx + ly * ly)
                cphi = lx / norm
                sphi = ly / norm
            }
            // Arc end point: in-plane offset L(1 − cos θ)/θ, along-axis L sin θ/θ.
            var offset: Double, along: Double
            var c = 1.0, s = 0.0
            if theta < 1e-4 {
                offset = length * theta * (0.5 - theta * theta / 24)
                along = length * (1 - theta * theta / 6)
                c = 1 - theta * theta / 2
                s = theta
            } else {
                c = cosine(theta)
                s = sine(theta)
                offset = length * (1 - c) / theta
                along = length * s / theta
            }
            position = position + rotation * Vec3(offset * cphi, offset * sphi, along)
            // The section's end frame turns by θ about the axis n = (−sin φ, cos φ, 0):
            // R = I + sin θ [n]× + (1 − cos θ) [n]×² (Rodrigues).
            let n = Vec3(-sphi, cphi, 0)
            let k = Mat3.skew(n)
            rotation = rotation * (Mat3.identity + k * s + (k * k) * (1 - c))
        }
        return position + rotation.c2 * tipLength
    }

    /// How far `p` lies outside the lumen corridor, margin included (≤ 0 inside): the smallest
    /// over segments of distance-to-centreline − (interpolated radius − margin).
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func outsideLumen(_ p: Vec3) -> Double {
        nearestSegment(p).excess + tipMargin
    }

    /// How far the image-measured tip `p` lies outside the corridor, less `imageTipMargin` (≤ 0
    /// inside). `tipMargin` is the monitor's own model's error budget and does not apply to a
    /// measurement: a correct catheter riding the wall of a bend is measured closer to the wall
    /// than that (docs/safety/tip-evidence.md, "The image tip's margin").
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func measuredTipOutsideLumen(_ p: Vec3) -> Double {
        nearestSegment(p).excess + imageTipMargin
    }

    /// mm — the catheter out of the sheath at joints `q`, tip included. The catheter does not
    /// stretch: its tip can be no further along any path from the sheath than this.
    @_noAllocation @_noLocks
    @inline(__always) public func lengthOut(_ q: JointVector) -> Double { q[0] + distalLength }

    /// Where `p` lies along the corridor: the arc length of its closest centreline point, the
    /// inner-wall shortcut up to there and the radius there (mm), on the segment `outsideLumen` judged it by.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func alongCorridor(_ p: Vec3) -> (arc: Double, shortcut: Double, radius: Double) {
        let s = nearestSegment(p)
        let i = s.segment, t = s.t
        return (corridorArc[i] + (corridorArc[i + 1] - corridorArc[i]) * t,
                corridorShortcut[i] + (corridorShortcut[i + 1] - corridorShortcut[i]) * t, s.radius)
    }

    /// The segment where `p` is least outside its interpolated radius (margin aside): its index,
    /// the fraction along it of the closest point, the radius there and that excess (mm).
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    func nearestSegment(_ p: Vec3) -> (segment: Int, t: Double, radius: Double, excess: Double) {
        var best = (segment: 0, t: 0.0, radius: 0.0, excess: Double.infinity)
        for i in 0..<(corridorCount - 1) {
            let a4 = corridor[i], b4 = corridor[i + 1]
            let a = Vec3(a4.x, a4.y, a4.z), b = Vec3(b4.x, b4.y, b4.z)
            let ab = b - a
            let denominator = ab.dot(ab)
            var t = denominator > 0 ? (p - a).dot(ab) / denominator : 0
            t = min(max(t, 0), 1)
            let radius = a4.w + (b4.w - a4.w) * t
            let excess = (p - (a + ab * t)).length - radius
            if excess < best.excess { best = (i, t, radius, excess) }
        }
        return best
    }

    /// How deep `p` lies inside the deepest no-go zone, margin included (≤ 0 outside all), and
    /// which zone (−1 for none).
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func insideNoGo(_ p: Vec3) -> (depth: Double, zone: Int) {
        var depth = -Double.infinity
        var zone = -1
        for i in 0..<noGoCount {
            let z = noGo[i]
            let d = (z.w + tipMargin) - (p - Vec3(z.x, z.y, z.z)).length
            if d > depth {
                depth = d
                zone = i
            }
        }
        return (depth, zone)
    }
}
