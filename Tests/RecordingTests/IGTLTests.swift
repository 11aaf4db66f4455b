import Core
import Foundation
import Runtime
import Testing
@testable import Recording

struct IGTLCodecTests {
    @Test func crc64MatchesTheSpecCheckValue() {
        #expect(IGTLCodec.crc64(Array("123456789".utf8)) == 0x6C40_DF5F_0B49_7347)
    }

    static func decode(_ m: [UInt8]) throws(IGTLError) -> IGTLMessage {
        try m.withUnsafeBytes { b in Result { () throws(IGTLError) in try IGTLCodec.decode(b) } }.get()
    }

    @Test(arguments: [UInt16(1), 2]) func messagesRoundTrip(version: UInt16) throws {
        let t = IGTLCodec.message(type: "TRANSFORM", device: "Tool", timestamp: 1, content: IGTLCodec.transformContent(translation: SIMD3(1, 2, 3)),
                                  version: version, metadata: version == 2 ? [("a", "b")] : [])
        #expect(try Self.decode(t) == .transform(device: "Tool", [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3]))
        let p = IGTLPoint(name: "target", group: "g", position: SIMD3(4, 5, 6), diameter: 2, owner: "o")
        let pm = IGTLCodec.message(type: "POINT", device: "T", timestamp: 1, content: IGTLCodec.pointContent([p, p]), version: version)
        #expect(try Self.decode(pm) == .point(device: "T", [p, p]))
        let s = IGTLCodec.message(type: "STATUS", device: "S", timestamp: 1, content: IGTLCodec.statusContent(code: 5, subcode: -1, name: "DENIED", message: "no"),
                                  version: version)
        #expect(try Self.decode(s) == .status(device: "S", code: 5, subcode: -1, name: "DENIED", message: "no"))
        let q = IGTLCodec.message(type: "GET_STATUS", device: "", timestamp: 1, content: [], version: version)
        #expect(try Self.decode(q) == .query(device: "", prefix: "GET_", type: "STATUS"))
        let str = IGTLCodec.message(type: "STRING", device: "x", timestamp: 1, content: IGTLCodec.stringContent("héllo"), version: version)
        #expect(try Self.decode(str) == .string(device: "x", "héllo"))
    }

    @Test func badInputIsATypedErrorNeverACrash() {
        let good = IGTLCodec.message(type: "TRANSFORM", device: "Tool", timestamp: 1, content: IGTLCodec.transformContent(translation: SIMD3(1, 2, 3)), version: 1)
        #expect(throws: IGTLError.truncated(need: 58, have: 10)) { try Self.decode(Array(good.prefix(10))) }
        #expect(throws: IGTLError.truncated(need: good.count, have: good.count - 1)) { try Self.decode(Array(good.dropLast())) }
        var crc = good
        crc[70] ^= 1
        #expect(throws: IGTLError.self) { try Self.decode(crc) }
        var version = good
        version[1] = 9
        #expect(throws: IGTLError.unsupportedVersion(9)) { try Self.decode(version) }
        var huge = good
        for k in 42..<50 { huge[k] = 0xFF }
        #expect(throws: IGTLError.self) { try Self.decode(huge) }
        let short = IGTLCodec.message(type: "TRANSFORM", device: "x", timestamp: 1, content: [0, 0, 0, 0], version: 1)
        #expect(throws: IGTLError.self) { try Self.decode(short) }
        let nan = IGTLCodec.message(type: "POINT", device: "x", timestamp: 1,
                                    content: IGTLCodec.pointContent([IGTLPoint(name: "n", position: SIMD3(.nan, 0, 0))]), version: 1)
        #expect(throws: IGTLError.self) { try Self.decode(nan) }
        // v3 extended header sizes that do not fit the body.
        var ext = IGTLCodec.message(type: "STRING", device: "x", timestamp: 1, content: IGTLCodec.stringContent("a"), version: 2)
        ext[58 + 2] = 0xFF
        let body = Array(ext[58...])
        let c = IGTLCodec.crc64(body)
        for k in 0..<8 { ext[50 + k] = UInt8(truncatingIfNeeded: c >> (56 - 8 * UInt64(k))) }
        #expect(throws: IGTLError.badField("extended header sizes")) { try Self.decode(ext) }
    }
}

