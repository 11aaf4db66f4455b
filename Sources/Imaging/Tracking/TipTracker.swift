import Core
import Foundation

/// Whether a frame's tip position is a measurement.
public enum TrackStatus: String, Sendable, Codable {
    /// The tip was found in this frame (and agreed with the motion model).
    case tracked
    /// No tip in this frame: u and v are the prediction (or NaN before the first fix), not a measurement.
    case lost
}

/// The tracker's answer for one frame. Every answer carries the frame's acquisition time.
public struct TipTrack: Sendable {
    public var frame: Int
    /// When the frame was acquired (ns, monotonic), as the frame said.
    public var acquiredAt: Nanoseconds
    public var u: Double
    public var v: Double
    /// 0…1: for a `tracked` answer the calibrated probability that the fix is within 3 px of
    /// the tip (`TrackerSettings.confidenceModel`); 0 when lost. The detector's own score is
    /// `detection.confidence`.
    public var confidence: Double
    public var status: TrackStatus
    /// True when the whole frame was searched (acquisition or re-acquisition), false in the search region.
    public var fullFrameSearch: Bool
    /// The searched region.
    public var region: PixelRegion
    /// The detection behind a `tracked` answer (centerline for overlays).
    public var detection: CatheterDetection?
    /// px — how far the fix lies from the motion model's prediction (nil at an acquisition or when lost).
    public var innovationPx: Double? = nil
    /// px — the search radius the prediction allowed (nil at an acquisition).
    public var searchRadiusPx: Double? = nil
}

/// Settings of the tracker.
public struct TrackerSettings: Sendable, Equatable {
    public var detector = DetectorSettings()
    /// s — frame interval used when frames carry no usable acquisition times.
    public var nominalFrameInterval = 1.0 / 15
    /// px/s² — white-acceleration process noise of the constant-velocity model.
    public var accelerationNoise = 3000.0
    /// px — measurement noise (one σ) of a detected tip.
    public var measurementNoise = 1.0
    /// Mahalanobis gate (χ², 2 degrees of freedom) on the innovation; 13.8 keeps 99.9 % of true tips.
    public var gate = 13.8
    /// px — the gate and the search region never shrink below this.
    public var minimumSearchRadius = 24.0
    /// px — nor grow beyond this.
    public var maximumSearchRadius = 160.0
    /// mm — the same two limits as physical sizes (the pixel values at 0.3 mm, as the detector's
    /// `PhysicalScales`): at a finer known pitch the pixel limits grow to them (at most
    /// `PhysicalScales.maximumGrowth` times), since a tip moving so many mm moves more pixels;
    /// nil: the pixel limits at every pitch.
    public var minimumSearchRadiusMM: Double? = 7.2
    public var maximumSearchRadiusMM: Double? = 48
    /// Detections below this confidence are not measurements.
    public var minimumConfidence = 0.25
    /// A first fix (or a fix after loss) needs this much confidence.
    public var acquireConfidence = 0.45
    /// Missed frames after which the prediction is dropped and the whole frame searched without it.
    public var reacquireAfter = 3
    /// Downsampling of the full-frame search (1 or 2; the tip is refined at full resolution).
    public var fullFrameDownsample = 2
    /// Turns what the detector measured into the confidence a fix reports.
    public var confidenceModel = ConfidenceModel.fitted
    /// A second detector for catheters too wide in pixels for `detector` (searched at half
    /// resolution, e.g. `DetectorSettings.wide`); nil: `detector` only. An acquisition runs
    /// both, and the track stays with the one that acquired it. Off by default: on the tuning
    /// split (32 sequences) the score comparison let it take vessel ends and bone edges in
    /// frames the default detector tracked, doubling the confident-wrong fixes (12.5 → 24.6 %),
    /// though it found the catheters 12–20 px across that the default detector misses.
    public var wideDetector: DetectorSettings? = nil
    /// The wide detector's tip replaces the default one's at an acquisition when its score is
    /// more than this many times higher (or the default one finds no acquirable tip).
    public var widePreference = 1.0
    /// An acquisition's runners-up scored at least this share of the winner's are rival tips
    /// (0 turns rivals off). Per-frame evidence cannot tell a vessel's end or a wire crossing
    /// from the catheter's end, but time can: the catheter's end moves with its shaft, a
    /// point of the anatomy does not. While a rival lives the track is contested and its
    /// confidence stays at most `contestedConfidence`. Tuning split (16 sequences, 30 frames):
    /// confident-wrong 3.3 → 2.1 %, right at confidence > 0.5 90.1 → 93.7 %, tracked and errors
    /// unchanged; 0.3 was not tuned (one value tried).
    public var rivalShare = 0.3
    /// At most this many rivals are followed. The live runtime and the console do not run this
    /// tracker (they measure through `BiplaneTipMeasurer`, which calls the detector), so this
    /// setting cannot reach their navigation: the latched stops once blamed on it came from
    /// elsewhere. Held-out split (16 sequences, 30 frames): confident-wrong 11.25 → 5.21 % (longest run 9 → 4),
    /// tracked and errors unchanged. `lumen eval tracking --rivals 0` measures without them.
    public var maximumRivals = 2
    /// The confidence a contested fix reports at most (below 0.5: not to be trusted).
    public var contestedConfidence = 0.45
    /// px — a hypothesis that advances this far along its own heading relative to the other
    /// (and this much further than the other advances relative to it) wins the contest.
    public var advanceToWinPx = 8.0
    /// A rival not found this many frames in a row is dropped.
    public var rivalMissesToDrop = 3
    /// Whether a rival that advanced while the track stood still takes the track over. Off:
    /// on the tuning split (16 sequences) switching moved three right tracks onto wrong
    /// structures that appeared to advance (confident-wrong 3.3 → 7.9 %, one run of 29
    /// frames); such a rival only keeps the track contested.
    public var rivalMayWin = false
    public init() {}

