/* The low-level engine: the seed's PolicyRule / LowLevelPolicy /
 * PolicyProcessor behaviours, the buffer validator against truncation and
 * corruption, and the prefix index against the linear scan. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>

#include "policy/engine.h"
#include "policy/format.h"

typedef struct built {
    void *buf;
    size_t size;
} built;

static sbx_pol_rule *str_rule(const char *pat, sbx_pol_cond cond, sbx_action action)
{
    sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
    cr_assert_not_null(r);
    cr_assert_eq(sbx_pol_rule_add_string(r, cond, 0, pat, 0, NULL), 0, "%s", pat);
    cr_assert_eq(sbx_pol_rule_done(r, action), 0);
    return r;
}

static built build1(unsigned service, sbx_pol_rule **rules, size_t n, bool index)
{
    sbx_pol_builder *b = sbx_pol_builder_new();
    if (index)
        cr_assert_eq(sbx_pol_builder_set_index_param(b, service, 0), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(sbx_pol_builder_add(b, service, rules[i], (uint32_t)i, "origin"), 0);
    built out;
    cr_assert_eq(sbx_pol_builder_finish(b, &out.buf, &out.size), 0);
    const char *why = NULL;
    cr_assert_eq(sbx_pol_validate(out.buf, out.size, &why), 0, "%s", why);
    sbx_pol_builder_free(b);
    return out;
}

static sbx_pol_result eval_str(const built *bt, unsigned service, const char *s)
{
    sbx_pol_param p = sbx_pol_str(s);
    return sbx_pol_evaluate(bt->buf, bt->size, service, &p, 1, 0);
}

Test(engine, first_matching_rule_wins)
{
    sbx_pol_rule *r[3] = {
        str_rule("/a/b", SBX_IF, SBX_ACTION_FAKE_SUCCESS),
        str_rule("/a/**", SBX_IF, SBX_ACTION_DENY_ACCESS),
        str_rule("/**", SBX_IF, SBX_ACTION_ASK_BROKER),
    };
    built bt = build1(2, r, 3, false);
    sbx_pol_result res = eval_str(&bt, 2, "/a/b");
    cr_expect_eq(res.status, SBX_POL_MATCH);
    cr_expect_eq(res.action, SBX_ACTION_FAKE_SUCCESS);
    cr_expect_eq(res.source, 0);
    cr_expect_eq(res.origin_len, 6);
    cr_expect_eq(memcmp(res.origin, "origin", 6), 0);
    res = eval_str(&bt, 2, "/a/c");
    cr_expect_eq(res.action, SBX_ACTION_DENY_ACCESS);
    cr_expect_eq(res.source, 1);
    res = eval_str(&bt, 2, "/b");
    cr_expect_eq(res.action, SBX_ACTION_ASK_BROKER);
    cr_expect_eq(res.source, 2);
    /* another service has no rules */
    cr_expect_eq(eval_str(&bt, 3, "/a/b").status, SBX_POL_NO_MATCH);
    cr_expect_eq(eval_str(&bt, SBX_POL_MAX_SERVICES, "/a/b").status, SBX_POL_ERROR);
    free(bt.buf);
    for (int i = 0; i < 3; i++)
        sbx_pol_rule_free(r[i]);
}

Test(engine, if_not_with_wildcards_negates_the_whole_pattern)
{
    sbx_pol_rule *r = str_rule("/usr/*/lib*", SBX_IF_NOT, SBX_ACTION_DENY_ACCESS);
    built bt = build1(1, &r, 1, false);
    cr_expect_eq(eval_str(&bt, 1, "/usr/local/libfoo").status, SBX_POL_NO_MATCH);
    cr_expect_eq(eval_str(&bt, 1, "/usr/local/lib").status, SBX_POL_NO_MATCH);
    cr_expect_eq(eval_str(&bt, 1, "/usr/local/bin").status, SBX_POL_MATCH);
    cr_expect_eq(eval_str(&bt, 1, "/usr/a/b/libfoo").status, SBX_POL_MATCH);
    cr_expect_eq(eval_str(&bt, 1, "/etc").status, SBX_POL_MATCH);
    free(bt.buf);
    sbx_pol_rule_free(r);
}

