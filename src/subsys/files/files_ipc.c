/* sbx — files subsystem: broker-side IPC services for the trap backend
 * (see files_ipc.h). */
#include "subsys/files/files_ipc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "subsys/files/files_syscalls.h"

/* What /proc/<pid>/task/<t>/status says about one thread. */
typedef struct thread_status {
    pid_t ns_tid; /* the innermost NSpid: the tid the thread itself sees */
    sbx_files_creds creds;
} thread_status;

static int parse_status(int task_fd, thread_status *ts)
{
    SBX_AUTOCLOSE int fd = openat(task_fd, "status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_neg_errno();
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return -ESRCH;
    buf[n] = '\0';
    memset(ts, 0, sizeof *ts);
    ts->creds.umask = 022;
    bool have_ns = false, have_uid = false, have_gid = false;
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        unsigned a, b, c, d;
        if (strncmp(line, "NSpid:", 6) == 0) {
            char *p = line + 6, *end;
            for (;;) {
                unsigned long v = strtoul(p, &end, 10);
                if (end == p)
                    break;
                ts->ns_tid = (pid_t)v;
                have_ns = true;
                p = end;
            }
        } else if (sscanf(line, "Uid: %u %u %u %u", &a, &b, &c, &d) == 4) {
            ts->creds.fsuid = d;
            have_uid = true;
        } else if (sscanf(line, "Gid: %u %u %u %u", &a, &b, &c, &d) == 4) {
            ts->creds.fsgid = d;
            have_gid = true;
        } else if (sscanf(line, "Umask: %o", &a) == 1) {
            ts->creds.umask = (mode_t)(a & 0777);
        } else if (strncmp(line, "Groups:", 7) == 0) {
            char *p = line + 7, *end;
            for (;;) {
                unsigned long g = strtoul(p, &end, 10);
                if (end == p)
                    break;
                if (ts->creds.ngroups == SBX_FILES_MAX_GROUPS)
                    return -E2BIG; /* cannot represent: refuse rather than drop groups */
                ts->creds.groups[ts->creds.ngroups++] = (gid_t)g;
                p = end;
            }
        }
        line = next;
    }
    return have_ns && have_uid && have_gid ? 0 : -ESRCH;
}

/* Look among the threads of process `pid` for the one that calls itself
 * `tid`; append pid's children (from each thread's "children") to
 * queue[*n..cap). */
static int scan_process(pid_t pid, pid_t tid, sbx_files_task *task, thread_status *ts,
                        pid_t *queue, size_t *n, size_t cap)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -ESRCH;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -ESRCH;
    }
    int r = -ESRCH;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int tfd = openat(dirfd(d), e->d_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (tfd < 0)
            continue;
        if (parse_status(tfd, ts) == 0 && ts->ns_tid == tid) {
            task->proc_fd = tfd;
            task->pid = pid;
            task->tid = (pid_t)strtol(e->d_name, NULL, 10);
            r = 0;
            break;
        }
        int cfd = openat(tfd, "children", O_RDONLY | O_CLOEXEC);
        close(tfd);
        if (cfd < 0)
            continue;
        char buf[1024];
        ssize_t len = read(cfd, buf, sizeof buf - 1);
        close(cfd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        for (char *p = buf, *end;; p = end) {
            long c = strtol(p, &end, 10);
            if (end == p)
                break;
            if (c > 0 && *n < cap)
                queue[(*n)++] = (pid_t)c;
        }
    }
    closedir(d);
    return r;
}

/* Find the thread that calls itself `tid` (its own pid namespace's
 * number) among the target's processes: `pid` (the broker's record, never
 * the target's word) and its descendants (the program under the target's
 * init, its forks), and open its /proc/<p>/task/<t>. Only the target's own
 * threads are candidates, so a target that lies about its tid reaches
 * nothing but another of its own threads' cwd — which changes only the
 * canonical path the broker then decides on. Bounded: at most
 * SCAN_MAX processes are looked at. */
#define SCAN_MAX 256
static int find_thread(pid_t pid, pid_t tid, sbx_files_task *task, thread_status *ts)
{
    if (tid <= 0)
        return -ESRCH;
    pid_t queue[SCAN_MAX];
    size_t n = 0;
    queue[n++] = pid;
    for (size_t i = 0; i < n; i++)
        if (scan_process(queue[i], tid, task, ts, queue, &n, SCAN_MAX) == 0)
            return 0;
    return -ESRCH;
}

void sbx_files_ipc_memo_init(sbx_files_ipc_memo *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    for (size_t i = 0; i < SBX_FILES_IPC_MEMO_SIZE; i++)
        m->e[i].task_fd = -1;
}

void sbx_files_ipc_memo_destroy(sbx_files_ipc_memo *m)
{
    for (size_t i = 0; i < SBX_FILES_IPC_MEMO_SIZE; i++)
        sbx_close_keep_errno(m->e[i].task_fd);
    pthread_mutex_destroy(&m->lock);
}

