/* notify backend end to end, without the broker component: a forked child
 * installs the filter and sends the listener back over a socketpair; the
 * test process serves it with a test decision function:
 *   A: read-only (brokered), B: anything (brokered), C: denied,
 *   /usr /lib* /bin /etc /proc /dev: native view (read-only), else denied. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <linux/openat2.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <grp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbx_test.h"
#include "subsys/files/files_dispatcher.h"
#include "target/interception/notify.h"

static char *g_root;
static char g_a[512], g_b[512], g_c[512];
static atomic_int g_audit_deny, g_audit_broker, g_audit_c, g_decisions;

static bool under(const char *p, const char *d)
{
    return sbx_files_path_is_under(p, d);
}

static int decide_test(void *ctx, const sbx_files_query *req, sbx_files_decision *out)
{
    (void)ctx;
    atomic_fetch_add(&g_decisions, 1);
    const char *p = req->path;
    bool readish = !(req->need & (SBX_FILES_NEED_WRITE | SBX_FILES_NEED_CREATE));
    out->origin = "test";
    if (under(p, g_c)) {
        out->action = SBX_FILES_REFUSE;
        out->origin = "deny C";
    } else if (under(p, g_a)) {
        out->action = readish ? SBX_FILES_BROKER : SBX_FILES_REFUSE;
        out->origin = "A readonly";
    } else if (under(p, g_b)) {
        out->action = SBX_FILES_BROKER;
        out->origin = "B any";
    } else if (readish && (under(p, "/usr") || under(p, "/lib") || under(p, "/lib64") ||
                           under(p, "/bin") || under(p, "/etc") || under(p, "/proc") ||
                           under(p, "/dev"))) {
        out->action = SBX_FILES_NATIVE;
    } else {
        out->action = SBX_FILES_REFUSE;
        out->origin = "default";
    }
    return 0;
}

static void audit_test(void *ctx, const sbx_files_audit_record *r)
{
    (void)ctx;
    if (r->action == SBX_FILES_REFUSE)
        atomic_fetch_add(&g_audit_deny, 1);
    if (r->action == SBX_FILES_BROKER)
        atomic_fetch_add(&g_audit_broker, 1);
    if (under(r->path, g_c))
        atomic_fetch_add(&g_audit_c, 1);
}

static void put(const char *dir, const char *name, const char *text)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void setup(void)
{
    umask(0); /* the broker's own umask must not hide the target's */
    g_root = sbx_test_mkdtemp("notify");
    cr_assert_not_null(g_root);
    snprintf(g_a, sizeof g_a, "%s/A", g_root);
    snprintf(g_b, sizeof g_b, "%s/B", g_root);
    snprintf(g_c, sizeof g_c, "%s/C", g_root);
    cr_assert_eq(mkdir(g_a, 0755), 0);
    cr_assert_eq(mkdir(g_b, 0777), 0);
    cr_assert_eq(mkdir(g_c, 0755), 0);
    put(g_a, "file", "hello");
    put(g_c, "secret", "SECRET");
    char p[700], q[700];
    snprintf(p, sizeof p, "%s/sub", g_a);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/link", g_a);
    cr_assert_eq(symlink("file", p), 0);
    snprintf(p, sizeof p, "%s/evil", g_a);
    snprintf(q, sizeof q, "%s/secret", g_c);
    cr_assert_eq(symlink(q, p), 0);
}

static void teardown(void)
{
    if (g_root) {
        sbx_test_rmtree(g_root);
        free(g_root);
    }
}

/* ---- harness ---- */

static void no_core(void);
static int g_fail_line;
#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            dprintf(2, "child check failed at line %d: %s (errno %d)\n", __LINE__, #cond,   \
                    errno);                                                                 \
            g_fail_line = __LINE__;                                                         \
            _exit(1);                                                                       \
        }                                                                                   \
    } while (0)
#define SC(...) sbx_test_try_syscall(__VA_ARGS__)
static long sc6(long nr, long a, long b, long c, long d, long e)
{
    return sbx_test_try_syscall(nr, a, b, c, d, e, 0);
}
#define S0(nr, a) sc6(nr, (long)(a), 0, 0, 0, 0)
#define S2(nr, a, b) sc6(nr, (long)(a), (long)(b), 0, 0, 0)
#define S3(nr, a, b, c) sc6(nr, (long)(a), (long)(b), (long)(c), 0, 0)
#define S4(nr, a, b, c, d) sc6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0)
#define S5(nr, a, b, c, d, e) sc6(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e))

static char *P(const char *dir, const char *name)
{
    static char bufs[8][1024];
    static int k;
    char *o = bufs[k++ & 7];
    snprintf(o, 1024, "%s/%s", dir, name);
    return o;
}

typedef struct run_result {
    sbx_test_status st;
    int serve_rc;
} run_result;

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* cfg.stable_creds: the server keeps the target's identity between calls */
static bool g_stable_creds;

static run_result run_notified_ex(void (*body)(void), bool creds, bool landlock, void (*pre)(void))
{
    struct sock_fprog prog;
    cr_assert_eq(sbx_notify_filter_build(&prog), 0);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(sv[0]);
        umask(022);
        no_core();
        if (chdir(g_b) < 0)
            _exit(90);
        if (pre)
            pre();
        int l = sbx_notify_filter_install(&prog);
        if (l < 0)
            _exit(91);
        char byte = 0;
        struct iovec iov = { &byte, 1 };
        char cbuf[CMSG_SPACE(sizeof(int))];
        memset(cbuf, 0, sizeof cbuf);
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                             .msg_controllen = sizeof cbuf };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &l, sizeof l);
        if (sendmsg(sv[1], &mh, 0) != 1)
            _exit(92);
        close(l);
        close(sv[1]);
        body();
        _exit(0);
    }
    close(sv[1]);
    sbx_notify_filter_free(&prog);
    char byte;
    struct iovec iov = { &byte, 1 };
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof cbuf };
    cr_assert_eq(recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC), 1);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cr_assert_not_null(cm);
    int listener;
    memcpy(&listener, CMSG_DATA(cm), sizeof listener);
    close(sv[0]);

    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    sbx_files_dispatcher disp = { .decide = decide_test, .audit = audit_test,
                                  .broker_root_fd = root };
    sbx_notify_config cfg = { .listener_fd = listener, .files = &disp, .landlock = landlock,
                              .target_creds = creds, .stable_creds = g_stable_creds,
                              .stop_fd = -1 };
    run_result rr = { 0 };
    rr.serve_rc = sbx_notify_serve(&cfg);
    close(listener);
    close(root);
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {
        rr.st.exited = true;
        rr.st.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        rr.st.signaled = true;
        rr.st.sig = WTERMSIG(status);
    }
    return rr;
}

