/* Channel throughput and round-trip latency for 64 B and 64 KiB messages,
 * side by side with raw socketpair write/read of the same sizes, measured
 * in the same run (batches interleaved for throughput).
 *
 * Throughput samples are "ns per message" over one batch (a sender thread
 * streaming, the main thread receiving); msgs/s = 1e9 / median. Latency
 * samples are one ping-pong round trip each. ratio = channel / raw, so a
 * throughput ratio <= 1.43 means >= 70% of raw. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sbx/channel.h>
#include <sbx/error.h>

#include "base/fd.h"
#include "bench.h"

enum { T_DATA = 1, T_PING = 2, T_PONG = 3 };

static uint8_t *blob;

/* ------------------------------------------------------------- raw side */

/* Senders are persistent threads released batch by batch through a
 * barrier, so neither side pays thread start-up (or a fresh malloc arena)
 * inside a measurement. */
typedef struct raw_tx {
    int fd;
    size_t size;
    int count;
    int batches;
    pthread_barrier_t go;
} raw_tx;

static void *raw_sender(void *arg)
{
    raw_tx *t = arg;
    for (int b = 0; b < t->batches; b++) {
        pthread_barrier_wait(&t->go);
        for (int i = 0; i < t->count; i++)
            if (sbx_write_full(t->fd, blob, t->size) < 0)
                abort();
    }
    return NULL;
}

static uint64_t raw_batch(raw_tx *t, int rfd)
{
    static uint8_t buf[256 * 1024];
    pthread_barrier_wait(&t->go);
    uint64_t t0 = bench_now_ns();
    size_t want = t->size * (size_t)t->count, got = 0;
    while (got < want) {
        ssize_t n = read(rfd, buf, sizeof buf);
        if (n <= 0)
            abort();
        got += (size_t)n;
    }
    return (bench_now_ns() - t0) / (uint64_t)t->count;
}

/* --------------------------------------------------------- channel side */

typedef struct counter {
    int received;
    size_t bytes;
    sbx_channel *ch; /* for the echo side */
} counter;

static bool count_msg(void *ctx, sbx_message *msg)
{
    counter *c = ctx;
    sbx_pickle_reader r;
    sbx_message_reader(msg, &r);
    const void *d;
    size_t n;
    if (sbx_pickle_read_bytes(&r, &d, &n) == 0)
        c->bytes += n;
    c->received++;
    return true;
}

static sbx_message *data_msg(uint32_t type, size_t size)
{
    sbx_message *m = sbx_message_new(1, type, SBX_PRIORITY_NORMAL);
    if (!m || sbx_pickle_write_bytes(sbx_message_pickle(m), blob, size) < 0)
        abort();
    return m;
}

typedef struct ch_tx {
    sbx_channel *ch;
    size_t size;
    int count;
    int batches;
    pthread_barrier_t go;
} ch_tx;

static void *channel_sender(void *arg)
{
    ch_tx *t = arg;
    for (int b = 0; b < t->batches; b++) {
        pthread_barrier_wait(&t->go);
        for (int i = 0; i < t->count; i++) {
            for (;;) {
                int r = sbx_channel_send(t->ch, data_msg(T_DATA, t->size));
                if (r == 0)
                    break;
                if (r != SBX_ERROR_NO_SPACE)
                    abort();
                /* Queue full: wait until the socket takes more, as an
                 * event loop would (not until the whole queue drained). */
                struct pollfd p = { sbx_channel_fd(t->ch), POLLOUT, 0 };
                poll(&p, 1, 1000);
                if (sbx_channel_process_events(t->ch) < 0)
                    abort();
            }
        }
        if (sbx_channel_flush(t->ch, -1) < 0)
            abort();
    }
    return NULL;
}

static void drive_until(sbx_channel *ch, int *counter_field, int target)
{
    while (*counter_field < target) {
        struct pollfd p = { sbx_channel_fd(ch), sbx_channel_poll_events(ch), 0 };
        poll(&p, 1, 1000);
        if (sbx_channel_process_events(ch) < 0)
            abort();
    }
}

static uint64_t channel_batch(ch_tx *t, sbx_channel *rx, counter *c)
{
    int start = c->received;
    pthread_barrier_wait(&t->go);
    uint64_t t0 = bench_now_ns();
    drive_until(rx, &c->received, start + t->count);
    return (bench_now_ns() - t0) / (uint64_t)t->count;
}

