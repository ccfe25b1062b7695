/* sbx — target policies (the seed's TargetPolicy / PolicyBase).
 *
 * A policy says what a target may do: rules per subsystem (which files, with
 * which semantics), and how its process is confined (lockdown level, job
 * level and limits, network, identity, fds to share, native view,
 * mitigations). Policies are reference counted; they are frozen when first
 * used to spawn a target, after which every setter fails with
 * SBX_ERROR_FROZEN. Threads: a policy may be shared between threads once
 * frozen; before that, one thread at a time may modify it. */
#ifndef SBX_POLICY_H
#define SBX_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <sbx/export.h>

SBX_BEGIN_DECLS

typedef struct sbx_policy sbx_policy;

/* ---- rules ---- */

typedef enum sbx_subsystem {
    SBX_SUBSYS_FILES = 1,
} sbx_subsystem;

/* Files semantics (the seed's FILES_ALLOW_* plus an explicit deny). The
 * exact Linux mapping — which open flags, modes and calls each admits — is
 * in docs/policy.md. */
typedef enum sbx_files_semantics {
    SBX_FILES_ALLOW_ANY = 1,      /* everything: read, write, create, rename, unlink, mkdir */
    SBX_FILES_ALLOW_READONLY = 2, /* open O_RDONLY without create/truncate; plus query */
    SBX_FILES_ALLOW_QUERY = 3,    /* stat, access, readlink only */
    SBX_FILES_ALLOW_DIR_ANY = 4,  /* operations on directories only */
    SBX_FILES_DENY = 5,           /* refused, winning over every allow */
} sbx_files_semantics;

/* Where a rule or a policy error came from, for explanations. */
typedef struct sbx_policy_error {
    int code;          /* SBX_ERROR_BAD_PATTERN, -EINVAL, ... ; 0 when no error */
    unsigned column;   /* 1-based column in the pattern, 0 if not applicable */
    char message[256]; /* one line: what was wrong */
} sbx_policy_error;

/* Add a rule. `pattern` is a path pattern: `*` any run within one path
 * component, `**` any run across components, `?` one character other than
 * `/`, `\` escapes the next character; it must be absolute. `origin` (may
 * be NULL) names where the rule came from ("file.policy:12", "--allow-read")
 * and is reported with every decision the rule makes. Both strings are
 * copied. `err` (may be NULL) receives the details of a rejection. Returns
 * 0, SBX_ERROR_BAD_PATTERN, SBX_ERROR_FROZEN or -EINVAL (unknown subsystem
 * or semantics). */
SBX_API int sbx_policy_add_rule_ex(sbx_policy *policy, sbx_subsystem subsys, int semantics,
                                   const char *pattern, const char *origin,
                                   sbx_policy_error *err);
/* sbx_policy_add_rule_ex without origin and error detail. */
SBX_API int sbx_policy_add_rule(sbx_policy *policy, sbx_subsystem subsys, int semantics,
                                const char *pattern);

/* Check a pattern without adding it: 0, or SBX_ERROR_BAD_PATTERN with
 * err->column (1-based) and err->message saying what is wrong. The rules:
 * absolute; no empty, "." or ".." component; no trailing '/' (except "/");
 * no run of three or more '*'; no dangling '\' at the end; at most 4095
 * bytes. sbx_policy_add_rule_ex applies the same check. Thread-safe. */
SBX_API int sbx_policy_validate_pattern(const char *pattern, sbx_policy_error *err);

/* ---- decisions: asking the compiled policy ---- */

/* What the engine decided (the seed's EvalResult). Which actions the files
 * subsystem produces, and why the seed's other GIVE_* are absent, is in
 * docs/policy.md. */
typedef enum sbx_action {
    SBX_ACTION_NONE = 0,               /* no decision (only with an error) */
    SBX_ACTION_ASK_BROKER = 1,         /* allowed: the broker performs the call */
    SBX_ACTION_DENY_ACCESS = 2,        /* refused with the policy's deny errno */
    SBX_ACTION_FAKE_SUCCESS = 3,       /* not performed, reported as success */
    SBX_ACTION_FAKE_ACCESS_DENIED = 4, /* refused with EACCES whatever the deny errno */
    SBX_ACTION_SIGNAL_ALARM = 5,       /* refused, and a policy-violation event is raised */
    SBX_ACTION_TERMINATE_PROCESS = 6,  /* the target is killed */
    SBX_ACTION_GIVE_READONLY = 7,      /* performed, but an open is downgraded to O_RDONLY */
    SBX_ACTION_COUNT_ = 8
} sbx_action;

