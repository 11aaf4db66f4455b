import Control
import Core
import Foundation
import Synchronization

/// The live runtime run as a service for people at a console: no automation client, no time
/// limit. Operators attach through the port (deadman, acknowledge, target); a thread of its own
/// supervises the run (monitor, signals, the cycle's own stops) until `stop()` or a signal, then
/// ends it through the lifecycle (category-1 stop, drives disabled, monitor stopped).
public final class LiveService: @unchecked Sendable {
    public let runtime: LiveRuntime
    private let stopAsked = Atomic<Bool>(false)
    private let ended = DispatchSemaphore(value: 0)
    private let endingBox = Mutex<RunEnding?>(nil)

    public init(_ settings: LiveSettings, robot: RobotDescription) throws(RuntimeError) {
        runtime = try LiveRuntime(settings, robot: robot)
    }

    /// Starts the runtime and its supervising thread. `onEnd` is called once, on that thread,
    /// with how the run ended (a stop, a signal, the monitor lost, a drive fault).
    public func start(onEnd: (@Sendable (RunEnding) -> Void)? = nil) throws(RuntimeError) {
        try runtime.start()
        let t = Thread { [self] in
            var ending = runtime.supervise(maxSeconds: 1e9, until: { [self] _ in stopAsked.load(ordering: .acquiring) })
            if ending == .completed { runtime.stopAndSettle() }
            ending = runtime.finish(ending)
            endingBox.withLock { $0 = ending }
            onEnd?(ending)
            ended.signal()
        }
        t.name = "lumen-supervisor"
        t.start()
    }

    /// Ends the run and waits for it (at most `seconds`); how it ended, nil if it did not in time.
    @discardableResult
    public func stop(seconds: Double = 10) -> RunEnding? {
        stopAsked.store(true, ordering: .releasing)
        guard ended.wait(timeout: .now() + seconds) == .success else { return nil }
        ended.signal()
        return endingBox.withLock { $0 }
    }

    /// How the run ended, nil while it runs.
    public var ending: RunEnding? { endingBox.withLock { $0 } }
}
