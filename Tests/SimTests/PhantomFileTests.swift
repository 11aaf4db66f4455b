import Core
import Foundation
import Testing
@testable import Sim

/// The anatomical phantoms are data files: they load through the configuration loader with its
/// checks, cite their sources, and every navigation target lies on a route the catheter can take.
@Suite struct PhantomFileTests {
    func problems(_ d: VesselTreeDescription) -> [ConfigProblem] { VesselTreeTests().problems(d) }

    @Test(arguments: Phantoms.names)
    func everyPhantomLoadsAndValidates(name: String) throws {
        let d = try Phantoms.load(name)
        #expect(d.name == name)
        #expect(problems(d).isEmpty, "\(problems(d))")
    }

    @Test(arguments: ["cerebral", "hepatic"])
    func theAnatomicalPhantomsAreFilesThatCiteTheirSources(name: String) throws {
        let path = try #require(Phantoms.filePath(name))
        let loaded = try ConfigLoader.load(VesselTreeDescription.self, from: path)
        #expect(loaded == (try Phantoms.load(name)))
        #expect(loaded.sources.count >= 2)
        #expect(loaded.sources.allSatisfy { $0.contains(";") || $0.contains("ed.") }, "each source names its journal or edition")
        #expect(!loaded.notes.isEmpty)
    }

    @Test func theCerebralPhantomHasTheCarotidSiphonAndM1WithLiteratureRadii() throws {
        let d = try Phantoms.load("cerebral")
        func radii(_ vessel: String) throws -> [Double] { try #require(d.vessels.first { $0.name == vessel }).points.map { $0[3] } }
        // Krejza 2006: common carotid 6.1–6.5 mm across; Rai 2013: internal carotid about 5 → 3.5 mm, M1 2.5–3 mm.
        #expect(try radii("left_common_carotid").allSatisfy { (2.9...3.5).contains($0) })
        #expect(try radii("left_internal_carotid").allSatisfy { (1.6...2.7).contains($0) })
        #expect(try radii("left_mca_m1").allSatisfy { (1.2...1.55).contains($0) })
        // The siphon: the internal carotid turns forward (−y), then up and back (+y) — two genua
        // in the lateral view, so its direction along y changes sign at least twice.
        let ica = try #require(d.vessels.first { $0.name == "left_internal_carotid" }).points
        let dy = zip(ica, ica.dropFirst()).map { $1[1] - $0[1] }.filter { abs($0) > 0.3 }
        let turns = zip(dy, dy.dropFirst()).filter { $0 * $1 < 0 }.count
        #expect(turns >= 2, "direction changes along y: \(turns)")
    }

    @Test func theHepaticPhantomBranchesFromTheCeliacTrunkToSegmentalArteries() throws {
        let tree = VesselTree(try Phantoms.load("hepatic"))
        let chain = ["abdominal_aorta", "celiac_trunk", "common_hepatic", "proper_hepatic", "right_hepatic", "left_hepatic",
                     "right_anterior_segmental", "right_posterior_segmental", "segment4", "segment2_3"]
        for name in chain { #expect(tree.vessel(named: name) != nil, "missing \(name)") }
        for i in 0..<tree.segmentCount { #expect(tree.contains(tree.segmentStart[i])) }
    }

    /// A phantom file with a bad radius, a target past its vessel's end and a target in no vessel:
    /// refused, the problems named by file and field.
    @Test func aMalformedPhantomIsRefusedWithFileAndField() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-phantom-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = try #require(Phantoms.filePath("cerebral"))
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source))) as? [String: Any])
        var vessels = try #require(object["vessels"] as? [[String: Any]])
        var points = try #require(vessels[4]["points"] as? [[Double]])
        points[3][3] = 0
        vessels[4]["points"] = points
        object["vessels"] = vessels
        object["targets"] = [["vessel": "left_mca_m1", "depth_mm": 500], ["vessel": "basilar", "depth_mm": 10]]
        object["start_insertion_mm"] = -5
        object["robot"] = ""
        let file = dir.appendingPathComponent("cerebral.json").path
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: file))
        #expect {
            try ConfigLoader.load(VesselTreeDescription.self, from: file)
        } throws: { error in
            guard case .invalid(let f, let problems)? = error as? ConfigError else { return false }
            return f == file && Set(problems.map(\.field)) == ["vessels[4].points[3][3]", "targets[0].depth_mm", "targets[1].vessel", "start_insertion_mm", "robot"]
        }
        // A field the format does not know is named too.
        object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source))) as? [String: Any])
        object["targets"] = [["vessel": "left_mca_m1", "depth": 10]]
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: file))
        #expect {
            try ConfigLoader.load(VesselTreeDescription.self, from: file)
        } throws: { error in
            guard case .invalid(let f, let problems)? = error as? ConfigError else { return false }
            return f == file && problems.contains { $0.field.hasPrefix("targets[0]") }
        }
        #expect(throws: PhantomError.unknown("basilar")) { try Phantoms.load("basilar") }
    }

    /// Every target of every navigable phantom: its route runs inside the lumen all the way (also
    /// between route points), ends `depth` mm into the target vessel, and is within the insertion
    /// stroke of the 300 mm robot.
    @Test(arguments: Phantoms.navigable)
    func eachTargetIsReachableOnItsRoute(name: String) throws {
        let d = try Phantoms.load(name)
        #expect(!d.targets.isEmpty)
        let tree = VesselTree(d)
        for target in d.targets {
            let route = try d.route(toVessel: target.vessel, depth: target.depthMM)
            for (a, b) in zip(route, route.dropFirst()) {
                for f in stride(from: 0.0, through: 1.0, by: 0.25) {
                    let p = a + (b - a) * f
                    #expect(tree.contains(p), "\(name) \(target.vessel) \(target.depthMM): route point \(p) outside the lumen")
                }
            }
            let goal = try #require(route.last)
            let near = tree.nearest(goal)
            #expect(tree.vesselNames[near.vessel] == target.vessel || near.signedDistance < -1, "\(name): goal not in \(target.vessel)")
            let length = Polyline.length(route)
            #expect(length <= 300, "\(name) \(target.vessel): route \(length) mm, longer than the insertion stroke")
        }
    }

    @Test func theCoronaryRouteStartsAtTheOstium() throws {
        let d = Phantoms.coronaryTree()
        #expect(d.sheath == .rootStart)
        let route = try d.route(toVessel: "diagonal", depth: 20)
        let ostium = d.vessels[0].points[0]
        #expect((route[0] - Vec3(ostium[0], ostium[1], ostium[2])).length < 1e-9)
        // The arch is still entered from the far end of its root, the descending aorta.
        let arch = Phantoms.aorticArch()
        let archRoute = try arch.route(toVessel: "left_subclavian", depth: 25)
        let far = try #require(arch.vessels[0].points.last)
        #expect((archRoute[0] - Vec3(far[0], far[1], far[2])).length < 1e-9)
    }
}
