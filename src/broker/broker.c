/* sbx — the broker object and its events thread (the seed's
 * BrokerServicesBase and TargetEventsThread): an epoll over each target's
 * pidfd (its pid-1 init: when init is reapable, the whole pid namespace is
 * gone) and its cgroup OOM eventfd. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sbx/error.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "broker/broker_internal.h"
#include "broker/runtime.h"

#define KIND_PIDFD 0u
#define KIND_OOM 1u
#define EV_KEY(id, kind) (((id) << 1) | (kind))

static void *events_main(void *arg);

SBX_API int sbx_broker_new(sbx_broker **out)
{
    if (!out)
        return -EINVAL;
    if (*out)
        return SBX_ERROR_ALREADY_INIT;
    sbx_broker *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->cb_lock, NULL);
    pthread_mutex_init(&b->spawn_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->changed, &ca);
    pthread_condattr_destroy(&ca);
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->epfd < 0 || b->wake_fd < 0) {
        int e = sbx_neg_errno();
        b->thread_started = false;
        sbx_broker_free(b);
        return e;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->wake_fd, &ev) < 0) {
        int e = sbx_neg_errno();
        sbx_broker_free(b);
        return e;
    }
    /* The runtime layer is the default: targets get their IPC section,
     * interception and policy adapter (src/broker/runtime.c). */
    int r = sbx_runtime_new(b, &b->runtime, &b->hooks);
    if (r < 0) {
        sbx_broker_free(b);
        return r;
    }
    if ((r = sbx_pool_new(&b->pool)) < 0) {
        sbx_broker_free(b);
        return r;
    }
    r = pthread_create(&b->thread, NULL, events_main, b);
    if (r != 0) {
        sbx_broker_free(b);
        return -r;
    }
    b->thread_started = true;
    *out = b;
    return 0;
}

SBX_API int sbx_broker_set_event_callback(sbx_broker *b, sbx_event_fn fn, void *ud)
{
    if (!b)
        return -EINVAL;
    pthread_mutex_lock(&b->cb_lock);
    b->cb = fn;
    b->cb_ud = ud;
    pthread_mutex_unlock(&b->cb_lock);
    return 0;
}

int sbx_broker_set_hooks(sbx_broker *b, const sbx_broker_hooks *hooks)
{
    if (!b)
        return -EINVAL;
    pthread_mutex_lock(&b->lock);
    if (hooks)
        b->hooks = *hooks;
    else
        memset(&b->hooks, 0, sizeof b->hooks);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

SBX_API sbx_policy *sbx_broker_create_policy(sbx_broker *b)
{
    if (!b)
        return NULL;
    return sbx_policy_new();
}

void sbx_broker_emit(sbx_broker *b, const sbx_event *ev)
{
    pthread_mutex_lock(&b->cb_lock);
    if (b->cb)
        b->cb(ev, b->cb_ud);
    pthread_mutex_unlock(&b->cb_lock);
}

/* The per-target IPC state (runtime) and the fds. */
static void rec_release(sbx_broker *b, sbx_target_rec *rec)
{
    if (rec->released)
        return;
    rec->released = true;
    if (b->hooks.on_target_exit)
        b->hooks.on_target_exit(b->hooks.userdata, rec->id);
    sbx_close_keep_errno(rec->pidfd);
    sbx_close_keep_errno(rec->sync_fd);
    sbx_close_keep_errno(rec->oom_efd);
    rec->pidfd = rec->sync_fd = rec->oom_efd = -1;
}

void sbx_target_rec_free(sbx_broker *b, sbx_target_rec *rec)
{
    if (!rec)
        return;
    rec_release(b, rec);
    sbx_cgroup_destroy(&rec->cg);
    sbx_close_keep_errno(rec->mntns_fd);
    sbx_close_keep_errno(rec->pidfd);
    sbx_close_keep_errno(rec->sync_fd);
    sbx_close_keep_errno(rec->oom_efd);
    sbx_policy_unref(rec->policy);
    free(rec);
}

#ifndef PIDFD_GET_MNT_NAMESPACE
#define PIDFD_GET_MNT_NAMESPACE _IO(0xFF, 3) /* Linux 6.11 */
#endif

/* A reference to the target's mount namespace, so that its last user to
 * exit (init) does not tear down the view's mounts before its pidfd
 * becomes readable: the pool thread drops it once the end is reported
 * (the target's release, sbx_pool_defer). -1 when it cannot be had (the
 * program, and so init, already ended; no access): init tears it down,
 * as before. */
static int hold_mntns(const sbx_target_rec *rec)
{
    int fd = ioctl(rec->pidfd, PIDFD_GET_MNT_NAMESPACE, 0);
    if (fd >= 0 || (errno != ENOTTY && errno != EINVAL))
        return fd;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)rec->init_pid);
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* sbx_pool_fn: an ended target's release, on the pool thread. */
static void release_job(void *bp, void *recp)
{
    sbx_target_rec_free(bp, recp);
}

