/* Shared helpers for the channel suites: a recording listener, a pump that
 * drives channels until a condition holds, and a hand encoder for raw
 * (hostile) peers that writes the wire format byte by byte. */
#ifndef SBX_TESTS_CHAN_TEST_H
#define SBX_TESTS_CHAN_TEST_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sbx/channel.h>
#include <sbx/error.h>

#include "base/fd.h"

#define MAX_REC 4096

typedef struct rec {
    int connected;
    pid_t peer;
    int errors;
    int last_error;
    int nmsg;
    uint32_t types[MAX_REC];
    uint32_t vals[MAX_REC]; /* first uint32 field, if any */
    bool (*handler)(struct rec *r, sbx_message *msg);
    sbx_channel *ch; /* for replies */
    void *user;
} rec;

static inline bool rec_on_message(void *ctx, sbx_message *msg)
{
    rec *r = ctx;
    if (r->nmsg < MAX_REC) {
        r->types[r->nmsg] = sbx_message_type(msg);
        sbx_pickle_reader rd;
        sbx_message_reader(msg, &rd);
        uint32_t v = 0;
        if (sbx_pickle_reader_peek(&rd) == SBX_PICKLE_UINT32)
            sbx_pickle_read_uint32(&rd, &v);
        r->vals[r->nmsg] = v;
    }
    r->nmsg++;
    return r->handler ? r->handler(r, msg) : true;
}

static inline void rec_on_connected(void *ctx, pid_t pid)
{
    rec *r = ctx;
    r->connected++;
    r->peer = pid;
}

static inline void rec_on_error(void *ctx, int err)
{
    rec *r = ctx;
    r->errors++;
    r->last_error = err;
}

static inline sbx_channel_listener rec_listener(rec *r)
{
    sbx_channel_listener l = { rec_on_message, rec_on_connected, rec_on_error, r };
    return l;
}

/* Drive up to two channels until done(arg) or timeout; returns done(). */
static inline bool pump(sbx_channel *a, sbx_channel *b, bool (*done)(void *), void *arg, int timeout_ms)
{
    unsigned long long end = sbx_now_ns() + (unsigned long long)timeout_ms * 1000000ull;
    while (!done(arg)) {
        if (sbx_now_ns() > end)
            return false;
        struct pollfd p[2];
        int n = 0;
        sbx_channel *chs[2];
        if (a) {
            p[n] = (struct pollfd){ sbx_channel_fd(a), sbx_channel_poll_events(a), 0 };
            chs[n++] = a;
        }
        if (b) {
            p[n] = (struct pollfd){ sbx_channel_fd(b), sbx_channel_poll_events(b), 0 };
            chs[n++] = b;
        }
        poll(p, (nfds_t)n, 10);
        for (int i = 0; i < n; i++)
            sbx_channel_process_events(chs[i]);
    }
    return true;
}

static inline bool both_connected(void *arg)
{
    rec *r = arg;
    return r[0].connected && r[1].connected;
}

static inline bool has_error(void *arg)
{
    return ((rec *)arg)->errors > 0;
}

static inline int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n++;
    closedir(d);
    return n; /* includes ".", ".." and the DIR's own fd: compare counts only */
}

/* ---- raw wire encoder (independent of the library's encoder) ---- */

static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Header into out[24]. */
static inline void raw_header(uint8_t *out, uint32_t size, uint32_t routing, uint32_t type, uint32_t flags,
                              uint32_t nfds, uint32_t id)
{
    put32(out, size);
    put32(out + 4, routing);
    put32(out + 8, type);
    put32(out + 12, flags);
    put32(out + 16, nfds);
    put32(out + 20, id);
}

/* A HELLO (48 bytes) into out. */
static inline size_t raw_hello(uint8_t *out, int32_t pid, bool has_secret, uint32_t secret)
{
    raw_header(out, 24, SBX_ROUTING_NONE, SBX_MESSAGE_TYPE_HELLO, 1, 0, 0);
    put32(out + 24, 2);
    put32(out + 28, (uint32_t)pid);
    put32(out + 32, 1);
    put32(out + 36, has_secret ? 1 : 0);
    put32(out + 40, 3);
    put32(out + 44, secret);
    return 48;
}

/* A message with one uint32 field (32 bytes). */
static inline size_t raw_u32_msg(uint8_t *out, uint32_t type, uint32_t flags, uint32_t v)
{
    raw_header(out, 8, 1, type, flags, 0, 0);
    put32(out + 24, 3);
    put32(out + 28, v);
    return 32;
}

static inline void write_all(int fd, const void *buf, size_t len)
{
    cr_assert_eq(sbx_write_full(fd, buf, len), (ssize_t)len);
}

/* sendmsg with fds attached. */
static inline ssize_t send_with_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    struct iovec iov = { (void *)(uintptr_t)buf, len };
    char cbuf[CMSG_SPACE(sizeof(int) * 64)];
    memset(cbuf, 0, sizeof cbuf);
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* A channel on one end of a socketpair whose other end is a raw fd. */
static inline sbx_channel *raw_peer_channel(rec *r, const sbx_channel_options *opts, int *raw)
{
    int sv[2];
    cr_assert_eq(sbx_channel_socketpair(sv), 0);
    sbx_channel_listener l = rec_listener(r);
    sbx_channel *ch = NULL;
    cr_assert_eq(sbx_channel_new_from_fd(sv[0], opts, &l, &ch), 0);
    r->ch = ch;
    *raw = sv[1];
    return ch;
}

static inline uint64_t fnv1a(const void *data, size_t n, uint64_t h)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#endif
