/* sbx internal — libseccomp filters as raw BPF in memory.
 *
 * Filters are compiled in a parent (which may allocate) and loaded later
 * where allocation is not allowed (a child between fork and exec, a
 * constructor that must not leave state behind), so every filter is
 * exported once to an instruction array. libseccomp 2.5 only exports to an
 * fd; this goes through a memfd. */
#ifndef SBX_BASE_BPF_EXPORT_H
#define SBX_BASE_BPF_EXPORT_H

#include <linux/filter.h>
#include <stddef.h>
#include <seccomp.h>

/* Export ctx's program with `prefix` (n_prefix instructions, may be 0)
 * placed before it. On success *out is a malloc'd array the caller frees
 * and *len its instruction count (<= BPF_MAXINSNS). 0 or a negative errno
 * / libseccomp code. Not async-signal-safe. */
int sbx_bpf_export(scmp_filter_ctx ctx, const struct sock_filter *prefix, size_t n_prefix,
                   struct sock_filter **out, size_t *len);

/* A prefix answering `ret` for every call of another arch than x86_64
 * (i386 via int 0x80) and every x32-numbered call, before the program's
 * own arch check (libseccomp's bad-arch path, which can only kill or
 * refuse, not notify). */
/* seccomp_init(def_action) with libseccomp's binary-tree layout: a
 * syscall's path through the program is logarithmic in the number of
 * rules, not linear — for every call the target makes, and for the
 * kernel's action cache, which runs the program for every syscall number
 * when the filter is attached (a spawn cost). NULL on allocation failure;
 * the caller releases it with seccomp_release. */
scmp_filter_ctx sbx_seccomp_ctx_new(uint32_t def_action);

#define SBX_BPF_FOREIGN_PREFIX_LEN 6
void sbx_bpf_foreign_prefix(struct sock_filter out[SBX_BPF_FOREIGN_PREFIX_LEN], unsigned ret);

#endif
