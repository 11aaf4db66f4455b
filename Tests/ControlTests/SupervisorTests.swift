import CAllocCount
import Core
import Foundation
import Testing
@testable import Control

/// Two joints: insertion (mm) and roll (rad), with simple limits.
private func limiter(start: JointVector = JointVector([50, 0])) -> MotionLimiter {
    MotionLimiter(maxVelocity: JointVector([10, 1]), maxAcceleration: JointVector([50, 5]),
                  lower: JointVector([0, -3]), upper: JointVector([100, 3]), start: start)
}

@Suite("Motion limiter") struct MotionLimiterTests {
    let dt = 1e-3

    /// Runs `n` cycles and checks the speed and acceleration limits every cycle.
    func run(_ l: inout MotionLimiter, cycles n: Int, _ step: (inout MotionLimiter) -> Void) {
        var v = l.velocity
        for _ in 0..<n {
            let before = l.position
            step(&l)
            for j in 0..<2 {
                let speed = (l.position[j] - before[j]) / dt
                #expect(abs(speed) <= l.maxVelocity[j] * (1 + 1e-9) + 1e-9)
                #expect(abs(l.velocity[j] - v[j]) <= l.maxAcceleration[j] * dt * (1 + 1e-9) + 1e-9)
            }
            v = l.velocity
        }
    }

    @Test func aPositionTargetIsReachedAtRestWithoutOvershootWithinTheLimits() {
        var l = limiter()
        let target = JointVector([80, -2])
        var furthest = JointVector([50, 0])
        run(&l, cycles: 6000) {
            $0.step(toward: target, dt: dt)
            furthest[0] = max(furthest[0], $0.position[0]); furthest[1] = min(furthest[1], $0.position[1])
        }
        #expect(l.position == target)
        #expect(l.isAtRest)
        #expect(furthest[0] <= 80 && furthest[1] >= -2, "overshoot: \(furthest)")
    }

    @Test func aJumpInTheTargetBecomesARampNotAStep() {
        var l = limiter()
        l.step(toward: JointVector([100, 3]), dt: dt)
        #expect(abs(l.position[0] - 50) <= 50 * dt * dt + 1e-12)  // one cycle at the acceleration limit
        #expect(abs(l.velocity[0] - 50 * dt) < 1e-12)
    }

    @Test func jogBrakesBeforeTheTravelLimitAndStopsOnIt() {
        var l = limiter(start: JointVector([95, 0]))
        run(&l, cycles: 3000) { $0.step(velocity: JointVector([10, 0]), dt: dt) }
        #expect(l.position[0] <= 100 && l.position[0] > 99.9)
        #expect(l.velocity[0] == 0)
    }

    @Test func aControlledStopDeceleratesAtTheLimit() {
        var l = limiter()
        run(&l, cycles: 500) { $0.step(velocity: JointVector([10, 1]), dt: dt) }
        #expect(abs(l.velocity[0] - 10) < 1e-9)
        var cycles = 0
        run(&l, cycles: 400) { if !$0.isAtRest { cycles += 1 }; $0.stop(dt: dt) }
        #expect(l.isAtRest)
        // 10 mm/s at 50 mm/s² is 0.2 s for insertion; roll (1 rad/s at 5 rad/s²) the same.
        #expect(cycles >= 199 && cycles <= 202, "\(cycles) cycles to rest")
    }

    @Test func nonFiniteTargetsAndDemandsBrakeAndAreCounted() {
        var l = limiter()
        run(&l, cycles: 200) { $0.step(velocity: JointVector([10, 0]), dt: dt) }
        run(&l, cycles: 400) { $0.step(toward: JointVector([.nan, .infinity]), dt: dt) }
        #expect(l.isAtRest)
        #expect(l.rejectedInputs == 800)  // counted per joint: both were unusable
        #expect(l.position[0].isFinite && l.position[1].isFinite)
    }
}

