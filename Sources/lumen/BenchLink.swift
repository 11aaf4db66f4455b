import ArgumentParser
import CAllocCount
import CommandSupport
import Control
import Core
import Drivers
import Foundation
import Sim

/// `lumen bench link`: what a cycle's exchange with the drives costs on each link.
struct BenchLink: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Round trip of one cycle's command and state over DriveLink on a pty and EtherCAT over UDP; host encode+decode time; allocations per cycle."
    )

    @Option(help: "Exchanges to time (100…1000000).") var exchanges = 5000
    @Option(help: "Robot file.") var robot = DemoRigFiles.defaultRobot
    @Flag(help: "Print JSON on stdout.") var json = false

    struct Serial: Encodable {
        var transport: String
        var exchanges: Int
        var rtt_us_p50: Double
        var rtt_us_p99: Double
        var rtt_us_max: Double
        var timeouts: Int
        var encode_decode_ns_p50: Double
        var encode_decode_ns_p99: Double
        var allocs_per_cycle: Double
        var command_bytes_on_wire: Int
        var state_bytes_on_wire: Int
    }

    struct EtherCATFigures: Encodable {
        var transport: String
        var slaves: Int
        var exchanges: Int
        var rtt_us_p50: Double
        var rtt_us_p99: Double
        var rtt_us_max: Double
        var timeouts: Int
        var wkc_shortfalls: Int
        var encode_decode_ns_p50: Double
        var encode_decode_ns_p99: Double
        var allocs_per_cycle: Double
        var frame_bytes: Int
    }

    struct Result: Encodable {
        var robot: String
        var joints: Int
        var serial_pty: Serial
        var ethercat_udp: EtherCATFigures
        var note: String
    }

    func validate() throws {
        try Check.count(exchanges, "--exchanges", in: 100...1_000_000)
    }

    func run() throws {
        let description = try DemoRigFiles.loadRobot(robot)
        let axes = description.axes
        let n = axes.count
        let pty = try PseudoTerminal.openPair()
        let drives = DriveLinkDriveEmulator(axes: axes, start: nil, deviceFD: pty.deviceFD)
        drives.start()
        defer { drives.stop() }
        var host = DriveLinkRobot(axes: axes, transport: DescriptorTransport(fd: pty.hostFD, owns: true, name: pty.path))
        do { try host.configure() } catch { throw CommandFailure(error.description) }
        try host.activate()

        Output.progress("bench link: \(exchanges) command/state exchanges over DriveLink on \(pty.path)")
        var command = JointCommand(jointCount: n)
        command.mode = .hold
        var state = JointState(jointCount: n)
        var rtt = [Double]()
        rtt.reserveCapacity(exchanges)
        var timeouts = 0
        // Round trip: write one COMMAND, wait for its STATE.
        for k in 0..<(exchanges + 100) {
            let t0 = MonotonicClock.now()
            _ = host.write(command, now: t0)
            var fresh = false
            let deadline = t0 + 50_000_000
            while !fresh, MonotonicClock.now() < deadline {
                _ = host.waitReadable(timeout: 1_000_000)
                fresh = host.read(into: &state, now: MonotonicClock.now()) == nil
            }
            let t1 = MonotonicClock.now()
            if k < 100 { continue }  // warm-up
            if fresh { rtt.append(Double(t1 - t0) / 1000) } else { timeouts += 1 }
        }
        // Allocations of the host's cycle work (write + read) on this thread.
        lumen_alloc_count_begin()
        for _ in 0..<1000 {
            _ = host.write(command, now: MonotonicClock.now())
            _ = host.waitReadable(timeout: 5_000_000)
            _ = host.read(into: &state, now: MonotonicClock.now())
        }
        let allocations = lumen_alloc_count_end()

        // Host-side codec cost alone: encode a COMMAND frame, decode a STATE frame, in memory.
        let codec = measureCodec(axes: n)
        let serial = Serial(
            transport: "pty to simulated drives (C99 firmware reference)", exchanges: rtt.count,
            rtt_us_p50: round1(percentile(rtt, 50)), rtt_us_p99: round1(percentile(rtt, 99)), rtt_us_max: round1(percentile(rtt, 100)), timeouts: timeouts,
            encode_decode_ns_p50: codec.p50, encode_decode_ns_p99: codec.p99, allocs_per_cycle: Double(allocations) / 1000,
            command_bytes_on_wire: codec.commandBytes, state_bytes_on_wire: codec.stateBytes)
        drives.stop()
        let ethercat = try measureEtherCAT(axes: axes)
        let r = Result(robot: description.name, joints: n, serial_pty: serial, ethercat_udp: ethercat,
                       note: "round trip = send one cycle's command until its state is back, on this machine (not a real-time target); raw-Ethernet EtherCAT over veth needs root and is exercised by the tests, not timed here")
        if json {
            try Output.json(r)
        } else {
            print("""
            DriveLink over a pty, \(n) axes (\(serial.exchanges) exchanges, \(timeouts) timeouts)
              round trip:     p50 \(serial.rtt_us_p50) µs, p99 \(serial.rtt_us_p99) µs, max \(serial.rtt_us_max) µs
              encode+decode:  p50 \(serial.encode_decode_ns_p50) ns, p99 \(serial.encode_decode_ns_p99) ns per cycle
              frames:         \(serial.command_bytes_on_wire) B command, \(serial.state_bytes_on_wire) B state on the wire
              allocations:    \(serial.allocs_per_cycle) per cycle
            EtherCAT over UDP on loopback, \(ethercat.slaves) CiA 402 slaves (\(ethercat.exchanges) exchanges, \(ethercat.timeouts) timeouts, \(ethercat.wkc_shortfalls) WKC shortfalls)
              round trip:     p50 \(ethercat.rtt_us_p50) µs, p99 \(ethercat.rtt_us_p99) µs, max \(ethercat.rtt_us_max) µs
              encode+decode:  p50 \(ethercat.encode_decode_ns_p50) ns, p99 \(ethercat.encode_decode_ns_p99) ns per cycle
              frame:          \(ethercat.frame_bytes) B LRW
              allocations:    \(ethercat.allocs_per_cycle) per cycle
            """)
        }
    }

    /// EtherCAT over UDP to the emulated segment: one LRW per exchange.
    private func measureEtherCAT(axes: [AxisSpec]) throws -> EtherCATFigures {
        let segment = EtherCATSegment(axes: axes)
        let server: EtherCATUDPServer
        do { server = try EtherCATUDPServer(segment: segment) } catch { throw CommandFailure(error.description) }
        server.start()
        defer { server.stop() }
        var master: EtherCATMaster
        do { master = EtherCATMaster(transport: try EtherCATMaster.udpTransport(host: "127.0.0.1", port: server.port)) } catch { throw CommandFailure(error.description) }
        do { try master.configure(expectedSlaves: axes.count) } catch { throw CommandFailure(error.description) }
        Output.progress("bench link: \(exchanges) LRW exchanges over EtherCAT/UDP with \(axes.count) slaves")
        var rtt: [Double] = []
        rtt.reserveCapacity(exchanges)
        var timeouts = 0
        for k in 0..<(exchanges + 100) {
            let t0 = MonotonicClock.now()
            _ = master.sendProcessData()
            var result = EtherCATMaster.Exchange.noReply
            let deadline = t0 + 50_000_000
            while result == .noReply, MonotonicClock.now() < deadline {
                _ = master.waitReadable(timeout: 1_000_000)
                result = master.receiveProcessData()
            }
            let t1 = MonotonicClock.now()
            if k < 100 { continue }
            if result == .ok { rtt.append(Double(t1 - t0) / 1000) } else { timeouts += 1 }
        }
        lumen_alloc_count_begin()
        for _ in 0..<1000 {
            _ = master.sendProcessData()
            _ = master.waitReadable(timeout: 5_000_000)
            _ = master.receiveProcessData()
        }
        let allocations = lumen_alloc_count_end()
        // Host codec alone: build the LRW, then take a reply, in memory.
        let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: 1536, alignment: 8)
        defer { reply.deallocate() }
        var perCycle: [Double] = []
        var frameBytes = 0
        for _ in 0..<300 {
            let t0 = MonotonicClock.now()
            for _ in 0..<200 {
                var b = EtherCAT.FrameBuilder(buffer: reply)
                if let d = b.append(raw: 12, index: 0x80, address: 0, data: nil, length: axes.count * 23) {
                    for k in 0..<(axes.count * 11) { reply[d.dataOffset + k] = master.outputs[k] }
                }
                frameBytes = b.finish()
                _ = EtherCAT.forEachDatagram(in: UnsafeRawBufferPointer(rebasing: reply[0..<frameBytes])) { d in
                    for k in 0..<(axes.count * 12) { master.inputs[k] = reply[d.dataOffset + axes.count * 11 + k] }
                }
            }
            perCycle.append(Double(MonotonicClock.now() - t0) / 200)
        }
        return EtherCATFigures(
            transport: "UDP on loopback to emulated ESCs with CiA 402 drives", slaves: axes.count, exchanges: rtt.count,
            rtt_us_p50: round1(percentile(rtt, 50)), rtt_us_p99: round1(percentile(rtt, 99)), rtt_us_max: round1(percentile(rtt, 100)), timeouts: timeouts,
            wkc_shortfalls: master.stats.workingCounterShortfalls,
            encode_decode_ns_p50: round1(percentile(perCycle, 50)), encode_decode_ns_p99: round1(percentile(perCycle, 99)),
            allocs_per_cycle: Double(allocations) / 1000, frame_bytes: frameBytes)
    }

    /// Times encoding a COMMAND and decoding a STATE (what the host does per cycle), in batches.
    private func measureCodec(axes n: Int) -> (p50: Double, p99: Double, commandBytes: Int, stateBytes: Int) {
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: DriveLink.maxFrame + 16, alignment: 8)
        let wire = UnsafeMutableRawBufferPointer.allocate(byteCount: DriveLink.maxWireFrame, alignment: 8)
        let stateWire = UnsafeMutableRawBufferPointer.allocate(byteCount: DriveLink.maxWireFrame, alignment: 8)
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: DriveLink.maxPayload, alignment: 8)
        defer { scratch.deallocate(); wire.deallocate(); stateWire.deallocate(); payload.deallocate() }
        payload.initializeMemory(as: UInt8.self, repeating: 0x5A)
        let stateSize = 4 + CyclicImage.stateSize(axes: n) + 4
        let stateLen = DriveLink.encode(type: .state, seq: 1, payload: UnsafeRawBufferPointer(rebasing: payload[0..<stateSize]), scratch: scratch, into: stateWire)!
        var command = JointCommand(jointCount: n)
        command.mode = .position
        command.position = JointVector(count: n, repeating: 1.25)
        let cpu = JointVector(count: n, repeating: 1000)
        var state = JointState(jointCount: n)
        var perCycle: [Double] = []
        var commandLen = 0
        for _ in 0..<300 {
            let t0 = MonotonicClock.now()
            for k in 0..<200 {
                _ = CyclicImage.encodeCommand(command, countsPerUnit: cpu, into: payload)
                commandLen = DriveLink.encode(type: .command, seq: UInt16(k), payload: UnsafeRawBufferPointer(rebasing: payload[0..<CyclicImage.commandSize(axes: n)]),
                                              scratch: scratch, into: wire) ?? 0
                if case .success(let f) = DriveLink.decode(UnsafeRawBufferPointer(rebasing: stateWire[0..<(stateLen - 1)]), scratch: scratch) {
                    _ = CyclicImage.decodeState(UnsafeRawBufferPointer(rebasing: scratch[(f.payloadOffset + 4)...]), countsPerUnit: cpu, into: &state)
                }
            }
            perCycle.append(Double(MonotonicClock.now() - t0) / 200)
        }
        return (round1(percentile(perCycle, 50)), round1(percentile(perCycle, 99)), commandLen, stateLen)
    }
}
