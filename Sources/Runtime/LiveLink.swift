import Control
import Core
import Drivers
import Foundation
import Safety
import Scenarios
import Sim

/// Where the live runtime's drives are.
public enum LiveDrives: Sendable, Equatable, CustomStringConvertible {
    /// The simulated patient's own drives, in process (`sim`).
    case simulated
    /// Emulated drives behind a pseudo-terminal, speaking DriveLink through the C firmware
    /// reference on a thread of their own (`serial`), as `lumen demo --scripted` has them.
    case emulatedDriveLink
    /// Simulated CiA 402 slaves behind EtherCAT over loopback UDP (`ethercat-udp`).
    case emulatedEtherCAT
    /// A device on a link address (`serial:PATH@BAUD`, `pty:PATH`, `ethercat:IFACE`, `ethercat-udp:HOST:PORT`).
    case device(LinkAddress)

    /// `sim`, `serial`, `ethercat-udp`, or a `LinkAddress`.
    public init(parsing text: String) throws(RuntimeError) {
        switch text {
        case "sim": self = .simulated
        case "serial": self = .emulatedDriveLink
        case "ethercat-udp": self = .emulatedEtherCAT
        default:
            do {
                let address = try LinkAddress(parsing: text)
                self = address == .sim ? .simulated : .device(address)
            } catch { throw .badSetting(field: "link", reason: error.description) }
        }
    }

    /// Drives this process emulates (in process or on a link): a simulated C-arm may image them.
    public var isEmulated: Bool { if case .device = self { false } else { true } }
    public var isLink: Bool { self != .simulated }

    /// The link's kind, as `LinkHealth` names it.
    public var kind: String {
        switch self {
        case .simulated: "simulated"
        case .emulatedDriveLink: "serial"
        case .emulatedEtherCAT: "ethercat-udp"
        case .device(let a):
            switch a {
            case .sim: "simulated"
            case .serial: "serial"
            case .pty: "pty"
            case .ethercat: "ethercat"
            case .ethercatUDP: "ethercat-udp"
            }
        }
    }

    public var description: String {
        switch self {
        case .simulated: "sim"
        case .emulatedDriveLink: "serial"
        case .emulatedEtherCAT: "ethercat-udp"
        case .device(let a): a.description
        }
    }
}

/// The host's end of a drive link, as the cycle reads and writes it: a DriveLink or an EtherCAT
/// robot (concrete types, no existential), with what the cycle learned of it (the latched fault,
/// the link's counters) kept as plain copies for readers outside the cycle.
public struct LinkDrives: ~Copyable, RobotHardware {
    var driveLink: DriveLinkRobot?
    var etherCAT: EtherCATRobot?
    public let jointCount: Int
    /// 0: no link (the in-process drives), 1: DriveLink, 2: EtherCAT. (An optional's call says
    /// nil both for "no such robot" and "no fault": the cycle goes by this instead.)
    let kind: UInt8
    /// Whether there is a link at all (false: the in-process drives).
    public let linked: Bool
    /// The fault the drives latched, as of the last call.
    public private(set) var fault: DriveFaultReport?
    /// The link's counters as of the last cycle.
    public private(set) var driveLinkStats: DriveLinkStats?
    public private(set) var etherCATStats: EtherCATStats?
    /// Where the cycle publishes the link's counters each cycle, for readers while the run goes
    /// on (nil: not published).
    var counters: LinkCounterWriter?

    /// No link: the simulated patient's own drives.
    public init(none joints: Int) {
        jointCount = joints
        kind = 0
        linked = false
    }

    public init(driveLink robot: consuming DriveLinkRobot) {
        jointCount = robot.jointCount
        driveLink = consume robot
        kind = 1
        linked = true
    }

    public init(etherCAT robot: consuming EtherCATRobot) {
        jointCount = robot.jointCount
        etherCAT = consume robot
        kind = 2
        linked = true
    }

    /// The link's counters by the names summaries use (nil without a link).
    public var statistics: [String: Int]? {
        if let s = driveLinkStats { return HILRunner.stats(s) }
        if let s = etherCATStats { return HILRunner.stats(s) }
        return nil
    }

    public mutating func configure() throws(HardwareError) {
        defer { refresh() }
        try driveLink?.configure()
        try etherCAT?.configure()
    }

    public mutating func activate() throws(HardwareError) {
        defer { refresh() }
        try driveLink?.activate()
        try etherCAT?.activate()
    }

    public mutating func deactivate() {
        driveLink?.deactivate()
        etherCAT?.deactivate()
        refresh()
    }

    public mutating func shutdown() {
        refresh()
        driveLink?.shutdown()
        etherCAT?.shutdown()
    }

    public var driveFault: DriveFaultReport? { @_noAllocation @_noLocks get { fault } }

