/* ChannelProxy: IO thread, filters, thread-safe sends, sync from many
 * threads, priorities through the listener queue, peer death, flood. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "chan_test.h"

enum { T_FILTERED = 1, T_PASS = 2, T_ECHO = 3, T_SILENT = 4, T_DIE = 5, T_BULK = 6 };

static sbx_message *u32_msg(uint32_t type, sbx_priority prio, uint32_t v)
{
    sbx_message *m = sbx_message_new(1, type, prio);
    cr_assert_not_null(m);
    cr_assert_eq(sbx_pickle_write_uint32(sbx_message_pickle(m), v), 0);
    return m;
}

typedef struct filt {
    _Atomic int seen;
    _Atomic int consumed;
    pthread_t thread;
    _Atomic bool wrong_thread;
    pthread_t main;
} filt;

static bool filter_fn(void *ctx, sbx_channel_proxy *px, sbx_message *msg)
{
    filt *f = ctx;
    if (pthread_equal(pthread_self(), f->main))
        atomic_store(&f->wrong_thread, true);
    atomic_fetch_add(&f->seen, 1);
    if (sbx_message_type(msg) == T_FILTERED) {
        atomic_fetch_add(&f->consumed, 1);
        return true;
    }
    return false;
}

static bool listener_on_main(rec *r, sbx_message *msg)
{
    filt *f = r->user;
    cr_assert(pthread_equal(pthread_self(), f->main), "listener runs on the dispatch thread");
    return true;
}

static sbx_channel_proxy *proxy_on(int fd, rec *r, filt *f, const sbx_channel_options *o, bool on_io)
{
    sbx_channel_listener l = rec_listener(r);
    sbx_message_filter mf = { filter_fn, NULL, NULL, f };
    sbx_channel_proxy_options po = { .listener_on_io_thread = on_io };
    sbx_channel_proxy *px = NULL;
    cr_assert_eq(sbx_channel_proxy_new(fd, o, &l, f ? &mf : NULL, f ? 1 : 0, &po, &px), 0);
    return px;
}

Test(proxy, filter_consumes_on_io_thread)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    filt f = { .main = pthread_self() };
    rec r = { 0 };
    r.user = &f;
    r.handler = listener_on_main;
    sbx_channel_proxy *px = proxy_on(sv[0], &r, &f, NULL, false);
    rec pr = { 0 };
    sbx_channel_listener pl = rec_listener(&pr);
    sbx_channel *peer;
    cr_assert_eq(sbx_channel_new_from_fd(sv[1], NULL, &pl, &peer), 0);
    for (uint32_t i = 0; i < 8; i++)
        cr_assert_eq(sbx_channel_send(peer, u32_msg(i % 2 ? T_PASS : T_FILTERED, SBX_PRIORITY_NORMAL, i)), 0);
    unsigned long long end = sbx_now_ns() + 3000000000ull;
    while ((r.nmsg < 4 || !r.connected) && sbx_now_ns() < end) {
        sbx_channel_process_events(peer);
        sbx_channel_proxy_dispatch(px, 10);
    }
    cr_expect_eq(r.connected, 1);
    cr_expect_eq(r.peer, getpid());
    cr_expect_eq(sbx_channel_proxy_peer_pid(px), getpid());
    cr_assert_eq(r.nmsg, 4);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(r.types[i], T_PASS);
        cr_expect_eq(r.vals[i], (uint32_t)(2 * i + 1), "FIFO order");
    }
    cr_expect_eq(atomic_load(&f.consumed), 4);
    cr_expect_eq(atomic_load(&f.seen), 8);
    cr_expect(!atomic_load(&f.wrong_thread), "filters run on the IO thread");
    /* the listener thread can also wait on the event fd */
    cr_expect_geq(sbx_channel_proxy_event_fd(px), 0);
    sbx_channel_proxy_free(px);
    sbx_channel_free(peer);
}

/* ---- sync through two proxies, from many threads ---- */

typedef struct echo_ctx {
    sbx_channel_proxy *px;
} echo_ctx;

