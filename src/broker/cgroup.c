/* sbx — per-target cgroups (v2 when delegated, v1 memory + pids otherwise). */
#include "broker/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
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

/* mkdir of base/sbx/<pid>/<id>-<seq>; returns 0 or -errno, fills out. */
static int make_leaf(const char *base, uint64_t id, char *out, size_t size)
{
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

/* A live broker's per-broker directories are flock'ed (shared) by its
 * process for as long as it lives: the pid in their name is from its pid
 * namespace, which a broker elsewhere (another pid namespace, same
 * cgroup) cannot check, so sbx_cgroup_reap_stale takes the lock instead
 * (exclusive, non-blocking). One fd per directory, process-wide, kept
 * (close-on-exec); a directory made again replaces its entry. */
#define HELD_DIRS 8
static struct {
    char path[SBX_CGROUP_PATH_MAX + 32];
    int fd;
} g_held[HELD_DIRS];
static unsigned g_n_held;
static pthread_mutex_t g_held_lock = PTHREAD_MUTEX_INITIALIZER;

/* Lock dir (shared) unless this process holds it already. Waits while a
 * reaper holds it (briefly; at most ~0.2 s, then goes on unlocked: a
 * stopped reaper must not hang our spawns); the reaper may have removed
 * it meanwhile: the leaf's mkdir then fails (ENOENT) and make_dirs makes
 * both again. */
static void hold_broker_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat now;
    if (fstat(fd, &now) < 0) {
        close(fd);
        return;
    }
    pthread_mutex_lock(&g_held_lock);
    unsigned slot = g_n_held;
    for (unsigned i = 0; i < g_n_held; i++) {
        if (strcmp(g_held[i].path, dir) != 0)
            continue;
        struct stat held;
        if (fstat(g_held[i].fd, &held) == 0 && held.st_dev == now.st_dev &&
            held.st_ino == now.st_ino) {
            pthread_mutex_unlock(&g_held_lock);
            close(fd);
            return;
        }
        slot = i;
        break;
    }
    if (slot == HELD_DIRS)
        slot = HELD_DIRS - 1; /* more places than expected: the last one changes */
    for (int tries = 0; tries < 200 && flock(fd, LOCK_SH | LOCK_NB) < 0; tries++) {
        if (errno != EWOULDBLOCK && errno != EINTR)
            break;
        nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
    }
    if (slot < g_n_held)
        close(g_held[slot].fd);
    else
        g_n_held++;
    snprintf(g_held[slot].path, sizeof g_held[slot].path, "%s", dir);
    g_held[slot].fd = fd;
    pthread_mutex_unlock(&g_held_lock);
}

unsigned sbx_cgroup_held_dirs(void)
{
    pthread_mutex_lock(&g_held_lock);
    unsigned n = g_n_held;
    pthread_mutex_unlock(&g_held_lock);
    return n;
}

