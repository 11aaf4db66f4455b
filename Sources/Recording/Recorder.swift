import Core
import Foundation
import Runtime
import Safety
import Synchronization

/// What the recorder records and how often it makes its data safe on disk.
public struct RecorderSettings: Sendable, Equatable, Codable {
    /// Record every Nth cycle (1 = full rate), 1…1000.
    public var cycleDecimation = 1
    /// Record every Nth frame of each plane, 1…100.
    public var frameDecimation = 1
    public var frameFormat = FrameFormat.png
    /// PNG: zlib level 0…9 (1 is fast and still halves the size); JPEG: quality 1…100.
    public var frameQuality = 1
    /// A chunk is written once its oldest record is this old: a `kill -9` loses at most about
    /// this much plus one poll interval and a chunk's write (see docs/recording.md). 1…100 ms.
    /// 25 ms leaves room under the 100 ms bound for a drain delayed by a loaded machine.
    public var chunkPeriod: Nanoseconds = 25 * .perMillisecond
    /// …or when it holds this many bytes (64 KiB…64 MiB).
    public var chunkMaxBytes = 8 << 20
    /// How often the thread drains the tap, 1…50 ms.
    public var pollInterval: Nanoseconds = 5 * .perMillisecond
    /// How often the safety state is sampled from the port, 10…10 000 ms.
    public var safetyInterval: Nanoseconds = 100 * .perMillisecond
    /// fdatasync after each chunk (survives power loss, not only a killed process).
    public var sync = true
    /// Frames waiting for an encoder, at most (1…256): the draining thread never waits for an
    /// encoder, so a frame that finds the queue full is not recorded (counted as `encoder_busy`).
    public var encoderQueue = 16
    /// Encoder threads (1…4).
    public var encoderThreads = 1

    public init() {}

    public func validate() throws(RecorderError) {
        guard (1...1000).contains(cycleDecimation) else { throw .invalidSetting("cycle decimation \(cycleDecimation) (1…1000)") }
        guard (1...100).contains(frameDecimation) else { throw .invalidSetting("frame decimation \(frameDecimation) (1…100)") }
        let q = frameFormat == .png ? 0...9 : 1...100
        guard q.contains(frameQuality) else { throw .invalidSetting("frame quality \(frameQuality) (\(q.lowerBound)…\(q.upperBound) for \(frameFormat.rawValue))") }
        guard (1 * Nanoseconds.perMillisecond...100 * .perMillisecond).contains(chunkPeriod) else { throw .invalidSetting("chunk period (1…100 ms)") }
        guard ((64 << 10)...(64 << 20)).contains(chunkMaxBytes) else { throw .invalidSetting("chunk size (64 KiB…64 MiB)") }
        guard (1 * Nanoseconds.perMillisecond...50 * .perMillisecond).contains(pollInterval) else { throw .invalidSetting("poll interval (1…50 ms)") }
        guard (10 * Nanoseconds.perMillisecond...10_000 * .perMillisecond).contains(safetyInterval) else {
            throw .invalidSetting("safety interval (10…10 000 ms)")
        }
        guard (1...256).contains(encoderQueue) else { throw .invalidSetting("encoder queue \(encoderQueue) (1…256 frames)") }
        guard (1...4).contains(encoderThreads) else { throw .invalidSetting("encoder threads \(encoderThreads) (1…4)") }
    }
}

/// A configuration document the run started with (robot, limits, scenario…), recorded whole with
/// its SHA-256 so a reviewer can tell which configuration a recording ran under.
public struct ConfigurationDocument: Sendable, Equatable {
    public var name: String
    public var bytes: [UInt8]
    public init(name: String, bytes: [UInt8]) { self.name = name; self.bytes = bytes }
    public var sha256: String { SHA256.hex(SHA256.digest(bytes)) }

