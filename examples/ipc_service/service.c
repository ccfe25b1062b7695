/* An embedder's own cross-call service, end to end.
 *
 * The broker registers a "wordcount" service under its own tag, creates a
 * shared section and a socketpair for one target, and serves it; the
 * target (a forked child here; normally a spawned, sandboxed process that
 * finds its fds through SBX_SECTION_FD and SBX_BROKER_FD) calls the service and prints the
 * answer. Build against an installed sbx:
 *   cc service.c $(pkg-config --cflags --libs sbx) -o ipc_service */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sbx/sbx.h>
#include <sbx/ipc.h>

/* Our tag: sbx reserves everything below SBX_IPC_TAG_USER. */
#define TAG_WORDCOUNT (SBX_IPC_TAG_USER + 100)

/* Broker side. The target controls the text (validated by sbx as UTF-8
 * without NUL, bounded by the channel) and the size of the result buffer
 * (checked here). Nothing else is trusted. */
static int wordcount(sbx_ipc_info *info, const sbx_arg *args)
{
    const char *text = args[0].v.str.ptr;
    size_t len = args[0].v.str.len;
    if (args[1].v.buf.size != sizeof(uint32_t))
        return -EINVAL;
    uint32_t words = 0;
    for (size_t i = 0; i < len; i++)
        if (text[i] != ' ' && (i == 0 || text[i - 1] == ' '))
            words++;
    memcpy(args[1].v.buf.ptr, &words, sizeof words); /* in/out: written back on success */
    sbx_ipc_info_set_ext(info, 0, len);              /* an extended value */
    return 0;
}

static int target_main(int section_fd, int sock)
{
    sbx_ipc_client *c;
    int r = sbx_ipc_client_new(section_fd, sock, &c);
    if (r < 0) {
        fprintf(stderr, "target: %s\n", sbx_strerror(r));
        return 1;
    }
    uint32_t words = 0;
    sbx_arg args[] = { sbx_arg_string("the quick brown fox"), sbx_arg_inout(&words, sizeof words) };
    sbx_ipc_reply rep;
    r = sbx_ipc_client_call(c, TAG_WORDCOUNT, args, 2, 0, &rep);
    printf("target: wordcount -> %s, %u words in %llu bytes\n", sbx_error_name(r), words,
           (unsigned long long)rep.ext[0]);
    /* A call whose types do not match the registered signature is refused
     * by the broker before the handler runs. */
    sbx_arg wrong = sbx_arg_u32(7);
    r = sbx_ipc_client_call(c, TAG_WORDCOUNT, &wrong, 1, 0, NULL);
    printf("target: wrong types -> %s\n", sbx_error_name(r));
    sbx_ipc_client_free(c);
    fflush(stdout);
    return words == 4 && r == SBX_ERROR_INVALID_IPC ? 0 : 1;
}

int main(void)
{
    /* Once per broker: the dispatcher (shared by all targets) and a pool. */
    sbx_ipc_dispatcher *d;
    sbx_ipc_pool *pool;
    if (sbx_ipc_dispatcher_new(&d) < 0 || sbx_ipc_pool_new(NULL, &pool) < 0)
        return 1;
    sbx_ipc_service svc = {
        .tag = TAG_WORDCOUNT,
        .subsystem = "example",
        .nparams = 2,
        .params = { SBX_ARG_STRING, SBX_ARG_INOUT },
        .handler = wordcount,
    };
    int r = sbx_ipc_dispatcher_register(d, &svc);
    if (r < 0) {
        fprintf(stderr, "register: %s\n", sbx_strerror(r));
        return 1;
    }

    /* Per target: a section, a socketpair, a server. */
    sbx_ipc_section *sec;
    int sv[2];
    if (sbx_ipc_section_new(NULL, &sec) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return 1;
    sbx_ipc_server *srv;
    r = sbx_ipc_server_new(pool, sec, sv[0], d, NULL, &srv); /* takes sv[0] */
    if (r < 0) {
        fprintf(stderr, "server: %s\n", sbx_strerror(r));
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(target_main(sbx_ipc_section_fd(sec), sv[1]));
    close(sv[1]);
    int st = 0;
    waitpid(pid, &st, 0);
    printf("broker: served %llu calls, rejected %llu\n",
           (unsigned long long)sbx_ipc_server_calls(srv),
           (unsigned long long)sbx_ipc_server_rejected(srv));

    /* The target is gone: tear its server down, then the rest. */
    sbx_ipc_server_free(srv);
    sbx_ipc_section_free(sec);
    sbx_ipc_pool_free(pool);
    sbx_ipc_dispatcher_free(d);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
