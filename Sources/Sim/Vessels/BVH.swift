import Core

/// A bounding volume hierarchy over capsule-like segments (axis-aligned boxes around each
/// segment grown by its larger radius), built once; queries walk it with a fixed-size stack and
/// prune by the box distance minus the largest radius inside — a lower bound of the signed
/// distance to any segment below.
struct BVH: Sendable {
    struct Node: Sendable {
        var lower: Vec3
        var upper: Vec3
        /// The largest radius of any segment below.
        var maxRadius: Double
        /// Leaf: first segment in `order` and count; inner: left child index, count 0.
        var first: Int32
        var count: Int32
        var right: Int32
    }

    private(set) var nodes: [Node] = []
    private(set) var order: [Int32] = []

    init(start: [Vec3], end: [Vec3], radiusStart: [Double], radiusEnd: [Double]) {
        let n = start.count
        order = (0..<n).map(Int32.init)
        guard n > 0 else { return }
        var lower = [Vec3](repeating: .zero, count: n), upper = lower, centre = lower
        var radius = [Double](repeating: 0, count: n)
        for i in 0..<n {
            let r = max(radiusStart[i], radiusEnd[i])
            radius[i] = r
            lower[i] = Vec3(min(start[i].x, end[i].x), min(start[i].y, end[i].y), min(start[i].z, end[i].z)) - Vec3(r, r, r)
            upper[i] = Vec3(max(start[i].x, end[i].x), max(start[i].y, end[i].y), max(start[i].z, end[i].z)) + Vec3(r, r, r)
            centre[i] = (start[i] + end[i]) * 0.5
        }
        nodes.reserveCapacity(2 * n)
        build(0, n, lower, upper, centre, radius)
    }

    @discardableResult
    private mutating func build(_ from: Int, _ to: Int, _ lo: [Vec3], _ hi: [Vec3], _ c: [Vec3], _ r: [Double]) -> Int {
        var l = Vec3(repeating: .infinity), u = Vec3(repeating: -.infinity), maxR = 0.0
        for k in from..<to {
            let i = Int(order[k])
            l = Vec3(min(l.x, lo[i].x), min(l.y, lo[i].y), min(l.z, lo[i].z))
            u = Vec3(max(u.x, hi[i].x), max(u.y, hi[i].y), max(u.z, hi[i].z))
            maxR = max(maxR, r[i])
        }
        let index = nodes.count
        nodes.append(Node(lower: l, upper: u, maxRadius: maxR, first: Int32(from), count: Int32(to - from), right: -1))
        if to - from <= 4 { return index }
        // Split at the median of the longest axis of the centres.
        let extent = u - l
        let axis = extent.x >= extent.y && extent.x >= extent.z ? 0 : (extent.y >= extent.z ? 1 : 2)
        let slice = order[from..<to].sorted { c[Int($0)][axis] < c[Int($1)][axis] }
        order.replaceSubrange(from..<to, with: slice)
        let mid = (from + to) / 2
        nodes[index].count = 0
        nodes[index].first = Int32(index + 1)
        build(from, mid, lo, hi, c, r)
        nodes[index].right = Int32(build(mid, to, lo, hi, c, r))
        return index
    }

    /// Visits segments in an order that prunes well; `visit(segment, lowerBound)` returns the
    /// best signed distance so far, and subtrees whose bound cannot beat it are skipped.
    func query(_ p: Vec3, _ visit: (Int, Double) -> Double) {
        guard !nodes.isEmpty else { return }
        var stack = InlineArray<64, Int32>(repeating: 0)
        var top = 1
        var best = Double.infinity
        while top > 0 {
            top -= 1
            let node = nodes[Int(stack[top])]
            let bound = boxDistance(p, node) - node.maxRadius
            if bound >= best { continue }
            if node.count > 0 {
                for k in Int(node.first)..<Int(node.first + node.count) {
                    best = visit(Int(order[k]), bound)
                }
            } else {
                // Near child last, so it is popped first.
                let a = Int(node.first), b = Int(node.right)
                let da = boxDistance(p, nodes[a]), db = boxDistance(p, nodes[b])
                if top + 2 > 64 { continue }
                stack[top] = Int32(da < db ? b : a); top += 1
                stack[top] = Int32(da < db ? a : b); top += 1
            }
        }
    }

    @inline(__always) func boxDistance(_ p: Vec3, _ n: Node) -> Double {
        let dx = max(n.lower.x - p.x, 0, p.x - n.upper.x)
        let dy = max(n.lower.y - p.y, 0, p.y - n.upper.y)
        let dz = max(n.lower.z - p.z, 0, p.z - n.upper.z)
        return (dx * dx + dy * dy + dz * dz).squareRoot()
    }
}
