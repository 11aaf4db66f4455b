import Core
import Glibc
import Safety
import Scenarios
import Sim
import Synchronization

/// What other threads may read of the channel: the last permit's bits (1 power, 2 quick stop)
/// and time, the last heartbeat's time (monotonic ns), and the monitor's last status. Written by
/// the cycle, read by anyone.
public final class SafetyLinkStatus: @unchecked Sendable {
    /// [permit bits, permit at, heartbeat at, permits taken, permits refused,
    ///  status version (odd while written), status bits (1 permit, 2 quick stop), category (-1 none),
    ///  latched checks, present checks, status at, statuses taken, statuses refused]
    let cells: UnsafeMutablePointer<Int64>
    static let cellCount = 13
    public init() {
        cells = .allocate(capacity: Self.cellCount)
        cells.initialize(repeating: 0, count: Self.cellCount)
    }
    deinit { cells.deallocate() }
    /// A permit the drives' side took (bits: 1 power, 2 quick stop) at `at`: for drives whose
    /// side of the channel runs outside the cycle (an emulated link's drives).
    public func recordPermit(bits: Int, at: Nanoseconds) {
        SharedIndex.store(cells, Int64(bits))
        SharedIndex.store(cells + 1, at)
        SharedIndex.store(cells + 3, SharedIndex.load(cells + 3) + 1)
    }
    public var permitBits: Int64 { SharedIndex.load(cells) }
    public var permitAt: Nanoseconds { SharedIndex.load(cells + 1) }
    public var heartbeatAt: Nanoseconds { SharedIndex.load(cells + 2) }
    public var permitsTaken: Int64 { SharedIndex.load(cells + 3) }
    public var permitsRefused: Int64 { SharedIndex.load(cells + 4) }

    /// The monitor's newest status and when the cycle took it (nil before the first, or while
    /// the cycle writes it).
    public var monitorStatus: (status: MonitorStatus, at: Nanoseconds)? {
        let v = SharedIndex.load(cells + 5)
        if v & 1 != 0 { return nil }
        let bits = SharedIndex.load(cells + 6), category = SharedIndex.load(cells + 7)
        let latched = SharedIndex.load(cells + 8), active = SharedIndex.load(cells + 9), at = SharedIndex.load(cells + 10)
        if SharedIndex.load(cells + 5) != v || at <= 0 { return nil }
        return (MonitorStatus(permit: bits & 1 != 0, quickStop: bits & 2 != 0, category: StopCategory(rawValue: Int(category)),
                              latched: UInt32(truncatingIfNeeded: latched), active: UInt32(truncatingIfNeeded: active)), at)
    }
    public var statusesTaken: Int64 { SharedIndex.load(cells + 11) }
    public var statusesRefused: Int64 { SharedIndex.load(cells + 12) }
}

/// The newest tip the images measured in 3D, from the imaging thread to the cycle, which relays
/// it to the monitor as its second tip source: a sequence lock over five cells (version, acquired
/// at, x, y, z as bit patterns; the version is odd while written). One writer; the reader never
/// waits, and keeps what it had when it meets a write.
public final class ImageTipCell: @unchecked Sendable {
    let cells: UnsafeMutablePointer<Int64>
    public init() {
        cells = .allocate(capacity: 5)
        cells.initialize(repeating: 0, count: 5)
    }
    deinit { cells.deallocate() }

    /// Publishes a triangulated tip (mm, static patient frame) acquired at `acquiredAt`.
    /// Called by the imaging thread only.
    public func publish(_ tip: Vec3, acquiredAt: Nanoseconds) {
        guard tip.x.isFinite, tip.y.isFinite, tip.z.isFinite, acquiredAt > 0 else { return }
        let v = SharedIndex.load(cells)
        SharedIndex.store(cells, v &+ 1)
        SharedIndex.store(cells + 1, acquiredAt)
        SharedIndex.store(cells + 2, Int64(bitPattern: tip.x.bitPattern))
        SharedIndex.store(cells + 3, Int64(bitPattern: tip.y.bitPattern))
        SharedIndex.store(cells + 4, Int64(bitPattern: tip.z.bitPattern))
        SharedIndex.store(cells, v &+ 2)
    }

