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
///
/// Its channel is authenticated (docs/safety/channel.md): the socket lives in a directory only
/// its user can reach, held with a lock so no second monitor takes it over; every datagram must
/// come from the user configured for its role, carry the key's tag and a fresh counter; only
/// then is any field read, and every field is range-checked before the rule engine sees it.
public final class MonitorProcess {
    public let model: MonitorModel
    public let drivesPath: String
    public private(set) var state: MonitorState
    public private(set) var inputs: MonitorInputs
    public private(set) var lastVerdict: Verdict?
    let directory: ChannelDirectory
    let socket: DatagramSocket
    /// The socket's descriptor, held directly so the cycle does not touch the object.
    let fd: Int32
    var log = FaultLog(capacity: 4096)
    let rx: UnsafeMutableRawBufferPointer
    let tx: UnsafeMutableRawBufferPointer
    let receiver: CredentialReceiver
    var gate: ChannelGate
    var sealer: ChannelSealer
    var permitSequence: UInt32 = 0
    /// Permits the drives' socket did not take (absent, or its buffer full): they then get none.
    public private(set) var permitSendFailures: Int64 = 0
    let drivesAddress: sockaddr_un
    /// Where the status goes (the control process's socket), if anywhere.
    let statusAddress: sockaddr_un?
    var statusSequence: UInt32 = 0
    /// The status last sent and the cycle it went at: a status goes when it changes and at
    /// least every `statusEvery` cycles, not every cycle, so that the control's cycle (which
    /// authenticates each one) is not loaded with a thousand identical ones a second.
    var lastStatus: MonitorStatus?
    var lastStatusCycle: Int64 = 0
    public static let statusEvery: Int64 = 20
    /// Statuses the control's socket did not take (absent, or its buffer full): harmless, the
    /// status grants nothing; counted for the summary.
    public private(set) var statusSendFailures: Int64 = 0
    public private(set) var statusesSent: Int64 = 0

    /// Counters for the summary.
    public private(set) var cycles: Int64 = 0
    public private(set) var overruns: Int64 = 0
    public private(set) var invalidDatagrams: Int64 = 0
    public private(set) var rejectedCredentials: Int64 = 0
    public private(set) var rejectedTag: Int64 = 0
    public private(set) var rejectedReplay: Int64 = 0
    public private(set) var driveSamples: Int64 = 0
    public private(set) var heartbeats: Int64 = 0
    public private(set) var operatorInputs: Int64 = 0
    public private(set) var permitsSent: Int64 = 0
    public private(set) var permitsWithPower: Int64 = 0

    /// Longest run a `--seconds` may ask for (about 115 days): its cycle count fits easily.
    public static let maxRunSeconds = 1e7

    /// Why the monitor could not start; each says what to do.
    public enum StartError: Error, CustomStringConvertible {
        case directory(ChannelDirectory.SetupError)
        case socket(String)

        public var description: String {
            switch self {
            case let .directory(e): e.description
            case let .socket(s): s
            }
        }

        /// Another monitor already runs on this socket.
        public var isAlreadyRunning: Bool {
            if case .directory(.alreadyRunning) = self { return true }
            return false
        }
    }

    /// `status`: the control process's socket, sent the monitor's status every cycle (nil: none).
    public init(model: MonitorModel, listen: String, drives: String, status: String? = nil, policy: ChannelPolicy) throws(StartError) {
        self.model = model
        drivesPath = drives
        if let status {
            guard let a = DatagramSocket.address(status) else { throw .socket("status socket path too long: \(status)") }
            statusAddress = a
        } else {
            statusAddress = nil
        }
        state = MonitorState(model: model)
        inputs = MonitorInputs(jointCount: model.jointCount)
        // Not connect(2)ed: a connected Unix datagram socket takes datagrams from its peer
        // only, and the control process and the console send here too. Permits go by address.
        guard let address = DatagramSocket.address(drives) else { throw .socket("drives socket path too long: \(drives)") }
        drivesAddress = address
        // The replay floor is taken before the socket exists: whatever a sender seals once it can
        // reach the socket is above it, however long this process is descheduled after the bind.
        let started = MonotonicClock.now()
        do { directory = try ChannelDirectory(socketPath: listen, group: policy.group) } catch { throw .directory(error) }
        do {
            socket = try DatagramSocket(bindTo: listen, passCredentials: true, mode: directory.socketMode)
        } catch { throw .socket(error.description) }
        fd = socket.fd
        rx = .allocate(byteCount: 2048, alignment: 8)
        tx = .allocate(byteCount: 128, alignment: 8)
        receiver = CredentialReceiver()
        gate = ChannelGate(policy: policy, floor: started > 0 ? UInt64(started) : 0)
        sealer = ChannelSealer(key: policy.key)
    }

    deinit {
        rx.deallocate()
        tx.deallocate()
        receiver.deallocate()
    }

    /// One monitor cycle: take the datagrams waiting (at most 64, so a flood cannot stall it),
    /// step the rule engine, send the permit.
    /// - Important: runs in the monitor cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks
    public func cycle(now: Nanoseconds) -> Verdict {
        var budget = 64
        while budget > 0 {
            budget -= 1
            let got = receiver.receive(fd, into: rx)
            if got.count <= 0 { break }
            if got.truncated {
                invalidDatagrams += 1
                continue
            }
            let datagram = UnsafeRawBufferPointer(rebasing: rx[0..<got.count])
            switch gate.admit(datagram, uid: got.uid, hasCredentials: got.hasCredentials) {
            case .driveSample:
                if SafetyWire.decodeDriveSample(datagram, into: &inputs) { driveSamples += 1 } else { invalidDatagrams += 1 }
            case .heartbeat:
                if SafetyWire.decodeHeartbeat(datagram, into: &inputs) { heartbeats += 1 } else { invalidDatagrams += 1 }
            case .operatorInput:
                if SafetyWire.decodeOperator(datagram, into: &inputs) { operatorInputs += 1 } else { invalidDatagrams += 1 }
            case .rejectedCredentials: rejectedCredentials += 1
            case .rejectedTag: rejectedTag += 1
            case .rejectedReplay: rejectedReplay += 1
            case .invalid: invalidDatagrams += 1
            }
        }
        inputs.now = now
        let verdict = Monitor.step(model, &state, inputs)
        permitSequence &+= 1
        let length = SafetyWire.encodePermit(sequence: permitSequence, permit: verdict.permit, quickStop: verdict.controlledStop,
                                             counter: sealer.next(), key: sealer.key, into: tx)
        if DescriptorIO.send(fd, UnsafeRawBufferPointer(rebasing: tx[0..<length]), to: drivesAddress) {
            permitsSent += 1
            if verdict.permit { permitsWithPower += 1 }
        } else {
            permitSendFailures += 1
        }
        if let to = statusAddress {
            let status = MonitorStatus(verdict)
            var due = cycles - lastStatusCycle >= Self.statusEvery
            if let last = lastStatus { if !last.same(as: status) { due = true } } else { due = true }
            if due {
                statusSequence &+= 1
                lastStatus = status
                lastStatusCycle = cycles
                let n = SafetyWire.encodeStatus(sequence: statusSequence, status, counter: sealer.next(), key: sealer.key, into: tx)
                if DescriptorIO.send(fd, UnsafeRawBufferPointer(rebasing: tx[0..<n]), to: to) { statusesSent += 1 } else { statusSendFailures += 1 }
            }
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
