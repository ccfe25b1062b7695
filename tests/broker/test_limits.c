/* Limits and lifetime: memory, processes, warnings, broker death. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "base/fd.h"
#include "broker/broker_internal.h"
#include "broker/cgroup.h"
#include "common.h"

static sbx_broker *B;
static event_log L;

static void setup(void)
{
    log_init(&L);
    cr_assert_eq(sbx_broker_new(&B), 0);
    sbx_broker_set_event_callback(B, log_event, &L);
}

static void teardown(void)
{
    sbx_broker_free(B);
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 30);

Test(limits, memory_hog_killed_and_reported)
{
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "hog", "512", NULL), 0, "%s", info.error);
    sbx_event e = log_wait_end(&L, info.id, 15000);
    cr_assert_eq(e.type, SBX_EVENT_KILLED, "type %d code %d (warnings: %s)", e.type, e.code,
                 info.warnings);
    cr_assert_eq(e.signal, SIGKILL);
    cr_assert(e.memory_limit, "not reported as memory limit");
    cr_assert_geq(log_count(&L, SBX_EVENT_LIMIT, info.id), 1);
    sbx_policy_unref(p);
}

Test(limits, memory_within_limit_runs)
{
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    sbx_event e = run_probe(B, &L, p, "hog", "16");
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0);
    cr_assert_not(e.memory_limit);
    sbx_policy_unref(p);
}

Test(limits, fork_bomb_contained_broker_responsive)
{
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_mitigations(p, SBX_MITIGATION_ALLOW_CHILDREN);
    sbx_policy_set_limit(p, SBX_LIMIT_PROCESSES, 16);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "forkbomb", NULL), 0, "%s", info.error);
    /* The broker keeps answering while the bomb runs. */
    sbx_target_info other;
    sbx_policy *q = probe_policy(B);
    unsigned long long t0 = sbx_now_ns();
    sbx_event e2 = run_probe(B, &L, q, "exit", "7");
    cr_assert_eq(e2.code, 7);
    cr_assert_lt(sbx_now_ns() - t0, 3000000000ull);
    sbx_event e = log_wait_end(&L, info.id, 10000);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0, "fork never failed with EAGAIN");
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0, "descendants outlived the target");
    (void)other;
    sbx_policy_unref(q);
    sbx_policy_unref(p);
}

Test(limits, lockdown_default_forbids_children)
{
    sbx_policy *p = probe_policy(B);
    sbx_event e = run_probe(B, &L, p, "sys", "fork");
    cr_assert_eq(e.code, 0);
    sbx_policy_unref(p);
}

Test(limits, open_files_rlimit)
{
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_OPEN_FILES, 16);
    sbx_event e = run_probe(B, &L, p, "nofile", "16");
    cr_assert_eq(e.code, 0);
    sbx_policy_unref(p);
}

/* In a child process: a broker spawns a target that forks a grandchild;
 * report both pids on a pipe, then wait to be SIGKILLed. */
static void broker_child(int wfd) __attribute__((noreturn));
static void broker_child(int wfd)
{
    sbx_broker *b = NULL;
    if (sbx_broker_new(&b) != 0)
        _exit(2);
    sbx_policy *p = probe_policy(b);
    sbx_policy_set_mitigations(p, SBX_MITIGATION_ALLOW_CHILDREN);
    char *argv[] = { (char *)"probe", (char *)"family", NULL };
    char *env[] = { (char *)"ASAN_OPTIONS=detect_leaks=0", NULL };
    int pf[2];
    if (pipe(pf) < 0)
        _exit(3);
    sbx_spawn_options o = { .path = probe_path(), .argv = argv, .envp = env,
                            .stdin_fd = SBX_STDIO_NULL, .stdout_fd = pf[1], .stderr_fd = 2 };
    sbx_target_info info;
    if (sbx_broker_spawn(b, p, &o, &info) != 0)
        _exit(4);
    close(pf[1]); /* a program that dies before writing gives EOF, not a hang */
    char buf[32] = "";
    ssize_t n = read(pf[0], buf, sizeof buf - 1); /* "pid-in-ns\n": the program is up */
    if (n <= 0)
        _exit(5);
    pid_t pids[2] = { info.pid, info.init_pid };
    if (write(wfd, pids, sizeof pids) != (ssize_t)sizeof pids)
        _exit(6);
    for (;;)
        pause();
}

/* In a child process: a broker whose limited target ran (so it made a
 * cgroup leaf, and its pool a pre-made one), killed before it can free
 * anything; it reports its pid first. */
