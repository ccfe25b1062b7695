/* sbx internal — compiling an sbx_policy's high-level rules into the
 * low-level buffer that the broker keeps privately and writes into each
 * target's shared section (read-only there). */
#ifndef SBX_POLICY_COMPILE_H
#define SBX_POLICY_COMPILE_H

#include <stddef.h>

#include <sbx/policy.h>

/* Compile every rule of `policy`: deny rules first, then allows, each in
 * add order; files services indexed by path prefix. *buf (malloc'ed,
 * 8-aligned, immutable by convention; caller frees) and *size receive the
 * buffer, which passes sbx_pol_validate. Returns 0, -EINVAL, -ENOMEM,
 * SBX_ERROR_TOO_LARGE or SBX_ERROR_BAD_PATTERN (err filled, may be NULL).
 * Does not freeze the policy and does not touch its cache. Thread-safe on
 * a frozen policy. */
int sbx_policy_compile(const sbx_policy *policy, void **buf, size_t *size, sbx_policy_error *err);

#endif
