/* sbx — logging. Messages go to stderr unless the embedding application
 * installs its own handler. */
#ifndef SBX_LOG_H
#define SBX_LOG_H

#include <sbx/export.h>

SBX_BEGIN_DECLS

typedef enum sbx_log_level {
    SBX_LOG_ERROR = 0,
    SBX_LOG_WARNING = 1,
    SBX_LOG_INFO = 2,
    SBX_LOG_DEBUG = 3,
} sbx_log_level;

/* Receives one formatted message (no trailing newline). `msg` is owned by
 * sbx and valid only during the call. May be called from any sbx thread. */
typedef void (*sbx_log_handler)(sbx_log_level level, const char *msg, void *user);

/* Install `handler` (NULL restores the stderr default). `user` is passed
 * back unchanged and stays owned by the caller. Thread-safe. */
SBX_API void sbx_log_set_handler(sbx_log_handler handler, void *user);

/* Messages above `level` are dropped. Default: SBX_LOG_WARNING, or the
 * value of $SBX_LOG_LEVEL (error|warning|info|debug) at first use. */
SBX_API void sbx_log_set_level(sbx_log_level level);
SBX_API sbx_log_level sbx_log_get_level(void);

SBX_END_DECLS

#endif
