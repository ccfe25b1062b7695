/* Pickle: round trips, alignment, bounds and type checks, garbage. */
#include <criterion/criterion.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>
#include <sbx/pickle.h>

#include "channel/pickle_internal.h"

static sbx_pickle *full_pickle(void)
{
    sbx_pickle *p = sbx_pickle_new();
    cr_assert_not_null(p);
    cr_assert_eq(sbx_pickle_write_bool(p, true), 0);
    cr_assert_eq(sbx_pickle_write_bool(p, false), 0);
    cr_assert_eq(sbx_pickle_write_int32(p, INT32_MIN), 0);
    cr_assert_eq(sbx_pickle_write_int32(p, -1), 0);
    cr_assert_eq(sbx_pickle_write_uint32(p, UINT32_MAX), 0);
    cr_assert_eq(sbx_pickle_write_int64(p, INT64_MIN), 0);
    cr_assert_eq(sbx_pickle_write_uint64(p, UINT64_MAX - 5), 0);
    cr_assert_eq(sbx_pickle_write_double(p, -DBL_MAX), 0);
    cr_assert_eq(sbx_pickle_write_double(p, 0.1), 0);
    cr_assert_eq(sbx_pickle_write_cstr(p, "hello, pickle"), 0);
    cr_assert_eq(sbx_pickle_write_string(p, "", 0), 0);
    cr_assert_eq(sbx_pickle_write_bytes(p, "\0\1\2\0\3", 5), 0);
    cr_assert_eq(sbx_pickle_write_bytes(p, NULL, 0), 0);
    cr_assert_eq(sbx_pickle_write_fd_index(p, 7), 0);
    return p;
}

static void check_full(const void *data, size_t size)
{
    sbx_pickle_reader r;
    sbx_pickle_reader_init(&r, data, size);
    bool b;
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    uint64_t u64;
    double d;
    const char *s;
    const void *bytes;
    size_t n;
    cr_assert_eq(sbx_pickle_read_bool(&r, &b), 0);
    cr_expect(b);
    cr_assert_eq(sbx_pickle_read_bool(&r, &b), 0);
    cr_expect(!b);
    cr_assert_eq(sbx_pickle_read_int32(&r, &i32), 0);
    cr_expect_eq(i32, INT32_MIN);
    cr_assert_eq(sbx_pickle_read_int32(&r, &i32), 0);
    cr_expect_eq(i32, -1);
    cr_assert_eq(sbx_pickle_read_uint32(&r, &u32), 0);
    cr_expect_eq(u32, UINT32_MAX);
    cr_assert_eq(sbx_pickle_read_int64(&r, &i64), 0);
    cr_expect_eq(i64, INT64_MIN);
    cr_assert_eq(sbx_pickle_read_uint64(&r, &u64), 0);
    cr_expect_eq(u64, UINT64_MAX - 5);
    cr_assert_eq(sbx_pickle_read_double(&r, &d), 0);
    cr_expect(d == -DBL_MAX);
    cr_assert_eq(sbx_pickle_read_double(&r, &d), 0);
    cr_expect(d == 0.1);
    cr_assert_eq(sbx_pickle_read_string(&r, &s, &n), 0);
    cr_expect_eq(n, strlen("hello, pickle"));
    cr_expect_eq(memcmp(s, "hello, pickle", n), 0);
    cr_assert_eq(sbx_pickle_read_string(&r, &s, &n), 0);
    cr_expect_eq(n, 0);
    cr_assert_eq(sbx_pickle_read_bytes(&r, &bytes, &n), 0);
    cr_expect_eq(n, 5);
    cr_expect_eq(memcmp(bytes, "\0\1\2\0\3", 5), 0);
    cr_assert_eq(sbx_pickle_read_bytes(&r, &bytes, &n), 0);
    cr_expect_eq(n, 0);
    cr_assert_eq(sbx_pickle_read_fd_index(&r, &u32), 0);
    cr_expect_eq(u32, 7);
    cr_expect(sbx_pickle_reader_done(&r));
    /* Past the end: fails, and stays failed. */
    cr_expect_eq(sbx_pickle_read_bool(&r, &b), SBX_ERROR_INVALID_IPC);
    cr_expect(!sbx_pickle_reader_done(&r));
}

