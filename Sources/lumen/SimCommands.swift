import ArgumentParser
import CommandSupport
import Control
import Core
import Drivers
import Foundation
import COpenCV
import Imaging
import Scenarios
import Sim

struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Simulated devices for other programs to talk to.",
        subcommands: [SimEtherCATSlaves.self, SimPhantom.self, SimRender.self]
    )
}

/// `lumen sim ethercat-slaves`: emulated CiA 402 slaves (one per robot axis) on a network
/// interface or a UDP port, for an external EtherCAT master (a hardware-in-the-loop rig, SOEM).
struct SimEtherCATSlaves: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ethercat-slaves",
        abstract: "Serve emulated EtherCAT slaves (ESC + CiA 402 drive per axis) on an interface (raw, root) or a UDP port."
    )

    @Option(help: "Network interface for raw EtherCAT frames (needs root).") var interface: String?
    @Option(help: "Network namespace the interface lives in (from `ip netns`).") var namespace: String?
    @Option(help: "UDP port on 127.0.0.1 instead of an interface (0…65535; 0 picks one).") var udpPort: UInt16?
    @Option(help: "Robot file: one slave per axis.") var robot = DemoRigFiles.defaultRobot
    @Option(help: "How long to serve (s, 0.1…86400).") var seconds = 60.0

    func validate() throws {
        guard (interface == nil) != (udpPort == nil) else { throw ValidationError("give exactly one of --interface and --udp-port") }
        try Check.number(seconds, "--seconds", in: 0.1...86_400, unit: "s")
    }

    func run() throws {
        let description = try DemoRigFiles.loadRobot(robot)
        let segment = EtherCATSegment(axes: description.axes)
        let until = Date().addingTimeInterval(seconds)
        if let interface {
            let server = EtherCATRawServer(segment: segment, interface: interface, namespace: namespace)
            do { try server.start() } catch { throw CommandFailure(error.description) }
            Output.progress("sim: \(segment.slaveCount) EtherCAT slaves on \(interface)\(namespace.map { " in namespace \($0)" } ?? "") for \(seconds) s")
            while Date() < until { Thread.sleep(forTimeInterval: 0.1) }
            server.stop()
        } else if let udpPort {
            let server: EtherCATUDPServer
            do { server = try EtherCATUDPServer(segment: segment, port: udpPort) } catch { throw CommandFailure(error.description) }
            server.start()
            FileHandle.standardOutput.write(Data("ethercat-udp:127.0.0.1:\(server.port)\n".utf8))
            Output.progress("sim: \(segment.slaveCount) EtherCAT slaves on UDP 127.0.0.1:\(server.port) for \(seconds) s")
            while Date() < until { Thread.sleep(forTimeInterval: 0.1) }
            server.stop()
        }
        for i in 0..<segment.slaveCount {
            let s = segment.alStatus(i)
            Output.progress("slave \(i): AL state 0x\(String(s.state, radix: 16))\(s.error ? " (error 0x\(String(s.code, radix: 16)))" : ""), drive \(segment.drive(i).state)")
        }
    }
}

