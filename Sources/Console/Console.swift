/// The teleoperation console: an HTTP + WebSocket server and its static web page (Web/), through
/// which an interventionalist steers the running system. It reaches the robot only through
/// `OperatorPort.submit`, and only from `ConsoleGate`, which checks lease, role, rate and ranges
/// first and keeps the network deadman.
public enum Console {
    /// The console's audit and page name.
    public static let name = "Lumen console"
}
