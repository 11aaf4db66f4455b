import Control
import Core
import Synchronization
import Testing
@testable import Runtime

/// When the automation client may start image-guided motion: not before the monitor has an image
/// tip it counts as fresh (a live run whose tip servo started first was stopped at once,
/// `image_stale` with no image tip at all).
@Suite struct AutomationStartTests {
    /// A port whose snapshot says what the test sets, and which records what it was sent.
    final class ScriptedPort: OperatorPort, @unchecked Sendable {
        /// The image tip's age at each snapshot (nil: none), so a stalled test thread cannot age it.
        let state = Mutex<(imageTipAge: Nanoseconds?, sent: [OperatorIntent])>((nil, []))
        let runtimeDescription: RuntimeDescription

        init(imageMaxAge: Nanoseconds) {
            let plane = RuntimeDescription.PlaneDescription(name: "frontal", width: 8, height: 8, pixelSpacing: 1, projection: [], framesPerSecond: 15)
            var d = RuntimeDescription(robotName: "test", axisNames: ["insertion"], positionMin: [0], positionMax: [1], velocityMax: [1],
                                       planes: [plane, plane], roadmap: [], targets: [(name: "goal", position: .zero)],
                                       period: 1_000_000, deadmanTimeout: 250_000_000)
            d.imageMaxAge = imageMaxAge
            runtimeDescription = d
        }

        func submit(_ intent: OperatorIntent, from who: OperatorIdentity) -> Result<IntentReceipt, IntentRejection> {
            if case .deadman = intent { return .success(IntentReceipt(sequence: 0, acceptedAt: 0)) }
            state.withLock { $0.sent.append(intent) }
            return .success(IntentReceipt(sequence: 1, acceptedAt: 0))
        }

        func snapshot() -> RuntimeSnapshot {
            let age = state.withLock { $0.imageTipAge }
            let now = MonotonicClock.now()
            let tipAt = age.map { now - $0 } ?? 0
            return RuntimeSnapshot(time: now, cycle: 1, lifecycle: .active, mode: .hold, holdReason: .none, joints: JointState(jointCount: 1),
                                   command: JointCommand(jointCount: 1), estimate: TipEstimate(lastImageAt: now - 50_000_000), target: nil,
                                   appliedIntent: 0,
                                   safety: SafetyStatus(monitorAlive: true, powerPermitted: true, deadmanHeld: true, imageTipAt: tipAt),
                                   link: LinkHealth(kind: "test", up: true), latenessP99: 0, computeP99: 0, overruns: 0,
                                   framesAcquired: [1, 1], framesDropped: [0, 0])
        }

        func latestFrame(plane: UInt8, after index: UInt64) -> LiveFrame? { nil }
        func events(after sequence: UInt64, limit: Int) -> [RuntimeEvent] { [] }
        var sent: [OperatorIntent] { state.withLock { $0.sent } }
    }

    @Test func withoutAnImageTipForTheMonitorNoTargetIsPicked() {
        let port = ScriptedPort(imageMaxAge: 1_000_000_000)
        let client = AutomationClient(port: port)
        let outcome = client.navigate(to: "goal", seconds: 0.2)
        #expect(outcome == .failure(.modeRefused(.estimateLost)))
        #expect(port.sent.isEmpty, "sent \(port.sent) before the monitor could check an image tip")
    }

    @Test func anImageTipTooOldForTheMonitorIsNoImageTip() {
        let port = ScriptedPort(imageMaxAge: 1_000_000_000)
        port.state.withLock { $0.imageTipAge = 900_000_000 }
        let client = AutomationClient(port: port)
        #expect(client.navigate(to: "goal", seconds: 0.2) == .failure(.modeRefused(.estimateLost)))
        #expect(port.sent.isEmpty)
    }

    @Test func withAFreshImageTipTheTargetIsPicked() {
        let port = ScriptedPort(imageMaxAge: 1_000_000_000)
        port.state.withLock { $0.imageTipAge = 60_000_000 }
        let client = AutomationClient(port: port)
        guard case .success = client.navigate(to: "goal", seconds: 5) else {
            Issue.record("no target picked with a fresh image tip")
            return
        }
        #expect(port.sent == [.acknowledgeFaults, .namedTarget("goal")])
    }

    /// Without a monitor judging the images (no age limit) the image tip is not waited for.
    @Test func withoutAMonitorTheFusedImageIsEnough() {
        let port = ScriptedPort(imageMaxAge: 0)
        let client = AutomationClient(port: port)
        guard case .success = client.navigate(to: "goal", seconds: 5) else {
            Issue.record("no target picked without a monitor")
            return
        }
        #expect(port.sent == [.acknowledgeFaults, .namedTarget("goal")])
    }
}
