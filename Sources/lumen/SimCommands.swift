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
        subcommands: [SimEtherCATSlaves.self]
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
