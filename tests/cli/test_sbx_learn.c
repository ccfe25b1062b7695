/* `sbx learn` end to end, driving the built binary (SBX_BIN): learn a
 * program's policy, run the program again under it (it succeeds), and
 * make an access the learned run did not make (it is denied). The data
 * lives in a temporary directory under /var/tmp (the target's /tmp is
 * private); sbx runs in its "work" subdirectory, so the tree it reads is
 * brokered, not part of the native working-directory view. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbx_test.h"

static char *dir;
static const char *run_in = "work"; /* sbx's working directory, under dir */

static char *path_in(const char *name)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

static void mkdir_in(const char *name, mode_t mode)
{
    cr_assert_eq(mkdir(path_in(name), mode), 0, "%s", name);
    cr_assert_eq(chmod(path_in(name), mode), 0);
}

static void write_file(const char *name, const char *text)
{
    int fd = open(path_in(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "%s", name);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* dir/work: where sbx runs; dir/tree: 1 file + 9 under tree/sub (so sub
 * collapses); dir/out and dir/other: writable by the target's identity;
 * dir/secret.txt: readable, never used while learning. */
static void setup(void)
{
    cr_assert_not_null(getenv("SBX_BIN"), "SBX_BIN is not set (run through meson test)");
    /* Not $TMPDIR: /tmp is private inside a target. */
    dir = strdup("/var/tmp/sbx-test-learn-XXXXXX");
    cr_assert_not_null(dir);
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(chmod(dir, 0755), 0);
    mkdir_in("work", 0755);
    mkdir_in("tree", 0755);
    mkdir_in("tree/sub", 0755);
    mkdir_in("out", 0777);
    mkdir_in("other", 0777);
    write_file("tree/top.txt", "top\n");
    for (int i = 0; i < 9; i++) {
        char name[64], text[64];
        snprintf(name, sizeof name, "tree/sub/f%d.txt", i);
        snprintf(text, sizeof text, "file %d\n", i);
        write_file(name, text);
    }
    write_file("secret.txt", "not learned\n");
}

static void teardown(void)
{
    sbx_test_rmtree(dir);
    free(dir);
}

TestSuite(learn, .init = setup, .fini = teardown, .timeout = 120);

typedef struct result {
    int code;
    char out[1 << 16];
    char err[1 << 15];
} result;

static result res;

static void slurp(int fd, char *buf, size_t cap)
{
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = 0;
}

static result *sbx(const char *const *args)
{
    int out = memfd_create("out", MFD_CLOEXEC), err = memfd_create("err", MFD_CLOEXEC);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(out >= 0 && err >= 0 && in >= 0);
    const char *argv[64];
    int n = 0;
    argv[n++] = "sbx";
    for (; *args && n < 63; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (chdir(path_in(run_in)) < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(err, 2) < 0)
            _exit(99);
        execv(getenv("SBX_BIN"), (char *const *)argv);
        _exit(98);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    res.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    slurp(out, res.out, sizeof res.out);
    slurp(err, res.err, sizeof res.err);
    close(out);
    close(err);
    close(in);
    return &res;
}

#define SBX(...) sbx((const char *const[]){ __VA_ARGS__, NULL })

static char *read_all(const char *path)
{
    static char buf[1 << 16];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

/* Sum of the sizes of every file under ROOT, read through open(). */
static const char reader[] =
    "import os,sys\n"
    "n=0\n"
    "for d,_,fs in os.walk(sys.argv[1]):\n"
    "    for f in fs:\n"
    "        n+=len(open(os.path.join(d,f)).read())\n"
    "print(n)\n";

Test(learn, python3_reader_round_trip)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        cr_skip("no /usr/bin/python3 in the view");
    char tree[4096], policy[4096];
    snprintf(tree, sizeof tree, "%s", path_in("tree"));
    snprintf(policy, sizeof policy, "%s", path_in("out/reader.policy"));

    result *r = SBX("learn", "-o", policy, "--", "/usr/bin/python3", "-c", reader, tree);
    cr_assert_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "67\n", "the program's own output passes through");
    cr_expect(strstr(r->err, "NOT a sandbox"), "the warning is loud: %s", r->err);
    char *text = read_all(policy);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "# sbx policy learned by `sbx learn` from: /usr/bin/python3 -c "),
              "%s", text);
    char want[4200];
    snprintf(want, sizeof want, "# covers: read x9\nfiles allow-readonly %s/sub/**\n", tree);
    cr_expect(strstr(text, want), "tree/sub collapses: %s", text);
    snprintf(want, sizeof want, "files allow-readonly %s/top.txt\n", tree);
    cr_expect(strstr(text, want), "%s", text);
    cr_expect_null(strstr(text, "secret"), "%s", text);
    cr_expect_null(strstr(text, "allow-any"), "nothing was written: %s", text);

    /* The same run succeeds under the learned policy. */
    r = SBX("run", "--policy", policy, "--", "/usr/bin/python3", "-c", reader, tree);
    cr_expect_eq(r->code, 0, "stderr: %s\npolicy:\n%s", r->err, text);
    cr_expect_str_eq(r->out, "67\n");
    /* A read it did not make is denied. */
    r = SBX("run", "--policy", policy, "--", "/usr/bin/python3", "-c",
            "import sys; print(open(sys.argv[1]).read())", path_in("secret.txt"));
    cr_expect_neq(r->code, 0, "reading %s/secret.txt must be denied: %s", dir, r->out);
    cr_expect(strstr(r->err, "PermissionError"), "stderr: %s", r->err);
}

