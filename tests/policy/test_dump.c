/* Golden tests of the dump format (`sbx policy dump`): the exact text is
 * the contract. If a deliberate format or layout change breaks these,
 * review the new dump and update the text here and in docs/policy.md. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>
#include <sbx/policy.h>

#include "policy/engine.h"

static const char golden_files[] =
    "sbx-policy v1 size=3064 rules=13 ops=41\n"
    "service 1 files.open rules=2 index=p0 keys=2 slots=4\n"
    "  rule 0 source=1 action=DENY_ACCESS origin=\"rule-7\"\n"
    "       0: STRING_MATCH p0 FIXED skip=0 \"/usr/lib/a\" [CLEAR_CONTEXT]\n"
    "       1: STRING_MATCH p0 FIXED skip=1 \"c*.so\" [MUST_END]\n"
    "       2: ACTION DENY_ACCESS\n"
    "  rule 1 source=0 action=ASK_BROKER origin=\"a \\\"b\\\".policy:1\"\n"
    "       3: STRING_MATCH p0 FIXED skip=0 \"/usr/\" [CLEAR_CONTEXT]\n"
    "       4: STRING_MATCH p0 SEEK_ANY skip=0 \"\" [MUST_END]\n"
    "       5: NUMBER_AND_MATCH p1 & 0x3 [NEGATE]\n"
    "       6: NUMBER_AND_MATCH p1 & 0x400640 [NEGATE]\n"
    "       7: ACTION ASK_BROKER\n"
    "service 2 files.stat rules=2 index=p0 keys=2 slots=4\n"
    "  rule 2 source=1 action=DENY_ACCESS origin=\"rule-7\"\n"
    "       8: STRING_MATCH p0 FIXED skip=0 \"/usr/lib/a\" [CLEAR_CONTEXT]\n"
    "       9: STRING_MATCH p0 FIXED skip=1 \"c*.so\" [MUST_END]\n"
    "      10: ACTION DENY_ACCESS\n"
    "  rule 3 source=0 action=ASK_BROKER origin=\"a \\\"b\\\".policy:1\"\n"
    "      11: STRING_MATCH p0 FIXED skip=0 \"/usr/\" [CLEAR_CONTEXT]\n"
    "      12: STRING_MATCH p0 SEEK_ANY skip=0 \"\" [MUST_END]\n"
    "      13: ACTION ASK_BROKER\n"
    "service 3 files.access rules=2 index=p0 keys=2 slots=4\n"
    "  rule 4 source=1 action=DENY_ACCESS origin=\"rule-7\"\n"
    "      14: STRING_MATCH p0 FIXED skip=0 \"/usr/lib/a\" [CLEAR_CONTEXT]\n"
    "      15: STRING_MATCH p0 FIXED skip=1 \"c*.so\" [MUST_END]\n"
    "      16: ACTION DENY_ACCESS\n"
    "  rule 5 source=0 action=ASK_BROKER origin=\"a \\\"b\\\".policy:1\"\n"
    "      17: STRING_MATCH p0 FIXED skip=0 \"/usr/\" [CLEAR_CONTEXT]\n"
    "      18: STRING_MATCH p0 SEEK_ANY skip=0 \"\" [MUST_END]\n"
    "      19: ACTION ASK_BROKER\n"
    "service 4 files.readlink rules=2 index=p0 keys=2 slots=4\n"
    "  rule 6 source=1 action=DENY_ACCESS origin=\"rule-7\"\n"
    "      20: STRING_MATCH p0 FIXED skip=0 \"/usr/lib/a\" [CLEAR_CONTEXT]\n"
    "      21: STRING_MATCH p0 FIXED skip=1 \"c*.so\" [MUST_END]\n"
    "      22: ACTION DENY_ACCESS\n"
    "  rule 7 source=0 action=ASK_BROKER origin=\"a \\\"b\\\".policy:1\"\n"
    "      23: STRING_MATCH p0 FIXED skip=0 \"/usr/\" [CLEAR_CONTEXT]\n"
    "      24: STRING_MATCH p0 SEEK_ANY skip=0 \"\" [MUST_END]\n"
    "      25: ACTION ASK_BROKER\n"
    "service 5 files.rename-src rules=1 index=p0 keys=1 slots=2\n"
    "  rule 8 source=1 action=DENY_ACCESS origin=\"rule-7\"\n"
    "      26: STRING_MATCH p0 FIXED skip=0 \"/usr/lib/a\" [CLEAR_CONTEXT]\n"
    "      27: STRING_MATCH p0 FIXED skip=1 \"c*.so\" [MUST_END]\n"
    "      28: ACTION DENY_ACCESS\n"
    "service 6 files.rename-dst rules=1 index=p0 keys=1 slots=2\n"
    "  rule 9 source=1 action=DENY_ACCESS origin=\"rule-7\"\n"
    "      29: STRING_MATCH p0 FIXED skip=0 \"/usr/lib/a\" [CLEAR_CONTEXT]\n"
    "      30: STRING_MATCH p0 FIXED skip=1 \"c*.so\" [MUST_END]\n"
    "      31: ACTION DENY_ACCESS\n"
    "service 7 files.mkdir rules=1 index=p0 keys=1 slots=2\n"
    "  rule 10 source=1 action=DENY_ACCESS origin=\"rule-7\"\n"
    "      32: STRING_MATCH p0 FIXED skip=0 \"/usr/lib/a\" [CLEAR_CONTEXT]\n"
    "      33: STRING_MATCH p0 FIXED skip=1 \"c*.so\" [MUST_END]\n"
    "      34: ACTION DENY_ACCESS\n"
    "service 8 files.unlink rules=1 index=p0 keys=1 slots=2\n"
    "  rule 11 source=1 action=DENY_ACCESS origin=\"rule-7\"\n"
    "      35: STRING_MATCH p0 FIXED skip=0 \"/usr/lib/a\" [CLEAR_CONTEXT]\n"
    "      36: STRING_MATCH p0 FIXED skip=1 \"c*.so\" [MUST_END]\n"
    "      37: ACTION DENY_ACCESS\n"
    "service 9 files.rmdir rules=1 index=p0 keys=1 slots=2\n"
    "  rule 12 source=1 action=DENY_ACCESS origin=\"rule-7\"\n"
    "      38: STRING_MATCH p0 FIXED skip=0 \"/usr/lib/a\" [CLEAR_CONTEXT]\n"
    "      39: STRING_MATCH p0 FIXED skip=1 \"c*.so\" [MUST_END]\n"
    "      40: ACTION DENY_ACCESS\n";

static const char golden_lowlevel[] =
    "sbx-policy v1 size=1072 rules=1 ops=9\n"
    "service 3 - rules=1 index=none\n"
    "  rule 0 source=42 action=SIGNAL_ALARM origin=\"x\\x0a\"\n"
    "       0: NUMBER_MATCH p1 == 0x1 [OR]\n"
    "       1: NUMBER_MATCH_RANGE p1 in [0x5, 0x9]\n"
    "       2: NUMBER_AND_MATCH p2 & 0x10000000000 [NEGATE,U64]\n"
    "       3: STRING_MATCH p0 FIXED skip=0 \"/Tmp/\" [CLEAR_CONTEXT,ICASE]\n"
    "       4: STRING_MATCH p0 SEEK_COMP skip=0 \"x\" [ICASE]\n"
    "       5: STRING_MATCH p0 SEEK_ANY skip=0 \"\" [ICASE]\n"
    "       6: STRING_MATCH p0 FIXED skip=1 \"\\x01\" [ICASE,MUST_END]\n"
    "       7: ALWAYS_TRUE\n"
    "       8: ACTION SIGNAL_ALARM\n";

static void expect_text(const char *got, const char *want)
{
    if (strcmp(got, want) == 0)
        return;
    /* report the first differing line */
    size_t line = 1, i = 0;
    while (got[i] && got[i] == want[i]) {
        if (got[i] == '\n')
            line++;
        i++;
    }
    cr_expect_fail("dump differs at line %zu:\n--- got ---\n%s\n--- want ---\n%s", line, got, want);
}

