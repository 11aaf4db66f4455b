import Core
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import Runtime
import Synchronization

/// Why the console could not start; each says what to change.
public enum ConsoleServerError: Error, Sendable, Equatable, CustomStringConvertible {
    case setting(name: String, range: String)
    case auditLog(path: String, reason: String)
    case tls(String)
    case bind(String)
    case config(path: String, reason: String)
    case assets(String)

    public var description: String {
        switch self {
        case .setting(let n, let r): "setting \(n) must be in \(r)"
        case .auditLog(let p, let r): "cannot open the audit log \(p): \(r)"
        case .tls(let r): "TLS: \(r) (give both --cert and --key, PEM files)"
        case .bind(let r): "bind address: \(r) (expected HOST:PORT, e.g. 127.0.0.1:8080)"
        case .config(let p, let r): "config \(p): \(r)"
        case .assets(let r): "web assets: \(r)"
        }
    }
}

/// Where and how the console listens.
public struct ConsoleServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// PEM certificate chain and private key; both or neither. With them the console speaks HTTPS/WSS.
    public var certificatePath: String?
    public var keyPath: String?
    public var auditLogPath: String?
    /// Origins besides the console's own that may open the WebSocket (e.g. a reverse proxy's).
    public var extraOrigins: [String] = []
    /// A one-time token that logs a page in as `benchUser` at `/api/bench?token=…`: set only by
    /// `lumen bench console` for its headless browser, never from a config file.
    public var benchToken: String?
    public var benchUser: ConsoleUser?
    /// Log only what is critical (the bench's own shutdown would otherwise print the server's
    /// cancellation as errors).
    public var quiet = false
    public var settings = ConsoleSettings()
    public init() {}

    /// Parses `HOST:PORT`; a bare host gets port 8080.
    public static func parseBind(_ text: String) throws(ConsoleServerError) -> (String, Int) {
        guard let colon = text.lastIndex(of: ":") else {
            guard !text.isEmpty else { throw .bind("empty") }
            return (text, 8080)
        }
        let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard !host.isEmpty else { throw .bind("no host in \(text)") }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { throw .bind("port must be 0…65535 in \(text)") }
        return (host, port)
    }

    public var isLoopback: Bool { host == "127.0.0.1" || host == "::1" || host == "localhost" }
}

/// The request context: the WebSocket handler reference Hummingbird needs and the peer's address.
public struct ConsoleRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<ConsoleRequestContext>
    public let remoteAddress: SocketAddress?
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress
    }
    /// The peer as `ip:port`, for the audit log.
    public var peer: String {
        guard let a = remoteAddress else { return "unknown" }
        return "\(a.ipAddress ?? "?"):\(a.port ?? 0)"
    }
    /// Login bodies are a few dozen bytes.
    public var maxUploadSize: Int { 4096 }
}

/// The console's HTTP + WebSocket server: static page, login, and one WebSocket per page over
/// which commands come in (through the gate) and state and frames go out.
public final class ConsoleServer: Sendable {
    public let configuration: ConsoleServerConfiguration
    public let gate: ConsoleGate
    public let sessions: ConsoleSessions
    public let frames: ConsoleFrames
    let assets: [String: (body: [UInt8], type: String)]
    let clock: any ConsoleClock
    public static let cookieName = "lumen_session"

    public init(configuration: ConsoleServerConfiguration, port: any OperatorPort, users: [ConsoleUser],
                clock: any ConsoleClock = SystemConsoleClock()) throws(ConsoleServerError) {
        try configuration.settings.validate()
        if (configuration.certificatePath == nil) != (configuration.keyPath == nil) { throw .tls("one of --cert and --key is missing") }
        self.configuration = configuration
        self.clock = clock
        let audit = try AuditLog(path: configuration.auditLogPath, clock: clock)
        gate = ConsoleGate(port: port, settings: configuration.settings, clock: clock, audit: audit)
        sessions = ConsoleSessions(users: users, lifetime: Nanoseconds.fromSeconds(configuration.settings.sessionMinutes * 60), clock: clock)
        frames = ConsoleFrames(port: port, quality: configuration.settings.jpegQuality)
        assets = try Self.loadAssets()
    }

