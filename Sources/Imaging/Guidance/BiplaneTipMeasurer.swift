import Core

/// Settings of the biplane tip measurer: where it searches, what a pair must satisfy, how
/// sure it says it is. Validated once, then fixed for the measurer's life.
public struct BiplaneMeasurerSettings: Sendable, Equatable {
    public var detector = DetectorSettings()
    /// mm outside the roadmap's lumen a triangulated tip may lie (a wall the catheter pushes
    /// out, the roadmap's own error) before the pair is taken for two wrong detections.
    public var roadmapMarginMM = 3.0
    /// px — the largest RMS reprojection error of a pair whose two detections agree (the epipolar check).
    public var pairAgreementPx = 4.0
    /// px — the search radius around the predicted tip with a certain estimate…
    public var searchRadiusPx = 30.0
    /// …grown by this many σ of the estimate's position uncertainty…
    public var searchSigmas = 3.0
    /// …up to this (px).
    public var maximumSearchRadiusPx = 220.0
    /// px — the searched region reaches this far past the search radius, so that a tip near
    /// its edge is still seen with the catheter behind it.
    public var regionMarginPx = 40.0
    /// px — how far past the searched region a frame source that renders only part of a frame
    /// renders (`renderRegion`): the detector reads beyond the region, back along a candidate's
    /// shaft (how far it runs: up to 40 widths / 3 behind the tip, ~95 px for a 2 mm catheter
    /// at 0.3 mm) and past its end. With less its shaft would end at the region's edge.
    public var renderReachPx = 64.0
    /// px — a region clipped by the frame's edge to a narrower side than this is not searched
    /// (the whole frame is, without the prediction).
    public var minimumRegionSidePx = 64
    /// Downsampling of whole-frame searches (1 or 2; the tip is refined at full resolution).
    public var wholeFrameDownsample = 2
    /// px — the pixel noise (one σ) a detection of full confidence claims; it grows as 1/confidence…
    public var pixelSigmaPx = 1.5
    /// …with the confidence taken as at least this (so at most 7.5 px by default).
    public var confidenceFloor = 0.2
    /// mm — the detector pitch the pixel lengths above stand for. On a plane of finer pitch they
    /// grow with it, so that they keep their length on the detector (never below the pixel value,
    /// at most `PhysicalScales.maximumGrowth` times it): 30 px at 0.15 mm searched half the
    /// millimetres it does at 0.3. nil: the pixel values at every pitch.
    public var referencePitchMM: Double? = 0.3

    public init() {}

    /// These lengths at a plane of `pitch` mm per pixel (`referencePitchMM`).
    public func pixelLengths(atPitch pitch: Double) -> PixelLengths {
        func px(_ value: Double) -> Double {
            guard let ref = referencePitchMM else { return value }
            return PhysicalScales.pixels(value, mm: value * ref, pitch: pitch)
        }
        return PixelLengths(pairAgreement: px(pairAgreementPx), searchRadius: px(searchRadiusPx), maximumSearchRadius: px(maximumSearchRadiusPx),
                            regionMargin: px(regionMarginPx), minimumRegionSide: px(Double(minimumRegionSidePx)), pixelSigma: px(pixelSigmaPx),
                            renderReach: px(renderReachPx))
    }

    /// px — the settings' pixel lengths at one plane's pitch.
    public struct PixelLengths: Sendable, Equatable {
        public var pairAgreement, searchRadius, maximumSearchRadius, regionMargin, minimumRegionSide, pixelSigma: Double
        public var renderReach = 0.0
    }

