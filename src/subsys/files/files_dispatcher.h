/* sbx internal — files subsystem: the broker-side dispatcher (the seed's
 * FilesystemDispatcher) and its decision seam.
 *
 * A backend (notify today, trap + cross call later) decodes a target's
 * syscall into a validated, private sbx_files_call: canonical paths
 * (files_path.h), flags, modes. sbx_files_dispatch() asks the policy
 * through sbx_files_decide_fn, audits, and then either refuses, performs the
 * call in the broker (files_ops.h), performs it inside the target's own view,
 * or tells the backend to let the kernel do it (CONTINUE: only when the
 * backend says Landlock confines the target to its view).
 *
 * The decision seam is deliberately small so that the policy engine plugs
 * in through one adapter: (operation, canonical path, what the call needs)
 * → action + deny errno + rule origin. */
#ifndef SBX_SUBSYS_FILES_DISPATCHER_H
#define SBX_SUBSYS_FILES_DISPATCHER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "subsys/files/files_ops.h"
#include "subsys/files/files_path.h"

typedef enum sbx_files_call_op {
    SBX_FILES_CALL_OPEN = 1, /* open, openat, openat2, creat */
    SBX_FILES_CALL_STAT,     /* stat, lstat, newfstatat */
    SBX_FILES_CALL_STATX,    /* statx */
    SBX_FILES_CALL_ACCESS,   /* access, faccessat, faccessat2 */
    SBX_FILES_CALL_READLINK, /* readlink, readlinkat */
    SBX_FILES_CALL_MKDIR,    /* mkdir, mkdirat */
    SBX_FILES_CALL_UNLINK,   /* unlink, unlinkat */
    SBX_FILES_CALL_RMDIR,    /* rmdir, unlinkat(AT_REMOVEDIR) */
    SBX_FILES_CALL_RENAME,   /* rename, renameat, renameat2 */
    SBX_FILES_CALL_CHDIR,    /* chdir */
    SBX_FILES_CALL_TRUNCATE, /* truncate */
    SBX_FILES_CALL_UTIMENS,  /* utimensat with a path */
    SBX_FILES_CALL_CHMOD,    /* chmod, fchmodat, fchmodat2 */
    SBX_FILES_CALL_GETCWD,   /* getcwd: no path input; answered by the backend, never dispatched */
    SBX_FILES_CALL_COUNT_
} sbx_files_call_op;

/* "open", "stat", ... (static string). */
const char *sbx_files_call_op_name(sbx_files_call_op op);

/* What the policy is asked about: one path of one call. */
typedef struct sbx_files_query {
    sbx_files_call_op op;
    const char *path;    /* canonical absolute path */
    unsigned which;      /* 0: the path (a rename's source), 1: a rename's destination */
    unsigned need;       /* SBX_FILES_NEED_* (files_ops.h): what the call does to it */
    int flags;           /* open flags, access mode, rename flags (as given) */
    pid_t pid;           /* the target (thread-group id) */
    const char *syscall; /* "openat", ... for explanations */
    bool recheck;        /* a symlink's target being re-checked */
} sbx_files_query;

typedef enum sbx_files_action {
    SBX_FILES_REFUSE = 0,         /* refused with deny_errno */
    SBX_FILES_NATIVE = 1,       /* inside the target's native view */
    SBX_FILES_BROKER = 2,       /* the broker performs it (ASK_BROKER) */
    SBX_FILES_FAKE_SUCCESS = 3, /* answer success without doing anything (not for open) */
    SBX_FILES_TERMINATE = 4,    /* kill the target */
} sbx_files_action;

typedef struct sbx_files_decision {
    sbx_files_action action;
    bool alarm;         /* SIGNAL_ALARM: raise an event as well */
    int deny_errno;     /* EACCES (0 means EACCES), EPERM or ENOENT */
    const char *origin; /* the rule that decided ("file.policy:12"); may be NULL.
                           Owned by the policy; valid while it lives. */
} sbx_files_decision;

/* Evaluate the policy. Returns 0 with *out filled, or a negative code
 * (treated as DENY). Called from broker threads; must be thread-safe. */
typedef int (*sbx_files_decide_fn)(void *ctx, const sbx_files_query *req,
                                   sbx_files_decision *out);

/* One brokered or denied decision (native ones are not audited). */
typedef struct sbx_files_audit_record {
    uint64_t time_ns; /* CLOCK_REALTIME */
    pid_t pid;
    const char *syscall;
    sbx_files_call_op op;
    const char *path;
    const char *path2; /* rename destination or NULL */
    int flags;
    sbx_files_action action;
    bool alarm;
    const char *origin;
    long result; /* what the target gets: >= 0, or -errno */
} sbx_files_audit_record;

typedef void (*sbx_files_audit_fn)(void *ctx, const sbx_files_audit_record *rec);
/* Would audit(ctx, rec) do anything with a record of this action and
 * alarm (a listener is set, or the action itself has an effect)? Asked
 * first, so that a record nobody reads is never prepared (no clock read,
 * no lock). Thread-safe. A listener set meanwhile may miss this one
 * record, as if it had been set just after. */
