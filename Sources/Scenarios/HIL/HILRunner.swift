import Control
import Core
import Drivers
import Foundation
import Sim

/// How the runner runs a scenario.
public struct HILRunOptions: Sendable {
    /// The link, overriding the scenario's `setup.link` (nil: the scenario's).
    public var link: String?
    /// Runs every fault step as a no-op (injections, a silent host, the emergency stop, a
    /// released deadman): a fault scenario must then fail, or its checks cannot fail.
    public var faultsSwitchedOff = false
    /// How often the timeline polls the host's lifecycle and the device side (s).
    public var pollInterval = 0.002
    /// SCHED_FIFO priority (1…99) of the cycle thread and the emulated drives' thread; the
    /// timeline runs 10 below. nil: all on SCHED_OTHER. Where the system refuses it (no
    /// CAP_SYS_NICE), the run goes on without and its report says so: on a loaded machine a
    /// cycle on SCHED_OTHER is starved for hundreds of ms and the link-loss and watchdog checks
    /// then trip on a healthy link.
    public var fifoPriority: Int32? = 80

    public init(link: String? = nil, faultsSwitchedOff: Bool = false, fifoPriority: Int32? = 80) {
        self.link = link
        self.faultsSwitchedOff = faultsSwitchedOff
        self.fifoPriority = fifoPriority
    }
}

/// Everything a run recorded, the signals the expectations judge.
public struct HILRecording: Sendable, Equatable {
    public var axes: Int
    /// Every cycle: time (s), reference and measured position per axis.
    public var times: [Double] = []
    public var reference: [[Double]] = []
    public var position: [[Double]] = []
    /// Polled by the timeline: whether the host's cycle was active.
    public var lifecycleTimes: [Double] = []
    public var active: [Double] = []
    /// Polled from the device side (emulated links): power stage on (1/0), watchdog trips.
    public var deviceTimes: [Double] = []
    public var drivePowered: [Double] = []
    public var driveWatchdogTrips: [Double] = []
    public var hasDeviceSide = false
    /// Polled from the safety channel (when the monitor ran): a permit with power standing (1/0).
    public var monitorTimes: [Double] = []
    public var monitorPermit: [Double] = []
    public var hasMonitor = false
    /// What the monitor latched, from its log (time in s from the start).
    public var monitorFaults: [HILMonitorFault] = []
    /// When each labelled step ran (s).
    public var stepTimes: [String: Double] = [:]
    /// When the host left `active` by itself or by an operator's stop (s), and why.
    public var stopTime: Double?
    public var stopReason: HILScenario.StopReason?
    /// The stop came of the drives losing power the host did not remove (`StopReason.power_lost`).
    public var stopPowerLost = false
    public var stopCategory: Int?
    public var stopDetail = ""
    /// At the end of the run, every counter the link, the cycle and the device side report.
    public var counters: [String: Int] = [:]
    /// Sampled by the timeline while the run goes on: the counters the cycle publishes each
    /// cycle (the host's link, faulted reads and writes) and the device side's, by name.
    /// Counters known only at the end (the cycle's stops) have no series.
    public var counterTimes: [Double] = []
    public var counterSeries: [String: [Double]] = [:]
    /// What the run ran on, in words (the cycle and what drove it).
    public var runtime = ""
    public var ending = ""
    public var notes: [String] = []
    /// Whether the cycle, the emulated drives and the timeline ran on SCHED_FIFO, in words.
    public var realtime = ""
    public var duration = 0.0

    public init(axes: Int) {
        self.axes = axes
        reference = Array(repeating: [], count: axes)
        position = Array(repeating: [], count: axes)
    }

    /// The next of `steps` due at `t` (from index `next`, which it advances), its label's time
    /// recorded; a fault step while faults are switched off is noted and passed over. nil when
    /// none is due. Both runners' timelines take their steps through it.
    public mutating func takeDueStep(_ steps: [HILScenario.Step], next: inout Int, at t: Double, faultsOff: Bool,
                                     now: () -> Double) -> HILScenario.Step? {
        while next < steps.count, steps[next].at <= t {
            let step = steps[next]
            next += 1
            if let l = step.label { stepTimes[l] = now() }
            if faultsOff, step.isFault {
                notes.append("step \(next - 1) (\(step.action.rawValue)) switched off")
                continue
            }
            return step
        }
        return nil
    }

