import Foundation

/// A catheter found in one frame: its centerline (proximal → distal, full-frame px), the tip
/// (the distal end point of the centerline, sub-pixel), and how sure the detector is.
public struct CatheterDetection: Sendable, Equatable {
    public var u: Double
    public var v: Double
    /// 0…1: ridge strength near the tip and the sharpness of the tip's end, both against noise.
    public var confidence: Double
    /// Centerline points, proximal → distal, ending at the refined tip.
    public var centerline: [(u: Double, v: Double)]
    /// px — the catheter's apparent width (from the selected ridge scale).
    public var widthPx: Double
    /// Median ridge strength along the last part of the catheter (noise units).
    public var ridgeSNR: Double
    /// Contrast of the tip's end step against the noise of the attenuation profile.
    public var endSNR: Double
    /// Evidence that this is the end of a catheter (nil where it was not measured).
    public var evidence: TipEvidence? = nil
    /// The rank the detector gave this tip among the frame's candidates (larger is better; 0
    /// where it was not ranked): comparable between detectors of the same kind on one frame.
    public var score: Double = 0

    /// The unit direction of the centerline's last `length` px of arc, pointing at the tip; nil
    /// when the centerline is shorter.
    public func heading(length: Double = 8) -> (u: Double, v: Double)? {
        guard let tip = centerline.last else { return nil }
        for q in centerline.reversed() {
            let du = tip.u - q.u, dv = tip.v - q.v, l = hypot(du, dv)
            if l >= length { return (du / l, dv / l) }
        }
        return nil
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.u == b.u && a.v == b.v && a.confidence == b.confidence && a.widthPx == b.widthPx
            && a.centerline.count == b.centerline.count && zip(a.centerline, b.centerline).allSatisfy { $0.u == $1.u && $0.v == $1.v }
    }
}

/// Settings of the detector above the ridge filter.
public struct DetectorSettings: Sendable, Equatable {
    public var ridge = RidgeSettings()
    /// Chain ends closer than this (px, plus 1.5 × the ridge σ) may be linked into one curve…
    public var linkGapPx = 10.0
    /// …when their directions agree within this angle (degrees).
    public var linkAngleDeg = 50.0
    /// Curves shorter than this (px of arc) are not catheters.
    public var minLengthPx = 20.0
    /// An end within this many px (plus 2σ) of the searched region's border leaves the field: proximal.
    public var borderPx = 4.0
    /// Whether an acquisition re-ranks its best candidates by their `TipEvidence`
    /// (`TipEvidence.rankFactor`). Off: on the tuning split (16 sequences, 30 frames) it changed
    /// one sequence's acquisition, to a wrong tip it then held (tuning-09: 1 → 30 frames more than
    /// 10 px off; median 1.06 → 1.24 px, confident-wrong 3.3 → 6.7 %) and fixed none. The
    /// evidence is still measured for the candidates and feeds the confidence.
    public var rankByEvidence = false
    /// The physical sizes (mm at the detector) behind the pixel lengths above, which those
    /// lengths grow to at a frame's known pitch; nil: the pixel values at every pitch.
    public var physical: PhysicalScales? = PhysicalScales()
    public init() {}

    /// The settings for a frame of `pitchMM` mm per pixel: each length in pixels is its physical
    /// size over the pitch, never below the pixel value given here (the finest scale the ridge
    /// filter resolves, the lengths it was tuned with at coarse pitch) and never above
    /// `PhysicalScales.maximumGrowth` times it. The pixel values as given where the pitch is
    /// unknown (nil) or `physical` is nil.
    public func atPitch(_ pitchMM: Double?) -> DetectorSettings {
        guard let ph = physical, let pitch = pitchMM, pitch.isFinite, pitch > 0 else { return self }
        func px(_ value: Double, _ mm: Double) -> Double { PhysicalScales.pixels(value, mm: mm, pitch: pitch) }
        var s = self
        s.ridge.sigmaMin = px(ridge.sigmaMin, ph.sigmaMinMM)
        s.ridge.sigmaMax = max(s.ridge.sigmaMin, px(ridge.sigmaMax, ph.sigmaMaxMM))
        s.ridge.tophatPx = px(ridge.tophatPx, ph.tophatMM)
        s.linkGapPx = px(linkGapPx, ph.linkGapMM)
        s.minLengthPx = px(minLengthPx, ph.minLengthMM)
        s.borderPx = px(borderPx, ph.borderMM)
        return s
    }

    /// The same detector for catheters twice as wide in pixels (fine pitch, a large catheter:
    /// 10–20 px across, where the default scales and top-hat see a flat band with two edges
    /// and trace nothing but the thin wires beside it). Every length in pixels doubles, so at
    /// half resolution it sees what the default sees at full resolution.
    public static var wide: DetectorSettings {
        var s = DetectorSettings()
        s.ridge.sigmaMin *= 2
        s.ridge.sigmaMax *= 2
        s.ridge.tophatPx *= 2
        s.linkGapPx *= 2
        s.minLengthPx *= 2
        return s
    }

    func validate() throws(TrackingError) {
        try ridge.validate()
        for (v, f) in [(linkGapPx, "link_gap_px"), (linkAngleDeg, "link_angle_deg"), (minLengthPx, "min_length_px"), (borderPx, "border_px")] {
            guard v.isFinite, v >= 0 else { throw .badSetting(field: f, reason: "must be a finite number ≥ 0, got \(v)") }
        }
        try physical?.validate()
        // The largest growth must still be a valid ridge filter.
        var grown = ridge
        grown.sigmaMin *= PhysicalScales.maximumGrowth; grown.sigmaMax *= PhysicalScales.maximumGrowth; grown.tophatPx *= PhysicalScales.maximumGrowth
        if physical != nil { try grown.validate() }
    }
}

/// The detector's lengths as physical sizes, in mm at the detector (the pitch DICOM's
/// ImagerPixelSpacing gives). The defaults are the pixel defaults at 0.3 mm (the geometric middle
/// of the 0.15–0.6 mm the tuning split draws): σ 0.3–0.96 mm covers catheters about 0.9–2.9 mm
/// across in the image (3σ), the top-hat drops structures over 5.1 mm, links span 3 mm gaps, and
/// a tip needs 6 mm of traced shaft behind it.
public struct PhysicalScales: Sendable, Equatable {
    /// mm — the ridge filter's finest and widest Gaussian scale.
    public var sigmaMinMM = 0.3, sigmaMaxMM = 0.96
    /// mm — structures wider than this are background.
    public var tophatMM = 5.1
    /// mm — the largest gap a link spans; the shortest curve (the shaft a tip needs behind it);
    /// how near the searched region's border an end leaves the field.
    public var linkGapMM = 3.0, minLengthMM = 6.0, borderMM = 1.2
    public init() {}

    /// The most a pixel length grows (a pitch four times finer than the one the pixel values
    /// stand for): beyond it the filter's cost grows faster than what a finer pitch shows.
    public static let maximumGrowth = 4.0

    /// px — a length of `mm` at `pitch` mm per pixel, never below `value` px nor above
    /// `maximumGrowth` times it (`value` itself where the two differ by rounding only).
    public static func pixels(_ value: Double, mm: Double, pitch: Double) -> Double {
        let grown = mm / pitch
        guard grown.isFinite, grown > value * (1 + 1e-9) else { return value }
        return min(maximumGrowth * value, grown)
    }

