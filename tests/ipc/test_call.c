/* Calls end to end: dispatch, state machine, liveness, busy channels,
 * fallback signalling, idle CPU. Broker and client in one process (threads)
 * unless a test says otherwise. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "ipc_test_util.h"
#include "sbx_test.h"

static broker B;
static sbx_ipc_client *C;

static void setup(void)
{
    sbx_ipc_section_options o = { .ipc_size = 16384, .channel_size = 1024 };
    cr_assert_eq(broker_start(&B, NULL, &o, NULL), 0);
    C = client_for(&B);
    cr_assert_not_null(C);
}

static void teardown(void)
{
    sbx_ipc_client_free(C);
    broker_stop(&B, 1);
}

TestSuite(ipc_call, .init = setup, .fini = teardown);

Test(ipc_call, ping1_and_ping2)
{
    sbx_ipc_reply rep;
    sbx_arg a = sbx_arg_u32(21);
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING1, &a, 1, 0, &rep), 0);
    cr_expect_eq(rep.ext[0], 42);
    cr_expect_eq(rep.fd, -1);
    a = sbx_arg_u32(0xffffffffu);
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING1, &a, 1, 0, &rep), 0);
    cr_expect_eq(rep.ext[0], 0x1fffffffeull);
    uint32_t cookie = 1000;
    sbx_arg b = sbx_arg_inout(&cookie, sizeof cookie);
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING2, &b, 1, 0, &rep), 0);
    cr_expect_eq(cookie, 3000);
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING2, &b, 1, 0, NULL), 0);
    cr_expect_eq(cookie, 9000);
    /* PING2 with a wrong-size buffer fails in the handler: no write-back. */
    uint64_t big = 5;
    sbx_arg c8 = sbx_arg_inout(&big, 8);
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING2, &c8, 1, 0, &rep), -EINVAL);
    cr_expect_eq(big, 5);
    cr_expect_eq(sbx_ipc_server_calls(B.srv), 5);
}

Test(ipc_call, every_type_reaches_the_handler)
{
    char buf[6] = "abcdef";
    sbx_arg a[] = { sbx_arg_string("a path"), sbx_arg_u32(9), sbx_arg_u64(1ull << 50),
                    sbx_arg_handle(77), sbx_arg_inout(buf, 6) };
    sbx_ipc_reply rep;
    cr_expect_eq(sbx_ipc_client_call(C, TAG_MIX, a, 5, 0, &rep), 0);
    cr_expect_eq(rep.ext[0], 6);
    cr_expect_eq(rep.ext[1], 9);
    cr_expect_eq(rep.ext[2], 1ull << 50);
    cr_expect_eq(rep.ext[3], 77);
    cr_expect_eq(rep.status, 6);
    cr_expect_eq(memcmp(buf, "fedcba", 6), 0);
}

Test(ipc_call, inout_written_back_only_after_success)
{
    char buf[8] = "keepme!";
    sbx_arg a = sbx_arg_inout(buf, 8);
    uint64_t runs = atomic_load(&handler_runs);
    cr_expect_eq(sbx_ipc_client_call(C, TAG_FAIL, &a, 1, 0, NULL), -EPERM);
    cr_expect_eq(atomic_load(&handler_runs), runs + 1);
    cr_expect_str_eq(buf, "keepme!");
    /* and the shared channel was not touched either */
    for (unsigned ch = 0; ch < sbx_ipc_client_channel_count(C); ch++) {
        uint8_t *p = sbx_ipc_client_buffer(C, ch);
        for (size_t k = SBX_WIRE_DATA_AT(1); k < sbx_ipc_client_request_cap(C); k++)
            cr_assert_neq(p[k], 0xee);
    }
}

