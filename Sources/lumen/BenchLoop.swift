import ArgumentParser
import CommandSupport
import Control
import Core
import CRealtime
import Foundation
import Histogram

/// `lumen bench loop`: wake-up lateness of the Swift cycle runner against a C reference loop,
/// run alternately in one invocation so both see the same machine.
struct BenchLoop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loop",
        abstract: "Wake-up lateness of the Swift cycle runner against a C clock_nanosleep loop."
    )

    @Option(help: "Cycle rate (Hz, 1…20000).") var rate = 1000
    @Option(help: "Total time (s, 0.1…3600), shared equally between the two loops.") var seconds = 10.0
    @Option(help: "Length of each alternating block (s, 0.001…60; at least one cycle, at most half of --seconds).") var block = 0.5
    @Option(help: "Robot file for the Swift cycle's stages.") var robot = DemoRigFiles.defaultRobot
    @Flag(help: "Print JSON on stdout.") var json = false
    @OptionGroup var realtime: RealtimeFlags

    struct LoopFigures: Encodable {
        var cycles: Int64
        var p50_us: Double
        var p99_us: Double
        var p999_us: Double
        var max_us: Double
        var overruns: Int64
        var missed_deadlines: Int64
    }

    struct Result: Encodable {
        var rate_hz: Int
        var seconds: Double
        var block_s: Double
        var swift: LoopFigures
        var c_reference: LoopFigures
        var ratio_p99: Double
        var ratio_p999: Double
        var realtime: [String: String]
        var warnings: [String]
        var note: String
    }

    func validate() throws {
        try Check.count(rate, "--rate", in: 1...20_000, unit: "Hz")
        try Check.number(seconds, "--seconds", in: 0.1...3600, unit: "s")
        try Check.number(block, "--block", in: 0.001...60, unit: "s")
        // Fewer than one cycle a block would still run one; beyond half the time, one block each overruns it.
        guard block * Double(rate) >= 1 else {
            throw ValidationError("--block must be at least one cycle (1/--rate = \(Check.text(1 / Double(rate))) s), got \(Check.text(block)) s")
        }
        guard block <= seconds / 2 else {
            throw ValidationError("--block must be at most half of --seconds (\(Check.text(seconds / 2)) s: each loop gets half), got \(Check.text(block)) s")
        }
    }

    func run() throws {
        let period = Nanoseconds.perSecond / Nanoseconds(rate)
        let rig = try DemoRig(robotPath: robot, period: period)
        let blockCycles = max(1, Int64((block * Double(rate)).rounded()))
        let blocks = max(1, Int((seconds / 2 / block).rounded()))
        var cLateness = [Int64](repeating: 0, count: Int(blockCycles))
        var cHistogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: CycleTiming.histogramCeiling, numberOfSignificantValueDigits: .three)
        var cOverruns: Int64 = 0, cMissed: Int64 = 0, cCycles: Int64 = 0
        let runner = rig.runner

        try runner.configure()
        try runner.activate()
        Output.progress("bench loop: \(blocks) blocks of \(blockCycles) cycles each for Swift and C at \(rate) Hz (~\(Int(seconds)) s)")
        let (outcome, warnings) = CycleThread.run(options: realtime.options) { () -> Error? in
            do {
                for b in 0..<blocks {
                    try runner.run(cycles: blockCycles)
                    let r = cLateness.withUnsafeMutableBufferPointer { lumen_ref_loop_run(period, blockCycles, $0.baseAddress) }
                    for l in cLateness.prefix(Int(r.cycles)) { _ = cHistogram.record(min(UInt64(clamping: l), CycleTiming.histogramCeiling)) }
                    cOverruns += r.overruns; cMissed += r.missed; cCycles += r.cycles
                    Output.status("bench loop: block \(b + 1)/\(blocks)")
                }
                Output.endStatus()
                return nil
            } catch { return error }
        }
        if let outcome { throw outcome }
        runner.finalize()

        let s = runner.report()
        let swift = LoopFigures(cycles: s.cycles, p50_us: us(s.lateness.p50), p99_us: us(s.lateness.p99), p999_us: us(s.lateness.p999),
                                max_us: us(s.lateness.max), overruns: s.overruns, missed_deadlines: s.missedDeadlines)
        let c = TimingSummary(cHistogram)
        let cFig = LoopFigures(cycles: cCycles, p50_us: us(c.p50), p99_us: us(c.p99), p999_us: us(c.p999), max_us: us(c.max),
                               overruns: cOverruns, missed_deadlines: cMissed)
        let result = Result(
            rate_hz: rate, seconds: seconds, block_s: block, swift: swift, c_reference: cFig,
            ratio_p99: ratio(swift.p99_us, cFig.p99_us), ratio_p999: ratio(swift.p999_us, cFig.p999_us),
            realtime: ["fifo": realtime.fifoPriority.map(String.init) ?? "off", "mlock": "\(realtime.lockMemory)", "cpu": realtime.cpu.map(String.init) ?? "any"],
            warnings: warnings,
            note: "lateness = wake-up time minus deadline; the Swift side runs the full demo cycle (kinematic robot, tip servo), the C side only sleeps"
        )
        for w in warnings { Output.progress("warning: \(w)") }
        if json {
            try Output.json(result)
        } else {
            print("wake-up lateness at \(rate) Hz (µs)     p50      p99     p99.9       max  overruns")
            for (name, f) in [("Swift cycle runner", swift), ("C reference loop  ", cFig)] {
                print(String(format: "  %@ %9.1f %8.1f %9.1f %9.1f  %8lld", name, f.p50_us, f.p99_us, f.p999_us, f.max_us, f.overruns))
            }
            print(String(format: "  ratio Swift/C: p99 %.2f, p99.9 %.2f", result.ratio_p99, result.ratio_p999))
        }
    }

}