    /// A value the run describes itself by (how its estimator or measurer was built), as JSON
    /// with sorted keys, so that the same run records the same bytes and hash.
    static func json(_ name: String, _ value: some Encodable) -> ConfigurationDocument? {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return (try? e.encode(value)).map { ConfigurationDocument(name: name, bytes: Array($0)) }
    }
}

/// What was recorded and what could not be: nothing is dropped silently.
public struct RecorderReport: Sendable, Equatable, Codable {
    public var path: String
    public var cycleRecords = 0
    /// Overwritten in the runtime's ring before the recorder drained them.
    public var cycleRecordsLost: UInt64 = 0
    /// Not recorded by choice (decimation).
    public var cycleRecordsSkipped = 0
    public var frames = 0
    /// Frames not recorded, by reason: overwritten in the runtime's queue before the recorder
    /// drained them (`framesLost`), refused because every encoder was busy and the encoder queue
    /// full (`framesEncoderBusy`), refused by the codec (`framesNotEncoded`), left out by
    /// choice (`framesSkipped`, decimation), or drained but not written because a write error
    /// ended the recording (`framesNotWritten`). A frame's tip measurement is recorded in all
    /// cases but the first. Every frame the runtime produced is in one place:
    /// produced = `framesReceived` + `framesLost`, and `framesReceived` = `frames` +
    /// `framesSkipped` + `framesEncoderBusy` + `framesNotEncoded` + `framesNotWritten`
    /// (`framesUnaccounted` is the difference, 0 unless the recorder has a bug).
    public var framesLost: UInt64 = 0
    /// Frames drained from the runtime's queue.
    public var framesReceived = 0
    /// `framesLost` as it stood at the first drain: what a tap that was drained by another
    /// consumer before this recorder (a bench's) had lost already.
    public var framesLostAtStart: UInt64 = 0
    public var framesNotWritten = 0
    public var framesSkipped = 0
    public var framesEncoderBusy = 0
    /// Frames the codec refused (bad size, codec error).
    public var framesNotEncoded = 0
    /// The most frames that waited for an encoder at once, of `RecorderSettings.encoderQueue`.
    public var encoderQueueHighWater = 0
    /// ms from one chunk's fdatasync to the next: what a power loss may cost. Nil without syncs.
    public var syncIntervalP99Ms: Double?
    public var syncIntervalMaxMs: Double?
    /// ms an fdatasync took (p99, max): on its own thread, so a stall delays only when the data
    /// is safe from a power loss, never the drain.
    public var syncDurationP99Ms: Double?
    public var syncDurationMaxMs: Double?
    /// ms the draining thread spent writing a closed chunk (p99, max): what the drain waits for
    /// the file (the kernel's page cache; no sync).
    public var chunkWriteP99Ms: Double?
    public var chunkWriteMaxMs: Double?
    /// What a `kill -9` would have lost, measured from the inside at every chunk write: ms from
    /// the newest cycle record already written to the moment the next write returned (the loss
    /// grows until a write, so its worst moments are just before them). p99 and max over the run.
    public var killLossBoundP99Ms: Double?
    public var killLossBoundMaxMs: Double?
    /// The longest a cycle record waited in the runtime's ring before the recorder drained it (ms).
    public var drainLagMaxMs: Double?
    /// Seconds the draining thread spent on the chunks' CRC-32.
    public var chunkCRCSeconds = 0.0
    /// The nice value of the recorder's thread (the frame encoders run at 10).
    public var threadNice: Int32?
    public var events = 0
    /// Events that the port no longer held when the recorder asked (a gap in sequence numbers).
    public var eventsLost: UInt64 = 0
    public var messages: UInt64 = 0
    public var chunks = 0
    public var bytes: UInt64 = 0
    /// Seconds the encoder threads spent encoding frames; seconds the recorder's thread spent on
    /// the CPU in all (encoding excluded).
    public var frameEncodeSeconds = 0.0
    public var threadCPUSeconds = 0.0
    /// The write error that stopped the recording, if one did.
    public var writeError: String?
    /// SHA-256 over the configuration documents' hashes, in order.
    public var configurationSHA256 = ""