    public mutating func acknowledgeFaults() throws(HardwareError) {
        defer { refresh() }
        try driveLink?.acknowledgeFaults()
        try etherCAT?.acknowledgeFaults()
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        let result: HardwareFault?
        switch kind {
        case 1: result = driveLink?.read(into: &state, now: now)
        case 2: result = etherCAT?.read(into: &state, now: now)
        default: result = .linkLost
        }
        refresh()
        return result
    }

    /// The drives' power stage found off because their safety input took the power, not a
    /// fault of theirs (`DriveLinkRobot.powerRemovedBySafetyInput`; EtherCAT's slaves here have
    /// no safety input). Says whether a fault was cleared, and the read's outcome without it.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func powerRemovedBySafetyInput() -> (cleared: Bool, outcome: HardwareFault?) {
        var r: (cleared: Bool, outcome: HardwareFault?) = (false, .driveFault)
        if let d = driveLink?.powerRemovedBySafetyInput() { r = d }
        refresh()
        return r
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        switch kind {
        case 1: return driveLink?.write(command, now: now)
        case 2: return etherCAT?.write(command, now: now)
        default: return .linkLost
        }
    }

    /// Copies what readers outside the cycle may want (plain values, no allocation).
    @_noAllocation @_noLocks
    mutating func refresh() {
        if let f = driveLink?.driveFault { fault = f } else if let f = etherCAT?.driveFault { fault = f } else { fault = nil }
        if let s = driveLink?.stats { driveLinkStats = s }
        if let s = etherCAT?.stats { etherCATStats = s }
        if let w = counters {
            if let s = driveLinkStats { w.publish(s) } else if let s = etherCATStats { w.publish(s) }
        }
    }

    /// The link's error counters as the monitor's link checks take them (docs/safety/channel.md,
    /// the heartbeat): frames lost, frames corrupt, working-counter shortfalls, each since the
    /// link came up. Without them the monitor's `crc` and `working_counter` checks (hazard H7)
    /// would see a clean link however the traffic was corrupted. Zero without a link.
    public var errorCounts: LinkErrorCounts {
        @_noAllocation @_noLocks get {
            if let s = driveLinkStats { return LinkErrorCounts(driveLink: s) }
            if let s = etherCATStats { return LinkErrorCounts(etherCAT: s) }
            return LinkErrorCounts()
        }
    }
}

/// The far end of an emulated link, on threads of its own as drives run on processors of their
/// own: the DriveLink drive emulator (with its side of the safety channel: the monitor's permits
/// on its safe-torque-off input, its readings back to the monitor), or the EtherCAT slaves' UDP server.
public final class EmulatedDrives: @unchecked Sendable {
    public let emulator: DriveLinkDriveEmulator?
    public let segment: EtherCATSegment?
    let server: EtherCATUDPServer?
    var safety: HILSafetyBridge?
    let axes: Int

    init(emulator: DriveLinkDriveEmulator, axes: Int) {
        self.emulator = emulator
        segment = nil
        server = nil
        self.axes = axes
    }

    init(segment: EtherCATSegment, server: EtherCATUDPServer, axes: Int) {
        emulator = nil
        self.segment = segment
        self.server = server
        self.axes = axes
    }

    deinit { stop() }

    /// The drives' side of the safety channel to the monitor at `listen` (its permits arrive at
    /// `drives`): torque off until a permit with power, and again when none came for `watchdog`.
    /// DriveLink drives only (the emulated EtherCAT slaves have no safe-torque-off input).
    func attachSafety(drives: String, listen: String, key: ChannelKey, watchdog: Nanoseconds, status: SafetyLinkStatus) {
        guard let emulator else { return }
        safety = HILSafetyBridge(drivesOnly: emulator, drives: drives, listen: listen, key: key, axes: axes, watchdog: watchdog) { bits, at in
            status.recordPermit(bits: bits, at: at)
        }
    }

    /// Starts the drives' threads (before the host's handshake) and their side of the channel.
    public func start(priority: Int32?) throws(RuntimeError) {
        if let safety {
            do { try safety.start(priority: priority) } catch { throw .monitor(error.description) }
        }
        emulator?.fifoPriority = priority
        emulator?.start()
        server?.fifoPriority = priority
        server?.start()
    }

    /// Stops every thread; idempotent.
    public func stop() {
        safety?.stop()
        emulator?.stop()
        server?.stop()
    }

    /// Whether any drive's power stage is on.
    public var powered: Bool {
        // A killed emulator is a drive that lost its supply: no power, whatever it last reported.
        if let emulator { return emulator.isRunning && emulator.report.enabled }
        if let segment { return (0..<axes).contains { segment.drive($0).state == .operationEnabled } }
        return false
    }

    /// The drives stop answering for good, as drives that lost their supply or a cut cable.
    public func kill() {
        emulator?.kill()
        server?.stop()
    }

