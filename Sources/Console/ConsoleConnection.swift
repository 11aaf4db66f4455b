import Core
import Foundation
import HummingbirdWebSocket
import NIOCore
import Runtime

/// One page's WebSocket: commands in (decoded, then through the gate), replies, state and frames
/// out. One task writes to the socket; the others hand it messages through a bounded stream that
/// keeps the newest, so a slow page loses old state rather than delaying new.
struct ConsoleConnection {
    let server: ConsoleServer
    let session: ConsoleSessions.Session
    let token: String
    let source: String

    enum Outgoing: Sendable {
        case text(String)
        case binary([UInt8])
    }

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let gate = server.gate
        guard let id = gate.connect(user: session.user, source: source) else {
            try await outbound.close(.policyViolation, reason: "too many connections")
            return
        }
        defer { gate.disconnect(id) }
        let (stream, continuation) = AsyncStream<Outgoing>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let description = gate.port.runtimeDescription
        if let hello = Self.encode(HelloMessage(description, user: session.user, settings: server.configuration.settings)) {
            continuation.yield(.text(hello))
        }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in stream {
                    switch message {
                    case .text(let s): try await outbound.write(.text(s))
                    case .binary(let b): try await outbound.write(.binary(ByteBuffer(bytes: b)))
                    }
                }
            }
            group.addTask { [server, session, token, source] in
                // State at 20 Hz; frames of each plane at the display rate, when there is a newer one.
                var sentIndex = [UInt64](repeating: 0, count: description.planes.count)
                var sentAt = [Nanoseconds](repeating: 0, count: description.planes.count)
                let frameInterval = Nanoseconds.fromSeconds(1 / server.configuration.settings.displayRate)
                var stateAt: Nanoseconds = 0
                while !Task.isCancelled {
                    let now = MonotonicClock.now()
                    // A session that expired or logged out while the page was open ends the socket.
                    guard server.sessions.session(token: token) != nil else {
                        gate.audit.record(OperatorIdentity(name: session.user.name, role: session.user.role, source: "console \(source)"),
                                          "session", "expired: connection closed")
                        try await outbound.close(.policyViolation, reason: "session expired")
                        return
                    }
                    if now - stateAt >= 50 * .perMillisecond, let view = gate.view(id) {
                        stateAt = now
                        let samples = gate.latency.samples()
                        let (i50, i99) = percentilesMs(samples.intentToCycle.suffix(2000))
                        let (f50, f99) = percentilesMs(samples.frameToScreen.suffix(500))
                        let state = StateMessage(gate.port.snapshot(), description, view: view,
                                                 latency: .init(intentP50Ms: i50, intentP99Ms: i99, frameP50Ms: f50, frameP99Ms: f99))
                        if let text = Self.encode(state) { continuation.yield(.text(text)) }
                    }
                    for p in description.planes.indices where now - sentAt[p] >= frameInterval {
                        if let f = server.frames.newest(plane: UInt8(p), after: sentIndex[p]) {
                            sentIndex[p] = f.index; sentAt[p] = now
                            gate.latency.frameSent(plane: f.plane, index: f.index, acquiredAt: f.acquiredAt)
                            continuation.yield(.binary(f.message))
                        }
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            // Commands, until the page goes away (the deferred disconnect then releases its
            // deadman and lease).
            for try await message in inbound.messages(maxSize: ConsoleMessage.maxLength * 4) {
                let bytes: [UInt8]
                switch message {
                case .text(let s): bytes = Array(s.utf8)
                case .binary(let b): bytes = Array(b.readableBytesView)
                }
                let command = String(decoding: bytes.prefix(8), as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
                let reply: GateReply
                switch ConsoleMessage.decode(bytes) {
                case .failure(let e): reply = .refused(e.description)
                case .success(let c): reply = gate.handle(id, c)
                }
                switch reply {
                case .ok(nil): break
                case .ok(let note?):
                    if let t = Self.encode(ReplyMessage(command: command, ok: true, text: note)) { continuation.yield(.text(t)) }
                case .refused(let why):
                    if let t = Self.encode(ReplyMessage(command: command, ok: false, text: why)) { continuation.yield(.text(t)) }
                }
            }
            // Released at once, not after the other tasks wind down.
            gate.disconnect(id)
            continuation.finish()
            group.cancelAll()
        }
    }

    static func encode(_ value: some Encodable) -> String? {
        guard let data = try? JSONEncoder().encode(value) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
