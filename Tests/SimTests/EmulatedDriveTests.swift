import Core
import Testing
@testable import Sim

@Suite struct EmulatedDriveTests {
    let model = DriveAxisModel.catheterAxis(unit: .millimetre, maxVelocity: 20)
    var resolution: Double { 2 * .pi / model.encoderCountsPerRev / model.motorRadPerUnit }

    /// Runs the axis at 1 kHz for `seconds`, refreshing the enable each cycle.
    func run(_ axis: inout EmulatedDriveAxis, to target: Double, seconds: Double, refresh: Bool = true) -> [Double] {
        var speeds: [Double] = []
        for _ in 0..<Int(seconds * 1000) {
            if refresh { axis.setEnable(true) }
            axis.step(target: target, dt: 0.001)
            speeds.append(axis.measuredVelocity)
        }
        return speeds
    }

    @Test func aStepIsRampedAtTheSpeedLimitAndSettlesWithoutOvershoot() {
        var axis = EmulatedDriveAxis(model: model, position: 0)
        axis.setEnable(true)
        let speeds = run(&axis, to: 10, seconds: 0.25)
        // A trapezoid: 0.2 s of 100 mm/s² to 20 mm/s (2 mm), then 20 mm/s: 3 mm at 0.25 s.
        #expect(axis.measuredPosition > 2.7 && axis.measuredPosition < 3.2, "at 0.25 s: \(axis.measuredPosition)")
        var peak = speeds.map(abs).max()!
        var overshoot = 0.0
        let more = run(&axis, to: 10, seconds: 1.5)
        peak = max(peak, more.map(abs).max()!)
        overshoot = max(overshoot, axis.load - 10)
        #expect(peak <= 20 * 1.03, "peak speed \(peak) mm/s")
        #expect(abs(axis.measuredPosition - 10) <= 3 * resolution)
        #expect(overshoot < 0.05)
        #expect(axis.fault == .none)
    }

    @Test func measurementsAreQuantisedToEncoderCounts() {
        var axis = EmulatedDriveAxis(model: model, position: 1.23456789)
        axis.setEnable(true)
        _ = run(&axis, to: 2.3456789, seconds: 0.3)
        let counts = axis.measuredPosition / resolution
        #expect(abs(counts - counts.rounded()) < 1e-6)
    }

    @Test func backlashLeavesTheLoadBehindOnReversal() {
        var axis = EmulatedDriveAxis(model: model, position: 0)
        _ = run(&axis, to: 2, seconds: 1)
        let forward = axis.load - axis.measuredPosition
        _ = run(&axis, to: 0, seconds: 1)
        let backward = axis.load - axis.measuredPosition
        // Approached from below the load trails by half the gap, from above it leads by it (the
        // motor may hunt a little inside the gap at standstill: stick-slip against the integral).
        #expect(abs(forward + model.backlash / 2) < 0.1 * model.backlash)
        #expect(abs(backward - model.backlash / 2) < 0.1 * model.backlash)
    }

    @Test func theEnableWatchdogDisablesAnAxisNobodyRefreshes() {
        var axis = EmulatedDriveAxis(model: model, position: 0)
        axis.setEnable(true)
        _ = run(&axis, to: 5, seconds: Double(model.enableWatchdog) * 0.5, refresh: false)
        #expect(axis.enabled)
        _ = run(&axis, to: 5, seconds: Double(model.enableWatchdog) * 0.6 + 0.002, refresh: false)
        #expect(!axis.enabled)
        #expect(axis.fault == .watchdog)
        // Latched: asking for power does not bring it back until the fault is reset.
        axis.setEnable(true)
        #expect(!axis.enabled)
        axis.resetFault()
        axis.setEnable(true)
        #expect(axis.enabled)
    }

    @Test func aFrozenEncoderLetsTheLoadRunWhileTheMeasurementStands() {
        var axis = EmulatedDriveAxis(model: model, position: 0)
        axis.injected = [.encoderFreeze]
        _ = run(&axis, to: 1, seconds: 0.5)
        #expect(axis.measuredPosition == 0)
        #expect(axis.load > 2, "the loop never sees progress, so the true axis overshoots: \(axis.load)")
    }

    @Test func runawayDrivesTheAxisAwayFromItsTarget() {
        var axis = EmulatedDriveAxis(model: model, position: 0)
        axis.injected = [.runaway]
        _ = run(&axis, to: 0, seconds: 0.05)
        #expect(axis.load > 0.01)
        #expect(axis.current == model.currentLimit)
    }

    @Test func overcurrentTripsWithinTheTripTime() {
        var axis = EmulatedDriveAxis(model: model, position: 0)
        axis.setEnable(true)
        axis.injected = [.overcurrent]
        axis.step(target: 0, dt: model.tripTime * 0.5)
        #expect(axis.enabled)
        axis.setEnable(true)
        axis.step(target: 0, dt: model.tripTime * 0.6)
        #expect(!axis.enabled)
        #expect(axis.fault == .overcurrent)
    }

    /// A category-0 stop (safe torque off) at full speed: the motor's rotor is all that still
    /// moves the axis, and the drive's dynamic brake takes its energy in J·R/Kt² (50 ms). Without
    /// the brake this rotor coasted 27 mm from 20 mm/s, for 4 s, on its friction alone: twelve
    /// times the monitor's stopping distance (v² / 2·stop_deceleration, 2.2 mm at 4.5 v/s).
    @Test func anAxisWhosePowerIsCutAtFullSpeedStopsWithinItsBrakingDistance() throws {
        var axis = EmulatedDriveAxis(model: model, position: 0)
        _ = run(&axis, to: 100, seconds: 0.5)
        let speed = axis.measuredVelocity
        #expect(abs(speed - 20) < 1, "at full speed first: \(speed) mm/s")
        let cutAt = axis.load
        axis.setEnable(false)
        #expect(!axis.enabled)
        // The target still far ahead: nothing the loop asks for moves an unpowered axis.
        let speeds = run(&axis, to: 100, seconds: 2, refresh: false)
        let travel = axis.load - cutAt
        #expect(travel > 0, "the rotor's energy moves it on a little")
        #expect(travel <= 20 / (2 * 4.5), "beyond the monitor's stopping distance: \(travel) mm")
        #expect(speeds.suffix(1000).allSatisfy { $0 == 0 }, "still moving a second after the cut")
        #expect(axis.current == 0, "the brake's current is not the power stage's")
        // The brake alone, from the speed at the cut: v·τ (friction only shortens it).
        let ohms = try #require(model.dynamicBrakeOhms)
        let braking = speed * model.inertia * ohms / (model.torqueConstant * model.torqueConstant)
        #expect(travel <= braking + model.backlash, "coasted \(travel) mm after the power was cut (the brake allows \(braking) mm)")
    }
}
