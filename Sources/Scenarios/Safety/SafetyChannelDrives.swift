import Core
import Foundation
import Safety
import Sim
import Synchronization

/// Simulated drives with a safety channel on a Unix datagram socket: every millisecond they
/// send the monitor a drive sample (`LSD2`) and take its permits (`LSP2`) on their safety lines,
/// which remove power by themselves when no permit came for `watchdog` seconds. A permit counts
/// only from the monitor's user, with the channel key's tag and a fresh counter: a forged or
/// replayed permit refreshes nothing. The host side
/// is a stand-in that holds position with power requested, so the only thing between the drives
/// and power is the monitor. Runs on a thread of its own, as drives run on their own processors.
public final class SafetyChannelDrives: @unchecked Sendable {
    public struct Report: Sendable {
        public var enabled: [Bool]
        public var faults: [DriveFault]
        public var permitsReceived: Int
        public var permitsWithPower: Int
        /// Monotonic time of the last permit received, and of power going from on to off (ns; 0: never).
        public var lastPermitAt: Nanoseconds
        /// When the monitor sent the last permit taken: its counter, the monitor's own
        /// CLOCK_MONOTONIC (ns; 0: never). Unlike `lastPermitAt`, not delayed when this thread
        /// is late to read its socket.
        public var lastPermitSentAt: Nanoseconds
        public var poweredOffAt: Nanoseconds
        public var everPowered: Bool
        /// Datagrams on the drives' socket that were not a valid permit from the monitor.
        public var permitsRefused: Int
    }

    let axes: SimulatedDriveAxes
    let socket: DatagramSocket
    let monitorPath: String
    let count: Int
    let key: ChannelKey
    let monitorUIDs: UIDSet
    let lock = NSLock()
    let running = Atomic<Bool>(false)
    let finished = DispatchSemaphore(value: 0)
    var report: Report

    /// Drives for `specs` at `start`, listening on `listen`, sending samples to `monitor`,
    /// taking permits from the users `monitorUIDs` (default: this process's own).
    public init(axes specs: [AxisSpec], start: JointVector, listen: String, monitor: String, watchdog: Double,
                key: ChannelKey, monitorUIDs: [UInt32] = [geteuid()]) throws {
        axes = SimulatedDriveAxes(axes: specs, start: start, dynamics: .emulated(nil))
        axes.armSafetyLine(watchdog: watchdog)
        socket = try DatagramSocket(bindTo: listen, passCredentials: true)
        monitorPath = monitor
        count = specs.count
        self.key = key
        guard let uids = UIDSet(monitorUIDs) else { throw DatagramSocket.SocketError(description: "1…\(UIDSet.capacity) monitor user ids, not \(monitorUIDs.count)") }
        self.monitorUIDs = uids
        report = Report(enabled: Array(repeating: false, count: specs.count), faults: Array(repeating: .none, count: specs.count),
                        permitsReceived: 0, permitsWithPower: 0, lastPermitAt: 0, lastPermitSentAt: 0, poweredOffAt: 0, everPowered: false,
                        permitsRefused: 0)
    }

    deinit { stop() }

