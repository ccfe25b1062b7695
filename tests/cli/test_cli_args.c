/* The sbx argument parser (tools/sbx/cli_args.c), linked directly: every
 * option, every bad-input case, the one-line error with a hint. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/policy.h>

#include "cli_args.h"
#include "commands.h"
#include "exit_codes.h"

#define MAXARGS 64

typedef struct parsed {
    int r;
    sbx_cli cli;
    char err[1024];
    char *argv[MAXARGS + 1];
    int argc;
} parsed;

/* Parse a NULL-terminated list of words after "sbx". */
static void parse_words(parsed *p, const char *const *words)
{
    memset(p, 0, sizeof *p);
    p->argv[p->argc++] = (char *)"sbx";
    for (; *words; words++)
        p->argv[p->argc++] = (char *)*words;
    p->argv[p->argc] = NULL;
    memset(p->err, 'X', sizeof p->err);
    p->r = sbx_cli_parse(p->argc, p->argv, &p->cli, p->err, sizeof p->err);
}

#define PARSE(p, ...) parse_words((p), (const char *const[]){ __VA_ARGS__, NULL })

static void expect_bad(const char *needle, const char *const *words)
{
    parsed p;
    parse_words(&p, words);
    cr_expect_eq(p.r, SBX_EXIT_FAILURE, "'%s' should be refused", words[0]);
    cr_expect(strstr(p.err, needle), "error '%s' lacks '%s'", p.err, needle);
    cr_expect(strchr(p.err, '\n') == NULL, "one line: %s", p.err);
    /* every message ends with a hint in parentheses: usage, an example, where to look */
    size_t len = strlen(p.err);
    cr_expect(len > 0 && p.err[len - 1] == ')' && strchr(p.err, '('), "no hint in '%s'", p.err);
    sbx_cli_free(&p.cli);
}

#define BAD(needle, ...) expect_bad((needle), (const char *const[]){ __VA_ARGS__, NULL })

Test(cli_args, help_and_version)
{
    parsed p;
    PARSE(&p, "--help");
    cr_expect_eq(p.r, 0);
    cr_expect_eq(p.cli.command, SBX_CMD_HELP);
    cr_expect_null(p.cli.help_topic);
    PARSE(&p, "-h");
    cr_expect_eq(p.cli.command, SBX_CMD_HELP);
    PARSE(&p, "help", "run");
    cr_expect_eq(p.r, 0);
    cr_expect_str_eq(p.cli.help_topic, "run");
    PARSE(&p, "run", "--help");
    cr_expect_eq(p.r, 0);
    cr_expect_eq(p.cli.command, SBX_CMD_HELP);
    cr_expect_str_eq(p.cli.help_topic, "run");
    sbx_cli_free(&p.cli);
    PARSE(&p, "check", "-h");
    cr_expect_eq(p.r, 0);
    cr_expect_str_eq(p.cli.help_topic, "check");
    sbx_cli_free(&p.cli);
    PARSE(&p, "policy", "--help");
    cr_expect_eq(p.r, 0);
    cr_expect_str_eq(p.cli.help_topic, "policy");
    PARSE(&p, "policy", "compile", "--help");
    cr_expect_eq(p.cli.command, SBX_CMD_HELP);
    PARSE(&p, "--version");
    cr_expect_eq(p.r, 0);
    cr_expect_eq(p.cli.command, SBX_CMD_VERSION);
    PARSE(&p, "-V");
    cr_expect_eq(p.cli.command, SBX_CMD_VERSION);
}

