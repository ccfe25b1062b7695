/* files safe operations: the object reached is the object matched —
 * symlinks outside, ".." through symlinked dirs, magic links, rename races,
 * credentials, modes, flags. Every case runs for both resolvers (openat2
 * and the O_NOFOLLOW component walk). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sbx_test.h"
#include "subsys/files/files_ops.h"
#include "subsys/files/files_path.h"

static char *g_root; /* temp tree: A (allowed), F (forbidden) */
static char g_a[512], g_f[512];

/* Recheck: only paths under A are allowed. */
static int recheck_under_a(void *arg, unsigned which, const char *path)
{
    (void)which;
    int *count = arg;
    if (count)
        (*count)++;
    return sbx_files_path_is_under(path, g_a) ? 0 : -EACCES;
}

static void writefile(const char *path, const char *text)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void setup(void)
{
    umask(0);
    g_root = sbx_test_mkdtemp("fops");
    cr_assert_not_null(g_root);
    snprintf(g_a, sizeof g_a, "%s/A", g_root);
    snprintf(g_f, sizeof g_f, "%s/F", g_root);
    cr_assert_eq(mkdir(g_a, 0777), 0);
    cr_assert_eq(mkdir(g_f, 0755), 0);
    char p[700];
    snprintf(p, sizeof p, "%s/secret", g_f);
    writefile(p, "SECRET");
    snprintf(p, sizeof p, "%s/x", g_f);
    writefile(p, "OUTSIDE");
    snprintf(p, sizeof p, "%s/x", g_a);
    writefile(p, "INSIDE");
    snprintf(p, sizeof p, "%s/sub", g_a);
    cr_assert_eq(mkdir(p, 0777), 0);
    snprintf(p, sizeof p, "%s/sub/real", g_a);
    writefile(p, "REAL");
}

static void teardown(void)
{
    if (g_root) {
        sbx_test_rmtree(g_root);
        free(g_root);
    }
}

static int g_root_fd = -1;
static sbx_files_ops_ctx make_ctx(unsigned flags, int *count)
{
    if (g_root_fd < 0)
        g_root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    sbx_files_ops_ctx c = { .root_fd = g_root_fd, .recheck = recheck_under_a,
                            .recheck_arg = count, .flags = flags };
    return c;
}

static void read_is(int fd, const char *want)
{
    cr_assert_geq(fd, 0, "open failed: %s", strerror(-fd));
    char buf[64] = { 0 };
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    cr_expect_eq(n, (ssize_t)strlen(want));
    cr_expect_str_eq(buf, want);
    close(fd);
}

static char *pa(const char *fmt, const char *a, const char *b)
{
    static char bufs[4][1024];
    static int k;
    char *o = bufs[k++ & 3];
    snprintf(o, 1024, fmt, a, b);
    return o;
}

Test(files_ops, flags_check)
{
    unsigned need;
    cr_expect_eq(sbx_files_open_flags_check(O_RDONLY, &need), 0);
    cr_expect_eq(need, SBX_FILES_NEED_READ);
    cr_expect_eq(sbx_files_open_flags_check(O_RDONLY | O_CLOEXEC | O_NOFOLLOW, &need), 0);
    cr_expect_eq(sbx_files_open_flags_check(O_WRONLY, &need), 0);
    cr_expect_eq(need, SBX_FILES_NEED_WRITE);
    cr_expect_eq(sbx_files_open_flags_check(O_RDWR | O_CREAT, &need), 0);
    cr_expect_eq(need, SBX_FILES_NEED_READ | SBX_FILES_NEED_WRITE | SBX_FILES_NEED_CREATE);
    cr_expect_eq(sbx_files_open_flags_check(O_RDONLY | O_APPEND, &need), 0);
    cr_expect(need & SBX_FILES_NEED_WRITE);
    cr_expect_eq(sbx_files_open_flags_check(O_RDONLY | O_CREAT, &need), 0);
    cr_expect(need & SBX_FILES_NEED_CREATE);
    cr_expect_eq(sbx_files_open_flags_check(O_RDONLY | O_DIRECTORY, &need), 0);
    cr_expect_eq(need, SBX_FILES_NEED_READ | SBX_FILES_NEED_DIR);
    cr_expect_eq(sbx_files_open_flags_check(O_PATH | O_NOFOLLOW, &need), 0);
    cr_expect_eq(need, SBX_FILES_NEED_READ);
    /* Refused. */
    cr_expect_eq(sbx_files_open_flags_check(O_RDONLY | O_TRUNC, &need), -EACCES);
    cr_expect_eq(sbx_files_open_flags_check(O_RDONLY | O_NOATIME, &need), -EACCES);
    cr_expect_eq(sbx_files_open_flags_check(O_ACCMODE, &need), -EINVAL);
    cr_expect_eq(sbx_files_open_flags_check(O_RDWR | O_TMPFILE, &need), -EOPNOTSUPP);
    cr_expect_eq(sbx_files_open_flags_check(O_RDONLY | FASYNC, &need), -EINVAL);
    cr_expect_eq(sbx_files_open_flags_check(O_PATH | O_CREAT, &need), -EINVAL);
    cr_expect_eq(sbx_files_open_flags_check(O_PATH | O_RDWR, &need), -EINVAL);
    cr_expect_eq(sbx_files_open_flags_check(0x40000000, &need), -EINVAL);
    cr_expect_eq(sbx_files_open_flags_check(-1, &need), -EINVAL);
}

