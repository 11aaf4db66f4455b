import Core

/// A robot whose axes are single-axis CiA 402 drives on EtherCAT: the host side behind the
/// `RobotHardware` protocol. Each cycle `write` fills the outputs (controlword, mode, targets)
/// and sends one LRW; the next cycle's `read` takes its reply, checks the working counter and
/// decodes the inputs. A missing reply is `.noData`, a short working counter or a malformed
/// reply `.corruptFrame`: the cycle stops motion after its configured number of those.
///
/// Power follows `JointCommand.enable` through the CiA 402 state machine: the host steps each
/// drive shutdown → switch on → enable operation, and back to ready when disabled. A drive in
/// *fault* or *fault reaction active* is a drive fault, as on DriveLink (docs/protocol.md,
/// *Host reaction to drive faults*): reads report `.driveFault`, the cycle stops (category 0),
/// activation is refused, and the fault is reset (a rising edge of controlword bit 7) only on
/// an operator's acknowledge, never in the cycle.
public struct EtherCATRobot: ~Copyable, RobotHardware {
    public let jointCount: Int
    let countsPerUnit: JointVector
    var master: EtherCATMaster
    /// (nJoints) last controlword sent, last statusword and position (counts) received.
    let controlwords: UnsafeMutablePointer<UInt16>
    let statuswords: UnsafeMutablePointer<UInt16>
    let positions: UnsafeMutablePointer<Int32>
    var resetFaults = false
    /// The first drive fault seen since the last acknowledge.
    public private(set) var latchedFault: DriveFaultReport?

    public init(axes: [AxisSpec], master: consuming EtherCATMaster) {
        jointCount = axes.count
        countsPerUnit = JointVector(axes.map(\.countsPerUnit))
        self.master = master
        controlwords = .allocate(capacity: axes.count)
        controlwords.initialize(repeating: 0, count: axes.count)
        statuswords = .allocate(capacity: axes.count)
        statuswords.initialize(repeating: 0, count: axes.count)
        positions = .allocate(capacity: axes.count)
        positions.initialize(repeating: 0, count: axes.count)
    }

    deinit {
        controlwords.deallocate(); statuswords.deallocate(); positions.deallocate()
    }

    /// A copy of the master's counters: readable from the cycle (the heartbeat's link counts and
    /// the live counters take it there).
    public var stats: EtherCATStats { @_noAllocation @_noLocks get { master.stats } }

    /// How long a set-up exchange (configuration, a fault reset) waits for its reply, in ns.
    public var setupTimeout: Nanoseconds {
        get { master.setupTimeout }
        set { master.setupTimeout = newValue }
    }

    /// Waits up to `timeout` (ns) for the drives' reply (for tests and measurements).
    public func waitReadableForTests(timeout: Nanoseconds) -> Bool { master.waitReadable(timeout: timeout) }

    /// The CiA 402 state of axis `i`, from its last statusword.
    public func driveState(_ i: Int) -> CiA402.State { CiA402.state(statusword: statuswords[i]) }

    /// Slaves not in OP are asked back (after a working-counter shortfall). Not real-time.
    public mutating func recover() throws(HardwareError) -> [Int] {
        do { return try master.recover() } catch { throw HardwareError(error.description) }
    }

    public mutating func configure() throws(HardwareError) {
        do { try master.configure(expectedSlaves: jointCount) } catch { throw HardwareError(error.description) }
        // Start the targets where the drives are, so enabling them moves nothing.
        _ = master.sendProcessData()
        for _ in 0..<20 {
            _ = master.transport.waitReadable(timeout: 5_000_000)
            var scratch = JointState(jointCount: jointCount)
            if read(into: &scratch, now: 0) == nil { break }
            _ = master.sendProcessData()
        }
    }

    public mutating func activate() throws(HardwareError) {
        if let latchedFault { throw HardwareError("drive fault latched: \(latchedFault)", driveFault: latchedFault) }
    }

    /// - Important: read by the control cycle; must not allocate, lock or log.
    public var driveFault: DriveFaultReport? { @_noAllocation @_noLocks get { latchedFault } }

