/* sbx — cross-call wire format: encoder (target) and validator (broker). */
#include "ipc/wire.h"

#include <errno.h>
#include <string.h>

static size_t align8(size_t v)
{
    return (v + SBX_WIRE_ALIGN - 1) & ~(size_t)(SBX_WIRE_ALIGN - 1);
}

int sbx_ipc_wire_encode(uint8_t *buf, size_t cap, uint32_t tag, uint32_t flags, uint32_t seq,
                        const sbx_arg *args, unsigned nargs, uint32_t *offsets)
{
    if (nargs > SBX_IPC_MAX_PARAMS || (nargs && !args) || cap < SBX_WIRE_DATA)
        return -EINVAL;
    size_t off = SBX_WIRE_DATA;
    uint8_t table[SBX_IPC_MAX_PARAMS * SBX_WIRE_PARAM_SIZE];
    memset(table, 0, sizeof table);
    for (unsigned i = 0; i < nargs; i++) {
        const sbx_arg *a = &args[i];
        const void *src = NULL;
        size_t size = 0, room;
        uint32_t v32;
        uint64_t v64;
        switch (a->type) {
        case SBX_ARG_STRING:
            if (!a->v.str.ptr && a->v.str.len)
                return -EINVAL;
            if (a->v.str.len && memchr(a->v.str.ptr, 0, a->v.str.len))
                return -EINVAL;
            src = a->v.str.ptr;
            size = a->v.str.len;
            room = size + 1;
            break;
        case SBX_ARG_U32:
            v32 = a->v.u32;
            src = &v32;
            size = room = 4;
            break;
        case SBX_ARG_U64:
        case SBX_ARG_HANDLE:
            v64 = a->type == SBX_ARG_U64 ? a->v.u64 : a->v.handle;
            src = &v64;
            size = room = 8;
            break;
        case SBX_ARG_INOUT:
            if (!a->v.buf.ptr && a->v.buf.size)
                return -EINVAL;
            src = a->v.buf.ptr;
            size = room = a->v.buf.size;
            break;
        default:
            return -EINVAL;
        }
        off = align8(off);
        if (room > cap || off > cap - room)
            return SBX_ERROR_TOO_LARGE;
        if (size)
            memcpy(buf + off, src, size);
        if (a->type == SBX_ARG_STRING)
            buf[off + size] = 0;
        uint8_t *t = table + i * SBX_WIRE_PARAM_SIZE;
        sbx_wire_put32(t, (uint32_t)a->type);
        sbx_wire_put32(t + 4, (uint32_t)off);
        sbx_wire_put32(t + 8, (uint32_t)size);
        if (offsets)
            offsets[i] = (uint32_t)off;
        off += room;
    }
    off = align8(off);
    if (off > cap)
        return SBX_ERROR_TOO_LARGE;
    sbx_wire_put32(buf + SBX_WIRE_REQ_TAG, tag);
    sbx_wire_put32(buf + SBX_WIRE_REQ_COUNT, nargs);
    sbx_wire_put32(buf + SBX_WIRE_REQ_TOTAL, (uint32_t)off);
    sbx_wire_put32(buf + SBX_WIRE_REQ_FLAGS, flags);
    sbx_wire_put32(buf + SBX_WIRE_REQ_SEQ, seq);
    sbx_wire_put32(buf + SBX_WIRE_REQ_RSVD, 0);
    memcpy(buf + SBX_WIRE_PARAMS, table, sizeof table);
    return (int)off;
}

size_t sbx_ipc_wire_copy_in(uint8_t *copy, const uint8_t *shm, size_t cap)
{
    if (cap < SBX_WIRE_DATA)
        return 0;
    /* First the fixed head; the total is taken from the copy, so a target
     * rewriting it after this point changes nothing we use. */
    memcpy(copy, shm, SBX_WIRE_DATA);
    uint32_t total = sbx_wire_get32(copy + SBX_WIRE_REQ_TOTAL);
    if (total < SBX_WIRE_DATA || total > cap)
        return 0;
    memcpy(copy + SBX_WIRE_DATA, shm + SBX_WIRE_DATA, total - SBX_WIRE_DATA);
    return total;
}

