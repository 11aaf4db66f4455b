import Control
import Core
import Drivers
import Foundation
import Safety

/// A hardware-in-the-loop scenario, as a test engineer writes it in `hil/scenarios/*.yaml`: the
/// set-up, timed steps, and expectations on the signals the run records. Tolerances live here,
/// never in code. Loaded through `ConfigLoader`, so unknown fields are refused and every problem
/// names the file and the field path (`steps[2].axis`).
public struct HILScenario: ValidatedConfig, Sendable, Equatable {
    public var name: String
    public var description: String
    public var setup: Setup
    public var steps: [Step]
    public var expect: [Expectation]
    /// The file it came from (set by `load`; relative robot paths resolve against its folder).
    public var file: String = ""

    public struct Setup: Codable, Sendable, Equatable {
        /// Robot file (YAML or JSON), relative to the scenario's folder or the working directory.
        public var robot: String
        /// Where the drives are unless the runner is given a link: `serial` (emulated drives
        /// speaking DriveLink through the C reference on a pty), `ethercat-udp` (emulated CiA 402
        /// slaves on a loopback UDP port), or a real address (`serial:/dev/ttyUSB0@1000000`,
        /// `pty:PATH`, `ethercat-udp:HOST:PORT`, `ethercat:IFACE`).
        public var link: String
        /// `ideal` or `emulated` (motor, gearbox, encoder, the drive's own loops) for emulated
        /// links; ignored on real ones.
        public var drives: String
        /// Cycle rate (Hz, 100…4000).
        public var rate_hz: Int
        /// How long the run lasts (s, 0.2…120).
        public var duration_s: Double
        /// The emulated drive's own watchdog (ms, 5…1000; default 400: a workstation under load can stall a thread for 150 ms). A real drive has its own.
        public var watchdog_ms: Double
        /// Cycles in a row without a fresh state after which the host stops on a lost link
        /// (3…1000; default 200). A workstation that is not real-time needs room here.
        public var link_loss_cycles: Int
        /// A safety limits file (relative to the scenario's folder): when given, the safety
        /// monitor (`lumen-safety`) runs beside the cycle on it, its permits on the emulated
        /// drives' safe-torque-off input. Emulated DriveLink links only.
        public var limits: String?
        /// The drives' permit watchdog (ms, 5…1000; default 250, the live runtime's): no permit
        /// with power within it, and the drives' torque goes off.
        public var monitor_watchdog_ms: Double