    /// A fault the drives' own protection latches (DriveLink: FAULT `code` on `axis`; EtherCAT:
    /// the slave `axis` goes to its fault state).
    public func injectFault(axis: Int, code: UInt16 = 2) {
        emulator?.injectFault(axis: UInt8(clamping: axis), code: code)
        segment?.injectDriveFault(slave: axis)
    }
}

/// A link opened for the live runtime: the host's end, the emulated far end if any, and its name.
public struct OpenedLink: ~Copyable {
    public var drives: LinkDrives
    public let emulated: EmulatedDrives?
    public let name: String

    /// The host's end, to run (read `emulated` and `name` first).
    public consuming func takeDrives() -> LinkDrives { drives }
}

public enum LiveLinks {
    /// µs — the emulated DriveLink drives' own watchdog: a host silent for this long loses power.
    /// A drive parameter (20 ms in the scripted demo, on a lighter cycle); longer here because
    /// the live cycle shares a non-real-time machine with imaging and the monitor.
    public static let emulatedWatchdog: UInt32 = 100_000

    /// Opens the drives' link for `axes` standing at `start`: for `serial` and `ethercat-udp`
    /// the emulated drives too (not yet started), for a device its port or socket. `.simulated`
    /// opens no link.
    /// `watchdog`: the emulated DriveLink drives' own (µs).
    public static func open(_ drives: LiveDrives, axes: [AxisSpec], start: JointVector, period: Nanoseconds,
                            dynamics: DriveDynamics = .ideal, watchdog: UInt32 = emulatedWatchdog) throws(RuntimeError) -> OpenedLink {
        func failed(_ e: some Error & CustomStringConvertible) -> RuntimeError { .badSetting(field: "link", reason: e.description) }
        switch drives {
        case .simulated:
            return OpenedLink(drives: LinkDrives(none: axes.count), emulated: nil, name: "sim")
        case .emulatedDriveLink:
            let pty: PseudoTerminal.Pair
            do { pty = try PseudoTerminal.openPair() } catch { throw failed(error) }
            let emulator = DriveLinkDriveEmulator(axes: axes, start: start, deviceFD: pty.deviceFD, watchdogMicroseconds: watchdog,
                                                  dynamics: dynamics)
            let host = DriveLinkRobot(axes: axes, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path), cyclePeriod: period)
            return OpenedLink(drives: LinkDrives(driveLink: host), emulated: EmulatedDrives(emulator: emulator, axes: axes.count),
                              name: "serial (emulated drives, DriveLink through the C reference, on \(pty.path))")
        case .emulatedEtherCAT:
            let segment = EtherCATSegment(axes: axes, start: start, dynamics: dynamics)
            let server: EtherCATUDPServer
            do { server = try EtherCATUDPServer(segment: segment) } catch { throw failed(error) }
            let transport: DescriptorTransport
            do { transport = try EtherCATMaster.udpTransport(host: "127.0.0.1", port: server.port) } catch { throw failed(error) }
            return OpenedLink(drives: LinkDrives(etherCAT: EtherCATRobot(axes: axes, master: EtherCATMaster(transport: transport))),
                              emulated: EmulatedDrives(segment: segment, server: server, axes: axes.count),
                              name: "ethercat-udp (simulated CiA 402 slaves on 127.0.0.1:\(server.port))")
        case .device(let address):
            switch address {
            case .sim:
                return OpenedLink(drives: LinkDrives(none: axes.count), emulated: nil, name: "sim")
            case .pty(let path):
                let fd: Int32
                do { fd = try PseudoTerminal.open(path: path) } catch { throw failed(error) }
                let host = DriveLinkRobot(axes: axes, transport: DescriptorTransport(fd: fd, owns: true, name: path), cyclePeriod: period)
                return OpenedLink(drives: LinkDrives(driveLink: host), emulated: nil, name: address.description)
            case .serial(let path, let baud):
                let port: SerialPort
                do { port = try SerialPort(path: path, baud: baud) } catch { throw failed(error) }
                let host = DriveLinkRobot(axes: axes, transport: DescriptorTransport(fd: port.descriptor, owns: false, name: path), owner: port,
                                          cyclePeriod: period)
                return OpenedLink(drives: LinkDrives(driveLink: host), emulated: nil, name: address.description)
            case .ethercatUDP(let host, let port):
                let transport: DescriptorTransport
                do { transport = try EtherCATMaster.udpTransport(host: host, port: port) } catch { throw failed(error) }
                return OpenedLink(drives: LinkDrives(etherCAT: EtherCATRobot(axes: axes, master: EtherCATMaster(transport: transport))),
                                  emulated: nil, name: address.description)
            case .ethercat(let interface):
                let master: EtherCATMaster
                do { master = try EtherCATMaster.raw(interface: interface) } catch { throw failed(error) }
                return OpenedLink(drives: LinkDrives(etherCAT: EtherCATRobot(axes: axes, master: master)), emulated: nil, name: address.description)
            }
        }
    }
}
