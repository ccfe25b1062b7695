/* sbx internal — a word-at-a-time scan shared by the canonical-path
 * checks (files_path's canonicaliser, files_policy's evaluator guard).
 * Pure, no allocation: async-signal-safe. */
#ifndef SBX_BASE_PATH_SCAN_H
#define SBX_BASE_PATH_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 0x80 in each byte of x that equals c, 0 elsewhere (exact per byte: no
 * borrow crosses bytes). */
static inline uint64_t sbx_path_bytes_eq(uint64_t x, unsigned char c)
{
    const uint64_t lows = 0x7f7f7f7f7f7f7f7full;
    uint64_t y = x ^ (0x0101010101010101ull * c);
    return ~(((y & lows) + lows) | y) & ~lows;
}

/* Does p[0..len) hold a NUL, or a '/' followed by '/' or '.'? False means
 * every component is non-empty and none starts with '.' — in particular
 * none is "." or "..". A quick refusal for the checks, which look closer
 * only when this says true. Eight bytes and their followers at a time. */
static inline bool sbx_path_has_dot_or_empty(const char *p, size_t len)
{
    size_t i = 0;
    for (; i + 9 <= len; i += 8) {
        uint64_t a, b;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 1, 8); /* b's byte k follows a's byte k */
        if ((sbx_path_bytes_eq(a, '/') & (sbx_path_bytes_eq(b, '/') | sbx_path_bytes_eq(b, '.'))) |
            sbx_path_bytes_eq(a, '\0'))
            return true;
    }
    for (; i < len; i++) {
        if (p[i] == '\0')
            return true;
        if (p[i] == '/' && i + 1 < len && (p[i + 1] == '/' || p[i + 1] == '.'))
            return true;
    }
    return false;
}

#endif
