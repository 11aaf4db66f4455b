import Core

/// What the host side of a DriveLink link has seen.
public struct DriveLinkStats: Sendable, Equatable {
    public var framesSent: Int = 0
    /// Frames that passed every check, of any type.
    public var framesAccepted: Int = 0
    public var statesReceived: Int = 0
    /// Frames rejected: bad COBS, CRC, version, type or length.
    public var rejected: Int = 0
    /// Frames that passed the checks but whose payload does not fit their type (a drive bug).
    public var wrongPayload: Int = 0
    /// Frames dropped as duplicates or out of order.
    public var stale: Int = 0
    /// Frames dropped for overflowing the receive buffer.
    public var oversized: Int = 0
    /// FAULT messages the drive sent, and the last one's code.
    public var faultsReported: Int = 0
    public var lastFaultCode: UInt16 = 0
    /// STATEs whose ack_seq is not the last COMMAND's (they answer an older one: a slow line).
    /// Taken as the newest state all the same; docs/protocol.md, *Host reaction*.
    public var lateStates: Int = 0
    /// COMMANDs sent with enable = 1 while a drive fault was latched. The host never does
    /// this (the cycle stops on the fault before its next write); a test checks it stays 0.
    public var enableWhileFaulted: Int = 0
    /// FAULT_RESETs sent (each on an operator's acknowledge).
    public var faultResets: Int = 0
    /// Cycles whose read found no fresh state (a late STATE counts here too).
    public var cyclesWithoutState: Int = 0
    /// COMMANDs sent, and those a STATE answered (its ack_seq newer than every earlier one).
    public var commandsSent: Int = 0
    public var commandsAnswered: Int = 0
    /// COMMANDs the link lost: those no STATE answered though a STATE answered a later one, and
    /// those still unanswered beyond the last `DriveLink.lateAnswers` (a slow line may owe
    /// those). Never decreases. A STATE that comes a cycle or two late answers its COMMAND and
    /// is not counted here, though its cycle counted in `cyclesWithoutState`: this is what the
    /// monitor's lost-frame check is given.
    public var commandsLost: Int = 0
    /// Writes that failed at the transport.
    public var sendErrors: Int = 0
}

/// A robot whose drives speak DriveLink over a byte stream (a serial port, or a pty to the
/// simulated drives): the host side of docs/protocol.md behind the `RobotHardware` protocol.
///
/// Each cycle `write` sends one COMMAND and the drive answers with a STATE, which the next
/// cycle's `read` takes; a read without a fresh, valid STATE reports `.noData` (or
/// `.corruptFrame` when only rejected frames came), and the cycle stops motion after its
/// configured number of such cycles. Frames are checked (COBS, CRC-32C, version, type, length,
/// sequence) and a bad one is counted, never applied.
public struct DriveLinkRobot: ~Copyable, RobotHardware {
    public let jointCount: Int
    /// (nJoints) counts per mm or rad.
    let countsPerUnit: JointVector
    let transport: DescriptorTransport
    /// Keeps the transport's owner (a `SerialPort`) alive; never touched in the cycle.
    let owner: AnyObject?
    let cyclePeriod: Nanoseconds
    /// µs; written to the drive at configure time when set.
    let watchdog: UInt32?

    let rx: UnsafeMutableRawBufferPointer
    let scratch: UnsafeMutableRawBufferPointer
    let payload: UnsafeMutableRawBufferPointer
    let wire: UnsafeMutableRawBufferPointer
    var assembler = FrameAssembler()
    var txSeq: UInt16 = 0
    var lastRxSeq: UInt16 = 0
    var haveRxSeq = false
    public private(set) var stats = DriveLinkStats()
    /// The first fault the drive latched since the last acknowledge (docs/protocol.md, *Faults*).
    public private(set) var latchedFault: DriveFaultReport?
    /// True when `latchedFault` was inferred from status bits, so a FAULT message naming it
    /// replaces it.
    var faultInferred = false
    /// Whether the last `read` took a fresh state, and rejected a frame.
    var lastReadFresh = false
    var lastReadRejected = false
    /// The enable of the last COMMAND sent, and its seq.
    var askedEnable = false
    var lastCommandSeq: UInt16 = 0
    /// The newest ack_seq a STATE carried, and the place in the order of COMMANDs sent (1 the
    /// first) of the COMMAND it answered.
    var lastAck: UInt16 = 0
    var haveAck = false
    var answeredThrough = 0
    /// The seq and place of the last `sentWindow` COMMANDs, by place modulo the window: which
    /// COMMAND an ack_seq answers (other messages take seq numbers too).
    var sentSeq = InlineArray<64, UInt16>(repeating: 0)
    var sentPlace = InlineArray<64, Int>(repeating: 0)
    /// `DriveLink.lateAnswers`, held here so that the cycle reads a plain field.
    let lateAnswers = DriveLink.lateAnswers
    /// Whether a STATE confirmed the power stage on since the host last asked for it, and how
    /// many STATEs came since without confirming it.
    var powerConfirmed = false
    var statesAwaitingPower = 0
    /// STATEs (one a cycle) a drive has to confirm its power stage after enable = 1:
    /// `DriveLink.powerUpTime` at the cycle period.
    let powerUpStates: Int
    /// The drive's firmware id and watchdog, from the handshake.
    public private(set) var firmwareID = ""
    public private(set) var driveWatchdog: UInt32 = 0

