/// How much the tip estimate can be trusted right now.
public enum EstimateHealth: UInt8, Sendable, Equatable, Codable {
    /// An image measurement was fused recently.
    case imageFresh = 0
    /// Kinematics carries the estimate between images (or with none yet, for a while).
    case coasting = 1
    /// Too long without images, or too uncertain: motion must stop.
    case lost = 2
}

/// The fused catheter-tip estimate at one cycle.
public struct TipEstimate: Sendable, Equatable {
    /// mm, patient frame.
    public var position: Vec3
    /// mm², the position's covariance.
    public var covariance: Mat3
    public var health: EstimateHealth
    /// The cycle time the estimate is for (monotonic ns).
    public var time: Nanoseconds
    /// Acquisition time of the last fused image measurement (0 for none).
    public var lastImageAt: Nanoseconds

    @inlinable public init(position: Vec3 = .zero, covariance: Mat3 = .zero, health: EstimateHealth = .lost, time: Nanoseconds = 0,
                           lastImageAt: Nanoseconds = 0) {
        self.position = position; self.covariance = covariance; self.health = health; self.time = time; self.lastImageAt = lastImageAt
    }
}
