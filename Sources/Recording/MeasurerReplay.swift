import Control
import Core
import Foundation
import Imaging
import Runtime
import Scenarios

/// What the biplane measurer of a live run was built from, recorded as the configuration
/// document `lumen.navigation`: the scene's setup (phantom and route give the roadmap, the setup
/// the measurer's settings), the robot whose file is recorded beside it, and the planes the
/// frames came from (the frame source's, not necessarily the scene's).
public struct MeasurerSetup: Sendable, Codable, Equatable {
    public static let documentName = "lumen.navigation"
    public var robotName: String
    public var navigation: NavigationSetup
    public var planes: [CArmGeometry]

    public init(robotName: String, navigation: NavigationSetup, planes: [CArmGeometry]) {
        self.robotName = robotName; self.navigation = navigation; self.planes = planes
    }

    var document: ConfigurationDocument? { ConfigurationDocument.json(Self.documentName, self) }
}

/// A running system that can say how its measurer was built (the recorder records it).
public protocol MeasurerDescribing: AnyObject {
    var measurerSetup: MeasurerSetup { get }
}

extension LiveRuntime: MeasurerDescribing {
    /// The scene and planes the runtime built its measurer from (`NavigationScene.makeMeasurer`).
    public var measurerSetup: MeasurerSetup { MeasurerSetup(robotName: scene.robot.name, navigation: scene.setup, planes: imagingPlanes) }
}

/// Why the measurer could not be replayed.
public enum MeasurerReplayError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The recording does not say how its measurer was built (a synthetic run, an older recorder).
    case noMeasurerSetup
    /// Its frame records do not hold what the measurer was given (an older recorder).
    case noMeasurerInput
    case noRobotFile(String)
    case badRobotFile(name: String, reason: String)
    /// The recorded setup does not build a scene or a measurer any more.
    case scene(String)
    case badMessage(topic: String, reason: String)

    public var description: String {
        switch self {
        case .noMeasurerSetup:
            "the recording does not hold its measurer's setup (\(MeasurerSetup.documentName)): only live runs recorded by this version re-measure their frames"
        case .noMeasurerInput:
            "the recording's frame records hold no measurer input (prior, motion): it was recorded by an older version; `--track` re-tracks it with the plain tracker"
        case .noRobotFile(let n): "the robot file of '\(n)' is not among the recorded configuration documents"
        case .badRobotFile(let n, let r): "the recorded robot file of '\(n)' does not load: \(r)"
        case .scene(let r): "the recorded navigation setup does not build its measurer: \(r)"
        case .badMessage(let t, let r): "a message on \(t) does not match its schema: \(r) (was the file written by another version?)"
        }
    }
}

/// The live run's frames measured again by the measurer it used, each exposure with the prior
/// and motion recorded with it, and the answers compared with the recorded measurements.
public struct MeasurerReplayReport: Sendable, Codable, Equatable {
    /// Exposures with at least one frame record.
    public var exposures = 0
    /// Exposures measured again: every plane's image and frame record present.
    public var measured = 0
    /// Exposures not measured again: a plane's image is not in the recording (decimated, refused
    /// by a busy encoder, lost before the recorder drained it) or has no measurer input. The
    /// measurer pairs the planes, so one plane alone is not the exposure it measured.
    public var incomplete = 0
    /// Frames of measured exposures whose image did not decode.
    public var undecodable = 0
    /// Frames compared, the recorded and replayed ones with a tip, and those that agree: both
    /// none, or the same kind (pixels, point) within the tolerances.
    public var frames = 0
    public var recordedFound = 0
    public var replayFound = 0
    public var reproduced = 0
    public var tolerancePx: Double
    public var toleranceMm: Double
    /// px and mm: the largest |replayed − recorded| where both have pixels or a point.
    public var pixelDifferenceMax: Double?
    public var positionDifferenceMaxMm: Double?
    /// Replayed outcomes by kind (pair, whole_frame_pair, pixels, none).
    public var outcomes: [String: Int] = [:]
    /// Lossy frames (JPEG) cannot reproduce what the measurer saw.
    public var lossyFrames = 0
    /// `reproduced / frames` (nil when none was compared): 1 for an unchanged measurer on lossless frames.
    public var reproducedFraction: Double?
}

