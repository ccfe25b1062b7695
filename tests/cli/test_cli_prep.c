/* The run/check preparation helpers (tools/sbx/cli_prep.c), linked
 * directly: path normalisation, program lookup with 126/127, program and
 * interpreter views, the scratch directory, the clean environment. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_prep.h"
#include "exit_codes.h"
#include "policy/policy_object.h"
#include "sbx_test.h"

Test(cli_prep, normalize_path)
{
    const struct {
        const char *in, *cwd, *out;
    } cases[] = {
        { "/etc/passwd", NULL, "/etc/passwd" },
        { "/", NULL, "/" },
        { "//a///b/", NULL, "/a/b" },
        { "/a/./b/.", NULL, "/a/b" },
        { "/a/b/../c", NULL, "/a/c" },
        { "/..", NULL, "/" },
        { "/../../x", NULL, "/x" },
        { "/a/..", NULL, "/" },
        { "x", "/w/p", "/w/p/x" },
        { "../x", "/w/p", "/w/x" },
        { "./", "/w/p/", "/w/p" },
        { "../../../..", "/w/p", "/" },
        { "...", "/", "/..." },
        { "a/.b/..c", "/", "/a/.b/..c" },
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_expect_eq(sbx_cli_normalize_path(cases[i].in, cases[i].cwd, out, sizeof out), 0, "%s",
                     cases[i].in);
        cr_expect_str_eq(out, cases[i].out, "%s", cases[i].in);
    }
    cr_expect_eq(sbx_cli_normalize_path("x", NULL, out, sizeof out), -EINVAL);
    cr_expect_eq(sbx_cli_normalize_path("x", "rel", out, sizeof out), -EINVAL);
    cr_expect_eq(sbx_cli_normalize_path("", "/", out, sizeof out), -EINVAL);
    char tiny[8];
    cr_expect_eq(sbx_cli_normalize_path("/abcdefgh", NULL, tiny, sizeof tiny), -ENAMETOOLONG);
    cr_expect_eq(sbx_cli_normalize_path("/abc/defg", NULL, tiny, sizeof tiny), -ENAMETOOLONG);
    cr_expect_eq(sbx_cli_normalize_path("/abc/de", NULL, tiny, sizeof tiny), 0);
}

static char *dir;
static void setup(void)
{
    dir = sbx_test_mkdtemp("cli-prep");
    cr_assert_not_null(dir);
}
static void teardown(void)
{
    sbx_test_rmtree(dir);
    free(dir);
}
TestSuite(cli_prep_files, .init = setup, .fini = teardown);

static char *make(const char *name, const char *text, mode_t mode)
{
    char *p;
    cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(p, mode);
    return p;
}

Test(cli_prep_files, resolve_program)
{
    char out[PATH_MAX];
    char *prog = make("tool", "#!/bin/sh\n", 0755);
    char *plain = make("data", "x", 0644);
    cr_expect_eq(sbx_cli_resolve_program("tool", dir, out, sizeof out), 0);
    cr_expect_str_eq(out, prog);
    cr_expect_eq(sbx_cli_resolve_program(prog, NULL, out, sizeof out), 0);
    cr_expect_eq(sbx_cli_resolve_program("sh", NULL, out, sizeof out), 0);
    cr_expect_eq(sbx_cli_resolve_program("sbx-nope-xyz", dir, out, sizeof out), SBX_EXIT_NOT_FOUND);
    cr_expect_eq(sbx_cli_resolve_program("/nonexistent/x", NULL, out, sizeof out),
                 SBX_EXIT_NOT_FOUND);
    cr_expect_eq(sbx_cli_resolve_program("data", dir, out, sizeof out), SBX_EXIT_CANNOT_EXECUTE);
    cr_expect_eq(sbx_cli_resolve_program(plain, NULL, out, sizeof out), SBX_EXIT_CANNOT_EXECUTE);
    cr_expect_eq(sbx_cli_resolve_program(dir, NULL, out, sizeof out), SBX_EXIT_CANNOT_EXECUTE);
    /* a later directory of the search path is tried when the first has none */
    char *both;
    cr_assert_geq(asprintf(&both, "/nonexistent:%s", dir), 0);
    cr_expect_eq(sbx_cli_resolve_program("tool", both, out, sizeof out), 0);
    free(both);
    free(prog);
    free(plain);
}