/// The server against the independent client (PyPI pyigtl) and against clients that misbehave.
struct IGTLServerTests {
    static func server(acceptTargets: Bool, size: Int = 256, maximumClients: Int = 4, queue: Int = 16 << 20,
                       stall: Nanoseconds = 2 * .perSecond) throws -> (SyntheticRun, IGTLServer) {
        let run = try RecorderTests.synthetic(planes: 1, size: size, pool: 4, track: false)
        var s = IGTLServerSettings()
        s.port = 0
        s.acceptTargets = acceptTargets
        s.maximumClients = maximumClients
        s.sendQueueBytes = queue
        s.stallTimeout = stall
        let server = try IGTLServer(port: run, settings: s)
        run.start()
        server.start()
        return (run, server)
    }

    @Test func pyigtlReceivesTheTipAndFramesAndATargetIsAcceptedWhenEnabled() throws {
        let (run, server) = try Self.server(acceptTargets: true)
        defer { server.stop(); run.stop() }
        let out = try Support.python("scripts/igtl_peer.py", ["\(server.boundPort)"], timeout: 90)
        #expect(out.status == 0, "\(out.stdout) \(out.stderr)")
        let j = try #require(out.json)
        #expect((j["tip"] as? [Double])?.count == 3)
        #expect(j["image_shape"] as? [Int] == [1, 256, 256])
        #expect((j["image_max"] as? Int ?? 0) > 0)
        #expect(abs((j["image_spacing"] as? Double ?? 0) - 1.2) < 1e-4)
        #expect((j["reply"] as? String)?.hasPrefix("accepted") == true)
        let accepted = run.acceptedIntents
        #expect(accepted.count == 1)
        if case .target = accepted.first?.0 {} else { Issue.record("no target intent: \(accepted)") }
        #expect(accepted.first?.1?.role == .automation)
        #expect(accepted.first?.1?.source.hasPrefix("igtl 127.0.0.1:") == true)
        #expect(server.stats.targetsAccepted == 1)
    }

    @Test func aTargetIsRefusedAndTheClientToldSoWhenNotEnabled() throws {
        let (run, server) = try Self.server(acceptTargets: false)
        defer { server.stop(); run.stop() }
        let out = try Support.python("scripts/igtl_peer.py", ["\(server.boundPort)"], timeout: 90)
        #expect(out.status == 0, "\(out.stdout) \(out.stderr)")
        let reply = out.json?["reply"] as? String ?? ""
        #expect(reply.hasPrefix("refused") && reply.contains("not enabled"), "\(reply)")
        #expect(run.acceptedIntents.isEmpty)
        #expect(server.stats.targetsRefused == 1)
    }

    static func connect(_ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(rc == 0)
        return fd
    }

