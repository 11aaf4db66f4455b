#if canImport(Glibc)
import Glibc
#endif
import Core
import Drivers
import Synchronization

/// The monitor as a process: its own socket for the drives' samples, the control heartbeat and
/// the operator's inputs; its permit datagrams to the drives' safety lines every cycle; the
/// rule engine in between. Nothing here is shared with the control stack but the wire formats.
///
/// Fail-safe by construction: the drives' safety lines need a permit at least every watchdog
/// period, so a monitor that dies, hangs or is never started leaves them without power.
public final class MonitorProcess {
    public let model: MonitorModel
    public let drivesPath: String
    public private(set) var state: MonitorState
    public private(set) var inputs: MonitorInputs
    public private(set) var lastVerdict: Verdict?
    let socket: DatagramSocket
    /// The socket's descriptor, held directly so the cycle does not touch the object.
    let fd: Int32
    var log = FaultLog(capacity: 4096)
    let rx: UnsafeMutableRawBufferPointer
    let tx: UnsafeMutableRawBufferPointer
    var permitSequence: UInt32 = 0
    /// Permits the drives' socket did not take (absent, or its buffer full): they then get none.
    public private(set) var permitSendFailures: Int64 = 0
    let drivesAddress: sockaddr_un

    /// Counters for the summary.
    public private(set) var cycles: Int64 = 0
    public private(set) var overruns: Int64 = 0
    public private(set) var invalidDatagrams: Int64 = 0
    public private(set) var driveSamples: Int64 = 0
    public private(set) var heartbeats: Int64 = 0
    public private(set) var permitsSent: Int64 = 0
    public private(set) var permitsWithPower: Int64 = 0

    public init(model: MonitorModel, listen: String, drives: String) throws(DatagramSocket.SocketError) {
        self.model = model
        drivesPath = drives
        state = MonitorState(model: model)
        inputs = MonitorInputs(jointCount: model.jointCount)
        socket = try DatagramSocket(bindTo: listen)
        fd = socket.fd
        rx = .allocate(byteCount: 2048, alignment: 8)
        tx = .allocate(byteCount: 64, alignment: 8)
        // Not connect(2)ed: a connected Unix datagram socket takes datagrams from its peer
        // only, and the control process and the console send here too. Permits go by address.
        guard let address = DatagramSocket.address(drives) else { throw DatagramSocket.SocketError(description: "drives socket path too long: \(drives)") }
        drivesAddress = address
    }

    deinit {
        rx.deallocate()
        tx.deallocate()
    }

    /// One monitor cycle: take every datagram waiting, step the rule engine, send the permit.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func cycle(now: Nanoseconds) -> Verdict {
        var budget = 64
        while budget > 0 {
            budget -= 1
            let n = DescriptorIO.read(fd, into: rx)
            if n <= 0 { break }
            let datagram = UnsafeRawBufferPointer(rebasing: rx[0..<n])
            switch SafetyWire.classify(datagram) {
            case .driveSample:
                if SafetyWire.decodeDriveSample(datagram, into: &inputs) { driveSamples += 1 } else { invalidDatagrams += 1 }
            case .heartbeat:
                if SafetyWire.decodeHeartbeat(datagram, into: &inputs) { heartbeats += 1 } else { invalidDatagrams += 1 }
            case .operatorInput:
                SafetyWire.decodeOperator(datagram, into: &inputs)
            case .permit, .invalid:
                invalidDatagrams += 1
            }
        }
        inputs.now = now
        let verdict = Monitor.step(model, &state, inputs)
        permitSequence &+= 1
        let length = SafetyWire.encodePermit(sequence: permitSequence, permit: verdict.permit, quickStop: verdict.controlledStop, into: tx)
        if DescriptorIO.send(fd, UnsafeRawBufferPointer(rebasing: tx[0..<length]), to: drivesAddress) {
            permitsSent += 1
            if verdict.permit { permitsWithPower += 1 }
        } else {
            permitSendFailures += 1
        }
        log.append(verdict)
        cycles += 1
        return verdict
    }

    /// Runs cycles on the monitor's period until `stop` is set (or `limit` cycles). Every
    /// 50 cycles, outside the rule engine, drains the fault log into `onFaults`.
    public func run(stop: borrowing Atomic<Bool>, limit: Int64? = nil, onFaults: ([FaultRecord]) -> Void) {
        var deadline = MonotonicClock.now() + model.period
        while !stop.load(ordering: .relaxed) {
            if let limit, cycles >= limit { break }
            _ = MonotonicClock.sleep(until: deadline)
            deadline += model.period
            let now = MonotonicClock.now()
            if now >= deadline {
                overruns += 1
                deadline = now + model.period
            }
            lastVerdict = cycle(now: now)
            if cycles % 50 == 0 {
                let records = log.drain()
                if !records.isEmpty { onFaults(records) }
            }
        }
        let records = log.drain()
        if !records.isEmpty { onFaults(records) }
    }
}