static run_result run_notified(void (*body)(void), bool creds)
{
    return run_notified_ex(body, creds, false, NULL);
}

static void expect_clean(run_result rr)
{
    char buf[64];
    cr_expect_eq(rr.serve_rc, 0);
    cr_expect(rr.st.exited && rr.st.code == 0, "child: %s", sbx_test_status_str(&rr.st, buf, sizeof buf));
}

static void read_is(int fd, const char *want)
{
    char b[64] = { 0 };
    CHECK(fd >= 0);
    CHECK(pread(fd, b, sizeof b - 1, 0) == (ssize_t)strlen(want));
    CHECK(strcmp(b, want) == 0);
}

/* ---- bodies ---- */

static void body_open(void)
{
    long fd = S3(SYS_open, P(g_a, "file"), O_RDONLY, 0);
    read_is((int)fd, "hello");
    CHECK((fcntl((int)fd, F_GETFD) & FD_CLOEXEC) == 0);
    close((int)fd);
    fd = S4(SYS_openat, AT_FDCWD, P(g_a, "file"), O_RDONLY | O_CLOEXEC, 0);
    CHECK(fd >= 0 && (fcntl((int)fd, F_GETFD) & FD_CLOEXEC));
    close((int)fd);
    CHECK(S4(SYS_openat, AT_FDCWD, P(g_a, "file"), O_RDWR, 0) == -EACCES);
    CHECK(S3(SYS_open, P(g_a, "new"), O_CREAT | O_WRONLY, 0644) == -EACCES);
    CHECK(S3(SYS_open, P(g_a, "file"), O_RDONLY | O_TRUNC, 0) == -EACCES);

    fd = S2(SYS_creat, P(g_b, "new"), 0777);
    CHECK(fd >= 0);
    CHECK(write((int)fd, "x", 1) == 1);
    struct stat st;
    CHECK(fstat((int)fd, &st) == 0);
    CHECK((st.st_mode & 0777) == 0644); /* the target's umask 022 */
    close((int)fd);
    struct open_how how = { .flags = O_RDONLY };
    fd = S4(SYS_openat2, AT_FDCWD, P(g_b, "new"), &how, sizeof how);
    read_is((int)fd, "x");
    close((int)fd);
    how.resolve = RESOLVE_IN_ROOT;
    CHECK(S4(SYS_openat2, AT_FDCWD, P(g_b, "new"), &how, sizeof how) == -EINVAL);
    how.resolve = 0;
    CHECK(S4(SYS_openat2, AT_FDCWD, P(g_b, "new"), &how, 16) == -EINVAL);
    how.flags = O_RDWR | O_CREAT;
    how.mode = 0600;
    fd = S4(SYS_openat2, AT_FDCWD, P(g_b, "new2"), &how, sizeof how);
    CHECK(fd >= 0 && fstat((int)fd, &st) == 0 && (st.st_mode & 0777) == 0600);
    close((int)fd);

    /* Denied: the same answer whether the file exists or not. */
    CHECK(S3(SYS_open, P(g_c, "secret"), O_RDONLY, 0) == -EACCES);
    CHECK(S3(SYS_open, P(g_c, "missing"), O_RDONLY, 0) == -EACCES);
    CHECK(S2(SYS_stat, P(g_c, "secret"), &st) == -EACCES);
    CHECK(S2(SYS_stat, P(g_c, "missing"), &st) == -EACCES);
    CHECK(S2(SYS_access, P(g_c, "secret"), F_OK) == -EACCES);
    CHECK(S2(SYS_access, P(g_c, "missing"), F_OK) == -EACCES);
    /* Allowed but missing: ENOENT. */
    CHECK(S3(SYS_open, P(g_b, "missing"), O_RDONLY, 0) == -ENOENT);
    /* Elsewhere: denied by default. */
    CHECK(S3(SYS_open, "/root/.profile", O_RDONLY, 0) == -EACCES);

    /* Relative to the cwd (B) and to a brokered dirfd. */
    fd = S3(SYS_open, "new", O_RDONLY, 0);
    read_is((int)fd, "x");
    close((int)fd);
    long dfd = S3(SYS_open, g_b, O_RDONLY | O_DIRECTORY, 0);
    CHECK(dfd >= 0);
    fd = S4(SYS_openat, dfd, "new", O_RDONLY, 0);
    read_is((int)fd, "x");
    close((int)fd);
    CHECK(S4(SYS_openat, dfd, "../C/secret", O_RDONLY, 0) == -EACCES);
    CHECK(S4(SYS_openat, dfd, "../A/../C/./secret", O_RDONLY, 0) == -EACCES);
    fd = S4(SYS_openat, dfd, "../../../../../../../../etc/passwd", O_RDONLY, 0);
    CHECK(fd >= 0); /* resolved to /etc/passwd: native view */
    close((int)fd);
    /* getdents on a brokered directory fd works natively. */
    char dents[4096];
    CHECK(syscall(SYS_getdents64, dfd, dents, sizeof dents) > 0);
    close((int)dfd);

    /* Escapes. */
    CHECK(S3(SYS_open, P(g_a, "evil"), O_RDONLY, 0) == -EACCES);
    char p[1200];
    snprintf(p, sizeof p, "/proc/self/root%s/secret", g_c);
    CHECK(S3(SYS_open, p, O_RDONLY, 0) < 0);
    snprintf(p, sizeof p, "/proc/%d/root%s/secret", (int)getppid(), g_c);
    CHECK(S3(SYS_open, p, O_RDONLY, 0) < 0);
    long afd = S3(SYS_open, g_a, O_RDONLY | O_DIRECTORY, 0);
    CHECK(afd >= 0);
    snprintf(p, sizeof p, "/proc/self/fd/%ld/../C/secret", afd);
    CHECK(S3(SYS_open, p, O_RDONLY, 0) < 0);
    CHECK(S4(SYS_openat, afd, "../C/secret", O_RDONLY, 0) == -EACCES);
    /* An unknown open flag is refused, not ignored. */
    CHECK(S3(SYS_open, P(g_a, "file"), O_RDONLY | 0x40000000, 0) == -EINVAL);
}

