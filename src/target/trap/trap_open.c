/* sbx — stand-in open/openat trap subsystem (see trap_open.h). Everything
 * here runs in the SIGSYS handler: no allocation, no locks. */
#include "target/trap/trap_open.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>

#include <sbx/policy.h>

#include "policy/engine.h"

static atomic_uint_fast64_t n_brokered, n_denied, n_native;

/* The path is read in place from the caller's memory: a bad pointer
 * faults as it would inside libc (the program's own bug). */
static long route(const sbx_trap_call *call, const char *path, int flags)
{
    uint32_t action = SBX_ACTION_NONE;
    size_t len = 0;
    if (path && path[0] == '/') {
        len = strnlen(path, SBX_POL_MAX_STRING + 1);
        if (len > SBX_POL_MAX_STRING)
            return -ENAMETOOLONG;
        sbx_pol_param p = { .type = SBX_PTYPE_STRING, .len = (uint32_t)len, .str = path };
        sbx_pol_result res =
            sbx_pol_evaluate(call->policy, call->policy_size, SBX_TRAP_OPEN_SERVICE, &p, 1, 0);
        if (res.status == SBX_POL_MATCH)
            action = res.action;
    }
    if (action == SBX_ACTION_DENY_ACCESS || action == SBX_ACTION_FAKE_ACCESS_DENIED) {
        atomic_fetch_add_explicit(&n_denied, 1, memory_order_relaxed);
        return -EACCES;
    }
    if (action != SBX_ACTION_ASK_BROKER) {
        atomic_fetch_add_explicit(&n_native, 1, memory_order_relaxed);
        return sbx_trap_native(call);
    }
    atomic_fetch_add_explicit(&n_brokered, 1, memory_order_relaxed);
    if (!call->ipc)
        return -EIO;
    sbx_arg args[2] = { sbx_arg_stringn(path, len), sbx_arg_u32((uint32_t)flags) };
    sbx_ipc_reply rep;
    unsigned cf = (flags & O_CLOEXEC) ? SBX_IPC_CALL_CLOEXEC : 0;
    int r = sbx_ipc_client_call(call->ipc, SBX_TRAP_OPEN_TAG, args, 2, cf, &rep);
    if (r < 0)
        return sbx_trap_result_from(r);
    return rep.fd >= 0 ? rep.fd : -EIO;
}

static long h_openat(const sbx_trap_call *call, void *ctx)
{
    (void)ctx;
    /* A relative path with a real dirfd is not ours to resolve: native. */
    const char *path = (const char *)(uintptr_t)call->args[1];
    return route(call, path, (int)call->args[2]);
}

static long h_open(const sbx_trap_call *call, void *ctx)
{
    (void)ctx;
    return route(call, (const char *)(uintptr_t)call->args[0], (int)call->args[1]);
}

int sbx_trap_open_register(void)
{
    int r = sbx_trap_register(SYS_openat, h_openat, NULL);
    if (r == 0)
        r = sbx_trap_register(SYS_open, h_open, NULL);
    return r;
}

void sbx_trap_open_get_stats(sbx_trap_open_stats *out)
{
    out->brokered = atomic_load(&n_brokered);
    out->denied = atomic_load(&n_denied);
    out->native = atomic_load(&n_native);
}
