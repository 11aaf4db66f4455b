import Control
import Core
import Runtime
import Testing
@testable import Console

/// Lease, roles, rate limit and the network deadman, on a hand-advanced clock: no test waits.
struct ConsoleGateTests {
    let clock = ManualConsoleClock()
    let port: SimulatedPort
    let gate: ConsoleGate

    static let alice = ConsoleUser(name: "alice", role: .operator, passwordHash: "")
    static let bob = ConsoleUser(name: "bob", role: .operator, passwordHash: "")
    static let olga = ConsoleUser(name: "olga", role: .observer, passwordHash: "")
    static let sam = ConsoleUser(name: "sam", role: .supervisor, passwordHash: "")

    init() throws {
        port = SimulatedPort(clock: clock)
        var settings = ConsoleSettings()
        settings.deadmanTimeoutMs = 150
        gate = ConsoleGate(port: port, settings: settings, clock: clock, audit: try AuditLog(path: nil, clock: clock))
    }

    func connect(_ u: ConsoleUser) throws -> ConsoleClientID { try #require(gate.connect(user: u, source: "test")) }

    /// Runs the port and the gate's watchdog for `ms` in 5 ms steps, with heartbeats every `beat` ms when given.
    func run(_ ms: Int, heartbeat client: ConsoleClientID? = nil, every beat: Int = 50, also: [ConsoleCommand] = []) {
        var t = 0
        while t < ms {
            if let client, t % beat == 0 {
                _ = gate.handle(client, .heartbeat(sequence: UInt64(t)))
                for c in also { _ = gate.handle(client, c) }
            }
            clock.advance(5 * .perMillisecond)
            gate.tick()
            port.step()
            t += 5
        }
    }

    var insertion: Double { port.snapshot().joints.position[0] }

    @Test func onlyOneOperatorHoldsTheLease() throws {
        let a = try connect(Self.alice), b = try connect(Self.bob)
        #expect(gate.handle(a, .takeLease) == .ok("you hold the lease"))
        let refused = gate.handle(b, .takeLease)
        #expect(refused.isRefused)
        #expect(gate.view(b)?.holdsLease == false)
        #expect(gate.view(b)?.leaseHolder == "alice")
        // An operator may not override.
        #expect(gate.handle(b, .overrideLease).isRefused)
        #expect(gate.handle(a, .releaseLease) == .ok("lease released"))
        #expect(gate.handle(b, .takeLease) == .ok("you hold the lease"))
    }

    @Test func supervisorOverrideIsLoggedAndReleasesTheDeadman() throws {
        let a = try connect(Self.alice), s = try connect(Self.sam)
        _ = gate.handle(a, .takeLease)
        _ = gate.handle(a, .heartbeat(sequence: 1))
        #expect(gate.view(a)?.deadmanHeld == true)
        #expect(gate.handle(s, .overrideLease) == .ok("you hold the lease (override)"))
        #expect(gate.view(s)?.holdsLease == true)
        #expect(gate.view(a)?.holdsLease == false)
        #expect(gate.handle(a, .jointJog([1, 0, 0, 0])).isRefused)
        let log = gate.audit.entries().map(\.line).joined(separator: "\n")
        #expect(log.contains("sam supervisor console test: lease override -> ok, taken from alice"))
        #expect(log.contains("deadman release -> lease overridden"))
    }

    @Test func observerMayViewAndStopButNotMove() throws {
        let o = try connect(Self.olga)
        #expect(gate.handle(o, .takeLease).isRefused)
        #expect(gate.handle(o, .heartbeat(sequence: 1)).isRefused)
        #expect(gate.handle(o, .jointJog([1, 0, 0, 0])) == .refused("an observer may only view and stop"))
        #expect(gate.handle(o, .targetPixel(plane: 0, x: 128, y: 128)).isRefused)
        #expect(gate.handle(o, .acknowledge).isRefused)
        #expect(gate.handle(o, .stop) == .ok(nil))
        port.step()
        #expect(port.snapshot().safety.stopCategory == 1)
    }

    @Test func motionNeedsTheLeaseAndTheDeadman() throws {
        let a = try connect(Self.alice)
        #expect(gate.handle(a, .jointJog([1, 0, 0, 0])) == .refused("take the control lease first"))
        _ = gate.handle(a, .takeLease)
        #expect(gate.handle(a, .jointJog([1, 0, 0, 0])) == .refused("hold the deadman to move"))
        #expect(gate.handle(a, .mode(.jog)) == .refused("hold the deadman first"))
    }

    @Test func joggingWhileHeldMovesAndReleaseStopsWithinTheTimeout() throws {
        let a = try connect(Self.alice)
        _ = gate.handle(a, .takeLease)
        _ = gate.handle(a, .heartbeat(sequence: 0))
        #expect(gate.handle(a, .mode(.jog)) == .ok(nil))
        run(500, heartbeat: a, also: [.jointJog([1, 0, 0, 0])])
        let moved = insertion
        #expect(moved > 5, "20 mm/s for 0.5 s")
        #expect(port.snapshot().mode == .jog)
        _ = gate.handle(a, .release)
        run(20)
        #expect(port.snapshot().mode == .hold)
        let after = insertion
        run(300)
        #expect(insertion == after)
    }

    @Test func heartbeatGapLongerThanTheTimeoutReleasesTheDeadman() throws {
        let a = try connect(Self.alice)
        _ = gate.handle(a, .takeLease)
        _ = gate.handle(a, .heartbeat(sequence: 0))
        _ = gate.handle(a, .mode(.jog))
        // Heartbeats every 140 ms: within 150, held throughout.
        run(700, heartbeat: a, every: 140, also: [.jointJog([1, 0, 0, 0])])
        #expect(gate.view(a)?.deadmanHeld == true)
        #expect(port.snapshot().mode == .jog)
        // Then silence: released once the gap passes 150 ms, not before.
        _ = gate.handle(a, .heartbeat(sequence: 99))
        clock.advance(145 * .perMillisecond); gate.tick()
        #expect(gate.view(a)?.deadmanHeld == true)
        clock.advance(10 * .perMillisecond); gate.tick()
        #expect(gate.view(a)?.deadmanHeld == false)
        run(10)
        #expect(port.snapshot().mode == .hold)
        #expect(gate.audit.entries().contains { $0.action == "deadman release" && $0.outcome.contains("heartbeat gap") })
        // A jog now is refused until the deadman is held again.
        #expect(gate.handle(a, .jointJog([1, 0, 0, 0])) == .refused("hold the deadman to move"))
    }

    @Test func closingThePageMidJogHoldsAndFreesTheLease() throws {
        let a = try connect(Self.alice), b = try connect(Self.bob)
        _ = gate.handle(a, .takeLease)
        _ = gate.handle(a, .heartbeat(sequence: 0))
        _ = gate.handle(a, .mode(.jog))
        run(200, heartbeat: a, also: [.jointJog([1, 0, 0, 0])])
        #expect(port.snapshot().mode == .jog)
        gate.disconnect(a)
        run(10)
        #expect(port.snapshot().mode == .hold)
        let x = insertion
        run(200)
        #expect(insertion == x)
        #expect(gate.handle(b, .takeLease) == .ok("you hold the lease"))
    }

    @Test func hiddenPageReleases() throws {
        let a = try connect(Self.alice)
        _ = gate.handle(a, .takeLease)
        _ = gate.handle(a, .heartbeat(sequence: 0))
        #expect(gate.view(a)?.deadmanHeld == true)
        _ = gate.handle(a, .visibility(visible: false))
        #expect(gate.view(a)?.deadmanHeld == false)
    }

    @Test func stopLatchesCategoryOneUntilAcknowledged() throws {
        let a = try connect(Self.alice)
        _ = gate.handle(a, .takeLease)
        _ = gate.handle(a, .heartbeat(sequence: 0))
        _ = gate.handle(a, .mode(.jog))
        run(100, heartbeat: a, also: [.jointJog([1, 0, 0, 0])])
        #expect(gate.handle(a, .stop) == .ok(nil))
        run(10)
        let s = port.snapshot()
        #expect(s.safety.stopCategory == 1)
        #expect(s.mode == .hold)
        #expect(!s.safety.latchedFaults.isEmpty)
        #expect(gate.view(a)?.deadmanHeld == false)
        _ = gate.handle(a, .heartbeat(sequence: 9))
        #expect(gate.handle(a, .mode(.jog)).isRefused)
        #expect(gate.handle(a, .acknowledge) == .ok(nil))
        run(10)
        #expect(port.snapshot().safety.stopCategory == nil)
    }

    @Test func stopIsNeverRateLimited() throws {
        let o = try connect(Self.olga)
        for i in 0..<200 { _ = gate.handle(o, .scale(0.5)); _ = i }
        #expect(gate.handle(o, .scale(0.5)).isRefused)
        #expect(gate.handle(o, .stop) == .ok(nil))
    }

    @Test func rateLimitRefusesABurstAndRecovers() throws {
        let a = try connect(Self.alice)
        _ = gate.handle(a, .takeLease)
        var refused = 0
        for _ in 0..<100 where gate.handle(a, .scale(0.5)).isRefused { refused += 1 }
        #expect(refused >= 40, "burst of 50, 100 sent at once")
        clock.advance(1 * .perSecond)
        #expect(gate.handle(a, .scale(0.5)) == .ok(nil))
    }

    @Test func boundsThatDependOnTheRobotAreChecked() throws {
        let a = try connect(Self.alice)
        _ = gate.handle(a, .takeLease)
        _ = gate.handle(a, .heartbeat(sequence: 0))
        #expect(gate.handle(a, .jointJog([1, 0])) == .refused("2 values for 4 axes"))
        #expect(gate.handle(a, .targetPixel(plane: 5, x: 1, y: 1)) == .refused("no plane 5"))
        #expect(gate.handle(a, .targetPixel(plane: 0, x: 300, y: 1)) == .refused("pixel outside plane 0"))
        #expect(gate.handle(a, .namedTarget("aorta")) == .refused("unknown target aorta"))
    }

    @Test func clickedTargetNavigatesOnlyWhileHeld() throws {
        let a = try connect(Self.alice)
        _ = gate.handle(a, .takeLease)
        _ = gate.handle(a, .heartbeat(sequence: 0))
        let target = port.runtimeDescription.targets[1].position
        let px = port.project(target, plane: 0)
        #expect(gate.handle(a, .targetPixel(plane: 0, x: px.x, y: px.y)) == .ok(nil))
        run(10)
        #expect(port.snapshot().target != nil)
        let start = port.snapshot().estimate.position
        // Not held: nothing moves.
        _ = gate.handle(a, .release)
        run(500)
        #expect(port.snapshot().estimate.position == start)
        // Held: it drives to the target, along the vessels.
        var farthest = 0.0
        for _ in 0..<200 {
            run(100, heartbeat: a)
            farthest = max(farthest, port.nearestRoadmap(to: port.snapshot().estimate.position).distance)
        }
        #expect(farthest < 3, "the tip left the vessels by \(farthest) mm")
        // The body follows the same way: no straight cut across the bifurcation.
        let body = port.body()
        #expect(body.count > 50)
        let off = body.map { port.nearestRoadmap(to: $0).distance }.max() ?? 0
        #expect(off < 3, "the body left the vessels by \(off) mm")
        let tip = port.snapshot().estimate.position
        let d = target - tip
        #expect((d * d).sum().squareRoot() < 3, "tip \(tip), target \(target)")
    }

    @Test func intentToCycleLatencyIsMeasured() throws {
        let a = try connect(Self.alice)
        _ = gate.handle(a, .takeLease)
        _ = gate.handle(a, .heartbeat(sequence: 0))
        _ = gate.handle(a, .mode(.jog))
        _ = gate.handle(a, .jointJog([0.5, 0, 0, 0]))
        clock.advance(3 * .perMillisecond)
        port.step()
        gate.latency.observe(port.snapshot())
        #expect(gate.latency.samples().intentToCycle == [3 * .perMillisecond])
    }

    /// Frame → screen runs from acquisition; frame sent → screen from the console's sending, so
    /// that a slow imaging pipeline (a debug build's) is told apart from the console and browser.
    @Test func frameToScreenIsSplitAtTheSending() throws {
        let a = try connect(Self.alice)
        let now = clock.now()
        gate.latency.frameSent(plane: 1, index: 7, acquiredAt: now - 4000 * .perMillisecond, sentAt: now)
        clock.advance(30 * .perMillisecond)
        #expect(gate.handle(a, .shown(plane: 1, index: 7)) == .ok(nil))
        // Shown twice, or a frame never sent: counted once, or not at all.
        #expect(gate.handle(a, .shown(plane: 1, index: 7)) == .ok(nil))
        #expect(gate.handle(a, .shown(plane: 0, index: 7)) == .ok(nil))
        #expect(gate.latency.samples().frameToScreen == [4030 * .perMillisecond])
        #expect(gate.latency.sentToScreenSamples() == [30 * .perMillisecond])
    }
}
