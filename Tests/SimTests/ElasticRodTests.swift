import Core
import Foundation
import Testing
@testable import Sim

/// The catheter rod against closed forms and its own invariants.
@Suite("Elastic rod")
struct ElasticRodTests {
    /// A horizontal cantilever of one material, clamped at the sheath, settled by heavy damping.
    static func cantilever(length: Double = 0.3, elements: Int = 100, gravity: Vec3 = .zero, damping: Double = 40,
                           material: RodMaterial = .shaft) throws -> (RodModel, Double) {
        var d = CatheterRodDescription.uniform(length: length, material: material, elements: elements)
        d.gravity = gravity
        d.dampingRate = damping
        let model = try RodModel(d, sheathAxis: Vec3(1, 0, 0))
        return (model, model.totalLength - 2 * model.restLength)
    }

    static func settle(_ model: RodModel, _ state: inout RodState, _ input: RodInput, dt: Double, steps: Int) {
        for _ in 0..<steps { #expect(ElasticRod.step(model, &state, input, dt: dt)) }
    }

    @Test("A cantilever's tip deflection under an end load is Euler–Bernoulli's P L³ / 3EI within 2 %")
    func cantileverEndLoad() throws {
        let (model, insertion) = try Self.cantilever()
        var state = RodState(model: model, insertion: insertion)
        var input = RodInput(insertion: insertion)
        input.tipForce = Vec3(0, 0, -0.0002)  // 1.6 % of the length: the linear regime
        Self.settle(model, &state, input, dt: 0.005, steps: 600)
        let free = insertion  // from the clamp at the sheath exit to the tip
        let ei = RodMaterial.shaft.bendingStiffness
        let expected = 0.0002 * free * free * free / (3 * ei)
        let deflection = -state.tip.z
        print("end load: deflection \(deflection) m, Euler–Bernoulli \(expected) m")
        #expect(abs(deflection - expected) / expected < 0.02, "deflection \(deflection) m, Euler–Bernoulli \(expected) m")
        #expect(abs(state.velocity(model.nodes - 1).length) < 1e-6)
    }

    @Test("A cantilever under its own weight deflects w L⁴ / 8EI within 2 %")
    func cantileverGravity() throws {
        let (model, insertion) = try Self.cantilever(length: 0.15, gravity: Vec3(0, 0, -9.81))
        var state = RodState(model: model, insertion: insertion)
        Self.settle(model, &state, RodInput(insertion: insertion), dt: 0.005, steps: 600)
        let free = insertion  // from the clamp at the sheath exit to the tip
        let w = RodMaterial.shaft.density * RodMaterial.shaft.area * 9.81
        let expected = w * free * free * free * free / (8 * RodMaterial.shaft.bendingStiffness)
        let deflection = -(state.tip.z - model.sheathExit.z)
        print("gravity: deflection \(deflection) m, closed form \(expected) m")
        #expect(abs(deflection - expected) / expected < 0.02, "deflection \(deflection) m, closed form \(expected) m")
    }

    @Test("A torque at the free end twists the rod by T L / GJ")
    func torsionalStiffness() throws {
        let (model, insertion) = try Self.cantilever()
        var state = RodState(model: model, insertion: insertion, roll: 0.3)
        var input = RodInput(insertion: insertion, roll: 0.3)
        input.tipTorque = 1e-4
        Self.settle(model, &state, input, dt: 0.005, steps: 400)
        let free = insertion  // from the clamp at the sheath exit to the tip
        let expected = 1e-4 * free / RodMaterial.shaft.torsionalStiffness
        let twist = state.twist(model.edges - 1) - 0.3
        #expect(abs(twist - expected) / expected < 0.02, "twist \(twist) rad, T L / GJ \(expected) rad")
    }

    @Test("Tendon curvature bends the distal section by κ × its length, towards d1, and roll turns the bend")
    func tendonCurvatureAndRoll() throws {
        var d = CatheterRodDescription.catheter(elements: 100)
        d.gravity = .zero
        d.dampingRate = 40
        let model = try RodModel(d, sheathAxis: Vec3(0, 0, 1))
        let insertion = 0.2
        var state = RodState(model: model, insertion: insertion)
        let kappa = 10.0  // 1/m: 0.5 rad over the 50 mm section
        Self.settle(model, &state, RodInput(insertion: insertion, curvature: SIMD2(kappa, 0)), dt: 0.002, steps: 800)
        let last = model.edges - 1
        let tipTangent = (state.position(last + 1) - state.position(last)) * (1 / model.restLength)
        let bend = acos(min(1, tipTangent.z))
        print("bend \(bend)")
        #expect(abs(bend - kappa * 0.05) < 0.03, "tip angle \(bend) rad for κL = \(kappa * 0.05)")
        // The bend lies along the shaft's d1, which roll 0 leaves where the sheath put it.
        let d1 = state.director(10)
        let lateral = Vec3(tipTangent.x, tipTangent.y, 0)
        #expect(lateral.dot(d1) / lateral.length > 0.99)
        // A quarter roll moves the bend a quarter turn about the axis.
        for k in 1...500 {
            let roll = Double.pi / 2 * min(1, Double(k) / 250)
            #expect(ElasticRod.step(model, &state, RodInput(insertion: insertion, roll: roll, curvature: SIMD2(kappa, 0)), dt: 0.002))
        }
        let t2 = (state.position(last + 1) - state.position(last)) * (1 / model.restLength)
        let lateral2 = Vec3(t2.x, t2.y, 0)
        let d1Rolled = Vec3(0, 0, 1).cross(d1)
        #expect(lateral2.dot(d1Rolled) / lateral2.length > 0.98, "bend after roll \(lateral2), expected along \(d1Rolled)")
    }

    static func archRod(elements: Int = 100) throws -> (RodModel, VesselTree) {
        let tree = VesselTree(Phantoms.aorticArch())
        let aorta = Phantoms.aorticArch().vessels[0].points
        let last = aorta[aorta.count - 1], previous = aorta[aorta.count - 2]
        let exit = Vec3(last[0], last[1], last[2]) * 1e-3
        let axis = Vec3(previous[0] - last[0], previous[1] - last[1], previous[2] - last[2])
        let model = try RodModel(.catheter(elements: elements), lumen: RodLumen(tree), sheathExit: exit, sheathAxis: axis)
        return (model, tree)
    }

    @Test("Pushed up the descending aorta and over the arch, every node stays inside the lumen")
    func staysInArchLumen() throws {
        let (model, tree) = try Self.archRod()
        var state = RodState(model: model, insertion: 0.01)
        var worst = -Double.infinity
        var peak = 0.0
        let dt = 0.001
        let steps = 14_000  // 20 mm/s for 14 s: 280 mm, past the top of the arch
        for k in 1...steps {
            let insertion = 0.01 + 0.02 * Double(k) * dt
            #expect(ElasticRod.step(model, &state, RodInput(insertion: insertion), dt: dt))
            if k % 20 == 0 {
                for i in state.heldNodes..<model.nodes {
                    let nearest = tree.nearest(state.position(i) * 1e3)
                    worst = max(worst, nearest.signedDistance + model.parameters.radius[i] * 1e3)
                }
                peak = max(peak, state.peakContactForce)
            }
        }
        // The catheter surface may press into the wall by the contact tolerance (0.2 mm), never through it.
        #expect(worst < 0.21, "deepest wall penetration \(worst) mm")
        #expect(tree.nearest(state.tip * 1e3).signedDistance < 0)
        print("arch: tip \(state.tip * 1e3) mm, peak contact \(peak) N, deepest \(worst) mm")
        // It got over the top of the arch (z 50…80 mm) rather than buckling in the descending aorta.
        #expect(state.tip.z * 1e3 > 40, "tip at \(state.tip * 1e3) mm")
        #expect(peak > 0.001, "the wall carried load (peak \(peak) N)")
        #expect(peak < 2, "peak contact force \(peak) N")
    }

    /// Entered at its root's start (a coronary ostium), the sheath's axis runs back out of the
    /// tree, and the nearest vessel to a node held there can be a branch centimetres away. A node
    /// leaving the sheath searched the wall from that branch and was thrown onto it: the sheath's
    /// element stretched by most of its length, and the push read a hundred newtons and more.
    @Test("A microcatheter fed into a coronary artery: no node leaving the sheath jumps, the push stays that of the walls")
    func nodesLeavingTheSheathAtAnOstiumStayPut() throws {
        let tree = Phantoms.coronaryTree()
        let main = tree.vessels[0].points
        let exit = Vec3(main[0][0], main[0][1], main[0][2]) * 1e-3
        let axis = Vec3(main[1][0] - main[0][0], main[1][1] - main[0][1], main[1][2] - main[0][2])
        let model = try RodModel(.catheter(elements: 100, length: 0.17, bendLength: 0.012, tipLength: 0.002, outerRadius: 0.45e-3),
                                 lumen: RodLumen(VesselTree(tree)), sheathExit: exit, sheathAxis: axis)
        var state = RodState(model: model, insertion: 0.014)
        // Settled first: set up straight on the sheath's axis, it falls into the artery's turn.
        for _ in 0..<300 { _ = ElasticRod.step(model, &state, RodInput(insertion: 0.014), dt: 1e-3) }
        var largestMove = 0.0, largestPush = 0.0
        var before = (0..<model.nodes).map { state.position($0) }
        // 4 mm/s in for 12 s, the tendons bending the tip one way and another.
        for k in 1...12_000 {
            let t = Double(k) * 1e-3
            let curvature = SIMD2(0.5 * sin(0.9 * t), 0.5 * cos(0.63 * t) - 0.5) / (0.3 * 12 * 1e-3)
            #expect(ElasticRod.step(model, &state, RodInput(insertion: 0.014 + 0.004 * t, curvature: curvature), dt: 1e-3))
            for i in state.heldNodes..<model.nodes {
                let p = state.position(i)
                largestMove = max(largestMove, (p - before[i]).length)
                before[i] = p
            }
            for i in 0..<state.heldNodes { before[i] = state.position(i) }
            largestPush = max(largestPush, abs(state.pushForce))
        }
        // At 4 mm/s a node moves micrometres a step; the jump was 10 mm.
        #expect(largestMove < 0.5e-3, "a node moved \(largestMove * 1e3) mm in one step")
        #expect(largestPush < 5, "push at the sheath \(largestPush) N")
    }

    @Test("Sixty simulated seconds without input: the energy never grows")
    func noEnergyBlowUp() throws {
        var d = CatheterRodDescription.catheter(elements: 100)
        d.dampingRate = 0
        let model = try RodModel(d, lumen: RodLumen(VesselTree(Phantoms.straightTube())), sheathExit: Vec3(0, 0, 0.001), sheathAxis: Vec3(0, 0, 1))
        var state = RodState(model: model, insertion: 0.15)
        let input = RodInput(insertion: 0.15, curvature: SIMD2(15, 0))
        // Released from straight with the tendons pulled and gravity on: it swings into the wall.
        #expect(ElasticRod.step(model, &state, input, dt: 0.001))
        let start = ElasticRod.energy(model, state, curvature: input.curvature)
        var highest = start
        for k in 1..<60_000 {
            #expect(ElasticRod.step(model, &state, input, dt: 0.001))
            if k % 100 == 0 { highest = max(highest, ElasticRod.energy(model, state, curvature: input.curvature)) }
        }
        let end = ElasticRod.energy(model, state, curvature: input.curvature)
        print("energy: start \(start) J, highest \(highest) J, end \(end) J")
        #expect(highest <= start + 1e-9 + abs(start) * 1e-6, "energy rose from \(start) J to \(highest) J")
        #expect(end.isFinite)
        #expect(state.tip.length < 1)
    }

    @Test("Same inputs, same bits; a NaN command keeps the last one; bad descriptions are refused")
    func determinismAndBadInput() throws {
        let (model, _) = try Self.archRod()
        func run() -> [Vec3] {
            var state = RodState(model: model, insertion: 0.01)
            for k in 1...2000 {
                _ = ElasticRod.step(model, &state, RodInput(insertion: 0.01 + 2e-5 * Double(k), roll: 0.001 * Double(k), curvature: SIMD2(5, 2)), dt: 0.001)
            }
            return (0..<model.nodes).map { state.position($0) }
        }
        #expect(run() == run())
        var state = RodState(model: model, insertion: 0.05)
        for _ in 0..<50 { _ = ElasticRod.step(model, &state, RodInput(insertion: 0.05), dt: 0.001) }
        let before = state.tip
        #expect(ElasticRod.step(model, &state, RodInput(insertion: .nan, roll: .infinity, curvature: SIMD2(.nan, 1)), dt: 0.001))
        #expect(state.insertion == 0.05)
        #expect((state.tip - before).length < 1e-4)
        var bad = CatheterRodDescription.catheter()
        bad.elements = 2
        #expect(throws: RodError.self) { try RodModel(bad) }
        bad = .catheter()
        bad.sections[1].material.innerRadius = 2e-3
        #expect(throws: RodError.self) { try RodModel(bad) }
    }
}

@Suite("Elastic rod integrators")
struct ElasticRodIntegratorTests {
    @Test("Symplectic and backward Euler agree at a small step on a swinging cantilever; explicit blows up past its Courant limit and says so")
    func integratorsAgree() throws {
        let soft = RodMaterial(name: "soft", youngsModulus: 10e6, density: 1010, outerRadius: 1e-3, innerRadius: 0.7e-3)
        var d = CatheterRodDescription.uniform(length: 0.204, material: soft, elements: 102)
        d.gravity = Vec3(0, 0, -9.81)
        d.dampingRate = 0
        let model = try RodModel(d, sheathAxis: Vec3(1, 0, 0))
        let insertion = 0.2
        func run(_ integrator: RodIntegrator, dt: Double, seconds: Double) -> (Vec3, Bool) {
            var state = RodState(model: model, insertion: insertion)
            var ok = true
            for _ in 0..<Int(seconds / dt) where !ElasticRod.step(model.parameters, &state, RodInput(insertion: insertion), dt: dt, integrator: integrator) {
                ok = false
                break
            }
            return (state.tip, ok)
        }
        let implicitTip = run(.implicit, dt: 1e-5, seconds: 0.05)
        let explicitTip = run(.explicit, dt: 1e-5, seconds: 0.05)
        #expect(implicitTip.1 && explicitTip.1)
        let fall = -(implicitTip.0.z)
        #expect(fall > 0.005, "the tip fell \(fall) m in 50 ms")
        #expect(abs(implicitTip.0.z - explicitTip.0.z) < 0.01 * fall, "implicit \(implicitTip.0), explicit \(explicitTip.0)")
        // Far beyond the stretch wave's Courant limit (2 mm / 100 m/s = 2e-5 s) the explicit rod diverges:
        // the step reports it instead of returning garbage.
        let wild = run(.explicit, dt: 1e-3, seconds: 0.05)
        #expect(!wild.1 || !wild.0.isFinite || wild.0.length > 1)
    }
}
