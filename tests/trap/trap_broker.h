/* A test broker in a forked process (section + pool + server with an
 * "open" service that returns the fd by SCM_RIGHTS) and a test subsystem
 * in the target that routes openat/open by the local policy copy:
 *   <dir>/ok/...    ASK_BROKER   -> cross call, the broker's fd is the result
 *   <dir>/deny/...  DENY_ACCESS  -> -EACCES without IPC
 *   anything else               -> native re-issue (magic)
 * Shared by the tests and the benchmark. */
#ifndef SBX_TESTS_TRAP_BROKER_H
#define SBX_TESTS_TRAP_BROKER_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sbx/ipc.h>

#include "policy/engine.h"
#include "target/trap/trap.h"

#define TB_UNUSED __attribute__((unused))
#define TB_TAG_OPEN (SBX_IPC_TAG_USER + 0x100) /* (string path, u32 flags) -> fd */
#define TB_SERVICE 1u

typedef struct tb_shared {
    atomic_uint_fast64_t opens; /* broker handler runs */
} tb_shared;

typedef struct tb_broker {
    pid_t pid;
    sbx_ipc_client *client;
    tb_shared *shared; /* MAP_SHARED, visible in both processes */
} tb_broker;

/* Broker side. The target controls path and flags; this test service
 * opens read-only whatever it is asked (the policy check is the files
 * subsystem's job, not the engine's). */
static int tb_h_open(sbx_ipc_info *info, const sbx_arg *a)
{
    tb_shared *sh = sbx_ipc_info_service_ctx(info);
    atomic_fetch_add(&sh->opens, 1);
    int fd = open(a[0].v.str.ptr, (int)(a[1].v.u32 & (unsigned)O_ACCMODE) | O_CLOEXEC);
    if (fd < 0) {
        sbx_ipc_info_set_status(info, errno);
        return -errno;
    }
    sbx_ipc_info_set_fd(info, fd);
    return 0;
}

static void *tb_policy(const char *dir, size_t *size)
{
    char ok[512], deny[512];
    snprintf(ok, sizeof ok, "%s/ok/**", dir);
    snprintf(deny, sizeof deny, "%s/deny/**", dir);
    sbx_pol_builder *b = sbx_pol_builder_new();
    const char *pats[2] = { ok, deny };
    sbx_action acts[2] = { SBX_ACTION_ASK_BROKER, SBX_ACTION_DENY_ACCESS };
    for (unsigned i = 0; i < 2; i++) {
        sbx_pol_rule *r = sbx_pol_rule_new(0, 0);
        if (!r || sbx_pol_rule_add_string(r, SBX_IF, 0, pats[i], 0, NULL) < 0 ||
            sbx_pol_rule_done(r, acts[i]) < 0 || sbx_pol_builder_add(b, TB_SERVICE, r, i, "test") < 0)
            abort();
        sbx_pol_rule_free(r);
    }
    void *buf = NULL;
    if (sbx_pol_builder_finish(b, &buf, size) < 0)
        abort();
    sbx_pol_builder_free(b);
    return buf;
}

static void tb_broker_main(sbx_ipc_section *sec, int sock, int ready, tb_shared *sh)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sbx_ipc_dispatcher *d = NULL;
    sbx_ipc_pool *pool = NULL;
    sbx_ipc_server *srv = NULL;
    sbx_ipc_service svc = { .tag = TB_TAG_OPEN, .subsystem = "test", .nparams = 2,
                            .params = { SBX_ARG_STRING, SBX_ARG_U32 }, .handler = tb_h_open,
                            .ctx = sh };
    if (sbx_ipc_dispatcher_new(&d) < 0 || sbx_ipc_dispatcher_register(d, &svc) < 0 ||
        sbx_ipc_pool_new(NULL, &pool) < 0 || sbx_ipc_server_new(pool, sec, sock, d, NULL, &srv) < 0)
        _exit(3);
    char c = 1;
    if (write(ready, &c, 1) != 1)
        _exit(4);
    for (;;)
        pause();
}

