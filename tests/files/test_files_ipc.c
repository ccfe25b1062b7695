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
#include "subsys/files/files_syscalls.h"

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

#define expect_error(rep, err, ...) expect_error_at(rep, err, __LINE__)
static void expect_error_at(sbx_ipc_reply rep, int err, int line)
{
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_ERROR, "line %d", line);
    cr_expect_eq(rep.status, err, "line %d: status %d, wanted %d", line, rep.status, err);
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
    expect_error(call6(SBX_FILES_IPC_TAG_PATH, SYS_chdir, t, AT_FDCWD, P(g_b, "."), 0, 0), EINVAL);
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_open, t, AT_FDCWD, P(g_b, "."), 0, 0), EINVAL);
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

/* ---- TAG_ATTR and TAG_RENAME ---- */

static sbx_ipc_reply call8(long nr, pid_t tid, uint64_t dirfd, const char *path, uint32_t flags,
                           uint32_t mode, uint64_t value, void *buf, size_t size)
{
    sbx_arg a[8] = { sbx_arg_u32((uint32_t)nr), sbx_arg_u32((uint32_t)tid),
                     sbx_arg_handle(dirfd), sbx_arg_string(path),
                     sbx_arg_u32(flags), sbx_arg_u32(mode), sbx_arg_u64(value),
                     sbx_arg_inout(buf, size) };
    sbx_ipc_reply rep;
    cr_assert_eq(sbx_ipc_client_call(g_cli, SBX_FILES_IPC_TAG_ATTR, a, 8, 0, &rep), 0);
    return rep;
}

static sbx_ipc_reply call_rename(long nr, pid_t tid, uint64_t d1, const char *p1, uint64_t d2,
                                 const char *p2, uint32_t flags)
{
    sbx_arg a[7] = { sbx_arg_u32((uint32_t)nr), sbx_arg_u32((uint32_t)tid), sbx_arg_handle(d1),
                     sbx_arg_string(p1), sbx_arg_handle(d2), sbx_arg_string(p2),
                     sbx_arg_u32(flags) };
    sbx_ipc_reply rep;
    cr_assert_eq(sbx_ipc_client_call(g_cli, SBX_FILES_IPC_TAG_RENAME, a, 7, 0, &rep), 0);
    return rep;
}

#define FDCWD ((uint64_t)(int64_t)AT_FDCWD)