Test(pickle, round_trip_every_type)
{
    sbx_pickle *p = full_pickle();
    cr_expect_eq(sbx_pickle_size(p) % SBX_PICKLE_ALIGN, 0);
    check_full(sbx_pickle_data(p), sbx_pickle_size(p));
    sbx_pickle_free(p);
}

Test(pickle, nan_and_infinity_survive)
{
    sbx_pickle *p = sbx_pickle_new();
    sbx_pickle_write_double(p, NAN);
    sbx_pickle_write_double(p, -INFINITY);
    sbx_pickle_reader r;
    sbx_pickle_reader_init(&r, sbx_pickle_data(p), sbx_pickle_size(p));
    double a, b;
    cr_assert_eq(sbx_pickle_read_double(&r, &a), 0);
    cr_assert_eq(sbx_pickle_read_double(&r, &b), 0);
    cr_expect(isnan(a));
    cr_expect(isinf(b) && b < 0);
    sbx_pickle_free(p);
}

/* Strings of every length mod 4 before every other field type keep the
 * fields aligned, and reading from a buffer at any address offset works. */
Test(pickle, every_misalignment)
{
    for (size_t len = 0; len < 9; len++) {
        char str[16];
        memset(str, 'a' + (int)len, len);
        sbx_pickle *p = sbx_pickle_new();
        cr_assert_eq(sbx_pickle_write_string(p, str, len), 0);
        cr_assert_eq(sbx_pickle_write_uint64(p, 0x0102030405060708ull), 0);
        cr_assert_eq(sbx_pickle_write_bytes(p, str, len), 0);
        cr_assert_eq(sbx_pickle_write_int32(p, -42), 0);
        cr_expect_eq(sbx_pickle_size(p) % 4, 0, "len %zu", len);
        for (size_t shift = 0; shift < 8; shift++) {
            uint8_t *buf = malloc(sbx_pickle_size(p) + shift);
            memcpy(buf + shift, sbx_pickle_data(p), sbx_pickle_size(p));
            sbx_pickle_reader r;
            sbx_pickle_reader_init(&r, buf + shift, sbx_pickle_size(p));
            const char *s;
            const void *b;
            size_t n;
            uint64_t u;
            int32_t i;
            cr_assert_eq(sbx_pickle_read_string(&r, &s, &n), 0);
            cr_expect_eq(n, len);
            cr_expect_eq(memcmp(s, str, n), 0);
            cr_assert_eq(sbx_pickle_read_uint64(&r, &u), 0);
            cr_expect_eq(u, 0x0102030405060708ull);
            cr_assert_eq(sbx_pickle_read_bytes(&r, &b, &n), 0);
            cr_expect_eq(n, len);
            cr_assert_eq(sbx_pickle_read_int32(&r, &i), 0);
            cr_expect_eq(i, -42);
            cr_expect(sbx_pickle_reader_done(&r));
            free(buf);
        }
        /* The whole pickle at a full set of shifts also for every type. */
        sbx_pickle_free(p);
    }
    sbx_pickle *f = full_pickle();
    for (size_t shift = 1; shift < 4; shift++) {
        uint8_t *buf = malloc(sbx_pickle_size(f) + shift);
        memcpy(buf + shift, sbx_pickle_data(f), sbx_pickle_size(f));
        check_full(buf + shift, sbx_pickle_size(f));
        free(buf);
    }
    sbx_pickle_free(f);
}

Test(pickle, little_endian_layout)
{
    sbx_pickle *p = sbx_pickle_new();
    sbx_pickle_write_uint32(p, 0x11223344u);
    sbx_pickle_write_bytes(p, "xyz", 3);
    const uint8_t want[] = { 3, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 8, 0, 0, 0, 3, 0, 0, 0, 'x', 'y', 'z', 0 };
    cr_assert_eq(sbx_pickle_size(p), sizeof want);
    cr_expect_eq(memcmp(sbx_pickle_data(p), want, sizeof want), 0);
    sbx_pickle_free(p);
}