typedef bool (*sbx_files_audit_wanted_fn)(void *ctx, sbx_files_action action, bool alarm);

typedef struct sbx_files_dispatcher {
    sbx_files_decide_fn decide;
    void *decide_ctx;
    sbx_files_audit_fn audit; /* may be NULL */
    sbx_files_audit_wanted_fn audit_wanted; /* may be NULL: every record is wanted */
    void *audit_ctx;
    int broker_root_fd; /* O_PATH fd of the broker's "/" (borrowed) */
    unsigned ops_flags; /* SBX_FILES_OPS_* */
} sbx_files_dispatcher;

/* A decoded call: every field is the broker's private copy. */
typedef struct sbx_files_call {
    sbx_files_call_op op;
    const char *syscall;
    const char *path;  /* canonical */
    const char *path2; /* canonical, RENAME only */
    int flags;         /* OPEN: open flags; ACCESS: mode; RENAME: flags; STATX: AT_STATX_* */
    unsigned mask;     /* STATX mask */
    mode_t mode;       /* OPEN with O_CREAT, MKDIR: as the target asked */
    mode_t umask;      /* the target's umask, applied to mode */
    long long length;  /* TRUNCATE */
    bool times_now;    /* UTIMENS: NULL times (now) */
    struct timespec times[2]; /* UTIMENS */
    bool follow;       /* STAT/STATX/ACCESS: follow a final symlink */
    bool no_symlinks;  /* follow no symlink at all (openat2 RESOLVE_NO_SYMLINKS) */
    pid_t pid;
    int target_root_fd; /* O_PATH fd of the target's root, -1 if unknown */
    bool landlock;      /* the target is confined to its view by Landlock */
    const sbx_files_creds *creds; /* the target's identity, NULL: the broker's */
    /* operations may leave the calling thread in creds
     * (SBX_FILES_OPS_KEEP_CREDS): stable target credentials */
    bool keep_creds;
    /* CHDIR: the backend can make a directory fd the caller's cwd (trap:
     * the handler fchdir()s; notify: the target's init shares the caller's
     * fs_struct). false: only a CONTINUE can serve it, else it is refused
     * with the policy's errno. */
    bool chdir_fd;
    /* OPEN with O_PATH: the backend cannot pass O_PATH files (notify):
     * answer a read-only fd of the same regular file or directory instead
     * (sbx_files_op_reopen_readable; the grant that allows O_PATH is a
     * read grant), EBADF for other objects. */
    bool no_opath_fd;
} sbx_files_call;

typedef enum sbx_files_result_kind {
    SBX_FILES_RES_VALUE = 0, /* value: >= 0 result or -errno */
    SBX_FILES_RES_FD,        /* fd: give this fd (owned by the result) to the target */
    SBX_FILES_RES_CONTINUE,  /* let the kernel run the call in the target */
    SBX_FILES_RES_KILL,      /* kill the target */
} sbx_files_result_kind;

typedef struct sbx_files_result {
    sbx_files_result_kind kind;
    long value;
    int fd;
    bool has_stat, has_statx; /* out buffers to copy to the target */
    struct stat st;
    struct statx stx;
    size_t link_len; /* READLINK: bytes in link */
    char link[SBX_FILES_PATH_MAX];
} sbx_files_result;

/* Decide and carry out one call. Always fills *res (fd = -1 unless kind
 * is SBX_FILES_RES_FD, in which case the caller owns res->fd). Returns 0,
 * or a negative code for misuse (res then says -EINVAL). Thread-safe if
 * decide and audit are. */
int sbx_files_dispatch(const sbx_files_dispatcher *d, const sbx_files_call *call,
                       sbx_files_result *res);

/* Does Landlock mediate `op` (check the object the kernel reaches, however
 * the path was spelled)? open (except O_PATH), mkdir, unlink, rmdir,
 * rename, truncate: yes. stat, statx, access, readlink, chmod, utimensat,
 * chdir: no — a native (CONTINUE'd, or the trap's magic re-issue) call of
 * these with a path relative to a directory outside the view (a brokered
 * cwd or dirfd) would reach the host's tree unchecked, so the broker never
 * leaves them to the kernel (chdir excepted: see files.md). Pure. */
bool sbx_files_op_landlock_mediated(sbx_files_call_op op);

/* Does Landlock check what this call reaches? As above, and an open with
 * O_PATH is not checked either. For a call it does not check, a CONTINUE
 * (or a NATIVE answer's re-issue) is safe only when the base of every path
 * — absolute paths' too, since a racing thread can make one relative —
 * lies in the target's view. Pure. */
bool sbx_files_call_landlock_checked(const sbx_files_call *call);

/* What a call of `op` with these flags needs (SBX_FILES_NEED_*), or a
 * negative errno for flags that are refused outright. */
int sbx_files_call_need(sbx_files_call_op op, int flags, unsigned *need);

#endif
