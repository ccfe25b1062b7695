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
    bool netns_wanted;     /* a spawn asked: keep the next one ready */
    bool netns_ok;         /* the broker may make network namespaces */
    bool netns_ready;      /* the thread lives in a fresh one nobody entered */
};

static void *pool_main(void *arg)
{
    sbx_pool *pl = arg;
    pthread_mutex_lock(&pl->lock);
    pl->tid = (pid_t)syscall(SYS_gettid);
    pthread_cond_broadcast(&pl->ready);
    for (;;) {
        while (!pl->stopping && !(pl->netns_wanted && pl->netns_ok && !pl->netns_ready))
            pthread_cond_wait(&pl->wake, &pl->lock);
        if (pl->stopping)
            break;
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
        pthread_cond_broadcast(&pl->ready);
    }
    pthread_mutex_unlock(&pl->lock);
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
    if (pl->netns_ok && !pl->netns_ready)
        pthread_cond_signal(&pl->wake);
    pthread_mutex_unlock(&pl->lock);
    return entered;
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
    while (!pl->stopping && pl->netns_ok && !pl->netns_ready) {
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
