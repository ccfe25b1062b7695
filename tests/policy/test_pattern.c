/* Pattern checker and compiled matcher: every malformed pattern with its
 * column, `*` vs `**` at component boundaries, `?`, escapes, and a property
 * test against an independent reference matcher (fnmatch + `**`). */
#include <criterion/criterion.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>

#include "policy/engine.h"

static void expect_bad(const char *pat, unsigned column, const char *word)
{
    sbx_policy_error err;
    int r = sbx_pattern_check(pat, &err);
    cr_expect_eq(r, SBX_ERROR_BAD_PATTERN, "pattern '%s' should be rejected", pat);
    cr_expect_eq(err.code, SBX_ERROR_BAD_PATTERN);
    cr_expect_eq(err.column, column, "pattern '%s': column %u, want %u (%s)", pat, err.column, column,
                 err.message);
    cr_expect(strstr(err.message, word) != NULL, "pattern '%s': message '%s' lacks '%s'", pat, err.message,
              word);
}

Test(pattern, every_malformed_pattern_names_column_and_reason)
{
    expect_bad(NULL, 0, "no pattern");
    expect_bad("", 1, "empty");
    expect_bad("usr/**", 1, "absolute");
    expect_bad("*", 1, "absolute");
    expect_bad("/usr\\", 5, "dangling");
    expect_bad("/a/***", 6, "three or more");
    expect_bad("/a****b", 5, "three or more");
    expect_bad("//usr", 2, "empty path component");
    expect_bad("/usr//lib", 6, "empty path component");
    expect_bad("/usr/", 5, "trailing");
    expect_bad("/usr/./lib", 6, "'.'");
    expect_bad("/usr/../etc", 6, "'..'");
    expect_bad("/..", 2, "'..'");
    expect_bad("/a/.", 4, "'.'");
    expect_bad("/a/\\.\\./b", 4, "'..'"); /* escaping does not make ".." harmless */
    char *longp = malloc(5000);
    longp[0] = '/';
    memset(longp + 1, 'a', 4998);
    longp[4999] = '\0';
    expect_bad(longp, 4096, "longer");
    free(longp);
}

Test(pattern, valid_patterns_accepted)
{
    const char *ok[] = { "/", "/usr", "/usr/**", "/home/*/.ssh/**", "/a/?", "/a\\*b", "/a\\\\",
                         "/**", "/*", "/a/.hidden", "/a/..b", "/a/...", "/a**b", "/a*?*b", "/x/**?" };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        sbx_policy_error err;
        cr_expect_eq(sbx_pattern_check(ok[i], &err), 0, "'%s' rejected: %s", ok[i], err.message);
    }
}

/* Compile a pattern into a one-rule buffer and match a string. */
static int match(const char *pat, const char *s)
{
    sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
    sbx_policy_error err;
    cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, pat, 0, &err), 0, "%s: %s", pat, err.message);
    cr_assert_eq(sbx_pol_rule_done(r, SBX_ACTION_ASK_BROKER), 0);
    sbx_pol_builder *b = sbx_pol_builder_new();
    cr_assert_eq(sbx_pol_builder_add(b, 1, r, 0, NULL), 0);
    void *buf;
    size_t size;
    cr_assert_eq(sbx_pol_builder_finish(b, &buf, &size), 0);
    cr_assert_eq(sbx_pol_validate(buf, size, NULL), 0);
    sbx_pol_param p = sbx_pol_str(s);
    sbx_pol_result res = sbx_pol_evaluate(buf, size, 1, &p, 1, 0);
    cr_assert_neq(res.status, SBX_POL_ERROR, "%s vs %s", pat, s);
    free(buf);
    sbx_pol_builder_free(b);
    sbx_pol_rule_free(r);
    return res.status == SBX_POL_MATCH;
}

