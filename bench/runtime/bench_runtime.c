/* Runtime benchmark: an unmodified target doing 100k open+close of a
 * brokered file, through each backend — notify (interception, policy
 * adapter, broker open, ADDFD) and trap (the preload shim: libc's open
 * served in place, other calls through SIGSYS; one shared-memory cross
 * call, the fd by SCM_RIGHTS) — against the
 * same loop on a native-view file (notify CONTINUE / the trap's native
 * re-issue under Landlock) and with no interception at all (a policy
 * without brokered rules), and, in the same run, the same loop through
 * the SEQPACKET reference broker and natively inside a bubblewrap bind
 * mount (the no-brokering floor), and the bare SCM_RIGHTS hand-off of a
 * freshly opened fd between two spinning processes (transport_floor.h:
 * the floor under any brokered open that returns an fd this way), the
 * cases taking turns in rounds.
 * Figures are per open+close, one sample per batch of 1000. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sbx/broker.h>

#include "bench.h"
#include "refbroker.h"
#include "transport_floor.h"
#include "target_samples.h"

#define N 100000
#define BATCH 1000
/* The cases take turns, N / ROUNDS calls each per round, so every case
 * meets the same phases of a shared, noisy machine (run one after the
 * other, a case can land in a quiet minute and its comparison in a busy
 * one: the same binary gave ratios 1.3x apart). */
#define ROUNDS 10
#define PER_ROUND (N / ROUNDS)

static char g_loop[4096 + 64];
static const char *g_dir, *g_file;

static int run(sbx_broker *b, sbx_policy *p, const char *path, bench_samples *s)
{
    char n[16], batch[16];
    snprintf(n, sizeof n, "%d", PER_ROUND);
    snprintf(batch, sizeof batch, "%d", BATCH);
    char file[PATH_MAX + 32];
    snprintf(file, sizeof file, "%s", path);
    char *argv[] = { g_loop, file, n, batch, NULL };
    return bench_target_samples(b, p, argv, s, PER_ROUND / BATCH);
}

/* PER_ROUND / BATCH samples of BATCH open+close through open_fn, from
 * this process. */
static int run_batches(int (*open_fn)(void *ctx), void *ctx, bench_samples *s)
{
    for (int b = 0; b < PER_ROUND / BATCH; b++) {
        unsigned long long t0 = bench_now_ns();
        for (int i = 0; i < BATCH; i++) {
            int fd = open_fn(ctx);
            if (fd < 0)
                return -EIO;
            close(fd);
        }
        bench_samples_add(s, (bench_now_ns() - t0) / BATCH);
    }
    return 0;
}

/* The comparisons, same loop, same file, same batches: the SEQPACKET
 * reference broker (refbroker.h) from this process, and the open_loop
 * program natively inside a bubblewrap bind mount of the file's folder
 * (the no-brokering floor). */
static int refbroker_open(void *rb)
{
    return bench_refbroker_open(rb, g_file);
}

static int run_refbroker(bench_samples *s)
{
    bench_refbroker rb;
    if (bench_refbroker_start(&rb) < 0)
        return -errno;
    int r = run_batches(refbroker_open, &rb, s);
    bench_refbroker_stop(&rb);
    return r;
}

/* The floor broker spins: started for its round only, so it never takes
 * a CPU from the other cases. */
static int floor_open_fn(void *fb)
{
    return floor_open(fb);
}

static int run_floor(bench_samples *s)
{
    floor_broker *fb = floor_start(FLOOR_SCM_RIGHTS, g_file);
    if (!fb)
        return -errno;
    int r = run_batches(floor_open_fn, fb, s);
    floor_stop(fb);
    return r;
}

