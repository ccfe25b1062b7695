/* files: open+close of one file, measured in the same run as
 *   native       — the kernel alone;
 *   notify       — under the notify filter, brokered by sbx_notify_serve
 *                  (decision, openat2 in the broker, ADDFD back);
 *   seqpacket    — a reference broker: path over SOCK_SEQPACKET to another
 *                  process, which opens it and sends the fd with SCM_RIGHTS;
 *   bwrap        — native open inside a bubblewrap bind mount (if bwrap is
 *                  installed and works here).
 * Goal: notify no slower than the SEQPACKET reference. The notify and
 * reference loops run in alternating batches of BATCH calls (which goes
 * first alternates too), so both see the same machine: run one after the
 * other, seconds apart on a shared host, they did not.
 * Usage: bench_files [iterations] (default 100000). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include "bench.h"
#include "refbroker.h"
#include "subsys/files/files_dispatcher.h"
#include "target/interception/notify.h"

static char g_dir[256], g_file[512];
static size_t g_iter = 100000;
#define BATCH 1000

static void native_loop(uint64_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        int fd = (int)syscall(SYS_openat, AT_FDCWD, g_file, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0)
            abort();
        close(fd);
        out[i] = bench_now_ns() - t0;
    }
}

static void summarize(const uint64_t *v, size_t n, const char *name, bench_result *r)
{
    bench_samples s;
    bench_samples_init(&s, n);
    for (size_t i = 0; i < n; i++)
        bench_samples_add(&s, v[i]);
    bench_summarize(&s, "files", name, r);
    bench_samples_free(&s);
}

static int decide(void *ctx, const sbx_files_query *req, sbx_files_decision *out)
{
    (void)ctx;
    out->action = sbx_files_path_is_under(req->path, g_dir) ? SBX_FILES_BROKER : SBX_FILES_REFUSE;
    return 0;
}

/* The notify target: BATCH opens each time the test says go. */
static void notify_target(uint64_t *out, int go, int done)
{
    for (size_t b = 0; b < g_iter; b += BATCH) {
        char c;
        if (read(go, &c, 1) != 1)
            _exit(3);
        native_loop(out + b, g_iter - b < BATCH ? g_iter - b : BATCH);
        if (write(done, "d", 1) != 1)
            _exit(3);
    }
}

static int ref_batch(const bench_refbroker *rb, uint64_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        int fd = bench_refbroker_open(rb, g_file);
        if (fd < 0)
            return -1;
        close(fd);
        out[i] = bench_now_ns() - t0;
    }
    return 0;
}

static void *serve_thread(void *cfg)
{
    return (void *)(intptr_t)sbx_notify_serve(cfg);
}

/* notify (shared: the target writes its samples there) and the reference
 * (ref), batch by batch. */