    public func validate() throws(GuidanceError) {
        do { try detector.validate() } catch { throw .detector(error) }
        let positive: [(Double, String)] = [
            (roadmapMarginMM, "roadmap_margin_mm"), (pairAgreementPx, "pair_agreement_px"), (searchRadiusPx, "search_radius_px"),
            (maximumSearchRadiusPx, "maximum_search_radius_px"), (pixelSigmaPx, "pixel_sigma_px"), (confidenceFloor, "confidence_floor"),
        ]
        for (v, f) in positive {
            guard v.isFinite, v > 0 else { throw .badSetting(field: f, reason: "must be a finite number > 0, got \(v)") }
        }
        for (v, f) in [(searchSigmas, "search_sigmas"), (regionMarginPx, "region_margin_px"), (renderReachPx, "render_reach_px")] {
            guard v.isFinite, v >= 0 else { throw .badSetting(field: f, reason: "must be a finite number ≥ 0, got \(v)") }
        }
        guard maximumSearchRadiusPx >= searchRadiusPx else {
            throw .badSetting(field: "maximum_search_radius_px", reason: "must be ≥ search_radius_px")
        }
        guard confidenceFloor <= 1 else { throw .badSetting(field: "confidence_floor", reason: "must be ≤ 1, got \(confidenceFloor)") }
        guard (1...4096).contains(minimumRegionSidePx) else {
            throw .badSetting(field: "minimum_region_side_px", reason: "must be 1…4096, got \(minimumRegionSidePx)")
        }
        if let ref = referencePitchMM, !(ref.isFinite && ref > 0) {
            throw .badSetting(field: "reference_pitch_mm", reason: "must be a finite number > 0, got \(ref)")
        }
        guard wholeFrameDownsample == 1 || wholeFrameDownsample == 2 else {
            throw .badSetting(field: "whole_frame_downsample", reason: "must be 1 or 2, got \(wholeFrameDownsample)")
        }
    }
}

/// Why the measurer could not be built or could not take its input.
public enum GuidanceError: Error, Equatable, Sendable, CustomStringConvertible {
    case badSetting(field: String, reason: String)
    case detector(TrackingError)
    /// The measurer works on one plane or two.
    case planeCount(Int)
    /// A frame named a plane the measurer has no geometry for, or the same plane twice.
    case unknownPlane(Int)
    /// The frame source could not give the whole frames a search needed.
    case wholeFrames(String)

    public var description: String {
        switch self {
        case .badSetting(let f, let r): "guidance setting \(f): \(r)"
        case .detector(let e): "guidance detector: \(e)"
        case .planeCount(let n): "the measurer takes one or two C-arm planes, got \(n); give the geometry of each plane"
        case .unknownPlane(let p): "frame of plane \(p): no such plane, or two frames of it; send one frame per configured plane"
        case .wholeFrames(let why): "the whole frames a search needed could not be had: \(why)"
        }
    }
}

/// One plane's frame for the measurer.
public struct PlaneFrame {
    /// Index into the measurer's planes.
    public var plane: Int
    public var frame: Frame
    /// mm — how far the scene had moved (breathing, heartbeat) at the frame's acquisition, in the
    /// patient frame; the estimator works in the static patient, so pixels are mapped back by it.
    /// Zero where the motion is not known.
    public var motion: Vec3
    /// The part of the frame that holds the image, when only a part does (a simulated C-arm
    /// that exposed the search region alone); nil: all of it.
    public var rendered: PixelRegion?

    public init(plane: Int, frame: Frame, motion: Vec3 = .zero, rendered: PixelRegion? = nil) {
        self.plane = plane; self.frame = frame; self.motion = motion; self.rendered = rendered
    }
}

/// What one exposure gave.
public enum BiplaneOutcome: Equatable, Sendable {
    /// The two planes' searched regions gave detections that agree and meet inside the roadmap:
    /// one triangulated point.
    case pair(PointEstimate)
    /// The regions gave no such pair; both frames searched whole did.
    case wholeFramePair(PointEstimate)
    /// No pair: each plane's detection goes alone, as pixels, for the estimator's gate to judge.
    /// `inconsistentPair`: both planes found something, but the two did not agree or met outside the roadmap.
    case singlePlanePixels(count: Int, inconsistentPair: Bool)
    /// Nothing to measure in this exposure.
    case none

