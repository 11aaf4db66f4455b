/// A symmetric 2 × 2 matrix: pixel covariances (px²).
public struct SymMat2: Equatable, Sendable {
    public var xx: Double
    public var xy: Double
    public var yy: Double

    @inlinable public init(xx: Double, xy: Double = 0, yy: Double) {
        self.xx = xx; self.xy = xy; self.yy = yy
    }

    /// σ² · I.
    @inlinable public static func isotropic(_ sigma: Double) -> SymMat2 { SymMat2(xx: sigma * sigma, yy: sigma * sigma) }
    @inlinable public static var zero: SymMat2 { @_noAllocation @_noLocks get { SymMat2(xx: 0, yy: 0) } }

    @inlinable public var determinant: Double { @_noAllocation @_noLocks get { xx * yy - xy * xy } }

    /// The inverse, or nil when singular (or not finite).
    @_noAllocation @_noLocks @inlinable public func inverse() -> SymMat2? {
        let d = determinant
        if !(abs(d) > 1e-300) { return nil }
        if !d.isFinite { return nil }
        return SymMat2(xx: yy / d, xy: -xy / d, yy: xx / d)
    }
}

/// Where the image says the catheter tip was, when it was acquired, and how sure that is.
///
/// An imaging thread produces it per frame (single plane: `pixel` and, with a prior, `position`;
/// biplane: both from triangulation); the estimator fuses it at `acquiredAt`, not at arrival.
/// Pixel (u, v) = (column, row), (0, 0) the centre of the top-left pixel; positions in mm, LPS.
public struct TipMeasurement: Equatable, Sendable {
    /// When the detector acquired the frame (monotonic ns).
    public var acquiredAt: Nanoseconds
    /// The imaging plane of `pixel`: 0 for a single plane or plane A, 1 for plane B.
    public var plane: UInt8
    /// The tip in the image (px), when measured in 2D.
    public var pixel: SIMD2<Double>?
    /// Covariance of `pixel` (px²).
    public var pixelCovariance: SymMat2
    /// The tip in the patient (mm, LPS), when known in 3D (biplane, or one plane plus a prior).
    public var position: Vec3?
    /// Covariance of `position` (mm²).
    public var positionCovariance: Mat3
    /// The detector's confidence that this is the tip, 0…1.
    public var confidence: Double

    @inlinable public init(acquiredAt: Nanoseconds, plane: UInt8 = 0, pixel: SIMD2<Double>? = nil, pixelCovariance: SymMat2 = .zero,
                           position: Vec3? = nil, positionCovariance: Mat3 = .zero, confidence: Double = 1) {
        self.acquiredAt = acquiredAt
        self.plane = plane
        self.pixel = pixel
        self.pixelCovariance = pixelCovariance
        self.position = position
        self.positionCovariance = positionCovariance
        self.confidence = confidence
    }
}