static void body_meta(void)
{
    struct stat st;
    CHECK(S2(SYS_stat, P(g_a, "file"), &st) == 0 && st.st_size == 5);
    CHECK(S2(SYS_stat, P(g_a, "link"), &st) == 0 && S_ISREG(st.st_mode));
    CHECK(S2(SYS_lstat, P(g_a, "link"), &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(S4(SYS_newfstatat, AT_FDCWD, P(g_a, "link"), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode));
    CHECK(S2(SYS_stat, P(g_a, "evil"), &st) == -EACCES);
    struct statx sx;
    CHECK(S5(SYS_statx, AT_FDCWD, P(g_a, "file"), 0, STATX_BASIC_STATS, &sx) == 0 && sx.stx_size == 5);
    long fd = S3(SYS_open, P(g_a, "file"), O_RDONLY, 0);
    CHECK(fd >= 0);
    /* AT_EMPTY_PATH on an fd: the fd itself. */
    CHECK(S4(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_size == 5);
    CHECK(S5(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_SIZE, &sx) == 0 && sx.stx_size == 5);
    CHECK(S4(SYS_newfstatat, fd, "", &st, 0) == -ENOENT);
    /* Output buffer the target cannot write: EFAULT, broker unharmed. */
    CHECK(S2(SYS_stat, P(g_a, "file"), (void *)8) == -EFAULT);
    CHECK(S2(SYS_access, P(g_a, "file"), R_OK) == 0);
    CHECK(S2(SYS_access, P(g_a, "file"), X_OK) == -EACCES);
    CHECK(S4(SYS_faccessat2, AT_FDCWD, P(g_a, "file"), R_OK, AT_EACCESS) == 0);
    CHECK(S3(SYS_faccessat, AT_FDCWD, P(g_a, "nope"), F_OK) == -ENOENT);
    char buf[64];
    CHECK(S3(SYS_readlink, P(g_a, "link"), buf, sizeof buf) == 4 && memcmp(buf, "file", 4) == 0);
    CHECK(S3(SYS_readlink, P(g_a, "link"), buf, 2) == 2 && memcmp(buf, "fi", 2) == 0);
    CHECK(S4(SYS_readlinkat, AT_FDCWD, P(g_a, "file"), buf, sizeof buf) == -EINVAL);
    CHECK(S3(SYS_readlink, P(g_a, "link"), buf, 0) == -EINVAL);
    close((int)fd);

    CHECK(S2(SYS_mkdir, P(g_b, "d"), 0777) == 0);
    CHECK(stat(P(g_b, "d"), &st) == 0 && (st.st_mode & 0777) == 0755);
    CHECK(S3(SYS_mkdirat, AT_FDCWD, P(g_a, "d"), 0777) == -EACCES);
    long nf = S3(SYS_open, P(g_b, "f"), O_CREAT | O_RDWR, 0644);
    CHECK(nf >= 0);
    close((int)nf);
    CHECK(S2(SYS_rename, P(g_b, "f"), P(g_b, "g")) == 0);
    CHECK(S5(SYS_renameat2, AT_FDCWD, P(g_b, "g"), AT_FDCWD, P(g_b, "d"), 1 /* NOREPLACE */) ==
          -EEXIST);
    CHECK(S2(SYS_rename, P(g_a, "file"), P(g_b, "stolen")) == -EACCES);
    CHECK(S2(SYS_rename, P(g_b, "g"), P(g_c, "planted")) == -EACCES);
    CHECK(S2(SYS_rename, P(g_c, "secret"), P(g_b, "stolen")) == -EACCES);
    CHECK(S4(SYS_renameat, AT_FDCWD, P(g_b, "g"), AT_FDCWD, P(g_b, "h")) == 0);
    CHECK(S0(SYS_unlink, P(g_b, "h")) == 0);
    CHECK(S0(SYS_unlink, P(g_b, "h")) == -ENOENT);
    CHECK(S3(SYS_unlinkat, AT_FDCWD, P(g_b, "d"), AT_REMOVEDIR) == 0);
    CHECK(S0(SYS_rmdir, P(g_a, "sub")) == -EACCES);
    CHECK(S0(SYS_unlink, P(g_c, "secret")) == -EACCES);

    /* The long tail: refused, none slips through. */
    nf = S3(SYS_open, P(g_b, "t"), O_CREAT | O_RDWR, 0644);
    CHECK(nf >= 0);
    CHECK(S2(SYS_link, P(g_b, "t"), P(g_b, "t2")) == -EPERM);
    CHECK(S5(SYS_linkat, AT_FDCWD, P(g_c, "secret"), AT_FDCWD, P(g_b, "hard"), 0) == -EPERM);
    CHECK(S2(SYS_symlink, "/etc", P(g_b, "s")) == -EPERM);
    CHECK(S2(SYS_chmod, P(g_b, "t"), 0640) == 0);
    CHECK(fstat((int)nf, &st) == 0 && (st.st_mode & 07777) == 0640);
    CHECK(S2(SYS_chmod, P(g_b, "t"), 04755) == -EPERM);
    CHECK(S4(SYS_fchmodat, AT_FDCWD, P(g_b, "t"), 0600, 0) == 0);
    CHECK(S2(SYS_chmod, P(g_a, "file"), 0777) == -EACCES);
    CHECK(S2(SYS_chmod, P(g_c, "secret"), 0777) == -EACCES);
    /* Through a symlink in the writable dir to the forbidden file: no. */
    CHECK(S2(SYS_chmod, P(g_b, "tosecret"), 0777) == -EACCES);
    CHECK(S2(SYS_truncate, P(g_b, "tosecret"), 0) == -EACCES);
    CHECK(S4(SYS_utimensat, AT_FDCWD, P(g_b, "tosecret"), NULL, 0) == -EACCES);
    CHECK(S4(SYS_utimensat, AT_FDCWD, P(g_b, "tosecret"), NULL, AT_SYMLINK_NOFOLLOW) == 0);
    CHECK(write((int)nf, "12345", 5) == 5);
    CHECK(S2(SYS_truncate, P(g_b, "t"), 2) == 0);
    CHECK(fstat((int)nf, &st) == 0 && st.st_size == 2);
    CHECK(S2(SYS_truncate, P(g_a, "file"), 0) == -EACCES);
    CHECK(S2(SYS_truncate, P(g_c, "secret"), 0) == -EACCES);
    CHECK(S2(SYS_truncate, P(g_b, "t"), -1) == -EINVAL);
    CHECK(S2(SYS_truncate, g_b, 0) == -EISDIR);
    CHECK(S3(SYS_chown, P(g_b, "t"), 0, 0) == -EPERM);
    struct timespec ts[2] = { { 1000, 0 }, { 2000, 0 } };
    CHECK(S4(SYS_utimensat, AT_FDCWD, P(g_b, "t"), ts, 0) == 0);
    CHECK(fstat((int)nf, &st) == 0 && st.st_mtime == 2000);
    CHECK(S4(SYS_utimensat, AT_FDCWD, P(g_b, "t"), NULL, 0) == 0);
    CHECK(S4(SYS_utimensat, AT_FDCWD, P(g_a, "file"), NULL, 0) == -EACCES);
    CHECK(S4(SYS_utimensat, AT_FDCWD, P(g_c, "secret"), ts, 0) == -EACCES);
    CHECK(S4(SYS_utimensat, AT_FDCWD, P(g_b, "t"), (void *)8, 0) == -EFAULT);
    CHECK(S4(SYS_utimensat, nf, NULL, NULL, 0) == 0); /* futimens: fd only */
    CHECK(S4(SYS_lgetxattr, P(g_b, "t"), "user.x", buf, sizeof buf) == -ENOTSUP);
    CHECK(S3(SYS_inotify_add_watch, 0, P(g_c, "secret"), 0) == -EACCES);
    char params[120] = { 0 };
    CHECK(S2(SYS_io_uring_setup, 4, params) == -EPERM);
    CHECK(S0(SYS_chdir, g_a) == -EACCES); /* no Landlock: chdir cannot be brokered */
    close((int)nf);
}

static void body_memory(void)
{
    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    const char *path = P(g_a, "file");
    size_t len = strlen(path);
    /* A path straddling a page boundary. */
    char *at = m + page - len / 2;
    memcpy(at, path, len + 1);
    long fd = S3(SYS_open, at, O_RDONLY, 0);
    read_is((int)fd, "hello");
    close((int)fd);
    /* A path that runs into an unreadable page without a NUL: EFAULT. */
    CHECK(mprotect(m + page, (size_t)page, PROT_NONE) == 0);
    at = m + page - len;
    memcpy(at, path, len); /* no NUL before the protected page */
    CHECK(S3(SYS_open, at, O_RDONLY, 0) == -EFAULT);
    /* The path ends exactly at the page end: fine. */
    at = m + page - len - 1;
    memcpy(at, path, len + 1);
    fd = S3(SYS_open, at, O_RDONLY, 0);
    read_is((int)fd, "hello");
    close((int)fd);
    CHECK(mprotect(m + page, (size_t)page, PROT_READ | PROT_WRITE) == 0);
    /* Longer than the server's first read (512 bytes), from a page start
     * and running across the next page: read whole, same file. */
    char *fromroot = m + page - 700;
    size_t n = 1;
    fromroot[0] = '/';
    while (n < 1100) {
        memcpy(fromroot + n, "./", 2);
        n += 2;
    }
    memcpy(fromroot + n, path + 1, len); /* "/././.../" + the path and its NUL */
    fd = S3(SYS_open, fromroot, O_RDONLY, 0);
    read_is((int)fd, "hello");
    close((int)fd);
    memcpy(m, fromroot, strlen(fromroot) + 1);
    fd = S3(SYS_open, m, O_RDONLY, 0);
    read_is((int)fd, "hello");
    close((int)fd);
    /* Past the first read, no NUL before an unreadable page: EFAULT. */
    memset(m, '/', (size_t)page);
    CHECK(mprotect(m + page, (size_t)page, PROT_NONE) == 0);
    CHECK(S3(SYS_open, m + page - 600, O_RDONLY, 0) == -EFAULT);
    CHECK(S3(SYS_open, NULL, O_RDONLY, 0) == -EFAULT);
    CHECK(S3(SYS_open, (void *)1, O_RDONLY, 0) == -EFAULT);
    /* Too long: ENAMETOOLONG, like the kernel. */
    char *big = malloc(8192);
    memset(big, 'a', 8191);
    big[0] = '/';
    big[8191] = '\0';
    CHECK(S3(SYS_open, big, O_RDONLY, 0) == -ENAMETOOLONG);
    CHECK(S3(SYS_open, "", O_RDONLY, 0) == -ENOENT);
    free(big);
}

static void body_many(void)
{
    struct stat st;
    for (int i = 0; i < 1500; i++) {
        long fd = S3(SYS_open, P(g_a, "file"), O_RDONLY, 0);
        CHECK(fd >= 0);
        close((int)fd);
        CHECK(S3(SYS_open, P(g_c, "secret"), O_RDONLY, 0) == -EACCES);
        CHECK(S2(SYS_stat, P(g_a, "link"), &st) == 0);
        CHECK(S3(SYS_open, P(g_a, "evil"), O_RDONLY, 0) == -EACCES);
    }
}

static void no_core(void)
{
    struct rlimit rl = { 0, 0 };
    setrlimit(RLIMIT_CORE, &rl);
}

static void body_int80(void)
{
    /* open("/etc/passwd") through the i386 ABI. */
    static const char path[] = "/etc/passwd";
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(5), "b"(path), "c"(0), "d"(0) : "memory");
    _exit(3); /* must not get here */
}

static void body_x32(void)
{
    syscall(0x40000000 | SYS_open, "/etc/passwd", O_RDONLY, 0);
    _exit(3);
}


/* ---- races inside the target ---- */

static char g_shared_path[1024];
static char g_good_path[1024], g_bad_path[1024];
static atomic_bool g_stop_race;

static void *flip_path(void *arg)
{
    (void)arg;
    /* Hold each state for a while so both are seen by both readers. */
    while (!atomic_load(&g_stop_race)) {
        memcpy(g_shared_path, g_bad_path, strlen(g_bad_path) + 1);
        for (volatile int i = 0; i < 3000; i++)
            ;
        memcpy(g_shared_path, g_good_path, strlen(g_good_path) + 1);
        for (volatile int i = 0; i < 3000; i++)
            ;
    }
    return NULL;
}

static void *swap_names(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop_race))
        syscall(SYS_renameat2, AT_FDCWD, P(g_b, "x"), AT_FDCWD, P(g_b, "y"), 2 /* EXCHANGE */);
    return NULL;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Open `path` (read each time from shared memory) for ~1.5 s while `fn`
 * races; every open that succeeds must reach the good inode. */
static void race_body(void *(*fn)(void *), const char *path, const struct stat *good)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fn, NULL) == 0);
    uint64_t end = now_ns() + 1500000000ull;
    unsigned ok = 0, wrong = 0;
    while (now_ns() < end) {
        long fd = S3(SYS_open, path, O_RDONLY, 0);
        if (fd >= 0) {
            struct stat st;
            CHECK(fstat((int)fd, &st) == 0);
            if (st.st_ino == good->st_ino && st.st_dev == good->st_dev)
                ok++;
            else
                wrong++;
            close((int)fd);
        }
    }
    atomic_store(&g_stop_race, true);
    pthread_join(th, NULL);
    if (wrong || !ok)
        dprintf(2, "race: %u wrong, %u ok\n", wrong, ok);
    CHECK(wrong == 0);
    CHECK(ok > 0);
}

