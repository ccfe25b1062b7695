/* sbx — resources made ahead of spawns (see pool.h).
 *
 * Network namespaces: creating one costs ~0.5 ms, most of clone's time.
 * A network namespace is per thread, so the pool thread makes the next
 * one on itself (unshare(CLONE_NEWNET)) and holds it by living in it —
 * no fd per namespace. A spawn enters it with setns through a pidfd of
 * that thread, clones without CLONE_NEWNET (the child inherits the
 * calling thread's namespace) and returns to its own namespace; the
 * pool thread then moves on to a new one, so the target's init ends up
 * holding the last reference (the pool thread does no networking of its
 * own). Handing out and entering happen under the pool's lock: the
 * thread cannot move on before the spawner holds its reference, and no
 * second spawner can enter the same namespace. Such a namespace is owned
 * by the broker's user namespace, not the target's: the target has no
 * capability over it at all. */
#include "broker/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/fd.h"
#include "base/log.h"
#include "broker/cgroup.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

struct sbx_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* the thread: work to do, or stop */
    pthread_cond_t ready;  /* waiters: the thread finished a step */
    pthread_t thread;
    pid_t tid;             /* the pool thread, once started */
    int holder;            /* pidfd of the pool thread (PIDFD_THREAD), or an
                              O_PATH fd of /proc/self/task/<tid>; -1: no pool */
    bool holder_is_pidfd;
    bool stopping;
    bool stepping;         /* a step runs (outside the lock) */
    bool netns_wanted;     /* a spawn asked: keep the next one ready */
    bool netns_ok;         /* the broker may make network namespaces */
    bool netns_ready;      /* the thread lives in a fresh one nobody entered */
    /* The next target's cgroup leaf, made with the last spawn's limits. */
    bool cg_wanted;
    bool cg_ok;            /* the broker can make cgroups at all */
    uint64_t cg_mem, cg_pids;           /* the limits the next leaf gets */
    bool cg_ready;
    bool cg_reaped;        /* killed brokers' leftovers removed (once) */
    sbx_cgroup cg;
    uint64_t cg_made_mem, cg_made_pids; /* the limits cg was made with */
    /* Leaves to remove: never handed out again, or of ended targets. */
    sbx_cgroup *discard;
    size_t n_discard, cap_discard;
    /* Work handed over by other threads (an ended target's release). */
    struct pool_job {
        sbx_pool_fn fn;
        void *a, *b;
    } *jobs;
    size_t n_jobs, cap_jobs;
    unsigned held;         /* spawns starting (sbx_pool_hold): no refill */
};

static bool removal_work_locked(const sbx_pool *pl)
{
    return pl->n_discard || pl->n_jobs;
}

/* Queue *cg for removal by the pool thread; false when out of memory. */
static bool push_discard_locked(sbx_pool *pl, const sbx_cgroup *cg)
{
    if (pl->n_discard == pl->cap_discard) {
        size_t nc = pl->cap_discard ? pl->cap_discard * 2 : 4;
        sbx_cgroup *n = realloc(pl->discard, nc * sizeof *n);
        if (!n)
            return false;
        pl->discard = n;
        pl->cap_discard = nc;
    }
    pl->discard[pl->n_discard++] = *cg;
    return true;
}

static bool netns_work_locked(const sbx_pool *pl)
{
    if (pl->held)
        return false;
    return pl->netns_wanted && pl->netns_ok && !pl->netns_ready;
}

static bool cg_work_locked(const sbx_pool *pl)
{
    if (pl->held)
        return false;
    return pl->cg_wanted && pl->cg_ok && !pl->cg_ready;
}

/* One step of work, with pl->lock held on entry and exit. What the next
 * spawn takes comes before removals. */
