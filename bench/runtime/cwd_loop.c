/* The cwd bench target: `cwd_loop MODE DIR PATH N BATCH` first chdir()s
 * to DIR ("-": stays), then N times: open+close PATH (MODE open), chdir
 * PATH (MODE chdir), stat PATH (MODE stat) or getcwd (MODE getcwd), and prints the mean ns of
 * one per batch of BATCH (one number a line). Unmodified as far as sbx is
 * concerned: it does not link libsbx. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 6)
        return 2;
    const char *mode = argv[1], *path = argv[3];
    long n = atol(argv[4]), batch = atol(argv[5]);
    if (n <= 0 || batch <= 0)
        return 2;
    if (strcmp(argv[2], "-") && chdir(argv[2]) < 0) {
        perror(argv[2]);
        return 1;
    }
    int m = !strcmp(mode, "open")     ? 0
            : !strcmp(mode, "chdir")  ? 1
            : !strcmp(mode, "getcwd") ? 2
            : !strcmp(mode, "stat")   ? 3
                                      : -1;
    if (m < 0)
        return 2;
    char buf[PATH_MAX];
    for (long done = 0; done < n; done += batch) {
        unsigned long long t0 = now_ns();
        for (long i = 0; i < batch; i++) {
            int bad;
            if (m == 0) {
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                bad = fd < 0;
                if (!bad)
                    close(fd);
            } else if (m == 1) {
                bad = chdir(path) < 0;
            } else if (m == 2) {
                bad = !getcwd(buf, sizeof buf);
            } else {
                struct stat st;
                bad = stat(path, &st) < 0;
            }
            if (bad) {
                perror(mode);
                return 1;
            }
        }
        printf("%llu\n", (now_ns() - t0) / (unsigned long long)batch);
    }
    return 0;
}
