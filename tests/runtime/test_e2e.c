/* End to end: unmodified programs (/bin/cat, /bin/sh, ls, mv, python3)
 * spawned under policies with brokered file rules, served by the runtime
 * (notify interception + policy adapter + files dispatcher). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sbx/broker.h>

#include "broker/broker_internal.h"
#include "broker/runtime.h"
#include "rt_common.h"

TestSuite(e2e, .init = rt_setup, .fini = rt_teardown, .timeout = 30);

static sbx_policy *pol(void)
{
    sbx_policy *p = sbx_broker_create_policy(B);
    cr_assert(p);
    /* /bin/sh scripts run programs */
    cr_assert_eq(sbx_policy_set_mitigations(p, SBX_MITIGATION_ALLOW_CHILDREN), 0);
    return p;
}

static void rule(sbx_policy *p, int sem, const char *pattern)
{
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, sem, pattern, "test", NULL), 0,
                 "%s", pattern);
}

static char *cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *cmd(const char *fmt, ...)
{
    static char buf[4][8192];
    static unsigned k;
    char *b = buf[k++ % 4];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof buf[0], fmt, ap);
    va_end(ap);
    return b;
}

Test(e2e, cat_reads_brokered_readonly_file)
{
    rt_write_file("ro.txt", "brokered hello\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    char *argv[] = { (char *)"/bin/cat", (char *)rt_path("ro.txt"), NULL };
    rt_run r;
    cr_assert_eq(rt_run_prog(p, argv, &r), 0, "%s", r.out);
    cr_expect_eq(r.code, 0, "%s", r.out);
    cr_expect_str_eq(r.out, "brokered hello\n");
    sbx_policy_unref(p);
}

Test(e2e, outside_the_policy_is_not_readable)
{
    rt_write_file("other.txt", "must not leak\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    char *argv[] = { (char *)"/bin/cat", (char *)rt_path("other.txt"), NULL };
    rt_run r;
    cr_assert_eq(rt_run_prog(p, argv, &r), 0);
    cr_expect_neq(r.code, 0);
    cr_expect(strstr(r.out, "Permission denied"), "%s", r.out);
    cr_expect(!strstr(r.out, "must not leak"));
    sbx_policy_unref(p);
}

Test(e2e, writing_readonly_file_is_refused)
{
    rt_write_file("ro.txt", "original\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    rt_run r;
    cr_assert_eq(rt_sh(p, cmd("echo changed > %s", rt_path("ro.txt")), &r), 0);
    cr_expect_neq(r.code, 0);
    cr_expect(strstr(r.out, "Permission denied"), "%s", r.out);
    /* cat's own open for writing (via its output redirection in a second
     * program: cp) fails the same way */
    char *argv[] = { (char *)"/bin/cp", (char *)"/dev/null", (char *)rt_path("ro.txt"), NULL };
    cr_assert_eq(rt_run_prog(p, argv, &r), 0);
    cr_expect_neq(r.code, 0);
    cr_expect(strstr(r.out, "Permission denied"), "%s", r.out);
    FILE *f = fopen(rt_path("ro.txt"), "r");
    char line[64] = "";
    cr_assert(fgets(line, sizeof line, f));
    fclose(f);
    cr_expect_str_eq(line, "original\n");
    sbx_policy_unref(p);
}

Test(e2e, denied_and_denied_missing_look_the_same)
{
    rt_write_file("secret.txt", "top secret\n");
    rt_write_file("ok.txt", "fine\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, cmd("%s/**", rt_dir()));
    rule(p, SBX_FILES_DENY, cmd("%s/secret*", rt_dir()));
    rt_run r;
    cr_assert_eq(rt_sh(p, cmd("cat %s; cat %s; cat %s", rt_path("ok.txt"), rt_path("secret.txt"),
                              rt_path("secret-missing.txt")), &r), 0);
    cr_expect(strstr(r.out, "fine\n"), "%s", r.out);
    cr_expect(!strstr(r.out, "top secret"), "%s", r.out);
    char want1[4200], want2[4200];
    snprintf(want1, sizeof want1, "%s: Permission denied", rt_path("secret.txt"));
    snprintf(want2, sizeof want2, "%s: Permission denied", rt_path("secret-missing.txt"));
    cr_expect(strstr(r.out, want1), "%s", r.out);
    cr_expect(strstr(r.out, want2), "%s", r.out);
    cr_expect(!strstr(r.out, "No such file"), "%s", r.out);
    sbx_policy_unref(p);
}

Test(e2e, allow_any_dir_create_write_rename_unlink)
{
    cr_assert_eq(mkdir(rt_path("rw"), 0777), 0);
    cr_assert_eq(chmod(rt_path("rw"), 0777), 0); /* the target is uid 65534 outside */
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_ANY, rt_path("rw"));
    rule(p, SBX_FILES_ALLOW_ANY, cmd("%s/**", rt_path("rw")));
    rt_run r;
    const char *d = rt_path("rw");
    cr_assert_eq(rt_sh(p, cmd("set -e; echo one > %s/a; echo two >> %s/a; mv %s/a %s/b; cat %s/b;"
                              " mkdir %s/sub; echo x > %s/sub/f; rm %s/sub/f; rmdir %s/sub;"
                              " echo keep > %s/k; rm %s/b; echo done",
                              d, d, d, d, d, d, d, d, d, d, d), &r), 0);
    cr_expect_eq(r.code, 0, "%s", r.out);
    cr_expect_str_eq(r.out, "one\ntwo\ndone\n");
    cr_expect(!rt_exists("rw/a"));
    cr_expect(!rt_exists("rw/b"));
    cr_expect(!rt_exists("rw/sub"));
    cr_expect(rt_exists("rw/k"));
    sbx_policy_unref(p);
}

Test(e2e, rename_to_forbidden_refused_nothing_moved)
{
    cr_assert_eq(mkdir(rt_path("rw"), 0777), 0);
    cr_assert_eq(mkdir(rt_path("no"), 0777), 0);
    cr_assert_eq(chmod(rt_path("rw"), 0777), 0);
    cr_assert_eq(chmod(rt_path("no"), 0777), 0); /* only the policy stands in the way */
    rt_write_file("rw/x", "stay\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_ANY, cmd("%s/**", rt_path("rw")));
    rt_run r;
    cr_assert_eq(rt_sh(p, cmd("mv %s/x %s/x", rt_path("rw"), rt_path("no")), &r), 0);
    cr_expect_neq(r.code, 0, "%s", r.out);
    cr_expect(rt_exists("rw/x"));
    cr_expect(!rt_exists("no/x"));
    sbx_policy_unref(p);
}

Test(e2e, ls_of_brokered_directory)
{
    cr_assert_eq(mkdir(rt_path("d"), 0755), 0);
    rt_write_file("d/alpha", "");
    rt_write_file("d/beta", "");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("d"));
    rule(p, SBX_FILES_ALLOW_READONLY, cmd("%s/**", rt_path("d")));
    char *argv[] = { (char *)"/bin/ls", (char *)rt_path("d"), NULL };
    rt_run r;
    cr_assert_eq(rt_run_prog(p, argv, &r), 0);
    cr_expect_eq(r.code, 0, "%s", r.out);
    cr_expect_str_eq(r.out, "alpha\nbeta\n");
    sbx_policy_unref(p);
}

Test(e2e, symlink_in_writable_dir_to_forbidden_file_refused)
{
    cr_assert_eq(mkdir(rt_path("rw"), 0777), 0);
    cr_assert_eq(chmod(rt_path("rw"), 0777), 0);
    rt_write_file("forbidden.txt", "forbidden content\n");
    cr_assert_eq(chmod(rt_path("forbidden.txt"), 0666), 0); /* only the policy stands in the way */
    cr_assert_eq(symlink(rt_path("forbidden.txt"), rt_path("rw/link")), 0);
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_ANY, cmd("%s/**", rt_path("rw")));
    rt_run r;
    cr_assert_eq(rt_sh(p, cmd("cat %s/link; echo x > %s/link", rt_path("rw"), rt_path("rw")), &r), 0);
    cr_expect_neq(r.code, 0);
    cr_expect(!strstr(r.out, "forbidden content"), "%s", r.out);
    FILE *f = fopen(rt_path("forbidden.txt"), "r");
    char line[64] = "";
    cr_assert(fgets(line, sizeof line, f));
    fclose(f);
    cr_expect_str_eq(line, "forbidden content\n");
    sbx_policy_unref(p);
}

Test(e2e, proc_self_root_escape_refused)
{
    rt_write_file("ro.txt", "reachable only through the broker\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    rt_run r;
    cr_assert_eq(rt_sh(p, cmd("cat /proc/self/root%s; cat /proc/1/root/etc/passwd;"
                              " cat /proc/self/cwd/../../etc/shadow", rt_path("ro.txt")), &r), 0);
    cr_expect_neq(r.code, 0);
    cr_expect(!strstr(r.out, "reachable only"), "%s", r.out);
    cr_expect(!strstr(r.out, "root:"), "%s", r.out);
    sbx_policy_unref(p);
}

Test(e2e, python_reads_brokered_file)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no python3");
    rt_write_file("ro.txt", "from python\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    char *argv[] = { (char *)"/usr/bin/python3", (char *)"-S", (char *)"-c",
                     cmd("print(open('%s').read(), end='')", rt_path("ro.txt")), NULL };
    rt_run r;
    cr_assert_eq(rt_run_prog(p, argv, &r), 0, "%s", r.out);
    cr_expect_eq(r.code, 0, "%s", r.out);
    cr_expect_str_eq(r.out, "from python\n");
    sbx_policy_unref(p);
}

Test(e2e, twenty_targets_at_once)
{
    enum { N = 20 };
    rt_write_file("ro.txt", "shared\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    int fds[N];
    uint64_t ids[N];
    char *argv[] = { (char *)"/bin/sh", (char *)"-c",
                     cmd("for i in 1 2 3 4 5; do cat %s; done", rt_path("ro.txt")), NULL };
    for (int i = 0; i < N; i++) {
        int pfd[2];
        cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
        sbx_spawn_options o = { .path = argv[0], .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                                .stdout_fd = pfd[1], .stderr_fd = pfd[1] };
        sbx_target_info info;
        cr_assert_eq(sbx_broker_spawn(B, p, &o, &info), 0, "%s", info.error);
        close(pfd[1]);
        fds[i] = pfd[0];
        ids[i] = info.id;
    }
    for (int i = 0; i < N; i++) {
        char buf[256];
        size_t n = 0;
        ssize_t k;
        while ((k = read(fds[i], buf + n, sizeof buf - 1 - n)) > 0)
            n += (size_t)k;
        buf[n] = '\0';
        close(fds[i]);
        cr_expect_str_eq(buf, "shared\nshared\nshared\nshared\nshared\n", "target %d", i);
        int code = -2;
        cr_expect(sbx_test_wait_end(ids[i], 10000, &code, NULL));
        cr_expect_eq(code, 0);
    }
    sbx_policy_unref(p);
}

static int seccomp_filters(const char *out)
{
    const char *s = strstr(out, "Seccomp_filters:");
    return s ? atoi(s + strlen("Seccomp_filters:")) : -1;
}

Test(e2e, no_brokered_rules_no_interception)
{
    /* Without interception a path outside the view simply does not exist
     * (ENOENT from the target's own kernel); with it, the broker answers
     * (EACCES: no rule). A reporting target's single filter carries the
     * baseline too, so the filter count is the same in all three. */
    rt_write_file("ro.txt", "x\n");
    rt_write_file("other.txt", "x\n");
    sbx_policy *plain = pol();
    sbx_policy *brokered = pol();
    rule(brokered, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    sbx_policy *audited = pol();
    cr_assert_eq(sbx_policy_set_audit(audited, true), 0);
    rt_run a, b, c;
    char script[4096];
    snprintf(script, sizeof script, "grep Seccomp_filters /proc/self/status; cat %s",
             rt_path("other.txt"));
    cr_assert_eq(rt_sh(plain, script, &a), 0);
    cr_assert_eq(rt_sh(brokered, script, &b), 0);
    cr_assert_eq(rt_sh(audited, script, &c), 0);
    int na = seccomp_filters(a.out), nb = seccomp_filters(b.out), nc = seccomp_filters(c.out);
    cr_assert_geq(na, 1, "%s", a.out);
    cr_expect_eq(nb, na, "brokered: %s / plain: %s", b.out, a.out);
    cr_expect_eq(nc, na, "audit: %s / plain: %s", c.out, a.out);
    cr_expect(strstr(a.out, "No such file or directory"), "plain, not intercepted: %s", a.out);
    cr_expect(strstr(b.out, "Permission denied"), "brokered: %s", b.out);
    cr_expect(strstr(c.out, "Permission denied"), "audited: %s", c.out);
    sbx_policy_unref(plain);
    sbx_policy_unref(brokered);
    sbx_policy_unref(audited);
}

/* Baseline denials (EPERM mode) are refused by the broker and reported as
 * SBX_EVENT_DENIED, one per call, with interception or without it. */
static pthread_mutex_t g_den_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_den_unshare, g_den_other;

static void count_denied(const sbx_event *e, void *ud)
{
    (void)ud;
    sbx_test_on_event(e, NULL);
    if (e->type != SBX_EVENT_DENIED)
        return;
    pthread_mutex_lock(&g_den_lock);
    if (e->syscall == SYS_unshare)
        g_den_unshare++;
    else
        g_den_other++;
    pthread_mutex_unlock(&g_den_lock);
}

Test(e2e, baseline_denials_are_reported)
{
    sbx_broker_set_event_callback(B, count_denied, NULL);
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    rt_run r;
    cr_assert_eq(rt_sh(p, "unshare -U true; echo rc=$?; unshare -n true; echo rc=$?", &r), 0);
    cr_expect(strstr(r.out, "Operation not permitted"), "%s", r.out);
    cr_expect(!strstr(r.out, "rc=0"), "%s", r.out);
    pthread_mutex_lock(&g_den_lock);
    int n = g_den_unshare;
    pthread_mutex_unlock(&g_den_lock);
    cr_expect_geq(n, 2, "DENIED events for unshare: %d (other %d): %s", n, g_den_other, r.out);
    /* no interception: refused and reported all the same */
    sbx_policy *plain = pol();
    cr_assert(!sbx_runtime_needs_interception(plain));
    cr_assert_eq(rt_sh(plain, "unshare -U true; echo rc=$?", &r), 0);
    cr_expect(strstr(r.out, "Operation not permitted") && strstr(r.out, "rc=1"), "%s", r.out);
    pthread_mutex_lock(&g_den_lock);
    int n2 = g_den_unshare;
    pthread_mutex_unlock(&g_den_lock);
    cr_expect_eq(n2, n + 1, "no interception: DENIED events for unshare %d -> %d: %s", n, n2, r.out);
    sbx_policy_unref(p);
    sbx_policy_unref(plain);
}

/* Some regular file under /usr/share on this machine (the broker's view). */
static bool share_file(char *out, size_t size)
{
    const char *cands[] = { "/usr/share/common-licenses/GPL-3", "/usr/share/dict/words",
                            "/usr/share/misc/magic", "/usr/share/zoneinfo/UTC",
                            "/usr/share/perl5/Debian/Debhelper.pm" };
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        struct stat st;
        if (stat(cands[i], &st) == 0 && S_ISREG(st.st_mode)) {
            snprintf(out, size, "%s", cands[i] + strlen("/usr/share/"));
            return true;
        }
    }
    return false;
}

Test(e2e, deny_inside_native_view_is_enforced)
{
    /* /usr is in the native view; a deny carve-out inside it must hold in
     * every spelling (absolute, /proc/self/root, .. through a symlinked
     * tree, relative to a directory fd). */
    char rel[256];
    if (!share_file(rel, sizeof rel))
        cr_skip_test("no known file under /usr/share");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_DENY, "/usr/share");
    rule(p, SBX_FILES_DENY, "/usr/share/**");
    rt_run r;
    cr_assert_eq(rt_sh(p, cmd("ls /usr/share >/dev/null && echo LISTED;"
                              " cat /usr/share/%s >/dev/null && echo READ1;"
                              " cat /proc/self/root/usr/share/%s >/dev/null && echo READ2;"
                              " cat /bin/../share/%s >/dev/null && echo READ3;"
                              " cat /usr/lib/../share/%s >/dev/null && echo READ4;"
                              " cat /lib/../share/%s >/dev/null && echo READ5;"
                              " echo end", rel, rel, rel, rel, rel), &r), 0);
    cr_expect(!strstr(r.out, "LISTED"), "%s", r.out);
    cr_expect(!strstr(r.out, "READ"), "%s", r.out);
    cr_expect(strstr(r.out, "end"), "%s", r.out);
    /* python opens relative to a directory fd */
    if (access("/usr/bin/python3", X_OK) == 0) {
        char *argv[] = { (char *)"/usr/bin/python3", (char *)"-S", (char *)"-c",
                         cmd("import os\nd=os.open('/usr', os.O_RDONLY)\n"
                             "try:\n os.open('share/%s', os.O_RDONLY, dir_fd=d); print('READ6')\n"
                             "except OSError as e: print('refused', e.errno)", rel), NULL };
        cr_assert_eq(rt_run_prog(p, argv, &r), 0);
        cr_expect(strstr(r.out, "refused 13"), "%s", r.out);
    }
    /* the rest of the view still works */
    char *argv[] = { (char *)"/bin/cat", (char *)"/etc/ld.so.conf", NULL };
    cr_assert_eq(rt_run_prog(p, argv, &r), 0);
    cr_expect_eq(r.code, 0, "%s", r.out);
    sbx_policy_unref(p);
}

Test(e2e, view_beneath_tmp_is_visible)
{
    /* CI may clone under /tmp: a view there must not be hidden by the
     * target's private /tmp. */
    char dir[] = "/tmp/sbx-rt-view-XXXXXX";
    cr_assert(mkdtemp(dir));
    chmod(dir, 0755);
    char file[64];
    snprintf(file, sizeof file, "%s/f.txt", dir);
    FILE *f = fopen(file, "w");
    fputs("seen\n", f);
    fclose(f);
    chmod(file, 0644);
    sbx_policy *p = pol();
    cr_assert_eq(sbx_policy_add_view(p, dir, SBX_VIEW_READONLY), 0);
    char *argv[] = { (char *)"/bin/cat", file, NULL };
    rt_run r;
    int rc = rt_run_prog(p, argv, &r);
    /* and /tmp itself is still the private, writable tmpfs */
    rt_run w;
    int rc2 = rt_sh(p, "echo t > /tmp/own && cat /tmp/own", &w);
    unlink(file);
    rmdir(dir);
    cr_assert_eq(rc, 0, "%s", r.out);
    cr_expect_eq(r.code, 0, "%s", r.out);
    cr_expect_str_eq(r.out, "seen\n");
    cr_assert_eq(rc2, 0);
    cr_expect_str_eq(w.out, "t\n");
    sbx_policy_unref(p);
}

Test(e2e, continue_only_when_landlock_confines)
{
    /* The notify server answers CONTINUE only for a Landlock-confined
     * target. A chdir the kernel cannot be left to is performed through
     * the target's init, which shares only the program's own cwd: the
     * shell's `cd /usr` works at every level, a subshell's (a fork) only
     * by CONTINUE, so with Landlock (limited level and up) and not without
     * it (interactive), while brokered reads still work. */
    rt_write_file("ro.txt", "ok\n");
    sbx_policy *ll = pol();
    rule(ll, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    sbx_policy *noll = pol();
    rule(noll, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    cr_assert_eq(sbx_policy_set_lockdown_level(noll, SBX_LOCKDOWN_INTERACTIVE), 0);
    const char *script = cmd("cat %s; (cd /usr && echo SUB); cd /usr && pwd", rt_path("ro.txt"));
    rt_run a, b;
    cr_assert_eq(rt_sh(ll, script, &a), 0);
    cr_assert_eq(rt_sh(noll, script, &b), 0);
    cr_expect_str_eq(a.out, "ok\nSUB\n/usr\n");
    cr_expect(strstr(b.out, "ok\n"), "%s", b.out);
    cr_expect(!strstr(b.out, "SUB"), "%s", b.out);
    cr_expect(strstr(b.out, "/usr\n"), "%s", b.out);
    sbx_policy_unref(ll);
    sbx_policy_unref(noll);
}

/* An unmodified shell cds into a brokered directory (notify backend: the
 * target's init makes it the program's cwd): pwd names it, relative
 * reads and ls work there, a relative escape stays denied. */
Test(e2e, cd_into_a_brokered_directory)
{
    rt_write_file("ro.txt", "ok\n");
    rt_write_file("secret.txt", "no\n");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", rt_path("ro.txt"));
    *strrchr(dir, '/') = '\0';
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, dir);
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/ro.txt", dir);
    rule(p, SBX_FILES_ALLOW_READONLY, pat);
    rt_run r;
    cr_assert_eq(rt_sh(p, cmd("cd %s && pwd && cat ro.txt && ls ro.txt && cat secret.txt 2>&1;"
                              " cat ../secret.txt 2>&1; true", dir),
                       &r),
                 0);
    char want[8400];
    snprintf(want, sizeof want, "%s\nok\nro.txt\n", dir);
    cr_expect(!strncmp(r.out, want, strlen(want)), "%s", r.out);
    cr_expect(strstr(r.out, "secret.txt: Permission denied"), "%s", r.out);
    cr_expect(!strstr(r.out, "no\n"), "%s", r.out);
    sbx_policy_unref(p);
}

/* A broker without CAP_SYS_PTRACE cannot kcmp the target's init (never
 * exec'd, not dumpable): it compares the caller with the program
 * instead. The shell's cd still works; a subshell's (a fork, its own
 * fs_struct) is still refused and leaves the shell's cwd alone. */
Test(e2e, cd_without_cap_sys_ptrace)
{
    /* This thread's capabilities pass to the notify thread it starts. */
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct d[2];
    cr_assert_eq(syscall(SYS_capget, &h, d), 0);
    d[CAP_SYS_PTRACE / 32].effective &= ~(1u << (CAP_SYS_PTRACE % 32));
    d[CAP_SYS_PTRACE / 32].permitted &= ~(1u << (CAP_SYS_PTRACE % 32));
    cr_assert_eq(syscall(SYS_capset, &h, d), 0);
    rt_write_file("ro.txt", "ok\n");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", rt_path("ro.txt"));
    *strrchr(dir, '/') = '\0';
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, dir);
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/**", dir);
    rule(p, SBX_FILES_ALLOW_READONLY, pat);
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    rt_run r;
    cr_assert_eq(rt_sh(p, cmd("cd %s && pwd && cat ro.txt; (cd sub && echo SUB); pwd", dir), &r), 0);
    char want[8400];
    snprintf(want, sizeof want, "%s\nok\n", dir);
    cr_expect(!strncmp(r.out, want, strlen(want)), "%s", r.out);
    cr_expect(!strstr(r.out, "SUB"), "%s", r.out);
    snprintf(want, sizeof want, "\n%s\n", dir);
    cr_expect(strstr(r.out + 1, want), "the shell's cwd after the subshell: %s", r.out);
    sbx_policy_unref(p);
}

/* The view's own layout is listable natively under a brokering policy:
 * "/" and the directories that hold view mounts ("/etc" for ld.so.cache)
 * are the target's tmpfs, not host objects. A rule still wins for them,
 * and a host directory no rule names stays denied. */
Test(e2e, view_root_listable_host_dirs_still_denied)
{
    rt_write_file("ro.txt", "x\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    rt_run r;
    cr_assert_eq(rt_sh(p, "ls /; echo ===; ls -d /etc; echo ===; ls /home 2>&1; ls /root 2>&1", &r), 0);
    cr_expect(strstr(r.out, "usr\n") && strstr(r.out, "proc\n"), "%s", r.out);
    cr_expect(strstr(r.out, "===\n/etc\n===\n"), "%s", r.out);
    cr_expect(strstr(r.out, "/home': Permission denied"), "%s", r.out);
    cr_expect(strstr(r.out, "/root': Permission denied"), "%s", r.out);
    /* an explicit deny on the view root itself keeps its meaning */
    sbx_policy *q = pol();
    rule(q, SBX_FILES_ALLOW_READONLY, rt_path("ro.txt"));
    rule(q, SBX_FILES_DENY, "/etc");
    cr_assert_eq(rt_sh(q, "ls -d /etc 2>&1", &r), 0);
    cr_expect(strstr(r.out, "Permission denied"), "%s", r.out);
    sbx_policy_unref(q);
    sbx_policy_unref(p);
}

/* openat relative to a directory fd the broker opened (tar -C, find): the
 * dirfd's name is checked from the broker's root, whatever the broker's
 * own cwd (it once resolved it against the cwd and answered ENOENT). */
Test(e2e, openat_relative_to_brokered_dirfd_any_broker_cwd)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip_test("no python3");
    char sub[4096];
    snprintf(sub, sizeof sub, "%s", rt_path("tree"));
    cr_assert_eq(mkdir(sub, 0755), 0);
    rt_write_file("tree/f", "via dirfd\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, cmd("%s/**", rt_dir()));
    cr_assert_eq(chdir("/usr"), 0); /* the broker's cwd: unrelated to the tree */
    char *argv[] = { (char *)"/usr/bin/python3", (char *)"-S", (char *)"-c",
                     cmd("import os\nd = os.open('%s', os.O_RDONLY | os.O_DIRECTORY)\n"
                         "f = os.open('f', os.O_RDONLY, dir_fd=d)\n"
                         "print(os.read(f, 100).decode(), end='')", sub),
                     NULL };
    rt_run r;
    cr_assert_eq(rt_run_prog(p, argv, &r), 0, "%s", r.out);
    cr_expect_eq(r.code, 0, "%s", r.out);
    cr_expect_str_eq(r.out, "via dirfd\n");
    sbx_policy_unref(p);
}

/* A background process still making brokered calls when the program
 * exits: init's death takes its pid namespace along, the notify thread
 * (no stop fd: it waits in the listener's RECV) returns as the listener
 * hangs up, and the broker goes on serving the next target. */
Test(e2e, background_brokered_calls_do_not_hold_the_teardown)
{
    rt_write_file("bg.txt", "bg\n");
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, rt_path("bg.txt"));
    rt_run r;
    const char *bg = rt_path("bg.txt");
    cr_assert_eq(rt_sh(p, cmd("(while :; do cat %s >/dev/null; done) & sleep 0.2; echo started", bg),
                       &r),
                 0);
    cr_expect_eq(r.code, 0, "%s", r.out);
    cr_expect_str_eq(r.out, "started\n");
    cr_assert_eq(rt_sh(p, cmd("cat %s", bg), &r), 0);
    cr_expect_str_eq(r.out, "bg\n");
    sbx_policy_unref(p);
}

static void *quiesce_main(void *arg)
{
    (void)arg;
    (void)sbx_broker_wait_quiescent(B);
    return NULL;
}

/* A target blocked in a brokered open of a FIFO nobody writes, killed
 * with its program: the broker's serving thread must not stay in that
 * open forever (it would hold the target's release, and so the pool
 * thread and sbx_broker_free). */
Test(e2e, a_brokered_fifo_open_does_not_outlive_its_target)
{
    const char *f = rt_path("fifo");
    (void)unlink(f);
    cr_assert_eq(mkfifo(f, 0644), 0);
    sbx_policy *p = pol();
    rule(p, SBX_FILES_ALLOW_READONLY, f);
    rt_run r;
    cr_assert_eq(rt_sh(p, cmd("(cat %s >/dev/null &); sleep 0.3; echo started", f), &r), 0);
    cr_expect_str_eq(r.out, "started\n");
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, quiesce_main, NULL), 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    int jr = pthread_timedjoin_np(t, NULL, &dl);
    if (jr != 0) {
        /* Unblock it so the suite can end: a writer opens the FIFO. */
        int w = open(f, O_WRONLY | O_NONBLOCK);
        pthread_join(t, NULL);
        if (w >= 0)
            close(w);
    }
    cr_expect_eq(jr, 0, "the ended target's release still waits in its FIFO open");
    unlink(f);
    sbx_policy_unref(p);
}
