import ArgumentParser
import CommandSupport
import Runtime
import Sim

/// Where the drives are, for every command that runs them live (`lumen demo`, `lumen console`):
/// the runtime parses the link, so each command accepts the same ones.
struct LinkFlags: ParsableArguments {
    @Option(help: "Where the drives are: sim (in-process), serial (simulated drives speaking DriveLink over a pty), serial:/dev/ttyUSB0@1000000 (real DriveLink drives), pty:/dev/pts/N (a DriveLink device on a pseudo-terminal: a simulator, a socat bridge), ethercat-udp (simulated CiA 402 slaves behind EtherCAT over UDP) or ethercat-udp:HOST:PORT.")
    var link = "sim"
    @Option(help: "Simulated drives: ideal, or emulated (motor, gearbox with backlash, encoder, the drives' own loops), on any simulated link.")
    var drives = "ideal"

    func validate() throws {
        try Check.oneOf(drives, "--drives", ["ideal", "emulated"])
        _ = try liveDrives()
    }

    /// The link as the live runtime takes it.
    func liveDrives() throws -> LiveDrives {
        do { return try LiveDrives(parsing: link) } catch {
            if case .badSetting(_, let reason) = error { throw ValidationError("--link: \(reason)") }
            throw ValidationError("--link: \(error.description)")
        }
    }

    var dynamics: DriveDynamics { drives == "emulated" ? .emulated(nil) : .ideal }
}
