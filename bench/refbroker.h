/* The comparison broker of the files benchmarks: Chromium's and Firefox's
 * way — the path over a SOCK_SEQPACKET socket to another process, which
 * opens it and sends the fd back with SCM_RIGHTS. */
#ifndef SBX_BENCH_REFBROKER_H
#define SBX_BENCH_REFBROKER_H

#include <sys/types.h>

typedef struct bench_refbroker {
    int sock; /* our end */
    pid_t pid;
} bench_refbroker;

/* Fork the reference broker (it dies with us). 0 or -1. */
int bench_refbroker_start(bench_refbroker *rb);
/* One request: path out, fd back (the caller closes it); -1 on failure. */
int bench_refbroker_open(const bench_refbroker *rb, const char *path);
/* Stop and reap it. */
void bench_refbroker_stop(bench_refbroker *rb);

/* One fd over a unix socket with SCM_RIGHTS (one data byte): 0 / -1; the
 * received fd (close-on-exec) or -1. */
int bench_send_fd(int sock, int fd);
int bench_recv_fd(int sock);

#endif
