import Foundation
import Testing
@testable import Imaging

/// The tracker's calibrated confidence.
@Suite struct ConfidenceModelTests {
    func detection(endSNR: Double, run: Double, continuation: Double = 0) -> CatheterDetection {
        var d = CatheterDetection(u: 50, v: 50, confidence: 1, centerline: [(40, 50), (50, 50)], widthPx: 3, ridgeSNR: 10, endSNR: endSNR)
        d.evidence = TipEvidence(shaftWidthPx: 3, shaftLevel: 0.1, shaftNoise: 0.01, continuation: continuation, shaftRunPx: run)
        return d
    }

    @Test func aSharperEndAndALongerShaftAreMoreLikelyRight() {
        let m = ConfidenceModel.fitted
        let weak = m.probability(detection(endSNR: 10, run: 20), innovation: 1, radius: 24)
        let sharp = m.probability(detection(endSNR: 200, run: 20), innovation: 1, radius: 24)
        let long = m.probability(detection(endSNR: 200, run: 120), innovation: 1, radius: 24)
        #expect(weak < sharp && sharp < long, "\(weak) < \(sharp) < \(long)")
        #expect(weak < 0.5, "a faint end with a short shaft is not a confident fix: \(weak)")
    }

    @Test func featuresThatAreNotNumbersGiveAProbabilityNotACrash() {
        var d = detection(endSNR: .nan, run: .infinity, continuation: .nan)
        d.confidence = .nan
        let p = ConfidenceModel.fitted.probability(d, innovation: .nan, radius: 0)
        #expect(p.isFinite && (0...1).contains(p))
    }

    /// A bone's border ends where a rib crosses it and stands out as sharply as a catheter's
    /// end; only its one-sidedness tells. Measured on rendered frames, not set by hand.
    @Test(arguments: [UInt64(1), 2, 3])
    func aStepsEndIsNeverAConfidentFixWhereACathetersIs(seed: UInt64) throws {
        let evidence = CandidateEvidenceTests()
        let shaft = try #require(try evidence.measure(exposed(size: 256, photons: 5000, seed: seed, attenuation: { evidence.catheter($0, $1) })))
        let border = try #require(try evidence.measure(exposed(size: 256, photons: 5000, seed: seed, attenuation: evidence.bone)))
        var d = detection(endSNR: 200, run: 120)
        d.evidence = shaft
        let catheter = ConfidenceModel.fitted.probability(d, innovation: 1, radius: 24)
        d.evidence = border
        let step = ConfidenceModel.fitted.probability(d, innovation: 1, radius: 24)
        #expect(catheter > 0.5, "a sharp catheter end on a long shaft: \(catheter) (\(shaft))")
        #expect(step < 0.5, "a bone's border: \(step) (\(border))")
    }

    /// Beyond the end of two vessels' overlap the two part, and the gap between them is lighter
    /// than its sides; beyond a catheter's end there is nothing, or the vessel it lies in.
    @Test func anEndWhereTwoStructuresPartIsNeverAConfidentFix() {
        let m = ConfidenceModel.fitted
        let fork = m.probability(detection(endSNR: 200, run: 120, continuation: -1.5), innovation: 1, radius: 24)
        let end = m.probability(detection(endSNR: 200, run: 120, continuation: -0.3), innovation: 1, radius: 24)
        let inVessel = m.probability(detection(endSNR: 200, run: 120, continuation: 0.4), innovation: 1, radius: 24)
        #expect(fork <= m.doubtCap, "a fork: \(fork)")
        #expect(end > 0.5 && inVessel > 0.5, "a catheter's end: \(end), in a vessel: \(inVessel)")
    }

    @Test func aSymmetryThatIsNotANumberIsNoEvidenceOfACatheter() {
        var d = detection(endSNR: 200, run: 120)
        d.evidence?.symmetry = .nan
        let p = ConfidenceModel.fitted.probability(d, innovation: 1, radius: 24)
        #expect(p <= ConfidenceModel.fitted.doubtCap, "\(p)")
    }

    @Test func aModelWithTheWrongShapeIsATypedError() {
        var s = TrackerSettings()
        s.confidenceModel = ConfidenceModel(weights: [1, 2], bias: 0)
        #expect(throws: TrackingError.self) { try TipTracker(settings: s) }
        s.confidenceModel = ConfidenceModel(weights: [Double](repeating: .nan, count: ConfidenceModel.featureNames.count), bias: 0)
        #expect(throws: TrackingError.self) { try TipTracker(settings: s) }
        for (symmetry, fork, cap) in [(Double.nan, -1.0, 0.45), (0.1, -1, 1.5), (-0.1, -1, 0.45), (0.1, -1, .nan), (0.1, 0.5, 0.45), (0.1, .nan, 0.45)] {
            var m = ConfidenceModel.fitted
            m.stepSymmetry = symmetry; m.forkContinuation = fork; m.doubtCap = cap
            s.confidenceModel = m
            #expect(throws: TrackingError.self, "step symmetry \(symmetry), fork \(fork), cap \(cap)") { try TipTracker(settings: s) }
        }
    }
}
