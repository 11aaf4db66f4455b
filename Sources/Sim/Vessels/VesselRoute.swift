import Core

public enum VesselRouteError: Error, Equatable, CustomStringConvertible {
    case unknownVessel(String)
    case detached(String)
    public var description: String {
        switch self {
        case .unknownVessel(let name): "no vessel named '\(name)'"
        case .detached(let name): "vessel '\(name)' has a parent that is not in the tree"
        }
    }
}

extension VesselTreeDescription {
    /// The centerline route (mm) a catheter takes from the end of the root vessel where the
    /// sheath sits (`sheath`: its far end unless the tree says its start) to `depth` mm into
    /// `vessel`: along the root to the branch point, then forward through each branch on the way.
    public func route(toVessel name: String, depth: Double) throws(VesselRouteError) -> [Vec3] {
        try routeWithRadii(toVessel: name, depth: depth).map(\.point)
    }

    /// The same route with the lumen radius (mm) at each point.
    public func routeWithRadii(toVessel name: String, depth: Double) throws(VesselRouteError) -> [(point: Vec3, radius: Double)] {
        guard let target = vessels.firstIndex(where: { $0.name == name }) else { throw .unknownVessel(name) }
        // The chain target → … → root.
        var chain = [target]
        while let parent = vessels[chain.last!].parent {
            guard let p = vessels.firstIndex(where: { $0.name == parent }) else { throw .detached(vessels[chain.last!].name) }
            chain.append(p)
        }
        chain.reverse()
        func point(_ v: Int, _ k: Int) -> Vec3 { let p = vessels[v].points[k]; return Vec3(p[0], p[1], p[2]) }
        func radius(_ v: Int, _ k: Int) -> Double { vessels[v].points[k][3] }
        /// Where the child leaves the parent's centerline, as the segment `k…k+1` it lies on and
        /// the fraction along it. A child that starts on the parent's axis leaves at that point
        /// (the foot of the perpendicular; the nearest *listed* point can be half a point
        /// spacing away and bends the take-off by tens of degrees). A child that starts at the
        /// parent's wall leaves where its own first segment, run back, meets the axis, so the
        /// route takes off at the branch's angle rather than square to the parent.
        func attach(_ parent: Int, _ child: Int) -> (segment: Int, fraction: Double) {
            let start = point(child, 0)
            let count = vessels[parent].points.count
            guard count > 1 else { return (0, 0) }
            var foot = (segment: 0, fraction: 0.0, distance: Double.infinity)
            for k in 0..<(count - 1) {
                let (f, q) = VesselTree.closestOnSegment(start, point(parent, k), point(parent, k + 1))
                let d = (q - start).length
                if d < foot.distance { foot = (k, f, d) }
            }
            // On the axis (within a tenth of a millimetre), or no direction to run back along.
            guard foot.distance > 0.1, vessels[child].points.count > 1 else { return (foot.segment, foot.fraction) }
            let back = start - point(child, 1)
            guard back.length > 1e-9 else { return (foot.segment, foot.fraction) }
            let u = back * (1 / back.length)
            // The closest approach of the ray start + t·u (0 ≤ t ≤ 3 × the offset) to each segment.
            let reach = 3 * foot.distance
            var best = (segment: foot.segment, fraction: foot.fraction, distance: Double.infinity)
            for k in 0..<(count - 1) {
                let a = point(parent, k), ab = point(parent, k + 1) - a
                let l2 = ab.dot(ab)
                guard l2 > 0 else { continue }
                let (t, f) = closestApproach(start, u, reach, a, ab)
                let d = (a + ab * f - (start + u * t)).length
                if d < best.distance { best = (k, f, d) }
            }
            // Taken only if the run-back line really meets the axis: within a tenth of the
            // offset. A branch that curls away from its parent keeps the perpendicular foot.
            return best.distance <= 0.1 * foot.distance ? (best.segment, best.fraction) : (foot.segment, foot.fraction)
        }
        var out: [(point: Vec3, radius: Double)] = []
        // A junction listed by both vessels would otherwise come twice: a zero-length segment,
        // across which no corner can be measured or rounded.
        func append(_ p: Vec3, _ r: Double) {
            if let last = out.last, (last.point - p).length < 1e-6 { return }
            out.append((p, r))
        }
        for (n, v) in chain.enumerated() {
            let count = vessels[v].points.count
            let isRoot = n == 0, isTarget = n == chain.count - 1
            // Only a root entered from its far end is travelled backwards.
            let backwards = isRoot && sheath == .rootEnd
            if isTarget {
                // Into the target: from its entry to `depth` mm along it.
                var k = backwards ? count - 1 : 0
                let step = backwards ? -1 : 1
                append(point(v, k), radius(v, k))
                var travelled = 0.0
                while k + step >= 0, k + step < count {
                    let a = point(v, k), b = point(v, k + step)
                    let seg = (b - a).length
                    if travelled + seg >= depth {
                        let f = (depth - travelled) / seg
                        append(a + (b - a) * f, radius(v, k) + (radius(v, k + step) - radius(v, k)) * f)
                        break
                    }
                    travelled += seg
                    append(b, radius(v, k + step))
                    k += step
                }
            } else {
                let exit = attach(v, chain[n + 1])
                if backwards {
                    for k in stride(from: count - 1, through: exit.segment + 1, by: -1) { append(point(v, k), radius(v, k)) }
                } else {
                    for k in 0...exit.segment { append(point(v, k), radius(v, k)) }
                }
                let k = exit.segment, f = exit.fraction
                if k + 1 < count {
                    append(point(v, k) + (point(v, k + 1) - point(v, k)) * f, radius(v, k) + (radius(v, k + 1) - radius(v, k)) * f)
                }
            }
        }
        // The first millimetres of a branch run inside its parent's lumen: there the room
        // around the route is the parent's, not the branch's. The radius becomes the depth of
        // the point inside the lumen (the union of all vessels), at least the own.
        let lumen = VesselTree(self)
        for i in out.indices { out[i].radius = max(out[i].radius, -lumen.nearest(out[i].point).signedDistance) }
        return out
    }
}

/// The closest pair of points between the ray piece `p + t·u` (|u| = 1, 0 ≤ t ≤ `reach`) and the
/// segment `a + f·ab` (0 ≤ f ≤ 1), as (t, f): minimise over f for the clamped t, then the other
/// way round, on the two lines' normal equations.
func closestApproach(_ p: Vec3, _ u: Vec3, _ reach: Double, _ a: Vec3, _ ab: Vec3) -> (t: Double, f: Double) {
    let r = p - a
    let e = ab.dot(ab), b = u.dot(ab), c = u.dot(r), g = ab.dot(r)
    let denom = e - b * b  // |u|²|ab|² − (u·ab)², ≥ 0
    var t = denom > 1e-12 * e ? min(reach, max(0, (b * g - c * e) / denom)) : 0
    var f = (b * t + g) / e
    if f < 0 {
        f = 0
        t = min(reach, max(0, -c))
    } else if f > 1 {
        f = 1
        t = min(reach, max(0, b - c))
    }
    return (t, f)
}