static int interleaved_run(uint64_t *shared, uint64_t *ref)
{
    struct sock_fprog prog;
    if (sbx_notify_filter_build(&prog) < 0)
        return -1;
    int sv[2], go[2], done[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || pipe2(go, O_CLOEXEC) < 0 ||
        pipe2(done, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(sv[0]);
        int l = sbx_notify_filter_install(&prog);
        if (l < 0 || bench_send_fd(sv[1], l) < 0)
            _exit(2);
        close(l);
        close(sv[1]);
        notify_target(shared, go[0], done[1]);
        _exit(0);
    }
    close(sv[1]);
    close(go[0]);
    close(done[1]);
    sbx_notify_filter_free(&prog);
    int listener = bench_recv_fd(sv[0]);
    close(sv[0]);
    if (listener < 0)
        return -1;
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    sbx_files_dispatcher d = { .decide = decide, .broker_root_fd = root };
    sbx_notify_config cfg = { .listener_fd = listener, .files = &d, .stop_fd = -1 };
    pthread_t th;
    bench_refbroker rb;
    if (pthread_create(&th, NULL, serve_thread, &cfg) != 0)
        return -1;
    int r = bench_refbroker_start(&rb) < 0 ? -1 : 0;
    for (size_t b = 0, k = 0; r == 0 && b < g_iter; b += BATCH, k++) {
        size_t n = g_iter - b < BATCH ? g_iter - b : BATCH;
        char c;
        if (k % 2 && ref_batch(&rb, ref + b, n) < 0)
            r = -1;
        if (r == 0 && (write(go[1], "g", 1) != 1 || read(done[0], &c, 1) != 1))
            r = -1;
        if (r == 0 && k % 2 == 0 && ref_batch(&rb, ref + b, n) < 0)
            r = -1;
    }
    if (r == 0)
        bench_refbroker_stop(&rb);
    close(go[1]);
    close(done[0]);
    int st;
    waitpid(pid, &st, 0); /* the filter's last user: the server returns */
    void *sr = NULL;
    pthread_join(th, &sr);
    close(listener);
    close(root);
    return r == 0 && sr == NULL && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Inside bwrap: "--bwrap-inner <file> <iter> <fd>": write samples to fd. */
static int bwrap_inner(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    snprintf(g_file, sizeof g_file, "%s", argv[2]);
    size_t n = strtoul(argv[3], NULL, 10);
    int fd = atoi(argv[4]);
    uint64_t *v = calloc(n, sizeof *v);
    if (!v)
        return 2;
    native_loop(v, n);
    size_t bytes = n * sizeof *v;
    const char *p = (const char *)v;
    while (bytes) {
        ssize_t w = write(fd, p, bytes);
        if (w <= 0)
            return 3;
        p += w;
        bytes -= (size_t)w;
    }
    return 0;
}

static int bwrap_run(uint64_t *out)
{
    if (access("/usr/bin/bwrap", X_OK) != 0)
        return -1;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        char iter[32], fdn[16];
        snprintf(iter, sizeof iter, "%zu", g_iter);
        snprintf(fdn, sizeof fdn, "%d", p[1]);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        execl("/usr/bin/bwrap", "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--bind", g_dir,
              g_dir, "--unshare-all", "--die-with-parent", "--", exe, "--bwrap-inner", g_file, iter,
              fdn, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t want = g_iter * sizeof *out, got = 0;
    while (got < want) {
        ssize_t r = read(p[0], (char *)out + got, want - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return got == want ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--bwrap-inner") == 0)
        return bwrap_inner(argc, argv);
    if (argc > 1)
        g_iter = strtoul(argv[1], NULL, 10);
    if (g_iter == 0)
        g_iter = 1;
    snprintf(g_dir, sizeof g_dir, "/tmp/sbx-bench-files-XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    snprintf(g_file, sizeof g_file, "%s/file", g_dir);
    int fd = open(g_file, O_CREAT | O_WRONLY, 0644);
    if (fd < 0)
        return 1;
    close(fd);

    uint64_t *v = mmap(NULL, g_iter * sizeof *v, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);
    if (v == MAP_FAILED)
        return 1;
    bench_result native, notify, seq, bw;
    native_loop(v, g_iter);
    summarize(v, g_iter, "open_close.native", &native);
    uint64_t *rv = calloc(g_iter, sizeof *rv);
    if (!rv)
        return 1;
    int have_notify = interleaved_run(v, rv) == 0, have_seq = have_notify;
    if (have_notify) {
        summarize(v, g_iter, "open_close.notify", &notify);
        summarize(rv, g_iter, "open_close.seqpacket_ref", &seq);
    }
    free(rv);
    int have_bwrap = bwrap_run(v) == 0;
    if (have_bwrap)
        summarize(v, g_iter, "open_close.bwrap_bind", &bw);

    bench_print(&native, NULL);
    if (have_seq)
        bench_print(&seq, &native);
    if (have_notify)
        bench_print(&notify, have_seq ? &seq : &native);
    if (have_bwrap)
        bench_print(&bw, &native);
    bench_table_header("files: open+close (notify vs SEQPACKET reference vs native)");
    bench_table_row(&native, NULL);
    if (have_seq)
        bench_table_row(&seq, &native);
    if (have_notify)
        bench_table_row(&notify, have_seq ? &seq : &native);
    if (have_bwrap)
        bench_table_row(&bw, &native);
    if (!have_notify)
        fprintf(stderr, "bench_files: notify run failed\n");
    unlink(g_file);
    rmdir(g_dir);
    return have_notify ? 0 : 1;
}