/// Re-runs a live recording's biplane measurer: builds it from the recorded setup and robot file,
/// and measures each exposure's frames again with the estimate and motion recorded with them.
/// The measurer keeps no state from one exposure to the next, so every complete exposure is
/// reproduced on its own, gaps or not.
public enum MeasurerReplay {
    /// One frame of an exposure as the recording holds it.
    struct RecordedFrame {
        var image: [UInt8]?
        var info: [String: Any]?
        var measurement: [String: Any]?
    }

    public static func run(_ path: String, tolerancePx: Double = 0.5, toleranceMm: Double = 0.05) throws -> MeasurerReplayReport {
        var topics: [UInt16: String] = [:]
        var documents: [String: [UInt8]] = [:]
        var pending: [Int64: [Int: RecordedFrame]] = [:]
        var exposures: [Int64: [Int: RecordedFrame]] = [:]
        var sawInput = false
        func object(_ m: MCAPRecording.Message, _ topic: String) throws -> [String: Any] {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(m.data))) as? [String: Any] else {
                throw MeasurerReplayError.badMessage(topic: topic, reason: "not a JSON object")
            }
            return o
        }
        // An exposure is complete once each of its planes has its image, frame record and
        // measurement; the recorder writes them at different times, interleaved with others.
        func complete(_ frames: [Int: RecordedFrame]) -> Bool {
            guard let planes = frames.values.lazy.compactMap({ ($0.info?["exposure_planes"] as? NSNumber)?.intValue }).first else { return false }
            return frames.count == planes && frames.values.allSatisfy { $0.image != nil && $0.info != nil && $0.measurement != nil }
        }
        _ = try MCAPRecording.read(path) { m in
            guard let topic = topics[m.channel] else { return }
            if topic == RecordingChannels.configuration {
                let o = try object(m, topic)
                if let name = o["name"] as? String, let text = o["text"] as? String { documents[name] = Array(text.utf8) }
                return
            }
            guard let plane = RecordingChannels.plane(ofTopic: topic) else { return }
            let t = Int64(clamping: m.logTime)
            var f = pending[t]?[plane] ?? RecordedFrame()
            if topic.hasSuffix("/image") {
                let o = try object(m, topic)
                guard let s = o["data"] as? String, let d = Data(base64Encoded: s) else { throw MeasurerReplayError.badMessage(topic: topic, reason: "no base64 data") }
                f.image = Array(d)
            } else if topic.hasSuffix("/frame") {
                let o = try object(m, topic)
                if o["prior"] != nil { sawInput = true }
                f.info = o
            } else if topic.hasSuffix("/measurement") {
                f.measurement = try object(m, topic)
            } else {
                return
            }
            pending[t, default: [:]][plane] = f
            if let frames = pending[t], complete(frames) {
                exposures[t] = frames
                pending[t] = nil
            }
        } channels: { c in topics[c.id] = c.topic }

        guard let setupBytes = documents[MeasurerSetup.documentName] else { throw MeasurerReplayError.noMeasurerSetup }
        let setup: MeasurerSetup
        do { setup = try JSONDecoder().decode(MeasurerSetup.self, from: Data(setupBytes)) } catch {
            throw MeasurerReplayError.badMessage(topic: RecordingChannels.configuration, reason: "\(MeasurerSetup.documentName): \(error)")
        }
        guard sawInput else { throw MeasurerReplayError.noMeasurerInput }
        let robot: RobotDescription
        do { robot = try EstimatorReplay.robotFile(named: setup.robotName, in: documents.filter { $0.key != MeasurerSetup.documentName }) } catch {
            switch error as? EstimatorReplayError {
            case .badRobotFile(let n, let r): throw MeasurerReplayError.badRobotFile(name: n, reason: r)
            default: throw MeasurerReplayError.noRobotFile(setup.robotName)
            }
        }
        let measurer: BiplaneTipMeasurer
        do { measurer = try NavigationScene(setup.navigation, robot: robot).makeMeasurer(planes: setup.planes) } catch { throw MeasurerReplayError.scene("\(error)") }

        var report = MeasurerReplayReport(tolerancePx: tolerancePx, toleranceMm: toleranceMm)
        // Exposures whose frames never all arrived: counted, not measured.
        var incomplete = 0
        for frames in pending.values where frames.values.contains(where: { $0.info != nil || $0.image != nil }) { incomplete += 1 }
        report.incomplete = incomplete
        report.exposures = exposures.count + incomplete
        for t in exposures.keys.sorted() {
            guard let frames = exposures[t] else { continue }
            exposures[t] = nil
            var shots: [PlaneFrame] = []
            var prior: TipEstimate?
            var decodable = true
            for (plane, f) in frames.sorted(by: { $0.key < $1.key }) {
                guard let info = f.info, let image = f.image, let input = measurerInput(info) else { decodable = false; break }
                prior = input.prior
                guard let w = (info["width"] as? NSNumber)?.intValue, let h = (info["height"] as? NSNumber)?.intValue,
                      let format = (info["format"] as? String).flatMap(FrameFormat.init(rawValue:)) else {
                    throw MeasurerReplayError.badMessage(topic: RecordingChannels.frame(plane: plane), reason: "no width, height or format")
                }
                if format != .png { report.lossyFrames += 1 }
                guard let pixels = try? FrameCodec.decode(image, width: w, height: h, format: format) else {
                    report.undecodable += 1
                    decodable = false
                    break
                }
                shots.append(PlaneFrame(plane: plane, frame: Frame(width: w, height: h, pixels: pixels, acquiredAt: t, pixelPitchMM: input.pitch),
                                        motion: input.motion))
            }
            guard decodable, let prior else { report.incomplete += 1; continue }
            let replayed: BiplaneMeasurement
            do { replayed = try measurer.measure(shots, prior: prior) } catch { throw MeasurerReplayError.scene("measuring the exposure at \(t) ns: \(error)") }
            report.measured += 1
            report.outcomes[outcomeName(replayed.outcome), default: 0] += 1
            for (plane, f) in frames {
                guard let recorded = f.measurement else { continue }
                report.frames += 1
                let a = recordedTip(recorded), b = replayed.measurement(onPlane: plane)
                if a.pixel != nil || a.position != nil { report.recordedFound += 1 }
                if b?.pixel != nil || b?.position != nil { report.replayFound += 1 }
                var same = (a.pixel == nil) == (b?.pixel == nil) && (a.position == nil) == (b?.position == nil)
                if let p = a.pixel, let q = b?.pixel {
                    let d = ((p - q) * (p - q)).sum().squareRoot()
                    report.pixelDifferenceMax = max(report.pixelDifferenceMax ?? 0, d)
                    same = same && d <= tolerancePx
                }
                if let p = a.position, let q = b?.position {
                    let d = (p - q).length
                    report.positionDifferenceMaxMm = max(report.positionDifferenceMaxMm ?? 0, d)
                    same = same && d <= toleranceMm
                }
                if same { report.reproduced += 1 }
            }
        }
        report.reproducedFraction = report.frames > 0 ? Double(report.reproduced) / Double(report.frames) : nil
        return report
    }

    /// The measurer input of a frame record; nil when it holds none.
    static func measurerInput(_ info: [String: Any]) -> (prior: TipEstimate, motion: Vec3, pitch: Double?)? {
        guard let o = info["prior"] as? [String: Any], let p = RecordingChannels.doubles(o["position"], 3), let c = RecordingChannels.doubles(o["covariance"], 9),
              let health = (o["health"] as? NSNumber).flatMap({ EstimateHealth(rawValue: $0.uint8Value) }),
              let m = RecordingChannels.doubles(info["motion_mm"], 3) else { return nil }
        let prior = TipEstimate(position: Vec3(p[0], p[1], p[2]), covariance: Mat3(rows: Vec3(c[0], c[1], c[2]), Vec3(c[3], c[4], c[5]), Vec3(c[6], c[7], c[8])),
                                health: health, time: (o["time_ns"] as? NSNumber)?.int64Value ?? 0,
                                lastImageAt: (o["last_image_ns"] as? NSNumber)?.int64Value ?? 0)
        return (prior, Vec3(m[0], m[1], m[2]), (info["frame_pitch_mm"] as? NSNumber)?.doubleValue)
    }

    static func recordedTip(_ o: [String: Any]) -> (pixel: SIMD2<Double>?, position: Vec3?) {
        let px = RecordingChannels.doubles(o["pixel"], 2).map { SIMD2($0[0], $0[1]) }
        let p = RecordingChannels.doubles(o["position"], 3).map { Vec3($0[0], $0[1], $0[2]) }
        return (px, p)
    }

    static func outcomeName(_ o: BiplaneOutcome) -> String {
        switch o {
        case .pair: "pair"
        case .wholeFramePair: "whole_frame_pair"
        case .singlePlanePixels: "pixels"
        case .none: "none"
        }
    }
}
