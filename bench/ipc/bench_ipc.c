/* Cross-call IPC benchmark. Round trip of an empty call (PING1) between
 * two processes, client and broker on different CPUs and on the same CPU,
 * next to the floors measured in the same run:
 *   spin      a raw spin-on-shared-word round trip (the physical floor)
 *   socket    a SOCK_SEQPACKET socketpair round trip
 *   futex     a futex-only ping-pong (wait/wake every time, no spinning)
 * then calls/s and CPU seconds per 1M calls with 1, 2, 8 and 32 client
 * threads. Prints BENCH lines and tables; not a test. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sbx/ipc.h>

#include "bench.h"

#define ITERS 100000u

typedef struct words {
    _Atomic uint32_t a;
    char pad[60];
    _Atomic uint32_t b;
} words;

static void pin_self(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static long futex(_Atomic uint32_t *w, int op, uint32_t v)
{
    return syscall(SYS_futex, (uintptr_t)w, op, v, NULL, NULL, 0);
}

static words *shared_words(void)
{
    words *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED)
        abort();
    memset(w, 0, sizeof *w);
    return w;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void run_spin(int ccpu, int scpu, unsigned iters, const char *name, bench_result *out)
{
    words *w = shared_words();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        pin_self(scpu);
        for (uint32_t i = 1;; i++) {
            while (atomic_load_explicit(&w->a, memory_order_acquire) != i)
                ;
            atomic_store_explicit(&w->b, i, memory_order_release);
        }
    }
    pin_self(ccpu);
    bench_samples s;
    bench_samples_init(&s, iters);
    for (uint32_t i = 1; i <= iters + 100; i++) {
        uint64_t t0 = bench_now_ns();
        atomic_store_explicit(&w->a, i, memory_order_release);
        while (atomic_load_explicit(&w->b, memory_order_acquire) != i)
            ;
        if (i > 100)
            bench_samples_add(&s, bench_now_ns() - t0);
    }
    reap(pid);
    bench_summarize(&s, "ipc", name, out);
    bench_samples_free(&s);
    munmap(w, 4096);
}

static void run_futex(int ccpu, int scpu, unsigned iters, const char *name, bench_result *out)
{
    words *w = shared_words();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        pin_self(scpu);
        for (uint32_t i = 1;; i++) {
            while (atomic_load(&w->a) != i)
                futex(&w->a, FUTEX_WAIT, i - 1);
            atomic_store(&w->b, i);
            futex(&w->b, FUTEX_WAKE, 1);
        }
    }
    pin_self(ccpu);
    bench_samples s;
    bench_samples_init(&s, iters);
    for (uint32_t i = 1; i <= iters + 100; i++) {
        uint64_t t0 = bench_now_ns();
        atomic_store(&w->a, i);
        futex(&w->a, FUTEX_WAKE, 1);
        while (atomic_load(&w->b) != i)
            futex(&w->b, FUTEX_WAIT, i - 1);
        if (i > 100)
            bench_samples_add(&s, bench_now_ns() - t0);
    }
    reap(pid);
    bench_summarize(&s, "ipc", name, out);
    bench_samples_free(&s);
    munmap(w, 4096);
}

static void run_sock(int ccpu, int scpu, unsigned iters, const char *name, bench_result *out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
        abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        pin_self(scpu);
        close(sv[0]);
        char buf[64];
        for (;;) {
            ssize_t n = read(sv[1], buf, sizeof buf);
            if (n <= 0 || write(sv[1], buf, (size_t)n) != n)
                _exit(0);
        }
    }
    close(sv[1]);
    pin_self(ccpu);
    bench_samples s;
    bench_samples_init(&s, iters);
    char buf[64] = "ping";
    for (unsigned i = 0; i < iters + 100; i++) {
        uint64_t t0 = bench_now_ns();
        if (write(sv[0], buf, 16) != 16 || read(sv[0], buf, sizeof buf) != 16)
            abort();
        if (i >= 100)
            bench_samples_add(&s, bench_now_ns() - t0);
    }
    close(sv[0]);
    reap(pid);
    bench_summarize(&s, "ipc", name, out);
    bench_samples_free(&s);
}

/* A broker process serving one section with `threads` pool threads. */
static pid_t start_broker(int scpu, unsigned threads, sbx_ipc_client **client)
{
    sbx_ipc_section *sec;
    if (sbx_ipc_section_new(NULL, &sec) < 0)
        abort();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    int ready[2];
    if (pipe(ready) < 0)
        abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        pin_self(scpu);
        close(sv[1]);
        sbx_ipc_dispatcher *d;
        sbx_ipc_pool *pool;
        sbx_ipc_server *srv;
        sbx_ipc_pool_options po = { .threads = threads };
        if (sbx_ipc_dispatcher_new(&d) < 0 || sbx_ipc_dispatcher_add_builtins(d) < 0 ||
            sbx_ipc_pool_new(&po, &pool) < 0 || sbx_ipc_server_new(pool, sec, sv[0], d, NULL, &srv) < 0)
            _exit(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(sv[0]);
    char c;
    if (read(ready[0], &c, 1) != 1)
        abort();
    close(ready[0]);
    close(ready[1]);
    if (sbx_ipc_client_new(sbx_ipc_section_fd(sec), sv[1], client) < 0)
        abort();
    sbx_ipc_section_free(sec);
    return pid;
}

static void run_sbx(int ccpu, int scpu, unsigned iters, const char *name, bench_result *out)
{
    sbx_ipc_client *c;
    pid_t pid = start_broker(scpu, 1, &c);
    pin_self(ccpu);
    bench_samples s;
    bench_samples_init(&s, iters);
    for (unsigned i = 0; i < iters + 1000; i++) {
        sbx_arg a = sbx_arg_u32(i);
        sbx_ipc_reply rep;
        uint64_t t0 = bench_now_ns();
        if (sbx_ipc_client_call(c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep) != 0 || rep.ext[0] != 2ull * i)
            abort();
        if (i >= 1000)
            bench_samples_add(&s, bench_now_ns() - t0);
    }
    sbx_ipc_client_free(c);
    reap(pid);
    bench_summarize(&s, "ipc", name, out);
    bench_samples_free(&s);
}

/* ---- throughput ---- */

typedef struct tput_arg {
    sbx_ipc_client *c;
    unsigned calls;
} tput_arg;

static void *tput_main(void *p)
{
    tput_arg *t = p;
    for (unsigned i = 0; i < t->calls; i++) {
        sbx_arg a = sbx_arg_u32(i);
        if (sbx_ipc_client_call(t->c, SBX_IPC_TAG_PING1, &a, 1, 0, NULL) != 0)
            abort();
    }
    return NULL;
}

static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec / 1e6 +
           (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec / 1e6;
}

static void run_tput(unsigned nthreads, unsigned total)
{
    sbx_ipc_client *c;
    pid_t pid = start_broker(-1, 0, &c);
    pin_self(-1);
    tput_arg warm = { c, 2000 };
    tput_main(&warm);
    pthread_t th[64];
    tput_arg a[64];
    double b0 = proc_cpu_s(pid), c0 = self_cpu_s();
    uint64_t t0 = bench_now_ns();
    for (unsigned i = 0; i < nthreads; i++) {
        a[i] = (tput_arg){ c, total / nthreads };
        pthread_create(&th[i], NULL, tput_main, &a[i]);
    }
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    uint64_t wall = bench_now_ns() - t0;
    double bcpu = proc_cpu_s(pid) - b0, ccpu = self_cpu_s() - c0;
    unsigned done = total / nthreads * nthreads;
    double cps = (double)done / ((double)wall / 1e9);
    double per_m = (bcpu + ccpu) * 1e6 / (double)done;
    uint64_t ns_per_call = wall / done;
    printf("BENCH ipc.throughput_threads_%u median_ns=%llu p99_ns=%llu calls_per_s=%.0f "
           "cpu_s_per_1M=%.2f broker_cpu_s_per_1M=%.2f client_cpu_s_per_1M=%.2f\n",
           nthreads, (unsigned long long)ns_per_call, (unsigned long long)ns_per_call, cps, per_m,
           bcpu * 1e6 / done, ccpu * 1e6 / done);
    printf("  %2u client threads: %10.0f calls/s  %6.2f CPU s per 1M calls (broker %.2f, client %.2f)\n",
           nthreads, cps, per_m, bcpu * 1e6 / done, ccpu * 1e6 / done);
    fflush(stdout);
    sbx_ipc_client_free(c);
    reap(pid);
}

int main(int argc, char **argv)
{
    unsigned iters = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : ITERS;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int other = ncpu > 1 ? 1 : 0;
    signal(SIGPIPE, SIG_IGN);

    bench_result x_spin, x_sock, x_futex, x_sbx, s_spin, s_sock, s_futex, s_sbx;
    run_spin(0, other, iters, "cross_cpu.spin", &x_spin);
    run_sock(0, other, iters, "cross_cpu.socketpair", &x_sock);
    run_futex(0, other, iters, "cross_cpu.futex", &x_futex);
    run_sbx(0, other, iters, "cross_cpu.sbx_ping1", &x_sbx);
    /* Spinning on one CPU costs a scheduler tick per round trip: a handful
     * of samples is enough to show it. */
    run_spin(0, 0, 40, "same_cpu.spin", &s_spin);
    run_sock(0, 0, iters, "same_cpu.socketpair", &s_sock);
    run_futex(0, 0, iters, "same_cpu.futex", &s_futex);
    run_sbx(0, 0, iters, "same_cpu.sbx_ping1", &s_sbx);

    bench_print(&x_spin, NULL);
    bench_print(&x_sock, &x_spin);
    bench_print(&x_futex, &x_spin);
    bench_print(&x_sbx, &x_sock);
    bench_print(&s_spin, NULL);
    bench_print(&s_sock, &s_futex);
    bench_print(&s_futex, NULL);
    bench_print(&s_sbx, &s_futex);

    bench_table_header("round trip, client and broker on different CPUs (ratio vs socketpair)");
    bench_table_row(&x_spin, &x_sock);
    bench_table_row(&x_sock, &x_sock);
    bench_table_row(&x_futex, &x_sock);
    bench_table_row(&x_sbx, &x_sock);
    bench_table_header("round trip, client and broker on the same CPU (ratio vs futex)");
    bench_table_row(&s_spin, &s_futex);
    bench_table_row(&s_sock, &s_futex);
    bench_table_row(&s_futex, &s_futex);
    bench_table_row(&s_sbx, &s_futex);
    printf("\ngoals: cross-CPU sbx median %.3f us (<= 1 us), %.3f of socketpair (<= 0.05); "
           "same-CPU sbx %.2fx futex (<= 1.5x)\n",
           (double)x_sbx.median_ns / 1e3, (double)x_sbx.median_ns / (double)x_sock.median_ns,
           (double)s_sbx.median_ns / (double)s_futex.median_ns);

    printf("\nthroughput (PING1, broker pool = %ld threads, %ld CPUs)\n", ncpu, ncpu);
    unsigned total = iters * 4;
    unsigned nt[] = { 1, 2, 8, 32 };
    for (size_t i = 0; i < 4; i++)
        run_tput(nt[i], total);
    return 0;
}