@Suite("Teleop mapping") struct TeleopTests {
    let dt = 1e-3
    func mapping(_ configure: (inout TeleopSettings) -> Void = { _ in }) -> TeleopMapping {
        var s = TeleopSettings()
        configure(&s)
        return TeleopMapping(settings: s, maxVelocity: JointVector([10, 1]), dt: dt)
    }

    @Test func nothingMovesWithoutTheDeadman() {
        var m = mapping()
        for k in 0..<1000 {
            let d = m.update(TeleopSample(deadman: false, clutch: true, hand: Vec3(Double(k), 0, 0), axes: JointVector([1, -1])))
            #expect(!d.active)
            #expect(d.jointVelocity == JointVector([0, 0]))
        }
        #expect(m.tipOffset == .zero)
    }

    @Test func theClutchScalesStrokesAndRepositioningTheHandMovesNothing() {
        var m = mapping { $0.motionScale = 0.25 }
        func hold(_ hand: Vec3, clutch: Bool, _ n: Int = 3000) { for _ in 0..<n { _ = m.update(TeleopSample(deadman: true, clutch: clutch, hand: hand, axes: JointVector([0, 0]))) } }
        hold(Vec3(0, 0, 0), clutch: true)
        hold(Vec3(40, 0, 0), clutch: true)           // a 40 mm stroke → 10 mm at the tip
        #expect(abs(m.tipOffset.x - 10) < 0.01)
        hold(Vec3(-60, 20, 0), clutch: false)        // hand repositioned, clutch open
        #expect(abs(m.tipOffset.x - 10) < 0.01 && abs(m.tipOffset.y) < 1e-9)
        hold(Vec3(-60, 20, 0), clutch: true)         // grasp again: no jump
        #expect(abs(m.tipOffset.x - 10) < 0.01)
        hold(Vec3(-60, 40, 0), clutch: true)         // a 20 mm stroke in y → 5 mm
        #expect(abs(m.tipOffset.x - 10) < 0.01 && abs(m.tipOffset.y - 5) < 0.01)
    }

    @Test func theTremorFilterRemovesTremorAndPassesDeliberateMotion() {
        func amplitude(_ hz: Double) -> Double {
            var m = mapping { $0.motionScale = 1 }
            var peak = 0.0
            let n = 6000
            for k in 0..<n {
                let t = Double(k) * dt
                let d = m.update(TeleopSample(deadman: true, clutch: true, hand: Vec3(sin(2 * .pi * hz * t), 0, 0), axes: JointVector([0, 0])))
                if k > n / 2 { peak = max(peak, abs(d.tipOffset.x)) }
            }
            return peak
        }
        let tremor = amplitude(10), deliberate = amplitude(0.5)
        #expect(tremor < 0.06, "10 Hz tremor passes with gain \(tremor)")     // below −24 dB
        #expect(deliberate > 0.95, "0.5 Hz motion passes with gain \(deliberate)")
    }

    @Test func velocityDevicesHaveADeadbandAndPerJointLimits() {
        var m = mapping { $0.velocityFraction = 0.5; $0.deadband = 0.05 }
        var d = TeleopDemand(jointVelocity: JointVector(count: 2), tipOffset: .zero, active: false)
        for _ in 0..<3000 { d = m.update(TeleopSample(deadman: true, axes: JointVector([0.04, 5]))) }
        #expect(d.jointVelocity[0] == 0)                            // inside the deadband
        #expect(abs(d.jointVelocity[1] - 0.5) < 1e-6)               // clamped deflection, half the 1 rad/s limit
        for _ in 0..<3000 { d = m.update(TeleopSample(deadman: true, axes: JointVector([-1, 0]))) }
        #expect(abs(d.jointVelocity[0] + 5) < 1e-6)
    }

    @Test func aNonFiniteSampleIsNoMotionAndIsCounted() {
        var m = mapping()
        let d = m.update(TeleopSample(deadman: true, clutch: true, hand: Vec3(.nan, 0, 0), axes: JointVector([1, 0])))
        #expect(!d.active && d.jointVelocity == JointVector([0, 0]))
        #expect(m.rejectedSamples == 1)
    }

