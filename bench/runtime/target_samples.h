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

#endif
