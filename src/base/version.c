/* sbx — version string (from meson's project version). */
#include <sbx/version.h>

#ifndef SBX_VERSION_STRING
#error "SBX_VERSION_STRING must come from the build"
#endif

SBX_API const char *sbx_version(void)
{
    return SBX_VERSION_STRING;
}
