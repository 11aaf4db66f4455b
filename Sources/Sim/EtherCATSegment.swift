import CRealtime
import Core
import Drivers
import Foundation
import Synchronization

/// A segment of emulated EtherCAT slaves, each an ESC (EtherCAT slave controller) with a
/// CiA 402 single-axis drive behind it. Frames pass the slaves in order, as on a real line:
/// positional addressing counts up, configured addresses match register 0x0010, broadcasts reach
/// all, and logical datagrams go through each slave's FMMUs. Every slave that serves a datagram
/// raises its working counter (read +1, write +1, read-write +3 for LRW: +1 read, +2 write).
///
/// Enough of an ESC for a master to scan, address, walk INIT → PRE-OP → SAFE-OP → OP, map its
/// process data and exchange it every cycle: the AL control/status registers, the station
/// address, two FMMUs and the process-data memory. A sync-manager watchdog drops a slave to
/// SAFE-OP with an error when its outputs stop arriving in OP.
public final class EtherCATSegment: @unchecked Sendable {
    /// AL status codes the emulated slaves use.
    public enum StatusCode {
        public static let none: UInt16 = 0x0000
        public static let invalidStateChange: UInt16 = 0x0011
        public static let syncManagerWatchdog: UInt16 = 0x001B
        public static let invalidOutputConfiguration: UInt16 = 0x001D
    }

    final class Slave {
        var memory = [UInt8](repeating: 0, count: 0x1200)
        var drive: CiA402.State = .notReadyToSwitchOn
        var previousControlword: UInt16 = 0
        let axis: SimulatedDriveAxes
        var lastOutputs: Nanoseconds = 0
        var lastStep: Nanoseconds = 0
        /// The operation mode of the last outputs taken.
        var lastMode: JointCommand.Mode = .hold
        var outputsWritten = false

        /// The slave information interface (SII) EEPROM, as 16-bit words.
        let sii: [UInt16]

        init(axis spec: AxisSpec, start: Double?, serial: UInt32, dynamics: DriveDynamics) {
            axis = SimulatedDriveAxes(axes: [spec], start: start.map { JointVector([$0]) }, dynamics: dynamics)
            sii = SII.image(serial: serial)
            memory[0] = 0x11  // ESC type: an emulated ESC
            setAL(.initial, error: false, code: 0)
        }

        /// A write to the EEPROM control register: carry out a read at once (the emulated EEPROM
        /// is never busy), offering 8 bytes at a time as a fast ESC does.
        func eepromCommand() {
            let control = reg16(ESCRegister.eepromControl)
            let command = (control >> 8) & 0x7
            if command == 1 {
                let word = Int(reg16(ESCRegister.eepromAddress))
                for k in 0..<4 {
                    let w = word + k < sii.count ? sii[word + k] : 0xFFFF
                    setReg16(ESCRegister.eepromData + UInt16(2 * k), w)
                }
            }
            // Command done, not busy, no error; bit 6: reads return 8 bytes.
            setReg16(ESCRegister.eepromControl, 0x0040)
        }

        func reg16(_ a: UInt16) -> UInt16 { UInt16(memory[Int(a)]) | UInt16(memory[Int(a) + 1]) << 8 }
        func setReg16(_ a: UInt16, _ v: UInt16) { memory[Int(a)] = UInt8(v & 0xFF); memory[Int(a) + 1] = UInt8(v >> 8) }
        var alState: UInt8 { memory[Int(ESCRegister.alStatus)] & 0x0F }
        var alError: Bool { memory[Int(ESCRegister.alStatus)] & 0x10 != 0 }

        func setAL(_ s: ALState, error: Bool, code: UInt16) {
            setReg16(ESCRegister.alStatus, UInt16(s.rawValue) | (error ? 0x10 : 0))
            setReg16(ESCRegister.alStatusCode, code)
        }

        /// The active FMMU of `type` (1 read: inputs to the master; 2 write: outputs), if any.
        func fmmu(ofType type: UInt8) -> (logical: UInt32, length: Int, physical: Int, type: UInt8, active: Bool)? {
            for k in 0..<4 {
                let f = fmmu(k)
                if f.active, f.type == type { return f }
            }
            return nil
        }

