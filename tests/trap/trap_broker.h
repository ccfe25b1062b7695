/* A test broker in a forked process (section + pool + server with an
 * "open" service that returns the fd by SCM_RIGHTS) and a test subsystem
 * in the target (src/target/trap/trap_open.c) that routes openat/open by
 * the local policy copy:
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
#include "target/trap/trap_open.h"

#define TB_UNUSED __attribute__((unused))
#define TB_TAG_OPEN SBX_TRAP_OPEN_TAG /* (string path, u32 flags) -> fd */
#define TB_SERVICE SBX_TRAP_OPEN_SERVICE

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

/* Broker threads (0: one per CPU). */
static unsigned tb_pool_threads;

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
        sbx_ipc_pool_new(&(sbx_ipc_pool_options){ .threads = tb_pool_threads }, &pool) < 0 || sbx_ipc_server_new(pool, sec, sock, d, NULL, &srv) < 0)
        _exit(3);
    char c = 1;
    if (write(ready, &c, 1) != 1)
        _exit(4);
    for (;;)
        pause();
}

/* Fork the broker; *section_fd (a dup of the memfd) and *sock (the
 * target's end of the socketpair) are the caller's. */
TB_UNUSED static int tb_broker_start_raw(tb_broker *b, const char *dir, int *section_fd, int *sock)
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
    *section_fd = fcntl(sbx_ipc_section_fd(sec), F_DUPFD_CLOEXEC, 3);
    sbx_ipc_section_free(sec);
    *sock = sv[1];
    return n == 1 && *section_fd >= 0 ? 0 : -EIO;
}

/* Fork the broker; the target (this process) gets a client on it. */
TB_UNUSED static int tb_broker_start(tb_broker *b, const char *dir)
{
    int secfd = -1, sock = -1;
    int r = tb_broker_start_raw(b, dir, &secfd, &sock);
    if (r == 0)
        r = sbx_ipc_client_new(secfd, sock, &b->client);
    if (secfd >= 0)
        close(secfd);
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

TB_UNUSED static int tb_install(tb_broker *b, bool native)
{
    int r;
    if ((r = sbx_trap_open_register()) < 0)
        return r;
    sbx_trap_options o = { .ipc = b ? b->client : NULL, .allow_native = native };
    return sbx_trap_install(&o);
}

#endif
