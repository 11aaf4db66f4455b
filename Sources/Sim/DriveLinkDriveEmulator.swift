import CDriveLinkReference
import CRealtime
import Core
import Drivers
import Foundation
import Synchronization

/// What to do to the bytes between host and emulated drive, to test the link's defences.
public struct LinkImpairment: Sendable, Equatable {
    /// Probability of flipping each bit, both directions.
    public var bitErrorRate: Double
    /// Probability of losing each frame, both directions.
    public var dropRate: Double
    /// Probability of sending a reply twice.
    public var duplicateRate: Double
    /// Probability of holding a reply back and sending it after the next one.
    public var reorderRate: Double
    /// Extra latency of every reply (ns).
    public var delay: Nanoseconds
    /// Whether bit errors hit the host's frames too, or only the drive's replies (a CRC storm
    /// the host alone sees, with every command still arriving).
    public var corruptsFromHost: Bool = true

    public init(bitErrorRate: Double = 0, dropRate: Double = 0, duplicateRate: Double = 0, reorderRate: Double = 0, delay: Nanoseconds = 0) {
        self.bitErrorRate = bitErrorRate
        self.dropRate = dropRate
        self.duplicateRate = duplicateRate
        self.reorderRate = reorderRate
        self.delay = delay
    }

    public static let none = LinkImpairment()
}

/// Simulated drives on the device end of a byte stream (a pty): the DriveLink protocol engine
/// is the C99 firmware reference from hil/firmware, the motion is `SimulatedDriveAxes`, and an
/// optional `LinkImpairment` corrupts, drops, duplicates, reorders and delays frames. It runs on
/// a thread of its own, as a drive runs on its own processor.
public final class DriveLinkDriveEmulator: @unchecked Sendable {
    /// What the impairment did, frame by frame (so tests can account for every frame).
    public struct ImpairmentCounts: Sendable, Equatable {
        public var fromHost = 0, corruptedFromHost = 0, droppedFromHost = 0
        /// Frames written toward the host (duplicates included, drops excluded), and how many of
        /// those were corrupted.
        public var toHost = 0, corruptedToHost = 0, droppedToHost = 0, duplicatedToHost = 0, reorderedToHost = 0
    }

    public struct Report: Sendable, Equatable {
        public var impairment: ImpairmentCounts
        public var framesAccepted: Int
        public var framesRejected: Int
        public var framesStale: Int
        public var watchdogTrips: Int
        public var enabled: Bool
        public var faultCode: UInt16
        /// The latched fault's axis (0xFF: the whole drive).
        public var faultAxis: UInt8
        /// COMMANDs that asked for power while a fault was latched.
        public var enableRefused: Int
        /// FAULT_RESET frames that reached the drive intact.
        public var faultResets: Int
        /// Valid frames ignored before a handshake.
        public var ignored: Int
        public var positions: JointVector
    }

    private let device: UnsafeMutablePointer<dl_device>
    private let axes: SimulatedDriveAxes
    private let transport: DescriptorTransport
    private var impairment: LinkImpairment
    private var rng: SplitMix64
    private let running = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var counts = ImpairmentCounts()
    /// The host's bytes since the last delimiter.
    private var incomingFrame: [UInt8] = []
    /// Replies waiting for their delay or a reordering partner: (release time, bytes).
    private var pending: [(release: Nanoseconds, bytes: [UInt8], corrupted: Bool)] = []
    private var heldForReorder: (bytes: [UInt8], corrupted: Bool)?
    /// Set when the emulator was killed: it stops answering at once, like a drive that lost power.
    private let killed = Atomic<Bool>(false)
    /// When set, the drives' clock advances by this much per frame from the host instead of
    /// following the machine's: the watchdog and the motion then depend on what the host sent,
    /// not on how the scheduler treated either thread (for tests on a loaded machine).
    private let stepPerFrame: Nanoseconds?
    private var simulatedNow: Nanoseconds = 1_000_000_000
    private var faultResets = 0
    private var injectedForceMN: Int32 = 0
    /// The load cell's reading of a simulated patient (mN), written by whoever steps that
    /// patient: see `loadCell`.
    private let sensedForceMN: UnsafeMutablePointer<Int64>
    private var quickStop = false
    private let peek = UnsafeMutableRawBufferPointer.allocate(byteCount: DriveLink.maxFrame + 16, alignment: 8)

