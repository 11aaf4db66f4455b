import Core
import Imaging
import Sim
import Testing

/// A straight catheter up a straight tube, seen by two C-arm planes at 0° and 90°.
struct TubeScene {
    let tree = Phantoms.straightTube()
    let tip = Vec3(1.8, 0, 160)
    let planes: [CArmGeometry]
    /// Two planes of `size`² pixels of `pitch` mm.
    init(pitch: Double = 0.6, size: Int = 256) {
        planes = [0.0, 90.0].map {
            CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: size, rows: size, pixelSpacing: pitch,
                         primaryAngle: $0 * .pi / 180, isocenter: Vec3(0, 0, 150))
        }
    }
    var catheter: [Vec3] { (0...160).map { Vec3(Double($0) * 0.01125, 0, Double($0)) } }

    func frames(only: [Int] = [0, 1]) throws -> [PlaneFrame] {
        var settings = FluoroSettings()
        settings.photonsPerPixel = 20000
        return try only.map { p in
            let (frame, _) = try FluoroRenderer(geometry: planes[p], settings: settings, seed: 3 + UInt64(p))
                .render(tree: tree, catheter: catheter, frame: 1, acquiredAt: 5_000_000)
            return PlaneFrame(plane: p, frame: frame)
        }
    }

    /// The frames of the regions `measurer` will search around `prior` (a part of each frame
    /// where it searches one), as the simulated C-arm renders them.
    func partialFrames(_ measurer: BiplaneTipMeasurer, prior: TipEstimate) throws -> [PlaneFrame] {
        var settings = FluoroSettings()
        settings.photonsPerPixel = 20000
        return try [0, 1].map { p in
            let r = try FluoroRenderer(geometry: planes[p], settings: settings, seed: 3 + UInt64(p))
                .render(tree: tree, catheter: catheter, frame: 1, acquiredAt: 5_000_000,
                        region: measurer.renderRegion(plane: p, motion: .zero, prior: prior))
            return PlaneFrame(plane: p, frame: r.frame, rendered: r.rendered)
        }
    }

    func measurer(settings: BiplaneMeasurerSettings = BiplaneMeasurerSettings(),
                  roadmap: @escaping (Vec3, Double) -> Bool = { VesselTree(Phantoms.straightTube()).contains($0, within: $1) }) throws -> BiplaneTipMeasurer {
        try BiplaneTipMeasurer(planes: planes, settings: settings, roadmap: roadmap)
    }

    /// A confident estimate at `p`.
    func prior(at p: Vec3, health: EstimateHealth = .imageFresh) -> TipEstimate {
        TipEstimate(position: p, covariance: Mat3.identity * 0.04, health: health)
    }
}

@Suite struct BiplaneTipMeasurerTests {
    let scene = TubeScene()

    @Test func twoPlanesThatAgreeGiveOneTriangulatedPoint() throws {
        let m = try scene.measurer().measure(try scene.frames(), prior: scene.prior(at: scene.tip + Vec3(0.5, 0, -1)))
        let point = try #require(m.outcome.point)
        guard case .pair = m.outcome else { Issue.record("expected a pair, got \(m.outcome)"); return }
        #expect((point.position - scene.tip).length < 1.5, "\(point.position)")
        #expect(m.detections == 2)
        #expect(m.measurements.count == 1 && m.measurements[0].position == point.position && m.measurements[0].acquiredAt == 5_000_000)
    }

    @Test func aLostEstimateSearchesTheWholeFrames() throws {
        let m = try scene.measurer().measure(try scene.frames(), prior: scene.prior(at: .zero, health: .lost))
        guard case .pair(let point) = m.outcome else { Issue.record("expected a pair, got \(m.outcome)"); return }
        #expect((point.position - scene.tip).length < 1.5)
    }

    @Test func anEstimateOffTheTipFindsItByTheWholeFrames() throws {
        // Confident and 40 mm beyond the tip: the regions hold no catheter.
        let m = try scene.measurer().measure(try scene.frames(), prior: scene.prior(at: scene.tip + Vec3(0, 0, 40)))
        guard case .wholeFramePair(let point) = m.outcome else { Issue.record("expected a whole-frame pair, got \(m.outcome)"); return }
        #expect((point.position - scene.tip).length < 1.5)
        #expect(m.measurements.count == 1)
    }

    @Test func framesRenderedOnlyWhereTheSearchLooksAreMeasuredAsWholeOnes() throws {
        let measurer = try scene.measurer()
        let prior = scene.prior(at: scene.tip + Vec3(0.5, 0, -1))
        let parts = try scene.partialFrames(measurer, prior: prior)
        #expect(parts.allSatisfy { $0.rendered != nil }, "a search region is a part of a 256² frame")
        var asked = 0
        let m = try measurer.measure(parts, prior: prior) { () throws(GuidanceError) -> [PlaneFrame] in
            asked += 1
            do { return try scene.frames() } catch { throw .wholeFrames("\(error)") }
        }
        guard case .pair(let point) = m.outcome else { Issue.record("expected a pair, got \(m.outcome)"); return }
        #expect((point.position - scene.tip).length < 1.5, "\(point.position)")
        #expect(asked == 0, "the parts held what was searched")
    }

