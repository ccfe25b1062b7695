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

/* What /proc/<pid>/task/<t>/status says about one thread (files_path.h). */
typedef sbx_files_proc_status thread_status;

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
        if (sbx_files_proc_status_read(tfd, ts) == 0 && ts->ns_tid == tid) {
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
        m->e[i].task_fd = m->e[i].pidfd = m->e[i].root_fd = -1;
}

static void memo_forget(sbx_files_ipc_memo_entry *e)
{
    sbx_close_keep_errno(e->task_fd);
    sbx_close_keep_errno(e->pidfd);
    sbx_close_keep_errno(e->root_fd);
    *e = (sbx_files_ipc_memo_entry){ .task_fd = -1, .pidfd = -1, .root_fd = -1 };
}

void sbx_files_ipc_memo_destroy(sbx_files_ipc_memo *m)
{
    for (size_t i = 0; i < SBX_FILES_IPC_MEMO_SIZE; i++)
        memo_forget(&m->e[i]);
    pthread_mutex_destroy(&m->lock);
}

/* Only the groups in use: nothing reads past ngroups, and the entry's
 * whole array is four more cache lines per call. */
static void creds_copy(sbx_files_creds *to, const sbx_files_creds *from)
{
    size_t n = from->ngroups < SBX_FILES_MAX_GROUPS ? from->ngroups : SBX_FILES_MAX_GROUPS;
    memcpy(to, from, offsetof(sbx_files_creds, groups) + n * sizeof from->groups[0]);
}

/* A live memo entry for tid: *task gets a dup of its /proc fd if need_fd,
 * else proc_fd -1 (an absolute path needs only the ids and the pid).
 * root (may be NULL): a dup of the entry's root fd, -1 if it has none yet
 * (then the task fd is given too, to open it from). */
static bool memo_find(sbx_files_ipc_memo *m, pid_t tid, bool need_fd, int *root,
                      sbx_files_task *task, thread_status *ts)
{
    bool hit = false;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < SBX_FILES_IPC_MEMO_SIZE && !hit; i++) {
        sbx_files_ipc_memo_entry *e = &m->e[i];
        if (e->ns_tid != tid || e->task_fd < 0)
            continue;
        if (!sbx_files_pidfd_alive(e->pidfd)) {
            memo_forget(e); /* gone: a new thread with this tid is looked up afresh */
            break;
        }
        int rfd = root && e->root_fd >= 0 ? fcntl(e->root_fd, F_DUPFD_CLOEXEC, 0) : -1;
        if (root && e->root_fd >= 0 && rfd < 0)
            break;
        need_fd = need_fd || (root && rfd < 0);
        int fd = need_fd ? fcntl(e->task_fd, F_DUPFD_CLOEXEC, 0) : -1;
        if (need_fd && fd < 0) {
            sbx_close_keep_errno(rfd);
            break;
        }
        if (root)
            *root = rfd;
        *task = (sbx_files_task){ .proc_fd = fd, .pid = e->pid, .tid = e->tid };
        ts->ns_tid = tid;
        creds_copy(&ts->creds, &e->creds);
        hit = true;
    }
    pthread_mutex_unlock(&m->lock);
    return hit;
}

static void memo_put(sbx_files_ipc_memo *m, pid_t tid, const sbx_files_task *task,
                     const thread_status *ts)
{
    /* The scan's /proc entry must still be live once the pidfd exists:
     * then both name the same thread (had it died before pidfd_open, a
     * new thread could hold its tid, but the old entry fails lookups). No
     * pidfd, no entry. */
    int pidfd = sbx_files_thread_pidfd(task->tid);
    if (pidfd < 0)
        return;
    if (faccessat(task->proc_fd, "cwd", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
        close(pidfd);
        return;
    }
    int fd = fcntl(task->proc_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        close(pidfd);
        return;
    }
    pthread_mutex_lock(&m->lock);
    size_t slot = SBX_FILES_IPC_MEMO_SIZE;
    for (size_t i = 0; i < SBX_FILES_IPC_MEMO_SIZE && slot == SBX_FILES_IPC_MEMO_SIZE; i++)
        if (m->e[i].ns_tid == tid || m->e[i].task_fd < 0)
            slot = i;
    if (slot == SBX_FILES_IPC_MEMO_SIZE)
        slot = m->next++ % SBX_FILES_IPC_MEMO_SIZE;
    sbx_files_ipc_memo_entry *e = &m->e[slot];
    memo_forget(e);
    *e = (sbx_files_ipc_memo_entry){ .ns_tid = tid, .pid = task->pid, .tid = task->tid,
                                     .task_fd = fd, .pidfd = pidfd, .root_fd = -1,
                                     .creds = ts->creds };
    pthread_mutex_unlock(&m->lock);
}

/* Keep a dup of root_fd in tid's entry, if it is still the thread that
 * task names and has none yet. */
static void memo_put_root(sbx_files_ipc_memo *m, pid_t tid, const sbx_files_task *task,
                          int root_fd)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < SBX_FILES_IPC_MEMO_SIZE; i++) {
        sbx_files_ipc_memo_entry *e = &m->e[i];
        if (e->ns_tid == tid && e->task_fd >= 0 && e->tid == task->tid && e->pid == task->pid &&
            e->root_fd < 0) {
            e->root_fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
            break;
        }
    }
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

