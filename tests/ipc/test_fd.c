/* Fd return: the fd travels by SCM_RIGHTS, reaches the right caller and
 * refers to the right file; the broker leaks nothing, whatever the target
 * does with its socket. */
#include <criterion/criterion.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "ipc_test_util.h"
#include "sbx_test.h"

static char *dir;
static char paths[8][256];

static void mkfiles(void)
{
    dir = sbx_test_mkdtemp("ipcfd");
    cr_assert_not_null(dir);
    for (int i = 0; i < 8; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/f%d", dir, i);
        FILE *f = fopen(paths[i], "w");
        fprintf(f, "file number %d\n", i);
        fclose(f);
    }
}

static void rmfiles(void)
{
    sbx_test_rmtree(dir);
    free(dir);
}

TestSuite(ipc_fd, .init = mkfiles, .fini = rmfiles);

static int same_file(int fd, const char *path)
{
    struct stat a, b;
    if (fstat(fd, &a) < 0 || stat(path, &b) < 0)
        return 0;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int open_target(sbx_ipc_client *c)
{
    /* right file, right content, close-on-exec as asked */
    for (int i = 0; i < 8; i++) {
        sbx_arg a = sbx_arg_string(paths[i]);
        sbx_ipc_reply rep;
        unsigned flags = i % 2 ? SBX_IPC_CALL_CLOEXEC : 0;
        if (sbx_ipc_client_call(c, TAG_OPEN, &a, 1, flags, &rep) != 0 || rep.fd < 0)
            return 10 + i;
        char buf[64] = { 0 }, want[64];
        snprintf(want, sizeof want, "file number %d\n", i);
        if (read(rep.fd, buf, sizeof buf - 1) < 0 || strcmp(buf, want) || !same_file(rep.fd, paths[i]))
            return 20 + i;
        int fl = fcntl(rep.fd, F_GETFD);
        if (!!(fl & FD_CLOEXEC) != !!(flags & SBX_IPC_CALL_CLOEXEC))
            return 30 + i;
        close(rep.fd);
    }
    /* a failing open brings no fd and the handler's errno */
    sbx_arg a = sbx_arg_string("/nonexistent/x");
    sbx_ipc_reply rep;
    if (sbx_ipc_client_call(c, TAG_OPEN, &a, 1, 0, &rep) != -ENOENT || rep.fd != -1 ||
        rep.status != ENOENT)
        return 40;
    /* reply == NULL: the fd is closed for us */
    int before = count_fds();
    a = sbx_arg_string(paths[0]);
    if (sbx_ipc_client_call(c, TAG_OPEN, &a, 1, 0, NULL) != 0 || count_fds() != before)
        return 41;
    return 0;
}

static pid_t spawn_target(broker *b, int (*fn)(sbx_ipc_client *c, void *arg), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sbx_ipc_client *c;
        if (sbx_ipc_client_new(sbx_ipc_section_fd(b->sec), b->target_sock, &c) < 0)
            _exit(100);
        _exit(fn(c, arg));
    }
    return pid;
}

static int wait_code(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 200 + WTERMSIG(st);
}

static int run_open_target(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    return open_target(c);
}

Test(ipc_fd, returned_fd_is_the_right_file_across_processes)
{
    broker b;
    cr_assert_eq(broker_start(&b, NULL, NULL, NULL), 0);
    int fds0 = count_fds();
    pid_t pid = spawn_target(&b, run_open_target, NULL);
    int code = wait_code(pid);
    cr_expect_eq(code, 0, "target failed with %d", code);
    cr_expect_eq(count_fds_settled(fds0), fds0, "broker leaked fds");
    broker_stop(&b, 1);
}

typedef struct opener {
    sbx_ipc_client *c;
    int idx;
    unsigned bad;
} opener;

static void *opener_main(void *p)
{
    opener *o = p;
    for (int i = 0; i < 3000; i++) {
        int f = (o->idx + i) % 8;
        sbx_arg a = sbx_arg_string(paths[f]);
        sbx_ipc_reply rep;
        if (sbx_ipc_client_call(o->c, TAG_OPEN, &a, 1, SBX_IPC_CALL_CLOEXEC, &rep) != 0 || rep.fd < 0) {
            o->bad++;
            continue;
        }
        if (!same_file(rep.fd, paths[f]))
            o->bad++;
        close(rep.fd);
    }
    return NULL;
}

static int concurrent_openers(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    int fds0 = count_fds();
    pthread_t th[6];
    opener o[6];
    for (int i = 0; i < 6; i++) {
        o[i] = (opener){ .c = c, .idx = i };
        pthread_create(&th[i], NULL, opener_main, &o[i]);
    }
    unsigned bad = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        bad += o[i].bad;
    }
    if (bad)
        return 1;
    return count_fds() == fds0 ? 0 : 2;
}

