/* The seams for the IPC section and the interception filter, and the
 * target services that consume them. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <sbx/ipc.h>

#include "broker/broker_internal.h"
#include "broker/runtime.h"
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

TestSuite(seams, .init = setup, .fini = teardown, .timeout = 20);

static int exits_seen;

static int make_section(void *ud, uint64_t id, pid_t pid, const sbx_policy *pol,
                        sbx_target_fds *fds)
{
    (void)ud;
    (void)pol;
    cr_assert_gt(id, 0);
    cr_assert_gt(pid, 0);
    /* A real IPC section: sbx_target_init checks its header. */
    sbx_ipc_section *sec = NULL;
    cr_assert_eq(sbx_ipc_section_new(NULL, &sec), 0);
    int fd = fcntl(sbx_ipc_section_fd(sec), F_DUPFD_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    sbx_ipc_section_free(sec);
    fds->section_fd = fd;
    return 0;
}

static void count_exit(void *ud, uint64_t id)
{
    (void)ud;
    (void)id;
    __atomic_add_fetch(&exits_seen, 1, __ATOMIC_SEQ_CST);
}

Test(seams, section_reaches_target_services)
{
    sbx_broker_hooks h = { .setup_section = make_section, .on_target_exit = count_exit };
    cr_assert_eq(sbx_broker_set_hooks(B, &h), 0);
    sbx_policy *p = probe_policy(B);
    sbx_event e = run_probe(B, &L, p, "target", NULL);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0, "target services check %d", e.code);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    /* Released on the pool thread, after the end event. */
    cr_assert_eq(sbx_broker_wait_quiescent(B), 0);
    cr_assert_eq(__atomic_load_n(&exits_seen, __ATOMIC_SEQ_CST), 1);
    sbx_broker_free(B); /* exactly once, even counting free */
    B = NULL;
    cr_assert_eq(__atomic_load_n(&exits_seen, __ATOMIC_SEQ_CST), 1);
    sbx_policy_unref(p);
}

Test(seams, target_services_without_section)
{
    cr_assert_eq(sbx_broker_set_hooks(B, NULL), 0);
    sbx_policy *p = probe_policy(B);
    sbx_event e = run_probe(B, &L, p, "notarget", NULL);
    cr_assert_eq(e.code, 0);
    sbx_policy_unref(p);
}

/* The hook runs while init builds the target (GO comes first, the
 * hook's fds after it): by the time a slow hook returns, init has set
 * no_new_privs, and it has not forked the program — it waits for the fds. */
static int slow_hook_saw_setup, slow_hook_saw_program;

static int slow_section(void *ud, uint64_t id, pid_t pid, const sbx_policy *pol,
                        sbx_target_fds *fds)
{
    char path[96], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    for (int i = 0; i < 200 && !slow_hook_saw_setup; i++) {
        usleep(5000);
        FILE *f = fopen(path, "r");
        if (!f)
            break;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        slow_hook_saw_setup = strstr(buf, "NoNewPrivs:\t1") != NULL;
    }
    usleep(50000); /* init would fork now if it did not wait for us */
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        slow_hook_saw_program = fgetc(f) != EOF;
        fclose(f);
    }
    return make_section(ud, id, pid, pol, fds);
}

Test(seams, section_hook_overlaps_init_setup)
{
    sbx_broker_hooks h = { .setup_section = slow_section, .on_target_exit = count_exit };
    cr_assert_eq(sbx_broker_set_hooks(B, &h), 0);
    sbx_policy *p = probe_policy(B);
    sbx_event e = run_probe(B, &L, p, "target", NULL);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0, "target services check %d", e.code);
    cr_assert(slow_hook_saw_setup, "init did not proceed while the hook ran");
    cr_assert_not(slow_hook_saw_program, "the program was forked before its section fds");
    sbx_policy_unref(p);
}

static int failing_section(void *ud, uint64_t id, pid_t pid, const sbx_policy *pol,
                           sbx_target_fds *fds)
{
    (void)ud;
    (void)id;
    (void)pid;
    (void)pol;
    (void)fds;
    return -ENOSPC;
}

Test(seams, section_failure_names_step)
{
    sbx_broker_hooks h = { .setup_section = failing_section, .on_target_exit = count_exit };
    sbx_broker_set_hooks(B, &h);
    sbx_policy *p = probe_policy(B);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "exit", "0", NULL), SBX_ERROR_SPAWN);
    cr_assert_eq(info.failed_step, SBX_STEP_SECTION);
    cr_assert_eq(info.failed_errno, ENOSPC);
    cr_assert_eq(__atomic_load_n(&exits_seen, __ATOMIC_SEQ_CST), 1, "section not released");
    cr_assert_eq(L.n, 0);
    sbx_policy_unref(p);
}

/* Child side of the interception seam: a one-syscall notify filter. */
static int install_filter(void *ud, const sbx_policy *pol, bool landlock)
{
    (void)ud;
    (void)pol;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = 4, .filter = f };
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    return fd < 0 ? -errno : (int)fd;
}

static int g_listener = -1;

static void got_listener(void *ud, uint64_t id, pid_t pid, int fd, bool landlock)
{
    (void)ud;
    (void)id;
    (void)pid;
    (void)landlock;
    g_listener = fd;
}

