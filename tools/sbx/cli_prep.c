/* sbx command — run preparation helpers (see cli_prep.h). */
#include "cli_prep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "exit_codes.h"
#include "policy/policy_object.h"

int sbx_cli_normalize_path(const char *path, const char *cwd, char *out, size_t cap)
{
    if (!path || !*path || cap < 2)
        return -EINVAL;
    if (path[0] != '/' && (!cwd || cwd[0] != '/'))
        return -EINVAL;
    size_t o = 0;
    out[o++] = '/';
    /* Walk cwd (when relative), then path, component by component. */
    const char *parts[2] = { path[0] == '/' ? NULL : cwd, path };
    for (int k = 0; k < 2; k++) {
        const char *s = parts[k];
        if (!s)
            continue;
        while (*s) {
            while (*s == '/')
                s++;
            if (!*s)
                break;
            const char *e = strchr(s, '/');
            size_t n = e ? (size_t)(e - s) : strlen(s);
            if (n == 1 && s[0] == '.') {
                /* nothing */
            } else if (n == 2 && s[0] == '.' && s[1] == '.') {
                while (o > 1 && out[o - 1] != '/')
                    o--;
                if (o > 1)
                    o--; /* the '/' before the component */
            } else {
                if (o > 1) {
                    if (o + 1 >= cap)
                        return -ENAMETOOLONG;
                    out[o++] = '/';
                }
                if (o + n >= cap)
                    return -ENAMETOOLONG;
                memcpy(out + o, s, n);
                o += n;
            }
            s += n;
        }
    }
    out[o] = 0;
    return 0;
}

static bool executable_file(const char *path, bool *denied)
{
    struct stat st;
    if (stat(path, &st) < 0 || S_ISDIR(st.st_mode))
        return false;
    if (access(path, X_OK) == 0)
        return true;
    *denied = true;
    return false;
}

/* Search `name` in a colon-separated list; 0 with out[] or -ENOENT/-EACCES. */
static int search(const char *name, const char *search_path, char *out, size_t cap)
{
    const char *d = search_path && *search_path ? search_path : "/usr/local/bin:/usr/bin:/bin";
    bool denied = false;
    for (;;) {
        const char *colon = strchr(d, ':');
        size_t dl = colon ? (size_t)(colon - d) : strlen(d);
        int n = dl ? snprintf(out, cap, "%.*s/%s", (int)dl, d, name)
                   : snprintf(out, cap, "./%s", name);
        if (n > 0 && (size_t)n < cap && executable_file(out, &denied))
            return 0;
        if (!colon)
            break;
        d = colon + 1;
    }
    return denied ? -EACCES : -ENOENT;
}

int sbx_cli_resolve_program(const char *prog, const char *search_path, char *out, size_t cap)
{
    if (!strchr(prog, '/')) {
        int r = search(prog, search_path, out, cap);
        if (r == -EACCES) {
            fprintf(stderr, "sbx: run: %s: permission denied (found in $PATH, but not "
                            "executable)\n", prog);
            return SBX_EXIT_CANNOT_EXECUTE;
        }
        if (r < 0) {
            fprintf(stderr, "sbx: run: %s: command not found (check the name or $PATH)\n", prog);
            return SBX_EXIT_NOT_FOUND;
        }
        return 0;
    }
    if ((size_t)snprintf(out, cap, "%s", prog) >= cap) {
        fprintf(stderr, "sbx: run: %.100s...: path too long\n", prog);
        return SBX_EXIT_NOT_FOUND;
    }
    struct stat st;
    if (stat(out, &st) < 0) {
        if (errno == EACCES) {
            fprintf(stderr, "sbx: run: %s: permission denied (a directory on the way is not "
                            "searchable)\n", prog);
            return SBX_EXIT_CANNOT_EXECUTE;
        }
        fprintf(stderr, "sbx: run: %s: %s (check the path)\n", prog, strerror(errno));
        return SBX_EXIT_NOT_FOUND;
    }
    if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "sbx: run: %s: is a directory, not a program (give a program)\n", prog);
        return SBX_EXIT_CANNOT_EXECUTE;
    }
    if (access(out, X_OK) < 0) {
        fprintf(stderr, "sbx: run: %s: permission denied (not executable; chmod +x?)\n", prog);
        return SBX_EXIT_CANNOT_EXECUTE;
    }
    return 0;
}

bool sbx_cli_in_default_view(const char *p)
{
    static const char *const trees[] = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                                         "/libx32" };
    for (size_t i = 0; i < SBX_ARRAY_SIZE(trees); i++) {
        size_t n = strlen(trees[i]);
        if (!strncmp(p, trees[i], n) && (p[n] == '/' || p[n] == 0))
            return true;
    }
    return false;
}