Test(pattern, star_stays_in_one_component_double_star_crosses)
{
    cr_expect(match("/home/*", "/home/alice"));
    cr_expect_not(match("/home/*", "/home/alice/x"));
    cr_expect(match("/home/*", "/home/"));
    cr_expect(match("/home/**", "/home/alice/x/y"));
    cr_expect(match("/home/**", "/home/"));
    cr_expect_not(match("/home/**", "/home"));
    cr_expect(match("/home/*/.ssh/**", "/home/bob/.ssh/id_rsa"));
    cr_expect_not(match("/home/*/.ssh/**", "/home/bob/x/.ssh/id_rsa"));
    cr_expect(match("/home/**/.ssh/**", "/home/bob/x/.ssh/id_rsa"));
    cr_expect(match("/a*b", "/ab"));
    cr_expect(match("/a*b", "/axxb"));
    cr_expect_not(match("/a*b", "/ax/xb"));
    cr_expect(match("/a**b", "/ax/xb"));
    cr_expect(match("/*.txt", "/notes.txt"));
    cr_expect_not(match("/*.txt", "/d/notes.txt"));
    cr_expect(match("/**.txt", "/d/notes.txt"));
    /* backtracking: the first candidate is not the right one */
    cr_expect(match("/**a*b", "/a/ab"));
    cr_expect(match("/a*x?y", "/axqxzy"));
    cr_expect(match("/**/x", "/a/b/x"));
    cr_expect_not(match("/**/x", "/a/b/xy"));
}

Test(pattern, question_mark_is_exactly_one_non_slash_character)
{
    cr_expect(match("/a?c", "/abc"));
    cr_expect_not(match("/a?c", "/ac"));
    cr_expect_not(match("/a?c", "/abbc"));
    cr_expect_not(match("/a?c", "/a/c"));
    cr_expect(match("/a/?", "/a/x"));
    cr_expect_not(match("/a/?", "/a/"));
    cr_expect_not(match("/a/?", "/a/xy"));
    cr_expect(match("/x/**?", "/x/a"));
    cr_expect_not(match("/x/**?", "/x/a/"));
    cr_expect(match("/*?", "/a"));
    cr_expect_not(match("/*?", "/"));
}

Test(pattern, suffix_must_end_at_end_of_input)
{
    cr_expect(match("/etc/passwd", "/etc/passwd"));
    cr_expect_not(match("/etc/passwd", "/etc/passwd.bak"));
    cr_expect_not(match("/etc/passwd", "/etc/passw"));
    cr_expect(match("/**.so", "/usr/lib/libc.so"));
    cr_expect_not(match("/**.so", "/usr/lib/libc.so.6"));
    cr_expect(match("/**.so*", "/usr/lib/libc.so.6"));
    cr_expect(match("/*.c", "/a.c.c"));
}

Test(pattern, escapes_make_wildcards_literal)
{
    cr_expect(match("/a\\*b", "/a*b"));
    cr_expect_not(match("/a\\*b", "/axb"));
    cr_expect(match("/a\\?", "/a?"));
    cr_expect_not(match("/a\\?", "/ab"));
    cr_expect(match("/a\\\\b", "/a\\b"));
    cr_expect(match("/\\a", "/a"));
    cr_expect(match("/x\\**", "/x*yz"));
    cr_expect_not(match("/x\\**", "/xyz"));
}

/* ---- property test ---- */

/* Reference matcher, independent of the engine: fnmatch(FNM_PATHNAME) for
 * `*`, `?` and escapes, with each unescaped `**` expanded by trying every
 * split of the input. */
