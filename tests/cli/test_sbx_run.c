/* `sbx run` end to end: the built binary (from meson in $SBX_BIN) runs real
 * programs in real sandboxes, from a temporary working directory; exit
 * statuses, stdio passthrough, what the default profile lets a program
 * read and write, --allow-write / --deny, and the --log audit log. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exit_codes.h"
#include "sbx_test.h"

static char *dir;

static void setup(void)
{
    cr_assert_not_null(getenv("SBX_BIN"), "SBX_BIN is not set (run through meson test)");
    dir = sbx_test_mkdtemp("sbx-run");
    cr_assert_not_null(dir);
    /* The target runs under another identity (65534 when sbx is root):
     * the working directory must be enterable by it, as a user's is. */
    cr_assert_eq(chmod(dir, 0755), 0);
}

static void teardown(void)
{
    sbx_test_rmtree(dir);
    free(dir);
}

TestSuite(run, .init = setup, .fini = teardown, .timeout = 60);

typedef struct result {
    int code; /* exit status, or 128+signal */
    char out[1 << 16];
    char err[1 << 14];
} result;

static result res;

static void slurp(int fd, char *buf, size_t cap)
{
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = 0;
}

/* Run sbx with `args` in the test directory, `input` on stdin (NULL:
 * /dev/null). */
