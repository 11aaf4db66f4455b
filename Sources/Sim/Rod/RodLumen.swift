import Core

/// The vessel lumen as the rod's contact solver sees it: the tree's frusta in metres, plus for
/// each segment the list of segments that could hold the nearest wall for a point near it.
/// A rod node moves far less than a segment length in one step, so the nearest segment is found
/// by searching the neighbours of last step's answer — about ten segment tests instead of a tree
/// query — with the full BVH query as the start and the fallback.
public final class RodLumen: @unchecked Sendable {
    public let tree: VesselTree
    let count: Int
    /// The frusta (m) and each segment's neighbour list (`neighbours[offsets[i] ..< offsets[i + 1]]`).
    /// A rod model copies them into the `LumenGeometry` it owns, which the step reads.
    let start: [Vec3], end: [Vec3], radiusStart: [Double], radiusEnd: [Double]
    let offsets: [Int32], neighbours: [Int32]

    /// `reach` (m): how far from a segment's surface another segment still counts as a neighbour.
    public init(_ tree: VesselTree, reach: Double = 0.01) {
        self.tree = tree
        count = tree.segmentCount
        var start: [Vec3] = [], end: [Vec3] = [], radiusStart: [Double] = [], radiusEnd: [Double] = []
        for i in 0..<count {
            start.append(tree.segmentStart[i] * 1e-3); end.append(tree.segmentEnd[i] * 1e-3)
            radiusStart.append(tree.radiusStart[i] * 1e-3); radiusEnd.append(tree.radiusEnd[i] * 1e-3)
        }
        // Two segments are neighbours when their bounding capsules, grown by `reach`, overlap.
        var lists: [[Int32]] = Array(repeating: [], count: count)
        for i in 0..<count {
            for j in 0..<count {
                let d = Self.segmentDistance(start[i], end[i], start[j], end[j])
                let ri = max(radiusStart[i], radiusEnd[i]), rj = max(radiusStart[j], radiusEnd[j])
                if d <= ri + rj + reach { lists[i].append(Int32(j)) }
            }
        }
        var offsets: [Int32] = [], neighbours: [Int32] = []
        for i in 0..<count {
            offsets.append(Int32(neighbours.count))
            neighbours.append(contentsOf: lists[i])
        }
        offsets.append(Int32(neighbours.count))
        self.start = start; self.end = end; self.radiusStart = radiusStart; self.radiusEnd = radiusEnd
        self.offsets = offsets; self.neighbours = neighbours
    }

    /// The nearest segment by the full tree query (set-up and fallback; not for the step).
    public func nearestSegment(_ p: Vec3) -> Int { tree.nearest(p * 1e3).segment }

    /// The smallest distance between segments ab and cd (sampled finely; set-up only).
    static func segmentDistance(_ a: Vec3, _ b: Vec3, _ c: Vec3, _ d: Vec3) -> Double {
        var best = Double.infinity
        for k in 0...16 {
            let p = a + (b - a) * (Double(k) / 16)
            let (_, q) = VesselTree.closestOnSegment(p, c, d)
            best = min(best, (p - q).length)
            let p2 = c + (d - c) * (Double(k) / 16)
            let (_, q2) = VesselTree.closestOnSegment(p2, a, b)
            best = min(best, (p2 - q2).length)
        }
        return best
    }
}

/// A unit vector perpendicular to `v`.
@_noAllocation @_noLocks @inline(__always)
func perpendicular(_ v: Vec3) -> Vec3 {
    let a = abs(v.x) < 0.9 ? Vec3(1, 0, 0) : Vec3(0, 1, 0)
    let c = v.cross(a)
    return c * (1 / c.length)
}

/// A `RodLumen`'s frusta and neighbour lists in buffers the step reads without reference
/// counting. It owns them and frees them when it ends; a rod model's parameters own one.
struct LumenGeometry: ~Copyable {
    let start: UnsafeMutablePointer<Vec3>          // (segments) m
    let end: UnsafeMutablePointer<Vec3>            // (segments) m
    let radiusStart: UnsafeMutablePointer<Double>  // (segments) m
    let radiusEnd: UnsafeMutablePointer<Double>    // (segments) m
    let offsets: UnsafeMutablePointer<Int32>       // (segments + 1)
    let neighbours: UnsafeMutablePointer<Int32>    // (offsets[segments])

    init(_ lumen: RodLumen) {
        func buffer<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: max(values.count, 1))
            _ = UnsafeMutableBufferPointer(start: p, count: values.count).initialize(from: values)
            return p
        }
        start = buffer(lumen.start); end = buffer(lumen.end)
        radiusStart = buffer(lumen.radiusStart); radiusEnd = buffer(lumen.radiusEnd)
        offsets = buffer(lumen.offsets); neighbours = buffer(lumen.neighbours)
    }

    deinit {
        start.deallocate(); end.deallocate(); radiusStart.deallocate()
        radiusEnd.deallocate(); offsets.deallocate(); neighbours.deallocate()
    }

    /// The nearest wall to `p` (m) among the neighbours of segment `hint`.
    /// Returns the segment, the signed distance to the wall (m, negative inside) and the
    /// outward unit normal (from the centerline towards `p`).
    @_noAllocation @_noLocks
    func nearestWall(_ p: Vec3, hint: Int) -> (segment: Int, signed: Double, normal: Vec3) {
        var best = Double.infinity, bestSegment = hint, bestNormal = Vec3(1, 0, 0)
        var k = Int(offsets[hint])
        let k1 = Int(offsets[hint + 1])
        while k < k1 {
            let i = Int(neighbours[k])
            let a = start[i], ab = end[i] - a
            let len2 = ab.dot(ab)
            var t = len2 > 0 ? (p - a).dot(ab) / len2 : 0
            t = t < 0 ? 0 : (t > 1 ? 1 : t)
            let d = p - (a + ab * t)
            let dist = d.length
            let s = dist - (radiusStart[i] + t * (radiusEnd[i] - radiusStart[i]))
            if s < best {
                best = s; bestSegment = i
                if dist > 1e-12 { bestNormal = d * (1 / dist) } else { bestNormal = perpendicular(ab) }
            }
            k += 1
        }
        return (bestSegment, best, bestNormal)
    }

}