/* "ASK_BROKER", "DENY_ACCESS", ...; "?" when unknown. Static string. */
SBX_API const char *sbx_action_name(int action);

/* The filesystem operations the broker decides on. A rename is two
 * requests, RENAME_SRC on the old path and RENAME_DST on the new path, and
 * is allowed only if both are. The values are stable (they are policy
 * service numbers); path calls not listed here are refused, not decided. */
typedef enum sbx_files_op {
    SBX_FILES_OP_OPEN = 1,       /* open/openat/openat2/creat: open_flags, mode */
    SBX_FILES_OP_STAT = 2,       /* stat/lstat/fstatat/statx */
    SBX_FILES_OP_ACCESS = 3,     /* access/faccessat: access_mode (F_OK/R_OK/W_OK/X_OK) */
    SBX_FILES_OP_READLINK = 4,   /* readlink/readlinkat */
    SBX_FILES_OP_RENAME_SRC = 5, /* rename/renameat/renameat2, old path */
    SBX_FILES_OP_RENAME_DST = 6, /* rename/renameat/renameat2, new path */
    SBX_FILES_OP_MKDIR = 7,      /* mkdir/mkdirat: mode */
    SBX_FILES_OP_UNLINK = 8,     /* unlink/unlinkat without AT_REMOVEDIR */
    SBX_FILES_OP_RMDIR = 9,      /* rmdir, unlinkat(AT_REMOVEDIR) */
    SBX_FILES_OP_COUNT_ = 10
} sbx_files_op;

/* "open", "stat", "access", "readlink", "rename-src", "rename-dst", "mkdir",
 * "unlink", "rmdir"; "?" when unknown. Static string. */
SBX_API const char *sbx_files_op_name(sbx_files_op op);
/* The inverse of sbx_files_op_name (also accepts "rename" for RENAME_SRC);
 * returns the op, or -EINVAL. */
SBX_API int sbx_files_op_from_name(const char *name);

/* One filesystem request, as the broker sees it after canonicalising the
 * path. `path` MUST already be canonical: absolute, no "." or ".."
 * component, no "//", no trailing '/' (except "/" itself); the engine
 * matches bytes and resolves nothing. The request is borrowed. */
typedef struct sbx_files_request {
    sbx_files_op op;
    const char *path;    /* canonical, NUL-terminated, at most 4095 bytes */
    int open_flags;      /* OPEN: the open(2) flags (O_ACCMODE, O_CREAT, ...) */
    unsigned mode;       /* OPEN with O_CREAT/O_TMPFILE, MKDIR: the mode */
    int access_mode;     /* ACCESS: F_OK or R_OK|W_OK|X_OK */
    bool is_dir;         /* STAT, ACCESS, READLINK, RENAME_SRC, UNLINK: the object is a
                          * directory, as the broker itself found it (never the
                          * target's word); RENAME_DST: the SOURCE is a directory.
                          * Ignored for OPEN (O_DIRECTORY counts), MKDIR, RMDIR */
} sbx_files_request;

/* Fill *req for a named operation on `path` (borrowed), for `sbx check
 * OPERATION PATH` and tests. Names: every sbx_files_op_name ("open" is a
 * read-only open), plus the open shorthands "read" (O_RDONLY), "write"
 * (O_WRONLY), "readwrite" (O_RDWR), "create" (O_WRONLY|O_CREAT|O_EXCL, mode
 * 0666), "truncate" (O_WRONLY|O_TRUNC), "append" (O_WRONLY|O_APPEND),
 * "opendir" (O_RDONLY|O_DIRECTORY), "tmpfile" (O_RDWR|O_TMPFILE) and
 * "rename" (= rename-src). `is_dir` is left false: set it from what the
 * path really is. Returns 0 or -EINVAL (unknown name). */
SBX_API int sbx_files_request_from_name(const char *name, const char *path, sbx_files_request *req);

/* A decision and its explanation. */
typedef struct sbx_decision {
    int action;          /* sbx_action; DENY_ACCESS when no rule matched */
    int rule;            /* index of the deciding rule in add order, -1 if none */
    int semantics;       /* that rule's sbx_files_semantics, 0 if none */
    char origin[256];    /* that rule's origin ("" if none given), or "" */
    char pattern[256];   /* that rule's pattern (truncated), or "" */
    char reason[128];    /* "matched ...", "no rule matched", ... */
} sbx_decision;