    func validate() throws(TrackingError) {
        for (v, f) in [(sigmaMinMM, "physical.sigma_min_mm"), (sigmaMaxMM, "physical.sigma_max_mm"), (tophatMM, "physical.tophat_mm"),
                       (linkGapMM, "physical.link_gap_mm"), (minLengthMM, "physical.min_length_mm"), (borderMM, "physical.border_mm")] {
            guard v.isFinite, v >= 0 else { throw .badSetting(field: f, reason: "must be a finite number ≥ 0, got \(v)") }
        }
        guard sigmaMaxMM >= sigmaMinMM else { throw .badSetting(field: "physical.sigma_max_mm", reason: "must be ≥ sigma_min_mm") }
    }
}

/// Finds the catheter in a frame and localises its tip.
///
/// The ridge filter (OpenCV, through the bridge) returns chains of dark thin ridges. Chains are
/// linked end to end where they continue each other in position and direction, which carries a
/// curve through its own crossings and through short gaps. A candidate tip is a curve end that
/// is free inside the searched region; the other end of a catheter normally leaves the field.
/// Without a prediction the strongest, longest curve with a free end wins and its tip is the free
/// end (the denser one when both are free); with a prediction, the free end nearest to it that
/// points the way the last fix did. Dense compact spots (marker bands) on a curve give candidates
/// too, where the ridge runs on past the tip, and so does a shaft that meets a band from the side. The tip
/// is then refined along the ridge direction to the half-height point of the end step in the
/// attenuation profile (sub-pixel).
public final class CatheterDetector {
    /// The settings as given: pixel lengths and the physical sizes behind them.
    public let baseSettings: DetectorSettings
    /// The settings of the last search: `baseSettings` at that frame's pitch (as given before any).
    public private(set) var settings: DetectorSettings
    public let ridges: RidgeExtractor
    /// mm — the pitch of the last searched frame; nil when it did not say (then the pixel
    /// lengths were used as given: `pitchUnknownNote` says so).
    public private(set) var pitchMM: Double?
    /// What a frame without a pitch means for the search.
    public static let pitchUnknownNote = "the frame carries no pixel pitch: the detector uses its pixel lengths as given (tuned at 0.3 mm); "
        + "give frames with ImagerPixelSpacing (or PixelSpacing) for catheters sized in mm"
    /// The chains of the last search, for overlays.
    public private(set) var lastChains: [[RidgePoint]] = []
    /// The compact dense spots of the last search (strongest first), for overlays.
    public private(set) var lastBlobs: [RidgeBlob] = []
    /// When set, `detect` keeps the candidates it ranked in `lastCandidates`, each with its
    /// evidence measured: to study which evidence tells a real tip from a wrong one. Off while
    /// tracking: measuring every candidate's evidence costs time the cycle does not have.
    public var recordsCandidates = false
    /// The last search's candidates, best score first (at most `recordedCandidates`), each with
    /// its final `score`: kept for an acquisition (no prior) and, with `recordsCandidates`, for
    /// every search; empty otherwise.
    public private(set) var lastCandidates: [CatheterDetection] = []
    /// How many candidates `lastCandidates` keeps.
    public static let recordedCandidates = 16

    public init(settings: DetectorSettings = DetectorSettings()) throws(TrackingError) {
        try settings.validate()
        baseSettings = settings
        self.settings = settings
        ridges = try RidgeExtractor(settings: settings.ridge)
    }

    /// Scales the settings to the frame's pitch when it differs from the last frame's.
    func adapt(to pitch: Double?) throws(TrackingError) {
        guard pitch != pitchMM else { return }
        let s = baseSettings.atPitch(pitch)
        try ridges.retune(s.ridge)
        settings = s
        pitchMM = pitch
    }

    /// A prior for the search: the predicted tip and how far from it a tip may be.
    public struct Prior: Sendable {
        public var u: Double, v: Double
        public var radius: Double
        /// The unit direction the tip pointed in at the last fix, when known.
        public var heading: (u: Double, v: Double)?
        public init(u: Double, v: Double, radius: Double, heading: (u: Double, v: Double)? = nil) {
            self.u = u; self.v = v; self.radius = radius; self.heading = heading
        }

        /// What a tip's score is multiplied by for pointing away from the last heading: 1 within
        /// 60°, falling to 0.4 for a tip that points back. A catheter's distal end turns a
        /// few degrees between frames; a tip read from the wrong side of a marker band, or from a
        /// vessel that leaves the catheter, points elsewhere. Damped rather than refused: a tip
        /// that truly turns (a tendon bend at a low frame rate) still wins where nothing else does.
        func turn(_ d: CatheterDetection) -> Double {
            guard let h = heading, let o = d.heading() else { return 1 }
            let c = h.u * o.u + h.v * o.v, free = 0.5, floor = 0.4
            return c >= free ? 1 : 1 - (free - c) / (free + 1) * (1 - floor)
        }

        /// What a tip's score is divided by for its distance from the prediction (1 on it, 2 at a quarter radius).
        func falloff(_ d: CatheterDetection) -> Double {
            let dist = hypot(d.u - u, d.v - v), scale = max(2, 0.25 * radius)
            return 1 + (dist / scale) * (dist / scale)
        }
    }

