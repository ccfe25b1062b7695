/* sbx — files subsystem: trap-backend handlers (see files_interception.h).
 * Everything here runs in the SIGSYS handler: no allocation, no locks. */
#include "subsys/files/files_interception.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sbx/ipc.h>
#include <sbx/policy.h>

#include "subsys/files/files_ipc.h"
#include "subsys/files/files_path.h"
#include "subsys/files/files_policy.h"
#include "subsys/files/files_syscalls.h"
#include "target/trap/trap.h"

static atomic_uint_fast64_t n_brokered, n_prechecked, n_native, n_hinted;

/* What the handler hands back to the caller besides the value. */
enum { OUT_NONE = 0, OUT_STAT, OUT_STATX, OUT_LINK };

typedef struct decoded {
    uint32_t tag;
    int dirfd;
    const char *path;
    uint32_t flags;
    uint32_t mode;
    sbx_files_op op; /* for the pre-check */
    int pre_flags;   /* the pre-check's open flags / access mode; -1: flags */
    /* TAG_ATTR */
    uint64_t value;
    int out_kind;    /* OUT_*: the caller's buffer `out` of out_size bytes */
    void *out;
    size_t out_size;
    const struct timespec *times; /* utimensat's, read in place; NULL: now */
    bool empty_ok;   /* AT_EMPTY_PATH: "" names the dirfd itself */
    /* TAG_RENAME */
    int dirfd2;
    const char *path2;
    uint64_t hint; /* this call's key in the brokered-path hints, 0: none */
} decoded;

/* What the (read-only, possibly forged) local policy copy says about an
 * absolute path, for either object type: an explicit deny rule for both
 * (LOCAL_DENY: fail fast); only plain allow rules or none (LOCAL_NO_DENY:
 * inside the view the broker answers NATIVE whatever such rules say, so a
 * native success is its answer too); anything else, or unknown (relative
 * paths: only the broker knows the cwd). */
typedef enum local_verdict { LOCAL_UNKNOWN, LOCAL_DENY, LOCAL_NO_DENY, LOCAL_HINTED } local_verdict;

/* Brokered-path hints: calls (syscall, flags, canonical absolute path)
 * that the broker itself served last time, with no NATIVE answer — paths
 * outside the view, which a native attempt cannot reach (the view is fixed
 * for the target's life). Such a call skips the native attempt and goes
 * to the broker directly. Only a shortcut: the broker decides either way
 * and answers NATIVE for what the view holds, so a stale or colliding
 * hint costs one round trip, never a different result. Per thread, no
 * locks (the handler runs in a signal); a nested call may overwrite an
 * entry, which is harmless. */
#define HINTS 8
static __thread uint64_t hints[HINTS] __attribute__((tls_model("initial-exec")));

static uint64_t hint_key(const sbx_trap_call *call, const decoded *d, const char *canon, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)canon[i]) * 0x100000001b3ull;
    h = (h ^ ((uint64_t)(uint32_t)call->nr << 32 | d->flags)) * 0x100000001b3ull;
    h = (h ^ d->mode) * 0x100000001b3ull;
    return h | 1;
}

/* The same hash over the path as written (and the call): a hinted call
 * spelled as last time finds its hint key here without being
 * canonicalised. Canonicalisation is a function of the string alone, so
 * the spelling determines the key; a collision only leads to a wrong hint,
 * which costs a round trip (above). */
static __thread uint64_t spelled[HINTS][2] __attribute__((tls_model("initial-exec")));

static bool hint_brokered(uint64_t key)
{
    return key && hints[key % HINTS] == key;
}

/* After the broker's answer to a call with this key: remember it, or
 * forget it if the broker said NATIVE (the view holds the path). */
static void hint_update(uint64_t key, bool native_answer)
{
    if (!key)
        return;
    if (!native_answer)
        hints[key % HINTS] = key;
    else if (hints[key % HINTS] == key)
        hints[key % HINTS] = 0;
}

