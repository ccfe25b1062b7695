/* sbx command — the `sbx learn` policy generator (learn_policy.h). */
#include "learn_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What one operation name counts as in a "# covers:" comment. */
enum { K_READ, K_WRITE, K_CREATE, K_QUERY, K_MISSING, K_CHANGE, K_COUNT };
static const char *const kind_names[K_COUNT] = { "read", "write", "create", "query", "missing",
                                                 "change" };

typedef struct entry {
    char *path;
    sbx_learn_strength strength;
    unsigned long counts[K_COUNT];
    bool collapsed; /* path names a directory D whose rule is D/{**} */
    bool gone;      /* folded into a collapsed entry */
    bool twin;      /* D itself when D/{**} exists: one child of D's parent, not two */
} entry;

struct sbx_learn {
    entry *e;
    size_t n, cap, max;
    size_t dropped;
};

int sbx_learn_new(size_t max_paths, sbx_learn **out)
{
    sbx_learn *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->max = max_paths ? max_paths : 8192;
    *out = l;
    return 0;
}

void sbx_learn_free(sbx_learn *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].path);
    free(l->e);
    free(l);
}

size_t sbx_learn_dropped(const sbx_learn *l)
{
    return l->dropped;
}

static bool is(const char *op, const char *name)
{
    return op && !strcmp(op, name);
}

static bool writes(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC));
}

sbx_learn_strength sbx_learn_classify(const char *op, int flags, int error)
{
    if (is(op, "open")) {
        if (writes(flags) && error != ENOENT)
            return SBX_LEARN_ANY;
        /* A failed read probe reveals only absence: a query rule keeps the
         * same answer (ENOENT) on the next run. */
        return error == ENOENT ? SBX_LEARN_QUERY : SBX_LEARN_READ;
    }
    /* chdir is decided as opening the directory for reading. */
    if (is(op, "chdir"))
        return error == ENOENT ? SBX_LEARN_QUERY : SBX_LEARN_READ;
    if (is(op, "stat") || is(op, "statx") || is(op, "access") || is(op, "readlink"))
        return SBX_LEARN_QUERY;
    if (error == ENOENT && !is(op, "rename"))
        return SBX_LEARN_QUERY;
    return SBX_LEARN_ANY; /* mkdir, unlink, rmdir, rename, truncate, chmod, utimens, unknown */
}

static int kind_of(const char *op, int flags, int error)
{
    if (error == ENOENT && !(is(op, "open") && (flags & O_CREAT)))
        return K_MISSING;
    if (is(op, "open")) {
        if (flags & O_CREAT)
            return K_CREATE;
        return writes(flags) ? K_WRITE : K_READ;
    }
    if (is(op, "mkdir"))
        return K_CREATE;
    if (is(op, "chdir"))
        return K_READ;
    if (sbx_learn_classify(op, flags, error) == SBX_LEARN_QUERY)
        return K_QUERY;
    return K_CHANGE;
}

static entry *find(sbx_learn *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->e[i].path, path))
            return &l->e[i];
    return NULL;
}

static int add_one(sbx_learn *l, const char *path, sbx_learn_strength s, int kind)
{
    if (!path || path[0] != '/')
        return 0;
    entry *e = find(l, path);
    if (!e) {
        if (l->n >= l->max) {
            l->dropped++;
            return -ENOSPC;
        }
        if (l->n == l->cap) {
            size_t nc = l->cap ? l->cap * 2 : 64;
            entry *ne = realloc(l->e, nc * sizeof *ne);
            if (!ne)
                return -ENOMEM;
            l->e = ne;
            l->cap = nc;
        }
        char *p = strdup(path);
        if (!p)
            return -ENOMEM;
        e = &l->e[l->n++];
        memset(e, 0, sizeof *e);
        e->path = p;
    }
    if (s > e->strength)
        e->strength = s;
    e->counts[kind]++;
    return 0;
}

int sbx_learn_add(sbx_learn *l, const char *op, const char *path, const char *path2, int flags,
                  bool denied, int error)
{
    if (denied)
        return 0;
    sbx_learn_strength s = sbx_learn_classify(op, flags, error);
    int k = kind_of(op, flags, error);
    int r = add_one(l, path, s, k);
    if (r == 0 && path2)
        r = add_one(l, path2, s, k); /* a rename destination is written too */
    return r;
}

