/* sbx internal — the low-level policy engine (the seed's PolicyRule,
 * LowLevelPolicy and PolicyProcessor).
 *
 * A rule is a list of opcodes ending in ACTION. Rules are grouped per
 * service (a number below SBX_POL_MAX_SERVICES, e.g. a files operation) and
 * compiled into ONE immutable, position-independent buffer: a header, the
 * per-service entries, a rule table, the opcodes, a prefix index and a
 * string pool, all located by offsets from the start of the buffer. No
 * pointers and no function pointers are stored. The buffer may reach a
 * target (read-only) and come back forged: sbx_pol_validate refuses a bad
 * buffer up front, and sbx_pol_evaluate is bounds-checked on every read so
 * even an unvalidated buffer cannot make it read out of bounds or loop
 * without bound. Evaluation allocates nothing and takes no lock: it is
 * async-signal-safe (the trap backend's pre-check runs in a SIGSYS handler;
 * it needs about 4 KiB of stack).
 * Buffer layout: docs/policy.md. */
#ifndef SBX_POLICY_ENGINE_H
#define SBX_POLICY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sbx/policy.h>

/* ---- opcodes ---- */

typedef enum sbx_pol_opcode {
    SBX_OP_ALWAYS_FALSE = 1,
    SBX_OP_ALWAYS_TRUE = 2,
    SBX_OP_NUMBER_MATCH = 3,       /* param == a */
    SBX_OP_NUMBER_MATCH_RANGE = 4, /* a <= param <= b */
    SBX_OP_NUMBER_AND_MATCH = 5,   /* (param & a) != 0 */
    SBX_OP_STRING_MATCH = 6,       /* one fragment of a pattern, see below */
    SBX_OP_ACTION = 7,             /* aux = sbx_action; always last in a rule */
    SBX_OP_COUNT_ = 8
} sbx_pol_opcode;

/* Options (sbx_pol_op.options). */
#define SBX_OPT_NEGATE 0x0001u        /* IF_NOT: the term's result is inverted */
#define SBX_OPT_OR 0x0002u            /* this term is OR'ed with the next one */
#define SBX_OPT_CLEAR_CONTEXT 0x0004u /* reset the match context: first fragment of a pattern */
#define SBX_OPT_ICASE 0x0008u         /* STRING_MATCH: ASCII case-insensitive */
#define SBX_OPT_MUST_END 0x0010u      /* STRING_MATCH: last fragment, must end at end of input */
#define SBX_OPT_U64 0x0020u           /* NUMBER_*: the parameter is a u64 (else u32) */
#define SBX_OPT_KNOWN_ 0x003fu

/* Where a STRING_MATCH fragment may start, relative to the context's
 * position after `skip` single characters (each '?', none of them '/'). */
typedef enum sbx_pol_start {
    SBX_START_FIXED = 0,     /* exactly there */
    SBX_START_SEEK_COMP = 1, /* '*': further on, skipping no '/' */
    SBX_START_SEEK_ANY = 2,  /* '**': anywhere further on */
} sbx_pol_start;

/* One opcode, 24 bytes. STRING_MATCH: aux = start | skip << 8, a = string
 * offset in the pool, b = length. NUMBER_*: a = value / mask / low bound,
 * b = high bound. ACTION: aux = action. */
typedef struct sbx_pol_op {
    uint8_t opcode;
    uint8_t param;    /* index into the parameter set */
    uint16_t options; /* SBX_OPT_* */
    uint32_t aux;
    uint64_t a;
    uint64_t b;
} sbx_pol_op;

#define SBX_POL_MAX_PARAMS 9
#define SBX_POL_MAX_FRAGMENTS 64 /* STRING_MATCH fragments of one pattern */
#define SBX_POL_MAX_SERVICES 32
#define SBX_POL_MAX_SKIP 4095
#define SBX_POL_MAX_STRING 4095 /* longest parameter string the engine matches */

/* ---- parameters (the seed's ParameterSet / CountedParameterSet) ---- */

