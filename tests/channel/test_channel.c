/* Channel: handshake, framing, fds, hostile peers, priorities, sync. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "chan_test.h"
#include "sbx_test.h"
#include "channel/message_internal.h"

static sbx_message *u32_msg(uint32_t type, sbx_priority prio, uint32_t v)
{
    sbx_message *m = sbx_message_new(1, type, prio);
    cr_assert_not_null(m);
    cr_assert_eq(sbx_pickle_write_uint32(sbx_message_pickle(m), v), 0);
    return m;
}

static void make_pair(rec r[2], const sbx_channel_options *o0, const sbx_channel_options *o1, sbx_channel **a,
                      sbx_channel **b)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    sbx_channel_listener l0 = rec_listener(&r[0]), l1 = rec_listener(&r[1]);
    cr_assert_eq(sbx_channel_new_from_fd(sv[0], o0, &l0, a), 0);
    cr_assert_eq(sbx_channel_new_from_fd(sv[1], o1, &l1, b), 0);
    r[0].ch = *a;
    r[1].ch = *b;
}

static bool got_connected_or_error(void *arg)
{
    rec *r = arg;
    return r->connected || r->errors;
}

/* ---------------------------------------------------------------- HELLO */

Test(channel, hello_without_secret)
{
    rec r[2] = { 0 };
    sbx_channel *a, *b;
    make_pair(r, NULL, NULL, &a, &b);
    cr_expect(!sbx_channel_is_connected(a));
    cr_assert(pump(a, b, both_connected, r, 2000));
    cr_expect_eq(r[0].connected, 1);
    cr_expect_eq(r[0].peer, getpid());
    cr_expect_eq(sbx_channel_peer_pid(b), getpid());
    cr_expect_eq(sbx_channel_peer_hello_pid(b), getpid());
    cr_expect(sbx_channel_is_connected(a));
    cr_expect_eq(r[0].errors + r[1].errors, 0);
    sbx_channel_free(a);
    sbx_channel_free(b);
}

Test(channel, new_pair_constructor)
{
    rec r[2] = { 0 };
    sbx_channel_listener l0 = rec_listener(&r[0]), l1 = rec_listener(&r[1]);
    sbx_channel *a, *b;
    cr_assert_eq(sbx_channel_new_pair(NULL, &l0, &l1, &a, &b), 0);
    cr_assert(pump(a, b, both_connected, r, 2000));
    sbx_channel_free(a);
    sbx_channel_free(b);
}

Test(channel, hello_with_matching_secret)
{
    rec r[2] = { 0 };
    sbx_channel_options o = { .has_secret = true, .secret = 0xC0FFEE11u };
    sbx_channel *a, *b;
    make_pair(r, &o, &o, &a, &b);
    cr_assert(pump(a, b, both_connected, r, 2000));
    sbx_channel_free(a);
    sbx_channel_free(b);
}

static bool both_error(void *arg)
{
    rec *r = arg;
    return r[0].errors && r[1].errors;
}

Test(channel, wrong_secret_rejected)
{
    rec r[2] = { 0 };
    sbx_channel_options o0 = { .has_secret = true, .secret = 1 }, o1 = { .has_secret = true, .secret = 2 };
    sbx_channel *a, *b;
    make_pair(r, &o0, &o1, &a, &b);
    cr_assert(pump(a, b, both_error, r, 2000));
    cr_expect_eq(r[0].last_error, SBX_ERROR_DENIED);
    cr_expect_eq(r[0].connected, 0);
    cr_expect_eq(r[1].connected, 0);
    cr_expect_eq(r[0].errors, 1);
    sbx_message *m = u32_msg(5, SBX_PRIORITY_NORMAL, 1);
    cr_expect_eq(sbx_channel_send(a, m), SBX_ERROR_CHANNEL_ERROR);
    sbx_channel_free(a);
    sbx_channel_free(b);
}

Test(channel, missing_secret_rejected)
{
    rec r = { 0 };
    sbx_channel_options o = { .has_secret = true, .secret = 77 };
    int raw;
    sbx_channel *ch = raw_peer_channel(&r, &o, &raw);
    uint8_t buf[64];
    size_t n = raw_hello(buf, getpid(), false, 0);
    write_all(raw, buf, n);
    cr_assert(pump(ch, NULL, has_error, &r, 2000));
    cr_expect_eq(r.last_error, SBX_ERROR_DENIED);
    cr_expect_eq(r.connected, 0);
    sbx_channel_free(ch);
    close(raw);
}

Test(channel, raw_hello_with_secret_accepted)
{
    rec r = { 0 };
    sbx_channel_options o = { .has_secret = true, .secret = 77 };
    int raw;
    sbx_channel *ch = raw_peer_channel(&r, &o, &raw);
    uint8_t buf[64];
    write_all(raw, buf, raw_hello(buf, getpid(), true, 77));
    sbx_channel_process_events(ch);
    cr_expect_eq(r.connected, 1);
    cr_expect_eq(r.errors, 0);
    sbx_channel_free(ch);
    close(raw);
}

Test(channel, data_before_hello_rejected)
{
    rec r = { 0 };
    int raw;
    sbx_channel *ch = raw_peer_channel(&r, NULL, &raw);
    uint8_t buf[128];
    size_t n = raw_u32_msg(buf, 5, 1, 9);
    n += raw_hello(buf + n, getpid(), false, 0);
    write_all(raw, buf, n);
    cr_expect_eq(sbx_channel_process_events(ch), SBX_ERROR_PROTOCOL);
    cr_expect_eq(r.nmsg, 0);
    cr_expect_eq(r.connected, 0);
    cr_expect_eq(r.errors, 1);
    /* once closed, it stays closed and on_error never fires again */
    cr_expect_eq(sbx_channel_process_events(ch), SBX_ERROR_PROTOCOL);
    cr_expect_eq(r.errors, 1);
    sbx_channel_free(ch);
    close(raw);
}

Test(channel, hello_pid_must_match_kernel)
{
    rec r = { 0 };
    int raw;
    sbx_channel *ch = raw_peer_channel(&r, NULL, &raw);
    uint8_t buf[64];
    write_all(raw, buf, raw_hello(buf, getpid() + 1, false, 0));
    cr_expect_eq(sbx_channel_process_events(ch), SBX_ERROR_DENIED);
    cr_expect_eq(r.connected, 0);
    sbx_channel_free(ch);
    close(raw);
}

