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
#include "target/trap/trap.h"

static char *g_root;
static char g_b[512], g_c[512], g_d[512];

typedef struct shared {
    atomic_int decides;
    atomic_int audits;
} shared;
static shared *g_sh;

static int decide(void *ctx, const sbx_files_query *q, sbx_files_decision *out)
{
    (void)ctx;
    atomic_fetch_add(&g_sh->decides, 1);
    out->action = sbx_files_path_is_under(q->path, g_b) ? SBX_FILES_BROKER : SBX_FILES_REFUSE;
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
    sbx_files_ipc_target tgt = { .files = &disp, .pid = target };
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
    cr_assert_eq(mkdir(g_b, 0755), 0);
    cr_assert_eq(mkdir(g_c, 0755), 0);
    cr_assert_eq(mkdir(g_d, 0755), 0);
    mkfile(g_b, "f", "hello");
    mkfile(g_c, "f", "secret");
    mkfile(g_d, "f", "secret");
    g_sh = mmap(NULL, sizeof *g_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(g_sh, MAP_FAILED);
}

/* Start the broker and engage the trap in this process. */
static void engage(void)
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
    sbx_trap_options o = { .ipc = cli, .allow_native = false };
    cr_assert_eq(sbx_trap_install(&o), 0);
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
