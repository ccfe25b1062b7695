/* sbx — the broker side of the cross-call IPC: a pool of threads, each
 * waiting on up to 127 channels' ping words at once (futex_waitv), serving
 * requests for any number of per-target servers.
 *
 * Threat model: the target can write anything into its section at any time,
 * control and futex words included. A pool thread therefore:
 *   - takes a moved ping word as a request, whatever the channel's other
 *     words say (it never reads the client's lock word: a lying target
 *     only gets its own garbage served or rejected);
 *   - copies the request out (sbx_ipc_wire_copy_in) before looking at it and
 *     validates only the private copy; never follows a pointer from it;
 *   - writes into the section only the reply area and, after success, the
 *     in/out buffers at offsets it validated on its copy;
 *   - never waits for the target: the fd socket is written with
 *     MSG_DONTWAIT, and no wait depends on a value the target controls
 *     (a futex word that changes only makes the wait return).
 * A hostile target can at worst make its own calls fail and keep one pool
 * thread busy by flipping its ping words; it cannot block other targets'
 * channels served by other threads nor crash the broker. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/fd.h"
#include "base/log.h"
#include "ipc/dispatcher.h"
#include "ipc/futex.h"
#include "ipc/section.h"
#include "ipc/wire.h"

#define WATCH_MAX (SBX_FUTEX_WAITV_MAX - 1) /* one slot is the thread's own kick word */
#define DEFAULT_SPIN_NS 30000u
#define FALLBACK_POLL_NS 1000000u /* fallback: poll other sections every 1 ms */
#define SPIN_CLOCK_EVERY 16u

typedef struct watch {
    sbx_ipc_server *srv;
    unsigned ch;
    sbx_ipc_control *ctl;
    sbx_ipc_chan_head *head; /* ping and cli_cpu, in the request's line */
    uint32_t last_ping;
} watch;

typedef struct pool_thread {
    sbx_ipc_pool *pool;
    pthread_t tid;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint32_t gen;      /* kick word (private futex) */
    atomic_uint park_req;
    bool parked;               /* under mu */
    bool stop;                 /* set while parked */
    watch *w;                  /* owned by the thread; changed only while parked */
    unsigned n;
    _Atomic(_Atomic uint32_t *) sleep_word; /* fallback: doorbell being waited on */
    uint32_t cpu1;
} pool_thread;

struct sbx_ipc_pool {
    unsigned nthreads;
    pool_thread *t;
    bool waitv;
    uint64_t spin_ns;
    pthread_mutex_t mu; /* serialises server add/remove */
    unsigned next;
};

