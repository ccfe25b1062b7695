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
 * The goal: trap_brokered <= 4x native. Not a test. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "../../tests/trap/trap_broker.h" /* the test broker and subsystem */

#define ITERS 100000u
#define WARMUP 2000u

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

static void measure(const char *name, open_fn fn, const char *path, bool expect_fail,
                    bench_result *out)
{
    bench_samples s;
    bench_samples_init(&s, ITERS);
    for (unsigned i = 0; i < WARMUP + ITERS; i++) {
        uint64_t t0 = bench_now_ns();
        int fd = fn(path);
        if (fd >= 0)
            close(fd);
        uint64_t t1 = bench_now_ns();
        if ((fd < 0) != expect_fail) {
            fprintf(stderr, "bench_trap: %s: unexpected result %d\n", name, fd);
            exit(1);
        }
        if (i >= WARMUP)
            bench_samples_add(&s, t1 - t0);
    }
    bench_summarize(&s, "trap", name, out);
    bench_samples_free(&s);
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
    bench_result native, filtered, trap_native, brokered, denied, direct;
    measure("native", libc_open, natf, false, &native);
    measure("ipc_direct", ipc_open, okf, false, &direct);
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
    bench_table_header("trap backend: open+close (ratio vs native)");
    bench_table_row(&native, NULL);
    bench_table_row(&filtered, &native);
    bench_table_row(&trap_native, &native);
    bench_table_row(&brokered, &native);
    bench_table_row(&denied, &native);
    bench_table_row(&direct, &native);

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
