/* sbx — file-descriptor helpers. */
#include "base/fd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"

ssize_t sbx_read_full(int fd, void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t r = read(fd, (char *)buf + off, len - off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sbx_neg_errno();
        }
        if (r == 0)
            break;
        off += (size_t)r;
    }
    return (ssize_t)off;
}

ssize_t sbx_write_full(int fd, const void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, (const char *)buf + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return sbx_neg_errno();
        }
        if (w == 0)
            return -EIO;
        off += (size_t)w;
    }
    return (ssize_t)off;
}

int sbx_set_cloexec(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return sbx_neg_errno();
    int nfl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
    if (nfl != fl && fcntl(fd, F_SETFD, nfl) < 0)
        return sbx_neg_errno();
    return 0;
}

int sbx_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return sbx_neg_errno();
    int nfl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
        return sbx_neg_errno();
    return 0;
}

bool sbx_fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static int close_range_raw(unsigned lo, unsigned hi)
{
    return (int)syscall(SYS_close_range, lo, hi, 0u);
}

/* Fallback for kernels without close_range: walk /proc/self/fd. opendir
 * allocates, so this path is not async-signal-safe; it exists only for old
 * kernels (< 5.9), which sbx does not otherwise support. */
static int close_by_walk(const int *keep, size_t n)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return sbx_neg_errno();
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (*end || v < 3 || v == self || v > INT_MAX)
            continue;
        bool kept = false;
        for (size_t i = 0; i < n; i++)
            kept |= keep[i] == (int)v;
        if (!kept)
            close((int)v);
    }
    closedir(d);
    return 0;
}

int sbx_close_all_except(const int *keep, size_t n)
{
    /* Sort the kept fds (insertion sort on a bounded stack copy; no malloc).
     * A spawn's init keeps one fd per view tree: room for every view. */
    int sorted[SBX_CLOSE_KEEP_MAX];
    size_t m = 0;
    if (n > SBX_ARRAY_SIZE(sorted))
        return -E2BIG;
    for (size_t i = 0; i < n; i++) {
        int v = keep[i];
        if (v < 3)
            continue;
        size_t j = m;
        while (j > 0 && sorted[j - 1] > v) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = v;
        m++;
    }
    unsigned lo = 3;
    for (size_t i = 0; i <= m; i++) {
        unsigned hi = i < m ? (unsigned)sorted[i] : ~0u;
        if (i < m && (unsigned)sorted[i] < lo) /* duplicate */
            continue;
        if (hi > lo) {
            if (close_range_raw(lo, hi == ~0u ? ~0u : hi - 1) < 0) {
                if (errno == ENOSYS)
                    return close_by_walk(keep, n);
                return sbx_neg_errno();
            }
        }
        if (i < m)
            lo = (unsigned)sorted[i] + 1;
    }
    return 0;
}

unsigned long long sbx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

int sbx_send_fds(int sock, const void *msg, size_t len, const int *fds, size_t nfds, int flags)
{
    if (nfds > SBX_SEND_FDS_MAX)
        return -EINVAL;
    union {
        char buf[CMSG_SPACE(SBX_SEND_FDS_MAX * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    memset(&cbuf, 0, sizeof cbuf);
    struct iovec iov = { .iov_base = (void *)(uintptr_t)msg, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EMSGSIZE;
}
