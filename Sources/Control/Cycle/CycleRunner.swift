import Core
import Synchronization

/// How the cycle reacts to a failing link.
public struct CycleFaultPolicy: Sendable, Equatable {
    /// Consecutive failed reads after which the cycle stops motion itself and goes inactive.
    public var maxConsecutiveReadFaults: Int
    public init(maxConsecutiveReadFaults: Int = 10) { self.maxConsecutiveReadFaults = maxConsecutiveReadFaults }
}

/// Counters of the cycle's stages, reported with the timing.
public struct CycleCounters: Sendable, Equatable {
    public var readFaults: Int64 = 0
    public var writeFaults: Int64 = 0
    /// Commands with a NaN or infinity, replaced by a hold.
    public var invalidCommands: Int64 = 0
    /// Times the cycle stopped motion itself after too many failed reads.
    public var faultStops: Int64 = 0
    /// Times the cycle stopped motion itself because a drive reported a fault.
    public var driveFaultStops: Int64 = 0
    public var lastFault: HardwareFault?
    /// Why the cycle last stopped motion by itself (nil: it never had to).
    public var stop: CycleStop?
}

/// Why the cycle stopped motion by itself and left `active`.
public enum CycleStop: Sendable, Equatable, CustomStringConvertible {
    /// A drive latched a fault (a fault message, a status bit, the power stage dropping out):
    /// a category 0 stop — enable removed at once, hold — until an operator acknowledges it.
    case driveFault(DriveFaultReport)
    /// The configured number of cycles in a row without a fresh, valid state: a category 0 stop.
    case linkLost(HardwareFault)

    public var description: String {
        switch self {
        case .driveFault(let f): "stopped on a drive fault: \(f)"
        case .linkLost(let f): "link lost (last read: \(f))"
        }
    }
}

/// How a run of the cycle ended, as a command reports it: in its summary and its exit code.
public enum RunEnding: Sendable, Equatable, CustomStringConvertible {
    /// It ran for as long as it was asked to.
    case completed
    case stopped(CycleStop)
    /// A live run stopped by SIGINT or SIGTERM (the signal's number): a category-1 stop first.
    case signalled(Int32)
    /// The live run's safety monitor process exited or was killed: the drives lost its permits.
    case monitorLost
    /// The safety monitor stopped the run (a latched fault, `category` 0, 1 or 2) and nobody
    /// acknowledged it: the drives stayed without power.
    case safetyStop(category: Int)

    /// The exit code of a command whose run ended so: 0 completed, 3 stopped on a drive fault,
    /// 4 link lost, 5 stopped by a signal, 6 the safety monitor was lost, 7 the safety monitor
    /// stopped it (1 and 2 stay the usual failure and usage codes).
    public var exitCode: Int32 {
        switch self {
        case .completed: 0
        case .stopped(.driveFault): 3
        case .stopped(.linkLost): 4
        case .signalled: 5
        case .monitorLost: 6
        case .safetyStop: 7
        }
    }

    /// A short key for summaries: completed, drive_fault, link_lost.
    public var key: String {
        switch self {
        case .completed: "completed"
        case .stopped(.driveFault): "drive_fault"
        case .stopped(.linkLost): "link_lost"
        case .signalled: "signal"
        case .monitorLost: "monitor_lost"
        case .safetyStop: "safety_stop"
        }
    }

    public var description: String {
        switch self {
        case .completed: "completed"
        case .stopped(let s): s.description
        case .signalled(let n): "stopped by signal \(n)"
        case .monitorLost: "the safety monitor process was lost; the drives lost its permits"
        case .safetyStop(let c): "stopped by the safety monitor (category \(c)), not acknowledged"
        }
    }
}

