/* sbx — shared-memory cross-call IPC between a target and its broker.
 *
 * A broker creates one shared section (a sealed memfd) and one SOCK_SEQPACKET
 * socketpair per target. The target maps the section, writes a typed request
 * into a free channel, wakes the broker and waits for the answer; a broker
 * thread copies the request out, validates the copy, runs the handler that
 * the dispatcher registered for the request's tag and writes the answer
 * back. An fd returned by a handler travels over the socket (SCM_RIGHTS),
 * never through shared memory. docs/ipc-protocol.md has the byte layout.
 *
 * Objects:
 *   sbx_ipc_section     broker side: the memfd, its mapping, its layout.
 *   sbx_ipc_dispatcher  tag -> {parameter signature, handler, subsystem};
 *                       registered once per broker, shared by all targets.
 *   sbx_ipc_pool        broker threads that wait on many channels at once.
 *   sbx_ipc_server      one per target: serves one section on a pool.
 *   sbx_ipc_client      target side: maps the section, makes calls.
 *
 * Results follow docs/errors.md: 0 or a non-negative value on success, a
 * negative errno or SBX_ERROR_* code on failure. */
#ifndef SBX_IPC_H
#define SBX_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sbx/error.h>
#include <sbx/export.h>

SBX_BEGIN_DECLS

/* ---- limits and well-known values ------------------------------------- */

/* At most this many parameters per call. */
#define SBX_IPC_MAX_PARAMS 9
/* Extended u64 values carried by every reply. */
#define SBX_IPC_EXT_COUNT 4
/* Default channel size: room for two PATH_MAX paths and the other arguments
 * of a rename(2)-style call. A channel size is always a multiple of 64. */
#define SBX_IPC_DEFAULT_CHANNEL_SIZE 8704u
/* Default size of the IPC area (header + controls + channel buffers). */
#define SBX_IPC_DEFAULT_IPC_SIZE (128u * 1024u)
/* Environment variables through which a spawned target learns its section
 * and socket fds, one decimal fd number each: the broker's convention
 * (sbx/target.h: SBX_SECTION_FD=3, SBX_BROKER_FD=4, at those fixed
 * numbers). See sbx_ipc_client_from_env. */
#define SBX_IPC_ENV_SECTION "SBX_SECTION_FD"
#define SBX_IPC_ENV_SOCKET "SBX_BROKER_FD"

/* Built-in test services, registered by sbx_ipc_dispatcher_add_builtins. */
#define SBX_IPC_TAG_PING1 1u /* (u32 cookie) -> ext[0] = 2 * cookie */
#define SBX_IPC_TAG_PING2 2u /* (inout u32 cookie) -> cookie *= 3 */
/* Tags below this are reserved for sbx's own subsystems; embedders use
 * SBX_IPC_TAG_USER and up. Tag 0 is never valid. */
#define SBX_IPC_TAG_USER 0x10000u

/* ---- typed arguments --------------------------------------------------- */

typedef enum sbx_arg_type {
    SBX_ARG_NONE = 0,
    SBX_ARG_STRING = 1, /* UTF-8, no NUL inside, bounded by the channel */
    SBX_ARG_U32 = 2,
    SBX_ARG_U64 = 3,
    SBX_ARG_HANDLE = 4, /* an opaque 64-bit handle (never a pointer) */
    SBX_ARG_INOUT = 5,  /* a buffer the handler may rewrite */
} sbx_arg_type;

/* A tagged argument value. Build it only with the constructors below, so a
 * value cannot be passed with the wrong type silently: each constructor
 * takes exactly one C type and sets the tag itself. On the broker side the
 * handler receives validated arguments whose pointers point into the
 * broker's private copy of the request (valid for the handler's duration;
 * strings are NUL-terminated there). */
typedef struct sbx_arg {
    sbx_arg_type type;
    union {
        struct {
            const char *ptr;
            size_t len; /* bytes, excluding any NUL */
        } str;
        uint32_t u32;
        uint64_t u64;
        uint64_t handle;
        struct {
            void *ptr;
            size_t size;
        } buf;
    } v;
} sbx_arg;