    /// Drives for `axes` at `start`, on the device end `deviceFD` (which it will close).
    public init(axes specs: [AxisSpec], start: JointVector?, deviceFD: Int32, watchdogMicroseconds: UInt32 = 20_000,
                firmwareID: String = "lumen-sim", impairment: LinkImpairment = .none, seed: UInt64 = 1,
                dynamics: DriveDynamics = .ideal, stepPerFrame: Nanoseconds? = nil, latchedFault: UInt16 = 0) {
        self.stepPerFrame = stepPerFrame
        sensedForceMN = .allocate(capacity: 1)
        sensedForceMN.initialize(to: 0)
        axes = SimulatedDriveAxes(axes: specs, start: start, dynamics: dynamics)
        transport = DescriptorTransport(fd: deviceFD, owns: true, name: "emulated drive")
        self.impairment = impairment
        rng = SplitMix64(seed: seed)
        device = .allocate(capacity: 1)
        device.initialize(to: dl_device())
        dl_device_init(device, UInt8(specs.count), watchdogMicroseconds, firmwareID)
        // A drive that restarts keeps a fault it latched before (no FAULT message: it was sent
        // to a host that is gone).
        device.pointee.fault_code = latchedFault
        device.pointee.fault_axis = 0xFF
        copyFeedback(now: MonotonicClock.now())
    }

    deinit {
        stop()
        device.deallocate()
        peek.deallocate()
        sensedForceMN.deallocate()
    }

    /// Latches a fault as the drive's own protection would (`dl_device_fault`): the power goes
    /// off and a FAULT message goes to the host. `persistent` keeps its cause present, so a
    /// FAULT_RESET leaves it latched until `clearFaultCause`. `axis` 0xFF is the whole drive.
    /// `messageLost` drops the FAULT message on the line, so that the host learns of the fault
    /// from the STATE status bits alone.
    public func injectFault(axis: UInt8, code: UInt16, detail: Int32 = 0, persistent: Bool = false, messageLost: Bool = false) {
        lock.lock()
        var out = [UInt8](repeating: 0, count: DriveLink.maxWireFrame)
        let n = dl_device_fault(device, axis, code, detail, &out, out.count)
        if persistent, code < 32 { device.pointee.fault_causes |= 1 << UInt32(code) }
        if !messageLost { queueReplies(Array(out.prefix(n)), now: clockNow()) }
        lock.unlock()
    }

    /// Changes the impairment from the next frame on (a CRC storm, a line that goes bad).
    public func setImpairment(_ new: LinkImpairment) {
        lock.lock()
        impairment = new
        lock.unlock()
    }

    /// Moves the drive's frame counter back by `n`: every frame it sends after is, to the host,
    /// a stale one (a drive-side sequencing bug).
    public func rewindSequence(by n: UInt16) {
        lock.lock()
        device.pointee.tx_seq &-= n
        lock.unlock()
    }

    /// Injects (or clears, with []) faults on axis `i`'s emulated drive (emulated dynamics
    /// only): an overcurrent trips the drive's own protection, which latches DriveLink fault 2
    /// on that axis and sends its FAULT, as a drive's firmware would.
    public func inject(_ faults: DriveFaultInjection, axis i: Int) {
        lock.lock()
        axes.inject(faults, axis: i)
        lock.unlock()
    }

    /// The cause of fault `code` is gone: the next FAULT_RESET may clear it.
    public func clearFaultCause(code: UInt16) {
        lock.lock()
        if code < 32 { device.pointee.fault_causes &= ~(1 << UInt32(code)) }
        lock.unlock()
    }

    /// The safe torque off input (the safety monitor's enable line): while on, the power stays
    /// off, with no fault latched — the host sees the power stage drop out.
    public func setSafeTorqueOff(_ on: Bool) {
        lock.lock()
        device.pointee.sto = on ? 1 : 0
        if on { device.pointee.enabled = 0 }
        lock.unlock()
    }

