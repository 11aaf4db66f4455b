import Imaging
import Testing

/// The figures of a tracking evaluation: what counts as tracked, wrong and confidently wrong.
@Suite struct TrackingScoreTests {
    @Test func aConfidentFixFarFromTheTruthIsConfidentlyWrongAndRunsAreCounted() {
        let o: [TrackOutcome] = [
            .init(error: 0.5, confidence: 0.9, visible: true),
            .init(error: 20, confidence: 0.9, visible: true),
            .init(error: 30, confidence: 0.8, visible: true),
            .init(error: 25, confidence: 0.4, visible: true),  // wrong, but not confident
            .init(error: 40, confidence: 0.9, visible: true),
            .init(error: nil, confidence: 0, visible: true),
        ]
        let s = TrackingScore(o)
        #expect(s.frames == 6)
        #expect(s.confident_wrong_pct == 50)
        #expect(s.confident_wrong_longest_run == 2)
        #expect(abs(s.tracked_pct - 83.333) < 0.01)
        #expect(s.confident_right_pct == 25)
    }

    @Test func aConfidentFixWhileTheTipIsOutOfSightIsWrongAndALostOneIsNot() {
        let s = TrackingScore([.init(error: 1, confidence: 0.9, visible: false), .init(error: nil, confidence: 0, visible: false),
                               .init(error: 1, confidence: 0.9, visible: true)])
        #expect(s.visible_frames == 1)
        #expect(s.tracked_pct == 100)
        #expect(s.confident_wrong_longest_run == 1)
        #expect(abs(s.confident_wrong_pct - 33.333) < 0.01)
    }

    @Test func reliabilityBinsTheFixesByConfidenceWithTheShareRight() {
        let s = TrackingScore([.init(error: 1, confidence: 0.95, visible: true), .init(error: 20, confidence: 0.92, visible: true),
                               .init(error: 2, confidence: 0.6, visible: true), .init(error: 2, confidence: 1, visible: false),
                               .init(error: nil, confidence: 0, visible: true), .init(error: 5, confidence: 0.1, visible: true)])
        let bins = s.reliability
        #expect(bins.map(\.fixes) == [1, 0, 1, 0, 3])
        #expect(bins.map(\.right_pct) == [0, 0, 100, 0, 33.333])
        #expect(bins[4].mean_confidence == 0.957)
        #expect(bins.first?.from == 0 && bins.last?.to == 1)
    }

    @Test func runsDoNotContinueAcrossSequences() {
        let bad = TrackOutcome(error: 50, confidence: 0.9, visible: true)
        let s = TrackingScore(sequences: [[bad, bad], [bad, bad, bad]])
        #expect(s.confident_wrong_longest_run == 3)
        #expect(TrackingScore([]).frames == 0)
    }
}
