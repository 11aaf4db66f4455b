/// Every check the monitor runs, each cycle. The raw value is the bit in `MonitorState`'s masks.
public enum SafetyCheck: UInt8, CaseIterable, Sendable, Codable {
    /// The control cycle's heartbeat sequence has not advanced for longer than the timeout
    /// (control killed, hung, or its messages lost).
    case heartbeat = 0
    /// A joint (measured by the monitor, or commanded) outside its safe travel.
    case position = 1
    /// A joint (measured, commanded, or implied by consecutive commands) faster than allowed.
    case velocity = 2
    /// A motor current above its limit (runaway, blocked axis, short).
    case current = 3
    /// The insertion force above its limit (pushing against the vessel wall).
    case force = 4
    /// The monitor's own tip estimate (measured or commanded posture) outside the lumen corridor.
    case lumen = 5
    /// The tip estimate inside a no-go zone.
    case noGo = 6
    /// |commanded − measured| above the tolerance while the drives follow a position command.
    case tracking = 7
    /// The drive's encoder and the monitor's own load-side sensor disagree (stuck or slipping encoder).
    case encoder = 8
    /// In image-guided mode, the newest image is older than allowed (or dated in the future).
    case imageStale = 9
    /// The monitor's own channel delivered no fresh sample too many times in a row, or the
    /// control link lost frames faster than allowed.
    case link = 10
    /// CRC errors on the links faster than allowed.
    case crc = 11
    /// EtherCAT working-counter errors faster than allowed.
    case workingCounter = 12
    /// The operator released the deadman (enabling device).
    case deadman = 13
    /// A reading was NaN or infinite: nothing the monitor sees can be trusted.
    case invalidInput = 14
    /// The monitor (re)started: nothing moves until an operator acknowledges.
    case startup = 15

    /// The checks whose category the limits file declares (start-up is always category 0).
    public static var configurable: [SafetyCheck] { allCases.filter { $0 != .startup } }

    /// The check's name in the limits file and the logs.
    public var key: String {
        switch self {
        case .heartbeat: "heartbeat"
        case .position: "position"
        case .velocity: "velocity"
        case .current: "current"
        case .force: "force"
        case .lumen: "lumen"
        case .noGo: "no_go"
        case .tracking: "tracking"
        case .encoder: "encoder"
        case .imageStale: "image_stale"
        case .link: "link"
        case .crc: "crc"
        case .workingCounter: "working_counter"
        case .deadman: "deadman"
        case .invalidInput: "invalid_input"
        case .startup: "startup"
        }
    }

    /// The unit of the values the fault log records for this check.
    public var unit: String {
        switch self {
        case .heartbeat, .imageStale: "ms"
        case .position, .tracking, .encoder: "mm|rad"
        case .velocity: "mm/s|rad/s"
        case .current: "A"
        case .force: "N"
        case .lumen, .noGo: "mm"
        case .link, .crc, .workingCounter: "count"
        case .deadman, .invalidInput, .startup: "-"
        }
    }

    /// The weakest stop category a limits file may give this check, from the risk analysis
    /// (docs/safety/hazards.md, whose traceability table a test compares with this). A file may
    /// make a reaction stricter (2 → 1 → 0), never weaker.
    public var weakestCategory: StopCategory {
        switch self {
        case .velocity, .current, .tracking, .encoder, .link, .invalidInput, .startup: .zero
        case .heartbeat, .position, .force, .lumen, .noGo, .crc, .workingCounter: .one
        case .imageStale, .deadman: .two
        }
    }

    /// The hazard row of docs/safety/hazards.md the check's category comes from.
    public var hazard: String {
        switch self {
        case .force: "H1"
        case .lumen, .noGo: "H2"
        case .velocity, .current, .tracking: "H3"
        case .encoder: "H4"
        case .position: "H5"
        case .heartbeat: "H6"
        case .link, .crc, .workingCounter: "H7"
        case .deadman: "H9"
        case .imageStale: "H10"
        case .invalidInput: "H11"
        case .startup: "-"
        }
    }

    /// Whether the check's stop latches until an operator acknowledges it. Every fault does; the
    /// deadman does not: letting go of the enabling device is the operator's normal way to stop
    /// (IEC 60204-1 enabling control: released → stop), its category-2 stop lasts while it is
    /// released, and holding it again ends that stop without a reset. Holding it moves nothing by
    /// itself: the control moves only on a jog or a target, each also needing it held.
    public var latches: Bool { self != .deadman }

    /// The checks whose stop does not latch (bits of `bit`).
    public static var selfClearing: UInt32 { @_noAllocation @_noLocks get { SafetyCheck.deadman.bit } }

    /// Checks whose reaction must end with power removed (category 0 or 1).
    public var mustRemovePower: Bool { weakestCategory.removesPower }

    /// Why the category may not be weaker than `weakestCategory`.
    var whyNoWeaker: String {
        switch self {
        case .heartbeat: "without the control cycle nobody commands the drives"
        case .velocity, .current: "an axis that runs away must not keep its power, nor brake under its own control"
        case .tracking: "a drive that does not follow its command must not keep its power"
        case .encoder: "a drive closing its loop on a wrong encoder must not keep its power"
        case .link: "the monitor cannot supervise what it cannot see"
        case .invalidInput: "a NaN reading cannot be supervised"
        case .force: "a catheter pushing on the vessel wall must not stay powered against it"
        case .lumen, .noGo: "a tip outside the lumen or in a no-go zone must not stay powered there"
        case .position: "a joint beyond its travel must not stay powered there"
        case .crc, .workingCounter: "a link corrupting its traffic cannot be trusted to hold the drives"
        case .imageStale, .deadman, .startup: "required"
        }
    }

    /// The check's bit in the monitor's masks.
    public var bit: UInt32 { @_noAllocation @_noLocks get { UInt32(1) << UInt32(rawValue) } }
    /// Every check's bit: a mask with any other bit set is not the monitor's.
    public static var definedBits: UInt32 { @_noAllocation @_noLocks get { (UInt32(1) << UInt32(SafetyCheck.startup.rawValue + 1)) - 1 } }
    /// The check's slot in per-check tables.
    public var index: Int { @_noAllocation @_noLocks get { Int(rawValue) } }
}
