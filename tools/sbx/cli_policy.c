/* sbx command — policy assembly shared by run, check and policy compile. */
#include "cli_policy.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sbx/error.h>

#include "exit_codes.h"
#include "policy/policy_object.h"

void sbx_cli_vars_init(sbx_cli_vars *v, const char *scratch)
{
    memset(v, 0, sizeof *v);
    const char *home = getenv("HOME");
    if (!home || home[0] != '/') {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : "/nonexistent";
    }
    snprintf(v->home, sizeof v->home, "%s", home);
    if (!getcwd(v->cwd, sizeof v->cwd))
        snprintf(v->cwd, sizeof v->cwd, "/");
    if (scratch) {
        snprintf(v->scratch, sizeof v->scratch, "%s", scratch);
    } else {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || tmp[0] != '/')
            tmp = "/tmp";
        size_t tl = strlen(tmp);
        while (tl > 1 && tmp[tl - 1] == '/')
            tl--;
        snprintf(v->scratch, sizeof v->scratch, "%.*s/sbx-scratch", (int)tl, tmp);
    }
    snprintf(v->uid, sizeof v->uid, "%u", (unsigned)getuid());
    v->vars = (sbx_policy_vars){
        .home = v->home, .cwd = v->cwd, .scratch = v->scratch, .uid = v->uid
    };
}

void sbx_cli_print_policy_error(const char *cmd, const sbx_policyfile_error *err, int code)
{
    const char *line = err->formatted[0] ? err->formatted : sbx_strerror(code);
    if (err->line == 0 && err->file[0])
        fprintf(stderr, "sbx: %s: %s (check the --policy path)\n", cmd, line);
    else
        fprintf(stderr, "sbx: %s: %s (nothing was run; see 'man sbx')\n", cmd, line);
}

static int add_cli_rule(sbx_policy *p, int semantics, const char *pattern, const char *origin)
{
    sbx_policy_error perr;
    int r = sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, semantics, pattern, origin, &perr);
    if (r < 0) {
        fprintf(stderr, "sbx: %s: %s: '%s'\n", origin,
                perr.message[0] ? perr.message : sbx_strerror(r), pattern);
        return SBX_EXIT_FAILURE;
    }
    return 0;
}

