/* sbx internal — the one cleanup idiom and the one ownership-transfer idiom.
 *
 * Cleanup: declare a resource with a cleanup attribute and it is released on
 * every return path. Ownership transfer: `return sbx_steal_fd(&fd);` or
 * `out->p = sbx_steal_ptr(&p);` hands the resource on and disarms the
 * cleanup. See docs/errors.md. */
#ifndef SBX_BASE_CLEANUP_H
#define SBX_BASE_CLEANUP_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

/* close(2) that keeps errno: cleanups run on error paths where errno is the
 * message. Closing -1 is a no-op. */
static inline void sbx_close_keep_errno(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        (void)close(fd);
        errno = saved;
    }
}

static inline void sbx_cleanup_fd_(int *fd)
{
    sbx_close_keep_errno(*fd);
}

static inline void sbx_cleanup_free_(void *p)
{
    free(*(void **)p);
}

/* `SBX_AUTOCLOSE int fd = open(...);` closes fd (if >= 0) at scope exit. */
#define SBX_AUTOCLOSE __attribute__((cleanup(sbx_cleanup_fd_)))
/* `SBX_AUTOFREE char *s = malloc(...);` frees s at scope exit. */
#define SBX_AUTOFREE __attribute__((cleanup(sbx_cleanup_free_)))
/* `SBX_CLEANUP(fn) T *x` calls fn(&x) at scope exit; fn must accept NULL *x. */
#define SBX_CLEANUP(fn) __attribute__((cleanup(fn)))

/* Take the fd out of *fd, leaving -1 behind so no cleanup closes it. */
static inline int sbx_steal_fd(int *fd)
{
    int r = *fd;
    *fd = -1;
    return r;
}

/* Take the pointer out of *pp (a T **), leaving NULL behind. */
static inline void *sbx_steal_ptr_(void **pp)
{
    void *r = *pp;
    *pp = NULL;
    return r;
}
#define sbx_steal_ptr(pp) sbx_steal_ptr_((void **)(pp))

/* Define `static inline void name(T **p)` that calls fn(*p) when non-NULL,
 * for use with SBX_CLEANUP. */
#define SBX_DEFINE_CLEANUP_FUNC(T, fn)                                      \
    static inline void fn##_cleanup_(T **p)                                 \
    {                                                                       \
        if (*p) {                                                           \
            int saved_ = errno;                                             \
            fn(*p);                                                         \
            errno = saved_;                                                 \
        }                                                                   \
    }

/* Negative errno from a failed libc call (never 0: a broken libc that fails
 * without setting errno still reports a failure). */
static inline int sbx_neg_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

#define SBX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
