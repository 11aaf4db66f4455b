import Core

/// A route through the vessels for the tip to follow, ending at the target point: points every
/// ~1 mm with their arc length. Built outside the cycle; it owns its buffers and frees them when
/// it ends. It cannot be copied: a `PathServo` takes it over and reads it for as long as it lives.
public struct CenterlineRoute: ~Copyable, @unchecked Sendable {
    public let count: Int
    let points: UnsafeMutablePointer<Vec3>    // (count) mm
    let arc: UnsafeMutablePointer<Double>     // (count) mm from the first point
    /// Lumen radius (mm) at each point (a large value when unknown: free space).
    let radius: UnsafeMutablePointer<Double>  // (count) mm

    public init(_ polyline: [Vec3], radii: [Double]? = nil, spacing: Double = 1) {
        var pts: [Vec3] = [polyline[0]]
        let r0 = radii ?? [Double](repeating: 1e6, count: polyline.count)
        var rs: [Double] = [r0[0]]
        for k in 1..<polyline.count {
            let a = polyline[k - 1], b = polyline[k]
            let n = max(1, Int(((b - a).length / spacing).rounded(.up)))
            for i in 1...n {
                let f = Double(i) / Double(n)
                pts.append(a + (b - a) * f); rs.append(r0[k - 1] + (r0[k] - r0[k - 1]) * f)
            }
        }
        count = pts.count
        points = .allocate(capacity: count); arc = .allocate(capacity: count); radius = .allocate(capacity: count)
        var s = 0.0
        for i in 0..<count {
            if i > 0 { s += (pts[i] - pts[i - 1]).length }
            points[i] = pts[i]; arc[i] = s; radius[i] = rs[i]
        }
    }

    deinit { points.deallocate(); arc.deallocate(); radius.deallocate() }

    /// The route with its sharp corners rounded: where a branch leaves its parent, the
    /// centerlines meet at a corner on the parent's axis, a lumen radius below the branch's
    /// opening. A tip pushed along the parent rides its wall, and at the wall it is never near
    /// that corner: it can neither follow the route nor reach it. Each corner sharper than
    /// `minAngle` (rad) is replaced by a quadratic Bézier from one lumen radius before it to one
    /// after (fewer where the route is shorter), which runs from the parent's axis to the
    /// branch's opening.
    public static func roundingCorners(_ route: [(point: Vec3, radius: Double)], minAngle: Double = 0.5) -> [(point: Vec3, radius: Double)] {
        guard route.count >= 3 else { return route }
        let polyline = RoutePolyline(route)
        let arc = polyline.arc
        let at = polyline.at
        var out: [(point: Vec3, radius: Double, arc: Double)] = []
        var skipUntil = -1.0
        for i in 0..<route.count {
            if arc[i] <= skipUntil { continue }
            if i > 0, i + 1 < route.count {
                let a = route[i].point - route[i - 1].point, b = route[i + 1].point - route[i].point
                let la = a.length, lb = b.length
                if la > 0, lb > 0, a.dot(b) / (la * lb) < cosine(minAngle) {
                    let r = route[i].radius
                    let s0 = max(arc[i] - 2 * r, out.first?.arc ?? 0), s2 = min(arc[i] + r, arc[route.count - 1])
                    let p0 = at(s0), p2 = at(s2)
                    // The middle control point lies on the parent's wall under the opening, so
                    // the route comes along that wall, as a pushed catheter does.
                    let ua = a * (1 / la), ub = b * (1 / lb)
                    var side = ub - ua * ub.dot(ua)
                    let sl = side.length
                    side = sl > 1e-9 ? side * (1 / sl) : .zero
                    let c = route[i].point + side * max(0, r - p2.radius)
                    while out.count > 1, let last = out.last, last.arc >= s0 { out.removeLast() }
                    let n = max(2, Int((s2 - s0).rounded(.up)))
                    for k in 0...n {
                        let t = Double(k) / Double(n)
                        let p = p0.point * ((1 - t) * (1 - t)) + c * (2 * t * (1 - t)) + p2.point * (t * t)
                        let radius = max(p0.radius + (p2.radius - p0.radius) * t, r * (1 - abs(2 * t - 1)))
                        out.append((p, radius, s0 + (s2 - s0) * t))
                    }
                    skipUntil = s2
                    continue
                }
            }
            out.append((route[i].point, route[i].radius, arc[i]))
        }
        return out.map { ($0.point, $0.radius) }
    }

    public var target: Vec3 { points[count - 1] }
    public var length: Double { arc[count - 1] }
    public var polyline: [Vec3] { (0..<count).map { points[$0] } }
}

/// Why the servo is doing what it does this cycle.
public enum PathServoPhase: UInt8, Sendable, Equatable {
    case following = 0, arrived = 1, holdingLost = 2, holdingNoState = 3
    /// Pulling back after a stall, the bend let out (see `PathServo.retreat`).
    case withdrawing = 4
    /// Back from a stall: insertion held while the bend aims the tip at the way on.
    case aiming = 5
    /// The servo gave up (see `PathServo.failure`) and holds until it is reset.
    case gaveUp = 6
    /// A hairpin branch ahead (`PathServo.planHairpin`): past its opening along the parent.
    case overshooting = 7
    /// Past the opening: insertion held while the bend turns the tip back at the branch.
    case hooking = 8
    /// Hooked: withdrawing slowly, the bend held at the branch, until the tip drops into it.
    case engaging = 9
}