#ifndef AT_STATX_SYNC_TYPE
#define AT_STATX_SYNC_TYPE 0x6000
#endif
#define TIMES_SIZE (2 * sizeof(struct timespec))

uint32_t sbx_files_ipc_tag_for(int nr)
{
    switch (nr) {
    case SYS_open:
    case SYS_openat:
    case SYS_openat2:
    case SYS_creat:
        return SBX_FILES_IPC_TAG_OPEN;
    case SYS_access:
    case SYS_faccessat:
    case SYS_faccessat2:
    case SYS_mkdir:
    case SYS_mkdirat:
    case SYS_unlink:
    case SYS_unlinkat:
    case SYS_rmdir:
    case SYS_chmod:
    case SYS_fchmodat:
    case SBX_FILES_SYS_FCHMODAT2:
        return SBX_FILES_IPC_TAG_PATH;
    case SYS_stat:
    case SYS_lstat:
    case SYS_newfstatat:
    case SYS_statx:
    case SYS_readlink:
    case SYS_readlinkat:
    case SYS_truncate:
    case SYS_utimensat:
        return SBX_FILES_IPC_TAG_ATTR;
    case SYS_rename:
    case SYS_renameat:
    case SYS_renameat2:
        return SBX_FILES_IPC_TAG_RENAME;
    case SYS_chdir:
        return SBX_FILES_IPC_TAG_CHDIR;
    case SYS_getcwd:
        return SBX_FILES_IPC_TAG_GETCWD;
    default:
        return 0;
    }
}

/* Calls without a dirfd argument: whatever the target sent, the cwd. */
static bool at_cwd_only(int nr)
{
    switch (nr) {
    case SYS_open:
    case SYS_creat:
    case SYS_access:
    case SYS_mkdir:
    case SYS_unlink:
    case SYS_rmdir:
    case SYS_chmod:
    case SYS_stat:
    case SYS_lstat:
    case SYS_readlink:
    case SYS_truncate:
    case SYS_rename:
    case SYS_chdir:
        return true;
    default:
        return false;
    }
}

/* The common head of every tag: a target context, and nr (args[0]) a
 * BROKERED table entry that this tag serves. NULL with the status set
 * otherwise: ENOSYS for what no tag serves, EINVAL for a tag that does not
 * serve this call. */
static const sbx_files_syscall *entry_for(sbx_ipc_info *info, const sbx_arg *args,
                                          const sbx_files_ipc_target **t)
{
    sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_ERROR);
    *t = sbx_ipc_info_target_ctx(info);
    if (!*t || !(*t)->files || (*t)->pid <= 0) {
        sbx_ipc_info_set_status(info, ENOSYS);
        return NULL;
    }
    uint32_t nr = args[0].v.u32;
    const sbx_files_syscall *sc = nr > INT32_MAX ? NULL : sbx_files_syscall_find((int)nr);
    uint32_t tag = sc && sc->kind == SBX_FILES_SC_BROKERED ? sbx_files_ipc_tag_for(sc->nr) : 0;
    if (!tag) {
        sbx_ipc_info_set_status(info, ENOSYS);
        return NULL;
    }
    if (tag != sbx_ipc_info_tag(info)) {
        sbx_ipc_info_set_status(info, EINVAL);
        return NULL;
    }
    return sc;
}

/* The calling thread as the broker found it, and its root for native
 * calls performed by the broker (no Landlock). Owns both fds. */
