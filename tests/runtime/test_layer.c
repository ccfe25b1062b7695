/* The runtime layer itself: the section reaches sbx_target_init, the
 * broker decides from its private copy, per-target state is released,
 * audit records, the channel option, and the policy adapter. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sbx/broker.h>
#include <sbx/error.h>
#include <sbx/channel.h>

#include "base/cleanup.h"
#include "broker/broker_internal.h"
#include "broker/runtime.h"
#include "policy/compile.h"
#include "rt_common.h"

TestSuite(layer, .init = rt_setup, .fini = rt_teardown, .timeout = 60);

static sbx_policy *probe_pol(void)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", rt_probe_path());
    *strrchr(dir, '/') = '\0';
    cr_assert_eq(sbx_policy_add_view(p, dir, SBX_VIEW_EXEC), 0);
    return p;
}

Test(layer, target_init_maps_the_section_and_calls_the_broker)
{
    sbx_policy *p = probe_pol();
    char *argv[] = { (char *)rt_probe_path(), (char *)"ipc", NULL };
    rt_run r;
    cr_assert_eq(rt_run_prog(p, argv, &r), 0, "%s", r.out);
    cr_expect_eq(r.code, 0, "probe step %d: %s", r.code, r.out);
    sbx_policy_unref(p);
}

Test(layer, scribbled_section_does_not_change_decisions)
{
    rt_write_file("ro.txt", "still readable\n");
    rt_write_file("secret.txt", "still secret\n");
    sbx_policy *p = sbx_broker_create_policy(B);
    cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt")), 0);
    cr_assert_eq(sbx_policy_set_mitigations(p, SBX_MITIGATION_ALLOW_CHILDREN), 0);
    int in[2], out[2];
    cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    char script[8192];
    snprintf(script, sizeof script, "read go; cat %s; cat %s", rt_path("ro.txt"), rt_path("secret.txt"));
    char *argv[] = { (char *)"/bin/sh", (char *)"-c", script, NULL };
    sbx_spawn_options o = { .path = argv[0], .argv = argv, .stdin_fd = in[0], .stdout_fd = out[1],
                            .stderr_fd = out[1] };
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    close(in[0]);
    close(out[1]);
    /* The whole section, header and policy area included, becomes 0xff:
     * what a hostile target can do to it. */
    int fd = sbx_runtime_section_fd(B->runtime, info.id);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    char *junk = malloc((size_t)st.st_size);
    memset(junk, 0xff, (size_t)st.st_size);
    cr_assert_eq(pwrite(fd, junk, (size_t)st.st_size, 0), st.st_size);
    free(junk);
    cr_assert_eq(write(in[1], "go\n", 3), 3);
    close(in[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t k;
    while ((k = read(out[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)k;
    buf[n] = '\0';
    close(out[0]);
    cr_expect(strstr(buf, "still readable\n"), "%s", buf);
    cr_expect(strstr(buf, "Permission denied"), "%s", buf);
    cr_expect(!strstr(buf, "still secret"), "%s", buf);
    cr_assert(sbx_test_wait_end(info.id, 5000, NULL, NULL));
    sbx_policy_unref(p);
}

Test(layer, no_leaks_across_200_spawns)
{
    rt_write_file("ro.txt", "x");
    sbx_policy *p = sbx_broker_create_policy(B);
    cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt")), 0);
    rt_run r;
    char *argv[] = { (char *)"/bin/cat", (char *)rt_path("ro.txt"), NULL };
    /* Warm up: the pool, the dispatcher, the compiled cache. */
    cr_assert_eq(rt_run_prog(p, argv, &r), 0);
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    /* Quiescent: the pool thread dropped the ended targets' cgroups and
     * mount namespaces too. */
    cr_assert_eq(sbx_broker_wait_quiescent(B), 0);
    int fds = rt_count_fds(), threads = rt_count_threads();
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(rt_run_prog(p, argv, &r), 0, "%s", r.out);
        cr_assert_str_eq(r.out, "x");
    }
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    cr_assert_eq(sbx_broker_wait_quiescent(B), 0);
    cr_expect_eq(rt_count_fds(), fds);
    cr_expect_eq(rt_count_threads(), threads);
    cr_expect_eq(sbx_runtime_live_targets(B->runtime), 0);
    sbx_policy_unref(p);
}

#define MAX_REC 32
static struct {
    sbx_audit_decision d;
    char path[4096];
    char op[16];
    char origin[64];
    int error;
    uint64_t id;
} g_rec[MAX_REC];
static int g_nrec;

static void on_audit(const sbx_audit_record *a, void *ud)
{
    (void)ud;
    if (g_nrec >= MAX_REC)
        return;
    g_rec[g_nrec].d = a->decision;
    snprintf(g_rec[g_nrec].path, sizeof g_rec[0].path, "%s", a->path);
    snprintf(g_rec[g_nrec].op, sizeof g_rec[0].op, "%s", a->op);
    snprintf(g_rec[g_nrec].origin, sizeof g_rec[0].origin, "%s", a->origin ? a->origin : "");
    g_rec[g_nrec].error = a->error;
    g_rec[g_nrec].id = a->target_id;
    __atomic_add_fetch(&g_nrec, 1, __ATOMIC_SEQ_CST);
}

static int find_rec(const char *path)
{
    for (int i = 0; i < g_nrec; i++)
        if (!strcmp(g_rec[i].path, path))
            return i;
    return -1;
}

Test(layer, audit_records_brokered_and_denied)
{
    rt_write_file("ro.txt", "x");
    rt_write_file("secret", "s");
    sbx_policy *p = sbx_broker_create_policy(B);
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY,
                                        rt_path("ro.txt"), "audit.policy:1", NULL), 0);
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, rt_path("secret"),
                                        "audit.policy:2", NULL), 0);
    cr_assert_eq(sbx_broker_set_audit_callback(B, on_audit, NULL), 0);
    char *argv[] = { (char *)"/bin/cat", (char *)rt_path("ro.txt"), (char *)rt_path("secret"), NULL };
    rt_run r;
    cr_assert_eq(rt_run_prog(p, argv, &r), 0);
    cr_assert_eq(sbx_broker_set_audit_callback(B, NULL, NULL), 0);
    int a = find_rec(rt_path("ro.txt")), b = find_rec(rt_path("secret"));
    cr_assert_geq(a, 0, "no record for the brokered open (%d records)", g_nrec);
    cr_assert_geq(b, 0, "no record for the denied open");
    cr_expect_eq(g_rec[a].d, SBX_AUDIT_BROKERED);
    cr_expect_str_eq(g_rec[a].op, "open");
    cr_expect_str_eq(g_rec[a].origin, "audit.policy:1");
    cr_expect_eq(g_rec[a].error, 0);
    cr_expect_eq(g_rec[a].id, r.id);
    cr_expect_eq(g_rec[b].d, SBX_AUDIT_DENIED);
    cr_expect_str_eq(g_rec[b].origin, "audit.policy:2");
    cr_expect_eq(g_rec[b].error, EACCES);
    cr_expect_str_eq(sbx_audit_decision_name(SBX_AUDIT_BROKERED), "brokered");
    cr_expect_eq(sbx_broker_set_audit_callback(NULL, on_audit, NULL), -EINVAL);
    sbx_policy_unref(p);
}