    public init(axes: [AxisSpec], transport: consuming DescriptorTransport, owner: AnyObject? = nil,
                cyclePeriod: Nanoseconds = 1_000_000, watchdog: UInt32? = nil) {
        jointCount = axes.count
        countsPerUnit = JointVector(axes.map(\.countsPerUnit))
        self.transport = transport
        self.owner = owner
        self.cyclePeriod = cyclePeriod
        self.watchdog = watchdog
        powerUpStates = max(1, Int(DriveLink.powerUpTime / max(1, cyclePeriod)))
        rx = .allocate(byteCount: 4096, alignment: 8)
        scratch = .allocate(byteCount: DriveLink.maxFrame + 16, alignment: 8)
        payload = .allocate(byteCount: DriveLink.maxPayload, alignment: 8)
        wire = .allocate(byteCount: DriveLink.maxWireFrame, alignment: 8)
    }

    deinit {
        rx.deallocate(); scratch.deallocate(); payload.deallocate(); wire.deallocate()
    }

    // MARK: Set-up (not real-time)

    /// The handshake: HELLO until a HELLO_ACK (`DriveLink.helloTries` tries, each waiting
    /// `DriveLink.replyDeadline`), checking the version and the axis count, then the watchdog
    /// if one was asked for. A HELLO_ACK resets the host's sequence state (a restarted drive
    /// counts from anywhere).
    public mutating func configure() throws(HardwareError) {
        drain()
        var hello = [UInt8](repeating: 0, count: 12)
        hello[0] = DriveLink.version
        hello[1] = DriveLink.version
        let period = UInt32(clamping: cyclePeriod / 1000)
        withUnsafeBytes(of: period.littleEndian) { for i in 0..<4 { hello[4 + i] = $0[i] } }
        for _ in 0..<DriveLink.helloTries {
            _ = sendFrame(.hello, hello)
            guard let (frame, body) = awaitFrame(.helloAck, timeout: DriveLink.replyDeadline) else { continue }
            guard frame.payloadCount == 28 else { throw HardwareError("drive answered HELLO with \(frame.payloadCount) bytes, expected 28") }
            if body[0] != DriveLink.version {
                throw HardwareError("drive speaks no DriveLink version in \(DriveLink.version)…\(DriveLink.version) (it answered \(body[0]))")
            }
            if Int(body[1]) != jointCount {
                throw HardwareError("drive reports \(body[1]) axes, the robot file has \(jointCount)")
            }
            driveWatchdog = UInt32(body[4]) | UInt32(body[5]) << 8 | UInt32(body[6]) << 16 | UInt32(body[7]) << 24
            firmwareID = String(decoding: body[12..<28].prefix { $0 != 0 }, as: UTF8.self)
            if let watchdog { try setWatchdog(watchdog) }
            return
        }
        throw HardwareError("no HELLO_ACK from the drive on \(transport.name) after \(DriveLink.helloTries) tries (\(DriveLink.helloTries * Int(DriveLink.replyDeadline / 1_000_000)) ms): check wiring, baud rate and power")
    }

    private mutating func setWatchdog(_ us: UInt32) throws(HardwareError) {
        var p = [UInt8](repeating: 0, count: 8)
        p[0] = 1
        withUnsafeBytes(of: us.littleEndian) { for i in 0..<4 { p[4 + i] = $0[i] } }
        _ = sendFrame(.paramWrite, p)
        guard let (_, body) = awaitFrame(.paramValue, timeout: DriveLink.replyDeadline) else {
            throw HardwareError("drive did not answer the watchdog PARAM_WRITE")
        }
        if body[2] != 0 { throw HardwareError("drive refused watchdog_us = \(us) (status \(body[2]))") }
        driveWatchdog = us
    }

