/* sbx command — `sbx learn`: run PROGRAM under the 'learn' profile (every
 * file access the invoking user could make is brokered and audited), then
 * write a minimal policy that lets the same run succeed (learn_policy.c,
 * docs/learn.md). The run itself is `sbx run`'s (sbx_cli_run_program);
 * only the policy sources and an audit hook differ. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/broker.h>

#include "cli_policy.h"
#include "commands.h"
#include "exit_codes.h"
#include "learn_policy.h"

/* Directories with this many used entries become DIR/{**}. */
#define LEARN_COLLAPSE 8
/* At most this many distinct paths are remembered. */
#define LEARN_MAX_PATHS 16384

typedef struct learn_state {
    sbx_learn *l;
    bool oom;
} learn_state;

/* Serialised by the broker (one audit call at a time). */
static void on_learn_audit(const sbx_audit_record *rec, void *ud)
{
    learn_state *s = ud;
    int r = sbx_learn_add(s->l, rec->op, rec->path, rec->path2, rec->flags,
                          rec->decision == SBX_AUDIT_DENIED || rec->decision == SBX_AUDIT_TERMINATED,
                          rec->error);
    if (r == -ENOMEM)
        s->oom = true;
}

/* The command line, shell-quoted enough to read back, for the header. */
static char *command_line(const char *const *argv)
{
    size_t n = 1;
    for (const char *const *a = argv; *a; a++)
        n += 4 * strlen(*a) + 3;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    for (const char *const *a = argv; *a; a++) {
        if (a != argv)
            *p++ = ' ';
        bool plain = **a != '\0';
        for (const char *c = *a; *c; c++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=+,:@%",
                        *c))
                plain = false;
        if (plain) {
            p = stpcpy(p, *a);
            continue;
        }
        *p++ = '\'';
        for (const char *c = *a; *c; c++) {
            if (*c == '\n') {
                p = stpcpy(p, "\\n"); /* keep the header comment on one line */
            } else if (*c == '\'') {
                p = stpcpy(p, "'\\''");
            } else {
                *p++ = *c;
            }
        }
        *p++ = '\'';
    }
    *p = '\0';
    return s;
}

/* The `sbx run` options the re-run needs besides --policy, for the
 * policy's header: --cwd, and --env by name (a value given to learn is
 * not copied into the file: it may be a secret). NULL when none. */
static char *rerun_options(const sbx_cli *cli, const char *workdir)
{
    size_t n = 0;
    const char **words = calloc(2 * cli->n_env + 3, sizeof *words);
    char **names = calloc(cli->n_env + 1, sizeof *names);
    char *s = NULL;
    bool ok = words && names;
    if (ok && cli->cwd) {
        words[n++] = "--cwd";
        words[n++] = !strcmp(cli->cwd, "scratch") ? "scratch" : workdir;
    }
    for (size_t i = 0; ok && i < cli->n_env; i++) {
        const char *eq = strchr(cli->env[i], '=');
        size_t nl = eq ? (size_t)(eq - cli->env[i]) : strlen(cli->env[i]);
        if (!(names[i] = malloc(nl + 8))) {
            ok = false;
            break;
        }
        snprintf(names[i], nl + 8, "%.*s%s", (int)nl, cli->env[i], eq ? "=VALUE" : "");
        words[n++] = "--env";
        words[n++] = names[i];
    }
    if (ok && n)
        s = command_line(words);
    for (size_t i = 0; names && i < cli->n_env; i++)
        free(names[i]);
    free(names);
    free(words);
    return s;
}

int sbx_cmd_learn(const sbx_cli *cli)
{
    fprintf(stderr,
            "sbx: learn: WARNING: learn mode is NOT a sandbox. %s may read and write every file\n"
            "sbx: learn: you can (only a few secrets are denied). Run only trusted programs on\n"
            "sbx: learn: trusted input, then review the policy it writes.\n",
            cli->program_argv[0]);
    learn_state s = { 0 };
    if (sbx_learn_new(LEARN_MAX_PATHS, &s.l) < 0) {
        fprintf(stderr, "sbx: learn: out of memory\n");
        return SBX_EXIT_FAILURE;
    }
    /* The run is `sbx run --profile learn` with the run options given to
     * learn (limits, --env, --cwd, --log...): the parser let through no
     * policy source and no --backend. */
    sbx_cli_source src = { .kind = SBX_SRC_PROFILE, .value = "learn" };
    sbx_cli run = *cli;
    run.command = SBX_CMD_RUN;
    run.sources = &src;
    run.n_sources = 1;
    /* The limits go into the learned policy as they were applied. */
    char settings[512];
    if (sbx_cli_policy_settings(cli, settings, sizeof settings) < 0) {
        fprintf(stderr, "sbx: learn: internal error: settings too long\n");
        sbx_learn_free(s.l);
        return SBX_EXIT_FAILURE;
    }
    char scratch[PATH_MAX] = "", cwd[PATH_MAX] = "", workdir[PATH_MAX] = "";
    sbx_cli_run_hooks hooks = { .audit = on_learn_audit, .audit_ud = &s, .scratch_out = scratch,
                                .cwd_out = cwd, .workdir_out = workdir, .cap = sizeof scratch };
    int status = sbx_cli_run_program(&run, &hooks);
    if (!hooks.started) { /* nothing ran: the error is already printed */
        sbx_learn_free(s.l);
        return status;
    }
    if (s.oom) {
        fprintf(stderr, "sbx: learn: out of memory while recording; no policy written\n");
        sbx_learn_free(s.l);
        return SBX_EXIT_FAILURE;
    }
    if (sbx_learn_dropped(s.l))
        fprintf(stderr, "sbx: learn: warning: more than %d paths used; %zu accesses were not "
                        "recorded and the policy will not cover them\n",
                LEARN_MAX_PATHS, sbx_learn_dropped(s.l));
    char *cmd = command_line((const char *const *)cli->program_argv);
    char *rerun = rerun_options(cli, workdir);
    sbx_learn_options o = { .scratch = scratch, .cwd = cwd, .workdir = workdir,
                            .net = cli->net == SBX_NET_LOOPBACK ? "loopback" : "none",
                            .settings = settings, .rerun = rerun, .command = cmd,
                            .collapse = LEARN_COLLAPSE };
    FILE *out = stdout;
    if (cli->learn_output && !(out = fopen(cli->learn_output, "w"))) {
        fprintf(stderr, "sbx: learn: -o %s: %s (give a writable file)\n", cli->learn_output,
                strerror(errno));
        free(cmd);
        free(rerun);
        sbx_learn_free(s.l);
        return SBX_EXIT_FAILURE;
    }
    int r = sbx_learn_write(s.l, &o, out);
    if (out != stdout && fclose(out) != 0 && r == 0)
        r = -errno;
    free(cmd);
    free(rerun);
    sbx_learn_free(s.l);
    if (r < 0) {
        fprintf(stderr, "sbx: learn: cannot write the policy to %s: %s\n",
                cli->learn_output ? cli->learn_output : "stdout", strerror(-r));
        return SBX_EXIT_FAILURE;
    }
    if (!cli->quiet && cli->learn_output)
        fprintf(stderr, "sbx: learn: policy written to %s\n", cli->learn_output);
    return status;
}
