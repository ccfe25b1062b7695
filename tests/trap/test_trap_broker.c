/* Brokered calls through the trap: the three paths (brokered, denied
 * without IPC, native), many threads at once, a signal storm while calls
 * are trapped, nested traps, and broker death. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "sbx_test.h"
#include "trap_broker.h"
#include "trap_lsan.h"

static char *dir;
static char okf[8][256];
static ino_t ok_ino[8];
static char denyf[256];

static void mkfiles(void)
{
    dir = sbx_test_mkdtemp("trap");
    cr_assert_not_null(dir);
    char p[300];
    snprintf(p, sizeof p, "%s/ok", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/deny", dir);
    mkdir(p, 0700);
    for (int i = 0; i < 8; i++) {
        snprintf(okf[i], sizeof okf[i], "%s/ok/f%d", dir, i);
        FILE *f = fopen(okf[i], "w");
        fprintf(f, "ok %d\n", i);
        fclose(f);
        struct stat st;
        stat(okf[i], &st);
        ok_ino[i] = st.st_ino;
    }
    snprintf(denyf, sizeof denyf, "%s/deny/secret", dir);
    FILE *f = fopen(denyf, "w");
    fputs("secret\n", f);
    fclose(f);
}

static void rmfiles(void)
{
    sbx_test_rmtree(dir);
    free(dir);
}

TestSuite(trap_broker, .init = mkfiles, .fini = rmfiles);

static int is_file(int fd, int i)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_ino == ok_ino[i];
}

Test(trap_broker, three_paths_brokered_denied_native)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    cr_assert_eq(tb_install(&b, true), 0);
    /* brokered: the fd the broker opened, with the right content */
    errno = 4321;
    int fd = open(okf[3], O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "errno %d", errno);
    cr_expect_eq(errno, 4321);
    cr_expect(is_file(fd, 3));
    cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char buf[16] = { 0 };
    cr_expect_gt(read(fd, buf, sizeof buf - 1), 0);
    cr_expect_str_eq(buf, "ok 3\n");
    close(fd);
    fd = open(okf[2], O_RDONLY);
    cr_expect_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0, "no O_CLOEXEC asked, none given");
    close(fd);
    cr_expect_eq(atomic_load(&b.shared->opens), 2);
    /* the broker's errno comes back as the call's errno */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/ok/missing", dir);
    errno = 0;
    cr_expect_eq(open(missing, O_RDONLY), -1);
    cr_expect_eq(errno, ENOENT);
    /* denied: EACCES from the local policy copy, no IPC */
    errno = 0;
    cr_expect_eq(open(denyf, O_RDONLY), -1);
    cr_expect_eq(errno, EACCES);
    cr_expect_null(fopen(denyf, "r"));
    cr_expect_eq(atomic_load(&b.shared->opens), 3);
    sbx_trap_open_stats os;
    sbx_trap_open_get_stats(&os);
    cr_expect_eq(os.denied, 2);
    /* native: re-issued with the magic */
    fd = open("/dev/null", O_RDONLY);
    cr_expect_geq(fd, 0);
    close(fd);
    sbx_trap_open_get_stats(&os);
    cr_expect_geq(os.native, 1);
    cr_expect_eq(os.brokered, 3);
    cr_expect_eq(atomic_load(&b.shared->opens), 3);
    tb_broker_kill(&b);
}

Test(trap_broker, without_landlock_native_paths_are_refused)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    cr_assert_eq(tb_install(&b, false), 0);
    int fd = open(okf[1], O_RDONLY);
    cr_expect(is_file(fd, 1));
    close(fd);
    errno = 0;
    cr_expect_eq(open("/dev/null", O_RDONLY), -1);
    cr_expect_eq(errno, EPERM);
    tb_broker_kill(&b);
}

#define NTHREADS 8
#define PER_THREAD 400

static atomic_int usr1_seen, usr1_bad;
static atomic_int stop_storm;

/* A program's own handler that makes a trapped (native) call itself. */
static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno;
    atomic_fetch_add(&usr1_seen, 1);
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0)
        atomic_fetch_add(&usr1_bad, 1);
    else
        close(fd);
    errno = saved;
}

static atomic_int workers_done;

static void *worker_body(int i)
{
    for (int k = 0; k < PER_THREAD; k++) {
        int fd = open(okf[i], O_RDONLY);
        if (fd < 0 || !is_file(fd, i))
            return (void *)(intptr_t)(1000 + k);
        close(fd);
        errno = 0;
        if (open(denyf, O_RDONLY) != -1 || errno != EACCES)
            return (void *)(intptr_t)(3000 + k);
    }
    return NULL;
}