    /// Waits up to `timeout` (ns) for bytes from the drive (for measurements, not the cycle).
    public func waitReadable(timeout: Nanoseconds) -> Bool { transport.waitReadable(timeout: timeout) }

    /// Bring-up steps 3 and 4 of docs/protocol.md: one COMMAND in hold with enable 0, whose STATE
    /// shows the link answering and no fault latched, before the cycle may ask for power. A drive
    /// with a latched fault (one restarted after its watchdog tripped, say) is refused here, with
    /// the fault, until an operator acknowledges it. Not real-time.
    public mutating func activate() throws(HardwareError) {
        if let latchedFault { throw HardwareError("drive fault latched: \(latchedFault)", driveFault: latchedFault) }
        var hold = JointCommand(jointCount: jointCount)
        hold.setHold(enable: false)
        let size = CyclicImage.commandSize(axes: jointCount)
        _ = CyclicImage.encodeCommand(hold, countsPerUnit: countsPerUnit, into: UnsafeMutableRawBufferPointer(rebasing: payload[0..<size]))
        // More tries than HELLO: a noisy line that let the handshake through may eat a few of
        // these, and each costs a frame, not a restart.
        for _ in 0..<(3 * DriveLink.helloTries) {
            askedEnable = false
            noteCommandSent()
            _ = send(.command, UnsafeRawBufferPointer(rebasing: payload[0..<size]))
            guard awaitFrame(.state, timeout: DriveLink.replyDeadline) != nil else { continue }
            if let latchedFault { throw HardwareError("drive fault latched: \(latchedFault)", driveFault: latchedFault) }
            return
        }
        throw HardwareError("no STATE from the drive on \(transport.name) for a hold COMMAND with enable 0 after \(3 * DriveLink.helloTries) tries")
    }

    /// An operator's acknowledge: FAULT_RESET, and its FAULT_RESET_ACK's `remaining_fault`.
    /// Clears the host's latched fault when the drive cleared its own; throws with the
    /// remaining fault when its cause is still there. Never sent by the cycle. Not real-time.
    public mutating func acknowledgeFaults() throws(HardwareError) {
        drain()
        stats.faultResets += 1
        guard sendFrame(.faultReset, []) else { throw HardwareError("cannot send FAULT_RESET on \(transport.name)") }
        guard let (_, body) = awaitFrame(.faultResetAck, timeout: DriveLink.replyDeadline), body.count == 2 else {
            throw HardwareError("no FAULT_RESET_ACK from the drive on \(transport.name) within \(DriveLink.replyDeadline / 1_000_000) ms")
        }
        let remaining = UInt16(body[0]) | UInt16(body[1]) << 8
        if remaining != 0 {
            // The same fault stays latched as it was (axis, detail); another one is drive-wide.
            var f = DriveFaultReport(axis: nil, kind: DriveFaultReport.kind(code: remaining), code: remaining)
            if let latchedFault, latchedFault.code == remaining { f = latchedFault }
            latchedFault = f
            faultInferred = false
            throw HardwareError("the drive keeps fault \(f.name) (code \(remaining)) latched: its cause is still there", driveFault: f)
        }
        latchedFault = nil
        faultInferred = false
        powerConfirmed = false
        statesAwaitingPower = 0
    }

