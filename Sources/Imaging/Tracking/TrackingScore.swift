import Core
import Foundation

/// One frame of a tracked sequence against its ground truth.
public struct TrackOutcome: Sendable, Equatable {
    /// px from the truth when the tracker reported `tracked`; nil when it reported `lost`.
    public var error: Double?
    /// The confidence the tracker reported (0 when lost).
    public var confidence: Double
    /// Whether the tip could be seen: inside the field, away from its border.
    public var visible: Bool
    public init(error: Double?, confidence: Double, visible: Bool) {
        self.error = error; self.confidence = confidence; self.visible = visible
    }
}

/// The figures of a tracking evaluation. A fix is confidently wrong when its confidence is
/// above `confidentAbove` and it is more than `wrongBeyondPx` from the truth, or the tip
/// cannot be seen at all: the closed loop trusts such a fix, so it is the dangerous kind.
public struct TrackingScore: Sendable, Encodable, Equatable {
    public var frames: Int
    public var visible_frames: Int
    /// Of the frames where the tip is visible, the share reported `tracked`.
    public var tracked_pct: Double
    /// Error of the tracked, visible frames.
    public var err_px_median: Double
    public var err_px_p95: Double
    public var err_px_max: Double
    /// Of all frames, the share confidently wrong, and the longest run of them.
    public var confident_wrong_pct: Double
    public var confident_wrong_longest_run: Int
    /// Of the fixes with confidence above 0.5, the share within `rightWithinPx` of the truth.
    public var confident_right_pct: Double
    /// Tracked fixes more than 10 px from the truth at any confidence.
    public var wrong_pct: Double
    /// Reliability of the reported confidence: the tracked fixes binned by it (`reliabilityEdges`),
    /// each bin with its count, mean confidence and the share right (within `rightWithinPx`,
    /// tip visible). A calibrated confidence has each bin's right share near its mean confidence.
    public var reliability: [ReliabilityBin]

    /// One bin of `reliability`: fixes with confidence in `from` ..< `to` (the last bin includes 1).
    public struct ReliabilityBin: Sendable, Encodable, Equatable {
        public var from: Double
        public var to: Double
        public var fixes: Int
        public var mean_confidence: Double
        public var right_pct: Double
    }

    /// The confidence bins of `reliability`.
    public static let reliabilityEdges = [0, 0.25, 0.5, 0.75, 0.9, 1]

    public static let confidentAbove = 0.5, wrongBeyondPx = 10.0, rightWithinPx = 3.0

    public init(_ outcomes: [TrackOutcome]) {
        var errs: [Double] = []
        var visible = 0, tracked = 0, cw = 0, run = 0, longest = 0, confident = 0, confidentRight = 0, wrong = 0
        for o in outcomes {
            if o.visible { visible += 1 }
            if o.visible, let e = o.error { tracked += 1; errs.append(e) }
            if let e = o.error, e > Self.wrongBeyondPx || !o.visible { wrong += 1 }
            let isConfident = o.error != nil && o.confidence > Self.confidentAbove
            var bad = false
            if isConfident, let e = o.error {
                confident += 1
                if o.visible, e <= Self.rightWithinPx { confidentRight += 1 }
                bad = e > Self.wrongBeyondPx || !o.visible
            }
            if bad { cw += 1; run += 1; longest = max(longest, run) } else { run = 0 }
        }
        func pct(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : round3(100 * Double(a) / Double(b)) }
        frames = outcomes.count
        visible_frames = visible
        tracked_pct = pct(tracked, visible)
        err_px_median = round3(percentile(errs, 50))
        err_px_p95 = round3(percentile(errs, 95))
        err_px_max = round3(errs.max() ?? 0)
        confident_wrong_pct = pct(cw, outcomes.count)
        confident_wrong_longest_run = longest
        confident_right_pct = confident == 0 ? 100 : pct(confidentRight, confident)
        wrong_pct = pct(wrong, outcomes.count)
        reliability = Self.reliability(outcomes)
    }

    /// The tracked fixes binned by confidence (`reliabilityEdges`).
    static func reliability(_ outcomes: [TrackOutcome]) -> [ReliabilityBin] {
        let edges = reliabilityEdges
        var fixes = [Int](repeating: 0, count: edges.count - 1), right = fixes
        var sum = [Double](repeating: 0, count: edges.count - 1)
        for o in outcomes {
            guard let e = o.error, o.confidence.isFinite else { continue }
            let c = min(1, max(0, o.confidence))
            let k = min(edges.count - 2, max(0, (edges.lastIndex { $0 <= c } ?? 0)))
            fixes[k] += 1
            sum[k] += c
            if o.visible, e <= rightWithinPx { right[k] += 1 }
        }
        return (0..<(edges.count - 1)).map { k in
            ReliabilityBin(from: edges[k], to: edges[k + 1], fixes: fixes[k], mean_confidence: fixes[k] == 0 ? 0 : round3(sum[k] / Double(fixes[k])),
                           right_pct: fixes[k] == 0 ? 0 : round3(100 * Double(right[k]) / Double(fixes[k])))
        }
    }

    /// The pooled score of several sequences; runs do not continue across sequences.
    public init(sequences: [[TrackOutcome]]) {
        self.init(sequences.flatMap { $0 })
        confident_wrong_longest_run = sequences.map { Self($0).confident_wrong_longest_run }.max() ?? 0
    }
}
