/* bench_target_samples (target_samples.h). */
#include "target_samples.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bench_target_samples(sbx_broker *b, sbx_policy *p, char **argv, bench_samples *s, size_t want)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    sbx_spawn_options o = { .path = argv[0], .argv = argv, .stdin_fd = SBX_STDIO_NULL,
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
    if (!f) {
        close(pfd[0]);
        sbx_broker_wait_all(b, 60000);
        return -errno;
    }
    unsigned long long v;
    size_t got = 0;
    while (fscanf(f, "%llu", &v) == 1) {
        bench_samples_add(s, v);
        got++;
    }
    fclose(f);
    sbx_broker_wait_all(b, 60000);
    return got == want ? 0 : -EIO;
}

int bench_runtime_setup(const char *data, bench_runtime_paths *out)
{
    ssize_t k = readlink("/proc/self/exe", out->bench_dir, sizeof out->bench_dir - 1);
    if (k <= 0)
        return -EIO;
    out->bench_dir[k] = '\0';
    *strrchr(out->bench_dir, '/') = '\0';
    snprintf(out->viewdir, sizeof out->viewdir, "%s/runtime", out->bench_dir);
    snprintf(out->dir, sizeof out->dir, "%s/%s", out->bench_dir, data);
    if (mkdir(out->dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    chmod(out->dir, 0755); /* the target runs as another uid */
    snprintf(out->file, sizeof out->file, "%s/brokered.txt", out->dir);
    FILE *f = fopen(out->file, "w");
    if (!f)
        return -errno;
    fputs("x\n", f);
    fclose(f);
    chmod(out->file, 0644);
    char shim[sizeof out->bench_dir + 64];
    snprintf(shim, sizeof shim, "%s/../tools/preload/libsbx-preload.so", out->bench_dir);
    if (!getenv("SBX_PRELOAD"))
        setenv("SBX_PRELOAD", shim, 1);
    return 0;
}

void bench_runtime_cleanup(const bench_runtime_paths *p)
{
    unlink(p->file);
    rmdir(p->dir);
}
