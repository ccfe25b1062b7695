/* sbx internal — files subsystem: safe broker-side operations.
 *
 * Each operation takes a canonical absolute path (files_path.h) that the
 * policy has already allowed, and performs the call so that the object
 * reached is the object matched:
 *  - resolution starts at ctx->root_fd and never follows a symlink on its
 *    own (openat2 RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, beneath the
 *    root, or — if openat2 is missing — a component walk with O_NOFOLLOW);
 *  - a symlink met on the way is followed only if ctx->recheck accepts the
 *    canonical path it leads to (the caller re-evaluates its policy there);
 *    symlinks on procfs (magic links, /proc/self) are never followed;
 *  - create, unlink, rename act on a parent-directory fd and a single name
 *    with no-follow semantics, so a racing rename can only make the call
 *    fail, never redirect it; two-path calls resolve both parents before
 *    anything moves;
 *  - the kernel checks permissions as the target: when ctx->creds is set the
 *    calling thread switches its fsuid/fsgid/groups (per-thread, restored
 *    before return; only what differs) for the duration of the call, or
 *    with SBX_FILES_OPS_KEEP_CREDS stays in it afterwards
 *    (sbx_files_creds_keep). A root broker
 *    thereby also drops CAP_DAC_OVERRIDE for the call (the kernel clears
 *    the fs capabilities when fsuid leaves 0).
 * Results follow the kernel: 0 / fd / length, or a negative errno passed
 * through unchanged.
 *
 * Thread-safety: every function may be called from several threads at once
 * (credential switches are per thread). */
#ifndef SBX_SUBSYS_FILES_OPS_H
#define SBX_SUBSYS_FILES_OPS_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Called before following a symlink: `path` is the canonical path the
 * operation would reach instead, `which` is 0 for the (first) path and 1
 * for a rename's destination. Return 0 to follow, or a negative errno that
 * becomes the operation's result. */
typedef int (*sbx_files_recheck_fn)(void *arg, unsigned which, const char *path);

#define SBX_FILES_MAX_GROUPS 64

/* The identity the kernel checks permissions for. */
typedef struct sbx_files_creds {
    uid_t fsuid;
    gid_t fsgid;
    mode_t umask; /* the target's umask, applied to created objects */
    size_t ngroups;
    gid_t groups[SBX_FILES_MAX_GROUPS];
} sbx_files_creds;

/* Force the component walk even when openat2 exists (tests). */
#define SBX_FILES_OPS_FORCE_WALK (1u << 0)
/* Leave the calling thread in ctx->creds after the operation
 * (sbx_files_creds_keep: read back, switch only what differs, no restore):
 * the next operation for the same identity switches nothing. Only for a
 * caller that goes back to its own identity before anything else it does
 * (sbx_files_creds_drop). */
#define SBX_FILES_OPS_KEEP_CREDS (1u << 1)

typedef struct sbx_files_ops_ctx {
    int root_fd;                  /* directory that "/" means (borrowed): the broker's "/",
                                     or a target's /proc/<pid>/root */
    bool in_root;                 /* root_fd is a target's root (RESOLVE_IN_ROOT) */
    const sbx_files_creds *creds; /* act as these ids; NULL: the caller's own */
    sbx_files_recheck_fn recheck; /* NULL: no symlink is ever followed (-ELOOP) */
    void *recheck_arg;
    unsigned flags; /* SBX_FILES_OPS_* */
} sbx_files_ops_ctx;

/* Kept identities. Switching a thread's credentials costs a new kernel
 * cred per change (and an RCU free of the old one), so a thread that
 * serves one target after another may stay in the target's identity
 * between calls: sbx_files_creds_keep(c) puts the calling thread in c's
 * fsuid/fsgid/groups (read back from the kernel every time: nothing is
 * trusted from an earlier call; a switch touches only what differs) and
 * leaves it there; sbx_files_creds_keep(NULL) and sbx_files_creds_drop()
 * give the thread back the identity it had before its first kept switch.
 * A thread that keeps identities must drop before it does anything as the
 * broker (/proc lookups, the broker's own paths, callbacks into the
 * embedder) and never while an operation runs. An operation with
 * ctx->creds NULL drops first. 0, -EINVAL (too many groups) or -EPERM
 * (the switch failed: the thread is back in its own identity). */
int sbx_files_creds_keep(const sbx_files_creds *c);
void sbx_files_creds_drop(void);

/* ---- open flags: the semantics the broker accepts ---- */

