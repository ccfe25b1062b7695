/* sbx — files subsystem: safe broker-side operations (see files_ops.h). */
#include "subsys/files/files_ops.h"

#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "subsys/files/files_path.h"

#define MAX_HOPS 40 /* symlinks followed per operation, like the kernel's MAXSYMLINKS */

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static atomic_bool g_no_openat2;

/* ---- flags and modes ---- */

int sbx_files_open_flags_check(int flags, unsigned *need)
{
    const int known = O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK |
                      O_DSYNC | O_SYNC | O_DIRECT | O_LARGEFILE | O_DIRECTORY | O_NOFOLLOW |
                      O_NOATIME | O_CLOEXEC | O_PATH | O_TMPFILE | FASYNC;
    if (flags & ~known)
        return -EINVAL;
    if ((flags & O_TMPFILE) == O_TMPFILE)
        return -EOPNOTSUPP;
    if (flags & FASYNC)
        return -EINVAL;
    if (flags & O_NOATIME)
        return -EACCES;
    int acc = flags & O_ACCMODE;
    if (acc == O_ACCMODE)
        return -EINVAL;
    unsigned n = 0;
    if (flags & O_PATH) {
        if (flags & ~(O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_LARGEFILE))
            return -EINVAL;
        n = SBX_FILES_NEED_READ;
    } else {
        if (acc == O_RDONLY && (flags & O_TRUNC))
            return -EACCES;
        n = SBX_FILES_NEED_READ;
        if (acc != O_RDONLY || (flags & (O_TRUNC | O_APPEND)))
            n |= SBX_FILES_NEED_WRITE;
        if (flags & O_CREAT)
            n |= SBX_FILES_NEED_CREATE | SBX_FILES_NEED_WRITE;
        if (acc == O_WRONLY)
            n &= ~SBX_FILES_NEED_READ;
    }
    if (flags & O_DIRECTORY)
        n |= SBX_FILES_NEED_DIR;
    *need = n;
    return 0;
}

mode_t sbx_files_create_mode(mode_t mode, mode_t umask_bits, bool dir)
{
    return (mode & ~umask_bits) & (dir ? 0777u : 0666u);
}

/* ---- acting as the target ---- */

/* A thread's filesystem identity as the kernel checks it. */
typedef struct fs_identity {
    uid_t fsuid;
    gid_t fsgid;
    int ngroups;
    gid_t groups[SBX_FILES_MAX_GROUPS];
} fs_identity;

typedef struct creds_saved {
    bool applied;
    fs_identity id;
} creds_saved;

/* sbx_files_creds_keep: the thread's own identity from before it was
 * switched (restored by sbx_files_creds_drop). */
static _Thread_local bool t_kept;
static _Thread_local fs_identity t_base;

/* Reading never changes anything (setfsuid(-1) only answers). */
static int identity_read(fs_identity *id)
{
    id->fsuid = (uid_t)setfsuid((uid_t)-1);
    id->fsgid = (gid_t)setfsgid((gid_t)-1);
    id->ngroups = getgroups(SBX_FILES_MAX_GROUPS, id->groups);
    return id->ngroups < 0 ? -EPERM : 0;
}

static bool identity_is(const fs_identity *id, uid_t fsuid, gid_t fsgid, size_t ngroups,
                        const gid_t *groups)
{
    return id->fsuid == fsuid && id->fsgid == fsgid && (size_t)id->ngroups == ngroups &&
           memcmp(id->groups, groups, ngroups * sizeof(gid_t)) == 0;
}

/* Switch the calling thread from `cur` to the wanted identity, touching
 * only what differs (each change is a new kernel cred), and check the
 * result. Raw syscalls: the libc wrapper of setgroups would change every
 * thread of the broker. */
