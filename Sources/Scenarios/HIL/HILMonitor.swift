import Core
import Control
import Foundation
import Glibc
import Safety
import Sim
import Synchronization

/// The safety monitor beside a scenario's cycle: `lumen-safety` as its own process on the
/// scenario's limits file, started as the live runtime starts it (a private directory, a fresh
/// channel key of mode 0600, `--exit-with-parent`), on SCHED_FIFO where permitted. A scenario can
/// kill it (SIGKILL) or hang it (SIGSTOP) mid-run; what it latched is read back from its log.
public final class HILMonitor: @unchecked Sendable {
    public let channel: MonitorLaunch
    let process = Process()
    private(set) var hung = false

    /// One fault the monitor latched, as its log line gives it.
    public struct Fault: Sendable, Equatable {
        /// CLOCK_MONOTONIC (s), the clock the runner's timeline counts on too.
        public var monotonic: Double
        public var check: String
        public var category: Int
        public var line: String
    }

    /// Prepares the directory and the key.
    public init() throws(HILRunError) {
        do { channel = try MonitorLaunch(prefix: "lumen-hil") } catch { throw .link("the monitor: \(error.description)") }
    }

    deinit { try? FileManager.default.removeItem(atPath: channel.directory) }

    /// `lumen-safety` beside the running executable (or beside a test bundle's runner).
    public static func executable() -> String? { MonitorLaunch.executableBesideThisOne() }

    /// Launches the monitor on `limits`; returns a note when SCHED_FIFO `priority` was refused.
    public func start(limits: String, priority: Int32?) throws(HILRunError) -> String? {
        guard let exe = Self.executable() else {
            throw .link("no lumen-safety executable beside this one: build it (swift build --product lumen-safety)")
        }
        _ = FileManager.default.createFile(atPath: channel.logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = channel.arguments(config: limits)
        process.standardOutput = FileHandle.nullDevice
        do {
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: channel.logPath))
            try process.run()
        } catch { throw .link("cannot start \(exe): \(error)") }
        guard let priority else { return nil }
        return MonitorLaunch.setFIFO(pid: process.processIdentifier, priority: priority)
    }

    /// Waits (bounded) until the monitor listens on its socket.
    public func waitListening(seconds: Double) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if FileManager.default.fileExists(atPath: channel.listenPath) { return true }
            if !process.isRunning { return false }
            usleep(2000)
        }
        return false
    }

    /// The monitor killed, as a crash would: no last permit, no goodbye.
    public func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
    }

    /// The monitor hung: stopped by the scheduler, its socket still there, nothing answered.
    public func hang() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGSTOP)
        hung = true
    }

    /// Stops the monitor (resuming a hung one first so that it can exit), bounded: on a loaded
    /// machine it may need seconds to drain its fault log to the file, which the verdicts read.
    public func stop(seconds: Double = 10) {
        guard process.processIdentifier > 0 else { return }
        if hung { Glibc.kill(process.processIdentifier, SIGCONT) }
        if process.isRunning { process.terminate() }
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < end { usleep(5000) }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    public var log: String { (try? String(contentsOfFile: channel.logPath, encoding: .utf8)) ?? "" }

    /// The faults the log names (`lumen-safety: fault t=12.345 s  velocity joint insertion … → stop category 0`).
    public static func faults(inLog log: String) -> [Fault] {
        log.split(separator: "\n").compactMap { raw in
            let line = String(raw)
            guard let start = line.range(of: "fault t=") else { return nil }
            let rest = line[start.upperBound...]
            let words = rest.split(separator: " ", omittingEmptySubsequences: true)
            guard words.count >= 3, let t = Double(words[0]), words[1] == "s",
                  let cat = line.range(of: "stop category ", options: .backwards),
                  let category = Int(line[cat.upperBound...].prefix { $0.isNumber }) else { return nil }
            return Fault(monotonic: t, check: String(words[2]), category: category, line: line)
        }
    }
}

