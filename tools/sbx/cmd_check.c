/* sbx command — `sbx check`: what the policy decides for one access. */
#include "cli_policy.h"
#include "commands.h"
#include "exit_codes.h"

int sbx_cmd_check(const sbx_cli *cli)
{
    sbx_cli_vars vars;
    sbx_cli_vars_init(&vars, NULL);
    sbx_policy *policy = NULL;
    int r = sbx_cli_build_policy(cli, &vars.vars, true, &policy);
    if (r)
        return r;
    sbx_policy_unref(policy);
    fprintf(stderr, "sbx: check: the policy evaluator is not built into this sbx yet\n");
    return SBX_EXIT_FAILURE;
}