static void pool_step_locked(sbx_pool *pl)
{
    if (!netns_work_locked(pl) && !cg_work_locked(pl) && pl->n_jobs) {
        struct pool_job j = pl->jobs[--pl->n_jobs];
        pthread_mutex_unlock(&pl->lock);
        j.fn(j.a, j.b);
        pthread_mutex_lock(&pl->lock);
        return;
    }
    if (!netns_work_locked(pl) && !cg_work_locked(pl)) {
        sbx_cgroup dead = pl->discard[--pl->n_discard];
        pthread_mutex_unlock(&pl->lock);
        sbx_cgroup_destroy(&dead);
        pthread_mutex_lock(&pl->lock);
        return;
    }
    if (netns_work_locked(pl)) {
        pthread_mutex_unlock(&pl->lock);
        int r = unshare(CLONE_NEWNET) < 0 ? sbx_neg_errno() : 0;
        pthread_mutex_lock(&pl->lock);
        if (r < 0) {
            /* EPERM: an unprivileged broker; spawns keep CLONE_NEWNET. */
            pl->netns_ok = false;
            if (r != -EPERM)
                sbx_warn("broker pool: network namespace: %s", strerror(-r));
        } else {
            pl->netns_ready = true;
        }
        return;
    }
    /* A cgroup leaf: directories (and the limits of the last spawn) made
     * here; the name is "0-<seq>", unique in the process. */
    uint64_t mem = pl->cg_mem, pids = pl->cg_pids;
    bool first = !pl->cg_reaped;
    pl->cg_reaped = true;
    pthread_mutex_unlock(&pl->lock);
    /* Cgroups work here: clean up after killed brokers first. */
    if (first)
        sbx_cgroup_reap_stale();
    sbx_cgroup cg;
    sbx_cgroup_create(&cg, 0, mem, pids, NULL, 0, NULL);
    pthread_mutex_lock(&pl->lock);
    if (!cg.memory[0] && !cg.pids[0]) {
        pl->cg_ok = false; /* no cgroups here: spawns fall back as before */
    } else if (pl->stopping) {
        pthread_mutex_unlock(&pl->lock);
        sbx_cgroup_destroy(&cg);
        pthread_mutex_lock(&pl->lock);
    } else {
        pl->cg = cg;
        pl->cg_made_mem = mem;
        pl->cg_made_pids = pids;
        pl->cg_ready = true;
    }
}

static void *pool_main(void *arg)
{
    sbx_pool *pl = arg;
    /* Normal priority on purpose: making a namespace or a cgroup takes
     * global kernel locks (rtnl, cgroup_mutex) that spawns, exits and
     * cgroup removals wait for; a starved low-priority holder would
     * stall them under load. */
    pthread_mutex_lock(&pl->lock);
    pl->tid = (pid_t)syscall(SYS_gettid);
    pthread_cond_broadcast(&pl->ready);
    for (;;) {
        while (!pl->stopping && !removal_work_locked(pl) && !netns_work_locked(pl) &&
               !cg_work_locked(pl))
            pthread_cond_wait(&pl->wake, &pl->lock);
        if (pl->stopping)
            break;
        pl->stepping = true;
        pool_step_locked(pl);
        pl->stepping = false;
        pthread_cond_broadcast(&pl->ready);
    }
    /* Handed-over work first: a release removes its target's cgroup too. */
    while (pl->n_jobs > 0) {
        struct pool_job j = pl->jobs[--pl->n_jobs];
        pthread_mutex_unlock(&pl->lock);
        j.fn(j.a, j.b);
        pthread_mutex_lock(&pl->lock);
    }
    free(pl->jobs);
    pl->jobs = NULL;
    /* Removed here, by the thread that made them: a spawning thread may
     * live in another mount namespace, where these paths do not exist. */
    if (pl->cg_ready) {
        pl->cg_ready = false;
        sbx_cgroup_destroy(&pl->cg);
    }
    bool made_cg = pl->cg_wanted;
    while (pl->n_discard > 0)
        sbx_cgroup_destroy(&pl->discard[--pl->n_discard]);
    free(pl->discard);
    pl->discard = NULL;
    pthread_mutex_unlock(&pl->lock);
    /* And our per-broker parents, seen from here (sbx_broker_free runs
     * after every target's leaf is gone; still in use: harmless). */
    if (made_cg)
        sbx_cgroup_remove_broker_dirs();
    return NULL;
}