    @Test func oneStrokeIsBounded() {
        var m = mapping { $0.motionScale = 1; $0.maxStrokeMM = 30 }
        for k in 0..<4000 { _ = m.update(TeleopSample(deadman: true, clutch: true, hand: Vec3(k < 10 ? 0 : 500, 0, 0), axes: JointVector([0, 0]))) }
        #expect(abs(m.tipOffset.length - 30) < 1e-9)
    }
}

@Suite("Mode supervisor") struct SupervisorTests {
    let dt = 1e-3
    let held = SupervisorInputs(deadman: true)

    @Test func motionModesAreEnteredFromHoldWithTheDeadmanHeld() throws {
        var s = Supervisor(limiter: limiter())
        let q = JointVector([50, 0])
        #expect(throws: ModeRequestError.notFrom(.idle, to: .jog)) { try s.request(.jog, held, measured: q) }
        try s.request(.hold, held, measured: q)
        #expect(throws: ModeRequestError.deadmanNotHeld) { try s.request(.jog, SupervisorInputs(deadman: false), measured: q) }
        #expect(throws: ModeRequestError.estimateLost) { try s.request(.tipServo, SupervisorInputs(deadman: true, estimate: .lost), measured: q) }
        #expect(throws: ModeRequestError.stopActive) { try s.request(.jog, SupervisorInputs(deadman: true, stop: true), measured: q) }
        try s.request(.jog, held, measured: q)
        #expect(s.mode == .jog)
        try s.request(.tipServo, held, measured: q)
        #expect(s.mode == .tipServo)
    }

    /// Category 0: mid-jog at speed, idle at once: the very next command has the power off and
    /// the reference where the joints are measured, with no braking ramp before it.
    @Test func cuttingPowerIsIdleAtOnceWithTheReferenceAtTheJoints() throws {
        var s = Supervisor(limiter: limiter())
        var c = JointCommand(jointCount: 2)
        try s.request(.hold, held, measured: JointVector([50, 0]))
        try s.request(.jog, held, measured: JointVector([50, 0]))
        for _ in 0..<500 { s.update(held, jogVelocity: JointVector([10, 0]), servoTarget: JointVector(count: 2), dt: dt, command: &c) }
        let moving = c.enable && !s.limiter.isAtRest
        #expect(moving)
        let measured = JointVector([53.5, 0.01])
        s.cutPower(measured: measured)
        s.update(SupervisorInputs(deadman: true, stop: true), jogVelocity: JointVector([10, 0]), servoTarget: JointVector(count: 2), dt: dt, command: &c)
        let enable = c.enable, mode = s.mode, reason = s.reason, position = c.position
        #expect(!enable)
        #expect(mode == .idle)
        #expect(reason == .stop)
        #expect(position == measured)
        // Out of it only through hold, once the stop is no longer asked for.
        #expect(throws: ModeRequestError.notFrom(.idle, to: .jog)) { try s.request(.jog, held, measured: measured) }
    }

    @Test func idleNeverCommandsPower() throws {
        var s = Supervisor(limiter: limiter())
        var c = JointCommand(jointCount: 2)
        s.update(held, jogVelocity: JointVector([10, 1]), servoTarget: JointVector([90, 1]), dt: dt, command: &c)
        #expect(!c.enable && c.mode == .hold)
    }

    @Test func releasingTheDeadmanStopsUnderControl() throws {
        var s = Supervisor(limiter: limiter())
        var c = JointCommand(jointCount: 2)
        try s.request(.hold, held, measured: JointVector([50, 0]))
        try s.request(.jog, held, measured: JointVector([50, 0]))
        for _ in 0..<500 { s.update(held, jogVelocity: JointVector([10, 0]), servoTarget: JointVector(count: 2), dt: dt, command: &c) }
        #expect(abs(c.velocity[0] - 10) < 1e-9 && c.enable)
        var previous = c.velocity[0]
        for _ in 0..<400 {
            s.update(SupervisorInputs(deadman: false), jogVelocity: JointVector([10, 0]), servoTarget: JointVector(count: 2), dt: dt, command: &c)
            #expect(c.velocity[0] <= previous + 1e-12)        // only slowing down
            #expect(previous - c.velocity[0] <= 50 * dt + 1e-9)  // and no faster than the limit
            previous = c.velocity[0]
        }
        #expect(s.mode == .hold && s.reason == .deadmanReleased)
        #expect(c.velocity[0] == 0 && c.enable)
    }

