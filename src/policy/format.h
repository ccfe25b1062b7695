/* sbx internal — the compiled policy buffer's layout (docs/policy.md).
 * Shared by the builder, the validator, the evaluator and the dumper only.
 * All offsets are from the start of the buffer; all fields are native
 * endian (the buffer never leaves the machine). The buffer must be 8-byte
 * aligned. */
#ifndef SBX_POLICY_FORMAT_H
#define SBX_POLICY_FORMAT_H

#include <stdint.h>
#include <string.h>

#include "policy/engine.h"

#define SBX_POL_MAGIC 0x50584253u /* "SBXP" */
#define SBX_POL_VERSION 1u
#define SBX_POL_MAX_SIZE (256u << 20) /* about 200,000 files rules */

typedef struct sbx_pol_service_entry {
    uint32_t first_rule; /* index into the rule table */
    uint32_t n_rules;
    uint32_t index_param; /* SBX_POL_NO_INDEX when not indexed */
    uint32_t slots_off;   /* absolute offset of n_slots sbx_pol_slot */
    uint32_t n_slots;     /* 0 or a power of two */
    uint32_t reserved;
} sbx_pol_service_entry;

typedef struct sbx_pol_header {
    uint32_t magic;
    uint32_t version;
    uint32_t total_size;
    uint32_t checksum; /* FNV-1a over the buffer with this field taken as 0 */
    uint32_t n_rules, rules_off;
    uint32_t n_ops, ops_off;
    uint32_t strings_off, strings_size;
    uint32_t index_off, index_size;
    sbx_pol_service_entry services[SBX_POL_MAX_SERVICES];
} sbx_pol_header;

typedef struct sbx_pol_rule_rec {
    uint32_t first_op; /* index into the opcode table */
    uint32_t n_ops;    /* >= 1, the last one is ACTION */
    uint32_t action;
    uint32_t source;
    uint32_t origin_off; /* relative to strings_off */
    uint32_t origin_len;
} sbx_pol_rule_rec;

/* One slot of a service's open-addressing hash table of literal
 * directory prefixes. list_n == 0 marks an empty slot. */
typedef struct sbx_pol_slot {
    uint32_t hash;
    uint32_t key_off; /* relative to strings_off */
    uint32_t key_len;
    uint32_t list_off; /* absolute offset of list_n u32 rule numbers, ascending, relative to the service's first_rule */
    uint32_t list_n;
    uint32_t reserved;
} sbx_pol_slot;

#define SBX_POL_FNV_INIT 2166136261u
static inline uint32_t sbx_pol_fnv_step(uint32_t h, unsigned char c)
{
    return (h ^ c) * 16777619u;
}
/* The index key hash. A key is "" or a directory prefix ending in '/'; it
 * is hashed segment by segment (each segment runs up to and including a
 * '/'), eight bytes at a time, so the evaluator gets the hash of every
 * directory prefix of a path in one pass at a fraction of a byte-wise
 * hash's cost. sbx_pol_key_state() is the running state, sbx_pol_key_final
 * the slot hash. */
#define SBX_POL_KEY_SEED 0x6a09e667f3bcc908ull
static inline uint64_t sbx_pol_key_segment(uint64_t h, const char *s, size_t n)
{
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)n << 56;
    while (n >= 8) {
        uint64_t x;
        memcpy(&x, s, 8);
        h = (h ^ x) * k;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)(unsigned char)s[i] << (8 * i);
    h = (h ^ x) * k;
    return h ^ (h >> 32);
}
static inline uint32_t sbx_pol_key_final(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}
static inline uint32_t sbx_pol_key_hash(const char *s, size_t n)
{
    uint64_t h = SBX_POL_KEY_SEED;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '/')
            continue;
        h = sbx_pol_key_segment(h, s + start, i + 1 - start);
        start = i + 1;
    }
    if (start < n) /* never for a real key; keeps the function total */
        h = sbx_pol_key_segment(h, s + start, n - start);
    return sbx_pol_key_final(h);
}

uint32_t sbx_pol_checksum(const void *buf, size_t size);

/* The index key of a rule (see docs/policy.md): if `op` (the rule's first
 * opcode) is a plain anchored fragment on `index_param`, the fragment's text
 * up to and including its last '/'; else the empty key. Sets *key to a
 * pointer into `strings` (which must hold [op->a, op->a + op->b), checked
 * by the caller) and returns the length. */
static inline uint32_t sbx_pol_rule_key(const sbx_pol_op *op, uint32_t index_param,
                                        const char *strings, const char **key)
{
    *key = strings;
    if (index_param == SBX_POL_NO_INDEX || op->opcode != SBX_OP_STRING_MATCH ||
        op->param != index_param ||
        (op->options & (SBX_OPT_NEGATE | SBX_OPT_OR | SBX_OPT_ICASE)) ||
        !(op->options & SBX_OPT_CLEAR_CONTEXT) || op->aux != SBX_START_FIXED)
        return 0;
    const char *t = strings + op->a;
    uint32_t n = (uint32_t)op->b;
    while (n > 0 && t[n - 1] != '/')
        n--;
    *key = t;
    return n;
}

#endif
