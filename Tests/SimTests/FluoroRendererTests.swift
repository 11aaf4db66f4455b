import Core
import Foundation
import Imaging
import Testing
@testable import Sim

@Suite struct FluoroRendererTests {
    /// A small detector keeps the tests quick; the physics does not depend on its size.
    let geometry = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 256, rows: 256, pixelSpacing: 1.2,
                                isocenter: Vec3(0, 0, 150))

    func mean(_ f: Frame, around c: (Double, Double), radius: Double, inner: Double = 0) -> Double {
        var sum = 0.0, n = 0.0
        for v in 0..<f.height {
            for u in 0..<f.width {
                let d = ((Double(u) - c.0) * (Double(u) - c.0) + (Double(v) - c.1) * (Double(v) - c.1)).squareRoot()
                if d <= radius, d >= inner { sum += Double(f[u, v]); n += 1 }
            }
        }
        return sum / max(n, 1)
    }

    @Test func contrastAttenuatesAsBeerLambertSays() throws {
        var settings = FluoroSettings()
        settings.photonsPerPixel = 1e7
        settings.electronicNoise = 0
        let tube = Phantoms.straightTube()
        let with = try FluoroRenderer(geometry: geometry, settings: settings).render(tree: tube, catheter: [], frame: 0).0
        settings.contrast = 0
        let without = try FluoroRenderer(geometry: geometry, settings: settings).render(tree: tube, catheter: [], frame: 0).0
        // A perpendicular ray through the axis crosses 2r = 8 mm of contrast.
        let centre = geometry.project(Vec3(0, 0, 150))
        let ratio = mean(with, around: (centre.u, centre.v), radius: 1.5) / mean(without, around: (centre.u, centre.v), radius: 1.5)
        let expected = exp(-FluoroSettings().contrast * 8)
        #expect(abs(ratio - expected) < 0.01, "ratio \(ratio), Beer–Lambert \(expected)")
    }

    @Test func theTruthIsTheProjectedDistalEndAndTheMarkerIsDarkThere() throws {
        let catheter = (0...60).map { Vec3(Double($0) * 0.2, 0, 100 + Double($0)) }
        // Fine pixels around the tip, so the 2 mm marker band spans several of them.
        let fine = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 256, rows: 256, pixelSpacing: 0.3,
                                isocenter: catheter.last!)
        let (frame, truth) = try FluoroRenderer(geometry: fine).render(tree: Phantoms.straightTube(), catheter: catheter, frame: 3)
        let p = fine.project(catheter.last!)
        #expect(truth.frame == 3)
        #expect(abs(truth.tip2D[0] - p.u) < 1e-9 && abs(truth.tip2D[1] - p.v) < 1e-9)
        #expect(truth.tip3D == [catheter.last!.x, catheter.last!.y, catheter.last!.z])
        #expect(truth.centerline2D.count == catheter.count)
        // The marker band is the darkest thing near the tip.
        let back = fine.project(catheter[catheter.count - 2])  // 1 mm proximal: inside the band
        let atTip = mean(frame, around: (back.u, back.v), radius: 2)
        let around = mean(frame, around: (p.u, p.v), radius: 40, inner: 25)
        #expect(atTip < 0.6 * around, "tip \(atTip) vs surroundings \(around)")
    }

    @Test("The catheter runs on out of the field: no proximal end is drawn in it")
    func theCatheterRunsOnOutOfTheField() throws {
        // 10 mm of catheter in the middle of the field, its proximal end 5 mm off the isocentre.
        let catheter = (0...10).map { Vec3(0, 0, 145 + Double($0)) }
        var settings = FluoroSettings()
        settings.photonsPerPixel = 1e6
        settings.contrast = 0
        let proximal = geometry.project(catheter[0] - Vec3(0, 0, 40))  // 40 mm behind the proximal end
        let edge = geometry.project(Vec3(0, 0, 150 - 90))               // near the border of the field
        let extended = try FluoroRenderer(geometry: geometry, settings: settings).render(tree: Phantoms.straightTube(), catheter: catheter, frame: 0)
        settings.proximalExtension = 0
        let cut = try FluoroRenderer(geometry: geometry, settings: settings).render(tree: Phantoms.straightTube(), catheter: catheter, frame: 0)
        let ratio = mean(extended.0, around: (proximal.u, proximal.v), radius: 0.8) / mean(cut.0, around: (proximal.u, proximal.v), radius: 0.8)
        let ratioAtEdge = mean(extended.0, around: (edge.u, edge.v), radius: 0.8) / mean(cut.0, around: (edge.u, edge.v), radius: 0.8)
        // A 2 mm shaft at 0.12/mm attenuates a central ray by exp(−0.24) ≈ 0.79 (less after blur).
        #expect(ratio < 0.9, "behind the proximal end: \(ratio)")
        #expect(ratioAtEdge < 0.9, "near the border: \(ratioAtEdge)")
        // The truth is still the simulated centerline and its distal end.
        #expect(extended.1.centerline2D.count == catheter.count)
        #expect(extended.1.tip3D == cut.1.tip3D)
    }

    @Test func quantumNoiseFallsWithTheSquareRootOfTheDose() throws {
        func noise(_ photons: Double) throws -> Double {
            var s = FluoroSettings()
            s.photonsPerPixel = photons
            s.electronicNoise = 0
            let empty = VesselTreeDescription(name: "none", vessels: [])
            let f = try FluoroRenderer(geometry: geometry, settings: s, seed: 9).render(tree: empty, catheter: [], frame: 0).0
            let g = try FluoroRenderer(geometry: geometry, settings: s, seed: 10).render(tree: empty, catheter: [], frame: 0).0
            // Two exposures of the same scene: their difference is noise only.
            var d: [Double] = []
            for v in 60..<200 { for u in 60..<200 { d.append(Double(f[u, v]) - Double(g[u, v])) } }
            let m = d.reduce(0, +) / Double(d.count)
            return (d.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(d.count)).squareRoot()
        }
        let low = try noise(1000), high = try noise(10000)
        #expect(abs(low / high - 10.0.squareRoot()) < 0.6, "noise ratio \(low / high)")
    }

    @Test func theSameSeedRendersTheSameFrame() throws {
        let a = try FluoroRenderer(geometry: geometry, seed: 4).render(tree: Phantoms.aorticArch(), catheter: [], frame: 0).0
        let b = try FluoroRenderer(geometry: geometry, seed: 4).render(tree: Phantoms.aorticArch(), catheter: [], frame: 0).0
        let c = try FluoroRenderer(geometry: geometry, seed: 5).render(tree: Phantoms.aorticArch(), catheter: [], frame: 0).0
        #expect(a == b)
        #expect(a != c)
        #expect(a.pixels.max()! <= 4095, "12-bit values in 16-bit frames")
    }
}

