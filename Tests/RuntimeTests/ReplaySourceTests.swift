import Control
import Core
import Foundation
import Imaging
import Scenarios
import Testing
@testable import Runtime

/// A replayed recording shows another catheter than this robot's: the runtime tracks and shows
/// it, and never fuses it into the estimate that steers the robot and that the monitor checks.
struct ReplaySourceTests {
    @Test func aReplayedRecordingIsTrackedAndShownButNeverFused() throws {
        var settings = archSettings()
        settings.realtime = RealtimeOptions()
        settings.monitor = false
        let robot = try loadRobot()
        // The sequence: this scene's own settled catheter on its frontal plane, so that the
        // measurer, searching around the kinematic estimate, finds a tip in every frame.
        let scene = try NavigationScene(settings.setup, robot: robot)
        let physics = scene.makePhysics()
        let carm = SimulatedBiplaneCArm(planes: [scene.planes[0]], tree: scene.tree, photons: settings.setup.photons, seed: 3,
                                        catheterRadius: robot.outerDiameterMM / 2)
        let count = 6
        let frames = try (1...count).map { k in
            try carm.exposure(index: k, at: Nanoseconds(k) * 133_333_333, catheter: physics.centerline()).frames[0].frame
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-replay-source-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let dicom = dir.appendingPathComponent("sequence.dcm").path
        try DICOMWriter.write(frames: frames, geometry: scene.planes[0], frameInterval: 133_333_333, to: dicom)

        settings.imaging = .replay(path: dicom)
        let runtime = try LiveRuntime(settings, robot: robot)
        try runtime.start()
        let ended = waitFor(seconds: 120) { (runtime.imagingFigures?.acquired.first ?? 0) >= UInt64(count) }
        // Let the last exposure's measurement reach the mailbox, were it sent.
        usleep(300_000)
        var shown = 0, drained = 0
        _ = runtime.drainFrames { f in
            drained += 1
            if f.measurement != nil { shown += 1 }
        }
        let figures = runtime.imagingFigures
        let estimate = runtime.snapshot().estimate
        _ = runtime.finish(.completed)
        #expect(ended, "the replay did not deliver its \(count) frames: \(String(describing: figures))")
        #expect(drained == count)
        // Tracked and shown: the measurer found the tip in the replayed frames…
        #expect(shown > 0, "no tip found in the replayed frames: the test shows nothing (\(String(describing: figures)))")
        // …and none of it went to the estimator or the monitor's image tip.
        #expect(figures?.measurementsSent == 0, "\(String(describing: figures))")
        #expect(estimate.lastImageAt == 0, "the estimate fused a replayed frame")
        #expect(runtime.shared.imageTip.latest == nil)
    }
}
