/* Trap engine without a broker: registry rules, the filter (trap, refuse,
 * magic re-issue, other ABIs), the SIGSYS handler's register and errno
 * semantics, and the program's attempts to turn interception off. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sbx/error.h>

#include "sbx_test.h"
#include "target/trap/trap.h"
#include "trap_lsan.h"

static atomic_int getpid_calls, openat_calls;
static _Atomic uint64_t last_args[6];

static long h_getpid(const sbx_trap_call *call, void *ctx)
{
    atomic_fetch_add(&getpid_calls, 1);
    for (int i = 0; i < 6; i++)
        atomic_store(&last_args[i], call->args[i]);
    return (long)(intptr_t)ctx;
}

/* openat: paths under /etc/ fail with the errno in ctx; anything else
 * natively (the test harness and sanitizers keep working). */
static long h_openat(const sbx_trap_call *call, void *ctx)
{
    atomic_fetch_add(&openat_calls, 1);
    const char *p = (const char *)(uintptr_t)call->args[1];
    if (p && strncmp(p, "/etc/", 5) == 0)
        return -(long)(intptr_t)ctx;
    return sbx_trap_native(call);
}

static void setup(bool native)
{
    cr_assert_eq(sbx_trap_register(SYS_getppid, h_getpid, (void *)(intptr_t)4242), 0);
    cr_assert_eq(sbx_trap_register(SYS_openat, h_openat, (void *)(intptr_t)EACCES), 0);
    cr_assert_eq(sbx_trap_refuse(SYS_mkdir, EPERM), 0);
    sbx_trap_options o = { .allow_native = native };
    cr_assert_eq(sbx_trap_install(&o), 0);
    cr_assert(sbx_trap_installed());
}

Test(trap_engine, registry_rejects_bad_input_and_freezes)
{
    cr_expect_eq(sbx_trap_register(-1, h_getpid, NULL), -EINVAL);
    cr_expect_eq(sbx_trap_register(SBX_TRAP_MAX_NR, h_getpid, NULL), -EINVAL);
    cr_expect_eq(sbx_trap_register(SYS_getppid, NULL, NULL), -EINVAL);
    cr_expect_eq(sbx_trap_register(SYS_rt_sigaction, h_getpid, NULL), -EPERM);
    cr_expect_eq(sbx_trap_refuse(SYS_mkdir, 0), -EINVAL);
    cr_expect_eq(sbx_trap_refuse(SYS_mkdir, 5000), -EINVAL);
    cr_expect_eq(sbx_trap_register(SYS_getppid, h_getpid, NULL), 0);
    cr_expect_eq(sbx_trap_register(SYS_getppid, h_getpid, NULL), -EEXIST);
    cr_expect_eq(sbx_trap_refuse(SYS_getppid, EPERM), -EEXIST);
    cr_assert_not(sbx_trap_installed());
    cr_assert_eq(sbx_trap_install(NULL), 0);
    cr_expect_eq(sbx_trap_install(NULL), SBX_ERROR_ALREADY_INIT);
    cr_expect_eq(sbx_trap_register(SYS_getppid, h_getpid, NULL), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_trap_refuse(SYS_getppid, EPERM), SBX_ERROR_FROZEN);
}

Test(trap_engine, handler_result_becomes_the_syscall_result_with_all_args)
{
    setup(true);
    /* a raw syscall with six distinct args: the handler sees each in place
     * (the 4th from R10) */
    long r = syscall(SYS_getppid, 11L, 22L, 33L, 44L, 55L, 66L);
    cr_expect_eq(r, 4242);
    cr_expect_eq(atomic_load(&getpid_calls), 1);
    uint64_t want[6] = { 11, 22, 33, 44, 55, 66 };
    for (int i = 0; i < 6; i++)
        cr_expect_eq(atomic_load(&last_args[i]), want[i], "arg %d", i);
    cr_expect_eq(getppid(), 4242);
    sbx_trap_stats st;
    sbx_trap_get_stats(&st);
    cr_expect_eq(st.trapped, 2);
    cr_expect_eq(st.unhandled, 0);
}

Test(trap_engine, errno_semantics_as_libc_sees_them)
{
    setup(true);
    errno = 1234;
    int fd = open("/dev/null", O_RDONLY);
    cr_assert_geq(fd, 0, "errno %d", errno);
    cr_expect_eq(errno, 1234, "a successful trapped call keeps errno");
    cr_expect_eq(atomic_load(&openat_calls), 1);
    close(fd);
    errno = 0;
    cr_expect_eq(open("/etc/hostname", O_RDONLY), -1);
    cr_expect_eq(errno, EACCES);
    errno = 0;
    cr_expect_null(fopen("/etc/passwd", "r"));
    cr_expect_eq(errno, EACCES);
}

