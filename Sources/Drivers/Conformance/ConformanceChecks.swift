import Core
import Foundation

/// The checks themselves; each returns what it measured, or throws what failed.
extension DriveLinkConformance {
    func checkBeforeHandshake() throws -> String {
        // Any frame before HELLO; the axis count is unknown, so the COMMAND carries one axis and
        // a drive with more drops it for its size either way.
        link.send(.heartbeat)
        link.send(.paramRead, [1, 0])
        link.send(.command, command(enable: 0, axes: 1))
        link.send(.faultReset)
        let (_, ack, _) = link.request(.enable, [1], expect: .enableAck, timeout: options.patience)
        let others = link.unsolicited.filter { $0.type != .fault }
        link.clearUnsolicited()
        try expectNoReply("HEARTBEAT, PARAM_READ, COMMAND and FAULT_RESET to a drive that has had no HELLO", others,
                          spec: "Messages › HELLO and HELLO_ACK — before a handshake the drive drops every frame but HELLO and ENABLE without a reply (if this drive already had a HELLO before the suite ran, restart it and run again)")
        guard let ack, ack.payload.count == 2 else {
            throw CheckFailure(sent: "ENABLE 1 before any HELLO", got: "no ENABLE_ACK",
                               spec: "Messages › HELLO and HELLO_ACK — before a handshake the drive answers ENABLE with a refusal (reason 2)")
        }
        guard ack.payload[0] == 0, ack.payload[1] == 2 else {
            throw CheckFailure(sent: "ENABLE 1 before any HELLO", got: describe(ack),
                               spec: "Messages › HELLO and HELLO_ACK — refused: enabled 0, reason 2 (no handshake yet)")
        }
        return "4 frames dropped unanswered; ENABLE refused with reason 2"
    }

    func checkHandshake() throws -> String {
        let (_, reply, latency) = link.request(.hello, Self.hello(), expect: .helloAck, timeout: options.patience)
        guard let ack = reply else {
            throw CheckFailure(sent: "HELLO (versions 1…1, 1000 µs cycle)", got: "no HELLO_ACK within \(ms(options.patience))\(refusedNote())",
                               spec: "Messages › HELLO and HELLO_ACK — the drive answers HELLO with HELLO_ACK")
        }
        guard ack.payload.count == 28 else {
            throw CheckFailure(sent: "HELLO", got: "HELLO_ACK of \(ack.payload.count) bytes", spec: "Messages — HELLO_ACK carries 28 bytes")
        }
        let p = ack.payload
        if p[0] != 1 {
            throw CheckFailure(sent: "HELLO (versions 1…1)", got: "HELLO_ACK version \(p[0])",
                               spec: "Messages › HELLO and HELLO_ACK — version is the one the drive will speak, within the host's range (1…1), or 0 if it speaks none")
        }
        if !(1...8).contains(p[1]) {
            throw CheckFailure(sent: "HELLO", got: "HELLO_ACK axis_count \(p[1])", spec: "Messages — n, the drive's axis count, is 1…8")
        }
        let watchdog = ack.u32(4)
        if !(1000...1_000_000).contains(watchdog) {
            throw CheckFailure(sent: "HELLO", got: "HELLO_ACK watchdog_us \(watchdog)", spec: "Timing rules › Watchdog — watchdog_us is 1 ms … 1 s")
        }
        axes = Int(p[1])
        firmwareID = String(decoding: p[12..<28].prefix { $0 != 0 }, as: UTF8.self)
        // A range it does not speak: version 0, and no handshake (HEARTBEAT goes unanswered).
        let (_, refusal, _) = link.request(.hello, Self.hello(min: 2, max: 9), expect: .helloAck, timeout: options.patience)
        guard let refusal, refusal.payload.count == 28, refusal.payload[0] == 0 else {
            throw CheckFailure(sent: "HELLO (versions 2…9)", got: refusal.map { "HELLO_ACK version \($0.payload.first ?? 0)" } ?? "no HELLO_ACK",
                               spec: "Messages › HELLO and HELLO_ACK — version 0 if the drive speaks none in the host's range")
        }
        link.send(.heartbeat)
        try expectNoReply("HEARTBEAT after a HELLO answered with version 0", link.collect(for: options.silence),
                          spec: "Messages › HELLO and HELLO_ACK — a HELLO answered with version 0 leaves the drive without a handshake")
        try handshake()
        return "version 1, \(axes) axes, watchdog_us \(watchdog), firmware '\(firmwareID ?? "")', reply in \(msText(latency)); versions 2…9 answered with 0"
    }

