/* The conformance probe: a plain dynamically linked program (no libsbx)
 * that a test spawns in a target. It performs raw file syscalls (syscall(2),
 * so no libc wrapper rewrites what is tested) and prints one line per
 * check on stdout: "<label> <result>", where result is "ok ..." or the
 * errno's name. The test compares the whole output with what it expects,
 * identically for every backend.
 *
 *   conf_probe CASE DATA_DIR [ARG]
 *
 * DATA_DIR is the test's scratch tree (under /var/tmp, outside the view). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <linux/stat.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#define RENAME_EXCHANGE (1 << 1)
#endif

static const char *g_dir;

/* g_dir/rel in a rotating static buffer. */
static const char *P(const char *rel)
{
    static __thread char bufs[16][4096]; /* per thread: the threads case */
    static __thread unsigned k;
    char *b = bufs[k++ % 16];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, rel);
    return b;
}

static const char *ename(long rc)
{
    if (rc >= 0)
        return "ok";
    const char *n = strerrorname_np((int)-rc);
    return n ? n : "E?";
}

/* raw syscall: result or -errno */
#define RAW(...) ({ long r_ = syscall(__VA_ARGS__); r_ < 0 ? -(long)errno : r_; })

static void line(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(const char *label, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dprintf(1, "%s %s\n", label, buf);
}

static void res(const char *label, long rc)
{
    line(label, "%s", ename(rc));
}

/* Describe an fd just opened: "ok dir", "ok 'content'" or "ok". */
static void describe_fd(const char *label, int fd, int flags)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        line(label, "ok fstat:%s", ename(-errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        line(label, "ok dir");
        return;
    }
    if ((flags & O_ACCMODE) == O_WRONLY || (flags & O_PATH)) {
        line(label, "ok");
        return;
    }
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        line(label, "ok read:%s", ename(-errno));
        return;
    }
    buf[n] = '\0';
    line(label, "ok '%s'", buf);
}

static void t_openat(const char *label, int dirfd, const char *path, int flags)
{
    long fd = RAW(SYS_openat, dirfd, path, flags, 0666);
    if (fd < 0) {
        res(label, fd);
        return;
    }
    describe_fd(label, (int)fd, flags);
    close((int)fd);
}

static void t_open(const char *label, const char *path, int flags)
{
    long fd = RAW(SYS_open, path, flags, 0666);
    if (fd < 0) {
        res(label, fd);
        return;
    }
    describe_fd(label, (int)fd, flags);
    close((int)fd);
}

static const char *ftype(mode_t m)
{
    return S_ISREG(m) ? "reg" : S_ISDIR(m) ? "dir" : S_ISLNK(m) ? "lnk" : "other";
}

static void t_stat(const char *label, const char *path)
{
    struct stat st;
    long rc = RAW(SYS_stat, path, &st);
    if (rc < 0)
        res(label, rc);
    else
        line(label, "ok %s %lld", ftype(st.st_mode), (long long)(S_ISREG(st.st_mode) ? st.st_size : 0));
}

static void t_lstat(const char *label, const char *path)
{
    struct stat st;
    long rc = RAW(SYS_lstat, path, &st);
    if (rc < 0)
        res(label, rc);
    else
        line(label, "ok %s", ftype(st.st_mode));
}

static void t_readlink(const char *label, const char *path, size_t size)
{
    char buf[256];
    memset(buf, 0, sizeof buf);
    long rc = RAW(SYS_readlink, path, buf, size);
    if (rc < 0)
        res(label, rc);
    else
        line(label, "ok %ld '%.*s'", rc, (int)rc, buf);
}

/* A regular file written by the test; its content, or "-" if missing. */
static void slurp(const char *path, char *out, size_t size)
{
    int fd = (int)RAW(SYS_open, path, O_RDONLY, 0);
    if (fd < 0) {
        snprintf(out, size, "%s", ename(fd));
        return;
    }
    ssize_t n = read(fd, out, size - 1);
    out[n < 0 ? 0 : n] = '\0';
    close(fd);
}

/* ---- cases ---- */

static void c_readonly(void)
{
    t_open("rdonly", P("ro/file"), O_RDONLY);
    t_openat("rdonly-at", AT_FDCWD, P("ro/file"), O_RDONLY);
    t_open("wronly", P("ro/file"), O_WRONLY);
    t_open("rdwr", P("ro/file"), O_RDWR);
    t_open("append", P("ro/file"), O_RDONLY | O_APPEND);
    t_open("rdonly-trunc", P("ro/file"), O_RDONLY | O_TRUNC);
    t_open("wronly-trunc", P("ro/file"), O_WRONLY | O_TRUNC);
    t_open("create", P("ro/new"), O_WRONLY | O_CREAT);
    t_open("create-rdonly", P("ro/new"), O_RDONLY | O_CREAT);
    t_open("excl-existing", P("ro/file"), O_WRONLY | O_CREAT | O_EXCL);
    res("creat", RAW(SYS_creat, P("ro/new"), 0666));
    t_open("opendir", P("ro"), O_RDONLY | O_DIRECTORY);
    t_open("missing", P("ro/missing"), O_RDONLY);
    t_stat("stat", P("ro/file"));
    res("access-r", RAW(SYS_access, P("ro/file"), R_OK));
    res("access-f", RAW(SYS_access, P("ro/file"), F_OK));
    res("mkdir", RAW(SYS_mkdir, P("ro/newdir"), 0777));
    res("rmdir", RAW(SYS_rmdir, P("ro/sub")));
    res("unlink", RAW(SYS_unlink, P("ro/file")));
    res("rename", RAW(SYS_rename, P("ro/file"), P("ro/moved")));
}