    @Test(arguments: [0.6, 0.3])
    func aPartWithItsReachMeasuresAsTheWholeFrameDoes(pitch: Double) throws {
        // The same pixels inside the part, a flat grey outside: the detector reads past the
        // searched region (back along the shaft, past the end), so the part must hold that too.
        let scene = TubeScene(pitch: pitch, size: 512)
        let measurer = try scene.measurer()
        let prior = scene.prior(at: scene.tip + Vec3(0.5, 0, -1))
        let whole = try scene.frames()
        let parts = try whole.map { f in
            let r = try #require(measurer.renderRegion(plane: f.plane, motion: .zero, prior: prior))
            let search = try #require(measurer.searchRegion(plane: f.plane, motion: .zero, prior: prior))
            #expect(r.contains(search))
            var pixels = [UInt16](repeating: 2000, count: f.frame.pixels.count)
            for v in r.y..<(r.y + r.height) { for u in r.x..<(r.x + r.width) { pixels[v * f.frame.width + u] = f.frame.pixels[v * f.frame.width + u] } }
            return PlaneFrame(plane: f.plane, frame: Frame(width: f.frame.width, height: f.frame.height, pixels: pixels, acquiredAt: f.frame.acquiredAt),
                              rendered: r)
        }
        let a = try measurer.measure(whole, prior: prior), b = try measurer.measure(parts, prior: prior)
        guard case .pair(let pa) = a.outcome, case .pair(let pb) = b.outcome else { Issue.record("\(a.outcome) / \(b.outcome)"); return }
        #expect(pa.position == pb.position && pa.covariance == pb.covariance, "whole \(pa.position), part \(pb.position)")
        #expect(a.measurements == b.measurements)
    }

