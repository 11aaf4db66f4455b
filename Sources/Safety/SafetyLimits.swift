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
        /// Added to every geometric check of the monitor's own tip estimate: the model's error
        /// budget (friction, slack, the vessel pushing back).
        public var tipMarginMM: Double
        /// How far inside the corridor wall the image-measured tip (a measurement of the
        /// catheter's centre, not a model) must lie; 0, the default, is the wall itself. A correct
        /// catheter's centre stays its own radius inside an undeformed wall, so a measured centre
        /// beyond the wall means the tracker is off by more than that radius or the catheter is
        /// at least half into the wall (docs/safety/tip-evidence.md, "The image tip's margin").
        public var imageTipMarginMM: Double

        enum CodingKeys: String, CodingKey, CaseIterable {
            case basePositionMM = "base_position_mm"
            case baseRPYRad = "base_rpy_rad"
            case sections
            case tipLengthMM = "tip_length_mm"
            case tipMarginMM = "tip_margin_mm"
            case imageTipMarginMM = "image_tip_margin_mm"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            basePositionMM = try c.decode([Double].self, forKey: .basePositionMM)
            baseRPYRad = try c.decode([Double].self, forKey: .baseRPYRad)
            sections = try c.decode([Section].self, forKey: .sections)
            tipLengthMM = try c.decode(Double.self, forKey: .tipLengthMM)
            tipMarginMM = try c.decode(Double.self, forKey: .tipMarginMM)
            imageTipMarginMM = try c.decodeIfPresent(Double.self, forKey: .imageTipMarginMM) ?? 0
        }
    }

    /// Which evidence of the tip the lumen check takes (docs/safety/tip-evidence.md).
    public enum TipEvidence: String, Decodable, Sendable, Equatable, CaseIterable {
        /// The tip from the monitor's own forward kinematics of its joint sensors: right for a
        /// catheter in free space or a straight lumen, wrong where vessel walls bend it.
        case kinematic
        /// The catheter inside a vessel whose walls bend it: the length out of the sheath (its
        /// own insertion sensor) against the corridor's length, and the image-measured tip
        /// (when the heartbeat carries a fresh one) against the corridor, where the catheter's
        /// length can reach it.
        case alongLumen = "along_lumen"
    }

    /// The vessel lumen as a corridor: a centreline polyline with a radius at each point
    /// (linearly interpolated along each segment). With `along_lumen` tip evidence the
    /// centreline starts at the sheath and is the one path the catheter may take.
    public struct Lumen: Decodable, Sendable, Equatable {
        public var centerlineMM: [[Double]]
        public var radiusMM: [Double]
        /// Optional; `kinematic` when absent (the files written before it existed mean that).
        public var tipEvidence: TipEvidence
        enum CodingKeys: String, CodingKey, CaseIterable {
            case centerlineMM = "centerline_mm"
            case radiusMM = "radius_mm"
            case tipEvidence = "tip_evidence"
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            centerlineMM = try c.decode([[Double]].self, forKey: .centerlineMM)
            radiusMM = try c.decode([Double].self, forKey: .radiusMM)
            tipEvidence = try c.decodeIfPresent(TipEvidence.self, forKey: .tipEvidence) ?? .kinematic
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
    /// (a leaky bucket that leaks per control cycle run: a rate at the nominal cycle rate, so a
    /// fraction of exchanges), and at most `max_consecutive_lost` missing samples on the
    /// monitor's own channel.
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
        typealias B = Bounds
        v.checkName(name, "name")
        v.check(B.cycleHz.contains(cycleHz), "cycle_hz", "must be within \(B.cycleHz.lowerBound)…\(B.cycleHz.upperBound), got \(cycleHz)")

        let sectionCount = catheter.sections.count
        v.check((1...MonitorModel.maxSections).contains(sectionCount), "catheter.sections",
                "must have 1…\(MonitorModel.maxSections) sections, got \(sectionCount)")
        v.check(joints.count == 2 + 2 * sectionCount, "joints",
                "must list \(2 + 2 * sectionCount) joints (insertion, roll, two tendons per section), got \(joints.count)")
        for (i, j) in joints.enumerated() {
            let p = "joints[\(i)]"
            let b = B.joint(at: i)
            v.checkName(j.name, "\(p).name")
            v.check(j.lower, in: b.travel, "\(p).lower", b.unit)
            v.check(j.upper, in: b.travel, "\(p).upper", b.unit)
            if j.lower.isFinite, j.upper.isFinite { v.check(j.lower < j.upper, p, "lower (\(j.lower)) must be below upper (\(j.upper))") }
            v.check(j.maxVelocity, in: b.maxVelocity, "\(p).max_velocity", "\(b.unit)/s")
            v.check(j.maxCurrentA, in: b.maxCurrentA, "\(p).max_current_a", "A")
            v.check(j.maxTrackingError, in: b.maxTrackingError, "\(p).max_tracking_error", b.unit)
            v.check(j.maxEncoderMismatch, in: b.maxEncoderMismatch, "\(p).max_encoder_mismatch", b.unit)
            v.check(j.stopDeceleration, in: b.stopDeceleration, "\(p).stop_deceleration", "\(b.unit)/s²")
        }

        v.check(catheter.basePositionMM.count == 3, "catheter.base_position_mm", "must have 3 numbers")
        for (i, x) in catheter.basePositionMM.enumerated() { v.check(x, in: B.coordinateMM, "catheter.base_position_mm[\(i)]", "mm") }
        v.check(catheter.baseRPYRad.count == 3, "catheter.base_rpy_rad", "must have 3 numbers")
        for (i, x) in catheter.baseRPYRad.enumerated() { v.check(x, in: B.baseAngleRad, "catheter.base_rpy_rad[\(i)]", "rad") }
        for (i, s) in catheter.sections.enumerated() {
            v.check(s.lengthMM, in: B.sectionLengthMM, "catheter.sections[\(i)].length_mm", "mm")
            v.check(s.tendonRadiusMM, in: B.tendonRadiusMM, "catheter.sections[\(i)].tendon_radius_mm", "mm")
        }
        v.check(catheter.tipLengthMM, in: B.tipLengthMM, "catheter.tip_length_mm", "mm")
        v.check(catheter.tipMarginMM, in: B.tipMarginMM, "catheter.tip_margin_mm", "mm")
        v.check(catheter.imageTipMarginMM, in: B.tipMarginMM, "catheter.image_tip_margin_mm", "mm")

        let points = lumen.centerlineMM.count
        v.check((2...MonitorModel.maxCorridorPoints).contains(points), "lumen.centerline_mm",
                "must have 2…\(MonitorModel.maxCorridorPoints) points, got \(points)")
        v.check(lumen.radiusMM.count == points, "lumen.radius_mm", "must have one radius per centreline point (\(points)), got \(lumen.radiusMM.count)")
        for (i, p) in lumen.centerlineMM.enumerated() {
            v.check(p.count == 3, "lumen.centerline_mm[\(i)]", "must have 3 numbers, got \(p.count)")
            for (k, x) in p.enumerated() { v.check(x, in: B.coordinateMM, "lumen.centerline_mm[\(i)][\(k)]", "mm") }
            if i > 0, p.count == 3, lumen.centerlineMM[i - 1].count == 3, p == lumen.centerlineMM[i - 1] {
                v.fail("lumen.centerline_mm[\(i)]", "repeats the point before it")
            }
        }
        for (i, r) in lumen.radiusMM.enumerated() {
            v.check(r, in: B.lumenRadiusMM, "lumen.radius_mm[\(i)]", "mm")
            if r.isFinite, catheter.tipMarginMM.isFinite, r <= catheter.tipMarginMM {
                v.fail("lumen.radius_mm[\(i)]", "must exceed catheter.tip_margin_mm (\(catheter.tipMarginMM)), got \(r)")
            }
            if r.isFinite, catheter.imageTipMarginMM.isFinite, r <= catheter.imageTipMarginMM {
                v.fail("lumen.radius_mm[\(i)]", "must exceed catheter.image_tip_margin_mm (\(catheter.imageTipMarginMM)), got \(r)")
            }
        }
        v.check(noGo.count <= MonitorModel.maxNoGoZones, "no_go", "at most \(MonitorModel.maxNoGoZones) zones, got \(noGo.count)")
        for (i, z) in noGo.enumerated() {
            v.checkName(z.name, "no_go[\(i)].name")
            v.check(z.centerMM.count == 3, "no_go[\(i)].center_mm", "must have 3 numbers, got \(z.centerMM.count)")
            for (k, x) in z.centerMM.enumerated() { v.check(x, in: B.coordinateMM, "no_go[\(i)].center_mm[\(k)]", "mm") }
            v.check(z.radiusMM, in: B.noGoRadiusMM, "no_go[\(i)].radius_mm", "mm")
        }

        v.check(heartbeatTimeoutMS, in: B.heartbeatTimeoutMS, "heartbeat_timeout_ms", "ms")
        v.check(maxInsertionForceN, in: B.maxInsertionForceN, "max_insertion_force_n", "N")
        v.check(imageMaxAgeMS, in: B.imageMaxAgeMS, "image_max_age_ms", "ms")
        v.check(B.maxConsecutiveLost.contains(link.maxConsecutiveLost), "link.max_consecutive_lost",
                "must be within \(B.maxConsecutiveLost.lowerBound)…\(B.maxConsecutiveLost.upperBound) samples, got \(link.maxConsecutiveLost)")
        v.check(link.lostBurst, in: B.linkBurst, "link.lost_burst", "errors")
        v.check(link.lostPerS, in: B.linkPerS, "link.lost_per_s", "errors/s")
        v.check(link.crcBurst, in: B.linkBurst, "link.crc_burst", "errors")
        v.check(link.crcPerS, in: B.linkPerS, "link.crc_per_s", "errors/s")
        v.check(link.wkcBurst, in: B.linkBurst, "link.wkc_burst", "errors")
        v.check(link.wkcPerS, in: B.linkPerS, "link.wkc_per_s", "errors/s")
        v.check(controlledStop.maxTimeMS, in: B.controlledStopMaxTimeMS, "controlled_stop.max_time_ms", "ms")
        v.check(controlledStop.standstillFraction, in: B.standstillFraction, "controlled_stop.standstill_fraction")
        // A category-1 stop that cuts power before the slowest joint has braked from full speed
        // leaves that joint coasting: a category 0 with extra travel.
        let stops = joints.enumerated().compactMap { i, j -> (Int, Double)? in
            let t = j.maxVelocity / j.stopDeceleration * 1000
            return t.isFinite && t > 0 ? (i, t) : nil
        }
        if let (slowest, ms) = stops.max(by: { $0.1 < $1.1 }), controlledStop.maxTimeMS.isFinite, ms > controlledStop.maxTimeMS {
            v.fail("controlled_stop.max_time_ms", "must be at least the longest stop from full speed, \(Int(ms.rounded(.up))) ms (joints[\(slowest)]: max_velocity / stop_deceleration), got \(controlledStop.maxTimeMS): power would be cut while that joint still brakes")
        }

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
            let weakest = check.weakestCategory
            if category > weakest {
                let allowed = (0...weakest.rawValue).map(String.init).joined(separator: " or ")
                v.fail("categories.\(check.key)", "must be \(allowed) (\(check.hazard) in docs/safety/hazards.md: category \(weakest.rawValue) at the weakest), got \(raw): \(check.whyNoWeaker)")
            }
        }
    }

    /// The limits and the SHA-256 of the file's bytes, or why the file was refused. The bytes
    /// are read once, so the hash is of exactly what was validated.
    public static func load(from path: String) throws(ConfigError) -> (limits: SafetyLimits, sha256: String) {
        let (limits, bytes) = try ConfigLoader.loadWithBytes(SafetyLimits.self, from: path)
        return (limits, SHA256.hex(bytes))
    }
}

