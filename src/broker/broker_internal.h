/* sbx internal — the broker object, per-target records, the sync-socket
 * protocol and the seams other components plug into (IPC section,
 * interception filter). */
#ifndef SBX_BROKER_INTERNAL_H
#define SBX_BROKER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <sbx/broker.h>

#include "broker/baseline.h"
#include "broker/cgroup.h"
#include "broker/pool.h"
#include "policy/policy_object.h"

/* ---- seams ----
 *
 * setup_section (IPC seam): called by sbx_broker_spawn once the child is
 *   cloned, its uid/gid maps written and its cgroup attached, while its
 *   init builds the view (our code: the program does not exist yet; init
 *   waits for these fds before it starts it). Fill `fds` with the section
 *   memfd / fd socket / channel (-1 = none); the fds are TAKEN (spawn closes them after
 *   sending them to the child). Return 0 or -errno (spawn then fails at
 *   SBX_STEP_SECTION).
 * child_install_filter (interception seam): runs in the program's process
 *   between fork and exec, after namespaces, view, identity, Landlock and
 *   the baseline seccomp filter, right before execve. Async-signal-safe
 *   code only (no malloc, no locks); `landlock` says whether Landlock
 *   confines the child to its view. Return a listener fd (> 0) to send
 *   to the broker, 0 for "installed, no listener", or -errno (spawn fails
 *   at SBX_STEP_INTERCEPTION).
 * on_listener: broker side, receives that listener fd (TAKEN) during
 *   sbx_broker_spawn, right after STARTED (so what it serves is reported
 *   after the start) and before the target's end is watched (no
 *   on_target_exit can overtake it); `landlock` says whether the child
 *   applied a Landlock ruleset confining it to its view (the notify backend
 *   may answer CONTINUE only then).
 * on_target_exit: a target is gone (reaped); release its per-target state.
 *   Called on the pool thread after the end event (possibly after
 *   wait_all returned: sbx_broker_wait_quiescent waits for it), or from
 *   sbx_broker_free, or when a spawn fails after setup_section succeeded. */
typedef struct sbx_broker_hooks {
    int (*setup_section)(void *ud, uint64_t target_id, pid_t init_pid, const sbx_policy *policy,
                         sbx_target_fds *fds);
    int (*child_install_filter)(void *ud, const sbx_policy *policy, bool landlock);
    void (*on_listener)(void *ud, uint64_t target_id, pid_t pid, int listener_fd, bool landlock);
    void (*on_target_exit)(void *ud, uint64_t target_id);
    /* EPERM mode only: true when child_install_filter will install a filter
     * that carries the baseline's denials itself (as notifications the
     * broker answers EPERM and reports); spawn then loads no separate
     * baseline. The hook's filter install failing fails the spawn. */
    bool (*reports_denials)(void *ud, const sbx_policy *policy);
    /* Only for a policy that refuses child processes
     * (sbx_policy_refuses_children): true when child_install_filter's
     * filter refuses them itself; spawn then loads no separate
     * "no children" filter (one seccomp attach less per spawn). */
    bool (*refuses_children)(void *ud, const sbx_policy *policy);
    /* The broker's end of the target's fs peer socket (takes fd): the
     * target's init serves it (sbx_notify_fs_peer_answer) and shares the
     * program's fs_struct (it forks the program with CLONE_FS), so it can
     * make a brokered directory the program's cwd. init_pid as the
     * broker's pid namespace numbers it. Called before on_listener; with
     * no hook the socket is not made. */
    void (*on_fs_peer)(void *ud, uint64_t target_id, pid_t init_pid, int fd);
    void *userdata;
} sbx_broker_hooks;

/* Replace the broker's hooks (NULL clears). Takes effect for later spawns.
 * Returns 0 or -EINVAL. */
int sbx_broker_set_hooks(sbx_broker *broker, const sbx_broker_hooks *hooks);

/* ---- sync-socket protocol (SOCK_SEQPACKET, one message per record) ---- */