Test(cli_args, run_full_options)
{
    parsed p;
    PARSE(&p, "run", "--policy", "a.policy", "--profile=strict", "--allow-read", "/data/**",
          "--allow-write=/out/**", "--allow-query", "/etc/*", "--deny", "/data/secret",
          "--policy=b.policy", "--memory", "512M", "--processes=64", "--cpu", "30s", "--files",
          "256", "--net", "loopback", "--backend=notify", "--cwd", "scratch", "--env", "LANG",
          "--env=A=b=c", "--log", "audit.jsonl", "-q", "--verbose", "--tty", "--keep-scratch",
          "--", "ls", "-l", "--", "x");
    cr_assert_eq(p.r, 0, "%s", p.err);
    sbx_cli *c = &p.cli;
    cr_expect_eq(c->command, SBX_CMD_RUN);
    cr_assert_eq(c->n_sources, 7);
    const sbx_cli_source_kind kinds[] = { SBX_SRC_POLICY_FILE, SBX_SRC_PROFILE, SBX_SRC_ALLOW_READ,
                                          SBX_SRC_ALLOW_WRITE, SBX_SRC_ALLOW_QUERY, SBX_SRC_DENY,
                                          SBX_SRC_POLICY_FILE };
    const char *vals[] = { "a.policy", "strict", "/data/**", "/out/**", "/etc/*", "/data/secret",
                           "b.policy" };
    for (int i = 0; i < 7; i++) {
        cr_expect_eq(c->sources[i].kind, kinds[i], "source %d", i);
        cr_expect_str_eq(c->sources[i].value, vals[i]);
    }
    cr_expect_eq(c->memory, 512ull << 20);
    cr_expect_eq(c->processes, 64);
    cr_expect_eq(c->cpu_seconds, 30);
    cr_expect_eq(c->files, 256);
    cr_expect_eq(c->net, SBX_NET_LOOPBACK);
    cr_expect_eq(c->backend, SBX_BACKEND_NOTIFY);
    cr_expect_str_eq(c->cwd, "scratch");
    cr_assert_eq(c->n_env, 2);
    cr_expect_str_eq(c->env[0], "LANG");
    cr_expect_str_eq(c->env[1], "A=b=c");
    cr_expect_str_eq(c->log_path, "audit.jsonl");
    cr_expect(c->quiet && c->verbose && c->tty && c->keep_scratch);
    cr_assert_eq(c->program_argc, 4);
    cr_expect_str_eq(c->program_argv[0], "ls");
    cr_expect_str_eq(c->program_argv[2], "--");
    cr_expect_null(c->program_argv[4]);
    sbx_cli_free(c);
}

Test(cli_args, run_defaults)
{
    parsed p;
    PARSE(&p, "run", "--", "true");
    cr_assert_eq(p.r, 0, "%s", p.err);
    cr_expect_eq(p.cli.n_sources, 0);
    cr_expect_eq(p.cli.memory, SBX_CLI_UNSET);
    cr_expect_eq(p.cli.cpu_seconds, SBX_CLI_UNSET);
    cr_expect_eq(p.cli.net, -1);
    cr_expect_eq(p.cli.backend, -1);
    cr_expect_null(p.cli.cwd);
    cr_expect_not(p.cli.quiet || p.cli.verbose || p.cli.tty || p.cli.keep_scratch);
    cr_expect_eq(p.cli.program_argc, 1);
    /* options that look like program options after -- belong to the program */
    PARSE(&p, "run", "--", "ls", "--memory", "x");
    cr_expect_eq(p.r, 0);
    cr_expect_eq(p.cli.memory, SBX_CLI_UNSET);
    cr_expect_eq(p.cli.program_argc, 3);
    sbx_cli_free(&p.cli);
}

Test(cli_args, learn)
{
    parsed p;
    PARSE(&p, "learn", "-o", "out.policy", "--", "tar", "-o", "x");
    cr_assert_eq(p.r, 0, "%s", p.err);
    cr_expect_eq(p.cli.command, SBX_CMD_LEARN);
    cr_expect_str_eq(p.cli.learn_output, "out.policy");
    cr_expect_eq(p.cli.program_argc, 3, "-o after -- is the program's");
    cr_expect_str_eq(p.cli.program_argv[0], "tar");
    PARSE(&p, "learn", "--quiet", "--", "true");
    cr_assert_eq(p.r, 0, "%s", p.err);
    cr_expect(p.cli.quiet);
    cr_expect_null(p.cli.learn_output);
    PARSE(&p, "learn", "--help");
    cr_assert_eq(p.r, 0, "%s", p.err);
    cr_expect_eq(p.cli.command, SBX_CMD_HELP);
    cr_expect_str_eq(p.cli.help_topic, "learn");
    PARSE(&p, "help", "learn");
    cr_assert_eq(p.r, 0, "%s", p.err);
    cr_expect_str_eq(p.cli.help_topic, "learn");
    sbx_cli_free(&p.cli);
}