static bool echo_on_io(void *ctx, sbx_message *msg)
{
    echo_ctx *e = ctx;
    if (!sbx_message_is_sync(msg))
        return true;
    if (sbx_message_type(msg) == T_SILENT)
        return true; /* never answers */
    sbx_pickle_reader rd;
    sbx_message_reader(msg, &rd);
    uint32_t v = 0;
    sbx_pickle_read_uint32(&rd, &v);
    sbx_message *rep = sbx_message_new_reply(msg);
    sbx_pickle_write_uint32(sbx_message_pickle(rep), v + 1);
    sbx_channel_proxy_send(e->px, rep);
    return true;
}

typedef struct caller {
    sbx_channel_proxy *px;
    uint32_t base;
    int ok;
} caller;

static void *call_many(void *arg)
{
    caller *c = arg;
    for (uint32_t i = 0; i < 50; i++) {
        sbx_message *rep = NULL;
        sbx_priority p = (sbx_priority)(i % 3);
        if (sbx_channel_proxy_send_sync(c->px, u32_msg(T_ECHO, p, c->base + i), 5000, &rep) != 0)
            continue;
        sbx_pickle_reader rd;
        sbx_message_reader(rep, &rd);
        uint32_t v = 0;
        if (sbx_pickle_read_uint32(&rd, &v) == 0 && v == c->base + i + 1)
            c->ok++;
        sbx_message_free(rep);
    }
    return NULL;
}

Test(proxy, sync_from_many_threads_and_timeout)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    echo_ctx e = { 0 };
    sbx_channel_listener el = { echo_on_io, NULL, NULL, &e };
    sbx_channel_proxy_options po = { .listener_on_io_thread = true };
    cr_assert_eq(sbx_channel_proxy_new(sv[0], NULL, &el, NULL, 0, &po, &e.px), 0);
    rec r = { 0 };
    sbx_channel_proxy *px = proxy_on(sv[1], &r, NULL, NULL, false);

    pthread_t th[4];
    caller c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (caller){ px, (uint32_t)i * 1000, 0 };
        pthread_create(&th[i], NULL, call_many, &c[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(c[i].ok, 50, "thread %d", i);
    }
    sbx_message *rep = NULL;
    unsigned long long t0 = sbx_now_ns();
    cr_expect_eq(sbx_channel_proxy_send_sync(px, u32_msg(T_SILENT, SBX_PRIORITY_NORMAL, 0), 50, &rep),
                 SBX_ERROR_TIMEOUT);
    unsigned long long ms = (sbx_now_ns() - t0) / 1000000ull;
    cr_expect_geq(ms, 45);
    cr_expect_lt(ms, 1000);
    cr_expect_null(rep);
    sbx_channel_proxy_free(px);
    sbx_channel_proxy_free(e.px);
}

static bool sync_from_filter(void *ctx, sbx_channel_proxy *px, sbx_message *msg)
{
    sbx_message *rep = (sbx_message *)1;
    *(int *)ctx = sbx_channel_proxy_send_sync(px, u32_msg(T_ECHO, SBX_PRIORITY_NORMAL, 0), 10, &rep);
    return false;
}

Test(proxy, sync_on_io_thread_is_refused)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    _Atomic int result = 1;
    sbx_message_filter mf = { sync_from_filter, NULL, NULL, (void *)&result };
    rec r = { 0 };
    sbx_channel_listener l = rec_listener(&r);
    sbx_channel_proxy *px;
    cr_assert_eq(sbx_channel_proxy_new(sv[0], NULL, &l, &mf, 1, NULL, &px), 0);
    sbx_channel *peer;
    rec pr = { 0 };
    sbx_channel_listener pl = rec_listener(&pr);
    cr_assert_eq(sbx_channel_new_from_fd(sv[1], NULL, &pl, &peer), 0);
    sbx_channel_send(peer, u32_msg(T_PASS, SBX_PRIORITY_NORMAL, 0));
    unsigned long long end = sbx_now_ns() + 3000000000ull;
    while (r.nmsg < 1 && sbx_now_ns() < end) {
        sbx_channel_process_events(peer);
        sbx_channel_proxy_dispatch(px, 10);
    }
    cr_expect_eq(atomic_load(&result), SBX_ERROR_WRONG_STATE);
    sbx_channel_proxy_free(px);
    sbx_channel_free(peer);
}