int sbx_broker_add_target(sbx_broker *b, sbx_target_rec *rec)
{
    rec->mntns_fd = hold_mntns(rec);
    pthread_mutex_lock(&b->lock);
    if (b->n_targets == b->cap_targets) {
        size_t nc = b->cap_targets ? b->cap_targets * 2 : 16;
        sbx_target_rec **n = realloc(b->targets, nc * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&b->lock);
            syscall(SYS_pidfd_send_signal, rec->pidfd, SIGKILL, NULL, 0);
            siginfo_t si;
            waitid((idtype_t)P_PIDFD, (id_t)rec->pidfd, &si, WEXITED);
            sbx_target_rec_free(b, rec);
            return -ENOMEM;
        }
        b->targets = n;
        b->cap_targets = nc;
    }
    b->targets[b->n_targets++] = rec;
    pthread_mutex_unlock(&b->lock);

    /* STARTED first, then watch (sbx_broker_watch_target): no exit event
     * can overtake it. */
    sbx_event ev = { .type = SBX_EVENT_STARTED, .target_id = rec->id, .pid = rec->pid };
    sbx_broker_emit(b, &ev);
    return 0;
}

void sbx_broker_watch_target(sbx_broker *b, sbx_target_rec *rec)
{
    /* The pidfd is watched last: from that moment the events thread may
     * reap and free rec, so nothing here may touch rec afterwards. */
    uint64_t id = rec->id;
    pid_t pid = rec->pid;
    int pidfd = rec->pidfd;
    struct epoll_event e = { .events = EPOLLIN };
    if (rec->oom_efd >= 0) {
        e.data.u64 = EV_KEY(id, KIND_OOM);
        (void)epoll_ctl(b->epfd, EPOLL_CTL_ADD, rec->oom_efd, &e);
    }
    e.data.u64 = EV_KEY(id, KIND_PIDFD);
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, pidfd, &e) < 0)
        sbx_error("broker: cannot watch target %d: %s", (int)pid, strerror(errno));
}

/* Under b->lock. */
static sbx_target_rec *find_locked(sbx_broker *b, uint64_t id, size_t *idx)
{
    for (size_t i = 0; i < b->n_targets; i++)
        if (b->targets[i]->id == id) {
            if (idx)
                *idx = i;
            return b->targets[i];
        }
    return NULL;
}

/* The init's sync socket carries the program's wait status (init sends
 * it just before exiting). Our own code wrote it, pre-exec; the program
 * never held that socket (close-on-exec). */
static bool read_exit_status(int fd, int *status)
{
    bool got = false;
    for (;;) {
        sbx_sync_msg m;
        ssize_t n = recv(fd, &m, sizeof m, MSG_DONTWAIT);
        if (n != (ssize_t)sizeof m)
            return got;
        if (m.type == SBX_SYNC_EXIT) {
            *status = m.value;
            got = true;
        }
    }
}

