import Control
import Core
import Foundation
import Scenarios
import Sim
import Testing
@testable import Runtime

extension SimulatedCycle {
    func sendJog(_ values: [Double]) {
        sequence += 1
        _ = shared.intents.push(CycleIntent(sequence: sequence, kind: .jointJog, joints: JointVector(values)))
    }

    func sendTipJog(_ hand: Vec3, clutch: Bool = true) {
        sequence += 1
        _ = shared.intents.push(CycleIntent(sequence: sequence, kind: .tipJog, held: clutch, point: hand))
    }

    func sendMove(axis: Int, _ amount: Double, relative: Bool = true, seconds: Double, smooth: Bool = true) {
        sequence += 1
        _ = shared.intents.push(CycleIntent(sequence: sequence, kind: .jointMove, held: relative, point: Vec3(amount, seconds, smooth ? 1 : 0), routeIndex: axis))
    }

    func sendTarget(_ point: Vec3, routeIndex: Int) {
        sequence += 1
        _ = shared.intents.push(CycleIntent(sequence: sequence, kind: .target, point: point, routeIndex: routeIndex))
    }

    /// Runs `rounds` × 50 cycles, repeating the deadman (unless `deadman` is false) and `also`
    /// before each round, as the console's heartbeat does; returns the largest commanded speed
    /// per joint and checks every command against the travel limits.
    @discardableResult
    func rounds(_ rounds: Int, deadman: Bool = true, also: (() -> Void)? = nil) throws -> (speed: [Double], outside: Int) {
        var speed = [Double](repeating: 0, count: shared.joints)
        var outside = 0
        let lower = scene.model.lowerLimit, upper = scene.model.upperLimit
        for _ in 0..<rounds {
            if deadman { send(.deadman, held: true) }
            also?()
            for _ in 0..<50 {
                try step(1)
                let c = runner.command
                for j in 0..<shared.joints {
                    speed[j] = max(speed[j], abs(c.velocity[j]))
                    if c.enable, c.position[j] < lower[j] - 1e-9 || c.position[j] > upper[j] + 1e-9 { outside += 1 }
                }
            }
        }
        return (speed, outside)
    }

    var joints: JointVector { published.joints.position }
    var tip: Vec3 { runner.withHardware { $0.tip } }
}

/// Joint and tip jog on the live cycle, on a simulated clock: every demand through the
/// supervisor and the limiter, motion only while the deadman is held.
@Suite struct LiveJogTests {
    /// The insertion axis's share of its speed limit a full jog deflection asks for.
    static let fraction = LiveController.defaultTeleop.velocityFraction

