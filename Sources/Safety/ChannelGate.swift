import Core

/// What the monitor does with each datagram before any field of it is read: the sender's
/// user id against its role, the tag against the key, the counter against the last one
/// accepted from that role. Pure and fixed-size, so the monitor's cycle, the fuzz target and
/// the tests run the very same checks. Spec and threat model: docs/safety/channel.md.
public struct ChannelGate: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// Authenticated, fresh, from the right user: the caller decodes it.
        case driveSample, heartbeat, operatorInput
        /// A sender whose user id is not configured for the datagram's role (or no credentials).
        case rejectedCredentials
        /// The tag is not the key's HMAC of the datagram.
        case rejectedTag
        /// The counter is not above the last accepted from that role, or older than the gate.
        case rejectedReplay
        /// Wrong length, CRC, magic or axis count, or a kind that is not for the monitor.
        case invalid
    }

    public let policy: ChannelPolicy
    /// (drives, control, operator) the last counter accepted from each role.
    @usableFromInline var lastCounter: InlineArray<3, UInt64>

    /// A gate that takes no counter below `floor`: on one host, where every sender's counter is
    /// CLOCK_MONOTONIC, the monitor's start time, so nothing recorded before it started is
    /// taken.
    public init(policy: ChannelPolicy, floor: UInt64) {
        self.policy = policy
        let f = floor > 0 ? floor - 1 : 0
        lastCounter = [f, f, f]
    }

    /// Checks one datagram from `uid` (`hasCredentials` false: the kernel attached none).
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func admit(_ datagram: UnsafeRawBufferPointer, uid: UInt32, hasCredentials: Bool) -> Outcome {
        let kind = SafetyWire.classify(datagram)
        let role: Int
        let accepted: Outcome
        switch kind {
        case .driveSample:
            role = 0
            accepted = .driveSample
            if !hasCredentials || !policy.drives.contains(uid) { return .rejectedCredentials }
        case .heartbeat:
            role = 1
            accepted = .heartbeat
            if !hasCredentials || !policy.control.contains(uid) { return .rejectedCredentials }
        case .operatorInput:
            role = 2
            accepted = .operatorInput
            if !hasCredentials || !policy.operatorConsole.contains(uid) { return .rejectedCredentials }
        case .permit, .status, .invalid:
            return .invalid
        }
        if !SafetyWire.authenticate(datagram, key: policy.key) { return .rejectedTag }
        let counter = SafetyWire.counter(datagram)
        if counter <= lastCounter[role] { return .rejectedReplay }
        lastCounter[role] = counter
        return accepted
    }
}

/// The receiving side of the permits, for the drives: a permit counts only when it comes from
/// the monitor's user, carries the key's tag and a counter above the last one taken.
public struct PermitGate: Sendable {
    public let key: ChannelKey
    public let monitorUIDs: UIDSet
    public private(set) var lastCounter: UInt64 = 0

    public init(key: ChannelKey, monitorUIDs: UIDSet) {
        self.key = key
        self.monitorUIDs = monitorUIDs
    }

    /// (permit, quick stop) of a datagram that passes, else nil.
    /// - Important: runs in the drives' cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func admit(_ datagram: UnsafeRawBufferPointer, uid: UInt32, hasCredentials: Bool) -> (permit: Bool, quickStop: Bool)? {
        guard let counter = MonitorSender.check(datagram, is: .permit, uid: uid, hasCredentials: hasCredentials, key: key,
                                                monitorUIDs: monitorUIDs, after: lastCounter),
              let p = SafetyWire.decodePermit(datagram) else { return nil }
        lastCounter = counter
        return (p.permit, p.quickStop)
    }
}

/// The receiving side of the monitor's status, for the control process: a status counts only
/// when it comes from the monitor's user, carries the key's tag and a counter above the last one
/// taken. A forged or replayed status could only mislead what the console shows (it grants no
/// power), and is refused all the same.
public struct StatusGate: Sendable {
    public let key: ChannelKey
    public let monitorUIDs: UIDSet
    public private(set) var lastCounter: UInt64 = 0

    public init(key: ChannelKey, monitorUIDs: UIDSet) {
        self.key = key
        self.monitorUIDs = monitorUIDs
    }

    /// The status of a datagram that passes, else nil.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func admit(_ datagram: UnsafeRawBufferPointer, uid: UInt32, hasCredentials: Bool) -> MonitorStatus? {
        guard let counter = MonitorSender.check(datagram, is: .status, uid: uid, hasCredentials: hasCredentials, key: key,
                                                monitorUIDs: monitorUIDs, after: lastCounter),
              let s = SafetyWire.decodeStatus(datagram) else { return nil }
        lastCounter = counter
        return s.status
    }
}

/// The checks every receiver of the monitor's datagrams makes before decoding one.
enum MonitorSender {
    /// The datagram's counter when it is of `kind` (a permit or a status), from one of the monitor's users (with the
    /// kernel's credentials), carries the key's tag and a counter above `last`; else nil.
    @_noAllocation @_noLocks
    static func check(_ datagram: UnsafeRawBufferPointer, is kind: SafetyWire.Kind, uid: UInt32, hasCredentials: Bool, key: ChannelKey,
                      monitorUIDs: UIDSet, after last: UInt64) -> UInt64? {
        let same: Bool
        switch (SafetyWire.classify(datagram), kind) {
        case (.permit, .permit), (.status, .status): same = true
        default: same = false
        }
        guard same, hasCredentials, monitorUIDs.contains(uid) else { return nil }
        if !SafetyWire.authenticate(datagram, key: key) { return nil }
        let counter = SafetyWire.counter(datagram)
        return counter > last ? counter : nil
    }
}