    func checkFraming() throws -> String {
        try handshake()
        let original = try readWatchdog()
        let probe: UInt32 = original == 123_000 ? 124_000 : 123_000
        // A PARAM_WRITE with its CRC broken: if applied, the watchdog would read `probe`.
        var badCRC = link.encode(.paramWrite, seq: link.nextSeq, Self.paramWrite(1, Int32(probe)))
        link.nextSeq &+= 1
        badCRC = flipCRC(badCRC)
        let enableBadCRC = flipCRC(link.encode(.enable, seq: link.nextSeq, [1]))
        link.nextSeq &+= 1
        let cases: [(String, [UInt8], String)] = [
            ("a PARAM_WRITE watchdog_us = \(probe) with a wrong CRC", badCRC, "fails its CRC"),
            ("an ENABLE 1 with a wrong CRC", enableBadCRC, "fails its CRC"),
            // A code byte that runs past the end.
            ("a frame that is not valid COBS", [0x20, 0x01, 0x03, 0x00], "is not valid COBS"),
            // 5 bytes decoded.
            ("a 5-byte frame", [0x06, 0x01, 0x03, 0x05, 0x05, 0x05, 0x00], "is shorter than 10 bytes"),
            ("a PARAM_READ with version byte 2", rewrite(.paramRead, [1, 0]) { $0[0] = 2 }, "has another version"),
            ("a frame of unknown type 0x7E", rewrite(.paramRead, [1, 0]) { $0[1] = 0x7E }, "has an unknown type"),
            ("a PARAM_READ whose length field says 3 for 2 bytes", rewrite(.paramRead, [1, 0]) { $0[4] = 3 }, "has a length that disagrees with the frame"),
            ("a PARAM_READ with 3 payload bytes", link.encode(.paramRead, seq: next(), [1, 0, 0]), "has a payload of the wrong size for its type"),
            ("a drive's own type (STATE) sent to the drive", link.encode(.state, seq: next(), [UInt8](repeating: 0, count: 16 + 12 * axes)),
             "is of a drive → host type"),
        ]
        for (what, bytes, rule) in cases {
            link.sendRaw(bytes)
            try expectNoReply(what, link.collect(for: options.silence / 2),
                              spec: "Framing — a receiver drops, unanswered and unapplied, every frame that \(rule)")
        }
        let now = try readWatchdog()
        guard now == original else {
            throw CheckFailure(sent: "a PARAM_WRITE watchdog_us = \(probe) with a wrong CRC, then PARAM_READ", got: "watchdog_us \(now) (was \(original))",
                               spec: "Framing — a frame that fails its CRC is dropped, never applied")
        }
        // The suite's own broken frames must not leave the drive's receiver out of step.
        return "\(cases.count) bad frames dropped unanswered; watchdog_us unchanged; the next valid frame answered"
    }