Test(cli_prep_files, program_and_interpreter_views)
{
    char *interp = make("myinterp", "\x7f" "ELF", 0755);
    char *text;
    cr_assert_geq(asprintf(&text, "#!%s -x\nbody\n", interp), 0);
    char *script = make("script", text, 0755);
    sbx_policy *p = sbx_policy_new();
    cr_expect_eq(sbx_cli_add_program_views(p, script, NULL), 2);
    cr_assert_eq(p->n_views, 2);
    char real[PATH_MAX];
    cr_assert_not_null(realpath(script, real));
    cr_expect_str_eq(p->views[0].path, real);
    cr_expect_eq(p->views[0].flags, SBX_VIEW_READONLY | SBX_VIEW_EXEC);
    cr_assert_not_null(realpath(interp, real));
    cr_expect_str_eq(p->views[1].path, real);
    /* adding again adds nothing */
    cr_expect_eq(sbx_cli_add_program_views(p, script, NULL), 0);
    sbx_policy_unref(p);

    /* a program in the default view needs no view; a symlink is resolved */
    p = sbx_policy_new();
    cr_expect_eq(sbx_cli_add_program_views(p, "/bin/sh", NULL), 0);
    char *link;
    cr_assert_geq(asprintf(&link, "%s/link", dir), 0);
    cr_assert_eq(symlink("/bin/sh", link), 0);
    cr_expect_eq(sbx_cli_add_program_views(p, link, NULL), 0);
    cr_expect_eq(p->n_views, 0);
    /* ...unless the default view is off */
    sbx_policy_set_default_view(p, false);
    cr_expect_eq(sbx_cli_add_program_views(p, "/bin/sh", NULL), 1);
    sbx_policy_unref(p);

    /* #!/usr/bin/env NAME: NAME is searched and made visible */
    char *tool = make("tool", "\x7f" "ELF", 0755);
    char *envscript = make("envscript", "#!/usr/bin/env -S tool --flag\n", 0755);
    p = sbx_policy_new();
    cr_expect_eq(sbx_cli_add_program_views(p, envscript, dir), 2);
    cr_assert_not_null(realpath(tool, real));
    cr_expect_str_eq(p->views[1].path, real);
    sbx_policy_unref(p);
    /* garbage "#!" lines add nothing beyond the script */
    const char *bad[] = { "#!", "#!relative/interp\n", "#!/nonexistent/interp\n", "#!/bin/sh",
                          "#!   \n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = make("bad", bad[i], 0755);
        p = sbx_policy_new();
        int r = sbx_cli_add_program_views(p, s, NULL);
        cr_expect(r == 1 || r == -ENOENT, "%s: %d", bad[i], r);
        sbx_policy_unref(p);
        free(s);
    }
    free(link);
    free(tool);
    free(envscript);
    free(interp);
    free(text);
    free(script);
}

Test(cli_prep, default_view_trees)
{
    cr_expect(sbx_cli_in_default_view("/usr/bin/python3"));
    cr_expect(sbx_cli_in_default_view("/lib64/ld-linux-x86-64.so.2"));
    cr_expect(sbx_cli_in_default_view("/bin"));
    cr_expect_not(sbx_cli_in_default_view("/usrlocal/x"));
    cr_expect_not(sbx_cli_in_default_view("/library/x"));
    cr_expect_not(sbx_cli_in_default_view("/home/u/bin/x"));
    cr_expect_not(sbx_cli_in_default_view("/"));
}

Test(cli_prep_files, scratch_create_and_remove)
{
    setenv("TMPDIR", dir, 1);
    char s[PATH_MAX];
    cr_assert_eq(sbx_cli_scratch_create(s, sizeof s), 0);
    cr_expect(!strncmp(s, dir, strlen(dir)));
    cr_expect(strstr(s, "/sbx-scratch."));
    struct stat st;
    cr_assert_eq(stat(s, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700);
    /* fill it, including a symlink to something outside that must survive */
    char *outside = make("outside", "keep", 0644);
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/a", s);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/a/b", s);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/a/b/f", s);
    close(open(p, O_CREAT | O_WRONLY, 0600));
    snprintf(p, sizeof p, "%s/link", s);
    cr_assert_eq(symlink(dir, p), 0);
    cr_expect_eq(sbx_cli_scratch_remove(s), 0);
    cr_expect_neq(access(s, F_OK), 0);
    cr_expect_eq(access(outside, F_OK), 0, "removal followed a symlink out of scratch");
    cr_expect_eq(sbx_cli_scratch_remove(s), -ENOENT);
    free(outside);
    char tiny[8];
    cr_expect_eq(sbx_cli_scratch_create(tiny, sizeof tiny), -ENAMETOOLONG);
}