extension SafetyLimits {
    /// The range each limit may take: what is plausible for a catheter robot, so that a value that
    /// passes cannot quietly switch a check off (a 50 N force limit, a 1e9 mm/s speed limit, a
    /// 100 mm lumen radius all would). The same ranges are written beside each field in
    /// `safety/lumen-2s-limits.yaml` and tabled in docs/safety/hazards.md, which a test compares
    /// with these.
    public enum Bounds {
        /// One joint kind's ranges, in its unit (mm or rad; speeds per second).
        public struct Joint: Sendable {
            public var kind: String
            public var unit: String
            public var travel: ClosedRange<Double>
            public var maxVelocity: ClosedRange<Double>
            public var maxCurrentA: ClosedRange<Double>
            public var maxTrackingError: ClosedRange<Double>
            public var maxEncoderMismatch: ClosedRange<Double>
            public var stopDeceleration: ClosedRange<Double>
        }

        /// Insertion: a stroke of a few hundred mm, tens of mm/s.
        public static let insertion = Joint(kind: "insertion", unit: "mm", travel: -50...1000, maxVelocity: 0.1...50, maxCurrentA: 0.01...5,
                                            maxTrackingError: 0.01...10, maxEncoderMismatch: 0.001...5, stopDeceleration: 1...1000)
        /// Roll: about one turn each way, at most half a turn per second.
        public static let roll = Joint(kind: "roll", unit: "rad", travel: -6.5...6.5, maxVelocity: 0.01...3.2, maxCurrentA: 0.01...5,
                                       maxTrackingError: 0.001...1, maxEncoderMismatch: 0.0001...0.5, stopDeceleration: 0.1...100)
        /// Tendon displacement: millimetres of pull on a catheter a few mm across.
        public static let tendon = Joint(kind: "tendon", unit: "mm", travel: -10...10, maxVelocity: 0.01...20, maxCurrentA: 0.01...5,
                                         maxTrackingError: 0.001...2, maxEncoderMismatch: 0.0001...1, stopDeceleration: 0.1...500)

