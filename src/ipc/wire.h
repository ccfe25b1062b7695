/* sbx internal — the cross-call wire format (docs/ipc-protocol.md).
 *
 * Client side: encode typed arguments in place into a channel buffer.
 * Broker side: copy a request out of shared memory, then decode and
 * validate the private copy into typed arguments. */
#ifndef SBX_IPC_WIRE_H
#define SBX_IPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <sbx/ipc.h>

#include "ipc/layout.h"

typedef struct sbx_ipc_request {
    uint32_t tag;
    uint32_t flags;
    uint32_t seq;
    uint32_t count;
    uint32_t total;
    uint32_t offset[SBX_IPC_MAX_PARAMS]; /* of each param in the copy */
    sbx_arg args[SBX_IPC_MAX_PARAMS];    /* pointers into the copy */
} sbx_ipc_request;

static inline uint32_t sbx_wire_get32(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}
static inline uint64_t sbx_wire_get64(const void *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    return v;
}
static inline void sbx_wire_put32(void *p, uint32_t v)
{
    __builtin_memcpy(p, &v, 4);
}
static inline void sbx_wire_put64(void *p, uint64_t v)
{
    __builtin_memcpy(p, &v, 8);
}

/* Client: serialize into buf[cap] (the channel buffer). Returns the total
 * size, -EINVAL for a bad argument (NUL inside a string, unknown type, too
 * many), SBX_ERROR_TOO_LARGE if it does not fit. offsets (may be NULL)
 * receives each parameter's offset. Async-signal-safe. */
int sbx_ipc_wire_encode(uint8_t *buf, size_t cap, uint32_t tag, uint32_t flags, uint32_t seq,
                        const sbx_arg *args, unsigned nargs, uint32_t *offsets);

/* Broker: copy a request out of the shared channel buffer `shm` (cap bytes)
 * into `copy` (cap bytes, 8-aligned). Reads the shared bytes exactly once.
 * Returns the copied length, or 0 when the claimed total is out of range. */
size_t sbx_ipc_wire_copy_in(uint8_t *copy, const uint8_t *shm, size_t cap);

/* Broker: validate the private copy (len bytes, 8-aligned) and fill *req.
 * Returns 0 or SBX_ERROR_INVALID_IPC. Checks: total == len, flags known,
 * count <= 9, unused table slots zero, every type known, every offset
 * 8-aligned inside the data area, every size within the copy without
 * overflow, fixed sizes for u32/u64/handle, strings NUL-terminated with no
 * NUL inside and valid UTF-8, no two parameters overlapping. */
int sbx_ipc_wire_decode(uint8_t *copy, size_t len, sbx_ipc_request *req);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
int sbx_ipc_utf8_valid(const uint8_t *s, size_t n);

#endif