    @Test func partsThatDoNotHoldTheSearchAskForTheWholeFramesOnce() throws {
        let measurer = try scene.measurer()
        // Rendered round a prior 40 mm beyond the tip: the parts hold no catheter, and the
        // whole-frame search that follows needs the whole frames.
        let off = scene.prior(at: scene.tip + Vec3(0, 0, 40))
        let parts = try scene.partialFrames(measurer, prior: off)
        var asked = 0
        let m = try measurer.measure(parts, prior: off) { () throws(GuidanceError) -> [PlaneFrame] in
            asked += 1
            do { return try scene.frames() } catch { throw .wholeFrames("\(error)") }
        }
        guard case .wholeFramePair(let point) = m.outcome else { Issue.record("expected a whole-frame pair, got \(m.outcome)"); return }
        #expect((point.position - scene.tip).length < 1.5)
        #expect(asked == 1)
        // Lost: nothing to search around, so the whole frames at once.
        asked = 0
        let lost = scene.prior(at: .zero, health: .lost)
        let l = try measurer.measure(parts, prior: lost) { () throws(GuidanceError) -> [PlaneFrame] in
            asked += 1
            do { return try scene.frames() } catch { throw .wholeFrames("\(error)") }
        }
        guard case .pair = l.outcome else { Issue.record("expected a pair, got \(l.outcome)"); return }
        #expect(asked == 1)
        // Without a source of whole frames the parts are all there is: nothing beyond them is searched.
        #expect(try measurer.measure(parts, prior: lost).outcome == .none)
        // A source that fails says so; one that gives parts again, or other planes, is refused.
        #expect(throws: GuidanceError.wholeFrames("no frames")) {
            try measurer.measure(parts, prior: lost) { () throws(GuidanceError) -> [PlaneFrame] in throw .wholeFrames("no frames") }
        }
        #expect(throws: GuidanceError.self) { try measurer.measure(parts, prior: lost) { parts } }
        #expect(throws: GuidanceError.self) { try measurer.measure(parts, prior: lost) { [try! scene.frames()[0]] } }
    }

    @Test func onePlaneGivesPixels() throws {
        let m = try scene.measurer().measure(try scene.frames(only: [1]), prior: scene.prior(at: scene.tip))
        #expect(m.outcome == .singlePlanePixels(count: 1, inconsistentPair: false))
        let pixel = try #require(m.measurements.first?.pixel)
        let truth = scene.planes[1].project(scene.tip)
        #expect(m.measurements.first?.plane == 1)
        #expect(abs(pixel.x - truth.u) < 3 && abs(pixel.y - truth.v) < 3, "\(pixel) vs \(truth)")
    }

    @Test func aPairOutsideTheRoadmapIsOfferedAsPixels() throws {
        let m = try scene.measurer(roadmap: { _, _ in false }).measure(try scene.frames(), prior: scene.prior(at: scene.tip))
        #expect(m.outcome == .singlePlanePixels(count: 2, inconsistentPair: true))
        #expect(m.measurements.allSatisfy { $0.pixel != nil && $0.position == nil })
    }

    @Test func framesWithoutACatheterOrNoFramesGiveNothing() throws {
        let blank = [0, 1].map { PlaneFrame(plane: $0, frame: Frame(width: 256, height: 256, pixels: [UInt16](repeating: 30000, count: 256 * 256))) }
        let measurer = try scene.measurer()
        #expect(try measurer.measure(blank, prior: scene.prior(at: scene.tip)).outcome == .none)
        #expect(try measurer.measure([], prior: scene.prior(at: scene.tip)).outcome == .none)
        // A frame too small to track in is a plane that saw nothing.
        let tiny = PlaneFrame(plane: 0, frame: Frame(width: 4, height: 4, pixels: [UInt16](repeating: 0, count: 16)))
        #expect(try measurer.measure([tiny], prior: scene.prior(at: scene.tip)).outcome == .none)
    }

    @Test(arguments: [Vec3(.nan, .nan, .nan), Vec3(1e21, 0, 150), Vec3(0, -1e21, 150), Vec3(0, 0, 1e21)])
    func aPriorOffEveryFrameIsSearchedAsLost(at position: Vec3) throws {
        let prior = TipEstimate(position: position, covariance: Mat3.identity * 0.04, health: .imageFresh)
        let m = try scene.measurer().measure(try scene.frames(), prior: prior)
        // Not a crash, and the catheter found: a plane whose projection of the prior is finite
        // may still search around it, so the pair is held to a looser bound.
        guard case .pair(let point) = m.outcome else { Issue.record("expected a pair, got \(m.outcome)"); return }
        #expect((point.position - scene.tip).length < 3)
    }

    /// The pixel lengths stand for a 0.3 mm detector: on a finer one they grow with the pitch
    /// (at most 4×), on a coarser one they stay, and without a reference pitch they never change.
    @Test func thePixelLengthsFollowThePlanesPitch() throws {
        var settings = BiplaneMeasurerSettings()
        let fine = settings.pixelLengths(atPitch: 0.15)
        #expect(fine.searchRadius == 60 && fine.regionMargin == 80 && fine.pairAgreement == 8 && fine.minimumRegionSide == 128)
        #expect(fine.maximumSearchRadius == 440 && fine.pixelSigma == 3)
        #expect(settings.pixelLengths(atPitch: 0.3).searchRadius == 30)
        #expect(settings.pixelLengths(atPitch: 0.6).searchRadius == 30)
        #expect(settings.pixelLengths(atPitch: 0.01).searchRadius == 120)
        settings.referencePitchMM = nil
        #expect(settings.pixelLengths(atPitch: 0.15).searchRadius == 30)
        settings.referencePitchMM = -1
        #expect(throws: GuidanceError.badSetting(field: "reference_pitch_mm", reason: "must be a finite number > 0, got -1.0")) { try settings.validate() }
    }

    /// On a detector of half the pitch, a confident estimate 5.5 mm beyond the tip still finds it
    /// in its regions: the search keeps its millimetres. With the pixel values as given it
    /// searched half as far, missed the tip (4.5 and 7 mm too), and only the whole frames found it.
    @Test func theSearchKeepsItsMillimetresOnAFinerDetector() throws {
        let fine = TubeScene(pitch: 0.15, size: 384)
        let frames = try fine.frames()
        let prior = fine.prior(at: fine.tip + Vec3(0, 0, 5.5))
        let scaled = try fine.measurer().measure(frames, prior: prior)
        guard case .pair(let point) = scaled.outcome else { Issue.record("expected a pair in the regions, got \(scaled.outcome)"); return }
        #expect((point.position - fine.tip).length < 1.5, "\(point.position)")
        var pixels = BiplaneMeasurerSettings()
        pixels.referencePitchMM = nil
        let unscaled = try fine.measurer(settings: pixels).measure(frames, prior: prior)
        guard case .wholeFramePair = unscaled.outcome else { Issue.record("expected the whole frames to find it, got \(unscaled.outcome)"); return }
    }

    @Test func badInputIsATypedError() throws {
        let measurer = try scene.measurer()
        let frames = try scene.frames(only: [0])
        var wrong = frames[0]
        wrong.plane = 2
        #expect(throws: GuidanceError.unknownPlane(2)) { try measurer.measure([wrong], prior: TipEstimate()) }
        #expect(throws: GuidanceError.unknownPlane(0)) { try measurer.measure(frames + frames, prior: TipEstimate()) }
        #expect(throws: GuidanceError.planeCount(3)) { try BiplaneTipMeasurer(planes: scene.planes + scene.planes.prefix(1)) { _, _ in true } }
        var settings = BiplaneMeasurerSettings()
        settings.roadmapMarginMM = .nan
        #expect(throws: GuidanceError.badSetting(field: "roadmap_margin_mm", reason: "must be a finite number > 0, got nan")) {
            try BiplaneTipMeasurer(planes: scene.planes, settings: settings) { _, _ in true }
        }
        settings = BiplaneMeasurerSettings()
        settings.maximumSearchRadiusPx = 10
        #expect(throws: GuidanceError.self) { try BiplaneTipMeasurer(planes: scene.planes, settings: settings) { _, _ in true } }
    }
}
