/* Inside a target: view, network, identity, capabilities, fds, env, and
 * one case per baseline-denied syscall. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "base/cleanup.h"
#include "broker/broker_internal.h"
#include "common.h"
#include "sbx_test.h"

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

TestSuite(confine, .init = setup, .fini = teardown, .timeout = 20);

static void expect_ok(sbx_policy *p, const char *cmd, const char *arg)
{
    sbx_event e = run_probe(B, &L, p, cmd, arg);
    cr_assert_eq(e.type, SBX_EVENT_EXITED, "%s %s: killed by %d", cmd, arg ? arg : "", e.signal);
    cr_assert_eq(e.code, 0, "%s %s: exit %d", cmd, arg ? arg : "", e.code);
}

Test(confine, host_files_outside_view_absent)
{
    sbx_policy *p = probe_policy(B);
    sbx_target_info info;
    /* A directory on the way to the probe's own view is present (as an
     * empty skeleton directory): the checkout may live under /var or /home. */
    const char *host[] = { "/home", "/root", "/var", "/work/shared", "/boot" };
    const char *absent[SBX_ARRAY_SIZE(host)];
    size_t n = 0;
    size_t dl = strlen(probe_dir());
    for (size_t i = 0; i < SBX_ARRAY_SIZE(host); i++) {
        size_t hl = strlen(host[i]);
        bool on_way = dl > hl && strncmp(probe_dir(), host[i], hl) == 0 && probe_dir()[hl] == '/';
        absent[n] = on_way ? "/nonexistent-host-path" : host[i];
        n++;
    }
    cr_assert_eq(spawn_probe(B, p, &info, "absent", absent[0], absent[1], absent[2], absent[3],
                             absent[4], "/etc/passwd", "/etc/shadow", "/sys", "/dev/sda", NULL),
                 0, "%s", info.error);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0);
    expect_ok(p, "present", "/usr/bin");
    expect_ok(p, "present", "/etc/ld.so.cache");
    expect_ok(p, "present", "/proc/self/status");
    expect_ok(p, "hostname", NULL);
    sbx_policy_unref(p);
}

/* A view beneath /tmp stays visible: the private /tmp tmpfs is mounted
 * before the policy's views, not over them (a checkout under /tmp must be
 * able to run its own programs in a target). Other /tmp content is not. */
Test(confine, view_under_tmp_is_visible)
{
    char dir[] = "/tmp/sbx-view-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(chmod(dir, 0755), 0); /* the target runs as 65534 */
    char file[64], other[64];
    snprintf(file, sizeof file, "%s/inside", dir);
    snprintf(other, sizeof other, "%s-other", dir);
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(mkdir(other, 0755), 0);
    sbx_policy *p = probe_policy(B);
    cr_assert_eq(sbx_policy_add_view(p, dir, SBX_VIEW_READONLY), 0);
    expect_ok(p, "present", file);
    expect_ok(p, "absent", other);
    expect_ok(p, "present", "/tmp");
    sbx_policy_unref(p);
    unlink(file);
    rmdir(dir);
    rmdir(other);
}

/* Many views: init inherits every view's tree and keeps them all while it
 * closes its other fds (its keep list once held 64, and a policy with
 * more than ~57 binds failed with "fds: Argument list too long"). Each is
 * mounted where it belongs: a file in every view is present, one never
 * added is absent. The data lives under /var/tmp: a target's /tmp is its
 * own. */
Test(confine, many_views_all_mounted)
{
    char dir[] = "/var/tmp/sbx-views-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(chmod(dir, 0755), 0);
    enum { N = 80 };
    char paths[N + 1][64];
    sbx_policy *p = probe_policy(B);
    for (int i = 0; i <= N; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/v%02d", dir, i);
        cr_assert_eq(mkdir(paths[i], 0755), 0);
        char f[128];
        snprintf(f, sizeof f, "%s/v%02d/file", dir, i);
        int fd = open(f, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        close(fd);
        if (i < N) /* the last one stays out */
            cr_assert_eq(sbx_policy_add_view(p, paths[i], SBX_VIEW_READONLY), 0);
    }
    const int probe_at[] = { 0, 31, 32, 33, 63, 64, 65, N - 1 };
    for (size_t k = 0; k < SBX_ARRAY_SIZE(probe_at); k++) {
        char f[128];
        snprintf(f, sizeof f, "%s/v%02d/file", dir, probe_at[k]);
        expect_ok(p, "present", f);
    }
    char out[128];
    snprintf(out, sizeof out, "%s/v%02d/file", dir, N);
    expect_ok(p, "absent", out);
    sbx_policy_unref(p);
    cr_assert_eq(sbx_test_rmtree(dir), 0);
}

Test(confine, no_network)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s, 4), 0);
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
    sbx_policy *p = probe_policy(B);
    expect_ok(p, "connect", port);
    sbx_policy_unref(p);
    /* Even with loopback up, the host's listener is in another netns. */
    p = probe_policy(B);
    sbx_policy_set_net(p, SBX_NET_LOOPBACK);
    sbx_policy_set_lockdown_level(p, SBX_LOCKDOWN_INTERACTIVE);
    expect_ok(p, "connect", port);
    sbx_policy_unref(p);
    close(s);
}

