import Core

/// The vessel lumen as the rod's contact solver sees it: the tree's frusta in metres, plus for
/// each segment the list of segments that could hold the nearest wall for a point near it.
/// A rod node moves far less than a segment length in one step, so the nearest segment is found
/// by searching the neighbours of last step's answer — about ten segment tests instead of a tree
/// query — with the full BVH query as the start and the fallback.
public final class RodLumen: @unchecked Sendable {
    public let tree: VesselTree
    let count: Int
    /// The buffers, owned here; the step reads them through this pointer bundle.
    let geometry: LumenGeometry

    /// `reach` (m): how far from a segment's surface another segment still counts as a neighbour.
    public init(_ tree: VesselTree, reach: Double = 0.01) {
        self.tree = tree
        count = tree.segmentCount
        let start = UnsafeMutablePointer<Vec3>.allocate(capacity: count), end = UnsafeMutablePointer<Vec3>.allocate(capacity: count)
        let radiusStart = UnsafeMutablePointer<Double>.allocate(capacity: count), radiusEnd = UnsafeMutablePointer<Double>.allocate(capacity: count)
        for i in 0..<count {
            start[i] = tree.segmentStart[i] * 1e-3; end[i] = tree.segmentEnd[i] * 1e-3
            radiusStart[i] = tree.radiusStart[i] * 1e-3; radiusEnd[i] = tree.radiusEnd[i] * 1e-3
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
        let offsets = UnsafeMutablePointer<Int32>.allocate(capacity: count + 1)
        let total = lists.reduce(0) { $0 + $1.count }
        let neighbours = UnsafeMutablePointer<Int32>.allocate(capacity: max(total, 1))
        var k = 0
        for i in 0..<count {
            offsets[i] = Int32(k)
            for j in lists[i] { neighbours[k] = j; k += 1 }
        }
        offsets[count] = Int32(k)
        geometry = LumenGeometry(start: start, end: end, radiusStart: radiusStart, radiusEnd: radiusEnd, offsets: offsets, neighbours: neighbours)
    }

    deinit {
        geometry.start.deallocate(); geometry.end.deallocate(); geometry.radiusStart.deallocate()
        geometry.radiusEnd.deallocate(); geometry.offsets.deallocate(); geometry.neighbours.deallocate()
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

/// Pointers into a `RodLumen`'s buffers, so the step holds no reference; valid while the lumen
/// lives (the rod model keeps it).
struct LumenGeometry {
    let start: UnsafeMutablePointer<Vec3>
    let end: UnsafeMutablePointer<Vec3>
    let radiusStart: UnsafeMutablePointer<Double>
    let radiusEnd: UnsafeMutablePointer<Double>
    let offsets: UnsafeMutablePointer<Int32>
    let neighbours: UnsafeMutablePointer<Int32>

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
