/* sbx test helpers (see sbx_test.h). */
#include "sbx_test.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

sbx_test_status sbx_test_run_child(void (*fn)(void *arg), void *arg, unsigned timeout_ms)
{
    sbx_test_status st = { 0 };
    if (!timeout_ms)
        timeout_ms = 10000;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        st.exited = true;
        st.code = -1;
        return st;
    }
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    st.pid = pid;
    int pfd = pidfd_open_(pid);
    if (pfd >= 0) {
        struct pollfd p = { .fd = pfd, .events = POLLIN };
        int r;
        do
            r = poll(&p, 1, (int)timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            st.timed_out = true;
            kill(pid, SIGKILL);
        }
        close(pfd);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status)) {
        st.exited = true;
        st.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        st.signaled = true;
        st.sig = WTERMSIG(status);
    }
    return st;
}

const char *sbx_test_status_str(const sbx_test_status *st, char *buf, unsigned size)
{
    if (st->timed_out)
        snprintf(buf, size, "timed out");
    else if (st->signaled)
        snprintf(buf, size, "killed by SIG%s", sigabbrev_np(st->sig) ? sigabbrev_np(st->sig) : "?");
    else
        snprintf(buf, size, "exited %d", st->code);
    return buf;
}

long sbx_test_try_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
    errno = 0;
    long r = syscall(nr, a0, a1, a2, a3, a4, a5);
    return r < 0 ? -errno : r;
}

char *sbx_test_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    char *p;
    if (asprintf(&p, "%s/sbx-test-%s-XXXXXX", base, tag) < 0)
        return NULL;
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

int sbx_test_rmtree(const char *path)
{
    return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}
