import Core

/// One view of a point: where a projection put it and how uncertain that pixel is.
public struct PixelObservation: Equatable, Sendable {
    public var matrix: ProjectionMatrix
    /// (u, v) px.
    public var pixel: SIMD2<Double>
    /// px².
    public var covariance: SymMat2

    public init(matrix: ProjectionMatrix, pixel: SIMD2<Double>, covariance: SymMat2 = .isotropic(1)) {
        self.matrix = matrix
        self.pixel = pixel
        self.covariance = covariance
    }
}

/// A point in the patient with its covariance.
public struct PointEstimate: Equatable, Sendable {
    /// mm, LPS.
    public var position: Vec3
    /// mm².
    public var covariance: Mat3
    /// px — RMS reprojection error over the views (0 for a single plane with a prior).
    public var rms: Double

    public init(position: Vec3, covariance: Mat3, rms: Double = 0) {
        self.position = position
        self.covariance = covariance
        self.rms = rms
    }
}

public enum Triangulation {
    /// The point seen in two or more views (biplane): the least-squares intersection of the
    /// back-projected rays, then Gauss–Newton on the reprojection errors weighted by each pixel
    /// covariance. The covariance is (Σ Jᵀ Σ_px⁻¹ J)⁻¹ at the solution: the pixel noise carried
    /// into 3D to first order.
    public static func triangulate(_ views: [PixelObservation], iterations: Int = 10) throws(GeometryError) -> PointEstimate {
        guard views.count >= 2 else { throw .tooFew(needed: 2, got: views.count) }
        // Linear: minimise Σ |(I − d dᵀ)(X − o)|².
        var a = Mat3.zero, b = Vec3.zero
        for (i, view) in views.enumerated() {
            guard view.pixel.x.isFinite, view.pixel.y.isFinite else { throw .notFinite("pixel of view \(i)") }
            guard let r = view.matrix.ray(u: view.pixel.x, v: view.pixel.y) else { throw .degenerate("view \(i) has a singular matrix") }
            let q = Mat3.identity - Mat3.outer(r.direction, r.direction)
            a = a + q
            b = b + q * r.origin
        }
        guard var x = a.solve(b) else { throw .degenerate("the rays are parallel") }
        var information = Mat3.zero
        for _ in 0...iterations {
            var h = Mat3.zero, g = Vec3.zero
            for (i, view) in views.enumerated() {
                guard let w = view.covariance.inverse() else { throw .degenerate("the pixel covariance of view \(i) is singular") }
                let p = view.matrix.project(x)
                guard p.w > 0 else { throw .behindSource(view: i) }
                let j = view.matrix.jacobian(at: x)
                let r = SIMD2(p.u - view.pixel.x, p.v - view.pixel.y)
                // Jᵀ W J and Jᵀ W r with W = [[xx, xy], [xy, yy]].
                let wdu = j.du * w.xx + j.dv * w.xy, wdv = j.du * w.xy + j.dv * w.yy
                h = h + Mat3.outer(j.du, wdu) + Mat3.outer(j.dv, wdv)
                g = g + wdu * r.x + wdv * r.y
            }
            information = h
            guard let step = h.solve(g * -1) else { throw .degenerate("the views do not constrain the point (parallel rays)") }
            x = x + step
            if step.length < 1e-10 { break }
        }
        guard let covariance = information.inverse else { throw .degenerate("singular information matrix") }
        var sum = 0.0
        for view in views {
            let p = view.matrix.project(x)
            sum += (p.u - view.pixel.x) * (p.u - view.pixel.x) + (p.v - view.pixel.y) * (p.v - view.pixel.y)
        }
        return PointEstimate(position: x, covariance: covariance, rms: (sum / Double(views.count)).squareRoot())
    }
}

public enum RayPriorFusion {
    /// A single plane: 3D from the back-projected ray through `observation.pixel` and a Gaussian
    /// prior (the estimator's predicted tip), as an iterated Kalman update. The image fixes the
    /// two directions across the ray (to the pixel noise times depth / focal length); along the
    /// ray, where the image says nothing, the prior's uncertainty stays. Nil when the prior sits
    /// behind the source or a covariance is singular. Allocation- and lock-free.
    @_noAllocation @_noLocks
    public static func fuse(_ observation: PixelObservation, priorMean: Vec3, priorCovariance: Mat3, iterations: Int = 4) -> PointEstimate? {
        let m = observation.matrix
        let z = observation.pixel
        let r = observation.covariance
        var x = priorMean
        var covariance = priorCovariance
        var i = 0
        while i < iterations {
            let p = m.project(x)
            if !(p.w > 0) { return nil }
            let j = m.jacobian(at: x)
            // Innovation about the linearisation point: z − h(x) − J (μ − x).
            let dmu = priorMean - x
            let y = SIMD2(z.x - p.u - j.du.dot(dmu), z.y - p.v - j.dv.dot(dmu))
            // S = J Σ Jᵀ + R (2 × 2), K = Σ Jᵀ S⁻¹ (3 × 2, as two columns).
            let g0 = priorCovariance * j.du, g1 = priorCovariance * j.dv
            let s = SymMat2(xx: j.du.dot(g0) + r.xx, xy: j.du.dot(g1) + r.xy, yy: j.dv.dot(g1) + r.yy)
            guard let si = s.inverse() else { return nil }
            let k0 = g0 * si.xx + g1 * si.xy, k1 = g0 * si.xy + g1 * si.yy
            x = priorMean + k0 * y.x + k1 * y.y
            let kj = Mat3.outer(k0, j.du) + Mat3.outer(k1, j.dv)
            let c = (Mat3.identity - kj) * priorCovariance
            covariance = (c + c.transposed) * 0.5
            i += 1
        }
        return PointEstimate(position: x, covariance: covariance)
    }
}

extension Mat3 {
    /// The inverse, or nil when singular.
    var inverse: Mat3? {
        guard let a = solve(Vec3(1, 0, 0)), let b = solve(Vec3(0, 1, 0)), let c = solve(Vec3(0, 0, 1)) else { return nil }
        return Mat3(columns: a, b, c)
    }
}
