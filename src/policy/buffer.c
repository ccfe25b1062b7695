/* sbx — the low-level policy (the seed's LowLevelPolicy): rules grouped per
 * service, compiled into one position-independent buffer with a literal
 * prefix index; and the validator that checks such a buffer before use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>

#include "base/cleanup.h"
#include "policy/engine.h"
#include "policy/format.h"
#include "policy/rule_internal.h"

typedef struct builder_rule {
    sbx_pol_rule *rule; /* owned copy */
    uint32_t source;
    char *origin; /* owned, may be NULL */
} builder_rule;

typedef struct builder_service {
    builder_rule *rules;
    size_t n, cap;
    unsigned index_param;
} builder_service;

struct sbx_pol_builder {
    builder_service services[SBX_POL_MAX_SERVICES];
};

sbx_pol_builder *sbx_pol_builder_new(void)
{
    sbx_pol_builder *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    for (size_t s = 0; s < SBX_POL_MAX_SERVICES; s++)
        b->services[s].index_param = SBX_POL_NO_INDEX;
    return b;
}

void sbx_pol_builder_free(sbx_pol_builder *b)
{
    if (!b)
        return;
    for (size_t s = 0; s < SBX_POL_MAX_SERVICES; s++) {
        builder_service *sv = &b->services[s];
        for (size_t i = 0; i < sv->n; i++) {
            sbx_pol_rule_free(sv->rules[i].rule);
            free(sv->rules[i].origin);
        }
        free(sv->rules);
    }
    free(b);
}

int sbx_pol_builder_set_index_param(sbx_pol_builder *b, unsigned service, unsigned param)
{
    if (!b || service >= SBX_POL_MAX_SERVICES || (param >= SBX_POL_MAX_PARAMS && param != SBX_POL_NO_INDEX))
        return -EINVAL;
    b->services[service].index_param = param;
    return 0;
}