static void handle_exit(sbx_broker *b, uint64_t id)
{
    pthread_mutex_lock(&b->lock);
    size_t idx;
    sbx_target_rec *rec = find_locked(b, id, &idx);
    pthread_mutex_unlock(&b->lock);
    if (!rec)
        return;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)rec->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
        return; /* not yet */
    (void)epoll_ctl(b->epfd, EPOLL_CTL_DEL, rec->pidfd, NULL);
    if (rec->oom_efd >= 0)
        (void)epoll_ctl(b->epfd, EPOLL_CTL_DEL, rec->oom_efd, NULL);

    sbx_event ev = { .target_id = rec->id, .pid = rec->pid };
    int st = 0;
    bool got = read_exit_status(rec->sync_fd, &st);
    if (!got && rec->have_exit) {
        st = rec->exit_status;
        got = true;
    }
    if (got) {
        if (WIFEXITED(st)) {
            ev.type = SBX_EVENT_EXITED;
            ev.code = WEXITSTATUS(st);
        } else {
            ev.type = SBX_EVENT_KILLED;
            ev.signal = WTERMSIG(st);
        }
    } else {
        /* init itself was killed (broker kill, OOM killer choosing it). */
        ev.type = SBX_EVENT_KILLED;
        ev.signal = si.si_code == CLD_EXITED ? SIGKILL : si.si_status;
    }
    /* v1: an OOM kill in the cgroup signals its oom_control eventfd
     * first; with none reported and none pending there was no kill, and
     * the counter need not be read on every exit. */
    bool oom_possible = true;
    if (rec->oom_efd >= 0 && !rec->limit_reported) {
        uint64_t v;
        oom_possible = read(rec->oom_efd, &v, sizeof v) == (ssize_t)sizeof v;
    }
    bool oom = oom_possible && sbx_cgroup_oom_kills(&rec->cg) > 0;
    ev.memory_limit = oom;
    /* The namespace is empty: no denial is pending any more. */
    ev.denied_unreported = sbx_runtime_denials_unreported(b->runtime, rec->id);
    if (oom && !rec->limit_reported) {
        sbx_event lim = { .type = SBX_EVENT_LIMIT, .target_id = rec->id, .pid = rec->pid,
                          .limit = SBX_LIMIT_MEMORY };
        sbx_broker_emit(b, &lim);
    }
    if (ev.type == SBX_EVENT_KILLED && ev.signal == SIGXCPU) {
        sbx_event lim = { .type = SBX_EVENT_LIMIT, .target_id = rec->id, .pid = rec->pid,
                          .limit = SBX_LIMIT_CPU_SECONDS };
        sbx_broker_emit(b, &lim);
    }
    if (ev.type == SBX_EVENT_KILLED && ev.signal == SIGSYS) {
        sbx_event v = { .type = SBX_EVENT_VIOLATION, .target_id = rec->id, .pid = rec->pid,
                        .signal = SIGSYS };
        sbx_broker_emit(b, &v);
    }
    /* Inactive before the callback hears of it, counted until after. */
    pthread_mutex_lock(&b->lock);
    rec->pid = -rec->pid;
    rec->init_pid = -rec->init_pid;
    pthread_mutex_unlock(&b->lock);
    sbx_broker_emit(b, &ev);
    /* Gone: wait_all may return. What the target leaves (its per-target
     * IPC state, fds, cgroup, mount namespace) is released on the pool
     * thread: before the wake-up it delayed wait_all (~0.08 ms of IPC
     * hand-shake and munmap), after it on this thread it kept the woken
     * waiter off this CPU (rmdir, unmounts). Nothing can use it meanwhile:
     * no process of the target is left. */
    pthread_mutex_lock(&b->lock);
    if (find_locked(b, id, &idx))
        b->targets[idx] = b->targets[--b->n_targets];
    b->handing_off = true;
    pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->lock);
    sbx_pool_defer(b->pool, release_job, b, rec);
    pthread_mutex_lock(&b->lock);
    b->handing_off = false;
    pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->lock);
}

