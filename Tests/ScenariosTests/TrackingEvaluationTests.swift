import Core
import Imaging
import Scenarios
import Sim
import Testing

@Suite struct TrackingEvaluationTests {
    @Test func aShortSequenceIsTrackedAndScoredAgainstTheRenderersTruth() throws {
        let straight = try #require(TrackingEvaluation.fixedConditions.first { $0.name == "straight-ap" })
        let (report, rows) = try TrackingEvaluation.run([straight], frames: 4, size: 512, seed: 0, split: nil, figure: "unused.png")
        #expect(report.conditions.count == 1 && report.frames_per_sequence == 4)
        let c = report.conditions[0]
        #expect(c.frames == 4 && c.err_px_per_frame.count == 4)
        #expect(c.tracked_pct == 100 && c.err_px_median < 3, "\(c.err_px_per_frame)")
        #expect(rows.count == 4 && rows.allSatisfy { $0.hasPrefix("straight-ap,") })
        #expect(rows[0].split(separator: ",", omittingEmptySubsequences: false).count == TrackingEvaluation.csvHeader.split(separator: ",").count)
    }

    @Test func anotherNoiseSeedRendersOtherNoiseOnTheSameSequence() throws {
        let c = try #require(TrackingEvaluation.fixedConditions.first { $0.name == "arch-ap" })
        let a = try TrackingEvaluation.evaluate(c, frames: 3, size: 256, pitch: 1.2, seed: 0)
        let b = try TrackingEvaluation.evaluate(c, frames: 3, size: 256, pitch: 1.2, seed: 7)
        let again = try TrackingEvaluation.evaluate(c, frames: 3, size: 256, pitch: 1.2, seed: 0)
        #expect(a.errors == again.errors, "the same seed gives the same sequence")
        #expect(a.errors != b.errors, "another seed gives other noise")
    }

    @Test func anUnknownPhantomIsATypedError() {
        let c = TrackingCondition(name: "x", phantom: "no-such-phantom", primaryDeg: 0, secondaryDeg: 0)
        #expect {
            try TrackingEvaluation.evaluate(c, frames: 2, size: 256, pitch: 1.2, seed: 0)
        } throws: { e in
            guard case .unknownPhantom("no-such-phantom") = e as? TrackingEvaluationError else { return false }
            return true
        }
    }

    @Test func splitsDrawTheSameSequencesForTheSameCount() {
        let a = TrackingEvaluation.drawn(.heldout, count: 3).map(\.name), b = TrackingEvaluation.drawn(.heldout, count: 3).map(\.name)
        #expect(a == b && Set(a).count == 3)
        #expect(Set(a).isDisjoint(with: TrackingEvaluation.drawn(.tuning, count: 3).map(\.name)))
    }
}
