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
    private let state = Mutex<(records: [CycleRecord], frames: [LiveFrame], lost: UInt64, next: Int)>(([], [], 0, 1))
    init(capacity: Int) { self.capacity = capacity }

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
    func produce(frames: [LiveFrame]) { state.withLock { $0.frames += frames } }
    var pending: Int { state.withLock { $0.records.count } }

    func drainCycleRecords(_ body: (borrowing CycleRecord) -> Void) -> (drained: Int, lostTotal: UInt64) {
        let (r, lost) = state.withLock { s in defer { s.records.removeAll() }; return (s.records, s.lost) }
        for x in r { body(x) }
        return (r.count, lost)
    }

    func drainFrames(_ body: (LiveFrame) -> Void) -> (drained: Int, lostTotal: UInt64) {
        let f = state.withLock { s in defer { s.frames.removeAll() }; return s.frames }
        for x in f { body(x) }
        return (f.count, 0)
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

    @Test func syncIntervalsAreMeasured() throws {
        let s = try Support.Scratch()
        let tap = BoundedTap(capacity: 1 << 16)
        var settings = RecorderSettings()
        settings.chunkPeriod = 5 * .perMillisecond
        let rec = try Recorder(path: s.path("s.mcap"), settings: settings, tap: tap, port: nil, configuration: [])
        rec.start()
        // Fresh records keep closing chunks (a chunk closes by its oldest data's age).
        for k in 0..<40 {
            tap.produce(record: SyntheticRun.record(cycle: UInt64(k + 1), time: MonotonicClock.now(), tip: .zero))
            usleep(10_000)
        }
        let report = rec.stop()
        #expect(report.chunks >= 3)
        #expect((report.syncIntervalP99Ms ?? 0) > 0)
        #expect((report.syncIntervalMaxMs ?? 0) >= (report.syncIntervalP99Ms ?? .infinity))
    }
}

