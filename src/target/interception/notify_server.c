/* sbx — notify backend: the broker-side loop (see notify.h).
 *
 * Everything read from the target — syscall arguments, the strings and
 * structs they point to, its cwd, fds and status — is hostile input: it is
 * copied once into this loop's private buffers and only the copies are
 * looked at. The target's memory may change at any moment after the copy;
 * that can only change what it asked for, never what the broker decided on. */
#include "target/interception/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/kcmp.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/fd.h"
#include "base/log.h"
#include "subsys/files/files_ops.h"
#include "subsys/files/files_syscalls.h"

#ifndef AT_STATX_SYNC_TYPE
#define AT_STATX_SYNC_TYPE 0x6000
#endif
#define OPEN_HOW_MAX 4096 /* largest struct open_how we accept (bytes) */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#define TASK_CACHE 16     /* target threads whose /proc fds are kept open */
#define PATH_FIRST_READ 512 /* bytes of a path copied by the first read */

/* A target thread's broker-side handles, kept between notifications. The
 * pidfd says whether the thread still lives: while it does, no other task
 * can carry its tid, so the cached /proc/<tid> fd is the notifier's. */
typedef struct task_slot {
    pid_t tid; /* 0: empty */
    pid_t tgid;
    int pidfd;
    int proc_fd;
    int root_fd; /* /proc/<tid>/root, for native calls without Landlock; -1 */
    uint64_t last_use;
    sbx_files_creds creds; /* as read when the slot was made (cfg->stable_creds) */
} task_slot;

typedef struct notify_state {
    const sbx_notify_config *cfg;
    struct seccomp_notif *req;
    struct seccomp_notif_resp *resp;
    size_t req_size, resp_size;
    long page;
    sbx_files_result res; /* large: kept off the stack */
    char p1[SBX_FILES_PATH_MAX], p2[SBX_FILES_PATH_MAX];
    char raw[SBX_FILES_PATH_MAX];
    task_slot tasks[TASK_CACHE];
    uint64_t tick;
    /* The dirfds (or the cwd) that this call's relative paths start from. */
    int rel_base[2];
    size_t n_rel;
    int any_base[2]; /* every path argument's base, absolute paths' too */
    size_t n_any;
    uint32_t fs_seq; /* last fs peer request */
    int mounts_state; /* 0: not read yet, 1: `mounts` holds the target's, -1: unavailable */
    sbx_files_view_mounts mounts;
} notify_state;

/* What a decoded call wants back besides the return value. */
typedef struct decoded {
    sbx_files_call call;
    int out_kind; /* 0 none, 1 struct stat, 2 struct statx, 3 readlink text */
    uint64_t out_addr;
    size_t out_size;
    bool cloexec;
    bool fd_stat; /* AT_EMPTY_PATH on an fd: stat the target's own fd */
    int fd_stat_fd;
} decoded;

/* ---- target memory ---- */

/* Copy a NUL-terminated string of at most cap-1 bytes from the target.
 * Reads never cross a page boundary in one go, so a string ending just
 * before an unmapped page is read; a string that runs into one is -EFAULT
 * (the kernel would fault too), one without a NUL in cap bytes is
 * -ENAMETOOLONG. */
static int read_string(const notify_state *s, pid_t pid, uint64_t addr, char *buf, size_t cap,
                       size_t *len)
{
    if (addr == 0)
        return -EFAULT;
    size_t got = 0;
    size_t page = (size_t)s->page;
    while (got < cap) {
        uint64_t at = addr + got;
        if (at < addr)
            return -EFAULT; /* wrapped */
        size_t chunk = page - (size_t)(at % page);
        /* Most paths are short: the first read copies at most
         * PATH_FIRST_READ bytes, not up to a whole page. */
        if (got == 0 && chunk > PATH_FIRST_READ)
            chunk = PATH_FIRST_READ;
        if (chunk > cap - got)
            chunk = cap - got;
        struct iovec l = { buf + got, chunk };
        struct iovec r = { (void *)(uintptr_t)at, chunk };
        ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
        if (n < 0)
            return errno == ESRCH ? -ESRCH : -EFAULT;
        if (n == 0)
            return -EFAULT;
        char *nul = memchr(buf + got, '\0', (size_t)n);
        if (nul) {
            *len = (size_t)(nul - buf);
            return 0;
        }
        got += (size_t)n;
        if ((size_t)n < chunk)
            return -EFAULT; /* partial read: the rest is not there */
    }
    return -ENAMETOOLONG;
}

static int read_mem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
    struct iovec l = { buf, len };
    struct iovec r = { (void *)(uintptr_t)addr, len };
    ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
    return n == (ssize_t)len ? 0 : -EFAULT;
}

static int write_mem(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
    if (addr == 0)
        return -EFAULT;
    struct iovec l = { (void *)(uintptr_t)buf, len };
    struct iovec r = { (void *)(uintptr_t)addr, len };
    ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);
    return n == (ssize_t)len ? 0 : -EFAULT;
}