Test(files_ipc, attr_stat_readlink_values_come_back_in_the_buffer)
{
    pid_t t = my_tid();
    struct stat want, st;
    cr_assert_eq(stat(P(g_b, "f"), &want), 0);
    memset(&st, 0, sizeof st);
    sbx_ipc_reply rep = call8(SYS_stat, t, FDCWD, P(g_b, "f"), 0, 0, 0, &st, sizeof st);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect_eq(st.st_ino, want.st_ino);
    cr_expect_eq(st.st_size, 5);
    cr_expect_str_eq(g_audit_sc, "stat");
    /* Denied: the buffer comes back untouched (only a success writes it). */
    memset(&st, 0x5a, sizeof st);
    expect_error(call8(SYS_newfstatat, t, FDCWD, P(g_c, "f"), 0, 0, 0, &st, sizeof st), EACCES);
    expect_error(call8(SYS_newfstatat, t, FDCWD, P(g_c, "nope"), 0, 0, 0, &st, sizeof st), EACCES);
    unsigned char *bytes = (unsigned char *)&st;
    for (size_t i = 0; i < sizeof st; i++)
        cr_assert_eq(bytes[i], 0x5a);
    expect_error(call8(SYS_newfstatat, t, FDCWD, P(g_b, "nope"), 0, 0, 0, &st, sizeof st), ENOENT);
    char link[700];
    snprintf(link, sizeof link, "%s/l", g_b);
    cr_assert_eq(symlink("0123456789", link), 0);
    char buf[64];
    memset(buf, 'X', sizeof buf);
    rep = call8(SYS_readlink, t, FDCWD, link, 0, 0, 0, buf, 4);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect_eq(rep.ext[1], 4, "truncated to the buffer");
    cr_expect_eq(memcmp(buf, "0123", 4), 0);
    cr_expect_eq(buf[4], 'X');
    rep = call8(SYS_readlinkat, t, FDCWD, link, 0, 0, 0, buf, sizeof buf);
    cr_expect_eq(rep.ext[1], 10);
    /* The largest call fits a channel: a path of PATH_MAX - 1 bytes (slashes
     * collapse) and a PATH_MAX buffer. */
    static char longp[SBX_FILES_PATH_MAX], longq[SBX_FILES_PATH_MAX], lbuf[SBX_FILES_PATH_MAX];
    size_t ll = strlen(link);
    memset(longp, '/', sizeof longp);
    memcpy(longp + sizeof longp - 1 - ll, link, ll + 1);
    cr_assert_eq(strlen(longp), SBX_FILES_PATH_MAX - 1);
    rep = call8(SYS_readlink, t, FDCWD, longp, 0, 0, 0, lbuf, sizeof lbuf);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect_eq(rep.ext[1], 10);
    memcpy(longq, longp, sizeof longq);
    longq[sizeof longq - 2] = 'm'; /* .../B/m, two near-PATH_MAX paths in one request */
    rep = call_rename(SYS_rename, t, FDCWD, longp, FDCWD, longq, 0);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    rep = call_rename(SYS_rename, t, FDCWD, longq, FDCWD, longp, 0);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    /* statx mask and lstat */
    struct statx sx;
    rep = call8(SYS_statx, t, FDCWD, link, AT_SYMLINK_NOFOLLOW, STATX_TYPE, 0, &sx, sizeof sx);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect(S_ISLNK(sx.stx_mode));
    rep = call8(SYS_lstat, t, FDCWD, link, 0, 0, 0, &st, sizeof st);
    cr_expect(S_ISLNK(st.st_mode));
}