Test(channel, second_hello_or_reserved_type_is_protocol_error)
{
    for (int variant = 0; variant < 2; variant++) {
        rec r = { 0 };
        int raw;
        sbx_channel *ch = raw_peer_channel(&r, NULL, &raw);
        uint8_t buf[128];
        size_t n = raw_hello(buf, getpid(), false, 0);
        if (variant == 0)
            n += raw_hello(buf + n, getpid(), false, 0);
        else
            n += raw_u32_msg(buf + n, SBX_MESSAGE_TYPE_RESERVED + 1, 1, 0);
        write_all(raw, buf, n);
        cr_expect_eq(sbx_channel_process_events(ch), SBX_ERROR_PROTOCOL);
        sbx_channel_free(ch);
        close(raw);
    }
}

Test(channel, reserved_type_cannot_be_sent)
{
    rec r[2] = { 0 };
    sbx_channel *a, *b;
    make_pair(r, NULL, NULL, &a, &b);
    cr_expect_eq(sbx_channel_send(a, sbx_message_new(1, SBX_MESSAGE_TYPE_HELLO, SBX_PRIORITY_NORMAL)), -EINVAL);
    sbx_channel_free(a);
    sbx_channel_free(b);
}

/* --------------------------------------------------------------- framing */

Test(channel, several_messages_in_one_read)
{
    rec r = { 0 };
    int raw;
    sbx_channel *ch = raw_peer_channel(&r, NULL, &raw);
    uint8_t buf[48 + 32 * 50];
    size_t n = raw_hello(buf, getpid(), false, 0);
    for (uint32_t i = 0; i < 50; i++)
        n += raw_u32_msg(buf + n, 100 + i, 1, i * 3);
    write_all(raw, buf, n);
    cr_assert_eq(sbx_channel_process_events(ch), 0);
    cr_expect_eq(r.connected, 1);
    cr_assert_eq(r.nmsg, 50);
    for (int i = 0; i < 50; i++) {
        cr_expect_eq(r.types[i], 100u + (uint32_t)i);
        cr_expect_eq(r.vals[i], (uint32_t)i * 3);
    }
    sbx_channel_free(ch);
    close(raw);
}

static bool check_big_payload(rec *r, sbx_message *msg)
{
    sbx_pickle_reader rd;
    sbx_message_reader(msg, &rd);
    uint32_t v;
    const void *d;
    size_t n;
    cr_assert_eq(sbx_pickle_read_uint32(&rd, &v), 0);
    cr_assert_eq(sbx_pickle_read_bytes(&rd, &d, &n), 0);
    cr_assert(sbx_pickle_reader_done(&rd));
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(((const uint8_t *)d)[i], (uint8_t)(i * 7 + v));
    *(size_t *)r->user = n;
    return true;
}

static size_t encode_bytes_msg(uint8_t *out, uint32_t type, uint32_t v, size_t len)
{
    size_t padded = (len + 3) & ~(size_t)3;
    size_t payload = 8 + 8 + padded;
    raw_header(out, (uint32_t)payload, 1, type, 1, 0, 0);
    put32(out + 24, 3);
    put32(out + 28, v);
    put32(out + 32, 8);
    put32(out + 36, (uint32_t)len);
    for (size_t i = 0; i < padded; i++)
        out[40 + i] = i < len ? (uint8_t)(i * 7 + v) : 0;
    return 24 + payload;
}

Test(channel, one_message_by_one_byte_writes)
{
    /* small (copied out of the read buffer) and large (read in place) */
    size_t sizes[] = { 1001, 70001 };
    for (int k = 0; k < 2; k++) {
        rec r = { 0 };
        size_t got = 0;
        r.handler = check_big_payload;
        r.user = &got;
        int raw;
        sbx_channel *ch = raw_peer_channel(&r, NULL, &raw);
        uint8_t *buf = malloc(48 + 64 + sizes[k]);
        size_t n = raw_hello(buf, getpid(), false, 0);
        n += encode_bytes_msg(buf + n, 42, 5, sizes[k]);
        size_t step = k == 0 ? 1 : 97; /* the large one in odd-sized pieces */
        for (size_t i = 0; i < n; i += step) {
            size_t len = n - i < step ? n - i : step;
            write_all(raw, buf + i, len);
            cr_assert_eq(sbx_channel_process_events(ch), 0);
            if (i + len < n)
                cr_assert_eq(r.nmsg, 0, "delivered early at byte %zu", i);
        }
        cr_expect_eq(r.nmsg, 1);
        cr_expect_eq(got, sizes[k]);
        free(buf);
        sbx_channel_free(ch);
        close(raw);
    }
}

Test(channel, oversized_header_is_error_not_allocation)
{
    uint32_t bad[] = { 0xFFFFFFF0u, SBX_PICKLE_MAX_SIZE + 4, (2u << 20) };
    for (int k = 0; k < 3; k++) {
        rec r = { 0 };
        sbx_channel_options o = { .max_message_size = 1u << 20 };
        int raw;
        sbx_channel *ch = raw_peer_channel(&r, &o, &raw);
        uint8_t buf[96];
        size_t n = raw_hello(buf, getpid(), false, 0);
        raw_header(buf + n, bad[k], 1, 5, 1, 0, 0);
        n += 24;
        write_all(raw, buf, n);
        /* the payload never comes: the header alone must fail */
        cr_expect_eq(sbx_channel_process_events(ch), SBX_ERROR_TOO_LARGE, "size %u", bad[k]);
        sbx_channel_free(ch);
        close(raw);
    }
}

Test(channel, malformed_headers_rejected)
{
    struct { uint32_t size, flags, nfds, id; } bad[] = {
        { 6, 1, 0, 0 },                  /* payload not a multiple of 4 */
        { 0, 3, 0, 0 },                  /* priority 3 */
        { 0, 1 | 0x100, 0, 0 },          /* unknown flag */
        { 0, 1 | 0x4 | 0x8, 0, 5 },      /* sync and reply */
        { 0, 1 | 0x10, 0, 0 },           /* reply-error without reply */
        { 0, 1 | 0x4, 0, 0 },            /* sync without id */
        { 0, 1, 0, 9 },                  /* id without sync */
        { 0, 1, SBX_MESSAGE_MAX_FDS + 1, 0 },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        rec r = { 0 };
        int raw;
        sbx_channel *ch = raw_peer_channel(&r, NULL, &raw);
        uint8_t buf[96];
        size_t n = raw_hello(buf, getpid(), false, 0);
        raw_header(buf + n, bad[k].size, 1, 5, bad[k].flags, bad[k].nfds, bad[k].id);
        n += 24 + bad[k].size;
        write_all(raw, buf, n);
        cr_expect_lt(sbx_channel_process_events(ch), 0, "case %zu", k);
        cr_expect_eq(r.nmsg, 0);
        cr_expect_eq(r.errors, 1);
        sbx_channel_free(ch);
        close(raw);
    }
}