/* *key (may be NULL: no hints) gets the call's hint key when the path is
 * absolute; a call with a hint is LOCAL_HINTED without evaluating the copy
 * again: hints are taken only after LOCAL_NO_DENY, the key covers every
 * input of the evaluation (call, flags, mode, canonical path) and the copy
 * is read-only, so it would answer the same (a colliding key only skips
 * the fail-fast: the broker decides anyway). */
static local_verdict local_check(const sbx_trap_call *call, const decoded *d, sbx_files_op op,
                                 const char *path, size_t len, uint64_t *key)
{
    if (!call->policy || path[0] != '/')
        return LOCAL_UNKNOWN;
    uint64_t as_written = 0;
    if (key) {
        as_written = hint_key(call, d, path, len);
        uint64_t *sp = spelled[as_written % HINTS];
        if (sp[0] == as_written && hint_brokered(sp[1])) {
            *key = sp[1];
            return LOCAL_HINTED;
        }
    }
    static _Thread_local char canon[SBX_FILES_PATH_MAX];
    int n = sbx_files_path_canon(path, len, canon, sizeof canon);
    if (n <= 0)
        return LOCAL_UNKNOWN;
    if (n > 1 && canon[n - 1] == '/')
        canon[n - 1] = '\0';
    if (key) {
        *key = hint_key(call, d, canon, (size_t)n);
        uint64_t *sp = spelled[as_written % HINTS];
        sp[0] = as_written, sp[1] = *key;
        if (hint_brokered(*key))
            return LOCAL_HINTED;
    }
    sbx_files_request req;
    memset(&req, 0, sizeof req);
    int flags = d->pre_flags >= 0 ? d->pre_flags : (int)d->flags;
    req.op = op;
    req.path = canon;
    req.open_flags = flags;
    req.mode = d->mode;
    req.access_mode = flags;
    unsigned denied = 0, plain = 0;
    for (int dir = 0; dir < 2; dir++) {
        req.is_dir = dir != 0;
        sbx_files_verdict v;
        if (sbx_files_policy_eval(call->policy, call->policy_size, &req, &v) < 0)
            return LOCAL_UNKNOWN;
        if (!v.matched || v.action == SBX_ACTION_ASK_BROKER || v.action == SBX_ACTION_GIVE_READONLY)
            plain++;
        else if (v.action == SBX_ACTION_DENY_ACCESS)
            denied++;
    }
    return denied == 2 ? LOCAL_DENY : plain == 2 ? LOCAL_NO_DENY : LOCAL_UNKNOWN;
}

/* The caller's memory, probed before the handler touches it: the kernel
 * answers EFAULT for a bad pointer, and so must we (a fault here would
 * kill the program). Readable: every page is mapped (msync; a PROT_NONE
 * mapping still faults — documented). Writable: the kernel itself writes
 * 4 bytes into every page of the range (getresuid's results; the range is
 * about to be overwritten anyway). */
#define PROBE_PAGE 4096u

static bool user_readable(const void *p, size_t n)
{
    if (!n)
        return true;
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(PROBE_PAGE - 1), end = (uintptr_t)p + n;
    if (end < (uintptr_t)p)
        return false;
    /* msync(MS_ASYNC) only looks the range's mappings up (ENOMEM for a
     * hole; it starts no writeback since Linux 2.6.19): a third of
     * mincore's cost, which walks the page tables. */
    return sbx_trap_syscall6(SYS_msync, a, end - a, MS_ASYNC, 0, 0, 0) == 0;
}

static bool user_writable(void *p, size_t n)
{
    if (n < 4)
        return user_readable(p, n);
    uintptr_t a = (uintptr_t)p, end = a + n;
    if (end < a)
        return false;
    for (;;) {
        uintptr_t at = a + 4 <= end ? a : end - 4;
        if (sbx_trap_syscall6(SYS_getresuid, at, at, at, 0, 0, 0) < 0)
            return false;
        uintptr_t next = (a & ~(uintptr_t)(PROBE_PAGE - 1)) + PROBE_PAGE;
        if (next >= end)
            return true;
        a = next;
    }
}

