/* sbx internal — the runtime layer: the broker's default hooks, which make
 * a spawned target a served sandbox (IPC section + server, notify
 * interception with the files dispatcher, the policy adapter, audit).
 *
 * One sbx_runtime per broker, created by sbx_broker_new and installed as its
 * hooks; freed by sbx_broker_free after every target is gone. */
#ifndef SBX_BROKER_RUNTIME_H
#define SBX_BROKER_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include <sbx/broker.h>

#include "broker/broker_internal.h"
#include "subsys/files/files_dispatcher.h"

typedef struct sbx_runtime sbx_runtime;

/* Create the runtime for `broker` (borrowed; it outlives the runtime) and
 * fill *hooks with its hook table. Builds the notify filter now (before any
 * fork). 0 or -errno. */
int sbx_runtime_new(sbx_broker *broker, sbx_runtime **out, sbx_broker_hooks *hooks);
/* After every target's on_target_exit ran. NULL is a no-op. */
void sbx_runtime_free(sbx_runtime *rt);

int sbx_runtime_set_audit(sbx_runtime *rt, sbx_audit_fn fn, void *ud);

/* Does a target under `policy` need interception (brokered rules, audit, or
 * a deny rule inside its native view)? Async-signal-safe (no allocation). */
bool sbx_runtime_needs_interception(const sbx_policy *policy);

/* Does a trap target under `policy` get native re-issue (the notify
 * filter passes the trap's magic, the files IPC may answer NATIVE, the
 * shim gets SBX_TRAP_NATIVE=1)? Only for SBX_BACKEND_TRAP, only while
 * Landlock confines the target and no deny rule lies inside its view.
 * Async-signal-safe. */
bool sbx_runtime_trap_native(const sbx_policy *policy, bool landlock);

/* Is an audit callback set (sbx_runtime_set_audit)? NULL rt: false. */
bool sbx_runtime_has_audit(sbx_runtime *rt);

/* Does a target's interception (notify) filter carry the baseline's
 * denials as notifications (answered EPERM by the broker and reported)?
 * In EPERM mode, for targets with interception. Targets without it get a
 * filter of the denials alone (sbx_baseline_build_notify); either way
 * their init loads no baseline (sbx_broker_hooks.reports_denials).
 * Async-signal-safe. */
bool sbx_runtime_reports_denials(const sbx_policy *policy);

/* Baseline denials of target `id` refused but not reported as DENIED
 * (past the rate limit), for its end event. 0 for an unknown id. */
uint64_t sbx_runtime_denials_unreported(sbx_runtime *rt, uint64_t id);

/* The preload shim trap targets get (absolute path; borrowed, lives as
 * long as rt), or NULL when none was found ($SBX_PRELOAD, then the
 * installed copy). NULL rt: NULL. */
const char *sbx_runtime_preload(const sbx_runtime *rt);

/* True if a deny rule's literal prefix lies inside (or above) a tree of the
 * native view: such a target gets no CONTINUE at all. Async-signal-safe. */
bool sbx_runtime_deny_in_view(const sbx_policy *policy);

/* One tree of a policy's native view, its length measured once. */
typedef struct sbx_runtime_view_tree {
    const char *path; /* canonical; borrowed from the policy or a static table */
    size_t len;
    bool writable;
} sbx_runtime_view_tree;

/* The policy adapter (an sbx_files_decide_fn) over a context made by
 * sbx_runtime_decider_init: exposed for unit tests. */
typedef struct sbx_runtime_decider {
    const sbx_policy *policy; /* borrowed */
    const void *buf;          /* the broker's private compiled copy (borrowed) */
    size_t size;
    bool deny_in_view;
    int root_fd;              /* the broker's "/" (for is_dir lookups; borrowed) */
    const char *preload;      /* the trap shim's path: native read-only (NULL: none) */
    size_t preload_len;
    /* The policy's native view (owned), read on every decision: built
     * once, the policy being frozen. */
    sbx_runtime_view_tree *trees;
    unsigned char *tree_second; /* trees[i].path[1], one byte each (in trees' block) */
    size_t n_trees;
} sbx_runtime_decider;

/* Set *d up for `policy` (frozen; borrowed, like buf, root_fd and
 * preload, for d's life). 0 or -ENOMEM; sbx_runtime_decider_destroy
 * frees what it holds (also after a failed init). */
int sbx_runtime_decider_init(sbx_runtime_decider *d, const sbx_policy *policy, const void *buf,
                             size_t size, int root_fd, const char *preload);
void sbx_runtime_decider_destroy(sbx_runtime_decider *d);

int sbx_runtime_decide(void *ctx, const sbx_files_query *req, sbx_files_decision *out);

/* Test seam: the target's section fd as the broker holds it (-1 if none),
 * e.g. to scribble on it. Borrowed. */
int sbx_runtime_section_fd(sbx_runtime *rt, uint64_t target_id);
/* Test seam: use `buf` (copied) as the compiled form of `policy` (which
 * gets frozen and referenced) for every later target under it, instead of
 * compiling its rules: lets tests reach actions the high-level rules never
 * produce. 0 or -errno. */
int sbx_runtime_seed_compiled(sbx_runtime *rt, sbx_policy *policy, const void *buf, size_t size);
/* Test seam: cross calls served over the shared-memory IPC so far, for
 * every target of rt (live and gone): the trap fast path's traffic. */
uint64_t sbx_runtime_ipc_calls(sbx_runtime *rt);
/* Test seam: live per-target records. */
size_t sbx_runtime_live_targets(sbx_runtime *rt);
/* Test seam: policies compiled so far (a cached one is not recompiled). */
uint64_t sbx_runtime_compiles(sbx_runtime *rt);

#endif
