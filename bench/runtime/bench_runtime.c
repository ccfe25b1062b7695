/* Runtime benchmark: an unmodified target doing 100k open+close of a
 * brokered file, through each backend — notify (interception, policy
 * adapter, broker open, ADDFD) and trap (the preload shim's SIGSYS fast
 * path: one shared-memory cross call, the fd by SCM_RIGHTS) — against the
 * same loop on a native-view file (notify CONTINUE / the trap's native
 * re-issue under Landlock) and with no interception at all (a policy
 * without brokered rules), all in the same run. Figures are per
 * open+close, one sample per batch of 1000. */
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

#define N 100000
#define BATCH 1000

static char g_loop[PATH_MAX + 32], g_dir[PATH_MAX + 32], g_file[PATH_MAX + 64];

static int run(sbx_broker *b, sbx_policy *p, const char *path, bench_samples *s)
{
    char n[16], batch[16];
    snprintf(n, sizeof n, "%d", N);
    snprintf(batch, sizeof batch, "%d", BATCH);
    char file[PATH_MAX + 32];
    snprintf(file, sizeof file, "%s", path);
    char *argv[] = { g_loop, file, n, batch, NULL };
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    sbx_spawn_options o = { .path = g_loop, .argv = argv, .stdin_fd = SBX_STDIO_NULL,
                            .stdout_fd = pfd[1], .stderr_fd = 2 };
    sbx_target_info info;
    int r = sbx_broker_spawn(b, p, &o, &info);
    close(pfd[1]);
    if (r < 0) {
        fprintf(stderr, "spawn: %s\n", info.error);
        close(pfd[0]);
        return r;
    }
    FILE *f = fdopen(pfd[0], "r");
    unsigned long long v;
    size_t got = 0;
    while (fscanf(f, "%llu", &v) == 1) {
        bench_samples_add(s, v);
        got++;
    }
    fclose(f);
    sbx_broker_wait_all(b, 60000);
    return got == N / BATCH ? 0 : -EIO;
}

int main(void)
{
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return 1;
    exe[k] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(g_loop, sizeof g_loop, "%s/runtime/sbx_bench_open_loop", exe);
    /* The loop binary's folder is a view; the brokered file lives in a
     * sibling folder outside every view (and not under /tmp, which is
     * private in the target). */
    char viewdir[PATH_MAX + 16];
    snprintf(viewdir, sizeof viewdir, "%s/runtime", exe);
    snprintf(g_dir, sizeof g_dir, "%s/runtime-bench-data", exe);
    mkdir(g_dir, 0755);
    snprintf(g_file, sizeof g_file, "%s/brokered.txt", g_dir);
    FILE *f = fopen(g_file, "w");
    if (!f)
        return 1;
    fputs("x\n", f);
    fclose(f);
    chmod(g_file, 0644);

    /* The trap targets' shim: the build tree's, unless the caller chose. */
    char shim[PATH_MAX + 64];
    snprintf(shim, sizeof shim, "%s/../tools/preload/libsbx-preload.so", exe);
    if (!getenv("SBX_PRELOAD"))
        setenv("SBX_PRELOAD", shim, 1);
    sbx_broker *b = NULL;
    if (sbx_broker_new(&b) < 0)
        return 1;
    sbx_policy *brokered = sbx_broker_create_policy(b);
    sbx_policy_add_view(brokered, viewdir, SBX_VIEW_EXEC);
    sbx_policy_add_rule(brokered, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, g_file);
    sbx_policy *trap = sbx_broker_create_policy(b);
    sbx_policy_add_view(trap, viewdir, SBX_VIEW_EXEC);
    sbx_policy_add_rule(trap, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, g_file);
    sbx_policy_set_backend(trap, SBX_BACKEND_TRAP);
    sbx_policy *plain = sbx_broker_create_policy(b);
    sbx_policy_add_view(plain, viewdir, SBX_VIEW_EXEC);

    bench_samples sb, sn, sp, stb, stn;
    bench_samples_init(&sb, N / BATCH);
    bench_samples_init(&sn, N / BATCH);
    bench_samples_init(&sp, N / BATCH);
    bench_samples_init(&stb, N / BATCH);
    bench_samples_init(&stn, N / BATCH);
    /* Interleaved thirds would be fairer on a noisy host; whole runs keep
     * each target's caches warm. All three run now, in this process. */
    int r = run(b, plain, "/etc/ld.so.cache", &sp);
    if (r == 0)
        r = run(b, brokered, "/etc/ld.so.cache", &sn);
    if (r == 0)
        r = run(b, brokered, g_file, &sb);
    if (r == 0)
        r = run(b, trap, "/etc/ld.so.cache", &stn);
    if (r == 0)
        r = run(b, trap, g_file, &stb);
    if (r < 0) {
        fprintf(stderr, "bench_runtime: %s\n", strerror(-r));
        return 1;
    }
    bench_result rp, rn, rb, rtn, rtb;
    bench_summarize(&sp, "runtime", "open_close_no_interception", &rp);
    bench_summarize(&sn, "runtime", "open_close_native_view_notify", &rn);
    bench_summarize(&sb, "runtime", "open_close_brokered_notify", &rb);
    bench_summarize(&stn, "runtime", "open_close_native_view_trap", &rtn);
    bench_summarize(&stb, "runtime", "open_close_brokered_trap", &rtb);
    bench_print(&rp, NULL);
    bench_print(&rn, &rp);
    bench_print(&rb, &rn);
    bench_print(&rb, &rp);
    bench_print(&rtn, &rp);
    bench_print(&rtb, &rp);
    bench_print(&rtb, &rb);
    bench_samples_free(&sp);
    bench_samples_free(&sn);
    bench_samples_free(&sb);
    bench_samples_free(&stn);
    bench_samples_free(&stb);
    sbx_policy_unref(brokered);
    sbx_policy_unref(trap);
    sbx_policy_unref(plain);
    sbx_broker_free(b);
    unlink(g_file);
    rmdir(g_dir);
    return 0;
}