/// Where the servo is in a reverse-curve engagement of a hairpin branch.
enum HairpinStage: UInt8, Sendable {
    case none, pending, overshooting, hooking, engaging, engaged
}

/// Why the path servo gave up: the run should end there, not push on.
public enum PathServoFailure: Sendable, Equatable, CustomStringConvertible {
    /// `retreats` withdraw-aim-advance attempts in a row got the tip no further than `arcMM`
    /// along the route (its length `routeMM`): the way on is not one this catheter takes from
    /// there. Withdraw and choose another catheter shape or approach, or steer by hand (jog).
    case noProgress(retreats: Int, arcMM: Double, routeMM: Double)

    public var description: String {
        switch self {
        case .noProgress(let n, let s, let l):
            "the tip got no further than \(Int(s.rounded())) of \(Int(l.rounded())) mm along the route in \(n) withdraw-aim-advance attempts; withdraw and try another catheter shape or approach, or steer by hand"
        }
    }
}

/// Drives the tip along a centerline route to its end, from the fused estimate: each cycle
/// the target is the route point `lookahead` mm beyond the estimate's progress along it, and
/// one damped-least-squares step through the Jacobian of the kinematic model as the estimator
/// corrected it (joint offsets, the rotation where the bending section starts, the tip offset)
/// moves the joint reference towards it, bounded by the joints' speed limits. The correction
/// matters: once the shaft follows a curved vessel, the straight-shaft model would bend the
/// tip the wrong way. When the estimate is lost the reference stops where it is (hold); at the target
/// (within `arrivalTolerance`) the servo holds.
///
/// The servo owns its route, so it cannot be copied.
public struct PathServo: ~Copyable, @unchecked Sendable {
    public let model: CatheterModel
    /// The route it follows, owned here.
    public let route: CenterlineRoute
    public var dls = DLSOptions()
    public var lookahead = 10.0
    public var arrivalTolerance = 0.6
    /// mm — once arrived, the servo holds until the estimate is further than this from the
    /// goal. The estimate of a tip at rest scatters by a few tenths of a millimetre; with one
    /// threshold for both, a tip resting against the wall 0.6–0.7 mm from the goal flips between
    /// holding and pushing every few frames, and each push feeds catheter into a shaft that
    /// can no longer move the tip (it buckles behind it). Kept well inside the 1 mm a run is
    /// judged by: with 0.9 the tip the servo held stayed at 1.017 mm from the goal in one arch run of 20.
    public var arrivalRelease = 0.7
    /// Fraction of each joint's speed limit the servo may use.
    public var speedScale = 0.6
    /// 1/s: each cycle's step asks for `gain` × dt of the remaining error (a proportional
    /// servo). One that asks for the whole error every cycle runs at its speed limit until it
    /// is past the target, and with images 100 ms late it overshoots by millimetres each way.
    public var gain = 2.0
    /// Steer before advancing: further off the route than `steerOnly` × the local lumen radius
    /// (at least 1 mm) the catheter is pushed ever more slowly (see `alignment`); beyond the lumen
    /// radius it is pulled back, at `backOutSpeed` mm/s from the lumen radius + `backOut` mm on.
    public var steerOnly = 0.8
    public var backOut = 4.0
    public var backOutSpeed = 3.0
    /// Diagnostics: the cosine between the model's tip heading and the direction to the
    /// lookahead point, and the insertion speed the step asked for before the advance rules.
    public private(set) var aimCosine = 1.0
    public private(set) var proposedInsertion = 0.0
    public private(set) var offRoute = 0.0
    /// How much the joints' speed limits shortened this cycle's step (1: not at all).
    public private(set) var stepScale = 1.0
    /// Relative weight of roll in the step (insertion and tendons weigh 1).
    public var rollWeight = 0.05
    /// Advance in proportion to how well the tip points where it should go: full speed while
    /// the cosine between the corrected model's tip heading and the direction from the tip to
    /// the lookahead point is at least `alignment`, none at `alignmentStop` or below, linear
    /// between (retracting is always allowed); bending turns the tip meanwhile (a catheter
    /// pushed while it points at the wall goes past a branch instead of into it). A hard
    /// threshold stalls: the tendons settle where the heading sits just under it, and nothing
    /// moves again.
    public var alignment = 0.8
    public var alignmentStop = 0.4
    /// mm from the goal within which the push is not gated on the aim (see `alignment`).
    public var finalApproach = 0.0
    /// Likewise off the route: full speed within `steerOnly` × the lumen radius of the route,
    /// none at the lumen radius, and pulled back beyond it (see `backOut`).
    public private(set) var advanceFactor = 1.0
    public private(set) var headingCosine = 1.0
    /// mm of position error one radian of heading error counts as.
    public var headingWeight = 15.0
    /// Stall recovery: when the tip has not got `stallProgress` mm further along the route
    /// for `stallTime` s, the catheter is pulled back `retreat` mm with its bend let out, and
    /// tries again: a tip caught on the rim of an opening, or held against a wall by its own
    /// bend, does not come free by pushing or bending where it is.
    public var stallTime = 3.0
    public var stallProgress = 2.0
    public var retreat = 8.0
    /// Buckling: catheter pushed in by `stallPush` mm while the tip got less than `stallProgress`
    /// mm further is a catheter taking up slack in the vessel behind the tip (bowing, buckling),
    /// not one advancing, and it is a stall at once, without waiting `stallTime`: pushing on
    /// loads the walls and feeds out catheter the tip never uses.
    public var stallPush = 10.0
    /// Within a lookahead of the route's end, progress is getting `finalProgress` mm closer to
    /// the goal: the route's arc there barely grows, and counting every cycle as progress
    /// switched the buckling rule off, so the servo pushed on behind a tip held short of the
    /// goal until the loop sprang. A pull-back of `finalPullBack` mm starts the count afresh (a
    /// tip that passed close by the goal cannot beat that from behind). Time without progress
    /// is still no stall there: the final approach is slow by design.
    public var finalProgress = 0.5
    public var finalPullBack = 1.0
    /// N — the axial force at the sheath (the joint state's `insertionForce`, positive when
    /// pushing) the servo keeps under, either way: the monitor's insertion-force limit, which
    /// stops the robot when the force's size exceeds it. The advance slows from `pushEase` × the
    /// limit and stops at `pushStall` × it, where the push is a stall at once (a retreat, as for
    /// buckling): a tip that does not move for a rising push is caught on a wall or an ostium's
    /// rim, and more push only loads the wall until the monitor trips. Withdrawal slows and
    /// stops the same way under tension (a catheter caught while it is pulled back). Infinity
    /// (the default): no limit, for drives that report no force. A force that is not a number
    /// counts as a push at the limit: the servo does not push on what it cannot read.
    public var pushLimit = Double.infinity
    public var pushEase = 0.4
    public var pushStall = 0.7
    /// N — the push the last update saw (diagnostics; the peak is the robot's to report).
    public private(set) var push = 0.0
    /// Retreats the push at the sheath started (of `retreats`).
    public private(set) var pushRetreats = 0
    public private(set) var retreats = 0
    /// Each retreat after the first goes `retreatGrowth` × `retreat` further back than the one
    /// before (at most `retreatGrowthLimit` × `retreat` in all): a tip that stalls again at the
    /// same place was not pulled back far enough to come at the opening from another angle.
    public var retreatGrowth = 0.0
    public var retreatGrowthLimit = 3.0
    /// After a retreat, insertion is held for up to `aimTime` s while the bend turns the tip
    /// towards the route ahead (until the aim's cosine reaches `alignment`): a catheter
    /// re-advanced with its bend still coming round goes where it went before. This is the
    /// interventionalist's pull back and re-aim.
    public var aimTime = 0.0
    /// From the second retreat at the same place on, the point the tip aims at on its way past
    /// the stall is moved sideways by `searchOffset` × the local lumen radius, a quarter turn
    /// round the route further with each retreat: rotating the tip's bend to find an ostium
    /// the route's centerline does not lead it into.
    public var searchOffset = 0.0
    /// Retreats in a row without getting past the place of the first (`stallProgress` mm
    /// beyond it) before the servo gives up with a typed failure and holds.
    public var maxRetreats = Int.max
    public private(set) var failure: PathServoFailure?
    /// The reverse-curve engagement (`planHairpin`): the corner it is planned for, where the
    /// corner lies on the route, and how far past the opening the tip goes before it is hooked
    /// (`hairpinOvershoot` × the parent's lumen radius).
    public private(set) var hairpin: HairpinCorner?
    /// The same, read in the cycle (an optional of it there would need its metadata).
    var hairpinPlan = HairpinCorner(point: .zero, incoming: Vec3(0, 0, 1), outgoing: Vec3(0, 0, 1), angle: 0, parentRadius: 1, branchRadius: 1)
    var hairpinArc = 0.0
    var hairpinIndex = 0
    var hairpinStage = HairpinStage.none
    public var hairpinOvershoot = 1.5
    /// s the bend has to turn the tip back at the branch before the withdrawal starts.
    public var hookTime = 3.0
    /// mm/s — withdrawal while hooked: slow, so the tip catches on the opening's rim and drops in.
    public var engageSpeed = 2.0
    /// Engagements tried (each one overshoot, hook, withdrawal) before the servo gives up.
    public var hairpinAttempts = 3
    /// Fraction of the insertion speed once engaged in the branch.
    public var engagedAdvance = 0.3
    public private(set) var hairpinTries = 0
    var hookLeft = 0.0
    var withdrawnWhileHooked = 0.0
    /// The furthest the tip got past the corner along the parent in this overshoot, and for how
    /// long it got no further: a tip that cannot go further past is hooked where it is.
    var overshootBest = -Double.infinity
    var overshootStill = 0.0
    /// s of aiming left after the current retreat.
    var aimLeft = 0.0
    /// Route arc (mm) where the current series of retreats began, and how many in the series.
    var stallArc = -1.0
    var retreatsHere = 0
    /// mm — insertion commanded since the tip last made progress (diagnostics, and the buckling rule).
    public private(set) var pushedSinceProgress = 0.0
    var bestArc = 0.0
    var sinceProgress = 0.0
    /// mm — the closest the tip has come to the goal near the route's end since the count began
    /// (infinity: not counting), and the insertion pulled back since (`finalPullBack`).
    var bestGoal = Double.infinity
    var pulledNearEnd = 0.0
    var retreatLeft = 0.0
    public private(set) var reference = JointVector(count: 0)
    public private(set) var progress = 0
    public private(set) var phase = PathServoPhase.holdingNoState

