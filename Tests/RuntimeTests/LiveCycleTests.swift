import Control
import Core
import Testing
@testable import Runtime

/// The cycle's side of the operator port, on a simulated clock: one `step` is one cycle.
@Suite struct LiveCycleTests {
    @Test func aTargetWithTheDeadmanHeldStartsTheServo() throws {
        let c = try SimulatedCycle()
        c.send(.deadman, held: true)
        c.send(.target, point: c.scene.goal)
        // The estimator takes a few images before its estimate counts as fresh.
        try c.step(200, deadman: true)
        #expect(c.published.mode == .tipServo)
        #expect(c.published.hasTarget)
        #expect(c.published.appliedIntent == c.sequence)
    }

    /// A servo that spent its bounded attempts holds and says why; the runtime ends a live run
    /// on that (`LiveNavigation`) and logs it, so the cycle must publish it.
    @Test func aServoThatGivesUpIsPublishedWithWhyAndHolds() throws {
        // No progress ever counts (1 m asked in 0.2 s) and no retreat is allowed: it gives up at
        // its first stall.
        let c = try SimulatedCycle(depth: 160) { $0.maxRetreats = 0; $0.stallProgress = 1000; $0.stallTime = 0.2 }
        c.send(.deadman, held: true)
        c.send(.target, point: c.scene.goal)
        try c.step(100, deadman: true)
        let early = c.published.servoFailure
        #expect(early == nil, "gave up before its stall time")
        try c.step(600, deadman: true)
        let failure = try #require(c.published.servoFailure)
        guard case .noProgress(let retreats, let reached, let route) = failure else { return }
        #expect(retreats == 0)
        #expect(reached >= 0 && reached < route, "where it stalled is on the route")
        // It holds: the command stays where it is.
        let held = c.published.command.position[0]
        try c.step(300, deadman: true)
        let later = c.published.command.position[0]
        #expect(abs(later - held) < 1e-9)
        // A new target starts afresh.
        c.send(.target, point: c.scene.goal)
        try c.step(20, deadman: true)
        let after = c.published.servoFailure
        #expect(after == nil)
    }

    @Test func aTargetWithoutTheDeadmanDoesNotMove() throws {
        let c = try SimulatedCycle()
        c.send(.target, point: c.scene.goal)
        try c.step(5)
        #expect(c.published.mode != .tipServo)
    }

    @Test func aDeadmanNotRepeatedWithinItsTimeoutIsAReleaseAndHolds() throws {
        let c = try SimulatedCycle(deadmanTimeout: 250_000_000)
        c.send(.deadman, held: true)
        c.send(.target, point: c.scene.goal)
        // Repeated every 50 cycles (50 ms): held throughout.
        try c.step(300, deadman: true)
        #expect(c.published.mode == .tipServo)
        #expect(c.shared.deadmanTimeouts == 0)
        // Then nothing: past the timeout the deadman counts as released.
        try c.step(200)
        #expect(c.published.mode == .tipServo, "released before its timeout")
        try c.step(100)
        #expect(c.published.mode == .hold)
        #expect(c.published.holdReason == .deadmanReleased)
        #expect(!c.published.deadmanHeld)
        #expect(c.shared.deadmanTimeouts == 1)
        // Pressed again: the servo resumes by itself, the target still chosen.
        c.send(.deadman, held: true)
        try c.step(5)
        #expect(c.published.mode == .tipServo)
    }

    @Test func aStopBrakesToIdleAndLatchesUntilAcknowledged() throws {
        let c = try SimulatedCycle()
        c.send(.deadman, held: true)
        c.send(.target, point: c.scene.goal)
        try c.step(100, deadman: true)
        c.send(.stop)
        try c.step(2)
        #expect(c.shared.stopLatched)
        #expect(c.published.mode == .hold || c.published.mode == .idle)
        try c.step(500, deadman: true)
        #expect(c.published.mode == .idle, "a category-1 stop ends with the power off")
        #expect(!c.runner.command.enable)
        // A target while latched changes nothing.
        c.send(.deadman, held: true)
        c.send(.target, point: c.scene.goal)
        try c.step(10)
        #expect(c.published.mode == .idle)
        // Acknowledged: power back on in hold; a new target is needed to move.
        c.send(.acknowledge)
        try c.step(5)
        #expect(!c.shared.stopLatched)
        #expect(c.published.mode == .hold)
        c.send(.deadman, held: true)
        c.send(.target, point: c.scene.goal)
        try c.step(5)
        #expect(c.published.mode == .tipServo)
    }

