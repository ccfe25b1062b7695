/* Policy evaluation: an open request against files policies of 10 to
 * 10,000 rules (realistic patterns: half fully literal, the others with
 * `*` or `**`, a few deny carve-outs), single thread. Each figure is the
 * per-evaluation time, averaged over a batch of requests; the prefix-indexed
 * evaluator and the linear scan (Chromium's approach) are measured in the
 * same run on the same buffers and requests. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/policy.h>

#include "bench.h"
#include "policy/compile.h"
#include "policy/engine.h"
#include "subsys/files/files_policy.h"

#define BATCH 512
#define SAMPLES 200
#define NPATHS 64

static uint64_t st = 0x853c49e6748fea9bull;
static uint64_t rnd(void)
{
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return st;
}

static const char *const tops[] = { "home", "srv", "opt", "var/lib", "usr/share", "data", "etc", "mnt" };

/* Rule i of a policy: its pattern and semantics. */
static void rule_pattern(size_t i, char *out, size_t cap, int *semantics)
{
    const char *top = tops[i % 8];
    *semantics = SBX_FILES_ALLOW_READONLY;
    switch (i % 8) {
    case 0: snprintf(out, cap, "/%s/user%zu/projects/p%zu/**", top, i, i % 97); break;
    case 1: snprintf(out, cap, "/%s/app%zu/config.toml", top, i); break;
    case 2: snprintf(out, cap, "/%s/svc%zu/db/*.db", top, i); *semantics = SBX_FILES_ALLOW_ANY; break;
    case 3: snprintf(out, cap, "/%s/pkg%zu/lib/libx%zu.so.1", top, i, i); break;
    case 4: snprintf(out, cap, "/%s/doc%zu/**.html", top, i); break;
    case 5: snprintf(out, cap, "/%s/etc%zu/settings.json", top, i); break;
    case 6: snprintf(out, cap, "/%s/m%zu/out/*", top, i); *semantics = SBX_FILES_ALLOW_DIR_ANY; break;
    default:
        if (i % 32 == 7) {
            snprintf(out, cap, "/%s/user%zu/projects/**/.git/**", tops[0], i - 7);
            *semantics = SBX_FILES_DENY;
        } else {
            snprintf(out, cap, "/%s/share%zu/data.bin", top, i);
        }
        break;
    }
}

/* Requests: paths that hit rules spread over the policy (late ones
 * included) and paths that match nothing. */
static void make_paths(size_t n_rules, char paths[NPATHS][160])
{
    for (size_t k = 0; k < NPATHS; k++) {
        size_t i = k < NPATHS / 2 ? n_rules - 1 - (size_t)(rnd() % (n_rules < 8 ? n_rules : 8)) : (size_t)(rnd() % n_rules);
        const char *top = tops[i % 8];
        switch (k % 4 == 3 ? 99 : i % 8) {
        case 0: snprintf(paths[k], 160, "/%s/user%zu/projects/p%zu/src/main.c", top, i, i % 97); break;
        case 1: snprintf(paths[k], 160, "/%s/app%zu/config.toml", top, i); break;
        case 2: snprintf(paths[k], 160, "/%s/svc%zu/db/users.db", top, i); break;
        case 3: snprintf(paths[k], 160, "/%s/pkg%zu/lib/libx%zu.so.1", top, i, i); break;
        case 4: snprintf(paths[k], 160, "/%s/doc%zu/a/b/index.html", top, i); break;
        case 5: snprintf(paths[k], 160, "/%s/etc%zu/settings.json", top, i); break;
        case 6: snprintf(paths[k], 160, "/%s/m%zu/out/x", top, i); break;
        case 7: snprintf(paths[k], 160, "/%s/share%zu/data.bin", top, i); break;
        default: snprintf(paths[k], 160, "/%s/nobody%zu/some/where/file.txt", top, i); break;
        }
    }
}

/* The broker's fast path with a choice of scan (sbx_files_policy_eval with
 * flags): canonical check, parameter set, evaluation. */
static int eval_open(const void *buf, size_t size, const char *path, unsigned flags)
{
    size_t len = strlen(path);
    if (!sbx_files_path_is_canonical(path, len))
        return -1;
    sbx_files_request req = { .op = SBX_FILES_OP_OPEN, .path = path, .open_flags = O_RDONLY | O_CLOEXEC };
    sbx_pol_param params[SBX_FILES_P_COUNT];
    sbx_files_policy_params(&req, params);
    sbx_pol_result r = sbx_pol_evaluate(buf, size, SBX_FILES_OP_OPEN, params, SBX_FILES_P_COUNT, flags);
    return r.status == SBX_POL_MATCH ? (int)r.action : 0;
}

