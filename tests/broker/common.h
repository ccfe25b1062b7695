/* Shared helpers of the broker tests. */
#ifndef SBX_TEST_BROKER_COMMON_H
#define SBX_TEST_BROKER_COMMON_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sbx/broker.h>
#include <sbx/error.h>
#include <sbx/policy.h>

#define MAX_EVENTS 64

typedef struct event_log {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sbx_event ev[MAX_EVENTS];
    int n;
    int by_type[8];      /* every event counted, also past MAX_EVENTS */
    int exit_zero;
} event_log;

void log_init(event_log *l);
void log_event(const sbx_event *e, void *ud);
/* Wait up to ms for an EXITED/KILLED event of target id; returns it (type 0 on timeout). */
sbx_event log_wait_end(event_log *l, uint64_t id, int ms);
int log_count(event_log *l, sbx_event_type t, uint64_t id);

/* Path of the probe program (static buffer) and its directory. */
const char *probe_path(void);
const char *probe_dir(void);

/* A policy that can run the probe (its directory exec-visible). */
sbx_policy *probe_policy(sbx_broker *b);

/* Spawn the probe with args (NULL-terminated list after cmd) and stdio
 * on /dev/null except stderr shared. Returns spawn's result. */
int spawn_probe(sbx_broker *b, sbx_policy *p, sbx_target_info *info, const char *cmd, ...);

/* Spawn, wait for the end event, return it. */
sbx_event run_probe(sbx_broker *b, event_log *l, sbx_policy *p, const char *cmd, const char *arg);

int count_fds(void);
/* pid exists and is not a zombie. */
bool pid_alive(pid_t pid);
/* Skips the calling test unless the v1 memory and pids cgroups are
 * writable here. */
void skip_without_v1_cgroups(void);
int count_zombies(void);

#endif