    /// Searches `region` (the whole frame when nil) on a `downsample`× smaller copy; with a prior,
    /// only tips within its radius count. Nil when no catheter tip is found.
    public func detect(_ frame: Frame, region: PixelRegion? = nil, downsample: Int = 1, prior: Prior? = nil) throws(TrackingError) -> CatheterDetection? {
        if let p = prior, !(p.u.isFinite && p.v.isFinite && p.radius.isFinite) { return nil }
        try adapt(to: frame.pixelPitchMM)
        let (chains, blobs) = try ridges.features(in: frame, region: region, downsample: downsample)
        lastChains = chains
        lastBlobs = blobs
        let area = region ?? PixelRegion(x: 0, y: 0, width: frame.width, height: frame.height)
        let curves = link(chains).filter { $0.length >= settings.minLengthPx }
        // Candidate tips: curve ends free inside the region (and near the prior, when given).
        var ends: [Candidate] = []
        for c in curves {
            let margin = settings.borderPx + 2 * c.sigma
            for atEnd in [true, false] {
                let tip = atEnd ? c.points[c.points.count - 1] : c.points[0]
                if area.inset(u: tip.u, v: tip.v) <= margin { continue }
                if let p = prior, hypot(tip.u - p.u, tip.v - p.v) > p.radius { continue }
                ends.append(Candidate(points: atEnd ? c.points : Array(c.points.reversed()), strength: c.strength, curve: c, atEnd: atEnd))
            }
        }
        ends.sort { $0.strength > $1.strength }
        var candidates = Array(ends.prefix(32))
        // A tip is not always a free end: the ridge may run on past it (a catheter over a line of
        // bone, or at the origin of a contrast-filled vessel). Its marker band still stands out as
        // the densest compact spot on the ridge, so strong spots lying on a curve are candidates too.
        let (onCurves, lone) = markerCandidates(frame, blobs: blobs, curves: curves, area: area, prior: prior)
        candidates += onCurves
        // The marker band is the densest compact spot the tip may be at: a weaker spot (a vessel's
        // origin, a crossing) is a worse tip the more a denser one stands out beside it.
        var densest = 0.0
        for b in blobs.prefix(24) where area.inset(u: b.u, v: b.v) > settings.borderPx + 2 * b.sigma {
            if let p = prior, hypot(b.u - p.u, b.v - p.v) > p.radius + 2 * b.sigma { continue }
            densest = max(densest, b.strength)
        }
        let dense = blobs.prefix(24).filter { $0.strength >= ridges.settings.highK }
        var best: (score: Double, detection: CatheterDetection)?
        var bestTraced: Candidate?
        var ranked: [(score: Double, detection: CatheterDetection, candidate: Candidate)] = []
        for cand in candidates {
            guard let d = refineTip(frame, cand.points, beyondFrom: cand.beyondFrom) else { continue }
            var score = d.confidence * min(cand.strength, 3000).squareRoot() * (0.5 + min(1.5, d.endSNR / 20))
            score *= cand.sideWeight * markerWeight(d, blobs: blobs, densest: densest)
            // The ridge filter's trace can break a few px before the marker band (a band is no
            // longer line-like). The free end left there borrows the band's density and can
            // outscore the band itself, a band's length or more short of the tip.
            if spotAhead(cand.points, tip: d, dense: dense) { score *= 0.5 }
            if let p = prior {
                score /= p.falloff(d)
                score *= p.turn(d)
            } else if cand.marker == nil {
                // The denser end of a curve is the distal one (the tip marker).
                let here = endDensity(frame, cand.curve, atEnd: cand.atEnd), there = endDensity(frame, cand.curve, atEnd: !cand.atEnd)
                if here < there { score *= 0.5 }
            }
            if score > 0 { ranked.append((score, d, cand)) }
        }
        // Evidence per candidate, for an acquisition (the whole frame, no prediction to lean
        // on) where `rankByEvidence` is set: the strongest few are re-ranked by whether they look
        // like the end of a catheter. Otherwise only the winner is measured (below): its
        // evidence feeds the confidence.
        ranked.sort { $0.score > $1.score }
        for (k, r) in ranked.enumerated() {
            var score = r.score, d = r.detection
            if prior == nil, settings.rankByEvidence, k < Self.evidenceRanked, r.candidate.points.count >= 3 {
                let c = r.candidate
                d.evidence = evidence(frame, c.points, tip: (d.u, d.v), dir: outward(c.points, atEnd: true), width: d.widthPx, skip: c.beyondFrom)
                score *= d.evidence?.rankFactor(widthPx: d.widthPx) ?? 0.1
            }
            if best == nil || score > best!.score { best = (score, d); bestTraced = r.candidate }
        }
        // Dense spots no curve reaches: marker bands whose shaft is lost in the noise or seen
        // end on. Rated as a short shaft of the spot's strength, and at half the weight of a tip
        // a traced shaft leads to, which wins where it exists.
        var loneFound: [CatheterDetection] = []
        for b in lone {
            guard var d = loneMarker(frame, b, heading: prior?.heading) else { continue }
            let score = loneScore(d, b, densest: densest, prior: prior)
            d.score = score
            if score > 0 { loneFound.append(d) }
            if score > 0, best == nil || score > best!.score { best = (score, d); bestTraced = nil }
        }
        // An acquisition keeps its runners-up (the tracker weighs them as rival tips); a study keeps all.
        if recordsCandidates || prior == nil {
            record(frame, ranked: ranked, lone: loneFound, prior: prior, measure: recordsCandidates)
        } else {
            lastCandidates = []
        }
        // The evidence is measured for the winner only: it feeds the tracker's confidence, not the ranking.
        guard var found = best?.detection else { return nil }
        found.score = best?.score ?? 0
        if found.evidence == nil, let c = bestTraced, c.points.count >= 3 {
            found.evidence = evidence(frame, c.points, tip: (found.u, found.v), dir: outward(c.points, atEnd: true), width: found.widthPx, skip: c.beyondFrom)
        }
        return found
    }

    /// Keeps the ranked candidates (traced and lone, scored as `detect` scores them) in
    /// `lastCandidates`, best first; with `measure`, each with its evidence where a shaft was traced.
    func record(_ frame: Frame, ranked: [(score: Double, detection: CatheterDetection, candidate: Candidate)], lone: [CatheterDetection],
                prior: Prior?, measure: Bool) {
        var all: [CatheterDetection] = []
        for (k, r) in ranked.prefix(Self.recordedCandidates).enumerated() {
            var d = r.detection
            let c = r.candidate
            d.score = r.score
            let ranks = prior == nil && settings.rankByEvidence && k < Self.evidenceRanked
            if d.evidence == nil, c.points.count >= 3, measure || ranks {
                d.evidence = evidence(frame, c.points, tip: (d.u, d.v), dir: outward(c.points, atEnd: true), width: d.widthPx, skip: c.beyondFrom)
            }
            if ranks, c.points.count >= 3 { d.score *= d.evidence?.rankFactor(widthPx: d.widthPx) ?? 0.1 }
            all.append(d)
        }
        all += lone
        all.sort { $0.score > $1.score }
        lastCandidates = Array(all.prefix(Self.recordedCandidates))
    }

    /// The rank of a lone spot's tip: a short shaft of the spot's strength, at half the weight
    /// of a tip a traced shaft leads to, less the more a denser spot stands out beside it.
    func loneScore(_ d: CatheterDetection, _ b: RidgeBlob, densest: Double, prior: Prior?) -> Double {
        let relative = densest > b.strength ? b.strength / densest : 1
        var score = 0.5 * d.confidence * (min(b.strength, 30) * 8 * b.sigma).squareRoot() * (0.5 + min(1.5, d.endSNR / 20)) * relative * relative
        if let p = prior { score /= p.falloff(d) }
        return score
    }

    /// How many of an acquisition's best-scored traced candidates are re-ranked by their evidence.
    static let evidenceRanked = 8

    /// A candidate tip: the curve's points ordered proximal → distal, ending at the candidate.
    struct Candidate {
        var points: [RidgePoint]
        /// Ridge strength of the proximal part behind the tip.
        var strength: Double
        var curve: Curve
        var atEnd: Bool
        /// The spot the candidate was made from (nil for a free curve end).
        var marker: RidgeBlob? = nil
        /// px beyond the last point where the background past the tip starts.
        var beyondFrom: Double? = nil
        /// < 1 when the side the catheter continues to could not be told apart.
        var sideWeight = 1.0
    }

    /// Score factor of a dense compact end: the strongest spot at the refined tip, against the
    /// ridge strength of the shaft behind it (both in noise units, so no absolute density is
    /// assumed). A plain ridge end answers the spot filter at about half its ridge strength;
    /// a marker band much more.
    func markerWeight(_ d: CatheterDetection, blobs: [RidgeBlob], densest: Double = 0) -> Double {
        var strongest = 0.0
        for b in blobs {
            let reach = d.widthPx + b.sigma
            if abs(b.u - d.u) > reach || abs(b.v - d.v) > reach { continue }
            if hypot(b.u - d.u, b.v - d.v) <= reach { strongest = max(strongest, b.strength) }
        }
        guard strongest >= ridges.settings.highK, d.ridgeSNR > 0 else { return 1 }
        let ratio = strongest / d.ridgeSNR
        let relative = densest > strongest ? strongest / densest : 1
        return (1 + min(3, max(0, ratio - 0.75))) * relative * relative
    }

