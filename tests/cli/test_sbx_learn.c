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

/* --env passes the variable to the learned run (the environment is clean
 * otherwise, as for run), the header says the re-run needs it, and the
 * program runs again under the policy with it. */
Test(learn, env_passes_and_reruns)
{
    char policy[4096];
    snprintf(policy, sizeof policy, "%s", path_in("out/env.policy"));
    cr_assert_eq(setenv("SBX_LEARN_LEAK", "leaked", 1), 0);
    cr_assert_eq(setenv("SBX_LEARN_PASSED", "from-sbx", 1), 0);
    const char *show = "echo \"v=$SBX_LEARN_V p=$SBX_LEARN_PASSED l=$SBX_LEARN_LEAK\"";
    result *r = SBX("learn", "-q", "--env", "SBX_LEARN_V=hello", "--env", "SBX_LEARN_PASSED",
                    "-o", policy, "--", "sh", "-c", show);
    cr_assert_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "v=hello p=from-sbx l=\n", "only --env variables pass");
    char *text = read_all(policy);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "# Run it with these 'sbx run' options too: --env SBX_LEARN_V=VALUE "
                           "--env SBX_LEARN_PASSED\n"), "%s", text);
    cr_expect_null(strstr(text, "hello"), "a value given to learn is not copied: %s", text);
    r = SBX("run", "--policy", policy, "--env", "SBX_LEARN_V=hello", "--env", "SBX_LEARN_PASSED",
            "--", "sh", "-c", show);
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "v=hello p=from-sbx l=\n");
}

/* Count the lines of `text` holding every one of the needles. */
static int count_lines(const char *text, const char *a, const char *b)
{
    int n = 0;
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        char line[8192];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), l);
        if (strstr(line, a) && (!b || strstr(line, b)))
            n++;
        l += len + (nl ? 1 : 0);
    }
    return n;
}

/* --log writes run's audit log: one JSON object per line, started first,
 * exited last, one decision per brokered call (cat opens each file once). */
Test(learn, log_writes_one_object_per_decision)
{
    char policy[4096], log[4096], a[4096], b[4096];
    snprintf(policy, sizeof policy, "%s", path_in("out/log.policy"));
    snprintf(log, sizeof log, "%s", path_in("out/learn.jsonl"));
    snprintf(a, sizeof a, "%s", path_in("tree/top.txt"));
    snprintf(b, sizeof b, "%s", path_in("tree/sub/f3.txt"));
    result *r = SBX("learn", "-q", "--log", log, "-o", policy, "--", "cat", a, b);
    cr_assert_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "top\nfile 3\n");
    char *text = read_all(log);
    cr_assert_not_null(text);
    cr_assert_gt(strlen(text), 0);
    cr_expect_eq(text[strlen(text) - 1], '\n');
    int lines = count_lines(text, "", NULL);
    cr_expect_eq(count_lines(text, "{\"time\":\"", NULL), lines, "every line an object: %s", text);
    cr_expect(strncmp(text, "{\"time\":", 8) == 0 && strstr(text, "\"event\":\"started\"") &&
              strstr(text, "\"event\":\"started\"") < strchr(text, '\n'), "started first: %s",
              text);
    const char *last = text + strlen(text) - 1;
    while (last > text && last[-1] != '\n')
        last--;
    cr_expect(strstr(last, "\"event\":\"exited\"") && strstr(last, "\"code\":0"),
              "exited last: %s", last);
    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "\"path\":\"%s\"", a);
    snprintf(pb, sizeof pb, "\"path\":\"%s\"", b);
    cr_expect_eq(count_lines(text, pa, "\"type\":\"decision\""), 1, "%s", text);
    cr_expect_eq(count_lines(text, pb, "\"type\":\"decision\""), 1, "%s", text);
    cr_expect_eq(count_lines(text, pa, "\"decision\":\"brokered\""), 1, "%s", text);
    cr_expect_eq(count_lines(text, "\"type\":\"event\"", NULL), 2, "%s", text);
    /* The log's decisions are the ones the policy was learned from. */
    char *pol = read_all(policy);
    cr_assert_not_null(pol);
    char want[4200];
    snprintf(want, sizeof want, "# covers: read x1\nfiles allow-readonly %s\n", a);
    cr_expect(strstr(pol, want), "%s", pol);
}

/* A limit given to learn is written into the policy and enforced when it
 * runs again: six background children do not fit in 3 processes, and do
 * without it. */
