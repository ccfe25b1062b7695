/* The policy-file language (src/policylang): every statement, every value
 * spelling, every error with its file:line:col, includes, and the
 * all-or-nothing guarantee. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sbx/error.h>
#include <sbx/policyfile.h>

#include "policy/policy_object.h"
#include "policylang/policylang.h"
#include "sbx_test.h"

static const sbx_policy_vars V = {
    .home = "/home/u", .cwd = "/work/proj", .scratch = "/tmp/scr", .uid = "1000"
};

static int load(sbx_policy *p, const char *text, sbx_policyfile_error *e)
{
    return sbx_policy_load_string(p, text, strlen(text), "t.policy", &V, e);
}

/* Load `text` into a fresh policy and expect it to fail as described. */
static void expect_error(const char *text, int code, unsigned line, unsigned col,
                         const char *msg_part, const char *offending)
{
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    int r = load(p, text, &e);
    cr_expect_eq(r, code, "for %s: got %d (%s), want %d", text, r, e.formatted, code);
    cr_expect_eq(e.code, r);
    cr_expect_eq(e.line, line, "for %s: line %u want %u (%s)", text, e.line, line, e.formatted);
    cr_expect_eq(e.column, col, "for %s: column %u want %u (%s)", text, e.column, col,
                 e.formatted);
    if (msg_part)
        cr_expect(strstr(e.message, msg_part), "for %s: message '%s' lacks '%s'", text, e.message,
                  msg_part);
    if (offending)
        cr_expect_str_eq(e.text, offending, "for %s", text);
    cr_expect(strchr(e.formatted, '\n') == NULL, "one line");
    char prefix[64];
    snprintf(prefix, sizeof prefix, "t.policy:%u:%u: ", line, col);
    cr_expect(!strncmp(e.formatted, prefix, strlen(prefix)), "formatted '%s'", e.formatted);
    cr_expect_eq(p->n_rules, 0);
    cr_expect_eq(p->n_views, 0);
    sbx_policy_unref(p);
}

static void expect_ok(sbx_policy *p, const char *text)
{
    sbx_policyfile_error e;
    int r = load(p, text, &e);
    cr_assert_eq(r, 0, "for %s: %d %s", text, r, e.formatted);
    cr_expect_eq(e.code, 0);
}

Test(policyfile, empty_comments_blank_and_crlf)
{
    sbx_policy *p = sbx_policy_new();
    expect_ok(p, "");
    expect_ok(p, "\n\n   \t\n# only a comment\n   # indented comment\n");
    expect_ok(p, "files allow-readonly /usr/** # trailing comment\r\nnet loopback\r\n");
    cr_expect_eq(p->n_rules, 1);
    cr_expect_str_eq(p->rules[0].pattern, "/usr/**");
    cr_expect_eq(p->net, SBX_NET_LOOPBACK);
    /* no final newline */
    expect_ok(p, "files deny /etc/shadow");
    cr_expect_eq(p->n_rules, 2);
    sbx_policy_unref(p);
}

Test(policyfile, files_statements_with_origins)
{
    sbx_policy *p = sbx_policy_new();
    expect_ok(p, "files allow-readonly /usr/**\n"
                 "files allow-any ${SCRATCH}/**\n"
                 "\n"
                 "files allow-query /etc/*\n"
                 "files allow-dir-any /data/**\n"
                 "files deny /home/*/.ssh/**\n");
    cr_assert_eq(p->n_rules, 5);
    const int sem[] = { SBX_FILES_ALLOW_READONLY, SBX_FILES_ALLOW_ANY, SBX_FILES_ALLOW_QUERY,
                        SBX_FILES_ALLOW_DIR_ANY, SBX_FILES_DENY };
    const char *pat[] = { "/usr/**", "/tmp/scr/**", "/etc/*", "/data/**", "/home/*/.ssh/**" };
    const char *org[] = { "t.policy:1", "t.policy:2", "t.policy:4", "t.policy:5", "t.policy:6" };
    for (int i = 0; i < 5; i++) {
        cr_expect_eq(p->rules[i].semantics, sem[i]);
        cr_expect_eq(p->rules[i].subsys, SBX_SUBSYS_FILES);
        cr_expect_str_eq(p->rules[i].pattern, pat[i]);
        cr_expect_str_eq(p->rules[i].origin, org[i]);
    }
    sbx_policy_unref(p);
}