struct sbx_ipc_server {
    sbx_ipc_pool *pool;
    sbx_ipc_section *section;
    sbx_ipc_dispatcher *d;
    void *target_ctx;
    int sock;
    uint8_t *scratch; /* one private copy buffer per channel */
    atomic_uint_fast64_t calls;
    atomic_uint_fast64_t rejected;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t my_cpu1(void)
{
    int cpu = sched_getcpu();
    return cpu < 0 ? 0 : (uint32_t)cpu + 1;
}

static sbx_ipc_chan_head *chan_head(const sbx_ipc_section *sec, unsigned ch)
{
    const sbx_ipc_layout *l = &sec->layout;
    return (sbx_ipc_chan_head *)((uint8_t *)sec->base + l->buffers_offset +
                                 (size_t)ch * l->channel_size);
}

/* Wake a pool thread wherever it sleeps (see thread_sleep for the order). */
static void kick(pool_thread *t)
{
    atomic_fetch_add(&t->gen, 1);
    sbx_futex_wake(&t->gen, 1, 1);
    _Atomic uint32_t *sw = atomic_load(&t->sleep_word);
    if (sw) {
        atomic_fetch_add(sw, 1);
        sbx_futex_wake(sw, INT_MAX, 0);
    }
}

/* Stop thread t at the top of its loop and return with t->mu held; the
 * caller may then change t->w / t->n / t->stop. */
static void park(pool_thread *t)
{
    pthread_mutex_lock(&t->mu);
    atomic_fetch_add(&t->park_req, 1);
    kick(t);
    while (!t->parked)
        pthread_cond_wait(&t->cv, &t->mu);
}

static void unpark(pool_thread *t)
{
    atomic_fetch_sub(&t->park_req, 1);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void parked_wait(pool_thread *t)
{
    pthread_mutex_lock(&t->mu);
    t->parked = true;
    pthread_cond_broadcast(&t->cv);
    while (atomic_load(&t->park_req))
        pthread_cond_wait(&t->cv, &t->mu);
    t->parked = false;
    pthread_mutex_unlock(&t->mu);
}

static int send_fd(sbx_ipc_server *s, unsigned ch, uint32_t seq, uint32_t flags, int fd)
{
    sbx_ipc_fdmsg msg = { SBX_IPC_FDMSG_MAGIC, ch, seq, flags & SBX_WIRE_F_FD_CLOEXEC };
    /* Never block on the target: a target that does not collect its fds
     * fills its own queue and then gets errors, nothing more. */
    return sbx_send_fds(s->sock, &msg, sizeof msg, &fd, 1, MSG_DONTWAIT);
}

/* Serve one ping on w. What the target controls: the whole channel buffer
 * and every control word. Checked: the private copy by
 * sbx_ipc_wire_decode (count, types, offsets, sizes, alignment, strings)
 * and the tag's exact signature by sbx_ipc_dispatch before the handler
 * runs. Safe because nothing is read from shared memory after the copy
 * (cli_cpu, read once, only picks spinning or yielding), and the writes
 * go to the reply line and to in/out ranges validated on the copy, all
 * inside this channel. Returns true when the request's client runs on
 * another CPU (worth spinning for its next request). */
static bool serve(pool_thread *t, watch *w)
{
    sbx_ipc_server *s = w->srv;
    sbx_ipc_control *ctl = w->ctl;
    /* srv_cpu is kept current by thread_sleep; writing it here again would
     * pull the reply line away from a spinning client for nothing. */
    if (atomic_load_explicit(&ctl->srv_cpu, memory_order_relaxed) != t->cpu1)
        atomic_store_explicit(&ctl->srv_cpu, t->cpu1, memory_order_relaxed);
    uint32_t cc = atomic_load_explicit(&w->head->cli_cpu, memory_order_relaxed);
    size_t cap = s->section->layout.channel_size - SBX_IPC_CHAN_HEAD;
    uint8_t *shm = (uint8_t *)w->head + SBX_IPC_CHAN_HEAD;
    uint8_t *copy = s->scratch + (size_t)w->ch * s->section->layout.channel_size;

    sbx_ipc_request req;
    sbx_ipc_info info = { .fd = -1, .target_ctx = s->target_ctx };
    size_t len = sbx_ipc_wire_copy_in(copy, shm, cap);
    int outcome;
    if (!len || sbx_ipc_wire_decode(copy, len, &req) < 0) {
        outcome = SBX_ERROR_INVALID_IPC;
        info.status = EBADMSG; /* malformed: the wire checks failed */
        memset(&req, 0, sizeof req);
    } else {
        outcome = sbx_ipc_dispatch(s->d, &req, &info);
    }

    uint32_t rflags = 0;
    if (outcome >= 0) {
        for (uint32_t i = 0; i < req.count; i++)
            if (req.args[i].type == SBX_ARG_INOUT && req.args[i].v.buf.size)
                memcpy(shm + req.offset[i], copy + req.offset[i], req.args[i].v.buf.size);
    }
    if (info.fd >= 0 && outcome >= 0) {
        /* Queued before pong, so the client never sleeps on it. */
        int r = send_fd(s, w->ch, req.seq, req.flags, info.fd);
        if (r == 0)
            rflags |= SBX_WIRE_RF_FD;
        else
            outcome = r;
    }
    ctl->rep_outcome = outcome;
    ctl->rep_status = info.status;
    ctl->rep_flags = rflags;
    for (unsigned i = 0; i < SBX_IPC_EXT_COUNT; i++)
        ctl->rep_ext[i] = info.ext[i];

    /* Counted before pong: a caller that got its answer sees its call. */
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
    if (outcome == SBX_ERROR_INVALID_IPC)
        atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    atomic_fetch_add(&ctl->pong, 1); /* seq_cst: before the cli_wait load */
    if (atomic_load(&ctl->cli_wait))
        sbx_futex_wake(&ctl->pong, INT_MAX, 0);
    /* Our copy of a sent fd is closed only now, off the client's path: the
     * message in flight holds its own reference. */
    if (info.fd >= 0)
        sbx_close_keep_errno(info.fd);
    return cc != 0 && cc != t->cpu1;
}

static void set_sleep_all(pool_thread *t, uint32_t v)
{
    for (unsigned i = 0; i < t->n; i++) {
        atomic_store(&t->w[i].ctl->srv_sleep, v);
        if (v == SBX_SRV_AWAKE)
            atomic_store_explicit(&t->w[i].ctl->srv_cpu, t->cpu1, memory_order_relaxed);
    }
}

static bool pings_moved(pool_thread *t)
{
    for (unsigned i = 0; i < t->n; i++)
        if (atomic_load(&t->w[i].head->ping) != t->w[i].last_ping)
            return true;
    return false;
}

/* Sleep until a ping word moves or the thread is kicked. Order: announce
 * the sleep in every watched control (seq_cst), re-check the pings, read
 * the kick word, check for a park request, then wait with the values seen:
 * a client that missed our announcement bumped its ping before we
 * re-checked; one that saw it wakes us; a kick after our check changes the
 * kick word and so fails the wait. */
static void thread_sleep(pool_thread *t, struct futex_waitv *wv)
{
    sbx_ipc_pool *p = t->pool;
    set_sleep_all(t, p->waitv ? SBX_SRV_WAITV : SBX_SRV_DOORBELL);
    uint32_t g = atomic_load(&t->gen);
    if (!pings_moved(t) && !atomic_load(&t->park_req)) {
        if (t->n == 0) {
            sbx_futex_wait(&t->gen, g, 0, 1);
        } else if (p->waitv) {
            wv[0] = (struct futex_waitv){ .val = g, .uaddr = (uintptr_t)&t->gen,
                                          .flags = FUTEX_32 | FUTEX_PRIVATE_FLAG };
            for (unsigned i = 0; i < t->n; i++)
                wv[i + 1] = (struct futex_waitv){ .val = t->w[i].last_ping,
                                                  .uaddr = (uintptr_t)&t->w[i].head->ping,
                                                  .flags = FUTEX_32 };
            sbx_futex_waitv(wv, t->n + 1, NULL);
        } else {
            /* Fallback without futex_waitv: wait on the section doorbell of
             * the first watched channel; if the thread also serves other
             * sections, wake up every FALLBACK_POLL_NS to look at them. */
            sbx_ipc_header *h = t->w[0].srv->section->base;
            bool several = false;
            for (unsigned i = 1; i < t->n; i++)
                several |= t->w[i].srv != t->w[0].srv;
            atomic_store(&t->sleep_word, &h->doorbell);
            uint32_t v = atomic_load(&h->doorbell);
            if (!atomic_load(&t->park_req) && !pings_moved(t))
                sbx_futex_wait(&h->doorbell, v, several ? FALLBACK_POLL_NS : 0, 0);
            atomic_store(&t->sleep_word, NULL);
        }
    }
    t->cpu1 = my_cpu1();
    set_sleep_all(t, SBX_SRV_AWAKE);
}

static void *thread_main(void *arg)
{
    pool_thread *t = arg;
    struct futex_waitv wv[SBX_FUTEX_WAITV_MAX];
    uint64_t last_work = 0;
    bool spin_ok = false;
    unsigned start = 0, spins = 0;
    t->cpu1 = my_cpu1();
    for (;;) {
        if (atomic_load(&t->park_req)) {
            parked_wait(t);
            if (t->stop)
                break;
            set_sleep_all(t, SBX_SRV_AWAKE);
        }
        unsigned served = 0;
        bool remote = false;
        /* No division per channel: a `%` by t->n (a 32-bit divide, ~25
         * cycles) cost more than the load it indexed, and half a scan is
         * added to every request's latency on average. */
        unsigned n = t->n;
        if (start >= n)
            start = 0;
        for (unsigned k = 0, i = start; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
            watch *w = &t->w[i];
            uint32_t pv = atomic_load_explicit(&w->head->ping, memory_order_acquire);
            if (pv == w->last_ping)
                continue;
            w->last_ping = pv;
            served++;
            remote |= serve(t, w);
        }
        start++;
        if (served) {
            last_work = now_ns();
            spins = 0;
            spin_ok = remote;
            /* The client shares our CPU: give it the CPU once (it may be
             * about to send its next request) instead of spinning against
             * it; if it has nothing to do, yield returns at once and we
             * go to sleep on the next round. */
            if (!remote)
                sched_yield();
            continue;
        }
        /* Spin for the next request only while its client runs on another
         * CPU; on a shared CPU spinning would starve the very client. */
        /* The clock is read every SPIN_CLOCK_EVERY scans: a vDSO clock read
         * costs as much as a scan (more in a VM) and was half the spin. */
        if (spin_ok && (++spins % SPIN_CLOCK_EVERY || now_ns() - last_work < t->pool->spin_ns)) {
            /* one pause per scan: a pause is ~140 cycles on recent x86,
             * and every one of them is added to the next request's latency */
            sbx_cpu_relax();
            continue;
        }
        spin_ok = false;
        thread_sleep(t, wv);
        t->cpu1 = my_cpu1();
    }
    return NULL;
}

int sbx_ipc_pool_new(const sbx_ipc_pool_options *opt, sbx_ipc_pool **out)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = opt && opt->threads ? opt->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (n > 256)
        return -EINVAL;
    sbx_ipc_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->nthreads = n;
    p->spin_ns = opt && opt->spin_ns ? opt->spin_ns : DEFAULT_SPIN_NS;
    /* futex_waitv exists when an empty call fails with EINVAL, not ENOSYS. */
    p->waitv = !(opt && opt->force_fallback) && sbx_futex_waitv(NULL, 0, NULL) != -ENOSYS;
    pthread_mutex_init(&p->mu, NULL);
    p->t = calloc(n, sizeof *p->t);
    if (!p->t) {
        free(p);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        pool_thread *t = &p->t[i];
        t->pool = p;
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        t->w = calloc(WATCH_MAX, sizeof *t->w);
        int r = t->w ? pthread_create(&t->tid, NULL, thread_main, t) : ENOMEM;
        if (r) {
            sbx_ipc_pool_free(p);
            return -r;
        }
        t->started = true;
    }
    *out = p;
    return 0;
}

void sbx_ipc_pool_free(sbx_ipc_pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->nthreads; i++) {
        pool_thread *t = &p->t[i];
        if (t->started) {
            park(t);
            t->stop = true;
            unpark(t);
            pthread_join(t->tid, NULL);
        }
        free(t->w);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
    }
    free(p->t);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int sbx_ipc_pool_uses_waitv(const sbx_ipc_pool *p)
{
    return p->waitv;
}

/* Throw away anything the target queued on the socket before we shut our
 * reading side (fds included: they are closed, not leaked). */
static void drain_socket(int sock)
{
    for (;;) {
        char data[64];
        union {
            char buf[CMSG_SPACE(64 * sizeof(int))];
            struct cmsghdr align;
        } cbuf;
        struct iovec iov = { data, sizeof data };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                             .msg_controllen = sizeof cbuf.buf };
        ssize_t r = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t k = 0; k < nfd; k++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof fd);
                close(fd);
            }
        }
    }
}

