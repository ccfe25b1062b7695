/* sbx — policy files: load the line-oriented policy language
 * (docs/policy-language.md) into an sbx_policy, and the embedded profiles.
 *
 * Loading is all or nothing: the whole file, with its includes, is read,
 * parsed and checked before anything is applied, and on any error the
 * caller's policy is left exactly as it was. Errors are reported as one line
 * "file:line:column: message: 'offending text'".
 *
 * Threads: these functions keep no global state; two threads may load into
 * two different policies at once. One policy is modified by one thread at a
 * time (see sbx/policy.h). */
#ifndef SBX_POLICYFILE_H
#define SBX_POLICYFILE_H

#include <stddef.h>

#include <sbx/export.h>
#include <sbx/policy.h>

SBX_BEGIN_DECLS

/* The values of ${HOME}, ${CWD}, ${SCRATCH} and ${UID}. Each may be NULL:
 * using an undefined variable is an error. The strings are borrowed for the
 * duration of the call. Values are taken literally: wildcard characters in
 * them are escaped when they are substituted into a `files` pattern, so a
 * variable can never widen a rule. */
typedef struct sbx_policy_vars {
    const char *home;
    const char *cwd;
    const char *scratch;
    const char *uid;
} sbx_policy_vars;

/* Details of a failed load. Caller-owned; filled on error, zeroed (code 0)
 * on success. */
typedef struct sbx_policyfile_error {
    int code;             /* the value returned */
    char file[1024];      /* file holding the error; "" when none */
    unsigned line;        /* 1-based; 0 when the error is not on a line */
    unsigned column;      /* 1-based; 0 when not applicable */
    char message[256];    /* what is wrong, without location */
    char text[128];       /* the offending text (non-printables as '?'), may be truncated */
    char formatted[1600]; /* the whole one-line report: "file:line:col: message: 'text'" */
} sbx_policyfile_error;

/* Load the policy file at `path` into `policy`. `include` statements are
 * resolved relative to the directory of the including file. Rules carry the
 * origin "file:line". `vars` may be NULL (no variable defined); `err` may be
 * NULL. Returns 0; SBX_ERROR_BAD_POLICY (syntax, unknown keyword, bad value,
 * include cycle or depth), SBX_ERROR_BAD_PATTERN, SBX_ERROR_TOO_LARGE,
 * SBX_ERROR_FROZEN, -EINVAL (NULL policy or path), a negative errno when a
 * file cannot be read, or -ENOMEM. On any error `policy` is unchanged. */
SBX_API int sbx_policy_load_file(sbx_policy *policy, const char *path,
                                 const sbx_policy_vars *vars, sbx_policyfile_error *err);

/* Load policy text (`len` bytes, need not be NUL-terminated). `name` (may be
 * NULL: "<string>") is used in error reports and origins; relative includes
 * resolve against the directory part of `name`, or the current directory
 * when it has none. Returns and guarantees as sbx_policy_load_file. */
SBX_API int sbx_policy_load_string(sbx_policy *policy, const char *text, size_t len,
                                   const char *name, const sbx_policy_vars *vars,
                                   sbx_policyfile_error *err);

/* ---- embedded profiles ---- */

/* The names of the embedded profiles ("default", "strict", "learn"), NULL
 * terminated. Static storage owned by sbx. */
SBX_API const char *const *sbx_profile_names(void);

/* The policy-language text of profile `name`, or NULL when there is no such
 * profile. Static string owned by sbx. */
SBX_API const char *sbx_profile_text(const char *name);

/* Load profile `name` into `policy` (as sbx_policy_load_string with the name
 * "profile:NAME"). Returns SBX_ERROR_NOT_FOUND for an unknown profile, else
 * as sbx_policy_load_string. */
SBX_API int sbx_policy_load_profile(sbx_policy *policy, const char *name,
                                    const sbx_policy_vars *vars, sbx_policyfile_error *err);

SBX_END_DECLS

#endif
