/* Broker spawn: API order, exit codes and signals, step errors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

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
    B = NULL;
}

TestSuite(spawn, .init = setup, .fini = teardown, .timeout = 90);

static sbx_event run_plain(const char *path, sbx_target_info *info)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    char *argv[] = { (char *)path, NULL };
    sbx_spawn_options o = { .path = path, .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2 };
    int r = sbx_broker_spawn(B, p, &o, info);
    sbx_policy_unref(p);
    cr_assert_eq(r, 0, "spawn %s: %d %s", path, r, info->error);
    cr_assert_gt(info->id, 0);
    cr_assert_gt(info->pid, 0);
    sbx_event e = log_wait_end(&L, info->id, 5000);
    cr_assert_neq(e.type, 0);
    return e;
}

Test(spawn, true_exits_zero)
{
    sbx_target_info info;
    sbx_event e = run_plain("/bin/true", &info);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 0);
    cr_assert_eq(e.pid, info.pid);
    cr_assert_eq(log_count(&L, SBX_EVENT_STARTED, info.id), 1);
}

Test(spawn, false_exits_one)
{
    sbx_target_info info;
    sbx_event e = run_plain("/bin/false", &info);
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 1);
}

Test(spawn, exit_code_exact)
{
    sbx_policy *p = probe_policy(B);
    sbx_event e = run_probe(B, &L, p, "exit", "42");
    cr_assert_eq(e.type, SBX_EVENT_EXITED);
    cr_assert_eq(e.code, 42);
    sbx_policy_unref(p);
}

Test(spawn, killed_by_signal_reported)
{
    sbx_policy *p = probe_policy(B);
    sbx_event e = run_probe(B, &L, p, "kill", "11");
    cr_assert_eq(e.type, SBX_EVENT_KILLED);
    cr_assert_eq(e.signal, SIGSEGV);
    e = run_probe(B, &L, p, "kill", "15");
    cr_assert_eq(e.type, SBX_EVENT_KILLED);
    cr_assert_eq(e.signal, SIGTERM);
    sbx_policy_unref(p);
}

Test(spawn, missing_program_names_exec)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    char *argv[] = { (char *)"x", NULL };
    sbx_spawn_options o = { .path = "/bin/definitely-missing", .argv = argv };
    sbx_target_info info;
    int r = sbx_broker_spawn(B, p, &o, &info);
    cr_assert_eq(r, SBX_ERROR_SPAWN);
    cr_assert_eq(info.failed_step, SBX_STEP_EXEC);
    cr_assert_eq(info.failed_errno, ENOENT);
    cr_assert(strstr(info.error, "exec"), "%s", info.error);
    cr_assert_eq(sbx_broker_wait_all(B, 1000), 0);
    cr_assert_eq(L.n, 0, "no event for a failed spawn");
    sbx_policy_unref(p);
}

Test(spawn, non_executable_names_exec)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    char *argv[] = { (char *)"x", NULL };
    sbx_spawn_options o = { .path = "/etc/ld.so.cache", .argv = argv };
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), SBX_ERROR_SPAWN);
    cr_assert_eq(info.failed_step, SBX_STEP_EXEC);
    cr_assert_eq(info.failed_errno, EACCES);
    cr_assert_eq(L.n, 0);
    sbx_policy_unref(p);
}

Test(spawn, bad_options)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    char *argv[] = { (char *)"x", NULL };
    sbx_target_info info;
    sbx_spawn_options o = { .path = "relative", .argv = argv };
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), -EINVAL);
    cr_assert_eq(info.failed_step, SBX_STEP_OPTIONS);
    sbx_spawn_options o2 = { .path = "/bin/true", .argv = NULL };
    cr_assert_eq(sbx_broker_spawn(B, p, &o2, &info), -EINVAL);
    sbx_spawn_options o3 = { .path = "/bin/true", .argv = argv, .stdout_fd = 999 };
    cr_assert_lt(sbx_broker_spawn(B, p, &o3, &info), 0);
    cr_assert_eq(info.failed_step, SBX_STEP_OPTIONS);
    sbx_spawn_options o4 = { .path = "/bin/true", .argv = argv, .cwd = "rel" };
    cr_assert_eq(sbx_broker_spawn(B, p, &o4, &info), -EINVAL);
    cr_assert_eq(sbx_broker_spawn(B, NULL, &o4, &info), -EINVAL);
    cr_assert_eq(sbx_broker_spawn(B, p, NULL, &info), -EINVAL);
    cr_assert_eq(sbx_broker_spawn(B, p, &o, NULL), -EINVAL);
    cr_assert_eq(L.n, 0);
    sbx_policy_unref(p);
}

Test(spawn, missing_view_path_names_mount)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    cr_assert_eq(sbx_policy_add_view(p, "/nonexistent/dir", 0), 0);
    char *argv[] = { (char *)"true", NULL };
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv };
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), SBX_ERROR_SPAWN);
    cr_assert_eq(info.failed_step, SBX_STEP_MOUNT);
    cr_assert_eq(info.failed_errno, ENOENT);
    sbx_policy_unref(p);
}

Test(spawn, bad_cwd_names_cwd)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    char *argv[] = { (char *)"true", NULL };
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv, .cwd = "/nope" };
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), SBX_ERROR_SPAWN);
    cr_assert_eq(info.failed_step, SBX_STEP_CWD, "%s", info.error);
    sbx_policy_unref(p);
}

Test(spawn, wrong_order_is_an_error)
{
    sbx_target_info info;
    char *argv[] = { (char *)"true", NULL };
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv };
    sbx_policy *p = sbx_policy_new();
    cr_assert_eq(sbx_broker_spawn(NULL, p, &o, &info), SBX_ERROR_WRONG_STATE);
    cr_assert_eq(sbx_broker_new(&B), SBX_ERROR_ALREADY_INIT);
    cr_assert_eq(sbx_broker_new(NULL), -EINVAL);
    cr_assert_null(sbx_broker_create_policy(NULL));
    cr_assert_eq(sbx_broker_wait_all(NULL, 0), -EINVAL);
    cr_assert_not(sbx_broker_is_active_target(NULL, 1));
    /* A policy used for a spawn is frozen. */
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    cr_assert_eq(sbx_policy_set_net(p, SBX_NET_LOOPBACK), SBX_ERROR_FROZEN);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    sbx_policy_unref(p);
}