    /// The newest tip (for tests and figures).
    public var latest: (tip: Vec3, acquiredAt: Nanoseconds)? { ImageTipCells.read(cells) }
}

/// The cycle's read of an `ImageTipCell`'s cells (a plain namespace: the cycle touches no class).
enum ImageTipCells {
    /// The newest tip and its acquisition time, or nil while it is being written or before any.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    static func read(_ cells: UnsafeMutablePointer<Int64>) -> (tip: Vec3, acquiredAt: Nanoseconds)? {
        let v = SharedIndex.load(cells)
        if v & 1 != 0 { return nil }
        let at = SharedIndex.load(cells + 1)
        let x = Double(bitPattern: UInt64(bitPattern: SharedIndex.load(cells + 2)))
        let y = Double(bitPattern: UInt64(bitPattern: SharedIndex.load(cells + 3)))
        let z = Double(bitPattern: UInt64(bitPattern: SharedIndex.load(cells + 4)))
        if SharedIndex.load(cells) != v { return nil }
        if at <= 0 { return nil }
        return (Vec3(x, y, z), at)
    }
}

/// The running system's side of the safety channel (docs/safety/channel.md), serviced from the
/// cycle: the simulated drives take the monitor's permits onto their safety lines and send it
/// their own readings (the emulated drives have no processor of their own, so their channel runs
/// where they are stepped; on hardware the drive firmware does this), the cycle sends its
/// heartbeat, and the operator's deadman and acknowledge are relayed as the console's input.
/// Every datagram is sealed with the channel key; permits are taken only through `PermitGate`.
/// Owned by the cycle thread once the cycle runs; set-up allocates everything it uses.
public struct SafetyLink: ~Copyable {
    let drivesSocket: DatagramSocket?
    let controlSocket: DatagramSocket?
    let monitor: sockaddr_un
    /// The sockets' descriptors, so the cycle touches no reference.
    let drivesFD: Int32
    let controlFD: Int32
    let receiver = CredentialReceiver()
    var gate: PermitGate
    var statusGate: StatusGate
    var drivesSealer: ChannelSealer
    var controlSealer: ChannelSealer
    var consoleSealer: ChannelSealer
    let key: ChannelKey
    let rx: UnsafeMutableRawBufferPointer
    let tx: UnsafeMutableRawBufferPointer
    let status: UnsafeMutablePointer<UInt8>
    let cells: UnsafeMutablePointer<Int64>
    let statusOwner: SafetyLinkStatus
    let axes: Int
    var sampleSequence: UInt32 = 0
    var heartbeatSequence: UInt64 = 0
    var lastHeartbeat: Nanoseconds = 0
    var pressRemaining = 0
    var cycles = 0
    /// The image tip last relayed (kept across a cycle that met the imaging thread writing it).
    var imageTip = Vec3.zero
    var imageTipAt: Nanoseconds = 0
    /// False for the stand-in used when a run has no monitor (tests of the cycle alone).
    public let enabled: Bool

    /// A link that does nothing: the drives' safety lines stay unarmed.
    public init(disabledWith status: SafetyLinkStatus) {
        enabled = false
        drivesSocket = nil
        controlSocket = nil
        drivesFD = -1
        controlFD = -1
        monitor = sockaddr_un()
        key = ChannelKey(secret: [UInt8](repeating: 0, count: 32))
        gate = PermitGate(key: key, monitorUIDs: UIDSet([0])!)
        statusGate = StatusGate(key: key, monitorUIDs: UIDSet([0])!)
        drivesSealer = ChannelSealer(key: key)
        controlSealer = ChannelSealer(key: key)
        consoleSealer = ChannelSealer(key: key)
        axes = 0
        rx = .allocate(byteCount: 256, alignment: 8)
        tx = .allocate(byteCount: SafetyWire.maxSize, alignment: 8)
        self.status = .allocate(capacity: 1)
        self.status.initialize(to: 0)
        statusOwner = status
        cells = status.cells
    }

