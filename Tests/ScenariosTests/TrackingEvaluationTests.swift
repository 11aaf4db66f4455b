import Core
import Imaging
import Scenarios
import Sim
import Testing

@Suite struct TrackingEvaluationTests {
    @Test func aShortSequenceIsTrackedAndScoredAgainstTheRenderersTruth() throws {
        let straight = try #require(TrackingEvaluation.fixedConditions.first { $0.name == "straight-ap" })
        let (report, rows, _) = try TrackingEvaluation.run([straight], frames: 4, size: 512, seed: 0, split: nil, figure: "unused.png")
        #expect(report.conditions.count == 1 && report.frames_per_sequence == 4)
        let c = report.conditions[0]
        #expect(c.frames == 4 && c.err_px_per_frame.count == 4)
        #expect(c.tracked_pct == 100 && c.err_px_median < 3, "\(c.err_px_per_frame)")
        #expect(rows.count == 4 && rows.allSatisfy { $0.hasPrefix("straight-ap,") })
        #expect(rows[0].split(separator: ",", omittingEmptySubsequences: false).count == TrackingEvaluation.csvHeader.split(separator: ",").count)
    }

    @Test func theCandidateDumpHasEveryAcquisitionCandidateWithItsDistanceToTheTruth() throws {
        let straight = try #require(TrackingEvaluation.fixedConditions.first { $0.name == "straight-ap" })
        let (_, _, none) = try TrackingEvaluation.run([straight], frames: 2, size: 256, seed: 0, split: nil, figure: "unused.png")
        #expect(none.isEmpty, "no dump unless asked for")
        let (_, _, rows) = try TrackingEvaluation.run([straight], frames: 2, size: 256, seed: 0, split: nil, figure: "unused.png", candidates: true)
        let columns = TrackingEvaluation.candidateHeader.split(separator: ",").map(String.init)
        let table = rows.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(!table.isEmpty && table.allSatisfy { $0.count == columns.count })
        // Frame 0 is an acquisition: its candidates, ranked, one of them the reported tip.
        let acquisition = table.filter { $0[1] == "0" }
        #expect(acquisition.count >= 1)
        #expect(acquisition.map { Int($0[3]) } == acquisition.indices.map { Int?($0) }, "ranked in order")
        #expect(acquisition.filter { $0[4] == "1" }.count == 1, "exactly one candidate was reported")
        let dist = try #require(columns.firstIndex(of: "dist_px"))
        #expect(acquisition.allSatisfy { Double($0[dist]).map { $0 >= 0 } ?? false })
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