        enum CodingKeys: String, CodingKey, CaseIterable { case robot, link, drives, rate_hz, duration_s, watchdog_ms, link_loss_cycles, limits, monitor_watchdog_ms }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            robot = try c.decode(String.self, forKey: .robot)
            link = try c.decodeIfPresent(String.self, forKey: .link) ?? "serial"
            drives = try c.decodeIfPresent(String.self, forKey: .drives) ?? "ideal"
            rate_hz = try c.decodeIfPresent(Int.self, forKey: .rate_hz) ?? 1000
            duration_s = try c.decode(Double.self, forKey: .duration_s)
            watchdog_ms = try c.decodeIfPresent(Double.self, forKey: .watchdog_ms) ?? 400
            link_loss_cycles = try c.decodeIfPresent(Int.self, forKey: .link_loss_cycles) ?? 200
            limits = try c.decodeIfPresent(String.self, forKey: .limits)
            monitor_watchdog_ms = try c.decodeIfPresent(Double.self, forKey: .monitor_watchdog_ms) ?? 250
        }
    }

    /// What a step does.
    public enum Action: String, Codable, Sendable, CaseIterable {
        /// Power the drives and follow the reference (inactive → active).
        case enable
        /// An operator's stop: hold, power off (active → inactive).
        case disable
        /// Move one axis to `to` or by `by` over `duration` s along `profile`.
        case move
        /// The deadman let go: the reference freezes where it is, power stays (a category 2 stop).
        case deadman_release
        /// The deadman held again: moves after this step run.
        case deadman_press
        /// The emergency stop: power off at once, hold (a category 0 stop).
        case estop
        /// The host goes silent: the cycle stops sending without switching anything off, as a
        /// crashed or frozen host would; the drive's own watchdog must remove power.
        case silence_host
        /// Inject a fault on an emulated link or drive.
        case inject
        /// Remove one injected fault (or all, with no `fault`).
        case clear
        /// The safety monitor killed (SIGKILL), as a crash would: its permits stop.
        case monitor_kill
        /// The safety monitor hung (SIGSTOP): its process and socket stay, nothing answers.
        case monitor_hang
    }

    /// A fault the emulators can inject.
    public enum Fault: String, Codable, Sendable, CaseIterable {
        /// Frames lost on the line (`rate` per frame, both directions).
        case drop
        /// Bit errors in the drive's replies (`rate` per bit): a CRC storm the host sees.
        case corrupt
        /// Every reply `delay_ms` late.
        case delay
        /// Replies sent twice (`rate` per reply).
        case duplicate
        /// Replies swapped with the next (`rate` per reply).
        case reorder
        /// The drive stops answering for good, as if its power or cable were cut.
        case dead_drive
        /// Axis `axis` jammed: the load does not move whatever the motor does.
        case blocked_axis
        /// Axis `axis`'s encoder stops counting.
        case encoder_freeze
        /// Axis `axis`'s current exceeds its trip level: the drive's own protection latches fault 2.
        case overcurrent
        /// The drive's insertion force sensor reads `force_n` newtons (a catheter pushed against
        /// a wall): what the monitor's force limit must catch.
        case force

        /// The faults on the line rather than in a drive.
        public var isLinkImpairment: Bool { ([.drop, .corrupt, .delay, .duplicate, .reorder] as [Fault]).contains(self) }
        /// The faults that need the emulated drive dynamics (`drives: emulated`).
        public var needsEmulatedDynamics: Bool { ([.blocked_axis, .encoder_freeze] as [Fault]).contains(self) }
    }

    public enum Profile: String, Codable, Sendable, CaseIterable { case linear, smooth }

    public struct Step: Codable, Sendable, Equatable {
        /// When it runs (s from the start of the run).
        public var at: Double
        public var action: Action
        /// A name expectations refer to (`after: LABEL`).
        public var label: String?
        public var axis: Int?
        public var to: Double?
        public var by: Double?
        public var duration: Double?
        public var profile: Profile?
        public var fault: Fault?
        public var rate: Double?
        public var delay_ms: Double?
        public var force_n: Double?
        /// A move that exceeds a safety limit on purpose: a fault step (switched off with the faults).
        public var overrun: Bool?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case at, action = "do", label, axis, to, by, duration, profile, fault, rate, delay_ms, force_n, overrun
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            at = try c.decode(Double.self, forKey: .at)
            action = try choice(c, .action)
            label = try c.decodeIfPresent(String.self, forKey: .label)
            axis = try c.decodeIfPresent(Int.self, forKey: .axis)
            to = try c.decodeIfPresent(Double.self, forKey: .to)
            by = try c.decodeIfPresent(Double.self, forKey: .by)
            duration = try c.decodeIfPresent(Double.self, forKey: .duration)
            profile = try c.contains(.profile) ? choice(c, .profile) as Profile : nil
            fault = try c.contains(.fault) ? choice(c, .fault) as Fault : nil
            rate = try c.decodeIfPresent(Double.self, forKey: .rate)
            delay_ms = try c.decodeIfPresent(Double.self, forKey: .delay_ms)
            force_n = try c.decodeIfPresent(Double.self, forKey: .force_n)
            overrun = try c.decodeIfPresent(Bool.self, forKey: .overrun)
        }

        /// Whether it switches a fault on: an injection, a silent host, an emergency stop, a
        /// released deadman, the monitor killed or hung, or a move past a limit on purpose.
        public var isFault: Bool {
            ([.inject, .silence_host, .estop, .deadman_release, .monitor_kill, .monitor_hang] as [Action]).contains(action) || overrun == true
        }

        /// The fields this step sets, besides `at`, `do` and `label`.
        var givenFields: [CodingKeys] {
            var out: [CodingKeys] = []
            if axis != nil { out.append(.axis) }
            if to != nil { out.append(.to) }
            if by != nil { out.append(.by) }
            if duration != nil { out.append(.duration) }
            if profile != nil { out.append(.profile) }
            if fault != nil { out.append(.fault) }
            if rate != nil { out.append(.rate) }
            if delay_ms != nil { out.append(.delay_ms) }
            if force_n != nil { out.append(.force_n) }
            if overrun != nil { out.append(.overrun) }
            return out
        }
    }

    public enum ExpectationKind: String, Codable, Sendable, CaseIterable {
        /// `signal` stays within [min, max] from `from` to `to`.
        case range
        /// `signal` comes within `tolerance` of `value` by time `by` and stays there until `to`.
        case settle
        /// The host stops motion by itself (`reason`, stop `category`) within `within` s after step `after`.
        case stop
        /// The emulated drive's power stage goes off (`cause: watchdog`: by its own watchdog)
        /// within `within` s after step `after`.
        case drive_unpowered
        /// A counter's value at the end of the run is within [min, max]; with `from` and/or `to`,
        /// what it counted between those times (from the samples taken while the run went on).
        case counter
        /// `signal` goes outside [min, max] within `within` s after step `after`: a fault detected.
        case leaves
        /// The safety monitor latches `check` (or any, without) with stop `category` within
        /// `within` s after step `after`.
        case monitor_stop
    }

    /// Why the host stopped: a drive fault, a lost link, an operator's stop (disable, estop), or any.
    /// Why the host stopped. `monitor`: its stop follows the safety monitor's (a stop it sent, or
    /// its permits running out), as the live runtime's does. `power_lost`, expected only: the
    /// drives lost power the host did not remove — a drive fault of a power stage gone off (a
    /// host that asked for power regardless), or a stop following the monitor (one that asks
    /// only for the power the monitor permits).
    public enum StopReason: String, Codable, Sendable, CaseIterable { case drive_fault, link_lost, `operator`, monitor, power_lost, any }
    public enum PowerCause: String, Codable, Sendable, CaseIterable { case watchdog, any }

    public struct Expectation: Codable, Sendable, Equatable {
        public var name: String
        public var kind: ExpectationKind
        public var signal: String?
        /// The axis of a per-axis signal (`signal: following_error, axis: 0`).
        public var axis: Int?
        public var min: Double?
        public var max: Double?
        public var from: Double?
        public var to: Double?
        public var value: Double?
        public var tolerance: Double?
        public var by: Double?
        public var after: String?
        public var within: Double?
        public var reason: StopReason?
        public var category: Int?
        public var cause: PowerCause?
        public var counter: String?
        /// The monitor's check (`position`, `velocity`, `force`, `heartbeat`…) a monitor_stop expects.
        public var check: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, kind, signal, axis, min, max, from, to, value, tolerance, by, after, within, reason, category, cause, counter, check
        }
        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            kind = try choice(c, .kind)
            signal = try c.decodeIfPresent(String.self, forKey: .signal)
            axis = try c.decodeIfPresent(Int.self, forKey: .axis)
            min = try c.decodeIfPresent(Double.self, forKey: .min)
            max = try c.decodeIfPresent(Double.self, forKey: .max)
            from = try c.decodeIfPresent(Double.self, forKey: .from)
            to = try c.decodeIfPresent(Double.self, forKey: .to)
            value = try c.decodeIfPresent(Double.self, forKey: .value)
            tolerance = try c.decodeIfPresent(Double.self, forKey: .tolerance)
            by = try c.decodeIfPresent(Double.self, forKey: .by)
            after = try c.decodeIfPresent(String.self, forKey: .after)
            within = try c.decodeIfPresent(Double.self, forKey: .within)
            reason = try c.contains(.reason) ? choice(c, .reason) as StopReason : nil
            category = try c.decodeIfPresent(Int.self, forKey: .category)
            cause = try c.contains(.cause) ? choice(c, .cause) as PowerCause : nil
            counter = try c.decodeIfPresent(String.self, forKey: .counter)
            check = try c.decodeIfPresent(String.self, forKey: .check)
        }

        /// The signal as the recording names it: `following_error[0]`, `active`.
        public var signalName: String? { signal.map { s in axis.map { "\(s)[\($0)]" } ?? s } }

        var givenFields: [CodingKeys] {
            var out: [CodingKeys] = []
            if signal != nil { out.append(.signal) }
            if axis != nil { out.append(.axis) }
            if min != nil { out.append(.min) }
            if max != nil { out.append(.max) }
            if from != nil { out.append(.from) }
            if to != nil { out.append(.to) }
            if value != nil { out.append(.value) }
            if tolerance != nil { out.append(.tolerance) }
            if by != nil { out.append(.by) }
            if after != nil { out.append(.after) }
            if within != nil { out.append(.within) }
            if reason != nil { out.append(.reason) }
            if category != nil { out.append(.category) }
            if cause != nil { out.append(.cause) }
            if counter != nil { out.append(.counter) }
            if check != nil { out.append(.check) }
            return out
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, description, setup, steps, expect }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        setup = try c.decode(Setup.self, forKey: .setup)
        steps = try c.decode([Step].self, forKey: .steps)
        expect = try c.decode([Expectation].self, forKey: .expect)
    }

    /// The faults the scenario injects (empty: a scenario of the healthy system).
    public var injectedFaults: [Fault] {
        steps.compactMap { $0.action == .inject ? $0.fault : nil }
    }

    /// Whether a step switches a fault on: an injection, a silent host, an emergency stop or a
    /// released deadman. A scenario with one is a fault scenario: it must fail with them off.
    public var hasFaultSteps: Bool { steps.contains(where: \.isFault) }

    /// Whether the safety monitor runs beside the cycle.
    public var hasMonitor: Bool { setup.limits != nil }
}

