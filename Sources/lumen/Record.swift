import ArgumentParser
import CommandSupport
import Core
import Foundation
import Recording

/// `lumen record …`: recordings (MCAP) of runs.
struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Procedure recordings (MCAP): record a synthetic run, describe a recording.",
        subcommands: [RecordSynthetic.self, RecordInfo.self]
    )
}

/// The recorder's options, shared by the commands that record.
struct RecorderOptions: ParsableArguments {
    @Option(help: "Record every Nth control cycle (1…1000; 1 is full rate).") var cycleDecimation = 1
    @Option(help: "Record every Nth frame of each plane (1…100).") var frameDecimation = 1
    @Option(help: "Frame compression: png (lossless 16-bit) or jpeg (8-bit, for viewing).") var frameFormat = FrameFormat.png
    @Option(help: "PNG zlib level (0…9) or JPEG quality (1…100); default 1 for PNG, 90 for JPEG.") var frameQuality: Int?
    @Option(help: "Close and sync a chunk at least every this many ms (1…100): what a crash may lose.") var chunkMs = 25
    @Option(help: "Frames that may wait for an encoder (1…256); a frame that finds them all waiting is not recorded, and counted.") var encoderQueue = 16
    @Option(help: "Frame encoder threads (1…4).") var encoderThreads = 1

    func validate() throws {
        try Check.count(cycleDecimation, "--cycle-decimation", in: 1...1000)
        try Check.count(frameDecimation, "--frame-decimation", in: 1...100)
        try Check.count(frameQuality, "--frame-quality", in: frameFormat == .png ? 0...9 : 1...100)
        try Check.count(chunkMs, "--chunk-ms", in: 1...100)
        try Check.count(encoderQueue, "--encoder-queue", in: 1...256)
        try Check.count(encoderThreads, "--encoder-threads", in: 1...4)
    }

    var settings: RecorderSettings {
        var s = RecorderSettings()
        s.cycleDecimation = cycleDecimation
        s.frameDecimation = frameDecimation
        s.frameFormat = frameFormat
        s.frameQuality = frameQuality ?? (frameFormat == .png ? 1 : 90)
        s.chunkPeriod = Nanoseconds(chunkMs) * .perMillisecond
        s.encoderQueue = encoderQueue
        s.encoderThreads = encoderThreads
        return s
    }
}

extension FrameFormat: ExpressibleByArgument {}

