/* sbx command — `sbx --help` and `sbx help COMMAND`. */
#include <string.h>

#include "commands.h"
#include "exit_codes.h"

static const char overview[] =
    "usage: sbx COMMAND [ARGS...]\n"
    "\n"
    "sbx runs programs you do not fully trust as sandboxed targets of a broker.\n"
    "\n"
    "commands:\n"
    "  run [OPTIONS] -- PROGRAM [ARGS...]   run PROGRAM under a policy\n"
    "  learn [OPTIONS] -- PROGRAM [ARGS...] run PROGRAM, write the policy it needed\n"
    "  check [POLICY] OPERATION PATH        explain what a policy decides for one access\n"
    "  policy show NAME                     print an embedded profile as a policy file\n"
    "  policy list                          list the embedded profiles\n"
    "  policy compile FILE                  check a policy file and summarise it\n"
    "  policy dump FILE                     print a policy file's compiled opcodes\n"
    "  help [COMMAND]                       show help for a command\n"
    "\n"
    "options:\n"
    "  -h, --help     show this help\n"
    "  -V, --version  print the sbx version\n"
    "\n"
    "Exit status: 125 when sbx itself fails (bad option, bad policy); see 'sbx help run'.\n"
    "The policy language is described in sbx(1) and docs/policy-language.md.\n";

static const char run_help[] =
    "usage: sbx run [OPTIONS] -- PROGRAM [ARGS...]\n"
    "\n"
    "Run PROGRAM as a sandboxed target. stdin, stdout and stderr pass through;\n"
    "the terminal is not handed over unless --tty. Without --policy or --profile\n"
    "the 'default' profile applies.\n"
    "\n"
    "policy:\n"
    "  --policy FILE          load a policy file (repeatable; later files add to earlier)\n"
    "  --profile NAME         load an embedded profile: default, strict, learn\n"
    "  --allow-read PATTERN   allow reading files matching PATTERN\n"
    "  --allow-write PATTERN  allow anything on files matching PATTERN\n"
    "  --allow-query PATTERN  allow stat/access/readlink on PATTERN\n"
    "  --deny PATTERN         deny PATTERN, winning over every allow\n"
    "limits:\n"
    "  --memory SIZE          memory limit (bytes, or K/M/G/T)\n"
    "  --processes N          process and thread limit\n"
    "  --cpu SECONDS          CPU time limit (seconds, or s/m/h)\n"
    "  --files N              open file limit\n"
    "confinement:\n"
    "  --net none|loopback    network (default none)\n"
    "  --backend auto|notify|trap  interception backend\n"
    "  --tty                  hand the terminal over to PROGRAM\n"
    "environment:\n"
    "  --cwd DIR|scratch      working directory of PROGRAM\n"
    "  --env NAME[=VALUE]     pass a variable (repeatable; the default is a clean environment)\n"
    "  --keep-scratch         keep the scratch directory after the run\n"
    "output:\n"
    "  --log FILE             write an audit log (JSON Lines)\n"
    "  -q, --quiet            print nothing but errors\n"
    "  -v, --verbose          explain what sbx does\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: PROGRAM's own; 128+N if it was killed by signal N; 125 when sbx\n"
    "fails (bad policy, bad option, spawn error); 126 when PROGRAM cannot be\n"
    "executed; 127 when it is not found.\n";

static const char check_help[] =
    "usage: sbx check [--policy FILE|--profile NAME|--allow-* PATTERN|--deny PATTERN]...\n"
    "                 OPERATION PATH [PATH2] [FLAGS]\n"
    "\n"
    "Say whether the policy allows one filesystem operation, and which rule\n"
    "(file:line) decided. Without --policy or --profile the 'default' profile\n"
    "applies. PATH is made absolute against the current directory and\n"
    "normalised ('.', '..', '//'); symbolic links are not followed.\n"
    "\n"
    "operations: read, write, create, stat, rename SRC DST, unlink, mkdir, exec\n"
    "flags:      dir (the object is a directory), trunc, append, rdwr\n"
    "\n"
    "  --policy FILE          load a policy file (repeatable)\n"
    "  --profile NAME         load an embedded profile: default, strict, learn\n"
    "  --allow-read PATTERN   allow reading files matching PATTERN\n"
    "  --allow-write PATTERN  allow anything on files matching PATTERN\n"
    "  --allow-query PATTERN  allow stat/access/readlink on PATTERN\n"
    "  --deny PATTERN         deny PATTERN, winning over every allow\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 allowed, 1 denied, 125 on bad input.\n";

