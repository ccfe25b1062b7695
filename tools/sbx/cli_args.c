/* sbx command — the argument parser (see cli_args.h). Every rejection is
 * one line that names the offending word and says where help is. */
#include "cli_args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/policy.h>
#include <sbx/policyfile.h>

#include "exit_codes.h"
#include "policylang/policylang.h"

#define USAGE_RUN "sbx run [OPTIONS] -- PROGRAM [ARGS...]"
#define USAGE_CHECK "sbx check [--policy FILE|--profile NAME] OPERATION PATH [PATH2] [FLAGS]"

typedef struct parser {
    char *err;
    size_t errlen;
} parser;

__attribute__((format(printf, 2, 3)))
static int usage_error(parser *p, const char *fmt, ...)
{
    if (p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return SBX_EXIT_FAILURE;
}

/* ---- options ---- */

typedef enum opt_id {
    OPT_POLICY,
    OPT_PROFILE,
    OPT_ALLOW_READ,
    OPT_ALLOW_WRITE,
    OPT_ALLOW_QUERY,
    OPT_DENY,
    OPT_MEMORY,
    OPT_PROCESSES,
    OPT_CPU,
    OPT_FILES,
    OPT_NET,
    OPT_BACKEND,
    OPT_CWD,
    OPT_ENV,
    OPT_LOG,
    OPT_QUIET,
    OPT_VERBOSE,
    OPT_TTY,
    OPT_KEEP_SCRATCH,
    OPT_OUTPUT,
    OPT_HELP,
    OPT_COUNT_
} opt_id;

#define FOR_RUN (1u << 0)
#define FOR_CHECK (1u << 1)
#define FOR_LEARN (1u << 2)
/* What run and learn share: everything but the policy sources (learn
 * always runs under the 'learn' profile) and --backend. */
#define FOR_RUNS (FOR_RUN | FOR_LEARN)

typedef struct opt {
    const char *name;  /* long name without "--" */
    char short_name;   /* 0 when none */
    opt_id id;
    const char *value; /* metavariable, NULL for a flag */
    unsigned cmds;
    bool repeatable;
} opt;

static const opt options[] = {
    { "policy", 0, OPT_POLICY, "FILE", FOR_RUN | FOR_CHECK, true },
    { "profile", 0, OPT_PROFILE, "NAME", FOR_RUN | FOR_CHECK, true },
    { "allow-read", 0, OPT_ALLOW_READ, "PATTERN", FOR_RUN | FOR_CHECK, true },
    { "allow-write", 0, OPT_ALLOW_WRITE, "PATTERN", FOR_RUN | FOR_CHECK, true },
    { "allow-query", 0, OPT_ALLOW_QUERY, "PATTERN", FOR_RUN | FOR_CHECK, true },
    { "deny", 0, OPT_DENY, "PATTERN", FOR_RUN | FOR_CHECK, true },
    { "memory", 0, OPT_MEMORY, "SIZE", FOR_RUNS, false },
    { "processes", 0, OPT_PROCESSES, "N", FOR_RUNS, false },
    { "cpu", 0, OPT_CPU, "SECONDS", FOR_RUNS, false },
    { "files", 0, OPT_FILES, "N", FOR_RUNS, false },
    { "net", 0, OPT_NET, "none|loopback", FOR_RUNS, false },
    { "backend", 0, OPT_BACKEND, "auto|notify|trap", FOR_RUN, false },
    { "cwd", 0, OPT_CWD, "DIR", FOR_RUNS, false },
    { "env", 0, OPT_ENV, "NAME[=VALUE]", FOR_RUNS, true },
    { "log", 0, OPT_LOG, "FILE", FOR_RUNS, false },
    { "quiet", 'q', OPT_QUIET, NULL, FOR_RUNS, false },
    { "verbose", 'v', OPT_VERBOSE, NULL, FOR_RUNS, false },
    { "tty", 0, OPT_TTY, NULL, FOR_RUNS, false },
    { "keep-scratch", 0, OPT_KEEP_SCRATCH, NULL, FOR_RUNS, false },
    { "output", 'o', OPT_OUTPUT, "FILE", FOR_LEARN, false },
    { "help", 'h', OPT_HELP, NULL, FOR_RUN | FOR_CHECK | FOR_LEARN, true },
};

static const opt *find_long(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (strlen(options[i].name) == len && !memcmp(options[i].name, name, len))
            return &options[i];
    return NULL;
}

static const opt *find_short(char c)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (options[i].short_name && options[i].short_name == c)
            return &options[i];
    return NULL;
}

