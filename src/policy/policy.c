/* sbx — the policy object: storage, reference counting, freezing, setters.
 * Compiling rules to opcodes is the rule compiler's job (src/policy). */
#include "policy/policy_object.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>

#include "base/cleanup.h"
#include "policy/engine.h"

SBX_API sbx_policy *sbx_policy_new(void)
{
    sbx_policy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cache = sbx_policy_cache_new();
    if (!p->cache) {
        free(p);
        return NULL;
    }
    atomic_init(&p->refs, 1);
    atomic_init(&p->frozen, false);
    p->lockdown = SBX_LOCKDOWN_LOCKDOWN;
    p->job = SBX_JOB_LIMITED;
    for (int i = 0; i < SBX_LIMIT_COUNT_; i++)
        p->limits[i] = SBX_LIMIT_UNSET;
    p->net = SBX_NET_NONE;
    p->backend = SBX_BACKEND_AUTO;
    p->uid = 65534;
    p->gid = 65534;
    p->default_view = true;
    p->deny_errno = EACCES;
    return p;
}

SBX_API sbx_policy *sbx_policy_ref(sbx_policy *policy)
{
    if (policy)
        atomic_fetch_add(&policy->refs, 1);
    return policy;
}

SBX_API void sbx_policy_unref(sbx_policy *policy)
{
    if (!policy || atomic_fetch_sub(&policy->refs, 1) != 1)
        return;
    for (size_t i = 0; i < policy->n_rules; i++) {
        free(policy->rules[i].pattern);
        free(policy->rules[i].origin);
    }
    free(policy->rules);
    for (size_t i = 0; i < policy->n_views; i++)
        free(policy->views[i].path);
    free(policy->views);
    sbx_policy_cache_free(policy->cache);
    free(policy);
}

SBX_API int sbx_policy_freeze(sbx_policy *policy)
{
    if (!policy)
        return -EINVAL;
    atomic_store(&policy->frozen, true);
    return 0;
}

SBX_API bool sbx_policy_is_frozen(const sbx_policy *policy)
{
    return policy && atomic_load(&policy->frozen);
}

/* Common guard of every setter. */
static int modifiable(const sbx_policy *policy)
{
    if (!policy)
        return -EINVAL;
    if (atomic_load(&policy->frozen))
        return SBX_ERROR_FROZEN;
    return 0;
}

static void set_error(sbx_policy_error *err, int code, unsigned column, const char *msg)
{
    if (!err)
        return;
    err->code = code;
    err->column = column;
    snprintf(err->message, sizeof err->message, "%s", msg);
}

static bool valid_semantics(sbx_subsystem subsys, int semantics)
{
    return subsys == SBX_SUBSYS_FILES && semantics >= SBX_FILES_ALLOW_ANY &&
           semantics <= SBX_FILES_DENY;
}

SBX_API int sbx_policy_add_rule_ex(sbx_policy *policy, sbx_subsystem subsys, int semantics,
                                   const char *pattern, const char *origin,
                                   sbx_policy_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    int r = modifiable(policy);
    if (r < 0) {
        set_error(err, r, 0, r == SBX_ERROR_FROZEN ? "policy is frozen" : "no policy");
        return r;
    }
    if (!valid_semantics(subsys, semantics)) {
        set_error(err, -EINVAL, 0, "unknown subsystem or semantics");
        return -EINVAL;
    }
    r = sbx_pattern_check(pattern, err);
    if (r < 0)
        return r;
    if (policy->n_rules >= SBX_POLICY_MAX_RULES) {
        set_error(err, SBX_ERROR_TOO_LARGE, 0, "too many rules");
        return SBX_ERROR_TOO_LARGE;
    }
    if (policy->n_rules == policy->cap_rules) {
        size_t ncap = policy->cap_rules ? policy->cap_rules * 2 : 16;
        sbx_policy_rule *n = realloc(policy->rules, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        policy->rules = n;
        policy->cap_rules = ncap;
    }
    SBX_AUTOFREE char *pat = strdup(pattern);
    SBX_AUTOFREE char *org = origin ? strdup(origin) : NULL;
    if (!pat || (origin && !org))
        return -ENOMEM;
    policy->rules[policy->n_rules++] = (sbx_policy_rule){
        .subsys = subsys,
        .semantics = semantics,
        .pattern = sbx_steal_ptr(&pat),
        .origin = sbx_steal_ptr(&org),
    };
    return 0;
}

SBX_API int sbx_policy_validate_pattern(const char *pattern, sbx_policy_error *err)
{
    return sbx_pattern_check(pattern, err);
}

SBX_API int sbx_policy_add_rule(sbx_policy *policy, sbx_subsystem subsys, int semantics,
                                const char *pattern)
{
    return sbx_policy_add_rule_ex(policy, subsys, semantics, pattern, NULL, NULL);
}

SBX_API int sbx_policy_set_lockdown_level(sbx_policy *policy, sbx_lockdown_level level)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    if (level < SBX_LOCKDOWN_INTERACTIVE || level > SBX_LOCKDOWN_LOCKDOWN)
        return -EINVAL;
    policy->lockdown = level;
    return 0;
}

SBX_API int sbx_policy_set_job_level(sbx_policy *policy, sbx_job_level level)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    if (level < SBX_JOB_NONE || level > SBX_JOB_LOCKDOWN)
        return -EINVAL;
    policy->job = level;
    return 0;
}