/// The fixed-rate control cycle: read → update → write, then sleep to the next absolute deadline.
///
/// The runner owns the hardware and the controller (Drake's system/context split: the model
/// lives in the controller, the mutable data here). It enforces the lifecycle: whatever the
/// controller computes, only `active` writes it; every other state writes a hold with the power
/// off. Lifecycle transitions requested while the loop runs are carried out by the loop thread
/// between cycles, so the hardware is only ever touched from one thread at a time.
public final class CycleRunner<Hardware: RobotHardware & ~Copyable, Controller: CycleController & ~Copyable, Clock: CycleClock> {
    @usableFromInline var _hardware: Hardware
    @usableFromInline var _controller: Controller
    /// The controller, lent for reading (a copy only where the controller is copyable).
    @inlinable public var controller: Controller { _read { yield _controller } }
    @usableFromInline var _clock: Clock
    @inlinable public var clock: Clock { _clock }
    public let faultPolicy: CycleFaultPolicy

    /// The latest state read (the previous one when a read failed).
    @usableFromInline var _state: JointState
    @inlinable public var state: JointState { _state }
    /// The command last written.
    @usableFromInline var _command: JointCommand
    @inlinable public var command: JointCommand { _command }
    @usableFromInline var _timing: CycleTiming
    @usableFromInline var _counters = CycleCounters()
    public var counters: CycleCounters { _counters }

    @usableFromInline var consecutiveReadFaults = 0
    @usableFromInline let lifecycleRaw = Atomic<UInt8>(LifecycleState.unconfigured.rawValue)
    @usableFromInline let pending = Atomic<UInt8>(0)
    @usableFromInline let stopRequested = Atomic<Bool>(false)
    @usableFromInline let running = Atomic<Bool>(false)
    private var pendingResult: LifecycleError?

    public init(hardware: consuming Hardware, controller: consuming Controller, clock: Clock, period: Nanoseconds,
                faultPolicy: CycleFaultPolicy = CycleFaultPolicy()) {
        let joints = hardware.jointCount
        _hardware = hardware
        _controller = controller
        _clock = clock
        self.faultPolicy = faultPolicy
        _state = JointState(jointCount: joints)
        _command = JointCommand(jointCount: joints)
        _timing = CycleTiming(period: period)
    }

    /// Lets `body` look at the hardware (for reports and tests). Not while the loop runs.
    public func withHardware<R>(_ body: (borrowing Hardware) throws -> R) rethrows -> R {
        try body(_hardware)
    }

    public var lifecycle: LifecycleState {
        LifecycleState(rawValue: lifecycleRaw.load(ordering: .acquiring)) ?? .finalized
    }

    public var isRunning: Bool { running.load(ordering: .acquiring) }

    // MARK: Lifecycle (not real-time)

    /// unconfigured → inactive: the hardware opens its links and sizes its buffers.
    public func configure() throws(LifecycleError) {
        try requireStopped("configure")
        guard lifecycle == .unconfigured else { throw .invalidTransition(from: lifecycle, transition: "configure") }
        do { try _hardware.configure() } catch { throw .hardware(transition: "configure", error) }
        _state = JointState(jointCount: _hardware.jointCount)
        _command = JointCommand(jointCount: _hardware.jointCount)
        _ = _hardware.read(into: &_state, now: _clock.now())
        setLifecycle(.inactive)
    }

    /// inactive → active: motion may be commanded from the next cycle. While the loop runs, the
    /// loop thread carries it out before its next cycle and this call waits for it.
    public func activate() throws(LifecycleError) {
        try transition(.activate)
    }

    /// active → inactive: the next write is a hold with the power off.
    public func deactivate() throws(LifecycleError) {
        try transition(.deactivate)
    }

    /// Ends a run through the lifecycle, however it went: active → inactive when the cycle is
    /// still active, nothing more when the cycle already stopped motion itself (a drive fault,
    /// a lost link). Returns how the run ended. Not while the loop runs.
    public func endRun() throws(LifecycleError) -> RunEnding {
        try requireStopped("end the run")
        if lifecycle == .active { try transition(.deactivate) }
        return _counters.stop.map { .stopped($0) } ?? .completed
    }

