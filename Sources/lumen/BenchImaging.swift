import ArgumentParser
import CommandSupport
import Core
import Foundation
import Imaging
import Sim

/// `lumen bench imaging`: time per frame of catheter detection, full frame and in the tracking
/// search region, at 512² and 1024², on one core.
struct BenchImaging: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imaging",
        abstract: "Catheter detection time per frame (p50, p99) at 512² and 1024², full frame and tracking mode, one core."
    )

    @Option(help: "Timed repetitions per size and mode (5…10000).") var repetitions = 60
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        try Check.count(repetitions, "--repetitions", in: 5...10_000)
    }

    struct Figure: Encodable {
        var size: Int
        var mode: String
        var ms_per_frame_p50: Double
        var ms_per_frame_p99: Double
        var region_px: Int
        var found_pct: Double
    }

    struct Result: Encodable {
        var threads: Int
        var repetitions: Int
        var figures: [Figure]
        var target: String
        var note: String
    }

    func run() throws {
        RidgeExtractor.setThreads(1)
        var figures: [Figure] = []
        for size in [512, 1024] {
            Output.progress("bench imaging: rendering \(size)² frames")
            // Two rendered frames of the arch phantom (different noise), alternated, so no cache
            // holds a result from the previous repetition.
            let tree = Phantoms.aorticArch()
            let geometry = CArmGeometry(columns: size, rows: size, pixelSpacing: 307.2 / Double(size), isocenter: Vec3(0, 30, 0))
            let route = tree.vessels[0].points.reversed().map { Vec3($0[0], $0[1], $0[2]) }
            let catheter = Polyline.prefix(route, length: 0.45 * Polyline.length(route), step: 1)
            var frames: [(Frame, FluoroTruth)] = []
            for seed in [UInt64(1), 2] {
                frames.append(try FluoroRenderer(geometry: geometry, seed: seed).render(tree: tree, catheter: catheter, frame: 0))
            }
            let tracker: TipTracker
            do { tracker = try TipTracker() } catch { throw CommandFailure(error.description) }
            let detector = tracker.detector
            let downsample = size >= 768 ? tracker.settings.fullFrameDownsample : 1
            // The tracking mode's region: the search radius a settled track uses, plus the filter margin.
            let half = tracker.settings.minimumSearchRadius * 2 + 6 * tracker.settings.detector.ridge.sigmaMax
            for mode in ["full_frame", "tracking"] {
                var ms: [Double] = []
                var found = 0
                var regionPx = size
                for r in 0..<(repetitions + 3) {
                    let (frame, truth) = frames[r % 2]
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let d: CatheterDetection?
                    do {
                        if mode == "full_frame" {
                            d = try detector.detect(frame, region: nil, downsample: downsample)
                        } else {
                            let region = PixelRegion.around(u: truth.tip2D[0] + 3, v: truth.tip2D[1] - 2, half: half, in: size, size)
                            regionPx = region.width
                            d = try detector.detect(frame, region: region, downsample: 1,
                                                    prior: .init(u: truth.tip2D[0] + 3, v: truth.tip2D[1] - 2, radius: tracker.settings.minimumSearchRadius * 2))
                        }
                    } catch { throw CommandFailure(error.description) }
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                    if r >= 3 {  // warm-up
                        ms.append(elapsed)
                        if let d, hypot(d.u - truth.tip2D[0], d.v - truth.tip2D[1]) < 3 { found += 1 }
                    }
                }
                figures.append(Figure(size: size, mode: mode, ms_per_frame_p50: round3(percentile(ms, 50)), ms_per_frame_p99: round3(percentile(ms, 99)),
                                      region_px: regionPx, found_pct: round1(100 * Double(found) / Double(ms.count))))
            }
        }
        let result = Result(threads: 1, repetitions: repetitions, figures: figures, target: "1024²: tracking ≤ 5 ms per frame, whole-frame acquisition (full_frame) ≤ 15 ms",
                            note: "full_frame is the whole-frame acquisition (no prior); at 1024² it runs the ridge filter on a 2× downsampled copy and refines the tip at full resolution; "
                                + "found_pct: detections within 3 px of the truth")
        if json {
            try Output.json(result)
        } else {
            for f in figures {
                print(String(format: "%5d²  %-10@  p50 %7.3f ms  p99 %7.3f ms  (region %d px, found %.0f %%)", f.size, f.mode as NSString,
                             f.ms_per_frame_p50, f.ms_per_frame_p99, f.region_px, f.found_pct))
            }
        }
    }
}