        /// FMMU k: logical start, length, physical start, type (1 read = inputs to master, 2 write), active.
        func fmmu(_ k: Int) -> (logical: UInt32, length: Int, physical: Int, type: UInt8, active: Bool) {
            let b = Int(ESCRegister.fmmu0) + 16 * k
            let logical = UInt32(memory[b]) | UInt32(memory[b + 1]) << 8 | UInt32(memory[b + 2]) << 16 | UInt32(memory[b + 3]) << 24
            let length = Int(memory[b + 4]) | Int(memory[b + 5]) << 8
            let physical = Int(memory[b + 8]) | Int(memory[b + 9]) << 8
            return (logical, length, physical, memory[b + 11], memory[b + 12] & 1 == 1)
        }

        var fmmusConfigured: Bool {
            guard let a = fmmu(ofType: 2), let b = fmmu(ofType: 1) else { return false }
            return a.length >= CiA402PDO.outputSize && b.length >= CiA402PDO.inputSize
                && a.physical + a.length <= memory.count && b.physical + b.length <= memory.count
        }

        /// A write to AL control: carry out the requested state change if allowed.
        func requestState(_ control: UInt16) {
            let requested = UInt8(control & 0x0F)
            let acknowledge = control & 0x10 != 0
            if alError && !acknowledge && requested > alState { return }
            guard let target = ALState(rawValue: requested) else {
                setAL(ALState(rawValue: alState) ?? .initial, error: true, code: StatusCode.invalidStateChange)
                return
            }
            let current = ALState(rawValue: alState) ?? .initial
            switch (current, target) {
            case (_, .initial), (_, .preOp):
                setAL(target, error: false, code: 0)
            case (.preOp, .safeOp):
                if fmmusConfigured { setAL(.safeOp, error: false, code: 0) } else { setAL(.preOp, error: true, code: StatusCode.invalidOutputConfiguration) }
            case (.safeOp, .safeOp), (.op, .safeOp):
                setAL(.safeOp, error: false, code: 0)
            case (.safeOp, .op), (.op, .op):
                setAL(.op, error: false, code: 0)
                outputsWritten = false
            default:
                setAL(current, error: true, code: StatusCode.invalidStateChange)
            }
            if alState != ALState.op.rawValue { disableDrive() }
        }

        /// The sync-manager watchdog: outputs missing for longer than `limit` in OP drop the
        /// slave to SAFE-OP with an error, and its drive off.
        func checkWatchdog(now: Nanoseconds, limit: Nanoseconds) {
            guard alState == ALState.op.rawValue, outputsWritten, now - lastOutputs > limit else { return }
            setAL(.safeOp, error: true, code: StatusCode.syncManagerWatchdog)
            disableDrive()
        }

        /// Time passing with no frame: the drive moves on without the master's enable refresh,
        /// so its own enable watchdog runs.
        func coast(now: Nanoseconds) {
            guard lastStep != 0, now > lastStep else { return }
            let dt = Double(now - lastStep) * 1e-9
            lastStep = now
            axis.step(mode: lastMode, enabled: drive == .operationEnabled, dt: dt, hostPresent: false)
            if axis.faulted(0) { drive = .fault }
        }

        func disableDrive() {
            if drive == .operationEnabled || drive == .switchedOn || drive == .readyToSwitchOn { drive = .switchOnDisabled }
        }

