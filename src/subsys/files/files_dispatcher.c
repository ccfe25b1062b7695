/* sbx — files subsystem: broker-side dispatcher (see files_dispatcher.h).
 *
 * Shared argument for every handler below: the backend has copied the
 * target's arguments once into private memory (the target can no longer
 * change them), resolved relative and *at paths against the target's cwd /
 * dirfd as the broker sees them, and canonicalised the result. The policy
 * decides on that canonical string; the handler then performs the call on
 * the same string through files_ops, which reaches exactly that object
 * (no symlink followed unless its target passes the same policy again).
 * So the only thing a target chooses is *which* path to ask for, and the
 * policy has judged that path. */
#include "subsys/files/files_dispatcher.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const op_names[SBX_FILES_CALL_COUNT_] = {
    [SBX_FILES_CALL_OPEN] = "open",     [SBX_FILES_CALL_STAT] = "stat",
    [SBX_FILES_CALL_STATX] = "statx",   [SBX_FILES_CALL_ACCESS] = "access",
    [SBX_FILES_CALL_READLINK] = "readlink", [SBX_FILES_CALL_MKDIR] = "mkdir",
    [SBX_FILES_CALL_UNLINK] = "unlink", [SBX_FILES_CALL_RMDIR] = "rmdir",
    [SBX_FILES_CALL_RENAME] = "rename", [SBX_FILES_CALL_CHDIR] = "chdir",
    [SBX_FILES_CALL_TRUNCATE] = "truncate", [SBX_FILES_CALL_UTIMENS] = "utimens",
    [SBX_FILES_CALL_CHMOD] = "chmod", [SBX_FILES_CALL_GETCWD] = "getcwd",
};

const char *sbx_files_call_op_name(sbx_files_call_op op)
{
    if ((unsigned)op >= SBX_FILES_CALL_COUNT_ || !op_names[op])
        return "?";
    return op_names[op];
}

bool sbx_files_op_landlock_mediated(sbx_files_call_op op)
{
    switch (op) {
    case SBX_FILES_CALL_OPEN:
    case SBX_FILES_CALL_MKDIR:
    case SBX_FILES_CALL_UNLINK:
    case SBX_FILES_CALL_RMDIR:
    case SBX_FILES_CALL_RENAME:
    case SBX_FILES_CALL_TRUNCATE:
        return true;
    default:
        return false;
    }
}

bool sbx_files_call_landlock_checked(const sbx_files_call *call)
{
    return sbx_files_op_landlock_mediated(call->op) &&
           !(call->op == SBX_FILES_CALL_OPEN && (call->flags & O_PATH));
}

int sbx_files_call_need(sbx_files_call_op op, int flags, unsigned *need)
{
    switch (op) {
    case SBX_FILES_CALL_OPEN:
        return sbx_files_open_flags_check(flags, need);
    case SBX_FILES_CALL_STAT:
    case SBX_FILES_CALL_STATX:
    case SBX_FILES_CALL_ACCESS:
    case SBX_FILES_CALL_READLINK:
        *need = SBX_FILES_NEED_READ;
        return 0;
    case SBX_FILES_CALL_MKDIR:
        *need = SBX_FILES_NEED_CREATE | SBX_FILES_NEED_WRITE | SBX_FILES_NEED_DIR;
        return 0;
    case SBX_FILES_CALL_UNLINK:
    case SBX_FILES_CALL_RENAME:
    case SBX_FILES_CALL_TRUNCATE:
    case SBX_FILES_CALL_UTIMENS:
    case SBX_FILES_CALL_CHMOD:
        *need = SBX_FILES_NEED_WRITE;
        return 0;
    case SBX_FILES_CALL_RMDIR:
        *need = SBX_FILES_NEED_WRITE | SBX_FILES_NEED_DIR;
        return 0;
    case SBX_FILES_CALL_CHDIR:
        *need = SBX_FILES_NEED_READ | SBX_FILES_NEED_DIR;
        return 0;
    default:
        return -EINVAL;
    }
}

static void decide(const sbx_files_dispatcher *d, const sbx_files_query *req,
                   sbx_files_decision *out)
{
    memset(out, 0, sizeof *out);
    if (!d->decide || d->decide(d->decide_ctx, req, out) < 0) {
        memset(out, 0, sizeof *out);
        out->action = SBX_FILES_REFUSE;
    }
    if (out->action > SBX_FILES_TERMINATE)
        out->action = SBX_FILES_REFUSE;
    /* Only the three documented deny answers; anything else is EACCES. */
    if (out->deny_errno != EPERM && out->deny_errno != ENOENT)
        out->deny_errno = EACCES;
}

