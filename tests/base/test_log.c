#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

struct captured {
    int count;
    sbx_log_level level;
    char msg[2048];
};

static void capture(sbx_log_level level, const char *msg, void *user)
{
    struct captured *c = user;
    c->count++;
    c->level = level;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

Test(log, handler_receives_formatted_message_and_level_filters)
{
    struct captured c = { 0 };
    sbx_log_set_handler(capture, &c);
    sbx_log_set_level(SBX_LOG_INFO);
    sbx_info("opened %s fd=%d", "/x", 5);
    cr_expect_eq(c.count, 1);
    cr_expect_eq(c.level, SBX_LOG_INFO);
    cr_expect_str_eq(c.msg, "opened /x fd=5");
    sbx_debug("dropped");
    cr_expect_eq(c.count, 1, "debug message passed an info filter");
    sbx_log_set_level(SBX_LOG_ERROR);
    sbx_warn("dropped too");
    cr_expect_eq(c.count, 1);
    sbx_error("kept");
    cr_expect_eq(c.count, 2);
    sbx_log_set_handler(NULL, NULL);
}

Test(log, long_messages_are_not_truncated)
{
    struct captured c = { 0 };
    char big[1500];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    sbx_log_set_handler(capture, &c);
    sbx_error("%s!", big);
    cr_expect_eq(strlen(c.msg), sizeof big);
    sbx_log_set_handler(NULL, NULL);
}

Test(log, keeps_errno)
{
    struct captured c = { 0 };
    sbx_log_set_handler(capture, &c);
    errno = EXDEV;
    sbx_error("x");
    cr_expect_eq(errno, EXDEV);
    sbx_log_set_handler(NULL, NULL);
}

Test(log, level_clamped)
{
    sbx_log_set_level((sbx_log_level)99);
    cr_expect_eq(sbx_log_get_level(), SBX_LOG_DEBUG);
    sbx_log_set_level((sbx_log_level)-3);
    cr_expect_eq(sbx_log_get_level(), SBX_LOG_ERROR);
}

/* Through a plain function pointer the compiler's printf checking does not
 * apply, so the tests can hand the formatter what an attacker-shaped string
 * would look like. */
static size_t (*volatile unchecked_format)(char *, size_t, const char *, ...) = sbx_safe_format;

/* The safe formatter must agree with printf on everything it supports. */
Test(safe_format, matches_printf_on_supported_conversions)
{
    char a[256], b[256];
    sbx_safe_format(a, sizeof a, "%s|%d|%i|%u|%x|%ld|%lu|%lld|%llu|%zu|%zd|%c|%%",
                    "str", -42, INT_MIN, 4000000000u, 0xdeadbeefu, LONG_MIN, ULONG_MAX,
                    LLONG_MIN, ULLONG_MAX, (size_t)SIZE_MAX, (ssize_t)-7, 'Q');
    snprintf(b, sizeof b, "%s|%d|%i|%u|%x|%ld|%lu|%lld|%llu|%zu|%zd|%c|%%",
             "str", -42, INT_MIN, 4000000000u, 0xdeadbeefu, LONG_MIN, ULONG_MAX,
             LLONG_MIN, ULLONG_MAX, (size_t)SIZE_MAX, (ssize_t)-7, 'Q');
    cr_expect_str_eq(a, b);
    sbx_safe_format(a, sizeof a, "%d %x %u", 0, 0u, 0u);
    cr_expect_str_eq(a, "0 0 0");
    sbx_safe_format(a, sizeof a, "%p", (void *)0x1234);
    cr_expect_str_eq(a, "0x1234");
    unchecked_format(a, sizeof a, "%s", (const char *)NULL);
    cr_expect_str_eq(a, "(null)");
}

Test(safe_format, truncates_without_overrun)
{
    char buf[8];
    memset(buf, 'Z', sizeof buf);
    size_t n = sbx_safe_format(buf, 5, "%s", "abcdefgh");
    cr_expect_eq(n, 4);
    cr_expect_str_eq(buf, "abcd");
    cr_expect_eq(buf[5], 'Z', "wrote past the given size");
    cr_expect_eq(sbx_safe_format(buf, 0, "abc"), 0);
    cr_expect_eq(buf[0], 'a');
    cr_expect_eq(sbx_safe_format(buf, 1, "abc"), 0);
    cr_expect_eq(buf[0], '\0');
}

Test(safe_format, unknown_conversions_copied_not_interpreted)
{
    char buf[64];
    /* %n and %f must never be acted on: they are copied as text, and the
     * argument list is not advanced for them. */
    unchecked_format(buf, sizeof buf, "a%nb%fc%d", 5);
    cr_expect_str_eq(buf, "a%nb%fc5");
    unchecked_format(buf, sizeof buf, "trailing %");
    cr_expect_str_eq(buf, "trailing %");
}

Test(safe_log, writes_one_line_to_fd)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    sbx_safe_dprintf(p[1], "step %s failed: %d", "uid_map", -13);
    close(p[1]);
    char buf[128] = { 0 };
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    cr_expect_eq(n, (ssize_t)strlen("step uid_map failed: -13\n"));
    cr_expect_str_eq(buf, "step uid_map failed: -13\n");
    close(p[0]);
}

Test(safe_log, long_line_is_capped)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    char big[2000];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = 0;
    sbx_safe_dprintf(p[1], "%s", big);
    close(p[1]);
    char buf[4096];
    ssize_t n = read(p[0], buf, sizeof buf);
    cr_expect_eq(n, SBX_SAFE_LOG_MAX, "got %zd", n);
    cr_expect_eq(buf[n - 1], '\n');
    close(p[0]);
}

Test(safe_log, respects_level_on_stderr)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    int saved = dup(2);
    dup2(p[1], 2);
    sbx_log_set_level(SBX_LOG_WARNING);
    sbx_safe_log(SBX_LOG_DEBUG, "hidden");
    sbx_safe_log(SBX_LOG_ERROR, "shown %d", 1);
    dup2(saved, 2);
    close(saved);
    close(p[1]);
    char buf[128] = { 0 };
    cr_expect_gt(read(p[0], buf, sizeof buf - 1), 0);
    cr_expect_str_eq(buf, "sbx: error: shown 1\n");
    close(p[0]);
}
