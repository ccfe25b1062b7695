/* The runtime benchmarks' target runner: spawn an unmodified loop program
 * under a policy and collect the numbers it prints (one per line) as
 * samples. */
#ifndef SBX_BENCH_TARGET_SAMPLES_H
#define SBX_BENCH_TARGET_SAMPLES_H

#include <stddef.h>

#include <sbx/broker.h>

#include "bench.h"

/* argv[0] is the program's path. Waits for the target to end. Returns 0
 * when exactly `want` samples arrived, else -errno (the spawn error goes
 * to stderr). */
int bench_target_samples(sbx_broker *b, sbx_policy *p, char **argv, bench_samples *s, size_t want);

/* The runtime benchmarks' files, next to the bench binaries (`bench_dir`,
 * the folder of /proc/self/exe): `viewdir` = <bench_dir>/runtime (the loop
 * programs' folder, a view), `dir` = <bench_dir>/<data> with one file
 * `file` = <dir>/brokered.txt, outside every view and not under /tmp (the
 * target's /tmp is private). SBX_PRELOAD is set to the build tree's shim
 * unless the caller set it. Returns 0 or -errno. */
typedef struct bench_runtime_paths {
    char bench_dir[4096];
    char viewdir[4096 + 16];
    char dir[4096 + 32];
    char file[4096 + 64];
} bench_runtime_paths;
int bench_runtime_setup(const char *data, bench_runtime_paths *out);
/* Remove the data file and folder. */
void bench_runtime_cleanup(const bench_runtime_paths *p);

#endif
