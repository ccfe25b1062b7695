/* The child-runner helper must itself be trustworthy: later sandbox tests
 * rely on it to tell "killed by SIGSYS" from "exited 0". */
#include <criterion/criterion.h>
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sbx_test.h"

static void exit_with(void *arg) { _exit((int)(long)arg); }
static void returns(void *arg) { (void)arg; }
static void sleeps(void *arg) { (void)arg; for (;;) pause(); }
static void aborts(void *arg) { (void)arg; signal(SIGABRT, SIG_DFL); abort(); }

static void dies_by_sigsys(void *arg)
{
    (void)arg;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(getppid), 0) ||
        seccomp_load(ctx))
        _exit(99);
    syscall(SYS_getppid);
    _exit(0);
}

Test(child, reports_exit_codes)
{
    sbx_test_status st = sbx_test_run_child(exit_with, (void *)3L, 0);
    cr_expect(st.exited && st.code == 3 && !st.signaled && !st.timed_out);
    st = sbx_test_run_child(returns, NULL, 0);
    cr_expect(st.exited && st.code == 0);
}

Test(child, reports_signals)
{
    sbx_test_status st = sbx_test_run_child(aborts, NULL, 0);
    cr_expect(st.signaled && st.sig == SIGABRT && !st.exited);
    st = sbx_test_run_child(dies_by_sigsys, NULL, 0);
    char buf[64];
    sbx_test_status_str(&st, buf, sizeof buf);
    cr_expect(st.signaled && st.sig == SIGSYS, "%s", buf);
    cr_expect_str_eq(buf, "killed by SIGSYS");
}

Test(child, kills_and_reaps_on_timeout)
{
    sbx_test_status st = sbx_test_run_child(sleeps, NULL, 100);
    cr_expect(st.timed_out);
    cr_expect(st.signaled && st.sig == SIGKILL);
    /* reaped: no such process any more */
    cr_expect_eq(kill(st.pid, 0), -1);
    cr_expect_eq(errno, ESRCH);
}

Test(try_syscall, returns_negative_errno)
{
    cr_expect_eq(sbx_test_try_syscall(SYS_close, -1, 0, 0, 0, 0, 0), -EBADF);
    cr_expect_eq(sbx_test_try_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0), getpid());
}

Test(tmpdir, make_and_remove_tree)
{
    char *d = sbx_test_mkdtemp("helpers");
    cr_assert_not_null(d);
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/a/b", d);
    char a[4096];
    snprintf(a, sizeof a, "%s/a", d);
    cr_assert_eq(mkdir(a, 0700), 0);
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_expect_eq(sbx_test_rmtree(d), 0);
    struct stat sb;
    cr_expect_eq(stat(d, &sb), -1);
    free(d);
}

/* The end log answers for the target it was asked about, code and signal
 * kept apart, and gives up at its deadline. */
Test(ends, records_and_times_out)
{
    sbx_event e = { .type = SBX_EVENT_STARTED, .target_id = 7 };
    sbx_test_on_event(&e, NULL);
    int code = 99, sig = 99;
    cr_assert(!sbx_test_wait_end(7, 50, &code, &sig), "a start is not an end");
    e = (sbx_event){ .type = SBX_EVENT_KILLED, .target_id = 7, .signal = SIGKILL };
    sbx_test_on_event(&e, NULL);
    e = (sbx_event){ .type = SBX_EVENT_EXITED, .target_id = 8, .code = 3 };
    sbx_test_on_event(&e, NULL);
    cr_assert(sbx_test_wait_end(7, 1000, &code, &sig));
    cr_assert_eq(code, -1);
    cr_assert_eq(sig, SIGKILL);
    cr_assert(sbx_test_wait_end(8, 1000, &code, NULL));
    cr_assert_eq(code, 3);
    cr_assert(!sbx_test_wait_end(9, 50, NULL, NULL));
}

/* read_all stops at EOF or when the buffer is full, always terminated. */
Test(read_all, stops_at_eof_or_full)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "abcdef", 6), 6);
    close(p[1]);
    char small[4];
    cr_assert_eq(sbx_test_read_all(p[0], small, sizeof small), 3);
    cr_assert_str_eq(small, "abc");
    char big[16];
    cr_assert_eq(sbx_test_read_all(p[0], big, sizeof big), 3);
    cr_assert_str_eq(big, "def");
    cr_assert_eq(sbx_test_read_all(p[0], big, sizeof big), 0);
    cr_assert_str_eq(big, "");
    close(p[0]);
}