int sbx_pol_builder_add(sbx_pol_builder *b, unsigned service, const sbx_pol_rule *rule,
                        uint32_t source, const char *origin)
{
    if (!b || !rule || service >= SBX_POL_MAX_SERVICES)
        return -EINVAL;
    if (!rule->done)
        return SBX_ERROR_WRONG_STATE;
    builder_service *sv = &b->services[service];
    if (sv->n == sv->cap) {
        size_t ncap = sv->cap ? sv->cap * 2 : 8;
        builder_rule *n = realloc(sv->rules, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        sv->rules = n;
        sv->cap = ncap;
    }
    sbx_pol_rule *copy = sbx_pol_rule_copy(rule);
    char *org = origin ? strndup(origin, 1024) : NULL;
    if (!copy || (origin && !org)) {
        sbx_pol_rule_free(copy);
        free(org);
        return -ENOMEM;
    }
    sv->rules[sv->n++] = (builder_rule){ .rule = copy, .source = source, .origin = org };
    return 0;
}

uint32_t sbx_pol_checksum(const void *buf, size_t size)
{
    const unsigned char *p = buf;
    uint32_t h = SBX_POL_FNV_INIT;
    size_t at = offsetof(sbx_pol_header, checksum);
    for (size_t i = 0; i < size; i++)
        h = sbx_pol_fnv_step(h, (i >= at && i < at + 4) ? 0 : p[i]);
    return h;
}

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* One rule's place in the index, for sorting. */
typedef struct key_ent {
    const char *key;
    uint32_t len;
    uint32_t rule;    /* within the service */
    uint32_t key_off; /* in the final pool */
} key_ent;

static int key_cmp_keys(const key_ent *a, const key_ent *b)
{
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->key, b->key, n);
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int key_cmp(const void *pa, const void *pb)
{
    const key_ent *a = pa, *b = pb;
    int c = key_cmp_keys(a, b);
    if (c)
        return c;
    return a->rule < b->rule ? -1 : a->rule > b->rule;
}

static int finish_keys(const sbx_pol_builder *b, key_ent **keys, size_t *n_keys);
static int finish_layout(const sbx_pol_builder *b, key_ent *const *keys, const size_t *n_keys, void **out,
                         size_t *size);

static size_t slots_for(size_t keys)
{
    size_t slots = 2;
    while (slots < 2 * keys)
        slots *= 2;
    return slots;
}

/* The index keys of a service's rules, sorted (key, rule); keys point into
 * the builder's rule strings. Returns the number of distinct keys, or
 * (size_t)-1 on allocation failure. *out is malloc'ed. */
static size_t service_keys(const builder_service *sv, key_ent **out)
{
    key_ent *ents = calloc(sv->n ? sv->n : 1, sizeof *ents);
    *out = ents;
    if (!ents)
        return (size_t)-1;
    for (size_t i = 0; i < sv->n; i++) {
        const sbx_pol_rule *ru = sv->rules[i].rule;
        const char *key;
        uint32_t len = sbx_pol_rule_key(&ru->ops[0], sv->index_param, ru->strings, &key);
        ents[i] = (key_ent){ .key = key, .len = len, .rule = (uint32_t)i,
                             .key_off = (uint32_t)(key - ru->strings) };
    }
    qsort(ents, sv->n, sizeof *ents, key_cmp);
    size_t distinct = 0;
    for (size_t i = 0; i < sv->n; i++)
        distinct += i == 0 || key_cmp_keys(&ents[i - 1], &ents[i]) != 0;
    return distinct;
}

int sbx_pol_builder_finish(const sbx_pol_builder *b, void **out, size_t *size)
{
    if (!b || !out || !size)
        return -EINVAL;
    *out = NULL;
    *size = 0;
    /* The index keys first (they size the tables), then the layout. */
    key_ent *keys[SBX_POL_MAX_SERVICES] = { 0 };
    size_t n_keys[SBX_POL_MAX_SERVICES] = { 0 };
    int r = finish_keys(b, keys, n_keys);
    if (r == 0)
        r = finish_layout(b, keys, n_keys, out, size);
    for (size_t s = 0; s < SBX_POL_MAX_SERVICES; s++)
        free(keys[s]);
    return r;
}

static int finish_keys(const sbx_pol_builder *b, key_ent **keys, size_t *n_keys)
{
    for (size_t s = 0; s < SBX_POL_MAX_SERVICES; s++) {
        const builder_service *sv = &b->services[s];
        if (sv->index_param == SBX_POL_NO_INDEX || !sv->n)
            continue;
        n_keys[s] = service_keys(sv, &keys[s]);
        if (n_keys[s] == (size_t)-1)
            return -ENOMEM;
    }
    return 0;
}

static int finish_layout(const sbx_pol_builder *b, key_ent *const *keys, const size_t *n_keys, void **out,
                         size_t *size)
{
    /* Pass 1: sizes. */
    size_t n_rules = 0, n_ops = 0, n_strings = 0, n_index = 0;
    for (size_t s = 0; s < SBX_POL_MAX_SERVICES; s++) {
        const builder_service *sv = &b->services[s];
        for (size_t i = 0; i < sv->n; i++) {
            n_ops += sv->rules[i].rule->n_ops;
            n_strings += sv->rules[i].rule->n_strings;
            n_strings += sv->rules[i].origin ? strlen(sv->rules[i].origin) : 0;
        }
        n_rules += sv->n;
        if (keys[s])
            n_index += slots_for(n_keys[s]) * sizeof(sbx_pol_slot) + sv->n * sizeof(uint32_t);
    }
    size_t rules_off = align_up(sizeof(sbx_pol_header), 8);
    size_t ops_off = align_up(rules_off + n_rules * sizeof(sbx_pol_rule_rec), 8);
    size_t index_off = align_up(ops_off + n_ops * sizeof(sbx_pol_op), 8);
    size_t strings_off = align_up(index_off + n_index, 8);
    size_t total = align_up(strings_off + n_strings, 8);
    if (total > SBX_POL_MAX_SIZE)
        return SBX_ERROR_TOO_LARGE;
    SBX_AUTOFREE unsigned char *buf = aligned_alloc(8, total);
    if (!buf)
        return -ENOMEM;
    memset(buf, 0, total);
    sbx_pol_header *h = (sbx_pol_header *)(void *)buf;
    *h = (sbx_pol_header){
        .magic = SBX_POL_MAGIC, .version = SBX_POL_VERSION, .total_size = (uint32_t)total,
        .n_rules = (uint32_t)n_rules, .rules_off = (uint32_t)rules_off,
        .n_ops = (uint32_t)n_ops, .ops_off = (uint32_t)ops_off,
        .strings_off = (uint32_t)strings_off, .strings_size = (uint32_t)n_strings,
        .index_off = (uint32_t)index_off, .index_size = (uint32_t)n_index,
    };
    sbx_pol_rule_rec *recs = (sbx_pol_rule_rec *)(void *)(buf + rules_off);
    sbx_pol_op *ops = (sbx_pol_op *)(void *)(buf + ops_off);
    char *strings = (char *)buf + strings_off;
    size_t r_at = 0, o_at = 0, s_at = 0, i_at = index_off;
    for (size_t s = 0; s < SBX_POL_MAX_SERVICES; s++) {
        const builder_service *sv = &b->services[s];
        h->services[s] = (sbx_pol_service_entry){ .first_rule = (uint32_t)r_at, .n_rules = (uint32_t)sv->n,
                                                  .index_param = sv->index_param };
        SBX_AUTOFREE uint32_t *bases = calloc(sv->n ? sv->n : 1, sizeof *bases);
        if (!bases)
            return -ENOMEM;
        for (size_t i = 0; i < sv->n; i++) {
            const builder_rule *br = &sv->rules[i];
            const sbx_pol_rule *ru = br->rule;
            size_t base = s_at;
            bases[i] = (uint32_t)base;
            memcpy(strings + s_at, ru->strings, ru->n_strings);
            s_at += ru->n_strings;
            size_t olen = br->origin ? strlen(br->origin) : 0;
            memcpy(strings + s_at, br->origin ? br->origin : "", olen);
            recs[r_at] = (sbx_pol_rule_rec){
                .first_op = (uint32_t)o_at, .n_ops = (uint32_t)ru->n_ops,
                .action = ru->ops[ru->n_ops - 1].aux, .source = br->source,
                .origin_off = (uint32_t)s_at, .origin_len = (uint32_t)olen,
            };
            s_at += olen;
            for (size_t k = 0; k < ru->n_ops; k++) {
                sbx_pol_op op = ru->ops[k];
                if (op.opcode == SBX_OP_STRING_MATCH)
                    op.a += base;
                ops[o_at++] = op;
            }
            r_at++;
        }
        if (!keys[s])
            continue;
        /* The index: distinct keys into an open-addressing table (at most
         * half full), each with the ascending list of its rules. */
        const key_ent *ents = keys[s];
        size_t slots = slots_for(n_keys[s]);
        sbx_pol_slot *tab = (sbx_pol_slot *)(void *)(buf + i_at);
        h->services[s].slots_off = (uint32_t)i_at;
        h->services[s].n_slots = (uint32_t)slots;
        i_at += slots * sizeof(sbx_pol_slot);
        uint32_t *lists = (uint32_t *)(void *)(buf + i_at);
        size_t l_at = 0;
        for (size_t i = 0; i < sv->n;) {
            size_t j = i;
            while (j < sv->n && ents[j].len == ents[i].len && !memcmp(ents[j].key, ents[i].key, ents[i].len))
                j++;
            uint32_t hash = sbx_pol_key_hash(ents[i].key, ents[i].len);
            size_t at = hash & (slots - 1);
            while (tab[at].list_n)
                at = (at + 1) & (slots - 1);
            tab[at] = (sbx_pol_slot){ .hash = hash, .key_off = bases[ents[i].rule] + ents[i].key_off,
                                      .key_len = ents[i].len,
                                      .list_off = (uint32_t)(i_at + l_at * sizeof(uint32_t)),
                                      .list_n = (uint32_t)(j - i) };
            for (size_t k = i; k < j; k++)
                lists[l_at++] = ents[k].rule;
            i = j;
        }
        i_at += sv->n * sizeof(uint32_t);
    }
    h->checksum = sbx_pol_checksum(buf, total);
    *size = total;
    *out = sbx_steal_ptr(&buf);
    return 0;
}

/* ---- validator ---- */

static int invalid(const char **why, const char *reason)
{
    if (why)
        *why = reason;
    return SBX_ERROR_BAD_POLICY;
}

/* [off, off + count * elem) inside [0, total)? In 64-bit arithmetic: no
 * overflow with 32-bit inputs. */
static bool in_bounds(uint64_t off, uint64_t count, uint64_t elem, uint64_t total)
{
    return off <= total && count * elem <= total - off;
}

static int check_rule(const unsigned char *buf, const sbx_pol_header *h, const sbx_pol_rule_rec *rec,
                      const char **why)
{
    if (rec->n_ops == 0 || !in_bounds(rec->first_op, rec->n_ops, 1, h->n_ops))
        return invalid(why, "rule opcodes out of range");
    if (!in_bounds(rec->origin_off, rec->origin_len, 1, h->strings_size))
        return invalid(why, "rule origin out of range");
    if (rec->action <= SBX_ACTION_NONE || rec->action >= SBX_ACTION_COUNT_)
        return invalid(why, "unknown action");
    const sbx_pol_op *ops = (const sbx_pol_op *)(const void *)(buf + h->ops_off) + rec->first_op;
    bool in_group = false;
    uint32_t group_len = 0;
    sbx_pol_op group = { 0 };
    for (uint32_t i = 0; i < rec->n_ops; i++) {
        sbx_pol_op op;
        memcpy(&op, &ops[i], sizeof op);
        bool last = i + 1 == rec->n_ops;
        if (op.options & ~SBX_OPT_KNOWN_)
            return invalid(why, "unknown option bits");
        if (op.opcode == SBX_OP_ACTION) {
            if (!last || in_group)
                return invalid(why, "ACTION not at the end of its rule");
            if (op.aux != rec->action || op.param || op.options || op.a || op.b)
                return invalid(why, "ACTION does not match its rule");
            return 0;
        }
        if (last)
            return invalid(why, "rule does not end with ACTION");
        if (op.param >= SBX_POL_MAX_PARAMS)
            return invalid(why, "parameter index out of range");
        switch (op.opcode) {
        case SBX_OP_ALWAYS_FALSE:
        case SBX_OP_ALWAYS_TRUE:
            if (in_group || (op.options & ~(SBX_OPT_OR)) || op.aux || op.a || op.b)
                return invalid(why, "bad constant opcode");
            break;
        case SBX_OP_NUMBER_MATCH:
        case SBX_OP_NUMBER_AND_MATCH:
        case SBX_OP_NUMBER_MATCH_RANGE: {
            if (in_group || (op.options & ~(SBX_OPT_NEGATE | SBX_OPT_OR | SBX_OPT_U64)) || op.aux)
                return invalid(why, "bad number opcode");
            bool wide = op.options & SBX_OPT_U64;
            if (op.opcode == SBX_OP_NUMBER_MATCH_RANGE ? (op.b < op.a || (!wide && op.b > UINT32_MAX))
                                                       : op.b != 0)
                return invalid(why, "bad number operands");
            if (!wide && op.a > UINT32_MAX)
                return invalid(why, "bad number operands");
            break;
        }
        case SBX_OP_STRING_MATCH: {
            uint32_t start = op.aux & 0xff, skip = op.aux >> 8;
            if (start > SBX_START_SEEK_ANY || skip > SBX_POL_MAX_SKIP || (op.options & SBX_OPT_U64))
                return invalid(why, "bad string fragment");
            if (op.a > h->strings_size || !in_bounds(op.a, op.b, 1, h->strings_size))
                return invalid(why, "string fragment out of range");
            bool first = op.options & SBX_OPT_CLEAR_CONTEXT;
            if (first == in_group)
                return invalid(why, "string fragments not grouped");
            const uint16_t same = SBX_OPT_NEGATE | SBX_OPT_OR | SBX_OPT_ICASE;
            if (first) {
                group = op;
                in_group = true;
                group_len = 0;
            } else if (op.param != group.param || (op.options & same) != (group.options & same)) {
                return invalid(why, "string fragments of one pattern disagree");
            }
            if (++group_len > SBX_POL_MAX_FRAGMENTS)
                return invalid(why, "pattern with too many fragments");
            if (op.options & SBX_OPT_MUST_END)
                in_group = false;
            break;
        }
        default:
            return invalid(why, "unknown opcode");
        }
    }
    return invalid(why, "rule does not end with ACTION");
}

int sbx_pol_validate(const void *vbuf, size_t size, const char **why)
{
    const unsigned char *buf = vbuf;
    if (!buf)
        return invalid(why, "no buffer");
    if ((uintptr_t)buf % 8)
        return invalid(why, "buffer not 8-byte aligned");
    if (size < sizeof(sbx_pol_header))
        return invalid(why, "truncated header");
    sbx_pol_header h;
    memcpy(&h, buf, sizeof h);
    if (h.magic != SBX_POL_MAGIC)
        return invalid(why, "bad magic");
    if (h.version != SBX_POL_VERSION)
        return invalid(why, "unknown version");
    if (h.total_size > size || h.total_size < sizeof h || h.total_size > SBX_POL_MAX_SIZE)
        return invalid(why, "truncated or oversized buffer");
    uint64_t total = h.total_size;
    if (sbx_pol_checksum(buf, total) != h.checksum)
        return invalid(why, "checksum mismatch (corrupted)");
    if (h.rules_off % 8 || h.ops_off % 8 || !in_bounds(h.rules_off, h.n_rules, sizeof(sbx_pol_rule_rec), total) ||
        !in_bounds(h.ops_off, h.n_ops, sizeof(sbx_pol_op), total) ||
        !in_bounds(h.strings_off, h.strings_size, 1, total) || !in_bounds(h.index_off, h.index_size, 1, total))
        return invalid(why, "table out of bounds");
    const char *strings = (const char *)buf + h.strings_off;
    const sbx_pol_rule_rec *recs = (const sbx_pol_rule_rec *)(const void *)(buf + h.rules_off);
    const sbx_pol_op *ops = (const sbx_pol_op *)(const void *)(buf + h.ops_off);
    for (uint32_t r = 0; r < h.n_rules; r++) {
        sbx_pol_rule_rec rec;
        memcpy(&rec, &recs[r], sizeof rec);
        int e = check_rule(buf, &h, &rec, why);
        if (e < 0)
            return e;
    }
    for (uint32_t s = 0; s < SBX_POL_MAX_SERVICES; s++) {
        const sbx_pol_service_entry *sv = &h.services[s];
        if (!in_bounds(sv->first_rule, sv->n_rules, 1, h.n_rules))
            return invalid(why, "service rules out of range");
        if (sv->index_param >= SBX_POL_MAX_PARAMS && sv->index_param != SBX_POL_NO_INDEX)
            return invalid(why, "bad index parameter");
        if (sv->reserved)
            return invalid(why, "reserved field set");
        if (!sv->n_slots) {
            if (sv->slots_off)
                return invalid(why, "index offset without index");
            continue;
        }
        /* An index must be sound: every rule of the service listed exactly
         * once, under its own key, reachable by lookup. A forged index
         * could otherwise hide a deny rule. */
        if (sv->index_param == SBX_POL_NO_INDEX || (sv->n_slots & (sv->n_slots - 1)) ||
            sv->slots_off % 4 || sv->slots_off < h.index_off ||
            !in_bounds(sv->slots_off - h.index_off, sv->n_slots, sizeof(sbx_pol_slot), h.index_size))
            return invalid(why, "index table out of bounds");
        const sbx_pol_slot *tab = (const sbx_pol_slot *)(const void *)(buf + sv->slots_off);
        uint32_t mask = sv->n_slots - 1;
        uint64_t listed = 0;
        uint32_t empty = 0;
        for (uint32_t i = 0; i < sv->n_slots; i++) {
            uint32_t n;
            memcpy(&n, &tab[i].list_n, sizeof n);
            empty += !n;
        }
        if (!empty)
            return invalid(why, "index table full");
        for (uint32_t i = 0; i < sv->n_slots; i++) {
            sbx_pol_slot sl;
            memcpy(&sl, &tab[i], sizeof sl);
            if (sl.reserved)
                return invalid(why, "reserved field set");
            if (!sl.list_n) {
                if (sl.hash || sl.key_off || sl.key_len || sl.list_off)
                    return invalid(why, "dirty empty index slot");
                continue;
            }
            if (!in_bounds(sl.key_off, sl.key_len, 1, h.strings_size))
                return invalid(why, "index key out of range");
            if (sbx_pol_key_hash(strings + sl.key_off, sl.key_len) != sl.hash)
                return invalid(why, "index key hash mismatch");
            if (sl.list_off % 4 || sl.list_off < h.index_off ||
                !in_bounds(sl.list_off - h.index_off, sl.list_n, sizeof(uint32_t), h.index_size))
                return invalid(why, "index list out of bounds");
            const uint32_t *list = (const uint32_t *)(const void *)(buf + sl.list_off);
            for (uint32_t k = 0; k < sl.list_n; k++) {
                uint32_t rn;
                memcpy(&rn, &list[k], sizeof rn);
                uint32_t prev = 0;
                if (k)
                    memcpy(&prev, &list[k - 1], sizeof prev);
                if (rn >= sv->n_rules || (k && rn <= prev))
                    return invalid(why, "index list not ascending within the service");
                sbx_pol_rule_rec rec;
                memcpy(&rec, &recs[sv->first_rule + rn], sizeof rec);
                sbx_pol_op op;
                memcpy(&op, &ops[rec.first_op], sizeof op);
                const char *key;
                uint32_t klen = sbx_pol_rule_key(&op, sv->index_param, strings, &key);
                if (klen != sl.key_len || memcmp(key, strings + sl.key_off, klen))
                    return invalid(why, "rule listed under a key that is not its own");
            }
            listed += sl.list_n;
            /* lookup(key) must find this very slot */
            for (uint32_t at = sl.hash & mask;; at = (at + 1) & mask) {
                sbx_pol_slot o;
                memcpy(&o, &tab[at], sizeof o);
                if (!o.list_n)
                    return invalid(why, "index slot unreachable");
                /* `o` may be a slot not checked yet: bound its key first */
                if (!in_bounds(o.key_off, o.key_len, 1, h.strings_size))
                    return invalid(why, "index key out of range");
                if (o.key_len == sl.key_len && !memcmp(strings + o.key_off, strings + sl.key_off, sl.key_len)) {
                    if (at != i)
                        return invalid(why, "duplicate index key");
                    break;
                }
            }
        }
        if (listed != sv->n_rules)
            return invalid(why, "index does not list every rule once");
    }
    return 0;
}