        /// The ranges of joint `index` (insertion, roll, then tendons).
        public static func joint(at index: Int) -> Joint { index == 0 ? insertion : index == 1 ? roll : tendon }

        public static let cycleHz = 100...10_000
        /// Coordinates of the base, the centreline and no-go centres: a room, not a planet.
        public static let coordinateMM = -2000.0...2000.0
        public static let baseAngleRad = -7.0...7.0
        public static let sectionLengthMM = 1.0...200
        public static let tendonRadiusMM = 0.05...5
        public static let tipLengthMM = 0.0...50
        public static let tipMarginMM = 0.0...10
        /// From a few mm (coronary, cerebral) to the aorta.
        public static let lumenRadiusMM = 0.5...20
        public static let noGoRadiusMM = 0.1...50
        public static let heartbeatTimeoutMS = 1.0...100
        /// Perforation forces of vessel walls are of the order of a few N.
        public static let maxInsertionForceN = 0.01...5
        public static let imageMaxAgeMS = 10.0...1000
        /// At 1 kHz, 100 ms without the monitor's own samples at the most.
        public static let maxConsecutiveLost = 1...100
        public static let linkBurst = 0.0...50
        /// At most a tenth of the frames of a 1 kHz link.
        public static let linkPerS = 0.0...100
        public static let controlledStopMaxTimeMS = 1.0...1000
        public static let standstillFraction = 0.001...0.2
    }
}