    /// The triangulated point, for the pair outcomes.
    public var point: PointEstimate? {
        switch self {
        case .pair(let p), .wholeFramePair(let p): p
        case .singlePlanePixels, .none: nil
        }
    }
}

/// The measurer's answer for one exposure.
public struct BiplaneMeasurement: Sendable {
    public var outcome: BiplaneOutcome
    /// What goes to the estimator: the triangulated point, or the single-plane pixels, or nothing.
    public var measurements: [TipMeasurement]
    /// Planes whose first search (the region around the prediction, or the whole frame without
    /// one) found a tip.
    public var detections: Int

    /// The measurement shown and recorded with `plane`'s frame: that plane's pixels, else the
    /// triangulated point (the same measurement on both frames), else none.
    public func measurement(onPlane plane: Int) -> TipMeasurement? {
        measurements.first { $0.plane == UInt8(plane) && $0.pixel != nil } ?? measurements.first { $0.position != nil }
    }
}

/// The image side of the guided loop: tracks the tip in one or two planes' frames with the
/// fused estimate as the prior, and turns what it finds into tip measurements.
///
/// Each plane is searched around the estimated tip projected into it (moved by the scene's
/// motion), the region grown with the estimate's uncertainty; the whole frame when the estimate
/// is lost. Two detections are fused as one triangulated point when they agree (the epipolar
/// check) and meet inside the roadmap: at 0°/90° the epipolar lines run level, so two wrong
/// detections at the same height agree, and such pairs met 30 mm outside every vessel. When the
/// regions give no such pair, an estimate that has drifted off the tip searches where the tip is
/// not and, being confident, never wider: so both planes are searched again, whole and without
/// the prediction. Failing that, each plane's detection is offered alone and the estimator's
/// gate, which knows where the tip should be, keeps the one that fits (dropping both left the
/// estimate coasting for seconds where a plane sees the catheter over itself).
public final class BiplaneTipMeasurer {
    public let settings: BiplaneMeasurerSettings
    public let planes: [CArmGeometry]
    let matrices: [ProjectionMatrix]
    let detectors: [CatheterDetector]
    let roadmap: (Vec3, Double) -> Bool
    /// px — each plane's lengths at its pitch; the pair's agreement at the finer plane's.
    let lengths: [BiplaneMeasurerSettings.PixelLengths]
    let pairAgreement: Double

    /// - Parameter roadmap: whether a point (mm, patient) lies inside the vessels the route is
    ///   planned on, within a margin (mm).
    public init(planes: [CArmGeometry], settings: BiplaneMeasurerSettings = BiplaneMeasurerSettings(),
                roadmap: @escaping (_ point: Vec3, _ marginMM: Double) -> Bool) throws(GuidanceError) {
        try settings.validate()
        guard (1...2).contains(planes.count) else { throw .planeCount(planes.count) }
        self.settings = settings
        self.planes = planes
        self.roadmap = roadmap
        matrices = planes.map { ProjectionMatrix($0) }
        lengths = planes.map { settings.pixelLengths(atPitch: $0.pixelSpacing) }
        pairAgreement = lengths.map(\.pairAgreement).max() ?? settings.pairAgreementPx
        var detectors: [CatheterDetector] = []
        for _ in planes {
            do { detectors.append(try CatheterDetector(settings: settings.detector)) } catch { throw .detector(error) }
        }
        self.detectors = detectors
    }

    func checkPlanes(_ frames: [PlaneFrame]) throws(GuidanceError) {
        var seen = Set<Int>()
        for f in frames {
            guard planes.indices.contains(f.plane), seen.insert(f.plane).inserted else { throw .unknownPlane(f.plane) }
        }
    }

    /// px — the noise a detection on `plane` claims: sure detections little, unsure ones more.
    func pixelSigma(_ d: CatheterDetection, plane: Int) -> Double { lengths[plane].pixelSigma / max(settings.confidenceFloor, d.confidence) }