    /// A signal over time by its expectation name, or nil when this run does not have it.
    public func series(_ name: String) -> (t: [Double], v: [Double])? {
        guard let parsed = HILScenario.parseSignal(name) else { return nil }
        if let a = parsed.axis {
            guard a < axes else { return nil }
            switch parsed.name {
            case "position": return (times, position[a])
            case "target": return (times, reference[a])
            case "following_error": return (times, zip(reference[a], position[a]).map { $0 - $1 })
            case "travel":
                // From where the axis stood when the host first became active (before that the
                // state may not have arrived yet).
                let enabledAt = lifecycleTimes.indices.first { active[$0] > 0 }.map { lifecycleTimes[$0] } ?? 0
                guard let first = times.indices.first(where: { times[$0] >= enabledAt }) else { return ([], []) }
                let base = position[a][first]
                return (Array(times[first...]), position[a][first...].map { $0 - base })
            default: return nil
            }
        }
        if let name = HILScenario.counterSignal(parsed.name) {
            guard let v = counterSeries[name] else { return nil }
            return (counterTimes, v)
        }
        switch parsed.name {
        case "active": return (lifecycleTimes, active)
        case "drive_powered": return hasDeviceSide ? (deviceTimes, drivePowered) : nil
        case "drive_watchdog_trips": return hasDeviceSide && driveWatchdogTrips.count == deviceTimes.count ? (deviceTimes, driveWatchdogTrips) : nil
        case "monitor_permit": return hasMonitor ? (monitorTimes, monitorPermit) : nil
        default: return nil
        }
    }
}

extension HILRecording {
    /// Counters that only ever grow on a healthy link (frames, states, accepted frames): left
    /// out of `counterCourse`, whose scale is that of the trouble counted.
    static let trafficCounters: Set<String> = ["frames_sent", "states_received", "frames_received", "device_frames_accepted"]

    /// The plot of the counters that count trouble (rejected frames, CRC errors, working-counter
    /// shortfalls, lost frames, faulted reads…) over the run; nil when none was sampled.
    public var counterCourse: HILPlotData? {
        let names = counterSeries.keys.filter { !Self.trafficCounters.contains($0) }.sorted()
        guard !names.isEmpty, !counterTimes.isEmpty else { return nil }
        // Those that counted something first (the plot's colours are few), then the rest.
        let ordered = names.filter { (counterSeries[$0]?.last ?? 0) > 0 } + names.filter { (counterSeries[$0]?.last ?? 0) <= 0 }
        var plot = HILPlotData(title: "counters over the run", yLabel: "count")
        plot.series = ordered.prefix(6).map { HILPlotSeries(label: $0, t: counterTimes, v: counterSeries[$0] ?? []) }
        return plot
    }

    /// One poll of the device side at `t`: its power stage and watchdog trips, and its counters
    /// with `counters` (the host's, as the cycle last published them).
    public mutating func sample(device: (any HILDeviceSide)?, counters: [String: Int], at t: Double) {
        var sampled = counters
        if let d = device {
            let sample = d.sample()
            deviceTimes.append(t)
            drivePowered.append(sample.powered ? 1 : 0)
            if let w = sample.watchdogTrips { driveWatchdogTrips.append(Double(w)) }
            sampled.merge(d.counters()) { a, _ in a }
        }
        sampleCounters(sampled, at: t)
    }

    /// Why the host stopped: the cycle's own stop (a drive fault, a lost link), else an operator's.
    public mutating func noteStop(_ stop: CycleStop?, operatorStop: (category: Int, detail: String)?) {
        if let stop {
            switch stop {
            case .driveFault(let f):
                stopReason = .drive_fault
                stopCategory = f.stopCategory
                stopPowerLost = f.kind == .powerLost
            case .linkLost:
                stopReason = .link_lost
                stopCategory = 0
            }
            stopDetail = stop.description
        } else if let op = operatorStop {
            stopReason = .operator
            stopCategory = op.category
            stopDetail = op.detail
        }
    }

