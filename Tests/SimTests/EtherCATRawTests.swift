import Core
import Foundation
import Testing
@testable import Drivers
@testable import Sim

/// Runs a command; returns its exit status and what it printed.
@discardableResult
func sh(_ args: [String]) throws -> (status: Int32, out: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

let isRoot = geteuid() == 0
let hasTools = (try? sh(["which", "ip", "tshark"]).status) == 0

/// EtherCAT on raw Ethernet: the master on one end of a veth pair, the emulated slaves on the
/// other end inside a network namespace the test creates; tshark captures the line and must
/// dissect every frame as EtherCAT with the right commands and working counters.
@Suite(.serialized, .enabled(if: isRoot && hasTools, "needs root (veth, network namespace, raw sockets) and ip + tshark"))
struct EtherCATRawTests {
    let ns = "lumen-ecat-\(getpid())"
    var master: String { "lem\(getpid() % 100_000)" }
    var slave: String { "les\(getpid() % 100_000)" }

    func setUpLine() throws {
        try sh(["ip", "netns", "del", ns])
        for cmd in [["ip", "netns", "add", ns],
                    ["ip", "link", "add", master, "type", "veth", "peer", "name", slave],
                    ["ip", "link", "set", slave, "netns", ns],
                    ["ip", "link", "set", master, "up"],
                    ["ip", "netns", "exec", ns, "ip", "link", "set", slave, "up"]] {
            let r = try sh(cmd)
            try #require(r.status == 0, "\(cmd.joined(separator: " ")): \(r.out)")
        }
    }

    func tearDownLine() { _ = try? sh(["ip", "netns", "del", ns]); _ = try? sh(["ip", "link", "del", master]) }

    @Test func masterBringsSlavesToOPOverRawEthernetAndTsharkDissectsTheFrames() throws {
        try setUpLine()
        defer { tearDownLine() }
        // On the frame clock: a test thread or server thread stalled past the 100 ms
        // sync-manager watchdog on a loaded machine would otherwise drop the slaves to SAFE-OP
        // mid-run, and the line under test here is the bytes, not the timing.
        let segment = EtherCATSegment(axes: (0..<3).map { AxisSpec(name: "a\($0)", unit: .millimetre, lower: -10, upper: 10, maxVelocity: 5, countsPerUnit: 1000) },
                                      clock: .processDataFrames(period: 1_000_000))
        let server = EtherCATRawServer(segment: segment, interface: slave, namespace: ns)
        try server.start()
        defer { server.stop() }

        // Capture the master's side of the line.
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-ecat-\(UUID()).pcapng").path
        let tshark = Process()
        tshark.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        tshark.arguments = ["tshark", "-q", "-i", master, "-w", capture]
        tshark.standardError = FileHandle.nullDevice
        tshark.standardOutput = FileHandle.nullDevice
        try tshark.run()
        defer { if tshark.isRunning { tshark.terminate() } }
        // tshark creates its file once it listens; wait for that (bounded), then a little more.
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, ((try? FileManager.default.attributesOfItem(atPath: capture)[.size] as? Int) ?? 0) == 0 {
            Thread.sleep(forTimeInterval: 0.1)
        }
        try #require(tshark.isRunning, "tshark did not start capturing on \(master)")
        Thread.sleep(forTimeInterval: 1)

        var m = try EtherCATMaster.raw(interface: master)
        // Set-up replies may take a loaded machine longer than the 20 ms default.
        m.setupTimeout = 1_000_000_000
        try m.configure(expectedSlaves: 3)
        var ok = 0
        for _ in 0..<50 {
            _ = m.sendProcessData()
            // Lockstep: each exchange waits for its reply (a loaded machine may hold the slaves'
            // thread for tens of ms; 2 s is there only so that a lost frame cannot hang the test).
            _ = m.transport.waitReadable(timeout: 2_000_000_000)
            if m.receiveProcessData() == .ok { ok += 1 }
        }
        #expect(ok == 50, "\(m.stats)")
        for i in 0..<3 { #expect(segment.alStatus(i).state == ALState.op.rawValue) }

        // Stop the capture once it holds the cyclic replies, not after a fixed pause: a capture
        // process the scheduler holds back writes them late (bounded: it may have lost some).
        func lrwReplies() -> Int {
            let r = try? sh(["tshark", "-r", capture, "-Y", "ecat.cmd == 0x0c && ecat.cnt == 9", "-T", "fields", "-e", "ecat.cnt"])
            return r?.out.split(separator: "\n").filter { $0 == "9" }.count ?? 0
        }
        let captureBy = Date().addingTimeInterval(20)
        while lrwReplies() < 50, Date() < captureBy { Thread.sleep(forTimeInterval: 0.2) }
        // SIGTERM makes tshark flush and close its file (SIGINT may be ignored in a child).
        tshark.terminate()
        let stopBy = Date().addingTimeInterval(10)
        while tshark.isRunning, Date() < stopBy { Thread.sleep(forTimeInterval: 0.05) }
        if tshark.isRunning { kill(tshark.processIdentifier, SIGKILL) }
        defer { try? FileManager.default.removeItem(atPath: capture) }

        let r = try sh(["tshark", "-r", capture, "-Y", "ecat", "-T", "fields", "-e", "eth.src", "-e", "ecat.cmd", "-e", "ecat.cnt"])
        try #require(r.status == 0, "\(r.out)")
        let rows = r.out.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }.filter { $0.count == 3 }
        // Replies are the frames whose source address has bit 1 set by the slaves.
        let replies = rows.filter { (UInt8($0[0].prefix(2), radix: 16) ?? 0) & 0x02 != 0 }
        #expect(rows.count >= 2 * (50 + 10), "captured \(rows.count) EtherCAT frames")
        // tshark prints the command as hex ("0x07") and the working counter as a number.
        func wkcs(_ cmd: EtherCAT.Command) -> [Int] {
            replies.filter { Int($0[1].replacingOccurrences(of: "0x", with: ""), radix: 16) == Int(cmd.rawValue) }.compactMap { Int($0[2]) }
        }
        #expect(wkcs(.brd).contains(3), "the scan's BRD is answered by all three slaves")
        #expect(wkcs(.apwr) == [1, 1, 1], "each APWR station address reaches one slave")
        #expect(!wkcs(.fpwr).isEmpty && wkcs(.fpwr).allSatisfy { $0 == 1 })
        #expect(!wkcs(.fprd).isEmpty && wkcs(.fprd).allSatisfy { $0 == 1 })
        // Cyclic LRWs in OP: 3 per slave.
        #expect(wkcs(.lrw).filter { $0 == 9 }.count >= 50)
    }
}
