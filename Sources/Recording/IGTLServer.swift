import Core
import Foundation
import Runtime
import Synchronization

/// What the OpenIGTLink server serves and to whom.
public struct IGTLServerSettings: Sendable, Equatable {
    /// The address to bind: loopback unless a site configures another.
    public var bindAddress = "127.0.0.1"
    /// TCP port; 0 picks a free one (`boundPort` tells which). OpenIGTLink's own is 18944.
    public var port: UInt16 = 18944
    /// Clients served at once (1…64); more are told so and closed.
    public var maximumClients = 4
    /// Bytes queued for one client (1…256 MiB): a client that does not read is skipped (frames
    /// first), and dropped after `stallTimeout` without progress.
    public var sendQueueBytes = 16 << 20
    public var stallTimeout: Nanoseconds = 2 * .perSecond
    /// Tip TRANSFORMs per second (1…1000).
    public var tipRate = 50.0
    /// Send frames as IMAGE.
    public var images = true
    /// Accept POINT / TRANSFORM / POSITION from clients as navigation targets. Off: they are
    /// refused and the client is told so.
    public var acceptTargets = false
    /// 2 for the v1/v2 header, 3 for v3 (extended header and metadata).
    public var protocolVersion = 3

    public init() {}

    public func validate() throws(IGTLServerError) {
        guard (1...64).contains(maximumClients) else { throw .invalidSetting("maximum clients \(maximumClients) (1…64)") }
        guard ((1 << 20)...(256 << 20)).contains(sendQueueBytes) else { throw .invalidSetting("send queue (1…256 MiB)") }
        guard tipRate.isFinite, (1...1000).contains(tipRate) else { throw .invalidSetting("tip rate \(tipRate) (1…1000 Hz)") }
        guard protocolVersion == 2 || protocolVersion == 3 else { throw .invalidSetting("protocol version \(protocolVersion) (2 or 3)") }
        guard (100 * Nanoseconds.perMillisecond...60 * .perSecond).contains(stallTimeout) else { throw .invalidSetting("stall timeout (0.1…60 s)") }
    }
}

public enum IGTLServerError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidSetting(String)
    case bind(address: String, port: UInt16, errno: Int32)

    public var description: String {
        switch self {
        case .invalidSetting(let s): "OpenIGTLink setting out of range: \(s)"
        case .bind(let a, let p, let e): "cannot listen on \(a):\(p): \(String(cString: strerror(e))) (another program on that port? pick another)"
        }
    }
}

/// Counters of the server, for tests, metrics and the bench.
public struct IGTLServerStats: Sendable, Equatable {
    public var connections = 0
    public var refusedConnections = 0
    public var dropped = 0
    public var messagesSent = 0
    public var imagesSkipped = 0
    public var messagesSkipped = 0
    public var decodeErrors = 0
    public var targetsAccepted = 0
    public var targetsRefused = 0
}