Test(files_ops, create_mode)
{
    cr_expect_eq(sbx_files_create_mode(0777, 022, false), 0644);
    cr_expect_eq(sbx_files_create_mode(07777, 0, false), 0666);
    cr_expect_eq(sbx_files_create_mode(07777, 0, true), 0777);
    cr_expect_eq(sbx_files_create_mode(0600, 077, false), 0600);
    cr_expect_eq(sbx_files_create_mode(04755, 022, true), 0755);
}

ParameterizedTestParameters(files_ops, escapes)
{
    static unsigned modes[] = { 0, SBX_FILES_OPS_FORCE_WALK };
    return cr_make_param_array(unsigned, modes, 2);
}

ParameterizedTest(unsigned *mode, files_ops, escapes, .init = setup, .fini = teardown)
{
    int count = 0;
    sbx_files_ops_ctx c = make_ctx(*mode, &count);

    read_is(sbx_files_op_open(&c, pa("%s/x", g_a, 0), O_RDONLY, 0), "INSIDE");
    cr_expect_eq(count, 0, "no symlink, no recheck");

    /* A symlink in a writable dir pointing outside: refused. */
    cr_assert_eq(symlink(pa("%s/secret", g_f, 0), pa("%s/evil", g_a, 0)), 0);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/evil", g_a, 0), O_RDONLY, 0), -EACCES);
    cr_expect_eq(count, 1);
    struct stat st;
    cr_expect_eq(sbx_files_op_stat(&c, pa("%s/evil", g_a, 0), true, &st), -EACCES);
    cr_expect_eq(sbx_files_op_stat(&c, pa("%s/evil", g_a, 0), false, &st), 0, "lstat sees the link");
    cr_expect(S_ISLNK(st.st_mode));
    cr_expect_eq(sbx_files_op_access(&c, pa("%s/evil", g_a, 0), R_OK, true), -EACCES);
    /* ...also as an intermediate component and relative link. */
    cr_assert_eq(symlink("../F", pa("%s/up", g_a, 0)), 0);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/up/secret", g_a, 0), O_RDONLY, 0), -EACCES);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/up/new", g_a, 0), O_RDWR | O_CREAT, 0644), -EACCES);
    cr_expect_eq(access(pa("%s/new", g_f, 0), F_OK), -1, "nothing created outside");
    cr_expect_eq(sbx_files_op_mkdir(&c, pa("%s/up/d", g_a, 0), 0755), -EACCES);
    cr_expect_eq(sbx_files_op_unlink(&c, pa("%s/up/x", g_a, 0)), -EACCES);
    cr_expect_eq(access(pa("%s/x", g_f, 0), F_OK), 0, "nothing removed outside");
    /* A dangling link whose target is outside: O_CREAT through it refused. */
    cr_assert_eq(symlink(pa("%s/planted", g_f, 0), pa("%s/dangle", g_a, 0)), 0);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/dangle", g_a, 0), O_WRONLY | O_CREAT, 0644), -EACCES);
    cr_expect_eq(access(pa("%s/planted", g_f, 0), F_OK), -1);

    /* A symlink whose target is allowed: followed (after a recheck). */
    cr_assert_eq(symlink("sub/real", pa("%s/good", g_a, 0)), 0);
    int before = count;
    read_is(sbx_files_op_open(&c, pa("%s/good", g_a, 0), O_RDONLY, 0), "REAL");
    cr_expect_eq(count, before + 1);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/good", g_a, 0), O_RDONLY | O_NOFOLLOW, 0), -ELOOP);
    cr_expect_eq(sbx_files_op_stat(&c, pa("%s/good", g_a, 0), true, &st), 0);
    cr_expect(S_ISREG(st.st_mode));
    char lb[64];
    cr_expect_eq(sbx_files_op_readlink(&c, pa("%s/good", g_a, 0), lb, sizeof lb), 8);
    cr_expect_eq(memcmp(lb, "sub/real", 8), 0);
    /* Without a recheck callback nothing is followed. */
    sbx_files_ops_ctx strict = c;
    strict.recheck = NULL;
    cr_expect_eq(sbx_files_op_open(&strict, pa("%s/good", g_a, 0), O_RDONLY, 0), -ELOOP);

    /* ".." through a symlinked dir: the canonical path is lexical, and the
     * broker reaches exactly that object (A/x), not F/x. */
    cr_assert_eq(symlink(pa("%s", g_f, 0), pa("%s/flink", g_a, 0)), 0);
    char canon[SBX_FILES_PATH_MAX];
    const char *in = pa("%s/flink/../x", g_a, 0);
    cr_assert_gt(sbx_files_path_canon(in, strlen(in), canon, sizeof canon), 0);
    cr_expect_str_eq(canon, pa("%s/x", g_a, 0));
    read_is(sbx_files_op_open(&c, canon, O_RDONLY, 0), "INSIDE");

    /* Symlink loops end. */
    cr_assert_eq(symlink("loop2", pa("%s/loop1", g_a, 0)), 0);
    cr_assert_eq(symlink("loop1", pa("%s/loop2", g_a, 0)), 0);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/loop1", g_a, 0), O_RDONLY, 0), -ELOOP);
}

