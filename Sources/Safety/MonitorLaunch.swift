import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a process that starts the safety monitor (`lumen-safety`) prepares for it: a short
/// private directory (mode 0700) for the monitor's and the drives' sockets and the monitor's
/// log, and a fresh channel key of mode 0600 that only this run's parties read. The live
/// runtime and the HIL runner start the monitor the same way, so a bench tests the launch a
/// patient's run uses (docs/safety/channel.md).
public struct MonitorLaunch: Sendable {
    public let directory: String
    public let listenPath: String
    public let drivesPath: String
    /// Where the monitor sends its status (the control process binds it).
    public let statusPath: String
    public let keyPath: String
    public let logPath: String
    public let key: ChannelKey

    public struct SetupError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Creates `/tmp/<prefix>-<pid>-<random>` and writes a fresh 32-byte key into it. Socket
    /// paths are limited to 107 bytes, hence /tmp and a short name.
    public init(prefix: String) throws(SetupError) {
        let dir = "/tmp/\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(dir, 0o700) == 0 else { throw SetupError(description: "cannot create \(dir): \(String(cString: strerror(errno)))") }
        directory = dir
        listenPath = dir + "/monitor/m.sock"
        drivesPath = dir + "/d.sock"
        statusPath = dir + "/s.sock"
        keyPath = dir + "/channel.key"
        logPath = dir + "/monitor.log"
        var secret = [UInt8](repeating: 0, count: ChannelKey.minimumLength)
        var rng = SystemRandomNumberGenerator()
        for i in secret.indices { secret[i] = UInt8.random(in: 0...255, using: &rng) }
        // O_EXCL: a key file that exists already was not written by this run.
        let fd = open(keyPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SetupError(description: "cannot create the channel key \(keyPath): \(String(cString: strerror(errno)))") }
        let wrote = secret.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard wrote == secret.count else { throw SetupError(description: "cannot write the channel key \(keyPath)") }
        key = ChannelKey(secret: secret)
    }

    /// The monitor's command line on limits file `config`; it exits when process `parent` does.
    public func arguments(config: String, parent: Int32 = getpid()) -> [String] {
        ["--config", config, "--listen", listenPath, "--drives", drivesPath, "--status", statusPath, "--key", keyPath,
         "--exit-with-parent", String(parent)]
    }

    /// `lumen-safety` beside the running executable (or up to three folders above it: a test
    /// bundle's runner).
    public static func executableBesideThisOne() -> String? {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("lumen-safety").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// Puts the monitor process `pid` on SCHED_FIFO at `priority`: a monitor the scheduler holds
    /// back sees old heartbeats and removes power. A warning when not permitted.
    public static func setFIFO(pid: Int32, priority: Int32) -> String? {
        var param = sched_param(sched_priority: priority)
        if sched_setscheduler(pid, SCHED_FIFO, &param) != 0 {
            return "the monitor stays on SCHED_OTHER: SCHED_FIFO \(priority) not permitted (\(String(cString: strerror(errno))))"
        }
        return nil
    }
}