Test(engine, empty_input_matches_nothing_even_negated)
{
    sbx_pol_rule *r[2] = { str_rule("/**", SBX_IF, SBX_ACTION_ASK_BROKER),
                           str_rule("/x", SBX_IF_NOT, SBX_ACTION_DENY_ACCESS) };
    built bt = build1(1, r, 2, false);
    cr_expect_eq(eval_str(&bt, 1, "").status, SBX_POL_NO_MATCH);
    free(bt.buf);
    sbx_pol_rule_free(r[0]);
    sbx_pol_rule_free(r[1]);
}

Test(engine, absent_parameter_is_no_match_and_wrong_type_is_error)
{
    sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
    cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/**", 0, NULL), 0);
    cr_assert_eq(sbx_pol_rule_add_number(r, SBX_IF_NOT, 3, 1, 0, SBX_NM_EQUAL, 0), 0);
    cr_assert_eq(sbx_pol_rule_done(r, SBX_ACTION_ASK_BROKER), 0);
    built bt = build1(1, &r, 1, false);
    sbx_pol_param p[4] = { sbx_pol_str("/x"), { 0 }, { 0 }, sbx_pol_u32(0) };
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, p, 4, 0).status, SBX_POL_MATCH);
    /* param 3 absent: too few parameters, or type NONE (negation does not apply) */
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, p, 1, 0).status, SBX_POL_NO_MATCH);
    p[3].type = SBX_PTYPE_NONE;
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, p, 4, 0).status, SBX_POL_NO_MATCH);
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, NULL, 0, 0).status, SBX_POL_NO_MATCH);
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, NULL, 3, 0).status, SBX_POL_ERROR);
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, p, SBX_POL_MAX_PARAMS + 1, 0).status, SBX_POL_ERROR);
    /* wrong types: a number where a string is expected, and vice versa */
    p[3] = sbx_pol_u64(0);
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, p, 4, 0).status, SBX_POL_ERROR);
    p[3] = sbx_pol_str("zz");
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, p, 4, 0).status, SBX_POL_ERROR);
    p[0] = sbx_pol_u32(7);
    p[3] = sbx_pol_u32(0);
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, p, 4, 0).status, SBX_POL_ERROR);
    /* a string with a NULL pointer but a length */
    p[0] = (sbx_pol_param){ .type = SBX_PTYPE_STRING, .len = 5, .str = NULL };
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 1, p, 4, 0).status, SBX_POL_ERROR);
    free(bt.buf);
    sbx_pol_rule_free(r);
}

Test(engine, number_matches_equal_and_range_u32_u64)
{
    sbx_pol_rule *r[4];
    for (int i = 0; i < 4; i++)
        r[i] = sbx_pol_rule_new(0, 0);
    cr_assert_eq(sbx_pol_rule_add_number(r[0], SBX_IF, 0, 42, 0, SBX_NM_EQUAL, 0), 0);
    cr_assert_eq(sbx_pol_rule_add_number(r[1], SBX_IF, 0, 0x30, 0, SBX_NM_AND, 0), 0);
    cr_assert_eq(sbx_pol_rule_add_number(r[2], SBX_IF, 0, 100, 200, SBX_NM_RANGE, 0), 0);
    cr_assert_eq(sbx_pol_rule_add_number(r[3], SBX_IF, 1, 1ull << 40, 0, SBX_NM_EQUAL, SBX_MATCH_U64), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(sbx_pol_rule_done(r[i], (sbx_action)(i + 1)), 0);
    sbx_pol_builder *b = sbx_pol_builder_new();
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(sbx_pol_builder_add(b, i, r[i], i, NULL), 0);
    built bt;
    cr_assert_eq(sbx_pol_builder_finish(b, &bt.buf, &bt.size), 0);
    cr_assert_eq(sbx_pol_validate(bt.buf, bt.size, NULL), 0);
    struct {
        unsigned svc;
        uint32_t v;
        int want;
    } cases[] = { { 0, 42, 1 }, { 0, 41, 0 }, { 1, 0x10, 1 }, { 1, 0x20, 1 }, { 1, 0x4f, 0 },
                  { 2, 99, 0 }, { 2, 100, 1 }, { 2, 200, 1 }, { 2, 201, 0 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sbx_pol_param p = sbx_pol_u32(cases[i].v);
        cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, cases[i].svc, &p, 1, 0).status, cases[i].want,
                     "case %zu", i);
    }
    sbx_pol_param p2[2] = { { 0 }, sbx_pol_u64(1ull << 40) };
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 3, p2, 2, 0).status, SBX_POL_MATCH);
    p2[1] = sbx_pol_u64((1ull << 40) + 1);
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 3, p2, 2, 0).status, SBX_POL_NO_MATCH);
    p2[1] = sbx_pol_u32(0);
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 3, p2, 2, 0).status, SBX_POL_ERROR);
    /* builder refuses nonsense */
    cr_expect_eq(sbx_pol_rule_add_number(r[0], SBX_IF, 0, 1, 0, SBX_NM_EQUAL, 0), SBX_ERROR_WRONG_STATE);
    sbx_pol_rule *x = sbx_pol_rule_new(0, 0);
    cr_expect_eq(sbx_pol_rule_add_number(x, SBX_IF, 0, 5, 4, SBX_NM_RANGE, 0), -EINVAL);
    cr_expect_eq(sbx_pol_rule_add_number(x, SBX_IF, 0, 1ull << 33, 0, SBX_NM_EQUAL, 0), -EINVAL);
    cr_expect_eq(sbx_pol_rule_add_number(x, SBX_IF, SBX_POL_MAX_PARAMS, 1, 0, SBX_NM_EQUAL, 0), -EINVAL);
    cr_expect_eq(sbx_pol_rule_add_number(x, SBX_IF, 0, 1, 0, (sbx_pol_nmatch)9, 0), -EINVAL);
    cr_expect_eq(sbx_pol_builder_add(b, 0, x, 0, NULL), SBX_ERROR_WRONG_STATE, "not done");
    sbx_pol_rule_free(x);
    sbx_pol_builder_free(b);
    free(bt.buf);
    for (int i = 0; i < 4; i++)
        sbx_pol_rule_free(r[i]);
}

