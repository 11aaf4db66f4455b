/// What the drives need to know about one joint: its unit, travel, speed and encoder scale.
/// Built from the robot file; shared by the control cycle, the drivers and the simulator.
public struct AxisSpec: Sendable, Equatable, Codable {
    public enum Unit: String, Sendable, Codable {
        case millimetre = "mm"
        case radian = "rad"
    }

    public var name: String
    public var unit: Unit
    /// Lower travel limit (mm or rad).
    public var lower: Double
    /// Upper travel limit (mm or rad).
    public var upper: Double
    /// Largest speed (mm/s or rad/s).
    public var maxVelocity: Double
    /// Encoder counts per mm or per rad at the joint.
    public var countsPerUnit: Double

    public init(name: String, unit: Unit, lower: Double, upper: Double, maxVelocity: Double, countsPerUnit: Double) {
        self.name = name
        self.unit = unit
        self.lower = lower
        self.upper = upper
        self.maxVelocity = maxVelocity
        self.countsPerUnit = countsPerUnit
    }
}