    /// The end of the run: every counter (the host's link, the cycle's, the device side's), and
    /// the counter series closed with them at `duration`.
    public mutating func finish(link: [String: Int], cycle c: CycleCounters, device: (any HILDeviceSide)?, duration: Double) {
        var all = link
        all["read_faults"] = Int(c.readFaults)
        all["write_faults"] = Int(c.writeFaults)
        all["fault_stops"] = Int(c.faultStops)
        all["drive_fault_stops"] = Int(c.driveFaultStops)
        all["invalid_commands"] = Int(c.invalidCommands)
        if let d = device { all.merge(d.counters()) { a, _ in a } }
        counters = all
        self.duration = duration
        // The series end where the run's own figures do.
        sampleCounters(all.filter { counterSeries[$0.key] != nil }, at: duration)
    }

    /// Appends one sample of the counters at `t`. A counter first seen now counted nothing before
    /// (the link publishes every counter it has from its set-up on): its earlier samples are 0.
    public mutating func sampleCounters(_ values: [String: Int], at t: Double) {
        let earlier = counterTimes.count
        counterTimes.append(t)
        for (name, value) in values {
            if counterSeries[name] == nil { counterSeries[name] = Array(repeating: 0, count: earlier) }
            counterSeries[name]?.append(Double(value))
        }
        // One that stopped being reported keeps its last value: every series as long as the times.
        for (name, series) in counterSeries where series.count == earlier {
            counterSeries[name]?.append(series.last ?? 0)
        }
    }
}

/// Why a runner does not run a scenario (on this link, this runtime): a skip, with the reason.
public struct HILRunSkip: Error, Sendable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

/// Why a scenario did not run to its end.
public enum HILRunError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The link could not be opened or the drives did not come up.
    case link(String)
    public var description: String {
        switch self {
        case .link(let s): "the link did not come up: \(s)"
        }
    }
}

/// Runs scenarios at wall clock on the cycle (`CycleRunner`, the same cycle `lumen demo
/// --scripted` runs) with the link the scenario or the caller names: the cycle on a thread of
/// its own, the step timeline on the calling thread.
public enum HILRunner {
    /// Runs `scenario` and judges its expectations.
    public static func run(_ scenario: HILScenario, options: HILRunOptions = HILRunOptions()) -> HILScenarioResult {
        judge(scenario, options: options) { try record(scenario, link: $0, options: options) }
    }

    /// Records the scenario with `record` (given the link's text; it returns the recording and
    /// the link's description) and judges its expectations: the verdict whichever runtime ran it.
    /// `record` throws `HILRunSkip` for a scenario it cannot run, anything else for an error.
    public static func judge(_ scenario: HILScenario, options: HILRunOptions,
                             record: (String) throws -> (HILRecording, String)) -> HILScenarioResult {
        let started = Date()
        let linkText = options.link ?? scenario.setup.link
        var result = HILScenarioResult(scenario: scenario.name, file: scenario.file, description: scenario.description,
                                       link: linkText, faultsSwitchedOff: options.faultsSwitchedOff)
        do {
            let (recording, linkName) = try record(linkText)
            result.link = linkName
            result.recording = recording
            result.checks = scenario.expect.map { HILEvaluator.judge($0, in: recording) }
            result.status = result.checks.allSatisfy(\.passed) ? .passed : .failed
        } catch let e as HILRunSkip {
            result.status = .skipped
            result.message = e.reason
        } catch {
            result.status = .error
            result.message = "\(error)"
        }
        result.seconds = Date().timeIntervalSince(started)
        return result
    }