Test(pickle, type_mismatch_fails_and_is_sticky)
{
    sbx_pickle *p = sbx_pickle_new();
    sbx_pickle_write_int32(p, 5);
    sbx_pickle_write_cstr(p, "x");
    sbx_pickle_reader r;
    sbx_pickle_reader_init(&r, sbx_pickle_data(p), sbx_pickle_size(p));
    uint32_t u = 99;
    cr_expect_eq(sbx_pickle_read_uint32(&r, &u), SBX_ERROR_INVALID_IPC);
    cr_expect_eq(u, 99, "output untouched on failure");
    int32_t i = 0;
    /* Sticky: even the right type fails now. */
    cr_expect_eq(sbx_pickle_read_int32(&r, &i), SBX_ERROR_INVALID_IPC);
    cr_expect_eq(sbx_pickle_reader_error(&r), SBX_ERROR_INVALID_IPC);

    const uint8_t *d = sbx_pickle_data(p);
    size_t sz = sbx_pickle_size(p);
    /* Each wrong-type read at each position fails. */
    sbx_pickle_reader_init(&r, d, sz);
    bool b;
    cr_expect_lt(sbx_pickle_read_bool(&r, &b), 0);
    sbx_pickle_reader_init(&r, d, sz);
    int64_t i64;
    cr_expect_lt(sbx_pickle_read_int64(&r, &i64), 0);
    sbx_pickle_reader_init(&r, d, sz);
    cr_assert_eq(sbx_pickle_read_int32(&r, &i), 0);
    const void *bytes;
    size_t n;
    cr_expect_lt(sbx_pickle_read_bytes(&r, &bytes, &n), 0, "a string is not bytes");
    sbx_pickle_free(p);
}

Test(pickle, every_truncation_fails_cleanly)
{
    sbx_pickle *p = full_pickle();
    size_t sz = sbx_pickle_size(p);
    /* The field boundaries of the whole pickle. */
    size_t bounds[] = { 0, 8, 16, 24, 32, 40, 52, 64, 76, 88, 112, 120, 136, 144, 152 };
    cr_assert_eq(bounds[14], sz);
    for (size_t cut = 0; cut < sz; cut++) {
        /* exact-size copy so ASan sees any over-read */
        uint8_t *buf = malloc(cut ? cut : 1);
        memcpy(buf, sbx_pickle_data(p), cut);
        sbx_pickle_reader r;
        sbx_pickle_reader_init(&r, buf, cut);
        int fields = 0;
        for (;;) {
            sbx_pickle_type t = sbx_pickle_reader_peek(&r);
            int e;
            union { bool b; int32_t i; uint32_t u; int64_t l; uint64_t q; double d; } v;
            const char *s;
            const void *bb;
            size_t n;
            switch (t) {
            case SBX_PICKLE_BOOL: e = sbx_pickle_read_bool(&r, &v.b); break;
            case SBX_PICKLE_INT32: e = sbx_pickle_read_int32(&r, &v.i); break;
            case SBX_PICKLE_UINT32: e = sbx_pickle_read_uint32(&r, &v.u); break;
            case SBX_PICKLE_INT64: e = sbx_pickle_read_int64(&r, &v.l); break;
            case SBX_PICKLE_UINT64: e = sbx_pickle_read_uint64(&r, &v.q); break;
            case SBX_PICKLE_DOUBLE: e = sbx_pickle_read_double(&r, &v.d); break;
            case SBX_PICKLE_STRING: e = sbx_pickle_read_string(&r, &s, &n); break;
            case SBX_PICKLE_BYTES: e = sbx_pickle_read_bytes(&r, &bb, &n); break;
            case SBX_PICKLE_FD: e = sbx_pickle_read_fd_index(&r, &v.u); break;
            default: e = -1; break;
            }
            if (e < 0)
                break;
            fields++;
        }
        int whole = -1;
        for (int k = 0; k < 15; k++)
            if (bounds[k] == cut)
                whole = k;
        if (whole >= 0) {
            cr_expect(sbx_pickle_reader_done(&r), "cut %zu at a boundary", cut);
            cr_expect_eq(fields, whole);
        } else {
            cr_expect(!sbx_pickle_reader_done(&r), "cut %zu", cut);
            cr_expect_lt(fields, 14);
        }
        free(buf);
    }
    sbx_pickle_free(p);
}