int sbx_learn_escape(const char *text, char *buf, size_t cap)
{
    bool quote = false;
    for (const char *c = text; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return -EINVAL;
        if (*c == ' ' || *c == '\t')
            quote = true;
        if (c[0] == '$' && c[1] == '{')
            return -EINVAL; /* would read as a variable */
    }
    if (text[0] == '#' || text[0] == '"')
        quote = true;
    if (quote && strchr(text, '"'))
        return -EINVAL; /* no escape inside quotes */
    size_t k = 0;
    if (quote) {
        if (k + 1 >= cap)
            return -ENAMETOOLONG;
        buf[k++] = '"';
    }
    for (const char *c = text; *c; c++) {
        if (*c == '*' || *c == '?' || *c == '\\') {
            if (k + 1 >= cap)
                return -ENAMETOOLONG;
            buf[k++] = '\\';
        }
        if (k + 1 >= cap)
            return -ENAMETOOLONG;
        buf[k++] = *c;
    }
    if (quote) {
        if (k + 1 >= cap)
            return -ENAMETOOLONG;
        buf[k++] = '"';
    }
    buf[k] = '\0';
    return 0;
}

/* True if `path` is `dir` or below it (dir without trailing slash; "/" holds all). */
static bool under(const char *path, const char *dir, size_t dl)
{
    if (dl == 1 && dir[0] == '/')
        return true;
    return !strncmp(path, dir, dl) && (path[dl] == '\0' || path[dl] == '/');
}

/* True if `path` lies strictly below the directory dir[0..dl). */
static bool below(const char *path, const char *dir, size_t dl)
{
    if (dl == 1)
        return path[0] == '/' && path[1] != '\0';
    return !strncmp(path, dir, dl) && path[dl] == '/' && path[dl + 1] != '\0';
}

/* True if `path` is an entry directly in the directory dir[0..dl). */
static bool direct_child(const char *path, const char *dir, size_t dl)
{
    if (!below(path, dir, dl))
        return false;
    return !strchr(path + (dl == 1 ? 1 : dl + 1), '/');
}

static size_t dirlen(const char *path)
{
    const char *s = strrchr(path, '/');
    return s == path ? 1 : (size_t)(s - path);
}

static size_t depth(const char *p)
{
    size_t d = 0;
    for (; *p; p++)
        d += *p == '/';
    return d;
}

/* Collapse: deepest directories first, a directory D with >= n distinct
 * names directly below it among the live entries (files or collapsed
 * subdirectories) becomes one D/{**} entry with the strongest semantics
 * and the summed counts of everything below it. An entry for D itself
 * stays separate (D/{**} does not match D). */
static int collapse(sbx_learn *l, size_t n)
{
    if (n < 2)
        return 0;
    for (;;) {
        /* The deepest parent with enough children. */
        const char *best = NULL;
        size_t best_len = 0, best_depth = 0;
        for (size_t i = 0; i < l->n; i++) {
            entry *e = &l->e[i];
            if (e->gone || !strcmp(e->path, "/"))
                continue;
            size_t dl = dirlen(e->path);
            size_t dd = depth(e->path);
            if (dl == 1)
                continue; /* never collapse into the whole filesystem */
            if (best && dd <= best_depth)
                continue;
            /* Count the distinct children of that parent. */
            size_t kids = 0;
            for (size_t j = 0; j < l->n && kids < n; j++)
                if (!l->e[j].gone && !l->e[j].twin && direct_child(l->e[j].path, e->path, dl))
                    kids++;
            if (kids >= n) {
                best = e->path;
                best_len = dl;
                best_depth = dd;
            }
        }
        if (!best)
            return 0;
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)best_len, best);
        entry *d = NULL;
        for (size_t i = 0; i < l->n; i++) {
            entry *e = &l->e[i];
            if (e->gone || !e->collapsed || strcmp(e->path, dir))
                continue;
            d = e;
        }
        sbx_learn_strength s = 0;
        unsigned long counts[K_COUNT] = { 0 };
        for (size_t i = 0; i < l->n; i++) {
            entry *e = &l->e[i];
            if (e->gone || e == d || !below(e->path, dir, best_len))
                continue;
            e->gone = true;
            if (e->strength > s)
                s = e->strength;
            for (int k = 0; k < K_COUNT; k++)
                counts[k] += e->counts[k];
        }
        if (!d) {
            if (l->n == l->cap) {
                size_t nc = l->cap * 2;
                entry *ne = realloc(l->e, nc * sizeof *ne);
                if (!ne)
                    return -ENOMEM;
                l->e = ne;
                l->cap = nc;
            }
            char *p = strdup(dir);
            if (!p)
                return -ENOMEM;
            d = &l->e[l->n++];
            memset(d, 0, sizeof *d);
            d->path = p;
            d->collapsed = true;
            for (size_t i = 0; i + 1 < l->n; i++)
                if (!l->e[i].gone && !l->e[i].collapsed && !strcmp(l->e[i].path, dir))
                    l->e[i].twin = true;
        }
        if (s > d->strength)
            d->strength = s;
        for (int k = 0; k < K_COUNT; k++)
            d->counts[k] += counts[k];
    }
}