    /// Opens the link (starting the emulated drives for `serial` and `ethercat-udp`), runs the
    /// timeline, and returns what was recorded and the link's description.
    static func record(_ s: HILScenario, link linkText: String, options: HILRunOptions) throws -> (HILRecording, String) {
        let robot: RobotDescription
        do { robot = try ConfigLoader.load(RobotDescription.self, from: s.resolvedRobotPath) } catch { throw HILRunError.link("robot: \(error.description)") }
        let axes = robot.axes
        let period = Nanoseconds.perSecond / Nanoseconds(s.setup.rate_hz)
        let dynamics: DriveDynamics = s.setup.drives == "emulated" ? .emulated(nil) : .ideal
        let start = startPosture(CatheterModel(robot))
        let address: LinkAddress
        switch linkText {
        case "serial": address = .serial(path: "", baud: LinkAddress.defaultBaud)
        case "ethercat-udp": address = .ethercatUDP(host: "", port: 0)
        default:
            do { address = try LinkAddress(parsing: linkText) } catch { throw HILRunError.link(error.description) }
        }
        func refuseMonitor(_ where_: String) throws {
            if s.hasMonitor {
                throw HILRunSkip(reason: "runs the safety monitor on the emulated DriveLink drives' safe-torque-off input, which \(where_) does not have (use --link serial)")
            }
        }
        func refuseInjections(_ where_: String) throws {
            try refuseMonitor(where_)
            if let f = s.injectedFaults.first { throw HILRunSkip(reason: "injects \(f.rawValue), which needs an emulated link; \(where_) is a real one") }
            if let e = s.expect.first(where: { $0.kind == .drive_unpowered || ($0.signal ?? "").hasPrefix("drive_") }) {
                throw HILRunSkip(reason: "'\(e.name)' judges the drive's own power stage, which only an emulated link reports; \(where_) is a real one")
            }
        }
        switch address {
        case .serial(let path, _) where path.isEmpty:
            let pty: PseudoTerminal.Pair
            do { pty = try PseudoTerminal.openPair() } catch { throw HILRunError.link(error.description) }
            let emulator = DriveLinkDriveEmulator(axes: axes, start: start, deviceFD: pty.deviceFD,
                                                  watchdogMicroseconds: UInt32(s.setup.watchdog_ms * 1000), dynamics: dynamics)
            let device = DriveLinkDeviceSide(emulator: emulator, emulatedDynamics: s.setup.drives == "emulated")
            for f in s.injectedFaults { if let r = device.refusal(f) { throw HILRunSkip(reason: r) } }
            emulator.fifoPriority = options.fifoPriority
            var monitor: HILMonitor?
            var monitorNote: String?
            if let limits = s.resolvedLimitsPath {
                let m = try HILMonitor()
                monitorNote = try m.start(limits: limits, priority: options.fifoPriority)
                guard m.waitListening(seconds: 5) else {
                    m.stop()
                    throw HILRunError.link("the safety monitor did not come up on \(limits): \(m.log.suffix(400))")
                }
                monitor = m
            }
            defer { monitor?.stop() }
            emulator.start()
            defer { emulator.stop() }
            let host = DriveLinkRobot(axes: axes, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path), cyclePeriod: period)
            let name = "serial (emulated \(s.setup.drives) drives, DriveLink through the C reference, on \(pty.path))"
            var rec = try execute(s, hardware: host, device: device, monitor: monitor.map { ($0, emulator) }, period: period, options: options) { stats($0.stats) }
            if let n = monitorNote { rec.notes.append(n) }
            return (rec, name)
        case .pty(let path):
            try refuseInjections(linkText)
            let fd: Int32
            do { fd = try PseudoTerminal.open(path: path) } catch { throw HILRunError.link(error.description) }
            let host = DriveLinkRobot(axes: axes, transport: DescriptorTransport(fd: fd, owns: true, name: path), cyclePeriod: period)
            return (try execute(s, hardware: host, device: nil, period: period, options: options) { stats($0.stats) }, linkText)
        case .serial(let path, let baud):
            try refuseInjections(linkText)
            let port: SerialPort
            do { port = try SerialPort(path: path, baud: baud) } catch { throw HILRunError.link(error.description) }
            let host = DriveLinkRobot(axes: axes, transport: DescriptorTransport(fd: port.descriptor, owns: false, name: path), owner: port, cyclePeriod: period)
            return (try execute(s, hardware: host, device: nil, period: period, options: options) { stats($0.stats) }, linkText)
        case .ethercatUDP(let host, let port):
            try refuseMonitor(host.isEmpty ? "ethercat-udp (emulated CiA 402 slaves)" : linkText)
            var device: EtherCATDeviceSide?
            var target = (host, port)
            if host.isEmpty {
                let segment = EtherCATSegment(axes: axes, start: start, dynamics: dynamics)
                segment.watchdog = Nanoseconds(s.setup.watchdog_ms * 1e6)
                let server: EtherCATUDPServer
                do { server = try EtherCATUDPServer(segment: segment) } catch { throw HILRunError.link(error.description) }
                let d = EtherCATDeviceSide(segment: segment, server: server, axes: axes.count)
                for f in s.injectedFaults { if let r = d.refusal(f) { throw HILRunSkip(reason: r) } }
                server.fifoPriority = options.fifoPriority
                server.start()
                device = d
                target = ("127.0.0.1", server.port)
            } else {
                try refuseInjections(linkText)
            }
            defer { device?.stop() }
            let transport: DescriptorTransport
            do { transport = try EtherCATMaster.udpTransport(host: target.0, port: target.1) } catch { throw HILRunError.link(error.description) }
            let hw = EtherCATRobot(axes: axes, master: EtherCATMaster(transport: transport))
            let name = device == nil ? linkText : "ethercat-udp (emulated CiA 402 slaves, \(s.setup.drives) drives, on 127.0.0.1:\(target.1))"
            return (try execute(s, hardware: hw, device: device, period: period, options: options) { stats($0.stats) }, name)
        case .ethercat(let interface):
            try refuseInjections(linkText)
            let master: EtherCATMaster
            do { master = try EtherCATMaster.raw(interface: interface) } catch { throw HILRunError.link(error.description) }
            return (try execute(s, hardware: EtherCATRobot(axes: axes, master: master), device: nil, period: period, options: options) { stats($0.stats) }, linkText)
        case .sim:
            try refuseMonitor(linkText)
            throw HILRunSkip(reason: "sim has no link to test: use serial (emulated DriveLink drives) or ethercat-udp (emulated EtherCAT slaves)")
        }
    }

    /// A quarter of the insertion travel, everything else at zero (as the demo starts).
    public static func startPosture(_ model: CatheterModel) -> JointVector {
        var q = JointVector(count: model.jointCount)
        q[0] = model.lowerLimit[0] + 0.25 * (model.upperLimit[0] - model.lowerLimit[0])
        return model.clampToLimits(q)
    }

    /// A DriveLink host's link counters by the names summaries and expectations use.
    public static func stats(_ s: DriveLinkStats) -> [String: Int] {
        ["frames_sent": s.framesSent, "states_received": s.statesReceived, "rejected": s.rejected, "stale": s.stale,
         "cycles_without_state": s.cyclesWithoutState, "drive_faults": s.faultsReported, "send_errors": s.sendErrors,
         "late_states": s.lateStates, "fault_resets": s.faultResets, "commands_lost": s.commandsLost]
    }

    /// An EtherCAT master's link counters by the names summaries and expectations use.
    public static func stats(_ s: EtherCATStats) -> [String: Int] {
        ["frames_sent": s.framesSent, "frames_received": s.framesReceived, "wkc_shortfalls": s.workingCounterShortfalls,
         "malformed": s.malformed, "late": s.late, "missing": s.missing]
    }

    /// Runs the cycle on a thread of its own and the steps on this one, polling the host's
    /// lifecycle and the device side between steps.
    static func execute<H: RobotHardware & LinkCounterSource & ~Copyable>(
        _ s: HILScenario, hardware: consuming H, device: (any HILDeviceSide)?, monitor: (HILMonitor, DriveLinkDriveEmulator)? = nil,
        period: Nanoseconds, options: HILRunOptions,
        hostCounters: (borrowing H) -> [String: Int]
    ) throws -> HILRecording {
        let jointCount = hardware.jointCount
        let faultsOff = options.faultsSwitchedOff
        let motionSteps = faultsOff ? s.steps.filter { !($0.action == .deadman_release || $0.overrun == true) } : s.steps
        let plan = HILPlan(steps: motionSteps)
        let log = HILLog(capacity: Int(s.setup.duration_s * Double(s.setup.rate_hz)) + 2 * s.setup.rate_hz, axes: jointCount)
        let liveCounters = LinkCounterCells()
        let runner = CycleRunner(hardware: CountedHardware(hardware, counters: liveCounters), controller: HILController(jointCount: jointCount, plan: plan, log: log),
                                 clock: MonotonicCycleClock(), period: period,
                                 faultPolicy: CycleFaultPolicy(maxConsecutiveReadFaults: s.setup.link_loss_cycles))
        do { try runner.configure() } catch { throw HILRunError.link(error.description) }

        var rec = HILRecording(axes: jointCount)
        rec.hasDeviceSide = device != nil
        rec.hasMonitor = monitor != nil
        let done = DispatchSemaphore(value: 0)
        let realtime = RealtimeOptions(fifoPriority: options.fifoPriority)
        let cycleRefusal = HILRealtimeNote()
        let thread = Thread {
            cycleRefusal.warnings = realtime.applyToCurrentThread()
            _ = try? runner.run()
            done.signal()
        }
        thread.name = "lumen-hil-cycle"
        thread.stackSize = 1 << 20
        // The timeline judges reaction times by polling: it must not be starved either, but it
        // yields to the cycle and the drives.
        let timeline = HILThreadPriority.raise(options.fifoPriority.map { max(1, $0 - 10) })
        defer { timeline.restore() }
        var origin = MonotonicClock.now()
        let cycle = runner
        var bridge: HILSafetyBridge?
        if let pair = monitor {
            let m = pair.0
            let b = HILSafetyBridge(emulator: pair.1, monitor: m, log: log, axes: jointCount, watchdog: Nanoseconds(s.setup.monitor_watchdog_ms * 1e6),
                                    origin: origin, linkErrors: liveCounters) { cycle.lifecycle == .active }
            try b.start(priority: options.fifoPriority)
            bridge = b
            // The scenario's time starts once the monitor permits power (an operator's
            // acknowledge, relayed by the channel): bounded, and a monitor that never does is
            // an error that says so.
            let end = MonotonicClock.now() + 5_000_000_000
            while b.permitBits.load(ordering: .acquiring) & 1 == 0, MonotonicClock.now() < end { usleep(2000) }
            if b.permitBits.load(ordering: .acquiring) & 1 == 0 {
                b.stop()
                runner.requestStop()
                throw HILRunError.link("the safety monitor gave no permit within 5 s: \(m.log.suffix(600))")
            }
            origin = MonotonicClock.now()
            b.origin = origin
        }
        defer { bridge?.stop() }
        thread.start()
        func now() -> Double { Double(MonotonicClock.now() - origin) * 1e-9 }

        var next = 0
        var cycleRunning = true
        var wasActive = false
        var operatorStop: (time: Double, category: Int)?
        let poll = Nanoseconds(options.pollInterval * 1e9)
        while true {
            let t = now()
            while let step = rec.takeDueStep(s.steps, next: &next, at: t, faultsOff: faultsOff, now: now) {
                switch step.action {
                case .enable:
                    do { try runner.activate() } catch { rec.notes.append("enable at \(fmt(t)) s refused: \(error.description)") }
                case .disable, .estop:
                    if runner.lifecycle == .active {
                        do { try runner.deactivate() } catch { rec.notes.append("\(step.action.rawValue): \(error.description)") }
                        // Both remove power at once after a hold: a category 0 stop.
                        operatorStop = (now(), 0)
                    }
                case .silence_host:
                    runner.requestStop()
                    done.wait()
                    cycleRunning = false
                case .inject: device?.inject(step)
                case .clear: device?.clear(step.fault)
                case .monitor_kill: monitor?.0.kill()
                case .monitor_hang: monitor?.0.hang()
                case .move, .deadman_release, .deadman_press: break // carried out by the controller's plan
                }
            }
            let active = runner.lifecycle == .active
            rec.lifecycleTimes.append(t)
            rec.active.append(active ? 1 : 0)
            if wasActive, !active, rec.stopTime == nil {
                rec.stopTime = operatorStop?.time ?? t
            }
            wasActive = active
            rec.sample(device: device, counters: liveCounters.snapshot(), at: t)
            if let b = bridge {
                rec.monitorTimes.append(t)
                rec.monitorPermit.append(b.permitBits.load(ordering: .acquiring) & 1 == 0 ? 0 : 1)
            }
            if t >= s.setup.duration_s { break }
            _ = MonotonicClock.sleep(until: MonotonicClock.now() + poll)
        }
        if cycleRunning {
            runner.requestStop()
            done.wait()
        }
        let ending: RunEnding
        do { ending = try runner.endRun() } catch { throw HILRunError.link("ending the run: \(error.description)") }
        rec.ending = ending.description
        let report = runner.report()
        rec.noteStop(report.counters.stop, operatorStop: operatorStop.map { ($0.category, "an operator's stop") })
        let linkCounters = runner.withHardware { hostCounters($0.inner) }
        runner.finalize()
        if log.dropped > 0 { rec.notes.append("\(log.dropped) cycles not recorded (the log was full)") }
        rec.times = log.times
        for i in 0..<jointCount {
            rec.reference[i] = log.reference(axis: i)
            rec.position[i] = log.position(axis: i)
        }
        rec.finish(link: linkCounters, cycle: report.counters, device: device, duration: now())
        rec.runtime = "the scenario's own cycle (CycleRunner with the scenario controller, as `lumen demo --scripted` runs it), "
            + "not the live runtime: its counters published every cycle and sampled every \(Int(options.pollInterval * 1000)) ms"
        if let m = monitor?.0 {
            bridge?.stop()
            m.stop()
            let o = Double(origin) * 1e-9
            rec.monitorFaults = HILMonitor.faults(inLog: m.log).map { HILMonitorFault(time: $0.monotonic - o, check: $0.check, category: $0.category, line: $0.line) }
            // What it latched before the run's time began (before the first sample, the first
            // heartbeat, the deadman) is what the first acknowledge cleared.
            let atStart = rec.monitorFaults.filter { $0.time < 0 }
            if !atStart.isEmpty { rec.notes.append("the monitor latched \(atStart.map(\.check).joined(separator: ", ")) at start-up, cleared by the first acknowledge") }
            for f in rec.monitorFaults where f.time >= 0 { rec.notes.append(String(format: "the monitor latched at %.3f s: ", f.time) + f.line) }
            if bridge?.fifoRefused.load(ordering: .acquiring) == true { rec.notes.append("the safety channel's thread stays on SCHED_OTHER: SCHED_FIFO not permitted") }
            rec.notes.append("safety monitor beside the cycle (not the live runtime): lumen-safety on \(s.setup.limits ?? ""), its permits on the emulated drives' safe-torque-off input, permit watchdog \(Int(s.setup.monitor_watchdog_ms)) ms")
        }
        rec.realtime = realtimeSummary(options.fifoPriority, cycle: cycleRefusal.warnings, timeline: timeline.refusal,
                                       device: device?.realtimeRefusal ?? 0)
        rec.notes.append(rec.realtime)
        return rec
    }

    /// In words: which threads ran real-time, and what was refused.
    static func realtimeSummary(_ priority: Int32?, cycle: [String], timeline: String?, device: Int32) -> String {
        guard let p = priority else {
            return "not real-time: every thread on SCHED_OTHER (asked for); timings are those of a host that is not real-time"
        }
        var refused = cycle.map { "the cycle: \($0)" }
        if let t = timeline { refused.append("the timeline: \(t)") }
        if device != 0 { refused.append("the emulated drives: SCHED_FIFO \(p) not permitted (\(String(cString: strerror(device))))") }
        if refused.isEmpty { return "real-time: the cycle and the emulated drives on SCHED_FIFO \(p), the timeline on \(max(1, p - 10))" }
        return "not real-time (" + refused.joined(separator: "; ") + "): timings are those of a host that is not real-time, "
            + "and on a loaded machine the tolerances of the scenario may not hold"
    }

    public static func fmt(_ x: Double) -> String { String(format: "%.3f", x) }
}