static void body_race_memory(void)
{
    struct stat good;
    CHECK(stat(P(g_a, "file"), &good) == 0);
    snprintf(g_good_path, sizeof g_good_path, "%s", P(g_a, "file"));
    snprintf(g_bad_path, sizeof g_bad_path, "%s", P(g_c, "secret"));
    memcpy(g_shared_path, g_good_path, strlen(g_good_path) + 1);
    race_body(flip_path, g_shared_path, &good);
}

static void body_race_rename(void)
{
    struct stat good;
    CHECK(stat(P(g_b, "x"), &good) == 0);
    race_body(swap_names, P(g_b, "x"), &good);
}

Test(notify, race_path_rewritten_by_another_thread, .init = setup, .fini = teardown)
{
    expect_clean(run_notified(body_race_memory, false));
}

Test(notify, race_rename_loop, .init = setup, .fini = teardown)
{
    /* B/x a file, B/y a symlink to C/secret, exchanged without pause by the
     * target itself (through the broker: B is ANY) while it opens B/x. */
    put(g_b, "x", "good");
    char q[700];
    snprintf(q, sizeof q, "%s/secret", g_c);
    cr_assert_eq(symlink(q, P(g_b, "y")), 0);
    expect_clean(run_notified(body_race_rename, false));
}