Test(trap_engine, magic_reissue_is_native_when_allowed)
{
    setup(true);
    /* the target's own code may use the magic (bounded by Landlock, see
     * docs/trap.md): not trapped, not counted */
    long fd = sbx_trap_syscall6(SYS_openat, (uint64_t)AT_FDCWD, (uint64_t)(uintptr_t)"/etc/hostname",
                                O_RDONLY, 0, 0, SBX_TRAP_MAGIC);
    cr_expect_geq(fd, 0);
    cr_expect_eq(atomic_load(&openat_calls), 0);
    close((int)fd);
    /* a near-miss of the magic is trapped */
    fd = sbx_trap_syscall6(SYS_openat, (uint64_t)AT_FDCWD, (uint64_t)(uintptr_t)"/etc/hostname",
                           O_RDONLY, 0, 0, SBX_TRAP_MAGIC ^ (1ull << 63));
    cr_expect_eq(fd, -EACCES);
    cr_expect_eq(atomic_load(&openat_calls), 1);
}

Test(trap_engine, without_landlock_magic_is_trapped_and_native_refused)
{
    setup(false);
    long fd = sbx_trap_syscall6(SYS_openat, (uint64_t)AT_FDCWD, (uint64_t)(uintptr_t)"/etc/hostname",
                                O_RDONLY, 0, 0, SBX_TRAP_MAGIC);
    cr_expect_eq(fd, -EACCES);
    cr_expect_eq(atomic_load(&openat_calls), 1);
    /* the handler's native re-issue is refused: every call must be brokered */
    errno = 0;
    cr_expect_eq(open("/dev/null", O_RDONLY), -1);
    cr_expect_eq(errno, EPERM);
    cr_expect_eq(atomic_load(&openat_calls), 2);
}

Test(trap_engine, refused_syscalls_fail_in_the_kernel_even_with_magic)
{
    setup(true);
    errno = 0;
    cr_expect_eq(mkdir("/tmp/sbx-trap-should-not-exist", 0700), -1);
    cr_expect_eq(errno, EPERM);
    cr_expect_eq(sbx_trap_syscall6(SYS_mkdir, (uint64_t)(uintptr_t)"/tmp/sbx-trap-should-not-exist",
                                   0700, 0, 0, 0, SBX_TRAP_MAGIC),
                 -EPERM);
    struct stat st;
    cr_expect_eq(stat("/tmp/sbx-trap-should-not-exist", &st), -1);
    sbx_trap_stats s;
    sbx_trap_get_stats(&s);
    cr_expect_eq(s.trapped, 0, "refusal needs no signal");
}

static void ignore_handler(int sig)
{
    (void)sig;
}

Test(trap_engine, program_cannot_replace_the_sigsys_handler)
{
    setup(true);
    struct sigaction sa = { .sa_handler = ignore_handler };
    errno = 0;
    cr_expect_eq(sigaction(SIGSYS, &sa, NULL), -1);
    cr_expect_eq(errno, EINVAL);
    sa.sa_handler = SIG_IGN;
    cr_expect_eq(sigaction(SIGSYS, &sa, NULL), -1);
    cr_expect_eq(signal(SIGSYS, SIG_DFL), SIG_ERR);
    /* querying works, and shows the engine's handler is still there */
    struct sigaction cur;
    cr_expect_eq(sigaction(SIGSYS, NULL, &cur), 0);
    cr_expect(cur.sa_flags & SA_SIGINFO);
    cr_expect_neq((void *)cur.sa_sigaction, NULL);
    /* other signals are the program's */
    cr_expect_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    cr_expect_eq(getppid(), 4242, "interception still works");
}

static void block_then_trap(void *arg)
{
    (void)arg;
    setup(true);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGSYS);
    sigprocmask(SIG_BLOCK, &s, NULL);
    syscall(SYS_getppid);
    _exit(7); /* not reached: the kernel forces a blocked trap signal to SIG_DFL */
}

Test(trap_engine, blocking_sigsys_kills_on_the_next_trapped_call)
{
    sbx_test_status st = sbx_test_run_child(block_then_trap, NULL, 5000);
    char buf[64];
    cr_expect(st.signaled && st.sig == SIGSYS, "%s", sbx_test_status_str(&st, buf, sizeof buf));
}

