import CEigen
import Core

/// Why a calibration or a 3D reconstruction failed.
public enum GeometryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer points or views than the method needs.
    case tooFew(needed: Int, got: Int)
    /// NaN or infinity in the input.
    case notFinite(String)
    /// The configuration does not determine the answer (coplanar points, parallel rays…).
    case degenerate(String)
    /// The point lies at or behind a projection centre.
    case behindSource(view: Int)

    public var description: String {
        switch self {
        case .tooFew(let n, let got): "needs at least \(n), got \(got)"
        case .notFinite(let what): "not finite: \(what)"
        case .degenerate(let why): "degenerate: \(why)"
        case .behindSource(let v): "the point lies behind the source of view \(v)"
        }
    }
}

/// A projection matrix estimated from known 3D–2D point pairs.
public struct ProjectionCalibration: Equatable, Sendable {
    public var matrix: ProjectionMatrix
    /// px — RMS reprojection error (per point, over u and v together) of the refined matrix.
    public var rms: Double
    /// px — the same for the linear (DLT) matrix, before refinement.
    public var linearRMS: Double
    /// Levenberg–Marquardt iterations used.
    public var iterations: Int

    /// Calibrates from ≥ 6 pairs of non-coplanar `points` (mm) and their `pixels` (u, v): the
    /// normalised DLT, then Levenberg–Marquardt on the reprojection error (Eigen).
    public static func calibrate(points: [Vec3], pixels: [SIMD2<Double>], maxIterations: Int = 100) throws(GeometryError) -> ProjectionCalibration {
        guard points.count == pixels.count else { throw .degenerate("\(points.count) points but \(pixels.count) pixels") }
        guard points.count >= 6 else { throw .tooFew(needed: 6, got: points.count) }
        let xyz = points.flatMap { [$0.x, $0.y, $0.z] }
        let uv = pixels.flatMap { [$0.x, $0.y] }
        var p = [Double](repeating: 0, count: 12)
        var linear = 0.0, rms = 0.0
        var iterations: Int32 = 0
        let rc = lumen_eigen_calibrate_projection(xyz, uv, Int32(points.count), Int32(maxIterations), &p, &linear, &rms, &iterations)
        switch Int(rc) {
        case Int(LUMEN_EIGEN_OK): break
        case Int(LUMEN_EIGEN_NOT_FINITE): throw .notFinite("calibration points or pixels")
        case Int(LUMEN_EIGEN_BAD_SHAPE): throw .tooFew(needed: 6, got: points.count)
        default: throw .degenerate("the points do not determine a projection (coplanar, collinear or repeated)")
        }
        guard let m = ProjectionMatrix(rowMajor: p) else { throw .degenerate("the solution is not finite") }
        return ProjectionCalibration(matrix: m, rms: rms, linearRMS: linear, iterations: Int(iterations))
    }
}
