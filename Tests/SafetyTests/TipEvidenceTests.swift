import CAllocCount
import Core
import Foundation
import Testing
@testable import Safety

/// The lumen check on `along_lumen` tip evidence (docs/safety/tip-evidence.md): a catheter the
/// vessel bends is judged by its length out of the sheath and by the image-measured tip, not by
/// the kinematic tip that goes straight where the vessel turns.
@Suite struct TipEvidenceTests {
    /// A vessel that runs 100 mm up from the sheath, turns a quarter circle of 30 mm radius and
    /// runs 200 mm on sideways; 8 mm lumen radius. About 347 mm of centreline.
    static let bend: [Vec3] = {
        var p = [Vec3(0, 0, 0), Vec3(0, 0, 100)]
        for k in 1...6 {
            let a = Double(k) / 6 * .pi / 2
            p.append(Vec3(30 - 30 * cos(a), 0, 100 + 30 * sin(a)))
        }
        p.append(Vec3(230, 0, 130))
        return p
    }()

    static func limitsText(evidence: String?, corridor: [Vec3] = bend, radius: Double = 8) -> String {
        let lumen = ["lumen:"] + (evidence.map { ["  tip_evidence: \($0)"] } ?? []) + [
            "  centerline_mm: [\(corridor.map { "[\($0.x), \($0.y), \($0.z)]" }.joined(separator: ", "))]",
            "  radius_mm: [\(corridor.map { _ in "\(radius)" }.joined(separator: ", "))]",
        ]
        var out: [String] = []
        var skipping = false
        for line in Fixture.limitsText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("lumen:") {
                out += lumen
                skipping = true
                continue
            }
            if skipping, line.hasPrefix("  ") { continue }
            skipping = false
            out.append(line)
        }
        return out.joined(separator: "\n")
    }

    static func load(_ text: String) throws -> SafetyLimits {
        let path = NSTemporaryDirectory() + "lumen-tip-evidence-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try SafetyLimits.load(from: path).limits
    }

    static func model(_ evidence: String? = "along_lumen") throws -> MonitorModel { MonitorModel(try load(limitsText(evidence: evidence))) }

    /// Where a catheter `length` mm out of the sheath lies on the bend's centreline.
    static func onCentreline(_ length: Double) -> Vec3 {
        var left = length
        for i in 0..<(bend.count - 1) {
            let a = bend[i], b = bend[i + 1], d = (b - a).length
            if left <= d { return a + (b - a) * (left / d) }
            left -= d
        }
        return bend[bend.count - 1]
    }

    /// A monitor brought up (three cycles, an acknowledge) on inputs that `with` changes; it permits power.
    static func poweredUp(_ model: MonitorModel, with: (inout MonitorInputs) -> Void) -> Bench {
        var b = Bench(model)
        for _ in 0..<3 { b.step(with) }
        #expect(b.acknowledgeOnce(with).permit)
        return b
    }

    @Test func theEvidenceIsKinematicUnlessTheFileSaysOtherwise() throws {
        #expect(try Self.load(Self.limitsText(evidence: nil)).lumen.tipEvidence == .kinematic)
        #expect(try Self.load(Self.limitsText(evidence: "kinematic")).lumen.tipEvidence == .kinematic)
        #expect(try Self.load(Self.limitsText(evidence: "along_lumen")).lumen.tipEvidence == .alongLumen)
        #expect(throws: ConfigError.self) { try Self.load(Self.limitsText(evidence: "image")) }
        let g = try Self.model().geometry
        #expect(g.alongLumen)
        #expect(abs(g.corridorLength - (100 + 200 + 6 * 2 * 30 * sin(Double.pi / 24))) < 1e-9)
        #expect(abs(g.distalLength - 50) < 1e-9)
        // The inner-wall shortcut of the quarter turn: radius times the turn, π/2 × 8 mm.
        let end = g.alongCorridor(Vec3(230, 0, 130))
        #expect(abs(end.shortcut - 8 * .pi / 2) < 1e-6)
        #expect(abs(end.arc - g.corridorLength) < 1e-9)
        // Its mirror, the outer wall's detour round the whole corridor: the same π/2 × 8 mm.
        #expect(abs(g.corridorSlack - 8 * .pi / 2) < 1e-6)
        // Before the bend: less than its first corner's share.
        #expect(g.alongCorridor(Vec3(1, 0, 50)).shortcut < 8 * .pi / 12)
    }

    /// The finding this evidence answers: a catheter following the bend, 150 mm out, whose
    /// kinematic tip runs straight on 28 mm past the wall. The kinematic check stops it; the
    /// evidence along the lumen lets it go on.
    @Test func aCatheterTheVesselBendsIsNotStoppedWhenItsImageTipIsInTheLumen() throws {
        var kinematic = Bench(try Self.model(nil))
        _ = kinematic.bringUp()
        #expect(kinematic.step().latched & SafetyCheck.lumen.bit != 0)

        let model = try Self.model()
        let tip = Self.onCentreline(150)
        let measured: (inout MonitorInputs) -> Void = { i in
            i.imageTip = tip + Vec3(0, 2, 0)
            i.imageTipAcquiredAt = i.now - 80_000_000
        }
        var b = Self.poweredUp(model, with: measured)
        for _ in 0..<200 {
            let v = b.step(measured)
            #expect(v.latched == 0)
        }
    }

    /// The catheter really leaving the lumen: its image tip 15 mm beside the centreline (a side
    /// branch, or through the wall) latches `lumen` with category 1: a controlled stop begins.
    @Test func anImageTipOutsideTheLumenStopsTheCatheter() throws {
        let model = try Self.model()
        let ok: (inout MonitorInputs) -> Void = { i in
            i.imageTip = Self.onCentreline(150)
            i.imageTipAcquiredAt = i.now - 50_000_000
        }
        var b = Self.poweredUp(model, with: ok)
        let v = b.step { i in
            i.imageTip = Vec3(-15, 0, 60)
            i.imageTipAcquiredAt = i.now - 50_000_000
        }
        #expect(v.latched & SafetyCheck.lumen.bit != 0)
        #expect(v.category == .one)
        #expect(v.controlledStop)
        let record = try #require(b.state.record(.lumen))
        #expect(record.index == 1)
        #expect(record.value > 0)
        // Back inside, the latch holds until acknowledged.
        #expect(b.step(ok).latched & SafetyCheck.lumen.bit != 0)
    }

    /// A measured tip is judged at the wall (`image_tip_margin_mm`, default 0), not by the margin
    /// of the monitor's own model (`tip_margin_mm`, 1 mm here): a correct catheter riding the wall
    /// is measured closer to it than that. Beyond the wall it still latches `lumen` (index 1), and
    /// a file that asks for an image-tip margin gets it.
    @Test func aMeasuredTipIsJudgedAtTheWallNotTheModelsMargin() throws {
        let text = Self.limitsText(evidence: "along_lumen")
        #expect(try Self.load(text).catheter.tipMarginMM == 1)
        #expect(try Self.load(text).catheter.imageTipMarginMM == 0)
        #expect(try Self.load(text.replacingOccurrences(of: "  image_tip_margin_mm: 0 ", with: "")).catheter.imageTipMarginMM == 0)
        func measured(_ sideways: Double) -> (inout MonitorInputs) -> Void {
            { i in
                i.imageTip = Self.onCentreline(50) + Vec3(0, sideways, 0)
                i.imageTipAcquiredAt = i.now - 50_000_000
            }
        }
        // 0.3 mm inside the 8 mm wall: inside the model's margin, not a trip.
        var inside = Self.poweredUp(MonitorModel(try Self.load(text)), with: measured(7.7))
        for _ in 0..<50 { #expect(inside.step(measured(7.7)).latched == 0) }
        // 0.2 mm beyond the wall.
        var beyond = Self.poweredUp(MonitorModel(try Self.load(text)), with: measured(7.7))
        let v = beyond.step(measured(8.2))
        #expect(v.latched & SafetyCheck.lumen.bit != 0)
        let record = try #require(beyond.state.record(.lumen))
        #expect(record.index == 1)
        #expect(abs(record.value - 0.2) < 1e-6)
        // A site that asks for 0.5 mm: the same 0.3 mm inside now stops.
        let strict = text.replacingOccurrences(of: "  image_tip_margin_mm: 0 ", with: "  image_tip_margin_mm: 0.5 ")
        #expect(try Self.load(strict).catheter.imageTipMarginMM == 0.5)
        var b = Bench(MonitorModel(try Self.load(strict)))
        for _ in 0..<3 { b.step(measured(7.7)) }
        #expect(!b.acknowledgeOnce(measured(7.7)).permit)
        #expect(b.state.record(.lumen)?.index == 1)
        // Not below a lumen radius.
        #expect(throws: ConfigError.self) {
            try Self.load(text.replacingOccurrences(of: "  image_tip_margin_mm: 0 ", with: "  image_tip_margin_mm: 8 "))
        }
    }

    /// The live finding: a pushed catheter rides the outer wall of a bend, so with its tip at the
    /// corridor's end it has more length out than the centreline is long, and it is inside. Here
    /// 10 mm more (the quarter turn's outer wall gives up to 12.6 mm): not stopped.
    @Test func aCatheterAlongTheOuterWallWithItsTipAtTheEndIsNotStopped() throws {
        let model = try Self.model()
        let g = model.geometry
        var q = Fixture.start
        q[0] = g.corridorLength + 10 - g.distalLength
        let outerWall: (inout MonitorInputs) -> Void = { i in
            i.position = q
            i.encoderPosition = q
            i.commandedPosition = q
            i.imageTip = Self.onCentreline(g.corridorLength - 1)
            i.imageTipAcquiredAt = i.now - 50_000_000
        }
        #expect(g.lengthOut(q) > g.corridorLength)
        var b = Self.poweredUp(model, with: outerWall)
        for _ in 0..<100 { #expect(b.step(outerWall).latched == 0) }
    }

    /// More catheter out than the longest way through the corridor (its centreline and the outer
    /// walls' detour round its bends) cannot be inside it unfolded, images or none.
    @Test func pushingMoreCatheterOutThanTheLumenIsLongStops() throws {
        let model = try Self.model()
        let length = model.geometry.corridorLength + model.geometry.corridorSlack
        // Half a millimetre short of the longest way, standing, its image tip at the corridor's end.
        var q = Fixture.start
        q[0] = length - 50 - 0.5
        let atEnd: (inout MonitorInputs) -> Void = { i in
            i.position = q
            i.encoderPosition = q
            i.commandedPosition = q
            i.imageTip = Self.onCentreline(model.geometry.corridorLength - 0.5)
            i.imageTipAcquiredAt = i.now - 50_000_000
        }
        var b = Self.poweredUp(model, with: atEnd)
        #expect(b.step(atEnd).latched == 0)
        // A millimetre further out (the control's command not followed, so only the length speaks).
        let v = b.step { i in
            atEnd(&i)
            i.position[0] += 1
            i.encoderPosition[0] += 1
            i.commandActive = false
        }
        #expect(v.latched == SafetyCheck.lumen.bit)
        #expect(b.state.record(.lumen)?.index == 0)
        #expect(v.category == .one)

        // A command moving on at 10 mm/s would come to rest past the end: it trips before the joints get there.
        var c = Self.poweredUp(model, with: atEnd)
        let w = c.step { i in
            atEnd(&i)
            i.commandedVelocity[0] = 10
        }
        #expect(w.latched == SafetyCheck.lumen.bit)
        #expect(c.state.record(.lumen)?.index == 0)
    }

    /// An image tip further along than the catheter reaches: one of the two sensor paths is wrong.
    @Test func anImageTipTheCatheterCannotReachStops() throws {
        let model = try Self.model()
        let ok: (inout MonitorInputs) -> Void = { i in
            i.imageTip = Self.onCentreline(150)
            i.imageTipAcquiredAt = i.now - 50_000_000
        }
        var b = Self.poweredUp(model, with: ok)
        // 150 mm out; the turn's shortcut is 12.6 mm, the radius 8, the margin 1, and 50 ms at
        // 22 mm/s 1.1 mm: a tip at 160 mm is reachable, one at 190 mm (inside the lumen) is not.
        #expect(b.step { i in i.imageTip = Self.onCentreline(160); i.imageTipAcquiredAt = i.now - 50_000_000 }.latched == 0)
        let v = b.step { i in i.imageTip = Self.onCentreline(190); i.imageTipAcquiredAt = i.now - 50_000_000 }
        #expect(v.latched & SafetyCheck.lumen.bit != 0)
        #expect(b.state.record(.lumen)?.index == 2)
    }

    /// In image-guided mode the monitor needs a fresh image tip to check; out of it, it does not.
    @Test func imageGuidedMotionWithoutAFreshImageTipIsAStaleImage() throws {
        let model = try Self.model()
        let none: (inout MonitorInputs) -> Void = { i in i.imageGuided = false }
        var b = Self.poweredUp(model, with: none)
        for _ in 0..<10 { #expect(b.step(none).latched == 0) }
        // Image-guided, with a tip older than the limit (200 ms in this file).
        let v = b.step { i in
            i.imageTip = Self.onCentreline(150)
            i.imageTipAcquiredAt = i.now - model.imageMaxAge - 1_000_000
        }
        #expect(v.latched & SafetyCheck.imageStale.bit != 0)
        #expect(b.state.record(.imageStale)?.index == 1)
        // And one from the future is no fresher.
        var c = Self.poweredUp(model, with: none)
        let w = c.step { i in
            i.imageTip = Self.onCentreline(150)
            i.imageTipAcquiredAt = i.now + 10 * model.period
        }
        #expect(w.latched & SafetyCheck.imageStale.bit != 0)
    }

    /// The rule engine still allocates nothing with this evidence.
    @Test func theAlongLumenChecksDoNotAllocate() throws {
        try #require(lumen_alloc_count_is_active() == 1, "the allocation counter is not interposed in this process")
        let model = try Self.model()
        var state = MonitorState(model: model)
        var inputs = Fixture.healthy(model, now: 10_000_000_000, sequence: 1)
        inputs.imageTip = Self.onCentreline(150)
        inputs.imageTipAcquiredAt = inputs.now - 50_000_000
        var permits = 0
        lumen_alloc_count_begin()
        for k in 0..<1000 {
            inputs.now += model.period
            inputs.sampledAt = inputs.now
            inputs.heartbeatSequence += 1
            inputs.heartbeatSentAt = inputs.now
            inputs.acknowledge = k == 3
            if Monitor.step(model, &state, inputs).permit { permits += 1 }
        }
        let allocations = lumen_alloc_count_end()
        #expect(allocations == 0)
        #expect(permits > 900)
    }
}