    public init(path: String) { self.path = path }

    /// Drained frames that are neither recorded nor counted under a reason: 0.
    public var framesUnaccounted: Int { framesReceived - frames - framesSkipped - framesEncoderBusy - framesNotEncoded - framesNotWritten }
}

/// The procedure recorder: its own thread drains a `RecordingTap` (cycle records and frames) and
/// polls an `OperatorPort` (events, safety state), and writes an MCAP file whose chunks are closed
/// and synced every `chunkPeriod`. The runtime's side never waits for it: records it does not
/// drain in time are overwritten in the runtime's rings and counted here.
public final class Recorder: @unchecked Sendable {
    public let path: String
    public let settings: RecorderSettings
    private let tap: any RecordingTap
    private let encoder: FrameEncoder
    private var encoders: FrameEncoderPool?
    private let fileSync: FileSync
    private var syncer: ChunkSyncer?
    private var chunkWrites: [Double] = []
    /// Newest cycle time in the open chunk and in the file; the loss just before each write.
    private var newestCyclePending: Nanoseconds?
    private var newestCycleOnDisk: Nanoseconds?
    private var lossBounds: [Double] = []
    private var measuringLoss = true
    private var drainLagMax: Nanoseconds = 0
    private let port: (any OperatorPort)?
    private let configuration: [ConfigurationDocument]
    private let metrics: RuntimeMetrics?
    private let stopping = Atomic<Bool>(false)
    private let shared: Mutex<RecorderReport>
    private let finished = Atomic<Bool>(false)
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)

    // Owned by the recorder's thread once started.
    private var writer: MCAPWriter
    private var report: RecorderReport
    private var channelIDs: [String: UInt16] = [:]
    private var schemaIDs: [String: UInt16] = [:]
    private var chunkOpenedAt: Nanoseconds?
    private var lastEvent: UInt64 = 0
    private var lastSafety: Nanoseconds = 0
    private var lastStatus: Nanoseconds = 0
    private var framesSeen: [UInt8: Int] = [:]
    private var drainedFrames = false

    /// Creates the file and writes its header, schemas, channels and the configuration; the
    /// thread starts with `start()`.
    /// `encoder` compresses the frames on the encoder threads (the codec unless a test stands in).
    public init(path: String, settings: RecorderSettings = RecorderSettings(), tap: any RecordingTap, port: (any OperatorPort)?,
                configuration: [ConfigurationDocument], metrics: RuntimeMetrics? = nil, encoder: FrameEncoder = .codec,
                fileSync: FileSync = .fdatasync) throws(RecorderError) {
        try settings.validate()
        self.path = path; self.settings = settings; self.tap = tap; self.port = port
        // How the estimator was built, when the port can say, so `lumen replay --estimate` can rebuild it.
        self.configuration = configuration + ((port as? EstimatorDescribing)?.estimatorSetup.document.map { [$0] } ?? [])
            + ((port as? MeasurerDescribing)?.measurerSetup.document.map { [$0] } ?? [])
        self.metrics = metrics
        self.encoder = encoder
        self.fileSync = fileSync
        writer = try MCAPWriter(path: path, library: "lumen recorder \(RecordingSchema.version)")
        report = RecorderReport(path: path)
        shared = Mutex(RecorderReport(path: path))
        for (name, text) in RecordingChannels.schemas {
            schemaIDs[name] = try writer.addSchema(name: name, data: Array(text.utf8))
        }
        try channel(RecordingChannels.cycle, "lumen.CycleRecord")
        try channel(RecordingChannels.tip, "foxglove.PoseInFrame")
        try channel(RecordingChannels.events, "lumen.Event")
        try channel(RecordingChannels.log, "foxglove.Log")
        try channel(RecordingChannels.safety, "lumen.SafetyStatus")
        try channel(RecordingChannels.recorder, "lumen.RecorderStatus")
        try channel(RecordingChannels.configuration, "lumen.Configuration")
        try writeConfiguration()
    }

    @discardableResult
    private func channel(_ topic: String, _ schema: String, metadata: [(String, String)] = []) throws(RecorderError) -> UInt16 {
        if let id = channelIDs[topic] { return id }
        let id = try writer.addChannel(topic: topic, schema: schemaIDs[schema] ?? 0, metadata: metadata)
        channelIDs[topic] = id
        return id
    }

    private func writeConfiguration() throws(RecorderError) {
        let now = MonotonicClock.now()
        var combined = [UInt8]()
        var pairs: [(String, String)] = []
        for doc in configuration {
            let hash = doc.sha256
            combined.append(contentsOf: Array(hash.utf8))
            pairs.append((doc.name, hash))
            var j = JSONOut(capacity: doc.bytes.count + 128)
            j.object { j in j.field("name", doc.name); j.field("sha256", hash); j.field("text", String(decoding: doc.bytes, as: UTF8.self)) }
            writer.add(channel: channelIDs[RecordingChannels.configuration] ?? 0, logTime: UInt64(max(0, now)), publishTime: UInt64(max(0, now)), data: j.bytes)
        }
        report.configurationSHA256 = SHA256.hex(SHA256.digest(combined))
        pairs.append(("combined_sha256", report.configurationSHA256))
        if let d = port?.runtimeDescription {
            pairs.append(("robot", d.robotName))
            pairs.append(("axes", d.axisNames.joined(separator: ",")))
            pairs.append(("period_ns", "\(d.period)"))
            pairs.append(("planes", "\(d.planes.count)"))
        }
        try writer.addMetadata(name: RecordingChannels.configurationMetadata, pairs)
        try closeChunk()
    }

    /// Writes the chunk and has it synced as the settings say: by the syncing thread once the
    /// recorder runs (an fdatasync can stall for seconds on a busy disk, and the drain must not
    /// wait for it; a `kill -9` loses nothing that was written), here before.
    private func closeChunk() throws(RecorderError) {
        let t0 = MonotonicClock.now()
        if let syncer {
            try writer.closeChunk(sync: false)
            syncer.request()
        } else {
            try writer.closeChunk(sync: settings.sync)
        }
        let written = MonotonicClock.now()
        if syncer != nil, chunkWrites.count < 1 << 20 { chunkWrites.append(Double(written - t0) * 1e-6) }
        noteWritten(at: written)
    }

    /// The crash loss as it stood just before a write returned, and the file's new newest cycle.
    private func noteWritten(at written: Nanoseconds) {
        if measuringLoss, let onDisk = newestCycleOnDisk, onDisk <= written, lossBounds.count < 1 << 20 { lossBounds.append(Double(written - onDisk) * 1e-6) }
        if let p = newestCyclePending { newestCycleOnDisk = max(newestCycleOnDisk ?? p, p) }
        newestCyclePending = nil
    }

    /// Starts the recorder's thread.
    public func start() {
        let t = Thread { [self] in run() }
        t.name = "lumen-recorder"
        thread = t
        t.start()
    }

    /// Stops the thread after a last drain, writes the summary and closes the file.
    public func stop() -> RecorderReport {
        stopping.store(true, ordering: .releasing)
        if thread == nil {
            // Never started: drain once and close the file here, so it still gets its summary.
            if !finished.load(ordering: .acquiring) { run() }
        } else {
            // The thread signals once when it has closed the file; passed on for a second stop().
            done.wait()
            done.signal()
        }
        return shared.withLock { $0 }
    }

    /// What has been recorded so far (updated once per poll).
    public var progress: RecorderReport { shared.withLock { $0 } }

    private func run() {
        defer { finished.store(true, ordering: .releasing); done.signal() }
        let pool = FrameEncoderPool(threads: settings.encoderThreads, capacity: settings.encoderQueue, encoder: encoder,
                                    format: settings.frameFormat, quality: settings.frameQuality)
        encoders = pool
        defer { pool.close() }
        report.threadNice = Self.threadNiceValue()
        if settings.sync { syncer = ChunkSyncer(fd: writer.fileDescriptor, sync: fileSync) }
        do {
            while !stopping.load(ordering: .acquiring) {
                try pollOnce()
                _ = MonotonicClock.sleep(until: MonotonicClock.now() + settings.pollInterval)
            }
            try pollOnce()
            // The last drain's records are written before waiting for the encoders (seconds with
            // PNG on a busy machine): a crash during that wait must not cost them. Past the last
            // drain, nothing the runtime produces is for this file: the crash-loss measure ends.
            try closeChunk()
            chunkOpenedAt = nil
            measuringLoss = false
            // The frames already queued are encoded and written before the file closes.
            pool.close()
            try writeEncoded()
            try writeStatus(MonotonicClock.now())
            try writer.closeChunk(sync: false)
            // `finish` syncs the whole file itself.
            syncer?.stop()
            publish()
            try writer.addMetadata(name: RecordingChannels.reportMetadata, reportPairs())
            try writer.finish()
        } catch {
            report.writeError = error.description
            syncer?.stop()
            // Drained frames that were still with the encoders or not yet written.
            pool.close()
            for e in pool.takeEncoded() {
                if case .failure = e.result { report.framesNotEncoded += 1 }
            }
            report.framesNotWritten = report.framesReceived - report.frames - report.framesSkipped - report.framesEncoderBusy - report.framesNotEncoded
            writer.abandon()
        }
        publish()
    }

    private func publish() {
        report.threadCPUSeconds = ThreadCPUTime.seconds()
        report.encoderQueueHighWater = encoders?.highWater ?? 0
        if let s = syncer?.figures, !s.durations.isEmpty {
            if !s.intervals.isEmpty {
                report.syncIntervalP99Ms = percentile(s.intervals, 99)
                report.syncIntervalMaxMs = s.intervals.max()
            }
            report.syncDurationP99Ms = percentile(s.durations, 99)
            report.syncDurationMaxMs = s.durations.max()
        }
        if !chunkWrites.isEmpty {
            report.chunkWriteP99Ms = percentile(chunkWrites, 99)
            report.chunkWriteMaxMs = chunkWrites.max()
        }
        if !lossBounds.isEmpty {
            report.killLossBoundP99Ms = percentile(lossBounds, 99)
            report.killLossBoundMaxMs = lossBounds.max()
        }
        if drainLagMax > 0 { report.drainLagMaxMs = Double(drainLagMax) * 1e-6 }
        report.chunkCRCSeconds = writer.crcSeconds
        report.messages = writer.messageCount
        report.chunks = writer.chunkCount
        report.bytes = writer.offset
        let r = report
        shared.withLock { $0 = r }
    }

    private func reportPairs() -> [(String, String)] {
        let r = report
        return [("cycle_records", "\(r.cycleRecords)"), ("cycle_records_lost", "\(r.cycleRecordsLost)"),
                ("cycle_records_skipped", "\(r.cycleRecordsSkipped)"), ("frames", "\(r.frames)"), ("frames_received", "\(r.framesReceived)"),
                ("frames_lost", "\(r.framesLost)"), ("frames_lost_at_start", "\(r.framesLostAtStart)"), ("frames_not_written", "\(r.framesNotWritten)"),
                ("frames_skipped", "\(r.framesSkipped)"), ("frames_encoder_busy", "\(r.framesEncoderBusy)"),
                ("frames_not_encoded", "\(r.framesNotEncoded)"), ("encoder_queue_high_water", "\(r.encoderQueueHighWater)"),
                ("events", "\(r.events)"), ("events_lost", "\(r.eventsLost)"), ("messages", "\(r.messages)"), ("chunks", "\(r.chunks)")]
    }

    /// `producedAt`: when the data came to be, for the chunk's age (default: `time`). An encoded
    /// frame came to be when its encoder finished: counting from its acquisition would close a
    /// chunk, and sync, for every frame.
    private func add(_ topic: String, _ time: Nanoseconds, _ data: [UInt8], producedAt: Nanoseconds? = nil) {
        guard let id = channelIDs[topic] else { return }
        // The chunk's age counts from its oldest data, not from when it reached the recorder: what
        // a crash loses is what was produced and not yet on disk. Times are the runtime's
        // monotonic clock; one from the future (a bad stamp) counts as now.
        let produced = min(producedAt ?? time, MonotonicClock.now())
        chunkOpenedAt = min(chunkOpenedAt ?? produced, produced)
        let t = UInt64(max(0, time))
        writer.add(channel: id, logTime: t, publishTime: t, data: data)
    }

    /// Closes the chunk when it is old or large enough: the crash-loss bound lives here.
    private func closeIfDue() throws(RecorderError) {
        guard let opened = chunkOpenedAt else { return }
        if MonotonicClock.now() - opened >= settings.chunkPeriod || writer.pendingBytes >= settings.chunkMaxBytes {
            try closeChunk()
            chunkOpenedAt = nil
        }
    }

    private func drainCycles(into j: inout JSONOut) throws(RecorderError) {
        let decimation = UInt64(settings.cycleDecimation)
        let drainedAt = MonotonicClock.now()
        let cycles = tap.drainCycleRecords { r in
            metrics?.observe(cycle: r)
            // A stamp that is not a positive monotonic time (a bad record) is left out, not subtracted.
            let time = r.time
            if time > 0, time <= drainedAt { drainLagMax = max(drainLagMax, drainedAt - time) }
            if r.cycle % decimation != 0 { report.cycleRecordsSkipped += 1; return }
            j.reset()
            RecordingChannels.encodeCycle(r, into: &j)
            add(RecordingChannels.cycle, r.time, j.bytes)
            j.reset()
            RecordingChannels.encodePose(r.estimate, time: r.time, into: &j)
            add(RecordingChannels.tip, r.time, j.bytes)
            if r.time > 0 { newestCyclePending = max(newestCyclePending ?? r.time, r.time) }
            report.cycleRecords += 1
        }
        report.cycleRecordsLost = cycles.lostTotal
        metrics?.observe(cycleRecordsLost: cycles.lostTotal)
        try closeIfDue()
    }

    private func pollOnce() throws(RecorderError) {
        var j = JSONOut(capacity: 1024)
        try drainCycles(into: &j)
        var frames: [LiveFrame] = []
        let drained = tap.drainFrames { frames.append($0) }
        if !drainedFrames { report.framesLostAtStart = drained.lostTotal; drainedFrames = true }
        report.framesLost = drained.lostTotal
        report.framesReceived += frames.count
        for f in frames {
            metrics?.observe(frame: f)
            try hand(frame: f)
        }
        try writeEncoded()
        if let port {
            let events = port.events(after: lastEvent, limit: 1024)
            for e in events {
                if e.sequence > lastEvent + 1 { report.eventsLost += e.sequence - lastEvent - 1 }
                lastEvent = max(lastEvent, e.sequence)
                j.reset()
                RecordingChannels.encodeEvent(e, into: &j)
                add(RecordingChannels.events, e.time, j.bytes)
                j.reset()
                RecordingChannels.encodeLog(e, into: &j)
                add(RecordingChannels.log, e.time, j.bytes)
                report.events += 1
            }
            let now = MonotonicClock.now()
            if now - lastSafety >= settings.safetyInterval {
                lastSafety = now
                let s = port.snapshot()
                j.reset()
                RecordingChannels.encodeSafety(s, into: &j)
                add(RecordingChannels.safety, s.time > 0 ? s.time : now, j.bytes)
            }
        }
        let now = MonotonicClock.now()
        if now - lastStatus >= Nanoseconds.perSecond { try writeStatus(now) }
        if let e = syncer?.failure { throw .io(operation: "sync", path: path, errno: e) }
        try closeIfDue()
        publish()
    }

    /// The calling thread's nice value (on Linux per thread: `who` 0 is this thread). The drain
    /// stays at the cycle's share: nice −10 kept no kill loss lower in release runs.
    static func threadNiceValue() -> Int32 {
        errno = 0
        let nice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        return errno == 0 ? nice : 0
    }

    private func writeStatus(_ now: Nanoseconds) throws(RecorderError) {
        lastStatus = now
        var j = JSONOut()
        let r = report
        j.object { j in
            j.field("time_ns", now); j.field("cycle_records", r.cycleRecords); j.field("cycle_records_lost", r.cycleRecordsLost)
            j.field("frames", r.frames); j.field("frames_received", r.framesReceived); j.field("frames_lost", r.framesLost)
            j.field("frames_lost_at_start", r.framesLostAtStart); j.field("frames_skipped", r.framesSkipped)
            j.field("frames_encoder_busy", r.framesEncoderBusy); j.field("frames_not_encoded", r.framesNotEncoded)
            j.field("events_lost", r.eventsLost); j.field("bytes", writer.offset); j.field("chunks", writer.chunkCount)
        }
        add(RecordingChannels.recorder, now, j.bytes)
    }

    /// A drained frame: its measurement is written at once (it is small, and replaying the
    /// estimator needs every one); its image goes to the encoders unless decimation leaves it out
    /// or their queue is full. Never waits.
    private func hand(frame f: LiveFrame) throws(RecorderError) {
        let plane = Int(f.plane)
        let imageTopic = RecordingChannels.image(plane: plane)
        if channelIDs[imageTopic] == nil {
            try channel(imageTopic, "foxglove.CompressedImage")
            try channel(RecordingChannels.frame(plane: plane), "lumen.FrameInfo")
            try channel(RecordingChannels.measurement(plane: plane), "lumen.TipMeasurement")
        }
        var m = JSONOut()
        RecordingChannels.encodeMeasurement(f.measurement, frame: f, into: &m)
        add(RecordingChannels.measurement(plane: plane), f.acquiredAt, m.bytes)
        let seen = framesSeen[f.plane, default: 0]
        framesSeen[f.plane] = seen + 1
        if seen % settings.frameDecimation != 0 {
            report.framesSkipped += 1
        } else if encoders?.offer(f) != true {
            report.framesEncoderBusy += 1
        }
        try closeIfDue()
    }

    /// Writes the frames the encoders have finished: the image and its frame record.
    private func writeEncoded() throws(RecorderError) {
        guard let encoders else { return }
        for e in encoders.takeEncoded() {
            let f = e.frame
            let encoded: [UInt8]
            switch e.result {
            case .success(let bytes): encoded = bytes
            case .failure: report.framesNotEncoded += 1; continue
            }
            report.frameEncodeSeconds += e.seconds
            let plane = Int(f.plane)
            let now = MonotonicClock.now()
            add(RecordingChannels.image(plane: plane), f.acquiredAt, e.message, producedAt: now)
            var info = JSONOut()
            info.object { j in
                j.field("plane", plane); j.field("index", f.index); j.field("acquired_ns", f.acquiredAt); j.field("width", f.width)
                j.field("height", f.height); j.field("pixel_spacing_mm", f.pixelSpacing); j.field("projection", f.projection)
                j.field("format", settings.frameFormat.rawValue); j.field("encoded_bytes", encoded.count)
                RecordingChannels.encodeMeasurerInput(of: f, into: &j)
            }
            add(RecordingChannels.frame(plane: plane), f.acquiredAt, info.bytes, producedAt: now)
            report.frames += 1
            try closeIfDue()
        }
    }
}
