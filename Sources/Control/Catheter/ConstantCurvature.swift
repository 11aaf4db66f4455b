import Core

/// One constant-curvature section in its own frame, as a function of its curvature vector
/// u = (ux, uy) (rad): bending angle θ = |u|, bending plane φ = atan2(uy, ux).
///
/// With ω = (−uy, ux, 0), W = [ω]× and s = θ²:
///
///     R = I + a(s) W + b(s) W²        a = sin θ / θ,  b = (1 − cos θ) / θ²
///     p = L (ux b, uy b, a)
///
/// Written in s = θ² the coefficients are smooth through the straight section, where the
/// usual (L/θ)(1 − cos θ, …) form divides by zero; below `seriesLimit` they come from their
/// Taylor series, above it from the closed forms, which are accurate to ~1e-13 there.
public enum ConstantCurvature {
    /// s = θ² below which the series are used (θ < 0.1 rad).
    @inlinable public static var seriesLimit: Double { 1e-2 }

    /// a, b and their derivatives with respect to s = θ².
    public struct Coefficients: Equatable, Sendable {
        public var a: Double, b: Double, da: Double, db: Double
        @inlinable public init(a: Double, b: Double, da: Double, db: Double) {
            self.a = a; self.b = b; self.da = da; self.db = db
        }
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public static func coefficients(s: Double) -> Coefficients {
        if s < seriesLimit {
            let s2 = s * s, s3 = s2 * s, s4 = s3 * s
            return Coefficients(
                a: 1 - s / 6 + s2 / 120 - s3 / 5040 + s4 / 362_880,
                b: 0.5 - s / 24 + s2 / 720 - s3 / 40320 + s4 / 3_628_800,
                da: -1.0 / 6 + s / 60 - s2 / 1680 + s3 / 90720,
                db: -1.0 / 24 + s / 360 - s2 / 13440 + s3 / 907_200
            )
        }
        let t = squareRootOf(s)
        let c = cosine(t), sn = sine(t)
        return Coefficients(
            a: sn / t,
            b: (1 - c) / s,
            da: (t * c - sn) / (2 * t * s),
            db: (t * sn - 2 * (1 - c)) / (2 * s * s)
        )
    }

    /// The section's end frame relative to its start.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public static func transform(ux: Double, uy: Double, length: Double) -> Pose {
        let k = coefficients(s: ux * ux + uy * uy)
        let w = Mat3.skew(Vec3(-uy, ux, 0))
        return Pose(rotation: Mat3.identity + w * k.a + (w * w) * k.b,
                    translation: Vec3(ux * k.b, uy * k.b, k.a) * length)
    }

    /// The end frame and its derivatives with respect to ux and uy.
    public struct Derivatives: Sendable {
        public var pose: Pose
        public var dRx: Mat3, dpx: Vec3
        public var dRy: Mat3, dpy: Vec3
        @inlinable public init(pose: Pose, dRx: Mat3, dpx: Vec3, dRy: Mat3, dpy: Vec3) {
            self.pose = pose; self.dRx = dRx; self.dpx = dpx; self.dRy = dRy; self.dpy = dpy
        }
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public static func derivatives(ux: Double, uy: Double, length: Double) -> Derivatives {
        let k = coefficients(s: ux * ux + uy * uy)
        let w = Mat3.skew(Vec3(-uy, ux, 0))
        let w2 = w * w
        let pose = Pose(rotation: Mat3.identity + w * k.a + w2 * k.b,
                        translation: Vec3(ux * k.b, uy * k.b, k.a) * length)
        // ∂s/∂ux = 2 ux, ∂W/∂ux = [ey]×;  ∂s/∂uy = 2 uy, ∂W/∂uy = [−ex]×.
        let dWx = Mat3.skew(Vec3(0, 1, 0)), dWy = Mat3.skew(Vec3(-1, 0, 0))
        let dax = 2 * ux * k.da, dbx = 2 * ux * k.db
        let day = 2 * uy * k.da, dby = 2 * uy * k.db
        let dRx = w * dax + dWx * k.a + w2 * dbx + (dWx * w + w * dWx) * k.b
        let dRy = w * day + dWy * k.a + w2 * dby + (dWy * w + w * dWy) * k.b
        let dpx = Vec3(k.b + ux * dbx, uy * dbx, dax) * length
        let dpy = Vec3(ux * dby, k.b + uy * dby, day) * length
        return Derivatives(pose: pose, dRx: dRx, dpx: dpx, dRy: dRy, dpy: dpy)
    }
}
