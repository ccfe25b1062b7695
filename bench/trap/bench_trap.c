/* Trap backend benchmark: open+close of a file, 100k iterations each, in
 * one run:
 *   native            libc open+close before any filter is installed
 *   native_filtered   after install: raw open with the magic (the filter
 *                     runs and allows; no signal)
 *   trap_native       libc open trapped, re-issued natively from the
 *                     SIGSYS handler (the native-view path)
 *   trap_brokered     libc open trapped, local policy pre-check, cross call
 *                     to a broker process that opens the file and returns
 *                     the fd by SCM_RIGHTS (the brokered path)
 *   trap_denied       libc open trapped and refused by the local policy
 *                     copy, no IPC (no close needed)
 *   ipc_direct        the same cross call made directly, without the trap
 *                     (what the IPC and the broker's open cost alone)
 *   floor_scm_rights  the floor under any brokered open here: a bare
 *                     spinning process opens with openat2 and sends the
 *                     fd by SCM_RIGHTS, no policy, no checks
 *                     (transport_floor.h)
 *   floor_pidfd_getfd the same with pidfd_getfd instead of SCM_RIGHTS (a
 *                     transport a target can never use: comparison only)
 * native, the floors and ipc_direct run in alternating rounds, so their
 * ratios share the machine's moods; the trapped cases run after the
 * install. The goal: trap_brokered <= 4x native. Not a test. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "transport_floor.h"
#include "../../tests/trap/trap_broker.h" /* the test broker and subsystem */

#define ITERS 100000u
#define WARMUP 2000u
#define ROUNDS 10u /* rounds of ITERS / ROUNDS for the alternating cases */

static char dir[] = "/tmp/sbx-bench-trap-XXXXXX";
static char okf[300], natf[300], denyf[300];

static void mkfile(const char *p)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, "x\n", 2) != 2)
        abort();
    close(fd);
}

typedef int (*open_fn)(const char *path);

static int libc_open(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC);
}

static int magic_open(const char *path)
{
    long r = sbx_trap_syscall6(SYS_openat, (uint64_t)AT_FDCWD, (uint64_t)(uintptr_t)path,
                               O_RDONLY | O_CLOEXEC, 0, 0, SBX_TRAP_MAGIC);
    return (int)r;
}

static sbx_ipc_client *g_client;

/* The same cross call without the trap: what the IPC + broker cost alone. */
static int ipc_open(const char *path)
{
    sbx_arg args[2] = { sbx_arg_string(path), sbx_arg_u32(O_RDONLY | O_CLOEXEC) };
    sbx_ipc_reply rep;
    int r = sbx_ipc_client_call(g_client, SBX_TRAP_OPEN_TAG, args, 2, SBX_IPC_CALL_CLOEXEC, &rep);
    return r < 0 ? r : rep.fd;
}

static floor_broker *g_floor_scm, *g_floor_getfd;

static int floor_scm_open(const char *path)
{
    (void)path; /* the floor broker was started with it */
    return floor_open(g_floor_scm);
}

static int floor_getfd_open(const char *path)
{
    (void)path;
    return floor_open(g_floor_getfd);
}

typedef struct {
    const char *name;
    open_fn fn;
    const char *path;
    bool expect_fail;
    floor_broker *floor; /* resumed while the case runs, else NULL */
    bench_samples s;
} bench_case;

/* `warmup` unrecorded calls, then `iters` recorded ones. */
static void run_case(bench_case *c, unsigned warmup, unsigned iters)
{
    if (c->floor)
        floor_resume(c->floor);
    for (unsigned i = 0; i < warmup + iters; i++) {
        uint64_t t0 = bench_now_ns();
        int fd = c->fn(c->path);
        if (fd >= 0)
            close(fd);
        uint64_t t1 = bench_now_ns();
        if ((fd < 0) != c->expect_fail) {
            fprintf(stderr, "bench_trap: %s: unexpected result %d\n", c->name, fd);
            exit(1);
        }
        if (i >= warmup)
            bench_samples_add(&c->s, t1 - t0);
    }
    if (c->floor)
        floor_pause(c->floor);
}

static void finish_case(bench_case *c, bench_result *out)
{
    bench_summarize(&c->s, "trap", c->name, out);
    bench_samples_free(&c->s);
}

static void measure(const char *name, open_fn fn, const char *path, bool expect_fail,
                    bench_result *out)
{
    bench_case c = { name, fn, path, expect_fail, NULL, { 0 } };
    bench_samples_init(&c.s, ITERS);
    run_case(&c, WARMUP, ITERS);
    finish_case(&c, out);
}

