import Core

// The frame update of the rod touches a handful of 3-vectors per edge. Stored as `Vec3`
// (a padded SIMD3 in two SSE registers) every dot product needs shuffles and every sqrt or
// divide works on one value. Stored by component instead (x of every edge, then y, then z),
// the same arithmetic runs on neighbouring edges side by side: a dot product is three
// multiplies and two adds across `Lanes.scalarCount` edges, and sqrt and divide are packed.
// Each lane does exactly the scalar operations in the scalar order, so the results are the
// same as the per-edge code's.

/// Neighbouring edges side by side: one SSE register of doubles.
typealias Lanes = SIMD2<Double>

/// A 3-vector per lane.
struct Vec3Lanes {
    var x: Lanes, y: Lanes, z: Lanes

    @_noAllocation @_noLocks @inline(__always)
    init(_ x: Lanes, _ y: Lanes, _ z: Lanes) { self.x = x; self.y = y; self.z = z }

    /// Every lane the same vector (the scalar tail of a loop runs the lane code on it).
    @_noAllocation @_noLocks @inline(__always)
    init(repeating v: Vec3) { x = Lanes(repeating: v.x); y = Lanes(repeating: v.y); z = Lanes(repeating: v.z) }

    /// Same summation order as `Vec3.dot`: (x + y) + z.
    @_noAllocation @_noLocks @inline(__always)
    func dot(_ o: Vec3Lanes) -> Lanes { x * o.x + y * o.y + z * o.z }

    @_noAllocation @_noLocks @inline(__always)
    func cross(_ o: Vec3Lanes) -> Vec3Lanes {
        Vec3Lanes(y * o.z - z * o.y, z * o.x - x * o.z, x * o.y - y * o.x)
    }

    @_noAllocation @_noLocks @inline(__always)
    static func + (a: Vec3Lanes, b: Vec3Lanes) -> Vec3Lanes { Vec3Lanes(a.x + b.x, a.y + b.y, a.z + b.z) }
    @_noAllocation @_noLocks @inline(__always)
    static func - (a: Vec3Lanes, b: Vec3Lanes) -> Vec3Lanes { Vec3Lanes(a.x - b.x, a.y - b.y, a.z - b.z) }
    @_noAllocation @_noLocks @inline(__always)
    static func * (a: Vec3Lanes, s: Lanes) -> Vec3Lanes { Vec3Lanes(a.x * s, a.y * s, a.z * s) }

    /// Lanes where `mask` is set take `other`.
    @_noAllocation @_noLocks @inline(__always)
    func replacing(with other: Vec3Lanes, where mask: SIMDMask<Lanes.MaskStorage>) -> Vec3Lanes {
        Vec3Lanes(x.replacing(with: other.x, where: mask), y.replacing(with: other.y, where: mask),
                  z.replacing(with: other.z, where: mask))
    }
}

/// One unit-ish vector per edge, stored by component.
struct EdgeVectors {
    let x: UnsafeMutablePointer<Double>
    let y: UnsafeMutablePointer<Double>
    let z: UnsafeMutablePointer<Double>

    init(count: Int) {
        x = .allocate(capacity: 3 * count)
        y = x + count
        z = x + 2 * count
    }

    func deallocate() { x.deallocate() }

    subscript(e: Int) -> Vec3 {
        @_noAllocation @_noLocks @inline(__always) get { Vec3(x[e], y[e], z[e]) }
        @_noAllocation @_noLocks @inline(__always) nonmutating set { x[e] = newValue.x; y[e] = newValue.y; z[e] = newValue.z }
    }

    /// Edges e, e + 1, … in the lanes.
    @_noAllocation @_noLocks @inline(__always)
    func lanes(_ e: Int) -> Vec3Lanes { Vec3Lanes(loadLanes(x + e), loadLanes(y + e), loadLanes(z + e)) }

    @_noAllocation @_noLocks @inline(__always)
    func store(_ v: Vec3Lanes, _ e: Int) { storeLanes(v.x, x + e); storeLanes(v.y, y + e); storeLanes(v.z, z + e) }
}

@_noAllocation @_noLocks @inline(__always)
func loadLanes(_ p: UnsafeMutablePointer<Double>) -> Lanes { UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }

@_noAllocation @_noLocks @inline(__always)
func storeLanes(_ v: Lanes, _ p: UnsafeMutablePointer<Double>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self) }

extension Vec3Lanes {
    /// The vector in lane `k`.
    subscript(k: Int) -> Vec3 { @_noAllocation @_noLocks @inline(__always) get { Vec3(x[k], y[k], z[k]) } }
}
