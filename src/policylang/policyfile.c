/* sbx — the policy-file parser (docs/policy-language.md).
 *
 * Two phases, so a bad file changes nothing: (1) read the file and its
 * includes, parse every line into a statement list, checking each value and
 * trying each rule and view on a private scratch policy (which reports what
 * the policy object itself would refuse, with our file:line:col); (2) only
 * when everything parsed, apply the list to the caller's policy. */
#include <sbx/policyfile.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sbx/error.h>

#include "base/cleanup.h"
#include "policy/policy_object.h"
#include "policylang/policylang.h"

#define MAX_FILE_BYTES (1u << 20)
#define MAX_LINE_BYTES 4096
#define MAX_WORDS 8
#define MAX_INCLUDE_DEPTH 16
#define MAX_FILES_READ 256 /* per load: bounds include fan-out (k^depth reads) */
#define MAX_STATEMENTS 100000
#define MAX_EXPANDED 4096

typedef enum stmt_kind {
    ST_RULE,
    ST_VIEW,
    ST_LIMIT,
    ST_NET,
    ST_BACKEND,
    ST_IDENTITY,
    ST_DENY_ERRNO,
    ST_LOCKDOWN,
    ST_JOB,
    ST_AUDIT,
    ST_DEFAULT_VIEW,
    ST_MITIGATION,
} stmt_kind;

typedef struct stmt {
    stmt_kind kind;
    int ival;     /* semantics, limit, mode, level, errno value, bool */
    uint64_t u64; /* limit value, uid, view flags, mitigation flag */
    uint64_t u64b; /* gid */
    char *str;    /* pattern or view path (owned) */
    char *origin; /* "file:line" (owned) */
} stmt;

typedef struct word {
    const char *s;
    size_t len;
    unsigned col; /* 1-based column of the word's first character */
} word;

typedef struct open_file {
    dev_t dev;
    ino_t ino;
    const char *name;
} open_file;

typedef struct ctx {
    const sbx_policy_vars *vars;
    sbx_policyfile_error *err;
    stmt *stmts;
    size_t n, cap;
    sbx_policy *scratch;
    open_file stack[MAX_INCLUDE_DEPTH + 1];
    size_t depth;
    unsigned files_read;
} ctx;

/* ---- errors ---- */

static void copy_printable(char *dst, size_t cap, const char *s, size_t len)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cap)
        dst[j] = 0;
}

__attribute__((format(printf, 8, 9)))
static int fail(ctx *c, int code, const char *file, unsigned line, unsigned col,
                const char *text, size_t text_len, const char *fmt, ...)
{
    sbx_policyfile_error *e = c->err;
    if (!e)
        return code;
    memset(e, 0, sizeof *e);
    e->code = code;
    snprintf(e->file, sizeof e->file, "%s", file ? file : "");
    e->line = line;
    e->column = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    if (text)
        copy_printable(e->text, sizeof e->text, text, text_len);
    char where[1100];
    if (line && col)
        snprintf(where, sizeof where, "%s:%u:%u", e->file, line, col);
    else if (line)
        snprintf(where, sizeof where, "%s:%u", e->file, line);
    else
        snprintf(where, sizeof where, "%s", e->file);
    if (text)
        snprintf(e->formatted, sizeof e->formatted, "%s: %s: '%s'", where, e->message, e->text);
    else
        snprintf(e->formatted, sizeof e->formatted, "%s: %s", where, e->message);
    return code;
}

/* ---- statements ---- */

static void stmts_free(ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->stmts[i].str);
        free(c->stmts[i].origin);
    }
    free(c->stmts);
    c->stmts = NULL;
    c->n = c->cap = 0;
}

