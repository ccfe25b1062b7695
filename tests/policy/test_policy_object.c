#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sbx/error.h>

#include "policy/policy_object.h"

Test(policy_object, defaults)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_not_null(p);
    cr_expect_not(sbx_policy_is_frozen(p));
    cr_expect_eq(p->uid, 65534);
    cr_expect_eq(p->net, SBX_NET_NONE);
    cr_expect_eq(p->deny_errno, EACCES);
    cr_expect(p->default_view);
    cr_expect_not(sbx_policy_needs_broker(p));
    /* job LIMITED preset is the default */
    cr_expect_eq(sbx_policy_effective_limit(p, SBX_LIMIT_MEMORY), 1ull << 30);
    cr_expect_eq(sbx_policy_effective_limit(p, SBX_LIMIT_FILE_SIZE), SBX_LIMIT_UNSET);
    sbx_policy_unref(p);
}

Test(policy_object, explicit_limit_wins_over_preset_in_any_order)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_eq(sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 64ull << 20), 0);
    cr_assert_eq(sbx_policy_set_job_level(p, SBX_JOB_INTERACTIVE), 0);
    cr_expect_eq(sbx_policy_effective_limit(p, SBX_LIMIT_MEMORY), 64ull << 20);
    cr_expect_eq(sbx_policy_effective_limit(p, SBX_LIMIT_PROCESSES), 1024);
    cr_expect_eq(sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, SBX_LIMIT_UNSET), 0);
    cr_expect_eq(sbx_policy_effective_limit(p, SBX_LIMIT_MEMORY), 4ull << 30);
    cr_expect_eq(sbx_policy_set_limit(p, SBX_LIMIT_COUNT_, 1), -EINVAL);
    cr_expect_eq(sbx_policy_set_limit(p, SBX_LIMIT_CPU_SECONDS, 0), -EINVAL);
    sbx_policy_unref(p);
}

Test(policy_object, rules_stored_with_origin)
{
    sbx_policy *p = sbx_policy_new();
    sbx_policy_error err;
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, "/usr/**",
                                        "a.policy:3", &err), 0);
    cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/home/*/.ssh/**"), 0);
    cr_expect_eq(p->n_rules, 2);
    cr_expect_str_eq(p->rules[0].pattern, "/usr/**");
    cr_expect_str_eq(p->rules[0].origin, "a.policy:3");
    cr_expect_null(p->rules[1].origin);
    cr_expect(sbx_policy_needs_broker(p));
    sbx_policy_unref(p);
}

Test(policy_object, bad_rules_rejected_with_detail)
{
    sbx_policy *p = sbx_policy_new();
    sbx_policy_error err;
    cr_expect_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "relative/x", NULL, &err),
                 SBX_ERROR_BAD_PATTERN);
    cr_expect_eq(err.code, SBX_ERROR_BAD_PATTERN);
    cr_expect_eq(err.column, 1);
    cr_expect_neq(err.message[0], '\0');
    cr_expect_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, 99, "/x"), -EINVAL);
    cr_expect_eq(sbx_policy_add_rule(p, (sbx_subsystem)7, SBX_FILES_ALLOW_ANY, "/x"), -EINVAL);
    cr_expect_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, NULL), SBX_ERROR_BAD_PATTERN);
    cr_expect_eq(sbx_policy_add_rule(NULL, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/x"), -EINVAL);
    cr_expect_eq(p->n_rules, 0);
    sbx_policy_unref(p);
}

Test(policy_object, frozen_policy_refuses_every_setter)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_eq(sbx_policy_freeze(p), 0);
    cr_assert_eq(sbx_policy_freeze(p), 0);
    cr_expect(sbx_policy_is_frozen(p));
    cr_expect_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/x"), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, 1), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_lockdown_level(p, SBX_LOCKDOWN_LIMITED), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_job_level(p, SBX_JOB_NONE), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_net(p, SBX_NET_LOOPBACK), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_backend(p, SBX_BACKEND_TRAP), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_identity(p, 1000, 1000), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_share_fd(p, 0, 5), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_add_view(p, "/opt", 0), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_default_view(p, false), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_mitigations(p, 0), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_deny_errno(p, EPERM), SBX_ERROR_FROZEN);
    cr_expect_eq(sbx_policy_set_audit(p, true), SBX_ERROR_FROZEN);
    cr_expect_eq(p->n_rules, 0);
    sbx_policy_unref(p);
}

Test(policy_object, setters_validate)
{
    sbx_policy *p = sbx_policy_new();
    cr_expect_eq(sbx_policy_set_net(p, (sbx_net_mode)5), -EINVAL);
    cr_expect_eq(sbx_policy_set_backend(p, (sbx_backend)9), -EINVAL);
    cr_expect_eq(sbx_policy_set_lockdown_level(p, (sbx_lockdown_level)0), -EINVAL);
    cr_expect_eq(sbx_policy_set_identity(p, (uid_t)-1, 0), -EINVAL);
    cr_expect_eq(sbx_policy_share_fd(p, -1, 5), -EBADF);
    cr_expect_eq(sbx_policy_share_fd(p, 0, 2), -EINVAL);
    cr_expect_eq(sbx_policy_share_fd(p, 0, 5), 0);
    cr_expect_eq(sbx_policy_share_fd(p, 1, 5), -EINVAL, "same target fd twice");
    for (int i = 6; i < 6 + SBX_POLICY_MAX_SHARED_FDS - 1; i++)
        cr_expect_eq(sbx_policy_share_fd(p, 0, i), 0);
    cr_expect_eq(sbx_policy_share_fd(p, 0, 1000), -E2BIG);
    cr_expect_eq(sbx_policy_add_view(p, "opt", 0), -EINVAL);
    cr_expect_eq(sbx_policy_add_view(p, "/opt", 1u << 9), -EINVAL);
    cr_expect_eq(sbx_policy_add_view(p, "/opt", SBX_VIEW_OPTIONAL | SBX_VIEW_EXEC), 0);
    cr_expect_eq(sbx_policy_set_mitigations(p, 1ull << 40), -EINVAL);
    cr_expect_eq(sbx_policy_set_deny_errno(p, EINVAL), -EINVAL);
    cr_expect_eq(sbx_policy_set_deny_errno(p, ENOENT), 0);
    sbx_policy_unref(p);
}

Test(policy_object, refcount_keeps_policy_alive)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_eq(sbx_policy_ref(p), p);
    sbx_policy_unref(p);
    /* still alive: one reference left (ASan would flag a use after free) */
    cr_expect_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/x"), 0);
    sbx_policy_unref(p);
    sbx_policy_unref(NULL);
    cr_expect_null(sbx_policy_ref(NULL));
}