static void killed_broker_child(int wfd) __attribute__((noreturn));
static void killed_broker_child(int wfd)
{
    sbx_broker *b = NULL;
    if (sbx_broker_new(&b) != 0)
        _exit(2);
    sbx_policy *p = sbx_broker_create_policy(b);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    char *argv[] = { (char *)"true", NULL };
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2 };
    sbx_target_info info;
    if (sbx_broker_spawn(b, p, &o, &info) != 0 || sbx_broker_wait_quiescent(b) != 0)
        _exit(4);
    pid_t self = getpid();
    if (write(wfd, &self, sizeof self) != (ssize_t)sizeof self)
        _exit(6);
    kill(self, SIGKILL);
    _exit(7);
}

/* Cases that need a broker in another process run it in a fresh image of
 * this binary, never in a bare fork of the Criterion worker: the worker
 * has threads (Criterion's, the fixture broker's), and ASan's allocator
 * (GCC 12's libsanitizer) takes no lock across fork(), so a fork taken
 * while another thread is inside malloc leaves the child's allocator
 * mutex locked forever. The child's first malloc (sbx_broker_new) or
 * thread start then hung, about one run in 30 (gdb: __sanitizer::Mutex::
 * Lock in SizeClassAllocator64::GetFromAllocator, or in
 * pthread_getattr_np under ASan's thread start). glibc's own malloc is
 * fork-safe (atfork locking): only ASan builds hung. The variable below
 * names the child's role and the pipe it reports on; this constructor
 * takes over before Criterion's main. */
#define CHILD_ROLE_ENV "SBX_TEST_LIMITS_CHILD"
static void brokers_child(int wfd) __attribute__((noreturn));
static void killed_broker_child(int wfd) __attribute__((noreturn));

/* Another broker's reap of stale cgroups, run from a pid namespace of its
 * own (a broker under bubblewrap --unshare-pid sharing our cgroup): our
 * pid does not exist there. Single-threaded here (before main). */
static void reaper_in_own_pidns_child(void) __attribute__((noreturn));
static void reaper_in_own_pidns_child(void)
{
    if (unshare(CLONE_NEWPID) != 0)
        _exit(2);
    pid_t c = fork();
    if (c < 0)
        _exit(3);
    if (c == 0) {
        sbx_cgroup_reap_stale();
        _exit(0);
    }
    int st;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st))
        _exit(4);
    _exit(WEXITSTATUS(st));
}

__attribute__((constructor)) static void child_role_entry(void)
{
    const char *v = getenv(CHILD_ROLE_ENV);
    if (!v)
        return;
    int fd = atoi(v + 2);
    if (!strncmp(v, "d:", 2))
        broker_child(fd);
    if (!strncmp(v, "b:", 2))
        brokers_child(fd);
    if (!strncmp(v, "k:", 2))
        killed_broker_child(fd);
    if (!strncmp(v, "r:", 2))
        reaper_in_own_pidns_child();
    _exit(120);
}

/* fork + exec this binary in role `role` ('d', 'b', 'k' or 'r') with `wfd` kept
 * open. Everything is prepared before fork: between fork and exec only
 * async-signal-safe calls. */
static pid_t spawn_self(char role, int wfd)
{
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    static char var[64];
    snprintf(var, sizeof var, CHILD_ROLE_ENV "=%c:%d", role, wfd);
    extern char **environ;
    static char *envp[512];
    size_t ne = 0;
    envp[ne++] = var;
    for (char **e = environ; *e && ne < sizeof envp / sizeof envp[0] - 1; e++)
        if (strncmp(*e, CHILD_ROLE_ENV "=", sizeof CHILD_ROLE_ENV) != 0)
            envp[ne++] = *e;
    envp[ne] = NULL;
    static char *argv[2];
    argv[0] = exe;
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        execve(exe, argv, envp); /* wfd is inherited: no O_CLOEXEC on it */
        _exit(127);
    }
    return child;
}