int sbx_cli_build_policy(const sbx_cli *cli, const sbx_policy_vars *vars, bool default_profile,
                         sbx_policy **out)
{
    const char *cmd = cli->command == SBX_CMD_RUN ? "run" : "check";
    sbx_policy *p = sbx_policy_new();
    if (!p) {
        fprintf(stderr, "sbx: %s: out of memory\n", cmd);
        return SBX_EXIT_FAILURE;
    }
    bool have_base = false;
    for (size_t i = 0; i < cli->n_sources; i++)
        have_base |= cli->sources[i].kind == SBX_SRC_POLICY_FILE ||
                     cli->sources[i].kind == SBX_SRC_PROFILE;
    sbx_policyfile_error err;
    if (default_profile && !have_base) {
        int r = sbx_policy_load_profile(p, "default", vars, &err);
        if (r < 0) {
            sbx_cli_print_policy_error(cmd, &err, r);
            sbx_policy_unref(p);
            return SBX_EXIT_FAILURE;
        }
    }
    for (size_t i = 0; i < cli->n_sources; i++) {
        const sbx_cli_source *s = &cli->sources[i];
        int r = 0;
        switch (s->kind) {
        case SBX_SRC_POLICY_FILE:
            r = sbx_policy_load_file(p, s->value, vars, &err);
            if (r < 0)
                sbx_cli_print_policy_error(cmd, &err, r);
            break;
        case SBX_SRC_PROFILE:
            r = sbx_policy_load_profile(p, s->value, vars, &err);
            if (r < 0)
                sbx_cli_print_policy_error(cmd, &err, r);
            break;
        case SBX_SRC_ALLOW_READ:
            r = add_cli_rule(p, SBX_FILES_ALLOW_READONLY, s->value, "--allow-read");
            break;
        case SBX_SRC_ALLOW_WRITE:
            r = add_cli_rule(p, SBX_FILES_ALLOW_ANY, s->value, "--allow-write");
            break;
        case SBX_SRC_ALLOW_QUERY:
            r = add_cli_rule(p, SBX_FILES_ALLOW_QUERY, s->value, "--allow-query");
            break;
        case SBX_SRC_DENY:
            r = add_cli_rule(p, SBX_FILES_DENY, s->value, "--deny");
            break;
        }
        if (r) {
            sbx_policy_unref(p);
            return SBX_EXIT_FAILURE;
        }
    }
    /* Command-line limits and modes win over every policy file. The parser
     * validated the values, so these cannot fail. */
    if (cli->memory != SBX_CLI_UNSET)
        (void)sbx_policy_set_limit(p, SBX_LIMIT_MEMORY, cli->memory);
    if (cli->processes != SBX_CLI_UNSET)
        (void)sbx_policy_set_limit(p, SBX_LIMIT_PROCESSES, cli->processes);
    if (cli->cpu_seconds != SBX_CLI_UNSET)
        (void)sbx_policy_set_limit(p, SBX_LIMIT_CPU_SECONDS, cli->cpu_seconds);
    if (cli->files != SBX_CLI_UNSET)
        (void)sbx_policy_set_limit(p, SBX_LIMIT_OPEN_FILES, cli->files);
    if (cli->net >= 0)
        (void)sbx_policy_set_net(p, (sbx_net_mode)cli->net);
    if (cli->backend >= 0)
        (void)sbx_policy_set_backend(p, (sbx_backend)cli->backend);
    if (cli->tty) {
        uint64_t m = p->mitigations | SBX_MITIGATION_ALLOW_TTY;
        (void)sbx_policy_set_mitigations(p, m);
    }
    *out = p;
    return 0;
}

int sbx_cli_policy_settings(const sbx_cli *cli, char *buf, size_t cap)
{
    char val[32];
    size_t n = 0;
    if (cap)
        buf[0] = '\0';
    struct {
        const char *word;
        uint64_t v;
    } lim[] = { { "memory", cli->memory }, { "processes", cli->processes },
                { "cpu", cli->cpu_seconds }, { "files", cli->files } };
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
        if (lim[i].v == SBX_CLI_UNSET)
            continue;
        if (i == 0)
            sbx_cli_format_size(val, sizeof val, lim[i].v);
        else
            snprintf(val, sizeof val, "%" PRIu64 "%s", lim[i].v, i == 2 ? "s" : "");
        int w = snprintf(buf + n, cap - n, "limit %s %s\n", lim[i].word, val);
        if (w < 0 || (size_t)w >= cap - n)
            return -ENAMETOOLONG;
        n += (size_t)w;
    }
    if (cli->tty) {
        int w = snprintf(buf + n, cap - n, "mitigation allow-tty\n");
        if (w < 0 || (size_t)w >= cap - n)
            return -ENAMETOOLONG;
        n += (size_t)w;
    }
    return (int)n;
}

void sbx_cli_format_size(char *buf, size_t cap, uint64_t v)
{
    static const char units[] = "KMGT";
    int u = -1;
    while (u < 3 && v && (v & 1023) == 0) {
        v >>= 10;
        u++;
    }
    if (u < 0)
        snprintf(buf, cap, "%" PRIu64, v);
    else
        snprintf(buf, cap, "%" PRIu64 "%c", v, units[u]);
}

const char *sbx_cli_semantics_name(int s)
{
    switch (s) {
    case SBX_FILES_ALLOW_ANY:
        return "allow-any";
    case SBX_FILES_ALLOW_READONLY:
        return "allow-readonly";
    case SBX_FILES_ALLOW_QUERY:
        return "allow-query";
    case SBX_FILES_ALLOW_DIR_ANY:
        return "allow-dir-any";
    case SBX_FILES_DENY:
        return "deny";
    default:
        return "?";
    }
}