    public init(model: CatheterModel, route: consuming CenterlineRoute) {
        self.model = model
        self.route = route
    }

    /// Turns the corner manoeuvres on (the re-aim after a retreat, the deeper retreats, the
    /// search round an opening, the bounded attempts, the final approach). Off by default: on
    /// the brachiocephalic hairpin they did worse than the servo without them
    /// (docs/navigation-corners.md).
    public mutating func withCornerManoeuvres() {
        aimTime = 2.0; retreatGrowth = 0.5; searchOffset = 0.5; maxRetreats = 8; finalApproach = 1.5
    }

    /// Plans a reverse-curve engagement for `corner` (found by `HairpinCorner.find` on the
    /// route before its corners were rounded): instead of pushing at an opening that turns back
    /// further than a forward push can turn, the servo takes the tip past it along the parent,
    /// turns the bend back at the branch with insertion held, and withdraws slowly until the
    /// hooked tip drops into the branch (how a reverse-curve catheter is engaged); then it
    /// follows the route up the branch. Not for the cycle.
    public mutating func planHairpin(_ corner: HairpinCorner) {
        let points = route.points, arc = route.arc
        var best = 0, bestDistance = Double.infinity
        for i in 0..<route.count {
            let d = (points[i] - corner.point).length
            if d < bestDistance { bestDistance = d; best = i }
        }
        hairpin = corner
        hairpinPlan = corner
        hairpinIndex = best
        hairpinArc = arc[best]
        hairpinStage = .pending
    }

