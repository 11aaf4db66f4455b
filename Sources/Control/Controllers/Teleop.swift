import Core

/// A second-order Butterworth low-pass (bilinear transform, one channel). Physiological tremor
/// lies at 8–12 Hz and deliberate hand motion below about 2 Hz; a 2 Hz corner removes the first
/// by more than 25 dB and passes the second with little lag.
public struct LowPass2: Sendable {
    let b0: Double, b1: Double, b2: Double, a1: Double, a2: Double
    var x1 = 0.0, x2 = 0.0, y1 = 0.0, y2 = 0.0

    /// `cutoffHz` at sample interval `dt`; a cutoff at or above Nyquist passes the input through.
    public init(cutoffHz: Double, dt: Double) {
        let nyquist = 0.5 / dt
        guard cutoffHz.isFinite, dt.isFinite, dt > 0, cutoffHz > 0, cutoffHz < 0.95 * nyquist else {
            b0 = 1; b1 = 0; b2 = 0; a1 = 0; a2 = 0
            return
        }
        let k = (Double.pi * cutoffHz * dt).tangentValue
        let q = 2.0.squareRoot()
        let norm = 1 / (1 + q * k + k * k)
        b0 = k * k * norm
        b1 = 2 * b0
        b2 = b0
        a1 = 2 * (k * k - 1) * norm
        a2 = (1 - q * k + k * k) * norm
    }

    /// Starts at rest on `value` (no transient).
    @_noAllocation @_noLocks
    public mutating func reset(_ value: Double) { x1 = value; x2 = value; y1 = value; y2 = value }

    @_noAllocation @_noLocks
    public mutating func filter(_ x: Double) -> Double {
        let y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2 = x1; x1 = x; y2 = y1; y1 = y
        return y
    }
}

extension Double {
    /// tan, through the audited maths of Core (no libm symbol resolution in the cycle).
    @inline(__always) var tangentValue: Double { sine(self) / cosine(self) }
}

/// Settings of the teleoperation mapping.
public struct TeleopSettings: Sendable, Equatable {
    /// Tip millimetres per millimetre of the hand on a position device (a stylus, a tracked
    /// handle): below 1 the catheter moves less than the hand.
    public var motionScale = 0.25
    /// Full deflection of a velocity device (joystick, gamepad, the console's buttons) asks
    /// for this fraction of each joint's speed limit.
    public var velocityFraction = 0.5
    /// Deflections smaller than this (of full scale) count as zero: a resting stick drifts.
    public var deadband = 0.05
    /// Corner of the tremor filter (Hz), applied to both kinds of device.
    public var tremorCutoffHz = 2.0
    /// mm — the most one clutched stroke may move the tip target (a runaway device, a dropped stylus).
    public var maxStrokeMM = 30.0
    public init() {}
}

/// One sample from the operator's input device and switches.
public struct TeleopSample: Sendable {
    /// The deadman switch: nothing moves unless it is held.
    public var deadman: Bool
    /// The clutch of a position device: the hand moves the tip only while it is engaged; released,
    /// the hand can be repositioned without moving anything.
    public var clutch: Bool
    /// Position device: the hand's position (mm, already in the patient frame the target lives in).
    public var hand: Vec3
    /// Velocity device: deflection per joint, −1…1.
    public var axes: JointVector

    public init(deadman: Bool, clutch: Bool = false, hand: Vec3 = .zero, axes: JointVector) {
        self.deadman = deadman; self.clutch = clutch; self.hand = hand; self.axes = axes
    }
}

/// What the operator asks for this cycle: joint velocities (jog) and an offset of the tip
/// target (tip servo). Zero and inactive without the deadman.
public struct TeleopDemand: Sendable {
    public var jointVelocity: JointVector
    /// mm — the tip target's offset from where it was when the teleop session started.
    public var tipOffset: Vec3
    /// True while the deadman is held and the input was usable.
    public var active: Bool
}

/// Maps any input device onto motion demands: a deadman (motion only while it is held), a
/// clutch with motion scaling for position devices, a deadband and per-joint velocity limits
/// for velocity devices, and a low-pass tremor filter on both. Non-finite input is no motion
/// and is counted. Runs in the cycle: no allocation.
public struct TeleopMapping: Sendable {
    public let settings: TeleopSettings
    public let maxVelocity: JointVector
    var handFilter: (LowPass2, LowPass2, LowPass2)
    var axisFilter: InlineArray<8, LowPass2>
    var anchor = Vec3.zero           // filtered hand position when the stroke began
    var strokeBase = Vec3.zero       // tip offset when the stroke began
    var engaged = false
    public private(set) var tipOffset = Vec3.zero
    public private(set) var rejectedSamples = 0

    public init(settings: TeleopSettings = TeleopSettings(), maxVelocity: JointVector, dt: Double) {
        self.settings = settings
        self.maxVelocity = maxVelocity
        let f = LowPass2(cutoffHz: settings.tremorCutoffHz, dt: dt)
        handFilter = (f, f, f)
        axisFilter = InlineArray(repeating: f)
    }

    /// Forgets the session's tip offset (a new target was set).
    @_noAllocation @_noLocks
    public mutating func resetOffset() {
        tipOffset = .zero
        strokeBase = .zero
        engaged = false
    }

    @_noAllocation @_noLocks
    public mutating func update(_ sample: TeleopSample) -> TeleopDemand {
        var demand = TeleopDemand(jointVelocity: JointVector(count: maxVelocity.count), tipOffset: tipOffset, active: false)
        var usable = sample.hand.isFinite
        for j in 0..<min(sample.axes.count, maxVelocity.count) where !sample.axes[j].isFinite { usable = false }
        guard sample.deadman, usable else {
            if !usable { rejectedSamples += 1 }
            // Released (or unusable): everything stops, and the next stroke starts afresh where
            // the hand then is, so letting go and grasping again never jumps the tip.
            engaged = false
            for j in 0..<maxVelocity.count { axisFilter[j].reset(0) }
            return demand
        }
        // Position device: strokes while the clutch is engaged.
        let hand = Vec3(handFilter.0.filter(sample.hand.x), handFilter.1.filter(sample.hand.y), handFilter.2.filter(sample.hand.z))
        if sample.clutch {
            if !engaged {
                engaged = true
                // Restart the filters on the hand as it is now: no transient from where it was.
                handFilter.0.reset(sample.hand.x); handFilter.1.reset(sample.hand.y); handFilter.2.reset(sample.hand.z)
                anchor = sample.hand
                strokeBase = tipOffset
            } else {
                var stroke = (hand - anchor) * settings.motionScale
                let length = stroke.length
                if length > settings.maxStrokeMM { stroke = stroke * (settings.maxStrokeMM / length) }
                tipOffset = strokeBase + stroke
            }
        } else {
            engaged = false
        }
        // Velocity device: deadband, tremor filter, per-joint limits.
        for j in 0..<maxVelocity.count {
            var a = j < sample.axes.count ? sample.axes[j] : 0
            a = min(max(a, -1), 1)
            let magnitude = abs(a) <= settings.deadband ? 0 : (abs(a) - settings.deadband) / (1 - settings.deadband)
            let shaped = axisFilter[j].filter(a < 0 ? -magnitude : magnitude)
            let limit = maxVelocity[j] * settings.velocityFraction
            demand.jointVelocity[j] = min(max(shaped * limit, -limit), limit)
        }
        demand.tipOffset = tipOffset
        demand.active = true
        return demand
    }
}
