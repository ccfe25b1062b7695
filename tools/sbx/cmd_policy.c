/* sbx command — `sbx policy show|list|compile|dump`. */
#include <string.h>

#include <sbx/error.h>
#include <sbx/policy.h>
#include <sbx/policyfile.h>

#include "cli_policy.h"
#include "commands.h"
#include "exit_codes.h"

static int show(const char *name)
{
    const char *text = sbx_profile_text(name);
    if (!text) { /* the parser already refused unknown names */
        fprintf(stderr, "sbx: policy show: unknown profile '%s' (see 'sbx policy list')\n", name);
        return SBX_EXIT_FAILURE;
    }
    fputs(text, stdout);
    return SBX_EXIT_OK;
}

static int list(void)
{
    for (const char *const *n = sbx_profile_names(); *n; n++) {
        /* The first comment line after "sbx profile 'NAME': " describes it. */
        const char *text = sbx_profile_text(*n);
        const char *colon = strstr(text, "': ");
        const char *start = colon ? colon + 3 : text;
        const char *end = strchr(start, '\n');
        printf("%-8s %.*s\n", *n, (int)(end ? end - start : (long)strlen(start)), start);
    }
    return SBX_EXIT_OK;
}

static int load(const char *cmd, const char *file, sbx_policy **out)
{
    sbx_cli_vars vars;
    sbx_cli_vars_init(&vars, NULL);
    sbx_policy *p = sbx_policy_new();
    if (!p) {
        fprintf(stderr, "sbx: %s: out of memory\n", cmd);
        return SBX_EXIT_FAILURE;
    }
    sbx_policyfile_error err;
    int r = sbx_policy_load_file(p, file, &vars.vars, &err);
    if (r < 0) {
        const char *line = err.formatted[0] ? err.formatted : "cannot load the policy";
        if (err.line == 0)
            fprintf(stderr, "sbx: %s: %s (check the file name)\n", cmd, line);
        else
            fprintf(stderr, "sbx: %s: %s\n", cmd, line);
        sbx_policy_unref(p);
        return SBX_EXIT_FAILURE;
    }
    *out = p;
    return 0;
}

static int compile(const char *file)
{
    sbx_policy *p = NULL;
    int r = load("policy compile", file, &p);
    if (r)
        return r;
    printf("%s: ok\n", file);
    sbx_cli_print_summary(stdout, p);
    sbx_policy_unref(p);
    return SBX_EXIT_OK;
}

static int dump(const char *file)
{
    sbx_policy *p = NULL;
    int r = load("policy dump", file, &p);
    if (r)
        return r;
    r = sbx_policy_dump(p, stdout);
    sbx_policy_unref(p);
    if (r < 0) {
        fprintf(stderr, "sbx: policy dump: %s: cannot compile the policy: %s\n", file,
                sbx_strerror(r));
        return SBX_EXIT_FAILURE;
    }
    return SBX_EXIT_OK;
}

int sbx_cmd_policy(const sbx_cli *cli)
{
    switch (cli->command) {
    case SBX_CMD_POLICY_SHOW:
        return show(cli->policy_target);
    case SBX_CMD_POLICY_LIST:
        return list();
    case SBX_CMD_POLICY_COMPILE:
        return compile(cli->policy_target);
    case SBX_CMD_POLICY_DUMP:
        return dump(cli->policy_target);
    default:
        return SBX_EXIT_FAILURE;
    }
}