/* Re-check of a symlink's target: the same call must get the same kind of
 * answer (brokered stays brokered, native stays native) for the new path. */
typedef struct recheck_ctx {
    const sbx_files_dispatcher *d;
    const sbx_files_call *call;
    unsigned need[2];
    sbx_files_action want;
} recheck_ctx;

static int recheck(void *arg, unsigned which, const char *path)
{
    recheck_ctx *rc = arg;
    sbx_files_query req = {
        .op = rc->call->op, .path = path, .which = which, .need = rc->need[which & 1],
        .flags = rc->call->flags, .pid = rc->call->pid, .syscall = rc->call->syscall,
        .recheck = true,
    };
    sbx_files_decision dec;
    decide(rc->d, &req, &dec);
    if (dec.action != rc->want)
        return -dec.deny_errno;
    return 0;
}

/* ---- handlers: each runs after the policy said BROKER or NATIVE ---- */

/* open: the target controls the path (judged), the flags and the mode.
 * Checked: flags against the accepted set (unknown, O_TMPFILE, O_NOATIME,
 * O_RDONLY|O_TRUNC refused) — the policy has seen what they need; the mode
 * is cut to the umask and 0666. Safe: the fd returned refers to the
 * matched object, opened with the target's own permissions. */
static void handle_open(const sbx_files_ops_ctx *ops, const sbx_files_call *c, sbx_files_result *res)
{
    int fd = sbx_files_op_open(ops, c->path, c->flags,
                               sbx_files_create_mode(c->mode, c->umask, false));
    if (fd >= 0 && (c->flags & O_PATH) && c->no_opath_fd) {
        int rd = sbx_files_op_reopen_readable(ops, fd);
        close(fd);
        fd = rd;
    }
    if (fd < 0) {
        res->value = fd;
        return;
    }
    res->kind = SBX_FILES_RES_FD;
    res->fd = fd;
    res->value = 0;
}

/* stat / statx: the target controls the path and whether the last link is
 * followed (a followed link is rechecked). Nothing is written but the
 * result buffer, which the backend copies out. Safe: metadata of a
 * matched object only. */
static void handle_stat(const sbx_files_ops_ctx *ops, const sbx_files_call *c, sbx_files_result *res)
{
    if (c->op == SBX_FILES_CALL_STATX) {
        res->value = sbx_files_op_statx(ops, c->path, c->follow, c->flags, c->mask, &res->stx);
        res->has_statx = res->value == 0;
    } else {
        res->value = sbx_files_op_stat(ops, c->path, c->follow, &res->st);
        res->has_stat = res->value == 0;
    }
}

/* access: the target controls path and mode bits. X_OK is never granted
 * for a brokered path (exec is native-only; see the caller). Checked with
 * the target's ids. Safe: a yes/no about a matched object. */
static void handle_access(const sbx_files_ops_ctx *ops, const sbx_files_call *c,
                          sbx_files_result *res)
{
    res->value = sbx_files_op_access(ops, c->path, c->flags, c->follow);
}

/* readlink: the target controls the path; the link itself is read, never
 * followed. Safe: the text of a matched link (its target is not opened). */
static void handle_readlink(const sbx_files_ops_ctx *ops, const sbx_files_call *c,
                            sbx_files_result *res)
{
    int n = sbx_files_op_readlink(ops, c->path, res->link, sizeof res->link);
    res->value = n;
    res->link_len = n > 0 ? (size_t)n : 0;
}

/* mkdir: the target controls path and mode; mode is cut to umask & 0777
 * (no setgid/sticky). Safe: created by name in a pinned parent, never
 * through a symlink at the last component. */
static void handle_mkdir(const sbx_files_ops_ctx *ops, const sbx_files_call *c,
                         sbx_files_result *res)
{
    res->value = sbx_files_op_mkdir(ops, c->path, sbx_files_create_mode(c->mode, c->umask, true));
}

/* unlink / rmdir: the target controls the path. Safe: the name is removed
 * from a pinned parent directory; a link is removed, never its target. */
static void handle_remove(const sbx_files_ops_ctx *ops, const sbx_files_call *c,
                          sbx_files_result *res)
{
    res->value = c->op == SBX_FILES_CALL_RMDIR ? sbx_files_op_rmdir(ops, c->path)
                                             : sbx_files_op_unlink(ops, c->path);
}

/* rename: the target controls both paths and the flags. Both paths were
 * judged (each needs a write grant) before anything moves; RENAME_WHITEOUT
 * is refused. Safe: both parents are pinned fds, so a refusal moves
 * nothing and a race cannot redirect either end. */
