/* The minimal brokered open (transport_floor.h). */
#include "transport_floor.h"

#include <errno.h>
#include <linux/futex.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* One cache line each, so the request and the answer do not share one. */
typedef struct {
    _Alignas(64) _Atomic long req;   /* caller: sequence number, or
                                        FLOOR_PAUSED = sleep until woken */
    _Alignas(64) _Atomic long ans;   /* broker: sequence answered */
    int fd;                          /* broker's fd number (getfd kind) */
    int err;                         /* broker: errno of a failed open */
    _Alignas(64) _Atomic long taken; /* caller: fd copied (getfd kind) */
} floor_shared;

struct floor_broker {
    floor_kind kind;
    floor_shared *sh;
    pid_t pid;
    int pidfd;   /* getfd kind */
    int sock;    /* SCM_RIGHTS kind: the caller's end */
    long seq;
};

#define FLOOR_PAUSED (-2L)

static void spin_until(_Atomic long *v, long want)
{
    while (atomic_load_explicit(v, memory_order_acquire) != want)
        __builtin_ia32_pause();
}

static int send_fd(int sock, int fd)
{
    char byte = 0;
    struct iovec iov = { &byte, 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cm;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
    char byte;
    struct iovec iov = { &byte, 1 };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cm;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
    if (recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

static _Noreturn void broker_main(floor_kind kind, floor_shared *sh, int sock,
                                  const char *path)
{
    struct open_how how = { .flags = O_RDONLY | O_CLOEXEC,
                            .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
    for (long seq = 1;; seq++) {
        long r;
        while ((r = atomic_load_explicit(&sh->req, memory_order_acquire)) != seq) {
            if (r == FLOOR_PAUSED) /* the futex word is the low half */
                syscall(SYS_futex, (void *)(uintptr_t)&sh->req, FUTEX_WAIT, (int)FLOOR_PAUSED, NULL, NULL, 0);
            else
                __builtin_ia32_pause();
        }
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
        sh->err = fd < 0 ? errno : 0;
        if (fd >= 0 && kind == FLOOR_SCM_RIGHTS && send_fd(sock, fd) < 0)
            sh->err = errno;
        sh->fd = fd;
        atomic_store_explicit(&sh->ans, seq, memory_order_release);
        if (fd >= 0 && kind == FLOOR_PIDFD_GETFD)
            spin_until(&sh->taken, seq); /* keep it until the caller has it */
        if (fd >= 0)
            close(fd); /* after the answer, as sbx's broker does */
    }
}

floor_broker *floor_start(floor_kind kind, const char *path)
{
    floor_broker *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->kind = kind;
    b->sock = b->pidfd = -1;
    b->sh = mmap(NULL, sizeof *b->sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b->sh == MAP_FAILED) {
        free(b);
        return NULL;
    }
    int sv[2] = { -1, -1 };
    if (kind == FLOOR_SCM_RIGHTS && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        goto fail;
    pid_t parent = getpid();
    b->pid = fork();
    if (b->pid < 0)
        goto fail;
    if (b->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        if (sv[1] >= 0)
            close(sv[1]);
        broker_main(kind, b->sh, sv[0], path);
    }
    if (sv[0] >= 0)
        close(sv[0]);
    b->sock = sv[1];
    if (kind == FLOOR_PIDFD_GETFD) {
        b->pidfd = (int)syscall(SYS_pidfd_open, b->pid, 0);
        if (b->pidfd < 0)
            goto fail_child;
        int fd = floor_open(b); /* pidfd_getfd needs ptrace rights: try once */
        if (fd < 0)
            goto fail_child;
        close(fd);
    }
    return b;
fail_child: {
        int e = errno;
        floor_stop(b);
        errno = e;
        return NULL;
    }
fail: {
        int e = errno;
        if (sv[0] >= 0)
            close(sv[0]);
        if (sv[1] >= 0)
            close(sv[1]);
        munmap(b->sh, sizeof *b->sh);
        free(b);
        errno = e;
        return NULL;
    }
}

int floor_open(floor_broker *b)
{
    long seq = ++b->seq;
    atomic_store_explicit(&b->sh->req, seq, memory_order_release);
    spin_until(&b->sh->ans, seq);
    if (b->sh->err) {
        errno = b->sh->err;
        if (b->kind == FLOOR_PIDFD_GETFD)
            atomic_store_explicit(&b->sh->taken, seq, memory_order_release);
        return -1;
    }
    if (b->kind == FLOOR_SCM_RIGHTS)
        return recv_fd(b->sock);
    int fd = (int)syscall(SYS_pidfd_getfd, b->pidfd, b->sh->fd, 0);
    int e = errno;
    atomic_store_explicit(&b->sh->taken, seq, memory_order_release);
    errno = e;
    return fd;
}

void floor_pause(floor_broker *b)
{
    atomic_store_explicit(&b->sh->req, FLOOR_PAUSED, memory_order_release);
}

void floor_resume(floor_broker *b)
{
    atomic_store_explicit(&b->sh->req, b->seq, memory_order_release);
    syscall(SYS_futex, (void *)(uintptr_t)&b->sh->req, FUTEX_WAKE, 1, NULL, NULL, 0);
}

void floor_stop(floor_broker *b)
{
    if (!b)
        return;
    if (b->pid > 0) { /* it holds nothing worth a clean exit */
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
    }
    if (b->pidfd >= 0)
        close(b->pidfd);
    if (b->sock >= 0)
        close(b->sock);
    munmap(b->sh, sizeof *b->sh);
    free(b);
}