static const char *semantics(sbx_learn_strength s)
{
    return s == SBX_LEARN_ANY ? "allow-any" : s == SBX_LEARN_READ ? "allow-readonly"
                                                                   : "allow-query";
}

typedef struct line {
    char *pattern;
    const entry *e;
} line;

/* '/' sorts first so a directory's rules stay together. */
static int cmp_lines(const void *a, const void *b)
{
    const unsigned char *x = (const unsigned char *)((const line *)a)->pattern;
    const unsigned char *y = (const unsigned char *)((const line *)b)->pattern;
    for (;; x++, y++) {
        unsigned cx = *x == '/' ? 1u : *x, cy = *y == '/' ? 1u : *y;
        if (cx != cy || !cx)
            return (int)cx - (int)cy;
    }
}

/* pattern = VAR + escaped rest, or the escaped path; "/{**}" appended when collapsed. */
static int path_pattern(const char *path, bool collapsed, const sbx_learn_options *o, char **out)
{
    const char *var = NULL;
    const char *rest = path;
    size_t best = 0;
    const char *roots[2] = { o->scratch, o->cwd };
    const char *names[2] = { "${SCRATCH}", "${CWD}" };
    for (int i = 0; i < 2; i++) {
        const char *r = roots[i];
        if (!r || r[0] != '/')
            continue;
        size_t rl = strlen(r);
        while (rl > 1 && r[rl - 1] == '/')
            rl--;
        if (rl <= 1 || !under(path, r, rl) || rl <= best)
            continue;
        best = rl;
        var = names[i];
        rest = path + rl;
    }
    char esc[8192];
    int r = sbx_learn_escape(rest, esc, sizeof esc);
    if (r < 0)
        return r;
    /* A quoted word must carry the variable inside its quotes. */
    const char *body = esc;
    bool q = esc[0] == '"';
    if (q) {
        esc[strlen(esc) - 1] = '\0';
        body = esc + 1;
    }
    size_t need = strlen(body) + 32;
    char *p = malloc(need);
    if (!p)
        return -ENOMEM;
    snprintf(p, need, "%s%s%s%s%s", q ? "\"" : "", var ? var : "", body,
             collapsed ? "/**" : "", q ? "\"" : "");
    *out = p;
    return 0;
}

static int make_pattern(const entry *e, const sbx_learn_options *o, char **out)
{
    return path_pattern(e->path, e->collapsed, o, out);
}

/* The working directory was a native read-only view under learn, so its
 * reads were not audited: grant them as learn did. Not when it was /,
 * where that would grant reading everything. */
static int write_workdir(const sbx_learn_options *o, FILE *out)
{
    const char *wd = o->workdir ? o->workdir : o->cwd;
    if (!wd || wd[0] != '/' || !strcmp(wd, "/"))
        return 0;
    char *dir = NULL, *below = NULL;
    int r = path_pattern(wd, false, o, &dir);
    if (r == 0)
        r = path_pattern(wd, true, o, &below);
    if (r < 0 && r != -ENOMEM) {
        fprintf(out, "# The working directory could not be written as a pattern.\n\n");
        r = 0;
    } else if (r == 0) {
        fprintf(out, "# The working directory (native, so not audited, under learn).\n"
                     "files allow-query %s\n"
                     "files allow-readonly %s\n"
                     "\n", dir, below);
    }
    free(dir);
    free(below);
    return r;
}

