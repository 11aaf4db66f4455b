import Core
import Foundation
import Testing
@testable import Sim

@Suite("Block-pentadiagonal solver")
struct BlockSolverTests {
    /// A random symmetric positive-definite block-pentadiagonal matrix, solved by the block
    /// L D Lᵀ and by dense Gaussian elimination; the held prefix is left out of both.
    @Test("Agrees with dense elimination, with and without a held prefix")
    func agreesWithDense() {
        var rng = SplitMix64(seed: 11)
        func r() -> Double { rng.uniform(-1, 1) }
        let n = 9
        for first in [0, 1, 3] {
            let m = BlockPentadiagonal(count: n)
            m.clear()
            var dense = [[Double]](repeating: [Double](repeating: 0, count: 3 * n), count: 3 * n)
            func put(_ i: Int, _ j: Int, _ block: Mat3) {
                for a in 0..<3 { for b in 0..<3 { dense[3 * i + a][3 * j + b] = block[a, b]; dense[3 * j + b][3 * i + a] = block[a, b] } }
            }
            for i in 0..<n {
                for (k, p) in [(1, m.sub1), (2, m.sub2)] where i - k >= 0 {
                    let block = Mat3(columns: Vec3(r(), r(), r()), Vec3(r(), r(), r()), Vec3(r(), r(), r()))
                    p[i] = block
                    put(i, i - k, block)
                }
            }
            for i in 0..<n {
                let g = Mat3(columns: Vec3(r(), r(), r()), Vec3(r(), r(), r()), Vec3(r(), r(), r()))
                var d = g * g.transposed
                d.addIdentity(12)
                m.diagonal[i] = d
                put(i, i, d)
            }
            let b = UnsafeMutablePointer<Vec3>.allocate(capacity: n)
            defer { b.deallocate() }
            var rhs: [Double] = []
            for i in 0..<n { b[i] = Vec3(r(), r(), r()); rhs += [b[i].x, b[i].y, b[i].z] }
            let factored = m.factorize(from: first)
            #expect(factored)
            m.solve(b, from: first)
            // Dense: the rows and columns from `first` on.
            let lo = 3 * first, size = 3 * n - lo
            var a = (0..<size).map { row in Array(dense[lo + row][lo...]) + [rhs[lo + row]] }
            for c in 0..<size {
                let p = (c..<size).max { abs(a[$0][c]) < abs(a[$1][c]) }!
                a.swapAt(c, p)
                for row in 0..<size where row != c {
                    let factor = a[row][c] / a[c][c]
                    for k in c...size { a[row][k] -= factor * a[c][k] }
                }
            }
            for i in first..<n {
                for c in 0..<3 {
                    let row = 3 * (i - first) + c
                    #expect(abs(b[i][c] - a[row][size] / a[row][row]) < 1e-10)
                }
            }
        }
    }

    /// The rod's own shape of matrix: stiff stretch blocks along slightly different tangents,
    /// weak bending, tiny masses — badly scaled, still symmetric positive definite.
    @Test("Solves the rod's badly scaled chain to a small residual")
    func rodLikeChain() {
        let n = 40, first = 3
        let m = BlockPentadiagonal(count: n)
        m.clear()
        for i in 0..<n { m.diagonal[i].addIdentity(6e-6) }
        for e in 0..<(n - 1) {
            let a = 0.02 * Double(e)
            let hk = Mat3.outer(Vec3(cos(a), sin(a), 0.1 * sin(3 * a)), 8000)
            m.diagonal[e] = m.diagonal[e] + hk; m.diagonal[e + 1] = m.diagonal[e + 1] + hk; m.sub1[e + 1] = m.sub1[e + 1] - hk
        }
        for i in 1..<(n - 1) {
            let k = 0.33
            m.diagonal[i - 1].addIdentity(k); m.diagonal[i].addIdentity(4 * k); m.diagonal[i + 1].addIdentity(k)
            m.sub1[i].addIdentity(-2 * k); m.sub1[i + 1].addIdentity(-2 * k); m.sub2[i + 1].addIdentity(k)
        }
        let b = UnsafeMutablePointer<Vec3>.allocate(capacity: n)
        defer { b.deallocate() }
        var rhs = [Vec3](repeating: .zero, count: n)
        rhs[n - 1] = Vec3(0, 1e-7, -2e-7)
        rhs[n / 2] = Vec3(1e-7, 0, 0)
        for i in 0..<n { b[i] = rhs[i] }
        let factored = m.factorize(from: first)
        #expect(factored)
        m.solve(b, from: first)
        var worst = 0.0
        for i in first..<n {
            var r = m.diagonal[i] * b[i] - rhs[i]
            if i - 1 >= first { r += m.sub1[i] * b[i - 1] }
            if i - 2 >= first { r += m.sub2[i] * b[i - 2] }
            if i + 1 < n { r += m.sub1[i + 1].transposed * b[i + 1] }
            if i + 2 < n { r += m.sub2[i + 2].transposed * b[i + 2] }
            worst = max(worst, r.length)
        }
        #expect(worst < 1e-12, "residual \(worst)")
    }

    @Test("An indefinite matrix is refused, not solved")
    func refusesIndefinite() {
        let m = BlockPentadiagonal(count: 3)
        m.clear()
        for i in 0..<3 { m.diagonal[i].addIdentity(1) }
        m.sub1[1].addIdentity(2)  // |off-diagonal| > diagonal: not positive definite
        let indefinite = m.factorize(from: 0)
        #expect(!indefinite)
        m.diagonal[2].addIdentity(.nan)
        let notFinite = m.factorize(from: 0)
        #expect(!notFinite)
    }
}
