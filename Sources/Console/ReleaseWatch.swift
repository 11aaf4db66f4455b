import Core
import Foundation
import Runtime
import Synchronization

/// Measures how long the robot takes to come to rest once the deadman is let go: it polls the
/// port's published state every millisecond, and from the first cycle that no longer has the
/// deadman while the robot moved, to the first cycle with every axis's command at rest, takes
/// the cycles' own times (ns). For `lumen bench console` and the browser tests' figures.
public final class ReleaseWatch: Sendable {
    let port: any OperatorPort
    private let state = Mutex<(samples: [Nanoseconds], running: Bool)>(([], false))
    private let done = DispatchSemaphore(value: 0)

    public init(port: any OperatorPort) { self.port = port }

    public func start() {
        let started = state.withLock { s -> Bool in
            if s.running { return false }
            s.running = true
            return true
        }
        guard started else { return }
        let t = Thread { [self] in
            var releasedAt: Nanoseconds?
            var wasHeld = false
            var moving = false
            while state.withLock({ $0.running }) {
                let s = port.snapshot()
                let atRest = (0..<s.command.velocity.count).allSatisfy { s.command.velocity[$0] == 0 }
                if wasHeld, !s.safety.deadmanHeld, moving { releasedAt = s.time }
                if let t0 = releasedAt, atRest, s.mode != .jog || !s.safety.deadmanHeld {
                    let d = s.time - t0
                    state.withLock { st in
                        st.samples.append(d)
                        if st.samples.count > 10_000 { st.samples.removeFirst() }
                    }
                    releasedAt = nil
                }
                if s.safety.deadmanHeld { releasedAt = nil }
                wasHeld = s.safety.deadmanHeld
                moving = (s.mode == .jog || s.mode == .tipServo) && !atRest
                usleep(1000)
            }
            done.signal()
        }
        t.name = "lumen-release-watch"
        t.start()
    }

    public func stop() {
        let was = state.withLock { s -> Bool in
            let r = s.running
            s.running = false
            return r
        }
        if was { done.wait() }
    }

    /// Release → at rest (ns), one per release that happened while the robot moved.
    public func samples() -> [Nanoseconds] { state.withLock { $0.samples } }
}
