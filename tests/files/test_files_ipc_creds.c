/* files IPC services: the identity a pool thread keeps between calls.
 * One pool thread serves three targets in turn — one running as root, one
 * as nobody (a forked process that dropped its ids), and one served in the
 * broker's own identity — and must act as each caller every time: a
 * target never gets what an identity served before it could open (a 0600
 * root file under a brokered directory), and a call after it never loses
 * what its own identity can do. Needs root (skipped otherwise). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbx_test.h"
#include "subsys/files/files_ipc.h"

#define NOBODY 65534

static char *g_root;
static char g_b[512], g_n[512];
static int g_rootfd = -1;

static int decide(void *ctx, const sbx_files_query *q, sbx_files_decision *out)
{
    (void)ctx;
    out->action = sbx_files_path_is_under(q->path, g_b)   ? SBX_FILES_BROKER
                  : sbx_files_path_is_under(q->path, g_n) ? SBX_FILES_NATIVE
                                                            : SBX_FILES_REFUSE;
    return 0;
}

static sbx_files_dispatcher g_disp;
static sbx_ipc_dispatcher *g_ipcd;
static sbx_ipc_pool *g_pool;
static pid_t g_child = -1;

/* One target: its context and its own section, server and client, all on
 * the one pool thread. */
typedef struct conn {
    sbx_files_ipc_target tgt;
    sbx_files_ipc_memo memo;
    sbx_ipc_section *sec;
    sbx_ipc_server *srv;
    sbx_ipc_client *cli;
    pid_t tid; /* the calling thread the broker looks up */
} conn;

static conn g_as_root, g_as_nobody, g_as_broker, g_nobody_no_landlock, g_root_no_landlock;

static void conn_new(conn *c, pid_t pid, pid_t tid, bool target_creds, bool landlock)
{
    sbx_files_ipc_memo_init(&c->memo);
    c->tgt = (sbx_files_ipc_target){ .files = &g_disp, .pid = pid, .landlock = landlock,
                                     .target_creds = target_creds, .memo = &c->memo };
    c->tid = tid;
    cr_assert_eq(sbx_ipc_section_new(NULL, &c->sec), 0);
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    cr_assert_eq(sbx_ipc_server_new(g_pool, c->sec, sp[0], g_ipcd, &c->tgt, &c->srv), 0);
    cr_assert_eq(sbx_ipc_client_new(sbx_ipc_section_fd(c->sec), sp[1], &c->cli), 0);
}

static void conn_free(conn *c)
{
    sbx_ipc_client_free(c->cli);
    sbx_ipc_server_free(c->srv);
    sbx_ipc_section_free(c->sec);
    sbx_files_ipc_memo_destroy(&c->memo);
}

/* A process that becomes nobody with these supplementary groups and
 * waits to be killed (it dies with this one too). */
static pid_t fork_as_nobody(const gid_t *groups, size_t n)
{
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    fflush(NULL);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || setgroups(n, groups) != 0 ||
            setresgid(NOBODY, NOBODY, NOBODY) != 0 || setresuid(NOBODY, NOBODY, NOBODY) != 0)
            _exit(1);
        (void)!write(ready[1], "r", 1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char r;
    cr_assert_eq(read(ready[0], &r, 1), 1, "the nobody process is ready");
    close(ready[0]);
    return child;
}

