/* sbx benchmark harness (see bench.h). */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_samples_init(bench_samples *s, size_t cap)
{
    s->ns = malloc((cap ? cap : 1) * sizeof *s->ns);
    if (!s->ns)
        abort();
    s->count = 0;
    s->cap = cap ? cap : 1;
}

void bench_samples_add(bench_samples *s, uint64_t ns)
{
    if (s->count == s->cap) {
        size_t ncap = s->cap * 2;
        uint64_t *n = realloc(s->ns, ncap * sizeof *n);
        if (!n)
            abort();
        s->ns = n;
        s->cap = ncap;
    }
    s->ns[s->count++] = ns;
}

void bench_samples_free(bench_samples *s)
{
    free(s->ns);
    s->ns = NULL;
    s->count = s->cap = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t bench_percentile(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    double x = p / 100.0 * (double)n;
    size_t rank = (size_t)x;
    if ((double)rank < x)
        rank++; /* ceil without libm */
    size_t idx = rank < 1 ? 0 : rank - 1;
    if (idx >= n)
        idx = n - 1;
    return sorted[idx];
}

void bench_summarize(bench_samples *s, const char *suite, const char *name, bench_result *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s.%s", suite, name);
    out->count = s->count;
    if (!s->count)
        return;
    qsort(s->ns, s->count, sizeof *s->ns, cmp_u64);
    out->median_ns = bench_percentile(s->ns, s->count, 50);
    out->p99_ns = bench_percentile(s->ns, s->count, 99);
    out->min_ns = s->ns[0];
    double sum = 0;
    for (size_t i = 0; i < s->count; i++)
        sum += (double)s->ns[i];
    out->mean_ns = sum / (double)s->count;
}

void bench_print(const bench_result *r, const bench_result *vs)
{
    printf("BENCH %s median_ns=%llu p99_ns=%llu", r->name, (unsigned long long)r->median_ns,
           (unsigned long long)r->p99_ns);
    if (vs && vs->median_ns) {
        const char *dot = strchr(vs->name, '.');
        printf(" ratio=%.3f vs=%s", (double)r->median_ns / (double)vs->median_ns,
               dot ? dot + 1 : vs->name);
    }
    printf("\n");
    fflush(stdout);
}

void bench_table_header(const char *title)
{
    printf("\n%s\n%-44s %12s %12s %10s\n", title, "case", "median", "p99", "ratio");
}

static void fmt_ns(char *buf, size_t n, uint64_t ns)
{
    if (ns < 10000)
        snprintf(buf, n, "%llu ns", (unsigned long long)ns);
    else if (ns < 10000000)
        snprintf(buf, n, "%.2f us", (double)ns / 1e3);
    else
        snprintf(buf, n, "%.2f ms", (double)ns / 1e6);
}

void bench_table_row(const bench_result *r, const bench_result *vs)
{
    char med[32], p99[32], ratio[32] = "";
    fmt_ns(med, sizeof med, r->median_ns);
    fmt_ns(p99, sizeof p99, r->p99_ns);
    if (vs && vs->median_ns)
        snprintf(ratio, sizeof ratio, "%.2fx", (double)r->median_ns / (double)vs->median_ns);
    printf("%-44s %12s %12s %10s\n", r->name, med, p99, ratio);
}

int bench_pin_cpu(int cpu)
{
    if (cpu < 0)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    int r = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    return -r;
}