Test(ipc_call, unknown_tag_and_wrong_types_rejected_before_any_handler)
{
    uint64_t runs = atomic_load(&handler_runs);
    sbx_arg a = sbx_arg_u32(1);
    sbx_ipc_reply rep;
    cr_expect_eq(sbx_ipc_client_call(C, 4242, &a, 1, 0, &rep), SBX_ERROR_INVALID_IPC);
    cr_expect_eq(rep.status, ENOSYS, "unknown tag is named as such");
    sbx_arg s = sbx_arg_string("10");
    cr_expect_eq(sbx_ipc_client_call(C, TAG_SLOW, &s, 1, 0, &rep), SBX_ERROR_INVALID_IPC);
    cr_expect_eq(rep.status, EINVAL, "a signature mismatch is named as such");
    sbx_arg two[] = { sbx_arg_u32(1), sbx_arg_u32(2) };
    cr_expect_eq(sbx_ipc_client_call(C, TAG_SLOW, two, 2, 0, NULL), SBX_ERROR_INVALID_IPC);
    cr_expect_eq(sbx_ipc_client_call(C, TAG_SLOW, NULL, 0, 0, NULL), SBX_ERROR_INVALID_IPC);
    sbx_arg u64 = sbx_arg_u64(1);
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING1, &u64, 1, 0, NULL), SBX_ERROR_INVALID_IPC);
    cr_expect_eq(atomic_load(&handler_runs), runs, "a handler ran");
    cr_expect_eq(sbx_ipc_server_rejected(B.srv), 5);
    /* the channel is fine afterwards */
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING1, &a, 1, 0, NULL), 0);
}

/* Raw malformed requests written straight into a channel. */
Test(ipc_call, malformed_raw_requests_rejected)
{
    uint64_t runs = atomic_load(&handler_runs);
    for (int k = 0; k < 8; k++) {
        int ch = sbx_ipc_client_get_buffer(C);
        cr_assert_geq(ch, 0);
        uint8_t *buf = sbx_ipc_client_buffer(C, (unsigned)ch);
        sbx_arg a = sbx_arg_u32(5);
        size_t cap = sbx_ipc_client_request_cap(C);
        uint32_t seq = atomic_load(&sbx_ipc_client_head(C, (unsigned)ch)->ping) + 1;
        cr_assert_gt(sbx_ipc_wire_encode(buf, cap, TAG_SLOW, 0, seq, &a, 1, NULL), 0);
        uint8_t *p0 = buf + SBX_WIRE_PARAMS;
        switch (k) {
        case 0: sbx_wire_put32(buf + SBX_WIRE_REQ_COUNT, 10); break;
        case 1: sbx_wire_put32(p0 + 4, 4000); break;                 /* offset out of range */
        case 2: sbx_wire_put32(p0 + 8, 0xfffffff0u); break;          /* size overflow */
        case 3: sbx_wire_put32(p0 + 4, SBX_WIRE_DATA_AT(1) + 2); break; /* misaligned */
        case 4: sbx_wire_put32(buf + SBX_WIRE_REQ_TOTAL, 5000); break; /* beyond channel */
        case 5: sbx_wire_put32(p0, SBX_ARG_U64); break;              /* wrong type (size 4) */
        case 6: memset(buf, 0xff, cap); break;                        /* garbage */
        case 7: sbx_wire_put32(buf + SBX_WIRE_REQ_TAG, 0); break;
        }
        sbx_ipc_reply rep;
        cr_expect_eq(sbx_ipc_client_transact_raw(C, (unsigned)ch, TAG_SLOW, seq, &rep),
                     SBX_ERROR_INVALID_IPC, "case %d", k);
        cr_expect_eq(rep.status, EBADMSG, "case %d status %d", k, rep.status);
    }
    cr_expect_eq(atomic_load(&handler_runs), runs);
    cr_expect_eq(sbx_ipc_server_rejected(B.srv), 8);
    sbx_arg a = sbx_arg_u32(2);
    sbx_ipc_reply rep;
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING1, &a, 1, 0, &rep), 0);
    cr_expect_eq(rep.ext[0], 4);
}