Test(spawn, wait_all_and_is_active)
{
    sbx_policy *p = probe_policy(B);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "sleep", "300", NULL), 0, "%s", info.error);
    cr_assert(sbx_broker_is_active_target(B, info.pid));
    cr_assert(sbx_broker_is_active_target(B, info.init_pid));
    cr_assert_not(sbx_broker_is_active_target(B, getpid()));
    cr_assert_eq(sbx_broker_wait_all(B, 10), SBX_ERROR_TIMEOUT);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    cr_assert_not(sbx_broker_is_active_target(B, info.pid));
    cr_assert_eq(sbx_broker_active_count(B), 0);
    sbx_policy_unref(p);
}

Test(spawn, no_zombie_fd_or_cgroup_after_many)
{
    /* The pool (pre-made network namespaces and cgroup leaves) is in use
     * from the first spawns on: its fds must not grow either. */
    cr_assert_geq(sbx_pool_wait_ready(B->pool, NULL), 0);
    /* Less the per-broker cgroup directories' locks (kept for good). */
    int fds0 = count_fds() - (int)sbx_cgroup_held_dirs();
    sbx_policy *p = sbx_broker_create_policy(B);
    sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64 << 20);
    char *argv[] = { (char *)"true", NULL };
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = SBX_STDIO_NULL };
    for (int i = 0; i < 200; i++) {
        sbx_target_info info;
        cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%d: %s", i, info.error);
        if (i % 50 == 0) {
            /* failing spawns in the loop too */
            sbx_spawn_options bad = o;
            bad.path = "/bin/missing";
            cr_assert_eq(sbx_broker_spawn(B, p, &bad, &info), SBX_ERROR_SPAWN);
        }
    }
    cr_assert_eq(sbx_broker_wait_all(B, 20000), 0);
    cr_assert_eq(count_zombies(), 0);
    /* Quiescent once the pool thread is idle too: it removes the ended
     * targets' cgroups and drops their mount namespaces. */
    cr_assert_eq(sbx_broker_wait_quiescent(B), 0);
    int fds1 = count_fds() - (int)sbx_cgroup_held_dirs();
    cr_assert_eq(fds1, fds0, "fds leaked: %d vs %d", fds1, fds0);
    char own[256] = "", line[512];
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%*d:memory:%255s", own) == 1)
            break;
    if (f)
        fclose(f);
    char dir[600];
    snprintf(dir, sizeof dir, "/sys/fs/cgroup/memory%s/sbx/%d", strcmp(own, "/") ? own : "",
             getpid());
    /* Only the pre-made leaf ("0-<seq>") is left while the broker lives. */
    int ended_left = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));)
        ended_left += de->d_type == DT_DIR && de->d_name[0] != '.' && strncmp(de->d_name, "0-", 2) != 0;
    if (d)
        closedir(d);
    cr_assert_eq(ended_left, 0, "%d ended targets' cgroups left under %s", ended_left, dir);
    /* The rest (the pre-made leaf, the per-broker dir) goes with free. */
    sbx_broker_free(B);
    B = NULL;
    cr_assert_leq(count_fds(), fds0, "fds leaked after free");
    /* Our per-broker memory cgroup dir is gone (under our own cgroup). */
    struct stat st;
    cr_assert(stat(dir, &st) < 0, "%s left behind", dir);
    /* (mounts: ours only ever exist in the targets' own namespaces) */
    sbx_policy_unref(p);
}

