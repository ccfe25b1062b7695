/* The cgroup v2 path, for real: the unified hierarchy's base is pointed
 * (sbx_cgroup_set_roots_for_test) at a fresh directory of a cgroup2 mount
 * (/sys/fs/cgroup/unified on a hybrid machine, /sys/fs/cgroup on a pure
 * one). Leaf made and joined, populated while the target lives, killed and
 * removed after; limits it cannot take go to v1 or come back as warnings. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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
static char g_root[256];

static bool is_cgroup2(const char *path)
{
    struct statfs s;
    return statfs(path, &s) == 0 && (long)s.f_type == CGROUP2_SUPER_MAGIC;
}

/* A cgroup2 mount we may make directories in, or NULL. */
static const char *cgroup2_mount(void)
{
    static const char *const cands[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (is_cgroup2(cands[i]) && access(cands[i], W_OK) == 0)
            return cands[i];
    return NULL;
}

static void make_root(bool v1)
{
    const char *m = cgroup2_mount();
    if (!m)
        cr_skip_test("no writable cgroup2 mount (/sys/fs/cgroup/unified or /sys/fs/cgroup)");
    snprintf(g_root, sizeof g_root, "%s/sbx-test-%d", m, (int)getpid());
    if (mkdir(g_root, 0755) < 0 && errno != EEXIST)
        cr_skip_test("cannot make a cgroup under %s: %s", m, strerror(errno));
    sbx_cgroup_set_roots_for_test(g_root, v1);
    log_init(&L);
    cr_assert_eq(sbx_broker_new(&B), 0);
    sbx_broker_set_event_callback(B, log_event, &L);
}

static void teardown(void)
{
    sbx_broker_free(B);
    B = NULL;
    sbx_cgroup_set_roots_for_test(NULL, true);
    if (!g_root[0])
        return;
    char p[320];
    snprintf(p, sizeof p, "%s/sbx", g_root);
    (void)rmdir(p);
    (void)rmdir(g_root);
}

TestSuite(cgroup2, .fini = teardown);

static bool contains_pid(const char *file, pid_t pid)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return false;
    int v;
    bool found = false;
    while (fscanf(f, "%d", &v) == 1)
        found |= v == pid;
    fclose(f);
    return found;
}

static bool read_has(const char *file, const char *what)
{
    char buf[512] = "";
    int fd = open(file, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strstr(buf, what) != NULL;
}

/* The only leaf of target `id` in `dir` (our broker's sbx/<pid>), into
 * out. Leaves are `<id>-<seq>`; the broker may hold a pre-made `0-<seq>`
 * one for the next spawn beside it. */
static bool only_leaf(const char *dir, uint64_t id, char *out, size_t size)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "find %s -mindepth 1 -maxdepth 1 -type d -name '%llu-*'", dir,
             (unsigned long long)id);
    FILE *f = popen(cmd, "r");
    if (!f)
        return false;
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(out, size, "%s", line);
        n++;
    }
    pclose(f);
    return n == 1;
}

static int count_dirs(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "find %s -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

/* /bin/sleep under the default view, with memory and process limits. */
static int spawn_sleep(sbx_policy *p, sbx_target_info *info)
{
    char *argv[] = { (char *)"sleep", (char *)"30", NULL };
    sbx_spawn_options o = { .path = "/bin/sleep", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2 };
    return sbx_broker_spawn(B, p, &o, info);
}

static void leaf_lifecycle(bool v1)
{
    make_root(v1);
    sbx_policy *p = sbx_broker_create_policy(B);
    cr_assert_eq(sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 256ull << 20), 0);
    cr_assert_eq(sbx_policy_set_limit(p, SBX_LIMIT_PROCESSES, 16), 0);
    sbx_target_info info;
    cr_assert_eq(spawn_sleep(p, &info), 0, "%s", info.error);
    char bdir[320], leaf[600], f[700];
    snprintf(bdir, sizeof bdir, "%s/sbx/%d", g_root, (int)getpid());
    cr_assert(only_leaf(bdir, info.id, leaf, sizeof leaf), "no single leaf of target %llu under %s",
              (unsigned long long)info.id, bdir);
    /* Joined: init (the pid-1 of the target's namespace) and the program. */
    snprintf(f, sizeof f, "%s/cgroup.procs", leaf);
    cr_expect(contains_pid(f, info.init_pid), "init %d not in %s", (int)info.init_pid, f);
    cr_expect(contains_pid(f, info.pid), "program %d not in %s", (int)info.pid, f);
    snprintf(f, sizeof f, "%s/cgroup.events", leaf);
    cr_expect(read_has(f, "populated 1"), "%s not populated", f);
    /* The leaf has no controller here: the limits went to v1, or are
     * warnings naming their rlimit fallback. Never silently dropped. */
    char ctl[700];
    snprintf(ctl, sizeof ctl, "%s/cgroup.controllers", leaf);
    bool v2_mem = read_has(ctl, "memory"), v2_pids = read_has(ctl, "pids");
    bool v1_mem = v1 && access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) == 0;
    bool v1_pids = v1 && access("/sys/fs/cgroup/pids/cgroup.procs", W_OK) == 0;
    bool mem_warn = strstr(info.warnings, "memory: ") != NULL;
    bool pids_warn = strstr(info.warnings, "processes: ") != NULL;
    cr_log_info("v1 %d: leaf controllers mem %d pids %d; warnings: %s", v1, v2_mem, v2_pids,
                info.warnings);
    cr_expect_eq(mem_warn, !v2_mem && !v1_mem, "warnings: %s", info.warnings);
    cr_expect_eq(pids_warn, !v2_pids && !v1_pids, "warnings: %s", info.warnings);
    if (!v2_mem && !v2_pids)
        cr_expect_eq(info.n_warnings, (unsigned)mem_warn + pids_warn, "%s", info.warnings);
    cr_assert_eq(sbx_broker_kill(B, info.id, SIGKILL), 0);
    sbx_event e = log_wait_end(&L, info.id, 5000);
    cr_assert_eq(e.type, SBX_EVENT_KILLED);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    /* Removed right after the end event (the events thread). */
    unsigned long long t0 = sbx_now_ns();
    while (access(leaf, F_OK) == 0 && sbx_now_ns() - t0 < 3000000000ull) {
        struct timespec ts = { 0, 5000000 };
        nanosleep(&ts, NULL);
    }
    cr_expect_neq(access(leaf, F_OK), 0, "leaf %s left behind", leaf);
    sbx_policy_unref(p);
    sbx_broker_free(B);
    B = NULL;
    cr_expect_neq(access(bdir, F_OK), 0, "per-broker dir %s left behind", bdir);
}

