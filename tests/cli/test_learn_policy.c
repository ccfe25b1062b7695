/* The `sbx learn` policy generator (tools/sbx/learn_policy.c): strongest
 * semantics per path, ENOENT probes, collapsing, escaping, variable
 * substitution, sorting and the covers comments. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/policy.h>
#include <sbx/policyfile.h>

#include "cli_policy.h"
#include "learn_policy.h"
#include "policy/policy_object.h"

static char *gen(sbx_learn *l, const sbx_learn_options *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    cr_assert_eq(sbx_learn_write(l, o, f), 0);
    fclose(f);
    return buf;
}

/* The rule line for `pattern` ("files SEM PATTERN"), or NULL. */
static const char *rule(const char *text, const char *pattern)
{
    static char want[512];
    for (const char *p = text; (p = strstr(p, "\nfiles ")); p++) {
        const char *sp = strchr(p + 7, ' ');
        const char *nl = strchr(p + 1, '\n');
        if (!sp || !nl)
            return NULL;
        size_t pl = (size_t)(nl - sp - 1);
        if (pl == strlen(pattern) && !strncmp(sp + 1, pattern, pl)) {
            snprintf(want, sizeof want, "%.*s", (int)(sp - p - 7), p + 7);
            return want;
        }
    }
    return NULL;
}

static sbx_learn *mk(void)
{
    sbx_learn *l = NULL;
    cr_assert_eq(sbx_learn_new(0, &l), 0);
    return l;
}

Test(learn_policy, strongest_semantics_per_path)
{
    sbx_learn *l = mk();
    sbx_learn_add(l, "stat", "/d/a", NULL, 0, false, 0);
    sbx_learn_add(l, "open", "/d/a", NULL, O_RDONLY, false, 0);
    sbx_learn_add(l, "stat", "/d/q", NULL, 0, false, 0);
    sbx_learn_add(l, "open", "/d/w", NULL, O_RDONLY, false, 0);
    sbx_learn_add(l, "open", "/d/w", NULL, O_WRONLY | O_CREAT | O_TRUNC, false, 0);
    sbx_learn_add(l, "open", "/d/w", NULL, O_RDONLY, false, 0);
    sbx_learn_add(l, "rename", "/d/src", "/d/dst", 0, false, 0);
    sbx_learn_add(l, "mkdir", "/d/m", NULL, 0755, false, 0);
    sbx_learn_add(l, "open", "/d/secret", NULL, O_RDONLY, true, EACCES);
    sbx_learn_add(l, "chdir", "/d/cd", NULL, 0, false, 0); /* needs what an opendir needs */
    sbx_learn_options o = { .collapse = 8 };
    char *t = gen(l, &o);
    cr_assert_str_eq(rule(t, "/d/a"), "allow-readonly");
    cr_assert_str_eq(rule(t, "/d/cd"), "allow-readonly");
    cr_assert_str_eq(rule(t, "/d/q"), "allow-query");
    cr_assert_str_eq(rule(t, "/d/w"), "allow-any");
    cr_assert_str_eq(rule(t, "/d/src"), "allow-any");
    cr_assert_str_eq(rule(t, "/d/dst"), "allow-any");
    cr_assert_str_eq(rule(t, "/d/m"), "allow-any");
    cr_assert_null(rule(t, "/d/secret"), "a denied access must not be granted");
    cr_assert(strstr(t, "# covers: read x2, create x1\nfiles allow-any /d/w\n"), "%s", t);
    cr_assert(strstr(t, "# covers: read x1, query x1\nfiles allow-readonly /d/a\n"), "%s", t);
    free(t);
    sbx_learn_free(l);
}

Test(learn_policy, enoent_probes_become_queries)
{
    sbx_learn *l = mk();
    sbx_learn_add(l, "open", "/x/missing", NULL, O_RDONLY, false, ENOENT);
    sbx_learn_add(l, "stat", "/x/gone", NULL, 0, false, ENOENT);
    sbx_learn_add(l, "open", "/x/new", NULL, O_WRONLY | O_CREAT, false, 0);
    sbx_learn_options o = { .collapse = 8 };
    char *t = gen(l, &o);
    cr_assert_str_eq(rule(t, "/x/missing"), "allow-query");
    cr_assert_str_eq(rule(t, "/x/gone"), "allow-query");
    cr_assert_str_eq(rule(t, "/x/new"), "allow-any");
    cr_assert(strstr(t, "# covers: missing x1\nfiles allow-query /x/missing\n"), "%s", t);
    free(t);
    sbx_learn_free(l);
}