/// `lumen record synthetic`: records a synthetic run (no runtime needed), optionally serving it
/// over OpenIGTLink and Prometheus while it runs.
struct RecordSynthetic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synthetic",
        abstract: "Record a synthetic run (cycle records and rendered, tracked frames) to OUT/recording.mcap."
    )

    @Option(help: "Folder for the recording (recording.mcap).") var out: String
    @Option(help: "Seconds to run (0.1…86400).") var seconds = 5.0
    @Option(help: "Cycle rate in Hz (10…2000).") var rate = 1000.0
    @Option(help: "Imaging planes (0…2).") var planes = 2
    @Option(help: "Frame side in px (64…2048).") var size = 512
    @Option(help: "Frames per second per plane (1…60).") var fps = 15.0
    @Option(help: "Distinct frames rendered per plane before the run (1…600).") var pool = 16
    @Option(help: "Serve OpenIGTLink on this TCP port of 127.0.0.1 while recording (1024…65535).") var igtlPort: Int?
    @Flag(help: "Accept navigation targets from OpenIGTLink clients.") var igtlAcceptTargets = false
    @Option(help: "OpenIGTLink protocol: 3 (v3 header with metadata) or 2 (for clients built on OpenIGTLink 2).") var igtlProtocol = 3
    @Option(help: "Serve Prometheus metrics on this TCP port of 127.0.0.1 while recording (1024…65535).") var metricsPort: Int?
    @OptionGroup var recorder: RecorderOptions
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.outputFolder(out, "--out", files: ["recording.mcap"])
        try Check.number(seconds, "--seconds", in: 0.1...86400, unit: "s")
        try Check.number(rate, "--rate", in: 10...2000, unit: "Hz")
        try Check.count(planes, "--planes", in: 0...2)
        try Check.count(size, "--size", in: 64...2048, unit: "px")
        try Check.number(fps, "--fps", in: 1...60, unit: "fps")
        try Check.count(pool, "--pool", in: 1...600)
        try Check.count(igtlPort, "--igtl-port", in: 1024...65535)
        try Check.count(igtlProtocol, "--igtl-protocol", in: 2...3)
        try Check.count(metricsPort, "--metrics-port", in: 1024...65535)
    }

    func run() throws {
        var s = SyntheticSettings()
        s.cycleRate = rate; s.planes = planes; s.frameSize = size; s.framesPerSecond = fps; s.framePool = pool
        try OutputPath.createFolder(out)
        let path = out + "/recording.mcap"
        Output.progress("record: rendering \(planes) × \(pool) frames of \(size)²")
        let run = try SyntheticRun(settings: s)
        let doc = ConfigurationDocument(name: "synthetic", bytes: Array(
            "cycle_rate_hz: \(rate)\nplanes: \(planes)\nframe_size_px: \(size)\nframes_per_second: \(fps)\nframe_pool: \(pool)\n".utf8))
        var igtl: IGTLServer?
        if let igtlPort {
            var settings = IGTLServerSettings()
            settings.port = UInt16(igtlPort)
            settings.acceptTargets = igtlAcceptTargets
            settings.protocolVersion = igtlProtocol
            do { igtl = try IGTLServer(port: run, settings: settings) } catch { throw CommandFailure(error.description) }
            igtl?.start()
            Output.progress("record: OpenIGTLink on 127.0.0.1:\(igtl?.boundPort ?? 0)")
        }
        var metrics: MetricsEndpoint?
        if let metricsPort {
            do { metrics = try MetricsEndpoint(port: run, bindPort: UInt16(metricsPort)) } catch { throw CommandFailure(error.description) }
            metrics?.start()
            Output.progress("record: metrics on http://127.0.0.1:\(metrics?.boundPort ?? 0)/metrics")
        }
        // The recorder feeds the per-cycle histograms: it is the one reader of every cycle record.
        let rec: Recorder
        do { rec = try Recorder(path: path, settings: recorder.settings, tap: run, port: run, configuration: [doc], metrics: metrics?.metrics) } catch {
            throw CommandFailure(error.description)
        }
        run.start()
        rec.start()
        Output.progress("record: recording to \(path) for \(seconds) s")
        let end = MonotonicClock.now() + Nanoseconds.fromSeconds(seconds)
        while MonotonicClock.now() < end {
            _ = MonotonicClock.sleep(until: min(end, MonotonicClock.now() + 200 * .perMillisecond))
        }
        run.stop()
        let report = rec.stop()
        igtl?.stop()
        metrics?.stop()
        if json {
            try Output.json(report)
        } else {
            print("recorded \(report.cycleRecords) cycle records, \(report.frames) frames, \(report.events) events in \(report.chunks) chunks, "
                + "\(report.bytes) bytes to \(path)")
            print("not recorded: \(report.cycleRecordsLost) cycle records and \(report.framesLost) frames lost, "
                + "\(report.framesEncoderBusy) frames with every encoder busy, \(report.framesNotEncoded) frames not encoded, \(report.eventsLost) events lost")
        }
        if let e = report.writeError { throw CommandFailure("the recording stopped early: \(e)") }
    }
}

/// `lumen record info FILE`.
struct RecordInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "What a recording holds: channels, message counts, time span, configuration hash, damage."
    )

    @Argument(help: "The MCAP file.") var file: String
    @Flag(help: "Print JSON on stdout.") var json = false

    func run() throws {
        let info: RecordingInfo
        do { info = try RecordingInfo.read(file) } catch let e as MCAPError { throw CommandFailure(e.description) }
        if json { try Output.json(info); return }
        print("\(info.path): \(info.bytes) bytes, \(info.messages) messages in \(info.chunks) chunks, "
            + String(format: "%.3f s", info.seconds) + (info.complete ? "" : " (not closed by the recorder)"))
        print("configuration sha256: \(info.configurationSHA256 ?? "none recorded")")
        for c in info.channels { print("  \(c.topic)  \(c.schema)  \(c.messages)") }
        if let r = info.recorderReport {
            print("recorder: " + r.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if !info.notRecorded.isEmpty {
            print("not recorded" + (info.complete ? "" : " (as of the recorder's last status)") + ": "
                + info.notRecorded.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        for d in info.damage { print("damage: \(d)") }
    }
}