static const char policy_help[] =
    "usage: sbx policy show NAME\n"
    "       sbx policy list\n"
    "       sbx policy compile FILE\n"
    "       sbx policy dump FILE\n"
    "\n"
    "show     print the embedded profile NAME (default, strict, learn) as a policy file\n"
    "list     list the embedded profiles\n"
    "compile  check FILE (with its includes) and print a summary: rules per\n"
    "         semantics, views, limits and settings; errors as file:line:col\n"
    "dump     print FILE's compiled opcodes\n"
    "\n"
    "Exit status: 0, or 125 when the file has an error.\n";

static const char learn_help[] =
    "usage: sbx learn [OPTIONS] -- PROGRAM [ARGS...]\n"
    "\n"
    "Run PROGRAM under the 'learn' profile, where every file the invoking user\n"
    "could use is brokered, allowed and audited, then write a minimal policy that\n"
    "lets the same run succeed: allow-readonly where only read, allow-any where\n"
    "written or created, allow-query for stats and for probes that found nothing,\n"
    "DIR/** where 8 or more entries of DIR were used, one '# covers:' comment per\n"
    "rule. Run it again with 'sbx run --policy OUT.policy' from the same directory\n"
    "(with the same --cwd and --env: the policy's header lists them).\n"
    "\n"
    "WARNING: learn mode is NOT a sandbox: PROGRAM may change any file you can.\n"
    "Learn only trusted programs on trusted input; review the policy.\n"
    "\n"
    "  -o, --output FILE      write the policy to FILE (default: standard output)\n"
    "limits (as for 'sbx run'; written into the policy as 'limit ...' lines):\n"
    "  --memory SIZE          memory limit (bytes, or K/M/G/T)\n"
    "  --processes N          process and thread limit\n"
    "  --cpu SECONDS          CPU time limit (seconds, or s/m/h)\n"
    "  --files N              open file limit\n"
    "confinement (written into the policy):\n"
    "  --net none|loopback    network (default none)\n"
    "  --tty                  hand the terminal over to PROGRAM\n"
    "environment (as for 'sbx run'):\n"
    "  --cwd DIR|scratch      working directory of PROGRAM\n"
    "  --env NAME[=VALUE]     pass a variable (repeatable; the default is a clean environment)\n"
    "  --keep-scratch         keep the scratch directory after the run\n"
    "output:\n"
    "  --log FILE             write the run's audit log (JSON Lines, as 'sbx run')\n"
    "  -q, --quiet            print nothing but errors and the learn warning\n"
    "  -v, --verbose          explain what sbx does\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: PROGRAM's, as for 'sbx run'; 125 on a bad option; no policy is\n"
    "written when PROGRAM could not be started. See docs/learn.md.\n";

static const char help_help[] =
    "usage: sbx help [COMMAND]\n"
    "\n"
    "Show the overview, or the help of COMMAND (run, learn, check, policy).\n";

void sbx_print_help(FILE *out, const char *topic)
{
    const char *text = overview;
    if (topic && !strcmp(topic, "run"))
        text = run_help;
    else if (topic && !strcmp(topic, "check"))
        text = check_help;
    else if (topic && !strcmp(topic, "policy"))
        text = policy_help;
    else if (topic && !strcmp(topic, "learn"))
        text = learn_help;
    else if (topic && !strcmp(topic, "help"))
        text = help_help;
    fputs(text, out);
}

int sbx_cmd_help(const sbx_cli *cli, FILE *out)
{
    sbx_print_help(out, cli->help_topic);
    return SBX_EXIT_OK;
}
