import Control
import Core
import Foundation
import Runtime
import Synchronization

/// The recorder's figures on the live runtime (`lumen bench record --live`): one live run, its
/// recorder switched on and off in alternating phases, so that the cycle's lateness with it and
/// without it come from the same run under the same load; and `lumen demo --record` runs killed
/// with SIGKILL, for what a crash of the live system loses.
public enum RecorderLiveBench {
    public struct Figures: Sendable, Codable, Equatable {
        public var phases: Int
        public var phase_seconds: Double
        public var planes: Int
        public var fps: Double
        public var frame_format: String
        public var frame_quality: Int
        /// µs: the cycle's lateness p99 over the phases with the recorder off and on, and on / off.
        public var lateness_us_p99_recorder_off: Double
        public var lateness_us_p99_recorder_on: Double
        public var lateness_ratio: Double?
        public var cycles_recorder_off: Int
        public var cycles_recorder_on: Int
        /// Over the phases with the recorder on.
        public var recorded_seconds: Double
        public var megabytes_per_second: Double
        public var cycle_records: Int
        public var cycle_records_lost: UInt64
        /// Frames the runtime handed out while a recorder drained it (counted in front of the
        /// recorder, from its first drain to its last), and those overwritten in its queue then.
        public var frames_offered: UInt64
        public var frames: Int
        /// Frames not recorded, by reason (see `RecorderReport`).
        public var frames_lost: UInt64
        public var frames_skipped: Int
        public var frames_encoder_busy: Int
        public var frames_not_encoded: Int
        public var frames_not_written: Int
        /// frames_offered − frames − every reason: 0 when nothing is lost silently.
        public var frames_unaccounted: Int
        /// The whole run, recorder on or off: frames the imaging thread produced against those
        /// drained (by the recorders or the off phases' drain) plus those lost in the queue.
        public var frames_produced_run: UInt64
        public var frames_unaccounted_run: Int
        public var encoder_queue_high_water: Int
        public var frame_encode_ms_mean: Double
        /// CPU ms to encode one of the run's frames as PNG (level 1, mean of 5, same run): the
        /// encoding used now, and libpng's adaptive filters as before.
        public var png_encode_cpu_ms: Double?
        public var png_encode_cpu_ms_adaptive_filters: Double?
        public var png_bytes: Int?
        public var png_bytes_adaptive_filters: Int?
        /// ms between consecutive chunk syncs (p99 and max over the phases).
        public var sync_interval_ms_p99: Double?
        public var sync_interval_ms_max: Double?
        /// ms an fdatasync took on the syncing thread (p99, max): the stall it no longer puts on the drain.
        public var sync_stall_ms_p99: Double?
        public var sync_stall_ms_max: Double?
        /// ms the draining thread spent writing a chunk (p99, max).
        public var chunk_write_ms_p99: Double?
        public var chunk_write_ms_max: Double?
        /// The recorders' own measure of what a `kill -9` would have lost at its worst moments
        /// (just before each chunk write): p99 and max over every chunk of the on phases (ms).
        public var kill_loss_bound_ms_p99: Double?
        public var kill_loss_bound_ms_max: Double?
        /// The longest a cycle record waited in the runtime's ring for the drain (ms).
        public var drain_lag_ms_max: Double?
        /// The chunks' CRC-32 on the draining thread: ms per MB written, and the recorder thread's nice.
        public var chunk_crc_ms_per_mb: Double?
        public var recorder_thread_nice: Int32?
        public var chunk_period_ms: Double
        /// The cycle thread's SCHED_FIFO priority (nil: the ordinary scheduler), and what the
        /// runtime could not apply of it.
        public var cycle_fifo: Int32?
        public var realtime_warnings: [String]?
        public var ending: String
        public var kill9: KillLoss?
    }