Test(learn, limit_written_and_enforced)
{
    char limited[4096], plain[4096];
    snprintf(limited, sizeof limited, "%s", path_in("out/limited.policy"));
    snprintf(plain, sizeof plain, "%s", path_in("out/plain.policy"));
    result *r = SBX("learn", "-q", "--processes", "3", "--memory=512M", "-o", limited, "--", "sh",
                    "-c", "true");
    cr_assert_eq(r->code, 0, "stderr: %s", r->err);
    char *text = read_all(limited);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "\nlimit memory 512M\nlimit processes 3\n"), "%s", text);
    r = SBX("learn", "-q", "-o", plain, "--", "sh", "-c", "true");
    cr_assert_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_null(strstr(read_all(plain), "\nlimit "), "no limit given, none written");

    const char *bomb = "for i in 1 2 3 4 5 6; do sleep 0.1 & done; wait; echo done";
    r = SBX("run", "--policy", plain, "--", "sh", "-c", bomb);
    cr_expect_eq(r->code, 0, "without the limit it runs: %s", r->err);
    cr_expect_str_eq(r->out, "done\n");
    r = SBX("run", "--policy", limited, "--", "sh", "-c", bomb);
    cr_expect_neq(r->code, 0, "the learned limit holds: %s", r->out);
    cr_expect_str_eq(r->out, "", "%s", r->err);
}

/* --cwd DIR: the program starts there, the policy grants reading it (it
 * was a native view, so unaudited), and the re-run with the same --cwd
 * works. */
Test(learn, cwd_dir_round_trip)
{
    char policy[4096], tree[4096];
    snprintf(policy, sizeof policy, "%s", path_in("out/cwd.policy"));
    snprintf(tree, sizeof tree, "%s", path_in("tree"));
    result *r = SBX("learn", "-q", "--cwd", "../tree", "-o", policy, "--", "sh", "-c",
                    "pwd; cat top.txt sub/f1.txt");
    cr_assert_eq(r->code, 0, "stderr: %s", r->err);
    char want[8400];
    snprintf(want, sizeof want, "%s\ntop\nfile 1\n", tree);
    cr_expect_str_eq(r->out, want);
    char *text = read_all(policy);
    cr_assert_not_null(text);
    snprintf(want, sizeof want, "files allow-query %s\nfiles allow-readonly %s/**\n", tree, tree);
    cr_expect(strstr(text, want), "%s", text);
    snprintf(want, sizeof want, "options too: --cwd %s\n", tree);
    cr_expect(strstr(text, want), "%s", text);
    r = SBX("run", "--policy", policy, "--cwd", "../tree", "--", "sh", "-c", "cat top.txt sub/f1.txt");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "top\nfile 1\n");
}

/* Bad values: one line naming the option, exit 125, nothing run, no policy. */
Test(learn, bad_values_exit_125)
{
    char policy[4096];
    snprintf(policy, sizeof policy, "%s", path_in("out/bad.policy"));
    static const struct {
        const char *opt, *value, *needle;
    } bad[] = {
        { "--memory", "5X", "sbx: learn: --memory: " },
        { "--processes", "0", "sbx: learn: --processes: " },
        { "--cpu", "soon", "sbx: learn: --cpu: " },
        { "--files", "-1", "sbx: learn: --files: " },
        { "--env", "1BAD", "sbx: learn: --env: " },
        { "--net", "wifi", "sbx: learn: --net: " },
        { "--cwd", "/nonexistent/dir", "--cwd" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        result *r = SBX("learn", "-o", policy, bad[i].opt, bad[i].value, "--", "sh", "-c",
                        "echo ran");
        cr_expect_eq(r->code, 125, "%s %s: %d %s", bad[i].opt, bad[i].value, r->code, r->err);
        cr_expect(strstr(r->err, bad[i].needle), "%s: %s", bad[i].opt, r->err);
        cr_expect_str_eq(r->out, "", "%s: nothing ran", bad[i].opt);
        cr_expect_neq(access(policy, F_OK), 0, "%s: no policy written", bad[i].opt);
        if (strcmp(bad[i].opt, "--cwd") != 0) {
            const char *nl = strchr(r->err, '\n');
            cr_expect(nl && nl[1] == '\0', "%s: one line: %s", bad[i].opt, r->err);
        }
    }
}

/* --cwd scratch: the file written there is learned as ${SCRATCH}/f, and
 * the re-run in a new scratch directory may write it again. */
Test(learn, cwd_scratch_round_trip)
{
    char policy[4096];
    snprintf(policy, sizeof policy, "%s", path_in("out/scratch.policy"));
    const char *prog = "echo x > f; cat f";
    result *r = SBX("learn", "-q", "--cwd", "scratch", "-o", policy, "--", "sh", "-c", prog);
    cr_assert_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "x\n");
    char *text = read_all(policy);
    cr_assert_not_null(text);
    cr_expect(strstr(text, "files allow-query ${SCRATCH}\nfiles allow-readonly ${SCRATCH}/**\n"),
              "%s", text);
    cr_expect(strstr(text, "files allow-any ${SCRATCH}/f\n"), "%s", text);
    cr_expect(strstr(text, "options too: --cwd scratch\n"), "%s", text);
    r = SBX("run", "--policy", policy, "--cwd", "scratch", "--", "sh", "-c", prog);
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "x\n");
    r = SBX("run", "--policy", policy, "--cwd", "scratch", "--", "sh", "-c", "echo y > g");
    cr_expect_neq(r->code, 0, "a file it did not write is refused");
}
