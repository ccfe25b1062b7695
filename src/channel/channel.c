/* sbx — message channel over an AF_UNIX stream socket.
 *
 * Reading (one driving thread): bytes land in a fixed read buffer; every
 * header is decoded and validated (size cap, flags, fd count) before
 * anything is allocated for its payload. Large payloads are read straight
 * into their own buffer (scatter read), small ones are copied out. fds
 * arrive by SCM_RIGHTS and are queued with the stream offset at which they
 * arrived; a message [start, end) must own exactly the fds that arrived
 * after its start and by its end, so fds a header does not announce are
 * detected and closed (the channel fails), never leaked.
 *
 * Writing (any thread, under `lock`): a queue of sealed messages, written
 * with sendmsg; fd-carrying messages go in a sendmsg of their own, so
 * their fds arrive within their byte range on the other side. */
#include "channel/channel_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sbx/error.h>

#include "base/cleanup.h"
#include "base/fd.h"
#include "base/log.h"
#include "channel/message_internal.h"

#define DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u)
/* Outgoing bytes a sender may queue before send reports NO_SPACE: small
 * enough to stay cache-warm (a sender running far ahead of its socket
 * only turns memory bandwidth into latency). One message larger than this
 * is still accepted into an empty queue. */
#define DEFAULT_MAX_QUEUE ((size_t)2 * 1024 * 1024)
#define DEFAULT_MAX_INCOMING ((size_t)64 * 1024 * 1024)
#define RBUF_SIZE ((size_t)128 * 1024)
/* Incomplete payloads at least this large get their own buffer. */
#define BIG_THRESHOLD ((size_t)32 * 1024)
/* While reading a big payload, at most this much spills into rbuf. */
#define BIG_TAIL ((size_t)4096)
#define FD_FIFO_MAX (2 * SBX_MESSAGE_MAX_FDS)
/* Fairness and memory bound for one process_events call. */
#define READ_BUDGET ((size_t)1024 * 1024)
#define READY_BUDGET 1024u
/* A peer sending fd-laden messages must not fill our fd table faster than
 * the listener consumes them. */
#define READY_FD_BUDGET 128u
/* Our own fds waiting in the write queue (each message holds duplicates). */
#define WRITE_FD_BUDGET 256u
#define ABANDONED_MAX 64u
#define WRITE_IOV_MAX 64

typedef struct sync_wait {
    uint32_t id;
    bool done;
    sbx_message *reply;
    struct sync_wait *next;
} sync_wait;

typedef struct rx_fd {
    int fd;
    uint64_t tag; /* stream offset at the end of the read that brought it */
} rx_fd;

struct sbx_channel {
    int fd;
    sbx_channel_options opts;
    sbx_channel_listener listener;
    bool named; /* peer pid from SO_PEERCRED */

    pthread_mutex_t lock; /* write queue, sync waiters, error */
    pthread_cond_t cond;  /* sync waiters (threaded mode) */
    sbx_message *wq_head, *wq_tail;
    size_t wq_bytes;
    unsigned wq_fds;      /* fds held by queued messages */
    size_t wq_off;        /* bytes of wq_head already written */
    bool wq_fds_sent;     /* wq_head's fds went out with its first bytes */
    bool wq_blocked;      /* the last write hit EAGAIN: wait for POLLOUT */
    int error;            /* 0 while open; first error, set once */
    sync_wait *waiters;
    uint32_t abandoned[ABANDONED_MAX];
    unsigned abandoned_pos;
    _Atomic uint32_t next_sync_id;

    /* Driving thread only from here. */
    bool error_reported;
    _Atomic bool hello_received; /* read by other threads via peer_pid */
    bool connected_reported;
    _Atomic bool connected;
    pid_t peer_pid, hello_pid;
    pid_t cred_pid; /* SCM_CREDENTIALS of the first bytes, 0 if none */
    bool have_cred;
    bool passcred;

    uint8_t *rbuf;
    size_t rstart, rend;
    uint64_t rx_total; /* stream bytes received so far */

    bool big_active;
    sbx_message_header big_hdr;
    uint8_t *big;
    size_t big_cap;
    size_t big_fill;
    uint64_t big_end;

    rx_fd rfds[FD_FIFO_MAX];
    unsigned rfd_count;

    sbx_message *rq_head[3], *rq_tail[3];
    unsigned rq_count;
    unsigned rq_fds; /* fds held by ready messages: bounded like the bytes */

    /* The thread inside process() (0: none) and its nesting depth: a
     * second thread driving the same channel is refused, not raced. */
    _Atomic unsigned long driver;
    unsigned driver_depth;

    bool threaded;
    pthread_t io_thread;
    void (*wake)(void *);
    void *wake_ctx;
    sbx_channel_sink_fn sink;
    void *sink_ctx;
};

static const sbx_channel_options default_opts;

/* ------------------------------------------------------------ utilities */

static uint64_t now_ms(void)
{
    return sbx_now_ns() / 1000000u;
}

