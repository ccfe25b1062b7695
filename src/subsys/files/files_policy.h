/* sbx internal — the files subsystem's policy face (the seed's
 * FileSystemPolicy::GenerateRules): its services and parameter sets, the
 * translation of a high-level files rule into low-level rules, and the
 * broker's fast path that decides a request against a compiled buffer.
 *
 * Services: one per sbx_files_op (the op's number is its service number).
 * Every files service takes the same parameter set, SBX_FILES_P_*: the
 * broker (or the target's pre-check) fills all of them for every request. */
#ifndef SBX_SUBSYS_FILES_POLICY_H
#define SBX_SUBSYS_FILES_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sbx/policy.h>

#include "policy/engine.h"

/* Parameter indices (the seed's OpenFile::NAME, ACCESS, ...). */
enum {
    SBX_FILES_P_NAME = 0,   /* string: the canonical path */
    SBX_FILES_P_FLAGS = 1,  /* u32: open(2) flags (OPEN), else 0 */
    SBX_FILES_P_MODE = 2,   /* u32: creation mode (OPEN, MKDIR), else 0 */
    SBX_FILES_P_ACCESS = 3, /* u32: access(2) mode (ACCESS), else 0 */
    SBX_FILES_P_IS_DIR = 4, /* u32: 1 if the object is a directory */
    SBX_FILES_P_COUNT = 5
};
/* Per-operation names for readability at call sites. */
#define SBX_FILES_OPEN_NAME SBX_FILES_P_NAME
#define SBX_FILES_OPEN_FLAGS SBX_FILES_P_FLAGS
#define SBX_FILES_OPEN_MODE SBX_FILES_P_MODE

/* The service number of an op (== its value). */
static inline unsigned sbx_files_service(sbx_files_op op)
{
    return (unsigned)op;
}

/* Service names indexed by service number, for dumps. */
extern const char *const sbx_files_service_names[SBX_FILES_OP_COUNT_];

/* Add the low-level rules of one high-level files rule to `b`: for each
 * service its semantics admits, a rule matching the pattern (plus the
 * semantics' flag conditions) with action ASK_BROKER, or DENY_ACCESS for
 * SBX_FILES_DENY. `source` and `origin` are stored with each. Returns 0,
 * SBX_ERROR_BAD_PATTERN (err filled), -EINVAL or -ENOMEM. The caller adds
 * every deny before any allow (deny wins). */
int sbx_files_policy_generate(sbx_pol_builder *b, const char *pattern, int semantics,
                              uint32_t source, const char *origin, sbx_policy_error *err);

/* Mark the files services as indexed by NAME. */
int sbx_files_policy_setup(sbx_pol_builder *b);

/* True if path[0..len) is canonical: starts with '/', no empty, "." or
 * ".." component, no trailing '/' (except "/"), no NUL, len <= 4095. */
bool sbx_files_path_is_canonical(const char *path, size_t len);

/* Fill the parameter set for `req` (path borrowed). */
void sbx_files_policy_params(const sbx_files_request *req, sbx_pol_param params[SBX_FILES_P_COUNT]);

typedef struct sbx_files_verdict {
    int action;          /* sbx_action: DENY_ACCESS when nothing matched or on error */
    int32_t rule;        /* the deciding rule's index in the sbx_policy (add order), -1 if none */
    const char *origin;  /* into the buffer, NOT NUL-terminated, or NULL */
    size_t origin_len;
    bool matched;        /* a rule matched */
} sbx_files_verdict;

/* The broker's fast path: decide `req` against a compiled buffer (the
 * broker's private copy; but any buffer is safe). No allocation, no lock,
 * async-signal-safe: also the target's pre-check. Returns 0 (decided;
 * out->action tells), -EINVAL (non-canonical path or bad request: DENY),
 * or SBX_ERROR_BAD_POLICY (malformed buffer: DENY). out is always filled. */
int sbx_files_policy_eval(const void *buf, size_t size, const sbx_files_request *req,
                          sbx_files_verdict *out);

/* The target's fail-fast pre-check (the seed's QueryBroker): true if the
 * (possibly forged, read-only) copy says the broker might perform `req`
 * (false means: fail with the deny errno, no IPC). req->is_dir is the
 * target's guess; both values are tried, since only the broker knows.
 * Only an optimisation: the broker decides again from its own copy. */
bool sbx_files_policy_precheck(const void *buf, size_t size, const sbx_files_request *req);

#endif