enum {
    SBX_SYNC_GO = 1,       /* broker → child: maps written, cgroup attached: proceed */
    SBX_SYNC_ERROR = 2,    /* child → broker: step + errno */
    SBX_SYNC_LISTENER = 3, /* reserved: the listener travels with SBX_SYNC_PID */
    SBX_SYNC_PID = 4,      /* child → broker: the program process, pid in SCM_CREDENTIALS,
                            * and the interception listener (SCM_RIGHTS) if any */
    SBX_SYNC_STARTED = 5,  /* reserved: exec success is the exec pipe's end-of-file */
    SBX_SYNC_EXIT = 6,     /* child (init) → broker: the program's wait status */
    SBX_SYNC_FDS = 7,      /* broker → child: the section hook's fds, taken before the program fork */
};

typedef struct sbx_sync_msg {
    uint32_t type;
    uint32_t step;
    int32_t err;
    int32_t value;
} sbx_sync_msg;

/* ---- broker-side records ---- */

typedef struct sbx_target_rec {
    uint64_t id;
    pid_t init_pid;  /* our child: the pid-1 init of the target's pid namespace */
    pid_t pid;       /* the program */
    int pidfd;       /* of init */
    int sync_fd;     /* broker end of the sync socket */
    int oom_efd;     /* v1 OOM eventfd, or -1 */
    int mntns_fd;    /* the target's mount namespace, held past init's exit, or -1 */
    bool limit_reported;
    bool released;   /* fds closed and on_target_exit called */
    bool have_exit;  /* the exit status arrived during spawn already */
    int exit_status;
    sbx_cgroup cg;
    sbx_policy *policy; /* our reference */
    bool landlock;      /* the child applied Landlock (confined to its view) */
} sbx_target_rec;

struct sbx_broker {
    pthread_mutex_t lock;
    pthread_cond_t changed;      /* a target was added or removed */
    sbx_target_rec **targets;
    size_t n_targets, cap_targets;
    bool handing_off;            /* the events thread hands an ended target's
                                    release to the pool (sbx_pool_defer) */
    uint64_t next_id;
    int epfd;
    int wake_fd;                 /* eventfd: stop the events thread */
    pthread_t thread;
    bool thread_started;
    bool stopping;
    sbx_event_fn cb;
    void *cb_ud;
    pthread_mutex_t cb_lock;     /* held while a callback runs: free waits for it */
    sbx_broker_hooks hooks;
    /* Filters, built on first use: baseline[kill], and no-children. */
    sbx_bpf baseline[2];
    sbx_bpf nochildren;
    pthread_mutex_t spawn_lock;  /* serialises spawns (filters cache, next_id) */
    struct sbx_runtime *runtime; /* the default hooks' state (src/broker/runtime.c) */
    sbx_pool *pool;              /* netns and cgroup leaves made ahead (src/broker/pool.c) */
};

/* Deliver one event to the callback (if any). */
void sbx_broker_emit(sbx_broker *b, const sbx_event *ev);

/* Register a freshly spawned target (takes rec; on failure it is killed,
 * reaped and freed) and report STARTED. Returns 0 or -errno. Until
 * sbx_broker_watch_target nothing reaps or frees rec, so the caller may
 * still hand the target's fds to the hooks in between: what they serve
 * (an audited call the program makes right after exec) comes after
 * STARTED. */
int sbx_broker_add_target(sbx_broker *b, sbx_target_rec *rec);
/* Watch a registered target's end (the events thread owns rec after). */
void sbx_broker_watch_target(sbx_broker *b, sbx_target_rec *rec);

/* The internal quiescent point of leak checks (tests): sbx_broker_wait_all
 * with no limit, then until the pool thread has released the ended
 * targets (per-target IPC state, fds, cgroups, mount namespaces: after
 * wait_all returns) and has nothing left to make. 0 or -errno. */
int sbx_broker_wait_quiescent(sbx_broker *b);

/* Free a record's resources (after its init was reaped). */
void sbx_target_rec_free(sbx_broker *b, sbx_target_rec *rec);

/* The lockdown level refuses child processes (threads stay allowed)
 * unless the policy allows them. */
static inline bool sbx_policy_refuses_children(const sbx_policy *pol)
{
    return pol->lockdown >= SBX_LOCKDOWN_LOCKDOWN && !(pol->mitigations & SBX_MITIGATION_ALLOW_CHILDREN);
}

#endif