int sbx_ipc_server_new(sbx_ipc_pool *pool, sbx_ipc_section *section, int fd_socket,
                       sbx_ipc_dispatcher *dispatcher, void *target_ctx, sbx_ipc_server **out)
{
    SBX_AUTOCLOSE int sock = fd_socket;
    if (!pool || !section || !dispatcher || sock < 0)
        return -EINVAL;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
        return sbx_neg_errno();
    if (type != SOCK_SEQPACKET)
        return -EINVAL;
    /* The target has nothing to tell us on this socket: shutting our read
     * side makes its sends fail (EPIPE), so it cannot park fds in our queue. */
    if (shutdown(sock, SHUT_RD) < 0)
        return sbx_neg_errno();
    drain_socket(sock);

    const sbx_ipc_layout *l = &section->layout;
    sbx_ipc_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->scratch = aligned_alloc(64, (size_t)l->channel_count * l->channel_size);
    if (!s->scratch) {
        free(s);
        return -ENOMEM;
    }
    s->pool = pool;
    s->section = section;
    s->d = dispatcher;
    s->target_ctx = target_ctx;
    sbx_ipc_dispatcher_freeze(dispatcher);

    pthread_mutex_lock(&pool->mu);
    unsigned free_slots = 0;
    for (unsigned i = 0; i < pool->nthreads; i++)
        free_slots += WATCH_MAX - pool->t[i].n; /* n only changes under pool->mu */
    if (free_slots < l->channel_count) {
        pthread_mutex_unlock(&pool->mu);
        free(s->scratch);
        free(s);
        return SBX_ERROR_NO_SPACE;
    }
    /* Spread the channels round-robin over the threads; park each thread
     * once to hand it its share. */
    unsigned *owner = calloc(l->channel_count, sizeof *owner);
    if (!owner) {
        pthread_mutex_unlock(&pool->mu);
        free(s->scratch);
        free(s);
        return -ENOMEM;
    }
    unsigned pending[256] = { 0 };
    for (unsigned ch = 0; ch < l->channel_count; ch++) {
        unsigned ti;
        do
            ti = pool->next++ % pool->nthreads;
        while (pool->t[ti].n + pending[ti] >= WATCH_MAX);
        owner[ch] = ti;
        pending[ti]++;
    }
    sbx_ipc_control *ctl = sbx_ipc_controls(section->base);
    for (unsigned ti = 0; ti < pool->nthreads; ti++) {
        if (!pending[ti])
            continue;
        pool_thread *t = &pool->t[ti];
        park(t);
        for (unsigned ch = 0; ch < l->channel_count; ch++) {
            if (owner[ch] != ti)
                continue;
            /* last_ping 0 is the section's initial value: a ping made
             * before the server existed is still seen and served. */
            t->w[t->n++] = (watch){ .srv = s, .ch = ch, .ctl = &ctl[ch],
                                    .head = chan_head(section, ch), .last_ping = 0 };
        }
        unpark(t);
    }
    free(owner);
    pthread_mutex_unlock(&pool->mu);
    s->sock = sbx_steal_fd(&sock);
    *out = s;
    return 0;
}

void sbx_ipc_server_free(sbx_ipc_server *s)
{
    if (!s)
        return;
    sbx_ipc_pool *pool = s->pool;
    pthread_mutex_lock(&pool->mu);
    for (unsigned ti = 0; ti < pool->nthreads; ti++) {
        pool_thread *t = &pool->t[ti];
        bool has = false;
        for (unsigned i = 0; i < t->n && !has; i++)
            has = t->w[i].srv == s;
        if (!has)
            continue;
        /* Parking waits for a handler running for this target to return. */
        park(t);
        unsigned k = 0;
        for (unsigned i = 0; i < t->n; i++)
            if (t->w[i].srv != s)
                t->w[k++] = t->w[i];
        t->n = k;
        unpark(t);
    }
    pthread_mutex_unlock(&pool->mu);
    sbx_close_keep_errno(s->sock);
    free(s->scratch);
    free(s);
}

uint64_t sbx_ipc_server_calls(const sbx_ipc_server *s)
{
    return atomic_load(&s->calls);
}

uint64_t sbx_ipc_server_rejected(const sbx_ipc_server *s)
{
    return atomic_load(&s->rejected);
}
