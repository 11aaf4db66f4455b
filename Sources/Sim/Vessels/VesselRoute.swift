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
        func attach(_ parent: Int, _ child: Int) -> Int {
            let start = point(child, 0)
            return vessels[parent].points.indices.min { (point(parent, $0) - start).length < (point(parent, $1) - start).length }!
        }
        var out: [(point: Vec3, radius: Double)] = []
        for (n, v) in chain.enumerated() {
            let count = vessels[v].points.count
            let isRoot = n == 0, isTarget = n == chain.count - 1
            // Only a root entered from its far end is travelled backwards.
            let backwards = isRoot && sheath == .rootEnd
            if isTarget {
                // Into the target: from its entry to `depth` mm along it.
                var k = backwards ? count - 1 : 0
                let step = backwards ? -1 : 1
                out.append((point(v, k), radius(v, k)))
                var travelled = 0.0
                while k + step >= 0, k + step < count {
                    let a = point(v, k), b = point(v, k + step)
                    let seg = (b - a).length
                    if travelled + seg >= depth {
                        let f = (depth - travelled) / seg
                        out.append((a + (b - a) * f, radius(v, k) + (radius(v, k + step) - radius(v, k)) * f))
                        break
                    }
                    travelled += seg
                    out.append((b, radius(v, k + step)))
                    k += step
                }
            } else {
                let exit = attach(v, chain[n + 1])
                if backwards {
                    for k in stride(from: count - 1, through: exit, by: -1) { out.append((point(v, k), radius(v, k))) }
                } else {
                    for k in 0...exit { out.append((point(v, k), radius(v, k))) }
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
