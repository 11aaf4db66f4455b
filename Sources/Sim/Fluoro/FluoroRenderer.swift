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
    /// mm — the catheter does not end where the simulated part of it starts: it runs on back
    /// through the sheath to the access site. This much of it is drawn straight back along
    /// its first segment, so that no proximal end appears in the field (0: draw the given
    /// centerline only).
    public var proximalExtension: Double = 400
    /// Detector blur (px, Gaussian σ) and electronic noise (in 12-bit grey levels).
    public var blurSigma: Double = 0.7
    public var electronicNoise: Double = 4
    /// Breathing and heartbeat move the vessels and the catheter in them (not the spine).
    public var motion = SceneMotion()
    /// The static anatomy behind the vessels: spine, ribs and wires.
    public var anatomy = AnatomySettings()
    /// Fraction of the detected signal that is scatter: a uniform veil at the frame's mean
    /// transmission that lowers every contrast (0: none).
    public var scatterFraction: Double = 0
    /// How transmission becomes a grey value.
    public var encoding = FluoroEncoding.linear
    /// MONOCHROME1: dense is bright (the grey values inverted), as some C-arms export.
    public var monochrome1 = false
    public init() {}
}

/// How a detector's transmission t (0…1) is written as a 12-bit grey value.
public enum FluoroEncoding: String, Sendable, Equatable, CaseIterable {
    /// 4095 · t: grey proportional to the dose (the raw detector signal).
    case linear
    /// 4095 · (1 + log₁₀ t / 4): logarithmic, four decades onto the 12 bits, as many C-arms
    /// deliver their frames after the log look-up table.
    case log
}

/// The static anatomy of the background, in mm at the isocentre plane. The defaults draw the
/// spine and ribs the renderer always drew.
public struct AnatomySettings: Sendable, Equatable {
    /// Line integral (μ·L) of a vertebral body at its centre, and its width.
    public var spineDensity = 0.7
    public var spineWidth = 44.0
    /// Sideways offset of the spine from the field's centre (added to the one the LAO angle gives).
    public var spineOffset = 0.0
    /// Line integral of a rib at its centre, its half-width, the spacing of the ribs, their
    /// curvature (1/mm: y rises by curvature · x²) and tilt (degrees).
    public var ribDensity = 0.25
    public var ribHalfWidth = 5.0
    public var ribSpacing = 28.0
    public var ribCurvature = 0.004
    public var ribTiltDeg = 0.0
    /// How far (mm) the ribs reach in over the spine's edge from the side (negative: they stop short of it).
    public var ribOverlap = 2.0
    /// Thin dense straight lines (sternal wires, ECG leads) fixed in the field.
    public var wires: [Wire] = []
    public init() {}

    /// A straight wire from a to b (mm at the isocentre plane, x right, y down from the field's
    /// centre), its half-width (mm) and line integral at the centre.
    public struct Wire: Sendable, Equatable {
        public var a: (x: Double, y: Double), b: (x: Double, y: Double)
        public var halfWidth: Double
        public var density: Double
        public init(a: (x: Double, y: Double), b: (x: Double, y: Double), halfWidth: Double, density: Double) {
            self.a = a; self.b = b; self.halfWidth = halfWidth; self.density = density
        }
        public static func == (l: Self, r: Self) -> Bool {
            l.a == r.a && l.b == r.b && l.halfWidth == r.halfWidth && l.density == r.density
        }
    }
}

/// Rigid physiological motion of the vessel tree and the catheter inside it (mm, s).
public struct SceneMotion: Sendable, Equatable {
    /// Peak craniocaudal excursion of breathing (with a third of it anterior-posterior); 0 is off.
    public var breathingAmplitude = 0.0
    public var breathingPeriod = 4.0
    /// Peak excursion of the heartbeat, mostly left-right; 0 is off.
    public var cardiacAmplitude = 0.0
    public var cardiacPeriod = 0.8
    public init(breathingAmplitude: Double = 0, cardiacAmplitude: Double = 0) {
        self.breathingAmplitude = breathingAmplitude
        self.cardiacAmplitude = cardiacAmplitude
    }

