/* sbx internal — the policy object's contents, read by the rule compiler
 * (src/policy) and by the broker at spawn (src/broker). Only policy.c
 * writes these fields, through the public setters. */
#ifndef SBX_POLICY_OBJECT_H
#define SBX_POLICY_OBJECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sbx/policy.h>

#define SBX_POLICY_MAX_SHARED_FDS 32
#define SBX_POLICY_MAX_RULES 100000
#define SBX_POLICY_MAX_VIEWS 256

typedef struct sbx_policy_rule {
    sbx_subsystem subsys;
    int semantics;
    char *pattern; /* owned */
    char *origin;  /* owned; may be NULL */
} sbx_policy_rule;

typedef struct sbx_policy_view {
    char *path; /* owned, absolute */
    unsigned flags; /* sbx_view_flags */
} sbx_policy_view;

typedef struct sbx_policy_shared_fd {
    int broker_fd; /* borrowed from the caller */
    int target_fd;
} sbx_policy_shared_fd;

/* The compiled-form cache of sbx_policy_check_files / sbx_policy_dump
 * (src/policy/compile.c); mutable behind a const policy, own lock. */
typedef struct sbx_policy_cache sbx_policy_cache;
sbx_policy_cache *sbx_policy_cache_new(void);
void sbx_policy_cache_free(sbx_policy_cache *cache);

struct sbx_policy {
    atomic_uint refs;
    atomic_bool frozen;

    sbx_policy_rule *rules;
    size_t n_rules, cap_rules;

    sbx_lockdown_level lockdown;
    sbx_job_level job;
    uint64_t limits[SBX_LIMIT_COUNT_]; /* SBX_LIMIT_UNSET when not set explicitly */

    sbx_net_mode net;
    sbx_backend backend;
    uint32_t uid, gid;

    sbx_policy_shared_fd shared_fds[SBX_POLICY_MAX_SHARED_FDS];
    size_t n_shared_fds;

    sbx_policy_view *views;
    size_t n_views, cap_views;
    bool default_view;

    uint64_t mitigations;
    int deny_errno;
    bool audit;

    sbx_policy_cache *cache; /* owned */
};

/* The limit in force: the explicit one if set, else the job preset's,
 * else SBX_LIMIT_UNSET. */
uint64_t sbx_policy_effective_limit(const sbx_policy *policy, sbx_limit limit);

/* True if any rule needs the broker (any allow rule; deny-only policies are
 * enforced by absence from the native view). */
bool sbx_policy_needs_broker(const sbx_policy *policy);

#endif