static int g_replies;
static uint64_t g_len;
static bool chan_msg(void *ctx, sbx_message *m)
{
    (void)ctx;
    if (sbx_message_type(m) != 2)
        return false;
    sbx_pickle_reader r;
    sbx_message_reader(m, &r);
    cr_assert_eq(sbx_pickle_read_uint64(&r, &g_len), 0);
    g_replies++;
    return true;
}

Test(layer, channel_option_connects_broker_and_target)
{
    sbx_policy *p = probe_pol();
    char *argv[] = { (char *)rt_probe_path(), (char *)"channel", NULL };
    char *envp[] = { (char *)"ASAN_OPTIONS=detect_leaks=0", NULL };
    sbx_spawn_options o = { .path = argv[0], .argv = argv, .envp = envp,
                            .stdin_fd = SBX_STDIO_NULL, .stdout_fd = 2, .stderr_fd = 2,
                            .channel = true };
    sbx_target_info info;
    cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
    cr_assert_geq(info.channel_fd, 0);
    sbx_channel_listener l = { .on_message = chan_msg };
    sbx_channel *ch = NULL;
    cr_assert_eq(sbx_broker_channel_new(&info, &l, &ch), 0);
    cr_assert_eq(info.channel_fd, -1);
    sbx_message *m = sbx_message_new(0, 1, SBX_PRIORITY_NORMAL);
    sbx_pickle_write_cstr(sbx_message_pickle(m), "hello, worker");
    cr_assert_eq(sbx_channel_send(ch, m), 0);
    for (int i = 0; i < 100 && g_replies == 0; i++) {
        struct pollfd pf = { .fd = sbx_channel_fd(ch), .events = sbx_channel_poll_events(ch) };
        poll(&pf, 1, 100);
        cr_assert_geq(sbx_channel_process_events(ch), 0);
    }
    cr_assert_eq(g_replies, 1);
    cr_expect_eq(g_len, strlen("hello, worker"));
    cr_expect(sbx_channel_is_connected(ch));
    sbx_channel_free(ch);
    int code = -2;
    cr_assert(sbx_test_wait_end(info.id, 5000, &code, NULL));
    cr_expect_eq(code, 0);
    /* the option and a caller channel fd together are refused */
    sbx_target_fds extra = { -1, -1, 1 };
    o.extra_fds = &extra;
    cr_expect_eq(sbx_broker_spawn(B, p, &o, &info), -EINVAL);
    cr_expect_eq(info.channel_fd, -1);
    sbx_policy_unref(p);
}