static void setup(void)
{
    if (geteuid() != 0)
        return;
    g_root = sbx_test_mkdtemp("fipc-creds");
    cr_assert_eq(chmod(g_root, 0755), 0);
    snprintf(g_b, sizeof g_b, "%s/B", g_root);
    cr_assert_eq(mkdir(g_b, 0755), 0);
    snprintf(g_n, sizeof g_n, "%s/N", g_root);
    cr_assert_eq(mkdir(g_n, 0755), 0);
    char p[700];
    snprintf(p, sizeof p, "%s/secret", g_n);
    int nfd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_eq(write(nfd, "root", 4), 4);
    close(nfd);
    snprintf(p, sizeof p, "%s/secret", g_b);
    int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_eq(write(fd, "root", 4), 4);
    close(fd);
    snprintf(p, sizeof p, "%s/public", g_b);
    fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    cr_assert_eq(write(fd, "all", 3), 3);
    close(fd);
    snprintf(p, sizeof p, "%s/w", g_b);
    cr_assert_eq(mkdir(p, 0777), 0);
    cr_assert_eq(chmod(p, 0777), 0);

    /* The nobody target: a process whose every id is nobody's. */
    gid_t none[1] = { NOBODY };
    g_child = fork_as_nobody(none, 1);

    g_rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    g_disp = (sbx_files_dispatcher){ .decide = decide, .broker_root_fd = g_rootfd };
    cr_assert_eq(sbx_ipc_dispatcher_new(&g_ipcd), 0);
    cr_assert_eq(sbx_files_ipc_register(g_ipcd), 0);
    sbx_ipc_pool_options po = { .threads = 1 };
    cr_assert_eq(sbx_ipc_pool_new(&po, &g_pool), 0);
    conn_new(&g_as_root, getpid(), (pid_t)syscall(SYS_gettid), true, true);
    conn_new(&g_as_nobody, g_child, g_child, true, true);
    conn_new(&g_as_broker, getpid(), (pid_t)syscall(SYS_gettid), false, true);
    /* Without Landlock native calls are performed in the target's root
     * (kept in the thread memo after the first call). */
    conn_new(&g_nobody_no_landlock, g_child, g_child, true, false);
    conn_new(&g_root_no_landlock, getpid(), (pid_t)syscall(SYS_gettid), true, false);
}

static void teardown(void)
{
    if (geteuid() != 0)
        return;
    conn_free(&g_as_root);
    conn_free(&g_as_nobody);
    conn_free(&g_as_broker);
    conn_free(&g_nobody_no_landlock);
    conn_free(&g_root_no_landlock);
    sbx_ipc_pool_free(g_pool);
    sbx_ipc_dispatcher_free(g_ipcd);
    kill(g_child, SIGKILL);
    waitpid(g_child, NULL, 0);
    sbx_test_rmtree(g_root);
    free(g_root);
    close(g_rootfd);
}

TestSuite(files_ipc_creds, .init = setup, .fini = teardown);

static const char *g_dir = g_b; /* P()'s directory */

static char *P(const char *n)
{
    static char b[4][700];
    static int k;
    char *o = b[k++ & 3];
    snprintf(o, 700, "%s/%s", g_dir, n);
    return o;
}

/* open(path, flags, mode) as c's caller: the fd, or -errno. */
static int open_as(conn *c, const char *path, int flags, mode_t mode)
{
    sbx_arg a[6] = { sbx_arg_u32(SYS_open), sbx_arg_u32((uint32_t)c->tid),
                     sbx_arg_handle((uint64_t)(int64_t)AT_FDCWD), sbx_arg_string(path),
                     sbx_arg_u32((uint32_t)flags), sbx_arg_u32(mode) };
    sbx_ipc_reply rep;
    cr_assert_eq(sbx_ipc_client_call(c->cli, SBX_FILES_IPC_TAG_OPEN, a, 6, SBX_IPC_CALL_CLOEXEC,
                                     &rep),
                 0);
    if (rep.ext[0] == SBX_FILES_IPC_RES_FD) {
        cr_assert_geq(rep.fd, 0);
        return rep.fd;
    }
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_ERROR);
    cr_assert_eq(rep.fd, -1);
    return -rep.status;
}

static void expect_reads(conn *c, const char *name, const char *want, int line)
{
    int fd = open_as(c, P(name), O_RDONLY, 0);
    cr_assert_geq(fd, 0, "line %d: %s: %s", line, name, strerror(-fd));
    char buf[16] = { 0 };
    cr_expect_eq(pread(fd, buf, sizeof buf - 1, 0), (ssize_t)strlen(want), "line %d", line);
    cr_expect_str_eq(buf, want, "line %d", line);
    close(fd);
}
#define EXPECT_READS(c, name, want) expect_reads(c, name, want, __LINE__)

static void expect_denied(conn *c, const char *name, int line)
{
    int fd = open_as(c, P(name), O_RDONLY, 0);
    if (fd >= 0)
        close(fd);
    cr_expect_eq(fd, -EACCES, "line %d: %s as nobody: %d, wanted EACCES", line, name, fd);
}
#define EXPECT_DENIED(c, name) expect_denied(c, name, __LINE__)

/* The owner of a file created through c. */
static uid_t created_by(conn *c, const char *name)
{
    int fd = open_as(c, P(name), O_WRONLY | O_CREAT | O_EXCL, 0644);
    cr_assert_geq(fd, 0, "create %s: %s", name, strerror(-fd));
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    close(fd);
    return st.st_uid;
}

