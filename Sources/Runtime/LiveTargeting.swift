import Control
import Core
import Foundation
import Sim

/// Lifts a point clicked on one plane's image to the planned route: the ray from that plane's
/// X-ray source through the pixel (its C-arm geometry) is followed through the vessel tree, and
/// the target is the route point the ray passes inside the lumen of. A click that misses every
/// vessel, or hits one the route does not run through, is refused with what it hit: the path
/// servo follows its planned route only, so a point elsewhere could not be reached.
///
/// Built once with the runtime (it allocates); `lift` runs on the submitting thread, never in the cycle.
public struct PixelTargetLifter: Sendable {
    let planes: [CArmGeometry]
    let tree: VesselTree
    /// (count) mm — the servo's route points as `PathServo` follows them (1 mm apart), so that an
    /// index here is the servo's `progress` there; and the lumen radius at each.
    public let route: [Vec3]
    let radii: [Double]
    /// mm a ray may pass outside a lumen and still count as on it (a click a pixel or two off).
    public var tolerance = 1.0
    /// mm — a target this far behind the tip along the route is refused: the servo only advances.
    public var behindTolerance = 3.0

    public init(planes: [CArmGeometry], tree: VesselTreeDescription, route: [Vec3], radii: [Double]) {
        self.planes = planes
        let vessels = VesselTree(tree)
        self.tree = vessels
        let dense = CenterlineRoute(route, radii: radii).polyline
        self.route = dense
        self.radii = dense.map { max(0.5, vessels.nearest($0).radius) }
    }

    /// The route point (and its index) the ray through `pixel` on `plane` passes inside the lumen
    /// of; with `tip` (the fused estimate), a point behind it is refused.
    public func lift(plane: UInt8, pixel: SIMD2<Double>, tip: Vec3? = nil) -> Result<(point: Vec3, routeIndex: Int), IntentRejection> {
        guard Int(plane) < planes.count else { return .failure(.outOfRange("targetPixel.plane")) }
        let g = planes[Int(plane)]
        guard pixel.x.isFinite, pixel.y.isFinite, pixel.x >= 0, pixel.y >= 0, pixel.x <= Double(g.columns), pixel.y <= Double(g.rows) else {
            return .failure(.outOfRange("targetPixel.pixel"))
        }
        let ray = g.ray(u: pixel.x, v: pixel.y)
        let at = String(format: "pixel (%.0f, %.0f) on plane %d", pixel.x, pixel.y, Int(plane))
        // The route point the ray passes nearest, among those whose lumen it passes through
        // (a click on a centreline lands on that centreline, not on a wider vessel behind it).
        // Where the route crosses itself in this view, a point ahead of the tip is preferred: the
        // servo only advances (1 mm per index on its route).
        let tipIndex = tip.flatMap { $0.isFinite ? routeIndex(nearest: $0) : nil }
        var best: (index: Int, distance: Double)?
        var behind: Int?
        for (k, p) in route.enumerated() {
            let v = p - ray.origin
            let along = v.dot(ray.direction)
            guard along > 0 else { continue }
            let distance = (v - ray.direction * along).length
            guard distance - radii[k] <= tolerance else { continue }
            if let tipIndex, Double(tipIndex - k) > behindTolerance {
                behind = max(behind ?? 0, tipIndex - k)
                continue
            }
            if distance < best?.distance ?? .infinity { best = (k, distance) }
        }
        if let best { return .success((route[best.index], best.index)) }
        if let behind {
            return .failure(.unknownTarget("\(at) is \(behind) mm behind the tip along the route: "
                                           + "the servo only advances; retract with the insertion jog"))
        }
        // Not on the route: say what the ray hit, if anything, between source and detector.
        var hit: (vessel: Int, distance: Double)?
        var t = 0.0
        while t <= g.sourceToDetector {
            let n = tree.nearest(ray.origin + ray.direction * t)
            if n.signedDistance < tolerance, n.signedDistance < hit?.distance ?? .infinity { hit = (n.vessel, n.signedDistance) }
            // Steps no longer than the distance to the nearest wall can miss no lumen.
            t += max(0.5, n.signedDistance)
        }
        if let hit, hit.vessel < tree.vesselNames.count {
            return .failure(.unknownTarget("\(at) is on vessel '\(tree.vesselNames[hit.vessel])', which the planned route does not run through"))
        }
        return .failure(.unknownTarget("\(at) is outside every vessel: click inside a vessel on the route"))
    }

    /// The index of the route point nearest `p`.
    public func routeIndex(nearest p: Vec3) -> Int {
        var best = (index: 0, distance: Double.infinity)
        for (k, q) in route.enumerated() {
            let d = (q - p).length
            if d < best.distance { best = (k, d) }
        }
        return best.index
    }
}