typedef enum sbx_pol_ptype {
    SBX_PTYPE_NONE = 0, /* absent */
    SBX_PTYPE_U32 = 1,
    SBX_PTYPE_U64 = 2,
    SBX_PTYPE_STRING = 3,
} sbx_pol_ptype;

typedef struct sbx_pol_param {
    uint32_t type; /* sbx_pol_ptype */
    uint32_t len;  /* STRING: length in bytes (no NUL needed) */
    uint64_t num;  /* U32 / U64 */
    const char *str;
} sbx_pol_param;

static inline sbx_pol_param sbx_pol_u32(uint32_t v)
{
    return (sbx_pol_param){ .type = SBX_PTYPE_U32, .num = v };
}
static inline sbx_pol_param sbx_pol_u64(uint64_t v)
{
    return (sbx_pol_param){ .type = SBX_PTYPE_U64, .num = v };
}
sbx_pol_param sbx_pol_str(const char *s);

/* ---- rule builder (the seed's PolicyRule) ---- */

typedef struct sbx_pol_rule sbx_pol_rule;

#define SBX_POL_RULE_MAX_OPS 64
#define SBX_POL_RULE_MAX_STRINGS 8192

typedef enum sbx_pol_cond { SBX_IF = 0, SBX_IF_NOT = 1 } sbx_pol_cond;
typedef enum sbx_pol_nmatch { SBX_NM_EQUAL = 0, SBX_NM_AND = 1, SBX_NM_RANGE = 2 } sbx_pol_nmatch;
/* Options for the add functions. */
#define SBX_MATCH_ICASE 0x1u /* string: case-insensitive (ASCII) */
#define SBX_MATCH_OR 0x2u    /* OR this term with the next one */
#define SBX_MATCH_U64 0x4u   /* number: the parameter is a u64 */

/* A new empty rule with room for `max_ops` opcodes (0: SBX_POL_RULE_MAX_OPS)
 * and `max_strings` pool bytes (0: SBX_POL_RULE_MAX_STRINGS). NULL on OOM.
 * The caller owns it (sbx_pol_rule_free). */
sbx_pol_rule *sbx_pol_rule_new(size_t max_ops, size_t max_strings);
void sbx_pol_rule_free(sbx_pol_rule *rule);
/* An independent deep copy, or NULL. */
sbx_pol_rule *sbx_pol_rule_copy(const sbx_pol_rule *rule);
/* Add a path-pattern match on string parameter `param`. Fails with
 * SBX_ERROR_BAD_PATTERN (err filled), SBX_ERROR_NO_SPACE (capacity; the
 * rule is unchanged), SBX_ERROR_WRONG_STATE (after done) or -EINVAL. */
int sbx_pol_rule_add_string(sbx_pol_rule *rule, sbx_pol_cond cond, unsigned param,
                            const char *pattern, unsigned options, sbx_policy_error *err);
/* Add a number match. RANGE: lo <= x <= hi (hi ignored otherwise). */
int sbx_pol_rule_add_number(sbx_pol_rule *rule, sbx_pol_cond cond, unsigned param,
                            uint64_t value, uint64_t hi, sbx_pol_nmatch how, unsigned options);
/* Add ALWAYS_TRUE / ALWAYS_FALSE. */
int sbx_pol_rule_add_const(sbx_pol_rule *rule, bool value, unsigned options);
/* Close the rule with its action. A second call is harmless (returns 0 and
 * keeps the first action). */
int sbx_pol_rule_done(sbx_pol_rule *rule, sbx_action action);
bool sbx_pol_rule_is_done(const sbx_pol_rule *rule);
size_t sbx_pol_rule_op_count(const sbx_pol_rule *rule);

/* ---- low-level policy (the seed's LowLevelPolicy) ---- */

typedef struct sbx_pol_builder sbx_pol_builder;

sbx_pol_builder *sbx_pol_builder_new(void);
void sbx_pol_builder_free(sbx_pol_builder *b);
/* Name the string parameter used to index a service's rules by their
 * literal prefix (SBX_POL_NO_INDEX: none, the default). */