static bool ref_match(const char *pat, const char *s)
{
    size_t pl = strlen(pat);
    for (size_t i = 0; i < pl; i++) {
        if (pat[i] == '\\') {
            i++;
            continue;
        }
        if (pat[i] == '*' && i + 1 < pl && pat[i + 1] == '*') {
            char *head = strndup(pat, i);
            const char *tail = pat + i + 2;
            size_t n = strlen(s);
            bool hit = false;
            for (size_t a = 0; a <= n && !hit; a++) {
                char *sp = strndup(s, a);
                bool h = fnmatch(head, sp, FNM_PATHNAME) == 0;
                free(sp);
                if (!h)
                    continue;
                for (size_t b = a; b <= n && !hit; b++)
                    hit = ref_match(tail, s + b);
            }
            free(head);
            return hit;
        }
    }
    return fnmatch(pat, s, FNM_PATHNAME) == 0;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void random_pattern(char *out, size_t cap)
{
    static const char *const atoms[] = { "a", "b", "/", "*", "**", "?", "\\*", "\\?", "\\a", "ab", "/a" };
    size_t n = 1 + rnd() % 7, at = 0;
    out[at++] = '/';
    for (size_t i = 0; i < n; i++) {
        const char *a = atoms[rnd() % (sizeof atoms / sizeof atoms[0])];
        size_t l = strlen(a);
        if (at + l + 1 >= cap)
            break;
        memcpy(out + at, a, l);
        at += l;
    }
    out[at] = '\0';
}

static void random_path(char *out, size_t cap)
{
    static const char alpha[] = "ab/*?";
    size_t n = rnd() % 10, at = 0;
    out[at++] = '/';
    for (size_t i = 0; i < n && at + 1 < cap; i++)
        out[at++] = alpha[rnd() % 5 < 3 ? rnd() % 3 : rnd() % 5];
    out[at] = '\0';
}

Test(pattern, property_compiled_matcher_equals_reference, .timeout = 120)
{
    size_t pairs = 0, matched = 0, patterns = 0;
    char pat[64], path[64];
    while (patterns < 100000) {
        random_pattern(pat, sizeof pat);
        if (sbx_pattern_check(pat, NULL) != 0)
            continue;
        patterns++;
        sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
        cr_assert_eq(sbx_pol_rule_add_string(r, SBX_IF, 0, pat, 0, NULL), 0);
        sbx_pol_rule_done(r, SBX_ACTION_ASK_BROKER);
        sbx_pol_builder *b = sbx_pol_builder_new();
        sbx_pol_builder_add(b, 0, r, 0, NULL);
        void *buf;
        size_t size;
        cr_assert_eq(sbx_pol_builder_finish(b, &buf, &size), 0);
        for (int k = 0; k < 4; k++, pairs++) {
            /* half random paths, half paths built to look like the pattern */
            if (k & 1) {
                random_path(path, sizeof path);
            } else {
                size_t j = 0;
                for (size_t i = 0; pat[i] && j + 3 < sizeof path; i++) {
                    char c = pat[i];
                    if (c == '\\') {
                        path[j++] = pat[++i];
                    } else if (c == '*') {
                        size_t reps = rnd() % 3;
                        for (size_t q = 0; q < reps; q++)
                            path[j++] = "ab/"[rnd() % 3];
                    } else if (c == '?') {
                        path[j++] = "ab/"[rnd() % 3];
                    } else {
                        path[j++] = c;
                    }
                }
                path[j] = '\0';
            }
            sbx_pol_param p = sbx_pol_str(path);
            sbx_pol_result res = sbx_pol_evaluate(buf, size, 0, &p, 1, 0);
            bool want = path[0] && ref_match(pat, path);
            cr_assert_neq(res.status, SBX_POL_ERROR);
            bool got = res.status == SBX_POL_MATCH;
            matched += got;
            cr_assert_eq(got, want, "pattern '%s' path '%s': engine %d reference %d", pat, path, got, want);
        }
        free(buf);
        sbx_pol_builder_free(b);
        sbx_pol_rule_free(r);
    }
    /* the test must exercise both outcomes substantially */
    cr_expect_gt(matched, pairs / 20);
    cr_expect_lt(matched, pairs - pairs / 20);
    cr_log_info("%zu patterns, %zu pairs, %zu matched", patterns, pairs, matched);
}
