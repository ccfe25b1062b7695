/* The trap backend through sbx_broker_spawn: the broker's notify filter is
 * the complete base, libsbx-preload.so (bound into the view, LD_PRELOADed)
 * engages the SIGSYS fast path in every dynamic program, and whatever the
 * shim cannot reach (static programs, programs exec'd with a cleared
 * environment, the loader itself) is still served — by notify. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sbx/broker.h>

#include "broker/broker_internal.h"
#include "broker/runtime.h"
#include "rt_common.h"

static void setup(void)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("the sanitized shim cannot be preloaded into uninstrumented /bin programs");
#endif
    cr_assert(getenv("SBX_PRELOAD"), "the test harness sets SBX_PRELOAD");
    rt_setup();
}

TestSuite(trap_backend, .init = setup, .fini = rt_teardown, .timeout = 30);

static sbx_policy *pol(sbx_backend backend)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    cr_assert(p);
    cr_assert_eq(sbx_policy_set_mitigations(p, SBX_MITIGATION_ALLOW_CHILDREN), 0);
    cr_assert_eq(sbx_policy_set_backend(p, backend), 0);
    return p;
}

static void rule(sbx_policy *p, int sem, const char *pattern)
{
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, sem, pattern, "test", NULL), 0,
                 "%s", pattern);
}

/* Spawn argv (envp as given) under p, stdout (+ stderr if both) into out,
 * wait for the end; *info is the spawn's. Returns the exit code. */
