/* files IPC services (the trap backend's broker side): real sections,
 * pool, server and client in one process; the handler must rebuild the
 * call from typed arguments, resolve relative paths against the CALLING
 * thread's cwd, decide from the dispatcher (never the target's word),
 * and answer fd / value / errno / native. Hostile arguments are refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbx_test.h"
#include "subsys/files/files_ipc.h"

static char *g_root;
static char g_b[512], g_c[512], g_n[512];
static int g_rootfd = -1;
static int g_audits;
static char g_audit_sc[32];
static long g_audit_result;

static int decide(void *ctx, const sbx_files_query *q, sbx_files_decision *out)
{
    (void)ctx;
    if (sbx_files_path_is_under(q->path, g_b))
        out->action = SBX_FILES_BROKER;
    else if (sbx_files_path_is_under(q->path, g_n))
        out->action = SBX_FILES_NATIVE;
    else
        out->action = SBX_FILES_REFUSE; /* g_c and the rest */
    return 0;
}

static void audit(void *ctx, const sbx_files_audit_record *r)
{
    (void)ctx;
    g_audits++;
    snprintf(g_audit_sc, sizeof g_audit_sc, "%s", r->syscall);
    g_audit_result = r->result;
}

static sbx_files_dispatcher g_disp;
static sbx_files_ipc_target g_tgt;
static sbx_ipc_section *g_sec;
static sbx_ipc_dispatcher *g_ipcd;
static sbx_ipc_pool *g_pool;
static sbx_ipc_server *g_srv;
static sbx_ipc_client *g_cli;

static void setup(void)
{
    g_root = sbx_test_mkdtemp("fipc");
    snprintf(g_b, sizeof g_b, "%s/B", g_root);
    snprintf(g_c, sizeof g_c, "%s/C", g_root);
    snprintf(g_n, sizeof g_n, "%s/N", g_root);
    cr_assert_eq(mkdir(g_b, 0755), 0);
    cr_assert_eq(mkdir(g_c, 0755), 0);
    cr_assert_eq(mkdir(g_n, 0755), 0);
    char p[700];
    snprintf(p, sizeof p, "%s/f", g_b);
    int fd = open(p, O_CREAT | O_WRONLY, 0644);
    cr_assert_eq(write(fd, "hello", 5), 5);
    close(fd);
    snprintf(p, sizeof p, "%s/f", g_c);
    close(open(p, O_CREAT | O_WRONLY, 0644));
    g_rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    g_disp = (sbx_files_dispatcher){ .decide = decide, .audit = audit,
                                     .broker_root_fd = g_rootfd };
    g_tgt = (sbx_files_ipc_target){ .files = &g_disp, .pid = getpid() };
    cr_assert_eq(sbx_ipc_section_new(NULL, &g_sec), 0);
    cr_assert_eq(sbx_ipc_dispatcher_new(&g_ipcd), 0);
    cr_assert_eq(sbx_files_ipc_register(g_ipcd), 0);
    cr_assert_eq(sbx_files_ipc_register(g_ipcd), -EEXIST);
    sbx_ipc_pool_options po = { .threads = 1 };
    cr_assert_eq(sbx_ipc_pool_new(&po, &g_pool), 0);
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    cr_assert_eq(sbx_ipc_server_new(g_pool, g_sec, sp[0], g_ipcd, &g_tgt, &g_srv), 0);
    cr_assert_eq(sbx_ipc_client_new(sbx_ipc_section_fd(g_sec), sp[1], &g_cli), 0);
}

static void teardown(void)
{
    sbx_ipc_client_free(g_cli);
    sbx_ipc_server_free(g_srv);
    sbx_ipc_pool_free(g_pool);
    sbx_ipc_dispatcher_free(g_ipcd);
    sbx_ipc_section_free(g_sec);
    sbx_test_rmtree(g_root);
    free(g_root);
    close(g_rootfd);
}

TestSuite(files_ipc, .init = setup, .fini = teardown, .timeout = 30);

static char *P(const char *d, const char *n)
{
    static char b[4][700];
    static int k;
    char *o = b[k++ & 3];
    snprintf(o, 700, "%s/%s", d, n);
    return o;
}

static pid_t my_tid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* One call; returns the reply and checks the IPC itself succeeded. */
static sbx_ipc_reply call6(uint32_t tag, long nr, pid_t tid, int dirfd, const char *path,
                           uint32_t flags, uint32_t mode)
{
    sbx_arg a[6] = { sbx_arg_u32((uint32_t)nr), sbx_arg_u32((uint32_t)tid),
                     sbx_arg_handle((uint64_t)(int64_t)dirfd), sbx_arg_string(path),
                     sbx_arg_u32(flags), sbx_arg_u32(mode) };
    sbx_ipc_reply rep;
    cr_assert_eq(sbx_ipc_client_call(g_cli, tag, a, 6, SBX_IPC_CALL_CLOEXEC, &rep), 0);
    return rep;
}