Test(cgroup2, leaf_joined_and_removed_v2_only) { leaf_lifecycle(false); }

Test(cgroup2, leaf_joined_and_removed_with_v1_limits) { leaf_lifecycle(true); }

/* Many targets at once: one leaf each, all gone afterwards. */
Test(cgroup2, many_targets_leave_nothing)
{
    make_root(false);
    sbx_policy *p = sbx_broker_create_policy(B);
    char *argv[] = { (char *)"true", NULL };
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = SBX_STDIO_NULL };
    for (int i = 0; i < 30; i++) {
        sbx_target_info info;
        cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%d: %s", i, info.error);
    }
    cr_assert_eq(sbx_broker_wait_all(B, 20000), 0);
    char bdir[320];
    snprintf(bdir, sizeof bdir, "%s/sbx/%d", g_root, (int)getpid());
    unsigned long long t0 = sbx_now_ns();
    while (count_dirs(bdir) > 0 && sbx_now_ns() - t0 < 3000000000ull) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    cr_expect_eq(count_dirs(bdir), 0, "leaves left under %s", bdir);
    sbx_policy_unref(p);
}

/* Teardown kills what is still inside (cgroup.kill) and waits for the
 * kernel's "populated 0" before removing the leaf: a process put in a
 * leaf directly, outside any pid namespace, is killed by destroy. */
Test(cgroup2, destroy_kills_what_is_left)
{
    make_root(false);
    sbx_cgroup cg;
    char warn[256] = "";
    unsigned nw = 0;
    sbx_cgroup_create(&cg, 999, UINT64_MAX, UINT64_MAX, warn, sizeof warn, &nw);
    cr_assert(cg.v2, "no v2 leaf under %s", g_root);
    cr_assert(cg.unified[0]);
    cr_expect_eq(nw, 0u, "%s", warn);
    cr_expect_eq(cg.memory[0], '\0', "v1 used although disabled");
    int pp[2];
    cr_assert_eq(pipe(pp), 0);
    pid_t c = fork();
    cr_assert_geq(c, 0);
    if (c == 0) {
        /* No allocation here (the parent has threads): just wait. */
        close(pp[1]);
        char b;
        (void)!read(pp[0], &b, 1);
        _exit(0);
    }
    close(pp[0]);
    cr_assert_eq(sbx_cgroup_attach(&cg, c), 0);
    char f[600];
    snprintf(f, sizeof f, "%s/cgroup.procs", cg.unified);
    cr_expect(contains_pid(f, c));
    char leaf[SBX_CGROUP_PATH_MAX];
    snprintf(leaf, sizeof leaf, "%s", cg.unified);
    sbx_cgroup_destroy(&cg);
    int st;
    cr_assert_eq(waitpid(c, &st, 0), c);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
    cr_expect_neq(access(leaf, F_OK), 0, "leaf left behind");
    cr_expect_eq(cg.unified[0], '\0');
    close(pp[1]);
    sbx_broker_free(B);
    B = NULL;
}

/* v1 fallback in a hybrid: the memory limit really holds (the leaf itself
 * has no memory controller here). */
Test(cgroup2, hybrid_memory_limit_holds)
{
    if (access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) != 0)
        cr_skip_test("no writable v1 memory cgroup");
    make_root(true);
    sbx_policy *p = probe_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "hog", "512", NULL), 0, "%s", info.error);
    cr_expect_eq(info.n_warnings, 0u, "%s", info.warnings);
    sbx_event e = log_wait_end(&L, info.id, 15000);
    cr_assert_eq(e.type, SBX_EVENT_KILLED, "type %d code %d", e.type, e.code);
    cr_assert(e.memory_limit, "not reported as the memory limit");
    sbx_policy_unref(p);
}