Test(dump, files_policy_golden)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, "/usr/**",
                                        "a \"b\".policy:1", NULL), 0);
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/usr/lib/a?c\\*.so", "rule-7", NULL), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(sbx_policy_dump(p, f), 0);
    fclose(f);
    expect_text(text, golden_files);
    free(text);
    sbx_policy_unref(p);
}

Test(dump, lowlevel_golden_every_opcode_and_option)
{
    sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
    cr_assert_eq(sbx_pol_rule_add_number(r, SBX_IF, 1, 1, 0, SBX_NM_EQUAL, SBX_MATCH_OR), 0);
    cr_assert_eq(sbx_pol_rule_add_number(r, SBX_IF, 1, 5, 9, SBX_NM_RANGE, 0), 0);
    cr_assert_eq(sbx_pol_rule_add_number(r, SBX_IF_NOT, 2, 1ull << 40, 0, SBX_NM_AND, SBX_MATCH_U64), 0);
    cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, "/Tmp/*x**?\x01", SBX_MATCH_ICASE, NULL), 0);
    cr_assert_eq(sbx_pol_rule_add_const(r, true, 0), 0);
    cr_assert_eq(sbx_pol_rule_done(r, SBX_ACTION_SIGNAL_ALARM), 0);
    sbx_pol_builder *b = sbx_pol_builder_new();
    cr_assert_eq(sbx_pol_builder_add(b, 3, r, 42, "x\n"), 0);
    void *buf;
    size_t size;
    cr_assert_eq(sbx_pol_builder_finish(b, &buf, &size), 0);
    const char *names[] = { "zero" };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(sbx_pol_dump(buf, size, names, 1, f), 0);
    fclose(f);
    expect_text(text, golden_lowlevel);
    free(text);
    /* a damaged buffer is not dumped */
    ((unsigned char *)buf)[size - 1] ^= 1;
    f = open_memstream(&text, &len);
    cr_expect_eq(sbx_pol_dump(buf, size, names, 1, f), SBX_ERROR_BAD_POLICY);
    fclose(f);
    cr_expect(strstr(text, "invalid policy buffer") != NULL);
    free(text);
    free(buf);
    sbx_pol_builder_free(b);
    sbx_pol_rule_free(r);
}
