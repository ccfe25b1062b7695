/* sbx internal — the baseline seccomp filter of every target (the
 * initial phase's deny list), compiled in the broker with libseccomp and
 * loaded in the child as raw BPF (the child must not allocate). */
#ifndef SBX_BROKER_BASELINE_H
#define SBX_BROKER_BASELINE_H

#include <linux/filter.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sbx_bpf {
    struct sock_filter *insns; /* owned */
    unsigned short len;
} sbx_bpf;

/* Build the baseline: `kill` makes denied calls kill the process
 * (SIGSYS) instead of returning EPERM. Returns 0 or -errno. */
int sbx_baseline_build(sbx_bpf *out, bool kill);
/* The same deny list as notifications (SECCOMP_RET_USER_NOTIF), foreign
 * ABIs included, everything else allowed: the reporting filter of a target
 * without interception (the broker answers each EPERM and reports it).
 * Load it with a new listener (sbx_notify_filter_install). */
int sbx_baseline_build_notify(sbx_bpf *out);
/* The same, with the "no child processes" rules in front (lockdown level):
 * one filter to attach instead of two. The answers are those of the pair
 * stacked (fork, vfork and clone without CLONE_THREAD: EPERM, which a
 * stacked pair would give too, since an error wins over a notification). */
int sbx_baseline_build_notify_nochildren(sbx_bpf *out);
/* The baseline's rules, with `deny` as the action of every denial (the
 * notify filter of a reporting target adds them as SCMP_ACT_NOTIFY).
 * Rules already present for a syscall are kept. 0 or a libseccomp code. */
int sbx_baseline_add_rules(scmp_filter_ctx ctx, uint32_t deny);
/* The "no child processes" filter (lockdown level): fork, vfork and clone
 * without CLONE_THREAD fail with EPERM; threads stay allowed. */
int sbx_nochildren_build(sbx_bpf *out);
void sbx_bpf_free(sbx_bpf *bpf);

/* Load a filter on the calling thread (no_new_privs must be set).
 * Async-signal-safe. Returns 0 or -errno. */
int sbx_bpf_load(const sbx_bpf *bpf);

#endif
