/* sbx — notify backend: the filter (see notify.h). */
#include "target/interception/notify.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cleanup.h"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#include "subsys/files/files_syscalls.h"

static void release_ctx(scmp_filter_ctx *c)
{
    if (*c)
        seccomp_release(*c);
}

int sbx_notify_filter_build(struct sock_fprog *prog)
{
    memset(prog, 0, sizeof *prog);
    __attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return -ENOMEM;
    /* Any other ABI (i386 int 0x80, x32) is killed: its syscall numbers
     * would bypass every rule below. */
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (r < 0)
        return r;
    for (size_t i = 0; i < sbx_files_syscall_count; i++) {
        const sbx_files_syscall *s = &sbx_files_syscalls[i];
        if (s->kind == SBX_FILES_SC_BROKERED && s->native_if_null >= 0) {
            /* A NULL path there means an fd-only call (futimens). */
            r = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, s->nr, 1,
                                 SCMP_CMP((unsigned)s->native_if_null, SCMP_CMP_NE, 0));
        } else if (s->kind == SBX_FILES_SC_BROKERED) {
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
    SBX_AUTOCLOSE int mfd = memfd_create("sbx-filter", MFD_CLOEXEC);
    if (mfd < 0)
        return sbx_neg_errno();
    if ((r = seccomp_export_bpf(ctx, mfd)) < 0)
        return r;
    struct stat st;
    if (fstat(mfd, &st) < 0)
        return sbx_neg_errno();
    size_t len = (size_t)st.st_size;
    if (len == 0 || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > BPF_MAXINSNS)
        return -E2BIG;
    SBX_AUTOFREE struct sock_filter *insns = malloc(len);
    if (!insns)
        return -ENOMEM;
    if (pread(mfd, insns, len, 0) != (ssize_t)len)
        return -EIO;
    prog->len = (unsigned short)(len / sizeof(struct sock_filter));
    prog->filter = sbx_steal_ptr(&insns);
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
