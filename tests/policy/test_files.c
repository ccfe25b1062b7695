/* Files semantics (docs/policy.md's Linux mapping), deny-wins, decisions
 * with origins, the broker fast path and the target pre-check. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include <sbx/error.h>
#include <sbx/policy.h>

#include "policy/compile.h"
#include "policy/engine.h"
#include "policy/format.h"
#include "subsys/files/files_policy.h"

static sbx_policy *policy_with(int semantics, const char *pattern)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_not_null(p);
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, semantics, pattern, "test:1", NULL), 0);
    return p;
}

static int decide(const sbx_policy *p, sbx_files_op op, const char *path, int flags, int amode, bool is_dir)
{
    sbx_files_request req = { .op = op, .path = path, .open_flags = flags, .access_mode = amode, .is_dir = is_dir };
    sbx_decision d;
    int r = sbx_policy_check_files(p, &req, &d);
    cr_assert_eq(r, 0, "check %s %s: %d %s", sbx_files_op_name(op), path, r, d.reason);
    return d.action;
}

#define ALLOW SBX_ACTION_ASK_BROKER
#define DENY SBX_ACTION_DENY_ACCESS

Test(files, readonly_admits_only_reading_opens_and_queries)
{
    sbx_policy *p = policy_with(SBX_FILES_ALLOW_READONLY, "/data/**");
    const char *f = "/data/a/b";
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_RDONLY, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_RDONLY | O_DIRECTORY, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_PATH, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_WRONLY, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_RDWR, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_ACCMODE, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_RDONLY | O_CREAT, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_RDONLY | O_TRUNC, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_RDONLY | O_APPEND, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, "/data", O_RDWR | O_TMPFILE, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, f, O_PATH | O_WRONLY, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_STAT, f, 0, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_ACCESS, f, 0, R_OK, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_READLINK, f, 0, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_RENAME_SRC, f, 0, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_RENAME_DST, f, 0, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_UNLINK, f, 0, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_MKDIR, f, 0, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_RMDIR, f, 0, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, "/datax/a", O_RDONLY, 0, false), DENY);
    sbx_policy_unref(p);
}

Test(files, query_admits_stat_access_readlink_only)
{
    sbx_policy *p = policy_with(SBX_FILES_ALLOW_QUERY, "/q/*");
    cr_expect_eq(decide(p, SBX_FILES_OP_STAT, "/q/x", 0, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_ACCESS, "/q/x", 0, W_OK, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_READLINK, "/q/x", 0, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_STAT, "/q/x/y", 0, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, "/q/x", O_RDONLY, 0, false), DENY);
    for (int op = SBX_FILES_OP_RENAME_SRC; op < SBX_FILES_OP_COUNT_; op++)
        cr_expect_eq(decide(p, (sbx_files_op)op, "/q/x", 0, 0, true), DENY, "%s", sbx_files_op_name((sbx_files_op)op));
    sbx_policy_unref(p);
}

Test(files, dir_any_admits_directory_operations_only)
{
    sbx_policy *p = policy_with(SBX_FILES_ALLOW_DIR_ANY, "/out/**");
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, "/out/d", O_RDONLY | O_DIRECTORY, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, "/out/d", O_RDONLY, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, "/out/d", O_RDONLY | O_DIRECTORY | O_CREAT, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, "/out/d", O_RDWR | O_TMPFILE, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_MKDIR, "/out/d", 0, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_RMDIR, "/out/d", 0, 0, false), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_UNLINK, "/out/f", 0, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_STAT, "/out/d", 0, 0, true), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_STAT, "/out/f", 0, 0, false), DENY);
    cr_expect_eq(decide(p, SBX_FILES_OP_RENAME_SRC, "/out/d", 0, 0, true), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_RENAME_DST, "/out/e", 0, 0, true), ALLOW);
    cr_expect_eq(decide(p, SBX_FILES_OP_RENAME_SRC, "/out/f", 0, 0, false), DENY);
    sbx_policy_unref(p);
}

Test(files, any_admits_everything_under_the_pattern)
{
    sbx_policy *p = policy_with(SBX_FILES_ALLOW_ANY, "/w/**");
    for (int op = 1; op < SBX_FILES_OP_COUNT_; op++) {
        cr_expect_eq(decide(p, (sbx_files_op)op, "/w/x", O_RDWR | O_CREAT | O_TRUNC, W_OK, false), ALLOW);
        cr_expect_eq(decide(p, (sbx_files_op)op, "/v/x", O_RDONLY, 0, false), DENY);
    }
    sbx_policy_unref(p);
}

Test(files, deny_wins_over_every_allow_whatever_the_order)
{
    for (int order = 0; order < 2; order++) {
        sbx_policy *p = sbx_policy_new();
        if (order == 0)
            cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/home/**", "allow", NULL), 0);
        cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/home/*/.ssh/**", "deny", NULL), 0);
        if (order == 1)
            cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/home/**", "allow", NULL), 0);
        sbx_files_request req = { .op = SBX_FILES_OP_OPEN, .path = "/home/alice/.ssh/id_ed25519" };
        sbx_decision d;
        cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
        cr_expect_eq(d.action, DENY, "order %d", order);
        cr_expect_str_eq(d.origin, "deny");
        cr_expect_str_eq(d.pattern, "/home/*/.ssh/**");
        cr_expect_eq(d.semantics, SBX_FILES_DENY);
        cr_expect_eq(d.rule, order == 0 ? 1 : 0);
        req.path = "/home/alice/notes";
        cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
        cr_expect_eq(d.action, ALLOW);
        cr_expect_str_eq(d.origin, "allow");
        /* deeper .ssh is not covered by "*": the allow decides */
        req.path = "/home/alice/x/.ssh/k";
        cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
        cr_expect_eq(d.action, ALLOW);
        for (int op = 1; op < SBX_FILES_OP_COUNT_; op++) {
            req = (sbx_files_request){ .op = (sbx_files_op)op, .path = "/home/bob/.ssh" "/known_hosts" };
            cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
            cr_expect_eq(d.action, DENY, "op %s", sbx_files_op_name((sbx_files_op)op));
        }
        sbx_policy_unref(p);
    }
}