static int identity_switch(const fs_identity *cur, uid_t fsuid, gid_t fsgid, size_t ngroups,
                           const gid_t *groups)
{
    if (((size_t)cur->ngroups != ngroups ||
         memcmp(cur->groups, groups, ngroups * sizeof(gid_t)) != 0) &&
        syscall(SYS_setgroups, ngroups, groups) < 0)
        return -EPERM;
    if (cur->fsgid != fsgid)
        setfsgid(fsgid);
    if (cur->fsuid != fsuid)
        setfsuid(fsuid);
    if ((gid_t)setfsgid((gid_t)-1) != fsgid || (uid_t)setfsuid((uid_t)-1) != fsuid)
        return -EPERM;
    return 0;
}

static void identity_set(const fs_identity *want)
{
    fs_identity cur;
    if (identity_read(&cur) == 0 &&
        identity_is(&cur, want->fsuid, want->fsgid, (size_t)want->ngroups, want->groups))
        return;
    (void)identity_switch(&cur, want->fsuid, want->fsgid, (size_t)want->ngroups, want->groups);
}

static void creds_restore(creds_saved *s)
{
    if (!s->applied)
        return;
    int saved = errno;
    identity_set(&s->id);
    s->applied = false;
    errno = saved;
}

void sbx_files_creds_drop(void)
{
    if (!t_kept)
        return;
    int saved = errno;
    identity_set(&t_base);
    t_kept = false;
    errno = saved;
}

int sbx_files_creds_keep(const sbx_files_creds *c)
{
    if (!c) {
        sbx_files_creds_drop();
        return 0;
    }
    if (c->ngroups > SBX_FILES_MAX_GROUPS)
        return -EINVAL;
    int saved = errno;
    fs_identity cur;
    int r = identity_read(&cur);
    if (r == 0 && !identity_is(&cur, c->fsuid, c->fsgid, c->ngroups, c->groups)) {
        if (!t_kept)
            t_base = cur;
        t_kept = true;
        if ((r = identity_switch(&cur, c->fsuid, c->fsgid, c->ngroups, c->groups)) < 0)
            sbx_files_creds_drop();
    }
    errno = saved;
    return r;
}

/* Act as ctx->creds for one operation: switch the calling thread's
 * filesystem identity (only what differs from the current one) and
 * restore it at the end of the scope, or leave it switched
 * (SBX_FILES_OPS_KEEP_CREDS). */
static int creds_apply(const sbx_files_ops_ctx *ctx, creds_saved *s)
{
    s->applied = false;
    const sbx_files_creds *c = ctx->creds;
    if (!c) {
        sbx_files_creds_drop(); /* the broker's own identity, never a kept one */
        return 0;
    }
    if (ctx->flags & SBX_FILES_OPS_KEEP_CREDS)
        return sbx_files_creds_keep(c) < 0 ? -EPERM : 0;
    if (c->ngroups > SBX_FILES_MAX_GROUPS)
        return -EINVAL;
    if (identity_read(&s->id) < 0)
        return -EPERM;
    if (identity_is(&s->id, c->fsuid, c->fsgid, c->ngroups, c->groups))
        return 0;
    s->applied = true;
    if (identity_switch(&s->id, c->fsuid, c->fsgid, c->ngroups, c->groups) < 0) {
        creds_restore(s);
        return -EPERM;
    }
    return 0;
}

static void creds_cleanup(creds_saved *s)
{
    creds_restore(s);
}
#define SBX_AUTOCREDS __attribute__((cleanup(creds_cleanup)))

/* ---- resolution ---- */

static unsigned long resolve_flags(const sbx_files_ops_ctx *ctx)
{
    return (ctx->in_root ? RESOLVE_IN_ROOT : RESOLVE_BENEATH) | RESOLVE_NO_SYMLINKS |
           RESOLVE_NO_MAGICLINKS;
}

static bool use_openat2(const sbx_files_ops_ctx *ctx)
{
    return !(ctx->flags & SBX_FILES_OPS_FORCE_WALK) && !atomic_load(&g_no_openat2);
}

static int openat2_(int dirfd, const char *path, int flags, mode_t mode, unsigned long resolve)
{
    struct open_how how = { .flags = (unsigned long long)(unsigned)flags,
                            .mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? mode : 0,
                            .resolve = resolve };
    long r = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (r < 0 && errno == ENOSYS)
        atomic_store(&g_no_openat2, true);
    return r < 0 ? sbx_neg_errno() : (int)r;
}

