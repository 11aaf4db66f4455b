import Core
import Foundation

/// The outcome of one conformance check.
public struct ConformanceResult: Sendable, Codable, Equatable {
    public enum Verdict: String, Sendable, Codable { case pass, fail, skipped }
    /// Short and stable (`sequence`, `watchdog`): what scripts and tests name.
    public var id: String
    /// The clause of docs/protocol.md the check covers (its section headings).
    public var clause: String
    public var title: String
    public var verdict: Verdict
    /// On a failure: what was sent, what came back and what the spec says. On a pass: figures.
    public var message: String
    public var seconds: Double
}

/// Everything a run found.
public struct ConformanceReport: Sendable, Codable {
    public var link: String
    public var firmwareID: String?
    public var axisCount: Int?
    public var results: [ConformanceResult]
    public var passed: Bool { results.allSatisfy { $0.verdict == .pass } }
    public var failed: [ConformanceResult] { results.filter { $0.verdict != .pass } }

    enum CodingKeys: String, CodingKey { case link, firmwareID = "firmware_id", axisCount = "axis_count", results, passed }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(link, forKey: .link)
        try c.encodeIfPresent(firmwareID, forKey: .firmwareID)
        try c.encodeIfPresent(axisCount, forKey: .axisCount)
        try c.encode(results, forKey: .results)
        try c.encode(passed, forKey: .passed)
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        link = try c.decode(String.self, forKey: .link)
        firmwareID = try c.decodeIfPresent(String.self, forKey: .firmwareID)
        axisCount = try c.decodeIfPresent(Int.self, forKey: .axisCount)
        results = try c.decode([ConformanceResult].self, forKey: .results)
    }
    public init(link: String, firmwareID: String?, axisCount: Int?, results: [ConformanceResult]) {
        self.link = link; self.firmwareID = firmwareID; self.axisCount = axisCount; self.results = results
    }

    /// JUnit XML (Jenkins, GitLab): one test case per check, named by its clause.
    public var junitXML: String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        let failures = results.filter { $0.verdict == .fail }.count
        let skipped = results.filter { $0.verdict == .skipped }.count
        let total = results.reduce(0) { $0 + $1.seconds }
        var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        x += "<testsuites>\n<testsuite name=\"DriveLink conformance (\(esc(link)))\" tests=\"\(results.count)\" failures=\"\(failures)\" skipped=\"\(skipped)\" time=\"\(String(format: "%.3f", total))\">\n"
        for r in results {
            x += "  <testcase classname=\"drivelink.\(esc(r.id))\" name=\"\(esc(r.clause)): \(esc(r.title))\" time=\"\(String(format: "%.3f", r.seconds))\""
            switch r.verdict {
            case .pass: x += "><system-out>\(esc(r.message))</system-out></testcase>\n"
            case .fail: x += "><failure message=\"\(esc(r.message))\">\(esc(r.message))</failure></testcase>\n"
            case .skipped: x += "><skipped message=\"\(esc(r.message))\"/></testcase>\n"
            }
        }
        x += "</testsuite>\n</testsuites>\n"
        return x
    }
}

/// A check's failure: what the suite sent, what came back, and what docs/protocol.md says.
struct CheckFailure: Error {
    var sent: String
    var got: String
    var spec: String
    /// A failure a starved host or device can cause (a late reply, a watchdog trip that came
    /// late or through a silence the host did not mean): the check is measured again before
    /// it is judged.
    var timing = false
    var text: String { "sent \(sent); got \(got); docs/protocol.md: \(spec)" }
}

/// A check that cannot judge because an earlier one found the device unable to get there.
struct CheckSkipped: Error { var why: String }