static void handle_rename(const sbx_files_ops_ctx *ops, const sbx_files_call *c,
                          sbx_files_result *res)
{
    res->value = sbx_files_op_rename(ops, c->path, c->path2, (unsigned)c->flags);
}

/* truncate: the target controls the path and the length (negative is
 * EINVAL). Checked: opened for writing as the target, regular files only.
 * Safe: it is an O_WRONLY open of a matched object (needs a write grant)
 * followed by ftruncate on that fd. */
static void handle_truncate(const sbx_files_ops_ctx *ops, const sbx_files_call *c,
                            sbx_files_result *res)
{
    res->value = sbx_files_op_truncate(ops, c->path, (off_t)c->length);
}

/* utimens: the target controls the path, whether a final link is followed
 * (rechecked) and the times (copied; the kernel validates them). Safe:
 * timestamps of a matched object, set with the target's ids (the kernel's
 * owner / write-permission rules apply). */
static void handle_utimens(const sbx_files_ops_ctx *ops, const sbx_files_call *c,
                           sbx_files_result *res)
{
    res->value = sbx_files_op_utimens(ops, c->path, c->times_now ? NULL : c->times, c->follow);
}

/* chmod: the target controls the path, the mode and whether a final link
 * is followed (rechecked). Checked: permission bits only (setuid, setgid,
 * sticky refused). Safe: the object is pinned by an O_PATH fd before the
 * change, and the kernel's owner rule applies with the target's ids. */
static void handle_chmod(const sbx_files_ops_ctx *ops, const sbx_files_call *c,
                         sbx_files_result *res)
{
    res->value = sbx_files_op_chmod(ops, c->path, c->mode, c->follow);
}

/* chdir: the target controls the path (judged like opening the directory
 * for reading). The directory is opened O_PATH|O_DIRECTORY as the target
 * (the kernel checks search permission on the way), a final symlink
 * followed only after its target passes the same policy. Safe: the fd
 * names the matched directory; the backend makes it the caller's cwd with
 * fchdir in the target (or its init), where the kernel's own MAY_EXEC
 * check on the directory happens with the target's ids. Every later
 * relative call is still decided on its canonical path. */
static void handle_chdir(const sbx_files_ops_ctx *ops, const sbx_files_call *c,
                         sbx_files_result *res)
{
    int fd = sbx_files_op_open(ops, c->path, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) {
        res->value = fd;
        return;
    }
    res->kind = SBX_FILES_RES_FD;
    res->fd = fd;
    res->value = 0;
}

static void audit(const sbx_files_dispatcher *d, const sbx_files_call *c,
                  const sbx_files_decision *dec, long result)
{
    if (!d->audit || (d->audit_wanted && !d->audit_wanted(d->audit_ctx, dec->action, dec->alarm)))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sbx_files_audit_record rec = {
        .time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec,
        .pid = c->pid, .syscall = c->syscall, .op = c->op, .path = c->path,
        .path2 = c->op == SBX_FILES_CALL_RENAME ? c->path2 : NULL, .flags = c->flags,
        .action = dec->action, .alarm = dec->alarm, .origin = dec->origin, .result = result,
    };
    d->audit(d->audit_ctx, &rec);
}

