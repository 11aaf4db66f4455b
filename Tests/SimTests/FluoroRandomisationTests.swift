import Core
import Foundation
import Imaging
import Testing
@testable import Sim

/// The renderer's domain randomisation and the split of the tracking sequences.
@Suite struct FluoroRandomisationTests {
    let geometry = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 128, rows: 128, pixelSpacing: 1.2,
                                isocenter: Vec3(0, 0, 150))

    func quiet() -> FluoroSettings {
        var s = FluoroSettings()
        s.photonsPerPixel = 1e7
        s.electronicNoise = 0
        return s
    }

    @Test func theDefaultAnatomyIsTheOneTheRendererAlwaysDrew() {
        // The tuned look must not move: the fixed conditions and the existing figures rest on it.
        let a = FluoroRenderer.anatomicalBackground(geometry)
        let b = FluoroRenderer.anatomicalBackground(geometry, AnatomySettings())
        #expect(a == b)
        var over = AnatomySettings()
        over.ribOverlap = 12
        #expect(FluoroRenderer.anatomicalBackground(geometry, over) != a, "ribs reaching over the spine edge change the background")
    }

    @Test func logEncodingMapsFourDecadesOntoTwelveBits() throws {
        var s = quiet()
        s.encoding = .log
        let (log, _) = try FluoroRenderer(geometry: geometry, settings: s).render(tree: Phantoms.straightTube(), catheter: [], frame: 0)
        let (lin, _) = try FluoroRenderer(geometry: geometry, settings: quiet()).render(tree: Phantoms.straightTube(), catheter: [], frame: 0)
        for i in stride(from: 0, to: lin.pixels.count, by: 97) {
            let t = max(1e-4, Double(lin.pixels[i]) / 4095)
            let expected = 4095 * (1 + log10(t) / 4)
            #expect(abs(Double(log.pixels[i]) - expected) < 4, "pixel \(i): \(log.pixels[i]) vs \(expected)")
        }
    }

    @Test func monochrome1IsTheInvertedFrameAndReadsBackExactly() throws {
        var s = quiet()
        s.monochrome1 = true
        let (m1, _) = try FluoroRenderer(geometry: geometry, settings: s, seed: 3).render(tree: Phantoms.straightTube(), catheter: [], frame: 0)
        let (m2, _) = try FluoroRenderer(geometry: geometry, settings: quiet(), seed: 3).render(tree: Phantoms.straightTube(), catheter: [], frame: 0)
        #expect(m1.pixels != m2.pixels)
        #expect(FluoroRenderer.monochrome2(m1).pixels == m2.pixels)
    }

    @Test func scatterLowersTheContrastOfAVessel() throws {
        var s = quiet()
        let tube = Phantoms.straightTube()
        let centre = geometry.project(Vec3(0, 0, 150))
        func contrast(_ settings: FluoroSettings) throws -> Double {
            let (f, _) = try FluoroRenderer(geometry: geometry, settings: settings).render(tree: tube, catheter: [], frame: 0)
            let inside = Double(f[Int(centre.u.rounded()), Int(centre.v.rounded())]), outside = Double(f[Int(centre.u.rounded()) + 20, Int(centre.v.rounded())])
            return (outside - inside) / outside
        }
        let clean = try contrast(s)
        s.scatterFraction = 0.4
        let veiled = try contrast(s)
        #expect(clean > 0.1)
        #expect(veiled < 0.8 * clean, "scatter \(veiled) vs none \(clean)")
    }

    @Test func theSplitsShareNoSequenceAndEachIsDeterministic() {
        let tuning = (0..<40).map { RandomisedTrackingSequence.draw(.tuning, index: $0) }
        let heldout = (0..<40).map { RandomisedTrackingSequence.draw(.heldout, index: $0) }
        #expect(Set(tuning.map(\.noiseSeed)).isDisjoint(with: heldout.map(\.noiseSeed)))
        #expect(Set(tuning.map(\.pixelPitch)).isDisjoint(with: heldout.map(\.pixelPitch)))
        #expect(RandomisedTrackingSequence.draw(.heldout, index: 7).name == heldout[7].name)
        // The randomisation covers what it claims to, within one split.
        #expect(heldout.contains { $0.fluoro.encoding == .log } && heldout.contains { $0.fluoro.encoding == .linear })
        #expect(heldout.contains { $0.fluoro.monochrome1 })
        #expect(heldout.contains { $0.fluoro.anatomy.ribOverlap > 4 })
        #expect(heldout.contains { !$0.distractors.isEmpty })
        #expect(heldout.allSatisfy { (0.15...0.6).contains($0.pixelPitch) })
        #expect(heldout.allSatisfy { $0.fluoro.markerLength == 0 || (1...4).contains($0.fluoro.markerLength) })
    }

    @Test func distractorVesselsLieAlongThePath() {
        var r = RandomisedTrackingSequence.draw(.tuning, index: 0)
        r.distractors = [.init(along: 1, offset: 0, angleDeg: 90, elevationDeg: 0, length: 40, radius: 2, ends: true)]
        let path = (0...50).map { Vec3(0, 0, Double($0)) }
        let v = r.distractorVessels(along: path)
        #expect(v.count == 1)
        let first = v[0].points[0]
        #expect(abs(first[0]) < 1e-9 && abs(first[2] - 50) < 1e-9, "an ending vessel starts at the path's point")
        #expect(r.distractorVessels(along: []).isEmpty)
    }
}