static result *sbx_run_input(const char *input, const char *const *args)
{
    int out = memfd_create("out", MFD_CLOEXEC), err = memfd_create("err", MFD_CLOEXEC);
    int in = input ? memfd_create("in", MFD_CLOEXEC) : open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(out, 0);
    cr_assert_geq(err, 0);
    cr_assert_geq(in, 0);
    if (input) {
        cr_assert_eq(write(in, input, strlen(input)), (ssize_t)strlen(input));
        lseek(in, 0, SEEK_SET);
    }
    const char *argv[64];
    int n = 0;
    argv[n++] = "sbx";
    for (; *args && n < 63; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (chdir(dir) < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
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

#define SBX(...) sbx_run_input(NULL, (const char *const[]){ __VA_ARGS__, NULL })
#define SBX_IN(input, ...) sbx_run_input(input, (const char *const[]){ __VA_ARGS__, NULL })

static char *path_in(const char *name)
{
    static char buf[4][4096];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *name, const char *text, mode_t mode)
{
    int fd = open(path_in(name), O_WRONLY | O_CREAT | O_TRUNC, mode);
    cr_assert_geq(fd, 0, "%s", name);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static bool exists(const char *name)
{
    return access(path_in(name), F_OK) == 0;
}

static char *read_file(const char *name)
{
    static char buf[1 << 16];
    int fd = open(path_in(name), O_RDONLY);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

Test(run, exit_status_is_the_programs)
{
    result *r = SBX("run", "--", "true");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    r = SBX("run", "--", "sh", "-c", "exit 1");
    cr_expect_eq(r->code, 1, "stderr: %s", r->err);
    r = SBX("run", "--", "sh", "-c", "exit 42");
    cr_expect_eq(r->code, 42, "stderr: %s", r->err);
    r = SBX("run", "--", "false");
    cr_expect_eq(r->code, 1, "stderr: %s", r->err);
}

Test(run, killed_by_signal_is_128_plus_n)
{
    result *r = SBX("run", "--", "sh", "-c", "kill -9 $$");
    cr_expect_eq(r->code, 128 + SIGKILL, "stderr: %s", r->err);
    r = SBX("run", "--", "sh", "-c", "kill -SEGV $$");
    cr_expect_eq(r->code, 128 + SIGSEGV, "stderr: %s", r->err);
}

Test(run, sbx_failures_are_125_126_127)
{
    result *r = SBX("run", "--frob", "--", "true");
    cr_expect_eq(r->code, SBX_EXIT_FAILURE);
    r = SBX("run", "--", "sbx-no-such-command-xyz");
    cr_expect_eq(r->code, SBX_EXIT_NOT_FOUND);
    write_file("noexec.sh", "#!/bin/sh\necho hi\n", 0644);
    r = SBX("run", "--", "./noexec.sh");
    cr_expect_eq(r->code, SBX_EXIT_CANNOT_EXECUTE);
    r = SBX("run", "--log", "/nonexistent-dir/log.jsonl", "--", "true");
    cr_expect_eq(r->code, SBX_EXIT_FAILURE);
    cr_expect(strstr(r->err, "sbx: run: --log /nonexistent-dir/log.jsonl"), "%s", r->err);
}

Test(run, stdio_passes_through)
{
    result *r = SBX_IN("hi\nthere\n", "run", "--", "cat");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "hi\nthere\n");
    r = SBX("run", "--", "sh", "-c", "echo out; echo err >&2");
    cr_expect_eq(r->code, 0);
    cr_expect_str_eq(r->out, "out\n");
    cr_expect(strstr(r->err, "err\n"), "%s", r->err);
}

Test(run, a_script_in_the_working_directory_runs)
{
    write_file("hello.sh", "#!/bin/sh\necho \"hello from $(pwd)\"\n", 0755);
    result *r = SBX("run", "--", "./hello.sh");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    char want[4200];
    snprintf(want, sizeof want, "hello from %s\n", dir);
    cr_expect_str_eq(r->out, want);
    /* and sh reads a script by relative path, as `make run` does */
    r = SBX("run", "--", "sh", "hello.sh");
    cr_expect_str_eq(r->out, want, "stderr: %s", r->err);
}

Test(run, environment_is_clean)
{
    setenv("SBX_TEST_SECRET", "leak", 1);
    result *r = SBX("run", "--env", "A=1", "--env", "PATH=/bin", "--", "/usr/bin/env");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect(strstr(r->out, "A=1\n"), "%s", r->out);
    cr_expect(strstr(r->out, "PATH=/bin\n"), "%s", r->out);
    cr_expect(strstr(r->out, "HOME=/tmp\n"), "%s", r->out);
    cr_expect(strstr(r->out, "SBX_SCRATCH=/"), "%s", r->out);
    cr_expect(!strstr(r->out, "SBX_TEST_SECRET"), "%s", r->out);
    r = SBX("run", "--env", "SBX_TEST_SECRET", "--", "/usr/bin/env");
    cr_expect(strstr(r->out, "SBX_TEST_SECRET=leak\n"), "%s", r->out);
}

Test(run, writes_go_to_scratch_only)
{
    /* inside the scratch directory: works, and is gone after the run */
    result *r = SBX("run", "--", "sh", "-c",
                    "echo data > \"$SBX_SCRATCH/f\" && cat \"$SBX_SCRATCH/f\" && echo \"$SBX_SCRATCH\"");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect(!strncmp(r->out, "data\n/", 6), "%s", r->out);
    char scratch[4096];
    snprintf(scratch, sizeof scratch, "%s", r->out + 5);
    scratch[strcspn(scratch, "\n")] = 0;
    cr_expect_neq(access(scratch, F_OK), 0, "scratch %s left behind", scratch);
    /* the working directory is read-only; the rest of the host is absent */
    r = SBX("run", "--", "sh", "-c", "echo x > out.txt");
    cr_expect_neq(r->code, 0);
    cr_expect(!exists("out.txt"));
    /* outside the view: absent or read-only */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "echo x > /var/tmp/sbx-run-test-%d", (int)getpid());
    r = SBX("run", "--", "sh", "-c", cmd);
    cr_expect_neq(r->code, 0);
    snprintf(cmd, sizeof cmd, "/var/tmp/sbx-run-test-%d", (int)getpid());
    cr_expect_neq(access(cmd, F_OK), 0);
    r = SBX("run", "--", "sh", "-c", "echo x > /usr/sbx-run-test");
    cr_expect_neq(r->code, 0);
    cr_expect_neq(access("/usr/sbx-run-test", F_OK), 0);
    /* /tmp is the target's own: writable, and nothing reaches the host's */
    snprintf(cmd, sizeof cmd, "echo x > /tmp/sbx-run-test-%d && cat /tmp/sbx-run-test-%d",
             (int)getpid(), (int)getpid());
    r = SBX("run", "--", "sh", "-c", cmd);
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    snprintf(cmd, sizeof cmd, "/tmp/sbx-run-test-%d", (int)getpid());
    cr_expect_neq(access(cmd, F_OK), 0);
    /* --keep-scratch keeps it */
    r = SBX("run", "--keep-scratch", "--", "sh", "-c", "echo kept > \"$SBX_SCRATCH/k\"; echo \"$SBX_SCRATCH\"");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    r->out[strcspn(r->out, "\n")] = 0;
    char kept[4200];
    snprintf(kept, sizeof kept, "%.4000s/k", r->out);
    cr_expect_eq(access(kept, F_OK), 0, "%s", kept);
    cr_expect(strstr(r->err, "scratch directory kept"), "%s", r->err);
    unlink(kept);
    rmdir(r->out);
}

Test(run, cwd_scratch)
{
    result *r = SBX("run", "--cwd", "scratch", "--", "sh", "-c",
                    "[ \"$(pwd)\" = \"$SBX_SCRATCH\" ] && echo x > here && cat here");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "x\n");
}

Test(run, default_profile_reads_system_files_not_secrets)
{
    result *r = SBX("run", "--", "sh", "-c", "cat /etc/hostname; ls /usr/bin >/dev/null");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->err, "");
    FILE *f = fopen("/etc/hostname", "r");
    char want[256] = "";
    if (f) {
        size_t n = fread(want, 1, sizeof want - 1, f);
        want[n] = 0;
        fclose(f);
    }
    cr_expect_str_eq(r->out, want);
    /* the refusal comes from cat itself: EACCES, not a missing file */
    r = SBX("run", "--", "cat", "/etc/shadow");
    cr_expect_eq(r->code, 1, "stderr: %s", r->err);
    cr_expect(strstr(r->err, "cat: /etc/shadow: Permission denied"), "%s", r->err);
    cr_expect_str_eq(r->out, "");
    r = SBX("run", "--", "ls", "/root");
    cr_expect_neq(r->code, 0);
    cr_expect(strstr(r->err, "Permission denied"), "%s", r->err);
    /* strict brokers nothing */
    r = SBX("run", "--profile", "strict", "--", "cat", "/etc/hostname");
    cr_expect_neq(r->code, 0);
}

Test(run, allow_write_grants)
{
    /* The broker performs the writes the policy allows, with the
     * target's own credentials: out/ is writable by that identity (a
     * root sbx maps the target to 65534), as a user's own directory is. */
    cr_assert_eq(mkdir(path_in("out"), 0777), 0);
    cr_assert_eq(chmod(path_in("out"), 0777), 0);
    result *r = SBX("run", "--", "sh", "-c", "echo no > out/f");
    cr_expect_neq(r->code, 0);
    cr_expect(!exists("out/f"));
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/out/**", dir);
    r = SBX("run", "--allow-write", pat, "--", "sh", "-c", "echo yes > out/f && cat out/f");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "yes\n");
    cr_expect_str_eq(read_file("out/f") ? read_file("out/f") : "(missing)", "yes\n");
    /* still only there */
    r = SBX("run", "--allow-write", pat, "--", "sh", "-c", "echo no > g");
    cr_expect_neq(r->code, 0);
    cr_expect(!exists("g"));
    /* and a pattern outside the working directory works the same */
    char out2[4200], pat2[4300], cmd[4400];
    /* (not under /tmp: the target's /tmp is its own, whatever a rule says) */
    snprintf(out2, sizeof out2, "/var/tmp/sbx-run-test-%d", (int)getpid());
    cr_assert_eq(mkdir(out2, 0777), 0);
    cr_assert_eq(chmod(out2, 0777), 0);
    snprintf(pat2, sizeof pat2, "%s/**", out2);
    snprintf(cmd, sizeof cmd, "echo far > %s/f", out2);
    r = SBX("run", "--allow-write", pat2, "--", "sh", "-c", cmd);
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    snprintf(cmd, sizeof cmd, "%s/f", out2);
    cr_expect_eq(access(cmd, F_OK), 0, "%s", cmd);
    unlink(cmd);
    rmdir(out2);
}

Test(run, deny_carves_out)
{
    write_file("secret.txt", "s3cret\n", 0644);
    write_file("public.txt", "hello\n", 0644);
    result *r = SBX("run", "--", "cat", "secret.txt");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "s3cret\n");
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/secret.txt", dir);
    /* inside the (native, read-only) working directory: the broker
     * enforces it; the rest of the directory stays readable */
    r = SBX("run", "--deny", pat, "--", "sh", "-c", "cat public.txt; cat secret.txt");
    cr_expect_neq(r->code, 0);
    cr_expect_str_eq(r->out, "hello\n");
    cr_expect(strstr(r->err, "secret.txt: Permission denied"), "%s", r->err);
    r = SBX("run", "--deny", pat, "--", "cat", pat);
    cr_expect_neq(r->code, 0);
    cr_expect(!strstr(r->out, "s3cret"), "%s", r->out);
    /* outside it, against an allow rule */
    r = SBX("run", "--deny", "/etc/hostname", "--", "cat", "/etc/hostname");
    cr_expect_eq(r->code, 1);
    cr_expect(strstr(r->err, "Permission denied"), "%s", r->err);
    /* a deny over the whole working directory keeps it out of the view */
    char all[4200];
    snprintf(all, sizeof all, "%s/**", dir);
    r = SBX("run", "--deny", all, "--", "cat", "public.txt");
    cr_expect_neq(r->code, 0);
    cr_expect(strstr(r->err, "a deny rule covers it"), "%s", r->err);
}

