/* The built sbx binary, driven exactly as a user would: in a temporary
 * directory, checking exit statuses, stdout and the one-line errors. The
 * binary's path comes from meson in $SBX_BIN. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sbx/policyfile.h>

#include "exit_codes.h"
#include "sbx_test.h"

static char *dir;

static void setup(void)
{
    cr_assert_not_null(getenv("SBX_BIN"), "SBX_BIN is not set (run through meson test)");
    dir = sbx_test_mkdtemp("sbx-cli");
    cr_assert_not_null(dir);
}

static void teardown(void)
{
    sbx_test_rmtree(dir);
    free(dir);
}

TestSuite(sbx, .init = setup, .fini = teardown);

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

/* Run sbx with `args` (NULL-terminated) in the test directory. */
static result *sbx_run(const char *const *args)
{
    int out = memfd_create("out", MFD_CLOEXEC), err = memfd_create("err", MFD_CLOEXEC);
    cr_assert_geq(out, 0);
    cr_assert_geq(err, 0);
    const char *argv[64];
    int n = 0;
    argv[n++] = "sbx";
    for (; *args && n < 63; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (chdir(dir) < 0 || dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
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
    return &res;
}

#define SBX(...) sbx_run((const char *const[]){ __VA_ARGS__, NULL })

static void write_file(const char *name, const char *text, mode_t mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    cr_assert_geq(fd, 0, "%s", path);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static bool exists(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* A failure of sbx itself: 125 and exactly one line "sbx: ..." naming the
 * problem. */
static void expect_one_line_error(const result *r, int code, const char *needle)
{
    cr_expect_eq(r->code, code, "exit %d, want %d; stderr: %s", r->code, code, r->err);
    cr_expect(!strncmp(r->err, "sbx: ", 5), "stderr: %s", r->err);
    size_t len = strlen(r->err);
    cr_expect(len > 0 && r->err[len - 1] == '\n' && strchr(r->err, '\n') == r->err + len - 1,
              "not exactly one line: %s", r->err);
    cr_expect(strstr(r->err, needle), "stderr '%s' lacks '%s'", r->err, needle);
    cr_expect_str_eq(r->out, "", "nothing on stdout");
}

Test(sbx, help_and_version)
{
    result *r = SBX("--help");
    cr_expect_eq(r->code, 0);
    cr_expect(strstr(r->out, "usage: sbx COMMAND"));
    cr_expect(strstr(r->out, "policy compile FILE"));
    cr_expect_str_eq(r->err, "");
    r = SBX("help", "run");
    cr_expect_eq(r->code, 0);
    cr_expect(strstr(r->out, "--allow-read PATTERN"));
    cr_expect(strstr(r->out, "127"));
    r = SBX("run", "--help");
    cr_expect_eq(r->code, 0);
    cr_expect(strstr(r->out, "usage: sbx run"));
    r = SBX("help", "check");
    cr_expect(strstr(r->out, "usage: sbx check"));
    r = SBX("help", "policy");
    cr_expect(strstr(r->out, "usage: sbx policy show NAME"));
    r = SBX("--version");
    cr_expect_eq(r->code, 0);
    cr_expect(!strncmp(r->out, "sbx 0.", 6), "%s", r->out);
}

Test(sbx, top_level_bad_input)
{
    expect_one_line_error(SBX("frobnicate"), SBX_EXIT_FAILURE, "unknown command 'frobnicate'");
    expect_one_line_error(SBX("--frob"), SBX_EXIT_FAILURE, "unknown option '--frob'");
    expect_one_line_error(SBX("help", "frob"), SBX_EXIT_FAILURE, "unknown command 'frob'");
    result *r = sbx_run((const char *const[]){ NULL });
    expect_one_line_error(r, SBX_EXIT_FAILURE, "missing command (try 'sbx --help')");
}

Test(sbx, run_bad_options)
{
    expect_one_line_error(SBX("run", "--frob", "--", "true"), SBX_EXIT_FAILURE,
                          "unknown option '--frob' (try 'sbx help run')");
    expect_one_line_error(SBX("run", "true"), SBX_EXIT_FAILURE, "missing '--' before the program");
    expect_one_line_error(SBX("run", "--"), SBX_EXIT_FAILURE, "missing program after '--'");
    expect_one_line_error(SBX("run"), SBX_EXIT_FAILURE, "missing '--' and the program");
    expect_one_line_error(SBX("run", "--memory", "5X", "--", "true"), SBX_EXIT_FAILURE,
                          "--memory: bad size suffix");
    expect_one_line_error(SBX("run", "--cpu", "ten", "--", "true"), SBX_EXIT_FAILURE, "--cpu");
    expect_one_line_error(SBX("run", "--allow-read", "data/**", "--", "true"), SBX_EXIT_FAILURE,
                          "--allow-read: bad pattern");
    expect_one_line_error(SBX("run", "--deny", "/a/../b", "--", "true"), SBX_EXIT_FAILURE,
                          "bad pattern");
    expect_one_line_error(SBX("run", "--profile", "nope", "--", "true"), SBX_EXIT_FAILURE,
                          "unknown profile 'nope'");
    expect_one_line_error(SBX("run", "--net", "wifi", "--", "true"), SBX_EXIT_FAILURE,
                          "unknown mode 'wifi'");
}

Test(sbx, run_bad_policies_run_nothing)
{
    write_file("bad.policy", "files allow-readonly /usr/**\nfils deny /x\n", 0644);
    write_file("badsize.policy", "limit memory 512MB\n", 0644);
    write_file("badpat.policy", "files deny /a//b\n", 0644);
    write_file("cycle.policy", "include cycle.policy\n", 0644);
    result *r = SBX("run", "--policy", "bad.policy", "--", "/bin/touch", "marker");
    expect_one_line_error(r, SBX_EXIT_FAILURE, "bad.policy:2:1: unknown statement");
    cr_expect(strstr(r->err, "'fils'"));
    cr_expect_not(exists("marker"), "nothing ran");
    expect_one_line_error(SBX("run", "--policy", "badsize.policy", "--", "true"), SBX_EXIT_FAILURE,
                          "badsize.policy:1:17: bad size suffix");
    expect_one_line_error(SBX("run", "--policy", "badpat.policy", "--", "true"), SBX_EXIT_FAILURE,
                          "badpat.policy:1:15: bad pattern");
    expect_one_line_error(SBX("run", "--policy", "cycle.policy", "--", "true"), SBX_EXIT_FAILURE,
                          "include cycle");
    r = SBX("run", "--policy", "missing.policy", "--", "/bin/touch", "marker");
    expect_one_line_error(r, SBX_EXIT_FAILURE, "missing.policy: cannot read policy file");
    cr_expect(strstr(r->err, "(check the --policy path)"));
    cr_expect_not(exists("marker"));
    /* a good file before a bad one still runs nothing */
    write_file("good.policy", "files allow-readonly /usr/**\n", 0644);
    r = SBX("run", "--policy", "good.policy", "--policy", "bad.policy", "--", "/bin/touch", "m");
    expect_one_line_error(r, SBX_EXIT_FAILURE, "bad.policy:2:1");
    cr_expect_not(exists("m"));
}

Test(sbx, run_program_not_found_or_not_executable)
{
    expect_one_line_error(SBX("run", "--", "/nonexistent/prog"), SBX_EXIT_NOT_FOUND,
                          "/nonexistent/prog");
    expect_one_line_error(SBX("run", "--", "sbx-no-such-command-xyz"), SBX_EXIT_NOT_FOUND,
                          "command not found");
    write_file("script.sh", "#!/bin/sh\necho hi\n", 0644);
    expect_one_line_error(SBX("run", "--", "./script.sh"), SBX_EXIT_CANNOT_EXECUTE,
                          "permission denied");
    cr_assert_eq(mkdir(strcat(strcpy((char[4096]){ 0 }, dir), "/subdir"), 0755), 0);
    expect_one_line_error(SBX("run", "--", "./subdir"), SBX_EXIT_CANNOT_EXECUTE, "is a directory");
    expect_one_line_error(SBX("run", "--cwd", "/nonexistent-dir", "--", "true"), SBX_EXIT_FAILURE,
                          "--cwd");
}

Test(sbx, policy_show_and_list)
{
    const char *const *names = sbx_profile_names();
    for (size_t i = 0; names[i]; i++) {
        result *r = SBX("policy", "show", names[i]);
        cr_expect_eq(r->code, 0, "%s", names[i]);
        cr_expect_str_eq(r->out, sbx_profile_text(names[i]));
        /* what `show` prints is a policy file that compiles */
        char file[64];
        snprintf(file, sizeof file, "%s.policy", names[i]);
        write_file(file, r->out, 0644);
        r = SBX("policy", "compile", file);
        cr_expect_eq(r->code, 0, "%s: %s", names[i], r->err);
        cr_expect(strstr(r->out, ": ok\n"));
    }
    result *r = SBX("policy", "list");
    cr_expect_eq(r->code, 0);
    cr_expect(strstr(r->out, "default "));
    cr_expect(strstr(r->out, "strict "));
    cr_expect(strstr(r->out, "learn "));
    expect_one_line_error(SBX("policy", "show", "nope"), SBX_EXIT_FAILURE, "unknown profile 'nope'");
    expect_one_line_error(SBX("policy"), SBX_EXIT_FAILURE, "missing subcommand");
}

Test(sbx, policy_compile_summary)
{
    write_file("inc.policy", "files deny /data/secret/**\nview /opt optional exec\n", 0644);
    write_file("p.policy",
               "# a project policy\n"
               "files allow-readonly /usr/**\n"
               "files allow-readonly ${CWD}/**\n"
               "files allow-any ${SCRATCH}/**\n"
               "files allow-query /etc/*\n"
               "include inc.policy\n"
               "limit memory 512M\n"
               "limit cpu 2m\n"
               "net loopback\n",
               0644);
    result *r = SBX("policy", "compile", "p.policy");
    cr_assert_eq(r->code, 0, "%s", r->err);
    cr_expect(strstr(r->out, "p.policy: ok\n"), "%s", r->out);
    cr_expect(strstr(r->out, "rules: 5 (allow-any 1, allow-readonly 2, allow-query 1, deny 1)"),
              "%s", r->out);
    cr_expect(strstr(r->out, "# p.policy:3"), "%s", r->out);
    cr_expect(strstr(r->out, "# inc.policy:1"), "%s", r->out);
    char want[4200];
    snprintf(want, sizeof want, "files allow-readonly %s/**", dir);
    cr_expect(strstr(r->out, want), "CWD expanded: %s", r->out);
    cr_expect(strstr(r->out, "views: 1 extra, default view on"), "%s", r->out);
    cr_expect(strstr(r->out, "view /opt optional exec"), "%s", r->out);
    cr_expect(strstr(r->out, "memory 512M,"), "%s", r->out);
    cr_expect(strstr(r->out, "cpu 120s,"), "%s", r->out);
    cr_expect(strstr(r->out, "processes 256 (preset)"), "%s", r->out);
    cr_expect(strstr(r->out, "net loopback"), "%s", r->out);

    write_file("bad.policy", "net none\nlimit memory 1G\nview /usr/*\n", 0644);
    expect_one_line_error(SBX("policy", "compile", "bad.policy"), SBX_EXIT_FAILURE,
                          "bad.policy:3:11: bad view path");
    expect_one_line_error(SBX("policy", "compile", "missing.policy"), SBX_EXIT_FAILURE,
                          "missing.policy: cannot read policy file");
    write_file("incmissing.policy", "include nothere.policy\n", 0644);
    expect_one_line_error(SBX("policy", "compile", "incmissing.policy"), SBX_EXIT_FAILURE,
                          "incmissing.policy:1:9: cannot read included file");
}

Test(sbx, check_explains_decisions)
{
    write_file("p.policy",
               "# data policy\n"
               "files allow-readonly /data/**\n"
               "files allow-any /data/out/**\n"
               "files deny /data/secret/**\n"
               "files allow-readonly ${CWD}/**\n"
               "view /opt/tools exec\n",
               0644);
    result *r = SBX("check", "--policy", "p.policy", "read", "/data/in/x");
    cr_expect_eq(r->code, 0, "%s", r->err);
    cr_expect_str_eq(r->out, "allow: read /data/in/x (p.policy:2: files allow-readonly /data/**)\n");
    r = SBX("check", "--policy", "p.policy", "write", "/data/out/f", "trunc");
    cr_expect_eq(r->code, 0);
    cr_expect_str_eq(r->out, "allow: write /data/out/f (p.policy:3: files allow-any /data/out/**)\n");
    /* deny wins over the earlier allow */
    r = SBX("check", "--policy", "p.policy", "read", "/data/secret/key");
    cr_expect_eq(r->code, SBX_EXIT_DENIED);
    cr_expect_str_eq(r->out,
                     "deny: read /data/secret/key (p.policy:4: files deny /data/secret/**)\n");
    /* read-only does not admit a write: nothing matched */
    r = SBX("check", "--policy", "p.policy", "write", "/data/in/x");
    cr_expect_eq(r->code, SBX_EXIT_DENIED);
    cr_expect_str_eq(r->out, "deny: write /data/in/x (no rule matched \u2192 denied)\n");
    r = SBX("check", "--policy", "p.policy", "create", "/elsewhere");
    cr_expect_eq(r->code, SBX_EXIT_DENIED);
    cr_expect(strstr(r->out, "no rule matched"));
    /* relative paths resolve against the current directory, lexically */
    r = SBX("check", "--policy", "p.policy", "read", "sub/../file.txt");
    cr_expect_eq(r->code, 0, "%s", r->out);
    char want[4400];
    snprintf(want, sizeof want, "allow: read %s/file.txt (p.policy:5: files allow-readonly %s/**)\n",
             dir, dir);
    cr_expect_str_eq(r->out, want);
    /* ".." cannot climb out of a rule: /data/out/../secret is /data/secret */
    r = SBX("check", "--policy", "p.policy", "read", "/data/out/../secret/k");
    cr_expect_eq(r->code, SBX_EXIT_DENIED);
    cr_expect(strstr(r->out, "deny: read /data/secret/k"), "%s", r->out);
    /* rename needs both ends */
    r = SBX("check", "--policy", "p.policy", "rename", "/data/out/a", "/data/in/b");
    cr_expect_eq(r->code, SBX_EXIT_DENIED);
    cr_expect(strstr(r->out, "deny: rename /data/out/a /data/in/b\n"), "%s", r->out);
    cr_expect(strstr(r->out, "  source /data/out/a: allow (p.policy:3"), "%s", r->out);
    cr_expect(strstr(r->out, "  destination /data/in/b: deny (no rule matched"), "%s", r->out);
    r = SBX("check", "--policy", "p.policy", "rename", "/data/out/a", "/data/out/b");
    cr_expect_eq(r->code, 0, "%s", r->out);
    r = SBX("check", "--policy", "p.policy", "mkdir", "/data/out/d");
    cr_expect_eq(r->code, 0, "%s", r->out);
    r = SBX("check", "--policy", "p.policy", "unlink", "/data/in/f");
    cr_expect_eq(r->code, SBX_EXIT_DENIED, "%s", r->out);
    r = SBX("check", "--policy", "p.policy", "stat", "/data/in/f");
    cr_expect_eq(r->code, 0, "%s", r->out);
    /* exec is the native view's business */
    r = SBX("check", "--policy", "p.policy", "exec", "/usr/bin/env");
    cr_expect_eq(r->code, 0);
    cr_expect(strstr(r->out, "allow: exec /usr/bin/env (native view"), "%s", r->out);
    r = SBX("check", "--policy", "p.policy", "exec", "/opt/tools/bin/x");
    cr_expect_eq(r->code, 0);
    cr_expect(strstr(r->out, "view /opt/tools exec"), "%s", r->out);
    r = SBX("check", "--policy", "p.policy", "exec", "/data/in/prog");
    cr_expect_eq(r->code, SBX_EXIT_DENIED);
    /* command-line rules carry their option as origin, after the file's */
    r = SBX("check", "--policy", "p.policy", "--allow-write", "/scratch/**", "write", "/scratch/x");
    cr_expect_eq(r->code, 0);
    cr_expect_str_eq(r->out, "allow: write /scratch/x (--allow-write: files allow-any /scratch/**)\n");
    r = SBX("check", "--allow-read", "/data/**", "--deny", "/data/secret/**", "read",
            "/data/secret/x");
    cr_expect_eq(r->code, SBX_EXIT_DENIED);
    cr_expect(strstr(r->out, "(--deny: files deny /data/secret/**)"), "%s", r->out);
}

Test(sbx, check_with_profiles_and_bad_input)
{
    /* the default profile keeps secrets out and lets /etc be read */
    result *r = SBX("check", "read", "/etc/shadow");
    cr_expect_eq(r->code, SBX_EXIT_DENIED);
    cr_expect(strstr(r->out, "(profile:default:"), "%s", r->out);
    cr_expect(strstr(r->out, "files deny /etc/shadow*"), "%s", r->out);
    r = SBX("check", "read", "/etc/hostname");
    cr_expect_eq(r->code, 0, "%s", r->out);
    r = SBX("check", "write", "/etc/hostname");
    cr_expect_eq(r->code, SBX_EXIT_DENIED, "%s", r->out);
    r = SBX("check", "--profile", "strict", "read", "/etc/hostname");
    cr_expect_eq(r->code, SBX_EXIT_DENIED, "%s", r->out);
    write_file("bad.policy", "files allow-readonly /x\nlimit cpu 5d\n", 0644);
    expect_one_line_error(SBX("check", "--policy", "bad.policy", "read", "/x"), SBX_EXIT_FAILURE,
                          "bad.policy:2:12: bad duration suffix");
    expect_one_line_error(SBX("check", "--policy", "nope.policy", "read", "/x"), SBX_EXIT_FAILURE,
                          "nope.policy: cannot read policy file");
    expect_one_line_error(SBX("check", "chmod", "/x"), SBX_EXIT_FAILURE, "unknown operation 'chmod'");
    expect_one_line_error(SBX("check", "read"), SBX_EXIT_FAILURE, "read needs a PATH");
    expect_one_line_error(SBX("check"), SBX_EXIT_FAILURE, "missing OPERATION");
}

Test(sbx, policy_dump)
{
    write_file("p.policy", "files allow-readonly /data/**\nfiles deny /data/secret/**\n", 0644);
    result *r = SBX("policy", "dump", "p.policy");
    cr_expect_eq(r->code, 0, "%s", r->err);
    cr_expect(strstr(r->out, "origin=\"p.policy:1\""), "%s", r->out);
    cr_expect(strstr(r->out, "origin=\"p.policy:2\""), "%s", r->out);
    cr_expect(strstr(r->out, "\"/data/secret/\""), "%s", r->out);
    write_file("bad.policy", "files allow-readonly data\n", 0644);
    expect_one_line_error(SBX("policy", "dump", "bad.policy"), SBX_EXIT_FAILURE,
                          "bad.policy:1:22: bad pattern");
    expect_one_line_error(SBX("policy", "dump"), SBX_EXIT_FAILURE, "missing FILE");
}