    func checkSequence() throws -> String {
        try handshake()
        let original = try readWatchdog()
        let probe: UInt32 = original == 123_000 ? 124_000 : 123_000
        let (_, first) = try exchange(enable: 0, what: "")
        _ = first
        let last = link.nextSeq &- 1
        let spec = "Framing › Sequence numbers — a frame whose seq is not newer than the last accepted one (RFC 1982) is dropped and counted, never applied"
        link.send(.command, command(enable: 0), seq: last)
        try expectNoReply("a COMMAND repeating seq \(last) (a duplicate)", link.collect(for: options.silence), spec: spec)
        link.send(.command, command(enable: 0), seq: last &- 3)
        try expectNoReply("a COMMAND with seq \(last &- 3), older than \(last)", link.collect(for: options.silence), spec: spec)
        link.send(.paramWrite, Self.paramWrite(1, Int32(probe)), seq: last &- 1)
        try expectNoReply("a PARAM_WRITE watchdog_us = \(probe) with seq \(last &- 1), older than \(last)", link.collect(for: options.silence), spec: spec)
        let now = try readWatchdog()
        guard now == original else {
            throw CheckFailure(sent: "a stale PARAM_WRITE watchdog_us = \(probe), then PARAM_READ", got: "watchdog_us \(now)", spec: spec)
        }
        // Newer by up to half the space is accepted.
        link.nextSeq &+= 1000
        _ = try exchange(enable: 0, what: "with seq 1000 ahead of the last")
        // HELLO is accepted whatever its seq and resets; then counting across the wrap.
        let (_, ack, _) = link.request(.hello, Self.hello(), expect: .helloAck, seq: 0xFFFD, timeout: options.patience)
        guard ack != nil else {
            throw CheckFailure(sent: "HELLO with seq 0xFFFD (behind the last accepted)", got: "no HELLO_ACK",
                               spec: "Framing › Sequence numbers — a drive accepts a valid HELLO whatever its seq and takes that seq as its last accepted")
        }
        link.nextSeq = 0xFFFE
        for _ in 0..<4 { _ = try exchange(enable: 0, what: "counting across the wrap (0xFFFE, 0xFFFF, 0, 1)") }
        link.send(.command, command(enable: 0), seq: 0xFFFF)
        try expectNoReply("a COMMAND with seq 0xFFFF after seq 1 (older across the wrap)", link.collect(for: options.silence), spec: spec)
        return "duplicate, older and stale PARAM_WRITE dropped; +1000 accepted; HELLO reset; wrap counted"
    }

    func checkCommand() throws -> String {
        try handshake()
        try setWatchdog(1_000_000)
        let off = try exchange(enable: 0, what: "(hold, enable 0)")
        if let bad = off.status.first(where: { $0 & 0b1011 != 0 }) {
            throw CheckFailure(sent: "COMMAND hold, enable 0 after HELLO", got: "status \(statusText(off.status)) (0x\(String(bad, radix: 16)))",
                               spec: "Messages › STATE — bit 0: power on; bits 1 and 3: a fault latched (none is); the stage is off with enable 0")
        }
        if let bad = off.status.first(where: { $0 & 0xFFF0 != 0 }) {
            throw CheckFailure(sent: "COMMAND", got: "status bits 0x\(String(bad, radix: 16))", spec: "Messages › STATE — status bits other than 0…3 are 0")
        }
        // The invalid ones first, with the power off: the silences after them would otherwise
        // add up to a watchdog trip on a slow device.
        for (mode, name) in [(UInt8(3), "mode 3"), (UInt8(0), "enable 2")] {
            var p = command(mode: mode, enable: 1)
            if name == "enable 2" { p[1] = 2 }
            link.send(.command, p)
            try expectNoReply("a COMMAND with \(name)", link.collect(for: options.silence),
                              spec: "Messages › COMMAND — a mode above 2 or an enable above 1 makes the frame invalid (dropped, counted)")
        }
        link.send(.command, command(enable: 1, axes: axes + 1))
        try expectNoReply("a COMMAND for \(axes + 1) axes to a drive of \(axes)", link.collect(for: options.silence),
                          spec: "Framing — a payload of the wrong size for its type is dropped")
        try powerOn()
        let after = try exchange(enable: 0, what: "(enable 0 after power on)")
        if after.status.contains(where: { $0 & 1 != 0 }) {
            throw CheckFailure(sent: "COMMAND enable 0", got: "status \(statusText(after.status))",
                               spec: "Messages › COMMAND — enable 0: the power stage off")
        }
        return "STATE of \(16 + 12 * axes) bytes with ack_seq; bit 0 followed enable 1 and 0; mode 3, enable 2 and a wrong size dropped"
    }

    func checkEnable() throws -> String {
        try handshake()
        try setWatchdog(1_000_000)
        for (on, what) in [(UInt8(1), "ENABLE 1"), (UInt8(0), "ENABLE 0")] {
            let (_, r, _) = link.request(.enable, [on], expect: .enableAck, timeout: options.patience)
            guard let r, r.payload.count == 2 else {
                throw CheckFailure(sent: what, got: "no ENABLE_ACK", spec: "Messages › ENABLE — answered with ENABLE_ACK (2 bytes)")
            }
            guard r.payload[0] == on, r.payload[1] == 0 else {
                throw CheckFailure(sent: what + " (handshake done, no fault)", got: describe(r), spec: "Messages › ENABLE — enabled \(on), reason 0 (done)")
            }
        }
        link.send(.enable, [2])
        try expectNoReply("ENABLE 2", link.collect(for: options.silence), spec: "Messages › ENABLE — `on` is 0 or 1; another value is a bad frame")
        return "ENABLE 1 and 0 done; ENABLE 2 dropped"
    }