Test(run, sigterm_is_forwarded)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (chdir(dir) < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
            _exit(99);
        execl(getenv("SBX_BIN"), "sbx", "run", "--", "sleep", "30", (char *)NULL);
        _exit(98);
    }
    /* Give it time to start, then ask it to stop. */
    struct timespec ts = { 0, 300 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGTERM, "status %#x", st);
}

/* Every line of `name` is a JSON object with the documented fields. */
static void expect_json_lines(const char *name)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys\n"
             "for l in sys.stdin:\n"
             "  o=json.loads(l)\n"
             "  assert isinstance(o,dict) and \"time\" in o and o[\"type\"] in (\"event\",\"decision\"), l\n"
             "  if o[\"type\"]==\"decision\":\n"
             "    for k in (\"pid\",\"syscall\",\"path\",\"path2\",\"flags\",\"decision\",\"origin\",\"errno\"): assert k in o, (k,l)\n"
             "  else: assert \"event\" in o and (\"pid\" in o or o[\"event\"]==\"spawn-failed\"), l\n"
             "' < '%s'", path_in(name));
    int st = system(cmd);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s is not valid JSON Lines: %s", name,
              read_file(name));
}

Test(run, log_is_json_lines)
{
    result *r = SBX("run", "--log", "a.jsonl", "--", "sh", "-c", "exit 3");
    cr_expect_eq(r->code, 3, "stderr: %s", r->err);
    expect_json_lines("a.jsonl");
    const char *log = read_file("a.jsonl");
    cr_assert_not_null(log);
    cr_expect(strstr(log, "\"event\":\"started\""), "%s", log);
    cr_expect(strstr(log, "\"program\":\"/usr/bin/sh\"") || strstr(log, "\"program\":\"/bin/sh\""),
              "%s", log);
    cr_expect(strstr(log, "\"event\":\"exited\""), "%s", log);
    cr_expect(strstr(log, "\"code\":3"), "%s", log);
    /* started comes first */
    cr_expect(strstr(log, "started") < strstr(log, "exited"), "%s", log);

    /* decisions: brokered and denied, with the rule's origin and errno;
     * a hostile path is escaped */
    r = SBX("run", "--log", "e.jsonl", "--", "sh", "-c",
            "cat /etc/hostname >/dev/null; cat /etc/shadow; cat \"$(printf '/etc/q\\001\\377\\042')\"; true");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    expect_json_lines("e.jsonl");
    log = read_file("e.jsonl");
    cr_expect(strstr(log, "\"path\":\"/etc/hostname\",\"path2\":null,\"flags\":"), "%s", log);
    cr_expect(strstr(log, "\"decision\":\"brokered\",\"alarm\":false,\"origin\":\"profile:default:"),
              "%s", log);
    cr_expect(strstr(log, "\"path\":\"/etc/shadow\""), "%s", log);
    cr_expect(strstr(log, "\"decision\":\"denied\""), "%s", log);
    cr_expect(strstr(log, "\"errno\":13,\"errno_name\":\"EACCES\""), "%s", log);
    cr_expect(strstr(log, "\"path\":\"/etc/q\\u0001\\ufffd\\\"\""), "%s", log);

    r = SBX("run", "--log", "b.jsonl", "--", "sh", "-c", "kill -9 $$");
    cr_expect_eq(r->code, 128 + SIGKILL);
    expect_json_lines("b.jsonl");
    log = read_file("b.jsonl");
    cr_expect(strstr(log, "\"event\":\"killed\""), "%s", log);
    cr_expect(strstr(log, "\"signal\":9"), "%s", log);
    cr_expect(strstr(log, "\"signal_name\":\"KILL\""), "%s", log);
}

