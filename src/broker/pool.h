/* sbx internal — resources made ahead of spawns, off the spawning thread.
 *
 * A background thread per broker keeps the next network namespace ready
 * (when the broker may make one: CAP_SYS_ADMIN), so that a spawn does not
 * pay for creating it inside clone (the costliest namespace by far), and
 * the next cgroup leaf with the last spawn's limits. Each is handed out
 * once and never reused: every target still gets namespaces and cgroups
 * of its own. Nothing is made before the first spawn asks, and the pool's
 * fd count never changes after sbx_pool_new (leak checks count fds). */
#ifndef SBX_BROKER_POOL_H
#define SBX_BROKER_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "broker/cgroup.h"

typedef struct sbx_pool sbx_pool;

/* Start the pool's thread (idle until the first request). 0 or -errno. */
int sbx_pool_new(sbx_pool **out);

/* Stop the thread and drop what was not handed out. NULL ok. */
void sbx_pool_free(sbx_pool *pool);

/* Move the calling thread into a fresh network namespace nobody else got,
 * for one clone without CLONE_NEWNET. Returns 1 with *home set to an fd
 * of the namespace the thread was in (per thread: the application's
 * threads may live in different ones) — pass it to sbx_pool_leave_netns
 * on every path; 0 when none is ready or the broker may not make them
 * (the caller uses CLONE_NEWNET; *home is -1). Asks for the next one. */
int sbx_pool_enter_netns(sbx_pool *pool, int *home);

/* Back into `home`, which is closed. Returns 0 or -errno (the thread is
 * then still in the namespace it entered). */
int sbx_pool_leave_netns(int home);

/* A spawn's start, from taking the pool's items to its child running on
 * its own: the next network namespace and leaf are not made meanwhile
 * (on two cores the thread making them kept the fresh child off a CPU
 * for ~0.25 ms); removals and releases still run. Every hold is undone
 * with sbx_pool_unhold, which resumes the refill. NULL ok. */
void sbx_pool_hold(sbx_pool *pool);
void sbx_pool_unhold(sbx_pool *pool);

/* A pre-made cgroup leaf with exactly these limits written (UINT64_MAX:
 * none), moved into *out (the caller destroys it as if it had made it
 * with sbx_cgroup_create, id 0): true; false when none fits (the caller
 * makes one). A leaf is handed out once. The next one is made with these
 * limits; a ready leaf made for other limits is removed. Nothing is made
 * before sbx_pool_want_cgroup. */
bool sbx_pool_take_cgroup(sbx_pool *pool, uint64_t memory_bytes, uint64_t max_pids,
                          sbx_cgroup *out);

/* A spawn made a leaf itself (so cgroups work from the spawning threads):
 * keep one ready from now on, with these limits. */
void sbx_pool_want_cgroup(sbx_pool *pool, uint64_t memory_bytes, uint64_t max_pids);

/* A taken leaf the caller cannot use (not reachable from its mount
 * namespace): the pool thread, which made it, removes it. *cg is reset. */
void sbx_pool_discard_cgroup(sbx_pool *pool, sbx_cgroup *cg);

/* Run fn(a, b) on the pool thread, after what the next spawn takes is
 * made: an ended target's release (its per-target state, fds, cgroup and
 * mount namespace), off the events thread's path to wait_all's return.
 * Run at once, here, when it cannot be queued (the pool stopping, no
 * memory); sbx_pool_free runs what is still queued. */
typedef void (*sbx_pool_fn)(void *a, void *b);
void sbx_pool_defer(sbx_pool *pool, sbx_pool_fn fn, void *a, void *b);

/* Wait until the pool has nothing left to make (the next namespace and
 * leaf are ready, or cannot be made), remove or run, up to `deadline`
 * (CLOCK_MONOTONIC; NULL: no limit): the quiescent point of leak checks
 * (sbx_broker_wait_quiescent: ended targets are released once it returns
 * 0 or 1). Returns 1 when a network namespace is ready, 0 when the pool
 * cannot make them, -ETIMEDOUT. (Tests.) */
int sbx_pool_wait_ready(sbx_pool *pool, const struct timespec *deadline);

#endif
