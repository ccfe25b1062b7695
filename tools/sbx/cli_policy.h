/* sbx command — building a policy from the command line's sources
 * (--policy, --profile, --allow-*, --deny) and the policy variables. */
#ifndef SBX_TOOL_CLI_POLICY_H
#define SBX_TOOL_CLI_POLICY_H

#include <stdbool.h>
#include <stdio.h>

#include <sbx/policy.h>
#include <sbx/policyfile.h>

#include "cli_args.h"

/* Storage behind the ${HOME} ${CWD} ${SCRATCH} ${UID} values. */
typedef struct sbx_cli_vars {
    char home[4096];
    char cwd[4096];
    char scratch[4096];
    char uid[32];
    sbx_policy_vars vars; /* points into the arrays above */
} sbx_cli_vars;

/* Fill the variables from the environment: $HOME (else the passwd entry),
 * the current directory, the real uid. `scratch` is the scratch directory
 * of this run; NULL gives the placeholder "$TMPDIR/sbx-scratch" used by
 * commands that run nothing (check, policy compile). */
void sbx_cli_vars_init(sbx_cli_vars *v, const char *scratch);

/* A new policy from cli's sources in order. With `default_profile`, the
 * `default` profile comes first when no --policy or --profile was given.
 * On error prints one line to stderr ("sbx: ...") and returns
 * SBX_EXIT_FAILURE; else 0 with *out owned by the caller. */
int sbx_cli_build_policy(const sbx_cli *cli, const sbx_policy_vars *vars, bool default_profile,
                         sbx_policy **out);

/* The policy-language lines ("limit memory 512M\n", "limit cpu 30s\n",
 * "mitigation allow-tty\n", ...) for the limits and --tty given on the
 * command line: what sbx_cli_build_policy sets over every policy file,
 * less --net and --backend. Written into buf[cap] (NUL-terminated; empty
 * when none was given; cap >= 1). Returns the length, or -ENAMETOOLONG
 * when it does not fit. */
int sbx_cli_policy_settings(const sbx_cli *cli, char *buf, size_t cap);

/* Print a policy-file error as one line to stderr, with a hint. */
void sbx_cli_print_policy_error(const char *cmd, const sbx_policyfile_error *err, int code);

/* Print the summary of `policy` that `sbx policy compile` shows. */
void sbx_cli_print_summary(FILE *out, const sbx_policy *policy);

/* "512M", "1G", "1000": the shortest exact spelling of a size. */
void sbx_cli_format_size(char *buf, size_t cap, uint64_t v);

/* "allow-any", "allow-readonly", ..., "deny": the policy-language word. */
const char *sbx_cli_semantics_name(int semantics);

#endif