/* Baseline denials (EPERM mode) are log lines, with file interception
 * (the default profile brokers some files) and without it (strict: no
 * brokered rule, so the target's only notifying filter is the baseline). */
Test(run, denied_syscalls_are_logged)
{
    const char *unshare = access("/usr/bin/unshare", X_OK) == 0 ? "/usr/bin/unshare" : NULL;
    if (!unshare)
        cr_skip_test("no /usr/bin/unshare");
    result *r = SBX("run", "--log", "d.jsonl", "--", "sh", "-c", "unshare -U true; echo rc=$?");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect(strstr(r->out, "rc=1"), "%s", r->out);
    expect_json_lines("d.jsonl");
    const char *log = read_file("d.jsonl");
    cr_expect(strstr(log, "\"event\":\"denied_syscall\""), "intercepted: %s", log);
    cr_expect(strstr(log, "\"syscall_name\":\"unshare\",\"arch\":\"x86_64\""), "%s", log);

    r = SBX("run", "--profile", "strict", "--log", "n.jsonl", "--", unshare, "-U", "/bin/true");
    cr_expect_eq(r->code, 1, "stderr: %s", r->err);
    cr_expect(strstr(r->err, "Operation not permitted"), "%s", r->err);
    expect_json_lines("n.jsonl");
    log = read_file("n.jsonl");
    cr_expect(strstr(log, "\"event\":\"denied_syscall\""), "not intercepted: %s", log);
    cr_expect(strstr(log, "\"syscall\":272,\"syscall_name\":\"unshare\""), "%s", log);
    /* before the end event */
    cr_expect(strstr(log, "denied_syscall") < strstr(log, "\"event\":\"exited\""), "%s", log);
}

