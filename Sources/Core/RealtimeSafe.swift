// The one audited place where code that runs in the control cycle calls C.
//
// The compiler's performance checks (`@_noAllocation`, `@_noLocks`) cannot see into C, so
// every C call the cycle needs is listed here and waived with `_unsafePerformance`. Each
// entry below has been checked by hand to neither allocate, lock nor log:
//   - libm `cos`, `sin`, `atan2`, `acos`: pure functions of their arguments;
//   - `Double.squareRoot()`: one `sqrtsd` instruction (the checker cannot see through it);
//   - `clock_gettime(CLOCK_MONOTONIC)`: a vDSO read;
//   - `clock_nanosleep(TIMER_ABSTIME)`: a system call that blocks the thread, nothing else;
//   - `read`, `write` on a non-blocking descriptor and `poll` on one descriptor: system calls
//     that copy bytes or wait, and never allocate in user space.
// Anything added here needs the same audit, and a line in this list.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CRealtime

/// `cos` from the C library, callable from code that runs in the control cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func cosine(_ x: Double) -> Double { _unsafePerformance { cos(x) } }
/// `sin` from the C library, callable from code that runs in the control cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func sine(_ x: Double) -> Double { _unsafePerformance { sin(x) } }
/// `atan2` from the C library, callable from code that runs in the control cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func arcTangent2(_ y: Double, _ x: Double) -> Double {
    _unsafePerformance { atan2(y, x) }
}
/// `acos` from the C library with its argument clamped to [-1, 1], callable from the cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func arcCosine(_ x: Double) -> Double {
    _unsafePerformance { acos(min(1, max(-1, x))) }
}

/// The square root, callable from code that runs in the control cycle.
@_noAllocation @_noLocks @inlinable @inline(__always) public func squareRootOf(_ x: Double) -> Double { _unsafePerformance { x.squareRoot() } }

/// The monotonic clock the cycle runs on.
public enum MonotonicClock {
    /// Now, in nanoseconds of `CLOCK_MONOTONIC`. The corresponding C function is `clock_gettime`.
    @_noAllocation @_noLocks @inlinable @inline(__always) public static func now() -> Nanoseconds {
        _unsafePerformance { lumen_rt_now_ns() }
    }

    /// Sleeps until the absolute time `deadline`; returns 0 or an errno.
    /// The corresponding C function is `clock_nanosleep` with `TIMER_ABSTIME`.
    @_noAllocation @_noLocks @inlinable @inline(__always) public static func sleep(until deadline: Nanoseconds) -> Int32 {
        _unsafePerformance { lumen_rt_sleep_until_ns(deadline) }
    }
}

/// Non-blocking I/O on a file descriptor for the cycle's links (serial ports, ptys, sockets).
public enum DescriptorIO {
    /// Reads what is waiting into `buffer`: the count, 0 when nothing is waiting, or −errno.
    /// The corresponding C function is `read`.
    @_noAllocation @_noLocks @inlinable @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        _unsafePerformance {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            let e = errno
            return e == EAGAIN || e == EWOULDBLOCK || e == EINTR ? 0 : -Int(e)
        }
    }

    /// Writes `bytes`: the count written (possibly short), or −errno.
    /// The corresponding C function is `write`.
    @_noAllocation @_noLocks @inlinable @inline(__always)
    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        _unsafePerformance {
            let n = Glibc.write(fd, bytes.baseAddress, bytes.count)
            if n >= 0 { return n }
            let e = errno
            return e == EAGAIN || e == EWOULDBLOCK || e == EINTR ? 0 : -Int(e)
        }
    }

    /// Sends one datagram to a Unix-domain socket address built beforehand; true when all of
    /// it went. The corresponding C function is `sendto` (with MSG_NOSIGNAL).
    @_noAllocation @_noLocks @inlinable @inline(__always)
    public static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, to address: sockaddr_un) -> Bool {
        _unsafePerformance {
            var address = address
            let n = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            return n == bytes.count
        }
    }

    /// Waits until `fd` is readable or `timeout` (ns) passes; true when readable.
    /// The corresponding C function is `ppoll`.
    @_noAllocation @_noLocks @inlinable @inline(__always)
    public static func waitReadable(_ fd: Int32, timeout: Nanoseconds) -> Bool {
        _unsafePerformance { lumen_rt_wait_readable(fd, timeout) == 1 }
    }
}

/// Indices shared between exactly one producer and one consumer thread, with acquire/release
/// ordering: what the producer wrote before a release store is visible after the consumer's
/// acquire load of it.
public enum SharedIndex {
    @_noAllocation @_noLocks @inlinable @inline(__always)
    public static func load(_ p: UnsafeMutablePointer<Int64>) -> Int64 {
        _unsafePerformance { lumen_rt_load_acquire(p) }
    }

    @_noAllocation @_noLocks @inlinable @inline(__always)
    public static func store(_ p: UnsafeMutablePointer<Int64>, _ value: Int64) {
        _unsafePerformance { lumen_rt_store_release(p, value) }
    }
}