    func validate() throws(TrackingError) {
        try detector.validate()
        let checks: [(Double, String)] = [(nominalFrameInterval, "nominal_frame_interval_s"), (accelerationNoise, "acceleration_noise"),
                                          (measurementNoise, "measurement_noise_px"), (gate, "gate"), (minimumSearchRadius, "minimum_search_radius_px"),
                                          (maximumSearchRadius, "maximum_search_radius_px")]
        for (v, f) in checks {
            guard v.isFinite, v > 0 else { throw .badSetting(field: f, reason: "must be a finite number > 0, got \(v)") }
        }
        for (v, f) in [(minimumSearchRadiusMM, "minimum_search_radius_mm"), (maximumSearchRadiusMM, "maximum_search_radius_mm")] {
            if let v { guard v.isFinite, v > 0 else { throw .badSetting(field: f, reason: "must be a finite number > 0, got \(v)") } }
        }
        guard maximumSearchRadius >= minimumSearchRadius else {
            throw .badSetting(field: "maximum_search_radius_px", reason: "must be ≥ minimum_search_radius_px")
        }
        for (v, f) in [(minimumConfidence, "minimum_confidence"), (acquireConfidence, "acquire_confidence")] {
            guard v.isFinite, (0...1).contains(v) else { throw .badSetting(field: f, reason: "must be 0…1, got \(v)") }
        }
        guard reacquireAfter >= 1 else { throw .badSetting(field: "reacquire_after", reason: "must be ≥ 1, got \(reacquireAfter)") }
        guard fullFrameDownsample == 1 || fullFrameDownsample == 2 else {
            throw .badSetting(field: "full_frame_downsample", reason: "must be 1 or 2, got \(fullFrameDownsample)")
        }
        try confidenceModel.validate()
        try wideDetector?.validate()
        guard widePreference.isFinite, widePreference > 0 else {
            throw .badSetting(field: "wide_preference", reason: "must be a finite number > 0, got \(widePreference)")
        }
        guard rivalShare.isFinite, (0...1).contains(rivalShare) else { throw .badSetting(field: "rival_share", reason: "must be 0…1, got \(rivalShare)") }
        guard (0...4).contains(maximumRivals) else { throw .badSetting(field: "maximum_rivals", reason: "must be 0…4, got \(maximumRivals)") }
        guard contestedConfidence.isFinite, (0...1).contains(contestedConfidence) else {
            throw .badSetting(field: "contested_confidence", reason: "must be 0…1, got \(contestedConfidence)")
        }
        guard advanceToWinPx.isFinite, advanceToWinPx > 0 else {
            throw .badSetting(field: "advance_to_win_px", reason: "must be a finite number > 0, got \(advanceToWinPx)")
        }
        guard rivalMissesToDrop >= 1 else { throw .badSetting(field: "rival_misses_to_drop", reason: "must be ≥ 1, got \(rivalMissesToDrop)") }
    }

