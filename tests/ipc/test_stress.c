/* Hostile and heavy use: many callers, scribbling targets, targets killed
 * mid-call. The broker runs in the test process; targets are forked. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include "ipc_test_util.h"
#include "sbx_test.h"

/* Fork a target that opens a client on b's section and runs fn(c). */
static pid_t spawn_target(broker *b, int (*fn)(sbx_ipc_client *c, void *arg), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sbx_ipc_client *c;
        if (sbx_ipc_client_new(sbx_ipc_section_fd(b->sec), b->target_sock, &c) < 0)
            _exit(100);
        _exit(fn(c, arg));
    }
    return pid;
}

static int wait_code(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 200 + WTERMSIG(st);
}

typedef struct caller {
    sbx_ipc_client *c;
    unsigned id, calls;
    unsigned bad;
} caller;

static void *caller_main(void *p)
{
    caller *k = p;
    for (unsigned i = 0; i < k->calls; i++) {
        uint32_t cookie = (k->id << 24) ^ i;
        sbx_ipc_reply rep;
        if (i % 4 == 3) {
            uint32_t v = cookie;
            sbx_arg a = sbx_arg_inout(&v, 4);
            if (sbx_ipc_client_call(k->c, SBX_IPC_TAG_PING2, &a, 1, 0, &rep) != 0 || v != cookie * 3u)
                k->bad++;
        } else {
            sbx_arg a = sbx_arg_u32(cookie);
            if (sbx_ipc_client_call(k->c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep) != 0 ||
                rep.ext[0] != 2ull * cookie)
                k->bad++;
        }
    }
    return NULL;
}

#define NTHREADS 16
#define TOTAL_CALLS 1000000u

static int many_callers(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    pthread_t th[NTHREADS];
    caller k[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        k[i] = (caller){ .c = c, .id = i + 1, .calls = TOTAL_CALLS / NTHREADS };
        pthread_create(&th[i], NULL, caller_main, &k[i]);
    }
    unsigned bad = 0;
    for (unsigned i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        bad += k[i].bad;
    }
    return bad ? 1 : 0;
}

Test(ipc_stress, a_million_concurrent_calls_each_answered_to_its_caller)
{
    broker b;
    sbx_ipc_section_options o = { .ipc_size = 32768, .channel_size = 1024 }; /* 29 channels */
    cr_assert_eq(broker_start(&b, NULL, &o, NULL), 0);
    int fds0 = count_fds();
    pid_t pid = spawn_target(&b, many_callers, NULL);
    cr_expect_eq(wait_code(pid), 0, "some answers were wrong or lost");
    cr_expect_eq(sbx_ipc_server_calls(b.srv), TOTAL_CALLS);
    cr_expect_eq(sbx_ipc_server_rejected(b.srv), 0);
    cr_expect_eq(count_fds(), fds0);
    broker_stop(&b, 1);
}

/* A target that holds channel 0 and rewrites it (request, state, ping,
 * cli_cpu, every control word of both lines) as fast as it can while its other threads make
 * calls on the other channels; meanwhile a TOCTOU thread keeps flipping a
 * string between an allowed and a denied path after sending it. */
