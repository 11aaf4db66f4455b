import COpenCV

/// Why a frame could not be searched for the catheter. A frame without a catheter is not an
/// error (the detector returns nothing and the tracker reports `lost`).
public enum TrackingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The frame is smaller than the detector can work on.
    case frameTooSmall(width: Int, height: Int, minimum: Int)
    /// A setting is out of range or not a number.
    case badSetting(field: String, reason: String)
    /// The OpenCV bridge failed (message from OpenCV).
    case bridge(String)

    public var description: String {
        switch self {
        case .frameTooSmall(let w, let h, let m): "frame \(w) × \(h) is too small to track in (at least \(m) × \(m) pixels)"
        case .badSetting(let f, let r): "tracker setting \(f): \(r)"
        case .bridge(let m): "ridge filter failed: \(m)"
        }
    }
}

/// A rectangle of pixels: columns x ..< x + width, rows y ..< y + height.
public struct PixelRegion: Sendable, Equatable {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }

    /// The square of half-size `half` around (u, v), clipped to a `w` × `h` frame.
    public static func around(u: Double, v: Double, half: Double, in w: Int, _ h: Int) -> PixelRegion {
        let x0 = max(0, min(w - 1, Int((u - half).rounded(.down)))), y0 = max(0, min(h - 1, Int((v - half).rounded(.down))))
        let x1 = max(x0 + 1, min(w, Int((u + half).rounded(.up)) + 1)), y1 = max(y0 + 1, min(h, Int((v + half).rounded(.up)) + 1))
        return PixelRegion(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
    }

    /// Whether `other` lies wholly inside this region.
    public func contains(_ other: PixelRegion) -> Bool {
        other.x >= x && other.y >= y && other.x + other.width <= x + width && other.y + other.height <= y + height
    }

    /// Distance from (u, v) to the nearest edge of the region (negative outside).
    public func inset(u: Double, v: Double) -> Double {
        min(u - Double(x), Double(x + width - 1) - u, v - Double(y), Double(y + height - 1) - v)
    }
}

/// The ridge filter's settings (see lumen_cv_track.h). Defaults cover catheters about 2–10 px wide.
public struct RidgeSettings: Sendable, Equatable {
    /// Gaussian scales (full-resolution px).
    public var sigmaMin = 1.0, sigmaMax = 3.2
    public var scaleCount = 3
    /// Structures wider than this (px) are background.
    public var tophatPx = 17.0
    /// Suppression of one-sided edges (the borders of contrast-filled vessels).
    public var edgePenalty = 1.0
    /// Hysteresis thresholds in noise units of the response.
    public var highK = 8.0, lowK = 3.0
    /// Shorter chains are dropped.
    public var minPoints = 4
    /// Damp ridges that answer more strongly at twice the widest scale. Off by default: inside a
    /// contrast-filled aorta it also damps the catheter.
    public var wideScaleTest = false
    public init() {}

    func validate() throws(TrackingError) {
        func finite(_ v: Double, _ f: String, _ range: ClosedRange<Double>) throws(TrackingError) {
            guard v.isFinite, range.contains(v) else { throw .badSetting(field: f, reason: "must be a number in \(range), got \(v)") }
        }
        try finite(sigmaMin, "sigma_min", 0.3...16)
        try finite(sigmaMax, "sigma_max", sigmaMin...32)
        try finite(tophatPx, "tophat_px", 0...256)
        try finite(edgePenalty, "edge_penalty", 0...100)
        try finite(lowK, "low_k", -100...1000)
        try finite(highK, "high_k", lowK...1000)
        guard (1...8).contains(scaleCount) else { throw .badSetting(field: "scale_count", reason: "must be 1…8, got \(scaleCount)") }
        guard minPoints >= 2 else { throw .badSetting(field: "min_points", reason: "must be ≥ 2, got \(minPoints)") }
    }
}

/// One centerline point of a ridge: position (full-frame px), strength in noise units, scale
/// (px), unit normal across the ridge.
public struct RidgePoint: Sendable, Equatable {
    public var u: Double, v: Double
    public var response: Double
    public var sigma: Double
    public var nx: Double, ny: Double
}

/// A compact dense spot (a candidate tip marker): position (full-frame px), blob strength in
/// noise units, scale (px) and the attenuation above the local background there (log units).
public struct RidgeBlob: Sendable, Equatable {
    public var u: Double, v: Double
    public var strength: Double
    public var sigma: Double
    public var excess: Double
}

/// The traced dark thin ridges of one frame (or region): ordered chains of centerline points.
public final class RidgeExtractor {
    public private(set) var settings: RidgeSettings
    private var points: [lumen_track_point]
    private var starts: [Int32]
    private var blobs: [lumen_track_blob]
    /// The smallest frame side the filter works on.
    public static let minimumSide = 16

    public init(settings: RidgeSettings = RidgeSettings(), pointCapacity: Int = 200_000, chainCapacity: Int = 20_000) throws(TrackingError) {
        try settings.validate()
        self.settings = settings
        points = [lumen_track_point](repeating: lumen_track_point(), count: max(16, pointCapacity))
        starts = [Int32](repeating: 0, count: max(2, chainCapacity) + 1)
        blobs = [lumen_track_blob](repeating: lumen_track_blob(), count: 256)
    }