    /// These settings with every length in pixels as given, whatever a frame's pitch: how the
    /// tracker ran before frames carried their pitch (for comparison).
    public var pixelLengthsOnly: TrackerSettings {
        var s = self
        s.detector.physical = nil
        s.wideDetector?.physical = nil
        s.minimumSearchRadiusMM = nil
        s.maximumSearchRadiusMM = nil
        return s
    }

    /// px — the search radius limits for a frame of `pitchMM` mm per pixel (the pixel limits where it is unknown).
    public func searchRadii(atPitch pitchMM: Double?) -> (minimum: Double, maximum: Double) {
        guard let pitch = pitchMM, pitch.isFinite, pitch > 0 else { return (minimumSearchRadius, maximumSearchRadius) }
        func px(_ value: Double, _ mm: Double?) -> Double { mm.map { PhysicalScales.pixels(value, mm: $0, pitch: pitch) } ?? value }
        let lo = px(minimumSearchRadius, minimumSearchRadiusMM)
        return (lo, max(lo, px(maximumSearchRadius, maximumSearchRadiusMM)))
    }
}

/// Tracks the catheter tip through a sequence: a constant-velocity Kalman filter in (u, v),
/// a search region around its prediction sized by the prediction's uncertainty, a Mahalanobis
/// gate on each measurement, the tip's heading (candidates that point back are damped),
/// re-acquisition over the whole frame after missed frames, and an explicit `lost` status
/// whenever a frame gives no trustworthy tip.
public final class TipTracker {
    public let settings: TrackerSettings
    public let detector: CatheterDetector
    /// The detector for wide catheters (`TrackerSettings.wideDetector`), nil when not set.
    public let wideDetector: CatheterDetector?
    /// Whether the current track was acquired (and is followed) by `wideDetector`.
    public private(set) var wide = false
    /// The detector following the current track (the one the last acquisition chose).
    public var activeDetector: CatheterDetector { wide ? wideDetector ?? detector : detector }
    /// State (u, v, u̇, v̇) in px and px/s, and its covariance (row-major 4 × 4).
    private var x = [Double](repeating: 0, count: 4)
    private var p = [Double](repeating: 0, count: 16)
    private var initialised = false
    /// The unit direction the tip points in (image px), from the fixes; nil before a fix.
    public private(set) var heading: (u: Double, v: Double)?
    /// Consecutive fixes that pointed back against `heading`.
    private var reversals = 0
    private var lastTime: Nanoseconds?
    private var frameIndex = 0
    /// px — the search radius limits at the current frame's pitch (`TrackerSettings.searchRadii`).
    private var radii: (minimum: Double, maximum: Double)
    /// Consecutive frames without a measurement.
    public private(set) var missed = 0
    /// A place other than the track's that the acquisition ranked nearly as high, followed
    /// frame by frame until time tells which of the two is the catheter's end.
    public struct Rival: Sendable {
        public var u: Double, v: Double
        /// px — its last frame-to-frame motion (its prediction for the next frame).
        var du = 0.0, dv = 0.0
        var heading: (u: Double, v: Double)?
        var missed = 0
        /// px — how far it advanced along its own heading relative to the track, and the
        /// track along the track's heading relative to it, summed over the frames both were found.
        public internal(set) var advance = 0.0, trackAdvance = 0.0
    }
    /// The rivals of the current track (empty: uncontested).
    public private(set) var rivals: [Rival] = []
    /// The last fix of the track (raw, not filtered), for the motion relative to the rivals.
    private var lastFix: (u: Double, v: Double)?
    /// The candidates the last whole-frame acquisition ranked (best first; empty after a
    /// frame that was tracked from a prediction): what the track and its rivals were chosen from.
    public private(set) var acquisitionCandidates: [CatheterDetection] = []

