/* sbx — the rule builder (the seed's PolicyRule): terms appended as
 * opcodes into a fixed-capacity array, closed by an ACTION. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>

#include "base/cleanup.h"
#include "policy/engine.h"
#include "policy/rule_internal.h"

sbx_pol_param sbx_pol_str(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return (sbx_pol_param){ .type = SBX_PTYPE_STRING, .len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n, .str = s };
}

sbx_pol_rule *sbx_pol_rule_new(size_t max_ops, size_t max_strings)
{
    if (!max_ops)
        max_ops = SBX_POL_RULE_MAX_OPS;
    if (!max_strings)
        max_strings = SBX_POL_RULE_MAX_STRINGS;
    SBX_AUTOFREE sbx_pol_rule *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->ops = calloc(max_ops, sizeof *r->ops);
    r->strings = malloc(max_strings);
    if (!r->ops || !r->strings) {
        free(r->ops);
        free(r->strings);
        return NULL;
    }
    r->max_ops = max_ops;
    r->max_strings = max_strings;
    return sbx_steal_ptr(&r);
}

void sbx_pol_rule_free(sbx_pol_rule *rule)
{
    if (!rule)
        return;
    free(rule->ops);
    free(rule->strings);
    free(rule);
}

sbx_pol_rule *sbx_pol_rule_copy(const sbx_pol_rule *rule)
{
    if (!rule)
        return NULL;
    sbx_pol_rule *c = sbx_pol_rule_new(rule->max_ops, rule->max_strings);
    if (!c)
        return NULL;
    memcpy(c->ops, rule->ops, rule->n_ops * sizeof *rule->ops);
    memcpy(c->strings, rule->strings, rule->n_strings);
    c->n_ops = rule->n_ops;
    c->n_strings = rule->n_strings;
    c->done = rule->done;
    return c;
}

bool sbx_pol_rule_is_done(const sbx_pol_rule *rule)
{
    return rule && rule->done;
}

size_t sbx_pol_rule_op_count(const sbx_pol_rule *rule)
{
    return rule ? rule->n_ops : 0;
}

/* Room for `ops` more opcodes, keeping one for the ACTION. */
static bool room(const sbx_pol_rule *r, size_t ops, size_t strings)
{
    return r->n_ops + ops + 1 <= r->max_ops && r->n_strings + strings <= r->max_strings;
}

static uint16_t term_options(sbx_pol_cond cond, unsigned options)
{
    uint16_t o = 0;
    if (cond == SBX_IF_NOT)
        o |= SBX_OPT_NEGATE;
    if (options & SBX_MATCH_OR)
        o |= SBX_OPT_OR;
    return o;
}

int sbx_pol_rule_add_string(sbx_pol_rule *rule, sbx_pol_cond cond, unsigned param,
                            const char *pattern, unsigned options, sbx_policy_error *err)
{
    if (!rule || param >= SBX_POL_MAX_PARAMS || (cond != SBX_IF && cond != SBX_IF_NOT) ||
        (options & ~(SBX_MATCH_ICASE | SBX_MATCH_OR)))
        return -EINVAL;
    if (rule->done)
        return SBX_ERROR_WRONG_STATE;
    sbx_pattern_frag frags[SBX_POL_RULE_MAX_OPS];
    size_t max_frags = rule->max_ops > rule->n_ops + 1 ? rule->max_ops - rule->n_ops - 1 : 0;
    if (max_frags > SBX_ARRAY_SIZE(frags))
        max_frags = SBX_ARRAY_SIZE(frags);
    size_t text_len = 0;
    int nf = sbx_pattern_compile(pattern, frags, max_frags, rule->strings + rule->n_strings,
                                 rule->max_strings - rule->n_strings, &text_len, err);
    if (nf < 0)
        return nf;
    if (!room(rule, (size_t)nf, text_len))
        return SBX_ERROR_NO_SPACE;
    uint16_t base = term_options(cond, options);
    if (options & SBX_MATCH_ICASE)
        base |= SBX_OPT_ICASE;
    for (int i = 0; i < nf; i++) {
        uint16_t o = base;
        if (i == 0)
            o |= SBX_OPT_CLEAR_CONTEXT;
        if (i == nf - 1)
            o |= SBX_OPT_MUST_END;
        rule->ops[rule->n_ops + (size_t)i] = (sbx_pol_op){
            .opcode = SBX_OP_STRING_MATCH,
            .param = (uint8_t)param,
            .options = o,
            .aux = frags[i].start | frags[i].skip << 8,
            .a = rule->n_strings + frags[i].off,
            .b = frags[i].len,
        };
    }
    rule->n_ops += (size_t)nf;
    rule->n_strings += text_len;
    return 0;
}