    /// Binds the drives' socket at `drives`, and sends to the monitor at `monitor`; the
    /// monitor's status arrives at `statusAt` (nil: the control socket is unnamed, no status).
    public init(drives: String, monitor: String, statusAt: String? = nil, key: ChannelKey, axes: Int, status: SafetyLinkStatus) throws(RuntimeError) {
        let d: DatagramSocket
        do { d = try DatagramSocket(bindTo: drives, passCredentials: true) } catch { throw .monitor("the safety channel's sockets: \(error.description)") }
        try self.init(drivesSocket: d, monitor: monitor, statusAt: statusAt, key: key, axes: axes, status: status)
    }

    /// The control's side alone (heartbeat, operator, the monitor's status), for drives that run
    /// their own side of the channel (a link's drives: their firmware, or an emulation's thread,
    /// takes the permits and sends their readings).
    public init(controlTo monitor: String, statusAt: String? = nil, key: ChannelKey, axes: Int, status: SafetyLinkStatus) throws(RuntimeError) {
        try self.init(drivesSocket: nil, monitor: monitor, statusAt: statusAt, key: key, axes: axes, status: status)
    }

    init(drivesSocket d: DatagramSocket?, monitor: String, statusAt: String?, key: ChannelKey, axes: Int, status: SafetyLinkStatus) throws(RuntimeError) {
        let c: DatagramSocket
        // Named (in the monitor's private directory) when the monitor sends its status there;
        // credentials passed so that only the monitor's user is taken.
        do { c = try DatagramSocket(bindTo: statusAt, passCredentials: statusAt != nil) } catch {
            throw .monitor("the safety channel's sockets: \(error.description)")
        }
        guard let address = DatagramSocket.address(monitor) else { throw .monitor("socket path too long: \(monitor)") }
        guard let uids = UIDSet([geteuid()]) else { throw .monitor("no user id for the monitor") }
        drivesSocket = d
        controlSocket = c
        drivesFD = d?.fd ?? -1
        controlFD = c.fd
        enabled = true
        self.monitor = address
        gate = PermitGate(key: key, monitorUIDs: uids)
        statusGate = StatusGate(key: key, monitorUIDs: uids)
        drivesSealer = ChannelSealer(key: key)
        controlSealer = ChannelSealer(key: key)
        consoleSealer = ChannelSealer(key: key)
        self.key = key
        self.axes = axes
        rx = .allocate(byteCount: 256, alignment: 8)
        tx = .allocate(byteCount: SafetyWire.maxSize, alignment: 8)
        self.status = .allocate(capacity: max(1, axes))
        self.status.initialize(repeating: 0, count: max(1, axes))
        statusOwner = status
        cells = status.cells
    }

    /// Whether the drives' side runs here (the in-process drives) rather than at the drives.
    public var servesDrives: Bool { drivesFD >= 0 }

    deinit {
        receiver.deallocate()
        rx.deallocate()
        tx.deallocate()
        status.deallocate()
    }

    /// The last permit taken makes the drives stop (a controlled stop, or no power): the monitor
    /// has latched a fault. False without a monitor.
    public var monitorStops: Bool {
        @_noAllocation @_noLocks get {
            if !enabled { return false }
            let bits = SharedIndex.load(cells)
            return bits & 2 != 0 || bits & 1 == 0
        }
    }

    /// The monitor's newest status names a latched fault (false before its first status, and
    /// without a monitor). Only an operator's acknowledge clears it.
    public var monitorLatched: Bool {
        @_noAllocation @_noLocks get { enabled ? SharedIndex.load(cells + 8) != 0 : false }
    }

