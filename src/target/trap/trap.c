/* sbx — the trap backend's engine: registry, filter, SIGSYS handler and
 * native re-issue (see trap.h for the model and docs/trap.md for the
 * security argument). */
#include "target/trap/trap.h"

#include <errno.h>
#include <linux/audit.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include <sbx/error.h>

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

typedef struct trap_entry {
    sbx_trap_handler fn;
    void *ctx;
    int refuse_errno; /* > 0: refused in the filter */
} trap_entry;

/* Written only before install (single-threaded init), read-only after:
 * the handler reads it without a lock. */
static trap_entry registry[SBX_TRAP_MAX_NR];
static atomic_bool installed;
static sbx_ipc_client *g_ipc;
static const void *g_policy;
static size_t g_policy_size;
static bool g_native;

static atomic_uint_fast64_t st_trapped, st_unhandled, st_nested, st_foreign;
/* Per-thread nesting depth. initial-exec: a TLS access in a signal handler
 * must not go through __tls_get_addr (which may allocate). */
static __thread unsigned trap_depth __attribute__((tls_model("initial-exec")));

static int check_nr(int nr)
{
    if (nr < 0 || nr >= SBX_TRAP_MAX_NR)
        return -EINVAL;
    /* rt_sigaction is the engine's (see engine_sigaction). */
    if (nr == SYS_rt_sigaction)
        return -EPERM;
    if (atomic_load(&installed))
        return SBX_ERROR_FROZEN;
    if (registry[nr].fn || registry[nr].refuse_errno)
        return -EEXIST;
    return 0;
}

int sbx_trap_register(int nr, sbx_trap_handler fn, void *ctx)
{
    if (!fn)
        return -EINVAL;
    int r = check_nr(nr);
    if (r < 0)
        return r;
    registry[nr].fn = fn;
    registry[nr].ctx = ctx;
    return 0;
}

int sbx_trap_refuse(int nr, int err)
{
    if (err <= 0 || err > 4095)
        return -EINVAL;
    int r = check_nr(nr);
    if (r < 0)
        return r;
    registry[nr].refuse_errno = err;
    return 0;
}

bool sbx_trap_installed(void)
{
    return atomic_load(&installed);
}

long sbx_trap_syscall6(long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5)
{
    register uint64_t r10 __asm__("r10") = a3;
    register uint64_t r8 __asm__("r8") = a4;
    register uint64_t r9 __asm__("r9") = a5;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

long sbx_trap_native(const sbx_trap_call *call)
{
    /* Without Landlock the filter has no magic exception; refusing here
     * keeps a handler's mistake from turning into a nested trap. */
    if (!call->native_allowed)
        return -EPERM;
    return sbx_trap_syscall6(call->nr, call->args[0], call->args[1], call->args[2],
                             call->args[3], call->args[4], SBX_TRAP_MAGIC);
}

long sbx_trap_result_from(int code)
{
    if (code >= 0)
        return code;
    if (code > -4096)
        return code;
    switch (code) {
    case SBX_ERROR_TOO_LARGE:
        return -ENAMETOOLONG;
    case SBX_ERROR_DENIED:
        return -EACCES;
    default: /* CHANNEL_ERROR (broker gone), INVALID_IPC, ... */
        return -EIO;
    }
}

void sbx_trap_get_stats(sbx_trap_stats *out)
{
    out->trapped = atomic_load(&st_trapped);
    out->unhandled = atomic_load(&st_unhandled);
    out->nested = atomic_load(&st_nested);
    out->foreign = atomic_load(&st_foreign);
}

#define SIGSYS_BIT (1ull << (SIGSYS - 1))

/* The kernel's struct sigaction on x86_64. */
typedef struct kernel_sigaction {
    uint64_t handler;
    uint64_t flags;
    uint64_t restorer;
    uint64_t mask;
} kernel_sigaction;

/* rt_sigaction(sig != SIGSYS, act, oact, 8): the same action with SIGSYS
 * taken out of its sa_mask (a handler that blocks everything must still
 * be able to make trapped calls), installed natively (the magic: this is
 * not a filesystem call, and a program that bypasses it only hurts itself:
 * a blocked SIGSYS kills it). */
static long engine_sigaction(const uint64_t *a)
{
    /* The signal number is an int to the kernel (the filter compares the
     * low 32 bits too): SIGSYS stays refused however it is spelled. */
    if (a[3] != sizeof(uint64_t) || (int)a[0] == SIGSYS)
        return -EINVAL;
    kernel_sigaction ka;
    memcpy(&ka, (const void *)(uintptr_t)a[1], sizeof ka);
    ka.mask &= ~SIGSYS_BIT;
    return sbx_trap_syscall6(SYS_rt_sigaction, a[0], (uint64_t)(uintptr_t)&ka, a[2], a[3], 0,
                             SBX_TRAP_MAGIC);
}

/* The SIGSYS handler. The kernel skipped the syscall and rolled RAX back
 * to its number; RIP is past the syscall instruction. The arguments are in
 * the registers the syscall used (the 4th in R10, not RCX). Whatever we
 * leave in REG_RAX is what the instruction returns. */
static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    int saved_errno = errno;
    if (si->si_code != SYS_SECCOMP) {
        /* kill(SIGSYS) from someone, or a forged one: not a trapped call. */
        atomic_fetch_add_explicit(&st_foreign, 1, memory_order_relaxed);
        errno = saved_errno;
        return;
    }
    ucontext_t *uc = ucv;
    greg_t *g = uc->uc_mcontext.gregs;
    atomic_fetch_add_explicit(&st_trapped, 1, memory_order_relaxed);
    long result;
    int nr = si->si_syscall;
    uint64_t args[6] = { (uint64_t)g[REG_RDI], (uint64_t)g[REG_RSI], (uint64_t)g[REG_RDX],
                         (uint64_t)g[REG_R10], (uint64_t)g[REG_R8], (uint64_t)g[REG_R9] };
    /* The filter traps only x86_64 calls (other ABIs die on its arch
     * check); refuse anything else rather than misread its registers. */
    if (si->si_arch == AUDIT_ARCH_X86_64 && nr == SYS_rt_sigaction) {
        result = engine_sigaction(args);
    } else if (si->si_arch != AUDIT_ARCH_X86_64 || nr < 0 || nr >= SBX_TRAP_MAX_NR ||
               !registry[nr].fn) {
        atomic_fetch_add_explicit(&st_unhandled, 1, memory_order_relaxed);
        result = -ENOSYS;
    } else {
        unsigned depth = ++trap_depth;
        if (depth > 1)
            atomic_fetch_add_explicit(&st_nested, 1, memory_order_relaxed);
        sbx_trap_call call = {
            .nr = nr,
            .args = { args[0], args[1], args[2], args[3], args[4], args[5] },
            .ipc = g_ipc,
            .policy = g_policy,
            .policy_size = g_policy_size,
            .native_allowed = g_native,
            .depth = depth,
        };
        result = registry[nr].fn(&call, registry[nr].ctx);
        trap_depth--;
    }
    g[REG_RAX] = (greg_t)result;
    /* The interrupted code's errno is untouched: libc's wrapper sets errno
     * from a -errno RAX itself once the trapped instruction "returns". */
    errno = saved_errno;
}