Test(files, first_admitting_allow_explains_and_no_rule_is_deny)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_QUERY, "/p/**", "q", NULL), 0);
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, "/p/**", "ro", NULL), 0);
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/p/w/**", "rw", NULL), 0);
    sbx_decision d;
    sbx_files_request req = { .op = SBX_FILES_OP_STAT, .path = "/p/w/x" };
    cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
    cr_expect_str_eq(d.origin, "q", "the first admitting rule in add order");
    req = (sbx_files_request){ .op = SBX_FILES_OP_OPEN, .path = "/p/w/x", .open_flags = O_RDONLY };
    cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
    cr_expect_str_eq(d.origin, "ro", "QUERY does not admit open: READONLY decides");
    req.open_flags = O_WRONLY;
    cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
    cr_expect_str_eq(d.origin, "rw");
    cr_expect_eq(d.action, ALLOW);
    req.path = "/p/x";
    cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
    cr_expect_eq(d.action, DENY);
    cr_expect_eq(d.rule, -1);
    cr_expect_str_eq(d.reason, "no rule matched");
    cr_expect_str_eq(d.origin, "");
    sbx_policy_unref(p);

    p = sbx_policy_new(); /* no rules at all */
    req = (sbx_files_request){ .op = SBX_FILES_OP_STAT, .path = "/" };
    cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
    cr_expect_eq(d.action, DENY);
    cr_expect_str_eq(d.reason, "no rule matched");
    sbx_policy_unref(p);
}

Test(files, non_canonical_paths_and_bad_requests_are_refused)
{
    sbx_policy *p = policy_with(SBX_FILES_ALLOW_ANY, "/**");
    const char *bad[] = { "", "rel/x", "/a/../b", "/a/./b", "//a", "/a//b", "/a/", "/..", "/." };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sbx_files_request req = { .op = SBX_FILES_OP_STAT, .path = bad[i] };
        sbx_decision d;
        cr_expect_eq(sbx_policy_check_files(p, &req, &d), -EINVAL, "'%s'", bad[i]);
        cr_expect_eq(d.action, DENY);
        sbx_files_verdict v;
        void *buf;
        size_t size;
        cr_assert_eq(sbx_policy_compile(p, &buf, &size, NULL), 0);
        cr_expect_eq(sbx_files_policy_eval(buf, size, &req, &v), -EINVAL);
        cr_expect_eq(v.action, DENY);
        free(buf);
    }
    sbx_files_request req = { .op = (sbx_files_op)77, .path = "/x" };
    sbx_decision d;
    cr_expect_eq(sbx_policy_check_files(p, &req, &d), -EINVAL);
    cr_expect_eq(sbx_policy_check_files(NULL, &req, &d), -EINVAL);
    cr_expect_eq(sbx_policy_check_files(p, NULL, &d), -EINVAL);
    cr_expect_eq(sbx_policy_check_files(p, &req, NULL), -EINVAL);
    cr_expect(sbx_files_path_is_canonical("/", 1));
    cr_expect(sbx_files_path_is_canonical("/a/.b/..c", 9));
    cr_expect_not(sbx_files_path_is_canonical("/a\0b", 4));
    sbx_policy_unref(p);
}