    @Test func aJointJogMovesWhileTheDeadmanIsHeldWithinItsShareOfTheSpeedLimit() throws {
        let c = try SimulatedCycle()
        try c.step(50)
        let before = c.joints[0]
        let r = try c.rounds(20) { c.sendJog([1, 0, 0, 0]) }
        #expect(c.published.mode == .jog)
        let moved = c.joints[0] - before
        #expect(moved > 1, "1 s of full insertion jog moved \(moved) mm")
        let limit = c.scene.model.maxVelocity[0] * Self.fraction
        #expect(r.speed[0] <= limit + 1e-9, "commanded \(r.speed[0]) mm/s above \(limit)")
        #expect(r.speed[0] > 0.5 * limit)
        // The other axes were not asked to move.
        for j in 2..<4 { #expect(r.speed[j] < 1e-6) }
    }

    @Test func aJointMoveFollowsItsProfileOnItsAxisAlone() throws {
        let c = try SimulatedCycle()
        try c.step(50)
        let before = c.joints
        // 4 mm of insertion over 0.5 s, minimum jerk; then 0.5 s to settle.
        var halfway = 0.0
        var sent = 0
        try c.rounds(5) { if sent == 0 { sent = 1; c.sendMove(axis: 0, 4, seconds: 0.5) } }
        halfway = c.joints[0] - before[0]
        try c.rounds(15)
        let moved = c.joints[0] - before[0]
        let mode = c.published.mode
        #expect(mode == .jog)
        #expect(abs(moved - 4) < 0.2, "a 4 mm move went \(moved) mm")
        // Minimum jerk is half-way at half its time (the drives lag the command a little).
        #expect(halfway > 0.5 && halfway < 3.5, "half-way through the move: \(halfway) mm")
        for j in 1..<c.shared.joints { #expect(abs(c.joints[j] - before[j]) < 0.02, "axis \(j) moved \(c.joints[j] - before[j])") }
        // An absolute move back to where it began.
        try c.rounds(20) { if sent == 1 { sent = 2; c.sendMove(axis: 0, before[0], relative: false, seconds: 0.5, smooth: false) } }
        #expect(abs(c.joints[0] - before[0]) < 0.2, "back at \(c.joints[0]), from \(before[0])")
    }

    /// A linear profile is a step in speed that the limiter's acceleration limit holds back:
    /// catching that up must not run the move faster than the speed it asked for (a monitor's
    /// velocity limit above the profile's speed latched on it).
    @Test func aLinearJointMoveIsNeverCommandedFasterThanItsProfile() throws {
        let c = try SimulatedCycle()
        try c.step(50)
        let before = c.joints[0]
        var sent = false
        // 5 mm over 1 s: 5 mm/s throughout.
        let r = try c.rounds(30) { if !sent { sent = true; c.sendMove(axis: 0, 5, seconds: 1, smooth: false) } }
        let moved = c.joints[0] - before
        #expect(abs(moved - 5) < 0.2, "a 5 mm move went \(moved) mm")
        #expect(r.speed[0] <= 5 * 1.001, "commanded \(r.speed[0]) mm/s on a 5 mm/s profile")
    }

    @Test func aJointMoveEndsWhereItStandsWhenTheDeadmanIsLetGoAndDoesNotResume() throws {
        let c = try SimulatedCycle()
        try c.step(50)
        let before = c.joints[0]
        var sent = false
        try c.rounds(4) { if !sent { sent = true; c.sendMove(axis: 0, 10, seconds: 2) } }
        c.send(.deadman, held: false)
        try c.rounds(10, deadman: false)
        let released = c.joints[0] - before
        // Held again: the abandoned move does not carry on.
        try c.rounds(10)
        let after = c.joints[0] - before
        #expect(released > 0.05 && released < 3, "moved \(released) mm before and after the release")
        #expect(abs(after - released) < 0.1, "moved on to \(after) mm once the deadman was held again")
        // Without the deadman a move starts nothing.
        let c2 = try SimulatedCycle()
        try c2.step(50)
        let still = c2.joints[0]
        try c2.rounds(10, deadman: false) { c2.sendMove(axis: 0, 5, seconds: 0.2) }
        #expect(abs(c2.joints[0] - still) < 0.05)
    }

    @Test func aJogWithoutTheDeadmanIsRefusedByTheSupervisorAndMovesNothing() throws {
        let c = try SimulatedCycle()
        try c.step(50)
        let before = c.joints
        let r = try c.rounds(10, deadman: false) { c.sendJog([1, 0, 0.5, 0]) }
        #expect(c.published.mode == .hold)
        #expect(r.speed.allSatisfy { $0 < 1e-9 })
        #expect(c.joints.maxAbsDifference(before) < 0.05)
    }

    @Test func releasingTheDeadmanMidJogHoldsAndTheJointsComeToRest() throws {
        let c = try SimulatedCycle()
        try c.rounds(10) { c.sendJog([1, 0, 0, 0]) }
        #expect(c.published.mode == .jog)
        c.send(.deadman, held: false)
        // The jog goes on being asked for: the released deadman wins.
        try c.rounds(10, deadman: false) { c.sendJog([1, 0, 0, 0]) }
        #expect(c.published.mode == .hold)
        #expect(c.published.holdReason == .deadmanReleased)
        let rest = c.joints[0]
        let r = try c.rounds(4, deadman: false) { c.sendJog([1, 0, 0, 0]) }
        #expect(r.speed[0] < 1e-9)
        #expect(abs(c.joints[0] - rest) < 0.05)
    }

    @Test func aDeadmanTimeoutMidJogHolds() throws {
        let c = try SimulatedCycle(deadmanTimeout: 250_000_000)
        try c.rounds(10) { c.sendJog([-1, 0, 0, 0]) }
        #expect(c.published.mode == .jog)
        // Jog demands go on arriving, the deadman's heartbeats do not: 200 ms after the last one
        // it is still held, 400 ms after it is released.
        try c.rounds(3, deadman: false) { c.sendJog([-1, 0, 0, 0]) }
        #expect(c.published.mode == .jog, "released before its timeout")
        try c.rounds(4, deadman: false) { c.sendJog([-1, 0, 0, 0]) }
        #expect(c.published.mode == .hold)
        #expect(c.published.holdReason == .deadmanReleased)
        #expect(c.shared.deadmanTimeouts == 1)
    }

    @Test func aJogDemandLivesAsLongAsTheDeadmansTimeout() throws {
        // A loose deadman (1 s, as a console on a slow network is set): a jog demand 600 ms old
        // still moves, as the deadman it came with still counts as held; one 1.2 s old does not.
        let c = try SimulatedCycle(deadmanTimeout: 1_000_000_000)
        try c.rounds(10) { c.sendJog([1, 0, 0, 0]) }
        try c.rounds(12)
        let late = try c.rounds(1)
        #expect(late.speed[0] > 1, "a 600 ms old demand no longer moves: \(late.speed[0]) mm/s")
        try c.rounds(12)
        let stale = try c.rounds(2)
        #expect(stale.speed[0] < 1e-6, "a 1.2 s old demand still commands \(stale.speed[0]) mm/s")
        #expect(c.published.mode == .jog)
    }

    @Test func aJogDemandThatIsNotRepeatedStops() throws {
        let c = try SimulatedCycle()
        try c.rounds(10) { c.sendJog([1, 0, 0, 0]) }
        // The deadman stays held; the demand is not repeated (a lost jog message, a page that hung).
        try c.rounds(12)
        #expect(c.published.mode == .jog)
        let rest = c.joints[0]
        let r = try c.rounds(4)
        #expect(r.speed[0] < 1e-6, "still commanding \(r.speed[0]) mm/s")
        #expect(abs(c.joints[0] - rest) < 0.05)
    }

    @Test func aJogTowardsATravelLimitStopsAtTheLimit() throws {
        let c = try SimulatedCycle()
        // Tendon A at full speed towards its upper limit for 4 s: the limiter brakes before it.
        let r = try c.rounds(80) { c.sendJog([0, 0, 1, 0]) }
        #expect(r.outside == 0)
        let upper = c.scene.model.upperLimit[2]
        #expect(c.published.command.position[2] <= upper + 1e-9)
        #expect(r.speed[2] <= c.scene.model.maxVelocity[2] * Self.fraction + 1e-9)
    }

    @Test func aLatchedStopIgnoresJogsUntilAcknowledged() throws {
        let c = try SimulatedCycle()
        c.send(.stop)
        try c.rounds(10) { c.sendJog([1, 0, 0, 0]) }
        #expect(c.published.mode == .idle)
        c.send(.acknowledge)
        try c.rounds(10) { c.sendJog([1, 0, 0, 0]) }
        #expect(c.published.mode == .jog)
    }

    @Test func aTipJogMovesTheTipTowardsTheHandsDisplacementAndTheClutchLetsGo() throws {
        let c = try SimulatedCycle()
        try c.step(200)
        let axis = (c.scene.route[1] - c.scene.route[0]) * (1 / (c.scene.route[1] - c.scene.route[0]).length)
        let start = c.tip
        // A 6 mm stroke along the vessel, held for 3 s.
        let r = try c.rounds(60) { c.sendTipJog(axis * 6) }
        #expect(c.published.mode == .jog)
        let moved = (c.tip - start).dot(axis)
        #expect(moved > 3, "the tip moved \(moved) mm along the stroke")
        #expect(moved < 9)
        for j in 0..<4 { #expect(r.speed[j] <= c.scene.model.maxVelocity[j] * Self.fraction + 1e-9) }
        #expect(r.outside == 0)
        // The clutch let go: hold.
        c.sendTipJog(.zero, clutch: false)
        try c.rounds(2)
        #expect(c.published.mode == .hold)
    }

    @Test func aTipJogWithoutTheDeadmanMovesNothing() throws {
        let c = try SimulatedCycle()
        try c.step(200)
        let start = c.tip
        try c.rounds(20, deadman: false) { c.sendTipJog(Vec3(0, 0, 6)) }
        #expect(c.published.mode == .hold)
        #expect((c.tip - start).length < 0.3)
    }

    @Test func aTargetShortOfTheRoutesEndHoldsThereAndTheServoStartsFromWhereTheJogLeftIt() throws {
        // The goal 46 mm beyond the tip; the target 12 mm beyond it.
        let c = try SimulatedCycle(depth: 150)
        // Jog first: the servo's own reference is then stale.
        try c.rounds(10) { c.sendJog([0, 0, 0.5, 0]) }
        let lifter = PixelTargetLifter(planes: c.scene.planes, tree: c.scene.tree, route: c.scene.route, radii: c.scene.radii)
        let from = lifter.routeIndex(nearest: c.tip)
        let index = from + 12
        try #require(index < lifter.route.count - 20)
        let target = lifter.route[index]
        c.sendTarget(target, routeIndex: index)
        var rounds = 0
        while !c.published.arrived, rounds < 200 {
            try c.rounds(1)
            rounds += 1
        }
        #expect(c.published.arrived, "not there after \(rounds * 50) cycles; tip \((c.tip - target).length) mm off")
        try c.rounds(20)
        #expect(c.published.mode == .hold)
        #expect(!c.published.hasTarget)
        let off = (c.tip - target).length
        #expect(off < 4, "held \(off) mm from the target")
        // Short of the route's end: it did not go on to the goal.
        #expect((c.tip - c.scene.goal).length > 5)
    }

    /// Jog, tip jog, a release, a timeout and a target on the route, counted after a warm-up pass.
    @Test func theCycleAllocatesNothingWhileJogging() throws {
        let c = try SimulatedCycle()
        let lifter = PixelTargetLifter(planes: c.scene.planes, tree: c.scene.tree, route: c.scene.route, radii: c.scene.radii)
        func scenario() throws {
            try c.rounds(5) { c.sendJog([0.5, 0, 0.2, -0.2]) }
            try c.rounds(5) { c.sendTipJog(Vec3(0, 0, 2)) }
            c.sendTipJog(.zero, clutch: false)
            c.send(.deadman, held: false)
            try c.rounds(3, deadman: false) { c.sendJog([-0.5, 0, 0, 0]) }
            try c.rounds(3) { c.sendJog([-0.5, 0, 0, 0]) }
            try c.rounds(8, deadman: false)
            let i = min(lifter.routeIndex(nearest: c.tip) + 5, lifter.route.count - 1)
            c.sendTarget(lifter.route[i], routeIndex: i)
            try c.rounds(20)
            c.send(.mode, mode: .hold)
            try c.rounds(2)
            // Refused by the supervisor (no deadman): a target, a jog.
            c.send(.deadman, held: false)
            c.sendTarget(c.scene.goal, routeIndex: -1)
            c.send(.mode, mode: .jog)
            try c.rounds(2, deadman: false)
        }
        try scenario()
        c.countAllocations = true
        try scenario()
        #expect(c.allocations == 0)
    }
}

/// Jog and target intents at the operator port, before the cycle.
struct LiveJogPortChecksTests {
    func check(_ i: OperatorIntent, _ role: OperatorRole = .operator, stop: Bool = false) -> Result<CycleIntent, IntentRejection> {
        LiveRuntime.check(i, role: role, stopLatched: stop, running: true, mode: .hold, targets: [], axes: 4)
    }

    @Test func jogsAreQueuedForOperatorsAndRefusedForObserversAndUnderAStop() throws {
        let jog = JointVector([0.5, 0, 0, -1])
        #expect(try check(.jointJog(jog)).get() == CycleIntent(sequence: 0, kind: .jointJog, joints: jog))
        #expect(try check(.tipJog(hand: Vec3(1, 2, 3), clutch: true)).get() == CycleIntent(sequence: 0, kind: .tipJog, held: true, point: Vec3(1, 2, 3)))
        #expect(try check(.mode(.jog)).get().mode == .jog)
        for i: OperatorIntent in [.jointJog(jog), .tipJog(hand: .zero, clutch: true), .mode(.jog)] {
            #expect(throws: IntentRejection.notPermitted(role: .observer)) { try check(i, .observer).get() }
            #expect(throws: IntentRejection.stopLatched) { try check(i, stop: true).get() }
        }
        #expect(throws: IntentRejection.outOfRange("jointJog.count")) { try check(.jointJog(JointVector([1, 0]))).get() }
        #expect(throws: IntentRejection.outOfRange("tipJog.hand")) { try check(.tipJog(hand: Vec3(0, 0, 101), clutch: true)).get() }
    }

    @Test func aJointMoveIsQueuedWithItsProfileAndRefusedOutOfRangeOrUnderAStop() throws {
        let move = OperatorIntent.jointMove(axis: 2, position: -1.5, relative: true, duration: 0.5, smooth: false)
        #expect(try check(move, .automation).get() == CycleIntent(sequence: 0, kind: .jointMove, held: true, point: Vec3(-1.5, 0.5, 0), routeIndex: 2))
        #expect(throws: IntentRejection.notPermitted(role: .observer)) { try check(move, .observer).get() }
        #expect(throws: IntentRejection.stopLatched) { try check(move, stop: true).get() }
        #expect(throws: IntentRejection.outOfRange("jointMove.axis")) { try check(.jointMove(axis: 4, position: 1, relative: true, duration: 1, smooth: true)).get() }
        #expect(throws: IntentRejection.outOfRange("jointMove.axis")) { try check(.jointMove(axis: -1, position: 1, relative: true, duration: 1, smooth: true)).get() }
        #expect(throws: IntentRejection.outOfRange("jointMove.position")) { try check(.jointMove(axis: 0, position: .nan, relative: true, duration: 1, smooth: true)).get() }
        #expect(throws: IntentRejection.outOfRange("jointMove.duration")) { try check(.jointMove(axis: 0, position: 1, relative: true, duration: 0, smooth: true)).get() }
        #expect(throws: IntentRejection.outOfRange("jointMove.duration")) { try check(.jointMove(axis: 0, position: 1, relative: true, duration: .infinity, smooth: true)).get() }
    }

    @Test func aPixelTargetWithoutImagingPlanesIsRefusedWithAReason() {
        let r = check(.targetPixel(plane: 0, pixel: SIMD2(10, 10)))
        guard case .failure(.unknownTarget(let why)) = r else { Issue.record("accepted: \(r)"); return }
        #expect(why.contains("no imaging planes"))
    }
}

/// A pixel clicked on a plane, lifted through the C-arm geometry onto the route of the demo's scene.
@Suite struct PixelTargetLifterTests {
    static let scene: NavigationScene? = {
        var s = NavigationSetup()
        s.detectorPixels = 512
        s.pixelSpacingMM = 0.6
        return try? NavigationScene(s, robot: loadRobot())
    }()

    func lifter() throws -> (PixelTargetLifter, NavigationScene) {
        let scene = try #require(Self.scene)
        return (PixelTargetLifter(planes: scene.planes, tree: scene.tree, route: scene.route, radii: scene.radii), scene)
    }

    func pixel(_ p: Vec3, _ g: CArmGeometry) -> SIMD2<Double> { let q = g.project(p); return SIMD2(q.u, q.v) }

    @Test func aPixelOnTheRouteOnEitherPlaneLiftsToThatRoutePoint() throws {
        let (l, scene) = try lifter()
        for plane in 0..<2 {
            for index in [l.route.count / 3, l.route.count - 5] {
                let p = l.route[index]
                let lifted = try l.lift(plane: UInt8(plane), pixel: pixel(p, scene.planes[plane])).get()
                // The ray runs through the lumen along its depth: the lifted point is on the route
                // and projects onto the click.
                let back = pixel(lifted.point, scene.planes[plane])
                let miss = back - pixel(p, scene.planes[plane])
                #expect(max(abs(miss.x), abs(miss.y)) < 25, "plane \(plane), index \(index): \(back)")
                #expect((lifted.point - p).length < 40)
            }
        }
    }

    @Test func aPixelOutsideEveryVesselIsRefusedAndSaysSo() throws {
        let (l, _) = try lifter()
        let r = l.lift(plane: 0, pixel: SIMD2(3, 3))
        guard case .failure(.unknownTarget(let why)) = r else { Issue.record("accepted: \(r)"); return }
        #expect(why.contains("outside every vessel"))
    }

    @Test func aPixelOnAVesselOffTheRouteIsRefusedWithTheVesselsName() throws {
        let (l, scene) = try lifter()
        let tree = scene.tree.vessels
        let other = try #require(tree.first { $0.name == "right_subclavian" })
        let end = other.points[other.points.count - 1]
        let r = l.lift(plane: 0, pixel: pixel(Vec3(end[0], end[1], end[2]), scene.planes[0]))
        guard case .failure(.unknownTarget(let why)) = r else { Issue.record("accepted: \(r)"); return }
        #expect(why.contains("right_subclavian"), "\(why)")
    }

    /// In the straight tube, where no view shows the route crossing itself.
    @Test func aTargetBehindTheTipIsRefused() throws {
        let scene = try SimulatedCycle(depth: 150).scene
        let l = PixelTargetLifter(planes: scene.planes, tree: scene.tree, route: scene.route, radii: scene.radii)
        // 40 mm apart, both in the field of view (z 230 and 190 mm).
        let p = l.route[70], tip = l.route[110]
        for plane in 0..<2 {
            let r = l.lift(plane: UInt8(plane), pixel: pixel(p, scene.planes[plane]), tip: tip)
            guard case .failure(.unknownTarget(let why)) = r else { Issue.record("accepted: \(r)"); return }
            #expect(why.contains("behind the tip"), "\(why)")
            // Ahead of the tip it is taken; without a tip, too.
            #expect(try l.lift(plane: UInt8(plane), pixel: pixel(tip, scene.planes[plane]), tip: p).get().routeIndex >= 105)
            #expect(try l.lift(plane: UInt8(plane), pixel: pixel(p, scene.planes[plane])).get().routeIndex <= 75)
        }
    }

    @Test func aPixelOffThePlaneOrAPlaneThatIsNotThereIsOutOfRange() throws {
        let (l, _) = try lifter()
        #expect(throws: IntentRejection.outOfRange("targetPixel.plane")) { try l.lift(plane: 2, pixel: SIMD2(1, 1)).get() }
        #expect(throws: IntentRejection.outOfRange("targetPixel.pixel")) { try l.lift(plane: 0, pixel: SIMD2(1e5, 1)).get() }
        #expect(throws: IntentRejection.outOfRange("targetPixel.pixel")) { try l.lift(plane: 0, pixel: SIMD2(.nan, 1)).get() }
    }
}
