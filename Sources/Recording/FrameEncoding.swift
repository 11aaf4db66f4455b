import Core
import Foundation
import Runtime
import Synchronization

/// How a frame becomes compressed bytes: the OpenCV codec, or a stand-in where a test needs an
/// encoder that is slow, stuck or failing on purpose.
public struct FrameEncoder: Sendable {
    public var encode: @Sendable (LiveFrame, FrameFormat, Int) throws(FrameCodecError) -> [UInt8]

    public init(_ encode: @escaping @Sendable (LiveFrame, FrameFormat, Int) throws(FrameCodecError) -> [UInt8]) { self.encode = encode }

    public static let codec = FrameEncoder { (f: LiveFrame, format: FrameFormat, quality: Int) throws(FrameCodecError) -> [UInt8] in
        try FrameCodec.encode(f.pixels, width: f.width, height: f.height, format: format, quality: quality)
    }
}

/// The recorder's frame encoders: their own threads behind a bounded queue, so that the thread
/// draining the runtime's rings never waits for a compression. A frame offered while the queue
/// is full is refused at once (the recorder counts it); what was accepted is encoded and handed
/// back, oldest first per worker, for the recorder's thread to write.
final class FrameEncoderPool: @unchecked Sendable {
    struct Encoded {
        var frame: LiveFrame
        var result: Result<[UInt8], FrameCodecError>
        /// The `foxglove.CompressedImage` message of a frame encoded: built here too (its base64
        /// is a third larger than the image and as costly to write as to encode), so that the
        /// draining thread only copies it into the chunk.
        var message: [UInt8]
        /// s spent in the encoder.
        var seconds: Double
    }

    private struct State {
        var queue: [LiveFrame] = []
        var done: [Encoded] = []
        var busy = 0
        var closing = false
        var highWater = 0
    }

    let capacity: Int
    private let encoder: FrameEncoder
    private let format: FrameFormat
    private let quality: Int
    private let state = Mutex(State())
    private let work = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)
    private let threads: Int

    /// `threads` workers (1…4) behind a queue of `capacity` frames (1…256).
    init(threads: Int, capacity: Int, encoder: FrameEncoder, format: FrameFormat, quality: Int) {
        self.threads = threads
        self.capacity = capacity
        self.encoder = encoder
        self.format = format
        self.quality = quality
        for k in 0..<threads {
            let t = Thread { [self] in loop() }
            t.name = "lumen-recorder-encode-\(k)"
            t.start()
        }
    }

    /// Queues `frame` unless the queue is full. Never waits for an encoder.
    func offer(_ frame: LiveFrame) -> Bool {
        let accepted = state.withLock { s in
            guard !s.closing, s.queue.count < capacity else { return false }
            s.queue.append(frame)
            s.highWater = max(s.highWater, s.queue.count)
            return true
        }
        if accepted { work.signal() }
        return accepted
    }

    /// The frames encoded since the last call, in acquisition order.
    func takeEncoded() -> [Encoded] {
        var done = state.withLock { s in
            let d = s.done
            s.done.removeAll(keepingCapacity: true)
            return d
        }
        if threads > 1 { done.sort { ($0.frame.acquiredAt, $0.frame.plane) < ($1.frame.acquiredAt, $1.frame.plane) } }
        return done
    }

    /// Frames queued or being encoded.
    var pending: Int { state.withLock { $0.queue.count + $0.busy } }
    /// The most frames the queue held at once.
    var highWater: Int { state.withLock { $0.highWater } }

    /// Encodes what is queued, then ends the workers (waits for them).
    func close() {
        let first = state.withLock { s in
            let was = s.closing
            s.closing = true
            return !was
        }
        guard first else { return }
        for _ in 0..<threads { work.signal() }
        for _ in 0..<threads { exited.wait() }
    }

    private func loop() {
        // Compression yields to the control cycle and the imaging thread on a busy machine: a
        // frame that waits here costs a queue slot; a cycle that waits costs control. (On Linux
        // the nice value is per thread: `who` 0 is this thread.)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        while true {
            // A timed wait: a wake-up lost between the queue check and the wait costs 50 ms, not the frame.
            _ = work.wait(timeout: .now() + 0.05)
            while let frame = next() {
                let t0 = MonotonicClock.now()
                let result: Result<[UInt8], FrameCodecError>
                do throws(FrameCodecError) { result = .success(try encoder.encode(frame, format, quality)) } catch { result = .failure(error) }
                var message: [UInt8] = []
                if case .success(let bytes) = result { message = RecordingChannels.encodeImage(frame, bytes, format: format) }
                let seconds = Double(MonotonicClock.now() - t0) * 1e-9
                state.withLock { s in
                    s.busy -= 1
                    s.done.append(Encoded(frame: frame, result: result, message: message, seconds: seconds))
                }
            }
            if state.withLock({ $0.closing && $0.queue.isEmpty }) { break }
        }
        exited.signal()
    }

    private func next() -> LiveFrame? {
        state.withLock { s in
            guard !s.queue.isEmpty else { return nil }
            s.busy += 1
            return s.queue.removeFirst()
        }
    }
}