typedef struct caller {
    sbx_files_task task;
    thread_status st;
    int root_fd;
    bool no_native; /* never answer NATIVE for this call (see run_in_view) */
} caller;

/* The calling thread's root, through its own /proc entry (the live task,
 * never a pid's later owner); read as the broker, like all of /proc. */
static int open_task_root(const caller *c)
{
    sbx_files_creds_drop();
    if (c->task.proc_fd >= 0)
        return openat(c->task.proc_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    char root[64]; /* no task fd (an absolute path needed none): the memo checked the pid */
    snprintf(root, sizeof root, "/proc/%d/root", (int)c->task.pid);
    return open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

static void caller_done(caller *c)
{
    sbx_close_keep_errno(c->task.proc_fd);
    sbx_close_keep_errno(c->root_fd);
}

/* Does resolving this path argument read the thread's /proc entries (its
 * cwd, a dirfd, /proc/self however spelled — "//proc", "/x/../proc" —,
 * the fd itself for "")? Anything under /proc once canonical counts. */
static bool needs_task(const sbx_arg *path)
{
    const char *p = path->v.str.ptr;
    if (path->v.str.len == 0 || p[0] != '/')
        return true;
    if (!strstr(p, "proc"))
        return false;
    char canon[SBX_FILES_PATH_MAX];
    int n = sbx_files_path_canon(p, path->v.str.len, canon, sizeof canon);
    return n < 0 || (strncmp(canon, "/proc", 5) == 0 && (canon[5] == '\0' || canon[5] == '/'));
}

/* `fresh`: the call creates something and needs the umask of the moment
 * (the memo is bypassed). `need_fd`: c->task.proc_fd is used (needs_task);
 * otherwise a memo hit leaves it -1. */
static int caller_find(const sbx_files_ipc_target *t, uint32_t ns_tid, bool fresh, bool need_fd,
                       caller *c)
{
    pid_t tid = (pid_t)ns_tid;
    bool memo = t->memo && !fresh && tid > 0;
    if (!memo || !memo_find(t->memo, tid, need_fd, t->landlock ? NULL : &c->root_fd, &c->task,
                            &c->st)) {
        sbx_files_creds_drop(); /* /proc is read as the broker */
        int r = find_thread(t->pid, tid, &c->task, &c->st);
        if (r < 0)
            return r;
        if (t->memo)
            memo_put(t->memo, tid, &c->task, &c->st);
    }
    if (!t->landlock && c->root_fd < 0) {
        /* Native calls are then performed inside the target's own view:
         * its root, through the thread's own /proc entry (the live task,
         * never a pid's later owner), kept in the memo entry (a target
         * cannot change its root: no capability in its namespace). */
        c->root_fd = open_task_root(c);
        if (c->root_fd >= 0 && t->memo)
            memo_put_root(t->memo, tid, &c->task, c->root_fd);
    }
    return 0;
}

/* Resolve a path argument (a private NUL-free copy) against the caller's
 * cwd / dirfd into out (SBX_FILES_PATH_MAX bytes); task: needs_task(a). */
static int resolve_arg(const caller *c, int dirfd, const sbx_arg *a, bool task, char *out)
{
    if (a->v.str.len == 0)
        return -ENOENT;
    /* A relative path is resolved through the thread's /proc entries and
     * the broker's own namespace, /proc/self through /proc: as the broker. */
    if (task)
        sbx_files_creds_drop();
    int r = sbx_files_resolve(&c->task, dirfd, a->v.str.ptr, a->v.str.len, out, SBX_FILES_PATH_MAX);
    return r < 0 ? r : 0;
}

/* Fill in who calls and run the one dispatcher. */
static sbx_files_result *run(const sbx_files_ipc_target *t, caller *c, sbx_files_call *call)
{
    /* chmod and utimensat are never left to the kernel (files_dispatcher.c). */
    if (c->root_fd < 0 && (call->op == SBX_FILES_CALL_CHMOD || call->op == SBX_FILES_CALL_UTIMENS))
        c->root_fd = open_task_root(c);
    call->pid = c->task.pid; /* the calling thread's process: t->pid or a descendant */
    call->target_root_fd = c->root_fd;
    call->landlock = t->landlock && !c->no_native;
    call->creds = t->target_creds ? &c->st.creds : NULL;
    call->umask = c->st.creds.umask;
    /* The pool thread stays in the target's identity after an operation:
     * the next call of the same target switches nothing (stable
     * credentials; the identity is read back every time). A call that
     * performs nothing (NATIVE, refused) reads nothing. */
    call->keep_creds = true;
    static _Thread_local sbx_files_result res; /* large: off the stack */
    sbx_files_dispatch(t->files, call, &res);
    return &res;
}

/* run(), except that a NATIVE answer for a path relative to a base
 * outside the target's view (its cwd after a brokered chdir, a brokered
 * dirfd; bases[0..n) are the dirfds the call's relative paths start from)
 * is never given: the kernel in the target would resolve it in the
 * broker's tree, not in the view the decision was about. The call is
 * decided again and performed inside the target's root instead. */
static sbx_files_result *run_in_view(const sbx_files_ipc_target *t, caller *c, sbx_files_call *call,
                                     const int *bases, size_t n)
{
    sbx_files_result *res = run(t, c, call);
    if (res->kind != SBX_FILES_RES_CONTINUE || n == 0)
        return res;
    const sbx_files_view_mounts *m = NULL;
    sbx_files_creds_drop(); /* /proc is read as the broker */
    if (t->memo) {
        pthread_mutex_lock(&t->memo->lock);
        if (t->memo->mounts_state == 0)
            t->memo->mounts_state =
                sbx_files_view_mounts_read(c->task.proc_fd, &t->memo->mounts) == 0 ? 1 : -1;
        if (t->memo->mounts_state > 0)
            m = &t->memo->mounts; /* immutable from now on */
        pthread_mutex_unlock(&t->memo->lock);
    }
    for (size_t i = 0; i < n; i++) {
        static _Thread_local char base[SBX_FILES_PATH_MAX];
        if (m ? sbx_files_task_dir_on_mounts(&c->task, bases[i], m)
              : (sbx_files_task_dir_path(&c->task, bases[i], base, sizeof base) >= 0 &&
                 sbx_files_task_dir_in_view(&c->task, bases[i], base)))
            continue;
        c->no_native = true;
        if (c->root_fd < 0)
            c->root_fd = open_task_root(c);
        return run(t, c, call);
    }
    return res;
}

static bool relative(const sbx_arg *a)
{
    return a->v.str.len > 0 && a->v.str.ptr[0] != '/';
}

/* Does the base (dirfd or cwd) of this one-path call decide whether a
 * NATIVE answer may be given? For a relative path, always. For a call
 * Landlock does not check, an absolute path's too: the handler's native
 * re-issue makes the kernel read the string again, and a racing thread may
 * have made it relative meanwhile (sbx_files_call_landlock_checked). */
static size_t base_counts(const sbx_files_call *call, const sbx_arg *path)
{
    return relative(path) || !sbx_files_call_landlock_checked(call);
}

static int fail(sbx_ipc_info *info, int neg)
{
    sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_ERROR);
    sbx_ipc_info_set_status(info, -neg);
    return 0;
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

/* ---- TAG_OPEN and TAG_PATH ---- */

/* Rebuild an OPEN / PATH call from flags and mode. Returns 0 or -errno. */
static int build_path_call(uint32_t tag, const sbx_files_syscall *sc, uint32_t flags,
                           uint32_t mode, sbx_files_call *c)
{
    c->op = sc->op;
    c->syscall = sc->name;
    c->follow = true;
    if (tag == SBX_FILES_IPC_TAG_OPEN) {
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
        /* faccessat2's AT flags travel in mode; the others have none. */
        if (sc->nr != SYS_faccessat2 ? mode != 0
                                     : (mode & ~(uint32_t)(AT_EACCESS | AT_SYMLINK_NOFOLLOW)))
            return -EINVAL;
        c->follow = !(mode & AT_SYMLINK_NOFOLLOW);
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
    case SBX_FILES_CALL_CHDIR:
        /* Served only by TAG_CHDIR, whose handler makes the fd its cwd. */
        if (tag != SBX_FILES_IPC_TAG_CHDIR || flags || mode)
            return -EINVAL;
        c->chdir_fd = true;
        return 0;
    case SBX_FILES_CALL_CHMOD:
        /* Only fchmodat2 has flags; "" with AT_EMPTY_PATH is fchmod of an
         * fd, which is native (fchmod(2)) and never brokered. */
        if (sc->nr != SBX_FILES_SYS_FCHMODAT2 ? flags != 0
                                              : (flags & ~(uint32_t)(AT_SYMLINK_NOFOLLOW |
                                                                     AT_EMPTY_PATH)))
            return -EINVAL;
        c->follow = !(flags & AT_SYMLINK_NOFOLLOW);
        c->mode = (mode_t)mode; /* files_ops refuses anything past 0777 */
        return 0;
    default:
        return -EINVAL;
    }
}

/* TAG_OPEN, TAG_PATH and TAG_CHDIR: (u32 nr, u32 tid, handle dirfd, string
 * path, u32 flags, u32 mode). The target controls every argument: nr must be a
 * BROKERED table entry that this tag serves; tid only selects one of the
 * target's own threads (found under /proc/<pid>/task, pid being the
 * broker's record, never the target's word); the path is a private
 * NUL-free copy made by the IPC layer and is resolved here against that
 * thread's cwd/dirfd and canonicalised (files_path) before the policy
 * sees it; flag words with unknown bits are EINVAL. The decision comes
 * from the dispatcher's decide function on the broker's private policy
 * copy: what the target pre-checked does not matter. An error answer
 * travels in the status (outcome stays 0) so the target can tell it from
 * a broken IPC. TAG_CHDIR (chdir only, flags and mode 0) is decided like
 * opening the directory for reading and answers an O_PATH fd of exactly
 * the directory matched: safe, since the handler only fchdir()s into it,
 * where the kernel checks search permission as the target; it grants no
 * reading. */
static int files_ipc_handler(sbx_ipc_info *info, const sbx_arg *args)
{
    const sbx_files_ipc_target *t;
    const sbx_files_syscall *sc = entry_for(info, args, &t);
    if (!sc)
        return 0;
    sbx_files_call call;
    memset(&call, 0, sizeof call);
    int dirfd = at_cwd_only(sc->nr) ? SBX_FILES_AT_FDCWD : as_dirfd(args[2].v.handle);
    int r = build_path_call(sbx_ipc_info_tag(info), sc, args[4].v.u32, args[5].v.u32, &call);
    if (r < 0)
        return fail(info, r);
    SBX_CLEANUP(caller_done) caller c = { .task = { .proc_fd = -1 }, .root_fd = -1 };
    bool task = needs_task(&args[3]);
    if ((r = caller_find(t, args[1].v.u32, creates(&call), task, &c)) < 0)
        return fail(info, r);
    if (call.op == SBX_FILES_CALL_CHMOD && args[3].v.str.len == 0 &&
        (args[4].v.u32 & AT_EMPTY_PATH))
        return fail(info, -EPERM); /* fchmod of an fd is native (fchmod(2)), never brokered */
    static _Thread_local char path[SBX_FILES_PATH_MAX];
    if ((r = resolve_arg(&c, dirfd, &args[3], task, path)) < 0)
        return fail(info, r);
    call.path = path;
    answer(info, run_in_view(t, &c, &call, &dirfd, base_counts(&call, &args[3])));
    return 0;
}

/* ---- TAG_GETCWD ---- */

/* TAG_GETCWD: (u32 nr, u32 tid, inout buf), for a target whose handler
 * cannot issue getcwd natively. The target controls the tid (one of its
 * own threads) and the buffer size (1..PATH_MAX). Checked: the cwd's name
 * as the broker reads it must lead back to the same directory (a removed
 * cwd is ENOENT, as the kernel says); a buffer too short for the name
 * and its NUL is ERANGE. Safe: the target learns the name of a directory
 * it already holds — the view's name for a view directory, the broker's
 * (the policy's) for a brokered one. */
static int files_ipc_getcwd_handler(sbx_ipc_info *info, const sbx_arg *args)
{
    const sbx_files_ipc_target *t;
    const sbx_files_syscall *sc = entry_for(info, args, &t);
    if (!sc)
        return 0;
    char *buf = args[2].v.buf.ptr;
    size_t size = args[2].v.buf.size;
    if (size == 0 || size > SBX_FILES_PATH_MAX)
        return fail(info, -EINVAL);
    SBX_CLEANUP(caller_done) caller c = { .task = { .proc_fd = -1 }, .root_fd = -1 };
    int r = caller_find(t, args[1].v.u32, false, true, &c);
    if (r < 0)
        return fail(info, r);
    sbx_files_creds_drop(); /* /proc is read as the broker */
    static _Thread_local char cwd[SBX_FILES_PATH_MAX];
    int n = sbx_files_task_dir_path(&c.task, SBX_FILES_AT_FDCWD, cwd, sizeof cwd);
    if (n < 0)
        return fail(info, n == -ENAMETOOLONG ? n : -ENOENT);
    if ((size_t)n + 1 > size)
        return fail(info, -ERANGE);
    memcpy(buf, cwd, (size_t)n + 1);
    sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_VALUE);
    sbx_ipc_info_set_ext(info, 1, (uint64_t)n + 1);
    return 0;
}

/* ---- TAG_ATTR ---- */

/* stat / statx of an fd the calling thread holds (or of its cwd) for
 * AT_EMPTY_PATH with "". The target controls the fd number only.
 * Checked: the fd exists in the calling thread's table (through its /proc
 * task fd, the broker's own). Safe: no path is resolved, so no policy
 * applies: the target already holds the object, and only its metadata is
 * returned (as the notify backend does). */
static int fd_stat(const caller *c, int dirfd, const sbx_files_call *call, void *out)
{
    char link[SBX_FILES_TASK_LINK_MAX];
    if (sbx_files_task_link(dirfd, link) < 0)
        return -EBADF;
    sbx_files_creds_drop();
    SBX_AUTOCLOSE int fd = openat(c->task.proc_fd, link, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -EBADF : sbx_neg_errno();
    if (call->op == SBX_FILES_CALL_STATX) {
        if (statx(fd, "", AT_EMPTY_PATH | call->flags, call->mask, out) < 0)
            return sbx_neg_errno();
    } else if (fstat(fd, out) < 0) {
        return sbx_neg_errno();
    }
    return 0;
}

/* Rebuild an ATTR call; *out_size is the exact in/out buffer size the
 * call needs (the buffer must be that size; readlink: 1..PATH_MAX), and
 * *empty_ok whether "" names the dirfd itself. Returns 0 or -errno. */
static int build_attr_call(const sbx_files_syscall *sc, uint32_t flags, uint32_t mode,
                           uint64_t value, size_t bufsize, sbx_files_call *c, bool *empty_ok)
{
    c->op = sc->op;
    c->syscall = sc->name;
    c->follow = true;
    *empty_ok = false;
    int at = (int)flags;
    switch (sc->nr) {
    case SYS_stat:
    case SYS_lstat:
        if (flags || mode || value || bufsize != sizeof(struct stat))
            return -EINVAL;
        c->follow = sc->nr == SYS_stat;
        return 0;
    case SYS_newfstatat:
        if ((at & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT)) || mode || value ||
            bufsize != sizeof(struct stat))
            return -EINVAL;
        c->follow = !(at & AT_SYMLINK_NOFOLLOW);
        *empty_ok = (at & AT_EMPTY_PATH) != 0;
        return 0;
    case SYS_statx:
        if ((at & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE)) ||
            (at & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE || (mode & STATX__RESERVED) ||
            value || bufsize != sizeof(struct statx))
            return -EINVAL;
        c->follow = !(at & AT_SYMLINK_NOFOLLOW);
        c->flags = at & AT_STATX_SYNC_TYPE;
        c->mask = mode;
        *empty_ok = (at & AT_EMPTY_PATH) != 0;
        return 0;
    case SYS_readlink:
    case SYS_readlinkat:
        if (flags || mode || value || bufsize == 0 || bufsize > SBX_FILES_PATH_MAX)
            return -EINVAL;
        return 0;
    case SYS_truncate:
        if (flags || mode || value > INT64_MAX || bufsize)
            return -EINVAL;
        c->length = (long long)value;
        return 0;
    case SYS_utimensat:
        if ((at & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) || mode || value ||
            (bufsize && bufsize != TIMES_SIZE))
            return -EINVAL;
        c->follow = !(at & AT_SYMLINK_NOFOLLOW);
        c->times_now = bufsize == 0; /* times NULL: now */
        *empty_ok = (at & AT_EMPTY_PATH) != 0;
        return 0;
    default:
        return -EINVAL;
    }
}

/* TAG_ATTR: (u32 nr, u32 tid, handle dirfd, string path, u32 flags,
 * u32 mode, u64 value, inout buf) for the stat family, readlink, truncate
 * and utimensat. The target controls every argument. Checked as the other
 * tags (nr served by this tag, tid among the target's threads, the path
 * resolved and canonicalised here), plus: flags are the call's AT_* word
 * with no unknown bit, mode is statx's mask (reserved bits refused),
 * value is truncate's length (negative refused), and the buffer has
 * exactly the size the call needs (struct stat, struct statx, two
 * timespecs for utimensat; readlink 1..PATH_MAX): anything else is EINVAL
 * before any lookup. The buffer is the broker's private copy; a result is
 * written into it only after the dispatcher performed an allowed call
 * (stat: the whole struct; readlink: min(link length, size) bytes and
 * that count as the value, no NUL, as the kernel truncates), and the IPC
 * layer copies it back only on success. Safe: the same decision and
 * operation as the notify backend on a canonical path; the only other
 * thing returned is metadata of an fd the target already holds. */
static int files_ipc_attr_handler(sbx_ipc_info *info, const sbx_arg *args)
{
    const sbx_files_ipc_target *t;
    const sbx_files_syscall *sc = entry_for(info, args, &t);
    if (!sc)
        return 0;
    sbx_files_call call;
    memset(&call, 0, sizeof call);
    int dirfd = at_cwd_only(sc->nr) ? SBX_FILES_AT_FDCWD : as_dirfd(args[2].v.handle);
    void *buf = args[7].v.buf.ptr;
    size_t size = args[7].v.buf.size;
    bool empty_ok;
    int r = build_attr_call(sc, args[4].v.u32, args[5].v.u32, args[6].v.u64, size, &call,
                            &empty_ok);
    if (r < 0)
        return fail(info, r);
    if (call.op == SBX_FILES_CALL_UTIMENS && !call.times_now)
        memcpy(call.times, buf, TIMES_SIZE);
    SBX_CLEANUP(caller_done) caller c = { .task = { .proc_fd = -1 }, .root_fd = -1 };
    bool task = needs_task(&args[3]);
    if ((r = caller_find(t, args[1].v.u32, false, task, &c)) < 0)
        return fail(info, r);
    if (args[3].v.str.len == 0 && empty_ok) {
        if (call.op == SBX_FILES_CALL_UTIMENS)
            return fail(info, -EPERM); /* futimens of an fd is native, never brokered */
        /* Not NATIVE: the target's notify filter would send the re-issue
         * back to the broker anyway (stat is not Landlock-mediated). */
        if ((r = fd_stat(&c, dirfd, &call, buf)) < 0)
            return fail(info, r);
        sbx_ipc_info_set_ext(info, 0, SBX_FILES_IPC_RES_VALUE);
        sbx_ipc_info_set_ext(info, 1, 0);
        return 0;
    }
    static _Thread_local char path[SBX_FILES_PATH_MAX];
    if ((r = resolve_arg(&c, dirfd, &args[3], task, path)) < 0)
        return fail(info, r);
    call.path = path;
    sbx_files_result *res = run_in_view(t, &c, &call, &dirfd, base_counts(&call, &args[3]));
    if (res->kind == SBX_FILES_RES_VALUE && res->value >= 0) {
        if (res->has_stat) {
            memcpy(buf, &res->st, sizeof res->st);
        } else if (res->has_statx) {
            memcpy(buf, &res->stx, sizeof res->stx);
        } else if (call.op == SBX_FILES_CALL_READLINK) {
            size_t n = res->link_len < size ? res->link_len : size;
            memcpy(buf, res->link, n);
            res->value = (long)n;
        }
    }
    answer(info, res);
    return 0;
}

/* ---- TAG_RENAME ---- */

/* TAG_RENAME: (u32 nr, u32 tid, handle olddirfd, string oldpath,
 * handle newdirfd, string newpath, u32 flags). The target controls both
 * paths, both dirfds and the flags. Checked: nr is rename, renameat or
 * renameat2 (flags must be 0 for the first two; renameat2's are checked by
 * files_ops: RENAME_WHITEOUT and unknown bits are EINVAL), both paths are
 * non-empty and each is resolved against ITS dirfd (or the calling
 * thread's cwd) and canonicalised; the dispatcher then decides on both
 * (each needs a write grant, and both must get the same kind of answer)
 * before anything moves. Safe: a refusal on either side moves nothing,
 * and the rename acts on two pinned parent fds, so a racing rename can
 * only make it fail. */
static int files_ipc_rename_handler(sbx_ipc_info *info, const sbx_arg *args)
{
    const sbx_files_ipc_target *t;
    const sbx_files_syscall *sc = entry_for(info, args, &t);
    if (!sc)
        return 0;
    uint32_t flags = args[6].v.u32;
    if (sc->nr != SYS_renameat2 && flags)
        return fail(info, -EINVAL);
    bool cwd = at_cwd_only(sc->nr);
    int dirfd1 = cwd ? SBX_FILES_AT_FDCWD : as_dirfd(args[2].v.handle);
    int dirfd2 = cwd ? SBX_FILES_AT_FDCWD : as_dirfd(args[4].v.handle);
    SBX_CLEANUP(caller_done) caller c = { .task = { .proc_fd = -1 }, .root_fd = -1 };
    bool task1 = needs_task(&args[3]), task2 = needs_task(&args[5]);
    int r = caller_find(t, args[1].v.u32, false, task1 || task2, &c);
    if (r < 0)
        return fail(info, r);
    static _Thread_local char path[2][SBX_FILES_PATH_MAX];
    if ((r = resolve_arg(&c, dirfd1, &args[3], task1, path[0])) < 0 ||
        (r = resolve_arg(&c, dirfd2, &args[5], task2, path[1])) < 0)
        return fail(info, r);
    sbx_files_call call;
    memset(&call, 0, sizeof call);
    call.op = SBX_FILES_CALL_RENAME;
    call.syscall = sc->name;
    call.path = path[0];
    call.path2 = path[1];
    call.flags = (int)flags;
    call.follow = true;
    int bases[2];
    size_t nb = 0;
    if (relative(&args[3]))
        bases[nb++] = dirfd1;
    if (relative(&args[5]))
        bases[nb++] = dirfd2;
    answer(info, run_in_view(t, &c, &call, bases, nb));
    return 0;
}

int sbx_files_ipc_register(sbx_ipc_dispatcher *d)
{
    static const sbx_ipc_service svcs[] = {
        { .tag = SBX_FILES_IPC_TAG_OPEN, .subsystem = "files", .nparams = 6,
          .params = { SBX_ARG_U32, SBX_ARG_U32, SBX_ARG_HANDLE, SBX_ARG_STRING, SBX_ARG_U32,
                      SBX_ARG_U32 },
          .handler = files_ipc_handler },
        { .tag = SBX_FILES_IPC_TAG_PATH, .subsystem = "files", .nparams = 6,
          .params = { SBX_ARG_U32, SBX_ARG_U32, SBX_ARG_HANDLE, SBX_ARG_STRING, SBX_ARG_U32,
                      SBX_ARG_U32 },
          .handler = files_ipc_handler },
        { .tag = SBX_FILES_IPC_TAG_ATTR, .subsystem = "files", .nparams = 8,
          .params = { SBX_ARG_U32, SBX_ARG_U32, SBX_ARG_HANDLE, SBX_ARG_STRING, SBX_ARG_U32,
                      SBX_ARG_U32, SBX_ARG_U64, SBX_ARG_INOUT },
          .handler = files_ipc_attr_handler },
        { .tag = SBX_FILES_IPC_TAG_RENAME, .subsystem = "files", .nparams = 7,
          .params = { SBX_ARG_U32, SBX_ARG_U32, SBX_ARG_HANDLE, SBX_ARG_STRING, SBX_ARG_HANDLE,
                      SBX_ARG_STRING, SBX_ARG_U32 },
          .handler = files_ipc_rename_handler },
        { .tag = SBX_FILES_IPC_TAG_CHDIR, .subsystem = "files", .nparams = 6,
          .params = { SBX_ARG_U32, SBX_ARG_U32, SBX_ARG_HANDLE, SBX_ARG_STRING, SBX_ARG_U32,
                      SBX_ARG_U32 },
          .handler = files_ipc_handler },
        { .tag = SBX_FILES_IPC_TAG_GETCWD, .subsystem = "files", .nparams = 3,
          .params = { SBX_ARG_U32, SBX_ARG_U32, SBX_ARG_INOUT },
          .handler = files_ipc_getcwd_handler },
    };
    for (size_t i = 0; i < sizeof svcs / sizeof svcs[0]; i++) {
        int r = sbx_ipc_dispatcher_register(d, &svcs[i]);
        if (r < 0)
            return r;
    }
    return 0;
}
