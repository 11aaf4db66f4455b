import Core
import Foundation
import Testing
@testable import Imaging

/// The pixel pitch reaches the detector: its lengths are physical (mm) and become pixels at the
/// frame's pitch; a frame without a pitch keeps the pixel lengths as given.
@Suite struct PixelPitchTests {
    /// One catheter 2.8 mm across, over the same 102.4 mm field, drawn at `pitch` mm per pixel.
    func scene(pitch: Double, seed: UInt64) -> BezierScene {
        let k = 0.4 / pitch
        var s = BezierScene()
        s.size = Int((256 * k).rounded())
        s.width = 2.8 / pitch
        s.density = 0.35
        s.photons = 3000
        s.p0 = (-10 * k, 140 * k); s.p1 = (60 * k, 60 * k); s.p2 = (130 * k, 200 * k); s.p3 = (170 * k, 110 * k)
        s.seed = seed
        return s
    }

    @Test(arguments: [(0.4, UInt64(41)), (0.2, 42), (0.2, 43)])
    func theSameCatheterIsFoundAtEitherPitch(pitch: Double, seed: UInt64) throws {
        let s = scene(pitch: pitch, seed: seed)
        var frame = s.frame()
        frame.pixelPitchMM = pitch
        let tracker = try TipTracker()
        let r = try tracker.track(frame)
        let errMM = hypot(r.u - s.tip.0, r.v - s.tip.1) * pitch
        // The Gaussian cap puts the half-height point up to half a width past the curve's end.
        let tolerance = 0.5 * 2.8 + 0.8
        #expect(r.status == .tracked, "pitch \(pitch)")
        #expect(errMM < tolerance, "pitch \(pitch): tip (\(r.u), \(r.v)) vs (\(s.tip.0), \(s.tip.1)), error \(errMM) mm")
        #expect(tracker.detector.pitchMM == pitch)
    }

    @Test func lengthsGrowAtAFinePitchOnlyAndAtMostFourfold() {
        let base = DetectorSettings()
        let coarse = base.atPitch(0.6), fine = base.atPitch(0.15), finest = base.atPitch(0.001)
        #expect(coarse == base, "at a coarser pitch than 0.3 mm the pixel lengths hold")
        #expect(base.atPitch(nil) == base)
        #expect(abs(fine.ridge.sigmaMax - 6.4) < 1e-9 && abs(fine.linkGapPx - 20) < 1e-9 && abs(fine.minLengthPx - 40) < 1e-9)
        #expect(abs(finest.ridge.sigmaMax - 4 * base.ridge.sigmaMax) < 1e-9 && abs(finest.ridge.tophatPx - 4 * base.ridge.tophatPx) < 1e-9)
        var pixelsOnly = base
        pixelsOnly.physical = nil
        #expect(pixelsOnly.atPitch(0.15) == pixelsOnly)
        let radii = TrackerSettings().searchRadii(atPitch: 0.15), unknown = TrackerSettings().searchRadii(atPitch: nil)
        #expect(abs(radii.minimum - 48) < 1e-9 && abs(radii.maximum - 320) < 1e-9)
        #expect(unknown.minimum == 24 && unknown.maximum == 160)
    }

    @Test func aFrameWithoutAPitchKeepsThePixelLengthsAndSaysSo() throws {
        let s = scene(pitch: 0.2, seed: 44)
        var frame = s.frame()
        let detector = try CatheterDetector()
        frame.pixelPitchMM = 0.2
        _ = try detector.detect(frame)
        #expect(detector.settings != detector.baseSettings)
        frame.pixelPitchMM = nil
        _ = try detector.detect(frame)
        #expect(detector.pitchMM == nil)
        #expect(detector.settings == detector.baseSettings)
        #expect(CatheterDetector.pitchUnknownNote.contains("no pixel pitch"))
    }

    @Test func badPhysicalScalesAreTypedErrors() {
        var s = DetectorSettings()
        s.physical?.sigmaMaxMM = .nan
        #expect(throws: TrackingError.self) { try CatheterDetector(settings: s) }
        var t = TrackerSettings()
        t.minimumSearchRadiusMM = -1
        #expect(throws: TrackingError.badSetting(field: "minimum_search_radius_mm", reason: "must be a finite number > 0, got -1.0")) { try TipTracker(settings: t) }
    }

    @Test func aFramePitchThatIsNotAPositiveNumberIsUnknown() {
        #expect(Frame(width: 1, height: 1, pixels: [0], pixelPitchMM: .nan).pixelPitchMM == nil)
        #expect(Frame(width: 1, height: 1, pixels: [0], pixelPitchMM: 0).pixelPitchMM == nil)
        #expect(Frame(width: 1, height: 1, pixels: [0], pixelPitchMM: 0.25).pixelPitchMM == 0.25)
    }
}

@Suite struct DICOMPixelPitchTests {
    let dir = scratchFolder("dicom-pitch")

    @Test func framesCarryTheImagerPixelSpacingElseThePixelSpacing() throws {
        let g = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 730, columns: 16, rows: 16, pixelSpacing: 0.3)
        let p = dir.appendingPathComponent("imager.dcm").path
        try DICOMWriter.write(frames: [Frame(width: 16, height: 16, pixels: [UInt16](repeating: 9, count: 256))], geometry: g, frameInterval: nil, to: p,
                              options: .init(bitsStored: 12))
        let imager = try DICOMFile.read(p)
        #expect(imager.frames[0].pixelPitchMM == 0.3)

        var d = DICOMBytes(explicit: false)
        d.image(rows: 16, columns: 16)
        d.string(0x0028, 0x0030, "DS", "0.25\\0.35")
        d.pixels16([UInt16](repeating: 7, count: 256))
        let q = dir.appendingPathComponent("spacing.dcm").path
        try Data(d.bytes).write(to: URL(fileURLWithPath: q))
        let spacing = try DICOMFile.read(q)
        #expect(abs((spacing.frames[0].pixelPitchMM ?? 0) - 0.3) < 1e-12)

        var e = DICOMBytes(explicit: false)
        e.image(rows: 16, columns: 16)
        e.pixels16([UInt16](repeating: 7, count: 256))
        let r = dir.appendingPathComponent("none.dcm").path
        try Data(e.bytes).write(to: URL(fileURLWithPath: r))
        #expect(try DICOMFile.read(r).frames[0].pixelPitchMM == nil)
    }
}
