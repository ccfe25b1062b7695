/* Baseline denials of targets WITHOUT interception (no brokered rules, no
 * audit): refused with EPERM and reported as SBX_EVENT_DENIED through a
 * filter that notifies only them, served by the runtime's one denials
 * thread. Kill mode still kills; a flood is rate-limited and counted; a
 * target dying while its call is held does not wedge the broker. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "base/fd.h"
#include "broker/baseline.h"
#include "broker/broker_internal.h"
#include "broker/runtime.h"
#include "common.h"
#include "target/interception/notify.h"

#define MAX_DENIED 4096

typedef struct denied {
    uint64_t id;
    pid_t pid;
    int nr;
    uint32_t arch;
} denied;

typedef struct den_log {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    denied d[MAX_DENIED];
    int nd;
    sbx_event end[64];
    int nend;
    /* gate: the callback holds the first DENIED of `hold_id` until released */
    uint64_t hold_id;
    bool held, release;
} den_log;

static sbx_broker *B;
static den_log D;

static void on_event(const sbx_event *e, void *ud)
{
    den_log *l = ud;
    pthread_mutex_lock(&l->lock);
    if (e->type == SBX_EVENT_DENIED) {
        if (l->nd < MAX_DENIED)
            l->d[l->nd++] = (denied){ e->target_id, e->pid, e->syscall, e->arch };
        if (l->hold_id && e->target_id == l->hold_id && !l->release) {
            l->held = true;
            pthread_cond_broadcast(&l->cond);
            while (!l->release)
                pthread_cond_wait(&l->cond, &l->lock);
        }
    } else if ((e->type == SBX_EVENT_EXITED || e->type == SBX_EVENT_KILLED) && l->nend < 64) {
        l->end[l->nend++] = *e;
    }
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

static void setup(void)
{
    memset(&D, 0, sizeof D);
    pthread_mutex_init(&D.lock, NULL);
    pthread_cond_init(&D.cond, NULL);
    cr_assert_eq(sbx_broker_new(&B), 0);
    sbx_broker_set_event_callback(B, on_event, &D);
}

static void teardown(void)
{
    sbx_broker_free(B);
}

TestSuite(denied, .init = setup, .fini = teardown);

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static sbx_event wait_end(uint64_t id, int ms)
{
    struct timespec dl;
    deadline_after(&dl, ms);
    sbx_event out = { 0 };
    pthread_mutex_lock(&D.lock);
    for (;;) {
        for (int i = 0; i < D.nend; i++)
            if (D.end[i].target_id == id)
                out = D.end[i];
        if (out.type || pthread_cond_timedwait(&D.cond, &D.lock, &dl) != 0)
            break;
    }
    pthread_mutex_unlock(&D.lock);
    return out;
}

/* DENIED events of target id: total, and how many have number nr, pid
 * pid and the x86_64 ABI. */
static int count_denied(uint64_t id, int nr, pid_t pid, int *matching)
{
    int n = 0, m = 0;
    pthread_mutex_lock(&D.lock);
    for (int i = 0; i < D.nd; i++)
        if (D.d[i].id == id) {
            n++;
            m += D.d[i].nr == nr && D.d[i].pid == pid && D.d[i].arch == AUDIT_ARCH_X86_64;
        }
    pthread_mutex_unlock(&D.lock);
    if (matching)
        *matching = m;
    return n;
}

/* The probe's policy: no brokered rules, no audit, so no interception. */
static sbx_policy *plain_policy(void)
{
    sbx_policy *p = probe_policy(B);
    cr_assert_not(sbx_runtime_needs_interception(p), "the probe policy intercepts files");
    return p;
}

static void expect_reported(const char *name, int nr, int calls)
{
    sbx_policy *p = plain_policy();
    /* Else the no-children filter refuses clone first (ERRNO outranks a
     * notification among stacked filters): not a baseline denial. */
    sbx_policy_set_mitigations(p, SBX_MITIGATION_ALLOW_CHILDREN);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "sys", name, NULL), 0, "%s", info.error);
    sbx_event e = wait_end(info.id, 10000);
    cr_assert_eq(e.type, SBX_EVENT_EXITED, "%s: no exit (type %d)", name, e.type);
    cr_assert_eq(e.code, 0, "%s: not refused with EPERM (probe exit %d)", name, e.code);
    int match = 0;
    int n = count_denied(info.id, nr, info.pid, &match);
    cr_expect_eq(n, calls, "%s: %d DENIED events, expected %d", name, n, calls);
    cr_expect_eq(match, calls, "%s: %d events with syscall %d and pid %d", name, match, nr,
                 (int)info.pid);
    cr_expect_eq(e.denied_unreported, 0u);
    sbx_policy_unref(p);
}