    public func start() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in
            loop()
            finished.signal()
        }
        thread.name = "lumen-safety-drives"
        thread.start()
    }

    public func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { finished.wait() }
    }

    public var snapshot: Report {
        lock.lock()
        defer { lock.unlock() }
        return report
    }

    private func loop() {
        var rx = [UInt8](repeating: 0, count: 256)
        var tx = [UInt8](repeating: 0, count: SafetyWire.maxSize)
        var status = [UInt8](repeating: 0, count: count)
        var sequence: UInt32 = 0
        var gate = PermitGate(key: key, monitorUIDs: monitorUIDs)
        var sealer = ChannelSealer(key: key)
        let receiver = CredentialReceiver()
        defer { receiver.deallocate() }
        var last = MonotonicClock.now()
        var deadline = last + 1_000_000
        while running.load(ordering: .acquiring) {
            _ = MonotonicClock.sleep(until: deadline)
            deadline += 1_000_000
            let now = MonotonicClock.now()
            if now > deadline { deadline = now + 1_000_000 }
            lock.lock()
            // Permits from the monitor onto the safety lines.
            while true {
                let got = rx.withUnsafeMutableBytes { receiver.receive(socket.fd, into: $0) }
                if got.count <= 0 { break }
                let admitted = got.truncated ? nil : rx.withUnsafeBytes {
                    gate.admit(UnsafeRawBufferPointer(rebasing: $0[0..<got.count]), uid: got.uid, hasCredentials: got.hasCredentials)
                }
                guard let p = admitted else {
                    report.permitsRefused += 1
                    continue
                }
                for i in 0..<count { axes.refreshSafetyLine(axis: i, permit: p.permit, quickStop: p.quickStop) }
                report.permitsReceived += 1
                if p.permit { report.permitsWithPower += 1 }
                report.lastPermitAt = now
                report.lastPermitSentAt = Nanoseconds(truncatingIfNeeded: gate.lastCounter)
            }
            // The host stand-in holds position with power requested.
            let wasOn = (0..<count).contains { axes.emulatedAxis($0)!.enabled }
            // At most two drive cycles per pass: a stall of this thread (a loaded test machine)
            // is not time the drives' own processors would lose, and counted whole it made
            // their watchdogs trip on permits that had arrived and waited in the socket.
            axes.step(mode: .hold, enabled: true, dt: Double(min(now - last, 2_000_000)) * 1e-9)
            last = now
            var encoder = JointVector(count: count), load = JointVector(count: count)
            var velocity = JointVector(count: count), current = JointVector(count: count)
            var anyOn = false
            for i in 0..<count {
                let a = axes.emulatedAxis(i)!
                encoder[i] = a.measuredPosition
                load[i] = a.load
                velocity[i] = a.measuredVelocity
                current[i] = a.measuredCurrent
                status[i] = (a.enabled ? 1 : 0) | (a.faulted ? 2 : 0)
                report.enabled[i] = a.enabled
                report.faults[i] = a.fault
                anyOn = anyOn || a.enabled
            }
            if anyOn { report.everPowered = true }
            if wasOn, !anyOn, report.poweredOffAt == 0 { report.poweredOffAt = now }
            lock.unlock()
            sequence &+= 1
            let length = tx.withUnsafeMutableBytes { buffer in
                status.withUnsafeBufferPointer {
                    SafetyWire.encodeDriveSample(sequence: sequence, sampledAt: now, force: 0.1, encoder: encoder, load: load,
                                                 velocity: velocity, current: current, status: $0.baseAddress!,
                                                 counter: sealer.next(), key: key, into: buffer)
                }
            }
            _ = tx.withUnsafeBytes { socket.send(UnsafeRawBufferPointer(rebasing: $0[0..<length]), to: monitorPath) }
        }
    }
}

/// Stands in for the control process and the console on the safety channel: heartbeats every
/// millisecond (holding still, not following a command) and the operator's deadman held, with
/// an acknowledge press on request, each sealed with the channel key.
public final class ControlStandIn: @unchecked Sendable {
    let socket: DatagramSocket
    let monitorPath: String
    let axes: Int
    let key: ChannelKey
    let running = Atomic<Bool>(false)
    let acknowledgeRequests = Atomic<Int>(0)
    let finished = DispatchSemaphore(value: 0)

    public init(axes: Int, monitor: String, key: ChannelKey) throws {
        socket = try DatagramSocket(bindTo: nil)
        monitorPath = monitor
        self.axes = axes
        self.key = key
    }

    deinit { stop() }

    /// Presses acknowledge once (for one datagram) at the next send.
    public func acknowledge() { acknowledgeRequests.add(1, ordering: .relaxed) }

    public func start() {
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let thread = Thread { [self] in
            var tx = [UInt8](repeating: 0, count: SafetyWire.maxSize)
            var sequence: UInt64 = 0
            var control = ChannelSealer(key: key), console = ChannelSealer(key: key)
            let zeros = JointVector(count: axes)
            var deadline = MonotonicClock.now()
            var pressRemaining = 0
            while running.load(ordering: .acquiring) {
                deadline += 1_000_000
                _ = MonotonicClock.sleep(until: deadline)
                sequence += 1
                let now = MonotonicClock.now()
                let n = tx.withUnsafeMutableBytes {
                    SafetyWire.encodeHeartbeat(sequence: sequence, sentAt: now, following: false, imageGuided: false, imageAcquiredAt: 0,
                                               lostFrames: 0, crcErrors: 0, wkcErrors: 0, position: zeros, velocity: zeros,
                                               counter: control.next(), key: key, into: $0)
                }
                _ = tx.withUnsafeBytes { socket.send(UnsafeRawBufferPointer(rebasing: $0[0..<n]), to: monitorPath) }
                // Acknowledge as a 5 ms press and a release, so the monitor sees an edge.
                if pressRemaining == 0, acknowledgeRequests.load(ordering: .relaxed) > 0, sequence % 20 == 0 {
                    acknowledgeRequests.subtract(1, ordering: .relaxed)
                    pressRemaining = 5
                }
                let press = pressRemaining > 0
                if press { pressRemaining -= 1 }
                let m = tx.withUnsafeMutableBytes { SafetyWire.encodeOperator(deadman: true, acknowledge: press, counter: console.next(), key: key, into: $0) }
                _ = tx.withUnsafeBytes { socket.send(UnsafeRawBufferPointer(rebasing: $0[0..<m]), to: monitorPath) }
            }
            finished.signal()
        }
        thread.name = "lumen-control-stand-in"
        thread.start()
    }

    public func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { finished.wait() }
    }
}