Test(channel, garbage_bytes_never_crash)
{
    uint64_t x = 0xdeadbeefcafef00dull;
    for (int iter = 0; iter < 300; iter++) {
        rec r = { 0 };
        int raw;
        sbx_channel *ch = raw_peer_channel(&r, NULL, &raw);
        uint8_t buf[600];
        size_t n = iter % 2 ? raw_hello(buf, getpid(), false, 0) : 0;
        size_t len = n + (size_t)(iter * 7 % 500);
        for (size_t i = n; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        write_all(raw, buf, len);
        close(raw);
        for (int k = 0; k < 4; k++)
            sbx_channel_process_events(ch);
        cr_expect_eq(r.errors, 1);
        sbx_channel_free(ch);
    }
}

/* ------------------------------------------------------------------ fds */

Test(channel, fd_passing)
{
    rec r[2] = { 0 };
    sbx_channel *a, *b;
    make_pair(r, NULL, NULL, &a, &b);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    /* an fd-less message, then one with 3 fds, then fd-less again */
    cr_assert_eq(sbx_channel_send(a, u32_msg(1, SBX_PRIORITY_NORMAL, 10)), 0);
    sbx_message *m = sbx_message_new(1, 2, SBX_PRIORITY_NORMAL);
    cr_assert_eq(sbx_message_write_fd(m, p[1], false), 0);
    cr_assert_eq(sbx_pickle_write_cstr(sbx_message_pickle(m), "between"), 0);
    cr_assert_eq(sbx_message_write_fd(m, p[1], false), 0);
    cr_assert_eq(sbx_message_write_fd(m, open("/dev/null", O_RDONLY | O_CLOEXEC), true), 0);
    cr_assert_eq(sbx_channel_send(a, m), 0);
    cr_assert_eq(sbx_channel_send(a, u32_msg(3, SBX_PRIORITY_NORMAL, 30)), 0);
    close(p[1]);

    struct { int fds[3]; int got; } st = { { -1, -1, -1 }, 0 };
    r[1].user = &st;
    r[1].handler = NULL;
    bool done = false;
    unsigned long long end = sbx_now_ns() + 2000000000ull;
    while (!done && sbx_now_ns() < end) {
        sbx_channel_process_events(a);
        sbx_channel_process_events(b);
        done = r[1].nmsg >= 3;
    }
    cr_assert_eq(r[1].nmsg, 3);
    cr_expect_eq(r[1].types[0], 1);
    cr_expect_eq(r[1].types[1], 2);
    cr_expect_eq(r[1].types[2], 3);
    sbx_channel_free(a);
    sbx_channel_free(b);
    close(p[0]);
}

typedef struct fd_catch {
    int fd;
    char text[32];
} fd_catch;

static bool take_fd(rec *r, sbx_message *msg)
{
    fd_catch *c = r->user;
    sbx_pickle_reader rd;
    sbx_message_reader(msg, &rd);
    cr_assert_eq(sbx_message_num_fds(msg), 1);
    cr_assert_eq(sbx_message_read_fd(msg, &rd, &c->fd), 0);
    cr_assert_eq(sbx_pickle_read_string_copy(&rd, c->text, sizeof c->text), 0);
    /* a second read of the same index fails */
    sbx_pickle_reader rd2;
    sbx_message_reader(msg, &rd2);
    int again;
    cr_expect_eq(sbx_message_read_fd(msg, &rd2, &again), SBX_ERROR_INVALID_IPC);
    return true;
}

static bool got_one(void *arg)
{
    return ((rec *)arg)->nmsg > 0;
}

Test(channel, passed_fd_works_end_to_end)
{
    rec r[2] = { 0 };
    sbx_channel *a, *b;
    make_pair(r, NULL, NULL, &a, &b);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    sbx_message *m = sbx_message_new(1, 7, SBX_PRIORITY_NORMAL);
    cr_assert_eq(sbx_message_write_fd(m, p[1], true), 0);
    cr_assert_eq(sbx_pickle_write_cstr(sbx_message_pickle(m), "pipe"), 0);
    cr_assert_eq(sbx_channel_send(a, m), 0);
    fd_catch c = { -1, "" };
    r[1].handler = take_fd;
    r[1].user = &c;
    cr_assert(pump(a, b, got_one, &r[1], 2000));
    cr_assert_geq(c.fd, 0);
    cr_expect_str_eq(c.text, "pipe");
    cr_assert_eq(write(c.fd, "ok", 2), 2);
    close(c.fd);
    char buf[4];
    cr_assert_eq(read(p[0], buf, sizeof buf), 2);
    cr_assert_eq(read(p[0], buf, sizeof buf), 0, "every copy of the write end is closed");
    close(p[0]);
    sbx_channel_free(a);
    sbx_channel_free(b);
}

/* A hostile peer attaches fds a header does not announce, announces fds it
 * does not attach, or attaches more than any message may carry: the
 * channel fails and every received fd is closed. */
Test(channel, unannounced_fds_are_closed_not_leaked)
{
    for (int variant = 0; variant < 6; variant++) {
        int before = count_open_fds();
        rec r = { 0 };
        int raw;
        sbx_channel *ch = raw_peer_channel(&r, NULL, &raw);
        uint8_t buf[128];
        if (variant != 5)
            write_all(raw, buf, raw_hello(buf, getpid(), false, 0));
        int fds[40];
        for (int i = 0; i < 40; i++)
            fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        size_t n;
        switch (variant) {
        case 0: /* two fds with a header that announces none */
            n = raw_u32_msg(buf, 5, 1, 0);
            cr_assert_gt(send_with_fds(raw, buf, n, fds, 2), 0);
            break;
        case 1: /* header announces two, one attached */
            n = raw_u32_msg(buf, 5, 1, 0);
            put32(buf + 16, 2);
            cr_assert_gt(send_with_fds(raw, buf, n, fds, 1), 0);
            break;
        case 2: /* 40 fds in one sendmsg: more than a message may carry */
            n = raw_u32_msg(buf, 5, 1, 0);
            cr_assert_gt(send_with_fds(raw, buf, n, fds, 40), 0);
            break;
        case 3: /* fds with a malformed header */
            n = raw_u32_msg(buf, 5, 1, 0);
            put32(buf + 12, 0xFF);
            cr_assert_gt(send_with_fds(raw, buf, n, fds, 3), 0);
            break;
        case 5: /* fds riding on the HELLO itself */
            n = raw_hello(buf, getpid(), false, 0);
            cr_assert_gt(send_with_fds(raw, buf, n, fds, 3), 0);
            break;
        default: /* fds with a partial message, then the peer leaves */
            n = raw_u32_msg(buf, 5, 1, 0);
            put32(buf + 16, 2);
            cr_assert_gt(send_with_fds(raw, buf, 10, fds, 2), 0);
            close(raw);
            raw = -1;
            break;
        }
        for (int i = 0; i < 40; i++)
            close(fds[i]);
        for (int k = 0; k < 3; k++)
            sbx_channel_process_events(ch);
        cr_expect_eq(r.errors, 1, "variant %d", variant);
        cr_expect_eq(r.nmsg, 0, "variant %d", variant);
        if (variant == 5)
            cr_expect_eq(r.connected, 0);
        sbx_channel_free(ch);
        if (raw >= 0)
            close(raw);
        cr_expect_eq(count_open_fds(), before, "variant %d leaked fds", variant);
    }
}

Test(channel, fds_freed_when_listener_ignores_them)
{
    int before = count_open_fds();
    rec r[2] = { 0 };
    sbx_channel *a, *b;
    make_pair(r, NULL, NULL, &a, &b);
    for (int i = 0; i < 5; i++) {
        sbx_message *m = sbx_message_new(1, 9, SBX_PRIORITY_NORMAL);
        sbx_message_write_fd(m, 0, false);
        sbx_message_write_fd(m, 1, false);
        cr_assert_eq(sbx_channel_send(a, m), 0);
    }
    unsigned long long end = sbx_now_ns() + 2000000000ull;
    while (r[1].nmsg < 5 && sbx_now_ns() < end) {
        sbx_channel_process_events(a);
        sbx_channel_process_events(b);
    }
    cr_expect_eq(r[1].nmsg, 5);
    sbx_channel_free(a);
    sbx_channel_free(b);
    cr_expect_eq(count_open_fds(), before);
}

/* ---------------------------------------------------- bulk and peer death */

enum { T_CHUNK = 10, T_DONE = 11, T_ECHO = 20, T_SLOW = 21, T_DIE = 22, T_NOBODY = 23, T_ASK = 24 };

static void child_sender(int fd)
{
    sbx_channel *ch;
    if (sbx_channel_new_from_fd(fd, NULL, NULL, &ch) < 0)
        _exit(2);
    const size_t total = 100u * 1024 * 1024;
    uint8_t *data = malloc(200000);
    uint64_t x = 88172645463325252ull;
    size_t sent = 0;
    uint32_t seq = 0;
    uint64_t all = 0xcbf29ce484222325ull;
    while (sent < total) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* mix tiny, medium and large messages */
        size_t len = (seq % 3 == 0) ? x % 64 : (seq % 3 == 1 ? x % 20000 : 65536 + x % 130000);
        if (len > total - sent)
            len = total - sent;
        for (size_t i = 0; i < len; i++)
            data[i] = (uint8_t)(x >> (i % 56)) ^ (uint8_t)i;
        sbx_message *m = sbx_message_new(1, T_CHUNK, SBX_PRIORITY_NORMAL);
        sbx_pickle *p = sbx_message_pickle(m);
        sbx_pickle_write_uint32(p, seq++);
        sbx_pickle_write_bytes(p, data, len);
        sbx_pickle_write_uint64(p, fnv1a(data, len, 0xcbf29ce484222325ull));
        all = fnv1a(data, len, all);
        int r;
        while ((r = sbx_channel_send(ch, m)) == SBX_ERROR_NO_SPACE)
            _exit(3); /* unreachable: the queue is larger than any burst below */
        if (r < 0)
            _exit(4);
        if (sbx_channel_flush(ch, 20000) < 0)
            _exit(5);
        sent += len;
    }
    sbx_message *m = sbx_message_new(1, T_DONE, SBX_PRIORITY_NORMAL);
    sbx_pickle_write_uint32(sbx_message_pickle(m), seq);
    sbx_pickle_write_uint64(sbx_message_pickle(m), all);
    sbx_channel_send(ch, m);
    sbx_channel_flush(ch, 20000);
    /* wait for the parent to hang up */
    while (sbx_channel_process_events(ch) == 0) {
        struct pollfd pfd = { sbx_channel_fd(ch), POLLIN, 0 };
        poll(&pfd, 1, 1000);
    }
    sbx_channel_free(ch);
    free(data);
    _exit(0);
}