static int run_bwrap(bench_samples *s)
{
    if (access("/usr/bin/bwrap", X_OK) != 0)
        return -ENOENT;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        char n[16], batch[16];
        snprintf(n, sizeof n, "%d", PER_ROUND);
        snprintf(batch, sizeof batch, "%d", BATCH);
        dup2(pfd[1], 1);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        execl("/usr/bin/bwrap", "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--bind", g_dir,
              g_dir, "--unshare-all", "--die-with-parent", "--", g_loop, g_file, n, batch,
              (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    unsigned long long v;
    size_t got = 0;
    while (f && fscanf(f, "%llu", &v) == 1) {
        bench_samples_add(s, v);
        got++;
    }
    if (f)
        fclose(f);
    int st;
    waitpid(pid, &st, 0);
    return got == PER_ROUND / BATCH ? 0 : -EIO;
}

int main(void)
{
    /* The loop binary's folder is a view; the brokered file lives in a
     * sibling folder outside every view. */
    static bench_runtime_paths paths;
    if (bench_runtime_setup("runtime-bench-data", &paths) < 0)
        return 1;
    snprintf(g_loop, sizeof g_loop, "%s/runtime/sbx_bench_open_loop", paths.bench_dir);
    const char *viewdir = paths.viewdir;
    g_dir = paths.dir;
    g_file = paths.file;
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

    bench_samples sb, sn, sp, stb, stn, sr, sw, sf;
    bench_samples_init(&sf, N / BATCH);
    bench_samples_init(&sr, N / BATCH);
    bench_samples_init(&sw, N / BATCH);
    bench_samples_init(&sb, N / BATCH);
    bench_samples_init(&sn, N / BATCH);
    bench_samples_init(&sp, N / BATCH);
    bench_samples_init(&stb, N / BATCH);
    bench_samples_init(&stn, N / BATCH);
    /* SBX_BENCH_RUNTIME_ONLY=trap: only the trap's brokered case (and the
     * native one it is compared with), for profiling it alone. */
    const char *only = getenv("SBX_BENCH_RUNTIME_ONLY");
    bool trap_only = only && strcmp(only, "trap") == 0;
    bool have_ref = !trap_only, have_bwrap = !trap_only && access("/usr/bin/bwrap", X_OK) == 0;
    int r = 0;
    for (int round = 0; round < ROUNDS && r == 0; round++) {
        r = run(b, plain, "/etc/ld.so.cache", &sp);
        if (r == 0)
            r = run(b, trap, g_file, &stb);
        if (r == 0)
            r = run_floor(&sf);
        if (trap_only)
            continue;
        if (r == 0)
            r = run(b, brokered, "/etc/ld.so.cache", &sn);
        if (r == 0)
            r = run(b, brokered, g_file, &sb);
        if (r == 0)
            r = run(b, trap, "/etc/ld.so.cache", &stn);
        /* The comparisons are optional (no bwrap installed, no socket):
         * a case that fails once is dropped from the report. */
        if (r == 0 && have_ref && run_refbroker(&sr) != 0)
            have_ref = false;
        if (r == 0 && have_bwrap && run_bwrap(&sw) != 0)
            have_bwrap = false;
    }
    if (r < 0) {
        fprintf(stderr, "bench_runtime: %s\n", strerror(-r));
        return 1;
    }
    if (trap_only) {
        bench_result rp, rtb, rf;
        bench_summarize(&sp, "runtime", "open_close_no_interception", &rp);
        bench_summarize(&stb, "runtime", "open_close_brokered_trap", &rtb);
        bench_summarize(&sf, "runtime", "open_close_scm_rights_floor", &rf);
        bench_print(&rp, NULL);
        bench_print(&rtb, &rp);
        bench_print(&rf, &rp);
        return 0;
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
    bench_result rf;
    bench_summarize(&sf, "runtime", "open_close_scm_rights_floor", &rf);
    bench_print(&rf, &rp);
    bench_result rr, rw;
    if (have_ref) {
        bench_summarize(&sr, "runtime", "open_close_seqpacket_ref", &rr);
        bench_print(&rr, &rp);
        bench_print(&rb, &rr);
    }
    if (have_bwrap) {
        bench_summarize(&sw, "runtime", "open_close_bwrap_bind", &rw);
        bench_print(&rw, &rp);
    }
    bench_table_header("runtime: open+close of a file by an unmodified target (per call, "
                       "batches of 1000; ratio vs no interception)");
    bench_table_row(&rp, NULL);
    if (have_bwrap)
        bench_table_row(&rw, &rp);
    bench_table_row(&rn, &rp);
    bench_table_row(&rtn, &rp);
    bench_table_row(&rtb, &rp);
    bench_table_row(&rf, &rp);
    bench_table_row(&rb, &rp);
    if (have_ref)
        bench_table_row(&rr, &rp);
    if (have_ref)
        printf("goals: trap brokered %.2fx native (<= 4x; the bare SCM_RIGHTS floor alone is "
               "%.2fx); notify brokered %.2fx the SEQPACKET reference (<= 1x)\n",
               (double)rtb.median_ns / (double)rp.median_ns,
               (double)rf.median_ns / (double)rp.median_ns,
               (double)rb.median_ns / (double)rr.median_ns);
    bench_samples_free(&sf);
    bench_samples_free(&sr);
    bench_samples_free(&sw);
    bench_samples_free(&sp);
    bench_samples_free(&sn);
    bench_samples_free(&sb);
    bench_samples_free(&stn);
    bench_samples_free(&stb);
    sbx_policy_unref(brokered);
    sbx_policy_unref(trap);
    sbx_policy_unref(plain);
    sbx_broker_free(b);
    bench_runtime_cleanup(&paths);
    return 0;
}