Test(limits, broker_death_kills_targets_within_1s)
{
    int pp[2];
    cr_assert_eq(pipe(pp), 0);
    fcntl(pp[0], F_SETFD, FD_CLOEXEC);
    pid_t child = spawn_self('d', pp[1]);
    close(pp[1]);
    pid_t pids[2];
    cr_assert_eq(read(pp[0], pids, sizeof pids), (ssize_t)sizeof pids);
    /* The grandchild: the program's child. */
    char path[80];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pids[0], (int)pids[0]);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    int gc = 0;
    cr_assert_eq(fscanf(f, "%d", &gc), 1);
    fclose(f);
    cr_assert(pid_alive(pids[0]) && pid_alive(gc));
    kill(child, SIGKILL);
    unsigned long long t0 = sbx_now_ns();
    int st;
    waitpid(child, &st, 0);
    while ((pid_alive(pids[0]) || pid_alive(pids[1]) || pid_alive(gc)) && sbx_now_ns() - t0 < 1000000000ull) {
        struct timespec ts = { 0, 5000000 };
        nanosleep(&ts, NULL);
    }
    cr_assert_not(pid_alive(pids[0]), "target survived its broker");
    cr_assert_not(pid_alive(gc), "grandchild survived the broker");
    cr_assert_not(pid_alive(pids[1]), "init survived the broker");
}

Test(limits, target_exit_tears_down_descendants)
{
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_mitigations(p, SBX_MITIGATION_ALLOW_CHILDREN);
    sbx_target_info info;
    int pf[2];
    cr_assert_eq(pipe(pf), 0);
    char *argv[] = { (char *)"probe", (char *)"family", NULL };
    sbx_spawn_options o = { .path = probe_path(), .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = pf[1], .stderr_fd = 2 };
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    close(pf[1]);
    char buf[32];
    cr_assert_gt(read(pf[0], buf, sizeof buf), 0);
    char path[80];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)info.pid, (int)info.pid);
    FILE *f = fopen(path, "r");
    int gc = 0;
    cr_assert_eq(fscanf(f, "%d", &gc), 1);
    fclose(f);
    cr_assert_eq(sbx_broker_kill(B, info.id, SIGTERM), 0);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.type, SBX_EVENT_KILLED);
    cr_assert_eq(e.signal, SIGTERM);
    cr_assert_not(pid_alive(gc), "grandchild outlived the target");
    cr_assert_not(sbx_broker_is_active_target(B, info.pid));
    close(pf[0]);
    sbx_policy_unref(p);
}

Test(limits, unenforceable_limit_is_a_warning)
{
    /* A broker that cannot use cgroups: simulate by a policy whose job
     * preset asks for limits and check the warning machinery on a
     * machine where they apply: no warning for memory/pids then. */
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "exit", "0", NULL), 0, "%s", info.error);
    bool cg = access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) == 0;
    if (cg)
        cr_assert_null(strstr(info.warnings, "memory:"), "%s", info.warnings);
    else
        cr_assert_not_null(strstr(info.warnings, "memory:"), "%s", info.warnings);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    sbx_policy_unref(p);
}

static int late_events;
static void count_late(const sbx_event *e, void *ud)
{
    (void)e;
    if (*(volatile int *)ud)
        __atomic_add_fetch(&late_events, 1, __ATOMIC_SEQ_CST);
}

Test(limits, free_kills_live_targets_and_stops_events)
{
    sbx_broker *b = NULL;
    cr_assert_eq(sbx_broker_new(&b), 0);
    static int freed;
    sbx_broker_set_event_callback(b, count_late, &freed);
    sbx_policy *p = probe_policy(b);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(b, p, &info, "sleep", "10000", NULL), 0, "%s", info.error);
    pid_t pid = info.pid, init = info.init_pid;
    sbx_broker_free(b);
    freed = 1;
    cr_assert_not(pid_alive(pid), "target outlived sbx_broker_free");
    cr_assert_not(pid_alive(init));
    cr_assert_eq(count_zombies(), 0);
    struct timespec ts = { 0, 50000000 };
    nanosleep(&ts, NULL);
    cr_assert_eq(__atomic_load_n(&late_events, __ATOMIC_SEQ_CST), 0);
    sbx_policy_unref(p);
}

Test(limits, cpu_limit_reported)
{
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_CPU_SECONDS, 1);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "spin", "20", NULL), 0, "%s", info.error);
    sbx_event e = log_wait_end(&L, info.id, 15000);
    cr_assert_eq(e.type, SBX_EVENT_KILLED);
    cr_assert(e.signal == SIGXCPU || e.signal == SIGKILL, "signal %d", e.signal);
    if (e.signal == SIGXCPU)
        cr_assert_eq(log_count(&L, SBX_EVENT_LIMIT, info.id), 1);
    sbx_policy_unref(p);
}

#include <sched.h>
#include <sys/mount.h>

