import Core
import Foundation
import Testing
@testable import Safety

/// The monitor's channel on real sockets, in this process: the directory and the lock, who may
/// send, forged tags, replays and floods.
@Suite(.serialized) struct ChannelSocketTests {
    /// A fresh directory under /tmp (socket paths are limited to 107 bytes); not created.
    func freshPath() -> String { "/tmp/lumen-chan-\(UInt32.random(in: 0...UInt32.max))" }

    func monitor(in dir: String, policy: ChannelPolicy? = nil) throws -> MonitorProcess {
        try MonitorProcess(model: try Fixture.model(), listen: dir + "/m.sock", drives: dir + "/d.sock",
                           policy: try policy ?? ChannelPolicy(key: Fixture.key))
    }

    func send(_ d: [UInt8], to path: String) -> Bool {
        guard let s = try? DatagramSocket(bindTo: nil) else { return false }
        return d.withUnsafeBytes { s.send($0, to: path) }
    }

    func mode(_ path: String) -> UInt32 {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt32(st.st_mode & 0o7777) : 0
    }

    @Test func theMonitorMakesItsOwnPrivateDirectoryAndRemovesOnlyItsSocket() throws {
        let dir = freshPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var m: MonitorProcess? = try monitor(in: dir)
        #expect(mode(dir) == 0o700)
        #expect(mode(dir + "/m.sock") == 0o600)
        m = nil
        #expect(!FileManager.default.fileExists(atPath: dir + "/m.sock"))
        #expect(FileManager.default.fileExists(atPath: dir + "/m.sock.lock"), "the lock file stays")
        // A socket that was replaced by a regular file while it ran is left alone.
        m = try monitor(in: dir)
        unlink(dir + "/m.sock")
        try "not yours".write(toFile: dir + "/m.sock", atomically: false, encoding: .utf8)
        m = nil
        #expect(try String(contentsOfFile: dir + "/m.sock", encoding: .utf8) == "not yours")
        _ = m
    }

