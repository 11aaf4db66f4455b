import CRealtime
#if canImport(Glibc)
import Glibc
#endif

/// Opt-in real-time settings for the cycle thread. Each is attempted and, where the system
/// does not permit it (no CAP_SYS_NICE, a container, a missing CPU), reported as a warning:
/// the cycle still runs, and the report says what it ran without.
public struct RealtimeOptions: Sendable, Equatable {
    /// SCHED_FIFO priority 1…99 for the cycle thread; nil keeps SCHED_OTHER.
    public var fifoPriority: Int32?
    /// Lock all current and future pages in RAM, so the cycle never waits on a page fault.
    public var lockMemory: Bool
    /// Pin the cycle thread to this CPU.
    public var cpu: Int32?

    public init(fifoPriority: Int32? = nil, lockMemory: Bool = false, cpu: Int32? = nil) {
        self.fifoPriority = fifoPriority
        self.lockMemory = lockMemory
        self.cpu = cpu
    }

    /// Applies the options to the calling thread; returns one warning per setting that failed.
    public func applyToCurrentThread() -> [String] {
        var warnings: [String] = []
        if let p = fifoPriority {
            if !(1...99).contains(p) {
                warnings.append("SCHED_FIFO priority \(p) is outside 1…99; staying on SCHED_OTHER")
            } else {
                let rc = lumen_rt_set_fifo(p)
                if rc != 0 { warnings.append("SCHED_FIFO \(p) not permitted (\(Self.describe(rc))); staying on SCHED_OTHER") }
            }
        }
        if lockMemory {
            let rc = lumen_rt_lock_memory()
            if rc != 0 { warnings.append("mlockall not permitted (\(Self.describe(rc))); pages may fault in the cycle") }
        }
        if let cpu {
            let rc = lumen_rt_set_affinity(cpu)
            if rc != 0 { warnings.append("cannot pin to CPU \(cpu) (\(Self.describe(rc))); the scheduler may migrate the cycle") }
        }
        return warnings
    }

    static func describe(_ errno: Int32) -> String {
        String(cString: strerror(errno))
    }
}
