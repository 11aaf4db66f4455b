import Core

/// A 3 × 4 pinhole projection matrix P: (u·w, v·w, w) = P · (x, y, z, 1), pixels (u, v) =
/// (column, row) with (0, 0) at the centre of the top-left pixel, points in mm (LPS). From a
/// `CArmGeometry`, from a calibration, or from twelve numbers. `w` is the depth along the
/// viewing direction when the third row's first three entries have unit length (as
/// `CArmGeometry` and the calibration give).
public struct ProjectionMatrix: Equatable, Sendable {
    public var row0: SIMD4<Double>
    public var row1: SIMD4<Double>
    public var row2: SIMD4<Double>

    @inlinable public init(row0: SIMD4<Double>, row1: SIMD4<Double>, row2: SIMD4<Double>) {
        self.row0 = row0; self.row1 = row1; self.row2 = row2
    }

    /// From 12 numbers, row-major.
    public init?(rowMajor m: [Double]) {
        guard m.count == 12, m.allSatisfy(\.isFinite) else { return nil }
        row0 = SIMD4(m[0], m[1], m[2], m[3])
        row1 = SIMD4(m[4], m[5], m[6], m[7])
        row2 = SIMD4(m[8], m[9], m[10], m[11])
    }

    /// The C-arm's matrix (`CArmGeometry.projectionMatrix`).
    public init(_ g: CArmGeometry) {
        self.init(rowMajor: g.projectionMatrix)!
    }

    public var rowMajor: [Double] {
        [row0.x, row0.y, row0.z, row0.w, row1.x, row1.y, row1.z, row1.w, row2.x, row2.y, row2.z, row2.w]
    }

    /// The left 3 × 3 block M of P = [M | p4].
    @inlinable public var m: Mat3 { @_noAllocation @_noLocks get {
        Mat3(rows: Vec3(row0.x, row0.y, row0.z), Vec3(row1.x, row1.y, row1.z), Vec3(row2.x, row2.y, row2.z))
    } }

    /// Pixel and depth of `p`.
    @_noAllocation @_noLocks @inlinable public func project(_ p: Vec3) -> (u: Double, v: Double, w: Double) {
        let h = SIMD4(p.x, p.y, p.z, 1)
        let w = (row2 * h).sum()
        return ((row0 * h).sum() / w, (row1 * h).sum() / w, w)
    }

    /// ∂(u, v)/∂p at `p`: the rows du/dp and dv/dp. Zero along the viewing ray through `p`.
    @_noAllocation @_noLocks @inlinable public func jacobian(at p: Vec3) -> (du: Vec3, dv: Vec3) {
        let q = project(p)
        let a = Vec3(row0.x, row0.y, row0.z), b = Vec3(row1.x, row1.y, row1.z), c = Vec3(row2.x, row2.y, row2.z)
        let inv = 1 / q.w
        return ((a - c * q.u) * inv, (b - c * q.v) * inv)
    }

    /// The projection centre (the X-ray source): the null vector of P. Nil when M is singular.
    @inlinable public var centre: Vec3? { @_noAllocation @_noLocks get {
        m.solve(Vec3(-row0.w, -row1.w, -row2.w))
    } }

    /// The ray from the centre through pixel (u, v), its direction pointing in front (w grows).
    @_noAllocation @_noLocks @inlinable public func ray(u: Double, v: Double) -> (origin: Vec3, direction: Vec3)? {
        let mm = m
        guard let c = mm.solve(Vec3(-row0.w, -row1.w, -row2.w)), let d = mm.solve(Vec3(u, v, 1)) else { return nil }
        let length = d.length
        if !(length > 0) { return nil }
        var dir = d * (1 / length)
        if dir.dot(Vec3(row2.x, row2.y, row2.z)) < 0 { dir = dir * -1 }
        return (c, dir)
    }

    /// The pinhole parameters behind P = K · [R | t]: intrinsics K (upper triangular, positive
    /// diagonal, K[2,2] = 1), an orthogonal R (det −1 when the image is mirrored, as a C-arm
    /// image seen from the front is), and the centre. Nil when M is singular.
    public func decompose() -> Decomposition? {
        // RQ by Gram–Schmidt from the last row up: row i of M = Σ_j K[i][j] · R row j.
        let m0 = Vec3(row0.x, row0.y, row0.z), m1 = Vec3(row1.x, row1.y, row1.z), m2 = Vec3(row2.x, row2.y, row2.z)
        let k22 = m2.length
        guard k22 > 0 else { return nil }
        let r2 = m2 * (1 / k22)
        let k12 = m1.dot(r2)
        let t1 = m1 - r2 * k12
        let k11 = t1.length
        guard k11 > 0 else { return nil }
        let r1 = t1 * (1 / k11)
        let k02 = m0.dot(r2), k01 = m0.dot(r1)
        let t0 = m0 - r1 * k01 - r2 * k02
        let k00 = t0.length
        guard k00 > 0, let centre else { return nil }
        let r0 = t0 * (1 / k00)
        return Decomposition(focalU: k00 / k22, focalV: k11 / k22, skew: k01 / k22, principalU: k02 / k22, principalV: k12 / k22,
                             rotation: Mat3(rows: r0, r1, r2), centre: centre)
    }

    public struct Decomposition: Equatable, Sendable {
        /// px — focal length along u and v (SID / pixel spacing for a C-arm).
        public var focalU: Double
        public var focalV: Double
        public var skew: Double
        /// px — where the perpendicular from the centre meets the image.
        public var principalU: Double
        public var principalV: Double
        /// Rows: the image u axis, the v axis and the viewing direction, in the patient.
        public var rotation: Mat3
        /// mm — the projection centre (the X-ray source).
        public var centre: Vec3
    }
}