/// A word from a fixed set, refused with the set named (not "cannot initialize from…").
private func choice<T: RawRepresentable & CaseIterable, K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> T where T.RawValue == String {
    let word = try c.decode(String.self, forKey: key)
    guard let value = T(rawValue: word) else {
        throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [key],
                                                debugDescription: "unknown value '\(word)'; one of: \(T.allCases.map(\.rawValue).joined(separator: ", "))"))
    }
    return value
}

// MARK: Validation

extension HILScenario {
    /// The most steps and expectations a scenario may have.
    public static let maxSteps = 200
    public static let maxExpectations = 100

    /// Signals the run records, as expectations name them (`position[0]`): the per-axis ones
    /// take an axis index.
    /// `travel[i]` is the measured position less its first sample: for real benches, whose
    /// axes start wherever they were left.
    public static let axisSignals = ["position", "target", "following_error", "travel"]
    public static let scalarSignals = ["active", "drive_powered", "drive_watchdog_trips", "monitor_permit"]

    /// Counters an expectation may read; which of them a link reports depends on the link.
    public static let counters = [
        // The host's DriveLink link.
        "frames_sent", "states_received", "rejected", "stale", "cycles_without_state", "drive_faults", "late_states",
        "send_errors", "fault_resets", "commands_lost",
        // The host's EtherCAT link.
        "frames_received", "wkc_shortfalls", "malformed", "late", "missing",
        // The cycle.
        "read_faults", "write_faults", "fault_stops", "drive_fault_stops", "invalid_commands",
        // The emulated DriveLink drive (device side).
        "device_frames_accepted", "device_frames_rejected", "device_frames_stale", "device_watchdog_trips",
        "device_dropped_to_host", "device_corrupted_to_host", "device_duplicated_to_host", "device_reordered_to_host",
    ]