    static func loadAssets() throws(ConsoleServerError) -> [String: (body: [UInt8], type: String)] {
        guard let root = Bundle.module.resourceURL?.appendingPathComponent("Web") else { throw .assets("resource bundle not found") }
        var out: [String: (body: [UInt8], type: String)] = [:]
        for (name, type) in [("index.html", "text/html; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8"),
                             ("console.css", "text/css; charset=utf-8")] {
            guard let data = try? Data(contentsOf: root.appendingPathComponent(name)) else { throw .assets("\(name) missing in \(root.path)") }
            out[name] = ([UInt8](data), type)
        }
        return out
    }

    /// Serves until the task is cancelled. `onListening` receives the bound port (useful with port 0).
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let router = Router(context: ConsoleRequestContext.self)
        routes(router)
        var server = HTTPServerBuilder.http1WebSocketUpgrade(
            webSocketRouter: router,
            configuration: .init(ws: .init(maxFrameSize: 1 << 20, autoPing: .enabled(timePeriod: .seconds(10)))))
        if let cert = configuration.certificatePath, let key = configuration.keyPath {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(cert).map { NIOSSLCertificateSource.certificate($0) }
                let tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .file(key))
                server = try .tls(server, tlsConfiguration: tls)
            } catch {
                throw ConsoleServerError.tls("\(error)")
            }
        }
        var logger = Logger(label: "lumen.console")
        logger.logLevel = configuration.quiet ? .critical : .warning
        let app = Application(
            router: router, server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "lumen-console"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        // The network deadman's watchdog, and the intent → cycle observer (the first snapshot whose
        // applied sequence reaches an intent), run on a thread of their own: a busy task pool
        // (a login's bcrypt, a slow page) must not delay a release.
        let watching = Atomic<Bool>(true)
        let watchdog = Thread { [gate] in
            var lastTick: Nanoseconds = 0
            while watching.load(ordering: .acquiring) {
                let now = MonotonicClock.now()
                if now - lastTick >= 5 * .perMillisecond { gate.tick(); lastTick = now }
                gate.latency.observe(gate.port.snapshot())
                _ = MonotonicClock.sleep(until: now + .perMillisecond)
            }
        }
        watchdog.name = "console watchdog"
        watchdog.start()
        defer { watching.store(false, ordering: .releasing) }
        try await app.runService()
    }

    var tls: Bool { configuration.certificatePath != nil }

    // MARK: Routes

    func routes(_ router: Router<ConsoleRequestContext>) {
        router.add(middleware: SecurityHeaders())
        for (name, asset) in assets {
            router.get(name == "index.html" ? "/" : "/\(name)") { _, _ in
                Response(status: .ok, headers: [.contentType: asset.type], body: .init(byteBuffer: ByteBuffer(bytes: asset.body)))
            }
        }
        router.post("/api/login") { [self] request, context -> Response in
            guard originAllowed(request) else { return Self.json(.forbidden, ["error": "cross-origin request refused"]) }
            struct Login: Decodable { var user: String; var password: String }
            guard let login = try? await request.decode(as: Login.self, context: context),
                  login.user.utf8.count <= 64, login.password.utf8.count <= 256 else {
                return Self.json(.badRequest, ["error": "expected {\"user\": …, \"password\": …}"])
            }
            let source = context.peer
            // bcrypt takes ~0.2 s by design: off the task pool, so pages and other sockets go on.
            let sessions = self.sessions
            let result = await withCheckedContinuation { continuation in
                DispatchQueue.global().async { continuation.resume(returning: sessions.login(name: login.user, password: login.password)) }
            }
            switch result {
            case .failure(let e):
                gate.audit.record(name: ConsoleUsers.validName(login.user) ? login.user : "?", source: "console \(source)", "login", "refused: \(e)")
                return Self.json(.unauthorized, ["error": e.description])
            case .success(let session):
                gate.audit.record(OperatorIdentity(name: session.user.name, role: session.user.role, source: "console \(source)"), "login", "ok")
                var r = Self.json(.ok, ["user": session.user.name, "role": session.user.role.rawValue])
                r.headers[.setCookie] = cookie(session.token, maxAge: Int(configuration.settings.sessionMinutes * 60))
                return r
            }
        }
        router.post("/api/logout") { [self] request, _ -> Response in
            guard originAllowed(request) else { return Self.json(.forbidden, ["error": "cross-origin request refused"]) }
            if let token = Self.token(request) { sessions.logout(token: token) }
            var r = Self.json(.ok, ["user": ""])
            r.headers[.setCookie] = cookie("", maxAge: 0)
            return r
        }
        router.post("/api/stop") { [self] request, context -> Response in
            // The page's fallback when its socket is gone; a session is still needed, any role.
            guard originAllowed(request) else { return Self.json(.forbidden, ["error": "cross-origin request refused"]) }
            guard let s = Self.token(request).flatMap(sessions.session) else { return Self.json(.unauthorized, ["error": "not logged in"]) }
            let source = context.peer
            let reply = gate.stop(from: OperatorIdentity(name: s.user.name, role: s.user.role, source: "console \(source)"))
            return Self.json(reply.isRefused ? .serviceUnavailable : .ok, ["stop": reply.isRefused ? "refused" : "sent"])
        }
        router.get("/api/bench") { [self] request, _ -> Response in
            guard let expected = configuration.benchToken, let user = configuration.benchUser,
                  let given = request.uri.queryParameters["token"], String(given) == expected else {
                return Self.json(.notFound, ["error": "not found"])
            }
            let session = sessions.openSession(for: user)
            var r = Response(status: .seeOther, headers: [.location: "/?bench=1"])
            r.headers[.setCookie] = cookie(session.token, maxAge: 3600)
            return r
        }
        router.get("/api/me") { [self] request, _ -> Response in
            guard let s = Self.token(request).flatMap(sessions.session) else { return Self.json(.unauthorized, ["error": "not logged in"]) }
            return Self.json(.ok, ["user": s.user.name, "role": s.user.role.rawValue])
        }
        router.ws("/ws") { [self] request, context -> RouterShouldUpgrade in
            // Checked before the upgrade: a page of another origin, or without a live session, gets no socket.
            let source = context.peer
            guard originAllowed(request) else {
                gate.audit.record(name: "-", source: "console \(source)", "websocket", "refused: origin \(request.headers[.origin] ?? "none")")
                return .dontUpgrade
            }
            guard Self.token(request).flatMap(sessions.session) != nil else {
                gate.audit.record(name: "-", source: "console \(source)", "websocket", "refused: no valid session")
                return .dontUpgrade
            }
            return .upgrade([:])
        } onUpgrade: { [self] inbound, outbound, context in
            guard let token = Self.token(context.request), let session = sessions.session(token: token) else { return }
            let source = context.requestContext.peer
            try await ConsoleConnection(server: self, session: session, token: token, source: source).run(inbound: inbound, outbound: outbound)
        }
    }

    func cookie(_ value: String, maxAge: Int) -> String {
        "\(Self.cookieName)=\(value); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(maxAge)" + (tls ? "; Secure" : "")
    }

    /// Same origin (scheme://Host) or one configured; a request without an Origin header (not a browser page) is refused too.
    func originAllowed(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin], let host = request.head.authority ?? request.headers[Self.hostField] else { return false }
        return origin == (tls ? "https://" : "http://") + host || configuration.extraOrigins.contains(origin)
    }

    static let hostField = HTTPField.Name("Host")!

    static func token(_ request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.trimmingCharacters(in: .whitespaces)
                if kv.hasPrefix(cookieName + "=") {
                    let v = String(kv.dropFirst(cookieName.count + 1))
                    return v.isEmpty || v.utf8.count > 128 ? nil : v
                }
            }
        }
        return nil
    }

    static func json(_ status: HTTPResponse.Status, _ body: [String: String]) -> Response {
        let data = (try? JSONEncoder().encode(body)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Headers that keep the page from being framed, sniffed or made to load anything foreign.
struct SecurityHeaders: RouterMiddleware {
    typealias Context = ConsoleRequestContext
    static let csp = HTTPField.Name("Content-Security-Policy")!
    static let nosniff = HTTPField.Name("X-Content-Type-Options")!
    static let frameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrer = HTTPField.Name("Referrer-Policy")!
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var r = try await next(request, context)
        r.headers[Self.csp] = "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; frame-ancestors 'none'"
        r.headers[Self.nosniff] = "nosniff"
        r.headers[Self.frameOptions] = "DENY"
        r.headers[Self.referrer] = "no-referrer"
        if r.headers[.cacheControl] == nil { r.headers[.cacheControl] = "no-store" }
        return r
    }
}