typedef struct scribble {
    sbx_ipc_client *c;
    atomic_bool stop;
} scribble;

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *scribbler(void *p)
{
    scribble *s = p;
    int ch = sbx_ipc_client_get_buffer(s->c);
    if (ch < 0)
        return NULL;
    sbx_ipc_control *ctl = sbx_ipc_client_control(s->c, (unsigned)ch);
    sbx_ipc_chan_head *head = sbx_ipc_client_head(s->c, (unsigned)ch);
    uint8_t *buf = sbx_ipc_client_buffer(s->c, (unsigned)ch);
    uint64_t seed = 88172645463325252ull;
    size_t cap = sbx_ipc_client_request_cap(s->c);
    while (!atomic_load(&s->stop)) {
        uint64_t r = xs(&seed);
        switch (r % 8) {
        case 0: /* a plausible request, then garbage over it */
            {
                sbx_arg a = sbx_arg_u32((uint32_t)r);
                sbx_ipc_wire_encode(buf, cap, (uint32_t)(r >> 8) % 8, 0, 1, &a, 1, NULL);
            }
            break;
        case 1:
            for (int i = 0; i < 16; i++)
                buf[xs(&seed) % cap] = (uint8_t)xs(&seed);
            break;
        case 2:
            sbx_wire_put32(buf + SBX_WIRE_PARAMS + 4 + 16 * (r % 9), (uint32_t)xs(&seed));
            break;
        case 3: /* any state but Free: Free would hand the channel to a sibling */
            {
                static const uint32_t st[] = { 0, SBX_CH_BUSY, 3, SBX_CH_ABANDONED, 77, 0xffffffffu };
                atomic_store(&ctl->state, st[(r >> 16) % 6]);
            }
            break;
        case 4: /* any word of either control line but the lock */
            {
                unsigned w = 1 + (unsigned)((r >> 8) % 31);
                atomic_store((_Atomic uint32_t *)ctl + w, (uint32_t)xs(&seed));
            }
            break;
        case 5: /* the CPU hint the broker reads outside the copy */
            {
                static const uint32_t cpu[] = { 0, 1, 2, 0xffffffffu };
                atomic_store(&head->cli_cpu, (r >> 8) & 1 ? cpu[(r >> 9) % 4] : (uint32_t)xs(&seed));
            }
            break;
        case 6: /* ping moved to any value, without the lock being Busy */
            atomic_store(&head->ping, (uint32_t)xs(&seed));
            if (atomic_load(&ctl->srv_sleep))
                syscall(SYS_futex, &head->ping, FUTEX_WAKE, 1, NULL, NULL, 0);
            break;
        default:
            atomic_store(&ctl->state, SBX_CH_BUSY);
            atomic_fetch_add(&head->ping, 1);
            if (atomic_load(&ctl->srv_sleep))
                syscall(SYS_futex, &head->ping, FUTEX_WAKE, 1, NULL, NULL, 0);
            break;
        }
    }
    return NULL;
}

typedef struct toctou {
    sbx_ipc_client *c;
    unsigned wrong;
    unsigned denied_used_ok;
    unsigned done;
} toctou;

/* Send "/ok/x" and immediately rewrite the shared bytes to "/no/x" while
 * the broker works: whatever the broker decided must be about the bytes
 * it used (both come from its private copy). */
static void *toctou_main(void *p)
{
    toctou *t = p;
    for (unsigned i = 0; i < 20000; i++) {
        int ch = sbx_ipc_client_get_buffer(t->c);
        if (ch < 0)
            return NULL;
        uint8_t *buf = sbx_ipc_client_buffer(t->c, (unsigned)ch);
        sbx_arg a = sbx_arg_string("/ok/x");
        sbx_ipc_chan_head *head = sbx_ipc_client_head(t->c, (unsigned)ch);
        uint32_t seq = atomic_load(&head->ping) + 1;
        uint32_t offs[1];
        sbx_ipc_wire_encode(buf, sbx_ipc_client_request_cap(t->c), TAG_CHECK, 0, seq, &a, 1, offs);
        /* flip the string from a sibling thread's point of view: we write it
         * right after publishing, racing the broker's copy */
        sbx_ipc_control *ctl = sbx_ipc_client_control(t->c, (unsigned)ch);
        uint32_t p0 = atomic_load(&ctl->pong);
        atomic_store(&head->ping, seq);
        if (atomic_load(&ctl->srv_sleep))
            syscall(SYS_futex, &head->ping, FUTEX_WAKE, 1, NULL, NULL, 0);
        for (int k = 0; k < (int)(i % 64); k++)
            __asm__ __volatile__("" ::: "memory");
        memcpy(buf + offs[0], "/no/x", 5);
        while (atomic_load(&ctl->pong) == p0)
            ;
        int outcome = ctl->rep_outcome;
        uint64_t allowed = ctl->rep_ext[0];
        uint64_t used = ctl->rep_ext[1];
        if (outcome != 0 || (allowed && used != 'o') || (!allowed && used != 'n'))
            t->wrong++;
        t->done++;
        sbx_ipc_client_free_buffer(t->c, ch);
    }
    return NULL;
}

