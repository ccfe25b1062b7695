/* sbx — ChannelProxy: a channel driven by its own IO thread.
 *
 * The IO thread polls the socket and a wake eventfd, runs process_events,
 * passes each message through the filters and, unless one consumed it,
 * queues it (by priority) for the listener thread, which is told through
 * `event_fd` and drains with sbx_channel_proxy_dispatch. While more than
 * max_incoming_queue bytes wait for the listener the IO thread stops
 * reading, so a flooding peer fills its own socket buffer, not our heap. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sbx/channel.h>
#include <sbx/error.h>

#include "base/cleanup.h"
#include "base/fd.h"
#include "base/log.h"
#include "channel/channel_internal.h"
#include "channel/message_internal.h"

#define MAX_FILTERS 16

struct sbx_channel_proxy {
    sbx_channel *ch;
    sbx_channel_listener user;
    sbx_message_filter filters[MAX_FILTERS];
    size_t nfilters;
    bool on_io;
    size_t max_incoming;

    pthread_t thread;
    bool thread_started;
    int wake_fd;  /* IO thread wakes on it */
    bool reader_paused; /* under lock: the IO thread stopped reading (queue full) */
    int event_fd; /* listener thread waits on it */
    _Atomic bool stop;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t start_cond;
    bool start;
    sbx_message *q_head[3], *q_tail[3];
    size_t q_bytes;
    unsigned q_fds; /* fds held by queued messages */
    bool connected_pending;
    pid_t peer_pid;
    bool error_pending;
    int error;
};

static void poke(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof one);
    (void)r; /* a full counter already means "awake" */
}

