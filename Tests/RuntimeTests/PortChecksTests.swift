import Control
import Core
import Testing
@testable import Runtime

/// The operator port's checks before anything is queued.
struct PortChecksTests {
    let goal = Vec3(10, 20, 30)
    var targets: [(name: String, position: Vec3)] { [(name: "left_subclavian", position: goal)] }

    func check(_ i: OperatorIntent, _ role: OperatorRole = .operator, stop: Bool = false, running: Bool = true) -> Result<CycleIntent, IntentRejection> {
        LiveRuntime.check(i, role: role, stopLatched: stop, running: running, mode: .hold, targets: targets)
    }

    @Test func observersMayOnlyStop() throws {
        for i: OperatorIntent in [.deadman(held: true), .mode(.hold), .namedTarget("left_subclavian"), .acknowledgeFaults, .target(goal)] {
            #expect(throws: IntentRejection.notPermitted(role: .observer)) { try check(i, .observer).get() }
        }
        #expect(try check(.stop, .observer).get().kind == .stop)
        #expect(try check(.emergencyStop, .observer).get().kind == .emergencyStop)
    }

    /// Under the monitor a target needs two planes of this catheter: one plane, a replay or no
    /// imaging gives the monitor no image tip, and it would stop the robot at once.
    @Test func targetsUnderTheMonitorNeedTwoPlanesOfThisCatheter() {
        #expect(LiveRuntime.imageTipRefusal(monitor: true, imagingPlanes: 2) == nil)
        #expect(LiveRuntime.imageTipRefusal(monitor: true, imagingPlanes: 1) == .noImageTipForMonitor(planes: 1))
        #expect(LiveRuntime.imageTipRefusal(monitor: true, imagingPlanes: 0) == .noImageTipForMonitor(planes: 0))
        #expect(LiveRuntime.imageTipRefusal(monitor: false, imagingPlanes: 0) == nil)
        #expect(LiveRuntime.imageTipRefusal(monitor: false, imagingPlanes: 1) == nil)
        #expect(LiveImaging.replay(path: "x.dcm").steeringPlanes == 0)
        #expect(LiveImaging.simulated(planes: 1).steeringPlanes == 1)
        #expect(LiveImaging.off.steeringPlanes == 0)
        #expect(IntentRejection.noImageTipForMonitor(planes: 0).description.contains("replayed recording"))
    }

    @Test func valuesOutOfRangeAreRefusedWithTheirField() {
        #expect(throws: IntentRejection.outOfRange("target")) { try check(.target(Vec3(.nan, 0, 0))).get() }
        #expect(throws: IntentRejection.outOfRange("target")) { try check(.target(Vec3(1e6, 0, 0))).get() }
        #expect(throws: IntentRejection.outOfRange("tipJog.hand")) { try check(.tipJog(hand: Vec3(.infinity, 0, 0), clutch: true)).get() }
        var jog = JointVector(count: 4)
        jog[2] = 1.5
        #expect(throws: IntentRejection.outOfRange("jointJog[2]")) { try check(.jointJog(jog)).get() }
        #expect(throws: IntentRejection.outOfRange("targetPixel.pixel")) { try check(.targetPixel(plane: 0, pixel: SIMD2(-1, 3))).get() }
    }

    @Test func aLatchedStopRefusesMotionButNotStopOrAcknowledge() throws {
        #expect(throws: IntentRejection.stopLatched) { try check(.namedTarget("left_subclavian"), stop: true).get() }
        #expect(throws: IntentRejection.stopLatched) { try check(.target(goal), stop: true).get() }
        #expect(throws: IntentRejection.stopLatched) { try check(.mode(.hold), stop: true).get() }
        #expect(try check(.acknowledgeFaults, stop: true).get().kind == .acknowledge)
        #expect(try check(.stop, stop: true).get().kind == .stop)
        #expect(try check(.mode(.idle), stop: true).get().kind == .mode)
    }