static bool has_view(const sbx_policy *policy, const char *path)
{
    for (size_t i = 0; i < policy->n_views; i++)
        if (!strcmp(policy->views[i].path, path))
            return true;
    return false;
}

/* Add a view for the real path of `path`; 1 if added, 0 if not needed. */
static int add_exec_view(sbx_policy *policy, const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return sbx_neg_errno();
    if ((policy->default_view && sbx_cli_in_default_view(real)) || has_view(policy, real))
        return 0;
    int r = sbx_policy_add_view(policy, real, SBX_VIEW_READONLY | SBX_VIEW_EXEC);
    return r < 0 ? r : 1;
}

int sbx_cli_add_program_views(sbx_policy *policy, const char *path, const char *search_path)
{
    int added = add_exec_view(policy, path);
    if (added < 0)
        return added;
    /* A script: read its "#!" line (at most one page, like the kernel's
     * limit on it) and make the interpreter visible too. */
    SBX_AUTOCLOSE int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return added; /* executable but unreadable: exec decides */
    char line[256];
    ssize_t n = read(fd, line, sizeof line - 1);
    if (n < 3 || line[0] != '#' || line[1] != '!')
        return added;
    line[n] = 0;
    char *nl = strchr(line, '\n');
    if (!nl)
        return added; /* over-long "#!" line: the kernel refuses it anyway */
    *nl = 0;
    char *save = NULL;
    char *interp = strtok_r(line + 2, " \t", &save);
    if (!interp || interp[0] != '/')
        return added;
    int r = add_exec_view(policy, interp);
    if (r > 0)
        added += r;
    const char *base = strrchr(interp, '/') + 1;
    char *arg = strtok_r(NULL, " \t", &save);
    if (!strcmp(base, "env") && arg) {
        if (!strcmp(arg, "-S")) /* env -S "prog args" */
            arg = strtok_r(NULL, " \t", &save);
        char found[PATH_MAX];
        if (arg && arg[0] != '-' && search(arg, search_path, found, sizeof found) == 0) {
            r = add_exec_view(policy, found);
            if (r > 0)
                added += r;
        }
    }
    return added;
}

/* The literal prefix of a pattern (escapes removed) up to its first
 * wildcard, into out[cap]; *rest points at the wildcard (or the end).
 * Returns false when it does not fit. */
static bool literal_prefix(const char *pat, char *out, size_t cap, const char **rest)
{
    size_t o = 0;
    const char *s = pat;
    while (*s && *s != '*' && *s != '?') {
        if (*s == '\\' && s[1])
            s++;
        if (o + 1 >= cap)
            return false;
        out[o++] = *s++;
    }
    out[o] = 0;
    *rest = s;
    return true;
}

/* a == b, or a lies below b ("/x/y" below "/x"; everything below ""). */
static bool at_or_below(const char *a, const char *b)
{
    size_t n = strlen(b);
    if (n == 0)
        return true;
    return !strncmp(a, b, n) && (a[n] == 0 || a[n] == '/');
}

/* For X/{**}: X (possibly "" for the whole tree) into out; false for other shapes. */
static bool subtree_root(const char *pat, char *out, size_t cap)
{
    const char *rest;
    if (!literal_prefix(pat, out, cap, &rest) || strcmp(rest, "**") != 0)
        return false;
    size_t n = strlen(out);
    if (n == 0 || out[n - 1] != '/')
        return false;
    out[n - 1] = 0;
    return true;
}

static bool in_views(const sbx_policy *policy, const char *path)
{
    if (!strcmp(path, "/"))
        return true;
    if (policy->default_view && sbx_cli_in_default_view(path))
        return true;
    for (size_t i = 0; i < policy->n_views; i++)
        if (at_or_below(path, policy->views[i].path))
            return true;
    return false;
}

