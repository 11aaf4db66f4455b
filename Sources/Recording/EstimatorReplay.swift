import Control
import Core
import Foundation
import Runtime

/// What the estimator of a live run was built from, recorded as the configuration document
/// `lumen.estimator` so that a replay can build the same one: the robot (its file is recorded
/// beside it; the base is where the run placed it), the C-arm planes, and the two settings the
/// run chose.
public struct EstimatorSetup: Sendable, Codable, Equatable {
    public static let documentName = "lumen.estimator"
    public var robotName: String
    /// (3) mm and (3) rad: the robot's base as the run placed it (at the sheath).
    public var basePositionMM: [Double]
    public var baseRPYRad: [Double]
    public var planes: [CArmGeometry]
    public var resetFromPixels: Bool
    /// Cycles of history the estimator kept for late measurements.
    public var historyLength: Int

    public init(robotName: String, basePositionMM: [Double], baseRPYRad: [Double], planes: [CArmGeometry], resetFromPixels: Bool, historyLength: Int) {
        self.robotName = robotName; self.basePositionMM = basePositionMM; self.baseRPYRad = baseRPYRad; self.planes = planes
        self.resetFromPixels = resetFromPixels; self.historyLength = historyLength
    }

    var document: ConfigurationDocument? { ConfigurationDocument.json(Self.documentName, self) }
}

/// A running system that can say how its estimator was built (the recorder records it).
public protocol EstimatorDescribing: AnyObject {
    var estimatorSetup: EstimatorSetup { get }
}

extension LiveRuntime: EstimatorDescribing {
    /// As `NavigationScene.makeController` builds it, with the planes and history `LiveRuntime` gives it.
    public var estimatorSetup: EstimatorSetup {
        EstimatorSetup(robotName: scene.robot.name, basePositionMM: scene.robot.base.positionMM, baseRPYRad: scene.robot.base.rpyRad,
                       planes: imagingPlanes, resetFromPixels: imagingPlanes.count < 2, historyLength: 4096)
    }
}

/// Why the estimator could not be replayed.
public enum EstimatorReplayError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The recording does not say how its estimator was built (a synthetic run, an older recorder).
    case noEstimatorSetup
    /// The robot file the estimator was built from is not among the recorded configuration.
    case noRobotFile(String)
    case badRobotFile(name: String, reason: String)
    case badMessage(topic: String, reason: String)
    /// No cycle records to replay.
    case noCycles
    /// The recorded joints do not fit the robot (another robot file than the run's).
    case jointCount(recorded: Int, robot: Int)

    public var description: String {
        switch self {
        case .noEstimatorSetup: "the recording does not hold its estimator's setup (\(EstimatorSetup.documentName)): only live runs recorded by this version replay their estimator"
        case .noRobotFile(let n): "the recording does not hold the robot file of '\(n)': record the run with its robot file as configuration"
        case .badRobotFile(let n, let r): "the recorded robot file \(n) does not load: \(r)"
        case .badMessage(let t, let r): "a message on \(t) does not match its schema: \(r) (was the file written by another version?)"
        case .noCycles: "the recording holds no cycle records to replay the estimator on"
        case .jointCount(let r, let m): "the recorded joints have \(r) axes, the recorded robot \(m)"
        }
    }
}

/// The estimator re-run on a recording's joint states and measurements, against the estimates
/// the run recorded.
public struct EstimatorReplayReport: Sendable, Codable, Equatable {
    /// Cycle records replayed (each one a predict step, compared with its recorded estimate).
    public var samples: Int
    public var firstCycle: UInt64
    /// Cycle numbers missing between the first and the last record (lost or decimated): the
    /// replay then predicts across the gap in one step, which the run did not.
    public var missingCycles: UInt64
    /// Distinct measurements offered to the estimator, and how many of them it fused.
    public var measurements: Int
    public var fused: Int
    /// Measurements whose cycle of arrival the cycle records name (`measurements_arrived`,
    /// `arrived_acquired_ns`: exact, fused or refused), those the recorded estimates show (a
    /// recording without them: its acquisition time became the estimate's last image time there),
    /// and those placed by the median latency of the others (refused ones leave no trace in the
    /// estimate).
    public var arrivalsRecorded: Int
    /// Measurements recorded that reached the estimator in no recorded cycle (the run ended
    /// before the cycle took them from the mailbox): not fused in the replay either.
    public var undelivered: Int
    public var arrivalsFromEstimate: Int
    public var arrivalsInferred: Int
    /// mm: |replayed − recorded| tip estimate, over all samples.
    public var differenceMedianMm: Double
    public var differenceP95Mm: Double
    public var differenceMaxMm: Double
    /// Every sample within `toleranceMm`.
    public var reproduced: Bool
    public var toleranceMm: Double
    public var recordedPathMm: Double
    public var replayedPathMm: Double
}