    @Test func aFIFOAtTheSocketPathIsRefusedNamingWhatItIs() throws {
        let dir = freshPath()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(mkfifo(dir + "/m.sock", 0o600) == 0)
        #expect { _ = try monitor(in: dir) } throws: { e in
            guard case .directory(.occupied(_, "a FIFO (named pipe)"))? = e as? MonitorProcess.StartError else { return false }
            return true
        }
    }

    @Test func aRegularFileAtTheSocketPathIsRefusedAndKept() throws {
        let dir = freshPath()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "precious".write(toFile: dir + "/m.sock", atomically: false, encoding: .utf8)
        #expect { _ = try monitor(in: dir) } throws: { e in
            guard case .directory(.occupied(_, "a regular file"))? = e as? MonitorProcess.StartError else { return false }
            return true
        }
        #expect(try String(contentsOfFile: dir + "/m.sock", encoding: .utf8) == "precious")
        // A stale socket a dead monitor left is ours to replace.
        unlink(dir + "/m.sock")
        let stale = try DatagramSocket(bindTo: dir + "/m.sock")
        #expect(throws: Never.self) { _ = try monitor(in: dir) }
        _ = stale
    }

    @Test func directoriesOthersCouldWriteOrThatAreNotOursAreRefused() throws {
        for (what, setUp) in [("world-writable", { (d: String) in chmod(d, 0o777) }), ("group-writable", { chmod($0, 0o770) }),
                              ("another user's", { chown($0, 65534, 65534) })] as [(String, (String) -> Int32)] {
            if what == "another user's", geteuid() != 0 {
                print("skipped: \(what) directory needs root to chown")
                continue
            }
            let dir = freshPath()
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            #expect(setUp(dir) == 0)
            #expect(throws: MonitorProcess.StartError.self, "\(what)") { _ = try monitor(in: dir) }
            #expect(!FileManager.default.fileExists(atPath: dir + "/m.sock"))
        }
        // /tmp itself: anyone may write there.
        #expect(throws: MonitorProcess.StartError.self) {
            _ = try MonitorProcess(model: try Fixture.model(), listen: "/tmp/lumen-m-\(UInt32.random(in: 0...UInt32.max)).sock",
                                   drives: "/tmp/d.sock", policy: try ChannelPolicy(key: Fixture.key))
        }
    }

    @Test func aConfiguredGroupMayShareTheDirectoryAndNoOtherGroup() throws {
        guard geteuid() == 0 else {
            print("skipped: needs root to give directories to another group")
            return
        }
        let group: UInt32 = 65534
        let dir = freshPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var m: MonitorProcess? = try monitor(in: dir, policy: try ChannelPolicy(key: Fixture.key, group: group))
        var st = stat()
        #expect(lstat(dir, &st) == 0 && st.st_gid == group && mode(dir) == 0o770)
        #expect(mode(dir + "/m.sock") == 0o660)
        m = nil
        // The group's directory is refused to a monitor configured without it, or with another.
        #expect(throws: MonitorProcess.StartError.self) { _ = try monitor(in: dir) }
        #expect(throws: MonitorProcess.StartError.self) { _ = try monitor(in: dir, policy: try ChannelPolicy(key: Fixture.key, group: 4242)) }
        #expect(throws: Never.self) { _ = try monitor(in: dir, policy: try ChannelPolicy(key: Fixture.key, group: group)) }
        _ = m
    }

    @Test func aSecondMonitorIsRefusedAndTheFirstKeepsWorking() throws {
        let dir = freshPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try monitor(in: dir)
        #expect { _ = try monitor(in: dir) } throws: { ($0 as? MonitorProcess.StartError)?.isAlreadyRunning ?? false }
        #expect(FileManager.default.fileExists(atPath: dir + "/m.sock"))
        #expect(send(Forge.heartbeat(sequence: 1, sentAt: 5, counter: UInt64(MonotonicClock.now())), to: dir + "/m.sock"))
        _ = first.cycle(now: MonotonicClock.now())
        #expect(first.heartbeats == 1)
    }

    @Test func forgedTagsAndReplaysAreCountedAndPowerNothing() throws {
        let dir = freshPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = try monitor(in: dir)
        let path = dir + "/m.sock"
        let stolen = ChannelKey(secret: [UInt8](repeating: 7, count: 32))
        var c = UInt64(MonotonicClock.now())
        func next() -> UInt64 { c += 1; return c }
        // Captured from the real console, then replayed.
        let press = Forge.operatorInput(deadman: true, acknowledge: true, counter: next())
        let release = Forge.operatorInput(deadman: true, acknowledge: false, counter: next())
        #expect(send(press, to: path) && send(release, to: path))
        _ = m.cycle(now: MonotonicClock.now())
        #expect(m.operatorInputs == 2)
        for _ in 0..<10 {
            #expect(send(press, to: path) && send(release, to: path))
            #expect(send(Forge.operatorInput(deadman: true, acknowledge: true, counter: next(), key: stolen), to: path))
            #expect(send(Forge.heartbeat(sequence: c, sentAt: 5, counter: next(), key: stolen), to: path))
            #expect(send(Forge.sample(sampledAt: Int64(c), counter: next(), key: stolen), to: path))
            _ = m.cycle(now: MonotonicClock.now())
        }
        #expect(m.rejectedReplay == 20)
        #expect(m.rejectedTag == 30)
        #expect(m.operatorInputs == 2 && m.heartbeats == 0 && m.driveSamples == 0)
        #expect(m.permitsWithPower == 0)
    }

    @Test func aFloodIsDrainedAtMost64PerCycleAndPowersNothing() throws {
        let dir = freshPath()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = try monitor(in: dir)
        let sender = try DatagramSocket(bindTo: nil)
        let stolen = ChannelKey(secret: [UInt8](repeating: 7, count: 32))
        var forged: [[UInt8]] = []
        for k in 0..<64 {
            let c = UInt64(MonotonicClock.now()) + UInt64(k)
            forged.append(Forge.operatorInput(deadman: true, acknowledge: k % 2 == 0, counter: c, key: stolen))
            forged.append(Forge.heartbeat(sequence: UInt64(k), sentAt: 5, counter: c, key: stolen))
            forged.append([UInt8](repeating: UInt8(k), count: 40))
        }
        var sent = 0
        var maxPerCycle: Int64 = 0
        for round in 0..<200 {
            // Fill the socket until the kernel refuses more.
            var k = round
            while forged[k % forged.count].withUnsafeBytes({ sender.send($0, to: dir + "/m.sock") }) {
                sent += 1
                k += 1
                if k - round > 2000 { break }
            }
            let before = m.rejectedTag + m.invalidDatagrams
            _ = m.cycle(now: MonotonicClock.now())
            maxPerCycle = max(maxPerCycle, m.rejectedTag + m.invalidDatagrams - before)
        }
        #expect(sent > 1000)
        #expect(maxPerCycle <= 64)
        #expect(m.cycles == 200)
        #expect(m.permitsWithPower == 0)
        #expect(m.operatorInputs == 0 && m.heartbeats == 0)
        print("flood: \(sent) forged datagrams sent, \(m.rejectedTag) rejected by tag, \(m.invalidDatagrams) invalid, at most \(maxPerCycle) per cycle")
    }

    /// A sender of another user (`nobody`) with the right key and fresh counters: the
    /// directory and the socket's mode keep it out; opened up as a careless umask once did, the
    /// credential check alone still refuses every datagram.
    @Test func aSenderOfAnotherUserIsRefusedEvenWithTheKey() throws {
        guard let nobody = NobodySender() else { return }
        let dir = freshPath()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = try monitor(in: dir)
        let path = dir + "/m.sock"
        let records = NobodySender.keyedDatagrams(300)
        func runAsNobody() throws -> (sent: Int, refused: Int) {
            try nobody.send(records, to: path, staging: dir) { _ = m.cycle(now: MonotonicClock.now()) }
        }
        // First line: the socket's own mode.
        let closed = try runAsNobody()
        #expect(closed.sent == 0 && closed.refused == 300)
        // Opened up: the kernel delivers, the credentials refuse.
        #expect(chmod(path, 0o666) == 0)
        let open = try runAsNobody()
        #expect(open.sent == 300)
        #expect(m.rejectedCredentials == 300)
        #expect(m.driveSamples == 0 && m.heartbeats == 0 && m.operatorInputs == 0)
        #expect(m.permitsWithPower == 0)
        // The same datagrams from the monitor's own user are taken: the test can fail.
        for d in records {
            _ = send(d, to: path)
            _ = m.cycle(now: MonotonicClock.now())
        }
        for _ in 0..<10 { _ = m.cycle(now: MonotonicClock.now()) }
        #expect(m.driveSamples + m.heartbeats + m.operatorInputs == 300)
    }
}

