import Core
import Drivers

/// The link counters the cycle publishes while it runs, so that a reader on another thread (the
/// HIL timeline, an operator's status) sees them over time rather than only once the run ended.
/// Each is a slot the cycle alone writes; a slot never written reads as not reported.
public enum LinkCounter: Int, CaseIterable, Sendable {
    // The host's DriveLink link.
    case framesSent, statesReceived, rejected, stale, cyclesWithoutState, driveFaults, lateStates, sendErrors, faultResets, commandsLost
    // The host's EtherCAT link (frames_sent is shared with DriveLink's).
    case framesReceived, wkcShortfalls, malformed, late, missing
    // The cycle's reads and writes that came back with a fault.
    case readFaults, writeFaults

    /// The name summaries and expectations use (`HILScenario.counters`).
    public var name: String {
        switch self {
        case .framesSent: "frames_sent"
        case .statesReceived: "states_received"
        case .rejected: "rejected"
        case .stale: "stale"
        case .cyclesWithoutState: "cycles_without_state"
        case .driveFaults: "drive_faults"
        case .lateStates: "late_states"
        case .sendErrors: "send_errors"
        case .faultResets: "fault_resets"
        case .commandsLost: "commands_lost"
        case .framesReceived: "frames_received"
        case .wkcShortfalls: "wkc_shortfalls"
        case .malformed: "malformed"
        case .late: "late"
        case .missing: "missing"
        case .readFaults: "read_faults"
        case .writeFaults: "write_faults"
        }
    }
}

/// A drive link's error counters since it came up, for the heartbeat's link fields.
public struct LinkErrorCounts: Sendable, Equatable {
    /// Cycles or frames that brought no reply.
    public var lost: UInt64
    /// Replies that failed their checksum or framing.
    public var corrupt: UInt64
    /// EtherCAT exchanges whose working counter fell short (0 on links without one).
    public var workingCounter: UInt64
    @_noAllocation @_noLocks
    public init(lost: UInt64 = 0, corrupt: UInt64 = 0, workingCounter: UInt64 = 0) {
        self.lost = lost
        self.corrupt = corrupt
        self.workingCounter = workingCounter
    }
}

extension LinkErrorCounts {
    /// DriveLink has no working counter: a COMMAND no STATE answered is a lost frame (a STATE a
    /// cycle or two late is not: the line was slow, not lossy), a frame that failed COBS, CRC,
    /// version, type or length a corrupt one.
    @_noAllocation @_noLocks
    public init(driveLink s: DriveLinkStats) {
        self.init(lost: UInt64(max(0, s.commandsLost)), corrupt: UInt64(max(0, s.rejected &+ s.wrongPayload)), workingCounter: 0)
    }

    @_noAllocation @_noLocks
    public init(etherCAT s: EtherCATStats) {
        self.init(lost: UInt64(max(0, s.missing)), corrupt: UInt64(max(0, s.malformed)), workingCounter: UInt64(max(0, s.workingCounterShortfalls)))
    }
}

/// Preallocated slots for `LinkCounter`, written by the cycle through `LinkCounterWriter` and
/// read by any thread (`snapshot`). Each slot is stored with release and loaded with acquire: a
/// reader sees every counter as some cycle left it, which for counters that only grow is enough.
public final class LinkCounterCells: @unchecked Sendable {
    let cells: UnsafeMutablePointer<Int64>
    /// The link's error counts for the monitor's heartbeat (lost, corrupt, working counter).
    let errors: UnsafeMutablePointer<Int64>
    static var slots: Int { LinkCounter.allCases.count }

    public init() {
        cells = .allocate(capacity: Self.slots)
        // -1: not reported (the link in use has no such counter, or nothing was published yet).
        cells.initialize(repeating: -1, count: Self.slots)
        errors = .allocate(capacity: 3)
        errors.initialize(repeating: 0, count: 3)
    }

    deinit {
        cells.deallocate()
        errors.deallocate()
    }

    /// The cycle's view; whoever takes it keeps the cells too.
    package var writer: LinkCounterWriter { LinkCounterWriter(cells: cells, errors: errors) }

    /// The counters published so far, by name (allocates: not for the cycle).
    public func snapshot() -> [String: Int] {
        var out: [String: Int] = [:]
        for c in LinkCounter.allCases {
            let v = SharedIndex.load(cells + c.rawValue)
            if v >= 0 { out[c.name] = Int(v) }
        }
        return out
    }

    /// The link's error counts as last published, for the monitor's heartbeat (zero before).
    /// - Important: read by a thread beside the cycle; must not allocate, lock or log.
    public var errorCounts: LinkErrorCounts {
        @_noAllocation @_noLocks get {
            LinkErrorCounts(lost: UInt64(max(0, SharedIndex.load(errors))), corrupt: UInt64(max(0, SharedIndex.load(errors + 1))),
                            workingCounter: UInt64(max(0, SharedIndex.load(errors + 2))))
        }
    }

    /// One counter (nil: not reported).
    public func value(_ c: LinkCounter) -> Int? {
        let v = SharedIndex.load(cells + c.rawValue)
        return v >= 0 ? Int(v) : nil
    }
}