    /// An operator's acknowledge: fault-reset edges (controlword bit 7) with the power off, one
    /// exchange after another until no drive reports a fault, for up to 20 exchanges. Each waits
    /// for its own reply up to the master's `setupTimeout`. Not real-time; the cycle must not be
    /// running.
    public mutating func acknowledgeFaults() throws(HardwareError) {
        var hold = JointCommand(jointCount: jointCount)
        hold.setHold(enable: false)
        var scratch = JointState(jointCount: jointCount)
        let before = latchedFault
        var answered = false
        var kept: DriveFaultReport?
        for _ in 0..<20 {
            latchedFault = nil
            resetFaults = true
            _ = write(hold, now: 0)
            // An earlier exchange's late reply wakes the wait but answers nothing. Sending again
            // on it would leave every later exchange one reply behind, each read a late one, and
            // a drive that cleared its fault would be reported as keeping it.
            let deadline = MonotonicClock.now() + master.setupTimeout
            var outcome: HardwareFault? = .noData
            while case .noData? = outcome {
                let now = MonotonicClock.now()
                guard now < deadline, master.transport.waitReadable(timeout: deadline - now) else { break }
                outcome = read(into: &scratch, now: 0)
            }
            guard let outcome else { return }
            if case .noData = outcome { continue }
            answered = true
            if let latchedFault { kept = latchedFault }
        }
        guard answered else {
            // Unanswered, the fault is as it was: latched.
            latchedFault = before ?? DriveFaultReport(axis: nil, kind: .latched)
            throw HardwareError("no reply from the drives on \(master.transport.name) to a fault reset within \(master.setupTimeout / 1_000_000) ms; the fault stays latched", driveFault: latchedFault)
        }
        guard let kept else {
            // Every reply was corrupt or short of its working counter: no drive's state was read.
            latchedFault = before ?? DriveFaultReport(axis: nil, kind: .latched)
            throw HardwareError("the drives on \(master.transport.name) answered the fault reset only with corrupt frames or a short working counter (last \(master.stats.lastWorkingCounter), expected \(master.expectedWorkingCounter)); the fault stays latched", driveFault: latchedFault)
        }
        latchedFault = kept
        throw HardwareError("the drive keeps its fault after the reset: \(kept) — its cause is still there", driveFault: kept)
    }
    public mutating func deactivate() {}
    public mutating func shutdown() {}

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        switch master.receiveProcessData() {
        case .noReply, .late: return .noData
        case .malformed, .workingCounter: return .corruptFrame
        case .ok: break
        }
        var enabled = true
        var fault = false
        let input = master.inputs
        for i in 0..<jointCount {
            let o = i * 12
            let sw = UInt16(littleEndian: input.loadUnaligned(fromByteOffset: o, as: UInt16.self))
            let p = Int32(littleEndian: input.loadUnaligned(fromByteOffset: o + 4, as: Int32.self))
            let v = Int32(littleEndian: input.loadUnaligned(fromByteOffset: o + 8, as: Int32.self))
            statuswords[i] = sw
            positions[i] = p
            state.position[i] = Double(p) / countsPerUnit[i]
            state.velocity[i] = Double(v) / countsPerUnit[i]
            // No `&&`/`||`: their autoclosures would cost reference counting in the cycle.
            if sw & 0x6F != 0x27 { enabled = false }
            var axisFault = false
            if sw & 0x4F == 0x08 { axisFault = true }
            if sw & 0x4F == 0x0F { axisFault = true }
            if axisFault {
                fault = true
                if case .none = latchedFault { latchedFault = DriveFaultReport(axis: i, kind: .latched) }
            }
        }
        var status = DriveStatus(rawValue: 0)
        if enabled { status.insert(.enabled) }
        if fault { status.insert(.fault) }
        state.status = status
        state.sampledAt = now
        if case .some = latchedFault { return .driveFault }
        return nil
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        guard command.position.count == jointCount else { return .shapeMismatch }
        let out = master.outputs
        for i in 0..<jointCount {
            let cw = CiA402.controlword(toward: command.enable, statusword: statuswords[i], previous: controlwords[i], resetFaults: resetFaults)
            controlwords[i] = cw
            let o = i * 11
            var target = positions[i]
            var velocity: Int32 = 0
            var mode: Int8 = 8  // CSP (CiA402.Mode.cyclicSynchronousPosition)
            switch command.mode {
            case .hold: break
            case .position:
                target = Int32(roundingSaturating: command.position[i] * countsPerUnit[i])
                velocity = Int32(roundingSaturating: command.velocity[i] * countsPerUnit[i])
            case .velocity:
                mode = 9  // CSV
                velocity = Int32(roundingSaturating: command.velocity[i] * countsPerUnit[i])
            }
            out.storeBytes(of: cw.littleEndian, toByteOffset: o, as: UInt16.self)
            out.storeBytes(of: mode, toByteOffset: o + 2, as: Int8.self)
            out.storeBytes(of: target.littleEndian, toByteOffset: o + 3, as: Int32.self)
            out.storeBytes(of: velocity.littleEndian, toByteOffset: o + 7, as: Int32.self)
        }
        // The fault reset is one rising edge per activation.
        for i in 0..<jointCount where controlwords[i] == CiA402.Command.faultReset { resetFaults = false }
        return master.sendProcessData() ? nil : .linkLost
    }
}