static int remaining_ms(uint64_t deadline, int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t now = now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

static void close_rx_fds(sbx_channel *ch)
{
    for (unsigned i = 0; i < ch->rfd_count; i++)
        sbx_close_keep_errno(ch->rfds[i].fd);
    ch->rfd_count = 0;
}

static void free_queue(sbx_message **head, sbx_message **tail)
{
    while (*head) {
        sbx_message *m = *head;
        *head = m->next;
        sbx_message_free(m);
    }
    *tail = NULL;
}

/* Record the channel's first error (any thread, lock held): stop IO both
 * ways so a poller wakes, drop unsent data, wake sync waiters. */
static void set_error_locked(sbx_channel *ch, int err)
{
    if (ch->error)
        return;
    ch->error = err;
    (void)shutdown(ch->fd, SHUT_RDWR);
    free_queue(&ch->wq_head, &ch->wq_tail);
    ch->wq_bytes = 0;
    ch->wq_fds = 0;
    ch->wq_off = 0;
    pthread_cond_broadcast(&ch->cond);
}

static void set_error(sbx_channel *ch, int err)
{
    pthread_mutex_lock(&ch->lock);
    set_error_locked(ch, err);
    pthread_mutex_unlock(&ch->lock);
}

static int get_error(sbx_channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    int e = ch->error;
    pthread_mutex_unlock(&ch->lock);
    return e;
}

/* Driving thread: release read-side state and tell the listener, once. */
static void report_error(sbx_channel *ch)
{
    if (ch->error_reported)
        return;
    ch->error_reported = true;
    atomic_store(&ch->connected, false);
    close_rx_fds(ch);
    sbx_pickle_buffer_free(ch->big, ch->big_cap);
    ch->big = NULL;
    ch->big_active = false;
    for (int p = 0; p < 3; p++)
        free_queue(&ch->rq_head[p], &ch->rq_tail[p]);
    ch->rq_count = 0;
    ch->rq_fds = 0;
    int e = get_error(ch);
    sbx_debug("channel: closed: %s", sbx_strerror(e));
    if (ch->listener.on_error)
        ch->listener.on_error(ch->listener.ctx, e);
}

/* ---------------------------------------------------------------- write */

static size_t msg_wire_size(const sbx_message *m)
{
    return SBX_MESSAGE_HEADER_SIZE + m->payload.size;
}

/* Append the unsent part of m (from byte `off`) to iov. */
static int add_iov(struct iovec *iov, int n, const sbx_message *m, size_t off)
{
    if (off < SBX_MESSAGE_HEADER_SIZE) {
        iov[n].iov_base = (void *)(uintptr_t)(m->wire_hdr + off);
        iov[n].iov_len = SBX_MESSAGE_HEADER_SIZE - off;
        n++;
        off = 0;
    } else {
        off -= SBX_MESSAGE_HEADER_SIZE;
    }
    if (m->payload.size > off) {
        iov[n].iov_base = m->payload.data + off;
        iov[n].iov_len = m->payload.size - off;
        n++;
    }
    return n;
}

/* Write queued messages until the socket would block. Lock held. */
static int flush_locked(sbx_channel *ch)
{
    while (ch->wq_head && !ch->error) {
        struct iovec iov[WRITE_IOV_MAX];
        int niov = 0;
        sbx_message *head = ch->wq_head;
        niov = add_iov(iov, niov, head, ch->wq_off);
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * SBX_MESSAGE_MAX_FDS)];
        } cbuf;
        struct msghdr mh = { .msg_iov = iov };
        bool with_fds = head->nfds && !ch->wq_fds_sent;
        if (with_fds) {
            memset(&cbuf, 0, sizeof cbuf);
            mh.msg_control = cbuf.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * head->nfds);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * head->nfds);
            memcpy(CMSG_DATA(c), head->fds, sizeof(int) * head->nfds);
        }
        /* Batch following fd-less messages; an fd message stays alone so
         * its fds arrive inside its own byte range. */
        if (!head->nfds) {
            for (sbx_message *m = head->next; m && !m->nfds && niov + 2 <= WRITE_IOV_MAX; m = m->next)
                niov = add_iov(iov, niov, m, 0);
        }
        mh.msg_iovlen = (size_t)niov;
        ssize_t n = sendmsg(ch->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ch->wq_blocked = true;
                return 0;
            }
            set_error_locked(ch, SBX_ERROR_CHANNEL_ERROR);
            return SBX_ERROR_CHANNEL_ERROR;
        }
        if (with_fds)
            ch->wq_fds_sent = true;
        size_t sent = (size_t)n;
        ch->wq_bytes -= sent;
        while (sent && ch->wq_head) {
            sbx_message *m = ch->wq_head;
            size_t rem = msg_wire_size(m) - ch->wq_off;
            if (sent < rem) {
                ch->wq_off += sent;
                break;
            }
            sent -= rem;
            ch->wq_head = m->next;
            if (!ch->wq_head)
                ch->wq_tail = NULL;
            ch->wq_off = 0;
            ch->wq_fds_sent = false;
            ch->wq_fds -= m->nfds;
            sbx_message_free(m); /* closes our copies of sent fds */
        }
    }
    return ch->error ? ch->error : 0;
}

