import COpenCV
import Core
import Foundation
import Imaging

/// Imaging physics of the synthetic fluoroscopy: attenuation coefficients and the detector.
public struct FluoroSettings: Sendable, Equatable {
    /// Photons reaching a pixel with nothing in the beam (quantum noise scales with it).
    public var photonsPerPixel: Double = 5000
    /// 1/mm — iodinated contrast in a vessel lumen; 0 when no contrast is injected.
    public var contrast: Double = 0.04
    /// 1/mm — the catheter shaft (radiopaque filler) and its tip marker band.
    public var catheter: Double = 0.12
    public var marker: Double = 0.9
    /// mm — catheter radius and marker length at the distal end.
    public var catheterRadius: Double = 1.0
    public var markerLength: Double = 2.0
    /// Detector blur (px, Gaussian σ) and electronic noise (in 12-bit grey levels).
    public var blurSigma: Double = 0.7
    public var electronicNoise: Double = 4
    public init() {}
}

/// What a rendered frame shows, exactly: the ground truth a tracker is measured against.
public struct FluoroTruth: Sendable, Equatable, Codable {
    public var frame: Int
    /// mm, patient coordinates: the catheter tip, the distal end point of its centerline.
    public var tip3D: [Double]
    /// px: the projected tip, sub-pixel, (u, v) = (column, row).
    public var tip2D: [Double]
    /// px: the projected catheter centerline, proximal to distal.
    public var centerline2D: [[Double]]
}

/// Renders 16-bit frames (12-bit values) of a vessel tree and a catheter as a C-arm sees them:
/// line integrals of attenuation along each pixel's ray (vessels as frusta, the catheter as a
/// tube with a dense tip marker, a smooth spine-and-ribs background), Beer–Lambert, Poisson
/// quantum noise at the set photon count, detector blur and electronic noise.
public final class FluoroRenderer {
    public let geometry: CArmGeometry
    public let settings: FluoroSettings
    /// (rows × columns) background line integral, computed once.
    private let background: [Float]
    private var integral: [Float]
    private var scratch: [Float]
    private var blurred: [Float]
    private var rng: SplitMix64

    public init(geometry: CArmGeometry, settings: FluoroSettings = FluoroSettings(), seed: UInt64 = 1) {
        self.geometry = geometry
        self.settings = settings
        let n = geometry.columns * geometry.rows
        background = Self.anatomicalBackground(geometry)
        integral = [Float](repeating: 0, count: n)
        scratch = [Float](repeating: 0, count: n)
        blurred = [Float](repeating: 0, count: n)
        rng = SplitMix64(seed: seed)
    }

    /// A smooth anatomy: soft tissue thicker toward the middle, a spine of vertebral bodies with
    /// disc gaps down the centre, and ribs as arcs. Line integrals (unitless μ·L), in detector space.
    static func anatomicalBackground(_ g: CArmGeometry) -> [Float] {
        let w = g.columns, h = g.rows
        var out = [Float](repeating: 0, count: w * h)
        // Work in mm at the isocentre plane, so the anatomy keeps its size at any pixel pitch.
        let mmPerPx = g.pixelSpacing / g.magnification
        let cu = Double(w - 1) / 2, cv = Double(h - 1) / 2
        // The spine sits along the body's axis; its apparent offset follows the LAO angle.
        let spineX = 40 * sine(g.primaryAngle)
        for v in 0..<h {
            let y = (Double(v) - cv) * mmPerPx
            for u in 0..<w {
                let x = (Double(u) - cu) * mmPerPx
                var l = 1.2 + 0.5 * cosine(x / 180)  // soft tissue
                // Vertebral bodies: 40 mm wide, 25 mm tall, with 5 mm discs.
                let dx = (x - spineX) / 22
                if abs(dx) < 1 {
                    let phase = (y + 1000).truncatingRemainder(dividingBy: 30)
                    let body = phase < 25 ? 1.0 : 0.35
                    l += 0.7 * body * (1 - dx * dx).squareRoot()
                }
                // Ribs: arcs sweeping outward and down from the spine, every 28 mm.
                for k in -6...6 {
                    let centre = Double(k) * 28 + 0.004 * x * x
                    let d = abs(y - centre)
                    if d < 5, abs(x - spineX) > 20, abs(x) < 170 { l += 0.25 * (1 - d / 5) }
                }
                out[v * w + u] = Float(l)
            }
        }
        return out
    }

