/* sbx — notify backend: the filter (see notify.h). */
#include "target/interception/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/bpf_export.h"
#include "base/cleanup.h"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#include "subsys/files/files_syscalls.h"
#include "target/trap/trap.h"

static void release_ctx(scmp_filter_ctx *c)
{
    if (*c)
        seccomp_release(*c);
}

int sbx_notify_filter_build(struct sock_fprog *prog)
{
    return sbx_notify_filter_build_opts(prog, false);
}

int sbx_notify_filter_build_opts(struct sock_fprog *prog, bool pass_magic)
{
    return sbx_notify_filter_build_ex(prog, pass_magic, NULL, NULL);
}

int sbx_notify_filter_build_ex(struct sock_fprog *prog, bool pass_magic,
                               int (*extra)(scmp_filter_ctx ctx, void *ud), void *ud)
{
    memset(prog, 0, sizeof *prog);
    __attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx = sbx_seccomp_ctx_new(SCMP_ACT_ALLOW);
    if (!ctx)
        return -ENOMEM;
    /* Any other ABI (i386 int 0x80, x32) is killed: its syscall numbers
     * would bypass every rule below. */
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (r < 0)
        return r;
    /* The trap fast path's native re-issue (trap.h) carries the magic in
     * the unused 6th argument; it passes only when the broker asked for it
     * (Landlock confines the target, so a native call stays in its view). */
    const struct scmp_arg_cmp no_magic = SCMP_A5_64(SCMP_CMP_NE, SBX_TRAP_MAGIC);
    for (size_t i = 0; i < sbx_files_syscall_count; i++) {
        const sbx_files_syscall *s = &sbx_files_syscalls[i];
        /* Landlock does not check what stat, access, readlink, chmod and
         * utimensat reach: with a brokered cwd or dirfd a native one (any
         * code can set the magic) would reach the host's tree. Those are
         * always the broker's. */
        /* Nor what chdir or an O_PATH open reaches (a chdir that works is
         * an existence oracle; an O_PATH fd carries metadata): those pass
         * only when their flags say no O_PATH — openat2's are out of the
         * filter's reach, so it never passes. */
        bool magic = pass_magic && (s->op == SBX_FILES_CALL_GETCWD ||
                                    (sbx_files_op_landlock_mediated(s->op) && s->nr != SYS_openat2));
        int opath_arg = s->op != SBX_FILES_CALL_OPEN ? -1 : s->nr == SYS_open ? 1 : s->nr == SYS_openat ? 2 : -1;
        if (magic && opath_arg >= 0) {
            r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, s->nr, 1, no_magic);
            if (r == 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, s->nr, 1,
                                     SCMP_CMP((unsigned)opath_arg, SCMP_CMP_MASKED_EQ, O_PATH, O_PATH));
        } else if (s->kind == SBX_FILES_SC_BROKERED && s->native_if_null >= 0) {
            /* A NULL path there means an fd-only call (futimens). */
            if (magic)
                r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, s->nr, 2,
                                     SCMP_CMP((unsigned)s->native_if_null, SCMP_CMP_NE, 0), no_magic);
            else
                r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, s->nr, 1,
                                     SCMP_CMP((unsigned)s->native_if_null, SCMP_CMP_NE, 0));
        } else if (s->kind == SBX_FILES_SC_BROKERED) {
            if (magic)
                r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, s->nr, 1, no_magic);
            else
                r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, s->nr, 0);
        } else if (s->kind == SBX_FILES_SC_REFUSED) {
            uint32_t act = SCMP_ACT_ERRNO((uint32_t)s->refuse_errno);
            if (s->native_if_null >= 0)
                r = seccomp_rule_add(ctx, act, s->nr, 1,
                                     SCMP_CMP((unsigned)s->native_if_null, SCMP_CMP_NE, 0));
            else
                r = seccomp_rule_add(ctx, act, s->nr, 0);
        } else {
            continue;
        }
        if (r < 0)
            return r;
    }
    /* The files rules come first: a syscall both lists name keeps them. */
    if (extra && (r = extra(ctx, ud)) < 0)
        return r;
    /* A reporting filter (extra: the baseline's denials) notifies other
     * ABIs too: the broker refuses them with EPERM and reports them, as
     * the baseline itself would refuse them. */
    struct sock_filter prefix[SBX_BPF_FOREIGN_PREFIX_LEN];
    sbx_bpf_foreign_prefix(prefix, SECCOMP_RET_USER_NOTIF);
    struct sock_filter *insns = NULL;
    size_t n = 0;
    if ((r = sbx_bpf_export(ctx, prefix, extra ? SBX_BPF_FOREIGN_PREFIX_LEN : 0, &insns, &n)) < 0)
        return r;
    prog->len = (unsigned short)n;
    prog->filter = insns;
    return 0;
}

void sbx_notify_filter_free(struct sock_fprog *prog)
{
    free(prog->filter);
    prog->filter = NULL;
    prog->len = 0;
}

int sbx_notify_filter_install(const struct sock_fprog *prog)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return sbx_neg_errno();
    /* WAIT_KILLABLE_RECV (Linux >= 5.19): once the broker has received a
     * call, only a fatal signal interrupts the target's wait — otherwise a
     * signal would make the kernel restart a call (mkdir, rename) that the
     * broker is already performing. */
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, prog);
    if (fd < 0 && errno == EINVAL)
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog);
    return fd < 0 ? sbx_neg_errno() : (int)fd;
}