    /// Reads what arrives within `seconds`; counts bytes.
    static func drain(_ fd: Int32, seconds: Double) -> Int {
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var total = 0
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            if n > 0 { total += n }
        }
        return total
    }

    @Test func aClientThatDoesNotReadIsDroppedAndTheOthersAreServed() throws {
        // The default stall timeout (2 s), not less: the reading client's thread, starved that
        // long on a loaded machine, would be dropped as not reading too.
        let (run, server) = try Self.server(acceptTargets: false, size: 512, queue: 1 << 20)
        defer { server.stop(); run.stop() }
        let slow = try Self.connect(server.boundPort)
        defer { close(slow) }
        // A tiny receive window so that the kernel's buffers fill soon.
        var small: Int32 = 4096
        setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let reader = try Self.connect(server.boundPort)
        defer { close(reader) }
        var got = 0
        // Until the slow client is dropped (the kernel absorbs a few MB first); bounded, not timed.
        for _ in 0..<60 where server.stats.dropped == 0 { got += Self.drain(reader, seconds: 0.5) }
        got += Self.drain(reader, seconds: 0.5)
        let stats = server.stats
        #expect(stats.dropped == 1, "\(stats)")
        #expect(stats.imagesSkipped > 0, "\(stats)")
        #expect(got > 4 * 512 * 512 * 2, "the reading client got \(got) bytes")
    }

    @Test func connectionsBeyondTheLimitAreToldAndClosed() throws {
        let (run, server) = try Self.server(acceptTargets: false, maximumClients: 1)
        defer { server.stop(); run.stop() }
        let first = try Self.connect(server.boundPort)
        defer { close(first) }
        Thread.sleep(forTimeInterval: 0.2)
        let second = try Self.connect(server.boundPort)
        defer { close(second) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(second, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(second, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        let m = try IGTLCodecTests.decode(bytes)
        guard case .status(_, let code, _, let name, _) = m else { Issue.record("got \(m)"); return }
        #expect(code == 11 && name == "TOO_MANY_CLIENTS")
        #expect(server.stats.refusedConnections == 1)
    }

    @Test func aCorruptMessageIsAnsweredWithAStatusAndServingGoesOn() throws {
        let (run, server) = try Self.server(acceptTargets: true)
        defer { server.stop(); run.stop() }
        let fd = try Self.connect(server.boundPort)
        defer { close(fd) }
        var m = IGTLCodec.message(type: "POINT", device: "x", timestamp: 1,
                                  content: IGTLCodec.pointContent([IGTLPoint(name: "t", position: SIMD3(1, 2, 3))]), version: 1)
        m[m.count - 1] ^= 0xFF
        _ = m.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        #expect(Self.drain(fd, seconds: 1) > 0)
        #expect(server.stats.decodeErrors == 1)
        #expect(run.acceptedIntents.isEmpty)
    }
}

/// The OpenIGTLink library's own example client (Debian's openigtlink-examples, built against
/// libopenigtlink-dev, OpenIGTLink 1.11: protocol v2) receiving from the server set to v2.
struct IGTLReferenceClientTests {
    static let source = "/usr/share/doc/openigtlink-examples/examples/Receiver/ReceiveClient.cxx"

    @Test func theReferenceLibrarysReceiveClientDecodesWhatIsServed() throws {
        try #require(FileManager.default.fileExists(atPath: Self.source) && FileManager.default.fileExists(atPath: "/usr/include/openigtlink"),
                     "install openigtlink-examples and libopenigtlink-dev (scripts/setup.sh does)")
        let s = try Support.Scratch()
        let binary = s.path("ReceiveClient")
        let build = try Support.run("/usr/bin/env", ["g++", "-O1", "-I/usr/include/openigtlink", Self.source, "-lOpenIGTLink", "-o", binary])
        try #require(build.status == 0, "\(build.stderr)")
        let run = try RecorderTests.synthetic(planes: 1, size: 128, pool: 2, track: true)
        var settings = IGTLServerSettings()
        settings.port = 0
        settings.protocolVersion = 2
        settings.tipRate = 20
        let server = try IGTLServer(port: run, settings: settings)
        run.start()
        server.start()
        defer { server.stop(); run.stop() }
        // The example client runs until killed; what it decoded is on its stderr.
        let out = try Support.run(binary, ["127.0.0.1", "\(server.boundPort)"], timeout: 4)
        let text = out.stderr
        for expected in ["Receiving TRANSFORM data type.", "Receiving IMAGE data type.", "Receiving STATUS data type.", "Receiving POINT data type.",
                         "Dimensions            : (128, 128, 1)", " Error Name: OK", " GroupName : route"] {
            #expect(text.contains(expected), "the reference client did not print '\(expected)'")
        }
        // It prints a transform's matrix (on stdout) only when the body passed its CRC check.
        #expect(out.stdout.contains("=============\n1, 0, 0, "), "\(out.stdout.prefix(2000))")
    }
}