/* ---- priorities through the listener queue ---- */

Test(proxy, priorities_in_listener_queue)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    filt f = { .main = pthread_self() };
    rec r = { 0 };
    sbx_channel_proxy *px = proxy_on(sv[0], &r, &f, NULL, false);
    rec pr = { 0 };
    sbx_channel_listener pl = rec_listener(&pr);
    sbx_channel *peer;
    cr_assert_eq(sbx_channel_new_from_fd(sv[1], NULL, &pl, &peer), 0);
    sbx_priority order[] = { SBX_PRIORITY_LOW, SBX_PRIORITY_NORMAL, SBX_PRIORITY_HIGH,
                             SBX_PRIORITY_LOW, SBX_PRIORITY_HIGH, SBX_PRIORITY_NORMAL };
    for (uint32_t i = 0; i < 6; i++)
        cr_assert_eq(sbx_channel_send(peer, u32_msg(T_PASS, order[i], i)), 0);
    /* wait until the IO thread has queued all six, without dispatching */
    unsigned long long end = sbx_now_ns() + 3000000000ull;
    while (atomic_load(&f.seen) < 6 && sbx_now_ns() < end) {
        sbx_channel_process_events(peer);
        usleep(1000);
    }
    cr_assert_eq(atomic_load(&f.seen), 6);
    usleep(20000); /* the sixth is queued right after its filter returns */
    int n = 0;
    while (r.nmsg < 6 && sbx_now_ns() < end)
        n += sbx_channel_proxy_dispatch(px, 10) > 0;
    cr_assert_eq(r.nmsg, 6);
    uint32_t want[] = { 2, 4, 1, 5, 0, 3 };
    for (int i = 0; i < 6; i++)
        cr_expect_eq(r.vals[i], want[i], "position %d", i);
    sbx_channel_proxy_free(px);
    sbx_channel_free(peer);
}

/* ---- peer death ---- */

Test(proxy, peer_death_fails_pending_sync_and_reports_once)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        sbx_channel *ch;
        if (sbx_channel_new_from_fd(sv[1], NULL, NULL, &ch) < 0)
            _exit(2);
        /* serve until a message arrives, then die without replying */
        rec cr = { 0 };
        (void)cr;
        struct pollfd pfd = { sbx_channel_fd(ch), POLLIN, 0 };
        for (;;) {
            poll(&pfd, 1, 1000);
            char b;
            if (recv(sbx_channel_fd(ch), &b, 1, MSG_PEEK) > 0) {
                usleep(100000); /* let the sync call start waiting */
                kill(getpid(), SIGKILL);
            }
        }
    }
    close(sv[1]);
    rec r = { 0 };
    sbx_channel_proxy *px = proxy_on(sv[0], &r, NULL, NULL, false);
    sbx_message *rep = NULL;
    unsigned long long t0 = sbx_now_ns();
    cr_expect_eq(sbx_channel_proxy_send_sync(px, u32_msg(T_ECHO, SBX_PRIORITY_NORMAL, 1), 10000, &rep),
                 SBX_ERROR_CHANNEL_ERROR);
    cr_expect_lt((sbx_now_ns() - t0) / 1000000ull, 5000);
    int last = 0;
    unsigned long long end = sbx_now_ns() + 3000000000ull;
    while (r.errors == 0 && sbx_now_ns() < end)
        last = sbx_channel_proxy_dispatch(px, 50);
    cr_expect_eq(r.errors, 1);
    cr_expect_lt(last, 0);
    cr_expect_eq(sbx_channel_proxy_dispatch(px, 20), 0, "error reported once");
    cr_expect_eq(r.errors, 1);
    cr_expect_eq(sbx_channel_proxy_send(px, u32_msg(T_PASS, SBX_PRIORITY_NORMAL, 0)), SBX_ERROR_CHANNEL_ERROR);
    sbx_channel_proxy_free(px);
    waitpid(pid, NULL, 0);
}

/* ---- flood: a listener that does not keep up stops the reading ---- */

