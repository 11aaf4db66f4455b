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

    @Test func aSymmetryThatIsNotANumberIsNoEvidenceOfACatheter() {
        var d = detection(endSNR: 200, run: 120)
        d.evidence?.symmetry = .nan
        let p = ConfidenceModel.fitted.probability(d, innovation: 1, radius: 24)
        #expect(p <= ConfidenceModel.fitted.stepCap, "\(p)")
    }

    @Test func aModelWithTheWrongShapeIsATypedError() {
        var s = TrackerSettings()
        s.confidenceModel = ConfidenceModel(weights: [1, 2], bias: 0)
        #expect(throws: TrackingError.self) { try TipTracker(settings: s) }
        s.confidenceModel = ConfidenceModel(weights: [Double](repeating: .nan, count: ConfidenceModel.featureNames.count), bias: 0)
        #expect(throws: TrackingError.self) { try TipTracker(settings: s) }
        for (symmetry, cap) in [(Double.nan, 0.45), (0.1, 1.5), (-0.1, 0.45), (0.1, .nan)] {
            var m = ConfidenceModel.fitted
            m.stepSymmetry = symmetry; m.stepCap = cap
            s.confidenceModel = m
            #expect(throws: TrackingError.self, "step symmetry \(symmetry), cap \(cap)") { try TipTracker(settings: s) }
        }
    }
}
