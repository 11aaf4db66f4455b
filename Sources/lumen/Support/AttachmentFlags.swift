import ArgumentParser
import CommandSupport
import Foundation
import Recording

/// The options that attach a recorder and servers to a live run (`lumen demo`, `lumen console`).
struct AttachmentFlags: ParsableArguments {
    @Option(help: "Record the live run to this MCAP file (docs/recording.md); its folder must exist.")
    var record: String?

    @Option(name: .customLong("igtl-port"), help: "Serve OpenIGTLink on 127.0.0.1 at this TCP port (1024…65535; docs/openigtlink.md).")
    var igtlPort: Int?

    @Flag(name: .customLong("igtl-targets"), help: "Accept navigation targets from OpenIGTLink clients (off: refused, and the client is told so).")
    var igtlTargets = false

    @Option(name: .customLong("metrics-port"), help: "Serve Prometheus metrics on 127.0.0.1 at this TCP port (1024…65535).")
    var metricsPort: Int?

    func validate() throws {
        try Check.count(igtlPort, "--igtl-port", in: 1024...65_535)
        try Check.count(metricsPort, "--metrics-port", in: 1024...65_535)
        if igtlTargets, igtlPort == nil { throw ValidationError("--igtl-targets needs --igtl-port") }
        if let record {
            let folder = (record as NSString).deletingLastPathComponent
            var isDir: ObjCBool = false
            if !folder.isEmpty, !(FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) && isDir.boolValue) {
                throw ValidationError("--record: the folder \(folder) does not exist")
            }
        }
    }

    /// The settings, with the files the run was configured by recorded whole; a file that cannot
    /// be read is an error naming it.
    func settings(configurationFiles: [String]) throws(AttachmentError) -> AttachmentSettings {
        var s = AttachmentSettings()
        s.recordPath = record
        if let igtlPort {
            var i = IGTLServerSettings()
            i.port = UInt16(igtlPort)
            i.acceptTargets = igtlTargets
            s.igtl = i
        }
        s.metricsPort = metricsPort.map(UInt16.init)
        // Read only when something records: a run that records nothing needs none of them.
        if record != nil { s.configuration = try AttachmentSettings.configurationDocuments(configurationFiles) }
        return s
    }
}
