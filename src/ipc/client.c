/* sbx — the target side of the cross-call IPC.
 *
 * Everything reachable from sbx_ipc_client_call is async-signal-safe: raw
 * syscalls (futex, poll, recvmsg, fcntl, close, clock_gettime, getcpu),
 * atomics on the shared mapping and on memory allocated at client_new.
 * No malloc, no locks, no stdio; errno is saved and restored. */
#include "ipc/client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "ipc/futex.h"
#include "ipc/wire.h"

/* How long a waiting client spins before it sleeps, at most (and only while
 * the broker is known to be awake on another CPU). */
#define CLIENT_SPIN_NS 50000u

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

static size_t page_round(size_t v)
{
    return (v + SBX_IPC_PAGE - 1) / SBX_IPC_PAGE * SBX_IPC_PAGE;
}

int sbx_ipc_client_new(int section_fd, int socket_fd, sbx_ipc_client **out)
{
    SBX_AUTOCLOSE int sock = socket_fd;
    struct stat st;
    if (fstat(section_fd, &st) < 0)
        return sbx_neg_errno();
    if (st.st_size < (off_t)SBX_IPC_PAGE)
        return SBX_ERROR_BAD_SECTION;
    /* The broker sealed the size; refuse a section that could shrink under
     * us (SIGBUS in the target). */
    int seals = fcntl(section_fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return SBX_ERROR_BAD_SECTION;
    void *hdr = mmap(NULL, SBX_IPC_PAGE, PROT_READ, MAP_SHARED, section_fd, 0);
    if (hdr == MAP_FAILED)
        return sbx_neg_errno();
    sbx_ipc_layout l;
    int r = sbx_ipc_layout_check(hdr, (size_t)st.st_size, &l);
    size_t used = ((const sbx_ipc_header *)hdr)->policy_used;
    munmap(hdr, SBX_IPC_PAGE);
    if (r < 0)
        return r;
    if (used > l.policy_size)
        return SBX_ERROR_BAD_SECTION;

    sbx_ipc_client *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->mailbox = calloc(l.channel_count, sizeof *c->mailbox);
    c->map_size = page_round(l.ipc_size);
    c->base = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, section_fd, 0);
    if (l.policy_size) {
        c->policy_map_size = page_round(l.policy_size);
        void *p = mmap(NULL, c->policy_map_size, PROT_READ, MAP_SHARED, section_fd,
                       (off_t)l.policy_offset);
        c->policy = p == MAP_FAILED ? NULL : p;
    }
    if (!c->mailbox || c->base == MAP_FAILED || (l.policy_size && !c->policy)) {
        r = c->base == MAP_FAILED || (l.policy_size && !c->policy) ? sbx_neg_errno() : -ENOMEM;
        if (c->base == MAP_FAILED)
            c->base = NULL;
        c->sock = -1;
        sbx_ipc_client_free(c);
        return r;
    }
    c->layout = l;
    c->policy_used = used;
    c->timeout_ms = 1000;
    c->sock = sbx_steal_fd(&sock);
    *out = c;
    return 0;
}

/* One fd number from the environment (the target's own: hostile to
 * nobody but itself). */
static int env_fd(const char *name, int *fd)
{
    const char *v = getenv(name);
    if (!v)
        return SBX_ERROR_NOT_FOUND;
    char *end;
    errno = 0;
    long a = strtol(v, &end, 10);
    if (end == v || *end || a < 0 || a > INT_MAX || errno)
        return -EINVAL;
    *fd = (int)a;
    return 0;
}

int sbx_ipc_client_from_env(sbx_ipc_client **out)
{
    int sec, sock;
    int r = env_fd(SBX_IPC_ENV_SECTION, &sec);
    if (r < 0)
        return r;
    if ((r = env_fd(SBX_IPC_ENV_SOCKET, &sock)) < 0)
        return r;
    return sbx_ipc_client_new(sec, sock, out);
}

void sbx_ipc_client_free(sbx_ipc_client *c)
{
    if (!c)
        return;
    if (c->mailbox) {
        for (uint32_t i = 0; i < c->layout.channel_count; i++) {
            uint64_t m = atomic_load(&c->mailbox[i]);
            if (m & 0xffffffffu)
                sbx_close_keep_errno((int)(m & 0xffffffffu) - 1);
        }
        free(c->mailbox);
    }
    if (c->base)
        munmap(c->base, c->map_size);
    if (c->policy)
        munmap(c->policy, c->policy_map_size);
    sbx_close_keep_errno(c->sock);
    free(c);
}

unsigned sbx_ipc_client_channel_count(const sbx_ipc_client *c)
{
    return c->layout.channel_count;
}

