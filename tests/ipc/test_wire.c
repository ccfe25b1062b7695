/* Wire format: round trips, and every way a request can be malformed. */
#include <criterion/criterion.h>

#include "ipc_test_util.h"

#define CAP 2048
static uint8_t shm[CAP] __attribute__((aligned(64)));
static uint8_t copy[CAP] __attribute__((aligned(64)));

static int decode_shm(sbx_ipc_request *req)
{
    size_t n = sbx_ipc_wire_copy_in(copy, shm, CAP);
    if (!n)
        return SBX_ERROR_INVALID_IPC;
    return sbx_ipc_wire_decode(copy, n, req);
}

static void encode_mix(void)
{
    static char inout[10] = "abcdefghi";
    sbx_arg a[] = { sbx_arg_string("héllo"), sbx_arg_u32(7), sbx_arg_u64(1ull << 40),
                    sbx_arg_handle(0xdeadbeefcafeull), sbx_arg_inout(inout, 10) };
    cr_assert_gt(sbx_ipc_wire_encode(shm, CAP, 77, 0, 5, a, 5, NULL), 0);
}

static uint8_t *param(unsigned i)
{
    return shm + SBX_WIRE_PARAMS + i * SBX_WIRE_PARAM_SIZE;
}

Test(ipc_wire, round_trip_every_type)
{
    encode_mix();
    sbx_ipc_request r;
    cr_assert_eq(decode_shm(&r), 0);
    cr_expect_eq(r.tag, 77);
    cr_expect_eq(r.seq, 5);
    cr_expect_eq(r.count, 5);
    cr_expect_eq(r.args[0].type, SBX_ARG_STRING);
    cr_expect_str_eq(r.args[0].v.str.ptr, "héllo");
    cr_expect_eq(r.args[0].v.str.len, strlen("héllo"));
    cr_expect_eq(r.args[1].v.u32, 7);
    cr_expect_eq(r.args[2].v.u64, 1ull << 40);
    cr_expect_eq(r.args[3].type, SBX_ARG_HANDLE);
    cr_expect_eq(r.args[3].v.handle, 0xdeadbeefcafeull);
    cr_expect_eq(r.args[4].v.buf.size, 10);
    cr_expect_eq(memcmp(r.args[4].v.buf.ptr, "abcdefghi", 10), 0);
    /* Arguments point into the private copy, never into shared memory. */
    for (unsigned i = 0; i < 5; i++) {
        const uint8_t *p = r.args[i].type == SBX_ARG_STRING ? (const uint8_t *)r.args[i].v.str.ptr
                                                            : copy + r.offset[i];
        cr_expect(p >= copy && p < copy + CAP);
        cr_expect_eq(r.offset[i] % 8, 0);
    }
}

Test(ipc_wire, zero_params_and_empty_values)
{
    cr_assert_gt(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, NULL, 0, NULL), 0);
    sbx_ipc_request r;
    cr_expect_eq(decode_shm(&r), 0);
    cr_expect_eq(r.count, 0);
    sbx_arg a[] = { sbx_arg_string(""), sbx_arg_inout(NULL, 0) };
    cr_assert_gt(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, a, 2, NULL), 0);
    cr_expect_eq(decode_shm(&r), 0);
    cr_expect_eq(r.args[0].v.str.len, 0);
}

Test(ipc_wire, encoder_refuses_bad_arguments)
{
    sbx_arg nul = sbx_arg_stringn("a\0b", 3);
    cr_expect_eq(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, &nul, 1, NULL), -EINVAL);
    sbx_arg many[10];
    for (int i = 0; i < 10; i++)
        many[i] = sbx_arg_u32(1);
    cr_expect_eq(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, many, 10, NULL), -EINVAL);
    cr_expect_gt(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, many, 9, NULL), 0);
    static char big[CAP];
    memset(big, 'x', sizeof big - 1);
    sbx_arg b = sbx_arg_string(big);
    cr_expect_eq(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, &b, 1, NULL), SBX_ERROR_TOO_LARGE);
    sbx_arg bad = { .type = (sbx_arg_type)42 };
    cr_expect_eq(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, &bad, 1, NULL), -EINVAL);
    sbx_arg nullbuf = sbx_arg_inout(NULL, 4);
    cr_expect_eq(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, &nullbuf, 1, NULL), -EINVAL);
}

