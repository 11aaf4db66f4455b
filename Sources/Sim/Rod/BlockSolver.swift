import Core

/// A symmetric positive-definite block-pentadiagonal system of 3×3 blocks, solved by block
/// Cholesky: A = G Gᵀ with G lower block-triangular (two block sub-diagonals).
///
/// The rod's implicit step couples each node to its neighbours up to two nodes away (bending),
/// so this is its exact structure: a factorisation costs a handful of 3×3 products per node
/// and needs no pivoting. The pivot blocks are badly conditioned (stiff stretch along the
/// tangent, weak bending across it), so they are factorised by 3×3 Cholesky and applied through
/// triangular inverses — an L D Lᵀ with explicitly inverted D blocks loses about κ(D)·ε and
/// was measured to leave residuals as large as the right-hand side. Rows before `first` (the
/// nodes the sheath holds) are left out; the caller moves their known values to the right.
/// It owns its blocks and frees them when it ends.
struct BlockPentadiagonal: ~Copyable {
    let count: Int
    /// A(i, i), A(i, i−1), A(i, i−2): the lower half of the symmetric matrix.
    let diagonal: UnsafeMutablePointer<Mat3>
    let sub1: UnsafeMutablePointer<Mat3>
    let sub2: UnsafeMutablePointer<Mat3>
    /// The factor: G(i, i−1), G(i, i−2) and G(i, i)⁻¹ (lower triangular).
    let l1: UnsafeMutablePointer<Mat3>
    let l2: UnsafeMutablePointer<Mat3>
    let pivotInverse: UnsafeMutablePointer<Mat3>

    init(count: Int) {
        self.count = count
        diagonal = .allocate(capacity: count); sub1 = .allocate(capacity: count); sub2 = .allocate(capacity: count)
        l1 = .allocate(capacity: count); l2 = .allocate(capacity: count); pivotInverse = .allocate(capacity: count)
        for p in [diagonal, sub1, sub2, l1, l2, pivotInverse] { p.initialize(repeating: .zero, count: count) }
    }

    deinit {
        diagonal.deallocate(); sub1.deallocate(); sub2.deallocate(); l1.deallocate(); l2.deallocate(); pivotInverse.deallocate()
    }

    @_noAllocation @_noLocks
    func clear() {
        diagonal.update(repeating: .zero, count: count)
        sub1.update(repeating: .zero, count: count)
        sub2.update(repeating: .zero, count: count)
    }

    /// Factorises rows `first ..< count`. False when a pivot block is not positive definite
    /// (or not finite): the caller treats that as divergence.
    @_noAllocation @_noLocks
    func factorize(from first: Int) -> Bool {
        var i = first
        while i < count {
            var s = diagonal[i]
            var g2 = Mat3.zero
            if i - 2 >= first {
                g2 = sub2[i] * pivotInverse[i - 2].transposed      // G(i,i−2) = A(i,i−2) G(i−2,i−2)⁻ᵀ
                s = s - g2 * g2.transposed
            }
            l2[i] = g2
            if i - 1 >= first {
                var w = sub1[i]
                if i - 2 >= first { w = w - g2 * l1[i - 1].transposed }
                let g1 = w * pivotInverse[i - 1].transposed       // G(i,i−1) = (A − G(i,i−2) G(i−1,i−2)ᵀ) G(i−1,i−1)⁻ᵀ
                l1[i] = g1
                s = s - g1 * g1.transposed
            } else {
                l1[i] = .zero
            }
            guard let inverse = Self.choleskyInverse(s) else { return false }
            pivotInverse[i] = inverse
            i += 1
        }
        return true
    }

    /// The inverse of the lower-triangular Cholesky factor of a symmetric 3×3 block, or nil
    /// when the block is not positive definite.
    @_noAllocation @_noLocks @inline(__always)
    static func choleskyInverse(_ s: Mat3) -> Mat3? {
        let d0 = s.c0.x
        if !(d0 > 0) { return nil }
        let l00 = squareRootOf(d0)
        let l10 = s.c0.y / l00, l20 = s.c0.z / l00
        let d1 = s.c1.y - l10 * l10
        if !(d1 > 0) { return nil }
        let l11 = squareRootOf(d1)
        let l21 = (s.c1.z - l20 * l10) / l11
        let d2 = s.c2.z - l20 * l20 - l21 * l21
        if !(d2 > 0) { return nil }
        let l22 = squareRootOf(d2)
        let i00 = 1 / l00, i11 = 1 / l11, i22 = 1 / l22
        let i10 = -l10 * i00 * i11
        let i21 = -l21 * i11 * i22
        let i20 = -(l20 * i00 + l21 * i10) * i22
        return Mat3(columns: Vec3(i00, i10, i20), Vec3(0, i11, i21), Vec3(0, 0, i22))
    }

    /// Solves for rows `first ..< count` in place, after `factorize(from: first)`.
    @_noAllocation @_noLocks
    func solve(_ b: UnsafeMutablePointer<Vec3>, from first: Int) {
        var i = first
        while i < count {
            var y = b[i]
            if i - 1 >= first { y -= l1[i] * b[i - 1] }
            if i - 2 >= first { y -= l2[i] * b[i - 2] }
            b[i] = pivotInverse[i] * y
            i += 1
        }
        i = count - 1
        while i >= first {
            var y = b[i]
            if i + 1 < count { y -= l1[i + 1].transposed * b[i + 1] }
            if i + 2 < count { y -= l2[i + 2].transposed * b[i + 2] }
            b[i] = pivotInverse[i].transposed * y
            i -= 1
        }
    }
}

extension Mat3 {
    /// s I added in place.
    @_noAllocation @_noLocks @inline(__always)
    mutating func addIdentity(_ s: Double) { c0.x += s; c1.y += s; c2.z += s }

    /// The outer product a aᵀ scaled by s.
    @_noAllocation @_noLocks @inline(__always)
    static func outer(_ a: Vec3, _ s: Double) -> Mat3 {
        let sa = a * s
        return Mat3(columns: sa * a.x, sa * a.y, sa * a.z)
    }
}