static inline sbx_arg sbx_arg_string(const char *s)
{
    sbx_arg a = { .type = SBX_ARG_STRING };
    a.v.str.ptr = s;
    a.v.str.len = s ? strlen(s) : 0;
    return a;
}
static inline sbx_arg sbx_arg_stringn(const char *s, size_t len)
{
    sbx_arg a = { .type = SBX_ARG_STRING };
    a.v.str.ptr = s;
    a.v.str.len = len;
    return a;
}
static inline sbx_arg sbx_arg_u32(uint32_t v)
{
    sbx_arg a = { .type = SBX_ARG_U32 };
    a.v.u32 = v;
    return a;
}
static inline sbx_arg sbx_arg_u64(uint64_t v)
{
    sbx_arg a = { .type = SBX_ARG_U64 };
    a.v.u64 = v;
    return a;
}
static inline sbx_arg sbx_arg_handle(uint64_t h)
{
    sbx_arg a = { .type = SBX_ARG_HANDLE };
    a.v.handle = h;
    return a;
}
static inline sbx_arg sbx_arg_inout(void *buf, size_t size)
{
    sbx_arg a = { .type = SBX_ARG_INOUT };
    a.v.buf.ptr = buf;
    a.v.buf.size = size;
    return a;
}

/* ---- the reply a client gets ------------------------------------------ */

typedef struct sbx_ipc_reply {
    int outcome;                      /* 0, or the handler's/broker's error code */
    int status;                       /* errno-style status set by the handler */
    uint64_t ext[SBX_IPC_EXT_COUNT];  /* extended values set by the handler */
    int fd;                           /* a returned fd (caller owns it), or -1 */
} sbx_ipc_reply;

/* Flags for sbx_ipc_client_call. */
#define SBX_IPC_CALL_CLOEXEC 0x1u /* a returned fd gets FD_CLOEXEC */

/* ---- broker side: the section ----------------------------------------- */

typedef struct sbx_ipc_section sbx_ipc_section;

typedef struct sbx_ipc_section_options {
    size_t ipc_size;     /* 0: SBX_IPC_DEFAULT_IPC_SIZE; a multiple of 64 */
    size_t policy_size;  /* bytes reserved for the policy area (may be 0) */
    size_t channel_size; /* 0: SBX_IPC_DEFAULT_CHANNEL_SIZE; a multiple of 64 */
} sbx_ipc_section_options;

/* Create a section: a memfd sealed against shrinking and growing, with a
 * self-describing header, channel controls (all Free) and channel buffers,
 * followed (page-aligned) by the policy area. opt may be NULL (defaults).
 * Returns 0 and *out (caller frees with sbx_ipc_section_free), -EINVAL for
 * sizes that do not fit at least one channel, or -errno. Thread-safe. */
SBX_API int sbx_ipc_section_new(const sbx_ipc_section_options *opt, sbx_ipc_section **out);
/* Unmap and close. NULL is a no-op. Free every server on it first. */
SBX_API void sbx_ipc_section_free(sbx_ipc_section *s);
/* The memfd (borrowed: owned by the section; dup it to pass it on). */
SBX_API int sbx_ipc_section_fd(const sbx_ipc_section *s);
SBX_API unsigned sbx_ipc_section_channel_count(const sbx_ipc_section *s);
SBX_API size_t sbx_ipc_section_channel_size(const sbx_ipc_section *s);
/* Copy `size` policy bytes into the policy area (before the target starts).
 * The broker never reads them back. SBX_ERROR_TOO_LARGE if they don't fit. */
SBX_API int sbx_ipc_section_write_policy(sbx_ipc_section *s, const void *policy, size_t size);

/* Compute the channel count for given sizes (what sbx_ipc_section_new would
 * make); 0 if not even one channel fits or the sizes are invalid. Pure. */
SBX_API unsigned sbx_ipc_channel_count_for(size_t ipc_size, size_t channel_size);

/* ---- broker side: the dispatcher -------------------------------------- */

typedef struct sbx_ipc_dispatcher sbx_ipc_dispatcher;
typedef struct sbx_ipc_info sbx_ipc_info;

/* The one handler signature. args[0..n) match the service's signature
 * exactly (count and types were checked before the call). Return 0 on
 * success or a negative code, which becomes the reply's outcome. In/out
 * buffers are written back to the target only when the handler returns 0. */
typedef int (*sbx_ipc_handler)(sbx_ipc_info *info, const sbx_arg *args);

