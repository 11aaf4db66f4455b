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
    ///
    /// With a track's heading (`heading`, unit, in px), a band seen from the side (clearly
    /// longer than wide) along that heading gives its distal end: the tip is put there, half the
    /// band's length ahead of the centroid, instead of at the centroid.
    func loneMarker(_ f: Frame, _ b: RidgeBlob, heading: (u: Double, v: Double)? = nil) -> CatheterDetection? {
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
        let major = tr / 2 + disc
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
        if let h = heading, let end = Self.distalEnd(centre: centre, major: major, minor: minor, cuu: cuu, cuv: cuv, cvv: cvv, heading: h) {
            return CatheterDetection(u: end.tip.u, v: end.tip.v, confidence: confidence,
                                     centerline: [end.proximal, end.tip], widthPx: width, ridgeSNR: 0, endSNR: peakSNR)
        }
        return CatheterDetection(u: centre.u, v: centre.v, confidence: confidence,
                                 centerline: [(centre.u - 0.5 * width, centre.v), (centre.u, centre.v)], widthPx: width, ridgeSNR: 0, endSNR: peakSNR)
    }

    /// The distal end of a band from its half-height region's centroid and second moments,
    /// given the track's heading: nil unless the band is clearly longer than wide (a band about
    /// as long as wide, or seen end on, has no axis to read) and its long axis lies within 40°
    /// of the heading (a band across the heading is no band the track knows). A uniform band of
    /// length L has a variance of L²/12 along it: its ends lie √(3·major) from the centroid.
    static func distalEnd(centre: (u: Double, v: Double), major: Double, minor: Double, cuu: Double, cuv: Double, cvv: Double,
                          heading h: (u: Double, v: Double)) -> (tip: (u: Double, v: Double), proximal: (u: Double, v: Double))? {
        let hl = hypot(h.u, h.v)
        guard hl > 1e-9, major.isFinite, minor > 0, major >= 2.25 * minor else { return nil }
        // The long axis: the eigenvector of the covariance for `major`.
        var a = abs(cuv) > 1e-12 ? (u: major - cvv, v: cuv) : (cuu >= cvv ? (u: 1.0, v: 0.0) : (u: 0.0, v: 1.0))
        let al = hypot(a.u, a.v)
        guard al > 1e-12 else { return nil }
        a = (a.u / al, a.v / al)
        let along = (a.u * h.u + a.v * h.v) / hl
        guard abs(along) >= cos(40 * .pi / 180) else { return nil }
        if along < 0 { a = (-a.u, -a.v) }
        let half = (3 * major).squareRoot()
        return ((centre.u + half * a.u, centre.v + half * a.v), (centre.u - half * a.u, centre.v - half * a.v))
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