Test(cli_args, run_bad_input)
{
    BAD("unknown option '--frob'", "run", "--frob", "--", "ls");
    BAD("unknown option '-x'", "run", "-x", "--", "ls");
    BAD("missing '--' before the program 'ls'", "run", "ls");
    BAD("missing '--' before the program 'ls'", "run", "--memory", "1G", "ls", "-l");
    BAD("missing '--' and the program", "run");
    BAD("missing '--' and the program", "run", "--quiet");
    BAD("missing program after '--'", "run", "--");
    BAD("missing program after '--'", "run", "--verbose", "--");
    BAD("empty program name", "run", "--", "");
    BAD("needs a value: FILE", "run", "--policy");
    BAD("--policy needs a file name", "run", "--policy=", "--", "ls");
    BAD("unknown profile 'nope'", "run", "--profile", "nope", "--", "ls");
    BAD("bad size suffix", "run", "--memory", "5X", "--", "ls");
    BAD("bad size suffix", "run", "--memory=512MB", "--", "ls");
    BAD("negative", "run", "--memory", "-1", "--", "ls");
    BAD("zero", "run", "--memory", "0", "--", "ls");
    BAD("too large", "run", "--memory", "99999999999999999999", "--", "ls");
    BAD("--processes", "run", "--processes", "many", "--", "ls");
    BAD("--processes", "run", "--processes", "0", "--", "ls");
    BAD("bad duration suffix", "run", "--cpu", "5d", "--", "ls");
    BAD("--files", "run", "--files", "-3", "--", "ls");
    BAD("unknown mode 'wifi'", "run", "--net", "wifi", "--", "ls");
    BAD("unknown backend 'ptrace'", "run", "--backend", "ptrace", "--", "ls");
    BAD("bad pattern", "run", "--allow-read", "data/**", "--", "ls");
    BAD("bad pattern", "run", "--allow-write", "/a/../b", "--", "ls");
    BAD("bad pattern", "run", "--deny", "/a/***", "--", "ls");
    BAD("bad pattern", "run", "--allow-query", "", "--", "ls");
    BAD("bad variable name '1X'", "run", "--env", "1X=2", "--", "ls");
    BAD("bad variable name ''", "run", "--env", "=v", "--", "ls");
    BAD("bad variable name 'A-B'", "run", "--env", "A-B", "--", "ls");
    BAD("given twice", "run", "--memory", "1G", "--memory", "2G", "--", "ls");
    BAD("given twice", "run", "--net", "none", "--net=none", "--", "ls");
    BAD("takes no value", "run", "--quiet=yes", "--", "ls");
    BAD("--cwd needs a directory", "run", "--cwd", "", "--", "ls");
    BAD("--log needs a file name", "run", "--log", "", "--", "ls");
    BAD("unknown option '--memory'", "check", "--memory", "1G", "read", "/x");
}

Test(cli_args, top_level_bad_input)
{
    parsed p;
    memset(&p, 0, sizeof p);
    char *argv[] = { (char *)"sbx", NULL };
    cr_expect_eq(sbx_cli_parse(1, argv, &p.cli, p.err, sizeof p.err), SBX_EXIT_FAILURE);
    cr_expect(strstr(p.err, "missing command"));
    BAD("unknown command 'frobnicate'", "frobnicate");
    BAD("unknown option '--frob'", "--frob");
    BAD("help: unknown command 'frob'", "help", "frob");
    BAD("too many arguments", "help", "run", "check");
    BAD("unexpected argument", "--version", "x");
    BAD("missing '--' before", "learn", "ls");
    BAD("needs a value: FILE", "learn", "-o");
    BAD("given twice", "learn", "-o", "a", "-o", "b", "--", "ls");
}

