import Control
import Core
import Foundation
import Runtime
import Synchronization
import Testing
@testable import Recording

/// A tap in front of a ring of `capacity` cycle records, as the runtime's: records the recorder
/// does not drain before the ring is full are overwritten and counted.
final class BoundedTap: RecordingTap, @unchecked Sendable {
    let capacity: Int
    /// Frames the queue holds: older ones are overwritten and counted, as in the runtime's.
    let frameCapacity: Int
    private let state = Mutex<(records: [CycleRecord], frames: [LiveFrame], lost: UInt64, next: Int)>(([], [], 0, 1))
    private let framesLost = Mutex<(lost: UInt64, produced: Int)>((0, 0))
    init(capacity: Int, frameCapacity: Int = 1 << 16) { self.capacity = capacity; self.frameCapacity = frameCapacity }

    func produce(records n: Int) {
        state.withLock { s in
            for _ in 0..<n {
                s.records.append(SyntheticRun.record(cycle: UInt64(s.next), time: Nanoseconds(s.next) * 1_000_000, tip: .zero))
                s.next += 1
            }
            if s.records.count > capacity {
                s.lost += UInt64(s.records.count - capacity)
                s.records.removeFirst(s.records.count - capacity)
            }
        }
    }

    func produce(record: CycleRecord) { state.withLock { $0.records.append(record) } }
    func produce(frames: [LiveFrame]) {
        state.withLock { s in
            s.frames += frames
            let extra = max(0, s.frames.count - frameCapacity)
            s.frames.removeFirst(extra)
            framesLost.withLock { $0.lost += UInt64(extra); $0.produced += frames.count }
        }
    }
    var pending: Int { state.withLock { $0.records.count } }
    var pendingFrames: Int { state.withLock { $0.frames.count } }
    var framesProduced: Int { framesLost.withLock { $0.produced } }

    func drainCycleRecords(_ body: (borrowing CycleRecord) -> Void) -> (drained: Int, lostTotal: UInt64) {
        let (r, lost) = state.withLock { s in defer { s.records.removeAll() }; return (s.records, s.lost) }
        for x in r { body(x) }
        return (r.count, lost)
    }

    func drainFrames(_ body: (LiveFrame) -> Void) -> (drained: Int, lostTotal: UInt64) {
        let (f, lost) = state.withLock { s in defer { s.frames.removeAll() }; return (s.frames, framesLost.withLock { $0.lost }) }
        for x in f { body(x) }
        return (f.count, lost)
    }
}

/// An encoder that holds every frame until the test lets it go, and says when it holds one.
final class StuckEncoder: @unchecked Sendable {
    let released = Atomic<Bool>(false)
    let entered = Atomic<Int>(0)
    var encoder: FrameEncoder {
        FrameEncoder { [self] (_: LiveFrame, _: FrameFormat, _: Int) throws(FrameCodecError) -> [UInt8] in
            entered.add(1, ordering: .acquiringAndReleasing)
            while !released.load(ordering: .acquiring) { usleep(1000) }
            return [0x89, 0x50, 0x4E, 0x47]
        }
    }
}

struct EncoderTests {
    static func frame(_ index: UInt64, measured: Bool = true) -> LiveFrame {
        let t = Nanoseconds(index) * 66_000_000
        return LiveFrame(plane: 0, index: index, acquiredAt: t, width: 8, height: 8, pixels: Array(repeating: 100, count: 64), pixelSpacing: 0.3,
                         projection: Array(repeating: 0, count: 12),
                         measurement: measured ? TipMeasurement(acquiredAt: t, plane: 0, pixel: SIMD2(3, 4), pixelCovariance: .isotropic(1)) : nil)
    }

