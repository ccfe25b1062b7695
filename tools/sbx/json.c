/* sbx command — JSON writer (see json.h). */
#include "json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbx_jbuf_reset(sbx_jbuf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->p)
        b->p[0] = 0;
}

void sbx_jbuf_free(sbx_jbuf *b)
{
    free(b->p);
    *b = (sbx_jbuf){ 0 };
}

const char *sbx_jbuf_text(sbx_jbuf *b)
{
    return b->p ? b->p : "";
}

static bool reserve(sbx_jbuf *b, size_t more)
{
    if (b->failed)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void sbx_jbuf_raw(sbx_jbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if the bytes
 * there do not form one (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, 0xc0/0xc1, 0xf5..0xff */
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

void sbx_jbuf_str(sbx_jbuf *b, const char *str, size_t n)
{
    if (!str) {
        sbx_jbuf_raw(b, "null", 4);
        return;
    }
    const unsigned char *s = (const unsigned char *)str;
    sbx_jbuf_raw(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        const char *esc = NULL;
        char tmp[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\t': esc = "\\t"; break;
        case '\r': esc = "\\r"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                esc = tmp;
            }
            break;
        }
        if (esc) {
            sbx_jbuf_raw(b, esc, strlen(esc));
            i++;
            continue;
        }
        size_t len = utf8_len(s + i, n - i);
        if (len == 0) {
            sbx_jbuf_raw(b, "\\ufffd", 6);
            i++;
            continue;
        }
        /* A run of plain bytes at once. */
        sbx_jbuf_raw(b, (const char *)s + i, len);
        i += len;
    }
    sbx_jbuf_raw(b, "\"", 1);
}

void sbx_jbuf_cstr(sbx_jbuf *b, const char *s)
{
    sbx_jbuf_str(b, s, s ? strlen(s) : 0);
}

void sbx_jbuf_open(sbx_jbuf *b)
{
    sbx_jbuf_raw(b, "{", 1);
}

void sbx_jbuf_close(sbx_jbuf *b)
{
    sbx_jbuf_raw(b, "}", 1);
}

static void key(sbx_jbuf *b, const char *k)
{
    if (b->len > 0 && b->p[b->len - 1] != '{')
        sbx_jbuf_raw(b, ",", 1);
    sbx_jbuf_cstr(b, k);
    sbx_jbuf_raw(b, ":", 1);
}

void sbx_jbuf_key_str(sbx_jbuf *b, const char *k, const char *value)
{
    key(b, k);
    sbx_jbuf_cstr(b, value);
}

void sbx_jbuf_key_int(sbx_jbuf *b, const char *k, int64_t value)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRId64, value);
    key(b, k);
    sbx_jbuf_raw(b, tmp, (size_t)n);
}

void sbx_jbuf_key_uint(sbx_jbuf *b, const char *k, uint64_t value)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, value);
    key(b, k);
    sbx_jbuf_raw(b, tmp, (size_t)n);
}

void sbx_jbuf_key_bool(sbx_jbuf *b, const char *k, bool value)
{
    key(b, k);
    sbx_jbuf_raw(b, value ? "true" : "false", value ? 4 : 5);
}

void sbx_jbuf_key_null(sbx_jbuf *b, const char *k)
{
    key(b, k);
    sbx_jbuf_raw(b, "null", 4);
}