/* Decide `req` against `policy`'s files rules and explain why. The first
 * call compiles the policy and caches the compiled form (again after rules
 * were added); on a frozen policy this is thread-safe. The rules: an
 * explicit SBX_FILES_DENY that matches wins whatever the order; otherwise
 * the first allow rule (in add order) whose pattern matches and whose
 * semantics admits the operation decides (ASK_BROKER); otherwise DENY with
 * reason "no rule matched". Returns 0 with *out filled (whatever the
 * decision), -EINVAL (bad arguments or a non-canonical path; out->action
 * = DENY_ACCESS, out->reason says which), or a
 * compile error (-ENOMEM, SBX_ERROR_TOO_LARGE). */
SBX_API int sbx_policy_check_files(const sbx_policy *policy, const sbx_files_request *req,
                                   sbx_decision *out);

/* Print the compiled policy as readable opcodes (the format `sbx policy
 * dump` shows; stable, used by golden tests) to `out`. Returns 0 or a
 * negative code. Same threading as sbx_policy_check_files. */
SBX_API int sbx_policy_dump(const sbx_policy *policy, FILE *out);

/* ---- presets: lockdown levels and job levels (docs/policy.md) ---- */

typedef enum sbx_lockdown_level {
    SBX_LOCKDOWN_INTERACTIVE = 1, /* namespaces + baseline seccomp, loopback allowed, tty allowed */
    SBX_LOCKDOWN_LIMITED = 2,     /* + Landlock over the view, no network */
    SBX_LOCKDOWN_LOCKDOWN = 3,    /* + no child processes (threads allowed); the default */
} sbx_lockdown_level;

typedef enum sbx_job_level {
    SBX_JOB_NONE = 0,        /* no limits beyond what is set explicitly */
    SBX_JOB_INTERACTIVE = 1, /* generous: 4 GiB, 1024 processes, 4096 fds */
    SBX_JOB_LIMITED = 2,     /* 1 GiB, 256 processes, 1024 fds, 300 s CPU; the default */
    SBX_JOB_LOCKDOWN = 3,    /* 256 MiB, 16 processes, 256 fds, 60 s CPU */
} sbx_job_level;

/* Select a preset. Explicit limits set with sbx_policy_set_limit win over
 * the preset whatever the order. Returns 0, -EINVAL or SBX_ERROR_FROZEN. */
SBX_API int sbx_policy_set_lockdown_level(sbx_policy *policy, sbx_lockdown_level level);
SBX_API int sbx_policy_set_job_level(sbx_policy *policy, sbx_job_level level);

/* ---- limits ---- */

typedef enum sbx_limit {
    SBX_LIMIT_MEMORY = 0,      /* bytes of memory (cgroup memory, else RLIMIT_AS) */
    SBX_LIMIT_PROCESSES = 1,   /* processes + threads (cgroup pids, else RLIMIT_NPROC) */
    SBX_LIMIT_CPU_SECONDS = 2, /* CPU time (RLIMIT_CPU) */
    SBX_LIMIT_OPEN_FILES = 3,  /* fds (RLIMIT_NOFILE) */
    SBX_LIMIT_FILE_SIZE = 4,   /* largest file it may write (RLIMIT_FSIZE) */
    SBX_LIMIT_COUNT_ = 5
} sbx_limit;

#define SBX_LIMIT_UNSET UINT64_MAX

/* Set one limit; SBX_LIMIT_UNSET removes it (back to the job preset). A
 * limit that cannot be enforced on this machine is reported as a warning
 * at spawn, never silently dropped. Returns 0, -EINVAL or SBX_ERROR_FROZEN. */
SBX_API int sbx_policy_set_limit(sbx_policy *policy, sbx_limit limit, uint64_t value);

/* ---- process confinement ---- */

typedef enum sbx_net_mode {
    SBX_NET_NONE = 0,     /* a new network namespace with no interface up (default) */
    SBX_NET_LOOPBACK = 1, /* a new network namespace with lo up */
} sbx_net_mode;
SBX_API int sbx_policy_set_net(sbx_policy *policy, sbx_net_mode mode);

