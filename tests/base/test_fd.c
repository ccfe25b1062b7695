#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/fd.h"
#include "sbx_test.h"

Test(fd, read_write_full_across_partial_transfers)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int sz = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    static char out[1 << 20], in[1 << 20];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)(i * 31 + 7);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(sv[1]);
        _exit(sbx_write_full(sv[0], out, sizeof out) == (ssize_t)sizeof out ? 0 : 1);
    }
    close(sv[0]);
    cr_expect_eq(sbx_read_full(sv[1], in, sizeof in), (ssize_t)sizeof in);
    cr_expect_eq(memcmp(in, out, sizeof in), 0);
    /* At end of file: short count, not an error. */
    cr_expect_eq(sbx_read_full(sv[1], in, 10), 0);
    close(sv[1]);
}

Test(fd, write_full_reports_epipe)
{
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    cr_expect_eq(sbx_write_full(p[1], "x", 1), -EPIPE);
    close(p[1]);
    char c;
    cr_expect_eq(sbx_read_full(-1, &c, 1), -EBADF);
}

Test(fd, cloexec_and_nonblock_toggle)
{
    int fd = open("/dev/null", O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_expect_eq(sbx_set_cloexec(fd, true), 0);
    cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    cr_expect_eq(sbx_set_cloexec(fd, false), 0);
    cr_expect_not(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    cr_expect_eq(sbx_set_nonblock(fd, true), 0);
    cr_expect(fcntl(fd, F_GETFL) & O_NONBLOCK);
    close(fd);
    cr_expect_eq(sbx_set_cloexec(fd, true), -EBADF);
    cr_expect_eq(sbx_set_nonblock(fd, true), -EBADF);
}

static void close_all_child(void *arg)
{
    (void)arg;
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    /* keep 2 of them, out of order, one duplicated, plus stdio */
    int keep[] = { fds[6], fds[2], fds[6], 1 };
    if (sbx_close_all_except(keep, 4) != 0)
        _exit(10);
    for (int i = 0; i < 8; i++) {
        bool want = i == 2 || i == 6;
        if (sbx_fd_is_open(fds[i]) != want)
            _exit(20 + i);
    }
    for (int fd = 0; fd < 3; fd++)
        if (!sbx_fd_is_open(fd))
            _exit(40 + fd);
    for (int fd = 3; fd < 1024; fd++)
        if (fd != fds[2] && fd != fds[6] && sbx_fd_is_open(fd))
            _exit(50);
    _exit(0);
}

Test(fd, close_all_except_keeps_exactly_the_list)
{
    sbx_test_status st = sbx_test_run_child(close_all_child, NULL, 0);
    char buf[64];
    sbx_test_status_str(&st, buf, sizeof buf);
    cr_expect(st.exited && st.code == 0, "child %s", buf);
}

static void close_all_none_child(void *arg)
{
    (void)arg;
    int a = open("/dev/null", O_RDONLY), b = dup2(a, 200);
    if (sbx_close_all_except(NULL, 0) != 0)
        _exit(10);
    _exit(sbx_fd_is_open(a) || sbx_fd_is_open(b) ? 11 : 0);
}

Test(fd, close_all_except_with_empty_list)
{
    sbx_test_status st = sbx_test_run_child(close_all_none_child, NULL, 0);
    cr_expect(st.exited && st.code == 0, "code %d", st.code);
}

Test(fd, close_all_except_refuses_oversized_list)
{
    int keep[SBX_CLOSE_KEEP_MAX + 1] = { 0 };
    cr_expect_eq(sbx_close_all_except(keep, SBX_CLOSE_KEEP_MAX + 1), -E2BIG);
}

Test(fd, monotonic_clock_advances)
{
    unsigned long long a = sbx_now_ns();
    usleep(2000);
    unsigned long long b = sbx_now_ns();
    cr_expect_geq(b - a, 2000000ull);
}
