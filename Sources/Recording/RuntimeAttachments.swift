import Control
import Core
import Foundation
import Runtime

/// What a live run serves and records besides its own outputs: the MCAP recorder, the
/// OpenIGTLink server and the metrics endpoint, each optional. One place that attaches them to a
/// running system, so the demo, the console and the HIL runner attach them the same way.
public struct AttachmentSettings: Sendable {
    /// Record to this MCAP file.
    public var recordPath: String?
    public var recorder = RecorderSettings()
    /// Serve OpenIGTLink (settings' port; 0 picks a free one).
    public var igtl: IGTLServerSettings?
    /// Serve Prometheus metrics on 127.0.0.1 at this port (0 picks a free one).
    public var metricsPort: UInt16?
    /// Configuration documents recorded at the start, with their hashes.
    public var configuration: [ConfigurationDocument] = []
    public init() {}

    /// Reads the files a run was configured by, to be recorded whole. A file that cannot be read
    /// refuses the run: a recording that silently lacks its configuration cannot be reviewed.
    public static func configurationDocuments(_ paths: [String]) throws(AttachmentError) -> [ConfigurationDocument] {
        var docs: [ConfigurationDocument] = []
        for path in paths {
            do { docs.append(ConfigurationDocument(name: path, bytes: Array(try Data(contentsOf: URL(fileURLWithPath: path))))) } catch {
                throw .configurationUnreadable(path: path, reason: (error as NSError).localizedDescription)
            }
        }
        return docs
    }

    public var isEmpty: Bool { recordPath == nil && igtl == nil && metricsPort == nil }
}

/// Typed failure of one attachment: which one, and why. The run does not start without it.
public enum AttachmentError: Error, Sendable, CustomStringConvertible {
    case recorder(RecorderError)
    case igtl(IGTLServerError)
    case metrics(MetricsError)
    /// A configuration file the run was configured by, to be recorded whole, cannot be read.
    case configurationUnreadable(path: String, reason: String)
    public var description: String {
        switch self {
        case .recorder(let e): "recorder: \(e)"
        case .igtl(let e): "OpenIGTLink: \(e)"
        case .metrics(let e): "metrics: \(e)"
        case .configurationUnreadable(let path, let reason):
            "cannot read the configuration file \(path) to record it: \(reason) (check that it exists and is readable)"
        }
    }
}

/// The attachments of one run. Created before the run starts (so a port in use or a file that
/// cannot be written is refused up front), started once the runtime runs, stopped after it ended
/// (the recorder's last drain then holds the run's last cycles).
public final class RuntimeAttachments: @unchecked Sendable {
    public let recorder: Recorder?
    public let igtl: IGTLServer?
    public let metricsEndpoint: MetricsEndpoint?
    public let metrics: RuntimeMetrics

    public init(_ settings: AttachmentSettings, port: any OperatorPort, tap: any RecordingTap) throws(AttachmentError) {
        let metrics = RuntimeMetrics()
        self.metrics = metrics
        if let path = settings.recordPath {
            do {
                recorder = try Recorder(path: path, settings: settings.recorder, tap: tap, port: port, configuration: settings.configuration, metrics: metrics)
            } catch { throw .recorder(error) }
        } else { recorder = nil }
        if let s = settings.igtl {
            do { igtl = try IGTLServer(port: port, settings: s) } catch { throw .igtl(error) }
        } else { igtl = nil }
        if let p = settings.metricsPort {
            do { metricsEndpoint = try MetricsEndpoint(port: port, metrics: metrics, bindPort: p) } catch { throw .metrics(error) }
        } else { metricsEndpoint = nil }
    }

    public func start() {
        recorder?.start()
        igtl?.start()
        metricsEndpoint?.start()
    }

    /// Stops everything; the recorder's report when there was one.
    public func stop() -> RecorderReport? {
        igtl?.stop()
        metricsEndpoint?.stop()
        return recorder?.stop()
    }

    /// Where the servers listen, for the operator's console line.
    public var listening: [String] {
        var s: [String] = []
        if let igtl { s.append("OpenIGTLink on port \(igtl.boundPort)") }
        if let metricsEndpoint { s.append("metrics on http://127.0.0.1:\(metricsEndpoint.boundPort)/metrics") }
        return s
    }
}

/// A supervised live runtime with what is attached to it: what a long-running front end (the
/// console, a bench) serves. Starting runs the runtime first, then the attachments; stopping ends
/// the attachments after the runtime, so the recorder drains the run's last records.
public final class AttachedLiveService: @unchecked Sendable {
    public let service: LiveService
    public let attachments: RuntimeAttachments?
    public var runtime: LiveRuntime { service.runtime }

    public init(_ settings: LiveSettings, robot: RobotDescription, attachments: AttachmentSettings) throws {
        service = try LiveService(settings, robot: robot)
        self.attachments = attachments.isEmpty ? nil : try RuntimeAttachments(attachments, port: service.runtime, tap: service.runtime)
    }

    public func start(onEnd: (@Sendable (RunEnding) -> Void)? = nil) throws(RuntimeError) {
        try service.start(onEnd: onEnd)
        attachments?.start()
    }

    /// Stops the runtime, then the attachments; the recorder's report when there was one.
    public func stop() -> RecorderReport? {
        _ = service.stop()
        return attachments?.stop()
    }
}
