import Control
import Core
import Testing
@testable import Safety
@testable import Scenarios

@Suite struct CampaignTests {
    func campaign(faults: Int, seed: UInt64, kinds: [FaultKind] = FaultKind.allCases) throws -> SafetyCampaign {
        SafetyCampaign(description: try Fixture.robot(), limits: try Fixture.limits(),
                       options: CampaignOptions(faults: faults, seed: seed, kinds: kinds))
    }

    /// 54 faults, three of every kind: all detected, all within their targets, no false trips.
    @Test func everyFaultKindIsDetectedWithinItsTarget() throws {
        let c = try campaign(faults: 3 * FaultKind.allCases.count, seed: 11)
        let results = c.runFaults()
        #expect(results.count == 54)
        for kind in FaultKind.allCases { #expect(results.filter { $0.kind == kind }.count == 3) }
        for r in results {
            #expect(r.ready, "\(r.kind) injected before the robot was up")
            #expect(r.detected, "\(r.kind) missed: \(r)")
            #expect(r.withinTarget, "\(r.kind) outside its target: \(r)")
            #expect(r.warmUpTrips.isEmpty, "false trips before \(r.kind): \(r.warmUpTrips)")
        }
        // The geometric faults never carried the real tip past the real boundary.
        for r in results where r.kind == .noGo || r.kind == .lumen { #expect(try #require(r.penetrationMM) < 0) }
    }

    /// After a CRC storm, the next episode begins only once the CRC bucket is at least one error
    /// below its burst: with the bucket just under it, one nominal CRC error in the warm-up tripped
    /// the monitor and the next fault went into a monitor already stopping (a `monitor_killed`
    /// counted as missed in a 1000-fault campaign).
    @Test func anEpisodeAfterACRCStormStartsOnceTheBucketHasDrained() throws {
        let c = try campaign(faults: 0, seed: 4)
        let storm = c.runEpisode(.crc)
        #expect(storm.detected)
        #expect(c.monitorState.crcBucket > c.model.crcBurst - 1, "the storm left \(c.monitorState.crcBucket)")
        #expect(c.bringUp())
        #expect(c.linkSettled)
        #expect(c.monitorState.crcBucket <= c.model.crcBurst - 1)
    }

    /// The campaign can fail: drives whose safety-line watchdog is 50 ms disable themselves
    /// too late when the monitor dies, and the campaign says so.
    @Test func aSlowDriveWatchdogFailsTheMonitorKilledTarget() throws {
        let c = SafetyCampaign(description: try Fixture.robot(), limits: try Fixture.limits(),
                               options: CampaignOptions(faults: 2, seed: 3, kinds: [.monitorKilled], safetyWatchdog: 0.05))
        let results = c.runFaults()
        #expect(results.count == 2)
        for r in results {
            #expect(r.detected)
            #expect(!r.withinTarget)
            #expect(try #require(r.reactionMS) > 49)
        }
    }

    @Test func nominalNavigationDoesNotTrip() throws {
        let c = try campaign(faults: 0, seed: 5)
        let nominal = c.runNominal(minutes: 0.25)
        #expect(nominal.falseTrips == 0, "\(nominal.trips)")
        // Margins were measured, below their limits, and the robot really moved.
        let v = try #require(nominal.margins["velocity.insertion"])
        #expect(v.peak > 1 && v.peak < v.limit)
        #expect(try #require(nominal.margins["heartbeat_age_ms"]).peak < 5)
    }
}