    /// An operator's acknowledge of a latched drive fault: the hardware asks its drives to clear
    /// their faults (a DriveLink FAULT_RESET, a CiA 402 fault reset). The only path by which a
    /// fault is reset; the cycle never does it by itself. Only while inactive and not running,
    /// so that the hardware is touched by one thread. Throws when a fault remains.
    public func acknowledgeFaults() throws(LifecycleError) {
        try requireStopped("acknowledge faults")
        guard lifecycle == .inactive else { throw .invalidTransition(from: lifecycle, transition: "acknowledge faults") }
        do { try _hardware.acknowledgeFaults() } catch {
            if let f = error.driveFault { throw .driveFaultLatched(f) }
            throw .hardware(transition: "acknowledge faults", error)
        }
    }

    /// inactive → unconfigured.
    public func cleanup() throws(LifecycleError) {
        try requireStopped("cleanup")
        guard lifecycle == .inactive else { throw .invalidTransition(from: lifecycle, transition: "cleanup") }
        _hardware.shutdown()
        setLifecycle(.unconfigured)
    }

    /// any → finalized: stops the loop, removes power and closes the hardware. Terminal.
    public func finalize() {
        requestStop()
        while isRunning { _ = MonotonicClock.sleep(until: MonotonicClock.now() + 100_000) }
        if lifecycle == .active { performDeactivate() }
        if lifecycle != .unconfigured && lifecycle != .finalized { _hardware.shutdown() }
        setLifecycle(.finalized)
    }

    @usableFromInline enum Transition: UInt8 { case activate = 1, deactivate = 2 }

    private func transition(_ t: Transition) throws(LifecycleError) {
        if isRunning {
            pendingResult = nil
            pending.store(t.rawValue, ordering: .releasing)
            while pending.load(ordering: .acquiring) != 0 && isRunning {
                _ = MonotonicClock.sleep(until: MonotonicClock.now() + 100_000)
            }
            if pending.load(ordering: .acquiring) == 0 {
                if let e = pendingResult { throw e }
                return
            }
            // The loop stopped before it took the request: carry it out here.
            pending.store(0, ordering: .releasing)
        }
        if let e = perform(t) { throw e }
    }

    private func perform(_ t: Transition) -> LifecycleError? {
        switch t {
        case .activate:
            guard lifecycle == .inactive else { return .invalidTransition(from: lifecycle, transition: "activate") }
            if let f = _hardware.driveFault { return .driveFaultLatched(f) }
            do { try _hardware.activate() } catch {
                if let f = error.driveFault { return .driveFaultLatched(f) }
                return .hardware(transition: "activate", error)
            }
            _controller.reset(to: _state)
            consecutiveReadFaults = 0
            setLifecycle(.active)
        case .deactivate:
            guard lifecycle == .active else { return .invalidTransition(from: lifecycle, transition: "deactivate") }
            performDeactivate()
        }
        return nil
    }

    private func performDeactivate() {
        _command.setHold(enable: false)
        _ = _hardware.write(_command, now: _clock.now())
        _hardware.deactivate()
        setLifecycle(.inactive)
    }

    /// Carries out a transition posted while the loop runs. Called by the loop thread only.
    @usableFromInline func servicePendingTransition() {
        let raw = pending.load(ordering: .acquiring)
        guard raw != 0, let t = Transition(rawValue: raw) else { return }
        pendingResult = perform(t)
        pending.store(0, ordering: .releasing)
    }

    private func requireStopped(_ what: String) throws(LifecycleError) {
        if isRunning { throw .invalidTransition(from: lifecycle, transition: "\(what) while the cycle runs") }
    }

    @inlinable func setLifecycle(_ s: LifecycleState) {
        lifecycleRaw.store(s.rawValue, ordering: .releasing)
    }

    // MARK: The loop

    /// Asks a running loop to return after its current cycle. Safe from any thread.
    public func requestStop() { stopRequested.store(true, ordering: .releasing) }

