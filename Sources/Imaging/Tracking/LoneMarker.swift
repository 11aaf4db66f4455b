import Foundation

extension CatheterDetector {
    /// A tip read from a dense compact spot that no traced curve reaches: a marker band whose
    /// shaft the ridge filter cannot follow. That happens where the catheter runs along the
    /// beam (its shaft foreshortened to a smear) and over a contrast-filled vessel seen end on,
    /// where the few photons left leave the shaft's ridge in the noise while the band, several
    /// times denser, still stands out.
    ///
    /// The band is the part of the spot above half its height over the surrounding background;
    /// it must be compact (inside a window of four spot scales) and stand well out of the
    /// noise. The tip is its centroid: nil when the spot is no band.
    func loneMarker(_ f: Frame, _ b: RidgeBlob) -> CatheterDetection? {
        let r = max(5.0, 4 * b.sigma)
        let cx = Int(b.u.rounded()), cy = Int(b.v.rounded())
        let ri = Int(r.rounded(.up))
        guard cx - ri - 3 >= 0, cy - ri - 3 >= 0, cx + ri + 3 < f.width, cy + ri + 3 < f.height else { return nil }
        // Background and pixel noise from a ring just outside the window.
        var ring: [Double] = [], steps: [Double] = []
        let n = max(32, Int(2 * Double.pi * (r + 2)))
        for k in 0..<n {
            let a = 2 * Double.pi * Double(k) / Double(n)
            let u = b.u + (r + 2) * cos(a), v = b.v + (r + 2) * sin(a)
            let here = pixelAttenuation(f, Int(u.rounded()), Int(v.rounded()))
            ring.append(here)
            steps.append(abs(pixelAttenuation(f, Int(u.rounded()) + 1, Int(v.rounded())) - here))
        }
        ring.sort(); steps.sort()
        let background = ring[ring.count / 2]
        let pixelNoise = max(1e-4, steps[steps.count / 2] * 1.4826 / 2.0.squareRoot())
        // The spot's height: the 3 × 3 mean at its strongest near the centre.
        var peak = -Double.infinity
        for y in (cy - 2)...(cy + 2) { for x in (cx - 2)...(cx + 2) { peak = max(peak, boxAttenuation(f, x, y) - background) } }
        // Against the noise of a 3 × 3 mean: a marker band stands tens of σ out, a noise spot a few.
        let peakSNR = peak / (pixelNoise / 3)
        guard peak > 0, peakSNR >= 5 else { return nil }
        // The half-height region inside the window: its moments.
        var count = 0.0, su = 0.0, sv = 0.0, suu = 0.0, suv = 0.0, svv = 0.0, rim = 0
        for y in (cy - ri)...(cy + ri) {
            for x in (cx - ri)...(cx + ri) {
                let du = Double(x) - b.u, dv = Double(y) - b.v
                let d2 = du * du + dv * dv
                if d2 > r * r { continue }
                guard boxAttenuation(f, x, y) - background >= 0.5 * peak else { continue }
                if d2 > 0.81 * r * r { rim += 1 }
                count += 1; su += du; sv += dv; suu += du * du; suv += du * dv; svv += dv * dv
            }
        }
        // Compact: a handful of px, and not running out of the window (a vessel, a bone edge).
        guard count >= 4, Double(rim) <= 0.1 * count else { return nil }
        let mu = su / count, mv = sv / count
        let cuu = suu / count - mu * mu, cuv = suv / count - mu * mv, cvv = svv / count - mv * mv
        let tr = cuu + cvv, det = cuu * cvv - cuv * cuv
        let disc = max(0, tr * tr / 4 - det).squareRoot()
        let minor = max(1e-6, tr / 2 - disc)
        let centre = (u: b.u + mu, v: b.v + mv)
        // The band's width: across its shorter extent (a uniform band of length L has a variance of L²/12).
        let width = max(2.5, 2 * (3 * minor).squareRoot())
        let spotConfidence = clamp01((b.strength - ridges.settings.highK) / (2 * ridges.settings.highK)) * clamp01((peakSNR - 5) / 10)
        // Which end is distal cannot be read here: a band is about as long as the catheter is
        // wide, so its shape does not tell, and the shaft that would (faint, foreshortened) runs
        // among vessel edges that outweigh it. (Scanning the directions around the band for the
        // shaft's level picked the wrong side about as often as the right one over a contrast-
        // filled arch seen end on.) The tip is taken at the band's centroid, at most half a band
        // from the truth, and the confidence says so.
        let confidence = 0.5 * spotConfidence
        guard confidence > 0 else { return nil }
        return CatheterDetection(u: centre.u, v: centre.v, confidence: confidence,
                                 centerline: [(centre.u - 0.5 * width, centre.v), (centre.u, centre.v)], widthPx: width, ridgeSNR: 0, endSNR: peakSNR)
    }

    /// −log of one pixel's grey value (clamped to the frame).
    @inline(__always) func pixelAttenuation(_ f: Frame, _ x: Int, _ y: Int) -> Double {
        let xx = min(max(x, 0), f.width - 1), yy = min(max(y, 0), f.height - 1)
        return -log(Double(f.pixels[yy * f.width + xx]) + 1)
    }

    /// The mean attenuation of the 3 × 3 pixels around (x, y): a marker is several px across,
    /// single pixels at a few photons are not.
    @inline(__always) func boxAttenuation(_ f: Frame, _ x: Int, _ y: Int) -> Double {
        var s = 0.0
        for dy in -1...1 { for dx in -1...1 { s += pixelAttenuation(f, x + dx, y + dy) } }
        return s / 9
    }
}