/* Append a statement; takes ownership of s->str whatever happens. */
static int push(ctx *c, const char *file, unsigned line, stmt *s)
{
    SBX_AUTOFREE char *str = s->str;
    s->str = NULL;
    if (c->n >= MAX_STATEMENTS)
        return fail(c, SBX_ERROR_TOO_LARGE, file, line, 1, NULL, 0,
                    "too many statements (at most %d)", MAX_STATEMENTS);
    if (c->n == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 32;
        stmt *n = realloc(c->stmts, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        c->stmts = n;
        c->cap = ncap;
    }
    char buf[1100];
    snprintf(buf, sizeof buf, "%s:%u", file, line);
    SBX_AUTOFREE char *origin = strdup(buf);
    if (!origin)
        return -ENOMEM;
    stmt *d = &c->stmts[c->n++];
    *d = *s;
    d->str = sbx_steal_ptr(&str);
    d->origin = sbx_steal_ptr(&origin);
    return 0;
}

/* ---- lexing ---- */

static bool word_is(const word *w, const char *s)
{
    return strlen(s) == w->len && !memcmp(w->s, s, w->len);
}

/* Split one line into words. Returns the word count, or a negative code
 * (error already reported). */
static int split(ctx *c, const char *file, unsigned lineno, const char *line, size_t len,
                 word *words)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i >= len || line[i] == '#')
            break;
        size_t start = i;
        const char *s;
        size_t wl;
        if (line[i] == '"') {
            const char *q = memchr(line + i + 1, '"', len - i - 1);
            if (!q)
                return fail(c, SBX_ERROR_BAD_POLICY, file, lineno, (unsigned)i + 1, line + i,
                            len - i, "unterminated quoted string");
            s = line + i + 1;
            wl = (size_t)(q - s);
            i = (size_t)(q - line) + 1;
            if (i < len && line[i] != ' ' && line[i] != '\t')
                return fail(c, SBX_ERROR_BAD_POLICY, file, lineno, (unsigned)i + 1, line + start,
                            len - start, "text right after a closing quote");
        } else {
            s = line + i;
            while (i < len && line[i] != ' ' && line[i] != '\t')
                i++;
            wl = (size_t)(line + i - s);
        }
        if (n == MAX_WORDS)
            return fail(c, SBX_ERROR_BAD_POLICY, file, lineno, (unsigned)start + 1, line + start,
                        len - start, "too many words on one line");
        words[n++] = (word){ .s = s, .len = wl, .col = (unsigned)start + 1 + (line[start] == '"') };
    }
    return n;
}

/* ---- variables ---- */

static const char *var_value(const ctx *c, const char *name, size_t len, bool *known)
{
    static const char *const names[] = { "HOME", "CWD", "SCRATCH", "UID" };
    const sbx_policy_vars *v = c->vars;
    const char *vals[] = { v ? v->home : NULL, v ? v->cwd : NULL, v ? v->scratch : NULL,
                           v ? v->uid : NULL };
    for (size_t i = 0; i < SBX_ARRAY_SIZE(names); i++)
        if (strlen(names[i]) == len && !memcmp(names[i], name, len)) {
            *known = true;
            return vals[i];
        }
    *known = false;
    return NULL;
}

/* Expand ${NAME} in word w into a new string (*out, caller frees) and, for
 * each output byte, the source column it came from (*cols, caller frees).
 * With `glob`, wildcard characters in values are escaped. */
static int expand(ctx *c, const char *file, unsigned line, const word *w, bool glob, char **out,
                  unsigned **cols)
{
    SBX_AUTOFREE char *buf = malloc(MAX_EXPANDED + 1);
    SBX_AUTOFREE unsigned *map = malloc((MAX_EXPANDED + 1) * sizeof *map);
    if (!buf || !map)
        return -ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < w->len;) {
        unsigned col = w->col + (unsigned)i;
        if (w->s[i] == '$' && i + 1 < w->len && w->s[i + 1] == '{') {
            const char *end = memchr(w->s + i, '}', w->len - i);
            if (!end)
                return fail(c, SBX_ERROR_BAD_POLICY, file, line, col, w->s + i, w->len - i,
                            "unterminated variable (missing '}')");
            const char *name = w->s + i + 2;
            size_t nl = (size_t)(end - name);
            size_t tl = nl + 3;
            bool known;
            const char *val = var_value(c, name, nl, &known);
            if (!known)
                return fail(c, SBX_ERROR_BAD_POLICY, file, line, col, w->s + i, tl,
                            "unknown variable (known: ${HOME}, ${CWD}, ${SCRATCH}, ${UID})");
            if (!val)
                return fail(c, SBX_ERROR_BAD_POLICY, file, line, col, w->s + i, tl,
                            "variable is not defined here");
            /* Trailing slashes of a value would double the '/' that
             * follows ${CWD} in "${CWD}/..."; "/" followed by a slash becomes empty. */
            size_t vl = strlen(val);
            while (vl > 1 && val[vl - 1] == '/')
                vl--;
            bool next_slash = i + tl < w->len && w->s[i + tl] == '/';
            if (vl == 1 && val[0] == '/' && next_slash)
                vl = 0;
            for (size_t k = 0; k < vl; k++) {
                char ch = val[k];
                bool esc = glob && (ch == '*' || ch == '?' || ch == '\\');
                if (o + 1 + esc > MAX_EXPANDED)
                    return fail(c, SBX_ERROR_TOO_LARGE, file, line, w->col, w->s, w->len,
                                "value too long after variable expansion");
                if (esc) {
                    map[o] = col;
                    buf[o++] = '\\';
                }
                map[o] = col;
                buf[o++] = ch;
            }
            i += tl;
            continue;
        }
        if (o + 1 > MAX_EXPANDED)
            return fail(c, SBX_ERROR_TOO_LARGE, file, line, w->col, w->s, w->len,
                        "value too long");
        map[o] = col;
        buf[o++] = w->s[i++];
    }
    buf[o] = 0;
    map[o] = w->col + (unsigned)w->len;
    *out = sbx_steal_ptr(&buf);
    *cols = sbx_steal_ptr(&map);
    return 0;
}

