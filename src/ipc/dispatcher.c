/* sbx — the dispatcher: tag -> {signature, handler, subsystem}. */
#include "ipc/dispatcher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/log.h"

int sbx_ipc_dispatcher_new(sbx_ipc_dispatcher **out)
{
    sbx_ipc_dispatcher *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    *out = d;
    return 0;
}

void sbx_ipc_dispatcher_free(sbx_ipc_dispatcher *d)
{
    if (!d)
        return;
    free(d->svc);
    free(d);
}

void sbx_ipc_dispatcher_freeze(sbx_ipc_dispatcher *d)
{
    atomic_store(&d->frozen, true);
}

int sbx_ipc_dispatcher_register(sbx_ipc_dispatcher *d, const sbx_ipc_service *svc)
{
    if (atomic_load(&d->frozen))
        return SBX_ERROR_FROZEN;
    if (!svc || svc->tag == 0 || !svc->handler || svc->nparams > SBX_IPC_MAX_PARAMS)
        return -EINVAL;
    for (unsigned i = 0; i < svc->nparams; i++)
        if (svc->params[i] < SBX_ARG_STRING || svc->params[i] > SBX_ARG_INOUT)
            return -EINVAL;
    size_t pos = 0;
    while (pos < d->n && d->svc[pos].tag < svc->tag)
        pos++;
    if (pos < d->n && d->svc[pos].tag == svc->tag)
        return -EEXIST;
    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 16;
        sbx_ipc_service *n = realloc(d->svc, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        d->svc = n;
        d->cap = ncap;
    }
    memmove(&d->svc[pos + 1], &d->svc[pos], (d->n - pos) * sizeof *d->svc);
    d->svc[pos] = *svc;
    d->n++;
    return 0;
}

const sbx_ipc_service *sbx_ipc_dispatcher_find(const sbx_ipc_dispatcher *d, uint32_t tag)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->svc[mid].tag == tag)
            return &d->svc[mid];
        if (d->svc[mid].tag < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool sbx_ipc_service_matches(const sbx_ipc_service *s, const sbx_ipc_request *req)
{
    if (s->nparams != req->count)
        return false;
    for (unsigned i = 0; i < s->nparams; i++)
        if (s->params[i] != req->args[i].type)
            return false;
    return true;
}

int sbx_ipc_dispatch(const sbx_ipc_dispatcher *d, const sbx_ipc_request *req, sbx_ipc_info *info)
{
    const sbx_ipc_service *s = sbx_ipc_dispatcher_find(d, req->tag);
    /* Unknown tag or a type signature that is not exactly the registered
     * one: rejected before any handler code runs. The status says which. */
    if (!s) {
        info->status = ENOSYS;
        sbx_debug("ipc: rejected request with unknown tag %u", req->tag);
        return SBX_ERROR_INVALID_IPC;
    }
    if (!sbx_ipc_service_matches(s, req)) {
        info->status = EINVAL;
        sbx_debug("ipc: rejected %s request tag %u: parameter types do not match its signature",
                  s->subsystem ? s->subsystem : "?", req->tag);
        return SBX_ERROR_INVALID_IPC;
    }
    info->tag = req->tag;
    info->service_ctx = s->ctx;
    return s->handler(info, req->args);
}

uint32_t sbx_ipc_info_tag(const sbx_ipc_info *info)
{
    return info->tag;
}

void *sbx_ipc_info_service_ctx(const sbx_ipc_info *info)
{
    return info->service_ctx;
}

void *sbx_ipc_info_target_ctx(const sbx_ipc_info *info)
{
    return info->target_ctx;
}

void sbx_ipc_info_set_status(sbx_ipc_info *info, int errno_value)
{
    info->status = errno_value;
}

void sbx_ipc_info_set_ext(sbx_ipc_info *info, unsigned index, uint64_t value)
{
    if (index < SBX_IPC_EXT_COUNT)
        info->ext[index] = value;
}

void sbx_ipc_info_set_fd(sbx_ipc_info *info, int fd)
{
    if (info->fd >= 0 && info->fd != fd)
        sbx_close_keep_errno(info->fd);
    info->fd = fd;
}

/* PING1: the target controls one u32 (any value); the answer is computed in
 * 64 bits, so no overflow. Used by tests and benchmarks. */
static int ping1(sbx_ipc_info *info, const sbx_arg *args)
{
    sbx_ipc_info_set_ext(info, 0, (uint64_t)args[0].v.u32 * 2u);
    return 0;
}

/* PING2: the target controls an in/out buffer of any size; only a buffer of
 * exactly 4 bytes is accepted, and it lives in the broker's private copy. */
static int ping2(sbx_ipc_info *info, const sbx_arg *args)
{
    (void)info;
    if (args[0].v.buf.size != 4)
        return -EINVAL;
    uint32_t v;
    memcpy(&v, args[0].v.buf.ptr, 4);
    v *= 3u;
    memcpy(args[0].v.buf.ptr, &v, 4);
    return 0;
}

int sbx_ipc_dispatcher_add_builtins(sbx_ipc_dispatcher *d)
{
    sbx_ipc_service p1 = { .tag = SBX_IPC_TAG_PING1, .subsystem = "ipc", .nparams = 1,
                           .params = { SBX_ARG_U32 }, .handler = ping1 };
    sbx_ipc_service p2 = { .tag = SBX_IPC_TAG_PING2, .subsystem = "ipc", .nparams = 1,
                           .params = { SBX_ARG_INOUT }, .handler = ping2 };
    int r = sbx_ipc_dispatcher_register(d, &p1);
    if (r < 0)
        return r;
    return sbx_ipc_dispatcher_register(d, &p2);
}