        /// Runs the drive after outputs arrived (OP only) and refreshes the inputs.
        func runDrive(now: Nanoseconds) {
            guard let outputs = fmmu(ofType: 2), let inputs = fmmu(ofType: 1) else { return }
            let out = outputs.physical, inp = inputs.physical
            let dt = lastStep == 0 ? 0 : Double(now - lastStep) * 1e-9
            lastStep = now
            if alState == ALState.op.rawValue, outputsWritten {
                let cw = UInt16(memory[out]) | UInt16(memory[out + 1]) << 8
                drive = CiA402.transition(drive, controlword: cw, previous: previousControlword)
                previousControlword = cw
                let mode = Int8(bitPattern: memory[out + 2])
                axis.targetPosition[0] = Int32(bitPattern: UInt32(memory[out + 3]) | UInt32(memory[out + 4]) << 8 | UInt32(memory[out + 5]) << 16 | UInt32(memory[out + 6]) << 24)
                axis.targetVelocity[0] = Int32(bitPattern: UInt32(memory[out + 7]) | UInt32(memory[out + 8]) << 8 | UInt32(memory[out + 9]) << 16 | UInt32(memory[out + 10]) << 24)
                let m: JointCommand.Mode = mode == CiA402.Mode.cyclicSynchronousVelocity.rawValue ? .velocity : .position
                lastMode = m
                axis.step(mode: m, enabled: drive == .operationEnabled, dt: dt)
                // A drive fault (overcurrent, its own watchdog) is a CiA 402 fault.
                if axis.faulted(0) { drive = .fault }
            } else if drive == .notReadyToSwitchOn {
                drive = .switchOnDisabled
            }
            let sw = CiA402.statusword(drive)
            memory[inp] = UInt8(sw & 0xFF); memory[inp + 1] = UInt8(sw >> 8)
            memory[inp + 2] = UInt8(bitPattern: CiA402.Mode.cyclicSynchronousPosition.rawValue)
            memory[inp + 3] = 0
            let p = UInt32(bitPattern: axis.position[0]), v = UInt32(bitPattern: axis.velocity[0])
            for k in 0..<4 {
                memory[inp + 4 + k] = UInt8((p >> (8 * UInt32(k))) & 0xFF)
                memory[inp + 8 + k] = UInt8((v >> (8 * UInt32(k))) & 0xFF)
            }
        }
    }

    private let slaves: [Slave]
    private let lock = NSLock()

    /// Puts slave `i`'s drive into CiA 402 *fault*, as its own protection would (an
    /// overcurrent): power off at once, until the master sends a fault-reset edge.
    public func injectDriveFault(slave i: Int) {
        lock.lock()
        if slaves.indices.contains(i) { slaves[i].drive = .fault }
        lock.unlock()
    }
    /// Outputs missing for longer than this in OP trip the sync-manager watchdog (ns).
    public var watchdog: Nanoseconds = 100_000_000
    /// How the slaves' time passes.
    public let clock: EtherCATSegmentClock
    /// The slaves' time on the frame clock (ns).
    private var frameTime: Nanoseconds = 1_000_000_000
    /// Frames processed and frames that were not well-formed.
    public private(set) var framesProcessed = 0
    public private(set) var framesMalformed = 0

    /// One slave per axis, in line order, on `clock` (the machine's by default).
    public init(axes: [AxisSpec], start: JointVector? = nil, dynamics: DriveDynamics = .ideal, clock: EtherCATSegmentClock = .wall) {
        self.clock = clock
        slaves = axes.indices.map { i in
            // Each slave drives one axis: it takes that axis's model.
            var own = dynamics
            if case .emulated(let models?) = dynamics { own = .emulated([models[min(i, models.count - 1)]]) }
            return Slave(axis: axes[i], start: start.map { $0[i] }, serial: UInt32(i + 1), dynamics: own)
        }
    }

    public var slaveCount: Int { slaves.count }

    /// The AL state and error flag of slave `i`.
    public func alStatus(_ i: Int) -> (state: UInt8, error: Bool, code: UInt16) {
        lock.lock(); defer { lock.unlock() }
        return (slaves[i].alState, slaves[i].alError, slaves[i].reg16(ESCRegister.alStatusCode))
    }

    /// The CiA 402 state and measured position (joint units) of slave `i`.
    public func drive(_ i: Int) -> (state: CiA402.State, position: Double) {
        lock.lock(); defer { lock.unlock() }
        return (slaves[i].drive, slaves[i].axis.positions[0])
    }

    /// The slaves' time on the frame clock (ns, from 1 s): one period more for each process-data
    /// frame (one with a logical datagram), unchanged by any other. Not used on the wall clock.
    public var frameClockTime: Nanoseconds {
        lock.lock(); defer { lock.unlock() }
        return frameTime
    }