/// What the cycle thread reports of its real-time set-up: written by it before its first cycle,
/// read after it ended.
final class HILRealtimeNote: @unchecked Sendable {
    var warnings: [String] = []
}

/// The calling thread raised to SCHED_FIFO for a while, and put back as it was.
struct HILThreadPriority {
    var policy: Int32 = SCHED_OTHER
    var param = sched_param()
    var raised = false
    /// Why it was not raised (nil: raised, or not asked).
    var refusal: String?

    static func raise(_ priority: Int32?) -> HILThreadPriority {
        var t = HILThreadPriority()
        guard let priority else { return t }
        pthread_getschedparam(pthread_self(), &t.policy, &t.param)
        let warnings = RealtimeOptions(fifoPriority: priority).applyToCurrentThread()
        t.raised = warnings.isEmpty
        t.refusal = warnings.first
        return t
    }

    func restore() {
        guard raised else { return }
        var p = param
        pthread_setschedparam(pthread_self(), policy, &p)
    }
}

/// One fault the safety monitor latched during a run.
public struct HILMonitorFault: Sendable, Equatable {
    /// s from the start of the run.
    public var time: Double
    /// The monitor's check (`velocity`, `heartbeat`…).
    public var check: String
    public var category: Int
    /// The monitor's log line.
    public var line: String

    public init(time: Double, check: String, category: Int, line: String) {
        self.time = time
        self.check = check
        self.category = category
        self.line = line
    }
}