typedef struct slow_arg {
    sbx_ipc_client *c;
    unsigned ms;
    int result;
    uint64_t took_ms;
} slow_arg;

static void *slow_caller(void *p)
{
    slow_arg *s = p;
    sbx_arg a = sbx_arg_u32(s->ms);
    uint64_t t0 = t_now_ms();
    s->result = sbx_ipc_client_call(s->c, TAG_SLOW, &a, 1, 0, NULL);
    s->took_ms = t_now_ms() - t0;
    return NULL;
}

Test(ipc_call, state_transitions)
{
    sbx_ipc_control *ctl = sbx_ipc_client_control(C, 0);
    unsigned n = sbx_ipc_client_channel_count(C);
    int held[64] = { 0 };
    /* Free -> Busy by get_buffer, back to Free by free_buffer */
    for (unsigned i = 0; i < n; i++) {
        held[i] = sbx_ipc_client_get_buffer(C);
        cr_assert_geq(held[i], 0);
        cr_expect_eq(atomic_load(&sbx_ipc_client_control(C, (unsigned)held[i])->state), SBX_CH_BUSY);
    }
    for (unsigned i = 1; i < n; i++)
        sbx_ipc_client_free_buffer(C, held[i]);
    sbx_ipc_client_free_buffer(C, held[0]);
    for (unsigned i = 0; i < n; i++)
        cr_expect_eq(atomic_load(&sbx_ipc_client_control(C, i)->state), SBX_CH_FREE);
    /* Still Busy while the broker serves: the lock is the client's alone,
     * the broker never writes line A; the tag is published there */
    for (unsigned i = 0; i < n; i++)
        held[i] = sbx_ipc_client_get_buffer(C);
    sbx_ipc_client_free_buffer(C, held[0]);
    ctl = sbx_ipc_client_control(C, (unsigned)held[0]);
    slow_arg s = { .c = C, .ms = 1000 };
    atomic_store(&slow_started, 0);
    pthread_t th;
    pthread_create(&th, NULL, slow_caller, &s);
    uint64_t t0 = t_now_ms();
    while (!atomic_load(&slow_started) && t_now_ms() - t0 < 5000)
        usleep(1000);
    cr_expect(atomic_load(&slow_started));
    cr_expect_eq(atomic_load(&ctl->state), SBX_CH_BUSY);
    cr_expect_eq(atomic_load(&ctl->tag), TAG_SLOW);
    pthread_join(th, NULL);
    cr_expect_eq(s.result, 0);
    cr_expect_eq(atomic_load(&ctl->state), SBX_CH_FREE, "Busy -> Free after the answer");
    for (unsigned i = 1; i < n; i++)
        sbx_ipc_client_free_buffer(C, held[i]);
}


/* The broker takes a moved ping as a request whatever the lock says (it
 * never reads line A): a target pinging a channel it never locked, with a
 * lying cli_cpu, gets that request served like any other, the lock is left
 * as it was, and honest calls on the other channels go on. */