    /// A counter as a signal over time: `counter.rejected`.
    public static let counterSignalPrefix = "counter."

    /// `counter.rejected` → `rejected`; nil when `text` names no counter.
    public static func counterSignal(_ text: String) -> String? {
        guard text.hasPrefix(counterSignalPrefix) else { return nil }
        let name = String(text.dropFirst(counterSignalPrefix.count))
        return counters.contains(name) ? name : nil
    }

    /// `position[1]` → ("position", 1); `active` → ("active", nil); `counter.rejected` →
    /// ("counter.rejected", nil); nil when not a signal.
    public static func parseSignal(_ text: String) -> (name: String, axis: Int?)? {
        if scalarSignals.contains(text) || counterSignal(text) != nil { return (text, nil) }
        guard let open = text.firstIndex(of: "["), text.hasSuffix("]") else { return nil }
        let name = String(text[..<open])
        let inner = text[text.index(after: open)..<text.index(before: text.endIndex)]
        guard axisSignals.contains(name), inner.count <= 2, let i = Int(inner) else { return nil }
        return (name, i)
    }

    public func validate(into v: inout ConfigValidator) {
        v.checkName(name, "name")
        v.check(description.count <= 2000, "description", "at most 2000 characters")
        v.check(setup.robot.count <= 1024 && !setup.robot.isEmpty, "setup.robot", "a file path (1…1024 characters)")
        v.check(["ideal", "emulated"].contains(setup.drives), "setup.drives", "ideal or emulated, got '\(setup.drives)'")
        v.check(Double(setup.rate_hz), in: 100...4000, "setup.rate_hz", "Hz")
        v.check(setup.duration_s, in: 0.2...120, "setup.duration_s", "s")
        v.check(setup.watchdog_ms, in: 5...1000, "setup.watchdog_ms", "ms")
        v.check(Double(setup.link_loss_cycles), in: 3...1000, "setup.link_loss_cycles", "cycles")
        v.check(setup.monitor_watchdog_ms, in: 5...1000, "setup.monitor_watchdog_ms", "ms")
        if let l = setup.limits { v.check(l.count <= 1024 && !l.isEmpty, "setup.limits", "a file path (1…1024 characters)") }
        if !["serial", "ethercat-udp"].contains(setup.link) {
            do { _ = try LinkAddress(parsing: setup.link) } catch { v.fail("setup.link", error.description) }
        }
        v.check(steps.count <= Self.maxSteps, "steps", "at most \(Self.maxSteps) steps")
        v.check(expect.count <= Self.maxExpectations, "expect", "at most \(Self.maxExpectations) expectations")
        v.check(!expect.isEmpty, "expect", "at least one expectation: a scenario that checks nothing cannot fail")

        var labels = Set<String>()
        var last = -Double.infinity
        for (i, s) in steps.prefix(Self.maxSteps).enumerated() {
            let f = "steps[\(i)]"
            v.check(s.at, in: 0...setup.duration_s, "\(f).at", "s (within the run's duration_s)")
            v.check(s.at >= last, "\(f).at", "steps are in time order: \(s.at) s comes before the step above it (\(last) s)")
            last = Swift.max(last, s.at)
            if let l = s.label {
                v.checkName(l, "\(f).label")
                v.check(labels.insert(l).inserted, "\(f).label", "'\(l)' labels another step already")
            }
            let allowed: Set<Step.CodingKeys>
            switch s.action {
            case .enable, .disable, .deadman_release, .deadman_press, .estop, .silence_host: allowed = []
            case .monitor_kill, .monitor_hang:
                allowed = []
                if setup.limits == nil { v.fail("\(f).do", "\(s.action.rawValue) needs the monitor: give setup.limits (a safety limits file)") }
            case .move:
                allowed = [.axis, .to, .by, .duration, .profile, .overrun]
                v.check((s.to == nil) != (s.by == nil), f, "a move gives exactly one of to (absolute) or by (relative)")
                if s.axis == nil { v.fail("\(f).axis", "missing: the axis to move") }
                if let d = s.duration { v.check(d, in: 0.01...60, "\(f).duration", "s") } else { v.fail("\(f).duration", "missing: how long the move takes (s)") }
                if let x = s.to ?? s.by { v.check(x.isFinite && abs(x) <= 1000, s.to != nil ? "\(f).to" : "\(f).by", "a finite number within ±1000") }
            case .inject:
                allowed = [.fault, .axis, .rate, .delay_ms, .force_n]
                guard let fault = s.fault else { v.fail("\(f).fault", "missing: one of \(Fault.allCases.map(\.rawValue).joined(separator: ", "))"); break }
                switch fault {
                case .drop, .corrupt, .duplicate, .reorder:
                    if let r = s.rate { v.check(r, in: 0...1, "\(f).rate", "(a probability)") } else { v.fail("\(f).rate", "missing: the probability per \(fault == .corrupt ? "bit" : "frame")") }
                    v.check(s.axis == nil && s.delay_ms == nil, f, "\(fault.rawValue) takes rate only")
                case .delay:
                    if let d = s.delay_ms { v.check(d, in: 0...5000, "\(f).delay_ms", "ms") } else { v.fail("\(f).delay_ms", "missing: the extra latency (ms)") }
                    v.check(s.axis == nil && s.rate == nil, f, "delay takes delay_ms only")
                case .dead_drive:
                    v.check(s.axis == nil && s.rate == nil && s.delay_ms == nil, f, "dead_drive takes no parameters")
                case .force:
                    if let n = s.force_n { v.check(n, in: -100...100, "\(f).force_n", "N") } else { v.fail("\(f).force_n", "missing: the force the sensor reads (N)") }
                    v.check(s.axis == nil && s.rate == nil && s.delay_ms == nil, f, "force takes force_n only")
                case .blocked_axis, .encoder_freeze, .overcurrent:
                    if s.axis == nil { v.fail("\(f).axis", "missing: the axis the fault is on") }
                    v.check(s.rate == nil && s.delay_ms == nil && s.force_n == nil, f, "\(fault.rawValue) takes axis only")
                    if fault.needsEmulatedDynamics, setup.drives != "emulated" {
                        v.fail("\(f).fault", "\(fault.rawValue) needs setup.drives: emulated (the motor, gearbox and encoder model)")
                    }
                }
            case .clear:
                allowed = [.fault]
            }
            for given in s.givenFields where !allowed.contains(given) {
                v.fail("\(f).\(given.rawValue)", "not a field of a '\(s.action.rawValue)' step")
            }
            if let a = s.axis { v.check(a >= 0 && a < JointVector.capacity, "\(f).axis", "an axis index 0…\(JointVector.capacity - 1)") }
        }

        var names = Set<String>()
        for (i, e) in expect.prefix(Self.maxExpectations).enumerated() {
            let f = "expect[\(i)]"
            v.checkName(e.name, "\(f).name")
            v.check(names.insert(e.name).inserted, "\(f).name", "'\(e.name)' names another expectation already")
            let allowed: Set<Expectation.CodingKeys>
            switch e.kind {
            case .range:
                allowed = [.name, .kind, .signal, .axis, .min, .max, .from, .to]
                requireSignal(e, f, &v)
                v.check(e.min != nil || e.max != nil, f, "a range gives min, max or both")
                if let lo = e.min, let hi = e.max { v.check(lo <= hi, "\(f).min", "must not exceed max (\(hi))") }
                checkWindow(e, f, &v)
            case .settle:
                allowed = [.name, .kind, .signal, .axis, .value, .tolerance, .by, .to]
                requireSignal(e, f, &v)
                if e.value == nil { v.fail("\(f).value", "missing: the value the signal settles to") }
                if let t = e.tolerance { v.check(t.isFinite && t > 0, "\(f).tolerance", "a finite number > 0") } else { v.fail("\(f).tolerance", "missing") }
                if let b = e.by { v.check(b, in: 0...setup.duration_s, "\(f).by", "s (within the run)") } else { v.fail("\(f).by", "missing: the time by which it has settled (s)") }
                checkWindow(e, f, &v)
            case .stop:
                allowed = [.name, .kind, .reason, .category, .after, .within]
                requireAfter(e, f, labels, &v)
                if e.reason == nil { v.fail("\(f).reason", "missing: drive_fault, link_lost, operator, monitor, power_lost or any") }
                if let c = e.category { v.check(c >= 0 && c <= 2, "\(f).category", "a stop category 0, 1 or 2 (IEC 60204-1)") }
            case .drive_unpowered:
                allowed = [.name, .kind, .cause, .after, .within]
                requireAfter(e, f, labels, &v)
            case .leaves:
                allowed = [.name, .kind, .signal, .axis, .min, .max, .after, .within]
                requireSignal(e, f, &v)
                requireAfter(e, f, labels, &v)
                v.check(e.min != nil || e.max != nil, f, "leaves gives min, max or both: the band the signal must leave")
                if let lo = e.min, let hi = e.max { v.check(lo <= hi, "\(f).min", "must not exceed max (\(hi))") }
            case .monitor_stop:
                allowed = [.name, .kind, .check, .category, .after, .within]
                requireAfter(e, f, labels, &v)
                if setup.limits == nil { v.fail("\(f).kind", "monitor_stop needs the monitor: give setup.limits (a safety limits file)") }
                let known = SafetyCheck.allCases.map(\.key)
                if let c = e.check { v.check(known.contains(c), "\(f).check", "unknown check '\(c)'; known: \(known.joined(separator: ", "))") }
                if let c = e.category { v.check(c >= 0 && c <= 2, "\(f).category", "a stop category 0, 1 or 2 (IEC 60204-1)") }
            case .counter:
                allowed = [.name, .kind, .counter, .min, .max, .from, .to]
                if let c = e.counter {
                    v.check(Self.counters.contains(c), "\(f).counter", "unknown counter '\(c)'; known: \(Self.counters.joined(separator: ", "))")
                } else {
                    v.fail("\(f).counter", "missing")
                }
                v.check(e.min != nil || e.max != nil, f, "a counter check gives min, max or both")
                if let lo = e.min, let hi = e.max { v.check(lo <= hi, "\(f).min", "must not exceed max (\(hi))") }
                checkWindow(e, f, &v)
            }
            for given in e.givenFields where !allowed.contains(given) {
                v.fail("\(f).\(given.rawValue)", "not a field of a '\(e.kind.rawValue)' expectation")
            }
        }
    }