static void connect_pair(sbx_channel **a, sbx_channel **b, counter *ca, counter *cb,
                         bool (*on_a)(void *, sbx_message *), bool (*on_b)(void *, sbx_message *))
{
    sbx_channel_listener la = { on_a, NULL, NULL, ca }, lb = { on_b, NULL, NULL, cb };
    sbx_channel_options o = { 0 };
    const char *q = getenv("SBX_BENCH_QUEUE");
    if (q)
        o.max_write_queue = (size_t)atol(q);
    if (sbx_channel_new_pair(&o, &la, &lb, a, b) < 0)
        abort();
    while (!sbx_channel_is_connected(*a) || !sbx_channel_is_connected(*b)) {
        sbx_channel_process_events(*a);
        sbx_channel_process_events(*b);
    }
    ca->ch = *a;
    cb->ch = *b;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void throughput(size_t size, int count, int batches, bench_result *raw_r, bench_result *ch_r, double *paired)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    counter ca = { 0 }, cb = { 0 };
    sbx_channel *a, *b;
    connect_pair(&a, &b, &ca, &cb, count_msg, count_msg);
    bench_samples rs, cs;
    bench_samples_init(&rs, (size_t)batches);
    bench_samples_init(&cs, (size_t)batches);
    raw_tx rt = { .fd = sv[1], .size = size, .count = count, .batches = batches + 1 };
    ch_tx ct = { .ch = a, .size = size, .count = count, .batches = batches + 1 };
    pthread_barrier_init(&rt.go, NULL, 2);
    pthread_barrier_init(&ct.go, NULL, 2);
    pthread_t rth, cth;
    pthread_create(&rth, NULL, raw_sender, &rt);
    pthread_create(&cth, NULL, channel_sender, &ct);
    /* one warm-up batch of each, then interleaved batches */
    raw_batch(&rt, sv[0]);
    channel_batch(&ct, b, &cb);
    double *pair = malloc(sizeof *pair * (size_t)batches);
    for (int i = 0; i < batches; i++) {
        uint64_t r = raw_batch(&rt, sv[0]);
        uint64_t c = channel_batch(&ct, b, &cb);
        bench_samples_add(&rs, r);
        bench_samples_add(&cs, c);
        pair[i] = (double)r / (double)c; /* channel throughput as a fraction of raw */
    }
    pthread_join(rth, NULL);
    pthread_join(cth, NULL);
    pthread_barrier_destroy(&rt.go);
    pthread_barrier_destroy(&ct.go);
    /* The median of adjacent-pair ratios resists load drift on a shared
     * machine better than the ratio of two medians. */
    qsort(pair, (size_t)batches, sizeof *pair, cmp_double);
    *paired = pair[batches / 2];
    free(pair);
    char name[64];
    snprintf(name, sizeof name, "raw_stream_%zu", size);
    bench_summarize(&rs, "channel", name, raw_r);
    snprintf(name, sizeof name, "channel_stream_%zu", size);
    bench_summarize(&cs, "channel", name, ch_r);
    bench_samples_free(&rs);
    bench_samples_free(&cs);
    sbx_channel_free(a);
    sbx_channel_free(b);
    close(sv[0]);
    close(sv[1]);
}

/* --------------------------------------------------------------- latency */

typedef struct raw_echo {
    int fd;
    size_t size;
    int count;
} raw_echo;

static void *raw_echo_main(void *arg)
{
    raw_echo *e = arg;
    uint8_t *buf = malloc(e->size);
    for (int i = 0; i < e->count; i++) {
        if (sbx_read_full(e->fd, buf, e->size) != (ssize_t)e->size)
            abort();
        if (sbx_write_full(e->fd, buf, e->size) < 0)
            abort();
    }
    free(buf);
    return NULL;
}

static void raw_latency(size_t size, int count, bench_result *out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    raw_echo e = { sv[1], size, count + 100 };
    pthread_t th;
    pthread_create(&th, NULL, raw_echo_main, &e);
    uint8_t *buf = malloc(size);
    bench_samples s;
    bench_samples_init(&s, (size_t)count);
    for (int i = 0; i < count + 100; i++) {
        uint64_t t0 = bench_now_ns();
        if (sbx_write_full(sv[0], blob, size) < 0 || sbx_read_full(sv[0], buf, size) != (ssize_t)size)
            abort();
        if (i >= 100)
            bench_samples_add(&s, bench_now_ns() - t0);
    }
    pthread_join(th, NULL);
    char name[64];
    snprintf(name, sizeof name, "raw_rtt_%zu", size);
    bench_summarize(&s, "channel", name, out);
    bench_samples_free(&s);
    free(buf);
    close(sv[0]);
    close(sv[1]);
}

static bool echo_msg(void *ctx, sbx_message *msg)
{
    counter *c = ctx;
    sbx_pickle_reader r;
    sbx_message_reader(msg, &r);
    const void *d;
    size_t n = 0;
    (void)sbx_pickle_read_bytes(&r, &d, &n);
    sbx_message *rep;
    if (sbx_message_is_sync(msg))
        rep = sbx_message_new_reply(msg);
    else
        rep = sbx_message_new(1, T_PONG, SBX_PRIORITY_NORMAL);
    sbx_pickle_write_bytes(sbx_message_pickle(rep), d, n);
    sbx_channel_send(c->ch, rep);
    c->received++;
    return true;
}

