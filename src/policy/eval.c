/* sbx — the evaluator (the seed's PolicyProcessor).
 *
 * It runs on buffers that may be forged (a target's copy) or validated (the
 * broker's private copy) alike: every field is copied out with memcpy and
 * checked before use, so neither alignment, a bad offset, a changing byte
 * nor a crafted pattern can make it read out of bounds; a work budget bounds
 * the pattern backtracking. No allocation, no locks, no errno: safe in a
 * signal handler. */
#include <string.h>

#include "policy/engine.h"
#include "policy/format.h"

#define EVAL_BUDGET (1ull << 24) /* characters scanned per evaluation */
#define MAX_GROUP SBX_POL_MAX_FRAGMENTS
#define MAX_LISTS 64             /* directory prefixes looked up per request */
#define LINEAR_BELOW 4           /* services with fewer rules are scanned */

typedef struct view {
    const unsigned char *buf;
    uint64_t total;
    uint32_t n_rules, rules_off, n_ops, ops_off, strings_off, strings_size, index_off, index_size;
} view;

static bool fits(uint64_t off, uint64_t count, uint64_t elem, uint64_t total)
{
    return off <= total && count * elem <= total - off;
}

static bool view_init(view *v, const void *buf, size_t size)
{
    if (!buf || size < sizeof(sbx_pol_header))
        return false;
    /* Only the fixed part: the service entries are read one at a time. */
    sbx_pol_header h;
    memcpy(&h, buf, offsetof(sbx_pol_header, services));
    if (h.magic != SBX_POL_MAGIC || h.version != SBX_POL_VERSION || h.total_size > size ||
        h.total_size < sizeof h)
        return false;
    *v = (view){ .buf = buf, .total = h.total_size, .n_rules = h.n_rules, .rules_off = h.rules_off,
                 .n_ops = h.n_ops, .ops_off = h.ops_off, .strings_off = h.strings_off,
                 .strings_size = h.strings_size, .index_off = h.index_off, .index_size = h.index_size };
    return fits(h.rules_off, h.n_rules, sizeof(sbx_pol_rule_rec), v->total) &&
           fits(h.ops_off, h.n_ops, sizeof(sbx_pol_op), v->total) &&
           fits(h.strings_off, h.strings_size, 1, v->total);
}

static bool load_rule(const view *v, uint64_t idx, sbx_pol_rule_rec *out)
{
    if (idx >= v->n_rules)
        return false;
    memcpy(out, v->buf + v->rules_off + idx * sizeof *out, sizeof *out);
    return true;
}

static bool load_op(const view *v, uint64_t idx, sbx_pol_op *out)
{
    if (idx >= v->n_ops)
        return false;
    memcpy(out, v->buf + v->ops_off + idx * sizeof *out, sizeof *out);
    return true;
}