Test(files, add_rule_rejects_malformed_patterns_with_column)
{
    sbx_policy *p = sbx_policy_new();
    sbx_policy_error err;
    cr_expect_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/a/***", "x:3", &err),
                 SBX_ERROR_BAD_PATTERN);
    cr_expect_eq(err.column, 6);
    cr_expect(strstr(err.message, "column 6") != NULL, "%s", err.message);
    cr_expect_eq(sbx_policy_validate_pattern("/a//b", &err), SBX_ERROR_BAD_PATTERN);
    cr_expect_eq(err.column, 4);
    cr_expect_eq(sbx_policy_validate_pattern("/a/b", &err), 0);
    cr_expect_eq(err.code, 0);
    sbx_policy_unref(p);
}

Test(files, frozen_policy_refuses_rules_but_still_decides)
{
    sbx_policy *p = policy_with(SBX_FILES_ALLOW_READONLY, "/usr/**");
    sbx_decision d;
    sbx_files_request req = { .op = SBX_FILES_OP_OPEN, .path = "/usr/bin/ls" };
    cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
    cr_expect_eq(d.action, ALLOW);
    /* the cache follows rules added before freezing */
    cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/usr/bin/*"), 0);
    cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
    cr_expect_eq(d.action, DENY);
    cr_assert_eq(sbx_policy_freeze(p), 0);
    cr_expect_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/usr/bin/ls"), SBX_ERROR_FROZEN);
    cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
    cr_expect_eq(d.action, DENY);
    sbx_policy_unref(p);
}

Test(files, compiled_buffer_validates_and_fast_path_matches_check)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, "/usr/**", "sys", NULL), 0);
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, "/tmp/out/**", "out", NULL), 0);
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/usr/secret*", "no", NULL), 0);
    void *buf;
    size_t size;
    sbx_policy_error err;
    cr_assert_eq(sbx_policy_compile(p, &buf, &size, &err), 0);
    cr_assert_eq(sbx_pol_validate(buf, size, NULL), 0);
    struct {
        sbx_files_op op;
        const char *path;
        int flags;
        int want;
        const char *origin;
    } cases[] = {
        { SBX_FILES_OP_OPEN, "/usr/lib/libc.so.6", O_RDONLY | O_CLOEXEC, ALLOW, "sys" },
        { SBX_FILES_OP_OPEN, "/usr/lib/libc.so.6", O_RDWR, DENY, NULL },
        { SBX_FILES_OP_OPEN, "/usr/secret.key", O_RDONLY, DENY, "no" },
        { SBX_FILES_OP_UNLINK, "/tmp/out/a", 0, ALLOW, "out" },
        { SBX_FILES_OP_UNLINK, "/tmp/a", 0, DENY, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sbx_files_request req = { .op = cases[i].op, .path = cases[i].path, .open_flags = cases[i].flags };
        sbx_files_verdict v;
        cr_assert_eq(sbx_files_policy_eval(buf, size, &req, &v), 0);
        cr_expect_eq(v.action, cases[i].want, "case %zu", i);
        if (cases[i].origin) {
            cr_expect(v.matched);
            cr_expect_eq(v.origin_len, strlen(cases[i].origin));
            cr_expect_eq(memcmp(v.origin, cases[i].origin, v.origin_len), 0);
        } else {
            cr_expect_not(v.matched && v.action == ALLOW);
        }
        sbx_decision d;
        cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
        cr_expect_eq(d.action, v.action);
        cr_expect_eq(sbx_files_policy_precheck(buf, size, &req), cases[i].want == ALLOW);
    }
    /* a forged copy (the target's) cannot crash the pre-check; it can only
     * make the target ask the broker, which decides from its own copy */
    unsigned char *forged = malloc(size);
    memcpy(forged, buf, size);
    memset(forged + size / 2, 0xff, size / 4);
    sbx_files_request req = { .op = SBX_FILES_OP_OPEN, .path = "/usr/lib/x", .open_flags = O_RDONLY };
    (void)sbx_files_policy_precheck(forged, size, &req);
    sbx_files_verdict v;
    cr_expect_eq(sbx_files_policy_eval(buf, size, &req, &v), 0, "the private copy is unaffected");
    cr_expect_eq(v.action, ALLOW);
    free(forged);
    free(buf);
    sbx_policy_unref(p);
}

