import Core

/// A scripted tip path for the demo and the benchmarks: starting where the tip is, the path
/// opens smoothly into circles in the plane across the catheter's base axis while the tip
/// moves in and out along that axis. Position and velocity are continuous, and the path
/// starts at rest, so a servo can follow it from the first cycle.
public struct TipPath: Sendable, Equatable {
    /// Circle radius (mm).
    public var radius: Double
    /// Time for one circle (s).
    public var circlePeriod: Double
    /// Peak-to-peak travel along the base axis (mm).
    public var axialTravel: Double
    /// Time for one in-and-out stroke (s).
    public var axialPeriod: Double
    /// Time over which the circle opens from radius 0 to `radius` (s).
    public var approach: Double

    public init(radius: Double = 8, circlePeriod: Double = 4, axialTravel: Double = 6, axialPeriod: Double = 6, approach: Double = 1.5) {
        self.radius = radius
        self.circlePeriod = circlePeriod
        self.axialTravel = axialTravel
        self.axialPeriod = axialPeriod
        self.approach = approach
    }

    /// The target at `t` seconds after the start, for a tip that started at `start`, with the
    /// catheter's base frame `axes` (its columns: across, across, along the catheter).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func target(at t: Double, start: Vec3, axes: Mat3) -> Vec3 {
        let time = max(0, t)
        // Smoothstep opening: zero value and slope at t = 0, full radius after `approach`.
        let u = approach > 0 ? min(1, time / approach) : 1
        let open = u * u * (3 - 2 * u)
        let w = 2 * Double.pi / circlePeriod
        let wz = 2 * Double.pi / axialPeriod
        let r = radius * open
        // The circle passes through the start point (its centre sits −r along the first axis),
        // so the path starts where the tip is.
        let across = axes.c0 * (r * (cosine(w * time) - 1)) + axes.c1 * (r * sine(w * time))
        let along = axes.c2 * (0.5 * axialTravel * (1 - cosine(wz * time)) * open)
        return start + across + along
    }
}
