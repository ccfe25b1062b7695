/* sbx command — `sbx run`: everything up to the spawn. The policy is built
 * and checked, PROGRAM is resolved (126/127 are decided here, before any
 * sandbox exists) and the options are validated; then the broker takes
 * over. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sbx/policy.h>

#include "cli_policy.h"
#include "commands.h"
#include "exit_codes.h"

/* Find PROGRAM the way a shell would: a name with '/' is a path, else it is
 * searched in sbx's own $PATH. Returns 0 with path[], or the exit status. */
static int resolve_program(const char *prog, char *path, size_t cap)
{
    struct stat st;
    if (strchr(prog, '/')) {
        if (strlen(prog) >= cap) {
            fprintf(stderr, "sbx: run: %s: path too long\n", prog);
            return SBX_EXIT_NOT_FOUND;
        }
        snprintf(path, cap, "%s", prog);
    } else {
        const char *env = getenv("PATH");
        if (!env || !*env)
            env = "/usr/local/bin:/usr/bin:/bin";
        bool found = false, denied = false;
        for (const char *d = env; !found;) {
            const char *colon = strchr(d, ':');
            size_t dl = colon ? (size_t)(colon - d) : strlen(d);
            int n = dl ? snprintf(path, cap, "%.*s/%s", (int)dl, d, prog)
                       : snprintf(path, cap, "./%s", prog);
            if (n > 0 && (size_t)n < cap && stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
                if (access(path, X_OK) == 0)
                    found = true;
                else
                    denied = true;
            }
            if (!colon)
                break;
            d = colon + 1;
        }
        if (!found) {
            if (denied) {
                fprintf(stderr, "sbx: run: %s: permission denied (found in $PATH, but not "
                                "executable)\n", prog);
                return SBX_EXIT_CANNOT_EXECUTE;
            }
            fprintf(stderr, "sbx: run: %s: command not found (check the name or $PATH)\n", prog);
            return SBX_EXIT_NOT_FOUND;
        }
    }
    if (stat(path, &st) < 0) {
        if (errno == EACCES) {
            fprintf(stderr, "sbx: run: %s: permission denied\n", prog);
            return SBX_EXIT_CANNOT_EXECUTE;
        }
        fprintf(stderr, "sbx: run: %s: %s (check the path)\n", prog, strerror(errno));
        return SBX_EXIT_NOT_FOUND;
    }
    if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "sbx: run: %s: is a directory, not a program\n", prog);
        return SBX_EXIT_CANNOT_EXECUTE;
    }
    if (access(path, X_OK) < 0) {
        fprintf(stderr, "sbx: run: %s: permission denied (not executable; chmod +x?)\n", prog);
        return SBX_EXIT_CANNOT_EXECUTE;
    }
    return 0;
}

int sbx_cmd_run(const sbx_cli *cli)
{
    sbx_cli_vars vars;
    sbx_cli_vars_init(&vars, NULL);
    sbx_policy *policy = NULL;
    int r = sbx_cli_build_policy(cli, &vars.vars, true, &policy);
    if (r)
        return r;
    if (cli->cwd && strcmp(cli->cwd, "scratch") != 0) {
        struct stat st;
        if (stat(cli->cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "sbx: run: --cwd: '%s' is not a directory (give a directory or "
                            "'scratch')\n", cli->cwd);
            sbx_policy_unref(policy);
            return SBX_EXIT_FAILURE;
        }
    }
    char path[PATH_MAX];
    r = resolve_program(cli->program_argv[0], path, sizeof path);
    if (r) {
        sbx_policy_unref(policy);
        return r;
    }
    sbx_policy_unref(policy);
    fprintf(stderr, "sbx: run: the sandbox runtime is not built yet (nothing was run; try "
                    "'sbx check' or 'sbx policy compile')\n");
    return SBX_EXIT_FAILURE;
}