static void c_any(void)
{
    t_open("excl-new", P("rw/new"), O_WRONLY | O_CREAT | O_EXCL);
    t_open("excl-again", P("rw/new"), O_WRONLY | O_CREAT | O_EXCL);
    /* an fd returned refers to the file: write through it, read back
     * through another */
    long w = RAW(SYS_openat, AT_FDCWD, P("rw/new"), O_WRONLY, 0);
    long wr = w >= 0 ? (long)write((int)w, "hello", 5) : w;
    line("write", "%s %ld", ename(w), wr);
    if (w >= 0)
        close((int)w);
    t_open("read-back", P("rw/new"), O_RDONLY);
    long a = RAW(SYS_open, P("rw/new"), O_WRONLY | O_APPEND, 0);
    if (a >= 0) {
        (void)!write((int)a, "+more", 5);
        close((int)a);
    }
    res("append", a);
    t_open("rdwr", P("rw/new"), O_RDWR);
    t_open("rdonly-trunc", P("rw/new"), O_RDONLY | O_TRUNC);
    t_open("after-refused-trunc", P("rw/new"), O_RDONLY);
    t_open("wronly-trunc", P("rw/new"), O_WRONLY | O_TRUNC);
    t_stat("stat-truncated", P("rw/new"));
    long c = RAW(SYS_creat, P("rw/creat"), 0600);
    if (c >= 0) {
        (void)!write((int)c, "C", 1);
        close((int)c);
    }
    res("creat", c);
    struct stat st;
    long rc = RAW(SYS_stat, P("rw/creat"), &st);
    line("creat-mode", "%s %o", ename(rc), rc < 0 ? 0 : (unsigned)(st.st_mode & 07777));
    long x = RAW(SYS_openat, AT_FDCWD, P("rw/m0600"), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (x >= 0)
        close((int)x);
    rc = RAW(SYS_stat, P("rw/m0600"), &st);
    line("create-mode", "%s %o", ename(rc), rc < 0 ? 0 : (unsigned)(st.st_mode & 07777));
    t_open("missing", P("rw/missing"), O_RDONLY);
    t_open("missing-dir", P("rw/nodir/x"), O_WRONLY | O_CREAT);
    res("mkdir", RAW(SYS_mkdir, P("rw/sub"), 0777));
    res("mkdir-again", RAW(SYS_mkdir, P("rw/sub"), 0777));
    res("mkdirat", RAW(SYS_mkdirat, AT_FDCWD, P("rw/sub/inner"), 0777));
    res("rmdir-notempty", RAW(SYS_rmdir, P("rw/sub")));
    res("unlinkat-removedir", RAW(SYS_unlinkat, AT_FDCWD, P("rw/sub/inner"), AT_REMOVEDIR));
    res("rmdir", RAW(SYS_rmdir, P("rw/sub")));
    res("rmdir-missing", RAW(SYS_rmdir, P("rw/sub")));
    res("unlink", RAW(SYS_unlink, P("rw/creat")));
    res("unlink-missing", RAW(SYS_unlink, P("rw/creat")));
    res("unlinkat", RAW(SYS_unlinkat, AT_FDCWD, P("rw/m0600"), 0));
    res("unlink-dir", RAW(SYS_unlink, P("rw/keepdir")));
    res("rmdir-file", RAW(SYS_rmdir, P("rw/new")));
    t_open("opendir", P("rw"), O_RDONLY | O_DIRECTORY);
    t_open("directory-on-file", P("rw/new"), O_RDONLY | O_DIRECTORY);
}

static void c_query(void)
{
    t_stat("stat", P("q/file"));
    t_lstat("lstat-link", P("q/link"));
    t_readlink("readlink", P("q/link"), 64);
    res("access-f", RAW(SYS_access, P("q/file"), F_OK));
    res("access-r", RAW(SYS_access, P("q/file"), R_OK));
    t_open("rdonly", P("q/file"), O_RDONLY);
    t_open("wronly", P("q/file"), O_WRONLY);
    t_open("opendir", P("q"), O_RDONLY | O_DIRECTORY);
    t_open("create", P("q/new"), O_WRONLY | O_CREAT);
    res("mkdir", RAW(SYS_mkdir, P("q/newdir"), 0777));
    res("unlink", RAW(SYS_unlink, P("q/file")));
    res("rename", RAW(SYS_rename, P("q/file"), P("q/moved")));
    t_stat("stat-missing", P("q/missing"));
}

/* Every operation on a denied existing object and a denied missing one:
 * the answers must not tell which exists. */
static void oracle_pair(const char *tag, const char *exist, const char *missing)
{
    const char *paths[2] = { exist, missing };
    const char *which[2] = { "exist", "missing" };
    for (int i = 0; i < 2; i++) {
        char l[64];
        const char *p = paths[i];
        struct stat st;
        char buf[64];
#define L(op) (snprintf(l, sizeof l, "%s-%s-%s", tag, which[i], op), l)
        res(L("open"), RAW(SYS_open, p, O_RDONLY, 0));
        res(L("openat-write"), RAW(SYS_openat, AT_FDCWD, p, O_WRONLY, 0));
        res(L("create"), RAW(SYS_open, p, O_WRONLY | O_CREAT, 0666));
        res(L("excl"), RAW(SYS_open, p, O_WRONLY | O_CREAT | O_EXCL, 0666));
        res(L("stat"), RAW(SYS_stat, p, &st));
        res(L("lstat"), RAW(SYS_lstat, p, &st));
        res(L("fstatat"), RAW(SYS_newfstatat, AT_FDCWD, p, &st, 0));
        res(L("access"), RAW(SYS_access, p, F_OK));
        res(L("readlink"), RAW(SYS_readlink, p, buf, sizeof buf));
        res(L("mkdir"), RAW(SYS_mkdir, p, 0777));
        res(L("unlink"), RAW(SYS_unlink, p));
        res(L("rmdir"), RAW(SYS_rmdir, p));
        res(L("rename-from"), RAW(SYS_rename, p, P("rw/got")));
#undef L
    }
}

static void c_oracle(void)
{
    oracle_pair("nomatch", P("no/secret"), P("no/missing"));
    oracle_pair("denyrule", P("rw/deny/secret"), P("rw/deny/missing"));
    oracle_pair("shadow", "/etc/shadow", "/etc/sbx-no-such-file");
    /* allowed and missing: the truth */
    t_open("ro-missing", P("ro/missing"), O_RDONLY);
    t_open("rw-missing", P("rw/missing"), O_RDONLY);
    t_stat("q-missing", P("q/missing"));
}

static void c_paths(void)
{
    t_open("dotdot", P("rw/../ro/file"), O_RDONLY);
    t_open("dot", P("ro/./file"), O_RDONLY);
    char dbl[4096];
    snprintf(dbl, sizeof dbl, "%s//ro///file", g_dir);
    t_open("double-slash", dbl, O_RDONLY);
    t_open("trailing-slash-file", P("ro/file/"), O_RDONLY);
    t_open("trailing-slash-dir", P("ro/"), O_RDONLY | O_DIRECTORY);
    t_stat("stat-trailing-slash-dir", P("ro/sub/"));
    t_stat("stat-trailing-slash-file", P("ro/file/"));
    t_open("create-trailing-slash", P("rw/newfile/"), O_WRONLY | O_CREAT);
    res("mkdir-trailing-slash", RAW(SYS_mkdir, P("rw/newdir/"), 0777));
    res("rmdir-trailing-slash", RAW(SYS_rmdir, P("rw/newdir/")));
    t_open("dotdot-to-denied", P("rw/../no/secret"), O_RDONLY);
    t_open("dotdot-out-of-allowed", P("ro/sub/../../no/secret"), O_RDONLY);
    /* relative paths: against a dirfd, and against the cwd (fchdir to a
     * brokered directory fd is native) */
    int d = (int)RAW(SYS_open, P("ro/sub"), O_RDONLY | O_DIRECTORY, 0);
    res("open-dirfd", d);
    t_openat("dirfd-rel", d, "inner", O_RDONLY);
    t_openat("dirfd-dotdot-allowed", d, "../file", O_RDONLY);
    t_openat("dirfd-dotdot-denied", d, "../../no/secret", O_RDONLY);
    t_openat("dirfd-shadow", d, "../../../../../../../../../etc/shadow", O_RDONLY);
    t_openat("dirfd-absolute", d, P("ro/file"), O_RDONLY);
    int rw = (int)RAW(SYS_open, P("rw"), O_RDONLY | O_DIRECTORY, 0);
    res("fchdir", RAW(SYS_fchdir, rw));
    t_open("cwd-rel-create", "relnew", O_WRONLY | O_CREAT | O_EXCL);
    t_open("cwd-rel-read", "relnew", O_RDONLY);
    t_open("cwd-dot", "./relnew", O_RDONLY);
    t_open("cwd-dotdot-allowed", "../ro/file", O_RDONLY);
    t_open("cwd-dotdot-readonly-write", "../ro/file", O_WRONLY);
    t_open("cwd-dotdot-denied", "../no/secret", O_RDONLY);
    t_open("cwd-shadow", "../../../../../../../../etc/shadow", O_RDONLY);
    t_stat("cwd-stat", "relnew");
    res("cwd-unlink", RAW(SYS_unlink, "relnew"));
    close(d);
    close(rw);
}

static void c_readlink(void)
{
    t_readlink("full", P("ro/link"), 64);
    t_readlink("short3", P("ro/link"), 3);
    t_readlink("short1", P("ro/link"), 1);
    t_readlink("exact", P("ro/link"), 4);
    res("size0", RAW(SYS_readlink, P("ro/link"), (char[8]){ 0 }, 0));
    t_readlink("abs-target", P("ro/abslink"), 255);
    t_readlink("regular", P("ro/file"), 64);
    t_readlink("missing", P("ro/missing"), 64);
    t_readlink("denied", P("no/link"), 64);
    int d = (int)RAW(SYS_open, P("ro"), O_RDONLY | O_DIRECTORY, 0);
    char buf[64] = "";
    long rc = RAW(SYS_readlinkat, d, "link", buf, sizeof buf);
    line("readlinkat", "%s '%.*s'", ename(rc), rc < 0 ? 0 : (int)rc, buf);
    rc = RAW(SYS_readlinkat, d, "../no/link", buf, sizeof buf);
    res("readlinkat-denied", rc);
    close(d);
}

static void c_stat(void)
{
    t_stat("stat", P("ro/file"));
    t_stat("stat-link", P("ro/link"));
    t_lstat("lstat-link", P("ro/link"));
    t_lstat("lstat-file", P("ro/file"));
    t_stat("stat-dir", P("ro/sub"));
    struct stat st;
    long rc = RAW(SYS_newfstatat, AT_FDCWD, P("ro/link"), &st, AT_SYMLINK_NOFOLLOW);
    line("fstatat-nofollow", "%s %s", ename(rc), rc < 0 ? "-" : ftype(st.st_mode));
    rc = RAW(SYS_newfstatat, AT_FDCWD, P("ro/link"), &st, 0);
    line("fstatat-follow", "%s %s", ename(rc), rc < 0 ? "-" : ftype(st.st_mode));
    struct statx sx;
    rc = RAW(SYS_statx, AT_FDCWD, P("ro/file"), 0, STATX_SIZE | STATX_TYPE, &sx);
    line("statx", "%s %llu", ename(rc), rc < 0 ? 0ULL : (unsigned long long)sx.stx_size);
    rc = RAW(SYS_statx, AT_FDCWD, P("no/secret"), 0, STATX_SIZE, &sx);
    res("statx-denied", rc);
    int fd = (int)RAW(SYS_open, P("ro/file"), O_RDONLY, 0);
    rc = RAW(SYS_fstat, fd, &st);
    line("fstat-brokered-fd", "%s %lld", ename(rc), rc < 0 ? 0LL : (long long)st.st_size);
    rc = RAW(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH);
    line("fstatat-empty-path", "%s %lld", ename(rc), rc < 0 ? 0LL : (long long)st.st_size);
    close(fd);
    res("access-f", RAW(SYS_access, P("ro/file"), F_OK));
    res("access-r", RAW(SYS_access, P("ro/file"), R_OK));
    res("access-w-rootfile", RAW(SYS_access, P("ro/file"), W_OK));
    res("access-x", RAW(SYS_access, P("ro/file"), X_OK));
    res("faccessat", RAW(SYS_faccessat, AT_FDCWD, P("ro/file"), R_OK));
    res("faccessat2-eaccess", RAW(SYS_faccessat2, AT_FDCWD, P("ro/file"), R_OK, AT_EACCESS));
    res("access-rw-w", RAW(SYS_access, P("rw/file"), W_OK));
    res("access-missing", RAW(SYS_access, P("ro/missing"), F_OK));
    res("access-denied", RAW(SYS_access, P("no/secret"), F_OK));
}

static bool exists_here(const char *path)
{
    struct stat st;
    return RAW(SYS_lstat, path, &st) == 0;
}

static void c_rename(void)
{
    char buf[64];
    res("any-to-any", RAW(SYS_rename, P("rw/a"), P("rw/b")));
    slurp(P("rw/b"), buf, sizeof buf);
    line("moved-content", "%s", buf);
    line("source-gone", "%d", !exists_here(P("rw/a")));
    res("any-to-readonly", RAW(SYS_rename, P("rw/b"), P("ro/b")));
    res("readonly-to-any", RAW(SYS_rename, P("ro/file"), P("rw/stolen-ro")));
    res("any-to-forbidden", RAW(SYS_rename, P("rw/b"), P("no/b")));
    res("forbidden-to-any", RAW(SYS_rename, P("no/secret"), P("rw/stolen")));
    res("any-to-denyrule", RAW(SYS_rename, P("rw/b"), P("rw/deny/b")));
    res("denyrule-to-any", RAW(SYS_rename, P("rw/deny/secret"), P("rw/stolen-deny")));
    res("query-to-any", RAW(SYS_rename, P("q/file"), P("rw/stolen-q")));
    res("renameat", RAW(SYS_renameat, AT_FDCWD, P("rw/b"), AT_FDCWD, P("rw/c")));
    res("renameat2-noreplace", RAW(SYS_renameat2, AT_FDCWD, P("rw/c"), AT_FDCWD, P("rw/other"),
                                   RENAME_NOREPLACE));
    res("renameat2-exchange", RAW(SYS_renameat2, AT_FDCWD, P("rw/c"), AT_FDCWD, P("rw/other"),
                                  RENAME_EXCHANGE));
    slurp(P("rw/c"), buf, sizeof buf);
    line("exchanged-c", "%s", buf);
    slurp(P("rw/other"), buf, sizeof buf);
    line("exchanged-other", "%s", buf);
    res("exchange-with-forbidden", RAW(SYS_renameat2, AT_FDCWD, P("rw/c"), AT_FDCWD,
                                       P("no/secret"), RENAME_EXCHANGE));
    res("rename-dir", RAW(SYS_rename, P("rw/keepdir"), P("rw/movedir")));
    res("rename-missing", RAW(SYS_rename, P("rw/missing"), P("rw/x")));
    int d = (int)RAW(SYS_open, P("rw"), O_RDONLY | O_DIRECTORY, 0);
    res("renameat-dirfd", RAW(SYS_renameat, d, "c", d, "d"));
    res("renameat-dirfd-escape", RAW(SYS_renameat, d, "d", d, "../no/d"));
    close(d);
}

static void c_link(void)
{
    res("link-forbidden", RAW(SYS_link, P("no/secret"), P("rw/hl")));
    res("linkat-forbidden", RAW(SYS_linkat, AT_FDCWD, P("no/secret"), AT_FDCWD, P("rw/hl2"), 0));
    res("linkat-follow", RAW(SYS_linkat, AT_FDCWD, P("no/secret"), AT_FDCWD, P("rw/hl3"),
                             AT_SYMLINK_FOLLOW));
    res("link-allowed", RAW(SYS_link, P("rw/file"), P("rw/hl4")));
    int fd = (int)RAW(SYS_open, P("rw/file"), O_RDONLY, 0);
    res("linkat-empty-path", RAW(SYS_linkat, fd, "", AT_FDCWD, P("rw/hl5"), AT_EMPTY_PATH));
    close(fd);
    res("symlink", RAW(SYS_symlink, P("no/secret"), P("rw/sl")));
    res("symlinkat", RAW(SYS_symlinkat, P("no/secret"), AT_FDCWD, P("rw/sl2")));
    res("tmpfile", RAW(SYS_open, P("rw"), O_RDWR | O_TMPFILE, 0600));
}

static void c_fdflags(void)
{
    struct {
        const char *label, *path;
        int flags;
    } t[] = {
        { "ro-plain", "ro/file", O_RDONLY },
        { "ro-cloexec", "ro/file", O_RDONLY | O_CLOEXEC },
        { "ro-nonblock", "ro/file", O_RDONLY | O_NONBLOCK },
        { "ro-both", "ro/file", O_RDONLY | O_CLOEXEC | O_NONBLOCK },
        { "rw-rdwr-append", "rw/file", O_RDWR | O_APPEND | O_CLOEXEC },
        { "rw-wronly-nonblock", "rw/file", O_WRONLY | O_NONBLOCK },
        { "dir-cloexec", "ro/sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        long fd = RAW(SYS_openat, AT_FDCWD, P(t[i].path), t[i].flags, 0);
        if (fd < 0) {
            res(t[i].label, fd);
            continue;
        }
        int fdfl = fcntl((int)fd, F_GETFD);
        int fl = fcntl((int)fd, F_GETFL);
        const char *acc = (fl & O_ACCMODE) == O_RDONLY ? "r" : (fl & O_ACCMODE) == O_WRONLY ? "w" : "rw";
        line(t[i].label, "ok cloexec=%d nonblock=%d append=%d acc=%s", !!(fdfl & FD_CLOEXEC),
             !!(fl & O_NONBLOCK), !!(fl & O_APPEND), acc);
        close((int)fd);
    }
}

enum { N_THREADS = 16, N_ITER = 60 };
static atomic_int g_bad, g_good;
static pthread_barrier_t g_bar;

static void *opener(void *arg)
{
    long id = (long)arg;
    char mine[64], want[64];
    snprintf(mine, sizeof mine, "rw/t%ld", id);
    snprintf(want, sizeof want, "thread %ld", id);
    pthread_barrier_wait(&g_bar);
    for (int i = 0; i < N_ITER; i++) {
        char buf[64];
        if (id % 2 == 0) {
            slurp(P("ro/file"), buf, sizeof buf);
            if (strcmp(buf, "RO") == 0) {
                g_good++;
            } else {
                g_bad++;
                dprintf(2, "thread %ld: read '%s'\n", id, buf);
            }
        } else {
            int fd = (int)RAW(SYS_open, P(mine), O_WRONLY | O_CREAT | O_TRUNC, 0666);
            if (fd < 0) {
                g_bad++;
                dprintf(2, "thread %ld: create %s\n", id, ename(fd));
                continue;
            }
            (void)!write(fd, want, strlen(want));
            close(fd);
            slurp(P(mine), buf, sizeof buf);
            if (strcmp(buf, want) == 0) {
                g_good++;
            } else {
                g_bad++;
                dprintf(2, "thread %ld: read back '%s'\n", id, buf);
            }
        }
    }
    return NULL;
}

static void c_threads(void)
{
    pthread_t th[N_THREADS];
    pthread_barrier_init(&g_bar, NULL, N_THREADS);
    for (long i = 0; i < N_THREADS; i++)
        pthread_create(&th[i], NULL, opener, (void *)i);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    line("threads", "good=%d bad=%d", g_good, g_bad);
}

static void c_symlink_escape(void)
{
    /* links the test planted in the writable directory */
    t_open("to-forbidden-read", P("rw/out"), O_RDONLY);
    t_open("to-forbidden-write", P("rw/out"), O_WRONLY | O_TRUNC);
    t_open("to-forbidden-append", P("rw/out"), O_WRONLY | O_APPEND);
    t_stat("to-forbidden-stat", P("rw/out"));
    t_lstat("link-itself-lstat", P("rw/out"));
    t_readlink("link-itself-readlink", P("rw/out"), 255);
    t_open("to-shadow", P("rw/shadow"), O_RDONLY);
    t_open("to-denyrule", P("rw/todeny"), O_RDONLY);
    t_open("to-readonly-read", P("rw/toro"), O_RDONLY);
    t_open("to-readonly-write", P("rw/toro"), O_WRONLY);
    t_open("nofollow", P("rw/out"), O_RDONLY | O_NOFOLLOW);
    t_open("creat-through-dangling", P("rw/dangling"), O_WRONLY | O_CREAT);
    t_open("dir-link-to-forbidden", P("rw/dl/deepfile"), O_RDONLY);
    t_open("dir-link-open", P("rw/dl"), O_RDONLY | O_DIRECTORY);
    t_open("dir-link-trailing-slash", P("rw/dl/"), O_RDONLY);
    t_open("allowed-dir-link-open", P("rw/todir"), O_RDONLY | O_DIRECTORY);
    t_open("allowed-dir-link-slash", P("rw/todir/"), O_RDONLY);
    t_open("allowed-dir-link-nofollow", P("rw/todir"), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    t_open("allowed-dir-link-child", P("rw/todir/inner"), O_RDONLY);
    t_open("file-as-dir", P("rw/file"), O_RDONLY | O_DIRECTORY);
    res("mkdir-through-dir-link", RAW(SYS_mkdir, P("rw/dl/made"), 0777));
    res("unlink-through-dir-link", RAW(SYS_unlink, P("rw/dl/deepfile")));
    res("rename-through-dir-link", RAW(SYS_rename, P("rw/file"), P("rw/dl/planted")));
    res("unlink-the-link", RAW(SYS_unlink, P("rw/out2")));
}

static void c_dotdot_symlink(void)
{
    /* rw/dl -> no/deep. The kernel would take rw/dl/.. to no/; the broker
     * decides and acts on the lexical path rw/<name>. */
    t_open("dotdot-secret", P("rw/dl/../secret"), O_RDONLY);
    t_open("dotdot-lexical-file", P("rw/dl/../file"), O_RDONLY);
    t_open("dotdot-two", P("rw/dl/../../no/secret"), O_RDONLY);
    t_stat("dotdot-stat", P("rw/dl/../secret"));
    t_open("dotdot-create", P("rw/dl/../created"), O_WRONLY | O_CREAT | O_EXCL);
    int d = (int)RAW(SYS_open, P("rw"), O_RDONLY | O_DIRECTORY, 0);
    t_openat("dirfd-dl-dotdot", d, "dl/../secret", O_RDONLY);
    t_openat("dirfd-dl-deep", d, "dl/deepfile", O_RDONLY);
    close(d);
}

static void c_proc(const char *broker_pid)
{
    char p[4096];
    snprintf(p, sizeof p, "/proc/self/root%s", P("no/secret"));
    t_open("self-root-secret", p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/self/root%s", P("ro/file"));
    t_open("self-root-allowed", p, O_RDONLY);
    t_open("self-root-shadow", "/proc/self/root/etc/shadow", O_RDONLY);
    snprintf(p, sizeof p, "/proc/thread-self/root%s", P("no/secret"));
    t_open("thread-self-root-secret", p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/%s/root%s", broker_pid, P("no/secret"));
    t_open("broker-root-secret", p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/%s/root/etc/shadow", broker_pid);
    t_open("broker-root-shadow", p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/%s/cwd", broker_pid);
    t_open("broker-cwd", p, O_RDONLY | O_DIRECTORY);
    t_open("pid1-root-shadow", "/proc/1/root/etc/shadow", O_RDONLY);
    int rw = (int)RAW(SYS_open, P("rw"), O_RDONLY | O_DIRECTORY, 0);
    snprintf(p, sizeof p, "/proc/self/fd/%d/../no/secret", rw);
    t_open("self-fd-dotdot-secret", p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/self/fd/%d/../../../../../etc/shadow", rw);
    t_open("self-fd-dotdot-shadow", p, O_RDONLY);
    snprintf(p, sizeof p, "/proc/self/fd/%d/file", rw);
    t_open("self-fd-child", p, O_RDONLY);
    res("fchdir", RAW(SYS_fchdir, rw));
    snprintf(p, sizeof p, "/proc/self/cwd/../no/secret");
    t_open("self-cwd-dotdot-secret", p, O_RDONLY);
    t_stat("self-root-stat-secret", "/proc/self/root/etc/shadow");
    close(rw);
}

/* Open `rel` for as long as the test swaps it; count content. */
static void race_one(const char *label, const char *rel, double seconds)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long good = 0, wrong = 0, refused = 0, other = 0;
    do {
        for (int i = 0; i < 64; i++) {
            int fd = (int)RAW(SYS_open, P(rel), O_RDONLY | O_NONBLOCK, 0);
            if (fd < 0) {
                refused++;
                continue;
            }
            char buf[32] = "";
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            buf[n < 0 ? 0 : n] = '\0';
            if (strcmp(buf, "GOOD") == 0)
                good++;
            else if (strstr(buf, "SECRET"))
                wrong++;
            else
                other++;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    dprintf(2, "%s: good=%ld wrong=%ld refused=%ld other=%ld\n", label, good, wrong, refused, other);
    line(label, "wrong=%ld good>0:%d other=%ld", wrong, good > 0, other);
}

static void c_race(const char *secs)
{
    double s = atof(secs);
    race_one("race-file", "rw/cur", s / 2);
    race_one("race-dir", "rw/dcur/f", s / 2);
}

/* Another thread of the target rewrites the path string while this one
 * opens it: whatever the interleaving, the open reaches an allowed object
 * or fails. */
static char g_flip[2][512];
static char g_path[512];
static atomic_bool g_flip_stop;

static void *flipper(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load_explicit(&g_flip_stop, memory_order_relaxed); i++)
        memcpy(g_path, g_flip[i & 1], sizeof g_path);
    return NULL;
}

/* One attempt on g_path: 0 reached an allowed object, 1 the wrong one,
 * -1 refused. */
typedef int (*race_attempt)(const void *ctx);

/* Flip g_path between `good` and `bad` in another thread for `seconds`
 * while `attempt` runs on it; one line with the count of wrong answers. */
static void flip_race(const char *label, const char *good, const char *bad, double seconds,
                      race_attempt attempt, const void *ctx)
{
    snprintf(g_flip[0], sizeof g_flip[0], "%s", good);
    snprintf(g_flip[1], sizeof g_flip[1], "%s", bad);
    memcpy(g_path, g_flip[0], sizeof g_path);
    atomic_store(&g_flip_stop, false);
    pthread_t th;
    pthread_create(&th, NULL, flipper, NULL);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long good_n = 0, wrong = 0, refused = 0;
    do {
        for (int i = 0; i < 64; i++) {
            int v = attempt(ctx);
            if (v < 0)
                refused++;
            else if (v > 0)
                wrong++;
            else
                good_n++;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    atomic_store(&g_flip_stop, true);
    pthread_join(th, NULL);
    dprintf(2, "%s: good=%ld wrong=%ld refused=%ld\n", label, good_n, wrong, refused);
    line(label, "wrong=%ld good>0:%d", wrong, good_n > 0);
}

/* Open and read g_path: wrong when the content carries the mark. */
static int open_attempt(const void *bad_mark)
{
    int fd = (int)RAW(SYS_open, g_path, O_RDONLY, 0);
    if (fd < 0)
        return -1;
    char buf[128] = "";
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n < 0 ? 0 : n] = '\0';
    return strstr(buf, bad_mark) != NULL;
}

static void mem_race(const char *label, const char *good, const char *bad, const char *bad_mark,
                     double seconds)
{
    flip_race(label, good, bad, seconds, open_attempt, bad_mark);
}

/* The same against stat, which Landlock does not check: a brokered
 * directory is the base (as a dirfd, then as the cwd) and the other thread
 * turns an absolute native-view path into one relative to that base that
 * leaves the grant. A stat that reaches the secret (its inode, from the
 * test) is a wrong answer: the kernel must never resolve a rewritten
 * string against a base outside the view. */
typedef struct stat_target {
    int dirfd;
    unsigned long long bad_ino;
} stat_target;

/* fstatat(dirfd, g_path): wrong when it reached the secret's inode. */
static int stat_attempt(const void *ctx)
{
    const stat_target *t = ctx;
    struct stat st;
    if (RAW(SYS_newfstatat, t->dirfd, g_path, &st, 0) < 0)
        return -1;
    return (unsigned long long)st.st_ino == t->bad_ino;
}

static void stat_race(const char *label, int dirfd, unsigned long long bad_ino, double seconds)
{
    stat_target t = { dirfd, bad_ino };
    flip_race(label, "/usr/lib/os-release", "../no/secret", seconds, stat_attempt, &t);
}

/* statrace SECONDS:SECRET_INODE */
static void c_statrace(const char *arg)
{
    double s = atof(arg) / 2;
    const char *colon = strchr(arg, ':');
    unsigned long long ino = colon ? strtoull(colon + 1, NULL, 10) : 0;
    int d = (int)RAW(SYS_openat, AT_FDCWD, P("ro"), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (d < 0) {
        line("statrace-open", "%s", ename(d));
        return;
    }
    stat_race("stat-vs-dirfd-base", d, ino, s);
    long r = RAW(SYS_chdir, P("ro"));
    if (r < 0) {
        line("statrace-chdir", "%s", ename(r));
        return;
    }
    stat_race("stat-vs-cwd-base", AT_FDCWD, ino, s);
    close(d);
}

static void c_memrace(const char *secs)
{
    double s = atof(secs) / 3;
    /* native view vs a deny rule inside the view */
    mem_race("native-vs-deny-in-view", "/usr/lib/os-release", "/usr/share/common-licenses/GPL-3",
             "GNU GENERAL PUBLIC LICENSE", s);
    /* brokered vs denied */
    char ro[512], no[512];
    snprintf(ro, sizeof ro, "%s", P("ro/file"));
    snprintf(no, sizeof no, "%s", P("no/secret"));
    mem_race("brokered-vs-denied", ro, no, "SECRET", s);
    /* native vs outside the view */
    mem_race("native-vs-outside", "/usr/lib/os-release", no, "SECRET", s);
}

/* Signals arriving while calls are intercepted: a handler that itself
 * opens a file (nesting in the trap backend), SA_RESTART interruptions of
 * a pending notification; no wrong result, no fd left behind. */
static char g_sig_path[4096];
static volatile sig_atomic_t g_sig_good, g_sig_bad;

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    int fd = (int)syscall(SYS_open, g_sig_path, O_RDONLY, 0);
    char buf[8] = "";
    if (fd >= 0 && read(fd, buf, sizeof buf) == 2 && !memcmp(buf, "RO", 2))
        g_sig_good++;
    else
        g_sig_bad++;
    if (fd >= 0)
        close(fd);
    errno = saved;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

static void c_signals(const char *secs)
{
    snprintf(g_sig_path, sizeof g_sig_path, "%s", P("ro/file"));
    char rw[4096];
    snprintf(rw, sizeof rw, "%s", P("rw/file"));
    int before = count_fds();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 300 }, { 0, 300 } };
    setitimer(ITIMER_REAL, &it, NULL);
    long good = 0, bad = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        int fd = (int)syscall(SYS_open, rw, O_RDONLY, 0);
        char buf[8] = "";
        if (fd >= 0 && pread(fd, buf, sizeof buf, 0) == 2 && !memcmp(buf, "RW", 2))
            good++;
        else
            bad++, dprintf(2, "signals: main open/read failed: %s\n", ename(fd < 0 ? -errno : 0));
        if (fd >= 0)
            close(fd);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < atof(secs));
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    int after = count_fds();
    dprintf(2, "signals: main good=%ld bad=%ld handler good=%d bad=%d fds %d -> %d\n", good, bad,
            (int)g_sig_good, (int)g_sig_bad, before, after);
    line("signals", "main-bad=%ld main-good>0:%d handler-bad=%d handler-ran:%d fd-leak=%d", bad,
         good > 0, (int)g_sig_bad, g_sig_good > 0, after - before);
}

static void t_mode(const char *label, const char *path)
{
    struct stat st;
    long rc = RAW(SYS_stat, path, &st);
    line(label, "%s %o", ename(rc), rc < 0 ? 0 : (unsigned)(st.st_mode & 07777));
}

/* Modes, chmod, truncate, utimensat: the other brokered calls. */
static void c_modes(void)
{
    umask(022);
    long fd = RAW(SYS_open, P("rw/m1"), O_WRONLY | O_CREAT | O_EXCL, 07777);
    if (fd >= 0)
        close((int)fd);
    res("create-07777", fd);
    t_mode("create-07777-mode", P("rw/m1"));
    res("mkdir-07777", RAW(SYS_mkdir, P("rw/md"), 07777));
    t_mode("mkdir-07777-mode", P("rw/md"));
    umask(077);
    fd = RAW(SYS_creat, P("rw/m2"), 0666);
    if (fd >= 0)
        close((int)fd);
    t_mode("umask-077-mode", P("rw/m2"));
    res("chmod", RAW(SYS_chmod, P("rw/m2"), 0640));
    t_mode("chmod-mode", P("rw/m2"));
    res("chmod-setuid", RAW(SYS_chmod, P("rw/m2"), 04755));
    res("fchmodat", RAW(SYS_fchmodat, AT_FDCWD, P("rw/m2"), 0604));
    t_mode("fchmodat-mode", P("rw/m2"));
    res("chmod-readonly", RAW(SYS_chmod, P("ro/file"), 0666));
    res("chmod-denied", RAW(SYS_chmod, P("no/secret"), 0600));
    res("truncate", RAW(SYS_truncate, P("rw/file"), 1));
    t_stat("truncate-size", P("rw/file"));
    res("truncate-readonly", RAW(SYS_truncate, P("ro/file"), 0));
    res("truncate-denied", RAW(SYS_truncate, P("no/secret"), 0));
    res("truncate-dir", RAW(SYS_truncate, P("rw/keepdir"), 0));
    struct timespec ts[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    res("utimensat-not-owner", RAW(SYS_utimensat, AT_FDCWD, P("rw/file"), ts, 0));
    res("utimensat", RAW(SYS_utimensat, AT_FDCWD, P("rw/m2"), ts, 0));
    struct stat st;
    long rc = RAW(SYS_stat, P("rw/m2"), &st);
    line("utimensat-mtime", "%s %lld", ename(rc), rc < 0 ? 0LL : (long long)st.st_mtime);
    res("utimensat-readonly", RAW(SYS_utimensat, AT_FDCWD, P("ro/file"), ts, 0));
    res("utimensat-denied", RAW(SYS_utimensat, AT_FDCWD, P("no/secret"), ts, 0));
    res("utime-refused", RAW(SYS_utime, P("rw/file"), NULL));
    res("chown-refused", RAW(SYS_chown, P("rw/file"), 0, 0));
    res("mknod-refused", RAW(SYS_mknod, P("rw/fifo"), S_IFIFO | 0666, 0));
    res("setxattr-refused", RAW(SYS_setxattr, P("rw/file"), "user.x", "1", 1, 0));
    res("getxattr-refused", RAW(SYS_getxattr, P("rw/file"), "user.x", NULL, 0));
    res("statfs-refused", RAW(SYS_statfs, P("rw"), (char[256]){ 0 }));
    res("chroot-refused", RAW(SYS_chroot, P("rw")));
    res("name-to-handle-refused", RAW(SYS_name_to_handle_at, AT_FDCWD, P("rw/file"), NULL, NULL, 0));
    res("inotify-refused", RAW(SYS_inotify_add_watch, 0, P("rw"), 0x2));
}

static void c_iouring(void)
{
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    res("io_uring_setup", RAW(SYS_io_uring_setup, 4, &params));
    res("io_uring_enter", RAW(SYS_io_uring_enter, 3, 1, 0, 0, NULL, 0));
    res("io_uring_register", RAW(SYS_io_uring_register, 3, 0, NULL, 0));
}

static void c_int80(void)
{
    char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED) {
        line("mmap32", "%s", ename(-errno));
        return;
    }
    snprintf(low, 4096, "%s", P("no/secret"));
    line("before", "1");
    long ret;
    /* i386 open(path, O_RDONLY): eax = 5 */
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(5L), "b"(low), "c"(0L), "d"(0L) : "memory");
    line("after", "%s", ename(ret));
}

/* Which backend serves this process: the trap backend's shim is loaded
 * and owns SIGSYS; under notify neither. (Loaded objects are found with
 * dl_iterate_phdr, not /proc/self/maps: no file call in the check.) */
static int find_shim(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libsbx-preload"))
        *(bool *)data = true;
    return 0;
}

static const char *backend(void)
{
    struct sigaction sa;
    bool handler = sigaction(SIGSYS, NULL, &sa) == 0 && (sa.sa_flags & SA_SIGINFO) &&
                   sa.sa_sigaction != NULL;
    bool shim = false;
    dl_iterate_phdr(find_shim, &shim);
    return handler && shim ? "trap" : !handler && !shim ? "notify" : "mixed";
}

static void proc_line(const char *label, const char *path)
{
    char buf[64];
    slurp(path, buf, sizeof buf);
    line(label, "%s", strncmp(buf, "Name:", 5) == 0 ? "Name:" : buf);
}

static void c_procself(void)
{
    proc_line("proc-self-status", "/proc/self/status");
    proc_line("proc-thread-self-status", "/proc/thread-self/status");
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/status", (int)getpid());
    proc_line("proc-pid-status", p);
}

static void c_audit(void)
{
    t_open("allowed", P("ro/file"), O_RDONLY);
    t_open("nomatch", P("no/secret"), O_RDONLY);
    t_open("denyrule", P("rw/deny/secret"), O_RDONLY);
    t_open("denyrule-missing", P("rw/deny/missing"), O_RDONLY);
    t_stat("stat", P("q/file"));
    res("mkdir-denied", RAW(SYS_mkdir, P("no/x"), 0777));
    res("rename-denied", RAW(SYS_rename, P("rw/a"), P("no/a")));
}

static void t_openat2(const char *label, int dirfd, const char *path, int flags,
                      unsigned long long resolve)
{
    struct open_how how = { .flags = (unsigned long long)flags, .resolve = resolve };
    long fd = RAW(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd < 0) {
        res(label, fd);
        return;
    }
    describe_fd(label, (int)fd, flags);
    close((int)fd);
}

static void c_openat2(void)
{
    t_openat2("plain", AT_FDCWD, P("ro/file"), O_RDONLY, 0);
    t_openat2("write-readonly", AT_FDCWD, P("ro/file"), O_WRONLY, 0);
    t_openat2("denied", AT_FDCWD, P("no/secret"), O_RDONLY, 0);
    t_openat2("denied-missing", AT_FDCWD, P("no/missing"), O_RDONLY, 0);
    t_openat2("no-symlinks-link", AT_FDCWD, P("ro/link"), O_RDONLY, RESOLVE_NO_SYMLINKS);
    t_openat2("no-symlinks-file", AT_FDCWD, P("ro/file"), O_RDONLY, RESOLVE_NO_SYMLINKS);
    t_openat2("symlink-followed", AT_FDCWD, P("ro/link"), O_RDONLY, 0);
    t_openat2("escape-link", AT_FDCWD, P("rw/out"), O_RDONLY, 0);
    int d = (int)RAW(SYS_open, P("ro/sub"), O_RDONLY | O_DIRECTORY, 0);
    t_openat2("beneath-inside", d, "inner", O_RDONLY, RESOLVE_BENEATH);
    t_openat2("beneath-dotdot", d, "../file", O_RDONLY, RESOLVE_BENEATH);
    t_openat2("dirfd-dotdot-denied", d, "../../no/secret", O_RDONLY, 0);
    close(d);
    struct open_how m = { .flags = O_RDONLY };
    res("short-how", RAW(SYS_openat2, AT_FDCWD, P("ro/file"), &m, 8));
}

/* struct open_how checks the kernel makes before anything is opened */
static void c_openat2_how(void)
{
    struct open_how m = { .flags = O_RDONLY, .mode = 0644 };
    res("mode-without-creat", RAW(SYS_openat2, AT_FDCWD, P("ro/file"), &m, sizeof m));
    struct open_how big[2];
    memset(big, 0, sizeof big);
    big[0].flags = O_RDONLY;
    ((char *)big)[sizeof big[0] + 1] = 1; /* non-zero tail */
    res("nonzero-tail", RAW(SYS_openat2, AT_FDCWD, P("ro/file"), big, sizeof big));
}

static void c_x32(void)
{
    line("before", "1");
    /* x32 open (nr 2 | __X32_SYSCALL_BIT) */
    long ret = syscall(0x40000000L | 2, P("no/secret"), O_RDONLY, 0);
    line("after", "%s", ename(ret < 0 ? -errno : ret));
}

static void c_denyerrno(void)
{
    t_open("nomatch", P("no/secret"), O_RDONLY);
    t_open("nomatch-missing", P("no/missing"), O_RDONLY);
    t_open("denyrule", P("rw/deny/secret"), O_RDONLY);
    t_open("denyrule-missing", P("rw/deny/missing"), O_RDONLY);
    res("denyrule-mkdir", RAW(SYS_mkdir, P("rw/deny/x"), 0777));
    res("denyrule-access", RAW(SYS_access, P("rw/deny/secret"), F_OK));
    res("denyrule-unlink", RAW(SYS_unlink, P("rw/deny/secret")));
    t_stat("denyrule-stat", P("rw/deny/secret"));
    t_open("readonly-write", P("ro/file"), O_WRONLY);
    t_open("allowed", P("ro/file"), O_RDONLY);
}

/* exec is native only: a brokered program is not executable */
static void c_exec(void)
{
    static char prog[] = "prog";
    char *argv[] = { prog, NULL };
    char *envp[] = { NULL };
    res("exec-brokered", RAW(SYS_execve, P("rw/prog"), argv, envp));
    res("exec-denied", RAW(SYS_execve, P("no/prog"), argv, envp));
}

static void c_badptr(void)
{
    res("null-path", RAW(SYS_open, NULL, O_RDONLY, 0));
    res("bad-pointer", RAW(SYS_open, (const char *)8, O_RDONLY, 0));
    res("bad-pointer-stat", RAW(SYS_stat, (const char *)8, (struct stat *)8));
    res("bad-pointer-mkdir", RAW(SYS_mkdir, (const char *)8, 0777));
}

static void c_opath(void)
{
    int pd = (int)RAW(SYS_open, P("ro"), O_PATH | O_DIRECTORY, 0);
    res("opath-dir", pd);
    t_openat("opath-dirfd", pd, "file", O_RDONLY);
    if (pd >= 0)
        close(pd);
    t_open("opath-file", P("ro/file"), O_PATH);
    t_open("opath-write", P("rw/file"), O_PATH | O_WRONLY);
    t_open("opath-denied", P("no/secret"), O_PATH);
}

/* Odd arguments: bad pointers, empty and overlong paths, odd dirfds. */
/* What an O_PATH open answers, beyond "ok". */
static void c_opath_limits(void)
{
    long d = RAW(SYS_open, P("ro"), O_PATH | O_DIRECTORY, 0);
    char dents[4096];
    long g = d < 0 ? d : RAW(SYS_getdents64, (int)d, dents, sizeof dents);
    res("opath-dir-getdents", g < 0 ? g : 0);
    long f = RAW(SYS_open, P("ro/file"), O_PATH, 0);
    char b[8];
    long n = f < 0 ? f : RAW(SYS_read, (int)f, b, sizeof b);
    if (n < 0)
        res("opath-file-read", n);
    else
        line("opath-file-read", "ok %ld", n);
    int fl = f < 0 ? 0 : fcntl((int)f, F_GETFL);
    line("opath-flags", "%s", (fl & O_PATH) ? "path" : (fl & O_ACCMODE) == O_RDONLY ? "rdonly" : "?");
    long u = RAW(SYS_open, P("ro/unreadable"), O_PATH, 0);
    res("opath-unreadable", u);
    long q = RAW(SYS_open, P("ro/fifo"), O_PATH, 0);
    res("opath-fifo", q);
    res("opath-dir-fchdir", d < 0 ? d : RAW(SYS_fchdir, (int)d));
    const long fds[] = { d, f, u, q };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close((int)fds[i]);
}

static void c_args(void)
{
    res("empty-path", RAW(SYS_open, "", O_RDONLY, 0));
    static char longp[5000];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    res("too-long", RAW(SYS_open, longp, O_RDONLY, 0));
    /* a string that runs into an unmapped page */
    char *pg = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pg + 4096, 4096);
    memset(pg, 'b', 4096);
    pg[0] = '/';
    res("unterminated", RAW(SYS_open, pg, O_RDONLY, 0));
    /* a path that ends exactly at the page end */
    const char *ro = P("ro/file");
    size_t len = strlen(ro) + 1;
    memcpy(pg + 4096 - len, ro, len);
    t_open("ends-at-page-end", pg + 4096 - len, O_RDONLY);
    munmap(pg, 4096);
    res("bad-dirfd", RAW(SYS_openat, 999, "file", O_RDONLY, 0));
    int f = (int)RAW(SYS_open, P("ro/file"), O_RDONLY, 0);
    res("file-as-dirfd", RAW(SYS_openat, f, "x", O_RDONLY, 0));
    close(f);
    int rw = (int)RAW(SYS_open, P("rw"), O_RDONLY | O_DIRECTORY, 0);
    res("mkdirat-dirfd", RAW(SYS_mkdirat, rw, "made", 0777));
    res("mkdirat-dirfd-escape", RAW(SYS_mkdirat, rw, "../no/made", 0777));
    res("unlinkat-dirfd-dir", RAW(SYS_unlinkat, rw, "made", AT_REMOVEDIR));
    res("unlinkat-bad-flags", RAW(SYS_unlinkat, rw, "file", 0x1234));
    res("faccessat-dirfd", RAW(SYS_faccessat, rw, "file", W_OK));
    res("faccessat-dirfd-escape", RAW(SYS_faccessat, rw, "../no/secret", F_OK));
    res("faccessat2-nofollow-link", RAW(SYS_faccessat2, rw, "out", F_OK, AT_SYMLINK_NOFOLLOW));
    res("faccessat2-follow-link", RAW(SYS_faccessat2, rw, "out", F_OK, 0));
    res("faccessat2-bad-flags", RAW(SYS_faccessat2, rw, "file", F_OK, 0x8000000));
    res("access-bad-mode", RAW(SYS_access, P("ro/file"), 0x40));
    long c = RAW(SYS_openat, rw, "created-at", O_WRONLY | O_CREAT | O_EXCL, 0600);
    res("openat-dirfd-create", c);
    if (c >= 0)
        close((int)c);
    res("unlinkat-dirfd", RAW(SYS_unlinkat, rw, "created-at", 0));
    res("fchdir", RAW(SYS_fchdir, rw));
    res("creat-cwd", RAW(SYS_creat, "creat-rel", 0600));
    res("mkdir-cwd", RAW(SYS_mkdir, "mkdir-rel", 0777));
    res("rmdir-cwd", RAW(SYS_rmdir, "mkdir-rel"));
    res("access-cwd", RAW(SYS_access, "creat-rel", W_OK));
    res("unlink-cwd", RAW(SYS_unlink, "creat-rel"));
    close(rw);
}

/* getcwd through the raw syscall with a buffer of `size` bytes: "ok N
 * 'name'" with the scratch tree's prefix written as "D". */
static void t_getcwd(const char *label, size_t size)
{
    char buf[4200];
    memset(buf, 'X', sizeof buf);
    long n = RAW(SYS_getcwd, buf, size);
    if (n < 0) {
        res(label, n);
        return;
    }
    size_t dl = strlen(g_dir);
    if ((size_t)n != strlen(buf) + 1)
        line(label, "ok %ld bad-length", n);
    else if (!strncmp(buf, g_dir, dl) && (buf[dl] == '\0' || buf[dl] == '/'))
        line(label, "ok %ld 'D%s'", n, buf + dl);
    else
        line(label, "ok %ld '%s'", n, buf);
}

/* libc's getcwd (what programs use): the name or the errno. */
static void t_libc_getcwd(const char *label)
{
    char buf[4096];
    if (!getcwd(buf, sizeof buf)) {
        res(label, -errno);
        return;
    }
    size_t dl = strlen(g_dir);
    if (!strncmp(buf, g_dir, dl))
        line(label, "ok 'D%s'", buf + dl);
    else
        line(label, "ok '%s'", buf);
}

/* Is the cwd the directory `abs` names (same device and inode)? */
static void same_dir_as(const char *label, const char *abs)
{
    struct stat a, b;
    long r = RAW(SYS_newfstatat, AT_FDCWD, "", &a, AT_EMPTY_PATH);
    long q = RAW(SYS_stat, abs, &b);
    if (r < 0 || q < 0)
        res(label, r < 0 ? r : q);
    else
        line(label, "ok same=%d", a.st_dev == b.st_dev && a.st_ino == b.st_ino);
}

static void *chdir_thread(void *arg)
{
    return (void *)RAW(SYS_chdir, (const char *)arg);
}

/* chdir into brokered directories and what follows from there. */
static void c_chdir(void)
{
    /* into a READONLY directory, and relative calls from there */
    res("chdir-ro", RAW(SYS_chdir, P("ro")));
    t_getcwd("getcwd", 4096);
    t_libc_getcwd("libc-getcwd");
    size_t need = strlen(P("ro")) + 1;
    t_getcwd("getcwd-exact", need);
    t_getcwd("getcwd-short", need - 1);
    t_getcwd("getcwd-zero", 0);
    res("getcwd-efault", RAW(SYS_getcwd, (char *)8, 4096));
    t_open("rel-read", "file", O_RDONLY);
    t_stat("rel-stat", "sub/inner");
    t_open("rel-write", "file", O_WRONLY);
    t_open("rel-create", "new", O_WRONLY | O_CREAT | O_EXCL);
    t_open("rel-dotdot-secret", "../no/secret", O_RDONLY);
    t_stat("rel-dotdot-secret-stat", "../no/secret");
    t_open("rel-dotdot-allowed", "../rw/file", O_RDONLY);
    t_open("rel-dot", ".", O_RDONLY | O_DIRECTORY);
    res("chdir-rel-sub", RAW(SYS_chdir, "sub"));
    t_getcwd("getcwd-sub", 4096);
    t_open("sub-rel-read", "inner", O_RDONLY);
    res("chdir-dotdot-granted", RAW(SYS_chdir, ".."));
    t_getcwd("getcwd-back", 4096);
    res("chdir-dotdot-parent-refused", RAW(SYS_chdir, ".."));
    t_getcwd("getcwd-unchanged", 4096);
    /* refusals: no rule, deny rule, QUERY only, missing, a file */
    res("chdir-norule", RAW(SYS_chdir, P("no")));
    res("chdir-norule-missing", RAW(SYS_chdir, P("no/missing")));
    res("chdir-denyrule", RAW(SYS_chdir, P("rw/deny")));
    res("chdir-query", RAW(SYS_chdir, P("q")));
    res("chdir-missing", RAW(SYS_chdir, P("ro/missing")));
    res("chdir-file", RAW(SYS_chdir, P("ro/file")));
    res("chdir-locked", RAW(SYS_chdir, P("rw/locked")));
    res("chdir-empty", RAW(SYS_chdir, ""));
    res("chdir-efault", RAW(SYS_chdir, (char *)8));
    res("chdir-rel-escape", RAW(SYS_chdir, "../../../../../../etc"));
    same_dir_as("rel-escape-is-view-etc", "/etc"); /* the view's /etc, not the host's */
    res("chdir-ro-4", RAW(SYS_chdir, P("ro")));
    /* symlinks: out of the grant refused, into another grant followed */
    res("chdir-link-out", RAW(SYS_chdir, P("rw/dl")));
    res("chdir-link-in", RAW(SYS_chdir, P("rw/todir")));
    t_getcwd("getcwd-link-in", 4096);
    t_getcwd("still-there", 4096);
    /* ANY: create, rename, remove relative to the cwd */
    res("chdir-rw", RAW(SYS_chdir, P("rw")));
    long fd = RAW(SYS_open, "made", O_WRONLY | O_CREAT | O_EXCL, 0644);
    res("rw-create", fd);
    if (fd >= 0)
        close((int)fd);
    res("rw-mkdir", RAW(SYS_mkdir, "made-dir", 0755));
    res("rw-rename", RAW(SYS_rename, "made", "made-dir/moved"));
    res("rw-access", RAW(SYS_access, "made-dir/moved", W_OK));
    res("rw-rename-out", RAW(SYS_rename, "made-dir/moved", "../no/stolen"));
    res("rw-unlink", RAW(SYS_unlink, "made-dir/moved"));
    res("rw-rmdir", RAW(SYS_rmdir, "made-dir"));
    t_open("rw-rel-deny", "deny/secret", O_RDONLY);
    /* the cwd renamed, then removed */
    res("mkdir-old", RAW(SYS_mkdir, "old", 0755));
    res("chdir-old", RAW(SYS_chdir, "old"));
    res("rename-cwd", RAW(SYS_rename, P("rw/old"), P("rw/renamed")));
    t_getcwd("getcwd-renamed", 4096);
    fd = RAW(SYS_open, "in-renamed", O_WRONLY | O_CREAT | O_EXCL, 0644);
    res("create-in-renamed", fd);
    if (fd >= 0)
        close((int)fd);
    res("unlink-in-renamed", RAW(SYS_unlink, P("rw/renamed/in-renamed")));
    res("rmdir-cwd", RAW(SYS_rmdir, P("rw/renamed")));
    t_getcwd("getcwd-removed", 4096);
    t_libc_getcwd("libc-getcwd-removed");
    t_open("create-in-removed", "x", O_WRONLY | O_CREAT);
    /* back into the view: absolute, relative from a brokered cwd, fchdir */
    int tmp = (int)RAW(SYS_open, "/tmp", O_RDONLY | O_DIRECTORY, 0);
    fd = RAW(SYS_open, "/tmp/conf-mine", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        (void)!write((int)fd, "MINE", 4);
        close((int)fd);
    }
    res("chdir-ro-again", RAW(SYS_chdir, P("ro")));
    t_open("rel-into-view", "../../../../../../../tmp/conf-mine", O_RDONLY);
    t_stat("rel-into-view-stat", "../../../../../../../tmp/conf-mine");
    res("rel-into-view-access", RAW(SYS_access, "../../../../../../../tmp/conf-mine", R_OK));
    res("chdir-rel-into-view", RAW(SYS_chdir, "../../../../../../../tmp"));
    same_dir_as("rel-into-view-is-view-tmp", "/tmp");
    t_getcwd("getcwd-view", 4096);
    t_open("view-rel-read", "conf-mine", O_RDONLY);
    res("chdir-ro-3", RAW(SYS_chdir, P("ro")));
    res("fchdir-view", RAW(SYS_fchdir, tmp));
    t_getcwd("getcwd-fchdir", 4096);
    t_open("fchdir-rel-read", "conf-mine", O_RDONLY);
    res("chdir-usr", RAW(SYS_chdir, "/usr"));
    t_getcwd("getcwd-usr", 4096);
    res("chdir-root", RAW(SYS_chdir, "/"));
    t_getcwd("getcwd-root", 4096);
    close(tmp);
    /* threads share the cwd: chdir in one, relative calls in another */
    pthread_t th;
    void *rv = NULL;
    static char sub[4096];
    snprintf(sub, sizeof sub, "%s", P("ro/sub"));
    if (pthread_create(&th, NULL, chdir_thread, sub) == 0)
        pthread_join(th, &rv);
    res("thread-chdir", (long)rv);
    t_open("thread-rel-read", "inner", O_RDONLY);
    t_getcwd("thread-getcwd", 4096);
}

#define TRAP_MAGIC 0x5342585452415021ull /* SBX_TRAP_MAGIC: the trap's native re-issue */

/* Calls Landlock does not mediate (stat, access, readlink, chmod,
 * utimensat), issued by the program itself with the trap's native
 * re-issue marker, relative to a brokered cwd and a brokered dirfd: the
 * kernel would reach the host's tree unchecked, so they must still be
 * the broker's. */
static void c_magic(void)
{
    struct stat st;
    char b[64];
    struct timespec ts[2] = { { 1, 0 }, { 1, 0 } };
    res("chdir", RAW(SYS_chdir, P("ro")));
    res("stat", RAW(SYS_newfstatat, AT_FDCWD, "../no/secret", &st, 0, 0, TRAP_MAGIC));
    res("statx", RAW(SYS_statx, AT_FDCWD, "../no/secret", 0, STATX_SIZE, &st, TRAP_MAGIC));
    res("access", RAW(SYS_faccessat, AT_FDCWD, "../no/secret", F_OK, 0, 0, TRAP_MAGIC));
    res("readlink", RAW(SYS_readlinkat, AT_FDCWD, "../no/link", b, sizeof b, 0, TRAP_MAGIC));
    res("chmod", RAW(SYS_fchmodat, AT_FDCWD, "../no/mine", 0666, 0, 0, TRAP_MAGIC));
    res("utimens", RAW(SYS_utimensat, AT_FDCWD, "../no/mine", ts, 0, 0, TRAP_MAGIC));
    res("chdir-root", RAW(SYS_chdir, "/"));
    long d = RAW(SYS_open, P("ro"), O_RDONLY | O_DIRECTORY, 0);
    res("dirfd", d < 0 ? d : 0);
    res("dirfd-stat", RAW(SYS_newfstatat, (int)d, "../no/secret", &st, 0, 0, TRAP_MAGIC));
    res("dirfd-chmod", RAW(SYS_fchmodat, (int)d, "../no/mine", 0666, 0, 0, TRAP_MAGIC));
    res("view-stat", RAW(SYS_newfstatat, AT_FDCWD, "/usr", &st, 0, 0, TRAP_MAGIC));
    /* Landlock does not check O_PATH opens or chdir either */
    long o = RAW(SYS_openat, (int)d, "../no/secret", O_PATH | O_CLOEXEC, 0, 0, TRAP_MAGIC);
    res("dirfd-opath", o < 0 ? o : 0);
    if (o >= 0)
        close((int)o);
    res("dirfd-opath-missing",
        RAW(SYS_openat, (int)d, "../no/missing", O_PATH | O_CLOEXEC, 0, 0, TRAP_MAGIC));
    if (d >= 0 && RAW(SYS_fchdir, (int)d) == 0) {
        res("cwd-chdir", RAW(SYS_chdir, "../no/deep", 0, 0, 0, 0, TRAP_MAGIC));
        res("cwd-chdir-missing", RAW(SYS_chdir, "../no/nothere", 0, 0, 0, 0, TRAP_MAGIC));
        RAW(SYS_chdir, "/");
    }
    if (d >= 0)
        close((int)d);
}

/* A forked child's chdir: it does not share the program's fs_struct. */
static void c_chdir_fork(void)
{
    res("chdir-ro", RAW(SYS_chdir, P("ro")));
    int pfd[2];
    if (pipe(pfd) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        long r = RAW(SYS_chdir, P("rw"));
        char b[4096];
        long n = RAW(SYS_getcwd, b, sizeof b);
        bool in_rw = n > 0 && !strcmp(b, P("rw"));
        long v = RAW(SYS_chdir, "/tmp"); /* the view: the kernel's own chdir */
        (void)!write(pfd[1], &r, sizeof r);
        (void)!write(pfd[1], &in_rw, sizeof in_rw);
        (void)!write(pfd[1], &v, sizeof v);
        _exit(0);
    }
    long r = -EIO, v = -EIO;
    bool in_rw = false;
    close(pfd[1]);
    if (pid < 0 || read(pfd[0], &r, sizeof r) != sizeof r ||
        read(pfd[0], &in_rw, sizeof in_rw) != sizeof in_rw || read(pfd[0], &v, sizeof v) != sizeof v)
        r = -EIO;
    close(pfd[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    line("child-chdir-brokered", "%s in_rw=%d", ename(r), in_rw);
    res("child-chdir-view", v);
    t_getcwd("parent-cwd-unchanged", 4096);
    t_open("parent-rel-read", "file", O_RDONLY);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 100;
    line("backend", "%s", backend());
    g_dir = argv[2];
    const char *c = argv[1];
    const char *arg = argc > 3 ? argv[3] : "0";
    if (!strcmp(c, "readonly"))
        c_readonly();
    else if (!strcmp(c, "any"))
        c_any();
    else if (!strcmp(c, "query"))
        c_query();
    else if (!strcmp(c, "oracle"))
        c_oracle();
    else if (!strcmp(c, "paths"))
        c_paths();
    else if (!strcmp(c, "readlink"))
        c_readlink();
    else if (!strcmp(c, "stat"))
        c_stat();
    else if (!strcmp(c, "rename"))
        c_rename();
    else if (!strcmp(c, "link"))
        c_link();
    else if (!strcmp(c, "fdflags"))
        c_fdflags();
    else if (!strcmp(c, "threads"))
        c_threads();
    else if (!strcmp(c, "symlink_escape"))
        c_symlink_escape();
    else if (!strcmp(c, "dotdot_symlink"))
        c_dotdot_symlink();
    else if (!strcmp(c, "proc"))
        c_proc(arg);
    else if (!strcmp(c, "race"))
        c_race(arg);
    else if (!strcmp(c, "procself"))
        c_procself();
    else if (!strcmp(c, "statrace") && arg)
        c_statrace(arg);
    else if (!strcmp(c, "memrace"))
        c_memrace(arg);
    else if (!strcmp(c, "signals"))
        c_signals(arg);
    else if (!strcmp(c, "modes"))
        c_modes();
    else if (!strcmp(c, "iouring"))
        c_iouring();
    else if (!strcmp(c, "audit"))
        c_audit();
    else if (!strcmp(c, "openat2"))
        c_openat2();
    else if (!strcmp(c, "openat2_how"))
        c_openat2_how();
    else if (!strcmp(c, "args"))
        c_args();
    else if (!strcmp(c, "denyerrno"))
        c_denyerrno();
    else if (!strcmp(c, "exec"))
        c_exec();
    else if (!strcmp(c, "badptr"))
        c_badptr();
    else if (!strcmp(c, "opath"))
        c_opath();
    else if (!strcmp(c, "chdir"))
        c_chdir();
    else if (!strcmp(c, "opath_limits"))
        c_opath_limits();
    else if (!strcmp(c, "chdir_fork"))
        c_chdir_fork();
    else if (!strcmp(c, "magic"))
        c_magic();
    else if (!strcmp(c, "x32"))
        c_x32();
    else if (!strcmp(c, "int80"))
        c_int80();
    else if (!strcmp(c, "openx") && argc > 5) /* exploration: openx D PATH FLAGS MODE */
        argv[5][0] == 'a' ? t_openat("openx", AT_FDCWD, argv[3], (int)strtol(argv[4], NULL, 0)) : t_open("openx", argv[3], (int)strtol(argv[4], NULL, 0));
    else
        return 100;
    line("end", "%s", c);
    return 0;
}