int sbx_pool_new(sbx_pool **out)
{
    sbx_pool *pl = calloc(1, sizeof *pl);
    if (!pl)
        return -ENOMEM;
    pthread_mutex_init(&pl->lock, NULL);
    pthread_cond_init(&pl->wake, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pl->ready, &ca);
    pthread_condattr_destroy(&ca);
    pl->holder = -1;
    int r = pthread_create(&pl->thread, NULL, pool_main, pl);
    if (r != 0) {
        pthread_cond_destroy(&pl->ready);
        pthread_cond_destroy(&pl->wake);
        pthread_mutex_destroy(&pl->lock);
        free(pl);
        return -r;
    }
    pthread_mutex_lock(&pl->lock);
    while (!pl->tid)
        pthread_cond_wait(&pl->ready, &pl->lock);
    pthread_mutex_unlock(&pl->lock);
    /* Opened once, here: the pool's fds never change afterwards. */
    pl->holder = (int)syscall(SYS_pidfd_open, pl->tid, PIDFD_THREAD);
    pl->holder_is_pidfd = pl->holder >= 0;
    if (pl->holder < 0) { /* before Linux 6.9 */
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d", (int)pl->tid);
        pl->holder = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    pl->netns_ok = pl->holder >= 0;
    pl->cg_ok = true;
    *out = pl;
    return 0;
}

void sbx_pool_free(sbx_pool *pl)
{
    if (!pl)
        return;
    pthread_mutex_lock(&pl->lock);
    pl->stopping = true;
    pthread_cond_broadcast(&pl->wake);
    pthread_mutex_unlock(&pl->lock);
    pthread_join(pl->thread, NULL);
    sbx_close_keep_errno(pl->holder);
    pthread_cond_destroy(&pl->ready);
    pthread_cond_destroy(&pl->wake);
    pthread_mutex_destroy(&pl->lock);
    free(pl);
}

/* Under pl->lock, with the pool thread parked in a fresh namespace. */
static int enter_locked(sbx_pool *pl)
{
    if (pl->holder_is_pidfd)
        return setns(pl->holder, CLONE_NEWNET) < 0 ? sbx_neg_errno() : 0;
    SBX_AUTOCLOSE int fd = openat(pl->holder, "ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_neg_errno();
    return setns(fd, CLONE_NEWNET) < 0 ? sbx_neg_errno() : 0;
}

int sbx_pool_enter_netns(sbx_pool *pl, int *home)
{
    *home = -1;
    if (!pl)
        return 0;
    int entered = 0;
    pthread_mutex_lock(&pl->lock);
    if (pl->netns_ok && pl->netns_ready) {
        *home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (*home >= 0 && enter_locked(pl) == 0) {
            entered = 1;
        } else {
            sbx_close_keep_errno(*home);
            *home = -1;
        }
        /* Entered or not, nobody else may get this one. */
        pl->netns_ready = false;
    }
    pl->netns_wanted = true;
    if (netns_work_locked(pl))
        pthread_cond_signal(&pl->wake);
    pthread_mutex_unlock(&pl->lock);
    return entered;
}

void sbx_pool_hold(sbx_pool *pl)
{
    if (!pl)
        return;
    pthread_mutex_lock(&pl->lock);
    pl->held++;
    pthread_mutex_unlock(&pl->lock);
}

void sbx_pool_unhold(sbx_pool *pl)
{
    if (!pl)
        return;
    pthread_mutex_lock(&pl->lock);
    pl->held--;
    if (netns_work_locked(pl) || cg_work_locked(pl))
        pthread_cond_signal(&pl->wake);
    pthread_mutex_unlock(&pl->lock);
}

int sbx_pool_leave_netns(int home)
{
    int r = setns(home, CLONE_NEWNET) < 0 ? sbx_neg_errno() : 0;
    close(home);
    return r;
}

int sbx_pool_wait_ready(sbx_pool *pl, const struct timespec *deadline)
{
    if (!pl)
        return 0;
    int r = 0;
    pthread_mutex_lock(&pl->lock);
    pl->netns_wanted = true;
    pthread_cond_signal(&pl->wake);
    while (!pl->stopping && (pl->stepping || netns_work_locked(pl) || cg_work_locked(pl) ||
                             removal_work_locked(pl))) {
        if (!deadline) {
            pthread_cond_wait(&pl->ready, &pl->lock);
        } else if (pthread_cond_timedwait(&pl->ready, &pl->lock, deadline) == ETIMEDOUT) {
            r = -ETIMEDOUT;
            break;
        }
    }
    if (r == 0)
        r = pl->netns_ok && pl->netns_ready ? 1 : 0;
    pthread_mutex_unlock(&pl->lock);
    return r;
}

bool sbx_pool_take_cgroup(sbx_pool *pl, uint64_t memory_bytes, uint64_t max_pids, sbx_cgroup *out)
{
    if (!pl)
        return false;
    bool got = false;
    pthread_mutex_lock(&pl->lock);
    if (pl->cg_ready && pl->cg_made_mem == memory_bytes && pl->cg_made_pids == max_pids) {
        *out = pl->cg;
        got = true;
        pl->cg_ready = false;
    } else if (pl->cg_ready && push_discard_locked(pl, &pl->cg)) {
        /* Made for other limits: removed, and one with these made next. */
        pl->cg_ready = false;
    }
    pl->cg_mem = memory_bytes;
    pl->cg_pids = max_pids;
    if (pl->n_discard || cg_work_locked(pl))
        pthread_cond_signal(&pl->wake);
    pthread_mutex_unlock(&pl->lock);
    return got;
}

void sbx_pool_want_cgroup(sbx_pool *pl, uint64_t memory_bytes, uint64_t max_pids)
{
    if (!pl)
        return;
    pthread_mutex_lock(&pl->lock);
    pl->cg_wanted = true;
    pl->cg_mem = memory_bytes;
    pl->cg_pids = max_pids;
    if (cg_work_locked(pl))
        pthread_cond_signal(&pl->wake);
    pthread_mutex_unlock(&pl->lock);
}

void sbx_pool_discard_cgroup(sbx_pool *pl, sbx_cgroup *cg)
{
    if (!pl) {
        sbx_cgroup_destroy(cg);
        return;
    }
    pthread_mutex_lock(&pl->lock);
    bool queued = !pl->stopping && push_discard_locked(pl, cg);
    if (queued)
        pthread_cond_signal(&pl->wake);
    pthread_mutex_unlock(&pl->lock);
    if (!queued)
        sbx_cgroup_destroy(cg);
    memset(cg, 0, sizeof *cg);
}

void sbx_pool_defer(sbx_pool *pl, sbx_pool_fn fn, void *a, void *b)
{
    bool queued = false;
    if (pl) {
        pthread_mutex_lock(&pl->lock);
        if (!pl->stopping && pl->n_jobs == pl->cap_jobs) {
            size_t nc = pl->cap_jobs ? pl->cap_jobs * 2 : 8;
            struct pool_job *n = realloc(pl->jobs, nc * sizeof *n);
            if (n) {
                pl->jobs = n;
                pl->cap_jobs = nc;
            }
        }
        queued = !pl->stopping && pl->n_jobs < pl->cap_jobs;
        if (queued) {
            /* Run last in, first out: independent releases. */
            pl->jobs[pl->n_jobs++] = (struct pool_job){ fn, a, b };
            pthread_cond_signal(&pl->wake);
        }
        pthread_mutex_unlock(&pl->lock);
    }
    if (!queued)
        fn(a, b);
}
