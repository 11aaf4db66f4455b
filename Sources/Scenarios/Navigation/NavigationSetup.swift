import Control
import Core
import Imaging

/// Where a navigation run's tip measurements come from.
public enum MeasurementSource: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// The tracker on the simulated fluoroscopy frames.
    case tracker
    /// The simulated tip itself, as a 3D point with a 0.1 mm σ of noise drawn from the seed, at the
    /// same rate and latency, no frames rendered: tells control failures from tracking failures.
    case truth

    public var description: String { rawValue }
}

/// One navigation run: which target, how the C-arm stands, how the images are made and late.
public struct NavigationSetup: Sendable, Codable, Equatable {
    public var phantom = "arch"
    public var vessel = "left_subclavian"
    /// mm into the target vessel.
    public var depth = 25.0
    public var primaryDeg = 0.0
    public var secondaryDeg = 0.0
    public var seed: UInt64 = 1
    public var photons = 5000.0
    public var fps = 15.0
    /// From acquisition to the measurement reaching the estimator.
    public var latencyMS = 80.0
    public var maxSeconds = 90.0
    public var startInsertionMM = 60.0
    /// The robot file the description came from (recorded with the result; one bending section,
    /// as the physics catheter has).
    public var robot = "robots/lumen-1s.yaml"
    public var measurements = MeasurementSource.tracker
    /// Pixels per side of both C-arm planes' detectors, and their spacing (mm).
    public var detectorPixels = 1024
    public var pixelSpacingMM = 0.3
    /// mm outside the roadmap's lumen a triangulated tip may lie before the pair is taken for
    /// two wrong detections (the measurer's `roadmapMarginMM`).
    public var roadmapMargin = 3.0
    /// The path servo's corner manoeuvres (`PathServo.withCornerManoeuvres`); nil is off
    /// (they did worse than without on the brachiocephalic: docs/navigation-corners.md).
    /// Optional so that results recorded before it decode.
    public var cornerManoeuvres: Bool?
    /// A take-off sharper than a forward push turns is engaged with a reverse curve (past the
    /// opening, the bend turned back, withdrawn until the tip drops in: `PathServo.planHairpin`);
    /// nil is off (measured on the brachiocephalic it did no better than pushing:
    /// docs/navigation-corners.md), true on.
    public var reverseCurve: Bool?
    /// The simulated C-arm renders whole frames, not just the regions the measurer searches
    /// (nil: the regions, and the whole frames only when a search needs them): for comparisons.
    public var wholeFrames: Bool?

    public init() {}

    public func validate() throws(NavigationError) {
        let positive: [(Double, String, ClosedRange<Double>)] = [
            (depth, "depth", 0...500), (photons, "photons", 1...1e9), (fps, "fps", 0.1...1000),
            (maxSeconds, "max_seconds", 0.001...3600),
            (roadmapMargin, "roadmap_margin", 0...100), (pixelSpacingMM, "pixel_spacing_mm", 0.01...5),
        ]
        for (v, f, range) in positive {
            guard v.isFinite, v > 0, range.contains(v) else { throw .badSetup(field: f, reason: "must be in (0, \(range.upperBound)], got \(v)") }
        }
        // 0: the bending section and tip just out of the sheath.
        guard startInsertionMM.isFinite, (0...2000).contains(startInsertionMM) else {
            throw .badSetup(field: "start_insertion_mm", reason: "must be in [0, 2000], got \(startInsertionMM)")
        }
        guard (64...4096).contains(detectorPixels) else {
            throw .badSetup(field: "detector_pixels", reason: "must be 64…4096, got \(detectorPixels)")
        }
        guard latencyMS.isFinite, (0...10_000).contains(latencyMS) else {
            throw .badSetup(field: "latency_ms", reason: "must be 0…10000 ms, got \(latencyMS)")
        }
        for (v, f) in [(primaryDeg, "primary_deg"), (secondaryDeg, "secondary_deg")] {
            guard v.isFinite, (-180...180).contains(v) else { throw .badSetup(field: f, reason: "must be -180…180°, got \(v)") }
        }
    }

    /// The measurer's settings this setup asks for.
    public var measurerSettings: BiplaneMeasurerSettings {
        var s = BiplaneMeasurerSettings()
        s.roadmapMarginMM = roadmapMargin
        return s
    }
}

/// Faults injected into a run, to prove it ends safely.
public struct NavigationFaults: Sendable, Equatable {
    /// From this simulated time on (s), every tip measurement reaches the cycle with NaN in its
    /// position and pixel.
    public var corruptMeasurementsAfter: Double?
    /// From `after` (simulated s) on, the insertion-force sensor reads `biasN` N more
    /// (`CatheterPhysicsRobot.forceSensorBias`).
    public var forceSensorBias: (after: Double, biasN: Double)?
    public init(corruptMeasurementsAfter: Double? = nil, forceSensorBias: (after: Double, biasN: Double)? = nil) {
        self.corruptMeasurementsAfter = corruptMeasurementsAfter
        self.forceSensorBias = forceSensorBias
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.corruptMeasurementsAfter == b.corruptMeasurementsAfter && a.forceSensorBias?.after == b.forceSensorBias?.after
            && a.forceSensorBias?.biasN == b.forceSensorBias?.biasN
    }
}

/// Why a navigation run could not start or went on no further.
public enum NavigationError: Error, Equatable, Sendable, CustomStringConvertible {
    case badSetup(field: String, reason: String)
    case unknownPhantom(String)
    /// No route to the target in the phantom.
    case route(String)
    /// The physics catheter could not be built for the route.
    case rod(String)
    case lifecycle(LifecycleError)
    case guidance(GuidanceError)
    /// The supervisor would not enter the tip servo at the start.
    case tipServoRefused
    /// The frame source failed.
    case imaging(String)
    /// More measurements were in flight than the mailbox holds.
    case mailboxFull

    public var description: String {
        switch self {
        case .badSetup(let f, let r): "navigation setup \(f): \(r)"
        case .unknownPhantom(let p): "unknown phantom '\(p)'; see `lumen sim phantom` for the phantoms there are"
        case .route(let m): "no route to the target: \(m)"
        case .rod(let m): "the physics catheter cannot be built for this route: \(m)"
        case .lifecycle(let e): "the control cycle refused: \(e)"
        case .guidance(let e): "\(e)"
        case .tipServoRefused: "the supervisor refused the tip servo at the start"
        case .imaging(let m): "the frame source failed: \(m)"
        case .mailboxFull: "the measurement mailbox is full: the latency holds more measurements than it has slots for"
        }
    }
}
