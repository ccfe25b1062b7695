/* Base helpers: the async-signal-safe formatter against snprintf (the
 * comparison), and close_range-based fd sweeping against a close() loop. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "base/fd.h"
#include "base/log.h"
#include "bench.h"

#define ITER 200000

static void run_format(bench_result *safe, bench_result *libc)
{
    bench_samples a, b;
    bench_samples_init(&a, ITER);
    bench_samples_init(&b, ITER);
    char buf[256];
    volatile size_t sink = 0;
    for (int i = 0; i < ITER; i++) {
        uint64_t t0 = bench_now_ns();
        sink += sbx_safe_format(buf, sizeof buf, "step %s failed: %d (%lu)", "uid_map", -i, 42ul);
        uint64_t t1 = bench_now_ns();
        sink += (size_t)snprintf(buf, sizeof buf, "step %s failed: %d (%lu)", "uid_map", -i, 42ul);
        uint64_t t2 = bench_now_ns();
        bench_samples_add(&a, t1 - t0);
        bench_samples_add(&b, t2 - t1);
    }
    (void)sink;
    bench_summarize(&a, "base", "safe_format", safe);
    bench_summarize(&b, "base", "snprintf", libc);
    bench_samples_free(&a);
    bench_samples_free(&b);
}

int main(void)
{
    bench_result safe, libc;
    run_format(&safe, &libc);
    bench_print(&libc, NULL);
    bench_print(&safe, &libc);
    bench_table_header("base: async-signal-safe formatting vs snprintf");
    bench_table_row(&libc, NULL);
    bench_table_row(&safe, &libc);
    return 0;
}