    func checkHelloPowersOff() throws -> String {
        try handshake()
        try setWatchdog(options.testWatchdog)
        try powerOn()
        try handshake()
        try expectNothingLatched(after: "COMMAND enable 1, then HELLO",
                                 spec: "Messages › HELLO and HELLO_ACK — a HELLO turns the power stage off; Watchdog — a drive whose power is off latches nothing")
        return "no watchdog trip in twice watchdog_us of silence after HELLO"
    }

    func checkParam() throws -> String {
        try handshake()
        let spec = "Messages › PARAM_READ, PARAM_WRITE, PARAM_VALUE"
        func param(_ type: DriveLink.MessageType, _ payload: [UInt8], _ what: String) throws -> (status: UInt8, value: Int32) {
            let id = UInt16(payload[0]) | UInt16(payload[1]) << 8
            let (_, r, _) = link.request(type, payload, expect: .paramValue, timeout: options.patience)
            guard let r, r.payload.count == 8 else {
                throw CheckFailure(sent: what, got: "no PARAM_VALUE", spec: "\(spec) — PARAM_READ and PARAM_WRITE are answered with PARAM_VALUE (8 bytes)")
            }
            guard r.u16(0) == id else { throw CheckFailure(sent: what, got: describe(r), spec: "\(spec) — PARAM_VALUE names the id asked for") }
            return (r.payload[2], r.i32(4))
        }
        func expect(_ got: (status: UInt8, value: Int32), _ status: UInt8, _ value: Int32?, _ what: String, _ rule: String) throws {
            if got.status != status || (value != nil && got.value != value) {
                throw CheckFailure(sent: what, got: "status \(got.status), value \(got.value)", spec: "\(spec) — \(rule)")
            }
        }
        let w = try param(.paramRead, [1, 0], "PARAM_READ 0x0001 (watchdog_us)")
        try expect(w, 0, nil, "PARAM_READ 0x0001", "watchdog_us reads with status 0")
        if !(1000...1_000_000).contains(w.value) {
            throw CheckFailure(sent: "PARAM_READ 0x0001", got: "watchdog_us \(w.value)", spec: "\(spec) — watchdog_us is 1000 … 1000000")
        }
        try expect(try param(.paramRead, [2, 0], "PARAM_READ 0x0002"), 0, Int32(axes), "PARAM_READ 0x0002 (axis_count)", "axis_count reads as HELLO_ACK said (\(axes))")
        try expect(try param(.paramRead, [3, 0], "PARAM_READ 0x0003"), 0, 1, "PARAM_READ 0x0003 (protocol version)", "the protocol version reads 1")
        try expect(try param(.paramRead, [0x42, 0], "PARAM_READ 0x0042"), 1, 0, "PARAM_READ 0x0042 (no such id)", "status 1 unknown id, the value is then 0")
        try expect(try param(.paramWrite, Self.paramWrite(0x42, 7), "PARAM_WRITE 0x0042 = 7"), 1, 0, "PARAM_WRITE 0x0042 = 7 (no such id)", "status 1 unknown id, the value is then 0")
        try expect(try param(.paramWrite, Self.paramWrite(2, 3), "PARAM_WRITE 0x0002 = 3"), 2, Int32(axes), "PARAM_WRITE 0x0002 (axis_count) = 3", "status 2 read-only, the value is the current one")
        try expect(try param(.paramWrite, Self.paramWrite(3, 2), "PARAM_WRITE 0x0003 = 2"), 2, 1, "PARAM_WRITE 0x0003 (version) = 2", "status 2 read-only, the value is the current one")
        for bad: Int32 in [999, 1_000_001, -1] {
            try expect(try param(.paramWrite, Self.paramWrite(1, bad), "PARAM_WRITE watchdog_us = \(bad)"), 3, w.value,
                       "PARAM_WRITE watchdog_us = \(bad)", "status 3 out of range (1000 … 1000000), the value is the unchanged current one")
        }
        let target: Int32 = w.value == 50_000 ? 60_000 : 50_000
        try expect(try param(.paramWrite, Self.paramWrite(1, target), "PARAM_WRITE watchdog_us = \(target)"), 0, target, "PARAM_WRITE watchdog_us = \(target)", "status 0, the value written")
        try expect(try param(.paramRead, [1, 0], "PARAM_READ 0x0001"), 0, target, "PARAM_READ 0x0001 after writing \(target)", "a written value reads back")
        try expect(try param(.paramWrite, Self.paramWrite(1, w.value), "PARAM_WRITE watchdog_us = \(w.value)"), 0, w.value, "PARAM_WRITE watchdog_us = \(w.value) (restoring)", "status 0, the value written")
        return "ids 1-3 read; unknown id status 1 value 0; read-only 2; out of range 3; watchdog_us written and read back"
    }

