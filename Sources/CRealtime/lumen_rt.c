#define _GNU_SOURCE
#include "lumen_rt.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static const int64_t kNsPerSec = 1000000000LL;

int64_t lumen_rt_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * kNsPerSec + ts.tv_nsec;
}

int lumen_rt_sleep_until_ns(int64_t deadline_ns) {
    struct timespec ts = { .tv_sec = deadline_ns / kNsPerSec, .tv_nsec = deadline_ns % kNsPerSec };
    int rc;
    do {
        rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    } while (rc == EINTR);
    return rc;
}

int lumen_rt_set_fifo(int priority) {
    struct sched_param sp;
    memset(&sp, 0, sizeof sp);
    sp.sched_priority = priority;
    return pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
}

int lumen_rt_set_affinity(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int lumen_rt_lock_memory(void) {
    return mlockall(MCL_CURRENT | MCL_FUTURE) == 0 ? 0 : errno;
}

int lumen_rt_unlock_memory(void) {
    return munlockall() == 0 ? 0 : errno;
}

lumen_ref_loop_result lumen_ref_loop_run(int64_t period_ns, int64_t cycles, int64_t *lateness_ns) {
    lumen_ref_loop_result r = { 0, 0, 0 };
    if (period_ns <= 0 || cycles <= 0 || lateness_ns == NULL) return r;
    int64_t next = lumen_rt_now_ns() + period_ns;
    for (int64_t i = 0; i < cycles; i++) {
        lumen_rt_sleep_until_ns(next);
        int64_t wake = lumen_rt_now_ns();
        int64_t late = wake - next;
        lateness_ns[i] = late;
        next += period_ns;
        if (wake >= next) {
            int64_t skipped = (wake - next) / period_ns + 1;
            r.overruns += 1;
            r.missed += skipped;
            next += skipped * period_ns;
        }
        r.cycles += 1;
    }
    return r;
}
