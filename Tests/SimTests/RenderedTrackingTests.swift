import Core
import Foundation
import Imaging
import Sim
import Testing

/// The detector on frames the simulator renders, where a contrast-filled vessel beyond the tip
/// competes with the catheter for the ridge.
@Suite struct RenderedTrackingTests {
    /// A guiding catheter coming in from outside the field (the aorta is not drawn), engaging
    /// the coronary ostium, then `extra` mm down the main artery.
    static func coronaryCatheter(extra: Double) -> [Vec3] {
        let tree = Phantoms.coronaryTree()
        let main = tree.vessels[0].points.map { Vec3($0[0], $0[1], $0[2]) }
        let entry = (0..<8).map { k in main[0] + Vec3(-120 + 15 * Double(k), 0, 60 - 7.5 * Double(k)) }
        var route = entry + main
        // Cut the route at the inserted length.
        var length = zip(entry, entry.dropFirst()).reduce(0) { $0 + ($1.1 - $1.0).length } + 15 + extra
        var out = [route.removeFirst()]
        for p in route {
            let step = (p - out.last!).length
            if step >= length {
                out.append(out.last! + (p - out.last!) * (length / step))
                return out
            }
            length -= step
            out.append(p)
        }
        return out
    }

    @Test func theTipAtTheCoronaryOstiumIsTheMarkersDistalEnd() throws {
        // The artery beyond the tip is denser than the shaft coming in over an empty field, so
        // by level alone it looks like the shaft and the tip lands on the band's proximal edge,
        // a band's length (about 5 px here) short. The band has the shaft's width; the artery,
        // which must hold the catheter, is wider.
        let catheter = Self.coronaryCatheter(extra: 0)
        let geometry = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 512, rows: 512, pixelSpacing: 0.6,
                                    isocenter: catheter.last!)
        let (frame, truth) = try FluoroRenderer(geometry: geometry, seed: 7).render(tree: Phantoms.coronaryTree(), catheter: catheter, frame: 0)
        let d = try #require(try CatheterDetector().detect(frame))
        let err = hypot(d.u - truth.tip2D[0], d.v - truth.tip2D[1])
        #expect(err < 2, "tip (\(d.u), \(d.v)) vs (\(truth.tip2D[0]), \(truth.tip2D[1])): \(err) px")
    }
}