Test(run, log_is_private_and_truncated)
{
    write_file("c.jsonl", "old junk that is not json\n", 0644);
    result *r = SBX("run", "--log", "c.jsonl", "--", "true");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    expect_json_lines("c.jsonl");
    unlink(path_in("d.jsonl"));
    r = SBX("run", "--log", "d.jsonl", "--", "true");
    struct stat st;
    cr_assert_eq(stat(path_in("d.jsonl"), &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
}

Test(run, quiet_and_verbose)
{
    result *r = SBX("run", "-v", "--", "true");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect(strstr(r->err, "rules ("), "%s", r->err);
    cr_expect(strstr(r->err, "backend"), "%s", r->err);
    cr_expect(strstr(r->err, "limits: memory 1G"), "%s", r->err);
    cr_expect(strstr(r->err, "views:"), "%s", r->err);
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/x", dir);
    r = SBX("run", "-q", "--deny", pat, "--", "true");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->err, "");
}

Test(run, terminal_kept_only_with_tty)
{
    /* field 6 of /proc/self/stat is the session: without --tty the program
     * is in the session its init made (pid 1 of its namespace); with --tty
     * it stays in sbx's, which lies outside its pid namespace (0). */
    const char *cmd = "read a b c d e sid rest < /proc/self/stat; echo $sid";
    result *r = SBX("run", "--", "sh", "-c", cmd);
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "1\n");
    r = SBX("run", "--tty", "--", "sh", "-c", cmd);
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "0\n");
}