typedef struct bulk {
    uint32_t next_seq;
    size_t bytes;
    uint64_t all;
    bool done;
    bool ok;
} bulk;

static bool bulk_handler(rec *r, sbx_message *msg)
{
    bulk *b = r->user;
    sbx_pickle_reader rd;
    sbx_message_reader(msg, &rd);
    uint32_t seq;
    uint64_t h;
    if (sbx_message_type(msg) == T_DONE) {
        cr_assert_eq(sbx_pickle_read_uint32(&rd, &seq), 0);
        cr_assert_eq(sbx_pickle_read_uint64(&rd, &h), 0);
        cr_expect_eq(seq, b->next_seq);
        cr_expect_eq(h, b->all, "whole-stream checksum");
        b->done = true;
        return true;
    }
    const void *d;
    size_t n;
    cr_assert_eq(sbx_pickle_read_uint32(&rd, &seq), 0);
    cr_assert_eq(sbx_pickle_read_bytes(&rd, &d, &n), 0);
    cr_assert_eq(sbx_pickle_read_uint64(&rd, &h), 0);
    cr_assert(sbx_pickle_reader_done(&rd));
    cr_assert_eq(seq, b->next_seq, "in order");
    cr_assert_eq(fnv1a(d, n, 0xcbf29ce484222325ull), h, "checksum of message %u", seq);
    b->all = fnv1a(d, n, b->all);
    b->next_seq++;
    b->bytes += n;
    return true;
}

static bool bulk_done(void *arg)
{
    rec *r = arg;
    return ((bulk *)r->user)->done || r->errors;
}