static bool on_procfs(int fd)
{
    struct statfs sf;
    return fstatfs(fd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

/* A symlink met at work[start..end): the link's text is target[0..tlen).
 * Rewrite work (canonical) to the path the kernel would now reach. */
static int substitute(char *work, size_t start, size_t end, const char *target, size_t tlen)
{
    if (tlen == 0)
        return -ENOENT;
    size_t len = strlen(work);
    char dir[SBX_FILES_PATH_MAX];
    size_t dlen = start > 1 ? start - 1 : 1; /* work[start-1] is the '/' before the name */
    memcpy(dir, work, dlen);
    dir[dlen] = '\0';
    char rel[2 * SBX_FILES_PATH_MAX];
    size_t rest = len - end;
    if (tlen + rest >= SBX_FILES_PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(rel, target, tlen);
    memcpy(rel + tlen, work + end, rest);
    return sbx_files_path_join(dir, rel, tlen + rest, work, SBX_FILES_PATH_MAX);
}

/* Follow the symlink `name` in directory fd `dirfd` (name "" = dirfd is
 * the link itself, from an O_PATH|O_NOFOLLOW open), found at
 * work[start..end): refuse magic links, rewrite work, recheck. */
static int follow_link(const sbx_files_ops_ctx *ctx, unsigned which, int dirfd, const char *name,
                       char *work, size_t start, size_t end, int *hops)
{
    if (++*hops > MAX_HOPS)
        return -ELOOP;
    if (!ctx->recheck)
        return -ELOOP;
    if (on_procfs(dirfd))
        return -ELOOP; /* /proc/<pid>/{root,cwd,fd/N,exe}, /proc/self: never followed */
    char target[SBX_FILES_PATH_MAX];
    ssize_t n = readlinkat(dirfd, name, target, sizeof target);
    if (n < 0)
        return sbx_neg_errno();
    if ((size_t)n >= sizeof target)
        return -ENAMETOOLONG;
    int r = substitute(work, start, end, target, (size_t)n);
    if (r < 0)
        return r;
    return ctx->recheck(ctx->recheck_arg, which, work);
}

typedef struct link_hit {
    bool found;
    size_t start, end; /* the link's component in the walked path */
} link_hit;

/* Walk the directory work[0..len) (len >= 1; "/" is the root) from
 * ctx->root_fd one component at a time with O_NOFOLLOW. On a symlink,
 * returns -ELOOP with hit filled and the link's O_PATH fd in *link_fd. */
static int walk_dir(const sbx_files_ops_ctx *ctx, const char *work, size_t len, link_hit *hit,
                    int *link_fd)
{
    SBX_AUTOCLOSE int cur = openat(ctx->root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0)
        return sbx_neg_errno();
    size_t i = 1;
    while (i < len) {
        size_t s = i;
        while (i < len && work[i] != '/')
            i++;
        char comp[NAME_MAX + 1];
        size_t clen = i - s;
        if (clen == 0 || clen > NAME_MAX)
            return -ENAMETOOLONG;
        memcpy(comp, work + s, clen);
        comp[clen] = '\0';
        SBX_AUTOCLOSE int next = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            return sbx_neg_errno();
        struct stat st;
        if (fstat(next, &st) < 0)
            return sbx_neg_errno();
        if (S_ISLNK(st.st_mode)) {
            if (on_procfs(cur))
                return -ELOOP;
            hit->found = true;
            hit->start = s;
            hit->end = i;
            *link_fd = sbx_steal_fd(&next);
            return -ELOOP;
        }
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
        sbx_close_keep_errno(cur);
        cur = sbx_steal_fd(&next);
        i++; /* the '/' */
    }
    return sbx_steal_fd(&cur);
}

/* Resolve work's parent directory and last name, following symlinks in the
 * parent (rechecked), and the last component too if follow_last. On
 * success *pfd is the parent's O_PATH fd and name holds the last component
 * ("" for "/", whose *pfd is the root itself). work is updated to the
 * canonical path finally reached. */
static int resolve_at(const sbx_files_ops_ctx *ctx, unsigned which, char *work, bool follow_last,
                      int *hops, int *pfd, char name[NAME_MAX + 1], bool *trailing)
{
    for (;;) {
        size_t len = strlen(work);
        size_t plen, nlen;
        const char *nm;
        sbx_files_path_split(work, len, &plen, &nm, &nlen, trailing);
        if (nlen == 0) {
            int fd = openat(ctx->root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (fd < 0)
                return sbx_neg_errno();
            name[0] = '\0';
            *pfd = fd;
            return 0;
        }
        /* name holds NAME_MAX bytes: a longer last name (a caller's
         * uncanonicalised path) is refused, never copied over the stack */
        if (nlen > NAME_MAX)
            return -ENAMETOOLONG;
        size_t nstart = (size_t)(nm - work);
        memcpy(name, nm, nlen);
        name[nlen] = '\0';

        SBX_AUTOCLOSE int dir = -1;
        if (use_openat2(ctx)) {
            char parent[SBX_FILES_PATH_MAX];
            memcpy(parent, work, plen);
            parent[plen] = '\0';
            dir = openat2_(ctx->root_fd, plen > 1 ? parent + 1 : ".",
                           O_PATH | O_DIRECTORY | O_CLOEXEC, 0, resolve_flags(ctx));
            if (dir < 0 && dir != -ELOOP && dir != -ENOSYS)
                return dir;
        }
        if (dir < 0) {
            link_hit hit = { 0 };
            SBX_AUTOCLOSE int link_fd = -1;
            dir = walk_dir(ctx, work, plen, &hit, &link_fd);
            if (dir == -ELOOP && hit.found) {
                int r = follow_link(ctx, which, link_fd, "", work, hit.start, hit.end, hops);
                if (r < 0)
                    return r;
                continue;
            }
            if (dir < 0)
                return dir;
        }
        if (follow_last) {
            struct stat st;
            if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
                int r = follow_link(ctx, which, dir, name, work, nstart, nstart + nlen, hops);
                if (r < 0)
                    return r;
                continue;
            }
        }
        *pfd = sbx_steal_fd(&dir);
        return 0;
    }
}

/* An operation's path: absolute, 1..SBX_FILES_PATH_MAX - 1 bytes; *len
 * its length. */
static int check_path(const char *path, size_t *len)
{
    *len = strnlen(path, SBX_FILES_PATH_MAX);
    if (*len == 0)
        return -ENOENT;
    if (*len >= SBX_FILES_PATH_MAX)
        return -ENAMETOOLONG;
    if (path[0] != '/')
        return -EINVAL;
    return 0;
}

static int copy_path(char *work, const char *path)
{
    size_t len;
    int r = check_path(path, &len);
    if (r == 0)
        memcpy(work, path, len + 1);
    return r;
}

/* ---- operations ---- */

static int op_open(const sbx_files_ops_ctx *ctx, const char *path, int flags, mode_t mode);

/* A FIFO's open waits for its other end (a tty's for its carrier): the
 * broker's serving thread would wait with it, for ever if the target dies
 * meanwhile, and the target's release joins that thread (the pool thread,
 * then sbx_broker_free, would hang; every later release queue behind it).
 * So the open itself never blocks: O_NONBLOCK is added, and taken off the
 * fd again when the target did not ask for it. A FIFO with no writer
 * opens for reading at once (reads see end-of-file until one comes); one
 * with no reader refuses writing (ENXIO). */
int sbx_files_op_open(const sbx_files_ops_ctx *ctx, const char *path, int flags, mode_t mode)
{
    bool added = !(flags & (O_NONBLOCK | O_PATH));
    int fd = op_open(ctx, path, added ? flags | O_NONBLOCK : flags, mode);
    if (fd < 0 || !added)
        return fd;
    /* F_SETFL checks O_NOATIME as the broker: without it, atime is kept. */
    int keep = flags & (O_APPEND | O_DIRECT | O_NOATIME);
    if (fcntl(fd, F_SETFL, keep) < 0 &&
        (errno != EPERM || fcntl(fd, F_SETFL, keep & ~O_NOATIME) < 0)) {
        int e = sbx_neg_errno();
        close(fd);
        return e;
    }
    return fd;
}

static int op_open(const sbx_files_ops_ctx *ctx, const char *path, int flags, mode_t mode)
{
    unsigned need;
    int r = sbx_files_open_flags_check(flags, &need);
    if (r < 0)
        return r;
    size_t len;
    if ((r = check_path(path, &len)) < 0)
        return r;
    if (len > 1 && path[len - 1] == '/') {
        if (flags & O_CREAT)
            return -EISDIR;
        flags |= O_DIRECTORY;
    }
    if (flags & O_CREAT)
        mode = ctx->creds ? sbx_files_create_mode(mode, ctx->creds->umask, false) : (mode & 0666u);
    bool follow = !(flags & O_NOFOLLOW);
    flags |= O_CLOEXEC;

    SBX_AUTOCREDS creds_saved saved;
    if ((r = creds_apply(ctx, &saved)) < 0)
        return r;

    /* Fast path: one openat2 that refuses every symlink. Only a symlink on
     * the way (ELOOP) needs the careful path below. */
    if (use_openat2(ctx)) {
        int fd = openat2_(ctx->root_fd, path[1] ? path + 1 : ".", flags, mode,
                          resolve_flags(ctx));
        if (fd >= 0 || (fd != -ELOOP && fd != -ENOSYS))
            return fd;
    }
    /* The careful path rewrites its own copy as it follows links. */
    char work[SBX_FILES_PATH_MAX];
    memcpy(work, path, len + 1);
    int hops = 0;
    for (;;) {
        SBX_AUTOCLOSE int dir = -1;
        char name[NAME_MAX + 1];
        bool trailing;
        if ((r = resolve_at(ctx, 0, work, false, &hops, &dir, name, &trailing)) < 0)
            return r;
        size_t nstart = strlen(work) - strlen(name) - (trailing ? 1 : 0);
        int fd = openat(dir, name[0] ? name : ".", flags | O_NOFOLLOW, mode);
        if (fd >= 0) {
            struct stat st;
            /* O_PATH|O_NOFOLLOW opens a symlink itself instead of failing. */
            if (follow && (flags & O_PATH) && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
                close(fd);
            } else {
                return fd;
            }
        } else if ((errno != ELOOP && !(errno == ENOTDIR && (flags & O_DIRECTORY))) || !follow) {
            return sbx_neg_errno();
        }
        /* O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR, not ELOOP:
         * a symlink to a directory must still be followed. */
        int open_err = fd >= 0 ? 0 : errno;
        struct stat st;
        if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
        {
            if (open_err == ENOTDIR)
                return -ENOTDIR; /* a real non-directory */
            if (++hops > MAX_HOPS)
                return -ELOOP;
            continue; /* changed under us: resolve again */
        }
        r = follow_link(ctx, 0, dir, name, work, nstart, nstart + strlen(name), &hops);
        if (r < 0)
            return r;
    }
}

/* Resolve for a query: parent fd + name, following the last link if asked. */
static int query_at(const sbx_files_ops_ctx *ctx, const char *path, bool follow, int *pfd,
                    char name[NAME_MAX + 1], bool *trailing)
{
    char work[SBX_FILES_PATH_MAX];
    int r = copy_path(work, path);
    if (r < 0)
        return r;
    int hops = 0;
    size_t len = strlen(work);
    bool tr = len > 1 && work[len - 1] == '/';
    return resolve_at(ctx, 0, work, follow || tr, &hops, pfd, name, trailing);
}

int sbx_files_op_stat(const sbx_files_ops_ctx *ctx, const char *path, bool follow, struct stat *st)
{
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int dir = -1;
    char name[NAME_MAX + 1];
    bool trailing;
    if ((r = query_at(ctx, path, follow, &dir, name, &trailing)) < 0)
        return r;
    if (fstatat(dir, name, st, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH)) < 0)
        return sbx_neg_errno();
    if (trailing && !S_ISDIR(st->st_mode))
        return -ENOTDIR;
    return 0;
}

int sbx_files_op_statx(const sbx_files_ops_ctx *ctx, const char *path, bool follow, int at_flags,
                       unsigned mask, struct statx *stx)
{
    if (at_flags & ~AT_STATX_SYNC_TYPE)
        return -EINVAL;
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int dir = -1;
    char name[NAME_MAX + 1];
    bool trailing;
    if ((r = query_at(ctx, path, follow, &dir, name, &trailing)) < 0)
        return r;
    if (statx(dir, name, at_flags | AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH), mask, stx) <
        0)
        return sbx_neg_errno();
    if (trailing && !S_ISDIR(stx->stx_mode))
        return -ENOTDIR;
    return 0;
}

int sbx_files_op_access(const sbx_files_ops_ctx *ctx, const char *path, int mode, bool follow)
{
    if (mode & ~(R_OK | W_OK | X_OK))
        return -EINVAL;
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int dir = -1;
    char name[NAME_MAX + 1];
    bool trailing;
    if ((r = query_at(ctx, path, follow, &dir, name, &trailing)) < 0)
        return r;
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH)) < 0)
        return sbx_neg_errno();
    if (trailing && !S_ISDIR(st.st_mode))
        return -ENOTDIR;
    int fl = AT_EACCESS | AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH);
    if (syscall(SYS_faccessat2, dir, name, mode, fl) < 0)
        return sbx_neg_errno();
    return 0;
}

