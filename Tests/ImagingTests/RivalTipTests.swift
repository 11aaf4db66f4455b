import Core
import Foundation
import Testing
@testable import Imaging

/// A contested acquisition: two free ridge ends, one fixed in the anatomy (a dense vessel stub
/// that wins the whole-frame ranking) and one that advances along its own shaft (the catheter).
/// Both move alike with the anatomy (`shift`), as breathing moves them.
struct ContestScene {
    var size = 256
    var photons = 5000.0
    /// Column of the catheter's end at frame 0, and how far it advances per frame (px).
    var catheterEnd = 90.0, advance = 3.0
    var catheterRow = 70.0, catheterDensity = 0.26
    /// The vessel stub: its row, end column, width and density (denser and longer: it ranks first).
    var stubRow = 180.0, stubEnd = 160.0, stubWidth = 5.0, stubDensity = 0.6

    func shift(_ k: Int) -> (Double, Double) { (0, 3 * sin(Double(k) * 0.7)) }
    func catheterTip(_ k: Int) -> (Double, Double) { (catheterEnd + advance * Double(k) + shift(k).0, catheterRow + shift(k).1) }
    func stubTip(_ k: Int) -> (Double, Double) { (stubEnd + shift(k).0, stubRow + shift(k).1) }

    /// A horizontal ridge from the left border to `end` (flat-ended), Gaussian across.
    static func ridge(_ u: Double, _ v: Double, row: Double, end: Double, width: Double, density: Double) -> Double {
        let s = width / 2.3548
        let along = u <= end ? 1 : exp(-0.5 * (u - end) * (u - end) / 0.25)
        return density * exp(-0.5 * (v - row) * (v - row) / (s * s)) * along
    }

    func frame(_ k: Int) -> Frame {
        let c = catheterTip(k), s = stubTip(k)
        var f = exposed(size: size, photons: photons, seed: UInt64(200 + k)) { u, v in
            Self.ridge(u, v, row: c.1, end: c.0, width: 4, density: catheterDensity) + Self.ridge(u, v, row: s.1, end: s.0, width: stubWidth, density: stubDensity)
        }
        f.acquiredAt = Nanoseconds(k) * 66_666_667
        return f
    }
}

@Suite struct RivalTipTests {
    /// Rivals are off by default (in the live runtime they kept the navigation's fixes below the
    /// confidence it needs); these tests turn them on.
    static var withRivals: TrackerSettings {
        var s = TrackerSettings()
        s.maximumRivals = 2
        return s
    }

    func run(_ settings: TrackerSettings, frames: Int = 12, scene: ContestScene = ContestScene())
        throws -> [(track: TipTrack, onCatheter: Bool, onStub: Bool, contested: Bool)] {
        let tracker = try TipTracker(settings: settings)
        var out: [(TipTrack, Bool, Bool, Bool)] = []
        for k in 0..<frames {
            let t = try tracker.track(scene.frame(k))
            let c = scene.catheterTip(k), s = scene.stubTip(k)
            let tracked = t.status == .tracked
            out.append((t, tracked && hypot(t.u - c.0, t.v - c.1) < 4, tracked && hypot(t.u - s.0, t.v - s.1) < 4, !tracker.rivals.isEmpty))
        }
        return out
    }

    @Test func theSceneIsContested() throws {
        // The stub must win the whole-frame ranking, with the catheter's end as a runner-up:
        // otherwise the tests below test nothing.
        let detector = try CatheterDetector()
        let scene = ContestScene()
        let d = try #require(try detector.detect(scene.frame(0)))
        let s = scene.stubTip(0), c = scene.catheterTip(0)
        #expect(hypot(d.u - s.0, d.v - s.1) < 4, "acquired (\(d.u), \(d.v)), stub \(s)")
        let runnerUp = detector.lastCandidates.first { hypot($0.u - c.0, $0.v - c.1) < 4 }
        let share = (runnerUp?.score ?? 0) / max(1e-9, d.score)
        #expect(share >= TrackerSettings().rivalShare, "catheter end's score share \(share)")
    }