/* The probe's "sys NAME" makes these calls (probe.c sys_test). */
Test(denied, ptrace_reported) { expect_reported("ptrace", SYS_ptrace, 2); }
Test(denied, bpf_reported) { expect_reported("bpf", SYS_bpf, 1); }
Test(denied, mount_reported) { expect_reported("mount", SYS_mount, 2); }
Test(denied, unshare_user_reported) { expect_reported("unshare_user", SYS_unshare, 1); }
Test(denied, io_uring_setup_reported) { expect_reported("io_uring_setup", SYS_io_uring_setup, 1); }
Test(denied, clone_newnet_reported) { expect_reported("clone_newnet", SYS_clone, 1); }

Test(denied, int80_reported_with_its_abi)
{
    sbx_policy *p = plain_policy();
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "sys", "int80", NULL), 0, "%s", info.error);
    sbx_event e = wait_end(info.id, 10000);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0, "int 0x80 not refused with EPERM");
    pthread_mutex_lock(&D.lock);
    int n = 0, i386_open = 0;
    for (int i = 0; i < D.nd; i++)
        if (D.d[i].id == info.id) {
            n++;
            i386_open += D.d[i].arch == AUDIT_ARCH_I386 && D.d[i].nr == 5; /* i386 open */
        }
    pthread_mutex_unlock(&D.lock);
    cr_expect_eq(n, 1);
    cr_expect_eq(i386_open, 1, "not reported as the i386 ABI's open");
    sbx_policy_unref(p);
}

Test(denied, ordinary_calls_are_not_reported)
{
    sbx_policy *p = plain_policy();
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "present", "/usr/bin", "/proc/self/status", NULL), 0,
                 "%s", info.error);
    sbx_event e = wait_end(info.id, 10000);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0);
    cr_expect_eq(count_denied(info.id, 0, 0, NULL), 0);
    sbx_policy_unref(p);
}

Test(denied, kill_mode_still_kills)
{
    sbx_policy *p = plain_policy();
    sbx_policy_set_mitigations(p, SBX_MITIGATION_KILL_ON_DENIED_SYSCALL);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "sys", "bpf", NULL), 0, "%s", info.error);
    sbx_event e = wait_end(info.id, 10000);
    cr_assert_eq(e.type, SBX_EVENT_KILLED);
    cr_assert_eq(e.signal, SIGSYS);
    cr_expect_eq(count_denied(info.id, 0, 0, NULL), 0, "kill mode reported a DENIED");
    sbx_policy_unref(p);
}

/* The reporting filter itself: with its listener closed, a notification
 * fails with ENOSYS; so exactly the calls that would reach the broker say
 * ENOSYS. File calls and the rest of a program's life must not. */
Test(denied, only_baseline_calls_notify)
{
    sbx_bpf f;
    cr_assert_eq(sbx_baseline_build_notify(&f), 0);
    pid_t c = fork();
    cr_assert_geq(c, 0);
    if (c == 0) {
        struct sock_fprog prog = { .len = f.len, .filter = f.insns };
        int lfd = sbx_notify_filter_install(&prog);
        if (lfd < 0)
            _exit(10);
        close(lfd);
        int bad = 0;
        /* allowed, natively */
        int fd = open("/proc/self/status", O_RDONLY);
        bad |= (fd < 0) << 0;
        struct stat st;
        bad |= (stat("/usr", &st) != 0) << 1;
        bad |= (getpid() <= 0) << 2;
        bad |= (unshare(0) != 0) << 3;                       /* no namespace flag */
        bad |= (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS) << 4; /* ENOSYS by rule */
        pid_t g = fork();                                    /* clone without ns flags */
        if (g == 0)
            _exit(0);
        bad |= (g < 0) << 5;
        if (g > 0)
            waitpid(g, NULL, 0);
        /* notified: no listener, so ENOSYS */
        bad |= (syscall(SYS_bpf, 0, NULL, 0) != -1 || errno != ENOSYS) << 6;
        bad |= (syscall(SYS_ptrace, 0, 0, 0, 0) != -1 || errno != ENOSYS) << 7;
        bad |= (unshare(CLONE_NEWUSER) != -1 || errno != ENOSYS) << 8;
        bad |= (syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != ENOSYS) << 9;
        _exit(bad);
    }
    int st;
    cr_assert_eq(waitpid(c, &st, 0), c);
    sbx_bpf_free(&f);
    cr_assert(WIFEXITED(st), "child died: %d", st);
    cr_assert_eq(WEXITSTATUS(st), 0, "mismatch bits 0x%x", WEXITSTATUS(st));
}