    public init(settings: TrackerSettings = TrackerSettings()) throws(TrackingError) {
        try settings.validate()
        self.settings = settings
        radii = (settings.minimumSearchRadius, settings.maximumSearchRadius)
        detector = try CatheterDetector(settings: settings.detector)
        wideDetector = try settings.wideDetector.map { s throws(TrackingError) in try CatheterDetector(settings: s) }
    }

    /// Forgets the track (next frame is a fresh acquisition).
    public func reset() {
        initialised = false
        rivals = []
        lastFix = nil
        wide = false
        heading = nil
        lastTime = nil
        missed = 0
    }

    /// Tracks one frame. Frames must come in acquisition order; a frame whose time does not
    /// advance is taken to be `nominalFrameInterval` after the previous one.
    public func track(_ frame: Frame) throws(TrackingError) -> TipTrack {
        defer { frameIndex += 1 }
        guard frame.width >= RidgeExtractor.minimumSide, frame.height >= RidgeExtractor.minimumSide else {
            throw .frameTooSmall(width: frame.width, height: frame.height, minimum: RidgeExtractor.minimumSide)
        }
        var dt = settings.nominalFrameInterval
        if let t0 = lastTime {
            let d = Double(frame.acquiredAt - t0) / 1e9
            if d > 0, d < 10 { dt = d }
        }
        lastTime = frame.acquiredAt
        radii = settings.searchRadii(atPitch: frame.pixelPitchMM)
        let full = PixelRegion(x: 0, y: 0, width: frame.width, height: frame.height)
        if initialised { predict(dt) }
        acquisitionCandidates = []
        // With a live track: the search region around the prediction, then the whole frame gated.
        if initialised, missed < settings.reacquireAfter {
            let radius = searchRadius()
            let det = activeDetector
            let region = PixelRegion.around(u: x[0], v: x[1], half: radius + 2 * det.baseSettings.atPitch(frame.pixelPitchMM).ridge.sigmaMax * 3, in: frame.width, frame.height)
            let prior = CatheterDetector.Prior(u: x[0], v: x[1], radius: radius, heading: heading)
            if let d = try det.detect(frame, region: region, downsample: wide ? 2 : 1, prior: prior), accept(d, threshold: settings.minimumConfidence) {
                return try contest(fix(d, frame, region: region, fullFrame: false), frame)
            }
            if let d = try det.detect(frame, region: nil, downsample: wide ? 2 : fullDownsample(frame), prior: prior),
               accept(d, threshold: settings.minimumConfidence) {
                return try contest(fix(d, frame, region: full, fullFrame: true), frame)
            }
            missed += 1
            return miss(frame, region: region, fullFrame: true)
        }
        // Acquisition (or re-acquisition): the whole frame, no prior, a stricter confidence.
        let acquired = try acquire(frame)
        acquisitionCandidates = detector.lastCandidates
        if let (d, isWide) = acquired {
            initialised = true
            wide = isWide
            start(at: d)
            rivals = isWide ? [] : Self.rivals(of: d, among: detector.lastCandidates, settings: settings)
            lastFix = (d.u, d.v)
            var confidence = settings.confidenceModel.probability(d, innovation: nil, radius: nil)
            if !rivals.isEmpty { confidence = min(confidence, settings.contestedConfidence) }
            return TipTrack(frame: frameIndex, acquiredAt: frame.acquiredAt, u: d.u, v: d.v,
                            confidence: confidence, status: .tracked,
                            fullFrameSearch: true, region: full, detection: d)
        }
        if initialised { missed += 1 }
        return miss(frame, region: full, fullFrame: true)
    }