Test(cli_args, learn_run_options)
{
    parsed p;
    PARSE(&p, "learn", "-o", "out.policy", "--memory", "512M", "--processes=8", "--cpu", "2m",
          "--files", "64", "--net", "loopback", "--cwd", "scratch", "--env", "LANG", "--env=A=b",
          "--log", "a.jsonl", "-q", "-v", "--tty", "--keep-scratch", "--", "make", "-j2");
    cr_assert_eq(p.r, 0, "%s", p.err);
    sbx_cli *c = &p.cli;
    cr_expect_eq(c->command, SBX_CMD_LEARN);
    cr_expect_str_eq(c->learn_output, "out.policy");
    cr_expect_eq(c->n_sources, 0, "learn takes no policy source");
    cr_expect_eq(c->memory, 512ull << 20);
    cr_expect_eq(c->processes, 8);
    cr_expect_eq(c->cpu_seconds, 120);
    cr_expect_eq(c->files, 64);
    cr_expect_eq(c->net, SBX_NET_LOOPBACK);
    cr_expect_eq(c->backend, -1);
    cr_expect_str_eq(c->cwd, "scratch");
    cr_assert_eq(c->n_env, 2);
    cr_expect_str_eq(c->env[0], "LANG");
    cr_expect_str_eq(c->env[1], "A=b");
    cr_expect_str_eq(c->log_path, "a.jsonl");
    cr_expect(c->quiet && c->verbose && c->tty && c->keep_scratch);
    cr_assert_eq(c->program_argc, 2);
    cr_expect_str_eq(c->program_argv[1], "-j2");
    sbx_cli_free(c);
    PARSE(&p, "learn", "--output=o.policy", "--", "true");
    cr_assert_eq(p.r, 0, "%s", p.err);
    cr_expect_str_eq(p.cli.learn_output, "o.policy");
    cr_expect_eq(p.cli.memory, SBX_CLI_UNSET);
    cr_expect_eq(p.cli.n_env, 0);
    sbx_cli_free(&p.cli);
}

Test(cli_args, learn_bad_input)
{
    BAD("learn: --memory: bad size suffix", "learn", "--memory", "5X", "--", "ls");
    BAD("learn: --memory: zero", "learn", "--memory=0", "--", "ls");
    BAD("learn: --processes", "learn", "--processes", "many", "--", "ls");
    BAD("learn: --processes", "learn", "--processes", "0", "--", "ls");
    BAD("learn: --cpu: bad duration suffix", "learn", "--cpu", "5d", "--", "ls");
    BAD("learn: --files", "learn", "--files", "-3", "--", "ls");
    BAD("learn: --net: unknown mode 'wifi'", "learn", "--net", "wifi", "--", "ls");
    BAD("learn: --env: bad variable name '1X'", "learn", "--env", "1X=2", "--", "ls");
    BAD("learn: --cwd needs a directory", "learn", "--cwd", "", "--", "ls");
    BAD("learn: --log needs a file name", "learn", "--log=", "--", "ls");
    BAD("learn: --output needs a file name", "learn", "-o", "", "--", "ls");
    BAD("learn: option '--memory' given twice", "learn", "--memory", "1G", "--memory", "2G",
        "--", "ls");
    BAD("learn: option '--quiet' takes no value", "learn", "--quiet=1", "--", "ls");
    BAD("learn: option '--cpu' needs a value", "learn", "--cpu");
    /* learn always runs under the 'learn' profile; --backend is run's alone */
    BAD("learn: unknown option '--policy'", "learn", "--policy", "a.policy", "--", "ls");
    BAD("learn: unknown option '--allow-read'", "learn", "--allow-read", "/x", "--", "ls");
    BAD("learn: unknown option '--backend'", "learn", "--backend", "trap", "--", "ls");
    BAD("learn: missing program after '--'", "learn", "--memory", "1G", "--");
    BAD("learn: empty program name", "learn", "--", "");
    BAD("learn: missing '--' and the program", "learn", "-q");
    /* -o is learn's alone */
    BAD("run: unknown option '-o'", "run", "-o", "x", "--", "ls");
    BAD("check: unknown option '--output'", "check", "--output", "x", "read", "/x");
}