Test(policyfile, settings_statements)
{
    sbx_policy *p = sbx_policy_new();
    expect_ok(p, "limit memory 512M\nlimit processes 64\nlimit cpu 30s\nlimit files 100\n"
                 "limit filesize 2G\nnet loopback\nbackend notify\nidentity 1000 100\n"
                 "deny-errno ENOENT\nlockdown interactive\njob lockdown\naudit on\n"
                 "default-view off\nmitigation allow-tty\nmitigation allow-children\n");
    cr_expect_eq(p->limits[SBX_LIMIT_MEMORY], 512ull << 20);
    cr_expect_eq(p->limits[SBX_LIMIT_PROCESSES], 64);
    cr_expect_eq(p->limits[SBX_LIMIT_CPU_SECONDS], 30);
    cr_expect_eq(p->limits[SBX_LIMIT_OPEN_FILES], 100);
    cr_expect_eq(p->limits[SBX_LIMIT_FILE_SIZE], 2ull << 30);
    cr_expect_eq(p->net, SBX_NET_LOOPBACK);
    cr_expect_eq(p->backend, SBX_BACKEND_NOTIFY);
    cr_expect_eq(p->uid, 1000);
    cr_expect_eq(p->gid, 100);
    cr_expect_eq(p->deny_errno, ENOENT);
    cr_expect_eq(p->lockdown, SBX_LOCKDOWN_INTERACTIVE);
    cr_expect_eq(p->job, SBX_JOB_LOCKDOWN);
    cr_expect(p->audit);
    cr_expect_not(p->default_view);
    cr_expect_eq(p->mitigations, SBX_MITIGATION_ALLOW_TTY | SBX_MITIGATION_ALLOW_CHILDREN);
    /* later statements override earlier ones */
    expect_ok(p, "net none\nbackend trap\naudit off\ndefault-view on\nlockdown lockdown\n"
                 "job none\ndeny-errno EPERM\nmitigation kill-on-denied-syscall\n"
                 "backend auto\n");
    cr_expect_eq(p->net, SBX_NET_NONE);
    cr_expect_eq(p->backend, SBX_BACKEND_AUTO);
    cr_expect_not(p->audit);
    cr_expect(p->default_view);
    cr_expect_eq(p->lockdown, SBX_LOCKDOWN_LOCKDOWN);
    cr_expect_eq(p->job, SBX_JOB_NONE);
    cr_expect_eq(p->deny_errno, EPERM);
    cr_expect(p->mitigations & SBX_MITIGATION_KILL_ON_DENIED_SYSCALL);
    cr_expect(p->mitigations & SBX_MITIGATION_ALLOW_TTY);
    expect_ok(p, "job interactive\nlockdown limited\ndeny-errno EACCES\n");
    cr_expect_eq(p->job, SBX_JOB_INTERACTIVE);
    cr_expect_eq(p->lockdown, SBX_LOCKDOWN_LIMITED);
    cr_expect_eq(p->deny_errno, EACCES);
    sbx_policy_unref(p);
}

Test(policyfile, views)
{
    sbx_policy *p = sbx_policy_new();
    expect_ok(p, "view /opt\nview /data rw\nview /maybe optional\nview /tools exec optional\n"
                 "view ${CWD} rw exec optional\nview /\n");
    cr_assert_eq(p->n_views, 6);
    cr_expect_str_eq(p->views[0].path, "/opt");
    cr_expect_eq(p->views[0].flags, SBX_VIEW_READONLY);
    cr_expect_eq(p->views[1].flags, SBX_VIEW_WRITABLE);
    cr_expect_eq(p->views[2].flags, SBX_VIEW_OPTIONAL);
    cr_expect_eq(p->views[3].flags, SBX_VIEW_EXEC | SBX_VIEW_OPTIONAL);
    cr_expect_str_eq(p->views[4].path, "/work/proj");
    cr_expect_eq(p->views[4].flags, SBX_VIEW_WRITABLE | SBX_VIEW_EXEC | SBX_VIEW_OPTIONAL);
    cr_expect_str_eq(p->views[5].path, "/");
    sbx_policy_unref(p);
}

Test(policyfile, view_errors)
{
    expect_error("view opt\n", SBX_ERROR_BAD_POLICY, 1, 6, "absolute", "opt");
    expect_error("view /usr/*\n", SBX_ERROR_BAD_POLICY, 1, 11, "not a pattern", "/usr/*");
    expect_error("view /a/../b\n", SBX_ERROR_BAD_POLICY, 1, 9, "'..'", "/a/../b");
    expect_error("view /opt ro\n", SBX_ERROR_BAD_POLICY, 1, 11, "unknown view flag", "ro");
    expect_error("view /opt rw rw\n", SBX_ERROR_BAD_POLICY, 1, 14, "twice", "rw");
    expect_error("view\n", SBX_ERROR_BAD_POLICY, 1, 5, "missing argument", "view");
    expect_error("view /a rw optional exec rw\n", SBX_ERROR_BAD_POLICY, 1, 26, "unexpected", "rw");
}

Test(policyfile, sizes)
{
    const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        { "4096", 4096 }, { "1", 1 }, { "10K", 10240 }, { "10k", 10240 }, { "512M", 512ull << 20 },
        { "3g", 3ull << 30 }, { "1T", 1ull << 40 }, { "16777215T", 16777215ull << 40 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 0;
        cr_expect_eq(sbx_policylang_parse_size(ok[i].s, &v, NULL, NULL), 0, "%s", ok[i].s);
        cr_expect_eq(v, ok[i].v, "%s", ok[i].s);
    }
    const char *bad[] = { "", "0", "0K", "-1", "+1", "5X", "512MB", "M", "1.5G", " 1", "1 ",
                          "99999999999999999999", "16777216T", "18446744073709551615",
                          "18446744073709551614K" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        const char *why = NULL;
        cr_expect_lt(sbx_policylang_parse_size(bad[i], &v, &why, NULL), 0, "%s", bad[i]);
        cr_expect_not_null(why, "%s", bad[i]);
        cr_expect_eq(v, 7, "untouched for %s", bad[i]);
    }
}