void sbx_ipc_client_set_timeout_ms(sbx_ipc_client *c, unsigned ms)
{
    c->timeout_ms = ms ? ms : 1;
}

int sbx_ipc_client_policy(const sbx_ipc_client *c, const void **data, size_t *size)
{
    *data = c->policy;
    *size = c->policy_used;
    return 0;
}

/* The broker is alive as long as its end of the socket is open: when the
 * broker process dies (or frees our server) the kernel hangs our end up. */
static bool broker_alive(sbx_ipc_client *c)
{
    if (atomic_load_explicit(&c->dead, memory_order_relaxed))
        return false;
    struct pollfd p = { .fd = c->sock, .events = 0 };
    int saved = errno;
    int r = poll(&p, 1, 0);
    errno = saved;
    if (r < 0 || (r > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))) {
        atomic_store(&c->dead, true);
        return false;
    }
    return true;
}

static uint64_t timeout_ns(const sbx_ipc_client *c)
{
    return (uint64_t)c->timeout_ms * 1000000u;
}

/* Lock a free channel. Each call starts its scan one channel further (a
 * fetch_add, so that concurrent callers start apart: a plain "last + 1"
 * hint made two threads race for the same lock word and cost a third of
 * the 2-thread throughput); the scan itself wraps without a division. */
int sbx_ipc_client_get_buffer(sbx_ipc_client *c)
{
    int saved = errno;
    sbx_ipc_header *h = (sbx_ipc_header *)c->base;
    sbx_ipc_control *ctl = sbx_ipc_controls(c->base);
    uint32_t n = c->layout.channel_count;
    for (;;) {
        if (atomic_load_explicit(&c->dead, memory_order_relaxed)) {
            errno = saved;
            return SBX_ERROR_CHANNEL_ERROR;
        }
        uint32_t i = atomic_fetch_add_explicit(&c->rr, 1, memory_order_relaxed) % n;
        for (uint32_t k = 0; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
            uint32_t want = SBX_CH_FREE;
            if (atomic_load_explicit(&ctl[i].state, memory_order_relaxed) == SBX_CH_FREE &&
                atomic_compare_exchange_strong(&ctl[i].state, &want, SBX_CH_BUSY)) {
                errno = saved;
                return (int)i;
            }
        }
        /* Every channel busy: announce a waiter, then look once more
         * (a channel freed before the freer could see us is found here),
         * then sleep until free_seq moves or the timeout passes and check
         * that the broker still lives. free_seq is read after the
         * announcement: a freer that saw us bumps it after that read, so
         * the wait returns at once. */
        atomic_fetch_add(&h->free_waiters, 1);
        uint32_t seen = atomic_load(&h->free_seq);
        bool found = false;
        for (uint32_t k = 0; k < n && !found; k++)
            found = atomic_load(&ctl[k].state) == SBX_CH_FREE;
        int r = found ? 0 : sbx_futex_wait(&h->free_seq, seen, timeout_ns(c), 0);
        atomic_fetch_sub(&h->free_waiters, 1);
        if (r == -ETIMEDOUT && !broker_alive(c)) {
            errno = saved;
            return SBX_ERROR_CHANNEL_ERROR;
        }
    }
}

/* Free a channel: a store in line A (in our cache: the broker never reads
 * it), then free_seq is bumped and woken only if someone waits. The
 * seq_cst store orders the Free before the free_waiters load against the
 * waiter's increment-then-rescan (get_buffer): either it sees Free or we
 * see it waiting. */
void sbx_ipc_client_free_buffer(sbx_ipc_client *c, int channel)
{
    if (channel < 0 || (uint32_t)channel >= c->layout.channel_count)
        return;
    sbx_ipc_header *h = (sbx_ipc_header *)c->base;
    atomic_store(&sbx_ipc_client_control(c, (unsigned)channel)->state, SBX_CH_FREE);
    if (atomic_load(&h->free_waiters)) {
        atomic_fetch_add(&h->free_seq, 1);
        sbx_futex_wake(&h->free_seq, 1, 0);
    }
}

/* Wait until pong moves away from p0. Spin only while the broker thread for
 * this channel is awake on another CPU (spinning against a peer that needs
 * our CPU would cost a scheduler tick); otherwise announce that we sleep
 * and FUTEX_WAIT. Each wait is bounded; after it, the broker's liveness is
 * checked, so a dead broker gives an error and a slow one is waited for. */
