/* sbx — the preload shim's open/openat entry points (see preload_open.h).
 * Defines libc's open family itself, so neither the large-file renames nor
 * the fortified inline wrappers of <fcntl.h> may apply in this file. */
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE
#include "target/trap/preload_open.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The program's open/openat calls enter the files handler directly,
 * without the SIGSYS round trip (signal frame, rt_sigreturn): the same
 * handler, the same decisions, the same signal mask around the cross
 * call (sbx_trap_enter). Only a shortcut for calls that reach libc
 * through its exported symbols: everything else (libc's internal opens,
 * fopen, raw syscalls) still traps, and the filter is unchanged. Off when
 * the engine is not installed, and when another object interposes the
 * same symbols after us (the caller's own LD_PRELOAD keeps its wrappers:
 * then we pass the call to them, and libc's call traps as before). */
static bool g_direct;

static bool in_ranges(uintptr_t a, const sbx_trap_range *rg, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a >= rg[i].start && a < rg[i].end)
            return true;
    return false;
}

#define NEEDS_MODE(flags) (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE)

/* The definitions we shadow: libc's, or the caller's own preload's. */
enum { N_OPEN, N_OPEN64, N_OPENAT, N_OPENAT64, N_OPEN_2, N_OPEN64_2, N_OPENAT_2, N_OPENAT64_2, N_COUNT };
static const char *const names[N_COUNT] = { "open", "open64", "openat", "openat64",
                                            "__open_2", "__open64_2", "__openat_2",
                                            "__openat64_2" };
static void *next_fn[N_COUNT];

/* Resolved before main (dlsym is not async-signal-safe; open is). A call
 * made before this constructor (another library's) resolves its own. */
__attribute__((constructor)) static void resolve_next(void)
{
    for (size_t i = 0; i < N_COUNT; i++)
        next_fn[i] = dlsym(RTLD_NEXT, names[i]);
}

static void *next(unsigned which)
{
    void *f = __atomic_load_n(&next_fn[which], __ATOMIC_RELAXED);
    if (!f) {
        f = dlsym(RTLD_NEXT, names[which]);
        __atomic_store_n(&next_fn[which], f, __ATOMIC_RELAXED);
    }
    return f;
}

/* Does the next definition of every symbol we interpose lie in libc's
 * code (the ranges), i.e. would the call have gone straight to libc? */
static bool next_is_libc(const sbx_trap_range *rg, size_t n)
{
    for (unsigned i = 0; i < N_COUNT; i++) {
        void *f = next(i);
        if (f && !in_ranges((uintptr_t)f, rg, n))
            return false;
    }
    return true;
}

/* The handler's answer in *out, or false: not taken (call the next
 * definition). */
static bool direct(int dirfd, const char *path, int flags, mode_t mode, int *out)
{
    if (!__atomic_load_n(&g_direct, __ATOMIC_ACQUIRE) || !sbx_trap_enterable(SYS_openat))
        return false;
    /* The registers as libc's wrapper loads them (ints sign-extended). */
    uint64_t a[6] = { (uint64_t)(int64_t)dirfd, (uint64_t)(uintptr_t)path,
                      (uint64_t)(int64_t)flags, (uint64_t)mode, 0, 0 };
    long r = sbx_trap_enter(SYS_openat, a);
    if (r < 0) {
        errno = (int)-r;
        *out = -1;
    } else {
        *out = (int)r;
    }
    return true;
}

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*open2_fn)(const char *, int);
typedef int (*openat2_fn)(int, const char *, int);

static int via_open(unsigned which, const char *path, int flags, mode_t mode)
{
    int fd;
    if (direct(AT_FDCWD, path, flags, mode, &fd))
        return fd;
    open_fn f = (open_fn)next(which);
    return f ? f(path, flags, mode) : (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static int via_openat(unsigned which, int dirfd, const char *path, int flags, mode_t mode)
{
    int fd;
    if (direct(dirfd, path, flags, mode, &fd))
        return fd;
    openat_fn f = (openat_fn)next(which);
    return f ? f(dirfd, path, flags, mode) : (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

#define SBX_EXPORT __attribute__((visibility("default")))
#define MODE_ARG(flags, mode)                                                                  \
    do {                                                                                       \
        if (NEEDS_MODE(flags)) {                                                               \
            va_list ap;                                                                        \
            va_start(ap, flags);                                                               \
            mode = (mode_t)va_arg(ap, int);                                                    \
            va_end(ap);                                                                        \
        }                                                                                      \
    } while (0)

SBX_EXPORT int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return via_open(N_OPEN, path, flags, mode);
}

SBX_EXPORT int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return via_open(N_OPEN64, path, flags, mode);
}

SBX_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return via_openat(N_OPENAT, dirfd, path, flags, mode);
}

SBX_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return via_openat(N_OPENAT64, dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE's two-argument forms: the next definition checks the
 * flags (a mode-needing open without a mode aborts there). */
static int via_open2(unsigned which, int dirfd, const char *path, int flags)
{
    int fd;
    if (!NEEDS_MODE(flags) && direct(dirfd, path, flags, 0, &fd))
        return fd;
    void *f = next(which);
    if (which == N_OPEN_2 || which == N_OPEN64_2)
        return f ? ((open2_fn)f)(path, flags) : (int)syscall(SYS_openat, AT_FDCWD, path, flags, 0);
    return f ? ((openat2_fn)f)(dirfd, path, flags) : (int)syscall(SYS_openat, dirfd, path, flags, 0);
}

SBX_EXPORT int __open_2(const char *path, int flags);
SBX_EXPORT int __open_2(const char *path, int flags)
{
    return via_open2(N_OPEN_2, AT_FDCWD, path, flags);
}

SBX_EXPORT int __open64_2(const char *path, int flags);
SBX_EXPORT int __open64_2(const char *path, int flags)
{
    return via_open2(N_OPEN64_2, AT_FDCWD, path, flags);
}

SBX_EXPORT int __openat_2(int dirfd, const char *path, int flags);
SBX_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    return via_open2(N_OPENAT_2, dirfd, path, flags);
}

SBX_EXPORT int __openat64_2(int dirfd, const char *path, int flags);
SBX_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    return via_open2(N_OPENAT64_2, dirfd, path, flags);
}

void sbx_preload_open_engage(const sbx_trap_range *libc, size_t n)
{
    __atomic_store_n(&g_direct, next_is_libc(libc, n), __ATOMIC_RELEASE);
}
