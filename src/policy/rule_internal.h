/* sbx internal — the rule builder's storage, seen by the low-level
 * policy builder (buffer.c) only. */
#ifndef SBX_POLICY_RULE_INTERNAL_H
#define SBX_POLICY_RULE_INTERNAL_H

#include "policy/engine.h"

struct sbx_pol_rule {
    sbx_pol_op *ops; /* string offsets (a) are relative to `strings` */
    size_t n_ops, max_ops;
    char *strings;
    size_t n_strings, max_strings;
    bool done;
};

#endif