/* Fork the broker; the target (this process) gets a client on it. */
TB_UNUSED static int tb_broker_start(tb_broker *b, const char *dir)
{
    memset(b, 0, sizeof *b);
    size_t psize = 0;
    void *pol = tb_policy(dir, &psize);
    sbx_ipc_section_options so = { .policy_size = (psize + 4095) / 4096 * 4096 };
    sbx_ipc_section *sec = NULL;
    int r = sbx_ipc_section_new(&so, &sec);
    if (r < 0 || (r = sbx_ipc_section_write_policy(sec, pol, psize)) < 0)
        return r;
    free(pol);
    b->shared = mmap(NULL, sizeof *b->shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b->shared == MAP_FAILED)
        return -errno;
    int sv[2], pp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(pp, O_CLOEXEC) < 0)
        return -errno;
    fflush(NULL);
    b->pid = fork();
    if (b->pid < 0)
        return -errno;
    if (b->pid == 0) {
        close(sv[1]);
        close(pp[0]);
        tb_broker_main(sec, sv[0], pp[1], b->shared);
    }
    close(sv[0]);
    close(pp[1]);
    char c;
    ssize_t n = read(pp[0], &c, 1);
    close(pp[0]);
    if (n != 1)
        return -EIO;
    r = sbx_ipc_client_new(sbx_ipc_section_fd(sec), sv[1], &b->client);
    sbx_ipc_section_free(sec);
    return r;
}

TB_UNUSED static void tb_broker_kill(tb_broker *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
        b->pid = 0;
    }
}

/* ---- the test subsystem (target side) ---- */

static atomic_uint_fast64_t tb_brokered, tb_denied, tb_native;

/* Route one path-taking open. Runs in the SIGSYS handler: no allocation;
 * the path is read in place (a bad pointer faults as it would in libc). */
static long tb_route(const sbx_trap_call *call, const char *path, int flags)
{
    uint32_t action = SBX_ACTION_NONE;
    size_t len = 0;
    if (path && path[0] == '/') {
        len = strnlen(path, SBX_POL_MAX_STRING + 1);
        if (len > SBX_POL_MAX_STRING)
            return -ENAMETOOLONG;
        sbx_pol_param p = { .type = SBX_PTYPE_STRING, .len = (uint32_t)len, .str = path };
        sbx_pol_result res = sbx_pol_evaluate(call->policy, call->policy_size, TB_SERVICE, &p, 1, 0);
        if (res.status == SBX_POL_MATCH)
            action = res.action;
    }
    if (action == SBX_ACTION_DENY_ACCESS) {
        atomic_fetch_add(&tb_denied, 1);
        return -EACCES; /* fail fast: no IPC */
    }
    if (action != SBX_ACTION_ASK_BROKER) {
        atomic_fetch_add(&tb_native, 1);
        return sbx_trap_native(call);
    }
    atomic_fetch_add(&tb_brokered, 1);
    if (!call->ipc)
        return -EIO;
    sbx_arg args[2] = { sbx_arg_stringn(path, len), sbx_arg_u32((uint32_t)flags) };
    sbx_ipc_reply rep;
    unsigned cf = (flags & O_CLOEXEC) ? SBX_IPC_CALL_CLOEXEC : 0;
    int r = sbx_ipc_client_call(call->ipc, TB_TAG_OPEN, args, 2, cf, &rep);
    if (r < 0)
        return sbx_trap_result_from(r);
    return rep.fd >= 0 ? rep.fd : -EIO;
}

static long tb_openat(const sbx_trap_call *call, void *ctx)
{
    (void)ctx;
    return tb_route(call, (const char *)(uintptr_t)call->args[1], (int)call->args[2]);
}

static long tb_open(const sbx_trap_call *call, void *ctx)
{
    (void)ctx;
    return tb_route(call, (const char *)(uintptr_t)call->args[0], (int)call->args[1]);
}

TB_UNUSED static int tb_install(tb_broker *b, bool native)
{
    int r;
    if ((r = sbx_trap_register(SYS_openat, tb_openat, NULL)) < 0 ||
        (r = sbx_trap_register(SYS_open, tb_open, NULL)) < 0)
        return r;
    sbx_trap_options o = { .ipc = b ? b->client : NULL, .allow_native = native };
    return sbx_trap_install(&o);
}

#endif