Test(pickle, malformed_fields_rejected)
{
    /* bool with value 2 */
    uint8_t bad_bool[] = { 1, 0, 0, 0, 2, 0, 0, 0 };
    sbx_pickle_reader r;
    bool b;
    sbx_pickle_reader_init(&r, bad_bool, sizeof bad_bool);
    cr_expect_lt(sbx_pickle_read_bool(&r, &b), 0);
    /* tag with upper bits set */
    uint8_t bad_tag[] = { 3, 0, 1, 0, 2, 0, 0, 0 };
    uint32_t u;
    sbx_pickle_reader_init(&r, bad_tag, sizeof bad_tag);
    cr_expect_lt(sbx_pickle_read_uint32(&r, &u), 0);
    cr_expect_eq(sbx_pickle_reader_peek(&r), 0);
    /* string with NUL inside */
    uint8_t nul_str[] = { 7, 0, 0, 0, 3, 0, 0, 0, 'a', 0, 'b', 0 };
    const char *s;
    size_t n;
    sbx_pickle_reader_init(&r, nul_str, sizeof nul_str);
    cr_expect_lt(sbx_pickle_read_string(&r, &s, &n), 0);
    /* non-zero padding */
    uint8_t pad[] = { 8, 0, 0, 0, 1, 0, 0, 0, 'a', 1, 0, 0 };
    const void *d;
    sbx_pickle_reader_init(&r, pad, sizeof pad);
    cr_expect_lt(sbx_pickle_read_bytes(&r, &d, &n), 0);
    /* length near 2^32: must not wrap */
    uint8_t huge[] = { 8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0 };
    sbx_pickle_reader_init(&r, huge, sizeof huge);
    cr_expect_lt(sbx_pickle_read_bytes(&r, &d, &n), 0);
    uint8_t huge2[] = { 8, 0, 0, 0, 0xFD, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0 };
    sbx_pickle_reader_init(&r, huge2, sizeof huge2);
    cr_expect_lt(sbx_pickle_read_bytes(&r, &d, &n), 0);
    /* writer refuses a string with NUL */
    sbx_pickle *p = sbx_pickle_new();
    cr_expect_eq(sbx_pickle_write_string(p, "a\0b", 3), -EINVAL);
    cr_expect_eq(sbx_pickle_size(p), 0);
    sbx_pickle_free(p);
}

Test(pickle, string_copy_bounds)
{
    sbx_pickle *p = sbx_pickle_new();
    sbx_pickle_write_cstr(p, "abcdef");
    sbx_pickle_reader r;
    char buf[7];
    sbx_pickle_reader_init(&r, sbx_pickle_data(p), sbx_pickle_size(p));
    cr_expect_eq(sbx_pickle_read_string_copy(&r, buf, 6), -ENAMETOOLONG);
    sbx_pickle_reader_init(&r, sbx_pickle_data(p), sbx_pickle_size(p));
    cr_expect_eq(sbx_pickle_read_string_copy(&r, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "abcdef");
    sbx_pickle_free(p);
}

Test(pickle, hard_maximum_size)
{
    sbx_pickle *p = sbx_pickle_new();
    size_t big = SBX_PICKLE_MAX_SIZE - 64;
    char *blob = calloc(1, big);
    cr_assert_not_null(blob);
    cr_assert_eq(sbx_pickle_write_bytes(p, blob, big), 0);
    size_t before = sbx_pickle_size(p);
    cr_expect_eq(sbx_pickle_write_bytes(p, blob, 64), SBX_ERROR_TOO_LARGE);
    cr_expect_eq(sbx_pickle_size(p), before, "failed write leaves the pickle unchanged");
    cr_expect_eq(sbx_pickle_write_bytes(p, blob, SBX_PICKLE_MAX_SIZE + 1), SBX_ERROR_TOO_LARGE);
    free(blob);
    sbx_pickle_free(p);
}

Test(pickle, garbage_never_crashes)
{
    uint64_t x = 0x1234567887654321ull;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(iter % 97);
        uint8_t *buf = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* bias toward small tags so the parser goes deep */
            buf[i] = (uint8_t)((i % 4 == 0) ? x % 11 : (i % 4 == 1 ? 0 : x));
        }
        sbx_pickle_reader r;
        sbx_pickle_reader_init(&r, buf, len);
        for (int k = 0; k < 40; k++) {
            const void *d;
            const char *s;
            size_t n;
            uint64_t q;
            int e;
            switch ((x >> k) % 3) {
            case 0: e = sbx_pickle_read_bytes(&r, &d, &n); if (!e) cr_assert_leq((const uint8_t *)d + n, buf + len); break;
            case 1: e = sbx_pickle_read_string(&r, &s, &n); if (!e) cr_assert_leq((const uint8_t *)s + n, buf + len); break;
            default: e = sbx_pickle_read_uint64(&r, &q); break;
            }
            (void)e;
        }
        free(buf);
    }
}
