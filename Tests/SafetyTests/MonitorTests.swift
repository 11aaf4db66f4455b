import Core
import Foundation
import Testing
@testable import Safety

@Suite struct MonitorTests {
    @Test func startsWithoutPowerUntilAcknowledgedThenPermits() throws {
        var b = Bench(try Fixture.model())
        let first = b.step()
        #expect(!first.permit)
        #expect(b.state.isLatched(.startup))
        #expect(first.category == .zero)
        let up = b.bringUp()
        #expect(up.permit)
        #expect(!up.controlledStop)
        #expect(up.category == nil)
        #expect(up.latched == 0)
    }

    /// Before the drives' first sample the readings are the inputs' zeros, not the robot's: an
    /// acknowledge then must not permit power (CI once saw a catheter far outside its lumen
    /// powered for a moment on a loaded machine). Once a sample has come, it does.
    @Test func noAcknowledgePermitsPowerBeforeTheDrivesFirstSample() throws {
        var b = Bench(try Fixture.model())
        let unsampled: (inout MonitorInputs) -> Void = { $0.sampledAt = 0 }
        for _ in 0..<3 { b.step(unsampled) }
        for _ in 0..<5 {
            let v = b.acknowledgeOnce(unsampled)
            #expect(!v.permit)
            #expect(b.state.isLatched(.startup))
        }
        // No fault logged for it: start-up was latched already.
        #expect(b.step(unsampled).newFaultCount == 0)
        b.step()
        #expect(b.acknowledgeOnce().permit)
        // A sample that later stops coming is the link check's business, not start-up's.
        #expect(b.step { $0.sampledAt = 1 }.permit)
        #expect(!b.state.isLatched(.startup))
    }

    /// Each per-joint limit: a value just inside passes, just outside trips the declared check.
    @Test(arguments: [SafetyCheck.velocity, .current, .encoder, .tracking, .position])
    func jointLimitsTripAtTheLimitAndNotBelow(_ check: SafetyCheck) throws {
        let model = try Fixture.model()
        for joint in 0..<model.jointCount {
            for (factor, trips) in [(0.98, false), (1.02, true)] {
                var b = Bench(model)
                _ = b.bringUp()
                let v = b.step { i in
                    switch check {
                    case .velocity:
                        // Measured speed alone (no stopping-distance effect on travel: mid-range posture).
                        i.velocity[joint] = factor * model.maxVelocity[joint]
                        i.commandedVelocity[joint] = 0
                    case .current: i.current[joint] = -factor * model.maxCurrent[joint]
                    case .encoder: i.encoderPosition[joint] = i.position[joint] + factor * model.maxEncoderMismatch[joint]
                    case .tracking: i.commandedPosition[joint] = i.position[joint] + factor * model.maxTrackingError[joint]
                    case .position:
                        let limit = model.upper[joint]
                        let q = limit * factor + (factor < 1 ? 0 : 0.01)
                        i.position[joint] = q
                        i.encoderPosition[joint] = q
                        i.commandedPosition[joint] = q
                    default: break
                    }
                }
                let latched = v.latched & check.bit != 0
                if check == .position, joint >= 2, factor < 1 {
                    // Bending the tendons to 98 % of their travel moves the tip far off the axis:
                    // only the position check is asked about here.
                }
                #expect(latched == trips, "\(check.key) joint \(joint) at \(factor)× the limit")
                if trips {
                    let r = try #require(v.newFaults.first { $0.check == check })
                    #expect(r.index == Int8(joint))
                    #expect(r.category == model.category(check))
                    #expect(r.time == b.now)
                    if check.mustRemovePower { #expect(model.category(check).removesPower) }
                }
            }
        }
    }

    @Test func forceTripsAboveItsLimit() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        #expect(b.step { $0.insertionForce = 0.99 * model.maxInsertionForce }.latched == 0)
        let v = b.step { $0.insertionForce = 1.01 * model.maxInsertionForce }
        #expect(v.latched == SafetyCheck.force.bit)
        #expect(v.controlledStop)
        #expect(v.permit, "category 1 keeps power while it brakes")
        #expect(v.category == .one)
    }