ParameterizedTestParameters(files_ops, magic_links)
{
    static unsigned modes[] = { 0, SBX_FILES_OPS_FORCE_WALK };
    return cr_make_param_array(unsigned, modes, 2);
}

static int allow_all(void *arg, unsigned which, const char *path)
{
    (void)arg;
    (void)which;
    (void)path;
    return 0;
}

ParameterizedTest(unsigned *mode, files_ops, magic_links, .init = setup, .fini = teardown)
{
    /* Even with a recheck that allows everything, procfs links are never
     * followed: /proc/<pid>/root/..., /proc/<pid>/cwd/..., /proc/<pid>/fd/N/..,
     * /proc/self. */
    sbx_files_ops_ctx c = make_ctx(*mode, NULL);
    c.recheck = allow_all;
    char p[1200];
    int dfd = open(g_f, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(dfd, 0);
    int pid = getpid();
    snprintf(p, sizeof p, "/proc/%d/root%s/secret", pid, g_f);
    cr_expect_eq(sbx_files_op_open(&c, p, O_RDONLY, 0), -ELOOP);
    snprintf(p, sizeof p, "/proc/%d/fd/%d/secret", pid, dfd);
    cr_expect_eq(sbx_files_op_open(&c, p, O_RDONLY, 0), -ELOOP);
    snprintf(p, sizeof p, "/proc/%d/fd/%d", pid, dfd);
    cr_expect_eq(sbx_files_op_open(&c, p, O_RDONLY, 0), -ELOOP);
    struct stat st;
    cr_expect_eq(sbx_files_op_stat(&c, p, true, &st), -ELOOP);
    cr_expect_eq(sbx_files_op_open(&c, "/proc/self/root/etc/passwd", O_RDONLY, 0), -ELOOP);
    cr_expect_eq(sbx_files_op_open(&c, "/proc/thread-self/cwd", O_RDONLY, 0), -ELOOP);
    /* A plain symlink in an allowed dir pointing into a magic link. */
    snprintf(p, sizeof p, "/proc/%d/fd/%d", pid, dfd);
    cr_assert_eq(symlink(p, pa("%s/tofd", g_a, 0)), 0);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/tofd/secret", g_a, 0), O_RDONLY, 0), -ELOOP);
    /* Ordinary procfs files are reachable when allowed. */
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    int fd = sbx_files_op_open(&c, p, O_RDONLY, 0);
    cr_expect_geq(fd, 0);
    close(fd);
    close(dfd);
}

ParameterizedTestParameters(files_ops, mutations)
{
    static unsigned modes[] = { 0, SBX_FILES_OPS_FORCE_WALK };
    return cr_make_param_array(unsigned, modes, 2);
}

ParameterizedTest(unsigned *mode, files_ops, mutations, .init = setup, .fini = teardown)
{
    sbx_files_ops_ctx c = make_ctx(*mode, NULL);
    struct stat st;
    cr_expect_eq(sbx_files_op_mkdir(&c, pa("%s/d", g_a, 0), 07777), 0);
    cr_assert_eq(stat(pa("%s/d", g_a, 0), &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0777, "no setuid/sticky bits: %o", st.st_mode & 07777);
    cr_expect_eq(sbx_files_op_mkdir(&c, pa("%s/d", g_a, 0), 0755), -EEXIST);
    int fd = sbx_files_op_open(&c, pa("%s/d/f", g_a, 0), O_RDWR | O_CREAT | O_EXCL, 06777);
    cr_assert_geq(fd, 0);
    cr_expect_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    cr_assert_eq(fstat(fd, &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0666);
    close(fd);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/d/f/", g_a, 0), O_RDONLY, 0), -ENOTDIR);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/d/", g_a, 0), O_RDWR | O_CREAT, 0644), -EISDIR);
    fd = sbx_files_op_open(&c, pa("%s/d/", g_a, 0), O_RDONLY, 0);
    cr_expect_geq(fd, 0);
    close(fd);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/d/missing", g_a, 0), O_RDONLY, 0), -ENOENT);
    cr_expect_eq(sbx_files_op_open(&c, pa("%s/d/f", g_a, 0), O_RDONLY | O_TRUNC, 0), -EACCES);

    cr_expect_eq(sbx_files_op_rename(&c, pa("%s/d/f", g_a, 0), pa("%s/d/g", g_a, 0), 0), 0);
    cr_expect_eq(access(pa("%s/d/g", g_a, 0), F_OK), 0);
    cr_expect_eq(sbx_files_op_rename(&c, pa("%s/d/g", g_a, 0), pa("%s/x", g_a, 0), RENAME_NOREPLACE),
                 -EEXIST);
    cr_expect_eq(sbx_files_op_rename(&c, pa("%s/d/g", g_a, 0), pa("%s/x", g_a, 0), 1u << 2),
                 -EINVAL, "RENAME_WHITEOUT refused");
    /* Rename to a forbidden place through a symlinked parent: refused, and
     * nothing moved. */
    cr_assert_eq(symlink(g_f, pa("%s/out", g_a, 0)), 0);
    cr_expect_eq(sbx_files_op_rename(&c, pa("%s/d/g", g_a, 0), pa("%s/out/g", g_a, 0), 0), -EACCES);
    cr_expect_eq(access(pa("%s/d/g", g_a, 0), F_OK), 0);
    cr_expect_eq(access(pa("%s/g", g_f, 0), F_OK), -1);
    /* ...and of a forbidden file into an allowed place. */
    cr_expect_eq(sbx_files_op_rename(&c, pa("%s/out/secret", g_a, 0), pa("%s/stolen", g_a, 0), 0),
                 -EACCES);
    cr_expect_eq(access(pa("%s/secret", g_f, 0), F_OK), 0);

    cr_expect_eq(sbx_files_op_rmdir(&c, pa("%s/d", g_a, 0)), -ENOTEMPTY);
    cr_expect_eq(sbx_files_op_unlink(&c, pa("%s/d/g/", g_a, 0)), -ENOTDIR);
    cr_expect_eq(sbx_files_op_unlink(&c, pa("%s/d", g_a, 0)), -EISDIR);
    cr_expect_eq(sbx_files_op_unlink(&c, pa("%s/d/g", g_a, 0)), 0);
    cr_expect_eq(sbx_files_op_rmdir(&c, pa("%s/d/", g_a, 0)), 0);
    cr_expect_eq(access(pa("%s/d", g_a, 0), F_OK), -1);
    /* unlink of a symlink removes the link, never its target. */
    cr_expect_eq(sbx_files_op_unlink(&c, pa("%s/out", g_a, 0)), 0);
    cr_expect_eq(access(g_f, F_OK), 0);
    cr_expect_eq(sbx_files_op_rmdir(&c, "/"), -EBUSY);

    struct statx sx;
    cr_expect_eq(sbx_files_op_statx(&c, pa("%s/x", g_a, 0), true, 0, STATX_BASIC_STATS, &sx), 0);
    cr_expect_eq(sx.stx_size, 6);
    cr_expect_eq(sbx_files_op_statx(&c, "/", true, 0, STATX_BASIC_STATS, &sx), 0);
    cr_expect(S_ISDIR(sx.stx_mode));
    cr_expect_eq(sbx_files_op_statx(&c, "/", true, AT_EMPTY_PATH, STATX_BASIC_STATS, &sx), -EINVAL);
}