typedef struct sbx_ipc_service {
    uint32_t tag;                               /* nonzero, unique per dispatcher */
    const char *subsystem;                      /* owning subsystem, for logs ("files") */
    unsigned nparams;                           /* <= SBX_IPC_MAX_PARAMS */
    sbx_arg_type params[SBX_IPC_MAX_PARAMS];    /* exact signature */
    sbx_ipc_handler handler;
    void *ctx;                                  /* given back by sbx_ipc_info_service_ctx */
} sbx_ipc_service;

/* A new, empty dispatcher. Caller frees with sbx_ipc_dispatcher_free after
 * every server using it is freed. */
SBX_API int sbx_ipc_dispatcher_new(sbx_ipc_dispatcher **out);
SBX_API void sbx_ipc_dispatcher_free(sbx_ipc_dispatcher *d);
/* Register a service (copied; subsystem must be a static string). Allowed
 * until the dispatcher is first used by a server (then SBX_ERROR_FROZEN).
 * -EEXIST for a tag registered twice, -EINVAL for a bad signature. Not
 * thread-safe against concurrent registration on the same dispatcher. */
SBX_API int sbx_ipc_dispatcher_register(sbx_ipc_dispatcher *d, const sbx_ipc_service *svc);
/* Register the PING1 and PING2 test services. */
SBX_API int sbx_ipc_dispatcher_add_builtins(sbx_ipc_dispatcher *d);

/* Inside a handler (info is valid only during the call): */
SBX_API uint32_t sbx_ipc_info_tag(const sbx_ipc_info *info);
SBX_API void *sbx_ipc_info_service_ctx(const sbx_ipc_info *info);
SBX_API void *sbx_ipc_info_target_ctx(const sbx_ipc_info *info); /* server's ctx */
SBX_API void sbx_ipc_info_set_status(sbx_ipc_info *info, int errno_value);
SBX_API void sbx_ipc_info_set_ext(sbx_ipc_info *info, unsigned index, uint64_t value);
/* Return `fd` to the target (taken: sbx closes it after sending, also when
 * the handler then fails). A second call replaces (and closes) the first. */
SBX_API void sbx_ipc_info_set_fd(sbx_ipc_info *info, int fd);

/* ---- broker side: thread pool and per-target servers ------------------- */

typedef struct sbx_ipc_pool sbx_ipc_pool;

typedef struct sbx_ipc_pool_options {
    unsigned threads;    /* 0: one per online CPU */
    unsigned spin_ns;    /* post-reply spin window; 0: default (30 us) */
    int force_fallback;  /* nonzero: do not use futex_waitv (tests) */
} sbx_ipc_pool_options;

/* Start the broker threads (opt may be NULL). Caller frees the pool after
 * all its servers. Thread-safe. */
SBX_API int sbx_ipc_pool_new(const sbx_ipc_pool_options *opt, sbx_ipc_pool **out);
SBX_API void sbx_ipc_pool_free(sbx_ipc_pool *p);
/* 1 if the pool waits with futex_waitv, 0 if it uses the fallback. */
SBX_API int sbx_ipc_pool_uses_waitv(const sbx_ipc_pool *p);

typedef struct sbx_ipc_server sbx_ipc_server;

/* Serve `section` (borrowed: must outlive the server) on `pool` with
 * `dispatcher` (borrowed; frozen by this call). fd_socket is the broker end
 * of the target's SOCK_SEQPACKET socketpair and is TAKEN (closed by
 * sbx_ipc_server_free, and on failure); the broker stops reading it (the
 * target cannot queue fds to the broker). target_ctx is returned to handlers
 * by sbx_ipc_info_target_ctx. Thread-safe. */
SBX_API int sbx_ipc_server_new(sbx_ipc_pool *pool, sbx_ipc_section *section, int fd_socket,
                               sbx_ipc_dispatcher *dispatcher, void *target_ctx,
                               sbx_ipc_server **out);
/* Stop serving (waits for a handler running for this target to return),
 * close the socket, free memory. Call when the target died or must be cut
 * off; its clients then get SBX_ERROR_CHANNEL_ERROR. Must not be called from
 * a handler. NULL is a no-op. */
