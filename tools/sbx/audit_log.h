/* sbx command — the audit log of `sbx run --log FILE`: JSON Lines, one
 * object per event and per decision (docs/audit-log.md). Lines are written
 * whole with one write(2) under a lock, so callbacks on several threads
 * never interleave within a line. */
#ifndef SBX_TOOL_AUDIT_LOG_H
#define SBX_TOOL_AUDIT_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <sbx/broker.h>

typedef struct sbx_audit_log sbx_audit_log;

/* Create (or truncate) `path`, mode 0600. Returns 0 with *out, or -errno. */
int sbx_audit_log_open(const char *path, sbx_audit_log **out);
/* Flush and close. Returns 0, or the first write error (-errno) seen. NULL: 0. */
int sbx_audit_log_close(sbx_audit_log *log);

/* One broker event: "started", "exited" (code), "killed" (signal),
 * "limit" (which), "violation" (signal). `program` is PROGRAM's path. */
void sbx_audit_log_event(sbx_audit_log *log, const sbx_event *ev, const char *program);
/* The spawn failed: "spawn-failed" with the step and the message. */
void sbx_audit_log_spawn_failed(sbx_audit_log *log, const char *program, const char *step,
                                int err, const char *message);

/* One filesystem decision (filled from the broker's audit record). */
typedef struct sbx_cli_audit_decision {
    uint64_t time_ns;     /* CLOCK_REALTIME; 0: now */
    uint64_t target_id;
    pid_t pid;
    const char *syscall;  /* "openat", ... */
    const char *op;       /* "open", "stat", "rename", ...; NULL if unknown */
    const char *path;     /* as the broker canonicalised it; NULL if none */
    const char *path2;    /* rename destination; NULL if none */
    int64_t flags;        /* open flags / access mode / rename flags */
    const char *decision; /* "native", "brokered", "denied", "faked", "terminated" */
    bool alarm;           /* a signal-alarm rule decided */
    const char *origin;   /* the deciding rule's origin ("profile:default:41"); NULL if none */
    int err;              /* positive errno returned to the target, 0 on success */
} sbx_cli_audit_decision;
void sbx_audit_log_decision(sbx_audit_log *log, const sbx_cli_audit_decision *d);

/* "2026-12-01T20:05:48.123456Z" for `ns` (CLOCK_REALTIME; 0: now) into buf[cap>=32]. */
void sbx_audit_time(uint64_t ns, char *buf, size_t cap);

#endif