static void add_n(sbx_learn *l, const char *dir, int n, int flags)
{
    for (int i = 0; i < n; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/f%d", dir, i);
        sbx_learn_add(l, "open", p, NULL, flags, false, 0);
    }
}

Test(learn_policy, collapse_threshold)
{
    sbx_learn *l = mk();
    add_n(l, "/t/many", 8, O_RDONLY);
    add_n(l, "/t/few", 7, O_RDONLY);
    sbx_learn_add(l, "open", "/t/many", NULL, O_RDONLY | O_DIRECTORY, false, 0);
    sbx_learn_options o = { .collapse = 8 };
    char *t = gen(l, &o);
    cr_assert_str_eq(rule(t, "/t/many/**"), "allow-readonly", "%s", t);
    cr_assert_null(rule(t, "/t/many/f0"));
    cr_assert_str_eq(rule(t, "/t/many"), "allow-readonly", "the directory itself keeps its rule");
    cr_assert_null(rule(t, "/t/few/**"));
    cr_assert_str_eq(rule(t, "/t/few/f6"), "allow-readonly");
    cr_assert(strstr(t, "# covers: read x8\nfiles allow-readonly /t/many/**\n"), "%s", t);
    free(t);
    /* collapse 0: never */
    sbx_learn_options none = { .collapse = 0 };
    t = gen(l, &none);
    cr_assert_null(rule(t, "/t/many/**"));
    cr_assert_str_eq(rule(t, "/t/many/f7"), "allow-readonly");
    free(t);
    sbx_learn_free(l);
}

Test(learn_policy, collapse_takes_the_strongest_and_nests)
{
    sbx_learn *l = mk();
    add_n(l, "/n/a/b", 8, O_RDONLY);
    sbx_learn_add(l, "unlink", "/n/a/b/f3", NULL, 0, false, 0);
    /* /n/a: b (collapsed) + 7 files = 8 entries: collapses again. */
    add_n(l, "/n/a", 7, O_RDONLY);
    sbx_learn_options o = { .collapse = 8 };
    char *t = gen(l, &o);
    cr_assert_null(rule(t, "/n/a/b/**"), "%s", t);
    cr_assert_str_eq(rule(t, "/n/a/**"), "allow-any", "%s", t);
    cr_assert(strstr(t, "# covers: read x15, change x1\n"), "%s", t);
    free(t);
    sbx_learn_free(l);
}

/* D opened itself and D/{**} count as one entry of D's parent. */
Test(learn_policy, a_directory_and_its_collapse_count_once)
{
    sbx_learn *l = mk();
    add_n(l, "/c/p/d", 8, O_RDONLY);
    sbx_learn_add(l, "open", "/c/p/d", NULL, O_RDONLY | O_DIRECTORY, false, 0);
    add_n(l, "/c/p", 6, O_RDONLY); /* 6 files + d = 7 entries of /c/p */
    sbx_learn_options o = { .collapse = 8 };
    char *t = gen(l, &o);
    cr_assert_str_eq(rule(t, "/c/p/d/**"), "allow-readonly", "%s", t);
    cr_assert_null(rule(t, "/c/p/**"), "%s", t);
    cr_assert_str_eq(rule(t, "/c/p/f5"), "allow-readonly");
    free(t);
    sbx_learn_free(l);
}

Test(learn_policy, escaping)
{
    char b[256];
    cr_assert_eq(sbx_learn_escape("/a*b?c\\d", b, sizeof b), 0);
    cr_assert_str_eq(b, "/a\\*b\\?c\\\\d");
    cr_assert_eq(sbx_learn_escape("/with space/x", b, sizeof b), 0);
    cr_assert_str_eq(b, "\"/with space/x\"");
    cr_assert_eq(sbx_learn_escape("/a\nb", b, sizeof b), -EINVAL);
    cr_assert_eq(sbx_learn_escape("/a ${HOME}", b, sizeof b), -EINVAL);
    cr_assert_eq(sbx_learn_escape("/q\" x", b, sizeof b), -EINVAL);
    cr_assert_eq(sbx_learn_escape("/abcdef", b, 4), -ENAMETOOLONG);

    sbx_learn *l = mk();
    sbx_learn_add(l, "open", "/e/st*r", NULL, O_RDONLY, false, 0);
    sbx_learn_add(l, "open", "/e/bad\nname", NULL, O_RDONLY, false, 0);
    sbx_learn_options o = { .collapse = 8 };
    char *t = gen(l, &o);
    cr_assert_str_eq(rule(t, "/e/st\\*r"), "allow-readonly", "%s", t);
    cr_assert_null(rule(t, "/e/st*r"));
    cr_assert(strstr(t, "# 1 path(s) could not be written"), "%s", t);
    free(t);
    sbx_learn_free(l);
}