Test(files_ops, runs_as_target_credentials, .init = setup, .fini = teardown)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to switch fsuid");
    cr_assert_eq(chmod(g_root, 0755), 0);
    sbx_files_ops_ctx c = make_ctx(0, NULL);
    sbx_files_creds nobody = { .fsuid = 65534, .fsgid = 65534, .umask = 022, .ngroups = 0 };
    c.creds = &nobody;
    char p[700];
    snprintf(p, sizeof p, "%s/secret", g_f);
    cr_assert_eq(chmod(p, 0600), 0);
    /* Root could open it; the target's uid cannot, though the broker is root. */
    cr_expect_eq(sbx_files_op_open(&c, p, O_RDONLY, 0), -EACCES);
    cr_expect_eq(sbx_files_op_access(&c, p, R_OK, true), -EACCES);
    cr_expect_eq(sbx_files_op_mkdir(&c, pa("%s/nope", g_f, 0), 0777), -EACCES, "F is 0755 root");
    int fd = sbx_files_op_open(&c, pa("%s/mine", g_a, 0), O_RDWR | O_CREAT, 0777);
    cr_assert_geq(fd, 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    close(fd);
    cr_expect_eq(st.st_uid, 65534);
    cr_expect_eq(st.st_gid, 65534);
    cr_expect_eq(st.st_mode & 0777, 0644, "umask 022 applied: %o", st.st_mode & 0777);
    /* The thread's identity is back afterwards. */
    fd = open(p, O_RDONLY);
    cr_expect_geq(fd, 0);
    close(fd);
    cr_expect_eq(setfsuid(-1), 0);
}