static int add_source(parser *p, sbx_cli *cli, sbx_cli_source_kind kind, const char *value)
{
    sbx_cli_source *n = realloc(cli->sources, (cli->n_sources + 1) * sizeof *n);
    if (!n)
        return usage_error(p, "out of memory (try again)");
    cli->sources = n;
    cli->sources[cli->n_sources++] = (sbx_cli_source){ .kind = kind, .value = value };
    return 0;
}

static int check_pattern_arg(parser *p, const char *cmd, const char *opt_name, const char *v)
{
    const char *why = NULL;
    size_t off = 0;
    if (sbx_policylang_check_pattern(v, &why, &off) < 0)
        return usage_error(p, "%s: --%s: bad pattern at column %zu: %s: '%s' (e.g. --%s '/data/**')",
                           cmd, opt_name, off + 1, why, v, opt_name);
    return 0;
}

static bool valid_env_name(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Apply one option with its value (NULL for flags). */
static int apply_option(parser *p, sbx_cli *cli, const char *cmd, const opt *o, const char *v)
{
    const char *why = NULL;
    size_t off = 0;
    switch (o->id) {
    case OPT_POLICY:
        if (!*v)
            return usage_error(p, "%s: --policy needs a file name (try 'sbx help %s')", cmd, cmd);
        return add_source(p, cli, SBX_SRC_POLICY_FILE, v);
    case OPT_PROFILE:
        if (!sbx_profile_text(v))
            return usage_error(p, "%s: unknown profile '%s' (see 'sbx policy list')", cmd, v);
        return add_source(p, cli, SBX_SRC_PROFILE, v);
    case OPT_ALLOW_READ:
    case OPT_ALLOW_WRITE:
    case OPT_ALLOW_QUERY:
    case OPT_DENY: {
        int r = check_pattern_arg(p, cmd, o->name, v);
        if (r)
            return r;
        static const sbx_cli_source_kind kinds[] = {
            [OPT_ALLOW_READ] = SBX_SRC_ALLOW_READ,
            [OPT_ALLOW_WRITE] = SBX_SRC_ALLOW_WRITE,
            [OPT_ALLOW_QUERY] = SBX_SRC_ALLOW_QUERY,
            [OPT_DENY] = SBX_SRC_DENY,
        };
        return add_source(p, cli, kinds[o->id], v);
    }
    case OPT_MEMORY:
        if (sbx_policylang_parse_size(v, &cli->memory, &why, &off) < 0)
            return usage_error(p, "%s: --memory: %s: '%s' (e.g. --memory 512M)", cmd, why, v);
        return 0;
    case OPT_PROCESSES:
        if (sbx_policylang_parse_count(v, 1, 1u << 22, &cli->processes, &why, &off) < 0)
            return usage_error(p, "%s: --processes: %s: '%s' (e.g. --processes 64)", cmd, why, v);
        return 0;
    case OPT_CPU:
        if (sbx_policylang_parse_seconds(v, &cli->cpu_seconds, &why, &off) < 0)
            return usage_error(p, "%s: --cpu: %s: '%s' (e.g. --cpu 30s)", cmd, why, v);
        return 0;
    case OPT_FILES:
        if (sbx_policylang_parse_count(v, 1, 1u << 20, &cli->files, &why, &off) < 0)
            return usage_error(p, "%s: --files: %s: '%s' (e.g. --files 256)", cmd, why, v);
        return 0;
    case OPT_NET:
        if (!strcmp(v, "none"))
            cli->net = SBX_NET_NONE;
        else if (!strcmp(v, "loopback"))
            cli->net = SBX_NET_LOOPBACK;
        else
            return usage_error(p, "%s: --net: unknown mode '%s' (use none or loopback)", cmd, v);
        return 0;
    case OPT_BACKEND:
        if (!strcmp(v, "auto"))
            cli->backend = SBX_BACKEND_AUTO;
        else if (!strcmp(v, "notify"))
            cli->backend = SBX_BACKEND_NOTIFY;
        else if (!strcmp(v, "trap"))
            cli->backend = SBX_BACKEND_TRAP;
        else
            return usage_error(p, "%s: --backend: unknown backend '%s' (use auto, notify or trap)",
                               cmd, v);
        return 0;
    case OPT_CWD:
        if (!*v)
            return usage_error(p, "%s: --cwd needs a directory or 'scratch' (e.g. --cwd /tmp)", cmd);
        cli->cwd = v;
        return 0;
    case OPT_ENV: {
        const char *eq = strchr(v, '=');
        size_t nl = eq ? (size_t)(eq - v) : strlen(v);
        if (!valid_env_name(v, nl))
            return usage_error(p, "%s: --env: bad variable name '%.*s' (use NAME or NAME=VALUE)",
                               cmd, (int)nl, v);
        const char **n = realloc(cli->env, (cli->n_env + 1) * sizeof *n);
        if (!n)
            return usage_error(p, "out of memory (try again)");
        cli->env = n;
        cli->env[cli->n_env++] = v;
        return 0;
    }
    case OPT_LOG:
        if (!*v)
            return usage_error(p, "%s: --log needs a file name (e.g. --log audit.jsonl)", cmd);
        cli->log_path = v;
        return 0;
    case OPT_QUIET:
        cli->quiet = true;
        return 0;
    case OPT_VERBOSE:
        cli->verbose = true;
        return 0;
    case OPT_TTY:
        cli->tty = true;
        return 0;
    case OPT_KEEP_SCRATCH:
        cli->keep_scratch = true;
        return 0;
    case OPT_OUTPUT:
        if (!*v)
            return usage_error(p, "%s: --output needs a file name (e.g. -o out.policy)", cmd);
        cli->learn_output = v;
        return 0;
    case OPT_HELP:
        cli->command = SBX_CMD_HELP;
        cli->help_topic = cmd;
        return 0;
    case OPT_COUNT_:
        break;
    }
    return usage_error(p, "internal error: unhandled option");
}

/* Try argv[*i] as an option of `cmd` (mask `which`). Returns 0 when it was
 * one (advancing *i past a separate value), 1 when it is not an option, or
 * SBX_EXIT_FAILURE. */
static int parse_option(parser *p, sbx_cli *cli, const char *cmd, unsigned which, int argc,
                        char **argv, int *i, bool seen[OPT_COUNT_])
{
    const char *a = argv[*i];
    if (a[0] != '-' || a[1] == 0)
        return 1;
    const opt *o;
    const char *value = NULL;
    char shown[64];
    if (a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        o = find_long(name, nl);
        snprintf(shown, sizeof shown, "--%.*s", (int)(nl > 40 ? 40 : nl), name);
        if (!o || !(o->cmds & which))
            return usage_error(p, "%s: unknown option '%s' (try 'sbx help %s')", cmd, shown, cmd);
        if (eq) {
            if (!o->value)
                return usage_error(p, "%s: option '%s' takes no value (try 'sbx help %s')", cmd,
                                   shown, cmd);
            value = eq + 1;
        }
    } else {
        o = a[2] == 0 ? find_short(a[1]) : NULL;
        snprintf(shown, sizeof shown, "%.40s", a);
        if (!o || !(o->cmds & which))
            return usage_error(p, "%s: unknown option '%s' (try 'sbx help %s')", cmd, shown, cmd);
    }
    if (o->value && !value) {
        if (*i + 1 >= argc)
            return usage_error(p, "%s: option '%s' needs a value: %s (try 'sbx help %s')", cmd,
                               shown, o->value, cmd);
        value = argv[++*i];
    }
    if (seen[o->id] && !o->repeatable)
        return usage_error(p, "%s: option '%s' given twice (give it once)", cmd, shown);
    seen[o->id] = true;
    return apply_option(p, cli, cmd, o, value);
}

#define USAGE_LEARN "sbx learn [OPTIONS] -- PROGRAM [ARGS...]"

/* run and learn: options (those of `which`), then "--", then PROGRAM. */
static int parse_program_command(parser *p, sbx_cli *cli, const char *cmd, unsigned which,
                                 const char *usage, int argc, char **argv, int i)
{
    bool seen[OPT_COUNT_] = { false };
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            if (cli->command == SBX_CMD_HELP)
                return 0;
            if (i + 1 >= argc)
                return usage_error(p, "%s: missing program after '--' (usage: %s)", cmd, usage);
            if (!argv[i + 1][0])
                return usage_error(p, "%s: empty program name after '--' (usage: %s)", cmd, usage);
            cli->program_argv = argv + i + 1;
            cli->program_argc = argc - i - 1;
            return 0;
        }
        int r = parse_option(p, cli, cmd, which, argc, argv, &i, seen);
        if (r == 1)
            return usage_error(p, "%s: missing '--' before the program '%.100s' (usage: %s)", cmd,
                               a, usage);
        if (r)
            return r;
    }
    if (cli->command == SBX_CMD_HELP)
        return 0;
    return usage_error(p, "%s: missing '--' and the program to run (usage: %s)", cmd, usage);
}

