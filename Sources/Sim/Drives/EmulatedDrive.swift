import Core

/// The physical and control parameters of one emulated drive axis (motor, gearbox, encoder,
/// the drive's own cascaded position/velocity loop). Joint units are mm or rad, as the axis.
public struct DriveAxisModel: Sendable, Equatable, Codable {
    /// Motor radians per joint unit (gear ratio × screw/roller lead conversion).
    public var motorRadPerUnit: Double
    /// Encoder counts per motor revolution (quantisation of every measurement).
    public var encoderCountsPerRev: Double
    /// Rotor + reflected load inertia at the motor (kg·m²).
    public var inertia: Double
    /// Torque constant (N·m/A).
    public var torqueConstant: Double
    /// Viscous friction at the motor (N·m·s/rad) and Coulomb friction (N·m).
    public var viscousFriction: Double
    public var coulombFriction: Double
    /// Lost motion between motor and joint (joint units, full width).
    public var backlash: Double
    /// Largest joint speed (units/s) and acceleration (units/s²) the drive's profile allows.
    public var maxVelocity: Double
    public var maxAcceleration: Double
    /// Continuous current limit (A); above `tripCurrent` for `tripTime` the drive faults.
    public var currentLimit: Double
    public var tripCurrent: Double
    public var tripTime: Double
    /// Position loop gain (1/s) and velocity PI gains (A·s/rad, A/rad) at the motor.
    public var positionGain: Double
    public var velocityGain: Double
    public var velocityIntegralGain: Double
    /// The enable input's watchdog (s): without a refresh for this long the drive disables itself.
    public var enableWatchdog: Double
    /// The dynamic brake (Ω, windings plus brake resistor): with its power stage off the drive
    /// shorts the motor's windings through it, and the back-EMF brakes the motor with a torque
    /// Kt²·ω / R. nil: none, and an unpowered motor coasts on its friction alone, which for this
    /// rotor is seconds and millimetres of travel.
    public var dynamicBrakeOhms: Double? = nil

    /// A small brushless servo with a planetary gearbox driving a linear stage (mm) or a roller (rad).
    public static func catheterAxis(unit: AxisSpec.Unit, maxVelocity: Double) -> DriveAxisModel {
        DriveAxisModel(
            motorRadPerUnit: unit == .millimetre ? 2 * .pi * 20 / 2 : 2 * .pi * 20,  // 20:1, 2 mm lead
            encoderCountsPerRev: 4096, inertia: 2e-6, torqueConstant: 0.02,
            viscousFriction: 1e-6, coulombFriction: 2e-4, backlash: unit == .millimetre ? 0.005 : 0.002,
            maxVelocity: maxVelocity, maxAcceleration: 5 * maxVelocity,
            currentLimit: 2, tripCurrent: 2.5, tripTime: 0.002,
            // Velocity loop ~1000 rad/s (Kv·Kt/J), PI zero at 200 rad/s; position loop 150 1/s.
            positionGain: 150, velocityGain: 0.1, velocityIntegralGain: 20,
            enableWatchdog: 0.02,
            // 10 Ω: the motor's time constant unpowered is J·R/Kt² = 50 ms (0.75 mm from 15 mm/s),
            // the braking current Kt·ω/R 1.9 A at 15 mm/s. Without it the rotor
            // coasted 8 mm of insertion after a category-0 stop in a live run (27 mm from 20 mm/s), further than the
            // monitor's stopping model (stop_deceleration) lets any stop go.
            dynamicBrakeOhms: 10)
    }
}

/// Faults that can be injected into an emulated axis.
public struct DriveFaultInjection: OptionSet, Sendable {
    public let rawValue: UInt8
    @_noAllocation @_noLocks
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The encoder stops updating: the drive (and the host) see a stale position.
    @inlinable public static var encoderFreeze: DriveFaultInjection { @_noAllocation @_noLocks get { DriveFaultInjection(rawValue: 1 << 0) } }
    /// The current command saturates positive whatever the loop asks: the axis runs away.
    @inlinable public static var runaway: DriveFaultInjection { @_noAllocation @_noLocks get { DriveFaultInjection(rawValue: 1 << 1) } }
    /// The current measurement jumps past the trip level.
    @inlinable public static var overcurrent: DriveFaultInjection { @_noAllocation @_noLocks get { DriveFaultInjection(rawValue: 1 << 2) } }
    /// The mechanism jams: motor and load stop dead whatever the current.
    @inlinable public static var jam: DriveFaultInjection { @_noAllocation @_noLocks get { DriveFaultInjection(rawValue: 1 << 3) } }
}