/* ---- target state from /proc/<tid> ---- */

/* /proc/<tid>/status, read through the task's own proc fd (files_path.h). */
typedef sbx_files_proc_status task_info;

static void slot_clear(task_slot *t)
{
    sbx_close_keep_errno(t->pidfd);
    sbx_close_keep_errno(t->proc_fd);
    sbx_close_keep_errno(t->root_fd);
    memset(t, 0, sizeof *t);
    t->pidfd = t->proc_fd = t->root_fd = -1;
}

/* The broker-side handles of thread tid: cached while it lives. */
/* The server thread keeps the target's filesystem identity between calls
 * (sbx_files_creds_keep, as the files IPC does): the next call of the same
 * target switches nothing. Whatever reads /proc (task entries, links,
 * status, kcmp) or runs the embedder's code goes back to the broker's
 * identity first: with a non-root fsuid those checks fail. */
static void as_broker(void)
{
    sbx_files_creds_drop();
}

static task_slot *get_task(notify_state *s, pid_t tid, bool want_root)
{
    task_slot *t = NULL, *victim = &s->tasks[0];
    for (size_t i = 0; i < TASK_CACHE; i++) {
        task_slot *c = &s->tasks[i];
        if (c->tid == tid && c->tid != 0) {
            if (sbx_files_pidfd_alive(c->pidfd)) {
                t = c;
                break;
            }
            slot_clear(c);
        }
        if (c->tid == 0 || c->last_use < victim->last_use)
            victim = c;
    }
    if (!t) {
        as_broker();
        t = victim;
        slot_clear(t);
        /* pidfd first: if the thread dies before /proc/<tid> is opened, a
         * new task with its tid may be what we open, but the pidfd then
         * reads as exited and the slot is dropped on next use; the current
         * notification is from the dead thread and fails ID_VALID. */
        t->pidfd = sbx_files_thread_pidfd(tid);
        char pp[32];
        snprintf(pp, sizeof pp, "/proc/%d", (int)tid);
        t->proc_fd = open(pp, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (t->proc_fd < 0) {
            slot_clear(t);
            return NULL;
        }
        task_info ti;
        if (sbx_files_proc_status_read(t->proc_fd, &ti) < 0) {
            slot_clear(t);
            return NULL;
        }
        t->tgid = ti.tgid;
        t->creds = ti.creds;
        t->tid = tid;
    }
    if (want_root && t->root_fd < 0) {
        as_broker();
        t->root_fd = openat(t->proc_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    t->last_use = ++s->tick;
    return t;
}

/* ---- decoding ---- */

/* Read and resolve one path argument. */
static int get_path(notify_state *s, const sbx_files_task *task, int dirfd, uint64_t addr,
                    char *out, bool allow_empty, bool *empty)
{
    size_t len;
    int r = read_string(s, task->tid, addr, s->raw, sizeof s->raw, &len);
    if (r < 0)
        return r;
    if (empty)
        *empty = len == 0;
    if (len == 0)
        return allow_empty ? 0 : -ENOENT;
    if (s->raw[0] != '/' && s->n_rel < 2)
        s->rel_base[s->n_rel++] = dirfd;
    if (s->n_any < 2)
        s->any_base[s->n_any++] = dirfd;
    /* a relative path reads the cwd or dirfd link; /proc/self its status */
    if (s->raw[0] != '/' || memmem(s->raw, len, "proc", 4))
        as_broker();
    r = sbx_files_resolve(task, dirfd, s->raw, len, out, SBX_FILES_PATH_MAX);
    return r < 0 ? r : 0;
}

static int as_dirfd(uint64_t v)
{
    int fd = (int)(int32_t)(uint32_t)v; /* the kernel reads dirfd as int */
    return fd == AT_FDCWD ? SBX_FILES_AT_FDCWD : fd;
}

static int decode_openat2(notify_state *s, const sbx_files_task *task, const uint64_t *a,
                          decoded *d)
{
    size_t size = (size_t)a[3];
    if (size < sizeof(struct open_how))
        return -EINVAL;
    if (size > OPEN_HOW_MAX)
        return -E2BIG;
    unsigned char buf[OPEN_HOW_MAX];
    if (read_mem(task->tid, a[2], buf, size) < 0)
        return -EFAULT;
    for (size_t i = sizeof(struct open_how); i < size; i++)
        if (buf[i])
            return -E2BIG;
    struct open_how how;
    memcpy(&how, buf, sizeof how);
    if (how.flags >> 31)
        return -EINVAL;
    if (how.mode & ~07777ull)
        return -EINVAL;
    if (how.mode && !(how.flags & (O_CREAT | __O_TMPFILE)))
        return -EINVAL;
    if (how.resolve & ~(uint64_t)(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH |
                                  RESOLVE_CACHED))
        return -EINVAL; /* RESOLVE_IN_ROOT, RESOLVE_NO_XDEV: not supported through the broker */
    if (how.resolve & RESOLVE_CACHED)
        return -EAGAIN; /* callers retry without it */
    int dirfd = as_dirfd(a[0]);
    int r = get_path(s, task, dirfd, a[1], s->p1, false, NULL);
    if (r < 0)
        return r;
    if (how.resolve & RESOLVE_BENEATH) {
        char base[SBX_FILES_PATH_MAX];
        if (s->raw[0] == '/')
            return -EXDEV;
        as_broker();
        if ((r = sbx_files_task_dir_path(task, dirfd, base, sizeof base)) < 0)
            return r;
        if (!sbx_files_path_is_under(s->p1, base))
            return -EXDEV;
        d->call.no_symlinks = true; /* stricter than the kernel: no symlink at all */
    }
    if (how.resolve & RESOLVE_NO_SYMLINKS)
        d->call.no_symlinks = true;
    d->call.flags = (int)how.flags;
    d->call.mode = (mode_t)how.mode;
    return 0;
}

/* Decode one notification into d. Returns 0, or the -errno to answer.
 * The target controls every argument register and the memory they point
 * to. Checked here: flag words against the bits each call knows (unknown
 * bits are EINVAL, not ignored), sizes before any read, each path copied
 * once (read_string) and resolved against the calling thread's own cwd /
 * dirfd. Safe because nothing below ever looks at target memory again. */
static int decode(notify_state *s, const sbx_files_syscall *sc, const sbx_files_task *task,
                  decoded *d)
{
    const uint64_t *a = (const uint64_t *)s->req->data.args;
    sbx_files_call *c = &d->call;
    c->op = sc->op;
    c->syscall = sc->name;
    c->path = s->p1;
    c->follow = true;
    int r = 0;
    bool empty = false;
    int at = 0; /* AT_* flags of the call */
    switch (s->req->data.nr) {
    case SYS_open:
        c->flags = (int)a[1];
        c->mode = (mode_t)a[2];
        r = get_path(s, task, SBX_FILES_AT_FDCWD, a[0], s->p1, false, NULL);
        break;
    case SYS_openat:
        c->flags = (int)a[2];
        c->mode = (mode_t)a[3];
        r = get_path(s, task, as_dirfd(a[0]), a[1], s->p1, false, NULL);
        break;
    case SYS_openat2:
        r = decode_openat2(s, task, a, d);
        break;
    case SYS_creat:
        c->flags = O_CREAT | O_WRONLY | O_TRUNC;
        c->mode = (mode_t)a[1];
        r = get_path(s, task, SBX_FILES_AT_FDCWD, a[0], s->p1, false, NULL);
        break;
    case SYS_stat:
    case SYS_lstat:
        c->follow = s->req->data.nr == SYS_stat;
        d->out_kind = 1;
        d->out_addr = a[1];
        r = get_path(s, task, SBX_FILES_AT_FDCWD, a[0], s->p1, false, NULL);
        break;
    case SYS_newfstatat:
        at = (int)a[3];
        if (at & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT))
            return -EINVAL;
        c->follow = !(at & AT_SYMLINK_NOFOLLOW);
        d->out_kind = 1;
        d->out_addr = a[2];
        r = get_path(s, task, as_dirfd(a[0]), a[1], s->p1, at & AT_EMPTY_PATH, &empty);
        break;
    case SYS_statx:
        at = (int)a[2];
        if (at & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE))
            return -EINVAL;
        if ((at & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE)
            return -EINVAL;
        if ((unsigned)a[3] & STATX__RESERVED)
            return -EINVAL;
        c->follow = !(at & AT_SYMLINK_NOFOLLOW);
        c->flags = at & AT_STATX_SYNC_TYPE;
        c->mask = (unsigned)a[3];
        d->out_kind = 2;
        d->out_addr = a[4];
        if (a[1] == 0 && (at & AT_EMPTY_PATH)) {
            empty = true; /* statx(fd, NULL, AT_EMPTY_PATH) */
            break;
        }
        r = get_path(s, task, as_dirfd(a[0]), a[1], s->p1, at & AT_EMPTY_PATH, &empty);
        break;
    case SYS_access:
        c->flags = (int)a[1];
        r = get_path(s, task, SBX_FILES_AT_FDCWD, a[0], s->p1, false, NULL);
        break;
    case SYS_faccessat:
    case SYS_faccessat2:
        c->flags = (int)a[2];
        if (s->req->data.nr == SYS_faccessat2) {
            at = (int)a[3];
            if (at & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
                return -EINVAL;
            c->follow = !(at & AT_SYMLINK_NOFOLLOW);
        }
        r = get_path(s, task, as_dirfd(a[0]), a[1], s->p1, false, NULL);
        break;
    case SYS_readlink:
    case SYS_readlinkat: {
        bool plain = s->req->data.nr == SYS_readlink;
        int64_t size = (int32_t)(plain ? a[2] : a[3]);
        if (size <= 0)
            return -EINVAL;
        d->out_kind = 3;
        d->out_addr = plain ? a[1] : a[2];
        d->out_size = (size_t)size;
        r = get_path(s, task, plain ? SBX_FILES_AT_FDCWD : as_dirfd(a[0]), plain ? a[0] : a[1],
                     s->p1, false, NULL);
        break;
    }
    case SYS_rename:
    case SYS_renameat:
    case SYS_renameat2: {
        bool plain = s->req->data.nr == SYS_rename;
        c->path2 = s->p2;
        c->flags = s->req->data.nr == SYS_renameat2 ? (int)a[4] : 0;
        r = get_path(s, task, plain ? SBX_FILES_AT_FDCWD : as_dirfd(a[0]), plain ? a[0] : a[1],
                     s->p1, false, NULL);
        if (r == 0)
            r = get_path(s, task, plain ? SBX_FILES_AT_FDCWD : as_dirfd(a[2]), plain ? a[1] : a[3],
                         s->p2, false, NULL);
        break;
    }
    case SYS_mkdir:
        c->mode = (mode_t)a[1];
        r = get_path(s, task, SBX_FILES_AT_FDCWD, a[0], s->p1, false, NULL);
        break;
    case SYS_mkdirat:
        c->mode = (mode_t)a[2];
        r = get_path(s, task, as_dirfd(a[0]), a[1], s->p1, false, NULL);
        break;
    case SYS_unlink:
    case SYS_rmdir:
        r = get_path(s, task, SBX_FILES_AT_FDCWD, a[0], s->p1, false, NULL);
        break;
    case SYS_unlinkat:
        if ((int)a[2] & ~AT_REMOVEDIR)
            return -EINVAL;
        if ((int)a[2] & AT_REMOVEDIR)
            c->op = SBX_FILES_CALL_RMDIR;
        r = get_path(s, task, as_dirfd(a[0]), a[1], s->p1, false, NULL);
        break;
    case SYS_chdir:
        r = get_path(s, task, SBX_FILES_AT_FDCWD, a[0], s->p1, false, NULL);
        break;
    case SYS_chmod:
        c->mode = (mode_t)a[1];
        r = get_path(s, task, SBX_FILES_AT_FDCWD, a[0], s->p1, false, NULL);
        break;
    case SYS_fchmodat:
    case 452: /* fchmodat2 */
        c->mode = (mode_t)a[2];
        at = s->req->data.nr == 452 ? (int)a[3] : 0;
        if (at & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
            return -EINVAL;
        c->follow = !(at & AT_SYMLINK_NOFOLLOW);
        r = get_path(s, task, as_dirfd(a[0]), a[1], s->p1, at & AT_EMPTY_PATH, &empty);
        if (r == 0 && empty)
            return -EPERM; /* "" + AT_EMPTY_PATH: fchmod of an fd is fchmod(2), native */
        break;
    case SYS_truncate:
        c->length = (long long)a[1];
        if (c->length < 0)
            return -EINVAL;
        r = get_path(s, task, SBX_FILES_AT_FDCWD, a[0], s->p1, false, NULL);
        break;
    case SYS_utimensat:
        at = (int)a[3];
        if (at & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
            return -EINVAL;
        c->follow = !(at & AT_SYMLINK_NOFOLLOW);
        if (a[2] == 0) {
            c->times_now = true;
        } else if (read_mem(task->tid, a[2], c->times, sizeof c->times) < 0) {
            return -EFAULT;
        }
        r = get_path(s, task, as_dirfd(a[0]), a[1], s->p1, at & AT_EMPTY_PATH, &empty);
        if (r == 0 && empty)
            return -EPERM; /* "" + AT_EMPTY_PATH on an fd: not brokered (futimens is native) */
        break;
    default:
        return -ENOSYS;
    }
    if (r < 0)
        return r;
    if (empty) {
        /* An empty path with AT_EMPTY_PATH: the call is about the fd itself. */
        d->fd_stat = true;
        d->fd_stat_fd = as_dirfd(a[0]);
    }
    if (c->op == SBX_FILES_CALL_OPEN)
        d->cloexec = (c->flags & O_CLOEXEC) != 0;
    return 0;
}

/* stat of the target's own fd (or cwd) for AT_EMPTY_PATH with "". The
 * target controls the fd number only. Checked: the fd exists in the
 * calling thread's table (through its /proc fd). Safe: no path is
 * resolved, so no policy applies — the target already holds the object,
 * and only its metadata is returned. */
static int fd_stat(const sbx_files_task *task, const decoded *d, sbx_files_result *res)
{
    char link[32];
    if (d->fd_stat_fd == SBX_FILES_AT_FDCWD)
        snprintf(link, sizeof link, "cwd");
    else if (d->fd_stat_fd < 0)
        return -EBADF;
    else
        snprintf(link, sizeof link, "fd/%d", d->fd_stat_fd);
    as_broker();
    SBX_AUTOCLOSE int fd = openat(task->proc_fd, link, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -EBADF : sbx_neg_errno();
    if (d->out_kind == 2) {
        if (statx(fd, "", AT_EMPTY_PATH | d->call.flags, d->call.mask, &res->stx) < 0)
            return sbx_neg_errno();
        res->has_statx = true;
    } else {
        if (fstat(fd, &res->st) < 0)
            return sbx_neg_errno();
        res->has_stat = true;
    }
    return 0;
}

/* ---- answers ---- */

static int respond(notify_state *s, int64_t val, int error, uint32_t flags)
{
    memset(s->resp, 0, s->resp_size);
    s->resp->id = s->req->id;
    s->resp->val = val;
    s->resp->error = error;
    s->resp->flags = flags;
    if (ioctl(s->cfg->listener_fd, SECCOMP_IOCTL_NOTIF_SEND, s->resp) < 0 && errno != ENOENT)
        return sbx_neg_errno();
    return 0; /* ENOENT: the target died or was interrupted meanwhile */
}

static int respond_value(notify_state *s, long v)
{
    return v < 0 ? respond(s, 0, (int)v, 0) : respond(s, v, 0, 0);
}

static bool still_valid(notify_state *s)
{
    uint64_t id = s->req->id;
    return ioctl(s->cfg->listener_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

static void kill_target(notify_state *s, pid_t tgid)
{
    int pfd = (int)syscall(SYS_pidfd_open, tgid, 0);
    if (pfd < 0)
        return;
    /* The pidfd pins the process; the notification still pending proves it
     * is the caller and not a reused pid. */
    if (still_valid(s))
        (void)syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
    close(pfd);
}

/* ---- brokered chdir and getcwd ---- */

/* Does thread tid share the fs peer's fs_struct (cwd, root, umask)? The
 * program does (init forks it with CLONE_FS); its own forks do not, and
 * must never get the peer's — the program's — cwd changed on their
 * behalf. kcmp needs ptrace read access to both tasks: a broker without
 * CAP_SYS_PTRACE over init (unprivileged: init's mm is the broker's user
 * namespace's, and init is not dumpable) compares tid with the program
 * instead, which shares init's fs_struct unless it unshared CLONE_FS
 * itself; in that case only init's cwd (and that of the program's other
 * threads that kept it: the same process) moves, and the check of the
 * caller's cwd after the change refuses the call. */
static bool shares_fs_with_peer(const notify_state *s, pid_t tid)
{
    if (s->cfg->fs_peer_pid <= 0)
        return false;
    as_broker();
    long r = syscall(SYS_kcmp, s->cfg->fs_peer_pid, tid, KCMP_FS, 0, 0);
    if (r < 0 && errno == EPERM && s->cfg->fs_peer_prog > 0)
        r = syscall(SYS_kcmp, s->cfg->fs_peer_prog, tid, KCMP_FS, 0, 0);
    return r == 0;
}

static bool same_object(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Make dir (an O_PATH fd of the directory the policy allowed) the cwd of
 * the caller, through the fs peer that shares its fs_struct: the peer
 * fchdir()s (the kernel's own search-permission check, with the target's
 * ids) and reports the result. Then the caller's cwd must be that
 * directory (a thread that unshared its fs_struct meanwhile would be
 * told a success that did not happen). Returns 0 or -errno. */
static int chdir_through_peer(notify_state *s, const sbx_files_task *task, int dir)
{
    int sock = s->cfg->fs_peer_fd;
    sbx_notify_fs_msg m = { .type = SBX_NOTIFY_FS_CHDIR, .seq = ++s->fs_seq };
    if (sbx_send_fds(sock, &m, sizeof m, &dir, 1, 0) < 0)
        return -EIO;
    /* The peer is our own code in the target's init; a bounded wait all
     * the same (an answer to an earlier, timed-out request is skipped). */
    for (;;) {
        struct pollfd p = { .fd = sock, .events = POLLIN };
        int n = poll(&p, 1, 2000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || !(p.revents & POLLIN))
            return -EIO;
        sbx_notify_fs_msg a;
        ssize_t k = recv(sock, &a, sizeof a, MSG_DONTWAIT);
        if (k != (ssize_t)sizeof a || a.type != SBX_NOTIFY_FS_DONE)
            return -EIO;
        if (a.seq != m.seq)
            continue;
        if (a.err)
            return a.err > 0 && a.err < 4096 ? -a.err : -EIO;
        break;
    }
    as_broker();
    SBX_AUTOCLOSE int cwd = openat(task->proc_fd, "cwd", O_PATH | O_CLOEXEC);
    if (cwd < 0 || !same_object(cwd, dir))
        return -EACCES;
    return 0;
}

int sbx_notify_fs_peer_answer(int sock)
{
    sbx_notify_fs_msg m = { 0 };
    char cbuf[CMSG_SPACE(4 * sizeof(int))];
    struct iovec iov = { .iov_base = &m, .iov_len = sizeof m };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof cbuf };
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    if (n == 0)
        return -EPIPE;
    int fds[4], nfd = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && nfd < 4; i++)
                memcpy(&fds[nfd++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    sbx_notify_fs_msg a = { .type = SBX_NOTIFY_FS_DONE, .seq = m.seq, .err = EINVAL };
    if (n == (ssize_t)sizeof m && m.type == SBX_NOTIFY_FS_CHDIR && nfd == 1 &&
        !(mh.msg_flags & MSG_CTRUNC))
        a.err = fchdir(fds[0]) == 0 ? 0 : errno;
    for (int i = 0; i < nfd; i++)
        close(fds[i]);
    if (send(sock, &a, sizeof a, MSG_NOSIGNAL) < 0)
        return -errno;
    return 0;
}

/* getcwd(buf, size) of the calling thread, answered by the broker: the
 * kernel in the target would print a cwd outside its view (a brokered
 * chdir) as "(unreachable)/...", which libc turns into ENOENT. The target
 * controls buf and size only. Checked: the name of its cwd (as the broker
 * reads it, which is the name in the view for a view directory and the
 * broker's name, the one its policy uses, for a brokered one) must lead
 * back to the same directory — a removed cwd is ENOENT, as the kernel
 * says; a buffer shorter than the name and its NUL is ERANGE. Safe: the
 * target learns the name of a directory it already holds. */
static int handle_getcwd(notify_state *s, const sbx_files_task *task)
{
    const uint64_t *a = (const uint64_t *)s->req->data.args;
    as_broker();
    int n = sbx_files_task_dir_path(task, SBX_FILES_AT_FDCWD, s->p1, sizeof s->p1);
    if (n < 0 && n != -ENAMETOOLONG)
        n = -ENOENT;
    if (!still_valid(s))
        return 0;
    if (n < 0)
        return respond(s, 0, n, 0);
    size_t need = (size_t)n + 1;
    if (a[1] < need)
        return respond(s, 0, -ERANGE, 0);
    int r = write_mem(task->tid, a[0], s->p1, need);
    return r < 0 ? respond(s, 0, r, 0) : respond(s, (int64_t)need, 0, 0);
}

/* The dispatcher answered CONTINUE (a native-view call under Landlock).
 * For a path relative to a base outside the target's view (its cwd after
 * a brokered chdir, a brokered dirfd) the kernel would resolve it in the
 * broker's tree, not in the view the decision was about: decide and
 * perform it again inside the target's root instead. */
static bool base_outside_view(notify_state *s, const sbx_files_task *task, const int *bases,
                              size_t n)
{
    as_broker();
    if (s->mounts_state == 0)
        s->mounts_state = sbx_files_view_mounts_read(task->proc_fd, &s->mounts) == 0 ? 1 : -1;
    for (size_t i = 0; i < n; i++) {
        if (s->mounts_state > 0) {
            /* one statx: is the base on one of the target's own mounts? */
            if (!sbx_files_task_dir_on_mounts(task, bases[i], &s->mounts))
                return true;
            continue;
        }
        char base[SBX_FILES_PATH_MAX];
        if (sbx_files_task_dir_path(task, bases[i], base, sizeof base) < 0 ||
            !sbx_files_task_dir_in_view(task, bases[i], base))
            return true;
    }
    return false;
}

/* Which bases a CONTINUE depends on. Landlock checks the object an open,
 * mkdir, unlink, rename or truncate reaches, however the path resolves;
 * it checks nothing for stat, access, readlink, chdir or an O_PATH open.
 * For those, the kernel re-reads the path after our decision, and a
 * racing thread can turn an absolute native-view path into one relative
 * to the dirfd or cwd — a brokered directory outside the view, reaching
 * host objects no rule grants. So for them every path's base counts, not
 * only the bases of paths that were relative when we read them. */
static const int *continue_bases(const notify_state *s, const sbx_files_call *call, size_t *n)
{
    bool checked = sbx_files_call_landlock_checked(call);
    *n = checked ? s->n_rel : s->n_any;
    return checked ? s->rel_base : s->any_base;
}

/* Handle the notification in s->req. The target controls the syscall
 * number, its arguments and its memory; the kernel vouches for the tid and
 * the architecture. Checked: the number is a table entry, the arch is
 * x86_64, everything read about the thread happened before ID_VALID
 * proved it is still the caller. Safe: the decision and the operation use
 * only the private copies; the answer is a value, one fd the policy
 * allowed, or CONTINUE for native calls under Landlock. */
static int handle(notify_state *s)
{
    const struct seccomp_data *data = &s->req->data;
    const sbx_files_syscall *sc = sbx_files_syscall_find(data->nr);
    if (data->arch != AUDIT_ARCH_X86_64 || !sc || sc->kind != SBX_FILES_SC_BROKERED) {
        /* Not a files call: a baseline denial of a reporting filter (the
         * only other thing it sends). Refused, and reported. */
        if (s->cfg->on_denied) {
            as_broker();
            s->cfg->on_denied(s->cfg->denied_ctx, (pid_t)s->req->pid, data->nr, data->arch);
            return respond(s, 0, -EPERM, 0);
        }
        return respond(s, 0, -ENOSYS, 0);
    }

    task_slot *slot = get_task(s, (pid_t)s->req->pid, !s->cfg->landlock);
    if (!slot)
        return still_valid(s) ? respond(s, 0, -ESRCH, 0) : 0;
    int proc_fd = slot->proc_fd;
    sbx_files_task task = { .proc_fd = proc_fd, .pid = slot->tgid, .tid = (pid_t)s->req->pid };
    if (sc->op == SBX_FILES_CALL_GETCWD)
        return handle_getcwd(s, &task);
    s->n_rel = 0;
    s->n_any = 0;
    task_info ti;
    memset(&ti, 0, sizeof ti);
    ti.tgid = slot->tgid;
    int r;

    decoded d;
    memset(&d, 0, sizeof d);
    r = decode(s, sc, &task, &d);
    /* The identity and umask are read fresh when they may have changed
     * (setuid, umask); the cached tgid only serves /proc/self. */
    bool creates = d.call.op == SBX_FILES_CALL_MKDIR ||
                   (d.call.op == SBX_FILES_CALL_OPEN && (d.call.flags & O_CREAT));
    /* With stable credentials (cfg->stable_creds) the slot's copy serves
     * every call that creates nothing; a creating call reads the umask of
     * the moment. */
    if (r == 0 && creates) {
        as_broker();
        r = sbx_files_proc_status_read(proc_fd, &ti);
    } else if (r == 0 && s->cfg->target_creds && s->cfg->stable_creds) {
        ti.creds = slot->creds;
    } else if (r == 0 && s->cfg->target_creds) {
        as_broker();
        r = sbx_files_proc_status_read(proc_fd, &ti);
    }
    /* Everything about the target has been read: is it still the caller? */
    if (!still_valid(s))
        return 0;
    if (r < 0)
        return respond(s, 0, r, 0);

    sbx_files_result *res = &s->res;
    if (d.fd_stat) {
        if (s->cfg->landlock)
            return respond(s, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
        memset(res, 0, offsetof(sbx_files_result, link));
        res->fd = -1;
        res->value = fd_stat(&task, &d, res);
    } else {
        d.call.pid = ti.tgid;
        /* chmod and utimensat are performed in the target's root even
         * under Landlock (files_dispatcher.c). */
        if ((d.call.op == SBX_FILES_CALL_CHMOD || d.call.op == SBX_FILES_CALL_UTIMENS) &&
            slot->root_fd < 0) {
            as_broker();
            slot->root_fd = openat(proc_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
        }
        d.call.target_root_fd = slot->root_fd;
        d.call.landlock = s->cfg->landlock;
        d.call.creds = s->cfg->target_creds ? &ti.creds : NULL;
        d.call.umask = ti.creds.umask;
        d.call.chdir_fd = d.call.op == SBX_FILES_CALL_CHDIR && shares_fs_with_peer(s, task.tid);
        d.call.no_opath_fd = true; /* SECCOMP_IOCTL_NOTIF_ADDFD refuses O_PATH files */
        /* Stable credentials only: a target whose ids may change is read
         * fresh and switched per operation. */
        d.call.keep_creds = s->cfg->stable_creds;
        sbx_files_dispatch(s->cfg->files, &d.call, res);
        size_t nb = 0;
        const int *bases = continue_bases(s, &d.call, &nb);
        if (res->kind == SBX_FILES_RES_CONTINUE && nb && base_outside_view(s, &task, bases, nb)) {
            if (slot->root_fd < 0)
                slot->root_fd = openat(proc_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
            d.call.target_root_fd = slot->root_fd;
            d.call.landlock = false;
            sbx_files_dispatch(s->cfg->files, &d.call, res);
        }
    }

    switch (res->kind) {
    case SBX_FILES_RES_CONTINUE:
        return respond(s, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
    case SBX_FILES_RES_KILL:
        kill_target(s, ti.tgid);
        return respond(s, 0, -EACCES, 0);
    case SBX_FILES_RES_FD: {
        SBX_AUTOCLOSE int fd = sbx_steal_fd(&res->fd);
        if (d.call.op == SBX_FILES_CALL_CHDIR) {
            /* Nothing irrevocable before the caller is proven alive. */
            if (!still_valid(s))
                return 0;
            return respond_value(s, chdir_through_peer(s, &task, fd));
        }
        struct seccomp_notif_addfd add = {
            .id = s->req->id,
            .flags = SECCOMP_ADDFD_FLAG_SEND,
            .srcfd = (uint32_t)fd,
            .newfd = 0,
            .newfd_flags = d.cloexec ? O_CLOEXEC : 0,
        };
        if (ioctl(s->cfg->listener_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &add) >= 0)
            return 0; /* installed and answered in one step */
        if (errno == ENOENT)
            return 0;
        return respond(s, 0, sbx_neg_errno(), 0); /* e.g. EMFILE in the target */
    }
    case SBX_FILES_RES_VALUE:
        break;
    }
    long v = res->value;
    if (v >= 0) {
        if (res->has_stat)
            v = write_mem(task.tid, d.out_addr, &res->st, sizeof res->st);
        else if (res->has_statx)
            v = write_mem(task.tid, d.out_addr, &res->stx, sizeof res->stx);
        else if (d.out_kind == 3) {
            size_t n = res->link_len < d.out_size ? res->link_len : d.out_size;
            v = write_mem(task.tid, d.out_addr, res->link, n);
            if (v == 0)
                v = (long)n;
        }
    }
    return respond_value(s, v);
}

static int serve_loop(notify_state *s);

int sbx_notify_buffers(struct seccomp_notif **req, size_t *req_size,
                       struct seccomp_notif_resp **resp, size_t *resp_size)
{
    struct seccomp_notif_sizes sizes;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
        return sbx_neg_errno();
    *req_size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif
                                                                  : sizeof(struct seccomp_notif);
    *resp_size = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp)
                     ? sizes.seccomp_notif_resp
                     : sizeof(struct seccomp_notif_resp);
    *req = calloc(1, *req_size);
    *resp = calloc(1, *resp_size);
    if (!*req || !*resp) {
        free(*req);
        free(*resp);
        *req = NULL;
        *resp = NULL;
        return -ENOMEM;
    }
    return 0;
}

int sbx_notify_serve(const sbx_notify_config *cfg)
{
    if (!cfg || cfg->listener_fd < 0 || !cfg->files)
        return -EINVAL;
    SBX_AUTOFREE notify_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->cfg = cfg;
    s->page = sysconf(_SC_PAGESIZE);
    if (s->page <= 0)
        s->page = 4096;
    SBX_AUTOFREE struct seccomp_notif *req = NULL;
    SBX_AUTOFREE struct seccomp_notif_resp *resp = NULL;
    int br = sbx_notify_buffers(&req, &s->req_size, &resp, &s->resp_size);
    if (br < 0)
        return br;
    s->req = req;
    s->resp = resp;
    /* Linux >= 6.6: hand the CPU straight between target and broker on each
     * round trip (an optimisation only; older kernels refuse it). */
    (void)ioctl(cfg->listener_fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                (unsigned long)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
    for (size_t i = 0; i < TASK_CACHE; i++) {
        s->tasks[i].pidfd = s->tasks[i].proc_fd = s->tasks[i].root_fd = -1;
    }
    int r = serve_loop(s);
    as_broker(); /* the caller's thread leaves as it came */
    for (size_t i = 0; i < TASK_CACHE; i++)
        slot_clear(&s->tasks[i]);
    return r;
}

/* No stop fd: wait in SECCOMP_IOCTL_NOTIF_RECV itself (one syscall per
 * notification instead of poll + RECV; the notification's wake-up lands
 * straight in the ioctl). RECV answers ENOENT both for a caller that went
 * away and once no task uses the filter: a zero-timeout poll tells which. */
static int serve_blocking(notify_state *s)
{
    const sbx_notify_config *cfg = s->cfg;
    for (;;) {
        memset(s->req, 0, s->req_size);
        if (ioctl(cfg->listener_fd, SECCOMP_IOCTL_NOTIF_RECV, s->req) < 0) {
            if (errno == EINTR)
                continue;
            if (errno != ENOENT)
                return sbx_neg_errno();
            struct pollfd p = { .fd = cfg->listener_fd, .events = POLLIN };
            if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
                return 0; /* no task uses the filter any more */
            continue;
        }
        int r = handle(s);
        if (r < 0)
            sbx_debug("notify: answering %s failed: %d", "call", r);
    }
}

static int serve_loop(notify_state *s)
{
    const sbx_notify_config *cfg = s->cfg;
    struct seccomp_notif *req = s->req;

    if (cfg->stop_fd < 0)
        return serve_blocking(s);
    for (;;) {
        struct pollfd p[2] = { { .fd = cfg->listener_fd, .events = POLLIN },
                               { .fd = cfg->stop_fd, .events = POLLIN } };
        int n = poll(p, cfg->stop_fd >= 0 ? 2 : 1, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sbx_neg_errno();
        }
        if (cfg->stop_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP)))
            return 0;
        if (p[0].revents & POLLIN) {
            memset(req, 0, s->req_size);
            if (ioctl(cfg->listener_fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
                if (errno == EINTR || errno == ENOENT)
                    continue; /* the caller went away before we read it */
                return sbx_neg_errno();
            }
            int r = handle(s);
            if (r < 0)
                sbx_debug("notify: answering %s failed: %d", "call", r);
            continue;
        }
        if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
            return 0; /* no task uses the filter any more */
    }
}
