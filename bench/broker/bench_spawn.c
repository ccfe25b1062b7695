/* Spawn-to-exit of /bin/true: sbx under the default lockdown (default
 * policy: all namespaces, view, Landlock, seccomp, cgroup limits) against
 * plain fork+exec and bubblewrap, interleaved in the same run. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sbx/broker.h>

#include "bench.h"

#define RUNS 150

extern char **environ;

/* A mutable copy of a constant argv (execve wants char *const *). */
static char **mkargv(const char *const *src)
{
    size_t n = 0;
    while (src[n])
        n++;
    char **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = strdup(src[i]);
    return v;
}

static uint64_t run_fork_exec(char *const *argv)
{
    uint64_t t0 = bench_now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        execve(argv[0], argv, environ);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    uint64_t t = bench_now_ns() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench: %s failed\n", argv[0]);
        exit(1);
    }
    return t;
}

static uint64_t run_sbx(sbx_broker *b, sbx_policy *p)
{
    static char **argv;
    if (!argv)
        argv = mkargv((const char *const[]){ "true", NULL });
    sbx_spawn_options o = { .path = "/bin/true", .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = SBX_STDIO_NULL, .stderr_fd = SBX_STDIO_NULL };
    sbx_target_info info;
    uint64_t t0 = bench_now_ns();
    if (sbx_broker_spawn(b, p, &o, &info) != 0) {
        fprintf(stderr, "bench: sbx spawn: %s\n", info.error);
        exit(1);
    }
    sbx_broker_wait_all(b, -1);
    return bench_now_ns() - t0;
}

int main(void)
{
    sbx_broker *b = NULL;
    if (sbx_broker_new(&b) != 0)
        return 1;
    sbx_policy *p = sbx_broker_create_policy(b);
    /* The same lockdown without job limits: what the cgroups cost. */
    sbx_policy *pn = sbx_broker_create_policy(b);
    sbx_policy_set_job_level(pn, SBX_JOB_NONE);
    /* Kill mode: init loads the baseline, no listener; against p (EPERM
     * mode, denials reported through a listener): what reporting costs. */
    sbx_policy *pk = sbx_broker_create_policy(b);
    sbx_policy_set_mitigations(pk, SBX_MITIGATION_KILL_ON_DENIED_SYSCALL);
    char **plain = mkargv((const char *const[]){ "/bin/true", NULL });
    char **bwrap = mkargv((const char *const[]){ "/usr/bin/bwrap", "--unshare-all", "--die-with-parent",
                      "--ro-bind", "/usr", "/usr",
                      "--ro-bind", "/lib", "/lib",
                      "--ro-bind", "/lib64", "/lib64",
                      "--ro-bind", "/bin", "/bin",
                      "--proc", "/proc", "--dev", "/dev",
                      "/bin/true", NULL });
    bool have_bwrap = access(bwrap[0], X_OK) == 0;
    bench_samples s_sbx, s_fork, s_bwrap, s_nojob, s_kill;
    bench_samples_init(&s_sbx, RUNS);
    bench_samples_init(&s_kill, RUNS);
    bench_samples_init(&s_nojob, RUNS);
    bench_samples_init(&s_fork, RUNS);
    bench_samples_init(&s_bwrap, RUNS);
    for (int i = 0; i < 5; i++) { /* warm up: filters built, caches hot */
        run_sbx(b, p);
        run_fork_exec(plain);
    }
    for (int i = 0; i < RUNS; i++) {
        bench_samples_add(&s_sbx, run_sbx(b, p));
        bench_samples_add(&s_nojob, run_sbx(b, pn));
        bench_samples_add(&s_kill, run_sbx(b, pk));
        bench_samples_add(&s_fork, run_fork_exec(plain));
        if (have_bwrap)
            bench_samples_add(&s_bwrap, run_fork_exec(bwrap));
    }
    bench_result r_sbx, r_fork, r_bwrap, r_nojob, r_kill;
    bench_summarize(&s_nojob, "broker", "spawn_true_sbx_no_job_limits", &r_nojob);
    bench_summarize(&s_kill, "broker", "spawn_true_sbx_kill_mode", &r_kill);
    bench_summarize(&s_sbx, "broker", "spawn_true_sbx", &r_sbx);
    bench_summarize(&s_fork, "broker", "spawn_true_fork_exec", &r_fork);
    bench_print(&r_fork, NULL);
    if (have_bwrap) {
        bench_summarize(&s_bwrap, "broker", "spawn_true_bwrap", &r_bwrap);
        bench_print(&r_bwrap, &r_fork);
        bench_print(&r_sbx, &r_bwrap);
    }
    bench_print(&r_sbx, &r_fork);
    bench_print(&r_nojob, &r_sbx);
    bench_print(&r_sbx, &r_kill);
    bench_table_header("broker: spawn-to-exit of /bin/true");
    bench_table_row(&r_fork, NULL);
    if (have_bwrap)
        bench_table_row(&r_bwrap, &r_fork);
    bench_table_row(&r_sbx, have_bwrap ? &r_bwrap : &r_fork);
    bench_table_row(&r_nojob, &r_sbx);
    bench_table_row(&r_kill, &r_sbx);
    bench_samples_free(&s_sbx);
    bench_samples_free(&s_fork);
    bench_samples_free(&s_bwrap);
    bench_samples_free(&s_nojob);
    bench_samples_free(&s_kill);
    sbx_policy_unref(pk);
    sbx_policy_unref(pn);
    sbx_policy_unref(p);
    sbx_broker_free(b);
    return 0;
}