/// The drives' side of the safety channel for emulated DriveLink drives, on a thread of its own
/// beside the cycle (docs/safety/channel.md): it takes the monitor's permits onto the drives'
/// safe-torque-off input (no valid permit with power within `watchdog`: torque off), sends the
/// monitor the drives' own readings, and relays the cycle's heartbeat (the reference it
/// commanded, sent only when the cycle has run since the last one: a stalled or silent host
/// sends none) and the operator's deadman and acknowledge. On hardware the drive firmware and
/// the control stack do this; the emulated drives have no processor of their own.
/// Without a log (`drivesOnly`), it is the drives' side alone: the live runtime's cycle sends
/// the heartbeat and the operator's messages itself.
public final class HILSafetyBridge: @unchecked Sendable {
    let emulator: DriveLinkDriveEmulator
    /// The monitor's sockets and the channel key.
    let drivesPath: String
    let listenPath: String
    let key: ChannelKey
    let log: HILLog?
    /// Told each permit admitted (bits: 1 power, 2 quick stop; when, monotonic ns), from this thread.
    let onPermit: (@Sendable (Int, Nanoseconds) -> Void)?
    let axes: Int
    let watchdog: Nanoseconds
    /// When the cycle's time 0 is (monotonic ns): set before the cycle starts.
    var origin: Nanoseconds {
        get { originCell.load(ordering: .acquiring) }
        set { originCell.store(newValue, ordering: .releasing) }
    }
    private let originCell = Atomic<Int64>(0)
    let hostActive: @Sendable () -> Bool
    private let running = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Bit 0: a permit with power stands (fresh within the watchdog); bit 1: quick stop asked.
    let permitBits = Atomic<Int>(0)
    let permitsTaken = Atomic<Int>(0)
    let fifoRefused = Atomic<Bool>(false)
    /// The drives' socket (permits in, samples out) and the control's (heartbeat, operator): set
    /// by `start`, then the channel thread's alone.
    /// The host's link error counts the cycle publishes, for the heartbeat (nil: the drives'
    /// side alone, whose host sends its own heartbeat).
    let linkErrors: LinkCounterCells?
    private var drivesSocket: DatagramSocket?
    private var controlSocket: DatagramSocket?

    init(emulator: DriveLinkDriveEmulator, monitor: HILMonitor, log: HILLog, axes: Int, watchdog: Nanoseconds, origin: Nanoseconds,
         linkErrors: LinkCounterCells, hostActive: @escaping @Sendable () -> Bool) {
        self.emulator = emulator
        self.linkErrors = linkErrors
        drivesPath = monitor.channel.drivesPath
        listenPath = monitor.channel.listenPath
        key = monitor.channel.key
        self.log = log
        onPermit = nil
        self.axes = axes
        self.watchdog = watchdog
        originCell.store(origin, ordering: .releasing)
        self.hostActive = hostActive
    }

    /// The drives' side alone, for a monitor listening at `listen` that sends its permits to
    /// `drives`: permits onto the safe-torque-off input within `watchdog`, the drives' readings back.
    public init(drivesOnly emulator: DriveLinkDriveEmulator, drives: String, listen: String, key: ChannelKey, axes: Int, watchdog: Nanoseconds,
                onPermit: @escaping @Sendable (Int, Nanoseconds) -> Void) {
        self.emulator = emulator
        drivesPath = drives
        listenPath = listen
        self.key = key
        log = nil
        self.onPermit = onPermit
        self.axes = axes
        self.watchdog = watchdog
        hostActive = { false }
        linkErrors = nil
    }