    @Test func theEndThatAdvancesWithItsShaftWinsAndThePointFixedInTheAnatomyIsNeverConfident() throws {
        var settings = Self.withRivals
        settings.rivalMayWin = true
        let results = try run(settings)
        let first = results[0]
        #expect(first.onStub, "the acquisition takes the higher-ranked stub")
        #expect(first.track.confidence <= TrackerSettings().contestedConfidence, "a contested acquisition is not confident: \(first.track.confidence)")
        let confidentOnStub = results.filter { $0.onStub && $0.track.confidence > 0.5 }.count
        #expect(confidentOnStub == 0, "fixes on the stub rated above 0.5")
        // Within a few frames time tells them apart, and the track follows the catheter.
        let switched = results.firstIndex { $0.onCatheter }
        #expect(switched != nil && switched! <= 6, "first frame on the catheter: \(String(describing: switched))")
        let tail = results.suffix(4)
        #expect(tail.allSatisfy { $0.onCatheter }, "the track stays on the catheter")
        // Uncontested again: the confidence is the model's own (this faint catheter's is near 0.5), no longer capped.
        #expect(tail.allSatisfy { !$0.contested }, "the stub, having stood still, is no rival any more")
        #expect(tail.contains { $0.track.confidence > TrackerSettings().contestedConfidence }, "\(tail.map(\.track.confidence))")
    }

    @Test func byDefaultARivalThatAdvancesKeepsTheTrackContestedNeverConfident() throws {
        let results = try run(Self.withRivals)
        let confidentOnStub = results.filter { $0.onStub && $0.track.confidence > 0.5 }.count
        #expect(confidentOnStub == 0, "fixes on the stub rated above 0.5")
        #expect(results.allSatisfy { $0.onStub }, "the track is not moved")
        #expect(results.suffix(4).allSatisfy { $0.contested }, "the rival is kept")
    }

    @Test func withoutRivalsTheFixedPointIsHeldConfidently() throws {
        // The failure the rivals exist for: the same scene, no rivals.
        var settings = Self.withRivals
        settings.rivalShare = 0
        let results = try run(settings)
        let confidentOnStub = results.filter { $0.onStub && $0.track.confidence > 0.5 }.count
        #expect(confidentOnStub >= 8, "the stub held confidently in \(confidentOnStub) of \(results.count) frames")
    }

    @Test func twoEndsThatStandStillStayContestedNeverConfident() throws {
        // Nothing moves relative to the anatomy: time cannot tell them apart, so no fix is trusted.
        var scene = ContestScene()
        scene.advance = 0
        let results = try run(Self.withRivals, scene: scene)
        let confident = results.filter { $0.track.status == .tracked && $0.track.confidence > 0.5 }.count
        #expect(confident == 0, "\(confident) fixes rated above 0.5 while two ends stand still")
        #expect(results.allSatisfy { $0.track.status == .tracked }, "contested fixes are still reported, with low confidence")
    }

    @Test func rivalsAreRunnersUpApartFromTheWinnerAndStrongEnough() {
        func candidate(_ u: Double, _ v: Double, score: Double) -> CatheterDetection {
            var d = CatheterDetection(u: u, v: v, confidence: 0.8, centerline: [(u - 20, v), (u, v)], widthPx: 3, ridgeSNR: 10, endSNR: 10)
            d.score = score
            return d
        }
        let winner = candidate(100, 100, score: 10)
        let list = [winner, candidate(105, 100, score: 9), candidate(200, 50, score: 2), candidate(150, 150, score: 5),
                    candidate(50, 200, score: 4), candidate(155, 150, score: 4.5)]
        let rivals = TipTracker.rivals(of: winner, among: list, settings: Self.withRivals)
        // Too close to the winner (105, 100), too weak (score share 0.2), too close to a taken rival (155, 150).
        #expect(rivals.map(\.u) == [150, 50], "\(rivals.map { ($0.u, $0.v) })")
        var off = TrackerSettings()
        off.rivalShare = 0
        #expect(TipTracker.rivals(of: winner, among: list, settings: off).isEmpty)
        var one = Self.withRivals
        one.maximumRivals = 1
        #expect(TipTracker.rivals(of: winner, among: list, settings: one).count == 1)
    }

    @Test func badRivalSettingsAreTypedErrors() {
        var cases: [TrackerSettings] = []
        var s = TrackerSettings(); s.rivalShare = .nan; cases.append(s)
        s = TrackerSettings(); s.rivalShare = 1.5; cases.append(s)
        s = TrackerSettings(); s.maximumRivals = -1; cases.append(s)
        s = TrackerSettings(); s.contestedConfidence = -0.1; cases.append(s)
        s = TrackerSettings(); s.advanceToWinPx = 0; cases.append(s)
        s = TrackerSettings(); s.advanceToWinPx = .infinity; cases.append(s)
        s = TrackerSettings(); s.rivalMissesToDrop = 0; cases.append(s)
        for c in cases {
            #expect(throws: TrackingError.self) { _ = try TipTracker(settings: c) }
        }
    }
}
