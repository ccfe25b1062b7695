/* sbx — libseccomp programs exported to memory (see bpf_export.h). */
#include "base/bpf_export.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/cleanup.h"

int sbx_bpf_export(scmp_filter_ctx ctx, const struct sock_filter *prefix, size_t n_prefix,
                   struct sock_filter **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    SBX_AUTOCLOSE int mfd = memfd_create("sbx-bpf", MFD_CLOEXEC);
    if (mfd < 0)
        return sbx_neg_errno();
    int r = seccomp_export_bpf(ctx, mfd);
    if (r < 0)
        return r;
    off_t size = lseek(mfd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0)
        return -EINVAL;
    size_t n = (size_t)size / sizeof(struct sock_filter);
    if (n + n_prefix > BPF_MAXINSNS)
        return -E2BIG;
    SBX_AUTOFREE struct sock_filter *insns = malloc((n + n_prefix) * sizeof *insns);
    if (!insns)
        return -ENOMEM;
    if (n_prefix)
        memcpy(insns, prefix, n_prefix * sizeof *prefix);
    if (pread(mfd, insns + n_prefix, (size_t)size, 0) != size)
        return -EIO;
    *len = n + n_prefix;
    *out = sbx_steal_ptr(&insns);
    return 0;
}

scmp_filter_ctx sbx_seccomp_ctx_new(uint32_t def_action)
{
    scmp_filter_ctx ctx = seccomp_init(def_action);
    if (ctx)
        (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); /* libseccomp >= 2.5 */
    return ctx;
}

void sbx_bpf_foreign_prefix(struct sock_filter out[SBX_BPF_FOREIGN_PREFIX_LEN], unsigned ret)
{
    const struct sock_filter prefix[SBX_BPF_FOREIGN_PREFIX_LEN] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, ret),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, ret),
    };
    memcpy(out, prefix, sizeof prefix);
}