Test(files_ipc, attr_hostile_arguments_are_refused)
{
    pid_t t = my_tid();
    static char big[SBX_FILES_PATH_MAX + 64];
    struct stat st;
    struct statx sx;
    /* Buffer sizes other than what the call writes. */
    expect_error(call8(SYS_stat, t, FDCWD, P(g_b, "f"), 0, 0, 0, big, sizeof st + 8), EINVAL);
    expect_error(call8(SYS_stat, t, FDCWD, P(g_b, "f"), 0, 0, 0, big, sizeof st - 8), EINVAL);
    expect_error(call8(SYS_statx, t, FDCWD, P(g_b, "f"), 0, 0, 0, big, sizeof st), EINVAL);
    expect_error(call8(SYS_readlink, t, FDCWD, P(g_b, "f"), 0, 0, 0, big, 0), EINVAL);
    expect_error(call8(SYS_readlink, t, FDCWD, P(g_b, "f"), 0, 0, 0, big, SBX_FILES_PATH_MAX + 8),
                 EINVAL);
    expect_error(call8(SYS_truncate, t, FDCWD, P(g_b, "f"), 0, 0, 1, big, 8), EINVAL);
    expect_error(call8(SYS_utimensat, t, FDCWD, P(g_b, "f"), 0, 0, 0, big, 8), EINVAL);
    /* Flag words: unknown bits, stat/lstat take none, statx reserved mask bits. */
    expect_error(call8(SYS_newfstatat, t, FDCWD, P(g_b, "f"), 0x80000, 0, 0, &st, sizeof st),
                 EINVAL);
    expect_error(call8(SYS_stat, t, FDCWD, P(g_b, "f"), AT_SYMLINK_NOFOLLOW, 0, 0, &st, sizeof st),
                 EINVAL);
    expect_error(call8(SYS_statx, t, FDCWD, P(g_b, "f"), 0, STATX__RESERVED, 0, &sx, sizeof sx),
                 EINVAL);
    expect_error(call8(SYS_truncate, t, FDCWD, P(g_b, "f"), 0, 0, (uint64_t)-1, NULL, 0), EINVAL);
    /* Forged nr for the tag: another tag's call, an unserved or unknown one. */
    expect_error(call8(SYS_open, t, FDCWD, P(g_b, "f"), 0, 0, 0, &st, sizeof st), EINVAL);
    expect_error(call8(SYS_rename, t, FDCWD, P(g_b, "f"), 0, 0, 0, &st, sizeof st), EINVAL);
    expect_error(call8(SYS_chdir, t, FDCWD, P(g_b, "f"), 0, 0, 0, &st, sizeof st), EINVAL);
    expect_error(call8(SYS_link, t, FDCWD, P(g_b, "f"), 0, 0, 0, &st, sizeof st), ENOSYS);
    expect_error(call8(0x7fffffff, t, FDCWD, P(g_b, "f"), 0, 0, 0, &st, sizeof st), ENOSYS);
    expect_error(call_rename(SYS_stat, t, FDCWD, P(g_b, "f"), FDCWD, P(g_b, "g"), 0), EINVAL);
    /* Bad dirfd handles: not open, negative, high bits (the kernel reads an int). */
    expect_error(call8(SYS_newfstatat, t, 999, "f", 0, 0, 0, &st, sizeof st), EBADF);
    expect_error(call8(SYS_newfstatat, t, (uint64_t)-1, "f", 0, 0, 0, &st, sizeof st), EBADF);
    expect_error(call8(SYS_newfstatat, t, 0xdead00000000003eull, "f", 0, 0, 0, &st, sizeof st),
                 EBADF);
    expect_error(call8(SYS_newfstatat, t, 999, "", AT_EMPTY_PATH, 0, 0, &st, sizeof st), EBADF);
    expect_error(call_rename(SYS_renameat, t, 999, "f", FDCWD, P(g_b, "g"), 0), EBADF);
    /* A dirfd that is not a directory. */
    int f = open(P(g_b, "f"), O_RDONLY | O_CLOEXEC);
    expect_error(call8(SYS_newfstatat, t, (uint64_t)f, "x", 0, 0, 0, &st, sizeof st), ENOTDIR);
    /* ...but "" + AT_EMPTY_PATH stats the fd itself. */
    sbx_ipc_reply rep = call8(SYS_newfstatat, t, (uint64_t)f, "", AT_EMPTY_PATH, 0, 0, &st,
                              sizeof st);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect_eq(st.st_size, 5);
    close(f);
    /* stat/readlink take no dirfd: a forged one is ignored (the cwd). */
    cr_assert_eq(chdir(g_b), 0);
    rep = call8(SYS_stat, t, 999, "f", 0, 0, 0, &st, sizeof st);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    /* A forged tid. */
    expect_error(call8(SYS_stat, 1, FDCWD, P(g_b, "f"), 0, 0, 0, &st, sizeof st), ESRCH);
    /* Empty paths without AT_EMPTY_PATH; futimens/fchmod of an fd are never brokered. */
    expect_error(call8(SYS_stat, t, FDCWD, "", 0, 0, 0, &st, sizeof st), ENOENT);
    expect_error(call8(SYS_utimensat, t, FDCWD, "", AT_EMPTY_PATH, 0, 0, NULL, 0), EPERM);
    expect_error(call6(SBX_FILES_IPC_TAG_PATH, SBX_FILES_SYS_FCHMODAT2, t, AT_FDCWD, "",
                       AT_EMPTY_PATH, 0600),
                 EPERM);
    expect_error(call6(SBX_FILES_IPC_TAG_PATH, SYS_chmod, t, AT_FDCWD, P(g_b, "f"),
                       AT_SYMLINK_NOFOLLOW, 0600),
                 EINVAL);
    /* Under Landlock too an fd stat is answered here: stat is not
     * Landlock-mediated, so the target's notify base would send a native
     * re-issue straight back to the broker. */
    g_tgt.landlock = true;
    rep = call8(SYS_newfstatat, t, FDCWD, "", AT_EMPTY_PATH, 0, 0, &st, sizeof st);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE);
    struct stat here;
    cr_assert_eq(stat(".", &here), 0);
    cr_expect_eq(st.st_ino, here.st_ino);
}

