/* libFuzzer target: the broker's request validator. The input is a channel
 * buffer as a hostile target could leave it (head words, then the
 * request); it goes through the same copy-out and decode the server runs, then through the dispatcher's
 * signature check. Valid decodes are checked for the invariants the
 * handlers rely on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/dispatcher.h"
#include "ipc/wire.h"

/* Compile the validator and the dispatcher into this file, so that with
 * -Dfuzz=enabled they carry the fuzzer's coverage instrumentation (the
 * static library they also live in is built without it). The archive's
 * copies are then never pulled in. */
#include "ipc/dispatcher.c"
#include "ipc/wire.c"

#define CAP 4096

static int noop(sbx_ipc_info *info, const sbx_arg *args)
{
    (void)info;
    (void)args;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t shm[CAP] __attribute__((aligned(64)));
    static uint8_t copy[CAP] __attribute__((aligned(64)));
    static sbx_ipc_dispatcher *d;
    if (!d) {
        sbx_ipc_dispatcher_new(&d);
        sbx_ipc_dispatcher_add_builtins(d);
        sbx_ipc_service s = { .tag = 3, .nparams = 3, .handler = noop,
                              .params = { SBX_ARG_STRING, SBX_ARG_U64, SBX_ARG_INOUT } };
        sbx_ipc_dispatcher_register(d, &s);
        sbx_ipc_dispatcher_freeze(d);
    }
    size_t cap = size < CAP ? size : CAP;
    memset(shm, 0, CAP);
    memcpy(shm, data, cap);
    if (cap <= SBX_IPC_CHAN_HEAD)
        return 0;
    /* as serve(): the request starts after ping and cli_cpu */
    size_t n = sbx_ipc_wire_copy_in(copy, shm + SBX_IPC_CHAN_HEAD, cap - SBX_IPC_CHAN_HEAD);
    if (!n)
        return 0;
    if (n > cap - SBX_IPC_CHAN_HEAD)
        abort();
    sbx_ipc_request req;
    if (sbx_ipc_wire_decode(copy, n, &req) != 0)
        return 0;
    if (req.count > SBX_IPC_MAX_PARAMS)
        abort();
    for (uint32_t i = 0; i < req.count; i++) {
        const sbx_arg *a = &req.args[i];
        if (req.offset[i] % 8 || req.offset[i] < SBX_WIRE_DATA_AT(req.count) || req.offset[i] > n)
            abort();
        switch (a->type) {
        case SBX_ARG_STRING:
            if (req.offset[i] + a->v.str.len >= n || strlen(a->v.str.ptr) != a->v.str.len)
                abort();
            break;
        case SBX_ARG_INOUT:
            if (req.offset[i] + a->v.buf.size > n)
                abort();
            /* touch every byte: ASan catches anything outside the copy */
            for (size_t k = 0; k < a->v.buf.size; k++)
                ((volatile uint8_t *)a->v.buf.ptr)[k] ^= 0;
            break;
        case SBX_ARG_U32:
        case SBX_ARG_U64:
        case SBX_ARG_HANDLE:
            break;
        default:
            abort();
        }
    }
    sbx_ipc_info info = { .fd = -1 };
    (void)sbx_ipc_dispatch(d, &req, &info);
    return 0;
}

/* Valid requests for the replay driver to mutate. */
size_t sbx_fuzz_seed(unsigned index, uint8_t *buf, size_t cap)
{
    static char inout[16] = "0123456789abcde";
    sbx_arg a[9];
    unsigned n = 0;
    switch (index % 4) {
    case 0:
        a[n++] = sbx_arg_u32(index);
        break;
    case 1:
        a[n++] = sbx_arg_inout(inout, 4);
        break;
    case 2:
        a[n++] = sbx_arg_string("/some/path/\xc3\xa9");
        a[n++] = sbx_arg_u64(index);
        a[n++] = sbx_arg_inout(inout, index % 16);
        break;
    default:
        for (; n < 9; n++)
            a[n] = n % 2 ? sbx_arg_handle(n) : sbx_arg_string("x");
    }
    uint32_t tag = index % 4 == 3 ? 9 : (index % 4 == 2 ? 3 : index % 4 + 1);
    cap = cap < CAP ? cap : CAP;
    if (cap <= SBX_IPC_CHAN_HEAD)
        return 0;
    sbx_wire_put32(buf, index + 1);       /* ping */
    sbx_wire_put32(buf + 4, index % 3);   /* cli_cpu */
    int r = sbx_ipc_wire_encode(buf + SBX_IPC_CHAN_HEAD, cap - SBX_IPC_CHAN_HEAD, tag, index & 1,
                                index + 1, a, n, NULL);
    return r < 0 ? 0 : (size_t)r + SBX_IPC_CHAN_HEAD;
}
