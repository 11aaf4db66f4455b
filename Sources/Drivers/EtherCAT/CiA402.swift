/// The CiA 402 drive profile (IEC 61800-7-201): the power state machine driven by the
/// controlword (0x6040) and reported in the statusword (0x6041), and the cyclic modes.
public enum CiA402 {
    public enum State: Sendable, Equatable, CustomStringConvertible {
        case notReadyToSwitchOn, switchOnDisabled, readyToSwitchOn, switchedOn, operationEnabled
        case quickStopActive, faultReactionActive, fault

        public var description: String {
            switch self {
            case .notReadyToSwitchOn: "not ready to switch on"
            case .switchOnDisabled: "switch on disabled"
            case .readyToSwitchOn: "ready to switch on"
            case .switchedOn: "switched on"
            case .operationEnabled: "operation enabled"
            case .quickStopActive: "quick stop active"
            case .faultReactionActive: "fault reaction active"
            case .fault: "fault"
            }
        }
    }

    /// Modes of operation (0x6060 / 0x6061).
    public enum Mode: Int8, Sendable {
        case cyclicSynchronousPosition = 8
        case cyclicSynchronousVelocity = 9
        case cyclicSynchronousTorque = 10
    }

    /// Controlword commands.
    public enum Command {
        @inlinable public static var shutdown: UInt16 { @_noAllocation @_noLocks get { 0x0006 } }
        @inlinable public static var switchOn: UInt16 { @_noAllocation @_noLocks get { 0x0007 } }
        @inlinable public static var enableOperation: UInt16 { @_noAllocation @_noLocks get { 0x000F } }
        @inlinable public static var disableVoltage: UInt16 { @_noAllocation @_noLocks get { 0x0000 } }
        @inlinable public static var quickStop: UInt16 { @_noAllocation @_noLocks get { 0x0002 } }
        @inlinable public static var faultReset: UInt16 { @_noAllocation @_noLocks get { 0x0080 } }
    }

    /// The state a statusword reports.
    @_noAllocation @_noLocks
    public static func state(statusword sw: UInt16) -> State {
        if sw & 0x4F == 0x00 { return .notReadyToSwitchOn }
        if sw & 0x4F == 0x40 { return .switchOnDisabled }
        if sw & 0x4F == 0x0F { return .faultReactionActive }
        if sw & 0x4F == 0x08 { return .fault }
        switch sw & 0x6F {
        case 0x21: return .readyToSwitchOn
        case 0x23: return .switchedOn
        case 0x27: return .operationEnabled
        case 0x07: return .quickStopActive
        default: return .notReadyToSwitchOn
        }
    }

    /// The statusword of a state (bit 4 "voltage enabled" set when powered; others clear).
    @_noAllocation @_noLocks
    public static func statusword(_ s: State) -> UInt16 {
        switch s {
        case .notReadyToSwitchOn: 0x0000
        case .switchOnDisabled: 0x0040
        case .readyToSwitchOn: 0x0021
        case .switchedOn: 0x0023 | 0x0010
        case .operationEnabled: 0x0027 | 0x0010
        case .quickStopActive: 0x0007 | 0x0010
        case .faultReactionActive: 0x000F
        case .fault: 0x0008
        }
    }

    /// The drive's side: the state after `controlword` (previous one given, for the fault
    /// reset's rising edge). Transitions follow the profile's state diagram.
    @_noAllocation @_noLocks
    public static func transition(_ s: State, controlword cw: UInt16, previous: UInt16) -> State {
        let disableVoltage = cw & 0x0002 == 0
        let quickStop = !disableVoltage && cw & 0x0004 == 0
        let shutdown = cw & 0x0087 == 0x0006
        let switchOn = cw & 0x008F == 0x0007
        let enable = cw & 0x008F == 0x000F
        switch s {
        case .notReadyToSwitchOn:
            return .switchOnDisabled
        case .switchOnDisabled:
            return shutdown ? .readyToSwitchOn : s
        case .readyToSwitchOn:
            if disableVoltage || quickStop { return .switchOnDisabled }
            return switchOn || enable ? .switchedOn : s
        case .switchedOn:
            if disableVoltage || quickStop { return .switchOnDisabled }
            if shutdown { return .readyToSwitchOn }
            return enable ? .operationEnabled : s
        case .operationEnabled:
            if disableVoltage { return .switchOnDisabled }
            if quickStop { return .quickStopActive }
            if shutdown { return .readyToSwitchOn }
            return switchOn ? .switchedOn : s
        case .quickStopActive:
            // The ramp to standstill is immediate for an ideal drive.
            return .switchOnDisabled
        case .faultReactionActive:
            return .fault
        case .fault:
            let risingReset = cw & 0x0080 != 0 && previous & 0x0080 == 0
            return risingReset ? .switchOnDisabled : s
        }
    }

    /// The host's side: the controlword that moves a drive one step toward operation enabled
    /// (`enable`) or toward switched-off power (`!enable`), from the statusword it reported.
    /// A fault is reset with a rising edge of bit 7 only when `resetFaults` is set.
    @_noAllocation @_noLocks
    public static func controlword(toward enable: Bool, statusword: UInt16, previous: UInt16, resetFaults: Bool) -> UInt16 {
        switch state(statusword: statusword) {
        case .fault, .faultReactionActive:
            // A rising edge needs a low first.
            return resetFaults && previous & 0x0080 == 0 ? Command.faultReset : Command.disableVoltage
        case .notReadyToSwitchOn, .switchOnDisabled:
            return enable ? Command.shutdown : Command.disableVoltage
        case .readyToSwitchOn:
            return enable ? Command.switchOn : Command.disableVoltage
        case .switchedOn:
            return enable ? Command.enableOperation : Command.shutdown
        case .operationEnabled:
            return enable ? Command.enableOperation : Command.shutdown
        case .quickStopActive:
            return Command.disableVoltage
        }
    }
}

/// The process data of one single-axis CiA 402 slave, as Lumen maps it.
///
/// Outputs (RxPDO, 11 bytes): controlword u16 (0x6040), mode of operation i8 (0x6060), target
/// position i32 (0x607A, counts), target velocity i32 (0x60FF, counts/s).
/// Inputs (TxPDO, 12 bytes): statusword u16 (0x6041), mode display i8 (0x6061), reserved u8,
/// position actual i32 (0x6064, counts), velocity actual i32 (0x606C, counts/s).
public enum CiA402PDO {
    @inlinable public static var outputSize: Int { @_noAllocation @_noLocks get { 11 } }
    @inlinable public static var inputSize: Int { @_noAllocation @_noLocks get { 12 } }
}