    /// Whether the candidate ends without a dense spot of its own but one lies ahead: past the
    /// tip, within a linking gap, in the direction the candidate's line leaves it. `dense`: the
    /// frame's spots at or above the ridge filter's high threshold.
    func spotAhead(_ pts: [RidgePoint], tip d: CatheterDetection, dense: [RidgeBlob]) -> Bool {
        guard pts.count >= 3 else { return false }
        let o = outward(pts, atEnd: true)
        let cosMax = cos(settings.linkAngleDeg * .pi / 180)
        let sigma = pts[pts.count - 1].sigma
        if dense.contains(where: { hypot($0.u - d.u, $0.v - d.v) <= $0.sigma + 1 }) { return false }
        for b in dense {
            let du = b.u - d.u, dv = b.v - d.v
            let gap = hypot(du, dv)
            guard gap > b.sigma + 1, gap <= settings.linkGapPx + 1.5 * sigma + b.sigma else { continue }
            if (o.0 * du + o.1 * dv) / gap >= cosMax { return true }
        }
        return false
    }

    /// Candidates at strong spots on a curve: the tip at the spot's distal end, the distal side
    /// being the one the shaft does not continue to.
    func markerCandidates(_ f: Frame, blobs: [RidgeBlob], curves: [Curve], area: PixelRegion, prior: Prior?) -> (candidates: [Candidate], lone: [RidgeBlob]) {
        var out: [Candidate] = []
        var lone: [RidgeBlob] = []
        for b in blobs.prefix(24) {
            if let p = prior, hypot(b.u - p.u, b.v - p.v) > p.radius + 2 * b.sigma { continue }
            if area.inset(u: b.u, v: b.v) <= settings.borderPx + 2 * b.sigma { continue }
            var hit: (curve: Int, index: Int, dist: Double)?
            for (ci, c) in curves.enumerated() {
                if let q = nearest(on: c, to: b), hit == nil || q.dist < hit!.dist { hit = (ci, q.index, q.dist) }
            }
            let c: Curve, index: Int
            if let h = hit {
                c = curves[h.curve]
                index = h.index
                if prior == nil || prior?.heading != nil, let through = arrival(at: b, hit: h.curve, curves: curves, blobs: blobs) { out.append(through) }
            } else if let bridged = bridge(to: b, curves: curves) {
                // A dense spot interrupts the ridge filter's trace (it is no longer line-like):
                // the curve that ends pointing at it is carried on to it.
                c = bridged
                index = bridged.points.count - 1
            } else {
                lone.append(b)
                continue
            }
            let n = c.points.count
            let h = (curve: 0, index: index)
            let width = max(2.5, 3 * c.points[h.index].sigma)
            // Which side does the shaft continue to? Its attenuation above the sides stays at
            // catheter level; past the tip only what the ridge ran on into (or nothing) remains.
            let from = b.sigma + 0.5 * width, to = b.sigma + 4 * width
            let ahead = walk(c.points, from: h.index, step: 1, start: from, end: to)
            let behind = walk(c.points, from: h.index, step: -1, start: from, end: to)
            let forward = sideProfile(f, ahead, width: width), backward = sideProfile(f, behind, width: width)
            guard forward.level.isFinite, backward.level.isFinite else { continue }
            let noise = max(1e-4, (forward.noise + backward.noise) / 2)
            var contrast = (backward.level - forward.level) / noise * Double(min(forward.count, backward.count)).squareRoot()
            // A contrast-filled vessel beyond the tip can be denser than the shaft. But the
            // marker band is the catheter's own tube, so the shaft has the band's width, and a
            // vessel that holds the catheter is wider. When both sides carry a structure and
            // only one has the band's width, that one is the shaft, whatever the levels say.
            if let side = widthSide(f, blob: b, normal: (c.points[h.index].nx, c.points[h.index].ny), ahead: ahead, behind: behind,
                                    levels: (forward.level, backward.level), noise: noise) {
                contrast = side > 0 ? max(contrast, 3) : min(contrast, -3)
            }
            // Shaft behind (toward the start): tip toward the end, and the reverse.
            let towardEnd = Array(c.points[0...h.index]), towardStart = Array(c.points[h.index..<n].reversed())
            let beyond = b.sigma + 0.5 * width + 1
            func strength(_ pts: [RidgePoint]) -> Double { pts.count >= 2 ? makeCurve(pts).strength : 0 }
            // Ambiguous (a symmetric spot, or equal levels): both, the less likely one damped.
            let clear = 3.0
            let towardEndWeight = contrast >= clear ? 1 : (contrast <= -clear ? 0 : 0.5 + 0.5 * contrast / clear)
            for (pts, w, atEnd) in [(towardEnd, towardEndWeight, true), (towardStart, 1 - towardEndWeight, false)] where w > 0 && pts.count >= 3 {
                out.append(Candidate(points: pts, strength: strength(pts), curve: c, atEnd: atEnd, marker: b, beyondFrom: beyond,
                                     sideWeight: max(0.5, w)))
            }
        }
        return (out, lone)
    }

    /// A band the shaft arrives at from the side: the ridge through the band runs on into a
    /// contrast-filled vessel (and often past a vessel seen end on), while the catheter's own
    /// shaft is traced as a separate curve whose free end points at the band. The side rule on
    /// the ridge through the band cannot see that shaft, so the arriving curve, carried on to the
    /// band, is a candidate of its own with the tip at the band's far edge. Only where the spot
    /// is the densest on the ridge through it: a shaft that crosses a vessel seen end on (or a
    /// vessel's origin) on its way to the band also ends pointing at that spot, and the catheter
    /// runs on along the ridge to the band, which is denser. Not made where a prior comes without
    /// a heading (the closed loop's tracking): near a prediction, with nothing to say which way
    /// the tip points, a curve that merely ends at a band (a vessel's edge) wins too often there.
    /// With a heading, such a curve points the wrong way and is damped; without a prior (an
    /// acquisition), the whole frame's candidates compete.
    func arrival(at b: RidgeBlob, hit: Int, curves: [Curve], blobs: [RidgeBlob]) -> Candidate? {
        if blobs.prefix(24).contains(where: { $0.strength > b.strength && nearest(on: curves[hit], to: $0) != nil }) { return nil }
        guard let arriving = bridge(to: b, curves: curves, excluding: hit), arriving.points.count >= 3 else { return nil }
        let width = max(2.5, 3 * arriving.points[arriving.points.count - 1].sigma)
        return Candidate(points: arriving.points, strength: arriving.strength, curve: arriving, atEnd: true, marker: b,
                         beyondFrom: b.sigma + 0.5 * width + 1)
    }

    /// The curve's point nearest the spot's centre, when one lies within reach of it (the spot
    /// lies on the curve).
    func nearest(on c: Curve, to b: RidgeBlob) -> (index: Int, dist: Double)? {
        let reach = max(2.0, b.sigma + 1)
        var best: (index: Int, dist: Double)?
        for (k, q) in c.points.enumerated() {
            let du = q.u - b.u, dv = q.v - b.v
            if abs(du) > reach || abs(dv) > reach { continue }
            let dist = hypot(du, dv)
            if dist <= reach, best == nil || dist < best!.dist { best = (k, dist) }
        }
        return best
    }

