/* sbx — target services (the seed's TargetServices): find the broker's
 * fds, map the shared section, engage the lockdown phase. */
#include <sbx/target.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sbx/channel.h>
#include <sbx/error.h>
#include <sbx/ipc.h>

#include "base/cleanup.h"
#include "target/target_internal.h"

static atomic_bool g_init, g_lowered;
static int g_section_fd = -1, g_broker_fd = -1, g_channel_fd = -1;
static void *g_section;
static sbx_ipc_client *g_client;
static bool g_channel_taken;
static size_t g_section_size;
static sbx_target_section_verifier g_verifier;
static sbx_target_lockdown_hook g_lockdown;

void sbx_target_set_section_verifier(sbx_target_section_verifier fn)
{
    g_verifier = fn;
}

void sbx_target_set_lockdown_hook(sbx_target_lockdown_hook fn)
{
    g_lockdown = fn;
}

/* The fd named by `env`, else `fixed`, if it is open; -1 otherwise. The
 * environment is the target's own (hostile to nobody but itself). */
static int find_fd(const char *env, int fixed)
{
    const char *v = getenv(env);
    int fd = fixed;
    if (v && *v) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 0 || n > 1 << 20)
            return -1;
        fd = (int)n;
    } else if (v == NULL) {
        /* No variable: the broker did not provide this fd. */
        return -1;
    }
    return fcntl(fd, F_GETFD) < 0 ? -1 : fd;
}

/* Section check call site: the IPC component's verifier when registered. */
static int verify_section(const void *base, size_t size)
{
    if (g_verifier)
        return g_verifier(base, size);
    return 0;
}

SBX_API int sbx_target_init(void)
{
    if (atomic_load(&g_init))
        return SBX_ERROR_ALREADY_INIT;
    int sec = find_fd(SBX_ENV_SECTION_FD, SBX_TARGET_FD_SECTION);
    if (sec < 0)
        return SBX_ERROR_NOT_FOUND;
    struct stat st;
    if (fstat(sec, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
        return SBX_ERROR_BAD_SECTION;
    /* Only memfds (shmem) answer F_GET_SEALS; the section must not be
     * resizable under us. */
    int seals = fcntl(sec, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK))
        return SBX_ERROR_BAD_SECTION;
    int brk = find_fd(SBX_ENV_BROKER_FD, SBX_TARGET_FD_BROKER);
    /* The IPC client maps the section and checks its header against the
     * file (magic, version, layout, sizes); it gets its own copy of the
     * socket, so sbx_target_broker_fd() stays what the broker installed. */
    int sock = brk >= 0 ? fcntl(brk, F_DUPFD_CLOEXEC, 0) : -1;
    if (brk >= 0 && sock < 0)
        return sbx_neg_errno();
    sbx_ipc_client *client = NULL;
    int r = sbx_ipc_client_new(sec, sock, &client);
    if (r < 0)
        return r == SBX_ERROR_BAD_SECTION || r == -EINVAL ? SBX_ERROR_BAD_SECTION : r;
    size_t size = (size_t)st.st_size;
    void *base = mmap(NULL, size, PROT_READ, MAP_SHARED, sec, 0);
    if (base == MAP_FAILED) {
        sbx_ipc_client_free(client);
        return SBX_ERROR_BAD_SECTION;
    }
    r = verify_section(base, size);
    if (r < 0) {
        munmap(base, size);
        sbx_ipc_client_free(client);
        return r;
    }
    g_section_fd = sec;
    g_broker_fd = brk;
    g_channel_fd = find_fd(SBX_ENV_CHANNEL_FD, SBX_TARGET_FD_CHANNEL);
    g_section = base;
    g_section_size = size;
    g_client = client;
    atomic_store(&g_init, true);
    return 0;
}

sbx_ipc_client *sbx_target_ipc_client(void)
{
    return atomic_load(&g_init) ? g_client : NULL;
}

SBX_API int sbx_target_channel(const sbx_channel_listener *listener, sbx_channel **out)
{
    if (!out)
        return -EINVAL;
    if (g_channel_taken)
        return SBX_ERROR_NOT_FOUND;
    int fd = atomic_load(&g_init) ? g_channel_fd
                                  : find_fd(SBX_ENV_CHANNEL_FD, SBX_TARGET_FD_CHANNEL);
    if (fd < 0)
        return SBX_ERROR_NOT_FOUND;
    g_channel_taken = true;
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    /* The broker handed us this fd; from inside our pid namespace the
     * kernel reports its pid as 0, so there is no pid to check. */
    sbx_channel_options o = { .peer_check = SBX_CHANNEL_PEER_UNVERIFIED };
    return sbx_channel_new_from_fd(fd, &o, listener, out);
}

SBX_API bool sbx_target_is_initialized(void)
{
    return atomic_load(&g_init);
}

SBX_API int sbx_target_section_fd(void)
{
    return g_section_fd;
}

SBX_API int sbx_target_broker_fd(void)
{
    return g_broker_fd;
}

SBX_API int sbx_target_channel_fd(void)
{
    return g_channel_fd;
}

SBX_API const void *sbx_target_section(size_t *size)
{
    if (size)
        *size = g_section_size;
    return g_section;
}

SBX_API int sbx_target_lower_token(void)
{
    if (!atomic_load(&g_init))
        return SBX_ERROR_WRONG_STATE;
    if (atomic_load(&g_lowered))
        return SBX_ERROR_ALREADY_INIT;
    /* Delayed mitigations: exec made us dumpable again. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return sbx_neg_errno();
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return sbx_neg_errno();
    if (g_lockdown) {
        int r = g_lockdown();
        if (r < 0)
            return r;
    }
    atomic_store(&g_lowered, true);
    return 0;
}

SBX_API bool sbx_target_is_lowered(void)
{
    return atomic_load(&g_lowered);
}