    @Test func heartbeatTimesOutOnlyAfterItsTimeout() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        let frozen = b.sequence
        let cyclesToTimeout = Int(model.heartbeatTimeout / model.period)
        for k in 0..<(cyclesToTimeout + 3) {
            let v = b.step { $0.heartbeatSequence = frozen }
            if k < cyclesToTimeout {
                #expect(v.latched == 0, "tripped after \(k + 1) ms without a heartbeat")
            } else {
                #expect(v.latched & SafetyCheck.heartbeat.bit != 0)
            }
        }
    }

    @Test func categoryOneBrakesThenRemovesPowerAtStandstillOrAfterItsMaximumTime() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        // Moving: the stop runs until the maximum time.
        var v = b.step { $0.insertionForce = 5; $0.velocity[0] = 5 }
        #expect(v.permit && v.controlledStop)
        let steps = Int(model.stopMaxTime / model.period)
        for _ in 0..<(steps - 2) {
            v = b.step { $0.velocity[0] = 5 }
            #expect(v.permit)
        }
        v = b.step { $0.velocity[0] = 5 }
        v = b.step { $0.velocity[0] = 5 }
        #expect(!v.permit, "power must go after the maximum stop time")

        // At standstill: power goes at the next cycle.
        var c = Bench(model)
        _ = c.bringUp()
        v = c.step { $0.insertionForce = 5 }
        #expect(v.permit)
        v = c.step()
        #expect(!v.permit)
    }

    @Test func categoryZeroRemovesPowerAtOnceAndCategoryTwoKeepsIt() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        let zero = b.step { $0.current[1] = 10 }
        #expect(!zero.permit)
        #expect(zero.category == .zero)

        var c = Bench(model)
        _ = c.bringUp()
        var v = c.step { $0.deadman = false }
        #expect(v.category == .two)
        #expect(v.controlledStop)
        for _ in 0..<500 { v = c.step { $0.deadman = false } }
        #expect(v.permit, "category 2 never removes power")
    }

    /// The deadman is the operator's normal way to stop: letting go is a category-2 stop (power
    /// kept) for as long as it is released, and holding it again ends that stop with no acknowledge;
    /// each release is still detected once (the campaign times it). A fault latched meanwhile stays.
    @Test func theDeadmanStopsWhileReleasedAndHoldingItAgainEndsTheStop() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        var log = FaultLog(capacity: 8)
        for release in 0..<3 {
            var v = b.step { $0.deadman = false }
            log.append(v)
            #expect(v.newFaults.map(\.check) == [.deadman], "release \(release) is detected")
            for _ in 0..<50 { v = b.step { $0.deadman = false } }
            #expect(v.controlledStop)
            #expect(v.category == .two)
            #expect(v.permit)
            // Held again: the stop ends at once, nothing to acknowledge.
            v = b.step()
            #expect(v.latched == 0)
            #expect(!v.controlledStop)
            #expect(v.permit)
            #expect(v.category == nil)
        }
        #expect(log.drain().count == 3)
        // A latched fault is not cleared by holding the deadman again.
        b.step { $0.insertionForce = 9 }
        b.step { $0.deadman = false }
        let v = b.step()
        #expect(v.latched == SafetyCheck.force.bit)
        #expect(v.controlledStop)
        #expect(b.acknowledgeOnce().latched == 0)
    }

    /// At start-up the monitor powers nothing until an acknowledge, which may come before the
    /// deadman is held: the start-up latch clears, and the drives get power once the deadman is
    /// held, with no second acknowledge.
    @Test func startUpIsAcknowledgedWithTheDeadmanReleased() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        for _ in 0..<3 { #expect(!b.step { $0.deadman = false }.permit) }
        var v = b.acknowledgeOnce { $0.deadman = false }
        #expect(v.latched == SafetyCheck.deadman.bit, "only the deadman's stop is left")
        #expect(!v.permit, "no power until the deadman is held")
        v = b.step()
        #expect(v.latched == 0)
        #expect(v.permit)
        #expect(!v.controlledStop)
    }

    @Test func faultsLatchUntilClearedAndAcknowledged() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        b.step { $0.insertionForce = 9 }
        // Cleared but not acknowledged: still stopped.
        for _ in 0..<5 { #expect(b.step().latched == SafetyCheck.force.bit) }
        // Acknowledged while the condition persists: still latched.
        var v = b.acknowledgeOnce { $0.insertionForce = 9 }
        #expect(v.latched == SafetyCheck.force.bit)
        // Holding acknowledge down does not release it later: only a press after clearing counts.
        b.acknowledge = true
        b.step { $0.insertionForce = 9 }
        v = b.step()
        #expect(v.latched == SafetyCheck.force.bit)
        b.acknowledge = false
        b.step()
        // Cleared, then acknowledged: released, and power is back.
        v = b.acknowledgeOnce()
        #expect(v.latched == 0)
        #expect(v.permit)
        #expect(!v.controlledStop)
    }

    @Test func aFaultIsLoggedOnceWhenItLatches() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        var log = FaultLog(capacity: 8)
        for _ in 0..<20 { log.append(b.step { $0.current[0] = 3 }) }
        let records = log.drain()
        #expect(records.count == 1)
        #expect(records[0].check == .current)
        #expect(records[0].value == 3)
        #expect(records[0].limit == model.maxCurrent[0])
        #expect(records[0].describe(jointNames: ["insertion"]).contains("current joint insertion"))
    }

    @Test func theFaultLogCountsWhatItOverwrites() {
        var log = FaultLog(capacity: 4)
        for k in 0..<10 { log.append(FaultRecord(time: Nanoseconds(k), check: .force, index: -1, value: 0, limit: 0, category: .one)) }
        #expect(log.overwritten == 6)
        #expect(log.drain().map(\.time) == [6, 7, 8, 9])
        #expect(log.drain().isEmpty)
    }

    @Test(arguments: ["position", "encoderPosition", "velocity", "current", "force", "commandedPosition", "commandedVelocity"])
    func aNaNReadingTripsCategoryZero(_ field: String) throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        let v = b.step { i in
            switch field {
            case "position": i.position[2] = .nan
            case "encoderPosition": i.encoderPosition[0] = .nan
            case "velocity": i.velocity[1] = .infinity
            case "current": i.current[3] = .nan
            case "force": i.insertionForce = .nan
            case "commandedPosition": i.commandedPosition[0] = .nan
            default: i.commandedVelocity[5] = -.infinity
            }
        }
        #expect(v.latched & SafetyCheck.invalidInput.bit != 0)
        #expect(!v.permit)
    }

    @Test func theTipMustStayInTheLumenAndOutOfNoGoZones() throws {
        let limits = try Fixture.limits()
        let model = MonitorModel(limits)
        let g = model.geometry
        // Straight at 100 mm: on the centreline, 150 mm out.
        let tip = g.tipPosition(Fixture.start)
        #expect(abs(tip.z - 150) < 1e-9)
        #expect(g.outsideLumen(tip) < 0)
        // A point exactly at the wall minus the margin is the limit.
        let r = limits.lumen.radiusMM[0] - limits.catheter.tipMarginMM
        #expect(g.outsideLumen(Vec3(r - 0.01, 0, 100)) < 0)
        #expect(g.outsideLumen(Vec3(r + 0.01, 0, 100)) > 0)
        let z = limits.noGo[0]
        let c = Vec3(z.centerMM[0], z.centerMM[1], z.centerMM[2])
        let edge = z.radiusMM + limits.catheter.tipMarginMM
        #expect(g.insideNoGo(c + Vec3(0, 0, edge + 0.01)).depth < 0)
        #expect(g.insideNoGo(c + Vec3(0, 0, edge - 0.01)).depth > 0)

        // Through the rule engine: a commanded posture that bends the tip far sideways trips lumen.
        var b = Bench(model)
        _ = b.bringUp()
        let v = b.step { i in
            i.commandedPosition[2] = 1.4
            i.commandedPosition[4] = 1.25
            i.position = i.commandedPosition
            i.encoderPosition = i.commandedPosition
        }
        #expect(v.latched & SafetyCheck.lumen.bit != 0)
    }

    @Test func aFastJointTripsBeforeItsLimitWhereItsStopWouldEnd() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        // 2 mm before the upper insertion limit at 20 mm/s: braking at 90 mm/s² needs 2.2 mm.
        let v = b.step { i in
            i.position[0] = model.upper[0] - 2
            i.encoderPosition[0] = i.position[0]
            i.velocity[0] = 20
            i.commandActive = false
        }
        #expect(v.latched & SafetyCheck.position.bit != 0)
        var c = Bench(model)
        _ = c.bringUp()
        let slow = c.step { i in
            i.position[0] = model.upper[0] - 2
            i.encoderPosition[0] = i.position[0]
            i.velocity[0] = 5
            i.commandActive = false
        }
        #expect(slow.latched & SafetyCheck.position.bit == 0)
    }

    @Test func commandedJumpsImplyASpeedFromTheControlsOwnTimestamps() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        // 0.02 mm per 1 ms heartbeat is 20 mm/s: fine. 0.03 mm is 30 mm/s: too fast.
        var q = 100.0
        for _ in 0..<5 {
            q += 0.02
            let v = b.step { $0.commandedPosition[0] = q; $0.position[0] = q; $0.encoderPosition[0] = q }
            #expect(v.latched == 0)
        }
        q += 0.03
        let v = b.step { $0.commandedPosition[0] = q; $0.position[0] = q; $0.encoderPosition[0] = q }
        #expect(v.latched & SafetyCheck.velocity.bit != 0)
    }

    @Test func staleOrFutureImagesTripOnlyInImageGuidedMode() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        #expect(b.step { $0.imageAcquiredAt = $0.now - model.imageMaxAge + 1_000_000 }.latched == 0)
        #expect(b.step { $0.imageGuided = false; $0.imageAcquiredAt = 0 }.latched == 0)
        #expect(b.step { $0.imageAcquiredAt = $0.now - model.imageMaxAge - 1_000_000 }.latched & SafetyCheck.imageStale.bit != 0)
        var c = Bench(model)
        _ = c.bringUp()
        #expect(c.step { $0.imageAcquiredAt = $0.now + 50_000_000 }.latched & SafetyCheck.imageStale.bit != 0)
    }

    @Test func linkChecks() throws {
        let model = try Fixture.model()
        // The monitor's own channel: samples that stop advancing.
        var b = Bench(model)
        _ = b.bringUp()
        let stuck = b.now
        var tripped = 0
        for k in 1...5 {
            let v = b.step { $0.sampledAt = stuck }
            if v.latched & SafetyCheck.link.bit != 0, tripped == 0 { tripped = k }
        }
        #expect(tripped == model.maxConsecutiveLost)

        // CRC errors: a burst at the limit passes, one more trips; isolated ones leak away.
        var c = Bench(model)
        _ = c.bringUp()
        var crc: UInt64 = 0
        for _ in 0..<3000 {
            if c.now % 1_000_000_000 == 0 { crc += 1 }  // one a second
            #expect(c.step { $0.crcErrors = crc }.latched == 0)
        }
        for _ in 0..<200 { c.step { $0.crcErrors = crc } }  // the last isolated one leaks away
        crc += UInt64(model.crcBurst)
        #expect(c.step { $0.crcErrors = crc }.latched == 0)
        crc += 2
        #expect(c.step { $0.crcErrors = crc }.latched & SafetyCheck.crc.bit != 0)

        var d = Bench(model)
        _ = d.bringUp()
        #expect(d.step { $0.wkcErrors = 10 }.latched & SafetyCheck.workingCounter.bit != 0)
        var e = Bench(model)
        _ = e.bringUp()
        #expect(e.step { $0.lostFrames = 10 }.latched & SafetyCheck.link.bit != 0)
    }

    /// Steps a powered monitor up to 10 000 times with CRC errors at 80 % of the per-second
    /// limit in the monitor's time, the control's sequence advancing by `advance` every
    /// `every`-th step; returns the step at which `crc` latched, if it did, and the bucket's peak.
    func crcAtEightyPercent(_ model: MonitorModel, controlEvery every: Int, advance: UInt64) -> (latchedAt: Int?, bucketPeak: Double) {
        let perSecond = model.crcLeak * 1e9 / Double(model.period)
        let gap = Int((1e9 / Double(model.period)) / (0.8 * perSecond))  // monitor steps between errors
        var b = Bench(model)
        _ = b.bringUp()
        var crc: UInt64 = 0, control = b.sequence, peak = 0.0
        for i in 1...10_000 {
            if i % every == 0 { control += advance }
            if i % gap == 0 { crc += 1 }
            let v = b.step { $0.heartbeatSequence = control; $0.crcErrors = crc }
            peak = max(peak, b.state.crcBucket)
            if v.latched & SafetyCheck.crc.bit != 0 { return (i, peak) }
        }
        return (nil, peak)
    }

    /// The link's rates are per control cycle: a cycle slowed to a quarter of its rate, with
    /// errors at 80 % of the per-second limit in the monitor's time, has three in a hundred
    /// exchanges corrupt, three times the limit's fraction. At the full rate the same errors
    /// a second are within the limit.
    @Test func aSlowedLinkIsHeldToTheSameFractionOfCorruptExchanges() throws {
        let model = try Fixture.model()
        let full = crcAtEightyPercent(model, controlEvery: 1, advance: 1), slowed = crcAtEightyPercent(model, controlEvery: 4, advance: 1)
        #expect(full.latchedAt == nil, "tripped at step \(full.latchedAt ?? -1) on errors within the rate")
        #expect(slowed.latchedAt != nil, "a quarter-rate link with 3 % corrupt exchanges was not caught (bucket peak \(slowed.bucketPeak))")
    }

    /// Heartbeats of a full-rate cycle that reach the monitor three at a time (a loaded
    /// machine delivers them together) leak all three cycles: the same errors within the rate
    /// do not trip.
    @Test func heartbeatsArrivingTogetherStillLeakTheCyclesThatRan() throws {
        let batched = crcAtEightyPercent(try Fixture.model(), controlEvery: 3, advance: 3)
        #expect(batched.latchedAt == nil, "tripped at step \(batched.latchedAt ?? -1), bucket peak \(batched.bucketPeak)")
    }

    /// A heartbeat sequence that jumps does not leak the buckets for the cycles it skipped: only
    /// as many as fit in the monitor's own time since the last heartbeat it leaked for.
    @Test func aJumpingSequenceCannotEmptyTheLinkBuckets() throws {
        let model = try Fixture.model()
        var b = Bench(model)
        _ = b.bringUp()
        var crc = UInt64(model.crcBurst)
        let atLimit = b.step { $0.crcErrors = crc }
        b.sequence += 1_000_000_000
        crc += 1
        let jumped = b.step { $0.crcErrors = crc }
        #expect(atLimit.latched == 0)
        #expect(jumped.latched & SafetyCheck.crc.bit != 0, "bucket \(b.state.crcBucket) after the jump")
    }
}