@Suite struct FluoroMotionTests {
    let geometry = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 256, rows: 256, pixelSpacing: 1.2,
                                isocenter: Vec3(0, 30, 20))

    @Test("Breathing moves the truth and the vessels together; the spine stays")
    func breathingMovesTheScene() throws {
        var settings = FluoroSettings()
        settings.motion = SceneMotion(breathingAmplitude: 10)
        settings.photonsPerPixel = 1e7
        settings.electronicNoise = 0
        let catheter = (0...40).map { Vec3(15, 60, -100 + Double($0) * 2) }
        let renderer = FluoroRenderer(geometry: geometry, settings: settings, seed: 2)
        let (f0, t0) = try renderer.render(tree: Phantoms.aorticArch(), catheter: catheter, frame: 0, acquiredAt: 0)
        // Half a breathing period later the scene is 10 mm further caudal (−z) and 3.3 mm anterior.
        let (f1, t1) = try renderer.render(tree: Phantoms.aorticArch(), catheter: catheter, frame: 1, acquiredAt: 2_000_000_000)
        #expect(abs((t1.tip3D[2] - t0.tip3D[2]) + 10) < 1e-9)
        let moved = geometry.project(Vec3(t1.tip3D[0], t1.tip3D[1], t1.tip3D[2]))
        #expect(abs(moved.v - t1.tip2D[1]) < 1e-9)
        #expect(t1.tip2D[1] - t0.tip2D[1] > 8, "the tip moves down the image (rows grow caudally)")
        // The frame changed where the vessels are, by far more than noise.
        var changed = 0
        for i in 0..<f0.pixels.count where abs(Int(f0.pixels[i]) - Int(f1.pixels[i])) > 40 { changed += 1 }
        #expect(changed > 500)
        // The motion model itself: zero at t = 0, peak at half the period.
        #expect(SceneMotion.typical.offset(at: 0).z == 0)
        #expect(abs(SceneMotion(breathingAmplitude: 8).offset(at: 2).z + 8) < 1e-12)
    }

    @Test("The table normal deviates have mean 0 and unit variance")
    func normalTable() {
        let t = NormalTable.shared.values
        let mean = t.reduce(0.0) { $0 + Double($1) } / Double(t.count)
        let variance = t.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(t.count) - mean * mean
        #expect(abs(mean) < 1e-6)
        #expect(abs(variance - 1) < 2e-3, "variance \(variance)")
        #expect(abs(NormalTable.inverseNormal(0.975) - 1.959964) < 1e-5)
    }
}