Test(run, spawn_failure_is_125_with_the_step)
{
    write_file("v.policy", "files allow-readonly /usr/**\nview /nonexistent-sbx-view\n", 0644);
    result *r = SBX("run", "-q", "--policy", "v.policy", "--log", "f.jsonl", "--", "true");
    cr_expect_eq(r->code, SBX_EXIT_FAILURE, "stderr: %s", r->err);
    cr_expect(strstr(r->err, "sbx: run: true: cannot start the sandbox: mount:"), "%s", r->err);
    cr_expect(strstr(r->err, "/nonexistent-sbx-view"), "%s", r->err);
    cr_expect_eq(strchr(r->err, '\n'), r->err + strlen(r->err) - 1, "one line: %s", r->err);
    expect_json_lines("f.jsonl");
    const char *log = read_file("f.jsonl");
    cr_expect(strstr(log, "\"event\":\"spawn-failed\""), "%s", log);
    cr_expect(strstr(log, "\"step\":\"mount\""), "%s", log);
    cr_expect(!strstr(log, "\"started\""), "%s", log);
}

Test(run, sigint_is_forwarded)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (chdir(dir) < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
            _exit(99);
        execl(getenv("SBX_BIN"), "sbx", "run", "--log", "g.jsonl", "--", "sleep", "30",
              (char *)NULL);
        _exit(98);
    }
    /* Wait until the target runs (the log says started), then interrupt. */
    for (int i = 0; i < 200; i++) {
        const char *log = read_file("g.jsonl");
        if (log && strstr(log, "started"))
            break;
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(kill(pid, SIGINT), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGINT, "status %#x", st);
    const char *log = read_file("g.jsonl");
    cr_expect(log && strstr(log, "\"event\":\"killed\""), "%s", log ? log : "");
    cr_expect(log && strstr(log, "\"signal_name\":\"INT\""), "%s", log ? log : "");
}

Test(run, sudo_user_owns_what_the_target_creates)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (the outside identity is chosen only by a root sbx)");
    cr_assert_eq(mkdir(path_in("out"), 0755), 0);
    cr_assert_eq(chown(path_in("out"), 12345, 12346), 0);
    char pat[4200];
    snprintf(pat, sizeof pat, "%s/out/**", dir);
    setenv("SUDO_UID", "12345", 1);
    setenv("SUDO_GID", "12346", 1);
    /* the user's own directory is writable under --allow-write (brokered
     * with the user's credentials), and so is scratch */
    result *r = SBX("run", "--allow-write", pat, "--", "sh", "-c",
                    "echo a > out/f && echo b > \"$SBX_SCRATCH/g\" && cat \"$SBX_SCRATCH/g\"");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "b\n");
    struct stat st;
    cr_assert_eq(stat(path_in("out/f"), &st), 0);
    cr_expect_eq(st.st_uid, 12345);
    cr_expect_eq(st.st_gid, 12346);
    /* SUDO_UID=0 is never taken: 65534 */
    setenv("SUDO_UID", "0", 1);
    setenv("SUDO_GID", "0", 1);
    r = SBX("run", "--allow-write", pat, "--", "sh", "-c", "echo a > out/h");
    cr_expect_neq(r->code, 0, "root's stand-in cannot write the user's directory");
    unsetenv("SUDO_UID");
    unsetenv("SUDO_GID");
}