/* Queue a sealed message (taken). */
static int enqueue_send(sbx_channel *ch, sbx_message *msg)
{
    sbx_message_seal(msg);
    size_t total = msg_wire_size(msg);
    pthread_mutex_lock(&ch->lock);
    if (ch->error) {
        pthread_mutex_unlock(&ch->lock);
        sbx_message_free(msg);
        return SBX_ERROR_CHANNEL_ERROR;
    }
    /* One message always fits an empty queue; beyond that the limit holds. */
    if (ch->wq_head && (ch->wq_bytes + total > ch->opts.max_write_queue ||
                        ch->wq_fds + msg->nfds > WRITE_FD_BUDGET)) {
        pthread_mutex_unlock(&ch->lock);
        sbx_message_free(msg);
        return SBX_ERROR_NO_SPACE;
    }
    msg->next = NULL;
    if (ch->wq_tail)
        ch->wq_tail->next = msg;
    else
        ch->wq_head = msg;
    ch->wq_tail = msg;
    ch->wq_bytes += total;
    ch->wq_fds += msg->nfds;
    /* A socket that was full a moment ago is retried when the poller sees
     * POLLOUT (process_events / flush), not on every send. */
    int r = ch->wq_blocked ? 0 : flush_locked(ch);
    bool pending = ch->wq_head != NULL;
    pthread_mutex_unlock(&ch->lock);
    if (r < 0)
        return r;
    if (pending && ch->wake)
        ch->wake(ch->wake_ctx);
    return 0;
}

static int check_user_message(const sbx_message *msg)
{
    if (msg->hdr.type >= SBX_MESSAGE_TYPE_RESERVED)
        return -EINVAL;
    if (msg->hdr.flags & SBX_MSG_FLAG_SYNC)
        return -EINVAL;
    if ((msg->hdr.flags & SBX_MSG_FLAG_REPLY) && msg->hdr.sync_id == 0)
        return -EINVAL;
    if (msg->payload.size > SBX_PICKLE_MAX_SIZE)
        return SBX_ERROR_TOO_LARGE;
    return 0;
}

int sbx_channel_send(sbx_channel *ch, sbx_message *msg)
{
    if (!ch || !msg) {
        sbx_message_free(msg);
        return -EINVAL;
    }
    int r = check_user_message(msg);
    if (r == 0 && msg->payload.size > ch->opts.max_message_size)
        r = SBX_ERROR_TOO_LARGE;
    if (r < 0) {
        sbx_message_free(msg);
        return r;
    }
    return enqueue_send(ch, msg);
}

void sbx_channel_reply_unhandled(sbx_channel *ch, const sbx_message *request)
{
    sbx_message *reply = sbx_message_new_reply(request);
    if (!reply)
        return;
    sbx_message_set_reply_error(reply);
    (void)enqueue_send(ch, reply);
}

/* ----------------------------------------------------------------- read */

/* Who sent the HELLO, as the kernel tells it, in our pid namespace; 0 when
 * unknown. A socketpair's SO_PEERCRED names the process that created the
 * pair (the broker itself, for an fd inherited by a child), so unnamed
 * channels rely on SCM_CREDENTIALS only; a peer that is already dead, or
 * lives in a pid namespace we cannot see, reads as 0. */
