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
    /// Cycles whose read found no fresh state.
    public var cyclesWithoutState: Int = 0
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
        rx = .allocate(byteCount: 4096, alignment: 8)
        scratch = .allocate(byteCount: DriveLink.maxFrame + 16, alignment: 8)
        payload = .allocate(byteCount: DriveLink.maxPayload, alignment: 8)
        wire = .allocate(byteCount: DriveLink.maxWireFrame, alignment: 8)
    }

    deinit {
        rx.deallocate(); scratch.deallocate(); payload.deallocate(); wire.deallocate()
    }

    // MARK: Set-up (not real-time)

    /// The handshake: HELLO until a HELLO_ACK (three tries, 200 ms each), checking the version
    /// and the axis count, then the watchdog if one was asked for.
    public mutating func configure() throws(HardwareError) {
        drain()
        var hello = [UInt8](repeating: 0, count: 12)
        hello[0] = DriveLink.version
        hello[1] = DriveLink.version
        let period = UInt32(clamping: cyclePeriod / 1000)
        withUnsafeBytes(of: period.littleEndian) { for i in 0..<4 { hello[4 + i] = $0[i] } }
        for _ in 0..<3 {
            _ = sendFrame(.hello, hello)
            guard let (frame, body) = awaitFrame(.helloAck, timeout: 200_000_000) else { continue }
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
        throw HardwareError("no HELLO_ACK from the drive on \(transport.name) after 3 tries (600 ms): check wiring, baud rate and power")
    }

    private mutating func setWatchdog(_ us: UInt32) throws(HardwareError) {
        var p = [UInt8](repeating: 0, count: 8)
        p[0] = 1
        withUnsafeBytes(of: us.littleEndian) { for i in 0..<4 { p[4 + i] = $0[i] } }
        _ = sendFrame(.paramWrite, p)
        guard let (_, body) = awaitFrame(.paramValue, timeout: 200_000_000) else {
            throw HardwareError("drive did not answer the watchdog PARAM_WRITE")
        }
        if body[2] != 0 { throw HardwareError("drive refused watchdog_us = \(us) (status \(body[2]))") }
        driveWatchdog = us
    }

    /// Waits up to `timeout` (ns) for bytes from the drive (for measurements, not the cycle).
    public func waitReadable(timeout: Nanoseconds) -> Bool { transport.waitReadable(timeout: timeout) }

    public mutating func activate() throws(HardwareError) {}
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
                if frame.type == type {
                    lastRxSeq = frame.seq
                    haveRxSeq = true
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
        if fresh { return nil }
        stats.cyclesWithoutState += 1
        return rejectedNow ? .corruptFrame : .noData
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
            return true
        case .fault:
            if body.count == 8 {
                stats.faultsReported += 1
                stats.lastFaultCode = UInt16(littleEndian: body.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            }
            return false
        default:
            // Replies to set-up messages (late HELLO_ACK, PARAM_VALUE …) carry nothing for the cycle.
            return false
        }
    }

    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func write(_ command: JointCommand, now: Nanoseconds) -> HardwareFault? {
        guard command.position.count == jointCount else { return .shapeMismatch }
        let size = CyclicImage.commandSize(axes: jointCount)
        if !CyclicImage.encodeCommand(command, countsPerUnit: countsPerUnit, into: UnsafeMutableRawBufferPointer(rebasing: payload[0..<size])) {
            return .invalidCommand
        }
        return send(.command, UnsafeRawBufferPointer(rebasing: payload[0..<size])) ? nil : .linkLost
    }
}