    /// The quick-stop input (the safety monitor's controlled stop, power kept:
    /// docs/safety/channel.md): while on, every axis holds where it is, braking with its own
    /// loops (an ideal axis at once), whatever the host commands; the power stage stays as it is.
    public func setQuickStop(_ on: Bool) {
        lock.lock()
        quickStop = on
        lock.unlock()
    }

    /// The cell (mN, read and written with `SharedIndex`) through which a simulated patient's
    /// catheter presses on this drive's insertion force sensor: the process that steps the
    /// patient writes its contact force there every cycle, and the drive reports it, in its
    /// STATE and to the safety monitor, as hardware reports what its load cell measures.
    /// Without it the monitor's force check would read 0 N whatever the catheter pushed on.
    /// Valid while the emulator lives; the sensor reads this plus any `setForce`.
    public var loadCell: UnsafeMutablePointer<Int64> { sensedForceMN }

    /// A force the drive's insertion force sensor reads from now on (N; 0: none), as a catheter
    /// pushed against a wall would: what a safety scenario exceeds on purpose.
    public func setForce(_ newtons: Double) {
        lock.lock()
        injectedForceMN = newtons.isFinite ? Int32((max(-1e6, min(1e6, newtons)) * 1000).rounded()) : 0
        device.pointee.force_mn = injectedForceMN
        lock.unlock()
    }

    /// What the drives read for their own channel to the safety monitor: per axis motor-side
    /// and load-side position, speed, current (joint units, A), whether the power stage is on
    /// and a fault latched; and the insertion force (N). On hardware the drive's firmware sends
    /// this; the emulated drives have no processor of their own, so whoever steps them relays it.
    /// `sampledAt`: when the drives last stepped (monotonic ns).
    public func safetySample() -> (axes: [(encoder: Double, load: Double, velocity: Double, current: Double, powered: Bool, faulted: Bool)], force: Double,
                                   sampledAt: Nanoseconds) {
        lock.lock()
        defer { lock.unlock() }
        let powered = device.pointee.enabled != 0
        let faulted = device.pointee.fault_code != 0
        var samples: [(encoder: Double, load: Double, velocity: Double, current: Double, powered: Bool, faulted: Bool)] = []
        samples.reserveCapacity(axes.count)
        for i in 0..<axes.count {
            let a = axes.safetySample(axis: i)
            samples.append((a.encoder, a.load, a.velocity, a.current, a.powered && powered, a.faulted || faulted))
        }
        return (samples, Double(device.pointee.force_mn) / 1000, Nanoseconds(truncatingIfNeeded: device.pointee.sample_time_ns))
    }

    private func clockNow() -> Nanoseconds { stepPerFrame == nil ? MonotonicClock.now() : simulatedNow }

    /// SCHED_FIFO priority for the drives' thread (1…99; nil: SCHED_OTHER), set before `start`:
    /// a drive is a processor of its own, and on a loaded host its emulation must not be starved
    /// into tripping its watchdog on a healthy link.
    public var fifoPriority: Int32?
    /// The errno with which SCHED_FIFO was refused (0: granted or not asked for); read after `stop`.
    public var fifoRefusal: Int32 { fifoError.load(ordering: .acquiring) }
    private let fifoError = Atomic<Int32>(0)

