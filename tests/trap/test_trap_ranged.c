/* Ranged mode (the preload shim over the broker's notify filter): only
 * calls made from the given code ranges trap; calls from elsewhere pass
 * the filter (refusals still apply) and sbx_trap_forward hands a call down
 * that way; an exec'd program inherits the filter but, its code lying
 * elsewhere, runs unharmed — in unranged mode the same exec dies. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target/trap/trap.h"
#include "trap_lsan.h"

static atomic_int handled;

static long h_getppid(const sbx_trap_call *call, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&handled, 1);
    if (call->args[0] == 1)
        return sbx_trap_forward(call); /* hand it down: the kernel answers */
    return 4242;
}

typedef struct text {
    sbx_trap_range r[SBX_TRAP_MAX_RANGES];
    size_t n;
} text;

static text libc_text(void)
{
    text t;
    t.n = sbx_trap_code_ranges((uintptr_t)&syscall, t.r);
    cr_assert_gt(t.n, 0, "libc's code not found");
    return t;
}

static void install_ranged(void)
{
    cr_assert_eq(sbx_trap_register(SYS_getppid, h_getppid, NULL), 0);
    cr_assert_eq(sbx_trap_refuse(SYS_mkdirat, EROFS), 0);
    text t = libc_text();
    sbx_trap_options o = { .allow_native = true, .ranges = t.r, .n_ranges = t.n };
    cr_assert_eq(sbx_trap_install(&o), 0);
}

Test(trap_ranged, only_calls_from_the_ranges_trap)
{
    long real = (long)getppid();
    install_ranged();
    cr_expect_eq(syscall(SYS_getppid, 0), 4242, "libc's wrapper is in the range");
    cr_expect_eq(atomic_load(&handled), 1);
    cr_expect_eq(sbx_trap_syscall6(SYS_getppid, 0, 0, 0, 0, 0, 0), real,
                 "a call from outside the ranges is not trapped");
    cr_expect_eq(atomic_load(&handled), 1);
}

Test(trap_ranged, forward_hands_the_call_to_the_kernel)
{
    install_ranged();
    pid_t real = (pid_t)sbx_trap_syscall6(SYS_getppid, 0, 0, 0, 0, 0, 0);
    cr_expect_eq(syscall(SYS_getppid, 1), real);
    cr_expect_eq(atomic_load(&handled), 1, "trapped once, then forwarded past the filter");
}

Test(trap_ranged, refusals_hold_wherever_the_call_comes_from)
{
    install_ranged();
    cr_expect_eq(syscall(SYS_mkdirat, AT_FDCWD, "/nonexistent-sbx/x", 0700), -1);
    cr_expect_eq(errno, EROFS);
    cr_expect_eq(sbx_trap_syscall6(SYS_mkdirat, (uint64_t)AT_FDCWD,
                                   (uint64_t)(uintptr_t)"/nonexistent-sbx/x", 0700, 0, 0,
                                   SBX_TRAP_MAGIC),
                 -EROFS);
}

/* exec sh after installing: with ranges it runs (its libc is mapped
 * elsewhere); without, its first trapped call (dash asks getppid for
 * $PPID) has no handler and the kernel kills it with SIGSYS. */
static int exec_true(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "/bin/true && exit 7", (char *)NULL);
        _exit(126);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}

Test(trap_ranged, an_execd_program_runs_under_the_inherited_filter)
{
    install_ranged();
    int st = exec_true();
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 7, "status %#x", st);
}

Test(trap_ranged, unranged_the_same_exec_is_killed)
{
    cr_assert_eq(sbx_trap_register(SYS_getppid, h_getppid, NULL), 0);
    sbx_trap_options o = { .allow_native = true };
    cr_assert_eq(sbx_trap_install(&o), 0);
    int st = exec_true();
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status %#x", st);
}

Test(trap_ranged, bad_ranges_are_refused)
{
    cr_assert_eq(sbx_trap_register(SYS_getppid, h_getppid, NULL), 0);
    sbx_trap_range self = { (uintptr_t)&sbx_trap_syscall6, (uintptr_t)&sbx_trap_syscall6 + 16 };
    sbx_trap_options o = { .ranges = &self, .n_ranges = 1 };
    cr_expect_eq(sbx_trap_install(&o), -EINVAL, "a range holding the engine's own syscall");
    sbx_trap_range empty = { 0x1000, 0x1000 };
    o.ranges = &empty;
    cr_expect_eq(sbx_trap_install(&o), -EINVAL);
    o.n_ranges = SBX_TRAP_MAX_RANGES + 1;
    cr_expect_eq(sbx_trap_install(&o), -EINVAL);
    cr_expect(!sbx_trap_installed());
    text t = libc_text();
    o = (sbx_trap_options){ .ranges = t.r, .n_ranges = t.n };
    cr_expect_eq(sbx_trap_install(&o), 0, "a failed install can be retried");
}

/* A range crossing a 4 GiB boundary is split in two pieces: both halves
 * must trap. Use the real libc range, widened downwards across the
 * boundary below it, and check a libc call still traps. */
Test(trap_ranged, a_range_across_a_4gib_boundary)
{
    cr_assert_eq(sbx_trap_register(SYS_getppid, h_getppid, NULL), 0);
    text t = libc_text();
    sbx_trap_range r = t.r[0];
    for (size_t i = 1; i < t.n; i++) {
        if (t.r[i].start < r.start)
            r.start = t.r[i].start;
        if (t.r[i].end > r.end)
            r.end = t.r[i].end;
    }
    uintptr_t boundary = r.start & ~(uintptr_t)0xffffffffu;
    if (boundary == 0 || (uintptr_t)&sbx_trap_syscall6 >= boundary - 0x1000)
        cr_skip_test("no room below libc for the widened range");
    r.start = boundary - 0x1000;
    sbx_trap_options o = { .allow_native = true, .ranges = &r, .n_ranges = 1 };
    cr_assert_eq(sbx_trap_install(&o), 0);
    cr_expect_eq(syscall(SYS_getppid, 0), 4242);
}
