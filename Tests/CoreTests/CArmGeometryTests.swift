import Foundation
import Testing
@testable import Core

@Suite struct CArmGeometryTests {
    let ap = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 1024, rows: 1024, pixelSpacing: 0.3)

    @Test func theIsocentreLandsOnTheDetectorCentre() {
        for g in [ap, CArmGeometry(primaryAngle: 0.6, secondaryAngle: -0.3, isocenter: Vec3(10, -5, 40))] {
            let p = g.project(g.isocenter)
            #expect(abs(p.u - 511.5) < 1e-9 && abs(p.v - 511.5) < 1e-9)
            #expect(abs(p.depth - g.sourceToIsocenter) < 1e-9)
        }
    }

    @Test func theFrontalViewShowsThePatientsLeftOnTheRightAndTheHeadUp() {
        let left = ap.project(Vec3(10, 0, 0)), head = ap.project(Vec3(0, 0, 10))
        // 10 mm at the isocentre, magnified 1020/700, at 0.3 mm pixels.
        #expect(abs(left.u - (511.5 + 10 * 1020 / 700 / 0.3)) < 1e-9)
        #expect(abs(left.v - 511.5) < 1e-9)
        #expect(head.v < 511.5)
        // The source sits posterior: posterior points are nearer the source and magnified more.
        let posterior = ap.project(Vec3(10, 50, 0))
        #expect(posterior.depth < left.depth)
        #expect(posterior.u > left.u)
    }

    @Test func lao90LooksAlongThePatientsLeftRightAxis() {
        let lao = CArmGeometry(primaryAngle: .pi / 2)
        #expect((lao.beam - Vec3(1, 0, 0)).length < 1e-12)
        // A point to the patient's left is deeper (nearer the detector), not sideways.
        let p = lao.project(Vec3(30, 0, 0))
        #expect(abs(p.u - 511.5) < 1e-9)
        #expect(abs(p.depth - (700 + 30)) < 1e-9)
        let cranial = CArmGeometry(secondaryAngle: .pi / 6)
        #expect(cranial.beam.z > 0.49 && cranial.beam.z < 0.51, "a cranial tilt sends the beam toward the head")
    }

    @Test func theMatrixAndTheBackProjectedRayAgreeWithTheProjection() {
        let g = CArmGeometry(primaryAngle: -0.5, secondaryAngle: 0.25, isocenter: Vec3(3, 4, 5))
        let m = g.projectionMatrix
        var rng = SplitMix64(seed: 3)
        for _ in 0..<200 {
            let p = Vec3(rng.uniform(-100, 100), rng.uniform(-100, 100), rng.uniform(-100, 100))
            let a = g.project(p)
            let w = m[8] * p.x + m[9] * p.y + m[10] * p.z + m[11]
            let u = (m[0] * p.x + m[1] * p.y + m[2] * p.z + m[3]) / w
            let v = (m[4] * p.x + m[5] * p.y + m[6] * p.z + m[7]) / w
            #expect(abs(u - a.u) < 1e-8 && abs(v - a.v) < 1e-8)
            #expect(abs(w - a.depth) < 1e-8)
            // The ray through the pixel passes through the point.
            let r = g.ray(u: a.u, v: a.v)
            let along = (p - r.origin).dot(r.direction)
            #expect(((r.origin + r.direction * along) - p).length < 1e-8)
        }
    }

    @Test func filesUseDegreesAndEveryProblemIsNamed() throws {
        let yaml = """
        source_to_detector_mm: 1020
        source_to_isocenter_mm: 750
        columns: 1024
        rows: 1024
        pixel_spacing_mm: 0.3
        primary_angle_deg: 30
        secondary_angle_deg: -20
        isocenter_mm: [0, 0, 10]
        """
        let g = try ConfigLoader.decode(CArmGeometry.self, yaml: yaml, file: "carm.yaml")
        #expect(abs(g.primaryAngle - .pi / 6) < 1e-12)
        #expect(g.isocenter == Vec3(0, 0, 10))
        let bad = yaml.replacingOccurrences(of: "750", with: "1100").replacingOccurrences(of: "0.3", with: "-1")
        do {
            _ = try ConfigLoader.decode(CArmGeometry.self, yaml: bad, file: "carm.yaml")
            Issue.record("accepted a source beyond the detector")
        } catch {
            guard case .invalid(_, let problems) = error else { Issue.record("\(error)"); return }
            #expect(Set(problems.map(\.field)) == ["source_to_isocenter_mm", "pixel_spacing_mm"])
        }
        // Round trip through JSON keeps degrees in the file.
        let data = try JSONEncoder().encode(g)
        #expect(try ConfigLoader.decode(CArmGeometry.self, json: data, file: "carm.json") == g)
    }
}