    /// A typical free-breathing patient: 8 mm breathing, 3 mm heartbeat.
    public static let typical = SceneMotion(breathingAmplitude: 8, cardiacAmplitude: 3)

    /// The displacement (mm, LPS) at time `t` seconds.
    public func offset(at t: Double) -> Vec3 {
        let b = breathingAmplitude * 0.5 * (1 - cosine(2 * .pi * t / breathingPeriod))
        let phase = 2 * .pi * t / cardiacPeriod
        let c = cardiacAmplitude
        return Vec3(c * sine(phase), -0.33 * b + 0.4 * c * sine(2 * phase), -b)
    }
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
    /// Transmission exp(−μL) of the static anatomy, computed once.
    private let backgroundTransmission: [Float]
    /// Transmission of the contrast-filled vessels alone, for the tree last rendered, and the
    /// pixel box outside which it is 1.
    private var vesselTree: VesselTreeDescription?
    private var vesselTransmission: [Float]
    private var vesselBox = (0, 0, -1, -1)
    /// Per-frame buffers: the line integral of the moving tubes, the transmission, the blur.
    private var integral: [Float]
    private var scratch: [Float]
    private var transmission: [Float]
    private var blurred: [Float]
    private var rng: SplitMix64
    private let normal = NormalTable.shared
    /// The pixels the tubes are drawn into (u0, v0, u1, v1, inclusive): the whole frame, or
    /// the part of it a region render computes.
    private var clip: (Int, Int, Int, Int)

    public init(geometry: CArmGeometry, settings: FluoroSettings = FluoroSettings(), seed: UInt64 = 1) {
        self.geometry = geometry
        self.settings = settings
        let n = geometry.columns * geometry.rows
        backgroundTransmission = Self.anatomicalBackground(geometry, settings.anatomy).map { Float(exp(-Double($0))) }
        vesselTransmission = [Float](repeating: 1, count: n)
        integral = [Float](repeating: 0, count: n)
        scratch = [Float](repeating: 0, count: n)
        transmission = [Float](repeating: 0, count: n)
        blurred = [Float](repeating: 0, count: n)
        rng = SplitMix64(seed: seed)
        clip = (0, 0, geometry.columns - 1, geometry.rows - 1)
    }

