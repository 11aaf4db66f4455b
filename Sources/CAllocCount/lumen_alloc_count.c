#include "lumen_alloc_count.h"

#include <stddef.h>
#include <errno.h>
#include <string.h>

// glibc's own allocator entry points; every interposed call forwards to them.
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

// Initial-exec TLS: reading these never allocates (the general-dynamic model could).
static __thread int counting __attribute__((tls_model("initial-exec")));
static __thread int64_t count __attribute__((tls_model("initial-exec")));
static volatile int seen_malloc;

static inline void note(void) {
    seen_malloc = 1;
    if (counting) count += 1;
}

void *malloc(size_t n) { note(); return __libc_malloc(n); }
void *calloc(size_t n, size_t m) { note(); return __libc_calloc(n, m); }
void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }

void *memalign(size_t align, size_t n) { note(); return __libc_memalign(align, n); }
void *aligned_alloc(size_t align, size_t n) { note(); return __libc_memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
    if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0) return EINVAL;
    note();
    void *p = __libc_memalign(align, n);
    if (p == NULL && n != 0) return ENOMEM;
    *out = p;
    return 0;
}

void lumen_alloc_count_begin(void) { count = 0; counting = 1; }
int64_t lumen_alloc_count_end(void) { counting = 0; return count; }

int lumen_alloc_count_is_active(void) {
    // strdup allocates inside glibc, so this sees whether calls from other libraries
    // (the Swift runtime among them) reach the interposer, not only calls from this file.
    seen_malloc = 0;
    char *p = strdup("x");
    __libc_free(p);
    return seen_malloc;
}