/* A live memo entry for tid: *task gets a dup of its /proc fd. */
static bool memo_find(sbx_files_ipc_memo *m, pid_t tid, sbx_files_task *task, thread_status *ts)
{
    bool hit = false;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < SBX_FILES_IPC_MEMO_SIZE && !hit; i++) {
        sbx_files_ipc_memo_entry *e = &m->e[i];
        if (e->ns_tid != tid || e->task_fd < 0)
            continue;
        if (faccessat(e->task_fd, "cwd", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
            /* gone (or exec'd into another tid): forget it */
            sbx_close_keep_errno(e->task_fd);
            e->task_fd = -1;
            e->ns_tid = 0;
            break;
        }
        int fd = fcntl(e->task_fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            break;
        *task = (sbx_files_task){ .proc_fd = fd, .pid = e->pid, .tid = e->tid };
        ts->ns_tid = tid;
        ts->creds = e->creds;
        hit = true;
    }
    pthread_mutex_unlock(&m->lock);
    return hit;
}

static void memo_put(sbx_files_ipc_memo *m, pid_t tid, const sbx_files_task *task,
                     const thread_status *ts)
{
    int fd = fcntl(task->proc_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return;
    pthread_mutex_lock(&m->lock);
    size_t slot = SBX_FILES_IPC_MEMO_SIZE;
    for (size_t i = 0; i < SBX_FILES_IPC_MEMO_SIZE && slot == SBX_FILES_IPC_MEMO_SIZE; i++)
        if (m->e[i].ns_tid == tid || m->e[i].task_fd < 0)
            slot = i;
    if (slot == SBX_FILES_IPC_MEMO_SIZE)
        slot = m->next++ % SBX_FILES_IPC_MEMO_SIZE;
    sbx_files_ipc_memo_entry *e = &m->e[slot];
    sbx_close_keep_errno(e->task_fd);
    *e = (sbx_files_ipc_memo_entry){ .ns_tid = tid, .pid = task->pid, .tid = task->tid,
                                     .task_fd = fd, .creds = ts->creds };
    pthread_mutex_unlock(&m->lock);
}

/* Calls that create an object need the umask of the moment. */
static bool creates(const sbx_files_call *c)
{
    return (c->op == SBX_FILES_CALL_OPEN && (c->flags & (O_CREAT | __O_TMPFILE))) ||
           c->op == SBX_FILES_CALL_MKDIR;
}

static int as_dirfd(uint64_t v)
{
    int fd = (int)(int32_t)(uint32_t)v; /* the kernel reads dirfd as an int */
    return fd == AT_FDCWD ? SBX_FILES_AT_FDCWD : fd;
}

/* Rebuild the call from the typed arguments. Returns 0 or -errno. */
static int build_call(uint32_t tag, const sbx_files_syscall *sc, uint32_t flags, uint32_t mode,
                      sbx_files_call *c, int *dirfd, bool *at_cwd)
{
    c->op = sc->op;
    c->syscall = sc->name;
    c->follow = true;
    *at_cwd = false;
    switch (sc->nr) {
    case SYS_open:
    case SYS_creat:
    case SYS_access:
    case SYS_mkdir:
    case SYS_unlink:
    case SYS_rmdir:
        *at_cwd = true; /* no dirfd argument: whatever the target sent, the cwd */
        break;
    default:
        break;
    }
    if (*at_cwd)
        *dirfd = SBX_FILES_AT_FDCWD;
    if (tag == SBX_FILES_IPC_TAG_OPEN) {
        if (sc->op != SBX_FILES_CALL_OPEN)
            return -EINVAL;
        c->flags = sc->nr == SYS_creat ? (O_CREAT | O_WRONLY | O_TRUNC) : (int)flags;
        if (mode & ~07777u)
            return -EINVAL;
        c->mode = (mode_t)mode;
        return 0;
    }
    switch (sc->op) {
    case SBX_FILES_CALL_ACCESS:
        if (flags & ~(uint32_t)(R_OK | W_OK | X_OK))
            return -EINVAL;
        c->flags = (int)flags;
        return 0;
    case SBX_FILES_CALL_MKDIR:
        c->mode = (mode_t)(mode & 07777u);
        return 0;
    case SBX_FILES_CALL_UNLINK:
        if (sc->nr == SYS_unlinkat) {
            if (flags & ~(uint32_t)AT_REMOVEDIR)
                return -EINVAL;
            if (flags & AT_REMOVEDIR)
                c->op = SBX_FILES_CALL_RMDIR;
        }
        return 0;
    case SBX_FILES_CALL_RMDIR:
        return 0;
    default:
        return -ENOSYS; /* not served over IPC yet: stat, readlink, rename, ... */
    }
}

static void answer(sbx_ipc_info *info, sbx_files_result *res)
{
    switch (res->kind) {
    case SBX_FILES_RES_FD:
        sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_FD);
        sbx_ipc_info_set_fd(info, sbx_steal_fd(&res->fd));
        return;
    case SBX_FILES_RES_CONTINUE:
        sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_NATIVE);
        return;
    case SBX_FILES_RES_KILL: /* the audit hook kills the target; it gets a denial meanwhile */
        sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_ERROR);
        sbx_ipc_info_set_status(info, EACCES);
        return;
    case SBX_FILES_RES_VALUE:
        break;
    }
    if (res->value < 0) {
        sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_ERROR);
        sbx_ipc_info_set_status(info, (int)-res->value);
    } else {
        sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_VALUE);
        sbx_ipc_info_set_ext(info, 1, (uint64_t)res->value);
    }
}

