/* sbx command — `sbx run`: everything up to the spawn. The policy is built
 * and checked, PROGRAM is resolved (126/127 are decided here, before any
 * sandbox exists) and made visible in the native view, the options are
 * validated; then the broker takes over. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sbx/error.h>
#include <sbx/policy.h>

#include "cli_policy.h"
#include "cli_prep.h"
#include "commands.h"
#include "exit_codes.h"

int sbx_cmd_run(const sbx_cli *cli)
{
    /* When the runtime is wired: create the scratch directory first
     * (sbx_cli_scratch_create) and pass it here, so ${SCRATCH} names it. */
    sbx_cli_vars vars;
    sbx_cli_vars_init(&vars, NULL);
    sbx_policy *policy = NULL;
    int r = sbx_cli_build_policy(cli, &vars.vars, true, &policy);
    if (r)
        return r;
    if (cli->cwd && strcmp(cli->cwd, "scratch") != 0) {
        struct stat st;
        if (stat(cli->cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "sbx: run: --cwd: '%s' is not a directory (give a directory or "
                            "'scratch')\n", cli->cwd);
            sbx_policy_unref(policy);
            return SBX_EXIT_FAILURE;
        }
    }
    char path[PATH_MAX];
    r = sbx_cli_resolve_program(cli->program_argv[0], getenv("PATH"), path, sizeof path);
    if (r) {
        sbx_policy_unref(policy);
        return r;
    }
    int v = sbx_cli_add_program_views(policy, path, getenv("PATH"));
    if (v < 0) {
        fprintf(stderr, "sbx: run: %s: cannot make the program visible to the target: %s\n",
                cli->program_argv[0], sbx_strerror(v));
        sbx_policy_unref(policy);
        return SBX_EXIT_FAILURE;
    }
    sbx_policy_unref(policy);
    /* The broker (spawn, events, interception) is wired here when it lands:
     * scratch via sbx_cli_scratch_create, environment via sbx_cli_build_env. */
    fprintf(stderr, "sbx: run: the sandbox runtime is not built yet (nothing was run; try "
                    "'sbx check' or 'sbx policy compile')\n");
    return SBX_EXIT_FAILURE;
}
