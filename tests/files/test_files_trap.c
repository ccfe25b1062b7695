/* The files subsystem through the trap backend, end to end in one target:
 * this process installs the engine with the files handlers
 * (sbx_files_trap_register) and a forked broker serves the files IPC
 * services on the same sbx_files_dispatch path the notify backend uses.
 * Checked: brokered opens return the broker's fd, denials are EACCES, an
 * explicit deny in the local policy copy fails fast without IPC, relative
 * paths resolve against the calling thread's own cwd, writes/mkdir/unlink
 * go through the broker, refused entries fail in the kernel. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../trap/trap_lsan.h"
#include "sbx_test.h"
#include "subsys/files/files_interception.h"
#include "subsys/files/files_ipc.h"
#include "subsys/files/files_policy.h"
#include "subsys/files/files_syscalls.h"
#include "target/trap/trap.h"

static char *g_root;
static char g_b[512], g_c[512], g_d[512], g_r[512];

typedef struct shared {
    atomic_int decides;
    atomic_int audits;
    atomic_bool b_is_native; /* B is in the view (the broker answers NATIVE) */
} shared;
static shared *g_sh;
static bool g_landlock; /* the broker's word: NATIVE may be answered */

static int decide(void *ctx, const sbx_files_query *q, sbx_files_decision *out)
{
    (void)ctx;
    atomic_fetch_add(&g_sh->decides, 1);
    if (sbx_files_path_is_under(q->path, g_b) && atomic_load(&g_sh->b_is_native))
        out->action = SBX_FILES_NATIVE;
    else if (sbx_files_path_is_under(q->path, g_b))
        out->action = SBX_FILES_BROKER; /* as ALLOW_ANY */
    else if (sbx_files_path_is_under(q->path, g_r))
        out->action = (q->need & (SBX_FILES_NEED_WRITE | SBX_FILES_NEED_CREATE))
                          ? SBX_FILES_REFUSE
                          : SBX_FILES_BROKER; /* as QUERY/READONLY: no ALLOW_ANY */
    else
        out->action = SBX_FILES_REFUSE;
    return 0;
}

static void audit(void *ctx, const sbx_files_audit_record *r)
{
    (void)ctx;
    (void)r;
    atomic_fetch_add(&g_sh->audits, 1);
}

static pid_t g_broker = -1;
static int g_stop = -1; /* write end: the broker cleans up and exits */

static void broker_main(sbx_ipc_section *sec, int sock, int ready, int stop, pid_t target)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    sbx_files_dispatcher disp = { .decide = decide, .audit = audit, .broker_root_fd = root };
    sbx_files_ipc_target tgt = { .files = &disp, .pid = target, .landlock = g_landlock };
    sbx_ipc_dispatcher *d = NULL;
    sbx_ipc_pool *pool = NULL;
    sbx_ipc_server *srv = NULL;
    if (sbx_ipc_dispatcher_new(&d) < 0 || sbx_files_ipc_register(d) < 0 ||
        sbx_ipc_pool_new(&(sbx_ipc_pool_options){ .threads = 1 }, &pool) < 0 ||
        sbx_ipc_server_new(pool, sec, sock, d, &tgt, &srv) < 0)
        _exit(3);
    char c = 1;
    if (write(ready, &c, 1) != 1)
        _exit(4);
    (void)!read(stop, &c, 1); /* the test is done (or died: EOF) */
    sbx_ipc_server_free(srv);
    sbx_ipc_pool_free(pool);
    sbx_ipc_dispatcher_free(d);
    sbx_test_rmtree(g_root); /* natively: the broker is not trapped */
    _exit(0);
}

/* The local copy: an explicit deny for D (the broker's own decision knows
 * nothing of it: a call reaching the broker would be REFUSEd anyway, so
 * only the decide counter tells the fast path apart). */
static void *local_policy(size_t *size)
{
    char pat[600];
    snprintf(pat, sizeof pat, "%s/**", g_d);
    sbx_pol_builder *b = sbx_pol_builder_new();
    sbx_policy_error err;
    cr_assert_not_null(b);
    cr_assert_eq(sbx_files_policy_setup(b), 0);
    cr_assert_eq(sbx_files_policy_generate(b, pat, SBX_FILES_DENY, 0, "test:1", &err), 0);
    void *buf = NULL;
    cr_assert_eq(sbx_pol_builder_finish(b, &buf, size), 0);
    sbx_pol_builder_free(b);
    return buf;
}

