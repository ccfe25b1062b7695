/* sbx command — one function per subcommand, each returning the exit
 * status (exit_codes.h). main.c only parses and dispatches. */
#ifndef SBX_TOOL_COMMANDS_H
#define SBX_TOOL_COMMANDS_H

#include <stdbool.h>
#include <stdio.h>

#include <sbx/broker.h>

#include "cli_args.h"

int sbx_cmd_help(const sbx_cli *cli, FILE *out);  /* cmd_help.c */
int sbx_cmd_run(const sbx_cli *cli);               /* cmd_run.c */
int sbx_cmd_check(const sbx_cli *cli);             /* cmd_check.c */
int sbx_cmd_policy(const sbx_cli *cli);            /* cmd_policy.c: show, list, compile, dump */
int sbx_cmd_learn(const sbx_cli *cli);             /* cmd_learn.c */

/* What `sbx learn` adds to a run (cmd_run.c): an audit callback beside
 * --log's, and where to copy the scratch directory, the ${CWD} the policy
 * was built with and the working directory the target started in (each
 * cap bytes; any may be NULL; workdir_out is set only once started). */
typedef struct sbx_cli_run_hooks {
    sbx_audit_fn audit;
    void *audit_ud;
    char *scratch_out, *cwd_out, *workdir_out;
    size_t cap;
    bool started; /* set when the target was spawned */
} sbx_cli_run_hooks;

/* The whole of `sbx run` for `cli` (sources, limits, PROGRAM...); hooks
 * may be NULL. Returns the exit status. */
int sbx_cli_run_program(const sbx_cli *cli, sbx_cli_run_hooks *hooks);

/* Print the help for `topic` (NULL: the overview) to out. */
void sbx_print_help(FILE *out, const char *topic);

#endif
