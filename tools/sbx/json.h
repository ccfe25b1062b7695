/* sbx command — a tiny JSON writer for the audit log (docs/audit-log.md).
 * By hand, no library: a growable buffer, quoted strings with every byte a
 * parser could choke on escaped. Unit tested in tests/cli/test_json.c. */
#ifndef SBX_TOOL_JSON_H
#define SBX_TOOL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sbx_jbuf {
    char *p;      /* NUL-terminated when len > 0 or after sbx_jbuf_text */
    size_t len, cap;
    bool failed;  /* an allocation failed: the text is incomplete, do not write it */
} sbx_jbuf;

/* Zero-initialise, or call sbx_jbuf_reset to reuse. sbx_jbuf_free frees. */
void sbx_jbuf_reset(sbx_jbuf *b);
void sbx_jbuf_free(sbx_jbuf *b);
/* The text so far ("" when empty). Valid until the next append. */
const char *sbx_jbuf_text(sbx_jbuf *b);

void sbx_jbuf_raw(sbx_jbuf *b, const char *s, size_t n);
/* A JSON string: `"` + s[0..n) escaped + `"`. Quotes, backslashes and
 * control characters are escaped (\n \t \r \b \f, else \u00XX; DEL as
 * \u007f); valid UTF-8 is kept as it is; each byte that does not start a
 * valid UTF-8 sequence (stray continuation, overlong form, surrogate, code
 * point above U+10FFFF, truncated sequence) becomes \ufffd. NULL gives
 * null. */
void sbx_jbuf_str(sbx_jbuf *b, const char *s, size_t n);
void sbx_jbuf_cstr(sbx_jbuf *b, const char *s);

/* Object helpers: `"key":` after a ',' when needed. Start an object with
 * sbx_jbuf_open, end it with sbx_jbuf_close. Keys are written as given
 * (callers pass literals). */
void sbx_jbuf_open(sbx_jbuf *b);
void sbx_jbuf_close(sbx_jbuf *b);
void sbx_jbuf_key_str(sbx_jbuf *b, const char *key, const char *value);
void sbx_jbuf_key_int(sbx_jbuf *b, const char *key, int64_t value);
void sbx_jbuf_key_uint(sbx_jbuf *b, const char *key, uint64_t value);
void sbx_jbuf_key_bool(sbx_jbuf *b, const char *key, bool value);
void sbx_jbuf_key_null(sbx_jbuf *b, const char *key);

#endif