/* ---- keyword tables ---- */

typedef struct keyword {
    const char *name;
    int value;
} keyword;

static const keyword semantics_words[] = {
    { "allow-any", SBX_FILES_ALLOW_ANY },       { "allow-readonly", SBX_FILES_ALLOW_READONLY },
    { "allow-query", SBX_FILES_ALLOW_QUERY },   { "allow-dir-any", SBX_FILES_ALLOW_DIR_ANY },
    { "deny", SBX_FILES_DENY },                 { NULL, 0 },
};
static const keyword limit_words[] = {
    { "memory", SBX_LIMIT_MEMORY },       { "processes", SBX_LIMIT_PROCESSES },
    { "cpu", SBX_LIMIT_CPU_SECONDS },     { "files", SBX_LIMIT_OPEN_FILES },
    { "filesize", SBX_LIMIT_FILE_SIZE },  { NULL, 0 },
};
static const keyword net_words[] = { { "none", SBX_NET_NONE }, { "loopback", SBX_NET_LOOPBACK },
                                     { NULL, 0 } };
static const keyword backend_words[] = { { "auto", SBX_BACKEND_AUTO },
                                         { "notify", SBX_BACKEND_NOTIFY },
                                         { "trap", SBX_BACKEND_TRAP },
                                         { NULL, 0 } };
static const keyword errno_words[] = { { "EACCES", EACCES }, { "EPERM", EPERM },
                                       { "ENOENT", ENOENT }, { NULL, 0 } };
static const keyword lockdown_words[] = { { "interactive", SBX_LOCKDOWN_INTERACTIVE },
                                          { "limited", SBX_LOCKDOWN_LIMITED },
                                          { "lockdown", SBX_LOCKDOWN_LOCKDOWN },
                                          { NULL, 0 } };
static const keyword job_words[] = { { "none", SBX_JOB_NONE },
                                     { "interactive", SBX_JOB_INTERACTIVE },
                                     { "limited", SBX_JOB_LIMITED },
                                     { "lockdown", SBX_JOB_LOCKDOWN },
                                     { NULL, 0 } };
static const keyword onoff_words[] = { { "on", 1 }, { "off", 0 }, { NULL, 0 } };
static const keyword mitigation_words[] = {
    { "kill-on-denied-syscall", (int)SBX_MITIGATION_KILL_ON_DENIED_SYSCALL },
    { "allow-tty", (int)SBX_MITIGATION_ALLOW_TTY },
    { "allow-children", (int)SBX_MITIGATION_ALLOW_CHILDREN },
    { NULL, 0 },
};
static const keyword view_flag_words[] = { { "rw", SBX_VIEW_WRITABLE },
                                           { "optional", SBX_VIEW_OPTIONAL },
                                           { "exec", SBX_VIEW_EXEC },
                                           { NULL, 0 } };

static const char *const statement_words[] = {
    "files", "view", "limit", "net", "backend", "identity", "deny-errno", "lockdown",
    "job", "audit", "default-view", "mitigation", "include", NULL,
};

/* "a, b or c" for error messages. */
static void join_words(char *buf, size_t cap, const keyword *t)
{
    size_t n = 0;
    while (t[n].name)
        n++;
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%s", i == 0 ? "" : (i + 1 == n ? " or " : ", "), t[i].name);
    }
}

static int lookup(ctx *c, const char *file, unsigned line, const word *w, const keyword *t,
                  const char *what, int *out)
{
    for (size_t i = 0; t[i].name; i++)
        if (word_is(w, t[i].name)) {
            *out = t[i].value;
            return 0;
        }
    char list[200];
    join_words(list, sizeof list, t);
    return fail(c, SBX_ERROR_BAD_POLICY, file, line, w->col, w->s, w->len,
                "unknown %s (expected %s)", what, list);
}