static const char *const lockdown_names[] = { "?", "interactive", "limited", "lockdown" };
static const char *const job_names[] = { "none", "interactive", "limited", "lockdown" };
static const char *const backend_names[] = { "auto", "notify", "trap" };

static const char *errno_name(int e)
{
    return e == EPERM ? "EPERM" : e == ENOENT ? "ENOENT" : "EACCES";
}

void sbx_cli_print_summary(FILE *out, const sbx_policy *p)
{
    size_t per[SBX_FILES_DENY + 1] = { 0 };
    for (size_t i = 0; i < p->n_rules; i++)
        if (p->rules[i].semantics >= 0 && p->rules[i].semantics <= SBX_FILES_DENY)
            per[p->rules[i].semantics]++;
    fprintf(out, "rules: %zu", p->n_rules);
    const char *sep = " (";
    for (int s = SBX_FILES_ALLOW_ANY; s <= SBX_FILES_DENY; s++) {
        if (!per[s])
            continue;
        fprintf(out, "%s%s %zu", sep, sbx_cli_semantics_name(s), per[s]);
        sep = ", ";
    }
    fprintf(out, "%s\n", p->n_rules ? ")" : "");
    for (size_t i = 0; i < p->n_rules; i++)
        fprintf(out, "  files %-14s %s  # %s\n", sbx_cli_semantics_name(p->rules[i].semantics),
                p->rules[i].pattern, p->rules[i].origin ? p->rules[i].origin : "");
    fprintf(out, "views: %zu extra, default view %s\n", p->n_views, p->default_view ? "on" : "off");
    for (size_t i = 0; i < p->n_views; i++) {
        unsigned f = p->views[i].flags;
        fprintf(out, "  view %s%s%s%s\n", p->views[i].path, f & SBX_VIEW_WRITABLE ? " rw" : "",
                f & SBX_VIEW_OPTIONAL ? " optional" : "", f & SBX_VIEW_EXEC ? " exec" : "");
    }
    static const char *const limit_names[] = { "memory", "processes", "cpu", "files",
                                               "filesize" };
    fprintf(out, "limits:");
    for (int l = 0; l < SBX_LIMIT_COUNT_; l++) {
        uint64_t v = sbx_policy_effective_limit(p, (sbx_limit)l);
        char val[32];
        if (v == SBX_LIMIT_UNSET)
            snprintf(val, sizeof val, "unlimited");
        else if (l == SBX_LIMIT_MEMORY || l == SBX_LIMIT_FILE_SIZE)
            sbx_cli_format_size(val, sizeof val, v);
        else if (l == SBX_LIMIT_CPU_SECONDS)
            snprintf(val, sizeof val, "%" PRIu64 "s", v);
        else
            snprintf(val, sizeof val, "%" PRIu64, v);
        fprintf(out, " %s %s%s", limit_names[l], val,
                p->limits[l] != SBX_LIMIT_UNSET ? "" : " (preset)");
        fprintf(out, "%s", l + 1 < SBX_LIMIT_COUNT_ ? "," : "\n");
    }
    fprintf(out, "lockdown %s, job %s, net %s, backend %s, identity %u:%u, deny-errno %s, audit %s\n",
            lockdown_names[p->lockdown], job_names[p->job],
            p->net == SBX_NET_LOOPBACK ? "loopback" : "none", backend_names[p->backend], p->uid,
            p->gid, errno_name(p->deny_errno), p->audit ? "on" : "off");
    if (p->mitigations)
        fprintf(out, "mitigations:%s%s%s\n",
                p->mitigations & SBX_MITIGATION_KILL_ON_DENIED_SYSCALL ? " kill-on-denied-syscall"
                                                                        : "",
                p->mitigations & SBX_MITIGATION_ALLOW_TTY ? " allow-tty" : "",
                p->mitigations & SBX_MITIGATION_ALLOW_CHILDREN ? " allow-children" : "");
}