static int parse_run(parser *p, sbx_cli *cli, int argc, char **argv, int i)
{
    cli->command = SBX_CMD_RUN;
    return parse_program_command(p, cli, "run", FOR_RUN, USAGE_RUN, argc, argv, i);
}

/* learn takes run's options but no policy source: the policy it runs
 * under is always the 'learn' profile. */
static int parse_learn(parser *p, sbx_cli *cli, int argc, char **argv, int i)
{
    cli->command = SBX_CMD_LEARN;
    return parse_program_command(p, cli, "learn", FOR_LEARN, USAGE_LEARN, argc, argv, i);
}

static const char *const check_op_names[] = {
    [SBX_CHECK_READ] = "read",     [SBX_CHECK_WRITE] = "write",   [SBX_CHECK_CREATE] = "create",
    [SBX_CHECK_STAT] = "stat",     [SBX_CHECK_RENAME] = "rename", [SBX_CHECK_UNLINK] = "unlink",
    [SBX_CHECK_MKDIR] = "mkdir",   [SBX_CHECK_EXEC] = "exec",
};
#define CHECK_OPS "read, write, create, stat, rename, unlink, mkdir or exec"

const char *sbx_cli_option(sbx_cli_command command, size_t i, char *short_name)
{
    unsigned which = command == SBX_CMD_RUN     ? FOR_RUN
                     : command == SBX_CMD_LEARN ? FOR_LEARN
                     : command == SBX_CMD_CHECK ? FOR_CHECK
                                                : 0;
    for (size_t k = 0; k < sizeof options / sizeof options[0]; k++) {
        if (!(options[k].cmds & which))
            continue;
        if (i-- == 0) {
            if (short_name)
                *short_name = options[k].short_name;
            return options[k].name;
        }
    }
    return NULL;
}