Test(cli_args, check)
{
    parsed p;
    PARSE(&p, "check", "--profile", "strict", "read", "/etc/passwd");
    cr_assert_eq(p.r, 0, "%s", p.err);
    cr_expect_eq(p.cli.command, SBX_CMD_CHECK);
    cr_expect_eq(p.cli.check_op, SBX_CHECK_READ);
    cr_expect_str_eq(p.cli.check_path, "/etc/passwd");
    cr_expect_null(p.cli.check_path2);
    cr_expect_eq(p.cli.n_sources, 1);
    sbx_cli_free(&p.cli);
    PARSE(&p, "check", "rename", "/a", "/b", "dir", "--policy", "x.policy");
    cr_assert_eq(p.r, 0, "%s", p.err);
    cr_expect_eq(p.cli.check_op, SBX_CHECK_RENAME);
    cr_expect_str_eq(p.cli.check_path2, "/b");
    cr_expect_eq(p.cli.check_flags, SBX_CHECK_FLAG_DIR);
    cr_expect_eq(p.cli.n_sources, 1);
    sbx_cli_free(&p.cli);
    PARSE(&p, "check", "write", "--", "-odd-name", "trunc", "append", "rdwr");
    cr_assert_eq(p.r, 0, "%s", p.err);
    cr_expect_str_eq(p.cli.check_path, "-odd-name");
    cr_expect_eq(p.cli.check_flags,
                 SBX_CHECK_FLAG_TRUNC | SBX_CHECK_FLAG_APPEND | SBX_CHECK_FLAG_RDWR);
    const char *ops[] = { "read", "write", "create", "stat", "unlink", "mkdir", "exec" };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        PARSE(&p, "check", ops[i], "/x");
        cr_expect_eq(p.r, 0, "%s", ops[i]);
        cr_expect_str_eq(sbx_cli_check_op_name(p.cli.check_op), ops[i]);
    }
    BAD("missing OPERATION", "check");
    BAD("missing OPERATION", "check", "--profile", "default");
    BAD("unknown operation 'chmod'", "check", "chmod", "/x");
    BAD("read needs a PATH", "check", "read");
    BAD("rename needs a source and a destination", "check", "rename", "/a");
    BAD("unknown flag 'often'", "check", "read", "/a", "often");
    BAD("unknown option '--frob'", "check", "--frob", "read", "/a");
    BAD("empty PATH", "check", "read", "");
}

Test(cli_args, policy_subcommands)
{
    parsed p;
    PARSE(&p, "policy", "show", "default");
    cr_expect_eq(p.r, 0);
    cr_expect_eq(p.cli.command, SBX_CMD_POLICY_SHOW);
    cr_expect_str_eq(p.cli.policy_target, "default");
    PARSE(&p, "policy", "list");
    cr_expect_eq(p.cli.command, SBX_CMD_POLICY_LIST);
    PARSE(&p, "policy", "compile", "x.policy");
    cr_expect_eq(p.cli.command, SBX_CMD_POLICY_COMPILE);
    cr_expect_str_eq(p.cli.policy_target, "x.policy");
    PARSE(&p, "policy", "dump", "x.policy");
    cr_expect_eq(p.cli.command, SBX_CMD_POLICY_DUMP);
    BAD("missing subcommand", "policy");
    BAD("unknown subcommand 'eat'", "policy", "eat");
    BAD("missing NAME", "policy", "show");
    BAD("unknown profile 'nope'", "policy", "show", "nope");
    BAD("missing FILE", "policy", "compile");
    BAD("unexpected argument 'y'", "policy", "compile", "x", "y");
    BAD("unknown option '--frob'", "policy", "dump", "--frob");
    BAD("unexpected argument", "policy", "list", "x");
}

Test(cli_args, error_buffer_is_bounded)
{
    parsed p;
    memset(&p, 0, sizeof p);
    char small[16];
    memset(small, 'X', sizeof small);
    char *argv[] = { (char *)"sbx", (char *)"frobnicate-with-a-long-name", NULL };
    cr_expect_eq(sbx_cli_parse(2, argv, &p.cli, small, sizeof small), SBX_EXIT_FAILURE);
    cr_expect_eq(strlen(small), sizeof small - 1);
    cr_expect_eq(sbx_cli_parse(2, argv, &p.cli, NULL, 0), SBX_EXIT_FAILURE);
    sbx_cli_free(&p.cli);
    sbx_cli_free(NULL);
}

/* The help of `cmd` as `sbx help CMD` prints it. */
__attribute__((noinline)) static char *help_text(const char *cmd)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    sbx_print_help(f, cmd);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

