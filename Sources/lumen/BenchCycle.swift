import ArgumentParser
import CommandSupport
import Control
import Core
import Foundation

/// `lumen bench cycle`: what one full cycle costs, run back to back without sleeping.
struct BenchCycle: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cycle",
        abstract: "Compute time of one full cycle (decode state, kinematics, DLS step, controller, encode command) and allocations per cycle."
    )

    @Option(help: "Cycles to measure (1000…100000000).") var cycles = 200_000
    @Option(help: "Robot file.") var robot = DemoRigFiles.defaultRobot
    @Flag(help: "Print JSON on stdout.") var json = false
    @OptionGroup var realtime: RealtimeFlags

    struct Result: Encodable {
        var robot: String
        var joints: Int
        var cycles: Int64
        var p50_ns: UInt64
        var p99_ns: UInt64
        var p999_ns: UInt64
        var max_ns: UInt64
        var allocs_per_cycle: Double
        var allocations: Int64
        var warnings: [String]
        var note: String
    }

    func validate() throws {
        try Check.count(cycles, "--cycles", in: 1000...100_000_000)
    }

    func run() throws {
        // The cycle's nominal period is irrelevant here: the free-running clock never sleeps.
        let rig = try DemoRig(robotPath: robot, period: 1_000_000, clock: FreeRunningCycleClock())
        let runner = rig.runner
        try runner.configure()
        try runner.activate()
        Output.progress("bench cycle: \(cycles) cycles of \(rig.description.name)")
        let (outcome, warnings) = CycleThread.run(options: realtime.options) {
            CycleThread.countingAllocations(warmUp: { try runner.run(cycles: 2000); runner.resetStatistics() },
                                            measured: { try runner.run(cycles: Int64(cycles)) })
        }
        let allocations = try outcome.get()
        let report = runner.report()
        runner.finalize()
        let r = Result(
            robot: rig.description.name, joints: rig.model.jointCount, cycles: report.cycles,
            p50_ns: report.compute.p50, p99_ns: report.compute.p99, p999_ns: report.compute.p999, max_ns: report.compute.max,
            allocs_per_cycle: Double(allocations) / Double(max(1, report.cycles)), allocations: allocations, warnings: warnings,
            note: "time from wake-up to the end of write, per cycle: state decode, forward kinematics, Jacobian, one DLS step, speed and travel limits, command encode, the simulated drives' side of both images"
        )
        if json {
            try Output.json(r)
        } else {
            print("one cycle (\(r.joints) joints, \(r.cycles) cycles): p50 \(r.p50_ns) ns, p99 \(r.p99_ns) ns, p99.9 \(r.p999_ns) ns, max \(r.max_ns) ns; \(r.allocs_per_cycle) allocations per cycle")
        }
    }
}
