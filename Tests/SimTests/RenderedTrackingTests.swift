import Core
import Foundation
import Imaging
import Sim
import Testing

/// The detector on frames the simulator renders, where a contrast-filled vessel beyond the tip
/// competes with the catheter for the ridge.
@Suite struct RenderedTrackingTests {
    /// A guiding catheter in from outside the field (the aorta is not drawn), engaged 15 mm into
    /// the coronary ostium.
    static func engagedGuide() -> [Vec3] {
        let guide = Phantoms.coronaryGuideRoute()
        return Polyline.prefix(guide.route, length: guide.ostium + 15, step: 1)
    }

    @Test func theTipAtTheCoronaryOstiumIsTheMarkersDistalEnd() throws {
        // The artery beyond the tip is denser than the shaft coming in over an empty field, so
        // by level alone it looks like the shaft and the tip lands on the band's proximal edge,
        // a band's length (about 5 px here) short. The band has the shaft's width; the artery,
        // which must hold the catheter, is wider.
        let catheter = Self.engagedGuide()
        let geometry = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 512, rows: 512, pixelSpacing: 0.6,
                                    isocenter: catheter.last!)
        let (frame, truth) = try FluoroRenderer(geometry: geometry, seed: 7).render(tree: Phantoms.coronaryTree(), catheter: catheter, frame: 0)
        let d = try #require(try CatheterDetector().detect(frame))
        let err = hypot(d.u - truth.tip2D[0], d.v - truth.tip2D[1])
        #expect(err < 2, "tip (\(d.u), \(d.v)) vs (\(truth.tip2D[0]), \(truth.tip2D[1])): \(err) px")
    }
}
