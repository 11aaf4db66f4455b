import ArgumentParser
import Control
import Core
import Drivers
import Foundation
import Sim

struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Simulated devices for other programs to talk to.",
        subcommands: [SimEtherCATSlaves.self, SimPhantom.self]
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
    @Option(help: "UDP port on 127.0.0.1 instead of an interface (0 picks one).") var udpPort: UInt16?
    @Option(help: "Robot file: one slave per axis.") var robot = DemoRigFiles.defaultRobot
    @Option(help: "How long to serve (s).") var seconds = 60.0

    func validate() throws {
        guard (interface == nil) != (udpPort == nil) else { throw ValidationError("give exactly one of --interface and --udp-port") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
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
        abstract: "Describe a built-in vessel phantom (straight, arch, coronary) and draw its centerlines."
    )

    @Option(help: "Phantom: straight, arch or coronary.") var name = "arch"
    @Option(help: "Where to write the frontal view (PNG).") var out = "out/phantom"
    @Flag(help: "Print JSON on stdout.") var json = false

    struct Vessel: Encodable {
        var name: String
        var parent: String?
        var length_mm: Double
        var radius_mm_min: Double
        var radius_mm_max: Double
    }

    func run() throws {
        guard let d = Phantoms.named(name) else {
            throw ValidationError("unknown phantom '\(name)': use \(Phantoms.names.joined(separator: ", "))")
        }
        let tree = VesselTree(d)
        let vessels = d.vessels.enumerated().map { i, v in
            Vessel(name: v.name, parent: v.parent, length_mm: round1(tree.length(ofVessel: i)),
                   radius_mm_min: v.points.map { $0[3] }.min()!, radius_mm_max: v.points.map { $0[3] }.max()!)
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var plot = LinePlot(title: "Phantom '\(name)': centerlines, frontal view", xLabel: "x, patient left (mm)", yLabel: "z, superior (mm)")
        plot.equalAspect = true
        let colours: [(UInt8, UInt8, UInt8)] = [(200, 40, 40), (40, 110, 220), (30, 150, 70), (230, 140, 20), (140, 60, 190), (90, 90, 90)]
        plot.series = d.vessels.enumerated().map { i, v in
            .init(label: v.name, points: v.points.map { (x: $0[0], y: $0[2]) }, color: colours[i % colours.count], thickness: 2)
        }
        let file = out + "/\(name).png"
        try plot.write(to: file)
        if json {
            try Output.json(["name": AnyEncodable(name), "segments": AnyEncodable(tree.segmentCount), "vessels": AnyEncodable(vessels), "plot": AnyEncodable(file)])
        } else {
            print("phantom '\(name)': \(vessels.count) vessels, \(tree.segmentCount) segments; drawn to \(file)")
            for v in vessels {
                print("  \(v.name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(v.length_mm) mm, radius \(v.radius_mm_min)…\(v.radius_mm_max) mm\(v.parent.map { ", from \($0)" } ?? "")")
            }
        }
    }
}

/// Type erasure for mixed JSON objects.
struct AnyEncodable: Encodable {
    let encodeValue: (Encoder) throws -> Void
    init(_ value: some Encodable) { encodeValue = value.encode }
    func encode(to encoder: Encoder) throws { try encodeValue(encoder) }
}
