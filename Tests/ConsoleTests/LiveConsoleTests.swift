import Control
import Core
import Foundation
import Runtime
import Testing
@testable import Console

/// The console's gate in front of the live runtime (its cycle thread at wall clock, no monitor
/// process, no imaging): the lease and roles decide who reaches the runtime, and a jog through
/// the gate moves the physics catheter only while the deadman is held. Waits are bounded polls,
/// never deadlines.
@Suite(.serialized, .disabled(if: ProcessInfo.processInfo.environment["LUMEN_WALL_CLOCK_SUITES"] == "later", "runs alone after the parallel tests (scripts/test.sh): it judges threads on the wall clock")) final class LiveConsoleTests {
    let runtime: LiveRuntime
    let clock = ManualConsoleClock()
    let gate: ConsoleGate

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let alice = ConsoleUser(name: "alice", role: .operator, passwordHash: "")
    static let bob = ConsoleUser(name: "bob", role: .operator, passwordHash: "")
    static let olga = ConsoleUser(name: "olga", role: .observer, passwordHash: "")

    init() throws {
        var s = LiveSettings()
        s.setup.phantom = "straight"
        s.setup.vessel = "tube"
        s.setup.depth = 90
        s.setup.detectorPixels = 256
        s.setup.pixelSpacingMM = 1.2
        s.setup.fps = 7.5
        s.imaging = .off
        s.monitor = false
        // The most the runtime allows (5 s): the test thread's heartbeats may be starved for a
        // second or two on a loaded machine. The gate's own (150 ms) runs on the manual clock.
        s.deadmanTimeout = 5
        let robot = try ConfigLoader.load(RobotDescription.self, from: Self.root.appendingPathComponent("robots/lumen-1s.yaml").path)
        runtime = try LiveRuntime(s, robot: robot)
        try runtime.start()
        gate = ConsoleGate(port: runtime, settings: ConsoleSettings(), clock: clock, audit: try AuditLog(path: nil, clock: clock))
    }

    deinit { _ = runtime.finish(.completed) }

    func connect(_ u: ConsoleUser) throws -> ConsoleClientID { try #require(gate.connect(user: u, source: "test")) }

    /// Repeats `commands` from `client` every 20 ms for `seconds` (with a heartbeat first when `beat`).
    func repeatFor(_ seconds: Double, _ client: ConsoleClientID, beat: Bool = true, _ commands: [ConsoleCommand]) -> [GateReply] {
        var replies: [GateReply] = []
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if beat { replies.append(gate.handle(client, .heartbeat(sequence: 1))) }
            for c in commands { replies.append(gate.handle(client, c)) }
            // The gate's rate limit refills on its (manual) clock.
            clock.advance(20 * .perMillisecond)
            usleep(20_000)
        }
        return replies
    }

    func waitFor(_ seconds: Double, _ condition: (RuntimeSnapshot) -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition(runtime.snapshot()) { return true }
            usleep(10_000)
        }
        return condition(runtime.snapshot())
    }

    @Test func theLeaseHoldersJogMovesTheLiveCatheterAndOthersAreRefused() throws {
        let a = try connect(Self.alice), b = try connect(Self.bob), o = try connect(Self.olga)
        #expect(gate.handle(a, .takeLease) == .ok("you hold the lease"))
        // Not the lease holder, or an observer: refused before the runtime sees anything.
        #expect(gate.handle(b, .jointJog([1, 0, 0, 0])) == .refused("take the control lease first"))
        #expect(gate.handle(b, .mode(.jog)) == .refused("take the control lease first"))
        #expect(gate.handle(o, .jointJog([1, 0, 0, 0])) == .refused("an observer may only view and stop"))
        // Without the deadman the gate refuses the jog itself.
        #expect(gate.handle(a, .jointJog([1, 0, 0, 0])) == .refused("hold the deadman to move"))

        #expect(waitFor(5) { $0.mode == .hold })
        let before = runtime.snapshot().joints.position[0]
        #expect(gate.handle(a, .heartbeat(sequence: 1)) == .ok(nil))
        #expect(waitFor(5) { $0.safety.deadmanHeld })
        #expect(gate.handle(a, .mode(.jog)) == .ok(nil))
        let replies = repeatFor(1.5, a, [.jointJog([1, 0, 0, 0])])
        #expect(!replies.contains { $0.isRefused }, "\(replies.filter(\.isRefused))")
        #expect(runtime.snapshot().mode == .jog)
        let moved = runtime.snapshot().joints.position[0] - before
        // At most 7.5 mm/s; a loaded machine slows the simulated patient, so only that it moved.
        #expect(moved > 0.3, "the insertion moved \(moved) mm in 1.5 s of jog")

        // Bob's jogs meanwhile changed nothing of the lease.
        #expect(gate.view(b)?.holdsLease == false)

        // Released: the runtime holds, and the catheter comes to rest.
        #expect(gate.handle(a, .release) == .ok(nil))
        #expect(waitFor(5) { $0.mode == .hold && $0.holdReason == .deadmanReleased })
        #expect(waitFor(5) { s in (0..<4).allSatisfy { abs(s.command.velocity[$0]) < 1e-9 } })
        // The commanded reference stays put (the drive's own lag may still close on it).
        let rest = runtime.snapshot().command.position[0]
        usleep(300_000)
        #expect(abs(runtime.snapshot().command.position[0] - rest) < 1e-9)
    }

    @Test func aPixelTargetOnARuntimeWithoutImagingIsRefusedWithItsReason() throws {
        let a = try connect(Self.alice)
        _ = gate.handle(a, .takeLease)
        // The runtime describes no planes, so the gate already refuses.
        #expect(gate.handle(a, .targetPixel(plane: 0, x: 10, y: 10)) == .refused("no plane 0"))
        // Through the port directly: the runtime says why.
        let who = OperatorIdentity(name: "alice", role: .operator, source: "test")
        guard case .failure(.unknownTarget(let why)) = runtime.submit(.targetPixel(plane: 0, pixel: SIMD2(10, 10)), from: who) else {
            Issue.record("accepted")
            return
        }
        #expect(why.contains("no imaging planes"))
    }
}