/// OpenIGTLink for 3D Slicer, PLUS and other IGT tools: serves the tip estimate (TRANSFORM
/// "LumenTip"), each plane's tracked tip (TRANSFORM "LumenTipPlane<k>") in that plane's image
/// frame, frames (IMAGE "LumenPlane<k>"), faults and mode (STATUS "LumenStatus"), the route and
/// target (POINT "LumenRoute", "LumenTarget"); takes targets from clients only when enabled. One
/// thread, non-blocking sockets: a slow client never delays another or the runtime.
public final class IGTLServer: @unchecked Sendable {
    public let settings: IGTLServerSettings
    private let port: any OperatorPort
    private let listener: Int32
    public let boundPort: UInt16
    private let running = Atomic<Bool>(false)
    private let statsBox = Mutex(IGTLServerStats())
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)
    /// Called on the server's thread with each tip TRANSFORM's estimate time (for the latency bench).
    public var onTipSent: (@Sendable (Nanoseconds) -> Void)?

    private final class Client {
        let fd: Int32
        let peer: String
        var inbox: [UInt8] = []
        var outbox: [[UInt8]] = []
        var outboxBytes = 0
        var sentOffset = 0
        var lastProgress: Nanoseconds
        var stalledSince: Nanoseconds?
        var closing = false
        init(fd: Int32, peer: String, now: Nanoseconds) { self.fd = fd; self.peer = peer; lastProgress = now }
    }

    private var clients: [Client] = []
    private var lastFrame: [UInt64] = []
    private var lastStatusText = ""
    private var lastStatusAt: Nanoseconds = 0
    private var lastTarget: Vec3?

    public init(port: any OperatorPort, settings: IGTLServerSettings = IGTLServerSettings()) throws(IGTLServerError) {
        try settings.validate()
        self.settings = settings
        self.port = port
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .bind(address: settings.bindAddress, port: settings.port, errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = settings.port.bigEndian
        guard inet_pton(AF_INET, settings.bindAddress, &addr.sin_addr) == 1 else {
            close(fd)
            throw .invalidSetting("bind address \(settings.bindAddress) is not an IPv4 address")
        }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw .bind(address: settings.bindAddress, port: settings.port, errno: e)
        }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listener = fd
        boundPort = UInt16(bigEndian: bound.sin_port)
        lastFrame = Array(repeating: 0, count: port.runtimeDescription.planes.count)
    }

    public var stats: IGTLServerStats { statsBox.withLock { $0 } }

    public func start() {
        running.store(true, ordering: .releasing)
        let t = Thread { [self] in loop() }
        t.name = "lumen-igtl"
        thread = t
        t.start()
    }

    public func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        done.wait()
    }

    deinit { close(listener) }

    private func loop() {
        defer {
            for c in clients { close(c.fd) }
            clients.removeAll()
            done.signal()
        }
        let tipPeriod = Nanoseconds.fromSeconds(1 / settings.tipRate)
        var nextTip = MonotonicClock.now()
        var fds: [pollfd] = []
        while running.load(ordering: .acquiring) {
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            for c in clients { fds.append(pollfd(fd: c.fd, events: Int16(POLLIN) | (c.outbox.isEmpty ? 0 : Int16(POLLOUT)), revents: 0)) }
            let wait = max(0, min(20, (nextTip - MonotonicClock.now()) / .perMillisecond))
            _ = poll(&fds, nfds_t(fds.count), Int32(wait))
            let now = MonotonicClock.now()
            if fds[0].revents & Int16(POLLIN) != 0 { accept(now) }
            for (k, c) in clients.enumerated() where k + 1 < fds.count {
                let ev = fds[k + 1].revents
                if ev & Int16(POLLIN) != 0 { receive(c) }
                if ev & (Int16(POLLHUP) | Int16(POLLERR)) != 0 { c.closing = true }
            }
            if now >= nextTip {
                publish(now)
                nextTip += tipPeriod
                if nextTip < now { nextTip = now + tipPeriod }
            }
            for c in clients where !c.closing { flush(c, now) }
            let gone = clients.filter(\.closing)
            if !gone.isEmpty {
                for c in gone { close(c.fd) }
                clients.removeAll { $0.closing }
                statsBox.withLock { $0.dropped += gone.count }
            }
        }
    }

    private func accept(_ now: Nanoseconds) {
        while true {
            var addr = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let fd = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(listener, $0, &len) }
            }
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            var text = [CChar](repeating: 0, count: 64)
            inet_ntop(AF_INET, &addr.sin_addr, &text, socklen_t(text.count))
            let peer = "\(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)):\(UInt16(bigEndian: addr.sin_port))"
            guard clients.count < settings.maximumClients else {
                let m = IGTLCodec.message(type: "STATUS", device: "LumenStatus", timestamp: wallStamp(),
                                          content: IGTLCodec.statusContent(code: 11, name: "TOO_MANY_CLIENTS",
                                                                           message: "this server takes \(settings.maximumClients) clients"),
                                          version: version)
                statsBox.withLock { $0.refusedConnections += 1 }
                _ = m.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(fd)
                continue
            }
            let c = Client(fd: fd, peer: peer, now: now)
            clients.append(c)
            statsBox.withLock { $0.connections += 1 }
            // A new client gets the route, the target and the status at once.
            enqueue(c, routeMessage(), image: false)
            if let t = lastTarget { enqueue(c, targetMessage(t), image: false) }
            enqueue(c, statusMessage(port.snapshot()), image: false)
            for p in lastFrame.indices { lastFrame[p] = 0 }
        }
    }

    private var version: UInt16 { settings.protocolVersion == 3 ? 2 : 1 }

    private func wallStamp() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return IGTLCodec.timestamp(unixNanoseconds: Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }

    private func receive(_ c: Client) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { c.closing = true; return }
            if n < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { c.closing = true }
                break
            }
            c.inbox.append(contentsOf: buffer[0..<n])
            if c.inbox.count > IGTLCodec.headerSize + IGTLCodec.maximumClientBody { break }
        }
        while c.inbox.count >= IGTLCodec.headerSize {
            let decoded = c.inbox.withUnsafeBytes { b in Result { () throws(IGTLError) in try IGTLCodec.decodeHeader(b) } }
            let header: IGTLHeader
            switch decoded {
            case .success(let h): header = h
            case .failure(let e): reject(c, e, fatal: true); return
            }
            guard header.bodySize <= UInt64(IGTLCodec.maximumClientBody) else {
                reject(c, .bodyTooLarge(size: header.bodySize, limit: IGTLCodec.maximumClientBody), fatal: true); return
            }
            let total = IGTLCodec.headerSize + Int(header.bodySize)
            guard c.inbox.count >= total else { return }
            let result = c.inbox.withUnsafeBytes { b in Result { () throws(IGTLError) in try IGTLCodec.decode(UnsafeRawBufferPointer(rebasing: b[0..<total])) } }
            c.inbox.removeFirst(total)
            switch result {
            case .success(let m): handle(m, from: c)
            case .failure(let e): reject(c, e, fatal: false)
            }
        }
    }

    /// Tells the client what was wrong; past a bad header the stream cannot be resynchronised.
    private func reject(_ c: Client, _ e: IGTLError, fatal: Bool) {
        statsBox.withLock { $0.decodeErrors += 1 }
        let code: UInt16 = if case .checksum = e { 9 } else { 2 }
        enqueue(c, IGTLCodec.message(type: "STATUS", device: "LumenStatus", timestamp: wallStamp(),
                                     content: IGTLCodec.statusContent(code: code, name: "BAD_MESSAGE", message: e.description), version: version), image: false)
        if fatal {
            flush(c, MonotonicClock.now())
            c.closing = true
        }
    }

    private func handle(_ m: IGTLMessage, from c: Client) {
        let target: SIMD3<Float>?
        let device: String
        switch m {
        case .point(let d, let points): device = d; target = points.first?.position
        case .transform(let d, let v): device = d; target = SIMD3(v[9], v[10], v[11])
        case .position(let d, let p, _): device = d; target = p
        case .query(_, let prefix, let type):
            if prefix == "GET_", type == "STATUS" { enqueue(c, statusMessage(port.snapshot()), image: false) }
            if prefix == "GET_", type == "POINT" { enqueue(c, routeMessage(), image: false) }
            return
        default: return
        }
        guard let target else { return }
        let reply: (code: UInt16, text: String)
        if !settings.acceptTargets {
            reply = (5, "refused: targets from OpenIGTLink are not enabled on this system")
            statsBox.withLock { $0.targetsRefused += 1 }
        } else {
            let who = OperatorIdentity(name: device.isEmpty ? "igtl client" : device, role: .automation, source: "igtl \(c.peer)")
            switch port.submit(.target(Vec3(Double(target.x), Double(target.y), Double(target.z))), from: who) {
            case .success(let r):
                reply = (1, "accepted: target sequence \(r.sequence)")
                statsBox.withLock { $0.targetsAccepted += 1 }
            case .failure(let why):
                reply = (2, "refused: \(why)")
                statsBox.withLock { $0.targetsRefused += 1 }
            }
        }
        let stamp = wallStamp()
        enqueue(c, IGTLCodec.message(type: "STATUS", device: "LumenTargetReply", timestamp: stamp,
                                     content: IGTLCodec.statusContent(code: reply.code, name: reply.code == 1 ? "OK" : "REFUSED", message: reply.text),
                                     version: version), image: false)
        // STRING too: clients that do not decode STATUS (pyigtl) still learn the answer.
        enqueue(c, IGTLCodec.message(type: "STRING", device: "LumenTargetReply", timestamp: stamp, content: IGTLCodec.stringContent(reply.text),
                                     version: version), image: false)
    }

    /// Queues a message for one client; a full queue skips it (counted) rather than wait.
    private func enqueue(_ c: Client, _ m: [UInt8], image: Bool) {
        guard !c.closing else { return }
        // A frame is queued only while the queue is less than half full, so the small messages
        // always find room behind it; a frame larger than the queue still goes to a client that keeps up.
        let full = image ? c.outboxBytes > settings.sendQueueBytes / 2 : c.outboxBytes + m.count > settings.sendQueueBytes
        if full {
            statsBox.withLock { if image { $0.imagesSkipped += 1 } else { $0.messagesSkipped += 1 } }
            return
        }
        c.outbox.append(m)
        c.outboxBytes += m.count
    }

    private func flush(_ c: Client, _ now: Nanoseconds) {
        var sent = 0
        while let first = c.outbox.first {
            let n = first.withUnsafeBytes { send(c.fd, $0.baseAddress! + c.sentOffset, $0.count - c.sentOffset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { c.closing = true }
                break
            }
            c.sentOffset += n
            if c.sentOffset == first.count {
                c.outbox.removeFirst()
                c.outboxBytes -= first.count
                c.sentOffset = 0
                sent += 1
            }
            c.lastProgress = now
        }
        if sent > 0 { statsBox.withLock { $0.messagesSent += sent } }
        // A client that takes nothing for the stall timeout is dropped: it is not reading.
        if !c.outbox.isEmpty, now - c.lastProgress > settings.stallTimeout { c.closing = true }
    }

    // MARK: What is served

    private func publish(_ now: Nanoseconds) {
        guard !clients.isEmpty else { return }
        let s = port.snapshot()
        let stamp = wallStamp()
        let tip = IGTLCodec.message(type: "TRANSFORM", device: "LumenTip", timestamp: stamp,
                                    content: IGTLCodec.transformContent(translation: SIMD3(Float(s.estimate.position.x), Float(s.estimate.position.y),
                                                                                          Float(s.estimate.position.z))),
                                    version: version,
                                    metadata: version == 2 ? [("lumen.health", "\(s.estimate.health)"), ("lumen.estimate_ns", "\(s.estimate.time)")] : [])
        for c in clients { enqueue(c, tip, image: false) }
        onTipSent?(s.estimate.time)
        if now - lastStatusAt >= Nanoseconds.perSecond || statusText(s) != lastStatusText {
            lastStatusAt = now
            let m = statusMessage(s)
            for c in clients { enqueue(c, m, image: false) }
        }
        if s.target != lastTarget, let t = s.target {
            lastTarget = t
            let m = targetMessage(t)
            for c in clients { enqueue(c, m, image: false) }
        }
        for p in lastFrame.indices {
            guard let f = port.latestFrame(plane: UInt8(p), after: lastFrame[p]) else { continue }
            lastFrame[p] = f.index
            guard f.width > 0, f.height > 0, f.width <= 8192, f.height <= 8192, f.pixels.count == f.width * f.height else { continue }
            let spacing = Float(f.pixelSpacing)
            let centre = SIMD3<Float>(Float(f.width - 1) / 2 * spacing, Float(f.height - 1) / 2 * spacing, 0)
            let image = f.pixels.withUnsafeBufferPointer {
                IGTLCodec.imageContent(width: f.width, height: f.height, pixels: $0, axes: (SIMD3(spacing, 0, 0), SIMD3(0, spacing, 0)),
                                       normal: SIMD3(0, 0, 1), centre: centre)
            }
            let meta: [(String, String)] = version == 2
                ? [("lumen.projection", f.projection.map { "\($0)" }.joined(separator: " ")), ("lumen.pixel_spacing_mm", "\(f.pixelSpacing)"),
                   ("lumen.frame", "\(f.index)")] : []
            if settings.images {
                let m = IGTLCodec.message(type: "IMAGE", device: "LumenPlane\(p)", timestamp: stamp, content: image, version: version, metadata: meta)
                for c in clients { enqueue(c, m, image: true) }
            }
            if let px = f.measurement?.pixel {
                // The tracked tip in the same frame as the IMAGE: pixel × spacing, on the image plane.
                let t = IGTLCodec.message(type: "TRANSFORM", device: "LumenTipPlane\(p)", timestamp: stamp,
                                          content: IGTLCodec.transformContent(translation: SIMD3(Float(px.x) * spacing, Float(px.y) * spacing, 0)),
                                          version: version)
                for c in clients { enqueue(c, t, image: false) }
            }
        }
    }

    private func statusText(_ s: RuntimeSnapshot) -> String {
        s.safety.latchedFaults.isEmpty ? "mode \(s.mode)" : "faults: " + s.safety.latchedFaults.joined(separator: "; ")
    }

    private func statusMessage(_ s: RuntimeSnapshot) -> [UInt8] {
        lastStatusText = statusText(s)
        let code: UInt16 = !s.safety.latchedFaults.isEmpty ? 2 : (s.safety.stopCategory != nil ? 15 : 1)
        let name = !s.safety.latchedFaults.isEmpty ? "FAULT" : (s.safety.stopCategory != nil ? "STOPPED" : "OK")
        return IGTLCodec.message(type: "STATUS", device: "LumenStatus", timestamp: wallStamp(),
                                 content: IGTLCodec.statusContent(code: code, subcode: Int64(s.safety.stopCategory ?? -1), name: name, message: lastStatusText),
                                 version: version)
    }

    private func routeMessage() -> [UInt8] {
        let d = port.runtimeDescription
        var points: [IGTLPoint] = []
        for (name, line) in d.roadmap {
            for (k, p) in line.enumerated() {
                points.append(IGTLPoint(name: "\(name)-\(k)", group: "route", rgba: (0, 200, 255, 255),
                                        position: SIMD3(Float(p.x), Float(p.y), Float(p.z)), diameter: 1, owner: ""))
            }
        }
        for (name, p) in d.targets {
            points.append(IGTLPoint(name: name, group: "named-target", rgba: (255, 160, 0, 255), position: SIMD3(Float(p.x), Float(p.y), Float(p.z)), diameter: 3))
        }
        return IGTLCodec.message(type: "POINT", device: "LumenRoute", timestamp: wallStamp(), content: IGTLCodec.pointContent(points), version: version)
    }

    private func targetMessage(_ t: Vec3) -> [UInt8] {
        IGTLCodec.message(type: "POINT", device: "LumenTarget", timestamp: wallStamp(),
                          content: IGTLCodec.pointContent([IGTLPoint(name: "target", group: "target", rgba: (255, 0, 0, 255),
                                                                     position: SIMD3(Float(t.x), Float(t.y), Float(t.z)), diameter: 4)]),
                          version: version)
    }
}
