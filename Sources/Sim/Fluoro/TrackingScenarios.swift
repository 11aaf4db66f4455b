import Core
import Foundation
import Imaging

/// Which randomised sequences a tracking evaluation draws. The two splits come from disjoint
/// seed streams, so no sequence, noise field or configuration of one occurs in the other:
/// detector and tracker settings are tuned on `tuning` only, and `heldout` is run to report.
public enum TrackingSplit: String, Sendable, CaseIterable {
    case tuning, heldout

    /// The first seed of the split's stream (the streams are 2⁴⁰ apart and draw at most a few
    /// thousand sequences, so they never meet).
    var seedBase: UInt64 { self == .tuning ? 0x7475_6E00_0000_0000 : 0x6865_6C00_0000_0000 }
}

/// One randomised tracking sequence: the anatomy, vessels, catheter, imaging chain and motion,
/// all drawn from the split's seed stream. Domain randomisation: a tracker tuned on the
/// renderer's one look meets other spines, ribs across the spine edge, vessels and branches
/// crossing at angles, wires, encodings, inversion, pitch, band length, catheter width, dose,
/// scatter and motion.
public struct RandomisedTrackingSequence: Sendable {
    public var name: String
    public var split: TrackingSplit
    public var index: Int
    /// "arch", "coronary" or "straight".
    public var phantom: String
    /// "advance" (along a vessel) or "loop" (the tip curls round and crosses its own shaft).
    public var motion: String
    public var primaryDeg: Double, secondaryDeg: Double
    /// Detector side (px, square) and pitch (mm).
    public var size: Int
    public var pixelPitch: Double
    public var fps: Double
    /// Scale of the breathing and heartbeat excursion (1: 8 mm and 2 mm).
    public var motionScale: Double
    public var fluoro: FluoroSettings
    /// Contrast-filled vessels that do not hold the catheter, crossing or ending near its path.
    public var distractors: [Distractor]
    /// The seed of the renderer's quantum noise.
    public var noiseSeed: UInt64

    /// A straight vessel placed relative to the catheter's path: through (or from) the point at
    /// `along` (0…1 of the path shown), tilted `angleDeg` in the image plane and `elevationDeg`
    /// out of it, `length` mm, `radius` mm; `ends` starts it at that point (a vessel end or a
    /// branch's origin beside the catheter) instead of crossing it there.
    public struct Distractor: Sendable, Equatable {
        public var along: Double
        public var offset: Double
        public var angleDeg: Double
        public var elevationDeg: Double
        public var length: Double
        public var radius: Double
        public var ends: Bool
    }

    /// Short tags for the per-condition rows.
    public var tags: [String] {
        var t = [phantom, motion, String(format: "%.2fmm", pixelPitch), "\(Int(fluoro.photonsPerPixel))ph", fluoro.encoding.rawValue]
        if fluoro.monochrome1 { t.append("mono1") }
        if fluoro.contrast == 0 { t.append("nocontrast") }
        t.append(fluoro.markerLength > 0 ? String(format: "band%.1fmm", fluoro.markerLength) : "bare")
        if fluoro.scatterFraction > 0.2 { t.append("scatter") }
        if !distractors.isEmpty { t.append("vessels\(distractors.count)") }
        if !fluoro.anatomy.wires.isEmpty { t.append("wires\(fluoro.anatomy.wires.count)") }
        if fluoro.anatomy.ribOverlap > 4 { t.append("ribs-over-spine") }
        return t
    }