int sbx_pol_rule_add_number(sbx_pol_rule *rule, sbx_pol_cond cond, unsigned param,
                            uint64_t value, uint64_t hi, sbx_pol_nmatch how, unsigned options)
{
    if (!rule || param >= SBX_POL_MAX_PARAMS || (cond != SBX_IF && cond != SBX_IF_NOT) ||
        (options & ~(SBX_MATCH_U64 | SBX_MATCH_OR)))
        return -EINVAL;
    uint8_t opcode;
    switch (how) {
    case SBX_NM_EQUAL: opcode = SBX_OP_NUMBER_MATCH; break;
    case SBX_NM_AND: opcode = SBX_OP_NUMBER_AND_MATCH; break;
    case SBX_NM_RANGE: opcode = SBX_OP_NUMBER_MATCH_RANGE; break;
    default: return -EINVAL;
    }
    if (how == SBX_NM_RANGE && hi < value)
        return -EINVAL;
    if (!(options & SBX_MATCH_U64) && (value > UINT32_MAX || (how == SBX_NM_RANGE && hi > UINT32_MAX)))
        return -EINVAL;
    if (rule->done)
        return SBX_ERROR_WRONG_STATE;
    if (!room(rule, 1, 0))
        return SBX_ERROR_NO_SPACE;
    uint16_t o = term_options(cond, options);
    if (options & SBX_MATCH_U64)
        o |= SBX_OPT_U64;
    rule->ops[rule->n_ops++] = (sbx_pol_op){
        .opcode = opcode, .param = (uint8_t)param, .options = o, .a = value,
        .b = how == SBX_NM_RANGE ? hi : 0,
    };
    return 0;
}

int sbx_pol_rule_add_const(sbx_pol_rule *rule, bool value, unsigned options)
{
    if (!rule || (options & ~SBX_MATCH_OR))
        return -EINVAL;
    if (rule->done)
        return SBX_ERROR_WRONG_STATE;
    if (!room(rule, 1, 0))
        return SBX_ERROR_NO_SPACE;
    rule->ops[rule->n_ops++] = (sbx_pol_op){
        .opcode = value ? SBX_OP_ALWAYS_TRUE : SBX_OP_ALWAYS_FALSE,
        .options = term_options(SBX_IF, options),
    };
    return 0;
}

int sbx_pol_rule_done(sbx_pol_rule *rule, sbx_action action)
{
    if (!rule || action <= SBX_ACTION_NONE || action >= SBX_ACTION_COUNT_)
        return -EINVAL;
    if (rule->done)
        return 0; /* harmless: the first action stays */
    /* An OR chain cannot end the rule: the last term stands alone. */
    for (size_t i = rule->n_ops; i > 0; i--) {
        sbx_pol_op *op = &rule->ops[i - 1];
        op->options &= (uint16_t)~SBX_OPT_OR;
        if (op->opcode != SBX_OP_STRING_MATCH || (op->options & SBX_OPT_CLEAR_CONTEXT))
            break;
    }
    /* room() always kept a slot for this. */
    rule->ops[rule->n_ops++] = (sbx_pol_op){ .opcode = SBX_OP_ACTION, .aux = (uint32_t)action };
    rule->done = true;
    return 0;
}
