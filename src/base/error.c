/* sbx — result codes to text. */
#include <sbx/error.h>

#include <string.h>

#include "base/cleanup.h"

static const struct {
    int code;
    const char *name;
    const char *text;
} sbx_codes[] = {
    { SBX_OK, "SBX_OK", "success" },
    { SBX_ERROR_GENERIC, "SBX_ERROR_GENERIC", "internal error" },
    { SBX_ERROR_WRONG_STATE, "SBX_ERROR_WRONG_STATE", "called in the wrong state or order" },
    { SBX_ERROR_ALREADY_INIT, "SBX_ERROR_ALREADY_INIT", "already initialised" },
    { SBX_ERROR_FROZEN, "SBX_ERROR_FROZEN", "policy is frozen and cannot be changed" },
    { SBX_ERROR_BAD_PATTERN, "SBX_ERROR_BAD_PATTERN", "malformed path pattern" },
    { SBX_ERROR_BAD_POLICY, "SBX_ERROR_BAD_POLICY", "invalid policy" },
    { SBX_ERROR_NO_SPACE, "SBX_ERROR_NO_SPACE", "buffer is full" },
    { SBX_ERROR_CHANNEL_ERROR, "SBX_ERROR_CHANNEL_ERROR", "IPC channel error (peer gone)" },
    { SBX_ERROR_INVALID_IPC, "SBX_ERROR_INVALID_IPC", "malformed IPC message" },
    { SBX_ERROR_BAD_SECTION, "SBX_ERROR_BAD_SECTION", "shared section header is invalid" },
    { SBX_ERROR_UNSUPPORTED, "SBX_ERROR_UNSUPPORTED", "not supported by this kernel" },
    { SBX_ERROR_PROTOCOL, "SBX_ERROR_PROTOCOL", "channel protocol violation" },
    { SBX_ERROR_DENIED, "SBX_ERROR_DENIED", "denied by policy" },
    { SBX_ERROR_SPAWN, "SBX_ERROR_SPAWN", "target setup failed" },
    { SBX_ERROR_TOO_LARGE, "SBX_ERROR_TOO_LARGE", "input exceeds a size limit" },
    { SBX_ERROR_TIMEOUT, "SBX_ERROR_TIMEOUT", "timed out" },
    { SBX_ERROR_NOT_FOUND, "SBX_ERROR_NOT_FOUND", "not found" },
};

SBX_API const char *sbx_strerror(int code)
{
    for (size_t i = 0; i < SBX_ARRAY_SIZE(sbx_codes); i++)
        if (sbx_codes[i].code == code)
            return sbx_codes[i].text;
    if (code < 0 && code > -4096) {
        /* strerrordesc_np: static, locale-independent, no allocation. */
        const char *s = strerrordesc_np(-code);
        if (s)
            return s;
    }
    return "unknown error";
}

SBX_API const char *sbx_error_name(int code)
{
    for (size_t i = 0; i < SBX_ARRAY_SIZE(sbx_codes); i++)
        if (sbx_codes[i].code == code)
            return sbx_codes[i].name;
    if (code < 0 && code > -4096) {
        const char *s = strerrorname_np(-code);
        if (s)
            return s;
    }
    return "?";
}