/* Levenshtein distance with a small cap, for "did you mean". */
static size_t distance(const char *a, size_t al, const char *b)
{
    size_t bl = strlen(b);
    if (al > 32 || bl > 32)
        return 99;
    size_t row[33];
    for (size_t j = 0; j <= bl; j++)
        row[j] = j;
    for (size_t i = 1; i <= al; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= bl; j++) {
            size_t cur = row[j];
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[bl];
}

static int need_args(ctx *c, const char *file, unsigned line, const word *words, int n, int min,
                     int max, const char *usage)
{
    if (n < min) {
        const word *last = &words[n - 1];
        return fail(c, SBX_ERROR_BAD_POLICY, file, line, last->col + (unsigned)last->len,
                    words[0].s, (size_t)(last->s + last->len - words[0].s),
                    "missing argument (usage: %s)", usage);
    }
    if (n > max)
        return fail(c, SBX_ERROR_BAD_POLICY, file, line, words[max].col, words[max].s,
                    words[max].len, "unexpected argument (usage: %s)", usage);
    return 0;
}

/* ---- statements ---- */

static int parse_buffer(ctx *c, const char *file, const char *buf, size_t len);

static int do_files(ctx *c, const char *file, unsigned line, const word *w, int n)
{
    int r = need_args(c, file, line, w, n, 3, 3, "files SEMANTICS PATTERN");
    if (r < 0)
        return r;
    int sem;
    if ((r = lookup(c, file, line, &w[1], semantics_words, "files semantics", &sem)) < 0)
        return r;
    SBX_AUTOFREE char *pat = NULL;
    SBX_AUTOFREE unsigned *cols = NULL;
    if ((r = expand(c, file, line, &w[2], true, &pat, &cols)) < 0)
        return r;
    const char *why = NULL;
    size_t off = 0;
    if ((r = sbx_policylang_check_pattern(pat, &why, &off)) < 0)
        return fail(c, r, file, line, cols[off], w[2].s, w[2].len, "bad pattern: %s", why);
    /* What the policy object itself refuses, reported at our location. */
    sbx_policy_error perr;
    char origin[1100];
    snprintf(origin, sizeof origin, "%s:%u", file, line);
    r = sbx_policy_add_rule_ex(c->scratch, SBX_SUBSYS_FILES, sem, pat, origin, &perr);
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        size_t at = perr.column ? perr.column - 1 : 0;
        if (at > strlen(pat))
            at = strlen(pat);
        return fail(c, r, file, line, cols[at], w[2].s, w[2].len, "bad pattern: %s",
                    perr.message[0] ? perr.message : sbx_strerror(r));
    }
    stmt s = { .kind = ST_RULE, .ival = sem, .str = sbx_steal_ptr(&pat) };
    return push(c, file, line, &s);
}

static int do_view(ctx *c, const char *file, unsigned line, const word *w, int n)
{
    int r = need_args(c, file, line, w, n, 2, 5, "view PATH [rw] [optional] [exec]");
    if (r < 0)
        return r;
    /* A literal wildcard is almost certainly a mistake (views do not glob);
     * the same characters coming from a variable are taken literally. */
    for (size_t i = 0; i < w[1].len; i++) {
        if (w[1].s[i] == '$' && i + 1 < w[1].len && w[1].s[i + 1] == '{') {
            const char *end = memchr(w[1].s + i, '}', w[1].len - i);
            if (!end)
                break; /* expand() reports it */
            i = (size_t)(end - w[1].s);
            continue;
        }
        if (w[1].s[i] == '*' || w[1].s[i] == '?')
            return fail(c, SBX_ERROR_BAD_POLICY, file, line, w[1].col + (unsigned)i, w[1].s,
                        w[1].len, "bad view path: a view path is a plain path, not a pattern");
    }
    SBX_AUTOFREE char *path = NULL;
    SBX_AUTOFREE unsigned *cols = NULL;
    if ((r = expand(c, file, line, &w[1], false, &path, &cols)) < 0)
        return r;
    const char *why = NULL;
    size_t off = 0;
    if (sbx_policylang_check_view_path(path, &why, &off) < 0)
        return fail(c, SBX_ERROR_BAD_POLICY, file, line, cols[off], w[1].s, w[1].len,
                    "bad view path: %s", why);
    unsigned flags = 0;
    for (int i = 2; i < n; i++) {
        int f;
        if ((r = lookup(c, file, line, &w[i], view_flag_words, "view flag", &f)) < 0)
            return r;
        if (flags & (unsigned)f)
            return fail(c, SBX_ERROR_BAD_POLICY, file, line, w[i].col, w[i].s, w[i].len,
                        "view flag given twice");
        flags |= (unsigned)f;
    }
    r = sbx_policy_add_view(c->scratch, path, flags);
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return fail(c, r == -E2BIG ? SBX_ERROR_TOO_LARGE : SBX_ERROR_BAD_POLICY, file, line,
                    w[1].col, w[1].s, w[1].len, "view rejected: %s", sbx_strerror(r));
    stmt s = { .kind = ST_VIEW, .u64 = flags, .str = sbx_steal_ptr(&path) };
    return push(c, file, line, &s);
}

