/* sbx — files subsystem: trap-backend handlers (see files_interception.h).
 * Everything here runs in the SIGSYS handler: no allocation, no locks. */
#include "subsys/files/files_interception.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sbx/ipc.h>
#include <sbx/policy.h>

#include "subsys/files/files_ipc.h"
#include "subsys/files/files_path.h"
#include "subsys/files/files_policy.h"
#include "subsys/files/files_syscalls.h"
#include "target/trap/trap.h"

static atomic_uint_fast64_t n_brokered, n_prechecked, n_native;

typedef struct decoded {
    uint32_t tag;
    int dirfd;
    const char *path;
    uint32_t flags;
    uint32_t mode;
    sbx_files_op op; /* for the pre-check */
} decoded;

/* The local pre-check: true when the (read-only, possibly forged) policy
 * copy has an explicit deny rule for this absolute path, whatever the
 * object's type. Relative paths go to the broker (only it knows the cwd). */
static bool locally_denied(const sbx_trap_call *call, const decoded *d, size_t len)
{
    if (!call->policy || d->path[0] != '/')
        return false;
    static _Thread_local char canon[SBX_FILES_PATH_MAX];
    int n = sbx_files_path_canon(d->path, len, canon, sizeof canon);
    if (n <= 0)
        return false;
    if (n > 1 && canon[n - 1] == '/')
        canon[n - 1] = '\0';
    sbx_files_request req;
    memset(&req, 0, sizeof req);
    req.op = d->op;
    req.path = canon;
    req.open_flags = (int)d->flags;
    req.mode = d->mode;
    req.access_mode = (int)d->flags;
    for (int dir = 0; dir < 2; dir++) {
        req.is_dir = dir != 0;
        sbx_files_verdict v;
        if (sbx_files_policy_eval(call->policy, call->policy_size, &req, &v) < 0 || !v.matched ||
            v.action != SBX_ACTION_DENY_ACCESS)
            return false;
    }
    return true;
}

/* Registers as the kernel reads them; the target's own memory holds the
 * path (read in place: a bad pointer faults as it would inside libc). */
static long decode(const sbx_trap_call *call, decoded *d)
{
    const uint64_t *a = call->args;
    d->dirfd = AT_FDCWD;
    d->flags = d->mode = 0;
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
        if (a[3] < sizeof(struct open_how))
            return -EINVAL;
        const struct open_how *how = (const struct open_how *)(uintptr_t)a[2];
        if (!how)
            return -EFAULT;
        if (how->resolve)
            return -ENOSYS; /* not served through the trap backend yet */
        if ((how->flags >> 31) || (how->mode & ~07777ull))
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
        if ((int)a[3] & ~AT_EACCESS)
            return -ENOSYS; /* AT_SYMLINK_NOFOLLOW / AT_EMPTY_PATH: not served yet */
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
    default:
        return -ENOSYS;
    }
}

static long native(const sbx_trap_call *call)
{
    atomic_fetch_add_explicit(&n_native, 1, memory_order_relaxed);
    return sbx_trap_native(call);
}

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
    size_t len = strnlen(d.path, SBX_FILES_PATH_MAX);
    if (len == 0)
        return -ENOENT;
    if (len >= SBX_FILES_PATH_MAX)
        return -ENAMETOOLONG;
    if (locally_denied(call, &d, len)) {
        atomic_fetch_add_explicit(&n_prechecked, 1, memory_order_relaxed);
        return -EACCES;
    }
    if (!call->ipc)
        return -EIO;
    atomic_fetch_add_explicit(&n_brokered, 1, memory_order_relaxed);
    long tid = sbx_trap_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
    sbx_arg args[6] = { sbx_arg_u32((uint32_t)call->nr), sbx_arg_u32((uint32_t)tid),
                        sbx_arg_handle((uint64_t)(int64_t)d.dirfd), sbx_arg_stringn(d.path, len),
                        sbx_arg_u32(d.flags), sbx_arg_u32(d.mode) };
    unsigned cf = (d.tag == SBX_FILES_IPC_TAG_OPEN && (d.flags & O_CLOEXEC)) ? SBX_IPC_CALL_CLOEXEC
                                                                             : 0;
    sbx_ipc_reply rep;
    int c = sbx_ipc_client_call(call->ipc, d.tag, args, 6, cf, &rep);
    if (c < 0)
        return sbx_trap_result_from(c);
    if (rep.ext[0] == SBX_FILES_IPC_RES_FD && rep.fd >= 0)
        return rep.fd;
    if (rep.fd >= 0)
        (void)sbx_trap_syscall6(SYS_close, (uint64_t)rep.fd, 0, 0, 0, 0, 0);
    switch (rep.ext[0]) {
    case SBX_FILES_IPC_RES_VALUE:
        return rep.ext[1] <= INT32_MAX ? (long)rep.ext[1] : -EIO;
    case SBX_FILES_IPC_RES_NATIVE:
        return call->native_allowed ? native(call) : -EIO;
    case SBX_FILES_IPC_RES_ERROR:
        return rep.status > 0 && rep.status < 4096 ? -(long)rep.status : -EIO;
    default:
        return -EIO;
    }
}

int sbx_files_trap_register(void)
{
    for (size_t i = 0; i < sbx_files_syscall_count; i++) {
        const sbx_files_syscall *sc = &sbx_files_syscalls[i];
        int r = 0;
        if (sc->kind == SBX_FILES_SC_BROKERED)
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
}
