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

    @Test(arguments: [FluoroEncoding.linear, .log], [false, true])
    func aRegionRenderedAloneHoldsWhatTheWholeFrameHoldsThere(encoding: FluoroEncoding, monochrome1: Bool) throws {
        // Noise far below a grey level, so that two renders with different noise agree.
        var settings = FluoroSettings()
        settings.photonsPerPixel = 1e12
        settings.electronicNoise = 0
        settings.encoding = encoding
        settings.monochrome1 = monochrome1
        settings.motion = .typical
        let catheter = (0...60).map { Vec3(Double($0) * 0.2, 0, 100 + Double($0)) }
        let tube = Phantoms.straightTube()
        let at: Nanoseconds = 1_300_000_000
        let whole = try FluoroRenderer(geometry: geometry, settings: settings).render(tree: tube, catheter: catheter, frame: 2, acquiredAt: at, region: nil)
        #expect(whole.rendered == nil)
        let tip = geometry.project(catheter.last!)
        let asked = PixelRegion.around(u: tip.u, v: tip.v, half: 20, in: geometry.columns, geometry.rows)
        let renderer = try #require(Optional(FluoroRenderer(geometry: geometry, settings: settings)))
        let part = try renderer.render(tree: tube, catheter: catheter, frame: 2, acquiredAt: at, region: asked)
        let rendered = try #require(part.rendered)
        #expect(rendered.contains(asked) && rendered.width < geometry.columns, "\(rendered)")
        #expect(part.truth == whole.truth)
        var differ = 0, outside = Set<UInt16>()
        for v in 0..<geometry.rows {
            for u in 0..<geometry.columns {
                let inside = u >= rendered.x && u < rendered.x + rendered.width && v >= rendered.y && v < rendered.y + rendered.height
                if inside {
                    if abs(Int(part.frame[u, v]) - Int(whole.frame[u, v])) > 1 { differ += 1 }
                } else {
                    outside.insert(part.frame[u, v])
                }
            }
        }
        #expect(differ == 0, "\(differ) pixels of the region differ from the whole frame's")
        // Outside: one flat grey, no structure for a search to find.
        #expect(outside.count == 1, "\(outside.count) grey values outside the region")
        // The same renderer renders the whole frame again after a part.
        let again = try renderer.render(tree: tube, catheter: catheter, frame: 2, acquiredAt: at, region: nil)
        #expect(zip(again.frame.pixels, whole.frame.pixels).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
        // A region that is the whole frame, or scatter (a veil at the whole frame's mean), renders all of it.
        let all = PixelRegion(x: 0, y: 0, width: geometry.columns, height: geometry.rows)
        #expect(try renderer.render(tree: tube, catheter: catheter, frame: 2, acquiredAt: at, region: all).rendered == nil)
        settings.scatterFraction = 0.2
        #expect(try FluoroRenderer(geometry: geometry, settings: settings).render(tree: tube, catheter: catheter, frame: 2, acquiredAt: at, region: asked).rendered == nil)
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
