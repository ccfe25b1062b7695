/* sbx test helpers (see sbx_test.h). */
#include "sbx_test.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
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

#define MAX_ENDS 256
static pthread_mutex_t g_ends_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_ends_cond = PTHREAD_COND_INITIALIZER;
static struct {
    uint64_t id;
    int code, sig;
} g_ends[MAX_ENDS];
static size_t g_n_ends;

void sbx_test_on_event(const sbx_event *e, void *ud)
{
    (void)ud;
    if (e->type != SBX_EVENT_EXITED && e->type != SBX_EVENT_KILLED)
        return;
    pthread_mutex_lock(&g_ends_lock);
    if (g_n_ends < MAX_ENDS) {
        g_ends[g_n_ends].id = e->target_id;
        g_ends[g_n_ends].code = e->type == SBX_EVENT_EXITED ? e->code : -1;
        g_ends[g_n_ends].sig = e->type == SBX_EVENT_KILLED ? e->signal : 0;
        g_n_ends++;
    }
    pthread_cond_broadcast(&g_ends_cond);
    pthread_mutex_unlock(&g_ends_lock);
}

bool sbx_test_wait_end(uint64_t id, int ms, int *code, int *sig)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g_ends_lock);
    for (;;) {
        for (size_t i = 0; i < g_n_ends; i++)
            if (g_ends[i].id == id) {
                if (code)
                    *code = g_ends[i].code;
                if (sig)
                    *sig = g_ends[i].sig;
                pthread_mutex_unlock(&g_ends_lock);
                return true;
            }
        if (pthread_cond_timedwait(&g_ends_cond, &g_ends_lock, &dl) != 0) {
            pthread_mutex_unlock(&g_ends_lock);
            return false;
        }
    }
}

size_t sbx_test_read_all(int fd, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t k = read(fd, buf + n, size - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    return n;
}