static void expect_error(sbx_ipc_reply rep, int err)
{
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_ERROR);
    cr_expect_eq(rep.status, err, "status %d, wanted %d", rep.status, err);
    cr_expect_eq(rep.fd, -1);
}

static void expect_content(int fd, const char *want)
{
    char buf[64] = { 0 };
    cr_assert_geq(fd, 0);
    cr_expect_eq(pread(fd, buf, sizeof buf - 1, 0), (ssize_t)strlen(want));
    cr_expect_str_eq(buf, want);
    close(fd);
}

Test(files_ipc, brokered_open_returns_the_fd_and_audits)
{
    sbx_ipc_reply rep = call6(SBX_FILES_IPC_TAG_OPEN, SYS_openat, my_tid(), AT_FDCWD,
                              P(g_b, "f"), O_RDONLY, 0);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_FD);
    expect_content(rep.fd, "hello");
    cr_expect_eq(g_audits, 1);
    cr_expect_str_eq(g_audit_sc, "openat");
}

Test(files_ipc, denied_is_eacces_and_audited)
{
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, my_tid(), AT_FDCWD, P(g_c, "f"),
                       O_RDONLY, 0),
                 EACCES);
    /* The same answer whether or not the file exists. */
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, my_tid(), AT_FDCWD, P(g_c, "nope"),
                       O_RDONLY, 0),
                 EACCES);
    cr_expect_eq(g_audits, 2);
    cr_expect_eq(g_audit_result, -EACCES);
}

Test(files_ipc, relative_paths_resolve_against_cwd_and_dirfd)
{
    cr_assert_eq(chdir(g_b), 0);
    sbx_ipc_reply rep = call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, my_tid(), 12345, "f", O_RDONLY, 0);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_FD, "open has no dirfd: the cwd counts");
    expect_content(rep.fd, "hello");
    /* "../C/f" escapes the brokered directory lexically: denied. */
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, my_tid(), AT_FDCWD, "../C/f", O_RDONLY, 0),
                 EACCES);
    cr_assert_eq(chdir("/"), 0);
    int d = open(g_b, O_PATH | O_DIRECTORY | O_CLOEXEC);
    rep = call6(SBX_FILES_IPC_TAG_OPEN, SYS_openat, my_tid(), d, "f", O_RDONLY, 0);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_FD);
    expect_content(rep.fd, "hello");
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_openat, my_tid(), 999, "f", O_RDONLY, 0), EBADF);
    close(d);
}

typedef struct cwd_thread {
    pid_t tid;
    int go[2];
    int done[2];
} cwd_thread;

static void *other_cwd(void *arg)
{
    cwd_thread *ct = arg;
    cr_assert_eq(unshare(CLONE_FS), 0);
    cr_assert_eq(chdir(g_c), 0);
    ct->tid = my_tid();
    char c = 1;
    cr_assert_eq(write(ct->done[1], &c, 1), 1);
    cr_assert_eq(read(ct->go[0], &c, 1), 1); /* stay alive while the main thread calls */
    return NULL;
}

Test(files_ipc, the_calling_threads_cwd_counts)
{
    cr_assert_eq(chdir(g_b), 0);
    cwd_thread ct;
    cr_assert_eq(pipe(ct.go), 0);
    cr_assert_eq(pipe(ct.done), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, other_cwd, &ct), 0);
    char c;
    cr_assert_eq(read(ct.done[0], &c, 1), 1);
    /* The same relative name: brokered from the main thread (cwd B),
     * denied from the other (cwd C). */
    sbx_ipc_reply rep = call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, my_tid(), AT_FDCWD, "f", O_RDONLY, 0);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_FD);
    close(rep.fd);
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, ct.tid, AT_FDCWD, "f", O_RDONLY, 0), EACCES);
    cr_assert_eq(write(ct.go[1], &c, 1), 1);
    pthread_join(th, NULL);
    /* A tid that is none of the target's threads (any more) is refused. */
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, ct.tid, AT_FDCWD, "f", O_RDONLY, 0), ESRCH);
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, 0, AT_FDCWD, "f", O_RDONLY, 0), ESRCH);
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, 1, AT_FDCWD, "f", O_RDONLY, 0), ESRCH);
}