    /// Passes a frame through every slave, in place, as the line does. `now` is the machine's
    /// time (ns); on the frame clock the frame itself sets the slaves' time and `now` is not used.
    public func process(_ frame: UnsafeMutableRawBufferPointer, now wallNow: Nanoseconds) {
        lock.lock()
        defer { lock.unlock() }
        framesProcessed += 1
        var datagrams: [EtherCAT.Datagram] = []
        let wellFormed = EtherCAT.forEachDatagram(in: UnsafeRawBufferPointer(frame), { datagrams.append($0) }) == nil
        let now: Nanoseconds
        switch clock {
        case .wall:
            now = wallNow
        case .processDataFrames(let period):
            if datagrams.contains(where: { $0.command == .lrd || $0.command == .lwr || $0.command == .lrw }) { frameTime += period }
            now = frameTime
        }
        // The sync-manager watchdog runs on time, before this frame's outputs count.
        for s in slaves { s.checkWatchdog(now: now, limit: watchdog) }
        guard wellFormed else {
            framesMalformed += 1
            return
        }
        var touched = Set<Int>()
        for d in datagrams {
            var wkc = UInt16(littleEndian: frame.loadUnaligned(fromByteOffset: d.wkcOffset, as: UInt16.self))
            var adp = d.adp
            for (i, s) in slaves.enumerated() {
                switch d.command {
                case .nop:
                    break
                case .aprd, .apwr, .aprw:
                    if adp == 0 { wkc &+= access(s, d, frame) }
                    adp &+= 1
                case .fprd, .fpwr, .fprw:
                    if s.reg16(ESCRegister.stationAddress) == d.adp { wkc &+= access(s, d, frame) }
                case .brd, .bwr, .brw:
                    wkc &+= access(s, d, frame, broadcast: true)
                    adp &+= 1
                case .lrd, .lwr, .lrw:
                    let served = logical(s, d, frame)
                    wkc &+= served
                    if served & 2 != 0 { touched.insert(i) }
                case .armw, .frmw:
                    break
                }
            }
            if d.command == .aprd || d.command == .apwr || d.command == .aprw || d.command == .brd || d.command == .bwr || d.command == .brw {
                frame.storeBytes(of: adp.littleEndian, toByteOffset: d.dataOffset - 8, as: UInt16.self)
            }
            frame.storeBytes(of: wkc.littleEndian, toByteOffset: d.wkcOffset, as: UInt16.self)
        }
        for (i, s) in slaves.enumerated() {
            if touched.contains(i) { s.lastOutputs = now; s.outputsWritten = true }
            s.runDrive(now: now)
        }
    }

    /// Time passing with no frame on the line, on the wall clock (`now`, ns): the sync-manager
    /// watchdogs run and the drives move on without the master's enable refresh, so a master that
    /// falls silent trips them as it would on a cable, with no frame needed to notice. Nothing on
    /// the frame clock, whose time stands still between frames. The servers call it while idle.
    public func idle(now: Nanoseconds) {
        guard clock == .wall else { return }
        lock.lock()
        defer { lock.unlock() }
        for s in slaves {
            s.checkWatchdog(now: now, limit: watchdog)
            s.coast(now: now)
        }
    }

    /// A register read and/or write on one slave; returns the working-counter increment.
    private func access(_ s: Slave, _ d: EtherCAT.Datagram, _ frame: UnsafeMutableRawBufferPointer, broadcast: Bool = false) -> UInt16 {
        let base = Int(d.ado)
        guard base + d.dataCount <= s.memory.count else { return 0 }
        var inc: UInt16 = 0
        // A read-write stores what the datagram brought and returns what was there before.
        let incoming = d.command.writes ? Array(UnsafeRawBufferPointer(rebasing: frame[d.dataOffset..<(d.dataOffset + d.dataCount)])) : []
        if d.command.reads {
            for k in 0..<d.dataCount {
                // A broadcast read ORs every slave's bytes together.
                frame[d.dataOffset + k] = broadcast ? frame[d.dataOffset + k] | s.memory[base + k] : s.memory[base + k]
            }
            inc += 1
        }
        if d.command.writes {
            for k in 0..<d.dataCount { s.memory[base + k] = incoming[k] }
            // AL control writes start a state change; EEPROM control writes run a command.
            if base <= Int(ESCRegister.alControl), base + d.dataCount >= Int(ESCRegister.alControl) + 2 {
                s.requestState(s.reg16(ESCRegister.alControl))
            }
            if base <= Int(ESCRegister.eepromControl), base + d.dataCount >= Int(ESCRegister.eepromControl) + 2 {
                s.eepromCommand()
            }
            inc += d.command.reads ? 2 : 1
        }
        return inc
    }