static int wait_pong(sbx_ipc_client *c, sbx_ipc_control *ctl, uint32_t p0, uint32_t me)
{
    /* The clock is read every 64 rounds, not on the first: a broker on
     * another CPU usually answers before that, and a vDSO clock read is a
     * sizeable part of a round trip. */
    uint64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&ctl->pong, memory_order_acquire) != p0)
            return 0;
        uint32_t cpu = atomic_load_explicit(&ctl->srv_cpu, memory_order_relaxed);
        if (atomic_load_explicit(&ctl->srv_sleep, memory_order_relaxed) != SBX_SRV_AWAKE ||
            cpu == 0 || cpu == me)
            break;
        if ((i & 63) == 0) {
            uint64_t t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > CLIENT_SPIN_NS)
                break;
        }
        sbx_cpu_relax();
    }
    for (;;) {
        atomic_store(&ctl->cli_wait, 1);
        if (atomic_load(&ctl->pong) != p0)
            break;
        int r = sbx_futex_wait(&ctl->pong, p0, timeout_ns(c), 0);
        if (atomic_load(&ctl->pong) != p0)
            break;
        if (r == -ETIMEDOUT && !broker_alive(c)) {
            atomic_store(&ctl->cli_wait, 0);
            return SBX_ERROR_CHANNEL_ERROR;
        }
    }
    atomic_store(&ctl->cli_wait, 0);
    return 0;
}

static void apply_cloexec(int fd, uint32_t flags)
{
    if (!(flags & SBX_WIRE_F_FD_CLOEXEC)) {
        int saved = errno;
        fcntl(fd, F_SETFD, 0);
        errno = saved;
    }
}

/* Collect the fd the broker queued for (ch, seq) before it signalled pong.
 * Several threads share the socket: a message for another channel is
 * parked in that channel's mailbox; a stale one (an abandoned call) is
 * closed. Fds arrive close-on-exec and lose it if their call asked so. */
static int recv_fd(sbx_ipc_client *c, unsigned ch, uint32_t seq)
{
    uint64_t deadline = 0; /* read only if the fd is not there at once (it is queued before pong) */
    for (;;) {
        uint64_t m = atomic_exchange(&c->mailbox[ch], 0);
        if (m) {
            int fd = (int)(m & 0xffffffffu) - 1;
            if ((uint32_t)(m >> 32) == seq)
                return fd;
            sbx_close_keep_errno(fd);
            continue;
        }
        sbx_ipc_fdmsg msg;
        union {
            char buf[CMSG_SPACE(4 * sizeof(int))];
            struct cmsghdr align;
        } cbuf;
        struct iovec iov = { &msg, sizeof msg };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                             .msg_controllen = sizeof cbuf.buf };
        int saved = errno;
        ssize_t r = recvmsg(c->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        int err = errno;
        errno = saved;
        if (r < 0 && (err == EAGAIN || err == EINTR)) {
            uint64_t t = now_ns();
            if (!deadline)
                deadline = t + timeout_ns(c);
            else if (t > deadline)
                return SBX_ERROR_CHANNEL_ERROR;
            sched_yield();
            continue;
        }
        if (r <= 0)
            return SBX_ERROR_CHANNEL_ERROR;
        int fd = -1;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t k = 0; k < nfd; k++) {
                int x;
                memcpy(&x, CMSG_DATA(cm) + k * sizeof(int), sizeof x);
                if (fd < 0)
                    fd = x;
                else
                    sbx_close_keep_errno(x);
            }
        }
        if (fd < 0)
            continue;
        if ((size_t)r != sizeof msg || msg.magic != SBX_IPC_FDMSG_MAGIC ||
            msg.channel >= c->layout.channel_count) {
            sbx_close_keep_errno(fd);
            continue;
        }
        apply_cloexec(fd, msg.flags);
        if (msg.channel == ch && msg.seq == seq)
            return fd;
        uint64_t old = atomic_exchange(&c->mailbox[msg.channel],
                                       ((uint64_t)msg.seq << 32) | (uint32_t)(fd + 1));
        if (old & 0xffffffffu)
            sbx_close_keep_errno((int)(old & 0xffffffffu) - 1);
    }
}

/* Publish the request written in channel ch and wait for its answer. The
 * words the broker reads (ping, cli_cpu) share the request's first cache
 * line; the lock and tag stay in line A, which the broker never reads. */
static int transact(sbx_ipc_client *c, unsigned ch, uint32_t tag, uint32_t seq)
{
    sbx_ipc_control *ctl = sbx_ipc_client_control(c, ch);
    sbx_ipc_chan_head *head = sbx_ipc_client_head(c, ch);
    uint32_t me = my_cpu1();
    atomic_store_explicit(&ctl->tag, tag, memory_order_relaxed);
    atomic_store_explicit(&head->cli_cpu, me, memory_order_relaxed);
    uint32_t p0 = atomic_load_explicit(&ctl->pong, memory_order_relaxed);
    atomic_store(&head->ping, seq); /* seq_cst: ordered before the srv_sleep load */
    uint32_t s = atomic_load(&ctl->srv_sleep);
    if (s == SBX_SRV_WAITV) {
        sbx_futex_wake(&head->ping, 1, 0);
    } else if (s == SBX_SRV_DOORBELL) {
        sbx_ipc_header *h = (sbx_ipc_header *)c->base;
        atomic_fetch_add(&h->doorbell, 1);
        sbx_futex_wake(&h->doorbell, INT_MAX, 0);
    }
    int r = wait_pong(c, ctl, p0, me);
    if (r < 0) {
        /* The broker is gone while it may still own the request: the
         * channel is never handed out again. */
        atomic_store(&ctl->state, SBX_CH_ABANDONED);
        return r;
    }
    return 0;
}