/* Both tags. The target controls every argument: nr must be a BROKERED
 * table entry that this tag serves; tid only selects one of the target's
 * own threads (found under /proc/<pid>/task, pid being the broker's
 * record, never the target's word); the path is a private NUL-free copy
 * made by the IPC layer and is resolved here against that thread's
 * cwd/dirfd and canonicalised (files_path) before the policy sees it;
 * flag words with unknown bits are EINVAL. The decision comes from the
 * dispatcher's decide function on the broker's private policy copy: what
 * the target pre-checked does not matter. An error answer travels in the
 * status (outcome stays 0) so the target can tell it from a broken IPC. */
static int files_ipc_handler(sbx_ipc_info *info, const sbx_arg *args)
{
    const sbx_files_ipc_target *t = sbx_ipc_info_target_ctx(info);
    sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_ERROR);
    if (!t || !t->files || t->pid <= 0) {
        sbx_ipc_info_set_status(info, ENOSYS);
        return 0;
    }
    uint32_t tag = sbx_ipc_info_tag(info);
    const sbx_files_syscall *sc = sbx_files_syscall_find((int)args[0].v.u32);
    if (!sc || sc->kind != SBX_FILES_SC_BROKERED || args[0].v.u32 > INT32_MAX) {
        sbx_ipc_info_set_status(info, ENOSYS);
        return 0;
    }
    sbx_files_call call;
    memset(&call, 0, sizeof call);
    int dirfd = as_dirfd(args[2].v.handle);
    bool at_cwd;
    int r = build_call(tag, sc, args[4].v.u32, args[5].v.u32, &call, &dirfd, &at_cwd);
    if (r < 0) {
        sbx_ipc_info_set_status(info, -r);
        return 0;
    }
    sbx_files_task task = { .proc_fd = -1 };
    thread_status ts;
    pid_t tid = (pid_t)args[1].v.u32;
    bool memo = t->memo && !creates(&call) && tid > 0;
    if (!memo || !memo_find(t->memo, tid, &task, &ts)) {
        if ((r = find_thread(t->pid, tid, &task, &ts)) < 0) {
            sbx_ipc_info_set_status(info, -r);
            return 0;
        }
        if (t->memo)
            memo_put(t->memo, tid, &task, &ts);
    }
    SBX_AUTOCLOSE int task_fd = task.proc_fd;
    SBX_AUTOCLOSE int root_fd = -1;
    if (!t->landlock) {
        /* Native calls are then performed inside the target's own view. */
        char root[64];
        snprintf(root, sizeof root, "/proc/%d/root", (int)task.pid);
        root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    static _Thread_local char path[SBX_FILES_PATH_MAX];
    size_t len = args[3].v.str.len;
    if (len == 0) {
        sbx_ipc_info_set_status(info, ENOENT);
        return 0;
    }
    r = sbx_files_resolve(&task, dirfd, args[3].v.str.ptr, len, path, sizeof path);
    if (r < 0) {
        sbx_ipc_info_set_status(info, -r);
        return 0;
    }
    call.path = path;
    call.pid = task.pid; /* the calling thread's process: t->pid or a descendant */
    call.target_root_fd = root_fd;
    call.landlock = t->landlock;
    call.creds = t->target_creds ? &ts.creds : NULL;
    call.umask = ts.creds.umask;
    static _Thread_local sbx_files_result res;
    sbx_files_dispatch(t->files, &call, &res);
    answer(info, &res);
    return 0;
}

int sbx_files_ipc_register(sbx_ipc_dispatcher *d)
{
    static const uint32_t tags[] = { SBX_FILES_IPC_TAG_OPEN, SBX_FILES_IPC_TAG_PATH };
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        sbx_ipc_service svc = {
            .tag = tags[i],
            .subsystem = "files",
            .nparams = 6,
            .params = { SBX_ARG_U32, SBX_ARG_U32, SBX_ARG_HANDLE, SBX_ARG_STRING, SBX_ARG_U32,
                        SBX_ARG_U32 },
            .handler = files_ipc_handler,
        };
        int r = sbx_ipc_dispatcher_register(d, &svc);
        if (r < 0)
            return r;
    }
    return 0;
}