/// The checks any DriveLink device must pass (docs/protocol.md), run against a device over a
/// byte stream through the host's own codec. They run request/response at the device's pace;
/// only the reply-deadline and watchdog checks judge time, each against the spec's own figure
/// plus `allowance` for a host and a device that are not real-time, and each reports what it
/// measured. A check that fails on time is measured again (`attempts`): a device that is slow
/// or trips late fails every attempt, where a machine that starved host and device once does
/// not; an attempt on which the host itself was starved (`starved`) judges nothing, within
/// `retryBudget`. Every check starts with a HELLO (which resets the device's sequence state and
/// turns its power off), so each stands on its own; the suite leaves the device's watchdog as
/// it found it.
public final class DriveLinkConformance {
    public struct Options: Sendable {
        /// The watchdog the timing checks set (µs; the spec's range 1 ms … 1 s).
        public var testWatchdog: UInt32 = 100_000
        /// What the timing checks allow beyond the spec's figure for scheduling on machines that
        /// are not real-time (ns).
        public var allowance: Nanoseconds = 200_000_000
        /// How long the suite waits for a reply before it calls the reply missing (ns): far
        /// longer than the spec's deadline, so that only the reply-deadline check judges a slow
        /// device, and a device starved of the processor for a second or two is not called mute.
        public var patience: Nanoseconds = 5_000_000_000
        /// How many attempts a check that fails on time gets before it fails.
        public var attempts = 3
        /// The host's own oversleep (ns) at which an attempt shows a starved machine and does
        /// not count among the attempts.
        public var starved: Nanoseconds = 50_000_000
        /// How long a check may go on measuring again (ns).
        public var retryBudget: Nanoseconds = 20_000_000_000
        /// How long the suite listens to show that a frame got no reply (ns).
        public var silence: Nanoseconds = 250_000_000
        public init() {}
    }

    public struct Check: Sendable {
        public var id: String
        public var clause: String
        public var title: String
    }

    /// The checks in the order they run.
    public static let checks: [Check] = [
        Check(id: "before-handshake", clause: "Messages › HELLO and HELLO_ACK (before a handshake)",
              title: "before a handshake only HELLO is answered, and ENABLE is refused with reason 2"),
        Check(id: "handshake", clause: "Messages › HELLO and HELLO_ACK",
              title: "HELLO_ACK: version 1, axis count 1…8, watchdog in range; version 0 for a range it does not speak"),
        Check(id: "framing", clause: "Framing",
              title: "a frame with a bad CRC, bad COBS, another version, an unknown type or a wrong length is dropped, unanswered and not applied"),
        Check(id: "sequence", clause: "Framing › Sequence numbers",
              title: "duplicate and older frames are dropped and not applied; newer ones (across the wrap) are; HELLO resets"),
        Check(id: "command", clause: "Messages › COMMAND and STATE",
              title: "each COMMAND is answered by a STATE of 16 + 12·n bytes with its ack_seq; enable 0/1 switches bit 0; invalid fields are dropped"),
        Check(id: "enable", clause: "Messages › ENABLE",
              title: "ENABLE 1 and 0 are done and acknowledged; an invalid ENABLE is dropped"),
        Check(id: "hello-powers-off", clause: "Messages › HELLO and HELLO_ACK (a HELLO turns the power stage off)",
              title: "a HELLO turns the power stage off: no watchdog trip after it"),
        Check(id: "param", clause: "Messages › PARAM_READ, PARAM_WRITE, PARAM_VALUE",
              title: "known ids read and written, read-only refused (2), out of range refused (3), unknown id status 1 with value 0"),
        Check(id: "heartbeat", clause: "Messages › HEARTBEAT",
              title: "HEARTBEAT is answered and refreshes the watchdog"),
        Check(id: "reply-deadline", clause: "Timing rules › Reply deadline",
              title: "every reply comes within the host's 200 ms deadline"),
        Check(id: "watchdog", clause: "Timing rules › Watchdog",
              title: "with the power on and the host silent, the drive removes power after watchdog_us and latches fault 1"),
        Check(id: "watchdog-disarmed", clause: "Timing rules › Watchdog (armed only while the power stage is on)",
              title: "with the power off, silence latches nothing"),
        Check(id: "fault", clause: "Messages › FAULT",
              title: "a latched fault is sent once as FAULT (axis 0xFF, code 1, detail ≥ watchdog_us), shown in status bits 1 and 3, and refuses power"),
        Check(id: "fault-reset", clause: "Messages › FAULT_RESET",
              title: "FAULT_RESET clears the watchdog fault (remaining_fault 0) and power can come on again"),
        Check(id: "device-frames", clause: "Framing (the drive's own frames)",
              title: "every frame the drive sent passed COBS, CRC, version, type and length checks, and its seq counted up"),
    ]

