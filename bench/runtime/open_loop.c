/* The bench target: `open_loop PATH N BATCH` opens and closes PATH N times
 * and prints, per batch of BATCH iterations, the mean ns of one
 * open+close (one number a line). An unmodified program as far as sbx is
 * concerned: it does not link libsbx. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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
    if (argc != 4)
        return 2;
    long n = atol(argv[2]), batch = atol(argv[3]);
    if (n <= 0 || batch <= 0)
        return 2;
    for (long done = 0; done < n; done += batch) {
        unsigned long long t0 = now_ns();
        for (long i = 0; i < batch; i++) {
            int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                perror(argv[1]);
                return 1;
            }
            close(fd);
        }
        printf("%llu\n", (now_ns() - t0) / (unsigned long long)batch);
    }
    return 0;
}
