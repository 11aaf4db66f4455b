import Core
import Foundation
import Testing
@testable import Imaging

/// Catheters wider in pixels than the default ridge scales and top-hat cover (fine pitch, a
/// large catheter): the wide detector acquires them, and it does not take over where the
/// default one sees the catheter.
@Suite struct WideCatheterTests {
    /// A 2.4 mm catheter at 0.15 mm pitch: 16 px across.
    func wideScene(seed: UInt64) -> BezierScene {
        var s = BezierScene()
        s.size = 320
        s.width = 16
        s.density = 0.5
        s.photons = 3000
        s.p0 = (-20, 170); s.p1 = (80, 60); s.p2 = (170, 260); s.p3 = (230, 140)
        s.seed = seed
        return s
    }

    func wideTracker() throws -> TipTracker {
        var settings = TrackerSettings()
        settings.wideDetector = .wide
        return try TipTracker(settings: settings)
    }

    @Test(arguments: [UInt64(21), 22])
    func aWideCatheterIsAcquiredAndTrackedByTheWideDetector(seed: UInt64) throws {
        let tracker = try wideTracker()
        var t: Nanoseconds = 0
        for k in 0..<4 {
            var s = wideScene(seed: seed + UInt64(10 * k))
            s.shift = (1.5 * Double(k), -1.0 * Double(k))
            let r = try tracker.track(s.frame(at: t))
            #expect(r.status == .tracked, "frame \(k)")
            #expect(tracker.wide, "frame \(k): the wide detector follows the track")
            // The Gaussian cap puts the half-height point up to half a width past the curve's end.
            let err = hypot(r.u - s.tip.0, r.v - s.tip.1)
            #expect(err < 0.5 * s.width + 2, "frame \(k): tip (\(r.u), \(r.v)) vs (\(s.tip.0), \(s.tip.1)), error \(err) px")
            t += Nanoseconds.fromSeconds(1.0 / 15)
        }
    }

    @Test func theWideDetectorIsOffByDefault() throws {
        let tracker = try TipTracker()
        #expect(tracker.wideDetector == nil)
        _ = try tracker.track(wideScene(seed: 21).frame())
        #expect(!tracker.wide)
    }

    @Test(arguments: [(3.0, UInt64(31)), (6.0, 32)])
    func aCatheterOfOrdinaryWidthIsStillFoundWithTheWideDetectorOn(width: Double, seed: UInt64) throws {
        var s = BezierScene()
        s.width = width
        s.seed = seed
        let tracker = try wideTracker()
        let r = try tracker.track(s.frame())
        // Which detector wins is not asserted: the score comparison lets the wide one take
        // ordinary catheters too (why it is off by default); the tip must still be right.
        #expect(r.status == .tracked)
        #expect(hypot(r.u - s.tip.0, r.v - s.tip.1) < 3)
    }

    @Test func aBadWidePreferenceOrWideSettingIsATypedError() {
        var s = TrackerSettings()
        s.widePreference = .nan
        #expect(throws: TrackingError.badSetting(field: "wide_preference", reason: "must be a finite number > 0, got nan")) { try TipTracker(settings: s) }
        s = TrackerSettings()
        s.wideDetector = .wide
        s.wideDetector?.ridge.sigmaMax = -1
        #expect(throws: TrackingError.self) { try TipTracker(settings: s) }
    }

    @Test func resetForgetsTheWideTrack() throws {
        let tracker = try wideTracker()
        _ = try tracker.track(wideScene(seed: 23).frame())
        #expect(tracker.wide)
        tracker.reset()
        #expect(!tracker.wide)
    }
}