/* ---- rename race ---- */

typedef struct racer {
    atomic_bool stop;
    char a[1024], b[1024];
    unsigned swaps;
} racer;

static void *race_loop(void *arg)
{
    racer *r = arg;
    while (!atomic_load(&r->stop)) {
        if (syscall(SYS_renameat2, AT_FDCWD, r->a, AT_FDCWD, r->b, 2 /* RENAME_EXCHANGE */) == 0)
            r->swaps++;
    }
    return NULL;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

ParameterizedTestParameters(files_ops, rename_race)
{
    static unsigned modes[] = { 0, SBX_FILES_OPS_FORCE_WALK };
    return cr_make_param_array(unsigned, modes, 2);
}

ParameterizedTest(unsigned *mode, files_ops, rename_race, .init = setup, .fini = teardown)
{
    /* A/sub is a real dir holding "real"; A/swap is a symlink to F. Another
     * thread exchanges them without pause (and A/x with a link to
     * F/secret), while we open A/sub/real and A/x for ~1.5 s each: every
     * open that succeeds must reach the allowed inode. */
    sbx_files_ops_ctx c = make_ctx(*mode, NULL);
    struct stat good_dir_file, good_x;
    cr_assert_eq(stat(pa("%s/sub/real", g_a, 0), &good_dir_file), 0);
    cr_assert_eq(stat(pa("%s/x", g_a, 0), &good_x), 0);
    char fsub[700];
    snprintf(fsub, sizeof fsub, "%s/real", g_f);
    writefile(fsub, "FORBIDDEN");
    cr_assert_eq(symlink(g_f, pa("%s/swap", g_a, 0)), 0);
    cr_assert_eq(symlink(pa("%s/secret", g_f, 0), pa("%s/xswap", g_a, 0)), 0);
    int fds_before = count_fds();

    for (int round = 0; round < 2; round++) {
        racer r = { 0 };
        const char *target;
        const struct stat *good;
        if (round == 0) {
            snprintf(r.a, sizeof r.a, "%s/sub", g_a);
            snprintf(r.b, sizeof r.b, "%s/swap", g_a);
            target = pa("%s/sub/real", g_a, 0);
            good = &good_dir_file;
        } else {
            snprintf(r.a, sizeof r.a, "%s/x", g_a);
            snprintf(r.b, sizeof r.b, "%s/xswap", g_a);
            target = pa("%s/x", g_a, 0);
            good = &good_x;
        }
        char tcopy[1024];
        snprintf(tcopy, sizeof tcopy, "%s", target);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, race_loop, &r), 0);
        unsigned long long end = 0, now;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        end = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec +
              1500000000ull;
        unsigned ok = 0, refused = 0, wrong = 0;
        do {
            int fd = sbx_files_op_open(&c, tcopy, O_RDONLY, 0);
            if (fd >= 0) {
                struct stat st;
                fstat(fd, &st);
                if (st.st_ino == good->st_ino && st.st_dev == good->st_dev)
                    ok++;
                else
                    wrong++;
                close(fd);
            } else {
                refused++;
            }
            clock_gettime(CLOCK_MONOTONIC, &ts);
            now = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
        } while (now < end);
        atomic_store(&r.stop, true);
        pthread_join(th, NULL);
        cr_expect_eq(wrong, 0, "round %d: %u wrong opens (%u ok, %u refused, %u swaps)", round,
                     wrong, ok, refused, r.swaps);
        cr_expect_gt(ok, 0, "round %d: the race left no successful open", round);
        cr_expect_gt(r.swaps, 100, "the racer ran");
    }
    cr_expect_eq(count_fds(), fds_before, "no fd leaked");
}