    /// Searches with other settings from now on (the same buffers); refused, keeping the old
    /// ones, when they are not valid.
    func retune(_ s: RidgeSettings) throws(TrackingError) {
        try s.validate()
        settings = s
    }

    func params(region: PixelRegion?, downsample: Int) -> lumen_track_params {
        var p = lumen_track_params()
        if let r = region {
            p.roi_x = Int32(r.x); p.roi_y = Int32(r.y); p.roi_width = Int32(r.width); p.roi_height = Int32(r.height)
        }
        p.downsample = Int32(downsample)
        p.sigma_min = Float(settings.sigmaMin); p.sigma_max = Float(settings.sigmaMax)
        p.scale_count = Int32(settings.scaleCount)
        p.tophat_px = Float(settings.tophatPx)
        p.edge_penalty = Float(settings.edgePenalty)
        p.high_k = Float(settings.highK); p.low_k = Float(settings.lowK)
        p.min_points = Int32(settings.minPoints)
        p.wide_test = settings.wideScaleTest ? 1 : 0
        return p
    }

    func checkSize(_ frame: Frame, region: PixelRegion?, downsample: Int) throws(TrackingError) {
        guard frame.width >= Self.minimumSide, frame.height >= Self.minimumSide else {
            throw .frameTooSmall(width: frame.width, height: frame.height, minimum: Self.minimumSide)
        }
        guard downsample == 1 || downsample == 2 else { throw .badSetting(field: "downsample", reason: "must be 1 or 2, got \(downsample)") }
    }

    /// The ridge chains in `region` (the whole frame when nil), searched on a `downsample`× smaller copy.
    public func chains(in frame: Frame, region: PixelRegion? = nil, downsample: Int = 1) throws(TrackingError) -> [[RidgePoint]] {
        try features(in: frame, region: region, downsample: downsample, withBlobs: false).chains
    }

    /// The ridge chains and the compact dense spots (strongest first) of `region`, from one pass of the filter.
    public func features(in frame: Frame, region: PixelRegion? = nil, downsample: Int = 1,
                         withBlobs: Bool = true) throws(TrackingError) -> (chains: [[RidgePoint]], blobs: [RidgeBlob]) {
        try checkSize(frame, region: region, downsample: downsample)
        var p = params(region: region, downsample: downsample)
        var np: Int32 = 0, nc: Int32 = 0, truncated: Int32 = 0, nb: Int32 = 0
        var noise: Float = 0
        var err = [CChar](repeating: 0, count: 256)
        let pointCapacity = Int32(points.count), chainCapacity = Int32(starts.count - 1)
        let blobCapacity = withBlobs ? Int32(blobs.count) : 0
        let rc = frame.pixels.withUnsafeBufferPointer { px in
            points.withUnsafeMutableBufferPointer { pts in
                starts.withUnsafeMutableBufferPointer { st in
                    blobs.withUnsafeMutableBufferPointer { bl in
                        lumen_track_features(px.baseAddress, Int32(frame.width), Int32(frame.height), &p, pts.baseAddress, pointCapacity, &np,
                                             st.baseAddress, chainCapacity, &nc, &truncated, bl.baseAddress, blobCapacity, &nb,
                                             &noise, &err, Int32(err.count))
                    }
                }
            }
        }
        if rc == Int32(LUMEN_CV_ARGUMENT), region != nil { return ([], []) }  // a region clipped to (almost) nothing
        guard rc == Int32(LUMEN_CV_OK) else { throw .bridge(Self.message(err)) }
        let found = (0..<Int(max(0, nb))).map { i in
            let b = blobs[i]
            return RidgeBlob(u: Double(b.u), v: Double(b.v), strength: Double(b.strength), sigma: Double(b.sigma), excess: Double(b.excess))
        }
        var out: [[RidgePoint]] = []
        out.reserveCapacity(Int(nc))
        for k in 0..<Int(nc) {
            let a = Int(starts[k]), b = Int(starts[k + 1])
            out.append((a..<b).map { i in
                let q = points[i]
                return RidgePoint(u: Double(q.u), v: Double(q.v), response: Double(q.response), sigma: Double(q.sigma), nx: Double(q.nx), ny: Double(q.ny))
            })
        }
        return (out, found)
    }

    /// The ridge response (noise units) of every pixel, zero outside `region`: for figures.
    public func responseMap(of frame: Frame, region: PixelRegion? = nil, downsample: Int = 1) throws(TrackingError) -> [Float] {
        try checkSize(frame, region: region, downsample: downsample)
        var p = params(region: region, downsample: downsample)
        var out = [Float](repeating: 0, count: frame.width * frame.height)
        var err = [CChar](repeating: 0, count: 256)
        let rc = frame.pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { o in
                lumen_track_response_map(px.baseAddress, Int32(frame.width), Int32(frame.height), &p, o.baseAddress, &err, Int32(err.count))
            }
        }
        guard rc == Int32(LUMEN_CV_OK) else { throw .bridge(Self.message(err)) }
        return out
    }

    /// OpenCV's worker threads for all later filtering (1 = one core).
    public static func setThreads(_ n: Int) { lumen_track_set_threads(Int32(n)) }

    static func message(_ err: [CChar]) -> String {
        String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
