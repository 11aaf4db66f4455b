import ArgumentParser
import CommandSupport
import Core
import Foundation
import Recording
import Runtime

/// `lumen bench record`: the recorder's figures against the synthetic source.
struct RecordBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Recorder throughput at full cycle rate with 2 × 15 fps 1024² frames (MB/s, CPU %), data lost per kill -9, OpenIGTLink tip latency."
    )

    @Option(help: "Seconds of recording for the throughput figure (1…600).") var seconds = 10.0
    @Option(help: "Frame side in px for the throughput figure (64…2048).") var size = 1024
    @Option(help: "Recording processes killed with SIGKILL for the loss figure (0…1000; 0 skips it).") var kills = 20
    @Option(help: "Seconds of OpenIGTLink tip stream for the latency figure (1…600).") var igtlSeconds = 5.0
    @Option(help: "OpenIGTLink tip TRANSFORMs per second (1…1000).") var tipRate = 100.0
    @Option(help: "Folder for the recordings (scratch; a temporary folder when not given).") var out: String?
    @Flag(help: "The figures on the live runtime instead: cycle lateness with the recorder on against off in one run, throughput, frames and records lost, sync interval, and --kills runs of lumen demo --record killed with SIGKILL.") var live = false
    @Option(help: "With --live: phases, alternately recorder off and on (2…20).") var phases = 4
    @Option(help: "With --live: seconds per phase (1…600).") var phaseSeconds = 8.0
    @OptionGroup var recorder: RecorderOptions
    /// With --live: the cycle as the demo runs it (`--fifo`), so that the ratio is the recorder's
    /// cost to a real-time cycle, not the scheduler sharing two cores with PNG encoding.
    @OptionGroup var realtime: RealtimeFlags
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.number(seconds, "--seconds", in: 1...600, unit: "s")
        try Check.count(size, "--size", in: 64...2048, unit: "px")
        try Check.count(kills, "--kills", in: 0...1000)
        try Check.number(igtlSeconds, "--igtl-seconds", in: 1...600, unit: "s")
        try Check.number(tipRate, "--tip-rate", in: 1...1000, unit: "Hz")
        if let out { try Check.outputFolder(out, "--out", files: ["throughput.mcap"]) }
        try Check.count(phases, "--phases", in: 2...20)
        try Check.number(phaseSeconds, "--phase-seconds", in: 1...600, unit: "s")
    }

    /// `--live`: the live runtime's figures.
    func runLive(folder: String) throws {
        var settings = LiveSettings()
        settings.realtime = realtime.options
        let robotPath = DemoRigFiles.locate(settings.setup.robot)
        let robot = try DemoRigFiles.loadRobot(settings.setup.robot)
        settings.setup.robot = robotPath
        LiveRuntime.installSignalHandlers()
        let docs = try AttachmentSettings.configurationDocuments([robotPath])
        var figures: RecorderLiveBench.Figures
        do {
            figures = try RecorderLiveBench.run(settings, robot: robot, recorder: recorder.settings, phases: phases, phaseSeconds: phaseSeconds,
                                                folder: folder, configuration: docs, progress: { Output.status($0) })
        } catch let e as RuntimeError { throw CommandFailure(e.description) }
        Output.endStatus()
        if kills > 0 {
            let lumen = Bundle.main.executablePath ?? CommandLine.arguments[0]
            figures.kill9 = try RecorderLiveBench.killLoss(lumen: lumen, kills: kills, folder: folder, progress: { Output.status($0) })
            Output.endStatus()
        }
        if json { try Output.json(figures); return }
        let f = figures
        print(String(format: "live, %d × %.0f s phases, %@ frames: cycle lateness p99 %.1f µs recorder on, %.1f µs off (ratio %@; %d / %d cycles)",
                     f.phases, f.phase_seconds, f.frame_format, f.lateness_us_p99_recorder_on, f.lateness_us_p99_recorder_off,
                     f.lateness_ratio.map { String(format: "%.2f", $0) } ?? "n/a", f.cycles_recorder_on, f.cycles_recorder_off))
        print(String(format: "recorded %.1f s: %.2f MB/s, %d cycle records (%d lost), %d of %d frames (lost in the runtime %d, skipped %d, encoder busy %d, not encoded %d, not written %d, unaccounted %d; encoder queue peak %d, encode %.1f ms/frame)",
                     f.recorded_seconds, f.megabytes_per_second, f.cycle_records, Int(f.cycle_records_lost), f.frames, Int(f.frames_offered),
                     Int(f.frames_lost), f.frames_skipped, f.frames_encoder_busy, f.frames_not_encoded, f.frames_not_written, f.frames_unaccounted,
                     f.encoder_queue_high_water, f.frame_encode_ms_mean))
        print("whole run: \(f.frames_produced_run) frames produced, \(f.frames_unaccounted_run) neither drained nor counted lost")
        func ms(_ v: Double?) -> String { v.map { String(format: "%.1f ms", $0) } ?? "n/a" }
        if let fast = f.png_encode_cpu_ms, let adaptive = f.png_encode_cpu_ms_adaptive_filters {
            print(String(format: "PNG level 1, one frame: %.1f ms CPU, %d bytes (libpng's adaptive filters: %.1f ms, %d bytes)",
                         fast, f.png_bytes ?? 0, adaptive, f.png_bytes_adaptive_filters ?? 0))
        }
        print("fdatasync (own thread): stall p99 \(ms(f.sync_stall_ms_p99)), max \(ms(f.sync_stall_ms_max)); interval p99 \(ms(f.sync_interval_ms_p99)), max \(ms(f.sync_interval_ms_max)); "
            + "chunk write on the drain p99 \(ms(f.chunk_write_ms_p99)), max \(ms(f.chunk_write_ms_max)); run ended: \(f.ending)")
        print("kill -9 loss bound measured at every chunk write (\(String(format: "%.0f", f.chunk_period_ms)) ms chunks): p99 \(ms(f.kill_loss_bound_ms_p99)), "
            + "max \(ms(f.kill_loss_bound_ms_max)); ring wait max \(ms(f.drain_lag_ms_max)); chunk CRC \(f.chunk_crc_ms_per_mb.map { String(format: "%.3f ms/MB", $0) } ?? "n/a"); "
            + "recorder thread nice \(f.recorder_thread_nice.map { "\($0)" } ?? "n/a")")
        if let k = f.kill9 {
            print(String(format: "kill -9 of lumen demo --record, %d kills in %.0f s: %d files readable (reference reader to the last whole chunk: %@); data lost p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d over 100 ms",
                         k.kills, k.seconds, k.readable, k.reference_reader_readable.map { "\($0)" } ?? "not installed", k.lost_ms_p50, k.lost_ms_p99,
                         k.lost_ms_max, k.over_100_ms))
            for m in k.reference_reader_mismatches ?? [] { print("  reference reader differs (messages ours / its): \(m)") }
        }
    }

    struct Result: Encodable {
        var throughput: RecorderBench.Throughput
        var kill9: RecorderBench.KillLoss?
        var igtl_tip_latency: RecorderBench.Latency
        var cycle_lateness_recorder_on_off: String
        /// The machine's 1-minute load average at the end: these figures are wall-clock on a shared machine.
        var load_average_1min: Double?
    }

    func run() throws {
        let folder = out ?? FileManager.default.temporaryDirectory.appendingPathComponent("lumen-bench-record-\(getpid())").path
        try OutputPath.createFolder(folder)
        defer { if out == nil { try? FileManager.default.removeItem(atPath: folder) } }
        if live { return try runLive(folder: folder) }
        var s = SyntheticSettings()
        s.cycleRate = 1000; s.planes = 2; s.frameSize = size; s.framesPerSecond = 15; s.framePool = 8
        Output.progress("bench record: throughput, \(seconds) s at 1 kHz with 2 × 15 fps \(size)² frames")
        let throughput = try RecorderBench.throughput(seconds: seconds, settings: s, recorder: recorder.settings, path: folder + "/throughput.mcap")
        var kill9: RecorderBench.KillLoss?
        if kills > 0 {
            Output.progress("bench record: \(kills) recordings killed with SIGKILL")
            let lumen = Bundle.main.executablePath ?? CommandLine.arguments[0]
            kill9 = try RecorderBench.killLoss(lumen: lumen, kills: kills, chunkMs: recorder.chunkMs, folder: folder)
        }
        Output.progress("bench record: OpenIGTLink tip latency, \(igtlSeconds) s at \(tipRate) Hz")
        let latency = try RecorderBench.igtlLatency(seconds: igtlSeconds, tipRate: tipRate)
        let result = Result(throughput: throughput, kill9: kill9, igtl_tip_latency: latency,
                            cycle_lateness_recorder_on_off: "on the live runtime: lumen bench record --live",
                            load_average_1min: (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) })
        if json { try Output.json(result); return }
        let t = throughput
        print(String(format: "throughput: %.1f MB/s, recorder thread %.0f %% of a core, process %.0f %%; %d/%d frames, %d cycle records (lost: %d frames, %d records); encode %.1f ms/frame",
                     t.megabytes_per_second, t.recorder_cpu_pct, t.process_cpu_pct, t.frames, t.frames_offered, t.cycle_records,
                     Int(t.frames_lost), Int(t.cycle_records_lost), t.frame_encode_ms_mean))
        func ms(_ v: Double?) -> String { v.map { String(format: "%.1f ms", $0) } ?? "n/a" }
        print(String(format: "chunks every %.0f ms: kill -9 loss bound at each write p99 %@, max %@; CRC-32 %.0f MB/s (byte at a time: %.0f MB/s), %.1f %% of the recorder thread",
                     t.chunk_period_ms, ms(t.kill_loss_bound_ms_p99), ms(t.kill_loss_bound_ms_max), t.crc32_mb_per_s, t.crc32_mb_per_s_bytewise,
                     t.chunk_crc_pct_of_recorder_cpu))
        if let k = kill9 {
            print(String(format: "kill -9: %d/%d files readable; data lost p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d over 100 ms (chunks every %d ms)",
                         k.readable, k.kills, k.lost_ms_p50, k.lost_ms_p99, k.lost_ms_max, k.over_100_ms, k.chunk_ms))
        }
        print(String(format: "OpenIGTLink tip: %d samples at %.0f Hz, latency p50 %.2f ms, p99 %.2f ms", latency.samples, latency.tip_rate_hz,
                     latency.p50_ms, latency.p99_ms))
        if let load = result.load_average_1min { print(String(format: "load average (1 min): %.2f on %d CPUs", load, ProcessInfo.processInfo.processorCount)) }
    }
}
