import Core
import Foundation
import Synchronization

/// How the recorder makes a file's written data durable: `fdatasync`, or a stand-in where a test
/// needs a sync that stalls or fails on purpose. Returns 0, or an `errno`.
public struct FileSync: Sendable {
    public var sync: @Sendable (Int32) -> Int32

    public init(_ sync: @escaping @Sendable (Int32) -> Int32) { self.sync = sync }

    /// The corresponding C function is `fdatasync`.
    public static let fdatasync = FileSync { fd in Foundation.fdatasync(fd) == 0 ? 0 : errno }
}

/// Syncs the recording on its own thread. Written data survives a `kill -9` of the process as
/// soon as `write` returns (it is in the kernel); the sync only guards against a power loss, and
/// it can stall for seconds on a busy disk (2.2 s measured on the shared machine). The draining
/// thread therefore only asks for a sync and goes on; requests made while one runs are served by
/// the next, which covers everything written before it started.
final class ChunkSyncer: @unchecked Sendable {
    struct Figures {
        /// ms each sync took, and ms between consecutive syncs that had data to make durable.
        var durations: [Double] = []
        var intervals: [Double] = []
    }

    private struct State {
        var requested = false
        var stopping = false
        var failure: Int32?
        var figures = Figures()
        var lastSync: Nanoseconds?
    }

    private let fd: Int32
    private let sync: FileSync
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)

    /// Syncs `fd` (its own duplicate, so the writer may close the file first) when asked.
    init(fd: Int32, sync: FileSync) {
        self.fd = dup(fd)
        self.sync = sync
        let t = Thread { [self] in loop() }
        t.name = "lumen-recorder-sync"
        t.start()
    }

    /// Asks for a sync of what has been written. Never waits.
    func request() {
        state.withLock { $0.requested = true }
        wake.signal()
    }

    /// The errno of a failed sync, once one has failed.
    var failure: Int32? { state.withLock { $0.failure } }
    var figures: Figures { state.withLock { $0.figures } }

    /// Ends the thread after the sync under way, if any (waits for it).
    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        state.withLock { $0.stopping = true }
        wake.signal()
        exited.wait()
        if fd >= 0 { close(fd) }
    }

    private func loop() {
        while true {
            _ = wake.wait(timeout: .now() + 0.05)
            let (due, stopping) = state.withLock { s in
                defer { s.requested = false }
                return (s.requested, s.stopping)
            }
            if stopping { break }
            guard due else { continue }
            let t0 = MonotonicClock.now()
            let rc = fd >= 0 ? sync.sync(fd) : EBADF
            let t1 = MonotonicClock.now()
            state.withLock { s in
                if rc != 0, s.failure == nil { s.failure = rc }
                if s.figures.durations.count < 1 << 20 {
                    s.figures.durations.append(Double(t1 - t0) * 1e-6)
                    if let last = s.lastSync { s.figures.intervals.append(Double(t1 - last) * 1e-6) }
                }
                s.lastSync = t1
            }
        }
        exited.signal()
    }
}
