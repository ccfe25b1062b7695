/* sbx — library version. */
#ifndef SBX_VERSION_H
#define SBX_VERSION_H

#include <sbx/export.h>

SBX_BEGIN_DECLS

/* The version of the library actually loaded, "MAJOR.MINOR.PATCH". Static
 * string owned by sbx. */
SBX_API const char *sbx_version(void);

SBX_END_DECLS

#endif