Test(engine, or_chaining_and_constants)
{
    /* (p0 == 1 OR p0 == 2 OR p0 == 3) AND p1 matches "/x*" */
    sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
    cr_assert_eq(sbx_pol_rule_add_number(r, SBX_IF, 0, 1, 0, SBX_NM_EQUAL, SBX_MATCH_OR), 0);
    cr_assert_eq(sbx_pol_rule_add_number(r, SBX_IF, 0, 2, 0, SBX_NM_EQUAL, SBX_MATCH_OR), 0);
    cr_assert_eq(sbx_pol_rule_add_number(r, SBX_IF, 0, 3, 0, SBX_NM_EQUAL, 0), 0);
    cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 1, "/x*", 0, NULL), 0);
    cr_assert_eq(sbx_pol_rule_done(r, SBX_ACTION_ASK_BROKER), 0);
    built bt = build1(0, &r, 1, false);
    for (uint32_t v = 0; v < 5; v++) {
        sbx_pol_param p[2] = { sbx_pol_u32(v), sbx_pol_str("/xyz") };
        cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 0, p, 2, 0).status, v >= 1 && v <= 3, "v=%u", v);
        p[1] = sbx_pol_str("/y");
        cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 0, p, 2, 0).status, SBX_POL_NO_MATCH);
    }
    free(bt.buf);
    sbx_pol_rule_free(r);

    /* string patterns in an OR chain; the trailing OR is dropped by done */
    r = sbx_pol_rule_new(0, 0);
    cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/a/**", 0 | SBX_MATCH_OR, NULL), 0);
    cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/b/*", SBX_MATCH_OR, NULL), 0);
    cr_assert_eq(sbx_pol_rule_done(r, SBX_ACTION_ASK_BROKER), 0);
    bt = build1(0, &r, 1, false);
    cr_expect_eq(eval_str(&bt, 0, "/a/x/y").status, SBX_POL_MATCH);
    cr_expect_eq(eval_str(&bt, 0, "/b/x").status, SBX_POL_MATCH);
    cr_expect_eq(eval_str(&bt, 0, "/b/x/y").status, SBX_POL_NO_MATCH);
    free(bt.buf);
    sbx_pol_rule_free(r);

    sbx_pol_rule *c[2] = { sbx_pol_rule_new(0, 0), sbx_pol_rule_new(0, 0) };
    cr_assert_eq(sbx_pol_rule_add_const(c[0], false, 0), 0);
    cr_assert_eq(sbx_pol_rule_done(c[0], SBX_ACTION_DENY_ACCESS), 0);
    cr_assert_eq(sbx_pol_rule_add_const(c[1], true, 0), 0);
    cr_assert_eq(sbx_pol_rule_done(c[1], SBX_ACTION_TERMINATE_PROCESS), 0);
    bt = build1(0, c, 2, false);
    sbx_pol_result res = sbx_pol_evaluate(bt.buf, bt.size, 0, NULL, 0, 0);
    cr_expect_eq(res.status, SBX_POL_MATCH);
    cr_expect_eq(res.action, SBX_ACTION_TERMINATE_PROCESS);
    free(bt.buf);
    sbx_pol_rule_free(c[0]);
    sbx_pol_rule_free(c[1]);
}

Test(engine, case_insensitive_option)
{
    sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
    cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/Data/**.TXT", SBX_MATCH_ICASE, NULL), 0);
    cr_assert_eq(sbx_pol_rule_done(r, SBX_ACTION_ASK_BROKER), 0);
    sbx_pol_rule *cs = str_rule("/Data/**.TXT", SBX_IF, SBX_ACTION_ASK_BROKER);
    built bt = build1(0, &r, 1, false), bc = build1(0, &cs, 1, false);
    cr_expect_eq(eval_str(&bt, 0, "/data/a/b.txt").status, SBX_POL_MATCH);
    cr_expect_eq(eval_str(&bt, 0, "/DATA/b.Txt").status, SBX_POL_MATCH);
    cr_expect_eq(eval_str(&bc, 0, "/data/a/b.txt").status, SBX_POL_NO_MATCH, "case-sensitive by default");
    cr_expect_eq(eval_str(&bc, 0, "/Data/a/b.TXT").status, SBX_POL_MATCH);
    free(bt.buf);
    free(bc.buf);
    sbx_pol_rule_free(r);
    sbx_pol_rule_free(cs);
}

Test(engine, capacity_limits_stop_without_overrun)
{
    /* 4 opcodes: room for 3 terms + ACTION */
    sbx_pol_rule *r = sbx_pol_rule_new(4, 16);
    cr_assert_eq(sbx_pol_rule_add_number(r, SBX_IF, 0, 1, 0, SBX_NM_EQUAL, 0), 0);
    cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 1, "/a*b", 0, NULL), 0); /* 2 fragments */
    size_t before = sbx_pol_rule_op_count(r);
    cr_expect_eq(sbx_pol_rule_add_number(r, SBX_IF, 0, 1, 0, SBX_NM_EQUAL, 0), SBX_ERROR_NO_SPACE);
    cr_expect_eq(sbx_pol_rule_add_string(r, SBX_IF, 1, "/x", 0, NULL), SBX_ERROR_NO_SPACE);
    cr_expect_eq(sbx_pol_rule_add_const(r, true, 0), SBX_ERROR_NO_SPACE);
    cr_expect_eq(sbx_pol_rule_op_count(r), before, "a refused term leaves the rule unchanged");
    cr_expect_eq(sbx_pol_rule_done(r, SBX_ACTION_ASK_BROKER), 0, "ACTION always fits");
    sbx_pol_rule_free(r);
    /* string pool limit */
    r = sbx_pol_rule_new(0, 8);
    cr_expect_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/0123456789", 0, NULL), SBX_ERROR_NO_SPACE);
    cr_expect_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/0123", 0, NULL), 0);
    cr_expect_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/0123", 0, NULL), SBX_ERROR_NO_SPACE);
    sbx_pol_rule_free(r);
    /* many fragments in a default rule */
    r = sbx_pol_rule_new(0, 0);
    char pat[400] = "/";
    for (int i = 0; i < 70; i++)
        strcat(pat, "a*");
    cr_expect_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, pat, 0, NULL), SBX_ERROR_NO_SPACE);
    cr_expect_eq(sbx_pol_rule_op_count(r), 0);
    sbx_pol_rule_free(r);
    /* a bigger rule still caps one pattern at SBX_POL_MAX_FRAGMENTS */
    r = sbx_pol_rule_new(300, 0);
    cr_expect_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, pat, 0, NULL), SBX_ERROR_NO_SPACE);
    pat[1 + 2 * (SBX_POL_MAX_FRAGMENTS - 1)] = '\0'; /* exactly the maximum */
    cr_expect_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, pat, 0, NULL), 0, "%s", pat);
    cr_expect_eq(sbx_pol_rule_op_count(r), SBX_POL_MAX_FRAGMENTS);
    cr_assert_eq(sbx_pol_rule_done(r, SBX_ACTION_ASK_BROKER), 0);
    built bt = build1(0, &r, 1, false);
    cr_expect_eq(eval_str(&bt, 0, "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").status,
                 SBX_POL_MATCH);
    free(bt.buf);
    sbx_pol_rule_free(r);
}