/* strnlen over the caller's memory, a page at a time: -EFAULT for an
 * unmapped page, -ENAMETOOLONG without a NUL within max. */
static long user_strnlen(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max) {
        uintptr_t at = (uintptr_t)s + n;
        size_t room = PROBE_PAGE - (at & (PROBE_PAGE - 1));
        if (room > max - n)
            room = max - n;
        if (!user_readable(s + n, 1))
            return -EFAULT;
        const char *z = memchr(s + n, '\0', room);
        if (z)
            return (long)(z - s);
        n += room;
    }
    return -ENAMETOOLONG;
}

/* Registers as the kernel reads them; the target's own memory holds the
 * path (read in place: a bad pointer faults as it would inside libc). */
static long decode(const sbx_trap_call *call, decoded *d)
{
    const uint64_t *a = call->args;
    memset(d, 0, sizeof *d);
    d->dirfd = d->dirfd2 = AT_FDCWD;
    d->pre_flags = -1;
    d->tag = SBX_FILES_IPC_TAG_PATH;
    switch (call->nr) {
    case SYS_open:
        d->tag = SBX_FILES_IPC_TAG_OPEN, d->op = SBX_FILES_OP_OPEN;
        d->path = (const char *)(uintptr_t)a[0], d->flags = (uint32_t)a[1], d->mode = (uint32_t)a[2];
        return 0;
    case SYS_openat:
        d->tag = SBX_FILES_IPC_TAG_OPEN, d->op = SBX_FILES_OP_OPEN;
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1];
        d->flags = (uint32_t)a[2], d->mode = (uint32_t)a[3];
        return 0;
    case SYS_creat:
        d->tag = SBX_FILES_IPC_TAG_OPEN, d->op = SBX_FILES_OP_OPEN;
        d->path = (const char *)(uintptr_t)a[0];
        d->flags = O_CREAT | O_WRONLY | O_TRUNC, d->mode = (uint32_t)a[1];
        return 0;
    case SYS_openat2: {
        /* The kernel's struct checks (copy_struct_from_user and
         * build_open_how), in its order. */
        if (a[3] < sizeof(struct open_how))
            return -EINVAL;
        if (a[3] > PROBE_PAGE)
            return -E2BIG;
        const struct open_how *how = (const struct open_how *)(uintptr_t)a[2];
        if (!how || !user_readable(how, (size_t)a[3]))
            return -EFAULT;
        for (size_t i = sizeof *how; i < a[3]; i++)
            if (((const unsigned char *)how)[i])
                return -E2BIG; /* an extension we do not know */
        if (how->resolve)
            return -ENOSYS; /* not served through the trap backend yet */
        if ((how->flags >> 31) || (how->mode & ~07777ull))
            return -EINVAL;
        if (how->mode && !(how->flags & (O_CREAT | __O_TMPFILE)))
            return -EINVAL;
        d->tag = SBX_FILES_IPC_TAG_OPEN, d->op = SBX_FILES_OP_OPEN;
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1];
        d->flags = (uint32_t)how->flags, d->mode = (uint32_t)how->mode;
        return 0;
    }
    case SYS_access:
        d->op = SBX_FILES_OP_ACCESS;
        d->path = (const char *)(uintptr_t)a[0], d->flags = (uint32_t)a[1];
        return 0;
    case SYS_faccessat2:
        if ((int)a[3] & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
            return -EINVAL;
        d->mode = (uint32_t)a[3] & (AT_EACCESS | AT_SYMLINK_NOFOLLOW); /* travels in mode */
        /* fall through */
    case SYS_faccessat:
        d->op = SBX_FILES_OP_ACCESS;
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1], d->flags = (uint32_t)a[2];
        return 0;
    case SYS_mkdir:
        d->op = SBX_FILES_OP_MKDIR;
        d->path = (const char *)(uintptr_t)a[0], d->mode = (uint32_t)a[1];
        return 0;
    case SYS_mkdirat:
        d->op = SBX_FILES_OP_MKDIR;
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1], d->mode = (uint32_t)a[2];
        return 0;
    case SYS_unlink:
        d->op = SBX_FILES_OP_UNLINK;
        d->path = (const char *)(uintptr_t)a[0];
        return 0;
    case SYS_rmdir:
        d->op = SBX_FILES_OP_RMDIR;
        d->path = (const char *)(uintptr_t)a[0];
        return 0;
    case SYS_unlinkat:
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1], d->flags = (uint32_t)a[2];
        d->op = (d->flags & AT_REMOVEDIR) ? SBX_FILES_OP_RMDIR : SBX_FILES_OP_UNLINK;
        return 0;
    case SYS_stat:
    case SYS_lstat:
        d->tag = SBX_FILES_IPC_TAG_ATTR, d->op = SBX_FILES_OP_STAT;
        d->path = (const char *)(uintptr_t)a[0];
        d->out_kind = OUT_STAT, d->out = (void *)(uintptr_t)a[1];
        d->out_size = sizeof(struct stat);
        return 0;
    case SYS_newfstatat:
        if ((int)a[3] & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT))
            return -EINVAL;
        d->tag = SBX_FILES_IPC_TAG_ATTR, d->op = SBX_FILES_OP_STAT;
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1], d->flags = (uint32_t)a[3];
        d->out_kind = OUT_STAT, d->out = (void *)(uintptr_t)a[2];
        d->out_size = sizeof(struct stat);
        d->empty_ok = (d->flags & AT_EMPTY_PATH) != 0;
        return 0;
    case SYS_statx:
        d->tag = SBX_FILES_IPC_TAG_ATTR, d->op = SBX_FILES_OP_STAT;
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1];
        d->flags = (uint32_t)a[2], d->mode = (uint32_t)a[3];
        d->out_kind = OUT_STATX, d->out = (void *)(uintptr_t)a[4];
        d->out_size = sizeof(struct statx);
        d->empty_ok = (d->flags & AT_EMPTY_PATH) != 0;
        if (!d->path && d->empty_ok)
            d->path = ""; /* statx(fd, NULL, AT_EMPTY_PATH): the fd itself (Linux 6.11) */
        return 0;
    case SYS_readlink:
    case SYS_readlinkat: {
        bool plain = call->nr == SYS_readlink;
        int size = (int)(plain ? a[2] : a[3]);
        if (size <= 0)
            return -EINVAL;
        d->tag = SBX_FILES_IPC_TAG_ATTR, d->op = SBX_FILES_OP_READLINK;
        if (!plain)
            d->dirfd = (int)a[0];
        d->path = (const char *)(uintptr_t)(plain ? a[0] : a[1]);
        d->out_kind = OUT_LINK, d->out = (void *)(uintptr_t)(plain ? a[1] : a[2]);
        /* No link is longer than PATH_MAX - 1: a bigger buffer is never filled. */
        d->out_size = (size_t)size < SBX_FILES_PATH_MAX ? (size_t)size : SBX_FILES_PATH_MAX;
        return 0;
    }
    case SYS_truncate:
        if ((int64_t)a[1] < 0)
            return -EINVAL;
        d->tag = SBX_FILES_IPC_TAG_ATTR, d->op = SBX_FILES_OP_OPEN;
        d->pre_flags = O_WRONLY | O_TRUNC;
        d->path = (const char *)(uintptr_t)a[0], d->value = a[1];
        return 0;
    case SYS_utimensat:
        if (!a[1])
            return -ENOSYS; /* utimensat(fd, NULL, ...) is futimens: fd-only, not brokered */
        if ((int)a[3] & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
            return -EINVAL;
        d->tag = SBX_FILES_IPC_TAG_ATTR, d->op = SBX_FILES_OP_OPEN;
        d->pre_flags = O_WRONLY;
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1], d->flags = (uint32_t)a[3];
        d->times = (const struct timespec *)(uintptr_t)a[2];
        d->empty_ok = (d->flags & AT_EMPTY_PATH) != 0;
        return 0;
    case SYS_chmod:
        d->op = SBX_FILES_OP_OPEN, d->pre_flags = O_WRONLY;
        d->path = (const char *)(uintptr_t)a[0], d->mode = (uint32_t)a[1];
        return 0;
    case SYS_fchmodat:
    case SBX_FILES_SYS_FCHMODAT2:
        d->op = SBX_FILES_OP_OPEN, d->pre_flags = O_WRONLY;
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1], d->mode = (uint32_t)a[2];
        if (call->nr == SBX_FILES_SYS_FCHMODAT2) {
            d->flags = (uint32_t)a[3];
            d->empty_ok = (d->flags & AT_EMPTY_PATH) != 0;
        }
        return 0;
    case SYS_rename:
        d->tag = SBX_FILES_IPC_TAG_RENAME, d->op = SBX_FILES_OP_RENAME_SRC;
        d->path = (const char *)(uintptr_t)a[0], d->path2 = (const char *)(uintptr_t)a[1];
        return 0;
    case SYS_renameat:
    case SYS_renameat2:
        d->tag = SBX_FILES_IPC_TAG_RENAME, d->op = SBX_FILES_OP_RENAME_SRC;
        d->dirfd = (int)a[0], d->path = (const char *)(uintptr_t)a[1];
        d->dirfd2 = (int)a[2], d->path2 = (const char *)(uintptr_t)a[3];
        if (call->nr == SYS_renameat2)
            d->flags = (uint32_t)a[4];
        return 0;
    case SYS_chdir:
        /* The broker opens the directory; the handler fchdir()s into it. */
        d->tag = SBX_FILES_IPC_TAG_CHDIR, d->op = SBX_FILES_OP_OPEN;
        d->pre_flags = O_RDONLY | O_DIRECTORY;
        d->path = (const char *)(uintptr_t)a[0];
        return 0;
    default:
        return -ENOSYS;
    }
}

