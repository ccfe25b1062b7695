/* sbx — baseline seccomp deny list. Default allow (the interception
 * filter, stacked later, narrows further); the denied calls are those that
 * widen a target's reach: other processes' memory, kernel attack surface,
 * namespace and mount manipulation, io_uring (it would bypass interception),
 * terminal injection, ASLR weakening, and the 32-bit ABIs. clone3 answers
 * ENOSYS: its flags live in memory seccomp cannot read, and libc falls
 * back to clone, whose flags it can. */
#include "broker/baseline.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/bpf_export.h"
#include "base/cleanup.h"
#include "base/fd.h"

static void release_ctx(scmp_filter_ctx *c)
{
    if (*c)
        seccomp_release(*c);
}

static int export_bpf(scmp_filter_ctx ctx, sbx_bpf *out, uint32_t foreign, bool nochildren);

int sbx_nochildren_build(sbx_bpf *out)
{
    memset(out, 0, sizeof *out);
    __attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx = sbx_seccomp_ctx_new(SCMP_ACT_ALLOW);
    if (!ctx)
        return -ENOMEM;
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    /* Foreign ABIs are the baseline's business (stacked filters: the
     * strictest answer wins, so this one must not kill them). */
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ALLOW);
    if (r < 0)
        return r;
    r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(fork), 0);
    if (r < 0)
        return r;
    r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(vfork), 0);
    if (r < 0)
        return r;
    r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
    if (r < 0)
        return r;
    return export_bpf(ctx, out, SECCOMP_RET_ALLOW, false);
}

int sbx_baseline_add_rules(scmp_filter_ctx ctx, uint32_t deny)
{
    int r;
    static const char *const denied[] = {
        "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
        "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
        "fsconfig", "fsmount", "fspick", "mount_setattr", "setns", "io_uring_setup",
        "io_uring_enter", "io_uring_register", "acct", "swapon", "swapoff", "reboot",
        "iopl", "ioperm", "quotactl", "quotactl_fd", "lookup_dcookie", "vm86", "vm86old",
        "nfsservctl", "syslog", "uselib", "open_by_handle_at", "name_to_handle_at",
        "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "fanotify_init",
        "kcmp", "lsm_set_self_attr",
    };
    for (size_t i = 0; i < SBX_ARRAY_SIZE(denied); i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* unknown to this libseccomp: nothing to refuse */
        r = seccomp_rule_add(ctx, deny, nr, 0);
        if (r < 0 && r != -EEXIST)
            return r;
    }
    /* clone3: flags unreadable by seccomp. ENOSYS makes libc use clone. */
    r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (r < 0 && r != -EEXIST)
        return r;
    /* unshare / clone with any namespace flag. */
    static const unsigned long ns_flags[] = { CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID,
                                              CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS,
                                              CLONE_NEWCGROUP, 0x00000080 };
    for (size_t i = 0; i < SBX_ARRAY_SIZE(ns_flags); i++) {
        r = seccomp_rule_add(ctx, deny, SCMP_SYS(unshare), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
        if (r < 0)
            return r;
        r = seccomp_rule_add(ctx, deny, SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
        if (r < 0)
            return r;
    }
    /* Terminal injection. The request number is an int: compare 32 bits. */
    r = seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                         SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
    if (r < 0)
        return r;
    r = seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                         SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX));
    if (r < 0)
        return r;
    /* Personalities that weaken ASLR or make data executable. */
    static const unsigned long bad_persona[] = { ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC,
                                                 ADDR_COMPAT_LAYOUT, MMAP_PAGE_ZERO };
    for (size_t i = 0; i < SBX_ARRAY_SIZE(bad_persona); i++) {
        r = seccomp_rule_add(ctx, deny, SCMP_SYS(personality), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, bad_persona[i] | 0xffff0000u,
                                     bad_persona[i]));
        if (r < 0)
            return r;
    }
    /* Widening who may ptrace us (Yama) is refused. */
    return seccomp_rule_add(ctx, deny, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_PTRACER));
}

