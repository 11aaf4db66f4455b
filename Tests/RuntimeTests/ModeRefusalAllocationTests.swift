import CAllocCount
import Control
import Core
import Scenarios
import Testing
@testable import Runtime

/// A mode the supervisor refuses inside the cycle must cost nothing: a thrown error passes the
/// runtime's throw hook, which a test runner installs and which boxes the error on the heap, so
/// the cycle takes refusals as values. These drive the refusal paths themselves, each many times.
@Suite("Mode refusals in the cycle")
struct ModeRefusalAllocationTests {
    @Test("The image-guided controller's own resume, refused under a stop that begins in the same cycle, allocates nothing")
    func aRefusedResumeAllocatesNothing() throws {
        try #require(lumen_alloc_count_is_active() == 1, "the allocation counter is not interposed in this process")
        var setup = NavigationSetup()
        setup.phantom = "straight"
        setup.vessel = "tube"
        setup.depth = 90
        let scene = try NavigationScene(setup, robot: try loadRobot())
        let start = scene.makePhysics().measuredPositions
        let mailbox = MeasurementMailbox(capacity: 8)
        var controller = scene.makeController(start: start, measurements: mailbox.receiver)
        var state = JointState(jointCount: start.count)
        state.position = start
        var command = JointCommand(jointCount: start.count)
        controller.deadman = true
        controller.autoResume = true
        controller.reset(to: state)
        #expect(controller.supervisor.mode == .tipServo)
        var time: Nanoseconds = 1_000_000_000
        let images = mailbox.sender
        func cycle() {
            time += 1_000_000
            // The tip where the catheter stands, seen now: the estimate stays fresh (a lost one is no hold to resume).
            _ = images.send(TipMeasurement(acquiredAt: time, position: scene.startTip, positionCovariance: Mat3.identity * 0.01))
            controller.update(state: state, tick: CycleTick(index: 0, deadline: time, wake: time, period: 1_000_000, readFault: nil),
                              command: &command)
        }
        var refusedStops = 0, resumed = 0
        func scenario() {
            for _ in 0..<100 {
                // The deadman goes: tip servo drops to hold for it, a hold the controller may leave.
                controller.deadman = false
                controller.stop = false
                cycle()
                // It comes back in the same cycle as a stop: the resume is refused (a stop is active).
                controller.deadman = true
                controller.stop = true
                cycle()
                if controller.supervisor.mode != .tipServo, controller.supervisor.reason == .stop { refusedStops += 1 }
                // The stop is cleared and an operator asks for hold: the controller resumes by itself.
                controller.stop = false
                _ = controller.attemptMode(.idle, measured: state.position)
                _ = controller.attemptMode(.hold, measured: state.position)
                cycle()
                if controller.supervisor.mode == .tipServo { resumed += 1 }
            }
        }
        scenario()
        refusedStops = 0
        resumed = 0
        lumen_alloc_count_begin()
        scenario()
        let allocations = lumen_alloc_count_end()
        #expect(allocations == 0, "\(allocations) allocations in 100 refused resumes")
        // The refusal path really ran: a stop each time, and the resume after it.
        #expect(refusedStops == 100)
        #expect(resumed == 100)
    }

    @Test("The live controller's refused requests (a target without the deadman, jog under a stop, tip servo from idle) allocate nothing")
    func theLiveControllersRefusalsAllocateNothing() throws {
        let c = try SimulatedCycle()
        func scenario() throws {
            try c.step(20)
            // No deadman: the target's tip servo is refused.
            c.send(.target, point: c.scene.goal)
            try c.step(20)
            // A stop, then jog and a target while it is latched, then the deadman and a mode
            // change the supervisor refuses while idle.
            c.send(.stop)
            try c.step(20)
            c.send(.mode, mode: .jog)
            c.send(.target, point: c.scene.goal)
            try c.step(20)
            c.send(.acknowledge)
            c.send(.mode, mode: .idle)
            try c.step(20)
            c.send(.deadman, held: true)
            c.send(.mode, mode: .jog)
            try c.step(20, deadman: true)
            c.send(.mode, mode: .idle)
            try c.step(50, deadman: true)
        }
        try scenario()
        #expect(c.published.mode != .tipServo)
        c.countAllocations = true
        for _ in 0..<5 { try scenario() }
        #expect(c.allocations == 0)
    }
}