/* Calls Landlock does not mediate (stat, access, readlink, chmod,
 * utimensat: sbx_files_op_landlock_mediated), by syscall number; filled by
 * sbx_files_trap_register, read-only afterwards. */
static bool unmediated_nr[SBX_TRAP_MAX_NR];

static bool unmediated(int nr)
{
    return nr >= 0 && nr < SBX_TRAP_MAX_NR && unmediated_nr[nr];
}

/* An O_PATH open is not checked by Landlock either (it reaches an object
 * without opening it): never tried natively first; the broker decides
 * (and gives a real O_PATH fd, which notify cannot), and a NATIVE answer's
 * re-issue meets the notify filter, which does not let O_PATH pass. */
static bool unmediated_call(const sbx_trap_call *call, const decoded *d)
{
    return unmediated(call->nr) || (d->tag == SBX_FILES_IPC_TAG_OPEN && (d->flags & O_PATH));
}

static long native(const sbx_trap_call *call)
{
    atomic_fetch_add_explicit(&n_native, 1, memory_order_relaxed);
    return sbx_trap_native(call);
}

static long brokered(const sbx_trap_call *call, const decoded *d, size_t len, size_t len2);

static long h_brokered(const sbx_trap_call *call, void *ctx)
{
    (void)ctx;
    decoded d;
    long r = decode(call, &d);
    if (r == -ENOSYS) {
        /* Not served here: over the broker's notify filter (ranged mode)
         * the call is handed down to it, which serves every entry. */
        if (call->forward_allowed)
            return sbx_trap_forward(call);
        return call->native_allowed ? native(call) : -ENOSYS;
    }
    if (r < 0)
        return r;
    if (!d.path)
        return -EFAULT;
    long sl = user_strnlen(d.path, SBX_FILES_PATH_MAX);
    if (sl < 0)
        return sl;
    size_t len = (size_t)sl;
    if (len == 0 && !d.empty_ok)
        return -ENOENT;
    size_t len2 = 0;
    if (d.tag == SBX_FILES_IPC_TAG_RENAME) {
        if (!d.path2)
            return -EFAULT;
        if ((sl = user_strnlen(d.path2, SBX_FILES_PATH_MAX)) < 0)
            return sl;
        len2 = (size_t)sl;
        if (len2 == 0)
            return -ENOENT;
    }
    if (d.times && !user_readable(d.times, 2 * sizeof *d.times))
        return -EFAULT;
    uint64_t key = 0;
    local_verdict v1 =
        local_check(call, &d, d.op, d.path, len, call->native_allowed && !d.path2 ? &key : NULL);
    local_verdict v2 = d.path2 ? local_check(call, &d, SBX_FILES_OP_RENAME_DST, d.path2, len2, NULL)
                               : LOCAL_NO_DENY;
    if (v1 == LOCAL_DENY || v2 == LOCAL_DENY) {
        atomic_fetch_add_explicit(&n_prechecked, 1, memory_order_relaxed);
        return -EACCES;
    }
    /* No deny-like rule names the path(s): inside the view the broker
     * would answer NATIVE. Try natively first — the kernel, bounded by
     * Landlock and the mount namespace, reaches only the view — and ask
     * the broker only when that fails (outside the view, or a real error),
     * for its authoritative answer. A failed attempt changes nothing.
     * Only with native re-issue allowed and a local copy to read (not when
     * decisions are audited: the copy is hidden then), not for a call
     * the broker served itself last time (the hints), and never for a call
     * Landlock does not mediate (below). */
    if (call->native_allowed && len && !unmediated_call(call, &d) &&
        (v1 == LOCAL_NO_DENY || v1 == LOCAL_HINTED) && v2 == LOCAL_NO_DENY) {
        if (v1 == LOCAL_HINTED) {
            atomic_fetch_add_explicit(&n_hinted, 1, memory_order_relaxed);
        } else {
            long v = native(call);
            if (v >= 0)
                return v;
        }
        d.hint = key;
    }
    if (len == 0 && d.out_kind == OUT_STAT && d.dirfd >= 0) {
        /* newfstatat(fd, "", AT_EMPTY_PATH) is fstat(fd) (glibc's fstat):
         * fd-only, not intercepted, no policy applies. */
        return sbx_trap_syscall6(SYS_fstat, (uint64_t)d.dirfd, (uint64_t)(uintptr_t)d.out, 0, 0,
                                 0, 0);
    }
    /* Calls Landlock does not mediate (stat, access, readlink, chmod,
     * utimensat) are never native in a spawned target: its notify filter
     * sends them to the broker whatever the magic says (notify_filter.c),
     * which decides them authoritatively — one hop, not a failed native
     * attempt and a cross call. */
    if (call->native_allowed && call->forward_allowed && unmediated(call->nr))
        return sbx_trap_forward(call);
    if (!call->ipc)
        return -EIO;
    return brokered(call, &d, len, len2);
}