    public struct KillLoss: Sendable, Codable, Equatable {
        public var kills: Int
        /// Runs whose file our reader read cycle records from, and (when Python's `mcap` is
        /// installed) those the reference reader read up to the last complete chunk: the same
        /// number of messages as our reader, which reads every whole chunk.
        public var readable: Int
        public var reference_reader_readable: Int?
        /// Files the reference reader read fewer (or more) messages from than ours: "kill-K: ours / its".
        public var reference_reader_mismatches: [String]?
        /// s of wall clock the kills took, in all.
        public var seconds: Double
        /// Per kill: the runtime's cycle period times the cycles it produced before the kill that
        /// the file lacks (docs/recording.md, "Data lost by a kill -9").
        public var lost_ms_p50: Double
        public var lost_ms_p99: Double
        public var lost_ms_max: Double
        public var over_100_ms: Int
        public var lost_ms: [Double]
    }

    /// A tap in front of the runtime's that keeps each drained cycle record's lateness, whoever drains.
    final class LatenessTap: RecordingTap, @unchecked Sendable {
        let inner: any RecordingTap
        private let lateness = Mutex<[Int64]>([])
        /// Frames handed to whoever drained, and the queue's lost count at the last drain.
        private let frameCounts = Mutex<(drained: UInt64, lost: UInt64)>((0, 0))
        init(_ inner: any RecordingTap) { self.inner = inner }

        var frameCount: (drained: UInt64, lost: UInt64) { frameCounts.withLock { $0 } }

        func drainCycleRecords(_ body: (borrowing CycleRecord) -> Void) -> (drained: Int, lostTotal: UInt64) {
            var late: [Int64] = []
            let r = inner.drainCycleRecords { record in
                late.append(record.lateness)
                body(record)
            }
            lateness.withLock { $0 += late }
            return r
        }

        func drainFrames(_ body: (LiveFrame) -> Void) -> (drained: Int, lostTotal: UInt64) {
            let r = inner.drainFrames(body)
            frameCounts.withLock { $0.drained += UInt64(r.drained); $0.lost = r.lostTotal }
            return r
        }

        func take() -> [Int64] { lateness.withLock { l in defer { l.removeAll() }; return l } }
    }

    /// What drains the tap while the recorder is off: the records and frames are taken and
    /// dropped, as cheaply as can be, so the ring and the frame queue behave as with a recorder.
    final class Discarder: @unchecked Sendable {
        let running = Atomic<Bool>(true)
        let done = DispatchSemaphore(value: 0)
        private(set) var lostCycles: UInt64 = 0
        private(set) var lostFrames: UInt64 = 0
        init(_ tap: any RecordingTap) {
            let t = Thread { [self] in
                while running.load(ordering: .acquiring) {
                    drain(tap)
                    usleep(5000)
                }
                drain(tap)
                done.signal()
            }
            t.name = "lumen-bench-drain"
            t.start()
        }
        private func drain(_ tap: any RecordingTap) {
            lostCycles = tap.drainCycleRecords { _ in }.lostTotal
            lostFrames = tap.drainFrames { _ in }.lostTotal
        }
        func stop() {
            running.store(false, ordering: .releasing)
            done.wait()
        }
    }