Test(engine, done_twice_is_harmless_and_copy_is_independent)
{
    sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
    cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/a/**", 0, NULL), 0);
    sbx_pol_rule *early = sbx_pol_rule_copy(r);
    cr_assert_eq(sbx_pol_rule_done(r, SBX_ACTION_ASK_BROKER), 0);
    size_t n = sbx_pol_rule_op_count(r);
    cr_expect_eq(sbx_pol_rule_done(r, SBX_ACTION_DENY_ACCESS), 0);
    cr_expect_eq(sbx_pol_rule_op_count(r), n);
    cr_expect_eq(sbx_pol_rule_done(r, SBX_ACTION_NONE), -EINVAL);
    cr_expect_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/b", 0, NULL), SBX_ERROR_WRONG_STATE);
    /* the copy taken before done goes on independently */
    cr_expect_not(sbx_pol_rule_is_done(early));
    cr_assert_eq(sbx_pol_rule_add_number(early, SBX_IF, 1, 7, 0, SBX_NM_EQUAL, 0), 0);
    cr_assert_eq(sbx_pol_rule_done(early, SBX_ACTION_DENY_ACCESS), 0);
    sbx_pol_rule *late = sbx_pol_rule_copy(r);
    sbx_pol_rule_free(r); /* the copy must not share storage (ASan) */
    sbx_pol_rule *rs[2] = { late, early };
    built bt = build1(0, rs, 2, false);
    sbx_pol_param p[2] = { sbx_pol_str("/a/x"), sbx_pol_u32(7) };
    sbx_pol_result res = sbx_pol_evaluate(bt.buf, bt.size, 0, p, 2, 0);
    cr_expect_eq(res.action, SBX_ACTION_ASK_BROKER, "first action kept after the second done");
    cr_expect_eq(res.source, 0);
    p[0] = sbx_pol_str("/b");
    cr_expect_eq(sbx_pol_evaluate(bt.buf, bt.size, 0, p, 2, 0).status, SBX_POL_NO_MATCH);
    free(bt.buf);
    sbx_pol_rule_free(late);
    sbx_pol_rule_free(early);
}

