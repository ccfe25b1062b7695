/* Shared fixtures for the ipc tests: a broker (section + pool + dispatcher
 * with test services + server) and a client in the same process, or split
 * across fork(). */
#ifndef SBX_IPC_TEST_UTIL_H
#define SBX_IPC_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sbx/ipc.h>

#include "ipc/client.h"
#include "ipc/dispatcher.h"
#include "ipc/section.h"
#include "ipc/wire.h"

#define T_UNUSED __attribute__((unused))

#define TAG_SLOW (SBX_IPC_TAG_USER + 1)   /* (u32 ms) */
#define TAG_OPEN (SBX_IPC_TAG_USER + 2)   /* (string path) -> fd */
#define TAG_MIX (SBX_IPC_TAG_USER + 3)    /* (string, u32, u64, handle, inout) */
#define TAG_CHECK (SBX_IPC_TAG_USER + 4)  /* (string) -> ext0 = allowed, ext1 = first byte used */
#define TAG_FAIL (SBX_IPC_TAG_USER + 5)   /* (inout) -> rewrites buffer, fails -EPERM */

/* Handlers that ran (any test service), visible to the broker process. */
static atomic_uint_fast64_t handler_runs;
static atomic_int slow_started;

T_UNUSED static uint64_t t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

T_UNUSED static int h_slow(sbx_ipc_info *info, const sbx_arg *a)
{
    (void)info;
    atomic_fetch_add(&handler_runs, 1);
    atomic_store(&slow_started, 1);
    usleep(a[0].v.u32 * 1000u);
    return 0;
}

T_UNUSED static int h_open(sbx_ipc_info *info, const sbx_arg *a)
{
    atomic_fetch_add(&handler_runs, 1);
    int fd = open(a[0].v.str.ptr, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sbx_ipc_info_set_status(info, errno);
        return -errno;
    }
    sbx_ipc_info_set_fd(info, fd);
    return 0;
}

T_UNUSED static int h_mix(sbx_ipc_info *info, const sbx_arg *a)
{
    atomic_fetch_add(&handler_runs, 1);
    sbx_ipc_info_set_ext(info, 0, a[0].v.str.len);
    sbx_ipc_info_set_ext(info, 1, a[1].v.u32);
    sbx_ipc_info_set_ext(info, 2, a[2].v.u64);
    sbx_ipc_info_set_ext(info, 3, a[3].v.handle);
    sbx_ipc_info_set_status(info, (int)strlen(a[0].v.str.ptr));
    uint8_t *b = a[4].v.buf.ptr;
    for (size_t i = 0; i < a[4].v.buf.size / 2; i++) {
        uint8_t t = b[i];
        b[i] = b[a[4].v.buf.size - 1 - i];
        b[a[4].v.buf.size - 1 - i] = t;
    }
    return 0;
}

/* Check-then-use on the broker's copy: "allowed" iff the path starts with
 * /ok/, and the byte it then uses comes from the same copy. */
T_UNUSED static int h_check(sbx_ipc_info *info, const sbx_arg *a)
{
    atomic_fetch_add(&handler_runs, 1);
    const char *s = a[0].v.str.ptr;
    int allowed = strncmp(s, "/ok/", 4) == 0;
    for (volatile int spin = 0; spin < 2000; spin++)
        ;
    sbx_ipc_info_set_ext(info, 0, (uint64_t)allowed);
    sbx_ipc_info_set_ext(info, 1, (uint64_t)(unsigned char)s[1]);
    return 0;
}

T_UNUSED static int h_fail(sbx_ipc_info *info, const sbx_arg *a)
{
    (void)info;
    atomic_fetch_add(&handler_runs, 1);
    memset(a[0].v.buf.ptr, 0xee, a[0].v.buf.size);
    return -EPERM;
}

T_UNUSED static sbx_ipc_dispatcher *test_dispatcher(void)
{
    sbx_ipc_dispatcher *d = NULL;
    if (sbx_ipc_dispatcher_new(&d) < 0 || sbx_ipc_dispatcher_add_builtins(d) < 0)
        abort();
    sbx_ipc_service s[] = {
        { .tag = TAG_SLOW, .subsystem = "test", .nparams = 1, .params = { SBX_ARG_U32 }, .handler = h_slow },
        { .tag = TAG_OPEN, .subsystem = "test", .nparams = 1, .params = { SBX_ARG_STRING }, .handler = h_open },
        { .tag = TAG_MIX, .subsystem = "test", .nparams = 5,
          .params = { SBX_ARG_STRING, SBX_ARG_U32, SBX_ARG_U64, SBX_ARG_HANDLE, SBX_ARG_INOUT }, .handler = h_mix },
        { .tag = TAG_CHECK, .subsystem = "test", .nparams = 1, .params = { SBX_ARG_STRING }, .handler = h_check },
        { .tag = TAG_FAIL, .subsystem = "test", .nparams = 1, .params = { SBX_ARG_INOUT }, .handler = h_fail },
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (sbx_ipc_dispatcher_register(d, &s[i]) < 0)
            abort();
    return d;
}

typedef struct broker {
    sbx_ipc_section *sec;
    sbx_ipc_dispatcher *d;
    sbx_ipc_pool *pool;
    sbx_ipc_server *srv;
    int target_sock; /* the target's end */
} broker;

/* Section + socketpair + server on `pool` (a new pool when NULL). */
T_UNUSED static int broker_start(broker *b, sbx_ipc_pool *pool, const sbx_ipc_section_options *so,
                        const sbx_ipc_pool_options *po)
{
    memset(b, 0, sizeof *b);
    int r = sbx_ipc_section_new(so, &b->sec);
    if (r < 0)
        return r;
    b->d = test_dispatcher();
    if (pool) {
        b->pool = pool;
    } else if ((r = sbx_ipc_pool_new(po, &b->pool)) < 0) {
        return r;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    b->target_sock = sv[1];
    return sbx_ipc_server_new(b->pool, b->sec, sv[0], b->d, b, &b->srv);
}

T_UNUSED static void broker_stop(broker *b, int free_pool)
{
    sbx_ipc_server_free(b->srv);
    if (free_pool)
        sbx_ipc_pool_free(b->pool);
    sbx_ipc_dispatcher_free(b->d);
    sbx_ipc_section_free(b->sec);
    if (b->target_sock >= 0)
        close(b->target_sock);
}

/* A client on b's section, in this process (dups the fds). */
T_UNUSED static sbx_ipc_client *client_for(broker *b)
{
    sbx_ipc_client *c = NULL;
    int s = dup(b->target_sock);
    if (sbx_ipc_client_new(sbx_ipc_section_fd(b->sec), s, &c) < 0)
        return NULL;
    return c;
}

T_UNUSED static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* The broker's fd count once it has settled on `want` (within 1 s): a
 * pool thread closes its copy of a sent fd just after it answered, so a
 * target can see its last answer a moment before that. */
T_UNUSED static int count_fds_settled(int want)
{
    int n = count_fds();
    for (int i = 0; i < 1000 && n != want; i++) {
        usleep(1000);
        n = count_fds();
    }
    return n;
}

#endif