Test(files_ipc, rename_checks_both_paths)
{
    pid_t t = my_tid();
    int fd = open(P(g_b, "a"), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    close(fd);
    struct stat st;
    sbx_ipc_reply rep = call_rename(SYS_rename, t, FDCWD, P(g_b, "a"), FDCWD, P(g_b, "b"), 0);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect_eq(stat(P(g_b, "b"), &st), 0);
    cr_expect_str_eq(g_audit_sc, "rename");
    int before = g_audits;
    expect_error(call_rename(SYS_rename, t, FDCWD, P(g_b, "b"), FDCWD, P(g_c, "b"), 0), EACCES);
    expect_error(call_rename(SYS_rename, t, FDCWD, P(g_c, "f"), FDCWD, P(g_b, "c"), 0), EACCES);
    cr_expect_eq(g_audits, before + 2, "denials are audited");
    cr_expect_eq(stat(P(g_b, "b"), &st), 0, "nothing moved");
    cr_expect_neq(stat(P(g_c, "b"), &st), 0);
    cr_expect_neq(stat(P(g_b, "c"), &st), 0);
    /* Between the native view and a brokered tree: EXDEV, nothing moves. */
    expect_error(call_rename(SYS_rename, t, FDCWD, P(g_b, "b"), FDCWD, P(g_n, "b"), 0), EXDEV);
    /* renameat: each path against its own dirfd; rename takes none. */
    int b = open(g_b, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int c = open(g_c, O_PATH | O_DIRECTORY | O_CLOEXEC);
    rep = call_rename(SYS_renameat, t, (uint64_t)b, "b", (uint64_t)b, "c", 0);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    expect_error(call_rename(SYS_renameat, t, (uint64_t)b, "c", (uint64_t)c, "c", 0), EACCES);
    cr_assert_eq(chdir(g_b), 0);
    expect_error(call_rename(SYS_rename, t, (uint64_t)c, "zz", (uint64_t)c, "d", 0), ENOENT,
                 "resolved against the cwd (B), not the forged dirfds (C)");
    /* Flags: only renameat2 has them. */
    expect_error(call_rename(SYS_renameat, t, (uint64_t)b, "c", (uint64_t)b, "d", 1), EINVAL);
    expect_error(call_rename(SYS_renameat2, t, (uint64_t)b, "c", (uint64_t)b, "f",
                             RENAME_NOREPLACE),
                 EEXIST);
    expect_error(call_rename(SYS_renameat2, t, (uint64_t)b, "c", (uint64_t)b, "", 0), ENOENT);
    cr_expect_eq(stat(P(g_b, "c"), &st), 0);
    close(b);
    close(c);
}

/* TAG_CHDIR: the broker decides like an opendir and hands back an O_PATH
 * fd of exactly the matched directory (the target's handler fchdir()s);
 * refusals and hostile words get no fd. */
Test(files_ipc, chdir_returns_an_o_path_fd_of_the_directory)
{
    pid_t t = my_tid();
    cr_assert_eq(mkdir(P(g_b, "sub"), 0755), 0);
    sbx_ipc_reply rep = call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, P(g_b, "sub"), 0, 0);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_FD, "status %d", rep.status);
    cr_assert_geq(rep.fd, 0);
    cr_expect_eq(fcntl(rep.fd, F_GETFL) & O_PATH, O_PATH);
    struct stat a, b;
    cr_assert_eq(fstat(rep.fd, &a), 0);
    cr_assert_eq(stat(P(g_b, "sub"), &b), 0);
    cr_expect(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    cr_expect_str_eq(g_audit_sc, "chdir");
    close(rep.fd);
    /* relative to the calling thread's cwd, ".." out of the grant refused */
    cr_assert_eq(chdir(g_b), 0);
    rep = call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, "sub", 0, 0);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_FD);
    if (rep.fd >= 0)
        close(rep.fd);
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, "../C", 0, 0), EACCES);
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, "..", 0, 0), EACCES);
    cr_assert_eq(chdir("/"), 0);
    /* no oracle for a refused tree; the kernel's answers inside a grant */
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, P(g_c, "x"), 0, 0), EACCES);
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, g_c, 0, 0), EACCES);
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, P(g_b, "f"), 0, 0), ENOTDIR);
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, P(g_b, "no"), 0, 0), ENOENT);
    /* a symlink in the grant leading out of it */
    cr_assert_eq(symlink(g_c, P(g_b, "out")), 0);
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, P(g_b, "out"), 0, 0), EACCES);
    /* forged flag words, the dirfd ignored (chdir has none) */
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, P(g_b, "sub"), 1, 0), EINVAL);
    expect_error(call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, AT_FDCWD, P(g_b, "sub"), 0, 1), EINVAL);
    int cfd = open(g_c, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_eq(chdir(g_b), 0);
    rep = call6(SBX_FILES_IPC_TAG_CHDIR, SYS_chdir, t, cfd, "sub", 0, 0);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_FD, "resolved against the cwd, not dirfd %d", cfd);
    if (rep.fd >= 0)
        close(rep.fd);
    cr_assert_eq(chdir("/"), 0);
    close(cfd);
}