    func checkHeartbeat() throws -> String {
        try handshake()
        try setWatchdog(options.testWatchdog)
        try powerOn()
        // HEARTBEATs at a fifth of the watchdog for three watchdogs: the power must stay on.
        let period = Nanoseconds(options.testWatchdog) * 200
        let until = MonotonicClock.now() + 3 * Nanoseconds(options.testWatchdog) * 1000
        var times: [UInt32] = []
        var worst: Nanoseconds = 0
        while MonotonicClock.now() < until {
            let (_, r, latency) = link.request(.heartbeat, expect: .heartbeatAck, timeout: options.patience)
            guard let r, r.payload.count == 4 else {
                throw CheckFailure(sent: "HEARTBEAT", got: r.map { "HEARTBEAT_ACK of \($0.payload.count) bytes" } ?? "no HEARTBEAT_ACK",
                                   spec: "Messages › HEARTBEAT — answered with HEARTBEAT_ACK (u32 drive_time_us)")
            }
            worst = max(worst, latency)
            times.append(r.u32(0))
            _ = link.collect(for: max(0, period - latency))
        }
        let faults = link.takeFaults()
        let after = try exchange(enable: 1, what: "after \(times.count) HEARTBEATs")
        if !faults.isEmpty || after.status.contains(where: { $0 & 0b1011 != 1 }) {
            _ = link.request(.faultReset, expect: .faultResetAck, timeout: options.patience)
            throw CheckFailure(sent: "COMMAND enable 1, then only HEARTBEATs every \(ms(period)) for \(ms(3 * Nanoseconds(options.testWatchdog) * 1000)) (watchdog_us \(options.testWatchdog); slowest reply \(msText(worst)))",
                               got: "\(faults.map(describe).joined(separator: ", ")) status \(statusText(after.status))",
                               spec: "Messages › HEARTBEAT — an empty HEARTBEAT refreshes the watchdog; the power stays on", timing: true)
        }
        _ = try exchange(enable: 0, what: "")
        let backwards = zip(times, times.dropFirst()).contains { $1 &- $0 > UInt32.max / 2 }
        if backwards {
            throw CheckFailure(sent: "HEARTBEATs", got: "drive_time_us \(times.map(String.init).joined(separator: ", "))",
                               spec: "Messages › HEARTBEAT — drive_time_us is the drive's clock, which does not run backwards")
        }
        return "\(times.count) HEARTBEATs kept the power on for 3 × watchdog_us"
    }

    func checkReplyDeadline() throws -> String {
        try handshake()
        var latencies: [(String, Nanoseconds)] = []
        func measure(_ type: DriveLink.MessageType, _ payload: [UInt8], _ reply: DriveLink.MessageType) throws {
            let (_, r, latency) = link.request(type, payload, expect: reply, timeout: options.patience)
            guard r != nil else {
                throw CheckFailure(sent: "\(type)", got: "no \(reply) within \(ms(options.patience))", spec: "Timing rules › Reply deadline — every frame that has a reply is answered")
            }
            latencies.append(("\(type)", latency))
            // The first late reply decides the attempt: a slow device is late on every one.
            if latency > DriveLink.replyDeadline {
                let sorted = latencies.map(\.1).sorted()
                throw CheckFailure(sent: "\(latencies.count) requests, one at a time", got: "the reply to \(type) after \(msText(latency)) (median \(msText(sorted[sorted.count / 2])))",
                                   spec: "Timing rules › Reply deadline — the host waits 200 ms for the reply to a set-up message; a drive answers at once, before the host's next cycle", timing: true)
            }
        }
        try measure(.hello, Self.hello(), .helloAck)
        for _ in 0..<20 { try measure(.command, command(enable: 0), .state) }
        try measure(.heartbeat, [], .heartbeatAck)
        try measure(.paramRead, [1, 0], .paramValue)
        try measure(.faultReset, [], .faultResetAck)
        let sorted = latencies.map(\.1).sorted()
        let median = sorted[sorted.count / 2]
        return "\(latencies.count) replies: median \(msText(median)), slowest \(msText(sorted.last ?? 0)) (deadline 200 ms; the 1 ms cycle budget is reported, not judged, on a host that is not real-time)"
    }

