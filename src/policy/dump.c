/* sbx — a compiled policy as readable opcodes (golden tests, `sbx policy
 * dump`). The format is line-oriented and stable; see docs/policy.md. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sbx/error.h>

#include "policy/engine.h"
#include "policy/format.h"

static const char *const action_names[SBX_ACTION_COUNT_] = {
    [SBX_ACTION_NONE] = "NONE",
    [SBX_ACTION_ASK_BROKER] = "ASK_BROKER",
    [SBX_ACTION_DENY_ACCESS] = "DENY_ACCESS",
    [SBX_ACTION_FAKE_SUCCESS] = "FAKE_SUCCESS",
    [SBX_ACTION_FAKE_ACCESS_DENIED] = "FAKE_ACCESS_DENIED",
    [SBX_ACTION_SIGNAL_ALARM] = "SIGNAL_ALARM",
    [SBX_ACTION_TERMINATE_PROCESS] = "TERMINATE_PROCESS",
    [SBX_ACTION_GIVE_READONLY] = "GIVE_READONLY",
};

SBX_API const char *sbx_action_name(int action)
{
    if (action < 0 || action >= SBX_ACTION_COUNT_)
        return "?";
    return action_names[action];
}

static void put_str(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void put_options(FILE *out, unsigned o)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        { SBX_OPT_NEGATE, "NEGATE" }, { SBX_OPT_OR, "OR" }, { SBX_OPT_CLEAR_CONTEXT, "CLEAR_CONTEXT" },
        { SBX_OPT_ICASE, "ICASE" }, { SBX_OPT_MUST_END, "MUST_END" }, { SBX_OPT_U64, "U64" },
    };
    bool any = false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(o & names[i].bit))
            continue;
        fprintf(out, "%s%s", any ? "," : " [", names[i].name);
        any = true;
    }
    if (any)
        fputc(']', out);
}

int sbx_pol_dump(const void *vbuf, size_t size, const char *const *service_names, size_t n_names,
                 FILE *out)
{
    const char *why = NULL;
    int r = sbx_pol_validate(vbuf, size, &why);
    if (r < 0) {
        fprintf(out, "invalid policy buffer: %s\n", why);
        return r;
    }
    const unsigned char *buf = vbuf;
    const sbx_pol_header *h = (const sbx_pol_header *)vbuf;
    const sbx_pol_rule_rec *recs = (const sbx_pol_rule_rec *)(const void *)(buf + h->rules_off);
    const sbx_pol_op *ops = (const sbx_pol_op *)(const void *)(buf + h->ops_off);
    const char *strings = (const char *)buf + h->strings_off;
    static const char *const starts[] = { "FIXED", "SEEK_COMP", "SEEK_ANY" };
    fprintf(out, "sbx-policy v%" PRIu32 " size=%" PRIu32 " rules=%" PRIu32 " ops=%" PRIu32 "\n",
            h->version, h->total_size, h->n_rules, h->n_ops);
    for (unsigned s = 0; s < SBX_POL_MAX_SERVICES; s++) {
        const sbx_pol_service_entry *sv = &h->services[s];
        if (!sv->n_rules)
            continue;
        const char *name = s < n_names && service_names[s] ? service_names[s] : "-";
        fprintf(out, "service %u %s rules=%" PRIu32, s, name, sv->n_rules);
        if (sv->n_slots) {
            uint32_t keys = 0;
            const sbx_pol_slot *tab = (const sbx_pol_slot *)(const void *)(buf + sv->slots_off);
            for (uint32_t i = 0; i < sv->n_slots; i++)
                keys += tab[i].list_n != 0;
            fprintf(out, " index=p%" PRIu32 " keys=%" PRIu32 " slots=%" PRIu32 "\n", sv->index_param, keys,
                    sv->n_slots);
        } else {
            fprintf(out, " index=none\n");
        }
        for (uint32_t ri = sv->first_rule; ri < sv->first_rule + sv->n_rules; ri++) {
            const sbx_pol_rule_rec *rec = &recs[ri];
            fprintf(out, "  rule %" PRIu32 " source=%" PRIu32 " action=%s origin=", ri, rec->source,
                    sbx_action_name((int)rec->action));
            put_str(out, strings + rec->origin_off, rec->origin_len);
            fputc('\n', out);
            for (uint32_t oi = rec->first_op; oi < rec->first_op + rec->n_ops; oi++) {
                const sbx_pol_op *op = &ops[oi];
                fprintf(out, "    %4" PRIu32 ": ", oi);
                switch (op->opcode) {
                case SBX_OP_ALWAYS_FALSE: fprintf(out, "ALWAYS_FALSE"); break;
                case SBX_OP_ALWAYS_TRUE: fprintf(out, "ALWAYS_TRUE"); break;
                case SBX_OP_NUMBER_MATCH:
                    fprintf(out, "NUMBER_MATCH p%u == 0x%" PRIx64, op->param, op->a);
                    break;
                case SBX_OP_NUMBER_AND_MATCH:
                    fprintf(out, "NUMBER_AND_MATCH p%u & 0x%" PRIx64, op->param, op->a);
                    break;
                case SBX_OP_NUMBER_MATCH_RANGE:
                    fprintf(out, "NUMBER_MATCH_RANGE p%u in [0x%" PRIx64 ", 0x%" PRIx64 "]", op->param, op->a,
                            op->b);
                    break;
                case SBX_OP_STRING_MATCH:
                    fprintf(out, "STRING_MATCH p%u %s skip=%" PRIu32 " ", op->param, starts[op->aux & 0xff],
                            op->aux >> 8);
                    put_str(out, strings + op->a, (size_t)op->b);
                    break;
                case SBX_OP_ACTION: fprintf(out, "ACTION %s", sbx_action_name((int)op->aux)); break;
                default: fprintf(out, "?"); break;
                }
                put_options(out, op->options);
                fputc('\n', out);
            }
        }
    }
    return 0;
}