static void drain(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

static void proxy_wake(void *ctx)
{
    sbx_channel_proxy *px = ctx;
    poke(px->wake_fd);
}

static bool run_filters(sbx_channel_proxy *px, sbx_message *msg)
{
    for (size_t i = 0; i < px->nfilters; i++) {
        if (px->filters[i].on_message && px->filters[i].on_message(px->filters[i].ctx, px, msg))
            return true;
    }
    return false;
}

/* IO thread: a message from the channel (owned from here). */
static void proxy_sink(void *ctx, sbx_message *msg)
{
    sbx_channel_proxy *px = ctx;
    if (run_filters(px, msg)) {
        sbx_message_free(msg);
        return;
    }
    if (px->on_io) {
        bool handled = px->user.on_message && px->user.on_message(px->user.ctx, msg);
        if (!handled && sbx_message_is_sync(msg))
            sbx_channel_reply_unhandled(px->ch, msg);
        sbx_message_free(msg);
        return;
    }
    unsigned p = (unsigned)sbx_message_priority(msg);
    msg->next = NULL;
    pthread_mutex_lock(&px->lock);
    if (px->q_tail[p])
        px->q_tail[p]->next = msg;
    else
        px->q_head[p] = msg;
    px->q_tail[p] = msg;
    px->q_bytes += SBX_MESSAGE_HEADER_SIZE + sbx_message_payload_size(msg);
    px->q_fds += sbx_message_num_fds(msg);
    pthread_mutex_unlock(&px->lock);
    poke(px->event_fd);
}

static void proxy_on_connected(void *ctx, pid_t pid)
{
    sbx_channel_proxy *px = ctx;
    for (size_t i = 0; i < px->nfilters; i++)
        if (px->filters[i].on_connected)
            px->filters[i].on_connected(px->filters[i].ctx, pid);
    if (px->on_io) {
        if (px->user.on_connected)
            px->user.on_connected(px->user.ctx, pid);
        return;
    }
    pthread_mutex_lock(&px->lock);
    px->connected_pending = true;
    px->peer_pid = pid;
    pthread_mutex_unlock(&px->lock);
    poke(px->event_fd);
}

static void proxy_on_error(void *ctx, int err)
{
    sbx_channel_proxy *px = ctx;
    for (size_t i = 0; i < px->nfilters; i++)
        if (px->filters[i].on_error)
            px->filters[i].on_error(px->filters[i].ctx, err);
    if (px->on_io) {
        if (px->user.on_error)
            px->user.on_error(px->user.ctx, err);
        return;
    }
    pthread_mutex_lock(&px->lock);
    px->error_pending = true;
    px->error = err;
    pthread_mutex_unlock(&px->lock);
    poke(px->event_fd);
}

static void *io_main(void *arg)
{
    sbx_channel_proxy *px = arg;
    pthread_mutex_lock(&px->lock);
    while (!px->start)
        pthread_cond_wait(&px->start_cond, &px->lock);
    pthread_mutex_unlock(&px->lock);
    bool failed = false;
    while (!atomic_load(&px->stop)) {
        struct pollfd pfd[2] = { { .fd = px->wake_fd, .events = POLLIN }, { .fd = -1 } };
        nfds_t n = 1;
        if (!failed) {
            pthread_mutex_lock(&px->lock);
            bool full = px->q_bytes >= px->max_incoming || px->q_fds >= SBX_CHANNEL_PROXY_MAX_FDS;
            px->reader_paused = full; /* dispatch pokes us once it made room */
            pthread_mutex_unlock(&px->lock);
            short ev = sbx_channel_poll_events(px->ch);
            if (full)
                ev &= (short)~POLLIN;
            if (ev) {
                pfd[1].fd = sbx_channel_fd(px->ch);
                pfd[1].events = ev;
                n = 2;
            }
        }
        if (poll(pfd, n, -1) < 0 && errno != EINTR)
            break;
        bool woken = (pfd[0].revents & POLLIN) != 0;
        if (woken)
            drain(px->wake_fd);
        if (atomic_load(&px->stop))
            break;
        /* After a wake (the listener drained a full queue, or a send was
         * queued) process events even if the socket shows nothing: messages
         * already read into the channel's buffer while the queue was full
         * make the socket look idle, and would otherwise wait forever. */
        if (!failed && ((n == 2 && pfd[1].revents) || woken)) {
            if (sbx_channel_process_events(px->ch) < 0)
                failed = true; /* on_error fired; wait for stop */
        }
    }
    return NULL;
}

static void proxy_destroy(sbx_channel_proxy *px)
{
    sbx_channel_proxy_free(px);
}
SBX_DEFINE_CLEANUP_FUNC(sbx_channel_proxy, proxy_destroy)

int sbx_channel_proxy_new(int fd, const sbx_channel_options *opts, const sbx_channel_listener *listener,
                          const sbx_message_filter *filters, size_t nfilters,
                          const sbx_channel_proxy_options *popts, sbx_channel_proxy **out)
{
    SBX_AUTOCLOSE int owned = fd;
    if (!out || nfilters > MAX_FILTERS || (nfilters && !filters))
        return -EINVAL;
    *out = NULL;
    SBX_CLEANUP(proxy_destroy_cleanup_) sbx_channel_proxy *px = calloc(1, sizeof *px);
    if (!px)
        return -ENOMEM;
    px->wake_fd = px->event_fd = -1;
    pthread_mutex_init(&px->lock, NULL);
    pthread_cond_init(&px->start_cond, NULL);
    atomic_init(&px->stop, false);
    if (listener)
        px->user = *listener;
    if (nfilters)
        memcpy(px->filters, filters, nfilters * sizeof *filters);
    px->nfilters = nfilters;
    px->on_io = popts && popts->listener_on_io_thread;
    px->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    px->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (px->wake_fd < 0 || px->event_fd < 0)
        return sbx_neg_errno();
    sbx_channel_listener internal = {
        .on_connected = proxy_on_connected,
        .on_error = proxy_on_error,
        .ctx = px,
    };
    int r = sbx_channel_new_from_fd(sbx_steal_fd(&owned), opts, &internal, &px->ch);
    if (r < 0)
        return r;
    px->max_incoming = sbx_channel_max_incoming(px->ch);
    r = pthread_create(&px->thread, NULL, io_main, px);
    if (r != 0)
        return -r;
    px->thread_started = true;
    sbx_channel_set_threaded(px->ch, px->thread, proxy_wake, px, proxy_sink, px);
    pthread_mutex_lock(&px->lock);
    px->start = true;
    pthread_cond_signal(&px->start_cond);
    pthread_mutex_unlock(&px->lock);
    *out = sbx_steal_ptr(&px);
    return 0;
}

void sbx_channel_proxy_free(sbx_channel_proxy *px)
{
    if (!px)
        return;
    if (px->thread_started) {
        atomic_store(&px->stop, true);
        pthread_mutex_lock(&px->lock);
        px->start = true;
        pthread_cond_signal(&px->start_cond);
        pthread_mutex_unlock(&px->lock);
        poke(px->wake_fd);
        pthread_join(px->thread, NULL);
    }
    sbx_channel_free(px->ch);
    for (int p = 0; p < 3; p++) {
        while (px->q_head[p]) {
            sbx_message *m = px->q_head[p];
            px->q_head[p] = m->next;
            sbx_message_free(m);
        }
    }
    sbx_close_keep_errno(px->wake_fd);
    sbx_close_keep_errno(px->event_fd);
    pthread_mutex_destroy(&px->lock);
    pthread_cond_destroy(&px->start_cond);
    free(px);
}

int sbx_channel_proxy_send(sbx_channel_proxy *px, sbx_message *msg)
{
    if (!px) {
        sbx_message_free(msg);
        return -EINVAL;
    }
    return sbx_channel_send(px->ch, msg);
}

int sbx_channel_proxy_send_sync(sbx_channel_proxy *px, sbx_message *msg, int timeout_ms, sbx_message **reply)
{
    if (!px) {
        sbx_message_free(msg);
        return -EINVAL;
    }
    return sbx_channel_send_sync(px->ch, msg, timeout_ms, reply);
}

static sbx_message *pop_locked(sbx_channel_proxy *px)
{
    for (int p = SBX_PRIORITY_HIGH; p >= SBX_PRIORITY_LOW; p--) {
        sbx_message *m = px->q_head[p];
        if (m) {
            px->q_head[p] = m->next;
            if (!px->q_head[p])
                px->q_tail[p] = NULL;
            m->next = NULL;
            px->q_bytes -= SBX_MESSAGE_HEADER_SIZE + sbx_message_payload_size(m);
            px->q_fds -= sbx_message_num_fds(m);
            return m;
        }
    }
    return NULL;
}

int sbx_channel_proxy_dispatch(sbx_channel_proxy *px, int timeout_ms)
{
    if (!px)
        return -EINVAL;
    uint64_t start = (uint64_t)(sbx_now_ns() / 1000000u);
    uint64_t deadline = start + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        int count = 0;
        pthread_mutex_lock(&px->lock);
        drain(px->event_fd); /* anything queued after this pokes again */
        if (px->connected_pending) {
            px->connected_pending = false;
            pid_t pid = px->peer_pid;
            pthread_mutex_unlock(&px->lock);
            if (px->user.on_connected)
                px->user.on_connected(px->user.ctx, pid);
            count++;
            pthread_mutex_lock(&px->lock);
        }
        sbx_message *m;
        while ((m = pop_locked(px))) {
            pthread_mutex_unlock(&px->lock);
            bool handled = px->user.on_message && px->user.on_message(px->user.ctx, m);
            if (!handled && sbx_message_is_sync(m))
                sbx_channel_reply_unhandled(px->ch, m);
            sbx_message_free(m);
            count++;
            pthread_mutex_lock(&px->lock);
        }
        if (px->error_pending) {
            px->error_pending = false;
            int e = px->error;
            pthread_mutex_unlock(&px->lock);
            if (px->user.on_error)
                px->user.on_error(px->user.ctx, e);
            return e;
        }
        /* Decided under the lock after popping: the IO thread may have
         * filled the queue and paused after we started (a flag sampled
         * before popping would miss that, and both would wait forever). */
        bool resume = px->reader_paused && px->q_bytes < px->max_incoming &&
                      px->q_fds < SBX_CHANNEL_PROXY_MAX_FDS;
        if (resume)
            px->reader_paused = false;
        pthread_mutex_unlock(&px->lock);
        if (resume)
            poke(px->wake_fd); /* reading may resume */
        if (count || timeout_ms == 0)
            return count;
        int left = -1;
        if (timeout_ms > 0) {
            uint64_t now = (uint64_t)(sbx_now_ns() / 1000000u);
            if (now >= deadline)
                return 0;
            left = (int)(deadline - now);
        }
        struct pollfd pfd = { .fd = px->event_fd, .events = POLLIN };
        if (poll(&pfd, 1, left) < 0 && errno != EINTR)
            return sbx_neg_errno();
    }
}

int sbx_channel_proxy_event_fd(const sbx_channel_proxy *px)
{
    return px ? px->event_fd : -EINVAL;
}

pid_t sbx_channel_proxy_peer_pid(const sbx_channel_proxy *px)
{
    return px ? sbx_channel_peer_pid(px->ch) : 0;
}