    func checkWatchdog() throws -> String {
        let w = Nanoseconds(options.testWatchdog) * 1000
        let trip = try tripWatchdog(wait: w + options.allowance)
        let latched = trip.status.allSatisfy { $0 & 0b1011 == 0b1010 }
        // The next checks start without the fault (clearing it is the fault-reset check's to judge).
        if latched { _ = link.request(.faultReset, expect: .faultResetAck, timeout: options.patience) }
        if let since = trip.sinceLastCommand, since < w - 2_000_000 {
            throw CheckFailure(sent: "COMMAND enable 1, then silence (watchdog_us \(options.testWatchdog))",
                               got: "FAULT \(msText(since)) after the last COMMAND was sent", spec: "Timing rules › Watchdog — the drive trips after watchdog_us without a refresh, not before")
        }
        guard latched else {
            throw CheckFailure(sent: "COMMAND enable 1, then silence for \(ms(w + options.allowance)) (watchdog_us \(options.testWatchdog)), then COMMAND enable 0",
                               got: "\(trip.fault.map(describe) ?? "no FAULT"); status \(statusText(trip.status)) (no watchdog fault latched\(trip.status.contains { $0 & 1 == 1 } ? ", power still on" : ""))",
                               spec: "Timing rules › Watchdog — if no valid COMMAND or HEARTBEAT arrives for watchdog_us while the stage is on, the drive removes power and latches fault 1 (status bits 1 and 3, bit 0 clear); the suite allows \(ms(options.allowance)) beyond watchdog_us", timing: true)
        }
        if let since = trip.sinceLastState {
            return "tripped \(msText(since)) after the last STATE (watchdog_us \(options.testWatchdog) µs; allowed \(ms(w + options.allowance)))"
        }
        return "power removed and fault 1 latched within \(ms(w + options.allowance)) (no FAULT message: see the fault check)"
    }

    func checkWatchdogDisarmed() throws -> String {
        try handshake()
        try setWatchdog(options.testWatchdog)
        if try exchange(enable: 0, what: "").status.contains(where: { $0 & 0b1010 != 0 }) {
            _ = link.request(.faultReset, expect: .faultResetAck, timeout: options.patience)
            let before = try exchange(enable: 0, what: "after a FAULT_RESET")
            if before.status.contains(where: { $0 & 0b1010 != 0 }) {
                throw CheckSkipped(why: "a fault stays latched after FAULT_RESET (status \(statusText(before.status))): see the fault-reset check")
            }
        }
        let wait = try expectNothingLatched(after: "COMMAND enable 0",
                                            spec: "Timing rules › Watchdog — armed only while the power stage is on; a drive whose power is off latches nothing")
        return "nothing latched after \(ms(wait)) of silence with the power off"
    }