    /// The triangulated point of detections that agree and meet inside the roadmap.
    func meetingPoint(_ views: [PixelObservation]) -> PointEstimate? {
        guard let point = try? Triangulation.triangulate(views), point.rms <= pairAgreement,
              roadmap(point.position, settings.roadmapMarginMM) else { return nil }
        return point
    }

    /// The region to search in a `width` × `height` frame around the predicted tip (u, v),
    /// and the prior; nil for both when the prediction is unusable or the region too clipped.
    func searchRegion(predicted: (u: Double, v: Double), prior: TipEstimate, plane: Int, width: Int, height: Int)
        -> (region: PixelRegion, prior: CatheterDetector.Prior)? {
        // A prediction far off any frame (an estimate run away) is no place to search, and
        // would overflow the pixel arithmetic.
        guard prior.health != .lost, abs(predicted.u) < 1e6, abs(predicted.v) < 1e6 else { return nil }
        let c = prior.covariance
        let sigmaMM = (c.c0.x + c.c1.y + c.c2.z).squareRoot()
        let pxPerMM = planes[plane].magnification / planes[plane].pixelSpacing
        let px = lengths[plane]
        let radius = min(px.maximumSearchRadius, px.searchRadius + settings.searchSigmas * sigmaMM * pxPerMM)
        // The tracker's square around a prediction, clipped to the frame.
        let region = PixelRegion.around(u: predicted.u, v: predicted.v, half: radius + px.regionMargin, in: width, height)
        guard Double(region.width) >= px.minimumRegionSide, Double(region.height) >= px.minimumRegionSide else { return nil }
        return (region, CatheterDetector.Prior(u: predicted.u, v: predicted.v, radius: radius))
    }

    /// The region of `plane` that `measure` will search, for a frame whose scene had moved by
    /// `motion`, around `prior`: nil when it will search the whole frame.
    public func searchRegion(plane: Int, motion: Vec3, prior: TipEstimate) -> PixelRegion? {
        guard planes.indices.contains(plane) else { return nil }
        let g = planes[plane]
        let predicted = g.project(prior.position + motion)
        return searchRegion(predicted: (predicted.u, predicted.v), prior: prior, plane: plane, width: g.columns, height: g.rows)?.region
    }