static pid_t kernel_peer_pid(sbx_channel *ch)
{
    if (!ch->named)
        return ch->have_cred && ch->cred_pid > 0 ? ch->cred_pid : 0;
    struct ucred uc;
    socklen_t len = sizeof uc;
    if (getsockopt(ch->fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
        return 0;
    return uc.pid;
}

/* The peer's HELLO. The peer controls the header and payload; we check the
 * header is exactly a HELLO's, the payload is exactly {int32 pid, bool
 * has_secret, uint32 secret}, the secret when we require one, and the pid
 * against the kernel's account of who sent these bytes. */
static int handle_hello(sbx_channel *ch, sbx_message *msg)
{
    const sbx_message_header *h = &msg->hdr;
    if (h->type != SBX_MESSAGE_TYPE_HELLO || h->routing_id != SBX_ROUTING_NONE ||
        h->flags != SBX_PRIORITY_NORMAL || h->num_fds != 0 || h->sync_id != 0)
        return SBX_ERROR_PROTOCOL;
    sbx_pickle_reader r;
    sbx_message_reader(msg, &r);
    int32_t pid = 0;
    bool has_secret = false;
    uint32_t secret = 0;
    sbx_pickle_read_int32(&r, &pid);
    sbx_pickle_read_bool(&r, &has_secret);
    sbx_pickle_read_uint32(&r, &secret);
    if (!sbx_pickle_reader_done(&r) || pid <= 0)
        return SBX_ERROR_PROTOCOL;
    if (ch->opts.has_secret && (!has_secret || secret != ch->opts.secret)) {
        sbx_warn("channel: peer HELLO has %s secret", has_secret ? "a wrong" : "no");
        return SBX_ERROR_DENIED;
    }
    pid_t kpid = kernel_peer_pid(ch);
    ch->hello_pid = (pid_t)pid;
    switch (ch->opts.peer_check) {
    case SBX_CHANNEL_PEER_SAME_PID_NS:
        if (kpid <= 0 || kpid != (pid_t)pid) {
            sbx_warn("channel: peer HELLO pid %d, kernel says %d", (int)pid, (int)kpid);
            return SBX_ERROR_DENIED;
        }
        ch->peer_pid = kpid;
        break;
    case SBX_CHANNEL_PEER_EXPECT_PID:
        if (kpid <= 0 || kpid != ch->opts.expected_peer_pid) {
            sbx_warn("channel: peer pid %d, expected %d", (int)kpid, (int)ch->opts.expected_peer_pid);
            return SBX_ERROR_DENIED;
        }
        ch->peer_pid = kpid;
        break;
    default:
        ch->peer_pid = (pid_t)pid;
        break;
    }
    ch->hello_received = true;
    atomic_store(&ch->connected, true);
    if (ch->passcred) {
        int off = 0;
        (void)setsockopt(ch->fd, SOL_SOCKET, SO_PASSCRED, &off, sizeof off);
        ch->passcred = false;
    }
    return 0;
}

/* A reply: hand it to its waiter. A reply nobody asked for is a protocol
 * error, except one to a call that already timed out (dropped). */
static int handle_reply(sbx_channel *ch, sbx_message *msg)
{
    uint32_t id = msg->hdr.sync_id;
    pthread_mutex_lock(&ch->lock);
    for (sync_wait *w = ch->waiters; w; w = w->next) {
        if (w->id == id && !w->done) {
            w->done = true;
            w->reply = msg;
            pthread_cond_broadcast(&ch->cond);
            pthread_mutex_unlock(&ch->lock);
            return 0;
        }
    }
    bool late = false;
    for (unsigned i = 0; i < ABANDONED_MAX; i++)
        late |= ch->abandoned[i] == id;
    pthread_mutex_unlock(&ch->lock);
    sbx_message_free(msg);
    return late ? 0 : SBX_ERROR_PROTOCOL;
}

/* A complete message whose stream range ends at `end`: give it its fds and
 * route it. Takes `payload`. */
static int complete_message(sbx_channel *ch, const sbx_message_header *h, uint8_t *payload, size_t cap,
                            uint64_t end)
{
    /* The fds that arrived by `end` are this message's: exactly as many as
     * its header announced, or the peer is lying. */
    unsigned n = 0;
    while (n < ch->rfd_count && ch->rfds[n].tag <= end)
        n++;
    if (n != h->num_fds) {
        sbx_pickle_buffer_free(payload, cap);
        return SBX_ERROR_PROTOCOL;
    }
    int fds[SBX_MESSAGE_MAX_FDS];
    for (unsigned i = 0; i < n; i++)
        fds[i] = ch->rfds[i].fd;
    memmove(ch->rfds, ch->rfds + n, (ch->rfd_count - n) * sizeof ch->rfds[0]);
    ch->rfd_count -= n;
    sbx_message *m = sbx_message_from_wire(h, payload, cap, fds, n);
    if (!m)
        return -ENOMEM;
    if (!ch->hello_received) {
        int r = handle_hello(ch, m);
        sbx_message_free(m);
        return r;
    }
    if (h->type >= SBX_MESSAGE_TYPE_RESERVED) {
        sbx_message_free(m);
        return SBX_ERROR_PROTOCOL;
    }
    if (h->flags & SBX_MSG_FLAG_REPLY)
        return handle_reply(ch, m);
    unsigned p = h->flags & SBX_MSG_FLAG_PRIORITY_MASK;
    m->next = NULL;
    if (ch->rq_tail[p])
        ch->rq_tail[p]->next = m;
    else
        ch->rq_head[p] = m;
    ch->rq_tail[p] = m;
    ch->rq_count++;
    ch->rq_fds += m->nfds;
    return 0;
}

/* Parse every complete message in the buffers. */
static int parse_buffered(sbx_channel *ch)
{
    if (ch->big_active) {
        if (ch->big_fill < ch->big_hdr.payload_size)
            return 0;
        ch->big_active = false;
        int r = complete_message(ch, &ch->big_hdr, sbx_steal_ptr(&ch->big), ch->big_cap, ch->big_end);
        if (r < 0)
            return r;
    }
    while (ch->rend - ch->rstart >= SBX_MESSAGE_HEADER_SIZE) {
        sbx_message_header h;
        int r = sbx_message_decode_header(ch->rbuf + ch->rstart, ch->opts.max_message_size, &h);
        if (r < 0)
            return r;
        size_t have = ch->rend - ch->rstart;
        size_t total = SBX_MESSAGE_HEADER_SIZE + (size_t)h.payload_size;
        if (have >= total) {
            uint8_t *p = NULL;
            if (h.payload_size) {
                p = malloc(h.payload_size);
                if (!p)
                    return -ENOMEM;
                memcpy(p, ch->rbuf + ch->rstart + SBX_MESSAGE_HEADER_SIZE, h.payload_size);
            }
            ch->rstart += total;
            uint64_t end = ch->rx_total - (ch->rend - ch->rstart);
            r = complete_message(ch, &h, p, h.payload_size, end);
            if (r < 0)
                return r;
            continue;
        }
        if (h.payload_size >= BIG_THRESHOLD || total > RBUF_SIZE) {
            /* The payload size was checked against the cap above. */
            size_t cap;
            uint8_t *big = sbx_pickle_buffer_alloc(h.payload_size, &cap);
            if (!big)
                return -ENOMEM;
            ch->big_cap = cap;
            size_t part = have - SBX_MESSAGE_HEADER_SIZE;
            memcpy(big, ch->rbuf + ch->rstart + SBX_MESSAGE_HEADER_SIZE, part);
            ch->big = big;
            ch->big_fill = part;
            ch->big_hdr = h;
            ch->big_end = ch->rx_total + (total - have);
            ch->big_active = true;
            ch->rstart = ch->rend = 0;
        } else if (total > RBUF_SIZE - ch->rstart) {
            memmove(ch->rbuf, ch->rbuf + ch->rstart, have);
            ch->rstart = 0;
            ch->rend = have;
        }
        break;
    }
    if (ch->rstart == ch->rend)
        ch->rstart = ch->rend = 0;
    return 0;
}

/* One recvmsg. Returns bytes read, 0 when it would block, or an error.
 * *drained: the read returned less than it asked for, so the socket was
 * empty a moment ago (saves the EAGAIN round trip; polling is level
 * triggered, so anything newer wakes the poller again). */
static ssize_t read_once(sbx_channel *ch, bool *drained)
{
    if (!ch->big_active && ch->rstart && RBUF_SIZE - ch->rend < BIG_TAIL) {
        memmove(ch->rbuf, ch->rbuf + ch->rstart, ch->rend - ch->rstart);
        ch->rend -= ch->rstart;
        ch->rstart = 0;
    }
    struct iovec iov[2];
    int niov = 0;
    if (ch->big_active) {
        iov[niov].iov_base = ch->big + ch->big_fill;
        iov[niov++].iov_len = ch->big_hdr.payload_size - ch->big_fill;
        iov[niov].iov_base = ch->rbuf + ch->rend;
        iov[niov++].iov_len = BIG_TAIL < RBUF_SIZE - ch->rend ? BIG_TAIL : RBUF_SIZE - ch->rend;
    } else {
        iov[niov].iov_base = ch->rbuf + ch->rend;
        iov[niov++].iov_len = RBUF_SIZE - ch->rend;
    }
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * SBX_MESSAGE_MAX_FDS) + CMSG_SPACE(sizeof(struct ucred))];
    } cbuf;
    struct msghdr mh = {
        .msg_iov = iov,
        .msg_iovlen = (size_t)niov,
        .msg_control = cbuf.buf,
        .msg_controllen = sizeof cbuf.buf,
    };
    ssize_t n;
    do
        n = recvmsg(ch->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return SBX_ERROR_CHANNEL_ERROR;
    }
    size_t got = (size_t)n;
    size_t asked = 0;
    for (int i = 0; i < niov; i++)
        asked += iov[i].iov_len;
    *drained = got < asked;
    ch->rx_total += got;
    int err = 0;
    /* Take every fd out of the control data first, so none can leak
     * whatever else is wrong with this read. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET)
            continue;
        if (c->cmsg_type == SCM_RIGHTS) {
            size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                if (ch->rfd_count < FD_FIFO_MAX) {
                    ch->rfds[ch->rfd_count].fd = fd;
                    ch->rfds[ch->rfd_count++].tag = ch->rx_total;
                } else {
                    sbx_close_keep_errno(fd);
                    err = SBX_ERROR_PROTOCOL;
                }
            }
        } else if (c->cmsg_type == SCM_CREDENTIALS && !ch->have_cred &&
                   c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof uc);
            ch->have_cred = true;
            ch->cred_pid = uc.pid;
        }
    }
    if (mh.msg_flags & MSG_CTRUNC)
        err = SBX_ERROR_PROTOCOL; /* more fds than any message may carry */
    if (err)
        return err;
    if (n == 0)
        return SBX_ERROR_CHANNEL_ERROR; /* peer closed */
    if (ch->big_active) {
        size_t want = ch->big_hdr.payload_size - ch->big_fill;
        size_t to_big = got < want ? got : want;
        ch->big_fill += to_big;
        ch->rend += got - to_big;
    } else {
        ch->rend += got;
    }
    return n;
}