    private func requireSignal(_ e: Expectation, _ f: String, _ v: inout ConfigValidator) {
        guard let s = e.signal else { v.fail("\(f).signal", "missing"); return }
        if Self.axisSignals.contains(s) {
            if let a = e.axis {
                v.check(a >= 0 && a < JointVector.capacity, "\(f).axis", "an axis index 0…\(JointVector.capacity - 1)")
            } else {
                v.fail("\(f).axis", "missing: \(s) is a per-axis signal")
            }
        } else if Self.scalarSignals.contains(s) || Self.counterSignal(s) != nil {
            v.check(e.axis == nil, "\(f).axis", "\(s) is not a per-axis signal")
        } else {
            v.fail("\(f).signal", "unknown signal '\(s)'; known: \((Self.axisSignals.map { "\($0) (with axis)" } + Self.scalarSignals + ["\(Self.counterSignalPrefix)COUNTER"]).joined(separator: ", "))")
        }
    }

    private func checkWindow(_ e: Expectation, _ f: String, _ v: inout ConfigValidator) {
        if let a = e.from { v.check(a, in: 0...setup.duration_s, "\(f).from", "s (within the run)") }
        if let b = e.to { v.check(b, in: 0...setup.duration_s, "\(f).to", "s (within the run)") }
        if let a = e.from ?? e.by, let b = e.to { v.check(a <= b, "\(f).to", "must not come before \(e.from != nil ? "from" : "by") (\(a) s)") }
    }

