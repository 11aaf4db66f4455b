import Core

/// The last stage of every joint command, whoever produced it (jog, tip servo, hold): the
/// reference moves with each joint's speed at most `maxVelocity` and its change of speed at most
/// `maxAcceleration`, stops at its travel limits instead of running into them, and comes to rest
/// on a position target without overshoot. A drive asked to jump would follow at its own current
/// limit, which inside a vessel is the wrong place to find out how fast that is.
public struct MotionLimiter: Sendable {
    public let maxVelocity: JointVector
    public let maxAcceleration: JointVector
    public let lower: JointVector
    public let upper: JointVector
    /// The limited reference and its velocity.
    public private(set) var position: JointVector
    public private(set) var velocity: JointVector
    /// Targets or demands that were not finite; each joint concerned was braked instead.
    public private(set) var rejectedInputs = 0

    /// Limits for `model`'s joints: its speed limits, and the acceleration that reaches them in
    /// `accelerationTime` seconds.
    public init(model: CatheterModel, accelerationTime: Double = 0.2, start: JointVector) {
        var a = model.maxVelocity
        let t = accelerationTime.isFinite && accelerationTime > 0 ? accelerationTime : 0.2
        for j in 0..<a.count { a[j] /= t }
        self.init(maxVelocity: model.maxVelocity, maxAcceleration: a, lower: model.lowerLimit, upper: model.upperLimit, start: start)
    }

    public init(maxVelocity: JointVector, maxAcceleration: JointVector, lower: JointVector, upper: JointVector, start: JointVector) {
        self.maxVelocity = maxVelocity
        self.maxAcceleration = maxAcceleration
        self.lower = lower
        self.upper = upper
        position = start
        velocity = JointVector(count: start.count)
    }

    /// Starts again from `q` at rest (after power-up, or when the drives were moved by hand).
    @_noAllocation @_noLocks
    public mutating func reset(to q: JointVector) {
        position = q
        for j in 0..<velocity.count { velocity[j] = 0 }
    }

    /// True when every joint is at rest.
    public var isAtRest: Bool {
        @_noAllocation @_noLocks get {
            for j in 0..<velocity.count where velocity[j] != 0 { return false }
            return true
        }
    }

    /// The speed at which a joint `distance` away from where it must stand still can still stop
    /// there, braking at `a` in steps of `dt` (the discrete form of √(2 a d), which never
    /// overshoots).
    @_noAllocation @_noLocks @inline(__always)
    static func brakingSpeed(_ distance: Double, _ a: Double, _ dt: Double) -> Double {
        if distance <= 0 { return 0 }
        let ad = a * dt
        if ad <= 0 { return .infinity }
        let steps = squareRootOf(0.25 + 2 * distance / (ad * dt)) - 0.5
        return min(ad * steps, distance / dt)
    }

    /// One cycle towards position targets: each joint heads for its target (clamped into its
    /// travel) as fast as the limits allow and arrives at rest.
    @_noAllocation @_noLocks
    public mutating func step(toward target: JointVector, dt: Double) {
        guard dt > 0, dt.isFinite else { return }
        for j in 0..<position.count {
            var goal = j < target.count ? target[j] : position[j]
            if !goal.isFinite {
                rejectedInputs += 1
                advance(j, demand: 0, dt: dt)
                continue
            }
            goal = min(max(goal, lower[j]), upper[j])
            let e = goal - position[j]
            let speed = min(maxVelocity[j], MotionLimiter.brakingSpeed(abs(e), maxAcceleration[j], dt))
            advance(j, demand: e >= 0 ? speed : -speed, dt: dt, goal: goal)
        }
    }

    /// One cycle following velocity demands (jog), within the limits and braking before travel ends.
    @_noAllocation @_noLocks
    public mutating func step(velocity demand: JointVector, dt: Double) {
        guard dt > 0, dt.isFinite else { return }
        for j in 0..<position.count {
            var v = j < demand.count ? demand[j] : 0
            if !v.isFinite {
                rejectedInputs += 1
                v = 0
            }
            advance(j, demand: v, dt: dt)
        }
    }

    /// One cycle of a controlled stop: every joint brakes at its acceleration limit.
    @_noAllocation @_noLocks
    public mutating func stop(dt: Double) {
        guard dt > 0, dt.isFinite else { return }
        for j in 0..<position.count { advance(j, demand: 0, dt: dt) }
    }

    /// Moves joint `j` one step with the velocity nearest `demand` that the speed, acceleration
    /// and travel limits allow.
    @_noAllocation @_noLocks @inline(__always)
    mutating func advance(_ j: Int, demand: Double, dt: Double, goal: Double? = nil) {
        let vmax = maxVelocity[j], dv = maxAcceleration[j] * dt
        var v = min(max(demand, -vmax), vmax)
        // Room to brake before the travel limits.
        let up = MotionLimiter.brakingSpeed(upper[j] - position[j], maxAcceleration[j], dt)
        let down = MotionLimiter.brakingSpeed(position[j] - lower[j], maxAcceleration[j], dt)
        v = min(max(v, -down), up)
        let previous = velocity[j]
        v = min(max(v, previous - dv), previous + dv)
        var next = position[j] + v * dt
        // The braking speed ends on the goal; only rounding is left to remove.
        if let goal, abs(next - goal) < 1e-12 { next = goal }
        // Rounding must not carry a joint past its travel (one that starts outside may only return).
        if position[j] >= lower[j], position[j] <= upper[j] { next = min(max(next, lower[j]), upper[j]) }
        if abs(v) < 1e-12 { v = 0 }
        position[j] = next
        velocity[j] = v
    }
}
