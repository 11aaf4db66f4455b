import CAllocCount
import Control
import Foundation

/// Runs `body` on a thread of its own with the real-time options applied to it, and waits for
/// it. The cycle thread is a plain OS thread, not a Swift concurrency task, so that the
/// scheduler policy, affinity and stack belong to it alone.
enum CycleThread {
    /// `whileWaiting` runs on the calling thread every `interval` seconds until `body` is done
    /// (for progress lines, which the cycle thread itself must never print).
    static func run<T>(options: RealtimeOptions, interval: Double = 0.5, whileWaiting: (() -> Void)? = nil,
                       _ body: @escaping () -> T) -> (result: T, warnings: [String]) {
        let box = ResultBox<T>()
        // The caller blocks until the thread is done, so `body` never runs concurrently with it.
        nonisolated(unsafe) let work = body
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.warnings = options.applyToCurrentThread()
            box.result = work()
            done.signal()
        }
        thread.stackSize = 1 << 20
        thread.name = "lumen-cycle"
        thread.start()
        while done.wait(timeout: .now() + interval) == .timedOut { whileWaiting?() }
        return (box.result!, box.warnings)
    }
}

extension CycleThread {
    /// Runs `warmUp` (lazy runtime set-up may allocate there), then `measured` while counting
    /// the calling thread's heap allocations; returns the count. Call it on the cycle thread.
    static func countingAllocations(warmUp: () throws -> Void, measured: () throws -> Void) -> Result<Int64, Error> {
        do {
            try warmUp()
            lumen_alloc_count_begin()
            defer { _ = lumen_alloc_count_end() }
            try measured()
            return .success(lumen_alloc_count_end())
        } catch {
            return .failure(error)
        }
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: T?
    var warnings: [String] = []
}