/// Sends datagrams as user `nobody` (uid 65534) from a child process: `setpriv` drops to it and
/// a small Python sender writes them to the socket. Absent (with the reason printed) when this
/// process is not root or either program is missing.
struct NobodySender {
    static let setpriv = "/usr/bin/setpriv", python = "/usr/bin/python3"

    init?() {
        guard geteuid() == 0 else {
            print("skipped: needs root to run a sender as nobody")
            return nil
        }
        guard FileManager.default.isExecutableFile(atPath: Self.setpriv), FileManager.default.isExecutableFile(atPath: Self.python) else {
            print("skipped: needs \(Self.setpriv) and \(Self.python)")
            return nil
        }
    }

    /// What a sender holding the key would send: samples, heartbeats, deadman + acknowledge,
    /// with fresh counters.
    static func keyedDatagrams(_ count: Int) -> [[UInt8]] {
        var c = UInt64(MonotonicClock.now()) + 1_000_000_000
        return (0..<count).map { k in
            c += 1
            switch k % 3 {
            case 0: return Forge.sample(sampledAt: Int64(c), counter: c)
            case 1: return Forge.heartbeat(sequence: c, sentAt: Int64(c), counter: c)
            default: return Forge.operatorInput(deadman: true, acknowledge: k % 2 == 0, counter: c)
            }
        }
    }

    static let script = """
    import socket, sys
    data = open(sys.argv[1], 'rb').read()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sent = refused = i = 0
    while i < len(data):
        n = data[i] | data[i + 1] << 8
        try:
            s.sendto(data[i + 2:i + 2 + n], sys.argv[2]); sent += 1
        except OSError:
            refused += 1
        i += 2 + n
    print(sent, refused)
    """

    /// Sends `datagrams` to `path` as nobody, calling `whileRunning` until the sender is done
    /// (a receiver must drain: a full socket blocks the sender). The datagrams are staged in
    /// `staging`, which nobody must be able to read. Returns (sent, refused by the kernel).
    func send(_ datagrams: [[UInt8]], to path: String, staging: String, whileRunning: () -> Void) throws -> (sent: Int, refused: Int) {
        var records = Data()
        for d in datagrams {
            records.append(UInt8(d.count & 0xff))
            records.append(UInt8(d.count >> 8))
            records.append(contentsOf: d)
        }
        let file = staging + "/forged-\(UInt32.random(in: 0...UInt32.max)).bin"
        _ = FileManager.default.createFile(atPath: file, contents: records, attributes: [.posixPermissions: 0o644])
        defer { try? FileManager.default.removeItem(atPath: file) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.setpriv)
        p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", Self.python, "-c", Self.script, file, path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        while p.isRunning {
            whileRunning()
            usleep(500)
        }
        for _ in 0..<20 { whileRunning() }
        let words = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(whereSeparator: { $0 == " " || $0 == "\n" })
        return (Int(words.first ?? "") ?? -1, Int(words.dropFirst().first ?? "") ?? -1)
    }
}