Test(files_ops, in_root_stays_in_root, .init = setup, .fini = teardown)
{
    /* With a target's root, absolute symlinks resolve inside that root. */
    int root = open(g_a, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root, 0);
    sbx_files_ops_ctx c = { .root_fd = root, .in_root = true, .recheck = allow_all };
    cr_assert_eq(symlink("/sub/real", pa("%s/abs", g_a, 0)), 0);
    read_is(sbx_files_op_open(&c, "/abs", O_RDONLY, 0), "REAL");
    read_is(sbx_files_op_open(&c, "/x", O_RDONLY, 0), "INSIDE");
    cr_expect_eq(sbx_files_op_open(&c, g_f, O_RDONLY, 0), -ENOENT, "the host's F is not in this root");
    c.flags = SBX_FILES_OPS_FORCE_WALK;
    read_is(sbx_files_op_open(&c, "/abs", O_RDONLY, 0), "REAL");
    close(root);
}

Test(files_ops, no_fd_leak_over_many_ops, .init = setup, .fini = teardown)
{
    sbx_files_ops_ctx c = make_ctx(0, NULL);
    cr_assert_eq(symlink("sub/real", pa("%s/good", g_a, 0)), 0);
    cr_assert_eq(symlink(pa("%s/secret", g_f, 0), pa("%s/evil", g_a, 0)), 0);
    int before = count_fds();
    struct stat st;
    char lb[64];
    for (int i = 0; i < 2000; i++) {
        c.flags = (i & 1) ? SBX_FILES_OPS_FORCE_WALK : 0;
        int fd = sbx_files_op_open(&c, pa("%s/good", g_a, 0), O_RDONLY, 0);
        cr_assert_geq(fd, 0);
        close(fd);
        cr_assert_eq(sbx_files_op_open(&c, pa("%s/evil", g_a, 0), O_RDONLY, 0), -EACCES);
        cr_assert_eq(sbx_files_op_stat(&c, pa("%s/good", g_a, 0), true, &st), 0);
        cr_assert_eq(sbx_files_op_readlink(&c, pa("%s/good", g_a, 0), lb, sizeof lb), 8);
        cr_assert_eq(sbx_files_op_access(&c, pa("%s/nothere", g_a, 0), F_OK, true), -ENOENT);
        cr_assert_eq(sbx_files_op_mkdir(&c, pa("%s/tmpd", g_a, 0), 0700), 0);
        cr_assert_eq(sbx_files_op_rename(&c, pa("%s/tmpd", g_a, 0), pa("%s/tmpe", g_a, 0), 0), 0);
        cr_assert_eq(sbx_files_op_rmdir(&c, pa("%s/tmpe", g_a, 0)), 0);
    }
    cr_expect_eq(count_fds(), before);
}