    /// A smooth anatomy: soft tissue thicker toward the middle, a spine of vertebral bodies with
    /// disc gaps down the centre, ribs as arcs and any wires. Line integrals (unitless μ·L), in detector space.
    static func anatomicalBackground(_ g: CArmGeometry, _ a: AnatomySettings = AnatomySettings()) -> [Float] {
        let w = g.columns, h = g.rows
        var out = [Float](repeating: 0, count: w * h)
        // Work in mm at the isocentre plane, so the anatomy keeps its size at any pixel pitch.
        let mmPerPx = g.pixelSpacing / g.magnification
        let cu = Double(w - 1) / 2, cv = Double(h - 1) / 2
        // The spine sits along the body's axis; its apparent offset follows the LAO angle.
        let spineX = 40 * sine(g.primaryAngle) + a.spineOffset
        let halfSpine = max(1e-3, a.spineWidth / 2)
        let tilt = tan(a.ribTiltDeg * .pi / 180)
        let ribFree = halfSpine - a.ribOverlap
        for v in 0..<h {
            let y = (Double(v) - cv) * mmPerPx
            for u in 0..<w {
                let x = (Double(u) - cu) * mmPerPx
                var l = 1.2 + 0.5 * cosine(x / 180)  // soft tissue
                // Vertebral bodies with 5 mm discs every 30 mm.
                let dx = (x - spineX) / halfSpine
                if abs(dx) < 1 {
                    let phase = (y + 1000).truncatingRemainder(dividingBy: 30)
                    let body = phase < 25 ? 1.0 : 0.35
                    l += a.spineDensity * body * (1 - dx * dx).squareRoot()
                }
                // Ribs: arcs sweeping outward and down from the spine.
                if a.ribDensity != 0, abs(x - spineX) > ribFree, abs(x) < 170 {
                    for k in -6...6 {
                        let centre = Double(k) * a.ribSpacing + a.ribCurvature * x * x + tilt * x
                        let d = abs(y - centre)
                        if d < a.ribHalfWidth { l += a.ribDensity * (1 - d / a.ribHalfWidth) }
                    }
                }
                for wire in a.wires {
                    let ex = wire.b.x - wire.a.x, ey = wire.b.y - wire.a.y
                    let len2 = max(1e-9, ex * ex + ey * ey)
                    let t = min(1, max(0, ((x - wire.a.x) * ex + (y - wire.a.y) * ey) / len2))
                    let d = hypot(x - wire.a.x - t * ex, y - wire.a.y - t * ey)
                    if d < wire.halfWidth { l += wire.density * (1 - (d / wire.halfWidth) * (d / wire.halfWidth)).squareRoot() }
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
        let u0 = max(clip.0, Int((min(pa.u, pb.u) - margin).rounded(.down))), u1 = min(clip.2, Int((max(pa.u, pb.u) + margin).rounded(.up)))
        let v0 = max(clip.1, Int((min(pa.v, pb.v) - margin).rounded(.down))), v1 = min(clip.3, Int((max(pa.v, pb.v) + margin).rounded(.up)))
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

    /// Draws every segment of a polyline into the integral with attenuation `mu`; returns the
    /// pixel box it touched (empty when none).
    @discardableResult
    private func addTube(points: [Vec3], radii: [Double], mu: Double) -> (Int, Int, Int, Int) {
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
        guard box.0 <= box.2 else { return box }
        let m = Float(mu), w = geometry.columns
        integral.withUnsafeMutableBufferPointer { line in
            scratch.withUnsafeMutableBufferPointer { chord in
                for v in box.1...box.3 {
                    for u in box.0...box.2 {
                        let i = v * w + u
                        line[i] += m * chord[i]
                        chord[i] = 0
                    }
                }
            }
        }
        return box
    }

    /// The vessels' transmission for `tree`, cached: the tree is static, motion shifts it.
    private func prepareVessels(_ tree: VesselTreeDescription) {
        if vesselTree == tree { return }
        let w = geometry.columns
        if vesselBox.0 <= vesselBox.2 {
            for v in vesselBox.1...vesselBox.3 { for u in vesselBox.0...vesselBox.2 { vesselTransmission[v * w + u] = 1 } }
        }
        var box = (Int.max, Int.max, Int.min, Int.min)
        if settings.contrast > 0 {
            for vessel in tree.vessels where vessel.points.count >= 2 {
                let b = addTube(points: vessel.points.map { Vec3($0[0], $0[1], $0[2]) }, radii: vessel.points.map { $0[3] }, mu: settings.contrast)
                if b.0 <= b.2 { box = (min(box.0, b.0), min(box.1, b.1), max(box.2, b.2), max(box.3, b.3)) }
            }
        }
        if box.0 <= box.2 {
            for v in box.1...box.3 {
                for u in box.0...box.2 {
                    let i = v * w + u
                    vesselTransmission[i] = Float(exp(-Double(integral[i])))
                    integral[i] = 0
                }
            }
            vesselBox = box
        } else {
            vesselBox = (0, 0, -1, -1)
        }
        vesselTree = tree
    }

    /// The scene's displacement at `acquiredAt` under the configured motion (mm).
    public func motionOffset(at acquiredAt: Nanoseconds) -> Vec3 {
        settings.motion.offset(at: Double(acquiredAt) * 1e-9)
    }

    /// Renders one frame: the tree's vessels (with contrast when `settings.contrast` > 0) and
    /// the catheter along `catheter` (proximal → distal), both moved by the breathing and
    /// cardiac motion at `acquiredAt`. Returns the frame and its truth (moved too).
    ///
    /// The vessels are rendered once per tree and, under motion, shifted on the detector by the
    /// projected displacement of the isocentre (exact for the isocentre plane; a 10 mm shift
    /// 60 mm off it is off by under a pixel); the catheter is rendered exactly, every frame.
    ///
    /// With a `region`, only that part of the frame is exposed (a measurer that searches around
    /// a predicted tip reads little else: `BiplaneTipMeasurer.renderRegion`): its pixels are
    /// those of a whole frame rendered with other noise, and every pixel outside it holds the
    /// region's mean grey (no structure). The region comes back with the frame; nil when the whole frame was
    /// rendered (no region asked, one covering the frame, or scatter, whose veil is the whole
    /// frame's mean).
    public func render(tree: VesselTreeDescription, catheter: [Vec3], frame index: Int, acquiredAt: Nanoseconds = 0,
                       region: PixelRegion?) throws -> (frame: Frame, truth: FluoroTruth, rendered: PixelRegion?) {
        let g = geometry
        let w = g.columns, h = g.rows
        // The region and a margin for the blur, which reads that far around each pixel.
        let all = (0, 0, w - 1, h - 1)
        var box = all, kept = all
        if let r = region, settings.scatterFraction <= 0 {
            let m = Int((4 * max(0, settings.blurSigma)).rounded(.up)) + 1
            let k = (max(0, r.x), max(0, r.y), min(w - 1, r.x + r.width - 1), min(h - 1, r.y + r.height - 1))
            if k.0 <= k.2, k.1 <= k.3, k != all {
                kept = k
                box = (max(0, k.0 - m), max(0, k.1 - m), min(w - 1, k.2 + m), min(h - 1, k.3 + m))
            }
        }
        let partial = kept != all
        let (frame, truth) = try draw(tree: tree, catheter: catheter, frame: index, acquiredAt: acquiredAt, box: box, kept: kept, partial: partial)
        guard partial else { return (frame, truth, nil) }
        return (frame, truth, PixelRegion(x: kept.0, y: kept.1, width: kept.2 - kept.0 + 1, height: kept.3 - kept.1 + 1))
    }

    /// The whole frame (see `render(tree:catheter:frame:acquiredAt:region:)`).
    public func render(tree: VesselTreeDescription, catheter: [Vec3], frame index: Int, acquiredAt: Nanoseconds = 0) throws -> (Frame, FluoroTruth) {
        let r = try render(tree: tree, catheter: catheter, frame: index, acquiredAt: acquiredAt, region: nil)
        return (r.frame, r.truth)
    }

    /// Draws the pixels inside `box` (all of them unless `partial`) and keeps those inside
    /// `kept`: the box is the kept part and a margin for the blur to read.
    private func draw(tree: VesselTreeDescription, catheter: [Vec3], frame index: Int, acquiredAt: Nanoseconds,
                      box clipBox: (Int, Int, Int, Int), kept: (Int, Int, Int, Int), partial: Bool) throws -> (Frame, FluoroTruth) {
        let g = geometry
        let w = g.columns, n = g.columns * g.rows
        // The vessels' cache covers the whole frame whatever part of it this frame draws.
        prepareVessels(tree)
        clip = clipBox
        defer { clip = (0, 0, w - 1, g.rows - 1) }
        let offset = motionOffset(at: acquiredAt)
        let moved = catheter.map { $0 + offset }
        // Static anatomy × (shifted) vessels.
        let iso = g.project(g.isocenter), shiftedIso = g.project(g.isocenter + offset)
        let du = shiftedIso.u - iso.u, dv = shiftedIso.v - iso.v
        backgroundTransmission.withUnsafeBufferPointer { bg in
            transmission.withUnsafeMutableBufferPointer { t in
                if !partial { _ = t.update(fromContentsOf: bg); return }
                for v in clipBox.1...clipBox.3 {
                    let start = v * w + clipBox.0, count = clipBox.2 - clipBox.0 + 1
                    (t.baseAddress! + start).update(from: bg.baseAddress! + start, count: count)
                }
            }
        }
        if vesselBox.0 <= vesselBox.2 {
            let b = vesselBox
            let iu = Int((du).rounded(.down)), iv = Int((dv).rounded(.down))
            let fu = Float(du - Double(iu)), fv = Float(dv - Double(iv))
            let u0 = max(clipBox.0, b.0 + iu), u1 = min(clipBox.2, b.2 + iu + 1), v0 = max(clipBox.1, b.1 + iv), v1 = min(clipBox.3, b.3 + iv + 1)
            if u0 <= u1, v0 <= v1 {
                vesselTransmission.withUnsafeBufferPointer { vt in
                    transmission.withUnsafeMutableBufferPointer { t in
                        let h = g.rows
                        @inline(__always) func at(_ u: Int, _ v: Int) -> Float {
                            (u < 0 || v < 0 || u >= w || v >= h) ? 1 : vt[v * w + u]
                        }
                        let w00 = (1 - fu) * (1 - fv), w10 = fu * (1 - fv), w01 = (1 - fu) * fv, w11 = fu * fv
                        // Columns whose four source pixels all lie in the frame: su − 1 ≥ 0 and su < w.
                        let inner0 = max(u0, iu + 1), inner1 = min(u1, w - 1 + iu)
                        for v in v0...v1 {
                            // Bilinear sample of the cached vessels at (u − du, v − dv), 1 outside:
                            // the source point (su − fu, sv − fv) lies between su−1…su and sv−1…sv.
                            let sv = v - iv
                            let rowsInside = sv - 1 >= 0 && sv < h
                            @inline(__always) func edge(_ u: Int) {
                                let su = u - iu
                                t[v * w + u] *= at(su, sv) * w00 + at(su - 1, sv) * w10 + at(su, sv - 1) * w01 + at(su - 1, sv - 1) * w11
                            }
                            guard rowsInside, inner0 <= inner1 else {
                                for u in u0...u1 { edge(u) }
                                continue
                            }
                            for u in stride(from: u0, to: inner0, by: 1) { edge(u) }
                            // The interior without bounds tests, so that it vectorises. The sum is
                            // taken in the order the edge pixels take it: the frames do not change.
                            let base = t.baseAddress! + v * w
                            let s0 = vt.baseAddress! + (sv * w - iu), s1 = s0 - w
                            var u = inner0
                            while u <= inner1 {
                                base[u] *= s0[u] * w00 + s0[u &- 1] * w10 + s1[u] * w01 + s1[u &- 1] * w11
                                u &+= 1
                            }
                            for u in stride(from: inner1 + 1, through: u1, by: 1) { edge(u) }
                        }
                    }
                }
            }
        }
        // The catheter and its marker band, exactly, into the moving integral.
        var box = (Int.max, Int.max, Int.min, Int.min)
        func grow(_ b: (Int, Int, Int, Int)) { if b.0 <= b.2 { box = (min(box.0, b.0), min(box.1, b.1), max(box.2, b.2), max(box.3, b.3)) } }
        if moved.count >= 2 {
            var drawn = moved
            let back = moved[0] - moved[1]
            if settings.proximalExtension.isFinite, settings.proximalExtension > 0, back.length > 1e-9 {
                // Shortened where it would reach behind the source, which projects nowhere.
                var extent = settings.proximalExtension
                while extent > 1, g.project(moved[0] + back * (extent / back.length)).depth < 0.1 * g.sourceToDetector { extent *= 0.5 }
                drawn.insert(moved[0] + back * (extent / back.length), at: 0)
            }
            grow(addTube(points: drawn, radii: [Double](repeating: settings.catheterRadius, count: drawn.count), mu: settings.catheter))
            let marker = Self.distalPart(moved, length: settings.markerLength)
            if marker.count >= 2 {
                grow(addTube(points: marker, radii: [Double](repeating: settings.catheterRadius, count: marker.count), mu: settings.marker))
            }
        }
        if box.0 <= box.2 {
            integral.withUnsafeMutableBufferPointer { line in
                transmission.withUnsafeMutableBufferPointer { t in
                    for v in box.1...box.3 {
                        for u in box.0...box.2 {
                            let i = v * w + u
                            if line[i] != 0 { t[i] *= Float(exp(-Double(line[i]))); line[i] = 0 }
                        }
                    }
                }
            }
        }
        if settings.scatterFraction > 0 {
            // Scatter adds a near-uniform veil: the frame's mean transmission, a fraction of the signal.
            let s = Float(min(1, settings.scatterFraction))
            let mean = transmission.reduce(0, +) / Float(max(1, n))
            transmission.withUnsafeMutableBufferPointer { t in for i in 0..<n { t[i] = (1 - s) * t[i] + s * mean } }
        }
        // The pixels drawn: the whole frame as one run, or the box's rows one run each.
        func rows(_ b: (Int, Int, Int, Int)) -> [Range<Int>] { (b.1...b.3).map { v in (v * w + b.0)..<(v * w + b.2 + 1) } }
        try expose(partial ? rows(clipBox) : [0..<n], box: partial ? clipBox : nil)
        let spans = partial ? rows(kept) : [0..<n]
        var pixels = [UInt16](repeating: 0, count: n)
        let sigma = Float(settings.electronicNoise)
        let logEncoded = settings.encoding == .log, inverted = settings.monochrome1
        // Local copies: a class property touched per pixel pays a dynamic exclusivity check.
        var rng = self.rng
        let normal = self.normal
        defer { self.rng = rng }
        // The grey values with the electronic noise, in place (the blurred transmission is
        // scratch from here on), then rounded to pixels in C, where the clamped conversion
        // vectorises; Swift's checked one costs as much as the rest of the frame's pixel work.
        blurred.withUnsafeMutableBufferPointer { buffer in
            var mean = 0.0
            for span in spans {
                var i = span.lowerBound
                while i < span.upperBound {
                    var bits = rng.next()
                    for _ in 0..<4 where i < span.upperBound {
                        let t = buffer[i]
                        let grey = logEncoded ? 4095 * (1 + log10(max(t, 1e-4)) / 4) : t * 4095
                        buffer[i] = grey + sigma * normal.sample(UInt16(truncatingIfNeeded: bits))
                        if partial { mean += Double(buffer[i]) }
                        bits >>= 16
                        i += 1
                    }
                }
            }
            // Inverted after rounding, so reading MONOCHROME1 back gives the very grey values.
            pixels.withUnsafeMutableBufferPointer { dst in
                if partial {
                    // Outside the region: its mean grey, flat.
                    var level = Float(mean / Double(max(1, spans.reduce(0) { $0 + $1.count })))
                    var fill: UInt16 = 0
                    lumen_cv_quantise_u16(&level, &fill, 1, 4095, inverted ? 1 : 0)
                    dst.update(repeating: fill)
                }
                for span in spans {
                    lumen_cv_quantise_u16(buffer.baseAddress! + span.lowerBound, dst.baseAddress! + span.lowerBound, Int64(span.count), 4095, inverted ? 1 : 0)
                }
            }
        }
        let tip = moved.last ?? .zero
        let p = g.project(tip)
        let truth = FluoroTruth(frame: index, tip3D: [tip.x, tip.y, tip.z], tip2D: [p.u, p.v],
                                centerline2D: moved.map { c in let q = g.project(c); return [q.u, q.v] })
        return (Frame(width: g.columns, height: g.rows, pixels: pixels, acquiredAt: acquiredAt, pixelPitchMM: g.pixelSpacing), truth)
    }

    /// Quantum noise on the transmission (Poisson counts over the photon count: exact below
    /// 30 photons, the normal approximation above), then the detector blur: of the pixels in
    /// `spans` only, and with a `box` (the spans are its rows) the blur of the box alone.
    private func expose(_ spans: [Range<Int>], box: (Int, Int, Int, Int)?) throws {
        let n0 = settings.photonsPerPixel
        let invN0 = Float(1 / n0)
        let n0f = Float(n0)
        var rng = self.rng
        let normal = self.normal
        defer { self.rng = rng }
        transmission.withUnsafeMutableBufferPointer { t in
            // Knuth's method for small means.
            @inline(__always) func knuth(_ lambda: Float) -> Float {
                let limit = exp(-Double(lambda))
                var p = rng.unit()
                var count = 0.0
                while p > limit { p *= rng.unit(); count += 1 }
                return Float(count) * invN0
            }
            for span in spans {
                var i = span.lowerBound
                let n = span.upperBound
                // Four pixels per draw of 64 bits, as four lanes: the normal approximation for all
                // four at once, then Knuth's method for the lanes below 30 photons in pixel order,
                // so the draws come in the order one pixel at a time takes them.
                while i + 4 <= n {
                    let bits = rng.next()
                    let e = SIMD4<Float>(t[i], t[i + 1], t[i + 2], t[i + 3])
                    let z = SIMD4<Float>(normal.sample(UInt16(truncatingIfNeeded: bits)), normal.sample(UInt16(truncatingIfNeeded: bits >> 16)),
                                         normal.sample(UInt16(truncatingIfNeeded: bits >> 32)), normal.sample(UInt16(truncatingIfNeeded: bits >> 48)))
                    let lambda = n0f * e
                    var c = e + (e * invN0).squareRoot() * z
                    c.replace(with: 0, where: .!(c .> 0))
                    if any(.!(lambda .>= 30)) {
                        for k in 0..<4 where !(lambda[k] >= 30) { c[k] = knuth(lambda[k]) }
                    }
                    t[i] = c[0]; t[i + 1] = c[1]; t[i + 2] = c[2]; t[i + 3] = c[3]
                    i += 4
                }
                if i < n {
                    var bits = rng.next()
                    while i < n {
                        let e = t[i]
                        let lambda = n0f * e
                        if lambda >= 30 {
                            let c = e + (e * invN0).squareRoot() * normal.sample(UInt16(truncatingIfNeeded: bits))
                            t[i] = c > 0 ? c : 0
                        } else {
                            t[i] = knuth(lambda)
                        }
                        bits >>= 16
                        i += 1
                    }
                }
            }
        }
        var err = [CChar](repeating: 0, count: 256)
        let g = geometry
        let rc: Int32
        if let b = box {
            // The box packed, blurred and put back: its border replicated as the frame's is.
            let bw = b.2 - b.0 + 1, bh = b.3 - b.1 + 1
            var packed = [Float](repeating: 0, count: bw * bh), out = [Float](repeating: 0, count: bw * bh)
            transmission.withUnsafeBufferPointer { t in
                for y in 0..<bh { for x in 0..<bw { packed[y * bw + x] = t[(b.1 + y) * g.columns + b.0 + x] } }
            }
            rc = lumen_cv_gaussian_blur_f32(packed, &out, Int32(bw), Int32(bh), settings.blurSigma, &err, Int32(err.count))
            blurred.withUnsafeMutableBufferPointer { d in
                for y in 0..<bh { for x in 0..<bw { d[(b.1 + y) * g.columns + b.0 + x] = out[y * bw + x] } }
            }
        } else {
            rc = transmission.withUnsafeBufferPointer { src in
                blurred.withUnsafeMutableBufferPointer { dst in
                    lumen_cv_gaussian_blur_f32(src.baseAddress, dst.baseAddress, Int32(g.columns), Int32(g.rows), settings.blurSigma, &err, Int32(err.count))
                }
            }
        }
        if rc != 0 { throw FluoroError.blur(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
    }

    /// The distal `length` mm of a polyline, distal end first.
    static func distalPart(_ line: [Vec3], length: Double) -> [Vec3] {
        var part: [Vec3] = [line[line.count - 1]]
        var remaining = length
        var k = line.count - 1
        while k > 0, remaining > 0 {
            let seg = line[k] - line[k - 1]
            let len = seg.length
            if len >= remaining {
                part.append(line[k] - seg * (remaining / len))
                remaining = 0
            } else {
                part.append(line[k - 1])
                remaining -= len
            }
            k -= 1
        }
        return part
    }
}

/// Standard normal deviates by table: 65,536 equiprobable quantiles of N(0, 1) (from the
/// inverse normal CDF at (k + ½)/65536), indexed by 16 random bits. A sample costs a load
/// instead of a logarithm and a cosine; the distribution is the normal's, discretised at
/// 2⁻¹⁶ in probability and cut at ±4.3 σ, far below anything a 12-bit frame resolves.
final class NormalTable: Sendable {
    static let shared = NormalTable()
    let values: [Float]

    init() {
        values = (0..<65536).map { Float(Self.inverseNormal((Double($0) + 0.5) / 65536)) }
    }

    @inline(__always) func sample(_ bits: UInt16) -> Float { values.withUnsafeBufferPointer { $0[Int(bits)] } }

    /// Acklam's rational approximation of the inverse normal CDF (relative error < 1.2e-9).
    static func inverseNormal(_ p: Double) -> Double {
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        if p < low {
            let q = (-2 * log(p)).squareRoot()
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        if p > 1 - low {
            let q = (-2 * log(1 - p)).squareRoot()
            return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        let q = p - 0.5, r = q * q
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
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