    let link: ConformanceLink
    let linkName: String
    let options: Options
    /// From the handshake.
    var axes = 0
    var firmwareID: String?
    var originalWatchdog: UInt32?
    /// Whether the last check left a watchdog fault latched (the fault-reset check uses it).
    var faultLatched = false

    public init(transport: consuming DescriptorTransport, linkName: String, options: Options = Options()) {
        link = ConformanceLink(transport: transport)
        self.linkName = linkName
        self.options = options
    }

    /// Runs the checks (all, or those named in `only`), telling `progress` of each result.
    public func run(only: Set<String>? = nil, progress: (ConformanceResult) -> Void = { _ in }) -> ConformanceReport {
        var results: [ConformanceResult] = []
        for check in Self.checks where only?.contains(check.id) ?? true {
            let start = MonotonicClock.now()
            var verdict = ConformanceResult.Verdict.pass
            var message = ""
            // The earlier attempts of a check that failed on time, and how many of them count.
            var earlier: [String] = []
            var counted = 0
            attempts: while true {
                link.drain()
                link.clearUnsolicited()
                link.resetStall()
                do {
                    message = try perform(check.id)
                    if !earlier.isEmpty { message += " (attempt \(earlier.count + 1); \(earlier.joined(separator: "; ")))" }
                } catch let f as CheckFailure where f.timing {
                    let starved = link.stall >= options.starved
                    if !starved { counted += 1 }
                    earlier.append("attempt \(earlier.count + 1): \(f.got)" + (starved ? " while the host was starved \(msText(link.stall))" : "; the host kept time"))
                    if counted < options.attempts && MonotonicClock.now() - start < options.retryBudget { continue attempts }
                    verdict = .fail
                    message = f.text + " (\(earlier.count) attempts: \(earlier.joined(separator: "; ")))"
                } catch let f as CheckFailure {
                    verdict = .fail
                    message = f.text
                } catch let s as CheckSkipped {
                    verdict = .skipped
                    message = s.why
                } catch {
                    verdict = .fail
                    message = "\(error)"
                }
                break
            }
            let r = ConformanceResult(id: check.id, clause: check.clause, title: check.title, verdict: verdict, message: message,
                                      seconds: Double(MonotonicClock.now() - start) * 1e-9)
            results.append(r)
            progress(r)
        }
        restore()
        return ConformanceReport(link: linkName, firmwareID: firmwareID, axisCount: axes > 0 ? axes : nil, results: results)
    }

    private func perform(_ id: String) throws -> String {
        switch id {
        case "before-handshake": return try checkBeforeHandshake()
        case "handshake": return try checkHandshake()
        case "framing": return try checkFraming()
        case "sequence": return try checkSequence()
        case "command": return try checkCommand()
        case "enable": return try checkEnable()
        case "hello-powers-off": return try checkHelloPowersOff()
        case "param": return try checkParam()
        case "heartbeat": return try checkHeartbeat()
        case "reply-deadline": return try checkReplyDeadline()
        case "watchdog": return try checkWatchdog()
        case "watchdog-disarmed": return try checkWatchdogDisarmed()
        case "fault": return try checkFault()
        case "fault-reset": return try checkFaultReset()
        case "device-frames": return try checkDeviceFrames()
        default: throw CheckSkipped(why: "no such check")
        }
    }

    // MARK: Building blocks