Test(limits, no_cgroups_means_rlimits_and_warnings)
{
    /* This test process gets a private mount namespace where no cgroup
     * hierarchy is mounted: the broker must fall back and say so. */
    cr_assert_eq(unshare(CLONE_NEWNS), 0);
    cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
    cr_assert_eq(mount("none", "/sys/fs/cgroup", "tmpfs", 0, NULL), 0);
    sbx_policy *p = sbx_broker_create_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    sbx_policy_set_limit(p, SBX_LIMIT_PROCESSES, 8);
    char *argv[] = { (char *)"true", NULL };
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2 };
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    cr_assert_not_null(strstr(info.warnings, "memory:"), "warnings: %s", info.warnings);
    cr_assert_not_null(strstr(info.warnings, "RLIMIT_AS"));
    cr_assert_not_null(strstr(info.warnings, "processes:"));
    cr_assert_eq(info.n_warnings, 2);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0);
    sbx_policy_unref(p);
}

/* The child joins its cgroups itself (v1 "tasks" fds opened by the
 * broker): the program must start inside them, in both controllers. */
Test(limits, program_starts_inside_its_cgroups)
{
    skip_without_v1_cgroups();
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    sbx_policy_set_limit(p, SBX_LIMIT_PROCESSES, 8);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "sleep", "10000", NULL), 0, "%s", info.error);
    cr_assert_eq(info.n_warnings, 0, "%s", info.warnings);
    char path[64], buf[4096] = "";
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)info.pid);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "/sbx/%d/", (int)getpid());
    const char *mem = strstr(buf, ":memory:");
    const char *pids = strstr(buf, ":pids:");
    cr_assert(mem && pids, "%s", buf);
    cr_assert(strstr(mem, want) && strchr(mem, '\n') > strstr(mem, want), "memory: %s", buf);
    cr_assert(strstr(pids, want) && strchr(pids, '\n') > strstr(pids, want), "pids: %s", buf);
    cr_assert_eq(sbx_broker_kill(B, info.id, SIGKILL), 0);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.type, SBX_EVENT_KILLED);
    sbx_policy_unref(p);
}

/* Two brokers in one process, and a second process with its own broker,
 * spawning limited targets at once: every target gets real cgroups (no
 * RLIMIT fallback warning). Target ids repeat across brokers. */
static void *spawn_limited_loop(void *arg)
{
    sbx_broker *b = arg;
    sbx_policy *p = probe_policy(b);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    sbx_policy_set_limit(p, SBX_LIMIT_PROCESSES, 8);
    intptr_t bad = 0;
    for (int i = 0; i < 10 && !bad; i++) {
        sbx_target_info info;
        if (spawn_probe(b, p, &info, "exit", "0", NULL) != 0 || info.n_warnings != 0) {
            fprintf(stderr, "spawn %d: %s%s\n", i, info.error, info.warnings);
            bad = 1;
        }
        if (sbx_broker_wait_all(b, 5000) != 0)
            bad = 1;
    }
    sbx_policy_unref(p);
    return (void *)bad;
}

/* The other process of concurrent_brokers_never_fall_back. */
static void brokers_child(int wfd)
{
    (void)wfd;
    sbx_broker *cb = NULL;
    if (sbx_broker_new(&cb) != 0)
        _exit(2);
    intptr_t bad = (intptr_t)spawn_limited_loop(cb);
    sbx_broker_free(cb);
    _exit(bad ? 1 : 0);
}

Test(limits, concurrent_brokers_never_fall_back)
{
    skip_without_v1_cgroups();
    /* The other process: a fresh image (see spawn_self), not a fork. */
    pid_t child = spawn_self('b', -1);
    sbx_broker *b2 = NULL;
    cr_assert_eq(sbx_broker_new(&b2), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, spawn_limited_loop, b2), 0);
    void *bad1 = spawn_limited_loop(B);
    void *bad2 = NULL;
    pthread_join(t, &bad2);
    sbx_broker_free(b2);
    int st = 0;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert_null(bad1, "first broker fell back");
    cr_assert_null(bad2, "second broker fell back");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "other process: status %d", st);
}

/* The target's cgroup path (relative to the controller's root) in the
 * controller `ctl` ("memory", "pids"). */
static void target_cgroup(pid_t pid, const char *ctl, char *out, size_t size)
{
    char path[64], line[512], key[32];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    snprintf(key, sizeof key, ":%s:", ctl);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char *k = strstr(line, key);
        if (k) {
            snprintf(out, size, "%s", k + strlen(key));
            out[strcspn(out, "\n")] = '\0';
        }
    }
    fclose(f);
    cr_assert(out[0], "no %s cgroup for %d", ctl, (int)pid);
}

