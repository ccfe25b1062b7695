#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>

#include "../../bench/bench.h"

Test(bench, percentiles_nearest_rank)
{
    uint64_t v[100];
    for (int i = 0; i < 100; i++)
        v[i] = (uint64_t)i + 1; /* 1..100 */
    cr_expect_eq(bench_percentile(v, 100, 50), 50);
    cr_expect_eq(bench_percentile(v, 100, 99), 99);
    cr_expect_eq(bench_percentile(v, 100, 100), 100);
    cr_expect_eq(bench_percentile(v, 1, 99), 1);
    cr_expect_eq(bench_percentile(v, 0, 50), 0);
}

Test(bench, summarize_sorts_and_reports)
{
    bench_samples s;
    bench_samples_init(&s, 2); /* forces growth */
    const uint64_t in[] = { 900, 100, 500, 300, 700 };
    for (int i = 0; i < 5; i++)
        bench_samples_add(&s, in[i]);
    bench_result r;
    bench_summarize(&s, "suite", "case", &r);
    cr_expect_str_eq(r.name, "suite.case");
    cr_expect_eq(r.count, 5);
    cr_expect_eq(r.median_ns, 500);
    cr_expect_eq(r.p99_ns, 900);
    cr_expect_eq(r.min_ns, 100);
    cr_expect_float_eq(r.mean_ns, 500.0, 1e-9);
    bench_samples_free(&s);
}

Test(bench, bench_line_is_parseable, .init = cr_redirect_stdout)
{
    bench_result a = { .name = "ipc.ping1", .median_ns = 300, .p99_ns = 900 };
    bench_result b = { .name = "ipc.socketpair", .median_ns = 12000, .p99_ns = 20000 };
    bench_print(&a, &b);
    bench_print(&b, NULL);
    fflush(stdout);
    cr_expect_stdout_eq_str("BENCH ipc.ping1 median_ns=300 p99_ns=900 ratio=0.025 vs=socketpair\n"
                            "BENCH ipc.socketpair median_ns=12000 p99_ns=20000\n");
}
