/* sbx internal — the trap interception backend's engine (x86_64).
 *
 * A seccomp filter answers SECCOMP_RET_TRAP for every syscall a subsystem
 * registered; the kernel then delivers SIGSYS to the calling thread, and
 * the async-signal-safe handler installed here reads the syscall number and
 * arguments from the signal's ucontext, calls the subsystem's handler and
 * writes its result into RAX, so the trapped instruction "returns" it (libc
 * then sets errno from a -errno result as for any syscall).
 *
 * Seam: subsystems fill a static table indexed by syscall number with
 * sbx_trap_register() (and sbx_trap_refuse() for calls refused in the
 * kernel) BEFORE sbx_trap_install(); the table is frozen afterwards, so the
 * handler reads it without a lock and allocates nothing.
 *
 * Native re-issue: libseccomp cannot match the instruction pointer, so the
 * filter traps a registered call only when its 6th argument (A5) is not
 * SBX_TRAP_MAGIC; sbx_trap_native() re-issues the call with A5 = magic and
 * the kernel runs it. Every intercepted syscall takes at most 5 arguments,
 * so A5 is otherwise unused. Any code in the target can use the magic too:
 * this is acceptable ONLY because native calls are bounded by the target's
 * mount namespace and Landlock (DESIGN.md "Three paths") — the trap routes
 * calls, it is not the wall. When Landlock does not confine the target the
 * caller says so (allow_native = false): the filter then traps whatever A5
 * holds and sbx_trap_native() refuses, so every call goes to the broker.
 * Refused syscalls fail in the filter itself (SCMP_ACT_ERRNO), magic or not.
 *
 * Process-wide state: one engine per process. Not thread-safe before
 * install (register from one thread at init); after install everything is
 * read-only except atomic counters. */
#ifndef SBX_TARGET_TRAP_H
#define SBX_TARGET_TRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sbx/ipc.h>

/* The 6th-argument marker of a native re-issue ("SBXTRAP!"). */
#define SBX_TRAP_MAGIC 0x5342585452415021ull
/* Syscall numbers the registry covers (x86_64 numbers are below this). */
#define SBX_TRAP_MAX_NR 512

/* One trapped call, as the handler sees it. Valid only during the handler. */
typedef struct sbx_trap_call {
    int nr;                  /* the syscall number */
    uint64_t args[6];        /* rdi, rsi, rdx, r10, r8, r9 */
    sbx_ipc_client *ipc;     /* the broker's IPC client, or NULL */
    const void *policy;      /* read-only local policy copy (may be NULL): fail-fast only */
    size_t policy_size;
    bool native_allowed;     /* Landlock confines the target: sbx_trap_native works */
    bool forward_allowed;    /* ranged mode: sbx_trap_forward hands the call down */
    unsigned depth;          /* 1 for a trap from program code, 2+ when nested */
} sbx_trap_call;

/* A subsystem's handler: returns the syscall's result (>= 0) or -errno.
 * Runs in a SIGSYS handler: async-signal-safe code only (no malloc, no
 * locks, no stdio); every signal except synchronous faults is blocked. */
typedef long (*sbx_trap_handler)(const sbx_trap_call *call, void *ctx);

/* Register fn for syscall nr (0 <= nr < SBX_TRAP_MAX_NR). Before install
 * only: SBX_ERROR_FROZEN afterwards, -EEXIST if nr is already registered or
 * refused, -EINVAL for a bad nr or NULL fn, -EPERM for rt_sigaction (the
 * engine owns it). Not thread-safe. */
int sbx_trap_register(int nr, sbx_trap_handler fn, void *ctx);
/* Make syscall nr fail with err (1..4095) in the filter itself (no signal,
 * no bypass by magic). Same errors as sbx_trap_register. */
int sbx_trap_refuse(int nr, int err);

/* A code range [start, end), e.g. libc's executable segment. */
typedef struct sbx_trap_range {
    uintptr_t start, end;
} sbx_trap_range;
#define SBX_TRAP_MAX_RANGES 4