    /// A logical datagram through the slave's FMMUs; returns the working-counter increment
    /// (bit 0 read served, bit 1 write served).
    private func logical(_ s: Slave, _ d: EtherCAT.Datagram, _ frame: UnsafeMutableRawBufferPointer) -> UInt16 {
        guard s.alState == ALState.safeOp.rawValue || s.alState == ALState.op.rawValue else { return 0 }
        var inc: UInt16 = 0
        for k in 0..<4 {
            let f = s.fmmu(k)
            guard f.active else { continue }
            let lo = max(Int(f.logical), Int(d.address)), hi = min(Int(f.logical) + f.length, Int(d.address) + d.dataCount)
            guard lo < hi else { continue }
            if f.type == 1, d.command == .lrd || d.command == .lrw {
                for a in lo..<hi { frame[d.dataOffset + a - Int(d.address)] = s.memory[f.physical + a - Int(f.logical)] }
                inc += 1
            }
            // Outputs are taken only in OP; in SAFE-OP the slave keeps its outputs safe.
            if f.type == 2, d.command == .lwr || d.command == .lrw, s.alState == ALState.op.rawValue {
                for a in lo..<hi { s.memory[f.physical + a - Int(f.logical)] = frame[d.dataOffset + a - Int(d.address)] }
                inc += 2
            }
        }
        return inc
    }
}

/// How the emulated slaves' time passes: their sync-manager watchdogs, their drives' motion and
/// the drives' own enable watchdogs all run on it.
public enum EtherCATSegmentClock: Sendable, Equatable {
    /// The machine's monotonic clock: a master that falls silent or late ages every watchdog,
    /// as on a real line. For the live demo, the bench and anything run at wall clock.
    case wall
    /// Time moves by `period` (ns) per process-data frame received (one carrying a logical
    /// datagram: the master's cyclic exchange), at that frame's nominal period, and stands
    /// still between frames. The drives then see what the master sent, not how the scheduler
    /// treated either thread: for tests on a loaded machine, with the host in lockstep. A master
    /// that falls silent stops the slaves' time, so only a master that keeps exchanging frames
    /// without its outputs reaching a slave can trip the sync-manager watchdog on this clock.
    case processDataFrames(period: Nanoseconds)
}

/// The segment behind a UDP port on this machine: EtherCAT frames in, processed frames back,
/// as `ethercat-udp:127.0.0.1:PORT` expects.
public final class EtherCATUDPServer: @unchecked Sendable {
    public let segment: EtherCATSegment
    public let port: UInt16
    private let fd: Int32
    private let running = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    /// The machine's time handed to the segment with each frame (its wall clock reads it).
    private let now: @Sendable () -> Nanoseconds
    private let answered = Atomic<Int>(0)
    /// Replies sent so far. On loopback a reply is in the master's socket once counted here, so
    /// a test can wait for it instead of sleeping.
    public var framesAnswered: Int { answered.load(ordering: .acquiring) }

