import Core

/// A robot file: the catheter and the robot that drives it. Loaded from JSON or YAML through
/// `ConfigLoader`, which names the file and the field of anything missing, mistyped, unknown or
/// out of range.
///
/// Joints, in order: insertion (mm), roll (rad), then for each bending section the
/// displacements of its two antagonistic tendon pairs, x and y (mm).
public struct RobotDescription: ValidatedConfig, Equatable, Sendable {
    public struct Base: Decodable, Equatable, Sendable {
        /// (3) mm — the sheath exit in the world frame.
        public var positionMM: [Double]
        /// (3) rad — roll, pitch, yaw of the base; the catheter leaves along the base z axis.
        public var rpyRad: [Double]

        enum CodingKeys: String, CodingKey, CaseIterable {
            case positionMM = "position_mm"
            case rpyRad = "rpy_rad"
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            positionMM = try c.decode([Double].self, forKey: .positionMM)
            rpyRad = try c.decode([Double].self, forKey: .rpyRad)
        }
    }

    public struct Insertion: Decodable, Equatable, Sendable {
        public var minMM: Double
        public var maxMM: Double
        public var maxVelocityMMPerS: Double
        public var countsPerMM: Double

        enum CodingKeys: String, CodingKey, CaseIterable {
            case minMM = "min_mm", maxMM = "max_mm", maxVelocityMMPerS = "max_velocity_mm_s", countsPerMM = "counts_per_mm"
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            minMM = try c.decode(Double.self, forKey: .minMM)
            maxMM = try c.decode(Double.self, forKey: .maxMM)
            maxVelocityMMPerS = try c.decode(Double.self, forKey: .maxVelocityMMPerS)
            countsPerMM = try c.decode(Double.self, forKey: .countsPerMM)
        }
    }

    public struct Roll: Decodable, Equatable, Sendable {
        public var minRad: Double
        public var maxRad: Double
        public var maxVelocityRadPerS: Double
        public var countsPerRad: Double

        enum CodingKeys: String, CodingKey, CaseIterable {
            case minRad = "min_rad", maxRad = "max_rad", maxVelocityRadPerS = "max_velocity_rad_s", countsPerRad = "counts_per_rad"
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            minRad = try c.decode(Double.self, forKey: .minRad)
            maxRad = try c.decode(Double.self, forKey: .maxRad)
            maxVelocityRadPerS = try c.decode(Double.self, forKey: .maxVelocityRadPerS)
            countsPerRad = try c.decode(Double.self, forKey: .countsPerRad)
        }
    }

    /// A constant-curvature bending section bent by two antagonistic tendon pairs.
    public struct Section: Decodable, Equatable, Sendable {
        /// mm — arc length of the section.
        public var lengthMM: Double
        /// mm — distance of the tendons from the section's neutral axis.
        public var tendonRadiusMM: Double
        /// rad — the largest bending angle; the tendon travel is limited to radius × this.
        public var maxBendRad: Double
        /// mm/s — the tendon drives' largest speed.
        public var maxTendonVelocityMMPerS: Double
        public var countsPerMM: Double

        enum CodingKeys: String, CodingKey, CaseIterable {
            case lengthMM = "length_mm", tendonRadiusMM = "tendon_radius_mm", maxBendRad = "max_bend_rad"
            case maxTendonVelocityMMPerS = "max_tendon_velocity_mm_s", countsPerMM = "counts_per_mm"
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            lengthMM = try c.decode(Double.self, forKey: .lengthMM)
            tendonRadiusMM = try c.decode(Double.self, forKey: .tendonRadiusMM)
            maxBendRad = try c.decode(Double.self, forKey: .maxBendRad)
            maxTendonVelocityMMPerS = try c.decode(Double.self, forKey: .maxTendonVelocityMMPerS)
            countsPerMM = try c.decode(Double.self, forKey: .countsPerMM)
        }

        /// mm — the tendon travel that bends the section to `maxBendRad`.
        public var tendonLimitMM: Double { tendonRadiusMM * maxBendRad }
    }

    public var name: String
    public var base: Base
    public var insertion: Insertion
    public var roll: Roll
    public var sections: [Section]
    /// mm — the rigid tip segment beyond the last section.
    public var tipLengthMM: Double
    /// mm — the catheter's outer diameter (optional in the file: a 6 F, 2 mm, catheter when
    /// absent). The physics rod and the rendered catheter are this thick; the stiffness goes with
    /// its fourth power, so a microcatheter follows a coronary artery that a 6 F one wedges in.
    public var outerDiameterMM: Double

