/* sbx — the broker (the seed's BrokerServices): spawns targets confined by
 * a policy, tracks them, reports their lifecycle events.
 *
 * Order: sbx_broker_new → sbx_broker_create_policy (+ setters) →
 * sbx_broker_spawn (any number) → sbx_broker_wait_all → sbx_broker_free.
 * Out-of-order calls return an error (SBX_ERROR_WRONG_STATE, -EINVAL,
 * SBX_ERROR_ALREADY_INIT, SBX_ERROR_FROZEN), never crash.
 *
 * Threads: every function except sbx_broker_free may be called from any
 * thread concurrently. Events are delivered on the broker's events thread
 * (STARTED on the spawning thread, before sbx_broker_spawn returns). The
 * callback must not call sbx_broker_free. Any thread may spawn and then
 * exit: targets die with the broker *process* (their init watches the
 * broker's end of a socket), not with the spawning thread.
 *
 * See docs/broker.md for the spawn sequence, the steps, the presets and
 * the limits' mechanisms. */
#ifndef SBX_BROKER_H
#define SBX_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sbx/export.h>
#include <sbx/policy.h>

SBX_BEGIN_DECLS

typedef struct sbx_broker sbx_broker;

/* ---- events ---- */

typedef enum sbx_event_type {
    SBX_EVENT_STARTED = 1,   /* the target exec'd its program */
    SBX_EVENT_EXITED = 2,    /* it exited; `code` is its exit status */
    SBX_EVENT_KILLED = 3,    /* it was killed; `signal` says by what */
    SBX_EVENT_LIMIT = 4,     /* a limit was hit; `limit` says which (comes before KILLED/EXITED) */
    SBX_EVENT_VIOLATION = 5, /* a baseline-denied syscall killed it (SIGSYS, kill mode) */
    SBX_EVENT_ALARM = 6,     /* a SIGNAL_ALARM files rule matched a call (which was refused);
                                the call itself is in the audit record (alarm = true) */
    SBX_EVENT_DENIED = 7,    /* a baseline-denied syscall was refused with EPERM (every
                                target, EPERM mode); `syscall` is its number in the ABI
                                `arch` names. At most SBX_DENIED_EVENTS_BURST per target
                                at once, then SBX_DENIED_EVENTS_PER_SEC; the rest are
                                counted in the end event's `denied_unreported` */
} sbx_event_type;

typedef struct sbx_event {
    sbx_event_type type;
    uint64_t target_id; /* the broker's id of the target (sbx_target_info.id) */
    pid_t pid;          /* the program's pid in the broker's pid namespace */
    int code;           /* EXITED: exit status */
    int signal;         /* KILLED / VIOLATION: the signal */
    sbx_limit limit;    /* LIMIT: which limit */
    bool memory_limit;  /* KILLED/EXITED: the memory limit was hit during its life */
    int syscall;        /* DENIED: the refused syscall's number */
    uint32_t arch;      /* DENIED: its ABI, an AUDIT_ARCH_* value (<linux/audit.h>):
                           AUDIT_ARCH_X86_64, or AUDIT_ARCH_I386 for int 0x80 */
    uint64_t denied_unreported; /* EXITED/KILLED: baseline denials refused but not
                                   reported as DENIED (past the rate limit) */
} sbx_event;

/* Reporting of baseline denials is rate-limited per target (a token
 * bucket): a target looping on a denied call cannot flood the callback. */
#define SBX_DENIED_EVENTS_BURST 128
#define SBX_DENIED_EVENTS_PER_SEC 16

/* Called once per event. `event` is valid during the call only. Must be
 * quick and must not call sbx_broker_free; it may call anything else. */
typedef void (*sbx_event_fn)(const sbx_event *event, void *userdata);

/* ---- lifetime ---- */

/* Create a broker and start its events thread. `*out` must be NULL on
 * entry: a non-NULL *out is taken to be a broker already made and refused
 * with SBX_ERROR_ALREADY_INIT (the seed's "second Init"). On success the
 * caller owns *out (free with sbx_broker_free). Returns 0, -EINVAL,
 * SBX_ERROR_ALREADY_INIT, -ENOMEM or another -errno. */
SBX_API int sbx_broker_new(sbx_broker **out);

/* Kill every live target (and, through its pid namespace, its
 * descendants), reap them, remove their cgroups, stop the events thread.
 * No callback runs after this returns. NULL is a no-op. Not thread-safe
 * with other calls on the same broker. */
SBX_API void sbx_broker_free(sbx_broker *broker);

/* Set (or clear with fn = NULL) the event callback. Thread-safe; takes
 * effect for the next event. Returns 0 or -EINVAL. */
SBX_API int sbx_broker_set_event_callback(sbx_broker *broker, sbx_event_fn fn, void *userdata);

/* A new empty policy (refcount 1, owned by the caller; sbx_policy_unref).
 * NULL if broker is NULL or on allocation failure. */
SBX_API sbx_policy *sbx_broker_create_policy(sbx_broker *broker);

/* ---- spawn ---- */