SBX_API void sbx_ipc_server_free(sbx_ipc_server *srv);
/* Requests served / rejected as invalid so far (for tests and stats). */
SBX_API uint64_t sbx_ipc_server_calls(const sbx_ipc_server *srv);
SBX_API uint64_t sbx_ipc_server_rejected(const sbx_ipc_server *srv);

/* ---- target side: the client ------------------------------------------ */

typedef struct sbx_ipc_client sbx_ipc_client;

/* Map the section from section_fd (borrowed: may be closed afterwards) and
 * check its header against the file; socket_fd is the target end of the
 * socketpair (TAKEN, also on failure). SBX_ERROR_BAD_SECTION if the header
 * does not check. Allocates: call at startup, not in a signal handler. */
SBX_API int sbx_ipc_client_new(int section_fd, int socket_fd, sbx_ipc_client **out);
/* The same from SBX_IPC_ENV_SECTION / SBX_IPC_ENV_SOCKET (what sbx_broker_spawn
 * sets). SBX_ERROR_NOT_FOUND if either is unset, -EINVAL if not a number. */
SBX_API int sbx_ipc_client_from_env(sbx_ipc_client **out);
/* Unmap and close. No call may be in progress. NULL is a no-op. */
SBX_API void sbx_ipc_client_free(sbx_ipc_client *c);
SBX_API unsigned sbx_ipc_client_channel_count(const sbx_ipc_client *c);
/* How long a wait lasts before the broker's liveness is checked
 * (default 1000 ms). Not async-signal-safe against concurrent calls. */
SBX_API void sbx_ipc_client_set_timeout_ms(sbx_ipc_client *c, unsigned ms);

/* Make a call: lock a free channel (waiting, asleep, while all are busy),
 * serialize tag and args in place, wake the broker, wait for the answer,
 * copy it out (in/out buffers included) and free the channel.
 * Returns reply->outcome: 0 when the handler succeeded, the handler's
 * negative code, SBX_ERROR_INVALID_IPC when the broker rejected the request
 * (reply->status: EBADMSG malformed, ENOSYS unknown tag, EINVAL parameter
 * types not the tag's signature), SBX_ERROR_TOO_LARGE when it does not fit a
 * channel, SBX_ERROR_CHANNEL_ERROR when the broker is gone. reply may be
 * NULL (a returned fd is then closed). reply->fd is -1 unless an fd came
 * back; the caller owns it.
 *
 * Thread-safe and ASYNC-SIGNAL-SAFE: usable from a plain thread and from a
 * signal handler (SIGSYS) at once, including a handler that interrupts a
 * call in progress on the same thread (the nested call takes another
 * channel, so a section needs more channels than calls that can be in
 * progress at once; the default has 14). No malloc, no locks, no stdio;
 * errno is preserved. Waits sleep in the kernel; every wait is bounded by
 * the timeout, after which the broker's liveness is checked (a dead broker
 * gives SBX_ERROR_CHANNEL_ERROR, a slow one is waited for). */
SBX_API int sbx_ipc_client_call(sbx_ipc_client *c, uint32_t tag, const sbx_arg *args,
                                unsigned nargs, unsigned flags, sbx_ipc_reply *reply);

/* The seed's GetBuffer/FreeBuffer, for callers that want to hold a channel:
 * lock a free channel (waiting like sbx_ipc_client_call) and return its
 * index, or SBX_ERROR_CHANNEL_ERROR; give it back unused with
 * sbx_ipc_client_free_buffer, or use it once with sbx_ipc_client_call_on
 * (which frees it). Async-signal-safe. */
SBX_API int sbx_ipc_client_get_buffer(sbx_ipc_client *c);
SBX_API void sbx_ipc_client_free_buffer(sbx_ipc_client *c, int channel);
SBX_API int sbx_ipc_client_call_on(sbx_ipc_client *c, int channel, uint32_t tag,
                                   const sbx_arg *args, unsigned nargs, unsigned flags,
                                   sbx_ipc_reply *reply);

/* Read-only view of the policy area written by the broker (header-checked
 * bounds). The target may use it for a fail-fast pre-check; the broker never
 * trusts it. Async-signal-safe. */
SBX_API int sbx_ipc_client_policy(const sbx_ipc_client *c, const void **data, size_t *size);

SBX_END_DECLS

#endif