    /// Binds 127.0.0.1:`port` (0 picks a free port). `now` stands in for the machine's clock,
    /// so that a test can age a wall-clock segment by exactly what it means to.
    public init(segment: EtherCATSegment, port: UInt16 = 0, now: @escaping @Sendable () -> Nanoseconds = { MonotonicClock.now() }) throws(TransportError) {
        self.segment = segment
        self.now = now
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        if s < 0 { throw .open(what: "a UDP socket", errno: errno) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 {
            let e = errno
            close(s)
            throw .open(what: "UDP port \(port)", errno: e)
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        self.port = UInt16(bigEndian: bound.sin_port)
        fd = s
    }

    deinit {
        stop()
        close(fd)
    }

    /// SCHED_FIFO priority for the slaves' thread (1…99; nil: SCHED_OTHER), set before `start`:
    /// real slaves answer in hardware, and on a loaded host their emulation must not be starved
    /// into a sync-manager watchdog on a healthy link.
    public var fifoPriority: Int32?
    /// The errno with which SCHED_FIFO was refused (0: granted or not asked for).
    public var fifoRefusal: Int32 { fifoError.load(ordering: .acquiring) }
    private let fifoError = Atomic<Int32>(0)

    public func start() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let priority = fifoPriority
        let started = DispatchSemaphore(value: 0)
        let t = Thread { [self] in
            if let priority { fifoError.store(lumen_rt_set_fifo(priority), ordering: .releasing) }
            started.signal()
            var buffer = [UInt8](repeating: 0, count: 2048)
            while running.load(ordering: .acquiring) {
                guard DescriptorIO.waitReadable(fd, timeout: 5_000_000) else {
                    segment.idle(now: now())
                    continue
                }
                var from = sockaddr_in()
                var len = socklen_t(MemoryLayout<sockaddr_in>.size)
                let n = buffer.withUnsafeMutableBytes { b in
                    withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &len) } }
                }
                guard n > 0 else { continue }
                buffer.withUnsafeMutableBytes { segment.process(UnsafeMutableRawBufferPointer(rebasing: $0[0..<n]), now: now()) }
                _ = buffer.withUnsafeBytes { b in
                    withUnsafePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, n, 0, $0, len) } }
                }
                answered.add(1, ordering: .releasing)
            }
            done.signal()
        }
        t.name = "lumen-sim-ethercat"
        t.start()
        // Serving before the master's first frame: on a loaded machine a new thread can wait
        // longer for its first turn than the master waits for a set-up frame's answer.
        started.wait()
    }

    public func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { done.wait() }
    }
}

/// The segment on a network interface, as raw Ethernet frames (EtherType 0x88A4): one end of a
/// veth pair, optionally inside a network namespace, so a master on the other end talks to it
/// exactly as to slaves on a cable. Needs root (or CAP_NET_RAW, and CAP_SYS_ADMIN for a namespace).
public final class EtherCATRawServer: @unchecked Sendable {
    public let segment: EtherCATSegment
    public let interface: String
    public let namespace: String?
    private let running = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    public init(segment: EtherCATSegment, interface: String, namespace: String? = nil) {
        self.segment = segment
        self.interface = interface
        self.namespace = namespace
    }

    deinit { stop() }