/// The cycle's end of `LinkCounterCells`: a plain pointer, so publishing touches no reference.
public struct LinkCounterWriter: @unchecked Sendable {
    @usableFromInline let cells: UnsafeMutablePointer<Int64>
    let errors: UnsafeMutablePointer<Int64>
    init(cells: UnsafeMutablePointer<Int64>, errors: UnsafeMutablePointer<Int64>) {
        self.cells = cells
        self.errors = errors
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func set(_ c: LinkCounter, _ value: Int) {
        SharedIndex.store(cells + c.rawValue, Int64(truncatingIfNeeded: value))
    }

    /// Adds one (only the cycle writes the slot, so load-then-store loses nothing).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func increment(_ c: LinkCounter) {
        let v = SharedIndex.load(cells + c.rawValue)
        SharedIndex.store(cells + c.rawValue, v < 0 ? 1 : v &+ 1)
    }

    /// Marks `c` as reported, at zero if nothing was counted yet.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    @inlinable public func report(_ c: LinkCounter) {
        if SharedIndex.load(cells + c.rawValue) < 0 { SharedIndex.store(cells + c.rawValue, 0) }
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func publish(_ s: DriveLinkStats) {
        set(.framesSent, s.framesSent)
        set(.statesReceived, s.statesReceived)
        set(.rejected, s.rejected)
        set(.stale, s.stale)
        set(.cyclesWithoutState, s.cyclesWithoutState)
        set(.driveFaults, s.faultsReported)
        set(.lateStates, s.lateStates)
        set(.sendErrors, s.sendErrors)
        set(.faultResets, s.faultResets)
        set(.commandsLost, s.commandsLost)
        setErrors(LinkErrorCounts(driveLink: s))
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func publish(_ s: EtherCATStats) {
        set(.framesSent, s.framesSent)
        set(.framesReceived, s.framesReceived)
        set(.wkcShortfalls, s.workingCounterShortfalls)
        set(.malformed, s.malformed)
        set(.late, s.late)
        set(.missing, s.missing)
        setErrors(LinkErrorCounts(etherCAT: s))
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    func setErrors(_ e: LinkErrorCounts) {
        SharedIndex.store(errors, Int64(truncatingIfNeeded: e.lost))
        SharedIndex.store(errors + 1, Int64(truncatingIfNeeded: e.corrupt))
        SharedIndex.store(errors + 2, Int64(truncatingIfNeeded: e.workingCounter))
    }
}

/// A host end of a link that can publish its counters from the cycle.
public protocol LinkCounterSource: ~Copyable {
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    func publishCounters(to writer: LinkCounterWriter)
}

extension DriveLinkRobot: LinkCounterSource {
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func publishCounters(to writer: LinkCounterWriter) { writer.publish(stats) }
}

extension EtherCATRobot: LinkCounterSource {
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func publishCounters(to writer: LinkCounterWriter) { writer.publish(stats) }
}

/// Hardware whose link counters and faulted reads and writes are published every cycle, after
/// the read and after the write: the wrapped hardware's timing is untouched but for a few stores.
/// Generic, so its cycle methods are `@inlinable` (checked where specialised, as `CycleRunner`'s
/// cycle is) rather than annotated: an unspecialised generic cannot promise not to allocate.
public struct CountedHardware<Inner: RobotHardware & LinkCounterSource & ~Copyable>: ~Copyable, RobotHardware {
    public var inner: Inner
    public let counters: LinkCounterWriter
    /// Keeps `counters`' memory alive as long as the hardware is.
    public let countersOwner: LinkCounterCells
    /// The cycle runner reads once at set-up, outside any cycle, and counts no fault of it.
    @usableFromInline var setUpRead = false

    public init(_ inner: consuming Inner, counters: LinkCounterCells) {
        self.inner = inner
        self.counters = counters.writer
        countersOwner = counters
        self.counters.report(.readFaults)
        self.counters.report(.writeFaults)
    }

    public var jointCount: Int { inner.jointCount }
    public mutating func configure() throws(HardwareError) {
        defer { inner.publishCounters(to: counters) }
        try inner.configure()
        setUpRead = true
    }
    public mutating func activate() throws(HardwareError) { try inner.activate() }
    public mutating func deactivate() {
        inner.deactivate()
        inner.publishCounters(to: counters)
    }
    public mutating func shutdown() {
        inner.shutdown()
        inner.publishCounters(to: counters)
    }
    @inlinable public var driveFault: DriveFaultReport? { inner.driveFault }
    public mutating func acknowledgeFaults() throws(HardwareError) { try inner.acknowledgeFaults() }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @inlinable public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        let fault = inner.read(into: &state, now: now)
        // Counted as the cycle runner counts them: a drive fault is the drive's, not the link's.
        if let f = fault, f != .driveFault, !setUpRead { counters.increment(.readFaults) }
        setUpRead = false
        inner.publishCounters(to: counters)
        return fault
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @inlinable public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        let fault = inner.write(command, now: now)
        if fault != nil { counters.increment(.writeFaults) }
        inner.publishCounters(to: counters)
        return fault
    }
}
