import Core
import Foundation
import Runtime

/// The recorder's figures (`lumen bench record`): throughput with frames, data lost per `kill -9`,
/// OpenIGTLink tip latency. Each runs against a `SyntheticRun`; `RecorderLiveBench` has the live
/// runtime's.
public enum RecorderBench {
    public struct Throughput: Sendable, Codable, Equatable {
        public var seconds: Double
        public var cycle_rate_hz: Double
        public var planes: Int
        public var frame_side_px: Int
        public var frames_per_second: Double
        public var frame_format: String
        public var megabytes_per_second: Double
        /// CPU of the recorder's thread as a share of one core, and of the whole process (all threads,
        /// the synthetic source's included).
        public var recorder_cpu_pct: Double
        public var process_cpu_pct: Double
        public var frame_encode_ms_mean: Double
        public var cycle_records: Int
        public var cycle_records_lost: UInt64
        public var frames: Int
        public var frames_lost: UInt64
        public var frames_offered: Int
        public var chunk_period_ms: Double
        /// What a `kill -9` would have lost at its worst moments, measured by the recorder at
        /// every chunk write (`RecorderReport.killLossBound…`), and the longest ring wait (ms).
        public var kill_loss_bound_ms_p99: Double?
        public var kill_loss_bound_ms_max: Double?
        public var drain_lag_ms_max: Double?
        /// The chunk CRC-32 on the draining thread: % of the recorder thread's CPU in this run, and
        /// MB/s of the slicing-by-8 CRC against the former byte-at-a-time one (same build, 8 MB).
        public var chunk_crc_pct_of_recorder_cpu: Double
        public var crc32_mb_per_s: Double
        public var crc32_mb_per_s_bytewise: Double
    }

    /// Records `seconds` of a synthetic run at full cycle rate with frames, in this process.
    public static func throughput(seconds: Double, settings: SyntheticSettings, recorder: RecorderSettings, path: String) throws -> Throughput {
        var s = settings
        s.track = false
        let run = try SyntheticRun(settings: s)
        let rec = try Recorder(path: path, settings: recorder, tap: run, port: run, configuration: [])
        let cpu0 = processCPUSeconds()
        let t0 = MonotonicClock.now()
        run.start()
        rec.start()
        Thread.sleep(forTimeInterval: seconds)
        run.stop()
        let report = rec.stop()
        let wall = Double(MonotonicClock.now() - t0) * 1e-9
        let cpu = processCPUSeconds() - cpu0
        let offered = run.snapshot().framesAcquired.reduce(0) { $0 + Int($1) }
        let crc = CRC32.throughput()
        return Throughput(
            seconds: wall, cycle_rate_hz: s.cycleRate, planes: s.planes, frame_side_px: s.frameSize, frames_per_second: s.framesPerSecond,
            frame_format: recorder.frameFormat.rawValue, megabytes_per_second: Double(report.bytes) / wall / 1e6,
            recorder_cpu_pct: report.threadCPUSeconds / wall * 100, process_cpu_pct: cpu / wall * 100,
            frame_encode_ms_mean: report.frames > 0 ? report.frameEncodeSeconds / Double(report.frames) * 1000 : 0,
            cycle_records: report.cycleRecords, cycle_records_lost: report.cycleRecordsLost, frames: report.frames,
            frames_lost: report.framesLost, frames_offered: offered, chunk_period_ms: Double(recorder.chunkPeriod) * 1e-6,
            kill_loss_bound_ms_p99: report.killLossBoundP99Ms, kill_loss_bound_ms_max: report.killLossBoundMaxMs,
            drain_lag_ms_max: report.drainLagMaxMs,
            chunk_crc_pct_of_recorder_cpu: report.threadCPUSeconds > 0 ? report.chunkCRCSeconds / report.threadCPUSeconds * 100 : 0,
            crc32_mb_per_s: crc.slicingBy8, crc32_mb_per_s_bytewise: crc.bytewise)
    }

