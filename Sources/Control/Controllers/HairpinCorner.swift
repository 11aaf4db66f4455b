import Core

/// A branch that leaves its parent back against the way the catheter travels along it (the
/// brachiocephalic trunk out of the arch from a femoral approach): its take-off is sharper than
/// a tip pushed forward can turn, and the path servo takes it with a reverse-curve engagement
/// instead (`PathServo.planHairpin`). Found from the route's centerline, before the run.
public struct HairpinCorner: Sendable, Equatable {
    /// mm — where the route leaves the parent's axis for the branch.
    public var point: Vec3
    /// Unit directions: the way the catheter comes along the parent, and the way the branch leaves.
    public var incoming: Vec3
    public var outgoing: Vec3
    /// rad — the angle between them (0: straight on, π: straight back).
    public var angle: Double
    /// mm — the parent's lumen radius at the corner and the branch's at its opening.
    public var parentRadius: Double
    public var branchRadius: Double

    public init(point: Vec3, incoming: Vec3, outgoing: Vec3, angle: Double, parentRadius: Double, branchRadius: Double) {
        self.point = point; self.incoming = incoming; self.outgoing = outgoing
        self.angle = angle; self.parentRadius = parentRadius; self.branchRadius = branchRadius
    }

    /// The route's sharpest turn, if sharper than `threshold` (rad): at each vertex the direction
    /// over the `window` mm before it against the direction over the `window` mm after it. Call
    /// it on the route as the vessel tree gives it (corners not yet rounded), where a branch's
    /// take-off is one vertex; the window is short so that the parent's own curvature (an arch
    /// turns ~10° in 5 mm) adds little. Not for the cycle: it allocates.
    public static func find(in route: [(point: Vec3, radius: Double)], sharperThan threshold: Double, window: Double = 5) -> HairpinCorner? {
        guard route.count >= 3, window > 0, threshold.isFinite else { return nil }
        let polyline = RoutePolyline(route)
        let arc = polyline.arc
        let at = polyline.at
        guard let total = arc.last, total.isFinite, total > 0 else { return nil }
        var best: HairpinCorner?
        for i in 1..<(route.count - 1) {
            // Too near either end of the route for a whole window: not a take-off to plan for.
            guard arc[i] >= window, arc[i] + window <= total else { continue }
            let before = route[i].point - at(arc[i] - window).point
            let after = at(arc[i] + window).point - route[i].point
            let lb = before.length, la = after.length
            guard lb > 1e-9, la > 1e-9 else { continue }
            let incoming = before * (1 / lb), outgoing = after * (1 / la)
            let angle = arcCosine(max(-1, min(1, incoming.dot(outgoing))))
            guard angle > threshold, angle > (best?.angle ?? 0) else { continue }
            best = HairpinCorner(point: route[i].point, incoming: incoming, outgoing: outgoing, angle: angle,
                                 parentRadius: route[i].radius, branchRadius: at(arc[i] + window).radius)
        }
        return best
    }
}