#define SBX_FILES_NEED_READ (1u << 0)   /* reads data or metadata */
#define SBX_FILES_NEED_WRITE (1u << 1)  /* write mode, O_TRUNC, O_APPEND */
#define SBX_FILES_NEED_CREATE (1u << 2) /* O_CREAT */
#define SBX_FILES_NEED_DIR (1u << 3)    /* O_DIRECTORY */

/* Validate open(2) flags and say what they need. Refused: unknown bits,
 * O_ACCMODE == 3 and FASYNC (-EINVAL); O_RDONLY|O_TRUNC and O_NOATIME
 * (-EACCES); O_TMPFILE (-EOPNOTSUPP, so callers fall back to a named file);
 * O_PATH with anything but O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC (-EINVAL).
 * Returns 0 and sets *need, or the negative errno. Pure. */
int sbx_files_open_flags_check(int flags, unsigned *need);

/* The mode a created file (dir=false) or directory gets: the request
 * masked by the umask, never more than 0666 (files) or 0777 (dirs) — no
 * setuid, setgid or sticky bits. Pure. */
mode_t sbx_files_create_mode(mode_t mode, mode_t umask, bool dir);

/* ---- operations (path: canonical absolute; see the header comment) ---- */

/* open(2). flags must pass sbx_files_open_flags_check; O_CLOEXEC is always
 * set on the broker's fd (the caller decides what the target's copy gets).
 * A trailing slash means O_DIRECTORY (and -EISDIR with O_CREAT). Returns an
 * fd the caller owns, or -errno. */
int sbx_files_op_open(const sbx_files_ops_ctx *ctx, const char *path, int flags, mode_t mode);

/* stat(2) / lstat(2) (follow=false). */
int sbx_files_op_stat(const sbx_files_ops_ctx *ctx, const char *path, bool follow, struct stat *st);

/* statx(2): at_flags may hold AT_STATX_* sync bits only. */
int sbx_files_op_statx(const sbx_files_ops_ctx *ctx, const char *path, bool follow, int at_flags,
                       unsigned mask, struct statx *stx);

/* access(2) with the effective ids of ctx->creds (AT_EACCESS). */
int sbx_files_op_access(const sbx_files_ops_ctx *ctx, const char *path, int mode, bool follow);

/* readlink(2): at most size bytes, no NUL added; returns the length. */
int sbx_files_op_readlink(const sbx_files_ops_ctx *ctx, const char *path, char *buf, size_t size);

int sbx_files_op_mkdir(const sbx_files_ops_ctx *ctx, const char *path, mode_t mode);
int sbx_files_op_unlink(const sbx_files_ops_ctx *ctx, const char *path);
int sbx_files_op_rmdir(const sbx_files_ops_ctx *ctx, const char *path);

/* truncate(2): opened for writing (as the target) without following a
 * final symlink unless rechecked, then ftruncate. */
int sbx_files_op_truncate(const sbx_files_ops_ctx *ctx, const char *path, off_t length);

/* utimensat(2) with a path: times NULL means now; follow=false is
 * AT_SYMLINK_NOFOLLOW. */
int sbx_files_op_utimens(const sbx_files_ops_ctx *ctx, const char *path, const struct timespec *times,
                         bool follow);

/* chmod(2) of the object at path (a final symlink followed only if
 * rechecked; with follow=false a symlink is -EOPNOTSUPP, as the kernel).
 * Only the 0777 bits: setuid, setgid and sticky are refused (-EPERM). */
int sbx_files_op_chmod(const sbx_files_ops_ctx *ctx, const char *path, mode_t mode, bool follow);

/* For a backend that cannot hand out O_PATH files (notify: ADDFD refuses
 * them): a read-only fd of exactly the object the O_PATH fd `opath`
 * names, reopened through its /proc/self/fd link with ctx->creds (so the
 * kernel checks read permission as the target). Regular files and
 * directories only; anything else (FIFO, device, socket, symlink: an
 * open could block or have side effects) is -EBADF, which is what such
 * a backend answers anyway. Returns an fd the caller owns, or -errno.
 * opath is borrowed. */
int sbx_files_op_reopen_readable(const sbx_files_ops_ctx *ctx, int opath);

/* renameat2(2) with flags RENAME_NOREPLACE / RENAME_EXCHANGE only
 * (RENAME_WHITEOUT and unknown bits: -EINVAL). Both parents are resolved
 * (and their symlinks rechecked, which = 0 / 1) before anything moves. */
int sbx_files_op_rename(const sbx_files_ops_ctx *ctx, const char *from, const char *to,
                        unsigned flags);

#endif
