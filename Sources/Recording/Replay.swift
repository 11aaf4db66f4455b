import Core
import Foundation
import Imaging

/// What a recording holds, for `lumen record info`.
public struct RecordingInfo: Sendable, Codable, Equatable {
    public struct Channel: Sendable, Codable, Equatable {
        public var topic: String
        public var schema: String
        public var encoding: String
        public var messages: Int
    }
    public var path: String
    public var bytes: UInt64
    public var library: String
    public var channels: [Channel]
    public var messages: Int
    public var chunks: Int
    /// Log times of the first and last message (monotonic ns), and the span in seconds.
    public var startNs: UInt64?
    public var endNs: UInt64?
    public var seconds: Double
    /// SHA-256 over the configuration documents' hashes, and each document's hash.
    public var configurationSHA256: String?
    public var configuration: [String: String]
    /// The recorder's closing report (what it could not record), absent when it did not close the file.
    public var recorderReport: [String: String]?
    /// What the recorder could not record or left out, by reason (`frames_lost`: overwritten in
    /// the runtime before it drained them; `frames_encoder_busy`: every encoder busy and their
    /// queue full; `frames_not_encoded`: refused by the codec; `…_skipped`: decimation). From its
    /// closing report, or from its last status message in a file it did not close.
    public var notRecorded: [String: Int]
    /// The recorder closed the file (summary and footer present).
    public var complete: Bool
    /// Damage found (a cut-short end, a damaged record, a chunk failing its checksum), each saying
    /// what was readable.
    public var damage: [String]
    public var readableBytes: UInt64

    /// Reads the whole file. Throws `MCAPError` only when it is not a recording at all.
    public static func read(_ path: String) throws -> RecordingInfo {
        var counts: [UInt16: Int] = [:]
        var first = UInt64.max, last = UInt64(0)
        var statusChannel: UInt16?
        var lastStatus: [UInt8]?
        let rec = try MCAPRecording.read(path, messages: { m in
            counts[m.channel, default: 0] += 1
            first = min(first, m.logTime); last = max(last, m.logTime)
            if m.channel == statusChannel { lastStatus = m.data }
        }, channels: { c in if c.topic == RecordingChannels.recorder { statusChannel = c.id } })
        let channels = rec.channels.values.sorted { $0.id < $1.id }.map { c in
            Channel(topic: c.topic, schema: rec.schemas[c.schema]?.name ?? "", encoding: c.encoding, messages: counts[c.id] ?? 0)
        }
        let total = counts.values.reduce(0, +)
        var config = rec.metadata.first { $0.name == RecordingChannels.configurationMetadata }?.pairs ?? [:]
        let combined = config.removeValue(forKey: "combined_sha256")
        let report = rec.metadata.first { $0.name == RecordingChannels.reportMetadata }?.pairs
        var notRecorded: [String: Int] = [:]
        let reasons = ["frames_lost", "frames_encoder_busy", "frames_not_encoded", "frames_skipped", "cycle_records_lost", "cycle_records_skipped",
                       "frames_not_written", "events_lost"]
        if let report {
            for k in reasons { if let v = report[k].flatMap({ Int($0) }) { notRecorded[k] = v } }
        } else if let lastStatus, let o = (try? JSONSerialization.jsonObject(with: Data(lastStatus))) as? [String: Any] {
            for k in reasons { if let v = o[k] as? Int { notRecorded[k] = v } }
        }
        return RecordingInfo(
            path: path, bytes: rec.fileBytes, library: rec.library, channels: channels, messages: total, chunks: rec.chunks,
            startNs: total > 0 ? first : nil, endNs: total > 0 ? last : nil, seconds: total > 0 ? Double(last - first) * 1e-9 : 0,
            configurationSHA256: combined, configuration: config,
            recorderReport: report, notRecorded: notRecorded, complete: rec.complete,
            damage: rec.damage.map(\.description), readableBytes: rec.readableBytes)
    }
}

/// Why a replay could not run.
public enum ReplayError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A message on a Lumen channel that does not parse as its schema says.
    case badMessage(topic: String, reason: String)

    public var description: String {
        switch self {
        case .badMessage(let t, let r): "a message on \(t) does not match its schema: \(r) (was the file written by another version?)"
        }
    }
}