/* How intercepted calls reach the broker (docs/trap.md). Both enforce the
 * same policy with the same answers; they differ in speed and in what the
 * target process must load.
 *   NOTIFY: SECCOMP_RET_USER_NOTIF, answered by the broker; any program.
 *   TRAP: the notify filter stays the complete base, and libsbx-preload.so
 *     (found through $SBX_PRELOAD, else its installed copy; spawn fails at
 *     SBX_STEP_INTERCEPTION without it) is bound into the view and
 *     preloaded: in every dynamically linked program it answers libc's
 *     calls with a SIGSYS handler and one shared-memory cross call.
 *     Static programs, and programs exec'd with a cleared environment,
 *     are served by notify (a spawn warning says so for PROGRAM).
 *   AUTO: currently NOTIFY. */
typedef enum sbx_backend {
    SBX_BACKEND_AUTO = 0,
    SBX_BACKEND_NOTIFY = 1,
    SBX_BACKEND_TRAP = 2,
} sbx_backend;
SBX_API int sbx_policy_set_backend(sbx_policy *policy, sbx_backend backend);

/* uid/gid inside the target's user namespace (default 65534/65534). */
SBX_API int sbx_policy_set_identity(sbx_policy *policy, uid_t uid, gid_t gid);

/* Share the broker's `broker_fd` with the target as `target_fd` (>= 3).
 * The fd is borrowed: it is dup'ed at each spawn and must stay open until
 * then; the caller keeps ownership. Every fd not shared is closed in the
 * target. Returns 0, -EBADF, -EINVAL (target_fd < 3 or already used),
 * -E2BIG (too many) or SBX_ERROR_FROZEN. */
SBX_API int sbx_policy_share_fd(sbx_policy *policy, int broker_fd, int target_fd);

/* Native view: paths bind-mounted into the target's own mount namespace,
 * reachable without the broker. The defaults (what a dynamically linked
 * program needs to start: /usr, /lib*, /bin, /sbin, /etc/ld.so.*, a few
 * /dev nodes, a fresh /proc and an empty /tmp) are included unless
 * sbx_policy_set_default_view(policy, false). */
typedef enum sbx_view_flags {
    SBX_VIEW_READONLY = 0,
    SBX_VIEW_WRITABLE = 1u << 0, /* read-write bind */
    SBX_VIEW_OPTIONAL = 1u << 1, /* silently skipped if the path does not exist */
    SBX_VIEW_EXEC = 1u << 2,     /* programs there may be executed (Landlock execute right) */
} sbx_view_flags;
SBX_API int sbx_policy_add_view(sbx_policy *policy, const char *path, unsigned flags);
SBX_API int sbx_policy_set_default_view(sbx_policy *policy, bool enabled);

/* Mitigations beyond the always-on set (no_new_privs, not dumpable,
 * baseline seccomp deny list): */
#define SBX_MITIGATION_KILL_ON_DENIED_SYSCALL (1ull << 0) /* baseline-denied syscalls kill instead of EPERM */
#define SBX_MITIGATION_ALLOW_TTY (1ull << 1)             /* keep the controlling terminal */
#define SBX_MITIGATION_ALLOW_CHILDREN (1ull << 2)        /* permit fork/clone of processes */
SBX_API int sbx_policy_set_mitigations(sbx_policy *policy, uint64_t flags);

/* errno a denied file access returns: EACCES (default), EPERM or ENOENT. */
SBX_API int sbx_policy_set_deny_errno(sbx_policy *policy, int errno_value);

/* Report every brokered and denied decision to the broker's event callback
 * even when no rule needs brokering (forces interception on). */
SBX_API int sbx_policy_set_audit(sbx_policy *policy, bool enabled);

/* ---- lifetime ---- */

/* A new, empty, unfrozen policy with refcount 1 (sbx_broker_create_policy
 * returns the same). NULL on allocation failure. The caller owns the
 * reference. */
SBX_API sbx_policy *sbx_policy_new(void);
/* Take another reference; returns policy. Thread-safe. */
SBX_API sbx_policy *sbx_policy_ref(sbx_policy *policy);
/* Drop a reference; the last one frees the policy. NULL is a no-op.
 * Thread-safe. */
SBX_API void sbx_policy_unref(sbx_policy *policy);

/* Freeze explicitly (spawn does it too). Idempotent; returns 0. */
SBX_API int sbx_policy_freeze(sbx_policy *policy);
SBX_API bool sbx_policy_is_frozen(const sbx_policy *policy);

SBX_END_DECLS

#endif