static void mkfile(const char *dir, const char *name, const char *text)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    g_root = sbx_test_mkdtemp("ftrap");
    snprintf(g_b, sizeof g_b, "%s/B", g_root);
    snprintf(g_c, sizeof g_c, "%s/C", g_root);
    snprintf(g_d, sizeof g_d, "%s/D", g_root);
    snprintf(g_r, sizeof g_r, "%s/R", g_root);
    cr_assert_eq(mkdir(g_r, 0755), 0);
    mkfile(g_r, "f", "read-only");
    cr_assert_eq(mkdir(g_b, 0755), 0);
    cr_assert_eq(mkdir(g_c, 0755), 0);
    cr_assert_eq(mkdir(g_d, 0755), 0);
    mkfile(g_b, "f", "hello");
    mkfile(g_c, "f", "secret");
    mkfile(g_d, "f", "secret");
    char p[700];
    snprintf(p, sizeof p, "%s/link", g_b);
    cr_assert_eq(symlink(g_b, p) == 0 ? 0 : -1, 0); /* B/link -> B (absolute) */
    snprintf(p, sizeof p, "%s/flink", g_b);
    char t[700];
    snprintf(t, sizeof t, "%s/f", g_b);
    cr_assert_eq(symlink(t, p), 0); /* B/flink -> B/f */
    snprintf(p, sizeof p, "%s/toc", g_b);
    snprintf(t, sizeof t, "%s/f", g_c);
    cr_assert_eq(symlink(t, p), 0); /* B/toc -> C/f: a link out of the brokered tree */
    g_sh = mmap(NULL, sizeof *g_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(g_sh, MAP_FAILED);
}