    public static let defaultOuterDiameterMM = 2.0

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, base, insertion, roll, sections
        case tipLengthMM = "tip_length_mm", outerDiameterMM = "outer_diameter_mm"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        base = try c.decode(Base.self, forKey: .base)
        insertion = try c.decode(Insertion.self, forKey: .insertion)
        roll = try c.decode(Roll.self, forKey: .roll)
        sections = try c.decode([Section].self, forKey: .sections)
        tipLengthMM = try c.decode(Double.self, forKey: .tipLengthMM)
        outerDiameterMM = try c.decodeIfPresent(Double.self, forKey: .outerDiameterMM) ?? Self.defaultOuterDiameterMM
    }

    public func validate(into v: inout ConfigValidator) {
        v.checkName(name, "name")
        v.check(base.positionMM.count == 3, "base.position_mm", "must hold 3 numbers (x, y, z), got \(base.positionMM.count)")
        v.check(base.rpyRad.count == 3, "base.rpy_rad", "must hold 3 numbers (roll, pitch, yaw), got \(base.rpyRad.count)")
        for (i, x) in base.positionMM.enumerated() { v.check(x, in: -1e4...1e4, "base.position_mm[\(i)]") }
        for (i, x) in base.rpyRad.enumerated() { v.check(x, in: -2 * .pi...2 * .pi, "base.rpy_rad[\(i)]") }

        v.check(insertion.minMM, in: -1000...5000, "insertion.min_mm")
        v.check(insertion.maxMM, in: -1000...5000, "insertion.max_mm")
        v.check(insertion.minMM < insertion.maxMM, "insertion", "min_mm (\(insertion.minMM)) must be below max_mm (\(insertion.maxMM))")
        v.check(insertion.maxVelocityMMPerS, in: 0.01...500, "insertion.max_velocity_mm_s")
        v.check(insertion.countsPerMM, in: 1...1e6, "insertion.counts_per_mm")

        v.check(roll.minRad, in: -8 * .pi...8 * .pi, "roll.min_rad")
        v.check(roll.maxRad, in: -8 * .pi...8 * .pi, "roll.max_rad")
        v.check(roll.minRad < roll.maxRad, "roll", "min_rad (\(roll.minRad)) must be below max_rad (\(roll.maxRad))")
        v.check(roll.maxVelocityRadPerS, in: 0.001...50, "roll.max_velocity_rad_s")
        v.check(roll.countsPerRad, in: 1...1e7, "roll.counts_per_rad")

        v.check((1...2).contains(sections.count), "sections", "must list 1 or 2 bending sections, got \(sections.count)")
        for (i, s) in sections.enumerated() {
            let f = "sections[\(i)]"
            v.check(s.lengthMM, in: 1...500, "\(f).length_mm")
            v.check(s.tendonRadiusMM, in: 0.05...20, "\(f).tendon_radius_mm")
            v.check(s.maxBendRad, in: 0.01...Double.pi, "\(f).max_bend_rad")
            v.check(s.maxTendonVelocityMMPerS, in: 0.001...200, "\(f).max_tendon_velocity_mm_s")
            v.check(s.countsPerMM, in: 1...1e7, "\(f).counts_per_mm")
        }
        v.check(tipLengthMM, in: 0...100, "tip_length_mm")
        v.check(outerDiameterMM, in: 0.2...10, "outer_diameter_mm")
    }

    /// The joints as the drives see them, in joint order.
    public var axes: [AxisSpec] {
        var a = [
            AxisSpec(name: "insertion", unit: .millimetre, lower: insertion.minMM, upper: insertion.maxMM,
                     maxVelocity: insertion.maxVelocityMMPerS, countsPerUnit: insertion.countsPerMM),
            AxisSpec(name: "roll", unit: .radian, lower: roll.minRad, upper: roll.maxRad,
                     maxVelocity: roll.maxVelocityRadPerS, countsPerUnit: roll.countsPerRad),
        ]
        for (i, s) in sections.enumerated() {
            for pair in ["x", "y"] {
                a.append(AxisSpec(name: "section\(i + 1).tendon_\(pair)", unit: .millimetre, lower: -s.tendonLimitMM, upper: s.tendonLimitMM,
                                  maxVelocity: s.maxTendonVelocityMMPerS, countsPerUnit: s.countsPerMM))
            }
        }
        return a
    }
}