int sbx_files_dispatch(const sbx_files_dispatcher *d, const sbx_files_call *c, sbx_files_result *res)
{
    memset(res, 0, offsetof(sbx_files_result, link));
    res->kind = SBX_FILES_RES_VALUE;
    res->fd = -1;
    res->value = -EINVAL;
    if (!d || !c || !c->path || (c->op == SBX_FILES_CALL_RENAME && !c->path2))
        return -EINVAL;

    recheck_ctx rc = { .d = d, .call = c };
    int r = sbx_files_call_need(c->op, c->flags, &rc.need[0]);
    rc.need[1] = rc.need[0];
    if (r < 0) {
        /* Refused flags are refused whatever the path: no decision needed. */
        res->value = r;
        return 0;
    }
    sbx_files_query req = { .op = c->op, .path = c->path, .which = 0, .need = rc.need[0],
                              .flags = c->flags, .pid = c->pid, .syscall = c->syscall };
    sbx_files_decision dec;
    decide(d, &req, &dec);
    if (c->op == SBX_FILES_CALL_RENAME && dec.action != SBX_FILES_REFUSE &&
        dec.action != SBX_FILES_TERMINATE) {
        sbx_files_decision dec2;
        req.path = c->path2;
        req.which = 1;
        decide(d, &req, &dec2);
        if (dec2.action == SBX_FILES_REFUSE || dec2.action == SBX_FILES_TERMINATE) {
            dec = dec2;
        } else if (dec2.action != dec.action) {
            /* Between the view and a brokered tree: different namespaces. */
            dec.action = SBX_FILES_REFUSE;
            dec.deny_errno = EXDEV;
        }
        dec.alarm = dec.alarm || dec2.alarm;
    }

    /* Brokered exec-checks are refused: exec is native-only. */
    if (dec.action == SBX_FILES_BROKER && c->op == SBX_FILES_CALL_ACCESS && (c->flags & X_OK))
        dec.action = SBX_FILES_REFUSE;
    /* chdir is performed as an O_PATH open of the directory, which the
     * backend then makes the caller's cwd; a backend that cannot do that
     * for this caller gets only the kernel's own chdir (CONTINUE). */
    if (c->op == SBX_FILES_CALL_CHDIR && !c->chdir_fd &&
        (dec.action == SBX_FILES_BROKER ||
         (dec.action == SBX_FILES_NATIVE && !c->landlock)))
        dec.action = SBX_FILES_REFUSE;

    switch (dec.action) {
    case SBX_FILES_REFUSE:
        /* The same answer whether or not the object exists: nothing was
         * looked up before the decision. */
        res->value = -dec.deny_errno;
        audit(d, c, &dec, res->value);
        return 0;
    case SBX_FILES_TERMINATE:
        res->kind = SBX_FILES_RES_KILL;
        res->value = -EACCES;
        audit(d, c, &dec, res->value);
        return 0;
    case SBX_FILES_FAKE_SUCCESS:
        res->value = c->op == SBX_FILES_CALL_OPEN ? -dec.deny_errno : 0;
        audit(d, c, &dec, res->value);
        return 0;
    case SBX_FILES_NATIVE:
        if (c->landlock && c->op != SBX_FILES_CALL_CHMOD && c->op != SBX_FILES_CALL_UTIMENS) {
            /* Landlock bounds whatever the kernel reaches, however the
             * target rewrites the path after we read it (for the calls it
             * mediates; see sbx_files_op_landlock_mediated). chmod and
             * utimensat change what they reach without Landlock's check:
             * a racing thread could turn the path relative to a brokered
             * cwd and reach a host file of the target's uid, so those are
             * performed below, inside the target's root. (stat, access,
             * readlink only read metadata; docs/files.md, limits.) */
            res->kind = SBX_FILES_RES_CONTINUE;
            res->value = 0;
            return 0;
        }
        if (c->target_root_fd < 0) {
            res->value = -EACCES;
            return 0;
        }
        break;
    case SBX_FILES_BROKER:
        break;
    }

    rc.want = dec.action;
    sbx_files_ops_ctx ops = {
        .root_fd = dec.action == SBX_FILES_NATIVE ? c->target_root_fd : d->broker_root_fd,
        .in_root = dec.action == SBX_FILES_NATIVE,
        .creds = c->creds,
        .recheck = c->no_symlinks ? NULL : recheck,
        .recheck_arg = &rc,
        .flags = d->ops_flags | (c->creds && c->keep_creds ? SBX_FILES_OPS_KEEP_CREDS : 0),
    };
    switch (c->op) {
    case SBX_FILES_CALL_OPEN:
        handle_open(&ops, c, res);
        break;
    case SBX_FILES_CALL_STAT:
    case SBX_FILES_CALL_STATX:
        handle_stat(&ops, c, res);
        break;
    case SBX_FILES_CALL_ACCESS:
        handle_access(&ops, c, res);
        break;
    case SBX_FILES_CALL_READLINK:
        handle_readlink(&ops, c, res);
        break;
    case SBX_FILES_CALL_MKDIR:
        handle_mkdir(&ops, c, res);
        break;
    case SBX_FILES_CALL_UNLINK:
    case SBX_FILES_CALL_RMDIR:
        handle_remove(&ops, c, res);
        break;
    case SBX_FILES_CALL_RENAME:
        handle_rename(&ops, c, res);
        break;
    case SBX_FILES_CALL_TRUNCATE:
        handle_truncate(&ops, c, res);
        break;
    case SBX_FILES_CALL_UTIMENS:
        handle_utimens(&ops, c, res);
        break;
    case SBX_FILES_CALL_CHMOD:
        handle_chmod(&ops, c, res);
        break;
    case SBX_FILES_CALL_CHDIR:
        handle_chdir(&ops, c, res);
        break;
    default:
        res->value = -ENOSYS;
        break;
    }
    if (dec.action == SBX_FILES_BROKER)
        audit(d, c, &dec, res->kind == SBX_FILES_RES_FD ? 0 : res->value);
    return 0;
}
