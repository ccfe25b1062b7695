/* sbx internal — the tag -> service registry and one call's info. */
#ifndef SBX_IPC_DISPATCHER_H
#define SBX_IPC_DISPATCHER_H

#include <stdatomic.h>
#include <stdbool.h>

#include <sbx/ipc.h>

#include "ipc/wire.h"

struct sbx_ipc_info {
    uint32_t tag;
    void *service_ctx;
    void *target_ctx;
    int status;
    uint64_t ext[SBX_IPC_EXT_COUNT];
    int fd;
};

struct sbx_ipc_dispatcher {
    sbx_ipc_service *svc; /* sorted by tag */
    size_t n, cap;
    atomic_bool frozen;
};

/* Freeze (no more registration); idempotent, thread-safe. */
void sbx_ipc_dispatcher_freeze(sbx_ipc_dispatcher *d);
/* The service for tag, or NULL. Only on a frozen dispatcher; lock-free. */
const sbx_ipc_service *sbx_ipc_dispatcher_find(const sbx_ipc_dispatcher *d, uint32_t tag);
/* The seed's IPCParams::Matches: exact count and types. */
bool sbx_ipc_service_matches(const sbx_ipc_service *s, const sbx_ipc_request *req);
/* Validate-then-dispatch for one decoded request: looks the tag up, checks
 * the signature, runs the handler. Returns the outcome. */
int sbx_ipc_dispatch(const sbx_ipc_dispatcher *d, const sbx_ipc_request *req, sbx_ipc_info *info);

#endif