int sbx_files_op_readlink(const sbx_files_ops_ctx *ctx, const char *path, char *buf, size_t size)
{
    if (size == 0 || size > INT_MAX)
        return -EINVAL;
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int dir = -1;
    char name[NAME_MAX + 1];
    bool trailing;
    if ((r = query_at(ctx, path, false, &dir, name, &trailing)) < 0)
        return r;
    if (!name[0])
        return -EINVAL;
    ssize_t n = readlinkat(dir, name, buf, size);
    return n < 0 ? sbx_neg_errno() : (int)n;
}

/* Resolve the parent of a path whose last component is never followed. */
static int parent_at(const sbx_files_ops_ctx *ctx, unsigned which, const char *path, int *hops,
                     int *pfd, char name[NAME_MAX + 1], bool *trailing)
{
    char work[SBX_FILES_PATH_MAX];
    int r = copy_path(work, path);
    if (r < 0)
        return r;
    return resolve_at(ctx, which, work, false, hops, pfd, name, trailing);
}

int sbx_files_op_mkdir(const sbx_files_ops_ctx *ctx, const char *path, mode_t mode)
{
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int dir = -1;
    char name[NAME_MAX + 1];
    bool trailing;
    int hops = 0;
    if ((r = parent_at(ctx, 0, path, &hops, &dir, name, &trailing)) < 0)
        return r;
    if (!name[0])
        return -EEXIST;
    mode = ctx->creds ? sbx_files_create_mode(mode, ctx->creds->umask, true) : (mode & 0777u);
    return mkdirat(dir, name, mode) < 0 ? sbx_neg_errno() : 0;
}