Test(files, op_names_round_trip)
{
    for (int op = 1; op < SBX_FILES_OP_COUNT_; op++)
        cr_expect_eq(sbx_files_op_from_name(sbx_files_op_name((sbx_files_op)op)), op);
    cr_expect_eq(sbx_files_op_from_name("rename"), SBX_FILES_OP_RENAME_SRC);
    cr_expect_eq(sbx_files_op_from_name("chmod"), -EINVAL);
    cr_expect_str_eq(sbx_files_op_name((sbx_files_op)0), "?");
    cr_expect_str_eq(sbx_action_name(SBX_ACTION_SIGNAL_ALARM), "SIGNAL_ALARM");
    cr_expect_str_eq(sbx_action_name(99), "?");
}

/* ---- concurrency ---- */

#include <pthread.h>

typedef struct checker_arg {
    const sbx_policy *p;
    int bad;
} checker_arg;

static void *checker(void *vp)
{
    checker_arg *a = vp;
    for (int i = 0; i < 2000; i++) {
        sbx_files_request req = { .op = SBX_FILES_OP_OPEN, .path = (i & 1) ? "/usr/lib/x" : "/home/a/.ssh/k",
                                  .open_flags = O_RDONLY };
        sbx_decision d;
        if (sbx_policy_check_files(a->p, &req, &d) != 0 || d.action != ((i & 1) ? ALLOW : DENY))
            a->bad++;
    }
    return NULL;
}

Test(files, check_files_is_thread_safe_on_a_frozen_policy)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, "/usr/**"), 0);
    cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/home/*/.ssh/**"), 0);
    cr_assert_eq(sbx_policy_freeze(p), 0);
    pthread_t t[4];
    checker_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (checker_arg){ .p = p };
        cr_assert_eq(pthread_create(&t[i], NULL, checker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(a[i].bad, 0, "thread %d", i);
    }
    sbx_policy_unref(p);
}

typedef struct scribbler_arg {
    unsigned char *buf;
    size_t size;
    atomic_bool stop;
} scribbler_arg;

static void *scribbler(void *vp)
{
    scribbler_arg *a = vp;
    uint64_t x = 0x1234567;
    while (!atomic_load_explicit(&a->stop, memory_order_relaxed)) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* past the header, so the evaluator keeps going deep */
        size_t lo = sizeof(sbx_pol_header);
        ((volatile unsigned char *)a->buf)[lo + x % (a->size - lo)] = (unsigned char)(x >> 40);
    }
    return NULL;
}

/* The target's copy changing under the evaluator (a hostile thread in the
 * target writing to memory it can write): evaluation must stay in bounds
 * and terminate. (The broker never evaluates shared memory.) */
Test(files, evaluation_survives_a_buffer_scribbled_concurrently, .timeout = 60)
{
    sbx_policy *p = sbx_policy_new();
    for (int i = 0; i < 40; i++) {
        char pat[64];
        snprintf(pat, sizeof pat, "/srv/d%d/**", i);
        cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, 1 + i % 5, pat), 0);
    }
    void *buf;
    size_t size;
    cr_assert_eq(sbx_policy_compile(p, &buf, &size, NULL), 0);
    scribbler_arg a = { .buf = buf, .size = size };
    atomic_init(&a.stop, false);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, scribbler, &a), 0);
    for (int i = 0; i < 20000; i++) {
        char path[64];
        snprintf(path, sizeof path, "/srv/d%d/x/y", i % 50);
        sbx_files_request req = { .op = (sbx_files_op)(1 + i % 9), .path = path, .open_flags = i & 3 };
        sbx_files_verdict v;
        (void)sbx_files_policy_eval(buf, size, &req, &v);
    }
    atomic_store(&a.stop, true);
    pthread_join(t, NULL);
    free(buf);
    sbx_policy_unref(p);
}

