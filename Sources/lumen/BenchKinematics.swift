import ArgumentParser
import CommandSupport
import Control
import Core
import Foundation

/// `lumen bench kinematics`: the kinematics the cycle runs, and the DLS solve in plain Swift
/// against Eigen through the bridge.
struct BenchKinematics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kinematics",
        abstract: "Forward kinematics, Jacobian and one DLS step: plain Swift SIMD against Eigen through the C++ bridge."
    )

    @Option(help: "Robot file.") var robot = DemoRigFiles.defaultRobot
    @Option(help: "Batches to time (each of --batch calls; 10…100000, at most 10⁸ calls in all).") var batches = 400
    @Option(help: "Calls per timed batch (1…100000).") var batch = 500
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.count(batches, "--batches", in: 10...100_000)
        try Check.count(batch, "--batch", in: 1...100_000)
        guard batches * batch <= 100_000_000 else {
            throw ValidationError("--batches × --batch must be at most 100000000 calls per function, got \(batches * batch)")
        }
    }

    struct Figure: Encodable {
        var p50_ns: Double
        var p99_ns: Double
    }

    struct Result: Encodable {
        var robot: String
        var joints: Int
        var forward_kinematics: Figure
        var pose_and_jacobian: Figure
        var dls_step_swift: Figure
        var dls_step_eigen: Figure
        var ratio_eigen_over_swift_p50: Double
        var max_step_difference: Double
        var chosen: String
        var note: String
    }

    func run() throws {
        let description = try DemoRigFiles.loadRobot(robot)
        let model = CatheterModel(description)
        var rng = SplitMix64(seed: 7)
        // Random in-limit postures and reachable targets near their tips.
        let postures: [JointVector] = (0..<256).map { _ in
            var q = JointVector(count: model.jointCount)
            for j in 0..<model.jointCount { q[j] = model.lowerLimit[j] + rng.unit() * (model.upperLimit[j] - model.lowerLimit[j]) }
            return model.clampToLimits(q)
        }
        let targets = postures.map { model.calcTipPose($0).translation + Vec3(rng.unit() - 0.5, rng.unit() - 0.5, rng.unit() - 0.5) * 4 }
        let swiftOptions = DLSOptions(solver: .swift), eigenOptions = DLSOptions(solver: .eigen)

        var maxDifference = 0.0
        for (q, t) in zip(postures, targets) {
            let a = model.dlsStep(q, target: t, options: swiftOptions), b = model.dlsStep(q, target: t, options: eigenOptions)
            maxDifference = max(maxDifference, a.maxAbsDifference(b))
        }

        Output.progress("bench kinematics: \(batches) batches of \(batch) calls, 4 functions")
        var sink = 0.0
        func time(_ body: (Int) -> Double) -> Figure {
            var perCall: [Double] = []
            perCall.reserveCapacity(batches)
            for b in 0..<batches {
                let start = MonotonicClock.now()
                for i in 0..<batch { sink += body((b * batch + i) & 255) }
                perCall.append(Double(MonotonicClock.now() - start) / Double(batch))
            }
            return Figure(p50_ns: round1(percentile(perCall, 50)), p99_ns: round1(percentile(perCall, 99)))
        }
        let fk = time { model.calcTipPose(postures[$0]).translation.x }
        let jac = time { i in
            var j = Jacobian6(count: model.jointCount)
            return model.calcTipPoseAndJacobian(postures[i], into: &j).translation.x + j.linear(2).x
        }
        let dlsSwift = time { model.dlsStep(postures[$0], target: targets[$0], options: swiftOptions)[0] }
        let dlsEigen = time { model.dlsStep(postures[$0], target: targets[$0], options: eigenOptions)[0] }
        if sink.isNaN { Output.progress("(unexpected NaN in the benchmark sink)") }

        let eigenOverSwift = ratio(dlsEigen.p50_ns, dlsSwift.p50_ns)
        let r = Result(
            robot: description.name, joints: model.jointCount, forward_kinematics: fk, pose_and_jacobian: jac,
            dls_step_swift: dlsSwift, dls_step_eigen: dlsEigen, ratio_eigen_over_swift_p50: eigenOverSwift,
            max_step_difference: maxDifference, chosen: "swift",
            note: "a DLS step = pose + analytic Jacobian + damped 3x3 solve (+ the clamping loop); the two solvers differ only in the solve"
        )
        if json {
            try Output.json(r)
        } else {
            print("""
            kinematics of \(r.robot) (\(r.joints) joints), ns per call (p50 / p99 of batch means)
              forward kinematics        \(fk.p50_ns) / \(fk.p99_ns)
              pose + Jacobian           \(jac.p50_ns) / \(jac.p99_ns)
              DLS step, Swift solve     \(dlsSwift.p50_ns) / \(dlsSwift.p99_ns)
              DLS step, Eigen solve     \(dlsEigen.p50_ns) / \(dlsEigen.p99_ns)   (×\(eigenOverSwift) of Swift)
              largest difference between the two steps: \(maxDifference)
            """)
        }
    }
}
