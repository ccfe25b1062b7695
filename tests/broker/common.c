#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

void log_init(event_log *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
}

void log_event(const sbx_event *e, void *ud)
{
    event_log *l = ud;
    pthread_mutex_lock(&l->lock);
    if (l->n < MAX_EVENTS)
        l->ev[l->n++] = *e;
    if ((unsigned)e->type < 8)
        l->by_type[e->type]++;
    l->exit_zero += e->type == SBX_EVENT_EXITED && e->code == 0;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

static int find_end(event_log *l, uint64_t id)
{
    for (int i = 0; i < l->n; i++)
        if (l->ev[i].target_id == id &&
            (l->ev[i].type == SBX_EVENT_EXITED || l->ev[i].type == SBX_EVENT_KILLED))
            return i;
    return -1;
}

sbx_event log_wait_end(event_log *l, uint64_t id, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    sbx_event r = { 0 };
    pthread_mutex_lock(&l->lock);
    int i;
    while ((i = find_end(l, id)) < 0)
        if (pthread_cond_timedwait(&l->cond, &l->lock, &dl) != 0)
            break;
    if (i >= 0)
        r = l->ev[i];
    pthread_mutex_unlock(&l->lock);
    return r;
}

int log_count(event_log *l, sbx_event_type t, uint64_t id)
{
    int n = 0;
    pthread_mutex_lock(&l->lock);
    for (int i = 0; i < l->n; i++)
        n += l->ev[i].type == t && l->ev[i].target_id == id;
    pthread_mutex_unlock(&l->lock);
    return n;
}

static char g_probe[PATH_MAX + 32], g_dir[PATH_MAX];

static void resolve(void)
{
    if (g_probe[0])
        return;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0);
    exe[n] = '\0';
    snprintf(g_dir, sizeof g_dir, "%s/broker", dirname(exe));
    snprintf(g_probe, sizeof g_probe, "%s/sbx_broker_probe", g_dir);
    cr_assert(access(g_probe, X_OK) == 0, "probe missing: %s", g_probe);
}

const char *probe_path(void)
{
    resolve();
    return g_probe;
}

const char *probe_dir(void)
{
    resolve();
    return g_dir;
}

sbx_policy *probe_policy(sbx_broker *b)
{
    sbx_policy *p = sbx_broker_create_policy(b);
    cr_assert(p);
    cr_assert_eq(sbx_policy_add_view(p, probe_dir(), SBX_VIEW_EXEC), 0);
#if defined(__SANITIZE_ADDRESS__)
    /* An ASan probe reserves terabytes of shadow: when the memory cgroup
     * is unavailable the job preset's memory limit falls back to
     * RLIMIT_AS and the probe cannot start. Tests that test limits set
     * their own. */
    cr_assert_eq(sbx_policy_set_job_level(p, SBX_JOB_NONE), 0);
#endif
    return p;
}

static char *const probe_env[] = { (char *)"ASAN_OPTIONS=detect_leaks=0:handle_segv=0:handle_sigbus=0", (char *)"PATH=/usr/bin:/bin", NULL };

int spawn_probe(sbx_broker *b, sbx_policy *p, sbx_target_info *info, const char *cmd, ...)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)"probe";
    argv[n++] = (char *)cmd;
    va_list ap;
    va_start(ap, cmd);
    const char *a;
    while (n < 15 && (a = va_arg(ap, const char *)))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    sbx_spawn_options o = {
        .path = probe_path(), .argv = argv, .envp = probe_env,
        .stdin_fd = SBX_STDIO_NULL, .stdout_fd = SBX_STDIO_NULL, .stderr_fd = 2,
    };
    return sbx_broker_spawn(b, p, &o, info);
}

sbx_event run_probe(sbx_broker *b, event_log *l, sbx_policy *p, const char *cmd, const char *arg)
{
    sbx_target_info info;
    int r = spawn_probe(b, p, &info, cmd, arg, NULL);
    cr_assert_eq(r, 0, "spawn %s %s: %d %s", cmd, arg ? arg : "", r, info.error);
    sbx_event e = log_wait_end(l, info.id, 5000);
    cr_assert(e.type != 0, "no end event for %s", cmd);
    return e;
}

int count_fds(void)
{
    /* Only fds of the kinds spawn creates (Criterion's own come and go). */
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k <= 0)
            continue;
        link[k] = '\0';
        n += strstr(link, "pidfd") || strstr(link, "eventfd") || strstr(link, "memfd") ||
             strstr(link, "/dev/null") || strstr(link, "cgroup");
    }
    closedir(d);
    return n;
}

int count_zombies(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", getpid(), getpid());
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, pid;
    while (fscanf(f, "%d", &pid) == 1)
        n++;
    fclose(f);
    return n;
}

bool pid_alive(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char st = 0;
    int r = fscanf(f, "%*d %*s %c", &st);
    fclose(f);
    return r == 1 && st != 'Z';
}

void skip_without_v1_cgroups(void)
{
    if (access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) != 0 ||
        access("/sys/fs/cgroup/pids/cgroup.procs", W_OK) != 0)
        cr_skip_test("no writable v1 memory and pids cgroups");
}