    /// Starts the drives' thread.
    public func start() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let priority = fifoPriority
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            if let priority { fifoError.store(lumen_rt_set_fifo(priority), ordering: .releasing) }
            started.signal()
            self.loop()
            self.finished.signal()
        }
        thread.name = "lumen-sim-drive"
        thread.start()
        // Answering before the host's first frame: on a loaded machine a new thread can wait
        // longer for its first turn than the host waits for HELLO_ACK.
        started.wait()
    }

    /// Stops the thread and waits for it.
    public func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { finished.wait() }
    }

    /// Whether its thread runs: started, and neither stopped nor killed.
    public var isRunning: Bool { running.load(ordering: .acquiring) }

    /// Stops answering at once and for good, like a drive that lost power or a cut cable.
    public func kill() {
        killed.store(true, ordering: .releasing)
        stop()
    }

    public var report: Report {
        lock.lock()
        defer { lock.unlock() }
        let d = device.pointee
        return Report(impairment: counts, framesAccepted: Int(d.rx_frames), framesRejected: Int(d.rx_errors), framesStale: Int(d.rx_stale),
                      watchdogTrips: Int(d.watchdog_trips), enabled: d.enabled != 0, faultCode: d.fault_code,
                      faultAxis: d.fault_axis, enableRefused: Int(d.enable_refused), faultResets: faultResets,
                      ignored: Int(d.rx_ignored), positions: axes.positions)
    }

    private func micros(_ ns: Nanoseconds) -> UInt32 { UInt32(truncatingIfNeeded: ns / 1000) }

    private func loop() {
        var rx = [UInt8](repeating: 0, count: 4096)
        var out = [UInt8](repeating: 0, count: 4 * Int(DriveLink.maxWireFrame))
        var last = clockNow()
        while running.load(ordering: .acquiring) {
            // A time by which every byte the host sent has been read, unless the wait finds
            // some: the watchdog judges the silence up to it, so a thread preempted as the wait
            // returns does not trip on frames it has not read yet.
            let heard = clockNow()
            let readable = transport.waitReadable(timeout: 200_000)
            var now = clockNow()
            if killed.load(ordering: .acquiring) { break }
            lock.lock()
            if readable {
                let n = rx.withUnsafeMutableBytes { transport.receive(into: $0) }
                for i in 0..<max(0, n) {
                    if rx[i] != 0 {
                        incomingFrame.append(rx[i])
                        continue
                    }
                    // A whole frame from the host: impair it, then hand it to the drive.
                    var frame = incomingFrame + [0]
                    incomingFrame.removeAll(keepingCapacity: true)
                    counts.fromHost += 1
                    if let step = stepPerFrame {
                        simulatedNow += step
                        now = simulatedNow
                    }
                    if rng.unit() < impairment.dropRate {
                        counts.droppedFromHost += 1
                        continue
                    }
                    if impairment.corruptsFromHost, corrupt(&frame) { counts.corruptedFromHost += 1 }
                    let type = frame.withUnsafeBytes { DriveLink.decode(UnsafeRawBufferPointer(rebasing: $0[0..<($0.count - 1)]), scratch: peek) }
                    if case .success(let f) = type, f.type == .faultReset {
                        faultResets += 1
                        // The axes' own protection resets with the drive; a cause still there
                        // (an injected overcurrent) trips it again from the next step on.
                        axes.resetFaults()
                        device.pointee.fault_causes &= ~(1 << UInt32(DL_FAULT_OVERCURRENT.rawValue))
                    }
                    let produced = dl_device_receive(device, frame, frame.count, micros(now), &out, out.count)
                    queueReplies(Array(out.prefix(produced)), now: now)
                }
            }
            // Motion since the last pass, then feedback for the next STATE.
            let dt = Double(now - last) * 1e-9
            last = now
            copyTargets()
            let mode = quickStop ? .hold : JointCommand.Mode(rawValue: device.pointee.mode) ?? .hold
            axes.step(mode: mode, enabled: device.pointee.enabled != 0, dt: dt)
            reportAxisFaults()
            copyFeedback(now: now)
            let faults = dl_device_poll(device, micros(readable ? now : heard), &out, out.count)
            queueReplies(Array(out.prefix(faults)), now: now)
            lock.unlock()
            flush(now: now)
        }
    }

    /// An emulated axis whose own protection tripped on overcurrent is DriveLink fault 2 on that
    /// axis, its cause present while the axis stays tripped. (Its enable watchdog is not mapped:
    /// the protocol's own watchdog in the C reference is the one the host talks to.)
    private func reportAxisFaults() {
        var out = [UInt8](repeating: 0, count: DriveLink.maxWireFrame)
        let bit: UInt32 = 1 << UInt32(DL_FAULT_OVERCURRENT.rawValue)
        var tripped = false
        for i in 0..<axes.count where axes.fault(i) == .overcurrent {
            tripped = true
            if device.pointee.fault_causes & bit == 0 {
                let n = dl_device_fault(device, UInt8(i), UInt16(DL_FAULT_OVERCURRENT.rawValue), milliamps(axis: i), &out, out.count)
                queueReplies(Array(out.prefix(n)), now: clockNow())
            }
        }
        if tripped { device.pointee.fault_causes |= bit }
    }

    private func milliamps(axis i: Int) -> Int32 {
        let amps = axes.emulatedAxis(i)?.measuredCurrent ?? 0
        return amps.isFinite ? Int32(clamping: Int64((amps * 1000).rounded())) : 0
    }

    /// Bit errors at the configured rate inside a frame; the delimiter is left alone, so each
    /// corrupted frame is one frame the receiver must reject (a flip that makes a 0x00 splits it
    /// into pieces, each rejected). Returns whether any bit flipped.
    private func corrupt(_ frame: inout [UInt8]) -> Bool {
        guard impairment.bitErrorRate > 0 else { return false }
        var flipped = false
        for i in 0..<(frame.count - 1) {
            for bit in 0..<8 where rng.unit() < impairment.bitErrorRate {
                frame[i] ^= 1 << UInt8(bit)
                flipped = true
            }
        }
        return flipped
    }

    /// Splits replies into frames and applies drop, duplicate, reorder and delay.
    private func queueReplies(_ bytes: [UInt8], now: Nanoseconds) {
        guard !bytes.isEmpty else { return }
        for body in bytes.split(separator: 0, omittingEmptySubsequences: true) {
            var frame = Array(body) + [0]
            if rng.unit() < impairment.dropRate {
                counts.droppedToHost += 1
                continue
            }
            let corrupted = corrupt(&frame)
            let release = now + impairment.delay
            if let held = heldForReorder {
                pending.append((release, frame, corrupted))
                pending.append((release, held.bytes, held.corrupted))
                heldForReorder = nil
                continue
            }
            if rng.unit() < impairment.reorderRate {
                heldForReorder = (frame, corrupted)
                counts.reorderedToHost += 1
                continue
            }
            pending.append((release, frame, corrupted))
            if rng.unit() < impairment.duplicateRate {
                pending.append((release, frame, corrupted))
                counts.duplicatedToHost += 1
            }
        }
    }

    private func flush(now: Nanoseconds) {
        lock.lock()
        var due: [[UInt8]] = []
        while let first = pending.first, first.release <= now {
            due.append(first.bytes)
            counts.toHost += 1
            if first.corrupted { counts.corruptedToHost += 1 }
            pending.removeFirst()
        }
        lock.unlock()
        for frame in due { _ = frame.withUnsafeBytes { transport.send($0) } }
    }

    private func copyTargets() {
        withUnsafeMutableBytes(of: &device.pointee.target_position) { raw in
            let p = raw.bindMemory(to: Int32.self)
            for i in 0..<axes.count { axes.targetPosition[i] = p[i] }
        }
        withUnsafeMutableBytes(of: &device.pointee.target_velocity) { raw in
            let v = raw.bindMemory(to: Int32.self)
            for i in 0..<axes.count { axes.targetVelocity[i] = v[i] }
        }
    }

    private func copyFeedback(now: Nanoseconds) {
        withUnsafeMutableBytes(of: &device.pointee.position) { raw in
            let p = raw.bindMemory(to: Int32.self)
            for i in 0..<axes.count { p[i] = axes.position[i] }
        }
        withUnsafeMutableBytes(of: &device.pointee.velocity) { raw in
            let v = raw.bindMemory(to: Int32.self)
            for i in 0..<axes.count { v[i] = axes.velocity[i] }
        }
        withUnsafeMutableBytes(of: &device.pointee.status) { raw in
            let s = raw.bindMemory(to: UInt16.self)
            for i in 0..<axes.count { s[i] = axes.atLimit(i) ? DriveStatus.atLimit.rawValue : 0 }
        }
        let sensed = Int64(injectedForceMN) + SharedIndex.load(sensedForceMN)
        device.pointee.force_mn = Int32(clamping: sensed)
        device.pointee.sample_time_ns = UInt64(now)
    }
}