static sbx_ipc_reply call_getcwd(pid_t tid, char *buf, size_t size)
{
    sbx_arg a[3] = { sbx_arg_u32(SYS_getcwd), sbx_arg_u32((uint32_t)tid),
                     sbx_arg_inout(buf, size) };
    sbx_ipc_reply rep;
    cr_assert_eq(sbx_ipc_client_call(g_cli, SBX_FILES_IPC_TAG_GETCWD, a, 3, 0, &rep), 0);
    return rep;
}

/* TAG_GETCWD: the calling thread's cwd as the broker names it, ERANGE for
 * a short buffer, ENOENT for a removed cwd (not its " (deleted)" name). */
Test(files_ipc, getcwd_names_the_calling_threads_cwd)
{
    char buf[4096];
    cr_assert_eq(chdir(g_b), 0);
    sbx_ipc_reply rep = call_getcwd(my_tid(), buf, sizeof buf);
    cr_assert_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE, "status %d", rep.status);
    cr_expect_eq(rep.ext[1], strlen(g_b) + 1);
    cr_expect_str_eq(buf, g_b);
    expect_error(call_getcwd(my_tid(), buf, strlen(g_b)), ERANGE);
    rep = call_getcwd(my_tid(), buf, strlen(g_b) + 1);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE);
    expect_error(call_getcwd(my_tid(), buf, 0), EINVAL);
    cr_assert_eq(mkdir(P(g_b, "gone"), 0755), 0);
    cr_assert_eq(chdir(P(g_b, "gone")), 0);
    cr_assert_eq(rmdir(P(g_b, "gone")), 0);
    expect_error(call_getcwd(my_tid(), buf, sizeof buf), ENOENT);
    /* a directory that only looks deleted is named as it is */
    char fake[700];
    snprintf(fake, sizeof fake, "%s/x (deleted)", g_b);
    cr_assert_eq(mkdir(fake, 0755), 0);
    cr_assert_eq(chdir(fake), 0);
    rep = call_getcwd(my_tid(), buf, sizeof buf);
    cr_expect_eq(rep.ext[0], SBX_FILES_IPC_RES_VALUE);
    cr_expect_str_eq(buf, fake);
    cr_assert_eq(chdir("/"), 0);
    /* a tid that is none of the target's threads */
    expect_error(call_getcwd(0, buf, sizeof buf), ESRCH);
}