    /// Which side of a marker spot has the spot's own width: +1 the side behind (toward the
    /// curve's start), −1 the side ahead, nil when the widths do not tell (one side empty,
    /// both as wide as the band, or both wider).
    func widthSide(_ f: Frame, blob b: RidgeBlob, normal: (Double, Double), ahead: [Sample], behind: [Sample],
                   levels: (ahead: Double, behind: Double), noise: Double) -> Int? {
        // Both sides must carry a structure well above the noise: otherwise the levels decide.
        let minimum = 6 * noise / Double(max(1, min(ahead.count, behind.count))).squareRoot()
        guard levels.ahead > minimum, levels.behind > minimum else { return nil }
        // The band's width across the ridge, averaged over its length.
        let tangent = (-normal.1, normal.0)
        let band = stride(from: -1.0, through: 1.0, by: 0.5).map { t in (u: b.u + tangent.0 * t, v: b.v + tangent.1 * t, nx: normal.0, ny: normal.1) }
        let span = max(8, 6 * b.sigma)
        guard let w0 = crossWidth(f, band, span: span), let wa = crossWidth(f, ahead, span: span), let wb = crossWidth(f, behind, span: span)
        else { return nil }
        // A shaft measures a little wider than the short band (its centre wanders along the
        // length averaged); the other side must be clearly wider than that shaft.
        let same = 1.6, wider = 1.6
        if wb <= same * w0, wa >= wider * wb { return 1 }
        if wa <= same * w0, wb >= wider * wa { return -1 }
        return nil
    }

    /// px — how far before a band's centre a traced ridge may stop and still lead to it: a link's
    /// gap, plus half a band (two spot scales), where the trace stops because a band is no
    /// longer line-like. (A ridge that stops short of a band without a spot of its own is marked
    /// within a link's gap plus one spot scale: `spotAhead`.)
    func bandReach(ridge sigma: Double, spot: Double) -> Double { settings.linkGapPx + 1.5 * sigma + 2 * spot }

    /// The curve whose free end points at the spot across a gap a link could span, carried on
    /// straight to the spot's centre; nil when none does.
    func bridge(to b: RidgeBlob, curves: [Curve], excluding: Int? = nil) -> Curve? {
        let cosMax = cos(settings.linkAngleDeg * .pi / 180)
        var best: (curve: Int, atEnd: Bool, gap: Double)?
        for (ci, c) in curves.enumerated() where ci != excluding {
            for atEnd in [true, false] {
                let e = atEnd ? c.points[c.points.count - 1] : c.points[0]
                let du = b.u - e.u, dv = b.v - e.v
                let gap = hypot(du, dv)
                if gap > bandReach(ridge: e.sigma, spot: b.sigma) || gap < 1e-6 { continue }
                let o = outward(c.points, atEnd: atEnd)
                if (o.0 * du + o.1 * dv) / gap < cosMax { continue }
                if best == nil || gap < best!.gap { best = (ci, atEnd, gap) }
            }
        }
        guard let found = best else { return nil }
        let c = curves[found.curve]
        var pts = found.atEnd ? c.points : Array(c.points.reversed())
        let e = pts[pts.count - 1]
        let du = (b.u - e.u) / found.gap, dv = (b.v - e.v) / found.gap
        let steps = max(1, Int(found.gap.rounded(.up)))
        for k in 1...steps {
            let t = found.gap * Double(k) / Double(steps)
            pts.append(RidgePoint(u: e.u + du * t, v: e.v + dv * t, response: e.response, sigma: e.sigma, nx: -dv, ny: du))
        }
        return makeCurve(pts)
    }

    /// A position across which a profile is read, with the unit normal there.
    typealias Sample = (u: Double, v: Double, nx: Double, ny: Double)

    /// Sample positions (with the unit normal there) along a curve from point `from`, in
    /// direction `step`, every px of arc between `start` and `end`; straight on past the curve's end.
    func walk(_ pts: [RidgePoint], from: Int, step: Int, start: Double, end: Double) -> [Sample] {
        var out: [Sample] = []
        var k = from, acc = 0.0
        var cu = pts[from].u, cv = pts[from].v
        var dir = (0.0, 0.0)
        var nrm = (pts[from].nx, pts[from].ny)
        var next = start
        while next <= end {
            let j = k + step
            if j >= 0, j < pts.count {
                let seg = hypot(pts[j].u - cu, pts[j].v - cv)
                if acc + seg < next {
                    if seg > 1e-9 { dir = ((pts[j].u - cu) / seg, (pts[j].v - cv) / seg) }
                    acc += seg; cu = pts[j].u; cv = pts[j].v; nrm = (pts[j].nx, pts[j].ny); k = j
                    continue
                }
                if seg > 1e-9 { dir = ((pts[j].u - cu) / seg, (pts[j].v - cv) / seg) }
            } else if dir == (0, 0) {
                let o = outward(pts, atEnd: step > 0)
                dir = o
                nrm = (-o.1, o.0)
            }
            let t = next - acc
            out.append((cu + dir.0 * t, cv + dir.1 * t, nrm.0, nrm.1))
            next += 1
        }
        return out
    }

    /// The attenuation above the sides (±1 width across) at the positions of a `walk`: the
    /// median level, a robust noise of the samples and their count.
    func sideProfile(_ f: Frame, _ samples: [Sample], width: Double)
        -> (level: Double, noise: Double, count: Int) {
        let values = samples.map { s in
            attenuation(f, s.u, s.v) - 0.5 * (attenuation(f, s.u + s.nx * width, s.v + s.ny * width) + attenuation(f, s.u - s.nx * width, s.v - s.ny * width))
        }
        guard values.count >= 3 else { return (.nan, .nan, 0) }
        var diffs = zip(values, values.dropFirst()).map { abs($0.1 - $0.0) }.sorted()
        let noise = diffs.isEmpty ? 0 : diffs[diffs.count / 2] * 1.4826 / 2.0.squareRoot()
        diffs = values.sorted()
        return (diffs[diffs.count / 2], noise, values.count)
    }

    /// px — the full width at half height of the mean attenuation profile across the positions
    /// (±`span` px along each normal, above the level at the span's ends); `2·span` when the
    /// profile does not fall to half its height within the span, nil when it has no height.
    func crossWidth(_ f: Frame, _ samples: [Sample], span: Double) -> Double? {
        let step = 0.5
        let half = Int(span / step)
        guard !samples.isEmpty, half >= 4 else { return nil }
        var mean = [Double](repeating: 0, count: 2 * half + 1)
        for s in samples {
            for i in 0...(2 * half) {
                let o = Double(i - half) * step
                mean[i] += attenuation(f, s.u + s.nx * o, s.v + s.ny * o)
            }
        }
        let edge = 3
        let base = (mean.prefix(edge).reduce(0, +) + mean.suffix(edge).reduce(0, +)) / Double(2 * edge)
        // The peak near the centre (the ridge's centre is within a px or two of the structure's).
        var peak = half
        for i in (half - 4)...(half + 4) where mean[i] > mean[peak] { peak = i }
        let level = 0.5 * (mean[peak] + base)
        guard mean[peak] > base else { return nil }
        var left = 0.0, right = Double(2 * half)
        for i in stride(from: peak, to: 0, by: -1) where mean[i - 1] < level {
            left = Double(i) - (mean[i] - level) / (mean[i] - mean[i - 1]); break
        }
        for i in peak..<(2 * half) where mean[i + 1] < level {
            right = Double(i) + (mean[i] - level) / (mean[i] - mean[i + 1]); break
        }
        return (right - left) * step
    }