    @Test func aLostEstimateStopsTheTipServo() throws {
        var s = Supervisor(limiter: limiter())
        var c = JointCommand(jointCount: 2)
        try s.request(.hold, held, measured: JointVector([50, 0]))
        try s.request(.tipServo, held, measured: JointVector([50, 0]))
        for _ in 0..<300 { s.update(held, jogVelocity: JointVector(count: 2), servoTarget: JointVector([90, 0]), dt: dt, command: &c) }
        #expect(c.velocity[0] > 0)
        for _ in 0..<400 { s.update(SupervisorInputs(deadman: true, estimate: .lost), jogVelocity: JointVector(count: 2), servoTarget: JointVector([90, 0]), dt: dt, command: &c) }
        #expect(s.mode == .hold && s.reason == .estimateLost)
        #expect(c.velocity[0] == 0)
        #expect(c.position[0] < 90)
    }

    @Test func aStopHoldsThenRemovesPowerAtRest() throws {
        var s = Supervisor(limiter: limiter())
        var c = JointCommand(jointCount: 2)
        try s.request(.hold, held, measured: JointVector([50, 0]))
        try s.request(.jog, held, measured: JointVector([50, 0]))
        for _ in 0..<500 { s.update(held, jogVelocity: JointVector([10, 0]), servoTarget: JointVector(count: 2), dt: dt, command: &c) }
        var poweredCycles = 0
        for _ in 0..<500 {
            s.update(SupervisorInputs(deadman: true, stop: true), jogVelocity: JointVector([10, 0]), servoTarget: JointVector(count: 2), dt: dt, command: &c)
            if c.enable { poweredCycles += 1 }
        }
        #expect(s.mode == .idle && !c.enable)
        #expect(poweredCycles >= 199 && poweredCycles <= 202, "power kept \(poweredCycles) cycles for the controlled stop")
    }

    @Test func aNonFiniteDemandDropsToHold() throws {
        var s = Supervisor(limiter: limiter())
        var c = JointCommand(jointCount: 2)
        try s.request(.hold, held, measured: JointVector([50, 0]))
        try s.request(.tipServo, held, measured: JointVector([50, 0]))
        s.update(held, jogVelocity: JointVector(count: 2), servoTarget: JointVector([.nan, 0]), dt: dt, command: &c)
        #expect(s.mode == .hold && s.reason == .invalidDemand)
        #expect(c.position[0].isFinite)
    }

    @Test func teleopThroughTheSupervisorAllocatesNothing() throws {
        try #require(lumen_alloc_count_is_active() == 1, "the allocation counter is not interposed in this process")
        var s = Supervisor(limiter: limiter())
        var m = TeleopMapping(maxVelocity: JointVector([10, 1]), dt: dt)
        var c = JointCommand(jointCount: 2)
        try s.request(.hold, held, measured: JointVector([50, 0]))
        try s.request(.jog, held, measured: JointVector([50, 0]))
        let stick = JointVector([0.8, -0.3]), none = JointVector(count: 2)
        lumen_alloc_count_begin()
        for k in 0..<10_000 {
            let deadman = k % 3000 < 2500
            let d = m.update(TeleopSample(deadman: deadman, clutch: true, hand: Vec3(Double(k) * 0.01, 0, 0), axes: stick))
            if deadman, s.mode == .hold { try? s.request(.jog, SupervisorInputs(deadman: true), measured: c.position) }
            s.update(SupervisorInputs(deadman: deadman), jogVelocity: d.jointVelocity, servoTarget: none, dt: dt, command: &c)
        }
        let allocations = lumen_alloc_count_end()
        #expect(allocations == 0)
        #expect(c.position[0] > 50)
    }
}