static sbx_message *pop_ready(sbx_channel *ch)
{
    for (int p = SBX_PRIORITY_HIGH; p >= SBX_PRIORITY_LOW; p--) {
        sbx_message *m = ch->rq_head[p];
        if (m) {
            ch->rq_head[p] = m->next;
            if (!ch->rq_head[p])
                ch->rq_tail[p] = NULL;
            m->next = NULL;
            ch->rq_count--;
            ch->rq_fds -= m->nfds;
            return m;
        }
    }
    return NULL;
}

static void deliver(sbx_channel *ch)
{
    if (ch->hello_received && !ch->connected_reported && !ch->error_reported) {
        ch->connected_reported = true;
        if (ch->listener.on_connected)
            ch->listener.on_connected(ch->listener.ctx, ch->peer_pid);
    }
    sbx_message *m;
    while (!ch->error_reported && (m = pop_ready(ch))) {
        if (ch->sink) {
            ch->sink(ch->sink_ctx, m);
            continue;
        }
        bool handled = ch->listener.on_message && ch->listener.on_message(ch->listener.ctx, m);
        if (!handled && (m->hdr.flags & SBX_MSG_FLAG_SYNC))
            sbx_channel_reply_unhandled(ch, m);
        sbx_message_free(m);
    }
}

static int process(sbx_channel *ch)
{
    if (ch->error_reported)
        return get_error(ch);
    int err = get_error(ch);
    for (int round = 0; !err && round < 4; round++) {
        size_t budget = 0;
        bool more = true;
        while (budget < READ_BUDGET && ch->rq_count < READY_BUDGET && ch->rq_fds < READY_FD_BUDGET) {
            bool drained = false;
            ssize_t n = read_once(ch, &drained);
            if (n < 0) {
                err = (int)n;
                break;
            }
            if (n == 0) {
                more = false;
                break;
            }
            budget += (size_t)n;
            int r = parse_buffered(ch);
            if (r < 0) {
                err = r;
                break;
            }
            if (drained) {
                more = false;
                break;
            }
        }
        if (err) {
            /* Messages already complete are still delivered (a peer that
             * sent a reply and exited); then the error. */
            set_error(ch, err);
        }
        deliver(ch);
        if (!more || ch->error_reported)
            break;
    }
    pthread_mutex_lock(&ch->lock);
    ch->wq_blocked = false;
    if (!ch->error)
        (void)flush_locked(ch);
    pthread_mutex_unlock(&ch->lock);
    err = get_error(ch);
    if (err) {
        report_error(ch);
        return err;
    }
    return 0;
}