/// Why an emulated drive disabled itself.
public enum DriveFault: UInt8, Sendable, Equatable {
    case none = 0
    case watchdog = 1
    case overcurrent = 2
    /// The safety line's watchdog expired: the independent monitor stopped refreshing it.
    case safetyWatchdog = 3
}

/// One emulated drive axis: motor dynamics with friction, a gearbox with backlash, a quantising
/// motor encoder, the drive's own position → velocity → current cascade with profile limits, an
/// enable input with its own watchdog, and fault injection. Integrated at 10 kHz inside `step`.
public struct EmulatedDriveAxis: Sendable {
    public let model: DriveAxisModel
    /// Joint position of the load (true, not measured), joint units.
    public private(set) var load: Double
    /// Motor angle (rad) and speed (rad/s).
    public private(set) var motorAngle: Double
    public private(set) var motorSpeed: Double = 0
    /// The encoder's last reading, quantised (motor rad).
    public private(set) var encoder: Double
    /// Current (A).
    public private(set) var current: Double = 0
    public private(set) var enabled = false
    public private(set) var fault = DriveFault.none
    public var injected: DriveFaultInjection = []

    var integral = 0.0
    var profileSpeed = 0.0
    var overcurrentTime = 0.0
    var sinceRefresh = 0.0
    var enableRequested = false

    // The safety line: a safe-torque-off input driven by the independent monitor, with its own
    // watchdog, and a quick-stop input. Unarmed (the default) it plays no part.
    public private(set) var safetyLineArmed = false
    var safetyPermit = false
    var safetyWatchdog = 0.0
    var sinceSafetyRefresh = 0.0
    /// True while the monitor asks for a controlled stop: the drive decelerates at its
    /// acceleration limit to standstill and holds there, ignoring the host's targets.
    public private(set) var quickStop = false

    public init(model: DriveAxisModel, position: Double) {
        self.model = model
        load = position
        motorAngle = position * model.motorRadPerUnit
        encoder = (motorAngle / Self.countAngle(model)).rounded() * Self.countAngle(model)
    }

    @_noAllocation @_noLocks
    static func countAngle(_ m: DriveAxisModel) -> Double { 2 * .pi / m.encoderCountsPerRev }

    /// True while a fault is latched.
    public var faulted: Bool { @_noAllocation @_noLocks get { fault.rawValue != 0 } }

    /// The measured joint position (from the quantised motor encoder), joint units.
    public var measuredPosition: Double { @_noAllocation @_noLocks get { encoder / model.motorRadPerUnit } }
    /// The measured joint speed, joint units/s.
    public var measuredVelocity: Double { @_noAllocation @_noLocks get { motorSpeed / model.motorRadPerUnit } }

    /// The current the drive measures (A): the real one, or the injected overcurrent.
    public var measuredCurrent: Double {
        @_noAllocation @_noLocks get { injected.contains(.overcurrent) ? model.tripCurrent * 1.5 : current }
    }

    /// True when the safety line lets the power stage on (always, when unarmed).
    public var safetyAllowsPower: Bool {
        @_noAllocation @_noLocks get {
            if !safetyLineArmed { return true }
            return safetyPermit ? sinceSafetyRefresh <= safetyWatchdog : false
        }
    }

    /// The enable input: true asks for power; every call refreshes the watchdog.
    @_noAllocation @_noLocks
    public mutating func setEnable(_ on: Bool) {
        enableRequested = on
        sinceRefresh = 0
        if !on { enabled = false }
        if on, fault.rawValue == 0, safetyAllowsPower { enabled = true }
    }

    /// Wires the safety line: from now on the power stage is on only while the line permits it
    /// and is refreshed at least every `watchdog` seconds. Starts without permission.
    public mutating func armSafetyLine(watchdog: Double) {
        safetyLineArmed = true
        safetyWatchdog = watchdog
        safetyPermit = false
        sinceSafetyRefresh = 0
    }

    /// The monitor's refresh of the safety line: `permit` false removes power at once (safe
    /// torque off); `quickStop` makes a controlled stop.
    @_noAllocation @_noLocks
    public mutating func refreshSafetyLine(permit: Bool, quickStop: Bool) {
        safetyPermit = permit
        self.quickStop = quickStop
        sinceSafetyRefresh = 0
        if !permit { enabled = false }
    }