/// Per sample, for a plot or a table: time since the first record (s), the recorded and the
/// replayed tip (mm), and their distance (mm).
public struct EstimatorReplaySamples: Sendable {
    public var seconds: [Double] = []
    public var recorded: [Vec3] = []
    public var replayed: [Vec3] = []
    public var difference: [Double] = []

    /// `time_s,recorded_x,…,replayed_z,difference_mm`, one line per sample.
    public var csv: String {
        var out = "time_s,recorded_x_mm,recorded_y_mm,recorded_z_mm,replayed_x_mm,replayed_y_mm,replayed_z_mm,difference_mm\n"
        for k in seconds.indices {
            let a = recorded[k], b = replayed[k]
            out += "\(seconds[k]),\(a.x),\(a.y),\(a.z),\(b.x),\(b.y),\(b.z),\(difference[k])\n"
        }
        return out
    }
}

public enum EstimatorReplay {
    struct Cycle {
        var cycle: UInt64
        var time: Nanoseconds
        var joints: [Double]
        var estimate: Vec3
        var lastImageAt: Nanoseconds
        /// Measurements that reached the estimator in this cycle and the newest one's acquisition
        /// time; nil in a recording from before they were recorded.
        var arrived: (count: Int, acquiredAt: Nanoseconds)?
    }