static void release_ctx(scmp_filter_ctx *c)
{
    if (*c)
        seccomp_release(*c);
}

/* Build and load the filter. Default ALLOW (this filter only routes; the
 * baseline filter denies what no target may do); registered calls TRAP,
 * refused calls fail with their errno; sigaction(SIGSYS, act != NULL)
 * fails with EINVAL. Only the native x86_64 ABI is in the filter: i386
 * (int 0x80) and x32 calls hit the arch check, whose action is
 * KILL_PROCESS — their numbers would otherwise bypass every rule. */
static int load_filter(bool allow_native)
{
    __attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return -ENOMEM;
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (r == 0)
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (r == 0)
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (r < 0)
        return r;
    r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EINVAL), SYS_rt_sigaction, 2,
                         SCMP_A0_32(SCMP_CMP_EQ, SIGSYS), SCMP_A1(SCMP_CMP_NE, 0));
    /* Setting another signal's action goes to the handler, which keeps
     * SIGSYS out of its sa_mask (a program handler that blocks "all
     * signals" must still make trapped calls). This rule keeps the magic
     * exception even without Landlock: it is not a filesystem call, and
     * bypassing it can only get the program killed. rt_sigprocmask is NOT
     * trapped: a thread that existed before install with SIGSYS blocked
     * (a harness or sanitizer thread that blocks everything) would be
     * killed by its next mask change; a thread that blocks SIGSYS dies at
     * its next trapped call instead (fail-closed, docs/trap.md). */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_TRAP, SYS_rt_sigaction, 3, SCMP_A0_32(SCMP_CMP_NE, SIGSYS),
                             SCMP_A1(SCMP_CMP_NE, 0), SCMP_A5_64(SCMP_CMP_NE, SBX_TRAP_MAGIC));
    if (r < 0)
        return r;
    for (int nr = 0; nr < SBX_TRAP_MAX_NR; nr++) {
        const trap_entry *e = &registry[nr];
        if (e->refuse_errno)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((uint32_t)e->refuse_errno), nr, 0);
        else if (e->fn && allow_native)
            r = seccomp_rule_add(ctx, SCMP_ACT_TRAP, nr, 1,
                                 SCMP_A5_64(SCMP_CMP_NE, SBX_TRAP_MAGIC));
        else if (e->fn)
            r = seccomp_rule_add(ctx, SCMP_ACT_TRAP, nr, 0);
        else
            continue;
        if (r < 0)
            return r;
    }
    return seccomp_load(ctx);
}

int sbx_trap_install(const sbx_trap_options *opt)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&once))
        return SBX_ERROR_ALREADY_INIT;
    sbx_trap_options def = { 0 };
    if (!opt)
        opt = &def;
    g_ipc = opt->ipc;
    g_native = opt->allow_native;
    if (g_ipc) {
        const void *p = NULL;
        size_t n = 0;
        if (sbx_ipc_client_policy(g_ipc, &p, &n) == 0 && p && n) {
            g_policy = p;
            g_policy_size = n;
        }
    }
    /* Block every signal during the handler except synchronous faults (a
     * fault inside it must still be delivered, not turned into a kill), so
     * no program handler runs in the middle of a cross call. SIGSYS stays
     * unblocked (SA_NODEFER): a trapped call made while handling (a bug in
     * a handler, or a program handler's call) nests instead of killing. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
    sigfillset(&sa.sa_mask);
    static const int faults[] = { SIGSYS, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&sa.sa_mask, faults[i]);
    struct sigaction old;
    if (sigaction(SIGSYS, &sa, &old) < 0)
        return -errno;
    /* A SIGSYS blocked now would kill the first trapped call. */
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
    int r = load_filter(opt->allow_native);
    if (r < 0) {
        sigaction(SIGSYS, &old, NULL);
        atomic_flag_clear(&once);
        return r;
    }
    atomic_store(&installed, true);
    return 0;
}