static unsigned long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* 10k denied calls (over `threads` threads): every one refused, the events
 * bounded by the rate limit, and reported + unreported == calls; another
 * target spawned meanwhile runs normally and gets its own denial reported. */
static void flood(sbx_policy *p, const char *threads)
{
    sbx_target_info info, other;
    unsigned long long t0 = now_ns();
    cr_assert_eq(spawn_probe(B, p, &info, "flood", "10000", threads, NULL), 0, "%s", info.error);
    unsigned long long t1 = now_ns();
    sbx_policy *q = plain_policy();
    cr_assert_eq(spawn_probe(B, q, &other, "sys", "bpf", NULL), 0, "%s", other.error);
    sbx_event eo = wait_end(other.id, 10000);
    unsigned long long t2 = now_ns();
    cr_assert_eq(eo.type, SBX_EVENT_EXITED);
    cr_expect_eq(eo.code, 0);
    cr_expect_eq(count_denied(other.id, SYS_bpf, other.pid, NULL), 1);
    cr_expect_lt(t2 - t1, 3000000000ull, "broker slow during a flood: %llu ms",
                 (t2 - t1) / 1000000);
    sbx_event e = wait_end(info.id, 60000);
    unsigned long long t3 = now_ns();
    cr_assert_eq(e.type, SBX_EVENT_EXITED, "flood: type %d", e.type);
    cr_assert_eq(e.code, 0, "a flooded call was not refused with EPERM (%d)", e.code);
    int match = 0;
    int n = count_denied(info.id, SYS_bpf, info.pid, &match);
    cr_expect_eq(match, n);
    double secs = (double)(t3 - t0) / 1e9;
    cr_expect_leq(n, SBX_DENIED_EVENTS_BURST + (int)(secs * SBX_DENIED_EVENTS_PER_SEC) + 1,
                  "%d events in %.2f s", n, secs);
    cr_expect_geq(n, SBX_DENIED_EVENTS_BURST);
    cr_expect_eq((uint64_t)n + e.denied_unreported, 10000u, "%d reported + %llu unreported", n,
                 (unsigned long long)e.denied_unreported);
    cr_log_info("flood (%s threads): 10000 calls in %.2f s, %d reported", threads, secs, n);
    sbx_policy_unref(q);
}

Test(denied, flood_is_bounded_and_counted)
{
    sbx_policy *p = plain_policy();
    flood(p, "1");
    sbx_policy_unref(p);
}

Test(denied, threaded_flood_is_bounded_and_counted)
{
    sbx_policy *p = plain_policy();
    flood(p, "8");
    sbx_policy_unref(p);
}

/* The same accounting for an intercepted target (the notify server's path). */
Test(denied, intercepted_flood_is_bounded_and_counted)
{
    sbx_policy *p = probe_policy(B);
    cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY,
                                     "/var/tmp/sbx-denied-none/**"),
                 0);
    cr_assert(sbx_runtime_needs_interception(p));
    flood(p, "4");
    sbx_policy_unref(p);
}

/* The broker holds a denied call (the callback blocks) while the target is
 * killed: the answer then finds no caller, and the broker carries on. */