static int scribbling_target(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    /* The broker keeps its own copy of the layout and never reads the
     * header back: wreck every layout field of it first. */
    sbx_ipc_header *h = (sbx_ipc_header *)c->base;
    h->magic = 0xdeadbeef;
    h->ipc_size = 0xffffffc0u;
    h->channel_count = 0xffffffffu;
    h->channel_size = 64;
    h->buffers_offset = 0xfffff000u;
    h->policy_offset = 1;
    h->policy_size = 0xffffffffu;
    scribble s = { .c = c };
    pthread_t sth, tth, cth[3];
    pthread_create(&sth, NULL, scribbler, &s);
    toctou t = { .c = c };
    pthread_create(&tth, NULL, toctou_main, &t);
    caller k[3];
    for (unsigned i = 0; i < 3; i++) {
        k[i] = (caller){ .c = c, .id = i + 1, .calls = 30000 };
        pthread_create(&cth[i], NULL, caller_main, &k[i]);
    }
    unsigned bad = 0;
    for (unsigned i = 0; i < 3; i++) {
        pthread_join(cth[i], NULL);
        bad += k[i].bad;
    }
    pthread_join(tth, NULL);
    atomic_store(&s.stop, true);
    pthread_join(sth, NULL);
    if (bad)
        return 1;
    if (t.wrong || t.done != 20000)
        return 2;
    return 0;
}

Test(ipc_stress, scribbled_section_neither_crashes_nor_fools_the_broker)
{
    broker b;
    cr_assert_eq(broker_start(&b, NULL, NULL, NULL), 0);
    pid_t pid = spawn_target(&b, scribbling_target, NULL);
    int code = wait_code(pid);
    cr_expect_eq(code, 0, "target exit %d", code);
    /* the broker still serves a well-behaved target on the same pool */
    broker b2;
    cr_assert_eq(broker_start(&b2, b.pool, NULL, NULL), 0);
    sbx_ipc_client *c = client_for(&b2);
    sbx_arg a = sbx_arg_u32(11);
    sbx_ipc_reply rep;
    cr_expect_eq(sbx_ipc_client_call(c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep), 0);
    cr_expect_eq(rep.ext[0], 22);
    sbx_ipc_client_free(c);
    broker_stop(&b2, 0);
    broker_stop(&b, 1);
}

static int slow_then_hang(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    sbx_arg a = sbx_arg_u32(400);
    sbx_ipc_client_call(c, TAG_SLOW, &a, 1, 0, NULL);
    return 0;
}

static int flood_and_hold(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    /* every channel locked and left Busy, pings flooding in a loop */
    unsigned n = sbx_ipc_client_channel_count(c);
    for (unsigned i = 0; i < n; i++)
        sbx_ipc_client_get_buffer(c);
    for (;;)
        for (unsigned i = 0; i < n; i++)
            atomic_fetch_add(&sbx_ipc_client_head(c, i)->ping, 1);
    return 0;
}

Test(ipc_stress, target_killed_mid_call_is_released_and_others_served)
{
    sbx_ipc_pool_options po = { .threads = 1 }; /* everyone shares one broker thread */
    sbx_ipc_pool *pool;
    cr_assert_eq(sbx_ipc_pool_new(&po, &pool), 0);
    int fds0 = count_fds();
    broker a, f, n;
    cr_assert_eq(broker_start(&a, pool, NULL, NULL), 0);
    cr_assert_eq(broker_start(&f, pool, NULL, NULL), 0);
    atomic_store(&slow_started, 0);
    pid_t pa = spawn_target(&a, slow_then_hang, NULL);
    pid_t pf = spawn_target(&f, flood_and_hold, NULL);
    uint64_t t0 = t_now_ms();
    while (!atomic_load(&slow_started) && t_now_ms() - t0 < 5000)
        usleep(1000);
    cr_assert(atomic_load(&slow_started), "the slow call never started");
    kill(pa, SIGKILL);
    cr_expect_eq(wait_code(pa), 200 + SIGKILL);
    /* the broker notices the death (pidfd in the real broker) and frees the
     * server: this waits for the running handler, then releases all */
    sbx_ipc_server_free(a.srv);
    a.srv = NULL;
    /* a new target on the same thread is served despite the flooder */
    cr_assert_eq(broker_start(&n, pool, NULL, NULL), 0);
    sbx_ipc_client *c = client_for(&n);
    for (uint32_t i = 0; i < 1000; i++) {
        sbx_arg x = sbx_arg_u32(i);
        sbx_ipc_reply rep;
        cr_assert_eq(sbx_ipc_client_call(c, SBX_IPC_TAG_PING1, &x, 1, 0, &rep), 0);
        cr_assert_eq(rep.ext[0], 2ull * i);
    }
    sbx_ipc_client_free(c);
    kill(pf, SIGKILL);
    wait_code(pf);
    broker_stop(&n, 0);
    broker_stop(&f, 0);
    broker_stop(&a, 0);
    sbx_ipc_pool_free(pool);
    cr_expect_eq(count_fds(), fds0, "broker leaked fds");
}
