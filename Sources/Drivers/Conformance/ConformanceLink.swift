import Core
import Foundation

/// One frame the device sent, checked by the host's codec.
public struct ReceivedFrame: Sendable {
    public var type: DriveLink.MessageType
    public var seq: UInt16
    public var payload: [UInt8]
    /// When it was taken off the line (`MonotonicClock`).
    public var at: Nanoseconds

    func u16(_ o: Int) -> UInt16 { UInt16(payload[o]) | UInt16(payload[o + 1]) << 8 }
    func u32(_ o: Int) -> UInt32 { UInt32(u16(o)) | UInt32(u16(o + 2)) << 16 }
    func i32(_ o: Int) -> Int32 { Int32(bitPattern: u32(o)) }
}

/// The conformance suite's side of a DriveLink link: it speaks request/response at the device's
/// pace, chooses its own sequence numbers (to send duplicates and stale frames on purpose), can
/// send broken frames, and keeps every frame the device sent, with what was wrong with the
/// ones the host's codec refused. Not real-time: it allocates freely.
final class ConformanceLink {
    let transport: DescriptorTransport
    private var assembler = FrameAssembler()
    private let rx = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: DriveLink.maxFrame + 16, alignment: 8)
    private let wire = UnsafeMutableRawBufferPointer.allocate(byteCount: DriveLink.maxWireFrame, alignment: 8)
    /// The next sequence number the suite sends.
    var nextSeq: UInt16 = 0
    /// Every frame the device sent that the host's codec refused, with why.
    private(set) var refused: [String] = []
    /// Device frames whose seq was not newer than the previous one's (a drive never resets its
    /// counter, docs/protocol.md *Sequence numbers*).
    private(set) var notNewer: [String] = []
    private var lastDeviceSeq: UInt16?
    /// Frames that arrived while the suite waited for something else (a FAULT, a late reply).
    private(set) var unsolicited: [ReceivedFrame] = []
    private(set) var framesReceived = 0
    /// The longest the suite's own thread overslept a wait of the line since `resetStall()`
    /// (ns): how long the host was starved of the processor. On a loaded machine the device,
    /// which shares it, is starved alike; a timing check judges nothing on such an attempt.
    private(set) var stall: Nanoseconds = 0

    func resetStall() { stall = 0 }

    init(transport: consuming DescriptorTransport) {
        self.transport = transport
    }

    deinit {
        rx.deallocate(); scratch.deallocate(); wire.deallocate()
    }

    /// The frame `type`/`seq`/`payload` as it goes on the wire (COBS and delimiter).
    func encode(_ type: DriveLink.MessageType, seq: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let n = payload.withUnsafeBytes { DriveLink.encode(type: type, seq: seq, payload: $0, scratch: scratch, into: wire) } ?? 0
        return Array(UnsafeRawBufferPointer(rebasing: wire[0..<n]))
    }

    /// Sends a frame with the next sequence number (or `seq`); returns the seq it carried.
    @discardableResult
    func send(_ type: DriveLink.MessageType, _ payload: [UInt8] = [], seq: UInt16? = nil) -> UInt16 {
        let s = seq ?? nextSeq
        if seq == nil { nextSeq &+= 1 }
        sendRaw(encode(type, seq: s, payload))
        return s
    }

    /// Sends bytes as they are (a broken frame, say).
    func sendRaw(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { transport.send($0) }
    }

    /// Drops what is waiting on the line (recording it), so that a check starts clean.
    func drain() {
        _ = collect(for: 20_000_000)
    }

    /// Frames until `timeout` (ns) has passed or `stop` says a frame is the one awaited.
    func collect(for timeout: Nanoseconds, stop: (ReceivedFrame) -> Bool = { _ in false }) -> [ReceivedFrame] {
        var got: [ReceivedFrame] = []
        let deadline = MonotonicClock.now() + timeout
        while true {
            let left = deadline - MonotonicClock.now()
            if left <= 0 { return got }
            let wait = min(left, 5_000_000)
            let before = MonotonicClock.now()
            _ = transport.waitReadable(timeout: wait)
            var n = transport.receive(into: rx)
            let at = MonotonicClock.now()
            stall = max(stall, at - before - wait)
            var done = false
            while n > 0 {
                for i in 0..<n {
                    guard let encoded = assembler.push(rx[i]) else { continue }
                    if let f = check(encoded, at: at) {
                        got.append(f)
                        if stop(f) { done = true }
                    }
                }
                if done { return got }
                n = transport.receive(into: rx)
            }
        }
    }

    /// Waits up to `timeout` for the first frame `matches` accepts; the others are kept in
    /// `unsolicited`.
    func awaitFrame(_ timeout: Nanoseconds, _ matches: @escaping (ReceivedFrame) -> Bool) -> ReceivedFrame? {
        let frames = collect(for: timeout, stop: matches)
        var found: ReceivedFrame?
        for f in frames {
            if found == nil, matches(f) { found = f } else { unsolicited.append(f) }
        }
        return found
    }

    /// Sends a request and waits for its reply type; returns the reply and how long it took.
    func request(_ type: DriveLink.MessageType, _ payload: [UInt8] = [], expect reply: DriveLink.MessageType,
                 seq: UInt16? = nil, timeout: Nanoseconds, where extra: @escaping (ReceivedFrame) -> Bool = { _ in true })
        -> (sent: UInt16, reply: ReceivedFrame?, latency: Nanoseconds) {
        let start = MonotonicClock.now()
        let s = send(type, payload, seq: seq)
        let r = awaitFrame(timeout) { $0.type == reply && extra($0) }
        return (s, r, (r?.at ?? MonotonicClock.now()) - start)
    }

    /// Takes the FAULT messages out of `unsolicited`.
    func takeFaults() -> [ReceivedFrame] {
        let faults = unsolicited.filter { $0.type == .fault }
        unsolicited.removeAll { $0.type == .fault }
        return faults
    }

    func clearUnsolicited() { unsolicited.removeAll() }

    /// A device frame through the host's own decoder, and the payload size its type needs.
    private func check(_ encoded: UnsafeRawBufferPointer, at: Nanoseconds) -> ReceivedFrame? {
        switch DriveLink.decode(encoded, scratch: scratch) {
        case .failure(let e):
            refused.append("\(e) (\(encoded.count) bytes on the wire: \(Self.hex(Array(encoded.prefix(24))))\(encoded.count > 24 ? "…" : ""))")
            return nil
        case .success(let frame):
            framesReceived += 1
            if let last = lastDeviceSeq, !DriveLink.isNewer(frame.seq, than: last) {
                notNewer.append("a \(frame.type) frame with seq \(frame.seq) after one with seq \(last)")
            }
            lastDeviceSeq = frame.seq
            let body = Array(UnsafeRawBufferPointer(rebasing: scratch[frame.payloadOffset..<(frame.payloadOffset + frame.payloadCount)]))
            return ReceivedFrame(type: frame.type, seq: frame.seq, payload: body, at: at)
        }
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}