Test(denied, target_dying_mid_notification_does_not_wedge)
{
    sbx_policy *p = plain_policy();
    int pf[2];
    cr_assert_eq(pipe(pf), 0);
    char *argv[] = { (char *)"probe", (char *)"flood_forever", NULL };
    char *env[] = { (char *)"ASAN_OPTIONS=detect_leaks=0", NULL };
    sbx_spawn_options o = { .path = probe_path(), .argv = argv, .envp = env,
                            .stdin_fd = SBX_STDIO_NULL, .stdout_fd = pf[1], .stderr_fd = 2 };
    sbx_target_info info;
    pthread_mutex_lock(&D.lock);
    D.hold_id = 0;
    pthread_mutex_unlock(&D.lock);
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    close(pf[1]);
    /* Hold from now on (the target may have made calls already). */
    pthread_mutex_lock(&D.lock);
    D.hold_id = info.id;
    struct timespec dl;
    deadline_after(&dl, 10000);
    while (!D.held && pthread_cond_timedwait(&D.cond, &D.lock, &dl) == 0)
        ;
    bool held = D.held;
    pthread_mutex_unlock(&D.lock);
    cr_assert(held, "no denial reached the callback");
    cr_assert_eq(sbx_broker_kill(B, info.id, SIGKILL), 0);
    unsigned long long t0 = now_ns();
    while ((pid_alive(info.pid) || pid_alive(info.init_pid)) && now_ns() - t0 < 5000000000ull) {
        struct timespec ts = { 0, 5000000 };
        nanosleep(&ts, NULL);
    }
    cr_assert_not(pid_alive(info.pid), "the target survived SIGKILL");
    pthread_mutex_lock(&D.lock);
    D.release = true;
    pthread_cond_broadcast(&D.cond);
    pthread_mutex_unlock(&D.lock);
    sbx_event e = wait_end(info.id, 10000);
    cr_assert_eq(e.type, SBX_EVENT_KILLED);
    cr_assert_eq(e.signal, SIGKILL);
    /* Still serving: another target's denial is answered and reported. */
    sbx_target_info other;
    cr_assert_eq(spawn_probe(B, p, &other, "sys", "bpf", NULL), 0, "%s", other.error);
    sbx_event eo = wait_end(other.id, 10000);
    cr_assert_eq(eo.type, SBX_EVENT_EXITED);
    cr_assert_eq(eo.code, 0);
    cr_expect_eq(count_denied(other.id, SYS_bpf, other.pid, NULL), 1);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    close(pf[0]);
    sbx_policy_unref(p);
}

/* Many targets at once share the one denials thread: every call of every
 * target is answered and reported. */
Test(denied, many_targets_share_the_thread)
{
    sbx_policy *p = plain_policy();
    enum { N = 12 };
    sbx_target_info info[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(spawn_probe(B, p, &info[i], "flood", "40", "2", NULL), 0, "%s", info[i].error);
    for (int i = 0; i < N; i++) {
        sbx_event e = wait_end(info[i].id, 20000);
        cr_assert_eq(e.type, SBX_EVENT_EXITED, "target %d", i);
        cr_expect_eq(e.code, 0, "target %d", i);
        int match = 0;
        cr_expect_eq(count_denied(info[i].id, SYS_bpf, info[i].pid, &match), 40, "target %d", i);
        cr_expect_eq(match, 40);
    }
    sbx_policy_unref(p);
}

/* An intercepted target (a brokered rule) in EPERM mode: int 0x80 is a
 * baseline denial like any other, refused with EPERM and reported as the
 * i386 ABI's call, not a kill. */
Test(denied, intercepted_int80_refused_and_reported)
{
    sbx_policy *p = probe_policy(B);
    cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY,
                                     "/var/tmp/sbx-denied-none/**"),
                 0);
    cr_assert(sbx_runtime_needs_interception(p));
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "sys", "int80", NULL), 0, "%s", info.error);
    sbx_event e = wait_end(info.id, 10000);
    cr_assert_eq(e.type, SBX_EVENT_EXITED, "type %d signal %d", e.type, e.signal);
    cr_assert_eq(e.code, 0, "int 0x80 not refused with EPERM");
    pthread_mutex_lock(&D.lock);
    int i386_open = 0;
    for (int i = 0; i < D.nd; i++)
        i386_open += D.d[i].id == info.id && D.d[i].arch == AUDIT_ARCH_I386 && D.d[i].nr == 5;
    pthread_mutex_unlock(&D.lock);
    cr_expect_eq(i386_open, 1, "not reported as the i386 ABI's open");
    sbx_policy_unref(p);
}