static unsigned long long cg_value(const char *ctl, const char *dir, const char *file)
{
    char path[1024], buf[64] = "";
    snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/%s", ctl, dir, file);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s", path);
    cr_assert(fgets(buf, sizeof buf, f));
    fclose(f);
    return strtoull(buf, NULL, 10);
}

/* Pre-made leaves (the pool): a leaf goes to one target only, holds the
 * limits of the target that gets it, and a policy with other limits
 * gets a leaf with its own. */
Test(limits, premade_cgroup_leaves_are_fresh_and_exact)
{
    skip_without_v1_cgroups();
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    sbx_policy_set_limit(p, SBX_LIMIT_PROCESSES, 8);
    sbx_policy *q = probe_policy(B);
    sbx_policy_set_limit(q, SBX_LIMIT_MEMORY, 32ull << 20);
    sbx_policy_set_limit(q, SBX_LIMIT_PROCESSES, 5);
    enum { N = 5 };
    sbx_policy *pol[N] = { p, p, p, q, q };
    unsigned long long mem[N] = { 64ull << 20, 64ull << 20, 64ull << 20, 32ull << 20, 32ull << 20 };
    unsigned long long pids[N] = { 8, 8, 8, 5, 5 };
    sbx_target_info info[N];
    char memcg[N][512], pidcg[N][512];
    int premade = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_geq(sbx_pool_wait_ready(B->pool, NULL), 0);
        cr_assert_eq(spawn_probe(B, pol[i], &info[i], "sleep", "5000", NULL), 0, "%s", info[i].error);
        cr_assert_eq(info[i].n_warnings, 0, "%s", info[i].warnings);
        target_cgroup(info[i].pid, "memory", memcg[i], sizeof memcg[i]);
        target_cgroup(info[i].pid, "pids", pidcg[i], sizeof pidcg[i]);
        premade += strstr(memcg[i], "/0-") != NULL;
        cr_assert_eq(cg_value("memory", memcg[i], "memory.limit_in_bytes"), mem[i], "%d: %s", i, memcg[i]);
        cr_assert_eq(cg_value("pids", pidcg[i], "pids.max"), pids[i], "%d: %s", i, pidcg[i]);
        for (int j = 0; j < i; j++) {
            cr_assert_str_neq(memcg[i], memcg[j]);
            cr_assert_str_neq(pidcg[i], pidcg[j]);
        }
    }
    /* 1, 2 and 4 found a leaf made for their limits. */
    cr_assert_geq(premade, 3, "pre-made leaves used: %d", premade);
    for (int i = 0; i < N; i++)
        cr_assert_eq(sbx_broker_kill(B, info[i].id, SIGKILL), 0);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    sbx_policy_unref(p);
    sbx_policy_unref(q);
}

/* /sys/fs/cgroup/<ctl><our cgroup>/sbx/<pid> */
static void broker_cgroup_dir(const char *ctl, pid_t pid, char *out, size_t size)
{
    char own[256] = "", line[512], fmt[32];
    snprintf(fmt, sizeof fmt, "%%*d:%s:%%255s", ctl);
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, fmt, own) == 1)
            break;
    if (f)
        fclose(f);
    snprintf(out, size, "/sys/fs/cgroup/%s%s/sbx/%d", ctl, strcmp(own, "/") ? own : "", (int)pid);
}

/* A killed broker cannot remove its cgroups (its targets die with it,
 * their leaves and its pre-made one stay, empty): the next broker to use
 * cgroups removes them, and leaves a live broker's alone. */