    /// Category 0: the very next command has the power off, with no controlled stop before it,
    /// where a category-1 stop still commands power while it brakes.
    @Test func anEmergencyStopRemovesPowerInTheNextCycleAndLatchesUntilAcknowledged() throws {
        let c = try SimulatedCycle()
        c.send(.deadman, held: true)
        c.send(.target, point: c.scene.goal)
        try c.step(200, deadman: true)
        let moving = c.published.mode
        #expect(moving == .tipServo)
        c.send(.emergencyStop)
        try c.step(1)
        let enable = c.runner.command.enable
        let mode = c.published.mode
        let latched = c.shared.stopLatched
        let category0 = c.published.stopIsCategory0
        #expect(!enable, "a category-0 stop's first command has the power off")
        #expect(mode == .idle)
        #expect(latched)
        #expect(category0)
        // The reference where the joints stand: nothing asked of them when power returns.
        let command = c.runner.command.position
        let joints = c.published.joints.position
        for i in 0..<joints.count { #expect(abs(command[i] - joints[i]) < 1e-9, "axis \(i)") }
        // Latched: no target moves it, and a category-1 stop on top leaves it category 0.
        c.send(.deadman, held: true)
        c.send(.target, point: c.scene.goal)
        c.send(.stop)
        try c.step(20, deadman: true)
        let stillIdle = c.published.mode
        let stillOff = c.runner.command.enable
        let stillCategory0 = c.published.stopIsCategory0
        #expect(stillIdle == .idle)
        #expect(!stillOff)
        #expect(stillCategory0)
        c.send(.acknowledge)
        try c.step(5)
        let after = c.published.mode
        let afterLatched = c.shared.stopLatched
        let afterCategory0 = c.published.stopIsCategory0
        #expect(after == .hold)
        #expect(!afterLatched)
        #expect(!afterCategory0)
    }

    /// The contrast the emergency stop is judged against: a category-1 stop brakes with power on.
    @Test func aCategory1StopStillCommandsPowerWhileItBrakes() throws {
        let c = try SimulatedCycle()
        c.send(.deadman, held: true)
        c.send(.target, point: c.scene.goal)
        try c.step(200, deadman: true)
        c.send(.stop)
        try c.step(1)
        let enable = c.runner.command.enable
        let category0 = c.published.stopIsCategory0
        #expect(enable)
        #expect(!category0)
    }

    /// Every kind of cycle counted: idle, the servo entered, following with images, the deadman
    /// timing out, a stop braking to idle, the acknowledge; after one warm-up pass of each.
    @Test func theCycleAllocatesNothingWhateverTheOperatorDoes() throws {
        let c = try SimulatedCycle()
        func scenario() throws {
            try c.step(100)
            c.send(.deadman, held: true)
            c.send(.target, point: c.scene.goal)
            try c.step(400, deadman: true)
            try c.step(400)
            c.send(.deadman, held: true)
            try c.step(100, deadman: true)
            c.send(.stop)
            try c.step(500, deadman: true)
            c.send(.acknowledge)
            c.send(.mode, mode: .hold)
            try c.step(50)
            c.send(.deadman, held: true)
            c.send(.target, point: c.scene.goal)
            try c.step(100, deadman: true)
            c.send(.emergencyStop)
            try c.step(50, deadman: true)
            c.send(.acknowledge)
            try c.step(50)
        }
        try scenario()
        c.countAllocations = true
        try scenario()
        #expect(c.allocations == 0)
    }

    @Test func theRecordRingHandsEveryCycleOnceAndCountsWhatWasOverwritten() throws {
        let c = try SimulatedCycle()
        try c.step(10)
        var cycles: [UInt64] = []
        #expect(c.shared.recorderRecords.drain { cycles.append($0.cycle) } == 10)
        #expect(cycles == Array(1...10))
        try c.step(9000)
        var n = 0
        _ = c.shared.recorderRecords.drain { _ in n += 1 }
        #expect(n == c.shared.recorderRecords.capacity - 1)
        #expect(c.shared.recorderRecords.lost == UInt64(9000 - n))
    }
}