    static func hello(min: UInt8 = 1, max: UInt8 = 1) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 12)
        p[0] = min; p[1] = max
        put32(&p, 4, 1000)
        return p
    }

    static func put32(_ p: inout [UInt8], _ o: Int, _ v: UInt32) {
        for i in 0..<4 { p[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }

    func command(mode: UInt8 = 0, enable: UInt8, axes n: Int? = nil) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 4 + 8 * (n ?? axes))
        p[0] = mode; p[1] = enable
        return p
    }

    static func paramWrite(_ id: UInt16, _ value: Int32) -> [UInt8] {
        var p: [UInt8] = [UInt8(id & 0xFF), UInt8(id >> 8), 0, 0, 0, 0, 0, 0]
        put32(&p, 4, UInt32(bitPattern: value))
        return p
    }

    /// A HELLO for version 1 and its HELLO_ACK: the start of every check.
    @discardableResult
    func handshake() throws -> ReceivedFrame {
        let (_, reply, _) = link.request(.hello, Self.hello(), expect: .helloAck, timeout: options.patience)
        guard let reply else {
            throw CheckFailure(sent: "HELLO (versions 1…1)", got: "no HELLO_ACK within \(ms(options.patience))\(refusedNote())",
                               spec: "Messages › HELLO and HELLO_ACK — a drive answers HELLO with HELLO_ACK (28 bytes)")
        }
        guard reply.payload.count == 28 else {
            throw CheckFailure(sent: "HELLO", got: "HELLO_ACK of \(reply.payload.count) bytes", spec: "HELLO_ACK carries 28 bytes")
        }
        if axes == 0 {
            axes = Int(reply.payload[1])
            firmwareID = String(decoding: reply.payload[12..<28].prefix { $0 != 0 }, as: UTF8.self)
        }
        return reply
    }

    /// Sets watchdog_us (remembering the device's own the first time).
    func setWatchdog(_ us: UInt32) throws {
        if originalWatchdog == nil {
            let (_, r, _) = link.request(.paramRead, [1, 0], expect: .paramValue, timeout: options.patience)
            if let r, r.payload.count == 8, r.payload[2] == 0 { originalWatchdog = r.u32(4) }
        }
        let (_, r, _) = link.request(.paramWrite, Self.paramWrite(1, Int32(us)), expect: .paramValue, timeout: options.patience)
        guard let r, r.payload.count == 8, r.payload[2] == 0, r.u32(4) == us else {
            throw CheckFailure(sent: "PARAM_WRITE watchdog_us = \(us)", got: r.map { "PARAM_VALUE \(ConformanceLink.hex($0.payload))" } ?? "no PARAM_VALUE",
                               spec: "Messages › PARAM_READ, PARAM_WRITE, PARAM_VALUE — watchdog_us is read/write, 1000 … 1000000")
        }
    }

    /// A COMMAND and its STATE (ack_seq checked); the STATE's status words.
    func exchange(mode: UInt8 = 0, enable: UInt8, what: String) throws -> (state: ReceivedFrame, status: [UInt16]) {
        let (seq, r, _) = link.request(.command, command(mode: mode, enable: enable), expect: .state, timeout: options.patience)
        guard let r else {
            throw CheckFailure(sent: "COMMAND (mode \(mode), enable \(enable)) \(what)", got: "no STATE within \(ms(options.patience))\(refusedNote())",
                               spec: "Messages › COMMAND — every valid COMMAND is answered at once with a STATE")
        }
        let size = 16 + 12 * axes
        guard r.payload.count == size else {
            throw CheckFailure(sent: "COMMAND \(what)", got: "a STATE of \(r.payload.count) bytes",
                               spec: "Messages › STATE — 16 + 12·n bytes, \(size) for the \(axes) axes of the HELLO_ACK")
        }
        guard r.u16(0) == seq else {
            throw CheckFailure(sent: "COMMAND seq \(seq) \(what)", got: "a STATE with ack_seq \(r.u16(0))",
                               spec: "Messages › STATE — ack_seq is the seq of the COMMAND this STATE answers")
        }
        return (r, (0..<axes).map { r.u16(12 + 12 * $0 + 10) })
    }

    /// Asserts that no reply came: `frames` arrived in the silence after `sent`.
    func expectNoReply(_ sent: String, _ frames: [ReceivedFrame], spec: String) throws {
        let replies = frames.filter { $0.type != .fault }
        guard replies.isEmpty else {
            throw CheckFailure(sent: sent, got: replies.map(describe).joined(separator: ", "), spec: spec)
        }
    }

    func describe(_ f: ReceivedFrame) -> String {
        switch f.type {
        case .paramValue where f.payload.count == 8: "PARAM_VALUE (id \(f.u16(0)), status \(f.payload[2]), value \(f.i32(4)))"
        case .enableAck where f.payload.count == 2: "ENABLE_ACK (enabled \(f.payload[0]), reason \(f.payload[1]))"
        case .state where f.payload.count >= 2: "STATE (ack_seq \(f.u16(0)))"
        case .fault where f.payload.count == 8: "FAULT (axis \(f.payload[0]), code \(f.u16(2)), detail \(f.i32(4)))"
        default: "\(f.type) (\(f.payload.count) bytes)"
        }
    }

    func refusedNote() -> String {
        link.refused.isEmpty ? "" : " (the host's codec refused \(link.refused.count) frame(s) from the drive; the last: \(link.refused.last ?? ""))"
    }

    func ms(_ ns: Nanoseconds) -> String { String(format: "%.0f ms", Double(ns) * 1e-6) }
    func msText(_ ns: Nanoseconds) -> String { String(format: "%.1f ms", Double(ns) * 1e-6) }

    func statusText(_ s: [UInt16]) -> String { s.map { String(format: "0x%04x", $0) }.joined(separator: ", ") }

    /// Puts the device's watchdog back as it was and its power off.
    func restore() {
        guard let w = originalWatchdog else { return }
        _ = link.request(.hello, Self.hello(), expect: .helloAck, timeout: options.patience)
        _ = link.request(.paramWrite, Self.paramWrite(1, Int32(w)), expect: .paramValue, timeout: options.patience)
    }

    /// Powers up with `watchdog`, confirms it, goes silent and waits up to `wait` for a FAULT.
    /// Returns the FAULT (if any), the time from the last COMMAND sent to it, and the STATE
    /// that a COMMAND with enable 0 gets afterwards.
    func tripWatchdog(wait: Nanoseconds) throws -> (fault: ReceivedFrame?, sinceLastCommand: Nanoseconds?, sinceLastState: Nanoseconds?, status: [UInt16]) {
        try handshake()
        try setWatchdog(options.testWatchdog)
        try powerOn()
        let sent = MonotonicClock.now()
        let (_, r, _) = link.request(.command, command(enable: 1), expect: .state, timeout: options.patience)
        guard let r else {
            throw CheckFailure(sent: "COMMAND (enable 1) to refresh the watchdog", got: "no STATE", spec: "Messages › COMMAND")
        }
        let fault = link.awaitFrame(wait) { $0.type == .fault }
        link.clearUnsolicited()
        let after = try exchange(enable: 0, what: "after the silence")
        faultLatched = after.status.contains { $0 & 0b1010 != 0 }
        return (fault, fault.map { $0.at - sent }, fault.map { $0.at - r.at }, after.status)
    }

    /// COMMANDs with enable 1 until bit 0 shows on every axis (the host allows 100 ms).
    func powerOn() throws {
        let start = MonotonicClock.now()
        var last: [UInt16] = []
        repeat {
            last = try exchange(enable: 1, what: "asking for power").status
            if last.allSatisfy({ $0 & 1 == 1 }) { return }
        } while MonotonicClock.now() - start < DriveLink.powerUpTime + options.allowance
        throw CheckFailure(sent: "COMMANDs with enable 1 for \(ms(DriveLink.powerUpTime + options.allowance))", got: "status \(statusText(last)): bit 0 never set",
                           spec: "Messages › COMMAND — the drive powers its stage when enable is 1, no fault is latched and STO is released; Host reaction: within 100 ms")
    }
}