typedef struct sbx_trap_options {
    sbx_ipc_client *ipc;  /* borrowed; must outlive the process (may be NULL) */
    bool allow_native;    /* true ONLY when Landlock confines the target to its view */
    /* Ranged mode (the preload shim over the broker's notify filter): only
     * calls whose syscall instruction lies in one of these ranges trap;
     * calls from anywhere else pass this filter (refusals still apply) and
     * meet the filters installed beneath it. After an execve the new
     * image's code lies elsewhere (ASLR), so an inherited filter stays
     * inert instead of killing a program that has no handler yet. The
     * ranges must not contain this engine's own code. n_ranges 0: every
     * call traps, wherever it comes from. */
    const sbx_trap_range *ranges; /* read during install only */
    size_t n_ranges;              /* <= SBX_TRAP_MAX_RANGES */
    /* Hide the section's policy copy from handlers (call->policy NULL):
     * no local pre-check, every decision is the broker's (and audited). */
    bool no_precheck;
} sbx_trap_options;

/* Install the SIGSYS handler, then load the filter on every thread of the
 * process (TSYNC; sets no_new_privs). After this, sigaction(SIGSYS) with a
 * new action fails with EINVAL (in the filter), and a SIGSYS the program
 * blocks kills it on its next trapped call (the kernel forces a blocked
 * trap signal to its default action): interception never silently turns
 * off. Returns 0, SBX_ERROR_ALREADY_INIT, -EINVAL for bad ranges, or a
 * negative errno / libseccomp code (the handler is then restored). Call
 * once, not from a handler. */
int sbx_trap_install(const sbx_trap_options *opt);
bool sbx_trap_installed(void);

/* Re-issue call natively (A5 = magic). Returns the kernel's result or
 * -errno; -EPERM when native re-issue is disabled. Async-signal-safe. */
long sbx_trap_native(const sbx_trap_call *call);

/* The executable segments of the loaded object (libc, a library, the
 * program) that holds code address `addr`, for sbx_trap_options.ranges.
 * Returns how many were written to out[0..SBX_TRAP_MAX_RANGES), 0 when
 * no loaded object holds addr. Not async-signal-safe (dl_iterate_phdr). */
size_t sbx_trap_code_ranges(uintptr_t addr, sbx_trap_range out[SBX_TRAP_MAX_RANGES]);

/* Hand call to the filters beneath this one (ranged mode only: the call
 * is re-issued unchanged from outside the ranges, so this filter passes it
 * and the broker's notify filter decides). -ENOSYS when not ranged
 * (call->forward_allowed false).
 * Async-signal-safe. */
long sbx_trap_forward(const sbx_trap_call *call);

/* A raw 6-argument syscall instruction (returns -errno, never touches
 * errno). Async-signal-safe. */
long sbx_trap_syscall6(long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5);

/* The syscall result for an IPC or sbx error code: a -errno passes, a
 * dead or broken channel is -EIO, a too-large request -ENAMETOOLONG, a
 * policy refusal -EACCES, anything else -EIO. Async-signal-safe. */
long sbx_trap_result_from(int code);

/* Is nr served by a registered handler once installed? Then
 * sbx_trap_enter(nr, ...) can run it without a trap. Async-signal-safe. */
bool sbx_trap_enterable(int nr);

/* Run nr's registered handler on the arguments of a call made through a
 * libc entry point the caller interposes (the preload shim's open and
 * openat): exactly what the SIGSYS handler would do for that call, with
 * the same signal mask around it (no program handler runs in the middle
 * of a cross call), minus the signal delivery and rt_sigreturn. Only for
 * sbx_trap_enterable(nr); errno is kept. Returns the syscall's result or
 * -errno. Async-signal-safe. */
long sbx_trap_enter(int nr, const uint64_t args[6]);

/* Counters (atomic; for tests and stats). */
typedef struct sbx_trap_stats {
    uint64_t entered;   /* handlers run by sbx_trap_enter (no trap) */
    uint64_t trapped;   /* SIGSYS from our filter */
    uint64_t unhandled; /* trapped with no handler (answered -ENOSYS) */
    uint64_t nested;    /* traps taken while the same thread was handling one */
    uint64_t foreign;   /* SIGSYS not from seccomp (ignored) */
} sbx_trap_stats;
void sbx_trap_get_stats(sbx_trap_stats *out);

#endif