int sbx_cli_plan_cwd(sbx_policy *policy, const char *cwd, unsigned *added, char *why, size_t cap)
{
    if (added)
        *added = 0;
    if (!cwd || cwd[0] != '/')
        return -EINVAL;
    if (in_views(policy, cwd))
        return 0;
    bool readable = false;
    for (size_t i = 0; i < policy->n_rules; i++) {
        const sbx_policy_rule *r = &policy->rules[i];
        if (r->subsys != SBX_SUBSYS_FILES)
            continue;
        char root[PATH_MAX];
        const char *rest;
        bool tree = subtree_root(r->pattern, root, sizeof root);
        if (r->semantics == SBX_FILES_DENY) {
            /* Denied as a whole (or the directory itself): not shown. A
             * deny that reaches only part of it is enforced by the broker,
             * which stops answering CONTINUE for the whole target. */
            bool exact = !tree && literal_prefix(r->pattern, root, sizeof root, &rest) &&
                         !*rest && !strcmp(root, cwd);
            if (exact || (tree && at_or_below(cwd, root))) {
                snprintf(why, cap, "a deny rule covers it (%s: %s)",
                         r->origin ? r->origin : "policy", r->pattern);
                return 1;
            }
            continue;
        }
        if ((r->semantics == SBX_FILES_ALLOW_READONLY || r->semantics == SBX_FILES_ALLOW_ANY) &&
            tree && at_or_below(cwd, root))
            readable = true;
    }
    if (!readable) {
        snprintf(why, cap, "the policy does not allow reading everything in it "
                           "(give --allow-read '%s/**')", cwd);
        return 1;
    }
    /* Read-only even when an allow-any rule covers it: writes are then
     * brokered, performed by the broker under the policy, whoever owns
     * the directory (a native writable view would write as the target's
     * outside identity). */
    int r = sbx_policy_add_view(policy, cwd, SBX_VIEW_READONLY);
    if (r < 0)
        return r;
    if (added)
        *added = 1;
    return 0;
}

int sbx_cli_scratch_create(char *out, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || tmp[0] != '/')
        tmp = "/tmp";
    size_t tl = strlen(tmp);
    while (tl > 1 && tmp[tl - 1] == '/')
        tl--;
    int n = snprintf(out, cap, "%.*s/sbx-scratch.XXXXXX", (int)tl, tmp);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    if (!mkdtemp(out))
        return sbx_neg_errno();
    return 0;
}

/* Remove everything inside the directory open as dirfd. */
static int empty_dir(int dirfd)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return sbx_neg_errno();
    }
    int result = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd, e->d_name, 0) == 0)
            continue;
        if (errno != EISDIR) {
            result = sbx_neg_errno();
            continue;
        }
        /* O_NOFOLLOW|O_DIRECTORY: never leave the scratch tree through a
         * symlink swapped in for a directory. */
        int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            result = sbx_neg_errno();
            continue;
        }
        int r = empty_dir(sub);
        if (r < 0)
            result = r;
        if (unlinkat(dirfd, e->d_name, AT_REMOVEDIR) < 0)
            result = sbx_neg_errno();
    }
    closedir(d);
    return result;
}

int sbx_cli_scratch_remove(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sbx_neg_errno();
    int r = empty_dir(fd);
    if (rmdir(path) < 0 && r == 0)
        r = sbx_neg_errno();
    return r;
}

void sbx_cli_env_free(char **envp)
{
    if (!envp)
        return;
    for (char **e = envp; *e; e++)
        free(*e);
    free(envp);
}

/* Put NAME=VALUE (name length nl) into out[0..*n), replacing an entry of
 * the same name. Takes entry. */
static void env_put(char **out, size_t *n, char *entry, size_t nl)
{
    for (size_t k = 0; k < *n; k++)
        if (strncmp(out[k], entry, nl) == 0 && out[k][nl] == '=') {
            free(out[k]);
            out[k] = entry;
            return;
        }
    out[(*n)++] = entry;
}

char **sbx_cli_build_env(const char *const *env, size_t n_env, const char *scratch)
{
    char **out = calloc(n_env + 2, sizeof *out);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < n_env; i++) {
        const char *eq = strchr(env[i], '=');
        size_t nl = eq ? (size_t)(eq - env[i]) : strlen(env[i]);
        char *entry;
        if (eq) {
            entry = strdup(env[i]);
        } else {
            const char *v = getenv(env[i]);
            if (!v)
                continue;
            if (asprintf(&entry, "%s=%s", env[i], v) < 0)
                entry = NULL;
        }
        if (!entry) {
            sbx_cli_env_free(out);
            return NULL;
        }
        env_put(out, &n, entry, nl);
    }
    if (scratch) {
        /* sbx's own value wins over an --env SBX_SCRATCH */
        char *entry;
        if (asprintf(&entry, "SBX_SCRATCH=%s", scratch) < 0) {
            sbx_cli_env_free(out);
            return NULL;
        }
        env_put(out, &n, entry, strlen("SBX_SCRATCH"));
    }
    out[n] = NULL;
    return out;
}

int sbx_cli_exit_status(bool killed, int code)
{
    if (killed)
        return code > 0 && code < 128 ? SBX_EXIT_SIGNAL_BASE + code : SBX_EXIT_FAILURE;
    return code >= 0 && code <= 255 ? code : SBX_EXIT_FAILURE;
}
