/* sbx internal — per-target cgroups: a v2 leaf when the unified hierarchy
 * (pure cgroup2 at /sys/fs/cgroup) lets us make one, with the memory and
 * pids controllers it has; a limit it cannot take goes to the v1
 * controller where one is mounted, else the caller falls back to rlimits
 * and reports a warning. Layout: <our cgroup>/sbx/<broker pid>/<target
 * id>-<seq> in each hierarchy used. */
#ifndef SBX_BROKER_CGROUP_H
#define SBX_BROKER_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SBX_CGROUP_PATH_MAX 512

typedef struct sbx_cgroup {
    bool v2;                             /* the unified hierarchy is used */
    char unified[SBX_CGROUP_PATH_MAX];   /* the v2 leaf; "" when none */
    char memory[SBX_CGROUP_PATH_MAX];    /* v1 memory dir; "" when none */
    char pids[SBX_CGROUP_PATH_MAX];      /* v1 pids dir; "" when none */
    bool v2_memory, v2_pids;             /* the leaf has the controller */
    bool memory_limited, pids_limited;   /* the limit was written */
} sbx_cgroup;

/* Tests only (not a public contract): use `dir` (a directory on a cgroup2
 * mount) as the unified hierarchy's base instead of our own cgroup under
 * /sys/fs/cgroup, and, with `v1` false, ignore the v1 controllers. NULL
 * restores the default. Process-wide; call while no spawn runs. */
void sbx_cgroup_set_roots_for_test(const char *dir, bool v1);

/* Create the target's cgroup(s) and write the limits (UINT64_MAX: none).
 * Never fails as a whole: what could not be done is appended to `warn`
 * (one line each) and leaves memory_limited/pids_limited false. */
void sbx_cgroup_create(sbx_cgroup *cg, uint64_t target_id, uint64_t memory_bytes,
                       uint64_t max_pids, char *warn, size_t warn_size, unsigned *n_warn);

/* The warnings sbx_cgroup_create appends for limits `cg` does not hold
 * (a pre-made leaf handed to a spawn: src/broker/pool.c). */
void sbx_cgroup_warn_unlimited(const sbx_cgroup *cg, uint64_t memory_bytes, uint64_t max_pids,
                               char *warn, size_t warn_size, unsigned *n_warn);

/* Move `pid` into every created cgroup. Returns 0 or -errno. */
int sbx_cgroup_attach(const sbx_cgroup *cg, pid_t pid);

/* v1: open each created cgroup's "tasks" file for the child to join by
 * itself (it writes "0" first thing after clone). A thread moving itself
 * skips the kernel's global threadgroup lock that a cgroup.procs write
 * by the broker takes (an RCU grace period each time, milliseconds on a
 * busy machine); the permission check uses the opener's credentials.
 * fds[0] (memory) / fds[1] (pids) are -1 where there is nothing to join.
 * Returns 1 when the child must join through fds, 0 when the broker has
 * to attach it (v2, or nothing created), or -errno (fds then all -1). */
int sbx_cgroup_open_self_attach(const sbx_cgroup *cg, int fds[2]);

/* Number of OOM kills recorded in the memory cgroup (0 when unknown). */
uint64_t sbx_cgroup_oom_kills(const sbx_cgroup *cg);

/* An eventfd that becomes readable on OOM (v1 cgroup.event_control), or
 * -errno. The caller owns it. */
int sbx_cgroup_oom_eventfd(const sbx_cgroup *cg);

/* Kill what is left inside (v2 cgroup.kill, else SIGKILL over
 * cgroup.procs) and remove the directories. Idempotent. */
void sbx_cgroup_destroy(sbx_cgroup *cg);

/* Remove this broker's per-broker directories (sbx/<pid>) once its last
 * target's cgroup is gone: called by sbx_broker_free. Kept meanwhile, so
 * spawns do not race a removal of their parent. */
void sbx_cgroup_remove_broker_dirs(void);

/* Remove what brokers that died without sbx_broker_free (killed) left
 * under our cgroups' sbx/ directories: the per-broker directory of a pid
 * that no longer exists (in our pid namespace), and its leaves, which
 * are empty once the targets died with their broker. Only empty
 * directories go (rmdir); a live pid's are never touched. The pool
 * thread calls it before making its first leaf. */
void sbx_cgroup_reap_stale(void);

/* How many per-broker directories this process holds locked (one fd
 * each, kept for the process's life, at most 8): leak checks count them
 * apart. */
unsigned sbx_cgroup_held_dirs(void);

/* Append one formatted line to a warnings buffer. */
__attribute__((format(printf, 4, 5)))
void sbx_warn_append(char *buf, size_t size, unsigned *n, const char *fmt, ...);

#endif