/* Start the broker and engage the trap in this process. */
static void engage_with(bool allow_native)
{
    size_t psize = 0;
    void *pol = local_policy(&psize);
    sbx_ipc_section_options so = { .policy_size = (psize + 4095) / 4096 * 4096 };
    sbx_ipc_section *sec = NULL;
    cr_assert_eq(sbx_ipc_section_new(&so, &sec), 0);
    cr_assert_eq(sbx_ipc_section_write_policy(sec, pol, psize), 0);
    free(pol);
    int sv[2], rp[2], sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(pipe2(rp, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(sp, O_CLOEXEC), 0);
    pid_t me = getpid();
    fflush(NULL);
    g_broker = fork();
    cr_assert_geq(g_broker, 0);
    if (g_broker == 0) {
        close(sv[1]);
        close(rp[0]);
        close(sp[1]);
        broker_main(sec, sv[0], rp[1], sp[0], me);
    }
    close(sv[0]);
    close(rp[1]);
    close(sp[0]);
    g_stop = sp[1];
    char c;
    cr_assert_eq(read(rp[0], &c, 1), 1);
    close(rp[0]);
    sbx_ipc_client *cli = NULL;
    cr_assert_eq(sbx_ipc_client_new(sbx_ipc_section_fd(sec), sv[1], &cli), 0);
    sbx_ipc_section_free(sec);
    cr_assert_eq(sbx_files_trap_register(), 0);
    sbx_trap_options o = { .ipc = cli, .allow_native = allow_native };
    cr_assert_eq(sbx_trap_install(&o), 0);
}

static void engage(void)
{
    engage_with(false);
}

static void teardown(void)
{
    if (g_broker > 0) {
        char c = 1;
        (void)!write(g_stop, &c, 1);
        waitpid(g_broker, NULL, 0);
    } else if (g_root) {
        sbx_test_rmtree(g_root);
    }
}

TestSuite(files_trap, .init = setup, .fini = teardown, .timeout = 30);

static char *P(const char *d, const char *n)
{
    static char b[4][700];
    static int k;
    char *o = b[k++ & 3];
    snprintf(o, 700, "%s/%s", d, n);
    return o;
}

static void expect_content(int fd, const char *want)
{
    char buf[64] = { 0 };
    cr_assert_geq(fd, 0, "errno %d", errno);
    cr_expect_eq(pread(fd, buf, sizeof buf - 1, 0), (ssize_t)strlen(want));
    cr_expect_str_eq(buf, want);
    close(fd);
}

Test(files_trap, brokered_denied_and_prechecked)
{
    engage();
    expect_content(open(P(g_b, "f"), O_RDONLY), "hello");
    expect_content(openat(AT_FDCWD, P(g_b, "f"), O_RDONLY | O_CLOEXEC), "hello");
    int before = atomic_load(&g_sh->decides);
    cr_expect_eq(open(P(g_c, "f"), O_RDONLY), -1);
    cr_expect_eq(errno, EACCES);
    cr_expect_eq(atomic_load(&g_sh->decides), before + 1, "C is decided by the broker");
    cr_expect_eq(open(P(g_d, "f"), O_RDONLY), -1);
    cr_expect_eq(errno, EACCES);
    cr_expect_eq(open(P(g_d, "../D/./f"), O_RDONLY), -1, "spellings of D fail fast too");
    cr_expect_eq(atomic_load(&g_sh->decides), before + 1, "D failed fast, no IPC");
    sbx_files_trap_stats st;
    sbx_files_trap_get_stats(&st);
    cr_expect_eq(st.prechecked, 2);
    cr_expect_geq(st.brokered, 3);
    cr_expect_geq(atomic_load(&g_sh->audits), 3, "brokered and denied calls are audited");
}

Test(files_trap, writes_mkdir_unlink_through_the_broker)
{
    engage();
    int fd = open(P(g_b, "new"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "errno %d", errno);
    cr_expect_eq(write(fd, "out", 3), 3);
    close(fd);
    expect_content(open(P(g_b, "new"), O_RDONLY), "out");
    cr_expect_eq(creat(P(g_c, "new"), 0600), -1);
    cr_expect_eq(errno, EACCES);
    cr_expect_eq(mkdir(P(g_b, "d"), 0700), 0, "errno %d", errno);
    cr_expect_eq(rmdir(P(g_b, "d")), 0, "errno %d", errno);
    cr_expect_eq(access(P(g_b, "new"), R_OK), 0, "errno %d", errno);
    cr_expect_eq(unlink(P(g_c, "f")), -1);
    cr_expect_eq(errno, EACCES);
    cr_expect_eq(unlink(P(g_b, "new")), 0, "errno %d", errno);
    cr_expect_eq(access(P(g_b, "new"), F_OK), -1);
    cr_expect_eq(errno, ENOENT);
    /* Refused entries fail in the kernel filter. */
    cr_expect_eq(link(P(g_b, "f"), P(g_b, "g")), -1);
    cr_expect_eq(errno, EPERM);
    cr_expect_eq(syscall(SYS_io_uring_setup, 1, NULL), -1);
    cr_expect_eq(errno, EPERM);
}

typedef struct cwd_thread {
    int dirfd;
    int result, err;
} cwd_thread;

static void *in_c(void *arg)
{
    cwd_thread *ct = arg;
    if (unshare(CLONE_FS) != 0 || fchdir(ct->dirfd) != 0) {
        ct->result = -2;
        return NULL;
    }
    ct->result = open("f", O_RDONLY);
    ct->err = errno;
    return NULL;
}

Test(files_trap, relative_paths_use_the_calling_threads_cwd)
{
    int b = open(g_b, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int c = open(g_c, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(b, 0);
    cr_assert_geq(c, 0);
    engage();
    cr_assert_eq(fchdir(b), 0);
    expect_content(open("f", O_RDONLY), "hello");
    expect_content(openat(b, "f", O_RDONLY), "hello");
    cr_expect_eq(openat(c, "f", O_RDONLY), -1);
    cr_expect_eq(errno, EACCES);
    cr_expect_eq(open("../C/f", O_RDONLY), -1);
    cr_expect_eq(errno, EACCES);
    cwd_thread ct = { .dirfd = c };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, in_c, &ct), 0);
    pthread_join(th, NULL);
    cr_expect_eq(ct.result, -1, "the thread's own cwd (C) counts, not the process's (B)");
    cr_expect_eq(ct.err, EACCES);
    expect_content(open("f", O_RDONLY), "hello");
}

/* ---- the calls served since the ATTR and RENAME tags ---- */

static void expect_err(long r, int err, const char *what)
{
    int e = errno;
    cr_expect_eq(r, -1, "%s: %ld", what, r);
    cr_expect_eq(e, err, "%s: errno %d, wanted %d", what, e, err);
}

Test(files_trap, stat_family_allowed_denied_missing)
{
    struct stat want;
    cr_assert_eq(stat(P(g_b, "f"), &want), 0);
    engage();
    int before = atomic_load(&g_sh->decides);
    struct stat st;
    memset(&st, 0xa5, sizeof st);
    cr_expect_eq(syscall(SYS_stat, P(g_b, "f"), &st), 0, "errno %d", errno);
    cr_expect_eq(st.st_ino, want.st_ino);
    cr_expect_eq(st.st_size, 5);
    cr_expect(S_ISREG(st.st_mode));
    cr_expect_eq(atomic_load(&g_sh->decides), before + 1, "decided by the broker");
    /* stat of a link follows it (rechecked); lstat reports the link. */
    memset(&st, 0, sizeof st);
    cr_expect_eq(syscall(SYS_stat, P(g_b, "flink"), &st), 0, "errno %d", errno);
    cr_expect_eq(st.st_ino, want.st_ino);
    memset(&st, 0, sizeof st);
    cr_expect_eq(syscall(SYS_lstat, P(g_b, "flink"), &st), 0, "errno %d", errno);
    cr_expect(S_ISLNK(st.st_mode));
    cr_expect_neq(st.st_ino, want.st_ino);
    /* libc's stat/lstat are newfstatat. */
    cr_expect_eq(stat(P(g_b, "flink"), &st), 0, "errno %d", errno);
    cr_expect(S_ISREG(st.st_mode));
    cr_expect_eq(lstat(P(g_b, "flink"), &st), 0, "errno %d", errno);
    cr_expect(S_ISLNK(st.st_mode));
    /* A link out of the tree: lstat fine, stat refused (its target is C). */
    cr_expect_eq(lstat(P(g_b, "toc"), &st), 0, "errno %d", errno);
    expect_err(stat(P(g_b, "toc"), &st), EACCES, "stat through a link to C");
    /* Denied: EACCES whether or not the object exists; allowed missing: ENOENT. */
    expect_err(stat(P(g_c, "f"), &st), EACCES, "stat C/f");
    expect_err(stat(P(g_c, "nope"), &st), EACCES, "stat C/nope");
    expect_err(syscall(SYS_lstat, P(g_c, "nope"), &st), EACCES, "lstat C/nope");
    expect_err(stat(P(g_b, "nope"), &st), ENOENT, "stat B/nope");
    expect_err(fstatat(AT_FDCWD, P(g_b, "f"), &st, 0x80000), EINVAL, "unknown AT flag");
    /* statx */
    struct statx sx;
    memset(&sx, 0xa5, sizeof sx);
    cr_expect_eq(statx(AT_FDCWD, P(g_b, "f"), 0, STATX_BASIC_STATS, &sx), 0, "errno %d", errno);
    cr_expect_eq(sx.stx_ino, want.st_ino);
    cr_expect_eq(sx.stx_size, 5);
    cr_expect_eq(statx(AT_FDCWD, P(g_b, "flink"), AT_SYMLINK_NOFOLLOW, STATX_TYPE, &sx), 0);
    cr_expect(S_ISLNK(sx.stx_mode));
    expect_err(statx(AT_FDCWD, P(g_c, "f"), 0, STATX_BASIC_STATS, &sx), EACCES, "statx C/f");
    expect_err(statx(AT_FDCWD, P(g_c, "nope"), 0, STATX_BASIC_STATS, &sx), EACCES, "statx C/nope");
    expect_err(statx(AT_FDCWD, P(g_b, "nope"), 0, STATX_BASIC_STATS, &sx), ENOENT, "statx B/nope");
    /* The explicit local deny fails fast for the stat family too. */
    before = atomic_load(&g_sh->decides);
    expect_err(stat(P(g_d, "f"), &st), EACCES, "stat D/f");
    cr_expect_eq(atomic_load(&g_sh->decides), before, "D failed fast, no IPC");
}

Test(files_trap, stat_of_an_fd_and_empty_paths)
{
    int c = open(g_c, O_PATH | O_DIRECTORY | O_CLOEXEC); /* before the trap: held by the target */
    cr_assert_geq(c, 0);
    engage();
    int fd = open(P(g_b, "f"), O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "errno %d", errno);
    struct stat st, want;
    cr_assert_eq(fstat(fd, &want), 0, "errno %d", errno); /* glibc: newfstatat(fd, "", EMPTY) */
    cr_expect_eq(want.st_size, 5);
    cr_expect_eq(fstatat(fd, "", &st, AT_EMPTY_PATH), 0, "errno %d", errno);
    cr_expect_eq(st.st_ino, want.st_ino);
    struct statx sx;
    cr_expect_eq(statx(fd, "", AT_EMPTY_PATH, STATX_INO, &sx), 0, "errno %d", errno);
    cr_expect_eq(sx.stx_ino, want.st_ino, "the broker stats the thread's own fd");
    /* An fd the target holds needs no rule, even of a refused directory. */
    cr_expect_eq(fstatat(c, "", &st, AT_EMPTY_PATH), 0, "errno %d", errno);
    cr_expect(S_ISDIR(st.st_mode));
    cr_expect_eq(statx(c, "", AT_EMPTY_PATH, STATX_TYPE, &sx), 0, "errno %d", errno);
    cr_expect(S_ISDIR(sx.stx_mode));
    cr_expect_eq(statx(AT_FDCWD, "", AT_EMPTY_PATH, STATX_TYPE, &sx), 0, "the cwd; errno %d", errno);
    expect_err(fstatat(c, "f", &st, 0), EACCES, "but a path below it is decided");
    close(c);
    expect_err(fstatat(fd, "", &st, 0), ENOENT, "empty path without AT_EMPTY_PATH");
    expect_err(statx(9999, "", AT_EMPTY_PATH, STATX_INO, &sx), EBADF, "statx of no fd");
    expect_err(fstatat(9999, "", &st, AT_EMPTY_PATH), EBADF, "fstatat of no fd");
    close(fd);
}

Test(files_trap, readlink_truncates_like_the_kernel)
{
    engage();
    char want[700];
    snprintf(want, sizeof want, "%s/f", g_b);
    size_t wl = strlen(want);
    char buf[800];
    memset(buf, 'X', sizeof buf);
    cr_expect_eq(readlink(P(g_b, "flink"), buf, sizeof buf), (ssize_t)wl, "errno %d", errno);
    cr_expect_eq(memcmp(buf, want, wl), 0);
    cr_expect_eq(buf[wl], 'X', "no NUL added");
    /* A short buffer: exactly that many bytes, the count is the size. */
    memset(buf, 'X', sizeof buf);
    cr_expect_eq(syscall(SYS_readlink, P(g_b, "flink"), buf, 4), 4, "errno %d", errno);
    cr_expect_eq(memcmp(buf, want, 4), 0);
    cr_expect_eq(buf[4], 'X', "nothing written past the buffer");
    memset(buf, 'X', sizeof buf);
    int b = open(g_b, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(b, 0);
    cr_expect_eq(syscall(SYS_readlinkat, b, "flink", buf, 1), 1, "errno %d", errno);
    cr_expect_eq(buf[0], want[0]);
    cr_expect_eq(buf[1], 'X');
    expect_err(syscall(SYS_readlink, P(g_b, "flink"), buf, 0), EINVAL, "size 0");
    expect_err(syscall(SYS_readlink, P(g_b, "f"), buf, sizeof buf), EINVAL, "not a link");
    expect_err(readlink(P(g_b, "nope"), buf, sizeof buf), ENOENT, "allowed missing");
    char cl[700];
    snprintf(cl, sizeof cl, "%s/l", g_c);
    expect_err(readlink(cl, buf, sizeof buf), EACCES, "denied missing");
    expect_err(readlinkat(b, "../C/f", buf, sizeof buf), EACCES, "denied existing");
    close(b);
}

static bool exists(const char *p)
{
    struct stat st;
    return fstatat(AT_FDCWD, p, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Test(files_trap, rename_needs_both_sides)
{
    mkfile(g_b, "a", "A");
    engage();
    cr_expect_eq(syscall(SYS_rename, P(g_b, "a"), P(g_b, "b")), 0, "errno %d", errno);
    expect_content(open(P(g_b, "b"), O_RDONLY), "A");
    /* One side only readable (no ALLOW_ANY): refused, nothing moves. */
    expect_err(syscall(SYS_rename, P(g_b, "b"), P(g_r, "b")), EACCES, "into R");
    expect_err(syscall(SYS_rename, P(g_r, "f"), P(g_b, "g")), EACCES, "out of R");
    expect_err(syscall(SYS_rename, P(g_c, "f"), P(g_b, "g")), EACCES, "out of C");
    expect_err(syscall(SYS_rename, P(g_c, "nope"), P(g_b, "g")), EACCES, "out of C, missing");
    expect_err(syscall(SYS_rename, P(g_b, "nope"), P(g_b, "g")), ENOENT, "allowed, missing");
    cr_expect(exists(P(g_b, "b")));
    cr_expect(exists(P(g_r, "f")));
    cr_expect(!exists(P(g_r, "b")));
    cr_expect(!exists(P(g_b, "g")));
    /* renameat: each path against its own dirfd. */
    int b = open(g_b, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int r = open(g_r, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(b, 0);
    cr_assert_geq(r, 0);
    cr_expect_eq(syscall(SYS_renameat, b, "b", b, "c"), 0, "errno %d", errno);
    expect_err(syscall(SYS_renameat, b, "c", r, "c"), EACCES, "renameat into R");
    cr_expect(exists(P(g_b, "c")));
    /* renameat2 flags reach the kernel; WHITEOUT is refused. */
    expect_err(syscall(SYS_renameat2, b, "c", b, "f", RENAME_NOREPLACE), EEXIST, "noreplace");
    expect_err(syscall(SYS_renameat2, b, "c", b, "d", RENAME_WHITEOUT), EINVAL, "whiteout");
    cr_expect_eq(renameat2(b, "c", b, "f", RENAME_EXCHANGE), 0, "errno %d", errno);
    expect_content(open(P(g_b, "f"), O_RDONLY), "A");
    expect_content(open(P(g_b, "c"), O_RDONLY), "hello");
    /* Relative: the calling thread's cwd. */
    cr_assert_eq(fchdir(b), 0);
    cr_expect_eq(rename("c", "e"), 0, "errno %d", errno);
    expect_err(rename("e", "../R/e"), EACCES, "relative into R");
    cr_expect(exists(P(g_b, "e")));
    /* The local deny fails fast on either side. */
    int before = atomic_load(&g_sh->decides);
    expect_err(rename(P(g_b, "e"), P(g_d, "e")), EACCES, "into D");
    cr_expect_eq(atomic_load(&g_sh->decides), before, "no IPC");
    close(b);
    close(r);
}

Test(files_trap, truncate_chmod_utimensat)
{
    engage();
    cr_expect_eq(syscall(SYS_truncate, P(g_b, "f"), 2L), 0, "errno %d", errno);
    expect_content(open(P(g_b, "f"), O_RDONLY), "he");
    expect_err(syscall(SYS_truncate, P(g_r, "f"), 1L), EACCES, "truncate R/f");
    expect_err(syscall(SYS_truncate, P(g_c, "nope"), 1L), EACCES, "truncate C/nope");
    expect_err(syscall(SYS_truncate, P(g_b, "f"), -1L), EINVAL, "negative length");
    expect_err(syscall(SYS_truncate, P(g_b, "nope"), 1L), ENOENT, "allowed missing");
    struct stat st;
    cr_expect_eq(syscall(SYS_chmod, P(g_b, "f"), 0600), 0, "errno %d", errno);
    cr_expect_eq(stat(P(g_b, "f"), &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0600);
    cr_expect_eq(fchmodat(AT_FDCWD, P(g_b, "f"), 0640, 0), 0, "errno %d", errno);
    cr_expect_eq(stat(P(g_b, "f"), &st), 0);
    cr_expect_eq(st.st_mode & 07777, 0640);
    expect_err(syscall(SYS_chmod, P(g_b, "f"), 04755), EPERM, "setuid refused");
    expect_err(syscall(SYS_chmod, P(g_r, "f"), 0600), EACCES, "chmod R/f");
    expect_err(syscall(SYS_chmod, P(g_c, "nope"), 0600), EACCES, "chmod C/nope");
    expect_err(syscall(SBX_FILES_SYS_FCHMODAT2, AT_FDCWD, P(g_b, "flink"), 0600,
                       AT_SYMLINK_NOFOLLOW),
               EOPNOTSUPP, "fchmodat2 nofollow on a link");
    struct timespec ts[2] = { { .tv_sec = 1000000, .tv_nsec = 0 }, { .tv_sec = 2000000 } };
    cr_expect_eq(utimensat(AT_FDCWD, P(g_b, "f"), ts, 0), 0, "errno %d", errno);
    cr_expect_eq(stat(P(g_b, "f"), &st), 0);
    cr_expect_eq(st.st_mtim.tv_sec, 2000000);
    cr_expect_eq(st.st_atim.tv_sec, 1000000);
    cr_expect_eq(utimensat(AT_FDCWD, P(g_b, "f"), NULL, 0), 0, "NULL times: now; errno %d", errno);
    cr_expect_eq(stat(P(g_b, "f"), &st), 0);
    cr_expect_gt(st.st_mtim.tv_sec, 2000000);
    expect_err(utimensat(AT_FDCWD, P(g_r, "f"), ts, 0), EACCES, "utimensat R/f");
    expect_err(utimensat(AT_FDCWD, P(g_c, "nope"), ts, 0), EACCES, "utimensat C/nope");
    expect_err(utimensat(AT_FDCWD, P(g_b, "nope"), ts, 0), ENOENT, "allowed missing");
}

typedef struct stat_thread {
    int dirfd;
    long result;
    int err;
} stat_thread;

static void *stat_in(void *arg)
{
    stat_thread *t = arg;
    struct stat st;
    if (unshare(CLONE_FS) != 0 || fchdir(t->dirfd) != 0) {
        t->result = -2;
        return NULL;
    }
    t->result = stat("f", &st);
    t->err = errno;
    return NULL;
}

Test(files_trap, relative_stat_readlink_use_the_calling_threads_cwd)
{
    int b = open(g_b, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int c = open(g_c, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(b, 0);
    cr_assert_geq(c, 0);
    engage();
    cr_assert_eq(fchdir(b), 0);
    struct stat st;
    cr_expect_eq(stat("f", &st), 0, "errno %d", errno);
    cr_expect_eq(st.st_size, 5);
    char buf[16];
    cr_expect_eq(readlink("flink", buf, 3), 3, "errno %d", errno);
    expect_err(stat("../C/f", &st), EACCES, "lexical escape");
    expect_err(fstatat(c, "f", &st, 0), EACCES, "dirfd C");
    stat_thread t = { .dirfd = c };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, stat_in, &t), 0);
    pthread_join(th, NULL);
    cr_expect_eq(t.result, -1, "the thread's own cwd (C) counts");
    cr_expect_eq(t.err, EACCES);
    cr_expect_eq(stat("f", &st), 0);
}

/* Native re-issue allowed: a path with no deny rule is tried natively
 * first, and a call the broker served itself (outside the view) goes to
 * the broker directly the next time; a NATIVE answer forgets that. Here
 * the target is nobody and the broker root: B/secret (0600, root's) fails
 * natively and is served by the broker. */
Test(files_trap, brokered_calls_skip_the_native_attempt_next_time)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (a file the target cannot open natively)");
    char p[700];
    snprintf(p, sizeof p, "%s/secret", g_b);
    int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_eq(write(fd, "root", 4), 4);
    close(fd);
    g_landlock = true;
    engage_with(true);
    cr_assert_eq(setresuid(65534, 65534, 65534), 0);
    sbx_files_trap_stats a, b;
    sbx_files_trap_get_stats(&a);
    expect_content(open(P(g_b, "secret"), O_RDONLY), "root");
    sbx_files_trap_get_stats(&b);
    cr_expect_eq(b.native - a.native, 1, "tried natively first");
    cr_expect_eq(b.brokered - a.brokered, 1);
    cr_expect_eq(b.hinted, a.hinted);
    a = b;
    expect_content(open(P(g_b, "secret"), O_RDONLY), "root");
    expect_content(open(P(g_b, "./secret"), O_RDONLY), "root"); /* the canonical path counts */
    sbx_files_trap_get_stats(&b);
    cr_expect_eq(b.native, a.native, "no native attempt: the broker served it last time");
    cr_expect_eq(b.hinted - a.hinted, 2);
    cr_expect_eq(b.brokered - a.brokered, 2);
    a = b;
    expect_content(open(P(g_b, "secret"), O_RDONLY | O_NONBLOCK), "root");
    sbx_files_trap_get_stats(&b);
    cr_expect_eq(b.native - a.native, 1, "other flags: another call, tried natively");
    expect_content(open(P(g_b, "f"), O_RDONLY), "hello"); /* natively, no broker */
    /* (The hints are a small table: the O_NONBLOCK call may have taken the
     * O_RDONLY one's slot. This call puts it back.) */
    expect_content(open(P(g_b, "secret"), O_RDONLY), "root");
    /* The broker now says B is in the view: the hinted call follows its
     * NATIVE answer (natively: EACCES for nobody) and forgets the hint. */
    atomic_store(&g_sh->b_is_native, true);
    sbx_files_trap_get_stats(&a);
    cr_expect_eq(open(P(g_b, "secret"), O_RDONLY), -1);
    cr_expect_eq(errno, EACCES);
    sbx_files_trap_get_stats(&b);
    cr_expect_eq(b.hinted - a.hinted, 1);
    cr_expect_eq(b.native - a.native, 1, "the NATIVE answer re-issued");
    a = b;
    cr_expect_eq(open(P(g_b, "secret"), O_RDONLY), -1);
    sbx_files_trap_get_stats(&b);
    cr_expect_eq(b.hinted, a.hinted, "forgotten");
    cr_expect_eq(b.native - a.native, 2, "a native attempt, then the NATIVE answer");
}

static void *chdir_in_own_fs(void *arg)
{
    cwd_thread *ct = arg;
    if (unshare(CLONE_FS) != 0) {
        ct->result = -2;
        return NULL;
    }
    ct->result = chdir(g_r);
    ct->err = errno;
    char buf[700];
    if (ct->result == 0 && (!getcwd(buf, sizeof buf) || strcmp(buf, g_r) != 0))
        ct->result = -3;
    return NULL;
}

/* chdir through the CHDIR service (the handler fchdir()s into the
 * broker's O_PATH fd) and getcwd through GETCWD (no native re-issue
 * here): both per calling thread, refusals change nothing. */
Test(files_trap, chdir_and_getcwd_through_the_broker)
{
    engage();
    sbx_files_trap_stats before, after;
    sbx_files_trap_get_stats(&before);
    cr_assert_eq(chdir(g_b), 0, "errno %d", errno);
    char buf[700];
    cr_assert_not_null(getcwd(buf, sizeof buf), "errno %d", errno);
    cr_expect_str_eq(buf, g_b);
    expect_content(open("f", O_RDONLY), "hello");
    cr_expect_eq(chdir(g_c), -1);
    cr_expect_eq(errno, EACCES);
    cr_expect_eq(chdir(".."), -1, "the grant's parent is not granted");
    cr_expect_eq(errno, EACCES);
    cr_expect_eq(chdir("link"), 0, "B/link -> B stays in the grant: errno %d", errno);
    cr_expect_eq(chdir(P(g_b, "f")), -1);
    cr_expect_eq(errno, ENOTDIR);
    cr_expect_eq(syscall(SYS_getcwd, buf, strlen(g_b)), -1);
    cr_expect_eq(errno, ERANGE);
    cr_expect_eq(syscall(SYS_getcwd, buf, strlen(g_b) + 1), (long)strlen(g_b) + 1);
    cr_expect_eq(syscall(SYS_getcwd, (char *)8, sizeof buf), -1);
    cr_expect_eq(errno, EFAULT);
    cr_assert_not_null(getcwd(buf, sizeof buf));
    cr_expect_str_eq(buf, g_b, "refused chdirs changed nothing");
    cwd_thread ct = { 0 };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, chdir_in_own_fs, &ct), 0);
    pthread_join(th, NULL);
    cr_expect_eq(ct.result, 0, "a thread with its own fs_struct: %d errno %d", ct.result, ct.err);
    cr_assert_not_null(getcwd(buf, sizeof buf));
    cr_expect_str_eq(buf, g_b, "the other thread's chdir is its own");
    sbx_files_trap_get_stats(&after);
    cr_expect_geq(after.brokered - before.brokered, 8);
    cr_assert_eq(mkdir(P(g_b, "gone"), 0755), 0);
    cr_assert_eq(chdir("gone"), 0);
    cr_assert_eq(rmdir(P(g_b, "gone")), 0);
    cr_expect_null(getcwd(buf, sizeof buf));
    cr_expect_eq(errno, ENOENT);
}
