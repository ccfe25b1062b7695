/* sbx benchmark harness: collect per-iteration samples, report median and
 * p99, and print one parseable line per figure:
 *   BENCH <suite>.<case> median_ns=<n> p99_ns=<n> [ratio=<x> vs=<case>]
 * Benchmarks always measure the comparison in the same run, so ratios are
 * meaningful on a noisy shared machine. */
#ifndef SBX_BENCH_H
#define SBX_BENCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_samples {
    uint64_t *ns;   /* owned; one entry per sample */
    size_t count;
    size_t cap;
} bench_samples;

typedef struct bench_result {
    char name[96];  /* "<suite>.<case>" */
    uint64_t median_ns;
    uint64_t p99_ns;
    uint64_t min_ns;
    double mean_ns;
    size_t count;
} bench_result;

uint64_t bench_now_ns(void);

/* Allocate room for `cap` samples; aborts on allocation failure. */
void bench_samples_init(bench_samples *s, size_t cap);
void bench_samples_add(bench_samples *s, uint64_t ns);
void bench_samples_free(bench_samples *s);

/* Sorts s->ns in place and fills `out`. Percentiles use the nearest-rank
 * method: p99 is the smallest sample >= 99% of all samples. */
void bench_summarize(bench_samples *s, const char *suite, const char *name, bench_result *out);

/* Nearest-rank percentile (0 < p <= 100) of sorted values. */
uint64_t bench_percentile(const uint64_t *sorted, size_t n, double p);

/* Print the BENCH line; `vs` may be NULL (no ratio). The ratio is
 * r.median / vs.median. */
void bench_print(const bench_result *r, const bench_result *vs);

/* Print a human table header and a row (to stdout, after BENCH lines). */
void bench_table_header(const char *title);
void bench_table_row(const bench_result *r, const bench_result *vs);

/* Pin the calling thread to one CPU (-1: leave it). Returns 0 or -errno. */
int bench_pin_cpu(int cpu);

#endif
