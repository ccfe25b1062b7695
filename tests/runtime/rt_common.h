/* Helpers of the runtime end-to-end tests: a broker, an exit log, running
 * an unmodified program in a target with its output captured. */
#ifndef SBX_TEST_RUNTIME_COMMON_H
#define SBX_TEST_RUNTIME_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include <sbx/broker.h>

#include "sbx_test.h" /* rt_setup installs sbx_test_on_event: ends via sbx_test_wait_end */

typedef struct rt_run {
    int code;     /* exit status, or -1 when killed */
    int sig;      /* killing signal */
    char out[16384];
    size_t n;
    uint64_t id;
    pid_t pid;
} rt_run;

extern sbx_broker *B;

void rt_setup(void);
void rt_teardown(void);
/* A scratch directory outside the target's view (under /var/tmp:
 * /tmp is private inside targets). Created fresh per test process. */
const char *rt_dir(void);
/* rt_dir()/name into a static rotating buffer. */
const char *rt_path(const char *name);
void rt_write_file(const char *name, const char *content);
bool rt_exists(const char *name);
/* Spawn argv (argv[0] is the absolute path) under p, stdout+stderr into
 * r->out, wait for its end. Returns sbx_broker_spawn's result. */
int rt_run_prog(sbx_policy *p, char *const argv[], rt_run *r);
/* /bin/sh -c script */
int rt_sh(sbx_policy *p, const char *script, rt_run *r);
const char *rt_probe_path(void);
int rt_count_fds(void);
int rt_count_threads(void);

#endif