/* The adapter, directly. */
static sbx_files_decision decide(sbx_runtime_decider *d, sbx_files_call_op op, const char *path,
                                 unsigned need, unsigned which)
{
    sbx_files_query q = { .op = op, .path = path, .need = need, .which = which, .syscall = "t",
                          .flags = (need & SBX_FILES_NEED_WRITE) ? O_WRONLY : O_RDONLY };
    sbx_files_decision out;
    cr_assert_eq(sbx_runtime_decide(d, &q, &out), 0);
    return out;
}

Test(layer, adapter_native_brokered_denied)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/srv/out/**", "o", NULL);
    sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, "/srv/in/**", "i", NULL);
    sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/srv/in/secret", "d", NULL);
    sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/usr/share/secret/**", "u", NULL);
    cr_assert_eq(sbx_policy_set_deny_errno(p, EPERM), 0);
    sbx_policy_freeze(p);
    void *buf;
    size_t size;
    cr_assert_eq(sbx_policy_compile(p, &buf, &size, NULL), 0);
    SBX_CLEANUP(sbx_runtime_decider_destroy) sbx_runtime_decider d;
    cr_assert_eq(sbx_runtime_decider_init(&d, p, buf, size, -1, NULL), 0);
    cr_expect(d.deny_in_view);
    cr_expect(sbx_runtime_needs_interception(p));
    const unsigned R = SBX_FILES_NEED_READ, W = SBX_FILES_NEED_WRITE;
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/usr/lib/x", R, 0).action, SBX_FILES_NATIVE);
    /* read-only tree: a write is the policy's call (denied here) */
    sbx_files_decision x = decide(&d, SBX_FILES_CALL_OPEN, "/usr/lib/x", W, 0);
    cr_expect_eq(x.action, SBX_FILES_REFUSE);
    cr_expect_eq(x.deny_errno, EPERM);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_MKDIR, "/tmp/d", W, 0).action, SBX_FILES_NATIVE);
    x = decide(&d, SBX_FILES_CALL_OPEN, "/usr/share/secret/k", R, 0);
    cr_expect_eq(x.action, SBX_FILES_REFUSE, "a deny inside the view wins");
    cr_expect_str_eq(x.origin, "u");
    x = decide(&d, SBX_FILES_CALL_OPEN, "/srv/in/a", R, 0);
    cr_expect_eq(x.action, SBX_FILES_BROKER);
    cr_expect_str_eq(x.origin, "i");
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/srv/in/a", W, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/srv/in/secret", R, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/srv/elsewhere", R, 0).action, SBX_FILES_REFUSE);
    /* rename: each end is asked on its own (RENAME_SRC / RENAME_DST) */
    cr_expect_eq(decide(&d, SBX_FILES_CALL_RENAME, "/srv/out/a", W, 0).action, SBX_FILES_BROKER);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_RENAME, "/srv/out/b", W, 1).action, SBX_FILES_BROKER);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_RENAME, "/srv/in/b", W, 1).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_UNLINK, "/srv/out/a", W, 0).action, SBX_FILES_BROKER);
    /* a policy without deny rules in the view keeps CONTINUE */
    sbx_policy *q = sbx_broker_create_policy(B);
    sbx_policy_add_rule(q, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/srv/in/secret");
    cr_expect(!sbx_runtime_deny_in_view(q));
    cr_expect(!sbx_runtime_needs_interception(q));
    sbx_policy_add_rule(q, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/**");
    cr_expect(sbx_runtime_deny_in_view(q));
    free(buf);
    sbx_policy_unref(q);
    sbx_policy_unref(p);
}

/* A deny keeps CONTINUE off only when its pattern can reach into a view
 * tree: the default profile's secrets (/etc/shadow*, the /root and /home trees)
 * cannot, so its targets keep native calls (cd, /proc/self) working. */
Test(layer, deny_in_view_is_precise)
{
    const char *const outside[] = { "/etc/shadow*", "/etc/ssh/*_key", "/root/**", "/home/**",
                                    "/etc/sudoers", "/srv/x/**", "/us", "/etc/ld.so.c",
                                    "/etc/ld.so.c*x", "/e?c/l*so*x",
                                    "/u*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b" };
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        sbx_policy *q = sbx_broker_create_policy(B);
        sbx_policy_add_rule(q, SBX_SUBSYS_FILES, SBX_FILES_DENY, outside[i]);
        cr_expect(!sbx_runtime_deny_in_view(q), "%s", outside[i]);
        sbx_policy_unref(q);
    }
    const char *const inside[] = { "/usr/share/secret/**", "/**", "/us?/lib/x", "/*/lib/x",
                                   "/u*", "/etc/ld.so.*", "/etc/ld.so.cache", "/tmp/x",
                                   "/proc/*/environ", "/etc/ld.so.c*he", "/etc/*.so.cache", "/e?c/l*so*e", "/u\\sr/x", "/dev/**", "/srv/v/k" };
    for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++) {
        sbx_policy *q = sbx_broker_create_policy(B);
        sbx_policy_add_view(q, "/srv/v", SBX_VIEW_READONLY);
        sbx_policy_add_rule(q, SBX_SUBSYS_FILES, SBX_FILES_DENY, inside[i]);
        cr_expect(sbx_runtime_deny_in_view(q), "%s", inside[i]);
        sbx_policy_unref(q);
    }
}