#define EXPECT_INVALID(what)                                                          \
    do {                                                                              \
        sbx_ipc_request r_;                                                           \
        cr_expect_eq(decode_shm(&r_), SBX_ERROR_INVALID_IPC, "accepted: %s", what); \
    } while (0)

Test(ipc_wire, rejects_param_count_overflow)
{
    encode_mix();
    sbx_wire_put32(shm + SBX_WIRE_REQ_COUNT, 10);
    EXPECT_INVALID("count 10");
    sbx_wire_put32(shm + SBX_WIRE_REQ_COUNT, 0xffffffffu);
    EXPECT_INVALID("count 2^32-1");
    encode_mix();
    sbx_wire_put32(shm + SBX_WIRE_REQ_COUNT, 4); /* slot 4 still filled */
    EXPECT_INVALID("nonzero unused slot");
    encode_mix();
    sbx_wire_put32(shm + SBX_WIRE_REQ_COUNT, 6); /* slot 5 empty: type 0 */
    EXPECT_INVALID("count covers an empty slot");
}

Test(ipc_wire, rejects_totals_out_of_range)
{
    encode_mix();
    sbx_wire_put32(shm + SBX_WIRE_REQ_TOTAL, CAP + 8);
    EXPECT_INVALID("total beyond channel");
    sbx_wire_put32(shm + SBX_WIRE_REQ_TOTAL, 8);
    EXPECT_INVALID("total inside the header");
    sbx_wire_put32(shm + SBX_WIRE_REQ_TOTAL, 0xfffffff8u);
    EXPECT_INVALID("total huge");
    encode_mix();
    uint32_t t = sbx_wire_get32(shm + SBX_WIRE_REQ_TOTAL);
    sbx_wire_put32(shm + SBX_WIRE_REQ_TOTAL, t - 8);
    EXPECT_INVALID("total cuts the last parameter");
}

Test(ipc_wire, rejects_offsets_and_sizes_out_of_range)
{
    struct {
        unsigned slot, field;
        uint32_t value;
        const char *what;
    } cases[] = {
        { 1, 4, 0, "offset inside the header" },
        { 1, 4, SBX_WIRE_DATA - 8, "offset in the param table" },
        { 1, 4, CAP, "offset past the end" },
        { 1, 4, 0xfffffff8u, "offset near 2^32 (overflow)" },
        { 4, 8, 0xffffffffu, "size 2^32-1 (overflow)" },
        { 4, 8, CAP, "size past the end" },
        { 0, 8, 0xffffffffu, "string size + NUL wraps" },
        { 1, 8, 8, "u32 with size 8" },
        { 2, 8, 4, "u64 with size 4" },
        { 3, 8, 16, "handle with size 16" },
        { 1, 4, SBX_WIRE_DATA + 4, "misaligned offset" },
        { 2, 4, SBX_WIRE_DATA + 1, "misaligned offset by 1" },
        { 1, 0, 9, "unknown type" },
        { 1, 0, 0, "type none" },
        { 1, 12, 1, "reserved field" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        encode_mix();
        sbx_wire_put32(param(cases[i].slot) + cases[i].field, cases[i].value);
        EXPECT_INVALID(cases[i].what);
    }
}

Test(ipc_wire, rejects_overlapping_params)
{
    encode_mix();
    /* point the inout buffer at the string */
    sbx_wire_put32(param(4) + 4, sbx_wire_get32(param(0) + 4));
    EXPECT_INVALID("inout over string");
    encode_mix();
    sbx_wire_put32(param(2) + 4, sbx_wire_get32(param(1) + 4));
    EXPECT_INVALID("u64 over u32");
}

Test(ipc_wire, rejects_bad_strings)
{
    sbx_arg a = sbx_arg_string("abcdef");
    cr_assert_gt(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, &a, 1, NULL), 0);
    uint32_t off = sbx_wire_get32(param(0) + 4);
    sbx_ipc_request r;
    cr_assert_eq(decode_shm(&r), 0);
    shm[off + 6] = 'x';
    EXPECT_INVALID("no NUL terminator");
    shm[off + 6] = 0;
    shm[off + 2] = 0;
    EXPECT_INVALID("NUL inside");
    const char *bad_utf8[] = { "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                               "\xff", "\x80", "\xe2\x82" };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        sbx_arg s = sbx_arg_string(bad_utf8[i]);
        cr_assert_gt(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, &s, 1, NULL), 0);
        EXPECT_INVALID(bad_utf8[i]);
    }
    const char *good[] = { "plain", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        sbx_arg s = sbx_arg_string(good[i]);
        cr_assert_gt(sbx_ipc_wire_encode(shm, CAP, 1, 0, 1, &s, 1, NULL), 0);
        cr_expect_eq(decode_shm(&r), 0, "rejected valid %zu", i);
    }
}

