/* sbx command — the parts of `sbx run` and `sbx check` that need no
 * sandbox runtime: path normalisation, finding PROGRAM, making it (and a
 * script's interpreter) visible in the native view, the scratch directory
 * and the target's clean environment. Unit tested in tests/cli. */
#ifndef SBX_TOOL_CLI_PREP_H
#define SBX_TOOL_CLI_PREP_H

#include <stdbool.h>
#include <stddef.h>

#include <sbx/policy.h>

/* Make `path` absolute against `cwd` (used when path is relative) and
 * normalise it lexically: no empty, "." or ".." components ("/.." is "/"),
 * no trailing '/'. Symbolic links are not followed. Returns 0, or
 * -ENAMETOOLONG when the result does not fit in out[cap], or -EINVAL. */
int sbx_cli_normalize_path(const char *path, const char *cwd, char *out, size_t cap);

/* Find PROGRAM as a shell would: a name with '/' is a path, else it is
 * searched in `search_path` (NULL: "/usr/local/bin:/usr/bin:/bin"). On
 * success returns 0 with the path found in out[cap]. Otherwise prints one
 * line to stderr ("sbx: run: ...") and returns SBX_EXIT_NOT_FOUND (127) or
 * SBX_EXIT_CANNOT_EXECUTE (126). */
int sbx_cli_resolve_program(const char *prog, const char *search_path, char *out, size_t cap);

/* True if `abs_path` lies in one of the default native view's system trees
 * (/usr, /bin, /sbin, /lib, /lib32, /lib64, /libx32). */
bool sbx_cli_in_default_view(const char *abs_path);

/* Add read-only exec views for the program at `path` (already resolved) and,
 * when it is a "#!" script, for its interpreter (and for the program that
 * "#!/usr/bin/env NAME" names, searched in `search_path`), unless the
 * default view already holds them. Real paths are used, so symlinked
 * programs work. Returns the number of views added, or a negative code. */
int sbx_cli_add_program_views(sbx_policy *policy, const char *path, const char *search_path);

/* Make the directory `cwd` (absolute, normalised) the target's working
 * directory, which must lie inside the native view (the program chdirs
 * there before any interception exists). When a default tree or a policy
 * view already holds it, nothing is added. Otherwise a read-only view of
 * it is added, but only when the policy grants reading everything below
 * it (an allow-readonly or allow-any rule X/{**} with X = cwd or above)
 * and no deny rule covers it as a whole (X/{**} with X = cwd or above, or
 * cwd itself). Deny rules reaching only part of it stay in force: the
 * broker performs every file call of a target with a deny rule inside its
 * view (docs/broker.md). Writes under allow-any rules are brokered, never
 * native. Returns 0 (visible; the number of views added, 0 or 1, in
 * *added when not NULL), 1 (not visible: why in why[cap]) or a negative
 * code. */
int sbx_cli_plan_cwd(sbx_policy *policy, const char *cwd, unsigned *added, char *why, size_t cap);

/* Create a private scratch directory "$TMPDIR/sbx-scratch.XXXXXX" (mode
 * 0700) into out[cap]. Returns 0 or a negative errno. */
int sbx_cli_scratch_create(char *out, size_t cap);
/* Remove it and everything in it (never following symlinks out of it).
 * Returns 0 or a negative errno. */
int sbx_cli_scratch_remove(const char *path);

/* The target's environment: only the --env variables (NAME=VALUE as given,
 * NAME from sbx's own environment, skipped when unset) and
 * SBX_SCRATCH=scratch (when scratch is not NULL). A later --env for the
 * same NAME replaces an earlier one. Returns a NULL-terminated malloc'ed
 * array of malloc'ed strings (free with sbx_cli_env_free), or NULL on
 * allocation failure. */
char **sbx_cli_build_env(const char *const *env, size_t n_env, const char *scratch);
void sbx_cli_env_free(char **envp);

/* sbx run's exit status for a target that exited with `code` (killed ==
 * false) or was killed by signal `code` (killed == true): the program's own
 * status, or 128 + N. Out-of-range values give SBX_EXIT_FAILURE. */
int sbx_cli_exit_status(bool killed, int code);

#endif
