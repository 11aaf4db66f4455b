import Core
import Foundation
import Testing
@testable import Imaging

@Suite struct ImagingGeometryTests {
    let planeA = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 1024, rows: 1024, pixelSpacing: 0.3,
                              primaryAngle: 0.35, secondaryAngle: 0.2, isocenter: Vec3(5, -10, 20))
    let planeB = CArmGeometry(sourceToDetector: 1100, sourceToIsocenter: 750, columns: 1024, rows: 1024, pixelSpacing: 0.3,
                              primaryAngle: -1.4, secondaryAngle: -0.1, isocenter: Vec3(5, -10, 20))

    func cubePoints(_ n: Int, around c: Vec3, half: Double, rng: inout SplitMix64) -> [Vec3] {
        (0..<n).map { _ in c + Vec3(rng.uniform(-half, half), rng.uniform(-half, half), rng.uniform(-half, half)) }
    }

    /// P scaled to unit third-row direction and positive depth, for comparing matrices.
    func normalised(_ m: ProjectionMatrix) -> [Double] {
        let n = Vec3(m.row2.x, m.row2.y, m.row2.z).length
        return m.rowMajor.map { $0 / n }
    }

    @Test func theMatrixAgreesWithTheCArmAndDecomposesIntoItsParameters() throws {
        let m = ProjectionMatrix(planeA)
        var rng = SplitMix64(seed: 1)
        for p in cubePoints(100, around: planeA.isocenter, half: 100, rng: &rng) {
            let a = planeA.project(p), b = m.project(p)
            #expect(abs(a.u - b.u) < 1e-9 && abs(a.v - b.v) < 1e-9 && abs(a.depth - b.w) < 1e-9)
            let r = try #require(m.ray(u: a.u, v: a.v))
            let along = (p - r.origin).dot(r.direction)
            #expect(along > 0 && ((r.origin + r.direction * along) - p).length < 1e-8)
            // The Jacobian is the derivative of the projection, and blind along the ray.
            let j = m.jacobian(at: p), h = 1e-4
            let dx = m.project(p + Vec3(h, 0, 0))
            #expect(abs((dx.u - b.u) / h - j.du.x) < 1e-4 && abs((dx.v - b.v) / h - j.dv.x) < 1e-4)
            #expect(abs(j.du.dot(r.direction)) < 1e-9 && abs(j.dv.dot(r.direction)) < 1e-9)
        }
        let d = try #require(m.decompose())
        #expect(abs(d.focalU - 1020 / 0.3) < 1e-6 && abs(d.focalV - 1020 / 0.3) < 1e-6 && abs(d.skew) < 1e-6)
        #expect(abs(d.principalU - 511.5) < 1e-6 && abs(d.principalV - 511.5) < 1e-6)
        #expect((d.centre - planeA.source).length < 1e-6)
        let expected = Mat3(rows: planeA.columnAxis, planeA.rowAxis, planeA.beam)
        #expect(d.rotation.maxAbsDifference(expected) < 1e-9)
        #expect(d.rotation.determinant < 0, "a C-arm image seen from the front is mirrored")
        #expect(ProjectionMatrix(rowMajor: [1, 2, 3]) == nil)
        #expect(ProjectionMatrix(rowMajor: [Double](repeating: .nan, count: 12)) == nil)
    }

    @Test func dltRecoversTheCArmMatrixFromExactPoints() throws {
        var rng = SplitMix64(seed: 2)
        let points = cubePoints(12, around: planeA.isocenter, half: 80, rng: &rng)
        let pixels = points.map { p in let q = planeA.project(p); return SIMD2(q.u, q.v) }
        let c = try ProjectionCalibration.calibrate(points: points, pixels: pixels)
        #expect(c.rms < 1e-6 && c.linearRMS < 1e-6)
        let truth = normalised(ProjectionMatrix(planeA)), got = normalised(c.matrix)
        for (a, b) in zip(truth, got) { #expect(abs(a - b) <= 1e-7 * max(1, abs(a))) }
    }

    @Test func dltWithRefinementFitsNoisyPointsToTheNoiseLevel() throws {
        let sigma = 0.5
        var rng = SplitMix64(seed: 3)
        let points = cubePoints(60, around: planeA.isocenter, half: 80, rng: &rng)
        let pixels = points.map { p in let q = planeA.project(p); return SIMD2(q.u + sigma * rng.gaussian(), q.v + sigma * rng.gaussian()) }
        let c = try ProjectionCalibration.calibrate(points: points, pixels: pixels)
        // Residual RMS per point of a least-squares fit with 11 parameters on 120 numbers:
        // σ·√2·√((120 − 11)/120).
        let expected = sigma * 2.0.squareRoot() * (109.0 / 120).squareRoot()
        #expect(c.rms > 0.8 * expected && c.rms < 1.2 * expected, "rms \(c.rms), expected ≈ \(expected)")
        #expect(c.rms <= c.linearRMS + 1e-12, "refinement never makes the fit worse")
        // New points project within a fraction of a pixel of the true matrix.
        var worst = 0.0
        for p in cubePoints(200, around: planeA.isocenter, half: 60, rng: &rng) {
            let a = planeA.project(p), b = c.matrix.project(p)
            worst = max(worst, ((a.u - b.u) * (a.u - b.u) + (a.v - b.v) * (a.v - b.v)).squareRoot())
        }
        #expect(worst < 1.0, "worst reprojection difference \(worst) px")
        let d = try #require(c.matrix.decompose())
        #expect(abs(d.focalU / (1020 / 0.3) - 1) < 0.02)
        #expect((d.centre - planeA.source).length < 20, "source within 20 mm of \(planeA.source): \(d.centre)")
    }

    @Test func degenerateCalibrationsAreTypedErrors() {
        var rng = SplitMix64(seed: 4)
        let coplanar = (0..<20).map { _ in Vec3(rng.uniform(-50, 50), rng.uniform(-50, 50), 10) }
        let px = coplanar.map { p in let q = planeA.project(p); return SIMD2(q.u, q.v) }
        #expect(throws: GeometryError.self) { try ProjectionCalibration.calibrate(points: coplanar, pixels: px) }
        #expect(throws: GeometryError.tooFew(needed: 6, got: 5)) {
            try ProjectionCalibration.calibrate(points: Array(coplanar.prefix(5)), pixels: Array(px.prefix(5)))
        }
        var bad = px
        bad[3].x = .nan
        let cube = cubePoints(20, around: .zero, half: 50, rng: &rng)
        #expect(throws: GeometryError.notFinite("calibration points or pixels")) { try ProjectionCalibration.calibrate(points: cube, pixels: bad) }
        #expect(throws: GeometryError.self) { try ProjectionCalibration.calibrate(points: cube, pixels: Array(px.prefix(19))) }
    }

    @Test func biplaneTriangulationIsAccurateAndItsCovarianceHonest() throws {
        let a = ProjectionMatrix(planeA), b = ProjectionMatrix(planeB)
        let sigma = 0.5
        var rng = SplitMix64(seed: 5)
        var errors: [Double] = []
        var nees = 0.0
        let trials = 400
        for _ in 0..<trials {
            let truth = planeA.isocenter + Vec3(rng.uniform(-60, 60), rng.uniform(-60, 60), rng.uniform(-60, 60))
            let pa = a.project(truth), pb = b.project(truth)
            let views = [
                PixelObservation(matrix: a, pixel: SIMD2(pa.u + sigma * rng.gaussian(), pa.v + sigma * rng.gaussian()), covariance: .isotropic(sigma)),
                PixelObservation(matrix: b, pixel: SIMD2(pb.u + sigma * rng.gaussian(), pb.v + sigma * rng.gaussian()), covariance: .isotropic(sigma)),
            ]
            let est = try Triangulation.triangulate(views)
            let e = est.position - truth
            errors.append(e.length)
            nees += e.dot(try #require(est.covariance.inverse) * e)
        }
        let mean = errors.reduce(0, +) / Double(trials)
        // 0.5 px at ~0.2 mm/px at the isocentre: errors of a few tenths of a millimetre.
        #expect(mean < 0.5, "mean 3D error \(mean) mm")
        // The normalised estimation error squared averages 3 (χ², 3 dof) when the covariance is right.
        #expect(abs(nees / Double(trials) - 3) < 0.5, "NEES \(nees / Double(trials))")
        // Noise-free views meet exactly.
        let p = Vec3(12, 30, -15)
        let exact = try Triangulation.triangulate([PixelObservation(matrix: a, pixel: SIMD2(a.project(p).u, a.project(p).v)),
                                                   PixelObservation(matrix: b, pixel: SIMD2(b.project(p).u, b.project(p).v))])
        #expect((exact.position - p).length < 1e-8 && exact.rms < 1e-8)
    }

    @Test func triangulationRejectsWhatItCannotSolve() {
        let a = ProjectionMatrix(planeA)
        let one = [PixelObservation(matrix: a, pixel: SIMD2(500, 500))]
        #expect(throws: GeometryError.tooFew(needed: 2, got: 1)) { try Triangulation.triangulate(one) }
        // The same view twice: parallel rays.
        #expect(throws: GeometryError.self) { try Triangulation.triangulate(one + one) }
        let nan = PixelObservation(matrix: a, pixel: SIMD2(.nan, 3))
        #expect(throws: GeometryError.self) { try Triangulation.triangulate(one + [nan]) }
    }

    @Test func rayPlusPriorIsTightAcrossTheRayAndPriorSizedAlongIt() throws {
        let m = ProjectionMatrix(planeA)
        let truth = planeA.isocenter + Vec3(10, -20, 15)
        let q = m.project(truth)
        let sigmaPx = 1.0, sigmaPrior = 5.0
        let prior = truth + Vec3(3, -2, 4)
        let obs = PixelObservation(matrix: m, pixel: SIMD2(q.u, q.v), covariance: .isotropic(sigmaPx))
        let est = try #require(RayPriorFusion.fuse(obs, priorMean: prior, priorCovariance: Mat3.identity * (sigmaPrior * sigmaPrior)))
        // The estimate projects onto the measured pixel.
        let back = m.project(est.position)
        #expect(abs(back.u - q.u) < 0.05 && abs(back.v - q.v) < 0.05)
        // Along the ray: the prior's variance; across it: the pixel footprint at that depth.
        let ray = try #require(m.ray(u: q.u, v: q.v))
        let d = ray.direction
        let across1 = d.cross(Vec3(0, 0, 1)) * (1 / d.cross(Vec3(0, 0, 1)).length), across2 = d.cross(across1)
        let along = d.dot(est.covariance * d)
        let footprint = sigmaPx * 0.3 * back.w / 1020
        #expect(abs(along / (sigmaPrior * sigmaPrior) - 1) < 0.05, "along-ray variance \(along)")
        for e in [across1, across2] {
            let v = e.dot(est.covariance * e)
            #expect(v < 1.2 * footprint * footprint && v > 0.8 * footprint * footprint, "across-ray variance \(v), footprint² \(footprint * footprint)")
        }
        // Depth along the ray comes from the prior.
        #expect(abs((est.position - ray.origin).dot(d) - (prior - ray.origin).dot(d)) < 0.1)
        // The covariance is symmetric positive definite.
        #expect(est.covariance.maxAbsDifference(est.covariance.transposed) < 1e-12)
        #expect(est.covariance.determinant > 0)
        // A prior behind the source has no answer.
        #expect(RayPriorFusion.fuse(obs, priorMean: planeA.source - planeA.beam * 100, priorCovariance: .identity) == nil)
    }

    @Test func rayPlusPriorIsConsistentOverNoise() throws {
        // Monte Carlo: prior drawn around the truth with its covariance, pixels with theirs;
        // the posterior's NEES averages 3.
        let m = ProjectionMatrix(planeB)
        var rng = SplitMix64(seed: 8)
        let sigmaPx = 0.8
        let priorCov = Mat3(rows: Vec3(16, 2, 0), Vec3(2, 9, 1), Vec3(0, 1, 25))
        // A square root of priorCov by Cholesky, for drawing prior offsets.
        let l00 = 4.0, l10 = 0.5, l11 = (9 - 0.25).squareRoot(), l20 = 0.0, l21 = 1 / l11, l22 = (25 - l21 * l21).squareRoot()
        var nees = 0.0
        let trials = 500
        for _ in 0..<trials {
            let truth = planeB.isocenter + Vec3(rng.uniform(-40, 40), rng.uniform(-40, 40), rng.uniform(-40, 40))
            let z = Vec3(rng.gaussian(), rng.gaussian(), rng.gaussian())
            let prior = truth + Vec3(l00 * z.x, l10 * z.x + l11 * z.y, l20 * z.x + l21 * z.y + l22 * z.z)
            let q = m.project(truth)
            let obs = PixelObservation(matrix: m, pixel: SIMD2(q.u + sigmaPx * rng.gaussian(), q.v + sigmaPx * rng.gaussian()),
                                       covariance: .isotropic(sigmaPx))
            let est = try #require(RayPriorFusion.fuse(obs, priorMean: prior, priorCovariance: priorCov))
            let e = est.position - truth
            nees += e.dot(try #require(est.covariance.inverse) * e)
        }
        #expect(abs(nees / Double(trials) - 3) < 0.45, "NEES \(nees / Double(trials))")
    }

    @Test func measurementsCarryTheEstimate() throws {
        let m = ProjectionMatrix(planeA)
        let obs = PixelObservation(matrix: m, pixel: SIMD2(500, 520), covariance: SymMat2(xx: 1, xy: 0.2, yy: 2))
        let est = try #require(RayPriorFusion.fuse(obs, priorMean: planeA.isocenter, priorCovariance: .identity * 9))
        let tip = TipMeasurement(acquiredAt: 123, pixel: obs.pixel, pixelCovariance: obs.covariance, position: est.position,
                                 positionCovariance: est.covariance, confidence: 0.9)
        #expect(tip.pixel == SIMD2(500, 520) && tip.position == est.position && tip.acquiredAt == 123)
        #expect(SymMat2(xx: 1, xy: 1, yy: 1).inverse() == nil)
        let inv = try #require(obs.covariance.inverse())
        #expect(abs(inv.xx * 1 + inv.xy * 0.2 - 1) < 1e-12 && abs(inv.xx * 0.2 + inv.xy * 2) < 1e-12)
    }
}
