import Control
import Core
import Sim
import Testing
@testable import Scenarios

/// Which of the phantoms' targets the scene plans a reverse-curve engagement for, from their
/// centerlines: the arch's brachiocephalic hairpin and no other arch target.
@Suite struct HairpinPlanTests {
    /// The sharpest take-off on the way to each target of `phantom` (degrees), and whether it is planned for.
    static func takeOffs(_ phantom: String) throws -> [(vessel: String, degrees: Double, planned: Bool)] {
        let tree = try Phantoms.load(phantom)
        return try tree.targets.map { target in
            let raw = try tree.routeWithRadii(toVessel: target.vessel, depth: target.depthMM)
            let sharpest = HairpinCorner.find(in: raw, sharperThan: 0)
            let planned = HairpinCorner.find(in: raw, sharperThan: NavigationScene.hairpinAngle)
            return (target.vessel, (sharpest?.angle ?? 0) * 180 / .pi, planned != nil)
        }
    }

    @Test("The arch's brachiocephalic is engaged with a reverse curve; its other targets are followed as before")
    func archPlansTheBrachiocephalicOnly() throws {
        let arch = try Self.takeOffs("arch")
        for phantom in ["arch", "coronary", "cerebral", "hepatic"] {
            for t in try Self.takeOffs(phantom) { print("take-off \(phantom) \(t.vessel): \(t.degrees)° planned \(t.planned)") }
        }
        let planned = arch.filter(\.planned).map(\.vessel)
        #expect(Set(planned) == ["brachiocephalic"], "\(arch)")
        let bc = arch.first { $0.vessel == "brachiocephalic" }?.degrees ?? 0
        #expect(bc > 100 && bc < 110, "brachiocephalic take-off \(bc)°")
    }

    @Test("The scene hands the plan to the servo when it is turned on, for a sharp take-off only")
    func sceneCarriesThePlan() throws {
        var setup = NavigationSetup()
        setup.vessel = "brachiocephalic"
        let robot = try loadRobot()
        let off = try NavigationScene(setup, robot: robot)
        setup.reverseCurve = true
        let on = try NavigationScene(setup, robot: robot)
        setup.vessel = "left_common_carotid"
        let carotid = try NavigationScene(setup, robot: robot)
        #expect(on.hairpin != nil && off.hairpin == nil && carotid.hairpin == nil)
    }
}