Test(channel, hundred_megabytes_with_checksums, .timeout = 120)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        child_sender(sv[1]);
    }
    close(sv[1]);
    rec r = { 0 };
    bulk b = { .all = 0xcbf29ce484222325ull };
    r.user = &b;
    r.handler = bulk_handler;
    sbx_channel_listener l = rec_listener(&r);
    sbx_channel *ch;
    cr_assert_eq(sbx_channel_new_from_fd(sv[0], NULL, &l, &ch), 0);
    cr_assert(pump(ch, NULL, bulk_done, &r, 100000));
    cr_expect_eq(r.errors, 0);
    cr_expect_eq(r.peer, pid, "peer pid is the child (SCM_CREDENTIALS), not the socketpair's creator");
    cr_expect(b.done);
    cr_expect_eq(b.bytes, 100u * 1024 * 1024);
    sbx_channel_free(ch);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}

Test(channel, peer_death_fires_on_error_once)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        sbx_channel *ch;
        sbx_channel_new_from_fd(sv[1], NULL, NULL, &ch);
        sbx_channel_flush(ch, 1000);
        char c;
        if (read(go[0], &c, 1) < 0) /* die once the parent has our HELLO */
            _exit(1);
        kill(getpid(), SIGKILL);
    }
    close(sv[1]);
    rec r = { 0 };
    sbx_channel_listener l = rec_listener(&r);
    sbx_channel *ch;
    cr_assert_eq(sbx_channel_new_from_fd(sv[0], NULL, &l, &ch), 0);
    cr_assert(pump(ch, NULL, got_connected_or_error, &r, 5000));
    cr_assert_eq(write(go[1], "x", 1), 1);
    cr_assert(pump(ch, NULL, has_error, &r, 5000));
    cr_expect_eq(r.connected, 1);
    cr_expect_eq(r.errors, 1);
    cr_expect_eq(r.last_error, SBX_ERROR_CHANNEL_ERROR);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(sbx_channel_process_events(ch), SBX_ERROR_CHANNEL_ERROR);
    cr_expect_eq(r.errors, 1);
    cr_expect_eq(sbx_channel_send(ch, u32_msg(1, SBX_PRIORITY_NORMAL, 0)), SBX_ERROR_CHANNEL_ERROR);
    sbx_channel_free(ch);
    waitpid(pid, NULL, 0);
}

/* ------------------------------------------------------------ priorities */

Test(channel, higher_priority_first_fifo_within)
{
    rec r[2] = { 0 };
    sbx_channel *a, *b;
    make_pair(r, NULL, NULL, &a, &b);
    cr_assert(pump(a, b, both_connected, r, 2000));
    sbx_priority order[] = { SBX_PRIORITY_LOW, SBX_PRIORITY_NORMAL, SBX_PRIORITY_HIGH, SBX_PRIORITY_LOW,
                             SBX_PRIORITY_HIGH, SBX_PRIORITY_NORMAL, SBX_PRIORITY_LOW, SBX_PRIORITY_HIGH };
    for (uint32_t i = 0; i < 8; i++)
        cr_assert_eq(sbx_channel_send(a, u32_msg(50, order[i], i)), 0);
    cr_assert_eq(sbx_channel_process_events(b), 0);
    cr_assert_eq(r[1].nmsg, 8);
    uint32_t want[] = { 2, 4, 7, 1, 5, 0, 3, 6 };
    for (int i = 0; i < 8; i++)
        cr_expect_eq(r[1].vals[i], want[i], "position %d", i);
    sbx_channel_free(a);
    sbx_channel_free(b);
}

/* ------------------------------------------------------------------ sync */

static bool responder(rec *r, sbx_message *msg)
{
    uint32_t t = sbx_message_type(msg);
    if (t == T_DIE)
        _exit(0);
    if (t == T_NOBODY)
        return false;
    if (!sbx_message_is_sync(msg))
        return true;
    if (t == T_SLOW)
        usleep(300 * 1000);
    if (t == T_ASK) {
        /* Ask the caller back before answering: its send_sync must serve
         * our call while it waits for its own. */
        sbx_message *q = sbx_message_new(1, T_ECHO, SBX_PRIORITY_NORMAL);
        sbx_pickle_write_uint32(sbx_message_pickle(q), 1000);
        sbx_message *inner = NULL;
        uint32_t v = 0;
        if (sbx_channel_send_sync(r->ch, q, 5000, &inner) == 0) {
            sbx_pickle_reader rd;
            sbx_message_reader(inner, &rd);
            sbx_pickle_read_uint32(&rd, &v);
            sbx_message_free(inner);
        }
        sbx_message *rep = sbx_message_new_reply(msg);
        sbx_pickle_write_uint32(sbx_message_pickle(rep), v);
        sbx_channel_send(r->ch, rep);
        return true;
    }
    sbx_message *rep = sbx_message_new_reply(msg);
    sbx_pickle_write_uint32(sbx_message_pickle(rep), r->vals[r->nmsg - 1] + 1);
    sbx_channel_send(r->ch, rep);
    return true;
}

static pid_t spawn_responder(int *fd_out)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        static rec r;
        r.handler = responder;
        sbx_channel_listener l = rec_listener(&r);
        if (sbx_channel_new_from_fd(sv[1], NULL, &l, &r.ch) < 0)
            _exit(2);
        while (sbx_channel_process_events(r.ch) == 0) {
            struct pollfd pfd = { sbx_channel_fd(r.ch), sbx_channel_poll_events(r.ch), 0 };
            poll(&pfd, 1, 1000);
        }
        _exit(0);
    }
    close(sv[1]);
    *fd_out = sv[0];
    return pid;
}

static uint32_t reply_u32(sbx_message *rep)
{
    sbx_pickle_reader rd;
    sbx_message_reader(rep, &rd);
    uint32_t v = 0;
    cr_assert_eq(sbx_pickle_read_uint32(&rd, &v), 0);
    return v;
}