    /// The acquirable tip of the whole frame (no prior), from the default detector or the wide
    /// one, whichever ranks it higher (`widePreference`); whether it came from the wide one.
    func acquire(_ frame: Frame) throws(TrackingError) -> (CatheterDetection, Bool)? {
        let base = try detector.detect(frame, region: nil, downsample: fullDownsample(frame)).flatMap { $0.confidence >= settings.acquireConfidence ? $0 : nil }
        // A frame too small to halve holds no catheter that wide.
        guard let wd = wideDetector, min(frame.width, frame.height) >= 4 * RidgeExtractor.minimumSide,
              let w = try wd.detect(frame, region: nil, downsample: 2), w.confidence >= settings.acquireConfidence else {
            return base.map { ($0, false) }
        }
        if let b = base, w.score <= settings.widePreference * b.score { return (b, false) }
        return (w, true)
    }

    /// Starts the motion model at a tip: still, its position known to a couple of px, its velocity not at all.
    private func start(at d: CatheterDetection) {
        missed = 0
        heading = d.heading()
        reversals = 0
        x = [d.u, d.v, 0, 0]
        let r = radii.maximum / 3
        p = [4, 0, 0, 0, 0, 4, 0, 0, 0, 0, r * r * 100, 0, 0, 0, 0, r * r * 100]
    }

    /// The acquisition's rivals to `winner`: runners-up scored at least `rivalShare` of it, apart
    /// from it and from each other (more than three widths, at least 12 px), best first.
    static func rivals(of winner: CatheterDetection, among candidates: [CatheterDetection], settings: TrackerSettings) -> [Rival] {
        guard settings.rivalShare > 0, winner.score > 0 else { return [] }
        var out: [Rival] = []
        var taken = [(winner.u, winner.v)]
        for c in candidates where out.count < settings.maximumRivals {
            guard c.score >= settings.rivalShare * winner.score, c.confidence >= settings.minimumConfidence, c.u.isFinite, c.v.isFinite else { continue }
            let apart = max(12, 3 * max(winner.widthPx, c.widthPx))
            if taken.contains(where: { hypot($0.0 - c.u, $0.1 - c.v) <= apart }) { continue }
            taken.append((c.u, c.v))
            out.append(Rival(u: c.u, v: c.v, heading: c.heading()))
        }
        return out
    }

