/* sbx — compile a policy object into the low-level buffer, and the public
 * decision API built on it (with a per-policy cache of the compiled form).
 *
 * Layering note: the policy layer calls down... sideways into each
 * subsystem's generator (subsys/files/files_policy.c), the seed's
 * PolicyBase::AddRuleInternal switch. */
#include "policy/compile.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>

#include "base/cleanup.h"
#include "policy/engine.h"
#include "policy/policy_object.h"
#include "subsys/files/files_policy.h"

static void builder_cleanup(sbx_pol_builder **b)
{
    sbx_pol_builder_free(*b);
}

int sbx_policy_compile(const sbx_policy *policy, void **buf, size_t *size, sbx_policy_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    if (!policy || !buf || !size)
        return -EINVAL;
    SBX_CLEANUP(builder_cleanup) sbx_pol_builder *b = sbx_pol_builder_new();
    if (!b)
        return -ENOMEM;
    int r = sbx_files_policy_setup(b);
    if (r < 0)
        return r;
    /* Two passes: every deny before any allow, so a deny wins whatever the
     * order the rules were added in. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < policy->n_rules; i++) {
            const sbx_policy_rule *ru = &policy->rules[i];
            if (ru->subsys != SBX_SUBSYS_FILES || (ru->semantics == SBX_FILES_DENY) != (pass == 0))
                continue;
            r = sbx_files_policy_generate(b, ru->pattern, ru->semantics, (uint32_t)i, ru->origin, err);
            if (r < 0)
                return r;
        }
    }
    return sbx_pol_builder_finish(b, buf, size);
}

/* The cache: compiled once per rule count (rules are append-only, so the
 * count identifies the content), under the cache's lock. */
struct sbx_policy_cache {
    pthread_mutex_t lock;
    void *buf;
    size_t size;
    size_t n_rules;
};

sbx_policy_cache *sbx_policy_cache_new(void)
{
    sbx_policy_cache *c = calloc(1, sizeof *c);
    if (c)
        pthread_mutex_init(&c->lock, NULL);
    return c;
}

void sbx_policy_cache_free(sbx_policy_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->buf);
    free(c);
}

/* With c->lock held: make the cached buffer current. */
static int cache_refresh(const sbx_policy *policy, sbx_policy_cache *c)
{
    if (c->buf && c->n_rules == policy->n_rules)
        return 0;
    void *buf = NULL;
    size_t size = 0;
    int r = sbx_policy_compile(policy, &buf, &size, NULL);
    if (r < 0)
        return r;
    free(c->buf);
    c->buf = buf;
    c->size = size;
    c->n_rules = policy->n_rules;
    return 0;
}

static void copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static const char *const semantics_names[] = {
    [SBX_FILES_ALLOW_ANY] = "ALLOW_ANY", [SBX_FILES_ALLOW_READONLY] = "ALLOW_READONLY",
    [SBX_FILES_ALLOW_QUERY] = "ALLOW_QUERY", [SBX_FILES_ALLOW_DIR_ANY] = "ALLOW_DIR_ANY",
    [SBX_FILES_DENY] = "DENY",
};

SBX_API int sbx_policy_check_files(const sbx_policy *policy, const sbx_files_request *req,
                                   sbx_decision *out)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->action = SBX_ACTION_DENY_ACCESS;
    out->rule = -1;
    if (!policy || !policy->cache || !req) {
        snprintf(out->reason, sizeof out->reason, "bad arguments");
        return -EINVAL;
    }
    if (!req->path || !sbx_files_path_is_canonical(req->path, strnlen(req->path, SBX_POL_MAX_STRING + 1))) {
        snprintf(out->reason, sizeof out->reason, "path is not canonical (absolute, no . .. // or trailing /)");
        return -EINVAL;
    }
    if ((int)req->op <= 0 || req->op >= SBX_FILES_OP_COUNT_) {
        snprintf(out->reason, sizeof out->reason, "unknown operation");
        return -EINVAL;
    }
    sbx_policy_cache *c = policy->cache;
    pthread_mutex_lock(&c->lock);
    int r = cache_refresh(policy, c);
    sbx_files_verdict v;
    if (r == 0)
        r = sbx_files_policy_eval(c->buf, c->size, req, &v);
    pthread_mutex_unlock(&c->lock);
    if (r < 0) {
        snprintf(out->reason, sizeof out->reason, "evaluation failed: %s", sbx_strerror(r));
        return r;
    }
    out->action = v.action;
    if (!v.matched) {
        snprintf(out->reason, sizeof out->reason, "no rule matched");
        return 0;
    }
    out->rule = v.rule;
    if (v.rule >= 0 && (size_t)v.rule < policy->n_rules) {
        const sbx_policy_rule *ru = &policy->rules[v.rule];
        out->semantics = ru->semantics;
        copy_str(out->pattern, sizeof out->pattern, ru->pattern, strlen(ru->pattern));
        if (ru->origin)
            copy_str(out->origin, sizeof out->origin, ru->origin, strlen(ru->origin));
        snprintf(out->reason, sizeof out->reason, "matched %s rule #%d", semantics_names[ru->semantics],
                 v.rule);
    }
    return 0;
}

SBX_API int sbx_policy_dump(const sbx_policy *policy, FILE *out)
{
    if (!policy || !policy->cache || !out)
        return -EINVAL;
    sbx_policy_cache *c = policy->cache;
    pthread_mutex_lock(&c->lock);
    int r = cache_refresh(policy, c);
    if (r == 0)
        r = sbx_pol_dump(c->buf, c->size, sbx_files_service_names, SBX_FILES_OP_COUNT_, out);
    pthread_mutex_unlock(&c->lock);
    return r;
}
