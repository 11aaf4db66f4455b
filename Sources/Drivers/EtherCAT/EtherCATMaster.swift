import Core
import CRealtime
#if canImport(Glibc)
import Glibc
#endif

/// Why the EtherCAT master could not bring its slaves up or talk to them.
public enum EtherCATError: Error, Equatable, Sendable, CustomStringConvertible {
    case timeout(String)
    case noSlaves
    case slaveCount(expected: Int, found: Int)
    case workingCounter(String, expected: UInt16, got: UInt16)
    case stateChange(slave: Int, requested: ALState, alStatus: UInt16, code: UInt16)
    case malformed(EtherCAT.FrameError)
    case transport(String)

    public var description: String {
        switch self {
        case .timeout(let w): "no answer to \(w) within the receive timeout"
        case .noSlaves: "no EtherCAT slaves answered the scan"
        case .slaveCount(let e, let f): "expected \(e) slaves (one per robot axis), found \(f)"
        case .workingCounter(let w, let e, let g): "\(w): working counter \(g), expected \(e)"
        case .stateChange(let s, let r, let st, let c):
            "slave \(s) did not reach \(r): AL status 0x\(String(st, radix: 16)), status code 0x\(String(c, radix: 16))"
        case .malformed(let e): "malformed EtherCAT reply: \(e)"
        case .transport(let w): w
        }
    }
}

/// What the cyclic exchange has seen.
public struct EtherCATStats: Sendable, Equatable {
    public var framesSent = 0
    public var framesReceived = 0
    /// Process-data exchanges whose working counter fell short of the expected value.
    public var workingCounterShortfalls = 0
    public var lastWorkingCounter: UInt16 = 0
    /// Replies that were not well-formed, or not a cyclic LRW reply at all.
    public var malformed = 0
    /// Replies to an earlier cycle's frame that came after that cycle had given up on it (a
    /// late datagram, a slow network): dropped, never applied, and never taken for this
    /// cycle's reply or for a corrupt one.
    public var late = 0
    /// Cycles without any reply.
    public var missing = 0
}

/// An EtherCAT master for single-axis CiA 402 slaves: it scans the line (BRD), assigns station
/// addresses (APWR 0x0010), walks INIT → PRE-OP → SAFE-OP → OP through AL control and status,
/// maps each slave's process data with two FMMUs, and exchanges all of it every cycle in one
/// LRW whose working counter it checks (expected 3 per slave: outputs written +2, inputs read +1).
///
/// Logical process image: the slaves' outputs (11 bytes each) followed by their inputs
/// (12 bytes each); see `CiA402PDO`.
public struct EtherCATMaster: ~Copyable {
    let transport: DescriptorTransport
    /// How long a set-up exchange waits for its reply (SOEM's EC_TIMEOUTRET is 2 ms; set-up
    /// is not time-critical, so more).
    public var setupTimeout: Nanoseconds = 20_000_000
    let tx: UnsafeMutableRawBufferPointer
    let rx: UnsafeMutableRawBufferPointer
    var index: UInt8 = 0
    var cyclicIndex: UInt8 = 0
    var cyclicLength = 0
    public private(set) var slaveCount = 0
    /// (slaves × 11) bytes, written by the host before each exchange.
    public let outputs: UnsafeMutableRawBufferPointer
    /// (slaves × 12) bytes, filled by each exchange.
    public let inputs: UnsafeMutableRawBufferPointer
    public private(set) var stats = EtherCATStats()
    /// Waits up to `timeout` (ns) for a reply to be there (for measurements and set-up, not the cycle).
    public func waitReadable(timeout: Nanoseconds) -> Bool { transport.waitReadable(timeout: timeout) }

    public var expectedWorkingCounter: UInt16 { @_noAllocation @_noLocks get { UInt16(3 * slaveCount) } }

    /// Bytes before the EtherCAT header: 0 over UDP, 14 (the Ethernet header) on a raw socket.
    let headerOffset: Int