Test(ipc_fd, concurrent_fd_calls_each_get_their_own_fd)
{
    broker b;
    cr_assert_eq(broker_start(&b, NULL, NULL, NULL), 0);
    int fds0 = count_fds();
    pid_t pid = spawn_target(&b, concurrent_openers, NULL);
    int code = wait_code(pid);
    cr_expect_eq(code, 0, "target failed with %d", code);
    cr_expect_eq(sbx_ipc_server_calls(b.srv), 18000);
    cr_expect_eq(count_fds_settled(fds0), fds0, "broker leaked fds");
    broker_stop(&b, 1);
}

/* Send an OPEN request on a fresh channel and wait for pong without ever
 * collecting the fd. Returns the outcome. */
static int call_no_collect(sbx_ipc_client *c, const char *path)
{
    int ch = sbx_ipc_client_get_buffer(c);
    if (ch < 0)
        return ch;
    sbx_ipc_control *ctl = sbx_ipc_client_control(c, (unsigned)ch);
    uint8_t *buf = sbx_ipc_client_buffer(c, (unsigned)ch);
    sbx_arg a = sbx_arg_string(path);
    sbx_ipc_chan_head *head = sbx_ipc_client_head(c, (unsigned)ch);
    uint32_t seq = atomic_load(&head->ping) + 1;
    sbx_ipc_wire_encode(buf, sbx_ipc_client_request_cap(c), TAG_OPEN, 0, seq, &a, 1, NULL);
    uint32_t p0 = atomic_load(&ctl->pong);
    atomic_store(&head->ping, seq);
    syscall(SYS_futex, &head->ping, FUTEX_WAKE, 1, NULL, NULL, 0);
    uint64_t t0 = t_now_ms();
    while (atomic_load(&ctl->pong) == p0) {
        if (t_now_ms() - t0 > 5000)
            return -ETIMEDOUT;
        sched_yield();
    }
    int outcome = ctl->rep_outcome;
    sbx_ipc_client_free_buffer(c, ch);
    return outcome;
}

static int hoarder(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    /* never read the socket: the broker must refuse, not block, once the
     * queue is full; then the target dies with fds still queued */
    int errors = 0;
    for (int i = 0; i < 5000; i++) {
        int r = call_no_collect(c, paths[i % 8]);
        if (r == -ETIMEDOUT)
            return 1;
        if (r == -EAGAIN || r == -ENOBUFS || r == -ETOOMANYREFS)
            errors++;
        else if (r != 0)
            return 2;
    }
    return errors ? 0 : 3;
}

Test(ipc_fd, target_that_never_collects_fds_neither_blocks_nor_leaks_the_broker)
{
    broker b;
    cr_assert_eq(broker_start(&b, NULL, NULL, NULL), 0);
    int fds0 = count_fds();
    pid_t pid = spawn_target(&b, hoarder, NULL);
    int code = wait_code(pid);
    cr_expect_eq(code, 0, "hoarder result %d", code);
    cr_expect_eq(count_fds_settled(fds0), fds0, "broker leaked fds");
    broker_stop(&b, 1);
}

static int send_junk(int sock, int nfds)
{
    int fds[8];
    for (int i = 0; i < nfds; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    union {
        char buf[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    memset(&cbuf, 0, sizeof cbuf);
    char junk[32] = "junk";
    struct iovec iov = { junk, sizeof junk };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                         .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int)) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
    ssize_t r = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    int err = errno;
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return r < 0 ? -err : 0;
}

static int junk_sender(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    /* after the server started the broker reads nothing: sends fail */
    for (int i = 0; i < 100; i++)
        if (send_junk(c->sock, 1 + i % 8) != -EPIPE)
            return 1;
    /* and the channel keeps working */
    sbx_arg a = sbx_arg_u32(3);
    sbx_ipc_reply rep;
    if (sbx_ipc_client_call(c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep) != 0 || rep.ext[0] != 6)
        return 2;
    return 0;
}

Test(ipc_fd, junk_messages_with_fds_are_refused_or_drained)
{
    sbx_ipc_section *sec;
    cr_assert_eq(sbx_ipc_section_new(NULL, &sec), 0);
    sbx_ipc_dispatcher *d = test_dispatcher();
    sbx_ipc_pool *pool;
    cr_assert_eq(sbx_ipc_pool_new(NULL, &pool), 0);
    int fds0 = count_fds();
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    /* junk queued before the server exists is drained and its fds closed */
    for (int i = 0; i < 20; i++)
        { int jr = send_junk(sv[1], 1 + i % 8); cr_assert_eq(jr, 0, "junk %d: %d", i, jr); }
    sbx_ipc_server *srv;
    cr_assert_eq(sbx_ipc_server_new(pool, sec, sv[0], d, NULL, &srv), 0);
    broker b = { .sec = sec, .target_sock = sv[1] };
    pid_t pid = spawn_target(&b, junk_sender, NULL);
    int code = wait_code(pid);
    cr_expect_eq(code, 0, "junk sender result %d", code);
    cr_expect_eq(count_fds(), fds0 + 2 /* the two socket ends */, "broker kept fds");
    sbx_ipc_server_free(srv);
    close(sv[1]);
    cr_expect_eq(count_fds(), fds0, "after teardown");
    sbx_ipc_pool_free(pool);
    sbx_ipc_dispatcher_free(d);
    sbx_ipc_section_free(sec);
}

static int many_fd_calls(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        sbx_arg a = sbx_arg_string(paths[i % 8]);
        sbx_ipc_reply rep;
        if (sbx_ipc_client_call(c, TAG_OPEN, &a, 1, SBX_IPC_CALL_CLOEXEC, &rep) != 0)
            return 1;
        close(rep.fd);
    }
    return 0;
}

