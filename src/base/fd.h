/* sbx internal — file-descriptor helpers. All return 0 / a count on success
 * and a negative errno on failure; all retry on EINTR. */
#ifndef SBX_BASE_FD_H
#define SBX_BASE_FD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Read exactly `len` bytes. Returns len, or fewer at end of file, or -errno. */
ssize_t sbx_read_full(int fd, void *buf, size_t len);
/* Write all of `len` bytes. Returns len or -errno (-EPIPE, ...). */
ssize_t sbx_write_full(int fd, const void *buf, size_t len);

int sbx_set_cloexec(int fd, bool on);
int sbx_set_nonblock(int fd, bool on);
bool sbx_fd_is_open(int fd);

/* Close every fd >= 3 not listed in keep[0..n) (close_range between the
 * kept ones; a /proc/self/fd walk when close_range is unavailable). Safe
 * between fork and exec: no allocation. n <= SBX_CLOSE_KEEP_MAX, else
 * -E2BIG. Returns 0 or -errno. */
#define SBX_CLOSE_KEEP_MAX 512
int sbx_close_all_except(const int *keep, size_t n);

/* Send one message of `len` bytes on a unix socket with fds[0..nfds)
 * attached (SCM_RIGHTS; nfds <= SBX_SEND_FDS_MAX, 0 for none); `flags`
 * are sendmsg's (MSG_NOSIGNAL is always added). No allocation: safe
 * between fork and exec. The caller keeps its fds. Returns 0 or -errno
 * (-EMSGSIZE when the message went out short). */
#define SBX_SEND_FDS_MAX 8
int sbx_send_fds(int sock, const void *msg, size_t len, const int *fds, size_t nfds, int flags);

/* Monotonic clock in nanoseconds. */
unsigned long long sbx_now_ns(void);

#endif