/* The answer buffer of a TAG_ATTR call: the target's own buffer is written
 * only from here, after a successful reply, and only as many bytes as the
 * kernel would write. On the stack: a nested trapped call (from a fault
 * handler) gets its own. */
typedef union attr_buf {
    struct stat st;
    struct statx stx;
    struct timespec times[2];
    char link[SBX_FILES_PATH_MAX];
} attr_buf;

static long deliver(const decoded *d, const attr_buf *buf, long v)
{
    size_t n;
    switch (d->out_kind) {
    case OUT_STAT:
        n = sizeof buf->st;
        break;
    case OUT_STATX:
        n = sizeof buf->stx;
        break;
    case OUT_LINK:
        if ((size_t)v > d->out_size)
            return -EIO; /* more than we asked for: a broken broker */
        n = (size_t)v;
        break;
    default:
        return v;
    }
    if (!d->out || !user_writable(d->out, n))
        return -EFAULT;
    memcpy(d->out, buf, n);
    return v;
}

/* One cross call for a decoded call, and its answer as a syscall result. */
static long brokered(const sbx_trap_call *call, const decoded *d, size_t len, size_t len2)
{
    atomic_fetch_add_explicit(&n_brokered, 1, memory_order_relaxed);
    long tid = sbx_trap_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
    sbx_arg args[8] = { sbx_arg_u32((uint32_t)call->nr), sbx_arg_u32((uint32_t)tid),
                        sbx_arg_handle((uint64_t)(int64_t)d->dirfd),
                        sbx_arg_stringn(d->path, len), sbx_arg_u32(d->flags),
                        sbx_arg_u32(d->mode) };
    unsigned nargs = 6, cf = 0;
    attr_buf buf;
    switch (d->tag) {
    case SBX_FILES_IPC_TAG_OPEN:
        if (d->flags & O_CLOEXEC)
            cf = SBX_IPC_CALL_CLOEXEC;
        break;
    case SBX_FILES_IPC_TAG_CHDIR:
        cf = SBX_IPC_CALL_CLOEXEC; /* held only until fchdir */
        break;
    case SBX_FILES_IPC_TAG_ATTR: {
        size_t size = d->out_size;
        if (d->times) {
            memcpy(buf.times, d->times, sizeof buf.times); /* read in place, like the path */
            size = sizeof buf.times;
        } else if (size) {
            memset(&buf, 0, size);
        }
        args[6] = sbx_arg_u64(d->value);
        args[7] = sbx_arg_inout(&buf, size);
        nargs = 8;
        break;
    }
    case SBX_FILES_IPC_TAG_RENAME:
        args[4] = sbx_arg_handle((uint64_t)(int64_t)d->dirfd2);
        args[5] = sbx_arg_stringn(d->path2, len2);
        args[6] = sbx_arg_u32(d->flags);
        nargs = 7;
        break;
    default:
        break;
    }
    sbx_ipc_reply rep;
    int c = sbx_ipc_client_call(call->ipc, d->tag, args, nargs, cf, &rep);
    if (c < 0)
        return sbx_trap_result_from(c);
    hint_update(d->hint, rep.ext[0] == SBX_FILES_IPC_RES_NATIVE);
    if (rep.ext[0] == SBX_FILES_IPC_RES_FD && rep.fd >= 0 && d->tag == SBX_FILES_IPC_TAG_OPEN)
        return rep.fd;
    if (rep.ext[0] == SBX_FILES_IPC_RES_FD && rep.fd >= 0 && d->tag == SBX_FILES_IPC_TAG_CHDIR) {
        /* The directory the broker matched and opened (O_PATH): the
         * kernel checks search permission here, as for chdir itself. */
        long v = sbx_trap_syscall6(SYS_fchdir, (uint64_t)rep.fd, 0, 0, 0, 0, 0);
        (void)sbx_trap_syscall6(SYS_close, (uint64_t)rep.fd, 0, 0, 0, 0, 0);
        return v;
    }
    if (rep.fd >= 0)
        (void)sbx_trap_syscall6(SYS_close, (uint64_t)rep.fd, 0, 0, 0, 0, 0);
    switch (rep.ext[0]) {
    case SBX_FILES_IPC_RES_VALUE:
        return rep.ext[1] <= INT32_MAX ? deliver(d, &buf, (long)rep.ext[1]) : -EIO;
    case SBX_FILES_IPC_RES_NATIVE:
        return call->native_allowed ? native(call) : -EIO;
    case SBX_FILES_IPC_RES_ERROR:
        return rep.status > 0 && rep.status < 4096 ? -(long)rep.status : -EIO;
    default:
        return -EIO;
    }
}