Test(files, large_policy_index_and_scan_agree, .timeout = 60)
{
    sbx_policy *p = sbx_policy_new();
    for (int i = 0; i < 3000; i++) {
        char pat[96];
        switch (i % 4) {
        case 0: snprintf(pat, sizeof pat, "/home/u%d/**", i); break;
        case 1: snprintf(pat, sizeof pat, "/srv/*/d%d/*.txt", i); break;
        case 2: snprintf(pat, sizeof pat, "/etc/app%d.conf", i); break;
        default: snprintf(pat, sizeof pat, "/home/u%d/.ssh/**", i - 3); break;
        }
        cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, i % 4 == 3 ? SBX_FILES_DENY : 1 + i % 4, pat), 0);
    }
    void *buf;
    size_t size;
    cr_assert_eq(sbx_policy_compile(p, &buf, &size, NULL), 0);
    cr_assert_eq(sbx_pol_validate(buf, size, NULL), 0);
    for (int i = 0; i < 3000; i += 7) {
        char path[96];
        snprintf(path, sizeof path, i % 2 ? "/home/u%d/.ssh/id" : "/srv/x/d%d/a.txt", i);
        for (int op = 1; op < SBX_FILES_OP_COUNT_; op++) {
            sbx_files_request req = { .op = (sbx_files_op)op, .path = path };
            sbx_pol_param prm[SBX_FILES_P_COUNT];
            sbx_files_policy_params(&req, prm);
            sbx_pol_result a = sbx_pol_evaluate(buf, size, (unsigned)op, prm, SBX_FILES_P_COUNT, 0);
            sbx_pol_result l = sbx_pol_evaluate(buf, size, (unsigned)op, prm, SBX_FILES_P_COUNT, SBX_EVAL_LINEAR);
            cr_assert_eq(a.status, l.status);
            cr_assert_eq(a.rule, l.rule, "%s", path);
            /* literal directories narrow the candidates; "/srv/" then a
             * wildcard cannot (all 750 such rules share the key "/srv/") */
            if (i % 2)
                cr_assert_lt(a.evaluated, 10, "the index keeps candidates few (%u)", a.evaluated);
            cr_assert_leq(a.evaluated, l.evaluated);
        }
    }
    for (int j = 0; j < 3000; j += 4 * 37) {
        /* u<j> has ALLOW_ANY on its home and DENY on its .ssh */
        char path[96];
        snprintf(path, sizeof path, "/home/u%d/.ssh/id", j);
        cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, path, O_RDWR, 0, false), DENY, "%s", path);
        snprintf(path, sizeof path, "/home/u%d/src/a.c", j);
        cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, path, O_RDWR, 0, false), ALLOW, "%s", path);
        snprintf(path, sizeof path, "/home/u%d/src/a.c", j + 1);
        cr_expect_eq(decide(p, SBX_FILES_OP_OPEN, path, O_RDWR, 0, false), DENY, "%s", path);
    }
    free(buf);
    sbx_policy_unref(p);
}

Test(files, request_from_name_for_sbx_check)
{
    sbx_policy *p = policy_with(SBX_FILES_ALLOW_READONLY, "/usr/**");
    struct {
        const char *name;
        int want;
    } cases[] = { { "open", ALLOW }, { "read", ALLOW }, { "opendir", ALLOW }, { "stat", ALLOW },
                  { "access", ALLOW }, { "readlink", ALLOW }, { "write", DENY }, { "readwrite", DENY },
                  { "create", DENY }, { "truncate", DENY }, { "append", DENY }, { "tmpfile", DENY },
                  { "rename", DENY }, { "rename-dst", DENY }, { "mkdir", DENY }, { "unlink", DENY },
                  { "rmdir", DENY } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sbx_files_request req;
        cr_assert_eq(sbx_files_request_from_name(cases[i].name, "/usr/share/x", &req), 0, "%s", cases[i].name);
        sbx_decision d;
        cr_assert_eq(sbx_policy_check_files(p, &req, &d), 0);
        cr_expect_eq(d.action, cases[i].want, "%s: %s", cases[i].name, d.reason);
    }
    sbx_files_request req;
    cr_expect_eq(sbx_files_request_from_name("chown", "/x", &req), -EINVAL);
    cr_expect_eq(sbx_files_request_from_name(NULL, "/x", &req), -EINVAL);
    sbx_policy_unref(p);
}