int sbx_ipc_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07u;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

int sbx_ipc_wire_decode(uint8_t *copy, size_t len, sbx_ipc_request *req)
{
    memset(req, 0, sizeof *req);
    if (len < SBX_WIRE_DATA || len > UINT32_MAX || ((uintptr_t)copy & 7u))
        return SBX_ERROR_INVALID_IPC;
    uint32_t total = sbx_wire_get32(copy + SBX_WIRE_REQ_TOTAL);
    uint32_t count = sbx_wire_get32(copy + SBX_WIRE_REQ_COUNT);
    uint32_t flags = sbx_wire_get32(copy + SBX_WIRE_REQ_FLAGS);
    if (total != len || count > SBX_IPC_MAX_PARAMS || (flags & ~SBX_WIRE_F_ALL) ||
        sbx_wire_get32(copy + SBX_WIRE_REQ_RSVD) != 0)
        return SBX_ERROR_INVALID_IPC;
    req->tag = sbx_wire_get32(copy + SBX_WIRE_REQ_TAG);
    if (req->tag == 0)
        return SBX_ERROR_INVALID_IPC;
    req->flags = flags;
    req->seq = sbx_wire_get32(copy + SBX_WIRE_REQ_SEQ);
    req->count = count;
    req->total = total;

    uint32_t end[SBX_IPC_MAX_PARAMS];
    for (uint32_t i = 0; i < SBX_IPC_MAX_PARAMS; i++) {
        const uint8_t *t = copy + SBX_WIRE_PARAMS + i * SBX_WIRE_PARAM_SIZE;
        uint32_t type = sbx_wire_get32(t), off = sbx_wire_get32(t + 4);
        uint32_t size = sbx_wire_get32(t + 8), rsvd = sbx_wire_get32(t + 12);
        if (i >= count) {
            if (type | off | size | rsvd)
                return SBX_ERROR_INVALID_IPC;
            continue;
        }
        if (rsvd || off < SBX_WIRE_DATA || off % SBX_WIRE_ALIGN || off > total)
            return SBX_ERROR_INVALID_IPC;
        /* 64-bit arithmetic: off + size + 1 cannot wrap. */
        uint64_t room = size;
        if (type == SBX_ARG_STRING)
            room += 1;
        if ((uint64_t)off + room > total)
            return SBX_ERROR_INVALID_IPC;
        uint8_t *p = copy + off;
        sbx_arg *a = &req->args[i];
        switch (type) {
        case SBX_ARG_STRING:
            if (p[size] != 0 || memchr(p, 0, size) || !sbx_ipc_utf8_valid(p, size))
                return SBX_ERROR_INVALID_IPC;
            a->type = SBX_ARG_STRING;
            a->v.str.ptr = (const char *)p;
            a->v.str.len = size;
            break;
        case SBX_ARG_U32:
            if (size != 4)
                return SBX_ERROR_INVALID_IPC;
            a->type = SBX_ARG_U32;
            a->v.u32 = sbx_wire_get32(p);
            break;
        case SBX_ARG_U64:
        case SBX_ARG_HANDLE:
            if (size != 8)
                return SBX_ERROR_INVALID_IPC;
            a->type = (sbx_arg_type)type;
            if (type == SBX_ARG_U64)
                a->v.u64 = sbx_wire_get64(p);
            else
                a->v.handle = sbx_wire_get64(p);
            break;
        case SBX_ARG_INOUT:
            a->type = SBX_ARG_INOUT;
            a->v.buf.ptr = p;
            a->v.buf.size = size;
            break;
        default:
            return SBX_ERROR_INVALID_IPC;
        }
        req->offset[i] = off;
        end[i] = (uint32_t)(off + room);
        /* No parameter may overlap another: a handler rewriting an in/out
         * buffer must not change a string it already checked. */
        for (uint32_t j = 0; j < i; j++)
            if (room && end[j] > req->offset[j] && off < end[j] && req->offset[j] < end[i])
                return SBX_ERROR_INVALID_IPC;
    }
    return 0;
}
