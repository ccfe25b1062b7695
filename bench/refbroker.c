/* The SOCK_SEQPACKET + SCM_RIGHTS reference broker (refbroker.h). */
#include "refbroker.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fd.h"

int bench_send_fd(int sock, int fd)
{
    char b = 0;
    return sbx_send_fds(sock, &b, 1, &fd, 1, 0) == 0 ? 0 : -1;
}

int bench_recv_fd(int sock)
{
    char b;
    struct iovec iov = { &b, 1 };
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof cbuf };
    if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (!cm || cm->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

int bench_refbroker_start(bench_refbroker *rb)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        /* The reference broker: bounded read, NUL-terminated, open, send. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(sv[0]);
        char path[4096];
        for (;;) {
            ssize_t n = recv(sv[1], path, sizeof path - 1, 0);
            if (n <= 0)
                _exit(0);
            path[n] = '\0';
            int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd < 0 || bench_send_fd(sv[1], fd) < 0)
                _exit(3);
            close(fd);
        }
    }
    close(sv[1]);
    rb->sock = sv[0];
    rb->pid = pid;
    return 0;
}

int bench_refbroker_open(const bench_refbroker *rb, const char *path)
{
    size_t len = strlen(path);
    if (send(rb->sock, path, len, 0) != (ssize_t)len)
        return -1;
    return bench_recv_fd(rb->sock);
}

void bench_refbroker_stop(bench_refbroker *rb)
{
    close(rb->sock);
    int st;
    waitpid(rb->pid, &st, 0);
}