Test(channel, sync_call_reply_and_timeout)
{
    int fd;
    pid_t pid = spawn_responder(&fd);
    rec r = { 0 };
    sbx_channel_listener l = rec_listener(&r);
    sbx_channel *ch;
    cr_assert_eq(sbx_channel_new_from_fd(fd, NULL, &l, &ch), 0);
    sbx_message *rep = NULL;
    cr_assert_eq(sbx_channel_send_sync(ch, u32_msg(T_ECHO, SBX_PRIORITY_NORMAL, 41), 5000, &rep), 0);
    cr_assert_not_null(rep);
    cr_expect(sbx_message_is_reply(rep));
    cr_expect_eq(reply_u32(rep), 42);
    sbx_message_free(rep);
    cr_expect_eq(r.connected, 1, "on_connected fired while waiting");

    /* the peer answers after 300 ms; we give up after 50 */
    unsigned long long t0 = sbx_now_ns();
    cr_expect_eq(sbx_channel_send_sync(ch, u32_msg(T_SLOW, SBX_PRIORITY_NORMAL, 1), 50, &rep),
                 SBX_ERROR_TIMEOUT);
    cr_expect_null(rep);
    unsigned long long dt = (sbx_now_ns() - t0) / 1000000ull;
    cr_expect_geq(dt, 45);
    cr_expect_lt(dt, 250);
    /* the late reply is dropped, not a protocol error; later calls work */
    cr_assert_eq(sbx_channel_send_sync(ch, u32_msg(T_ECHO, SBX_PRIORITY_HIGH, 99), 5000, &rep), 0);
    cr_expect_eq(reply_u32(rep), 100);
    sbx_message_free(rep);

    /* nobody handles it: an error reply comes back automatically */
    cr_expect_eq(sbx_channel_send_sync(ch, u32_msg(T_NOBODY, SBX_PRIORITY_NORMAL, 0), 5000, &rep),
                 SBX_ERROR_GENERIC);
    cr_expect(rep && sbx_message_is_reply_error(rep));
    sbx_message_free(rep);
    cr_expect_eq(r.errors, 0);
    sbx_channel_free(ch);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

Test(channel, sync_call_peer_dies_mid_call)
{
    int fd;
    pid_t pid = spawn_responder(&fd);
    rec r = { 0 };
    sbx_channel_listener l = rec_listener(&r);
    sbx_channel *ch;
    cr_assert_eq(sbx_channel_new_from_fd(fd, NULL, &l, &ch), 0);
    sbx_message *rep = NULL;
    unsigned long long t0 = sbx_now_ns();
    cr_expect_eq(sbx_channel_send_sync(ch, u32_msg(T_DIE, SBX_PRIORITY_NORMAL, 0), 10000, &rep),
                 SBX_ERROR_CHANNEL_ERROR);
    cr_expect_lt((sbx_now_ns() - t0) / 1000000ull, 5000, "no wait for the timeout");
    cr_expect_null(rep);
    cr_expect_eq(r.errors, 1);
    cr_expect_eq(sbx_channel_send_sync(ch, u32_msg(T_ECHO, SBX_PRIORITY_NORMAL, 0), 100, &rep),
                 SBX_ERROR_CHANNEL_ERROR);
    sbx_channel_free(ch);
    waitpid(pid, NULL, 0);
}

Test(channel, reply_to_unknown_id_is_protocol_error)
{
    rec r = { 0 };
    int raw;
    sbx_channel *ch = raw_peer_channel(&r, NULL, &raw);
    uint8_t buf[128];
    size_t n = raw_hello(buf, getpid(), false, 0);
    raw_header(buf + n, 0, 1, 5, 1 | 0x8, 0, 777);
    n += 24;
    write_all(raw, buf, n);
    cr_expect_eq(sbx_channel_process_events(ch), SBX_ERROR_PROTOCOL);
    sbx_channel_free(ch);
    close(raw);
}

/* ------------------------------------------------------------- dispatch */

static int on_add(void *ctx, sbx_message *msg, sbx_pickle_reader *r)
{
    int32_t a, b;
    sbx_pickle_read_int32(r, &a);
    sbx_pickle_read_int32(r, &b);
    *(int *)ctx = a + b;
    return 0;
}

static int on_name(void *ctx, sbx_message *msg, sbx_pickle_reader *r)
{
    char buf[16];
    int fd;
    cr_assert_eq(sbx_pickle_read_string_copy(r, buf, sizeof buf), 0);
    cr_assert_eq(sbx_message_read_fd(msg, r, &fd), 0);
    close(fd);
    *(int *)ctx = (int)strlen(buf);
    return 7;
}

static int on_empty(void *ctx, sbx_message *msg, sbx_pickle_reader *r)
{
    *(int *)ctx = -5;
    return 0;
}

SBX_MESSAGE_MAP(test_map){
    SBX_MESSAGE_HANDLER(1, on_add, SBX_PICKLE_INT32, SBX_PICKLE_INT32),
    SBX_MESSAGE_HANDLER(2, on_name, SBX_PICKLE_STRING, SBX_PICKLE_FD),
    SBX_MESSAGE_HANDLER(3, on_empty),
};

Test(channel, message_map_routes_and_checks_types)
{
    int out = 0;
    sbx_message *m = sbx_message_new(1, 1, SBX_PRIORITY_NORMAL);
    sbx_pickle_write_int32(sbx_message_pickle(m), 40);
    sbx_pickle_write_int32(sbx_message_pickle(m), 2);
    cr_expect_eq(sbx_message_dispatch(test_map, SBX_MESSAGE_MAP_SIZE(test_map), &out, m), 0);
    cr_expect_eq(out, 42);
    sbx_message_free(m);

    /* wrong types: the handler does not run */
    out = 0;
    m = sbx_message_new(1, 1, SBX_PRIORITY_NORMAL);
    sbx_pickle_write_int32(sbx_message_pickle(m), 40);
    sbx_pickle_write_uint32(sbx_message_pickle(m), 2);
    cr_expect_eq(sbx_message_dispatch(test_map, SBX_MESSAGE_MAP_SIZE(test_map), &out, m), SBX_ERROR_INVALID_IPC);
    cr_expect_eq(out, 0);
    sbx_message_free(m);

    /* extra trailing field: rejected */
    m = sbx_message_new(1, 3, SBX_PRIORITY_NORMAL);
    sbx_pickle_write_bool(sbx_message_pickle(m), true);
    cr_expect_eq(sbx_message_dispatch(test_map, SBX_MESSAGE_MAP_SIZE(test_map), &out, m), SBX_ERROR_INVALID_IPC);
    sbx_message_free(m);
    m = sbx_message_new(1, 3, SBX_PRIORITY_NORMAL);
    cr_expect_eq(sbx_message_dispatch(test_map, SBX_MESSAGE_MAP_SIZE(test_map), &out, m), 0);
    cr_expect_eq(out, -5);
    sbx_message_free(m);

    /* fd index must name a real attachment */
    m = sbx_message_new(1, 2, SBX_PRIORITY_NORMAL);
    sbx_pickle_write_cstr(sbx_message_pickle(m), "abc");
    sbx_pickle_write_fd_index(sbx_message_pickle(m), 0);
    cr_expect_eq(sbx_message_dispatch(test_map, SBX_MESSAGE_MAP_SIZE(test_map), &out, m), SBX_ERROR_INVALID_IPC);
    sbx_message_free(m);
    m = sbx_message_new(1, 2, SBX_PRIORITY_NORMAL);
    sbx_pickle_write_cstr(sbx_message_pickle(m), "abc");
    sbx_message_write_fd(m, 0, false);
    cr_expect_eq(sbx_message_dispatch(test_map, SBX_MESSAGE_MAP_SIZE(test_map), &out, m), 7);
    cr_expect_eq(out, 3);
    sbx_message_free(m);

    m = sbx_message_new(1, 99, SBX_PRIORITY_NORMAL);
    cr_expect_eq(sbx_message_dispatch(test_map, SBX_MESSAGE_MAP_SIZE(test_map), &out, m), SBX_ERROR_NOT_FOUND);
    sbx_message_free(m);
}

/* ------------------------------------------------------- named sockets */

Test(channel, named_socket_server_and_client)
{
    char *dir = sbx_test_mkdtemp("chan");
    cr_assert_not_null(dir);
    char path[256];
    snprintf(path, sizeof path, "%s/sock", dir);
    sbx_channel_options o = { .has_secret = true, .secret = 1234 };
    int lfd;
    cr_assert_eq(sbx_channel_listen(path, &o, &lfd), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect(S_ISSOCK(st.st_mode));
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    cr_expect_eq(sbx_channel_listen(path, &o, &lfd) < 0, true, "an existing path is refused");
    rec r[2] = { 0 };
    sbx_channel_listener l0 = rec_listener(&r[0]), l1 = rec_listener(&r[1]);
    sbx_channel *cli, *srv;
    cr_assert_eq(sbx_channel_connect(path, &o, &l1, &cli), 0);
    cr_assert_eq(sbx_channel_accept(lfd, &o, &l0, &srv), 0);
    cr_assert(pump(srv, cli, both_connected, r, 2000));
    cr_expect_eq(r[0].peer, getpid());
    cr_assert_eq(sbx_channel_send(cli, u32_msg(8, SBX_PRIORITY_NORMAL, 5)), 0);
    cr_assert(pump(srv, cli, got_one, &r[0], 2000));
    cr_expect_eq(r[0].vals[0], 5);
    sbx_channel_free(cli);
    sbx_channel_free(srv);
    close(lfd);
    unlink(path);
    sbx_test_rmtree(dir);
    free(dir);
}

Test(channel, abstract_socket_wrong_secret)
{
    char name[64];
    snprintf(name, sizeof name, "sbx-test-%d", (int)getpid());
    sbx_channel_options so = { .abstract_socket = true, .has_secret = true, .secret = 1 };
    sbx_channel_options co = { .abstract_socket = true, .has_secret = true, .secret = 2 };
    int lfd;
    cr_assert_eq(sbx_channel_listen(name, &so, &lfd), 0);
    rec r[2] = { 0 };
    sbx_channel_listener l0 = rec_listener(&r[0]), l1 = rec_listener(&r[1]);
    sbx_channel *cli, *srv;
    cr_assert_eq(sbx_channel_connect(name, &co, &l1, &cli), 0);
    cr_assert_eq(sbx_channel_accept(lfd, &so, &l0, &srv), 0);
    cr_assert(pump(srv, cli, has_error, &r[0], 2000));
    cr_expect_eq(r[0].last_error, SBX_ERROR_DENIED);
    cr_expect_eq(r[0].connected, 0);
    sbx_channel_free(cli);
    sbx_channel_free(srv);
    close(lfd);
}

/* ------------------------------------------------------ pid namespaces */

/* A target in its own pid namespace says "pid 1" in HELLO; the broker sees
 * its host pid. SAME_PID_NS rejects the mismatch, EXPECT_PID with the pid
 * from fork accepts, and the target, which cannot see the broker's pid,
 * connects with UNVERIFIED. */
static void pid_ns_case(int mode)
{
    if (unshare(CLONE_NEWPID) < 0)
        cr_skip_test("no pid namespaces: %s", strerror(errno));
    {
        int sv[2];
        cr_assert_eq(sbx_channel_socketpair(sv), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(sv[0]);
            if (getpid() != 1)
                _exit(9);
            static rec cr;
            sbx_channel_options co = { .peer_check = SBX_CHANNEL_PEER_UNVERIFIED };
            sbx_channel_listener l = rec_listener(&cr);
            sbx_channel *ch;
            if (sbx_channel_new_from_fd(sv[1], &co, &l, &ch) < 0)
                _exit(2);
            while (sbx_channel_process_events(ch) == 0 && !cr.connected) {
                struct pollfd pfd = { sbx_channel_fd(ch), POLLIN, 0 };
                poll(&pfd, 1, 1000);
            }
            /* the kernel cannot name the broker from in here */
            _exit(cr.connected ? 0 : 3);
        }
        close(sv[1]);
        rec r = { 0 };
        sbx_channel_options o = { 0 };
        if (mode == 1) {
            o.peer_check = SBX_CHANNEL_PEER_EXPECT_PID;
            o.expected_peer_pid = pid;
        }
        sbx_channel_listener l = rec_listener(&r);
        sbx_channel *ch;
        cr_assert_eq(sbx_channel_new_from_fd(sv[0], &o, &l, &ch), 0);
        bool (*cond)(void *) = mode == 0 ? has_error : got_connected_or_error;
        cr_assert(pump(ch, NULL, cond, &r, 5000));
        if (mode == 0) {
            cr_expect_eq(r.last_error, SBX_ERROR_DENIED);
            cr_expect_eq(r.connected, 0);
        } else {
            cr_expect_eq(r.connected, 1);
            cr_expect_eq(r.peer, pid, "host pid");
            cr_expect_eq(sbx_channel_peer_hello_pid(ch), 1, "the target's own view");
        }
        sbx_channel_free(ch);
        int st;
        waitpid(pid, &st, 0);
        if (mode == 1)
            cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    }
}

Test(channel, pid_namespace_same_ns_check_rejects)
{
    pid_ns_case(0);
}

Test(channel, pid_namespace_expect_pid_accepts)
{
    pid_ns_case(1);
}

static bool parent_echo(rec *r, sbx_message *msg)
{
    if (!sbx_message_is_sync(msg))
        return true;
    sbx_message *rep = sbx_message_new_reply(msg);
    sbx_pickle_write_uint32(sbx_message_pickle(rep), r->vals[r->nmsg - 1] + 1);
    sbx_channel_send(r->ch, rep);
    return true;
}

/* Both sides in a sync call at once: each waiting side keeps serving. */
Test(channel, nested_sync_calls_both_directions)
{
    int fd;
    pid_t pid = spawn_responder(&fd);
    rec r = { 0 };
    r.handler = parent_echo;
    sbx_channel_listener l = rec_listener(&r);
    sbx_channel *ch;
    cr_assert_eq(sbx_channel_new_from_fd(fd, NULL, &l, &ch), 0);
    r.ch = ch;
    sbx_message *rep = NULL;
    cr_assert_eq(sbx_channel_send_sync(ch, u32_msg(T_ASK, SBX_PRIORITY_NORMAL, 0), 5000, &rep), 0);
    cr_expect_eq(reply_u32(rep), 1001, "the peer's nested call was answered during our wait");
    sbx_message_free(rep);
    cr_expect_eq(r.nmsg, 1);
    sbx_channel_free(ch);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

typedef struct bigfd {
    int messages;
    int fds_ok;
} bigfd;

static bool check_big_with_fds(rec *r, sbx_message *msg)
{
    bigfd *b = r->user;
    sbx_pickle_reader rd;
    sbx_message_reader(msg, &rd);
    const void *d;
    size_t n;
    uint32_t want;
    cr_assert_eq(sbx_pickle_read_uint32(&rd, &want), 0);
    for (uint32_t i = 0; i < want; i++) {
        int fd;
        cr_assert_eq(sbx_message_read_fd(msg, &rd, &fd), 0, "fd %u of %u", i, want);
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode))
            b->fds_ok++;
        close(fd);
    }
    cr_assert_eq(sbx_pickle_read_bytes(&rd, &d, &n), 0);
    cr_assert(sbx_pickle_reader_done(&rd));
    for (size_t i = 0; i < n; i += 4093)
        cr_assert_eq(((const uint8_t *)d)[i], (uint8_t)(i ^ want));
    b->messages++;
    return true;
}

/* fds riding on large messages (read in place) and small ones (copied out
 * of the read buffer), back to back, with the writer and reader in lock
 * step or not. */
Test(channel, fds_on_large_and_small_messages)
{
    rec r[2] = { 0 };
    sbx_channel *a, *b;
    make_pair(r, NULL, NULL, &a, &b);
    bigfd st = { 0 };
    r[1].user = &st;
    r[1].handler = check_big_with_fds;
    size_t sizes[] = { 200000, 10, 70000, 0, 1 << 20, 33000, 5 };
    uint32_t nfds[] = { 2, 1, 3, 0, 32, 1, 4 };
    uint8_t *data = malloc(1 << 20);
    int expect_fds = 0, sent = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            for (size_t i = 0; i < sizes[k]; i += 4093)
                data[i] = (uint8_t)(i ^ nfds[k]);
            sbx_message *m = sbx_message_new(1, 70, SBX_PRIORITY_NORMAL);
            sbx_pickle_write_uint32(sbx_message_pickle(m), nfds[k]);
            for (uint32_t f = 0; f < nfds[k]; f++)
                cr_assert_eq(sbx_message_write_fd(m, open("/dev/null", O_RDONLY | O_CLOEXEC), true), 0);
            cr_assert_eq(sbx_pickle_write_bytes(sbx_message_pickle(m), data, sizes[k]), 0);
            int rc;
            while ((rc = sbx_channel_send(a, m)) == SBX_ERROR_NO_SPACE)
                cr_assert_fail("queue full");
            cr_assert_eq(rc, 0);
            sent++;
            expect_fds += (int)nfds[k];
            if (round == 1) /* in lock step: each message read on its own */
                while (st.messages < sent && !r[1].errors) {
                    sbx_channel_process_events(a);
                    sbx_channel_process_events(b);
                }
        }
    }
    unsigned long long end = sbx_now_ns() + 5000000000ull;
    while (st.messages < sent && !r[1].errors && sbx_now_ns() < end) {
        sbx_channel_process_events(a);
        sbx_channel_process_events(b);
    }
    cr_expect_eq(r[1].errors, 0, "error %s", sbx_strerror(r[1].last_error));
    cr_expect_eq(st.messages, sent);
    cr_expect_eq(st.fds_ok, expect_fds);
    free(data);
    sbx_channel_free(a);
    sbx_channel_free(b);
}

