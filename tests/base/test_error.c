#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <sbx/error.h>

Test(error, success_and_errno_ranges)
{
    cr_expect_str_eq(sbx_strerror(0), "success");
    cr_expect_str_eq(sbx_error_name(0), "SBX_OK");
    cr_expect_str_eq(sbx_strerror(-ENOENT), "No such file or directory");
    cr_expect_str_eq(sbx_error_name(-ENOENT), "ENOENT");
    cr_expect_str_eq(sbx_error_name(-EACCES), "EACCES");
}

Test(error, every_sbx_code_has_name_and_text)
{
    for (int c = SBX_ERROR_GENERIC; c > SBX_ERROR_LAST_; c--) {
        const char *n = sbx_error_name(c);
        cr_expect(strncmp(n, "SBX_ERROR_", 10) == 0, "code %d has name %s", c, n);
        cr_expect_str_neq(sbx_strerror(c), "unknown error", "code %d", c);
    }
    cr_expect_str_eq(sbx_error_name(SBX_ERROR_CHANNEL_ERROR), "SBX_ERROR_CHANNEL_ERROR");
    cr_expect_str_eq(sbx_error_name(SBX_ERROR_INVALID_IPC), "SBX_ERROR_INVALID_IPC");
}

Test(error, unknown_codes_never_null)
{
    const int odd[] = { 1, 42, -5000, -9999, SBX_ERROR_LAST_, -20000, -2147483647 - 1, 2147483647 };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        cr_expect_not_null(sbx_strerror(odd[i]));
        cr_expect_str_eq(sbx_strerror(odd[i]), "unknown error", "code %d", odd[i]);
        cr_expect_str_eq(sbx_error_name(odd[i]), "?", "code %d", odd[i]);
    }
}

Test(error, ranges_do_not_overlap)
{
    /* sbx's own codes must lie outside anything the kernel can return. */
    cr_expect_lt(SBX_ERROR_GENERIC, -4095);
}