static bool enter_driver(sbx_channel *ch)
{
    unsigned long self = (unsigned long)pthread_self();
    unsigned long cur = atomic_load(&ch->driver);
    if (cur == self) {
        ch->driver_depth++;
        return true;
    }
    unsigned long none = 0;
    if (!atomic_compare_exchange_strong(&ch->driver, &none, self))
        return false;
    ch->driver_depth = 1;
    return true;
}

static void leave_driver(sbx_channel *ch)
{
    if (--ch->driver_depth == 0)
        atomic_store(&ch->driver, 0ul);
}

static int process_guarded(sbx_channel *ch)
{
    if (!enter_driver(ch))
        return SBX_ERROR_WRONG_STATE;
    int r = process(ch);
    leave_driver(ch);
    return r;
}

int sbx_channel_process_events(sbx_channel *ch)
{
    if (!ch)
        return -EINVAL;
    return process_guarded(ch);
}

/* ------------------------------------------------------------------ sync */

int sbx_channel_send_sync(sbx_channel *ch, sbx_message *msg, int timeout_ms, sbx_message **reply)
{
    if (reply)
        *reply = NULL;
    if (!ch || !msg || !reply) {
        sbx_message_free(msg);
        return -EINVAL;
    }
    int r = check_user_message(msg);
    if (r == 0 && (msg->hdr.flags & SBX_MSG_FLAG_REPLY))
        r = -EINVAL;
    if (r == 0 && msg->payload.size > ch->opts.max_message_size)
        r = SBX_ERROR_TOO_LARGE;
    if (r == 0 && ch->threaded && pthread_equal(pthread_self(), ch->io_thread))
        r = SBX_ERROR_WRONG_STATE; /* the IO thread would wait on itself */
    if (r < 0) {
        sbx_message_free(msg);
        return r;
    }
    uint32_t id;
    do
        id = atomic_fetch_add(&ch->next_sync_id, 1u);
    while (id == 0);
    msg->hdr.flags |= SBX_MSG_FLAG_SYNC;
    msg->hdr.sync_id = id;
    sync_wait w = { .id = id };
    pthread_mutex_lock(&ch->lock);
    w.next = ch->waiters;
    ch->waiters = &w;
    pthread_mutex_unlock(&ch->lock);

    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    r = enqueue_send(ch, msg);
    if (r == 0 && ch->threaded) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms % 1000) * 1000000u;
        ts.tv_sec += (timeout_ms < 0 ? 0 : timeout_ms / 1000) + (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&ch->lock);
        while (!w.done && !ch->error) {
            if (timeout_ms < 0)
                pthread_cond_wait(&ch->cond, &ch->lock);
            else if (pthread_cond_timedwait(&ch->cond, &ch->lock, &ts) == ETIMEDOUT)
                break;
        }
        pthread_mutex_unlock(&ch->lock);
    } else if (r == 0) {
        /* Direct mode: pump the channel ourselves, delivering whatever
         * else arrives meanwhile (the peer may need our answers). */
        for (;;) {
            pthread_mutex_lock(&ch->lock);
            bool stop = w.done || ch->error;
            pthread_mutex_unlock(&ch->lock);
            if (stop)
                break;
            int left = remaining_ms(deadline, timeout_ms);
            if (left == 0)
                break;
            struct pollfd pfd = { .fd = ch->fd, .events = sbx_channel_poll_events(ch) };
            if (poll(&pfd, 1, left) < 0 && errno != EINTR) {
                set_error(ch, SBX_ERROR_CHANNEL_ERROR);
                break;
            }
            if (process_guarded(ch) == SBX_ERROR_WRONG_STATE)
                usleep(1000); /* another thread drives it: let it read */
        }
    }
    pthread_mutex_lock(&ch->lock);
    for (sync_wait **pp = &ch->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == &w) {
            *pp = w.next;
            break;
        }
    }
    if (r == 0 && !w.done) {
        if (ch->error) {
            r = SBX_ERROR_CHANNEL_ERROR;
        } else {
            r = SBX_ERROR_TIMEOUT;
            ch->abandoned[ch->abandoned_pos++ % ABANDONED_MAX] = id;
        }
    }
    pthread_mutex_unlock(&ch->lock);
    if (r < 0)
        return r;
    *reply = w.reply;
    return sbx_message_is_reply_error(w.reply) ? SBX_ERROR_GENERIC : 0;
}