SBX_API int sbx_policy_set_limit(sbx_policy *policy, sbx_limit limit, uint64_t value)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    if ((int)limit < 0 || limit >= SBX_LIMIT_COUNT_)
        return -EINVAL;
    if (value == 0)
        return -EINVAL; /* a zero limit would make the target unstartable */
    policy->limits[limit] = value;
    return 0;
}

/* The job presets (docs/policy.md). */
static const uint64_t job_presets[][SBX_LIMIT_COUNT_] = {
    [SBX_JOB_NONE] = { SBX_LIMIT_UNSET, SBX_LIMIT_UNSET, SBX_LIMIT_UNSET, SBX_LIMIT_UNSET, SBX_LIMIT_UNSET },
    [SBX_JOB_INTERACTIVE] = { 4ull << 30, 1024, SBX_LIMIT_UNSET, 4096, SBX_LIMIT_UNSET },
    [SBX_JOB_LIMITED] = { 1ull << 30, 256, 300, 1024, SBX_LIMIT_UNSET },
    [SBX_JOB_LOCKDOWN] = { 256ull << 20, 16, 60, 256, 1ull << 30 },
};

uint64_t sbx_policy_effective_limit(const sbx_policy *policy, sbx_limit limit)
{
    if ((int)limit < 0 || limit >= SBX_LIMIT_COUNT_)
        return SBX_LIMIT_UNSET;
    if (policy->limits[limit] != SBX_LIMIT_UNSET)
        return policy->limits[limit];
    return job_presets[policy->job][limit];
}

SBX_API int sbx_policy_set_net(sbx_policy *policy, sbx_net_mode mode)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    if (mode != SBX_NET_NONE && mode != SBX_NET_LOOPBACK)
        return -EINVAL;
    policy->net = mode;
    return 0;
}

SBX_API int sbx_policy_set_backend(sbx_policy *policy, sbx_backend backend)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    if (backend < SBX_BACKEND_AUTO || backend > SBX_BACKEND_TRAP)
        return -EINVAL;
    policy->backend = backend;
    return 0;
}

SBX_API int sbx_policy_set_identity(sbx_policy *policy, uid_t uid, gid_t gid)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    /* (uid_t)-1 is "no change" to the kernel; never a real identity. */
    if (uid == (uid_t)-1 || gid == (gid_t)-1)
        return -EINVAL;
    policy->uid = uid;
    policy->gid = gid;
    return 0;
}

SBX_API int sbx_policy_share_fd(sbx_policy *policy, int broker_fd, int target_fd)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    if (broker_fd < 0)
        return -EBADF;
    if (target_fd < 3)
        return -EINVAL;
    for (size_t i = 0; i < policy->n_shared_fds; i++)
        if (policy->shared_fds[i].target_fd == target_fd)
            return -EINVAL;
    if (policy->n_shared_fds >= SBX_POLICY_MAX_SHARED_FDS)
        return -E2BIG;
    policy->shared_fds[policy->n_shared_fds++] =
        (sbx_policy_shared_fd){ .broker_fd = broker_fd, .target_fd = target_fd };
    return 0;
}

SBX_API int sbx_policy_add_view(sbx_policy *policy, const char *path, unsigned flags)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    if (!path || path[0] != '/' || strlen(path) >= 4096)
        return -EINVAL;
    if (flags & ~(unsigned)(SBX_VIEW_WRITABLE | SBX_VIEW_OPTIONAL | SBX_VIEW_EXEC))
        return -EINVAL;
    if (policy->n_views >= SBX_POLICY_MAX_VIEWS)
        return -E2BIG;
    if (policy->n_views == policy->cap_views) {
        size_t ncap = policy->cap_views ? policy->cap_views * 2 : 8;
        sbx_policy_view *n = realloc(policy->views, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        policy->views = n;
        policy->cap_views = ncap;
    }
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    policy->views[policy->n_views++] = (sbx_policy_view){ .path = copy, .flags = flags };
    return 0;
}

SBX_API int sbx_policy_set_default_view(sbx_policy *policy, bool enabled)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    policy->default_view = enabled;
    return 0;
}

SBX_API int sbx_policy_set_mitigations(sbx_policy *policy, uint64_t flags)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    const uint64_t known = SBX_MITIGATION_KILL_ON_DENIED_SYSCALL | SBX_MITIGATION_ALLOW_TTY |
                           SBX_MITIGATION_ALLOW_CHILDREN;
    if (flags & ~known)
        return -EINVAL;
    policy->mitigations = flags;
    return 0;
}

SBX_API int sbx_policy_set_deny_errno(sbx_policy *policy, int errno_value)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    if (errno_value != EACCES && errno_value != EPERM && errno_value != ENOENT)
        return -EINVAL;
    policy->deny_errno = errno_value;
    return 0;
}

SBX_API int sbx_policy_set_audit(sbx_policy *policy, bool enabled)
{
    int r = modifiable(policy);
    if (r < 0)
        return r;
    policy->audit = enabled;
    return 0;
}

bool sbx_policy_needs_broker(const sbx_policy *policy)
{
    for (size_t i = 0; i < policy->n_rules; i++)
        if (policy->rules[i].semantics != SBX_FILES_DENY)
            return true;
    return false;
}
