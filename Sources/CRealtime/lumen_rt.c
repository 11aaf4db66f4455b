#define _GNU_SOURCE
#include <stdio.h>
#include "lumen_rt.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <poll.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>
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

int lumen_rt_wait_readable(int fd, int64_t timeout_ns) {
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    struct timespec ts = { .tv_sec = timeout_ns / kNsPerSec, .tv_nsec = timeout_ns % kNsPerSec };
    int rc = ppoll(&p, 1, &ts, NULL);
    if (rc < 0) return -errno;
    return rc > 0 && (p.revents & POLLIN) ? 1 : 0;
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

static int raw_nonblocking(int fd) {
    struct termios t;
    int flags;
    if (tcgetattr(fd, &t) != 0) return errno;
    cfmakeraw(&t);
    if (tcsetattr(fd, TCSANOW, &t) != 0) return errno;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return errno;
    return 0;
}

int lumen_pty_open(int *master, int *slave, char *path, int path_len) {
    int m, s, rc;
    if (master == NULL || slave == NULL || path == NULL || path_len < 16) return EINVAL;
    m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) return errno;
    if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, path, (size_t)path_len) != 0) {
        rc = errno;
        close(m);
        return rc;
    }
    s = open(path, O_RDWR | O_NOCTTY);
    if (s < 0) {
        rc = errno;
        close(m);
        return rc;
    }
    if ((rc = raw_nonblocking(s)) != 0 || (rc = raw_nonblocking(m)) != 0) {
        close(m);
        close(s);
        return rc;
    }
    *master = m;
    *slave = s;
    return 0;
}

int lumen_raw_open(const char *ifname, uint16_t ethertype, int *fd, uint8_t *mac) {
    struct sockaddr_ll addr;
    struct ifreq req;
    int s, one = 1, rc;
    unsigned int index;
    if (ifname == NULL || fd == NULL || mac == NULL || strlen(ifname) >= IFNAMSIZ) return EINVAL;
    index = if_nametoindex(ifname);
    if (index == 0) return errno;
    s = socket(AF_PACKET, SOCK_RAW, htons(ethertype));
    if (s < 0) return errno;
#ifdef PACKET_IGNORE_OUTGOING
    (void)setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
#endif
    memset(&addr, 0, sizeof addr);
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ethertype);
    addr.sll_ifindex = (int)index;
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) != 0) { rc = errno; close(s); return rc; }
    memset(&req, 0, sizeof req);
    strncpy(req.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFHWADDR, &req) != 0) { rc = errno; close(s); return rc; }
    memcpy(mac, req.ifr_hwaddr.sa_data, 6);
    if (fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK) != 0) { rc = errno; close(s); return rc; }
    *fd = s;
    return 0;
}

int lumen_netns_enter(const char *name) {
    char path[256];
    int f, rc;
    if (name == NULL || strlen(name) > 200) return EINVAL;
    snprintf(path, sizeof path, "/var/run/netns/%s", name);
    f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) return errno;
    rc = setns(f, CLONE_NEWNET) == 0 ? 0 : errno;
    close(f);
    return rc;
}

int64_t lumen_rt_load_acquire(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

void lumen_rt_store_release(int64_t *p, int64_t value) { __atomic_store_n(p, value, __ATOMIC_RELEASE); }