    /// Follows the rivals of a contested track into this frame and lets time decide: the
    /// hypothesis that advances along its own heading relative to the other, while the other
    /// does not, is the catheter's end (a vessel's end, a bone crossing or a wire is fixed in
    /// the anatomy, which moves both alike). A rival that won becomes the track; a rival that
    /// lost, merged with the track or vanished is dropped. While any remains, the fix is
    /// contested and its confidence capped.
    private func contest(_ t: TipTrack, _ frame: Frame) throws(TrackingError) -> TipTrack {
        guard let fix = t.detection.map({ (u: $0.u, v: $0.v) }) else { return t }
        guard !rivals.isEmpty, let previous = lastFix else { lastFix = fix; return t }
        let dm = (fix.u - previous.u, fix.v - previous.v)
        let own = heading
        var kept: [Rival] = []
        var winner: (CatheterDetection, Rival)?
        let radius = radii.minimum
        for var r in rivals {
            let pu = r.u + r.du, pv = r.v + r.dv
            let region = PixelRegion.around(u: pu, v: pv, half: radius + 2 * detector.baseSettings.atPitch(frame.pixelPitchMM).ridge.sigmaMax * 3, in: frame.width, frame.height)
            let found = try detector.detect(frame, region: region, downsample: 1, prior: CatheterDetector.Prior(u: pu, v: pv, radius: radius, heading: r.heading))
            guard let d = found, d.confidence >= settings.minimumConfidence, d.u.isFinite, d.v.isFinite else {
                r.missed += 1
                if r.missed < settings.rivalMissesToDrop { kept.append(r) }
                continue
            }
            // Found where the track is: the two hypotheses are one.
            if hypot(d.u - fix.u, d.v - fix.v) <= max(12, 3 * d.widthPx) { continue }
            let dr = (d.u - r.u, d.v - r.v)
            let rel = (dm.0 - dr.0, dm.1 - dr.1)
            if let h = own { r.trackAdvance += rel.0 * h.u + rel.1 * h.v }
            if let h = d.heading() ?? r.heading { r.advance -= rel.0 * h.u + rel.1 * h.v }
            r.u = d.u; r.v = d.v; r.du = dr.0; r.dv = dr.1
            r.heading = d.heading() ?? r.heading
            r.missed = 0
            let win = settings.advanceToWinPx
            if r.trackAdvance >= win, r.trackAdvance - r.advance >= win { continue }
            if settings.rivalMayWin, r.advance >= win, r.advance - r.trackAdvance >= win, winner == nil { winner = (d, r); continue }
            kept.append(r)
        }
        if let (d, _) = winner {
            // The track was the point fixed in the anatomy: it moves to the rival's end.
            start(at: d)
            rivals = kept
            var out = t
            out.u = d.u; out.v = d.v; out.detection = d
            out.innovationPx = nil
            out.confidence = rivals.isEmpty ? settings.confidenceModel.probability(d, innovation: nil, radius: nil) : min(t.confidence, settings.contestedConfidence)
            lastFix = (d.u, d.v)
            return out
        }
        rivals = kept
        lastFix = fix
        var out = t
        if !rivals.isEmpty { out.confidence = min(out.confidence, settings.contestedConfidence) }
        return out
    }

    /// Small frames are searched at full resolution, large ones downsampled as set.
    func fullDownsample(_ f: Frame) -> Int { min(f.width, f.height) >= 768 ? settings.fullFrameDownsample : 1 }

    /// px — the search radius: the gate's extent of the predicted position, within the limits.
    func searchRadius() -> Double {
        let s = max(p[0], p[5]).squareRoot() * settings.gate.squareRoot() + 2 * settings.measurementNoise
        return min(radii.maximum, max(radii.minimum, s.isFinite ? s : radii.maximum))
    }

    func accept(_ d: CatheterDetection, threshold: Double) -> Bool {
        guard d.confidence >= threshold, d.u.isFinite, d.v.isFinite else { return false }
        // Mahalanobis distance of the innovation with S = H P Hᵀ + R.
        let r = settings.measurementNoise * settings.measurementNoise
        let s00 = p[0] + r, s01 = p[1], s11 = p[5] + r
        let det = s00 * s11 - s01 * s01
        guard det > 0 else { return false }
        let du = d.u - x[0], dv = d.v - x[1]
        let m = (s11 * du * du - 2 * s01 * du * dv + s00 * dv * dv) / det
        let floor = radii.minimum
        return m <= settings.gate || du * du + dv * dv <= floor * floor
    }

    private func fix(_ d: CatheterDetection, _ frame: Frame, region: PixelRegion, fullFrame: Bool) -> TipTrack {
        let innovation = hypot(d.u - x[0], d.v - x[1]), radius = searchRadius()
        update(d.u, d.v)
        follow(d)
        missed = 0
        let confidence = settings.confidenceModel.probability(d, innovation: innovation, radius: radius)
        return TipTrack(frame: frameIndex, acquiredAt: frame.acquiredAt, u: d.u, v: d.v, confidence: confidence, status: .tracked,
                        fullFrameSearch: fullFrame, region: region, detection: d, innovationPx: innovation, searchRadiusPx: radius)
    }

