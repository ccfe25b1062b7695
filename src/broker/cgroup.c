/* sbx — per-target cgroups (v2 when delegated, v1 memory + pids otherwise). */
#include "broker/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/fd.h"

void sbx_warn_append(char *buf, size_t size, unsigned *n, const char *fmt, ...)
{
    if (!buf || size == 0)
        return;
    size_t len = strnlen(buf, size);
    if (len + 2 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + len, size - len - 1, fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    len = strnlen(buf, size);
    if (len + 1 < size) {
        buf[len] = '\n';
        buf[len + 1] = '\0';
    }
    if (n)
        (*n)++;
}

static int write_file(const char *dir, const char *name, const char *value)
{
    char path[SBX_CGROUP_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    SBX_AUTOCLOSE int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_neg_errno();
    ssize_t w = write(fd, value, strlen(value));
    if (w < 0)
        return sbx_neg_errno();
    return 0;
}

static ssize_t read_file(const char *dir, const char *name, char *buf, size_t size)
{
    char path[SBX_CGROUP_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    SBX_AUTOCLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_neg_errno();
    ssize_t r = sbx_read_full(fd, buf, size - 1);
    if (r < 0)
        return r;
    buf[r] = '\0';
    return r;
}

/* Our own cgroup path in the hierarchy named `controller` ("memory",
 * "pids", or "" for v2), from /proc/self/cgroup. */
static int own_cgroup(const char *controller, char *out, size_t size)
{
    char buf[4096];
    SBX_AUTOCLOSE int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_neg_errno();
    ssize_t r = sbx_read_full(fd, buf, sizeof buf - 1);
    if (r < 0)
        return (int)r;
    buf[r] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1;
        bool match = false;
        if (!controller[0]) {
            match = ctrls[0] == '\0' && strncmp(line, "0", 1) == 0;
        } else {
            char tmp[256];
            snprintf(tmp, sizeof tmp, "%s", ctrls);
            char *s2 = NULL;
            for (char *t = strtok_r(tmp, ",", &s2); t; t = strtok_r(NULL, ",", &s2))
                match |= strcmp(t, controller) == 0;
        }
        if (match) {
            snprintf(out, size, "%s", strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1);
            return 0;
        }
    }
    return -ENOENT;
}

static bool is_fs(const char *path, long magic)
{
    struct statfs s;
    return statfs(path, &s) == 0 && (long)s.f_type == magic;
}

/* mkdir -p of base/sbx/<pid>/<id>; returns 0 or -errno, fills out. */
static int make_dirs_once(const char *base, uint64_t id, char *out, size_t size);

/* A finishing target removes the per-broker parent when it looks empty:
 * a concurrent create can lose its parent in between, and tries again. */
static int make_dirs(const char *base, uint64_t id, char *out, size_t size)
{
    int r = -ENOENT;
    for (int i = 0; i < 8 && r == -ENOENT; i++)
        r = make_dirs_once(base, id, out, size);
    return r;
}

static int make_dirs_once(const char *base, uint64_t id, char *out, size_t size)
{
    char p[SBX_CGROUP_PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/sbx", base);
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return sbx_neg_errno();
    snprintf(p, sizeof p, "%s/sbx/%d", base, (int)getpid());
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return sbx_neg_errno();
    /* Target ids are per broker, and a process may hold several brokers:
     * the leaf name is the id plus a process-wide sequence number, so two
     * brokers never ask for the same directory (EEXIST was reported as
     * "no writable memory cgroup"). A leftover of a crashed process with
     * our pid is skipped over. */
    static unsigned long seq;
    for (int tries = 0; tries < 16; tries++) {
        unsigned long n_seq = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
        int n = snprintf(out, size, "%s/sbx/%d/%" PRIu64 "-%lu", base, (int)getpid(), id, n_seq);
        if (n < 0 || (size_t)n >= size)
            return -ENAMETOOLONG;
        if (mkdir(out, 0755) == 0)
            return 0;
        int e = sbx_neg_errno();
        out[0] = '\0';
        if (e != -EEXIST)
            return e;
    }
    return -EEXIST;
}

static void try_v2(sbx_cgroup *cg, uint64_t id)
{
    if (!is_fs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC))
        return;
    char own[256], base[SBX_CGROUP_PATH_MAX];
    if (own_cgroup("", own, sizeof own) < 0)
        return;
    snprintf(base, sizeof base, "/sys/fs/cgroup%s", own);
    char ctl[256];
    if (read_file(base, "cgroup.controllers", ctl, sizeof ctl) < 0 || !strstr(ctl, "memory") ||
        !strstr(ctl, "pids"))
        return;
    char sbxdir[SBX_CGROUP_PATH_MAX + 8];
    snprintf(sbxdir, sizeof sbxdir, "%s/sbx", base);
    if (mkdir(sbxdir, 0755) < 0 && errno != EEXIST)
        return;
    /* Enabling controllers below needs the "no internal processes" rule
     * to hold: the sbx subtree holds no process itself. */
    (void)write_file(base, "cgroup.subtree_control", "+memory +pids");
    (void)write_file(sbxdir, "cgroup.subtree_control", "+memory +pids");
    char bdir[SBX_CGROUP_PATH_MAX + 24];
    snprintf(bdir, sizeof bdir, "%s/%d", sbxdir, (int)getpid());
    if (mkdir(bdir, 0755) < 0 && errno != EEXIST)
        return;
    (void)write_file(bdir, "cgroup.subtree_control", "+memory +pids");
    if (make_dirs(base, id, cg->memory, sizeof cg->memory) < 0)
        return;
    cg->v2 = true;
}

void sbx_cgroup_warn_unlimited(const sbx_cgroup *cg, uint64_t memory_bytes, uint64_t max_pids,
                               char *warn, size_t warn_size, unsigned *n_warn)
{
    if (memory_bytes != UINT64_MAX && !cg->memory_limited)
        sbx_warn_append(warn, warn_size, n_warn,
                        "memory: no writable memory cgroup; enforced as RLIMIT_AS (address space, not resident memory)");
    if (max_pids != UINT64_MAX && !cg->pids_limited)
        sbx_warn_append(warn, warn_size, n_warn,
                        "processes: no writable pids cgroup; enforced as RLIMIT_NPROC (counts every process of the outside uid)");
}

void sbx_cgroup_create(sbx_cgroup *cg, uint64_t id, uint64_t memory_bytes, uint64_t max_pids,
                       char *warn, size_t warn_size, unsigned *n_warn)
{
    memset(cg, 0, sizeof *cg);
    char num[32];
    try_v2(cg, id);
    if (cg->v2) {
        if (memory_bytes != UINT64_MAX) {
            snprintf(num, sizeof num, "%" PRIu64, memory_bytes);
            cg->memory_limited = write_file(cg->memory, "memory.max", num) == 0;
            (void)write_file(cg->memory, "memory.swap.max", "0");
            (void)write_file(cg->memory, "memory.oom.group", "1");
        }
        if (max_pids != UINT64_MAX) {
            snprintf(num, sizeof num, "%" PRIu64, max_pids);
            cg->pids_limited = write_file(cg->memory, "pids.max", num) == 0;
        }
    } else {
        char own[256], base[SBX_CGROUP_PATH_MAX];
        if (is_fs("/sys/fs/cgroup/memory", CGROUP_SUPER_MAGIC)) {
            if (own_cgroup("memory", own, sizeof own) < 0)
                own[0] = '\0';
            snprintf(base, sizeof base, "/sys/fs/cgroup/memory%s", own);
            int r = make_dirs(base, id, cg->memory, sizeof cg->memory);
            if (r == 0 && memory_bytes != UINT64_MAX) {
                snprintf(num, sizeof num, "%" PRIu64, memory_bytes);
                cg->memory_limited = write_file(cg->memory, "memory.limit_in_bytes", num) == 0;
                /* Swap must not extend the limit (memsw exists only with swap accounting). */
                (void)write_file(cg->memory, "memory.memsw.limit_in_bytes", num);
                (void)write_file(cg->memory, "memory.swappiness", "0");
            }
        }
        if (is_fs("/sys/fs/cgroup/pids", CGROUP_SUPER_MAGIC)) {
            if (own_cgroup("pids", own, sizeof own) < 0)
                own[0] = '\0';
            snprintf(base, sizeof base, "/sys/fs/cgroup/pids%s", own);
            int r = make_dirs(base, id, cg->pids, sizeof cg->pids);
            if (r == 0 && max_pids != UINT64_MAX) {
                snprintf(num, sizeof num, "%" PRIu64, max_pids);
                cg->pids_limited = write_file(cg->pids, "pids.max", num) == 0;
            }
        }
    }
    sbx_cgroup_warn_unlimited(cg, memory_bytes, max_pids, warn, warn_size, n_warn);
}

int sbx_cgroup_attach(const sbx_cgroup *cg, pid_t pid)
{
    char num[32];
    snprintf(num, sizeof num, "%d", (int)pid);
    if (cg->memory[0]) {
        int r = write_file(cg->memory, "cgroup.procs", num);
        if (r < 0)
            return r;
    }
    if (cg->pids[0]) {
        int r = write_file(cg->pids, "cgroup.procs", num);
        if (r < 0)
            return r;
    }
    return 0;
}

int sbx_cgroup_open_self_attach(const sbx_cgroup *cg, int fds[2])
{
    fds[0] = fds[1] = -1;
    if (cg->v2 || (!cg->memory[0] && !cg->pids[0]))
        return 0;
    const char *dirs[2] = { cg->memory, cg->pids };
    for (int i = 0; i < 2; i++) {
        if (!dirs[i][0])
            continue;
        char path[SBX_CGROUP_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/tasks", dirs[i]);
        fds[i] = open(path, O_WRONLY | O_CLOEXEC);
        if (fds[i] < 0) {
            int e = sbx_neg_errno();
            sbx_close_keep_errno(fds[0]);
            fds[0] = fds[1] = -1;
            return e;
        }
    }
    return 1;
}

uint64_t sbx_cgroup_oom_kills(const sbx_cgroup *cg)
{
    if (!cg->memory[0])
        return 0;
    char buf[1024];
    const char *file = cg->v2 ? "memory.events" : "memory.oom_control";
    if (read_file(cg->memory, file, buf, sizeof buf) < 0)
        return 0;
    const char *k = strstr(buf, "oom_kill ");
    if (!k)
        return 0;
    return strtoull(k + strlen("oom_kill "), NULL, 10);
}

int sbx_cgroup_oom_eventfd(const sbx_cgroup *cg)
{
    if (!cg->memory[0])
        return -ENOENT;
    if (cg->v2)
        return -EOPNOTSUPP; /* v2: memory.events is polled with inotify; not used here */
    SBX_AUTOCLOSE int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return sbx_neg_errno();
    char path[SBX_CGROUP_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/memory.oom_control", cg->memory);
    SBX_AUTOCLOSE int ofd = open(path, O_RDONLY | O_CLOEXEC);
    if (ofd < 0)
        return sbx_neg_errno();
    char line[64];
    snprintf(line, sizeof line, "%d %d", efd, ofd);
    int r = write_file(cg->memory, "cgroup.event_control", line);
    if (r < 0)
        return r;
    return sbx_steal_fd(&efd);
}

static void kill_procs(const char *dir)
{
    char buf[4096];
    if (read_file(dir, "cgroup.procs", buf, sizeof buf) <= 0)
        return;
    for (char *p = buf; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (v > 0)
            kill((pid_t)v, SIGKILL);
        p = end;
        while (*p == '\n')
            p++;
    }
}

static void remove_dir(char *dir)
{
    if (!dir[0])
        return;
    /* rmdir fails with EBUSY while the last task is still leaving. */
    for (int i = 0; i < 200; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            break;
        if (errno != EBUSY) {
            break;
        }
        kill_procs(dir);
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    dir[0] = '\0';
}

void sbx_cgroup_destroy(sbx_cgroup *cg)
{
    if (cg->v2 && cg->memory[0])
        (void)write_file(cg->memory, "cgroup.kill", "1");
    remove_dir(cg->memory);
    remove_dir(cg->pids);
}

void sbx_cgroup_remove_broker_dirs(void)
{
    /* Recompute where make_dirs put them; rmdir fails harmlessly on what
     * does not exist or is still in use. */
    static const char *const roots[][2] = { { "/sys/fs/cgroup/memory", "memory" },
                                            { "/sys/fs/cgroup/pids", "pids" },
                                            { "/sys/fs/cgroup", "" } };
    for (size_t i = 0; i < SBX_ARRAY_SIZE(roots); i++) {
        char own[256], dir[SBX_CGROUP_PATH_MAX + 64];
        if (own_cgroup(roots[i][1], own, sizeof own) < 0)
            continue;
        snprintf(dir, sizeof dir, "%s%s/sbx/%d", roots[i][0], own, (int)getpid());
        (void)rmdir(dir);
    }
}