static int remove_at(const sbx_files_ops_ctx *ctx, const char *path, bool is_dir)
{
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int dir = -1;
    char name[NAME_MAX + 1];
    bool trailing;
    int hops = 0;
    if ((r = parent_at(ctx, 0, path, &hops, &dir, name, &trailing)) < 0)
        return r;
    if (!name[0])
        return is_dir ? -EBUSY : -EISDIR;
    if (!is_dir && trailing) {
        struct stat st;
        if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return sbx_neg_errno();
        return S_ISDIR(st.st_mode) ? -EISDIR : -ENOTDIR;
    }
    return unlinkat(dir, name, is_dir ? AT_REMOVEDIR : 0) < 0 ? sbx_neg_errno() : 0;
}

int sbx_files_op_unlink(const sbx_files_ops_ctx *ctx, const char *path)
{
    return remove_at(ctx, path, false);
}

int sbx_files_op_rmdir(const sbx_files_ops_ctx *ctx, const char *path)
{
    return remove_at(ctx, path, true);
}

int sbx_files_op_rename(const sbx_files_ops_ctx *ctx, const char *from, const char *to,
                        unsigned flags)
{
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
        return -EINVAL;
    if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
        return -EINVAL;
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int d1 = -1;
    SBX_AUTOCLOSE int d2 = -1;
    char n1[NAME_MAX + 1], n2[NAME_MAX + 1];
    bool t1, t2;
    int hops = 0;
    if ((r = parent_at(ctx, 0, from, &hops, &d1, n1, &t1)) < 0)
        return r;
    if ((r = parent_at(ctx, 1, to, &hops, &d2, n2, &t2)) < 0)
        return r;
    if (!n1[0] || !n2[0])
        return -EBUSY;
    if (t1 || t2) {
        struct stat st;
        if (fstatat(d1, n1, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return sbx_neg_errno();
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
    }
    if (syscall(SYS_renameat2, d1, n1, d2, n2, flags) < 0)
        return sbx_neg_errno();
    return 0;
}

int sbx_files_op_truncate(const sbx_files_ops_ctx *ctx, const char *path, off_t length)
{
    if (length < 0)
        return -EINVAL;
    SBX_AUTOCLOSE int fd = sbx_files_op_open(ctx, path, O_WRONLY | O_NONBLOCK, 0);
    if (fd < 0)
        return fd == -ENXIO ? -EINVAL : fd;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sbx_neg_errno();
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    return ftruncate(fd, length) < 0 ? sbx_neg_errno() : 0;
}

int sbx_files_op_utimens(const sbx_files_ops_ctx *ctx, const char *path, const struct timespec *times,
                         bool follow)
{
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int dir = -1;
    char name[NAME_MAX + 1];
    bool trailing;
    if ((r = query_at(ctx, path, follow, &dir, name, &trailing)) < 0)
        return r;
    if (utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW | (name[0] ? 0 : AT_EMPTY_PATH)) < 0)
        return sbx_neg_errno();
    return 0;
}

int sbx_files_op_chmod(const sbx_files_ops_ctx *ctx, const char *path, mode_t mode, bool follow)
{
    if (mode & ~(mode_t)07777)
        return -EINVAL;
    if (mode & (S_ISUID | S_ISGID | S_ISVTX))
        return -EPERM;
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    SBX_AUTOCLOSE int dir = -1;
    char name[NAME_MAX + 1];
    bool trailing;
    if ((r = query_at(ctx, path, follow, &dir, name, &trailing)) < 0)
        return r;
    /* Pin the object itself, then change it through the fd: a name swapped
     * after the lookup cannot redirect the chmod. */
    SBX_AUTOCLOSE int obj = openat(dir, name[0] ? name : ".", O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (obj < 0)
        return sbx_neg_errno();
    struct stat st;
    if (fstat(obj, &st) < 0)
        return sbx_neg_errno();
    if (S_ISLNK(st.st_mode))
        return -EOPNOTSUPP;
    if (trailing && !S_ISDIR(st.st_mode))
        return -ENOTDIR;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", obj);
    /* chmod through the O_PATH fd's magic link reaches exactly obj. */
    return fchmodat(AT_FDCWD, proc, mode, 0) < 0 ? sbx_neg_errno() : 0;
}

int sbx_files_op_reopen_readable(const sbx_files_ops_ctx *ctx, int opath)
{
    struct stat st;
    if (fstat(opath, &st) < 0)
        return sbx_neg_errno();
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return -EBADF;
    char link[32];
    snprintf(link, sizeof link, "/proc/self/fd/%d", opath);
    SBX_AUTOCREDS creds_saved saved;
    int r = creds_apply(ctx, &saved);
    if (r < 0)
        return r;
    /* The magic link names the pinned object itself: no path is resolved
     * again, so nothing can be swapped in between. */
    int fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
    return fd < 0 ? sbx_neg_errno() : fd;
}
