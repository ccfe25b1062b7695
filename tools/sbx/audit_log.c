/* sbx command — the audit log (see audit_log.h, docs/audit-log.md). */
#include "audit_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fd.h"
#include "json.h"

struct sbx_audit_log {
    pthread_mutex_t lock;
    int fd;
    int error; /* first write error, negative errno */
    sbx_jbuf buf;
};

int sbx_audit_log_open(const char *path, sbx_audit_log **out)
{
    sbx_audit_log *log = calloc(1, sizeof *log);
    if (!log)
        return -ENOMEM;
    log->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
    if (log->fd < 0) {
        int e = -errno;
        free(log);
        return e;
    }
    pthread_mutex_init(&log->lock, NULL);
    *out = log;
    return 0;
}

int sbx_audit_log_close(sbx_audit_log *log)
{
    if (!log)
        return 0;
    int r = log->error;
    if (close(log->fd) < 0 && r == 0)
        r = -errno;
    pthread_mutex_destroy(&log->lock);
    sbx_jbuf_free(&log->buf);
    free(log);
    return r;
}

void sbx_audit_time(uint64_t ns, char *buf, size_t cap)
{
    struct timespec ts;
    if (ns) {
        ts.tv_sec = (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
    } else {
        clock_gettime(CLOCK_REALTIME, &ts);
    }
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%06ldZ", base, ts.tv_nsec / 1000);
}

/* Start a line: {"time":...,"type":TYPE. Called with the lock held. */
static sbx_jbuf *begin(sbx_audit_log *log, const char *type, uint64_t ns)
{
    char t[40];
    sbx_audit_time(ns, t, sizeof t);
    sbx_jbuf *b = &log->buf;
    sbx_jbuf_reset(b);
    sbx_jbuf_open(b);
    sbx_jbuf_key_str(b, "time", t);
    sbx_jbuf_key_str(b, "type", type);
    return b;
}

/* End the line and write it whole. Called with the lock held. */
static void finish(sbx_audit_log *log)
{
    sbx_jbuf *b = &log->buf;
    sbx_jbuf_close(b);
    sbx_jbuf_raw(b, "\n", 1);
    if (b->failed) {
        if (!log->error)
            log->error = -ENOMEM;
        return;
    }
    ssize_t r = sbx_write_full(log->fd, b->p, b->len);
    if (r < 0 && !log->error)
        log->error = (int)r;
}

static const char *event_name(sbx_event_type t)
{
    switch (t) {
    case SBX_EVENT_STARTED:
        return "started";
    case SBX_EVENT_EXITED:
        return "exited";
    case SBX_EVENT_KILLED:
        return "killed";
    case SBX_EVENT_LIMIT:
        return "limit";
    case SBX_EVENT_VIOLATION:
        return "violation";
    case SBX_EVENT_ALARM:
        return "alarm";
    case SBX_EVENT_DENIED:
        return "denied_syscall";
    }
    return "unknown";
}

static const char *limit_name(sbx_limit l)
{
    static const char *const names[] = { "memory", "processes", "cpu", "files", "filesize" };
    return (unsigned)l < SBX_LIMIT_COUNT_ ? names[l] : "unknown";
}

void sbx_audit_log_event(sbx_audit_log *log, const sbx_event *ev, const char *program)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->lock);
    sbx_jbuf *b = begin(log, "event", 0);
    sbx_jbuf_key_str(b, "event", event_name(ev->type));
    sbx_jbuf_key_uint(b, "target", ev->target_id);
    sbx_jbuf_key_int(b, "pid", ev->pid);
    switch (ev->type) {
    case SBX_EVENT_STARTED:
        sbx_jbuf_key_str(b, "program", program);
        break;
    case SBX_EVENT_EXITED:
        sbx_jbuf_key_int(b, "code", ev->code);
        sbx_jbuf_key_bool(b, "memory_limit", ev->memory_limit);
        if (ev->denied_unreported)
            sbx_jbuf_key_uint(b, "denied_unreported", ev->denied_unreported);
        break;
    case SBX_EVENT_KILLED:
    case SBX_EVENT_VIOLATION:
        sbx_jbuf_key_int(b, "signal", ev->signal);
        sbx_jbuf_key_str(b, "signal_name", sigabbrev_np(ev->signal));
        if (ev->type == SBX_EVENT_KILLED)
            sbx_jbuf_key_bool(b, "memory_limit", ev->memory_limit);
        if (ev->type == SBX_EVENT_KILLED && ev->denied_unreported)
            sbx_jbuf_key_uint(b, "denied_unreported", ev->denied_unreported);
        break;
    case SBX_EVENT_LIMIT:
        sbx_jbuf_key_str(b, "limit", limit_name(ev->limit));
        break;
    case SBX_EVENT_ALARM:
        break; /* the call itself is the decision line with "alarm":true */
    case SBX_EVENT_DENIED: {
        /* arch is the kernel's word (AUDIT_ARCH_*), the number the target's */
        bool i386 = ev->arch == SCMP_ARCH_X86;
        sbx_jbuf_key_int(b, "syscall", ev->syscall);
        const char *name =
            ev->arch == SCMP_ARCH_X86_64 || i386
                ? seccomp_syscall_resolve_num_arch(ev->arch, ev->syscall)
                : NULL;
        sbx_jbuf_key_str(b, "syscall_name", name ? name : "unknown");
        free((void *)(uintptr_t)name);
        sbx_jbuf_key_str(b, "arch", ev->arch == SCMP_ARCH_X86_64 ? "x86_64"
                                    : i386                       ? "i386"
                                                                 : "other");
        break;
    }
    }
    finish(log);
    pthread_mutex_unlock(&log->lock);
}

void sbx_audit_log_spawn_failed(sbx_audit_log *log, const char *program, const char *step,
                                int err, const char *message)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->lock);
    sbx_jbuf *b = begin(log, "event", 0);
    sbx_jbuf_key_str(b, "event", "spawn-failed");
    sbx_jbuf_key_str(b, "program", program);
    sbx_jbuf_key_str(b, "step", step);
    sbx_jbuf_key_int(b, "errno", err);
    sbx_jbuf_key_str(b, "message", message);
    finish(log);
    pthread_mutex_unlock(&log->lock);
}

void sbx_audit_log_decision(sbx_audit_log *log, const sbx_cli_audit_decision *d)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->lock);
    sbx_jbuf *b = begin(log, "decision", d->time_ns);
    sbx_jbuf_key_uint(b, "target", d->target_id);
    sbx_jbuf_key_int(b, "pid", d->pid);
    sbx_jbuf_key_str(b, "syscall", d->syscall);
    sbx_jbuf_key_str(b, "op", d->op);
    sbx_jbuf_key_str(b, "path", d->path);
    sbx_jbuf_key_str(b, "path2", d->path2);
    sbx_jbuf_key_int(b, "flags", d->flags);
    sbx_jbuf_key_str(b, "decision", d->decision);
    sbx_jbuf_key_bool(b, "alarm", d->alarm);
    sbx_jbuf_key_str(b, "origin", d->origin);
    sbx_jbuf_key_int(b, "errno", d->err);
    sbx_jbuf_key_str(b, "errno_name", d->err > 0 ? strerrorname_np(d->err) : NULL);
    finish(log);
    pthread_mutex_unlock(&log->lock);
}