static void read_reply(const sbx_ipc_control *ctl, sbx_ipc_reply *rep, uint32_t *rflags)
{
    rep->outcome = ctl->rep_outcome;
    rep->status = ctl->rep_status;
    *rflags = ctl->rep_flags;
    for (unsigned i = 0; i < SBX_IPC_EXT_COUNT; i++)
        rep->ext[i] = ctl->rep_ext[i];
    rep->fd = -1;
}

static int finish(sbx_ipc_client *c, unsigned ch, uint32_t seq, uint32_t rflags,
                  sbx_ipc_reply *rep)
{
    if (rflags & SBX_WIRE_RF_FD) {
        int fd = recv_fd(c, ch, seq);
        if (fd < 0) {
            if (rep->outcome == 0)
                rep->outcome = fd;
        } else {
            rep->fd = fd;
        }
    }
    sbx_ipc_client_free_buffer(c, (int)ch);
    return rep->outcome;
}

int sbx_ipc_client_transact_raw(sbx_ipc_client *c, unsigned ch, uint32_t tag, uint32_t seq,
                                sbx_ipc_reply *reply)
{
    int saved = errno;
    int r = transact(c, ch, tag, seq);
    if (r < 0) {
        errno = saved;
        reply->outcome = r;
        reply->fd = -1;
        return r;
    }
    uint32_t rflags;
    read_reply(sbx_ipc_client_control(c, ch), reply, &rflags);
    r = finish(c, ch, seq, rflags, reply);
    errno = saved;
    return r;
}

int sbx_ipc_client_call_on(sbx_ipc_client *c, int channel, uint32_t tag, const sbx_arg *args,
                           unsigned nargs, unsigned flags, sbx_ipc_reply *reply)
{
    sbx_ipc_reply local;
    sbx_ipc_reply *rep = reply ? reply : &local;
    memset(rep, 0, sizeof *rep);
    rep->fd = -1;
    if (channel < 0 || (uint32_t)channel >= c->layout.channel_count)
        return rep->outcome = -EINVAL;
    int saved = errno;
    unsigned ch = (unsigned)channel;
    sbx_ipc_control *ctl = sbx_ipc_client_control(c, ch);
    uint8_t *buf = sbx_ipc_client_buffer(c, ch);
    uint32_t seq = atomic_load_explicit(&sbx_ipc_client_head(c, ch)->ping, memory_order_relaxed) + 1;
    uint32_t offs[SBX_IPC_MAX_PARAMS];
    int r = sbx_ipc_wire_encode(buf, sbx_ipc_client_request_cap(c), tag,
                                (flags & SBX_IPC_CALL_CLOEXEC) ? SBX_WIRE_F_FD_CLOEXEC : 0, seq,
                                args, nargs, offs);
    if (r < 0) {
        sbx_ipc_client_free_buffer(c, channel);
        errno = saved;
        return rep->outcome = r;
    }
    r = transact(c, ch, tag, seq);
    if (r < 0) {
        errno = saved;
        return rep->outcome = r;
    }
    uint32_t rflags;
    read_reply(ctl, rep, &rflags);
    if (rep->outcome == 0) {
        for (unsigned i = 0; i < nargs; i++)
            if (args[i].type == SBX_ARG_INOUT && args[i].v.buf.size)
                memcpy(args[i].v.buf.ptr, buf + offs[i], args[i].v.buf.size);
    }
    r = finish(c, ch, seq, rflags, rep);
    if (!reply && rep->fd >= 0)
        sbx_close_keep_errno(rep->fd);
    errno = saved;
    return r;
}

int sbx_ipc_client_call(sbx_ipc_client *c, uint32_t tag, const sbx_arg *args, unsigned nargs,
                        unsigned flags, sbx_ipc_reply *reply)
{
    int ch = sbx_ipc_client_get_buffer(c);
    if (ch < 0) {
        if (reply) {
            memset(reply, 0, sizeof *reply);
            reply->fd = -1;
            reply->outcome = ch;
        }
        return ch;
    }
    return sbx_ipc_client_call_on(c, ch, tag, args, nargs, flags, reply);
}