/* The pool bytes [off, off + len), or NULL if out of range. */
static const char *pool(const view *v, uint64_t off, uint64_t len)
{
    if (off > v->strings_size || len > v->strings_size - off)
        return NULL;
    return (const char *)v->buf + v->strings_off + off;
}

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool eq(const char *a, const char *b, size_t n, bool icase)
{
    if (!icase)
        return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* The fragments g[0..ng) of one pattern against s[0..n). 1, 0, or -1
 * (malformed group or budget exhausted). The backtracking keeps the most
 * recent '*' and '**' choices only: a choice before a later '*' of the same
 * component run, or before a later '**', never needs revisiting, because
 * matching the earlier part as early as possible is then always at least
 * as good (docs/policy.md has the argument). */
static int match_group(const view *v, const sbx_pol_op *g, uint32_t ng, const char *s, size_t n,
                       uint64_t *budget)
{
    size_t pos = 0, from = 0;
    long star = -1, dstar = -1;
    size_t star_next = 0, dstar_next = 0;
    uint32_t k = 0;
    bool resume = false;
    for (;;) {
        if (*budget < 16 + n)
            return -1;
        *budget -= 16;
        const sbx_pol_op *op = &g[k];
        uint32_t start = op->aux & 0xff, skip = op->aux >> 8;
        size_t fl = (size_t)op->b;
        const char *f = pool(v, op->a, op->b);
        if (!f || start > SBX_START_SEEK_ANY)
            return -1;
        bool icase = op->options & SBX_OPT_ICASE, must_end = op->options & SBX_OPT_MUST_END;
        bool ok = false, seek_failed = false;
        size_t q = 0;
        if (!resume) {
            if (skip > n - pos)
                goto fail;
            for (size_t j = pos; j < pos + skip; j++)
                if (s[j] == '/')
                    goto fail;
            pos += skip;
            from = pos;
        }
        switch (start) {
        case SBX_START_FIXED:
            q = from;
            ok = fl <= n - q && eq(s + q, f, fl, icase) && (!must_end || q + fl == n);
            break;
        case SBX_START_SEEK_COMP:
            if (must_end) {
                if (fl <= n - from) {
                    q = n - fl;
                    ok = !memchr(s + from, '/', q - from) && eq(s + q, f, fl, icase);
                }
            } else {
                *budget -= n - from;
                for (q = from; fl <= n - q; q++) {
                    if (eq(s + q, f, fl, icase)) {
                        ok = true;
                        break;
                    }
                    if (s[q] == '/')
                        break;
                }
                if (ok) {
                    star = k;
                    star_next = q + 1;
                }
            }
            break;
        default: /* SBX_START_SEEK_ANY */
            if (must_end) {
                if (fl <= n - from) {
                    q = n - fl;
                    ok = eq(s + q, f, fl, icase);
                }
            } else {
                *budget -= n - from;
                if (!icase) {
                    const char *hit = fl ? memmem(s + from, n - from, f, fl) : s + from;
                    if (hit) {
                        q = (size_t)(hit - s);
                        ok = true;
                    }
                } else {
                    for (q = from; fl <= n - q; q++)
                        if (eq(s + q, f, fl, true)) {
                            ok = true;
                            break;
                        }
                }
                if (ok) {
                    dstar = k;
                    dstar_next = q + 1;
                    star = -1;
                }
            }
            seek_failed = !ok;
            break;
        }
        if (ok) {
            pos = q + fl;
            resume = false;
            if (must_end)
                return 1;
            if (++k >= ng)
                return -1;
            continue;
        }
    fail:
        /* No later start can make an absent '**' fragment appear. */
        if (seek_failed)
            return 0;
        if (star == (long)k)
            star = -1;
        if (star >= 0 && (star_next > n || s[star_next - 1] == '/'))
            star = -1;
        if (star >= 0) {
            k = (uint32_t)star;
            from = star_next;
            resume = true;
            continue;
        }
        if (dstar >= 0 && dstar_next <= n) {
            k = (uint32_t)dstar;
            from = dstar_next;
            star = -1;
            resume = true;
            continue;
        }
        return 0;
    }
}

/* A term's raw result before NEGATE: 1, 0; or ABSENT (false whatever the
 * NEGATE), or -1 (error). */
#define ABSENT 2

static int eval_number(const sbx_pol_op *op, const sbx_pol_param *params, size_t count)
{
    if (op->opcode == SBX_OP_ALWAYS_TRUE)
        return 1;
    if (op->opcode == SBX_OP_ALWAYS_FALSE)
        return 0;
    if (op->param >= count || params[op->param].type == SBX_PTYPE_NONE)
        return ABSENT;
    const sbx_pol_param *p = &params[op->param];
    bool wide = op->options & SBX_OPT_U64;
    if (p->type != (wide ? SBX_PTYPE_U64 : SBX_PTYPE_U32) || (!wide && p->num > UINT32_MAX))
        return -1;
    uint64_t x = p->num;
    switch (op->opcode) {
    case SBX_OP_NUMBER_MATCH: return x == op->a;
    case SBX_OP_NUMBER_AND_MATCH: return (x & op->a) != 0;
    case SBX_OP_NUMBER_MATCH_RANGE: return op->a <= x && x <= op->b;
    default: return -1;
    }
}

/* Evaluate a rule's terms. 1 match, 0 no match, -1 error. */
static int eval_rule(const view *v, const sbx_pol_rule_rec *rec, const sbx_pol_param *params,
                     size_t count, uint64_t *budget)
{
    uint64_t end = (uint64_t)rec->first_op + rec->n_ops;
    if (!rec->n_ops || end > v->n_ops)
        return -1;
    uint64_t i = rec->first_op;
    bool skipping = false;   /* an OR chain is already satisfied */
    bool or_pending = false; /* inside an OR chain, nothing true yet */
    while (i < end) {
        sbx_pol_op op;
        if (!load_op(v, i, &op))
            return -1;
        if (op.opcode == SBX_OP_ACTION) {
            if (i + 1 != end)
                return -1;
            return or_pending ? 0 : 1; /* a trailing OR chain must have held */
        }
        uint16_t opts = op.options;
        int r;
        if (op.opcode == SBX_OP_STRING_MATCH) {
            if (!(opts & SBX_OPT_CLEAR_CONTEXT))
                return -1; /* a pattern must start by clearing the context */
            sbx_pol_op g[MAX_GROUP];
            uint32_t ng = 0;
            for (;;) {
                if (ng >= MAX_GROUP || i >= end || !load_op(v, i, &g[ng]) ||
                    g[ng].opcode != SBX_OP_STRING_MATCH || g[ng].param != op.param ||
                    (ng && (g[ng].options & SBX_OPT_CLEAR_CONTEXT)))
                    return -1;
                i++;
                if (g[ng++].options & SBX_OPT_MUST_END)
                    break;
            }
            if (skipping) {
                r = 0;
            } else if (op.param >= count || params[op.param].type == SBX_PTYPE_NONE) {
                r = ABSENT;
            } else if (params[op.param].type != SBX_PTYPE_STRING ||
                       params[op.param].len > SBX_POL_MAX_STRING ||
                       (params[op.param].len && !params[op.param].str)) {
                return -1;
            } else if (params[op.param].len == 0) {
                r = ABSENT; /* the empty string matches nothing */
            } else {
                r = match_group(v, g, ng, params[op.param].str, params[op.param].len, budget);
            }
        } else {
            i++;
            if (op.opcode < SBX_OP_ALWAYS_FALSE || op.opcode > SBX_OP_NUMBER_AND_MATCH)
                return -1;
            r = skipping ? 0 : eval_number(&op, params, count);
        }
        if (r < 0)
            return -1;
        if (r == ABSENT)
            r = 0;
        else if (opts & SBX_OPT_NEGATE)
            r = !r;
        if (skipping) {
            if (!(opts & SBX_OPT_OR))
                skipping = false;
            continue;
        }
        if (opts & SBX_OPT_OR) {
            if (r) {
                skipping = true;
                or_pending = false;
            } else {
                or_pending = true;
            }
            continue;
        }
        if (!r)
            return 0;
        or_pending = false;
    }
    return -1;
}

static sbx_pol_result decide(const view *v, uint64_t rule_idx, const sbx_pol_rule_rec *rec,
                             sbx_pol_result res)
{
    res.status = SBX_POL_MATCH;
    res.action = rec->action;
    res.rule = (uint32_t)rule_idx;
    res.source = rec->source;
    res.origin = pool(v, rec->origin_off, rec->origin_len);
    res.origin_len = res.origin ? rec->origin_len : 0;
    if (res.action <= SBX_ACTION_NONE || res.action >= SBX_ACTION_COUNT_) {
        res.status = SBX_POL_ERROR;
        res.action = SBX_ACTION_NONE;
    }
    return res;
}

/* Evaluate rule number rn of the service; updates res. 1 decided, 0 go on. */
static int try_rule(const view *v, const sbx_pol_service_entry *sv, uint64_t rn,
                    const sbx_pol_param *params, size_t count, uint64_t *budget, sbx_pol_result *res)
{
    sbx_pol_rule_rec rec;
    if (rn >= sv->n_rules || !load_rule(v, (uint64_t)sv->first_rule + rn, &rec)) {
        res->status = SBX_POL_ERROR;
        return 1;
    }
    res->evaluated++;
    int m = eval_rule(v, &rec, params, count, budget);
    if (m < 0) {
        res->status = SBX_POL_ERROR;
        return 1;
    }
    if (m) {
        *res = decide(v, (uint64_t)sv->first_rule + rn, &rec, *res);
        return 1;
    }
    return 0;
}

typedef struct cursor {
    uint64_t off; /* absolute offset of the next u32 */
    uint32_t left;
} cursor;

/* Look up one key; adds a cursor if found. false: malformed table. */
static bool lookup(const view *v, const sbx_pol_service_entry *sv, const char *key, uint32_t len,
                   uint32_t hash, cursor *cur, size_t *ncur)
{
    uint32_t mask = sv->n_slots - 1;
    for (uint32_t step = 0, at = hash & mask; step < sv->n_slots; step++, at = (at + 1) & mask) {
        sbx_pol_slot sl;
        memcpy(&sl, v->buf + sv->slots_off + (uint64_t)at * sizeof sl, sizeof sl);
        if (!sl.list_n)
            return true;
        if (sl.hash != hash || sl.key_len != len)
            continue;
        const char *k = pool(v, sl.key_off, sl.key_len);
        if (!k)
            return false;
        if (memcmp(k, key, len))
            continue;
        if (!fits(sl.list_off, sl.list_n, sizeof(uint32_t), v->total))
            return false;
        cur[(*ncur)++] = (cursor){ .off = sl.list_off, .left = sl.list_n };
        return true;
    }
    return true;
}

sbx_pol_result sbx_pol_evaluate(const void *buf, size_t size, unsigned service,
                                const sbx_pol_param *params, size_t count, unsigned flags)
{
    sbx_pol_result res = { .status = SBX_POL_ERROR };
    view v;
    if (!view_init(&v, buf, size) || service >= SBX_POL_MAX_SERVICES || count > SBX_POL_MAX_PARAMS ||
        (count && !params))
        return res;
    sbx_pol_service_entry sv;
    memcpy(&sv, v.buf + offsetof(sbx_pol_header, services) + service * sizeof sv, sizeof sv);
    if (!fits(sv.first_rule, sv.n_rules, 1, v.n_rules))
        return res;
    res.status = SBX_POL_NO_MATCH;
    uint64_t budget = EVAL_BUDGET;

    bool indexed = !(flags & SBX_EVAL_LINEAR) && sv.n_slots && sv.n_rules >= LINEAR_BELOW &&
                   !(sv.n_slots & (sv.n_slots - 1)) &&
                   fits(sv.slots_off, sv.n_slots, sizeof(sbx_pol_slot), v.total) &&
                   sv.index_param < count && params[sv.index_param].type == SBX_PTYPE_STRING &&
                   params[sv.index_param].len > 0 && params[sv.index_param].len <= SBX_POL_MAX_STRING &&
                   params[sv.index_param].str;
    if (indexed) {
        /* Candidates: the rules under every directory prefix of the name
         * ("" and each prefix ending in '/'), merged back into rule order,
         * so the first match is the same as the linear scan's. */
        const char *s = params[sv.index_param].str;
        uint32_t n = params[sv.index_param].len;
        cursor cur[MAX_LISTS];
        size_t ncur = 0;
        uint64_t h = SBX_POL_KEY_SEED;
        if (!lookup(&v, &sv, s, 0, sbx_pol_key_final(h), cur, &ncur)) {
            res.status = SBX_POL_ERROR;
            return res;
        }
        for (uint32_t start = 0; start < n && indexed;) {
            const char *slash = memchr(s + start, '/', n - start);
            if (!slash)
                break;
            uint32_t end = (uint32_t)(slash - s) + 1;
            h = sbx_pol_key_segment(h, s + start, end - start);
            start = end;
            if (ncur >= MAX_LISTS)
                indexed = false; /* too deep: scan instead */
            else if (!lookup(&v, &sv, s, end, sbx_pol_key_final(h), cur, &ncur)) {
                res.status = SBX_POL_ERROR;
                return res;
            }
        }
        if (indexed) {
            for (;;) {
                size_t best = ncur;
                uint32_t best_rn = UINT32_MAX;
                for (size_t c = 0; c < ncur; c++) {
                    if (!cur[c].left)
                        continue;
                    uint32_t rn;
                    memcpy(&rn, v.buf + cur[c].off, sizeof rn);
                    if (best == ncur || rn < best_rn) {
                        best = c;
                        best_rn = rn;
                    }
                }
                if (best == ncur)
                    return res;
                cur[best].off += sizeof(uint32_t);
                cur[best].left--;
                if (try_rule(&v, &sv, best_rn, params, count, &budget, &res))
                    return res;
            }
        }
        res.evaluated = 0;
    }
    for (uint32_t rn = 0; rn < sv.n_rules; rn++)
        if (try_rule(&v, &sv, rn, params, count, &budget, &res))
            return res;
    return res;
}
