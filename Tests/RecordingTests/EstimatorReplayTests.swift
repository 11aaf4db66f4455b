import Control
import Core
import Foundation
import Runtime
import Testing
@testable import Recording

/// The estimator re-run on a live recording reproduces the estimates the run recorded.
struct EstimatorReplayTests {
    static let robotPath = Support.root.appendingPathComponent("robots/lumen-1s.yaml").path

    /// A short live run (the demo's arch scene on a smaller detector, no monitor process)
    /// navigating as the demo does, recorded with its robot file, until images have been fused.
    static func recordLiveRun(to path: String, seconds: Double) throws -> RecorderReport {
        var s = LiveSettings()
        s.setup.detectorPixels = 512
        s.setup.pixelSpacingMM = 0.6
        s.setup.fps = 7.5
        s.monitor = false
        s.deadmanTimeout = 1
        let robot = try ConfigLoader.load(RobotDescription.self, from: robotPath)
        let runtime = try LiveRuntime(s, robot: robot)
        let doc = ConfigurationDocument(name: robotPath, bytes: Array(try Data(contentsOf: URL(fileURLWithPath: robotPath))))
        let rec = try Recorder(path: path, tap: runtime, port: runtime, configuration: [doc])
        try runtime.start()
        rec.start()
        let client = AutomationClient(port: runtime, name: "recording test")
        client.start()
        _ = runtime.waitForPower()
        let vessel = s.setup.vessel
        let navigator = Thread { client.navigate(to: vessel, seconds: 60) }
        navigator.start()
        Thread.sleep(forTimeInterval: seconds)
        // Images fused, and some after, so the replay's fusion matters (slow in a debug build under load).
        let deadline = Date().addingTimeInterval(120)
        while runtime.snapshot().estimate.lastImageAt == 0, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        Thread.sleep(forTimeInterval: 1)
        client.stop()
        _ = runtime.finish(.completed)
        return rec.stop()
    }

    @Test func theReplayedEstimatorReproducesTheRecordedEstimates() throws {
        let s = try Support.Scratch()
        let path = s.path("live.mcap")
        let report = try Self.recordLiveRun(to: path, seconds: 3)
        #expect(report.writeError == nil)
        #expect(report.cycleRecordsLost == 0)
        let (r, samples) = try EstimatorReplay.run(path)
        #expect(r.samples == report.cycleRecords)
        #expect(r.firstCycle == 1)
        #expect(r.missingCycles == 0)
        #expect(r.measurements > 0, "no measurement was recorded")
        #expect(r.fused > 0)
        // Each measurement's cycle of arrival is recorded (fused or refused): none is inferred,
        // and the replay is the same arithmetic on the same inputs, so it reproduces every estimate.
        // (One recorded after the last cycle took one from the mailbox never arrived, as in the run.)
        #expect(r.arrivalsRecorded > 0 && r.arrivalsRecorded + r.undelivered == r.measurements, "\(r)")
        #expect(r.arrivalsInferred == 0, "\(r)")
        #expect(r.differenceMedianMm < 1e-9, "\(r)")
        #expect(r.reproduced, "\(r)")
        #expect(samples.seconds.count == r.samples)
        #expect(samples.csv.split(separator: "\n").count == r.samples + 1)
        print("estimator replay: \(r)")
    }

    /// The comparison can fail: replayed without its measurements the estimator is kinematics
    /// alone, and the recorded (fused) estimates differ from it.
    @Test func replayWithoutTheMeasurementsDiffers() throws {
        let s = try Support.Scratch()
        let path = s.path("live.mcap")
        _ = try Self.recordLiveRun(to: path, seconds: 3)
        // Copy the recording without its measurement channels.
        let stripped = s.path("stripped.mcap")
        try Support.rewrite(path, to: stripped) { topic, _, data in topic.hasSuffix("/measurement") ? nil : data }
        let (r, _) = try EstimatorReplay.run(stripped)
        #expect(r.measurements == 0)
        #expect(!r.reproduced)
        #expect(r.differenceMaxMm > 0.01, "\(r)")
    }

    @Test func aRecordingWithoutItsEstimatorSetupIsRefusedWithTheReason() throws {
        let s = try Support.Scratch()
        let path = s.path("synthetic.mcap")
        try Support.recordSynthetic(to: path, planes: 0, seconds: 0.2)
        #expect(throws: EstimatorReplayError.noEstimatorSetup) { try EstimatorReplay.run(path) }
    }

    @Test func arrivalsAreReadOffTheRecordedEstimateAndInferredInOrder() {
        func cycle(_ k: Int, last: Nanoseconds) -> EstimatorReplay.Cycle {
            EstimatorReplay.Cycle(cycle: UInt64(k + 1), time: Nanoseconds(k) * 1_000_000, joints: [0, 0, 0, 0], estimate: .zero, lastImageAt: last)
        }
        // Fused: acquired at 10 ms, arrives in cycle 50; refused: acquired at 20 ms (no trace);
        // fused: acquired at 30 ms, arrives in cycle 70.
        let cycles = (0..<100).map { k in cycle(k, last: k >= 70 ? 30_000_000 : k >= 50 ? 10_000_000 : 0) }
        let m = [10, 20, 30].map { TipMeasurement(acquiredAt: Nanoseconds($0) * 1_000_000, plane: 0, pixel: SIMD2(1, 1)) }
        let (arrival, recorded, known) = EstimatorReplay.arrivals(of: m, cycles: cycles)
        #expect(recorded == 0)
        #expect(known == 2)
        #expect(arrival[0] == 50 && arrival[2] == 70)
        // The median latency of the known ones is 40 ms: 20 + 40 = 60 ms, cycle 60, between its neighbours.
        #expect(arrival[1] == 60)
    }

    /// Where the cycle records name their arrivals, a refused measurement is placed where it
    /// arrived, not where the others' latency would put it; two arriving together share a cycle.
    @Test func recordedArrivalsPlaceEveryMeasurementExactly() {
        let ms: Nanoseconds = 1_000_000
        let cycles = (0..<100).map { k in
            // Acquired at 10 ms: cycle 50 (fused); at 20 ms: cycle 83 (refused, late); at 30 and
            // 31 ms: both in cycle 90.
            let arrived: (count: Int, acquiredAt: Nanoseconds) = k == 50 ? (1, 10 * ms) : k == 83 ? (1, 20 * ms) : k == 90 ? (2, 31 * ms) : (0, 0)
            return EstimatorReplay.Cycle(cycle: UInt64(k + 1), time: Nanoseconds(k) * ms, joints: [0, 0, 0, 0], estimate: .zero,
                                         lastImageAt: k >= 90 ? 31 * ms : k >= 50 ? 10 * ms : 0, arrived: arrived)
        }
        // Acquired at 40 ms: recorded with its frame, but no cycle took it before the run ended.
        let m = [10, 20, 30, 31, 40].map { TipMeasurement(acquiredAt: Nanoseconds($0) * ms, plane: 0, pixel: SIMD2(1, 1)) }
        let (arrival, recorded, known) = EstimatorReplay.arrivals(of: m, cycles: cycles)
        #expect(recorded == 4)
        #expect(known == 0)
        #expect(arrival == [50, 83, 90, 90, 100])
    }
}