    /// One live run (`settings`, navigating as the demo does) with `phases` phases of `phaseSeconds`
    /// each, the recorder off in the even ones and on in the odd ones, recording to `folder`.
    public static func run(_ settings: LiveSettings, robot: RobotDescription, recorder: RecorderSettings, phases: Int, phaseSeconds: Double,
                           folder: String, configuration: [ConfigurationDocument] = [],
                           progress: (@Sendable (String) -> Void)? = nil) throws -> Figures {
        try recorder.validate()
        let runtime = try LiveRuntime(settings, robot: robot)
        let tap = LatenessTap(runtime)
        /// The phases' results, written by the phase thread, read once it has finished.
        final class Phases: @unchecked Sendable {
            var discarder: Discarder?
            var off: [Int64] = [], on: [Int64] = []
            var reports: [RecorderReport] = []
            var lostCyclesBefore: [UInt64] = []
            var framesOffered: UInt64 = 0, framesLost: UInt64 = 0
            var recordedSeconds = 0.0
            var failure: (any Error)?
            let finished = Atomic<Bool>(false)
        }
        let s = Phases()
        s.discarder = Discarder(tap)
        try runtime.start()
        let client = AutomationClient(port: runtime, name: "lumen bench record")
        client.start()
        defer { client.stop() }
        if !runtime.waitForPower() {
            s.discarder?.stop()
            _ = runtime.finish(.completed)
            throw RuntimeError.monitorNeverPowered(log: runtime.monitorLog)
        }
        let vessel = settings.setup.vessel
        Thread { client.navigate(to: vessel, seconds: 30) }.start()
        let phaser = Thread {
            defer { s.finished.store(true, ordering: .releasing) }
            // The start (power, the first images, the target) is in neither phase.
            Thread.sleep(forTimeInterval: 2)
            _ = tap.take()
            for k in 0..<phases {
                let recording = k % 2 == 1
                progress?("bench record --live: phase \(k + 1) of \(phases), recorder \(recording ? "on" : "off")")
                if recording {
                    s.discarder?.stop()
                    s.lostCyclesBefore.append(s.discarder?.lostCycles ?? 0)
                    s.discarder = nil
                    // The frames are counted where they leave the runtime, between the last drain
                    // before the recorder and its own last one: exactly the frames it was offered.
                    let count0 = tap.frameCount
                    let t0 = MonotonicClock.now()
                    let rec: Recorder
                    do {
                        rec = try Recorder(path: folder + "/live-\(k / 2 + 1).mcap", settings: recorder, tap: tap, port: runtime,
                                           configuration: configuration)
                    } catch { s.failure = error; return }
                    _ = tap.take()
                    rec.start()
                    Thread.sleep(forTimeInterval: phaseSeconds)
                    s.on += tap.take()
                    s.reports.append(rec.stop())
                    s.recordedSeconds += Double(MonotonicClock.now() - t0) * 1e-9
                    let count1 = tap.frameCount
                    s.framesLost += count1.lost - count0.lost
                    s.framesOffered += (count1.drained - count0.drained) + (count1.lost - count0.lost)
                    s.discarder = Discarder(tap)
                } else {
                    _ = tap.take()
                    Thread.sleep(forTimeInterval: phaseSeconds)
                    s.off += tap.take()
                }
            }
        }
        phaser.start()
        let ending = runtime.supervise(maxSeconds: Double(phases) * phaseSeconds * 3 + 60) { _ in s.finished.load(ordering: .acquiring) }
        while !s.finished.load(ordering: .acquiring) { usleep(10_000) }
        client.stop()
        let final = runtime.finish(ending)
        s.discarder?.stop()
        if let failure = s.failure { throw failure }
        // Imaging has stopped and the last drain is done: every frame produced was drained or lost.
        let produced = runtime.snapshot().framesAcquired.reduce(0, +)
        let counted = tap.frameCount
        let png = runtime.latestFrame(plane: 0, after: 0).flatMap { pngEncodeCost($0) }
        let (off, on, reports, lostCyclesBefore) = (s.off, s.on, s.reports, s.lostCyclesBefore)
        let (framesOffered, framesLost, recordedSeconds) = (s.framesOffered, s.framesLost, s.recordedSeconds)
        func p99(_ v: [Int64]) -> Double { v.isEmpty ? .nan : percentile(v.map { Double($0) * 1e-3 }, 99) }
        let a = p99(off), b = p99(on)
        let intervals = reports.compactMap(\.syncIntervalP99Ms)
        let frames = reports.reduce(0) { $0 + $1.frames }
        var cyclesLost: UInt64 = 0
        for (r, before) in zip(reports, lostCyclesBefore) { cyclesLost += r.cycleRecordsLost >= before ? r.cycleRecordsLost - before : 0 }
        let skipped = reports.reduce(0) { $0 + $1.framesSkipped }, busy = reports.reduce(0) { $0 + $1.framesEncoderBusy }
        let notEncoded = reports.reduce(0) { $0 + $1.framesNotEncoded }, notWritten = reports.reduce(0) { $0 + $1.framesNotWritten }
        let accounted = Int64(frames + skipped + busy + notEncoded + notWritten) + Int64(framesLost)
        let bytes = reports.reduce(UInt64(0)) { $0 + $1.bytes }
        let encode = reports.reduce(0.0) { $0 + $1.frameEncodeSeconds }
        return Figures(
            phases: phases, phase_seconds: phaseSeconds, planes: runtime.runtimeDescription.planes.count, fps: settings.setup.fps,
            frame_format: recorder.frameFormat.rawValue, frame_quality: recorder.frameQuality,
            lateness_us_p99_recorder_off: a, lateness_us_p99_recorder_on: b, lateness_ratio: a > 0 && b.isFinite ? b / a : nil,
            cycles_recorder_off: off.count, cycles_recorder_on: on.count, recorded_seconds: recordedSeconds,
            megabytes_per_second: recordedSeconds > 0 ? Double(bytes) / recordedSeconds / 1e6 : 0,
            cycle_records: reports.reduce(0) { $0 + $1.cycleRecords },
            cycle_records_lost: cyclesLost,
            frames_offered: framesOffered, frames: frames,
            frames_lost: framesLost, frames_skipped: skipped, frames_encoder_busy: busy, frames_not_encoded: notEncoded,
            frames_not_written: notWritten, frames_unaccounted: Int(Int64(framesOffered) - accounted),
            frames_produced_run: produced, frames_unaccounted_run: Int(Int64(produced) - Int64(counted.drained) - Int64(counted.lost)),
            encoder_queue_high_water: reports.map(\.encoderQueueHighWater).max() ?? 0,
            frame_encode_ms_mean: frames > 0 ? encode / Double(frames) * 1000 : 0,
            png_encode_cpu_ms: png?.fast.ms, png_encode_cpu_ms_adaptive_filters: png?.adaptive.ms,
            png_bytes: png?.fast.bytes, png_bytes_adaptive_filters: png?.adaptive.bytes,
            sync_interval_ms_p99: intervals.max(), sync_interval_ms_max: reports.compactMap(\.syncIntervalMaxMs).max(),
            sync_stall_ms_p99: reports.compactMap(\.syncDurationP99Ms).max(), sync_stall_ms_max: reports.compactMap(\.syncDurationMaxMs).max(),
            chunk_write_ms_p99: reports.compactMap(\.chunkWriteP99Ms).max(), chunk_write_ms_max: reports.compactMap(\.chunkWriteMaxMs).max(),
            kill_loss_bound_ms_p99: reports.compactMap(\.killLossBoundP99Ms).max(),
            kill_loss_bound_ms_max: reports.compactMap(\.killLossBoundMaxMs).max(),
            drain_lag_ms_max: reports.compactMap(\.drainLagMaxMs).max(),
            chunk_crc_ms_per_mb: bytes > 0 ? reports.reduce(0.0) { $0 + $1.chunkCRCSeconds } * 1000 / (Double(bytes) / 1e6) : nil,
            recorder_thread_nice: reports.compactMap(\.threadNice).max(), chunk_period_ms: Double(recorder.chunkPeriod) * 1e-6,
            cycle_fifo: settings.realtime.fifoPriority, realtime_warnings: runtime.warnings.isEmpty ? nil : runtime.warnings,
            ending: final.key, kill9: nil)
    }

