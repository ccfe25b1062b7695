/* Fuzz the policy-language parser: any bytes must give 0 or a clean error
 * with a one-line report, and a failed load must leave the policy as it
 * was (checked through the rule count). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/policyfile.h>

#include "policy/policy_object.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t sbx_fuzz_seed(unsigned index, uint8_t *buf, size_t cap);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sbx_policy *p = sbx_policy_new();
    if (!p)
        return 0;
    /* One rule beforehand, so "unchanged on error" is observable. */
    sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_QUERY, "/before");
    const sbx_policy_vars vars = { .home = "/home/u", .cwd = "/w", .scratch = "/s", .uid = "1000" };
    sbx_policyfile_error err;
    /* A name in a missing directory: relative includes cannot reach files. */
    int r = sbx_policy_load_string(p, (const char *)data, size, "/nonexistent-sbx-fuzz/f.policy",
                                   &vars, &err);
    if (r != 0) {
        if (err.code != r || p->n_rules != 1 || strchr(err.formatted, '\n'))
            abort();
    }
    sbx_policy_unref(p);
    return 0;
}

size_t sbx_fuzz_seed(unsigned index, uint8_t *buf, size_t cap)
{
    const char *const *names = sbx_profile_names();
    size_t n = 0;
    while (names[n])
        n++;
    const char *text = sbx_profile_text(names[index % n]);
    size_t len = strlen(text);
    if (len > cap)
        len = cap;
    memcpy(buf, text, len);
    return len;
}