Test(ipc_call, ping_on_an_unlocked_channel_is_served_and_leaves_the_lock_alone)
{
    unsigned ch = sbx_ipc_client_channel_count(C) - 1;
    sbx_ipc_control *ctl = sbx_ipc_client_control(C, ch);
    sbx_ipc_chan_head *head = sbx_ipc_client_head(C, ch);
    uint32_t before[16];
    memcpy(before, (const void *)ctl, sizeof before);
    cr_assert_eq(before[0], SBX_CH_FREE);
    for (uint32_t k = 0; k < 50; k++) {
        uint32_t seq = atomic_load(&head->ping) + 1;
        sbx_arg a = sbx_arg_u32(k);
        cr_assert_gt(sbx_ipc_wire_encode(sbx_ipc_client_buffer(C, ch),
                                         sbx_ipc_client_request_cap(C), SBX_IPC_TAG_PING1, 0,
                                         seq, &a, 1, NULL),
                     0);
        atomic_store(&head->cli_cpu, k % 2 ? 0xffffffffu : k);
        uint32_t p0 = atomic_load(&ctl->pong);
        atomic_store(&head->ping, seq);
        if (atomic_load(&ctl->srv_sleep))
            syscall(SYS_futex, &head->ping, FUTEX_WAKE, 1, NULL, NULL, 0);
        uint64_t t0 = t_now_ms();
        while (atomic_load(&ctl->pong) == p0 && t_now_ms() - t0 < 5000)
            sched_yield();
        cr_assert_neq(atomic_load(&ctl->pong), p0, "ping %u on an unlocked channel not served", k);
        cr_expect_eq(ctl->rep_outcome, 0);
        cr_expect_eq(ctl->rep_ext[0], 2ull * k);
        sbx_arg b = sbx_arg_u32(k);
        sbx_ipc_reply rep;
        cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING1, &b, 1, 0, &rep), 0);
        cr_expect_eq(rep.ext[0], 2ull * k);
    }
    /* line A is as it was (but the tag the honest calls publish there, if
     * one of them got this channel): the broker wrote none of it */
    uint32_t after[16];
    memcpy(after, (const void *)ctl, sizeof after);
    after[1] = before[1];
    cr_expect_eq(memcmp(before, after, sizeof before), 0);
}
Test(ipc_call, slow_but_alive_server_is_waited_for)
{
    /* The call outlasts several liveness timeouts; the broker is alive, so
     * the client keeps waiting and gets the answer (seed: ClientSlowServer). */
    sbx_ipc_client_set_timeout_ms(C, 100);
    slow_arg s = { .c = C, .ms = 450 };
    slow_caller(&s);
    cr_expect_eq(s.result, 0);
    cr_expect_geq(s.took_ms, 440);
}