/* The deepest view tree decides (a read-only view under the writable
 * /tmp), and a trailing '/' ("." of a cwd) is decided on the name. */
Test(layer, nested_view_and_trailing_slash)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    sbx_policy_add_view(p, "/tmp/proj", SBX_VIEW_READONLY);
    sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, "/tmp/proj/**", "r", NULL);
    sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/tmp/proj/out/**", "w", NULL);
    sbx_policy_freeze(p);
    void *buf;
    size_t size;
    cr_assert_eq(sbx_policy_compile(p, &buf, &size, NULL), 0);
    SBX_CLEANUP(sbx_runtime_decider_destroy) sbx_runtime_decider d;
    cr_assert_eq(sbx_runtime_decider_init(&d, p, buf, size, -1, NULL), 0);
    const unsigned R = SBX_FILES_NEED_READ, W = SBX_FILES_NEED_WRITE;
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/tmp/proj/a", R, 0).action, SBX_FILES_NATIVE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/tmp/proj/a", W, 0).action, SBX_FILES_REFUSE,
                 "the read-only view is on top of /tmp");
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/tmp/proj/out/f", W, 0).action, SBX_FILES_BROKER);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/tmp/other", W, 0).action, SBX_FILES_NATIVE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_STAT, "/usr/", R, 0).action, SBX_FILES_NATIVE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/tmp/proj/out/", R, 0).action, SBX_FILES_NATIVE);
    sbx_files_decision x = decide(&d, SBX_FILES_CALL_OPEN, "/srv/", R, 0);
    cr_expect_eq(x.action, SBX_FILES_REFUSE);
    free(buf);
    sbx_policy_unref(p);
}

/* The view's trees match whole components only (the decider keeps their
 * lengths): a name that merely starts like a tree is the policy's call;
 * the skeleton directories holding a tree read natively, their prefixes
 * do not; the shim is native read-only by its exact name. */