/* --backend trap is honoured: the shim (found beside the build tree's sbx)
 * is preloaded and engaged, brokered writes and reads work, denials hold,
 * and a program exec'd with a cleared environment is still confined. */
Test(run, backend_trap_is_honoured)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("the sanitized shim cannot be preloaded into uninstrumented /bin programs");
#endif
    /* out/ is writable by the target's identity (see allow_write_grants) */
    cr_assert_eq(mkdir(path_in("out"), 0777), 0);
    cr_assert_eq(chmod(path_in("out"), 0777), 0);
    char grant[4200];
    snprintf(grant, sizeof grant, "%s/out/**", dir);
    write_file("in.txt", "input\n", 0644);
    result *r = SBX("run", "--backend", "trap", "--allow-write", grant, "--", "sh", "-c",
                    "grep -c libsbx-preload /proc/self/maps; echo native=$SBX_TRAP_NATIVE; "
                    "cat in.txt > out/t.txt && cat out/t.txt; cat /etc/shadow; "
                    "env -i /bin/cat /etc/shadow; echo rc=$?");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect(strncmp(r->out, "0\n", 2) != 0 && r->out[0] >= '1' && r->out[0] <= '9',
              "shim mapped: %s", r->out);
    cr_expect(strstr(r->out, "input\n"), "%s", r->out);
    cr_expect(strstr(r->out, "rc=1"), "%s", r->out);
    cr_expect_str_eq(read_file("out/t.txt") ? read_file("out/t.txt") : "(missing)", "input\n");
    cr_expect(strstr(r->err, "cat: /etc/shadow: Permission denied"), "%s", r->err);
    /* the same through notify, for comparison: identical results */
    unlink(path_in("out/t.txt"));
    r = SBX("run", "--backend", "notify", "--allow-write", grant, "--", "sh", "-c",
            "grep -c libsbx-preload /proc/self/maps; cat in.txt > out/t.txt && cat out/t.txt");
    cr_expect(strncmp(r->out, "0\ninput\n", 8) == 0, "%s / %s", r->out, r->err);
}

/* PROGRAM under a directory the sandbox's identity cannot traverse (a
 * 0700 home, pyenv under /root): the broker clones the view's trees
 * before the child enters its user namespace, so it still runs. */
Test(run, a_program_under_a_private_directory_runs)
{
    char *priv = sbx_test_mkdtemp("priv"); /* 0700, outside the working directory */
    cr_assert_not_null(priv);
    cr_assert_eq(chmod(priv, 0700), 0);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cp /bin/echo '%s/echo' && echo s > '%s/secret'", priv, priv);
    cr_assert_eq(system(cmd), 0);
    char prog[4200];
    snprintf(prog, sizeof prog, "%s/echo", priv);
    result *r = SBX("run", "--", prog, "from a private dir");
    cr_expect_eq(r->code, 0, "stderr: %s", r->err);
    cr_expect_str_eq(r->out, "from a private dir\n");
    /* only the program is visible, not its directory's other files */
    snprintf(cmd, sizeof cmd, "cat '%s/secret'", priv);
    r = SBX("run", "--", "sh", "-c", cmd);
    cr_expect_neq(r->code, 0);
    sbx_test_rmtree(priv);
    free(priv);
}