    // MARK: Linking chains into curves

    struct Curve {
        var points: [RidgePoint]
        var length: Double
        var strength: Double
        var sigma: Double
    }

    /// The unit direction leaving a chain at one end, from its last few px of arc.
    func outward(_ c: [RidgePoint], atEnd: Bool) -> (Double, Double) {
        let n = c.count
        let k = min(n - 1, max(2, Int(2 * (c[atEnd ? n - 1 : 0].sigma) + 3)))
        let a = atEnd ? c[n - 1] : c[0], b = atEnd ? c[n - 1 - k] : c[k]
        let dx = a.u - b.u, dy = a.v - b.v
        let l = max(hypot(dx, dy), 1e-9)
        return (dx / l, dy / l)
    }

    /// Greedy end-to-end linking by gap and agreement of direction (straight through crossings).
    func link(_ chains: [[RidgePoint]]) -> [Curve] {
        let n = chains.count
        guard n > 0 else { return [] }
        struct End { var chain: Int; var atEnd: Bool }
        struct Link { var a: End; var b: End; var cost: Double }
        var links: [Link] = []
        let cosMax = cos(settings.linkAngleDeg * .pi / 180)
        // Bucket the ends on a coarse grid so linking stays near-linear in the number of chains.
        let cell = 16.0
        var grid: [Int: [End]] = [:]
        func key(_ u: Double, _ v: Double) -> Int { Int((v / cell).rounded(.down)) * 100_000 + Int((u / cell).rounded(.down)) }
        for i in 0..<n {
            for atEnd in [false, true] {
                let p = atEnd ? chains[i][chains[i].count - 1] : chains[i][0]
                grid[key(p.u, p.v), default: []].append(End(chain: i, atEnd: atEnd))
            }
        }
        for i in 0..<n {
            for atEnd in [false, true] {
                let ci = chains[i]
                let p = atEnd ? ci[ci.count - 1] : ci[0]
                let dp = outward(ci, atEnd: atEnd)
                let gx = Int((p.u / cell).rounded(.down)), gy = Int((p.v / cell).rounded(.down))
                for yy in (gy - 1)...(gy + 1) {
                    for xx in (gx - 1)...(gx + 1) {
                        for e in grid[yy * 100_000 + xx] ?? [] {
                            if e.chain < i || (e.chain == i && (!atEnd || e.atEnd)) { continue }  // each pair once
                            if e.chain == i && ci.count < 12 { continue }
                            let cj = chains[e.chain]
                            let q = e.atEnd ? cj[cj.count - 1] : cj[0]
                            let gap = hypot(q.u - p.u, q.v - p.v)
                            if gap > settings.linkGapPx + 1.5 * max(p.sigma, q.sigma) { continue }
                            // A catheter keeps its width: no linking across a change of scale.
                            if max(p.sigma, q.sigma) > 1.8 * min(p.sigma, q.sigma) { continue }
                            let dq = outward(cj, atEnd: e.atEnd)
                            // The two ends must face each other: continuing directions.
                            let along = -(dp.0 * dq.0 + dp.1 * dq.1)
                            if along < cosMax { continue }
                            if gap > 2 {
                                let cx = (q.u - p.u) / gap, cy = (q.v - p.v) / gap
                                if dp.0 * cx + dp.1 * cy < cosMax || -(dq.0 * cx + dq.1 * cy) < cosMax { continue }
                            }
                            links.append(Link(a: End(chain: i, atEnd: atEnd), b: e, cost: gap + 8 * (1 - along)))
                        }
                    }
                }
            }
        }
        links.sort { $0.cost < $1.cost }
        // partner[2·chain + (atEnd ? 1 : 0)] = the linked end's index, or −1.
        var partner = [Int](repeating: -1, count: 2 * n)
        for l in links {
            let ia = 2 * l.a.chain + (l.a.atEnd ? 1 : 0), ib = 2 * l.b.chain + (l.b.atEnd ? 1 : 0)
            if partner[ia] >= 0 || partner[ib] >= 0 { continue }
            partner[ia] = ib
            partner[ib] = ia
        }
        // Walk each path of linked chains from an unlinked end; then the closed cycles.
        var used = [Bool](repeating: false, count: n)
        var curves: [Curve] = []
        func walk(from startEnd: Int) {
            var pts: [RidgePoint] = []
            var e = startEnd
            while true {
                let c = e / 2
                if used[c] { break }
                used[c] = true
                let chain = chains[c]
                // Enter at end `e`, leave at the other end.
                let seq = e % 2 == 0 ? chain : chain.reversed()
                for p in seq {
                    if let last = pts.last, hypot(last.u - p.u, last.v - p.v) < 0.5 { continue }
                    pts.append(p)
                }
                let exit = e % 2 == 0 ? 2 * c + 1 : 2 * c
                let next = partner[exit]
                if next < 0 { break }
                e = next
            }
            if pts.count >= 2 { curves.append(makeCurve(pts)) }
        }
        for i in 0..<n where !used[i] {
            if partner[2 * i] < 0 { walk(from: 2 * i) } else if partner[2 * i + 1] < 0 { walk(from: 2 * i + 1) }
        }
        for i in 0..<n where !used[i] { walk(from: 2 * i) }
        return curves
    }

    func makeCurve(_ pts: [RidgePoint]) -> Curve {
        var length = 0.0, strength = 0.0
        for k in 1..<pts.count {
            let d = hypot(pts[k].u - pts[k - 1].u, pts[k].v - pts[k - 1].v)
            length += d
            strength += d * min(pts[k].response, 30)
        }
        let sigmas = pts.map(\.sigma).sorted()
        return Curve(points: pts, length: length, strength: strength, sigma: sigmas[sigmas.count / 2])
    }

    // MARK: The tip

    /// −log of the frame's grey value at a sub-pixel position (bilinear), clamped to the frame.
    @inline(__always) func attenuation(_ f: Frame, _ u: Double, _ v: Double) -> Double {
        let x = min(max(u, 0), Double(f.width) - 1.001), y = min(max(v, 0), Double(f.height) - 1.001)
        let x0 = Int(x), y0 = Int(y)
        let fx = x - Double(x0), fy = y - Double(y0)
        let i = y0 * f.width + x0
        let a = Double(f.pixels[i]), b = Double(f.pixels[i + 1]), c = Double(f.pixels[i + f.width]), d = Double(f.pixels[i + f.width + 1])
        let g = (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d)
        return -log(g + 1)
    }

    /// Mean attenuation over the last ~2 widths at one end of a curve, minus its surroundings.
    func endDensity(_ f: Frame, _ c: Curve, atEnd: Bool) -> Double {
        let w = max(2.5, 3 * c.sigma)
        let pts = atEnd ? Array(c.points.suffix(Int(2 * w))) : Array(c.points.prefix(Int(2 * w)))
        var inner = 0.0, outer = 0.0
        for p in pts {
            inner += attenuation(f, p.u, p.v)
            outer += 0.5 * (attenuation(f, p.u + p.nx * w, p.v + p.ny * w) + attenuation(f, p.u - p.nx * w, p.v - p.ny * w))
        }
        return (inner - outer) / Double(max(pts.count, 1))
    }