    /// Clears a latched fault (the enable must be asked for again).
    @_noAllocation @_noLocks
    public mutating func resetFault() {
        fault = DriveFault(rawValue: 0)!
        overcurrentTime = 0
    }

    /// Advances `dt` seconds following `target` (joint units) with `velocityFeedForward`.
    @_noAllocation @_noLocks
    public mutating func step(target: Double, velocityFeedForward: Double = 0, dt: Double) {
        let h = 1e-4
        var remaining = dt
        while remaining > 1e-12 {
            let s = min(h, remaining)
            substep(target: target, feedForward: velocityFeedForward, h: s)
            remaining -= s
        }
    }

    @_noAllocation @_noLocks
    mutating func substep(target: Double, feedForward: Double, h: Double) {
        let m = model
        sinceRefresh += h
        if enabled, sinceRefresh > m.enableWatchdog {
            enabled = false
            fault = .watchdog
        }
        if safetyLineArmed {
            sinceSafetyRefresh += h
            if sinceSafetyRefresh > safetyWatchdog {
                if enabled { fault = .safetyWatchdog }
                enabled = false
            }
            if !safetyPermit { enabled = false }
        }
        // The drive's loop works on its own (possibly frozen) encoder.
        var command = 0.0
        if enabled {
            let error = target - measuredPosition
            // Proportional, but never faster than the speed from which the axis can still brake
            // to the target at its acceleration limit: no overshoot on a step.
            let brake = squareRootOf(2 * m.maxAcceleration * abs(error))
            var v = (error >= 0 ? 1 : -1) * min(m.positionGain * abs(error), brake) + feedForward
            v = min(max(v, -m.maxVelocity), m.maxVelocity)
            if quickStop { v = 0 }
            // Acceleration limit on the profile speed.
            let dv = m.maxAcceleration * h
            profileSpeed = min(max(v, profileSpeed - dv), profileSpeed + dv)
            let speedError = profileSpeed * m.motorRadPerUnit - motorSpeed
            integral += speedError * h
            command = m.velocityGain * speedError + m.velocityIntegralGain * integral
            if abs(command) > m.currentLimit {
                // Anti-windup: hold the integral where it saturates.
                integral -= speedError * h
                command = min(max(command, -m.currentLimit), m.currentLimit)
            }
            if injected.contains(.runaway) { command = m.currentLimit }
        } else {
            integral = 0
            profileSpeed = measuredVelocity
        }
        current = command
        let measuredCurrent = injected.contains(.overcurrent) ? m.tripCurrent * 1.5 : abs(current)
        if enabled, measuredCurrent > m.tripCurrent {
            overcurrentTime += h
            if overcurrentTime >= m.tripTime {
                enabled = false
                fault = .overcurrent
                current = 0
            }
        } else {
            overcurrentTime = 0
        }
        // Motor dynamics with viscous and Coulomb friction (sticking when the drive torque is below it).
        var torque = m.torqueConstant * current
        if !enabled, case .some(let ohms) = m.dynamicBrakeOhms, ohms > 0 {
            // The brake's current flows in the shorted windings, not through the power stage:
            // `current` (what the drive measures and reports) stays 0.
            torque -= m.torqueConstant * m.torqueConstant * motorSpeed / ohms
        }
        if injected.contains(.jam) {
            motorSpeed = 0
        } else if motorSpeed == 0, abs(torque) <= m.coulombFriction {
            motorSpeed = 0
        } else {
            let sign: Double = motorSpeed != 0 ? (motorSpeed > 0 ? 1 : -1) : (torque > 0 ? 1 : -1)
            let accel = (torque - m.viscousFriction * motorSpeed - m.coulombFriction * sign) / m.inertia
            let next = motorSpeed + accel * h
            // Friction cannot reverse the motion within a step: it stops it.
            motorSpeed = (next > 0) != (motorSpeed > 0) && motorSpeed != 0 && abs(torque) <= m.coulombFriction ? 0 : next
        }
        motorAngle += motorSpeed * h
        // Backlash: the load follows the motor only once the gap is taken up.
        let drive = motorAngle / m.motorRadPerUnit
        let half = m.backlash / 2
        if drive - load > half { load = drive - half } else if load - drive > half { load = drive + half }
        if !injected.contains(.encoderFreeze) {
            let q = Self.countAngle(m)
            let c = motorAngle / q
            encoder = Double(Int64(c >= 0 ? c + 0.5 : c - 0.5)) * q  // nearest count
        }
    }
}