static void *worker(void *arg)
{
    void *r = worker_body((int)(intptr_t)arg);
    atomic_fetch_add(&workers_done, 1);
    return r;
}

typedef struct storm {
    pthread_t *targets;
    int n;
} storm;

static void *stormer(void *arg)
{
    storm *s = arg;
    while (!atomic_load(&stop_storm)) {
        for (int i = 0; i < s->n; i++)
            pthread_kill(s->targets[i], SIGUSR1);
        kill(getpid(), SIGALRM);
        struct timespec ts = { 0, 20000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static atomic_int alrm_seen;
static void on_alrm(int sig)
{
    (void)sig;
    atomic_fetch_add(&alrm_seen, 1);
}

Test(trap_broker, many_threads_with_a_signal_storm, .timeout = 60)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_alrm;
    sigaction(SIGALRM, &sa, NULL);
    cr_assert_eq(tb_install(&b, true), 0);
    pthread_t t[NTHREADS], st;
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i), 0);
    storm s = { t, NTHREADS };
    cr_assert_eq(pthread_create(&st, NULL, stormer, &s), 0);
    /* the storm stops before any worker is joined (a joined id is stale) */
    while (atomic_load(&workers_done) < NTHREADS)
        usleep(1000);
    atomic_store(&stop_storm, 1);
    pthread_join(st, NULL);
    for (int i = 0; i < NTHREADS; i++) {
        void *res;
        pthread_join(t[i], &res);
        cr_expect_null(res, "thread %d failed at %ld", i, (long)(intptr_t)res);
    }
    cr_expect_eq(atomic_load(&b.shared->opens), (uint64_t)NTHREADS * PER_THREAD);
    cr_expect_gt(atomic_load(&usr1_seen), 0);
    cr_expect_eq(atomic_load(&usr1_bad), 0);
    sbx_trap_stats stats;
    sbx_trap_get_stats(&stats);
    cr_expect_geq(stats.trapped, (uint64_t)NTHREADS * PER_THREAD * 2);
    tb_broker_kill(&b);
}

/* A handler that makes a brokered call itself: a nested trap takes another
 * channel and the outer call still gets its own answer. */
static long nest_getppid(const sbx_trap_call *call, void *ctx)
{
    (void)ctx;
    int fd = open(okf[5], O_RDONLY);
    if (fd < 0)
        return fd;
    long r = is_file(fd, 5) ? 777 + (long)call->depth : -EBADF;
    close(fd);
    return r;
}

Test(trap_broker, nested_trap_inside_a_handler)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    cr_assert_eq(sbx_trap_register(SYS_getppid, nest_getppid, NULL), 0);
    cr_assert_eq(tb_install(&b, true), 0);
    cr_expect_eq(getppid(), 778);
    sbx_trap_stats st;
    sbx_trap_get_stats(&st);
    cr_expect_eq(st.nested, 1);
    cr_expect_eq(atomic_load(&b.shared->opens), 1);
    tb_broker_kill(&b);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

Test(trap_broker, broker_death_gives_eio_promptly)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    sbx_ipc_client_set_timeout_ms(b.client, 100);
    cr_assert_eq(tb_install(&b, true), 0);
    int fd = open(okf[0], O_RDONLY);
    cr_expect(is_file(fd, 0));
    close(fd);
    tb_broker_kill(&b);
    uint64_t t0 = now_ms();
    errno = 0;
    cr_expect_eq(open(okf[0], O_RDONLY), -1);
    cr_expect_eq(errno, EIO);
    cr_expect_lt(now_ms() - t0, 2000);
    /* later calls fail at once; denied and native paths are unaffected */
    t0 = now_ms();
    cr_expect_eq(open(okf[1], O_RDONLY), -1);
    cr_expect_eq(errno, EIO);
    cr_expect_lt(now_ms() - t0, 50);
    errno = 0;
    cr_expect_eq(open(denyf, O_RDONLY), -1);
    cr_expect_eq(errno, EACCES);
    fd = open("/dev/null", O_RDONLY);
    cr_expect_geq(fd, 0);
    close(fd);
}

static void *killer(void *arg)
{
    tb_broker *b = arg;
    usleep(20000);
    kill(b->pid, SIGKILL);
    return NULL;
}

