/* sbx — the files subsystem's policy face: high-level semantics to
 * low-level rules (docs/policy.md has the exact Linux mapping), and the
 * evaluation of one request. */
#include "subsys/files/files_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <sbx/error.h>

#include "base/cleanup.h"
#include "base/path_scan.h"

/* O_TMPFILE is __O_TMPFILE | O_DIRECTORY; the bit that makes it a tmpfile: */
#define FILES_O_TMPFILE_BIT ((unsigned)O_TMPFILE & ~(unsigned)O_DIRECTORY)
/* Flags that make an open write, create or truncate something. */
#define FILES_WRITE_FLAGS ((unsigned)(O_CREAT | O_TRUNC | O_APPEND) | FILES_O_TMPFILE_BIT)

const char *const sbx_files_service_names[SBX_FILES_OP_COUNT_] = {
    [SBX_FILES_OP_OPEN] = "files.open",
    [SBX_FILES_OP_STAT] = "files.stat",
    [SBX_FILES_OP_ACCESS] = "files.access",
    [SBX_FILES_OP_READLINK] = "files.readlink",
    [SBX_FILES_OP_RENAME_SRC] = "files.rename-src",
    [SBX_FILES_OP_RENAME_DST] = "files.rename-dst",
    [SBX_FILES_OP_MKDIR] = "files.mkdir",
    [SBX_FILES_OP_UNLINK] = "files.unlink",
    [SBX_FILES_OP_RMDIR] = "files.rmdir",
};

SBX_API const char *sbx_files_op_name(sbx_files_op op)
{
    if ((int)op <= 0 || op >= SBX_FILES_OP_COUNT_)
        return "?";
    return sbx_files_service_names[op] + strlen("files.");
}

SBX_API int sbx_files_op_from_name(const char *name)
{
    if (!name)
        return -EINVAL;
    if (!strcmp(name, "rename"))
        return SBX_FILES_OP_RENAME_SRC;
    for (int op = 1; op < SBX_FILES_OP_COUNT_; op++)
        if (!strcmp(name, sbx_files_op_name((sbx_files_op)op)))
            return op;
    return -EINVAL;
}

SBX_API int sbx_files_request_from_name(const char *name, const char *path, sbx_files_request *req)
{
    if (!name || !req)
        return -EINVAL;
    static const struct {
        const char *name;
        int flags;
    } opens[] = {
        { "open", O_RDONLY },
        { "read", O_RDONLY },
        { "write", O_WRONLY },
        { "readwrite", O_RDWR },
        { "create", O_WRONLY | O_CREAT | O_EXCL },
        { "truncate", O_WRONLY | O_TRUNC },
        { "append", O_WRONLY | O_APPEND },
        { "opendir", O_RDONLY | O_DIRECTORY },
        { "tmpfile", O_RDWR | O_TMPFILE },
    };
    *req = (sbx_files_request){ .path = path };
    for (size_t i = 0; i < SBX_ARRAY_SIZE(opens); i++) {
        if (strcmp(name, opens[i].name))
            continue;
        req->op = SBX_FILES_OP_OPEN;
        req->open_flags = opens[i].flags | O_CLOEXEC;
        if (opens[i].flags & (O_CREAT | O_TMPFILE))
            req->mode = 0666;
        return 0;
    }
    int op = sbx_files_op_from_name(name);
    if (op < 0)
        return op;
    req->op = (sbx_files_op)op;
    if (op == SBX_FILES_OP_MKDIR)
        req->mode = 0777;
    if (op == SBX_FILES_OP_ACCESS)
        req->access_mode = F_OK;
    return 0;
}

