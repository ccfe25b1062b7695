/* files dispatcher: the decision seam, deny answers without an existence
 * oracle, audit records, actions, and rechecks that keep the answer kind. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sbx_test.h"
#include "subsys/files/files_dispatcher.h"

static char *g_root;
static char g_b[512], g_c[512], g_n[512];
static int g_rootfd = -1;

typedef struct fake {
    sbx_files_action c_action; /* answer for C */
    int c_errno;
    bool fail;                 /* decide returns an error */
    int calls;
    sbx_files_audit_record last;
    char last_path[600];
    int audits;
    bool unwanted; /* audit_wanted says no */
    int asked;
    sbx_files_action asked_action;
    bool asked_alarm;
} fake;

static int decide(void *ctx, const sbx_files_query *req, sbx_files_decision *out)
{
    fake *f = ctx;
    f->calls++;
    if (f->fail)
        return -EIO;
    if (sbx_files_path_is_under(req->path, g_b)) {
        out->action = SBX_FILES_BROKER;
        out->origin = "rule B";
    } else if (sbx_files_path_is_under(req->path, g_n)) {
        out->action = SBX_FILES_NATIVE;
    } else if (sbx_files_path_is_under(req->path, g_c)) {
        out->action = f->c_action;
        out->deny_errno = f->c_errno;
        out->origin = "rule C";
        out->alarm = true;
    } else {
        out->action = SBX_FILES_REFUSE;
    }
    return 0;
}

static void audit(void *ctx, const sbx_files_audit_record *r)
{
    fake *f = ctx;
    f->audits++;
    f->last = *r;
    snprintf(f->last_path, sizeof f->last_path, "%s", r->path);
}

static void setup(void)
{
    g_root = sbx_test_mkdtemp("fdisp");
    snprintf(g_b, sizeof g_b, "%s/B", g_root);
    snprintf(g_c, sizeof g_c, "%s/C", g_root);
    snprintf(g_n, sizeof g_n, "%s/N", g_root);
    cr_assert_eq(mkdir(g_b, 0755), 0);
    cr_assert_eq(mkdir(g_c, 0755), 0);
    cr_assert_eq(mkdir(g_n, 0755), 0);
    char p[700];
    snprintf(p, sizeof p, "%s/there", g_c);
    close(open(p, O_CREAT | O_WRONLY, 0644));
    snprintf(p, sizeof p, "%s/f", g_b);
    close(open(p, O_CREAT | O_WRONLY, 0644));
    snprintf(p, sizeof p, "%s/f", g_n);
    close(open(p, O_CREAT | O_WRONLY, 0644));
    g_rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

static void teardown(void)
{
    sbx_test_rmtree(g_root);
    free(g_root);
    close(g_rootfd);
}

static char *P(const char *d, const char *n)
{
    static char b[4][700];
    static int k;
    char *o = b[k++ & 3];
    snprintf(o, 700, "%s/%s", d, n);
    return o;
}

static bool audit_wanted(void *ctx, sbx_files_action action, bool alarm)
{
    fake *f = ctx;
    f->asked++;
    f->asked_action = action;
    f->asked_alarm = alarm;
    return !f->unwanted;
}

static sbx_files_result g_res;

static long run(fake *f, sbx_files_call c)
{
    sbx_files_dispatcher d = { .decide = decide, .decide_ctx = f, .audit = audit,
                               .audit_wanted = audit_wanted, .audit_ctx = f,
                               .broker_root_fd = g_rootfd };
    if (!c.syscall)
        c.syscall = "test";
    if (c.target_root_fd == 0)
        c.target_root_fd = -1;
    cr_assert_eq(sbx_files_dispatch(&d, &c, &g_res), 0);
    if (g_res.kind == SBX_FILES_RES_FD) {
        close(g_res.fd);
        return 1000;
    }
    return g_res.value;
}

Test(files_dispatcher, deny_answers_without_existence_oracle, .init = setup, .fini = teardown)
{
    fake f = { .c_action = SBX_FILES_REFUSE };
    int errnos[] = { 0, EACCES, EPERM, ENOENT, EIO, -5 };
    int want[] = { EACCES, EACCES, EPERM, ENOENT, EACCES, EACCES };
    sbx_files_call_op ops[] = { SBX_FILES_CALL_OPEN, SBX_FILES_CALL_STAT, SBX_FILES_CALL_ACCESS,
                           SBX_FILES_CALL_READLINK, SBX_FILES_CALL_UNLINK, SBX_FILES_CALL_MKDIR };
    for (size_t e = 0; e < 6; e++) {
        f.c_errno = errnos[e];
        for (size_t o = 0; o < 6; o++) {
            long there = run(&f, (sbx_files_call){ .op = ops[o], .path = P(g_c, "there") });
            long missing = run(&f, (sbx_files_call){ .op = ops[o], .path = P(g_c, "missing") });
            cr_expect_eq(there, -want[e], "op %d errno %d: %ld", ops[o], errnos[e], there);
            cr_expect_eq(missing, there, "op %d: existing and missing must look the same", ops[o]);
        }
    }
    /* Audited with origin and alarm. */
    cr_expect_gt(f.audits, 0);
    cr_expect_eq(f.last.action, SBX_FILES_REFUSE);
    cr_expect_str_eq(f.last.origin, "rule C");
    cr_expect(f.last.alarm);
    cr_expect_str_eq(f.last_path, P(g_c, "missing"));
    cr_expect_gt(f.last.time_ns, 0);
    /* A failing policy denies. */
    f.fail = true;
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "f") }), -EACCES);
}