/* getcwd(buf, size). After a brokered chdir the cwd lies outside the
 * target's root, and the kernel prints it as "(unreachable)/var/tmp/x"
 * (which libc turns into ENOENT); the rest is the directory's name in the
 * broker's namespace, which is the name the policy and the program use
 * (views mirror host paths). So: the kernel's answer (native re-issue,
 * else the notify base, else the broker over IPC) into a buffer of our
 * own, the prefix dropped, then copied if it fits the caller's size
 * (ERANGE otherwise, as the kernel). Async-signal-safe: a stack buffer. */
#define UNREACHABLE "(unreachable)"
static long h_getcwd(const sbx_trap_call *call, void *ctx)
{
    (void)ctx;
    char *ubuf = (char *)(uintptr_t)call->args[0];
    size_t size = (size_t)call->args[1];
    char buf[SBX_FILES_PATH_MAX + 16];
    sbx_trap_call c = *call;
    c.args[0] = (uint64_t)(uintptr_t)buf;
    c.args[1] = sizeof buf;
    long n;
    if (call->native_allowed) {
        n = native(&c);
    } else if (call->forward_allowed) {
        n = sbx_trap_forward(&c);
    } else if (call->ipc) {
        atomic_fetch_add_explicit(&n_brokered, 1, memory_order_relaxed);
        long tid = sbx_trap_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
        sbx_arg args[3] = { sbx_arg_u32((uint32_t)call->nr), sbx_arg_u32((uint32_t)tid),
                            sbx_arg_inout(buf, SBX_FILES_PATH_MAX) };
        sbx_ipc_reply rep;
        int r = sbx_ipc_client_call(call->ipc, SBX_FILES_IPC_TAG_GETCWD, args, 3, 0, &rep);
        if (r < 0)
            return sbx_trap_result_from(r);
        if (rep.fd >= 0)
            (void)sbx_trap_syscall6(SYS_close, (uint64_t)rep.fd, 0, 0, 0, 0, 0);
        if (rep.ext[0] == SBX_FILES_IPC_RES_ERROR)
            return rep.status > 0 && rep.status < 4096 ? -(long)rep.status : -EIO;
        if (rep.ext[0] != SBX_FILES_IPC_RES_VALUE || rep.ext[1] == 0 ||
            rep.ext[1] > SBX_FILES_PATH_MAX)
            return -EIO;
        n = (long)rep.ext[1];
    } else {
        return -EIO;
    }
    if (n < 0)
        return n;
    if (n == 0 || (size_t)n > sizeof buf || buf[n - 1] != '\0')
        return -EIO; /* not what getcwd answers */
    size_t len = (size_t)n - 1, skip = 0;
    if (len >= sizeof UNREACHABLE && !memcmp(buf, UNREACHABLE "/", sizeof UNREACHABLE))
        skip = sizeof UNREACHABLE - 1;
    len -= skip;
    if (len + 1 > size)
        return -ERANGE;
    if (!ubuf || !user_writable(ubuf, len + 1))
        return -EFAULT;
    memcpy(ubuf, buf + skip, len + 1);
    return (long)(len + 1);
}