    func checkFault() throws -> String {
        let w = Nanoseconds(options.testWatchdog) * 1000
        // Waits long for the message: lateness is the watchdog check's to judge.
        let trip = try tripWatchdog(wait: w + 2_000_000_000)
        guard trip.status.allSatisfy({ $0 & 0b1010 == 0b1010 }) else {
            throw CheckSkipped(why: "no watchdog fault latched after \(ms(w + 2_000_000_000)) of silence (status \(statusText(trip.status))): see the watchdog check")
        }
        guard let fault = trip.fault else {
            throw CheckFailure(sent: "COMMAND enable 1, then silence (watchdog_us \(options.testWatchdog))",
                               got: "no FAULT message within \(ms(w + 2_000_000_000)), though the STATE shows the watchdog fault latched (status \(statusText(trip.status)))",
                               spec: "Messages › FAULT — sent by the drive when a fault latches; Timing rules › Watchdog — the drive latches fault 1 and sends a FAULT")
        }
        guard fault.payload.count == 8, fault.payload[0] == 0xFF, fault.u16(2) == 1 else {
            throw CheckFailure(sent: "silence with the power on", got: describe(fault), spec: "Messages › FAULT — the watchdog is axis 0xFF (the whole drive), code 1")
        }
        if fault.i32(4) < Int32(options.testWatchdog) - 1000 {
            throw CheckFailure(sent: "silence with the power on (watchdog_us \(options.testWatchdog))", got: describe(fault),
                               spec: "Messages › FAULT — detail of code 1: µs since the last refresh, at least watchdog_us")
        }
        // Sent once; power refused while latched.
        let more = link.collect(for: options.silence).filter { $0.type == .fault }
        let asked = try exchange(enable: 1, what: "while the fault is latched")
        if !more.isEmpty {
            throw CheckFailure(sent: "nothing after the FAULT", got: "\(more.count + 1) FAULT messages", spec: "Messages › FAULT — each FAULT message is sent once, when its fault arises")
        }
        if asked.status.contains(where: { $0 & 0b1011 != 0b1010 }) {
            throw CheckFailure(sent: "COMMAND enable 1 with the watchdog fault latched", got: "status \(statusText(asked.status))",
                               spec: "Messages › STATE — bits 1 and 3 on every axis while fault 1 is latched; COMMAND — no power while a fault is latched")
        }
        let (_, ack, _) = link.request(.enable, [1], expect: .enableAck, timeout: options.patience)
        guard let ack, ack.payload.count == 2, ack.payload[0] == 0, ack.payload[1] == 1 else {
            throw CheckFailure(sent: "ENABLE 1 with the watchdog fault latched", got: ack.map(describe) ?? "no ENABLE_ACK",
                               spec: "Messages › ENABLE — refused (enabled 0) with reason 1: a fault is latched")
        }
        _ = try exchange(enable: 0, what: "")
        faultLatched = true
        return "FAULT axis 0xFF code 1 detail \(fault.i32(4)) µs, sent once; bits 1 and 3 shown; power refused (reason 1)"
    }

    func checkFaultReset() throws -> String {
        try handshake()
        var status = try exchange(enable: 0, what: "").status
        if !status.allSatisfy({ $0 & 0b1010 == 0b1010 }) {
            let trip = try tripWatchdog(wait: Nanoseconds(options.testWatchdog) * 1000 + 2_000_000_000)
            status = trip.status
            guard status.allSatisfy({ $0 & 0b1010 == 0b1010 }) else {
                throw CheckSkipped(why: "no watchdog fault could be latched to reset (status \(statusText(status))): see the watchdog check")
            }
        }
        link.clearUnsolicited()
        let (_, ack, _) = link.request(.faultReset, expect: .faultResetAck, timeout: options.patience)
        guard let ack, ack.payload.count == 2 else {
            throw CheckFailure(sent: "FAULT_RESET with fault 1 latched", got: "no FAULT_RESET_ACK", spec: "Messages › FAULT_RESET — answered with FAULT_RESET_ACK (u16 remaining_fault)")
        }
        guard ack.u16(0) == 0 else {
            throw CheckFailure(sent: "FAULT_RESET with the watchdog fault latched (the host talking again is its cause gone)", got: "remaining_fault \(ack.u16(0))",
                               spec: "Messages › FAULT_RESET — clears a latched fault whose cause is gone; 0 when no fault remains")
        }
        let cleared = try exchange(enable: 0, what: "after FAULT_RESET")
        if cleared.status.contains(where: { $0 & 0b1011 != 0 }) {
            throw CheckFailure(sent: "FAULT_RESET, then COMMAND enable 0", got: "status \(statusText(cleared.status))",
                               spec: "Messages › FAULT_RESET — the fault is cleared: status bits 1 and 3 clear; the power stays off until asked for")
        }
        try setWatchdog(1_000_000)
        try powerOn()
        _ = try exchange(enable: 0, what: "")
        let (_, again, _) = link.request(.faultReset, expect: .faultResetAck, timeout: options.patience)
        guard let again, again.payload.count == 2, again.u16(0) == 0 else {
            throw CheckFailure(sent: "FAULT_RESET with no fault latched", got: again.map(describe) ?? "no FAULT_RESET_ACK",
                               spec: "Messages › FAULT_RESET — remaining_fault 0 when no fault remains latched")
        }
        faultLatched = false
        return "remaining_fault 0; status clear; power on again on request; a FAULT_RESET with nothing latched answers 0"
    }