    /// CPU ms (this thread's, so a loaded machine does not inflate it; mean of 5) and bytes to
    /// encode `frame` as PNG level 1 now and with libpng's adaptive filters as before.
    static func pngEncodeCost(_ frame: LiveFrame) -> (fast: (ms: Double, bytes: Int), adaptive: (ms: Double, bytes: Int))? {
        func cost(_ encode: () throws(FrameCodecError) -> [UInt8]) -> (ms: Double, bytes: Int)? {
            let n = 5
            var bytes = 0
            let t0 = ThreadCPUTime.seconds()
            for _ in 0..<n {
                do throws(FrameCodecError) { bytes = try encode().count } catch { return nil }
            }
            return ((ThreadCPUTime.seconds() - t0) / Double(n) * 1000, bytes)
        }
        let (w, h, px) = (frame.width, frame.height, frame.pixels)
        guard let fast = cost({ () throws(FrameCodecError) in try FrameCodec.encode(px, width: w, height: h, format: .png, quality: 1) }),
              let adaptive = cost({ () throws(FrameCodecError) in try FrameCodec.encodePNGAdaptiveFilters(px, width: w, height: h, level: 1) })
        else { return nil }
        return (fast, adaptive)
    }

    /// Starts `lumen demo --record` (the live navigation) `kills` times and kills each with
    /// SIGKILL at a varying moment once it records, then measures what its file holds against the
    /// moment of the kill. The monitor process each run started is ended by its id afterwards
    /// (a killed parent cannot end it).
    public static func killLoss(lumen: String, kills: Int, folder: String, seed: UInt64 = 1,
                                progress: ((String) -> Void)? = nil) throws -> KillLoss {
        var rng = SplitMix64(seed: seed)
        var lost: [Double] = []
        var readable = 0
        let started = MonotonicClock.now()
        /// Each readable file with the messages our reader read from it, for the reference reader.
        var files: [(name: String, folder: String, path: String, messages: Int)] = []
        for k in 0..<kills {
            progress?("bench record --live: kill -9 \(k + 1) of \(kills)")
            let out = folder + "/kill-\(k)"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let path = out + "/recording.mcap"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: lumen)
            p.arguments = ["demo", "--record", path, "--out", out, "--time-limit", "120"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(120)
            var cycleChannel: UInt16?
            func lastCycle() -> UInt64 {
                var last: UInt64 = 0
                _ = try? MCAPRecording.read(path, messages: { m in if m.channel == cycleChannel { last = max(last, m.logTime) } },
                                            channels: { c in if c.topic == RecordingChannels.cycle { cycleChannel = c.id } })
                return last
            }
            while Date() < deadline, p.isRunning, lastCycle() == 0 { Thread.sleep(forTimeInterval: 0.02) }
            // A moment spread over several chunk periods (50 ms) after recording began: what a
            // kill loses depends on where in a chunk it falls, not on how long the run was.
            Thread.sleep(forTimeInterval: 0.1 + rng.unit() * 0.4)
            let children = childProcesses(of: p.processIdentifier)
            let killedAt = MonotonicClock.now()
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            for c in children { kill(c, SIGKILL) }
            removeMonitorFolders(of: p.processIdentifier)
            let (messages, newest) = newestCycleRecords(path)
            guard let loss = cyclesLost(newest: newest, killedAt: killedAt) else { try? FileManager.default.removeItem(atPath: out); continue }
            readable += 1
            lost.append(loss)
            files.append(("kill-\(k)", out, path, messages))
        }
        // One interpreter for all the files: starting Python per kill would double the time.
        var reference: Int?, mismatches: [String]?
        if let counts = referenceReaderCounts(files.map(\.path)) {
            reference = 0
            mismatches = []
            for (f, n) in zip(files, counts) {
                if n == f.messages { reference? += 1 } else { mismatches?.append("\(f.name): \(f.messages) / \(n)") }
            }
        }
        for f in files { try? FileManager.default.removeItem(atPath: f.folder) }
        return KillLoss(kills: kills, readable: readable, reference_reader_readable: reference, reference_reader_mismatches: mismatches,
                        seconds: Double(MonotonicClock.now() - started) * 1e-9,
                        lost_ms_p50: lost.isEmpty ? .nan : percentile(lost, 50), lost_ms_p99: lost.isEmpty ? .nan : percentile(lost, 99),
                        lost_ms_max: lost.max() ?? .nan, over_100_ms: lost.filter { $0 > 100 }.count, lost_ms: lost)
    }