int sbx_learn_write(const sbx_learn *lc, const sbx_learn_options *o, FILE *out)
{
    /* Collapse works on the collector: a const view of the caller's data
     * is kept by collapsing a copy of the entry table. */
    sbx_learn copy = { .max = lc->max };
    copy.cap = lc->n + 64;
    copy.e = calloc(copy.cap, sizeof *copy.e);
    if (!copy.e)
        return -ENOMEM;
    int r = 0;
    for (size_t i = 0; i < lc->n && r == 0; i++) {
        copy.e[i] = lc->e[i];
        copy.e[i].path = strdup(lc->e[i].path);
        if (!copy.e[i].path)
            r = -ENOMEM;
        copy.n = i + 1;
    }
    if (r == 0)
        r = collapse(&copy, o->collapse);
    line *lines = r == 0 ? calloc(copy.n + 1, sizeof *lines) : NULL;
    if (r == 0 && !lines)
        r = -ENOMEM;
    size_t nl = 0, skipped = 0;
    for (size_t i = 0; r == 0 && i < copy.n; i++) {
        if (copy.e[i].gone)
            continue;
        int m = make_pattern(&copy.e[i], o, &lines[nl].pattern);
        if (m == -ENOMEM)
            r = m;
        else if (m < 0)
            skipped++;
        else
            lines[nl++].e = &copy.e[i];
    }
    if (r == 0) {
        qsort(lines, nl, sizeof *lines, cmp_lines);
        fprintf(out, "# sbx policy learned by `sbx learn`%s%s\n", o->command ? " from: " : "",
                o->command ? o->command : "");
        fprintf(out, "# It allows what that run did and nothing more; review it before use.\n"
                     "# The native view's system trees (/usr, /lib*, /bin, /sbin, a few /dev\n"
                     "# nodes, /proc) are always visible and need no rule. Run it from the\n"
                     "# directory it was learned in: ${CWD} is read-only, as under learn.\n");
        if (skipped)
            fprintf(out, "# %zu path(s) could not be written as a pattern and were left out.\n",
                    skipped);
        if (lc->dropped)
            fprintf(out, "# %zu access(es) beyond the learning bound were not recorded.\n",
                    lc->dropped);
        if (o->rerun && o->rerun[0])
            fprintf(out, "# Run it with these 'sbx run' options too: %s\n", o->rerun);
        fprintf(out, "lockdown limited\n"
                     "job interactive\n"
                     "net %s\n"
                     "backend auto\n"
                     "default-view on\n",
                o->net ? o->net : "none");
        if (o->settings && o->settings[0])
            fprintf(out, "# Given to sbx learn:\n%s", o->settings);
        fprintf(out, "\n");
        r = write_workdir(o, out);
    }
    if (r == 0) {
        for (size_t i = 0; i < nl; i++) {
            const entry *e = lines[i].e;
            fprintf(out, "# covers:");
            bool first = true;
            for (int k = 0; k < K_COUNT; k++) {
                if (!e->counts[k])
                    continue;
                fprintf(out, "%s %s x%lu", first ? "" : ",", kind_names[k], e->counts[k]);
                first = false;
            }
            fprintf(out, "\nfiles %s %s\n", semantics(e->strength), lines[i].pattern);
        }
        fprintf(out, "\n# Secrets: denied whatever else is allowed.\n"
                     "files deny /etc/shadow*\n"
                     "files deny /etc/gshadow*\n"
                     "files deny /etc/sudoers\n"
                     "files deny /etc/sudoers.d/**\n"
                     "files deny /etc/ssh/*_key\n"
                     "files deny /etc/ssl/private/**\n");
        if (fflush(out) != 0 || ferror(out))
            r = -EIO;
    }
    for (size_t i = 0; lines && i < nl; i++)
        free(lines[i].pattern);
    free(lines);
    for (size_t i = 0; i < copy.n; i++)
        free(copy.e[i].path);
    free(copy.e);
    return r;
}