/* The broker's fds that are mount namespaces: how many, whether all are
 * close-on-exec, and whether one is `ino`. */
static int mntns_fds(ino_t ino, bool *all_cloexec, bool *has_ino)
{
    *all_cloexec = true;
    *has_ino = false;
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *de; d && (de = readdir(d));) {
        char path[300], link[128];
        snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k <= 0)
            continue;
        link[k] = '\0';
        unsigned long long i;
        if (sscanf(link, "mnt:[%llu]", &i) != 1)
            continue;
        n++;
        *has_ino |= (ino_t)i == ino;
        *all_cloexec &= (fcntl(atoi(de->d_name), F_GETFD) & FD_CLOEXEC) != 0;
    }
    if (d)
        closedir(d);
    return n;
}

/* The broker holds a live target's mount namespace (so init's exit does
 * not unmount the view before its end can be seen), close-on-exec (an
 * application's fork+exec never inherits it), and drops it once the end
 * is reported: none is left at the quiescent point. */
Test(spawn, target_mount_namespace_held_until_its_end)
{
    sbx_policy *p = probe_policy(B);
    sbx_target_info info;
    cr_assert_eq(spawn_probe(B, p, &info, "sleep", "30", NULL), 0, "%s", info.error);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)info.init_pid);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    struct stat self;
    cr_assert_eq(stat("/proc/self/ns/mnt", &self), 0);
    cr_assert_neq(st.st_ino, self.st_ino, "the target shares the broker's mount namespace");
    bool cloexec, has;
    int n = mntns_fds(st.st_ino, &cloexec, &has);
    cr_expect_eq(n, 1, "mount namespace fds while the target lives: %d", n);
    cr_expect(has, "the target's own mount namespace is not the one held");
    cr_expect(cloexec, "a held mount namespace is inheritable across exec");
    cr_assert_eq(sbx_broker_kill(B, info.id, SIGKILL), 0);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    cr_assert_eq(sbx_broker_wait_quiescent(B), 0);
    cr_expect_eq(mntns_fds(st.st_ino, &cloexec, &has), 0, "mount namespace fds left after its end");
    sbx_policy_unref(p);
}

static void *spawn_many(void *arg)
{
    sbx_policy *p = arg;
    char *argv[] = { (char *)"true", NULL };
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = SBX_STDIO_NULL };
    for (int i = 0; i < 20; i++) {
        sbx_target_info info;
        if (sbx_broker_spawn(B, p, &o, &info) != 0)
            return (void *)1;
    }
    return NULL;
}

Test(spawn, concurrent_spawns_from_threads)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, spawn_many, p);
    void *ret = NULL;
    int failed = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], &ret);
        failed += ret != NULL;
    }
    cr_assert_eq(failed, 0);
    cr_assert_eq(sbx_broker_wait_all(B, 20000), 0);
    pthread_mutex_lock(&L.lock);
    int ends = L.exit_zero, starts = L.by_type[SBX_EVENT_STARTED];
    pthread_mutex_unlock(&L.lock);
    cr_assert_eq(starts, 60);
    cr_assert_eq(ends, 60, "exits seen: %d (exited %d killed %d)", ends, L.by_type[SBX_EVENT_EXITED], L.by_type[SBX_EVENT_KILLED]);
    cr_assert_eq(count_zombies(), 0);
    sbx_policy_unref(p);
}
