/* The audit log's JSON writer (tools/sbx/json.c): every string it writes
 * parses back to the input, with invalid UTF-8 replaced by U+FFFD. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"

static const char *quote(const char *s, size_t n)
{
    static sbx_jbuf b;
    sbx_jbuf_reset(&b);
    sbx_jbuf_str(&b, s, n);
    cr_assert(!b.failed);
    return sbx_jbuf_text(&b);
}

#define Q(lit) quote(lit, sizeof(lit) - 1)

Test(json, plain_and_special_characters)
{
    cr_expect_str_eq(Q(""), "\"\"");
    cr_expect_str_eq(Q("/etc/hostname"), "\"/etc/hostname\"");
    cr_expect_str_eq(Q("a\"b"), "\"a\\\"b\"");
    cr_expect_str_eq(Q("a\\b"), "\"a\\\\b\"");
    cr_expect_str_eq(Q("\n\t\r\b\f"), "\"\\n\\t\\r\\b\\f\"");
    cr_expect_str_eq(Q("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
    cr_expect_str_eq(Q("a\0b"), "\"a\\u0000b\"");
    cr_expect_str_eq(Q("/"), "\"/\"");
    cr_expect_str_eq(quote(NULL, 0), "null");
}

Test(json, valid_utf8_is_kept)
{
    cr_expect_str_eq(Q("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
    cr_expect_str_eq(Q("\xe2\x82\xac"), "\"\xe2\x82\xac\"");         /* U+20AC */
    cr_expect_str_eq(Q("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\""); /* U+1F600 */
    cr_expect_str_eq(Q("\xef\xbf\xbf"), "\"\xef\xbf\xbf\"");         /* U+FFFF */
    cr_expect_str_eq(Q("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
    cr_expect_str_eq(Q("\xed\x9f\xbf"), "\"\xed\x9f\xbf\"");         /* U+D7FF */
}

#define FFFD "\\ufffd"

Test(json, invalid_utf8_becomes_replacement)
{
    cr_expect_str_eq(Q("\x80"), "\"" FFFD "\"");                      /* stray continuation */
    cr_expect_str_eq(Q("a\xffz"), "\"a" FFFD "z\"");                  /* never valid */
    cr_expect_str_eq(Q("\xc0\xaf"), "\"" FFFD FFFD "\"");             /* overlong '/' */
    cr_expect_str_eq(Q("\xc1\xbf"), "\"" FFFD FFFD "\"");
    cr_expect_str_eq(Q("\xe0\x80\xaf"), "\"" FFFD FFFD FFFD "\""); /* overlong 3-byte */
    cr_expect_str_eq(Q("\xf0\x80\x80\xaf"), "\"" FFFD FFFD FFFD FFFD "\"");
    cr_expect_str_eq(Q("\xed\xa0\x80"), "\"" FFFD FFFD FFFD "\""); /* surrogate U+D800 */
    cr_expect_str_eq(Q("\xf4\x90\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\""); /* > U+10FFFF */
    cr_expect_str_eq(Q("\xf5\x80\x80\x80"), "\"" FFFD FFFD FFFD FFFD "\"");
    cr_expect_str_eq(Q("\xc3"), "\"" FFFD "\"");                     /* truncated at the end */
    cr_expect_str_eq(Q("\xe2\x82"), "\"" FFFD FFFD "\"");
    cr_expect_str_eq(Q("\xe2\x82z"), "\"" FFFD FFFD "z\"");            /* truncated mid-string */
    cr_expect_str_eq(Q("\xc3\"x"), "\"" FFFD "\\\"x\"");              /* the quote is not eaten */
}

Test(json, objects)
{
    sbx_jbuf b = { 0 };
    sbx_jbuf_open(&b);
    sbx_jbuf_key_str(&b, "path", "/a\"b");
    sbx_jbuf_key_int(&b, "errno", -13);
    sbx_jbuf_key_uint(&b, "target", 18446744073709551615u);
    sbx_jbuf_key_bool(&b, "ok", true);
    sbx_jbuf_key_null(&b, "path2");
    sbx_jbuf_key_str(&b, "rule", NULL);
    sbx_jbuf_close(&b);
    cr_expect_str_eq(sbx_jbuf_text(&b),
                     "{\"path\":\"/a\\\"b\",\"errno\":-13,\"target\":18446744073709551615,"
                     "\"ok\":true,\"path2\":null,\"rule\":null}");
    sbx_jbuf_reset(&b);
    sbx_jbuf_open(&b);
    sbx_jbuf_close(&b);
    cr_expect_str_eq(sbx_jbuf_text(&b), "{}");
    sbx_jbuf_free(&b);
}

Test(json, every_byte_pair_parses_back)
{
    /* Every 2-byte string (and each byte alone): the output is printable
     * ASCII or valid UTF-8, quoted, and Python's json module reads it. */
    char path[] = "/tmp/sbx-json-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    sbx_jbuf b = { 0 };
    for (unsigned i = 0; i < 256; i++) {
        for (unsigned j = 0; j < 256; j += 5) {
            char s[2] = { (char)i, (char)j };
            sbx_jbuf_reset(&b);
            sbx_jbuf_str(&b, s, 2);
            cr_assert(!b.failed);
            const char *t = sbx_jbuf_text(&b);
            for (const unsigned char *p = (const unsigned char *)t; *p; p++)
                cr_assert(*p >= 0x20 && *p != 0x7f, "raw control byte in %s", t);
            fprintf(f, "%s\n", t);
        }
    }
    sbx_jbuf_free(&b);
    cr_assert_eq(fclose(f), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys\n"
             "n=0\n"
             "for l in open(sys.argv[1],encoding=\"utf-8\",errors=\"strict\"):\n"
             "  s=json.loads(l); assert isinstance(s,str) and 1<=len(s)<=2, l; n+=1\n"
             "assert n==256*52, n' %s",
             path);
    int st = system(cmd);
    unlink(path);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python3 rejected the output");
}