Test(learn_policy, substitution_and_sorting)
{
    sbx_learn *l = mk();
    sbx_learn_add(l, "open", "/var/tmp/work/src/main.c", NULL, O_RDONLY, false, 0);
    sbx_learn_add(l, "open", "/tmp/sbx-abc/out", NULL, O_WRONLY | O_CREAT, false, 0);
    sbx_learn_add(l, "open", "/tmp/sbx-abcdef", NULL, O_RDONLY, false, 0);
    sbx_learn_add(l, "open", "/b/x", NULL, O_RDONLY, false, 0);
    sbx_learn_add(l, "open", "/a-z", NULL, O_RDONLY, false, 0);
    sbx_learn_add(l, "open", "/a/z", NULL, O_RDONLY, false, 0);
    sbx_learn_options o = { .scratch = "/tmp/sbx-abc/", .cwd = "/var/tmp/work",
                            .command = "prog arg", .collapse = 8 };
    char *t = gen(l, &o);
    cr_assert_str_eq(rule(t, "${CWD}/src/main.c"), "allow-readonly", "%s", t);
    cr_assert_str_eq(rule(t, "${SCRATCH}/out"), "allow-any", "%s", t);
    cr_assert_str_eq(rule(t, "/tmp/sbx-abcdef"), "allow-readonly", "a sibling is not under it");
    cr_assert(strstr(t, "from: prog arg\n"), "%s", t);
    const char *az = strstr(t, "files allow-readonly /a/z\n");
    const char *adash = strstr(t, "files allow-readonly /a-z\n");
    const char *bx = strstr(t, "files allow-readonly /b/x\n");
    cr_assert(az && adash && bx && az < adash && adash < bx, "sorted, '/' first: %s", t);
    free(t);
    sbx_learn_free(l);
}

/* The working directory is granted read-only, except when it is / (that
 * would be every file). */
Test(learn_policy, cwd_rules_never_for_root)
{
    sbx_learn *l = mk();
    sbx_learn_add(l, "open", "/x", NULL, O_RDONLY, false, 0);
    sbx_learn_options o = { .cwd = "/var/tmp/w", .collapse = 8 };
    char *t = gen(l, &o);
    cr_assert_str_eq(rule(t, "${CWD}/**"), "allow-readonly", "%s", t);
    free(t);
    sbx_learn_options root = { .cwd = "/", .collapse = 8 };
    t = gen(l, &root);
    cr_assert_null(rule(t, "${CWD}/**"), "%s", t);
    cr_assert_null(rule(t, "${CWD}"), "%s", t);
    cr_assert_str_eq(rule(t, "/x"), "allow-readonly", "no ${CWD} substitution for /: %s", t);
    free(t);
    sbx_learn_free(l);
}

Test(learn_policy, bounded)
{
    sbx_learn *l = NULL;
    cr_assert_eq(sbx_learn_new(3, &l), 0);
    add_n(l, "/b", 3, O_RDONLY);
    cr_assert_eq(sbx_learn_add(l, "open", "/b/f9", NULL, O_RDONLY, false, 0), -ENOSPC);
    cr_assert_eq(sbx_learn_add(l, "open", "/b/f1", NULL, O_RDONLY, false, 0), 0, "known path");
    cr_assert_eq(sbx_learn_dropped(l), 1);
    sbx_learn_options o = { .collapse = 8 };
    char *t = gen(l, &o);
    cr_assert(strstr(t, "# 1 access(es) beyond the learning bound"), "%s", t);
    free(t);
    sbx_learn_free(l);
}

/* The limits and --tty given to learn (sbx_cli_policy_settings, the same
 * cli fields sbx_cli_build_policy applies to a run) come out of the
 * learned policy, once compiled, exactly as the run had them. */
