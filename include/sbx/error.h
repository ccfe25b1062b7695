/* sbx — result codes. See docs/errors.md.
 *
 * Every sbx function that can fail returns an int: 0 on success, a negative
 * errno value (-ENOMEM, -EINVAL, ...) when the failure is an operating-system
 * one, or a negative SBX_ERROR_* code when it is sbx's own. The two ranges
 * never overlap: errno values are below 4096, sbx's codes start at 10000. */
#ifndef SBX_ERROR_H
#define SBX_ERROR_H

#include <sbx/export.h>

SBX_BEGIN_DECLS

typedef enum sbx_error {
    SBX_OK = 0,
    SBX_ERROR_GENERIC = -10000,        /* an internal error without a better code */
    SBX_ERROR_WRONG_STATE = -10001,    /* called in the wrong order (e.g. spawn before init) */
    SBX_ERROR_ALREADY_INIT = -10002,   /* a second init of an object that allows one */
    SBX_ERROR_FROZEN = -10003,         /* modifying a policy that is frozen */
    SBX_ERROR_BAD_PATTERN = -10004,    /* a malformed path pattern */
    SBX_ERROR_BAD_POLICY = -10005,     /* a policy that fails to compile or validate */
    SBX_ERROR_NO_SPACE = -10006,       /* a fixed-size buffer is full */
    SBX_ERROR_CHANNEL_ERROR = -10007,  /* the IPC peer is gone or the channel is broken */
    SBX_ERROR_INVALID_IPC = -10008,    /* a malformed cross-call request or reply */
    SBX_ERROR_BAD_SECTION = -10009,    /* a shared section whose header does not check */
    SBX_ERROR_UNSUPPORTED = -10010,    /* the kernel lacks a needed mechanism */
    SBX_ERROR_PROTOCOL = -10011,       /* a message-channel protocol violation */
    SBX_ERROR_DENIED = -10012,         /* the policy refused the request */
    SBX_ERROR_SPAWN = -10013,          /* target setup failed; the step is reported */
    SBX_ERROR_TOO_LARGE = -10014,      /* an input exceeds a hard size limit */
    SBX_ERROR_TIMEOUT = -10015,        /* a bounded wait ran out */
    SBX_ERROR_NOT_FOUND = -10016,      /* no such tag, target, rule or profile */
    SBX_ERROR_LAST_ = -10017
} sbx_error;

/* A short English description of `code` (0, -errno or SBX_ERROR_*); never
 * NULL. The string is static and owned by sbx: do not free it. Thread-safe
 * and async-signal-safe (no allocation, no locale lookup). */
SBX_API const char *sbx_strerror(int code);

/* The symbolic name of `code`: "SBX_ERROR_CHANNEL_ERROR", "ENOENT", "SBX_OK";
 * "?" when unknown. Static string owned by sbx. */
SBX_API const char *sbx_error_name(int code);

SBX_END_DECLS

#endif