int sbx_files_trap_register(void)
{
    for (size_t i = 0; i < sbx_files_syscall_count; i++) {
        const sbx_files_syscall *sc = &sbx_files_syscalls[i];
        int r = 0;
        if (sc->kind == SBX_FILES_SC_BROKERED && sc->nr >= 0 && sc->nr < SBX_TRAP_MAX_NR)
            unmediated_nr[sc->nr] = !sbx_files_op_landlock_mediated(sc->op) &&
                                    sc->op != SBX_FILES_CALL_CHDIR &&
                                    sc->op != SBX_FILES_CALL_GETCWD;
        if (sc->kind == SBX_FILES_SC_BROKERED && sc->op == SBX_FILES_CALL_GETCWD)
            r = sbx_trap_register(sc->nr, h_getcwd, NULL);
        else if (sc->kind == SBX_FILES_SC_BROKERED)
            r = sbx_trap_register(sc->nr, h_brokered, NULL);
        else if (sc->kind == SBX_FILES_SC_REFUSED)
            r = sbx_trap_refuse(sc->nr, sc->refuse_errno);
        if (r < 0)
            return r;
    }
    return 0;
}

void sbx_files_trap_get_stats(sbx_files_trap_stats *out)
{
    out->brokered = atomic_load(&n_brokered);
    out->prechecked = atomic_load(&n_prechecked);
    out->native = atomic_load(&n_native);
    out->hinted = atomic_load(&n_hinted);
}