static void *drive_from_other_thread(void *arg)
{
    rec *r = arg;
    *(int *)r->user = sbx_channel_process_events(r->ch);
    return NULL;
}

static bool try_second_driver(rec *r, sbx_message *msg)
{
    pthread_t t;
    pthread_create(&t, NULL, drive_from_other_thread, r);
    pthread_join(t, NULL);
    return true;
}

/* Two threads may not drive one channel at once: the second is refused. */
Test(channel, second_driver_thread_refused)
{
    rec r[2] = { 0 };
    sbx_channel *a, *b;
    make_pair(r, NULL, NULL, &a, &b);
    int other = 1;
    r[1].user = &other;
    r[1].handler = try_second_driver;
    cr_assert_eq(sbx_channel_send(a, u32_msg(5, SBX_PRIORITY_NORMAL, 1)), 0);
    cr_assert(pump(a, b, got_one, &r[1], 2000));
    cr_expect_eq(other, SBX_ERROR_WRONG_STATE);
    /* after the callback returned, another thread may drive it */
    cr_expect_eq(sbx_channel_process_events(b), 0);
    sbx_channel_free(a);
    sbx_channel_free(b);
}

Test(channel, message_accessors)
{
    sbx_message *m = sbx_message_new(77, 9, SBX_PRIORITY_HIGH);
    cr_assert_not_null(m);
    cr_expect_eq(sbx_message_routing_id(m), 77);
    cr_expect_eq(sbx_message_type(m), 9);
    cr_expect_eq(sbx_message_priority(m), SBX_PRIORITY_HIGH);
    cr_expect(!sbx_message_is_sync(m));
    cr_expect(!sbx_message_is_reply(m));
    cr_expect_eq(sbx_message_sync_id(m), 0);
    cr_expect_null(sbx_message_new_reply(m), "only a sync message has a reply");
    cr_expect_null(sbx_message_new(1, 1, (sbx_priority)3));
    cr_expect_eq(sbx_message_write_fd(m, -1, false), -EBADF);
    for (unsigned i = 0; i < SBX_MESSAGE_MAX_FDS; i++)
        cr_assert_eq(sbx_message_write_fd(m, 0, false), 0);
    cr_expect_eq(sbx_message_write_fd(m, 0, false), SBX_ERROR_TOO_LARGE);
    cr_expect_eq(sbx_message_num_fds(m), SBX_MESSAGE_MAX_FDS);
    sbx_message_free(m);
}