typedef struct echo_thread {
    sbx_channel *ch;
    _Atomic bool stop;
} echo_thread;

static void *channel_echo_main(void *arg)
{
    echo_thread *e = arg;
    while (!atomic_load(&e->stop)) {
        struct pollfd p = { sbx_channel_fd(e->ch), sbx_channel_poll_events(e->ch), 0 };
        poll(&p, 1, 50);
        if (sbx_channel_process_events(e->ch) < 0)
            break;
    }
    return NULL;
}

static void channel_latency(size_t size, int count, bench_result *async_r, bench_result *sync_r)
{
    counter ca = { 0 }, cb = { 0 };
    sbx_channel *a, *b;
    connect_pair(&a, &b, &ca, &cb, count_msg, echo_msg);
    echo_thread e = { b, false };
    pthread_t th;
    pthread_create(&th, NULL, channel_echo_main, &e);
    bench_samples s, ss;
    bench_samples_init(&s, (size_t)count);
    bench_samples_init(&ss, (size_t)count);
    for (int i = 0; i < count + 100; i++) {
        uint64_t t0 = bench_now_ns();
        if (sbx_channel_send(a, data_msg(T_PING, size)) < 0)
            abort();
        drive_until(a, &ca.received, ca.received + 1);
        uint64_t t1 = bench_now_ns();
        sbx_message *rep = NULL;
        if (sbx_channel_send_sync(a, data_msg(T_PING, size), 5000, &rep) < 0)
            abort();
        uint64_t t2 = bench_now_ns();
        sbx_message_free(rep);
        if (i >= 100) {
            bench_samples_add(&s, t1 - t0);
            bench_samples_add(&ss, t2 - t1);
        }
    }
    atomic_store(&e.stop, true);
    pthread_join(th, NULL);
    char name[64];
    snprintf(name, sizeof name, "channel_rtt_%zu", size);
    bench_summarize(&s, "channel", name, async_r);
    snprintf(name, sizeof name, "channel_sync_rtt_%zu", size);
    bench_summarize(&ss, "channel", name, sync_r);
    bench_samples_free(&s);
    bench_samples_free(&ss);
    sbx_channel_free(a);
    sbx_channel_free(b);
}

int main(int argc, char **argv)
{
    int scale = argc > 1 ? atoi(argv[1]) : 1;
    if (scale < 1)
        scale = 1;
    blob = malloc(65536);
    for (size_t i = 0; i < 65536; i++)
        blob[i] = (uint8_t)(i * 31);
    struct {
        size_t size;
        int stream_count, batches, rtt_count;
    } cases[] = { { 64, 5000 * scale, 41, 5000 * scale }, { 65536, 150 * scale, 41, 1000 * scale } };
    double paired[2] = { 0, 0 };
    const char *only = getenv("SBX_BENCH_ONLY"); /* "64" or "65536": one size, for profiling */
    bench_result res[2][6];
    for (int k = 0; k < 2; k++) {
        if (only && (size_t)atoi(only) != cases[k].size) {
            memset(res[k], 0, sizeof res[k]);
            continue;
        }
        throughput(cases[k].size, cases[k].stream_count, cases[k].batches, &res[k][0], &res[k][1], &paired[k]);
        raw_latency(cases[k].size, cases[k].rtt_count, &res[k][2]);
        channel_latency(cases[k].size, cases[k].rtt_count, &res[k][3], &res[k][4]);
        bench_print(&res[k][0], NULL);
        bench_print(&res[k][1], &res[k][0]);
        bench_print(&res[k][2], NULL);
        bench_print(&res[k][3], &res[k][2]);
        bench_print(&res[k][4], &res[k][2]);
    }
    bench_table_header("channel: per-message cost streaming (ns/msg) and round trips, vs raw socketpair");
    for (int k = 0; k < 2; k++) {
        bench_table_row(&res[k][0], NULL);
        bench_table_row(&res[k][1], &res[k][0]);
        bench_table_row(&res[k][2], NULL);
        bench_table_row(&res[k][3], &res[k][2]);
        bench_table_row(&res[k][4], &res[k][2]);
    }
    printf("\n");
    for (int k = 0; k < 2; k++) {
        double raw_mps = 1e9 / (double)res[k][0].median_ns, ch_mps = 1e9 / (double)res[k][1].median_ns;
        if (!res[k][0].median_ns)
            continue;
        printf("%6zu B: raw %.0f msgs/s, channel %.0f msgs/s = %.0f%% of raw (median of paired batches: %.0f%%)\n",
               cases[k].size, raw_mps, ch_mps, 100.0 * ch_mps / raw_mps, 100.0 * paired[k]);
    }
    free(blob);
    return 0;
}