/* audit_wanted is asked with the decision's action and alarm before any
 * record is made; a no skips the record and changes nothing else. */
Test(files_dispatcher, audit_wanted_gates_the_record, .init = setup, .fini = teardown)
{
    fake f = { .c_action = SBX_FILES_REFUSE, .c_errno = EPERM, .unwanted = true };
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_c, "there") }),
                 -EPERM);
    cr_expect_eq(f.asked, 1);
    cr_expect_eq(f.asked_action, SBX_FILES_REFUSE);
    cr_expect(f.asked_alarm);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "f") }), 1000,
                 "brokered all the same");
    cr_expect_eq(f.asked, 2);
    cr_expect_eq(f.asked_action, SBX_FILES_BROKER);
    cr_expect(!f.asked_alarm);
    cr_expect_eq(f.audits, 0);
    f.unwanted = false;
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "f") }), 1000);
    cr_expect_eq(f.audits, 1);
    cr_expect_eq(f.last.action, SBX_FILES_BROKER);
    cr_expect_str_eq(f.last_path, P(g_b, "f"));
    /* Native answers are never audited, so never asked about. */
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_n, "f"),
                                           .landlock = true }),
                 0);
    cr_expect_eq(g_res.kind, SBX_FILES_RES_CONTINUE);
    cr_expect_eq(f.asked, 3);
}

