/* sbx — symbol visibility. The library is built with -fvisibility=hidden;
 * only declarations marked SBX_API are exported from libsbx.so. */
#ifndef SBX_EXPORT_H
#define SBX_EXPORT_H

#if defined(SBX_BUILDING_LIBRARY)
#define SBX_API __attribute__((visibility("default")))
#else
#define SBX_API
#endif

#ifdef __cplusplus
#define SBX_BEGIN_DECLS extern "C" {
#define SBX_END_DECLS }
#else
#define SBX_BEGIN_DECLS
#define SBX_END_DECLS
#endif

#endif
