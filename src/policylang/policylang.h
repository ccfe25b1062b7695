/* sbx internal — the policy language's value parsers and pattern checker,
 * shared by the policy-file parser and the sbx command line (--memory 512M,
 * --allow-read PATTERN), so both accept exactly the same spellings. */
#ifndef SBX_POLICYLANG_H
#define SBX_POLICYLANG_H

#include <stddef.h>
#include <stdint.h>

/* Each parser reads the whole NUL-terminated string `s`. On success it
 * stores the value and returns 0. On failure it returns -EINVAL (or
 * -ERANGE on overflow), sets *why to a static one-line message and *off to
 * the 0-based offset of the first offending character (both may be NULL). */

/* A size in bytes: digits with an optional binary suffix K, M, G or T
 * (either case); zero is rejected. */
int sbx_policylang_parse_size(const char *s, uint64_t *out, const char **why, size_t *off);

/* A CPU duration in seconds: digits with an optional suffix s, m or h;
 * zero is rejected. */
int sbx_policylang_parse_seconds(const char *s, uint64_t *out, const char **why, size_t *off);

/* A decimal count in [min, max]. */
int sbx_policylang_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                               const char **why, size_t *off);

/* Check a `files` pattern: absolute; no empty, "." or ".." component; no
 * trailing '/' (except "/"); no "***"; a '\' escapes one following character;
 * no control characters;
 * shorter than 4096 bytes. Returns 0 or SBX_ERROR_BAD_PATTERN with *why and
 * *off set as above. */
int sbx_policylang_check_pattern(const char *p, const char **why, size_t *off);

/* Check a native-view path: absolute, no empty, "." or ".." component, no
 * trailing '/', shorter than 4096 bytes ('*' and '?' are ordinary
 * characters here). Returns 0 or -EINVAL. */
int sbx_policylang_check_view_path(const char *p, const char **why, size_t *off);

#endif