Test(limits, killed_brokers_cgroups_removed_by_the_next)
{
    skip_without_v1_cgroups();
    int pp[2];
    cr_assert_eq(pipe(pp), 0);
    fcntl(pp[0], F_SETFD, FD_CLOEXEC);
    pid_t child = spawn_self('k', pp[1]);
    close(pp[1]);
    pid_t reported = 0;
    cr_assert_eq(read(pp[0], &reported, sizeof reported), (ssize_t)sizeof reported);
    close(pp[0]);
    cr_assert_eq(reported, child);
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %d", st);
    char mem[700], pids[700], live[700];
    broker_cgroup_dir("memory", child, mem, sizeof mem);
    broker_cgroup_dir("pids", child, pids, sizeof pids);
    struct stat sb;
    cr_assert_eq(stat(mem, &sb), 0, "the killed broker left no %s: nothing to test", mem);
    /* A live broker (this one) and its leaves are not touched. */
    sbx_policy *p = sbx_broker_create_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    sbx_target_info info;
    char *argv[] = { (char *)"sleep", (char *)"30", NULL };
    sbx_spawn_options o = { .path = "/bin/sleep", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2 };
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    cr_assert_geq(sbx_pool_wait_ready(B->pool, NULL), 0); /* its first leaf made: reaped before */
    cr_expect_neq(stat(mem, &sb), 0, "%s left behind", mem);
    cr_expect_neq(stat(pids, &sb), 0, "%s left behind", pids);
    broker_cgroup_dir("memory", getpid(), live, sizeof live);
    char leaf[1024];
    target_cgroup(info.pid, "memory", leaf, sizeof leaf);
    char full[1100];
    snprintf(full, sizeof full, "/sys/fs/cgroup/memory%s", leaf);
    cr_expect_eq(stat(full, &sb), 0, "a live target's leaf %s was removed", full);
    cr_expect_eq(stat(live, &sb), 0, "a live broker's %s was removed", live);
    cr_assert_eq(sbx_broker_kill(B, info.id, SIGKILL), 0);
    cr_assert_eq(sbx_broker_wait_quiescent(B), 0);
    sbx_policy_unref(p);
}

/* Brokers one after another in one process, spawning from the same
 * thread: the first one's free removes the per-broker directories the
 * thread has made before (it keeps where its cgroups go), and the next
 * broker's targets still get real cgroups, not the rlimit fallback. */
Test(limits, brokers_in_turn_keep_real_cgroups)
{
    skip_without_v1_cgroups();
    char dir[700];
    broker_cgroup_dir("memory", getpid(), dir, sizeof dir);
    for (int round = 0; round < 3; round++) {
        sbx_broker *b = NULL;
        cr_assert_eq(sbx_broker_new(&b), 0);
        sbx_policy *p = sbx_broker_create_policy(b);
        sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
        sbx_policy_set_limit(p, SBX_LIMIT_PROCESSES, 8);
        char *argv[] = { (char *)"sleep", (char *)"30", NULL };
        sbx_spawn_options o = { .path = "/bin/sleep", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                                .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2 };
        sbx_target_info info;
        cr_assert_eq(sbx_broker_spawn(b, p, &o, &info), 0, "%d: %s", round, info.error);
        cr_expect_eq(info.n_warnings, 0, "round %d fell back: %s", round, info.warnings);
        char cg[512];
        target_cgroup(info.pid, "memory", cg, sizeof cg);
        char want[64];
        snprintf(want, sizeof want, "/sbx/%d/", (int)getpid());
        cr_expect(strstr(cg, want), "round %d: target in %s", round, cg);
        cr_assert_eq(sbx_broker_kill(b, info.id, SIGKILL), 0);
        cr_assert_eq(sbx_broker_wait_quiescent(b), 0);
        sbx_policy_unref(p);
        sbx_broker_free(b);
        struct stat sb;
        cr_expect_neq(stat(dir, &sb), 0, "round %d: %s left behind", round, dir);
    }
}

/* The pid in a per-broker directory's name is from its broker's pid
 * namespace: a broker in another one (same cgroup) sees no such process.
 * Its reap must still leave a live broker's empty leaves alone (a leaf
 * made ahead by the pool, or made and not yet joined by its child). */
Test(limits, a_reaper_in_another_pid_namespace_leaves_live_brokers_alone)
{
    skip_without_v1_cgroups();
    sbx_policy *p = sbx_broker_create_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    char *argv[] = { (char *)"true", NULL };
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2 };
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    cr_assert_eq(sbx_broker_wait_quiescent(B), 0);
    /* An empty leaf of ours, as the pool's pre-made one is. */
    char dir[700], leaf[800];
    broker_cgroup_dir("memory", getpid(), dir, sizeof dir);
    snprintf(leaf, sizeof leaf, "%s/999999-1", dir);
    cr_assert_eq(mkdir(leaf, 0755), 0, "%s: %s", leaf, strerror(errno));
    pid_t child = spawn_self('r', -1);
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    struct stat sb;
    bool kept = stat(leaf, &sb) == 0;
    (void)rmdir(leaf);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reaper status %d", st);
    cr_expect(kept, "a live broker's empty leaf %s was removed", leaf);
    cr_expect_eq(stat(dir, &sb), 0, "a live broker's %s was removed", dir);
    sbx_policy_unref(p);
}
