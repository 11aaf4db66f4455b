// Counts heap allocations made by the calling thread while counting is on.
//
// The process's malloc family is interposed (the definitions in this target take precedence
// over glibc's for the whole process) and forwarded to glibc's own entry points. Counting is
// per thread, so allocations by other threads — a test runner, a logger — never pollute the
// figure for the real-time thread.
#ifndef LUMEN_ALLOC_COUNT_H
#define LUMEN_ALLOC_COUNT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Starts counting on the calling thread from zero.
void lumen_alloc_count_begin(void);

/// Stops counting on the calling thread and returns the allocations since `begin`.
int64_t lumen_alloc_count_end(void);

/// 1 when the interposer is active in this process (it is not, if another allocator won).
int lumen_alloc_count_is_active(void);

#ifdef __cplusplus
}
#endif
#endif