static void *answer(void *arg)
{
    (void)arg;
    struct seccomp_notif req;
    memset(&req, 0, sizeof req);
    if (ioctl(g_listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
        return NULL;
    struct seccomp_notif_resp resp = { .id = req.id, .error = req.data.nr == SYS_getppid ? -42 : 0 };
    ioctl(g_listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    return NULL;
}

Test(seams, interception_listener_reaches_broker)
{
    sbx_broker_hooks h = { .child_install_filter = install_filter, .on_listener = got_listener };
    sbx_broker_set_hooks(B, &h);
    sbx_policy *p = probe_policy(B);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "getpid", NULL), 0, "%s", info.error);
    cr_assert_geq(g_listener, 0, "no listener handed over");
    pthread_t t;
    pthread_create(&t, NULL, answer, NULL);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    pthread_join(t, NULL);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0, "the filter's answer did not reach the program");
    close(g_listener);
    sbx_policy_unref(p);
}

static int failing_filter(void *ud, const sbx_policy *pol, bool landlock)
{
    (void)ud;
    (void)pol;
    return -EBUSY;
}

Test(seams, interception_failure_names_step)
{
    sbx_broker_hooks h = { .child_install_filter = failing_filter };
    sbx_broker_set_hooks(B, &h);
    sbx_policy *p = probe_policy(B);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "exit", "0", NULL), SBX_ERROR_SPAWN);
    cr_assert_eq(info.failed_step, SBX_STEP_INTERCEPTION);
    cr_assert_eq(info.failed_errno, EBUSY);
    sbx_policy_unref(p);
}

Test(seams, caller_extra_fds_at_fixed_numbers)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    cr_assert_eq(sbx_broker_set_hooks(B, NULL), 0); /* only the caller's fds */
    sbx_target_fds extra = { .section_fd = -1, .broker_fd = -1, .channel_fd = sp[1] };
    char *argv[] = { (char *)"probe", (char *)"fds", (char *)"5", NULL };
    sbx_spawn_options o = { .path = probe_path(), .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2, .extra_fds = &extra };
    sbx_policy *p = probe_policy(B);
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.code, 0);
    /* A shared fd colliding with a provided one is refused. */
    sbx_policy *q = probe_policy(B);
    sbx_policy_share_fd(q, sp[0], 5);
    cr_assert_eq(sbx_broker_spawn(B, q, &o, &info), -EINVAL);
    cr_assert_eq(info.failed_step, SBX_STEP_OPTIONS);
    close(sp[0]);
    close(sp[1]);
    sbx_policy_unref(q);
    sbx_policy_unref(p);
}

/* A policy spawned again after its last target ended is not compiled
 * again; past the cache's idle entries the least recently used goes. */
Test(seams, compiled_policy_kept_between_spawns)
{
    sbx_policy *p = probe_policy(B);
    uint64_t c0 = sbx_runtime_compiles(B->runtime);
    for (int i = 0; i < 3; i++) {
        sbx_event e = run_probe(B, &L, p, "exit", "0");
        cr_assert_eq(e.type, SBX_EVENT_EXITED);
        cr_assert_eq(sbx_broker_wait_quiescent(B), 0); /* its compiled policy is idle */
    }
    cr_assert_eq(sbx_runtime_compiles(B->runtime), c0 + 1);
    /* Five other policies push p out (four idle entries are kept). */
    sbx_policy *q[5];
    for (int i = 0; i < 5; i++) {
        q[i] = probe_policy(B);
        sbx_event e = run_probe(B, &L, q[i], "exit", "0");
        cr_assert_eq(e.type, SBX_EVENT_EXITED);
        cr_assert_eq(sbx_broker_wait_quiescent(B), 0);
    }
    cr_assert_eq(sbx_runtime_compiles(B->runtime), c0 + 6);
    sbx_event e = run_probe(B, &L, p, "exit", "0");
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    cr_assert_eq(sbx_runtime_compiles(B->runtime), c0 + 7);
    for (int i = 0; i < 5; i++)
        sbx_policy_unref(q[i]);
    sbx_policy_unref(p);
}

/* A spawn that fails while it holds the pool's refill (here the section
 * hook, after clone) releases it: the pool makes the next network
 * namespace again, and the next spawn gets it. */
Test(seams, failed_spawn_resumes_pool_refill)
{
    if (geteuid() != 0)
        cr_skip_test("the pool makes network namespaces for a root broker only");
    sbx_broker_hooks h = { .setup_section = failing_section, .on_target_exit = count_exit };
    sbx_broker_set_hooks(B, &h);
    sbx_policy *p = probe_policy(B);
    cr_assert_eq(sbx_pool_wait_ready(B->pool, NULL), 1);
    sbx_target_info info;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(spawn_probe(B, p, &info, "exit", "0", NULL), SBX_ERROR_SPAWN);
        cr_assert_eq(info.failed_step, SBX_STEP_SECTION);
        cr_assert_eq(sbx_pool_wait_ready(B->pool, NULL), 1, "refill still held after a failure");
    }
    sbx_broker_set_hooks(B, &(sbx_broker_hooks){ 0 });
    cr_assert_eq(spawn_probe(B, p, &info, "exit", "0", NULL), 0, "%s", info.error);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    cr_assert_eq(sbx_pool_wait_ready(B->pool, NULL), 1);
    sbx_policy_unref(p);
}