static void *holder_caller(void *p)
{
    slow_arg *s = p;
    sbx_arg a = sbx_arg_u32(7);
    sbx_ipc_reply rep;
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    s->result = sbx_ipc_client_call(s->c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    s->took_ms = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    if (s->result == 0 && rep.ext[0] != 14)
        s->result = -1000;
    return NULL;
}

Test(ipc_call, all_channels_busy_then_freed)
{
    unsigned n = sbx_ipc_client_channel_count(C);
    int held[64] = { 0 };
    for (unsigned i = 0; i < n; i++)
        held[i] = sbx_ipc_client_get_buffer(C);
    slow_arg s = { .c = C, .result = 1 };
    pthread_t th;
    pthread_create(&th, NULL, holder_caller, &s);
    usleep(300000);
    cr_expect_eq(s.result, 1, "the caller must still be waiting");
    sbx_ipc_client_free_buffer(C, held[n / 2]);
    pthread_join(th, NULL);
    cr_expect_eq(s.result, 0);
    cr_expect_lt(s.took_ms, 30, "waiting for a channel burned %llu ms of CPU",
                 (unsigned long long)s.took_ms);
    for (unsigned i = 0; i < n; i++)
        if (i != n / 2)
            sbx_ipc_client_free_buffer(C, held[i]);
}

/* More threads than channels: every call but the first few finds them all
 * busy and waits for a free. A free only bumps free_seq when it sees a
 * waiter, and a waiter rescans after announcing itself: a lost wake-up
 * would stall its caller for the whole 1 s timeout, so 20 000 calls on 2
 * channels from 8 threads must finish in a few seconds, and free_seq must
 * not move while nobody waits. */
typedef struct starved {
    sbx_ipc_client *c;
    unsigned bad;
} starved;

static void *starved_caller(void *p)
{
    starved *s = p;
    for (unsigned i = 0; i < 2500; i++) {
        sbx_arg a = sbx_arg_u32(i);
        sbx_ipc_reply rep;
        if (sbx_ipc_client_call(s->c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep) != 0 ||
            rep.ext[0] != 2ull * i)
            s->bad++;
    }
    return NULL;
}

Test(ipc_call_starved, more_threads_than_channels_lose_no_wakeup)
{
    broker b;
    sbx_ipc_section_options o = { .ipc_size = 64 + 2 * (128 + 1024), .channel_size = 1024 };
    cr_assert_eq(broker_start(&b, NULL, &o, NULL), 0);
    sbx_ipc_client *c = client_for(&b);
    cr_assert_not_null(c);
    cr_assert_eq(sbx_ipc_client_channel_count(c), 2);
    sbx_ipc_header *h = (sbx_ipc_header *)c->base;
    uint32_t fs0 = atomic_load(&h->free_seq);
    for (unsigned i = 0; i < 100; i++) {
        sbx_arg a = sbx_arg_u32(i);
        cr_assert_eq(sbx_ipc_client_call(c, SBX_IPC_TAG_PING1, &a, 1, 0, NULL), 0);
    }
    cr_expect_eq(atomic_load(&h->free_seq), fs0, "free_seq moved with nobody waiting");
    starved s[8];
    pthread_t th[8];
    uint64_t t0 = t_now_ms();
    for (unsigned i = 0; i < 8; i++) {
        s[i] = (starved){ .c = c };
        pthread_create(&th[i], NULL, starved_caller, &s[i]);
    }
    unsigned bad = 0;
    for (unsigned i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        bad += s[i].bad;
    }
    uint64_t took = t_now_ms() - t0;
    cr_expect_eq(bad, 0);
    cr_expect_eq(atomic_load(&h->free_waiters), 0);
    cr_expect_lt(took, 8000, "20000 starved calls took %llu ms (a lost wake-up costs 1 s)",
                 (unsigned long long)took);
    sbx_ipc_client_free(c);
    broker_stop(&b, 1);
}

Test(ipc_call, idle_broker_and_client_use_no_cpu)
{
    sbx_arg a = sbx_arg_u32(1);
    for (int i = 0; i < 100; i++)
        sbx_ipc_client_call(C, SBX_IPC_TAG_PING1, &a, 1, 0, NULL);
    usleep(20000);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    usleep(300000);
    getrusage(RUSAGE_SELF, &r1);
    long us = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1000000L +
              (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
              (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000000L +
              (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    cr_expect_lt(us, 3000, "idle process used %ld us of CPU in 300 ms", us);
}

Test(ipc_call, server_free_cuts_the_target_off)
{
    sbx_ipc_client_set_timeout_ms(C, 100);
    sbx_ipc_server_free(B.srv);
    B.srv = NULL;
    sbx_arg a = sbx_arg_u32(1);
    uint64_t t0 = t_now_ms();
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING1, &a, 1, 0, NULL), SBX_ERROR_CHANNEL_ERROR);
    cr_expect_lt(t_now_ms() - t0, 1000);
    cr_expect_eq(sbx_ipc_client_call(C, SBX_IPC_TAG_PING1, &a, 1, 0, NULL), SBX_ERROR_CHANNEL_ERROR);
}

/* ---- fallback signalling (no futex_waitv) ---- */

Test(ipc_call_fallback, works_without_futex_waitv)
{
    sbx_ipc_pool_options po = { .threads = 1, .force_fallback = 1 };
    sbx_ipc_pool *pool;
    cr_assert_eq(sbx_ipc_pool_new(&po, &pool), 0);
    cr_expect_eq(sbx_ipc_pool_uses_waitv(pool), 0);
    broker b1, b2;
    sbx_ipc_section_options o = { .ipc_size = 8192, .channel_size = 1024 };
    cr_assert_eq(broker_start(&b1, pool, &o, NULL), 0);
    cr_assert_eq(broker_start(&b2, pool, &o, NULL), 0);
    sbx_ipc_client *c1 = client_for(&b1), *c2 = client_for(&b2);
    for (uint32_t i = 0; i < 2000; i++) {
        sbx_arg a = sbx_arg_u32(i);
        sbx_ipc_reply rep;
        cr_assert_eq(sbx_ipc_client_call(i % 2 ? c1 : c2, SBX_IPC_TAG_PING1, &a, 1, 0, &rep), 0);
        cr_assert_eq(rep.ext[0], 2ull * i);
        if (i % 500 == 0)
            usleep(2000); /* let the thread fall asleep */
    }
    sbx_ipc_client_free(c1);
    sbx_ipc_client_free(c2);
    broker_stop(&b1, 0);
    broker_stop(&b2, 0);
    sbx_ipc_pool_free(pool);
}

Test(ipc_call_fallback, waitv_is_available_here)
{
    /* The machine this runs on has Linux >= 5.16; make sure we use it. */
    sbx_ipc_pool *pool;
    cr_assert_eq(sbx_ipc_pool_new(NULL, &pool), 0);
    cr_expect_eq(sbx_ipc_pool_uses_waitv(pool), 1);
    sbx_ipc_pool_free(pool);
}

/* ---- broker and target in different processes ---- */

typedef struct xproc {
    int memfd, sock;
} xproc;

/* Broker in a child process; returns its pid. The client end stays here. */
static pid_t spawn_broker(int *memfd, int *sock)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
    int ready[2];
    if (pipe(ready) < 0)
        abort();
    sbx_ipc_section *s;
    sbx_ipc_section_options o = { .ipc_size = 16384, .channel_size = 1024 };
    if (sbx_ipc_section_new(&o, &s) < 0)
        abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[1]);
        close(ready[0]);
        sbx_ipc_dispatcher *d = test_dispatcher();
        sbx_ipc_pool *pool;
        sbx_ipc_server *srv;
        if (sbx_ipc_pool_new(NULL, &pool) < 0 || sbx_ipc_server_new(pool, s, sv[0], d, NULL, &srv) < 0)
            _exit(3);
        if (write(ready[1], "r", 1) != 1)
            _exit(4);
        for (;;)
            pause();
    }
    close(sv[0]);
    close(ready[1]);
    char c;
    if (read(ready[0], &c, 1) != 1)
        abort();
    close(ready[0]);
    *memfd = dup(sbx_ipc_section_fd(s));
    *sock = sv[1];
    sbx_ipc_section_free(s);
    return pid;
}