/// A recording's frames re-tracked and compared with the measurements recorded with them.
public struct ReplayReport: Sendable, Codable, Equatable {
    public struct Plane: Sendable, Codable, Equatable {
        public var plane: Int
        public var frames = 0
        public var recordedFound = 0
        public var replayFound = 0
        /// Frames where both found the tip within `tolerancePx`, or both found none.
        public var reproduced = 0
        /// Frames the live tracker saw that the recording lacks (its frame numbers jump: left
        /// out by decimation, lost before the recorder drained them, refused by a busy encoder,
        /// or taken before the recording began).
        public var framesMissing = 0
        /// Frames re-tracked while the replay's tracker had seen every frame the live one had,
        /// and of those the ones reproduced. Only these must agree exactly: after a missing frame
        /// the replay's tracker starts afresh (a whole-frame acquisition) where the live one
        /// carried its motion model and search region on.
        public var framesInStep = 0
        public var reproducedInStep = 0
        /// px: |replayed − recorded| where both found it.
        public var differenceP50: Double?
        public var differenceP95: Double?
        public var differenceMax: Double?
        /// Frames that could not be decoded.
        public var undecodable = 0
    }
    public var info: RecordingInfo
    /// Tip estimates recorded (the `/lumen/tip` track) and their extent.
    public var tipSamples = 0
    public var tipPathLengthMm = 0.0
    public var tracked: Bool
    public var tolerancePx: Double
    public var planes: [Plane]
    /// Fraction of the frames re-tracked in step (`Plane.framesInStep`) that were reproduced,
    /// over all planes (nil when none was): for an unchanged tracker it is 1.
    public var reproducedFraction: Double?
    /// The same over the frames re-tracked after a missing frame (nil when there were none).
    public var reproducedAfterGapFraction: Double? = nil
    /// The estimator re-run on the recording (`EstimatorReplay`), when asked for.
    public var estimator: EstimatorReplayReport? = nil
    /// The live run's biplane measurer re-run on the recording (`MeasurerReplay`), when asked for.
    public var measurer: MeasurerReplayReport? = nil
}