static void measure(size_t n_rules, bench_result *idx, bench_result *lin)
{
    sbx_policy *p = sbx_policy_new();
    for (size_t i = 0; i < n_rules; i++) {
        char pat[160];
        int sem;
        rule_pattern(i, pat, sizeof pat, &sem);
        if (sbx_policy_add_rule(p, SBX_SUBSYS_FILES, sem, pat) < 0) {
            fprintf(stderr, "bad rule %s\n", pat);
            exit(1);
        }
    }
    void *buf;
    size_t size;
    if (sbx_policy_compile(p, &buf, &size, NULL) < 0 || sbx_pol_validate(buf, size, NULL) < 0) {
        fprintf(stderr, "compile failed\n");
        exit(1);
    }
    static char paths[NPATHS][160];
    make_paths(n_rules, paths);
    /* the two scans must agree before they are timed */
    unsigned allowed = 0;
    for (size_t k = 0; k < NPATHS; k++) {
        int a = eval_open(buf, size, paths[k], 0), b = eval_open(buf, size, paths[k], SBX_EVAL_LINEAR);
        if (a != b) {
            fprintf(stderr, "index and scan disagree on %s\n", paths[k]);
            exit(1);
        }
        allowed += a == SBX_ACTION_ASK_BROKER;
    }
    bench_samples a, l;
    bench_samples_init(&a, SAMPLES);
    bench_samples_init(&l, SAMPLES);
    volatile int sink = 0;
    /* the linear scan at 10,000 rules is slow: fewer iterations there */
    size_t lin_batch = n_rules >= 1000 ? BATCH / 16 : BATCH;
    for (int s = 0; s < SAMPLES; s++) {
        uint64_t t0 = bench_now_ns();
        for (size_t k = 0; k < BATCH; k++)
            sink += eval_open(buf, size, paths[k % NPATHS], 0);
        uint64_t t1 = bench_now_ns();
        for (size_t k = 0; k < lin_batch; k++)
            sink += eval_open(buf, size, paths[(k * 7 + (size_t)s) % NPATHS], SBX_EVAL_LINEAR);
        uint64_t t2 = bench_now_ns();
        bench_samples_add(&a, (t1 - t0) / BATCH);
        bench_samples_add(&l, (t2 - t1) / lin_batch);
    }
    (void)sink;
    char name[64];
    snprintf(name, sizeof name, "open_%zu_indexed", n_rules);
    bench_summarize(&a, "policy", name, idx);
    snprintf(name, sizeof name, "open_%zu_linear", n_rules);
    bench_summarize(&l, "policy", name, lin);
    bench_samples_free(&a);
    bench_samples_free(&l);
    fprintf(stderr, "policy: %zu rules, buffer %zu bytes, %u/%d requests allowed\n", n_rules, size, allowed,
            NPATHS);
    free(buf);
    sbx_policy_unref(p);
}

int main(void)
{
    bench_pin_cpu(0);
    static const size_t sizes[] = { 10, 20, 100, 1000, 10000 };
    bench_result idx[5], lin[5];
    /* The build machine is shared: each size is measured in three rounds
     * and the round with the lowest median is kept, per figure (indexed and
     * linear are always timed interleaved within a round). */
    for (int i = 0; i < 5; i++) {
        for (int round = 0; round < 3; round++) {
            bench_result a, l;
            measure(sizes[i], &a, &l);
            if (round == 0 || a.median_ns < idx[i].median_ns)
                idx[i] = a;
            if (round == 0 || l.median_ns < lin[i].median_ns)
                lin[i] = l;
        }
    }
    for (int i = 0; i < 5; i++) {
        bench_print(&lin[i], NULL);
        bench_print(&idx[i], &lin[i]);
    }
    /* the scaling goal: cost at 10,000 rules vs 10 */
    bench_print(&idx[4], &idx[0]);
    bench_print(&lin[4], &lin[0]);
    bench_table_header("policy: open request evaluation, indexed vs linear scan (ns per evaluation)");
    for (int i = 0; i < 5; i++) {
        bench_table_row(&lin[i], NULL);
        bench_table_row(&idx[i], &lin[i]);
    }
    for (int i = 0; i < 5; i++)
        printf("policy: %5zu rules: indexed %.2f M evaluations/s, linear %.2f M evaluations/s (from the medians)\n", sizes[i],
               idx[i].median_ns ? 1e3 / (double)idx[i].median_ns : 0.0, lin[i].median_ns ? 1e3 / (double)lin[i].median_ns : 0.0);
    return 0;
}