Test(layer, view_trees_match_whole_components)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    sbx_policy_add_view(p, "/srv/view", SBX_VIEW_READONLY);
    sbx_policy_freeze(p);
    void *buf;
    size_t size;
    cr_assert_eq(sbx_policy_compile(p, &buf, &size, NULL), 0);
    SBX_CLEANUP(sbx_runtime_decider_destroy) sbx_runtime_decider d;
    cr_assert_eq(sbx_runtime_decider_init(&d, p, buf, size, -1, "/opt/sbx/libsbx-preload.so"), 0);
    const unsigned R = SBX_FILES_NEED_READ, W = SBX_FILES_NEED_WRITE;
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/usr", R, 0).action, SBX_FILES_NATIVE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/usr/bin/env", R, 0).action, SBX_FILES_NATIVE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/usrx", R, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/us", R, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/tmpfoo", W, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/srv/view/a", R, 0).action, SBX_FILES_NATIVE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/srv/view/a", W, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/srv/viewx", R, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/srv/vie", R, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_STAT, "/srv", R, 0).action, SBX_FILES_NATIVE,
                 "holds a view tree");
    cr_expect_eq(decide(&d, SBX_FILES_CALL_STAT, "/sr", R, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_STAT, "/etc", R, 0).action, SBX_FILES_NATIVE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_STAT, "/etc/passwd", R, 0).action, SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/opt/sbx/libsbx-preload.so", R, 0).action,
                 SBX_FILES_NATIVE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/opt/sbx/libsbx-preload.so", W, 0).action,
                 SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/opt/sbx/libsbx-preload.s", R, 0).action,
                 SBX_FILES_REFUSE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/opt/sbx/libsbx-preload.sox", R, 0).action,
                 SBX_FILES_REFUSE);
    free(buf);
    sbx_policy_unref(p);
}

Test(layer, failed_spawn_releases_runtime_state)
{
    rt_write_file("ro.txt", "x");
    sbx_policy *p = sbx_broker_create_policy(B);
    cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt")), 0);
    rt_run r;
    char *ok[] = { (char *)"/bin/cat", (char *)rt_path("ro.txt"), NULL };
    cr_assert_eq(rt_run_prog(p, ok, &r), 0); /* warm-up: pool, dispatcher */
    cr_assert_eq(sbx_broker_wait_all(B, 5000), 0);
    cr_assert_eq(sbx_broker_wait_quiescent(B), 0);
    int fds = rt_count_fds(), threads = rt_count_threads();
    char *bad[] = { (char *)"/bin/missing-program", NULL };
    for (int i = 0; i < 5; i++) {
        sbx_spawn_options o = { .path = bad[0], .argv = bad, .stdin_fd = SBX_STDIO_NULL,
                                .stdout_fd = SBX_STDIO_NULL, .stderr_fd = SBX_STDIO_NULL,
                                .channel = true };
        sbx_target_info info;
        cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), SBX_ERROR_SPAWN);
        cr_expect_eq(info.failed_step, SBX_STEP_EXEC);
        cr_expect_eq(info.channel_fd, -1);
    }
    cr_expect_eq(sbx_runtime_live_targets(B->runtime), 0);
    cr_expect_eq(rt_count_fds(), fds);
    cr_expect_eq(rt_count_threads(), threads);
    sbx_policy_unref(p);
}

#include "policy/engine.h"
#include "subsys/files/files_policy.h"

static int g_alarms;
static void count_alarm(const sbx_event *e, void *ud)
{
    (void)ud;
    if (e->type == SBX_EVENT_ALARM)
        __atomic_add_fetch(&g_alarms, 1, __ATOMIC_SEQ_CST);
    sbx_test_on_event(e, ud);
}

/* Actions the high-level rules never produce (FAKE_SUCCESS, SIGNAL_ALARM,
 * TERMINATE_PROCESS, GIVE_READONLY), from a hand-built low-level buffer. */