static void handle_oom(sbx_broker *b, uint64_t id)
{
    pthread_mutex_lock(&b->lock);
    sbx_target_rec *rec = find_locked(b, id, NULL);
    bool fire = false;
    pid_t pid = 0;
    if (rec && rec->oom_efd >= 0) {
        uint64_t v;
        if (read(rec->oom_efd, &v, sizeof v) == (ssize_t)sizeof v && !rec->limit_reported) {
            rec->limit_reported = true;
            fire = true;
            pid = rec->pid;
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (fire) {
        sbx_event lim = { .type = SBX_EVENT_LIMIT, .target_id = id, .pid = pid,
                          .limit = SBX_LIMIT_MEMORY };
        sbx_broker_emit(b, &lim);
    }
}

static void *events_main(void *arg)
{
    sbx_broker *b = arg;
    for (;;) {
        struct epoll_event evs[16];
        int n = epoll_wait(b->epfd, evs, 16, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sbx_error("broker events: epoll_wait: %s", strerror(errno));
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            uint64_t key = evs[i].data.u64;
            if (key == 0) {
                pthread_mutex_lock(&b->lock);
                bool stop = b->stopping;
                pthread_mutex_unlock(&b->lock);
                if (stop)
                    return NULL;
                continue;
            }
            if ((key & 1u) == KIND_OOM)
                handle_oom(b, key >> 1);
            else
                handle_exit(b, key >> 1);
        }
    }
}

SBX_API void sbx_broker_free(sbx_broker *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    pthread_mutex_unlock(&b->lock);
    if (b->thread_started) {
        uint64_t one = 1;
        (void)!write(b->wake_fd, &one, sizeof one);
        pthread_join(b->thread, NULL);
    }
    pthread_mutex_lock(&b->cb_lock);
    b->cb = NULL;
    pthread_mutex_unlock(&b->cb_lock);
    /* Kill what is left: init's death takes its pid namespace along. */
    for (size_t i = 0; i < b->n_targets; i++) {
        sbx_target_rec *rec = b->targets[i];
        syscall(SYS_pidfd_send_signal, rec->pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        while (waitid((idtype_t)P_PIDFD, (id_t)rec->pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
        sbx_target_rec_free(b, rec);
    }
    free(b->targets);
    sbx_pool_free(b->pool);
    sbx_runtime_free(b->runtime);
    sbx_cgroup_remove_broker_dirs();
    for (int k = 0; k < 2; k++)
        sbx_bpf_free(&b->baseline[k]);
    sbx_bpf_free(&b->nochildren);
    sbx_close_keep_errno(b->epfd);
    sbx_close_keep_errno(b->wake_fd);
    pthread_cond_destroy(&b->changed);
    pthread_mutex_destroy(&b->lock);
    pthread_mutex_destroy(&b->cb_lock);
    pthread_mutex_destroy(&b->spawn_lock);
    free(b);
}

SBX_API int sbx_broker_wait_all(sbx_broker *b, int timeout_ms)
{
    if (!b)
        return -EINVAL;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    int r = 0;
    pthread_mutex_lock(&b->lock);
    while (b->n_targets > 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&b->changed, &b->lock);
        } else if (pthread_cond_timedwait(&b->changed, &b->lock, &dl) == ETIMEDOUT) {
            r = b->n_targets > 0 ? SBX_ERROR_TIMEOUT : 0;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return r;
}

int sbx_broker_wait_quiescent(sbx_broker *b)
{
    int r = sbx_broker_wait_all(b, -1);
    if (r < 0)
        return r;
    pthread_mutex_lock(&b->lock);
    while (b->handing_off)
        pthread_cond_wait(&b->changed, &b->lock);
    pthread_mutex_unlock(&b->lock);
    r = sbx_pool_wait_ready(b->pool, NULL);
    return r < 0 ? r : 0;
}

SBX_API bool sbx_broker_is_active_target(sbx_broker *b, pid_t pid)
{
    if (!b || pid <= 0)
        return false;
    bool found = false;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n_targets && !found; i++)
        found = b->targets[i]->pid == pid || b->targets[i]->init_pid == pid;
    pthread_mutex_unlock(&b->lock);
    return found;
}

SBX_API unsigned sbx_broker_active_count(sbx_broker *b)
{
    if (!b)
        return 0;
    unsigned n = 0;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n_targets; i++)
        n += b->targets[i]->pid > 0;
    pthread_mutex_unlock(&b->lock);
    return n;
}

SBX_API int sbx_broker_kill(sbx_broker *b, uint64_t id, int sig)
{
    if (!b)
        return -EINVAL;
    pthread_mutex_lock(&b->lock);
    sbx_target_rec *rec = find_locked(b, id, NULL);
    int r = SBX_ERROR_NOT_FOUND;
    if (rec && rec->pid > 0) {
        /* SIGKILL goes to init (the namespace goes with it); other signals
         * to the program, via the init's pidfd-stable pid. */
        if (sig == SIGKILL)
            r = syscall(SYS_pidfd_send_signal, rec->pidfd, SIGKILL, NULL, 0) < 0 ? sbx_neg_errno() : 0;
        else
            r = kill(rec->pid, sig) < 0 ? sbx_neg_errno() : 0;
    }
    pthread_mutex_unlock(&b->lock);
    return r;
}