Test(ipc_wire, rejects_bad_header_fields)
{
    encode_mix();
    sbx_wire_put32(shm + SBX_WIRE_REQ_FLAGS, 0x80);
    EXPECT_INVALID("unknown flag");
    encode_mix();
    sbx_wire_put32(shm + SBX_WIRE_REQ_RSVD, 1);
    EXPECT_INVALID("reserved word");
    encode_mix();
    sbx_wire_put32(shm + SBX_WIRE_REQ_TAG, 0);
    EXPECT_INVALID("tag 0");
}

Test(ipc_wire, copy_in_reads_the_total_once)
{
    /* The copy's own total decides; the decoder checks it matches len. */
    encode_mix();
    size_t n = sbx_ipc_wire_copy_in(copy, shm, CAP);
    cr_assert_gt(n, 0);
    sbx_wire_put32(copy + SBX_WIRE_REQ_TOTAL, (uint32_t)n + 8);
    sbx_ipc_request r;
    cr_expect_eq(sbx_ipc_wire_decode(copy, n, &r), SBX_ERROR_INVALID_IPC);
    /* an unaligned copy is refused outright */
    cr_expect_eq(sbx_ipc_wire_decode(copy + 1, n, &r), SBX_ERROR_INVALID_IPC);
}

Test(ipc_wire, signature_must_match_exactly)
{
    sbx_ipc_dispatcher *d = test_dispatcher();
    sbx_ipc_dispatcher_freeze(d);
    const sbx_ipc_service *p1 = sbx_ipc_dispatcher_find(d, SBX_IPC_TAG_PING1);
    cr_assert_not_null(p1);
    cr_expect_null(sbx_ipc_dispatcher_find(d, 12345));
    sbx_ipc_request r = { .tag = SBX_IPC_TAG_PING1, .count = 1 };
    r.args[0] = sbx_arg_u32(1);
    cr_expect(sbx_ipc_service_matches(p1, &r));
    r.args[0] = sbx_arg_u64(1);
    cr_expect_not(sbx_ipc_service_matches(p1, &r));
    r.args[0] = sbx_arg_u32(1);
    r.count = 2;
    r.args[1] = sbx_arg_u32(1);
    cr_expect_not(sbx_ipc_service_matches(p1, &r));
    r.count = 0;
    cr_expect_not(sbx_ipc_service_matches(p1, &r));
    uint64_t runs = atomic_load(&handler_runs);
    sbx_ipc_info info = { .fd = -1 };
    r.tag = TAG_SLOW;
    r.count = 1;
    r.args[0] = sbx_arg_string("x");
    cr_expect_eq(sbx_ipc_dispatch(d, &r, &info), SBX_ERROR_INVALID_IPC);
    cr_expect_eq(atomic_load(&handler_runs), runs, "a handler ran for a mismatched request");
    /* registration rules */
    sbx_ipc_service dup = { .tag = SBX_IPC_TAG_PING1, .handler = h_slow };
    cr_expect_eq(sbx_ipc_dispatcher_register(d, &dup), SBX_ERROR_FROZEN);
    sbx_ipc_dispatcher_free(d);
    cr_assert_eq(sbx_ipc_dispatcher_new(&d), 0);
    cr_expect_eq(sbx_ipc_dispatcher_register(d, &dup), 0);
    cr_expect_eq(sbx_ipc_dispatcher_register(d, &dup), -EEXIST);
    sbx_ipc_service bad = { .tag = 5, .handler = h_slow, .nparams = 10 };
    cr_expect_eq(sbx_ipc_dispatcher_register(d, &bad), -EINVAL);
    bad.nparams = 1;
    bad.params[0] = (sbx_arg_type)77;
    cr_expect_eq(sbx_ipc_dispatcher_register(d, &bad), -EINVAL);
    bad.tag = 0;
    cr_expect_eq(sbx_ipc_dispatcher_register(d, &bad), -EINVAL);
    sbx_ipc_dispatcher_free(d);
}
