/* sbx — the trap backend's engine: registry, filter, SIGSYS handler and
 * native re-issue (see trap.h for the model and docs/trap.md for the
 * security argument). */
#include "target/trap/trap.h"

#include <errno.h>
#include <link.h>
#include <linux/audit.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <ucontext.h>

#include <sbx/error.h>

#include "base/bpf_export.h"

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
static bool g_forward; /* ranged: a call re-issued from here meets the filters beneath */

static atomic_uint_fast64_t st_entered, st_trapped, st_unhandled, st_nested, st_foreign;
/* The SIGSYS handler's sa_mask, also blocked around sbx_trap_enter. */
static sigset_t g_handler_mask;
/* Has the program a signal handler of its own (any action but SIG_DFL and
 * SIG_IGN besides ours and libc's internal two)? Set at install from the
 * actions then in place and by every sigaction the engine sees (libc's
 * are trapped); never cleared. Without one, no program code can run in the
 * middle of a direct call, and sbx_trap_enter needs no mask. */
static atomic_bool g_program_handlers;
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

typedef struct code_find {
    uintptr_t addr;
    sbx_trap_range *out;
    size_t n;
} code_find;

static int code_find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    code_find *cf = arg;
    bool mine = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && cf->addr >= a && cf->addr < a + ph->p_memsz)
            mine = true;
    }
    if (!mine)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && cf->n < SBX_TRAP_MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        cf->out[cf->n++] = (sbx_trap_range){ a, a + ph->p_memsz };
    }
    return 1;
}

size_t sbx_trap_code_ranges(uintptr_t addr, sbx_trap_range out[SBX_TRAP_MAX_RANGES])
{
    code_find cf = { .addr = addr, .out = out };
    dl_iterate_phdr(code_find_cb, &cf);
    return cf.n;
}

long sbx_trap_forward(const sbx_trap_call *call)
{
    if (!g_forward)
        return -ENOSYS;
    return sbx_trap_syscall6(call->nr, call->args[0], call->args[1], call->args[2],
                             call->args[3], call->args[4], call->args[5]);
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
    out->entered = atomic_load(&st_entered);
    out->trapped = atomic_load(&st_trapped);
    out->unhandled = atomic_load(&st_unhandled);
    out->nested = atomic_load(&st_nested);
    out->foreign = atomic_load(&st_foreign);
}

#define SIGSYS_BIT (1ull << (SIGSYS - 1))

/* One served call, from the SIGSYS handler or a direct entry (nr has a
 * handler): the nesting depth is the handler's to see. */
static long serve(int nr, const uint64_t *args)
{
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
        .forward_allowed = g_forward,
        .depth = depth,
    };
    long result = registry[nr].fn(&call, registry[nr].ctx);
    trap_depth--;
    return result;
}

bool sbx_trap_enterable(int nr)
{
    return atomic_load_explicit(&installed, memory_order_acquire) && nr >= 0 &&
           nr < SBX_TRAP_MAX_NR && nr != SYS_rt_sigaction && registry[nr].fn;
}

/* The kernel's sigset is 8 bytes on x86_64. */
#define KERNEL_SIGSET_SIZE 8u

long sbx_trap_enter(int nr, const uint64_t args[6])
{
    if (!sbx_trap_enterable(nr))
        return -ENOSYS;
    int saved_errno = errno;
    /* The mask the kernel would set for the SIGSYS handler: old | sa_mask,
     * so that no program handler runs (and jumps out) in the middle of a
     * cross call; not needed while the program has none (two syscalls).
     * Raw syscalls: no libc state, async-signal-safe. */
    uint64_t old = 0;
    bool mask = atomic_load_explicit(&g_program_handlers, memory_order_acquire);
    if (mask) {
        long m = sbx_trap_syscall6(SYS_rt_sigprocmask, SIG_BLOCK,
                                   (uint64_t)(uintptr_t)&g_handler_mask, (uint64_t)(uintptr_t)&old,
                                   KERNEL_SIGSET_SIZE, 0, 0);
        if (m < 0)
            return m;
    }
    atomic_fetch_add_explicit(&st_entered, 1, memory_order_relaxed);
    long result = serve(nr, args);
    if (mask)
        (void)sbx_trap_syscall6(SYS_rt_sigprocmask, SIG_SETMASK, (uint64_t)(uintptr_t)&old, 0,
                                KERNEL_SIGSET_SIZE, 0, 0);
    errno = saved_errno;
    /* A native re-issue left the magic in R9, and libc's wrappers of calls
     * with fewer arguments do not set it: the program's next trapped call
     * would pass the filter as a re-issue. The SIGSYS path restores R9
     * with the rest of the frame; here it is cleared. */
    __asm__ volatile("xor %%r9d, %%r9d" ::: "r9");
    return result;
}