    /// Waits (at most `seconds`) until `condition` holds.
    static func wait(seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > end { return false }
            usleep(2000)
        }
        return true
    }

    /// The property this design exists for: with its encoder stuck on a frame, the recorder still
    /// drains every cycle record before the ring overwrites it. (Encoding on the draining thread,
    /// the first batch waits for the encoder and the ring overwrites the rest.)
    @Test func aStuckEncoderDoesNotMakeTheDrainLoseCycleRecords() throws {
        let s = try Support.Scratch()
        let path = s.path("stuck.mcap")
        let tap = BoundedTap(capacity: 16)
        let stuck = StuckEncoder()
        var settings = RecorderSettings()
        settings.encoderQueue = 2
        let rec = try Recorder(path: path, settings: settings, tap: tap, port: nil, configuration: [], encoder: stuck.encoder)
        rec.start()
        tap.produce(frames: [Self.frame(1)])
        #expect(Self.wait(seconds: 60) { stuck.entered.load(ordering: .acquiring) == 1 }, "the encoder never got the first frame")
        // One frame in the encoder, two wait for it, two find the queue full.
        tap.produce(frames: (2...5).map { Self.frame($0) })
        var batches = 0
        for _ in 0..<25 {
            tap.produce(records: 16)
            guard Self.wait(seconds: 30, { tap.pending == 0 }) else { break }
            batches += 1
        }
        #expect(batches == 25, "the drain stopped after \(batches) batches while the encoder was stuck")
        stuck.released.store(true, ordering: .releasing)
        let report = rec.stop()
        #expect(report.cycleRecords == 25 * 16)
        #expect(report.cycleRecordsLost == 0)
        #expect(report.frames == 3)
        #expect(report.framesEncoderBusy == 2)
        #expect(report.framesLost == 0)
        #expect(report.encoderQueueHighWater == 2)
        let info = try RecordingInfo.read(path)
        #expect(info.notRecorded["frames_encoder_busy"] == 2)
        #expect(info.notRecorded["cycle_records_lost"] == 0)
        // Every frame's measurement is recorded, its image or not.
        #expect(info.channels.first { $0.topic == RecordingChannels.measurement(plane: 0) }?.messages == 5)
        #expect(info.channels.first { $0.topic == RecordingChannels.image(plane: 0) }?.messages == 3)
    }

    @Test func framesStillQueuedAtStopAreEncodedBeforeTheFileCloses() throws {
        let s = try Support.Scratch()
        let tap = BoundedTap(capacity: 64)
        let slow = FrameEncoder { (f: LiveFrame, format: FrameFormat, q: Int) throws(FrameCodecError) -> [UInt8] in
            usleep(20_000)
            return try FrameEncoder.codec.encode(f, format, q)
        }
        var settings = RecorderSettings()
        settings.encoderQueue = 8
        let rec = try Recorder(path: s.path("q.mcap"), settings: settings, tap: tap, port: nil, configuration: [], encoder: slow)
        tap.produce(frames: (1...6).map { Self.frame($0) })
        rec.start()
        #expect(Self.wait(seconds: 60) { rec.progress.framesEncoderBusy + rec.progress.frames > 0 || tap.pending == 0 })
        let report = rec.stop()
        #expect(report.frames + report.framesEncoderBusy == 6)
        #expect(report.framesEncoderBusy == 0)
        #expect(report.frameEncodeSeconds > 0)
        let info = try RecordingInfo.read(s.path("q.mcap"))
        #expect(info.complete)
        #expect(info.channels.first { $0.topic == RecordingChannels.image(plane: 0) }?.messages == 6)
    }

    @Test func encoderSettingsOutOfRangeAreRefused() throws {
        let s = try Support.Scratch()
        for (queue, threads) in [(0, 1), (257, 1), (16, 0), (16, 5)] {
            var bad = RecorderSettings()
            bad.encoderQueue = queue
            bad.encoderThreads = threads
            #expect(throws: RecorderError.self) { try Recorder(path: s.path("x.mcap"), settings: bad, tap: FakeTap(), port: nil, configuration: []) }
        }
    }

    /// Forty fresh records, 10 ms apart, into a recorder whose chunks close after
    /// `chunkPeriod`: fresh records keep closing chunks (a chunk closes by its oldest data's age).
    static func recordPaced(chunkPeriod: Nanoseconds, file: String) throws -> RecorderReport {
        let s = try Support.Scratch()
        let tap = BoundedTap(capacity: 1 << 16)
        var settings = RecorderSettings()
        settings.chunkPeriod = chunkPeriod
        let rec = try Recorder(path: s.path(file), settings: settings, tap: tap, port: nil, configuration: [])
        rec.start()
        for k in 0..<40 {
            tap.produce(record: SyntheticRun.record(cycle: UInt64(k + 1), time: MonotonicClock.now(), tip: .zero))
            usleep(10_000)
        }
        return rec.stop()
    }

    /// The recorder measures what a kill would lose at every chunk write. A chunk closed by time
    /// holds records no newer than a period before its write, so the loss just before that write
    /// is at least the period: the bound measured can fall short only if the measure is wrong.
    @Test func theKillLossBoundIsMeasuredAtEveryWrite() throws {
        let report = try Self.recordPaced(chunkPeriod: 20 * .perMillisecond, file: "k.mcap")
        #expect(report.chunks >= 3)
        let maxMs = try #require(report.killLossBoundMaxMs)
        #expect(maxMs >= 20)
        #expect((report.killLossBoundP99Ms ?? .infinity) <= maxMs)
        #expect((report.drainLagMaxMs ?? -1) >= 0)
        #expect(report.chunkCRCSeconds > 0)
    }

    /// The kill bench's loss: the cycles the runtime produced before the kill (a period apart,
    /// on deadlines = wake time − lateness) that the file's newest record does not reach.
    @Test func theKillBenchCountsTheCyclesTheFileLacks() throws {
        func json(_ cycle: UInt64, _ time: Nanoseconds) -> [UInt8] {
            var j = JSONOut()
            RecordingChannels.encodeCycle(SyntheticRun.record(cycle: cycle, time: time, tip: .zero), into: &j)
            return j.bytes
        }
        // Period 1 ms; the record's lateness is 20 µs, so cycle 11's deadline is at 11 ms.
        let ms = Nanoseconds.perMillisecond
        let newest = [json(10, 10 * ms + 20_000), json(11, 11 * ms + 20_000)]
        #expect(RecorderLiveBench.cyclesLost(newest: newest, killedAt: 31 * ms + ms / 2) == 20)
        #expect(RecorderLiveBench.cyclesLost(newest: newest, killedAt: 11 * ms) == 0)
        #expect(RecorderLiveBench.cyclesLost(newest: newest, killedAt: 5 * ms) == 0)
        #expect(RecorderLiveBench.cyclesLost(newest: [newest[1]], killedAt: 31 * ms) == nil)
        #expect(RecorderLiveBench.cyclesLost(newest: [Array("{".utf8), newest[1]], killedAt: 31 * ms) == nil)
        #expect(RecorderLiveBench.cyclesLost(newest: [newest[1], newest[0]], killedAt: 31 * ms) == nil)
    }

    @Test func syncIntervalsAreMeasured() throws {
        let report = try Self.recordPaced(chunkPeriod: 5 * .perMillisecond, file: "s.mcap")
        #expect(report.chunks >= 3)
        #expect((report.syncIntervalP99Ms ?? 0) > 0)
        #expect((report.syncIntervalMaxMs ?? 0) >= (report.syncIntervalP99Ms ?? .infinity))
    }

    /// Every frame the tap produced is in the file or counted under one reason, exactly: lost in
    /// the queue (before the first drain and after), left out by decimation, refused at a full
    /// encoder queue, refused by the codec. (The live bench once found 102 frames it could not
    /// place: it counted frames the runtime produced while the recorder was finishing.)
    @Test func everyFrameIsRecordedOrCountedUnderOneReason() throws {
        let s = try Support.Scratch()
        let path = s.path("account.mcap")
        let tap = BoundedTap(capacity: 1 << 16, frameCapacity: 4)
        let stuck = StuckEncoder()
        // Stuck on its first frame until released, and then refuses it as the codec would.
        let calls = Atomic<Int>(0)
        let encoder = FrameEncoder { (f: LiveFrame, format: FrameFormat, q: Int) throws(FrameCodecError) -> [UInt8] in
            let call = calls.add(1, ordering: .acquiringAndReleasing).newValue
            let bytes = try stuck.encoder.encode(f, format, q)
            if call == 1 { throw .badSize(width: f.width, height: f.height, pixels: 0) }
            return bytes
        }
        var settings = RecorderSettings()
        settings.encoderQueue = 1
        settings.frameDecimation = 2
        let rec = try Recorder(path: path, settings: settings, tap: tap, port: nil, configuration: [], encoder: encoder)
        // Ten frames before the recorder drains: the queue keeps the last four.
        tap.produce(frames: (1...10).map { Self.frame($0) })
        rec.start()
        #expect(Self.wait(seconds: 60) { stuck.entered.load(ordering: .acquiring) == 1 }, "the encoder never got a frame")
        var next: UInt64 = 11
        // The encoder holds one frame and its queue one more: the next frames offered are refused.
        while rec.progress.framesEncoderBusy < 2, next < 400 {
            tap.produce(frames: [Self.frame(next), Self.frame(next + 1)])
            next += 2
            _ = Self.wait(seconds: 30) { tap.pendingFrames == 0 }
        }
        // More than the queue holds at once, so some are lost after the first drain as well.
        tap.produce(frames: (next..<(next + 9)).map { Self.frame($0) })
        stuck.released.store(true, ordering: .releasing)
        let r = rec.stop()
        let lostInQueue = Int(r.framesLost)
        #expect(lostInQueue >= 6 + 5)
        #expect(r.framesSkipped > 0)
        #expect(r.framesEncoderBusy >= 2)
        #expect(r.framesNotEncoded > 0)
        #expect(r.frames > 0)
        #expect(r.framesNotWritten == 0)
        #expect(r.framesUnaccounted == 0)
        #expect(r.framesReceived + lostInQueue == tap.framesProduced)
        #expect(r.frames + r.framesSkipped + r.framesEncoderBusy + r.framesNotEncoded + lostInQueue == tap.framesProduced)
        // The file agrees: an image per recorded frame, a measurement per drained one, and the
        // closing report names every reason.
        let info = try RecordingInfo.read(path)
        #expect(info.channels.first { $0.topic == RecordingChannels.image(plane: 0) }?.messages == r.frames)
        #expect(info.channels.first { $0.topic == RecordingChannels.measurement(plane: 0) }?.messages == r.framesReceived)
        #expect(info.notRecorded["frames_lost"] == lostInQueue)
        #expect(info.notRecorded["frames_skipped"] == r.framesSkipped)
        #expect(info.notRecorded["frames_encoder_busy"] == r.framesEncoderBusy)
        #expect(info.notRecorded["frames_not_encoded"] == r.framesNotEncoded)
        #expect(info.recorderReport?["frames_received"] == "\(r.framesReceived)")
    }

    /// The property the syncing thread exists for: with fdatasync stuck (a busy disk stalled it
    /// for 2.2 s), the recorder still drains every cycle record and closes its chunks.
    @Test func aStalledSyncDoesNotMakeTheDrainLoseCycleRecords() throws {
        let s = try Support.Scratch()
        let path = s.path("stall.mcap")
        let tap = BoundedTap(capacity: 16)
        let released = Atomic<Bool>(false), entered = Atomic<Int>(0)
        let stalled = FileSync { fd in
            entered.add(1, ordering: .acquiringAndReleasing)
            while !released.load(ordering: .acquiring) { usleep(1000) }
            return Foundation.fdatasync(fd) == 0 ? 0 : errno
        }
        var settings = RecorderSettings()
        settings.chunkPeriod = 1 * .perMillisecond
        let rec = try Recorder(path: path, settings: settings, tap: tap, port: nil, configuration: [], fileSync: stalled)
        rec.start()
        var batches = 0
        for k in 0..<25 {
            for c in 0..<16 { tap.produce(record: SyntheticRun.record(cycle: UInt64(k * 16 + c + 1), time: MonotonicClock.now(), tip: .zero)) }
            guard Self.wait(seconds: 30, { tap.pending == 0 }) else { break }
            batches += 1
            if k == 0 { #expect(Self.wait(seconds: 60) { entered.load(ordering: .acquiring) == 1 }, "no sync was asked for") }
        }
        #expect(batches == 25, "the drain stopped after \(batches) batches while the sync was stalled")
        // Written, not yet synced: already readable (what a kill -9 would leave).
        #expect(Self.wait(seconds: 30) { rec.progress.chunks >= 2 })
        released.store(true, ordering: .releasing)
        let r = rec.stop()
        #expect(r.writeError == nil)
        #expect(r.cycleRecords == 25 * 16)
        #expect(r.cycleRecordsLost == 0)
        #expect((r.syncDurationMaxMs ?? 0) > 0)
        #expect(r.chunkWriteMaxMs != nil)
        #expect(try RecordingInfo.read(path).complete)
    }

    /// A sync that fails (the disk reports an error) ends the recording with that error named,
    /// instead of going on as if the data were safe.
    @Test func aFailedSyncIsAWriteError() throws {
        let s = try Support.Scratch()
        let tap = BoundedTap(capacity: 1 << 16)
        var settings = RecorderSettings()
        settings.chunkPeriod = 1 * .perMillisecond
        let rec = try Recorder(path: s.path("eio.mcap"), settings: settings, tap: tap, port: nil, configuration: [], fileSync: FileSync { _ in EIO })
        rec.start()
        var k: UInt64 = 0
        let failed = Self.wait(seconds: 60) {
            k += 1
            tap.produce(record: SyntheticRun.record(cycle: k, time: MonotonicClock.now(), tip: .zero))
            return rec.progress.writeError != nil
        }
        let r = rec.stop()
        #expect(failed)
        #expect(r.writeError?.contains("sync") == true)
    }
}

