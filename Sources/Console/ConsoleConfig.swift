import Core
import Foundation

/// The console's configuration file (JSON or YAML, through `ConfigLoader`), e.g.
///
///     bind: 127.0.0.1:8080
///     users: /etc/lumen/console-users
///     audit_log: /var/log/lumen/console-audit.log
///     cert: /etc/lumen/console.pem      # with key: HTTPS and WSS
///     key: /etc/lumen/console-key.pem
///     origins: [https://console.cathlab.example]
///     deadman_timeout_ms: 150
///     session_minutes: 480
///     messages_per_second: 100
///     message_burst: 50
///     display_rate: 15
///     jpeg_quality: 80
///
/// Every field is optional; command-line options override the file.
public struct ConsoleConfigFile: ValidatedConfig, Sendable, Equatable {
    public var bind: String?
    public var users: String?
    public var auditLog: String?
    public var cert: String?
    public var key: String?
    public var origins: [String]?
    public var deadmanTimeoutMs: Double?
    public var sessionMinutes: Double?
    public var messagesPerSecond: Double?
    public var messageBurst: Double?
    public var displayRate: Double?
    public var jpegQuality: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case bind, users, auditLog = "audit_log", cert, key, origins
        case deadmanTimeoutMs = "deadman_timeout_ms", sessionMinutes = "session_minutes"
        case messagesPerSecond = "messages_per_second", messageBurst = "message_burst"
        case displayRate = "display_rate", jpegQuality = "jpeg_quality"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        bind = try c.decodeIfPresent(String.self, forKey: .bind)
        users = try c.decodeIfPresent(String.self, forKey: .users)
        auditLog = try c.decodeIfPresent(String.self, forKey: .auditLog)
        cert = try c.decodeIfPresent(String.self, forKey: .cert)
        key = try c.decodeIfPresent(String.self, forKey: .key)
        origins = try c.decodeIfPresent([String].self, forKey: .origins)
        deadmanTimeoutMs = try c.decodeIfPresent(Double.self, forKey: .deadmanTimeoutMs)
        sessionMinutes = try c.decodeIfPresent(Double.self, forKey: .sessionMinutes)
        messagesPerSecond = try c.decodeIfPresent(Double.self, forKey: .messagesPerSecond)
        messageBurst = try c.decodeIfPresent(Double.self, forKey: .messageBurst)
        displayRate = try c.decodeIfPresent(Double.self, forKey: .displayRate)
        jpegQuality = try c.decodeIfPresent(Int.self, forKey: .jpegQuality)
    }

    public func validate(into v: inout ConfigValidator) {
        if let bind { do { _ = try ConsoleServerConfiguration.parseBind(bind) } catch { v.fail("bind", error.description) } }
        if let x = deadmanTimeoutMs { v.check(x, in: 50...1000, "deadman_timeout_ms", "ms") }
        if let x = sessionMinutes { v.check(x, in: 0.1...1440, "session_minutes", "min") }
        if let x = messagesPerSecond { v.check(x, in: 1...1000, "messages_per_second") }
        if let x = messageBurst { v.check(x, in: 1...1000, "message_burst") }
        if let x = displayRate { v.check(x, in: 1...60, "display_rate", "frames/s") }
        if let x = jpegQuality { v.check((10...100).contains(x), "jpeg_quality", "must be within 10…100, got \(x)") }
        if (cert == nil) != (key == nil) { v.fail(cert == nil ? "cert" : "key", "cert and key go together") }
        for (i, o) in (origins ?? []).enumerated() {
            v.check(o.hasPrefix("http://") || o.hasPrefix("https://"), "origins[\(i)]", "must start with http:// or https://")
        }
    }

    /// The server configuration this file describes, over the defaults.
    public func apply(to c: inout ConsoleServerConfiguration) throws(ConsoleServerError) {
        if let bind { (c.host, c.port) = try ConsoleServerConfiguration.parseBind(bind) }
        if let auditLog { c.auditLogPath = auditLog }
        if let cert { c.certificatePath = cert }
        if let key { c.keyPath = key }
        if let origins { c.extraOrigins = origins }
        if let x = deadmanTimeoutMs { c.settings.deadmanTimeoutMs = x }
        if let x = sessionMinutes { c.settings.sessionMinutes = x }
        if let x = messagesPerSecond { c.settings.messagesPerSecond = x }
        if let x = messageBurst { c.settings.messageBurst = x }
        if let x = displayRate { c.settings.displayRate = x }
        if let x = jpegQuality { c.settings.jpegQuality = x }
    }
}
