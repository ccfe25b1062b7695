/* sbx — files subsystem: path canonicalisation and resolution against a
 * target's cwd / dirfd (see files_path.h). */
#include "subsys/files/files_path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/path_scan.h"

/* Is in[0..len) (absolute, len >= 1) already its own canonical form: "/",
 * or components of 1..NAME_MAX bytes, none "." or "..", one '/' between
 * them and none at the end (an empty last one)? Then canon_impl's walk
 * would copy it as it is. One memchr per component, no copy. */
static bool plain_canonical(const char *in, size_t len)
{
    if (len == 1)
        return true;
    /* Short enough that no component can pass NAME_MAX, no "//", no
     * component starting with '.', no '/' at the end: plain. */
    if (len <= NAME_MAX + 1 && in[len - 1] != '/' && !sbx_path_has_dot_or_empty(in, len))
        return true;
    const char *p = in + 1, *end = in + len;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t clen = (size_t)((slash ? slash : end) - p);
        if (clen == 0 || clen > NAME_MAX)
            return false;
        if (p[0] == '.' && (clen == 1 || (clen == 2 && p[1] == '.')))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

/* Canonicalise in[0..len) (absolute) accepting inputs up to in_max bytes. */
static int canon_impl(const char *in, size_t len, size_t in_max, char *out, size_t cap)
{
    if (len == 0)
        return -ENOENT;
    if (memchr(in, '\0', len))
        return -EINVAL;
    if (len >= in_max)
        return -ENAMETOOLONG;
    if (in[0] != '/')
        return -EINVAL;
    if (cap > SBX_FILES_PATH_MAX)
        cap = SBX_FILES_PATH_MAX;
    if (cap < 2)
        return -ENAMETOOLONG;
    if (len < cap && plain_canonical(in, len)) {
        memcpy(out, in, len);
        out[len] = '\0';
        return (int)len;
    }

    size_t o = 0;
    out[o++] = '/';
    bool dir_meaning = false;
    size_t i = 0;
    while (i < len) {
        while (i < len && in[i] == '/')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && in[i] != '/')
            i++;
        size_t clen = i - start;
        if (clen > NAME_MAX)
            return -ENAMETOOLONG;
        if (clen == 1 && in[start] == '.') {
            dir_meaning = true;
            continue;
        }
        if (clen == 2 && in[start] == '.' && in[start + 1] == '.') {
            /* Pop the last component; ".." of "/" is "/". */
            while (o > 1 && out[o - 1] != '/')
                o--;
            if (o > 1)
                o--;
            dir_meaning = true;
            continue;
        }
        size_t need = (o > 1 ? 1 : 0) + clen;
        /* Room for the component and the NUL. */
        if (o + need + 1 > cap)
            return -ENAMETOOLONG;
        if (o > 1)
            out[o++] = '/';
        memcpy(out + o, in + start, clen);
        o += clen;
        dir_meaning = i < len; /* followed by a slash */
    }
    if (dir_meaning && o > 1) {
        if (o + 2 > cap)
            return -ENAMETOOLONG;
        out[o++] = '/';
    }
    out[o] = '\0';
    return (int)o;
}

int sbx_files_path_canon(const char *in, size_t len, char *out, size_t cap)
{
    return canon_impl(in, len, SBX_FILES_PATH_MAX, out, cap);
}

int sbx_files_path_join(const char *base, const char *rel, size_t rel_len, char *out, size_t cap)
{
    if (rel_len == 0)
        return -ENOENT;
    if (rel_len >= SBX_FILES_PATH_MAX)
        return -ENAMETOOLONG;
    if (rel[0] == '/')
        return sbx_files_path_canon(rel, rel_len, out, cap);
    size_t blen = strnlen(base, SBX_FILES_PATH_MAX);
    if (blen == 0 || blen >= SBX_FILES_PATH_MAX || base[0] != '/')
        return -EINVAL;
    /* base + '/' + rel; the canonical result is what is bounded. */
    char tmp[2 * SBX_FILES_PATH_MAX + 2];
    memcpy(tmp, base, blen);
    tmp[blen] = '/';
    memcpy(tmp + blen + 1, rel, rel_len);
    return canon_impl(tmp, blen + 1 + rel_len, sizeof tmp, out, cap);
}

