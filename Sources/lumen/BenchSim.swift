import ArgumentParser
import CommandSupport
import Core
import Foundation
import Imaging
import Scenarios
import Sim

/// `lumen bench sim`: how fast the catheter physics and the renderer run, with an
/// established Cosserat-rod code (PyElastica) run side by side on a shared cantilever.
struct BenchSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Real-time factor of the catheter rod in the arch phantom, render time per 1024² frame, and a PyElastica peer on a shared cantilever."
    )

    @Option(help: "Simulated seconds of pushing through the arch for each real-time factor (0.1…600).") var seconds = 10.0
    @Option(help: "Frames to render for the render time (1…1000).") var frames = 12
    @Option(help: "Python with pyelastica for the peer (scripts/bench-sim.sh sets one up); empty to skip the peer.")
    var peerPython = ".venv-bench/bin/python"
    @Option(help: "The peer script.") var peerScript = "bench/peer/pyelastica_cantilever.py"
    @Option(help: "Folder for the plot.") var out = "out/bench-sim"
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.number(seconds, "--seconds", in: 0.1...600, unit: "s")
        try Check.count(frames, "--frames", in: 1...1000)
        try Check.outputFolder(out, "--out", files: [Self.plotName])
    }

    static let plotName = "cantilever_dt.png"

    struct Push: Encodable {
        var elements: Int
        var simulated_s: Double
        var wall_s: Double
        var rtf: Double
        var free_elements_mean: Double
        var step_us_p50: Double
        var step_us_p99: Double
        var peak_contact_n: Double
        var tip_mm: [Double]
        var tip_vessel: String
    }

    struct Scan: Encodable {
        var dt: Double
        var integrator: String
        var tip_deflection_m: Double?
        var error_pct: Double?
        var stable: Bool
        var wall_s: Double
    }

    struct Side: Encodable {
        var reference_dt: Double
        var reference_deflection_m: Double
        var largest_dt_within_1pct: Double?
        var integrator_within_1pct: String?
        var steps_per_s: Double
        var sim_s_per_wall_s: Double?
        var scan: [Scan]
    }

    struct Cantilever: Encodable {
        var elements: Int
        var length_m: Double
        var material: String
        var youngs_modulus_pa: Double
        var gravity_m_s2: Double
        var final_time_s: Double
        var ours: Side
        var peer: Side?
        var peer_note: String
        var ours_vs_peer_deflection_pct: Double?
    }

    struct Result: Encodable {
        var rtf_100: Double
        var rtf_200: Double
        var render_ms_1024: Double
        var render_photons_per_pixel: Double
        var ours_steps_per_s: Double
        var ours_implicit_steps_per_s: Double
        var peer_steps_per_s: Double?
        var ratio_steps: Double?
        var ratio_sim_time: Double?
        var push: [Push]
        var cantilever: Cantilever
        var plot: String
    }

    /// The shared cantilever: 0.5 m of a soft tip polymer (PEBA 25D class), 100 elements,
    /// clamped horizontally, released under gravity, no damping. Soft enough that the explicit
    /// peer is stable at 1e-5 s; a braided shaft is not stable for it at any step it can afford.
    static let softTip = RodMaterial(name: "soft tip polymer", youngsModulus: 10e6, density: 1010, outerRadius: 1.0e-3, innerRadius: 0.7e-3)
    static let cantileverLength = 0.5
    static let cantileverElements = 100
    static let cantileverTime = 0.3

    func run() throws {
        Output.progress("bench sim: pushing 100- and 200-element catheters through the arch (\(seconds) s simulated each)")
        let push100 = try Self.push(elements: 100, seconds: seconds)
        let push200 = try Self.push(elements: 200, seconds: seconds)
        Output.progress("bench sim: rendering \(frames) frames at 1024²")
        let (renderMs, photons) = try Self.renderTime(frames: frames, catheter: push100.centerline)
        Output.progress("bench sim: shared cantilever, ours")
        let (ours, oursImplicitRate) = try Self.oursCantilever()
        var peer: Side?
        var note = "PyElastica \(peerPython) \(peerScript): explicit position Verlet, clamped position and first director"
        if !peerPython.isEmpty, FileManager.default.isExecutableFile(atPath: peerPython) {
            Output.progress("bench sim: shared cantilever, PyElastica peer (about a minute)")
            peer = try peerCantilever()
        } else {
            note = "peer skipped: no Python at '\(peerPython)' (run scripts/bench-sim.sh, which installs pyelastica into .venv-bench)"
            Output.progress("bench sim: " + note)
        }
        let agreement = peer.map { 100 * abs(ours.reference_deflection_m - $0.reference_deflection_m) / abs($0.reference_deflection_m) }
        let plotPath = out + "/" + Self.plotName
        try plot(ours: ours, peer: peer, to: plotPath)
        let result = Result(
            rtf_100: round1(push100.push.rtf), rtf_200: round1(push200.push.rtf), render_ms_1024: round1(renderMs),
            render_photons_per_pixel: photons,
            ours_steps_per_s: ours.steps_per_s.rounded(), ours_implicit_steps_per_s: oursImplicitRate.rounded(), peer_steps_per_s: peer.map { $0.steps_per_s.rounded() },
            ratio_steps: peer.map { round1(ours.steps_per_s / $0.steps_per_s) },
            ratio_sim_time: {
                guard let p = peer?.sim_s_per_wall_s, let o = ours.sim_s_per_wall_s else { return nil }
                return round1(o / p)
            }(),
            push: [push100.push, push200.push],
            cantilever: Cantilever(elements: Self.cantileverElements, length_m: Self.cantileverLength, material: Self.softTip.name,
                                   youngs_modulus_pa: Self.softTip.youngsModulus, gravity_m_s2: 9.81, final_time_s: Self.cantileverTime,
                                   ours: ours, peer: peer, peer_note: note, ours_vs_peer_deflection_pct: agreement.map(round3)),
            plot: plotPath)
        if json {
            try Output.json(result)
        } else {
            print("rtf_100 \(result.rtf_100), rtf_200 \(result.rtf_200) (arch, contact, 1 ms step); render \(result.render_ms_1024) ms per 1024² frame")
            print("cantilever: ours \(Int(ours.steps_per_s)) steps/s explicit at 1e-5 s (\(Int(oursImplicitRate)) implicit), largest dt within 1 % \(ours.largest_dt_within_1pct.map { "\($0)" } ?? "-") s (\(ours.integrator_within_1pct ?? "-"))")
            if let p = peer {
                print("peer (PyElastica): \(Int(p.steps_per_s)) steps/s, largest dt within 1 % \(p.largest_dt_within_1pct.map { "\($0)" } ?? "-") s")
                print("ratio_steps \(result.ratio_steps ?? .nan), ratio_sim_time \(result.ratio_sim_time ?? .nan); reference deflections differ by \(round3(agreement ?? .nan)) %")
            }
            print("plot: \(plotPath)")
        }
    }

    // MARK: Pushing through the arch

    /// The catheter for the real-time factors: 0.34 m simulated, so that pushed from 0.20 m to
    /// its end it has 60–100 % of its elements in the vessel (the held ones cost nothing).
    static func archModel(elements: Int) throws -> RodModel {
        let description = Phantoms.aorticArch()
        let aorta = description.vessels[0].points
        let last = aorta[aorta.count - 1], previous = aorta[aorta.count - 2]
        return try RodModel(.catheter(elements: elements, length: 0.34), lumen: RodLumen(VesselTree(description)),
                            sheathExit: Vec3(last[0], last[1], last[2]) * 1e-3,
                            sheathAxis: Vec3(previous[0] - last[0], previous[1] - last[1], previous[2] - last[2]))
    }

    static func push(elements: Int, seconds: Double) throws -> (push: Push, centerline: [Vec3]) {
        let model = try archModel(elements: elements)
        let startInsertion = 0.2, endInsertion = model.totalLength - 2 * model.restLength
        var state = RodState(model: model, insertion: startInsertion)
        let dt = 0.001
        let steps = Int(seconds / dt)
        let speed = (endInsertion - startInsertion) / seconds
        var freeSum = 0.0
        var stepNs = [Double](repeating: 0, count: steps)
        var peak = 0.0
        let start = MonotonicClock.now()
        for k in 0..<steps {
            let t0 = MonotonicClock.now()
            // Up the descending aorta and over the arch, with a slow tendon sweep and roll so
            // the distal section works too.
            let t = Double(k + 1) * dt
            let input = RodInput(insertion: startInsertion + speed * t, roll: 0.3 * sine(0.5 * t), curvature: SIMD2(8 * sine(0.7 * t), 0))
            guard ElasticRod.step(model, &state, input, dt: dt) else { throw CommandFailure("the rod diverged at t = \(t) s") }
            stepNs[k] = Double(MonotonicClock.now() - t0)
            if k % 50 == 0 { peak = max(peak, state.peakContactForce) }
            freeSum += Double(model.nodes - state.heldNodes)
        }
        let wall = Double(MonotonicClock.now() - start) * 1e-9
        let tipMM = state.tip * 1e3
        let vessel = model.lumen!.tree.nearest(tipMM)
        let push = Push(elements: elements, simulated_s: seconds, wall_s: round3(wall), rtf: seconds / wall, free_elements_mean: round1(freeSum / Double(steps)),
                        step_us_p50: round1(percentile(stepNs, 50) / 1000), step_us_p99: round1(percentile(stepNs, 99) / 1000),
                        peak_contact_n: round3(peak), tip_mm: [round1(tipMM.x), round1(tipMM.y), round1(tipMM.z)],
                        tip_vessel: model.lumen!.tree.vesselNames[vessel.vessel])
        return (push, state.centerlineMillimetres())
    }

    // MARK: Rendering

    static func renderTime(frames: Int, catheter: [Vec3]) throws -> (Double, Double) {
        let tree = Phantoms.aorticArch()
        let geometry = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 1024, rows: 1024, pixelSpacing: 0.3,
                                    primaryAngle: 0, secondaryAngle: 0, isocenter: Vec3(0, 30, 0))
        let renderer = FluoroRenderer(geometry: geometry, seed: 3)
        var times: [Double] = []
        for f in 0..<(frames + 2) {
            let t0 = MonotonicClock.now()
            _ = try renderer.render(tree: tree, catheter: catheter, frame: f, acquiredAt: Int64(f) * 66_666_667)
            if f >= 2 { times.append(Double(MonotonicClock.now() - t0) / 1e6) }  // the first frames build caches
        }
        return (percentile(times, 50), renderer.settings.photonsPerPixel)
    }

    // MARK: The shared cantilever

    static func oursCantileverRun(dt: Double, integrator: RodIntegrator = .implicit) throws -> (deflection: Double?, wall: Double, steps: Int) {
        let l0 = cantileverLength / Double(cantileverElements)
        var d = CatheterRodDescription.uniform(length: cantileverLength + 2 * l0, material: softTip, elements: cantileverElements + 2)
        d.gravity = Vec3(0, 0, -9.81)
        d.dampingRate = 0
        let model = try RodModel(d, sheathAxis: Vec3(1, 0, 0))
        var state = RodState(model: model, insertion: cantileverLength)
        let input = RodInput(insertion: cantileverLength)
        let steps = Int((cantileverTime / dt).rounded())
        let start = MonotonicClock.now()
        for _ in 0..<steps where !ElasticRod.step(model.parameters, &state, input, dt: dt, integrator: integrator) { return (nil, 0, steps) }
        let wall = Double(MonotonicClock.now() - start) * 1e-9
        let z = state.tip.z
        // A blown-up explicit rod can stay finite while flying off: more than its length is not a deflection.
        return (z.isFinite && abs(z) <= cantileverLength * 1.01 ? -z : nil, wall, steps)
    }

    /// Ours on the shared case. The fine reference is backward Euler at 1e-5 s. `steps_per_s`
    /// is the like-for-like figure: our explicit (symplectic Euler) step at the peer's 1e-5 s;
    /// the implicit step's rate is reported beside it. The simulated-time rate is the best of
    /// both integrators at their largest step within 1 %.
    static func oursCantilever() throws -> (side: Side, implicitStepsPerSecond: Double) {
        let reference = 1e-5
        let ref = try oursCantileverRun(dt: reference)
        guard let refDeflection = ref.deflection else { throw CommandFailure("the reference cantilever run diverged") }
        var scan: [Scan] = []
        var best: (dt: Double, wall: Double, integrator: String)?
        func consider(_ dt: Double, _ integrator: RodIntegrator, _ name: String) throws -> (Double?, Double, Int) {
            let r = try oursCantileverRun(dt: dt, integrator: integrator)
            let err = r.deflection.map { 100 * abs($0 - refDeflection) / refDeflection }
            scan.append(Scan(dt: dt, integrator: name, tip_deflection_m: r.deflection, error_pct: err.map(round3), stable: r.deflection != nil, wall_s: r.wall))
            if let e = err, e <= 1, r.wall > 0, cantileverTime / r.wall > (best.map { cantileverTime / $0.wall } ?? 0) { best = (dt, r.wall, name) }
            return r
        }
        for dt in [2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2] { _ = try consider(dt, .implicit, "implicit") }
        var explicitRate = 0.0
        for dt in [1e-5, 2e-5, 4e-5, 8e-5] {
            let r = try consider(dt, .explicit, "explicit")
            if dt == 1e-5, r.1 > 0 { explicitRate = Double(r.2) / r.1 }
        }
        let side = Side(reference_dt: reference, reference_deflection_m: refDeflection, largest_dt_within_1pct: best?.dt,
                        integrator_within_1pct: best?.integrator, steps_per_s: explicitRate,
                        sim_s_per_wall_s: best.map { cantileverTime / $0.wall }, scan: scan)
        return (side, Double(ref.steps) / ref.wall)
    }

    struct PeerRun: Decodable {
        var tip: [Double]
        var finite: Bool
        var steps: Int
        var wall_s: Double
        var steps_per_s: Double?
    }

    func peerRun(dt: Double) throws -> PeerRun {
        // The peer's round rod gets the catheter tube's bending stiffness and mass per length.
        let m = Self.softTip
        let radius = pow(4 * m.secondMoment / Double.pi, 0.25)
        let density = m.density * m.area / (Double.pi * radius * radius)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: peerPython)
        p.arguments = [peerScript, "--elements", "\(Self.cantileverElements)", "--length", "\(Self.cantileverLength)",
                       "--radius", "\(radius)", "--density", "\(density)", "--youngs", "\(m.youngsModulus)",
                       "--shear", "\(m.shearModulus)", "--dt", "\(dt)", "--final-time", "\(Self.cantileverTime)"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CommandFailure("the PyElastica peer failed (exit \(p.terminationStatus)) at dt \(dt)") }
        do { return try JSONDecoder().decode(PeerRun.self, from: data) } catch {
            throw CommandFailure("the PyElastica peer printed no result at dt \(dt): \(String(decoding: data, as: UTF8.self))")
        }
    }

    func peerCantilever() throws -> Side {
        let reference = 5e-6
        let ref = try peerRun(dt: reference)
        let refDeflection = -ref.tip[2]
        var scan: [Scan] = []
        var best: (dt: Double, run: PeerRun)?
        var stepsPerSecond = 0.0
        for dt in [1e-5, 1.5e-5, 2e-5] {
            let r = try peerRun(dt: dt)
            if dt == 1e-5 { stepsPerSecond = r.steps_per_s ?? 0 }
            // A blown-up explicit rod can stay finite while flying off: more than its length is not a deflection.
            let deflection = -r.tip[2]
            let stable = r.finite && abs(deflection) <= Self.cantileverLength * 1.01
            let err = stable ? 100 * abs(deflection - refDeflection) / abs(refDeflection) : nil
            scan.append(Scan(dt: dt, integrator: "position Verlet", tip_deflection_m: stable ? deflection : nil, error_pct: err.map(round3), stable: stable, wall_s: r.wall_s))
            if let e = err, e <= 1 { best = (dt, r) }
        }
        return Side(reference_dt: reference, reference_deflection_m: refDeflection, largest_dt_within_1pct: best?.dt,
                    integrator_within_1pct: best == nil ? nil : "position Verlet", steps_per_s: stepsPerSecond,
                    sim_s_per_wall_s: best.map { Double($0.run.steps) * $0.dt / $0.run.wall_s }, scan: scan)
    }

    func plot(ours: Side, peer: Side?, to path: String) throws {
        var p = LinePlot(title: "Shared cantilever: tip deflection error against each code's own fine reference",
                         xLabel: "log10 time step (s)", yLabel: "error (%)")
        func points(_ s: Side, _ integrator: String? = nil) -> [(x: Double, y: Double)] {
            s.scan.filter { integrator == nil || $0.integrator == integrator }.compactMap { sc in sc.error_pct.map { (x: log10(sc.dt), y: $0) } }
        }
        p.series.append(.init(label: "ours, backward Euler", points: points(ours, "implicit"), color: (31, 119, 180), markers: true))
        p.series.append(.init(label: "ours, symplectic Euler", points: points(ours, "explicit"), color: (44, 160, 44), markers: true))
        if let peer { p.series.append(.init(label: "PyElastica (position Verlet)", points: points(peer), color: (214, 39, 40), markers: true)) }
        let lo = log10(1e-5), hi = log10(1e-2)
        p.series.append(.init(label: "1 % limit", points: [(lo, 1), (hi, 1)], color: (120, 120, 120), thickness: 1))
        try OutputPath.createFolder(out)
        try p.write(to: path)
    }
}