    /// Adds the chord length of each pixel's ray through one segment (a cylinder of the
    /// segment's mean radius between its end planes) to `buffer`. Consecutive segments of a
    /// polyline meet at their end planes, so a ray along the tube sums to its true path length.
    private func splatSegment(_ a: Vec3, _ b: Vec3, ra: Double, rb: Double, startPlane nA: Vec3, endPlane nB: Vec3,
                              into buffer: inout [Float], box: inout (Int, Int, Int, Int)) {
        let g = geometry
        let pa = g.project(a), pb = g.project(b)
        guard pa.depth > 0, pb.depth > 0 else { return }
        let margin = max(ra, rb) * g.sourceToDetector / min(pa.depth, pb.depth) / g.pixelSpacing + 2
        let u0 = max(0, Int((min(pa.u, pb.u) - margin).rounded(.down))), u1 = min(g.columns - 1, Int((max(pa.u, pb.u) + margin).rounded(.up)))
        let v0 = max(0, Int((min(pa.v, pb.v) - margin).rounded(.down))), v1 = min(g.rows - 1, Int((max(pa.v, pb.v) + margin).rounded(.up)))
        guard u0 <= u1, v0 <= v1 else { return }
        box = (min(box.0, u0), min(box.1, v0), max(box.2, u1), max(box.3, v1))
        let axis = b - a
        let axisLength = axis.length
        guard axisLength > 0 else { return }
        let w = axis * (1 / axisLength)
        let s = g.source
        let c = g.principalPoint
        let du = g.columnAxis * g.pixelSpacing, dv = g.rowAxis * g.pixelSpacing
        let origin = g.detectorCentre - du * c.u - dv * c.v
        let radius = (ra + rb) / 2
        let m = s - a
        let mPerp = m - w * m.dot(w)
        let c0 = mPerp.dot(mPerp) - radius * radius
        let sa = (s - a).dot(nA), sb = (s - b).dot(nB)
        for v in v0...v1 {
            let rowStart = origin + dv * Double(v)
            for u in u0...u1 {
                var r = rowStart + du * Double(u) - s
                r = r * (1 / r.length)
                // Exact ray ∩ finite cylinder: the infinite cylinder's interval, cut by the slab
                // between the end planes.
                let rw = r.dot(w)
                let rPerp = r - w * rw
                let qa = rPerp.dot(rPerp), qb = 2 * mPerp.dot(rPerp)
                var t1 = -Double.infinity, t2 = Double.infinity
                if qa < 1e-12 {
                    if c0 > 0 { continue }
                } else {
                    let disc = qb * qb - 4 * qa * c0
                    if disc <= 0 { continue }
                    let root = disc.squareRoot()
                    t1 = (-qb - root) / (2 * qa)
                    t2 = (-qb + root) / (2 * qa)
                }
                // Between the mitred end planes: (p − a)·nA ≥ 0 and (p − b)·nB ≤ 0.
                let ra0 = r.dot(nA), rb0 = r.dot(nB)
                if abs(ra0) < 1e-12 {
                    if sa < 0 { continue }
                } else if ra0 > 0 { t1 = max(t1, -sa / ra0) } else { t2 = min(t2, -sa / ra0) }
                if abs(rb0) < 1e-12 {
                    if sb > 0 { continue }
                } else if rb0 > 0 { t2 = min(t2, -sb / rb0) } else { t1 = max(t1, -sb / rb0) }
                let chord = t2 - t1
                if chord > 0 { buffer[v * g.columns + u] += Float(chord) }
            }
        }
    }

    /// Draws every segment of a polyline into the integral with attenuation `mu`.
    private func addTube(points: [Vec3], radii: [Double], mu: Double) {
        var box = (Int.max, Int.max, Int.min, Int.min)
        // Mitre the joints: each end plane bisects the turn, so consecutive segments tile the
        // tube with neither gaps nor overlaps at bends.
        func direction(_ k: Int) -> Vec3 { let d = points[k] - points[k - 1]; return d * (1 / max(d.length, 1e-12)) }
        for k in 1..<points.count {
            let w = direction(k)
            var nA = k > 1 ? direction(k - 1) + w : w
            var nB = k + 1 < points.count ? w + direction(k + 1) : w
            nA = nA.length > 1e-9 ? nA * (1 / nA.length) : w
            nB = nB.length > 1e-9 ? nB * (1 / nB.length) : w
            splatSegment(points[k - 1], points[k], ra: radii[k - 1], rb: radii[k], startPlane: nA, endPlane: nB, into: &scratch, box: &box)
        }
        guard box.0 <= box.2 else { return }
        let m = Float(mu)
        for v in box.1...box.3 {
            for u in box.0...box.2 {
                let i = v * geometry.columns + u
                integral[i] += m * scratch[i]
                scratch[i] = 0
            }
        }
    }