int sbx_files_path_rewrite_proc_self(char *path, size_t cap, pid_t pid, pid_t tid)
{
    size_t len = strnlen(path, cap);
    if (len >= cap)
        return -ENAMETOOLONG;
    static const char self[] = "/proc/self";
    static const char tself[] = "/proc/thread-self";
    size_t skip;
    char repl[64];
    int n;
    if (strncmp(path, self, sizeof self - 1) == 0 &&
        (path[sizeof self - 1] == '\0' || path[sizeof self - 1] == '/')) {
        skip = sizeof self - 1;
        n = snprintf(repl, sizeof repl, "/proc/%d", (int)pid);
    } else if (strncmp(path, tself, sizeof tself - 1) == 0 &&
               (path[sizeof tself - 1] == '\0' || path[sizeof tself - 1] == '/')) {
        skip = sizeof tself - 1;
        n = snprintf(repl, sizeof repl, "/proc/%d/task/%d", (int)pid, (int)tid);
    } else {
        return (int)len;
    }
    if (n < 0 || (size_t)n >= sizeof repl)
        return -EINVAL;
    size_t rlen = (size_t)n;
    size_t nlen = len - skip + rlen;
    if (nlen + 1 > cap || nlen + 1 > SBX_FILES_PATH_MAX)
        return -ENAMETOOLONG;
    memmove(path + rlen, path + skip, len - skip + 1);
    memcpy(path, repl, rlen);
    return (int)nlen;
}

void sbx_files_path_split(const char *path, size_t len, size_t *parent_len, const char **name,
                          size_t *name_len, bool *trailing_slash)
{
    bool trailing = len > 1 && path[len - 1] == '/';
    size_t end = trailing ? len - 1 : len;
    size_t slash = end;
    while (slash > 0 && path[slash - 1] != '/')
        slash--;
    /* path[slash..end) is the name; the parent is everything before it
     * without its final '/', except that the parent of "/x" is "/". */
    *name = path + slash;
    *name_len = end - slash;
    *parent_len = slash > 1 ? slash - 1 : 1;
    *trailing_slash = trailing;
}

bool sbx_files_path_is_under(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (dl == 1 && dir[0] == '/')
        return path[0] == '/';
    if (strncmp(path, dir, dl) != 0)
        return false;
    return path[dl] == '\0' || path[dl] == '/';
}

/* ---- resolution ---- */

