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

    @Test func aModelWithTheWrongShapeIsATypedError() {
        var s = TrackerSettings()
        s.confidenceModel = ConfidenceModel(weights: [1, 2], bias: 0)
        #expect(throws: TrackingError.self) { try TipTracker(settings: s) }
        s.confidenceModel = ConfidenceModel(weights: [Double](repeating: .nan, count: ConfidenceModel.featureNames.count), bias: 0)
        #expect(throws: TrackingError.self) { try TipTracker(settings: s) }
    }
}