Test(policyfile, durations_and_counts)
{
    uint64_t v;
    cr_expect_eq(sbx_policylang_parse_seconds("30", &v, NULL, NULL), 0);
    cr_expect_eq(v, 30);
    cr_expect_eq(sbx_policylang_parse_seconds("30s", &v, NULL, NULL), 0);
    cr_expect_eq(v, 30);
    cr_expect_eq(sbx_policylang_parse_seconds("5m", &v, NULL, NULL), 0);
    cr_expect_eq(v, 300);
    cr_expect_eq(sbx_policylang_parse_seconds("2h", &v, NULL, NULL), 0);
    cr_expect_eq(v, 7200);
    const char *bad[] = { "0", "0s", "-5", "30x", "1d", "s", "", "5ms", "6148914691236517205h" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_lt(sbx_policylang_parse_seconds(bad[i], &v, NULL, NULL), 0, "%s", bad[i]);
    cr_expect_eq(sbx_policylang_parse_count("64", 1, 100, &v, NULL, NULL), 0);
    cr_expect_eq(v, 64);
    cr_expect_lt(sbx_policylang_parse_count("0", 1, 100, &v, NULL, NULL), 0);
    cr_expect_lt(sbx_policylang_parse_count("101", 1, 100, &v, NULL, NULL), 0);
    cr_expect_lt(sbx_policylang_parse_count("6x", 1, 100, &v, NULL, NULL), 0);
    cr_expect_lt(sbx_policylang_parse_count("-6", 1, 100, &v, NULL, NULL), 0);
    cr_expect_eq(sbx_policylang_parse_count("0", 0, 100, &v, NULL, NULL), 0);
}

Test(policyfile, limit_errors_point_at_the_value)
{
    expect_error("limit memory 512MB\n", SBX_ERROR_BAD_POLICY, 1, 17, "bad size suffix", "512MB");
    expect_error("limit memory 5X\n", SBX_ERROR_BAD_POLICY, 1, 15, "bad size suffix", "5X");
    expect_error("limit memory -1\n", SBX_ERROR_BAD_POLICY, 1, 14, "negative", "-1");
    expect_error("limit memory 0\n", SBX_ERROR_BAD_POLICY, 1, 14, "zero", "0");
    expect_error("limit memory 99999999999999999999\n", SBX_ERROR_BAD_POLICY, 1, 14, "too large",
                 NULL);
    expect_error("limit memory 99999999T\n", SBX_ERROR_BAD_POLICY, 1, 14, "too large", NULL);
    expect_error("limit cpu 30x\n", SBX_ERROR_BAD_POLICY, 1, 13, "bad duration suffix", "30x");
    expect_error("limit cpu 0\n", SBX_ERROR_BAD_POLICY, 1, 11, "zero", "0");
    expect_error("limit processes 0\n", SBX_ERROR_BAD_POLICY, 1, 17, "zero", "0");
    expect_error("limit processes ten\n", SBX_ERROR_BAD_POLICY, 1, 17, "expected a number", "ten");
    expect_error("limit processes 99999999\n", SBX_ERROR_BAD_POLICY, 1, 17, "too large", NULL);
    expect_error("limit files 0\n", SBX_ERROR_BAD_POLICY, 1, 13, "zero", "0");
    expect_error("limit files 2097152\n", SBX_ERROR_BAD_POLICY, 1, 13, "too large", NULL);
    expect_error("limit filesize 1Q\n", SBX_ERROR_BAD_POLICY, 1, 17, "bad size suffix", "1Q");
    expect_error("limit stack 1M\n", SBX_ERROR_BAD_POLICY, 1, 7, "unknown limit", "stack");
    expect_error("limit memory\n", SBX_ERROR_BAD_POLICY, 1, 13, "missing argument", NULL);
    expect_error("limit memory 1M 2M\n", SBX_ERROR_BAD_POLICY, 1, 17, "unexpected argument", "2M");
}

Test(policyfile, keyword_errors)
{
    expect_error("fils allow-any /x\n", SBX_ERROR_BAD_POLICY, 1, 1, "did you mean 'files'", "fils");
    expect_error("  bananas\n", SBX_ERROR_BAD_POLICY, 1, 3, "unknown statement", "bananas");
    expect_error("files allow-all /x\n", SBX_ERROR_BAD_POLICY, 1, 7, "unknown files semantics",
                 "allow-all");
    expect_error("files allow-any\n", SBX_ERROR_BAD_POLICY, 1, 16, "missing argument", NULL);
    expect_error("files allow-any /a /b\n", SBX_ERROR_BAD_POLICY, 1, 20, "unexpected argument",
                 "/b");
    expect_error("net wifi\n", SBX_ERROR_BAD_POLICY, 1, 5, "none or loopback", "wifi");
    expect_error("backend ptrace\n", SBX_ERROR_BAD_POLICY, 1, 9, "auto, notify or trap", "ptrace");
    expect_error("deny-errno EIO\n", SBX_ERROR_BAD_POLICY, 1, 12, "EACCES, EPERM or ENOENT", "EIO");
    expect_error("lockdown max\n", SBX_ERROR_BAD_POLICY, 1, 10, "unknown lockdown level", "max");
    expect_error("job huge\n", SBX_ERROR_BAD_POLICY, 1, 5, "unknown job level", "huge");
    expect_error("audit yes\n", SBX_ERROR_BAD_POLICY, 1, 7, "on or off", "yes");
    expect_error("default-view maybe\n", SBX_ERROR_BAD_POLICY, 1, 14, "on or off", "maybe");
    expect_error("mitigation fast\n", SBX_ERROR_BAD_POLICY, 1, 12, "unknown mitigation", "fast");
    expect_error("net\n", SBX_ERROR_BAD_POLICY, 1, 4, "missing argument", "net");
    expect_error("identity 1000\n", SBX_ERROR_BAD_POLICY, 1, 14, "missing argument", NULL);
    expect_error("identity 4294967295 0\n", SBX_ERROR_BAD_POLICY, 1, 10, "bad uid", NULL);
    expect_error("identity 0 -1\n", SBX_ERROR_BAD_POLICY, 1, 12, "bad gid", "-1");
    expect_error("identity root 0\n", SBX_ERROR_BAD_POLICY, 1, 10, "bad uid", "root");
    /* the line number counts every line, blank and comment ones too */
    expect_error("# c\n\nnet none\n  \tfiles deny\n", SBX_ERROR_BAD_POLICY, 4, 14,
                 "missing argument", NULL);
}

Test(policyfile, exact_formatted_line)
{
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    cr_assert_eq(load(p, "files allow-readonly /usr/**\nfils deny /x\n", &e), SBX_ERROR_BAD_POLICY);
    cr_expect_str_eq(e.formatted, "t.policy:2:1: unknown statement (did you mean 'files'?): 'fils'");
    cr_expect_str_eq(e.file, "t.policy");
    cr_assert_eq(load(p, "limit memory 512MB\n", &e), SBX_ERROR_BAD_POLICY);
    cr_expect_str_eq(e.formatted,
                     "t.policy:1:17: bad size suffix (use bytes, or K, M, G, T): '512MB'");
    sbx_policy_unref(p);
}

Test(policyfile, pattern_errors_with_column)
{
    expect_error("files deny relative/x\n", SBX_ERROR_BAD_PATTERN, 1, 12, "absolute", "relative/x");
    expect_error("files deny /a//b\n", SBX_ERROR_BAD_PATTERN, 1, 15, "empty path component", NULL);
    expect_error("files deny /a/./b\n", SBX_ERROR_BAD_PATTERN, 1, 15, "'.'", NULL);
    expect_error("files deny /a/../b\n", SBX_ERROR_BAD_PATTERN, 1, 15, "'..'", NULL);
    expect_error("files deny /a/..\n", SBX_ERROR_BAD_PATTERN, 1, 15, "'..'", NULL);
    expect_error("files deny /a/***\n", SBX_ERROR_BAD_PATTERN, 1, 15, "'***'", NULL);
    expect_error("files deny /a\\\n", SBX_ERROR_BAD_PATTERN, 1, 14, "escapes nothing", NULL);
    expect_error("files deny /a/\n", SBX_ERROR_BAD_PATTERN, 1, 14, "trailing", NULL);
    /* a column inside an expansion points at the variable */
    expect_error("files deny ${CWD}/../x\n", SBX_ERROR_BAD_PATTERN, 1, 19, "'..'", NULL);
    /* escaped and literal wildcards are fine */
    sbx_policy *p = sbx_policy_new();
    expect_ok(p, "files deny /a/\\*/b\nfiles deny /a/**/b?c\nfiles deny /\nfiles deny /...\n");
    cr_expect_eq(p->n_rules, 4);
    sbx_policy_unref(p);
}

Test(policyfile, variables)
{
    sbx_policy *p = sbx_policy_new();
    expect_ok(p, "files allow-readonly ${HOME}/.config/app/**\n"
                 "files allow-readonly ${CWD}/**\n"
                 "files allow-any ${SCRATCH}/${UID}/*\n"
                 "files allow-query /x$y/$/{HOME}\n");
    cr_assert_eq(p->n_rules, 4);
    cr_expect_str_eq(p->rules[0].pattern, "/home/u/.config/app/**");
    cr_expect_str_eq(p->rules[1].pattern, "/work/proj/**");
    cr_expect_str_eq(p->rules[2].pattern, "/tmp/scr/1000/*");
    cr_expect_str_eq(p->rules[3].pattern, "/x$y/$/{HOME}");
    sbx_policy_unref(p);

    expect_error("files deny ${FOO}/x\n", SBX_ERROR_BAD_POLICY, 1, 12, "unknown variable", "${FOO}");
    expect_error("files deny /a/${HOME\n", SBX_ERROR_BAD_POLICY, 1, 15, "unterminated", "${HOME");
    expect_error("files deny /a/${}\n", SBX_ERROR_BAD_POLICY, 1, 15, "unknown variable", "${}");
    expect_error("files deny /a/${home}\n", SBX_ERROR_BAD_POLICY, 1, 15, "unknown variable", NULL);
    /* known but not defined by the caller */
    p = sbx_policy_new();
    sbx_policyfile_error e;
    const sbx_policy_vars partial = { .cwd = "/w" };
    const char *t = "files allow-readonly ${CWD}/**\nview ${HOME}\n";
    cr_expect_eq(sbx_policy_load_string(p, t, strlen(t), "t.policy", &partial, &e),
                 SBX_ERROR_BAD_POLICY);
    cr_expect_eq(e.line, 2);
    cr_expect_eq(e.column, 6);
    cr_expect(strstr(e.message, "not defined"));
    cr_expect_eq(sbx_policy_load_string(p, t, strlen(t), "t.policy", NULL, &e),
                 SBX_ERROR_BAD_POLICY);
    cr_expect_eq(e.line, 1);
    cr_expect_eq(p->n_rules, 0);
    sbx_policy_unref(p);
}

Test(policyfile, variable_values_cannot_widen_a_rule)
{
    /* A home directory spelled with wildcard characters is taken literally. */
    const sbx_policy_vars odd = { .home = "/home/a*b?", .cwd = "/", .scratch = "/s/", .uid = "0" };
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    const char *t = "files deny ${HOME}/**\nfiles allow-readonly ${CWD}/**\n"
                    "files allow-any ${SCRATCH}/x\nfiles allow-query ${CWD}\nview ${HOME}\n";
    cr_assert_eq(sbx_policy_load_string(p, t, strlen(t), "t", &odd, &e), 0, "%s", e.formatted);
    cr_expect_str_eq(p->rules[0].pattern, "/home/a\\*b\\?/**");
    cr_expect_str_eq(p->rules[1].pattern, "/**"); /* a "/" value does not double the slash */
    cr_expect_str_eq(p->rules[2].pattern, "/s/x"); /* trailing slash of a value dropped */
    cr_expect_str_eq(p->rules[3].pattern, "/");
    cr_expect_str_eq(p->views[0].path, "/home/a*b?"); /* a view path is not a pattern */
    sbx_policy_unref(p);
}

Test(policyfile, quoting_and_lexing)
{
    sbx_policy *p = sbx_policy_new();
    expect_ok(p, "files allow-readonly \"/srv/my files/**\"\n\"files\" deny \"/a#b\"\n"
                 "files deny /c#d\n");
    cr_assert_eq(p->n_rules, 3);
    cr_expect_str_eq(p->rules[0].pattern, "/srv/my files/**");
    cr_expect_str_eq(p->rules[1].pattern, "/a#b");
    cr_expect_str_eq(p->rules[2].pattern, "/c#d");
    sbx_policy_unref(p);
    expect_error("files deny \"/a b\n", SBX_ERROR_BAD_POLICY, 1, 12, "unterminated quoted", NULL);
    expect_error("files deny \"/a\"b\n", SBX_ERROR_BAD_POLICY, 1, 16, "after a closing quote", NULL);
    expect_error("a b c d e f g h i\n", SBX_ERROR_BAD_POLICY, 1, 17, "too many words", NULL);
    expect_error("files deny /a\x01\n", SBX_ERROR_BAD_POLICY, 1, 14, "control character", NULL);
    expect_error("files deny /a\x7f\n", SBX_ERROR_BAD_POLICY, 1, 14, "control character", NULL);
    expect_error("\rfiles deny /x\n", SBX_ERROR_BAD_POLICY, 1, 1, "control character", NULL);
    /* NUL inside the buffer */
    sbx_policy *q = sbx_policy_new();
    sbx_policyfile_error e;
    static const char nul[] = "net none\nfiles deny /a\0b\n";
    cr_expect_eq(sbx_policy_load_string(q, nul, sizeof nul - 1, "t.policy", &V, &e),
                 SBX_ERROR_BAD_POLICY);
    cr_expect_eq(e.line, 2);
    cr_expect_eq(e.column, 14);
    cr_expect(strstr(e.message, "NUL"));
    cr_expect_eq(q->net, SBX_NET_NONE);
    sbx_policy_unref(q);
    /* an over-long line */
    char *big = malloc(5000);
    memset(big, 'a', 4999);
    big[4999] = 0;
    expect_error(big, SBX_ERROR_BAD_POLICY, 1, 4097, "line too long", NULL);
    free(big);
}

Test(policyfile, nothing_applied_on_error)
{
    sbx_policy *p = sbx_policy_new();
    expect_ok(p, "files allow-readonly /usr/**\nview /opt\nlimit memory 64M\n");
    sbx_policyfile_error e;
    /* every kind of statement before the error */
    int r = load(p, "files allow-any /x/**\nview /data rw\nlimit memory 1G\nnet loopback\n"
                    "backend trap\nidentity 1 1\ndeny-errno EPERM\nlockdown interactive\n"
                    "job none\naudit on\ndefault-view off\nmitigation allow-tty\n"
                    "limit cpu 10x\n", &e);
    cr_expect_eq(r, SBX_ERROR_BAD_POLICY);
    cr_expect_eq(e.line, 13);
    cr_expect_eq(p->n_rules, 1);
    cr_expect_str_eq(p->rules[0].pattern, "/usr/**");
    cr_expect_eq(p->n_views, 1);
    cr_expect_eq(p->limits[SBX_LIMIT_MEMORY], 64ull << 20);
    cr_expect_eq(p->limits[SBX_LIMIT_CPU_SECONDS], SBX_LIMIT_UNSET);
    cr_expect_eq(p->net, SBX_NET_NONE);
    cr_expect_eq(p->backend, SBX_BACKEND_AUTO);
    cr_expect_eq(p->uid, 65534);
    cr_expect_eq(p->deny_errno, EACCES);
    cr_expect_eq(p->lockdown, SBX_LOCKDOWN_LOCKDOWN);
    cr_expect_eq(p->job, SBX_JOB_LIMITED);
    cr_expect_not(p->audit);
    cr_expect(p->default_view);
    cr_expect_eq(p->mitigations, 0);
    sbx_policy_unref(p);
}

Test(policyfile, frozen_policy_untouched)
{
    sbx_policy *p = sbx_policy_new();
    sbx_policy_freeze(p);
    sbx_policyfile_error e;
    cr_expect_eq(load(p, "files deny /x\n", &e), SBX_ERROR_FROZEN);
    cr_expect_eq(e.code, SBX_ERROR_FROZEN);
    cr_expect_neq(e.formatted[0], 0);
    cr_expect_eq(p->n_rules, 0);
    sbx_policy_unref(p);
    cr_expect_eq(sbx_policy_load_string(NULL, "", 0, NULL, NULL, NULL), -EINVAL);
    cr_expect_eq(sbx_policy_load_file(NULL, "/x", NULL, NULL), -EINVAL);
    p = sbx_policy_new();
    cr_expect_eq(sbx_policy_load_file(p, NULL, NULL, &e), -EINVAL);
    /* NULL text with zero length is an empty policy; err may be NULL */
    cr_expect_eq(sbx_policy_load_string(p, NULL, 0, NULL, NULL, NULL), 0);
    cr_expect_eq(sbx_policy_load_string(p, "fils", 4, NULL, NULL, NULL), SBX_ERROR_BAD_POLICY);
    sbx_policy_unref(p);
}

Test(policyfile, policy_full_of_rules_refuses_more_atomically)
{
    sbx_policy *p = sbx_policy_new();
    for (int i = 0; i < SBX_POLICY_MAX_RULES - 1; i++)
        cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/x"), 0);
    sbx_policyfile_error e;
    cr_expect_eq(load(p, "files deny /a\nfiles deny /b\n", &e), SBX_ERROR_TOO_LARGE);
    cr_expect_eq(p->n_rules, SBX_POLICY_MAX_RULES - 1);
    cr_expect_eq(load(p, "files deny /a\n", &e), 0);
    cr_expect_eq(p->n_rules, SBX_POLICY_MAX_RULES);
    sbx_policy_unref(p);
}

/* ---- files and includes ---- */

static char *dir;

static void mkdir_setup(void)
{
    dir = sbx_test_mkdtemp("policyfile");
    cr_assert_not_null(dir);
}

static void mkdir_teardown(void)
{
    sbx_test_rmtree(dir);
    free(dir);
}

static char *path_in(const char *name)
{
    char *p;
    cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

static void write_file(const char *name, const char *text)
{
    char *p = path_in(name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(text, f);
    fclose(f);
    free(p);
}

TestSuite(policyfile_files, .init = mkdir_setup, .fini = mkdir_teardown);

Test(policyfile_files, load_file_and_relative_include)
{
    cr_assert_eq(mkdir(path_in("sub"), 0755), 0);
    write_file("main.policy", "files allow-readonly /usr/**\ninclude sub/extra.policy\nnet loopback\n");
    write_file("sub/extra.policy", "# included\nfiles deny /etc/shadow\ninclude ../leaf.policy\n");
    write_file("leaf.policy", "limit processes 9\n");
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    char *main_path = path_in("main.policy");
    cr_assert_eq(sbx_policy_load_file(p, main_path, &V, &e), 0, "%s", e.formatted);
    cr_assert_eq(p->n_rules, 2);
    char *want;
    cr_assert_geq(asprintf(&want, "%s/sub/extra.policy:2", dir), 0);
    cr_expect_str_eq(p->rules[1].origin, want);
    cr_expect_eq(p->limits[SBX_LIMIT_PROCESSES], 9);
    cr_expect_eq(p->net, SBX_NET_LOOPBACK);
    free(want);
    free(main_path);
    sbx_policy_unref(p);
}

Test(policyfile_files, include_from_string_is_relative_to_its_name)
{
    write_file("leaf.policy", "files deny /leaf\n");
    char *name = path_in("virtual.policy");
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    const char *t = "include leaf.policy\n";
    cr_assert_eq(sbx_policy_load_string(p, t, strlen(t), name, &V, &e), 0, "%s", e.formatted);
    cr_expect_eq(p->n_rules, 1);
    free(name);
    sbx_policy_unref(p);
}

Test(policyfile_files, error_in_included_file_names_that_file)
{
    write_file("a.policy", "files deny /a\ninclude b.policy\n");
    write_file("b.policy", "\n\nlimit memory 12Q\n");
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    char *a = path_in("a.policy"), *b = path_in("b.policy");
    cr_expect_eq(sbx_policy_load_file(p, a, &V, &e), SBX_ERROR_BAD_POLICY);
    cr_expect_str_eq(e.file, b);
    cr_expect_eq(e.line, 3);
    cr_expect_eq(e.column, 16);
    cr_expect_eq(p->n_rules, 0);
    free(a);
    free(b);
    sbx_policy_unref(p);
}

Test(policyfile_files, include_cycles)
{
    write_file("self.policy", "net none\ninclude self.policy\n");
    write_file("a.policy", "include b.policy\n");
    write_file("b.policy", "files deny /b\ninclude ./c.policy\n");
    write_file("c.policy", "include a.policy\n");
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    char *self = path_in("self.policy");
    cr_expect_eq(sbx_policy_load_file(p, self, &V, &e), SBX_ERROR_BAD_POLICY);
    cr_expect(strstr(e.message, "include cycle"), "%s", e.formatted);
    cr_expect_eq(e.line, 2);
    cr_expect_eq(e.column, 9);
    char *a = path_in("a.policy"), *c = path_in("./c.policy");
    cr_expect_eq(sbx_policy_load_file(p, a, &V, &e), SBX_ERROR_BAD_POLICY);
    cr_expect(strstr(e.message, "include cycle"), "%s", e.formatted);
    cr_expect_str_eq(e.file, c);
    cr_expect_eq(p->n_rules, 0);
    /* the same file included twice, not nested, is not a cycle */
    write_file("twice.policy", "include leaf.policy\ninclude leaf.policy\n");
    write_file("leaf.policy", "files deny /leaf\n");
    char *twice = path_in("twice.policy");
    cr_expect_eq(sbx_policy_load_file(p, twice, &V, &e), 0, "%s", e.formatted);
    cr_expect_eq(p->n_rules, 2);
    free(self);
    free(a);
    free(c);
    free(twice);
    sbx_policy_unref(p);
}

Test(policyfile_files, include_fan_out_is_bounded)
{
    /* each level includes the next one ten times: 10^8 reads unbounded */
    for (int i = 0; i < 8; i++) {
        char name[32], text[400] = "";
        snprintf(name, sizeof name, "f%d.policy", i);
        for (int k = 0; k < 10; k++) {
            size_t l = strlen(text);
            snprintf(text + l, sizeof text - l, "include f%d.policy\n", i + 1);
        }
        write_file(name, text);
    }
    write_file("f8.policy", "# leaf\n");
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    char *f0 = path_in("f0.policy");
    cr_expect_eq(sbx_policy_load_file(p, f0, &V, &e), SBX_ERROR_TOO_LARGE);
    cr_expect(strstr(e.message, "too many included files"), "%s", e.formatted);
    free(f0);
    sbx_policy_unref(p);
}

Test(policyfile_files, include_cycle_through_a_symlink)
{
    write_file("a.policy", "net none\ninclude link.policy\n");
    char *a = path_in("a.policy"), *link = path_in("link.policy");
    cr_assert_eq(symlink("a.policy", link), 0);
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    cr_expect_eq(sbx_policy_load_file(p, a, &V, &e), SBX_ERROR_BAD_POLICY);
    cr_expect(strstr(e.message, "include cycle"), "%s", e.formatted);
    free(a);
    free(link);
    sbx_policy_unref(p);
}

Test(policyfile_files, include_depth_limit)
{
    /* a chain of 20 distinct files: deeper than the limit of 16 */
    for (int i = 0; i < 20; i++) {
        char name[32], text[64];
        snprintf(name, sizeof name, "d%d.policy", i);
        snprintf(text, sizeof text, "files deny /d%d\ninclude d%d.policy\n", i, i + 1);
        write_file(name, text);
    }
    write_file("d20.policy", "net none\n");
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    char *d0 = path_in("d0.policy");
    cr_expect_eq(sbx_policy_load_file(p, d0, &V, &e), SBX_ERROR_BAD_POLICY);
    cr_expect(strstr(e.message, "nested too deeply"), "%s", e.formatted);
    cr_expect_eq(p->n_rules, 0);
    /* 15 levels of include are fine */
    write_file("d15.policy", "net none\n");
    cr_expect_eq(sbx_policy_load_file(p, d0, &V, &e), 0, "%s", e.formatted);
    cr_expect_eq(p->n_rules, 15);
    free(d0);
    sbx_policy_unref(p);
}

Test(policyfile_files, unreadable_files)
{
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    char *missing = path_in("missing.policy");
    cr_expect_eq(sbx_policy_load_file(p, missing, &V, &e), -ENOENT);
    cr_expect_str_eq(e.file, missing);
    cr_expect_eq(e.line, 0);
    cr_expect(strstr(e.formatted, "cannot read policy file"), "%s", e.formatted);
    cr_expect(strstr(e.formatted, missing));
    /* a directory, a FIFO (must not block), a file over 1 MiB */
    cr_expect_eq(sbx_policy_load_file(p, dir, &V, &e), SBX_ERROR_BAD_POLICY);
    cr_expect(strstr(e.message, "directory"), "%s", e.formatted);
    char *fifo = path_in("fifo");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_expect_eq(sbx_policy_load_file(p, fifo, &V, &e), SBX_ERROR_BAD_POLICY);
    cr_expect(strstr(e.message, "not a regular file"), "%s", e.formatted);
    char *big = path_in("big.policy");
    FILE *f = fopen(big, "w");
    for (int i = 0; i < (1 << 20) / 8 + 1; i++)
        fputs("# ......\n", f);
    fclose(f);
    cr_expect_eq(sbx_policy_load_file(p, big, &V, &e), SBX_ERROR_TOO_LARGE);
    /* an include of a missing file reports the include line */
    write_file("inc.policy", "net none\ninclude nothere.policy\n");
    char *inc = path_in("inc.policy");
    cr_expect_eq(sbx_policy_load_file(p, inc, &V, &e), -ENOENT);
    cr_expect_str_eq(e.file, inc);
    cr_expect_eq(e.line, 2);
    cr_expect_eq(e.column, 9);
    cr_expect_str_eq(e.text, "nothere.policy");
    cr_expect(strstr(e.message, "cannot read included file"), "%s", e.formatted);
    write_file("inc2.policy", "include\n");
    char *inc2 = path_in("inc2.policy");
    cr_expect_eq(sbx_policy_load_file(p, inc2, &V, &e), SBX_ERROR_BAD_POLICY);
    cr_expect_eq(p->n_rules, 0);
    free(missing);
    free(fifo);
    free(big);
    free(inc);
    free(inc2);
    sbx_policy_unref(p);
}

/* ---- profiles ---- */

Test(policyfile, every_embedded_profile_parses)
{
    const char *const *names = sbx_profile_names();
    size_t n = 0;
    for (; names[n]; n++) {
        sbx_policy *p = sbx_policy_new();
        sbx_policyfile_error e;
        cr_expect_eq(sbx_policy_load_profile(p, names[n], &V, &e), 0, "%s: %s", names[n],
                     e.formatted);
        cr_expect_gt(p->n_rules, 0, "%s", names[n]);
        /* every profile keeps the secrets out */
        bool shadow = false;
        for (size_t i = 0; i < p->n_rules; i++)
            shadow |= p->rules[i].semantics == SBX_FILES_DENY &&
                      !strcmp(p->rules[i].pattern, "/etc/shadow*");
        cr_expect(shadow, "%s denies /etc/shadow*", names[n]);
        cr_expect_eq(p->net, SBX_NET_NONE, "%s", names[n]);
        char want[64];
        snprintf(want, sizeof want, "profile:%s:", names[n]);
        cr_expect(!strncmp(p->rules[0].origin, want, strlen(want)), "%s", p->rules[0].origin);
        /* the text round-trips through the string loader too */
        const char *t = sbx_profile_text(names[n]);
        cr_assert_not_null(t);
        cr_expect_eq(sbx_policy_load_string(p, t, strlen(t), names[n], &V, &e), 0);
        sbx_policy_unref(p);
    }
    cr_expect_eq(n, 3);
    cr_expect_not_null(sbx_profile_text("default"));
    cr_expect_not_null(sbx_profile_text("strict"));
    cr_expect_not_null(sbx_profile_text("learn"));
    cr_expect_null(sbx_profile_text("nope"));
    cr_expect_null(sbx_profile_text(NULL));
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    cr_expect_eq(sbx_policy_load_profile(p, "nope", &V, &e), SBX_ERROR_NOT_FOUND);
    cr_expect(strstr(e.formatted, "nope"));
    sbx_policy_unref(p);
}

Test(policyfile, default_profile_content)
{
    sbx_policy *p = sbx_policy_new();
    sbx_policyfile_error e;
    cr_assert_eq(sbx_policy_load_profile(p, "default", &V, &e), 0, "%s", e.formatted);
    bool cwd_ro = false, scratch_any = false, home_deny = false;
    for (size_t i = 0; i < p->n_rules; i++) {
        const sbx_policy_rule *r = &p->rules[i];
        cwd_ro |= r->semantics == SBX_FILES_ALLOW_READONLY && !strcmp(r->pattern, "/work/proj/**");
        scratch_any |= r->semantics == SBX_FILES_ALLOW_ANY && !strcmp(r->pattern, "/tmp/scr/**");
        home_deny |= r->semantics == SBX_FILES_DENY && !strcmp(r->pattern, "/home/u/**");
        cr_expect(r->semantics != SBX_FILES_ALLOW_ANY || !strncmp(r->pattern, "/tmp/scr", 8),
                  "only scratch is writable, not %s", r->pattern);
    }
    cr_expect(cwd_ro);
    cr_expect(scratch_any);
    cr_expect(home_deny);
    cr_expect(p->default_view);
    bool scratch_view = false;
    for (size_t i = 0; i < p->n_views; i++) {
        if (!strcmp(p->views[i].path, "/tmp/scr"))
            scratch_view = p->views[i].flags == SBX_VIEW_WRITABLE;
        else
            cr_expect_not(p->views[i].flags & SBX_VIEW_WRITABLE, "only scratch is a rw view");
    }
    cr_expect(scratch_view);
    cr_expect_neq(sbx_policy_effective_limit(p, SBX_LIMIT_MEMORY), SBX_LIMIT_UNSET);
    sbx_policy_unref(p);
}

/* ---- garbage ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

Test(policyfile, garbage_lines_never_crash_and_never_half_apply)
{
    static const char *const pieces[] = {
        "files", "view", "limit", "net", "include", "memory", "cpu", "allow-any", "deny",
        "/usr/**", "${HOME}", "${", "}", "\"", "#", " ", "\t", "\n", "512M", "0", "-1", "rw",
        "exec", "optional", "/a/../b", "***", "\\", "identity", "audit", "on", "x", "/",
        "loopback", "\r", "\x01", "99999999999999999999999", "${CWD}/**", "\"/a b\"",
        "mitigation", "backend", "notify", "default-view", "off", "job", "lockdown",
    };
    char buf[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0;
        int parts = (int)(rnd() % 12);
        for (int k = 0; k < parts; k++) {
            if (rnd() % 8 == 0) {
                if (len < sizeof buf - 1)
                    buf[len++] = (char)(rnd() % 256);
                continue;
            }
            const char *s = pieces[rnd() % (sizeof pieces / sizeof pieces[0])];
            size_t sl = strlen(s);
            if (len + sl >= sizeof buf)
                break;
            memcpy(buf + len, s, sl);
            len += sl;
        }
        sbx_policy *p = sbx_policy_new();
        cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/keep"), 0);
        sbx_policyfile_error e;
        int r = sbx_policy_load_string(p, buf, len, "g.policy", &V, &e);
        if (r < 0) {
            cr_assert_eq(p->n_rules, 1, "half applied: %.*s", (int)len, buf);
            cr_assert_eq(p->n_views, 0);
            cr_assert_neq(e.formatted[0], 0);
            cr_assert(strchr(e.formatted, '\n') == NULL);
            cr_assert(!strncmp(e.formatted, "g.policy", 8), "%s", e.formatted);
        } else {
            cr_assert_eq(r, 0);
        }
        sbx_policy_unref(p);
    }
}