    /// The host learnt that the drives' safety input took their power (a safety monitor's
    /// permits withdrawn or run out): a power stage found off since is that, not a drive fault.
    /// Clears a `powerLost` inferred from the drives' status (never one a FAULT message named,
    /// nor any other fault) and says whether it did; power must be confirmed afresh.
    /// Called after `read`; `outcome` is then what that read returns without the fault.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func powerRemovedBySafetyInput() -> (cleared: Bool, outcome: HardwareFault?) {
        guard faultInferred, let f = latchedFault, f.kind == .powerLost else { return (false, .driveFault) }
        latchedFault = nil
        faultInferred = false
        powerConfirmed = false
        statesAwaitingPower = 0
        askedEnable = false
        return (true, linkOutcome(fresh: lastReadFresh, rejected: lastReadRejected))
    }

    /// The fault behind the cycle's `.driveFault`.
    /// - Important: read by the control cycle; must not allocate, lock or log.
    public var driveFault: DriveFaultReport? { @_noAllocation @_noLocks get { latchedFault } }

    public mutating func deactivate() {}
    public mutating func shutdown() {}

    /// The drive's watchdog ends motion by itself if the host stops; HEARTBEAT keeps a drive
    /// that is configured but not cycling alive. Not real-time.
    public mutating func heartbeat() { _ = sendFrame(.heartbeat, []) }

    private mutating func sendFrame(_ type: DriveLink.MessageType, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { p in send(type, p) }
    }

    /// Waits for a frame of `type`, handling others as the cycle would.
    private mutating func awaitFrame(_ type: DriveLink.MessageType, timeout: Nanoseconds) -> (DriveLink.Frame, [UInt8])? {
        let deadline = MonotonicClock.now() + timeout
        while MonotonicClock.now() < deadline {
            _ = transport.waitReadable(timeout: 10_000_000)
            let n = transport.receive(into: rx)
            if n <= 0 { continue }
            for i in 0..<n {
                guard let encoded = assembler.push(rx[i]) else { continue }
                guard case .success(let frame) = DriveLink.decode(encoded, scratch: scratch) else { stats.rejected += 1; continue }
                stats.framesAccepted += 1
                // A HELLO_ACK resets the sequence state; other frames must be newer.
                if frame.type != .helloAck, haveRxSeq, !DriveLink.isNewer(frame.seq, than: lastRxSeq) {
                    stats.stale += 1
                    continue
                }
                lastRxSeq = frame.seq
                haveRxSeq = true
                if frame.type == .fault || frame.type == .state {
                    var state = JointState(jointCount: jointCount)
                    _ = handle(frame, into: &state)
                }
                if frame.type == type {
                    return (frame, Array(UnsafeRawBufferPointer(rebasing: scratch[frame.payloadOffset..<(frame.payloadOffset + frame.payloadCount)])))
                }
            }
        }
        return nil
    }

    private mutating func drain() {
        while transport.receive(into: rx) > 0 {}
    }

    // MARK: The cycle

    /// Sends one frame built from `body`.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func send(_ type: DriveLink.MessageType, _ body: UnsafeRawBufferPointer) -> Bool {
        guard let n = DriveLink.encode(type: type, seq: txSeq, payload: body, scratch: scratch, into: wire) else { return false }
        txSeq &+= 1
        let sent = transport.send(UnsafeRawBufferPointer(rebasing: wire[0..<n]))
        if sent != n {
            stats.sendErrors += 1
            return false
        }
        stats.framesSent += 1
        return true
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func read(into state: inout JointState, now: Nanoseconds) -> HardwareFault? {
        var fresh = false
        var rejectedNow = false
        var n = transport.receive(into: rx)
        while n > 0 {
            for i in 0..<n {
                guard let encoded = assembler.push(rx[i]) else { continue }
                switch DriveLink.decode(encoded, scratch: scratch) {
                case .failure:
                    stats.rejected += 1
                    rejectedNow = true
                case .success(let frame):
                    if haveRxSeq, !DriveLink.isNewer(frame.seq, than: lastRxSeq) {
                        stats.stale += 1
                        continue
                    }
                    lastRxSeq = frame.seq
                    haveRxSeq = true
                    stats.framesAccepted += 1
                    if handle(frame, into: &state) { fresh = true } else { rejectedNow = true }
                }
            }
            n = transport.receive(into: rx)
        }
        stats.oversized = assembler._oversized
        if n < 0 { return .linkLost }
        lastReadFresh = fresh
        lastReadRejected = rejectedNow
        if case .some = latchedFault { return .driveFault }
        return linkOutcome(fresh: fresh, rejected: rejectedNow)
    }

    /// The read's outcome for the link (no drive fault latched): the commands owed, and whether
    /// a fresh state came.
    @_noAllocation @_noLocks
    mutating func linkOutcome(fresh: Bool, rejected: Bool) -> HardwareFault? {
        // Skipped by a later answer, or owed beyond what a slow line may still owe.
        let owed = (answeredThrough - stats.commandsAnswered) + max(0, stats.commandsSent - answeredThrough - lateAnswers)
        if owed > stats.commandsLost { stats.commandsLost = owed }
        if fresh { return nil }
        stats.cyclesWithoutState += 1
        return rejected ? .corruptFrame : .noData
    }

    /// Applies one checked frame; false when its payload does not fit its type.
    @_noAllocation @_noLocks
    mutating func handle(_ frame: DriveLink.Frame, into state: inout JointState) -> Bool {
        let body = UnsafeRawBufferPointer(rebasing: scratch[frame.payloadOffset..<(frame.payloadOffset + frame.payloadCount)])
        switch frame.type {
        case .state:
            let imageSize = CyclicImage.stateSize(axes: jointCount)
            if body.count != 4 + imageSize + 4 {
                stats.wrongPayload += 1
                return false
            }
            if case .some = CyclicImage.decodeState(UnsafeRawBufferPointer(rebasing: body[4..<(4 + imageSize)]), countsPerUnit: countsPerUnit, into: &state) {
                stats.wrongPayload += 1
                return false
            }
            state.insertionForce = Double(Int32(littleEndian: body.loadUnaligned(fromByteOffset: 4 + imageSize, as: Int32.self))) * 1e-3
            stats.statesReceived += 1
            let ack = UInt16(littleEndian: body.loadUnaligned(as: UInt16.self))
            if ack != lastCommandSeq { stats.lateStates += 1 }
            if !haveAck || DriveLink.isNewer(ack, than: lastAck) {
                stats.commandsAnswered += 1
                lastAck = ack
                haveAck = true
                // The newest of the last 64 COMMANDs with this seq; older than those, the place is
                // not known and stays where the previous answer left it.
                var i = 0
                while i < 64 {
                    let slot = (stats.commandsSent - i) & 63
                    if stats.commandsSent - i < 1 { break }
                    if sentSeq[slot] == ack, sentPlace[slot] == stats.commandsSent - i {
                        answeredThrough = max(answeredThrough, sentPlace[slot])
                        break
                    }
                    i += 1
                }
            }
            checkStatus(body)
            return true
        case .fault:
            if body.count != 8 {
                stats.wrongPayload += 1
                return false
            }
            stats.faultsReported += 1
            let code = UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            stats.lastFaultCode = code
            let named = DriveFaultReport(driveLinkAxis: body[0], code: code, detail: Int32(littleEndian: body.loadUnaligned(fromByteOffset: 4, as: Int32.self)))
            // The first fault latches; a message naming one only inferred from status replaces it.
            var replace = faultInferred
            if case .none = latchedFault { replace = true }
            if replace {
                latchedFault = named
                faultInferred = false
            }
            return false
        default:
            // Replies to set-up messages (late HELLO_ACK, PARAM_VALUE …) carry nothing for the cycle.
            return false
        }
    }

    /// Acts on a STATE's status words (docs/protocol.md, *Host reaction*): bit 1 (fault latched)
    /// or bit 3 (watchdog fault latched) on any axis latches a fault; so does the power stage
    /// going off (bit 0 clear) after it was on, or not coming on within `DriveLink.powerUpTime`,
    /// while the host asks for it.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    mutating func checkStatus(_ body: UnsafeRawBufferPointer) {
        var faultAxes = 0
        var firstAxis = -1
        var watchdog = false
        var allEnabled = true
        for i in 0..<jointCount {
            let st = UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 4 + 8 + 12 * i + 10, as: UInt16.self))
            if st & 0b1010 != 0 {
                faultAxes += 1
                if firstAxis < 0 { firstAxis = i }
            }
            if st & 0b1000 != 0 { watchdog = true }
            if st & 0b1 == 0 { allEnabled = false }
        }
        if faultAxes > 0 {
            if case .none = latchedFault {
                let axis: Int? = faultAxes == jointCount ? nil : firstAxis
                latchedFault = DriveFaultReport(axis: axis, kind: watchdog ? .watchdog : .latched)
                faultInferred = true
            }
            return
        }
        guard askedEnable else { return }
        if allEnabled {
            powerConfirmed = true
            statesAwaitingPower = 0
            return
        }
        statesAwaitingPower += 1
        guard case .none = latchedFault else { return }
        // No `||`: its autoclosure would cost reference counting in the cycle.
        var lost = powerConfirmed
        if statesAwaitingPower > powerUpStates { lost = true }
        if lost {
            latchedFault = DriveFaultReport(axis: nil, kind: .powerLost)
            faultInferred = true
        }
    }

    /// Counts a COMMAND about to be sent with the current seq and remembers its place.
    @_noAllocation @_noLocks
    mutating func noteCommandSent() {
        lastCommandSeq = txSeq
        stats.commandsSent += 1
        sentSeq[stats.commandsSent & 63] = txSeq
        sentPlace[stats.commandsSent & 63] = stats.commandsSent
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        guard command.position.count == jointCount else { return .shapeMismatch }
        let size = CyclicImage.commandSize(axes: jointCount)
        if !CyclicImage.encodeCommand(command, countsPerUnit: countsPerUnit, into: UnsafeMutableRawBufferPointer(rebasing: payload[0..<size])) {
            return .invalidCommand
        }
        if command.enable {
            if !askedEnable {
                powerConfirmed = false
                statesAwaitingPower = 0
            }
            if case .some = latchedFault { stats.enableWhileFaulted += 1 }
        }
        askedEnable = command.enable
        noteCommandSent()
        return send(.command, UnsafeRawBufferPointer(rebasing: payload[0..<size])) ? nil : .linkLost
    }
}