static void i386_open(void *arg)
{
    (void)arg;
    setup(true);
    long ret;
    /* i386 open(2) is 5: through int 0x80 the number means something else
     * than on x86_64; the filter's arch check must stop it. */
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(5L), "b"(0L), "c"(0L), "d"(0L) : "memory");
    _exit(7);
}

static void x32_open(void *arg)
{
    (void)arg;
    setup(true);
    syscall(SYS_openat | 0x40000000L, AT_FDCWD, "/etc/hostname", O_RDONLY, 0);
    _exit(7);
}

Test(trap_engine, other_abis_are_killed_not_allowed)
{
    char buf[64];
    sbx_test_status st = sbx_test_run_child(i386_open, NULL, 5000);
    cr_expect(st.signaled && st.sig == SIGSYS, "i386: %s", sbx_test_status_str(&st, buf, sizeof buf));
    st = sbx_test_run_child(x32_open, NULL, 5000);
    cr_expect(st.signaled && st.sig == SIGSYS, "x32: %s", sbx_test_status_str(&st, buf, sizeof buf));
}

Test(trap_engine, foreign_sigsys_is_ignored)
{
    setup(true);
    long pid = sbx_trap_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
    long tid = sbx_trap_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
    cr_expect_eq(sbx_trap_syscall6(SYS_tgkill, (uint64_t)pid, (uint64_t)tid, SIGSYS, 0, 0, 0), 0);
    sbx_trap_stats st;
    sbx_trap_get_stats(&st);
    cr_expect_eq(st.foreign, 1);
}

static atomic_int go;
static atomic_long thread_result;

static void *early_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&go))
        usleep(1000);
    atomic_store(&thread_result, syscall(SYS_getppid));
    return NULL;
}

Test(trap_engine, threads_started_before_install_are_covered)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, early_thread, NULL), 0);
    setup(true);
    atomic_store(&go, 1);
    pthread_join(t, NULL);
    cr_expect_eq(atomic_load(&thread_result), 4242);
}

Test(trap_engine, result_mapping)
{
    cr_expect_eq(sbx_trap_result_from(-ENOENT), -ENOENT);
    cr_expect_eq(sbx_trap_result_from(5), 5);
    cr_expect_eq(sbx_trap_result_from(SBX_ERROR_CHANNEL_ERROR), -EIO);
    cr_expect_eq(sbx_trap_result_from(SBX_ERROR_TOO_LARGE), -ENAMETOOLONG);
    cr_expect_eq(sbx_trap_result_from(SBX_ERROR_DENIED), -EACCES);
    cr_expect_eq(sbx_trap_result_from(SBX_ERROR_INVALID_IPC), -EIO);
}

static atomic_long usr1_result;
static void usr1_makes_a_trapped_call(int sig)
{
    (void)sig;
    atomic_store(&usr1_result, syscall(SYS_getppid));
}

/* A handler whose sa_mask blocks "everything" can still make trapped
 * calls: the engine takes SIGSYS out of the mask it installs. */
Test(trap_engine, sigsys_is_kept_out_of_handler_masks)
{
    setup(false);
    struct sigaction sa = { .sa_handler = usr1_makes_a_trapped_call };
    sigfillset(&sa.sa_mask);
    struct sigaction old;
    cr_assert_eq(sigaction(SIGUSR1, &sa, &old), 0);
    struct sigaction cur;
    cr_assert_eq(sigaction(SIGUSR1, NULL, &cur), 0);
    cr_expect_eq((void *)cur.sa_handler, (void *)usr1_makes_a_trapped_call);
    cr_expect_eq(sigismember(&cur.sa_mask, SIGSYS), 0);
    cr_expect_eq(sigismember(&cur.sa_mask, SIGUSR2), 1);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_expect_eq(atomic_load(&usr1_result), 4242);
    /* SIGSYS stays refused however its number is spelled */
    cr_expect_eq(sbx_trap_syscall6(SYS_rt_sigaction, (1ull << 32) | SIGSYS, (uint64_t)(uintptr_t)&cur, 0, 8,
                                   0, 0),
                 -EINVAL);
    cr_expect_eq(sigaction(SIGSYS, NULL, &cur), 0);
    cr_expect(cur.sa_flags & SA_SIGINFO, "the engine's handler is still installed");
}
