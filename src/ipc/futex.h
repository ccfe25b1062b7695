/* sbx internal — futex wrappers on shared (non-private) words. All are raw
 * syscalls: async-signal-safe. They return 0 or -errno and keep errno. */
#ifndef SBX_IPC_FUTEX_H
#define SBX_IPC_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
struct futex_waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t __reserved;
};
#endif
#define SBX_FUTEX_WAITV_MAX 128

static inline long sbx_futex_raw(_Atomic uint32_t *w, int op, uint32_t val,
                                 const struct timespec *ts)
{
    int saved = errno;
    long r = syscall(SYS_futex, (uintptr_t)w, op, val, ts, NULL, 0);
    if (r < 0)
        r = -errno;
    errno = saved;
    return r;
}

/* Sleep while *w == val, at most rel_ns (0: forever). 0 when woken,
 * -EAGAIN when *w != val, -ETIMEDOUT, -EINTR. */
static inline int sbx_futex_wait(_Atomic uint32_t *w, uint32_t val, uint64_t rel_ns, int private_)
{
    struct timespec ts = { (time_t)(rel_ns / 1000000000u), (long)(rel_ns % 1000000000u) };
    return (int)sbx_futex_raw(w, FUTEX_WAIT | (private_ ? FUTEX_PRIVATE_FLAG : 0), val,
                              rel_ns ? &ts : NULL);
}

static inline int sbx_futex_wake(_Atomic uint32_t *w, int n, int private_)
{
    return (int)sbx_futex_raw(w, FUTEX_WAKE | (private_ ? FUTEX_PRIVATE_FLAG : 0),
                              (uint32_t)n, NULL);
}

/* futex_waitv: returns the index woken (>= 0) or -errno (-EAGAIN if some
 * word differed, -ENOSYS on kernels < 5.16). */
static inline int sbx_futex_waitv(struct futex_waitv *w, unsigned n, const struct timespec *abs_mono)
{
    int saved = errno;
    long r = syscall(SYS_futex_waitv, w, n, 0, abs_mono, CLOCK_MONOTONIC);
    if (r < 0)
        r = -errno;
    errno = saved;
    return (int)r;
}

static inline void sbx_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif
