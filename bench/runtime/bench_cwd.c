/* cwd benchmark: an unmodified target (cwd_loop) under both backends,
 * all in one run: a relative open from a native-view cwd (the kernel's
 * answer, after the broker checked that the cwd is the view's own) next
 * to the same file by absolute path, a relative open from a brokered cwd,
 * chdir into a brokered directory, getcwd there, and a native-view stat
 * (not Landlock-mediated: the broker's call under both backends). One sample per batch
 * of 1000. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sbx/broker.h>

#include "bench.h"
#include "target_samples.h"

#define N 20000
#define BATCH 1000

static char g_loop[4096 + 64];

static int run(sbx_broker *b, sbx_policy *p, const char *mode, const char *dir, const char *path,
               bench_samples *s)
{
    char n[16], batch[16];
    snprintf(n, sizeof n, "%d", N);
    snprintf(batch, sizeof batch, "%d", BATCH);
    char m[16], d[PATH_MAX + 32], pa[PATH_MAX + 64];
    snprintf(m, sizeof m, "%s", mode);
    snprintf(d, sizeof d, "%s", dir);
    snprintf(pa, sizeof pa, "%s", path);
    char *argv[] = { g_loop, m, d, pa, n, batch, NULL };
    return bench_target_samples(b, p, argv, s, N / BATCH);
}

typedef struct bcase {
    const char *name, *mode, *dir, *path;
    int trap;
} bcase;

#define MAX_CASES 16
static bench_samples g_s[MAX_CASES];
static bench_result g_r[MAX_CASES];

int main(void)
{
    static bench_runtime_paths paths;
    if (bench_runtime_setup("cwd-bench-data", &paths) < 0)
        return 1;
    snprintf(g_loop, sizeof g_loop, "%s/runtime/sbx_bench_cwd_loop", paths.bench_dir);
    const char *viewdir = paths.viewdir, *dir = paths.dir;
    sbx_broker *b = NULL;
    if (sbx_broker_new(&b) < 0)
        return 1;
    sbx_policy *pol[2];
    char pat[PATH_MAX + 40];
    snprintf(pat, sizeof pat, "%s/**", dir);
    for (int t = 0; t < 2; t++) {
        pol[t] = sbx_broker_create_policy(b);
        sbx_policy_add_view(pol[t], viewdir, SBX_VIEW_EXEC);
        sbx_policy_add_rule(pol[t], SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, dir);
        sbx_policy_add_rule(pol[t], SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, pat);
        if (t)
            sbx_policy_set_backend(pol[t], SBX_BACKEND_TRAP);
    }
    bcase cases[] = {
        { "notify_open_native_absolute", "open", "/etc", "/etc/ld.so.cache", 0 },
        { "notify_open_native_relative", "open", "/etc", "ld.so.cache", 0 },
        { "notify_open_brokered_relative", "open", dir, "brokered.txt", 0 },
        { "notify_chdir_brokered", "chdir", "-", dir, 0 },
        { "notify_getcwd_brokered", "getcwd", dir, "-", 0 },
        { "notify_stat_native", "stat", "-", "/etc/ld.so.cache", 0 },
        { "trap_open_native_absolute", "open", "/etc", "/etc/ld.so.cache", 1 },
        { "trap_open_native_relative", "open", "/etc", "ld.so.cache", 1 },
        { "trap_open_brokered_relative", "open", dir, "brokered.txt", 1 },
        { "trap_chdir_brokered", "chdir", "-", dir, 1 },
        { "trap_getcwd_brokered", "getcwd", dir, "-", 1 },
        { "trap_stat_native", "stat", "-", "/etc/ld.so.cache", 1 },
    };
    size_t nc = sizeof cases / sizeof cases[0];
    /* A case that fails (a build that refuses brokered chdir) is reported
     * and skipped; the others still run, for same-run comparisons. */
    int failed = 0, ok[MAX_CASES];
    for (size_t i = 0; i < nc; i++) {
        bench_samples_init(&g_s[i], N / BATCH);
        int r = run(b, pol[cases[i].trap], cases[i].mode, cases[i].dir, cases[i].path, &g_s[i]);
        ok[i] = r == 0;
        if (r < 0) {
            fprintf(stderr, "bench_cwd: %s: %s\n", cases[i].name, strerror(-r));
            failed++;
        }
    }
    for (size_t i = 0; i < nc; i++) {
        if (!ok[i])
            continue;
        bench_summarize(&g_s[i], "cwd", cases[i].name, &g_r[i]);
        /* each against the absolute native-view open of its backend */
        size_t base = i - i % 6;
        bench_print(&g_r[i], i % 6 && ok[base] ? &g_r[base] : NULL);
    }
    int r = failed ? -EIO : 0;
    for (size_t i = 0; i < nc; i++)
        bench_samples_free(&g_s[i]);
    sbx_policy_unref(pol[0]);
    sbx_policy_unref(pol[1]);
    sbx_broker_free(b);
    bench_runtime_cleanup(&paths);
    return r == 0 ? 0 : 1;
}