    /// A master on `transport`. `ethernetSource` (6 bytes) means the transport is a raw
    /// packet socket: frames get an Ethernet II header (broadcast destination, EtherType
    /// 0x88A4, padded to 60 bytes), and replies are recognised by the source address the
    /// slaves changed on the way (bit 1 of its first byte set), never taken for our own frames.
    public init(transport: consuming DescriptorTransport, maxSlaves: Int = 8, ethernetSource: [UInt8]? = nil) {
        self.transport = transport
        tx = .allocate(byteCount: 1536, alignment: 8)
        rx = .allocate(byteCount: 1536, alignment: 8)
        tx.initializeMemory(as: UInt8.self, repeating: 0)
        if let mac = ethernetSource, mac.count == 6 {
            headerOffset = 14
            for k in 0..<6 { tx[k] = 0xFF; tx[6 + k] = mac[k] }
            tx[12] = 0x88; tx[13] = 0xA4
        } else {
            headerOffset = 0
        }
        outputs = .allocate(byteCount: maxSlaves * CiA402PDO.outputSize, alignment: 8)
        inputs = .allocate(byteCount: maxSlaves * CiA402PDO.inputSize, alignment: 8)
        outputs.initializeMemory(as: UInt8.self, repeating: 0)
        inputs.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        tx.deallocate(); rx.deallocate(); outputs.deallocate(); inputs.deallocate()
    }

    /// A master on raw Ethernet on `interface` (AF_PACKET; needs root or CAP_NET_RAW).
    public static func raw(interface: String, maxSlaves: Int = 8) throws(TransportError) -> EtherCATMaster {
        var fd: Int32 = -1
        var mac = [UInt8](repeating: 0, count: 6)
        let rc = lumen_raw_open(interface, EtherCAT.etherType, &fd, &mac)
        if rc != 0 { throw .open(what: "raw EtherCAT socket on \(interface)\(rc == EPERM ? " (needs root or CAP_NET_RAW)" : "")", errno: rc) }
        // The interface's address with bit 1 of its first byte clear: slaves set that bit on the
        // way back, which tells their replies from our own frames.
        mac[0] &= ~0x02
        return EtherCATMaster(transport: DescriptorTransport(fd: fd, owns: true, name: "ethercat:\(interface)"),
                              maxSlaves: maxSlaves, ethernetSource: mac)
    }