    private func requireAfter(_ e: Expectation, _ f: String, _ labels: Set<String>, _ v: inout ConfigValidator) {
        if let a = e.after {
            v.check(labels.contains(a), "\(f).after", "no step is labelled '\(a)'")
        } else {
            v.fail("\(f).after", "missing: the label of the step the time counts from")
        }
        if let w = e.within { v.check(w, in: 0.001...60, "\(f).within", "s") } else { v.fail("\(f).within", "missing: the time allowed (s)") }
    }
}

// MARK: Loading

/// Why a scenario could not be loaded: the file and every problem, by field path.
public struct HILLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    public var underlying: ConfigError
    public var description: String { underlying.description }
}

extension HILScenario {
    /// Reads and validates a scenario file, then checks what only the robot can tell (axis
    /// indices within its joints).
    public static func load(_ path: String) throws(HILLoadError) -> HILScenario {
        var s: HILScenario
        do { s = try ConfigLoader.load(HILScenario.self, from: path) } catch { throw HILLoadError(underlying: error) }
        s.file = path
        let robotPath = s.resolvedRobotPath
        let robot: RobotDescription
        do { robot = try ConfigLoader.load(RobotDescription.self, from: robotPath) } catch {
            throw HILLoadError(underlying: .invalid(file: path, problems: [ConfigProblem(field: "setup.robot", message: "cannot load \(robotPath): \(error.description)")]))
        }
        var problems: [ConfigProblem] = []
        let joints = robot.axes.count
        for (i, step) in s.steps.enumerated() {
            if let a = step.axis, a >= joints {
                problems.append(ConfigProblem(field: "steps[\(i)].axis", message: "axis \(a), but \(robot.name) has \(joints) axes (0…\(joints - 1))"))
            }
        }
        for (i, e) in s.expect.enumerated() {
            if e.signal != nil, let a = e.axis, a >= joints {
                problems.append(ConfigProblem(field: "expect[\(i)].axis", message: "axis \(a), but \(robot.name) has \(joints) axes (0…\(joints - 1))"))
            }
        }
        if let limitsPath = s.resolvedLimitsPath {
            do {
                let limits = try SafetyLimits.load(from: limitsPath).limits
                if limits.joints.count != joints {
                    problems.append(ConfigProblem(field: "setup.limits", message: "\(limitsPath) has \(limits.joints.count) joints, \(robot.name) has \(joints)"))
                }
            } catch {
                problems.append(ConfigProblem(field: "setup.limits", message: "cannot load \(limitsPath): \(error.description)"))
            }
        }
        if !problems.isEmpty { throw HILLoadError(underlying: .invalid(file: path, problems: problems)) }
        return s
    }

    /// The robot file: relative to the scenario's folder when it exists there, else as given.
    public var resolvedRobotPath: String { resolved(setup.robot) }

    /// The safety limits file, resolved as the robot file is (nil: no monitor).
    public var resolvedLimitsPath: String? { setup.limits.map(resolved) }

    func resolved(_ robot: String) -> String {
        if robot.hasPrefix("/") || file.isEmpty { return robot }
        let folder = (file as NSString).deletingLastPathComponent
        let beside = folder.isEmpty ? robot : folder + "/" + robot
        return FileManager.default.fileExists(atPath: beside) ? beside : robot
    }
}