Test(cli_prep, clean_environment)
{
    setenv("SBX_TEST_VAR", "from-sbx", 1);
    unsetenv("SBX_TEST_UNSET");
    const char *env[] = { "A=1", "SBX_TEST_VAR", "SBX_TEST_UNSET", "B=x=y", "A=2",
                          "SBX_SCRATCH=/evil" };
    char **e = sbx_cli_build_env(env, sizeof env / sizeof env[0], "/tmp/s");
    cr_assert_not_null(e);
    const char *want[] = { "A=2", "SBX_TEST_VAR=from-sbx", "B=x=y", "SBX_SCRATCH=/tmp/s", NULL };
    size_t n = 0;
    for (; e[n]; n++) {
        cr_assert_not_null(want[n], "extra entry %s", e[n]);
        cr_expect_str_eq(e[n], want[n]);
    }
    cr_expect_eq(n, 4);
    sbx_cli_env_free(e);
    /* nothing asked: nothing passed, not even PATH or HOME */
    e = sbx_cli_build_env(NULL, 0, NULL);
    cr_assert_not_null(e);
    cr_expect_null(e[0]);
    sbx_cli_env_free(e);
    sbx_cli_env_free(NULL);
}

Test(cli_prep, exit_status)
{
    cr_expect_eq(sbx_cli_exit_status(false, 0), 0);
    cr_expect_eq(sbx_cli_exit_status(false, 3), 3);
    cr_expect_eq(sbx_cli_exit_status(false, 255), 255);
    cr_expect_eq(sbx_cli_exit_status(true, 9), 137);
    cr_expect_eq(sbx_cli_exit_status(true, 15), 143);
    cr_expect_eq(sbx_cli_exit_status(false, -1), SBX_EXIT_FAILURE);
    cr_expect_eq(sbx_cli_exit_status(false, 256), SBX_EXIT_FAILURE);
    cr_expect_eq(sbx_cli_exit_status(true, 0), SBX_EXIT_FAILURE);
    cr_expect_eq(sbx_cli_exit_status(true, 200), SBX_EXIT_FAILURE);
}

/* The working directory is shown natively only when the policy lets the
 * program read all of it and no deny rule reaches inside it. */
static sbx_policy *pol_with(const char *const *rules)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_not_null(p);
    for (; *rules; rules += 2) {
        int sem = !strcmp(rules[0], "ro")    ? SBX_FILES_ALLOW_READONLY
                  : !strcmp(rules[0], "any") ? SBX_FILES_ALLOW_ANY
                  : !strcmp(rules[0], "q")   ? SBX_FILES_ALLOW_QUERY
                  : !strcmp(rules[0], "dir") ? SBX_FILES_ALLOW_DIR_ANY
                                             : SBX_FILES_DENY;
        cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, sem, rules[1], "t", NULL), 0,
                     "%s", rules[1]);
    }
    return p;
}

#define POL(...) pol_with((const char *const[]){ __VA_ARGS__, NULL })

static int plan(sbx_policy *p, const char *cwd, unsigned *added)
{
    char why[512];
    return sbx_cli_plan_cwd(p, cwd, added, why, sizeof why);
}

