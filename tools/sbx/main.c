/* sbx — the command-line front end. A thin main: parse (cli_args.c, unit
 * tested), then hand over to one function per subcommand. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sbx/sbx.h>

#include "cli_args.h"
#include "commands.h"
#include "exit_codes.h"

/* Run from the build tree (tools/sbx/sbx), the trap backend's shim is
 * tools/preload/libsbx-preload.so beside us; installed, the library finds
 * its installed copy itself. An explicit $SBX_PRELOAD always wins. */
static void find_build_tree_shim(void)
{
    if (getenv("SBX_PRELOAD"))
        return;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = '\0';
    char shim[PATH_MAX + 64];
    snprintf(shim, sizeof shim, "%s/../preload/libsbx-preload.so", exe);
    if (access(shim, R_OK) == 0)
        setenv("SBX_PRELOAD", shim, 1);
}

int main(int argc, char **argv)
{
    find_build_tree_shim();
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