    /// Renders one frame: the tree's vessels (with contrast when `settings.contrast` > 0) and
    /// the catheter along `catheter` (proximal → distal). Returns the frame and its truth.
    public func render(tree: VesselTreeDescription, catheter: [Vec3], frame index: Int, acquiredAt: Nanoseconds = 0) throws -> (Frame, FluoroTruth) {
        let g = geometry
        let n = g.columns * g.rows
        for i in 0..<n { integral[i] = background[i] }
        if settings.contrast > 0 {
            for vessel in tree.vessels {
                addTube(points: vessel.points.map { Vec3($0[0], $0[1], $0[2]) }, radii: vessel.points.map { $0[3] }, mu: settings.contrast)
            }
        }
        if catheter.count >= 2 {
            addTube(points: catheter, radii: [Double](repeating: settings.catheterRadius, count: catheter.count), mu: settings.catheter)
            // The marker: the distal `markerLength` mm, denser.
            var marker: [Vec3] = [catheter[catheter.count - 1]]
            var remaining = settings.markerLength
            var k = catheter.count - 1
            while k > 0, remaining > 0 {
                let seg = catheter[k] - catheter[k - 1]
                let len = seg.length
                if len >= remaining {
                    marker.append(catheter[k] - seg * (remaining / len))
                    remaining = 0
                } else {
                    marker.append(catheter[k - 1])
                    remaining -= len
                }
                k -= 1
            }
            if marker.count >= 2 {
                addTube(points: marker, radii: [Double](repeating: settings.catheterRadius, count: marker.count), mu: settings.marker)
            }
        }
        // Beer–Lambert, then quantum noise: Poisson counts (normal approximation above 30 photons).
        let n0 = settings.photonsPerPixel
        for i in 0..<n {
            let lambda = n0 * exp(-Double(integral[i]))
            var count: Double
            if lambda < 30 {
                // Knuth's method for small means.
                let limit = exp(-lambda)
                var p = rng.unit()
                count = 0
                while p > limit {
                    p *= rng.unit()
                    count += 1
                }
            } else {
                count = lambda + lambda.squareRoot() * gaussian()
            }
            integral[i] = Float(max(0, count) / n0)
        }
        var err = [CChar](repeating: 0, count: 256)
        let rc = integral.withUnsafeBufferPointer { src in
            blurred.withUnsafeMutableBufferPointer { dst in
                lumen_cv_gaussian_blur_f32(src.baseAddress, dst.baseAddress, Int32(g.columns), Int32(g.rows), settings.blurSigma, &err, Int32(err.count))
            }
        }
        if rc != 0 { throw FluoroError.blur(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        var pixels = [UInt16](repeating: 0, count: n)
        for i in 0..<n {
            let value = Double(blurred[i]) * 4095 + settings.electronicNoise * gaussian()
            pixels[i] = UInt16(min(4095, max(0, value.rounded())))
        }
        let tip = catheter.last ?? .zero
        let p = g.project(tip)
        let truth = FluoroTruth(frame: index, tip3D: [tip.x, tip.y, tip.z], tip2D: [p.u, p.v],
                                centerline2D: catheter.map { c in let q = g.project(c); return [q.u, q.v] })
        return (Frame(width: g.columns, height: g.rows, pixels: pixels, acquiredAt: acquiredAt), truth)
    }

    private func gaussian() -> Double {
        // Box–Muller; one of the pair is enough here.
        let u1 = max(rng.unit(), 1e-300), u2 = rng.unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

public enum FluoroError: Error, CustomStringConvertible {
    case blur(String)
    public var description: String {
        switch self {
        case .blur(let m): "detector blur failed: \(m)"
        }
    }
}