/* A small mixed policy for the buffer attacks. */
static built sample(void)
{
    const char *pats[] = { "/home/*/.ssh/**", "/usr/**", "/etc/passwd", "/tmp/*.txt", "/srv/a?c/**" };
    sbx_pol_rule *r[5];
    for (int i = 0; i < 5; i++) {
        r[i] = sbx_pol_rule_new(0, 0);
        cr_assert_eq(sbx_pol_rule_add_string(r[i], SBX_IF, 0, pats[i], 0, NULL), 0);
        cr_assert_eq(sbx_pol_rule_add_number(r[i], SBX_IF_NOT, 1, 3, 0, SBX_NM_AND, 0), 0);
        cr_assert_eq(sbx_pol_rule_done(r[i], i ? SBX_ACTION_ASK_BROKER : SBX_ACTION_DENY_ACCESS), 0);
    }
    built bt = build1(1, r, 5, true);
    for (int i = 0; i < 5; i++)
        sbx_pol_rule_free(r[i]);
    return bt;
}

static void eval_all(const void *buf, size_t size)
{
    const char *paths[] = { "/home/a/.ssh/k", "/usr/lib/x", "/etc/passwd", "/tmp/a.txt", "/srv/abc/d", "/x" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        sbx_pol_param p[2] = { sbx_pol_str(paths[i]), sbx_pol_u32(0) };
        for (unsigned s = 0; s < 3; s++) {
            (void)sbx_pol_evaluate(buf, size, s, p, 2, 0);
            (void)sbx_pol_evaluate(buf, size, s, p, 2, SBX_EVAL_LINEAR);
        }
    }
}

Test(engine, truncated_buffers_refused_and_never_overread)
{
    built bt = sample();
    for (size_t len = 0; len < bt.size; len++) {
        /* exact-size heap copy so ASan catches any overread */
        void *copy = aligned_alloc(8, len ? (len + 7) / 8 * 8 : 8);
        memcpy(copy, bt.buf, len);
        cr_expect_eq(sbx_pol_validate(copy, len, NULL), SBX_ERROR_BAD_POLICY, "len %zu", len);
        eval_all(copy, len);
        free(copy);
    }
    free(bt.buf);
}

