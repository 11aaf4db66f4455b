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

    /// The corners (degrees) along a route, leaving out the straight runs.
    static func corners(_ route: [Vec3]) -> [Double] {
        zip(zip(route, route.dropFirst()), route.dropFirst(2)).compactMap { pair, c -> Double? in
            let u = pair.1 - pair.0, v = c - pair.1
            let angle = acos(max(-1, min(1, u.dot(v) / (u.length * v.length)))) * 180 / .pi
            return angle > 1e-3 ? angle : nil
        }
    }

    /// A trunk listed every 10 mm and entered from its far end (z = 60); a side branch leaving it
    /// at z = 24, 6 mm past a listed point, at right angles; a twig off the side branch's last
    /// point. The route leaves the trunk where the branch does, not at the nearest listed point
    /// (which bends the take-off back by tens of degrees), and no point comes twice.
    @Test func aBranchLeavesItsParentWhereItStartsNotAtTheNearestListedPoint() throws {
        let tree = VesselTreeDescription(name: "tee", vessels: [
            VesselDescription(name: "trunk", parent: nil, points: (0...6).map { [0, 0, Double($0) * 10, 8] }),
            VesselDescription(name: "side", parent: "trunk", points: (0...4).map { [Double($0) * 5, 0, 24, 3] }),
            VesselDescription(name: "twig", parent: "side", points: (0...3).map { [20, Double($0) * 5, 24, 2] }),
        ])
        let route = try tree.route(toVessel: "twig", depth: 10)
        #expect(route.first == Vec3(0, 0, 60))
        #expect(route.contains(Vec3(0, 0, 30)) && !route.contains(Vec3(0, 0, 20)), "\(route)")
        for (a, b) in zip(route, route.dropFirst()) { #expect((b - a).length > 1e-6, "a point twice in \(route)") }
        let corners = Self.corners(route)
        #expect(corners.count == 2 && corners.allSatisfy { abs($0 - 90) < 1e-6 }, "corners \(corners)")
        #expect(route.last == Vec3(20, 10, 24))
    }

    /// A branch drawn from the parent's wall, 4 mm off its axis, slanting back towards the
    /// sheath at 53°: the route meets it where its first segment, run back, meets the axis, and
    /// takes off at the branch's own angle, not square to the parent.
    @Test func aBranchFromTheWallTakesOffAtItsOwnAngle() throws {
        let d = Vec3(0.8, 0, -0.6), junction = Vec3(0, 0, 24)
        let tree = VesselTreeDescription(name: "slant", vessels: [
            VesselDescription(name: "trunk", parent: nil, points: (0...6).map { [0, 0, Double($0) * 10, 8] }),
            VesselDescription(name: "slant", parent: "trunk", points: (1...5).map { k -> [Double] in
                let p = junction + d * (5 * Double(k))
                return [p.x, p.y, p.z, 3]
            }),
        ])
        let route = try tree.route(toVessel: "slant", depth: 15)
        #expect(route.contains { ($0 - junction).length < 1e-9 }, "\(route)")
        let corners = Self.corners(route)
        #expect(corners.count == 1 && abs(corners[0] - acos(0.6) * 180 / .pi) < 1e-6, "corners \(corners)")
        // A branch that curls away, so that its first segment run back misses the axis, joins at
        // the foot of the perpendicular instead.
        let curled = VesselTreeDescription(name: "curl", vessels: [
            tree.vessels[0],
            VesselDescription(name: "curl", parent: "trunk", points: [[4, 0, 26, 3], [4, 5, 26, 3], [4, 10, 26, 3]]),
        ])
        #expect(try curled.route(toVessel: "curl", depth: 5).contains(Vec3(0, 0, 26)))
    }
}