/* The kernel's struct sigaction on x86_64. */
typedef struct kernel_sigaction {
    uint64_t handler;
    uint64_t flags;
    uint64_t restorer;
    uint64_t mask;
} kernel_sigaction;

/* glibc's internal signals (cancellation, setxid): its handlers never
 * jump out of the code they interrupt. */
#define LIBC_SIG_FIRST 32
#define LIBC_SIG_LAST 33

static void note_action(int sig, uint64_t handler)
{
    if (handler != (uint64_t)(uintptr_t)SIG_DFL && handler != (uint64_t)(uintptr_t)SIG_IGN &&
        sig != SIGSYS && (sig < LIBC_SIG_FIRST || sig > LIBC_SIG_LAST))
        atomic_store(&g_program_handlers, true);
}

/* The actions in place when the engine starts (another library's
 * constructor may have installed some). */
static void note_actions_in_place(void)
{
    for (int sig = 1; sig <= 64; sig++) {
        kernel_sigaction ka;
        /* a query (act NULL) is not trapped; no magic: it would stay in R9 */
        if (sbx_trap_syscall6(SYS_rt_sigaction, (uint64_t)sig, 0, (uint64_t)(uintptr_t)&ka,
                              sizeof(uint64_t), 0, 0) == 0)
            note_action(sig, ka.handler);
    }
}

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
    note_action((int)a[0], ka.handler); /* before it can run */
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
        result = serve(nr, args);
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

/* Calls of another ABI (i386 via int 0x80, x32) bypass every x86_64 rule,
 * so a filter standing alone kills them. A ranged filter always sits on
 * the broker's notify filter, which decides them as the policy says
 * (refused and reported in EPERM mode, killed in kill mode): it lets them
 * through to that filter, since a kill here would outrank its answer. */
static int new_ctx(scmp_filter_ctx *out, bool over_base)
{
    *out = sbx_seccomp_ctx_new(SCMP_ACT_ALLOW);
    if (!*out)
        return -ENOMEM;
    return seccomp_attr_set(*out, SCMP_FLTATR_ACT_BADARCH,
                            over_base ? SCMP_ACT_ALLOW : SCMP_ACT_KILL_PROCESS);
}

/* Every refused call fails with its errno, wherever it comes from. */
static int add_refusals(scmp_filter_ctx ctx)
{
    for (int nr = 0; nr < SBX_TRAP_MAX_NR; nr++) {
        if (!registry[nr].refuse_errno)
            continue;
        int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((uint32_t)registry[nr].refuse_errno), nr, 0);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The routing program. Default ALLOW (this filter only routes; the
 * baseline filter denies what no target may do); registered calls TRAP,
 * refused calls fail with their errno; sigaction(SIGSYS, act != NULL)
 * fails with EINVAL. Only the native x86_64 ABI is in the filter: i386
 * (int 0x80) and x32 calls hit the arch check (new_ctx). */
static int build_trapping(scmp_filter_ctx ctx, bool allow_native)
{
    int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EINVAL), SYS_rt_sigaction, 2,
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
    if (r == 0)
        r = add_refusals(ctx);
    for (int nr = 0; r == 0 && nr < SBX_TRAP_MAX_NR; nr++) {
        const trap_entry *e = &registry[nr];
        if (!e->fn)
            continue;
        if (allow_native)
            r = seccomp_rule_add(ctx, SCMP_ACT_TRAP, nr, 1, SCMP_A5_64(SCMP_CMP_NE, SBX_TRAP_MAGIC));
        else
            r = seccomp_rule_add(ctx, SCMP_ACT_TRAP, nr, 0);
    }
    return r;
}

/* Up to two 32-bit-high-word pieces per range (a range crossing a 4 GiB
 * boundary is split), 5 instructions each, plus the jump to the pass
 * program. */
#define IP_LO offsetof(struct seccomp_data, instruction_pointer)
#define IP_HI (offsetof(struct seccomp_data, instruction_pointer) + 4)
#define PIECE_INSNS 5
#define MAX_PIECES (2 * SBX_TRAP_MAX_RANGES)

typedef struct piece {
    uint32_t hi, lo, last; /* [hi:lo, hi:last] inclusive */
} piece;

static size_t split_ranges(const sbx_trap_range *rg, size_t n, piece *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t a = rg[i].start, last = rg[i].end - 1;
        while (a <= last) {
            uint64_t seg_last = a | 0xffffffffull;
            if (seg_last > last)
                seg_last = last;
            out[k++] = (piece){ (uint32_t)(a >> 32), (uint32_t)a, (uint32_t)seg_last };
            if (seg_last == last)
                break;
            a = seg_last + 1;
        }
    }
    return k;
}