    public func start(priority: Int32?) throws(HILRunError) {
        let drives: DatagramSocket, control: DatagramSocket
        do {
            drives = try DatagramSocket(bindTo: drivesPath, passCredentials: true)
            control = try DatagramSocket(bindTo: nil)
        } catch { throw .link("the safety channel's sockets: \(error.description)") }
        guard let address = DatagramSocket.address(listenPath) else { throw .link("socket path too long: \(listenPath)") }
        guard let uids = UIDSet([geteuid()]) else { throw .link("no user id for the monitor") }
        // Torque off until the monitor permits power.
        emulator.setSafeTorqueOff(true)
        drivesSocket = drives
        controlSocket = control
        running.store(true, ordering: .releasing)
        let thread = Thread { [self] in
            if let priority, !RealtimeOptions(fifoPriority: priority).applyToCurrentThread().isEmpty { fifoRefused.store(true, ordering: .releasing) }
            if let drives = drivesSocket, let control = controlSocket {
                loop(drives: drives, control: control, monitor: address, gate: PermitGate(key: key, monitorUIDs: uids))
            }
            finished.signal()
        }
        thread.name = "lumen-hil-safety"
        thread.start()
    }

    public func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { finished.wait() }
    }

    private func loop(drives: DatagramSocket, control: DatagramSocket, monitor address: sockaddr_un, gate initial: PermitGate) {
        var gate = initial
        let receiver = CredentialReceiver()
        defer { receiver.deallocate() }
        let rx = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        let tx = UnsafeMutableRawBufferPointer.allocate(byteCount: SafetyWire.maxSize, alignment: 8)
        let status = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, axes))
        defer { rx.deallocate(); tx.deallocate(); status.deallocate() }
        var drivesSealer = ChannelSealer(key: key)
        var controlSealer = ChannelSealer(key: key)
        var consoleSealer = ChannelSealer(key: key)
        var permit = false, quickStop = false
        var permitAt: Nanoseconds = 0
        var torqueOff = true
        var stopping = false
        var sampleSequence: UInt32 = 0
        var heartbeatSequence: UInt64 = 0
        var lastCycles = -1
        var cycles = 0
        var everPermitted = false
        var history = [(t: Nanoseconds, q: JointVector)](repeating: (0, JointVector(count: axes)), count: 256)
        var historyNext = 0
        let started = MonotonicClock.now()
        var next = started
        while running.load(ordering: .acquiring) {
            let now = MonotonicClock.now()
            // Permits.
            while true {
                let got = receiver.receive(drives.fd, into: rx)
                if got.count <= 0 { break }
                if got.truncated { continue }
                guard let p = gate.admit(UnsafeRawBufferPointer(start: rx.baseAddress, count: got.count), uid: got.uid,
                                         hasCredentials: got.hasCredentials) else { continue }
                permit = p.permit
                quickStop = p.quickStop
                permitAt = now
                permitsTaken.add(1, ordering: .relaxed)
                onPermit?((p.permit ? 1 : 0) | (p.quickStop ? 2 : 0), now)
            }
            let allowed = permit && now - permitAt <= watchdog
            if allowed == torqueOff {
                torqueOff = !allowed
                emulator.setSafeTorqueOff(torqueOff)
            }
            // A controlled stop (categories 1 and 2) the drive makes itself, power kept.
            if (allowed && quickStop) != stopping {
                stopping = allowed && quickStop
                emulator.setQuickStop(stopping)
            }
            permitBits.store((allowed ? 1 : 0) | (quickStop ? 2 : 0), ordering: .releasing)

            // The drives' own readings.
            let sample = emulator.safetySample()
            var encoder = JointVector(count: axes), load = JointVector(count: axes)
            var velocity = JointVector(count: axes), current = JointVector(count: axes)
            for i in 0..<min(axes, sample.axes.count) {
                let a = sample.axes[i]
                encoder[i] = a.encoder; load[i] = a.load; velocity[i] = a.velocity; current[i] = a.current
                status[i] = (a.powered ? 1 : 0) | (a.faulted ? 2 : 0)
            }
            // The drive's speed over the last 50 ms or more of the drives' own time, as a drive's
            // own estimate is filtered: the emulation's speed over its last step (often a
            // fraction of a millisecond, when a command arrives just after the step before)
            // reads several times the commanded speed, and so does a step after a stall of the
            // host's cycle or of the emulation (a host that is not real-time).
            let at = sample.sampledAt
            if historyNext == 0 || history[(historyNext - 1) % history.count].t != at {
                history[historyNext % history.count] = (at, encoder)
                historyNext += 1
            }
            if let old = (1...min(historyNext, history.count)).lazy.map({ history[(historyNext - $0) % history.count] }).first(where: { at - $0.t >= 50_000_000 }) {
                let dt = Double(at - old.t) * 1e-9
                for i in 0..<axes { velocity[i] = (encoder[i] - old.q[i]) / dt }
            }
            sampleSequence &+= 1
            let n = SafetyWire.encodeDriveSample(sequence: sampleSequence, sampledAt: now, force: sample.force.isFinite ? sample.force : 0,
                                                 encoder: encoder, load: load, velocity: velocity, current: current, status: status,
                                                 counter: drivesSealer.next(), key: key, into: tx)
            _ = DescriptorIO.send(drives.fd, UnsafeRawBufferPointer(start: tx.baseAddress, count: n), to: address)

            // The cycle's heartbeat: only for a cycle that ran since the last one, stamped with
            // the cycle's own time, so that the speed implied by consecutive commands is the
            // commanded one however this thread was scheduled.
            if let log, log.latest == nil {
                // Before the cycle's first run: where the drives stand, not following, so that
                // the monitor can be acknowledged before the scenario's time starts.
                heartbeatSequence &+= 1
                let h = SafetyWire.encodeHeartbeat(sequence: heartbeatSequence, sentAt: now, following: false, imageGuided: false,
                                                   imageAcquiredAt: 0, lostFrames: 0, crcErrors: 0, wkcErrors: 0,
                                                   position: encoder, velocity: JointVector(count: axes),
                                                   counter: controlSealer.next(), key: key, into: tx)
                _ = DescriptorIO.send(control.fd, UnsafeRawBufferPointer(start: tx.baseAddress, count: h), to: address)
            } else if let row = log?.latest, row.count != lastCycles {
                // The sequence counts the host's cycles, not this thread's samples of them: the
                // monitor's link buckets leak per control cycle run.
                heartbeatSequence &+= row.count > lastCycles && lastCycles >= 0 ? UInt64(row.count - lastCycles) : 1
                lastCycles = row.count
                let sentAt = origin + Nanoseconds(row.time * 1e9)
                // The host's link as its cycle counted it, so that the monitor's `link` and
                // `crc` checks judge the link on this runtime as on the live one.
                let errors = linkErrors?.errorCounts ?? LinkErrorCounts()
                let h = SafetyWire.encodeHeartbeat(sequence: heartbeatSequence, sentAt: sentAt, following: hostActive(), imageGuided: false,
                                                   imageAcquiredAt: 0, lostFrames: errors.lost, crcErrors: errors.corrupt,
                                                   wkcErrors: errors.workingCounter,
                                                   position: row.reference, velocity: JointVector(count: axes),
                                                   counter: controlSealer.next(), key: key, into: tx)
                _ = DescriptorIO.send(control.fd, UnsafeRawBufferPointer(start: tx.baseAddress, count: h), to: address)
            }

            // The operator: the deadman held throughout; until the first permit with power, the
            // acknowledge pressed for 5 ms every 50 ms (the monitor takes its edge once what it
            // latched at start-up has cleared); never after, so that what it latches stays latched.
            cycles += 1
            if allowed { everPermitted = true }
            let press = !everPermitted && cycles % 50 >= 20 && cycles % 50 < 25
            if log != nil, press || cycles % 10 == 0 {
                let m = SafetyWire.encodeOperator(deadman: true, acknowledge: press, counter: consoleSealer.next(), key: key, into: tx)
                _ = DescriptorIO.send(control.fd, UnsafeRawBufferPointer(start: tx.baseAddress, count: m), to: address)
            }
            next += 1_000_000
            if next < MonotonicClock.now() { next = MonotonicClock.now() }
            _ = MonotonicClock.sleep(until: next)
        }
    }
}