const char *sbx_cli_check_op_name(sbx_cli_check_op op)
{
    if (op < SBX_CHECK_READ || op > SBX_CHECK_EXEC)
        return "?";
    return check_op_names[op];
}

static const struct {
    const char *name;
    unsigned flag;
} check_flags[] = {
    { "dir", SBX_CHECK_FLAG_DIR },
    { "trunc", SBX_CHECK_FLAG_TRUNC },
    { "append", SBX_CHECK_FLAG_APPEND },
    { "rdwr", SBX_CHECK_FLAG_RDWR },
};

static int parse_check(parser *p, sbx_cli *cli, int argc, char **argv, int i)
{
    cli->command = SBX_CMD_CHECK;
    bool seen[OPT_COUNT_] = { false };
    const char *pos[16];
    int npos = 0;
    bool options_done = false;
    for (; i < argc; i++) {
        if (!options_done && !strcmp(argv[i], "--")) {
            options_done = true;
            continue;
        }
        if (!options_done) {
            int r = parse_option(p, cli, "check", FOR_CHECK, argc, argv, &i, seen);
            if (r == 0)
                continue;
            if (r != 1)
                return r;
        }
        if (npos == (int)(sizeof pos / sizeof pos[0]))
            return usage_error(p, "check: too many arguments (usage: " USAGE_CHECK ")");
        pos[npos++] = argv[i];
    }
    if (cli->command == SBX_CMD_HELP)
        return 0;
    if (npos == 0)
        return usage_error(p, "check: missing OPERATION (one of " CHECK_OPS "; usage: " USAGE_CHECK
                              ")");
    for (int k = SBX_CHECK_READ; k <= SBX_CHECK_EXEC; k++)
        if (!strcmp(pos[0], check_op_names[k]))
            cli->check_op = (sbx_cli_check_op)k;
    if (!cli->check_op)
        return usage_error(p, "check: unknown operation '%.100s' (use " CHECK_OPS ")", pos[0]);
    int want = cli->check_op == SBX_CHECK_RENAME ? 2 : 1;
    if (npos < 1 + want)
        return usage_error(p, "check: %s needs %s (usage: " USAGE_CHECK ")", pos[0],
                           want == 2 ? "a source and a destination PATH" : "a PATH");
    cli->check_path = pos[1];
    cli->check_path2 = want == 2 ? pos[2] : NULL;
    for (int k = 1 + want; k < npos; k++) {
        unsigned f = 0;
        for (size_t j = 0; j < sizeof check_flags / sizeof check_flags[0]; j++)
            if (!strcmp(pos[k], check_flags[j].name))
                f = check_flags[j].flag;
        if (!f)
            return usage_error(p, "check: unknown flag '%.100s' (use dir, trunc, append or rdwr)",
                               pos[k]);
        cli->check_flags |= f;
    }
    for (int k = 1; k <= want; k++)
        if (!pos[k][0])
            return usage_error(p, "check: empty PATH (usage: " USAGE_CHECK ")");
    return 0;
}

