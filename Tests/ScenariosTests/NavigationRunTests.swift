import Control
import Core
import Foundation
import Imaging
import Sim
import Testing
@testable import Scenarios

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func loadRobot(_ name: String = "lumen-1s.yaml") throws -> RobotDescription {
    try ConfigLoader.load(RobotDescription.self, from: repoRoot.appendingPathComponent("robots/\(name)").path)
}

/// A run up the straight tube: the catheter starts 60 mm in and its target lies 30 mm further,
/// a few seconds of simulated time, so the suite can afford several (the arch's runs take
/// 25–55 s of simulated time each and are `lumen eval navigation`'s).
func tubeSetup(seed: UInt64 = 1, measurements: MeasurementSource = .truth, seconds: Double = 15) -> NavigationSetup {
    var setup = NavigationSetup()
    setup.phantom = "straight"
    setup.vessel = "tube"
    setup.depth = 90
    setup.seed = seed
    setup.measurements = measurements
    setup.maxSeconds = seconds
    return setup
}

/// A frame source whose C-arm gives no frames at all.
final class DarkCArm: NavigationFrameSource {
    var asked = 0
    func exposure(index: Int, at time: Nanoseconds, catheter: [Vec3]) throws(NavigationError) -> NavigationExposure {
        asked += 1
        return NavigationExposure(frames: [])
    }
}

@Suite struct NavigationRunTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func truthMeasuredRunsReachTheirTargets(seed: UInt64) throws {
        let (result, trace) = try NavigationRun.run(tubeSetup(seed: seed), robot: try loadRobot())
        #expect(result.success, "seed \(seed): \(result.reason), final error \(result.final_err_mm) mm")
        #expect(result.end == .arrived)
        #expect(result.final_err_mm <= 1)
        #expect(result.invalid_commands == 0)
        // Truth needs no images: nothing is measured from frames.
        #expect(result.outcomes == OutcomeCounts())
        // The run ends with the drives disabled.
        #expect(result.lifecycle_at_end == "\(LifecycleState.inactive)")
        #expect(!trace.truth.isEmpty && trace.truth.count == trace.fused.count)
    }

    @Test func theTrackerGuidesTheCatheterToItsTarget() throws {
        var setup = tubeSetup(measurements: .tracker)
        // A smaller detector at a lower frame rate keeps the rendering affordable in a debug build.
        setup.detectorPixels = 512
        setup.pixelSpacingMM = 0.6
        setup.fps = 7.5
        let (result, _) = try NavigationRun.run(setup, robot: try loadRobot())
        #expect(result.success, "\(result.reason), final error \(result.final_err_mm) mm, outcomes \(result.outcomes)")
        #expect(result.outcomes.pair > result.frames / 2, "\(result.outcomes)")
        #expect(result.outcomes.pair + result.outcomes.whole_frame_pair + result.outcomes.single_plane_pixels + result.outcomes.none == result.frames)
        #expect(result.image_only.median < 1, "image-only error \(result.image_only)")
        #expect(result.fused_measurements > 0 && result.invalid_commands == 0)
    }

    @Test func theSameSeedRunsTheSameWay() throws {
        let robot = try loadRobot()
        var setup = tubeSetup(seconds: 2)
        let a = try NavigationRun.run(setup, robot: robot).0, b = try NavigationRun.run(setup, robot: robot).0
        #expect(a.fused == b.fused && a.final_err_mm == b.final_err_mm && a.fused_measurements == b.fused_measurements)
        setup.seed += 1
        let c = try NavigationRun.run(setup, robot: robot).0
        #expect(c.image_only != a.image_only)
    }

    @Test func measurementsWithNaNAreRefusedAndTheRunEndsInAHold() throws {
        let setup = tubeSetup(seconds: 3)
        let (result, _) = try NavigationRun.run(setup, robot: try loadRobot(), faults: NavigationFaults(corruptMeasurementsAfter: 0.5))
        #expect(!result.success)
        #expect(result.end == .timeLimit)
        // Every corrupted measurement is refused by the estimator, none reaches a command, and
        // with no image the estimate is lost and the supervisor holds.
        #expect(result.rejected_measurements >= result.frames - 10)
        #expect(result.invalid_commands == 0)
        #expect(result.lost_cycles > 0)
        #expect(result.mode_at_end == "\(ControlMode.hold)")
        #expect(result.lifecycle_at_end == "\(LifecycleState.inactive)")
    }

    @Test func aCArmThatGivesNoFramesLeavesTheCatheterHeld() throws {
        let setup = tubeSetup(measurements: .tracker, seconds: 2)
        let dark = DarkCArm()
        let (result, trace) = try NavigationRun.run(setup, robot: try loadRobot(), frameSource: { _, _ in dark })
        #expect(dark.asked == result.frames && result.frames > 0)
        #expect(result.outcomes == OutcomeCounts(pair: 0, whole_frame_pair: 0, single_plane_pixels: 0, none: result.frames))
        #expect(result.end == .timeLimit && !result.success)
        #expect(result.fused_measurements == 0)
        #expect(result.mode_at_end == "\(ControlMode.hold)")
        #expect(result.lifecycle_at_end == "\(LifecycleState.inactive)")
        // Held: the tip has not gone on towards the target.
        let first = try #require(trace.truth.first), last = try #require(trace.truth.last)
        #expect((last - first).length < 5)
    }

    @Test func aBadSetupIsATypedError() throws {
        let robot = try loadRobot()
        var setup = NavigationSetup()
        setup.phantom = "nowhere"
        #expect(throws: NavigationError.unknownPhantom("nowhere")) { try NavigationRun.run(setup, robot: robot) }
        setup = NavigationSetup()
        setup.vessel = "no_such_vessel"
        #expect { try NavigationRun.run(setup, robot: robot) } throws: { ($0 as? NavigationError).map { if case .route = $0 { true } else { false } } ?? false }
        setup = NavigationSetup()
        setup.fps = .nan
        #expect { try NavigationRun.run(setup, robot: robot) } throws: { ($0 as? NavigationError).map { if case .badSetup(field: "fps", _) = $0 { true } else { false } } ?? false }
    }
}