    @Test func onlyTheRoutesGoalIsATarget() throws {
        #expect(try check(.target(goal + Vec3(1, 0, 0))).get().point == goal)
        #expect(throws: IntentRejection.self) { try check(.target(goal + Vec3(5, 0, 0))).get() }
        #expect(throws: IntentRejection.unknownTarget("nowhere")) { try check(.namedTarget("nowhere")).get() }
        #expect(try check(.namedTarget("left_subclavian")).get().point == goal)
    }

    @Test func theTipServoIsEnteredThroughATargetOnly() {
        #expect(throws: IntentRejection.modeRefused(.notFrom(.hold, to: .tipServo))) { try check(.mode(.tipServo)).get() }
    }

    @Test func nothingButStopWhenNotRunning() throws {
        #expect(throws: IntentRejection.notRunning) { try check(.deadman(held: true), running: false).get() }
        #expect(try check(.stop, running: false).get().kind == .stop)
        #expect(try check(.emergencyStop, running: false).get().kind == .emergencyStop)
        #expect(try check(.emergencyStop, stop: true).get().kind == .emergencyStop)
    }

    @Test func aFullIntentQueueSaysBusy() {
        let ring = IntentRing(capacity: 2)
        #expect(ring.push(CycleIntent(sequence: 1, kind: .deadman)))
        #expect(ring.push(CycleIntent(sequence: 2, kind: .deadman)))
        #expect(!ring.push(CycleIntent(sequence: 3, kind: .deadman)))
        #expect(ring.pop()?.sequence == 1)
        #expect(ring.push(CycleIntent(sequence: 3, kind: .deadman)))
        #expect(ring.pop()?.sequence == 2)
        #expect(ring.pop()?.sequence == 3)
        #expect(ring.pop() == nil)
    }
}

/// The stop category the operator is shown: the stop that is in effect, not the controller's latch.
@Suite struct ShownStopCategoryTests {
    @Test func aStopTheControllerLatchedBehindTheMonitorShowsTheMonitorsCategory() {
        // The monitor's category-2 stop (image_stale: power kept): the controller latched its own
        // hold behind it; shown as 2, not as the operator's category 1.
        #expect(LiveRuntime.stopCategory(controllerStop: false, powered: true, monitorQuickStop: true) == 2)
        // The operator's stop button: category 1, with the monitor permitting power.
        #expect(LiveRuntime.stopCategory(controllerStop: true, powered: true, monitorQuickStop: false) == 1)
        #expect(LiveRuntime.stopCategory(controllerStop: true, powered: true, monitorQuickStop: true) == 1)
        // No power: category 0, whatever else stands.
        #expect(LiveRuntime.stopCategory(controllerStop: true, powered: false, monitorQuickStop: false) == 0)
        #expect(LiveRuntime.stopCategory(controllerStop: false, powered: false, monitorQuickStop: true) == 0)
        #expect(LiveRuntime.stopCategory(controllerStop: false, powered: true, monitorQuickStop: false) == nil)
        // An emergency stop: category 0 while the monitor still permits power.
        #expect(LiveRuntime.stopCategory(controllerStop: true, powered: true, monitorQuickStop: false, emergencyStop: true) == 0)
    }

    /// A stop latched behind the monitor shows the monitor's category while the monitor stops,
    /// and the controller's own once it no longer does: it still waits for an acknowledge, and
    /// shown as nothing it refused every click unseen ("a stop is latched", no stop on the page).
    @Test func aStopLatchedBehindTheMonitorShowsOnceTheMonitorNoLongerStops() {
        let whileMonitorStops = LiveRuntime.stopCategory(controllerStop: true, followsMonitor: true, powered: true, monitorQuickStop: true)
        let afterwards = LiveRuntime.stopCategory(controllerStop: true, followsMonitor: true, powered: true, monitorQuickStop: false)
        let unpowered = LiveRuntime.stopCategory(controllerStop: true, followsMonitor: true, powered: false, monitorQuickStop: false)
        #expect(whileMonitorStops == 2)
        #expect(afterwards == 1)
        #expect(unpowered == 0)
    }
}