Test(cli_prep, cwd_plan_decisions)
{
    unsigned added;
    /* read-only everywhere below: one read-only view */
    sbx_policy *p = POL("ro", "/w/p/**");
    cr_expect_eq(plan(p, "/w/p", &added), 0);
    cr_expect_eq(added, 1);
    cr_assert_eq(p->n_views, 1);
    cr_expect_str_eq(p->views[0].path, "/w/p");
    cr_expect_eq(p->views[0].flags, SBX_VIEW_READONLY);
    sbx_policy_unref(p);
    /* granted from above */
    p = POL("ro", "/**");
    cr_expect_eq(plan(p, "/w/p", &added), 0);
    sbx_policy_unref(p);
    /* allow-any: still a read-only view (writes are brokered) */
    p = POL("any", "/w/**");
    cr_expect_eq(plan(p, "/w/p", &added), 0);
    cr_assert_eq(p->n_views, 1);
    cr_expect_eq(p->views[0].flags, SBX_VIEW_READONLY);
    sbx_policy_unref(p);
    /* only part of it, only query, only directories, a sibling: not shown */
    const char *const *partial[] = {
        (const char *const[]){ "ro", "/w/p/src/**", NULL },
        (const char *const[]){ "q", "/w/p/**", NULL },
        (const char *const[]){ "dir", "/w/p/**", NULL },
        (const char *const[]){ "ro", "/w/pp/**", NULL },
        (const char *const[]){ "ro", "/w/p/*", NULL },
        (const char *const[]){ "ro", "/w/p", NULL },
        (const char *const[]){ NULL },
    };
    for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
        p = pol_with(partial[i]);
        cr_expect_eq(plan(p, "/w/p", &added), 1, "case %zu", i);
        cr_expect_eq(p->n_views, 0, "case %zu", i);
        sbx_policy_unref(p);
    }
    /* a deny that covers all of it keeps it out of the view */
    const char *const covering[] = { "/w/p/**", "/w/p", "/w/**", "/**" };
    for (size_t i = 0; i < sizeof covering / sizeof covering[0]; i++) {
        p = POL("ro", "/w/p/**", "deny", covering[i]);
        cr_expect_eq(plan(p, "/w/p", &added), 1, "%s", covering[i]);
        cr_expect_eq(p->n_views, 0, "%s", covering[i]);
        sbx_policy_unref(p);
    }
    /* a deny reaching part of it (or elsewhere) does not: the broker
     * enforces it inside the view */
    const char *const partial_deny[] = { "/w/p/.git/**", "/w/p/secret", "/w/p*", "/w/*/x",
                                         "/*/p/**", "/w/p/\\*", "/w/?/x", "/w/pp/**",
                                         "/etc/shadow*", "/w/q/**", "/x/*" };
    for (size_t i = 0; i < sizeof partial_deny / sizeof partial_deny[0]; i++) {
        p = POL("ro", "/w/p/**", "deny", partial_deny[i]);
        cr_expect_eq(plan(p, "/w/p", &added), 0, "%s", partial_deny[i]);
        cr_expect_eq(p->n_views, 1, "%s", partial_deny[i]);
        sbx_policy_unref(p);
    }
    /* in the default view already, or in a view: nothing added */
    p = POL("deny", "/**");
    cr_expect_eq(plan(p, "/", &added), 0);
    cr_expect_eq(added, 0);
    sbx_policy_unref(p);
    p = sbx_policy_new();
    cr_assert_eq(sbx_policy_add_view(p, "/w", SBX_VIEW_READONLY), 0);
    cr_expect_eq(plan(p, "/w/p", &added), 0);
    cr_expect_eq(added, 0);
    cr_expect_eq(p->n_views, 1);
    sbx_policy_unref(p);
    p = POL("ro", "/**");
    cr_expect_eq(plan(p, "rel", &added), -EINVAL);
    sbx_policy_unref(p);
}

Test(cli_prep_files, cwd_plan_no_native_write_views)
{
    /* allow-any rules below the working directory add no writable view:
     * such writes are brokered. */
    char out[4096], pat[4200], cwdpat[4200];
    snprintf(out, sizeof out, "%s/out", dir);
    cr_assert_eq(mkdir(out, 0755), 0);
    snprintf(cwdpat, sizeof cwdpat, "%s/**", dir);
    snprintf(pat, sizeof pat, "%s/**", out);
    sbx_policy *p = POL("ro", cwdpat, "any", pat);
    unsigned added;
    cr_expect_eq(plan(p, dir, &added), 0);
    cr_expect_eq(added, 1);
    cr_assert_eq(p->n_views, 1);
    cr_expect_str_eq(p->views[0].path, dir);
    cr_expect_eq(p->views[0].flags, SBX_VIEW_READONLY);
    sbx_policy_unref(p);
}