/* "--name" in text as a whole word (not a prefix of a longer option). */
static bool has_option_word(const char *text, const char *word)
{
    size_t wl = strlen(word);
    for (const char *s = strstr(text, word); s; s = strstr(s + 1, word)) {
        char after = s[wl];
        bool before_ok = s == text || (s[-1] != '-' && !(s[-1] >= 'a' && s[-1] <= 'z'));
        if (before_ok && !((after >= 'a' && after <= 'z') || after == '-'))
            return true;
    }
    return false;
}

/* Every option the parser accepts for run, learn and check is in that
 * command's help (with its short form), and every --option the help names
 * is accepted. */
Test(cli_args, help_lists_every_option)
{
    static const struct {
        const char *name;
        sbx_cli_command cmd;
    } cmds[] = { { "run", SBX_CMD_RUN }, { "learn", SBX_CMD_LEARN }, { "check", SBX_CMD_CHECK } };
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        char *text = help_text(cmds[c].name);
        size_t n = 0;
        char sh;
        for (const char *o; (o = sbx_cli_option(cmds[c].cmd, n, &sh)); n++) {
            char word[64];
            snprintf(word, sizeof word, "--%s", o);
            cr_expect(has_option_word(text, word), "'sbx help %s' does not list %s", cmds[c].name,
                      word);
            if (sh) {
                snprintf(word, sizeof word, "-%c, --%s", sh, o);
                cr_expect(strstr(text, word), "'sbx help %s' does not list '%s'", cmds[c].name,
                          word);
            }
        }
        cr_expect_gt(n, 5, "%s has options", cmds[c].name);
        /* The other way: each --word in the help is an option of the command. */
        for (const char *s = strstr(text, "--"); s; s = strstr(s + 2, "--")) {
            const char *w = s + 2;
            size_t wl = 0;
            while ((w[wl] >= 'a' && w[wl] <= 'z') || w[wl] == '-')
                wl++;
            if (wl == 0)
                continue; /* "-- PROGRAM" */
            bool known = false;
            bool wildcard = w[wl] == '*'; /* "--allow-*" */
            for (size_t k = 0; !known; k++) {
                const char *o = sbx_cli_option(cmds[c].cmd, k, NULL);
                if (!o)
                    break;
                known = wildcard ? !strncmp(o, w, wl) : strlen(o) == wl && !strncmp(o, w, wl);
            }
            /* the help may name another command's option in prose ('sbx run --policy') */
            bool prose = s >= text + 8 && !strncmp(s - 8, "sbx run ", 8);
            cr_expect(known || prose, "'sbx help %s' names --%.*s, which it does not accept",
                      cmds[c].name, (int)wl, w);
            s = w + wl - 2;
        }
        free(text);
    }
}

/* The man page names every option of run, learn and check ("\-\-name"). */
Test(cli_args, man_page_lists_every_option)
{
    const char *root = getenv("SBX_SOURCE_ROOT");
    cr_assert_not_null(root, "SBX_SOURCE_ROOT is not set (run through meson test)");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/sbx.1", root);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char man[1 << 17];
    size_t n = fread(man, 1, sizeof man - 1, f);
    fclose(f);
    man[n] = '\0';
    const sbx_cli_command cmds[] = { SBX_CMD_RUN, SBX_CMD_LEARN, SBX_CMD_CHECK };
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        char sh;
        for (size_t i = 0; sbx_cli_option(cmds[c], i, &sh); i++) {
            const char *o = sbx_cli_option(cmds[c], i, &sh);
            char word[128];
            size_t k = (size_t)snprintf(word, sizeof word, "\\-\\-");
            for (const char *s = o; *s && k + 3 < sizeof word; s++) {
                if (*s == '-')
                    word[k++] = '\\';
                word[k++] = *s;
            }
            word[k] = '\0';
            cr_expect(has_option_word(man, word), "docs/sbx.1 does not name --%s", o);
            if (sh) {
                snprintf(word, sizeof word, "\\-%c", sh);
                cr_expect(has_option_word(man, word), "docs/sbx.1 does not name -%c", sh);
            }
        }
    }
}
