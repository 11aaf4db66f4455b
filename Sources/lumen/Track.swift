import ArgumentParser
import COpenCV
import CommandSupport
import Core
import Foundation
import Imaging

/// `lumen track`: the catheter tip, frame by frame, in a recorded sequence.
struct Track: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Track the catheter tip through a sequence of frames: a DICOM file, a folder of DICOM files or a folder of 16-bit PNGs.",
        discussion: """
        Prints one record per frame (frame, acquired_at_ns, u, v, confidence, status: tracked or lost; \
        u and v are null when lost) and a summary (frames, tracked_pct, ms_per_frame). Pixels are \
        (u, v) = (column, row) with (0, 0) at the centre of the top-left pixel; the tip is the distal \
        end point of the catheter's centerline.

        The input is a multi-frame DICOM file (XA, RF or any greyscale image; uncompressed, Deflated, \
        RLE Lossless, JPEG lossless or lossy, JPEG-LS), a folder of DICOM files of one series (ordered by \
        InstanceNumber, then acquisition time; files of several series are refused), or a folder of PNG \
        frames (sorted by name). DICOM frames are read as the file says: MONOCHROME1 inverted, bits stored \
        and sign, rescale, and the window or VOI LUT (unless --ignore-voi), so that brighter is larger; \
        frame times come from FrameTime, FrameTimeVector or the files' acquisition times. What a file says \
        that is not honoured is printed as a warning (and listed under "warnings" in JSON).

        Every frame is checked before any is tracked: each PNG must be a regular file holding a 16-bit \
        greyscale PNG (RGB, palette, 1- to 8-bit and alpha images are refused, naming the frame; \
        8-bit greyscale only with --widen-8bit), all of one size, and at most 4096 × 4096 pixels \
        (refused from the header, before decoding); each DICOM header is read and checked the same way. \
        The overlay folder is checked before the work too.
        """
    )

    @Option(help: "A DICOM file, a folder of DICOM files (one series) or a folder of 16-bit PNG frames (sorted by name).") var input: String
    @Option(help: "C-arm geometry file (JSON); accepted but not used: tracking is in pixels, and DICOM files carry their own geometry tags.")
    var geometry: String?
    @Option(help: "Folder to write each frame with the tracked tip and centerline drawn on it.") var overlay: String?
    @Option(help: "Time between frames (ms, 1…10000) when the frames carry no acquisition times (PNG folders; DICOM without timing).")
    var frameIntervalMs = 1000.0 / 15
    @Flag(help: "Also draw every ridge the detector traced (dim) in the overlays.") var overlayRidges = false
    @Flag(name: .customLong("widen-8bit"), help: "Accept 8-bit greyscale PNGs, widened to 16 bits (values kept, not rescaled).")
    var widen8Bit = false
    @Flag(help: "Read DICOM frames without the file's window / VOI LUT: the rescaled values, brighter larger.") var ignoreVoi = false
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.number(frameIntervalMs, "--frame-interval-ms", in: 1...10_000, unit: "ms")
        if let overlay { try Check.outputFolder(overlay, "--overlay") }
    }

    struct Record: Encodable {
        var frame: Int
        var acquired_at_ns: Int64
        var u: Double?
        var v: Double?
        var confidence: Double
        var status: String

        enum CodingKeys: String, CodingKey { case frame, acquired_at_ns, u, v, confidence, status }

        // The synthesized encoding leaves nil out; the help promises u and v as null when lost.
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(frame, forKey: .frame)
            try c.encode(acquired_at_ns, forKey: .acquired_at_ns)
            try c.encode(u, forKey: .u)
            try c.encode(v, forKey: .v)
            try c.encode(confidence, forKey: .confidence)
            try c.encode(status, forKey: .status)
        }
    }

    struct Summary: Encodable {
        var input: String
        /// dicom, dicom-folder or png-folder.
        var source: String
        var frame_interval_ms: Double
        var frame_interval_assumed: Bool
        /// mm at the isocentre where the source gives it, and the tag it came from.
        var pixel_spacing_mm: Double?
        var pixel_spacing_tag: String?
        var max_value: Int
        var warnings: [String]
        var frames: Int
        var tracked_pct: Double
        var ms_per_frame: Double
        var records: [Record]
    }

    func run() throws {
        guard FileManager.default.fileExists(atPath: input) else {
            throw CommandFailure("\(input): no such file or folder (give a DICOM file, a folder of DICOM files or a folder of 16-bit PNG frames)")
        }
        let source: FrameSource
        do {
            source = try FrameSource.open(path: input, frameInterval: Nanoseconds.fromSeconds(frameIntervalMs / 1000), widening8Bit: widen8Bit,
                                          applyingVOI: !ignoreVoi)
        } catch { throw CommandFailure(error.description) }
        for w in source.warnings { Output.progress("track: warning: \(w)") }
        let count = source.frameCount ?? 0
        if let overlay {
            do { try OutputPath.createFolder(overlay) } catch { throw CommandFailure(error.description) }
        }
        let tracker: TipTracker
        do { tracker = try TipTracker() } catch { throw CommandFailure(error.description) }
        var records: [Record] = []
        var trackMs: [Double] = []
        func frame(_ i: Int) throws -> Frame {
            do throws(FrameSourceError) { return try source.frame(at: i) } catch { throw CommandFailure(error.description) }
        }
        try TrackingLoop.run(frames: count, frame: frame, tracker: tracker) { frame, track, ms in
            trackMs.append(ms)
            records.append(Record(frame: track.frame, acquired_at_ns: track.acquiredAt, u: track.status == .tracked ? round3(track.u) : nil,
                                  v: track.status == .tracked ? round3(track.v) : nil, confidence: round3(track.confidence), status: track.status.rawValue))
            if let overlay {
                try TrackOverlay.write(frame, track: track, chains: overlayRidges ? tracker.activeDetector.lastChains : [],
                                       to: overlay + String(format: "/track_%04d.png", track.frame))
            }
            Output.status("track: frame \(track.frame + 1)/\(count)")
        }
        Output.endStatus()
        var warnings = source.warnings
        if count > 0, tracker.detector.pitchMM == nil {
            warnings.append(CatheterDetector.pitchUnknownNote)
            Output.progress("track: warning: \(CatheterDetector.pitchUnknownNote)")
        }
        let tracked = records.filter { $0.status == TrackStatus.tracked.rawValue }.count
        let spacing = source.pixelSpacing.flatMap { $0.isocenter ?? $0.detector }
        let summary = Summary(input: input, source: source.kind.rawValue, frame_interval_ms: round3(Double(source.frameInterval) * 1e-6),
                              frame_interval_assumed: source.frameIntervalAssumed,
                              pixel_spacing_mm: spacing.map { (($0[0] + $0[1]) / 2 * 1e6).rounded() / 1e6 }, pixel_spacing_tag: source.pixelSpacing?.tag,
                              max_value: Int(source.maxValue), warnings: warnings, frames: records.count, tracked_pct: round1(100 * Double(tracked) / Double(max(1, records.count))),
                              ms_per_frame: round3(trackMs.reduce(0, +) / Double(max(1, trackMs.count))), records: records)
        if json {
            try Output.json(summary)
        } else {
            for r in records {
                let pos = r.u.map { String(format: "(%.2f, %.2f)", $0, r.v!) } ?? "—"
                print(String(format: "frame %4d  %@  %@  confidence %.2f", r.frame, r.status, pos, r.confidence))
            }
            print("\(summary.frames) frames, \(summary.tracked_pct) % tracked, \(summary.ms_per_frame) ms a frame")
        }
    }
}

/// The per-frame loop shared by `track` and the evaluation: any frame source plugs in as a
/// count and a frame-by-index function (a `FrameSource`: DICOM file or folder, PNG folder).
enum TrackingLoop {
    static func run(frames count: Int, frame: (Int) throws -> Frame, tracker: TipTracker,
                    each: (Frame, TipTrack, Double) throws -> Void) throws {
        for i in 0..<count {
            let f = try frame(i)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let track: TipTrack
            do { track = try tracker.track(f) } catch { throw CommandFailure("frame \(i): \(error.description)") }
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            try each(f, track, ms)
        }
    }
}
