/* sbx command — the policy generator behind `sbx learn` (docs/learn.md).
 * Pure: it collects audit decisions in memory (bounded) and writes a
 * minimal policy text; it spawns nothing, so it is unit tested directly
 * (tests/cli/test_learn_policy.c). Not thread-safe: the caller serialises
 * (the broker's audit callback already is). */
#ifndef SBX_TOOL_LEARN_POLICY_H
#define SBX_TOOL_LEARN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* How strong an access is; a rule grants the strongest seen. */
typedef enum sbx_learn_strength {
    SBX_LEARN_QUERY = 1, /* stat/access/readlink, or a probe that got ENOENT */
    SBX_LEARN_READ = 2,  /* open read-only */
    SBX_LEARN_ANY = 3,   /* write, create, truncate, rename, unlink, mkdir, rmdir, chmod, utimens */
} sbx_learn_strength;

typedef struct sbx_learn sbx_learn;

typedef struct sbx_learn_options {
    const char *scratch;   /* paths under it become ${SCRATCH}/...; NULL: none */
    const char *cwd;       /* paths under it become ${CWD}/...; NULL: none */
    const char *workdir;   /* the target's working directory (native under learn: its reads
                              are granted); NULL: cwd */
    const char *net;       /* the "net" setting: "none" (NULL) or "loopback" */
    const char *settings;  /* policy lines written after the fixed settings (the limits
                              given to learn, "limit memory 512M\n"...); NULL: none */
    const char *rerun;     /* 'sbx run' options the re-run needs too (--cwd, --env), for
                              the header; NULL: none */
    const char *command;   /* the learned command line, for the header; NULL: none */
    size_t collapse;       /* >= this many entries used in one directory: DIR/{**}; 0: never */
} sbx_learn_options;

/* A collector holding at most max_paths distinct paths (0: a default of
 * 8192). Returns 0 and *out (free with sbx_learn_free) or -ENOMEM. */
int sbx_learn_new(size_t max_paths, sbx_learn **out);
void sbx_learn_free(sbx_learn *l);

/* Record one decision (the fields of sbx_audit_record). Denied decisions
 * are ignored (the learned policy must not grant what learn refused).
 * Returns 0, or -ENOSPC when the path was new and the bound is reached
 * (counted in sbx_learn_dropped), or -ENOMEM. */
int sbx_learn_add(sbx_learn *l, const char *op, const char *path, const char *path2, int flags,
                  bool denied, int error);

/* Decisions dropped for the bound. */
size_t sbx_learn_dropped(const sbx_learn *l);

/* The strength an operation needs (exposed for tests). */
sbx_learn_strength sbx_learn_classify(const char *op, int flags, int error);

/* Write `text` as a policy-language pattern matching exactly that path:
 * `*`, `?`, `\` escaped, quoted when it holds a space, tab or '#' at the
 * start. Returns 0, or -EINVAL if it cannot be written (a '"' with a
 * space, a control character), -ENAMETOOLONG if it does not fit cap. */
int sbx_learn_escape(const char *text, char *buf, size_t cap);

/* Write the policy: header, rules sorted by pattern, one "# covers:"
 * comment per rule. Returns 0 or -errno (a write error). */
int sbx_learn_write(const sbx_learn *l, const sbx_learn_options *o, FILE *out);

#endif
