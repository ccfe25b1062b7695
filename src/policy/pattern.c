/* sbx — path patterns: the checker (exact column and reason for every
 * malformed pattern) and the compiler into STRING_MATCH fragments.
 *
 * Syntax: `*` any run of characters other than '/', `**` any run
 * including '/', `?` one character other than '/', `\x` the character x.
 * Everything else is literal and compared byte for byte. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sbx/error.h>

#include "policy/engine.h"

static int bad(sbx_policy_error *err, size_t column, const char *msg)
{
    if (err) {
        err->code = SBX_ERROR_BAD_PATTERN;
        err->column = (unsigned)column;
        snprintf(err->message, sizeof err->message, "column %zu: %s", column, msg);
    }
    return SBX_ERROR_BAD_PATTERN;
}

int sbx_pattern_check(const char *pattern, sbx_policy_error *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    if (!pattern)
        return bad(err, 0, "no pattern");
    if (!pattern[0])
        return bad(err, 1, "empty pattern");
    if (pattern[0] != '/')
        return bad(err, 1, "pattern must be an absolute path (start with '/')");
    size_t n = strlen(pattern);
    if (n > SBX_POL_MAX_STRING)
        return bad(err, SBX_POL_MAX_STRING + 1, "pattern longer than 4095 bytes");

    /* Walk components. comp_start: index of the first character of the
     * current component; comp holds its unescaped-literal form when it is
     * short (to spot "." and ".."). */
    size_t comp_start = 1;
    char comp[3];
    size_t comp_len = 0;
    bool comp_plain = true; /* component so far has only literal characters */
    size_t stars = 0;
    for (size_t i = 1; i <= n; i++) {
        char c = i < n ? pattern[i] : '/';
        bool escaped = false;
        if (i < n && c == '\\') {
            if (i + 1 >= n)
                return bad(err, i + 1, "dangling '\\' at the end of the pattern");
            i++;
            c = pattern[i];
            escaped = true;
        }
        if (c == '*' && !escaped) {
            if (++stars >= 3)
                return bad(err, i + 1, "three or more '*' in a row (use '*' or '**')");
            comp_plain = false;
            continue;
        }
        stars = 0;
        if (c == '/' ) {
            /* A component ends here (or the pattern does, i == n). */
            size_t len_chars = i - comp_start;
            if (i < n || n > 1) {
                if (len_chars == 0) {
                    if (i == n)
                        return bad(err, i, "trailing '/' (a canonical path has none)");
                    return bad(err, i + 1, "empty path component ('//')");
                }
                if (comp_plain && comp_len == 1 && comp[0] == '.')
                    return bad(err, comp_start + 1, "'.' component (paths are canonical)");
                if (comp_plain && comp_len == 2 && comp[0] == '.' && comp[1] == '.')
                    return bad(err, comp_start + 1, "'..' component (paths are canonical)");
            }
            comp_start = i + 1;
            comp_len = 0;
            comp_plain = true;
            continue;
        }
        if (c == '?' && !escaped)
            comp_plain = false;
        if (comp_len < sizeof comp)
            comp[comp_len] = c;
        comp_len++;
    }
    return 0;
}

int sbx_pattern_compile(const char *pattern, sbx_pattern_frag *frags, size_t max_frags,
                        char *text, size_t text_cap, size_t *text_len, sbx_policy_error *err)
{
    int r = sbx_pattern_check(pattern, err);
    if (r < 0)
        return r;
    size_t nf = 0, tl = 0;
    sbx_pattern_frag cur = { .start = SBX_START_FIXED, .skip = 0, .off = 0, .len = 0 };
    size_t n = strlen(pattern);
#define EMIT()                                                                 \
    do {                                                                       \
        if (nf >= max_frags)                                                   \
            return SBX_ERROR_NO_SPACE;                                         \
        cur.len = (uint32_t)(tl - cur.off);                                    \
        frags[nf++] = cur;                                                     \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        char c = pattern[i];
        if (c == '\\') {
            c = pattern[++i]; /* checked: never dangling */
        } else if (c == '*') {
            bool dstar = i + 1 < n && pattern[i + 1] == '*';
            if (dstar)
                i++;
            if (tl > cur.off) {
                EMIT();
                cur = (sbx_pattern_frag){ .start = dstar ? SBX_START_SEEK_ANY : SBX_START_SEEK_COMP,
                                          .off = (uint32_t)tl };
            } else if (dstar) {
                /* "?**" and "*?**" both mean: the '?'s, then anything. */
                cur.start = SBX_START_SEEK_ANY;
            } else if (cur.start == SBX_START_FIXED) {
                cur.start = SBX_START_SEEK_COMP;
            }
            /* else: "*?*" stays one component seek after the '?'s; "***"
             * was rejected by the checker. */
            continue;
        } else if (c == '?') {
            if (tl > cur.off) {
                EMIT();
                cur = (sbx_pattern_frag){ .start = SBX_START_FIXED, .skip = 1, .off = (uint32_t)tl };
            } else if (cur.start == SBX_START_SEEK_ANY) {
                /* "**?": anything, then one non-'/' character: an empty
                 * seek fragment, then a fixed one after one character. */
                EMIT();
                cur = (sbx_pattern_frag){ .start = SBX_START_FIXED, .skip = 1, .off = (uint32_t)tl };
            } else {
                /* "?" at a fixed place, or "*?" == "?*" (both stay in one
                 * component): one more character to skip first. */
                if (cur.skip >= SBX_POL_MAX_SKIP)
                    return SBX_ERROR_NO_SPACE;
                cur.skip++;
            }
            continue;
        }
        if (tl >= text_cap)
            return SBX_ERROR_NO_SPACE;
        text[tl++] = c;
    }
    EMIT();
#undef EMIT
    *text_len = tl;
    return (int)nf;
}