static int spawn_collect(sbx_policy *p, char **argv, char **envp, bool both, char *out,
                         size_t cap, sbx_target_info *info)
{
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    sbx_spawn_options o = { .path = argv[0], .argv = argv, .envp = envp,
                            .stdin_fd = SBX_STDIO_NULL, .stdout_fd = pfd[1],
                            .stderr_fd = both ? pfd[1] : SBX_STDIO_NULL };
    cr_assert_eq(sbx_broker_spawn(B, p, &o, info), 0, "%s", info->error);
    close(pfd[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(pfd[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    out[n] = '\0';
    close(pfd[0]);
    int code = -1;
    cr_assert(sbx_test_wait_end(info->id, 10000, &code, NULL));
    return code;
}

Test(trap_backend, brokered_reads_go_through_the_shared_memory_ipc)
{
    rt_write_file("f", "fast path\n");
    rt_write_file("secret", "no\n");
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    uint64_t before = sbx_runtime_ipc_calls(B->runtime);
    rt_run r;
    /* 20 opens by cat (one process per cat: each engages its own shim). */
    char full[8192];
    snprintf(full, sizeof full,
             "for i in $(seq 20); do cat %s >/dev/null || exit 3; done; cat %s; cat %s; echo rc=$?",
             rt_path("f"), rt_path("f"), rt_path("secret"));
    cr_assert_eq(rt_sh(p, full, &r), 0, "%s", r.out);
    cr_expect_eq(r.code, 0, "%s", r.out);
    cr_expect(strstr(r.out, "fast path\n"), "%s", r.out);
    cr_expect(strstr(r.out, "Permission denied"), "%s", r.out);
    cr_expect(strstr(r.out, "rc=1"), "%s", r.out);
    uint64_t calls = sbx_runtime_ipc_calls(B->runtime) - before;
    cr_expect_geq(calls, 21, "cross calls %llu: the fast path was not taken", (unsigned long long)calls);
    sbx_policy_unref(p);
}

Test(trap_backend, notify_backend_makes_no_cross_calls)
{
    rt_write_file("f", "slow path\n");
    sbx_policy *p = pol(SBX_BACKEND_NOTIFY);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    uint64_t before = sbx_runtime_ipc_calls(B->runtime);
    char *argv[] = { (char *)"/bin/cat", (char *)rt_path("f"), NULL };
    rt_run r;
    cr_assert_eq(rt_run_prog(p, argv, &r), 0, "%s", r.out);
    cr_expect_str_eq(r.out, "slow path\n");
    cr_expect_eq(sbx_runtime_ipc_calls(B->runtime) - before, 0);
    sbx_policy_unref(p);
}

Test(trap_backend, the_shim_is_engaged_in_the_target)
{
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    rt_run r;
    cr_assert_eq(rt_sh(p, "echo \"$LD_PRELOAD\"; echo native=$SBX_TRAP_NATIVE; "
                          "grep -E '^(SigCgt|Seccomp_filters)' /proc/self/status",
                       &r),
                 0, "%s", r.out);
    cr_expect_eq(r.code, 0, "%s", r.out);
    cr_expect(strstr(r.out, getenv("SBX_PRELOAD")) || strstr(r.out, "libsbx-preload.so"), "%s",
              r.out);
    cr_expect(strstr(r.out, "native=1"), "Landlock holds and no deny in view: %s", r.out);
    /* baseline + notify + the shim's trap filter (+ the inert one of sh) */
    const char *nf = strstr(r.out, "Seccomp_filters:\t");
    cr_assert(nf, "%s", r.out);
    cr_expect_geq(atoi(nf + 17), 3, "%s", r.out);
    /* SIGSYS (31) is caught: bit 30 of SigCgt */
    const char *cgt = strstr(r.out, "SigCgt:\t");
    cr_assert(cgt, "%s", r.out);
    unsigned long long mask = strtoull(cgt + 8, NULL, 16);
    cr_expect(mask & (1ull << 30), "SigCgt %llx", mask);
    sbx_policy_unref(p);
}

Test(trap_backend, exec_with_a_cleared_environment_is_still_served)
{
    rt_write_file("f", "through notify\n");
    rt_write_file("secret", "no\n");
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    char s[4096];
    snprintf(s, sizeof s, "env -i /bin/cat %s; env -i /bin/cat %s; echo rc=$?", rt_path("f"),
             rt_path("secret"));
    rt_run r;
    cr_assert_eq(rt_sh(p, s, &r), 0, "%s", r.out);
    cr_expect(strstr(r.out, "through notify\n"), "%s", r.out);
    cr_expect(strstr(r.out, "Permission denied") && strstr(r.out, "rc=1"), "%s", r.out);
    sbx_policy_unref(p);
}

Test(trap_backend, the_callers_own_ld_preload_is_kept)
{
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    char *env[] = { (char *)"PATH=/usr/bin:/bin", (char *)"LD_PRELOAD=/nonexistent/x.so", NULL };
    char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"echo \"[$LD_PRELOAD]\"", NULL };
    char out[4096];
    sbx_target_info info;
    spawn_collect(p, argv, env, false, out, sizeof out, &info);
    cr_expect(strstr(out, "libsbx-preload.so:/nonexistent/x.so]"), "%s", out);
    sbx_policy_unref(p);
}

Test(trap_backend, deny_inside_the_view_turns_native_reissue_off_and_holds)
{
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    rule(p, SBX_FILES_DENY, "/etc/ld.so.cache");
    rt_run r;
    cr_assert_eq(rt_sh(p, "echo native=$SBX_TRAP_NATIVE; cat /etc/ld.so.cache >/dev/null; "
                          "echo rc=$?",
                       &r),
                 0, "%s", r.out);
    cr_expect(strstr(r.out, "native=0"), "%s", r.out);
    cr_expect(strstr(r.out, "Permission denied") && strstr(r.out, "rc=1"), "%s", r.out);
    sbx_policy_unref(p);
}

Test(trap_backend, static_program_is_served_by_notify_with_a_warning)
{
    /* Built next to the probe, only where static linking works. */
    char cat[4096];
    snprintf(cat, sizeof cat, "%s", rt_probe_path());
    strcpy(strrchr(cat, '/') + 1, "sbx_static_cat");
    if (access(cat, X_OK) != 0)
        cr_skip_test("no static test program in this build");
    rt_write_file("f", "static hello\n");
    rt_write_file("secret", "no\n");
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    cr_assert_eq(sbx_policy_add_view(p, cat, SBX_VIEW_EXEC), 0);
    char *argv[] = { cat, (char *)rt_path("f"), (char *)rt_path("secret"), NULL };
    char *env[] = { (char *)"PATH=/usr/bin:/bin", NULL };
    char out[4096];
    sbx_target_info info;
    int code = spawn_collect(p, argv, env, true, out, sizeof out, &info);
    cr_expect_eq(code, 1, "%s", out);
    cr_expect(strstr(out, "static hello\n"), "%s", out);
    cr_expect(strstr(out, "Permission denied"), "%s", out);
    cr_expect(strstr(info.warnings, "statically linked"), "warnings: %s", info.warnings);
    sbx_policy_unref(p);
}

Test(trap_backend, a_missing_shim_fails_the_spawn_at_interception)
{
    if (access(SBX_PRELOAD_INSTALLED, F_OK) == 0)
        cr_skip_test("an installed shim exists: %s", SBX_PRELOAD_INSTALLED);
    sbx_broker_free(B);
    B = NULL;
    unsetenv("SBX_PRELOAD");
    cr_assert_eq(sbx_broker_new(&B), 0);
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    char *argv[] = { (char *)"/bin/true", NULL };
    char *env[] = { NULL };
    sbx_spawn_options o = { .path = argv[0], .argv = argv, .envp = env,
                            .stdin_fd = SBX_STDIO_NULL, .stdout_fd = SBX_STDIO_NULL,
                            .stderr_fd = SBX_STDIO_NULL };
    sbx_target_info info;
    cr_expect_lt(sbx_broker_spawn(B, p, &o, &info), 0);
    cr_expect_eq(info.failed_step, SBX_STEP_INTERCEPTION, "%d: %s", info.failed_step, info.error);
    cr_expect(strstr(info.error, "libsbx-preload.so"), "%s", info.error);
    sbx_policy_unref(p);
}

/* The broker's memo of the target's threads: a relative path resolves
 * against the calling thread's own cwd on every call, and a dead
 * thread's tid is never served from memory. */
static int run_threads_probe(sbx_policy *p, char **argv, char *out, size_t cap)
{
    char probe[4096];
    snprintf(probe, sizeof probe, "%s", rt_probe_path());
    strcpy(strrchr(probe, '/') + 1, "sbx_trap_threads_probe");
    argv[0] = probe;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", probe);
    *strrchr(dir, '/') = '\0';
    cr_assert_eq(sbx_policy_add_view(p, dir, SBX_VIEW_EXEC), 0);
    char *env[] = { (char *)"PATH=/usr/bin:/bin", NULL };
    sbx_target_info info;
    int code = spawn_collect(p, argv, env, true, out, cap, &info);
    return code;
}

Test(trap_backend, relative_paths_follow_each_threads_cwd_every_call)
{
    rt_write_file("f", "x\n");
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    char *argv[] = { NULL, (char *)"cwd", (char *)rt_path("f") + 1, (char *)"50", NULL };
    char out[4096];
    int code = run_threads_probe(p, argv, out, sizeof out);
    cr_expect_eq(code, 0, "%s", out);
    cr_expect(strstr(out, "root=50 usr_ok=0"), "%s", out);
    sbx_policy_unref(p);
}

Test(trap_backend, a_dead_threads_tid_is_not_served_from_memory)
{
    rt_write_file("f", "x\n");
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    char *argv[] = { NULL, (char *)"deadtid", (char *)rt_path("f"), NULL };
    char out[4096];
    int code = run_threads_probe(p, argv, out, sizeof out);
    cr_expect_eq(code, 0, "%s", out);
    sbx_policy_unref(p);
}

/* The shim's direct entry for libc's exported open family: served without
 * a trap (a thread with SIGSYS blocked still opens), while libc's internal
 * opens (fopen) still trap — and die fail-closed with SIGSYS blocked. */
Test(trap_backend, exported_open_is_served_without_a_trap_and_the_filter_stays)
{
    rt_write_file("f", "x\n");
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    uint64_t before = sbx_runtime_ipc_calls(B->runtime);
    char *argv[] = { NULL, (char *)"sigblocked", (char *)rt_path("f"), NULL };
    char out[4096];
    int code = run_threads_probe(p, argv, out, sizeof out);
    cr_expect(strstr(out, "direct ok"), "code %d: %s", code, out);
    cr_expect(!strstr(out, "fopen survived"), "%s", out);
    cr_expect_neq(code, 0, "killed by SIGSYS at the trapped fopen: %s", out);
    cr_expect_geq(sbx_runtime_ipc_calls(B->runtime) - before, 1, "brokered over the IPC");
    sbx_policy_unref(p);
}

/* A program's signal handler never runs in the middle of a direct cross
 * call (the SIGSYS handler's mask is blocked around it): a handler that
 * opens files and siglongjmps out cannot abandon channels. */
Test(trap_backend, signal_handlers_never_interrupt_a_direct_cross_call)
{
    rt_write_file("f", "x\n");
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    char *argv[] = { NULL, (char *)"signals", (char *)rt_path("f"), (char *)"2000", NULL };
    char out[4096];
    int code = run_threads_probe(p, argv, out, sizeof out);
    cr_expect_eq(code, 0, "%s", out);
    cr_expect(strstr(out, "opens=2000 failed=0"), "%s", out);
    sbx_policy_unref(p);
}

/* With the caller's own LD_PRELOAD wrapping open, the shim's direct entry
 * is off: the wrapper still sees the program's open, and libc's call then
 * traps as before (with SIGSYS blocked, the probe dies at that open). */
Test(trap_backend, a_callers_open_wrapper_keeps_the_trapped_path)
{
    rt_write_file("f", "x\n");
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    char probe[4096], wrapper[4200], preload[4300];
    snprintf(probe, sizeof probe, "%s", rt_probe_path());
    *strrchr(probe, '/') = '\0';
    snprintf(wrapper, sizeof wrapper, "%s/libsbx_test_open_wrapper.so", probe);
    cr_assert_eq(access(wrapper, R_OK), 0, "%s", wrapper);
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", wrapper);
    char probe_bin[4200];
    snprintf(probe_bin, sizeof probe_bin, "%s/sbx_trap_threads_probe", probe);
    cr_assert_eq(sbx_policy_add_view(p, probe, SBX_VIEW_EXEC), 0);
    char *argv[] = { probe_bin, (char *)"sigblocked", (char *)rt_path("f"), NULL };
    char *env[] = { (char *)"PATH=/usr/bin:/bin", preload, NULL };
    char out[4096];
    sbx_target_info info;
    int code = spawn_collect(p, argv, env, true, out, sizeof out, &info);
    cr_expect(strstr(out, "wrapped"), "the caller's wrapper ran: %s", out);
    cr_expect(!strstr(out, "direct ok"), "no direct entry under a wrapper: %s", out);
    cr_expect_neq(code, 0, "%s", out);
    sbx_policy_unref(p);
}

/* The direct entry's native re-issue (a file of the view) leaves the
 * re-issue magic in R9; a trapped call right after it (fopen of a brokered
 * file) must still trap and be brokered, not pass the filter on it. */
Test(trap_backend, the_reissue_magic_does_not_leak_past_a_direct_call)
{
    rt_write_file("f", "x\n");
    sbx_policy *p = pol(SBX_BACKEND_TRAP);
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("f"));
    char *argv[] = { NULL, (char *)"mixed", NULL, (char *)rt_path("f"), (char *)"200", NULL };
    char out[4096];
    char self[4096];
    snprintf(self, sizeof self, "%s", rt_probe_path()); /* in the probes' view: native */
    argv[2] = self;
    int code = run_threads_probe(p, argv, out, sizeof out);
    cr_expect_eq(code, 0, "%s", out);
    cr_expect(strstr(out, "mixed ok"), "%s", out);
    sbx_policy_unref(p);
}