Test(layer, adapter_maps_every_action)
{
    static const struct { const char *path; sbx_action a; } rules[] = {
        { "/x/fake", SBX_ACTION_FAKE_SUCCESS },   { "/x/alarm", SBX_ACTION_SIGNAL_ALARM },
        { "/x/kill", SBX_ACTION_TERMINATE_PROCESS }, { "/x/ro", SBX_ACTION_GIVE_READONLY },
        { "/x/eacces", SBX_ACTION_FAKE_ACCESS_DENIED },
    };
    sbx_pol_builder *b = sbx_pol_builder_new();
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
        cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, SBX_FILES_P_NAME, rules[i].path, 0, NULL), 0);
        cr_assert_eq(sbx_pol_rule_done(r, rules[i].a), 0);
        cr_assert_eq(sbx_pol_builder_add(b, SBX_FILES_OP_OPEN, r, 1000 + (uint32_t)i, NULL), 0);
        sbx_pol_rule_free(r);
    }
    void *buf;
    size_t size;
    cr_assert_eq(sbx_pol_builder_finish(b, &buf, &size), 0);
    sbx_pol_builder_free(b);
    sbx_policy *p = sbx_broker_create_policy(B);
    cr_assert_eq(sbx_policy_set_deny_errno(p, ENOENT), 0);
    SBX_CLEANUP(sbx_runtime_decider_destroy) sbx_runtime_decider d;
    cr_assert_eq(sbx_runtime_decider_init(&d, p, buf, size, -1, NULL), 0);
    const unsigned R = SBX_FILES_NEED_READ, W = SBX_FILES_NEED_WRITE;
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/x/fake", R, 0).action, SBX_FILES_FAKE_SUCCESS);
    sbx_files_decision x = decide(&d, SBX_FILES_CALL_OPEN, "/x/alarm", R, 0);
    cr_expect_eq(x.action, SBX_FILES_REFUSE);
    cr_expect(x.alarm);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/x/kill", R, 0).action, SBX_FILES_TERMINATE);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/x/ro", R, 0).action, SBX_FILES_BROKER);
    cr_expect_eq(decide(&d, SBX_FILES_CALL_OPEN, "/x/ro", W, 0).action, SBX_FILES_REFUSE);
    x = decide(&d, SBX_FILES_CALL_OPEN, "/x/eacces", R, 0);
    cr_expect_eq(x.action, SBX_FILES_REFUSE);
    cr_expect_eq(x.deny_errno, EACCES);
    x = decide(&d, SBX_FILES_CALL_OPEN, "/x/none", R, 0);
    cr_expect_eq(x.action, SBX_FILES_REFUSE);
    cr_expect_eq(x.deny_errno, ENOENT, "no match: the policy's deny errno");
    /* End to end: the same buffer serving a real target. */
    sbx_policy *live = sbx_broker_create_policy(B);
    cr_assert_eq(sbx_policy_set_mitigations(live, SBX_MITIGATION_ALLOW_CHILDREN), 0);
    cr_assert_eq(sbx_policy_add_rule(live, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, "/x/**"), 0);
    cr_assert_eq(sbx_runtime_seed_compiled(B->runtime, live, buf, size), 0);
    g_nrec = 0;
    g_alarms = 0;
    sbx_broker_set_event_callback(B, count_alarm, NULL);
    cr_assert_eq(sbx_broker_set_audit_callback(B, on_audit, NULL), 0);
    rt_run r;
    cr_assert_eq(rt_sh(live, "cat /x/alarm; echo after-alarm; cat /x/kill; sleep 3; echo not-reached", &r), 0);
    cr_assert_eq(sbx_broker_set_audit_callback(B, NULL, NULL), 0);
    cr_expect(strstr(r.out, "/x/alarm: Permission denied"), "%s", r.out);
    cr_expect(strstr(r.out, "after-alarm"), "%s", r.out);
    cr_expect(!strstr(r.out, "not-reached"), "%s", r.out);
    cr_expect_eq(r.code, -1, "the whole target was killed, not only cat");
    cr_expect_eq(r.sig, SIGKILL);
    cr_expect_eq(__atomic_load_n(&g_alarms, __ATOMIC_SEQ_CST), 1);
    int ka = find_rec("/x/alarm"), kk = find_rec("/x/kill");
    cr_assert_geq(ka, 0);
    cr_assert_geq(kk, 0);
    cr_expect_eq(g_rec[ka].d, SBX_AUDIT_DENIED);
    cr_expect_eq(g_rec[kk].d, SBX_AUDIT_TERMINATED);
    /* No audit listener: no record is prepared, but the alarm and the
     * kill still happen. */
    g_nrec = 0;
    g_alarms = 0;
    cr_assert_eq(rt_sh(live, "cat /x/alarm; echo after-alarm; cat /x/kill; sleep 3; echo not-reached", &r), 0);
    cr_expect(strstr(r.out, "after-alarm"), "%s", r.out);
    cr_expect(!strstr(r.out, "not-reached"), "%s", r.out);
    cr_expect_eq(r.sig, SIGKILL);
    cr_expect_eq(__atomic_load_n(&g_alarms, __ATOMIC_SEQ_CST), 1);
    cr_expect_eq(g_nrec, 0);
    sbx_policy_unref(live);
    /* a malformed buffer denies */
    memset(buf, 0xff, size < 64 ? size : 64);
    sbx_files_query q = { .op = SBX_FILES_CALL_OPEN, .path = "/x/fake", .need = R };
    cr_expect_lt(sbx_runtime_decide(&d, &q, &x), 0);
    cr_expect_eq(x.action, SBX_FILES_REFUSE);
    free(buf);
    sbx_policy_unref(p);
}
