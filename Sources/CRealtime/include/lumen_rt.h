// Audited system calls for Lumen's real-time path, and the C reference loop that
// `lumen bench loop` compares the Swift cycle runner against.
//
// Every function returns 0 or a positive errno; none allocates, locks or logs.
#ifndef LUMEN_RT_H
#define LUMEN_RT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Acquire load and release store of a 64-bit index shared by one producer and one consumer
/// thread (the image side and the control cycle). The corresponding C builtins are
/// `__atomic_load_n` and `__atomic_store_n`.
int64_t lumen_rt_load_acquire(const int64_t *p);
void lumen_rt_store_release(int64_t *p, int64_t value);

/// CLOCK_MONOTONIC in nanoseconds. The corresponding C function is `clock_gettime`.
int64_t lumen_rt_now_ns(void);

/// Sleeps until the absolute CLOCK_MONOTONIC time `deadline_ns`, resuming after signals.
/// The corresponding C function is `clock_nanosleep` with `TIMER_ABSTIME`.
int lumen_rt_sleep_until_ns(int64_t deadline_ns);

/// Switches the calling thread to SCHED_FIFO at `priority` (1…99).
int lumen_rt_set_fifo(int priority);

/// Pins the calling thread to one CPU.
int lumen_rt_set_affinity(int cpu);

/// Locks current and future pages in RAM (`mlockall(MCL_CURRENT | MCL_FUTURE)`).
int lumen_rt_lock_memory(void);

/// Releases `lumen_rt_lock_memory`.
int lumen_rt_unlock_memory(void);

/// Waits until `fd` is readable or `timeout_ns` passes (ppoll): 1 readable, 0 timed out, −errno.
int lumen_rt_wait_readable(int fd, int64_t timeout_ns);

/// Opens a pseudo-terminal pair (posix_openpt, grantpt, unlockpt, ptsname_r, open), both ends
/// in raw mode and non-blocking. Writes the slave's path into `path` (`path_len` bytes).
/// Returns 0 or an errno; on error nothing stays open. Not for the cycle: it allocates in libc.
int lumen_pty_open(int *master, int *slave, char *path, int path_len);

/// Opens a raw packet socket for EtherType `ethertype` on interface `ifname`, non-blocking,
/// not seeing its own outgoing frames; writes the interface's MAC address to `mac` (6 bytes).
/// Returns 0 or an errno (EPERM without CAP_NET_RAW). Not for the cycle.
int lumen_raw_open(const char *ifname, uint16_t ethertype, int *fd, uint8_t *mac);

/// Moves the calling thread into the network namespace /var/run/netns/NAME. Returns 0 or errno.
int lumen_netns_enter(const char *name);

/// Result of one run of the reference loop.
typedef struct {
    int64_t cycles;     ///< wake-ups recorded
    int64_t overruns;   ///< cycles that woke at or after the following deadline
    int64_t missed;     ///< deadlines skipped to get back in phase
} lumen_ref_loop_result;

/// The C reference: `clock_nanosleep(TIMER_ABSTIME)` at `period_ns` for `cycles` wake-ups,
/// writing each wake-up's lateness (ns past its deadline) to `lateness_ns[0 ..< cycles]`.
/// Deadlines advance by one period; a wake-up past the next deadline counts as an overrun
/// and the loop skips ahead to the first future deadline, as the Swift runner does.
lumen_ref_loop_result lumen_ref_loop_run(int64_t period_ns, int64_t cycles, int64_t *lateness_ns);

#ifdef __cplusplus
}
#endif
#endif