/* ---- tests ---- */

Test(notify, open_family, .init = setup, .fini = teardown)
{
    expect_clean(run_notified(body_open, false));
    cr_expect_gt(atomic_load(&g_audit_broker), 0);
    cr_expect_gt(atomic_load(&g_audit_deny), 0);
    cr_expect_gt(atomic_load(&g_audit_c), 0);
}

Test(notify, metadata_and_mutations, .init = setup, .fini = teardown)
{
    cr_assert_eq(symlink(P(g_c, "secret"), P(g_b, "tosecret")), 0);
    expect_clean(run_notified(body_meta, false));
    struct stat st;
    cr_expect_eq(stat(P(g_c, "secret"), &st), 0, "denied unlink/rename left it in place");
    cr_expect_eq(stat(P(g_a, "file"), &st), 0);
    cr_expect_neq(stat(P(g_b, "stolen"), &st), 0);
    cr_expect_neq(stat(P(g_c, "planted"), &st), 0);
    cr_expect_neq(stat(P(g_b, "hard"), &st), 0);
    cr_expect_eq(stat(P(g_c, "secret"), &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0644, "chmod through a link did not reach it");
    cr_expect_eq(st.st_size, 6, "truncate through a link did not reach it");
}

Test(notify, hostile_memory, .init = setup, .fini = teardown)
{
    expect_clean(run_notified(body_memory, false));
}

Test(notify, with_target_credentials, .init = setup, .fini = teardown)
{
    /* Same suite with the broker switching to the target's ids (root here). */
    expect_clean(run_notified(body_open, true));
}

Test(notify, no_fd_leak, .init = setup, .fini = teardown)
{
    int before = count_fds();
    expect_clean(run_notified(body_many, true));
    cr_expect_eq(count_fds(), before);
}

/* Other ABIs die in the kernel before any notification: the test process
 * itself installs the filter and must be killed by SIGSYS. */
static void install_here(void)
{
    struct sock_fprog prog;
    cr_assert_eq(sbx_notify_filter_build(&prog), 0);
    no_core();
    cr_assert_geq(sbx_notify_filter_install(&prog), 0);
}

Test(notify, int80_is_killed, .signal = SIGSYS)
{
    install_here();
    body_int80();
}

Test(notify, x32_is_killed, .signal = SIGSYS)
{
    install_here();
    body_x32();
}

static int g_cat_out = -1;
static void body_cat(void)
{
    /* stdout: a file the harness opened before the filter. */
    if (dup2(g_cat_out, 1) < 0)
        _exit(80);
    static char cat[] = "cat", lc[] = "LC_ALL=C";
    char *argv[] = { cat, P(g_a, "file"), P(g_a, "link"), NULL };
    char *envp[] = { lc, NULL };
    execve("/bin/cat", argv, envp);
    _exit(81);
}

Test(notify, unmodified_dynamic_binary, .init = setup, .fini = teardown)
{
    g_cat_out = open(P(g_root, "cat.out"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    cr_assert_geq(g_cat_out, 0);
    expect_clean(run_notified(body_cat, false));
    char b[64] = { 0 };
    cr_expect_eq(pread(g_cat_out, b, sizeof b - 1, 0), 10);
    cr_expect_str_eq(b, "hellohello");
    close(g_cat_out);
}

static void body_cat_denied(void)
{
    if (dup2(g_cat_out, 1) < 0 || dup2(g_cat_out, 2) < 0)
        _exit(80);
    static char cat[] = "cat", lc[] = "LC_ALL=C";
    char *argv[] = { cat, P(g_c, "secret"), NULL };
    char *envp[] = { lc, NULL };
    execve("/bin/cat", argv, envp);
    _exit(81);
}

Test(notify, unmodified_binary_denied, .init = setup, .fini = teardown)
{
    g_cat_out = open(P(g_root, "cat.out"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    cr_assert_geq(g_cat_out, 0);
    run_result rr = run_notified(body_cat_denied, false);
    cr_expect(rr.st.exited && rr.st.code == 1, "cat fails");
    char b[256] = { 0 };
    cr_expect_gt(pread(g_cat_out, b, sizeof b - 1, 0), 0);
    cr_expect_null(strstr(b, "SECRET"));
    cr_expect_not_null(strstr(b, "Permission denied"), "%s", b);
    close(g_cat_out);
}

/* ---- identity, per-thread cwd, Landlock mode ---- */

static void drop_to_nobody(void)
{
    gid_t none[1] = { 65534 };
    if (setgroups(1, none) < 0 || setresgid(65534, 65534, 65534) < 0 ||
        setresuid(65534, 65534, 65534) < 0)
        _exit(95);
}

static void body_nobody_creds(void)
{
    CHECK(S3(SYS_open, P(g_b, "private"), O_RDONLY, 0) == -EACCES);
    long fd = S3(SYS_open, P(g_b, "mine"), O_CREAT | O_RDWR, 0666);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat((int)fd, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534);
    close((int)fd);
    CHECK(S2(SYS_access, P(g_b, "private"), R_OK) == -EACCES);
}

static void body_nobody_no_creds(void)
{
    /* Without the switch the root broker would open it: the switch matters. */
    long fd = S3(SYS_open, P(g_b, "private"), O_RDONLY, 0);
    CHECK(fd >= 0);
    close((int)fd);
}

Test(notify, broker_acts_with_target_ids, .init = setup, .fini = teardown)
{
    if (geteuid() != 0)
        cr_skip_test("needs root");
    cr_assert_eq(chmod(g_root, 0755), 0);
    put(g_b, "private", "root only");
    cr_assert_eq(chmod(P(g_b, "private"), 0600), 0);
    expect_clean(run_notified_ex(body_nobody_creds, true, false, drop_to_nobody));
    expect_clean(run_notified_ex(body_nobody_no_creds, false, false, drop_to_nobody));
}

/* With stable credentials the server thread stays in the target's
 * identity between calls: interleaved with calls that read /proc as the
 * broker (relative paths, /proc/self) and creating calls, a root-only file
 * stays closed, created files are the target's, and the serving thread
 * is back in its own identity afterwards. */
static void body_kept_identity(void)
{
    for (int i = 0; i < 50; i++) {
        long fd = S3(SYS_open, P(g_b, "file"), O_RDONLY, 0);
        CHECK(fd >= 0);
        close((int)fd);
        CHECK(S3(SYS_open, P(g_b, "private"), O_RDONLY, 0) == -EACCES);
        if (i % 10 == 0) {
            fd = S3(SYS_open, "file", O_RDONLY, 0); /* the cwd, read as the broker */
            CHECK(fd >= 0);
            close((int)fd);
            CHECK(S3(SYS_open, "private", O_RDONLY, 0) == -EACCES);
            char made[64];
            snprintf(made, sizeof made, "made-%d", i);
            fd = S3(SYS_open, made, O_CREAT | O_RDWR, 0666);
            struct stat st;
            CHECK(fd >= 0 && fstat((int)fd, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534);
            close((int)fd);
        }
    }
}

static void nobody_in_b(void)
{
    if (chdir(g_b) < 0)
        _exit(94);
    drop_to_nobody();
}

Test(notify, kept_identity_never_widens_access, .init = setup, .fini = teardown)
{
    if (geteuid() != 0)
        cr_skip_test("needs root");
    cr_assert_eq(chmod(g_root, 0755), 0);
    cr_assert_eq(chmod(g_b, 0777), 0);
    put(g_b, "file", "hello");
    put(g_b, "private", "root only");
    cr_assert_eq(chmod(P(g_b, "private"), 0600), 0);
    g_stable_creds = true;
    run_result rr = run_notified_ex(body_kept_identity, true, false, nobody_in_b);
    g_stable_creds = false;
    expect_clean(rr);
    /* this (serving) thread left the target's identity behind */
    cr_expect_eq(setfsuid((uid_t)-1), 0);
    cr_expect_eq(setfsgid((gid_t)-1), 0);
}

static int g_adir = -1;
static void open_a_dir(void)
{
    g_adir = open(g_a, O_RDONLY | O_DIRECTORY);
    if (g_adir < 0)
        _exit(96);
}

static void *thread_in_a(void *arg)
{
    (void)arg;
    /* This thread's own cwd (its own fs_struct) is A; the main thread's is B. */
    if (unshare(CLONE_FS) < 0 || fchdir(g_adir) < 0)
        return (void *)1;
    long fd = S3(SYS_open, "file", O_RDONLY, 0);
    if (fd < 0)
        return (void *)2;
    char b[8] = { 0 };
    if (read((int)fd, b, 5) != 5 || strcmp(b, "hello") != 0)
        return (void *)3;
    close((int)fd);
    return NULL;
}

static void body_thread_cwd(void)
{
    put(g_b, "file", "bbbbb"); /* not reached by the thread */
    pthread_t th;
    void *ret = (void *)9;
    CHECK(pthread_create(&th, NULL, thread_in_a, NULL) == 0);
    CHECK(pthread_join(th, &ret) == 0);
    CHECK(ret == NULL);
    long fd = S3(SYS_open, "file", O_RDONLY, 0);
    read_is((int)fd, "bbbbb");
    close((int)fd);
}

Test(notify, relative_paths_use_the_calling_threads_cwd, .init = setup, .fini = teardown)
{
    expect_clean(run_notified_ex(body_thread_cwd, false, false, open_a_dir));
}

Test(notify, landlock_mode_continues_native_calls, .init = setup, .fini = teardown)
{
    /* With the Landlock flag the loader's and cat's native opens are
     * answered CONTINUE; brokered ones still come from the broker. */
    g_cat_out = open(P(g_root, "cat.out"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    cr_assert_geq(g_cat_out, 0);
    expect_clean(run_notified_ex(body_cat, false, true, NULL));
    char b[64] = { 0 };
    cr_expect_eq(pread(g_cat_out, b, sizeof b - 1, 0), 10);
    cr_expect_str_eq(b, "hellohello");
    close(g_cat_out);
}

/* ---- real Landlock: CONTINUE is safe only because of it ---- */

static void landlock_view(void)
{
    /* Read/execute under the native view only; everything else handled and
     * refused by the kernel (brokered fds come from the broker). */
    struct landlock_ruleset_attr attr = {
        .handled_access_fs = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                             LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
                             LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                             LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_DIR |
                             LANDLOCK_ACCESS_FS_MAKE_SYM,
    };
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (rs < 0)
        _exit(97);
    const char *view[] = { "/usr", "/lib", "/lib64", "/bin", "/etc", NULL };
    for (int i = 0; view[i]; i++) {
        int fd = open(view[i], O_PATH | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct landlock_path_beneath_attr pb = {
            .allowed_access = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
                              LANDLOCK_ACCESS_FS_READ_DIR,
            .parent_fd = fd,
        };
        if (syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
            _exit(98);
        close(fd);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || syscall(SYS_landlock_restrict_self, rs, 0) < 0)
        _exit(99);
    close(rs);
}

static void body_landlock_race(void)
{
    /* "/etc/passwd" is native (CONTINUE); another thread swaps the string
     * for C's secret after the broker read it. The kernel then opens
     * whatever the string says — and Landlock refuses C. */
    struct stat good;
    CHECK(stat("/etc/passwd", &good) == 0);
    snprintf(g_good_path, sizeof g_good_path, "/etc/passwd");
    snprintf(g_bad_path, sizeof g_bad_path, "%s", P(g_c, "secret"));
    memcpy(g_shared_path, g_good_path, strlen(g_good_path) + 1);
    race_body(flip_path, g_shared_path, &good);
    /* Brokered access still works through the broker's fd. */
    long fd = S3(SYS_open, P(g_a, "file"), O_RDONLY, 0);
    read_is((int)fd, "hello");
    close((int)fd);
}

Test(notify, landlock_bounds_continued_calls, .init = setup, .fini = teardown)
{
    expect_clean(run_notified_ex(body_landlock_race, false, true, landlock_view));
}

/* ---- garbage arguments: the broker answers everything, crashes on nothing ---- */

static void body_garbage(void)
{
    /* (truncate / utimensat are in the mix through nrs below.) */
    static char scratch[3][8192];
    static const int nrs[] = { SYS_open, SYS_openat, SYS_openat2, SYS_creat, SYS_stat, SYS_lstat,
                               SYS_newfstatat, SYS_statx, SYS_access, SYS_faccessat,
                               SYS_faccessat2, SYS_readlink, SYS_readlinkat, SYS_rename,
                               SYS_renameat, SYS_renameat2, SYS_mkdir, SYS_mkdirat, SYS_unlink,
                               SYS_unlinkat, SYS_rmdir, SYS_chdir, SYS_truncate,
                               SYS_utimensat, SYS_chmod, SYS_fchmodat };
    const char *paths[] = { P(g_a, "file"), P(g_b, "g"), P(g_c, "secret"), "rel", "", "/",
                            "../../..", P(g_a, "link"), "/proc/self/fd/0" };
    unsigned seed = 77;
    for (int it = 0; it < 3000; it++) {
        long a[6];
        int nr = nrs[seed % (sizeof nrs / sizeof nrs[0])];
        for (int k = 0; k < 6; k++) {
            seed = seed * 1103515245u + 12345u;
            unsigned c = (seed >> 16) % 9;
            char *sb = scratch[k % 3];
            switch (c) {
            case 0: a[k] = 0; break;
            case 1: a[k] = -1; break;
            case 2: a[k] = AT_FDCWD; break;
            case 3: a[k] = (long)(seed >> 3); break;
            case 4: /* random bytes, maybe no NUL */
                for (size_t i = 0; i < sizeof scratch[0]; i++)
                    sb[i] = (char)(seed >> (i % 24));
                a[k] = (long)sb;
                break;
            case 5:
                snprintf(sb, sizeof scratch[0], "%s", paths[(seed >> 8) % 9]);
                a[k] = (long)sb;
                break;
            case 6: a[k] = 24; break;
            case 7: a[k] = (long)(sb + sizeof scratch[0] - 1); break;
            default: a[k] = (long)((seed >> 4) & 0x7ffff); break;
            }
        }
        seed = seed * 1103515245u + 12345u;
        /* Pointers the broker may write through all lead to scratch; ints
         * are arbitrary. */
        long r = sbx_test_try_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r >= 3 && (nr == SYS_open || nr == SYS_openat || nr == SYS_openat2 || nr == SYS_creat))
            close((int)r);
        CHECK(r >= -4095);
    }
    /* Still served correctly afterwards. */
    long fd = S3(SYS_open, P(g_a, "file"), O_RDONLY, 0);
    read_is((int)fd, "hello");
    close((int)fd);
}

Test(notify, garbage_arguments, .init = setup, .fini = teardown)
{
    int before = count_fds();
    expect_clean(run_notified_ex(body_garbage, true, false, NULL));
    cr_expect_eq(count_fds(), before);
}

/* ---- a static binary ---- */

static void body_ldconfig(void)
{
    if (dup2(g_cat_out, 1) < 0)
        _exit(80);
    static char prog[] = "ldconfig", c[] = "-C", p[] = "-p";
    char *argv[] = { prog, c, P(g_a, "ld.so.cache"), p, NULL };
    char *envp[] = { NULL };
    execve("/sbin/ldconfig", argv, envp);
    _exit(81);
}

Test(notify, unmodified_static_binary, .init = setup, .fini = teardown)
{
    /* /sbin/ldconfig is static-pie on Debian: no loader, raw syscalls. It
     * reads its cache from a brokered (read-only) path. */
    if (access("/sbin/ldconfig", X_OK) != 0 || access("/etc/ld.so.cache", R_OK) != 0)
        cr_skip_test("no /sbin/ldconfig or /etc/ld.so.cache");
    int in = open("/etc/ld.so.cache", O_RDONLY);
    int out = open(P(g_a, "ld.so.cache"), O_CREAT | O_WRONLY, 0644);
    cr_assert(in >= 0 && out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        cr_assert_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    g_cat_out = open(P(g_root, "ld.out"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    cr_assert_geq(g_cat_out, 0);
    expect_clean(run_notified(body_ldconfig, false));
    static char text[1 << 20];
    ssize_t len = pread(g_cat_out, text, sizeof text - 1, 0);
    cr_assert_gt(len, 0);
    text[len] = '\0';
    cr_expect_not_null(strstr(text, "libc.so.6"), "ldconfig -p output: %.200s", text);
    close(g_cat_out);
}

/* ---- the fs peer (brokered chdir under notify) ---- */

static int count_open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Send one request (fds[0..nfd) attached) of len bytes. */
static void peer_ask(int sock, const void *msg, size_t len, const int *fds, int nfd)
{
    char cbuf[CMSG_SPACE(4 * sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = { .iov_base = (void *)(uintptr_t)msg, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfd) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE((size_t)nfd * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfd * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfd * sizeof(int));
    }
    cr_assert_geq(sendmsg(sock, &mh, 0), 0);
}

/* The peer (the target's init) changes its cwd only for a well-formed
 * request carrying exactly one directory fd; everything else is EINVAL
 * with every attached fd closed, and nothing moves. */
Test(notify, fs_peer_answers_only_well_formed_requests, .init = setup, .fini = teardown)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    int dir = open(g_b, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int file = open(P(g_b, "file"), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    cr_assert_geq(dir, 0);
    cr_assert_geq(file, 0);
    cr_assert_eq(chdir("/"), 0);
    struct stat root, now, want;
    cr_assert_eq(stat("/", &root), 0);
    cr_assert_eq(stat(g_b, &want), 0);
    int base = count_open_fds();
    struct {
        const char *what;
        sbx_notify_fs_msg m;
        size_t len;
        int fds[2];
        int nfd;
        int err;
    } cases[] = {
        { "wrong type", { .type = SBX_NOTIFY_FS_DONE, .seq = 1 }, sizeof(sbx_notify_fs_msg), { dir }, 1, EINVAL },
        { "no fd", { .type = SBX_NOTIFY_FS_CHDIR, .seq = 2 }, sizeof(sbx_notify_fs_msg), { 0 }, 0, EINVAL },
        { "two fds", { .type = SBX_NOTIFY_FS_CHDIR, .seq = 3 }, sizeof(sbx_notify_fs_msg), { dir, dir }, 2, EINVAL },
        { "short", { .type = SBX_NOTIFY_FS_CHDIR, .seq = 4 }, 4, { dir }, 1, EINVAL },
        { "a file", { .type = SBX_NOTIFY_FS_CHDIR, .seq = 5 }, sizeof(sbx_notify_fs_msg), { file }, 1, ENOTDIR },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        peer_ask(sp[0], &cases[i].m, cases[i].len, cases[i].fds, cases[i].nfd);
        cr_assert_eq(sbx_notify_fs_peer_answer(sp[1]), 0, "%s", cases[i].what);
        sbx_notify_fs_msg a;
        cr_assert_eq(recv(sp[0], &a, sizeof a, MSG_DONTWAIT), (ssize_t)sizeof a, "%s", cases[i].what);
        cr_expect_eq(a.type, SBX_NOTIFY_FS_DONE, "%s", cases[i].what);
        cr_expect_eq(a.seq, cases[i].len >= 8 ? cases[i].m.seq : 0, "%s", cases[i].what);
        cr_expect_eq(a.err, cases[i].err, "%s: err %d", cases[i].what, a.err);
        cr_assert_eq(stat(".", &now), 0);
        cr_expect(now.st_ino == root.st_ino && now.st_dev == root.st_dev, "%s moved the cwd",
                  cases[i].what);
        cr_expect_eq(count_open_fds(), base, "%s leaked an fd", cases[i].what);
    }
    /* nothing queued: nothing done */
    cr_expect_eq(sbx_notify_fs_peer_answer(sp[1]), 0);
    /* the real thing */
    sbx_notify_fs_msg ok = { .type = SBX_NOTIFY_FS_CHDIR, .seq = 9 };
    peer_ask(sp[0], &ok, sizeof ok, &dir, 1);
    cr_assert_eq(sbx_notify_fs_peer_answer(sp[1]), 0);
    sbx_notify_fs_msg a;
    cr_assert_eq(recv(sp[0], &a, sizeof a, MSG_DONTWAIT), (ssize_t)sizeof a);
    cr_expect(a.type == SBX_NOTIFY_FS_DONE && a.seq == 9 && a.err == 0, "err %d", a.err);
    cr_assert_eq(stat(".", &now), 0);
    cr_expect(now.st_ino == want.st_ino && now.st_dev == want.st_dev);
    cr_expect_eq(count_open_fds(), base);
    /* the broker's end gone: the peer stops */
    close(sp[0]);
    cr_expect_eq(sbx_notify_fs_peer_answer(sp[1]), -EPIPE);
    close(sp[1]);
    close(dir);
    close(file);
    cr_assert_eq(chdir("/"), 0);
}