    /// Refines the distal end (the last point of `pts`) to the half-height point of the
    /// attenuation step along the ridge, and rates the detection.
    /// `beyondFrom` (px past the last point, one width when nil) is where the background past
    /// the end starts: past a marker band, not inside it.
    func refineTip(_ f: Frame, _ pts: [RidgePoint], beyondFrom: Double? = nil) -> CatheterDetection? {
        let n = pts.count
        guard n >= 3 else { return nil }
        let tailSigma = pts.suffix(max(3, n / 4)).map(\.sigma).sorted()
        let sigma = tailSigma[tailSigma.count / 2]
        let width = max(2.5, 3 * sigma)  // apparent catheter width, px
        let step = 0.5
        // Inward: along the centerline, back from the end; outward: straight on.
        let beyondPx = max(width, beyondFrom ?? width)
        let lIn = max(12.0, 3 * width), lOut = max(10.0, 2 * width, beyondPx + max(6, width))
        let dir = outward(pts, atEnd: true)
        var path: [Sample] = []  // inward samples, tip first
        var acc = 0.0, k = n - 1
        var cu = pts[n - 1].u, cv = pts[n - 1].v
        path.append((cu, cv, -dir.1, dir.0))
        while acc < lIn, k > 0 {
            let tu = pts[k - 1].u, tv = pts[k - 1].v
            let seg = hypot(tu - cu, tv - cv)
            if seg < step {
                acc += seg; cu = tu; cv = tv; k -= 1
                continue
            }
            cu += (tu - cu) / seg * step; cv += (tv - cv) / seg * step
            acc += step
            path.append((cu, cv, pts[k - 1].nx, pts[k - 1].ny))
        }
        let inward = path.count
        guard inward >= 5 else { return nil }
        // Profile: s < 0 inside (reversed path), s > 0 beyond the end, averaged across ±width/4.
        let half = 0.25 * width
        func across(_ u: Double, _ v: Double, _ nx: Double, _ ny: Double) -> Double {
            (attenuation(f, u, v) + attenuation(f, u + nx * half, v + ny * half) + attenuation(f, u - nx * half, v - ny * half)) / 3
        }
        var prof: [Double] = []
        var where_: [(Double, Double)] = []
        for s in path.reversed() {
            prof.append(across(s.u, s.v, s.nx, s.ny))
            where_.append((s.u, s.v))
        }
        let tipIndex = prof.count - 1
        let outCount = Int(lOut / step)
        for j in 1...outCount {
            let u = pts[n - 1].u + dir.0 * step * Double(j), v = pts[n - 1].v + dir.1 * step * Double(j)
            prof.append(across(u, v, -dir.1, dir.0))
            where_.append((u, v))
        }
        // Light smoothing along the profile.
        var sm = prof
        for i in 1..<(prof.count - 1) { sm[i] = 0.25 * prof[i - 1] + 0.5 * prof[i] + 0.25 * prof[i + 1] }
        // Background: beyond the end (from one width on) and beside the last width of the shaft.
        let beyondStart = tipIndex + Int(beyondPx / step)
        var beyond = Array(sm[min(beyondStart, sm.count - 1)...]).sorted()
        if beyond.isEmpty { beyond = [sm[sm.count - 1]] }
        var side: [Double] = []
        let last = pts.suffix(max(3, Int(width)))
        for p in last {
            side.append(attenuation(f, p.u + p.nx * (width + 2), p.v + p.ny * (width + 2)))
            side.append(attenuation(f, p.u - p.nx * (width + 2), p.v - p.ny * (width + 2)))
        }
        side.sort()
        let bgBeyond = beyond[beyond.count / 2], bgSide = side[side.count / 2]
        // The step that matters is the one beyond the end (a rib ending against a denser
        // vertebra has a shaft brighter than its sides but no drop past its end).
        let background = bgBeyond
        _ = bgSide
        // Plateau: the highest level within two widths inside the end (the marker when there is one).
        let lo = max(0, tipIndex - Int(2 * width / step))
        var peak = lo
        for i in lo...min(tipIndex + Int(0.5 * width / step), sm.count - 1) where sm[i] > sm[peak] { peak = i }
        let plateau = sm[peak]
        let height = plateau - background
        guard height > 0 else { return nil }
        let level = background + 0.5 * height
        var cross = Double(sm.count - 1)
        for i in peak..<(sm.count - 1) where sm[i] >= level && sm[i + 1] < level {
            cross = Double(i) + (sm[i] - level) / (sm[i] - sm[i + 1])
            break
        }
        // Where the level just past the end lies below the background window's (a structure
        // beyond the end, or a band reaching into the window, lifts the window), the end is the
        // steepest fall of the profile near that crossing, placed at the half level between what
        // lies just behind it and just past it: both read at the edge.
        if let edge = Self.distalEdge(sm, near: cross, step: step, width: width), edge.past < background { cross = edge.index }
        let ci = min(Int(cross), where_.count - 2), frac = cross - Double(ci)
        let tu = where_[ci].0 + frac * (where_[ci + 1].0 - where_[ci].0)
        let tv = where_[ci].1 + frac * (where_[ci + 1].1 - where_[ci].1)
        // Noise of the profile beyond the end (sample-to-sample differences, robust).
        var diffs: [Double] = []
        for i in min(beyondStart, prof.count - 2)..<(prof.count - 1) { diffs.append(abs(prof[i + 1] - prof[i])) }
        diffs.sort()
        let noise = max(1e-4, (diffs.isEmpty ? 1e-3 : diffs[diffs.count / 2]) * 1.4826 / 2.0.squareRoot())
        let endSNR = height / noise
        let tail = pts.suffix(max(3, Int(3 * width))).map(\.response).sorted()
        let ridgeSNR = tail[tail.count / 2]
        // A marker band is not line-like: the ridge filter answers weakly on it, so whether there
        // is a shaft is read behind the band, not across it.
        var shaftSNR = ridgeSNR
        if let skip = beyondFrom {
            let end = pts[n - 1]
            let behind = pts.filter { hypot($0.u - end.u, $0.v - end.v) > skip }
            if behind.count >= 3 {
                let r = behind.suffix(max(3, Int(3 * width))).map(\.response).sorted()
                shaftSNR = max(ridgeSNR, r[r.count / 2])
            }
        }
        let confidence = clamp01((shaftSNR - 4) / 8) * clamp01((endSNR - 2) / 6)
        var centerline = pts.map { (u: $0.u, v: $0.v) }
        // Drop centerline points beyond the refined tip, then end exactly at it.
        while let l = centerline.last, (l.u - tu) * dir.0 + (l.v - tv) * dir.1 > 0 { centerline.removeLast() }
        centerline.append((tu, tv))
        return CatheterDetection(u: tu, v: tv, confidence: confidence, centerline: centerline, widthPx: width,
                                 ridgeSNR: ridgeSNR, endSNR: endSNR)
    }
}

