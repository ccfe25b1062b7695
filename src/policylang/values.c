/* sbx — policy-language values: sizes, durations, counts, patterns. */
#include "policylang/policylang.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <sbx/error.h>

#define PATH_LIMIT 4096

static int bad(const char **why, size_t *off, const char *msg, size_t at, int code)
{
    if (why)
        *why = msg;
    if (off)
        *off = at;
    return code;
}

/* Leading decimal digits of s into *v; returns the number of digits, or
 * (size_t)-1 on overflow. */
static size_t digits(const char *s, uint64_t *v)
{
    size_t i = 0;
    uint64_t acc = 0;
    while (s[i] >= '0' && s[i] <= '9') {
        unsigned d = (unsigned)(s[i] - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return (size_t)-1;
        acc = acc * 10 + d;
        i++;
    }
    *v = acc;
    return i;
}

/* The common shape: [digits][one suffix letter]. */
static int number_with_suffix(const char *s, const char *suffixes, const uint64_t *mult,
                              const char *suffix_msg, uint64_t *out, const char **why,
                              size_t *off)
{
    if (!s || !*s)
        return bad(why, off, "empty value", 0, -EINVAL);
    if (s[0] == '-')
        return bad(why, off, "negative value", 0, -EINVAL);
    if (s[0] == '+')
        return bad(why, off, "expected a number", 0, -EINVAL);
    uint64_t v;
    size_t n = digits(s, &v);
    if (n == (size_t)-1)
        return bad(why, off, "number too large", 0, -ERANGE);
    if (n == 0)
        return bad(why, off, "expected a number", 0, -EINVAL);
    uint64_t m = 1;
    if (s[n]) {
        const char *p = strchr(suffixes, s[n]);
        if (!p || s[n + 1])
            return bad(why, off, suffix_msg, n, -EINVAL);
        m = mult[p - suffixes];
    }
    if (v == 0)
        return bad(why, off, "zero is not a meaningful limit", 0, -EINVAL);
    if (v > UINT64_MAX / m)
        return bad(why, off, "value too large", 0, -ERANGE);
    v *= m;
    /* UINT64_MAX is the "unset" marker of sbx_policy_set_limit. */
    if (v == UINT64_MAX)
        return bad(why, off, "value too large", 0, -ERANGE);
    *out = v;
    return 0;
}

int sbx_policylang_parse_size(const char *s, uint64_t *out, const char **why, size_t *off)
{
    static const uint64_t mult[] = { 1ull << 10, 1ull << 20, 1ull << 30, 1ull << 40,
                                     1ull << 10, 1ull << 20, 1ull << 30, 1ull << 40 };
    return number_with_suffix(s, "KMGTkmgt", mult,
                              "bad size suffix (use bytes, or K, M, G, T)", out, why, off);
}

int sbx_policylang_parse_seconds(const char *s, uint64_t *out, const char **why, size_t *off)
{
    static const uint64_t mult[] = { 1, 60, 3600 };
    return number_with_suffix(s, "smh", mult,
                              "bad duration suffix (use seconds, or s, m, h)", out, why, off);
}

int sbx_policylang_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                               const char **why, size_t *off)
{
    if (!s || !*s)
        return bad(why, off, "empty value", 0, -EINVAL);
    if (s[0] == '-')
        return bad(why, off, "negative value", 0, -EINVAL);
    uint64_t v;
    size_t n = digits(s, &v);
    if (n == (size_t)-1)
        return bad(why, off, "number too large", 0, -ERANGE);
    if (n == 0)
        return bad(why, off, "expected a number", 0, -EINVAL);
    if (s[n])
        return bad(why, off, "unexpected text after the number", n, -EINVAL);
    if (v < min)
        return bad(why, off, min == 1 ? "zero is not meaningful here" : "number too small", 0,
                   -EINVAL);
    if (v > max)
        return bad(why, off, "number too large", 0, -ERANGE);
    *out = v;
    return 0;
}

/* Shared component walk: `glob` allows wildcards and escapes. */
static int check_path(const char *p, bool glob, const char **why, size_t *off, int code)
{
    if (!p || !*p)
        return bad(why, off, "empty path", 0, code);
    if (p[0] != '/')
        return bad(why, off, "must be an absolute path (start with '/')", 0, code);
    size_t len = strlen(p);
    if (len >= PATH_LIMIT)
        return bad(why, off, "path too long", PATH_LIMIT - 1, code);
    size_t comp = 1; /* start of the current component */
    for (size_t i = 1; i <= len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c && c < 0x20)
            return bad(why, off, "control character in path", i, code);
        if (c == 0x7f)
            return bad(why, off, "control character in path", i, code);
        if (c == '\\' && glob) {
            if (!p[i + 1])
                return bad(why, off, "'\\' at the end escapes nothing", i, code);
            i++;
            continue;
        }
        if (glob && c == '*' && p[i + 1] == '*' && p[i + 2] == '*')
            return bad(why, off, "'***' is not a wildcard (use '*' or '**')", i, code);
        if (c == '/' || c == 0) {
            size_t n = i - comp;
            if (n == 0 && c == 0)
                return bad(why, off, "trailing '/' (write the path without it)", i - 1, code);
            if (n == 0 && c == '/')
                return bad(why, off, "empty path component ('//')", i, code);
            if ((n == 1 && p[comp] == '.') || (n == 2 && p[comp] == '.' && p[comp + 1] == '.'))
                return bad(why, off, "'.' and '..' components are not allowed", comp, code);
            comp = i + 1;
        }
    }
    return 0;
}

int sbx_policylang_check_pattern(const char *p, const char **why, size_t *off)
{
    if (p && p[0] == '/' && p[1] == 0)
        return 0;
    return check_path(p, true, why, off, SBX_ERROR_BAD_PATTERN);
}

int sbx_policylang_check_view_path(const char *p, const char **why, size_t *off)
{
    /* "/" itself is a valid view path; a trailing '/' elsewhere is not. */
    if (p && p[0] == '/' && p[1] == 0)
        return 0;
    return check_path(p, false, why, off, -EINVAL);
}