Test(files_dispatcher, actions, .init = setup, .fini = teardown)
{
    fake f = { .c_action = SBX_FILES_FAKE_SUCCESS };
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_UNLINK, .path = P(g_c, "there") }), 0);
    cr_expect_eq(access(P(g_c, "there"), F_OK), 0, "fake success did nothing");
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_c, "there") }),
                 -EACCES, "an open cannot fake an fd");
    f.c_action = SBX_FILES_TERMINATE;
    run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_STAT, .path = P(g_c, "there") });
    cr_expect_eq(g_res.kind, SBX_FILES_RES_KILL);

    /* Brokered: performed, audited; missing → ENOENT. */
    int before = f.audits;
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "f") }), 1000);
    cr_expect_eq(f.audits, before + 1);
    cr_expect_eq(f.last.action, SBX_FILES_BROKER);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "nope") }), -ENOENT);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_STAT, .path = P(g_b, "f"), .follow = true }), 0);
    cr_expect(g_res.has_stat);
    /* X_OK through the broker: never. */
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_ACCESS, .path = P(g_b, "f"), .flags = X_OK }),
                 -EACCES);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_ACCESS, .path = P(g_b, "f"), .flags = R_OK }), 0);
    /* Refused flags whatever the path, without asking the policy. */
    int calls = f.calls;
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "f"),
                                           .flags = O_RDONLY | O_TRUNC }), -EACCES);
    cr_expect_eq(f.calls, calls);

    /* Native: CONTINUE only under Landlock; otherwise performed in the
     * target's root, or refused without one. Not audited. */
    before = f.audits;
    run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_n, "f"), .landlock = true });
    cr_expect_eq(g_res.kind, SBX_FILES_RES_CONTINUE);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_n, "f") }), -EACCES);
    int troot = open("/", O_PATH | O_DIRECTORY);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_n, "f"),
                                           .target_root_fd = troot }), 1000);
    close(troot);
    cr_expect_eq(f.audits, before);
    /* chdir: a backend that cannot apply a directory fd gets only the
     * kernel's own chdir (native under Landlock); one that can gets an
     * O_PATH fd of the directory, brokered or (without Landlock) opened
     * inside the target's root. */
    run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_CHDIR, .path = g_n, .landlock = true });
    cr_expect_eq(g_res.kind, SBX_FILES_RES_CONTINUE);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_CHDIR, .path = g_b, .landlock = true }),
                 -EACCES);
    troot = open("/", O_PATH | O_DIRECTORY);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_CHDIR, .path = g_n,
                                           .target_root_fd = troot }),
                 -EACCES);
    before = f.audits;
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_CHDIR, .path = g_b, .landlock = true,
                                           .chdir_fd = true }),
                 1000);
    cr_expect_eq(f.audits, before + 1, "a brokered chdir is audited");
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_CHDIR, .path = g_n,
                                           .target_root_fd = troot, .chdir_fd = true }),
                 1000);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_CHDIR, .path = P(g_b, "f"),
                                           .chdir_fd = true }),
                 -ENOTDIR);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_CHDIR, .path = P(g_c, "x"),
                                           .chdir_fd = true }),
                 -EACCES);
    /* chmod and utimensat change what they reach without Landlock's
     * check: never CONTINUE, performed inside the target's root. */
    cr_assert_eq(close(open(P(g_n, "m"), O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_CHMOD, .path = P(g_n, "m"),
                                           .mode = 0640, .follow = true, .landlock = true,
                                           .target_root_fd = troot }),
                 0);
    struct stat st;
    cr_assert_eq(stat(P(g_n, "m"), &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_UTIMENS, .path = P(g_n, "m"),
                                           .times_now = true, .follow = true, .landlock = true,
                                           .target_root_fd = troot }),
                 0);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_CHMOD, .path = P(g_n, "m"),
                                           .mode = 0600, .follow = true, .landlock = true }),
                 -EACCES, "no root to perform it in: refused, not CONTINUE");
    run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_STAT, .path = P(g_n, "m"), .landlock = true });
    cr_expect_eq(g_res.kind, SBX_FILES_RES_CONTINUE);
    close(troot);
}

Test(files_dispatcher, rename_checks_both_ends, .init = setup, .fini = teardown)
{
    fake f = { .c_action = SBX_FILES_REFUSE };
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_RENAME, .path = P(g_b, "f"),
                                           .path2 = P(g_c, "x") }), -EACCES);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_RENAME, .path = P(g_c, "there"),
                                           .path2 = P(g_b, "x") }), -EACCES);
    int troot = open("/", O_PATH | O_DIRECTORY);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_RENAME, .path = P(g_b, "f"),
                                           .path2 = P(g_n, "x"), .target_root_fd = troot }), -EXDEV);
    close(troot);
    cr_expect_eq(access(P(g_b, "f"), F_OK), 0);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_RENAME, .path = P(g_b, "f"),
                                           .path2 = P(g_b, "g") }), 0);
    cr_expect_eq(access(P(g_b, "g"), F_OK), 0);
    cr_expect_eq(f.last.action, SBX_FILES_BROKER);
    cr_expect_not_null(f.last.path2);
}

Test(files_dispatcher, symlink_recheck_keeps_answer_kind, .init = setup, .fini = teardown)
{
    fake f = { .c_action = SBX_FILES_REFUSE };
    /* B/ton -> N/f: brokered path leading into the native view: refused
     * (a brokered answer must not be stretched over a native-only path). */
    cr_assert_eq(symlink(P(g_n, "f"), P(g_b, "ton")), 0);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "ton") }), -EACCES);
    /* B/toc -> C/there: denied by C's errno. */
    f.c_errno = EPERM;
    cr_assert_eq(symlink(P(g_c, "there"), P(g_b, "toc")), 0);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "toc") }), -EPERM);
    /* B/tob -> B/f: followed. */
    cr_assert_eq(symlink("f", P(g_b, "tob")), 0);
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "tob") }), 1000);
    /* openat2 RESOLVE_NO_SYMLINKS: not even that. */
    cr_expect_eq(run(&f, (sbx_files_call){ .op = SBX_FILES_CALL_OPEN, .path = P(g_b, "tob"),
                                           .no_symlinks = true }), -ELOOP);
}