    /// The split's `index`-th sequence (deterministic).
    public static func draw(_ split: TrackingSplit, index: Int) -> RandomisedTrackingSequence {
        var g = SplitMix64(seed: split.seedBase &+ UInt64(truncatingIfNeeded: index) &* 0x1_0000)
        func pick<T>(_ xs: [T]) -> T { xs[Int(g.next() % UInt64(xs.count))] }
        func chance(_ p: Double) -> Bool { g.unit() < p }
        let phantom = pick(["arch", "arch", "coronary", "coronary", "straight"])
        let motion = phantom == "straight" && chance(0.6) ? "loop" : "advance"
        let pitch = g.uniform(0.15, 0.6)
        // Large frames at fine pitch (a 1024² detector), otherwise 512² to keep the run short.
        let size = pitch < 0.3 && chance(0.5) ? 1024 : 512
        var f = FluoroSettings()
        f.photonsPerPixel = exp(g.uniform(log(300), log(10000)))
        f.contrast = chance(0.8) ? g.uniform(0.02, 0.07) : 0
        f.catheterRadius = g.uniform(0.45, 1.2)
        f.catheter = g.uniform(0.07, 0.16)
        f.markerLength = chance(0.12) ? 0 : g.uniform(1, 4)
        f.marker = g.uniform(0.5, 1.2)
        f.blurSigma = g.uniform(0.5, 1.2)
        f.electronicNoise = g.uniform(2, 8)
        f.scatterFraction = chance(0.5) ? g.uniform(0, 0.45) : 0
        f.encoding = chance(0.5) ? .log : .linear
        f.monochrome1 = chance(0.3)
        var a = AnatomySettings()
        a.spineDensity = g.uniform(0.4, 1.1)
        a.spineWidth = g.uniform(34, 52)
        a.spineOffset = g.uniform(-30, 30)
        a.ribDensity = g.uniform(0.1, 0.5)
        a.ribHalfWidth = g.uniform(3, 7)
        a.ribSpacing = g.uniform(22, 34)
        a.ribCurvature = g.uniform(0.001, 0.006)
        a.ribTiltDeg = g.uniform(-25, 25)
        a.ribOverlap = chance(0.6) ? g.uniform(4, 14) : g.uniform(-4, 4)
        // Wires (guidewires, ECG leads, sternal wires) are thinner than the thinnest catheter drawn:
        // one as wide as the catheter, ending bare in the field, is a catheter in every respect a frame shows.
        for _ in 0..<(chance(0.4) ? Int(g.next() % 3) + 1 : 0) {
            let cx = g.uniform(-60, 60), cy = g.uniform(-60, 60), ang = g.uniform(0, .pi), len = g.uniform(30, 160)
            a.wires.append(.init(a: (cx - cos(ang) * len / 2, cy - sin(ang) * len / 2), b: (cx + cos(ang) * len / 2, cy + sin(ang) * len / 2),
                                 halfWidth: g.uniform(0.15, 0.35), density: g.uniform(0.15, 0.6)))
        }
        f.anatomy = a
        var distractors: [Distractor] = []
        if f.contrast > 0 {
            for _ in 0..<Int(g.next() % 4) {
                distractors.append(Distractor(along: g.uniform(0.2, 1), offset: g.uniform(-6, 6), angleDeg: g.uniform(0, 180),
                                              elevationDeg: g.uniform(-40, 40), length: g.uniform(30, 120), radius: g.uniform(0.8, 3.5),
                                              ends: chance(0.4)))
            }
        }
        let fps = pick([7.5, 10, 15, 15, 30])
        let primary = g.uniform(-45, 45), secondary = g.uniform(-25, 25)
        let motionScale = g.uniform(0, 1.5)
        let noiseSeed = g.next()
        var s = RandomisedTrackingSequence(name: "", split: split, index: index, phantom: phantom, motion: motion, primaryDeg: primary,
                                           secondaryDeg: secondary, size: size, pixelPitch: pitch, fps: fps, motionScale: motionScale, fluoro: f,
                                           distractors: distractors, noiseSeed: noiseSeed)
        s.name = String(format: "%@-%02d-", split.rawValue, index) + s.tags.joined(separator: "-")
        return s
    }

    /// The distractor vessels in patient mm, placed along `path` (the catheter's centerline
    /// over the sequence, proximal → distal): each point is x, y, z (mm) and radius (mm).
    public func distractorVessels(along path: [Vec3]) -> [VesselDescription] {
        guard path.count >= 2 else { return [] }
        return distractors.enumerated().map { k, d in
            let i = min(path.count - 1, max(0, Int(d.along * Double(path.count - 1))))
            let anchor = path[i] + Vec3(d.offset, 0, d.offset * 0.5)
            let az = d.angleDeg * .pi / 180, el = d.elevationDeg * .pi / 180
            // x left-right, z cranio-caudal (the image plane of an AP view), y along the beam.
            let dir = Vec3(cos(az) * cos(el), sin(el), sin(az) * cos(el))
            let start = d.ends ? anchor : anchor - dir * (d.length / 2)
            let steps = max(2, Int(d.length / 4))
            let pts = (0...steps).map { j -> [Double] in
                let p = start + dir * (d.length * Double(j) / Double(steps))
                return [p.x, p.y, p.z, d.radius]
            }
            return VesselDescription(name: "distractor-\(k)", parent: nil, points: pts)
        }
    }
}

extension FluoroRenderer {
    /// A MONOCHROME1 frame (dense is bright) as MONOCHROME2, the way a DICOM reader honours
    /// Photometric Interpretation: each value v becomes `maximum` − v.
    public static func monochrome2(_ f: Frame, maximum: UInt16 = 4095) -> Frame {
        Frame(width: f.width, height: f.height, pixels: f.pixels.map { $0 >= maximum ? 0 : maximum - $0 }, acquiredAt: f.acquiredAt,
              pixelPitchMM: f.pixelPitchMM)
    }
}