static int do_limit(ctx *c, const char *file, unsigned line, const word *w, int n)
{
    int r = need_args(c, file, line, w, n, 3, 3, "limit memory|processes|cpu|files|filesize VALUE");
    if (r < 0)
        return r;
    int which;
    if ((r = lookup(c, file, line, &w[1], limit_words, "limit", &which)) < 0)
        return r;
    SBX_AUTOFREE char *val = NULL;
    SBX_AUTOFREE unsigned *cols = NULL;
    if ((r = expand(c, file, line, &w[2], false, &val, &cols)) < 0)
        return r;
    const char *why = NULL;
    size_t off = 0;
    uint64_t v = 0;
    switch (which) {
    case SBX_LIMIT_MEMORY:
    case SBX_LIMIT_FILE_SIZE:
        r = sbx_policylang_parse_size(val, &v, &why, &off);
        break;
    case SBX_LIMIT_CPU_SECONDS:
        r = sbx_policylang_parse_seconds(val, &v, &why, &off);
        break;
    case SBX_LIMIT_PROCESSES:
        r = sbx_policylang_parse_count(val, 1, 1u << 22, &v, &why, &off);
        break;
    default: /* SBX_LIMIT_OPEN_FILES */
        r = sbx_policylang_parse_count(val, 1, 1u << 20, &v, &why, &off);
        break;
    }
    if (r < 0)
        return fail(c, SBX_ERROR_BAD_POLICY, file, line, cols[off], w[2].s, w[2].len, "%s", why);
    stmt s = { .kind = ST_LIMIT, .ival = which, .u64 = v };
    return push(c, file, line, &s);
}

static int do_keyword_stmt(ctx *c, const char *file, unsigned line, const word *w, int n,
                           stmt_kind kind, const keyword *table, const char *what,
                           const char *usage)
{
    int r = need_args(c, file, line, w, n, 2, 2, usage);
    if (r < 0)
        return r;
    int v;
    if ((r = lookup(c, file, line, &w[1], table, what, &v)) < 0)
        return r;
    stmt s = { .kind = kind, .ival = v, .u64 = (uint64_t)(unsigned)v };
    return push(c, file, line, &s);
}

static int do_identity(ctx *c, const char *file, unsigned line, const word *w, int n)
{
    int r = need_args(c, file, line, w, n, 3, 3, "identity UID GID");
    if (r < 0)
        return r;
    uint64_t id[2];
    for (int i = 0; i < 2; i++) {
        SBX_AUTOFREE char *val = NULL;
        SBX_AUTOFREE unsigned *cols = NULL;
        if ((r = expand(c, file, line, &w[1 + i], false, &val, &cols)) < 0)
            return r;
        const char *why = NULL;
        size_t off = 0;
        /* (uid_t)-1 means "no change" to the kernel; never an identity. */
        if ((r = sbx_policylang_parse_count(val, 0, UINT32_MAX - 1, &id[i], &why, &off)) < 0)
            return fail(c, SBX_ERROR_BAD_POLICY, file, line, cols[off], w[1 + i].s, w[1 + i].len,
                        "bad %s: %s", i ? "gid" : "uid", why);
    }
    stmt s = { .kind = ST_IDENTITY, .u64 = id[0], .u64b = id[1] };
    return push(c, file, line, &s);
}

