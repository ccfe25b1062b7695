/* A trap-backend target for tests/runtime/test_trap_backend.c.
 *   trap_threads_probe cwd REL N
 *       two threads with their own cwd ("/" and "/usr", unshare(CLONE_FS))
 *       open the relative path REL alternately N times each; prints
 *       "root=<ok count> usr=<errno of the last failure or 0>" — REL must
 *       resolve against the calling thread's cwd every time.
 *   trap_threads_probe deadtid ABS
 *       a thread opens ABS through the shim (the broker remembers it) and
 *       exits; then a cross call claiming that dead thread's tid must be
 *       refused (ESRCH), not served from the memory of the dead thread.
 *   trap_threads_probe sigblocked ABS
 *       with SIGSYS blocked, open(ABS) (libc's exported symbol: the shim's
 *       direct entry, no trap) is served and prints "direct ok"; then
 *       fopen(ABS) (libc's internal open: trapped) dies by SIGSYS — the
 *       trap filter is still the catch-all.
 *   trap_threads_probe signals ABS N
 *       N opens of ABS (content checked) while a 200 us timer's handler
 *       opens ABS too and siglongjmps out every third time: a handler must
 *       never run in the middle of a cross call (a jump out of one would
 *       abandon its channel; after a few dozen, every open would hang).
 *       (A jump right after an open returned loses that fd, natively too:
 *       the rate keeps those well below the fd limit.)
 *   trap_threads_probe mixed NATIVE ABS N
 *       N rounds of open(NATIVE) (a file of the view: the direct entry's
 *       native re-issue succeeds, with the re-issue magic in R9) followed
 *       by fopen(ABS) (a brokered file; libc's internal open, trapped):
 *       the magic must not leak into that call and let it pass the filter
 *       (natively: EACCES for ABS).
 * Exit 0 when every check passed; other codes name the failed step. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <sbx/ipc.h>

#include "subsys/files/files_ipc.h"

static const char *g_rel;
static int g_n;
static pthread_barrier_t g_bar;

typedef struct res {
    int ok, last_err;
} res;

static void *opener(void *arg)
{
    const char *cwd = arg;
    res *r = calloc(1, sizeof *r);
    if (unshare(CLONE_FS) < 0 || chdir(cwd) < 0)
        exit(20);
    for (int i = 0; i < g_n; i++) {
        pthread_barrier_wait(&g_bar); /* alternate: both threads call in each round */
        int fd = open(g_rel, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            r->ok++;
            close(fd);
        } else {
            r->last_err = errno;
        }
    }
    return r;
}

static pid_t g_dead_tid;
static const char *g_abs;