/* The pooled network namespace (root broker) is as empty as a cloned one:
 * lo is down and the target cannot bring it up. */
Test(confine, no_interface_up)
{
    cr_assert_geq(sbx_pool_wait_ready(B->pool, NULL), 0);
    sbx_policy *p = probe_policy(B);
    expect_ok(p, "lo_down", NULL);
    expect_ok(p, "lo_down", NULL); /* the second from the pool if the first was not */
    sbx_policy_unref(p);
}

static ino_t ns_ino(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    return st.st_ino;
}

static ino_t target_netns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    return ns_ino(path);
}

/* Whether the target's network namespace is owned by our user namespace
 * (a pooled one) rather than by the target's own. */
static bool netns_owned_by_us(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    int u = ioctl(fd, NS_GET_USERNS);
    close(fd);
    cr_assert_geq(u, 0, "NS_GET_USERNS: %s", strerror(errno));
    struct stat st;
    cr_assert_eq(fstat(u, &st), 0);
    close(u);
    return st.st_ino == ns_ino("/proc/self/ns/user");
}

/* Pooled or not, live targets never share a network namespace with each
 * other or with the broker. */
Test(confine, each_target_has_its_own_netns)
{
    sbx_policy *p = probe_policy(B);
    enum { N = 8 };
    sbx_target_info info[N];
    ino_t ino[N];
    int pooled = 0;
    bool can_pool = false; /* a root broker (CAP_SYS_ADMIN) */
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) { /* odd ones may find the pool still refilling */
            int w = sbx_pool_wait_ready(B->pool, NULL);
            cr_assert_geq(w, 0);
            can_pool |= w == 1;
        }
        cr_assert_eq(spawn_probe(B, p, &info[i], "sleep", "5000", NULL), 0, "%s", info[i].error);
        ino[i] = target_netns(info[i].init_pid);
        cr_assert_eq(target_netns(info[i].pid), ino[i]);
        pooled += netns_owned_by_us(info[i].init_pid);
    }
    ino_t self = ns_ino("/proc/self/ns/net");
    for (int i = 0; i < N; i++) {
        cr_assert_neq(ino[i], self, "target %d shares the broker's netns", i);
        for (int j = 0; j < i; j++)
            cr_assert_neq(ino[i], ino[j], "targets %d and %d share a netns", j, i);
    }
    if (geteuid() == 0)
        cr_assert(can_pool, "a root broker made no network namespace ahead");
    if (can_pool)
        cr_assert_geq(pooled, N / 2, "the pool was not used (%d of %d)", pooled, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(sbx_broker_kill(B, info[i].id, SIGKILL), 0);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    sbx_policy_unref(p);
}

typedef struct thread_spawn {
    sbx_policy *p;
    ino_t before, after, target;
    ino_t after_failed;
    int unshared;
} thread_spawn;

/* A spawning thread in a network namespace of its own (not the broker's
 * main one) is returned to exactly that one, also after a failed spawn. */
static void *spawn_in_own_netns(void *arg)
{
    thread_spawn *t = arg;
    t->unshared = unshare(CLONE_NEWNET);
    struct stat st;
    stat("/proc/thread-self/ns/net", &st);
    t->before = st.st_ino;
    sbx_pool_wait_ready(B->pool, NULL);
    sbx_target_info info;
    if (spawn_probe(B, t->p, &info, "sleep", "3000", NULL) != 0)
        return (void *)1;
    stat("/proc/thread-self/ns/net", &st);
    t->after = st.st_ino;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)info.init_pid);
    stat(path, &st);
    t->target = st.st_ino;
    sbx_broker_kill(B, info.id, SIGKILL);
    sbx_pool_wait_ready(B->pool, NULL);
    char *argv[] = { (char *)"missing", NULL };
    sbx_spawn_options o = { .path = "/bin/definitely-missing", .argv = argv,
                            .stdin_fd = SBX_STDIO_NULL, .stdout_fd = SBX_STDIO_NULL,
                            .stderr_fd = SBX_STDIO_NULL };
    if (sbx_broker_spawn(B, t->p, &o, &info) != SBX_ERROR_SPAWN || info.failed_step != SBX_STEP_EXEC)
        return (void *)2;
    stat("/proc/thread-self/ns/net", &st);
    t->after_failed = st.st_ino;
    return NULL;
}