    static func processCPUSeconds() -> Double {
        var u = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) * 1e-6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) * 1e-6
    }

    public struct KillLoss: Sendable, Codable, Equatable {
        public var kills: Int
        /// Files the reader opened and read messages from, of `kills`.
        public var readable: Int
        /// ms of data lost per kill: the cycles produced before it that the file lacks, times the period.
        public var lost_ms_p50: Double
        public var lost_ms_p95: Double
        public var lost_ms_p99: Double
        public var lost_ms_max: Double
        /// Kills after which more than 100 ms of data was missing.
        public var over_100_ms: Int
        public var chunk_ms: Int
    }

    /// Starts `lumen record synthetic` `kills` times, kills each with SIGKILL at a varying moment
    /// after recording began, and measures what the file holds against the moment of the kill.
    public static func killLoss(lumen: String, kills: Int, chunkMs: Int, folder: String, seed: UInt64 = 1) throws -> KillLoss {
        var rng = SplitMix64(seed: seed)
        var lost: [Double] = []
        var readable = 0
        for k in 0..<kills {
            let out = folder + "/kill-\(k)"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: lumen)
            p.arguments = ["record", "synthetic", "--out", out, "--seconds", "600", "--planes", "2", "--size", "256", "--pool", "2",
                           "--chunk-ms", "\(chunkMs)"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let path = out + "/recording.mcap"
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, (try? MCAPRecording.read(path))?.chunks ?? 0 < 2 { Thread.sleep(forTimeInterval: 0.02) }
            Thread.sleep(forTimeInterval: 0.2 + rng.unit() * 0.8)
            let killedAt = MonotonicClock.now()
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            guard let loss = RecorderLiveBench.cyclesLost(newest: RecorderLiveBench.newestCycleRecords(path).newest, killedAt: killedAt)
            else { continue }
            readable += 1
            lost.append(loss)
            try? FileManager.default.removeItem(atPath: out)
        }
        func p(_ q: Double) -> Double { lost.isEmpty ? .nan : percentile(lost, q) }
        return KillLoss(kills: kills, readable: readable, lost_ms_p50: p(50), lost_ms_p95: p(95), lost_ms_p99: p(99), lost_ms_max: lost.max() ?? .nan,
                        over_100_ms: lost.filter { $0 > 100 }.count, chunk_ms: chunkMs)
    }

    public struct Latency: Sendable, Codable, Equatable {
        public var samples: Int
        public var tip_rate_hz: Double
        /// ms from the estimate's cycle time to the client holding the decoded TRANSFORM.
        public var p50_ms: Double
        public var p99_ms: Double
    }

    /// A client in this process reads the tip TRANSFORMs and compares their estimate time (the
    /// v3 metadata carries it) with the clock on arrival: same machine, same monotonic clock.
    public static func igtlLatency(seconds: Double, tipRate: Double) throws -> Latency {
        var s = SyntheticSettings()
        s.planes = 0
        let run = try SyntheticRun(settings: s)
        var settings = IGTLServerSettings()
        settings.port = 0
        settings.tipRate = tipRate
        settings.images = false
        let server = try IGTLServer(port: run, settings: settings)
        run.start()
        server.start()
        defer { server.stop(); run.stop() }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = server.boundPort.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var inbox: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var samples: [Double] = []
        let end = MonotonicClock.now() + Nanoseconds.fromSeconds(seconds)
        while MonotonicClock.now() < end {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else { continue }
            let now = MonotonicClock.now()
            inbox += buffer[0..<n]
            while inbox.count >= IGTLCodec.headerSize {
                guard let h = try? inbox.withUnsafeBytes({ b in try IGTLCodec.decodeHeader(b) }), h.bodySize < 1 << 30 else { return Latency(samples: 0, tip_rate_hz: tipRate, p50_ms: .nan, p99_ms: .nan) }
                let total = IGTLCodec.headerSize + Int(h.bodySize)
                guard inbox.count >= total else { break }
                if h.type == "TRANSFORM", h.device == "LumenTip", let t = estimateTime(Array(inbox[IGTLCodec.headerSize..<total])) {
                    samples.append(Double(now - t) / 1e6)
                }
                inbox.removeFirst(total)
            }
        }
        return Latency(samples: samples.count, tip_rate_hz: tipRate, p50_ms: samples.isEmpty ? .nan : percentile(samples, 50),
                       p99_ms: samples.isEmpty ? .nan : percentile(samples, 99))
    }

    /// The `lumen.estimate_ns` metadata value of a v3 body.
    static func estimateTime(_ body: [UInt8]) -> Nanoseconds? {
        guard body.count >= 12 else { return nil }
        func be(_ at: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 << 8 | Int(body[at + $1]) } }
        let metaHeader = be(2, 2), meta = be(4, 4)
        let start = body.count - metaHeader - meta
        guard start >= 12, metaHeader >= 2 else { return nil }
        let count = be(start, 2)
        var at = start + 2 + count * 8
        for k in 0..<count {
            let e = start + 2 + k * 8
            let keySize = be(e, 2), valueSize = be(e + 4, 4)
            guard at + keySize + valueSize <= body.count else { return nil }
            let key = String(decoding: body[at..<(at + keySize)], as: UTF8.self)
            let value = String(decoding: body[(at + keySize)..<(at + keySize + valueSize)], as: UTF8.self)
            if key == "lumen.estimate_ns" { return Nanoseconds(value) }
            at += keySize + valueSize
        }
        return nil
    }
}