static int parse_policy(parser *p, sbx_cli *cli, int argc, char **argv, int i)
{
    if (i >= argc)
        return usage_error(p, "policy: missing subcommand (show, list, compile or dump; try 'sbx "
                              "help policy')");
    const char *sub = argv[i++];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        cli->command = SBX_CMD_HELP;
        cli->help_topic = "policy";
        return 0;
    }
    const char *what;
    if (!strcmp(sub, "show")) {
        cli->command = SBX_CMD_POLICY_SHOW;
        what = "NAME";
    } else if (!strcmp(sub, "compile")) {
        cli->command = SBX_CMD_POLICY_COMPILE;
        what = "FILE";
    } else if (!strcmp(sub, "dump")) {
        cli->command = SBX_CMD_POLICY_DUMP;
        what = "FILE";
    } else if (!strcmp(sub, "list")) {
        cli->command = SBX_CMD_POLICY_LIST;
        what = NULL;
    } else {
        return usage_error(p, "policy: unknown subcommand '%.100s' (use show, list, compile or "
                              "dump)", sub);
    }
    if (i < argc && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))) {
        cli->command = SBX_CMD_HELP;
        cli->help_topic = "policy";
        return 0;
    }
    if (!what) {
        if (i < argc)
            return usage_error(p, "policy list: unexpected argument '%.100s' (usage: sbx policy list)", argv[i]);
        return 0;
    }
    if (i >= argc)
        return usage_error(p, "policy %s: missing %s (usage: sbx policy %s %s)", sub, what, sub,
                           what);
    if (argv[i][0] == '-' && argv[i][1])
        return usage_error(p, "policy %s: unknown option '%.100s' (try 'sbx help policy')", sub,
                           argv[i]);
    cli->policy_target = argv[i++];
    if (i < argc)
        return usage_error(p, "policy %s: unexpected argument '%.100s' (usage: sbx policy %s %s)",
                           sub, argv[i], sub, what);
    if (cli->command == SBX_CMD_POLICY_SHOW && !sbx_profile_text(cli->policy_target))
        return usage_error(p, "policy show: unknown profile '%.100s' (see 'sbx policy list')",
                           cli->policy_target);
    if (!cli->policy_target[0])
        return usage_error(p, "policy %s: empty %s (usage: sbx policy %s %s)", sub, what, sub,
                           what);
    return 0;
}

static const char *const commands[] = { "run", "learn", "check", "policy", "help", NULL };

static bool known_topic(const char *t)
{
    for (size_t i = 0; commands[i]; i++)
        if (!strcmp(commands[i], t))
            return true;
    return false;
}

int sbx_cli_parse(int argc, char **argv, sbx_cli *cli, char *err, size_t errlen)
{
    parser p = { .err = err, .errlen = errlen };
    memset(cli, 0, sizeof *cli);
    cli->memory = cli->processes = cli->cpu_seconds = cli->files = SBX_CLI_UNSET;
    cli->net = -1;
    cli->backend = -1;
    if (errlen)
        err[0] = 0;
    if (argc < 2)
        return usage_error(&p, "missing command (try 'sbx --help')");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        cli->command = SBX_CMD_HELP;
        if (argc > 3)
            return usage_error(&p, "help: too many arguments (usage: sbx help [COMMAND])");
        if (argc == 3) {
            if (!known_topic(argv[2]))
                return usage_error(&p, "help: unknown command '%.100s' (commands: run, learn, "
                                       "check, policy)", argv[2]);
            cli->help_topic = argv[2];
        }
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        cli->command = SBX_CMD_VERSION;
        if (argc > 2)
            return usage_error(&p, "version: unexpected argument '%.100s' (usage: sbx --version)", argv[2]);
        return 0;
    }
    if (!strcmp(cmd, "run"))
        return parse_run(&p, cli, argc, argv, 2);
    if (!strcmp(cmd, "check"))
        return parse_check(&p, cli, argc, argv, 2);
    if (!strcmp(cmd, "policy"))
        return parse_policy(&p, cli, argc, argv, 2);
    if (!strcmp(cmd, "learn"))
        return parse_learn(&p, cli, argc, argv, 2);
    if (cmd[0] == '-')
        return usage_error(&p, "unknown option '%.100s' (try 'sbx --help')", cmd);
    return usage_error(&p, "unknown command '%.100s' (commands: run, learn, check, policy, help; try "
                           "'sbx --help')", cmd);
}

void sbx_cli_free(sbx_cli *cli)
{
    if (!cli)
        return;
    free(cli->sources);
    free(cli->env);
    cli->sources = NULL;
    cli->env = NULL;
    cli->n_sources = cli->n_env = 0;
}