#define SBX_POL_NO_INDEX 0xffu
int sbx_pol_builder_set_index_param(sbx_pol_builder *b, unsigned service, unsigned param);
/* Append a copy of a done rule to `service`; the service's rules are
 * evaluated in append order, first match wins. `source` is a caller's id
 * for the rule (e.g. its index in the sbx_policy) and `origin` (may be
 * NULL) its explanation text; both are stored in the buffer. */
int sbx_pol_builder_add(sbx_pol_builder *b, unsigned service, const sbx_pol_rule *rule,
                        uint32_t source, const char *origin);
/* Produce the buffer: *out is malloc'ed (8-aligned; caller frees), *size
 * its length. Returns 0, -ENOMEM or SBX_ERROR_TOO_LARGE. */
int sbx_pol_builder_finish(const sbx_pol_builder *b, void **out, size_t *size);

/* ---- validator and evaluator (the seed's PolicyProcessor) ---- */

/* Check a whole buffer before any use: magic, version, sizes, every offset
 * and length, every opcode, every index list. 0 or SBX_ERROR_BAD_POLICY
 * (`why`, if not NULL, gets a static reason). Never reads outside
 * [buf, buf+size). Async-signal-safe. */
int sbx_pol_validate(const void *buf, size_t size, const char **why);

typedef enum sbx_pol_status {
    SBX_POL_NO_MATCH = 0,
    SBX_POL_MATCH = 1,
    SBX_POL_ERROR = -1,
} sbx_pol_status;

typedef struct sbx_pol_result {
    int status;       /* sbx_pol_status */
    uint32_t action;  /* MATCH: the rule's sbx_action */
    uint32_t rule;    /* MATCH: index in the buffer's rule table */
    uint32_t source;  /* MATCH: the rule's caller id */
    const char *origin; /* MATCH: points into the buffer, NOT NUL-terminated; may be NULL */
    uint32_t origin_len;
    uint32_t evaluated; /* rules evaluated (for tests and benchmarks) */
} sbx_pol_result;

/* Evaluate `service`'s rules against params[0..count): the first rule whose
 * terms all hold decides. Works on any buffer (checked on every read): a
 * malformed one gives ERROR, never a crash. A parameter of the wrong type
 * is an ERROR; an absent one (index >= count or type NONE), or an empty
 * string, makes the term false whatever its NEGATE. flags: SBX_EVAL_LINEAR
 * ignores the prefix index (same answer, for comparison). */
#define SBX_EVAL_LINEAR 0x1u
sbx_pol_result sbx_pol_evaluate(const void *buf, size_t size, unsigned service,
                                const sbx_pol_param *params, size_t count, unsigned flags);

/* Print the buffer as readable opcodes. `service_names` (may be NULL)
 * gives a name per service number (NULL entries allowed). Returns 0 or
 * SBX_ERROR_BAD_POLICY (the buffer is validated first). */
int sbx_pol_dump(const void *buf, size_t size, const char *const *service_names,
                 size_t n_names, FILE *out);

/* ---- pattern compiler (also used by the validator of rules) ---- */

/* 0 or SBX_ERROR_BAD_PATTERN with err filled (column is 1-based). */
int sbx_pattern_check(const char *pattern, sbx_policy_error *err);

typedef struct sbx_pattern_frag {
    uint32_t start; /* sbx_pol_start */
    uint32_t skip;  /* '?' count before the fragment */
    uint32_t off;   /* into the literal text produced */
    uint32_t len;
} sbx_pattern_frag;

/* Compile a checked pattern into fragments (the last one ends at the end
 * of input) over `text` (escapes resolved). frags/text are caller arrays
 * of max_frags / text_cap. Returns the number of fragments, or
 * SBX_ERROR_BAD_PATTERN / SBX_ERROR_NO_SPACE. */
int sbx_pattern_compile(const char *pattern, sbx_pattern_frag *frags, size_t max_frags,
                        char *text, size_t text_cap, size_t *text_len, sbx_policy_error *err);

#endif