int sbx_files_policy_setup(sbx_pol_builder *b)
{
    for (int op = 1; op < SBX_FILES_OP_COUNT_; op++) {
        int r = sbx_pol_builder_set_index_param(b, sbx_files_service((sbx_files_op)op), SBX_FILES_P_NAME);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Which services each semantics admits, and with which extra conditions. */
typedef enum cond_kind {
    COND_NONE = 0,      /* the path alone */
    COND_READONLY_OPEN, /* O_RDONLY and none of FILES_WRITE_FLAGS */
    COND_DIR_OPEN,      /* O_DIRECTORY, no O_CREAT, not O_TMPFILE */
    COND_IS_DIR,        /* the object is a directory */
    COND_NOT_ADMITTED,
} cond_kind;

static cond_kind condition(int semantics, sbx_files_op op)
{
    switch (semantics) {
    case SBX_FILES_DENY:
    case SBX_FILES_ALLOW_ANY:
        return COND_NONE;
    case SBX_FILES_ALLOW_READONLY:
        if (op == SBX_FILES_OP_OPEN)
            return COND_READONLY_OPEN;
        /* read-only also admits the queries */
        __attribute__((fallthrough));
    case SBX_FILES_ALLOW_QUERY:
        return op == SBX_FILES_OP_STAT || op == SBX_FILES_OP_ACCESS || op == SBX_FILES_OP_READLINK
                   ? COND_NONE
                   : COND_NOT_ADMITTED;
    case SBX_FILES_ALLOW_DIR_ANY:
        switch (op) {
        case SBX_FILES_OP_OPEN: return COND_DIR_OPEN;
        case SBX_FILES_OP_MKDIR:
        case SBX_FILES_OP_RMDIR: return COND_NONE;
        case SBX_FILES_OP_UNLINK: return COND_NOT_ADMITTED;
        default: return COND_IS_DIR;
        }
    default:
        return COND_NOT_ADMITTED;
    }
}

static void rule_cleanup(sbx_pol_rule **r)
{
    sbx_pol_rule_free(*r);
}

int sbx_files_policy_generate(sbx_pol_builder *b, const char *pattern, int semantics,
                              uint32_t source, const char *origin, sbx_policy_error *err)
{
    if (!b || semantics < SBX_FILES_ALLOW_ANY || semantics > SBX_FILES_DENY)
        return -EINVAL;
    int r = sbx_pattern_check(pattern, err);
    if (r < 0)
        return r;
    sbx_action action = semantics == SBX_FILES_DENY ? SBX_ACTION_DENY_ACCESS : SBX_ACTION_ASK_BROKER;
    for (int opn = 1; opn < SBX_FILES_OP_COUNT_; opn++) {
        sbx_files_op op = (sbx_files_op)opn;
        cond_kind c = condition(semantics, op);
        if (c == COND_NOT_ADMITTED)
            continue;
        SBX_CLEANUP(rule_cleanup) sbx_pol_rule *rule = sbx_pol_rule_new(0, 0);
        if (!rule)
            return -ENOMEM;
        /* The path first: the prefix index keys on it. */
        r = sbx_pol_rule_add_string(rule, SBX_IF, SBX_FILES_P_NAME, pattern, 0, err);
        if (r == 0 && c == COND_READONLY_OPEN) {
            r = sbx_pol_rule_add_number(rule, SBX_IF_NOT, SBX_FILES_P_FLAGS, O_ACCMODE, 0, SBX_NM_AND, 0);
            if (r == 0)
                r = sbx_pol_rule_add_number(rule, SBX_IF_NOT, SBX_FILES_P_FLAGS, FILES_WRITE_FLAGS, 0,
                                            SBX_NM_AND, 0);
        } else if (r == 0 && c == COND_DIR_OPEN) {
            r = sbx_pol_rule_add_number(rule, SBX_IF, SBX_FILES_P_FLAGS, O_DIRECTORY, 0, SBX_NM_AND, 0);
            if (r == 0)
                r = sbx_pol_rule_add_number(rule, SBX_IF_NOT, SBX_FILES_P_FLAGS,
                                            (unsigned)O_CREAT | FILES_O_TMPFILE_BIT, 0, SBX_NM_AND, 0);
        } else if (r == 0 && c == COND_IS_DIR) {
            r = sbx_pol_rule_add_number(rule, SBX_IF, SBX_FILES_P_IS_DIR, 1, 0, SBX_NM_EQUAL, 0);
        }
        if (r == 0)
            r = sbx_pol_rule_done(rule, action);
        if (r == 0)
            r = sbx_pol_builder_add(b, sbx_files_service(op), rule, source, origin);
        if (r < 0)
            return r;
    }
    return 0;
}

bool sbx_files_path_is_canonical(const char *path, size_t len)
{
    if (!path || len == 0 || len > SBX_POL_MAX_STRING || path[0] != '/')
        return false;
    if (len == 1)
        return true;
    if (path[len - 1] == '/')
        return false;
    /* No NUL, no "//", no component starting with '.': canonical. */
    if (!sbx_path_has_dot_or_empty(path, len))
        return true;
    if (memchr(path, '\0', len))
        return false;
    /* Each component: from after a '/' to the next '/' or the end. */
    for (size_t comp = 1; comp <= len;) {
        const char *slash = memchr(path + comp, '/', len - comp);
        size_t end = slash ? (size_t)(slash - path) : len;
        size_t n = end - comp;
        if (n == 0 || (n == 1 && path[comp] == '.') || (n == 2 && path[comp] == '.' && path[comp + 1] == '.'))
            return false;
        comp = end + 1;
    }
    return true;
}

static void set_u32(sbx_pol_param *p, uint32_t v)
{
    p->type = SBX_PTYPE_U32;
    p->num = v;
}

/* Field by field into zeroed slots (whole-struct copies of compound
 * literals went through the stack), the path's length given. */
static void params_of(const sbx_files_request *req, size_t path_len,
                      sbx_pol_param params[SBX_FILES_P_COUNT])
{
    memset(params, 0, SBX_FILES_P_COUNT * sizeof *params);
    params[SBX_FILES_P_NAME].type = SBX_PTYPE_STRING;
    params[SBX_FILES_P_NAME].len = path_len > UINT32_MAX ? UINT32_MAX : (uint32_t)path_len;
    params[SBX_FILES_P_NAME].str = req->path;
    set_u32(&params[SBX_FILES_P_FLAGS],
            req->op == SBX_FILES_OP_OPEN ? (uint32_t)req->open_flags : 0);
    set_u32(&params[SBX_FILES_P_MODE], req->mode);
    set_u32(&params[SBX_FILES_P_ACCESS],
            req->op == SBX_FILES_OP_ACCESS ? (uint32_t)req->access_mode : 0);
    set_u32(&params[SBX_FILES_P_IS_DIR], req->is_dir ? 1 : 0);
}

void sbx_files_policy_params(const sbx_files_request *req, sbx_pol_param params[SBX_FILES_P_COUNT])
{
    params_of(req, req->path ? strlen(req->path) : 0, params);
}

int sbx_files_policy_eval(const void *buf, size_t size, const sbx_files_request *req,
                          sbx_files_verdict *out)
{
    *out = (sbx_files_verdict){ .action = SBX_ACTION_DENY_ACCESS, .rule = -1 };
    if (!req || (int)req->op <= 0 || req->op >= SBX_FILES_OP_COUNT_ || !req->path)
        return -EINVAL;
    size_t len = strnlen(req->path, SBX_POL_MAX_STRING + 1);
    if (!sbx_files_path_is_canonical(req->path, len))
        return -EINVAL;
    sbx_pol_param params[SBX_FILES_P_COUNT];
    params_of(req, len, params);
    sbx_pol_result r = sbx_pol_evaluate(buf, size, sbx_files_service(req->op), params, SBX_FILES_P_COUNT, 0);
    if (r.status == SBX_POL_ERROR)
        return SBX_ERROR_BAD_POLICY;
    if (r.status == SBX_POL_MATCH) {
        out->matched = true;
        out->action = (int)r.action;
        out->rule = r.source <= INT32_MAX ? (int32_t)r.source : -1;
        out->origin = r.origin;
        out->origin_len = r.origin_len;
    }
    return 0;
}

bool sbx_files_policy_precheck(const void *buf, size_t size, const sbx_files_request *req)
{
    sbx_files_verdict v;
    if (sbx_files_policy_eval(buf, size, req, &v) == 0 && v.action == SBX_ACTION_ASK_BROKER)
        return true;
    /* The target cannot know IS_DIR reliably (the broker decides from its
     * own lstat): a pre-check must never refuse what the broker would
     * allow, so it asks if either answer would be allowed. */
    if (!req || req->op == SBX_FILES_OP_OPEN || req->op == SBX_FILES_OP_MKDIR || req->op == SBX_FILES_OP_RMDIR)
        return false;
    sbx_files_request flipped = *req;
    flipped.is_dir = !req->is_dir;
    return sbx_files_policy_eval(buf, size, &flipped, &v) == 0 && v.action == SBX_ACTION_ASK_BROKER;
}
