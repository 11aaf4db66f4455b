import Control
import Core
import Foundation
import Safety
import Sim
import Scenarios
import Synchronization

/// The safety monitor as its own process (`lumen-safety`, the executable that links Safety,
/// Core and Drivers only), started and watched by the runtime. It gets a private directory for
/// its socket, a fresh channel key (mode 0600) and a limits file written for this run's robot and
/// route; its log goes to a file in that directory. The runtime never tells it anything but
/// what the channel carries; if it exits, the drives' permits stop and their safety lines remove
/// power by themselves.
public final class MonitorSupervisor: @unchecked Sendable {
    public let channel: MonitorLaunch
    public let limitsPath: String
    let process = Process()

    /// The `lumen-safety` beside the running executable (or beside a test bundle's runner).
    public static func defaultExecutable() -> String? { MonitorLaunch.executableBesideThisOne() }

    /// Prepares the directory, key and limits; `start` launches the process.
    public init(limits: String) throws(RuntimeError) {
        Self.removeStaleDirectories()
        do { channel = try MonitorLaunch(prefix: "lumen-live") } catch { throw .monitor(error.description) }
        limitsPath = channel.directory + "/limits.yaml"
        do { try limits.write(toFile: limitsPath, atomically: true, encoding: .utf8) } catch {
            throw .monitor("cannot write the monitor's limits \(limitsPath): \(error)")
        }
    }

    /// Launches `executable` on the channel.
    public func start(executable: String) throws(RuntimeError) {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw .monitor("no monitor executable at \(executable): build it (swift build --product lumen-safety)")
        }
        _ = FileManager.default.createFile(atPath: channel.logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = channel.arguments(config: limitsPath)
        process.standardOutput = FileHandle.nullDevice
        do {
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: channel.logPath))
            try process.run()
        } catch { throw .monitor("cannot start \(executable): \(error)") }
    }

    /// Puts the monitor's main thread (its loop) on SCHED_FIFO at `priority`; a warning when not permitted.
    public func setFIFO(priority: Int32) -> String? { MonitorLaunch.setFIFO(pid: process.processIdentifier, priority: priority) }

    public var isRunning: Bool { process.isRunning }
    public var processIdentifier: Int32 { process.processIdentifier }
    public var terminationStatus: Int32? { process.isRunning ? nil : process.terminationStatus }
    public var log: String { (try? String(contentsOfFile: channel.logPath, encoding: .utf8)) ?? "" }

    /// Stopped by the scheduler (SIGSTOP, `hang`): resumed before it is asked to stop.
    let hung = Atomic<Bool>(false)

    /// Fault injection (HIL, tests): the monitor killed, as a crash would (SIGKILL: no last
    /// permit), or hung (SIGSTOP: its process and socket still there, nothing answered).
    public func injectFault(hang: Bool) {
        guard process.isRunning else { return }
        if hang { hung.store(true, ordering: .releasing) }
        kill(process.processIdentifier, hang ? SIGSTOP : SIGKILL)
    }

    /// Asks the monitor to stop (SIGTERM), waits up to `seconds`, then kills it.
    public func stop(seconds: Double = 2) {
        guard process.processIdentifier > 0 else { return }
        if hung.exchange(false, ordering: .acquiringAndReleasing), process.isRunning { kill(process.processIdentifier, SIGCONT) }
        if process.isRunning { process.terminate() }
        let end = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < end { usleep(5000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Removes the directories of earlier runs whose process is gone (a runtime killed with
    /// SIGKILL cannot remove its own): only ours, only those named for a process id that no
    /// longer exists.
    static func removeStaleDirectories() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for name in names where name.hasPrefix("lumen-live-") {
            let parts = name.dropFirst("lumen-live-".count).split(separator: "-")
            guard parts.count == 2, let pid = Int32(parts[0]), pid > 0, pid != getpid() else { continue }
            var st = stat()
            guard lstat("/tmp/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid() else { continue }
            if kill(pid, 0) != 0, errno == ESRCH { try? FileManager.default.removeItem(atPath: "/tmp/" + name) }
        }
    }

    /// Removes the directory (key, limits, log, sockets).
    public func removeFiles() { try? FileManager.default.removeItem(atPath: channel.directory) }

    /// The lumen the monitor guards for a run into `vessel` (`NavigationMonitorLimits.vesselCorridor`,
    /// which simulated-time runs judge their image tips against too), with the runtime's error.
    public static func vesselCorridor(tree: VesselTreeDescription, vessel: String, depth: Double? = nil) throws(RuntimeError) -> [(point: Vec3, radius: Double)] {
        do { return try NavigationMonitorLimits.vesselCorridor(tree: tree, vessel: vessel, depth: depth) } catch {
            throw .monitor("no corridor for the monitor into '\(vessel)': \(error)")
        }
    }

}
