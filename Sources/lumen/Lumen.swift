import ArgumentParser
import CommandSupport
import Foundation
import MonitorCommand

@main
struct Lumen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lumen",
        abstract: "Lumen: an open control stack for image-guided catheter robots.",
        subcommands: [Demo.self, Bench.self, Robot.self, SimCommand.self, DICOMCommand.self, Track.self, Eval.self, SafetyCommand.self, Hil.self, ConsoleCLI.self, Record.self, ReplayCommand.self]
    )
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks. Each prints JSON with --json; figures are medians and tails of one run.",
        subcommands: [BenchLoop.self, BenchCycle.self, BenchKinematics.self, BenchLink.self, BenchSim.self, BenchImaging.self, BenchLive.self, BenchConsole.self, RecordBench.self]
    )
}

/// Options that put the cycle thread on real-time settings, where the system allows them.
struct RealtimeFlags: ParsableArguments {
    @Option(name: .customLong("fifo"), help: "Run the cycle thread SCHED_FIFO at this priority (1…99).")
    var fifoPriority: Int32?

    @Flag(name: .customLong("mlock"), help: "Lock all memory pages (mlockall).")
    var lockMemory = false

    @Option(name: .customLong("cpu"), help: "Pin the cycle thread to this CPU (0…the number of CPUs − 1).")
    var cpu: Int32?

    func validate() throws {
        try Check.count(fifoPriority, "--fifo", in: 1...99)
        try Check.count(cpu, "--cpu", in: 0...Int32(clamping: max(1, ProcessInfo.processInfo.processorCount) - 1))
    }

    var options: RealtimeOptions { RealtimeOptions(fifoPriority: fifoPriority, lockMemory: lockMemory, cpu: cpu) }
}

import Control
