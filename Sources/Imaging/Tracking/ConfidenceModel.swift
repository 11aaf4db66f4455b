import Foundation

/// A logistic model of the probability that a fix is right (within 3 px of the tip), from what
/// the detector measured and how the fix sits with the track. Its output is the confidence a
/// `tracked` answer reports. Fitted on the tuning split of `lumen eval tracking --split tuning`
/// (frames.csv), never on the held-out split.
public struct ConfidenceModel: Sendable, Equatable {
    /// Weights of the `features`, in their order.
    public var weights: [Double]
    public var bias: Double
    /// Two shapes of a tip candidate that the logistic weights cannot tell from a catheter's end,
    /// because its other features (the end's SNR, the shaft's run) are those of a good fix. A fix
    /// of either shape is rated at most `doubtCap`, under the 0.5 above which a fix counts as
    /// confident:
    /// - a step: the shaft's drop to one side is under `stepSymmetry` of its drop to the other
    ///   (`TipEvidence.symmetry`), the border of a rib, the spine or a contrast-filled vessel
    ///   where a wire or a rib crosses it. On the tuning split (32 sequences) 21 of the 54
    ///   confident fixes more than 10 px off were steps, and 11 of 356 right ones;
    /// - a fork: what lies straight beyond the tip is lighter than its sides by more than
    ///   `-forkContinuation` times the shaft's own level (`TipEvidence.continuation`), two dark
    ///   structures parting there: the end of two vessels' overlap. Of the 33 confident fixes
    ///   more than 10 px off left on the tuning split after the step rule, 7 were forks, and
    ///   1 of 345 right ones.
    public var stepSymmetry = 0.1
    public var forkContinuation = -1.0
    public var doubtCap = 0.45
    public init(weights: [Double], bias: Double) { self.weights = weights; self.bias = bias }

    /// The features: detector confidence, ln end SNR, ln ridge SNR, continuation beyond the tip
    /// (clamped to −1…2; 1 when unmeasured), ln shaft run (px), innovation / search radius
    /// (0 at an acquisition), acquisition (1 or 0), the shaft's symmetry across (0…1; 0 when
    /// unmeasured), ln of the shaft's level over its noise (0 when unmeasured), and ln of the
    /// shaft's measured width over the detector's (clamped to ±2; 0 when unmeasured).
    public static let featureNames = ["detector_confidence", "ln_end_snr", "ln_ridge_snr", "continuation", "ln_shaft_run_px",
                                      "innovation_over_radius", "acquisition", "symmetry", "ln_shaft_snr", "ln_width_ratio"]

    func validate() throws(TrackingError) {
        guard weights.count == Self.featureNames.count else {
            throw .badSetting(field: "confidence_model.weights", reason: "needs \(Self.featureNames.count) weights (\(Self.featureNames.joined(separator: ", "))), got \(weights.count)")
        }
        guard bias.isFinite, weights.allSatisfy(\.isFinite) else {
            throw .badSetting(field: "confidence_model", reason: "weights and bias must be finite numbers")
        }
        guard (0...1).contains(stepSymmetry) else {
            throw .badSetting(field: "confidence_model.step_symmetry", reason: "must be within 0…1, got \(stepSymmetry)")
        }
        guard forkContinuation.isFinite, forkContinuation < 0 else {
            throw .badSetting(field: "confidence_model.fork_continuation", reason: "must be a negative number, got \(forkContinuation)")
        }
        guard (0...1).contains(doubtCap) else {
            throw .badSetting(field: "confidence_model.doubt_cap", reason: "must be within 0…1, got \(doubtCap)")
        }
    }

    /// The features of a fix, in the order of `weights`.
    public static func features(_ d: CatheterDetection, innovation: Double?, radius: Double?) -> [Double] {
        let e = d.evidence
        var rel = 0.0
        if let i = innovation, let r = radius { rel = i / max(1, r) }
        let continuation = e.map { $0.continuation.isFinite ? min(2, max(-1, $0.continuation)) : 1 } ?? 1
        let symmetry = e.map { clamp01($0.symmetry) } ?? 0
        let snr = e.map { $0.shaftNoise > 0 ? log(max(1, finiteOr($0.shaftLevel / $0.shaftNoise, 1))) : 0 } ?? 0
        let ratio = e.map { $0.shaftWidthPx > 0 && d.widthPx > 0 ? min(2, max(-2, finiteOr(log($0.shaftWidthPx / d.widthPx), 0))) : 0 } ?? 0
        return [clamp01(d.confidence), log(max(1, finiteOr(d.endSNR, 1))), log(max(1, finiteOr(d.ridgeSNR, 1))), continuation,
                log(max(1, finiteOr(e?.shaftRunPx ?? 1, 1))), finiteOr(rel, 0), innovation == nil ? 1 : 0, symmetry, snr, ratio]
    }

    /// The probability (0…1) that the fix is right; 0 where the features are not numbers, at
    /// most `doubtCap` where the tip is a step's or a fork's (or the shaft's symmetry is not a number).
    public func probability(_ d: CatheterDetection, innovation: Double?, radius: Double?) -> Double {
        var z = bias
        for (w, x) in zip(weights, Self.features(d, innovation: innovation, radius: radius)) { z += w * x }
        let p = z.isFinite ? 1 / (1 + exp(-z)) : 0
        if let e = d.evidence, !(e.symmetry >= stepSymmetry) || e.continuation < forkContinuation { return min(p, doubtCap) }
        return p
    }

    /// Fitted on `lumen eval tracking --split tuning --sequences 24` (615 tracked frames).
    /// Reliability there: fixes it rates 0.5–0.75 were right 67 % of the time, 0.75–1 88 %.
    /// The shaft's symmetry, SNR and width ratio carry no weight: a refit with them (16 tuning
    /// sequences, bias lowered until fixes above 0.5 were right in ≥ 99 % there: 29 of 30) rated
    /// only 36 of the 660 fixed-condition fixes above 0.5 (this model: 555, 98 % right) and on the
    /// held-out split 82, 53 right (this model: 249, 176 right): it did not carry over, and it
    /// called nearly every right fix unsure. Refit from frames.csv's `f_` columns.
    public static let fitted = ConfidenceModel(weights: [0.7929, 1.3765, -0.1302, 0.8811, 0.8772, 0.0116, -0.3436, 0, 0, 0], bias: -10.0054)
}

@inline(__always) func finiteOr(_ x: Double, _ fallback: Double) -> Double { x.isFinite ? x : fallback }