/* Steps of target setup, reported when one fails. */
typedef enum sbx_spawn_step {
    SBX_STEP_NONE = 0,
    SBX_STEP_OPTIONS,      /* bad options (broker side, before any process exists) */
    SBX_STEP_PREPARE,      /* broker-side preparation (socket, plan) */
    SBX_STEP_CGROUP,       /* creating the target's cgroup (fatal only if a limit needs it) */
    SBX_STEP_CLONE,        /* clone3 / clone into the new namespaces */
    SBX_STEP_UID_MAP,      /* writing uid_map / gid_map / setgroups */
    SBX_STEP_CGROUP_ATTACH,/* placing the child in its cgroup */
    SBX_STEP_SECTION,      /* the shared-section hook */
    SBX_STEP_SYNC,         /* the sync-socket conversation itself */
    SBX_STEP_MOUNT,        /* building the native view (tmpfs root, binds, /proc, /tmp) */
    SBX_STEP_PIVOT,        /* pivot_root into the view */
    SBX_STEP_NETWORK,      /* bringing up loopback */
    SBX_STEP_HOSTNAME,     /* sethostname in the new UTS namespace */
    SBX_STEP_IDENTITY,     /* setgroups / setresgid / setresuid */
    SBX_STEP_CAPS,         /* securebits, bounding/ambient/effective capability drop */
    SBX_STEP_RLIMIT,       /* setrlimit */
    SBX_STEP_LANDLOCK,     /* Landlock ruleset */
    SBX_STEP_SECCOMP,      /* baseline seccomp filter */
    SBX_STEP_FORK,         /* forking the program's process under the pid-1 init */
    SBX_STEP_FDS,          /* installing stdio / shared / extra fds */
    SBX_STEP_SESSION,      /* setsid */
    SBX_STEP_CWD,          /* chdir to the requested cwd */
    SBX_STEP_INTERCEPTION, /* the interception hook (extra filter, listener) */
    SBX_STEP_EXEC,         /* execve of the program */
    SBX_STEP_COUNT_
} sbx_spawn_step;

/* "mount", "exec", ... ; "?" for an unknown step. Static string. */
SBX_API const char *sbx_spawn_step_name(sbx_spawn_step step);

/* Caller-provided extra fds, installed at SBX_TARGET_FD_* (sbx/target.h).
 * -1 = absent. Borrowed: dup'ed into the child; the caller keeps them. */
typedef struct sbx_target_fds {
    int section_fd;
    int broker_fd;
    int channel_fd;
} sbx_target_fds;

/* One options struct for every spawn (no variants). Zero-initialise it and
 * set what you need; `path` and `argv` are required. */
typedef struct sbx_spawn_options {
    const char *path;          /* absolute path of the program, as seen inside the view */
    char *const *argv;         /* NULL-terminated; argv[0] required */
    char *const *envp;         /* NULL: the clean default environment (below) */
    const char *const *env_allow; /* NULL-terminated names copied from the broker's
                                     environment on top of the default (envp == NULL only) */
    const char *cwd;           /* inside the view; NULL: "/" */
    /* stdio: fd >= 0 is dup'ed (so a zeroed struct shares the broker's
     * 0/1/2); SBX_STDIO_NULL gives /dev/null. Borrowed. */
    int stdin_fd, stdout_fd, stderr_fd;
    const sbx_target_fds *extra_fds; /* NULL: none */
    /* Host uid/gid the target's inner identity maps to when the broker is
     * root. 0 (the default) means 65534; root is never accepted. Ignored
     * when the broker is not root (then the broker's own ids are used). */
    uid_t outside_uid;
    gid_t outside_gid;
    /* true: create a message channel (AF_UNIX stream socketpair); the
     * target's end is installed at SBX_TARGET_FD_CHANNEL (sbx_target_channel()
     * in the target), the broker's end is returned in
     * sbx_target_info.channel_fd. Refused together with extra_fds->channel_fd. */
    bool channel;
} sbx_spawn_options;

#define SBX_STDIO_NULL (-1)

/* The default environment: PATH=/usr/local/bin:/usr/bin:/bin, HOME=/tmp,
 * LANG=C.UTF-8, plus SBX_*_FD for the fds provided. */

#define SBX_TARGET_WARNINGS_MAX 1024

/* Filled by sbx_broker_spawn, on success and on failure. */
typedef struct sbx_target_info {
    uint64_t id;          /* broker's id of the target (never 0 on success) */
    pid_t pid;            /* the program's pid in the broker's namespace */
    pid_t init_pid;       /* its pid-1 init (the process the broker created) */
    /* Limits or mechanisms that could not be applied, one per line
     * ("memory: cgroup unavailable, enforced as RLIMIT_AS"); empty when all
     * applied. The seed's last_warning. */
    char warnings[SBX_TARGET_WARNINGS_MAX];
    unsigned n_warnings;
    /* On failure: the step and the errno (positive) it failed with. */
    sbx_spawn_step failed_step;
    int failed_errno;
    char error[256];      /* "exec: No such file or directory (/bin/missing)" */
    /* opts->channel: the broker's end of the channel socket (close-on-exec,
     * owned by the caller; build it with sbx_broker_channel_new or
     * sbx_channel_new_from_fd + SBX_CHANNEL_PEER_EXPECT_PID and `pid`).
     * -1 otherwise and on failure. */
    int channel_fd;
} sbx_target_info;

