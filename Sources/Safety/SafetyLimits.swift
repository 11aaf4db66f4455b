import Core
import Foundation

/// The monitor's limits, from its own YAML file (never from the robot file the control stack
/// uses, and never constants in code). Every field is required and validated; a field the
/// format does not know is refused. See `safety/lumen-2s-limits.yaml` and docs/safety/hazards.md.
public struct SafetyLimits: ValidatedConfig, Sendable, Equatable {
    /// One joint's limits, in the joint's unit (mm or rad; speeds per second).
    public struct Joint: Decodable, Sendable, Equatable {
        public var name: String
        public var lower: Double
        public var upper: Double
        public var maxVelocity: Double
        public var maxCurrentA: Double
        /// Largest |commanded − measured| while the drives follow a position command.
        public var maxTrackingError: Double
        /// Largest |drive encoder − the monitor's own load-side sensor|.
        public var maxEncoderMismatch: Double
        /// The deceleration the drives' controlled stop achieves (units/s²): the monitor checks
        /// travel and tip against the posture where a stop begun now would end.
        public var stopDeceleration: Double

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, lower, upper
            case maxVelocity = "max_velocity"
            case maxCurrentA = "max_current_a"
            case maxTrackingError = "max_tracking_error"
            case maxEncoderMismatch = "max_encoder_mismatch"
            case stopDeceleration = "stop_deceleration"
        }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            lower = try c.decode(Double.self, forKey: .lower)
            upper = try c.decode(Double.self, forKey: .upper)
            maxVelocity = try c.decode(Double.self, forKey: .maxVelocity)
            maxCurrentA = try c.decode(Double.self, forKey: .maxCurrentA)
            maxTrackingError = try c.decode(Double.self, forKey: .maxTrackingError)
            maxEncoderMismatch = try c.decode(Double.self, forKey: .maxEncoderMismatch)
            stopDeceleration = try c.decode(Double.self, forKey: .stopDeceleration)
        }
    }

    /// The catheter's geometry as the monitor's own, deliberately simple tip estimate needs it.
    public struct Catheter: Decodable, Sendable, Equatable {
        public struct Section: Decodable, Sendable, Equatable {
            public var lengthMM: Double
            public var tendonRadiusMM: Double
            enum CodingKeys: String, CodingKey, CaseIterable {
                case lengthMM = "length_mm"
                case tendonRadiusMM = "tendon_radius_mm"
            }
            public init(from decoder: any Decoder) throws {
                try decoder.rejectUnknownKeys(CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                lengthMM = try c.decode(Double.self, forKey: .lengthMM)
                tendonRadiusMM = try c.decode(Double.self, forKey: .tendonRadiusMM)
            }
        }
        public var basePositionMM: [Double]
        public var baseRPYRad: [Double]
        public var sections: [Section]
        public var tipLengthMM: Double
        /// Added to every geometric check: the estimate's own error budget.
        public var tipMarginMM: Double

        enum CodingKeys: String, CodingKey, CaseIterable {
            case basePositionMM = "base_position_mm"
            case baseRPYRad = "base_rpy_rad"
            case sections
            case tipLengthMM = "tip_length_mm"
            case tipMarginMM = "tip_margin_mm"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            basePositionMM = try c.decode([Double].self, forKey: .basePositionMM)
            baseRPYRad = try c.decode([Double].self, forKey: .baseRPYRad)
            sections = try c.decode([Section].self, forKey: .sections)
            tipLengthMM = try c.decode(Double.self, forKey: .tipLengthMM)
            tipMarginMM = try c.decode(Double.self, forKey: .tipMarginMM)
        }
    }

    /// The vessel lumen as a corridor: a centreline polyline with a radius at each point
    /// (linearly interpolated along each segment).
    public struct Lumen: Decodable, Sendable, Equatable {
        public var centerlineMM: [[Double]]
        public var radiusMM: [Double]
        enum CodingKeys: String, CodingKey, CaseIterable {
            case centerlineMM = "centerline_mm"
            case radiusMM = "radius_mm"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            centerlineMM = try c.decode([[Double]].self, forKey: .centerlineMM)
            radiusMM = try c.decode([Double].self, forKey: .radiusMM)
        }
    }

    /// A sphere the tip must never enter (an aneurysm neck, a stent, a side branch).
    public struct NoGoZone: Decodable, Sendable, Equatable {
        public var name: String
        public var centerMM: [Double]
        public var radiusMM: Double
        enum CodingKeys: String, CodingKey, CaseIterable {
            case name
            case centerMM = "center_mm"
            case radiusMM = "radius_mm"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            centerMM = try c.decode([Double].self, forKey: .centerMM)
            radiusMM = try c.decode(Double.self, forKey: .radiusMM)
        }
    }

    /// Error-rate limits on the links: at most `burst` errors beyond a sustained `per_s`
    /// (a leaky bucket), and at most `max_consecutive_lost` missing samples on the monitor's
    /// own channel.
    public struct Link: Decodable, Sendable, Equatable {
        public var maxConsecutiveLost: Int
        public var lostBurst: Double
        public var lostPerS: Double
        public var crcBurst: Double
        public var crcPerS: Double
        public var wkcBurst: Double
        public var wkcPerS: Double
        enum CodingKeys: String, CodingKey, CaseIterable {
            case maxConsecutiveLost = "max_consecutive_lost"
            case lostBurst = "lost_burst"
            case lostPerS = "lost_per_s"
            case crcBurst = "crc_burst"
            case crcPerS = "crc_per_s"
            case wkcBurst = "wkc_burst"
            case wkcPerS = "wkc_per_s"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            maxConsecutiveLost = try c.decode(Int.self, forKey: .maxConsecutiveLost)
            lostBurst = try c.decode(Double.self, forKey: .lostBurst)
            lostPerS = try c.decode(Double.self, forKey: .lostPerS)
            crcBurst = try c.decode(Double.self, forKey: .crcBurst)
            crcPerS = try c.decode(Double.self, forKey: .crcPerS)
            wkcBurst = try c.decode(Double.self, forKey: .wkcBurst)
            wkcPerS = try c.decode(Double.self, forKey: .wkcPerS)
        }
    }

    /// How a category-1 stop ends: power is removed at standstill (every joint slower than
    /// `standstill_fraction` of its speed limit) or after `max_time_ms`, whichever comes first.
    public struct ControlledStop: Decodable, Sendable, Equatable {
        public var maxTimeMS: Double
        public var standstillFraction: Double
        enum CodingKeys: String, CodingKey, CaseIterable {
            case maxTimeMS = "max_time_ms"
            case standstillFraction = "standstill_fraction"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            maxTimeMS = try c.decode(Double.self, forKey: .maxTimeMS)
            standstillFraction = try c.decode(Double.self, forKey: .standstillFraction)
        }
    }

    public var name: String
    public var cycleHz: Int
    public var joints: [Joint]
    public var catheter: Catheter
    public var lumen: Lumen
    public var noGo: [NoGoZone]
    public var heartbeatTimeoutMS: Double
    public var maxInsertionForceN: Double
    public var imageMaxAgeMS: Double
    public var link: Link
    public var controlledStop: ControlledStop
    /// The stop category of each check, by the check's name (`SafetyCheck.key`). Every check
    /// must be listed.
    public var categories: [String: Int]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name
        case cycleHz = "cycle_hz"
        case joints, catheter, lumen
        case noGo = "no_go"
        case heartbeatTimeoutMS = "heartbeat_timeout_ms"
        case maxInsertionForceN = "max_insertion_force_n"
        case imageMaxAgeMS = "image_max_age_ms"
        case link
        case controlledStop = "controlled_stop"
        case categories
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        cycleHz = try c.decode(Int.self, forKey: .cycleHz)
        joints = try c.decode([Joint].self, forKey: .joints)
        catheter = try c.decode(Catheter.self, forKey: .catheter)
        lumen = try c.decode(Lumen.self, forKey: .lumen)
        noGo = try c.decode([NoGoZone].self, forKey: .noGo)
        heartbeatTimeoutMS = try c.decode(Double.self, forKey: .heartbeatTimeoutMS)
        maxInsertionForceN = try c.decode(Double.self, forKey: .maxInsertionForceN)
        imageMaxAgeMS = try c.decode(Double.self, forKey: .imageMaxAgeMS)
        link = try c.decode(Link.self, forKey: .link)
        controlledStop = try c.decode(ControlledStop.self, forKey: .controlledStop)
        categories = try c.decode([String: Int].self, forKey: .categories)
    }

    /// The stop category declared for `check`.
    public func category(_ check: SafetyCheck) -> StopCategory {
        StopCategory(rawValue: categories[check.key] ?? 0) ?? .zero
    }

    public func validate(into v: inout ConfigValidator) {
        v.check(!name.isEmpty, "name", "must not be empty")
        v.check((100...10_000).contains(cycleHz), "cycle_hz", "must be within 100…10000, got \(cycleHz)")

        let sectionCount = catheter.sections.count
        v.check((1...MonitorModel.maxSections).contains(sectionCount), "catheter.sections",
                "must have 1…\(MonitorModel.maxSections) sections, got \(sectionCount)")
        v.check(joints.count == 2 + 2 * sectionCount, "joints",
                "must list \(2 + 2 * sectionCount) joints (insertion, roll, two tendons per section), got \(joints.count)")
        for (i, j) in joints.enumerated() {
            let p = "joints[\(i)]"
            v.check(!j.name.isEmpty, "\(p).name", "must not be empty")
            v.check(j.lower, in: -1e4...1e4, "\(p).lower")
            v.check(j.upper, in: -1e4...1e4, "\(p).upper")
            if j.lower.isFinite, j.upper.isFinite { v.check(j.lower < j.upper, p, "lower (\(j.lower)) must be below upper (\(j.upper))") }
            v.checkPositive(j.maxVelocity, "\(p).max_velocity")
            v.check(j.maxCurrentA, in: 0.01...100, "\(p).max_current_a")
            v.checkPositive(j.maxTrackingError, "\(p).max_tracking_error")
            v.checkPositive(j.maxEncoderMismatch, "\(p).max_encoder_mismatch")
            v.checkPositive(j.stopDeceleration, "\(p).stop_deceleration")
        }

        v.check(catheter.basePositionMM.count == 3, "catheter.base_position_mm", "must have 3 numbers")
        for (i, x) in catheter.basePositionMM.enumerated() { v.check(x, in: -1e4...1e4, "catheter.base_position_mm[\(i)]") }
        v.check(catheter.baseRPYRad.count == 3, "catheter.base_rpy_rad", "must have 3 numbers")
        for (i, x) in catheter.baseRPYRad.enumerated() { v.check(x, in: -7...7, "catheter.base_rpy_rad[\(i)]") }
        for (i, s) in catheter.sections.enumerated() {
            v.check(s.lengthMM, in: 1...500, "catheter.sections[\(i)].length_mm")
            v.check(s.tendonRadiusMM, in: 0.05...20, "catheter.sections[\(i)].tendon_radius_mm")
        }
        v.check(catheter.tipLengthMM, in: 0...100, "catheter.tip_length_mm")
        v.check(catheter.tipMarginMM, in: 0...20, "catheter.tip_margin_mm")

        let points = lumen.centerlineMM.count
        v.check((2...MonitorModel.maxCorridorPoints).contains(points), "lumen.centerline_mm",
                "must have 2…\(MonitorModel.maxCorridorPoints) points, got \(points)")
        v.check(lumen.radiusMM.count == points, "lumen.radius_mm", "must have one radius per centreline point (\(points)), got \(lumen.radiusMM.count)")
        for (i, p) in lumen.centerlineMM.enumerated() {
            v.check(p.count == 3, "lumen.centerline_mm[\(i)]", "must have 3 numbers, got \(p.count)")
            for (k, x) in p.enumerated() { v.check(x, in: -1e4...1e4, "lumen.centerline_mm[\(i)][\(k)]") }
            if i > 0, p.count == 3, lumen.centerlineMM[i - 1].count == 3, p == lumen.centerlineMM[i - 1] {
                v.fail("lumen.centerline_mm[\(i)]", "repeats the point before it")
            }
        }
        for (i, r) in lumen.radiusMM.enumerated() {
            v.check(r, in: 0.1...100, "lumen.radius_mm[\(i)]")
            if r.isFinite, catheter.tipMarginMM.isFinite, r <= catheter.tipMarginMM {
                v.fail("lumen.radius_mm[\(i)]", "must exceed catheter.tip_margin_mm (\(catheter.tipMarginMM)), got \(r)")
            }
        }
        v.check(noGo.count <= MonitorModel.maxNoGoZones, "no_go", "at most \(MonitorModel.maxNoGoZones) zones, got \(noGo.count)")
        for (i, z) in noGo.enumerated() {
            v.check(!z.name.isEmpty, "no_go[\(i)].name", "must not be empty")
            v.check(z.centerMM.count == 3, "no_go[\(i)].center_mm", "must have 3 numbers, got \(z.centerMM.count)")
            for (k, x) in z.centerMM.enumerated() { v.check(x, in: -1e4...1e4, "no_go[\(i)].center_mm[\(k)]") }
            v.check(z.radiusMM, in: 0.1...200, "no_go[\(i)].radius_mm")
        }

        v.check(heartbeatTimeoutMS, in: 1...100, "heartbeat_timeout_ms")
        v.check(maxInsertionForceN, in: 0.01...50, "max_insertion_force_n")
        v.check(imageMaxAgeMS, in: 10...5000, "image_max_age_ms")
        v.check((1...1000).contains(link.maxConsecutiveLost), "link.max_consecutive_lost", "must be within 1…1000, got \(link.maxConsecutiveLost)")
        v.check(link.lostBurst, in: 0...1e6, "link.lost_burst")
        v.check(link.lostPerS, in: 0...1e6, "link.lost_per_s")
        v.check(link.crcBurst, in: 0...1e6, "link.crc_burst")
        v.check(link.crcPerS, in: 0...1e6, "link.crc_per_s")
        v.check(link.wkcBurst, in: 0...1e6, "link.wkc_burst")
        v.check(link.wkcPerS, in: 0...1e6, "link.wkc_per_s")
        v.check(controlledStop.maxTimeMS, in: 1...2000, "controlled_stop.max_time_ms")
        v.check(controlledStop.standstillFraction, in: 0.001...0.5, "controlled_stop.standstill_fraction")

        let known = Set(SafetyCheck.configurable.map(\.key))
        for key in categories.keys.sorted() where !known.contains(key) {
            v.fail("categories.\(key)", "unknown check (known: \(SafetyCheck.configurable.map(\.key).joined(separator: ", ")))")
        }
        for check in SafetyCheck.configurable {
            guard let raw = categories[check.key] else {
                v.fail("categories.\(check.key)", "missing")
                continue
            }
            guard let category = StopCategory(rawValue: raw) else {
                v.fail("categories.\(check.key)", "must be 0, 1 or 2, got \(raw)")
                continue
            }
            if check.mustRemovePower, !category.removesPower {
                v.fail("categories.\(check.key)", "must be 0 or 1: \(check.whyPowerMustGo)")
            }
        }
    }

    /// The limits and the SHA-256 of the file's bytes, or why the file was refused. The bytes
    /// are read once, so the hash is of exactly what was validated.
    public static func load(from path: String) throws(ConfigError) -> (limits: SafetyLimits, sha256: String) {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "not readable" : "no such file"
            throw .unreadable(file: path, reason: reason)
        }
        let ext = (path as NSString).pathExtension.lowercased()
        let limits: SafetyLimits
        switch ext {
        case "json":
            limits = try ConfigLoader.decode(SafetyLimits.self, json: data, file: path)
        case "yaml", "yml":
            guard let text = String(data: data, encoding: .utf8) else { throw .malformed(file: path, reason: "not UTF-8 text") }
            limits = try ConfigLoader.decode(SafetyLimits.self, yaml: text, file: path)
        default:
            throw .unsupportedFormat(file: path)
        }
        return (limits, SHA256.hex(data))
    }
}