/* `deny`: the action of every denial; `foreign`: the raw answer to other
 * ABIs (the same decision, in BPF terms). */
static int build(sbx_bpf *out, uint32_t deny, uint32_t foreign, bool nochildren)
{
    memset(out, 0, sizeof *out);
    __attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx = sbx_seccomp_ctx_new(SCMP_ACT_ALLOW);
    if (!ctx)
        return -ENOMEM;
    /* Foreign ABIs (int 0x80, x32): every call refused. libseccomp's
     * x86_64 filter sends x32-numbered calls to the bad-arch action too. */
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
                             deny == SCMP_ACT_NOTIFY ? SCMP_ACT_KILL_PROCESS : deny);
    if (r < 0)
        return r;
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); /* set by us, earlier */
    if ((r = sbx_baseline_add_rules(ctx, deny)) < 0)
        return r;
    return export_bpf(ctx, out, foreign, nochildren);
}

int sbx_baseline_build(sbx_bpf *out, bool kill)
{
    if (kill)
        return build(out, SCMP_ACT_KILL_PROCESS, SECCOMP_RET_KILL_PROCESS, false);
    return build(out, SCMP_ACT_ERRNO(EPERM), SECCOMP_RET_ERRNO | EPERM, false);
}

int sbx_baseline_build_notify(sbx_bpf *out)
{
    /* libseccomp's own bad-arch path is never reached: the prefix answers
     * every foreign call first. */
    return build(out, SCMP_ACT_NOTIFY, SECCOMP_RET_USER_NOTIF, false);
}

int sbx_baseline_build_notify_nochildren(sbx_bpf *out)
{
    return build(out, SCMP_ACT_NOTIFY, SECCOMP_RET_USER_NOTIF, true);
}

/* sbx_nochildren_build's rules in raw BPF, behind the foreign prefix
 * (which leaves the native syscall number in A): fork, vfork and clone
 * without CLONE_THREAD (a flag of the low word) answer EPERM. */
#define NOCHILDREN_PREFIX_LEN 7
static void nochildren_prefix(struct sock_filter out[NOCHILDREN_PREFIX_LEN])
{
    const struct sock_filter prefix[NOCHILDREN_PREFIX_LEN] = {
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fork, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_vfork, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    };
    memcpy(out, prefix, sizeof prefix);
}

/* Export to raw BPF. With `foreign` other than ALLOW, a prefix of our own
 * answers it for every non-x86_64 arch (int 0x80) and every x32-numbered
 * call, before libseccomp's program (whose bad-arch path would kill). */
static int export_bpf(scmp_filter_ctx ctx, sbx_bpf *out, uint32_t foreign, bool nochildren)
{
    struct sock_filter prefix[SBX_BPF_FOREIGN_PREFIX_LEN + NOCHILDREN_PREFIX_LEN];
    sbx_bpf_foreign_prefix(prefix, foreign);
    size_t np = foreign == SECCOMP_RET_ALLOW ? 0 : SBX_BPF_FOREIGN_PREFIX_LEN;
    /* Only behind the foreign prefix: it must see native numbers alone. */
    if (nochildren && np) {
        nochildren_prefix(prefix + np);
        np += NOCHILDREN_PREFIX_LEN;
    }
    struct sock_filter *insns = NULL;
    size_t n = 0;
    int r = sbx_bpf_export(ctx, prefix, np, &insns, &n);
    if (r < 0)
        return r;
    out->len = (unsigned short)n;
    out->insns = insns;
    return 0;
}

void sbx_bpf_free(sbx_bpf *bpf)
{
    free(bpf->insns);
    bpf->insns = NULL;
    bpf->len = 0;
}

int sbx_bpf_load(const sbx_bpf *bpf)
{
    struct sock_fprog prog = { .len = bpf->len, .filter = bpf->insns };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return sbx_neg_errno();
    return 0;
}