    /// Replays the estimator of the recording at `path`. `toleranceMm`: a sample within this of
    /// the recorded estimate reproduces it (the replay is the same arithmetic on the same inputs,
    /// so it is exact where the arrivals are known).
    public static func run(_ path: String, toleranceMm: Double = 1e-6) throws -> (EstimatorReplayReport, EstimatorReplaySamples) {
        var topics: [UInt16: String] = [:]
        var documents: [String: [UInt8]] = [:]
        var cycles: [Cycle] = []
        var measurements: [TipMeasurement] = []
        var seen = Set<String>()
        func object(_ m: MCAPRecording.Message, _ topic: String) throws -> [String: Any] {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(m.data))) as? [String: Any] else {
                throw EstimatorReplayError.badMessage(topic: topic, reason: "not a JSON object")
            }
            return o
        }
        let doubles = RecordingChannels.doubles
        func int64(_ v: Any?) -> Int64? { (v as? NSNumber)?.int64Value }
        _ = try MCAPRecording.read(path) { m in
            guard let topic = topics[m.channel] else { return }
            if topic == RecordingChannels.configuration {
                let o = try object(m, topic)
                if let name = o["name"] as? String, let text = o["text"] as? String { documents[name] = Array(text.utf8) }
            } else if topic == RecordingChannels.cycle {
                let o = try object(m, topic)
                guard let cycle = int64(o["cycle"]), cycle >= 0, let time = int64(o["time_ns"]), let joints = o["joints"] as? [String: Any],
                      let q = joints["position"] as? [Any], let estimate = o["estimate"] as? [String: Any],
                      let p = doubles(estimate["position"], 3), let last = int64(estimate["last_image_ns"]) else {
                    throw EstimatorReplayError.badMessage(topic: topic, reason: "no cycle, time_ns, joints.position or estimate")
                }
                guard let qd = doubles(q, q.count), qd.count <= JointVector.capacity else {
                    throw EstimatorReplayError.badMessage(topic: topic, reason: "joints.position is not up to \(JointVector.capacity) numbers")
                }
                var arrived: (Int, Nanoseconds)?
                if let n = int64(o["measurements_arrived"]), n >= 0, let at = int64(o["arrived_acquired_ns"]) { arrived = (Int(clamping: n), at) }
                cycles.append(Cycle(cycle: UInt64(cycle), time: time, joints: qd, estimate: Vec3(p[0], p[1], p[2]), lastImageAt: last, arrived: arrived))
            } else if topic.hasPrefix("/lumen/plane"), topic.hasSuffix("/measurement") {
                let o = try object(m, topic)
                // Frames the tracker found nothing on sent the estimator nothing.
                guard let plane = int64(o["measurement_plane"]), (0...1).contains(plane), let at = int64(o["acquired_ns"]) else { return }
                var t = TipMeasurement(acquiredAt: at, plane: UInt8(plane), confidence: (o["confidence"] as? NSNumber)?.doubleValue ?? 1)
                if let px = doubles(o["pixel"], 2) {
                    t.pixel = SIMD2(px[0], px[1])
                    if let c = doubles(o["pixel_covariance"], 3) { t.pixelCovariance = SymMat2(xx: c[0], xy: c[1], yy: c[2]) }
                }
                if let p = doubles(o["position"], 3) {
                    t.position = Vec3(p[0], p[1], p[2])
                    if let c = doubles(o["position_covariance"], 9) {
                        t.positionCovariance = Mat3(rows: Vec3(c[0], c[1], c[2]), Vec3(c[3], c[4], c[5]), Vec3(c[6], c[7], c[8]))
                    }
                }
                guard t.pixel != nil || t.position != nil else { return }
                // A biplane point is recorded with each plane's frame: one measurement.
                if seen.insert("\(at)/\(plane)/\(t.position != nil)").inserted { measurements.append(t) }
            }
        } channels: { c in topics[c.id] = c.topic }

        guard let setupBytes = documents[EstimatorSetup.documentName] else { throw EstimatorReplayError.noEstimatorSetup }
        let setup: EstimatorSetup
        do { setup = try JSONDecoder().decode(EstimatorSetup.self, from: Data(setupBytes)) } catch {
            throw EstimatorReplayError.badMessage(topic: RecordingChannels.configuration, reason: "\(EstimatorSetup.documentName): \(error)")
        }
        var robot = try robotFile(named: setup.robotName, in: documents)
        robot.base.positionMM = setup.basePositionMM
        robot.base.rpyRad = setup.baseRPYRad
        let model = CatheterModel(robot)
        guard !cycles.isEmpty else { throw EstimatorReplayError.noCycles }
        cycles.sort { $0.cycle < $1.cycle }
        if let bad = cycles.first(where: { $0.joints.count != model.jointCount }) {
            throw EstimatorReplayError.jointCount(recorded: bad.joints.count, robot: model.jointCount)
        }
        measurements.sort { ($0.acquiredAt, $0.plane) < ($1.acquiredAt, $1.plane) }
        let (arrival, recorded, fromEstimate) = arrivals(of: measurements, cycles: cycles)
        let undelivered = arrival.filter { $0 >= cycles.count }.count

        var settings = TipEstimatorSettings()
        settings.resetFromPixels = setup.resetFromPixels
        var estimator = TipEstimator(model: model, planes: setup.planes, settings: settings, historyLength: setup.historyLength)
        var samples = EstimatorReplaySamples()
        var next = 0
        var fused = 0
        let t0 = cycles[0].time
        for (k, c) in cycles.enumerated() {
            var estimate = estimator.predict(joints: JointVector(c.joints), time: c.time)
            var any = false
            while next < measurements.count, arrival[next] <= k {
                if estimator.fuse(measurements[next]) == nil { fused += 1 }
                any = true
                next += 1
            }
            if any { estimate = estimator.estimate(now: c.time) }
            samples.seconds.append(Double(c.time - t0) * 1e-9)
            samples.recorded.append(c.estimate)
            samples.replayed.append(estimate.position)
            samples.difference.append((estimate.position - c.estimate).length)
        }
        let d = samples.difference
        let last = cycles[cycles.count - 1].cycle
        let span = last - cycles[0].cycle + 1
        let report = EstimatorReplayReport(
            samples: cycles.count, firstCycle: cycles[0].cycle, missingCycles: span > UInt64(cycles.count) ? span - UInt64(cycles.count) : 0, measurements: measurements.count,
            fused: fused, arrivalsRecorded: recorded, undelivered: undelivered, arrivalsFromEstimate: fromEstimate,
            arrivalsInferred: measurements.count - recorded - undelivered - fromEstimate,
            differenceMedianMm: percentile(d, 50), differenceP95Mm: percentile(d, 95), differenceMaxMm: d.max() ?? 0,
            reproduced: d.allSatisfy { $0 <= toleranceMm }, toleranceMm: toleranceMm,
            recordedPathMm: pathLength(samples.recorded), replayedPathMm: pathLength(samples.replayed))
        return (report, samples)
    }

    static func pathLength(_ p: [Vec3]) -> Double { zip(p, p.dropFirst()).reduce(0) { $0 + ($1.1 - $1.0).length } }

    /// The recorded robot file of `name` (YAML or JSON), decoded.
    static func robotFile(named name: String, in documents: [String: [UInt8]]) throws -> RobotDescription {
        var lastError: String?
        for (docName, bytes) in documents.sorted(by: { $0.key < $1.key }) where docName != EstimatorSetup.documentName {
            let robot: RobotDescription
            do throws(ConfigError) {
                if docName.hasSuffix(".json") {
                    robot = try ConfigLoader.decode(RobotDescription.self, json: Data(bytes), file: docName)
                } else {
                    robot = try ConfigLoader.decode(RobotDescription.self, yaml: String(decoding: bytes, as: UTF8.self), file: docName)
                }
            } catch {
                if docName.hasSuffix(".yaml") || docName.hasSuffix(".yml") || docName.hasSuffix(".json") { lastError = "\(docName): \(error)" }
                continue
            }
            if robot.name == name { return robot }
        }
        if let lastError { throw EstimatorReplayError.badRobotFile(name: name, reason: lastError) }
        throw EstimatorReplayError.noRobotFile(name)
    }

    /// The index of the cycle each measurement reached the estimator in. Where the cycle records
    /// say which cycles took measurements, a measurement arrived in the first such cycle whose
    /// newest arrival was acquired no earlier than it (the mailbox delivers in acquisition order).
    /// Otherwise a fused measurement made its acquisition time the estimate's last image time in
    /// that cycle's record; one the estimator refused left no trace, and is placed at the median
    /// latency of the fused ones, kept in acquisition order (the imaging thread sends them in that order).
    static func arrivals(of measurements: [TipMeasurement], cycles: [Cycle]) -> (arrival: [Int], recorded: Int, fromEstimate: Int) {
        var arrival = [Int](repeating: -1, count: measurements.count)
        var recorded = 0
        if cycles.contains(where: { $0.arrived != nil }) {
            var k = 0
            for (i, m) in measurements.enumerated() {
                while k < cycles.count, !((cycles[k].arrived?.count ?? 0) > 0 && (cycles[k].arrived?.acquiredAt ?? 0) >= m.acquiredAt) { k += 1 }
                // None took it: the run ended first (the mailbox delivers in order, so the rest too).
                guard k < cycles.count else { arrival[i] = cycles.count; continue }
                arrival[i] = k
                recorded += 1
            }
            return (arrival, recorded, 0)
        }
        var firstWith: [Nanoseconds: Int] = [:]
        var previous: Nanoseconds = 0
        for (k, c) in cycles.enumerated() where c.lastImageAt != previous {
            if c.lastImageAt > previous, firstWith[c.lastImageAt] == nil { firstWith[c.lastImageAt] = k }
            previous = c.lastImageAt
        }
        var latencies: [Double] = []
        var known = 0
        for (i, m) in measurements.enumerated() where arrival[i] < 0 {
            if let k = firstWith[m.acquiredAt] {
                arrival[i] = k
                known += 1
                latencies.append(Double(cycles[k].time - m.acquiredAt))
            }
        }
        let latency = Nanoseconds(latencies.isEmpty ? 60e6 : percentile(latencies, 50))
        let times = cycles.map(\.time)
        var floor = 0
        for i in measurements.indices {
            if arrival[i] >= 0 { floor = max(floor, arrival[i]); continue }
            // The first cycle at or after acquisition + latency, not before an earlier measurement's,
            // and not after the next known one's.
            var k = lowerBound(times, measurements[i].acquiredAt + latency)
            k = max(k, floor)
            if let later = arrival[(i + 1)...].first(where: { $0 >= 0 }) { k = min(k, later) }
            arrival[i] = min(k, cycles.count - 1)
            floor = arrival[i]
        }
        return (arrival, recorded, known)
    }

    static func lowerBound(_ v: [Nanoseconds], _ x: Nanoseconds) -> Int {
        var lo = 0, hi = v.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if v[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