Test(confine, spawning_thread_returns_to_its_netns)
{
    sbx_policy *p = probe_policy(B);
    ino_t main_before = ns_ino("/proc/thread-self/ns/net");
    cr_assert_geq(sbx_pool_wait_ready(B->pool, NULL), 0);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "sleep", "3000", NULL), 0, "%s", info.error);
    cr_assert_eq(ns_ino("/proc/thread-self/ns/net"), main_before);
    cr_assert_neq(target_netns(info.init_pid), main_before);
    cr_assert_eq(sbx_broker_kill(B, info.id, SIGKILL), 0);

    thread_spawn t = { .p = p };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, spawn_in_own_netns, &t), 0);
    void *ret = NULL;
    pthread_join(th, &ret);
    cr_assert_null(ret, "thread spawn failed: %p", ret);
    cr_assert_eq(t.unshared, 0);
    cr_assert_neq(t.before, main_before);
    cr_assert_eq(t.after, t.before, "the spawning thread left its netns");
    cr_assert_eq(t.after_failed, t.before, "a failed spawn left the thread elsewhere");
    cr_assert_neq(t.target, t.before);
    cr_assert_neq(t.target, main_before);
    /* Other threads were never moved. */
    cr_assert_eq(ns_ino("/proc/thread-self/ns/net"), main_before);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    sbx_policy_unref(p);
}

Test(confine, no_capabilities_no_new_privs)
{
    sbx_policy *p = probe_policy(B);
    expect_ok(p, "caps", NULL);
    sbx_policy_unref(p);
}

static unsigned status_field(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    unsigned v = ~0u;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key)))
            sscanf(line + strlen(key), " %u", &v);
    fclose(f);
    return v;
}

Test(confine, outside_uid_is_not_root)
{
    sbx_policy *p = probe_policy(B);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "sleep", "200", NULL), 0, "%s", info.error);
    cr_assert_eq(status_field(info.pid, "Uid:"), 65534);
    cr_assert_eq(status_field(info.pid, "Gid:"), 65534);
    cr_assert_eq(status_field(info.init_pid, "Uid:"), 65534);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    sbx_policy_unref(p);
    /* A configured inner identity maps to the configured outside one. */
    p = probe_policy(B);
    sbx_policy_set_identity(p, 1000, 1000);
    char *argv[] = { (char *)"probe", (char *)"sleep", (char *)"200", NULL };
    char *env[] = { (char *)"ASAN_OPTIONS=detect_leaks=0", NULL };
    sbx_spawn_options o = { .path = probe_path(), .argv = argv, .envp = env,
                            .outside_uid = 12345, .outside_gid = 12346 };
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    cr_assert_eq(status_field(info.pid, "Uid:"), 12345);
    cr_assert_eq(status_field(info.pid, "Gid:"), 12346);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    sbx_policy_unref(p);
}

Test(confine, inherited_fds_closed_except_shared)
{
    /* The bare broker: the runtime's section fds (3, 4) would be open too. */
    cr_assert_eq(sbx_broker_set_hooks(B, NULL), 0);
    int leak = open("/dev/null", O_RDONLY); /* not CLOEXEC: would leak without close_range */
    int shared = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(leak, 0);
    sbx_policy *p = probe_policy(B);
    cr_assert_eq(sbx_policy_share_fd(p, shared, 9), 0);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "fds", "9", NULL), 0, "%s", info.error);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0);
    close(leak);
    close(shared);
    sbx_policy_unref(p);
}

Test(confine, clean_environment)
{
    setenv("SBX_TEST_SECRET", "x", 1);
    sbx_policy *p = probe_policy(B);
    char *argv[] = { (char *)"probe", (char *)"env", (char *)"SBX_TEST_SECRET", NULL };
    sbx_spawn_options o = { .path = probe_path(), .argv = argv };
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.code, 1, "the variable leaked");
    const char *allow[] = { "SBX_TEST_SECRET", NULL };
    o.env_allow = allow;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.code, 0, "allowlisted variable missing");
    sbx_policy_unref(p);
}

static void on_sighup(int sig)
{
    (void)sig;
}