Test(files_ipc, path_services_mkdir_unlink_rmdir_access)
{
    pid_t t = my_tid();
    sbx_ipc_reply rep = call6(SBX_FILES_IPC_TAG_PATH, SYS_mkdir, t, AT_FDCWD, P(g_b, "d"), 0, 0755);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect_eq(rep.ext[1], 0);
    struct stat st;
    cr_assert_eq(stat(P(g_b, "d"), &st), 0);
    cr_expect(S_ISDIR(st.st_mode));
    rep = call6(SBX_FILES_IPC_TAG_PATH, SYS_unlinkat, t, AT_FDCWD, P(g_b, "d"), AT_REMOVEDIR, 0);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect_neq(stat(P(g_b, "d"), &st), 0);
    rep = call6(SBX_FILES_IPC_TAG_PATH, SYS_access, t, AT_FDCWD, P(g_b, "f"), R_OK, 0);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    expect_error(call6(SBX_FILES_IPC_TAG_PATH, SYS_access, t, AT_FDCWD, P(g_b, "f"), 0x100, 0),
                 EINVAL);
    expect_error(call6(SBX_FILES_IPC_TAG_PATH, SYS_unlink, t, AT_FDCWD, P(g_c, "f"), 0, 0), EACCES);
    cr_expect_eq(stat(P(g_c, "f"), &st), 0, "a denied unlink removed nothing");
    rep = call6(SBX_FILES_IPC_TAG_PATH, SYS_unlink, t, AT_FDCWD, P(g_b, "f"), 0, 0);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect_neq(stat(P(g_b, "f"), &st), 0);
}

Test(files_ipc, native_only_when_landlock_holds)
{
    /* Without Landlock the broker performs the native call itself. */
    sbx_ipc_reply rep = call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, my_tid(), AT_FDCWD,
                              P(g_n, "."), O_RDONLY | O_DIRECTORY, 0);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_FD, "ext %lu status %d",
                 (unsigned long)rep.ext[0], rep.status);
    close(rep.fd);
    g_tgt.landlock = true;
    rep = call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, my_tid(), AT_FDCWD, P(g_n, "."),
                O_RDONLY | O_DIRECTORY, 0);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_NATIVE);
    cr_expect_eq(rep.fd, -1);
}

Test(files_ipc, hostile_arguments_are_refused)
{
    pid_t t = my_tid();
    /* Not a brokered syscall, not a syscall at all, the wrong tag for the op. */
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_link, t, AT_FDCWD, P(g_b, "f"), 0, 0), ENOSYS);
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, 100000, t, AT_FDCWD, P(g_b, "f"), 0, 0), ENOSYS);
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, -1, t, AT_FDCWD, P(g_b, "f"), 0, 0), ENOSYS);
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_mkdir, t, AT_FDCWD, P(g_b, "x"), 0, 0755),
                 EINVAL);
    expect_error(call6(SBX_FILES_IPC_TAG_PATH, SYS_rename, t, AT_FDCWD, P(g_b, "f"), 0, 0), EINVAL);
    expect_error(call6(SBX_FILES_IPC_TAG_PATH, SYS_chdir, t, AT_FDCWD, P(g_b, "."), 0, 0), ENOSYS);
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, t, AT_FDCWD, P(g_b, "f"), O_RDONLY,
                       0x10000),
                 EINVAL);
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, t, AT_FDCWD, "", O_RDONLY, 0), ENOENT);
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, t, AT_FDCWD, "/a/../../etc/shadow",
                       O_RDONLY, 0),
                 EACCES);
    /* creat means O_CREAT|O_WRONLY|O_TRUNC whatever flags claim: denied here. */
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_creat, t, AT_FDCWD, P(g_c, "new"), O_RDONLY,
                       0644),
                 EACCES);
    /* The wrong signature never reaches the handler. */
    sbx_arg a[1] = { sbx_arg_u32(SYS_open) };
    sbx_ipc_reply rep;
    cr_expect_eq(sbx_ipc_client_call(g_cli, SBX_FILES_IPC_TAG_OPEN, a, 1, 0, &rep),
                 SBX_ERROR_INVALID_IPC);
    /* No target context: refused, not crashed. */
    g_tgt.files = NULL;
    expect_error(call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, t, AT_FDCWD, P(g_b, "f"), O_RDONLY, 0),
                 ENOSYS);
}

Test(files_ipc, a_descendant_process_is_found_with_its_own_cwd)
{
    cr_assert_eq(chdir(g_b), 0);
    fflush(NULL);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        /* The forked process shares the section and socket: a target's fork. */
        if (chdir(g_c) != 0)
            _exit(10);
        sbx_arg a[6] = { sbx_arg_u32(SYS_open), sbx_arg_u32((uint32_t)my_tid()),
                         sbx_arg_handle((uint64_t)(int64_t)AT_FDCWD), sbx_arg_string("f"),
                         sbx_arg_u32(O_RDONLY), sbx_arg_u32(0) };
        sbx_ipc_reply rep;
        if (sbx_ipc_client_call(g_cli, SBX_FILES_IPC_TAG_OPEN, a, 6, 0, &rep) != 0)
            _exit(11);
        if (rep.ext[0] != SBX_FILES_IPC_RES_ERROR || rep.status != EACCES)
            _exit(12); /* resolved against the parent's cwd (B) would be brokered */
        _exit(0);
    }
    int st = 0;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    sbx_ipc_reply rep = call6(SBX_FILES_IPC_TAG_OPEN, SYS_open, my_tid(), AT_FDCWD, "f", O_RDONLY, 0);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_FD);
    if (rep.fd >= 0)
        close(rep.fd);
}