    @_noAllocation @_noLocks
    public mutating func reset(to q: JointVector) {
        reference = q
        progress = 0
        phase = .following
        bestArc = 0; sinceProgress = 0; retreatLeft = 0; retreats = 0; restartPushCount()
        push = 0; pushRetreats = 0
        aimLeft = 0; stallArc = -1; retreatsHere = 0; failure = nil
        hairpinStage = hairpinIndex > 0 ? .pending : .none
        hairpinTries = 0; hookLeft = 0; withdrawnWhileHooked = 0; overshootBest = -.infinity; overshootStill = 0
    }

    /// Starts the buckling rule's count afresh: no insertion pushed since progress, and near the
    /// end no closest approach or pull-back yet.
    @_noAllocation @_noLocks
    mutating func restartPushCount() {
        pushedSinceProgress = 0; bestGoal = .infinity; pulledNearEnd = 0
    }

    /// The reverse-curve engagement's step this cycle: advances its stage from where the tip is,
    /// and gives the point the tip aims at and the heading it is turned to, or nil when the
    /// route is followed as usual. Gives up (`failure`, phase `.gaveUp`) after
    /// `hairpinAttempts` engagements that did not get the tip into the branch.
    @_noAllocation @_noLocks
    mutating func hairpinStep(tip: Vec3, dt: Double) -> (target: Vec3, heading: Vec3)? {
        guard hairpinStage != .none else { return nil }
        let h = hairpinPlan
        let arc = route.arc
        let overshoot = hairpinOvershoot * h.parentRadius
        let along = (tip - h.point).dot(h.incoming)
        // In the branch: at least a branch radius up its axis and within its lumen.
        let up = (tip - h.point).dot(h.outgoing)
        let across = ((tip - h.point) - h.outgoing * up).length
        let inBranch = up >= h.branchRadius && across < h.branchRadius
        switch hairpinStage {
        case .none:
            return nil
        case .pending, .engaged:
            if hairpinStage == .engaged {
                // Fallen back out of the branch into the parent: engage again.
                guard arc[progress] < hairpinArc - h.parentRadius, !inBranch else { return nil }
                hairpinTries += 1
                if hairpinTries >= hairpinAttempts { return giveUpHairpin() }
                hairpinStage = .overshooting
                return hairpinStep(tip: tip, dt: dt)
            }
            // Before the route starts its turn into the branch (its rounding begins two parent
            // radii before the corner) with a lookahead to spare.
            guard arc[progress] + lookahead >= hairpinArc - 2 * h.parentRadius else { return nil }
            hairpinStage = .overshooting
            sinceProgress = 0; restartPushCount()
            return hairpinStep(tip: tip, dt: dt)
        case .overshooting:
            if along > overshootBest + stallProgress {
                overshootBest = along
                overshootStill = 0
            } else {
                overshootStill += dt
            }
            if along >= overshoot - 1 || overshootStill > stallTime {
                overshootBest = -.infinity
                overshootStill = 0
                hairpinStage = .hooking
                hookLeft = hookTime
                return hairpinStep(tip: tip, dt: dt)
            }
            // Along the parent's line through the corner, a lookahead beyond the tip, no further
            // than the overshoot.
            let aim = along + lookahead < overshoot ? along + lookahead : overshoot
            return (h.point + h.incoming * aim, h.incoming)
        case .hooking:
            hookLeft -= dt
            if hookLeft <= 0 {
                hairpinStage = .engaging
                withdrawnWhileHooked = 0
            }
            return (h.point + h.outgoing * (2 * h.branchRadius), h.outgoing)
        case .engaging:
            if inBranch {
                hairpinStage = .engaged
                // Progress counts on from the corner; a stall is measured from here.
                progress = hairpinIndex
                bestArc = hairpinArc
                sinceProgress = 0; restartPushCount(); retreatLeft = 0; aimLeft = 0
                return nil
            }
            // Withdrawn past the opening and further than the overshoot took the tip beyond it:
            // this engagement missed. Advance again for another.
            if withdrawnWhileHooked > overshoot + 2 * h.parentRadius {
                hairpinTries += 1
                if hairpinTries >= hairpinAttempts { return giveUpHairpin() }
                hairpinStage = .overshooting
                return hairpinStep(tip: tip, dt: dt)
            }
            return (h.point + h.outgoing * (2 * h.branchRadius), h.outgoing)
        }
    }