/* Read a whole regular file (at most MAX_FILE_BYTES) into a new buffer. */
static int read_policy_file(const char *path, char **out, size_t *len, struct stat *st)
{
    /* O_NONBLOCK: opening a FIFO must not hang; non-regular files are
     * refused below anyway. */
    SBX_AUTOCLOSE int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return sbx_neg_errno();
    if (fstat(fd, st) < 0)
        return sbx_neg_errno();
    if (S_ISDIR(st->st_mode))
        return -EISDIR;
    if (!S_ISREG(st->st_mode))
        return -EINVAL;
    if (st->st_size > (off_t)MAX_FILE_BYTES)
        return SBX_ERROR_TOO_LARGE;
    size_t cap = (size_t)st->st_size;
    SBX_AUTOFREE char *buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    size_t got = 0;
    for (;;) {
        ssize_t k = read(fd, buf + got, cap + 1 - got);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return sbx_neg_errno();
        }
        if (k == 0)
            break;
        got += (size_t)k;
        if (got > cap) /* grew under us */
            return SBX_ERROR_TOO_LARGE;
    }
    *len = got;
    *out = sbx_steal_ptr(&buf);
    return 0;
}

static const char *read_error_text(int r)
{
    switch (r) {
    case -EISDIR:
        return "is a directory";
    case -EINVAL:
        return "not a regular file";
    case SBX_ERROR_TOO_LARGE:
        return "file too large (at most 1 MiB)";
    default:
        return sbx_strerror(r);
    }
}

/* Parse `path` as an included (or top-level, when from_file is NULL) file. */
static int parse_file(ctx *c, const char *path, const char *from_file, unsigned from_line,
                      const word *from_word)
{
    if (c->depth >= MAX_INCLUDE_DEPTH)
        return fail(c, SBX_ERROR_BAD_POLICY, from_file, from_line, from_word->col, from_word->s,
                    from_word->len, "includes nested too deeply (at most %d levels)",
                    MAX_INCLUDE_DEPTH);
    if (from_file && ++c->files_read > MAX_FILES_READ)
        return fail(c, SBX_ERROR_TOO_LARGE, from_file, from_line, from_word->col, from_word->s,
                    from_word->len, "too many included files (at most %d per policy)",
                    MAX_FILES_READ);
    SBX_AUTOFREE char *buf = NULL;
    size_t len = 0;
    struct stat st;
    int r = read_policy_file(path, &buf, &len, &st);
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        int code = (r == -EINVAL || r == -EISDIR) ? SBX_ERROR_BAD_POLICY : r;
        if (!from_file)
            return fail(c, code, path, 0, 0, NULL, 0, "cannot read policy file: %s",
                        read_error_text(r));
        return fail(c, code, from_file, from_line, from_word->col, from_word->s, from_word->len,
                    "cannot read included file %s: %s", path, read_error_text(r));
    }
    for (size_t i = 0; i < c->depth; i++)
        if (c->stack[i].dev == st.st_dev && c->stack[i].ino == st.st_ino) {
            char chain[600] = "";
            for (size_t k = i; k < c->depth; k++) {
                size_t l = strlen(chain);
                snprintf(chain + l, sizeof chain - l, "%s -> ", c->stack[k].name);
            }
            size_t l = strlen(chain);
            snprintf(chain + l, sizeof chain - l, "%s", path);
            return fail(c, SBX_ERROR_BAD_POLICY, from_file, from_line, from_word->col,
                        from_word->s, from_word->len, "include cycle (%s)", chain);
        }
    c->stack[c->depth++] = (open_file){ .dev = st.st_dev, .ino = st.st_ino, .name = path };
    r = parse_buffer(c, path, buf, len);
    c->depth--;
    return r;
}

static int do_include(ctx *c, const char *file, unsigned line, const word *w, int n)
{
    int r = need_args(c, file, line, w, n, 2, 2, "include FILE");
    if (r < 0)
        return r;
    SBX_AUTOFREE char *path = NULL;
    SBX_AUTOFREE unsigned *cols = NULL;
    if ((r = expand(c, file, line, &w[1], false, &path, &cols)) < 0)
        return r;
    if (!path[0])
        return fail(c, SBX_ERROR_BAD_POLICY, file, line, w[1].col, w[1].s, w[1].len,
                    "empty include path");
    SBX_AUTOFREE char *full = NULL;
    const char *slash = strrchr(file, '/');
    if (path[0] != '/' && slash) {
        size_t dl = (size_t)(slash - file) + 1;
        full = malloc(dl + strlen(path) + 1);
        if (!full)
            return -ENOMEM;
        memcpy(full, file, dl);
        strcpy(full + dl, path);
    } else {
        full = sbx_steal_ptr(&path);
    }
    if (strlen(full) >= 1024)
        return fail(c, SBX_ERROR_BAD_POLICY, file, line, w[1].col, w[1].s, w[1].len,
                    "include path too long");
    return parse_file(c, full, file, line, &w[1]);
}