Test(engine, corrupted_buffers_refused_and_evaluation_stays_safe, .timeout = 60)
{
    built bt = sample();
    uint64_t x = 88172645463325252ull;
    unsigned char *copy = aligned_alloc(8, bt.size);
    for (int round = 0; round < 3000; round++) {
        memcpy(copy, bt.buf, bt.size);
        int flips = 1 + round % 4;
        for (int f = 0; f < flips; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (size_t)(x % bt.size);
            unsigned char nv = (unsigned char)(x >> 32);
            if (nv == copy[at])
                nv ^= 1;
            copy[at] = nv;
        }
        cr_expect_eq(sbx_pol_validate(copy, bt.size, NULL), SBX_ERROR_BAD_POLICY, "round %d", round);
        eval_all(copy, bt.size);
    }
    /* misaligned buffer: refused by the validator, still safe to evaluate */
    unsigned char *mis = malloc(bt.size + 1);
    memcpy(mis + 1, bt.buf, bt.size);
    cr_expect_eq(sbx_pol_validate(mis + 1, bt.size, NULL), SBX_ERROR_BAD_POLICY);
    eval_all(mis + 1, bt.size);
    free(mis);
    free(copy);
    free(bt.buf);
}

/* Forge a structurally valid buffer (checksum recomputed) whose index hides
 * the deny rule: the validator must refuse it. */
Test(engine, forged_index_that_hides_a_rule_is_refused)
{
    built bt = sample();
    sbx_pol_header *h = bt.buf;
    sbx_pol_service_entry *sv = &h->services[1];
    cr_assert_gt(sv->n_slots, 0);
    sbx_pol_slot *tab = (sbx_pol_slot *)((unsigned char *)bt.buf + sv->slots_off);
    bool forged = false;
    for (uint32_t i = 0; i < sv->n_slots && !forged; i++) {
        if (tab[i].list_n && tab[i].key_len == strlen("/home/")) {
            tab[i].list_n = 0; /* drop the /home/ bucket (the deny rule) */
            tab[i] = (sbx_pol_slot){ 0 };
            forged = true;
        }
    }
    cr_assert(forged);
    h->checksum = sbx_pol_checksum(bt.buf, bt.size);
    const char *why = NULL;
    cr_expect_eq(sbx_pol_validate(bt.buf, bt.size, &why), SBX_ERROR_BAD_POLICY);
    cr_expect_not_null(why);
    free(bt.buf);

    /* a rule listed under a key that is not its own */
    bt = sample();
    h = bt.buf;
    sv = &h->services[1];
    tab = (sbx_pol_slot *)((unsigned char *)bt.buf + sv->slots_off);
    for (uint32_t i = 0; i < sv->n_slots; i++)
        if (tab[i].list_n && tab[i].key_len == strlen("/usr/")) {
            uint32_t *list = (uint32_t *)((unsigned char *)bt.buf + tab[i].list_off);
            list[0] = 0; /* claims the /home/ rule is under /usr/ */
        }
    h->checksum = sbx_pol_checksum(bt.buf, bt.size);
    cr_expect_eq(sbx_pol_validate(bt.buf, bt.size, NULL), SBX_ERROR_BAD_POLICY);
    free(bt.buf);

    /* an opcode out of the pool, checksum fixed: refused */
    bt = sample();
    h = bt.buf;
    sbx_pol_op *ops = (sbx_pol_op *)((unsigned char *)bt.buf + h->ops_off);
    ops[0].a = h->strings_size + 100;
    h->checksum = sbx_pol_checksum(bt.buf, bt.size);
    cr_expect_eq(sbx_pol_validate(bt.buf, bt.size, NULL), SBX_ERROR_BAD_POLICY);
    eval_all(bt.buf, bt.size);
    free(bt.buf);
}