    /// What a frame source that can expose a part of a frame needs to expose for `measure`:
    /// the search region and `renderReachPx` around it (clipped to the frame), nil for the
    /// whole frame.
    public func renderRegion(plane: Int, motion: Vec3, prior: TipEstimate) -> PixelRegion? {
        guard let r = searchRegion(plane: plane, motion: motion, prior: prior) else { return nil }
        let g = planes[plane], reach = Int(lengths[plane].renderReach.rounded(.up))
        let x0 = max(0, r.x - reach), y0 = max(0, r.y - reach)
        let x1 = min(g.columns, r.x + r.width + reach), y1 = min(g.rows, r.y + r.height + reach)
        return PixelRegion(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
    }

    /// Measures the tip in one exposure: at most one frame per plane, all acquired together.
    /// A plane without a frame (dropped) is simply not seen. The measurements carry the frames'
    /// acquisition time.
    ///
    /// Frames of which only a part was rendered (`PlaneFrame.rendered`) are searched there
    /// alone; where the search needs more (no prediction to search around, the whole-frame
    /// search after a failed pair), `wholeFrames` gives the exposure's whole frames, asked for
    /// at most once. Without it such a plane is not searched beyond its part.
    public func measure(_ frames: [PlaneFrame], prior: TipEstimate,
                        wholeFrames: (() throws(GuidanceError) -> [PlaneFrame])? = nil) throws(GuidanceError) -> BiplaneMeasurement {
        try checkPlanes(frames)
        var frames = frames
        var partial = frames.contains { $0.rendered != nil }
        func wholeNow() throws(GuidanceError) {
            guard partial, let give = wholeFrames else { return }
            let whole = try give()
            try checkPlanes(whole)
            guard Set(whole.map(\.plane)) == Set(frames.map(\.plane)), whole.allSatisfy({ $0.rendered == nil }) else {
                throw .wholeFrames("asked for the whole frames of planes \(frames.map(\.plane).sorted()), got \(whole.map { ($0.plane, $0.rendered == nil ? "whole" : "part") })")
            }
            frames = whole
            partial = false
        }
        // A part that does not hold the region to search: the whole frames from the start.
        if partial, frames.contains(where: { f in
            guard let part = f.rendered else { return false }
            guard let region = searchRegion(plane: f.plane, motion: f.motion, prior: prior) else { return true }
            return !part.contains(region)
        }) { try wholeNow() }
        guard let acquiredAt = frames.first?.frame.acquiredAt else { return BiplaneMeasurement(outcome: .none, measurements: [], detections: 0) }
        var views: [PixelObservation] = []
        var pixels: [TipMeasurement] = []
        // Each frame's pixel shift of the scene's motion, and whether it was searched in a region.
        var shifts: [SIMD2<Double>] = []
        var searched: [Bool] = []
        for shot in frames {
            let p = shot.plane
            let predicted = planes[p].project(prior.position + shot.motion)
            let still = planes[p].project(prior.position)
            let search = searchRegion(predicted: (predicted.u, predicted.v), prior: prior, plane: p,
                                      width: shot.frame.width, height: shot.frame.height)
            let shift = SIMD2(predicted.u - still.u, predicted.v - still.v)
            shifts.append(shift.x.isFinite && shift.y.isFinite ? shift : .zero)
            searched.append(search != nil)
            // A frame the detector cannot take (too small) is a plane that saw nothing; so is a
            // part of a frame where the whole is to be searched.
            guard shot.rendered == nil || search != nil, let track = try? detectors[p].detect(shot.frame, region: search?.region,
                                                       downsample: search == nil ? settings.wholeFrameDownsample : 1, prior: search?.prior)
            else { continue }
            let uv = SIMD2(track.u, track.v) - shifts[shifts.count - 1]
            let sigma = pixelSigma(track, plane: p)
            pixels.append(TipMeasurement(acquiredAt: acquiredAt, plane: UInt8(p), pixel: uv, pixelCovariance: .isotropic(sigma),
                                         confidence: track.confidence))
            views.append(PixelObservation(matrix: matrices[p], pixel: uv, covariance: .isotropic(sigma)))
        }
        let detections = pixels.count
        func fused(_ point: PointEstimate) -> [TipMeasurement] {
            [TipMeasurement(acquiredAt: acquiredAt, position: point.position, positionCovariance: point.covariance)]
        }
        if views.count == 2, let point = meetingPoint(views) {
            return BiplaneMeasurement(outcome: .pair(point), measurements: fused(point), detections: detections)
        }
        var whole: [PixelObservation] = []
        if frames.count == 2, searched.contains(true) {
            try wholeNow()
            for (k, shot) in frames.enumerated() {
                guard shot.rendered == nil, let d = try? detectors[shot.plane].detect(shot.frame, region: nil, downsample: settings.wholeFrameDownsample, prior: nil)
                else { break }
                whole.append(PixelObservation(matrix: matrices[shot.plane], pixel: SIMD2(d.u, d.v) - shifts[k], covariance: .isotropic(pixelSigma(d, plane: shot.plane))))
            }
        }
        if whole.count == 2, let point = meetingPoint(whole) {
            return BiplaneMeasurement(outcome: .wholeFramePair(point), measurements: fused(point), detections: detections)
        }
        if pixels.isEmpty { return BiplaneMeasurement(outcome: .none, measurements: [], detections: 0) }
        return BiplaneMeasurement(outcome: .singlePlanePixels(count: pixels.count, inconsistentPair: views.count == 2),
                                  measurements: pixels, detections: detections)
    }
}