    /// A UDP transport to `host:port` (EtherCAT frames as UDP payloads).
    public static func udpTransport(host: String, port: UInt16) throws(TransportError) -> DescriptorTransport {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        if s < 0 { throw .open(what: "a UDP socket", errno: errno) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        if inet_pton(AF_INET, host, &addr.sin_addr) != 1 {
            close(s)
            throw .open(what: "\(host) (an IPv4 address is needed)", errno: EINVAL)
        }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 {
            let e = errno
            close(s)
            throw .open(what: "\(host):\(port)", errno: e)
        }
        let flags = fcntl(s, F_GETFL)
        _ = fcntl(s, F_SETFL, flags | O_NONBLOCK)
        return DescriptorTransport(fd: s, owns: true, name: "ethercat-udp:\(host):\(port)")
    }

    // MARK: Set-up (not real-time)

    /// Sends one datagram (with `data`, or `length` zero bytes) and waits for it to come back;
    /// returns the reply's datagram, whose data and working counter sit in `rx`.
    mutating func transact(_ command: EtherCAT.Command, address: UInt32, data: [UInt8] = [], length: Int = 0) throws(EtherCATError) -> EtherCAT.Datagram {
        while transport.receive(into: rx) > 0 {}  // nothing stale may be taken for the reply
        let idx = nextIndex()
        var b = EtherCAT.FrameBuilder(buffer: UnsafeMutableRawBufferPointer(rebasing: tx[headerOffset...]))
        _ = data.withUnsafeBytes { p in b.append(command, index: idx, address: address, data: data.isEmpty ? nil : p, length: length) }
        let n = wireLength(b.finish())
        guard transport.send(UnsafeRawBufferPointer(rebasing: tx[0..<n])) == n else { throw .transport("cannot send on \(transport.name)") }
        stats.framesSent += 1
        let deadline = MonotonicClock.now() + setupTimeout
        while MonotonicClock.now() < deadline {
            _ = transport.waitReadable(timeout: 1_000_000)
            let got = transport.receive(into: rx)
            guard got > 0, let payload = payload(of: got) else { continue }
            stats.framesReceived += 1
            var datagrams: [EtherCAT.Datagram] = []
            if let e = EtherCAT.forEachDatagram(in: payload, { datagrams.append($0) }) {
                throw .malformed(e)
            }
            guard let d = datagrams.first, d.index == idx, d.command == command else { continue }
            return d
        }
        throw .timeout("a set-up frame on \(transport.name)")
    }

    /// Frame length on the wire for an EtherCAT frame of `n` bytes.
    @_noAllocation @_noLocks
    func wireLength(_ n: Int) -> Int {
        if headerOffset == 0 { return n }
        let total = n + headerOffset
        if total < 60 {
            for k in total..<60 { tx[k] = 0 }
            return 60
        }
        return total
    }

    /// The EtherCAT part of a received frame, moved to the start of `rx`; nil for a frame that
    /// is not a reply (wrong EtherType, or our own frame seen on the way out).
    @_noAllocation @_noLocks
    func payload(of got: Int) -> UnsafeRawBufferPointer? {
        if headerOffset == 0 { return UnsafeRawBufferPointer(rebasing: rx[0..<got]) }
        if got < 16 { return nil }
        if rx[12] != 0x88 { return nil }
        if rx[13] != 0xA4 { return nil }
        var own = true
        for k in 6..<12 where rx[k] != tx[k] { own = false }
        if own { return nil }
        let n = got - 14
        for k in 0..<n { rx[k] = rx[14 + k] }
        return UnsafeRawBufferPointer(rebasing: rx[0..<n])
    }

    private mutating func nextIndex() -> UInt8 {
        index &+= 1
        return index
    }

    /// Counts the slaves on the line: a broadcast read answered once per slave.
    public mutating func scan() throws(EtherCATError) -> Int {
        let d = try transact(.brd, address: EtherCAT.address(adp: 0, ado: ESCRegister.type), length: 2)
        slaveCount = Int(EtherCAT.workingCounter(d, in: UnsafeRawBufferPointer(rx)))
        if slaveCount == 0 { throw .noSlaves }
        return slaveCount
    }

    /// The configured station address of slave `i` (0-based): 0x1001, 0x1002, …
    public static func stationAddress(_ i: Int) -> UInt16 { UInt16(0x1001 + i) }

    /// Register write to one slave by station address, checking its working counter.
    mutating func write(slave i: Int, register: UInt16, _ bytes: [UInt8]) throws(EtherCATError) {
        let d = try transact(.fpwr, address: EtherCAT.address(adp: Self.stationAddress(i), ado: register), data: bytes)
        let wkc = EtherCAT.workingCounter(d, in: UnsafeRawBufferPointer(rx))
        if wkc != 1 { throw .workingCounter("FPWR 0x\(String(register, radix: 16)) to slave \(i)", expected: 1, got: wkc) }
    }

    /// Register read from one slave by station address.
    mutating func read(slave i: Int, register: UInt16, count: Int) throws(EtherCATError) -> [UInt8] {
        let d = try transact(.fprd, address: EtherCAT.address(adp: Self.stationAddress(i), ado: register), length: count)
        let wkc = EtherCAT.workingCounter(d, in: UnsafeRawBufferPointer(rx))
        guard wkc == 1 else { throw .workingCounter("FPRD 0x\(String(register, radix: 16)) from slave \(i)", expected: 1, got: wkc) }
        return Array(UnsafeRawBufferPointer(rebasing: rx[d.dataOffset..<(d.dataOffset + d.dataCount)]))
    }

    /// AL status and status code of slave `i`.
    public mutating func alStatus(slave i: Int) throws(EtherCATError) -> (status: UInt16, code: UInt16) {
        let b = try read(slave: i, register: ESCRegister.alStatus, count: 6)
        return (UInt16(b[0]) | UInt16(b[1]) << 8, UInt16(b[4]) | UInt16(b[5]) << 8)
    }

    /// Requests `state` of every slave and waits (up to 1 s) until all report it.
    public mutating func requestState(_ state: ALState) throws(EtherCATError) {
        for i in 0..<slaveCount { try write(slave: i, register: ESCRegister.alControl, [state.rawValue | 0x10, 0]) }
        let deadline = MonotonicClock.now() + 1_000_000_000
        var pending = Array(0..<slaveCount)
        while !pending.isEmpty {
            var still: [Int] = []
            for i in pending {
                let (status, code) = try alStatus(slave: i)
                if status & 0x10 != 0 { throw .stateChange(slave: i, requested: state, alStatus: status, code: code) }
                if UInt8(status & 0x0F) != state.rawValue { still.append(i) }
            }
            pending = still
            if !pending.isEmpty, MonotonicClock.now() > deadline {
                let (status, code) = try alStatus(slave: pending[0])
                throw .stateChange(slave: pending[0], requested: state, alStatus: status, code: code)
            }
        }
    }

    /// Scans, addresses, maps and brings every slave to OP. `expectedSlaves`: one per axis.
    public mutating func configure(expectedSlaves: Int) throws(EtherCATError) {
        let found = try scan()
        if found != expectedSlaves { throw .slaveCount(expected: expectedSlaves, found: found) }
        for i in 0..<found {
            let addr = Self.stationAddress(i)
            // Positional: the slave that sees ADP 0 is slave i when the frame starts at −i.
            let d = try transact(.apwr, address: EtherCAT.address(adp: UInt16(bitPattern: Int16(-i)), ado: ESCRegister.stationAddress),
                                 data: [UInt8(addr & 0xFF), UInt8(addr >> 8)])
            let wkc = EtherCAT.workingCounter(d, in: UnsafeRawBufferPointer(rx))
            if wkc != 1 { throw .workingCounter("APWR station address of slave \(i)", expected: 1, got: wkc) }
        }
        try requestState(.initial)
        try requestState(.preOp)
        let outTotal = found * CiA402PDO.outputSize
        for i in 0..<found {
            // FMMU0: outputs (master writes), FMMU1: inputs (master reads).
            try write(slave: i, register: ESCRegister.fmmu0, Self.fmmu(logical: UInt32(i * CiA402PDO.outputSize), length: CiA402PDO.outputSize, physical: 0x1000, type: 2))
            try write(slave: i, register: ESCRegister.fmmu0 + ESCRegister.fmmuSize,
                      Self.fmmu(logical: UInt32(outTotal + i * CiA402PDO.inputSize), length: CiA402PDO.inputSize, physical: 0x1100, type: 1))
        }
        cyclicLength = outTotal + found * CiA402PDO.inputSize
        try requestState(.safeOp)
        // A first exchange so the slaves have valid outputs (all zero: power off) before OP.
        _ = sendProcessData()
        _ = transport.waitReadable(timeout: setupTimeout)
        _ = receiveProcessData()
        try requestState(.op)
        // That first exchange ran in SAFE-OP (outputs not yet taken, so a short working
        // counter by design): the cyclic figures start here.
        stats = EtherCATStats()
    }

    static func fmmu(logical: UInt32, length: Int, physical: UInt16, type: UInt8) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 16)
        for k in 0..<4 { b[k] = UInt8((logical >> (8 * UInt32(k))) & 0xFF) }
        b[4] = UInt8(length & 0xFF); b[5] = UInt8(length >> 8)
        b[6] = 0; b[7] = 7  // start bit 0, end bit 7
        b[8] = UInt8(physical & 0xFF); b[9] = UInt8(physical >> 8)
        b[10] = 0
        b[11] = type
        b[12] = 1  // active
        return b
    }

    /// Slaves not in OP are asked back into it (after an error acknowledge), as SOEM's
    /// supervisor does on a working-counter shortfall. Returns the slaves it re-requested.
    public mutating func recover() throws(EtherCATError) -> [Int] {
        var asked: [Int] = []
        for i in 0..<slaveCount {
            let (status, _) = try alStatus(slave: i)
            if UInt8(status & 0x0F) != ALState.op.rawValue || status & 0x10 != 0 {
                try write(slave: i, register: ESCRegister.alControl, [ALState.op.rawValue | 0x10, 0])
                asked.append(i)
            }
        }
        return asked
    }

    // MARK: The cycle

    /// Sends this cycle's LRW with `outputs`.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func sendProcessData() -> Bool {
        cyclicIndex = cyclicIndex == 0xFF ? 0x80 : max(cyclicIndex &+ 1, 0x80)
        var b = EtherCAT.FrameBuilder(buffer: UnsafeMutableRawBufferPointer(rebasing: tx[headerOffset...]))
        let outBytes = slaveCount * CiA402PDO.outputSize
        guard let d = b.append(raw: 12, index: cyclicIndex, address: 0, data: nil, length: cyclicLength) else { return false }  // 12: LRW
        for k in 0..<outBytes { tx[headerOffset + d.dataOffset + k] = outputs[k] }
        let n = wireLength(b.finish())
        let sent = transport.send(UnsafeRawBufferPointer(rebasing: tx[0..<n]))
        if sent == n { stats.framesSent += 1 }
        return sent == n
    }

    public enum Exchange: Equatable, Sendable {
        case ok
        case noReply
        case malformed
        case workingCounter(UInt16)
        /// The reply to an earlier cycle's frame (only ever counted, not returned).
        case late
    }

    /// Takes the reply to the last LRW, if it is there: inputs into `inputs`, the working
    /// counter checked.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public mutating func receiveProcessData() -> Exchange {
        var result = Exchange.noReply
        var n = transport.receive(into: rx)
        while n > 0 {
            if let frame = payload(of: n) {
                stats.framesReceived += 1
                let r = takeReply(frame)
                if case .late = r { stats.late += 1 } else { result = r }
            }
            n = transport.receive(into: rx)
        }
        switch result {
        case .noReply: stats.missing += 1
        case .malformed: stats.malformed += 1
        case .workingCounter(let w):
            stats.workingCounterShortfalls += 1
            stats.lastWorkingCounter = w
        case .ok, .late: break
        }
        return result
    }

    @_noAllocation @_noLocks
    mutating func takeReply(_ frame: UnsafeRawBufferPointer) -> Exchange {
        // One LRW datagram, our index, our length: anything else is not this cycle's reply.
        // Command byte 12 is LRW.
        guard frame.count >= 14, frame[2] == 12 else { return .malformed }
        // Cyclic frames carry indices 0x80…0xFF; another one is an earlier cycle's reply.
        if frame[3] != cyclicIndex { return frame[3] >= 0x80 ? .late : .malformed }
        let header = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
        let lengthWord = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
        let n = Int(lengthWord & 0x7FF)
        guard header >> 12 == 1, n == cyclicLength, frame.count >= 2 + 12 + n else { return .malformed }
        let wkc = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: 12 + n, as: UInt16.self))
        stats.lastWorkingCounter = wkc
        if wkc != expectedWorkingCounter { return .workingCounter(wkc) }
        let inOffset = 12 + slaveCount * CiA402PDO.outputSize
        for k in 0..<(slaveCount * CiA402PDO.inputSize) { inputs[k] = frame[inOffset + k] }
        return .ok
    }
}