static bool same_inode(int a, int b)
{
    struct stat sa, sb;
    if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
        return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Open the canonical directory `name` beneath `root` (an absolute name:
 * the leading '/' is dropped) without following any symlink. */
static int open_dir_noflw(int root, const char *name, unsigned long resolve)
{
    struct open_how how = {
        .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
        .resolve = resolve | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    /* From the broker's own namespace the name is absolute (never relative
     * to the broker's cwd); inside the target's root it is made relative
     * to that root. */
    const char *rel = root == AT_FDCWD ? name : (name[1] ? name + 1 : ".");
    long r = syscall(SYS_openat2, root, rel, &how, sizeof how);
    return r < 0 ? sbx_neg_errno() : (int)r;
}

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

bool sbx_files_pidfd_alive(int pidfd)
{
    if (pidfd < 0)
        return false;
    /* Signal 0 sends nothing: it succeeds while the pidfd's own task is
     * still attached to its pid (running, or a zombie not yet released),
     * i.e. while no other task can have been given its tid; once the
     * task is released it is ESRCH, whatever now holds the number. Any
     * other failure (EPERM from an LSM) reads as dead: a fresh lookup,
     * never a stale one. Cheaper than poll(POLLIN) on the pidfd (no poll
     * table, one fd lookup). */
    int saved = errno;
    bool alive = syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0;
    errno = saved;
    return alive;
}

int sbx_files_thread_pidfd(pid_t tid)
{
    int fd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
    return fd < 0 ? -errno : fd;
}

int sbx_files_task_link(int dirfd, char link[SBX_FILES_TASK_LINK_MAX])
{
    if (dirfd == SBX_FILES_AT_FDCWD)
        snprintf(link, SBX_FILES_TASK_LINK_MAX, "cwd");
    else if (dirfd < 0)
        return -EBADF;
    else
        snprintf(link, SBX_FILES_TASK_LINK_MAX, "fd/%d", dirfd);
    return 0;
}

int sbx_files_task_dir_path(const sbx_files_task *task, int dirfd, char *out, size_t cap)
{
    char link[SBX_FILES_TASK_LINK_MAX];
    if (sbx_files_task_link(dirfd, link) < 0)
        return -EBADF;

    /* The object itself (following the magic link inside the broker: this
     * names the target's fd, not a path the target chose). */
    SBX_AUTOCLOSE int obj = openat(task->proc_fd, link, O_PATH | O_CLOEXEC);
    if (obj < 0) {
        if (errno == ENOENT)
            return dirfd == SBX_FILES_AT_FDCWD ? -ENOENT : -EBADF;
        return sbx_neg_errno();
    }
    struct stat st;
    if (fstat(obj, &st) < 0)
        return sbx_neg_errno();
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;

    char raw[SBX_FILES_PATH_MAX];
    ssize_t n = readlinkat(task->proc_fd, link, raw, sizeof raw);
    if (n < 0)
        return sbx_neg_errno();
    if ((size_t)n >= sizeof raw)
        return -ENAMETOOLONG;
    if (n == 0 || raw[0] != '/')
        return -ENOTDIR; /* "pipe:[..]", "anon_inode:..": not a directory path */
    int len = sbx_files_path_canon(raw, (size_t)n, out, cap);
    if (len < 0)
        return len;

    /* The name must lead back to the same directory: a deleted directory
     * ("/x (deleted)") or one outside the broker's reach does not. Try the
     * broker's namespace, then the target's root. */
    SBX_AUTOCLOSE int mine = open_dir_noflw(AT_FDCWD, out, 0);
    if (mine >= 0 && same_inode(mine, obj))
        return len;
    SBX_AUTOCLOSE int root = openat(task->proc_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root >= 0) {
        SBX_AUTOCLOSE int theirs = open_dir_noflw(root, out, RESOLVE_IN_ROOT);
        if (theirs >= 0 && same_inode(theirs, obj))
            return len;
    }
    return -ENOENT;
}

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif

static bool same_mount_inode(int a, int b)
{
    struct statx sa, sb;
    unsigned mask = STATX_INO | STATX_MNT_ID;
    if (statx(a, "", AT_EMPTY_PATH, mask, &sa) < 0 || statx(b, "", AT_EMPTY_PATH, mask, &sb) < 0)
        return false;
    if ((sa.stx_mask & sb.stx_mask & mask) != mask)
        return false;
    return sa.stx_dev_major == sb.stx_dev_major && sa.stx_dev_minor == sb.stx_dev_minor &&
           sa.stx_ino == sb.stx_ino && sa.stx_mnt_id == sb.stx_mnt_id;
}

bool sbx_files_task_dir_in_view(const sbx_files_task *task, int dirfd, const char *name)
{
    char link[SBX_FILES_TASK_LINK_MAX];
    if (!name || name[0] != '/' || sbx_files_task_link(dirfd, link) < 0)
        return false;
    SBX_AUTOCLOSE int obj = openat(task->proc_fd, link, O_PATH | O_CLOEXEC);
    SBX_AUTOCLOSE int root = openat(task->proc_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (obj < 0 || root < 0)
        return false;
    SBX_AUTOCLOSE int theirs = open_dir_noflw(root, name, RESOLVE_IN_ROOT);
    return theirs >= 0 && same_mount_inode(theirs, obj);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int sbx_files_view_mounts_read(int proc_fd, sbx_files_view_mounts *out)
{
    out->n = 0;
    SBX_AUTOCLOSE int fd = openat(proc_fd, "mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_neg_errno();
    /* Each line starts with the mount id; only line starts are parsed,
     * a line may span reads. */
    char buf[4096];
    bool at_start = true;
    uint64_t v = 0;
    bool in_num = false;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sbx_neg_errno();
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (at_start || in_num) {
                if (c >= '0' && c <= '9') {
                    v = v * 10 + (uint64_t)(c - '0');
                    if (v > UINT32_MAX)
                        return -ESRCH;
                    in_num = true;
                    at_start = false;
                    continue;
                }
                if (!in_num || c != ' ')
                    return -ESRCH;
                if (out->n == SBX_FILES_VIEW_MOUNTS_MAX)
                    return -E2BIG;
                out->id[out->n++] = (uint32_t)v;
                v = 0;
                in_num = false;
            }
            if (c == '\n')
                at_start = true;
        }
    }
    if (!at_start || in_num || out->n == 0)
        return -ESRCH;
    qsort(out->id, out->n, sizeof out->id[0], cmp_u32);
    return 0;
}

bool sbx_files_task_dir_on_mounts(const sbx_files_task *task, int dirfd,
                                  const sbx_files_view_mounts *m)
{
    char link[SBX_FILES_TASK_LINK_MAX];
    if (sbx_files_task_link(dirfd, link) < 0)
        return false;
    struct statx sx;
    if (statx(task->proc_fd, link, 0, STATX_MNT_ID, &sx) < 0 || !(sx.stx_mask & STATX_MNT_ID) ||
        sx.stx_mnt_id > UINT32_MAX)
        return false;
    uint32_t id = (uint32_t)sx.stx_mnt_id;
    return bsearch(&id, m->id, m->n, sizeof m->id[0], cmp_u32) != NULL;
}

/* /proc/self and /proc/thread-self name the calling process and thread as
 * the target's own procfs numbers them: the broker performs /proc calls
 * inside the target's root (its /proc is the target's pid namespace's),
 * where the broker's numbers mean nothing or another process. Read only
 * for those paths; the broker's numbers when the status cannot be read. */
static pid_t innermost(int dirfd, pid_t fallback)
{
    sbx_files_proc_status st;
    if (dirfd < 0 || sbx_files_proc_status_read(dirfd, &st) < 0 || !st.nspid_count)
        return fallback;
    return st.nspid[st.nspid_count - 1];
}

static bool names_proc_self(const char *p)
{
    return strncmp(p, "/proc/self", 10) == 0 || strncmp(p, "/proc/thread-self", 17) == 0;
}

static pid_t ns_tid(const sbx_files_task *task)
{
    return innermost(task->proc_fd, task->tid);
}

static pid_t ns_pid(const sbx_files_task *task)
{
    char dir[32];
    snprintf(dir, sizeof dir, "/proc/%d", (int)task->pid);
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    pid_t v = innermost(fd, task->pid);
    sbx_close_keep_errno(fd);
    return v;
}

int sbx_files_resolve(const sbx_files_task *task, int dirfd, const char *path, size_t len, char *out,
                      size_t cap)
{
    if (len == 0)
        return -ENOENT;
    if (memchr(path, '\0', len))
        return -EINVAL;
    if (len >= SBX_FILES_PATH_MAX)
        return -ENAMETOOLONG;
    int r;
    if (path[0] == '/') {
        r = sbx_files_path_canon(path, len, out, cap);
    } else {
        char base[SBX_FILES_PATH_MAX];
        r = sbx_files_task_dir_path(task, dirfd, base, sizeof base);
        if (r < 0)
            return r;
        r = sbx_files_path_join(base, path, len, out, cap);
    }
    if (r < 0)
        return r;
    if (!names_proc_self(out))
        return r;
    return sbx_files_path_rewrite_proc_self(out, cap, ns_pid(task), ns_tid(task));
}

/* ---- /proc/<tid>/status ---- */

/* Skip blanks; parse one unsigned number in `base` (8 or 10) that ends at
 * a blank or the end of the line. Returns the position after it, or NULL
 * (no digits, overflow past 32 bits, junk). */
static const char *status_num(const char *p, const char *end, unsigned base, uint32_t *v)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    uint64_t n = 0;
    const char *start = p;
    for (; p < end && *p >= '0' && *p < (char)('0' + base); p++) {
        n = n * base + (uint64_t)(*p - '0');
        if (n > UINT32_MAX)
            return NULL;
    }
    if (p == start || (p < end && *p != ' ' && *p != '\t'))
        return NULL;
    *v = (uint32_t)n;
    return p;
}

static bool status_blank_to_end(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t')
            return false;
    return true;
}

/* A list of numbers up to the end of the line into v[0..cap); *n gets the
 * count. -ESRCH for junk, -E2BIG for more than cap. */
static int status_list(const char *p, const char *end, uint32_t *v, size_t cap, size_t *n)
{
    *n = 0;
    while (!status_blank_to_end(p, end)) {
        uint32_t x;
        if (!(p = status_num(p, end, 10, &x)))
            return -ESRCH;
        if (*n == cap)
            return -E2BIG;
        v[(*n)++] = x;
    }
    return 0;
}

enum { ST_TGID = 1, ST_NSPID = 2, ST_UID = 4, ST_GID = 8, ST_UMASK = 16, ST_GROUPS = 32 };
#define ST_REQUIRED (ST_TGID | ST_NSPID | ST_UID | ST_GID)
#define ST_ALL (ST_REQUIRED | ST_UMASK | ST_GROUPS)

static bool status_key(const char *line, const char *end, const char *key, const char **rest)
{
    size_t k = strlen(key);
    if ((size_t)(end - line) < k || memcmp(line, key, k) != 0)
        return false;
    *rest = line + k;
    return true;
}

int sbx_files_proc_status_parse(const char *buf, size_t len, sbx_files_proc_status *out)
{
    memset(out, 0, sizeof *out);
    out->creds.umask = 022;
    unsigned seen = 0;
    const char *p = buf, *bend = buf + len;
    while (p < bend && (seen & ST_ALL) != ST_ALL) {
        const char *eol = memchr(p, '\n', (size_t)(bend - p));
        const char *end = eol ? eol : bend;
        const char *r;
        unsigned bit = 0;
        uint32_t v[SBX_FILES_NSPID_MAX > SBX_FILES_MAX_GROUPS ? SBX_FILES_NSPID_MAX
                                                              : SBX_FILES_MAX_GROUPS];
        size_t n = 0;
        int e = 0;
        if (status_key(p, end, "Tgid:", &r)) {
            bit = ST_TGID;
            if (status_list(r, end, v, 1, &n) < 0 || n != 1 || v[0] == 0 || v[0] > INT32_MAX)
                return -ESRCH;
            out->tgid = (pid_t)v[0];
        } else if (status_key(p, end, "NSpid:", &r)) {
            bit = ST_NSPID;
            if (status_list(r, end, v, SBX_FILES_NSPID_MAX, &n) < 0 || n == 0)
                return -ESRCH;
            for (size_t i = 0; i < n; i++) {
                if (v[i] == 0 || v[i] > INT32_MAX)
                    return -ESRCH;
                out->nspid[i] = (pid_t)v[i];
            }
            out->nspid_count = n;
            out->ns_tid = out->nspid[n - 1];
        } else if (status_key(p, end, "Uid:", &r) || status_key(p, end, "Gid:", &r)) {
            bit = p[0] == 'U' ? ST_UID : ST_GID;
            if (status_list(r, end, v, 4, &n) < 0 || n != 4)
                return -ESRCH; /* real, effective, saved, fs */
            if (bit == ST_UID)
                out->creds.fsuid = (uid_t)v[3];
            else
                out->creds.fsgid = (gid_t)v[3];
        } else if (status_key(p, end, "Umask:", &r)) {
            bit = ST_UMASK;
            if (!(r = status_num(r, end, 8, &v[0])) || !status_blank_to_end(r, end) ||
                v[0] > 0777)
                return -ESRCH;
            out->creds.umask = (mode_t)v[0];
        } else if (status_key(p, end, "Groups:", &r)) {
            bit = ST_GROUPS;
            if ((e = status_list(r, end, v, SBX_FILES_MAX_GROUPS, &n)) < 0)
                return e; /* -E2BIG: cannot represent, refuse rather than drop groups */
            for (size_t i = 0; i < n; i++)
                out->creds.groups[i] = (gid_t)v[i];
            out->creds.ngroups = n;
        }
        if (seen & bit)
            return -ESRCH; /* the kernel writes each line once */
        seen |= bit;
        p = eol ? eol + 1 : bend;
    }
    return (seen & ST_REQUIRED) == ST_REQUIRED ? 0 : -ESRCH;
}

int sbx_files_proc_status_read(int proc_fd, sbx_files_proc_status *out)
{
    SBX_AUTOCLOSE int fd = openat(proc_fd, "status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_neg_errno();
    /* The lines we need come first (Name .. NSpid, well under 1 KiB even
     * with 64 groups); one read of the first 4 KiB is enough. A line cut
     * at the end of the buffer is dropped, not misread. */
    char buf[4096];
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -ESRCH;
    size_t len = (size_t)n;
    if (len == sizeof buf) {
        const char *nl = NULL;
        for (size_t i = len; i > 0; i--)
            if (buf[i - 1] == '\n') {
                nl = buf + i;
                break;
            }
        len = nl ? (size_t)(nl - buf) : 0;
    }
    return sbx_files_proc_status_parse(buf, len, out);
}