/* The cases in turns: ROUNDS rounds of ITERS / ROUNDS calls each. */
static void measure_rounds(bench_case *cases, size_t n, bench_result *out)
{
    for (size_t k = 0; k < n; k++) {
        bench_samples_init(&cases[k].s, ITERS);
        run_case(&cases[k], WARMUP, 0);
    }
    for (unsigned r = 0; r < ROUNDS; r++)
        for (size_t k = 0; k < n; k++)
            run_case(&cases[k], 0, ITERS / ROUNDS);
    for (size_t k = 0; k < n; k++)
        finish_case(&cases[k], &out[k]);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    char p[300];
    snprintf(p, sizeof p, "%s/ok", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/deny", dir);
    mkdir(p, 0700);
    snprintf(okf, sizeof okf, "%s/ok/f", dir);
    snprintf(natf, sizeof natf, "%s/native", dir);
    snprintf(denyf, sizeof denyf, "%s/deny/f", dir);
    mkfile(okf);
    mkfile(natf);
    mkfile(denyf);

    /* One broker thread: on 2 CPUs a second spinning pool thread competes
     * with the target for the CPU it needs. */
    const char *th = getenv("SBX_BENCH_TRAP_THREADS");
    tb_pool_threads = th ? (unsigned)atoi(th) : 1;
    tb_broker b;
    if (tb_broker_start(&b, dir) < 0) {
        fprintf(stderr, "bench_trap: broker start failed\n");
        return 1;
    }
    g_client = b.client;
    g_floor_scm = floor_start(FLOOR_SCM_RIGHTS, okf);
    if (!g_floor_scm) {
        perror("bench_trap: floor broker");
        return 1;
    }
    g_floor_getfd = floor_start(FLOOR_PIDFD_GETFD, okf);
    if (!g_floor_getfd)
        perror("bench_trap: pidfd_getfd floor skipped"); /* no ptrace rights here */
    else
        floor_pause(g_floor_getfd);
    floor_pause(g_floor_scm);
    bench_case first[4] = {
        { "native", libc_open, natf, false, NULL, { 0 } },
        { "ipc_direct", ipc_open, okf, false, NULL, { 0 } },
        { "floor_scm_rights", floor_scm_open, okf, false, g_floor_scm, { 0 } },
        { "floor_pidfd_getfd", floor_getfd_open, okf, false, g_floor_getfd, { 0 } },
    };
    bench_result res[4];
    measure_rounds(first, g_floor_getfd ? 4 : 3, res);
    floor_stop(g_floor_scm);
    floor_stop(g_floor_getfd);
    bench_result native = res[0], direct = res[1], floor_scm = res[2];
    bench_result filtered, trap_native, brokered, denied;
    if (tb_install(&b, true) < 0) {
        fprintf(stderr, "bench_trap: install failed\n");
        return 1;
    }
    measure("native_filtered", magic_open, natf, false, &filtered);
    measure("trap_native", libc_open, natf, false, &trap_native);
    measure("trap_brokered", libc_open, okf, false, &brokered);
    measure("trap_denied", libc_open, denyf, true, &denied);

    bench_print(&native, NULL);
    bench_print(&filtered, &native);
    bench_print(&trap_native, &native);
    bench_print(&brokered, &native);
    bench_print(&denied, &native);
    bench_print(&direct, &native);
    bench_print(&floor_scm, &native);
    if (g_floor_getfd)
        bench_print(&res[3], &native);
    bench_table_header("trap backend: open+close (ratio vs native)");
    bench_table_row(&native, NULL);
    bench_table_row(&filtered, &native);
    bench_table_row(&trap_native, &native);
    bench_table_row(&brokered, &native);
    bench_table_row(&denied, &native);
    bench_table_row(&direct, &native);
    bench_table_row(&floor_scm, &native);
    if (g_floor_getfd)
        bench_table_row(&res[3], &native);
    printf("\ngoal: trap_brokered %.2fx native (<= 4x); the SCM_RIGHTS floor alone is %.2fx",
           (double)brokered.median_ns / (double)native.median_ns,
           (double)floor_scm.median_ns / (double)native.median_ns);
    if (g_floor_getfd)
        printf(", the pidfd_getfd floor %.2fx",
               (double)res[3].median_ns / (double)native.median_ns);
    printf("\n");

    tb_broker_kill(&b);
    unlink(okf);
    unlink(natf);
    unlink(denyf);
    snprintf(p, sizeof p, "%s/ok", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/deny", dir);
    rmdir(p);
    rmdir(dir);
    return 0;
}
