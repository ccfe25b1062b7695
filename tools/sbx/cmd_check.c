/* sbx command — `sbx check`: what the policy decides for one access, and
 * which rule (file:line) decided. Files operations are asked of the policy
 * engine exactly as the broker will ask it; exec is decided by the native
 * view (exec is never brokered), so it is explained from the views. */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sbx/error.h>
#include <sbx/policy.h>

#include "cli_policy.h"
#include "cli_prep.h"
#include "commands.h"
#include "exit_codes.h"
#include "policy/policy_object.h"

static bool allowed(const sbx_decision *d)
{
    return d->action == SBX_ACTION_ASK_BROKER || d->action == SBX_ACTION_GIVE_READONLY;
}

/* "x.policy:3: files allow-readonly PATTERN" or "no rule matched → denied" */
static void explain(char *buf, size_t cap, const sbx_decision *d)
{
    if (d->rule < 0) {
        snprintf(buf, cap, "no rule matched \u2192 denied");
        return;
    }
    const char *origin = d->origin[0] ? d->origin : "rule without origin";
    const char *extra = d->action == SBX_ACTION_GIVE_READONLY ? ", opened read-only" : "";
    if (d->semantics == SBX_FILES_DENY || allowed(d))
        snprintf(buf, cap, "%s: files %s %s%s", origin, sbx_cli_semantics_name(d->semantics),
                 d->pattern, extra);
    else
        snprintf(buf, cap, "%s: files %s %s does not admit this operation \u2192 denied", origin,
                 sbx_cli_semantics_name(d->semantics), d->pattern);
}

static int ask(const sbx_policy *policy, const sbx_files_request *req, sbx_decision *d)
{
    int r = sbx_policy_check_files(policy, req, d);
    if (r < 0)
        fprintf(stderr, "sbx: check: the policy engine refused the request: %s (%s)\n", d->reason,
                sbx_strerror(r));
    return r;
}

/* exec: allowed where the native view holds the file with the exec right. */
static int check_exec(const sbx_policy *policy, const char *path)
{
    if (policy->default_view && sbx_cli_in_default_view(path)) {
        printf("allow: exec %s (native view: default system trees)\n", path);
        return SBX_EXIT_OK;
    }
    for (size_t i = 0; i < policy->n_views; i++) {
        const char *v = policy->views[i].path;
        size_t n = strlen(v);
        bool under = !strcmp(v, "/") || (!strncmp(path, v, n) && (path[n] == '/' || path[n] == 0));
        if (under && (policy->views[i].flags & SBX_VIEW_EXEC)) {
            printf("allow: exec %s (native view: view %s exec)\n", path, v);
            return SBX_EXIT_OK;
        }
    }
    printf("deny: exec %s (not in an exec view of the native view; exec is never brokered "
           "\u2192 denied)\n", path);
    return SBX_EXIT_DENIED;
}

static int check_rename(const sbx_policy *policy, const char *src, const char *dst, bool is_dir)
{
    sbx_files_request a = { .op = SBX_FILES_OP_RENAME_SRC, .path = src, .is_dir = is_dir };
    sbx_files_request b = { .op = SBX_FILES_OP_RENAME_DST, .path = dst, .is_dir = is_dir };
    sbx_decision da, db;
    if (ask(policy, &a, &da) < 0 || ask(policy, &b, &db) < 0)
        return SBX_EXIT_FAILURE;
    bool ok = allowed(&da) && allowed(&db);
    char ea[700], eb[700];
    explain(ea, sizeof ea, &da);
    explain(eb, sizeof eb, &db);
    printf("%s: rename %s %s\n", ok ? "allow" : "deny", src, dst);
    printf("  source %s: %s (%s)\n", src, allowed(&da) ? "allow" : "deny", ea);
    printf("  destination %s: %s (%s)\n", dst, allowed(&db) ? "allow" : "deny", eb);
    return ok ? SBX_EXIT_OK : SBX_EXIT_DENIED;
}

int sbx_cmd_check(const sbx_cli *cli)
{
    sbx_cli_vars vars;
    sbx_cli_vars_init(&vars, NULL);
    char path[PATH_MAX], path2[PATH_MAX];
    const char *inputs[2] = { cli->check_path, cli->check_path2 };
    char *outs[2] = { path, path2 };
    for (int i = 0; i < 2 && inputs[i]; i++) {
        int r = sbx_cli_normalize_path(inputs[i], vars.cwd, outs[i], PATH_MAX);
        if (r < 0) {
            fprintf(stderr, "sbx: check: bad PATH '%.200s': %s (give an absolute or relative "
                            "path)\n", inputs[i], sbx_strerror(r));
            return SBX_EXIT_FAILURE;
        }
    }
    sbx_policy *policy = NULL;
    int r = sbx_cli_build_policy(cli, &vars.vars, true, &policy);
    if (r)
        return r;
    bool dir = cli->check_flags & SBX_CHECK_FLAG_DIR;
    int acc = cli->check_flags & SBX_CHECK_FLAG_RDWR ? O_RDWR : O_WRONLY;
    int extra = (cli->check_flags & SBX_CHECK_FLAG_TRUNC ? O_TRUNC : 0) |
                (cli->check_flags & SBX_CHECK_FLAG_APPEND ? O_APPEND : 0);
    sbx_files_request req = { .path = path, .is_dir = dir };
    switch (cli->check_op) {
    case SBX_CHECK_READ:
        req.op = SBX_FILES_OP_OPEN;
        req.open_flags = (cli->check_flags & SBX_CHECK_FLAG_RDWR ? O_RDWR : O_RDONLY) |
                         (dir ? O_DIRECTORY : 0) | extra;
        break;
    case SBX_CHECK_WRITE:
        req.op = SBX_FILES_OP_OPEN;
        req.open_flags = acc | extra;
        break;
    case SBX_CHECK_CREATE:
        req.op = SBX_FILES_OP_OPEN;
        req.open_flags = acc | O_CREAT | extra;
        req.mode = 0644;
        break;
    case SBX_CHECK_STAT:
        req.op = SBX_FILES_OP_STAT;
        break;
    case SBX_CHECK_UNLINK:
        req.op = dir ? SBX_FILES_OP_RMDIR : SBX_FILES_OP_UNLINK;
        break;
    case SBX_CHECK_MKDIR:
        req.op = SBX_FILES_OP_MKDIR;
        req.mode = 0755;
        break;
    case SBX_CHECK_RENAME:
        r = check_rename(policy, path, path2, dir);
        sbx_policy_unref(policy);
        return r;
    case SBX_CHECK_EXEC:
        r = check_exec(policy, path);
        sbx_policy_unref(policy);
        return r;
    default:
        sbx_policy_unref(policy);
        return SBX_EXIT_FAILURE;
    }
    sbx_decision d;
    r = ask(policy, &req, &d);
    sbx_policy_unref(policy);
    if (r < 0)
        return SBX_EXIT_FAILURE;
    char why[700];
    explain(why, sizeof why, &d);
    printf("%s: %s %s (%s)\n", allowed(&d) ? "allow" : "deny",
           sbx_cli_check_op_name(cli->check_op), path, why);
    return allowed(&d) ? SBX_EXIT_OK : SBX_EXIT_DENIED;
}
