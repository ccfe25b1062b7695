/* Fuzz the buffer validator and the evaluator: a target's copy of the
 * policy is hostile input. First byte: bit 0 set = recompute the checksum
 * after the bytes are taken (so mutations reach the structural checks
 * instead of stopping at the checksum). Every input is also evaluated
 * whether or not it validated: the evaluator must be safe on anything. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>
#include <sbx/policy.h>

#include "policy/compile.h"
#include "policy/engine.h"
#include "policy/format.h"
#include "subsys/files/files_policy.h"

static const char *const paths[] = { "/home/a/.ssh/id", "/usr/lib/libc.so.6", "/tmp/out/x", "/", "/etc/passwd",
                                     "/srv/abc/d/e/f/g/h" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool fix = data[0] & 1;
    size_t n = size - 1;
    /* exact-size (rounded to 8) aligned copy */
    unsigned char *buf = aligned_alloc(8, n ? (n + 7) / 8 * 8 : 8);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, n);
    if (fix && n >= sizeof(sbx_pol_header)) {
        sbx_pol_header h;
        memcpy(&h, buf, sizeof h);
        if (h.total_size <= n) {
            h.checksum = sbx_pol_checksum(buf, h.total_size);
            memcpy(buf, &h, sizeof h);
        }
    }
    int valid = sbx_pol_validate(buf, n, NULL);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        for (int op = 1; op < SBX_FILES_OP_COUNT_; op++) {
            sbx_files_request req = { .op = (sbx_files_op)op, .path = paths[i], .open_flags = (int)i, .is_dir = i & 1 };
            sbx_files_verdict v;
            (void)sbx_files_policy_eval(buf, n, &req, &v);
            sbx_pol_param p[SBX_FILES_P_COUNT];
            sbx_files_policy_params(&req, p);
            (void)sbx_pol_evaluate(buf, n, (unsigned)op, p, SBX_FILES_P_COUNT, SBX_EVAL_LINEAR);
        }
    }
    if (valid == 0) {
        FILE *f = fopen("/dev/null", "w");
        if (f) {
            if (sbx_pol_dump(buf, n, sbx_files_service_names, SBX_FILES_OP_COUNT_, f) != 0)
                abort(); /* a validated buffer must dump */
            fclose(f);
        }
    }
    free(buf);
    return 0;
}

/* Valid compiled policies of a few shapes, prefixed with the fix-checksum
 * flag so that the driver's mutations are structural. */
size_t sbx_fuzz_seed(unsigned index, uint8_t *out, size_t cap)
{
    static const char *const pats[] = { "/home/*/.ssh/**", "/usr/**", "/etc/passwd", "/tmp/out/**",
                                        "/srv/a?c/**", "/**.so", "/x\\*y", "/" };
    sbx_policy *p = sbx_policy_new();
    if (!p)
        return 0;
    unsigned n = 1 + index % 8;
    for (unsigned i = 0; i < n; i++)
        sbx_policy_add_rule(p, SBX_SUBSYS_FILES, 1 + (int)((index + i) % 5), pats[(index + i) % 8]);
    void *buf;
    size_t size;
    size_t r = 0;
    if (sbx_policy_compile(p, &buf, &size, NULL) == 0) {
        if (size + 1 <= cap) {
            out[0] = 1;
            memcpy(out + 1, buf, size);
            r = size + 1;
        }
        free(buf);
    }
    sbx_policy_unref(p);
    return r;
}