Test(learn_policy, settings_round_trip)
{
    sbx_cli cli = { .memory = 512ull << 20, .processes = 8, .cpu_seconds = 90,
                    .files = SBX_CLI_UNSET, .net = -1, .backend = -1, .tty = true,
                    .command = SBX_CMD_RUN };
    char settings[512];
    cr_assert_gt(sbx_cli_policy_settings(&cli, settings, sizeof settings), 0);
    cr_expect_str_eq(settings, "limit memory 512M\nlimit processes 8\nlimit cpu 90s\n"
                               "mitigation allow-tty\n");
    char tiny[8];
    cr_expect_eq(sbx_cli_policy_settings(&cli, tiny, sizeof tiny), -ENAMETOOLONG);

    sbx_learn *l = mk();
    sbx_learn_add(l, "open", "/srv/a", NULL, O_RDONLY, false, 0);
    sbx_learn_options o = { .settings = settings, .net = "loopback" };
    char *text = gen(l, &o);
    cr_expect(strstr(text, "\nnet loopback\n"), "%s", text);
    cr_expect_null(strstr(text, "net none"), "%s", text);

    sbx_cli_vars v;
    sbx_cli_vars_init(&v, "/tmp/scratch");
    sbx_policy *learned = sbx_policy_new(), *run = NULL;
    sbx_policyfile_error err;
    cr_assert_eq(sbx_policy_load_string(learned, text, strlen(text), "learned", &v.vars, &err), 0,
                 "%s\n%s", err.formatted, text);
    sbx_cli_source src = { .kind = SBX_SRC_PROFILE, .value = "learn" };
    cli.sources = &src;
    cli.n_sources = 1;
    cr_assert_eq(sbx_cli_build_policy(&cli, &v.vars, true, &run), 0);
    for (int k = 0; k < SBX_LIMIT_COUNT_; k++)
        cr_expect_eq(learned->limits[k], run->limits[k], "limit %d", k);
    cr_expect_eq(learned->limits[SBX_LIMIT_PROCESSES], 8);
    cr_expect(learned->mitigations & SBX_MITIGATION_ALLOW_TTY);
    cr_expect_eq(learned->net, SBX_NET_LOOPBACK);
    sbx_policy_unref(learned);
    sbx_policy_unref(run);

    /* nothing given: no settings, net none */
    sbx_cli none = { .memory = SBX_CLI_UNSET, .processes = SBX_CLI_UNSET,
                     .cpu_seconds = SBX_CLI_UNSET, .files = SBX_CLI_UNSET };
    cr_expect_eq(sbx_cli_policy_settings(&none, settings, sizeof settings), 0);
    cr_expect_str_eq(settings, "");
    free(text);
    sbx_learn_free(l);
}

/* --cwd: the target's working directory gets the read rules, written
 * with ${SCRATCH}/${CWD} when under them; never for /. */
Test(learn_policy, workdir_rules)
{
    sbx_learn *l = mk();
    sbx_learn_add(l, "open", "/srv/a", NULL, O_RDONLY, false, 0);
    sbx_learn_options o = { .scratch = "/tmp/sbx-scratch.1", .cwd = "/home/u",
                            .workdir = "/tmp/sbx-scratch.1", .rerun = "--cwd scratch --env A" };
    char *text = gen(l, &o);
    cr_expect(strstr(text, "files allow-query ${SCRATCH}\nfiles allow-readonly ${SCRATCH}/**\n"),
              "%s", text);
    cr_expect_null(strstr(text, "files allow-readonly ${CWD}"), "%s", text);
    cr_expect(strstr(text, "# Run it with these 'sbx run' options too: --cwd scratch --env A\n"),
              "%s", text);
    free(text);
    o = (sbx_learn_options){ .cwd = "/home/u", .workdir = "/srv/my data" };
    text = gen(l, &o);
    cr_expect(strstr(text, "files allow-query \"/srv/my data\"\n"
                           "files allow-readonly \"/srv/my data/**\"\n"), "%s", text);
    cr_expect_null(strstr(text, "Run it with"), "%s", text);
    free(text);
    o = (sbx_learn_options){ .cwd = "/home/u", .workdir = "/home/u/sub" };
    text = gen(l, &o);
    cr_expect(strstr(text, "files allow-readonly ${CWD}/sub/**\n"), "%s", text);
    cr_expect_null(strstr(text, "files allow-readonly ${CWD}/**\n"), "%s", text);
    free(text);
    o = (sbx_learn_options){ .cwd = "/home/u", .workdir = "/" };
    text = gen(l, &o);
    cr_expect_null(strstr(text, "working directory (native"), "%s", text);
    free(text);
    o = (sbx_learn_options){ .workdir = "/srv/bad\nname" };
    text = gen(l, &o);
    cr_expect(strstr(text, "# The working directory could not be written as a pattern."), "%s",
              text);
    cr_expect_null(strstr(text, "bad\nname"), "%s", text);
    free(text);
    sbx_learn_free(l);
}