Test(ipc_xproc, dead_server_gives_channel_error_not_a_hang)
{
    int memfd, sock;
    pid_t pid = spawn_broker(&memfd, &sock);
    sbx_ipc_client *c;
    cr_assert_eq(sbx_ipc_client_new(memfd, sock, &c), 0);
    close(memfd);
    sbx_arg a = sbx_arg_u32(4);
    sbx_ipc_reply rep;
    cr_assert_eq(sbx_ipc_client_call(c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep), 0);
    cr_expect_eq(rep.ext[0], 8);
    /* Kill the broker while it serves a slow call: default 1 s timeout. */
    slow_arg s = { .c = c, .ms = 20000 };
    pthread_t th;
    pthread_create(&th, NULL, slow_caller, &s);
    usleep(100000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    pthread_join(th, NULL);
    cr_expect_eq(s.result, SBX_ERROR_CHANNEL_ERROR);
    /* one 1 s wait, a liveness check, and slack for a loaded machine;
     * far below the 20 s the call would take */
    cr_expect_lt(s.took_ms, 4000, "took %llu ms", (unsigned long long)s.took_ms);
    /* the abandoned channel is never handed out again */
    unsigned abandoned = 0;
    for (unsigned i = 0; i < sbx_ipc_client_channel_count(c); i++)
        abandoned += atomic_load(&sbx_ipc_client_control(c, i)->state) == SBX_CH_ABANDONED;
    cr_expect_eq(abandoned, 1);
    uint64_t t0 = t_now_ms();
    cr_expect_eq(sbx_ipc_client_call(c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep), SBX_ERROR_CHANNEL_ERROR);
    cr_expect_lt(t_now_ms() - t0, 1500);
    sbx_ipc_client_free(c);
}

Test(ipc_xproc, dead_server_while_all_channels_busy)
{
    int memfd, sock;
    pid_t pid = spawn_broker(&memfd, &sock);
    sbx_ipc_client *c;
    cr_assert_eq(sbx_ipc_client_new(memfd, sock, &c), 0);
    close(memfd);
    sbx_ipc_client_set_timeout_ms(c, 200);
    unsigned n = sbx_ipc_client_channel_count(c);
    for (unsigned i = 0; i < n; i++)
        cr_assert_geq(sbx_ipc_client_get_buffer(c), 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    uint64_t t0 = t_now_ms();
    cr_expect_eq(sbx_ipc_client_get_buffer(c), SBX_ERROR_CHANNEL_ERROR);
    cr_expect_lt(t_now_ms() - t0, 1000);
    sbx_ipc_client_free(c);
}

static void call_from_handler(int sig)
{
    (void)sig;
}

static sbx_ipc_client *sig_client;
static volatile int sig_result = 1;
static volatile uint64_t sig_ext;

static void sigusr_handler(int sig)
{
    (void)sig;
    int saved = errno;
    errno = 1234;
    sbx_arg a = sbx_arg_u32(50);
    sbx_ipc_reply rep;
    sig_result = sbx_ipc_client_call(sig_client, SBX_IPC_TAG_PING1, &a, 1, 0, &rep);
    sig_ext = rep.ext[0];
    if (errno != 1234)
        sig_result = -999;
    errno = saved;
}

Test(ipc_xproc, call_from_a_signal_handler_across_processes)
{
    (void)call_from_handler;
    int memfd, sock;
    pid_t pid = spawn_broker(&memfd, &sock);
    cr_assert_eq(sbx_ipc_client_new(memfd, sock, &sig_client), 0);
    close(memfd);
    signal(SIGUSR1, sigusr_handler);
    for (int i = 0; i < 200; i++) {
        sig_result = 1;
        raise(SIGUSR1);
        cr_assert_eq(sig_result, 0);
        cr_assert_eq(sig_ext, 100);
        sbx_arg a = sbx_arg_u32((uint32_t)i);
        sbx_ipc_reply rep;
        cr_assert_eq(sbx_ipc_client_call(sig_client, SBX_IPC_TAG_PING1, &a, 1, 0, &rep), 0);
        cr_assert_eq(rep.ext[0], 2ull * (unsigned)i);
    }
    sbx_ipc_client_free(sig_client);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- setup errors and the environment hand-off ---- */

Test(ipc_setup, client_from_env)
{
    broker b;
    cr_assert_eq(broker_start(&b, NULL, NULL, NULL), 0);
    unsetenv(SBX_IPC_ENV_SECTION);
    unsetenv(SBX_IPC_ENV_SOCKET);
    sbx_ipc_client *c = NULL;
    cr_expect_eq(sbx_ipc_client_from_env(&c), SBX_ERROR_NOT_FOUND);
    char v[32];
    snprintf(v, sizeof v, "%d", sbx_ipc_section_fd(b.sec));
    setenv(SBX_IPC_ENV_SECTION, v, 1);
    cr_expect_eq(sbx_ipc_client_from_env(&c), SBX_ERROR_NOT_FOUND, "socket variable missing");
    const char *bad[] = { "", "x", "3:4", "4x", "-1", "99999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv(SBX_IPC_ENV_SOCKET, bad[i], 1);
        cr_expect_eq(sbx_ipc_client_from_env(&c), -EINVAL, "accepted \"%s\"", bad[i]);
    }
    snprintf(v, sizeof v, "%d", dup(b.target_sock));
    setenv(SBX_IPC_ENV_SOCKET, v, 1);
    cr_assert_eq(sbx_ipc_client_from_env(&c), 0);
    sbx_arg a = sbx_arg_u32(8);
    sbx_ipc_reply rep;
    cr_expect_eq(sbx_ipc_client_call(c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep), 0);
    cr_expect_eq(rep.ext[0], 16);
    sbx_ipc_client_free(c);
    broker_stop(&b, 1);
}

Test(ipc_setup, server_new_refuses_bad_arguments)
{
    sbx_ipc_section *sec;
    cr_assert_eq(sbx_ipc_section_new(NULL, &sec), 0);
    sbx_ipc_dispatcher *d = test_dispatcher();
    sbx_ipc_pool_options po = { .threads = 1 };
    sbx_ipc_pool *pool;
    cr_assert_eq(sbx_ipc_pool_new(&po, &pool), 0);
    sbx_ipc_server *srv;
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    cr_expect_eq(sbx_ipc_server_new(pool, sec, sv[0], d, NULL, &srv), -EINVAL, "stream socket");
    cr_expect_eq(fcntl(sv[0], F_GETFD), -1, "the fd is taken even on failure");
    close(sv[1]);
    cr_expect_eq(sbx_ipc_server_new(pool, sec, -1, d, NULL, &srv), -EINVAL);
    int fd = open("/dev/null", O_RDONLY);
    cr_expect_eq(sbx_ipc_server_new(pool, sec, fd, d, NULL, &srv), -ENOTSOCK);
    /* one thread watches at most 127 channels: 10 sections of 14 overflow it */
    sbx_ipc_section *many[10];
    sbx_ipc_server *srvs[10];
    int ok = 0, full = 0;
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(sbx_ipc_section_new(NULL, &many[i]), 0);
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
        int r = sbx_ipc_server_new(pool, many[i], sv[0], d, NULL, &srvs[i]);
        close(sv[1]);
        if (r == 0)
            ok++;
        else if (r == SBX_ERROR_NO_SPACE)
            full++, srvs[i] = NULL;
    }
    cr_expect_eq(ok, 127 / 14);
    cr_expect_eq(full, 10 - 127 / 14);
    /* registration is closed once a server uses the dispatcher */
    sbx_ipc_service s = { .tag = 999, .handler = h_slow };
    cr_expect_eq(sbx_ipc_dispatcher_register(d, &s), SBX_ERROR_FROZEN);
    for (int i = 0; i < 10; i++) {
        sbx_ipc_server_free(srvs[i]);
        sbx_ipc_section_free(many[i]);
    }
    sbx_ipc_pool_free(pool);
    sbx_ipc_dispatcher_free(d);
    sbx_ipc_section_free(sec);
}

static sbx_ipc_client *nest_client;
static volatile int nest_inner = 1;

static void nest_handler(int sig)
{
    (void)sig;
    sbx_arg a = sbx_arg_u32(5);
    sbx_ipc_reply rep;
    nest_inner = sbx_ipc_client_call(nest_client, SBX_IPC_TAG_PING1, &a, 1, 0, &rep);
    if (nest_inner == 0 && rep.ext[0] != 10)
        nest_inner = -1;
}

static void *kicker(void *p)
{
    usleep(50000);
    pthread_kill(*(pthread_t *)p, SIGUSR2);
    return NULL;
}

Test(ipc_call, signal_handler_call_nested_inside_a_waiting_call)
{
    /* A SIGSYS-style handler interrupts a thread that is itself waiting in
     * a call; the nested call uses another channel and both complete. */
    nest_client = C;
    signal(SIGUSR2, nest_handler);
    pthread_t self = pthread_self(), k;
    pthread_create(&k, NULL, kicker, &self);
    sbx_arg a = sbx_arg_u32(200);
    cr_expect_eq(sbx_ipc_client_call(C, TAG_SLOW, &a, 1, 0, NULL), 0);
    pthread_join(k, NULL);
    cr_expect_eq(nest_inner, 0);
}