extension CatheterDetector {
    /// The sample index (fractional) of a catheter's distal end on `profile`, an attenuation
    /// profile along the catheter's axis sampled every `step` px, proximal → distal: the steepest
    /// fall of the mean level over an edge's reach (a quarter `width`, at least 2.5 px) within a
    /// reach of sample `near`, then the point where the profile crosses halfway between the
    /// highest level within three reaches behind that fall and the median level from one to
    /// three reaches past it (`past`, that median level). Nil where nothing falls there. Local on
    /// both sides of the edge, so its error does not grow with the length of a marker band in pixels.
    static func distalEdge(_ profile: [Double], near: Double, step: Double, width: Double) -> (index: Double, past: Double)? {
        let reach = max(1, Int((max(2.5, 0.25 * width) / step).rounded()))
        let n = profile.count
        guard step > 0, near.isFinite, n >= 4 * reach else { return nil }
        let c = Int(near.rounded())
        let lo = max(reach, c - reach), hi = min(n - reach, c + reach)
        guard lo <= hi else { return nil }
        var sums = [Double](repeating: 0, count: n + 1)
        for i in 0..<n { sums[i + 1] = sums[i] + profile[i] }
        func mean(_ a: Int, _ b: Int) -> Double { (sums[b] - sums[a]) / Double(b - a) }
        var edge = -1, fall = 0.0
        for i in lo...hi {
            let d = mean(i - reach, i) - mean(i, i + reach)
            if d > fall { fall = d; edge = i }
        }
        guard edge > 0 else { return nil }
        var peak = max(0, edge - 3 * reach)
        for i in peak..<edge where profile[i] > profile[peak] { peak = i }
        let past = Array(profile[min(n - 1, edge + reach)..<min(n, edge + 3 * reach)]).sorted()
        let inner = profile[peak], outer = past[past.count / 2]
        guard inner > outer else { return nil }
        let level = 0.5 * (inner + outer)
        for i in max(peak, edge - reach)..<min(n - 1, edge + 2 * reach) where profile[i] >= level && profile[i + 1] < level {
            return (Double(i) + (profile[i] - level) / (profile[i] - profile[i + 1]), outer)
        }
        return (Double(edge), outer)
    }
}

/// What a candidate tip's surroundings say about it being the end of a catheter: a shaft of
/// catheter width attached on one side and running on, and nothing of the kind beyond it.
public struct TipEvidence: Sendable, Equatable {
    /// px — full width at half height of the shaft behind the tip (behind the band, if any).
    public var shaftWidthPx: Double
    /// The shaft's level above its sides (attenuation), and its robust noise.
    public var shaftLevel: Double
    public var shaftNoise: Double
    /// The level above the sides of whatever runs on straight beyond the tip, as a fraction
    /// of the shaft's: near 1 where the tip is a dense spot in the middle of a catheter (or a
    /// crossing), near 0 at a true end.
    public var continuation: Double
    /// px of arc behind the tip over which the shaft holds at least a third of its level.
    public var shaftRunPx: Double
    /// 0…1: how evenly the shaft stands above both its sides (the smaller drop from its centre
    /// to a side, over the larger). A catheter is a symmetric dark ridge, near 1; the border of
    /// a rib or of the spine is a step, dark on one side only, near 0.
    public var symmetry: Double = 1
    public init(shaftWidthPx: Double, shaftLevel: Double, shaftNoise: Double, continuation: Double, shaftRunPx: Double, symmetry: Double = 1) {
        self.shaftWidthPx = shaftWidthPx; self.shaftLevel = shaftLevel; self.shaftNoise = shaftNoise
        self.continuation = continuation; self.shaftRunPx = shaftRunPx; self.symmetry = symmetry
    }

    /// What a candidate's rank is multiplied by (0.1…1): a tip that is the end of a catheter
    /// keeps its rank; a step edge, a spot the structure runs on past, or a short stub loses it.
    /// Each part is damped rather than refused: one noisy measure must not drop a real tip.
    public func rankFactor(widthPx: Double) -> Double {
        let sym = 0.25 + 0.75 * clamp01(symmetry / 0.6)
        let c = continuation.isFinite ? continuation : 1
        let cont = 1 - 0.7 * clamp01((c - 0.35) / 0.5)
        let run = 0.5 + 0.5 * clamp01(shaftRunPx / max(12, 4 * widthPx))
        let snr = shaftNoise > 0 ? shaftLevel / shaftNoise : 0
        let level = 0.4 + 0.6 * clamp01(snr / 3)
        return max(0.1, sym * cont * run * level)
    }
}

extension CatheterDetector {
    /// Measures the `TipEvidence` of a candidate tip at `tip`, pointing along `dir`, on the
    /// centerline `pts` (proximal → distal). `skip`: px behind the last point the band reaches
    /// (nil for a bare end).
    func evidence(_ f: Frame, _ pts: [RidgePoint], tip: (Double, Double), dir: (Double, Double), width: Double, skip: Double?) -> TipEvidence? {
        guard pts.count >= 3 else { return nil }
        let start = (skip ?? 0) + 0.75 * width
        let behind = walk(pts, from: pts.count - 1, step: -1, start: start, end: start + 5 * width)
        let shaft = sideProfile(f, behind, width: width)
        guard shaft.level.isFinite, shaft.count >= 3 else { return nil }
        let normal = (-dir.1, dir.0)
        let s0 = 0.75 * width + 1.5
        var ahead: [Sample] = []
        var s = s0
        while s <= s0 + 4 * width { ahead.append((tip.0 + dir.0 * s, tip.1 + dir.1 * s, normal.0, normal.1)); s += 1 }
        let beyond = sideProfile(f, ahead, width: width)
        let continuation = shaft.level > 0 && beyond.level.isFinite ? beyond.level / shaft.level : 1
        let span = max(8, 4 * width)
        let fwhm = crossWidth(f, behind, span: span) ?? 2 * span
        // How far the shaft runs: walk back along the curve while its level holds.
        let long = walk(pts, from: pts.count - 1, step: -1, start: start, end: start + 40 * max(1, width / 3))
        var run = 0.0
        let floor = shaft.level / 3
        var misses = 0
        for smp in long {
            let here = attenuation(f, smp.u, smp.v) - 0.5 * (attenuation(f, smp.u + smp.nx * width, smp.v + smp.ny * width) + attenuation(f, smp.u - smp.nx * width, smp.v - smp.ny * width))
            if here >= floor { run += 1; misses = 0 } else { misses += 1; if misses > Int(width) + 2 { break } }
        }
        // Each side's drop from the centre, one width (or half the measured width, past the
        // shaft's edge) across: the median of each over the shaft behind the tip.
        let reach = max(width, min(0.5 * fwhm + 2, 3 * width))
        var left: [Double] = [], right: [Double] = []
        left.reserveCapacity(behind.count); right.reserveCapacity(behind.count)
        for smp in behind {
            let c = attenuation(f, smp.u, smp.v)
            left.append(c - attenuation(f, smp.u + smp.nx * reach, smp.v + smp.ny * reach))
            right.append(c - attenuation(f, smp.u - smp.nx * reach, smp.v - smp.ny * reach))
        }
        left.sort(); right.sort()
        let dl = left[left.count / 2], dr = right[right.count / 2]
        let symmetry = max(dl, dr) > 0 ? clamp01(min(dl, dr) / max(dl, dr)) : 0
        return TipEvidence(shaftWidthPx: fwhm, shaftLevel: shaft.level, shaftNoise: shaft.noise, continuation: continuation, shaftRunPx: run,
                           symmetry: symmetry)
    }
}

@inline(__always) func clamp01(_ x: Double) -> Double { x.isFinite ? min(1, max(0, x)) : 0 }