#define DENIED(name)                              \
    Test(confine, denied_##name)                  \
    {                                             \
        sbx_policy *p = probe_policy(B);          \
        expect_ok(p, "sys", #name);               \
        sbx_policy_unref(p);                      \
    }

DENIED(ptrace)
DENIED(io_uring_setup)
DENIED(unshare_user)
DENIED(mount)
DENIED(bpf)
DENIED(process_vm_readv)
DENIED(perf_event_open)
DENIED(userfaultfd)
DENIED(keyctl)
DENIED(add_key)
DENIED(kexec_load)
DENIED(init_module)
DENIED(pivot_root)
DENIED(chroot)
DENIED(setns)
DENIED(fsopen)
DENIED(clone_newnet)
DENIED(clone3)
DENIED(personality)
DENIED(int80)
DENIED(fork)
DENIED(vfork)
DENIED(clone_process)

/* The broker's ignored and caught signals and its blocked mask are not
 * the target's: init resets every disposition and the mask. */
Test(confine, signal_state_reset)
{
    signal(SIGUSR1, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGRTMIN + 3, SIG_IGN);
    signal(SIGHUP, on_sighup);
    /* glibc's own cancellation signal, ignored as a parent may leave it
     * (signal() cannot touch it: the raw call) */
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        unsigned long long mask;
    } ign = { SIG_IGN, 0, NULL, 0 };
    cr_assert_eq(syscall(SYS_rt_sigaction, 32, &ign, NULL, sizeof ign.mask), 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sbx_policy *p = probe_policy(B);
    expect_ok(p, "signals", NULL);
    sbx_policy_unref(p);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* The lockdown's "no children" rules travel in the denials filter: one
 * seccomp filter per target (each attach costs a JIT and the kernel's
 * action-cache emulation), threads still work. Kill mode keeps its pair
 * (init's baseline, the program's "no children"); children allowed: the
 * denials alone. The refusals themselves are the DENIED cases above. */
Test(confine, lockdown_attaches_one_filter)
{
    sbx_policy *p = probe_policy(B);
    expect_ok(p, "filters", "1");
    expect_ok(p, "sys", "clone3");
    sbx_policy_unref(p);
    p = probe_policy(B);
    sbx_policy_set_mitigations(p, SBX_MITIGATION_KILL_ON_DENIED_SYSCALL);
    expect_ok(p, "filters", "2");
    expect_ok(p, "sys", "fork");
    sbx_policy_unref(p);
    p = probe_policy(B);
    sbx_policy_set_mitigations(p, SBX_MITIGATION_ALLOW_CHILDREN);
    expect_ok(p, "filters", "1");
    sbx_policy_unref(p);
}

/* A thread that asks for a new namespace is refused and reported: the
 * "no children" rules in front of the denials let it through to them. */
Test(confine, thread_clone_with_namespace_reported)
{
    sbx_policy *p = probe_policy(B);
    sbx_event e = run_probe(B, &L, p, "sys", "clone_thread_newns");
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0);
    cr_assert_eq(log_count(&L, SBX_EVENT_DENIED, e.target_id), 1);
    sbx_policy_unref(p);
}

Test(confine, denied_tiocsti_on_inherited_tty)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(m, 0);
    cr_assert_eq(grantpt(m), 0);
    cr_assert_eq(unlockpt(m), 0);
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    cr_assert_geq(s, 0);
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_mitigations(p, SBX_MITIGATION_ALLOW_TTY);
    char *argv[] = { (char *)"probe", (char *)"sys", (char *)"tiocsti", NULL };
    char *env[] = { (char *)"ASAN_OPTIONS=detect_leaks=0", NULL };
    sbx_spawn_options o = { .path = probe_path(), .argv = argv, .envp = env, .stdin_fd = s,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2 };
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0);
    sbx_policy_unref(p);
}

Test(confine, kill_mode_reports_violation)
{
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_mitigations(p, SBX_MITIGATION_KILL_ON_DENIED_SYSCALL);
    sbx_event e = run_probe(B, &L, p, "sys", "bpf");
    cr_assert_eq(e.type, SBX_EVENT_KILLED);
    cr_assert_eq(e.signal, SIGSYS);
    cr_assert_eq(log_count(&L, SBX_EVENT_VIOLATION, e.target_id), 1);
    sbx_policy_unref(p);
}

Test(confine, target_cannot_reach_its_init)
{
    sbx_policy *p = probe_policy(B);
    sbx_event e = run_probe(B, &L, p, "attack_init", NULL);
    /* Signals to pid 1 are dropped, its memory and fds are closed to the
     * program, and init lives on to report the exit. */
    cr_assert_eq(e.type, SBX_EVENT_EXITED, "type %d signal %d", e.type, e.signal);
    cr_assert_eq(e.code, 0, "probe step %d reached the init", e.code);
    sbx_policy_unref(p);
}