/* Load [prefix][trapping program][pass program]: the prefix sends calls
 * whose instruction pointer lies in a range to the trapping program and
 * every other call to the pass program (refusals only). Jumps in both
 * programs are relative and stay inside them, so placing them one after
 * the other keeps them intact. */
static int load_ranged(const struct sock_filter *a, size_t na, const struct sock_filter *b,
                       size_t nb, const sbx_trap_range *rg, size_t nrg)
{
    piece pc[MAX_PIECES];
    size_t np = split_ranges(rg, nrg, pc);
    size_t npre = np * PIECE_INSNS + 1;
    size_t total = npre + na + nb;
    if (total > BPF_MAXINSNS)
        return -E2BIG;
    struct sock_filter *f = calloc(total, sizeof *f);
    if (!f)
        return -ENOMEM;
    size_t i = 0;
    for (size_t k = 0; k < np; k++) {
        f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, IP_HI);
        f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, pc[k].hi, 0, 3);
        f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, IP_LO);
        f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, pc[k].lo, 0, 1);
        /* In the piece: jump to the trapping program (just past the prefix). */
        f[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, pc[k].last, 0,
                                            (uint8_t)(npre - (i + 1)));
        i++;
    }
    f[i++] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA | BPF_K, (uint32_t)na);
    memcpy(f + i, a, na * sizeof *a);
    memcpy(f + i + na, b, nb * sizeof *b);
    struct sock_fprog prog = { .len = (unsigned short)total, .filter = f };
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
    int e = errno;
    free(f);
    if (r < 0)
        return -e;
    return r > 0 ? -EBUSY : 0; /* > 0: a thread that could not be synchronised */
}

static void free_insns(struct sock_filter **p)
{
    free(*p);
}

static int load_filter(const sbx_trap_options *opt)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    __attribute__((cleanup(release_ctx))) scmp_filter_ctx trapping = NULL;
    int r = new_ctx(&trapping, opt->n_ranges > 0);
    if (r == 0)
        r = build_trapping(trapping, opt->allow_native);
    if (r < 0)
        return r;
    if (!opt->n_ranges) {
        r = seccomp_attr_set(trapping, SCMP_FLTATR_CTL_TSYNC, 1);
        return r < 0 ? r : seccomp_load(trapping);
    }
    __attribute__((cleanup(release_ctx))) scmp_filter_ctx pass = NULL;
    if ((r = new_ctx(&pass, true)) < 0 || (r = add_refusals(pass)) < 0)
        return r;
    __attribute__((cleanup(free_insns))) struct sock_filter *a = NULL;
    __attribute__((cleanup(free_insns))) struct sock_filter *b = NULL;
    size_t na = 0, nb = 0;
    if ((r = sbx_bpf_export(trapping, NULL, 0, &a, &na)) < 0 ||
        (r = sbx_bpf_export(pass, NULL, 0, &b, &nb)) < 0)
        return r;
    return load_ranged(a, na, b, nb, opt->ranges, opt->n_ranges);
}

/* The ranges must be sane and must not hold our own syscall instruction
 * (sbx_trap_forward relies on it being outside them). */
static int check_ranges(const sbx_trap_options *opt)
{
    if (opt->n_ranges > SBX_TRAP_MAX_RANGES || (opt->n_ranges && !opt->ranges))
        return -EINVAL;
    uintptr_t self = (uintptr_t)&sbx_trap_syscall6;
    for (size_t i = 0; i < opt->n_ranges; i++) {
        const sbx_trap_range *r = &opt->ranges[i];
        if (r->end <= r->start)
            return -EINVAL;
        if (self + 64 > r->start && self < r->end)
            return -EINVAL;
    }
    return 0;
}

int sbx_trap_install(const sbx_trap_options *opt)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&once))
        return SBX_ERROR_ALREADY_INIT;
    sbx_trap_options def = { 0 };
    if (!opt)
        opt = &def;
    int cr = check_ranges(opt);
    if (cr < 0) {
        atomic_flag_clear(&once);
        return cr;
    }
    g_ipc = opt->ipc;
    g_forward = opt->n_ranges > 0;
    g_native = opt->allow_native;
    if (g_ipc && !opt->no_precheck) {
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
    g_handler_mask = sa.sa_mask;
    struct sigaction old;
    if (sigaction(SIGSYS, &sa, &old) < 0)
        return -errno;
    /* A SIGSYS blocked now would kill the first trapped call. */
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);
    int r = load_filter(opt);
    if (r < 0) {
        sigaction(SIGSYS, &old, NULL);
        atomic_flag_clear(&once);
        return r;
    }
    /* From now on libc's sigaction is trapped (engine_sigaction notes it). */
    note_actions_in_place();
    atomic_store(&installed, true);
    return 0;
}