    private func miss(_ frame: Frame, region: PixelRegion, fullFrame: Bool) -> TipTrack {
        if missed >= settings.reacquireAfter {
            // Too long without a measurement: the motion model no longer knows where the tip is.
            x[2] = 0; x[3] = 0
        }
        return TipTrack(frame: frameIndex, acquiredAt: frame.acquiredAt, u: initialised ? x[0] : .nan, v: initialised ? x[1] : .nan,
                        confidence: 0, status: .lost, fullFrameSearch: fullFrame, region: region, detection: nil)
    }

    /// Fixes that point back against the heading this many times in a row turn it round.
    static let reversalsToTurn = 3

    /// Takes the fix's heading, unless it points back against the current one: one wrong fix
    /// (the tip read from the wrong side of a band) would otherwise turn the heading round and
    /// then hold the track on the wrong side. A catheter that really reverses in the image (a
    /// loop, a tip bent past 90°) turns it after a few fixes that agree.
    func follow(_ d: CatheterDetection) {
        guard let h = d.heading() else { return }
        if let old = heading, old.u * h.u + old.v * h.v < 0, reversals + 1 < Self.reversalsToTurn {
            reversals += 1
            return
        }
        reversals = 0
        heading = h
    }

    // MARK: Kalman filter (constant velocity, white acceleration)

    private func predict(_ dt: Double) {
        x[0] += dt * x[2]
        x[1] += dt * x[3]
        // P = F P Fᵀ + Q, F = [[I, dt I], [0, I]].
        var f = [Double](repeating: 0, count: 16)
        for i in 0..<4 { f[i * 4 + i] = 1 }
        f[0 * 4 + 2] = dt; f[1 * 4 + 3] = dt
        var fp = [Double](repeating: 0, count: 16)
        for i in 0..<4 { for j in 0..<4 { var s = 0.0; for k in 0..<4 { s += f[i * 4 + k] * p[k * 4 + j] }; fp[i * 4 + j] = s } }
        var np = [Double](repeating: 0, count: 16)
        for i in 0..<4 { for j in 0..<4 { var s = 0.0; for k in 0..<4 { s += fp[i * 4 + k] * f[j * 4 + k] }; np[i * 4 + j] = s } }
        let q = settings.accelerationNoise * settings.accelerationNoise
        let dt2 = dt * dt, dt3 = dt2 * dt / 2, dt4 = dt2 * dt2 / 4
        for a in 0..<2 {
            np[a * 4 + a] += q * dt4
            np[a * 4 + a + 2] += q * dt3
            np[(a + 2) * 4 + a] += q * dt3
            np[(a + 2) * 4 + a + 2] += q * dt2
        }
        p = np
    }

    private func update(_ u: Double, _ v: Double) {
        let r = settings.measurementNoise * settings.measurementNoise
        let s00 = p[0] + r, s01 = p[1], s10 = p[4], s11 = p[5] + r
        let det = s00 * s11 - s01 * s10
        guard det > 0 else { return }
        let i00 = s11 / det, i01 = -s01 / det, i10 = -s10 / det, i11 = s00 / det
        // K = P Hᵀ S⁻¹ (4 × 2).
        var k = [Double](repeating: 0, count: 8)
        for i in 0..<4 {
            let a = p[i * 4 + 0], b = p[i * 4 + 1]
            k[i * 2] = a * i00 + b * i10
            k[i * 2 + 1] = a * i01 + b * i11
        }
        let yu = u - x[0], yv = v - x[1]
        for i in 0..<4 { x[i] += k[i * 2] * yu + k[i * 2 + 1] * yv }
        // P = (I − K H) P.
        var np = p
        for i in 0..<4 { for j in 0..<4 { np[i * 4 + j] = p[i * 4 + j] - k[i * 2] * p[0 * 4 + j] - k[i * 2 + 1] * p[1 * 4 + j] } }
        p = np
    }
}