/* The broker serves any moved ping, so a target can make it answer one
 * request several times (ping moved again without a new request, or
 * twice in a row) and leave every fd uncollected: all those fds carry the
 * channel and the request's old seq. The channel's next honest call
 * (seq: the ping + 1) must get its own file, never one of them, and they
 * are closed, not leaked into the target. Exit code: 0 or the step. */
static void ping_to(sbx_ipc_chan_head *head, uint32_t v)
{
    atomic_store(&head->ping, v);
    syscall(SYS_futex, &head->ping, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static bool pong_moves(sbx_ipc_control *ctl, uint32_t p0)
{
    uint64_t t0 = t_now_ms();
    while (atomic_load(&ctl->pong) == p0)
        if (t_now_ms() - t0 > 5000)
            return false;
        else
            sched_yield();
    return true;
}

static int stale_then_honest(sbx_ipc_client *c, void *arg)
{
    (void)arg;
    int fds0 = count_fds();
    for (int round = 0; round < 50; round++) {
        int ch = sbx_ipc_client_get_buffer(c);
        if (ch < 0)
            return 1;
        sbx_ipc_control *ctl = sbx_ipc_client_control(c, (unsigned)ch);
        sbx_ipc_chan_head *head = sbx_ipc_client_head(c, (unsigned)ch);
        uint32_t s = atomic_load(&head->ping) + 1;
        sbx_arg a = sbx_arg_string(paths[round % 4]);
        if (sbx_ipc_wire_encode(sbx_ipc_client_buffer(c, (unsigned)ch),
                                sbx_ipc_client_request_cap(c), TAG_OPEN, 0, s, &a, 1, NULL) < 0)
            return 2;
        uint32_t p0 = atomic_load(&ctl->pong);
        ping_to(head, s);
        if (!pong_moves(ctl, p0))
            return 3;
        /* the same request served again: another fd for (ch, s) */
        p0 = atomic_load(&ctl->pong);
        ping_to(head, s + 1);
        if (!pong_moves(ctl, p0))
            return 4;
        /* twice in a row: served once or twice */
        p0 = atomic_load(&ctl->pong);
        ping_to(head, s + 2);
        ping_to(head, s + 3);
        if (!pong_moves(ctl, p0))
            return 5;
        if (round % 2)
            usleep(2000); /* sometimes let a second serve land before the honest call */
        /* the honest call on the same channel: its own file */
        int want = 4 + round % 4;
        sbx_arg b = sbx_arg_string(paths[want]);
        sbx_ipc_reply rep;
        int r = sbx_ipc_client_call_on(c, ch, TAG_OPEN, &b, 1, 0, &rep);
        if (r != 0 || rep.fd < 0)
            return 6;
        if (!same_file(rep.fd, paths[want]))
            return 7; /* a stale fd of the replayed request was taken */
        close(rep.fd);
    }
    /* honest calls on every channel drain whatever is still queued */
    for (unsigned i = 0; i < 2 * sbx_ipc_client_channel_count(c); i++) {
        sbx_arg b = sbx_arg_string(paths[7]);
        sbx_ipc_reply rep;
        if (sbx_ipc_client_call(c, TAG_OPEN, &b, 1, 0, &rep) != 0 || !same_file(rep.fd, paths[7]))
            return 8;
        close(rep.fd);
    }
    int fds1 = count_fds();
    sbx_ipc_client_free(c);
    return fds1 == fds0 ? 0 : 9;
}

Test(ipc_fd, replayed_requests_fds_never_reach_the_channels_next_call)
{
    broker b;
    cr_assert_eq(broker_start(&b, NULL, NULL, NULL), 0);
    pid_t pid = spawn_target(&b, stale_then_honest, NULL);
    cr_expect_eq(wait_code(pid), 0);
    broker_stop(&b, 1);
}

Test(ipc_fd, no_fd_leak_after_many_fd_calls)
{
    broker b;
    cr_assert_eq(broker_start(&b, NULL, NULL, NULL), 0);
    int fds0 = count_fds();
    pid_t pid = spawn_target(&b, many_fd_calls, NULL);
    cr_expect_eq(wait_code(pid), 0);
    cr_expect_eq(count_fds_settled(fds0), fds0);
    broker_stop(&b, 1);
}