int sbx_channel_flush(sbx_channel *ch, int timeout_ms)
{
    if (!ch)
        return -EINVAL;
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        pthread_mutex_lock(&ch->lock);
        int e = ch->error;
        ch->wq_blocked = false;
        if (!e)
            e = flush_locked(ch);
        bool empty = ch->wq_head == NULL;
        pthread_mutex_unlock(&ch->lock);
        if (e < 0)
            return e;
        if (empty)
            return 0;
        int left = remaining_ms(deadline, timeout_ms);
        if (left == 0)
            return SBX_ERROR_TIMEOUT;
        struct pollfd pfd = { .fd = ch->fd, .events = POLLOUT };
        if (poll(&pfd, 1, left) < 0 && errno != EINTR)
            return sbx_neg_errno();
    }
}

/* ---------------------------------------------------------- construction */

static void send_hello(sbx_channel *ch)
{
    sbx_message *m = sbx_message_new(SBX_ROUTING_NONE, SBX_MESSAGE_TYPE_HELLO, SBX_PRIORITY_NORMAL);
    if (!m) {
        set_error(ch, -ENOMEM);
        return;
    }
    sbx_pickle *p = sbx_message_pickle(m);
    int r = sbx_pickle_write_int32(p, (int32_t)getpid());
    if (r == 0)
        r = sbx_pickle_write_bool(p, ch->opts.has_secret);
    if (r == 0)
        r = sbx_pickle_write_uint32(p, ch->opts.has_secret ? ch->opts.secret : 0);
    if (r < 0) {
        sbx_message_free(m);
        set_error(ch, r);
        return;
    }
    (void)enqueue_send(ch, m);
}

static void channel_destroy(sbx_channel *ch)
{
    sbx_channel_free(ch);
}
SBX_DEFINE_CLEANUP_FUNC(sbx_channel, channel_destroy)

static int channel_create(int fd_in, bool named, const sbx_channel_options *opts,
                          const sbx_channel_listener *listener, sbx_channel **out)
{
    SBX_AUTOCLOSE int fd = fd_in;
    *out = NULL;
    if (fd < 0)
        return -EBADF;
    if (opts && opts->max_message_size > SBX_PICKLE_MAX_SIZE)
        return SBX_ERROR_TOO_LARGE;
    if (opts && opts->peer_check == SBX_CHANNEL_PEER_EXPECT_PID && opts->expected_peer_pid <= 0)
        return -EINVAL;
    if (opts && (unsigned)opts->peer_check > SBX_CHANNEL_PEER_UNVERIFIED)
        return -EINVAL;
    int type = 0, domain = 0;
    socklen_t tl = sizeof type, dl = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0)
        return sbx_neg_errno();
    if (type != SOCK_STREAM || domain != AF_UNIX)
        return -EINVAL;
    int r = sbx_set_nonblock(fd, true);
    if (r < 0)
        return r;
    if ((r = sbx_set_cloexec(fd, true)) < 0)
        return r;

    SBX_CLEANUP(channel_destroy_cleanup_) sbx_channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->fd = -1;
    pthread_mutex_init(&ch->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ch->cond, &ca);
    pthread_condattr_destroy(&ca);
    ch->rbuf = malloc(RBUF_SIZE);
    if (!ch->rbuf)
        return -ENOMEM;
    ch->opts = opts ? *opts : default_opts;
    if (!ch->opts.max_message_size)
        ch->opts.max_message_size = DEFAULT_MAX_MESSAGE;
    if (!ch->opts.max_write_queue)
        ch->opts.max_write_queue = DEFAULT_MAX_QUEUE;
    if (!ch->opts.max_incoming_queue)
        ch->opts.max_incoming_queue = DEFAULT_MAX_INCOMING;
    if (listener)
        ch->listener = *listener;
    ch->named = named;
    atomic_init(&ch->next_sync_id, 1u);
    atomic_init(&ch->connected, false);
    atomic_init(&ch->hello_received, false);
    atomic_init(&ch->driver, 0ul);
    if (!named) {
        /* Ask the kernel to attest who sent the HELLO bytes (a socketpair's
         * SO_PEERCRED names its creator, not the child that inherited it). */
        int on = 1;
        ch->passcred = setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0;
    }
    ch->fd = sbx_steal_fd(&fd);
    send_hello(ch);
    *out = sbx_steal_ptr(&ch);
    return 0;
}

int sbx_channel_new_from_fd(int fd, const sbx_channel_options *opts, const sbx_channel_listener *listener,
                            sbx_channel **out)
{
    if (!out) {
        sbx_close_keep_errno(fd);
        return -EINVAL;
    }
    return channel_create(fd, false, opts, listener, out);
}