/// `lumen sim phantom`: a built-in vessel phantom's figures, and a frontal view as PNG.
struct SimPhantom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "phantom",
        abstract: "Describe a built-in vessel phantom (straight, arch, coronary, cerebral, hepatic) and draw its centerlines."
    )

    @Option(help: "Phantom: straight, arch, coronary, cerebral or hepatic.") var name = "arch"
    @Option(help: "Folder for the frontal view (NAME.png).") var out = "out/phantom"
    @Flag(help: "Print JSON on stdout.") var json = false

    func validate() throws {
        guard Phantoms.names.contains(name) else {
            throw ValidationError("--name: unknown phantom '\(name)': use \(Check.list(Phantoms.names))")
        }
        try Check.outputFolder(out, "--out", files: [name + ".png"])
    }

    struct Vessel: Encodable {
        var name: String
        var parent: String?
        var length_mm: Double
        var radius_mm_min: Double
        var radius_mm_max: Double
    }

    func run() throws {
        guard let d = Phantoms.named(name) else { throw ValidationError("unknown phantom '\(name)'") }
        let tree = VesselTree(d)
        let vessels = d.vessels.enumerated().map { i, v in
            Vessel(name: v.name, parent: v.parent, length_mm: round1(tree.length(ofVessel: i)),
                   radius_mm_min: v.points.map { $0[3] }.min()!, radius_mm_max: v.points.map { $0[3] }.max()!)
        }
        try OutputPath.createFolder(out)
        var plot = LinePlot(title: "Phantom '\(name)': centerlines, frontal view", xLabel: "x, patient left (mm)", yLabel: "z, superior (mm)")
        plot.equalAspect = true
        let colours: [(UInt8, UInt8, UInt8)] = [(200, 40, 40), (40, 110, 220), (30, 150, 70), (230, 140, 20), (140, 60, 190), (90, 90, 90)]
        plot.series = d.vessels.enumerated().map { i, v in
            .init(label: v.name, points: v.points.map { (x: $0[0], y: $0[2]) }, color: colours[i % colours.count], thickness: 2)
        }
        let file = out + "/\(name).png"
        try plot.write(to: file)
        if json {
            try Output.json(["name": AnyEncodable(name), "segments": AnyEncodable(tree.segmentCount), "vessels": AnyEncodable(vessels), "plot": AnyEncodable(file),
                             "targets": AnyEncodable(d.targets), "sources": AnyEncodable(d.sources)])
        } else {
            print("phantom '\(name)': \(vessels.count) vessels, \(tree.segmentCount) segments; drawn to \(file)")
            for v in vessels {
                print("  \(v.name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(v.length_mm) mm, radius \(v.radius_mm_min)…\(v.radius_mm_max) mm\(v.parent.map { ", from \($0)" } ?? "")")
            }
            for t in d.targets { print("  navigation target: \(t.vessel), \(t.depthMM) mm in") }
            for source in d.sources { print("  source: \(source)") }
        }
    }
}

/// Type erasure for mixed JSON objects.
struct AnyEncodable: Encodable {
    let encodeValue: (Encoder) throws -> Void
    init(_ value: some Encodable) { encodeValue = value.encode }
    func encode(to encoder: Encoder) throws { try encodeValue(encoder) }
}