Test(engine, validator_accepts_a_larger_area_and_empty_policies)
{
    built bt = sample();
    unsigned char *big = aligned_alloc(8, bt.size + 64);
    memcpy(big, bt.buf, bt.size);
    memset(big + bt.size, 0xee, 64);
    cr_expect_eq(sbx_pol_validate(big, bt.size + 64, NULL), 0, "policy area larger than the policy");
    free(big);
    free(bt.buf);
    sbx_pol_builder *b = sbx_pol_builder_new();
    void *buf;
    size_t size;
    cr_assert_eq(sbx_pol_builder_finish(b, &buf, &size), 0);
    cr_expect_eq(sbx_pol_validate(buf, size, NULL), 0);
    sbx_pol_param p = sbx_pol_str("/x");
    cr_expect_eq(sbx_pol_evaluate(buf, size, 0, &p, 1, 0).status, SBX_POL_NO_MATCH);
    free(buf);
    sbx_pol_builder_free(b);
}

Test(engine, pathological_pattern_is_bounded)
{
    /* many stars over a long input without a match: the budget stops it */
    char pat[200] = "/";
    for (int i = 0; i < 30; i++)
        strcat(pat, "**a");
    strcat(pat, "b");
    sbx_pol_rule *r = str_rule(pat, SBX_IF, SBX_ACTION_ASK_BROKER);
    built bt = build1(0, &r, 1, false);
    char s[4001];
    s[0] = '/';
    memset(s + 1, 'a', 3999);
    s[4000] = '\0';
    sbx_pol_result res = eval_str(&bt, 0, s);
    cr_expect_neq(res.status, SBX_POL_MATCH);
    free(bt.buf);
    sbx_pol_rule_free(r);
}

/* ---- the prefix index gives the same answers as the linear scan ---- */

static uint64_t st = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return st;
}

Test(engine, index_agrees_with_linear_scan, .timeout = 60)
{
    static const char *const dirs[] = { "/home", "/usr", "/srv", "/tmp", "/etc", "/opt" };
    static const char *const names[] = { "a", "b", "ab", "x.txt", ".ssh", "lib" };
    for (int round = 0; round < 40; round++) {
        size_t n = 12 + rnd() % 200;
        sbx_pol_builder *b = sbx_pol_builder_new();
        cr_assert_eq(sbx_pol_builder_set_index_param(b, 0, 0), 0);
        for (size_t i = 0; i < n; i++) {
            char pat[128];
            int len = snprintf(pat, sizeof pat, "%s", dirs[rnd() % 6]);
            int depth = (int)(rnd() % 4);
            for (int d = 0; d < depth; d++) {
                const char *seg = rnd() % 4 == 0 ? "*" : rnd() % 6 == 0 ? "**" : names[rnd() % 6];
                len += snprintf(pat + len, sizeof pat - (size_t)len, "/%s", seg);
            }
            if (rnd() % 3 == 0)
                snprintf(pat + len, sizeof pat - (size_t)len, "/**");
            sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
            unsigned opt = rnd() % 10 == 0 ? SBX_MATCH_ICASE : 0;
            cr_assert_eq(sbx_pol_rule_add_string(r, rnd() % 15 == 0 ? SBX_IF_NOT : SBX_IF, 0, pat, opt, NULL), 0,
                         "%s", pat);
            cr_assert_eq(sbx_pol_rule_done(r, (sbx_action)(1 + rnd() % 6)), 0);
            cr_assert_eq(sbx_pol_builder_add(b, 0, r, (uint32_t)i, NULL), 0);
            sbx_pol_rule_free(r);
        }
        void *buf;
        size_t size;
        cr_assert_eq(sbx_pol_builder_finish(b, &buf, &size), 0);
        cr_assert_eq(sbx_pol_validate(buf, size, NULL), 0);
        for (int q = 0; q < 300; q++) {
            char path[128];
            int len = snprintf(path, sizeof path, "%s", dirs[rnd() % 6]);
            int depth = (int)(rnd() % 5);
            for (int d = 0; d < depth; d++)
                len += snprintf(path + len, sizeof path - (size_t)len, "/%s", names[rnd() % 6]);
            sbx_pol_param p = sbx_pol_str(path);
            sbx_pol_result a = sbx_pol_evaluate(buf, size, 0, &p, 1, 0);
            sbx_pol_result l = sbx_pol_evaluate(buf, size, 0, &p, 1, SBX_EVAL_LINEAR);
            cr_assert_eq(a.status, l.status, "%s", path);
            cr_assert_eq(a.rule, l.rule, "%s", path);
            cr_assert_eq(a.action, l.action, "%s", path);
            cr_assert_leq(a.evaluated, l.evaluated);
        }
        free(buf);
        sbx_pol_builder_free(b);
    }
}