static void *short_lived(void *arg)
{
    (void)arg;
    g_dead_tid = (pid_t)syscall(SYS_gettid);
    int fd = open(g_abs, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        exit(30);
    close(fd);
    return NULL;
}

/* ABS opened and its first byte read: 0, else a failure code. */
static int open_check(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    char c = 0;
    int bad = read(fd, &c, 1) != 1 || c != 'x';
    close(fd);
    return bad ? 2 : 0;
}

static sigjmp_buf g_jmp;
static volatile sig_atomic_t g_ticks, g_handler_fail;

static void on_alarm(int sig)
{
    (void)sig;
    if (open_check(g_abs))
        g_handler_fail |= 1;
    if (++g_ticks % 3 == 0)
        siglongjmp(g_jmp, 1);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "cwd")) {
        g_rel = argv[2];
        g_n = atoi(argv[3]);
        pthread_barrier_init(&g_bar, NULL, 2);
        pthread_t a, b;
        static char root[] = "/", usr[] = "/usr";
        pthread_create(&a, NULL, opener, root);
        pthread_create(&b, NULL, opener, usr);
        res *ra, *rb;
        pthread_join(a, (void **)&ra);
        pthread_join(b, (void **)&rb);
        printf("root=%d usr_ok=%d usr_err=%d\n", ra->ok, rb->ok, rb->last_err);
        return ra->ok == g_n && rb->ok == 0 && rb->last_err != 0 ? 0 : 1;
    }
    if (argc == 3 && !strcmp(argv[1], "deadtid")) {
        g_abs = argv[2];
        pthread_t t;
        pthread_create(&t, NULL, short_lived, NULL);
        pthread_join(t, NULL);
        /* the kernel has released the thread once join returns */
        usleep(10000);
        sbx_ipc_client *c = NULL;
        if (sbx_ipc_client_from_env(&c) < 0)
            return 40;
        sbx_arg args[6] = { sbx_arg_u32((uint32_t)SYS_openat), sbx_arg_u32((uint32_t)g_dead_tid),
                            sbx_arg_handle((uint64_t)(int64_t)AT_FDCWD),
                            sbx_arg_stringn(g_abs, strlen(g_abs)), sbx_arg_u32(O_RDONLY),
                            sbx_arg_u32(0) };
        sbx_ipc_reply rep;
        int r = sbx_ipc_client_call(c, SBX_FILES_IPC_TAG_OPEN, args, 6, 0, &rep);
        printf("call=%d res=%llu status=%d fd=%d\n", r, (unsigned long long)rep.ext[0], rep.status,
               rep.fd);
        if (r < 0)
            return 41;
        if (rep.fd >= 0 || rep.ext[0] != SBX_FILES_IPC_RES_ERROR || rep.status != ESRCH)
            return 42;
        /* and our own, live tid is served */
        args[1] = sbx_arg_u32((uint32_t)syscall(SYS_gettid));
        r = sbx_ipc_client_call(c, SBX_FILES_IPC_TAG_OPEN, args, 6, 0, &rep);
        printf("live: call=%d res=%llu fd=%d\n", r, (unsigned long long)rep.ext[0], rep.fd);
        return r == 0 && rep.ext[0] == SBX_FILES_IPC_RES_FD && rep.fd >= 0 ? 0 : 43;
    }
    if (argc == 3 && !strcmp(argv[1], "sigblocked")) {
        g_abs = argv[2];
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGSYS);
        if (sigprocmask(SIG_BLOCK, &m, NULL) < 0)
            return 50;
        if (open_check(g_abs))
            return 51;
        /* write(2), not stdio: stdio's first use stats stdout (trapped) */
        static const char ok[] = "direct ok\n", bad[] = "fopen survived\n";
        if (write(1, ok, sizeof ok - 1) < 0)
            return 53;
        FILE *f = fopen(g_abs, "r"); /* libc's internal open: trapped, and killed */
        (void)!write(1, bad, sizeof bad - 1);
        return f ? 52 : 54;
    }
    if (argc == 5 && !strcmp(argv[1], "mixed")) {
        g_abs = argv[3];
        int n = atoi(argv[4]);
        for (int i = 0; i < n; i++) {
            int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                return 70;
            close(fd);
            FILE *f = fopen(g_abs, "re");
            if (!f) {
                printf("round %d: fopen: %s\n", i, strerror(errno));
                return 71;
            }
            fclose(f);
        }
        printf("mixed ok\n");
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "signals")) {
        g_abs = argv[2];
        int n = atoi(argv[3]);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGALRM, &sa, NULL) < 0)
            return 60;
        struct itimerval it = { { 0, 200 }, { 0, 200 } };
        if (setitimer(ITIMER_REAL, &it, NULL) < 0)
            return 61;
        volatile int done = 0, failed = 0;
        sigsetjmp(g_jmp, 1);
        while (done < n) {
            int r = open_check(g_abs);
            done++;
            if (r)
                failed++;
        }
        struct itimerval off = { { 0, 0 }, { 0, 0 } };
        setitimer(ITIMER_REAL, &off, NULL);
        printf("opens=%d failed=%d ticks=%d handler_fail=%d\n", done, failed, (int)g_ticks,
               (int)g_handler_fail);
        return failed || g_handler_fail ? 62 : g_ticks < 10 ? 63 : 0;
    }
    return 100;
}