Test(trap_broker, broker_death_during_a_storm_of_calls, .timeout = 30)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    sbx_ipc_client_set_timeout_ms(b.client, 100);
    cr_assert_eq(tb_install(&b, true), 0);
    pthread_t k;
    pthread_create(&k, NULL, killer, &b);
    uint64_t t0 = now_ms();
    int errors = 0, wrong = 0;
    while (now_ms() - t0 < 3000) {
        int fd = open(okf[4], O_RDONLY);
        if (fd >= 0) {
            wrong += !is_file(fd, 4);
            close(fd);
        } else if (errno == EIO) {
            errors++;
            break;
        } else {
            wrong++;
        }
    }
    pthread_join(k, NULL);
    waitpid(b.pid, NULL, 0);
    cr_expect_eq(wrong, 0);
    cr_expect_eq(errors, 1, "a dead broker must give EIO, not a hang");
}

/* Attack: the target's own code uses the magic. With Landlock (native
 * allowed) it gets a native call — bounded by Landlock and the view, not
 * by the trap (docs/trap.md). Without Landlock the filter has no magic
 * exception: the denial holds in every spelling. */
Test(trap_broker, magic_cannot_bypass_a_denial_without_landlock)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    cr_assert_eq(tb_install(&b, false), 0);
    uint64_t p = (uint64_t)(uintptr_t)denyf;
    cr_expect_eq(sbx_trap_syscall6(SYS_openat, (uint64_t)AT_FDCWD, p, O_RDONLY, 0, 0, SBX_TRAP_MAGIC), -EACCES);
    cr_expect_eq(sbx_trap_syscall6(SYS_open, p, O_RDONLY, 0, 0, 0, SBX_TRAP_MAGIC), -EACCES);
    cr_expect_eq(sbx_trap_syscall6(SYS_openat, (uint64_t)AT_FDCWD, p, O_RDONLY, 0, 0, 0), -EACCES);
    cr_expect_eq(atomic_load(&b.shared->opens), 0);
    tb_broker_kill(&b);
}

Test(trap_broker, magic_is_native_with_landlock)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    cr_assert_eq(tb_install(&b, true), 0);
    long fd = sbx_trap_syscall6(SYS_openat, (uint64_t)AT_FDCWD, (uint64_t)(uintptr_t)denyf, O_RDONLY, 0,
                                0, SBX_TRAP_MAGIC);
    cr_expect_geq(fd, 0, "the documented Landlock-bounded native path");
    close((int)fd);
    tb_broker_kill(&b);
}

/* Hostile arguments to a trapped call: the answers the kernel would give,
 * no crash, nothing brokered that the policy did not route. */
Test(trap_broker, hostile_arguments)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    cr_assert_eq(tb_install(&b, true), 0);
    errno = 0;
    cr_expect_eq(syscall(SYS_openat, AT_FDCWD, NULL, O_RDONLY), -1);
    cr_expect_eq(errno, EFAULT);
    cr_expect_eq(syscall(SYS_open, NULL, O_RDONLY), -1);
    cr_expect_eq(errno, EFAULT);
    /* an over-long path under the brokered tree */
    static char longp[6000];
    int n = snprintf(longp, sizeof longp, "%s/ok/", dir);
    memset(longp + n, 'a', sizeof longp - (size_t)n - 1);
    errno = 0;
    cr_expect_eq(open(longp, O_RDONLY), -1);
    cr_expect_eq(errno, ENAMETOOLONG);
    /* a relative path is not the stand-in's to broker: native */
    cr_assert_eq(chdir(dir), 0);
    int fd = open("ok/f1", O_RDONLY);
    cr_expect(is_file(fd, 1));
    close(fd);
    cr_expect_eq(atomic_load(&b.shared->opens), 0);
    tb_broker_kill(&b);
}

#define MANY 24

static void *many_worker(void *arg)
{
    int i = (int)(intptr_t)arg % 8;
    for (int k = 0; k < 100; k++) {
        int fd = open(okf[i], O_RDONLY);
        if (fd < 0 || !is_file(fd, i))
            return (void *)(intptr_t)(1 + k);
        close(fd);
    }
    return NULL;
}

Test(trap_broker, more_threads_than_channels, .timeout = 60)
{
    tb_broker b;
    cr_assert_eq(tb_broker_start(&b, dir), 0);
    cr_assert_lt(sbx_ipc_client_channel_count(b.client), MANY);
    cr_assert_eq(tb_install(&b, true), 0);
    pthread_t t[MANY];
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, many_worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < MANY; i++) {
        void *res;
        pthread_join(t[i], &res);
        cr_expect_null(res, "thread %d", i);
    }
    cr_expect_eq(atomic_load(&b.shared->opens), (uint64_t)MANY * 100);
    tb_broker_kill(&b);
}