    /// Runs the loop on the calling thread until `cycles` cycles have run (nil: until
    /// `requestStop`). The lifecycle must be inactive or active. Returns the cycles run.
    @discardableResult
    public func run(cycles limit: Int64? = nil) throws(LifecycleError) -> Int64 {
        guard lifecycle == .inactive || lifecycle == .active else {
            throw .invalidTransition(from: lifecycle, transition: "run the cycle")
        }
        stopRequested.store(false, ordering: .releasing)
        running.store(true, ordering: .releasing)
        defer {
            servicePendingTransition()
            running.store(false, ordering: .releasing)
        }
        _timing.start(at: _clock.now())
        var done: Int64 = 0
        while !stopRequested.load(ordering: .acquiring) {
            if let limit, done >= limit { break }
            if pending.load(ordering: .relaxed) != 0 { servicePendingTransition() }
            runOneCycle()
            done += 1
        }
        return done
    }

    /// One cycle: sleep to the deadline, read, update, write, account.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @inlinable public func runOneCycle() {
        _clock.sleep(until: _timing.nextDeadline)
        var tick = _timing.wake(at: _clock.now())
        let allowed = lifecycleRaw.load(ordering: .acquiring) == LifecycleState.active.rawValue

        var driveFaulted = false
        if let fault = _hardware.read(into: &_state, now: tick.wake) {
            tick.readFault = fault
            _counters.lastFault = fault
            if fault == .driveFault {
                // The link works; the drive does not. Not a link fault, and no count to wait for.
                driveFaulted = true
                consecutiveReadFaults = 0
            } else {
                _counters.readFaults += 1
                consecutiveReadFaults += 1
            }
        } else {
            consecutiveReadFaults = 0
        }

        _controller.update(state: _state, tick: tick, command: &_command)

        // No `||`/`&&` here: their autoclosures would retain self inside the cycle.
        let finite = _command.position.isFinite ? _command.velocity.isFinite : false
        if !allowed {
            _command.setHold(enable: false)
        } else if !finite {
            _counters.invalidCommands += 1
            _command.setHold(enable: true)
        }
        if allowed, driveFaulted {
            // A drive fault is a category 0 stop: power off at once, hold, out of `active`, and
            // no re-activation until an operator acknowledged it.
            _command.setHold(enable: false)
            _counters.driveFaultStops += 1
            // No `??`: its autoclosure would cost reference counting in the cycle.
            var named = DriveFaultReport(axis: nil, kind: .latched)
            if let f = _hardware.driveFault { named = f }
            _counters.stop = .driveFault(named)
            setLifecycle(.inactive)
        } else if allowed, consecutiveReadFaults >= faultPolicy.maxConsecutiveReadFaults {
            // A lost link is a safe stop: power off and out of `active` until someone re-activates.
            _command.setHold(enable: false)
            _counters.faultStops += 1
            var last = HardwareFault.noData
            if let f = _counters.lastFault { last = f }
            _counters.stop = .linkLost(last)
            setLifecycle(.inactive)
        }

        if let fault = _hardware.write(_command, now: _clock.now()) {
            _counters.writeFaults += 1
            _counters.lastFault = fault
        }
        _timing.finish(tick, at: _clock.now())
    }

    /// Clears timing statistics and counters, e.g. after a warm-up.
    public func resetStatistics() {
        _timing.resetStatistics()
        _counters = CycleCounters()
    }

    /// Timing and counters so far.
    public func report() -> CycleReport { CycleReport(timing: _timing, counters: _counters) }
}

extension CycleRunner where Hardware: Copyable, Controller: ~Copyable {
    /// The hardware (a copy for value types; the instance for classes).
    public var hardware: Hardware { _hardware }
}

extension CycleRunner where Hardware: ~Copyable, Controller: ~Copyable, Clock == MonotonicCycleClock {
    public convenience init(hardware: consuming Hardware, controller: consuming Controller, period: Nanoseconds,
                            faultPolicy: CycleFaultPolicy = CycleFaultPolicy()) {
        self.init(hardware: hardware, controller: controller, clock: MonotonicCycleClock(), period: period, faultPolicy: faultPolicy)
    }
}

/// Shared between the loop thread and its controllers: while the loop runs, only the loop
/// thread touches the hardware, the controller and the data; other threads only post
/// transitions and stop requests through atomics, and read reports after the loop returned.
extension CycleRunner: @unchecked Sendable where Hardware: ~Copyable, Controller: ~Copyable {}
