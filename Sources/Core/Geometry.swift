/// A point or direction in millimetres (positions) or unitless (directions).
public typealias Vec3 = SIMD3<Double>

public extension SIMD3 where Scalar == Double {
    @_noAllocation @_noLocks @inlinable func dot(_ o: Vec3) -> Double { (self * o).sum() }
    @_noAllocation @_noLocks @inlinable func cross(_ o: Vec3) -> Vec3 {
        Vec3(y * o.z - z * o.y, z * o.x - x * o.z, x * o.y - y * o.x)
    }
    @inlinable var length: Double { @_noAllocation @_noLocks get { squareRootOf(dot(self)) } }
    @inlinable var isFinite: Bool { @_noAllocation @_noLocks get { x.isFinite && y.isFinite && z.isFinite } }
}

/// A 3×3 matrix stored by columns; used for rotations and small linear algebra in the cycle.
public struct Mat3: Equatable, Sendable {
    public var c0: Vec3
    public var c1: Vec3
    public var c2: Vec3

    @inlinable public init(columns c0: Vec3, _ c1: Vec3, _ c2: Vec3) {
        self.c0 = c0; self.c1 = c1; self.c2 = c2
    }

    @inlinable public init(rows r0: Vec3, _ r1: Vec3, _ r2: Vec3) {
        self.init(columns: Vec3(r0.x, r1.x, r2.x), Vec3(r0.y, r1.y, r2.y), Vec3(r0.z, r1.z, r2.z))
    }

    @inlinable public static var identity: Mat3 { @_noAllocation @_noLocks get { Mat3(columns: Vec3(1, 0, 0), Vec3(0, 1, 0), Vec3(0, 0, 1)) } }
    @inlinable public static var zero: Mat3 { @_noAllocation @_noLocks get { Mat3(columns: .zero, .zero, .zero) } }

    @inlinable public var transposed: Mat3 { @_noAllocation @_noLocks @inline(__always) get {
            Mat3(columns: Vec3(c0.x, c1.x, c2.x), Vec3(c0.y, c1.y, c2.y), Vec3(c0.z, c1.z, c2.z))
        }
    }

    /// Element at (row, column).
    @inlinable public subscript(row: Int, column: Int) -> Double {
        switch column {
        case 0: c0[row]
        case 1: c1[row]
        default: c2[row]
        }
    }

    @_noAllocation @_noLocks @inlinable @inline(__always) public static func * (m: Mat3, v: Vec3) -> Vec3 { m.c0 * v.x + m.c1 * v.y + m.c2 * v.z }
    @_noAllocation @_noLocks @inlinable @inline(__always) public static func * (a: Mat3, b: Mat3) -> Mat3 { Mat3(columns: a * b.c0, a * b.c1, a * b.c2) }
    @_noAllocation @_noLocks @inlinable @inline(__always) public static func * (a: Mat3, s: Double) -> Mat3 { Mat3(columns: a.c0 * s, a.c1 * s, a.c2 * s) }
    @_noAllocation @_noLocks @inlinable @inline(__always) public static func + (a: Mat3, b: Mat3) -> Mat3 { Mat3(columns: a.c0 + b.c0, a.c1 + b.c1, a.c2 + b.c2) }
    @_noAllocation @_noLocks @inlinable @inline(__always) public static func - (a: Mat3, b: Mat3) -> Mat3 { Mat3(columns: a.c0 - b.c0, a.c1 - b.c1, a.c2 - b.c2) }

    /// The cross-product matrix: `skew(w) * v == w × v`.
    @_noAllocation @_noLocks @inlinable public static func skew(_ w: Vec3) -> Mat3 {
        Mat3(columns: Vec3(0, w.z, -w.y), Vec3(-w.z, 0, w.x), Vec3(w.y, -w.x, 0))
    }

    /// The vector `w` of a skew-symmetric matrix; the skew part of any matrix otherwise.
    @inlinable public var vee: Vec3 { @_noAllocation @_noLocks get {
            Vec3(c1.z - c2.y, c2.x - c0.z, c0.y - c1.x) * 0.5
        }
    }

    @_noAllocation @_noLocks @inlinable public static func rotationZ(_ angle: Double) -> Mat3 {
        let c = cosine(angle), s = sine(angle)
        return Mat3(columns: Vec3(c, s, 0), Vec3(-s, c, 0), Vec3(0, 0, 1))
    }

    @_noAllocation @_noLocks @inlinable public static func rotationY(_ angle: Double) -> Mat3 {
        let c = cosine(angle), s = sine(angle)
        return Mat3(columns: Vec3(c, 0, -s), Vec3(0, 1, 0), Vec3(s, 0, c))
    }

    @_noAllocation @_noLocks @inlinable public static func rotationX(_ angle: Double) -> Mat3 {
        let c = cosine(angle), s = sine(angle)
        return Mat3(columns: Vec3(1, 0, 0), Vec3(0, c, s), Vec3(0, -s, c))
    }

    /// Roll-pitch-yaw (fixed axes x, then y, then z): `Rz(yaw) * Ry(pitch) * Rx(roll)`.
    @_noAllocation @_noLocks @inlinable public static func rpy(_ roll: Double, _ pitch: Double, _ yaw: Double) -> Mat3 {
        rotationZ(yaw) * rotationY(pitch) * rotationX(roll)
    }

    /// Largest absolute element difference, for tests and validation.
    @_noAllocation @_noLocks @inlinable public func maxAbsDifference(_ o: Mat3) -> Double {
        var m = 0.0
        for r in 0..<3 {
            m = max(m, max(abs(c0[r] - o.c0[r]), max(abs(c1[r] - o.c1[r]), abs(c2[r] - o.c2[r]))))
        }
        return m
    }
}

/// A rigid transform: `p_world = rotation * p_local + translation` (millimetres).
public struct Pose: Equatable, Sendable {
    public var rotation: Mat3
    public var translation: Vec3

    @inlinable public init(rotation: Mat3 = .identity, translation: Vec3 = .zero) {
        self.rotation = rotation; self.translation = translation
    }

    @inlinable public static var identity: Pose { @_noAllocation @_noLocks get { Pose() } }

    @_noAllocation @_noLocks @inlinable @inline(__always) public static func * (a: Pose, b: Pose) -> Pose {
        Pose(rotation: a.rotation * b.rotation, translation: a.rotation * b.translation + a.translation)
    }

    @_noAllocation @_noLocks @inlinable public func transform(_ p: Vec3) -> Vec3 { rotation * p + translation }
}





public extension Mat3 {
    @inlinable var determinant: Double { @_noAllocation @_noLocks get { c0.dot(c1.cross(c2)) } }

    /// Solves `self * x = b` by Cramer's rule on the cofactors; nil when the matrix is
    /// singular to working precision. Meant for the small, well-conditioned (damped) systems
    /// of the cycle.
    @_noAllocation @_noLocks @inlinable func solve(_ b: Vec3) -> Vec3? {
        let det = determinant
        let scale = max(max(c0.length, c1.length), c2.length)
        if !(abs(det) > 1e-14 * scale * scale * scale) { return nil }
        let inv = 1 / det
        return Vec3(b.dot(c1.cross(c2)), c0.dot(b.cross(c2)), c0.dot(c1.cross(b))) * inv
    }

    /// The outer product `a bᵀ`.
    @_noAllocation @_noLocks @inlinable static func outer(_ a: Vec3, _ b: Vec3) -> Mat3 {
        Mat3(columns: a * b.x, a * b.y, a * b.z)
    }
}
