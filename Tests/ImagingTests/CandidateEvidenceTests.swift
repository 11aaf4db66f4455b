import Core
import Foundation
import Testing
@testable import Imaging

/// The evidence measured per tip candidate: a catheter's end against a bone's border and a
/// dense spot in the middle of a structure that runs on.
@Suite struct CandidateEvidenceTests {
    /// A horizontal centreline at row `v` from column `from` to `to` (the tip), ridge normal down.
    func line(v: Double, from: Int, to: Int) -> [RidgePoint] {
        (from...to).map { RidgePoint(u: Double($0), v: v, response: 10, sigma: 1.3, nx: 0, ny: 1) }
    }

    /// A catheter (4 px FWHM, Gaussian profile) along row 128 from the left border, ending at
    /// column 150.
    func catheter(_ u: Double, _ v: Double, density: Double = 0.4) -> Double {
        let s = 4 / 2.3548, along = u <= 150 ? 1 : exp(-0.5 * (u - 150) * (u - 150) / (s * s))
        return density * exp(-0.5 * (v - 128) * (v - 128) / (s * s)) * along
    }

    /// A bone's corner: dense below row 128 and left of column 150, its border softened by 1 px.
    func bone(_ u: Double, _ v: Double) -> Double {
        let below = 1 / (1 + exp(-(v - 128))), left = 1 / (1 + exp(u - 150))
        return 0.4 * below * left
    }

    func measure(_ f: Frame) throws -> TipEvidence? {
        let detector = try CatheterDetector()
        return detector.evidence(f, line(v: 128, from: 20, to: 150), tip: (150, 128), dir: (1, 0), width: 4, skip: nil)
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func aCatheterEndIsSymmetricAndABonesBorderIsNot(seed: UInt64) throws {
        let shaft = try #require(try measure(exposed(size: 256, photons: 5000, seed: seed, attenuation: { catheter($0, $1) })))
        let border = try #require(try measure(exposed(size: 256, photons: 5000, seed: seed, attenuation: bone)))
        #expect(shaft.symmetry > 0.7, "catheter: \(shaft)")
        #expect(border.symmetry < 0.3, "bone border: \(border)")
        #expect(shaft.continuation < 0.3, "nothing runs on past a catheter's end: \(shaft)")
        #expect(shaft.rankFactor(widthPx: 4) > 2 * border.rankFactor(widthPx: 4),
                "catheter \(shaft.rankFactor(widthPx: 4)) vs border \(border.rankFactor(widthPx: 4))")
    }

    @Test func aSpotTheStructureRunsOnPastRanksBelowAnEnd() throws {
        // The same shaft, but it runs on to the right border: column 150 is no end.
        let through = exposed(size: 256, photons: 5000, seed: 4) { _, v in
            let s = 4 / 2.3548
            return 0.4 * exp(-0.5 * (v - 128) * (v - 128) / (s * s))
        }
        let end = exposed(size: 256, photons: 5000, seed: 4, attenuation: { catheter($0, $1) })
        let a = try #require(try measure(through)), b = try #require(try measure(end))
        #expect(a.continuation > 0.7, "\(a)")
        #expect(a.rankFactor(widthPx: 4) < 0.5 * b.rankFactor(widthPx: 4), "through \(a) vs end \(b)")
    }

    @Test func evidenceThatIsNotANumberRanksLowNeverCrashes() {
        let e = TipEvidence(shaftWidthPx: .nan, shaftLevel: .nan, shaftNoise: 0, continuation: .nan, shaftRunPx: .infinity, symmetry: .nan)
        let f = e.rankFactor(widthPx: .nan)
        #expect(f.isFinite && f >= 0.1 && f <= 1, "\(f)")
    }
}

/// The evidence ranking is a setting, off by default (it took a wrong tip on the tuning split).
@Suite struct EvidenceRankingTests {
    @Test func evidenceRankingIsOffByDefaultAndACatheterIsFoundEitherWay() throws {
        #expect(!DetectorSettings().rankByEvidence)
        for rank in [false, true] {
            var s = BezierScene()
            s.seed = 41
            var settings = DetectorSettings()
            settings.rankByEvidence = rank
            let d = try #require(try CatheterDetector(settings: settings).detect(s.frame()))
            #expect(hypot(d.u - s.tip.0, d.v - s.tip.1) < 3, "rank by evidence \(rank): (\(d.u), \(d.v)) vs \(s.tip)")
            #expect(d.evidence != nil, "the winner's evidence is measured")
        }
    }
}
