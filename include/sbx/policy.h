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

typedef enum sbx_backend {
    SBX_BACKEND_AUTO = 0,   /* trap for programs linked with libsbx or preloadable, else notify */
    SBX_BACKEND_NOTIFY = 1, /* SECCOMP_RET_USER_NOTIF, answered by the broker */
    SBX_BACKEND_TRAP = 2,   /* SECCOMP_RET_TRAP + SIGSYS handler in the target */
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