Test(proxy, flood_is_bounded_by_backpressure)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    sbx_channel_options po = { .max_incoming_queue = 256 * 1024 };
    rec r = { 0 };
    sbx_channel_proxy *px = proxy_on(sv[0], &r, NULL, &po, false);
    sbx_channel_options so = { .max_write_queue = 1024 * 1024 };
    rec pr = { 0 };
    sbx_channel_listener pl = rec_listener(&pr);
    sbx_channel *peer;
    cr_assert_eq(sbx_channel_new_from_fd(sv[1], &so, &pl, &peer), 0);
    static uint8_t blob[65536];
    size_t accepted = 0;
    int sent = 0, full = 0;
    /* Push for 200 ms while nobody dispatches: without backpressure this
     * would move hundreds of megabytes. */
    unsigned long long stop = sbx_now_ns() + 200000000ull;
    while (sbx_now_ns() < stop) {
        sbx_message *m = sbx_message_new(1, T_BULK, SBX_PRIORITY_NORMAL);
        sbx_pickle_write_bytes(sbx_message_pickle(m), blob, sizeof blob);
        int rc = sbx_channel_send(peer, m);
        if (rc == SBX_ERROR_NO_SPACE) {
            full++;
            sbx_channel_process_events(peer);
            usleep(1000);
            continue;
        }
        cr_assert_eq(rc, 0);
        accepted += sizeof blob;
        sent++;
        sbx_channel_process_events(peer);
    }
    cr_log_info("accepted %zu bytes in 200 ms", accepted);
    cr_expect_gt(full, 0, "the sender felt the backpressure");
    cr_expect_lt(accepted, 8u * 1024 * 1024, "accepted %zu bytes", accepted);
    unsigned long long end = sbx_now_ns() + 30000000000ull; /* generous: a loaded machine; normally < 1 s */
    /* draining the listener lets everything through */
    while (r.nmsg < sent && sbx_now_ns() < end) {
        sbx_channel_proxy_dispatch(px, 5);
        sbx_channel_process_events(peer);
    }
    cr_expect_eq(r.nmsg, sent);
    sbx_channel_proxy_free(px);
    sbx_channel_free(peer);
}

/* A peer that floods fd-carrying messages while the listener is slow must
 * not fill our fd table: reading pauses once enough fds are queued. */
Test(proxy, fd_flood_is_bounded)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    rec r = { 0 };
    sbx_channel_proxy *px = proxy_on(sv[0], &r, NULL, NULL, false);
    rec pr = { 0 };
    sbx_channel_listener pl = rec_listener(&pr);
    sbx_channel *peer;
    cr_assert_eq(sbx_channel_new_from_fd(sv[1], NULL, &pl, &peer), 0);
    int base = count_open_fds();
    int maxfds = base, sent = 0, full = 0;
    for (int i = 0; i < 4000; i++) {
        sbx_message *m = sbx_message_new(1, T_BULK, SBX_PRIORITY_NORMAL);
        sbx_message_write_fd(m, 0, false);
        int rc = sbx_channel_send(peer, m);
        if (rc == SBX_ERROR_NO_SPACE) {
            full++;
            usleep(200);
        } else {
            cr_assert_eq(rc, 0, "send: %s", sbx_strerror(rc));
            sent++;
        }
        sbx_channel_process_events(peer);
        if (i % 50 == 0) {
            int n = count_open_fds();
            if (n > maxfds)
                maxfds = n;
        }
    }
    cr_log_info("sent %d, refused %d, max extra fds %d", sent, full, maxfds - base);
    cr_expect_gt(full, 0, "the sender was pushed back");
    cr_expect_lt(maxfds - base, 1200, "fds held: %d", maxfds - base);
    unsigned long long end = sbx_now_ns() + 30000000000ull; /* generous: a loaded machine; normally < 1 s */
    while (r.nmsg < sent && sbx_now_ns() < end) {
        sbx_channel_proxy_dispatch(px, 5);
        sbx_channel_process_events(peer);
    }
    cr_expect_eq(r.nmsg, sent);
    cr_expect_eq(r.errors, 0);
    sbx_channel_proxy_free(px);
    sbx_channel_free(peer);
    cr_expect_leq(count_open_fds(), base - 2, "all released");
}
