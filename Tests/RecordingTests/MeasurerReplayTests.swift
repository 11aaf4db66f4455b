import Control
import Core
import Foundation
import Imaging
import Runtime
import Testing
@testable import Recording

/// Removes the suite's shared recording once all its tests have run.
struct RemovesSharedRecording: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        defer { try? FileManager.default.removeItem(at: MeasurerReplayTests.directory) }
        try await function()
    }
}

/// The biplane measurer re-run on a live recording reproduces the measurements the run recorded,
/// and says so when it cannot.
@Suite(RemovesSharedRecording()) struct MeasurerReplayTests {
    static let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-measurer-replay-\(UUID().uuidString)")
    /// One live run shared by the tests (recording one takes seconds of wall clock in a debug
    /// build), removed when the suite ends.
    static let recording: Result<String, any Error> = Result {
        let dir = directory
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("live.mcap").path
        let report = try EstimatorReplayTests.recordLiveRun(to: path, seconds: 3)
        guard report.writeError == nil else { throw MeasurerReplayError.badMessage(topic: "", reason: "the recorder failed: \(report)") }
        return path
    }

    @Test func theReplayedMeasurerReproducesTheRecordedMeasurements() throws {
        let path = try Self.recording.get()
        let r = try MeasurerReplay.run(path)
        #expect(r.measured > 0, "\(r)")
        // The demo's scene is biplane: every measured exposure has two frames.
        #expect(r.frames == 2 * r.measured, "\(r)")
        #expect(r.recordedFound > 0, "no tip was recorded: nothing to compare (\(r))")
        #expect(r.lossyFrames == 0 && r.undecodable == 0)
        // The same measurer on the same input: the same answers, up to the last digits the
        // recorded numbers lose when read back (the test's run: 4e-14 mm).
        #expect(r.reproduced == r.frames, "\(r)")
        #expect((r.pixelDifferenceMax ?? 0) < 1e-9 && (r.positionDifferenceMaxMm ?? 0) < 1e-9, "\(r)")
        // At most the exposures in flight when the recorder stopped lack a frame.
        #expect(r.incomplete <= 2, "\(r)")
        #expect(r.exposures == r.measured + r.incomplete)
        print("measurer replay: \(r)")
    }

    /// The comparison can fail: with each recorded prior moved 8 mm the measurer searches
    /// elsewhere and its answers are not the recorded ones.
    @Test func aDifferentPriorDoesNotReproduce() throws {
        let path = try Self.recording.get()
        let s = try Support.Scratch()
        let moved = s.path("moved.mcap")
        try Support.rewrite(path, to: moved) { topic, _, data in
            guard topic.hasSuffix("/frame"), var o = (try? JSONSerialization.jsonObject(with: Data(data))) as? [String: Any],
                  var prior = o["prior"] as? [String: Any], let p = prior["position"] as? [Double] else { return data }
            prior["position"] = [p[0] + 8, p[1], p[2]]
            o["prior"] = prior
            return (try? JSONSerialization.data(withJSONObject: o)).map { Array($0) }
        }
        let r = try MeasurerReplay.run(moved)
        #expect(r.measured > 0)
        #expect(r.reproduced < r.frames, "\(r)")
    }

    /// An exposure with a plane's image missing (a busy encoder, a loss) is counted, not measured
    /// on one plane: the measurer pairs the planes, so one alone is not what it measured.
    @Test func exposuresMissingAPlaneAreCountedNotMeasured() throws {
        let path = try Self.recording.get()
        let full = try MeasurerReplay.run(path)
        let s = try Support.Scratch()
        let cut = s.path("cut.mcap")
        var dropped = Set<UInt64>()
        try Support.rewrite(path, to: cut) { topic, time, data in
            guard topic == RecordingChannels.image(plane: 1), dropped.count < 3 else { return data }
            dropped.insert(time)
            return nil
        }
        let r = try MeasurerReplay.run(cut)
        #expect(r.incomplete == full.incomplete + 3, "\(r)")
        #expect(r.measured == full.measured - 3, "\(r)")
        #expect(r.exposures == full.exposures)
        #expect(r.reproduced == r.frames, "\(r)")
    }

    /// `lumen replay --measure` prints the comparison as JSON, and refuses a synthetic recording
    /// (no measurer) with the reason and a failing exit status.
    @Test func theReplayCommandMeasuresAgainAndRefusesWhatItCannot() throws {
        let path = try Self.recording.get()
        let ok = try Support.tool(["replay", path, "--measure", "--json"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let m = ok.json?["measurer"] as? [String: Any]
        #expect((m?["reproducedFraction"] as? Double) == 1, "\(ok.stdout)")
        #expect(((m?["measured"] as? Int) ?? 0) > 0, "\(ok.stdout)")

        let s = try Support.Scratch()
        let synthetic = s.path("synthetic.mcap")
        try Support.recordSynthetic(to: synthetic, planes: 1, seconds: 0.3)
        let refused = try Support.tool(["replay", synthetic, "--measure"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains(MeasurerSetup.documentName), "\(refused.stderr)")
    }

    /// A frame source that brings its own geometry (a DICOM file's, a frame grabber's
    /// calibration) is what the measurer and the estimator project with, and what is recorded:
    /// before, both used the scene's planes, and pixels of one geometry were fused through another.
    @Test func theFrameSourcesOwnPlanesAreTheMeasurersAndTheEstimators() throws {
        let s = try Support.Scratch()
        var settings = LiveSettings()
        settings.monitor = false
        let robot = try ConfigLoader.load(RobotDescription.self, from: EstimatorReplayTests.robotPath)
        let sceneRuntime = try LiveRuntime(settings, robot: robot)
        // A plane of another C-arm: another angle, pitch, distance and detector than the scene's.
        var g = sceneRuntime.scene.planes[0]
        g.primaryAngle += 25 * .pi / 180
        g.pixelSpacing = 0.2
        g.sourceToDetector += 80
        g.columns = 256
        g.rows = 192
        let frames = (0..<3).map { _ in Frame(width: 256, height: 192, pixels: Array(repeating: 3000, count: 256 * 192)) }
        let dicom = s.path("other-carm.dcm")
        try DICOMWriter.write(frames: frames, geometry: g, frameInterval: 66_666_667, to: dicom)
        let opened = try FrameSource.open(path: dicom)
        let declared = try #require(opened.geometry, "\(opened.geometryNotes)")
        #expect(declared != sceneRuntime.scene.planes[0])

        settings.imaging = .replay(path: dicom)
        let runtime = try LiveRuntime(settings, robot: robot)
        #expect(runtime.imagingPlanes == [declared])
        #expect(runtime.measurerPlanes == [declared])
        #expect(runtime.estimatorSetup.planes == [declared])
        // One plane: a lost estimate may be reset from its pixels, as in any mono set-up.
        #expect(runtime.estimatorSetup.resetFromPixels)
        #expect(runtime.measurerSetup.planes == [declared])
        // Without a source of its own, the scene's planes.
        #expect(sceneRuntime.imagingPlanes == sceneRuntime.scene.planes)
        #expect(sceneRuntime.measurerSetup.planes == sceneRuntime.scene.planes)
    }

    @Test func recordingsWithoutTheMeasurerSetupOrInputAreRefusedWithTheReason() throws {
        let path = try Self.recording.get()
        let s = try Support.Scratch()
        let noSetup = s.path("no-setup.mcap")
        // A configuration message's document name.
        func document(_ topic: String, _ data: [UInt8]) -> String? {
            guard topic == RecordingChannels.configuration else { return nil }
            return ((try? JSONSerialization.jsonObject(with: Data(data))) as? [String: Any])?["name"] as? String
        }
        try Support.rewrite(path, to: noSetup) { topic, _, data in document(topic, data) == MeasurerSetup.documentName ? nil : data }
        #expect(throws: MeasurerReplayError.noMeasurerSetup) { try MeasurerReplay.run(noSetup) }
        let noInput = s.path("no-input.mcap")
        try Support.rewrite(path, to: noInput) { topic, _, data in
            guard topic.hasSuffix("/frame"), var o = (try? JSONSerialization.jsonObject(with: Data(data))) as? [String: Any] else { return data }
            o["prior"] = nil
            return (try? JSONSerialization.data(withJSONObject: o)).map { Array($0) }
        }
        #expect(throws: MeasurerReplayError.noMeasurerInput) { try MeasurerReplay.run(noInput) }
        let noRobot = s.path("no-robot.mcap")
        try Support.rewrite(path, to: noRobot) { topic, _, data in document(topic, data)?.hasSuffix("lumen-1s.yaml") == true ? nil : data }
        #expect(throws: MeasurerReplayError.noRobotFile("lumen-1s")) { try MeasurerReplay.run(noRobot) }
    }
}
