/* sbx — the command-line front end. Subcommands arrive with the CLI issue;
 * this entry point already follows its conventions: 0 on success, 125 when
 * sbx itself is given bad input. */
#include <stdio.h>
#include <string.h>

#include <sbx/sbx.h>

#define SBX_EXIT_USAGE 125

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sbx COMMAND [ARGS...]\n"
            "\n"
            "sbx runs programs you do not fully trust as sandboxed targets of a broker.\n"
            "\n"
            "options:\n"
            "  -h, --help     show this help\n"
            "  -V, --version  print the sbx version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return SBX_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("sbx %s\n", sbx_version());
        return 0;
    }
    fprintf(stderr, "sbx: unknown command '%s' (try 'sbx --help')\n", cmd);
    return SBX_EXIT_USAGE;
}
