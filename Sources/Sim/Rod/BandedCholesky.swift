/// In-place Cholesky factorisation and solve of a symmetric positive-definite band matrix.
///
/// The rod's implicit step couples each node to its neighbours up to two nodes away (bending),
/// so its 3n × 3n system has a half-bandwidth of 8: factorising it costs O(n · 8²) instead of
/// O(n³) and needs no pivoting. Storage is the lower band by rows: entry (i, j) with
/// i − bandwidth ≤ j ≤ i lives at `i * (bandwidth + 1) + (j − i + bandwidth)`.
struct BandedMatrix {
    let size: Int
    let bandwidth: Int
    let storage: UnsafeMutablePointer<Double>
    let stride: Int

    init(size: Int, bandwidth: Int) {
        self.size = size
        self.bandwidth = bandwidth
        stride = bandwidth + 1
        storage = .allocate(capacity: size * (bandwidth + 1))
        storage.initialize(repeating: 0, count: size * (bandwidth + 1))
    }

    func deallocate() { storage.deallocate() }

    @_noAllocation @_noLocks
    func clear() { storage.update(repeating: 0, count: size * stride) }

    /// Adds `value` at (i, j), for j ≤ i within the band (the caller adds the lower triangle only).
    @_noAllocation @_noLocks @inline(__always)
    func add(_ i: Int, _ j: Int, _ value: Double) {
        storage[i * stride + (j - i + bandwidth)] += value
    }

    @_noAllocation @_noLocks @inline(__always)
    func get(_ i: Int, _ j: Int) -> Double { storage[i * stride + (j - i + bandwidth)] }

    /// Replaces the matrix with its Cholesky factor L (A = L Lᵀ). Returns false when a pivot is
    /// not positive (the matrix was not positive definite) — the caller treats that as a fault.
    @_noAllocation @_noLocks
    func factorize() -> Bool {
        let w = bandwidth, s = stride, a = storage
        for i in 0..<size {
            let j0 = i - w > 0 ? i - w : 0
            for j in j0...i {
                // sum over k of L[i,k] L[j,k], k from max(i, j) − w … j − 1
                let k0 = (i - w > j0 ? i - w : j0)
                var sum = a[i * s + (j - i + w)]
                var k = k0
                while k < j {
                    sum -= a[i * s + (k - i + w)] * a[j * s + (k - j + w)]
                    k += 1
                }
                if j == i {
                    if !(sum > 0) { return false }
                    a[i * s + w] = squareRootOf(sum)
                } else {
                    a[i * s + (j - i + w)] = sum / a[j * s + w]
                }
            }
        }
        return true
    }

    /// Solves L Lᵀ x = b in place (`b` becomes x), after `factorize()`.
    @_noAllocation @_noLocks
    func solve(_ b: UnsafeMutablePointer<Double>) {
        let w = bandwidth, s = stride, a = storage
        for i in 0..<size {
            var sum = b[i]
            let j0 = i - w > 0 ? i - w : 0
            var j = j0
            while j < i { sum -= a[i * s + (j - i + w)] * b[j]; j += 1 }
            b[i] = sum / a[i * s + w]
        }
        var i = size - 1
        while i >= 0 {
            var sum = b[i]
            let j1 = i + w < size - 1 ? i + w : size - 1
            var j = i + 1
            while j <= j1 { sum -= a[j * s + (i - j + w)] * b[j]; j += 1 }
            b[i] = sum / a[i * s + w]
            i -= 1
        }
    }
}

import Core