Test(files_ipc_creds, a_kept_identity_never_serves_another_caller)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (two identities)");
    /* root, then nobody: the thread was root a moment ago. */
    EXPECT_READS(&g_as_root, "secret", "root");
    EXPECT_DENIED(&g_as_nobody, "secret");
    EXPECT_READS(&g_as_nobody, "public", "all");
    EXPECT_DENIED(&g_as_nobody, "secret"); /* twice: the kept identity itself */
    /* nobody, then the broker's own identity, then root, then nobody. */
    EXPECT_READS(&g_as_broker, "secret", "root");
    EXPECT_DENIED(&g_as_nobody, "secret");
    EXPECT_READS(&g_as_root, "secret", "root");
    EXPECT_DENIED(&g_as_nobody, "secret");
    /* Creating calls take the fresh lookup (as the broker) between two
     * kept switches: each file is its caller's. */
    cr_expect_eq(created_by(&g_as_nobody, "w/n1"), NOBODY);
    cr_expect_eq(created_by(&g_as_root, "w/r1"), 0);
    cr_expect_eq(created_by(&g_as_nobody, "w/n2"), NOBODY);
    cr_expect_eq(created_by(&g_as_broker, "w/b1"), 0);
    EXPECT_DENIED(&g_as_nobody, "secret");
}

/* Is some thread of this process acting with fsuid `uid` right now? (the
 * fourth Uid field of /proc/self/task/<t>/status) */
static bool some_thread_has_fsuid(uid_t uid)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[300], line[256];
        snprintf(p, sizeof p, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        unsigned r, eu, s, fs;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Uid: %u %u %u %u", &r, &eu, &s, &fs) == 4 && fs == uid)
                found = true;
        fclose(f);
    }
    closedir(d);
    return found;
}

Test(files_ipc_creds, the_pool_thread_stays_in_its_targets_identity_between_calls)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (two identities)");
    EXPECT_READS(&g_as_nobody, "public", "all");
    /* No switch back after the answer: the next call of the same target
     * switches nothing. */
    cr_expect(some_thread_has_fsuid(NOBODY), "the pool thread kept nobody's identity");
    /* A call in the broker's identity gives the thread its own back. */
    EXPECT_READS(&g_as_broker, "secret", "root");
    cr_expect(!some_thread_has_fsuid(NOBODY), "the pool thread is the broker again");
    EXPECT_READS(&g_as_nobody, "public", "all");
    EXPECT_READS(&g_as_root, "secret", "root");
    cr_expect(!some_thread_has_fsuid(NOBODY), "root's call switched it");
}

Test(files_ipc_creds, without_landlock_native_calls_run_in_the_targets_root_as_the_target)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (two identities)");
    g_dir = g_n; /* NATIVE: performed by the broker inside the target's root */
    for (int i = 0; i < 3; i++) { /* the first call opens the root, the next ones reuse it */
        EXPECT_DENIED(&g_nobody_no_landlock, "secret");
        EXPECT_READS(&g_root_no_landlock, "secret", "root");
    }
    g_dir = g_b;
    EXPECT_READS(&g_nobody_no_landlock, "public", "all");
    EXPECT_DENIED(&g_nobody_no_landlock, "secret");
}

/* A target whose only way to a file is a supplementary group: served on
 * the first call (a /proc lookup) and on every later one (the thread
 * memo's copy of its identity), alternating with a caller who lacks the
 * group. */
Test(files_ipc_creds, supplementary_groups_hold_on_every_memo_hit)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (two identities)");
    const gid_t GRP = 4242;
    char p[700];
    snprintf(p, sizeof p, "%s/grp", g_b);
    int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0640);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "g", 1), 1);
    close(fd);
    cr_assert_eq(chown(p, 0, GRP), 0);
    cr_assert_eq(chmod(p, 0640), 0);
    gid_t groups[3] = { 5000, GRP, 5001 };
    pid_t child = fork_as_nobody(groups, 3);
    conn grouped;
    conn_new(&grouped, child, child, true, true);
    for (int i = 0; i < 3; i++) {
        EXPECT_READS(&grouped, "grp", "g");
        EXPECT_DENIED(&g_as_nobody, "grp");
    }
    EXPECT_READS(&grouped, "grp", "g");
    EXPECT_READS(&grouped, "grp", "g"); /* the identity it kept */
    conn_free(&grouped);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}