    /// The messages our reader reads from a (cut) recording, and its two newest cycle records.
    static func newestCycleRecords(_ path: String) -> (messages: Int, newest: [[UInt8]]) {
        var messages = 0
        var newest: [[UInt8]] = []
        var cycleChannel: UInt16?
        _ = try? MCAPRecording.read(path, messages: { m in
            messages += 1
            if m.channel == cycleChannel {
                newest.append(m.data)
                if newest.count > 2 { newest.removeFirst() }
            }
        }, channels: { c in if c.topic == RecordingChannels.cycle { cycleChannel = c.id } })
        return (messages, newest)
    }

    /// ms of data a kill at `killedAt` lost, from the file's two newest cycle records (their JSON):
    /// the cycles the runtime produced before the kill that the file lacks, times the period.
    /// Cycle n's deadline is its wake time less its lateness, and the deadlines are a period
    /// apart; the runtime produced every cycle whose deadline fell before the kill (when a cycle
    /// wakes late the runtime says so, and it is counted as produced: this errs towards more
    /// loss). Nil when the file holds fewer than two cycle records.
    static func cyclesLost(newest: [[UInt8]], killedAt: Nanoseconds) -> Double? {
        func deadline(_ data: [UInt8]) -> (cycle: Int64, deadline: Int64)? {
            guard let o = try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any],
                  let n = (o["cycle"] as? NSNumber)?.int64Value, let t = (o["time_ns"] as? NSNumber)?.int64Value,
                  let l = (o["lateness_ns"] as? NSNumber)?.int64Value else { return nil }
            let d = t.subtractingReportingOverflow(l)
            return d.overflow ? nil : (n, d.partialValue)
        }
        guard newest.count == 2, let a = deadline(newest[0]), let b = deadline(newest[1]), b.cycle > a.cycle else { return nil }
        let span = b.deadline.subtractingReportingOverflow(a.deadline)
        let cycles = b.cycle.subtractingReportingOverflow(a.cycle)
        guard !span.overflow, !cycles.overflow else { return nil }
        let period = span.partialValue / cycles.partialValue
        let late = Int64(killedAt).subtractingReportingOverflow(b.deadline)
        guard period > 0, !late.overflow else { return nil }
        let behind = late.partialValue
        return behind <= 0 ? 0 : Double(behind / period * period) * 1e-6
    }

    /// The processes whose parent is `pid` (read from /proc).
    static func childProcesses(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { e -> Int32? in
            guard let child = Int32(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // "pid (comm) state ppid …": the command may hold spaces, so fields count from its ")".
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid ? child : nil
        }
    }

    /// The monitor's private folder(s) a killed runtime left in /tmp.
    static func removeMonitorFolders(of pid: Int32) {
        let prefix = "lumen-live-\(pid)-"
        for e in (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [] where e.hasPrefix(prefix) {
            try? FileManager.default.removeItem(atPath: "/tmp/" + e)
        }
    }

    /// Prints, per file named, the messages PyPI `mcap` reads from it up to where a crash cut it.
    static let referenceScript = """
        import sys
        from mcap.reader import NonSeekingReader
        for path in sys.argv[1:]:
            n = 0
            try:
                with open(path, "rb") as f:
                    for _ in NonSeekingReader(f).iter_messages(log_time_order=False):
                        n += 1
            except Exception:
                pass
            print(n)
        """

    /// The messages the reference reader (PyPI `mcap`) reads from each of `paths`, in order; nil
    /// when it is not installed.
    static func referenceReaderCounts(_ paths: [String]) -> [Int]? {
        guard !paths.isEmpty else { return [] }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", referenceScript] + paths
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        let counts = String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }
        return counts.count == paths.count ? counts : nil
    }
}
