/* sbx — the embedded profiles, written in the policy language itself so
 * that `sbx policy show NAME` prints exactly what is enforced. */
#include <sbx/policyfile.h>

#include <stdio.h>
#include <string.h>

#include <sbx/error.h>

/* Secrets no profile may expose, whatever else it allows. */
#define SECRETS                                                              \
    "# Secrets: denied whatever else is allowed (deny wins over allow).\n" \
    "files deny /etc/shadow*\n"                                            \
    "files deny /etc/gshadow*\n"                                           \
    "files deny /etc/sudoers\n"                                            \
    "files deny /etc/sudoers.d/**\n"                                       \
    "files deny /etc/ssh/*_key\n"                                          \
    "files deny /etc/ssl/private/**\n"                                     \
    "files deny /root/**\n"                                                \
    "files deny /home/**\n"                                                \
    "files deny ${HOME}/**\n"

static const char default_text[] =
    "# sbx profile 'default': ordinary programs (sh, coreutils, python3, gcc) run.\n"
    "# System trees are read-only, the current directory is read-only,\n"
    "# ${SCRATCH} is a private read-write directory; no home directory, no\n"
    "# secrets, no network, no other processes.\n"
    "\n"
    "# Confinement: Landlock over the view and no network; child processes\n"
    "# are allowed (shells and compilers fork).\n"
    "lockdown limited\n"
    "job limited\n"
    "net none\n"
    "backend auto\n"
    "\n"
    "# The native view: the default system trees (/usr, /lib*, /bin, /sbin,\n"
    "# /etc/ld.so.*, a few /dev nodes, /proc, an empty /tmp) plus these.\n"
    "default-view on\n"
    "view /opt optional exec\n"
    "\n"
    "# Configuration and data the system trees refer to, brokered read-only.\n"
    "files allow-readonly /etc/**\n"
    "files allow-query /etc\n"
    "files allow-readonly /usr/**\n"
    "files allow-readonly /opt/**\n"
    "\n"
    "# The current directory, read-only.\n"
    "files allow-query ${CWD}\n"
    "files allow-readonly ${CWD}/**\n"
    "\n"
    "# The private scratch directory, read-write: bound into the native view\n"
    "# (it is private to this run, so native speed is safe) and allowed by rule.\n"
    "view ${SCRATCH} rw\n"
    "files allow-any ${SCRATCH}\n"
    "files allow-any ${SCRATCH}/**\n"
    "\n" SECRETS
    "\n"
    "# Limits.\n"
    "limit memory 1G\n"
    "limit processes 256\n"
    "limit cpu 300s\n"
    "limit files 1024\n";

static const char strict_text[] =
    "# sbx profile 'strict': nothing beyond what exec needs.\n"
    "# The native view holds only the default system trees; no file outside it\n"
    "# is brokered; no child processes, no network, tight limits.\n"
    "lockdown lockdown\n"
    "job lockdown\n"
    "net none\n"
    "backend auto\n"
    "default-view on\n"
    "\n" SECRETS
    "\n"
    "limit memory 256M\n"
    "limit processes 16\n"
    "limit cpu 60s\n"
    "limit files 256\n"
    "limit filesize 64M\n";

static const char learn_text[] =
    "# sbx profile 'learn': every access brokered and audited, to write a policy from.\n"
    "# Used by `sbx learn`: every file the invoking user could use is allowed\n"
    "# (except secrets), reads and writes alike, so a policy can be written from\n"
    "# what the program did. NOT a sandbox for untrusted input.\n"
    "lockdown limited\n"
    "job interactive\n"
    "net none\n"
    "backend notify\n"
    "audit on\n"
    "default-view on\n"
    "\n"
    "files allow-any /**\n"
    "files allow-any ${SCRATCH}\n"
    "files allow-any ${SCRATCH}/**\n"
    "\n" SECRETS;

static const struct {
    const char *name;
    const char *text;
} profiles[] = {
    { "default", default_text },
    { "strict", strict_text },
    { "learn", learn_text },
};

static const char *const names[] = { "default", "strict", "learn", NULL };

SBX_API const char *const *sbx_profile_names(void)
{
    return names;
}

SBX_API const char *sbx_profile_text(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
        if (!strcmp(profiles[i].name, name))
            return profiles[i].text;
    return NULL;
}

SBX_API int sbx_policy_load_profile(sbx_policy *policy, const char *name,
                                    const sbx_policy_vars *vars, sbx_policyfile_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    const char *text = sbx_profile_text(name);
    if (!text) {
        if (err) {
            err->code = SBX_ERROR_NOT_FOUND;
            snprintf(err->message, sizeof err->message, "no such profile");
            snprintf(err->formatted, sizeof err->formatted,
                     "unknown profile '%.100s' (known: default, strict, learn)", name ? name : "");
        }
        return SBX_ERROR_NOT_FOUND;
    }
    char label[128];
    snprintf(label, sizeof label, "profile:%s", name);
    return sbx_policy_load_string(policy, text, strlen(text), label, vars, err);
}