Test(files, precheck_never_refuses_what_the_broker_may_allow)
{
    sbx_policy *p = policy_with(SBX_FILES_ALLOW_DIR_ANY, "/out/**");
    void *buf;
    size_t size;
    cr_assert_eq(sbx_policy_compile(p, &buf, &size, NULL), 0);
    /* the target does not know /out/d is a directory: it must still ask */
    sbx_files_request req = { .op = SBX_FILES_OP_STAT, .path = "/out/d", .is_dir = false };
    cr_expect(sbx_files_policy_precheck(buf, size, &req));
    req.op = SBX_FILES_OP_RENAME_SRC;
    cr_expect(sbx_files_policy_precheck(buf, size, &req));
    /* but what no IS_DIR value admits fails fast */
    req.op = SBX_FILES_OP_UNLINK;
    cr_expect_not(sbx_files_policy_precheck(buf, size, &req));
    req = (sbx_files_request){ .op = SBX_FILES_OP_OPEN, .path = "/out/f", .open_flags = O_RDONLY };
    cr_expect_not(sbx_files_policy_precheck(buf, size, &req));
    req.path = "/elsewhere";
    req.op = SBX_FILES_OP_STAT;
    cr_expect_not(sbx_files_policy_precheck(buf, size, &req));
    free(buf);
    sbx_policy_unref(p);
}

/* Position independence: the bytes decide the same wherever they are
 * mapped (a shared section lands at a different address in the target). */
Test(files, compiled_buffer_is_position_independent)
{
    sbx_policy *p = sbx_policy_new();
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_READONLY, "/usr/**", "u", NULL), 0);
    cr_assert_eq(sbx_policy_add_rule_ex(p, SBX_SUBSYS_FILES, SBX_FILES_DENY, "/usr/*/secret", "s", NULL), 0);
    for (int i = 0; i < 10; i++) {
        char pat[32];
        snprintf(pat, sizeof pat, "/srv/%d/**", i);
        cr_assert_eq(sbx_policy_add_rule(p, SBX_SUBSYS_FILES, SBX_FILES_ALLOW_ANY, pat), 0);
    }
    void *buf;
    size_t size;
    cr_assert_eq(sbx_policy_compile(p, &buf, &size, NULL), 0);
    const char *paths[] = { "/usr/lib/x", "/usr/lib/secret", "/srv/3/a/b", "/srv/33/a", "/etc" };
    int want[5];
    for (int k = 0; k < 5; k++) {
        sbx_files_request req = { .op = SBX_FILES_OP_OPEN, .path = paths[k], .open_flags = O_RDONLY };
        sbx_files_verdict v;
        cr_assert_eq(sbx_files_policy_eval(buf, size, &req, &v), 0);
        want[k] = v.action;
    }
    cr_expect_eq(want[0], ALLOW);
    cr_expect_eq(want[1], DENY);
    cr_expect_eq(want[2], ALLOW);
    cr_expect_eq(want[4], DENY);
    /* move it: a fresh mapping at another address, the original unmapped */
    size_t area_size = (size + 4096 + 4095) / 4096 * 4096; /* aligned_alloc wants a multiple */
    unsigned char *area = aligned_alloc(4096, area_size);
    memset(area, 0x5a, 4096);
    memcpy(area + 4096, buf, size);
    memset(buf, 0, size);
    free(buf);
    cr_assert_eq(sbx_pol_validate(area + 4096, size, NULL), 0);
    for (int k = 0; k < 5; k++) {
        sbx_files_request req = { .op = SBX_FILES_OP_OPEN, .path = paths[k], .open_flags = O_RDONLY };
        sbx_files_verdict v;
        cr_assert_eq(sbx_files_policy_eval(area + 4096, size, &req, &v), 0);
        cr_expect_eq(v.action, want[k], "%s", paths[k]);
        if (k == 1)
            cr_expect(v.origin_len == 1 && v.origin[0] == 's', "origin read from the moved copy");
    }
    free(area);
    sbx_policy_unref(p);
}