int sbx_channel_socketpair(int fds[2])
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return sbx_neg_errno();
    int on = 1;
    for (int i = 0; i < 2; i++) {
        if (setsockopt(sv[i], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0) {
            int e = sbx_neg_errno();
            close(sv[0]);
            close(sv[1]);
            return e;
        }
    }
    fds[0] = sv[0];
    fds[1] = sv[1];
    return 0;
}

int sbx_channel_new_pair(const sbx_channel_options *opts, const sbx_channel_listener *l0,
                         const sbx_channel_listener *l1, sbx_channel **out0, sbx_channel **out1)
{
    int sv[2];
    int r = sbx_channel_socketpair(sv);
    if (r < 0)
        return r;
    SBX_CLEANUP(channel_destroy_cleanup_) sbx_channel *a = NULL;
    r = channel_create(sv[0], false, opts, l0, &a);
    if (r < 0) {
        close(sv[1]);
        return r;
    }
    r = channel_create(sv[1], false, opts, l1, out1);
    if (r < 0)
        return r;
    *out0 = sbx_steal_ptr(&a);
    return 0;
}

static int make_addr(const char *path, bool abstract, struct sockaddr_un *sa, socklen_t *len)
{
    if (!path || !*path)
        return -EINVAL;
    size_t n = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t off = abstract ? 1 : 0;
    if (n + off >= sizeof sa->sun_path)
        return -ENAMETOOLONG;
    memcpy(sa->sun_path + off, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + off + n + (abstract ? 0 : 1));
    return 0;
}

int sbx_channel_listen(const char *path, const sbx_channel_options *opts, int *listen_fd)
{
    bool abstract = opts && opts->abstract_socket;
    struct sockaddr_un sa;
    socklen_t len;
    int r = make_addr(path, abstract, &sa, &len);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sbx_neg_errno();
    if (bind(fd, (struct sockaddr *)&sa, len) < 0)
        return sbx_neg_errno();
    /* Nobody can connect before listen(), so tightening the mode here
     * leaves no window in which another user could reach the socket. */
    if (!abstract && chmod(path, 0600) < 0) {
        r = sbx_neg_errno();
        (void)unlink(path);
        return r;
    }
    if (listen(fd, 16) < 0) {
        r = sbx_neg_errno();
        if (!abstract)
            (void)unlink(path);
        return r;
    }
    *listen_fd = sbx_steal_fd(&fd);
    return 0;
}

int sbx_channel_accept(int listen_fd, const sbx_channel_options *opts, const sbx_channel_listener *listener,
                       sbx_channel **out)
{
    if (!out)
        return -EINVAL;
    int fd;
    do
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return sbx_neg_errno();
    return channel_create(fd, true, opts, listener, out);
}

int sbx_channel_connect(const char *path, const sbx_channel_options *opts, const sbx_channel_listener *listener,
                        sbx_channel **out)
{
    if (!out)
        return -EINVAL;
    struct sockaddr_un sa;
    socklen_t len;
    int r = make_addr(path, opts && opts->abstract_socket, &sa, &len);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sbx_neg_errno();
    int c;
    do
        c = connect(fd, (struct sockaddr *)&sa, len);
    while (c < 0 && errno == EINTR);
    if (c < 0)
        return sbx_neg_errno();
    return channel_create(sbx_steal_fd(&fd), true, opts, listener, out);
}

void sbx_channel_free(sbx_channel *ch)
{
    if (!ch)
        return;
    sbx_close_keep_errno(ch->fd);
    free_queue(&ch->wq_head, &ch->wq_tail);
    for (int p = 0; p < 3; p++)
        free_queue(&ch->rq_head[p], &ch->rq_tail[p]);
    close_rx_fds(ch);
    sbx_pickle_buffer_free(ch->big, ch->big_cap);
    free(ch->rbuf);
    pthread_mutex_destroy(&ch->lock);
    pthread_cond_destroy(&ch->cond);
    free(ch);
}

/* ------------------------------------------------------------- accessors */

int sbx_channel_fd(const sbx_channel *ch)
{
    return ch ? ch->fd : -EINVAL;
}

short sbx_channel_poll_events(sbx_channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    short ev = POLLIN;
    if (ch->wq_head && !ch->error)
        ev |= POLLOUT;
    pthread_mutex_unlock(&ch->lock);
    return ev;
}

bool sbx_channel_is_connected(const sbx_channel *ch)
{
    return ch && atomic_load(&ch->connected);
}

pid_t sbx_channel_peer_pid(const sbx_channel *ch)
{
    return ch && ch->hello_received ? ch->peer_pid : 0;
}

pid_t sbx_channel_peer_hello_pid(const sbx_channel *ch)
{
    return ch && ch->hello_received ? ch->hello_pid : 0;
}

void sbx_channel_set_threaded(sbx_channel *ch, pthread_t io, void (*wake)(void *), void *wake_ctx,
                              sbx_channel_sink_fn sink, void *sink_ctx)
{
    ch->threaded = true;
    ch->io_thread = io;
    ch->wake = wake;
    ch->wake_ctx = wake_ctx;
    ch->sink = sink;
    ch->sink_ctx = sink_ctx;
}

size_t sbx_channel_max_incoming(const sbx_channel *ch)
{
    return ch->opts.max_incoming_queue;
}
