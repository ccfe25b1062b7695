/* sbx internal — logging.
 *
 * sbx_log*: ordinary logging (may allocate, takes a lock around the handler).
 * sbx_safe_*: the async-signal-safe form for signal handlers and the window
 * between fork and exec — no malloc, no stdio, no locks; a fixed stack
 * buffer and one write(2). The safe formatter understands %s %c %d %i %u %x
 * %p %% with the length modifiers l, ll, z (and nothing else: anything
 * unknown is copied through literally, never interpreted). */
#ifndef SBX_BASE_LOG_H
#define SBX_BASE_LOG_H

#include <stdarg.h>
#include <stddef.h>

#include <sbx/log.h>

__attribute__((format(printf, 2, 3)))
void sbx_log(sbx_log_level level, const char *fmt, ...);
__attribute__((format(printf, 2, 0)))
void sbx_vlog(sbx_log_level level, const char *fmt, va_list ap);
int sbx_log_enabled(sbx_log_level level);

#define sbx_error(...) sbx_log(SBX_LOG_ERROR, __VA_ARGS__)
#define sbx_warn(...) sbx_log(SBX_LOG_WARNING, __VA_ARGS__)
#define sbx_info(...) sbx_log(SBX_LOG_INFO, __VA_ARGS__)
#define sbx_debug(...) sbx_log(SBX_LOG_DEBUG, __VA_ARGS__)

/* Format into buf[size] (always NUL-terminated when size > 0). Returns the
 * length written, excluding the NUL; output is truncated, never overrun.
 * Async-signal-safe. */
__attribute__((format(printf, 3, 0)))
size_t sbx_safe_vformat(char *buf, size_t size, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4)))
size_t sbx_safe_format(char *buf, size_t size, const char *fmt, ...);

/* Format a line (at most SBX_SAFE_LOG_MAX bytes, newline added) and write it
 * to `fd` with one write(2). Async-signal-safe; keeps errno. */
#define SBX_SAFE_LOG_MAX 512
__attribute__((format(printf, 2, 3)))
void sbx_safe_dprintf(int fd, const char *fmt, ...);

/* sbx_safe_dprintf to stderr with the "sbx: " prefix and level word,
 * honouring the level set by sbx_log_set_level. Async-signal-safe. */
__attribute__((format(printf, 2, 3)))
void sbx_safe_log(sbx_log_level level, const char *fmt, ...);

#endif