/* Spawn `opts->path` under `policy` (frozen by this call; the broker takes
 * its own reference). On success returns 0 and fills *out; the STARTED
 * event has been delivered. On failure returns SBX_ERROR_SPAWN (a child
 * step failed: see out->failed_step), -EINVAL / SBX_ERROR_WRONG_STATE (bad
 * arguments, broker shutting down) or -errno; no process, fd, mount or
 * cgroup is left behind and no event is delivered. `out` may not be NULL.
 * Thread-safe. */
SBX_API int sbx_broker_spawn(sbx_broker *broker, sbx_policy *policy,
                             const sbx_spawn_options *opts, sbx_target_info *out);

/* ---- waiting ---- */

/* Wait until no target (nor any of its descendants) is alive. timeout_ms
 * < 0 waits forever. Returns 0, SBX_ERROR_TIMEOUT or -EINVAL. Thread-safe.
 * An ended target's release (its serving threads, fds, cgroup) may finish
 * after this returns: a call it was serving as the target died can still
 * be audited or reported (SBX_EVENT_DENIED) then. Keep the callbacks'
 * userdata valid until sbx_broker_free returns, which finishes every
 * release. */
SBX_API int sbx_broker_wait_all(sbx_broker *broker, int timeout_ms);

/* True if `pid` is the program pid or init pid of a live target of this
 * broker. Thread-safe. */
SBX_API bool sbx_broker_is_active_target(sbx_broker *broker, pid_t pid);

/* Number of live targets. Thread-safe. */
SBX_API unsigned sbx_broker_active_count(sbx_broker *broker);

/* Send `sig` to a live target's program (SIGKILL tears down its whole pid
 * namespace). Returns 0, SBX_ERROR_NOT_FOUND or -errno. Thread-safe. */
SBX_API int sbx_broker_kill(sbx_broker *broker, uint64_t target_id, int sig);

/* ---- message channel ---- */

typedef struct sbx_channel sbx_channel;
typedef struct sbx_channel_listener sbx_channel_listener;

/* The broker's end of a target's channel (spawned with opts.channel) as an
 * sbx_channel that accepts only the target's program as its peer
 * (SBX_CHANNEL_PEER_EXPECT_PID with info->pid). Takes info->channel_fd
 * (set to -1). `listener` may be NULL. Returns 0 and *out (free with
 * sbx_channel_free), -EINVAL (no channel fd) or a negative code. */
SBX_API int sbx_broker_channel_new(sbx_target_info *info, const sbx_channel_listener *listener,
                                   sbx_channel **out);

/* ---- audit (every brokered, denied, faked or fatal files decision) ---- */

typedef enum sbx_audit_decision {
    SBX_AUDIT_DENIED = 0,     /* refused (error says with what) */
    SBX_AUDIT_NATIVE = 1,     /* inside the native view (not reported today) */
    SBX_AUDIT_BROKERED = 2,   /* the broker performed it */
    SBX_AUDIT_FAKED = 3,      /* FAKE_SUCCESS: reported done, not performed */
    SBX_AUDIT_TERMINATED = 4, /* TERMINATE_PROCESS: the target was killed */
} sbx_audit_decision;

/* "denied", "native", "brokered", "faked", "terminated"; "?" otherwise. */
SBX_API const char *sbx_audit_decision_name(sbx_audit_decision decision);

/* One decision. Strings are valid during the callback only. */
typedef struct sbx_audit_record {
    uint64_t time_ns;            /* CLOCK_REALTIME */
    uint64_t target_id;          /* sbx_target_info.id */
    pid_t pid;                   /* the calling process, broker's pid namespace */
    const char *syscall;         /* "openat", "renameat2", ... */
    const char *op;              /* "open", "stat", "rename", ... */
    const char *path;            /* canonical */
    const char *path2;           /* rename destination, else NULL */
    int flags;                   /* open flags / access mode / rename flags as given */
    sbx_audit_decision decision;
    bool alarm;                  /* a SIGNAL_ALARM rule decided (SBX_EVENT_ALARM too) */
    const char *origin;          /* the deciding rule's origin ("policy.sbx:12"), or NULL */
    int error;                   /* 0: success; else the positive errno the target got */
} sbx_audit_record;

/* Called on the broker thread serving the target (one per target); calls
 * are serialised (one at a time across all targets), so the callback needs
 * no lock of its own. Must be quick (the target waits) and must not call
 * sbx_broker_free or sbx_broker_set_audit_callback. */
typedef void (*sbx_audit_fn)(const sbx_audit_record *record, void *userdata);

/* Set (or clear with fn = NULL) the audit callback. Thread-safe; takes
 * effect for the next decision. Decisions are audited only for targets with
 * interception: a policy with brokered rules, or sbx_policy_set_audit(true).
 * Returns 0 or -EINVAL. */
SBX_API int sbx_broker_set_audit_callback(sbx_broker *broker, sbx_audit_fn fn, void *userdata);

SBX_END_DECLS

#endif
