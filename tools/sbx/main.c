/* sbx — the command-line front end. A thin main: parse (cli_args.c, unit
 * tested), then hand over to one function per subcommand. */
#include <stdio.h>

#include <sbx/sbx.h>

#include "cli_args.h"
#include "commands.h"
#include "exit_codes.h"

int main(int argc, char **argv)
{
    sbx_cli cli;
    char err[1024];
    int r = sbx_cli_parse(argc, argv, &cli, err, sizeof err);
    if (r) {
        fprintf(stderr, "sbx: %s\n", err);
        sbx_cli_free(&cli);
        return r;
    }
    switch (cli.command) {
    case SBX_CMD_HELP:
        r = sbx_cmd_help(&cli, stdout);
        break;
    case SBX_CMD_VERSION:
        printf("sbx %s\n", sbx_version());
        r = SBX_EXIT_OK;
        break;
    case SBX_CMD_RUN:
        r = sbx_cmd_run(&cli);
        break;
    case SBX_CMD_LEARN:
        r = sbx_cmd_learn(&cli);
        break;
    case SBX_CMD_CHECK:
        r = sbx_cmd_check(&cli);
        break;
    case SBX_CMD_POLICY_SHOW:
    case SBX_CMD_POLICY_LIST:
    case SBX_CMD_POLICY_COMPILE:
    case SBX_CMD_POLICY_DUMP:
        r = sbx_cmd_policy(&cli);
        break;
    case SBX_CMD_NONE:
    default:
        fprintf(stderr, "sbx: internal error: no command\n");
        r = SBX_EXIT_FAILURE;
        break;
    }
    sbx_cli_free(&cli);
    if (fflush(stdout) != 0 && r == SBX_EXIT_OK) {
        fprintf(stderr, "sbx: cannot write the output\n");
        r = SBX_EXIT_FAILURE;
    }
    return r;
}
