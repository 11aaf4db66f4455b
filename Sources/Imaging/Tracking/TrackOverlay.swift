import COpenCV
import Core
import Foundation

/// Why an overlay could not be drawn or written.
public enum TrackOverlayError: Error, CustomStringConvertible {
    case response(TrackingError)
    case write(path: String, reason: String)

    public var description: String {
        switch self {
        case .response(let e): "cannot compute the ridge response: \(e.description)"
        case .write(let p, let r): "cannot write \(p): \(r.isEmpty ? "check the folder is writable" : r)"
        }
    }
}

/// Frames with the tracker's answer drawn on them, for a person to check by eye.
public enum TrackOverlay {
    public static func grey(_ frame: Frame) -> [UInt8] {
        // Stretch between the 0.5th and 99.5th percentiles of a sample.
        var sample: [UInt16] = []
        sample.reserveCapacity(frame.pixels.count / 16 + 1)
        var i = 0
        while i < frame.pixels.count { sample.append(frame.pixels[i]); i += 16 }
        sample.sort()
        let lo = Double(sample[sample.count / 200]), hi = max(Double(sample[sample.count - 1 - sample.count / 200]), lo + 1)
        var rgb = [UInt8](repeating: 0, count: frame.width * frame.height * 3)
        for (k, p) in frame.pixels.enumerated() {
            let g = UInt8(min(255, max(0, (Double(p) - lo) / (hi - lo) * 255)))
            rgb[3 * k] = g; rgb[3 * k + 1] = g; rgb[3 * k + 2] = g
        }
        return rgb
    }

    /// The ridge response of the whole frame (noise units, 0…30 mapped to black…white).
    public static func writeResponse(_ frame: Frame, detector: CatheterDetector, to path: String) throws(TrackOverlayError) {
        let map: [Float]
        do { map = try detector.ridges.responseMap(of: frame) } catch { throw .response(error) }
        var rgb = [UInt8](repeating: 0, count: frame.width * frame.height * 3)
        for (k, r) in map.enumerated() {
            let g = UInt8(min(255, max(0, Double(r) / 30 * 255)))
            rgb[3 * k] = g; rgb[3 * k + 1] = g; rgb[3 * k + 2] = g
        }
        var err = [CChar](repeating: 0, count: 256)
        if lumen_cv_write_png_rgb8(path, rgb, Int32(frame.width), Int32(frame.height), &err, Int32(err.count)) != 0 {
            throw .write(path: path, reason: String(cString: err))
        }
    }

    public static func write(_ frame: Frame, track: TipTrack, chains: [[RidgePoint]], truth: (Double, Double)? = nil, to path: String) throws(TrackOverlayError) {
        var rgb = grey(frame)
        let w = Int32(frame.width), h = Int32(frame.height)
        rgb.withUnsafeMutableBufferPointer { buf in
            let c = buf.baseAddress!
            func poly(_ xy: [Double], _ col: (UInt8, UInt8, UInt8), _ t: Int32, closed: Bool = false) {
                guard xy.count >= 4 else { return }
                _ = xy.withUnsafeBufferPointer { lumen_cv_draw_polyline(c, w, h, $0.baseAddress, Int32(xy.count / 2), col.0, col.1, col.2, t, closed ? 1 : 0) }
            }
            for chain in chains { poly(chain.flatMap { [$0.u, $0.v] }, (0, 140, 160), 1) }
            let r = track.region
            poly([Double(r.x), Double(r.y), Double(r.x + r.width - 1), Double(r.y), Double(r.x + r.width - 1), Double(r.y + r.height - 1),
                  Double(r.x), Double(r.y + r.height - 1)], (70, 120, 255), 1, closed: true)
            if let d = track.detection { poly(d.centerline.flatMap { [$0.u, $0.v] }, (40, 220, 60), 1) }
            if let t = truth { _ = lumen_cv_draw_circle(c, w, h, t.0, t.1, 3, 255, 220, 0, 1) }
            if track.status == .tracked {
                _ = lumen_cv_draw_circle(c, w, h, track.u, track.v, 8, 255, 40, 40, 2)
                _ = lumen_cv_draw_circle(c, w, h, track.u, track.v, 1.2, 255, 40, 40, 0)
            } else if track.u.isFinite {
                _ = lumen_cv_draw_circle(c, w, h, track.u, track.v, 8, 255, 200, 0, 1)
            }
            let text = String(format: "frame %d  %@  conf %.2f%@", track.frame, track.status.rawValue, track.confidence, track.fullFrameSearch ? "  (full frame)" : "")
            _ = lumen_cv_draw_text(c, w, h, text, 10, 24, 0.6, 255, 255, 0)
        }
        var err = [CChar](repeating: 0, count: 256)
        if lumen_cv_write_png_rgb8(path, rgb, w, h, &err, Int32(err.count)) != 0 { throw .write(path: path, reason: String(cString: err)) }
    }
}