    /// The monitor's last permit allowed power and is at most `watchdog` old at `now` (true
    /// without a monitor).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func powerPermitted(now: Nanoseconds, watchdog: Nanoseconds) -> Bool {
        if !enabled { return true }
        let at = SharedIndex.load(cells + 1)
        return SharedIndex.load(cells) & 1 == 1 && at > 0 && now - at <= watchdog
    }

    /// Takes every permit waiting on the drives' socket onto the drives' safety lines.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func takePermits(into physics: borrowing CatheterPhysicsRobot, now: Nanoseconds) {
        if !enabled { return }
        if drivesFD < 0 { return }
        var taken = 0
        while taken < 64 {
            let got = receiver.receive(drivesFD, into: rx)
            if got.count <= 0 { break }
            taken += 1
            if got.truncated {
                SharedIndex.store(cells + 4, cells[4] + 1)
                continue
            }
            let admitted = gate.admit(UnsafeRawBufferPointer(start: UnsafeRawPointer(rx.baseAddress), count: got.count), uid: got.uid, hasCredentials: got.hasCredentials)
            guard let p = admitted else {
                SharedIndex.store(cells + 4, cells[4] + 1)
                continue
            }
            physics.refreshSafetyLine(permit: p.permit, quickStop: p.quickStop)
            SharedIndex.store(cells, (p.permit ? 1 : 0) | (p.quickStop ? 2 : 0))
            SharedIndex.store(cells + 1, now)
            SharedIndex.store(cells + 3, cells[3] + 1)
        }
    }

    /// Takes the monitor's statuses waiting on the control socket; the newest goes to the
    /// shared cells. They grant nothing: what the console and the run's reports show.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func takeStatus(now: Nanoseconds) {
        if !enabled { return }
        var taken = 0
        while taken < 64 {
            let got = receiver.receive(controlFD, into: rx)
            if got.count <= 0 { break }
            taken += 1
            let admitted = got.truncated ? nil : statusGate.admit(UnsafeRawBufferPointer(start: UnsafeRawPointer(rx.baseAddress), count: got.count),
                                                                  uid: got.uid, hasCredentials: got.hasCredentials)
            guard let st = admitted else {
                SharedIndex.store(cells + 12, cells[12] + 1)
                continue
            }
            var category: Int64 = -1
            switch st.category {
            case .zero?: category = 0
            case .one?: category = 1
            case .two?: category = 2
            case nil: break
            }
            let v = SharedIndex.load(cells + 5)
            SharedIndex.store(cells + 5, v &+ 1)
            SharedIndex.store(cells + 6, (st.permit ? 1 : 0) | (st.quickStop ? 2 : 0))
            SharedIndex.store(cells + 7, category)
            SharedIndex.store(cells + 8, Int64(st.latched))
            SharedIndex.store(cells + 9, Int64(st.active))
            SharedIndex.store(cells + 10, now)
            SharedIndex.store(cells + 5, v &+ 2)
            SharedIndex.store(cells + 11, cells[11] + 1)
        }
    }

    /// The drives' sample, the cycle's heartbeat (with the command it wrote) and, every tenth
    /// cycle or while an acknowledge is pressed, the operator's deadman. Returns the time since
    /// the previous heartbeat (ns; 0 for the first).
    ///
    /// The heartbeat's time is `commandAt`, the cycle's wake-up the command was computed for, not
    /// `now`: the limiter bounds each command's step by the time between wake-ups, and the
    /// monitor divides consecutive commands' difference by the heartbeats' times. Stamped when
    /// sent, a cycle the scheduler held back between its wake-up and its write put two
    /// heartbeats a fraction of a period apart, and a command at 8.5 mm/s read as 25.5 mm/s
    /// (a category-0 velocity trip in a loaded live run).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func send(physics: borrowing CatheterPhysicsRobot, command: JointCommand, now: Nanoseconds, commandAt: Nanoseconds, imageGuided: Bool,
                     imageAcquiredAt: Nanoseconds, imageTip cell: UnsafeMutablePointer<Int64>? = nil, linkErrors: LinkErrorCounts = LinkErrorCounts(),
                     deadman: Bool, acknowledge: Bool) -> Nanoseconds {
        if drivesFD >= 0 { sendDriveSample(physics: physics, now: now) }
        return sendControl(command: command, now: now, commandAt: commandAt, imageGuided: imageGuided, imageAcquiredAt: imageAcquiredAt,
                           imageTip: cell, linkErrors: linkErrors, deadman: deadman, acknowledge: acknowledge)
    }

    /// The in-process drives' own readings, as their firmware would send them.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func sendDriveSample(physics: borrowing CatheterPhysicsRobot, now: Nanoseconds) {
        var encoder = JointVector(count: axes), load = JointVector(count: axes)
        var velocity = JointVector(count: axes), current = JointVector(count: axes)
        for i in 0..<axes {
            let s = physics.safetySample(axis: i)
            encoder[i] = s.encoder
            load[i] = s.load
            velocity[i] = s.velocity
            current[i] = s.current
            status[i] = (s.powered ? 1 : 0) | (s.faulted ? 2 : 0)
        }
        sampleSequence &+= 1
        var force = physics.pushForce
        if !force.isFinite { force = 0 }
        let n = SafetyWire.encodeDriveSample(sequence: sampleSequence, sampledAt: now, force: force, encoder: encoder, load: load,
                                             velocity: velocity, current: current, status: status, counter: drivesSealer.next(),
                                             key: key, into: tx)
        _ = DescriptorIO.send(drivesFD, UnsafeRawBufferPointer(start: tx.baseAddress, count: n), to: monitor)
    }

    /// The cycle's heartbeat and the operator's messages (see `send`), with the drive link's
    /// error counters (zero for the in-process drives, which have no link). Returns the time
    /// since the previous heartbeat (ns; 0 for the first).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func sendControl(command: JointCommand, now: Nanoseconds, commandAt: Nanoseconds, imageGuided: Bool,
                                     imageAcquiredAt: Nanoseconds, imageTip cell: UnsafeMutablePointer<Int64>? = nil,
                                     linkErrors: LinkErrorCounts = LinkErrorCounts(), deadman: Bool, acknowledge: Bool) -> Nanoseconds {
        heartbeatSequence &+= 1
        let following = command.enable ? command.mode == .position : false
        if let cell, let t = ImageTipCells.read(cell) {
            imageTip = t.tip
            imageTipAt = t.acquiredAt
        }
        let h = SafetyWire.encodeHeartbeat(sequence: heartbeatSequence, sentAt: commandAt, following: following, imageGuided: imageGuided,
                                           imageAcquiredAt: imageAcquiredAt, lostFrames: linkErrors.lost, crcErrors: linkErrors.corrupt,
                                           wkcErrors: linkErrors.workingCounter,
                                           position: command.position, velocity: command.velocity, imageTip: imageTip,
                                           imageTipAcquiredAt: imageTipAt, counter: controlSealer.next(), key: key, into: tx)
        _ = DescriptorIO.send(controlFD, UnsafeRawBufferPointer(start: tx.baseAddress, count: h), to: monitor)
        let gap = lastHeartbeat == 0 ? 0 : now - lastHeartbeat
        lastHeartbeat = now
        SharedIndex.store(cells + 2, now)

        // An acknowledge is a 5 ms press, so that the monitor sees its edge.
        if acknowledge, pressRemaining == 0 { pressRemaining = 5 }
        let press = pressRemaining > 0
        if press { pressRemaining -= 1 }
        cycles &+= 1
        // No `||`/`&&` here: their autoclosures would retain self inside the cycle.
        var due = press
        if cycles % 10 == 0 { due = true }
        if due {
            let m = SafetyWire.encodeOperator(deadman: deadman, acknowledge: press, counter: consoleSealer.next(), key: key, into: tx)
            _ = DescriptorIO.send(controlFD, UnsafeRawBufferPointer(start: tx.baseAddress, count: m), to: monitor)
        }
        return gap
    }
}