@Suite struct NavigationCampaignTests {
    @Test func runsCycleThroughTheTargetsThenTheAnglesWithOneSeedEach() {
        let setups = (0..<17).map { NavigationCampaign.setup(run: $0, seed: 10) }
        #expect(setups.map(\.seed) == (0..<17).map { 10 + UInt64($0) })
        #expect(setups[0].vessel == "left_subclavian" && setups[0].depth == 25 && setups[0].primaryDeg == 0)
        #expect(setups[3].vessel == "left_subclavian" && setups[3].depth == 40)
        #expect(setups[4].vessel == "left_subclavian" && setups[4].primaryDeg == 30)
        #expect(setups[10].vessel == "brachiocephalic" && setups[10].primaryDeg == -30 && setups[10].secondaryDeg == 15)
        // After four angles, the first again.
        #expect(setups[16].primaryDeg == 0 && setups[16].vessel == "left_subclavian")
    }
}

/// The monitor's insertion-force check in simulated time: a run whose force at the sheath
/// exceeds the limit ends there, as the live monitor would end it.
@Suite struct NavigationForceTests {
    @Test("A force sensor that reads over the monitor's limit ends the run with a force stop at once")
    func forceOverTheLimitStopsTheRun() throws {
        let setup = tubeSetup(seconds: 5)
        let (result, _) = try NavigationRun.run(setup, robot: try loadRobot(), faults: NavigationFaults(forceSensorBias: (after: 1, biasN: 6)))
        guard case .forceStop(let push, let limit) = result.end else {
            Issue.record("ended \(result.end)"); return
        }
        #expect(limit == NavigationMonitorLimits.maxInsertionForce)
        #expect(push > limit)
        let t = result.time_s, success = result.success
        #expect(t >= 1 && t < 1.01, "stopped at \(t) s")
        #expect(!success)
        #expect(result.lifecycle_at_end == "\(LifecycleState.inactive)")
    }

    @Test("Pushing at the servo's stall level, the catheter is withdrawn instead of advanced, and the run never reaches the monitor's limit")
    func aPushAtTheStallLevelIsNotPushedOn() throws {
        // 4 N: over the servo's stall level (0.7 × 5 N), under the monitor's limit. Free, the
        // tube run arrives in about 5 s (truthMeasuredRunsReachTheirTargets).
        let setup = tubeSetup(seconds: 8)
        let (result, trace) = try NavigationRun.run(setup, robot: try loadRobot(), faults: NavigationFaults(forceSensorBias: (after: 0, biasN: 4)))
        #expect(result.end == .timeLimit)
        let success = result.success
        #expect(!success)
        // The catheter ends withdrawn towards the sheath (the route's start), by retreats at
        // 3 mm/s: every push was a stall, and each stall a retreat.
        let first = try #require(trace.truth.first), last = try #require(trace.truth.last)
        let sheath = try #require(trace.route.first)
        let withdrawn = (first - sheath).length - (last - sheath).length
        #expect(withdrawn > 10, "withdrawn \(withdrawn) mm")
    }
}
