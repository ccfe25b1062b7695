/* sbx command — one function per subcommand, each returning the exit
 * status (exit_codes.h). main.c only parses and dispatches. */
#ifndef SBX_TOOL_COMMANDS_H
#define SBX_TOOL_COMMANDS_H

#include <stdio.h>

#include "cli_args.h"

int sbx_cmd_help(const sbx_cli *cli, FILE *out);  /* cmd_help.c */
int sbx_cmd_run(const sbx_cli *cli);               /* cmd_run.c */
int sbx_cmd_check(const sbx_cli *cli);             /* cmd_check.c */
int sbx_cmd_policy(const sbx_cli *cli);            /* cmd_policy.c: show, list, compile, dump */

/* Print the help for `topic` (NULL: the overview) to out. */
void sbx_print_help(FILE *out, const char *topic);

#endif
