/// The teleoperation console: an HTTP + WebSocket server and its static web page, through which
/// an interventionalist sends intents (jog, clutch, deadman, target, stop) to the control cycle.

/// What an operator can ask of the robot from the console.
public enum OperatorIntent: Sendable, Equatable {
    /// Stop all motion now.
    case stop
    /// The deadman is held (true) or released (false); motion is allowed only while held.
    case deadman(Bool)
}