    func checkDeviceFrames() throws -> String {
        if let first = link.refused.first {
            throw CheckFailure(sent: "the suite's requests", got: "\(link.refused.count) of the drive's frames refused by the host's codec; the first: \(first)",
                               spec: "Framing — header, payload and CRC-32C (reflected 0x82F63B78, check value 0xE3069283 for \"123456789\"), COBS, one 0x00 delimiter")
        }
        if let first = link.notNewer.first {
            throw CheckFailure(sent: "the suite's requests", got: "\(link.notNewer.count) frame(s) whose seq did not count up; the first: \(first)",
                               spec: "Framing › Sequence numbers — each side counts its own frames, +1 per frame sent, and never resets its own counter")
        }
        return "\(link.framesReceived) frames from the drive, all valid, seq counting up"
    }

    // MARK: Helpers of the checks

    /// Silence for twice the test watchdog and the allowance, then a COMMAND with enable 0: no
    /// FAULT may have come and no fault may be latched. Returns the silence (ns).
    @discardableResult
    func expectNothingLatched(after what: String, spec: String) throws -> Nanoseconds {
        let wait = 2 * Nanoseconds(options.testWatchdog) * 1000 + options.allowance
        let faults = link.collect(for: wait).filter { $0.type == .fault }
        let after = try exchange(enable: 0, what: "after \(ms(wait)) of silence")
        if !faults.isEmpty || after.status.contains(where: { $0 & 0b1010 != 0 }) {
            _ = link.request(.faultReset, expect: .faultResetAck, timeout: options.patience)
            throw CheckFailure(sent: "\(what), then silence for \(ms(wait)) (watchdog_us \(options.testWatchdog))",
                               got: "\(faults.map(describe).joined(separator: ", ")) status \(statusText(after.status))", spec: spec, timing: true)
        }
        return wait
    }

    func readWatchdog() throws -> UInt32 {
        let (_, r, _) = link.request(.paramRead, [1, 0], expect: .paramValue, timeout: options.patience)
        guard let r, r.payload.count == 8, r.payload[2] == 0 else {
            throw CheckFailure(sent: "PARAM_READ 0x0001 (watchdog_us)", got: r.map(describe) ?? "no PARAM_VALUE",
                               spec: "Messages › PARAM_READ, PARAM_WRITE, PARAM_VALUE — watchdog_us reads with status 0")
        }
        return r.u32(4)
    }

    func next() -> UInt16 {
        defer { link.nextSeq &+= 1 }
        return link.nextSeq
    }

    /// A valid frame whose unencoded bytes `edit` changes, CRC recomputed: only the edit is wrong.
    func rewrite(_ type: DriveLink.MessageType, _ payload: [UInt8], _ edit: (inout [UInt8]) -> Void) -> [UInt8] {
        var raw: [UInt8] = [1, type.rawValue, 0, 0, UInt8(payload.count & 0xFF), UInt8(payload.count >> 8)] + payload
        let seq = next()
        raw[2] = UInt8(seq & 0xFF); raw[3] = UInt8(seq >> 8)
        edit(&raw)
        let crc = raw.withUnsafeBytes { CRC32C.checksum($0) }
        raw += [UInt8(crc & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8((crc >> 16) & 0xFF), UInt8(crc >> 24)]
        return Self.cobs(raw)
    }

    /// A wire frame with one bit of its CRC flipped (re-encoded, so the COBS stays valid).
    func flipCRC(_ wire: [UInt8]) -> [UInt8] {
        var raw = Self.uncobs(Array(wire.dropLast()))
        raw[raw.count - 1] ^= 0x01
        return Self.cobs(raw)
    }

    static func cobs(_ raw: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: COBS.maxEncodedSize(raw.count) + 1)
        let n = raw.withUnsafeBytes { src in out.withUnsafeMutableBytes { COBS.encode(src, into: $0) } } ?? 0
        out[n] = 0
        return Array(out[0...n])
    }

    static func uncobs(_ encoded: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: encoded.count)
        let n = encoded.withUnsafeBytes { src in out.withUnsafeMutableBytes { COBS.decode(src, into: $0) } } ?? 0
        return Array(out[0..<n])
    }
}
