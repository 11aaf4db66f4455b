import Core
import Foundation
import Testing
@testable import Sim

@Suite struct VesselTreeTests {
    func problems(_ d: VesselTreeDescription) -> [ConfigProblem] {
        var v = ConfigValidator()
        d.validate(into: &v)
        return v.problems
    }

    @Test(arguments: Phantoms.names)
    func builtInPhantomsAreValidWithRealisticRadii(name: String) throws {
        let d = try #require(Phantoms.named(name))
        #expect(problems(d).isEmpty, "\(problems(d))")
        let radii = d.vessels.flatMap { $0.points.map { $0[3] } }
        // From hepatic segmental arteries (about 2 mm across) to the ascending aorta (about 30 mm).
        #expect(radii.min()! >= 0.9 && radii.max()! <= 16)
        let tree = VesselTree(d)
        for v in 0..<tree.vesselNames.count { #expect(tree.length(ofVessel: v) >= 15) }
    }

    @Test func theArchHasItsThreeSupraAorticBranches() throws {
        let tree = VesselTree(Phantoms.aorticArch())
        for name in ["aorta", "brachiocephalic", "left_common_carotid", "left_subclavian", "right_subclavian", "right_common_carotid"] {
            #expect(tree.vessel(named: name) != nil, "missing \(name)")
        }
        // Every centerline point lies inside the lumen, and the branches open out of the aorta.
        for i in 0..<tree.segmentCount { #expect(tree.contains(tree.segmentStart[i])) }
        let aortaLength = tree.length(ofVessel: tree.vessel(named: "aorta")!)
        #expect(aortaLength > 300 && aortaLength < 400)
    }

    @Test func straightTubeDistancesAreTheClosedForm() {
        let tree = VesselTree(Phantoms.straightTube())
        for (x, y, z) in [(0.0, 0.0, 150.0), (2.0, 1.0, 40.0), (3.9, 0.0, 200.0), (10.0, -3.0, 120.0), (-30.0, 0.0, 90.0)] {
            let n = tree.nearest(Vec3(x, y, z))
            let expected = (x * x + y * y).squareRoot() - 4
            #expect(abs(n.signedDistance - expected) < 1e-9)
            #expect(abs(n.centerline.z - z) < 1e-9)
        }
        #expect(tree.contains(Vec3(0, 3.99, 10)))
        #expect(!tree.contains(Vec3(0, 4.01, 10)))
        #expect(tree.contains(Vec3(0, 6.99, 10), within: 3))
        #expect(!tree.contains(Vec3(0, 7.01, 10), within: 3))
        #expect(!tree.contains(Vec3(.nan, 0, 10), within: 3))
    }

    @Test(arguments: Phantoms.names)
    func theIndexAgreesWithBruteForce(name: String) throws {
        let tree = VesselTree(try #require(Phantoms.named(name)))
        let lo = tree.segmentStart.reduce(Vec3(repeating: .infinity)) { Vec3(min($0.x, $1.x), min($0.y, $1.y), min($0.z, $1.z)) } - Vec3(30, 30, 30)
        let hi = tree.segmentStart.reduce(Vec3(repeating: -.infinity)) { Vec3(max($0.x, $1.x), max($0.y, $1.y), max($0.z, $1.z)) } + Vec3(30, 30, 30)
        var rng = SplitMix64(seed: 31)
        for _ in 0..<3000 {
            let p = Vec3(rng.uniform(lo.x, hi.x), rng.uniform(lo.y, hi.y), rng.uniform(lo.z, hi.z))
            let a = tree.nearest(p), b = tree.nearestBruteForce(p)
            #expect(abs(a.signedDistance - b.signedDistance) < 1e-9)
        }
    }

    @Test func treesLoadFromJSONWithEveryProblemNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-vessels-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let arch = Phantoms.aorticArch()
        let json: [String: Any] = ["name": arch.name, "vessels": arch.vessels.map { v -> [String: Any] in
            var o: [String: Any] = ["name": v.name, "points": v.points]
            if let p = v.parent { o["parent"] = p }
            return o
        }]
        let file = dir.appendingPathComponent("arch.json").path
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: file))
        let loaded = try ConfigLoader.load(VesselTreeDescription.self, from: file)
        // The file gives the vessels alone: notes, sources and targets are optional.
        #expect(loaded.name == arch.name && loaded.vessels == arch.vessels && loaded.targets.isEmpty && loaded.sheath == .rootEnd)

        let bad = VesselTreeDescription(name: "bad", vessels: [
            VesselDescription(name: "root", parent: nil, points: [[0, 0, 0, 5], [0, 0, 50, 5]]),
            VesselDescription(name: "far", parent: "root", points: [[40, 0, 10, 2], [60, 0, 10, 2]]),
            VesselDescription(name: "orphan", parent: "nowhere", points: [[0, 0, 0, 2], [1, 0, 0, 2]]),
            VesselDescription(name: "thin", parent: "root", points: [[0, 0, 5, 0.1], [0, 5, 5, 2]]),
            VesselDescription(name: "short", parent: "root", points: [[0, 0, 5, 2]]),
            VesselDescription(name: "root", parent: "root", points: [[0, 0, 5, 2], [0, 0, 5, 2]]),
        ])
        let fields = Set(problems(bad).map(\.field))
        #expect(fields == ["vessels[1].points[0]", "vessels[2].parent", "vessels[3].points[0][3]", "vessels[4].points", "vessels[5].name", "vessels[5].points[1]"])
    }
}

@Suite("Vessel routes")
struct VesselRouteTests {
    @Test("A route into a branch gives each point the room around it: the parent's lumen where the branch starts inside it")
    func routeRadii() throws {
        let tree = Phantoms.aorticArch()
        let route = try tree.routeWithRadii(toVessel: "left_subclavian", depth: 30)
        let branch = tree.vessels.first { $0.name == "left_subclavian" }!
        let origin = Vec3(branch.points[0][0], branch.points[0][1], branch.points[0][2])
        // The branch's first point lies on the aorta's axis: the room there is the aorta's (11 mm),
        // not the branch's own 5 mm.
        let first = route.min { ($0.point - origin).length < ($1.point - origin).length }!
        #expect(first.radius > 10, "radius at the branch's origin: \(first.radius) mm")
        // Deep in the branch it is the branch's own.
        #expect(abs(route.last!.radius - 5) < 0.6, "radius at the end: \(route.last!.radius) mm")
        // Never less than the own radius of the vessel a point belongs to.
        #expect(route.allSatisfy { $0.radius >= 4.5 })
        #expect(throws: VesselRouteError.unknownVessel("nowhere")) { try tree.routeWithRadii(toVessel: "nowhere", depth: 10) }
    }
}