/// Replays a recording: reads what it holds and, with `track`, re-runs the tracker on its frames
/// and compares the answers with the measurements recorded for the same frames.
public enum Replay {
    public static func run(_ path: String, track: Bool, tolerancePx: Double = 0.5, settings: TrackerSettings = TrackerSettings()) throws -> ReplayReport {
        let info = try RecordingInfo.read(path)
        var topics: [UInt16: String] = [:]
        var trackers: [Int: TipTracker] = [:]
        var planes: [Int: ReplayReport.Plane] = [:]
        var diffs: [Int: [Double]] = [:]
        // A frame's image, frame record and measurement, gathered by plane and acquisition time:
        // the recorder writes the measurement when it drains the frame and the other two when
        // the frame is encoded, so other messages come between them.
        var pendingImage: [Int: [UInt64: [UInt8]]] = [:]
        var pendingInfo: [Int: [UInt64: (width: Int, height: Int, format: FrameFormat, pitch: Double?, index: UInt64?)]] = [:]
        // Per plane: the frame number last re-tracked, and whether a frame has been missing since the start.
        var lastIndex: [Int: UInt64] = [:]
        var outOfStep: Set<Int> = []
        var pendingMeasurement: [Int: [UInt64: [String: Any]]] = [:]
        var tipCount = 0
        var lastTip: Vec3?
        var pathLength = 0.0
        func object(_ m: MCAPRecording.Message, _ topic: String) throws -> [String: Any] {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(m.data))) as? [String: Any] else {
                throw ReplayError.badMessage(topic: topic, reason: "not a JSON object")
            }
            return o
        }
        let rec = try MCAPRecording.read(path) { m in
            guard let topic = topics[m.channel] else { return }
            if topic == RecordingChannels.tip {
                let o = try object(m, topic)
                guard let pose = o["pose"] as? [String: Any], let p = pose["position"] as? [String: Any],
                      let x = p["x"] as? Double, let y = p["y"] as? Double, let z = p["z"] as? Double else {
                    throw ReplayError.badMessage(topic: topic, reason: "no pose.position")
                }
                let v = Vec3(x, y, z)
                if let l = lastTip { pathLength += (v - l).length }
                lastTip = v
                tipCount += 1
                return
            }
            guard track, let plane = RecordingChannels.plane(ofTopic: topic) else { return }
            let t = m.logTime
            if topic.hasSuffix("/image") {
                let o = try object(m, topic)
                guard let s = o["data"] as? String, let d = Data(base64Encoded: s) else { throw ReplayError.badMessage(topic: topic, reason: "no base64 data") }
                pendingImage[plane, default: [:]][t] = Array(d)
            } else if topic.hasSuffix("/frame") {
                let o = try object(m, topic)
                guard let w = o["width"] as? Int, let h = o["height"] as? Int, let f = (o["format"] as? String).flatMap(FrameFormat.init(rawValue:)) else {
                    throw ReplayError.badMessage(topic: topic, reason: "no width, height or format")
                }
                // The pitch the live tracker was given: its search regions and ridge scales follow it.
                pendingInfo[plane, default: [:]][t] = (w, h, f, o["pixel_spacing_mm"] as? Double, (o["index"] as? Int).flatMap { $0 > 0 ? UInt64($0) : nil })
            } else if topic.hasSuffix("/measurement") {
                pendingMeasurement[plane, default: [:]][t] = try object(m, topic)
            } else {
                return
            }
            guard let bytes = pendingImage[plane]?[t], let fi = pendingInfo[plane]?[t], let o = pendingMeasurement[plane]?[t] else { return }
            pendingImage[plane]?[t] = nil
            pendingInfo[plane]?[t] = nil
            // Measurements of frames whose image was not recorded (decimated, encoder busy) are never matched.
            pendingMeasurement[plane] = pendingMeasurement[plane]?.filter { $0.key > t }
            var p = planes[plane] ?? ReplayReport.Plane(plane: plane)
            p.frames += 1
            let recorded = (o["pixel"] as? [Double]).flatMap { $0.count == 2 ? SIMD2($0[0], $0[1]) : nil }
            if recorded != nil { p.recordedFound += 1 }
            // Frames numbered 1, 2, 3… as taken; a jump means the live tracker saw frames the
            // replay cannot. A recording without numbers is taken as complete.
            if let index = fi.index {
                let expected = (lastIndex[plane] ?? 0) + 1
                if index > expected {
                    p.framesMissing += Int(index - expected)
                    outOfStep.insert(plane)
                    trackers[plane] = nil
                }
                lastIndex[plane] = index
            }
            let inStep = !outOfStep.contains(plane)
            if inStep { p.framesInStep += 1 }
            let tracker: TipTracker
            if let tr = trackers[plane] { tracker = tr } else { tracker = try TipTracker(settings: settings); trackers[plane] = tracker }
            do {
                let pixels = try FrameCodec.decode(bytes, width: fi.width, height: fi.height, format: fi.format)
                let r = try tracker.track(Frame(width: fi.width, height: fi.height, pixels: pixels, acquiredAt: Nanoseconds(clamping: t), pixelPitchMM: fi.pitch))
                let replayed = r.status == .tracked ? SIMD2(r.u, r.v) : nil
                if replayed != nil { p.replayFound += 1 }
                var same = false
                switch (recorded, replayed) {
                case (nil, nil): same = true
                case (let a?, let b?):
                    let d = ((a - b) * (a - b)).sum().squareRoot()
                    diffs[plane, default: []].append(d)
                    same = d <= tolerancePx
                default: break
                }
                if same { p.reproduced += 1; if inStep { p.reproducedInStep += 1 } }
            } catch {
                // The live tracker saw this frame; the replay's tracker did not.
                p.undecodable += 1
                outOfStep.insert(plane)
                trackers[plane] = nil
            }
            planes[plane] = p
        } channels: { c in topics[c.id] = c.topic }
        _ = rec
        var out = planes.values.sorted { $0.plane < $1.plane }
        for k in out.indices {
            let d = diffs[out[k].plane] ?? []
            if !d.isEmpty {
                out[k].differenceP50 = percentile(d, 50); out[k].differenceP95 = percentile(d, 95); out[k].differenceMax = d.max()
            }
        }
        let inStep = out.reduce(0) { $0 + $1.framesInStep }, afterGap = out.reduce(0) { $0 + $1.frames - $1.framesInStep }
        let reproducedInStep = out.reduce(0) { $0 + $1.reproducedInStep }, reproducedAfterGap = out.reduce(0) { $0 + $1.reproduced - $1.reproducedInStep }
        return ReplayReport(info: info, tipSamples: tipCount, tipPathLengthMm: pathLength, tracked: track, tolerancePx: tolerancePx, planes: out,
                            reproducedFraction: inStep > 0 ? Double(reproducedInStep) / Double(inStep) : nil,
                            reproducedAfterGapFraction: afterGap > 0 ? Double(reproducedAfterGap) / Double(afterGap) : nil)
    }
}