    /// Starts serving; throws if the namespace or the socket cannot be had.
    public func start() throws(TransportError) {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: TransportError?
        let t = Thread { [self] in
            // Only this thread moves into the namespace.
            if let ns = namespace {
                let rc = lumen_netns_enter(ns)
                if rc != 0 {
                    failure = .open(what: "network namespace \(ns)", errno: rc)
                    ready.signal(); done.signal(); return
                }
            }
            var fd: Int32 = -1
            var mac = [UInt8](repeating: 0, count: 6)
            let rc = lumen_raw_open(interface, EtherCAT.etherType, &fd, &mac)
            if rc != 0 {
                failure = .open(what: "raw socket on \(interface)", errno: rc)
                ready.signal(); done.signal(); return
            }
            ready.signal()
            let transport = DescriptorTransport(fd: fd, owns: true, name: interface)
            var frame = [UInt8](repeating: 0, count: 1536)
            while running.load(ordering: .acquiring) {
                guard transport.waitReadable(timeout: 5_000_000) else {
                    segment.idle(now: MonotonicClock.now())
                    continue
                }
                let n = frame.withUnsafeMutableBytes { transport.receive(into: $0) }
                // EtherCAT frames from a master only (replies carry bit 1 of the source set).
                guard n >= 16, frame[12] == 0x88, frame[13] == 0xA4, frame[6] & 0x02 == 0 else { continue }
                frame.withUnsafeMutableBytes { segment.process(UnsafeMutableRawBufferPointer(rebasing: $0[14..<n]), now: MonotonicClock.now()) }
                frame[6] |= 0x02
                _ = frame.withUnsafeBytes { transport.send(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            done.signal()
        }
        t.name = "lumen-sim-ethercat-raw"
        t.start()
        ready.wait()
        if let failure {
            running.store(false, ordering: .releasing)
            throw failure
        }
    }

    public func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { done.wait() }
    }
}

/// The SII EEPROM image of an emulated slave (ETG.2010 layout): identity, no mailbox, and the
/// categories a master maps process data from — sync managers (SM2 outputs at 0x1000, SM3
/// inputs at 0x1100) and the RxPDO/TxPDO of `CiA402PDO`.
enum SII {
    static let vendorID: UInt32 = 0x0000_4C55  // "LU": Lumen's emulated devices
    static let productCode: UInt32 = 0x0000_0402

    static func image(serial: UInt32) -> [UInt16] {
        var w = [UInt16](repeating: 0, count: 0x40)
        func put32(_ at: Int, _ v: UInt32) { w[at] = UInt16(v & 0xFFFF); w[at + 1] = UInt16(v >> 16) }
        put32(0x08, vendorID)
        put32(0x0A, productCode)
        put32(0x0C, 1)  // revision
        put32(0x0E, serial)
        w[0x3E] = 0x0F  // EEPROM size: (0x0F + 1) kbit = 2 KiB
        w[0x3F] = 1  // SII version
        var bytes: [UInt8] = []
        func category(_ type: UInt16, _ data: [UInt8]) {
            let padded = data.count % 2 == 0 ? data : data + [0]
            bytes += [UInt8(type & 0xFF), UInt8(type >> 8), UInt8((padded.count / 2) & 0xFF), UInt8((padded.count / 2) >> 8)] + padded
        }
        func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
        // Strings (10): one string, the device name.
        let name = Array("Lumen CiA 402 axis".utf8)
        category(10, [1, UInt8(name.count)] + name)
        // General (30): name = string 1; no CoE, no FoE (32 bytes).
        var general = [UInt8](repeating: 0, count: 32)
        general[3] = 1
        category(30, general)
        // Sync managers (41): SM0/SM1 unused mailboxes, SM2 outputs, SM3 inputs.
        var sms: [UInt8] = []
        sms += le16(0x0000) + le16(0) + [0x26, 0, 0, 1]
        sms += le16(0x0000) + le16(0) + [0x22, 0, 0, 2]
        sms += le16(0x1000) + le16(UInt16(CiA402PDO.outputSize)) + [0x64, 0, 1, 3]
        sms += le16(0x1100) + le16(UInt16(CiA402PDO.inputSize)) + [0x20, 0, 1, 4]
        category(41, sms)
        // TxPDO (50) 0x1A00 on SM3: statusword, mode display, padding, position, velocity.
        func entry(_ index: UInt16, _ sub: UInt8, _ bits: UInt8, type: UInt8) -> [UInt8] { le16(index) + [sub, 0, type, bits] + le16(0) }
        var tx = le16(0x1A00) + [5, 3, 0, 0] + le16(0)
        tx += entry(0x6041, 0, 16, type: 6) + entry(0x6061, 0, 8, type: 2) + entry(0x0000, 0, 8, type: 0)
        tx += entry(0x6064, 0, 32, type: 4) + entry(0x606C, 0, 32, type: 4)
        category(50, tx)
        // RxPDO (51) 0x1600 on SM2: controlword, mode, target position, target velocity.
        var rx = le16(0x1600) + [4, 2, 0, 0] + le16(0)
        rx += entry(0x6040, 0, 16, type: 6) + entry(0x6060, 0, 8, type: 2) + entry(0x607A, 0, 32, type: 4) + entry(0x60FF, 0, 32, type: 4)
        category(51, rx)
        bytes += [0xFF, 0xFF]
        for i in stride(from: 0, to: bytes.count - 1, by: 2) { w.append(UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8) }
        return w
    }
}