/* tar runs in dir itself, so the tree lies in its working directory (a
 * native read-only view, under learn too), and writes its archive into the
 * sibling directory out/ by a relative path: the learned rule names it
 * ${CWD}/out/tree.tgz. (From outside, tar's reads relative to a brokered
 * directory fd fail under the broker today: see the report.) */
Test(learn, tar_czf_round_trip)
{
    bool gzip = access("/usr/bin/gzip", X_OK) == 0 || access("/bin/gzip", X_OK) == 0;
    if (access("/usr/bin/tar", X_OK) != 0 || !gzip)
        cr_skip("no tar/gzip");
    run_in = ".";
    char policy[4096];
    snprintf(policy, sizeof policy, "%s", path_in("work/tar.policy"));

    result *r = SBX("learn", "-o", policy, "--", "tar", "czf", "out/tree.tgz", "tree");
    cr_assert_eq(r->code, 0, "stderr: %s", r->err);
    cr_assert_eq(access(path_in("out/tree.tgz"), F_OK), 0, "learning ran tar for real");
    char *text = read_all(policy);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "# covers: create x1\nfiles allow-any ${CWD}/out/tree.tgz\n"),
              "the archive is written: %s", text);
    cr_expect(strstr(text, "files allow-readonly ${CWD}/**\n"), "%s", text);
    cr_expect_null(strstr(text, "files allow-any ${CWD}/**"), "%s", text);
    cr_assert_eq(unlink(path_in("out/tree.tgz")), 0);

    r = SBX("run", "--policy", policy, "--", "tar", "czf", "out/tree.tgz", "tree");
    cr_expect_eq(r->code, 0, "stderr: %s\npolicy:\n%s", r->err, text);
    cr_expect_eq(access(path_in("out/tree.tgz"), F_OK), 0, "tar wrote its archive again");
    r = SBX("run", "--policy", policy, "--", "tar", "tzf", "out/tree.tgz");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect(strstr(r->out, "tree/sub/f8.txt\n"), "%s", r->out);

    /* Writing anywhere else is denied. */
    r = SBX("run", "--policy", policy, "--", "tar", "czf", "other/tree.tgz", "tree");
    cr_expect_neq(r->code, 0, "stderr: %s", r->err);
    cr_expect_neq(access(path_in("other/tree.tgz"), F_OK), 0, "no archive outside the policy");
}

Test(learn, spawn_failure_writes_no_policy)
{
    char policy[4096];
    snprintf(policy, sizeof policy, "%s", path_in("none.policy"));
    result *r = SBX("learn", "-o", policy, "--", "/nonexistent/program");
    cr_expect_eq(r->code, 127, "stderr: %s", r->err);
    cr_expect_neq(access(policy, F_OK), 0);
}