static int parse_line(ctx *c, const char *file, unsigned lineno, const char *line, size_t len)
{
    if (len > MAX_LINE_BYTES)
        return fail(c, SBX_ERROR_BAD_POLICY, file, lineno, MAX_LINE_BYTES + 1, line, 40,
                    "line too long (at most %d bytes)", MAX_LINE_BYTES);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return fail(c, SBX_ERROR_BAD_POLICY, file, lineno, (unsigned)i + 1, line, len,
                        ch ? "control character in line" : "NUL byte in line");
    }
    word w[MAX_WORDS];
    int n = split(c, file, lineno, line, len, w);
    if (n <= 0)
        return n;
    if (word_is(&w[0], "files"))
        return do_files(c, file, lineno, w, n);
    if (word_is(&w[0], "view"))
        return do_view(c, file, lineno, w, n);
    if (word_is(&w[0], "limit"))
        return do_limit(c, file, lineno, w, n);
    if (word_is(&w[0], "net"))
        return do_keyword_stmt(c, file, lineno, w, n, ST_NET, net_words, "network mode",
                               "net none|loopback");
    if (word_is(&w[0], "backend"))
        return do_keyword_stmt(c, file, lineno, w, n, ST_BACKEND, backend_words, "backend",
                               "backend auto|notify|trap");
    if (word_is(&w[0], "deny-errno"))
        return do_keyword_stmt(c, file, lineno, w, n, ST_DENY_ERRNO, errno_words, "errno",
                               "deny-errno EACCES|EPERM|ENOENT");
    if (word_is(&w[0], "lockdown"))
        return do_keyword_stmt(c, file, lineno, w, n, ST_LOCKDOWN, lockdown_words,
                               "lockdown level", "lockdown interactive|limited|lockdown");
    if (word_is(&w[0], "job"))
        return do_keyword_stmt(c, file, lineno, w, n, ST_JOB, job_words, "job level",
                               "job none|interactive|limited|lockdown");
    if (word_is(&w[0], "audit"))
        return do_keyword_stmt(c, file, lineno, w, n, ST_AUDIT, onoff_words, "value",
                               "audit on|off");
    if (word_is(&w[0], "default-view"))
        return do_keyword_stmt(c, file, lineno, w, n, ST_DEFAULT_VIEW, onoff_words, "value",
                               "default-view on|off");
    if (word_is(&w[0], "mitigation"))
        return do_keyword_stmt(c, file, lineno, w, n, ST_MITIGATION, mitigation_words,
                               "mitigation",
                               "mitigation kill-on-denied-syscall|allow-tty|allow-children");
    if (word_is(&w[0], "identity"))
        return do_identity(c, file, lineno, w, n);
    if (word_is(&w[0], "include"))
        return do_include(c, file, lineno, w, n);
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; statement_words[i]; i++) {
        size_t d = distance(w[0].s, w[0].len, statement_words[i]);
        if (d < best_d) {
            best_d = d;
            best = statement_words[i];
        }
    }
    if (best)
        return fail(c, SBX_ERROR_BAD_POLICY, file, lineno, w[0].col, w[0].s, w[0].len,
                    "unknown statement (did you mean '%s'?)", best);
    return fail(c, SBX_ERROR_BAD_POLICY, file, lineno, w[0].col, w[0].s, w[0].len,
                "unknown statement");
}

static int parse_buffer(ctx *c, const char *file, const char *buf, size_t len)
{
    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        lineno++;
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t l = end - pos;
        if (l && buf[pos + l - 1] == '\r')
            l--;
        int r = parse_line(c, file, lineno, buf + pos, l);
        if (r < 0)
            return r;
        pos = end + 1;
    }
    return 0;
}

/* ---- apply ---- */

/* Undo rules and views appended past the given counts. This writes the
 * policy object's storage directly: it is the one way to keep the
 * all-or-nothing promise when an allocation fails half way. */
static void rollback(sbx_policy *p, size_t n_rules, size_t n_views)
{
    while (p->n_rules > n_rules) {
        p->n_rules--;
        free(p->rules[p->n_rules].pattern);
        free(p->rules[p->n_rules].origin);
    }
    while (p->n_views > n_views) {
        p->n_views--;
        free(p->views[p->n_views].path);
    }
}