    @_noAllocation @_noLocks
    mutating func giveUpHairpin() -> (target: Vec3, heading: Vec3)? {
        failure = .noProgress(retreats: hairpinTries, arcMM: hairpinArc, routeMM: route.length)
        phase = .gaveUp
        return nil
    }

    /// Puts the joint reference at `q` (where the command is) and keeps the progress along the
    /// route: while the servo does not command, its reference must not run on without the joints.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func anchor(at q: JointVector) {
        if q.count == reference.count { reference = q }
    }

    /// - Parameters:
    ///   - pushForce: N — the push at the sheath the drives report (the joint state's
    ///     `insertionForce`, positive when pushing); 0 where they report none.
    ///   - measuredInsertion: mm — where the insertion drive is (its encoder); nil when unknown.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func update(estimate: TipEstimate, correction: KinematicCorrection, pushForce: Double = 0,
                                measuredInsertion: Double? = nil, dt: Double, command: inout JointCommand) {
        push = pushForce.isFinite ? pushForce : (pushLimit.isFinite ? pushLimit : 0)
        // The reference leads the drive by what the motion limits and the drive's own lag have
        // not yet done. Against a blocked tip a catheter is stiff along its axis (several N per
        // mm), so that lead alone would carry the push past the limit after the servo stopped
        // asking for more: as the push rises it is taken back towards the drive.
        if case .some(let m) = measuredInsertion, m.isFinite, reference.count > 0 {
            let ahead = reference[0] - m
            let load = ahead > 0 ? push : -push
            if load > 0 { reference[0] = m + ahead * forceGate(load) }
        }
        if reference.count != model.jointCount {
            phase = .holdingNoState
            command.setHold(enable: true)
            return
        }
        if phase == .gaveUp {
            holdAtReference(&command)
            return
        }
        if estimate.health == .lost {
            phase = .holdingLost
            holdAtReference(&command)
            return
        }
        let tip = estimate.position
        let points = route.points, arc = route.arc, radius = route.radius, count = route.count
        // Progress: the nearest route point, searched a little back and well ahead of the last.
        var best = progress, bestDistance = Double.infinity
        var i = progress - 20 > 0 ? progress - 20 : 0
        let end = progress + 200 < count ? progress + 200 : count
        while i < end {
            let d = (points[i] - tip).length
            if d < bestDistance { bestDistance = d; best = i }
            i += 1
        }
        progress = best
        offRoute = bestDistance
        let goalDistance = (points[count - 1] - tip).length
        let holding = phase == .arrived && arrivalRelease > arrivalTolerance ? arrivalRelease : arrivalTolerance
        if goalDistance <= holding, progress + 5 >= count {
            phase = .arrived
            holdAtReference(&command)
            return
        }
        phase = .following
        let manoeuvre = hairpinStep(tip: tip, dt: dt)
        if phase == .gaveUp {
            holdAtReference(&command)
            return
        }
        // Within a lookahead of the route's end progress along the route cannot grow much more:
        // there progress is coming closer to the goal (`finalProgress`).
        let nearEnd = arc[count - 1] - arc[progress] < lookahead
        // Past the place where the series of retreats began: the way on was found.
        if stallArc >= 0, arc[progress] > stallArc + stallProgress { stallArc = -1; retreatsHere = 0 }
        // Pushing at the stall level is a stall wherever the tip is, near the end too: progress
        // made against it would not last past the monitor's stop.
        let pushStalled = push >= pushStall * pushLimit
        if manoeuvre != nil {
            // The engagement moves the tip off the route and back along it by design: its own
            // stages bound it, not the stall rules.
            sinceProgress = 0
            restartPushCount()
        } else if !pushStalled, arc[progress] > bestArc + stallProgress {
            bestArc = arc[progress]
            sinceProgress = 0
            restartPushCount()
        } else if !pushStalled, nearEnd {
            // The final approach: slow is no stall, pushing behind a tip that comes no closer is.
            sinceProgress = 0
            if goalDistance < bestGoal - finalProgress {
                bestGoal = goalDistance
                pushedSinceProgress = 0; pulledNearEnd = 0
            }
        } else if retreatLeft <= 0, aimLeft <= 0, hairpinStage != .engaged {
            sinceProgress += dt
        }
        // Once engaged a retreat would pull the tip out of the branch it was hooked into; a tip
        // that falls out is engaged again instead (`hairpinStep`).
        if manoeuvre == nil, retreatLeft <= 0, aimLeft <= 0, hairpinStage != .engaged,
           sinceProgress > stallTime || pushedSinceProgress > stallPush || pushStalled {
            if pushStalled { pushRetreats += 1 }
            if retreatsHere >= maxRetreats {
                // Giving up at the first stall (no retreats allowed), no series has begun.
                failure = .noProgress(retreats: retreatsHere, arcMM: stallArc >= 0 ? stallArc : arc[progress], routeMM: arc[count - 1])
                phase = .gaveUp
                holdAtReference(&command)
                return
            }
            if stallArc < 0 { stallArc = arc[progress] }
            restartPushCount()
            let further = retreatGrowth * Double(retreatsHere)
            retreatLeft = retreat * (further + 1 < retreatGrowthLimit ? further + 1 : retreatGrowthLimit)
            retreats += 1
            retreatsHere += 1
            aimLeft = aimTime
            sinceProgress = 0
            // Progress counts again from where the retreat ends.
            bestArc = arc[progress] - retreatLeft
        }
        if retreatLeft > 0 { phase = .withdrawing } else if aimLeft > 0 { phase = .aiming }
        switch hairpinStage {
        case .overshooting where manoeuvre != nil: phase = .overshooting
        case .hooking where manoeuvre != nil: phase = .hooking
        case .engaging where manoeuvre != nil: phase = .engaging
        default: break
        }
        var k = progress
        let want = arc[progress] + lookahead
        while k + 1 < count, arc[k] < want { k += 1 }
        var target = points[k]
        if retreatsHere >= 2, stallArc >= 0, k + 1 < count {
            // The search round the opening: a quarter turn about the route's direction per retreat.
            let along = points[k + 1] - points[k]
            let a = along.length > 1e-9 ? along * (1 / along.length) : Vec3(0, 0, 1)
            let helper = abs(a.x) < 0.9 ? Vec3(1, 0, 0) : Vec3(0, 1, 0)
            var u = helper - a * helper.dot(a)
            u = u * (1 / u.length)
            let v = a.cross(u)
            let side: Vec3
            switch (retreatsHere - 2) % 4 {
            case 0: side = u
            case 1: side = v
            case 2: side = u * -1
            default: side = v * -1
            }
            // An unknown lumen (free space) is searched as one of 10 mm.
            target += side * (searchOffset * (radius[k] < 10 ? radius[k] : 10))
        }
        if let m = manoeuvre { target = m.target }
        let n = reference.count
        var maxStep = model.maxVelocity
        for j in 0..<n { maxStep[j] *= dt * speedScale }
        // J (3 × n) of the corrected model at the reference; Δq = Jᵀ (J Jᵀ + λ² I)⁻¹ e.
        var columns = InlineArray<8, Vec3>(repeating: .zero)
        _ = correction.jacobian(model, reference, into: &columns)
        let heading = correction.tipPose(model, reference).rotation.c2
        // The model's shaft is straight from the sheath, so it moves the tip along the sheath's
        // axis when inserted. Inside a curved vessel a pushed catheter follows itself: the tip
        // goes where it points. That is the insertion column the step uses; with the sheath's,
        // the servo at the top of the arch sees no use for insertion (the route runs across the
        // sheath's axis there) and stops short of every branch.
        columns[0] = heading
        let ahead = k + 4 < count ? k + 4 : count - 1
        let back = progress
        var tangent = points[ahead] - points[back]
        let tl = tangent.length
        tangent = tl > 1e-9 ? tangent * (1 / tl) : heading
        if let m = manoeuvre { tangent = m.heading }
        headingCosine = heading.dot(tangent)
        let lumen = radius[progress]
        let toTarget = target - tip
        let targetDistance = toTarget.length
        aimCosine = targetDistance > 1e-9 ? heading.dot(toTarget * (1 / targetDistance)) : 1
        // Within `finalApproach` of the goal the direction to it says little about the
        // heading (a tip 0.6 mm beside it points across it), and gating the push there
        // stalls the last fraction of a millimetre short.
        let aligned = goalDistance <= finalApproach ? 1 : ramp(aimCosine, from: alignmentStop, to: alignment)
        // Off the route is where the engagement takes the tip: not gated on it.
        let inside = manoeuvre != nil ? 1 : 1 - ramp(bestDistance, from: max(1, steerOnly * lumen), to: max(1.5, lumen))
        // The push at the sheath gates every advance, the manoeuvres' too.
        advanceFactor = aligned * inside * forceGate(push)
        // Aim from where the estimate says the tip is (the model may lag it by the latency).
        var error = toTarget
        if targetDistance > dls.maxError { error = error * (dls.maxError / targetDistance) }
        let share = min(1, gain * dt)
        error = error * share
        // Two tasks in one weighted damped least-squares step: the tip position towards the
        // lookahead point, and the tip heading towards the route's direction (small-angle
        // error, weighted as `headingWeight` mm per rad). With z = W^½ Δq and J̃ = J W^½:
        // z = (J̃ᵀ J̃ + λ² I)⁻¹ J̃ᵀ e. Roll is weighted down — near a straight bend it barely moves
        // the tip, and an unweighted solve swings it from limit to limit.
        var headingColumns = InlineArray<8, Vec3>(repeating: .zero)
        for j in 0..<n {
            var qs = reference
            let step = j == 1 ? 1e-6 : 1e-5
            qs[j] += step
            headingColumns[j] = (correction.tipPose(model, qs).rotation.c2 - heading) * (headingWeight / step)
        }
        var headingError = tangent - heading
        headingError -= heading * headingError.dot(heading)
        // The heading matters for turning into a branch; at the end of the route it would only
        // pull against the last millimetres, so it fades out over the last lookahead.
        let headingFade = lookahead > 0 && manoeuvre == nil ? min(1, goalDistance / lookahead) : 1
        headingError = headingError * (headingWeight * share * headingFade)
        for j in 0..<n { headingColumns[j] = headingColumns[j] * headingFade }
        // A bending section at its largest bend cannot bend further: a step that asks for more
        // there is clamped to nothing, and since the step is one solve, the other joints' share
        // assumed it happened. Such a section is solved again with its outward direction taken
        // out, so the turn comes from turning its bending plane and from the other joints.
        var z = InlineArray<8, Double>(repeating: 0)
        var pass = 0
        while pass < 2 {
            var normal = InlineArray<64, Double>(repeating: 0)
            var rhs = InlineArray<8, Double>(repeating: 0)
            for i in 0..<n {
                let wi = squareRootOf(jointWeight(i))
                rhs[i] = (columns[i].dot(error) + headingColumns[i].dot(headingError)) * wi
                for j in 0..<n {
                    let wj = squareRootOf(jointWeight(j))
                    normal[i * 8 + j] = (columns[i].dot(columns[j]) + headingColumns[i].dot(headingColumns[j])) * wi * wj
                }
                normal[i * 8 + i] += dls.damping * dls.damping
            }
            z = solve8(&normal, rhs, n)
            pass += 1
            var saturated = false
            for section in 0..<model.sectionCount {
                let a = 2 + 2 * section, b = a + 1
                let ta = reference[a], tb = reference[b]
                let bend = squareRootOf(ta * ta + tb * tb)
                let limit = model.maxBend[section] * model.tendonRadius[section]
                guard bend > 0.97 * limit, bend > 0 else { continue }
                let ua = ta / bend, ub = tb / bend
                if z[a] * ua + z[b] * ub <= 0 { continue }
                saturated = true
                let c = columns[a] * ua + columns[b] * ub, h = headingColumns[a] * ua + headingColumns[b] * ub
                columns[a] -= c * ua; columns[b] -= c * ub
                headingColumns[a] -= h * ua; headingColumns[b] -= h * ub
            }
            if !saturated { break }
        }
        // Scale the whole step into the speed limits (keeps its direction).
        var scale = 1.0
        var proposal = reference
        for j in 0..<n {
            let step = z[j] * squareRootOf(jointWeight(j))
            let limit = maxStep[j]
            if abs(step) * scale > limit, abs(step) > 0 { scale = limit / abs(step) }
        }
        for j in 0..<n { proposal[j] = reference[j] + z[j] * squareRootOf(jointWeight(j)) * scale }
        stepScale = scale
        // Engaged in a hairpin branch the shaft behind the tip lies round the corner: pushed
        // at full speed it bows into the parent and throws the tip past the target.
        let engagedScale = hairpinStage == .engaged ? engagedAdvance : 1
        // Steer before advancing (the insertion joint is joint 0).
        proposedInsertion = (proposal[0] - reference[0]) / max(dt, 1e-9)
        var retreating = false, engaging = false
        if manoeuvre != nil, phase == .hooking {
            proposal[0] = reference[0]
        } else if manoeuvre != nil, phase == .engaging {
            // Withdrawn slowly with the bend held at the branch: the hooked tip slides back
            // along the parent's wall until it drops into the opening.
            proposal[0] = reference[0] - engageSpeed * dt
            engaging = true
        } else if manoeuvre != nil {
            if proposal[0] > reference[0] + advanceFactor * maxStep[0] { proposal[0] = reference[0] + advanceFactor * maxStep[0] }
        } else if retreatLeft > 0 {
            let step = backOutSpeed * dt
            proposal[0] = reference[0] - step
            retreatLeft -= step
            retreating = true
            // The bend comes out on the way back: a stalled tip is usually one the bend holds
            // against a wall, and the same bend would take it back to the same place. From
            // straight, the next approach starts from how the vessel lays the catheter.
            var j = 2
            while j < n {
                let relax = maxStep[j]
                proposal[j] = reference[j] > relax ? reference[j] - relax : (reference[j] < -relax ? reference[j] + relax : 0)
                j += 1
            }
        } else if bestDistance > lumen {
            // Out of the route's lumen: pulled back, the faster the further out, while the
            // bending keeps turning the tip towards the route. Just at the wall the ramp asks
            // for nothing, so the step's own retraction (a tip past the target) stands.
            let out = ramp(bestDistance, from: lumen, to: lumen + backOut)
            proposal[0] = min(reference[0] - out * backOutSpeed * dt, proposal[0])
        } else if aimLeft > 0 {
            // Aiming: insertion stays until the tip points the way on, or the time is up.
            proposal[0] = reference[0]
            aimLeft = aimCosine >= alignment ? 0 : aimLeft - dt
        } else if proposal[0] > reference[0] + advanceFactor * engagedScale * maxStep[0] {
            proposal[0] = reference[0] + advanceFactor * engagedScale * maxStep[0]
        }
        // Withdrawal under tension, as the advance under a push above (`pushLimit`). A retreat
        // that cannot be pulled back waits, held, until the tension eases.
        if proposal[0] < reference[0] {
            let pull = forceGate(-push)
            if pull < 1 {
                if retreating { retreatLeft += (reference[0] - proposal[0]) * (1 - pull) }
                proposal[0] = reference[0] - (reference[0] - proposal[0]) * pull
            }
        }
        let limited = model.clampToLimits(proposal)
        // What the engagement withdrew, not what it asked for: held by tension (or at the end
        // of travel), a hooked tip has not slid back along the parent.
        if engaging { withdrawnWhileHooked += reference[0] - limited[0] }
        if retreatLeft <= 0, aimLeft <= 0 {
            if limited[0] > reference[0] {
                pushedSinceProgress += limited[0] - reference[0]
            } else if bestGoal.isFinite, limited[0] < reference[0] {
                pulledNearEnd += reference[0] - limited[0]
                if pulledNearEnd >= finalPullBack { restartPushCount() }
            }
        }
        for j in 0..<reference.count {
            command.velocity[j] = dt > 0 ? (limited[j] - reference[j]) / dt : 0
        }
        reference = limited
        command.position = reference
        command.mode = .position
        command.enable = true
    }

    /// Gauss–Jordan elimination with partial pivoting on the leading n × n block of an 8 × 8
    /// system (zero for a singular one: the servo then holds its reference).
    @_noAllocation @_noLocks
    func solve8(_ a: inout InlineArray<64, Double>, _ b: InlineArray<8, Double>, _ n: Int) -> InlineArray<8, Double> {
        var x = b
        for c in 0..<n {
            var p = c
            var r = c + 1
            while r < n { if abs(a[r * 8 + c]) > abs(a[p * 8 + c]) { p = r }; r += 1 }
            if p != c {
                for k in 0..<8 { let t = a[c * 8 + k]; a[c * 8 + k] = a[p * 8 + k]; a[p * 8 + k] = t }
                let t = x[c]; x[c] = x[p]; x[p] = t
            }
            let pivot = a[c * 8 + c]
            if !(abs(pivot) > 1e-15) { return InlineArray(repeating: 0) }
            for r in 0..<n where r != c {
                let f = a[r * 8 + c] / pivot
                if f == 0 { continue }
                for k in c..<8 { a[r * 8 + k] -= f * a[c * 8 + k] }
                x[r] -= f * x[c]
            }
        }
        for c in 0..<n { x[c] /= a[c * 8 + c] }
        return x
    }

    /// How much of a motion that loads the sheath by `load` N (a push advancing, a pull
    /// withdrawing) may go on: all of it up to `pushEase` × the limit, none from `pushStall` × it.
    @_noAllocation @_noLocks @inline(__always)
    func forceGate(_ load: Double) -> Double {
        1 - ramp(load, from: pushEase * pushLimit, to: pushStall * pushLimit)
    }

    /// 0 at or below `a`, 1 at or above `b`, linear between.
    @_noAllocation @_noLocks @inline(__always)
    func ramp(_ x: Double, from a: Double, to b: Double) -> Double {
        if !(x > a) { return 0 }
        if x >= b || b <= a { return 1 }
        return (x - a) / (b - a)
    }

    @_noAllocation @_noLocks @inline(__always)
    func jointWeight(_ j: Int) -> Double {
        if j == 1 { return rollWeight }
        if j == 0 { return retreatLeft > 0 || aimLeft > 0 || hairpinStage == .hooking || hairpinStage == .engaging ? 0 : 1 }
        return 1
    }

    @_noAllocation @_noLocks
    mutating func holdAtReference(_ command: inout JointCommand) {
        command.position = reference
        for j in 0..<reference.count { command.velocity[j] = 0 }
        command.mode = .position
        command.enable = true
    }
}

/// A route's vertices by arc length (mm from its first point), and the point and radius at any
/// arc length between them: what route planning (rounding corners, finding hairpins) walks.
/// Not for the cycle: it allocates.
struct RoutePolyline {
    let route: [(point: Vec3, radius: Double)]
    /// Arc length at each vertex.
    let arc: [Double]

    init(_ route: [(point: Vec3, radius: Double)]) {
        self.route = route
        var arc = route.isEmpty ? [] : [0.0]
        for i in route.indices.dropFirst() { arc.append(arc[i - 1] + (route[i].point - route[i - 1].point).length) }
        self.arc = arc
    }

    /// The point and radius at arc length `s`, clamped to the route (at least two vertices).
    func at(_ s: Double) -> (point: Vec3, radius: Double) {
        var i = 1
        while i < route.count - 1, arc[i] < s { i += 1 }
        let span = arc[i] - arc[i - 1]
        let f = span > 0 ? max(0, min(1, (s - arc[i - 1]) / span)) : 0
        return (route[i - 1].point + (route[i].point - route[i - 1].point) * f,
                route[i - 1].radius + (route[i].radius - route[i - 1].radius) * f)
    }
}
