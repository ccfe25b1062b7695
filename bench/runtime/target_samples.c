/* bench_target_samples (target_samples.h). */
#include "target_samples.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