static int apply(ctx *c, sbx_policy *p)
{
    if (sbx_policy_is_frozen(p))
        return fail(c, SBX_ERROR_FROZEN, "", 0, 0, NULL, 0, "policy is frozen");
    size_t add_rules = 0, add_views = 0;
    for (size_t i = 0; i < c->n; i++) {
        add_rules += c->stmts[i].kind == ST_RULE;
        add_views += c->stmts[i].kind == ST_VIEW;
    }
    if (p->n_rules + add_rules > SBX_POLICY_MAX_RULES)
        return fail(c, SBX_ERROR_TOO_LARGE, "", 0, 0, NULL, 0, "too many rules in total");
    if (p->n_views + add_views > SBX_POLICY_MAX_VIEWS)
        return fail(c, SBX_ERROR_TOO_LARGE, "", 0, 0, NULL, 0, "too many views in total");

    /* First what can fail (allocation), then settings that cannot. */
    size_t n_rules = p->n_rules, n_views = p->n_views;
    for (size_t i = 0; i < c->n; i++) {
        const stmt *s = &c->stmts[i];
        int r = 0;
        if (s->kind == ST_RULE)
            r = sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, s->ival, s->str, s->origin, NULL);
        else if (s->kind == ST_VIEW)
            r = sbx_policy_add_view(p, s->str, (unsigned)s->u64);
        if (r < 0) {
            rollback(p, n_rules, n_views);
            return r;
        }
    }
    uint64_t mitigations = p->mitigations;
    for (size_t i = 0; i < c->n; i++) {
        const stmt *s = &c->stmts[i];
        switch (s->kind) {
        case ST_LIMIT:
            (void)sbx_policy_set_limit(p, (sbx_limit)s->ival, s->u64);
            break;
        case ST_NET:
            (void)sbx_policy_set_net(p, (sbx_net_mode)s->ival);
            break;
        case ST_BACKEND:
            (void)sbx_policy_set_backend(p, (sbx_backend)s->ival);
            break;
        case ST_IDENTITY:
            (void)sbx_policy_set_identity(p, (uid_t)s->u64, (gid_t)s->u64b);
            break;
        case ST_DENY_ERRNO:
            (void)sbx_policy_set_deny_errno(p, s->ival);
            break;
        case ST_LOCKDOWN:
            (void)sbx_policy_set_lockdown_level(p, (sbx_lockdown_level)s->ival);
            break;
        case ST_JOB:
            (void)sbx_policy_set_job_level(p, (sbx_job_level)s->ival);
            break;
        case ST_AUDIT:
            (void)sbx_policy_set_audit(p, s->ival != 0);
            break;
        case ST_DEFAULT_VIEW:
            (void)sbx_policy_set_default_view(p, s->ival != 0);
            break;
        case ST_MITIGATION:
            mitigations |= s->u64;
            (void)sbx_policy_set_mitigations(p, mitigations);
            break;
        case ST_RULE:
        case ST_VIEW:
            break;
        }
    }
    return 0;
}

static void ctx_done(ctx *c)
{
    stmts_free(c);
    sbx_policy_unref(c->scratch);
}

static int load(sbx_policy *policy, const char *path, const char *text, size_t len,
                const char *name, const sbx_policy_vars *vars, sbx_policyfile_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    ctx c = { .vars = vars, .err = err };
    if (!policy || (!path && !text))
        return fail(&c, -EINVAL, "", 0, 0, NULL, 0, "no policy or no file given");
    if (sbx_policy_is_frozen(policy))
        return fail(&c, SBX_ERROR_FROZEN, path ? path : name, 0, 0, NULL, 0, "policy is frozen");
    c.scratch = sbx_policy_new();
    if (!c.scratch)
        return -ENOMEM;
    int r;
    if (path) {
        r = parse_file(&c, path, NULL, 0, NULL);
    } else {
        c.stack[c.depth++] = (open_file){ .dev = 0, .ino = 0, .name = name };
        r = parse_buffer(&c, name, text, len);
    }
    if (r == 0)
        r = apply(&c, policy);
    if (r == -ENOMEM)
        (void)fail(&c, r, path ? path : name, 0, 0, NULL, 0, "out of memory");
    ctx_done(&c);
    return r;
}

SBX_API int sbx_policy_load_file(sbx_policy *policy, const char *path,
                                 const sbx_policy_vars *vars, sbx_policyfile_error *err)
{
    return load(policy, path, NULL, 0, NULL, vars, err);
}

SBX_API int sbx_policy_load_string(sbx_policy *policy, const char *text, size_t len,
                                   const char *name, const sbx_policy_vars *vars,
                                   sbx_policyfile_error *err)
{
    if (!text && len == 0)
        text = "";
    return load(policy, NULL, text, len, name ? name : "<string>", vars, err);
}