/// `lumen sim render`: synthetic fluoroscopy of a phantom with a catheter advancing along the
/// aorta from below, as 16-bit PNG frames and a ground-truth JSON.
struct SimRender: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Render synthetic fluoroscopy frames of a phantom with a catheter, with per-frame ground truth."
    )

    @Option(help: "Phantom: straight, arch, coronary, cerebral or hepatic.") var phantom = "arch"
    @Option(help: "Frames to render (1…10000).") var frames = 10
    @Option(help: "Noise seed (any whole number 0…2⁶⁴ − 1).") var seed: UInt64 = 1
    @Option(help: "Folder for the frames and truth.json.") var out = "out/render"
    @Option(help: "LAO (+) / RAO (−) angle, degrees (−180…180).") var primary = 0.0
    @Option(help: "Cranial (+) / caudal (−) angle, degrees (−90…90).") var secondary = 0.0
    @Option(help: "Photons per pixel with nothing in the beam (10…10000000).") var photons = 5000.0
    @Option(help: "Frame rate (fps): 7.5, 15 or 30.") var fps = 15.0
    @Flag(help: "No contrast in the vessels.") var noContrast = false
    @Option(help: "Catheter: physics (the elastic rod pushed in from a sheath at the first vessel's far end, 20 mm/s) or centerline (laid along that vessel, 3 mm a frame).")
    var catheter = "physics"
    @Option(help: "Scene motion: none, or typical (8 mm breathing over 4 s, 3 mm heartbeat at 75/min).") var motion = "none"
    @Option(help: "Output: png (16-bit frames) or dicom (one multi-frame XA file, frames.dcm, with the geometry tags).") var format = "png"
    @Flag(help: "Biplane: also render the same scene from a second C-arm at the primary angle + 90°, into DIR/plane-b.") var biplane = false
    @Flag(help: "Print the summary as JSON on stdout.") var json = false

    func validate() throws {
        guard ["physics", "centerline"].contains(catheter) else { throw ValidationError("--catheter must be physics or centerline") }
        guard ["png", "dicom"].contains(format) else { throw ValidationError("--format must be png or dicom") }
        guard ["none", "typical"].contains(motion) else { throw ValidationError("--motion must be none or typical") }
        guard Phantoms.names.contains(phantom) else { throw ValidationError("--phantom must be one of \(Phantoms.names.joined(separator: ", "))") }
        try Check.count(frames, "--frames", in: 1...10_000)
        try Check.number(primary, "--primary", in: -180...180, unit: "°")
        try Check.number(secondary, "--secondary", in: -90...90, unit: "°")
        try Check.number(photons, "--photons", in: 10...1e7)
        try Check.oneOf(fps, "--fps", [7.5, 15, 30])
        try Check.outputFolder(out, "--out", files: ["truth.json"] + (format == "dicom" ? ["frames.dcm"] : []),
                              folders: ["preview"] + (biplane ? ["plane-b", "plane-b/preview"] : []))
    }

    struct Summary: Encodable {
        var phantom: String
        var frames: Int
        var photons_per_pixel: Double
        var render_ms_median: Double
        var geometry: CArmGeometry
        var truth: String
        var catheter: String
        var motion: String
        var plane_b: PlaneB?
        var peak_contact_n: Double?
    }

    func run() throws {
        let tree = Phantoms.named(phantom)!
        // Centre the view on the phantom's middle.
        let all = tree.vessels.flatMap { $0.points }
        let mid = Vec3((all.map { $0[0] }.min()! + all.map { $0[0] }.max()!) / 2, (all.map { $0[1] }.min()! + all.map { $0[1] }.max()!) / 2,
                       (all.map { $0[2] }.min()! + all.map { $0[2] }.max()!) / 2)
        let geometry = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 1024, rows: 1024, pixelSpacing: 0.3,
                                    primaryAngle: primary * .pi / 180, secondaryAngle: secondary * .pi / 180, isocenter: mid)
        var settings = FluoroSettings()
        settings.photonsPerPixel = photons
        if noContrast { settings.contrast = 0 }
        if motion == "typical" { settings.motion = .typical }
        var planes = [(renderer: FluoroRenderer(geometry: geometry, settings: settings, seed: seed), dir: out)]
        var planeB: PlaneB?
        if biplane {
            let second = CArmGeometry(sourceToDetector: 1020, sourceToIsocenter: 700, columns: 1024, rows: 1024, pixelSpacing: 0.3,
                                      primaryAngle: (primary + 90) * .pi / 180, secondaryAngle: secondary * .pi / 180, isocenter: mid)
            planes.append((FluoroRenderer(geometry: second, settings: settings, seed: seed &+ 0x9E37), out + "/plane-b"))
            planeB = PlaneB(geometry: second, truth: out + "/plane-b/truth.json")
        }
        let route = tree.vessels[0].points.reversed().map { Vec3($0[0], $0[1], $0[2]) }
        let routeLength = Polyline.length(route)
        let rod = try catheter == "physics" ? PushedCatheter(tree: tree, route: route, start: 0.4 * routeLength) : nil
        // The 8-bit preview goes in a subfolder: a frames folder holds only the 16-bit frames `track` reads.
        for (_, dir) in planes { try OutputPath.createFolder(dir + "/preview") }
        var truths = [[FluoroTruth]](repeating: [], count: planes.count)
        var series = [[Frame]](repeating: [], count: planes.count)
        var times: [Double] = []
        for f in 0..<frames {
            let line: [Vec3]
            if let rod {
                line = try rod.advance(seconds: f == 0 ? 0 : 1 / fps, speed: 20)
            } else {
                line = Polyline.prefix(route, length: min(routeLength, 0.4 * routeLength + 3 * Double(f)), step: 1)
            }
            for (k, plane) in planes.enumerated() {
                let t0 = Date()
                let (frame, truth) = try plane.renderer.render(tree: tree, catheter: line, frame: f, acquiredAt: Nanoseconds.fromSeconds(Double(f) / fps))
                if k == 0 { times.append(Date().timeIntervalSince(t0) * 1000) }
                if format == "dicom" {
                    series[k].append(frame)
                } else {
                    do { try PNGFrameFile.write(frame, to: plane.dir + String(format: "/frame_%04d.png", f)) } catch { throw CommandFailure(error.description) }
                }
                truths[k].append(truth)
                if f == 0 { try Self.writePreview(frame, truth: truth, to: plane.dir + "/preview/preview_0000.png") }
            }
            if frames > 5 { Output.status("render: frame \(f + 1)/\(frames)") }
        }
        Output.endStatus()
        if format == "dicom" {
            for (k, plane) in planes.enumerated() {
                do {
                    try DICOMWriter.write(frames: series[k], geometry: plane.renderer.geometry, frameInterval: Nanoseconds.fromSeconds(1 / fps),
                                          to: plane.dir + "/frames.dcm", options: .init(bitsStored: 12))
                } catch { throw CommandFailure("\(error)") }
            }
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        for (k, plane) in planes.enumerated() { try OutputPath.write(enc.encode(truths[k]), to: plane.dir + "/truth.json") }
        let summary = Summary(phantom: phantom, frames: frames, photons_per_pixel: photons, render_ms_median: round1(percentile(times, 50)),
                              geometry: geometry, truth: out + "/truth.json", catheter: catheter, motion: motion, plane_b: planeB,
                              peak_contact_n: rod.map { round3($0.peakContact) })
        if json {
            try Output.json(summary)
        } else {
            print("rendered \(frames) frames of '\(phantom)' to \(out)\(biplane ? " and \(out)/plane-b" : "") (median \(summary.render_ms_median) ms a frame), truth in \(summary.truth)")
        }
    }

    struct PlaneB: Encodable {
        var geometry: CArmGeometry
        var truth: String
    }

    /// The elastic-rod catheter pushed from a sheath at the route's start along its first segment.
    final class PushedCatheter {
        let model: RodModel
        var state: RodState
        var peakContact = 0.0

        init(tree: VesselTreeDescription, route: [Vec3], start: Double) throws {
            let axis = route[1] - route[0]
            do {
                model = try RodModel(.catheter(elements: 100), lumen: RodLumen(VesselTree(tree)), sheathExit: route[0] * 1e-3, sheathAxis: axis)
            } catch { throw CommandFailure(error.description) }
            state = RodState(model: model, insertion: 0.01)
            // Bring it to the start insertion at 50 mm/s before the first frame.
            let target = min(start * 1e-3, model.totalLength - 2 * model.restLength)
            var insertion = 0.01
            while insertion < target {
                insertion = min(target, insertion + 5e-5)
                guard ElasticRod.step(model, &state, RodInput(insertion: insertion), dt: 0.001) else { throw CommandFailure("the catheter simulation diverged") }
            }
        }

        /// Advances `seconds` at `speed` mm/s and returns the centerline (mm), proximal to distal.
        func advance(seconds: Double, speed: Double) throws -> [Vec3] {
            let steps = Int((seconds / 0.001).rounded())
            for _ in 0..<steps {
                let input = RodInput(insertion: state.insertion + speed * 1e-6)
                guard ElasticRod.step(model, &state, input, dt: 0.001) else { throw CommandFailure("the catheter simulation diverged") }
                peakContact = max(peakContact, state.peakContactForce)
            }
            return state.centerlineMillimetres()
        }
    }

    /// An 8-bit view of a 12-bit frame (full range stretched), with the true tip ringed, for eyes.
    static func writePreview(_ frame: Frame, truth: FluoroTruth, to path: String) throws {
        let lo = Double(frame.pixels.min() ?? 0), hi = Double(max(frame.pixels.max() ?? 1, UInt16(lo) + 1))
        var rgb = [UInt8](repeating: 0, count: frame.width * frame.height * 3)
        for (i, p) in frame.pixels.enumerated() {
            let g = UInt8(min(255, max(0, (Double(p) - lo) / (hi - lo) * 255)))
            rgb[3 * i] = g; rgb[3 * i + 1] = g; rgb[3 * i + 2] = g
        }
        _ = rgb.withUnsafeMutableBufferPointer {
            lumen_cv_draw_circle($0.baseAddress, Int32(frame.width), Int32(frame.height), truth.tip2D[0], truth.tip2D[1], 12, 255, 60, 40, 2)
        }
        var err = [CChar](repeating: 0, count: 256)
        if lumen_cv_write_png_rgb8(path, rgb, Int32(frame.width), Int32(frame.height), &err, Int32(err.count)) != 0 {
            throw CommandFailure("cannot write \(path)")
        }
    }
}