/* The notify backend's stand-in for an O_PATH fd: a read-only fd of the
 * very object pinned (regular files and directories only), read
 * permission checked as the target. */
Test(files_ops, reopen_readable_pins_the_object, .init = setup, .fini = teardown)
{
    sbx_files_ops_ctx c = make_ctx(0, NULL);
    char p[700];
    snprintf(p, sizeof p, "%s/x", g_a);
    int o = open(p, O_PATH | O_CLOEXEC);
    cr_assert_geq(o, 0);
    /* renamed and replaced after the O_PATH open: the reopen still reads
     * the pinned file, not what the name now holds */
    cr_assert_eq(rename(p, pa("%s/moved", g_a, 0)), 0);
    writefile(p, "REPLACED");
    read_is(sbx_files_op_reopen_readable(&c, o), "INSIDE");
    close(o);
    o = open(g_a, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int d = sbx_files_op_reopen_readable(&c, o);
    cr_assert_geq(d, 0);
    char dents[1024];
    cr_expect_gt(syscall(SYS_getdents64, d, dents, sizeof dents), 0);
    close(d);
    close(o);
    snprintf(p, sizeof p, "%s/fifo", g_a);
    cr_assert_eq(mkfifo(p, 0666), 0);
    o = open(p, O_PATH | O_CLOEXEC);
    cr_expect_eq(sbx_files_op_reopen_readable(&c, o), -EBADF, "a FIFO open could block");
    close(o);
    snprintf(p, sizeof p, "%s/lnk", g_a);
    cr_assert_eq(symlink("x", p), 0);
    o = open(p, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    cr_expect_eq(sbx_files_op_reopen_readable(&c, o), -EBADF);
    close(o);
    if (geteuid() == 0) {
        sbx_files_creds nobody = { .fsuid = 65534, .fsgid = 65534, .umask = 022 };
        c.creds = &nobody;
        snprintf(p, sizeof p, "%s/secret", g_f);
        cr_assert_eq(chmod(p, 0600), 0);
        o = open(p, O_PATH | O_CLOEXEC);
        cr_expect_eq(sbx_files_op_reopen_readable(&c, o), -EACCES);
        close(o);
    }
}

/* op_open hands the caller's path to openat2 as it is (no copy) and
 * copies it only for the walk: at the length limits, for "/", for a name
 * past NAME_MAX and for a buffer with no NUL in SBX_FILES_PATH_MAX bytes,
 * both ways give the same answer and never read past the caller's
 * buffer (each path sits at the very end of its own allocation: ASan). */
static char *at_end(const char *s, size_t n)
{
    char *b = malloc(n);
    cr_assert_not_null(b);
    memcpy(b, s, n);
    return b;
}

Test(files_ops, open_path_edges_same_both_ways, .init = setup, .fini = teardown)
{
    static char longp[SBX_FILES_PATH_MAX + 1];
    memset(longp, 'q', sizeof longp);
    for (size_t i = 0; i < SBX_FILES_PATH_MAX; i += 100)
        longp[i] = '/';
    char name[NAME_MAX + 3];
    name[0] = '/';
    memset(name + 1, 'n', NAME_MAX + 1);
    name[NAME_MAX + 2] = '\0';
    struct stat rs;
    cr_assert_eq(fstat(make_ctx(0, NULL).root_fd, &rs), 0);
    for (int walk = 0; walk < 2; walk++) {
        int count = 0;
        sbx_files_ops_ctx c = make_ctx(walk ? SBX_FILES_OPS_FORCE_WALK : 0, &count);
        /* "/" is the root itself */
        char *p = at_end("/", 2);
        int fd = sbx_files_op_open(&c, p, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
        cr_assert_geq(fd, 0, "walk %d: %s", walk, strerror(-fd));
        struct stat st;
        cr_assert_eq(fstat(fd, &st), 0);
        cr_expect(st.st_dev == rs.st_dev && st.st_ino == rs.st_ino, "walk %d", walk);
        close(fd);
        free(p);
        p = at_end("", 1);
        cr_expect_eq(sbx_files_op_open(&c, p, O_RDONLY, 0), -ENOENT, "walk %d", walk);
        free(p);
        p = at_end("rel", 4);
        cr_expect_eq(sbx_files_op_open(&c, p, O_RDONLY, 0), -EINVAL, "walk %d", walk);
        free(p);
        /* SBX_FILES_PATH_MAX - 1 bytes: taken, and nothing is there */
        longp[SBX_FILES_PATH_MAX - 1] = '\0';
        p = at_end(longp, SBX_FILES_PATH_MAX);
        cr_expect_eq(sbx_files_op_open(&c, p, O_RDONLY, 0), -ENOENT, "walk %d", walk);
        free(p);
        /* no NUL in SBX_FILES_PATH_MAX bytes: too long, not read further */
        p = at_end(longp, SBX_FILES_PATH_MAX - 1);
        char *q = malloc(SBX_FILES_PATH_MAX);
        cr_assert_not_null(q);
        memcpy(q, p, SBX_FILES_PATH_MAX - 1);
        q[SBX_FILES_PATH_MAX - 1] = 'q';
        cr_expect_eq(sbx_files_op_open(&c, q, O_RDONLY, 0), -ENAMETOOLONG, "walk %d", walk);
        free(q);
        free(p);
        /* a name one byte past NAME_MAX, under a real directory */
        char *nm = at_end(pa("%s%s", g_a, name), strlen(g_a) + NAME_MAX + 3);
        cr_expect_eq(sbx_files_op_open(&c, nm, O_RDONLY, 0), -ENAMETOOLONG, "walk %d", walk);
        cr_expect_eq(sbx_files_op_open(&c, nm, O_RDWR | O_CREAT, 0600), -ENAMETOOLONG, "walk %d",
                     walk);
        free(nm);
        /* a last name of 2000 bytes (the walk copies the last name into a
         * NAME_MAX + 1 buffer: it must refuse it, not overrun it) */
        static char huge[SBX_FILES_PATH_MAX];
        int hl = snprintf(huge, sizeof huge, "%s/", g_a);
        memset(huge + hl, 'h', 2000);
        huge[hl + 2000] = '\0';
        nm = at_end(huge, (size_t)hl + 2001);
        int hr = sbx_files_op_open(&c, nm, O_RDONLY, 0);
        cr_expect_eq(hr, -ENAMETOOLONG, "walk %d: open %d", walk, hr);
        hr = sbx_files_op_mkdir(&c, nm, 0700);
        cr_expect_eq(hr, -ENAMETOOLONG, "walk %d: mkdir %d", walk, hr);
        hr = sbx_files_op_unlink(&c, nm);
        cr_expect_eq(hr, -ENAMETOOLONG, "walk %d: unlink %d", walk, hr);
        free(nm);
        /* a file read through a path at the end of its allocation */
        const char *xp = pa("%s/x", g_a, 0);
        p = at_end(xp, strlen(xp) + 1);
        read_is(sbx_files_op_open(&c, p, O_RDONLY | O_CLOEXEC, 0), "INSIDE");
        free(p);
    }
}