/* mkdir -p of base/sbx/<pid>/<id>-<seq>; returns 0 or -errno, fills out. */
static int make_dirs_once(const char *base, uint64_t id, char *out, size_t size)
{
    char p[SBX_CGROUP_PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/sbx", base);
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return sbx_neg_errno();
    snprintf(p, sizeof p, "%s/sbx/%d", base, (int)getpid());
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return sbx_neg_errno();
    /* Locked before a leaf is made in it: a reaper never sees that leaf
     * in an unlocked directory. */
    hold_broker_dir(p);
    return make_leaf(base, id, out, size);
}

/* A finishing broker removes its per-broker parent (sbx_broker_free;
 * several brokers may share a process): a create that loses its parent
 * in between tries again. */
static int make_dirs(const char *base, uint64_t id, char *out, size_t size)
{
    int r = -ENOENT;
    for (int i = 0; i < 8 && r == -ENOENT; i++)
        r = make_dirs_once(base, id, out, size);
    return r;
}

/* The test seam (cgroup.h): a cgroup2 directory standing for our own
 * unified cgroup, and whether v1 controllers may be used. */
static const char *g_v2_root;
static bool g_no_v1;
static unsigned g_places_gen = 1; /* bumped by the seam: places found again */

void sbx_cgroup_set_roots_for_test(const char *dir, bool v1)
{
    g_v2_root = dir;
    g_no_v1 = dir && !v1;
    __atomic_add_fetch(&g_places_gen, 1, __ATOMIC_RELAXED);
}

/* Where each hierarchy's leaves go (its base: our own cgroup in it; ""
 * when it is not usable), found once per thread — threads may live in
 * different mount namespaces — and again when a leaf cannot be made
 * there: reading /proc/self/cgroup (under the kernel's cgroup lock),
 * three statfs and the parents' mkdir were ~0.05 ms of every leaf. */
enum { H_V2, H_MEMORY, H_PIDS, H_N };
typedef struct {
    unsigned gen;                       /* g_places_gen when found; 0: not */
    pid_t pid;                          /* getpid() then (a fork finds them again) */
    char base[H_N][SBX_CGROUP_PATH_MAX];
    bool parents[H_N];                  /* base/sbx/<pid> made (v2: controllers enabled) */
} cg_places;
static __thread cg_places t_places;

static void find_places(cg_places *pl)
{
    memset(pl, 0, sizeof *pl);
    char own[256];
    if (g_v2_root) {
        if (is_fs(g_v2_root, CGROUP2_SUPER_MAGIC))
            snprintf(pl->base[H_V2], sizeof pl->base[H_V2], "%s", g_v2_root);
    } else if (is_fs("/sys/fs/cgroup", CGROUP2_SUPER_MAGIC) && own_cgroup("", own, sizeof own) == 0) {
        snprintf(pl->base[H_V2], sizeof pl->base[H_V2], "/sys/fs/cgroup%s", own);
    }
    static const char *const v1[] = { [H_MEMORY] = "memory", [H_PIDS] = "pids" };
    for (int h = H_MEMORY; h <= H_PIDS && !g_no_v1; h++) {
        char mnt[64];
        snprintf(mnt, sizeof mnt, "/sys/fs/cgroup/%s", v1[h]);
        if (!is_fs(mnt, CGROUP_SUPER_MAGIC))
            continue;
        if (own_cgroup(v1[h], own, sizeof own) < 0)
            own[0] = '\0';
        snprintf(pl->base[h], sizeof pl->base[h], "%s%s", mnt, own);
    }
    pl->gen = __atomic_load_n(&g_places_gen, __ATOMIC_RELAXED);
    pl->pid = getpid();
}

/* This thread's places; *fresh: found just now. */
static cg_places *places(bool *fresh)
{
    cg_places *pl = &t_places;
    *fresh = pl->gen != __atomic_load_n(&g_places_gen, __ATOMIC_RELAXED) || pl->pid != getpid();
    if (*fresh)
        find_places(pl);
    return pl;
}

/* Does a cgroup.controllers-style list name `ctl`? (Whole words.) */
static bool has_word(const char *list, const char *ctl)
{
    size_t n = strlen(ctl);
    for (const char *p = list; (p = strstr(p, ctl)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* Enable, below `dir`, those of memory and pids it has. One write per
 * controller: a write naming one it lacks fails as a whole. Failing is
 * harmless (a directory holding processes cannot enable domain
 * controllers): the leaf then lacks them, and its limits go elsewhere. */
static void enable_below(const char *dir)
{
    char ctl[256];
    if (read_file(dir, "cgroup.controllers", ctl, sizeof ctl) < 0)
        return;
    if (has_word(ctl, "memory"))
        (void)write_file(dir, "cgroup.subtree_control", "+memory");
    if (has_word(ctl, "pids"))
        (void)write_file(dir, "cgroup.subtree_control", "+pids");
}

/* The v2 parents: sbx/ and sbx/<pid> below base, each with the
 * controllers enabled below. 0 or -errno. */
static int make_v2_parents(const char *base)
{
    char sbxdir[SBX_CGROUP_PATH_MAX + 8];
    snprintf(sbxdir, sizeof sbxdir, "%s/sbx", base);
    if (mkdir(sbxdir, 0755) < 0 && errno != EEXIST)
        return sbx_neg_errno();
    /* Enabling controllers below needs the "no internal processes" rule
     * to hold: the sbx subtree holds no process itself. */
    enable_below(base);
    enable_below(sbxdir);
    char bdir[SBX_CGROUP_PATH_MAX + 24];
    snprintf(bdir, sizeof bdir, "%s/%d", sbxdir, (int)getpid());
    if (mkdir(bdir, 0755) < 0 && errno != EEXIST)
        return sbx_neg_errno();
    enable_below(bdir);
    return 0;
}

/* A leaf below this thread's base of hierarchy h: 0 or -errno. Once the
 * parents are made, only the leaf is (its parent gone: all again). A
 * cached base that fails is found again, once (an unusable one stays
 * so for the thread). */
static int make_in(int h, uint64_t id, char *out, size_t size)
{
    int r = -ENOENT;
    for (int pass = 0; pass < 2; pass++) {
        bool fresh;
        cg_places *pl = places(&fresh);
        const char *base = pl->base[h];
        if (!base[0])
            return -ENOENT;
        if (pl->parents[h] && (r = make_leaf(base, id, out, size)) != -ENOENT)
            return r;
        pl->parents[h] = false;
        r = h == H_V2 ? make_v2_parents(base) : 0;
        if (r == 0)
            r = make_dirs(base, id, out, size);
        pl->parents[h] = r == 0;
        if (r == 0 || fresh)
            return r;
        pl->gen = 0;
    }
    return r;
}

/* A v2 leaf, with whatever controllers the hierarchy grants us: without
 * any it still gives teardown (cgroup.kill) and a populated flag. */
static void try_v2(sbx_cgroup *cg, uint64_t id)
{
    if (make_in(H_V2, id, cg->unified, sizeof cg->unified) < 0)
        return;
    cg->v2 = true;
    char ctl[256];
    if (read_file(cg->unified, "cgroup.controllers", ctl, sizeof ctl) >= 0) {
        cg->v2_memory = has_word(ctl, "memory");
        cg->v2_pids = has_word(ctl, "pids");
    }
}

/* The v1 controller `name` mounted at /sys/fs/cgroup/<name>: our leaf in
 * it (0) or -errno. */
static int try_v1(const char *name, uint64_t id, char *out, size_t size)
{
    if (g_no_v1)
        return -ENOENT;
    return make_in(strcmp(name, "memory") == 0 ? H_MEMORY : H_PIDS, id, out, size);
}

void sbx_cgroup_warn_unlimited(const sbx_cgroup *cg, uint64_t memory_bytes, uint64_t max_pids,
                               char *warn, size_t warn_size, unsigned *n_warn)
{
    /* A v2 leaf without the controller: say so (the usual cause is a
     * hierarchy that does not delegate it to us). */
    if (memory_bytes != UINT64_MAX && !cg->memory_limited)
        sbx_warn_append(warn, warn_size, n_warn,
                        "memory: %s; enforced as RLIMIT_AS (address space, not resident memory)",
                        cg->v2 && !cg->v2_memory
                            ? "the cgroup v2 leaf has no memory controller and no v1 memory cgroup is writable"
                            : "no writable memory cgroup");
    if (max_pids != UINT64_MAX && !cg->pids_limited)
        sbx_warn_append(warn, warn_size, n_warn,
                        "processes: %s; enforced as RLIMIT_NPROC (counts every process of the outside uid)",
                        cg->v2 && !cg->v2_pids
                            ? "the cgroup v2 leaf has no pids controller and no v1 pids cgroup is writable"
                            : "no writable pids cgroup");
}

void sbx_cgroup_create(sbx_cgroup *cg, uint64_t id, uint64_t memory_bytes, uint64_t max_pids,
                       char *warn, size_t warn_size, unsigned *n_warn)
{
    memset(cg, 0, sizeof *cg);
    char num[32];
    try_v2(cg, id);
    /* Each limit where it can be enforced: the v2 leaf's controller, else
     * the v1 controller (a hybrid machine: controllers bound to v1). The
     * v1 hierarchies are used only without a v2 leaf, or for a limit it
     * cannot take. */
    bool v1_memory = !cg->v2 || (memory_bytes != UINT64_MAX && !cg->v2_memory);
    bool v1_pids = !cg->v2 || (max_pids != UINT64_MAX && !cg->v2_pids);
    if (cg->v2_memory && memory_bytes != UINT64_MAX) {
        snprintf(num, sizeof num, "%" PRIu64, memory_bytes);
        cg->memory_limited = write_file(cg->unified, "memory.max", num) == 0;
        (void)write_file(cg->unified, "memory.swap.max", "0");
        (void)write_file(cg->unified, "memory.oom.group", "1");
    }
    if (cg->v2_pids && max_pids != UINT64_MAX) {
        snprintf(num, sizeof num, "%" PRIu64, max_pids);
        cg->pids_limited = write_file(cg->unified, "pids.max", num) == 0;
    }
    if (v1_memory && try_v1("memory", id, cg->memory, sizeof cg->memory) == 0 &&
        memory_bytes != UINT64_MAX) {
        snprintf(num, sizeof num, "%" PRIu64, memory_bytes);
        cg->memory_limited = write_file(cg->memory, "memory.limit_in_bytes", num) == 0;
        /* Swap must not extend the limit (memsw exists only with swap accounting). */
        (void)write_file(cg->memory, "memory.memsw.limit_in_bytes", num);
        (void)write_file(cg->memory, "memory.swappiness", "0");
    }
    if (v1_pids && try_v1("pids", id, cg->pids, sizeof cg->pids) == 0 && max_pids != UINT64_MAX) {
        snprintf(num, sizeof num, "%" PRIu64, max_pids);
        cg->pids_limited = write_file(cg->pids, "pids.max", num) == 0;
    }
    sbx_cgroup_warn_unlimited(cg, memory_bytes, max_pids, warn, warn_size, n_warn);
}

int sbx_cgroup_attach(const sbx_cgroup *cg, pid_t pid)
{
    char num[32];
    snprintf(num, sizeof num, "%d", (int)pid);
    if (cg->unified[0]) {
        int r = write_file(cg->unified, "cgroup.procs", num);
        if (r < 0)
            return r;
    }
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
    /* A v2 leaf is joined by the broker (sbx_cgroup_attach), together with
     * any v1 leaves of a hybrid machine. */
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
    bool v2 = cg->v2_memory;
    const char *dir = v2 ? cg->unified : cg->memory;
    if (!dir[0])
        return 0;
    char buf[1024];
    if (read_file(dir, v2 ? "memory.events" : "memory.oom_control", buf, sizeof buf) < 0)
        return 0;
    const char *k = strstr(buf, "oom_kill ");
    if (!k)
        return 0;
    return strtoull(k + strlen("oom_kill "), NULL, 10);
}

int sbx_cgroup_oom_eventfd(const sbx_cgroup *cg)
{
    if (cg->v2_memory)
        return -EOPNOTSUPP; /* v2: memory.events is polled with inotify; not used here */
    if (!cg->memory[0])
        return -ENOENT;
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

/* v2: until `populated 0` in cgroup.events (the kernel notifies a change
 * with POLLPRI), at most ~2 s. */
static void wait_unpopulated(const char *dir)
{
    char path[SBX_CGROUP_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cgroup.events", dir);
    SBX_AUTOCLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < 20; i++) {
        char buf[256];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n < 0)
            return;
        buf[n] = '\0';
        if (strstr(buf, "populated 0"))
            return;
        struct pollfd p = { .fd = fd, .events = POLLPRI };
        (void)poll(&p, 1, 100);
    }
}

void sbx_cgroup_destroy(sbx_cgroup *cg)
{
    if (cg->unified[0]) {
        /* Whatever is left dies at once (Linux >= 5.14); the leaf can go
         * when the kernel says it is empty. */
        if (write_file(cg->unified, "cgroup.kill", "1") < 0)
            kill_procs(cg->unified);
        wait_unpopulated(cg->unified);
    }
    remove_dir(cg->unified);
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
    char dir[SBX_CGROUP_PATH_MAX + 64];
    if (g_v2_root) {
        snprintf(dir, sizeof dir, "%s/sbx/%d", g_v2_root, (int)getpid());
        (void)rmdir(dir);
    }
    for (size_t i = 0; i < SBX_ARRAY_SIZE(roots); i++) {
        char own[256];
        if (own_cgroup(roots[i][1], own, sizeof own) < 0)
            continue;
        snprintf(dir, sizeof dir, "%s%s/sbx/%d", roots[i][0], own, (int)getpid());
        (void)rmdir(dir);
    }
}

/* A leaf name we make: "<id>-<seq>". */
static bool is_leaf_name(const char *n)
{
    char *end;
    if (!*n || *n < '0' || *n > '9')
        return false;
    (void)strtoull(n, &end, 10);
    if (*end != '-' || end[1] < '0' || end[1] > '9')
        return false;
    (void)strtoull(end + 1, &end, 10);
    return *end == '\0';
}

/* Under `sbxdir` (<our cgroup>/sbx): the per-broker directories of dead
 * processes and their leaves. rmdir only: a leaf still holding a process
 * stays (EBUSY), and so does its parent. */
static void reap_stale_in(const char *sbxdir)
{
    DIR *d = opendir(sbxdir);
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d));) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive (or not ours to signal): maybe a broker */
        char bdir[SBX_CGROUP_PATH_MAX + 32];
        if (snprintf(bdir, sizeof bdir, "%s/%s", sbxdir, de->d_name) >= (int)sizeof bdir)
            continue;
        /* No such pid here, but maybe in another pid namespace: a live
         * broker holds its directory locked (hold_broker_dir). Ours is
         * held until the directory is gone. */
        int lfd = open(bdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (lfd < 0)
            continue;
        if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
            close(lfd);
            continue;
        }
        DIR *l = fdopendir(dup(lfd));
        for (struct dirent *le; l && (le = readdir(l));) {
            if (!is_leaf_name(le->d_name))
                continue;
            char leaf[SBX_CGROUP_PATH_MAX + 64];
            if (snprintf(leaf, sizeof leaf, "%s/%s", bdir, le->d_name) < (int)sizeof leaf)
                (void)rmdir(leaf);
        }
        if (l)
            closedir(l);
        (void)rmdir(bdir);
        close(lfd);
    }
    closedir(d);
}

void sbx_cgroup_reap_stale(void)
{
    static const char *const roots[][2] = { { "/sys/fs/cgroup/memory", "memory" },
                                            { "/sys/fs/cgroup/pids", "pids" },
                                            { "/sys/fs/cgroup", "" } };
    char dir[SBX_CGROUP_PATH_MAX + 16];
    if (g_v2_root) {
        snprintf(dir, sizeof dir, "%s/sbx", g_v2_root);
        reap_stale_in(dir);
    }
    for (size_t i = 0; i < SBX_ARRAY_SIZE(roots); i++) {
        char own[256];
        if ((i < 2 && g_no_v1) || own_cgroup(roots[i][1], own, sizeof own) < 0)
            continue;
        snprintf(dir, sizeof dir, "%s%s/sbx", roots[i][0], own);
        reap_stale_in(dir);
    }
}
